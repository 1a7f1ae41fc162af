//! Keys published as a JSON Web Key Set ([RFC 7517]) by an identity
//! provider, at an `https://` URL or in a local `file://`.
//!
//! Verification never waits on the network: it reads the set held in
//! memory. A background task per set ([`refresh_loop`]) fetches it again
//! when its HTTP cache headers say it expires (within a floor and a
//! ceiling); a token naming an unknown `kid` asks for an early fetch, at
//! most once per [`JwksOptions::refetch_interval`], and its request waits
//! for that fetch (at most twice [`JwksOptions::timeout`]: a fetch already
//! running may predate the rotation, so the next one counts). A failed
//! fetch keeps
//! the last good set.
//!
//! [RFC 7517]: https://www.rfc-editor.org/rfc/rfc7517

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::{CACHE_CONTROL, DATE, EXPIRES};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde_json::Value;
use tokio::sync::{Notify, watch};
use url::Url;

use super::keys::{KeyConfig, KeyError};

/// Moved on by every key set installed: tokens verified before are checked
/// again (the verified-token cache compares it). Static keys never change
/// while the process runs.
pub(super) static KEY_EPOCH: AtomicU64 = AtomicU64::new(0);

/// The algorithms a JWKS key may verify when `algs=` does not narrow them:
/// every asymmetric one the hub supports. Symmetric (`oct`) keys are never
/// taken from a key set.
///
/// ```
/// use ssehub_server::auth::{Algorithm, JWKS_ALGORITHMS};
/// assert!(JWKS_ALGORITHMS.contains(&Algorithm::EdDSA));
/// assert!(!JWKS_ALGORITHMS.contains(&Algorithm::HS256));
/// ```
pub const JWKS_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Largest key set accepted (a real one is a few KiB).
const MAX_BYTES: usize = 1 << 20;

/// Refresh interval of a set whose response has no cache headers (and of
/// a `file://` set), before the floor and ceiling apply.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// Where a key set comes from.
///
/// ```
/// use ssehub_server::auth::JwksSource;
/// let url: JwksSource = "https://idp.example/realms/app/protocol/openid-connect/certs".parse().unwrap();
/// assert!(matches!(url, JwksSource::Url(_)));
/// let file: JwksSource = "file:///etc/ssehub/jwks.json".parse().unwrap();
/// assert!(matches!(file, JwksSource::File(ref path) if path.to_str() == Some("/etc/ssehub/jwks.json")));
/// assert!("ftp://idp.example/jwks".parse::<JwksSource>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// An `https://` (or `http://`) URL, fetched with `GET`.
    Url(Url),
    /// A local file holding the set.
    File(PathBuf),
}

/// Why a text names no key set's source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksSourceError {
    /// Not a URL.
    #[error("{value:?} is not a URL: {source}")]
    Url {
        /// The text.
        value: String,
        /// Why.
        source: url::ParseError,
    },
    /// A `file:` URL that is no absolute local path.
    #[error("{0:?} names no local file (file:///absolute/path)")]
    NotLocal(String),
    /// Another scheme, or an `http(s)` URL without a host.
    #[error("{0:?}: a JWKS source is an https://, http:// or file:// URL")]
    Scheme(String),
}

impl FromStr for JwksSource {
    type Err = JwksSourceError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let url = Url::parse(value).map_err(|source| JwksSourceError::Url {
            value: value.to_owned(),
            source,
        })?;
        match url.scheme() {
            "https" | "http" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(Self::Url(url)),
            "file" => url
                .to_file_path()
                .map(Self::File)
                .map_err(|()| JwksSourceError::NotLocal(value.to_owned())),
            _ => Err(JwksSourceError::Scheme(value.to_owned())),
        }
    }
}

impl fmt::Display for JwksSource {
    /// The source without user information, query or fragment (which may
    /// hold credentials): what logs and metrics show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(url) => {
                let mut shown = url.clone();
                let _ = shown.set_username("");
                let _ = shown.set_password(None);
                shown.set_query(None);
                shown.set_fragment(None);
                f.write_str(shown.as_str())
            }
            Self::File(path) => write!(f, "file://{}", path.display()),
        }
    }
}

impl fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JwksSource({self})")
    }
}

