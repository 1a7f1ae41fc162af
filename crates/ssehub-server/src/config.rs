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
//! --issuer 'https://sso.example/realms/app jwks=https://sso.example/realms/app/protocol/openid-connect/certs algs=RS256,ES256'
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
    Algorithm, AuthConfig, DEFAULT_COOKIE_NAME, DEV_COOKIE_NAME, Issuer, JWKS_ALGORITHMS, Jwks,
    JwksError, JwksOptions, JwksSource, JwksSourceError, KeyConfig, KeyError,
};
use crate::forwarded::TrustedProxy;
use crate::identity::{Identities, IdentityConfigError};
pub use crate::presence::{PresenceConfigError, PresenceError};
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
    /// A TOML file of settings, one per flag (`max-body = "8MiB"`); flags
    /// and environment variables win over it.
    #[arg(long = "config", env = "SSEHUB_CONFIG")]
    pub config_file: Option<PathBuf>,

    /// Check the configuration (flags, environment, file, keys, URLs),
    /// print the settings in effect with where each came from, and exit.
    #[arg(long)]
    pub check_config: bool,

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
    /// A JSON Web Key Set verifies tokens too: `jwks=URL` (both roles),
    /// `publisher-jwks=URL`, `subscriber-jwks=URL`, where URL is
    /// `https://…` or `file:///path`; `algs=RS256,ES256` narrows the
    /// algorithms its keys may verify (default: RS*, PS*, ES256, ES384,
    /// EdDSA). Repeat for several issuers.
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

    /// Serve the debugger, a read-only page with the hub's live figures
    /// and a viewer of public updates, at /.well-known/mercure/debug/. It
    /// shows and mints no token. Default: on in development mode, off
    /// otherwise; `--debugger=false` turns it off in development mode.
    #[arg(
        long,
        env = "SSEHUB_DEBUGGER",
        alias = "ui",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub debugger: Option<bool>,

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

    /// Longest topic, matcher, id, type or Last-Event-ID (`4KiB`, or a
    /// number of bytes).
    #[arg(long, env = "SSEHUB_MAX_FIELD", default_value = "4KiB", value_parser = parse_size)]
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

    /// Concurrent subscriptions one client address (the TCP peer) may
    /// hold; more are refused with 429. 0: no limit.
    #[arg(long, env = "SSEHUB_MAX_CONNECTIONS_PER_IP", default_value_t = 1000)]
    pub max_connections_per_ip: u32,

    /// A reverse proxy (an address, or a network such as 10.0.0.0/8)
    /// whose `Forwarded` / `X-Forwarded-For` headers name the client: the
    /// per-address limits then count the client behind it, not the proxy.
    /// Repeat, or comma-separate in the environment variable.
    #[arg(
        long = "trusted-proxy",
        env = "SSEHUB_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<TrustedProxy>,

    /// Bytes a connection may have waiting in the kernel, not yet sent,
    /// before the hub's writes to it wait (TCP_NOTSENT_LOWAT): a
    /// subscriber that stops reading stops being written to once this much
    /// waits for it (its updates then wait in the hub's bounded buffer, and
    /// --write-timeout ends it), so thousands of them cost neither memory
    /// nor the others' latency. A reading subscriber never comes near it.
    /// 0: no limit (the kernel's send buffer alone).
    #[arg(long, env = "SSEHUB_UNSENT_LIMIT", default_value = "4KiB", value_parser = parse_size)]
    pub unsent_limit: usize,

    /// The kernel send buffer of every connection, sent and unsent bytes
    /// together (SO_SNDBUF; Linux doubles it, within net.core.wmem_max).
    /// 0: the kernel's autotuning (up to net.ipv4.tcp_wmem's maximum), which
    /// keeps throughput on long links; --unsent-limit already bounds what a
    /// subscriber that never reads can hold.
    #[arg(long, env = "SSEHUB_SEND_BUFFER", default_value = "0", value_parser = parse_size)]
    pub send_buffer: usize,

    /// Threads that run the hub: 0 (the default) is one per core the
    /// process may use (its CPU affinity). With one, the hub runs on a
    /// single-threaded scheduler, which serves ready connections strictly
    /// in turn: a publisher woken while thousands of subscriber writes are
    /// queued waits behind them, not behind later publishers.
    #[arg(long, env = "SSEHUB_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Concurrent subscriptions one token subject (`sub`) may hold; more
    /// are refused with 429. Anonymous subscribers count per address
    /// only. 0: no limit.
    #[arg(
        long,
        env = "SSEHUB_MAX_CONNECTIONS_PER_SUBJECT",
        default_value_t = 100
    )]
    pub max_connections_per_subject: u32,

    /// Open subscriber streams the hub holds at most; more are refused
    /// with 503. Default: what the open-file limit (raised to its hard
    /// limit at start) leaves after a reserve. 0: no limit.
    #[arg(long, env = "SSEHUB_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Publications per second per token subject (per token for a token
    /// without `sub`), beyond the burst; more are refused with 429. 0: no
    /// limit.
    #[arg(long, env = "SSEHUB_PUBLISH_RATE", default_value_t = 200)]
    pub publish_rate: u32,

    /// Publications a subject may make at once before --publish-rate
    /// applies.
    #[arg(long, env = "SSEHUB_PUBLISH_BURST", default_value_t = 1000)]
    pub publish_burst: u32,

    /// Subscribe requests per second per client address, beyond the
    /// burst; more are refused with 429. 0: no limit.
    #[arg(long, env = "SSEHUB_SUBSCRIBE_RATE", default_value_t = 50)]
    pub subscribe_rate: u32,

    /// Subscribe requests an address may make at once before
    /// --subscribe-rate applies.
    #[arg(long, env = "SSEHUB_SUBSCRIBE_BURST", default_value_t = 500)]
    pub subscribe_burst: u32,

    /// A second address serving only /healthz, /readyz and /metrics, for
    /// probes and scrapers; /metrics then leaves the main address unless
    /// --metrics-on-main.
    #[arg(long, env = "SSEHUB_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Keep /metrics on the main address as well when --admin-listen is
    /// set.
    #[arg(long, env = "SSEHUB_METRICS_ON_MAIN", requires = "admin_listen")]
    pub metrics_on_main: bool,

    /// Shortest time between two scheduled fetches of an issuer's JWKS,
    /// whatever its cache headers (`Cache-Control: max-age`, `Expires`)
    /// say. Without them a set is fetched every 5 minutes.
    #[arg(long, env = "SSEHUB_JWKS_REFRESH_MIN", default_value = "1m", value_parser = humantime::parse_duration)]
    pub jwks_refresh_min: Duration,

    /// Longest time between two scheduled fetches of an issuer's JWKS.
    #[arg(long, env = "SSEHUB_JWKS_REFRESH_MAX", default_value = "1h", value_parser = humantime::parse_duration)]
    pub jwks_refresh_max: Duration,

    /// A token naming a `kid` its issuer's JWKS lacks fetches the set
    /// early, at most once per this interval and set.
    #[arg(long, env = "SSEHUB_JWKS_REFETCH_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub jwks_refetch_interval: Duration,

    /// Timeout of one JWKS fetch; a request waits at most twice this for
    /// an early fetch.
    #[arg(long, env = "SSEHUB_JWKS_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub jwks_timeout: Duration,

    /// PEM CA certificates to trust for `https://` JWKS URLs besides the
    /// built-in (Mozilla) roots: an identity provider behind a private CA.
    #[arg(long, env = "SSEHUB_JWKS_TLS_CA")]
    pub jwks_tls_ca: Option<PathBuf>,
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

