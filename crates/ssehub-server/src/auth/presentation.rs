//! Where a request carries its token, and the CSRF check for cookies.

use std::borrow::Cow;

use http::{HeaderMap, header};
use url::Url;

use super::config::{AuthConfig, LEGACY_COOKIE_NAME, TokenSource};
use super::error::AuthError;

/// The query parameter Mercure 0.x clients put their token in
/// (compatibility mode only).
const LEGACY_QUERY_PARAM: &str = "authorization";

/// The shortest plausible compact JWS: anything shorter in the legacy query
/// parameter is not a token and is ignored, as 0.x hubs did.
const MIN_JWS_LEN: usize = 41;

/// The token that counts: the header, else (compat) the query parameter,
/// else the cookie (compat: or the legacy cookie).
pub(super) fn find_token<'a>(
    config: &AuthConfig,
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Result<Option<(Cow<'a, str>, TokenSource)>, AuthError> {
    if let Some(token) = bearer(headers)? {
        return Ok(Some((Cow::Borrowed(token), TokenSource::Header)));
    }
    if config.compat
        && let Some(token) = query.and_then(legacy_query_token)
    {
        return Ok(Some((Cow::Owned(token), TokenSource::Query)));
    }
    let cookie = cookie(headers, &config.cookie_name).or_else(|| {
        config
            .compat
            .then(|| cookie(headers, LEGACY_COOKIE_NAME))
            .flatten()
    });
    Ok(cookie.map(|token| (Cow::Borrowed(token), TokenSource::Cookie)))
}

/// The bytes after `Bearer` of the request's one `Authorization` header,
/// unchecked: what [`find_token`] would take from it if they are a
/// `b64token`. The verified tokens are looked up with these first, since
/// a token found there was checked when it was verified (the same bytes
/// give the same verdict), and a publisher's 500-byte token would
/// otherwise be checked again on every request.
pub(super) fn bearer_unchecked(headers: &HeaderMap) -> Option<&[u8]> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    split_bearer(value.as_bytes())
}

/// `Bearer`, `1*SP` and the rest, which is returned: the scheme is
/// case-insensitive (RFC 9110 §11.1).
fn split_bearer(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, token) = (&value[..space], &value[space + 1..]);
    let blanks = token.iter().take_while(|&&b| b == b' ').count();
    scheme
        .eq_ignore_ascii_case(b"Bearer")
        .then_some(&token[blanks..])
}

/// `Authorization: Bearer <token>` (RFC 6750 §2.1). Any other shape of the
/// header is a malformed request, not an absent token.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let malformed = |why: &str| AuthError::InvalidRequest(why.to_owned());
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(malformed("more than one Authorization header"));
    }
    let shape = || malformed("Authorization header is not \"Bearer <token>\"");
    let value = value.as_bytes();
    let token = split_bearer(value).filter(|token| is_b64token(token));
    let Some(token) = token else {
        return Err(if value.is_ascii() {
            shape()
        } else {
            malformed("Authorization header is not ASCII")
        });
    };
    // A b64token is ASCII: always UTF-8.
    Ok(std::str::from_utf8(token).ok())
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..token.len() - padding];
    // Every publish's token (hundreds of bytes) passes here: 32 bytes at a
    // time without an early exit, which the compiler turns into vector
    // compares, where a byte-by-byte `all` branches on each byte.
    let all = |bytes: &[u8]| bytes.iter().fold(true, |ok, &b| ok & is_b64token_byte(b));
    let mut chunks = body.chunks_exact(32);
    !body.is_empty() && chunks.by_ref().all(all) && all(chunks.remainder())
}

/// A byte of a `b64token` before its padding, in branch-free arithmetic.
fn is_b64token_byte(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter
        | digit
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// The legacy `authorization` parameter, when it appears exactly once and
/// is long enough to be a token; anything else is ignored.
fn legacy_query_token(query: &str) -> Option<String> {
    let mut values = form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == LEGACY_QUERY_PARAM)
        .map(|(_, value)| value);
    let first = values.next()?;
    (values.next().is_none() && first.len() >= MIN_JWS_LEN).then(|| first.into_owned())
}