/// How key sets are fetched and refreshed.
///
/// ```
/// use ssehub_server::auth::JwksOptions;
/// let options = JwksOptions::default();
/// assert!(options.refresh_min <= options.refresh_max);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksOptions {
    /// Floor of the refresh interval, whatever the cache headers say.
    pub refresh_min: Duration,
    /// Ceiling of the refresh interval.
    pub refresh_max: Duration,
    /// At most one early fetch per this interval for unknown `kid`s.
    pub refetch_interval: Duration,
    /// Timeout of one fetch; a request waits at most twice this for an
    /// early fetch.
    pub timeout: Duration,
    /// PEM CA certificates trusted for `https://` sets besides the built-in
    /// (Mozilla) roots: for a provider behind a private CA.
    pub tls_ca: Option<Vec<u8>>,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            refresh_min: Duration::from_secs(60),
            refresh_max: Duration::from_secs(3600),
            refetch_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            tls_ca: None,
        }
    }
}

/// Why a key set could not be fetched or used.
///
/// ```
/// use ssehub_server::auth::JwksError;
/// assert_eq!(JwksError::NoUsableKey.to_string(), "no usable signing key in the set");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The request failed (connection, timeout, TLS), or no client could
    /// be built. Shown with its causes (what an operator needs: "connection
    /// refused", a certificate error), never with the URL, which may hold
    /// credentials.
    #[error("fetch failed: {}", with_causes(.0))]
    Fetch(#[source] reqwest::Error),
    /// The server answered with an error status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// `tls_ca` is not PEM that holds certificates.
    #[error("CA certificates: {0}")]
    Ca(#[source] reqwest::Error),
    /// `tls_ca` holds no PEM certificate at all.
    #[error("CA certificates: no PEM certificate")]
    NoCa,
    /// Larger than any real key set.
    #[error("larger than {MAX_BYTES} bytes")]
    TooLarge,
    /// Not a JSON object with a `keys` array.
    #[error("not a JWK set: {0}")]
    Parse(#[source] serde_json::Error),
    /// No key of the set can verify an allowed algorithm.
    #[error("no usable signing key in the set")]
    NoUsableKey,
}

/// One verification key of a set.
#[derive(Debug)]
struct SetKey {
    kid: Option<String>,
    key: KeyConfig,
}

/// The keys held, as last fetched.
#[derive(Debug, Default)]
struct KeySet {
    /// One per (JWK, algorithm it may verify).
    keys: Vec<SetKey>,
    /// The JWKs they come from.
    jwks: usize,
}

impl KeySet {
    fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Keys held (a JWK without `alg` counts once however many
    /// algorithms it serves).
    fn distinct(&self) -> usize {
        self.jwks
    }
}

/// Why a key set did not verify a token (logged, never told the client).
///
/// ```
/// use ssehub_server::auth::KeySetRejection;
/// assert!(KeySetRejection::UnknownKid("k2".into()).retryable());
/// assert_eq!(KeySetRejection::NotLoaded.to_string(), "no key set fetched yet");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum KeySetRejection {
    /// The header's `alg` is not in the issuer's allowlist.
    #[error("alg {0:?} is not allowed")]
    AlgNotAllowed(Algorithm),
    /// No set was fetched yet.
    #[error("no key set fetched yet")]
    NotLoaded,
    /// The `kid` is not in the set.
    #[error("unknown kid {0:?}")]
    UnknownKid(String),
    /// No key of the set suits the token's `alg` (and `kid`).
    #[error("no key for alg {0:?}")]
    NoMatchingKey(Algorithm),
    /// Every candidate key refused it.
    #[error("{0}")]
    Verification(jsonwebtoken::errors::Error),
}

impl KeySetRejection {
    /// Whether a fresh set might verify the token.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::NotLoaded | Self::UnknownKid(_))
    }
}

/// The state of an early fetch.
#[derive(Debug, Default)]
struct OnDemand {
    /// When the last early fetch was asked for.
    last: Option<Instant>,
    /// A fetch is asked for or running; waiters wait for it.
    pending: bool,
    /// The fetch generation waiters wait for: a fetch already running
    /// when one is asked for may have read the set before the rotation
    /// that brought the new `kid`, so they wait for the next one.
    target: u64,
}

/// One issuer's key set: the keys held, how to fetch them again, and the
/// figures `/metrics` shows.
pub struct Jwks {
    issuer: String,
    source: JwksSource,
    algs: Vec<Algorithm>,
    options: JwksOptions,
    client: Option<reqwest::Client>,
    set: RwLock<Arc<KeySet>>,
    wake: Notify,
    on_demand: Mutex<OnDemand>,
    fetched: watch::Sender<u64>,
    /// A fetch is running now.
    fetching: std::sync::atomic::AtomicBool,
    ok: AtomicU64,
    failed: AtomicU64,
    /// Unix seconds of the last good fetch; 0: never.
    last_success: AtomicU64,
    held: AtomicU64,
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field("issuer", &self.issuer)
            .field("source", &self.source)
            .field("algs", &self.algs)
            .finish_non_exhaustive()
    }
}

