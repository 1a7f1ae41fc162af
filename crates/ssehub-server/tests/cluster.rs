//! Several `ssehub` processes on one Redis acting as one hub: publish on
//! any node, receive on every node, resume on any node, and what happens
//! when Redis goes away, comes back empty, or a node is SIGKILLed — ending
//! with a seeded chaos run of all of it at once.
//!
//! Tests that only share Redis use 127.0.0.1:6379 with a unique stream key
//! (deleted at the end); tests that stop Redis run their own
//! `redis-server` on a free port. The verdict of every test is the same
//! ledger check ([`ledger::verdict`]): each subscriber received exactly the
//! stored updates it may see, each once, in the log's order, with a gap
//! event wherever the log lost its data.
//!
//! `CLUSTER_SEED=N` replays the chaos test's schedule.

/// The helpers, in `tests/cluster/`.
mod cluster {
    pub mod harness;
    pub mod ledger;
    pub mod sse;
    pub mod swarm;
}

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::harness::{
    Gate, Node, Outcome, PrivateRedis, SHARED_REDIS, Scratch, SharedStream, nodes, publisher,
    publishing_client, shared_keys_left,
};
use cluster::ledger::{
    Interest, Ledger, OTHER, Published, Reads, Refusals, Select, Story, TOPICS, Verdict, position,
    verdict,
};
use cluster::sse::Stream;
use cluster::swarm::{Behaviour, Drops, Nodes, Pick, Publishers, Swarm};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ssehub::journal::Offset;

const WAIT: Duration = Duration::from_secs(10);

/// Interests that cover the ways a subscription selects and reads: one
/// exact topic, several, a URL pattern, everything; anonymous, a token for
/// some topics, a token for all.
fn interests() -> Vec<Interest> {
    use Select::{All, Exact, Pattern};
    vec![
        Interest::new(vec![Exact(TOPICS[0])], Reads::Public),
        Interest::new(vec![Exact(TOPICS[0])], Reads::Topics(vec![TOPICS[0]])),
        Interest::new(
            vec![Exact(TOPICS[1]), Exact(TOPICS[2])],
            Reads::Topics(vec![TOPICS[1]]),
        ),
        Interest::new(vec![Pattern], Reads::All),
        Interest::new(vec![Pattern, Exact(TOPICS[3])], Reads::Public),
        Interest::new(vec![All], Reads::All),
        Interest::new(vec![All], Reads::Public),
        Interest::new(vec![Exact(TOPICS[3]), Exact(OTHER)], Reads::All),
    ]
}

/// The topics of the closing update: every subscriber selects one.
fn everything() -> Vec<&'static str> {
    let mut all = TOPICS.to_vec();
    all.push(OTHER);
    all
}

/// The epoch of a hub id.
fn epoch(id: &str) -> u32 {
    position(id)
        .unwrap_or_else(|| panic!("{id:?} is not a hub id"))
        .epoch
}

/// Redis ids are `#EEEEEEEE-MS-SEQ`.
fn assert_stream_ids(published: &[Published]) {
    for p in published {
        if let Some(id) = p.outcome.id() {
            let pos = position(id).unwrap_or_else(|| panic!("{id:?} is not a hub id"));
            assert!(
                matches!(pos.offset, Offset::Stream { .. }),
                "{id} is not #EEEEEEEE-MS-SEQ"
            );
            assert_eq!(id, format!("#{pos}"), "one written form");
        }
    }
}

/// Publishes the update every subscriber starts after, on node 0.
async fn marker(ledger: &Ledger, nodes: &Nodes) -> String {
    let published = ledger
        .publish_acked(
            &publishing_client(),
            &publisher(),
            || (0, nodes.url(0)),
            &[OTHER],
            "marker",
        )
        .await;
    published.outcome.id().unwrap().to_owned()
}

/// Publishes the closing update (on `node`) and waits until every
/// subscriber has it.
async fn close(ledger: &Ledger, swarm: &Swarm, node: usize) {
    let end = ledger
        .publish_acked(
            &publishing_client(),
            &publisher(),
            || (node, swarm.nodes.url(node)),
            &everything(),
            "end",
        )
        .await;
    swarm.received(&end.tag).await;
}

