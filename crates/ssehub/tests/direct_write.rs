//! The lean server lends a sleeping connection's socket to the broker's
//! fan-out writer: frames must still arrive exactly once, in publish order,
//! with direct sends, several channels, full sockets, keep-alives and
//! runtimes that come and go.
#![cfg(feature = "server")]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::RawResponse;
use ssehub::Event;
use ssehub::broker::{Broker, BrokerConfig, Client, SocketLoan};
use ssehub::server::{ServerConfig, serve};
use tokio::io::AsyncReadExt;

/// Serves `broker`; a request's query lists the channels to subscribe to
/// (`/events?a,b`).
async fn start(broker: &Broker) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let broker = broker.clone();
    tokio::spawn(serve(
        listener,
        ServerConfig::default(),
        move |request: &http::request::Parts| {
            broker.handle_request(request, |client| {
                for topic in request.uri.query().unwrap_or_default().split(',') {
                    if !topic.is_empty() {
                        client.subscribe(topic).unwrap();
                    }
                }
            })
        },
    ));
    addr
}

fn quiet() -> BrokerConfig {
    BrokerConfig::default()
        .generate_ids(false)
        .retry(None)
        .keep_alive(None)
}

/// A broker with `config` that keeps every client that connects.
fn recording(config: BrokerConfig) -> (Broker, Arc<Mutex<Vec<Client>>>) {
    let clients: Arc<Mutex<Vec<Client>>> = Arc::default();
    let broker = Broker::with_config(config.on_connect({
        let clients = clients.clone();
        move |client| clients.lock().unwrap().push(client.clone())
    }));
    (broker, clients)
}

/// The `data:` values of every event in `body`, in order.
fn data_lines(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").map(str::to_owned))
        .collect()
}

/// Publishes each of `data` on channel `a`, letting connections sleep
/// before each.
async fn publish_sparsely(broker: &Broker, data: impl IntoIterator<Item = String>) {
    let a = broker.channel("a").unwrap();
    for data in data {
        settle().await;
        a.broadcast_data(data).unwrap();
    }
}

/// Lets connections go to sleep (and so park with the broker), and their
/// sockets leave the burst window in which frames are left to them.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(12)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_connections_get_every_frame_once_and_in_order() {
    let (broker, clients) = recording(quiet());
    let addr = start(&broker).await;
    let mut responses = Vec::new();
    for i in 0..20 {
        // Half in two channels, so one publish to both reaches them twice over.
        let path = if i % 2 == 0 { "/e?a,b" } else { "/e?a" };
        let mut response = RawResponse::get(addr, path, &[]).await;
        response.read_until(b":\n\n", Duration::from_secs(2)).await;
        responses.push(response);
    }
    let (a, b) = (broker.channel("a").unwrap(), broker.channel("b").unwrap());
    let mut expected_all = Vec::new();
    let mut expected_direct = Vec::new();
    for n in 0..120 {
        settle().await;
        let data = format!("{n}");
        match n % 4 {
            0 => broker.broadcast_data(data.clone()).unwrap(),
            1 => a.broadcast_data(data.clone()).unwrap(),
            2 => {
                broker
                    .publish_to(&[a.clone(), b.clone()], Event::new(data.clone()))
                    .unwrap();
            }
            _ => {
                // A direct send right after a publish wakes the sleeping
                // connection while the writer holds a frame for it.
                a.broadcast_data(data.clone()).unwrap();
                let first = clients.lock().unwrap()[0].clone();
                first.send_data(format!("direct {n}")).unwrap();
                expected_direct.push(format!("direct {n}"));
            }
        }
        expected_all.push(data);
    }
    for (i, response) in responses.iter_mut().enumerate() {
        let last = format!("data: {}\n\n", expected_all.last().unwrap());
        let mut body = response
            .read_until(last.as_bytes(), Duration::from_secs(5))
            .await;
        if i == 0 && !contains(&body, b"data: direct 119\n\n") {
            body.extend(
                response
                    .read_until(b"data: direct 119\n\n", Duration::from_secs(5))
                    .await,
            );
        }
        // Channel events in publish order; direct sends in send order (a
        // direct send may overtake a channel event: they are two queues).
        let (direct, published): (Vec<String>, Vec<String>) = data_lines(&body)
            .into_iter()
            .partition(|l| l.starts_with("direct"));
        assert_eq!(published, expected_all, "client {i}");
        let expected_direct: &[String] = if i == 0 { &expected_direct } else { &[] };
        assert_eq!(direct, expected_direct, "client {i}");
    }
    let stats = broker.stats();
    assert!(stats.direct > 0, "the writer wrote nothing: {stats:?}");
    assert_eq!(stats.delivered, 20 * 120 + 30, "{stats:?}");
}

