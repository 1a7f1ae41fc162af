//! Whom the hub trusts and where it looks for tokens: [`AuthConfig`], its
//! [`Issuer`]s, the [`Role`] a token is presented for and the cookie names.
//! Apart from `auth.rs` so the files that check tokens read it without
//! importing the functions that call them.

use std::sync::Arc;

use url::Url;

use super::jwks::Jwks;
use super::keys::KeyConfig;
use crate::topic::Limits;

/// The `type` of a Mercure authorization detail, compared byte for byte.
pub const DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

/// The cookie name the protocol recommends. Its `__Secure-` prefix makes
/// browsers refuse it over plain HTTP: development hubs use
/// [`DEV_COOKIE_NAME`].
///
/// ```
/// assert_eq!(ssehub_server::auth::DEFAULT_COOKIE_NAME, "__Secure-mercure_access_token");
/// ```
pub const DEFAULT_COOKIE_NAME: &str = "__Secure-mercure_access_token";

/// The cookie name of development mode, usable over plain HTTP.
pub const DEV_COOKIE_NAME: &str = "mercure_access_token";

/// The cookie Mercure 0.x clients send, accepted in compatibility mode
/// when the configured one is absent.
pub const LEGACY_COOKIE_NAME: &str = "mercureAuthorization";

/// One trusted token issuer (`iss`) and the keys that verify its tokens,
/// per role. A token is only ever verified with the key of the issuer it
/// names, never with a pool spanning issuers.
///
/// ```
/// use ssehub_server::auth::{Algorithm, Issuer, KeyConfig};
/// let key = KeyConfig::new(Algorithm::HS256, "a-secret-of-at-least-32-bytes-!!").unwrap();
/// let issuer = Issuer::new("https://app.example").publisher(key.clone()).subscriber(key);
/// assert!(issuer.publisher.is_some() && !issuer.authorization_server);
/// ```
#[derive(Debug, Clone)]
pub struct Issuer {
    /// The identifier tokens carry in `iss` (empty: the implicit issuer of
    /// compatibility mode, which matches no token's `iss` by itself).
    pub id: String,
    /// Verifies publishers' tokens; `None`: this issuer cannot publish.
    pub publisher: Option<KeyConfig>,
    /// Verifies subscribers' tokens; `None`: this issuer cannot subscribe.
    pub subscriber: Option<KeyConfig>,
    /// The key set verifying publishers' tokens, beside or instead of
    /// [`Issuer::publisher`]: a token whose `kid` the set holds, or any
    /// token when there is no static key, is verified by the set.
    pub publisher_jwks: Option<Arc<Jwks>>,
    /// The key set verifying subscribers' tokens, as for publishers.
    pub subscriber_jwks: Option<Arc<Jwks>>,
    /// Advertised in the protected resource metadata's
    /// `authorization_servers`.
    pub authorization_server: bool,
}

impl Issuer {
    /// An issuer with no key yet.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            publisher: None,
            subscriber: None,
            publisher_jwks: None,
            subscriber_jwks: None,
            authorization_server: false,
        }
    }

    /// With the key set `jwks` verifying both roles' tokens.
    ///
    /// ```
    /// use ssehub_server::auth::{Issuer, Jwks, JwksOptions, Role};
    /// let source = "https://idp.example/certs".parse().unwrap();
    /// let jwks = Jwks::new("https://idp.example", source, &[], JwksOptions::default()).unwrap();
    /// let issuer = Issuer::new("https://idp.example").jwks(jwks);
    /// assert!(issuer.key_set(Role::Publisher).is_some() && issuer.key(Role::Publisher).is_none());
    /// ```
    pub fn jwks(mut self, jwks: Arc<Jwks>) -> Self {
        self.publisher_jwks = Some(jwks.clone());
        self.subscriber_jwks = Some(jwks);
        self
    }

    /// The key set that verifies this issuer's tokens for `role`.
    pub fn key_set(&self, role: Role) -> Option<&Arc<Jwks>> {
        match role {
            Role::Publisher => self.publisher_jwks.as_ref(),
            Role::Subscriber => self.subscriber_jwks.as_ref(),
        }
    }

    /// With `key` verifying publishers' tokens.
    pub fn publisher(mut self, key: KeyConfig) -> Self {
        self.publisher = Some(key);
        self
    }

    /// With `key` verifying subscribers' tokens.
    pub fn subscriber(mut self, key: KeyConfig) -> Self {
        self.subscriber = Some(key);
        self
    }

    /// The key that verifies this issuer's tokens for `role`.
    pub fn key(&self, role: Role) -> Option<&KeyConfig> {
        match role {
            Role::Publisher => self.publisher.as_ref(),
            Role::Subscriber => self.subscriber.as_ref(),
        }
    }
}

