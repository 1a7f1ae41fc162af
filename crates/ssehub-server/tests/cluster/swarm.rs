//! Subscribers that reconnect as browsers do (with the last event id, to
//! the node a policy picks) and publishers that post on random nodes, each
//! driven by its own seeded generator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::harness::{PATIENCE, publisher, publishing_client};
use super::ledger::{Conn, Interest, Ledger, OTHER, SubLog, TOPICS};
use super::sse::Stream;

/// The hub URLs of the nodes, by index; a node restarted elsewhere gets a
/// new one.
#[derive(Clone)]
pub struct Nodes(Arc<Mutex<Vec<String>>>);

impl Nodes {
    pub fn new(urls: Vec<String>) -> Self {
        Self(Arc::new(Mutex::new(urls)))
    }

    pub fn url(&self, node: usize) -> String {
        self.0.lock().unwrap()[node].clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Where a subscriber reconnects.
#[derive(Debug, Clone, Copy)]
pub enum Pick {
    /// Always the node it started on.
    Same,
    /// The next node (round robin).
    Next,
    /// Any node, at random (the one it left included).
    Random,
}

/// When a subscriber drops its connection by itself (while drops are on).
#[derive(Debug, Clone, Copy)]
pub enum Drops {
    Never,
    /// After a random time in the range.
    After(Duration, Duration),
    /// After a random number of updates in the range.
    Events(usize, usize),
}

/// How one subscriber behaves.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub first_node: usize,
    pub pick: Pick,
    pub drops: Drops,
    pub seed: u64,
}

struct Subscriber {
    interest: Interest,
    log: watch::Sender<SubLog>,
    task: JoinHandle<()>,
}

/// A set of subscribers sharing one stop signal.
pub struct Swarm {
    pub nodes: Nodes,
    stop: watch::Sender<bool>,
    /// Random drops happen only while this is set.
    pub drops: Arc<AtomicBool>,
    subs: Vec<Subscriber>,
}

impl Swarm {
    pub fn new(nodes: Nodes) -> Self {
        Self {
            nodes,
            stop: watch::Sender::new(false),
            drops: Arc::new(AtomicBool::new(true)),
            subs: Vec::new(),
        }
    }

    /// Starts a subscriber that begins after `start` (its first
    /// `Last-Event-ID`).
    pub fn subscribe(&mut self, interest: Interest, start: &str, behaviour: Behaviour) {
        let log = watch::Sender::new(SubLog::default());
        let task = tokio::spawn(run(
            interest.clone(),
            behaviour,
            start.to_owned(),
            self.nodes.clone(),
            self.stop.subscribe(),
            self.drops.clone(),
            log.clone(),
        ));
        self.subs.push(Subscriber {
            interest,
            log,
            task,
        });
    }

    /// Waits until every subscriber's current connection is open (`200`).
    pub async fn connected(&self) {
        for (n, sub) in self.subs.iter().enumerate() {
            let mut rx = sub.log.subscribe();
            let open = |log: &SubLog| {
                log.connections
                    .last()
                    .is_some_and(|c| c.status == Ok(200) && c.end.is_none())
            };
            if tokio::time::timeout(PATIENCE, rx.wait_for(open))
                .await
                .is_err()
            {
                panic!("subscriber {n} never connected: {:?}", sub.log.borrow());
            }
        }
    }

    /// Waits until every subscriber has received the update `tag`.
    pub async fn received(&self, tag: &str) {
        let deadline = Instant::now() + PATIENCE;
        for (n, sub) in self.subs.iter().enumerate() {
            let mut rx = sub.log.subscribe();
            if tokio::time::timeout_at(deadline, rx.wait_for(|log| log.has(tag)))
                .await
                .is_err()
            {
                let log = sub.log.borrow();
                let tags = log.tags();
                panic!(
                    "subscriber {n} ({:?}) never received {tag}; it has {} updates over {} connections, the last {:?}; its last connection: {:?}",
                    sub.interest,
                    tags.len(),
                    log.connections.len(),
                    &tags[tags.len().saturating_sub(5)..],
                    log.connections.last().map(|c| (
                        c.node,
                        &c.requested,
                        &c.status,
                        &c.header,
                        &c.end
                    )),
                );
            }
        }
    }