fn parse_alg(value: &str) -> Result<Algorithm, UnknownAlgorithm> {
    value
        .parse::<Algorithm>()
        .map_err(|_| UnknownAlgorithm(value.to_owned()))
}

/// A JWT algorithm name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown JWT algorithm {0:?}")]
pub struct UnknownAlgorithm(pub String);

/// Why a `--transport` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Another scheme, or no URL at all (the value is shown without its
    /// password).
    #[error("{0:?} is neither `memory` nor a redis://, rediss:// or redis+unix:// URL")]
    Scheme(String),
    /// A Redis URL that does not parse.
    #[error("{url:?}: {source}")]
    Url {
        /// The URL, without its password.
        url: String,
        /// Why.
        source: url::ParseError,
    },
    /// A Redis URL without a host (or a socket path).
    #[error("{0:?} names no Redis server")]
    NoServer(String),
}

/// Why a flag's value (a size, a duration, a fraction) is refused; clap
/// shows it after the flag's name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// Not a size.
    #[error("{0:?} is not a size (bytes, or with a unit: 8MiB, 512KiB)")]
    NotSize(String),
    /// A size beyond this machine's `usize`.
    #[error("{0:?} is too large")]
    TooLarge(String),
    /// A zero duration where one is needed.
    #[error("must be longer than zero")]
    Zero,
    /// Not a duration.
    #[error("{value:?} is not a duration (10s, 1m 30s): {source}")]
    NotDuration {
        /// The value given.
        value: String,
        /// Why.
        source: humantime::DurationError,
    },
    /// Not a number from 0 to 1.
    #[error("{0:?} is not a number from 0 to 1")]
    NotFraction(String),
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
    type Err = TransportError;

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
            _ => Err(TransportError::Scheme(redact(value))),
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

