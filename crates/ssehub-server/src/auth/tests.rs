//! Real signatures with the test-only keys of `tests/keys/`; no mocks.
//!
//! Tokens are built with `jsonwebtoken::encode` and the claims the
//! reference hub's `mercure token` command writes (header `{alg, typ:
//! "at+jwt"}`; `iss`, `aud`, a `urn:uuid` `sub`, `client_id` = `iss`, `iat`,
//! `exp`, a `urn:uuid` `jti`, one authorization detail per action), so that
//! what is tested is what real issuers send, not only what `auth::mint`
//! makes. Refusals are checked twice: the client only ever sees
//! `invalid_token`, and [`token::validate`](super::token::validate) says
//! why, so that a test cannot pass because the token failed for another
//! reason than the one it is about.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, StatusCode, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use url::Url;

use super::*;
use crate::matcher::{MatchType, Matcher};
use crate::topic::{Limits, TopicError};

const SECRET: &str = "test-only-secret-at-least-32-bytes";
const OTHER_SECRET: &str = "another-test-secret-of-32-bytes!!";
const RSA_PRIVATE: &str = include_str!("../../tests/keys/rsa-private.pem");
const RSA_PUBLIC: &str = include_str!("../../tests/keys/rsa-public.pem");
const RSA1024_PUBLIC: &str = include_str!("../../tests/keys/rsa1024-public.pem");
const EC_PRIVATE: &str = include_str!("../../tests/keys/ec256-private.pem");
const EC_PUBLIC: &str = include_str!("../../tests/keys/ec256-public.pem");
const ED_PRIVATE: &str = include_str!("../../tests/keys/ed25519-private.pem");
const ED_PUBLIC: &str = include_str!("../../tests/keys/ed25519-public.pem");

/// The hub's URL, and the resource identifier tokens are minted for.
const HUB: &str = "https://hub.example/.well-known/mercure";
const ISS: &str = "https://app.example";
const OTHER_ISS: &str = "https://other.example";
/// Spelled out rather than taken from [`DETAIL_TYPE`], so that a change to
/// the constant fails the tests.
const MERCURE: &str = "https://mercure.rocks/authorization-detail";

// --- Configurations ---

fn hmac_key(secret: &str) -> KeyConfig {
    KeyConfig::new(Algorithm::HS256, secret).unwrap()
}

/// An issuer whose tokens are verified with `key` for both roles.
fn issuer(id: &str, key: KeyConfig) -> Issuer {
    Issuer::new(id).publisher(key.clone()).subscriber(key)
}

fn config_with(issuers: Vec<Issuer>) -> AuthConfig {
    let mut config = AuthConfig::new(Url::parse(HUB).unwrap());
    config.issuers = issuers;
    config
}

/// Modern mode, one issuer `ISS` verifying HS256 with `SECRET`.
fn config() -> AuthConfig {
    config_with(vec![issuer(ISS, hmac_key(SECRET))])
}

fn compat() -> AuthConfig {
    AuthConfig {
        compat: true,
        ..config()
    }
}

/// `ISS` verifying with the public key `public` for `alg`.
fn with_key(alg: Algorithm, public: &str) -> AuthConfig {
    config_with(vec![issuer(ISS, KeyConfig::new(alg, public).unwrap())])
}

fn limited(max_matchers: usize, max_pattern_len: usize) -> AuthConfig {
    AuthConfig {
        limits: Limits {
            max_matchers,
            max_pattern_len,
            ..Limits::default()
        },
        ..config()
    }
}

// --- Tokens ---

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn urn() -> String {
    uuid::Uuid::new_v4().urn().to_string()
}

/// The claims `mercure token --iss {iss} --aud {HUB}` writes around
/// `details`.
fn reference_claims(iss: &str, details: Value) -> Value {
    let now = now();
    json!({
        "iss": iss,
        "aud": HUB,
        "sub": urn(),
        "client_id": iss,
        "iat": now,
        "exp": now + 3600,
        "jti": urn(),
        "authorization_details": details,
    })
}

fn claims(details: Value) -> Value {
    reference_claims(ISS, details)
}

fn detail(actions: &[&str], topics: Value) -> Value {
    json!({"type": MERCURE, "actions": actions, "topics": topics})
}

/// What `mercure token --publish '*' --subscribe '*'` grants: one detail
/// per action.
fn every_topic() -> Value {
    json!([
        detail(&["publish"], json!([{"match": "*"}])),
        detail(&["subscribe"], json!([{"match": "*"}])),
    ])
}

fn everything() -> Value {
    claims(every_topic())
}

fn header(alg: Algorithm, typ: Option<&str>) -> Header {
    let mut header = Header::new(alg);
    header.typ = typ.map(Into::into);
    header
}

fn hmac(secret: &str) -> EncodingKey {
    EncodingKey::from_secret(secret.as_bytes())
}

fn encode(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).unwrap()
}

/// HS256 with `secret` and the header `mercure token` writes.
fn hs256_with(secret: &str, claims: &Value) -> String {
    encode(
        &header(Algorithm::HS256, Some("at+jwt")),
        claims,
        &hmac(secret),
    )
}

fn hs256(claims: &Value) -> String {
    hs256_with(SECRET, claims)
}

/// Claims without `name`.
fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

// --- Presenting tokens ---

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    headers
}

fn cookie_header(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::COOKIE, value.parse().unwrap());
    headers
}

fn present(
    config: &AuthConfig,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<Grants>, AuthError> {
    authenticate(config, Role::Subscriber, headers, query, HUB)
}

fn accepted_as(config: &AuthConfig, role: Role, token: &str) -> Grants {
    match authenticate(config, role, &bearer(token), None, HUB) {
        Ok(Some(grants)) => grants,
        other => panic!(
            "refused ({other:?}) because {:?}",
            super::token::validate(config, role, token, TokenSource::Header, HUB).err()
        ),
    }
}

fn accepted(config: &AuthConfig, token: &str) -> Grants {
    accepted_as(config, Role::Subscriber, token)
}

/// Refused with `invalid_token`; returns why (what only the log sees).
fn refused_as(config: &AuthConfig, role: Role, token: &str) -> Rejection {
    let result = authenticate(config, role, &bearer(token), None, HUB);
    assert_eq!(result.unwrap_err(), AuthError::InvalidToken);
    super::token::validate(config, role, token, TokenSource::Header, HUB).unwrap_err()
}

fn refused(config: &AuthConfig, token: &str) -> Rejection {
    refused_as(config, Role::Subscriber, token)
}

/// The JWT library's reason, for rejections it made.
fn library(why: &Rejection) -> Option<&ErrorKind> {
    match why {
        Rejection::Verification(err) | Rejection::Malformed(err) => Some(err.kind()),
        _ => None,
    }
}

fn bad_signature(why: &Rejection) -> bool {
    matches!(library(why), Some(ErrorKind::InvalidSignature))
}

fn bad_algorithm(why: &Rejection) -> bool {
    matches!(library(why), Some(ErrorKind::InvalidAlgorithm))
}

fn expired(why: &Rejection) -> bool {
    matches!(why, Rejection::Expired) || matches!(library(why), Some(ErrorKind::ExpiredSignature))
}

/// The grants of a modern HS256 token carrying `details`.
fn grants_for(details: Value) -> Grants {
    accepted(&config(), &hs256(&claims(details)))
}

/// Why a modern token carrying `details` is refused: its details.
fn details_error(config: &AuthConfig, details: Value) -> DetailError {
    match refused(config, &hs256(&claims(details))) {
        Rejection::Details(err) => err,
        other => panic!("refused for another reason: {other:?}"),
    }
}

fn subscription(kind: MatchType, pattern: &str) -> Matcher {
    Matcher::new(kind, pattern, &Url::parse(HUB).unwrap(), &Limits::default()).unwrap()
}

// --- Algorithms and keys ---

#[test]
fn a_token_minted_like_mercure_token_grants_what_it_says() {
    let exp = now() + 600;
    let sub = urn();
    let token = hs256(&json!({
        "iss": ISS,
        "aud": HUB,
        "sub": sub,
        "client_id": ISS,
        "iat": now(),
        "exp": exp,
        "jti": urn(),
        "authorization_details": [
            {"type": MERCURE, "actions": ["publish"], "topics": [{"match": "https://example.com/books/1"}]},
            {
                "type": MERCURE,
                "actions": ["subscribe"],
                "topics": [
                    {"match": "https://example.com/users/42/notifications"},
                    {"match": "https://example.com/books/:id", "match_type": "urlpattern"},
                ],
                "payload": {"user": "https://example.com/users/42"},
            },
        ],
    }));
    for role in [Role::Publisher, Role::Subscriber] {
        let grants = accepted_as(&config(), role, &token);
        assert_eq!(grants.subject(), Some(sub.as_str()));
        assert_eq!(grants.source(), TokenSource::Header);
        assert_eq!(
            grants.expires_at(),
            Some(UNIX_EPOCH + Duration::from_secs(exp))
        );
        assert!(grants.can_publish("https://example.com/books/1"));
        assert!(!grants.can_publish("https://example.com/books/2"));
        assert!(grants.can_subscribe("https://example.com/books/2"));
        assert!(grants.can_subscribe("https://example.com/users/42/notifications"));
        assert!(!grants.can_subscribe("https://example.com/users/43/notifications"));
    }
}

#[test]
fn hmac_algorithms_verify_real_signatures() {
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let config = config_with(vec![issuer(ISS, KeyConfig::new(alg, SECRET).unwrap())]);
        let token = encode(&header(alg, Some("at+jwt")), &everything(), &hmac(SECRET));
        assert!(accepted(&config, &token).can_subscribe("x"), "{alg:?}");
        let forged = encode(
            &header(alg, Some("at+jwt")),
            &everything(),
            &hmac(OTHER_SECRET),
        );
        assert!(bad_signature(&refused(&config, &forged)), "{alg:?}");
    }
}

