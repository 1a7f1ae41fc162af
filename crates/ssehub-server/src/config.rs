//! Configuration: command-line flags, each with an `SSEHUB_*` environment
//! variable, and the settings derived from them once the listener is bound.
//!
//! Tokens are verified per trusted issuer (`--issuer`): the `iss` a token
//! carries selects the keys that may verify it. An issuer given alone uses
//! the keys of `--jwt-key` (or `--publisher-jwt-key` and
//! `--subscriber-jwt-key`); one can also carry its own:
//!
//! ```text
//! --issuer https://app.example --jwt-key "$SECRET"
//! --issuer 'https://idp.example publisher=RS256:@/keys/idp.pem subscriber=RS256:@/keys/idp.pem authorization_server'
//! ```
//!
//! ```
//! use clap::Parser;
//! let config = ssehub_server::Config::parse_from(["ssehub", "--listen", "127.0.0.1:0", "--issuer", "https://app.example", "--jwt-key", "secret"]);
//! assert_eq!(config.issuers[0].id, "https://app.example");
//! assert_eq!(config.cookie_name, None, "the default depends on the mode");
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use url::Url;

use crate::auth::{
    Algorithm, AuthConfig, DEFAULT_COOKIE_NAME, DEV_COOKIE_NAME, Issuer, KeyConfig, KeyError,
};
use crate::identity::{Identities, IdentityConfigError};
use crate::topic::{Limits, RESERVED_PATH};

/// The issuer of development mode's tokens when none is configured: the
/// reference hub's default trusted issuer, so that its development tokens'
/// `iss` is recognised too.
pub const DEV_ISSUER: &str = "https://localhost";

