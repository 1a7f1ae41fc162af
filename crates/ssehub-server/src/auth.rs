//! Access tokens: which of a request's tokens counts, its validation, and
//! what it grants.
//!
//! The hub is an OAuth 2.0 protected resource. A client presents a JWT access
//! token ([RFC 9068]) in the `Authorization: Bearer` header, the
//! `access_token` query parameter or a cookie; [`authenticate`] picks one by
//! the protocol's precedence, validates it with the key of the endpoint's
//! [`Role`] and turns its `mercure` authorization details ([RFC 9396]) into
//! [`Grants`]. Failures map to the [RFC 6750] error responses of
//! [`AuthError::response`]; why a token was refused is only logged (at
//! `debug`), never told to the client.
//!
//! ```
//! use std::time::Duration;
//! use ssehub_server::auth::{self, Algorithm, AuthConfig, KeyConfig, Role};
//!
//! let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
//! let mut config = AuthConfig::new(base, "https://hub.example/.well-known/mercure");
//! config.publisher = Some(KeyConfig::new(Algorithm::HS256, "a-secret-of-at-least-32-bytes-!!").unwrap());
//!
//! let claims = auth::dev_claims(&config.audience, &["publish"], Duration::from_secs(60));
//! let token = auth::mint(Algorithm::HS256, "a-secret-of-at-least-32-bytes-!!", &claims).unwrap();
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
//! let grants = auth::authenticate(&config, Role::Publisher, &headers, None).unwrap().unwrap();
//! assert!(grants.can_publish("https://example.com/books/1"));
//! assert!(!grants.can_subscribe("https://example.com/books/1"));
//! ```
//!
//! [RFC 6750]: https://www.rfc-editor.org/rfc/rfc6750
//! [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068
//! [RFC 9396]: https://www.rfc-editor.org/rfc/rfc9396

mod grants;
mod keys;
mod legacy;
mod request;
#[cfg(test)]
mod tests;
mod token;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use url::Url;

use crate::topic::Limits;

pub use grants::Grants;
pub use jsonwebtoken::Algorithm;
pub use keys::{KeyConfig, KeyError};
pub use request::check_csrf;
pub use token::{dev_claims, mint};

/// The cookie name the protocol recommends.
///
/// ```
/// assert_eq!(ssehub_server::auth::DEFAULT_COOKIE_NAME, "mercureAccessToken");
/// ```
pub const DEFAULT_COOKIE_NAME: &str = "mercureAccessToken";

/// The default bound on the number of `mercure` authorization details in
/// one token.
///
/// ```
/// assert!(ssehub_server::auth::DEFAULT_MAX_DETAILS >= 1);
/// ```
pub const DEFAULT_MAX_DETAILS: usize = 32;

/// How the hub validates tokens and where it looks for them.
///
/// ```
/// use ssehub_server::auth::{Algorithm, AuthConfig, KeyConfig};
/// let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
/// let config = AuthConfig {
///     subscriber: Some(KeyConfig::new(Algorithm::HS256, "subscriber-secret-32-bytes-long!").unwrap()),
///     compat: true,
///     ..AuthConfig::new(base, "https://hub.example/.well-known/mercure")
/// };
/// assert!(config.publisher.is_none() && config.query_token);
/// ```
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Verifies publishers' tokens. `None`: publishing is refused (any
    /// presented token is an invalid token).
    pub publisher: Option<KeyConfig>,
    /// Verifies subscribers' tokens. `None`: only anonymous subscribing is
    /// possible (a presented token is an invalid token).
    pub subscriber: Option<KeyConfig>,
    /// The hub's resource identifier: it must equal the token's `aud` or be
    /// a member of the `aud` array.
    pub audience: String,
    /// When set, the token's `iss` must equal it.
    pub issuer: Option<String>,
    /// The name of the cookie that may carry the token.
    pub cookie_name: String,
    /// Whether the `access_token` query parameter is accepted.
    pub query_token: bool,
    /// Also accept the tokens of earlier Mercure drafts: `typ` `JWT` or
    /// absent, optional `aud` and `exp`, and the `mercure` claim (see
    /// [`authenticate`]).
    pub compat: bool,
    /// `max_matchers` bounds the `topics` of each authorization detail,
    /// `max_pattern_len` each pattern.
    pub limits: Limits,
    /// The most `mercure` authorization details a token may carry.
    pub max_details: usize,
    /// The hub's URL: the base of relative URL patterns and topics.
    pub base: Url,
    /// The URL of the hub's protected resource metadata, advertised in the
    /// `WWW-Authenticate` challenge of [`AuthError::Missing`].
    pub resource_metadata: String,
}

