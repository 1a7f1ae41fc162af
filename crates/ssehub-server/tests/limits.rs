//! Limits, probes and metrics over real sockets: each limit is hit, answers
//! its status with `Retry-After`, is counted in `/metrics`, and a slot a
//! disconnect frees is taken again — on the lean stream server and on
//! hyper. Then readiness during a drain, the admin listener, the reference
//! hub's metric names, and the open-file limit of the binary.

mod common;

use std::time::{Duration, Instant};

use clap::Parser as _;
use serde_json::{Value, json};
use ssehub_server::{Config, Running};

const KEY: &str = "limits-test-secret-of-32-bytes!!!!";
const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "https://hub.test/mercure";
/// How long a condition may take to hold on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(20);
const SERVERS: [&str; 2] = ["lean", "hyper"];

/// A hub with `server` writing streams, anonymous subscribers allowed,
/// keep-alives often enough that a departed client is noticed soon.
async fn hub(server: &str, extra: &[&str]) -> Running {
    let mut args = vec![
        "ssehub",
        "--listen",
        "127.0.0.1:0",
        "--issuer",
        ISSUER,
        "--jwt-key",
        KEY,
        "--resource-identifier",
        AUDIENCE,
        "--anonymous",
        "--keep-alive",
        "100ms",
        "--stream-server",
        server,
    ];
    args.extend_from_slice(extra);
    ssehub_server::start(Config::parse_from(args))
        .await
        .unwrap()
}

/// A token with `claims` (e.g. `sub`) granting `actions` on every topic.
fn token(actions: &[&str], claims: Value) -> String {
    let now = common::now();
    let full = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "authorization_details": common::everything(actions),
    });
    common::sign_hs256(&common::merged(full, &claims), KEY)
}

