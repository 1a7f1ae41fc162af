//! Access tokens: where a request carries one, whose it is, whether it is
//! valid, and what it grants.
//!
//! The hub is an OAuth 2.0 protected resource. A client presents a JWT
//! access token ([RFC 9068]) in the `Authorization: Bearer` header or, from
//! a browser's `EventSource`, in a cookie ([`AuthConfig::cookie_name`]);
//! never in the URL ([RFC 9700]). [`authenticate`] picks the token, finds
//! the trusted [`Issuer`] its `iss` names, validates it with that issuer's
//! key for the endpoint's [`Role`], and turns its Mercure authorization
//! details ([RFC 9396], type [`DETAIL_TYPE`]) into [`Grants`]. Failures map
//! to the [RFC 6750] responses of [`AuthError::response`]; why a token was
//! refused is logged, never told to the client.
//!
//! With [`AuthConfig::compat`], the tokens of Mercure 0.x are accepted too:
//! the `authorization` query parameter and the `mercureAuthorization`
//! cookie, tokens without `typ: at+jwt`, `aud`, `exp` or a trusted `iss`
//! (the sole issuer then verifies them), and the `mercure` claim.
//!
//! ```
//! use std::time::Duration;
//! use ssehub_server::auth::{self, Algorithm, AuthConfig, Issuer, KeyConfig, Role};
//!
//! let secret = "a-secret-of-at-least-32-bytes-!!";
//! let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
//! let mut config = AuthConfig::new(base);
//! config.issuers.push(Issuer::new("https://app.example").publisher(KeyConfig::new(Algorithm::HS256, secret).unwrap()));
//!
//! let claims = auth::token_claims("https://app.example", &["https://hub.example/.well-known/mercure"], &["publish"], Duration::from_secs(60));
//! let token = auth::mint(Algorithm::HS256, secret, &claims).unwrap();
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
//! let grants = auth::authenticate(&config, Role::Publisher, &headers, None, "https://hub.example/.well-known/mercure")
//!     .unwrap()
//!     .unwrap();
//! assert!(grants.can_publish("https://example.com/books/1"));
//! assert!(!grants.can_subscribe("https://example.com/books/1"));
//! ```
//!
//! [RFC 6750]: https://www.rfc-editor.org/rfc/rfc6750
//! [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068
//! [RFC 9396]: https://www.rfc-editor.org/rfc/rfc9396
//! [RFC 9700]: https://www.rfc-editor.org/rfc/rfc9700

mod details;
mod grants;
mod jwks;
mod keys;
mod legacy;
mod mint;
mod presentation;
#[cfg(test)]
mod tests;
mod token;
mod verified;

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use url::Url;

use crate::topic::Limits;

pub use details::DetailError;
pub use grants::Grants;
pub use jsonwebtoken::Algorithm;
pub use jwks::{
    JWKS_ALGORITHMS, Jwks, JwksError, JwksOptions, JwksSource, KeySetRejection, cache_lifetime,
    refresh_loop,
};
pub use keys::{KeyConfig, KeyError};
pub use mint::{mint, token_claims};
pub use presentation::check_csrf;
pub use token::Rejection;

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
    /// Tokens this configuration has verified (a clone starts empty).
    verified: verified::Verified,
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
            verified: verified::Verified::default(),
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

    /// Every key set of every issuer, each once: what [`refresh_loop`]
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
    fn issuer(&self, iss: Option<&str>) -> Option<&Issuer> {
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
    /// The cookie; a `POST` authenticated this way needs [`check_csrf`].
    Cookie,
}