impl Jwks {
    /// The key set of `issuer` at `source`, verifying the algorithms `algs`
    /// (empty: [`JWKS_ALGORITHMS`]). A `file://` set is read now; a URL is
    /// first fetched by [`refresh_loop`].
    ///
    /// # Errors
    /// [`JwksError`] for a file that cannot be read or holds no usable key.
    ///
    /// ```
    /// use ssehub_server::auth::{Algorithm, Jwks, JwksOptions, JwksSource};
    /// let url: JwksSource = "https://idp.example/certs".parse().unwrap();
    /// let jwks = Jwks::new("https://idp.example", url, &[Algorithm::RS256], JwksOptions::default()).unwrap();
    /// assert_eq!(jwks.keys_held(), 0, "nothing fetched yet");
    /// ```
    pub fn new(
        issuer: &str,
        source: JwksSource,
        algs: &[Algorithm],
        options: JwksOptions,
    ) -> Result<Arc<Self>, JwksError> {
        let mut algs: Vec<Algorithm> = if algs.is_empty() {
            JWKS_ALGORITHMS.to_vec()
        } else {
            algs.to_vec()
        };
        algs.sort_by_key(|alg| format!("{alg:?}"));
        algs.dedup();
        let client = match &source {
            JwksSource::Url(url) => {
                let loopback = match url.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(name)) => name == "localhost",
                    None => false,
                };
                if url.scheme() == "http" && !loopback {
                    tracing::warn!(issuer, %source, "JWKS over plain HTTP: anyone on the path can swap the keys");
                }
                Some(client(&options)?)
            }
            JwksSource::File(_) => None,
        };
        let jwks = Arc::new(Self {
            issuer: issuer.to_owned(),
            source,
            algs,
            options,
            client,
            set: RwLock::new(Arc::default()),
            wake: Notify::new(),
            on_demand: Mutex::new(OnDemand::default()),
            fetched: watch::Sender::new(0),
            fetching: std::sync::atomic::AtomicBool::new(false),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_success: AtomicU64::new(0),
            held: AtomicU64::new(0),
        });
        match &jwks.source {
            JwksSource::File(path) => {
                let bytes = std::fs::read(path).map_err(|source| JwksError::Read {
                    path: path.clone(),
                    source,
                })?;
                let set = parse_set(&bytes, &jwks.algs, &jwks.issuer)?;
                jwks.install(set);
            }
            // Requests that come before the first fetch wait for it.
            JwksSource::Url(_) => {
                let mut on_demand = jwks.lock_on_demand();
                on_demand.pending = true;
                on_demand.target = 1;
            }
        }
        Ok(jwks)
    }

    /// The issuer whose tokens this set verifies.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where the set comes from.
    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    /// Keys held now (a key serving several algorithms counts once).
    pub fn keys_held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Fetches that succeeded and that failed, and the Unix time of the
    /// last success (0: never).
    pub fn stats(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.last_success.load(Ordering::Relaxed),
        )
    }

    fn current(&self) -> Arc<KeySet> {
        self.set
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn lock_on_demand(&self) -> std::sync::MutexGuard<'_, OnDemand> {
        self.on_demand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn install(&self, set: KeySet) {
        self.held.store(set.distinct() as u64, Ordering::Relaxed);
        *self
            .set
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.last_success.store(now, Ordering::Relaxed);
        self.ok.fetch_add(1, Ordering::Relaxed);
        // Tokens verified under the keys this set replaces are checked
        // again.
        KEY_EPOCH.fetch_add(1, Ordering::Release);
    }

    /// Whether the set holds a key with this `kid`.
    pub(super) fn has_kid(&self, kid: &str) -> bool {
        self.current().has_kid(kid)
    }

    /// Verifies `token` (whose header is `header`) with the set: the key
    /// named by `kid`, or without `kid` each key that suits `alg`.
    pub(super) fn decode<C: serde::de::DeserializeOwned>(
        &self,
        header: &Header,
        token: &str,
    ) -> Result<C, KeySetRejection> {
        if !self.algs.contains(&header.alg) {
            return Err(KeySetRejection::AlgNotAllowed(header.alg));
        }
        let set = self.current();
        if set.keys.is_empty() {
            return Err(KeySetRejection::NotLoaded);
        }
        if let Some(kid) = header.kid.as_deref()
            && !set.has_kid(kid)
        {
            return Err(KeySetRejection::UnknownKid(kid.to_owned()));
        }
        let mut last = None;
        for candidate in set.keys.iter().filter(|k| {
            k.key.algorithm() == header.alg
                && header
                    .kid
                    .as_ref()
                    .is_none_or(|kid| k.kid.as_ref() == Some(kid))
        }) {
            match jsonwebtoken::decode::<C>(
                token,
                candidate.key.decoding_key(),
                candidate.key.validation(),
            ) {
                Ok(data) => return Ok(data.claims),
                Err(err) => last = Some(err),
            }
        }
        Err(last.map_or(
            KeySetRejection::NoMatchingKey(header.alg),
            KeySetRejection::Verification,
        ))
    }

    /// Asks for an early fetch (for a token naming an unknown `kid`) and
    /// waits for it at most twice [`JwksOptions::timeout`]. `false`: no fetch
    /// completed (rate-limited, or too slow).
    pub(super) async fn refetch(&self) -> bool {
        let mut fetched = self.fetched.subscribe();
        let target = {
            let mut on_demand = self.lock_on_demand();
            if !on_demand.pending {
                let limited = on_demand
                    .last
                    .is_some_and(|last| last.elapsed() < self.options.refetch_interval);
                if limited {
                    return false;
                }
                on_demand.last = Some(Instant::now());
                on_demand.pending = true;
                let running = u64::from(self.fetching.load(Ordering::Acquire));
                on_demand.target = *fetched.borrow() + 1 + running;
                self.wake.notify_one();
            }
            on_demand.target
        };
        // One fetch's timeout, twice when one was already running, and a
        // second for parsing and for the task to be scheduled.
        let bound = self.options.timeout * 2 + Duration::from_secs(1);
        tokio::time::timeout(bound, fetched.wait_for(|generation| *generation >= target))
            .await
            .is_ok_and(|reached| reached.is_ok())
    }

    /// Fetches the set once; installs it when good. Returns how long it
    /// may be kept (from its cache headers), or why it failed.
    async fn refresh(&self) -> Result<Option<Duration>, JwksError> {
        let (bytes, lifetime) = match &self.source {
            JwksSource::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|source| JwksError::Read {
                        path: path.clone(),
                        source,
                    })?;
                (bytes, None)
            }
            JwksSource::Url(url) => self.download(url).await?,
        };
        let set = parse_set(&bytes, &self.algs, &self.issuer)?;
        let (before, after) = (self.keys_held(), set.distinct());
        self.install(set);
        if before as usize != after {
            tracing::info!(issuer = %self.issuer, source = %self.source, keys = after, "JWKS loaded");
        }
        Ok(lifetime)
    }

    async fn download(&self, url: &Url) -> Result<(Vec<u8>, Option<Duration>), JwksError> {
        // Built with the set for a URL source; built here should it not be.
        let client = match &self.client {
            Some(client) => client.clone(),
            None => client(&self.options)?,
        };
        // The URL is left out: it may hold credentials.
        let fetch = |err: reqwest::Error| JwksError::Fetch(err.without_url());
        let mut response = client
            .get(url.clone())
            .header(
                http::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(fetch)?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status().as_u16()));
        }
        let lifetime = cache_lifetime(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(fetch)? {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, lifetime))
    }

    /// How long to wait before the next scheduled fetch.
    fn next_refresh(&self, lifetime: Option<Duration>) -> Duration {
        lifetime
            .unwrap_or(DEFAULT_LIFETIME)
            .clamp(self.options.refresh_min, self.options.refresh_max)
    }
}

