//! Real signatures with the test-only keys of `tests/keys/`; no mocks.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, StatusCode, header};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use url::Url;

use super::legacy::template_to_pattern;
use super::*;
use crate::topic::MatchType;

const SECRET: &str = "test-only-secret-at-least-32-bytes";
const OTHER_SECRET: &str = "another-test-secret-of-32-bytes!!";
const RSA_PRIVATE: &str = include_str!("../../tests/keys/rsa-private.pem");
const RSA_PUBLIC: &str = include_str!("../../tests/keys/rsa-public.pem");
const RSA1024_PUBLIC: &str = include_str!("../../tests/keys/rsa1024-public.pem");
const EC_PRIVATE: &str = include_str!("../../tests/keys/ec256-private.pem");
const EC_PUBLIC: &str = include_str!("../../tests/keys/ec256-public.pem");
const ED_PRIVATE: &str = include_str!("../../tests/keys/ed25519-private.pem");
const ED_PUBLIC: &str = include_str!("../../tests/keys/ed25519-public.pem");
const HUB: &str = "https://hub.example/.well-known/mercure";
const AUD: &str = "urn:test-hub";

fn config() -> AuthConfig {
    AuthConfig {
        publisher: Some(KeyConfig::new(Algorithm::HS256, SECRET).unwrap()),
        subscriber: Some(KeyConfig::new(Algorithm::HS256, SECRET).unwrap()),
        ..AuthConfig::new(Url::parse(HUB).unwrap(), AUD)
    }
}

fn compat() -> AuthConfig {
    AuthConfig {
        compat: true,
        ..config()
    }
}

fn with_key(alg: Algorithm, public: &str) -> AuthConfig {
    AuthConfig {
        subscriber: Some(KeyConfig::new(alg, public).unwrap()),
        ..config()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Valid registered claims around `details`.
fn claims(details: Value) -> Value {
    json!({"aud": AUD, "exp": now() + 60, "sub": "alice", "authorization_details": details})
}

fn detail(actions: &[&str], topics: Value) -> Value {
    json!({"type": "mercure", "actions": actions, "topics": topics})
}

/// Claims granting both actions on everything.
fn everything() -> Value {
    claims(json!([detail(
        &["publish", "subscribe"],
        json!([{"match": "*"}])
    )]))
}

fn hs256(claims: &Value) -> String {
    mint(Algorithm::HS256, SECRET, claims).unwrap()
}

/// A token with a hand-made header.
fn sign(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).unwrap()
}

fn header_with_typ(typ: Option<&str>) -> Header {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = typ.map(Into::into);
    header
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    headers
}

fn subscribe(config: &AuthConfig, token: &str) -> Result<Option<Grants>, AuthError> {
    authenticate(config, Role::Subscriber, &bearer(token), None)
}

fn accepted(config: &AuthConfig, token: &str) -> Grants {
    subscribe(config, token)
        .expect("accepted")
        .expect("a token")
}

fn refused(config: &AuthConfig, token: &str) {
    assert_eq!(
        subscribe(config, token).unwrap_err(),
        AuthError::InvalidToken
    );
}

/// Refused, and for the expected reason (the one only the log sees).
fn refused_because(config: &AuthConfig, token: &str, reason: &str) {
    refused(config, token);
    let key = config.subscriber.as_ref().unwrap();
    let why = super::token::validate(config, key, token, TokenSource::Header).unwrap_err();
    assert!(
        why.contains(reason),
        "refused because {why:?}, expected {reason:?}"
    );
}

fn grants_for(details: Value) -> Grants {
    accepted(&config(), &hs256(&claims(details)))
}

// --- Algorithms and keys ---

#[test]
fn hs256_token_is_accepted() {
    let grants = accepted(&config(), &hs256(&everything()));
    assert_eq!(grants.subject(), Some("alice"));
    assert_eq!(grants.source(), TokenSource::Header);
    assert!(grants.can_publish("x") && grants.can_subscribe("x"));
}

#[test]
fn rs256_es256_and_eddsa_tokens_are_accepted() {
    for (alg, private, public) in [
        (Algorithm::RS256, RSA_PRIVATE, RSA_PUBLIC),
        (Algorithm::PS256, RSA_PRIVATE, RSA_PUBLIC),
        (Algorithm::ES256, EC_PRIVATE, EC_PUBLIC),
        (Algorithm::EdDSA, ED_PRIVATE, ED_PUBLIC),
    ] {
        let token = mint(alg, private, &everything()).unwrap();
        let grants = accepted(&with_key(alg, public), &token);
        assert!(grants.can_subscribe("x"), "{alg:?}");
        // The same token against another algorithm's key: refused.
        refused(&config(), &token);
    }
}

#[test]
fn keys_load_from_files() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/ec256-private.pem");
    let token = mint(Algorithm::ES256, path, &everything()).unwrap();
    let public = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/ec256-public.pem");
    accepted(&with_key(Algorithm::ES256, public), &token);
}