/// The first cookie named `name` across all `Cookie` headers (HTTP/2 may
/// split them); empty counts as absent.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie_name, _)| cookie_name.trim() == name)
        .map(|(_, value)| unquote(value.trim()))
        .filter(|value| !value.is_empty())
}

/// RFC 6265 allows a cookie value in double quotes.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|value| value.strip_suffix('"'))
        .unwrap_or(value)
}

/// CSRF defence for a `POST` authenticated by cookie (the protocol's
/// security considerations): the `Origin` header, or failing that the
/// origin of `Referer`, must be `target` (the origin the request was sent
/// to) or one of `allowed` (e.g. `https://app.example`; compared as
/// origins, so case and default ports do not matter; `*` allows any). With
/// neither header, or an opaque origin (`Origin: null`), the request is
/// refused.
///
/// # Errors
/// [`AuthError::InvalidRequest`] (400 `invalid_request`), as the reference
/// hub answers: the token is not even looked at.
///
/// ```
/// use http::{header, HeaderMap};
/// use ssehub_server::auth::check_csrf;
/// let allowed = vec!["https://app.example".to_owned()];
///
/// let mut headers = HeaderMap::new();
/// headers.insert(header::ORIGIN, "https://app.example".parse().unwrap());
/// assert!(check_csrf(&headers, "https://hub.example", &allowed).is_ok());
/// headers.insert(header::ORIGIN, "https://HUB.example:443".parse().unwrap());
/// assert!(check_csrf(&headers, "https://hub.example", &allowed).is_ok());
/// headers.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
/// assert!(check_csrf(&headers, "https://hub.example", &allowed).is_err());
/// assert!(check_csrf(&HeaderMap::new(), "https://hub.example", &allowed).is_err());
/// ```
pub fn check_csrf(headers: &HeaderMap, target: &str, allowed: &[String]) -> Result<(), AuthError> {
    let origin = request_origin(headers)?;
    let same = |configured: &str| {
        configured == "*" || url_origin(configured).as_deref() == Some(origin.as_str())
    };
    if same(target) || allowed.iter().any(|allowed| same(allowed)) {
        Ok(())
    } else {
        Err(AuthError::InvalidRequest(format!(
            "origin {origin} may not publish with a cookie"
        )))
    }
}

/// The serialized origin the request comes from.
fn request_origin(headers: &HeaderMap) -> Result<String, AuthError> {
    let refuse = |why: &str| AuthError::InvalidRequest(why.to_owned());
    let (name, value) = match headers.get(header::ORIGIN) {
        Some(origin) => ("Origin", origin),
        None => match headers.get(header::REFERER) {
            Some(referer) => ("Referer", referer),
            None => {
                return Err(refuse(
                    "a cookie-authenticated POST needs an Origin or Referer header",
                ));
            }
        },
    };
    value
        .to_str()
        .ok()
        .and_then(url_origin)
        .ok_or_else(|| refuse(&format!("no usable origin in the {name} header")))
}

/// `scheme://host[:port]` of a URL, or `None` for opaque origins.
fn url_origin(url: &str) -> Option<String> {
    let origin = Url::parse(url.trim()).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64token_bytes_are_the_rfc_6750_set() {
        for b in 0..=u8::MAX {
            let spec =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_b64token_byte(b), spec, "byte {b:#04x}");
        }
    }

    #[test]
    fn b64tokens_are_checked_whole_at_every_length() {
        for token in ["a", "a=", "Ab9-._~+/==", "eyJ.eyJ.sig"] {
            assert!(is_b64token(token.as_bytes()), "{token}");
        }
        for token in ["", "=", "==", "a=b", "a b", "a,b", "é"] {
            assert!(!is_b64token(token.as_bytes()), "{token}");
        }
        // A bad byte anywhere: in a whole 32-byte chunk or in the remainder.
        for len in [1, 31, 32, 33, 64, 65, 100] {
            let good = vec![b'x'; len];
            assert!(is_b64token(&good));
            for at in 0..len {
                let mut bad = good.clone();
                bad[at] = b'"';
                assert!(!is_b64token(&bad), "len {len}, bad at {at}");
            }
        }
    }
}
