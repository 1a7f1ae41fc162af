//! JWT access token validation (RFC 9068, RFC 8725).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::Header;
use serde::Deserialize;
use serde_json::Value;

use super::config::{AuthConfig, Issuer, Role, TokenSource};
use super::details::{self, DetailError};
use super::grants::Grants;
use super::jwks::KeySetRejection;
use super::legacy;

/// Why a presented token was refused. Only logged: the client is told
/// `invalid_token`, whatever the reason.
///
/// ```
/// use ssehub_server::auth::Rejection;
/// assert_eq!(Rejection::NoExp.to_string(), "no exp claim");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// Not a compact JWS with a JSON header and payload.
    #[error("malformed token: {0}")]
    Malformed(jsonwebtoken::errors::Error),
    /// The payload is JSON but not an object.
    #[error("the claims are not a JSON object")]
    NotAnObject,
    /// A `crit` header: extensions must be understood, and none are.
    #[error("crit header parameter")]
    Crit,
    /// The header's `typ` is not `at+jwt`.
    #[error("typ {0:?} is not at+jwt")]
    Typ(Option<String>),
    /// `iss` names no trusted issuer.
    #[error("untrusted issuer {0:?}")]
    UntrustedIssuer(Option<String>),
    /// The issuer has no key for this role.
    #[error("issuer {issuer:?} has no {role:?} key")]
    NoKey {
        /// The issuer.
        issuer: String,
        /// The role the token was presented for.
        role: Role,
    },
    /// The issuer's key set did not verify it.
    #[error("key set of issuer {issuer:?}: {reason}")]
    KeySet {
        /// The issuer.
        issuer: String,
        /// Why.
        reason: KeySetRejection,
    },
    /// The signature, the algorithm (not the key's), `exp` or `nbf`.
    #[error("{0}")]
    Verification(jsonwebtoken::errors::Error),
    /// No `exp` claim (required outside compatibility mode).
    #[error("no exp claim")]
    NoExp,
    /// `exp` is not a NumericDate, or is not in the future.
    #[error("expired, or exp is not a NumericDate")]
    Expired,
    /// `aud` does not name this hub's resource identifier.
    #[error("aud does not name {0:?}")]
    Audience(String),
    /// The Mercure authorization details are unusable.
    #[error("authorization_details: {0}")]
    Details(#[from] DetailError),
    /// The legacy `mercure` claim is unusable (compatibility mode).
    #[error("mercure claim: {0}")]
    Legacy(DetailError),
}

/// The claims the hub reads. Registered claims of an unexpected JSON type
/// fail where they are checked instead of failing the whole decode, so
/// that an ignored claim (a 0.x `mercure` claim in modern mode, say) never
/// refuses a token.
#[derive(Deserialize)]
pub(super) struct Claims {
    sub: Option<Value>,
    exp: Option<Value>,
    aud: Option<Value>,
    pub(super) authorization_details: Option<Value>,
    /// The claim of Mercure 0.x (compatibility mode only).
    pub(super) mercure: Option<Value>,
    /// Its namespaced spelling, which wins when both are present.
    #[serde(rename = "https://mercure.rocks/")]
    pub(super) mercure_namespaced: Option<Value>,
}

/// Validates `token`, presented for `role`, for the hub whose resource
/// identifier is `audience`, and parses its grants.
pub(super) fn validate(
    config: &AuthConfig,
    role: Role,
    token: &str,
    source: TokenSource,
    audience: &str,
) -> Result<Grants, Rejection> {
    let header = jsonwebtoken::decode_header(token).map_err(Rejection::Malformed)?;
    check_header(&header, config.compat)?;
    // The whole payload is read as JSON, not just the claims the hub uses:
    // RFC 7519 §7.2 wants a valid JSON object in UTF-8, and the typed decode
    // below skips unknown claims without checking their strings. The
    // unverified `iss` only chooses among the configured issuers; it never
    // brings a key of its own.
    let unverified: Value =
        jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(Rejection::Malformed)?;
    if !unverified.is_object() {
        return Err(Rejection::NotAnObject);
    }
    let iss = unverified.get("iss").and_then(Value::as_str);
    let issuer = config
        .issuer(iss)
        .ok_or_else(|| Rejection::UntrustedIssuer(iss.map(str::to_owned)))?;
    let claims = verify(issuer, role, &header, token)?;
    let expires_at = check_registered(&claims, config.compat, audience)?;
    let (details, legacy_payload) = grants_of(&claims, config)?;
    let subject = claims
        .sub
        .as_ref()
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Grants::new(
        config,
        details,
        legacy_payload,
        subject,
        expires_at,
        source,
    ))
}