fn client(options: &JwksOptions) -> Result<reqwest::Client, JwksError> {
    let mut builder = reqwest::Client::builder()
        .timeout(options.timeout)
        .user_agent(concat!("ssehub/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &options.tls_ca {
        let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(JwksError::Ca)?;
        if certificates.is_empty() {
            return Err(JwksError::NoCa);
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(JwksError::Fetch)
}

/// `err` followed by its causes, `: `-separated: reqwest's own message is
/// terse ("error sending request"), the reason is in its source chain.
fn with_causes(err: &dyn std::error::Error) -> String {
    use fmt::Write as _;
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        let _ = write!(text, ": {inner}");
        cause = inner.source();
    }
    text
}

/// Keeps `jwks` fresh: fetches it (a URL at once, a file after its first
/// interval), then again when its cache lifetime ends, or early when a
/// token names an unknown `kid`. Runs until aborted.
pub async fn refresh_loop(jwks: Arc<Jwks>) {
    let mut failures: u32 = 0;
    let mut wait = match jwks.source {
        JwksSource::Url(_) => Duration::ZERO,
        JwksSource::File(_) => jwks.next_refresh(None),
    };
    loop {
        if !wait.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = jwks.wake.notified() => {}
            }
        }
        jwks.fetching.store(true, Ordering::Release);
        let result = jwks.refresh().await;
        jwks.fetching.store(false, Ordering::Release);
        wait = match result {
            Ok(lifetime) => {
                failures = 0;
                jwks.next_refresh(lifetime)
            }
            Err(err) => {
                jwks.failed.fetch_add(1, Ordering::Relaxed);
                failures = failures.saturating_add(1);
                tracing::warn!(
                    issuer = %jwks.issuer,
                    source = %jwks.source,
                    keys = jwks.keys_held(),
                    error = %err,
                    "JWKS refresh failed; the keys held (from the last good fetch) stay in use"
                );
                // 1 s, 2 s, 4 s … up to the floor: a provider that is back
                // is noticed soon, one that stays down is not hammered.
                let backoff = Duration::from_secs(1u64 << failures.min(16).saturating_sub(1));
                backoff.min(jwks.options.refresh_min)
            }
        };
        // Under the lock, so that an asker sees either a fetch still
        // pending or the generation it brought.
        let mut on_demand = jwks.lock_on_demand();
        jwks.fetched.send_modify(|generation| *generation += 1);
        if *jwks.fetched.borrow() >= on_demand.target {
            on_demand.pending = false;
        }
        drop(on_demand);
    }
}