#[test]
fn a_bad_signature_is_refused() {
    refused_because(
        &config(),
        &mint(Algorithm::HS256, OTHER_SECRET, &everything()).unwrap(),
        "InvalidSignature",
    );
    let token = hs256(&everything());
    let tampered = format!("{}x", &token[..token.len() - 1]);
    refused(&config(), &tampered);
    refused(&config(), "not-a-jwt");
}

#[test]
fn alg_none_is_refused() {
    // {"alg":"none","typ":"at+jwt"}, the payload of a valid token, no signature.
    let payload = hs256(&everything()).split('.').nth(1).unwrap().to_owned();
    let token = format!("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{payload}.");
    refused_because(&config(), &token, "header");
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // The algorithm-confusion attack: the public key used as an HMAC secret.
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let token = sign(
        &header,
        &everything(),
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
    );
    refused_because(
        &with_key(Algorithm::RS256, RSA_PUBLIC),
        &token,
        "InvalidAlgorithm",
    );
}

#[test]
fn a_token_for_one_role_is_refused_for_the_other() {
    let config = AuthConfig {
        publisher: Some(KeyConfig::new(Algorithm::HS256, OTHER_SECRET).unwrap()),
        ..config()
    };
    let headers = bearer(&hs256(&everything()));
    assert!(authenticate(&config, Role::Subscriber, &headers, None).is_ok());
    assert_eq!(
        authenticate(&config, Role::Publisher, &headers, None).unwrap_err(),
        AuthError::InvalidToken
    );
    let no_publisher = AuthConfig {
        publisher: None,
        ..config
    };
    assert_eq!(
        authenticate(&no_publisher, Role::Publisher, &headers, None).unwrap_err(),
        AuthError::InvalidToken
    );
    assert!(
        authenticate(&no_publisher, Role::Publisher, &HeaderMap::new(), None)
            .unwrap()
            .is_none()
    );
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
    assert!(matches!(
        KeyConfig::new(Algorithm::RS256, RSA_PRIVATE),
        Err(KeyError::Pem(_))
    ));
    assert!(matches!(
        KeyConfig::new(Algorithm::RS256, EC_PUBLIC),
        Err(KeyError::Mismatch { .. })
    ));
    assert!(matches!(
        KeyConfig::new(Algorithm::ES256, RSA_PUBLIC),
        Err(KeyError::Mismatch { .. })
    ));
    assert!(matches!(
        KeyConfig::new(Algorithm::ES384, EC_PUBLIC),
        Err(KeyError::Mismatch { .. })
    ));
    assert!(matches!(
        KeyConfig::new(Algorithm::EdDSA, EC_PUBLIC),
        Err(KeyError::Mismatch { .. })
    ));
    assert!(matches!(
        KeyConfig::new(Algorithm::RS256, RSA1024_PUBLIC),
        Err(KeyError::WeakKey { bits: 1024 })
    ));
    assert!(matches!(
        KeyConfig::new(
            Algorithm::RS256,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
        ),
        Err(KeyError::Mismatch { .. })
    ));
    assert!(matches!(
        mint(Algorithm::ES256, EC_PUBLIC, &json!({})),
        Err(KeyError::Pem(_))
    ));
    assert!(matches!(
        mint(Algorithm::ES384, EC_PRIVATE, &json!({})),
        Err(KeyError::Mismatch { .. })
    ));
    // Debug never shows key material.
    let debug = format!("{:?}", KeyConfig::new(Algorithm::HS256, SECRET).unwrap());
    assert!(!debug.contains(SECRET), "{debug}");
}