#[test]
fn asymmetric_algorithms_verify_real_signatures() {
    let rsa = || EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    for (alg, private, public) in [
        (Algorithm::RS256, rsa(), RSA_PUBLIC),
        (Algorithm::RS384, rsa(), RSA_PUBLIC),
        (Algorithm::RS512, rsa(), RSA_PUBLIC),
        (Algorithm::PS256, rsa(), RSA_PUBLIC),
        (Algorithm::PS384, rsa(), RSA_PUBLIC),
        (Algorithm::PS512, rsa(), RSA_PUBLIC),
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
            EC_PUBLIC,
        ),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
            ED_PUBLIC,
        ),
    ] {
        let keyed = with_key(alg, public);
        let token = encode(&header(alg, Some("at+jwt")), &everything(), &private);
        let grants = accepted_as(&keyed, Role::Publisher, &token);
        assert!(grants.can_publish("x"), "{alg:?}");
        // A signature over other claims: the signature really is checked.
        let other = encode(&header(alg, Some("at+jwt")), &claims(json!([])), &private);
        let (head, _) = token.rsplit_once('.').unwrap();
        let (_, signature) = other.rsplit_once('.').unwrap();
        let spliced = format!("{head}.{signature}");
        assert!(bad_signature(&refused(&keyed, &spliced)), "{alg:?}");
        // The same token against the HMAC issuer: not its algorithm.
        assert!(bad_algorithm(&refused(&config(), &token)), "{alg:?}");
    }
}

#[test]
fn keys_load_from_files_and_mint_signs_with_private_keys() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
    for (alg, private, public) in [
        (Algorithm::RS256, "rsa-private.pem", "rsa-public.pem"),
        (Algorithm::ES256, "ec256-private.pem", "ec256-public.pem"),
        (
            Algorithm::EdDSA,
            "ed25519-private.pem",
            "ed25519-public.pem",
        ),
    ] {
        let token = mint(alg, &format!("{dir}/{private}"), &everything()).unwrap();
        let config = with_key(alg, &format!("{dir}/{public}"));
        assert!(accepted(&config, &token).can_subscribe("x"), "{alg:?}");
    }
}

#[test]
fn garbage_and_tampered_tokens_are_refused() {
    let token = hs256(&everything());
    let (head, signature) = token.rsplit_once('.').unwrap();
    let flipped = match signature.as_bytes()[0] {
        b'A' => 'B',
        _ => 'A',
    };
    let tampered = format!("{head}.{flipped}{}", &signature[1..]);
    assert!(bad_signature(&refused(&config(), &tampered)));
    // The payload of another token under this token's signature.
    let other = hs256(&claims(json!([detail(
        &["publish"],
        json!([{"match": "a"}])
    )])));
    let payload = other.split('.').nth(1).unwrap();
    let header = token.split('.').next().unwrap();
    assert!(bad_signature(&refused(
        &config(),
        &format!("{header}.{payload}.{signature}")
    )));
    for garbage in ["not-a-jwt", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30"] {
        assert!(
            matches!(refused(&config(), garbage), Rejection::Malformed(_)),
            "{garbage}"
        );
    }
}

#[test]
fn alg_none_is_refused() {
    let payload = hs256(&everything()).split('.').nth(1).unwrap().to_owned();
    // {"alg":"none","typ":"at+jwt"}, with and without a signature.
    for token in [
        format!("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{payload}."),
        format!("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{payload}.c2ln"),
    ] {
        assert!(
            matches!(refused(&config(), &token), Rejection::Malformed(_)),
            "{token}"
        );
        // Compatibility mode drops typ, never the signature.
        refused(&compat(), &token);
    }
}

#[test]
fn only_the_algorithm_of_the_issuers_key_is_accepted() {
    // Algorithm confusion: the RSA public key used as an HMAC secret.
    let confused = encode(
        &header(Algorithm::HS256, Some("at+jwt")),
        &everything(),
        &hmac(RSA_PUBLIC),
    );
    assert!(bad_algorithm(&refused(
        &with_key(Algorithm::RS256, RSA_PUBLIC),
        &confused
    )));
    let confused = encode(
        &header(Algorithm::HS256, Some("at+jwt")),
        &everything(),
        &hmac(ED_PUBLIC),
    );
    assert!(bad_algorithm(&refused(
        &with_key(Algorithm::EdDSA, ED_PUBLIC),
        &confused
    )));
    // …and the hub refuses to be configured that way.
    assert!(matches!(
        KeyConfig::new(Algorithm::HS256, RSA_PUBLIC),
        Err(KeyError::PemAsSecret)
    ));
    // The same secret under a sibling algorithm is still the wrong one.
    let hs512 = encode(
        &header(Algorithm::HS512, Some("at+jwt")),
        &everything(),
        &hmac(SECRET),
    );
    assert!(bad_algorithm(&refused(&config(), &hs512)));
    // The same RSA key with another padding.
    let rs256 = encode(
        &header(Algorithm::RS256, Some("at+jwt")),
        &everything(),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    );
    assert!(bad_algorithm(&refused(
        &with_key(Algorithm::PS256, RSA_PUBLIC),
        &rs256
    )));
}

#[test]
fn weak_rsa_keys_are_refused() {
    for alg in [Algorithm::RS256, Algorithm::PS512] {
        assert!(
            matches!(
                KeyConfig::new(alg, RSA1024_PUBLIC),
                Err(KeyError::WeakKey { bits: 1024 })
            ),
            "{alg:?}"
        );
    }
    assert!(KeyConfig::new(Algorithm::RS256, RSA_PUBLIC).is_ok());
}

#[test]
fn bad_keys_are_reported() {
    assert!(matches!(
        KeyConfig::new(Algorithm::HS256, ""),
        Err(KeyError::EmptySecret)
    ));
    assert!(matches!(
        KeyConfig::new(Algorithm::RS256, "/no/such/key.pem"),
        Err(KeyError::Read { .. })
    ));
    // A private key where a public one is expected.
    assert!(matches!(
        KeyConfig::new(Algorithm::RS256, RSA_PRIVATE),
        Err(KeyError::Pem(_))
    ));
    for (alg, public) in [
        (Algorithm::RS256, EC_PUBLIC),
        (Algorithm::ES256, RSA_PUBLIC),
        (Algorithm::ES384, EC_PUBLIC),
        (Algorithm::EdDSA, EC_PUBLIC),
        (
            Algorithm::RS256,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        ),
    ] {
        assert!(
            matches!(KeyConfig::new(alg, public), Err(KeyError::Mismatch { .. })),
            "{alg:?}"
        );
    }
    // Signing needs the private key, of the right curve.
    assert!(matches!(
        mint(Algorithm::ES256, EC_PUBLIC, &json!({})),
        Err(KeyError::Pem(_))
    ));
    assert!(matches!(
        mint(Algorithm::ES384, EC_PRIVATE, &json!({})),
        Err(KeyError::Mismatch { .. })
    ));
    // Debug never shows key material.
    let debug = format!("{:?}", hmac_key(SECRET));
    assert!(!debug.contains(SECRET), "{debug}");
}

#[test]
fn each_role_is_verified_with_its_own_key() {
    let config = config_with(vec![
        Issuer::new(ISS)
            .publisher(hmac_key(SECRET))
            .subscriber(hmac_key(OTHER_SECRET)),
    ]);
    let publisher = hs256(&everything());
    accepted_as(&config, Role::Publisher, &publisher);
    assert!(bad_signature(&refused_as(
        &config,
        Role::Subscriber,
        &publisher
    )));
    let subscriber = hs256_with(OTHER_SECRET, &everything());
    accepted_as(&config, Role::Subscriber, &subscriber);
    assert!(bad_signature(&refused_as(
        &config,
        Role::Publisher,
        &subscriber
    )));

    // An issuer without a key for a role issues no token for it.
    let subscribe_only = config_with(vec![Issuer::new(ISS).subscriber(hmac_key(SECRET))]);
    assert!(subscribe_only.verifies(Role::Subscriber));
    assert!(!subscribe_only.verifies(Role::Publisher));
    accepted_as(&subscribe_only, Role::Subscriber, &publisher);
    assert!(matches!(
        refused_as(&subscribe_only, Role::Publisher, &publisher),
        Rejection::NoKey {
            role: Role::Publisher,
            ..
        }
    ));
    // No token at all is still no token.
    let anonymous = authenticate(
        &subscribe_only,
        Role::Publisher,
        &HeaderMap::new(),
        None,
        HUB,
    );
    assert!(anonymous.unwrap().is_none());
}

// --- Header ---

#[test]
fn typ_must_be_at_jwt_in_modern_mode() {
    let token =
        |typ: Option<&str>| encode(&header(Algorithm::HS256, typ), &everything(), &hmac(SECRET));
    for typ in [
        "at+jwt",
        "AT+JWT",
        "At+Jwt",
        "application/at+jwt",
        "APPLICATION/AT+JWT",
        "Application/at+JWT",
    ] {
        accepted(&config(), &token(Some(typ)));
    }
    for typ in [
        None,
        Some("JWT"),
        Some("jwt"),
        Some(""),
        Some("JOSE"),
        Some("id_token+jwt"),
        Some("application/jwt"),
        Some("at+jwt "),
        Some("at+jwt;v=1"),
        Some("application/application/at+jwt"),
        Some("text/at+jwt"),
        Some("xat+jwt"),
    ] {
        assert!(
            matches!(refused(&config(), &token(typ)), Rejection::Typ(_)),
            "{typ:?}"
        );
    }
}

#[test]
fn compat_mode_takes_any_typ_or_none() {
    let token =
        |typ: Option<&str>| encode(&header(Algorithm::HS256, typ), &everything(), &hmac(SECRET));
    for typ in [
        None,
        Some("JWT"),
        Some("at+jwt"),
        Some("dpop+jwt"),
        Some(""),
    ] {
        assert!(
            accepted(&compat(), &token(typ)).can_subscribe("x"),
            "{typ:?}"
        );
    }
    // …but not a bad signature.
    let forged = encode(
        &header(Algorithm::HS256, None),
        &everything(),
        &hmac(OTHER_SECRET),
    );
    assert!(bad_signature(&refused(&compat(), &forged)));
}

#[test]
fn crit_headers_are_refused_in_both_modes() {
    let mut header = header(Algorithm::HS256, Some("at+jwt"));
    header.crit = Some(vec!["exp".into()]);
    let token = encode(&header, &everything(), &hmac(SECRET));
    assert!(matches!(refused(&config(), &token), Rejection::Crit));
    assert!(matches!(refused(&compat(), &token), Rejection::Crit));
}