#[tokio::test]
async fn a_full_socket_hands_the_rest_to_the_connection() {
    let broker = Broker::with_config(
        quiet()
            .client_buffer_events(100_000)
            .client_buffer_bytes(256 << 20),
    );
    let addr = start(&broker).await;
    // A client with a tiny receive window that reads nothing for a while.
    let mut stream = common::stalled_get(addr, "/e?a").await;
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let a = broker.channel("a").unwrap();
    let payload = "x".repeat(64 * 1024);
    for n in 0..160 {
        a.broadcast_data(format!("{n} {payload}")).unwrap();
        if n % 8 == 0 {
            // Let the writer run into the full socket while parked.
            tokio::task::yield_now().await;
        }
    }
    let direct = broker.stats().direct;
    assert!(direct > 0, "nothing went through the writer");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Now read everything: 160 events, whole and in order.
    let mut body = head[..n].to_vec();
    let mut buf = vec![0u8; 1 << 16];
    let needle = format!("data: 159 {payload}\n\n");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !body.ends_with(b"\n\n\r\n")
        || !contains(
            &body[body.len().saturating_sub(needle.len() + 8)..],
            needle.as_bytes(),
        )
    {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("the rest never came")
            .unwrap();
        assert!(n > 0, "connection closed early");
        body.extend_from_slice(&buf[..n]);
    }
    let numbers: Vec<usize> = data_lines(&dechunk(&body))
        .iter()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(numbers, (0..160).collect::<Vec<_>>());
}

#[tokio::test]
async fn writes_by_the_writer_hold_off_keep_alives() {
    let broker = Broker::with_config(
        BrokerConfig::default()
            .generate_ids(false)
            .retry(None)
            .keep_alive(Some(Duration::from_millis(150))),
    );
    let addr = start(&broker).await;
    let mut response = RawResponse::get(addr, "/e?a", &[]).await;
    response.read_until(b":\n\n", Duration::from_secs(1)).await;
    let a = broker.channel("a").unwrap();
    let busy = tokio::spawn(async move {
        for n in 0..20 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            a.broadcast_data(format!("{n}")).unwrap();
        }
    });
    let body = response
        .read_until(b"data: 19\n\n", Duration::from_secs(3))
        .await;
    busy.await.unwrap();
    assert!(
        !contains(&body, b":\n\n"),
        "keep-alive while events flowed: {:?}",
        String::from_utf8_lossy(&body)
    );
    assert!(broker.stats().direct > 0);
    // Idle again: keep-alives resume.
    response.read_until(b":\n\n", Duration::from_secs(1)).await;
}

#[test]
fn the_writer_starts_again_in_a_new_runtime() {
    let broker = Broker::with_config(quiet());
    for round in 0..3 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let addr = start(&broker).await;
            let mut response = RawResponse::get(addr, "/e?a", &[]).await;
            response.read_until(b":\n\n", Duration::from_secs(1)).await;
            let before = broker.stats().direct;
            publish_sparsely(&broker, (0..5).map(|n| format!("{round}.{n}"))).await;
            let needle = format!("data: {round}.4\n\n");
            let body = response
                .read_until(needle.as_bytes(), Duration::from_secs(2))
                .await;
            let expected: Vec<String> = (0..5).map(|n| format!("{round}.{n}")).collect();
            assert_eq!(data_lines(&body), expected);
            assert!(broker.stats().direct > before, "round {round}");
        });
        // Dropping the runtime drops the writer task with it.
        drop(runtime);
    }
}

