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

mod config;
mod details;
mod error;
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

use http::HeaderMap;

pub use config::{
    AuthConfig, DEFAULT_COOKIE_NAME, DETAIL_TYPE, DEV_COOKIE_NAME, Issuer, LEGACY_COOKIE_NAME,
    Role, TokenSource,
};
pub use details::DetailError;
pub use error::AuthError;
pub use grants::Grants;
pub use jsonwebtoken::Algorithm;
pub use jwks::{
    JWKS_ALGORITHMS, Jwks, JwksError, JwksOptions, JwksSource, JwksSourceError, KeySetRejection,
    cache_lifetime, refresh_loop,
};
pub use keys::{KeyConfig, KeyError, PemError};
pub use mint::{mint, token_claims};
pub use presentation::check_csrf;
pub use token::Rejection;

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
    if let Some(grants) = verified_bearer(config, role, headers, audience) {
        return Ok(Some(grants));
    }
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

/// The grants of the request's bearer token if it was verified already:
/// the token a request presents in its header is the one
/// [`presentation::find_token`] takes, whatever else it carries, and a
/// verified token passed that function's checks.
fn verified_bearer(
    config: &AuthConfig,
    role: Role,
    headers: &HeaderMap,
    audience: &str,
) -> Option<Grants> {
    let token = presentation::bearer_unchecked(headers)?;
    verified::get(config, role, token, TokenSource::Header, audience)
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
    if let Some(grants) = verified::get(config, role, token.as_bytes(), source, audience) {
        return Ok(grants);
    }
    let epoch = verified::epoch();
    let grants = token::validate(config, role, token, source, audience)?;
    verified::put(config, role, (token, source), audience, epoch, &grants);
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
        .map(|(token, _)| token.into_owned())
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
    if let Some(grants) = verified_bearer(config, role, headers, audience) {
        return Ok(Some(grants));
    }
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
