//! Real reconnects with our own reconnecting client: the server drops
//! connections at random moments while publishers keep publishing on
//! several channels; each client ends up with exactly what was published on
//! its channels, once each, in order.
#![cfg(all(feature = "eventsource", feature = "axum"))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use ssehub::broker::{Broker, BrokerConfig, HistoryConfig};
use ssehub::eventsource::{ClientEvent, EventSource};
use tokio::time::{Instant, timeout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_resumes_exactly_through_random_server_drops() {
    let broker = Broker::with_config(
        BrokerConfig::default()
            .retry(Some(Duration::from_millis(50)))
            .history(HistoryConfig::default().max_events(10_000)),
    );
    let app = axum::Router::new().route(
        "/events",
        axum::routing::get(broker.handle_fn(|client, request| {
            for topic in request.uri.query().unwrap_or_default().split('&') {
                if let Some(name) = topic.strip_prefix("topic=") {
                    client.subscribe(name).unwrap();
                }
            }
        })),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Publisher: a steady stream over three channels, recorded per channel.
    let published: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let publisher = {
        let (broker, published) = (broker.clone(), published.clone());
        tokio::spawn(async move {
            for n in 0..900 {
                let channel = ["a", "b", "c"][n % 3];
                let data = format!("{channel}:{n}");
                broker
                    .channel(channel)
                    .unwrap()
                    .broadcast_data(data.clone())
                    .unwrap();
                published.lock().unwrap().push((channel.to_owned(), data));
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    // Chaos: close a pseudo-random client every 40..160 ms.
    let chaos = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            let mut drops = 0;
            loop {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                tokio::time::sleep(Duration::from_millis(40 + seed % 120)).await;
                let mut clients = Vec::new();
                broker.for_each(|c| clients.push(c.clone()));
                if let Some(victim) = clients.get((seed as usize / 7) % clients.len().max(1)) {
                    victim.close();
                    drops += 1;
                }
                if drops > 1000 {
                    return;
                }
            }
        })
    };

    let topic_sets: [&[&str]; 3] = [&["a"], &["a", "b"], &["b", "c"]];
    let mut readers = Vec::new();
    for topics in topic_sets {
        let query: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
        let url = format!("http://{addr}/events?{}", query.join("&"));
        readers.push(tokio::spawn(async move {
            let mut source = EventSource::builder(url)
                .last_event_id("earliest")
                .build()
                .unwrap();
            let (mut received, mut opens) = (Vec::new(), 0);
            let deadline = Instant::now() + Duration::from_secs(30);
            while let Ok(Some(item)) = timeout(deadline - Instant::now(), source.next()).await {
                match item {
                    Ok(ClientEvent::Open) => opens += 1,
                    Ok(ClientEvent::Message(m)) => {
                        assert!(!m.last_event_id.is_empty(), "event without id: {m:?}");
                        if m.data == "done" {
                            break;
                        }
                        received.push(m.data);
                    }
                    Err(err) => assert!(!err.is_fatal(), "fatal: {err}"),
                }
            }
            (received, opens)
        }));
    }
    publisher.await.unwrap();
    chaos.abort();
    broker.broadcast_data("done").unwrap();
    let published = published.lock().unwrap().clone();
    for (reader, topics) in readers.into_iter().zip(topic_sets) {
        let (received, opens) = reader.await.unwrap();
        let expected: Vec<String> = published
            .iter()
            .filter(|(channel, _)| topics.contains(&channel.as_str()))
            .map(|(_, data)| data.clone())
            .collect();
        assert!(opens >= 4, "{topics:?}: only {opens} connections");
        assert_eq!(received.len(), expected.len(), "{topics:?}");
        assert_eq!(received, expected, "{topics:?}");
    }
}