/// How long a response may be cached: `Cache-Control: max-age` (`no-cache`
/// and `no-store` count as zero), else `Expires` relative to `Date`.
///
/// ```
/// use ssehub_server::auth::cache_lifetime;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("cache-control", "public, max-age=600".parse().unwrap());
/// assert_eq!(cache_lifetime(&headers), Some(std::time::Duration::from_secs(600)));
/// assert_eq!(cache_lifetime(&http::HeaderMap::new()), None);
/// ```
pub fn cache_lifetime(headers: &HeaderMap) -> Option<Duration> {
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            if directive == "no-cache" || directive == "no-store" {
                return Some(Duration::ZERO);
            }
            if let Some(secs) = directive.strip_prefix("max-age=") {
                if let Ok(secs) = secs.trim_matches('"').parse::<u64>() {
                    return Some(Duration::from_secs(secs));
                }
            }
        }
    }
    let date = |name| {
        headers
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
    };
    let expires = headers.get(EXPIRES)?;
    // RFC 9111 §5.3: an invalid Expires (such as "0") means already expired.
    let Some(expires) = date(EXPIRES) else {
        return (!expires.is_empty()).then_some(Duration::ZERO);
    };
    let now = date(DATE).unwrap_or_else(SystemTime::now);
    Some(expires.duration_since(now).unwrap_or_default())
}

