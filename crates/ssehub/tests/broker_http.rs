//! The broker served by axum over real TCP, read by an independent client
//! (reqwest + eventsource-stream): a stalled client does not hold up the
//! others and is disconnected by the write deadline.

mod common;

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use ssehub::axum::WriteTimeoutListener;
use ssehub::broker::{Broker, BrokerConfig};
use tokio::time::{Instant, timeout};

async fn serve(broker: &Broker, write_timeout: Duration) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/events",
        axum::routing::get(broker.handle_fn(|client, request| {
            if let Some(topic) = request.uri.query() {
                client.subscribe(topic).unwrap();
            }
        })),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(WriteTimeoutListener::new(listener, write_timeout), app)
            .await
            .unwrap();
    });
    addr
}

async fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_does_not_delay_the_others_and_is_disconnected() {
    const READERS: usize = 5;
    let broker = Broker::with_config(
        BrokerConfig::default()
            .keep_alive(Some(Duration::from_millis(200)))
            .client_buffer_bytes(64 << 20),
    );
    let addr = serve(&broker, Duration::from_millis(500)).await;

    // The stalled client: a tiny receive buffer, a request, and no reads.
    let stalled = common::stalled_get(addr, "/events?room").await;

    let http = reqwest::Client::new();
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let response = http
            .get(format!("http://{addr}/events?room"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        readers.push(tokio::spawn(async move {
            let mut events = response.bytes_stream().eventsource();
            let mut next = 0usize;
            loop {
                let event = timeout(Duration::from_secs(5), events.next())
                    .await
                    .expect("a reader stalled")
                    .expect("stream ended early")
                    .unwrap();
                if event.event == "end" {
                    return next;
                }
                assert_eq!(event.id, next.to_string(), "in order, none lost");
                next += 1;
            }
        }));
    }
    wait_for("every client", Duration::from_secs(5), || {
        broker.clients() == READERS + 1
    })
    .await;

    // Publish 16 KiB events at about 5 MB/s until the stalled client's
    // socket buffers (up to 4 MiB here) and the server's fill up and its
    // write deadline passes.
    let room = broker.channel("room").unwrap();
    let payload = "x".repeat(16 * 1024);
    let start = Instant::now();
    let mut published = 0usize;
    while broker.clients() > READERS {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "stalled client never disconnected"
        );
        for _ in 0..8 {
            room.broadcast(ssehub::Event::new(payload.clone()).with_id(published.to_string()))
                .unwrap();
            published += 1;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    room.broadcast(ssehub::Event::with_type("end", "")).unwrap();
    for reader in readers {
        // Every reader got every event, in order, while the other client stalled.
        assert_eq!(reader.await.unwrap(), published);
    }
    assert_eq!(
        broker.stats().slow_disconnects,
        0,
        "the deadline, not the buffer, ended it"
    );
    drop(stalled);
}

#[tokio::test]
async fn broadcast_reaches_an_independent_client_and_channels_stay_separate() {
    let broker = Broker::new();
    let addr = serve(&broker, Duration::from_secs(5)).await;
    let http = reqwest::Client::new();
    let mut news = http
        .get(format!("http://{addr}/events?news"))
        .send()
        .await
        .unwrap()
        .bytes_stream()
        .eventsource();
    let mut sport = http
        .get(format!("http://{addr}/events?sport"))
        .send()
        .await
        .unwrap()
        .bytes_stream()
        .eventsource();
    wait_for("both clients", Duration::from_secs(2), || {
        broker.clients() == 2
    })
    .await;
    broker
        .channel("news")
        .unwrap()
        .broadcast(ssehub::Event::with_type("article", "line 1\nline 2").with_id("n1"))
        .unwrap();
    broker
        .broadcast_event("announcement", "to everyone")
        .unwrap();
    let first = timeout(Duration::from_secs(2), news.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.event.as_str(), first.data.as_str(), first.id.as_str()),
        ("article", "line 1\nline 2", "n1")
    );
    let second = timeout(Duration::from_secs(2), news.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.event, "announcement");
    let only = timeout(Duration::from_secs(2), sport.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (only.event.as_str(), only.data.as_str()),
        ("announcement", "to everyone")
    );
}