// --- Issuers ---

/// Two issuers, each with its own secret.
fn two_issuers() -> AuthConfig {
    config_with(vec![
        issuer(ISS, hmac_key(SECRET)),
        issuer(OTHER_ISS, hmac_key(OTHER_SECRET)),
    ])
}

#[test]
fn each_issuer_verifies_its_own_tokens() {
    let config = two_issuers();
    let mine = hs256_with(SECRET, &reference_claims(ISS, every_topic()));
    let theirs = hs256_with(OTHER_SECRET, &reference_claims(OTHER_ISS, every_topic()));
    for role in [Role::Publisher, Role::Subscriber] {
        accepted_as(&config, role, &mine);
        accepted_as(&config, role, &theirs);
    }
}

#[test]
fn a_token_is_verified_only_with_the_key_of_the_issuer_it_names() {
    let config = two_issuers();
    let details = every_topic();
    // Signed with the other issuer's key, naming this one: were keys pooled
    // across issuers, it would pass.
    let impostor = hs256_with(OTHER_SECRET, &reference_claims(ISS, details.clone()));
    assert!(bad_signature(&refused(&config, &impostor)));
    let impostor = hs256_with(SECRET, &reference_claims(OTHER_ISS, details.clone()));
    assert!(bad_signature(&refused(&config, &impostor)));
    // Also across algorithms: an ES256 issuer's token naming the HMAC one.
    let config = config_with(vec![
        issuer(ISS, hmac_key(SECRET)),
        issuer(
            OTHER_ISS,
            KeyConfig::new(Algorithm::ES256, EC_PUBLIC).unwrap(),
        ),
    ]);
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let es256 = |iss: &str| {
        encode(
            &header(Algorithm::ES256, Some("at+jwt")),
            &reference_claims(iss, details.clone()),
            &ec,
        )
    };
    accepted(&config, &es256(OTHER_ISS));
    assert!(bad_algorithm(&refused(&config, &es256(ISS))));
    // And across roles: the other issuer's subscriber key would verify this
    // token, but the issuer it names cannot subscribe.
    let config = config_with(vec![
        Issuer::new(ISS).publisher(hmac_key(SECRET)),
        Issuer::new(OTHER_ISS).subscriber(hmac_key(SECRET)),
    ]);
    let token = hs256(&reference_claims(ISS, details));
    accepted_as(&config, Role::Publisher, &token);
    assert!(matches!(
        refused_as(&config, Role::Subscriber, &token),
        Rejection::NoKey {
            role: Role::Subscriber,
            ..
        }
    ));
}

#[test]
fn iss_must_name_a_trusted_issuer_exactly_in_modern_mode() {
    let details = every_topic();
    for iss in [
        json!("https://evil.example"),
        json!("https://app.example/"),
        json!("HTTPS://APP.EXAMPLE"),
        json!("https://app.example "),
        json!(""),
        json!([ISS]),
        json!(7),
        Value::Null,
    ] {
        let mut claims = reference_claims(ISS, details.clone());
        claims["iss"] = iss.clone();
        assert!(
            matches!(
                refused(&two_issuers(), &hs256(&claims)),
                Rejection::UntrustedIssuer(_)
            ),
            "{iss}"
        );
    }
    let missing = without(reference_claims(ISS, details.clone()), "iss");
    assert!(matches!(
        refused(&config(), &hs256(&missing)),
        Rejection::UntrustedIssuer(None)
    ));
    // Even with a sole issuer: only compatibility mode falls back to it.
    let mut unknown = reference_claims(ISS, details);
    unknown["iss"] = json!("https://evil.example");
    assert!(matches!(
        refused(&config(), &hs256(&unknown)),
        Rejection::UntrustedIssuer(Some(_))
    ));
}

#[test]
fn an_issuer_without_identifier_matches_no_iss() {
    // The implicit issuer of compatibility mode has the empty identifier;
    // a token saying `"iss": ""` names no issuer, so outside the sole-issuer
    // fallback it must not select that one.
    let config = config_with(vec![issuer("", hmac_key(SECRET))]);
    let mut claims = everything();
    claims["iss"] = json!("");
    assert!(matches!(
        refused(&config, &hs256(&claims)),
        Rejection::UntrustedIssuer(_)
    ));
    let compat_two = AuthConfig {
        compat: true,
        ..config_with(vec![
            issuer("", hmac_key(SECRET)),
            issuer(OTHER_ISS, hmac_key(OTHER_SECRET)),
        ])
    };
    assert!(matches!(
        refused(&compat_two, &hs256(&claims)),
        Rejection::UntrustedIssuer(_)
    ));
}

#[test]
fn compat_mode_lets_the_sole_issuer_verify_unknown_or_missing_iss() {
    let config = AuthConfig {
        compat: true,
        ..config_with(vec![issuer(ISS, hmac_key(SECRET))])
    };
    let mut unknown = everything();
    unknown["iss"] = json!("https://evil.example");
    accepted(&config, &hs256(&unknown));
    accepted(&config, &hs256(&without(everything(), "iss")));
    // The sole issuer's key still has to verify it.
    assert!(bad_signature(&refused(
        &config,
        &hs256_with(OTHER_SECRET, &unknown)
    )));
    // The implicit issuer (no identifier) of a compat hub started with a
    // bare key.
    let implicit = AuthConfig {
        compat: true,
        ..config_with(vec![issuer("", hmac_key(SECRET))])
    };
    accepted(&implicit, &hs256(&everything()));
    accepted(&implicit, &hs256(&without(everything(), "iss")));
    let mut empty = everything();
    empty["iss"] = json!("");
    accepted(&implicit, &hs256(&empty));

    // With several issuers, the fallback would be a guess: refused.
    let several = AuthConfig {
        compat: true,
        ..two_issuers()
    };
    assert!(matches!(
        refused(&several, &hs256(&unknown)),
        Rejection::UntrustedIssuer(_)
    ));
    assert!(matches!(
        refused(&several, &hs256(&without(everything(), "iss"))),
        Rejection::UntrustedIssuer(None)
    ));
    // A named issuer is still verified with its own key only.
    let mut theirs = everything();
    theirs["iss"] = json!(OTHER_ISS);
    accepted(&several, &hs256_with(OTHER_SECRET, &theirs));
    assert!(bad_signature(&refused(&several, &hs256(&theirs))));
}

// --- Registered claims ---

#[test]
fn exp_is_required_in_modern_mode_only() {
    let no_exp = without(everything(), "exp");
    assert!(matches!(
        refused(&config(), &hs256(&no_exp)),
        Rejection::NoExp
    ));
    let grants = accepted(&compat(), &hs256(&no_exp));
    assert_eq!(grants.expires_at(), None);
}

#[test]
fn expired_tokens_are_refused_without_leeway_in_both_modes() {
    for config in [config(), compat()] {
        let mut claims = everything();
        // A library's default leeway (often 60 s) would accept these.
        claims["exp"] = json!(now() - 1);
        assert!(expired(&refused(&config, &hs256(&claims))));
        // RFC 7519: the token is valid *before* exp, not at it.
        claims["exp"] = json!(now());
        assert!(expired(&refused(&config, &hs256(&claims))));
        claims["exp"] = json!(now() - 3600);
        assert!(expired(&refused(&config, &hs256(&claims))));
    }
}

#[test]
fn exp_must_be_a_numeric_date() {
    for exp in [
        json!("tomorrow"),
        json!(true),
        json!(-5),
        json!([now() + 60]),
    ] {
        let mut claims = everything();
        claims["exp"] = exp.clone();
        refused(&config(), &hs256(&claims));
        refused(&compat(), &hs256(&claims));
    }
}

#[test]
fn numeric_dates_may_be_fractional() {
    // RFC 7519 §2: a NumericDate may be a non-integer (tokens minted with
    // `Date.now() / 1000` look like this).
    let mut claims = everything();
    let exp = now() as f64 + 60.5;
    claims["exp"] = json!(exp);
    claims["nbf"] = json!(now() as f64 - 5.5);
    let grants = accepted(&config(), &hs256(&claims));
    assert_eq!(
        grants.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs_f64(exp))
    );
    claims["exp"] = json!(now() as f64 - 0.5);
    assert!(expired(&refused(&config(), &hs256(&claims))));
    claims["exp"] = json!(exp);
    claims["nbf"] = json!(now() as f64 + 30.5);
    let why = refused(&config(), &hs256(&claims));
    assert!(
        matches!(library(&why), Some(ErrorKind::ImmatureSignature)),
        "{why:?}"
    );
}

#[test]
fn expires_at_is_exp() {
    let mut claims = everything();
    let exp = now() + 30;
    claims["exp"] = json!(exp);
    let grants = accepted(&config(), &hs256(&claims));
    assert_eq!(
        grants.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(exp))
    );
}

#[test]
fn nbf_is_enforced_without_leeway_in_both_modes() {
    for config in [config(), compat()] {
        let mut claims = everything();
        claims["nbf"] = json!(now() + 5);
        let why = refused(&config, &hs256(&claims));
        assert!(
            matches!(library(&why), Some(ErrorKind::ImmatureSignature)),
            "{why:?}"
        );
        claims["nbf"] = json!(now() - 5);
        accepted(&config, &hs256(&claims));
        claims["nbf"] = json!(now());
        accepted(&config, &hs256(&claims));
        claims["nbf"] = json!("yesterday");
        refused(&config, &hs256(&claims));
    }
}