fn redis_url_check(value: &str) -> Result<(), TransportError> {
    let url = Url::parse(value).map_err(|source| TransportError::Url {
        url: redact(value),
        source,
    })?;
    let unix = matches!(url.scheme(), "redis+unix" | "unix");
    if unix && url.path().is_empty() || !unix && url.host_str().is_none_or(str::is_empty) {
        return Err(TransportError::NoServer(redact(value)));
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

fn parse_transport(value: &str) -> Result<Transport, TransportError> {
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
/// [`ValueError::NotSize`] for a text that is not a size,
/// [`ValueError::TooLarge`] for one too large for this machine.
pub fn parse_size(value: &str) -> Result<usize, ValueError> {
    let size: bytesize::ByteSize = value
        .trim()
        .parse()
        .map_err(|_| ValueError::NotSize(value.to_owned()))?;
    usize::try_from(size.as_u64()).map_err(|_| ValueError::TooLarge(value.to_owned()))
}

/// A duration (`10s`, `1m 30s`) longer than zero.
fn parse_positive_duration(value: &str) -> Result<Duration, ValueError> {
    match humantime::parse_duration(value) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err(ValueError::Zero),
        Err(source) => Err(ValueError::NotDuration {
            value: value.to_owned(),
            source,
        }),
    }
}

fn parse_fraction(value: &str) -> Result<f64, ValueError> {
    match value.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(ValueError::NotFraction(value.to_owned())),
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
    fn new(alg: Algorithm, material: &str) -> Result<Self, KeySpecError> {
        let material = if let Some(path) = material.strip_prefix('@') {
            let text = std::fs::read_to_string(path).map_err(|source| KeySpecError::File {
                path: path.to_owned(),
                source,
            })?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            text.strip_suffix('\r').unwrap_or(text).to_owned()
        } else if let Some(name) = material.strip_prefix("env:") {
            std::env::var(name).map_err(|_| KeySpecError::Env(name.to_owned()))?
        } else {
            material.to_owned()
        };
        if material.is_empty() {
            return Err(KeySpecError::Empty);
        }
        Ok(Self { alg, material })
    }
}

/// Why a key as given (`[ALG:]MATERIAL`) cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum KeySpecError {
    /// `ALG:` names no algorithm.
    #[error(transparent)]
    Algorithm(#[from] UnknownAlgorithm),
    /// `@PATH` cannot be read.
    #[error("cannot read key file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// `env:NAME` names no variable.
    #[error("environment variable {0} is not set (or not UTF-8)")]
    Env(String),
    /// Nothing left once read.
    #[error("empty key")]
    Empty,
}

impl FromStr for KeySpec {
    type Err = KeySpecError;

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

/// One `--issuer` value: an issuer identifier and, optionally, its keys
/// and key sets.
///
/// ```
/// use ssehub_server::config::IssuerSpec;
/// let spec: IssuerSpec = "https://idp.example key=HS384:s3cret authorization_server".parse().unwrap();
/// assert_eq!(spec.id, "https://idp.example");
/// assert!(spec.publisher.is_some() && spec.subscriber.is_some() && spec.authorization_server);
/// assert!("https://idp.example colour=blue".parse::<IssuerSpec>().is_err());
///
/// let spec: IssuerSpec = "https://idp.example jwks=https://idp.example/certs algs=RS256".parse().unwrap();
/// assert!(spec.publisher_jwks.is_some() && spec.subscriber_jwks.is_some() && spec.publisher.is_none());
/// assert_eq!(spec.algs, [ssehub_server::auth::Algorithm::RS256]);
/// ```
#[derive(Debug, Clone)]
pub struct IssuerSpec {
    /// The identifier tokens carry in `iss`.
    pub id: String,
    /// Its publisher key, when given with it.
    pub publisher: Option<KeySpec>,
    /// Its subscriber key, when given with it.
    pub subscriber: Option<KeySpec>,
    /// The key set verifying its publishers' tokens.
    pub publisher_jwks: Option<JwksSource>,
    /// The key set verifying its subscribers' tokens.
    pub subscriber_jwks: Option<JwksSource>,
    /// The algorithms its key sets may verify (empty: every one
    /// [`JWKS_ALGORITHMS`] lists).
    pub algs: Vec<Algorithm>,
    /// Advertised as an authorization server.
    pub authorization_server: bool,
}

impl IssuerSpec {
    /// An issuer with neither keys nor key sets.
    ///
    /// ```
    /// let spec = ssehub_server::config::IssuerSpec::new("https://app.example");
    /// assert!(!spec.has_keys());
    /// ```
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            publisher: None,
            subscriber: None,
            publisher_jwks: None,
            subscriber_jwks: None,
            algs: Vec::new(),
            authorization_server: false,
        }
    }

    /// Whether it carries keys or key sets of its own.
    pub fn has_keys(&self) -> bool {
        self.publisher.is_some()
            || self.subscriber.is_some()
            || self.publisher_jwks.is_some()
            || self.subscriber_jwks.is_some()
    }
}

/// `algs=` of `--issuer`: algorithms a key set may verify.
fn parse_algs(list: &str) -> Result<Vec<Algorithm>, IssuerSpecError> {
    if list.is_empty() {
        return Err(IssuerSpecError::NoAlgs);
    }
    list.split(',')
        .map(|name| {
            let alg = parse_alg(name).map_err(|source| IssuerSpecError::Algs {
                list: list.to_owned(),
                source,
            })?;
            if JWKS_ALGORITHMS.contains(&alg) {
                Ok(alg)
            } else {
                Err(IssuerSpecError::NotForKeySets {
                    list: list.to_owned(),
                    name: name.to_owned(),
                })
            }
        })
        .collect()
}

fn parse_jwks(word: &str, value: &str) -> Result<JwksSource, IssuerSpecError> {
    value.parse().map_err(|source| IssuerSpecError::Jwks {
        word: word.to_owned(),
        source,
    })
}

/// Why an `--issuer` value cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum IssuerSpecError {
    /// An empty value.
    #[error("an issuer needs an identifier")]
    NoId,
    /// `jwks=` (or `publisher-jwks=`, `subscriber-jwks=`) is no key set's
    /// source.
    #[error("{word}: {source}")]
    Jwks {
        /// The word as given.
        word: String,
        /// Why.
        source: JwksSourceError,
    },
    /// `algs=` with nothing after it.
    #[error("algs= is empty: name algorithms, e.g. algs=RS256,ES256")]
    NoAlgs,
    /// `algs=` naming something that is no algorithm.
    #[error("algs={list}: {source}")]
    Algs {
        /// The list as given.
        list: String,
        /// Why.
        source: UnknownAlgorithm,
    },
    /// `algs=` naming an algorithm key sets do not verify with.
    #[error("algs={list}: {name} cannot verify with a key set (RS*, PS*, ES256, ES384, EdDSA)")]
    NotForKeySets {
        /// The list as given.
        list: String,
        /// The algorithm.
        name: String,
    },
    /// A key that cannot be read.
    #[error(transparent)]
    Key(#[from] KeySpecError),
    /// A word that is none of those an issuer takes.
    #[error(
        "{0:?}: expected publisher=KEY, subscriber=KEY, key=KEY, jwks=URL, publisher-jwks=URL, subscriber-jwks=URL, algs=ALG,… or authorization_server"
    )]
    UnknownWord(String),
    /// `algs=` without a key set to apply to.
    #[error("{0}: algs= applies to key sets: add jwks=URL (a static key has its own ALG:)")]
    AlgsWithoutKeySet(String),
}

