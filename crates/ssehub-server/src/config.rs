//! Configuration: command-line flags, each with an `SSEHUB_*` environment
//! variable, and the settings derived from them once the listener is bound.
//!
//! ```
//! use clap::Parser;
//! let config = ssehub_server::Config::parse_from(["ssehub", "--listen", "127.0.0.1:0", "--jwt-key", "secret"]);
//! assert_eq!(config.cookie_name, "mercureAccessToken");
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use url::Url;

use crate::auth::{Algorithm, AuthConfig, KeyConfig, KeyError};
use crate::topic::Limits;

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

    /// The hub's public URL (ending in /.well-known/mercure): the base of
    /// relative topics and URL patterns, and the default token audience.
    /// Default: http://LISTEN/.well-known/mercure.
    #[arg(long, env = "SSEHUB_PUBLIC_URL")]
    pub public_url: Option<Url>,

    /// Key verifying both publisher and subscriber tokens: a secret for
    /// HS*, a PEM public key (inline or a file path) otherwise.
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

    /// The hub's resource identifier, required in every token's `aud`.
    /// Default: the public URL.
    #[arg(long, env = "SSEHUB_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Required `iss` of tokens (unchecked when unset).
    #[arg(long, env = "SSEHUB_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Let subscribers connect without a token (they get public updates only).
    #[arg(long, env = "SSEHUB_ANONYMOUS")]
    pub anonymous: bool,

    /// Development mode: a random key when none is given, anonymous
    /// subscribers, active subscriptions, and development tokens printed at
    /// start and handed to the demo page. Implied on a loopback address
    /// when no key is configured.
    #[arg(long, env = "SSEHUB_DEV")]
    pub dev: bool,

    /// Also accept older Mercure clients: several `topic` fields per
    /// update, the `topic` subscribe parameter, the `mercure` token claim.
    #[arg(long, env = "SSEHUB_COMPAT")]
    pub compat: bool,

    /// Publish subscription events and serve the subscriptions API.
    #[arg(long, env = "SSEHUB_SUBSCRIPTIONS")]
    pub subscriptions: bool,

    /// An origin allowed to call the hub from a browser, with credentials
    /// (exact, e.g. `https://app.example`). Repeat, or comma-separate in the
    /// environment variable.
    #[arg(
        long = "cors-origin",
        env = "SSEHUB_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Name of the cookie carrying a browser's token.
    #[arg(long, env = "SSEHUB_COOKIE_NAME", default_value = "mercureAccessToken")]
    pub cookie_name: String,

    /// Refuse tokens in the `access_token` query parameter.
    #[arg(long, env = "SSEHUB_NO_QUERY_TOKEN")]
    pub no_query_token: bool,

    /// Updates kept for reconnecting subscribers.
    #[arg(long, env = "SSEHUB_HISTORY_EVENTS", default_value_t = 10_000)]
    pub history_events: usize,

    /// Bytes of encoded updates kept for reconnecting subscribers.
    #[arg(long, env = "SSEHUB_HISTORY_BYTES", default_value_t = 16 << 20)]
    pub history_bytes: usize,

    /// How long an update stays replayable.
    #[arg(long, env = "SSEHUB_HISTORY_AGE", default_value = "15m", value_parser = humantime::parse_duration)]
    pub history_age: Duration,

    /// Keep-alive comment interval on idle streams.
    #[arg(long, env = "SSEHUB_KEEP_ALIVE", default_value = "15s", value_parser = humantime::parse_duration)]
    pub keep_alive: Duration,

    /// A subscriber whose socket accepts nothing for this long is dropped.
    #[arg(long, env = "SSEHUB_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// Per-subscriber buffer, in events; a subscriber that falls further
    /// behind is disconnected (it resumes with Last-Event-ID).
    #[arg(long, env = "SSEHUB_CLIENT_BUFFER", default_value_t = 4096)]
    pub client_buffer: usize,

    /// Close every subscription after this long (jittered), so clients
    /// re-authenticate and rebalance. Off by default.
    #[arg(long, env = "SSEHUB_MAX_LIFETIME", value_parser = humantime::parse_duration)]
    pub max_lifetime: Option<Duration>,

    /// Fraction of --max-lifetime taken off at random per connection.
    #[arg(long, env = "SSEHUB_LIFETIME_JITTER", default_value_t = 0.1)]
    pub lifetime_jitter: f64,

    /// Largest publish request body, in bytes (413 beyond).
    #[arg(long, env = "SSEHUB_MAX_BODY", default_value_t = 1 << 20)]
    pub max_body: usize,

    /// Most topic matchers in one subscription or one token detail.
    #[arg(long, env = "SSEHUB_MAX_MATCHERS", default_value_t = 64)]
    pub max_matchers: usize,

    /// Longest topic, matcher, id or type, in bytes.
    #[arg(long, env = "SSEHUB_MAX_FIELD", default_value_t = 2048)]
    pub max_field: usize,

    /// How long a shutdown spreads the closing of streams over, so
    /// clients do not all reconnect at once.
    #[arg(long, env = "SSEHUB_DRAIN", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain: Duration,

    /// What writes event streams on plain HTTP: `lean` (ssehub's own
    /// HTTP/1.1 writer, about 5 KiB per idle subscriber; every other request
    /// goes to hyper on the same port) or `hyper` (everything through
    /// hyper/axum, HTTP/1.1 and h2c). With TLS, hyper serves all.
    #[arg(long, env = "SSEHUB_STREAM_SERVER", default_value = "lean", value_parser = ["lean", "hyper"])]
    pub stream_server: String,

    /// Log format: `text` or `json`.
    #[arg(long, env = "SSEHUB_LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    /// TLS certificate chain (PEM); with --tls-key, serves HTTPS with HTTP/2.
    #[arg(long, env = "SSEHUB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM).
    #[arg(long, env = "SSEHUB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
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

