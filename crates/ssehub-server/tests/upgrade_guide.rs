//! The Mercure 1.0 upgrade guide (`docs/UPGRADE.md` of the reference hub),
//! checked against a real hub over HTTP.
//!
//! One `row_*` test per row of the guide's "What changed at a glance"
//! table: the 1.0 column works by default and the 0.x column is refused or
//! ignored; under `--compat` (the guide's "Compatibility mode") the 0.x
//! column works too where that section says compatibility keeps it, and
//! stays refused where it does not. Then one test per observable rule of
//! the "Migrate your …" sections. Each test quotes the guide text it checks.

use std::time::Duration;

use clap::Parser as _;
use futures_util::StreamExt;
use serde_json::{Value, json};
use ssehub::parse::{Item, Message, Parser};
use ssehub_server::auth::DETAIL_TYPE;
use ssehub_server::{Config, ConfigError, Running, StartError};

const KEY: &str = "upgrade-guide-secret-of-32-bytes!!";
const ISSUER: &str = "https://issuer.test";
const WAIT: Duration = Duration::from_secs(5);
const SUBSCRIPTIONS: &str = "/.well-known/mercure/subscriptions";
const BOOK: &str = "https://example.com/books/1";
const BOOKS_PATTERN: &str = "https://example.com/books/:id";
const BOOKS_TEMPLATE: &str = "https://example.com/books/{id}";
/// Selects every subscription event of the 1.0 topic shape.
const EVENTS_PATTERN: &str = "/.well-known/mercure/subscriptions/:type/:match/:sub";

/// The two dialects: the default, and `--compat`.
const MODES: [bool; 2] = [false, true];

/// A hub started in this process, trusting `ISSUER` with `KEY`.
struct Hub {
    running: Running,
    http: reqwest::Client,
}