// --- Header ---

#[test]
fn typ_must_be_at_jwt_unless_compat() {
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    for typ in ["at+jwt", "AT+JWT", "application/at+jwt"] {
        accepted(
            &config(),
            &sign(&header_with_typ(Some(typ)), &everything(), &key),
        );
    }
    for typ in [Some("JWT"), None, Some("JOSE"), Some("id_token+jwt")] {
        refused_because(
            &config(),
            &sign(&header_with_typ(typ), &everything(), &key),
            "typ",
        );
    }
    accepted(
        &compat(),
        &sign(&header_with_typ(Some("JWT")), &everything(), &key),
    );
    accepted(
        &compat(),
        &sign(&header_with_typ(None), &everything(), &key),
    );
    refused(
        &compat(),
        &sign(&header_with_typ(Some("dpop+jwt")), &everything(), &key),
    );
}

#[test]
fn crit_headers_are_refused() {
    let mut header = header_with_typ(Some("at+jwt"));
    header.crit = Some(vec!["exp".into()]);
    refused_because(
        &config(),
        &sign(
            &header,
            &everything(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        ),
        "crit",
    );
}

// --- Registered claims ---

#[test]
fn expired_tokens_are_refused_without_leeway() {
    let mut claims = everything();
    claims["exp"] = json!(now() - 2);
    refused_because(&config(), &hs256(&claims), "Expired");
    claims["exp"] = json!(now());
    refused_because(&config(), &hs256(&claims), "xpired");
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
fn nbf_in_the_future_is_refused() {
    let mut claims = everything();
    claims["nbf"] = json!(now() + 5);
    refused_because(&config(), &hs256(&claims), "ImmatureSignature");
    claims["nbf"] = json!(now() - 5);
    accepted(&config(), &hs256(&claims));
    claims["nbf"] = json!("yesterday");
    refused(&config(), &hs256(&claims));
}

#[test]
fn exp_is_required_except_for_legacy_tokens_in_compat_mode() {
    let mut claims = everything();
    claims.as_object_mut().unwrap().remove("exp");
    refused_because(&config(), &hs256(&claims), "no exp");
    // A token that says it is an at+jwt keeps the strict rules in compat mode…
    refused_because(&compat(), &hs256(&claims), "no exp");
    // …a legacy JWT does not.
    let legacy = sign(
        &header_with_typ(Some("JWT")),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    );
    let grants = accepted(&compat(), &legacy);
    assert_eq!(grants.expires_at(), None);
}

#[test]
fn aud_may_be_a_string_or_an_array() {
    let mut claims = everything();
    accepted(&config(), &hs256(&claims));
    claims["aud"] = json!(["urn:other", AUD]);
    accepted(&config(), &hs256(&claims));
    claims["aud"] = json!(["urn:other"]);
    refused_because(&config(), &hs256(&claims), "aud does not name");
    claims["aud"] = json!("urn:other");
    refused_because(&config(), &hs256(&claims), "aud does not name");
    claims["aud"] = json!(42);
    refused_because(&config(), &hs256(&claims), "JSON");
    claims.as_object_mut().unwrap().remove("aud");
    refused_because(&config(), &hs256(&claims), "no aud");
    let legacy = sign(
        &header_with_typ(None),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    );
    accepted(&compat(), &legacy);
    claims["aud"] = json!("urn:other");
    let legacy = sign(
        &header_with_typ(None),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    );
    refused(&compat(), &legacy);
}

#[test]
fn iss_must_match_when_configured() {
    let config = AuthConfig {
        issuer: Some("https://as.example".into()),
        ..config()
    };
    let mut claims = everything();
    refused_because(&config, &hs256(&claims), "iss");
    claims["iss"] = json!("https://evil.example");
    refused_because(&config, &hs256(&claims), "iss");
    claims["iss"] = json!(["https://as.example"]);
    refused_because(&config, &hs256(&claims), "JSON");
    claims["iss"] = json!("https://as.example");
    accepted(&config, &hs256(&claims));
}

#[test]
fn sub_must_be_a_clean_string() {
    let mut claims = everything();
    for (bad, reason) in [
        (json!(""), "sub"),
        (json!("a\nb"), "sub"),
        (json!(7), "JSON"),
    ] {
        claims["sub"] = bad;
        refused_because(&config(), &hs256(&claims), reason);
    }
    claims.as_object_mut().unwrap().remove("sub");
    assert_eq!(accepted(&config(), &hs256(&claims)).subject(), None);
}

// --- Where the token comes from ---

#[test]
fn no_token_is_anonymous() {
    assert!(
        authenticate(&config(), Role::Subscriber, &HeaderMap::new(), None)
            .unwrap()
            .is_none()
    );
    assert!(
        authenticate(
            &config(),
            Role::Subscriber,
            &HeaderMap::new(),
            Some("match=*&access_token=")
        )
        .unwrap()
        .is_none()
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        "mercureAccessToken=; other=1".parse().unwrap(),
    );
    assert!(
        authenticate(&config(), Role::Subscriber, &headers, None)
            .unwrap()
            .is_none()
    );
}

#[test]
fn the_header_wins_over_query_and_cookie_and_the_query_over_the_cookie() {
    let good = hs256(&everything());
    let bad = mint(Algorithm::HS256, OTHER_SECRET, &everything()).unwrap();
    let config = config();
    let cookie = |token: &str| -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("theme=dark; mercureAccessToken={token}; lang=fr");
        headers.insert(header::COOKIE, value.parse().unwrap());
        headers
    };
    let query = |token: &str| format!("match=a&access_token={token}");

    // Header (good) + query (bad) + cookie (bad): the header counts.
    let mut headers = cookie(&bad);
    headers.insert(
        header::AUTHORIZATION,
        format!("Bearer {good}").parse().unwrap(),
    );
    let grants = authenticate(&config, Role::Subscriber, &headers, Some(&query(&bad)))
        .unwrap()
        .unwrap();
    assert_eq!(grants.source(), TokenSource::Header);
    // Header (bad) + query (good): the header counts, and fails.
    let result = authenticate(
        &config,
        Role::Subscriber,
        &bearer(&bad),
        Some(&query(&good)),
    );
    assert_eq!(result.unwrap_err(), AuthError::InvalidToken);

    // Query (good) + cookie (bad): the query counts; and the reverse fails.
    let grants = authenticate(
        &config,
        Role::Subscriber,
        &cookie(&bad),
        Some(&query(&good)),
    )
    .unwrap()
    .unwrap();
    assert_eq!(grants.source(), TokenSource::Query);
    let result = authenticate(
        &config,
        Role::Subscriber,
        &cookie(&good),
        Some(&query(&bad)),
    );
    assert_eq!(result.unwrap_err(), AuthError::InvalidToken);

    // Cookie alone.
    let grants = authenticate(&config, Role::Subscriber, &cookie(&good), Some("match=a"))
        .unwrap()
        .unwrap();
    assert_eq!(grants.source(), TokenSource::Cookie);

    // Query tokens disabled: the query is ignored and the cookie counts.
    let no_query = AuthConfig {
        query_token: false,
        ..config.clone()
    };
    let grants = authenticate(
        &no_query,
        Role::Subscriber,
        &cookie(&good),
        Some(&query(&bad)),
    )
    .unwrap()
    .unwrap();
    assert_eq!(grants.source(), TokenSource::Cookie);
    assert!(
        authenticate(
            &no_query,
            Role::Subscriber,
            &HeaderMap::new(),
            Some(&query(&good))
        )
        .unwrap()
        .is_none()
    );
}

#[test]
fn cookies_are_found_among_several_headers_and_may_be_quoted() {
    let token = hs256(&everything());
    let mut headers = HeaderMap::new();
    headers.append(header::COOKIE, "a=1; b=2".parse().unwrap());
    headers.append(
        header::COOKIE,
        format!("mercureAccessTokenX=junk;mercureAccessToken=\"{token}\"")
            .parse()
            .unwrap(),
    );
    let grants = authenticate(&config(), Role::Subscriber, &headers, None)
        .unwrap()
        .unwrap();
    assert_eq!(grants.source(), TokenSource::Cookie);
    let renamed = AuthConfig {
        cookie_name: "hubToken".into(),
        ..config()
    };
    assert!(
        authenticate(&renamed, Role::Subscriber, &headers, None)
            .unwrap()
            .is_none()
    );
}

#[test]
fn malformed_authorization_headers_are_invalid_requests() {
    let token = hs256(&everything());
    for value in [
        format!("Basic {token}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer {token} extra"),
        format!("Bearer\t{token}"),
        token.clone(),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        let err = authenticate(&config(), Role::Subscriber, &headers, None).unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidRequest(_)),
            "{value}: {err:?}"
        );
    }
    // The scheme is case-insensitive; several spaces may follow it.
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        format!("bearer  {token}").parse().unwrap(),
    );
    assert!(authenticate(&config(), Role::Subscriber, &headers, None).is_ok());
    // Two headers, two access_token parameters: ambiguous.
    headers.append(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    assert!(matches!(
        authenticate(&config(), Role::Subscriber, &headers, None),
        Err(AuthError::InvalidRequest(_))
    ));
    let query = format!("access_token={token}&access_token={token}");
    assert!(matches!(
        authenticate(&config(), Role::Subscriber, &HeaderMap::new(), Some(&query)),
        Err(AuthError::InvalidRequest(_))
    ));
}

