//! The live figures (`/stats`, `/stats/live`) and the debugger at
//! `/.well-known/mercure/debug/`, over real HTTP against a hub started in
//! this process.

mod common;

use std::time::{Duration, Instant};

use clap::Parser as _;
use serde_json::Value;
use ssehub_server::{Config, Running};

const KEY: &str = "live-view-test-secret-of-32-bytes!!";
const ISSUER: &str = "https://issuer.test";
/// How long a figure may take to settle (a subscriber's end is seen when
/// its connection closes).
const SETTLE: Duration = Duration::from_secs(10);

async fn start(args: &[&str]) -> Running {
    let mut all = vec!["ssehub", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    ssehub_server::start(Config::parse_from(all)).await.unwrap()
}

/// A hub trusting `ISSUER` with `KEY`, anonymous subscribers allowed
/// (and no subscription events, which would be updates of their own).
async fn hub() -> Running {
    start(&["--issuer", ISSUER, "--jwt-key", KEY, "--anonymous"]).await
}

/// A token publishing on every topic of `running`.
fn publisher(running: &Running) -> String {
    let claims = serde_json::json!({
        "iss": ISSUER,
        "aud": running.hub_url().as_str(),
        "exp": common::now() + 600,
        "authorization_details": common::everything(&["publish"]),
    });
    common::sign_hs256(&claims, KEY)
}

fn url(running: &Running, path: &str) -> String {
    format!("http://{}{path}", running.local_addr())
}

async fn stats(http: &reqwest::Client, running: &Running) -> Value {
    let response = http.get(url(running, "/stats")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

/// Polls `/stats` until `check` holds; panics with the last document
/// after `SETTLE`.
async fn stats_until(
    http: &reqwest::Client,
    running: &Running,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let document = stats(http, running).await;
        if check(&document) {
            return document;
        }
        assert!(Instant::now() < deadline, "{what}: {document:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An open subscription, kept open while it lives.
async fn subscribe(
    http: &reqwest::Client,
    running: &Running,
    matchers: &[&str],
) -> reqwest::Response {
    let query: Vec<(&str, &str)> = matchers.iter().map(|m| ("match", *m)).collect();
    let response = http
        .get(running.hub_url().as_str())
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

#[tokio::test]
async fn stats_count_connections_subscriptions_publishes_and_deliveries() {
    let running = hub().await;
    let publisher = publisher(&running);
    let http = reqwest::Client::new();

    let idle = stats(&http, &running).await;
    assert_eq!(idle["connections"], 0);
    assert_eq!(idle["subscriptions"], 0);
    assert_eq!(idle["published"], 0);
    assert_eq!(idle["latency"]["p50Ms"], Value::Null);

    // Three matchers over two connections; the second connection's two
    // matchers select the same topic, so it gets each update once.
    let one = subscribe(&http, &running, &["https://example.com/a"]).await;
    let two = subscribe(&http, &running, &["https://example.com/a", "*"]).await;
    stats_until(&http, &running, "two connections, three matchers", |s| {
        s["connections"] == 2 && s["subscriptions"] == 3
    })
    .await;

    for n in 0..3 {
        let response = http
            .post(running.hub_url().as_str())
            .bearer_auth(&publisher)
            .form(&[("topic", "https://example.com/a"), ("data", &n.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let settled = stats_until(&http, &running, "six deliveries", |s| {
        s["delivered"] == 6 && s["latency"]["count"] == 6
    })
    .await;
    assert_eq!(settled["published"], 3);
    assert_eq!(settled["updates"], 3);
    assert_eq!(settled["dropped"], 0);
    let (p50, p99) = (
        settled["latency"]["p50Ms"].as_f64().unwrap(),
        settled["latency"]["p99Ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p99, "{settled:#}");
    // Counts only: nothing names a topic, a subscriber or a token.
    let mut keys: Vec<&str> = settled
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "connections",
            "delivered",
            "dropped",
            "latency",
            "published",
            "slowDisconnects",
            "subscriptions",
            "timeMs",
            "updates"
        ]
    );
    assert!(!settled.to_string().contains("example.com"));

    drop(two);
    stats_until(&http, &running, "the second connection gone", |s| {
        s["connections"] == 1 && s["subscriptions"] == 1
    })
    .await;
    drop(one);
    stats_until(&http, &running, "no connection left", |s| {
        s["connections"] == 0 && s["subscriptions"] == 0
    })
    .await;
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_live_stream_samples_every_second_with_the_rates_of_the_second_past() {
    let running = hub().await;
    let publisher = publisher(&running);
    let http = reqwest::Client::new();
    let response = http.get(url(&running, "/stats/live")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut live = common::Events::new(response, SETTLE);
    let first = live.next().await.expect("a first sample at once");
    assert_eq!(first.event, "stats");
    let first: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(
        first["interval"],
        Value::Null,
        "nothing to compare with yet"
    );
    // The live stream is not a subscriber: it does not count itself.
    assert_eq!(first["connections"], 0);

    let _sub = subscribe(&http, &running, &["https://example.com/live"]).await;
    let started = Instant::now();
    for n in 0..5 {
        let response = http
            .post(running.hub_url().as_str())
            .bearer_auth(&publisher)
            .form(&[
                ("topic", "https://example.com/live"),
                ("data", &n.to_string()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // The samples after the publishes account for all five, spread over
    // one or two intervals.
    let (mut published, mut delivered, mut seen) = (0.0, 0.0, None);
    while published < 4.99 {
        let message = live.next().await.expect("a sample a second");
        let sample: Value = serde_json::from_str(&message.data).unwrap();
        let interval = &sample["interval"];
        let seconds = interval["seconds"].as_f64().unwrap();
        assert!((0.5..3.0).contains(&seconds), "{sample:#}");
        published += interval["publishedPerSec"].as_f64().unwrap() * seconds;
        delivered += interval["deliveredPerSec"].as_f64().unwrap() * seconds;
        if interval["latency"]["count"].as_u64().unwrap() > 0 {
            assert!(interval["latency"]["p99Ms"].as_f64().unwrap() > 0.0);
            seen = Some(sample.clone());
        }
        assert!(started.elapsed() < SETTLE, "{sample:#}");
    }
    assert!((published - 5.0).abs() < 0.1, "{published}");
    let last = seen.expect("an interval with deliveries");
    assert_eq!(last["connections"], 1);
    assert!(delivered > 0.0);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_debugger_is_served_only_when_enabled_and_holds_no_token() {
    let production = start(&["--issuer", ISSUER, "--jwt-key", KEY, "--anonymous"]).await;
    let enabled = start(&[
        "--issuer",
        ISSUER,
        "--jwt-key",
        KEY,
        "--anonymous",
        "--debugger",
    ])
    .await;
    let dev = start(&["--dev"]).await;
    let dev_off = start(&["--dev", "--debugger=false"]).await;
    let http = reqwest::Client::new();
    let status = |running: &Running, path: &str| {
        let request = http.get(url(running, path));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let files = [
        "/.well-known/mercure/debug/",
        "/.well-known/mercure/debug/config.json",
        "/.well-known/mercure/debug/debugger.js",
        "/.well-known/mercure/debug/live.js",
        "/.well-known/mercure/debug/debugger.css",
        "/.well-known/mercure/debug/live.css",
    ];
    for path in files {
        assert_eq!(status(&production, path).await, 404, "{path}, default");
        assert_eq!(
            status(&dev_off, path).await,
            404,
            "{path}, --debugger=false"
        );
        assert_eq!(status(&dev, path).await, 200, "{path}, development");
        assert_eq!(status(&enabled, path).await, 200, "{path}, --debugger");
    }
    assert_eq!(status(&production, "/stats").await, 200);

    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url(&enabled, "/.well-known/mercure/debug"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(
        redirect.headers()["location"],
        "/.well-known/mercure/debug/"
    );

    let page = http
        .get(url(&enabled, "/.well-known/mercure/debug/"))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let config: Value = http
        .get(url(&enabled, "/.well-known/mercure/debug/config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["dev"], false);
    assert_eq!(config["anonymous"], true);
    assert_eq!(config["stats"], "/stats/live");
    // Even in development mode, where the demo page gets tokens, the
    // debugger's files carry none.
    let (publisher, subscriber) = dev.dev_tokens();
    for path in files {
        let body = http
            .get(url(&dev, path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!body.contains("eyJ"), "{path} holds a JWT");
        assert!(!body.to_lowercase().contains("token\":"), "{path}");
        for token in [&publisher, &subscriber].into_iter().flatten() {
            assert!(!body.contains(token.as_str()), "{path}");
        }
    }
    for running in [production, enabled, dev, dev_off] {
        running.shutdown().await.unwrap();
    }
}

#[test]
fn the_debugger_flag_reads_booleans_and_names_itself_on_a_bad_value() {
    let parse = |args: &[&str]| {
        let mut all = vec!["ssehub"];
        all.extend_from_slice(args);
        Config::try_parse_from(all)
    };
    assert_eq!(parse(&[]).unwrap().debugger, None);
    assert_eq!(parse(&["--debugger"]).unwrap().debugger, Some(true));
    assert_eq!(parse(&["--debugger=off"]).unwrap().debugger, Some(false));
    assert_eq!(parse(&["--ui"]).unwrap().debugger, Some(true));
    let err = parse(&["--debugger=maybe"]).unwrap_err().to_string();
    assert!(err.contains("--debugger"), "{err}");
    let settings = |args: &[&str]| {
        parse(args)
            .unwrap()
            .settings("127.0.0.1:3000".parse().unwrap())
            .unwrap()
    };
    assert!(settings(&[]).debugger, "development mode: on");
    assert!(!settings(&["--debugger=false"]).debugger);
    assert!(!settings(&["--issuer", ISSUER, "--jwt-key", KEY]).debugger);
    assert!(settings(&["--issuer", ISSUER, "--jwt-key", KEY, "--debugger"]).debugger);
}
