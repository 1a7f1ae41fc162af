//! Brokers on a journal: replicas that act as one.
//!
//! With a `MemoryJournal` shared by two brokers in this process, and with
//! two brokers on one stream of the shared Redis at 127.0.0.1:6379 (each
//! test on its own random key, deleted at the end; nothing else there is
//! touched). Every client of every broker must get every event of its
//! channels exactly once, all in the journal's order, and a client that
//! reconnects to the *other* broker must resume exactly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use ssehub::broker::{
    Broker, BrokerConfig, GAP_EVENT, GapPolicy, GapReplay, RESUME_HEADER, ResumeStatus,
};
use ssehub::journal::{Journal, JournalId, MemoryJournal, ReplayFrom, Retention};
use ssehub::parse::{Item, Message, Parser};
use ssehub::{BrokerError, Event, ResponseBody, SseBody};
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(15);

fn config(journal: Arc<dyn Journal>) -> BrokerConfig {
    BrokerConfig::default()
        .retry(None)
        .keep_alive(None)
        .client_buffer_events(10_000)
        .journal(journal)
}

fn memory(max_records: usize) -> Arc<MemoryJournal> {
    Arc::new(MemoryJournal::new(Retention {
        max_records,
        max_bytes: None,
        max_age: None,
    }))
}

/// Connects like a browser, with an optional `Last-Event-ID`, subscribing
/// to `channels` in the setup.
fn connect(
    broker: &Broker,
    last_event_id: Option<&str>,
    channels: &[&str],
) -> (http::HeaderMap, Stream) {
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
    (
        headers,
        Stream {
            body,
            parser: Parser::new(),
            seen: Vec::new(),
        },
    )
}

/// One client's response, parsed.
struct Stream {
    body: SseBody,
    parser: Parser,
    seen: Vec<Message>,
}

impl Stream {
    /// Reads until `n` messages in all were received (panics after PATIENCE).
    async fn until(&mut self, n: usize) -> &[Message] {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.seen.len() < n {
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{} of {n} messages after {PATIENCE:?}: {:?}",
                        self.seen.len(),
                        datas(&self.seen)
                    )
                })
                .expect("the stream ended")
                .unwrap();
            let bytes: Bytes = frame.into_data().unwrap();
            for item in self.parser.parse(&bytes) {
                if let Item::Message(m) = item {
                    self.seen.push(m);
                }
            }
        }
        &self.seen
    }

    /// Up to `max` more messages, or fewer if none comes for `quiet`.
    async fn some(&mut self, max: usize, quiet: Duration) -> &[Message] {
        let start = self.seen.len();
        while self.seen.len() < start + max {
            let Ok(Some(frame)) = timeout(quiet, self.body.frame()).await else {
                break;
            };
            let bytes: Bytes = frame.unwrap().into_data().unwrap();
            for item in self.parser.parse(&bytes) {
                if let Item::Message(m) = item {
                    self.seen.push(m);
                }
            }
        }
        &self.seen[start..]
    }

    /// Whatever else arrives within `wait`.
    async fn settle(&mut self, wait: Duration) -> &[Message] {
        while let Ok(Some(frame)) = timeout(wait, self.body.frame()).await {
            let bytes: Bytes = frame.unwrap().into_data().unwrap();
            for item in self.parser.parse(&bytes) {
                if let Item::Message(m) = item {
                    self.seen.push(m);
                }
            }
        }
        &self.seen
    }
}

fn datas(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.data.as_str()).collect()
}

/// What `channels` got of the journal, in its order: `(id, data)`.
async fn expected(journal: &dyn Journal, channels: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut from = ReplayFrom::Earliest;
    loop {
        let page = journal.replay(from, 1000).await.unwrap();
        for record in &page.records {
            // Our data are "<channels>:<n>" (single-letter channel names)
            // or "all:<n>" for broadcasts.
            // The record's header is binary; the frame follows it.
            let body = String::from_utf8_lossy(&record.body);
            let Some(at) = body.find("data: ") else {
                continue;
            };
            let data = body[at + 6..].lines().next().unwrap_or_default();
            let channel = data.split(':').next().unwrap();
            let mine = channel
                .char_indices()
                .any(|(i, _)| channels.contains(&&channel[i..=i]));
            if channel == "all" || mine {
                out.push((record.id.to_string(), data.to_owned()));
            }
        }
        match page.next_page() {
            Some(next) => from = next,
            None => return out,
        }
    }
}

fn pairs(messages: &[Message]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| (m.last_event_id.clone(), m.data.clone()))
        .collect()
}

