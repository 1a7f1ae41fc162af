//! What was published and what each subscriber received, and the verdict:
//! every subscriber got exactly the stored updates it may see, each once,
//! in the log's one order, with gaps only where the log lost its data and
//! then signalled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::json;
use ssehub::journal::JournalId;

use super::harness::{Outcome, grant, post, token};
use super::sse::Ev;

/// The topics updates are published on; subscribers select among them.
pub const TOPICS: [&str; 4] = [
    "https://example.com/t/0",
    "https://example.com/t/1",
    "https://example.com/t/2",
    "https://example.com/t/3",
];
/// A topic only `*` selects.
pub const OTHER: &str = "https://example.com/other";
/// The `match_urlpattern` selecting every topic of [`TOPICS`].
pub const PATTERN: &str = "https://example.com/t/:n";

/// One way a subscription selects topics.
#[derive(Debug, Clone)]
pub enum Select {
    /// `match=*`.
    All,
    /// `match=TOPIC`.
    Exact(&'static str),
    /// `match_urlpattern=`[`PATTERN`].
    Pattern,
}

/// What a subscriber's token lets it read of private updates.
#[derive(Debug, Clone)]
pub enum Reads {
    /// No token: public updates only.
    Public,
    /// A token granting `subscribe` on these exact topics.
    Topics(Vec<&'static str>),
    /// A token granting `subscribe` on every topic.
    All,
}

/// A subscriber's matchers and token, and what they let it see.
#[derive(Debug, Clone)]
pub struct Interest {
    pub select: Vec<Select>,
    pub reads: Reads,
}

impl Interest {
    pub fn new(select: Vec<Select>, reads: Reads) -> Self {
        Self { select, reads }
    }

    /// The subscription's query parameters.
    pub fn query(&self) -> Vec<(&'static str, &'static str)> {
        self.select
            .iter()
            .map(|s| match s {
                Select::All => ("match", "*"),
                Select::Exact(topic) => ("match", *topic),
                Select::Pattern => ("match_urlpattern", PATTERN),
            })
            .collect()
    }

    /// The token it subscribes with, if any.
    pub fn token(&self) -> Option<String> {
        match &self.reads {
            Reads::Public => None,
            Reads::Topics(topics) => Some(token(json!([grant("subscribe", topics)]))),
            Reads::All => Some(token(json!([grant("subscribe", &["*"])]))),
        }
    }

    fn selects(&self, topic: &str) -> bool {
        self.select.iter().any(|s| match s {
            Select::All => true,
            Select::Exact(t) => *t == topic,
            Select::Pattern => topic
                .strip_prefix("https://example.com/t/")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/')),
        })
    }

    fn may_read(&self, topic: &str) -> bool {
        match &self.reads {
            Reads::Public => false,
            Reads::Topics(topics) => topics.contains(&topic),
            Reads::All => true,
        }
    }

    /// Whether an update on `topics` reaches this subscriber.
    pub fn sees(&self, topics: &[String], private: bool) -> bool {
        topics.iter().any(|t| self.selects(t))
            && (!private || topics.iter().any(|t| self.may_read(t)))
    }
}

/// One publish attempt.
#[derive(Debug, Clone)]
pub struct Published {
    /// Its data: unique per attempt.
    pub tag: String,
    pub topics: Vec<String>,
    pub private: bool,
    pub node: usize,
    pub started: Instant,
    pub finished: Instant,
    pub outcome: Outcome,
}

/// Every publish attempt of a test.
#[derive(Default)]
pub struct Ledger {
    published: Mutex<Vec<Published>>,
    next: std::sync::atomic::AtomicU64,
}

impl Ledger {
    /// A fresh tag.
    pub fn tag(&self, prefix: &str) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{prefix}{n}")
    }