    /// The number of updates subscriber `n` has received so far.
    pub fn count(&self, n: usize) -> usize {
        self.subs[n].log.borrow().tags().len()
    }

    /// Waits until subscriber `n` has received `count` updates.
    pub async fn await_count(&self, n: usize, count: usize) {
        let mut rx = self.subs[n].log.subscribe();
        tokio::time::timeout(PATIENCE, rx.wait_for(|log| log.tags().len() >= count))
            .await
            .unwrap_or_else(|_| panic!("subscriber {n} never got {count} updates"))
            .unwrap();
    }

    /// Waits until subscriber `n` has opened `count` connections (`200`).
    pub async fn await_connections(&self, n: usize, count: usize) {
        let mut rx = self.subs[n].log.subscribe();
        let opened = |log: &SubLog| {
            log.connections
                .iter()
                .filter(|c| c.status == Ok(200))
                .count()
                >= count
        };
        if tokio::time::timeout(PATIENCE, rx.wait_for(opened))
            .await
            .is_err()
        {
            panic!(
                "subscriber {n} never opened {count} connections: {:?}",
                self.subs[n].log.borrow()
            );
        }
    }

    /// What subscriber `n` saw so far.
    pub fn log(&self, n: usize) -> SubLog {
        self.subs[n].log.borrow().clone()
    }

    /// Stops every subscriber; what each saw.
    pub async fn stop(self) -> Vec<(Interest, SubLog)> {
        self.stop.send_replace(true);
        let mut out = Vec::new();
        for sub in self.subs {
            sub.task.await.unwrap();
            out.push((sub.interest, sub.log.borrow().clone()));
        }
        out
    }
}

fn update_last(log: &watch::Sender<SubLog>, change: impl FnOnce(&mut Conn)) {
    log.send_modify(|log| {
        if let Some(conn) = log.connections.last_mut() {
            change(conn);
        }
    });
}

async fn run(
    interest: Interest,
    behaviour: Behaviour,
    mut last: String,
    nodes: Nodes,
    mut stop: watch::Receiver<bool>,
    drops: Arc<AtomicBool>,
    log: watch::Sender<SubLog>,
) {
    // One client per subscriber, no pooled sockets: each connection is a
    // fresh one, as a reconnecting browser's would be.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let token = interest.token();
    let query = interest.query();
    let mut rng = StdRng::seed_from_u64(behaviour.seed);
    let mut node = behaviour.first_node;
    loop {
        if *stop.borrow() {
            return;
        }
        let url = nodes.url(node);
        let mut request = http.get(&url).query(&query).header("last-event-id", &last);
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        log.send_modify(|log| {
            log.connections.push(Conn {
                node,
                requested: last.clone(),
                status: Err("connecting".into()),
                header: None,
                events: Vec::new(),
                end: None,
            });
        });
        let sent = tokio::select! {
            sent = tokio::time::timeout(Duration::from_secs(5), request.send()) => sent,
            _ = stop.wait_for(|s| *s) => {
                update_last(&log, |c| c.end = Some("stopped".into()));
                return;
            }
        };
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                update_last(&log, |c| c.status = Err(format!("{err:?}")));
                node = backoff(&mut rng, &behaviour, node, nodes.len()).await;
                continue;
            }
            Err(_) => {
                update_last(&log, |c| c.status = Err("no response within 5s".into()));
                node = backoff(&mut rng, &behaviour, node, nodes.len()).await;
                continue;
            }
        };
        let status = response.status().as_u16();
        let mut stream = Stream::new(response);
        let header = stream.header("mercure-last-event-id");
        update_last(&log, |c| {
            c.status = Ok(status);
            c.header = header;
        });
        if status != 200 {
            update_last(&log, |c| c.end = Some(format!("status {status}")));
            node = backoff(&mut rng, &behaviour, node, nodes.len()).await;
            continue;
        }
        let on = drops.load(Ordering::Relaxed);
        let mut drop_at = match behaviour.drops {
            Drops::After(min, max) if on => Some(Instant::now() + rng.random_range(min..max)),
            _ => None,
        };
        let drop_after = match behaviour.drops {
            Drops::Events(min, max) if on => Some(rng.random_range(min..=max)),
            _ => None,
        };
        let mut updates = 0;
        let end = loop {
            let timer = async {
                match drop_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break None,
                () = timer => {
                    if drops.load(Ordering::Relaxed) {
                        break Some("dropped".to_owned());
                    }
                    drop_at = None;
                }
                next = stream.next() => match next {
                    Ok(Some(ev)) => {
                        // Where a client that handled this event resumes
                        // (the parser may already hold later ones).
                        if !ev.last_event_id.is_empty() {
                            last.clone_from(&ev.last_event_id);
                        }
                        let update = !ev.is_gap();
                        update_last(&log, |c| c.events.push(ev));
                        if update {
                            updates += 1;
                            if drop_after == Some(updates) && drops.load(Ordering::Relaxed) {
                                break Some("dropped".to_owned());
                            }
                        }
                    }
                    Ok(None) => break Some("ended by the hub".to_owned()),
                    Err(err) => break Some(err),
                },
            }
        };
        drop(stream);
        let Some(end) = end else {
            update_last(&log, |c| c.end = Some("stopped".into()));
            return;
        };
        let dropped = end == "dropped";
        update_last(&log, |c| c.end = Some(end));
        node = if dropped {
            // Straight back, as a client that closed on purpose would.
            pick(&mut rng, &behaviour, node, nodes.len())
        } else {
            backoff(&mut rng, &behaviour, node, nodes.len()).await
        };
    }
}

