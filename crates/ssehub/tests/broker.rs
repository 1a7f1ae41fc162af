//! The broker through its Rust API: fan-out, channels, overflow policies,
//! lifecycle, and a concurrency stress test.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use ssehub::broker::{Broker, BrokerConfig, OverflowPolicy};
use ssehub::parse::{Item, Parser};
use ssehub::{BrokerError, Event, SendError, SseBody};
use tokio::time::timeout;

/// The next chunk of `body`, or `None` if it ended; panics after 2 s.
async fn next_chunk(body: &mut SseBody) -> Option<Bytes> {
    let frame = timeout(Duration::from_secs(2), body.frame())
        .await
        .expect("no chunk within 2 s")?;
    Some(frame.unwrap().into_data().unwrap())
}

/// Whether a chunk is ready right now.
async fn chunk_now(body: &mut SseBody) -> Option<Option<Bytes>> {
    match timeout(Duration::from_millis(20), body.frame()).await {
        Ok(frame) => Some(frame.map(|f| f.unwrap().into_data().unwrap())),
        Err(_) => None,
    }
}

/// No `retry:`, no keep-alive and no generated ids, so frames can be
/// compared byte for byte.
fn quiet() -> BrokerConfig {
    BrokerConfig::default()
        .retry(None)
        .keep_alive(None)
        .generate_ids(false)
}

/// Data of the messages in `bytes`.
fn datas(bytes: &[u8]) -> Vec<String> {
    Parser::new()
        .parse(bytes)
        .into_iter()
        .filter_map(|item| match item {
            Item::Message(m) => Some(m.data),
            _ => None,
        })
        .collect()
}

/// Reads the preamble every stream starts with.
async fn open(broker: &Broker) -> (ssehub::broker::Client, SseBody) {
    let (client, mut body) = broker.connect(None).unwrap();
    assert_eq!(next_chunk(&mut body).await.unwrap(), ":\n\n");
    (client, body)
}

#[tokio::test]
async fn broadcast_is_encoded_once_and_shared_by_every_client() {
    let broker = Broker::with_config(quiet());
    let (_a, mut body_a) = open(&broker).await;
    let (_b, mut body_b) = open(&broker).await;
    broker.broadcast_data("hello").unwrap();
    let chunk_a = next_chunk(&mut body_a).await.unwrap();
    let chunk_b = next_chunk(&mut body_b).await.unwrap();
    assert_eq!(chunk_a, "data: hello\n\n");
    // One encoding: both connections hold the very same bytes.
    assert_eq!(chunk_a.as_ptr(), chunk_b.as_ptr());
    assert_eq!(broker.stats().published, 1);
    assert_eq!(broker.stats().delivered, 2);
}

#[tokio::test]
async fn channels_reach_only_their_subscribers_in_order_and_batched() {
    let broker = Broker::with_config(quiet());
    let (alice, mut body_alice) = open(&broker).await;
    let (_bob, mut body_bob) = open(&broker).await;
    alice.subscribe("user:alice").unwrap();
    let channel = broker.find_channel("user:alice").unwrap();
    for i in 0..5 {
        channel.broadcast_data(i.to_string()).unwrap();
    }
    // Five ready frames go out as one chunk.
    let chunk = next_chunk(&mut body_alice).await.unwrap();
    assert_eq!(datas(&chunk), ["0", "1", "2", "3", "4"]);
    assert!(
        chunk_now(&mut body_bob).await.is_none(),
        "bob got alice's events"
    );
    assert_eq!(channel.size(), 1);
    assert_eq!(broker.channel_names(), ["user:alice"]);
}

#[tokio::test]
async fn one_user_with_several_tabs_gets_every_message_on_each() {
    let broker = Broker::with_config(quiet());
    let mut tabs = Vec::new();
    for _ in 0..3 {
        let (client, body) = open(&broker).await;
        client.set("user_id", "alice");
        client.subscribe("user:alice").unwrap();
        tabs.push((client, body));
    }
    broker
        .channel("user:alice")
        .unwrap()
        .broadcast_json("notification", &serde_json::json!({"title": "hi"}))
        .unwrap();
    for (client, body) in &mut tabs {
        assert_eq!(client.get_string("user_id").as_deref(), Some("alice"));
        let chunk = next_chunk(body).await.unwrap();
        assert_eq!(chunk, "event: notification\ndata: {\"title\":\"hi\"}\n\n");
    }
}