    /// POSTs one update to `hub` (node `node`) and records the attempt.
    pub async fn publish(
        &self,
        http: &reqwest::Client,
        publisher: &str,
        (node, hub): (usize, &str),
        topics: &[&str],
        private: bool,
        prefix: &str,
    ) -> Published {
        let tag = self.tag(prefix);
        let mut form: Vec<(&str, &str)> = topics.iter().map(|t| ("topic", *t)).collect();
        form.push(("data", &tag));
        if private {
            form.push(("private", "on"));
        }
        let started = Instant::now();
        let outcome = post(http, hub, publisher, &form).await;
        let published = Published {
            tag: tag.clone(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            private,
            node,
            started,
            finished: Instant::now(),
            outcome,
        };
        self.published.lock().unwrap().push(published.clone());
        published
    }

    /// Publishes until one attempt is acknowledged; its record. Every
    /// attempt is recorded, so one that was stored without an answer is
    /// accounted for like any other.
    pub async fn publish_acked(
        &self,
        http: &reqwest::Client,
        publisher: &str,
        hub: impl Fn() -> (usize, String),
        topics: &[&str],
        prefix: &str,
    ) -> Published {
        let deadline = Instant::now() + super::harness::PATIENCE;
        loop {
            let (node, url) = hub();
            let attempt = self
                .publish(http, publisher, (node, &url), topics, false, prefix)
                .await;
            if attempt.outcome.id().is_some() {
                return attempt;
            }
            assert!(
                Instant::now() < deadline,
                "publishing kept failing: {attempt:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    pub fn all(&self) -> Vec<Published> {
        self.published.lock().unwrap().clone()
    }
}

/// One connection of a subscriber.
#[derive(Debug, Clone)]
pub struct Conn {
    pub node: usize,
    /// The `Last-Event-ID` it sent.
    pub requested: String,
    /// The status, or why no response came.
    pub status: Result<u16, String>,
    /// `Mercure-Last-Event-ID`.
    pub header: Option<String>,
    pub events: Vec<Ev>,
    /// How it ended (`None`: still open).
    pub end: Option<String>,
}

/// Everything one subscriber saw, connection by connection.
#[derive(Debug, Clone, Default)]
pub struct SubLog {
    pub connections: Vec<Conn>,
}

impl SubLog {
    /// Whether an update with data `tag` arrived.
    pub fn has(&self, tag: &str) -> bool {
        self.events().any(|e| e.data == tag && !e.is_gap())
    }

    /// Every event, in arrival order.
    pub fn events(&self) -> impl Iterator<Item = &Ev> {
        self.connections.iter().flat_map(|c| c.events.iter())
    }

    /// The data of every update (not gap) event.
    pub fn tags(&self) -> Vec<&str> {
        self.events()
            .filter(|e| !e.is_gap())
            .map(|e| e.data.as_str())
            .collect()
    }
}

/// How the verdict treats publishes that were not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusals {
    /// A refused (non-200) publish may still have been stored (the hub's
    /// answer came before the log's, or instead of it): if it was, every
    /// subscriber that may see it must get it.
    MayBeStored,
    /// A refused publish must never be delivered.
    NeverStored,
}

/// A hub id as a log position: `#` and a journal id.
pub fn position(id: &str) -> Option<JournalId> {
    id.strip_prefix('#')?.parse().ok()
}

/// The verdict's input besides the logs.
pub struct Story<'a> {
    pub published: &'a [Published],
    /// The log's epochs in the order they existed (a Redis restarted empty
    /// begins a new one).
    pub epochs: &'a [u32],
    /// The id every subscriber started after.
    pub start: &'a str,
    pub refusals: Refusals,
}

/// What the verdict found, and counts for the test's output.
#[derive(Debug, Default)]
pub struct Verdict {
    pub violations: Vec<String>,
    pub acked: usize,
    pub refused: usize,
    pub not_sent: usize,
    pub unknown: usize,
    /// Not acknowledged, yet delivered (consistently).
    pub stored_unacked: usize,
    /// Acknowledged in an epoch whose data was lost, and delivered to
    /// nobody.
    pub lost_with_epoch: usize,
    pub events: usize,
    pub connections: usize,
    pub gaps: usize,
    /// Gap events after the subscriber already had updates of the new
    /// epoch (a node told of the reset after a resume had).
    pub late_gaps: usize,
}

impl Verdict {
    fn violation(&mut self, text: String) {
        if self.violations.len() < 40 {
            self.violations.push(text);
        }
    }