#[test]
fn aud_must_contain_the_audience_authenticate_is_given() {
    let audience_of = |aud: Value| {
        let mut claims = everything();
        claims["aud"] = aud;
        hs256(&claims)
    };
    let check = |token: &str, audience: &str| {
        super::token::validate(
            &config(),
            Role::Subscriber,
            token,
            TokenSource::Header,
            audience,
        )
    };
    accepted(&config(), &audience_of(json!(HUB)));
    accepted(&config(), &audience_of(json!(["urn:other", HUB])));
    accepted(&config(), &audience_of(json!([7, HUB])));
    for aud in [
        json!("urn:other"),
        json!(["urn:other"]),
        json!([]),
        json!(""),
        json!("https://hub.example/.well-known/mercure/"),
        json!("https://HUB.example/.well-known/mercure"),
        json!("https://hub.example"),
        json!([[HUB]]),
        json!({"aud": HUB}),
        json!(42),
        Value::Null,
    ] {
        assert!(
            matches!(
                refused(&config(), &audience_of(aud.clone())),
                Rejection::Audience(_)
            ),
            "{aud}"
        );
    }
    assert!(matches!(
        refused(&config(), &hs256(&without(everything(), "aud"))),
        Rejection::Audience(_)
    ));
    // The audience is the one of this request, not a fixed one.
    let two_hubs = audience_of(json!([
        "http://127.0.0.1:3000/.well-known/mercure",
        "http://localhost:3000/.well-known/mercure",
    ]));
    assert!(check(&two_hubs, "http://localhost:3000/.well-known/mercure").is_ok());
    assert!(check(&two_hubs, "http://127.0.0.1:3000/.well-known/mercure").is_ok());
    assert!(matches!(
        check(&two_hubs, "http://[::1]:3000/.well-known/mercure"),
        Err(Rejection::Audience(_))
    ));
    assert!(matches!(
        check(&audience_of(json!(HUB)), "urn:hub"),
        Err(Rejection::Audience(_))
    ));
}

#[test]
fn aud_is_not_checked_in_compat_mode() {
    let mut claims = everything();
    accepted(&compat(), &hs256(&without(claims.clone(), "aud")));
    claims["aud"] = json!("https://elsewhere.example/.well-known/mercure");
    accepted(&compat(), &hs256(&claims));
}

#[test]
fn sub_is_the_subject_when_it_is_a_string() {
    let mut claims = everything();
    claims["sub"] = json!("https://example.com/users/42");
    assert_eq!(
        accepted(&config(), &hs256(&claims)).subject(),
        Some("https://example.com/users/42")
    );
    assert_eq!(
        accepted(&config(), &hs256(&without(claims, "sub"))).subject(),
        None
    );
}

// --- Authorization details ---

#[test]
fn the_detail_type_is_the_mercure_uri_byte_for_byte() {
    assert_eq!(DETAIL_TYPE, MERCURE);
    for kind in [
        "mercure",
        "https://mercure.rocks/",
        "https://mercure.rocks/authorization-detail/",
        "HTTPS://mercure.rocks/authorization-detail",
        "https://Mercure.rocks/authorization-detail",
        " https://mercure.rocks/authorization-detail",
        "https://mercure.rocks/authorization-details",
    ] {
        let entry =
            json!({"type": kind, "actions": ["publish", "subscribe"], "topics": [{"match": "*"}]});
        let grants = grants_for(json!([entry]));
        assert!(
            !grants.can_publish("x") && !grants.can_subscribe("x"),
            "{kind}"
        );
    }
}

#[test]
fn entries_of_other_types_are_ignored_whatever_their_shape() {
    // RFC 9396 lets other types define their own members: a `topics`
    // string or bogus actions in them must not spoil the token.
    let grants = grants_for(json!([
        {"type": "payment_initiation", "actions": "pay", "topics": "a,b", "instructedAmount": {"currency": "EUR"}},
        {"type": "mercure", "actions": [7], "topics": ["bare"]},
        {"actions": ["publish"], "topics": [{"match": "*"}]},
        detail(&["subscribe"], json!([{"match": "https://example.com/a"}])),
    ]));
    assert!(grants.can_subscribe("https://example.com/a"));
    assert!(!grants.can_subscribe("https://example.com/b"));
    // The untyped entry granting publish on `*` is not a Mercure detail.
    assert!(!grants.can_publish("https://example.com/a"));
}

#[test]
fn entries_that_are_not_objects_or_have_a_non_string_type_refuse_the_token() {
    let good = detail(&["subscribe"], json!([{"match": "a"}]));
    for (bad, index) in [
        (json!("https://mercure.rocks/authorization-detail"), 1),
        (json!(7), 1),
        (Value::Null, 1),
        (json!([good.clone()]), 1),
        (json!({"type": 7, "actions": ["publish"]}), 1),
        (json!({"type": null}), 1),
        (json!({"type": [MERCURE]}), 1),
        (json!({"type": {"uri": MERCURE}}), 1),
    ] {
        assert_eq!(
            details_error(&config(), json!([good.clone(), bad.clone(), good.clone()])),
            DetailError::Entry(index),
            "{bad}"
        );
    }
    for not_a_list in [json!({"type": MERCURE}), json!(MERCURE), json!(1)] {
        assert_eq!(
            details_error(&config(), not_a_list.clone()),
            DetailError::NotArray,
            "{not_a_list}"
        );
    }
}

#[test]
fn actions_are_a_non_empty_array_of_strings() {
    let topics = json!([{"match": "a"}]);
    for actions in [
        json!([]),
        json!("publish"),
        json!({"publish": true}),
        json!([1]),
        json!(["publish", null]),
        json!(["subscribe", ["publish"]]),
        Value::Null,
    ] {
        let entry = json!({"type": MERCURE, "actions": actions, "topics": topics});
        assert_eq!(
            details_error(&config(), json!([entry])),
            DetailError::Actions(0),
            "{actions}"
        );
    }
    let missing = json!({"type": MERCURE, "topics": topics});
    assert_eq!(
        details_error(&config(), json!([missing])),
        DetailError::Actions(0)
    );
}

#[test]
fn unknown_actions_grant_nothing_and_spoil_nothing() {
    let grants = grants_for(json!([detail(
        &["publish", "delete", "Subscribe"],
        json!([{"match": "a"}])
    )]));
    assert!(grants.can_publish("a"));
    // Action names are case-sensitive: `Subscribe` is not `subscribe`.
    assert!(!grants.can_subscribe("a"));
    let grants = grants_for(json!([detail(&["history"], json!([{"match": "*"}]))]));
    assert!(!grants.can_publish("a") && !grants.can_subscribe("a"));
    assert!(grants.subscribe_matchers().is_empty());
}

#[test]
fn topics_are_a_non_empty_array() {
    for topics in [json!([]), json!("a"), json!({"match": "a"}), Value::Null] {
        let entry = json!({"type": MERCURE, "actions": ["publish"], "topics": topics});
        assert_eq!(
            details_error(&config(), json!([entry])),
            DetailError::Topics(0),
            "{topics}"
        );
    }
    let missing = json!({"type": MERCURE, "actions": ["publish"]});
    assert_eq!(
        details_error(&config(), json!([missing])),
        DetailError::Topics(0)
    );
}

#[test]
fn topic_matchers_are_objects_with_a_string_match() {
    for topic in [
        // A bare string, as the 0.x claim had: not silently an exact matcher.
        json!("https://example.com/books/1"),
        json!("*"),
        Value::Null,
        json!(7),
        json!(["a"]),
        json!({}),
        json!({"pattern": "a"}),
        json!({"match": 7}),
        json!({"match": null}),
        json!({"match": ["a"]}),
        json!({"match": "a", "match_type": 7}),
        json!({"match": "a", "match_type": null}),
        json!({"match_type": "exact"}),
    ] {
        let details = json!([detail(&["subscribe"], json!([{"match": "ok"}, topic]))]);
        assert_eq!(
            details_error(&config(), details),
            DetailError::MatcherShape(0),
            "{topic}"
        );
    }
}

#[test]
fn match_is_required_non_empty() {
    let details = json!([detail(&["publish"], json!([{"match": ""}]))]);
    assert_eq!(
        details_error(&config(), details),
        DetailError::Matcher(0, TopicError::Empty("matcher"))
    );
    let details = json!([detail(
        &["publish"],
        json!([{"match": "", "match_type": "urlpattern"}])
    )]);
    assert!(matches!(
        details_error(&config(), details),
        DetailError::Matcher(0, TopicError::Empty(_))
    ));
}

#[test]
fn match_type_names_are_case_sensitive_and_unknown_ones_refuse_the_token() {
    for name in [
        "Exact",
        "EXACT",
        "URLPattern",
        "urlPattern",
        "url_pattern",
        "regex",
        "topic",
        "template",
        " exact",
    ] {
        let details = json!([
            detail(&["subscribe"], json!([{"match": "a"}])),
            detail(&["subscribe"], json!([{"match": "b", "match_type": name}])),
        ]);
        assert_eq!(
            details_error(&config(), details),
            DetailError::MatchType(1, name.to_owned()),
            "{name}"
        );
    }
    // Even on `*`: the grant cannot be evaluated, so it is not guessed at.
    let details = json!([detail(
        &["subscribe"],
        json!([{"match": "*", "match_type": "regex"}])
    )]);
    assert!(matches!(
        details_error(&config(), details),
        DetailError::MatchType(0, _)
    ));
}

#[test]
fn match_type_defaults_to_exact() {
    let pattern = "https://example.com/books/:id";
    for topic in [
        json!({"match": pattern}),
        json!({"match": pattern, "match_type": "exact"}),
    ] {
        let grants = grants_for(json!([detail(&["publish", "subscribe"], json!([topic]))]));
        assert!(grants.can_publish(pattern), "{topic}");
        assert!(
            !grants.can_publish("https://example.com/books/1"),
            "{topic}"
        );
        assert!(
            !grants.can_subscribe("https://example.com/books/1"),
            "{topic}"
        );
        let listed: Vec<_> = grants
            .subscribe_matchers()
            .iter()
            .map(|m| (m.kind(), m.pattern().to_owned()))
            .collect();
        assert_eq!(listed, [(MatchType::Exact, pattern.to_owned())]);
    }
}

#[test]
fn exact_matchers_compare_byte_for_byte() {
    let grants = grants_for(json!([detail(
        &["subscribe"],
        json!([{"match": "https://example.com/books/1"}, {"match": "news"}])
    )]));
    assert!(grants.can_subscribe("https://example.com/books/1"));
    for other in [
        "https://example.com/books/1/",
        "https://EXAMPLE.com/books/1",
        "https://example.com/books/%31",
        "https://example.com/books/10",
        "News",
        "news ",
    ] {
        assert!(!grants.can_subscribe(other), "{other}");
    }
}