/// Picks the request's token, validates it for `role` against `audience`
/// (the hub's resource identifier for this request) and parses its grants.
/// `Ok(None)`: the request carries no token.
///
/// Where the token is looked for, first found wins: the `Authorization`
/// header; in compatibility mode the `authorization` query parameter
/// (`query` is the raw query string); the cookie
/// [`AuthConfig::cookie_name`], and in compatibility mode failing that the
/// cookie [`LEGACY_COOKIE_NAME`]. An empty cookie counts as absent (browsers
/// keep them after a logout).
///
/// Validation ([RFC 9068], [RFC 8725]): the issuer is the one whose
/// identifier is the token's `iss`; header `typ` `at+jwt` (or
/// `application/at+jwt`, any case); `alg` exactly that of the issuer's key
/// for the role; no `crit` header; a valid signature; `exp` present and in
/// the future (no leeway); `nbf`, if present, not in the future; `aud`
/// naming `audience`. Then every Mercure detail of `authorization_details`
/// must be well-formed and within the limits, or the whole token is
/// refused. In compatibility mode `typ`, `aud` and `exp` are not required
/// (an `exp` that is there is enforced), a token whose `iss` names no
/// trusted issuer is verified by the sole issuer, and a token without
/// Mercure details may grant through the legacy `mercure` claim.
///
/// [RFC 8725]: https://www.rfc-editor.org/rfc/rfc8725
/// [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068
///
/// # Errors
/// [`AuthError::InvalidRequest`] for a malformed `Authorization` header;
/// [`AuthError::InvalidToken`] for any token that fails validation.
///
/// ```
/// use ssehub_server::auth::{authenticate, AuthConfig, Role};
/// let config = AuthConfig::new(url::Url::parse("https://hub.example/.well-known/mercure").unwrap());
/// // No token at all: anonymous.
/// assert!(authenticate(&config, Role::Subscriber, &http::HeaderMap::new(), Some("match=a"), "urn:hub").unwrap().is_none());
/// // A token in the URL is not looked at outside compatibility mode.
/// assert!(authenticate(&config, Role::Subscriber, &http::HeaderMap::new(), Some("authorization=x.y.z"), "urn:hub").unwrap().is_none());
/// ```
pub fn authenticate(
    config: &AuthConfig,
    role: Role,
    headers: &HeaderMap,
    query: Option<&str>,
    audience: &str,
) -> Result<Option<Grants>, AuthError> {
    let Some((token, source)) = presentation::find_token(config, headers, query)? else {
        return Ok(None);
    };
    validate(config, role, &token, source, audience)
        .map(Some)
        .map_err(|rejection| {
            tracing::info!(?role, ?source, reason = %rejection, "access token refused");
            AuthError::InvalidToken
        })
}

/// [`token::validate`], answered from the tokens already verified when
/// it can be: a publisher sends the same token with every update.
fn validate(
    config: &AuthConfig,
    role: Role,
    token: &str,
    source: TokenSource,
    audience: &str,
) -> Result<Grants, token::Rejection> {
    if let Some(grants) = config.verified.get(role, token, source, audience) {
        return Ok(grants);
    }
    let epoch = verified::KEYS.load(std::sync::atomic::Ordering::Acquire);
    let grants = token::validate(config, role, token, source, audience)?;
    config
        .verified
        .put(role, token, source, audience, epoch, &grants);
    Ok(grants)
}