/// Starts a hub with exactly `args` (after the program name and the
/// listening address).
async fn launch(args: &[&str]) -> Result<Running, StartError> {
    let mut all = vec!["ssehub", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    ssehub_server::start(Config::parse_from(all)).await
}

impl Hub {
    async fn start(flags: &[&str]) -> Self {
        let mut args = vec!["--issuer", ISSUER, "--jwt-key", KEY];
        args.extend_from_slice(flags);
        Self::of(launch(&args).await.unwrap())
    }

    /// A hub in the default mode or in compatibility mode, with `flags`.
    async fn in_mode(compat: bool, flags: &[&str]) -> Self {
        let mut all = flags.to_vec();
        if compat {
            all.push("--compat");
        }
        Self::start(&all).await
    }

    fn of(running: Running) -> Self {
        Self {
            running,
            http: reqwest::Client::new(),
        }
    }

    /// The hub's URL. No resource identifier is pinned, so it is also the
    /// `aud` tokens must carry: the hub derives it from the host a client
    /// contacts, `127.0.0.1:PORT` here.
    fn url(&self) -> String {
        self.running.hub_url().to_string()
    }

    fn origin(&self) -> String {
        format!("http://{}", self.running.local_addr())
    }

    /// The RFC 9728 metadata URL every challenge points at.
    fn metadata(&self) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource/.well-known/mercure",
            self.origin()
        )
    }

    /// A 1.0 token with these authorization details.
    fn token(&self, details: Value) -> String {
        self.token_with(json!({ "authorization_details": details }))
    }

    /// A 1.0 token as the reference `mercure token` command mints one
    /// (`typ: at+jwt`; `iss`, `aud`, `sub`, `client_id`, `iat`, `exp`,
    /// `jti`), `claims` overriding or adding claims, or removing them with
    /// `null`.
    fn token_with(&self, claims: Value) -> String {
        sign(Some("at+jwt"), &self.claims(claims))
    }

    fn claims(&self, overrides: Value) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({
            "iss": ISSUER,
            "aud": self.url(),
            "sub": uuid::Uuid::new_v4().urn().to_string(),
            "client_id": ISSUER,
            "iat": now,
            "exp": now + 600,
            "jti": uuid::Uuid::new_v4().urn().to_string(),
        });
        merged(claims, &overrides)
    }

    /// May publish on every topic.
    fn publisher(&self) -> String {
        self.token(json!([grant(&["publish"], &[("exact", "*")])]))
    }

    /// May subscribe to every topic (and to the subscription events).
    fn watcher(&self) -> String {
        self.token(json!([grant(&["subscribe"], &[("exact", "*")])]))
    }

    /// `POST` a form to the hub with `headers` and `query` on the URL.
    async fn post_with(
        &self,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = self
            .http
            .post(self.url())
            .query(query)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// `POST` with a bearer token, if any.
    async fn post(&self, token: Option<&str>, form: &[(&str, &str)]) -> reqwest::Response {
        match token {
            Some(token) => {
                self.post_with(&[], &[("authorization", &bearer(token))], form)
                    .await
            }
            None => self.post_with(&[], &[], form).await,
        }
    }

    /// Publishes with an all-topics token; returns the id.
    async fn publish(&self, form: &[(&str, &str)]) -> String {
        let response = self.post(Some(&self.publisher()), form).await;
        assert_eq!(response.status(), 200, "publish {form:?}");
        response.text().await.unwrap()
    }

    /// Publishes a private update, then a public `end` sentinel, on `topic`.
    async fn private_then_end(&self, topic: &str, data: &str) {
        self.publish(&[("topic", topic), ("data", data), ("private", "on")])
            .await;
        self.publish(&[("topic", topic), ("data", "end")]).await;
    }

    async fn get(&self, query: &[(&str, &str)], headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.http.get(self.url()).query(query);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    async fn subscribe(&self, query: &[(&str, &str)], headers: &[(&str, &str)]) -> Stream {
        let response = self.get(query, headers).await;
        assert_eq!(response.status(), 200, "subscribe {query:?} {headers:?}");
        Stream::new(response)
    }

    /// `GET path` on the hub's origin with a bearer token.
    async fn fetch(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.origin()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

/// `object` with the members of `overrides` replacing or adding its own,
/// or removing them where they are `null`.
fn merged(mut object: Value, overrides: &Value) -> Value {
    let map = object.as_object_mut().unwrap();
    for (name, value) in overrides.as_object().unwrap() {
        match value {
            Value::Null => map.remove(name),
            value => map.insert(name.clone(), value.clone()),
        };
    }
    object
}

/// Signs `claims` with `KEY` (HS256) under a header of type `typ`.
fn sign(typ: Option<&str>, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
    )
    .unwrap()
}

/// A 0.x token: `typ: JWT`, no `iss`, `aud` nor `exp`, the `mercure` claim.
fn legacy(mercure: Value) -> String {
    sign(Some("JWT"), &json!({ "mercure": mercure }))
}

/// A Mercure authorization detail; `topics` are `(match_type, match)`.
fn grant(actions: &[&str], topics: &[(&str, &str)]) -> Value {
    let topics: Vec<Value> = topics
        .iter()
        .map(|(kind, m)| json!({"match": m, "match_type": kind}))
        .collect();
    json!({"type": DETAIL_TYPE, "actions": actions, "topics": topics})
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts `response` is a refusal with `status` whose RFC 6750 challenge
/// carries `error` (`None`: the bare challenge of a request that presented
/// no token), pointing at `hub`'s metadata.
fn assert_refused(hub: &Hub, response: &reqwest::Response, status: u16, error: Option<&str>) {
    assert_eq!(response.status(), status);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    let metadata = format!("resource_metadata=\"{}\"", hub.metadata());
    let want = match error {
        Some(error) => format!("Bearer error=\"{error}\", {metadata}"),
        None => format!("Bearer {metadata}"),
    };
    assert_eq!(challenge, want);
}

/// A subscriber's parsed event stream.
struct Stream {
    headers: reqwest::header::HeaderMap,
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: Parser,
}

impl Stream {
    fn new(response: reqwest::Response) -> Self {
        Self {
            headers: response.headers().clone(),
            body: response.bytes_stream().boxed(),
            parser: Parser::new(),
        }
    }

    /// The next message, or `None` when the stream ends or nothing comes
    /// within `WAIT`.
    async fn next(&mut self) -> Option<Message> {
        loop {
            while let Some(item) = self.parser.next_item() {
                if let Item::Message(message) = item {
                    return Some(message);
                }
            }
            match tokio::time::timeout(WAIT, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.parser.feed(&chunk),
                _ => return None,
            }
        }
    }

    /// The data of the messages up to and including the `end` sentinel.
    async fn until_end(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(message) = self.next().await {
            let done = message.data == "end";
            seen.push(message.data);
            if done {
                return seen;
            }
        }
        panic!("the end sentinel never came; got {seen:?}");
    }

    /// The next subscription event whose document has `field == value`
    /// (skipping the others, such as the watcher's own), and that document.
    async fn subscription_event(&mut self, field: &str, value: &str) -> (Message, Value) {
        while let Some(message) = self.next().await {
            let document: Value = serde_json::from_str(&message.data).unwrap();
            if document[field] == value {
                return (message, document);
            }
        }
        panic!("no subscription event with {field} = {value:?}");
    }
}

/// `value` percent-encoded as one path segment: RFC 6570 simple expansion,
/// which keeps only the unreserved characters.
fn segment(value: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, UNRESERVED).to_string()
}

/// "Matcher types | URI Template, string, plus exploratory types |
/// `exact` and `urlpattern` only"
#[tokio::test]
async fn row_matcher_types() {
    for compat in MODES {
        let hub = Hub::in_mode(compat, &["--anonymous"]).await;
        // 1.0: the two types, granted in a token and selected by a subscriber.
        let both = hub.token(json!([grant(
            &["subscribe"],
            &[
                ("exact", BOOK),
                ("urlpattern", "https://example.com/authors/:id")
            ]
        )]));
        let mut sub = hub
            .subscribe(
                &[
                    ("match", BOOK),
                    ("match_urlpattern", "https://example.com/authors/:id"),
                ],
                &[("authorization", &bearer(&both))],
            )
            .await;
        hub.publish(&[("topic", BOOK), ("data", "exact"), ("private", "on")])
            .await;
        hub.private_then_end("https://example.com/authors/7", "urlpattern")
            .await;
        assert_eq!(sub.until_end().await, ["exact", "urlpattern", "end"]);

        // Any other type, in a token or in a subscription, in either mode:
        // compatibility mode brings back the 0.x selector, not new names.
        for kind in ["uritemplate", "regexp"] {
            let other = hub.token(json!([grant(&["publish"], &[(kind, BOOK)])]));
            let refused = hub.post(Some(&other), &[("topic", BOOK)]).await;
            assert_refused(&hub, &refused, 401, Some("invalid_token"));
            let param = format!("match_{kind}");
            let refused = hub.get(&[(param.as_str(), BOOK)], &[]).await;
            assert_refused(&hub, &refused, 400, Some("invalid_request"));
        }
        // A bare string is no matcher of an authorization detail, in either
        // mode (the 0.x bare strings live in the `mercure` claim only).
        let bare = hub.token(json!([
            {"type": DETAIL_TYPE, "actions": ["publish"], "topics": [BOOK]}
        ]));
        let refused = hub.post(Some(&bare), &[("topic", BOOK)]).await;
        assert_refused(&hub, &refused, 401, Some("invalid_token"));

        // 0.x: "URI Template, string" selectors (`topic=`) and bare-string
        // claims, kept by compatibility mode ("deprecated_topic").
        let claim = legacy(json!({"subscribe": [BOOKS_TEMPLATE, "https://example.com/plain"]}));
        let response = hub
            .get(
                &[
                    ("topic", BOOKS_TEMPLATE),
                    ("topic", "https://example.com/plain"),
                ],
                &[("cookie", &format!("mercureAuthorization={claim}"))],
            )
            .await;
        if !compat {
            assert_refused(&hub, &response, 400, Some("invalid_request"));
            continue;
        }
        assert_eq!(response.status(), 200);
        let mut sub = Stream::new(response);
        hub.publish(&[
            ("topic", "https://example.com/books/2"),
            ("data", "template"),
            ("private", "on"),
        ])
        .await;
        hub.private_then_end("https://example.com/plain", "string")
            .await;
        assert_eq!(sub.until_end().await, ["template", "string", "end"]);
    }
}

/// "Subscribe query parameter | `topic=<pattern>` (URI Template or string)
/// | `match=<exact>` or `match_urlpattern=<pattern>` (case-sensitive)"
#[tokio::test]
async fn row_subscribe_query_parameter() {
    for compat in MODES {
        let hub = Hub::in_mode(compat, &["--anonymous"]).await;
        // 1.0, in both modes.
        let mut exact = hub.subscribe(&[("match", BOOK)], &[]).await;
        let mut pattern = hub
            .subscribe(&[("match_urlpattern", BOOKS_PATTERN)], &[])
            .await;
        // "(case-sensitive)", in both modes.
        for name in ["Match", "MATCH", "match_URLPattern", "Match_urlpattern"] {
            let refused = hub.get(&[(name, BOOK)], &[]).await;
            assert_refused(&hub, &refused, 400, Some("invalid_request"));
        }
        // 0.x: refused by default, kept by compatibility mode.
        let string = hub.get(&[("topic", BOOK)], &[]).await;
        let template = hub.get(&[("topic", BOOKS_TEMPLATE)], &[]).await;
        let legacy = if compat {
            assert_eq!(string.status(), 200);
            assert_eq!(template.status(), 200);
            Some((Stream::new(string), Stream::new(template)))
        } else {
            assert_refused(&hub, &string, 400, Some("invalid_request"));
            assert_refused(&hub, &template, 400, Some("invalid_request"));
            None
        };
        hub.publish(&[("topic", BOOK), ("data", "end")]).await;
        assert_eq!(exact.until_end().await, ["end"]);
        assert_eq!(pattern.until_end().await, ["end"]);
        if let Some((mut string, mut template)) = legacy {
            assert_eq!(string.until_end().await, ["end"]);
            assert_eq!(template.until_end().await, ["end"]);
        }
    }
}

/// "Templating language | URI Templates (RFC 6570) | URL Patterns (WHATWG)"
#[tokio::test]
async fn row_templating_language() {
    for compat in MODES {
        let hub = Hub::in_mode(compat, &["--anonymous"]).await;
        // 1.0: `:id` is a URL Pattern parameter. In a URL Pattern `{id}` is
        // a group holding the literal text `id`: it selects
        // `https://example.com/books/id` only, in both modes.
        let mut pattern = hub
            .subscribe(&[("match_urlpattern", BOOKS_PATTERN)], &[])
            .await;
        let mut braces = hub
            .subscribe(&[("match_urlpattern", BOOKS_TEMPLATE)], &[])
            .await;
        // A URL Pattern grant authorizes the private updates it matches.
        let granted = hub.token(json!([grant(
            &["subscribe"],
            &[("urlpattern", BOOKS_PATTERN)]
        )]));
        let mut private = hub
            .subscribe(
                &[("match", BOOK), ("match", "https://example.com/books/id")],
                &[("authorization", &bearer(&granted))],
            )
            .await;
        // 0.x: the same template as a URI Template, compat only.
        let template = hub.get(&[("topic", BOOKS_TEMPLATE)], &[]).await;
        let mut template = if compat {
            assert_eq!(template.status(), 200);
            Some(Stream::new(template))
        } else {
            assert_eq!(template.status(), 400);
            None
        };
        hub.publish(&[("topic", BOOK), ("data", "1"), ("private", "on")])
            .await;
        hub.publish(&[("topic", BOOK), ("data", "public 1")]).await;
        hub.publish(&[("topic", "https://example.com/books/id"), ("data", "end")])
            .await;
        assert_eq!(pattern.until_end().await, ["public 1", "end"]);
        assert_eq!(braces.until_end().await, ["end"]);
        assert_eq!(private.until_end().await, ["1", "public 1", "end"]);
        if let Some(template) = &mut template {
            // `{id}` expands to `1` and to `id` alike.
            assert_eq!(template.until_end().await, ["public 1", "end"]);
        }
    }
}

/// "Token | bespoke `mercure` JWT claim | OAuth 2.0 access token:
/// `typ: at+jwt`, `iss`, `aud`, `authorization_details`"
///
/// Compatibility mode accepts "tokens without `typ: at+jwt`, `aud`, `exp`
/// or a matching `iss`" ("deprecated_claim").
#[tokio::test]
async fn row_token() {
    for compat in MODES {
        let hub = Hub::in_mode(compat, &[]).await;
        let details = json!([grant(&["publish"], &[("exact", "*")])]);
        // 1.0, in both modes.
        let full = hub.token(details.clone());
        assert_eq!(
            hub.post(Some(&full), &[("topic", BOOK)]).await.status(),
            200
        );
        // Each 1.0 requirement broken in turn; the 0.x token breaks them all.
        let claims = |overrides: Value| {
            let mut claims = hub.claims(overrides);
            claims["authorization_details"] = details.clone();
            claims
        };
        let broken = [
            ("typ JWT", sign(Some("JWT"), &claims(json!({})))),
            ("no typ", sign(None, &claims(json!({})))),
            ("no iss", hub.token_with(json!({"iss": null, "authorization_details": details}))),
            (
                "untrusted iss",
                hub.token_with(json!({"iss": "https://stranger.test", "authorization_details": details})),
            ),
            ("no aud", hub.token_with(json!({"aud": null, "authorization_details": details}))),
            (
                "another hub's aud",
                hub.token_with(json!({"aud": "https://other.test/.well-known/mercure", "authorization_details": details})),
            ),
            ("no exp", hub.token_with(json!({"exp": null, "authorization_details": details}))),
            ("0.x token", legacy(json!({"publish": ["*"]}))),
        ];
        for (what, token) in broken {
            let response = hub.post(Some(&token), &[("topic", BOOK)]).await;
            if compat {
                assert_eq!(response.status(), 200, "{what}");
            } else {
                assert_refused(&hub, &response, 401, Some("invalid_token"));
            }
        }
        // An `exp` that is there is enforced in both modes.
        let expired = hub.token_with(json!({"exp": 1, "authorization_details": details}));
        let response = hub.post(Some(&expired), &[("topic", BOOK)]).await;
        assert_refused(&hub, &response, 401, Some("invalid_token"));
        let expired = sign(None, &json!({"exp": 1, "mercure": {"publish": ["*"]}}));
        let response = hub.post(Some(&expired), &[("topic", BOOK)]).await;
        assert_refused(&hub, &response, 401, Some("invalid_token"));
    }
}

/// "Authorization | `mercure.publish` / `mercure.subscribe` string arrays |
/// `authorization_details` entries with the Mercure `type` URI"
///
/// Compatibility mode keeps "the legacy `mercure` claim (string and object
/// forms), the `https://mercure.rocks/` namespaced claim".
#[tokio::test]
async fn row_authorization() {
    for compat in MODES {
        let hub = Hub::in_mode(compat, &["--anonymous"]).await;
        // Every token here is a valid 1.0 token; only where its rights are
        // written differs.
        let details = hub.token(json!([grant(
            &["publish", "subscribe"],
            &[("exact", BOOK)]
        )]));
        let claim = json!({"publish": [BOOK], "subscribe": [BOOK]});
        let mercure = hub.token_with(json!({"mercure": claim}));
        let namespaced = hub.token_with(json!({"https://mercure.rocks/": claim}));
        let objects = hub.token_with(json!({"mercure": {
            "publish": [{"match": BOOK}],
            "subscribe": [{"match": BOOKS_PATTERN, "match_type": "urlpattern"}],
        }}));
        // A detail whose `type` is not the Mercure URI is another resource's.
        let short_type = hub.token(json!([
            {"type": "mercure", "actions": ["publish", "subscribe"], "topics": [{"match": BOOK}]}
        ]));

        assert_eq!(
            hub.post(Some(&details), &[("topic", BOOK)]).await.status(),
            200
        );
        for (what, token) in [
            ("mercure", &mercure),
            ("namespaced", &namespaced),
            ("objects", &objects),
        ] {
            let response = hub.post(Some(token), &[("topic", BOOK)]).await;
            if compat {
                assert_eq!(response.status(), 200, "{what}");
            } else {
                // Not invalid: ignored, so the token grants nothing.
                assert_refused(&hub, &response, 403, Some("insufficient_scope"));
            }
        }
        let response = hub.post(Some(&short_type), &[("topic", BOOK)]).await;
        assert_refused(&hub, &response, 403, Some("insufficient_scope"));

        let (granted, nothing): (&[&str], &[&str]) = (&["private", "end"], &["end"]);
        let legacy_rights = if compat { granted } else { nothing };
        let mut subscribers = Vec::new();
        for (token, want) in [
            (&details, granted),
            (&mercure, legacy_rights),
            (&namespaced, legacy_rights),
            (&objects, legacy_rights),
            (&short_type, nothing),
        ] {
            let auth = bearer(token);
            let sub = hub
                .subscribe(&[("match", BOOK)], &[("authorization", &auth)])
                .await;
            subscribers.push((sub, want));
        }
        hub.private_then_end(BOOK, "private").await;
        for (mut sub, want) in subscribers {
            assert_eq!(sub.until_end().await, want);
        }
    }
}

/// "Token in query / cookie | `authorization` param, `mercureAuthorization`
/// cookie | `__Secure-mercure_access_token` cookie; no query parameter
/// (RFC 9700)"
///
/// Compatibility mode keeps "the `authorization` query parameter, the
/// `mercureAuthorization` cookie".
#[tokio::test]
async fn row_token_in_query_or_cookie() {
    for compat in MODES {
        // Not anonymous: a token the hub does not look at leaves the
        // request token-less, which is a bare 401.
        let hub = Hub::in_mode(compat, &[]).await;
        let subscriber = hub.token(json!([grant(&["subscribe"], &[("exact", BOOK)])]));
        let modern_cookie = format!("__Secure-mercure_access_token={subscriber}");
        let legacy_cookie = format!("mercureAuthorization={subscriber}");
        let mut by_cookie = hub
            .subscribe(&[("match", BOOK)], &[("cookie", &modern_cookie)])
            .await;
        let by_query = hub
            .get(&[("match", BOOK), ("authorization", &subscriber)], &[])
            .await;
        let by_legacy_cookie = hub
            .get(&[("match", BOOK)], &[("cookie", &legacy_cookie)])
            .await;
        let publisher = hub.publisher();
        let published_by_query = hub
            .post_with(
                &[("authorization", &publisher)],
                &[],
                &[("topic", "elsewhere")],
            )
            .await;
        let mut legacy_subscribers = Vec::new();
        if compat {
            assert_eq!(published_by_query.status(), 200);
            for response in [by_query, by_legacy_cookie] {
                assert_eq!(response.status(), 200);
                legacy_subscribers.push(Stream::new(response));
            }
        } else {
            for response in [&by_query, &by_legacy_cookie, &published_by_query] {
                assert_refused(&hub, response, 401, None);
            }
        }
        hub.private_then_end(BOOK, "private").await;
        assert_eq!(by_cookie.until_end().await, ["private", "end"]);
        for mut sub in legacy_subscribers {
            assert_eq!(sub.until_end().await, ["private", "end"]);
        }
    }
}

/// "Auth errors | `401` / silent drop | RFC 6750: `401 invalid_token`,
/// `403 insufficient_scope`, `400 invalid_request`"
///
/// The compatibility section lists no 0.x error behaviour: compatibility
/// mode answers the same RFC 6750 errors, 0.x tokens included.
#[tokio::test]
async fn row_auth_errors() {
    for compat in MODES {
        let hub = Hub::in_mode(compat, &["--subscriptions"]).await;
        let form = [("topic", BOOK)];
        // "No token where one is required -> `401` with a bare
        // `WWW-Authenticate: Bearer` challenge and a `resource_metadata`
        // parameter."
        assert_refused(&hub, &hub.post(None, &form).await, 401, None);
        assert_refused(&hub, &hub.get(&[("match", BOOK)], &[]).await, 401, None);
        // "Invalid token -> `401` `error="invalid_token"`."
        let invalid = hub.post(Some("not.a.token"), &form).await;
        assert_refused(&hub, &invalid, 401, Some("invalid_token"));
        // "Valid token without a grant for the action on the topic -> `403`
        // `error="insufficient_scope"` (previously `401` or a silent drop)."
        let elsewhere = hub.token(json!([grant(
            &["publish", "subscribe"],
            &[("exact", "elsewhere")]
        )]));
        let forbidden = hub.post(Some(&elsewhere), &form).await;
        assert_refused(&hub, &forbidden, 403, Some("insufficient_scope"));
        let subscriber_only = hub.token(json!([grant(&["subscribe"], &[("exact", "*")])]));
        let forbidden = hub.post(Some(&subscriber_only), &form).await;
        assert_refused(&hub, &forbidden, 403, Some("insufficient_scope"));
        let forbidden = hub.fetch(SUBSCRIPTIONS, &elsewhere).await;
        assert_refused(&hub, &forbidden, 403, Some("insufficient_scope"));
        if compat {
            let narrow = legacy(json!({"publish": ["elsewhere"]}));
            let forbidden = hub.post(Some(&narrow), &form).await;
            assert_refused(&hub, &forbidden, 403, Some("insufficient_scope"));
        }
        // "Malformed request -> `400` `error="invalid_request"`."
        let basic = hub
            .post_with(&[], &[("authorization", "Basic dXNlcjpwYXNz")], &form)
            .await;
        assert_refused(&hub, &basic, 400, Some("invalid_request"));
        let watcher = hub.watcher();
        let no_matcher = hub
            .get(
                &[("last_event_id", "earliest")],
                &[("authorization", &bearer(&watcher))],
            )
            .await;
        assert_refused(&hub, &no_matcher, 400, Some("invalid_request"));
    }
}

/// "Subscription event topic |
/// `/.well-known/mercure/subscriptions/{topic}/{subscriber}` |
/// `/.well-known/mercure/subscriptions/{match_type}/{match}/{subscriber}`"
///
/// Compatibility mode keeps "the `/subscriptions/{topic}` routes" for 0.x
/// (`topic=`) subscriptions.
#[tokio::test]
async fn row_subscription_event_topic() {
    for compat in MODES {
        let hub = Hub::in_mode(compat, &["--anonymous", "--subscriptions"]).await;
        let watcher = hub.watcher();
        let mut events = hub
            .subscribe(
                &[("match_urlpattern", EVENTS_PATTERN)],
                &[("authorization", &bearer(&watcher))],
            )
            .await;
        // 1.0, in both modes: the type, the matcher, the subscriber.
        let _subscriber = hub.subscribe(&[("match", BOOK)], &[]).await;
        let (_, document) = events.subscription_event("match", BOOK).await;
        let subscriber = document["subscriber"].as_str().unwrap();
        let id = format!(
            "{SUBSCRIPTIONS}/exact/{}/{}",
            segment(BOOK),
            segment(subscriber)
        );
        assert_eq!(document["id"], id.as_str());
        assert_eq!(document["match_type"], "exact");
        assert!(document.get("topic").is_none(), "{document}");
        let one = hub.fetch(&id, &watcher).await;
        assert_eq!(one.status(), 200);
        let of_matcher = format!("{SUBSCRIPTIONS}/exact/{}", segment(BOOK));
        let listed: Value = hub.fetch(&of_matcher, &watcher).await.json().await.unwrap();
        assert_eq!(listed["subscriptions"][0]["id"], id.as_str());

        // The 0.x shape of the same subscription is no route by default;
        // in compatibility mode it names a 0.x subscription, and there is
        // none for this topic.
        let as_topic = format!("{SUBSCRIPTIONS}/{}", segment(BOOK));
        let as_topic_one = format!("{as_topic}/{}", segment(subscriber));
        let (status, status_one) = if compat { (200, 404) } else { (404, 400) };
        assert_eq!(hub.fetch(&as_topic, &watcher).await.status(), status);
        assert_eq!(
            hub.fetch(&as_topic_one, &watcher).await.status(),
            status_one
        );
        if !compat {
            continue;
        }
        let empty: Value = hub.fetch(&as_topic, &watcher).await.json().await.unwrap();
        assert_eq!(empty["subscriptions"], json!([]));

        // 0.x, in compatibility mode: a `topic=` subscription, watched by
        // a 0.x client with a URI Template.
        let old_watcher = legacy(json!({"subscribe": ["*"]}));
        let mut old_events = hub
            .subscribe(
                &[
                    (
                        "topic",
                        "/.well-known/mercure/subscriptions/{topic}/{subscriber}",
                    ),
                    ("authorization", &old_watcher),
                ],
                &[],
            )
            .await;
        let _old = hub.subscribe(&[("topic", BOOKS_TEMPLATE)], &[]).await;
        let (_, document) = old_events.subscription_event("topic", BOOKS_TEMPLATE).await;
        let subscriber = document["subscriber"].as_str().unwrap();
        let id = format!(
            "{SUBSCRIPTIONS}/{}/{}",
            segment(BOOKS_TEMPLATE),
            segment(subscriber)
        );
        assert_eq!(document["id"], id.as_str());
        assert!(document.get("match_type").is_none(), "{document}");
        assert_eq!(hub.fetch(&id, &watcher).await.status(), 200);
        let of_topic = format!("{SUBSCRIPTIONS}/{}", segment(BOOKS_TEMPLATE));
        let listed: Value = hub.fetch(&of_topic, &watcher).await.json().await.unwrap();
        assert_eq!(listed["subscriptions"][0]["id"], id.as_str());
    }
}

/// "The exact-match parameter is `match` (explicit spelling:
/// `match_exact`)"; "Parameter names are **case-sensitive**. Any other
/// name under the `match` prefix is rejected with `400`, so typos fail
/// loudly."
#[tokio::test]
async fn subscriber_match_names_are_case_sensitive_and_the_prefix_is_reserved() {
    let hub = Hub::start(&["--anonymous"]).await;
    let mut explicit = hub.subscribe(&[("match_exact", BOOK)], &[]).await;
    // Other parameters are not matchers and are left alone.
    let mut unrelated = hub.subscribe(&[("match", BOOK), ("lang", "fr")], &[]).await;
    for typo in [
        "Match",
        "MATCH",
        "Match_exact",
        "match_Exact",
        "matchExact",
        "match_URLPattern",
        "matchUrlpattern",
        "match_uritemplate",
        "matches",
        "match_",
    ] {
        // Even beside a valid matcher.
        let refused = hub.get(&[("match", BOOK), (typo, BOOK)], &[]).await;
        assert_refused(&hub, &refused, 400, Some("invalid_request"));
    }
    hub.publish(&[("topic", BOOK), ("data", "end")]).await;
    assert_eq!(explicit.until_end().await, ["end"]);
    assert_eq!(unrelated.until_end().await, ["end"]);
}

/// The guide's "After (1.0)" token: `iss`, `aud`, `exp` and
/// `authorization_details` under `typ: at+jwt`. "RFC 9068 also requires
/// issuers to populate `sub`, `client_id`, `iat`, and `jti`": an issuer's
/// duty, which the hub does not check (the spec has hubs enforce `iss`,
/// `exp` and `aud`).
#[tokio::test]
async fn the_guides_example_token_works_as_written() {
    let hub = Hub::start(&[]).await;
    let example = sign(
        Some("at+jwt"),
        &json!({
            "iss": ISSUER,
            "aud": hub.url(),
            "exp": 4_102_444_800u64,
            "authorization_details": [
                {
                    "type": DETAIL_TYPE,
                    "actions": ["publish"],
                    "topics": [{ "match": "*" }],
                },
                {
                    "type": DETAIL_TYPE,
                    "actions": ["subscribe"],
                    "topics": [
                        { "match": "https://example.com/users/42" },
                        { "match": BOOKS_PATTERN, "match_type": "urlpattern" },
                    ],
                },
            ],
        }),
    );
    let mut sub = hub
        .subscribe(
            &[
                ("match", "https://example.com/users/42"),
                ("match", "https://example.com/users/43"),
                ("match", BOOK),
            ],
            &[("authorization", &bearer(&example))],
        )
        .await;
    for topic in [
        "https://example.com/users/42",
        BOOK,
        "https://example.com/users/43",
    ] {
        let response = hub
            .post(
                Some(&example),
                &[("topic", topic), ("data", topic), ("private", "on")],
            )
            .await;
        assert_eq!(response.status(), 200, "{topic}");
    }
    hub.publish(&[("topic", BOOK), ("data", "end")]).await;
    assert_eq!(
        sub.until_end().await,
        ["https://example.com/users/42", BOOK, "end"]
    );
}

/// "Each entry is `{ "type": "https://mercure.rocks/authorization-detail",
/// "actions": [...], "topics": [...] }`. `actions` is a non-empty subset of
/// `["publish", "subscribe"]`; `topics` is a non-empty array of `{ "match",
/// "match_type"? }` objects (bare strings are rejected)."
///
/// Compatibility mode does not loosen the shape.
#[tokio::test]
async fn authorization_details_have_the_mercure_shape() {
    for compat in MODES {
        let hub = Hub::in_mode(compat, &[]).await;
        // A token with one detail, `changes` made to a valid one.
        let detail = |changes: Value| {
            let valid =
                json!({"type": DETAIL_TYPE, "actions": ["publish"], "topics": [{"match": "*"}]});
            hub.token(json!([merged(valid, &changes)]))
        };
        let form = [("topic", BOOK)];
        assert_eq!(
            hub.post(Some(&detail(json!({}))), &form).await.status(),
            200
        );
        for (what, entry) in [
            ("no actions", json!({"actions": null})),
            ("empty actions", json!({"actions": []})),
            ("actions not an array", json!({"actions": "publish"})),
            ("no topics", json!({"topics": null})),
            ("empty topics", json!({"topics": []})),
            ("a bare string topic", json!({"topics": ["*"]})),
            (
                "a topic without match",
                json!({"topics": [{"match_type": "exact"}]}),
            ),
            ("a non-string match", json!({"topics": [{"match": 1}]})),
        ] {
            let response = hub.post(Some(&detail(entry)), &form).await;
            assert_eq!(response.status(), 401, "{what}");
            assert_refused(&hub, &response, 401, Some("invalid_token"));
        }
        // Actions of later specifications grant nothing and spoil nothing
        // (the spec asks hubs to ignore unrecognized actions).
        let future = detail(json!({"actions": ["publish", "delete"]}));
        assert_eq!(hub.post(Some(&future), &form).await.status(), 200);
        let only_future = detail(json!({"actions": ["delete"]}));
        assert_eq!(hub.post(Some(&only_future), &form).await.status(), 403);
    }
}

/// "`match_type` is **case-sensitive** and defaults to `exact`. The
/// reserved `{ "match": "*" }` matches every topic."
#[tokio::test]
async fn match_type_is_case_sensitive_and_defaults_to_exact() {
    let hub = Hub::start(&[]).await;
    let topics = |topics: Value| {
        hub.token(json!([{"type": DETAIL_TYPE, "actions": ["publish"], "topics": topics}]))
    };
    let untyped = topics(json!([{"match": "https://example.com/books/:id"}]));
    let typed = topics(json!([{"match": BOOKS_PATTERN, "match_type": "urlpattern"}]));
    let all = topics(json!([{"match": "*"}]));
    for (token, topic, want) in [
        // Untyped: exact, so the pattern is only its own text.
        (&untyped, "https://example.com/books/:id", 200),
        (&untyped, BOOK, 403),
        (&typed, BOOK, 200),
        (&all, BOOK, 200),
        (&all, "urn:anything:at:all", 200),
    ] {
        let response = hub.post(Some(token), &[("topic", topic)]).await;
        assert_eq!(response.status(), want, "{topic}");
    }
    for kind in ["Exact", "EXACT", "URLPattern", "UrlPattern"] {
        let wrong_case = topics(json!([{"match": "*", "match_type": kind}]));
        let response = hub.post(Some(&wrong_case), &[("topic", BOOK)]).await;
        assert_refused(&hub, &response, 401, Some("invalid_token"));
    }
}

/// "A `subscribe` entry may carry a `payload`; the old top-level
/// `mercure.payload` is gone."
///
/// Compatibility mode keeps "`mercure.payload`".
#[tokio::test]
async fn payloads_ride_on_subscribe_details() {
    for compat in MODES {
        let hub = Hub::in_mode(compat, &["--anonymous", "--subscriptions"]).await;
        let mut events = hub
            .subscribe(
                &[("match_urlpattern", EVENTS_PATTERN)],
                &[("authorization", &bearer(&hub.watcher()))],
            )
            .await;
        let with_payload = hub.token(json!([
            {"type": DETAIL_TYPE, "actions": ["subscribe"], "topics": [{"match": "*"}], "payload": {"team": "blue"}}
        ]));
        let top_level = hub.token_with(json!({
            "authorization_details": [grant(&["subscribe"], &[("exact", "*")])],
            "mercure": {"payload": {"team": "red"}},
        }));
        let _blue = hub
            .subscribe(
                &[("match", "blue")],
                &[("authorization", &bearer(&with_payload))],
            )
            .await;
        let _red = hub
            .subscribe(
                &[("match", "red")],
                &[("authorization", &bearer(&top_level))],
            )
            .await;
        let (_, blue) = events.subscription_event("match", "blue").await;
        assert_eq!(blue["payload"], json!({"team": "blue"}));
        // A token with authorization details is read by them alone.
        let (_, red) = events.subscription_event("match", "red").await;
        assert!(red.get("payload").is_none(), "{red}");
        if compat {
            // A 0.x token's `mercure.payload`.
            let old = legacy(json!({"subscribe": ["*"], "payload": {"team": "green"}}));
            let _green = hub
                .subscribe(&[("match", "green")], &[("authorization", &bearer(&old))])
                .await;
            let (_, green) = events.subscription_event("match", "green").await;
            assert_eq!(green["payload"], json!({"team": "green"}));
        }
    }
}

/// "One invalid Mercure detail rejects the whole token with `401
/// invalid_token`."
#[tokio::test]
async fn one_invalid_mercure_detail_rejects_the_whole_token() {
    let hub = Hub::start(&[]).await;
    let good = grant(&["publish"], &[("exact", "*")]);
    let bad = json!({"type": DETAIL_TYPE, "actions": ["subscribe"], "topics": []});
    let form = [("topic", BOOK)];
    let spoiled = hub.token(json!([good, bad]));
    assert_refused(
        &hub,
        &hub.post(Some(&spoiled), &form).await,
        401,
        Some("invalid_token"),
    );
    // Only Mercure details count: another resource's entry, whatever its
    // shape, does not spoil the token.
    let foreign = json!({"type": "https://other.example/detail", "topics": "not an array"});
    let shared = hub.token(json!([foreign, good]));
    assert_eq!(hub.post(Some(&shared), &form).await.status(), 200);
}

/// "The cookie default name changes from `mercureAuthorization` to
/// `__Secure-mercure_access_token` (override with `cookie_name`; use a
/// prefix-less name for plain-HTTP development)"; "The `Authorization:
/// Bearer` header is unchanged and takes precedence over the cookie."
#[tokio::test]
async fn the_cookie_name_is_configurable_and_the_header_wins() {
    for (flags, read, unread) in [
        (
            &[][..],
            "__Secure-mercure_access_token",
            "mercure_access_token",
        ),
        (
            &["--cookie-name", "mercure_access_token"][..],
            "mercure_access_token",
            "__Secure-mercure_access_token",
        ),
    ] {
        let hub = Hub::start(flags).await;
        let token = hub.watcher();
        let read_cookie = format!("{read}={token}");
        let unread_cookie = format!("{unread}={token}");
        let mut by_cookie = hub
            .subscribe(&[("match", BOOK)], &[("cookie", &read_cookie)])
            .await;
        let unread = hub
            .get(&[("match", BOOK)], &[("cookie", &unread_cookie)])
            .await;
        assert_refused(&hub, &unread, 401, None);

        // The header wins over the cookie, whichever of the two is valid.
        let bad_cookie = format!("{read}=not.a.token");
        let mut header_wins = hub
            .subscribe(
                &[("match", BOOK)],
                &[("authorization", &bearer(&token)), ("cookie", &bad_cookie)],
            )
            .await;
        let bad_header = hub
            .get(
                &[("match", BOOK)],
                &[
                    ("authorization", "Bearer not.a.token"),
                    ("cookie", &read_cookie),
                ],
            )
            .await;
        assert_refused(&hub, &bad_header, 401, Some("invalid_token"));
        hub.private_then_end(BOOK, "private").await;
        assert_eq!(by_cookie.until_end().await, ["private", "end"]);
        assert_eq!(header_wins.until_end().await, ["private", "end"]);
    }
}

/// "JSON-LD subscription documents (`application/ld+json`, `@context`) ->
/// plain JSON served as `application/json`"; "`type` values lowercased";
/// "Subscription events now carry the SSE `event: mercure` field"; "The
/// `mercure.subscriber` claim is gone: the hub assigns the subscriber
/// identifier."; "`<match_type>`, `<match>`, and `<subscriber>` must be
/// percent-encoded."
///
/// Compatibility mode keeps none of it.
#[tokio::test]
async fn subscription_documents_are_plain_json_with_hub_assigned_subscribers() {
    for compat in MODES {
        let hub = Hub::in_mode(compat, &["--anonymous", "--subscriptions"]).await;
        let watcher = hub.watcher();
        let mut events = hub
            .subscribe(
                &[("match_urlpattern", EVENTS_PATTERN)],
                &[("authorization", &bearer(&watcher))],
            )
            .await;
        // The 0.x ways of naming the subscriber: neither is used.
        let alice = if compat {
            legacy(json!({"subscribe": ["*"], "subscriber": "alice"}))
        } else {
            hub.token_with(json!({
                "sub": "alice",
                "mercure": {"subscriber": "alice"},
                "authorization_details": [grant(&["subscribe"], &[("exact", "*")])],
            }))
        };
        let topic = "https://example.com/a b/ü?x=1#y";
        let _alice = hub
            .subscribe(&[("match", topic)], &[("authorization", &bearer(&alice))])
            .await;
        let (message, document) = events.subscription_event("match", topic).await;
        assert_eq!(message.event, "mercure");
        assert_eq!(document["type"], "subscription");
        assert!(document.get("@context").is_none(), "{document}");
        let subscriber = document["subscriber"].as_str().unwrap();
        assert!(subscriber.starts_with("urn:uuid:"), "{document}");
        let id = document["id"].as_str().unwrap();
        assert_eq!(
            id,
            format!(
                "{SUBSCRIPTIONS}/exact/https%3A%2F%2Fexample.com%2Fa%20b%2F%C3%BC%3Fx%3D1%23y/{}",
                subscriber.replace(':', "%3A")
            )
        );

        let list = hub.fetch(SUBSCRIPTIONS, &watcher).await;
        assert_eq!(list.headers()["content-type"], "application/json");
        let list: Value = list.json().await.unwrap();
        assert_eq!(list["type"], "subscriptions");
        assert!(list.get("@context").is_none(), "{list}");
        let one = hub.fetch(id, &watcher).await;
        assert_eq!(one.headers()["content-type"], "application/json");
        let one: Value = one.json().await.unwrap();
        assert_eq!(one["type"], "subscription");
        assert_eq!(one["subscriber"], subscriber);
    }
}

/// "publishing an update whose `type` is `mercure` is rejected with a `400
/// Bad Request`", in both modes.
#[tokio::test]
async fn publishing_the_mercure_type_is_rejected() {
    for compat in MODES {
        let hub = Hub::in_mode(compat, &[]).await;
        let publisher = hub.publisher();
        let reserved = hub
            .post(Some(&publisher), &[("topic", BOOK), ("type", "mercure")])
            .await;
        assert_refused(&hub, &reserved, 400, Some("invalid_request"));
        let other = hub
            .post(Some(&publisher), &[("topic", BOOK), ("type", "book")])
            .await;
        assert_eq!(other.status(), 200);
    }
}

/// "`Last-Event-ID` read from a **response** -> `Mercure-Last-Event-ID`
/// (the request header keeps its name)"
#[tokio::test]
async fn the_resume_point_comes_back_as_mercure_last_event_id() {
    for compat in MODES {
        let hub = Hub::in_mode(compat, &["--anonymous"]).await;
        let first = hub.publish(&[("topic", BOOK), ("data", "first")]).await;
        hub.publish(&[("topic", BOOK), ("data", "missed")]).await;
        let mut resumed = hub
            .subscribe(&[("match", BOOK)], &[("last-event-id", &first)])
            .await;
        assert_eq!(
            resumed.headers["mercure-last-event-id"].to_str().unwrap(),
            first
        );
        // The guide's compatibility section does not list the 0.x response
        // header; this hub's compatibility mode sends it beside the new one
        // for 0.x clients.
        assert_eq!(
            resumed
                .headers
                .get("last-event-id")
                .map(|v| v.to_str().unwrap()),
            compat.then_some(first.as_str())
        );
        hub.publish(&[("topic", BOOK), ("data", "end")]).await;
        assert_eq!(resumed.until_end().await, ["missed", "end"]);
    }
}

/// "The pre-1.0 top-level directives `publisher_jwt`, `subscriber_jwt` …
/// map to a single implicit issuer usable only in compatibility mode.
/// Setting one without `protocol_version_compatibility` is now a
/// configuration error, because that mode also drops the required `exp`,
/// the audience check, the `at+jwt` check and the issuer check, and
/// re-accepts the token in the URL query string."
#[tokio::test]
async fn keys_without_an_issuer_need_compatibility_mode() {
    let refused = launch(&["--jwt-key", KEY]).await;
    assert!(
        matches!(refused, Err(StartError::Config(ConfigError::NoIssuer))),
        "{:?}",
        refused.err()
    );
    let hub = Hub::of(launch(&["--jwt-key", KEY, "--compat"]).await.unwrap());
    // A 0.x token, in the URL.
    let old = legacy(json!({"publish": ["*"]}));
    let published = hub
        .post_with(&[("authorization", &old)], &[], &[("topic", BOOK)])
        .await;
    assert_eq!(published.status(), 200);
    // And a 1.0 token: its `iss` names no configured issuer, so the
    // implicit one verifies it.
    assert_eq!(
        hub.post(Some(&hub.publisher()), &[("topic", BOOK)])
            .await
            .status(),
        200
    );
}