/// A fresh client: no pooled connection carries one request's fate to the
/// next.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// `GET /.well-known/mercure?match=t`, with a token if given. A `200`
/// response is an open stream for as long as it is kept.
async fn subscribe(hub: &Running, token: Option<&str>) -> reqwest::Response {
    let mut request = client()
        .get(hub.hub_url().as_str())
        .query(&[("match", "t")]);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn publish(hub: &Running, token: &str) -> reqwest::Response {
    client()
        .post(hub.hub_url().as_str())
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=t&data=x")
        .send()
        .await
        .unwrap()
}

async fn get(url: String) -> reqwest::Response {
    client().get(url).send().await.unwrap()
}

async fn metrics_text(hub: &Running) -> String {
    let url = format!("http://{}/metrics", hub.local_addr());
    get(url).await.text().await.unwrap()
}

/// The value of the sample named exactly `name` (with its labels, if any).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

async fn metric(hub: &Running, name: &str) -> f64 {
    sample(&metrics_text(hub).await, name).unwrap_or(0.0)
}

/// Waits until the hub counts `open` subscriber connections.
async fn until_open(hub: &Running, open: f64) {
    let start = Instant::now();
    loop {
        let now = metric(hub, "ssehub_connections").await;
        if now == open {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{now} connections open, waited for {open}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts a refusal: `status`, `Retry-After: retry_after`, `reason` in the
/// plain-text body.
async fn assert_limited(response: reqwest::Response, status: u16, retry_after: &str, reason: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["retry-after"], retry_after);
    let body = response.text().await.unwrap();
    assert!(body.contains(reason), "{body:?}");
}

#[tokio::test]
async fn subscriptions_per_address_are_limited_and_freed_by_a_disconnect() {
    for server in SERVERS {
        let hub = hub(
            server,
            &[
                "--max-connections-per-ip",
                "2",
                "--cors-origin",
                "http://app.test",
            ],
        )
        .await;
        let first = subscribe(&hub, None).await;
        let second = subscribe(&hub, None).await;
        assert_eq!(
            (first.status().as_u16(), second.status().as_u16()),
            (200, 200),
            "{server}"
        );
        // A page on another origin may read when to come back.
        let refused = client()
            .get(hub.hub_url().as_str())
            .query(&[("match", "t")])
            .header("origin", "http://app.test")
            .send()
            .await
            .unwrap();
        let exposed = refused.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(exposed.contains("retry-after"), "{server}: {exposed}");
        assert_limited(
            refused,
            429,
            "5",
            "too many subscriptions from this address",
        )
        .await;
        let name = "ssehub_limited_total{limit=\"connections_per_ip\"}";
        assert_eq!(metric(&hub, name).await, 1.0, "{server}");
        assert_eq!(
            metric(
                &hub,
                "ssehub_refused_total{endpoint=\"subscribe\",status=\"429\"}"
            )
            .await,
            1.0
        );
        drop(first);
        until_open(&hub, 1.0).await;
        let again = subscribe(&hub, None).await;
        assert_eq!(again.status(), 200, "{server}: the freed slot is taken");
        assert_eq!(subscribe(&hub, None).await.status(), 429, "{server}");
        drop((second, again));
        until_open(&hub, 0.0).await;
        hub.shutdown().await.unwrap();
    }
}

/// `GET /.well-known/mercure?match=t` with `X-Forwarded-For: forwarded`.
async fn subscribe_forwarded(hub: &Running, forwarded: &str) -> reqwest::Response {
    client()
        .get(hub.hub_url().as_str())
        .query(&[("match", "t")])
        .header("x-forwarded-for", forwarded)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_counted() {
    for server in SERVERS {
        // Every connection comes from 127.0.0.1, as from a proxy on the
        // same host; the header names the client behind it.
        let trusting = hub(
            server,
            &[
                "--max-connections-per-ip",
                "1",
                "--trusted-proxy",
                "127.0.0.0/8",
            ],
        )
        .await;
        let a = subscribe_forwarded(&trusting, "198.51.100.1").await;
        let b = subscribe_forwarded(&trusting, "198.51.100.2").await;
        assert_eq!(
            (a.status().as_u16(), b.status().as_u16()),
            (200, 200),
            "{server}"
        );
        // The same client again is over its limit; a forged address left
        // of the one the proxy added does not help it.
        let again = subscribe_forwarded(&trusting, "203.0.113.66, 198.51.100.1").await;
        assert_limited(again, 429, "5", "too many subscriptions from this address").await;
        drop((a, b));
        until_open(&trusting, 0.0).await;
        trusting.shutdown().await.unwrap();

        // Without --trusted-proxy the header is ignored: one address.
        let plain = hub(server, &["--max-connections-per-ip", "1"]).await;
        let a = subscribe_forwarded(&plain, "198.51.100.1").await;
        assert_eq!(a.status(), 200, "{server}");
        let b = subscribe_forwarded(&plain, "198.51.100.2").await;
        assert_eq!(
            b.status(),
            429,
            "{server}: forwarded headers from an untrusted peer"
        );
        drop(a);
        until_open(&plain, 0.0).await;
        plain.shutdown().await.unwrap();
    }
}

/// The bytes queued in the kernel (sent and unacknowledged, or not sent
/// yet) on the established TCP socket from `local_port` to `remote_port`
/// (`tx_queue` of `/proc/net/tcp`).
fn send_queue(local_port: u16, remote_port: u16) -> Option<u64> {
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            std::fs::read_to_string(table)
                .ok()?
                .lines()
                .skip(1)
                .find_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let (local, remote, state, queues) =
                        (fields[1], fields[2], fields[3], fields[4]);
                    (state == "01" && port(local)? == local_port && port(remote)? == remote_port)
                        .then(|| u64::from_str_radix(queues.split(':').next()?, 16).ok())
                        .flatten()
                })
        })
}

/// How many bytes of 1 MiB of updates the kernel holds for a subscriber
/// that never reads, on a hub started with `flags`.
async fn held_for_a_stalled_subscriber(flags: &[&str]) -> u64 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut args = vec!["--write-timeout", "60s"];
    args.extend_from_slice(flags);
    let hub = hub("lean", &args).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // The smallest receive window: what the kernel holds is the hub's.
    socket.set_recv_buffer_size(1).unwrap();
    let mut stream = socket.connect(hub.local_addr()).await.unwrap();
    let head = format!(
        "GET /.well-known/mercure?match=t HTTP/1.1\r\nhost: {}\r\n\r\n",
        hub.local_addr()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    until_open(&hub, 1.0).await;
    let data = "x".repeat(16 * 1024);
    for _ in 0..64 {
        hub.publish("t", &data).await.unwrap();
    }
    let ports = (hub.local_addr().port(), stream.local_addr().unwrap().port());
    // The writes run on; the queue stops growing once the buffer is full.
    let mut held = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        held = held.max(send_queue(ports.0, ports.1).expect("the hub's socket"));
    }
    drop(stream);
    hub.shutdown().await.unwrap();
    held
}