    /// Panics with the violations, if any.
    pub fn assert_clean(&self, context: &str) {
        if !self.violations.is_empty() {
            let mut text = format!("{context}: {} violation(s):\n", self.violations.len());
            for v in &self.violations {
                let _ = writeln!(text, "  - {v}");
            }
            let _ = write!(text, "{self:?}");
            panic!("{text}");
        }
    }
}

/// A stored update, as the verdict knows it.
struct Entry<'a> {
    publish: &'a Published,
    id: String,
    rank: usize,
    position: JournalId,
}

/// Checks every subscriber's log against the story.
pub fn verdict(story: &Story<'_>, subs: &[(Interest, SubLog)]) -> Verdict {
    let mut v = Verdict::default();
    let rank_of = |id: &JournalId| story.epochs.iter().position(|e| *e == id.epoch);
    let Some(start) = position(story.start) else {
        v.violation(format!("the start id {:?} is not a hub id", story.start));
        return v;
    };
    let by_tag: HashMap<&str, &Published> = story
        .published
        .iter()
        .map(|p| (p.tag.as_str(), p))
        .collect();

    // What was delivered, under which id: the log as the subscribers saw it.
    let mut delivered: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (_, log) in subs {
        for ev in log.events() {
            if ev.is_gap() {
                continue;
            }
            let id = ev.id.as_deref().unwrap_or("");
            delivered.entry(ev.data.as_str()).or_default().insert(id);
        }
    }

    // The stored updates: the acknowledged, and the others that were
    // delivered (once, under one id).
    let mut stored: Vec<Entry<'_>> = Vec::new();
    for p in story.published {
        let seen = delivered.get(p.tag.as_str());
        let id = match &p.outcome {
            Outcome::Acked(id) => {
                v.acked += 1;
                if let Some(ids) = seen
                    && ids.iter().any(|got| got != id)
                {
                    v.violation(format!(
                        "{} acknowledged as {id}, delivered as {ids:?}",
                        p.tag
                    ));
                }
                Some(id.clone())
            }
            other => {
                match other {
                    Outcome::Refused { .. } => v.refused += 1,
                    Outcome::NotSent(_) => v.not_sent += 1,
                    _ => v.unknown += 1,
                }
                let allowed = match other {
                    Outcome::NotSent(_) => false,
                    Outcome::Refused { .. } => story.refusals == Refusals::MayBeStored,
                    _ => true,
                };
                match seen {
                    None => None,
                    Some(_) if !allowed => {
                        v.violation(format!(
                            "{} was delivered though node{} answered {other:?}",
                            p.tag, p.node
                        ));
                        None
                    }
                    Some(ids) if ids.len() > 1 => {
                        v.violation(format!("{} delivered under several ids {ids:?}", p.tag));
                        None
                    }
                    Some(ids) => {
                        v.stored_unacked += 1;
                        ids.iter().next().map(|id| (*id).to_owned())
                    }
                }
            }
        };
        let Some(id) = id else { continue };
        let Some(pos) = position(&id) else {
            v.violation(format!("{}: {id:?} is not a hub id", p.tag));
            continue;
        };
        let Some(rank) = rank_of(&pos) else {
            v.violation(format!("{}: {id} belongs to no known epoch", p.tag));
            continue;
        };
        if rank == 0 && pos <= start {
            continue; // before the subscribers' starting point
        }
        stored.push(Entry {
            publish: p,
            id,
            rank,
            position: pos,
        });
    }
    stored.sort_by_key(|e| (e.rank, e.position));
    for pair in stored.windows(2) {
        if (pair[0].rank, pair[0].position) == (pair[1].rank, pair[1].position) {
            v.violation(format!(
                "{} and {} share the id {}",
                pair[0].publish.tag, pair[1].publish.tag, pair[0].id
            ));
        }
    }
    let index: HashMap<&str, usize> = stored
        .iter()
        .enumerate()
        .map(|(i, e)| (e.publish.tag.as_str(), i))
        .collect();
    let last_rank = story.epochs.len().saturating_sub(1);
    let mut anyone_got: HashSet<usize> = HashSet::new();

    for (n, (interest, log)) in subs.iter().enumerate() {
        let name = format!("subscriber {n} {interest:?}");
        v.connections += log.connections.len();
        // Per epoch, the updates it should get, in log order.
        let mut expected: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, e) in stored.iter().enumerate() {
            if interest.sees(&e.publish.topics, e.publish.private) {
                expected.entry(e.rank).or_default().push(i);
            }
        }
        check_connections(&mut v, &name, log, story, last_rank);

        // Walk what arrived.
        let mut rank = 0;
        let mut next = 0; // index into expected[rank]
        let mut gap_since = false; // a gap event since the last update
        let events = log
            .connections
            .iter()
            .enumerate()
            .flat_map(|(c, conn)| conn.events.iter().map(move |ev| (c, conn, ev)));
        for (c, conn, ev) in events {
            // Where it happened, for the messages.
            let place = || {
                format!(
                    "on connection {c} (node{}, after {}, answered {:?})",
                    conn.node, conn.requested, conn.header
                )
            };
            if ev.is_gap() {
                v.gaps += 1;
                if serde_json::from_str::<serde_json::Value>(&ev.data).is_err() {
                    v.violation(format!("{name}: gap data is not JSON: {:?}", ev.data));
                }
                gap_since = true;
                continue;
            }
            if ev.kind != "message" {
                v.violation(format!("{name}: unexpected event type {:?}", ev.kind));
                continue;
            }
            let Some(&i) = index.get(ev.data.as_str()) else {
                if by_tag.contains_key(ev.data.as_str()) {
                    // Published before the start (or not stored): never due.
                    v.violation(format!("{name}: got {} ({:?}), not due", ev.data, ev.id));
                } else {
                    v.violation(format!("{name}: got {:?}, which nobody published", ev.data));
                }
                continue;
            };
            anyone_got.insert(i);
            let e = &stored[i];
            if !interest.sees(&e.publish.topics, e.publish.private) {
                v.violation(format!(
                    "{name}: got {} (topics {:?}, private {}) it may not see",
                    e.publish.tag, e.publish.topics, e.publish.private
                ));
                continue;
            }
            if e.rank < rank {
                v.violation(format!(
                    "{name}: {} of an older epoch after newer updates",
                    e.publish.tag
                ));
                continue;
            }
            if e.rank > rank {
                // The log lost its data: what the old epoch still owed is
                // forgiven, if the subscriber was told before anything new.
                if !gap_since {
                    v.violation(format!(
                        "{name}: {} begins a new epoch without a gap event before it",
                        e.publish.tag
                    ));
                }
                rank = e.rank;
                next = 0;
            } else if gap_since {
                if rank == 0 {
                    // Nothing was lost in the first epoch: a false alarm,
                    // or a real loss the walk below reports.
                    v.violation(format!(
                        "{name}: a gap event, then {} of the same epoch",
                        e.publish.tag
                    ));
                } else {
                    // A node told of the reset after a resume already had.
                    v.late_gaps += 1;
                }
            }
            gap_since = false;
            let due = expected.get(&rank).map_or(&[][..], Vec::as_slice);
            match due.get(next) {
                Some(&want) if want == i => next += 1,
                _ => {
                    let at = due.iter().position(|&d| d == i);
                    let what = match at {
                        Some(at) if at < next => "a duplicate".to_owned(),
                        Some(at) => format!(
                            "after missing {} update(s), first {}",
                            at - next,
                            stored[due[next]].publish.tag
                        ),
                        None => "unexpected".to_owned(),
                    };
                    v.violation(format!(
                        "{name}: {} ({}) is {what} {}",
                        e.publish.tag,
                        e.id,
                        place()
                    ));
                    if let Some(at) = at
                        && at >= next
                    {
                        next = at + 1;
                    }
                }
            }
            v.events += 1;
        }
        // Whatever the current epoch owes must have arrived; an older
        // epoch's remainder was lost with its data (and signalled above).
        let due = expected.get(&rank).map_or(&[][..], Vec::as_slice);
        if next < due.len() {
            v.violation(format!(
                "{name}: missing {} update(s) at the end, first {}",
                due.len() - next,
                stored[due[next]].publish.tag
            ));
        }
        for (&r, due) in &expected {
            if r > rank && !due.is_empty() {
                v.violation(format!(
                    "{name}: none of the {} update(s) of epoch {r} arrived",
                    due.len()
                ));
            }
        }
    }
    v.lost_with_epoch = stored
        .iter()
        .enumerate()
        .filter(|(i, e)| e.rank < last_rank && !anyone_got.contains(i))
        .count();
    v
}