#[tokio::test]
async fn subscribing_while_the_connection_waits_wakes_it() {
    let broker = Broker::with_config(quiet());
    let (client, mut body) = open(&broker).await;
    // The body is now parked waiting on the broadcast channel only.
    assert!(chunk_now(&mut body).await.is_none());
    let reader = tokio::spawn(async move { next_chunk(&mut body).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    client.subscribe("late").unwrap();
    broker
        .channel("late")
        .unwrap()
        .broadcast_data("found you")
        .unwrap();
    assert_eq!(reader.await.unwrap().unwrap(), "data: found you\n\n");
}

#[tokio::test]
async fn disconnect_policy_ends_a_client_that_falls_behind() {
    let broker = Broker::with_config(quiet().client_buffer_events(4));
    let (client, mut body) = open(&broker).await;
    for i in 0..5 {
        broker.broadcast_data(i.to_string()).unwrap();
    }
    assert_eq!(next_chunk(&mut body).await, None, "response must end");
    assert!(client.is_closed());
    let stats = broker.stats();
    assert_eq!(stats.slow_disconnects, 1);
    assert_eq!(stats.clients, 0);
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest_events_and_counts_the_rest() {
    let broker = Broker::with_config(
        quiet()
            .client_buffer_events(4)
            .overflow(OverflowPolicy::DropOldest),
    );
    let (_client, mut body) = open(&broker).await;
    for i in 0..10 {
        broker.broadcast_data(i.to_string()).unwrap();
    }
    let chunk = next_chunk(&mut body).await.unwrap();
    assert_eq!(datas(&chunk), ["6", "7", "8", "9"]);
    assert_eq!(broker.stats().dropped, 6);
    broker.broadcast_data("10").unwrap();
    assert_eq!(datas(&next_chunk(&mut body).await.unwrap()), ["10"]);
}

#[tokio::test]
async fn drop_newest_keeps_the_oldest_events_and_counts_the_rest() {
    let broker = Broker::with_config(
        quiet()
            .client_buffer_events(4)
            .overflow(OverflowPolicy::DropNewest),
    );
    let (_client, mut body) = open(&broker).await;
    for i in 0..6 {
        broker.broadcast_data(i.to_string()).unwrap();
    }
    let chunk = next_chunk(&mut body).await.unwrap();
    assert_eq!(datas(&chunk), ["0", "1", "2", "3"]);
    assert_eq!(broker.stats().dropped, 2);
}

#[tokio::test]
async fn byte_bound_applies_too() {
    let broker = Broker::with_config(quiet().client_buffer_bytes(100));
    let (_client, mut body) = open(&broker).await;
    broker.broadcast_data("x".repeat(60)).unwrap();
    broker.broadcast_data("y".repeat(60)).unwrap();
    assert_eq!(next_chunk(&mut body).await, None);
    assert_eq!(broker.stats().slow_disconnects, 1);
}

#[tokio::test]
async fn direct_sends_follow_the_policy_too() {
    let broker = Broker::with_config(quiet().client_buffer_events(2));
    let (client, _body) = open(&broker).await;
    client.send_data("1").unwrap();
    client.send_data("2").unwrap();
    assert_eq!(client.send_data("3"), Err(SendError::Closed));
    assert_eq!(broker.stats().slow_disconnects, 1);
    assert_eq!(broker.clients(), 0);
}

#[tokio::test]
async fn hooks_run_in_order_and_disconnect_runs_exactly_once() {
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let config = {
        let (c, d) = (log.clone(), log.clone());
        quiet()
            .on_connect(move |client| {
                // No event can have reached the client yet.
                c.lock().unwrap().push(format!("connect {}", client.id()));
                client.send_data("welcome").unwrap();
            })
            .on_disconnect(move |client| {
                assert!(client.channels().is_empty(), "left every channel first");
                d.lock()
                    .unwrap()
                    .push(format!("disconnect {}", client.id()));
            })
    };
    let broker = Broker::with_config(config);
    let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
    let response = broker.handle_request(&parts, |client| {
        log.lock().unwrap().push(format!("setup {}", client.id()));
        client.subscribe("room").unwrap();
    });
    let ssehub::ResponseBody::Stream(mut body) = response.into_body() else {
        panic!("no stream")
    };
    assert_eq!(
        next_chunk(&mut body).await.unwrap(),
        ":\n\ndata: welcome\n\n"
    );
    let client = broker.client(broker_client_id(&broker)).unwrap();
    client.close();
    client.close();
    assert_eq!(next_chunk(&mut body).await, None, "close ends the response");
    drop(body);
    let log = log.lock().unwrap().clone();
    assert_eq!(log, ["connect 1", "setup 1", "disconnect 1"]);
    assert_eq!(broker.find_channel("room").unwrap().size(), 0);
}

fn broker_client_id(broker: &Broker) -> ssehub::broker::ClientId {
    let mut id = None;
    broker.for_each(|c| id = Some(c.id()));
    id.unwrap()
}

#[tokio::test]
async fn closing_the_broker_ends_every_response_after_a_farewell() {
    let broker = Broker::with_config(quiet());
    let (a, mut body_a) = open(&broker).await;
    let (_b, mut body_b) = open(&broker).await;
    a.subscribe("room").unwrap();
    let room = broker.find_channel("room").unwrap();
    broker
        .close_with(Event::with_type("bye", "restarting"))
        .unwrap();
    for body in [&mut body_a, &mut body_b] {
        assert_eq!(
            next_chunk(body).await.unwrap(),
            "event: bye\ndata: restarting\n\n"
        );
        assert_eq!(next_chunk(body).await, None);
    }
    assert_eq!(broker.broadcast_data("late"), Err(BrokerError::Closed));
    assert_eq!(broker.channel("x").unwrap_err(), BrokerError::Closed);
    assert_eq!(
        room.broadcast_data("late"),
        Err(BrokerError::ChannelNotFound)
    );
    assert!(broker.connect(None).is_err());
    assert_eq!(
        broker.close_with(Event::new("again")),
        Err(BrokerError::Closed)
    );
    let stats = broker.stats();
    assert_eq!((stats.clients, stats.channels), (0, 0));
    // A request to a closed broker gets a stream that ends at once.
    let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
    let response = broker.handle_request(&parts, |_| unreachable!("no setup on a closed broker"));
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn deleting_a_channel_removes_it_from_every_client() {
    let broker = Broker::with_config(quiet());
    let (client, _body) = open(&broker).await;
    client.subscribe("job:1").unwrap();
    broker.delete_channel("job:1").unwrap();
    assert!(!client.in_channel("job:1"));
    assert_eq!(
        broker.delete_channel("job:1"),
        Err(BrokerError::ChannelNotFound)
    );
    assert_eq!(
        client.unsubscribe("job:1"),
        Err(BrokerError::ChannelNotFound)
    );
    // Subscribing again makes a fresh channel.
    client.subscribe("job:1").unwrap();
    assert_eq!(broker.find_channel("job:1").unwrap().size(), 1);
}

#[tokio::test]
async fn disconnected_clients_leave_nothing_behind() {
    let broker = Broker::with_config(quiet());
    let mut weak = Vec::new();
    for i in 0..50 {
        let (client, body) = broker.connect(None).unwrap();
        client.subscribe(&format!("c{}", i % 5)).unwrap();
        client.set("payload", vec![0u8; 1024]);
        weak.push(Arc::downgrade(&client.get::<Vec<u8>>("payload").unwrap()));
        drop(body);
    }
    assert_eq!(broker.clients(), 0);
    for name in broker.channel_names() {
        assert_eq!(broker.find_channel(&name).unwrap().size(), 0);
    }
    assert!(
        weak.iter().all(|w| w.upgrade().is_none()),
        "client memory not freed"
    );
    assert_eq!(broker.reclaim_empty_channels(), 5);
    assert_eq!(broker.stats().channels, 0);
}

/// Concurrent publishers, subscribes, unsubscribes, channel deletions and
/// disconnects over hundreds of clients: no deadlock, order per channel,
/// nothing twice, and everything released at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_concurrent_publish_subscribe_delete_disconnect() {
    const CLIENTS: usize = 300;
    const CHANNELS: usize = 8;
    const EVENTS: usize = 400;
    let broker = Broker::with_config(quiet().client_buffer_events(EVENTS * 2));
    let disconnects = Arc::new(AtomicUsize::new(0));
    let run = async {
        let mut readers = Vec::new();
        for i in 0..CLIENTS {
            let (client, mut body) = broker.connect(None).unwrap();
            let broker = broker.clone();
            let disconnects = disconnects.clone();
            readers.push(tokio::spawn(async move {
                let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
                let mut parser = Parser::new();
                let mut subscribed = Vec::new();
                for step in 0..40usize {
                    // Churn: subscribe, unsubscribe, sometimes leave early.
                    let name = format!("ch{}", (i + step) % CHANNELS);
                    if step % 3 == 0 {
                        if client.subscribe(&name).is_ok() {
                            subscribed.push(name);
                        }
                    } else if step % 7 == 0 {
                        if let Some(name) = subscribed.pop() {
                            let _ = client.unsubscribe(&name);
                        }
                    }
                    if let Ok(Some(Ok(frame))) =
                        timeout(Duration::from_millis(2), body.frame()).await
                    {
                        for item in parser.parse(&frame.into_data().unwrap()) {
                            if let Item::Message(m) = item {
                                let (ch, n) = m.data.split_once(':').unwrap();
                                seen.entry(ch.to_owned())
                                    .or_default()
                                    .push(n.parse().unwrap());
                            }
                        }
                    }
                    if i % 10 == 0 && step == 20 {
                        break;
                    }
                }
                drop(body);
                disconnects.fetch_add(1, Ordering::SeqCst);
                drop(broker);
                seen
            }));
        }
        let publishers: Vec<_> = (0..CHANNELS)
            .map(|c| {
                let broker = broker.clone();
                tokio::spawn(async move {
                    let name = format!("ch{c}");
                    for n in 0..EVENTS {
                        if let Ok(channel) = broker.channel(&name) {
                            let _ = channel.broadcast_data(format!("{name}:{n}"));
                        }
                        if n % 50 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        let deleter = {
            let broker = broker.clone();
            tokio::spawn(async move {
                for round in 0..20 {
                    let _ = broker.delete_channel(&format!("ch{}", round % CHANNELS));
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        for p in publishers {
            p.await.unwrap();
        }
        deleter.await.unwrap();
        let mut all = Vec::new();
        for r in readers {
            all.push(r.await.unwrap());
        }
        all
    };
    let all = timeout(Duration::from_secs(30), run)
        .await
        .expect("deadlock: stress test did not finish");
    for seen in &all {
        for (channel, numbers) in seen {
            // Strictly increasing: in order, nothing twice (gaps are the
            // times the client was not subscribed).
            assert!(
                numbers.windows(2).all(|w| w[0] < w[1]),
                "{channel}: {numbers:?}"
            );
        }
    }
    assert_eq!(disconnects.load(Ordering::SeqCst), CLIENTS);
    assert_eq!(broker.clients(), 0);
    assert_eq!(broker.stats().clients, 0);
    for name in broker.channel_names() {
        assert_eq!(
            broker.find_channel(&name).unwrap().size(),
            0,
            "{name} keeps subscribers"
        );
    }
    broker.reclaim_empty_channels();
    assert_eq!(broker.stats().channels, 0);
}

#[tokio::test]
async fn publish_to_several_channels_reaches_each_client_once() {
    let broker = Broker::with_config(quiet().generate_ids(true));
    let (both, mut body_both) = open(&broker).await;
    let (only_b, mut body_b) = open(&broker).await;
    both.subscribe("a").unwrap();
    both.subscribe("b").unwrap();
    only_b.subscribe("b").unwrap();
    let channels = [broker.channel("a").unwrap(), broker.channel("b").unwrap()];
    let id = broker
        .publish_to(&channels, Event::new("once"))
        .unwrap()
        .unwrap();
    for body in [&mut body_both, &mut body_b] {
        let chunk = next_chunk(body).await.unwrap();
        assert_eq!(chunk, format!("id: {id}\ndata: once\n\n"));
    }
    assert!(chunk_now(&mut body_both).await.is_none(), "delivered twice");
    assert_eq!(broker.stats().delivered, 2);
}