#[test]
fn url_patterns_match_resolved_topics() {
    let grants = grants_for(json!([
        detail(
            &["publish"],
            json!([{"match": "https://example.com/authors/:id", "match_type": "urlpattern"}])
        ),
        detail(
            &["subscribe"],
            json!([{"match": "/.well-known/mercure/subscriptions/:type/:match/:sub", "match_type": "urlpattern"}])
        ),
    ]));
    assert!(grants.can_publish("https://example.com/authors/7"));
    assert!(!grants.can_publish("https://example.com/authors/7/books"));
    assert!(!grants.can_publish("https://example.com/Authors/7"));
    assert!(!grants.can_publish("https://other.example/authors/7"));
    assert!(
        !grants.can_subscribe("https://example.com/authors/7"),
        "publish is not subscribe"
    );
    // Relative patterns resolve on the hub's URL; so do relative topics.
    assert!(grants.can_subscribe("/.well-known/mercure/subscriptions/exact/a/b"));
    assert!(
        grants.can_subscribe("https://hub.example/.well-known/mercure/subscriptions/exact/a/b")
    );
    assert!(
        !grants.can_subscribe("https://other.example/.well-known/mercure/subscriptions/exact/a/b")
    );
    assert!(!grants.can_subscribe("/.well-known/mercure/subscriptions"));
}

#[test]
fn invalid_or_oversized_matchers_refuse_the_token() {
    for (topic, want) in [
        (
            json!({"match": "https://example.com/(", "match_type": "urlpattern"}),
            TopicError::Pattern,
        ),
        (
            json!({"match": "a\u{85}b"}),
            TopicError::ForbiddenCharacter("matcher"),
        ),
        (
            json!({"match": "a\u{200b}b", "match_type": "urlpattern"}),
            TopicError::ForbiddenCharacter("matcher"),
        ),
        (
            json!({"match": "a\nb"}),
            TopicError::ForbiddenCharacter("matcher"),
        ),
    ] {
        let details = json!([
            detail(&["subscribe"], json!([{"match": "ok"}])),
            detail(&["subscribe"], json!([topic]))
        ]);
        assert_eq!(
            details_error(&config(), details),
            DetailError::Matcher(1, want),
            "{topic}"
        );
    }
    let long = format!("https://example.com/{}", "x".repeat(40));
    let details = json!([detail(&["subscribe"], json!([{"match": long}]))]);
    assert_eq!(
        details_error(&limited(100, 32), details),
        DetailError::Matcher(
            0,
            TopicError::TooLong {
                what: "matcher",
                max: 32
            }
        )
    );
}

#[test]
fn the_wildcard_matches_every_topic_whatever_the_match_type() {
    for topic in [
        json!({"match": "*"}),
        json!({"match": "*", "match_type": "exact"}),
        json!({"match": "*", "match_type": "urlpattern"}),
    ] {
        let grants = grants_for(json!([detail(&["subscribe"], json!([topic]))]));
        for any in ["https://example.com/books/1", "not a url", "/relative", "*"] {
            assert!(grants.can_subscribe(any), "{topic}: {any}");
        }
        // Only for the actions the detail names.
        assert!(
            !grants.can_publish("https://example.com/books/1"),
            "{topic}"
        );
        let listed: Vec<_> = grants
            .subscribe_matchers()
            .iter()
            .map(|m| (m.kind(), m.pattern()))
            .collect();
        assert_eq!(listed, [(MatchType::Exact, "*")], "{topic}");
    }
    // A permissive URL pattern is not the wildcard.
    let grants = grants_for(json!([detail(
        &["subscribe"],
        json!([{"match": "https://*", "match_type": "urlpattern"}])
    )]));
    assert!(grants.can_subscribe("https://example.com/a"));
    assert!(!grants.can_subscribe("urn:isbn:0451450523"));
    assert!(!grants.subscribe_matchers()[0].is_wildcard());
}

#[test]
fn one_bad_detail_refuses_the_whole_token() {
    let good = detail(&["publish", "subscribe"], json!([{"match": "*"}]));
    let bads = [
        detail(&[], json!([{"match": "a"}])),
        detail(&["publish"], json!([])),
        detail(&["publish"], json!(["a"])),
        detail(&["publish"], json!([{"match": "a", "match_type": "Exact"}])),
        detail(&["publish"], json!([{"match": ""}])),
        json!(7),
    ];
    accepted(
        &config(),
        &hs256(&claims(json!([good.clone(), good.clone()]))),
    );
    for bad in bads {
        for position in 0..3 {
            let mut list = vec![good.clone(), good.clone()];
            list.insert(position, bad.clone());
            let token = hs256(&claims(Value::Array(list)));
            for role in [Role::Publisher, Role::Subscriber] {
                assert!(
                    matches!(refused_as(&config(), role, &token), Rejection::Details(_)),
                    "{bad} at {position}"
                );
            }
        }
    }
}

#[test]
fn limits_bound_details_and_topics_and_refuse_the_token() {
    let small = limited(2, 4096);
    let one = detail(&["subscribe"], json!([{"match": "a"}]));
    let two = detail(&["subscribe"], json!([{"match": "a"}, {"match": "b"}]));
    accepted(&small, &hs256(&claims(json!([one.clone(), one.clone()]))));
    accepted(&small, &hs256(&claims(json!([two.clone()]))));
    assert_eq!(
        details_error(&small, json!([one.clone(), one.clone(), one.clone()])),
        DetailError::TooManyDetails(2)
    );
    // Topics are summed over the details.
    assert_eq!(
        details_error(&small, json!([one.clone(), two.clone()])),
        DetailError::TooManyTopics(2)
    );
    assert_eq!(
        details_error(
            &small,
            json!([detail(
                &["subscribe"],
                json!([{"match": "a"}, {"match": "b"}, {"match": "c"}])
            )])
        ),
        DetailError::TooManyTopics(2)
    );
    // The bound comes before any pattern is compiled.
    let broken = json!({"match": "https://example.com/(", "match_type": "urlpattern"});
    assert_eq!(
        details_error(
            &small,
            json!([detail(
                &["subscribe"],
                json!([broken.clone(), broken.clone(), broken])
            )])
        ),
        DetailError::TooManyTopics(2)
    );
    // Entries of other types count against neither limit.
    let other = json!({"type": "payment_initiation", "topics": [1, 2, 3]});
    accepted(
        &small,
        &hs256(&claims(json!([other.clone(), one.clone(), other, one]))),
    );
    // The default is the reference hub's 100.
    let hundred: Vec<_> = (0..100)
        .map(|i| detail(&["subscribe"], json!([{"match": format!("t{i}")}])))
        .collect();
    accepted(&config(), &hs256(&claims(json!(hundred))));
    let mut more = hundred;
    more.push(detail(&["subscribe"], json!([{"match": "t100"}])));
    assert_eq!(
        details_error(&config(), json!(more)),
        DetailError::TooManyDetails(100)
    );
}

#[test]
fn tokens_without_mercure_details_grant_nothing() {
    let nothing = |grants: &Grants| {
        assert!(!grants.can_publish("a") && !grants.can_subscribe("a"));
        assert!(grants.subscribe_matchers().is_empty());
        assert_eq!(
            grants.payload_for(&subscription(MatchType::Exact, "*")),
            None
        );
    };
    for details in [
        json!([]),
        json!([{"type": "openid_credential", "format": "x"}]),
        Value::Null,
    ] {
        nothing(&grants_for(details));
    }
    nothing(&accepted(
        &config(),
        &hs256(&without(everything(), "authorization_details")),
    ));
}

#[test]
fn subscribe_matchers_are_deduplicated_sorted_and_collapse_on_the_wildcard() {
    let grants = grants_for(json!([
        detail(
            &["subscribe"],
            json!([
                {"match": "b"},
                {"match": "https://example.com/:id", "match_type": "urlpattern"},
                {"match": "a"},
            ])
        ),
        detail(&["publish"], json!([{"match": "p"}])),
        detail(
            &["subscribe", "publish"],
            json!([{"match": "b", "match_type": "exact"}])
        ),
    ]));
    let listed: Vec<_> = grants
        .subscribe_matchers()
        .iter()
        .map(|m| (m.kind(), m.pattern()))
        .collect();
    assert_eq!(
        listed,
        [
            (MatchType::Exact, "a"),
            (MatchType::Exact, "b"),
            (MatchType::UrlPattern, "https://example.com/:id"),
        ]
    );
    let grants = grants_for(json!([
        detail(&["subscribe"], json!([{"match": "a"}])),
        detail(
            &["subscribe"],
            json!([{"match": "*", "match_type": "urlpattern"}])
        ),
    ]));
    let listed: Vec<_> = grants
        .subscribe_matchers()
        .iter()
        .map(|m| (m.kind(), m.pattern()))
        .collect();
    assert_eq!(listed, [(MatchType::Exact, "*")]);
}

// --- Payloads ---

#[test]
fn payloads_may_be_any_json() {
    for payload in [
        json!({"user": "https://example.com/users/42"}),
        json!("a string"),
        json!(42),
        json!([1, "two"]),
        json!(false),
    ] {
        let entry = json!({"type": MERCURE, "actions": ["subscribe"], "topics": [{"match": "*"}], "payload": payload});
        let grants = grants_for(json!([entry]));
        assert_eq!(
            grants.payload_for(&subscription(MatchType::Exact, "https://example.com/a")),
            Some(&payload)
        );
    }
    // `null` is no payload.
    let entry = json!({"type": MERCURE, "actions": ["subscribe"], "topics": [{"match": "*"}], "payload": null});
    assert_eq!(
        grants_for(json!([entry])).payload_for(&subscription(MatchType::Exact, "a")),
        None
    );
}

