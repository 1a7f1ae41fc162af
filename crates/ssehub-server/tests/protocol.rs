//! The Mercure protocol, end to end over real HTTP: a hub started in this
//! process, publishers and subscribers speaking to it with reqwest.

mod common;

use std::time::Duration;

use clap::Parser as _;
use serde_json::{Value, json};
use ssehub::parse::Message;
use ssehub_server::auth::{self, Algorithm, DETAIL_TYPE};
use ssehub_server::{Config, Running};

const KEY: &str = "protocol-test-secret-of-32-bytes!!";
const ISSUER: &str = "https://issuer.test";
/// The pinned resource identifier: tokens are minted before the port is
/// known. Its path is not the hub's, so the hub still serves on the bound
/// address.
const AUDIENCE: &str = "https://hub.test/mercure";
const WAIT: Duration = Duration::from_secs(5);
const SUBSCRIPTIONS: &str = "/.well-known/mercure/subscriptions";

/// A hub trusting `ISSUER` with `KEY`, tokens for `AUDIENCE`.
async fn hub(extra: &[&str]) -> Running {
    let mut args = vec!["--resource-identifier", AUDIENCE];
    args.extend_from_slice(extra);
    hub_deriving_audience(&args).await
}

/// A hub trusting `ISSUER` with `KEY` whose resource identifier is derived
/// from each request (unless `extra` pins one).
async fn hub_deriving_audience(extra: &[&str]) -> Running {
    let mut args = vec![
        "ssehub",
        "--listen",
        "127.0.0.1:0",
        "--issuer",
        ISSUER,
        "--jwt-key",
        KEY,
    ];
    args.extend_from_slice(extra);
    ssehub_server::start(Config::parse_from(args))
        .await
        .unwrap()
}

fn token(details: Value) -> String {
    token_with(json!({ "authorization_details": details }))
}

/// A token as the reference hub's `mercure token` command writes one
/// (`typ: at+jwt`, `iss`, `aud`, `sub`, `client_id`, `iat`, `exp`, `jti`),
/// with `claims` overriding or adding.
fn token_with(claims: Value) -> String {
    let now = common::now();
    let full = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": uuid::Uuid::new_v4().urn().to_string(),
        "client_id": ISSUER,
        "iat": now,
        "exp": now + 600,
        "jti": uuid::Uuid::new_v4().urn().to_string(),
    });
    common::sign_hs256(&common::merged(full, &claims), KEY)
}

/// A Mercure authorization detail; `topics` are `(match_type, match)`.
fn grant(actions: &[&str], topics: &[(&str, &str)]) -> Value {
    let topics: Vec<Value> = topics
        .iter()
        .map(|(kind, m)| json!({"match": m, "match_type": kind}))
        .collect();
    json!({"type": DETAIL_TYPE, "actions": actions, "topics": topics})
}

fn publisher() -> String {
    token(json!([grant(&["publish"], &[("exact", "*")])]))
}

struct Hub<'a> {
    running: &'a Running,
    http: reqwest::Client,
}

