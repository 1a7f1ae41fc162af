//! Where a request carries its token, and the CSRF check for cookies.

use http::{HeaderMap, header};
use url::Url;

use super::{AuthConfig, AuthError, TokenSource};

const QUERY_PARAM: &str = "access_token";

/// The token that counts: header, else query parameter, else cookie.
pub(super) fn find_token(
    config: &AuthConfig,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<(String, TokenSource)>, AuthError> {
    if let Some(token) = bearer(headers)? {
        return Ok(Some((token, TokenSource::Header)));
    }
    let query = query.filter(|_| config.query_token);
    if let Some(token) = query.map(query_token).transpose()?.flatten() {
        return Ok(Some((token, TokenSource::Query)));
    }
    Ok(cookie(headers, &config.cookie_name).map(|token| (token, TokenSource::Cookie)))
}

/// `Authorization: Bearer <token>` (RFC 6750 §2.1). Any other shape of the
/// header is a malformed request, not an absent token.
fn bearer(headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    let malformed = |why: &str| AuthError::InvalidRequest(why.to_owned());
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(malformed("more than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| malformed("Authorization header is not ASCII"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| malformed("Authorization header is not \"Bearer <token>\""))?;
    // The scheme is case-insensitive (RFC 9110 §11.1); `1*SP` may follow.
    let token = token.trim_start_matches(' ');
    if !scheme.eq_ignore_ascii_case("Bearer") || !is_b64token(token) {
        return Err(malformed("Authorization header is not \"Bearer <token>\""));
    }
    Ok(Some(token.to_owned()))
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The `access_token` parameter; empty counts as absent, repeated is
/// ambiguous and refused.
fn query_token(query: &str) -> Result<Option<String>, AuthError> {
    let mut values = form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == QUERY_PARAM)
        .map(|(_, value)| value);
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest(
            "more than one access_token query parameter".into(),
        ));
    }
    Ok(first.filter(|value| !value.is_empty()).map(Into::into))
}

/// The first cookie named `name` across all `Cookie` headers (HTTP/2 may
/// split them); empty counts as absent.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie_name, _)| cookie_name.trim() == name)
        .map(|(_, value)| unquote(value.trim()).to_owned())
        .filter(|value| !value.is_empty())
}

/// RFC 6265 allows a cookie value in double quotes.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|value| value.strip_suffix('"'))
        .unwrap_or(value)
}

/// CSRF defence for state-changing requests authenticated by cookie (spec
/// "Security Considerations"): the `Origin` header, or failing that the
/// origin of `Referer`, must be the hub's own origin (from
/// [`AuthConfig::base`]) or one of `allowed_origins` (e.g.
/// `https://app.example`; compared as origins, so case and default ports do
/// not matter). With neither header the request is refused, and so is an
/// opaque origin (`Origin: null`).
///
/// Call it when [`super::Grants::source`] is [`TokenSource::Cookie`] on
/// `POST` and other unsafe methods.
///
/// # Errors
/// [`AuthError::CrossOrigin`] (403, no `WWW-Authenticate`): the token is
/// fine, the request's origin is not.
///
/// ```
/// use http::{header, HeaderMap};
/// use ssehub_server::auth::{check_csrf, AuthConfig};
/// let config = AuthConfig::new(url::Url::parse("https://hub.example/.well-known/mercure").unwrap(), "urn:hub");
/// let allowed = vec!["https://app.example".to_owned()];
///
/// let mut headers = HeaderMap::new();
/// headers.insert(header::ORIGIN, "https://app.example".parse().unwrap());
/// assert!(check_csrf(&headers, &config, &allowed).is_ok());
/// headers.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
/// assert!(check_csrf(&headers, &config, &allowed).is_err());
/// assert!(check_csrf(&HeaderMap::new(), &config, &allowed).is_err());
/// ```
pub fn check_csrf(
    headers: &HeaderMap,
    config: &AuthConfig,
    allowed_origins: &[String],
) -> Result<(), AuthError> {
    let origin = request_origin(headers)?;
    let allowed = origin == config.base.origin().ascii_serialization()
        || allowed_origins
            .iter()
            .any(|allowed| origin_of(allowed).as_deref() == Some(origin.as_str()));
    if allowed {
        Ok(())
    } else {
        Err(AuthError::CrossOrigin(format!(
            "origin {origin} is not allowed"
        )))
    }
}

/// The serialized origin the request comes from.
fn request_origin(headers: &HeaderMap) -> Result<String, AuthError> {
    let refuse = |why: &str| AuthError::CrossOrigin(why.to_owned());
    let (name, value) = match headers.get(header::ORIGIN) {
        Some(origin) => ("Origin", origin),
        None => match headers.get(header::REFERER) {
            Some(referer) => ("Referer", referer),
            None => return Err(refuse("neither Origin nor Referer header")),
        },
    };
    value
        .to_str()
        .ok()
        .and_then(origin_of)
        .ok_or_else(|| refuse(&format!("no usable origin in the {name} header")))
}

/// `scheme://host[:port]` of a URL, or `None` for opaque origins.
fn origin_of(url: &str) -> Option<String> {
    let origin = Url::parse(url.trim()).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}
