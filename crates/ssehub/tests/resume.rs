//! Reconnection that loses nothing: replay history, exact Last-Event-ID
//! resume across channels while publishers keep publishing, and the gap
//! signal.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use proptest::prelude::*;
use ssehub::broker::{
    Broker, BrokerConfig, GAP_EVENT, GapPolicy, GapReplay, HistoryConfig, HistoryEntry,
    HistoryStore, MemoryHistory, RESUME_HEADER,
};
use ssehub::parse::{Item, Message, Parser};
use ssehub::{Event, ResponseBody, SseBody};
use tokio::time::timeout;

fn config() -> BrokerConfig {
    BrokerConfig::default().retry(None).keep_alive(None)
}

/// Connects like a browser would, with an optional `Last-Event-ID`,
/// subscribing to `channels` in the setup.
fn reconnect(
    broker: &Broker,
    last_event_id: Option<&str>,
    channels: &[&str],
) -> (http::HeaderMap, SseBody) {
    let mut request = http::Request::get("/events");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let (parts, ()) = request.body(()).unwrap().into_parts();
    let response = broker.handle_request(&parts, |client| {
        for channel in channels {
            client.subscribe(channel).unwrap();
        }
    });
    let headers = response.headers().clone();
    let ResponseBody::Stream(body) = response.into_body() else {
        panic!("not a stream")
    };
    (headers, body)
}

/// Messages readable from `body` within `wait`.
async fn read(body: &mut SseBody, parser: &mut Parser, wait: Duration) -> Vec<Message> {
    let mut messages = Vec::new();
    while let Ok(Some(frame)) = timeout(wait, body.frame()).await {
        let bytes: Bytes = frame.unwrap().into_data().unwrap();
        for item in parser.parse(&bytes) {
            if let Item::Message(m) = item {
                messages.push(m);
            }
        }
    }
    messages
}

#[tokio::test]
async fn resume_replays_exactly_what_was_missed_on_every_channel() {
    let broker = Broker::with_config(config());
    let (_, mut body) = reconnect(&broker, None, &["a", "b"]);
    let mut parser = Parser::new();
    broker.channel("a").unwrap().broadcast_data("a1").unwrap();
    broker.channel("b").unwrap().broadcast_data("b1").unwrap();
    let seen = read(&mut body, &mut parser, Duration::from_millis(50)).await;
    assert_eq!(
        seen.iter().map(|m| m.data.as_str()).collect::<Vec<_>>(),
        ["a1", "b1"]
    );
    let last = seen.last().unwrap().last_event_id.clone();
    drop(body);
    // Missed while away: on both channels, on one it is not in, and a broadcast.
    broker.channel("a").unwrap().broadcast_data("a2").unwrap();
    broker.channel("c").unwrap().broadcast_data("c1").unwrap();
    broker.broadcast_data("all1").unwrap();
    broker.channel("b").unwrap().broadcast_data("b2").unwrap();
    let (headers, mut body) = reconnect(&broker, Some(&last), &["a", "b"]);
    assert_eq!(headers[RESUME_HEADER], "complete");
    broker.channel("a").unwrap().broadcast_data("a3").unwrap();
    let mut parser = Parser::new();
    let seen = read(&mut body, &mut parser, Duration::from_millis(50)).await;
    let data: Vec<_> = seen.iter().map(|m| m.data.as_str()).collect();
    assert_eq!(data, ["a2", "all1", "b2", "a3"]);
    // Every resumable event carries its own id, the first after the resume too.
    assert!(seen.iter().all(|m| !m.last_event_id.is_empty()));
    let ids: Vec<_> = seen.iter().map(|m| m.last_event_id.clone()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique);
}

/// The heart of the guarantee: clients dropped at arbitrary moments while
/// publishers keep publishing on several channels get, over all their
/// connections, exactly what was published on their channels, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_drops_under_load_lose_nothing_and_repeat_nothing() {
    const EVENTS: usize = 600;
    let broker =
        Broker::with_config(config().history(HistoryConfig::default().max_events(EVENTS * 2)));
    let channels = ["x", "y", "z"];
    let publisher = {
        let broker = broker.clone();
        tokio::spawn(async move {
            for n in 0..EVENTS {
                let channel = ["x", "y", "z", "w"][n % 4];
                broker
                    .channel(channel)
                    .unwrap()
                    .broadcast_data(format!("{channel}{n}"))
                    .unwrap();
                if n % 7 == 0 {
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
            }
            broker.broadcast_event("end", "").unwrap();
        })
    };
    let mut clients = Vec::new();
    for seed in 0..4u64 {
        let broker = broker.clone();
        clients.push(tokio::spawn(async move {
            let mut received = Vec::new();
            // The publisher may have started already: begin with everything
            // retained, then resume after the last id seen.
            let mut last = Some(ssehub::broker::EARLIEST.to_owned());
            let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut connections = 0;
            'outer: loop {
                connections += 1;
                let (headers, mut body) = reconnect(&broker, last.as_deref(), &channels);
                assert_eq!(headers[RESUME_HEADER], "complete");
                let mut parser = Parser::new();
                // Read a random number of chunks, then drop the connection.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let chunks = 1 + rng % 6;
                for _ in 0..chunks {
                    let Ok(Some(frame)) = timeout(Duration::from_secs(5), body.frame()).await
                    else {
                        panic!("stalled");
                    };
                    for item in parser.parse(&frame.unwrap().into_data().unwrap()) {
                        if let Item::Message(m) = item {
                            if m.event == "end" {
                                break 'outer;
                            }
                            last = Some(m.last_event_id.clone());
                            received.push(m.data);
                        }
                    }
                }
            }
            (received, connections)
        }));
    }
    publisher.await.unwrap();
    let expected: Vec<String> = (0..EVENTS)
        .filter(|n| n % 4 != 3)
        .map(|n| format!("{}{n}", ["x", "y", "z", "w"][n % 4]))
        .collect();
    for client in clients {
        let (received, connections) = timeout(Duration::from_secs(20), client)
            .await
            .unwrap()
            .unwrap();
        assert!(connections > 3, "only {connections} connections");
        assert_eq!(received, expected);
    }
}