impl std::str::FromStr for Secret {
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
    #[error("{role} key: {source}")]
    Key {
        /// Which key.
        role: &'static str,
        /// Why.
        source: KeyError,
    },
    /// No key and not in development mode.
    #[error(
        "no JWT key configured: set --jwt-key (or the publisher/subscriber keys), or run with --dev on a loopback address"
    )]
    NoKey,
    /// The public URL is not usable as a base.
    #[error("invalid public URL: {0}")]
    PublicUrl(String),
}

/// A key as configured: algorithm and material (kept to mint dev tokens).
///
/// ```
/// use clap::Parser;
/// let config = ssehub_server::Config::parse_from(["ssehub", "--jwt-key", "secret"]);
/// let settings = config.settings("127.0.0.1:3000".parse().unwrap()).unwrap();
/// let key = settings.publisher.unwrap();
/// assert_eq!((key.alg, key.material.as_str()), (ssehub_server::auth::Algorithm::HS256, "secret"));
/// ```
#[derive(Clone)]
pub struct KeySpec {
    /// The algorithm.
    pub alg: Algorithm,
    /// Secret or PEM (inline or path).
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
    /// The hub's URL.
    pub base: Url,
    /// Publisher key.
    pub publisher: Option<KeySpec>,
    /// Subscriber key.
    pub subscriber: Option<KeySpec>,
    /// Token audience.
    pub audience: String,
    /// Input limits.
    pub limits: Limits,
}