/// The hub's flags. Every flag can also be set by the environment variable
/// named after it (`--jwt-key` → `SSEHUB_JWT_KEY`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ssehub",
    version,
    about = "A Server-Sent Events hub that speaks the Mercure protocol."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "SSEHUB_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// A trusted token issuer: the `iss` its tokens carry, alone (it uses
    /// --jwt-key, or --publisher-jwt-key and --subscriber-jwt-key) or
    /// followed by its own keys, space-separated: `publisher=KEY`,
    /// `subscriber=KEY`, `key=KEY` (both roles), and `authorization_server`
    /// to advertise it in the protected resource metadata. KEY is
    /// `[ALG:]MATERIAL` (ALG defaults to HS256); MATERIAL is a secret, a
    /// PEM public key's path, `@PATH` (a file's content) or `env:NAME`.
    /// Repeat for several issuers.
    #[arg(long = "issuer", env = "SSEHUB_ISSUER", alias = "jwt-issuer")]
    pub issuers: Vec<IssuerSpec>,

    /// Key verifying both publisher and subscriber tokens of the issuers
    /// given alone: a secret for HS*, a PEM public key (inline or a file
    /// path) otherwise; `@PATH` and `env:NAME` work too.
    #[arg(long, env = "SSEHUB_JWT_KEY", hide_env_values = true)]
    pub jwt_key: Option<Secret>,

    /// Algorithm of --jwt-key (HS256, HS384, HS512, RS256, RS384, RS512,
    /// PS256, PS384, PS512, ES256, ES384, EdDSA).
    #[arg(long, env = "SSEHUB_JWT_ALG", default_value = "HS256", value_parser = parse_alg)]
    pub jwt_alg: Algorithm,

    /// Key for publisher tokens only (overrides --jwt-key for publishing).
    #[arg(long, env = "SSEHUB_PUBLISHER_JWT_KEY", hide_env_values = true)]
    pub publisher_jwt_key: Option<Secret>,

    /// Algorithm of --publisher-jwt-key (default: --jwt-alg).
    #[arg(long, env = "SSEHUB_PUBLISHER_JWT_ALG", value_parser = parse_alg)]
    pub publisher_jwt_alg: Option<Algorithm>,

    /// Key for subscriber tokens only (overrides --jwt-key for subscribing).
    #[arg(long, env = "SSEHUB_SUBSCRIBER_JWT_KEY", hide_env_values = true)]
    pub subscriber_jwt_key: Option<Secret>,

    /// Algorithm of --subscriber-jwt-key (default: --jwt-alg).
    #[arg(long, env = "SSEHUB_SUBSCRIBER_JWT_ALG", value_parser = parse_alg)]
    pub subscriber_jwt_alg: Option<Algorithm>,

    /// Pins the hub's resource identifier, the `aud` every token must
    /// carry (e.g. `https://hub.example/.well-known/mercure`). Unset, it is
    /// derived from each request: `SCHEME://HOST/.well-known/mercure` for
    /// the host the client contacted.
    #[arg(long, env = "SSEHUB_RESOURCE_IDENTIFIER", alias = "jwt-audience")]
    pub resource_identifier: Option<Url>,

    /// A public URL of the hub (only its scheme and host count): requests
    /// for any other origin are answered 421 Misdirected Request. Repeat,
    /// or comma-separate in the environment variable. Unset: any host.
    #[arg(long = "public-url", env = "SSEHUB_PUBLIC_URLS", value_delimiter = ',')]
    pub public_urls: Vec<Url>,

    /// Let subscribers connect without a token (they get public updates only).
    #[arg(long, env = "SSEHUB_ANONYMOUS")]
    pub anonymous: bool,

    /// Development mode: a random key when none is given (issuer
    /// https://localhost), anonymous subscribers, active subscriptions, a
    /// plain-HTTP cookie name, and tokens printed at start and handed to
    /// the demo page. Implied on a loopback address when no key is
    /// configured.
    #[arg(long, env = "SSEHUB_DEV")]
    pub dev: bool,

    /// Also speak Mercure 0.x: the `topic` subscribe parameter with URI
    /// Templates, the `mercure` token claim, tokens without `typ: at+jwt`,
    /// `aud`, `exp` or a trusted `iss`, the `authorization` query parameter
    /// and `mercureAuthorization` cookie, the `/subscriptions/{topic}`
    /// routes, the `lastEventID` resume parameter and the `Last-Event-ID`
    /// response header.
    #[arg(long, env = "SSEHUB_COMPAT")]
    pub compat: bool,

    /// Publish subscription events and serve the subscriptions API.
    #[arg(long, env = "SSEHUB_SUBSCRIPTIONS")]
    pub subscriptions: bool,

    /// An origin allowed to call the hub from a browser, with credentials
    /// (exact, e.g. `https://app.example`; `*` allows any, without
    /// credentials). Repeat, or comma-separate in the environment variable.
    #[arg(
        long = "cors-origin",
        env = "SSEHUB_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// An origin allowed to publish with a cookie-carried token (the hub's
    /// own origin always is; `*` allows any). Repeat, or comma-separate in
    /// the environment variable.
    #[arg(
        long = "publish-origin",
        env = "SSEHUB_PUBLISH_ORIGINS",
        value_delimiter = ','
    )]
    pub publish_origins: Vec<String>,

    /// Name of the cookie carrying a browser's token. Default:
    /// `__Secure-mercure_access_token` (`mercure_access_token` in
    /// development mode, since browsers refuse `__Secure-` cookies over
    /// plain HTTP).
    #[arg(long, env = "SSEHUB_COOKIE_NAME")]
    pub cookie_name: Option<String>,

    /// Updates kept for reconnecting subscribers.
    #[arg(long, env = "SSEHUB_HISTORY_EVENTS", default_value_t = 10_000)]
    pub history_events: usize,

    /// Bytes of encoded updates kept for reconnecting subscribers
    /// (`16MiB`, `512KiB`, or a number of bytes).
    #[arg(long, env = "SSEHUB_HISTORY_BYTES", default_value = "16MiB", value_parser = parse_size)]
    pub history_bytes: usize,

    /// How long an update stays replayable.
    #[arg(long, env = "SSEHUB_HISTORY_AGE", default_value = "15m", value_parser = humantime::parse_duration)]
    pub history_age: Duration,

    /// Where updates are logged and shared: `memory` (this process alone)
    /// or a Redis server, `redis://[[user]:password@]host[:port][/db]`
    /// (`rediss://` for TLS, `redis+unix:///path` for a socket), so that
    /// every hub on it acts as one. History bounds apply to either.
    #[arg(long, env = "SSEHUB_TRANSPORT", default_value = "memory", value_parser = parse_transport)]
    pub transport: Transport,

    /// The Redis stream that holds the log, and the prefix of the hub's
    /// other Redis keys. Hubs sharing it act as one.
    #[arg(long, env = "SSEHUB_TRANSPORT_STREAM", default_value = "ssehub")]
    pub transport_stream: String,

    /// A PEM CA certificate to trust for `rediss://` instead of the
    /// system's roots.
    #[arg(long, env = "SSEHUB_TRANSPORT_TLS_CA")]
    pub transport_tls_ca: Option<PathBuf>,

    /// Keep-alive comment interval on idle streams.
    #[arg(long, env = "SSEHUB_KEEP_ALIVE", default_value = "15s", value_parser = humantime::parse_duration)]
    pub keep_alive: Duration,

    /// A subscriber whose socket accepts nothing for this long is dropped.
    #[arg(long, env = "SSEHUB_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// A connection that has not sent a complete request head this long
    /// after it opened (or, between requests on a kept-alive connection,
    /// after the previous response) is closed: slow-loris peers cannot
    /// hold descriptors and buffers forever.
    #[arg(long, env = "SSEHUB_HEAD_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub head_timeout: Duration,

    /// Per-subscriber buffer, in events; a subscriber that falls further
    /// behind is disconnected (it resumes with Last-Event-ID).
    #[arg(long, env = "SSEHUB_CLIENT_BUFFER", default_value_t = 4096)]
    pub client_buffer: usize,

    /// Close every subscription after this long (jittered), so clients
    /// re-authenticate and rebalance. Off by default.
    #[arg(long, env = "SSEHUB_MAX_LIFETIME", value_parser = humantime::parse_duration)]
    pub max_lifetime: Option<Duration>,

    /// Fraction of --max-lifetime taken off at random per connection
    /// (0 to 1).
    #[arg(long, env = "SSEHUB_LIFETIME_JITTER", default_value_t = 0.1, value_parser = parse_fraction)]
    pub lifetime_jitter: f64,

    /// Largest publish or QUERY request body (`1MiB`, `64KiB`, or a
    /// number of bytes; 413 beyond).
    #[arg(long, env = "SSEHUB_MAX_BODY", default_value = "1MiB", value_parser = parse_size)]
    pub max_body: usize,

    /// Most topic matchers in one subscription, and in one token.
    #[arg(long, env = "SSEHUB_MAX_MATCHERS", default_value_t = 100)]
    pub max_matchers: usize,

    /// Longest topic, matcher, id, type or Last-Event-ID, in bytes.
    #[arg(long, env = "SSEHUB_MAX_FIELD", default_value_t = 4096)]
    pub max_field: usize,

    /// Most topics (canonical and alternate) of one update (413 beyond).
    #[arg(long, env = "SSEHUB_MAX_TOPICS", default_value_t = 1000)]
    pub max_topics: usize,

    /// How long a shutdown spreads the closing of streams over, so
    /// clients do not all reconnect at once.
    #[arg(long, env = "SSEHUB_DRAIN", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain: Duration,

    /// What writes event streams on plain HTTP. With TLS, hyper serves all.
    #[arg(long, env = "SSEHUB_STREAM_SERVER", value_enum, default_value_t = StreamServer::Lean)]
    pub stream_server: StreamServer,

    /// Log format.
    #[arg(long, env = "SSEHUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// TLS certificate chain (PEM); with --tls-key, serves HTTPS with HTTP/2.
    #[arg(long, env = "SSEHUB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM).
    #[arg(long, env = "SSEHUB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// What writes event streams on plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamServer {
    /// ssehub's own HTTP/1.1 writer (about 5 KiB per idle subscriber);
    /// every other request goes to hyper on the same port.
    Lean,
    /// Everything through hyper/axum (HTTP/1.1 and h2c).
    Hyper,
}