#[tokio::test]
async fn a_subscription_made_while_asleep_is_live_at_once() {
    let (broker, clients) = recording(quiet());
    let addr = start(&broker).await;
    let mut response = RawResponse::get(addr, "/e?a", &[]).await;
    response.read_until(b":\n\n", Duration::from_secs(1)).await;
    broker.channel("a").unwrap().broadcast_data("one").unwrap();
    response
        .read_until(b"data: one\n\n", Duration::from_secs(1))
        .await;
    settle().await;
    clients.lock().unwrap()[0].subscribe("late").unwrap();
    broker
        .channel("late")
        .unwrap()
        .broadcast_data("two")
        .unwrap();
    broker
        .channel("a")
        .unwrap()
        .broadcast_data("three")
        .unwrap();
    let body = response
        .read_until(b"data: three\n\n", Duration::from_secs(1))
        .await;
    assert_eq!(data_lines(&body), ["two", "three"]);
}

#[tokio::test]
async fn without_the_loan_the_connection_writes_everything() {
    let broker = Broker::with_config(quiet());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, ServerConfig::default(), {
        let broker = broker.clone();
        move |request: &http::request::Parts| {
            let mut response = broker.handle_request(request, |client| {
                client.subscribe("a").unwrap();
            });
            // As a handler whose body wrapper changes the bytes would.
            response.extensions_mut().remove::<SocketLoan>();
            response
        }
    }));
    let mut response = RawResponse::get(addr, "/e", &[]).await;
    response.read_until(b":\n\n", Duration::from_secs(1)).await;
    publish_sparsely(&broker, (0..5).map(|n| n.to_string())).await;
    let body = response
        .read_until(b"data: 4\n\n", Duration::from_secs(1))
        .await;
    assert_eq!(data_lines(&body), ["0", "1", "2", "3", "4"]);
    assert_eq!(broker.stats().direct, 0);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The body of a chunked response (head included in `raw`).
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut rest = &raw[start..];
    let mut body = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        if size == 0 || rest.len() < line_end + 2 + size + 2 {
            break;
        }
        body.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
        rest = &rest[line_end + 2 + size + 2..];
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_sends_racing_the_writer_never_reorder_or_repeat() {
    const EVENTS: usize = 400;
    let (broker, clients) = recording(quiet().client_buffer_events(100_000));
    let addr = start(&broker).await;
    let mut responses = Vec::new();
    for _ in 0..8 {
        let mut response = RawResponse::get(addr, "/e?a", &[]).await;
        response.read_until(b":\n\n", Duration::from_secs(2)).await;
        responses.push(response);
    }
    // Rounds: a quiet spell (the sockets park and leave the burst window),
    // a burst of events (the first claimed for the writer), and direct sends
    // at once, waking the connections while the writer holds or writes
    // their frames.
    let publisher = tokio::spawn({
        let (a, clients) = (broker.channel("a").unwrap(), clients.clone());
        async move {
            let clients = clients.lock().unwrap().clone();
            for round in 0..EVENTS / 4 {
                tokio::time::sleep(Duration::from_millis(8)).await;
                for n in round * 4..round * 4 + 4 {
                    a.broadcast_data(format!("{n}")).unwrap();
                    if n % 4 == 1 {
                        for client in &clients {
                            client.send_data(format!("direct #{n}")).unwrap();
                        }
                    }
                }
            }
        }
    });
    publisher.await.unwrap();
    let last = format!("data: {}\n\n", EVENTS - 1);
    for (i, response) in responses.iter_mut().enumerate() {
        let body = response
            .read_until(last.as_bytes(), Duration::from_secs(10))
            .await;
        let mut next = 0;
        let mut last_k = None;
        for line in data_lines(&body) {
            if let Some(k) = line.strip_prefix("direct #") {
                let k: usize = k.parse().unwrap();
                assert!(last_k < Some(k), "client {i}: direct sends out of order");
                last_k = Some(k);
            } else {
                assert_eq!(line, next.to_string(), "client {i}");
                next += 1;
            }
        }
        assert_eq!(next, EVENTS, "client {i}");
    }
    assert!(broker.stats().direct > 0);
}
