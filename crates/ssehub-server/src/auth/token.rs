//! JWT access token validation (RFC 9068, RFC 8725) and minting.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::grants::{self, Grants};
use super::keys::{self, KeyConfig, KeyError};
use super::{AuthConfig, TokenSource};
use crate::topic::has_control;

/// Which rules a token is held to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Profile {
    /// `typ: at+jwt`: the rules of the current protocol.
    AccessToken,
    /// `typ: JWT` or none, accepted in compat mode: earlier drafts' rules.
    Legacy,
}

/// The claims the hub reads. Wrong types fail deserialization, so a token
/// with e.g. a numeric `aud` or `sub` is refused rather than half-read.
#[derive(Deserialize)]
pub(super) struct Claims {
    sub: Option<String>,
    exp: Option<serde_json::Number>,
    aud: Option<Audience>,
    iss: Option<String>,
    pub(super) authorization_details: Option<Vec<Value>>,
    /// The claim of earlier drafts (compat mode only).
    pub(super) mercure: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|one| one == audience),
        }
    }
}

/// Validates `token` with `key` and parses its grants. The error is the
/// reason, for the debug log only.
pub(super) fn validate(
    config: &AuthConfig,
    key: &KeyConfig,
    token: &str,
    source: TokenSource,
) -> Result<Grants, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|err| format!("header: {err}"))?;
    let profile = profile(&header, config.compat)?;
    // Checks the algorithm allowlist before anything else, then the
    // signature, `exp` and `nbf`.
    let claims = jsonwebtoken::decode::<Claims>(token, key.decoding_key(), key.validation())
        .map_err(|err| err.to_string())?
        .claims;
    let expires_at = check_claims(&claims, config, profile)?;
    let details = grants::parse_details(&claims, config)?;
    Ok(Grants::new(config, details, claims.sub, expires_at, source))
}

fn profile(header: &Header, compat: bool) -> Result<Profile, String> {
    // RFC 7515 §4.1.11: extensions we do not understand must be refused,
    // and we understand none.
    if header.crit.is_some() {
        return Err("crit header parameter".into());
    }
    let typ = header.typ.as_deref();
    match typ {
        Some(typ) if is_media_type(typ, "at+jwt") => Ok(Profile::AccessToken),
        Some(typ) if compat && is_media_type(typ, "jwt") => Ok(Profile::Legacy),
        None if compat => Ok(Profile::Legacy),
        _ => Err(format!("typ {typ:?} is not at+jwt")),
    }
}

/// `name` or `application/name`, case-insensitively (RFC 7515 §4.1.9).
fn is_media_type(typ: &str, name: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    typ == name || typ.strip_prefix("application/") == Some(name)
}

/// The registered claims the JWT library leaves to us; returns `exp`.
fn check_claims(
    claims: &Claims,
    config: &AuthConfig,
    profile: Profile,
) -> Result<Option<SystemTime>, String> {
    let strict = profile == Profile::AccessToken;
    let expires_at = claims.exp.as_ref().map(numeric_date).transpose()?;
    match expires_at {
        None if strict => return Err("no exp".into()),
        // The library accepts `exp == now`; RFC 7519 says "before".
        Some(exp) if exp <= SystemTime::now() => return Err("expired".into()),
        _ => {}
    }
    match &claims.aud {
        None if strict => return Err("no aud".into()),
        Some(aud) if !aud.contains(&config.audience) => {
            return Err("aud does not name this hub".into());
        }
        _ => {}
    }
    if config
        .issuer
        .as_ref()
        .is_some_and(|issuer| claims.iss.as_ref() != Some(issuer))
    {
        return Err("iss is not the configured issuer".into());
    }
    // `sub` becomes the subscriber's identifier in topics and JSON.
    if claims
        .sub
        .as_deref()
        .is_some_and(|sub| sub.is_empty() || has_control(sub))
    {
        return Err("sub is empty or holds control characters".into());
    }
    Ok(expires_at)
}

/// A JSON NumericDate (seconds since the epoch, possibly fractional).
fn numeric_date(value: &serde_json::Number) -> Result<SystemTime, String> {
    let secs = match value.as_u64() {
        Some(secs) => Duration::from_secs(secs),
        None => value
            .as_f64()
            .filter(|secs| secs.is_finite() && *secs >= 0.0)
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or("exp is not a NumericDate")?,
    };
    UNIX_EPOCH
        .checked_add(secs)
        .ok_or_else(|| "exp out of range".into())
}

/// Mints a signed access token: header `typ: at+jwt` and `alg`, `claims` as
/// the payload. For dev mode and tests; production tokens come from the
/// application or an authorization server.
///
/// `material`: the HMAC secret, or a PKCS#8 PEM *private* key (inline or a
/// path) for the asymmetric algorithms.
///
/// # Errors
/// [`KeyError`] when the key cannot be loaded or does not suit `alg`.
///
/// ```
/// use ssehub_server::auth::{mint, Algorithm};
/// let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/ed25519-private.pem");
/// let token = mint(Algorithm::EdDSA, key, &serde_json::json!({"sub": "me"})).unwrap();
/// assert_eq!(token.split('.').count(), 3);
/// ```
pub fn mint(alg: Algorithm, material: &str, claims: &Value) -> Result<String, KeyError> {
    let key = keys::signing_key(alg, material)?;
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, claims, &key).map_err(|err| KeyError::Mismatch {
        alg,
        reason: err.to_string(),
    })
}

/// Claims granting `actions` (`"publish"`, `"subscribe"`) on every topic
/// (`*`) to holders for `audience`, issued now and expiring in `ttl`. Used by
/// dev mode to print ready-made tokens.
///
/// ```
/// use std::time::Duration;
/// let claims = ssehub_server::auth::dev_claims("urn:hub", &["publish", "subscribe"], Duration::from_secs(3600));
/// assert_eq!(claims["aud"], "urn:hub");
/// assert_eq!(claims["authorization_details"][0]["topics"][0]["match"], "*");
/// assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());
/// ```
pub fn dev_claims(audience: &str, actions: &[&str], ttl: Duration) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    json!({
        "aud": audience,
        "iat": now,
        "exp": now.saturating_add(ttl.as_secs().max(1)),
        "authorization_details": [{
            "type": "mercure",
            "actions": actions,
            "topics": [{"match": "*"}],
        }],
    })
}