/// How logs are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A flag value that must not reach logs: `Debug` prints `<redacted>`.
///
/// ```
/// let secret: ssehub_server::config::Secret = "hunter2".parse().unwrap();
/// assert_eq!(secret.expose(), "hunter2");
/// assert_eq!(format!("{secret:?}"), "<redacted>");
/// ```
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

fn parse_alg(value: &str) -> Result<Algorithm, String> {
    value
        .parse::<Algorithm>()
        .map_err(|_| format!("unknown JWT algorithm {value:?}"))
}

/// Where the hub's log lives.
///
/// ```
/// use ssehub_server::config::Transport;
///
/// assert_eq!("memory".parse::<Transport>(), Ok(Transport::Memory));
/// let redis: Transport = "redis://:secret@10.0.0.5:6379/0".parse().unwrap();
/// assert!(matches!(redis, Transport::Redis(_)));
/// assert!(!format!("{redis:?}").contains("secret"));
/// assert!("http://10.0.0.5".parse::<Transport>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum Transport {
    /// In this process only.
    Memory,
    /// A Redis server, by URL.
    Redis(String),
}

impl FromStr for Transport {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value == "memory" {
            return Ok(Self::Memory);
        }
        let scheme = value.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some("redis" | "rediss" | "redis+unix" | "unix") => {
                redis_url_check(value)?;
                Ok(Self::Redis(value.to_owned()))
            }
            _ => Err(format!(
                "{:?} is neither `memory` nor a redis://, rediss:// or redis+unix:// URL",
                redact(value)
            )),
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::Redis(url) => f.debug_tuple("Redis").field(&redact(url)).finish(),
        }
    }
}