/// Parses a JWK set, keeping each signing key that suits an allowed
/// algorithm. Keys that do not (encryption keys, other curves, weak RSA,
/// algorithms outside `algs`) are skipped and logged: providers publish
/// those beside their signing keys.
fn parse_set(bytes: &[u8], algs: &[Algorithm], issuer: &str) -> Result<KeySet, JwksError> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<Value>,
    }
    let raw: RawSet = serde_json::from_slice(bytes).map_err(JwksError::Parse)?;
    let mut keys = Vec::new();
    let mut jwks = 0;
    for value in raw.keys {
        let kid = value.get("kid").and_then(Value::as_str).map(str::to_owned);
        match keys_of(value, algs) {
            Ok(found) => {
                jwks += 1;
                keys.extend(found.into_iter().map(|key| SetKey {
                    kid: kid.clone(),
                    key,
                }));
            }
            Err(reason) => tracing::debug!(issuer, ?kid, %reason, "JWK skipped"),
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey);
    }
    Ok(KeySet { keys, jwks })
}

/// The verification keys one JWK gives: one per allowed algorithm it
/// suits (its `alg`, or without one every algorithm of its type).
fn keys_of(value: Value, allowed: &[Algorithm]) -> Result<Vec<KeyConfig>, Unusable> {
    let jwk: Jwk = serde_json::from_value(value)?;
    if let Some(key_use) = &jwk.common.public_key_use
        && *key_use != PublicKeyUse::Signature
    {
        return Err(Unusable::NotForSigning);
    }
    let algs: Vec<Algorithm> = match jwk.common.key_algorithm {
        Some(alg) => vec![
            alg.to_string()
                .parse()
                .map_err(|_| Unusable::NotSignature(alg.to_string()))?,
        ],
        None => match &jwk.algorithm {
            // RS* and PS*: the first six.
            AlgorithmParameters::RSA(_) => JWKS_ALGORITHMS[..6].to_vec(),
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return Err(Unusable::Curve),
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                vec![Algorithm::EdDSA]
            }
            _ => return Err(Unusable::KeyType),
        },
    };
    let algs: Vec<Algorithm> = algs.into_iter().filter(|a| allowed.contains(a)).collect();
    if algs.is_empty() {
        return Err(Unusable::NotAllowed);
    }
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return Err(Unusable::Symmetric);
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(Unusable::Jwk)?;
    Ok(algs
        .into_iter()
        .map(|alg| KeyConfig::from_decoding_key(alg, key.clone()))
        .collect::<Result<_, KeyError>>()?)
}

/// Why a JWK of a set is skipped (logged, never an error of the set).
#[derive(Debug, thiserror::Error)]
enum Unusable {
    /// Not a JWK.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Its `use` is not `sig`.
    #[error("not a signing key (use)")]
    NotForSigning,
    /// Its `alg` signs nothing.
    #[error("alg {0} is not a signature algorithm")]
    NotSignature(String),
    /// An elliptic curve no algorithm here uses.
    #[error("unsupported curve")]
    Curve,
    /// A key type no algorithm here uses.
    #[error("unsupported key type")]
    KeyType,
    /// None of its algorithms is allowed for the set.
    #[error("no allowed algorithm")]
    NotAllowed,
    /// An HMAC secret: a key set's keys are public.
    #[error("a symmetric key")]
    Symmetric,
    /// The JWK's parameters do not make a key.
    #[error(transparent)]
    Jwk(jsonwebtoken::errors::Error),
    /// The key does not suit an algorithm.
    #[error(transparent)]
    Key(#[from] KeyError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (http::HeaderName::from_static(name), value.parse().unwrap()))
            .collect()
    }