#[tokio::test]
async fn evicted_history_is_a_gap_signalled_by_header_and_event() {
    for (replay, expected) in [
        (GapReplay::Nothing, vec![]),
        (GapReplay::AllRetained, vec!["6", "7", "8", "9"]),
    ] {
        let broker = Broker::with_config(
            config()
                .history(HistoryConfig::default().max_events(4))
                .gap(GapPolicy::default().replay(replay)),
        );
        let (_, mut body) = reconnect(&broker, None, &["news"]);
        let news = broker.channel("news").unwrap();
        news.broadcast_data("0").unwrap();
        let mut parser = Parser::new();
        let first = read(&mut body, &mut parser, Duration::from_millis(30)).await;
        drop(body);
        for n in 1..10 {
            news.broadcast_data(n.to_string()).unwrap();
        }
        let (headers, mut body) = reconnect(&broker, Some(&first[0].last_event_id), &["news"]);
        assert_eq!(headers[RESUME_HEADER], "gap");
        let mut parser = Parser::new();
        let seen = read(&mut body, &mut parser, Duration::from_millis(30)).await;
        assert_eq!(seen[0].event, GAP_EVENT);
        let signal: serde_json::Value = serde_json::from_str(&seen[0].data).unwrap();
        assert_eq!(signal["reason"], "history-lost");
        assert_eq!(signal["last_event_id"], first[0].last_event_id.as_str());
        let data: Vec<_> = seen[1..].iter().map(|m| m.data.as_str()).collect();
        assert_eq!(data, expected, "{replay:?}");
    }
}

#[tokio::test]
async fn an_id_from_before_a_restart_is_unknown() {
    let old = Broker::with_config(config());
    let (_, mut body) = reconnect(&old, None, &["news"]);
    old.channel("news")
        .unwrap()
        .broadcast_data("before")
        .unwrap();
    let seen = read(&mut body, &mut Parser::new(), Duration::from_millis(30)).await;
    let restarted = Broker::with_config(config());
    restarted
        .channel("news")
        .unwrap()
        .broadcast_data("after restart")
        .unwrap();
    let (headers, mut body) = reconnect(&restarted, Some(&seen[0].last_event_id), &["news"]);
    assert_eq!(headers[RESUME_HEADER], "gap");
    let seen = read(&mut body, &mut Parser::new(), Duration::from_millis(30)).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].event, GAP_EVENT);
    assert!(seen[0].data.contains("unknown-id"));
}