impl AuthConfig {
    /// A configuration with no keys and the defaults: the recommended cookie
    /// name, query tokens accepted, no compatibility mode, default limits,
    /// [`DEFAULT_MAX_DETAILS`], and the metadata URL that [RFC 9728] derives
    /// from `base`.
    ///
    /// [RFC 9728]: https://www.rfc-editor.org/rfc/rfc9728#section-3.1
    ///
    /// ```
    /// use ssehub_server::auth::AuthConfig;
    /// let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
    /// let config = AuthConfig::new(base, "urn:hub");
    /// assert_eq!(config.resource_metadata, "https://hub.example/.well-known/oauth-protected-resource/.well-known/mercure");
    /// ```
    pub fn new(base: Url, audience: impl Into<String>) -> Self {
        let mut metadata = base.clone();
        metadata.set_query(None);
        metadata.set_fragment(None);
        let path = match base.path() {
            "/" => String::new(),
            path => path.to_owned(),
        };
        metadata.set_path(&format!("/.well-known/oauth-protected-resource{path}"));
        Self {
            publisher: None,
            subscriber: None,
            audience: audience.into(),
            issuer: None,
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            query_token: true,
            compat: false,
            limits: Limits::default(),
            max_details: DEFAULT_MAX_DETAILS,
            base,
            resource_metadata: metadata.to_string(),
        }
    }