    #[test]
    fn cache_lifetime_reads_max_age_then_expires() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(
            cache_lifetime(&headers(&[("cache-control", "max-age=90")])),
            secs(90)
        );
        assert_eq!(
            cache_lifetime(&headers(&[("cache-control", "no-cache, max-age=90")])),
            secs(0)
        );
        // max-age wins over Expires.
        assert_eq!(
            cache_lifetime(&headers(&[
                ("cache-control", "public, max-age=30"),
                ("expires", "Thu, 01 Jan 2026 00:10:00 GMT"),
            ])),
            secs(30)
        );
        assert_eq!(
            cache_lifetime(&headers(&[
                ("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
                ("expires", "Thu, 01 Jan 2026 00:10:00 GMT"),
            ])),
            secs(600)
        );
        // Already expired, or an invalid date: now.
        assert_eq!(
            cache_lifetime(&headers(&[
                ("date", "Thu, 01 Jan 2026 00:10:00 GMT"),
                ("expires", "Thu, 01 Jan 2026 00:00:00 GMT"),
            ])),
            secs(0)
        );
        assert_eq!(cache_lifetime(&headers(&[("expires", "0")])), secs(0));
        assert_eq!(
            cache_lifetime(&headers(&[("cache-control", "public")])),
            None
        );
    }

    #[test]
    fn the_refresh_interval_stays_within_floor_and_ceiling() {
        let options = JwksOptions {
            refresh_min: Duration::from_secs(60),
            refresh_max: Duration::from_secs(3600),
            ..JwksOptions::default()
        };
        let source = "https://idp.example/certs".parse().unwrap();
        let jwks = Jwks::new("https://idp.example", source, &[], options).unwrap();
        let secs = Duration::from_secs;
        assert_eq!(jwks.next_refresh(Some(secs(0))), secs(60));
        assert_eq!(jwks.next_refresh(Some(secs(600))), secs(600));
        assert_eq!(jwks.next_refresh(Some(secs(86_400))), secs(3600));
        assert_eq!(jwks.next_refresh(None), DEFAULT_LIFETIME);
    }

    #[test]
    fn sets_keep_signing_keys_of_allowed_algorithms() {
        let rsa = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/keys/rsa-public.pem"
        ));
        let rsa = DecodingKey::from_rsa_pem(rsa.as_bytes()).unwrap();
        let mut jwk = serde_json::to_value(Jwk::from_decoding_key(&rsa, None).unwrap()).unwrap();
        jwk["kid"] = "r".into();
        let mut enc = jwk.clone();
        enc["kid"] = "enc".into();
        enc["use"] = "enc".into();
        let oct = serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": "oct", "alg": "HS256"});
        let unknown = serde_json::json!({"kty": "XYZ", "kid": "x"});
        let body = serde_json::json!({ "keys": [jwk, enc, oct, unknown] }).to_string();

        let set = parse_set(body.as_bytes(), &JWKS_ALGORITHMS, "i").unwrap();
        assert_eq!(set.distinct(), 1, "only the RSA signing key");
        assert!(set.has_kid("r") && !set.has_kid("enc") && !set.has_kid("oct"));
        // Without `alg`, an RSA key serves RS* and PS*.
        assert_eq!(set.keys.len(), 6);
        let set = parse_set(body.as_bytes(), &[Algorithm::PS256], "i").unwrap();
        assert_eq!(set.keys.len(), 1);
        assert!(matches!(
            parse_set(body.as_bytes(), &[Algorithm::ES256], "i"),
            Err(JwksError::NoUsableKey)
        ));
        assert!(matches!(
            parse_set(b"[]", &JWKS_ALGORITHMS, "i"),
            Err(JwksError::Parse(_))
        ));

        // Keys without `kid` count one each.
        let ec = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/keys/ec256-public.pem"
        ));
        let ec = DecodingKey::from_ec_pem(ec.as_bytes()).unwrap();
        let ec = Jwk::from_decoding_key(&ec, Some(Algorithm::ES256)).unwrap();
        let ed = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/keys/ed25519-public.pem"
        ));
        let ed = DecodingKey::from_ed_pem(ed.as_bytes()).unwrap();
        let ed = Jwk::from_decoding_key(&ed, None).unwrap();
        let body = serde_json::json!({ "keys": [ec, ed] }).to_string();
        let set = parse_set(body.as_bytes(), &JWKS_ALGORITHMS, "i").unwrap();
        assert_eq!((set.distinct(), set.keys.len()), (2, 2));
        assert_eq!(set.keys[1].key.algorithm(), Algorithm::EdDSA);
    }
}