impl Config {
    /// Resolves defaults that depend on the bound address and checks the
    /// keys.
    ///
    /// # Errors
    /// [`ConfigError`] when no key is configured outside development mode,
    /// or the public URL cannot serve as a base.
    ///
    /// ```
    /// use clap::Parser;
    /// let config = ssehub_server::Config::parse_from(["ssehub"]);
    /// let settings = config.settings("127.0.0.1:4000".parse().unwrap()).unwrap();
    /// assert!(settings.dev, "no key on loopback: development mode");
    /// assert_eq!(settings.base.as_str(), "http://127.0.0.1:4000/.well-known/mercure");
    /// ```
    pub fn settings(&self, bound: SocketAddr) -> Result<Settings, ConfigError> {
        let base = match &self.public_url {
            Some(url) if url.cannot_be_a_base() => {
                return Err(ConfigError::PublicUrl(url.to_string()));
            }
            Some(url) => url.clone(),
            None => {
                let scheme = if self.tls_cert.is_some() {
                    "https"
                } else {
                    "http"
                };
                Url::parse(&format!("{scheme}://{bound}/.well-known/mercure"))
                    .map_err(|e| ConfigError::PublicUrl(e.to_string()))?
            }
        };
        let spec = |key: &Option<Secret>, alg: Option<Algorithm>| {
            key.as_ref().map(|material| KeySpec {
                alg: alg.unwrap_or(self.jwt_alg),
                material: material.expose().to_owned(),
            })
        };
        let shared = spec(&self.jwt_key, Some(self.jwt_alg));
        let mut publisher =
            spec(&self.publisher_jwt_key, self.publisher_jwt_alg).or(shared.clone());
        let mut subscriber = spec(&self.subscriber_jwt_key, self.subscriber_jwt_alg).or(shared);
        let no_key = publisher.is_none() && subscriber.is_none();
        let dev = self.dev || (no_key && bound.ip().is_loopback());
        if no_key {
            if !dev {
                return Err(ConfigError::NoKey);
            }
            let secret = random_secret();
            let key = KeySpec {
                alg: Algorithm::HS256,
                material: secret,
            };
            publisher = Some(key.clone());
            subscriber = Some(key);
        }
        Ok(Settings {
            config: self.clone(),
            dev,
            anonymous: self.anonymous || dev,
            subscriptions: self.subscriptions || dev,
            audience: self
                .jwt_audience
                .clone()
                .unwrap_or_else(|| base.to_string()),
            base,
            publisher,
            subscriber,
            limits: Limits {
                max_pattern_len: self.max_field,
                max_matchers: self.max_matchers,
            },
        })
    }
}

fn random_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Settings {
    /// The authorization settings.
    ///
    /// # Errors
    /// [`ConfigError::Key`] when a key cannot be loaded.
    ///
    /// ```
    /// use clap::Parser;
    /// let config = ssehub_server::Config::parse_from(["ssehub", "--jwt-key", "a-long-enough-secret-for-hs256-tokens", "--jwt-audience", "my-hub"]);
    /// let auth = config.settings("127.0.0.1:3000".parse().unwrap()).unwrap().auth().unwrap();
    /// assert_eq!(auth.audience, "my-hub");
    /// assert!(auth.resource_metadata.ends_with("/.well-known/oauth-protected-resource/.well-known/mercure"));
    /// ```
    pub fn auth(&self) -> Result<AuthConfig, ConfigError> {
        let load = |spec: &Option<KeySpec>, role| {
            spec.as_ref()
                .map(|k| KeyConfig::new(k.alg, &k.material))
                .transpose()
                .map_err(|source| ConfigError::Key { role, source })
        };
        let mut metadata = self.base.clone();
        metadata.set_path(&format!(
            "/.well-known/oauth-protected-resource{}",
            self.base.path()
        ));
        Ok(AuthConfig {
            publisher: load(&self.publisher, "publisher")?,
            subscriber: load(&self.subscriber, "subscriber")?,
            audience: self.audience.clone(),
            issuer: self.config.jwt_issuer.clone(),
            cookie_name: self.config.cookie_name.clone(),
            query_token: !self.config.no_query_token,
            compat: self.config.compat,
            limits: self.limits,
            max_details: 32,
            base: self.base.clone(),
            resource_metadata: metadata.to_string(),
        })
    }
}