/// How the hub validates tokens and where it looks for them.
///
/// ```
/// use ssehub_server::auth::{AuthConfig, DEFAULT_COOKIE_NAME};
/// let config = AuthConfig::new(url::Url::parse("https://hub.example/.well-known/mercure").unwrap());
/// assert!(config.issuers.is_empty() && !config.compat);
/// assert_eq!(config.cookie_name, DEFAULT_COOKIE_NAME);
/// ```
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The trusted issuers.
    pub issuers: Vec<Issuer>,
    /// The name of the cookie that may carry the token.
    pub cookie_name: String,
    /// Also accept the tokens and token locations of Mercure 0.x.
    pub compat: bool,
    /// `max_matchers` bounds the Mercure details of a token and their
    /// topics (summed), `max_pattern_len` each pattern.
    pub limits: Limits,
    /// The hub's URL: the base of relative URL patterns and topics.
    pub base: Url,
    /// Which configuration this is, for the tokens it verified (a clone
    /// is another).
    pub(super) instance: Instance,
}

impl AuthConfig {
    /// No issuer, the recommended cookie name, no compatibility mode,
    /// default limits.
    pub fn new(base: Url) -> Self {
        Self {
            issuers: Vec::new(),
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            compat: false,
            limits: Limits::default(),
            base,
            instance: Instance::new(),
        }
    }

    /// Whether any issuer can verify tokens for `role`.
    ///
    /// ```
    /// use ssehub_server::auth::{AuthConfig, Role};
    /// let config = AuthConfig::new(url::Url::parse("https://hub.example/").unwrap());
    /// assert!(!config.verifies(Role::Publisher));
    /// ```
    pub fn verifies(&self, role: Role) -> bool {
        self.issuers
            .iter()
            .any(|issuer| issuer.key(role).is_some() || issuer.key_set(role).is_some())
    }

    /// Every key set of every issuer, each once: what [`refresh_loop`](super::refresh_loop)
    /// keeps fresh and `/metrics` reports.
    ///
    /// ```
    /// use ssehub_server::auth::AuthConfig;
    /// let config = AuthConfig::new(url::Url::parse("https://hub.example/").unwrap());
    /// assert!(config.key_sets().is_empty());
    /// ```
    pub fn key_sets(&self) -> Vec<Arc<Jwks>> {
        let mut sets: Vec<Arc<Jwks>> = Vec::new();
        for issuer in &self.issuers {
            for set in [&issuer.publisher_jwks, &issuer.subscriber_jwks]
                .into_iter()
                .flatten()
            {
                if !sets.iter().any(|known| Arc::ptr_eq(known, set)) {
                    sets.push(set.clone());
                }
            }
        }
        sets
    }

    /// The issuer a token naming `iss` is verified by: the one with that
    /// identifier; in compatibility mode, failing that, the sole issuer.
    pub(super) fn issuer(&self, iss: Option<&str>) -> Option<&Issuer> {
        // The empty identifier (the implicit issuer) is no identifier: a
        // token saying `"iss": ""` names no issuer.
        let named = iss
            .filter(|iss| !iss.is_empty())
            .and_then(|iss| self.issuers.iter().find(|issuer| issuer.id == iss));
        match (named, &self.issuers[..]) {
            (Some(issuer), _) => Some(issuer),
            (None, [sole]) if self.compat => Some(sole),
            _ => None,
        }
    }
}

/// Which endpoint a token is presented to; it selects the verification key
/// (never the token itself).
///
/// ```
/// use ssehub_server::auth::Role;
/// assert_ne!(Role::Publisher, Role::Subscriber);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Role {
    /// `POST /.well-known/mercure`.
    Publisher,
    /// Subscribing, and the subscription API.
    Subscriber,
}

/// Where the token that counted came from.
///
/// ```
/// use ssehub_server::auth::TokenSource;
/// assert_ne!(TokenSource::Cookie, TokenSource::Header);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TokenSource {
    /// The `Authorization: Bearer` header.
    Header,
    /// The `authorization` query parameter (compatibility mode only).
    Query,
    /// The cookie; a `POST` authenticated this way needs [`check_csrf`](super::check_csrf).
    Cookie,
}

/// Tells configurations apart, for the tokens each has verified: every
/// [`AuthConfig`] and every clone of one gets a number of its own, so a
/// copy whose issuers were changed never answers with what the original
/// verified.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Instance(u64);

impl Instance {
    fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }

    /// The number.
    pub(super) fn get(&self) -> u64 {
        self.0
    }
}

impl Clone for Instance {
    fn clone(&self) -> Self {
        Self::new()
    }
}
