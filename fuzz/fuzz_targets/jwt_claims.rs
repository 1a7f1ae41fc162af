//! Fuzzes the claim checks behind a valid signature: the input's claims
//! bytes are signed with the hub's HS256 key (header `typ: at+jwt`), so
//! every token gets past the signature to `exp`, `nbf`, `aud`, `iss`,
//! `authorization_details` and, in compatibility mode, the legacy
//! `mercure` claim.
//!
//! Invariants:
//!
//! * no panic, and a signed token is either accepted or `invalid_token`:
//!   never anonymous, never `invalid_request`;
//! * an accepted token's claims are a JSON object that satisfies the
//!   registered-claim rules: outside compatibility mode `iss` is the
//!   trusted issuer, `exp` a NumericDate in the future and `aud` names the
//!   hub; an `exp` that is there is always in the future;
//! * its subject and expiry are the token's `sub` and `exp`;
//! * every exact subscribe matcher it grants lets its holder subscribe to
//!   that topic;
//! * the same token gives the same answer twice.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, header};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use ssehub_server::auth::{
    AuthConfig, AuthError, DEFAULT_COOKIE_NAME, Issuer, KeyConfig, Role, authenticate,
};
use ssehub_server::matcher::MatchType;
use url::Url;

/// The input, as text a seed can be written in: a line of flags (`c`
/// compatibility mode, `p` the publisher role, `k` the token in the cookie
/// rather than the header), then the claims (the rest, any bytes).
#[derive(Debug)]
struct Input<'a> {
    compat: bool,
    publisher: bool,
    in_cookie: bool,
    claims: &'a [u8],
}

impl<'a> Input<'a> {
    fn read(bytes: &'a [u8]) -> Self {
        let (flags, claims) = match bytes.iter().position(|&b| b == b'\n') {
            Some(end) => (&bytes[..end], &bytes[end + 1..]),
            None => (&[][..], bytes),
        };
        Self {
            compat: flags.contains(&b'c'),
            publisher: flags.contains(&b'p'),
            in_cookie: flags.contains(&b'k'),
            claims,
        }
    }
}

const SECRET: &str = "a-secret-of-at-least-32-bytes-!!";
const ISSUER: &str = "https://app.example";
const AUDIENCE: &str = "https://hub.example/.well-known/mercure";

fuzz_target!(|bytes: &[u8]| {
    let input = Input::read(bytes);
    let base = Url::parse(AUDIENCE).unwrap();
    let mut config = AuthConfig::new(base);
    config.compat = input.compat;
    let key = KeyConfig::new(Algorithm::HS256, SECRET).unwrap();
    config
        .issuers
        .push(Issuer::new(ISSUER).publisher(key.clone()).subscriber(key));
    let role = if input.publisher {
        Role::Publisher
    } else {
        Role::Subscriber
    };

    let token = sign(input.claims);
    let mut headers = HeaderMap::new();
    if input.in_cookie {
        let cookie = format!("{DEFAULT_COOKIE_NAME}={token}");
        headers.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
    } else {
        let bearer = format!("Bearer {token}");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&bearer).unwrap(),
        );
    }

    let result = authenticate(&config, role, &headers, None, AUDIENCE);
    let again = authenticate(&config, role, &headers, None, AUDIENCE);
    assert_eq!(
        result.as_ref().map(|g| g
            .as_ref()
            .map(|g| (g.subject().map(str::to_owned), g.expires_at()))),
        again.as_ref().map(|g| g
            .as_ref()
            .map(|g| (g.subject().map(str::to_owned), g.expires_at()))),
        "the same token, two answers"
    );
    let grants = match result {
        Ok(Some(grants)) => grants,
        Ok(None) => panic!("a presented token counted as none"),
        Err(AuthError::InvalidToken) => return,
        Err(other) => panic!("a well-presented token was refused with {other:?}"),
    };

    let claims: Value = serde_json::from_slice(input.claims).expect("accepted claims are JSON");
    let claims = claims.as_object().expect("accepted claims are an object");
    let now = SystemTime::now();
    let exp = claims.get("exp").map(|exp| {
        let secs = exp.as_f64().expect("exp is a number");
        UNIX_EPOCH + Duration::from_secs_f64(secs)
    });
    if let Some(exp) = exp {
        assert!(exp > now, "an expired token was accepted");
    }
    if !input.compat {
        assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISSUER));
        assert!(exp.is_some(), "no exp outside compatibility mode");
        let aud = claims.get("aud").expect("aud outside compatibility mode");
        let names = aud.as_str() == Some(AUDIENCE)
            || aud
                .as_array()
                .is_some_and(|all| all.iter().any(|a| a.as_str() == Some(AUDIENCE)));
        assert!(names, "aud {aud} does not name the hub");
    }
    assert_eq!(grants.subject(), claims.get("sub").and_then(Value::as_str));
    if let Some(exact) = claims.get("exp").and_then(Value::as_u64) {
        assert_eq!(
            grants.expires_at(),
            Some(UNIX_EPOCH + Duration::from_secs(exact))
        );
    }
    for matcher in grants.subscribe_matchers() {
        if matcher.kind() == MatchType::Exact || matcher.is_wildcard() {
            assert!(grants.can_subscribe(matcher.pattern()), "{matcher:?}");
        }
    }
});

/// A compact JWS over `claims` (whatever bytes they are) with the hub's key.
fn sign(claims: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"at+jwt"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims);
    let message = format!("{header}.{payload}");
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256)
        .expect("HS256 signs any message");
    format!("{message}.{signature}")
}