fn redis_url_check(value: &str) -> Result<(), String> {
    let url = Url::parse(value).map_err(|err| format!("{:?}: {err}", redact(value)))?;
    let unix = matches!(url.scheme(), "redis+unix" | "unix");
    if unix && url.path().is_empty() || !unix && url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{:?} names no Redis server", redact(value)));
    }
    Ok(())
}

/// `url` with its user information (which holds the password) hidden.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

fn parse_transport(value: &str) -> Result<Transport, String> {
    value.parse()
}

/// A size in bytes: a number, or a number and a unit (`8MiB`, `1.5 GiB`,
/// `512KiB`; `KB`, `MB`, `GB` are powers of 1000).
///
/// ```
/// use ssehub_server::config::parse_size;
///
/// assert_eq!(parse_size("8MiB"), Ok(8 << 20));
/// assert_eq!(parse_size("1048576"), Ok(1 << 20));
/// assert_eq!(parse_size("2 KB"), Ok(2000));
/// assert!(parse_size("lots").is_err());
/// ```
///
/// # Errors
/// A message naming the value, for a text that is not a size or one too
/// large for this machine.
pub fn parse_size(value: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a size (bytes, or with a unit: 8MiB, 512KiB)"))?;
    usize::try_from(size.as_u64()).map_err(|_| format!("{value:?} is too large"))
}

/// A duration (`10s`, `1m 30s`) longer than zero.
fn parse_positive_duration(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("must be longer than zero".to_owned()),
        Err(err) => Err(format!("{value:?} is not a duration (10s, 1m 30s): {err}")),
    }
}

fn parse_fraction(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{value:?} is not a number from 0 to 1")),
    }
}

/// A key as configured: algorithm and material (kept to mint development
/// tokens with HMAC keys).
///
/// ```
/// let key: ssehub_server::config::KeySpec = "ES256:/etc/keys/pub.pem".parse().unwrap();
/// assert_eq!(key.alg, ssehub_server::auth::Algorithm::ES256);
/// assert_eq!(key.material, "/etc/keys/pub.pem");
/// let secret: ssehub_server::config::KeySpec = "not:an-algorithm".parse().unwrap();
/// assert_eq!((secret.alg, secret.material.as_str()), (ssehub_server::auth::Algorithm::HS256, "not:an-algorithm"));
/// ```
#[derive(Clone)]
pub struct KeySpec {
    /// The algorithm.
    pub alg: Algorithm,
    /// Secret or PEM (inline or path), with `@PATH` and `env:NAME`
    /// resolved.
    pub material: String,
}

impl std::fmt::Debug for KeySpec {
    // The material may be a secret: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySpec")
            .field("alg", &self.alg)
            .field("material", &"<redacted>")
            .finish()
    }
}

impl KeySpec {
    /// `material` with `@PATH` read (one trailing newline dropped, as a
    /// text file of one secret ends) and `env:NAME` looked up.
    fn new(alg: Algorithm, material: &str) -> Result<Self, String> {
        let material = if let Some(path) = material.strip_prefix('@') {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read key file {path}: {err}"))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            text.strip_suffix('\r').unwrap_or(text).to_owned()
        } else if let Some(name) = material.strip_prefix("env:") {
            std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set (or not UTF-8)"))?
        } else {
            material.to_owned()
        };
        if material.is_empty() {
            return Err("empty key".into());
        }
        Ok(Self { alg, material })
    }
}