impl<'a> Hub<'a> {
    fn new(running: &'a Running) -> Self {
        Self {
            running,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self) -> String {
        self.running.hub_url().to_string()
    }

    async fn post(&self, token: Option<&str>, form: &[(&str, &str)]) -> reqwest::Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = self
            .http
            .post(self.url())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// Publishes with the all-topics publisher token; returns the id.
    async fn publish(&self, form: &[(&str, &str)]) -> String {
        let response = self.post(Some(&publisher()), form).await;
        assert_eq!(response.status(), 200, "publish {form:?}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        response.text().await.unwrap()
    }

    async fn get(&self, query: &[(&str, &str)], headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.http.get(self.url()).query(query);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// `GET path` on the hub's origin, with a bearer token if given.
    async fn fetch(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .get(format!("http://{}{path}", self.running.local_addr()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn subscribe(&self, query: &[(&str, &str)], headers: &[(&str, &str)]) -> Stream {
        let response = self.get(query, headers).await;
        assert_eq!(response.status(), 200, "subscribe {query:?}");
        Stream::new(response)
    }
}

/// A subscriber's parsed event stream.
struct Stream(common::Events);

impl std::ops::Deref for Stream {
    type Target = common::Events;

    fn deref(&self) -> &common::Events {
        &self.0
    }
}

impl Stream {
    fn new(response: reqwest::Response) -> Self {
        Self(common::Events::new(response, WAIT))
    }

    /// The next message, or `None` when the stream ends or nothing comes
    /// within `WAIT`.
    async fn next(&mut self) -> Option<Message> {
        self.0.next().await
    }

    /// Messages up to and including the one with `data == sentinel`.
    async fn until(&mut self, sentinel: &str) -> Vec<Message> {
        let mut seen = Vec::new();
        while let Some(message) = self.next().await {
            let done = message.data == sentinel;
            seen.push(message);
            if done {
                return seen;
            }
        }
        panic!("sentinel {sentinel:?} never came; got {seen:?}");
    }
}

fn data(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.data.as_str()).collect()
}

#[tokio::test]
async fn an_update_reaches_exact_subscribers_with_its_fields() {
    let running = hub(&["--anonymous"]).await;
    let hub = Hub::new(&running);
    let mut sub = hub
        .subscribe(&[("match", "https://example.com/books/1")], &[])
        .await;
    assert_eq!(sub.headers["content-type"], "text/event-stream");
    assert!(
        sub.headers["link"]
            .to_str()
            .unwrap()
            .contains("rel=\"mercure\"")
    );
    let id = hub
        .publish(&[
            ("topic", "https://example.com/books/1"),
            ("data", "line 1\n\nline 3\r\nline 4"),
            ("type", "book"),
            ("retry", "2500"),
        ])
        .await;
    assert!(id.starts_with('#'), "hub-generated ids are fragments: {id}");
    let message = sub.next().await.unwrap();
    assert_eq!(message.data, "line 1\n\nline 3\nline 4");
    assert_eq!(message.event, "book");
    assert_eq!(message.last_event_id, id);
    assert_eq!(sub.reconnection_time(), Some(Duration::from_millis(2500)));
    let own = hub
        .publish(&[
            ("topic", "https://example.com/books/1"),
            ("id", "urn:book:1:v2"),
        ])
        .await;
    assert_eq!(own, "urn:book:1:v2");
    assert_eq!(sub.next().await.unwrap().last_event_id, "urn:book:1:v2");
}

#[tokio::test]
async fn streams_are_written_by_the_lean_server_unless_told_otherwise() {
    for (stream_server, lean) in [("lean", true), ("hyper", false)] {
        let running = hub(&["--anonymous", "--stream-server", stream_server]).await;
        let hub = Hub::new(&running);
        let mut sub = hub.subscribe(&[("match", "t")], &[]).await;
        // The lean writer serves one request per connection and says so.
        assert_eq!(
            sub.headers.get("connection").is_some_and(|v| v == "close"),
            lean,
            "{stream_server}"
        );
        // Publishing shares the port either way.
        let id = hub
            .publish(&[("topic", "t"), ("data", stream_server)])
            .await;
        let message = sub.next().await.unwrap();
        assert_eq!(
            (message.data.as_str(), message.last_event_id.as_str()),
            (stream_server, id.as_str())
        );
    }
}

#[tokio::test]
async fn several_matchers_select_each_update_once_in_order() {
    let running = hub(&["--anonymous"]).await;
    let hub = Hub::new(&running);
    let mut sub = hub
        .subscribe(
            &[
                ("match", "https://example.com/a"),
                ("match", "https://example.com/books/1"),
                ("match_urlpattern", "https://example.com/books/:id"),
            ],
            &[],
        )
        .await;
    for (topic, body) in [
        ("https://example.com/a", "1"),
        ("https://example.com/books/1", "2"),
        ("https://example.com/books/2", "3"),
        ("https://example.com/authors/1", "not me"),
        ("https://example.com/books/2/chapters", "not me either"),
        ("https://example.com/b", "end"),
        ("https://example.com/a", "end"),
    ] {
        hub.publish(&[("topic", topic), ("data", body)]).await;
    }
    assert_eq!(data(&sub.until("end").await), ["1", "2", "3", "end"]);
}

#[tokio::test]
async fn private_updates_reach_only_subscribers_whose_token_grants_the_topic() {
    let running = hub(&["--anonymous"]).await;
    let hub = Hub::new(&running);
    let topic = "https://example.com/books/1";
    let allowed = token(json!([grant(
        &["subscribe"],
        &[("urlpattern", "https://example.com/books/:id")]
    )]));
    let other = token(json!([grant(
        &["subscribe"],
        &[("exact", "https://example.com/books/2")]
    )]));
    let selects_all = [("match_urlpattern", "https://example.com/:any*")];
    let mut anonymous = hub.subscribe(&selects_all, &[]).await;
    let mut wrong = hub
        .subscribe(
            &selects_all,
            &[("authorization", &format!("Bearer {other}"))],
        )
        .await;
    let mut right = hub
        .subscribe(
            &selects_all,
            &[("authorization", &format!("Bearer {allowed}"))],
        )
        .await;
    let cookie = format!("__Secure-mercure_access_token={allowed}");
    let mut by_cookie = hub
        .subscribe(&[("match", topic)], &[("cookie", &cookie)])
        .await;
    // No token in the URL (RFC 9700): the 0.x parameter is not read.
    let mut by_query = hub
        .subscribe(&[("match", topic), ("authorization", &allowed)], &[])
        .await;
    hub.publish(&[("topic", topic), ("data", "secret"), ("private", "")])
        .await;
    hub.publish(&[("topic", topic), ("data", "end")]).await;
    assert_eq!(data(&anonymous.until("end").await), ["end"]);
    assert_eq!(data(&wrong.until("end").await), ["end"]);
    assert_eq!(data(&right.until("end").await), ["secret", "end"]);
    assert_eq!(data(&by_cookie.until("end").await), ["secret", "end"]);
    assert_eq!(data(&by_query.until("end").await), ["end"]);
}

#[tokio::test]
async fn alternate_topics_deliver_one_update_once_to_subscribers_of_any() {
    let running = hub(&["--anonymous"]).await;
    let hub = Hub::new(&running);
    let mut a = hub.subscribe(&[("match", "a")], &[]).await;
    let mut both = hub.subscribe(&[("match", "a"), ("match", "b")], &[]).await;
    hub.publish(&[("topic", "a"), ("topic", "b"), ("data", "one update")])
        .await;
    hub.publish(&[("topic", "b"), ("topic", "a"), ("data", "end")])
        .await;
    assert_eq!(data(&a.until("end").await), ["one update", "end"]);
    assert_eq!(data(&both.until("end").await), ["one update", "end"]);
    // A publisher must be allowed every topic of the update.
    let only_a = token(json!([grant(&["publish"], &[("exact", "a")])]));
    let refused = hub
        .post(Some(&only_a), &[("topic", "a"), ("topic", "b")])
        .await;
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn subscriptions_by_query_take_matchers_from_the_body_and_the_url() {
    let running = hub(&["--anonymous"]).await;
    let hub = Hub::new(&running);
    let method = reqwest::Method::from_bytes(b"QUERY").unwrap();
    let response = hub
        .http
        .request(
            method,
            format!("{}?match=a&last_event_id=earliest", hub.url()),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("match=b&match_urlpattern=https://example.com/books/:id&last_event_id=ignored")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The query's resume point wins over the body's.
    assert_eq!(response.headers()["mercure-last-event-id"], "earliest");
    let mut sub = Stream::new(response);
    for (topic, body) in [
        ("a", "1"),
        ("b", "2"),
        ("https://example.com/books/3", "3"),
        ("c", "not me"),
        ("a", "end"),
    ] {
        hub.publish(&[("topic", topic), ("data", body)]).await;
    }
    assert_eq!(data(&sub.until("end").await), ["1", "2", "3", "end"]);
}

#[tokio::test]
async fn reconnecting_subscribers_get_exactly_what_they_missed() {
    let running = hub(&["--anonymous"]).await;
    let hub = Hub::new(&running);
    let mine = [("match", "mine")];
    let first = hub.publish(&[("topic", "mine"), ("data", "1")]).await;
    hub.publish(&[("topic", "other"), ("data", "x")]).await;
    let secret = hub
        .publish(&[("topic", "mine"), ("data", "private"), ("private", "")])
        .await;
    hub.publish(&[("topic", "mine"), ("data", "2")]).await;
    let last = hub.publish(&[("topic", "mine"), ("data", "3")]).await;

    // Header resume: the missed public updates of its topic, nothing else,
    // and the response names the resume point.
    let mut sub = hub.subscribe(&mine, &[("last-event-id", &first)]).await;
    assert_eq!(
        sub.headers["mercure-last-event-id"].to_str().unwrap(),
        first
    );
    // The 0.x response header is compatibility mode's only.
    assert!(sub.headers.get("last-event-id").is_none());
    hub.publish(&[("topic", "mine"), ("data", "live")]).await;
    assert_eq!(data(&sub.until("live").await), ["2", "3", "live"]);

    // Query parameter resume; the header wins when both are present.
    let mut by_query = hub
        .subscribe(
            &[mine[0], ("last_event_id", &first)],
            &[("last-event-id", &last)],
        )
        .await;
    hub.publish(&[("topic", "mine"), ("data", "live 2")]).await;
    assert_eq!(data(&by_query.until("live 2").await), ["live", "live 2"]);
    let mut by_query = hub
        .subscribe(&[mine[0], ("last_event_id", &last)], &[])
        .await;
    hub.publish(&[("topic", "mine"), ("data", "live 3")]).await;
    assert_eq!(
        data(&by_query.until("live 3").await),
        ["live", "live 2", "live 3"]
    );

    // `earliest`: everything retained for the topic.
    let mut all = hub
        .subscribe(&[mine[0], ("last_event_id", "earliest")], &[])
        .await;
    assert_eq!(all.headers["mercure-last-event-id"], "earliest");
    assert_eq!(
        data(&all.until("live 3").await),
        ["1", "2", "3", "live", "live 2", "live 3"]
    );

    // An unknown id: the gap event, then live only (as the reference hub
    // does), and `earliest` tells the client it may have lost updates.
    let mut lost = hub
        .subscribe(&[mine[0], ("last_event_id", "no-such-id")], &[])
        .await;
    assert_eq!(lost.headers["mercure-last-event-id"], "earliest");
    hub.publish(&[("topic", "mine"), ("data", "live 4")]).await;
    let got = lost.until("live 4").await;
    assert_eq!(got[0].event, "ssehub-gap");
    let gap: Value = serde_json::from_str(&got[0].data).unwrap();
    assert_eq!(gap["lastEventID"], "no-such-id");
    assert_eq!(data(&got[1..]), ["live 4"]);

    // Resuming after an update the subscriber cannot read: the id is known
    // and nothing after it was lost, so it is echoed (the client sent it).
    let mut after_secret = hub.subscribe(&mine, &[("last-event-id", &secret)]).await;
    assert_eq!(
        after_secret.headers["mercure-last-event-id"]
            .to_str()
            .unwrap(),
        secret
    );
    hub.publish(&[("topic", "mine"), ("data", "live 5")]).await;
    assert_eq!(data(&after_secret.until("live 5").await)[0], "2");
}

#[tokio::test]
async fn a_resume_after_a_trimmed_update_gets_the_gap_then_everything_retained() {
    let running = hub(&["--anonymous", "--history-events", "3"]).await;
    let hub = Hub::new(&running);
    let mine = [("match", "mine")];
    let mut ids = Vec::new();
    for n in 1..=6 {
        let data = n.to_string();
        ids.push(hub.publish(&[("topic", "mine"), ("data", &data)]).await);
    }
    // Updates 2 and 3 came after the first and are gone; 4 to 6 are kept,
    // and positions are ordered, so those came after it too.
    let mut sub = hub.subscribe(&mine, &[("last-event-id", &ids[0])]).await;
    assert_eq!(sub.headers["mercure-last-event-id"], "earliest");
    hub.publish(&[("topic", "mine"), ("data", "live")]).await;
    let got = sub.until("live").await;
    assert_eq!(got[0].event, "ssehub-gap");
    let gap: Value = serde_json::from_str(&got[0].data).unwrap();
    assert_eq!(gap["lastEventID"], ids[0]);
    assert_eq!(data(&got[1..]), ["4", "5", "6", "live"]);
    assert_eq!(got[1].last_event_id, ids[3]);
}

#[tokio::test]
async fn a_resume_racing_with_publishers_has_no_gap_and_no_duplicate() {
    let running = hub(&["--anonymous"]).await;
    let hub = Hub::new(&running);
    let first = hub.publish(&[("topic", "race"), ("data", "0")]).await;
    let publishing = {
        let url = hub.url();
        let token = publisher();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 1..=300 {
                let body = format!("topic=race&data={i}");
                http.post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
            }
        })
    };
    let mut streams = Vec::new();
    for _ in 0..10 {
        streams.push(
            hub.subscribe(&[("match", "race")], &[("last-event-id", &first)])
                .await,
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    publishing.await.unwrap();
    for mut stream in streams {
        let got: Vec<String> = stream
            .until("300")
            .await
            .into_iter()
            .map(|m| m.data)
            .collect();
        let want: Vec<String> = (1..=300).map(|i| i.to_string()).collect();
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn refusals_follow_rfc_6750_and_the_input_rules() {
    let running = hub(&[]).await;
    let hub = Hub::new(&running);
    // Publishing without a token, with a bad token, without the right.
    let none = hub.post(None, &[("topic", "a")]).await;
    assert_eq!(none.status(), 401);
    let challenge = none.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer") && !challenge.contains("error="),
        "{challenge}"
    );
    let bad = hub.post(Some("not.a.token"), &[("topic", "a")]).await;
    assert_eq!(bad.status(), 401);
    assert!(
        bad.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    let narrow = token(json!([grant(&["publish"], &[("exact", "b")])]));
    let forbidden = hub.post(Some(&narrow), &[("topic", "a")]).await;
    assert_eq!(forbidden.status(), 403);
    assert!(
        forbidden.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    assert_eq!(
        hub.post(Some(&narrow), &[("topic", "b")]).await.status(),
        200
    );
    let expired = token_with(
        json!({"exp": 1, "authorization_details": [grant(&["publish"], &[("exact", "*")])]}),
    );
    assert_eq!(
        hub.post(Some(&expired), &[("topic", "a")]).await.status(),
        401
    );

    // Input rules.
    let publisher = publisher();
    let (long_topic, big_data) = ("a".repeat(5000), "x".repeat(2 << 20));
    let cases: [(&[(&str, &str)], u16); 14] = [
        (&[("data", "no topic")], 400),
        (&[("topic", "a"), ("id", "#mine")], 400),
        (&[("topic", "a"), ("id", "earliest")], 400),
        (&[("topic", "a"), ("type", "mercure")], 400),
        (&[("topic", "*")], 400),
        (&[("topic", "a\u{200b}")], 400),
        (&[("topic", "a"), ("id", "a\nb")], 400),
        (&[("topic", "a"), ("type", "a\rb")], 400),
        (&[("topic", "a"), ("retry", "1s")], 400),
        (&[("topic", "a\u{1}")], 400),
        (&[("topic", "/.well-known/mercure/subscriptions/x")], 400),
        // The hub's scheme without a slash is relative to the hub's URL.
        (&[("topic", "http:mercure/subscriptions/x")], 400),
        (&[("topic", &long_topic)], 413),
        (&[("topic", "a"), ("data", &big_data)], 413),
    ];
    for (form, want) in cases {
        let got = hub.post(Some(&publisher), form).await.status();
        assert_eq!(
            got,
            want,
            "{:?}",
            form.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
        );
    }

    // Subscribing: a token is required without --anonymous; bad matchers are 400.
    assert_eq!(hub.get(&[("match", "a")], &[]).await.status(), 401);
    let subscriber = token(json!([grant(&["subscribe"], &[("exact", "*")])]));
    let auth = format!("Bearer {subscriber}");
    let with = [("authorization", auth.as_str())];
    for unknown in [
        "matchFoo",
        "matchURLPattern",
        "Match",
        "match_exactly",
        "topic",
    ] {
        let refused = hub.get(&[(unknown, "a")], &with).await;
        assert_eq!(refused.status(), 400, "{unknown}");
        assert!(
            refused.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("error=\"invalid_request\""),
            "{unknown}"
        );
    }
    assert_eq!(hub.get(&[], &with).await.status(), 400);
    assert_eq!(
        hub.get(&[("match_urlpattern", "https://x/(")], &with)
            .await
            .status(),
        400
    );
    assert_eq!(hub.get(&[("match", "a\u{85}")], &with).await.status(), 400);
    assert_eq!(hub.get(&[("match_exact", "a")], &with).await.status(), 200);
    // Tokens for another hub, from another issuer, without `typ: at+jwt`
    // or `exp`, or with a detail the hub cannot read: all invalid.
    let details = json!([grant(&["subscribe"], &[("exact", "*")])]);
    let mut untyped = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    untyped.typ = Some("JWT".into());
    let untyped = jsonwebtoken::encode(
        &untyped,
        &json!({"iss": ISSUER, "aud": AUDIENCE, "exp": 4_000_000_000u64, "authorization_details": details}),
        &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
    )
    .unwrap();
    let no_exp = auth::mint(
        Algorithm::HS256,
        KEY,
        &json!({"iss": ISSUER, "aud": AUDIENCE, "authorization_details": details}),
    )
    .unwrap();
    for invalid in [
        token_with(
            json!({"aud": "https://other.test/.well-known/mercure", "authorization_details": details}),
        ),
        token_with(json!({"iss": "https://stranger.test", "authorization_details": details})),
        token_with(
            json!({"authorization_details": [{"type": DETAIL_TYPE, "actions": ["subscribe"], "topics": ["*"]}]}),
        ),
        token_with(
            json!({"authorization_details": [{"type": DETAIL_TYPE, "actions": ["subscribe"], "topics": [{"match": "*", "match_type": "Exact"}]}]}),
        ),
        untyped,
        no_exp,
    ] {
        let refused = hub
            .get(
                &[("match", "a")],
                &[("authorization", &format!("Bearer {invalid}"))],
            )
            .await;
        assert_eq!(refused.status(), 401);
        let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(
            challenge.contains("resource_metadata=\"https://hub.test/.well-known/oauth-protected-resource/.well-known/mercure\""),
            "{challenge}"
        );
    }
    // A detail of another type grants nothing but does not spoil the token.
    let foreign_type = token_with(json!({"authorization_details": [
        {"type": "https://other.example/detail", "actions": "whatever"},
        {"type": DETAIL_TYPE, "actions": ["publish"], "topics": [{"match": "a"}]},
    ]}));
    assert_eq!(
        hub.post(Some(&foreign_type), &[("topic", "a")])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_audience_is_the_hub_url_the_client_contacted_unless_pinned() {
    let running = hub_deriving_audience(&["--anonymous"]).await;
    let hub = Hub::new(&running);
    let port = running.local_addr().port();
    let here = format!("http://127.0.0.1:{port}/.well-known/mercure");
    let elsewhere = format!("http://localhost:{port}/.well-known/mercure");
    let details = json!([grant(&["publish"], &[("exact", "*")])]);
    let for_here = token_with(json!({"aud": here, "authorization_details": details}));
    let for_both = token_with(json!({"aud": [elsewhere, here], "authorization_details": details}));
    let for_elsewhere = token_with(json!({"aud": elsewhere, "authorization_details": details}));
    assert_eq!(
        hub.post(Some(&for_here), &[("topic", "a")]).await.status(),
        200
    );
    assert_eq!(
        hub.post(Some(&for_both), &[("topic", "a")]).await.status(),
        200
    );
    let refused = hub.post(Some(&for_elsewhere), &[("topic", "a")]).await;
    assert_eq!(refused.status(), 401);
    // The same hub reached as `localhost` is another resource.
    let via_localhost = hub
        .http
        .post(&elsewhere)
        .bearer_auth(&for_elsewhere)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=a")
        .send()
        .await
        .unwrap();
    assert_eq!(via_localhost.status(), 200);
    let metadata: Value = hub
        .http
        .get(format!(
            "http://localhost:{port}/.well-known/oauth-protected-resource/.well-known/mercure"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], elsewhere.as_str());

    // Public URLs: any other host is misdirected.
    let public = hub_deriving_audience(&[
        "--anonymous",
        "--public-url",
        &format!("http://localhost:{port}"),
    ])
    .await;
    let public_port = public.local_addr().port();
    let misdirected = reqwest::get(format!(
        "http://127.0.0.1:{public_port}/.well-known/mercure?match=a"
    ))
    .await
    .unwrap();
    assert_eq!(misdirected.status(), 421);
    assert_eq!(
        reqwest::get(format!("http://127.0.0.1:{public_port}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn compatibility_mode_speaks_0x_beside_the_current_protocol() {
    let running = hub(&["--compat"]).await;
    let hub = Hub::new(&running);
    // A 0.x token: the `mercure` claim, no `typ`, `aud`, `iss` nor `exp`.
    let legacy = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"mercure": {"publish": ["*"], "subscribe": ["https://example.com/books/{id}"]}}),
        &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
    )
    .unwrap();
    let first = hub
        .publish(&[("topic", "https://example.com/books/1"), ("data", "0")])
        .await;
    // URI templates in `topic=`, the token in the `authorization` parameter.
    let mut templated = hub
        .subscribe(
            &[
                ("topic", "https://example.com/books/{id}"),
                ("authorization", &legacy),
            ],
            &[("last-event-id", &first)],
        )
        .await;
    // A token in the URL: no shared cache may keep the response.
    assert_eq!(templated.headers["cache-control"], "private, no-cache");
    // 0.x clients read the resume point from `Last-Event-ID`.
    assert_eq!(templated.headers["last-event-id"].to_str().unwrap(), first);
    assert_eq!(
        templated.headers["mercure-last-event-id"].to_str().unwrap(),
        first
    );
    // The 0.x cookie, and a current client beside them.
    let mut by_cookie = hub
        .subscribe(
            &[("topic", "https://example.com/books/7")],
            &[("cookie", &format!("mercureAuthorization={legacy}"))],
        )
        .await;
    let current = token(json!([grant(
        &["subscribe"],
        &[("urlpattern", "https://example.com/books/:id")]
    )]));
    let mut modern = hub
        .subscribe(
            &[("match_urlpattern", "https://example.com/books/:id")],
            &[("authorization", &format!("Bearer {current}"))],
        )
        .await;
    let id = hub
        .post(
            Some(&legacy),
            &[
                ("topic", "https://example.com/books/7"),
                ("data", "private 7"),
                ("private", "on"),
            ],
        )
        .await;
    assert_eq!(id.status(), 200, "a 0.x token publishes");
    hub.publish(&[
        ("topic", "https://example.com/authors/7"),
        ("data", "not a book"),
    ])
    .await;
    hub.publish(&[("topic", "https://example.com/books/8"), ("data", "end")])
        .await;
    assert_eq!(data(&templated.until("end").await), ["private 7", "end"]);
    assert_eq!(data(&by_cookie.until("private 7").await), ["private 7"]);
    assert_eq!(data(&modern.until("end").await), ["private 7", "end"]);
}

#[tokio::test]
async fn a_subscription_ends_when_its_token_expires() {
    let running = hub(&[]).await;
    let hub = Hub::new(&running);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let short = token_with(
        json!({"exp": exp, "authorization_details": [grant(&["subscribe"], &[("exact", "*")])]}),
    );
    let mut sub = hub
        .subscribe(
            &[("match", "a")],
            &[("authorization", &format!("Bearer {short}"))],
        )
        .await;
    let started = std::time::Instant::now();
    // The stream ends (next() returns None at the end of the body, well
    // before the WAIT timeout would have passed twice).
    let mut ended = false;
    for _ in 0..3 {
        if sub.next().await.is_none() && started.elapsed() < Duration::from_secs(4) {
            ended = true;
            break;
        }
    }
    assert!(
        ended,
        "stream still open {:?} after a 2 s token",
        started.elapsed()
    );
}

#[tokio::test]
async fn active_subscriptions_are_published_and_listed() {
    let running = hub(&["--subscriptions", "--anonymous"]).await;
    let hub = Hub::new(&running);
    let watcher = token(json!([grant(
        &["subscribe"],
        &[("urlpattern", "/.well-known/mercure/subscriptions{/:rest}*")]
    )]));
    let bearer = format!("Bearer {watcher}");
    let mut events = hub
        .subscribe(
            &[(
                "match_urlpattern",
                "/.well-known/mercure/subscriptions/:type/:match/:sub",
            )],
            &[("authorization", &bearer)],
        )
        .await;
    let alice = token_with(json!({"sub": "alice", "authorization_details": [
        {"type": DETAIL_TYPE, "actions": ["subscribe"], "topics": [{"match": "*"}], "payload": {"team": "blue"}}
    ]}));
    let alice_sub = hub
        .subscribe(
            &[("match", "https://example.com/a")],
            &[("authorization", &format!("Bearer {alice}"))],
        )
        .await;
    // The watcher's own subscription comes first: it matches its pattern too.
    let own = events.next().await.unwrap();
    assert_eq!(
        own.event, "mercure",
        "subscription events have their own type"
    );
    let own: Value = serde_json::from_str(&own.data).unwrap();
    assert_eq!(own["match_type"], "urlpattern", "{own}");
    let started = events.next().await.unwrap();
    assert_eq!(started.event, "mercure");
    let document: Value = serde_json::from_str(&started.data).unwrap();
    assert_eq!(document["type"], "subscription");
    // The subscriber id is the hub's, never the token's subject.
    let subscriber = document["subscriber"].as_str().unwrap().to_owned();
    assert!(subscriber.starts_with("urn:uuid:"), "{document}");
    assert_ne!(subscriber, own["subscriber"].as_str().unwrap());
    assert_eq!(document["match"], "https://example.com/a");
    assert_eq!(document["match_type"], "exact");
    assert_eq!(document["active"], true);
    assert_eq!(document["payload"], json!({"team": "blue"}));
    let id = document["id"].as_str().unwrap().to_owned();
    assert_eq!(
        id,
        format!(
            "/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fexample.com%2Fa/{}",
            subscriber.replace(':', "%3A")
        )
    );

    let list = hub.fetch(SUBSCRIPTIONS, Some(&watcher)).await;
    assert_eq!(list.headers()["content-type"], "application/json");
    let etag = list.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        list.headers()["link"]
            .to_str()
            .unwrap()
            .contains("rel=\"mercure\"; last-event-id=")
    );
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["type"], "subscriptions");
    assert_eq!(list["id"], SUBSCRIPTIONS);
    let listed: Vec<&str> = list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subscriber"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&subscriber.as_str()), "{list}");
    // Unchanged: 304 for the same tag.
    let unchanged = hub
        .http
        .get(format!("http://{}{SUBSCRIPTIONS}", running.local_addr()))
        .bearer_auth(&watcher)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);
    // One matcher's subscriptions, then one subscription.
    let of_matcher: Value = hub
        .fetch(
            &format!("{SUBSCRIPTIONS}/exact/https%3A%2F%2Fexample.com%2Fa"),
            Some(&watcher),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(of_matcher["subscriptions"].as_array().unwrap().len(), 1);
    let one = hub.fetch(&id, Some(&watcher)).await;
    assert_eq!(one.headers()["content-type"], "application/json");
    let one: Value = one.json().await.unwrap();
    assert_eq!(one["subscriber"], subscriber.as_str());
    let gone = format!("{SUBSCRIPTIONS}/exact/nothing/nobody");
    assert_eq!(hub.fetch(&gone, Some(&watcher)).await.status(), 404);
    let unknown_type = format!("{SUBSCRIPTIONS}/regexp/a/b");
    assert_eq!(hub.fetch(&unknown_type, Some(&watcher)).await.status(), 400);
    // The API is authorized like a topic: the request path.
    let narrow = token(json!([grant(
        &["subscribe"],
        &[("exact", "https://example.com/a")]
    )]));
    assert_eq!(hub.fetch(SUBSCRIPTIONS, Some(&narrow)).await.status(), 403);
    assert_eq!(hub.fetch(SUBSCRIPTIONS, None).await.status(), 401);

    drop(alice_sub);
    let ended = events.next().await.unwrap();
    let document: Value = serde_json::from_str(&ended.data).unwrap();
    assert_eq!(document["active"], false);
    assert_eq!(document["id"], id.as_str());
    // Anonymous subscribers never see subscription events: they are private.
    let mut anonymous = hub
        .subscribe(
            &[
                (
                    "match_urlpattern",
                    "/.well-known/mercure/subscriptions/:type/:match/:sub",
                ),
                ("match", "end"),
            ],
            &[],
        )
        .await;
    let _late = hub.subscribe(&[("match", "late")], &[]).await;
    hub.publish(&[("topic", "end"), ("data", "end")]).await;
    assert_eq!(data(&anonymous.until("end").await), ["end"]);
}

#[tokio::test]
async fn discovery_health_and_metrics() {
    let running = hub(&["--anonymous"]).await;
    let hub = Hub::new(&running);
    let metadata: Value = hub
        .fetch(
            "/.well-known/oauth-protected-resource/.well-known/mercure",
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], AUDIENCE);
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    assert_eq!(
        metadata["authorization_details_types_supported"],
        json!([DETAIL_TYPE])
    );
    assert_eq!(metadata["mercure_cookie"], "__Secure-mercure_access_token");
    let health = hub.fetch("/healthz", None).await;
    assert_eq!(health.status(), 200);

    let mut sub = hub.subscribe(&[("match", "m")], &[]).await;
    hub.publish(&[("topic", "m"), ("data", "x")]).await;
    sub.next().await.unwrap();
    let _ = hub
        .subscribe(&[("match", "m"), ("last_event_id", "unknown")], &[])
        .await;
    let text = hub.fetch("/metrics", None).await.text().await.unwrap();
    for needle in [
        "ssehub_connections ",
        "ssehub_published_total 1",
        "ssehub_delivered_total",
        "ssehub_replays_total{result=\"miss\"} 1",
        "ssehub_publish_to_write_seconds_count 1",
        "ssehub_log_up 1",
        "ssehub_groups 1",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    // Every delivery is timed, whether the connection wrote it or the
    // broker's writer put it straight on the sleeping connection's socket.
    let mut subs = Vec::new();
    for _ in 0..5 {
        subs.push(hub.subscribe(&[("match", "n")], &[]).await);
    }
    for n in 0..10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        hub.publish(&[("topic", "n"), ("data", &n.to_string())])
            .await;
    }
    for sub in &mut subs {
        for _ in 0..10 {
            sub.next().await.unwrap();
        }
    }
    let text = hub.fetch("/metrics", None).await.text().await.unwrap();
    let value = |name: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("{name} missing from\n{text}"));
        line[name.len() + 1..].trim().parse().unwrap()
    };
    // 1 live, the gap event of the unknown id, 50 live.
    assert_eq!(value("ssehub_delivered_total"), 52, "{text}");
    assert!(value("ssehub_direct_total") > 0, "{text}");
    // Every update write is timed; the gap event is not an update.
    assert_eq!(value("ssehub_publish_to_write_seconds_count"), 51, "{text}");
}

#[tokio::test]
async fn shutdown_ends_every_stream_and_stops_accepting() {
    let running = hub(&["--anonymous", "--drain", "200ms"]).await;
    let addr = running.local_addr();
    let hub = Hub::new(&running);
    let mut streams = Vec::new();
    for _ in 0..20 {
        streams.push(hub.subscribe(&[("match", "a")], &[]).await);
    }
    drop(hub);
    let started = std::time::Instant::now();
    running.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    for mut stream in streams {
        assert!(stream.next().await.is_none());
    }
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn tls_serves_http2_by_alpn() {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("ssehub-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let running = hub(&[
        "--anonymous",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    assert_eq!(running.hub_url().scheme(), "https");
    let root = reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let hub = Hub {
        running: &running,
        http,
    };
    let response = hub.get(&[("match", "secure")], &[]).await;
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("connection").is_none(),
        "no connection headers on h2"
    );
    let mut sub = Stream::new(response);
    let id = hub
        .publish(&[("topic", "secure"), ("data", "over h2")])
        .await;
    let message = sub.next().await.unwrap();
    assert_eq!(
        (message.data.as_str(), message.last_event_id.as_str()),
        ("over h2", id.as_str())
    );
    drop(sub);
    running.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn connections_end_at_the_maximum_lifetime() {
    let running = hub(&[
        "--anonymous",
        "--max-lifetime",
        "1s",
        "--lifetime-jitter",
        "0.5",
    ])
    .await;
    let hub = Hub::new(&running);
    let started = std::time::Instant::now();
    let mut sub = hub.subscribe(&[("match", "a")], &[]).await;
    // Ends on its own: `next` returns None at the end of the body.
    assert!(sub.next().await.is_none());
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_millis(450) && lived < Duration::from_millis(1500),
        "lived {lived:?}"
    );
}

/// One HTTP/1.1 response read off `socket`: status, headers (names in
/// lower case) and a `Content-Length` body.
async fn read_response(socket: &mut tokio::net::TcpStream) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::AsyncReadExt as _;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, socket.read(&mut chunk))
            .await
            .expect("a response")
            .unwrap();
        assert_ne!(n, 0, "closed: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, socket.read(&mut chunk))
            .await
            .expect("the body")
            .unwrap();
        assert_ne!(n, 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(buf.len(), head_end + length, "nothing after the response");
    let body = String::from_utf8(buf[head_end..].to_vec()).unwrap();
    (status, headers, body)
}

#[tokio::test]
async fn publications_are_answered_alike_on_kept_alive_connections_by_either_server() {
    use tokio::io::AsyncWriteExt as _;
    let mut seen = Vec::new();
    for stream_server in ["lean", "hyper"] {
        let running = hub(&[
            "--anonymous",
            "--stream-server",
            stream_server,
            "--cors-origin",
            "https://app.test",
            "--max-body",
            "1KiB",
        ])
        .await;
        let mut sub = Hub::new(&running).subscribe(&[("match", "t")], &[]).await;
        let addr = running.local_addr();
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let token = publisher();
        let post = |body: &str, extra: &str| {
            format!(
                "POST /.well-known/mercure HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://app.test\r\n\
                 Authorization: Bearer {token}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n{extra}\r\n{body}"
            )
        };
        let form = |data: &str| format!("topic=t&data={data}");
        // On one connection: two publications, a refused one, a chunked
        // one and one too large — every answer complete and in order.
        let mut answers = Vec::new();
        for (body, extra) in [
            (
                form("one"),
                format!("Content-Length: {}\r\n", form("one").len()),
            ),
            (
                form("two"),
                format!("Content-Length: {}\r\n", form("two").len()),
            ),
            // No topic: refused.
            ("data=x".to_owned(), "Content-Length: 6\r\n".to_owned()),
            (
                format!(
                    "{:x}\r\n{}\r\n0\r\n\r\n",
                    form("three").len(),
                    form("three")
                ),
                "Transfer-Encoding: chunked\r\n".to_owned(),
            ),
        ] {
            socket
                .write_all(post(&body, &extra).as_bytes())
                .await
                .unwrap();
            answers.push(read_response(&mut socket).await);
        }
        let big = form(&"x".repeat(2048));
        let request = post(&big, &format!("Content-Length: {}\r\n", big.len()));
        socket.write_all(request.as_bytes()).await.unwrap();
        answers.push(read_response(&mut socket).await);

        let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
        assert_eq!(statuses, [200, 200, 400, 200, 413], "{stream_server}");
        for (status, headers, _) in &answers {
            let has = |name: &str| headers.iter().any(|(n, _)| n == name);
            assert!(has("date"), "{stream_server} {status}: {headers:?}");
            assert_eq!(
                headers
                    .iter()
                    .find(|(n, _)| n == "access-control-allow-origin")
                    .map(|(_, v)| v.as_str()),
                Some("https://app.test"),
                "{stream_server} {status}: {headers:?}"
            );
        }
        let (_, headers, id) = &answers[0];
        let link = headers.iter().find(|(n, _)| n == "link").map(|(_, v)| v);
        assert!(
            link.is_some_and(|l| l.contains("rel=\"mercure\"")),
            "{stream_server}: {headers:?}"
        );
        for data in ["one", "two", "three"] {
            let message = sub.next().await.unwrap();
            assert_eq!(message.data, data, "{stream_server}");
            if data == "one" {
                assert_eq!(&message.last_event_id, id, "{stream_server}");
            }
        }
        let mut names: Vec<String> = answers[0].1.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        seen.push(names);
    }
    assert_eq!(seen[0], seen[1], "the same headers from either server");
}