impl FromStr for IssuerSpec {
    type Err = IssuerSpecError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let mut words = value.split_ascii_whitespace();
        let id = words.next().ok_or(IssuerSpecError::NoId)?;
        let mut spec = Self::new(id);
        for word in words {
            match word.split_once('=') {
                Some(("jwks", url)) => {
                    let source = parse_jwks(word, url)?;
                    spec.publisher_jwks = Some(source.clone());
                    spec.subscriber_jwks = Some(source);
                }
                Some(("publisher-jwks", url)) => spec.publisher_jwks = Some(parse_jwks(word, url)?),
                Some(("subscriber-jwks", url)) => {
                    spec.subscriber_jwks = Some(parse_jwks(word, url)?);
                }
                Some(("algs", list)) => spec.algs = parse_algs(list)?,
                Some(("publisher", key)) => spec.publisher = Some(key.parse()?),
                Some(("subscriber", key)) => spec.subscriber = Some(key.parse()?),
                Some(("key", key)) => {
                    let key: KeySpec = key.parse()?;
                    spec.publisher = Some(key.clone());
                    spec.subscriber = Some(key);
                }
                None if word == "authorization_server" => spec.authorization_server = true,
                _ => return Err(IssuerSpecError::UnknownWord(word.to_owned())),
            }
        }
        if !spec.algs.is_empty() && spec.publisher_jwks.is_none() && spec.subscriber_jwks.is_none()
        {
            return Err(IssuerSpecError::AlgsWithoutKeySet(id.to_owned()));
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
    /// A key flag whose value cannot be read (`@PATH`, `env:NAME`).
    #[error("{role} key: {source}")]
    KeySpec {
        /// Which key.
        role: &'static str,
        /// Why.
        source: KeySpecError,
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
    #[error(transparent)]
    Transport(#[from] TransportSetupError),
    /// A value out of its range, or options that contradict each other.
    #[error("--{flag}: {reason}")]
    Invalid {
        /// The flag at fault.
        flag: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The admin listener on the main address.
    #[error("--admin-listen {0} is the --listen address: give it another port")]
    AdminListen(SocketAddr),
    /// A `file://` key set that cannot be used.
    #[error("--issuer {issuer:?}: key set {source_name}: {source}")]
    Jwks {
        /// Whose key set.
        issuer: String,
        /// Where it comes from.
        source_name: String,
        /// Why.
        source: JwksError,
    },
    /// A `--jwks-*` flag out of range, or a CA file that cannot be used.
    #[error(transparent)]
    JwksFlag(#[from] JwksFlagError),
}

/// Why the log's transport (`--transport`, `--transport-tls-ca`) cannot
/// work as configured. Nothing is contacted yet: these are refusals of
/// the settings themselves.
///
/// ```
/// use ssehub_server::config::TransportSetupError;
/// let err = TransportSetupError::Ca {
///     path: "/no/ca.pem".into(),
///     source: std::io::ErrorKind::NotFound.into(),
/// };
/// assert!(err.to_string().starts_with("--transport-tls-ca /no/ca.pem: "));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum TransportSetupError {
    /// The Redis client refuses the URL or its TLS settings.
    #[error("--transport: {0}")]
    Redis(#[source] redis::RedisError),
    /// The log cannot be set up on it.
    #[error("--transport: {0}")]
    Journal(#[source] ssehub::journal::JournalError),
    /// The shared registry of active subscriptions cannot be set up on it.
    #[error("--transport: {0}")]
    Presence(#[source] PresenceError),
    /// The CA certificate cannot be read.
    #[error("--transport-tls-ca {path}: {source}", path = .path.display())]
    Ca {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Why a `--jwks-*` flag cannot be used.
///
/// ```
/// use ssehub_server::config::JwksFlagError;
/// assert_eq!(JwksFlagError::Zero("--jwks-timeout").to_string(), "--jwks-timeout must be more than 0");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum JwksFlagError {
    /// `--jwks-refresh-min` or `--jwks-timeout` of zero.
    #[error("{0} must be more than 0")]
    Zero(&'static str),
    /// A refresh ceiling under its floor.
    #[error(
        "--jwks-refresh-max ({}) is less than --jwks-refresh-min ({})",
        humantime::format_duration(*.max),
        humantime::format_duration(*.min)
    )]
    RefreshOrder {
        /// `--jwks-refresh-min`.
        min: Duration,
        /// `--jwks-refresh-max`.
        max: Duration,
    },
    /// `--jwks-tls-ca` cannot be read.
    #[error("--jwks-tls-ca {path}: {source}", path = .path.display())]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--jwks-tls-ca` is not PEM that holds certificates.
    #[error("--jwks-tls-ca: {0}")]
    Ca(#[source] reqwest::Error),
    /// `--jwks-tls-ca` holds no PEM certificate at all.
    #[error("--jwks-tls-ca: no PEM certificate")]
    NoCa,
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
    /// The debugger at `/.well-known/mercure/debug/` is served.
    pub debugger: bool,
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
    /// The runtime's worker threads: `--workers`, or with 0 one per core
    /// this process may run on.
    ///
    /// ```
    /// use clap::Parser;
    /// let config = ssehub_server::Config::parse_from(["ssehub", "--workers", "3"]);
    /// assert_eq!(config.worker_threads(), 3);
    /// let config = ssehub_server::Config::parse_from(["ssehub"]);
    /// assert!(config.worker_threads() >= 1);
    /// ```
    #[must_use]
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        }
    }

    /// The runtime to run the hub on, with [`worker_threads`](Self::worker_threads)
    /// threads. One is the single-threaded scheduler, whose one run queue
    /// serves ready tasks in turn: tokio's multi-threaded one, given one
    /// worker, parks what overflows its 256-slot local queue in a global
    /// queue it visits only every few dozen tasks, so under a fan-out of
    /// thousands of writes a woken publisher could wait while later ones
    /// were served.
    ///
    /// # Errors
    /// When the operating system refuses the runtime's threads or its
    /// event queue.
    ///
    /// ```
    /// use clap::Parser;
    /// let config = ssehub_server::Config::parse_from(["ssehub", "--workers", "1"]);
    /// let answer = config.runtime().unwrap().block_on(async { 42 });
    /// assert_eq!(answer, 42);
    /// ```
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        match self.worker_threads() {
            1 => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            workers => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build(),
        }
    }

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
        self.check_values()?;
        for (flag, rate, burst) in [
            ("publish-burst", self.publish_rate, self.publish_burst),
            ("subscribe-burst", self.subscribe_rate, self.subscribe_burst),
        ] {
            if rate > 0 && burst == 0 {
                return Err(ConfigError::ZeroLimit(flag));
            }
        }
        if let Some(admin) = self.admin_listen
            && admin == self.listen
            && admin.port() != 0
        {
            return Err(ConfigError::AdminListen(admin));
        }
        self.check_jwks_flags()?;
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
            debugger: self.debugger.unwrap_or(dev),
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

    /// Values clap's parsers accept that the hub cannot run with, and
    /// options that contradict each other (a file's defaults do not
    /// trigger clap's `requires`).
    fn check_values(&self) -> Result<(), ConfigError> {
        let invalid = |flag, reason| Err(ConfigError::Invalid { flag, reason });
        if self.history_events == 0 {
            return invalid("history-events", "must be at least 1");
        }
        if self.keep_alive < Duration::from_millis(100) {
            return invalid("keep-alive", "must be at least 100ms");
        }
        if self.write_timeout.is_zero() {
            return invalid("write-timeout", "must be more than 0s");
        }
        if self.max_lifetime.is_some_and(|d| d.is_zero()) {
            return invalid(
                "max-lifetime",
                "must be more than 0s (leave it unset for none)",
            );
        }
        if self.history_age.is_zero() {
            return invalid("history-age", "must be more than 0s");
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return invalid("tls-cert", "needs --tls-key"),
            (None, Some(_)) => return invalid("tls-key", "needs --tls-cert"),
            _ => {}
        }
        let redis = matches!(self.transport, Transport::Redis(_));
        if self.transport_tls_ca.is_some() && !redis {
            return invalid(
                "transport-tls-ca",
                "applies to a rediss:// --transport only",
            );
        }
        if redis && self.transport_stream.trim().is_empty() {
            return invalid("transport-stream", "must name a Redis key");
        }
        if let Some(name) = &self.cookie_name
            && !is_cookie_name(name)
        {
            return invalid(
                "cookie-name",
                "must be a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
            );
        }
        for (flag, origins) in [
            ("cors-origin", &self.cors_origins),
            ("publish-origin", &self.publish_origins),
        ] {
            if origins.iter().any(|origin| !is_origin(origin)) {
                return invalid(
                    flag,
                    "must be `*` or an origin: scheme://host[:port], no path, query or credentials",
                );
            }
        }
        for (flag, alg, key) in [
            (
                "publisher-jwt-alg",
                self.publisher_jwt_alg,
                &self.publisher_jwt_key,
            ),
            (
                "subscriber-jwt-alg",
                self.subscriber_jwt_alg,
                &self.subscriber_jwt_key,
            ),
        ] {
            if alg.is_some() && key.is_none() {
                return invalid(flag, "names the algorithm of a key that is not set");
            }
        }
        Ok(())
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

    fn check_jwks_flags(&self) -> Result<(), ConfigError> {
        for (flag, value) in [
            ("--jwks-refresh-min", self.jwks_refresh_min),
            ("--jwks-timeout", self.jwks_timeout),
        ] {
            if value.is_zero() {
                return Err(JwksFlagError::Zero(flag).into());
            }
        }
        if self.jwks_refresh_max < self.jwks_refresh_min {
            return Err(JwksFlagError::RefreshOrder {
                min: self.jwks_refresh_min,
                max: self.jwks_refresh_max,
            }
            .into());
        }
        Ok(())
    }

    /// How key sets are fetched, from the `--jwks-*` flags.
    ///
    /// # Errors
    /// [`ConfigError::JwksFlag`] when `--jwks-tls-ca` cannot be read.
    ///
    /// ```
    /// use clap::Parser;
    /// let config = ssehub_server::Config::parse_from(["ssehub", "--jwks-refetch-interval", "30s"]);
    /// assert_eq!(config.jwks_options().unwrap().refetch_interval, std::time::Duration::from_secs(30));
    /// ```
    pub fn jwks_options(&self) -> Result<JwksOptions, ConfigError> {
        let tls_ca = self
            .jwks_tls_ca
            .as_ref()
            .map(|path| {
                std::fs::read(path).map_err(|source| JwksFlagError::ReadCa {
                    path: path.clone(),
                    source,
                })
            })
            .transpose()?;
        Ok(JwksOptions {
            refresh_min: self.jwks_refresh_min,
            refresh_max: self.jwks_refresh_max,
            refetch_interval: self.jwks_refetch_interval,
            timeout: self.jwks_timeout,
            tls_ca,
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
        let keyed = |result: Result<Option<KeySpec>, KeySpecError>, role| {
            result.map_err(|source| ConfigError::KeySpec { role, source })
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
            if !spec.has_keys() {
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
                publisher,
                subscriber,
                ..IssuerSpec::new(id)
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
                publisher: Some(key.clone()),
                subscriber: Some(key),
                ..IssuerSpec::new(DEV_ISSUER)
            });
        }
        Ok((issuers, dev))
    }
}

/// An RFC 6265 cookie name: an RFC 9110 token.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `*`, or what a browser sends as `Origin` (a trailing `/` tolerated).
fn is_origin(value: &str) -> bool {
    if value == "*" {
        return true;
    }
    let Ok(url) = Url::parse(value) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|host| !host.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && !value.ends_with("//")
}

fn random_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Settings {
    /// The authorization settings, with every key loaded and every
    /// `file://` key set read (a URL's set is fetched later, by
    /// [`crate::auth::refresh_loop`]).
    ///
    /// # Errors
    /// [`ConfigError::Key`] when a key cannot be loaded,
    /// [`ConfigError::Jwks`] when a `file://` key set cannot be used.
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
        let options = self.config.jwks_options()?;
        let key_set = |source: &JwksSource, spec: &IssuerSpec| {
            Jwks::new(&spec.id, source.clone(), &spec.algs, options.clone()).map_err(
                |err| match err {
                    JwksError::Ca(err) => JwksFlagError::Ca(err).into(),
                    JwksError::NoCa => JwksFlagError::NoCa.into(),
                    err => ConfigError::Jwks {
                        issuer: spec.id.clone(),
                        source_name: source.to_string(),
                        source: err,
                    },
                },
            )
        };
        let issuers = self
            .issuers
            .iter()
            .map(|spec| {
                let publisher_jwks = spec
                    .publisher_jwks
                    .as_ref()
                    .map(|source| key_set(source, spec))
                    .transpose()?;
                // One set (one fetch, one series of metrics) when both
                // roles name the same source.
                let subscriber_jwks = match (&spec.subscriber_jwks, &publisher_jwks) {
                    (Some(source), Some(set)) if set.source() == source => Some(set.clone()),
                    (source, _) => source
                        .as_ref()
                        .map(|source| key_set(source, spec))
                        .transpose()?,
                };
                Ok(Issuer {
                    id: spec.id.clone(),
                    publisher: load(&spec.publisher, &spec.id, "publisher")?,
                    subscriber: load(&spec.subscriber, &spec.id, "subscriber")?,
                    publisher_jwks,
                    subscriber_jwks,
                    authorization_server: spec.authorization_server,
                })
            })
            .collect::<Result<_, ConfigError>>()?;
        let mut auth = AuthConfig::new(self.base.clone());
        auth.issuers = issuers;
        auth.cookie_name.clone_from(&self.cookie_name);
        auth.compat = self.config.compat;
        auth.limits = self.limits;
        Ok(auth)
    }
}

#[cfg(test)]
mod issuer_words_tests {
    use super::*;

    /// The spec, or the error as the user reads it.
    fn parse(value: &str) -> Result<IssuerSpec, String> {
        value
            .parse()
            .map_err(|err: IssuerSpecError| err.to_string())
    }

    #[test]
    fn jwks_verifies_both_roles() {
        let spec = parse("https://idp.example jwks=https://idp.example/certs").unwrap();
        let url = JwksSource::Url(Url::parse("https://idp.example/certs").unwrap());
        assert_eq!(spec.publisher_jwks.as_ref(), Some(&url));
        assert_eq!(spec.subscriber_jwks.as_ref(), Some(&url));
        assert!(spec.publisher.is_none() && spec.subscriber.is_none());
        assert!(spec.algs.is_empty() && spec.has_keys());
    }

    #[test]
    fn per_role_sets_and_static_keys_combine() {
        let spec = parse(
            "https://idp.example publisher-jwks=file:///etc/pub.json subscriber-jwks=https://idp.example/sub key=HS256:secret",
        )
        .unwrap();
        assert_eq!(
            spec.publisher_jwks,
            Some(JwksSource::File("/etc/pub.json".into()))
        );
        assert!(matches!(spec.subscriber_jwks, Some(JwksSource::Url(_))));
        assert!(spec.publisher.is_some() && spec.subscriber.is_some());
    }

    #[test]
    fn algs_are_an_allowlist_of_asymmetric_algorithms() {
        let spec =
            parse("https://idp.example jwks=https://idp.example/certs algs=RS256,ES384,EdDSA")
                .unwrap();
        assert_eq!(
            spec.algs,
            [Algorithm::RS256, Algorithm::ES384, Algorithm::EdDSA]
        );
        let err = parse("https://idp.example jwks=https://idp.example/certs algs=RS256,HS256")
            .unwrap_err();
        assert!(
            err.contains("algs=RS256,HS256") && err.contains("HS256 cannot verify"),
            "{err}"
        );
        let err =
            parse("https://idp.example jwks=https://idp.example/certs algs=RS999").unwrap_err();
        assert!(err.contains("unknown JWT algorithm \"RS999\""), "{err}");
        let err = parse("https://idp.example jwks=https://idp.example/certs algs=").unwrap_err();
        assert!(err.contains("algs= is empty"), "{err}");
        let err = parse("https://idp.example key=RS256:/k.pem algs=RS256").unwrap_err();
        assert!(err.contains("algs= applies to key sets"), "{err}");
    }

    #[test]
    fn bad_sources_are_named() {
        for (value, expected) in [
            (
                "jwks=ftp://idp.example/certs",
                "a JWKS source is an https://",
            ),
            ("jwks=not a url", "is not a URL"),
            (
                "publisher-jwks=relative/path.json",
                "publisher-jwks=relative/path.json",
            ),
            (
                "subscriber-jwks=mailto:keys@idp.example",
                "a JWKS source is an https://",
            ),
        ] {
            let err = parse(&format!("https://idp.example {value}")).unwrap_err();
            assert!(err.contains(expected), "{value}: {err}");
        }
        let err = parse("https://idp.example jwk=https://idp.example/certs").unwrap_err();
        assert!(
            err.contains("\"jwk=https://idp.example/certs\"") && err.contains("jwks=URL"),
            "{err}"
        );
    }

    #[test]
    fn an_issuer_with_only_a_key_set_needs_no_jwt_key() {
        let config = Config::parse_from([
            "ssehub",
            "--listen",
            "10.0.0.1:3000",
            "--issuer",
            "https://idp.example jwks=https://idp.example/certs",
        ]);
        let settings = config.settings("10.0.0.1:3000".parse().unwrap()).unwrap();
        assert!(!settings.dev);
        let auth = settings.auth().unwrap();
        let sets = auth.key_sets();
        assert_eq!(sets.len(), 1, "one set for both roles");
        assert_eq!(sets[0].issuer(), "https://idp.example");
    }

    #[test]
    fn jwks_flags_are_checked() {
        for (args, expected) in [
            (
                vec!["--jwks-refresh-min", "0s"],
                "--jwks-refresh-min must be more than 0",
            ),
            (
                vec!["--jwks-timeout", "0s"],
                "--jwks-timeout must be more than 0",
            ),
            (
                vec!["--jwks-refresh-min", "2h", "--jwks-refresh-max", "1h"],
                "--jwks-refresh-max (1h) is less than --jwks-refresh-min (2h)",
            ),
        ] {
            let mut all = vec!["ssehub", "--dev"];
            all.extend(args);
            let config = Config::parse_from(all);
            let err = config
                .settings("127.0.0.1:3000".parse().unwrap())
                .unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
    }

    #[test]
    fn a_jwks_ca_file_without_certificates_is_refused() {
        let path = std::env::temp_dir().join(format!("ssehub-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "not PEM").unwrap();
        let config = Config::parse_from([
            "ssehub",
            "--issuer",
            "https://idp.example jwks=https://idp.example/jwks.json",
            "--jwks-tls-ca",
            path.to_str().unwrap(),
        ]);
        let settings = config.settings("127.0.0.1:3000".parse().unwrap()).unwrap();
        let err = settings.auth().unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(
            matches!(err, ConfigError::JwksFlag(JwksFlagError::NoCa)),
            "{err}"
        );
        assert_eq!(err.to_string(), "--jwks-tls-ca: no PEM certificate");
    }
}
