//! Minting access tokens, for development mode and tests: production
//! tokens come from the application or an authorization server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};

use super::config::DETAIL_TYPE;
use super::keys::{self, KeyError};

/// Mints a signed access token: header `typ: at+jwt` and `alg`, `claims` as
/// the payload.
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

/// The claims the reference hub's `mercure token` command puts in a token:
/// `iss`, `aud` (one string, or an array for several audiences), a random
/// `urn:uuid:` `sub` and `jti`, `client_id` = `iss`, `iat` now, `exp` in
/// `ttl`, and one Mercure authorization detail per action (`"publish"`,
/// `"subscribe"`) on every topic (`*`).
///
/// ```
/// use std::time::Duration;
/// let claims = ssehub_server::auth::token_claims("https://app.example", &["https://hub.example/.well-known/mercure"], &["publish", "subscribe"], Duration::from_secs(3600));
/// assert_eq!(claims["aud"], "https://hub.example/.well-known/mercure");
/// assert_eq!(claims["client_id"], "https://app.example");
/// assert_eq!(claims["authorization_details"][1]["actions"][0], "subscribe");
/// assert_eq!(claims["authorization_details"][0]["topics"][0]["match"], "*");
/// assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());
/// ```
pub fn token_claims(issuer: &str, audiences: &[&str], actions: &[&str], ttl: Duration) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let aud = match audiences {
        [one] => json!(one),
        many => json!(many),
    };
    let details: Vec<Value> = actions
        .iter()
        .map(|action| {
            json!({
                "type": DETAIL_TYPE,
                "actions": [action],
                "topics": [{"match": "*"}],
            })
        })
        .collect();
    json!({
        "iss": issuer,
        "aud": aud,
        "sub": uuid::Uuid::new_v4().urn().to_string(),
        "client_id": issuer,
        "iat": now,
        "exp": now.saturating_add(ttl.as_secs().max(1)),
        "jti": uuid::Uuid::new_v4().urn().to_string(),
        "authorization_details": details,
    })
}