#[test]
fn payload_for_takes_the_first_matching_subscribe_detail() {
    let with = |actions: &[&str], topics: Value, n: u64| json!({"type": MERCURE, "actions": actions, "topics": topics, "payload": {"n": n}});
    let grants = grants_for(json!([
        with(&["publish"], json!([{"match": "*"}]), 0),
        with(
            &["subscribe"],
            json!([{"match": "https://example.com/foo"}]),
            1
        ),
        with(
            &["subscribe"],
            json!([{"match": "https://example.com/bar/:id", "match_type": "urlpattern"}]),
            2
        ),
        detail(
            &["subscribe"],
            json!([{"match": "https://example.com/none"}])
        ),
        with(&["subscribe"], json!([{"match": "*"}]), 3),
        with(
            &["subscribe"],
            json!([{"match": "https://example.com/foo"}]),
            4
        ),
    ]));
    let n = |kind: MatchType, pattern: &str| {
        grants
            .payload_for(&subscription(kind, pattern))
            .map(|p| p["n"].as_u64().unwrap())
    };
    assert_eq!(n(MatchType::Exact, "https://example.com/foo"), Some(1));
    // The subscription's own pattern, taken as a topic.
    assert_eq!(
        n(MatchType::UrlPattern, "https://example.com/bar/:id"),
        Some(2)
    );
    assert_eq!(n(MatchType::Exact, "https://example.com/bar/7"), Some(2));
    // The first matching detail has no payload: none, even with `*` later.
    assert_eq!(n(MatchType::Exact, "https://example.com/none"), None);
    // `*` is the default for the rest, and matches the wildcard subscription.
    assert_eq!(n(MatchType::Exact, "https://example.com/other"), Some(3));
    assert_eq!(n(MatchType::Exact, "*"), Some(3));
}

#[test]
fn payload_for_needs_a_subscribe_detail() {
    let grants = grants_for(json!([
        {"type": MERCURE, "actions": ["publish"], "topics": [{"match": "*"}], "payload": "publisher"},
        detail(&["subscribe"], json!([{"match": "a"}])),
    ]));
    assert_eq!(
        grants.payload_for(&subscription(MatchType::Exact, "a")),
        None
    );
    assert_eq!(
        grants.payload_for(&subscription(MatchType::Exact, "b")),
        None
    );
}

// --- The legacy `mercure` claim (compatibility mode) ---

/// A token as Mercure 0.x issuers minted them: `typ: JWT`, the `mercure`
/// claim, no `iss`, `aud` or `exp`.
fn legacy_token(claims: Value) -> String {
    encode(
        &header(Algorithm::HS256, Some("JWT")),
        &claims,
        &hmac(SECRET),
    )
}

#[test]
fn the_legacy_claim_grants_in_compat_mode() {
    let token = legacy_token(json!({"mercure": {
        "publish": ["https://example.com/books/{id}", "https://example.com/news"],
        "subscribe": ["https://example.com/users/{user}/inbox"],
        "payload": {"user": "https://example.com/users/1"},
    }}));
    let grants = accepted(&compat(), &token);
    assert_eq!(grants.expires_at(), None);
    // A URI template grants its expansions, no more.
    assert!(grants.can_publish("https://example.com/books/7"));
    assert!(grants.can_publish("https://example.com/books/{id}"));
    assert!(!grants.can_publish("https://example.com/books/7/chapters"));
    assert!(!grants.can_publish("https://example.com/authors/7"));
    assert!(grants.can_publish("https://example.com/news"));
    assert!(!grants.can_publish("https://example.com/newsy"));
    assert!(!grants.can_subscribe("https://example.com/books/7"));
    assert!(grants.can_subscribe("https://example.com/users/1/inbox"));
    assert!(!grants.can_publish("https://example.com/users/1/inbox"));
    // `mercure.payload` is the payload of every subscription.
    let payload = grants.payload_for(&subscription(
        MatchType::Exact,
        "https://example.com/users/1/inbox",
    ));
    assert_eq!(
        payload,
        Some(&json!({"user": "https://example.com/users/1"}))
    );
}

#[test]
fn the_legacy_wildcard_and_plain_strings() {
    let grants = accepted(
        &compat(),
        &legacy_token(
            json!({"mercure": {"publish": ["*"], "subscribe": ["https://example.com/{id"]}}),
        ),
    );
    assert!(grants.can_publish("anything") && grants.can_publish("https://example.com/a"));
    // Not a valid template: compared as a plain string, as 0.x hubs did.
    assert!(grants.can_subscribe("https://example.com/{id"));
    assert!(!grants.can_subscribe("https://example.com/7"));
    let grants = accepted(
        &compat(),
        &legacy_token(json!({"mercure": {"subscribe": ["*"]}})),
    );
    assert!(grants.can_subscribe("https://example.com/anything"));
    assert!(grants.subscribe_matchers()[0].is_wildcard());
}

#[test]
fn legacy_object_selectors_carry_their_own_payload() {
    let grants = accepted(
        &compat(),
        &legacy_token(json!({"mercure": {
            "subscribe": [
                {"match": "https://example.com/books/:id", "match_type": "urlpattern", "payload": "books"},
                "https://example.com/users/{id}",
            ],
            "payload": "default",
        }})),
    );
    assert!(grants.can_subscribe("https://example.com/books/1"));
    assert_eq!(
        grants.payload_for(&subscription(
            MatchType::UrlPattern,
            "https://example.com/books/:id"
        )),
        Some(&json!("books"))
    );
    assert_eq!(
        grants.payload_for(&subscription(
            MatchType::Exact,
            "https://example.com/users/1"
        )),
        Some(&json!("default"))
    );
}

#[test]
fn the_namespaced_legacy_claim_wins() {
    let token = legacy_token(json!({
        "mercure": {"subscribe": ["https://example.com/plain"], "payload": "plain"},
        "https://mercure.rocks/": {"subscribe": ["https://example.com/namespaced"], "payload": "namespaced"},
    }));
    let grants = accepted(&compat(), &token);
    assert!(grants.can_subscribe("https://example.com/namespaced"));
    assert!(!grants.can_subscribe("https://example.com/plain"));
    assert_eq!(
        grants.payload_for(&subscription(
            MatchType::Exact,
            "https://example.com/namespaced"
        )),
        Some(&json!("namespaced"))
    );
    // Alone, the namespaced spelling grants too.
    let token =
        legacy_token(json!({"https://mercure.rocks/": {"publish": ["https://example.com/{x}"]}}));
    assert!(accepted(&compat(), &token).can_publish("https://example.com/1"));
}

#[test]
fn the_legacy_claim_counts_only_without_authorization_details() {
    let legacy = json!({"subscribe": ["*"], "publish": ["*"], "payload": "legacy"});
    // Mercure details: the claim is ignored, payload included.
    let mut claims = claims(json!([detail(&["publish"], json!([{"match": "a"}]))]));
    claims["mercure"] = legacy.clone();
    let grants = accepted(&compat(), &hs256(&claims));
    assert!(grants.can_publish("a"));
    assert!(!grants.can_publish("b") && !grants.can_subscribe("b"));
    assert_eq!(
        grants.payload_for(&subscription(MatchType::Exact, "b")),
        None
    );
    // Details of another resource only: still judged by those alone.
    claims["authorization_details"] = json!([{"type": "payment_initiation"}]);
    let grants = accepted(&compat(), &hs256(&claims));
    assert!(!grants.can_publish("b") && !grants.can_subscribe("b"));
    // An empty list, or none: the claim counts.
    for details in [json!([]), Value::Null] {
        claims["authorization_details"] = details;
        let grants = accepted(&compat(), &hs256(&claims));
        assert!(grants.can_publish("b") && grants.can_subscribe("b"));
        assert_eq!(
            grants.payload_for(&subscription(MatchType::Exact, "b")),
            Some(&json!("legacy"))
        );
    }
}

#[test]
fn the_legacy_claim_is_ignored_entirely_in_modern_mode() {
    // A modern token that also carries the claim, well-formed or not.
    for legacy in [
        json!({"publish": ["*"], "subscribe": ["*"], "payload": "legacy"}),
        json!("garbage"),
        json!({"publish": [7]}),
    ] {
        for details in [
            json!([]),
            json!([detail(&["publish"], json!([{"match": "a"}]))]),
        ] {
            let mut claims = claims(details);
            claims["mercure"] = legacy.clone();
            claims["https://mercure.rocks/"] = legacy.clone();
            let grants = accepted(&config(), &hs256(&claims));
            assert!(
                !grants.can_publish("b") && !grants.can_subscribe("b"),
                "{legacy}"
            );
            assert_eq!(
                grants.payload_for(&subscription(MatchType::Exact, "b")),
                None
            );
        }
    }
    // A 0.x token is not even accepted there: no typ, iss, aud or exp.
    let token = legacy_token(json!({"mercure": {"subscribe": ["*"]}}));
    assert!(matches!(refused(&config(), &token), Rejection::Typ(_)));
}

#[test]
fn malformed_legacy_claims_refuse_the_token_in_compat_mode() {
    for bad in [
        json!(["*"]),
        json!("*"),
        json!({"publish": "*"}),
        json!({"subscribe": {"a": 1}}),
        json!({"publish": [1]}),
        json!({"subscribe": [null]}),
        json!({"subscribe": [""]}),
        json!({"subscribe": ["a\u{85}b"]}),
        json!({"subscribe": [{"match": "a", "match_type": "Exact"}]}),
        json!({"subscribe": [{"pattern": "a"}]}),
    ] {
        let why = refused(&compat(), &legacy_token(json!({"mercure": bad.clone()})));
        assert!(matches!(why, Rejection::Legacy(_)), "{bad}: {why:?}");
    }
    // An empty claim is fine, and grants nothing.
    let grants = accepted(&compat(), &legacy_token(json!({"mercure": {}})));
    assert!(!grants.can_subscribe("a") && !grants.can_publish("a"));
}

// --- Where the token comes from ---

fn query_with(token: &str) -> String {
    format!("topic=a&authorization={token}")
}

#[test]
fn no_token_is_anonymous() {
    assert!(
        present(&config(), &HeaderMap::new(), None)
            .unwrap()
            .is_none()
    );
    assert!(
        present(&config(), &HeaderMap::new(), Some("match=*"))
            .unwrap()
            .is_none()
    );
    // An empty cookie counts as absent (browsers keep them after a logout).
    let empty = cookie_header("__Secure-mercure_access_token=; other=1");
    assert!(present(&config(), &empty, None).unwrap().is_none());
    let empty = cookie_header("__Secure-mercure_access_token=\"\"");
    assert!(present(&config(), &empty, None).unwrap().is_none());
}

