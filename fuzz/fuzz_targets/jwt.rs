//! Fuzzes token presentation and decoding: arbitrary `Authorization`
//! headers, cookies and query strings, in both modes, for both roles.
//!
//! The hub's key is a secret the fuzzer does not know, so the invariants
//! are those of an attacker's view:
//!
//! * no panic, whatever the header, cookie, query or token bytes;
//! * no token is ever accepted (`Ok(Some(_))` would be a forged grant);
//! * a refusal is `invalid_token`, or `invalid_request` when (and only
//!   when) an `Authorization` header was sent that is not `Bearer <token>`;
//! * no token presented means anonymous (`Ok(None)`), never an error;
//! * the CSRF check on cookie-authenticated publications never panics on
//!   arbitrary `Origin` and `Referer` values.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use ssehub_server::auth::{
    Algorithm, AuthConfig, AuthError, Issuer, KeyConfig, Role, authenticate, check_csrf,
};
use url::Url;

/// The input, as text a seed can be written in: a line of flags (`c`
/// compatibility mode, `p` the publisher role, `a` an `Authorization`
/// header, `k` a `Cookie` header, `o` an `Origin`, `r` a `Referer`, `q` a
/// query), one line per header in that order, then the query (the rest).
#[derive(Debug)]
struct Input<'a> {
    authorization: Option<&'a [u8]>,
    cookie: Option<&'a [u8]>,
    query: Option<&'a str>,
    origin: Option<&'a [u8]>,
    referer: Option<&'a [u8]>,
    compat: bool,
    publisher: bool,
}

impl<'a> Input<'a> {
    fn read(bytes: &'a [u8]) -> Option<Self> {
        let mut fields = bytes.splitn(6, |&b| b == b'\n');
        let flags = fields.next()?;
        let has = |flag: u8| flags.contains(&flag);
        let mut next = |flag: u8| {
            let field = fields.next().unwrap_or_default();
            has(flag).then_some(field)
        };
        let authorization = next(b'a');
        let cookie = next(b'k');
        let origin = next(b'o');
        let referer = next(b'r');
        let query = match next(b'q') {
            Some(query) => Some(std::str::from_utf8(query).ok()?),
            None => None,
        };
        Some(Self {
            authorization,
            cookie,
            query,
            origin,
            referer,
            compat: has(b'c'),
            publisher: has(b'p'),
        })
    }
}

const SECRET: &str = "a-secret-of-at-least-32-bytes-!!";
const AUDIENCE: &str = "https://hub.example/.well-known/mercure";

fuzz_target!(|bytes: &[u8]| {
    let Some(input) = Input::read(bytes) else {
        return;
    };
    let base = Url::parse(AUDIENCE).unwrap();
    let mut config = AuthConfig::new(base);
    config.compat = input.compat;
    let key = KeyConfig::new(Algorithm::HS256, SECRET).unwrap();
    config.issuers.push(
        Issuer::new("https://app.example")
            .publisher(key.clone())
            .subscriber(key),
    );

    let mut headers = HeaderMap::new();
    let value = |raw: Option<&[u8]>| raw.and_then(|raw| HeaderValue::from_bytes(raw).ok());
    let authorization = value(input.authorization);
    if let Some(v) = &authorization {
        headers.insert(header::AUTHORIZATION, v.clone());
    }
    if let Some(v) = value(input.cookie) {
        headers.insert(header::COOKIE, v);
    }
    if let Some(v) = value(input.origin) {
        headers.insert(header::ORIGIN, v);
    }
    if let Some(v) = value(input.referer) {
        headers.insert(header::REFERER, v);
    }
    let role = if input.publisher {
        Role::Publisher
    } else {
        Role::Subscriber
    };

    match authenticate(&config, role, &headers, input.query, AUDIENCE) {
        Ok(Some(grants)) => panic!("a token signed by no trusted key was accepted: {grants:?}"),
        Ok(None) => {
            assert!(
                authorization.is_none(),
                "an Authorization header is a presentation"
            );
        }
        Err(AuthError::InvalidToken) => {}
        Err(AuthError::InvalidRequest(_)) => {
            assert!(authorization.is_some(), "invalid_request without a header");
        }
        Err(other) => panic!("authenticate returned {other:?}"),
    }
    let _ = check_csrf(&headers, AUDIENCE, &["https://app.example".to_owned()]);
});