impl FromStr for KeySpec {
    type Err = String;

    /// `[ALG:]MATERIAL`; `ALG:` is only taken as such when it names an
    /// algorithm, so secrets with colons need no escaping.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.split_once(':') {
            Some((alg, material)) if alg.parse::<Algorithm>().is_ok() => {
                Self::new(parse_alg(alg)?, material)
            }
            _ => Self::new(Algorithm::HS256, value),
        }
    }
}

/// One `--issuer` value: an issuer identifier and, optionally, its keys.
///
/// ```
/// use ssehub_server::config::IssuerSpec;
/// let spec: IssuerSpec = "https://idp.example key=HS384:s3cret authorization_server".parse().unwrap();
/// assert_eq!(spec.id, "https://idp.example");
/// assert!(spec.publisher.is_some() && spec.subscriber.is_some() && spec.authorization_server);
/// assert!("https://idp.example colour=blue".parse::<IssuerSpec>().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct IssuerSpec {
    /// The identifier tokens carry in `iss`.
    pub id: String,
    /// Its publisher key, when given with it.
    pub publisher: Option<KeySpec>,
    /// Its subscriber key, when given with it.
    pub subscriber: Option<KeySpec>,
    /// Advertised as an authorization server.
    pub authorization_server: bool,
}

impl FromStr for IssuerSpec {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let mut words = value.split_ascii_whitespace();
        let id = words.next().ok_or("an issuer needs an identifier")?;
        let mut spec = Self {
            id: id.to_owned(),
            publisher: None,
            subscriber: None,
            authorization_server: false,
        };
        for word in words {
            match word.split_once('=') {
                Some(("publisher", key)) => spec.publisher = Some(key.parse()?),
                Some(("subscriber", key)) => spec.subscriber = Some(key.parse()?),
                Some(("key", key)) => {
                    let key: KeySpec = key.parse()?;
                    spec.publisher = Some(key.clone());
                    spec.subscriber = Some(key);
                }
                None if word == "authorization_server" => spec.authorization_server = true,
                _ => {
                    return Err(format!(
                        "{word:?}: expected publisher=KEY, subscriber=KEY, key=KEY or authorization_server"
                    ));
                }
            }
        }
        Ok(spec)
    }
}

/// Why the hub cannot start with a configuration.
///
/// ```
/// use clap::Parser;
/// let config = ssehub_server::Config::parse_from(["ssehub", "--listen", "10.0.0.1:3000"]);
/// let err = config.settings("10.0.0.1:3000".parse().unwrap()).unwrap_err();
/// assert!(err.to_string().starts_with("no JWT key configured"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key could not be loaded.
    #[error("{role} key of issuer {issuer:?}: {source}")]
    Key {
        /// Whose key.
        issuer: String,
        /// Which key.
        role: &'static str,
        /// Why.
        source: KeyError,
    },
    /// No key and not in development mode.
    #[error(
        "no JWT key configured: set --issuer and --jwt-key (or the publisher/subscriber keys), or run with --dev on a loopback address"
    )]
    NoKey,
    /// Keys without an issuer, outside compatibility mode.
    #[error(
        "--jwt-key (or --publisher-jwt-key, --subscriber-jwt-key) needs --issuer: tokens' iss must name a trusted issuer (or run with --compat to accept 0.x tokens without one)"
    )]
    NoIssuer,
    /// An issuer given alone, without --jwt-key to use.
    #[error(
        "--issuer {0:?} has no key: add publisher=, subscriber= or key= to it, or set --jwt-key"
    )]
    IssuerWithoutKey(String),
    /// An issuer configured twice.
    #[error("--issuer {0:?} is given twice")]
    DuplicateIssuer(String),
    /// Top-level keys that no issuer uses.
    #[error(
        "--jwt-key (or --publisher-jwt-key, --subscriber-jwt-key) is set but every --issuer has keys of its own"
    )]
    UnusedKey,
    /// An unusable identity setting.
    #[error(transparent)]
    Identity(#[from] IdentityConfigError),
    /// A limit that would refuse everything.
    #[error("--{0} must be at least 1")]
    ZeroLimit(&'static str),
    /// The log's transport cannot work as configured.
    #[error("{0}")]
    Transport(String),
}

/// What the hub runs with, derived from [`Config`] once the listener's
/// address is known.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The flags as given.
    pub config: Config,
    /// Development mode in effect (asked for, or implied).
    pub dev: bool,
    /// Anonymous subscribers allowed.
    pub anonymous: bool,
    /// Active subscriptions on.
    pub subscriptions: bool,
    /// The hub's URL: the base of relative topics and URL patterns.
    pub base: Url,
    /// How the hub's identity is derived per request.
    pub identities: Identities,
    /// The trusted issuers, with their keys.
    pub issuers: Vec<IssuerSpec>,
    /// The cookie that may carry a token.
    pub cookie_name: String,
    /// Input limits.
    pub limits: Limits,
}