fn pick(rng: &mut StdRng, behaviour: &Behaviour, node: usize, count: usize) -> usize {
    match behaviour.pick {
        Pick::Same => node,
        Pick::Next => (node + 1) % count,
        Pick::Random => rng.random_range(0..count),
    }
}

/// A short random pause after a failure (a browser's retry), then the
/// next node.
async fn backoff(rng: &mut StdRng, behaviour: &Behaviour, node: usize, count: usize) -> usize {
    let pause = Duration::from_millis(rng.random_range(50..250));
    tokio::time::sleep(pause).await;
    pick(rng, behaviour, node, count)
}

/// Publishers posting on random nodes until stopped.
pub struct Publishers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Publishers {
    /// `count` publishers, each pausing a random time in `pace` between
    /// updates. The mix: some updates on [`OTHER`], some with two topics,
    /// some private, the rest public on one of [`TOPICS`].
    pub fn start(
        count: usize,
        ledger: Arc<Ledger>,
        nodes: Nodes,
        seed: u64,
        pace: (Duration, Duration),
        each: Option<usize>,
    ) -> Self {
        let stop = watch::Sender::new(false);
        let tasks = (0..count)
            .map(|p| {
                let ledger = ledger.clone();
                let nodes = nodes.clone();
                let mut stop = stop.subscribe();
                tokio::spawn(async move {
                    let http = publishing_client();
                    let token = publisher();
                    let mut rng = StdRng::seed_from_u64(seed ^ (0x9e37_79b9 * (p as u64 + 1)));
                    let mut sent = 0;
                    while !*stop.borrow() && each.is_none_or(|each| sent < each) {
                        sent += 1;
                        let node = rng.random_range(0..nodes.len());
                        let roll = rng.random_range(0..100);
                        let one = TOPICS[rng.random_range(0..TOPICS.len())];
                        let (topics, private) = match roll {
                            0..10 => (vec![OTHER], false),
                            10..25 => {
                                let two = TOPICS[rng.random_range(0..TOPICS.len())];
                                let mut both = vec![one];
                                if two != one {
                                    both.push(two);
                                }
                                (both, false)
                            }
                            25..45 => (vec![one], true),
                            _ => (vec![one], false),
                        };
                        ledger
                            .publish(
                                &http,
                                &token,
                                (node, &nodes.url(node)),
                                &topics,
                                private,
                                "p",
                            )
                            .await;
                        let pause = rng.random_range(pace.0..pace.1);
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            _ = stop.wait_for(|s| *s) => {}
                        }
                    }
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// Waits until each has published its `each` updates.
    pub async fn finish(self) {
        for task in self.tasks {
            task.await.unwrap();
        }
    }

    /// Stops them, waiting for the updates in flight.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}