#[tokio::test]
async fn a_subscriber_that_never_reads_holds_little_in_the_kernel() {
    let unlimited = ["--unsent-limit", "0", "--send-buffer", "0"];
    // The default: at most 4 KiB unsent (plus what the peer's tiny window
    // took, and the last write) before the hub's writes to it wait.
    let by_default = held_for_a_stalled_subscriber(&[]).await;
    assert!(
        by_default <= 40 * 1024,
        "{by_default} bytes queued by default"
    );
    // The send buffer alone bounds it too: Linux grants twice the size.
    let buffer =
        held_for_a_stalled_subscriber(&["--unsent-limit", "0", "--send-buffer", "16KiB"]).await;
    assert!(
        buffer <= 40 * 1024,
        "{buffer} bytes queued with --send-buffer 16KiB"
    );
    // Neither: the kernel's autotuning takes far more of 1 MiB.
    let autotuned = held_for_a_stalled_subscriber(&unlimited).await;
    assert!(
        autotuned > 128 * 1024,
        "{autotuned} bytes queued with the kernel's autotuning"
    );
}

#[tokio::test]
async fn subscriptions_per_subject_are_limited_and_anonymous_ones_are_not_counted() {
    for server in SERVERS {
        let hub = hub(server, &["--max-connections-per-subject", "1"]).await;
        let alice = || token(&["subscribe"], json!({"sub": "alice"}));
        let first = subscribe(&hub, Some(&alice())).await;
        assert_eq!(first.status(), 200, "{server}");
        // Another token of the same subject.
        assert_limited(
            subscribe(&hub, Some(&alice())).await,
            429,
            "5",
            "too many subscriptions for this subject",
        )
        .await;
        let bob = subscribe(&hub, Some(&token(&["subscribe"], json!({"sub": "bob"})))).await;
        let anonymous = [subscribe(&hub, None).await, subscribe(&hub, None).await];
        let no_subject = [
            subscribe(&hub, Some(&token(&["subscribe"], json!({})))).await,
            subscribe(&hub, Some(&token(&["subscribe"], json!({})))).await,
        ];
        assert_eq!(bob.status(), 200);
        assert!(
            anonymous
                .iter()
                .chain(&no_subject)
                .all(|r| r.status() == 200)
        );
        let name = "ssehub_limited_total{limit=\"connections_per_subject\"}";
        assert_eq!(metric(&hub, name).await, 1.0, "{server}");
        drop(first);
        until_open(&hub, 5.0).await;
        let again = subscribe(&hub, Some(&alice())).await;
        assert_eq!(again.status(), 200, "{server}: the freed slot is taken");
        drop((again, bob, anonymous, no_subject));
        until_open(&hub, 0.0).await;
        hub.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn the_connection_ceiling_answers_503_and_a_disconnect_makes_room() {
    for server in SERVERS {
        let hub = hub(server, &["--max-connections", "2"]).await;
        assert_eq!(metric(&hub, "ssehub_max_connections").await, 2.0);
        let first = subscribe(&hub, None).await;
        let second = subscribe(&hub, Some(&token(&["subscribe"], json!({"sub": "a"})))).await;
        assert_eq!(
            (first.status().as_u16(), second.status().as_u16()),
            (200, 200),
            "{server}"
        );
        assert_limited(
            subscribe(&hub, None).await,
            503,
            "5",
            "the hub holds as many connections as it can",
        )
        .await;
        let name = "ssehub_limited_total{limit=\"connections\"}";
        assert_eq!(metric(&hub, name).await, 1.0, "{server}");
        // A refused request held no slot: still two open.
        until_open(&hub, 2.0).await;
        drop(second);
        until_open(&hub, 1.0).await;
        let again = subscribe(&hub, None).await;
        assert_eq!(again.status(), 200, "{server}: the freed slot is taken");
        assert_eq!(subscribe(&hub, None).await.status(), 503);
        drop((first, again));
        until_open(&hub, 0.0).await;
        hub.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn publications_are_limited_per_subject_or_per_token_and_the_bucket_refills() {
    for server in SERVERS {
        let hub = hub(server, &["--publish-rate", "1", "--publish-burst", "2"]).await;
        let alice = token(&["publish"], json!({"sub": "alice"}));
        for _ in 0..2 {
            assert_eq!(publish(&hub, &alice).await.status(), 200, "{server}");
        }
        // The subject's budget, whichever of its tokens is used.
        let alice_again = token(&["publish"], json!({"sub": "alice", "jti": "another"}));
        assert_limited(
            publish(&hub, &alice_again).await,
            429,
            "1",
            "too many publications for this token",
        )
        .await;
        assert_eq!(
            publish(&hub, &token(&["publish"], json!({"sub": "bob"})))
                .await
                .status(),
            200
        );
        // Without a subject, each token has its own budget.
        let anonymous = token(&["publish"], json!({"jti": "one"}));
        for _ in 0..2 {
            assert_eq!(publish(&hub, &anonymous).await.status(), 200);
        }
        assert_eq!(publish(&hub, &anonymous).await.status(), 429);
        let other = token(&["publish"], json!({"jti": "two"}));
        assert_eq!(publish(&hub, &other).await.status(), 200);
        let name = "ssehub_limited_total{limit=\"publish_rate\"}";
        assert_eq!(metric(&hub, name).await, 2.0, "{server}");
        // A refused publication was not published.
        assert_eq!(metric(&hub, "mercure_updates_total").await, 6.0);
        // One token a second comes back.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(publish(&hub, &alice).await.status(), 200, "{server}");
        hub.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn subscribe_requests_per_address_are_rate_limited_and_the_bucket_refills() {
    for server in SERVERS {
        let hub = hub(server, &["--subscribe-rate", "1", "--subscribe-burst", "2"]).await;
        for _ in 0..2 {
            assert_eq!(subscribe(&hub, None).await.status(), 200, "{server}");
        }
        assert_limited(
            subscribe(&hub, None).await,
            429,
            "1",
            "too many subscribe requests from this address",
        )
        .await;
        let name = "ssehub_limited_total{limit=\"subscribe_rate\"}";
        assert_eq!(metric(&hub, name).await, 1.0, "{server}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(subscribe(&hub, None).await.status(), 200, "{server}");
        // Refused requests are requests too: still one a second.
        assert_eq!(subscribe(&hub, None).await.status(), 429, "{server}");
        hub.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn readiness_turns_false_as_soon_as_a_shutdown_starts() {
    let hub = hub("lean", &["--admin-listen", "127.0.0.1:0", "--drain", "6s"]).await;
    let admin = hub.admin_addr().unwrap();
    let main = hub.local_addr();
    let ready = get(format!("http://{main}/readyz")).await;
    assert_eq!(ready.status(), 200);
    assert_eq!(get(format!("http://{admin}/readyz")).await.status(), 200);
    // Three subscribers: the drain closes one every two seconds, so the
    // hub is still up, draining, for a while.
    let streams = [
        subscribe(&hub, None).await,
        subscribe(&hub, None).await,
        subscribe(&hub, None).await,
    ];
    assert!(streams.iter().all(|s| s.status() == 200));
    let started = Instant::now();
    let stopping = tokio::spawn(hub.shutdown());
    let not_ready = loop {
        let response = get(format!("http://{admin}/readyz")).await;
        if response.status() != 200 {
            break response;
        }
        assert!(started.elapsed() < PATIENCE, "still ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not ready only after {:?}",
        started.elapsed()
    );
    assert_limited(not_ready, 503, "1", "draining").await;
    // Still live while it drains.
    assert_eq!(get(format!("http://{admin}/healthz")).await.status(), 200);
    drop(streams);
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_admin_listener_serves_probes_and_metrics_and_keeps_metrics_off_the_main_address() {
    let hub = hub("lean", &["--admin-listen", "127.0.0.1:0"]).await;
    let (admin, main) = (hub.admin_addr().unwrap(), hub.local_addr());
    let health = get(format!("http://{admin}/healthz")).await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    assert_eq!(get(format!("http://{admin}/readyz")).await.status(), 200);
    let metrics = get(format!("http://{admin}/metrics")).await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("# TYPE ssehub_connections gauge")
    );
    // Nothing else there: no hub, no page.
    for path in ["/.well-known/mercure?match=t", "/"] {
        assert_eq!(get(format!("http://{admin}{path}")).await.status(), 404);
    }
    // The main address keeps the probes, not the metrics.
    assert_eq!(get(format!("http://{main}/metrics")).await.status(), 404);
    assert_eq!(get(format!("http://{main}/healthz")).await.status(), 200);
    assert_eq!(get(format!("http://{main}/readyz")).await.status(), 200);
    hub.shutdown().await.unwrap();

    let hub = self::hub(
        "hyper",
        &["--admin-listen", "127.0.0.1:0", "--metrics-on-main"],
    )
    .await;
    let (admin, main) = (hub.admin_addr().unwrap(), hub.local_addr());
    assert_eq!(get(format!("http://{main}/metrics")).await.status(), 200);
    assert_eq!(get(format!("http://{admin}/metrics")).await.status(), 200);
    hub.shutdown().await.unwrap();
    // The admin listener closes with the hub.
    let stopped = Instant::now();
    while client()
        .get(format!("http://{admin}/healthz"))
        .send()
        .await
        .is_ok()
    {
        assert!(
            stopped.elapsed() < PATIENCE,
            "the admin listener outlived the hub"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // It cannot share the main address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let err = ssehub_server::start(Config::parse_from([
        "ssehub",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        &port,
    ]))
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("--admin-listen {port}: ")),
        "{err}"
    );
}

#[tokio::test]
async fn the_reference_hubs_metrics_count_subscribers_and_updates() {
    for server in SERVERS {
        let hub = hub(server, &[]).await;
        let publisher = token(&["publish"], json!({"sub": "app"}));
        let kept = subscribe(&hub, None).await;
        let gone = [subscribe(&hub, None).await, subscribe(&hub, None).await];
        assert!(gone.iter().all(|r| r.status() == 200));
        drop(gone);
        for _ in 0..2 {
            assert_eq!(publish(&hub, &publisher).await.status(), 200);
        }
        hub.publish("t", "in-process").await.unwrap();
        until_open(&hub, 1.0).await;
        let text = metrics_text(&hub).await;
        for (line, server) in [
            ("# TYPE mercure_subscribers_connected gauge", server),
            (
                "# HELP mercure_subscribers_connected The current number of running subscribers.",
                server,
            ),
            ("# TYPE mercure_subscribers counter", server),
            (
                "# HELP mercure_subscribers Total number of handled subscribers.",
                server,
            ),
            ("# TYPE mercure_updates counter", server),
            (
                "# HELP mercure_updates Total number of handled updates.",
                server,
            ),
        ] {
            assert!(text.lines().any(|l| l == line), "{server}: {line}\n{text}");
        }
        assert_eq!(sample(&text, "mercure_subscribers_connected"), Some(1.0));
        assert_eq!(sample(&text, "mercure_subscribers_total"), Some(3.0));
        assert_eq!(sample(&text, "mercure_updates_total"), Some(3.0));
        // ssehub's own, beside them.
        assert_eq!(sample(&text, "ssehub_connections"), Some(1.0));
        assert!(text.ends_with("# EOF\n"));
        drop(kept);
        hub.shutdown().await.unwrap();
    }
}

#[test]
fn the_binary_raises_its_open_file_limit_and_says_how_many_connections_it_holds() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    let Some(hard) = hard.filter(|&hard| hard > 256) else {
        eprintln!("no finite hard open-file limit above 256 here: nothing to raise");
        return;
    };
    // Started with a soft limit of 256.
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -Sn 256 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_ssehub"))
        .args(["--listen", "127.0.0.1:0", "--dev", "--log-format", "json"])
        .env_remove("SSEHUB_JWT_KEY")
        .env_remove("SSEHUB_MAX_CONNECTIONS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("listening on "), "{first:?}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], hard.to_string(), "soft limit: {line}");
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("open_files") {
            log = line;
            break;
        }
    }
    let log: Value = serde_json::from_str(&log).unwrap();
    assert_eq!(log["fields"]["raised_from"], "256");
    assert_eq!(log["fields"]["open_files"], hard.to_string());
    let reserve = (hard / 10).clamp(64, 1024);
    let message = log["fields"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "room for {} subscriber connections",
            hard - reserve
        )),
        "{message}"
    );
    assert_eq!(log["fields"]["max_connections"], hard - reserve);
}

/// Deletes a test's keys from the shared Redis when dropped.
struct RedisKeys(String);

impl Drop for RedisKeys {
    fn drop(&mut self) {
        use std::process::{Command, Stdio};
        let Ok(out) = Command::new("redis-cli")
            .args([
                "-p",
                "6379",
                "--scan",
                "--pattern",
                &format!("*{}*", self.0),
            ])
            .output()
        else {
            return;
        };
        let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        if !keys.is_empty() {
            let _ = Command::new("redis-cli")
                .args(["-p", "6379", "DEL"])
                .args(&keys)
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// A resume read from a remote log makes the lean server hand the request
/// to hyper; its subscribe rate is charged once, not once per server.
#[tokio::test]
async fn a_request_the_lean_server_hands_on_is_charged_once() {
    let stream = format!("ssehub-limits-{}", uuid::Uuid::new_v4().simple());
    let _keys = RedisKeys(stream.clone());
    let hub = hub(
        "lean",
        &[
            "--transport",
            "redis://127.0.0.1:6379",
            "--transport-stream",
            &stream,
            "--subscribe-rate",
            "1",
            "--subscribe-burst",
            "2",
        ],
    )
    .await;
    let start = Instant::now();
    while get(format!("http://{}/readyz", hub.local_addr()))
        .await
        .status()
        != 200
    {
        assert!(
            start.elapsed() < PATIENCE,
            "Redis at 127.0.0.1:6379 is needed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resume = || async {
        client()
            .get(hub.hub_url().as_str())
            .query(&[("match", "t")])
            .header("last-event-id", "earliest")
            .send()
            .await
            .unwrap()
    };
    let (first, second) = (resume().await, resume().await);
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200, "the first resume was charged twice");
    assert_eq!(resume().await.status(), 429);
    drop((first, second));
    hub.shutdown().await.unwrap();
}

#[test]
fn limit_flags_that_cannot_work_are_refused_by_name() {
    let settings = |args: &[&str]| {
        let mut all = vec!["ssehub", "--listen", "127.0.0.1:3000"];
        all.extend_from_slice(args);
        Config::parse_from(all)
            .settings("127.0.0.1:3000".parse().unwrap())
            .map(|_| ())
            .map_err(|err| err.to_string())
    };
    assert_eq!(
        settings(&["--publish-rate", "5", "--publish-burst", "0"]),
        Err("--publish-burst must be at least 1".to_owned())
    );
    assert_eq!(
        settings(&["--subscribe-burst", "0"]),
        Err("--subscribe-burst must be at least 1".to_owned())
    );
    // No rate, no burst needed.
    assert_eq!(
        settings(&["--subscribe-rate", "0", "--subscribe-burst", "0"]),
        Ok(())
    );
    assert_eq!(
        settings(&["--admin-listen", "127.0.0.1:3000"]),
        Err(
            "--admin-listen 127.0.0.1:3000 is the --listen address: give it another port"
                .to_owned()
        )
    );
    let err = Config::try_parse_from(["ssehub", "--metrics-on-main"]).unwrap_err();
    assert!(err.to_string().contains("--admin-listen"), "{err}");
    let err = Config::try_parse_from(["ssehub", "--max-connections-per-ip", "lots"]).unwrap_err();
    assert!(
        err.to_string().contains("--max-connections-per-ip"),
        "{err}"
    );
}