/// Verifies the signature, `alg`, `exp` and `nbf` with the issuer's key
/// set or static key for `role`. The set verifies a token whose `kid` it
/// holds, and any token when there is no static key; the static key
/// verifies the rest. A token the static key refuses whose `kid` the set
/// lacks is reported as an unknown `kid`, so that the set is fetched again.
fn verify(issuer: &Issuer, role: Role, header: &Header, token: &str) -> Result<Claims, Rejection> {
    let set = issuer.key_set(role);
    let key = issuer.key(role);
    let by_set = |set: &super::jwks::Jwks| {
        set.decode::<Claims>(header, token)
            .map_err(|reason| Rejection::KeySet {
                issuer: issuer.id.clone(),
                reason,
            })
    };
    if let Some(set) = set {
        let known = header.kid.as_deref().is_some_and(|kid| set.has_kid(kid));
        if known || key.is_none() {
            return by_set(set);
        }
    }
    let key = key.ok_or_else(|| Rejection::NoKey {
        issuer: issuer.id.clone(),
        role,
    })?;
    // Checks the algorithm allowlist before anything else, then the
    // signature, `exp` and `nbf`.
    match jsonwebtoken::decode::<Claims>(token, key.decoding_key(), key.validation()) {
        Ok(data) => Ok(data.claims),
        Err(err) => match (set, header.kid.as_deref()) {
            (Some(_), Some(kid)) => Err(Rejection::KeySet {
                issuer: issuer.id.clone(),
                reason: KeySetRejection::UnknownKid(kid.to_owned()),
            }),
            _ => Err(Rejection::Verification(err)),
        },
    }
}

fn check_header(header: &Header, compat: bool) -> Result<(), Rejection> {
    // RFC 7515 §4.1.11: extensions we do not understand must be refused,
    // and we understand none.
    if header.crit.is_some() {
        return Err(Rejection::Crit);
    }
    // Compatibility mode takes the tokens of 0.x, which had no `typ` rule.
    if compat {
        return Ok(());
    }
    match header.typ.as_deref() {
        Some(typ) if is_at_jwt(typ) => Ok(()),
        typ => Err(Rejection::Typ(typ.map(str::to_owned))),
    }
}

/// `at+jwt` or `application/at+jwt`, case-insensitively (RFC 7515 §4.1.9).
fn is_at_jwt(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    typ == "at+jwt" || typ == "application/at+jwt"
}

/// The registered claims the JWT library leaves to us; returns `exp`.
fn check_registered(
    claims: &Claims,
    compat: bool,
    audience: &str,
) -> Result<Option<SystemTime>, Rejection> {
    let expires_at = claims.exp.as_ref().map(numeric_date).transpose()?;
    match expires_at {
        None if !compat => return Err(Rejection::NoExp),
        // The library accepts `exp == now`; RFC 7519 says "before".
        Some(exp) if exp <= SystemTime::now() => return Err(Rejection::Expired),
        _ => {}
    }
    // Compatibility mode drops the audience check, as 0.x tokens had none.
    if !compat && !names(claims.aud.as_ref(), audience) {
        return Err(Rejection::Audience(audience.to_owned()));
    }
    Ok(expires_at)
}

/// Whether `aud` (a string or an array of strings) contains `audience`.
fn names(aud: Option<&Value>, audience: &str) -> bool {
    match aud {
        Some(Value::String(one)) => one == audience,
        Some(Value::Array(many)) => many.iter().any(|one| one.as_str() == Some(audience)),
        _ => false,
    }
}

/// A JSON NumericDate (seconds since the epoch, possibly fractional).
fn numeric_date(value: &Value) -> Result<SystemTime, Rejection> {
    let secs = match value.as_u64() {
        Some(secs) => Duration::from_secs(secs),
        None => value
            .as_f64()
            .filter(|secs| secs.is_finite() && *secs >= 0.0)
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or(Rejection::Expired)?,
    };
    UNIX_EPOCH.checked_add(secs).ok_or(Rejection::Expired)
}

/// The Mercure details; in compatibility mode, for a token that has none,
/// the legacy claim (and its token-wide payload).
fn grants_of(
    claims: &Claims,
    config: &AuthConfig,
) -> Result<(Vec<details::Detail>, Option<Value>), Rejection> {
    let details = match &claims.authorization_details {
        None => Vec::new(),
        Some(list) => details::parse(list, config)?,
    };
    // Like 0.x hubs after 1.0: a token with any authorization detail at
    // all, Mercure's or another resource's, is judged by those alone.
    let has_details = claims
        .authorization_details
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|list| !list.is_empty());
    if !config.compat || has_details {
        return Ok((details, None));
    }
    let claim = claims
        .mercure_namespaced
        .as_ref()
        .or(claims.mercure.as_ref());
    match claim {
        Some(claim) => legacy::parse(claim, config).map_err(Rejection::Legacy),
        None => Ok((details, None)),
    }
}