impl Config {
    /// Resolves defaults that depend on the bound address and checks the
    /// issuers and keys.
    ///
    /// # Errors
    /// [`ConfigError`] when no key is configured outside development mode,
    /// keys have no issuer outside compatibility mode, an issuer has no key
    /// or appears twice, or a URL setting is unusable.
    ///
    /// ```
    /// use clap::Parser;
    /// let config = ssehub_server::Config::parse_from(["ssehub"]);
    /// let settings = config.settings("127.0.0.1:4000".parse().unwrap()).unwrap();
    /// assert!(settings.dev, "no key on loopback: development mode");
    /// assert_eq!(settings.base.as_str(), "http://127.0.0.1:4000/.well-known/mercure");
    /// assert_eq!(settings.issuers[0].id, ssehub_server::config::DEV_ISSUER);
    /// assert_eq!(settings.cookie_name, "mercure_access_token");
    /// ```
    pub fn settings(&self, bound: SocketAddr) -> Result<Settings, ConfigError> {
        for (flag, value) in [
            ("max-matchers", self.max_matchers),
            ("max-field", self.max_field),
            ("max-topics", self.max_topics),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroLimit(flag));
            }
        }
        let scheme = if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let identities =
            Identities::new(scheme, self.resource_identifier.as_ref(), &self.public_urls)?;
        let base = self.base(scheme, bound);
        let (issuers, dev) = self.issuers(bound)?;
        let cookie_name = match (&self.cookie_name, dev) {
            (Some(name), _) => name.clone(),
            (None, true) => DEV_COOKIE_NAME.to_owned(),
            (None, false) => DEFAULT_COOKIE_NAME.to_owned(),
        };
        Ok(Settings {
            config: self.clone(),
            dev,
            anonymous: self.anonymous || dev,
            subscriptions: self.subscriptions || dev,
            base,
            identities,
            issuers,
            cookie_name,
            limits: Limits {
                max_pattern_len: self.max_field,
                max_matchers: self.max_matchers,
                max_topics: self.max_topics,
            },
        })
    }

    /// The base of relative topics and patterns: the pinned resource
    /// identifier when it is a hub URL, else the first public URL's hub
    /// URL, else the hub URL on the bound address.
    fn base(&self, scheme: &str, bound: SocketAddr) -> Url {
        let pinned = self
            .resource_identifier
            .as_ref()
            .filter(|url| url.path() == RESERVED_PATH && !url.cannot_be_a_base());
        let public = self.public_urls.first().and_then(|url| {
            let mut url = url.clone();
            url.set_path(RESERVED_PATH);
            url.set_query(None);
            url.set_fragment(None);
            (!url.cannot_be_a_base()).then_some(url)
        });
        pinned.cloned().or(public).unwrap_or_else(|| {
            Url::parse(&format!("{scheme}://{bound}{RESERVED_PATH}"))
                .expect("a socket address makes a valid URL")
        })
    }

    /// The trusted issuers with their keys, and whether development mode
    /// is in effect.
    fn issuers(&self, bound: SocketAddr) -> Result<(Vec<IssuerSpec>, bool), ConfigError> {
        let shared = self.jwt_key.as_ref().map(|key| (self.jwt_alg, key));
        let role = |key: &Option<Secret>, alg: Option<Algorithm>| {
            key.as_ref()
                .map(|key| (alg.unwrap_or(self.jwt_alg), key))
                .or(shared)
                .map(|(alg, key)| KeySpec::new(alg, key.expose()))
                .transpose()
        };
        let (publisher, subscriber) = (
            role(&self.publisher_jwt_key, self.publisher_jwt_alg),
            role(&self.subscriber_jwt_key, self.subscriber_jwt_alg),
        );
        // A key file that cannot be read is reported like a bad key.
        let keyed = |result: Result<Option<KeySpec>, String>, role| {
            result.map_err(|reason| ConfigError::Key {
                issuer: String::new(),
                role,
                source: KeyError::Pem(reason),
            })
        };
        let (publisher, subscriber) = (
            keyed(publisher, "publisher")?,
            keyed(subscriber, "subscriber")?,
        );
        let top_level = publisher.is_some() || subscriber.is_some();
        let mut issuers = Vec::new();
        let mut used = false;
        for spec in &self.issuers {
            if issuers.iter().any(|i: &IssuerSpec| i.id == spec.id) {
                return Err(ConfigError::DuplicateIssuer(spec.id.clone()));
            }
            let mut spec = spec.clone();
            if spec.publisher.is_none() && spec.subscriber.is_none() {
                if !top_level {
                    return Err(ConfigError::IssuerWithoutKey(spec.id));
                }
                spec.publisher.clone_from(&publisher);
                spec.subscriber.clone_from(&subscriber);
                used = true;
            }
            issuers.push(spec);
        }
        if top_level && !used {
            if !issuers.is_empty() {
                return Err(ConfigError::UnusedKey);
            }
            let id = match (self.compat, self.dev) {
                // 0.x tokens name no issuer: the sole implicit one verifies them.
                (true, _) => String::new(),
                (false, true) => DEV_ISSUER.to_owned(),
                (false, false) => return Err(ConfigError::NoIssuer),
            };
            issuers.push(IssuerSpec {
                id,
                publisher,
                subscriber,
                authorization_server: false,
            });
        }
        let no_key = issuers.is_empty();
        let dev = self.dev || (no_key && bound.ip().is_loopback());
        if no_key {
            if !dev {
                return Err(ConfigError::NoKey);
            }
            let key = KeySpec {
                alg: Algorithm::HS256,
                material: random_secret(),
            };
            issuers.push(IssuerSpec {
                id: DEV_ISSUER.to_owned(),
                publisher: Some(key.clone()),
                subscriber: Some(key),
                authorization_server: false,
            });
        }
        Ok((issuers, dev))
    }
}