#[test]
fn modern_mode_looks_at_neither_the_url_nor_the_legacy_cookie() {
    let good = hs256(&everything());
    // A valid token in the URL is not looked at…
    assert!(
        present(&config(), &HeaderMap::new(), Some(&query_with(&good)))
            .unwrap()
            .is_none()
    );
    for name in ["access_token", "authorization", "Authorization"] {
        let query = format!("{name}={good}");
        assert!(
            present(&config(), &HeaderMap::new(), Some(&query))
                .unwrap()
                .is_none(),
            "{name}"
        );
    }
    // …nor is a bad one, which would refuse the request.
    let bad = hs256_with(OTHER_SECRET, &everything());
    let cookie = cookie_header(&format!("__Secure-mercure_access_token={good}"));
    let grants = present(&config(), &cookie, Some(&query_with(&bad)))
        .unwrap()
        .unwrap();
    assert_eq!(grants.source(), TokenSource::Cookie);
    let legacy = cookie_header(&format!("mercureAuthorization={good}"));
    assert!(present(&config(), &legacy, None).unwrap().is_none());
}

#[test]
fn the_header_wins_over_the_cookie() {
    let good = hs256(&everything());
    let bad = hs256_with(OTHER_SECRET, &everything());
    let with_cookie = |header_token: &str, cookie_token: &str| {
        let mut headers = cookie_header(&format!(
            "theme=dark; __Secure-mercure_access_token={cookie_token}; lang=fr"
        ));
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {header_token}").parse().unwrap(),
        );
        headers
    };
    let grants = present(&config(), &with_cookie(&good, &bad), None)
        .unwrap()
        .unwrap();
    assert_eq!(grants.source(), TokenSource::Header);
    // The header counts even when it fails: the cookie is no fallback.
    assert_eq!(
        present(&config(), &with_cookie(&bad, &good), None).unwrap_err(),
        AuthError::InvalidToken
    );
    // The cookie alone.
    let cookie = cookie_header(&format!("__Secure-mercure_access_token={good}"));
    let grants = present(&config(), &cookie, None).unwrap().unwrap();
    assert_eq!(grants.source(), TokenSource::Cookie);
    let cookie = cookie_header(&format!("__Secure-mercure_access_token={bad}"));
    assert_eq!(
        present(&config(), &cookie, None).unwrap_err(),
        AuthError::InvalidToken
    );
}

#[test]
fn the_cookie_name_is_configurable() {
    assert_eq!(DEFAULT_COOKIE_NAME, "__Secure-mercure_access_token");
    assert_eq!(DEV_COOKIE_NAME, "mercure_access_token");
    assert_eq!(
        AuthConfig::new(Url::parse(HUB).unwrap()).cookie_name,
        DEFAULT_COOKIE_NAME
    );
    let good = hs256(&everything());
    let renamed = AuthConfig {
        cookie_name: "hubToken".into(),
        ..config()
    };
    let cookie = cookie_header(&format!("hubToken={good}"));
    let grants = present(&renamed, &cookie, None).unwrap().unwrap();
    assert_eq!(grants.source(), TokenSource::Cookie);
    assert!(present(&config(), &cookie, None).unwrap().is_none());
    // The default name no longer counts once another one is configured.
    let default = cookie_header(&format!("__Secure-mercure_access_token={good}"));
    assert!(present(&renamed, &default, None).unwrap().is_none());
    // Names are compared exactly.
    for near in ["hubtoken", "hubToken2", "xhubToken"] {
        let cookie = cookie_header(&format!("{near}={good}"));
        assert!(
            present(&renamed, &cookie, None).unwrap().is_none(),
            "{near}"
        );
    }
}

#[test]
fn cookies_are_found_among_several_headers_and_may_be_quoted() {
    let token = hs256(&everything());
    let mut headers = HeaderMap::new();
    headers.append(header::COOKIE, "a=1; b=2".parse().unwrap());
    headers.append(
        header::COOKIE,
        format!("__Secure-mercure_access_tokenX=junk;__Secure-mercure_access_token=\"{token}\"")
            .parse()
            .unwrap(),
    );
    let grants = present(&config(), &headers, None).unwrap().unwrap();
    assert_eq!(grants.source(), TokenSource::Cookie);
}

#[test]
fn compat_mode_also_reads_the_authorization_parameter_and_the_legacy_cookie() {
    let good = hs256(&everything());
    let bad = hs256_with(OTHER_SECRET, &everything());
    let config = compat();
    let grants = present(&config, &HeaderMap::new(), Some(&query_with(&good)))
        .unwrap()
        .unwrap();
    assert_eq!(grants.source(), TokenSource::Query);
    // The header wins over the query parameter, which wins over the cookie.
    let grants = present(&config, &bearer(&good), Some(&query_with(&bad)))
        .unwrap()
        .unwrap();
    assert_eq!(grants.source(), TokenSource::Header);
    let cookie = |name: &str, token: &str| cookie_header(&format!("{name}={token}"));
    let result = present(
        &config,
        &cookie(DEFAULT_COOKIE_NAME, &good),
        Some(&query_with(&bad)),
    );
    assert_eq!(result.unwrap_err(), AuthError::InvalidToken);
    let grants = present(
        &config,
        &cookie(DEFAULT_COOKIE_NAME, &bad),
        Some(&query_with(&good)),
    )
    .unwrap()
    .unwrap();
    assert_eq!(grants.source(), TokenSource::Query);
    // The 0.x cookie, when the configured one is absent.
    let grants = present(&config, &cookie(LEGACY_COOKIE_NAME, &good), None)
        .unwrap()
        .unwrap();
    assert_eq!(grants.source(), TokenSource::Cookie);
    assert_eq!(LEGACY_COOKIE_NAME, "mercureAuthorization");
    let both = cookie_header(&format!(
        "mercureAuthorization={bad}; {DEFAULT_COOKIE_NAME}={good}"
    ));
    assert!(present(&config, &both, None).is_ok());
    let both = cookie_header(&format!(
        "mercureAuthorization={good}; {DEFAULT_COOKIE_NAME}={bad}"
    ));
    assert_eq!(
        present(&config, &both, None).unwrap_err(),
        AuthError::InvalidToken
    );
    // A 0.x token through the 0.x parameter.
    let legacy = legacy_token(json!({"mercure": {"subscribe": ["https://example.com/{id}"]}}));
    let grants = present(&config, &HeaderMap::new(), Some(&query_with(&legacy)))
        .unwrap()
        .unwrap();
    assert!(grants.can_subscribe("https://example.com/7"));
}

#[test]
fn the_authorization_parameter_is_ignored_unless_it_is_one_plausible_token() {
    let good = hs256(&everything());
    let config = compat();
    // Too short to be a JWS: not a token, as 0.x hubs judged.
    let short = "a.b.c";
    let cookie = cookie_header(&format!("{DEFAULT_COOKIE_NAME}={good}"));
    let grants = present(&config, &cookie, Some(&query_with(short)))
        .unwrap()
        .unwrap();
    assert_eq!(grants.source(), TokenSource::Cookie);
    assert!(
        present(&config, &HeaderMap::new(), Some(&query_with(short)))
            .unwrap()
            .is_none()
    );
    // Given twice: ambiguous, ignored.
    let twice = format!("authorization={good}&authorization={good}");
    assert!(
        present(&config, &HeaderMap::new(), Some(&twice))
            .unwrap()
            .is_none()
    );
}

#[test]
fn malformed_authorization_headers_are_invalid_requests() {
    let token = hs256(&everything());
    let cookie = format!("{DEFAULT_COOKIE_NAME}={token}");
    for value in [
        format!("Basic {token}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer {token} extra"),
        format!("Bearer {token} "),
        format!("Bearer\t{token}"),
        format!("Bearer: {token}"),
        format!("Bearer {token},x"),
        token.clone(),
    ] {
        for compat in [false, true] {
            // A valid cookie beside it does not rescue the request.
            let mut headers = cookie_header(&cookie);
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            let config = AuthConfig { compat, ..config() };
            let err = present(&config, &headers, None).unwrap_err();
            assert!(
                matches!(err, AuthError::InvalidRequest(_)),
                "{value}: {err:?}"
            );
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
    }
    // Not ASCII.
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_bytes(b"Bearer \xe9t\xe9").unwrap(),
    );
    assert!(matches!(
        present(&config(), &headers, None),
        Err(AuthError::InvalidRequest(_))
    ));
    // The scheme is case-insensitive; several spaces may follow it.
    for value in [format!("bearer {token}"), format!("BEARER  {token}")] {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        assert!(
            present(&config(), &headers, None).unwrap().is_some(),
            "{value}"
        );
    }
    // Two headers: ambiguous.
    let mut headers = bearer(&token);
    headers.append(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    assert!(matches!(
        present(&config(), &headers, None),
        Err(AuthError::InvalidRequest(_))
    ));
}

// --- CSRF ---

#[test]
fn csrf_accepts_the_hub_and_allowed_origins_only() {
    let allowed = vec![
        "https://app.example".to_owned(),
        "HTTPS://Admin.Example:443/".to_owned(),
    ];
    let check = |name: header::HeaderName, value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        check_csrf(&headers, "https://hub.example", &allowed)
    };
    for (name, value) in [
        (header::ORIGIN, "https://hub.example"),
        (header::ORIGIN, "https://hub.example:443"),
        (header::ORIGIN, "https://app.example"),
        (header::ORIGIN, "https://admin.example"),
        (header::REFERER, "https://app.example/page?x=1"),
        (
            header::REFERER,
            "https://hub.example/.well-known/mercure/ui",
        ),
    ] {
        assert!(check(name.clone(), value).is_ok(), "{name}: {value}");
    }
    for (name, value) in [
        (header::ORIGIN, "https://evil.example"),
        (header::ORIGIN, "http://app.example"),
        (header::ORIGIN, "http://hub.example"),
        (header::ORIGIN, "https://app.example:8443"),
        (header::ORIGIN, "https://app.example.evil.example"),
        (header::ORIGIN, "null"),
        (header::REFERER, "https://evil.example/https://app.example"),
        (header::REFERER, "not a url"),
    ] {
        let err = check(name.clone(), value).unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidRequest(_)),
            "{name}: {value}"
        );
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
    // Origin wins over Referer.
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://evil.example"),
    );
    headers.insert(
        header::REFERER,
        HeaderValue::from_static("https://app.example/"),
    );
    assert!(check_csrf(&headers, "https://hub.example", &allowed).is_err());
    // Neither header: refused with a Bearer invalid_request challenge.
    let err = check_csrf(&HeaderMap::new(), "https://hub.example", &allowed).unwrap_err();
    assert!(matches!(err, AuthError::InvalidRequest(_)));
    let response = err.response("");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        "Bearer error=\"invalid_request\""
    );
    // `*` allows any origin, but still needs one.
    let any = vec!["*".to_owned()];
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://evil.example"),
    );
    assert!(check_csrf(&headers, "https://hub.example", &any).is_ok());
    assert!(check_csrf(&HeaderMap::new(), "https://hub.example", &any).is_err());
}