/// Publishes `n` events from `broker`: on channel a, on b and c at once, on
/// c and to everyone in turn, mixing acknowledged and fire-and-forget
/// publishes.
async fn publish_mix(broker: Broker, tag: &'static str, n: usize) {
    for i in 0..n {
        let data = |channel: &str| format!("{channel}:{tag}{i}");
        match i % 4 {
            0 => {
                broker.publish(Event::new(data("all"))).await.unwrap();
            }
            1 => broker
                .channel("a")
                .unwrap()
                .broadcast_data(data("a"))
                .unwrap(),
            2 => {
                let both = [broker.channel("b").unwrap(), broker.channel("c").unwrap()];
                broker
                    .publish_on(&both, Event::new(data("bc")))
                    .await
                    .unwrap();
            }
            _ => broker
                .channel("c")
                .unwrap()
                .broadcast_data(data("c"))
                .unwrap(),
        }
        if i % 5 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

/// Two brokers on one journal, clients on both, both publishing at once:
/// every client gets its channels' events exactly once, in the journal's
/// order, with the journal's ids.
async fn two_brokers_one_order(a: Broker, b: Broker, journal: Arc<dyn Journal>) {
    const N: usize = 200;
    let subscriptions: [&[&str]; 3] = [&["a"], &["a", "b"], &["b", "c"]];
    let mut streams = Vec::new();
    for broker in [&a, &b] {
        for channels in subscriptions {
            streams.push((channels, connect(broker, None, channels).1));
        }
    }
    tokio::join!(
        publish_mix(a.clone(), "x", N),
        publish_mix(b.clone(), "y", N)
    );
    for broker in [&a, &b] {
        // A fire-and-forget append may still be on its way to the journal.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while broker.stats().journal_appended < N as u64 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for (channels, stream) in &mut streams {
        let want = expected(&*journal, channels).await;
        // A quarter of each broker's publishes for "all", a, "bc" and c.
        let has = |c| u8::from(channels.contains(&c)) as usize;
        let quarters = 1 + has("a") + (has("b") | has("c")) + has("c");
        assert_eq!(want.len(), 2 * (N / 4) * quarters);
        let got = stream.until(want.len()).await.to_vec();
        assert_eq!(pairs(&got), want, "{channels:?}");
        assert!(stream.settle(Duration::from_millis(100)).await.len() == want.len());
    }
    for broker in [&a, &b] {
        let stats = broker.stats();
        assert_eq!(stats.journal_appended, N as u64);
        assert_eq!(stats.journal_followed, 2 * N as u64);
        assert_eq!(stats.journal_append_errors, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_two_brokers_share_one_order() {
    let journal = memory(10_000);
    let a = Broker::with_config(config(journal.clone()));
    let b = Broker::with_config(config(journal.clone()));
    two_brokers_one_order(a, b, journal).await;
}

/// A publish on a memory journal is delivered before `broadcast` returns,
/// with the journal's id; records of channels nobody here is in are
/// skipped without a frame.
#[tokio::test]
async fn memory_journal_delivers_inline_with_journal_ids() {
    let journal = memory(100);
    let broker = Broker::with_config(config(journal.clone()));
    let (_, mut news) = connect(&broker, None, &["news"]);
    broker
        .channel("news")
        .unwrap()
        .broadcast(Event::new("one").with_id("caller-id"))
        .unwrap();
    broker
        .channel("empty")
        .unwrap()
        .broadcast_data("x")
        .unwrap();
    let transient = broker
        .channel("news")
        .unwrap()
        .publish(Event::new("tick").with_replay(false))
        .await
        .unwrap();
    assert_eq!(
        transient.id, None,
        "a transient event has no id on the wire"
    );
    assert!(transient.journal_id.is_some());
    let seen = news.until(2).await.to_vec();
    let stored = journal.replay(ReplayFrom::Earliest, 10).await.unwrap();
    assert_eq!(seen[0].data, "one");
    assert_eq!(seen[0].last_event_id, stored.records[0].id.to_string());
    assert_eq!(seen[1].data, "tick");
    let stats = broker.stats();
    assert_eq!(stats.journal_followed, 3);
    assert_eq!(stats.journal_skipped, 1);
    // A record that is not a broker's is skipped, not delivered.
    journal.append(Bytes::from("not a record")).await.unwrap();
    assert_eq!(broker.stats().journal_malformed, 1);
    assert_eq!(news.settle(Duration::from_millis(30)).await.len(), 2);
}

/// Resuming after an id in the window and after one only the journal
/// still holds: exact either way, on the other broker, header included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_resume_on_the_other_broker_is_exact() {
    let journal = memory(1000);
    let a = Broker::with_config(config(journal.clone()));
    // A window of 3 records: older ids are read from the journal.
    let b = Broker::with_config(config(journal.clone()).journal_window(3, 1 << 20));
    let (_, mut first) = connect(&a, None, &["a", "b"]);
    publish_mix(a.clone(), "x", 8).await;
    let seen = first.until(6).await.to_vec(); // all, a, bc, all, a, bc
    drop(first);
    let want_all = expected(&*journal, &["a", "b"]).await;
    for resume_after in [1, 5] {
        let last = &seen[resume_after].last_event_id;
        let (headers, mut again) = connect(&b, Some(last), &["a", "b"]);
        assert_eq!(headers[RESUME_HEADER], "complete");
        let want: Vec<_> = want_all[resume_after + 1..].to_vec();
        assert_eq!(pairs(again.until(want.len()).await), want);
        assert_eq!(
            again.settle(Duration::from_millis(30)).await.len(),
            want.len()
        );
    }
    // The window resumed one of them, the journal the other.
    assert_eq!(b.stats().journal_resume_reads, 1);
}

/// An id that is not a journal id, one of another journal, and one the
/// journal no longer holds are gaps, told by the header and the event.
#[tokio::test]
async fn memory_unknown_and_lost_ids_are_gaps() {
    let journal = memory(4);
    let other = memory(4);
    let foreign = other.append(Bytes::from("x")).await.unwrap().to_string();
    for replay in [GapReplay::Nothing, GapReplay::AllRetained] {
        let broker = Broker::with_config(
            config(journal.clone())
                .journal_window(2, 1 << 20)
                .gap(GapPolicy::default().replay(replay)),
        );
        let (_, mut live) = connect(&broker, None, &["news"]);
        let news = broker.channel("news").unwrap();
        for n in 0..10 {
            news.publish(Event::new(format!("news:{n}"))).await.unwrap();
        }
        let seen = live.until(10).await.to_vec();
        let retained = ["news:6", "news:7", "news:8", "news:9"];
        for (last, reason) in [
            ("not-a-journal-id", "unknown-id"),
            (foreign.as_str(), "unknown-id"),
            (seen[1].last_event_id.as_str(), "history-lost"),
        ] {
            let (headers, mut stream) = connect(&broker, Some(last), &["news"]);
            // A header once the status is known: at once for a memory journal.
            assert_eq!(headers[RESUME_HEADER], "gap", "{last}");
            let got = stream.settle(Duration::from_millis(30)).await;
            assert_eq!(got[0].event, GAP_EVENT);
            let signal: serde_json::Value = serde_json::from_str(&got[0].data).unwrap();
            assert_eq!(signal["reason"], reason, "{last}");
            assert_eq!(signal["last_event_id"], last);
            let replayed = datas(&got[1..]);
            match replay {
                GapReplay::AllRetained => assert_eq!(replayed, retained, "{last}"),
                _ => assert!(replayed.is_empty(), "{last}: {replayed:?}"),
            }
        }
        // `earliest` is all that is retained, and complete.
        let (headers, mut stream) = connect(&broker, Some("earliest"), &["news"]);
        assert_eq!(headers[RESUME_HEADER], "complete");
        assert_eq!(
            datas(stream.settle(Duration::from_millis(30)).await),
            retained
        );
    }
}

/// The resume's status can be awaited by a server that builds its own
/// response; without a journal the async API publishes at once.
#[tokio::test]
async fn resumed_status_and_acknowledged_publishes_without_a_journal() {
    let broker = Broker::new();
    let news = broker.channel("news").unwrap();
    let published = news.publish(Event::new("x")).await.unwrap();
    assert!(published.id.is_some());
    assert_eq!(published.journal_id, None);
    let (client, _body) = broker.connect(published.id.clone()).unwrap();
    client.subscribe("news").unwrap();
    assert_eq!(client.resumed().await, ResumeStatus::Complete);
    broker.close();
    assert_eq!(
        broker.publish(Event::new("late")).await,
        Err(BrokerError::Closed)
    );
}

/// Publishing to an unreachable journal: the acknowledged publish fails
/// with the journal's error; the synchronous one is counted and logged.
#[cfg(feature = "redis")]
#[tokio::test]
async fn an_unreachable_journal_is_an_error_and_counted() {
    use ssehub::journal::{JournalError, RedisJournal, RedisJournalConfig};
    let mut journal_config = RedisJournalConfig::new("redis://127.0.0.1:1", "nowhere");
    journal_config.timeout = Duration::from_millis(200);
    journal_config.reconnect_min = Duration::from_millis(20);
    journal_config.reconnect_max = Duration::from_millis(50);
    let journal = Arc::new(RedisJournal::new(journal_config).unwrap());
    let broker = Broker::with_config(config(journal));
    let err = broker.ready().await.unwrap_err();
    assert!(
        matches!(err, BrokerError::Journal(JournalError::Unavailable(_))),
        "{err:?}"
    );
    let err = broker.publish(Event::new("x")).await.unwrap_err();
    assert!(
        matches!(err, BrokerError::Journal(JournalError::Unavailable(_))),
        "{err:?}"
    );
    broker.broadcast_data("queued, then refused").unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while broker.stats().journal_append_errors == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            broker.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = broker.stats();
    assert_eq!(stats.journal_appended, 0);
    assert!(stats.journal_down >= 1, "{stats:?}");
}

#[cfg(feature = "redis")]
mod redis_journal {
    use std::sync::atomic::{AtomicU64, Ordering};

    use ssehub::journal::{RedisJournal, RedisJournalConfig};

    use super::*;

    const SHARED: &str = "redis://127.0.0.1:6379";

    /// A stream key on the shared Redis for one test, deleted with its
    /// metadata when dropped (even on panic).
    struct Key(String);

    impl Key {
        fn new() -> Self {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            Self(format!(
                "ssehub-test:broker:{}:{nanos}:{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ))
        }

        fn delete(&self) {
            if let Ok(mut conn) = redis::Client::open(SHARED).and_then(|c| c.get_connection()) {
                let _: Result<(), _> = redis::cmd("DEL")
                    .arg(&self.0)
                    .arg(format!("{{{}}}:meta", self.0))
                    .query(&mut conn);
            }
        }
    }

    impl Drop for Key {
        fn drop(&mut self) {
            self.delete();
        }
    }

    fn journal(key: &Key) -> Arc<RedisJournal> {
        let mut config = RedisJournalConfig::new(SHARED, &key.0);
        config.block = Duration::from_millis(300);
        config.retention.max_age = None;
        Arc::new(RedisJournal::new(config).unwrap())
    }

    /// A broker with its own Redis journal on `key`, following.
    async fn replica(key: &Key, window: usize) -> (Broker, Arc<RedisJournal>) {
        let journal = journal(key);
        let broker = Broker::with_config(config(journal.clone()).journal_window(window, 1 << 20));
        broker.ready().await.unwrap();
        (broker, journal)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broadcast_and_channels_reach_both_brokers_exactly_once_in_one_order() {
        let key = Key::new();
        let (a, journal) = replica(&key, 1024).await;
        let (b, _) = replica(&key, 1024).await;
        two_brokers_one_order(a, b, journal).await;
    }

    /// A client of broker A reconnects to broker B while both keep
    /// publishing: over its connections it gets exactly the journal's
    /// events of its channels. B's window is small, so most resumes read
    /// the journal and meet the live stream under load.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resume_on_the_other_broker_is_exact_under_concurrent_publishing() {
        const N: usize = 400;
        let key = Key::new();
        let (a, journal) = replica(&key, 8).await;
        let (b, _) = replica(&key, 8).await;
        let channels: &[&str] = &["a", "b"];
        // The first connection has no id to resume from, so it must be
        // following before anything is published: on this multi-threaded
        // runtime the publishers start the moment they are spawned. It is
        // kept until it has read something, since a connection without an
        // id would only see what comes after it.
        let mut open = Some(connect(&a, None, channels));
        let publishers = tokio::spawn({
            let (a, b) = (a.clone(), b.clone());
            async move {
                tokio::join!(publish_mix(a, "x", N), publish_mix(b, "y", N));
            }
        });
        // Hop between the brokers, reading a few events on each.
        let mut received: Vec<Message> = Vec::new();
        let mut last: Option<String> = None;
        let mut hops = 0;
        for _ in 0..200 {
            if publishers.is_finished() && hops >= 4 {
                break;
            }
            let broker = if hops % 2 == 0 { &a } else { &b };
            let (headers, mut stream) = open
                .take()
                .unwrap_or_else(|| connect(broker, last.as_deref(), channels));
            if last.is_some() {
                // Known at once from the window, or after reading the journal.
                assert_ne!(
                    headers.get(RESUME_HEADER).map(|v| v.to_str().unwrap()),
                    Some("gap")
                );
            }
            let got = stream.some(5, Duration::from_millis(300)).await;
            assert!(got.iter().all(|m| m.event != GAP_EVENT), "{:?}", datas(got));
            if let Some(m) = got.last() {
                last = Some(m.last_event_id.clone());
            }
            received.extend_from_slice(got);
            if last.is_none() {
                open = Some((headers, stream));
            } else {
                hops += 1;
            }
        }
        publishers.await.unwrap();
        // Fire-and-forget publishes may still be on their way to Redis.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while a.stats().journal_appended + b.stats().journal_appended < 2 * N as u64 {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", a.stats());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The rest, on B.
        let want = expected(&*journal, channels).await;
        let (_, mut stream) = connect(&b, last.as_deref(), channels);
        let rest = want.len() - received.len();
        received.extend_from_slice(stream.some(rest, Duration::from_secs(3)).await);
        let got = pairs(&received);
        if got != want {
            let at = got
                .iter()
                .zip(&want)
                .position(|(g, w)| g != w)
                .unwrap_or(got.len().min(want.len()));
            panic!(
                "received {} of {}: first difference at {at}: got {:?}, want {:?}",
                got.len(),
                want.len(),
                &got[at.saturating_sub(2)..(at + 3).min(got.len())],
                &want[at.saturating_sub(2)..(at + 3).min(want.len())],
            );
        }
        let extra = pairs(&stream.settle(Duration::from_millis(200)).await[rest..]);
        assert!(
            extra.is_empty(),
            "after {last:?}, more: {extra:?}; journal ends {:?}",
            &want[want.len().saturating_sub(3)..]
        );
        assert!(hops >= 4, "only {hops} connections");
        let reads = a.stats().journal_resume_reads + b.stats().journal_resume_reads;
        assert!(reads > 0, "no resume read the journal");
    }

    /// Ids the journal does not hold are gaps; `earliest` replays all.
    #[tokio::test]
    async fn unknown_ids_are_gaps() {
        let key = Key::new();
        let (broker, _journal) = replica(&key, 16).await;
        let news = broker.channel("news").unwrap();
        let first = news.publish(Event::new("news:1")).await.unwrap();
        news.publish(Event::new("news:2")).await.unwrap();
        let id: JournalId = first.journal_id.unwrap();
        let other_epoch = JournalId {
            epoch: id.epoch.wrapping_add(1),
            ..id
        }
        .to_string();
        for (last, reason) in [("nope", "unknown-id"), (other_epoch.as_str(), "unknown-id")] {
            let (headers, mut stream) = connect(&broker, Some(last), &["news"]);
            assert_eq!(headers[RESUME_HEADER], "gap");
            let got = stream.until(1).await;
            assert_eq!(got[0].event, GAP_EVENT);
            assert!(got[0].data.contains(reason), "{}", got[0].data);
        }
        // An id of this epoch older than the window (after the first, from
        // a fresh broker whose window holds nothing yet): read, exact.
        let (fresh, _) = replica(&key, 16).await;
        let (client, body) = fresh.connect(first.id.clone()).unwrap();
        client.subscribe("news").unwrap();
        assert_eq!(client.resumed().await, ResumeStatus::Complete);
        let mut stream = Stream {
            body,
            parser: Parser::new(),
            seen: Vec::new(),
        };
        assert_eq!(datas(stream.until(1).await), ["news:2"]);
        let (_, mut stream) = connect(&fresh, Some("earliest"), &["news"]);
        assert_eq!(datas(stream.until(2).await), ["news:1", "news:2"]);
    }

    /// Redis losing the log (here: its keys deleted) is a reset: counted,
    /// and connected clients get the gap event; publishing goes on in the
    /// new epoch.
    #[tokio::test]
    async fn a_reset_is_signalled_and_publishing_goes_on() {
        let key = Key::new();
        let (broker, _journal) = replica(&key, 16).await;
        let (_, mut stream) = connect(&broker, None, &["news"]);
        let news = broker.channel("news").unwrap();
        let before = news.publish(Event::new("news:before")).await.unwrap();
        stream.until(1).await;
        key.delete();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while broker.stats().journal_resets == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no reset noticed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = stream.until(2).await;
        assert_eq!(got[1].event, GAP_EVENT);
        assert!(got[1].data.contains("history-lost"));
        let after = news.publish(Event::new("news:after")).await.unwrap();
        assert_ne!(
            after.journal_id.unwrap().epoch,
            before.journal_id.unwrap().epoch
        );
        assert_eq!(stream.until(3).await[2].data, "news:after");
    }
}