/// The token a request presents, wherever it is (as [`authenticate`]
/// finds it), unchecked: a key for the publish rate of tokens without a
/// subject.
pub(crate) fn presented_token(
    config: &AuthConfig,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Option<String> {
    presentation::find_token(config, headers, query)
        .ok()
        .flatten()
        .map(|(token, _)| token)
}

/// [`authenticate`], and when a key set does not know the token's `kid`
/// (or was not fetched yet), an early fetch of that set (rate-limited,
/// waited for at most twice [`JwksOptions::timeout`]) and a second try.
///
/// # Errors
/// As [`authenticate`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use ssehub_server::auth::{authenticate_fetching, AuthConfig, Role};
/// let config = AuthConfig::new(url::Url::parse("https://hub.example/.well-known/mercure").unwrap());
/// let none = authenticate_fetching(&config, Role::Subscriber, &http::HeaderMap::new(), None, "urn:hub").await;
/// assert!(none.unwrap().is_none());
/// # }
/// ```
pub async fn authenticate_fetching(
    config: &AuthConfig,
    role: Role,
    headers: &HeaderMap,
    query: Option<&str>,
    audience: &str,
) -> Result<Option<Grants>, AuthError> {
    let Some((token, source)) = presentation::find_token(config, headers, query)? else {
        return Ok(None);
    };
    let mut result = validate(config, role, &token, source, audience);
    if let Err(Rejection::KeySet { issuer, reason }) = &result
        && reason.retryable()
        && let Some(set) = config
            .issuers
            .iter()
            .find(|candidate| &candidate.id == issuer)
            .and_then(|issuer| issuer.key_set(role))
        && set.refetch().await
    {
        result = validate(config, role, &token, source, audience);
    }
    result.map(Some).map_err(|rejection| {
        tracing::info!(?role, ?source, reason = %rejection, "access token refused");
        AuthError::InvalidToken
    })
}

/// Why a request was refused; [`AuthError::response`] renders it.
///
/// ```
/// use ssehub_server::auth::AuthError;
/// assert_eq!(AuthError::InvalidToken.to_string(), "invalid token");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The operation needs a token and none was presented.
    #[error("missing access token")]
    Missing,
    /// A token was presented and failed validation (whatever the reason).
    #[error("invalid token")]
    InvalidToken,
    /// A valid token that does not grant the operation.
    #[error("insufficient scope")]
    InsufficientScope,
    /// A malformed token presentation: an `Authorization` header that is
    /// not `Bearer <token>`, or a cookie-authenticated `POST` without an
    /// allowed `Origin` or `Referer` ([`check_csrf`]).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl AuthError {
    /// The HTTP status of the response.
    ///
    /// ```
    /// use ssehub_server::auth::AuthError;
    /// assert_eq!(AuthError::InsufficientScope.status(), http::StatusCode::FORBIDDEN);
    /// ```
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Missing | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The [RFC 6750] response: `Missing` → 401 with a bare `Bearer`
    /// challenge; `InvalidToken` → 401 `error="invalid_token"`;
    /// `InsufficientScope` → 403 `error="insufficient_scope"`;
    /// `InvalidRequest` → 400 `error="invalid_request"`. Every challenge
    /// names `resource_metadata` (the URL of the hub's protected resource
    /// metadata for this request; omitted when empty). The body is a short
    /// `text/plain` reason that never says why a token failed.
    ///
    /// [RFC 6750]: https://www.rfc-editor.org/rfc/rfc6750#section-3
    ///
    /// ```
    /// use ssehub_server::auth::AuthError;
    /// let response = AuthError::InvalidToken.response("https://hub.example/.well-known/oauth-protected-resource/.well-known/mercure");
    /// assert_eq!(response.status(), 401);
    /// assert_eq!(
    ///     response.headers()["www-authenticate"],
    ///     r#"Bearer error="invalid_token", resource_metadata="https://hub.example/.well-known/oauth-protected-resource/.well-known/mercure""#
    /// );
    /// assert_eq!(AuthError::Missing.response("").headers()["www-authenticate"], "Bearer");
    /// ```
    pub fn response(&self, resource_metadata: &str) -> Response {
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, self.challenge(resource_metadata));
        response
    }

    fn challenge(&self, resource_metadata: &str) -> HeaderValue {
        let error = match self {
            Self::Missing => None,
            Self::InvalidToken => Some("invalid_token"),
            Self::InsufficientScope => Some("insufficient_scope"),
            Self::InvalidRequest(_) => Some("invalid_request"),
        };
        let mut params = Vec::new();
        if let Some(error) = error {
            params.push(format!("error=\"{error}\""));
        }
        if !resource_metadata.is_empty() {
            // A quoted-string: backslash-escape the two characters it
            // cannot hold.
            let quoted = resource_metadata.replace('\\', "\\\\").replace('"', "\\\"");
            params.push(format!("resource_metadata=\"{quoted}\""));
        }
        let value = match params.is_empty() {
            true => "Bearer".to_owned(),
            false => format!("Bearer {}", params.join(", ")),
        };
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}