// --- Error responses ---

#[test]
fn error_responses_follow_rfc_6750() {
    let metadata = "https://hub.example/.well-known/oauth-protected-resource/.well-known/mercure";
    let named = format!("resource_metadata=\"{metadata}\"");
    let cases = [
        (
            AuthError::Missing,
            StatusCode::UNAUTHORIZED,
            format!("Bearer {named}"),
        ),
        (
            AuthError::InvalidToken,
            StatusCode::UNAUTHORIZED,
            format!("Bearer error=\"invalid_token\", {named}"),
        ),
        (
            AuthError::InsufficientScope,
            StatusCode::FORBIDDEN,
            format!("Bearer error=\"insufficient_scope\", {named}"),
        ),
        (
            AuthError::InvalidRequest("bad header".into()),
            StatusCode::BAD_REQUEST,
            format!("Bearer error=\"invalid_request\", {named}"),
        ),
    ];
    for (error, status, challenge) in cases {
        let response = error.response(metadata);
        assert_eq!(response.status(), status, "{error:?}");
        assert_eq!(error.status(), status, "{error:?}");
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            challenge.as_str()
        );
        assert!(
            response.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
    }
    // Without metadata, the bare challenges.
    assert_eq!(
        AuthError::Missing.response("").headers()[header::WWW_AUTHENTICATE],
        "Bearer"
    );
    assert_eq!(
        AuthError::InvalidToken.response("").headers()[header::WWW_AUTHENTICATE],
        "Bearer error=\"invalid_token\""
    );
    // The URL is a quoted-string: its quotes and backslashes are escaped.
    let odd = AuthError::Missing.response("https://hub.example/a\"b\\c");
    assert_eq!(
        odd.headers()[header::WWW_AUTHENTICATE],
        "Bearer resource_metadata=\"https://hub.example/a\\\"b\\\\c\""
    );
}

#[tokio::test]
async fn error_bodies_never_say_why_a_token_failed() {
    for token in [
        hs256_with(OTHER_SECRET, &everything()),
        hs256(&without(everything(), "exp")),
        hs256(&claims(json!([detail(&["publish"], json!(["bare"]))]))),
    ] {
        let err = present(&config(), &bearer(&token), None).unwrap_err();
        let body = axum::body::to_bytes(err.response("").into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"invalid token\n");
    }
}

// --- The hub's own minting helpers ---

#[test]
fn token_claims_and_mint_make_tokens_like_mercure_token() {
    let claims = token_claims(ISS, &[HUB], &["subscribe"], Duration::from_secs(60));
    for name in ["iss", "aud", "sub", "client_id", "iat", "exp", "jti"] {
        assert!(claims.get(name).is_some(), "{name}");
    }
    assert!(claims["sub"].as_str().unwrap().starts_with("urn:uuid:"));
    assert!(claims["jti"].as_str().unwrap().starts_with("urn:uuid:"));
    assert_ne!(claims["sub"], claims["jti"]);
    let token = mint(Algorithm::HS256, SECRET, &claims).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, Algorithm::HS256);
    let grants = accepted(&config(), &token);
    assert!(grants.can_subscribe("anything") && !grants.can_publish("anything"));
    assert!(grants.expires_at().unwrap() > SystemTime::now());
    // Several audiences become an array that names each.
    let other = "http://localhost:3000/.well-known/mercure";
    let claims = token_claims(
        ISS,
        &[other, HUB],
        &["publish", "subscribe"],
        Duration::from_secs(60),
    );
    assert_eq!(claims["aud"], json!([other, HUB]));
    let grants = accepted_as(
        &config(),
        Role::Publisher,
        &mint(Algorithm::HS256, SECRET, &claims).unwrap(),
    );
    assert!(grants.can_publish("anything") && grants.can_subscribe("anything"));
}

/// A token signed with the hub's key over `payload` as it is, whatever the
/// bytes: what a serializer would never write.
fn hs256_raw(payload: &[u8]) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"at+jwt"}"#);
    let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &hmac(SECRET), Algorithm::HS256).unwrap();
    format!("{message}.{signature}")
}

/// Found by fuzzing: invalid UTF-8 in a claim the hub does not read passed
/// the typed decode, so a payload that is not JSON (RFC 7519 §7.2) was
/// accepted.
#[test]
fn claims_that_are_not_json_in_utf8_refuse_the_token() {
    let mut payload = br#"{"other":""#.to_vec();
    payload.extend_from_slice(b"\xcb\xcb");
    payload.extend_from_slice(br#"","mercure":{"subscribe":["*"]}}"#);
    assert!(
        matches!(
            refused(&compat(), &hs256_raw(&payload)),
            Rejection::Malformed(_)
        ),
        "invalid UTF-8 in an unknown claim"
    );
    let valid = serde_json::to_vec(&everything()).unwrap();
    let mut trailing = valid.clone();
    trailing.extend_from_slice(b"x");
    assert!(matches!(
        refused(&config(), &hs256_raw(&trailing)),
        Rejection::Malformed(_)
    ));
    assert!(matches!(
        refused(&compat(), &hs256_raw(b"[1]")),
        Rejection::NotAnObject
    ));
    accepted(&config(), &hs256_raw(&valid));
}

// --- Tokens already verified ---

#[test]
fn a_token_verified_once_is_answered_again_without_a_second_check() {
    let config = config();
    let token = hs256(&everything());
    accepted(&config, &token);
    assert!(verified::holds(&config, &token));
    accepted(&config, &token);
    // A failure is never kept.
    let forged = hs256_with(OTHER_SECRET, &everything());
    refused(&config, &forged);
    assert!(!verified::holds(&config, &forged));
    // Nor does another configuration (or a copy) take this one's word.
    let copy = config.clone();
    assert!(!verified::holds(&copy, &token));
    let other = config_with(vec![issuer(ISS, hmac_key(OTHER_SECRET))]);
    refused(&other, &token);
}

#[test]
fn a_verified_token_in_a_malformed_header_is_still_the_request_s_fault() {
    // The verified tokens are looked up before the header's syntax is
    // checked: what a hit skips must never let a malformed header pass.
    let config = config();
    let token = hs256(&everything());
    accepted(&config, &token);
    assert!(verified::holds(&config, &token));
    let one = |name: header::HeaderName, text: String| {
        let mut headers = HeaderMap::new();
        headers.insert(name, text.parse().unwrap());
        headers
    };
    let mut twice = bearer(&token);
    twice.append(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let malformed = [
        twice,
        one(header::AUTHORIZATION, format!("Basic {token}")),
        one(header::AUTHORIZATION, format!("Bearer{token}")),
        one(header::AUTHORIZATION, format!("Bearer {token} x")),
    ];
    for headers in &malformed {
        let result = authenticate(&config, Role::Subscriber, headers, None, HUB);
        assert!(
            matches!(result, Err(AuthError::InvalidRequest(_))),
            "{headers:?}: {result:?}"
        );
    }
    // The scheme in any case, and more than one space: the same token,
    // answered from what was verified.
    let spaced = one(header::AUTHORIZATION, format!("bEaReR   {token}"));
    assert!(matches!(
        authenticate(&config, Role::Subscriber, &spaced, None, HUB),
        Ok(Some(_))
    ));
    // The same bytes in a cookie were not verified as a cookie: checked
    // again (and answered the same, this configuration reading cookies).
    let in_cookie = one(header::COOKIE, format!("{}={token}", config.cookie_name));
    let grants = authenticate(&config, Role::Subscriber, &in_cookie, None, HUB);
    assert_eq!(grants.unwrap().unwrap().source(), TokenSource::Cookie);
}

#[test]
fn a_verified_token_counts_only_for_its_role_and_audience() {
    // Publishing verified with one key, subscribing with another.
    let config = config_with(vec![
        Issuer::new(ISS)
            .publisher(hmac_key(SECRET))
            .subscriber(hmac_key(OTHER_SECRET)),
    ]);
    let token = hs256(&everything());
    accepted_as(&config, Role::Publisher, &token);
    refused_as(&config, Role::Subscriber, &token);
    // Minted for this hub, not another one the same config serves.
    let other_hub = "https://other-hub.example/.well-known/mercure";
    let elsewhere = authenticate(&config, Role::Publisher, &bearer(&token), None, other_hub);
    assert_eq!(elsewhere.unwrap_err(), AuthError::InvalidToken);
}

#[test]
fn a_verified_token_is_not_accepted_past_its_exp() {
    let config = config();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = everything();
    claims["exp"] = json!(now + 2);
    let token = hs256(&claims);
    accepted(&config, &token);
    std::thread::sleep(Duration::from_secs(3));
    assert!(matches!(
        refused(&config, &token),
        Rejection::Expired | Rejection::Verification(_)
    ));
}

#[test]
fn new_keys_invalidate_what_the_old_ones_verified() {
    let config = config();
    let token = hs256(&everything());
    accepted(&config, &token);
    // What a JWKS refresh does when it installs a key set.
    jwks::KEY_EPOCH.fetch_add(1, std::sync::atomic::Ordering::Release);
    assert!(
        verified::get(
            &config,
            Role::Subscriber,
            token.as_bytes(),
            TokenSource::Header,
            HUB
        )
        .is_none()
    );
    accepted(&config, &token);
    assert!(
        verified::holds(&config, &token),
        "checked again and kept again"
    );
}