    /// The key that verifies tokens presented for `role`.
    ///
    /// ```
    /// use ssehub_server::auth::{AuthConfig, Role};
    /// let config = AuthConfig::new(url::Url::parse("https://hub.example/").unwrap(), "urn:hub");
    /// assert!(config.key(Role::Publisher).is_none());
    /// ```
    pub fn key(&self, role: Role) -> Option<&KeyConfig> {
        match role {
            Role::Publisher => self.publisher.as_ref(),
            Role::Subscriber => self.subscriber.as_ref(),
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
    /// `GET /.well-known/mercure` and the subscription API.
    Subscriber,
}

/// Where the token that counted came from.
///
/// ```
/// use ssehub_server::auth::TokenSource;
/// assert_eq!(TokenSource::Cookie, TokenSource::Cookie);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TokenSource {
    /// The `Authorization: Bearer` header.
    Header,
    /// The `access_token` query parameter.
    Query,
    /// The cookie named [`AuthConfig::cookie_name`]; state-changing requests
    /// authenticated this way need [`check_csrf`].
    Cookie,
}

/// Picks the request's token, validates it for `role` and parses its grants.
///
/// Precedence, highest first: the `Authorization: Bearer` header, the
/// `access_token` query parameter (when [`AuthConfig::query_token`]), the
/// cookie [`AuthConfig::cookie_name`]. Only the selected token is looked at.
/// An empty query parameter or cookie counts as absent (browsers keep empty
/// cookies after a logout). `query` is the raw query string, without `?`.
///
/// Validation ([RFC 9068], [RFC 8725]): header `typ` `at+jwt` (or
/// `application/at+jwt`, any case); `alg` exactly the role key's algorithm;
/// no `crit` header; a valid signature; `exp` present and in the future (no
/// leeway); `nbf`, if present, not in the future; `aud` containing
/// [`AuthConfig::audience`]; `iss` equal to [`AuthConfig::issuer`] when
/// configured; `sub`, if present, a non-empty string without control
/// characters. Then every `mercure` entry of `authorization_details` must be
/// well-formed and within the limits, or the whole token is refused.
///
/// With [`AuthConfig::compat`], a token whose `typ` is `JWT` or absent is
/// validated by the rules of earlier drafts: `aud` and `exp` are checked only
/// when present. A token that declares itself `at+jwt` keeps the strict
/// rules. In compat mode the `mercure` claim (`publish` and `subscribe`
/// lists of `*`, exact topics or URI templates such as
/// `https://example.com/books/{id}`, and a `payload`) is honoured too, in
/// addition to `authorization_details`.
///
/// [RFC 8725]: https://www.rfc-editor.org/rfc/rfc8725
/// [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068
///
/// # Errors
/// [`AuthError::InvalidRequest`] for a malformed `Authorization` header or a
/// repeated `access_token` parameter; [`AuthError::InvalidToken`] for any
/// token that fails validation, or any token when the role has no key.
///
/// ```
/// use ssehub_server::auth::{authenticate, AuthConfig, Role};
/// let config = AuthConfig::new(url::Url::parse("https://hub.example/.well-known/mercure").unwrap(), "urn:hub");
/// // No token at all: anonymous.
/// assert!(authenticate(&config, Role::Subscriber, &http::HeaderMap::new(), Some("match=a")).unwrap().is_none());
/// // A token but no subscriber key: refused.
/// assert!(authenticate(&config, Role::Subscriber, &http::HeaderMap::new(), Some("access_token=x.y.z")).is_err());
/// ```
pub fn authenticate(
    config: &AuthConfig,
    role: Role,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<Grants>, AuthError> {
    let Some((token, source)) = request::find_token(config, headers, query)? else {
        return Ok(None);
    };
    let refuse = |reason: &str| {
        tracing::debug!(?role, ?source, reason, "access token refused");
        AuthError::InvalidToken
    };
    let key = config
        .key(role)
        .ok_or_else(|| refuse("no key is configured for this role"))?;
    token::validate(config, key, &token, source)
        .map(Some)
        .map_err(|reason| refuse(&reason))
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
    /// A malformed request, e.g. an `Authorization` header that is not
    /// `Bearer <token>`.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A cookie-authenticated state-changing request from a foreign or
    /// unknown origin ([`check_csrf`]). Not a token problem, so its 403
    /// carries no `WWW-Authenticate` challenge.
    #[error("cross-origin request refused: {0}")]
    CrossOrigin(String),
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
            Self::InsufficientScope | Self::CrossOrigin(_) => StatusCode::FORBIDDEN,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The [RFC 6750] response: `Missing` → 401 with
    /// `WWW-Authenticate: Bearer resource_metadata="…"` and no error code;
    /// `InvalidToken` → 401 `Bearer error="invalid_token"`;
    /// `InsufficientScope` → 403 `Bearer error="insufficient_scope"`;
    /// `InvalidRequest` → 400 `Bearer error="invalid_request"`;
    /// `CrossOrigin` → 403 without a challenge. The body is a short
    /// `text/plain` reason.
    ///
    /// [RFC 6750]: https://www.rfc-editor.org/rfc/rfc6750#section-3
    ///
    /// ```
    /// use ssehub_server::auth::{AuthConfig, AuthError};
    /// let config = AuthConfig::new(url::Url::parse("https://hub.example/.well-known/mercure").unwrap(), "urn:hub");
    /// let response = AuthError::InvalidToken.response(&config);
    /// assert_eq!(response.status(), 401);
    /// assert_eq!(response.headers()["www-authenticate"], r#"Bearer error="invalid_token""#);
    /// ```
    pub fn response(&self, config: &AuthConfig) -> Response {
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response();
        if let Some(challenge) = self.challenge(config) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }

    fn challenge(&self, config: &AuthConfig) -> Option<HeaderValue> {
        let error = match self {
            Self::Missing => return Some(missing_challenge(&config.resource_metadata)),
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidRequest(_) => "invalid_request",
            Self::CrossOrigin(_) => return None,
        };
        Some(HeaderValue::from_str(&format!("Bearer error=\"{error}\"")).expect("ASCII"))
    }
}

/// `Bearer resource_metadata="<url>"`, or a bare `Bearer` when no usable URL
/// is configured.
fn missing_challenge(resource_metadata: &str) -> HeaderValue {
    let bare = HeaderValue::from_static("Bearer");
    if resource_metadata.is_empty() {
        return bare;
    }
    // A quoted-string: backslash-escape the two characters it cannot hold.
    let quoted = resource_metadata.replace('\\', "\\\\").replace('"', "\\\"");
    HeaderValue::from_str(&format!("Bearer resource_metadata=\"{quoted}\"")).unwrap_or(bare)
}