// --- Authorization details ---

#[test]
fn one_bad_detail_refuses_the_whole_token() {
    let good = detail(&["subscribe"], json!([{"match": "https://example.com/a"}]));
    let bads = [
        detail(&["subscribe", "delete"], json!([{"match": "a"}])),
        detail(&[], json!([{"match": "a"}])),
        detail(&["publish"], json!([])),
        detail(&["publish"], json!(["a"])),
        detail(&["publish"], json!([{"match": "a", "matchType": "Regex"}])),
        detail(
            &["publish"],
            json!([{"match": "a", "matchType": "urlpattern"}]),
        ),
        detail(
            &["publish"],
            json!([{"match": "https://x/(", "matchType": "URLPattern"}]),
        ),
        detail(&["publish"], json!([{"match": "a\u{85}b"}])),
        detail(&["publish"], json!([{"match": ""}])),
        detail(&["publish"], json!([{"match": 7}])),
        detail(&["publish"], json!([{"pattern": "a"}])),
        json!({"type": "mercure", "actions": ["publish"]}),
        json!({"type": "mercure", "topics": [{"match": "a"}]}),
        json!({"type": "mercure", "actions": "publish", "topics": [{"match": "a"}]}),
        json!({"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "a"}], "payload": "x"}),
        json!("mercure"),
        json!({"actions": ["publish"]}),
    ];
    accepted(
        &config(),
        &hs256(&claims(json!([good.clone(), good.clone()]))),
    );
    for bad in bads {
        let token = hs256(&claims(json!([good.clone(), bad.clone(), good.clone()])));
        refused_because(&config(), &token, "detail");
    }
    let mut not_an_array = everything();
    not_an_array["authorization_details"] = json!({"type": "mercure"});
    refused(&config(), &hs256(&not_an_array));
}

#[test]
fn limits_exceeded_refuse_the_token() {
    let config = AuthConfig {
        max_details: 2,
        limits: crate::topic::Limits {
            max_pattern_len: 16,
            max_matchers: 2,
        },
        ..config()
    };
    let one = detail(&["subscribe"], json!([{"match": "a"}, {"match": "b"}]));
    accepted(&config, &hs256(&claims(json!([one.clone(), one.clone()]))));
    let three = json!([one.clone(), one.clone(), one.clone()]);
    refused_because(
        &config,
        &hs256(&claims(three)),
        "more than 2 mercure details",
    );
    let three_topics = detail(
        &["subscribe"],
        json!([{"match": "a"}, {"match": "b"}, {"match": "c"}]),
    );
    refused_because(
        &config,
        &hs256(&claims(json!([three_topics]))),
        "more than 2 topics",
    );
    let long = detail(
        &["subscribe"],
        json!([{"match": "https://example.com/long"}]),
    );
    refused_because(&config, &hs256(&claims(json!([long]))), "longer than 16");
    // Other types do not count against the limit on mercure details.
    let other = json!({"type": "payment_initiation", "actions": ["pay"]});
    accepted(
        &config,
        &hs256(&claims(json!([other.clone(), one.clone(), other, one]))),
    );
}

#[test]
fn tokens_without_mercure_details_grant_nothing() {
    for details in [
        json!([]),
        json!([{"type": "openid_credential", "format": "x"}]),
    ] {
        let grants = grants_for(details);
        assert!(!grants.can_publish("a") && !grants.can_subscribe("a"));
        assert!(grants.subscribe_matchers().is_empty());
        assert_eq!(grants.payload_for("*"), None);
    }
    let mut claims = everything();
    claims
        .as_object_mut()
        .unwrap()
        .remove("authorization_details");
    assert!(!accepted(&config(), &hs256(&claims)).can_subscribe("a"));
}

#[test]
fn grants_match_exact_url_pattern_wildcard_and_relative_topics() {
    let grants = grants_for(json!([
        detail(
            &["publish"],
            json!([
                {"match": "https://example.com/books/1"},
                {"match": "https://example.com/authors/:id", "matchType": "URLPattern"},
            ])
        ),
        detail(
            &["subscribe"],
            json!([
                {"match": "/.well-known/mercure/subscriptions/:type/:match/:sub", "matchType": "URLPattern"},
                {"match": "news", "matchType": "Exact"},
            ])
        ),
        detail(
            &["publish", "subscribe"],
            json!([{"match": "*", "matchType": "URLPattern"}])
        ),
    ]));
    assert!(grants.can_publish("https://example.com/books/1"));
    assert!(grants.can_publish("https://example.com/authors/7"));
    assert!(grants.can_publish("anything at all"));
    assert!(grants.can_subscribe("anything at all"));

    let grants = grants_for(json!([
        detail(
            &["publish"],
            json!([
                {"match": "https://example.com/books/1"},
                {"match": "https://example.com/authors/:id", "matchType": "URLPattern"},
            ])
        ),
        detail(
            &["subscribe"],
            json!([
                {"match": "/.well-known/mercure/subscriptions/:type/:match/:sub", "matchType": "URLPattern"},
                {"match": "news"},
            ])
        ),
    ]));
    assert!(grants.can_publish("https://example.com/books/1"));
    assert!(!grants.can_publish("https://example.com/books/2"));
    assert!(!grants.can_publish("https://example.com/books/1/"));
    assert!(grants.can_publish("https://example.com/authors/7"));
    assert!(!grants.can_publish("https://example.com/authors/7/books"));
    assert!(
        !grants.can_subscribe("https://example.com/books/1"),
        "publish does not imply subscribe"
    );
    assert!(grants.can_subscribe("news") && !grants.can_subscribe("News"));
    // Relative patterns resolve on the hub's URL; so do relative topics.
    assert!(grants.can_subscribe("/.well-known/mercure/subscriptions/Exact/a/b"));
    assert!(
        grants.can_subscribe("https://hub.example/.well-known/mercure/subscriptions/Exact/a/b")
    );
    assert!(
        !grants.can_subscribe("https://other.example/.well-known/mercure/subscriptions/Exact/a/b")
    );
    assert!(!grants.can_subscribe("/.well-known/mercure/subscriptions"));
}

#[test]
fn subscribe_matchers_are_deduplicated_sorted_and_collapse_on_the_wildcard() {
    let grants = grants_for(json!([
        detail(
            &["subscribe"],
            json!([
                {"match": "b"},
                {"match": "https://example.com/:id", "matchType": "URLPattern"},
                {"match": "a"},
            ])
        ),
        detail(&["publish"], json!([{"match": "p"}])),
        detail(
            &["subscribe", "publish"],
            json!([{"match": "b", "matchType": "Exact"}])
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
    let grants = grants_for(json!([detail(
        &["subscribe"],
        json!([{"match": "a"}, {"match": "*", "matchType": "URLPattern"}])
    ),]));
    let listed: Vec<_> = grants
        .subscribe_matchers()
        .iter()
        .map(|m| (m.kind(), m.pattern()))
        .collect();
    assert_eq!(listed, [(MatchType::Exact, "*")]);
}

#[test]
fn payload_for_takes_the_first_matching_subscribe_detail() {
    let subscribe_with = |topics: Value, payload: Value| json!({"type": "mercure", "actions": ["subscribe"], "topics": topics, "payload": payload});
    let grants = grants_for(json!([
        json!({"type": "mercure", "actions": ["publish"], "topics": [{"match": "*"}], "payload": {"n": 0}}),
        subscribe_with(
            json!([{"match": "https://example.com/foo"}]),
            json!({"n": 1})
        ),
        subscribe_with(
            json!([{"match": "https://example.com/bar/:id", "matchType": "URLPattern"}]),
            json!({"n": 2})
        ),
        detail(
            &["subscribe"],
            json!([{"match": "https://example.com/none"}])
        ),
        subscribe_with(json!([{"match": "*"}]), json!({"n": 3})),
        subscribe_with(
            json!([{"match": "https://example.com/foo"}]),
            json!({"n": 4})
        ),
    ]));
    let n = |matcher: &str| {
        grants
            .payload_for(matcher)
            .map(|p| p["n"].as_u64().unwrap())
    };
    assert_eq!(n("https://example.com/foo"), Some(1));
    // The subscription's URL pattern string, taken as a topic.
    assert_eq!(n("https://example.com/bar/:id"), Some(2));
    assert_eq!(n("https://example.com/bar/7"), Some(2));
    // The first matching detail has no payload: none, even with `*` later.
    assert_eq!(n("https://example.com/none"), None);
    assert_eq!(n("https://example.com/other"), Some(3));
    assert_eq!(n("*"), Some(3));
}

// --- The legacy `mercure` claim ---

fn legacy_token(mercure: Value) -> String {
    let claims = json!({"mercure": mercure, "exp": now() + 60});
    sign(
        &header_with_typ(Some("JWT")),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
}

#[test]
fn the_legacy_claim_is_honoured_in_compat_mode_only() {
    let token = legacy_token(json!({
        "publish": ["https://example.com/books/{id}", "https://example.com/news"],
        "subscribe": ["https://example.com/users/{user}/inbox"],
        "payload": {"user": "https://example.com/users/1"},
    }));
    refused(&config(), &token);
    let grants = accepted(&compat(), &token);
    assert!(grants.can_publish("https://example.com/books/1"));
    assert!(!grants.can_publish("https://example.com/books/1/2"));
    assert!(grants.can_publish("https://example.com/news"));
    assert!(!grants.can_publish("https://example.com/newsy"));
    assert!(!grants.can_subscribe("https://example.com/books/1"));
    assert!(grants.can_subscribe("https://example.com/users/1/inbox"));
    let payload = grants
        .payload_for("https://example.com/users/1/inbox")
        .unwrap();
    assert_eq!(payload["user"], "https://example.com/users/1");

    // In an at+jwt token the claim is honoured alongside the details, in
    // compat mode only.
    let mut claims = claims(json!([detail(&["publish"], json!([{"match": "a"}]))]));
    claims["mercure"] = json!({"subscribe": ["*"], "payload": "legacy"});
    let grants = accepted(&compat(), &hs256(&claims));
    assert!(grants.can_publish("a") && grants.can_subscribe("b"));
    assert_eq!(grants.payload_for("b"), Some(&json!("legacy")));
    let grants = accepted(&config(), &hs256(&claims));
    assert!(grants.can_publish("a") && !grants.can_subscribe("b"));
}

#[test]
fn malformed_legacy_claims_refuse_the_token() {
    for bad in [
        json!(["*"]),
        json!({"publish": "*"}),
        json!({"publish": [1]}),
        json!({"publish": ["https://example.com/{+path}"]}),
        json!({"subscribe": ["https://example.com/{a,b}"]}),
        json!({"subscribe": ["https://example.com/{id"]}),
        json!({"subscribe": ["https://example.com/id}"]}),
    ] {
        refused(&compat(), &legacy_token(bad));
    }
    accepted(&compat(), &legacy_token(json!({})));
}

#[test]
fn uri_templates_become_url_patterns_that_match_no_more_than_they_say() {
    assert_eq!(
        template_to_pattern("https://example.com/books/{id}").as_deref(),
        Some("https://example.com/books/:id")
    );
    assert_eq!(
        template_to_pattern("https://example.com/{a}x/{b}*").as_deref(),
        Some(r"https://example.com/:a\x/:b\*")
    );
    assert_eq!(template_to_pattern("https://example.com/{}"), None);
    let grants = accepted(
        &compat(),
        &legacy_token(json!({"subscribe": [
            "https://example.com/{a}x/{b}*",
            "https://example.com:8443/q?id={id}",
        ]})),
    );
    assert!(grants.can_subscribe("https://example.com/1x/2*"));
    assert!(!grants.can_subscribe("https://example.com/1x/2"));
    assert!(!grants.can_subscribe("https://example.com/1y/2*"));
    assert!(grants.can_subscribe("https://example.com:8443/q?id=9"));
}

// --- CSRF ---

#[test]
fn csrf_accepts_the_hub_and_allowed_origins_only() {
    let config = config();
    let allowed = vec![
        "https://app.example".to_owned(),
        "HTTPS://Admin.Example:443/".to_owned(),
    ];
    let check = |name: header::HeaderName, value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        check_csrf(&headers, &config, &allowed)
    };
    assert!(check(header::ORIGIN, "https://hub.example").is_ok());
    assert!(check(header::ORIGIN, "https://app.example").is_ok());
    assert!(check(header::ORIGIN, "https://admin.example").is_ok());
    assert!(check(header::REFERER, "https://app.example/page?x=1").is_ok());
    assert!(
        check(
            header::REFERER,
            "https://hub.example/.well-known/mercure/ui"
        )
        .is_ok()
    );
    for (name, value) in [
        (header::ORIGIN, "https://evil.example"),
        (header::ORIGIN, "http://app.example"),
        (header::ORIGIN, "https://app.example:8443"),
        (header::ORIGIN, "https://app.example.evil.example"),
        (header::ORIGIN, "null"),
        (header::REFERER, "https://evil.example/https://app.example"),
        (header::REFERER, "not a url"),
    ] {
        let err = check(name.clone(), value).unwrap_err();
        assert!(matches!(err, AuthError::CrossOrigin(_)), "{name}: {value}");
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
    assert!(check_csrf(&headers, &config, &allowed).is_err());
    // Neither header: refused.
    let err = check_csrf(&HeaderMap::new(), &config, &allowed).unwrap_err();
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
    assert!(
        err.response(&config)
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .is_none()
    );
}

// --- Error responses ---

#[test]
fn error_responses_follow_rfc_6750() {
    let config = config();
    let cases = [
        (
            AuthError::Missing,
            StatusCode::UNAUTHORIZED,
            "Bearer resource_metadata=\"https://hub.example/.well-known/oauth-protected-resource/.well-known/mercure\"",
        ),
        (
            AuthError::InvalidToken,
            StatusCode::UNAUTHORIZED,
            "Bearer error=\"invalid_token\"",
        ),
        (
            AuthError::InsufficientScope,
            StatusCode::FORBIDDEN,
            "Bearer error=\"insufficient_scope\"",
        ),
        (
            AuthError::InvalidRequest("bad header".into()),
            StatusCode::BAD_REQUEST,
            "Bearer error=\"invalid_request\"",
        ),
    ];
    for (error, status, challenge) in cases {
        let response = error.response(&config);
        assert_eq!(response.status(), status, "{error:?}");
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], challenge);
        assert!(
            response.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
    }
    let no_metadata = AuthConfig {
        resource_metadata: String::new(),
        ..config
    };
    let response = AuthError::Missing.response(&no_metadata);
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn error_bodies_never_say_why_a_token_failed() {
    let config = config();
    let err = subscribe(
        &config,
        &mint(Algorithm::HS256, OTHER_SECRET, &everything()).unwrap(),
    )
    .unwrap_err();
    let body = axum::body::to_bytes(err.response(&config).into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"invalid token\n");
}

#[test]
fn dev_claims_make_working_tokens() {
    let claims = dev_claims(AUD, &["subscribe"], Duration::from_secs(60));
    let grants = accepted(&config(), &hs256(&claims));
    assert!(grants.can_subscribe("anything") && !grants.can_publish("anything"));
    assert!(grants.expires_at().unwrap() > SystemTime::now());
}