#[tokio::test]
async fn earliest_caller_ids_and_transient_events() {
    let broker = Broker::with_config(config());
    let news = broker.channel("news").unwrap();
    news.broadcast(Event::new("one").with_id("n1")).unwrap();
    news.broadcast(Event::with_type("stats", "tick").with_replay(false))
        .unwrap();
    news.broadcast(Event::new("two").with_id("n2")).unwrap();
    news.broadcast_data("three").unwrap();

    // `earliest` replays all retained history, transient events excluded.
    let (headers, mut body) = reconnect(&broker, Some("earliest"), &["news"]);
    assert_eq!(headers[RESUME_HEADER], "complete");
    let seen = read(&mut body, &mut Parser::new(), Duration::from_millis(30)).await;
    let data: Vec<_> = seen.iter().map(|m| m.data.as_str()).collect();
    assert_eq!(data, ["one", "two", "three"]);

    // A caller-supplied id is looked up, not scanned for.
    let (_, mut body) = reconnect(&broker, Some("n1"), &["news"]);
    let seen = read(&mut body, &mut Parser::new(), Duration::from_millis(30)).await;
    let data: Vec<_> = seen
        .iter()
        .map(|m| (m.data.as_str(), m.last_event_id.as_str()))
        .collect();
    assert_eq!(data[0], ("two", "n2"));
    assert_eq!(data[1].0, "three");
    assert!(!data[1].1.is_empty(), "generated id");

    // A transient event gets no generated id.
    let (_, mut body) = reconnect(&broker, None, &["news"]);
    news.broadcast(Event::new("tick").with_replay(false))
        .unwrap();
    let frame = timeout(Duration::from_secs(1), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let frame = frame.into_data().unwrap();
    assert!(
        !String::from_utf8_lossy(&frame).contains("id:"),
        "{frame:?}"
    );
}

#[tokio::test]
async fn subscriptions_after_the_connection_started_are_live_only() {
    let broker = Broker::with_config(config());
    broker
        .channel("late")
        .unwrap()
        .broadcast_data("old")
        .unwrap();
    let (client, mut body) = broker.connect(Some("earliest".into())).unwrap();
    let _ = read(&mut body, &mut Parser::new(), Duration::from_millis(20)).await;
    client.subscribe("late").unwrap();
    broker
        .channel("late")
        .unwrap()
        .broadcast_data("new")
        .unwrap();
    let seen = read(&mut body, &mut Parser::new(), Duration::from_millis(30)).await;
    let data: Vec<_> = seen.iter().map(|m| m.data.as_str()).collect();
    assert_eq!(data, ["new"]);
}

/// A simple model of the history: every recorded entry per channel, cut by
/// the event and byte bounds.
#[derive(Default)]
struct Model {
    channels: HashMap<String, Vec<(u64, usize)>>,
    evicted: HashMap<String, u64>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `MemoryHistory` agrees with the model on every replay and gap.
    #[test]
    fn memory_history_matches_a_model(
        ops in proptest::collection::vec((0usize..3, 1usize..40, any::<bool>(), 0u64..60), 1..120),
        max_events in 1usize..12,
        max_bytes in 20usize..300,
    ) {
        let history = MemoryHistory::new(
            HistoryConfig::default().max_events(max_events).max_bytes(max_bytes).max_age(None),
        );
        let mut model = Model::default();
        let mut position = 0;
        for (channel, len, is_replay, after) in ops {
            let name = format!("c{channel}");
            if !is_replay {
                position += 1;
                history.record(&name, HistoryEntry {
                    position,
                    id: Some(format!("id{position}").into()),
                    frame: Bytes::from(vec![b'x'; len]),
                    published_at: tokio::time::Instant::now(),
                });
                let entries = model.channels.entry(name.clone()).or_default();
                entries.push((position, len));
                while entries.len() > max_events || entries.iter().map(|e| e.1).sum::<usize>() > max_bytes {
                    let (evicted, _) = entries.remove(0);
                    model.evicted.insert(name.clone(), evicted);
                }
            } else {
                let entries = model.channels.get(&name).cloned().unwrap_or_default();
                let got = history.replay(&name, Some(after), position);
                let lost = model.evicted.get(&name).is_some_and(|&e| e > after);
                if lost {
                    prop_assert!(got.is_err());
                } else {
                    let got: Vec<u64> = got.unwrap().iter().map(|e| e.position).collect();
                    let want: Vec<u64> = entries.iter().map(|e| e.0).filter(|&p| p > after).collect();
                    prop_assert_eq!(got, want);
                }
                let all: Vec<u64> = history.replay(&name, None, position).unwrap().iter().map(|e| e.position).collect();
                prop_assert_eq!(all, entries.iter().map(|e| e.0).collect::<Vec<_>>());
                for (p, _) in &entries {
                    let id = format!("id{p}");
                    prop_assert_eq!(history.resolve(&id), Some(*p));
                }
            }
        }
    }
}

/// The broker-wide age bound evicts old events; resuming before them is a gap.
#[tokio::test(start_paused = true)]
async fn history_older_than_max_age_is_evicted() {
    let broker = Broker::with_config(
        config().history(HistoryConfig::default().max_age(Some(Duration::from_secs(60)))),
    );
    let (_, mut body) = reconnect(&broker, None, &["news"]);
    let news = broker.channel("news").unwrap();
    news.broadcast_data("old").unwrap();
    let seen = read(&mut body, &mut Parser::new(), Duration::from_millis(10)).await;
    drop(body);
    news.broadcast_data("missed but aged out").unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;
    news.broadcast_data("fresh").unwrap();
    let (headers, mut body) = reconnect(&broker, Some(&seen[0].last_event_id), &["news"]);
    assert_eq!(headers[RESUME_HEADER], "gap");
    let seen = read(&mut body, &mut Parser::new(), Duration::from_millis(10)).await;
    assert_eq!(seen[0].event, GAP_EVENT);
    assert!(seen[0].data.contains("history-lost"));
    // `earliest` gets only what is young enough.
    let (_, mut body) = reconnect(&broker, Some("earliest"), &["news"]);
    let seen = read(&mut body, &mut Parser::new(), Duration::from_millis(10)).await;
    let data: Vec<_> = seen.iter().map(|m| m.data.as_str()).collect();
    assert_eq!(data, ["fresh"]);
}