fn random_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Settings {
    /// The authorization settings, with every key loaded.
    ///
    /// # Errors
    /// [`ConfigError::Key`] when a key cannot be loaded.
    ///
    /// ```
    /// use clap::Parser;
    /// let config = ssehub_server::Config::parse_from([
    ///     "ssehub", "--issuer", "https://app.example", "--jwt-key", "a-long-enough-secret-for-hs256-tokens",
    /// ]);
    /// let auth = config.settings("127.0.0.1:3000".parse().unwrap()).unwrap().auth().unwrap();
    /// assert_eq!(auth.issuers[0].id, "https://app.example");
    /// assert_eq!(auth.cookie_name, "__Secure-mercure_access_token");
    /// ```
    pub fn auth(&self) -> Result<AuthConfig, ConfigError> {
        let load = |spec: &Option<KeySpec>, issuer: &str, role| {
            spec.as_ref()
                .map(|k| KeyConfig::new(k.alg, &k.material))
                .transpose()
                .map_err(|source| ConfigError::Key {
                    issuer: issuer.to_owned(),
                    role,
                    source,
                })
        };
        let issuers = self
            .issuers
            .iter()
            .map(|spec| {
                Ok(Issuer {
                    id: spec.id.clone(),
                    publisher: load(&spec.publisher, &spec.id, "publisher")?,
                    subscriber: load(&spec.subscriber, &spec.id, "subscriber")?,
                    authorization_server: spec.authorization_server,
                })
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(AuthConfig {
            issuers,
            cookie_name: self.cookie_name.clone(),
            compat: self.config.compat,
            limits: self.limits,
            base: self.base.clone(),
        })
    }
}