fn report(name: &str, v: &Verdict, started: Instant) {
    println!(
        "{name}: {} acked, {} refused, {} never sent, {} unknown; {} unacknowledged stored, {} lost with an epoch; \
         {} updates and {} gap events over {} connections ({} late gaps), in {:.1?}",
        v.acked,
        v.refused,
        v.not_sent,
        v.unknown,
        v.stored_unacked,
        v.lost_with_epoch,
        v.events,
        v.gaps,
        v.connections,
        v.late_gaps,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_published_on_any_node_reach_every_matching_subscriber_once_in_one_order() {
    let started = Instant::now();
    let scratch = Scratch::new();
    let stream = SharedStream::new();
    let hubs = nodes(&scratch, 3, &Node::args(Some((SHARED_REDIS, &stream.0)))).await;
    let urls = Nodes::new(hubs.iter().map(Node::hub).collect());
    let ledger = Arc::new(Ledger::default());
    let start = marker(&ledger, &urls).await;

    let mut swarm = Swarm::new(urls.clone());
    for node in 0..3 {
        for (i, interest) in interests().into_iter().enumerate() {
            let behaviour = Behaviour {
                first_node: node,
                pick: Pick::Same,
                drops: Drops::Never,
                seed: (node * 100 + i) as u64,
            };
            swarm.subscribe(interest, &start, behaviour);
        }
    }
    swarm.connected().await;
    // Three publishers at once, each on random nodes.
    let pace = (Duration::from_millis(1), Duration::from_millis(6));
    Publishers::start(3, ledger.clone(), urls.clone(), 7, pace, Some(60))
        .finish()
        .await;
    close(&ledger, &swarm, 1).await;
    let subs = swarm.stop().await;

    let published = ledger.all();
    assert!(
        published.iter().all(|p| p.outcome.id().is_some()),
        "every publish is acknowledged"
    );
    assert_stream_ids(&published);
    let epochs = [epoch(&start)];
    assert!(
        published
            .iter()
            .all(|p| epoch(p.outcome.id().unwrap()) == epochs[0]),
        "one epoch"
    );
    let story = Story {
        published: &published,
        epochs: &epochs,
        start: &start,
        refusals: Refusals::NeverStored,
    };
    let v = verdict(&story, &subs);
    report("publish anywhere", &v, started);
    v.assert_clean("publish anywhere");

    // One total order, whatever node: the subscribers that see everything
    // got the same ids, those of every update after the start, ascending.
    let sees_all: Vec<Vec<String>> = subs
        .iter()
        .filter(|(i, _)| matches!((&i.select[..], &i.reads), ([Select::All], Reads::All)))
        .map(|(_, log)| log.events().filter_map(|e| e.id.clone()).collect())
        .collect();
    assert_eq!(sees_all.len(), 3);
    let mut all: Vec<_> = published
        .iter()
        .filter(|p| !p.tag.starts_with("marker"))
        .map(|p| position(p.outcome.id().unwrap()).unwrap())
        .collect();
    all.sort();
    let all: Vec<String> = all.iter().map(|p| format!("#{p}")).collect();
    for ids in &sees_all {
        assert_eq!(ids, &all);
    }
    drop(hubs);
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_resumes_exactly_on_another_node_while_publishers_publish() {
    let started = Instant::now();
    let scratch = Scratch::new();
    let stream = SharedStream::new();
    let hubs = nodes(&scratch, 3, &Node::args(Some((SHARED_REDIS, &stream.0)))).await;
    let urls = Nodes::new(hubs.iter().map(Node::hub).collect());
    let ledger = Arc::new(Ledger::default());
    let start = marker(&ledger, &urls).await;

    // Each subscriber leaves after a few updates and comes back on the next
    // node with its last id.
    let mut swarm = Swarm::new(urls.clone());
    let interests = interests();
    for (i, interest) in interests.iter().enumerate() {
        let behaviour = Behaviour {
            first_node: i % 3,
            pick: Pick::Next,
            drops: Drops::Events(2, 6),
            seed: i as u64,
        };
        swarm.subscribe(interest.clone(), &start, behaviour);
    }
    swarm.connected().await;
    let pace = (Duration::from_millis(2), Duration::from_millis(10));
    let publishers = Publishers::start(2, ledger.clone(), urls.clone(), 11, pace, None);
    for n in 0..interests.len() {
        swarm.await_connections(n, 5).await;
    }
    swarm
        .drops
        .store(false, std::sync::atomic::Ordering::Relaxed);
    publishers.stop().await;
    close(&ledger, &swarm, 2).await;
    let subs = swarm.stop().await;

    for (n, (_, log)) in subs.iter().enumerate() {
        let nodes: std::collections::HashSet<usize> =
            log.connections.iter().map(|c| c.node).collect();
        assert_eq!(nodes.len(), 3, "subscriber {n} visited every node");
        for conn in &log.connections[1..] {
            // Every resume was exact: the hub names the id it resumed after.
            assert_eq!(conn.header.as_ref(), Some(&conn.requested), "{conn:?}");
        }
    }
    let published = ledger.all();
    assert_stream_ids(&published);
    let story = Story {
        published: &published,
        epochs: &[epoch(&start)],
        start: &start,
        refusals: Refusals::NeverStored,
    };
    let v = verdict(&story, &subs);
    report("resume anywhere", &v, started);
    v.assert_clean("resume anywhere");
    drop(hubs);
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_refuses_publishes_and_keeps_subscribers_connected() {
    let started = Instant::now();
    let scratch = Scratch::new();
    // With its data on disk: Redis comes back as it left.
    let mut redis = PrivateRedis::start(
        &scratch,
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let hubs = nodes(&scratch, 2, &Node::args(Some((&redis.url(), "cluster")))).await;
    for hub in &hubs {
        hub.await_ready(200).await;
    }
    let urls = Nodes::new(hubs.iter().map(Node::hub).collect());
    let ledger = Arc::new(Ledger::default());
    let start = marker(&ledger, &urls).await;
    let mut swarm = Swarm::new(urls.clone());
    let interests = interests();
    for (i, interest) in interests.iter().enumerate() {
        let behaviour = Behaviour {
            first_node: i % 2,
            pick: Pick::Random,
            drops: Drops::Never,
            seed: i as u64,
        };
        swarm.subscribe(interest.clone(), &start, behaviour);
    }
    swarm.connected().await;
    let http = publishing_client();
    let token = publisher();
    for (i, topic) in TOPICS.iter().enumerate() {
        let node = i % 2;
        let p = ledger
            .publish(
                &http,
                &token,
                (node, &urls.url(node)),
                &[*topic],
                false,
                "before",
            )
            .await;
        assert!(p.outcome.id().is_some(), "{p:?}");
    }
    close(&ledger, &swarm, 0).await;

    redis.kill();
    for hub in &hubs {
        hub.await_ready(503).await;
    }
    for (i, topic) in TOPICS.iter().enumerate() {
        let node = i % 2;
        let p = ledger
            .publish(
                &http,
                &token,
                (node, &urls.url(node)),
                &[*topic],
                false,
                "refused",
            )
            .await;
        match &p.outcome {
            Outcome::Refused {
                status: 503,
                retry_after: Some(_),
            } => {}
            other => panic!("publish while Redis is down: {other:?}"),
        }
    }

    redis.spawn();
    for hub in &hubs {
        hub.await_ready(200).await;
    }
    for (i, topic) in TOPICS.iter().enumerate() {
        let node = i % 2;
        let p = ledger
            .publish_acked(&http, &token, || (node, urls.url(node)), &[*topic], "after")
            .await;
        assert_eq!(
            epoch(p.outcome.id().unwrap()),
            epoch(&start),
            "the same log"
        );
    }
    close(&ledger, &swarm, 1).await;
    let subs = swarm.stop().await;
    for (n, (_, log)) in subs.iter().enumerate() {
        assert_eq!(
            log.connections.len(),
            1,
            "subscriber {n} stayed connected: {:?}",
            log.connections
        );
    }
    let published = ledger.all();
    assert_stream_ids(&published);
    let story = Story {
        published: &published,
        epochs: &[epoch(&start)],
        start: &start,
        refusals: Refusals::NeverStored,
    };
    let v = verdict(&story, &subs);
    report("redis unreachable", &v, started);
    v.assert_clean("redis unreachable");
    assert_eq!(v.gaps, 0, "nothing was lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_is_a_gap_told_before_anything_else() {
    let started = Instant::now();
    let scratch = Scratch::new();
    let mut redis = PrivateRedis::start(&scratch, &[]);
    let hubs = nodes(&scratch, 2, &Node::args(Some((&redis.url(), "cluster")))).await;
    for hub in &hubs {
        hub.await_ready(200).await;
    }
    let urls = Nodes::new(hubs.iter().map(Node::hub).collect());
    let ledger = Arc::new(Ledger::default());
    let start = marker(&ledger, &urls).await;
    let mut swarm = Swarm::new(urls.clone());
    for (i, interest) in interests().into_iter().enumerate() {
        let behaviour = Behaviour {
            first_node: i % 2,
            pick: Pick::Random,
            drops: Drops::Never,
            seed: i as u64,
        };
        swarm.subscribe(interest, &start, behaviour);
    }
    swarm.connected().await;
    let http = publishing_client();
    let token = publisher();
    let publish = |node: usize, prefix: &'static str| {
        let (ledger, http, token, urls) = (&ledger, &http, &token, &urls);
        async move {
            let p = ledger
                .publish(
                    http,
                    token,
                    (node, &urls.url(node)),
                    &[TOPICS[0]],
                    false,
                    prefix,
                )
                .await;
            assert!(p.outcome.id().is_some(), "{p:?}");
            p
        }
    };

    // A subscriber of its own reads three updates on node 0, then leaves.
    let resumer = reqwest::Client::new();
    let response = resumer
        .get(urls.url(0))
        .query(&[("match", TOPICS[0])])
        .header("last-event-id", &start)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut first = Stream::new(response);
    let mut old = Vec::new();
    for node in [0, 1, 0] {
        old.push(publish(node, "old").await);
    }
    let mut last = String::new();
    for p in &old {
        let ev = first.expect(WAIT).await;
        assert_eq!(
            (ev.data.as_str(), ev.id.as_deref()),
            (p.tag.as_str(), p.outcome.id())
        );
        last = ev.last_event_id;
    }
    drop(first);
    // What it misses, then the log loses everything.
    publish(1, "missed").await;
    publish(0, "missed").await;
    close(&ledger, &swarm, 0).await;
    redis.kill();
    redis.spawn();
    for hub in &hubs {
        hub.await_ready(200).await;
    }
    let mut new = Vec::new();
    for node in [1, 0] {
        new.push(publish(node, "new").await);
    }
    let new_epoch = epoch(new[0].outcome.id().unwrap());
    assert_ne!(new_epoch, epoch(&start), "an empty Redis is a new log");

    // It resumes on node 1 with its old id: told `earliest` and a gap before
    // anything else, then exactly what the new log holds for it.
    let response = resumer
        .get(urls.url(1))
        .query(&[("match", TOPICS[0])])
        .header("last-event-id", &last)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut resumed = Stream::new(response);
    assert_eq!(
        resumed.header("mercure-last-event-id").as_deref(),
        Some("earliest")
    );
    let gap = resumed.expect(WAIT).await;
    assert!(gap.is_gap(), "{gap:?}");
    let data: serde_json::Value = serde_json::from_str(&gap.data).expect("JSON gap data");
    assert!(data.is_object(), "{data}");
    for p in &new {
        let ev = resumed.expect(WAIT).await;
        assert_eq!(
            (ev.data.as_str(), ev.id.as_deref()),
            (p.tag.as_str(), p.outcome.id())
        );
    }
    let live = publish(0, "live").await;
    let ev = resumed.expect(WAIT).await;
    assert_eq!(ev.data, live.tag);

    // The subscribers that stayed connected were told too, before the
    // first update of the new log.
    close(&ledger, &swarm, 1).await;
    let subs = swarm.stop().await;
    let published = ledger.all();
    assert_stream_ids(&published);
    let story = Story {
        published: &published,
        epochs: &[epoch(&start), new_epoch],
        start: &start,
        refusals: Refusals::NeverStored,
    };
    let v = verdict(&story, &subs);
    report("redis restarted empty", &v, started);
    v.assert_clean("redis restarted empty");
    assert!(v.gaps >= subs.len(), "every subscriber was told");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_a_killed_node_resume_exactly_on_the_others() {
    let started = Instant::now();
    let scratch = Scratch::new();
    let stream = SharedStream::new();
    let mut hubs = nodes(&scratch, 3, &Node::args(Some((SHARED_REDIS, &stream.0)))).await;
    let urls = Nodes::new(hubs.iter().map(Node::hub).collect());
    let ledger = Arc::new(Ledger::default());
    let start = marker(&ledger, &urls).await;
    let mut swarm = Swarm::new(urls.clone());
    let interests = interests();
    let mut victims = Vec::new();
    for (i, interest) in interests.iter().chain(&interests).enumerate() {
        let first_node = i % 3;
        if first_node == 2 {
            victims.push(i);
        }
        let behaviour = Behaviour {
            first_node,
            pick: Pick::Random,
            drops: Drops::Never,
            seed: i as u64,
        };
        swarm.subscribe(interest.clone(), &start, behaviour);
    }
    swarm.connected().await;
    let pace = (Duration::from_millis(2), Duration::from_millis(8));
    let publishers = Publishers::start(2, ledger.clone(), urls.clone(), 5, pace, None);
    // Mid-stream: node 2's subscribers have been receiving for a while.
    for &n in &victims {
        swarm.await_count(n, 10).await;
    }
    hubs[2].kill().await;
    let at_kill: Vec<usize> = victims.iter().map(|&n| swarm.count(n)).collect();
    for (&n, before) in victims.iter().zip(&at_kill) {
        swarm.await_connections(n, 2).await;
        // And they keep receiving where they are now.
        swarm.await_count(n, before + 10).await;
    }
    publishers.stop().await;
    close(&ledger, &swarm, 0).await;
    for &n in &victims {
        let log = swarm.log(n);
        let resumed = log
            .connections
            .iter()
            .filter(|c| c.status == Ok(200))
            .nth(1);
        let resumed = resumed.expect("a second connection");
        assert_ne!(resumed.node, 2, "{resumed:?}");
        assert_eq!(resumed.header.as_ref(), Some(&resumed.requested));
    }
    let subs = swarm.stop().await;
    let published = ledger.all();
    assert_stream_ids(&published);
    let story = Story {
        published: &published,
        epochs: &[epoch(&start)],
        start: &start,
        refusals: Refusals::NeverStored,
    };
    let v = verdict(&story, &subs);
    report("node killed", &v, started);
    v.assert_clean("node killed");
    drop(hubs);
    drop(stream);
}

/// Three nodes, one Redis, everything going wrong once: random drops and
/// reconnects to random nodes all along, a node SIGKILLed and restarted,
/// Redis restarted empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos() {
    let seed = std::env::var("CLUSTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("chaos seed {seed} (CLUSTER_SEED={seed} replays the schedule)");
    let started = Instant::now();
    let mut plan = StdRng::seed_from_u64(seed);
    let mut ms = |lo: u64, hi: u64| Duration::from_millis(plan.random_range(lo..hi));

    let scratch = Scratch::new();
    let mut redis = PrivateRedis::start(&scratch, &[]);
    let mut hubs = nodes(&scratch, 3, &Node::args(Some((&redis.url(), "chaos")))).await;
    for hub in &hubs {
        hub.await_ready(200).await;
    }
    let urls = Nodes::new(hubs.iter().map(Node::hub).collect());
    let ledger = Arc::new(Ledger::default());
    let start = marker(&ledger, &urls).await;

    let mut swarm = Swarm::new(urls.clone());
    let interests = interests();
    let subscribers = 36;
    for i in 0..subscribers {
        let behaviour = Behaviour {
            first_node: i % 3,
            pick: Pick::Random,
            drops: Drops::After(Duration::from_millis(300), Duration::from_secs(4)),
            seed: seed ^ (i as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d),
        };
        swarm.subscribe(interests[i % interests.len()].clone(), &start, behaviour);
    }
    swarm.connected().await;
    let pace = (Duration::from_millis(20), Duration::from_millis(60));
    let publishers = Publishers::start(3, ledger.clone(), urls.clone(), seed, pace, None);

    tokio::time::sleep(ms(3000, 5000)).await;
    let victim = (seed % 3) as usize;
    println!("chaos: SIGKILL node{victim} at {:.1?}", started.elapsed());
    hubs[victim].kill().await;
    tokio::time::sleep(ms(300, 1500)).await;
    hubs[victim].restart().await;
    hubs[victim].await_ready(200).await;
    println!("chaos: node{victim} back at {:.1?}", started.elapsed());

    tokio::time::sleep(ms(2000, 4000)).await;
    println!("chaos: Redis killed at {:.1?}", started.elapsed());
    redis.kill();
    tokio::time::sleep(ms(300, 1500)).await;
    redis.spawn();
    for hub in &hubs {
        hub.await_ready(200).await;
    }
    println!(
        "chaos: Redis back (empty), nodes ready at {:.1?}",
        started.elapsed()
    );

    tokio::time::sleep(ms(2000, 4000)).await;
    swarm
        .drops
        .store(false, std::sync::atomic::Ordering::Relaxed);
    publishers.stop().await;
    let closing = (seed % 2) as usize;
    close(&ledger, &swarm, closing).await;
    let subs = swarm.stop().await;

    let published = ledger.all();
    assert_stream_ids(&published);
    let first = epoch(&start);
    let second = published
        .iter()
        .rev()
        .find_map(|p| p.outcome.id())
        .map(epoch)
        .unwrap();
    assert_ne!(first, second, "Redis came back empty: a new log");
    // A POST the hub refused was a 503 with Retry-After: Redis unreachable.
    for p in &published {
        if let Outcome::Refused {
            status,
            retry_after,
        } = &p.outcome
        {
            assert!(*status == 503 && retry_after.is_some(), "{p:?}");
        }
    }
    let slowest = published
        .iter()
        .filter(|p| p.outcome.id().is_none())
        .map(|p| p.finished - p.started)
        .max();
    println!("chaos: the slowest unacknowledged POST took {slowest:?}");
    let moved = subs
        .iter()
        .filter(|(_, log)| {
            let nodes: std::collections::HashSet<_> =
                log.connections.iter().map(|c| c.node).collect();
            nodes.len() > 1
        })
        .count();
    println!("chaos: {moved} of {subscribers} subscribers moved between nodes");
    let story = Story {
        published: &published,
        epochs: &[first, second],
        start: &start,
        refusals: Refusals::MayBeStored,
    };
    let v = verdict(&story, &subs);
    report("chaos", &v, started);
    v.assert_clean(&format!("chaos (seed {seed})"));
    assert!(moved > 0, "subscribers reconnected to other nodes");
}

/// The default transport, one process: the same ledger check under random
/// drops and resumes on the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_memory_node_resumes_exactly_under_random_drops() {
    let started = Instant::now();
    let scratch = Scratch::new();
    let hubs = nodes(&scratch, 1, &Node::args(None)).await;
    let urls = Nodes::new(vec![hubs[0].hub()]);
    let ledger = Arc::new(Ledger::default());
    let start = marker(&ledger, &urls).await;
    let mut swarm = Swarm::new(urls.clone());
    let interests = interests();
    for (i, interest) in interests.iter().chain(&interests).enumerate() {
        let drops = if i % 2 == 0 {
            Drops::Events(1, 8)
        } else {
            Drops::After(Duration::from_millis(50), Duration::from_millis(400))
        };
        let behaviour = Behaviour {
            first_node: 0,
            pick: Pick::Same,
            drops,
            seed: i as u64,
        };
        swarm.subscribe(interest.clone(), &start, behaviour);
    }
    swarm.connected().await;
    let pace = (Duration::from_millis(1), Duration::from_millis(5));
    Publishers::start(2, ledger.clone(), urls.clone(), 3, pace, Some(120))
        .finish()
        .await;
    swarm
        .drops
        .store(false, std::sync::atomic::Ordering::Relaxed);
    close(&ledger, &swarm, 0).await;
    let subs = swarm.stop().await;
    let published = ledger.all();
    assert!(published.iter().all(|p| p.outcome.id().is_some()));
    let story = Story {
        published: &published,
        epochs: &[epoch(&start)],
        start: &start,
        refusals: Refusals::NeverStored,
    };
    let v = verdict(&story, &subs);
    report("one memory node", &v, started);
    v.assert_clean("one memory node");
    assert!(v.connections > 2 * subs.len(), "subscribers resumed");
}

#[test]
fn shared_stream_keys_are_deleted() {
    let stream = SharedStream::new();
    let name = stream.0.clone();
    let set = std::process::Command::new("redis-cli")
        .args(["-p", "6379", "SET", &format!("{{{name}}}:meta"), "x"])
        .output()
        .unwrap();
    assert!(set.status.success());
    assert!(shared_keys_left(&name));
    drop(stream);
    assert!(!shared_keys_left(&name));
}

/// A node whose log reader connects after an update was appended to a
/// log that was empty when the node read it at start: the node must
/// deliver that update live, and resume after it like after any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_on_an_empty_log_misses_nothing_appended_while_it_starts() {
    let scratch = Scratch::new();
    let stream = SharedStream::new();
    let a = Node::start(
        &scratch,
        "node0",
        Node::args(Some((SHARED_REDIS, &stream.0))),
    )
    .await;
    a.await_ready(200).await;
    // Node 1's first connection (appends and reads) goes through; the next,
    // its log reader's, waits at the gate until the update is stored.
    let gate = Gate::start(6379, 1).await;
    let b = Node::start(
        &scratch,
        "node1",
        Node::args(Some((&gate.url(), &stream.0))),
    )
    .await;
    let subscribe = |last: &str| {
        reqwest::Client::new()
            .get(b.hub())
            .query(&[("match", TOPICS[0])])
            .header("last-event-id", last)
            .send()
    };
    let live = subscribe("earliest").await.unwrap();
    assert_eq!(live.status(), 200);
    let mut live = Stream::new(live);
    let ledger = Ledger::default();
    let (http, token) = (publishing_client(), publisher());
    let x = ledger
        .publish(&http, &token, (0, &a.hub()), &[TOPICS[0]], false, "x")
        .await;
    let x_id = x.outcome.id().expect("acknowledged").to_owned();
    gate.release();
    b.await_ready(200).await;
    let y = ledger
        .publish(&http, &token, (0, &a.hub()), &[TOPICS[0]], false, "y")
        .await;
    assert!(y.outcome.id().is_some());

    // The subscriber that was there all along gets both.
    let mut got = Vec::new();
    while got.last() != Some(&y.tag) {
        got.push(live.expect(WAIT).await.data);
    }
    assert_eq!(got, [x.tag.clone(), y.tag.clone()]);
    // One resuming after the first gets the second.
    let response = subscribe(&x_id).await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let mut resumed = Stream::new(response);
    assert_eq!(resumed.header("mercure-last-event-id"), Some(x_id));
    assert_eq!(resumed.expect(WAIT).await.data, y.tag);
}