/// The resume rules, connection by connection: the response names the
/// requested id when the resume is exact, else `earliest` with a gap event
/// first; an id of the current epoch is always exact.
fn check_connections(
    v: &mut Verdict,
    name: &str,
    log: &SubLog,
    story: &Story<'_>,
    last_rank: usize,
) {
    for (c, conn) in log.connections.iter().enumerate() {
        match &conn.status {
            Ok(200) => {}
            // A node that is down, or cannot read the log now.
            Ok(503) | Err(_) => continue,
            Ok(status) => {
                v.violation(format!("{name}: connection {c} answered {status}"));
                continue;
            }
        }
        let header = conn.header.as_deref();
        let rank =
            position(&conn.requested).and_then(|p| story.epochs.iter().position(|e| *e == p.epoch));
        match header {
            Some(h) if h == conn.requested => {}
            Some("earliest") => {
                if rank == Some(last_rank) {
                    v.violation(format!(
                        "{name}: connection {c} resumed from {} of the current epoch, answered earliest",
                        conn.requested
                    ));
                }
                if conn.events.first().is_some_and(|e| !e.is_gap()) {
                    v.violation(format!(
                        "{name}: connection {c} answered earliest but its first event is {:?}",
                        conn.events[0]
                    ));
                }
            }
            other => v.violation(format!(
                "{name}: connection {c} asked for {}, Mercure-Last-Event-ID {other:?}",
                conn.requested
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E1: u32 = 0x2a;
    const E2: u32 = 0x2b;

    fn id(epoch: u32, n: u64) -> String {
        format!("#{epoch:08x}-1700000000000-{n}")
    }

    fn published(tag: &str, topic: &str, private: bool, outcome: Outcome) -> Published {
        let now = Instant::now();
        Published {
            tag: tag.into(),
            topics: vec![topic.into()],
            private,
            node: 0,
            started: now,
            finished: now,
            outcome,
        }
    }

    fn acked(tag: &str, epoch: u32, n: u64) -> Published {
        published(tag, TOPICS[0], false, Outcome::Acked(id(epoch, n)))
    }

    fn update(tag: &str, id: &str) -> Ev {
        Ev {
            kind: "message".into(),
            id: Some(id.into()),
            data: tag.into(),
            last_event_id: id.into(),
        }
    }

    fn gap() -> Ev {
        Ev {
            kind: super::super::sse::GAP_EVENT.into(),
            id: None,
            data: "{}".into(),
            last_event_id: String::new(),
        }
    }

    fn conn(requested: &str, header: &str, events: Vec<Ev>) -> Conn {
        Conn {
            node: 0,
            requested: requested.into(),
            status: Ok(200),
            header: Some(header.into()),
            events,
            end: None,
        }
    }

    fn public_t0() -> Interest {
        Interest::new(vec![Select::Exact(TOPICS[0])], Reads::Public)
    }

    fn check(published: &[Published], epochs: &[u32], logs: Vec<Vec<Conn>>) -> Verdict {
        let start = id(E1, 0);
        let story = Story {
            published,
            epochs,
            start: &start,
            refusals: Refusals::NeverStored,
        };
        let subs: Vec<_> = logs
            .into_iter()
            .map(|connections| (public_t0(), SubLog { connections }))
            .collect();
        verdict(&story, &subs)
    }

    #[test]
    fn the_verdict_accepts_exact_resumes_and_catches_duplicates_holes_and_leaks() {
        let pubs = [acked("a", E1, 1), acked("b", E1, 2), acked("c", E1, 3)];
        let start = id(E1, 0);
        let (a, b, c) = (id(E1, 1), id(E1, 2), id(E1, 3));
        let clean = check(
            &pubs,
            &[E1],
            vec![vec![
                conn(&start, &start, vec![update("a", &a)]),
                conn(&a, &a, vec![update("b", &b), update("c", &c)]),
            ]],
        );
        assert!(clean.violations.is_empty(), "{clean:?}");

        let duplicate = check(
            &pubs,
            &[E1],
            vec![vec![
                conn(&start, &start, vec![update("a", &a), update("b", &b)]),
                conn(&a, &a, vec![update("b", &b), update("c", &c)]),
            ]],
        );
        assert!(
            duplicate.violations[0].contains("duplicate"),
            "{duplicate:?}"
        );

        let hole = check(
            &pubs,
            &[E1],
            vec![vec![conn(
                &start,
                &start,
                vec![update("a", &a), update("c", &c)],
            )]],
        );
        assert!(hole.violations[0].contains("missing 1"), "{hole:?}");

        let tail = check(
            &pubs,
            &[E1],
            vec![vec![conn(&start, &start, vec![update("a", &a)])]],
        );
        assert!(tail.violations[0].contains("at the end"), "{tail:?}");

        let mut private = pubs.to_vec();
        private[1] = published("b", TOPICS[0], true, Outcome::Acked(b.clone()));
        let leak = check(
            &private,
            &[E1],
            vec![vec![conn(
                &start,
                &start,
                vec![update("a", &a), update("b", &b), update("c", &c)],
            )]],
        );
        assert!(leak.violations[0].contains("may not see"), "{leak:?}");

        let wrong_header = check(
            &pubs,
            &[E1],
            vec![vec![
                conn(&start, &start, vec![update("a", &a)]),
                conn(&a, "earliest", vec![update("b", &b), update("c", &c)]),
            ]],
        );
        assert!(
            wrong_header
                .violations
                .iter()
                .any(|v| v.contains("earliest")),
            "{wrong_header:?}"
        );
    }

    #[test]
    fn the_verdict_forgives_a_lost_epoch_only_after_a_gap_event() {
        // "b" was acknowledged, then Redis lost it before anyone read it.
        let pubs = [
            acked("a", E1, 1),
            acked("b", E1, 2),
            acked("x", E2, 1),
            acked("y", E2, 2),
        ];
        let start = id(E1, 0);
        let (a, x, y) = (id(E1, 1), id(E2, 1), id(E2, 2));
        let told = check(
            &pubs,
            &[E1, E2],
            vec![
                // Told on the live stream.
                vec![conn(
                    &start,
                    &start,
                    vec![update("a", &a), gap(), update("x", &x), update("y", &y)],
                )],
                // Told on resuming, with `earliest`.
                vec![
                    conn(&start, &start, vec![update("a", &a)]),
                    conn(
                        &a,
                        "earliest",
                        vec![gap(), update("x", &x), update("y", &y)],
                    ),
                ],
            ],
        );
        assert!(told.violations.is_empty(), "{told:?}");
        assert_eq!((told.gaps, told.lost_with_epoch), (2, 1));

        let silent = check(
            &pubs,
            &[E1, E2],
            vec![vec![conn(
                &start,
                &start,
                vec![update("a", &a), update("x", &x), update("y", &y)],
            )]],
        );
        assert!(silent.violations[0].contains("without a gap"), "{silent:?}");

        // After the gap, the new log from its first update.
        let late_start = check(
            &pubs,
            &[E1, E2],
            vec![vec![conn(
                &start,
                &start,
                vec![update("a", &a), gap(), update("y", &y)],
            )]],
        );
        assert!(
            late_start.violations[0].contains("missing 1"),
            "{late_start:?}"
        );

        // A gap where nothing was lost is a false alarm.
        let false_alarm = check(
            &pubs[..2],
            &[E1],
            vec![vec![conn(
                &start,
                &start,
                vec![update("a", &a), gap(), update("b", &id(E1, 2))],
            )]],
        );
        assert!(
            false_alarm.violations[0].contains("gap event, then"),
            "{false_alarm:?}"
        );
    }

    #[test]
    fn the_verdict_holds_unacknowledged_publishes_to_what_their_answer_allows() {
        let start = id(E1, 0);
        let a = id(E1, 1);
        let refused = Outcome::Refused {
            status: 503,
            retry_after: Some("1".into()),
        };
        let pubs = [published("a", TOPICS[0], false, refused)];
        let both = vec![
            vec![conn(&start, &start, vec![update("a", &a)])],
            vec![conn(&start, &start, vec![update("a", &a)])],
        ];
        let strict = check(&pubs, &[E1], both.clone());
        assert!(
            strict.violations[0].contains("delivered though"),
            "{strict:?}"
        );

        let story = Story {
            published: &pubs,
            epochs: &[E1],
            start: &start,
            refusals: Refusals::MayBeStored,
        };
        let subs = |logs: Vec<Vec<Conn>>| -> Vec<(Interest, SubLog)> {
            logs.into_iter()
                .map(|connections| (public_t0(), SubLog { connections }))
                .collect()
        };
        let consistent = verdict(&story, &subs(both));
        assert!(consistent.violations.is_empty(), "{consistent:?}");
        assert_eq!(consistent.stored_unacked, 1);
        // Stored means stored for everyone.
        let partial = verdict(
            &story,
            &subs(vec![
                vec![conn(&start, &start, vec![update("a", &a)])],
                vec![conn(&start, &start, vec![])],
            ]),
        );
        assert!(partial.violations[0].contains("at the end"), "{partial:?}");

        let not_sent = [published(
            "a",
            TOPICS[0],
            false,
            Outcome::NotSent("refused".into()),
        )];
        let impossible = check(
            &not_sent,
            &[E1],
            vec![vec![conn(&start, &start, vec![update("a", &a)])]],
        );
        assert!(
            impossible.violations[0].contains("delivered though"),
            "{impossible:?}"
        );
    }
}
