//! The in-process journal: a ring of records bounded by a [`Retention`].
//!
//! Offsets are contiguous sequence numbers from 1, so finding a position
//! is arithmetic, and whether records after it were dropped is exact.
//! Appends are serialized by one lock, and followers are called inline
//! under it: zero hops, and one total order for every follower.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use slab::Slab;
use tokio::time::Instant;

use super::{
    BoxFuture, FollowFrom, FollowState, Follower, Following, Journal, JournalError, JournalId,
    Offset, Record, Replay, ReplayFrom, Retention,
};
use crate::sync::lock;

/// A [`Journal`] in this process's memory.
///
/// Its epoch is random per instance, so an id from a previous run (or from
/// another instance) is unknown to it: a replay after one reports a gap.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use bytes::Bytes;
/// use ssehub::journal::{Journal, MemoryJournal, Offset, ReplayFrom, Retention};
///
/// let journal = MemoryJournal::new(Retention { max_records: 2, ..Retention::default() });
/// let mut ids = Vec::new();
/// for body in ["a", "b", "c"] {
///     ids.push(journal.append(Bytes::from(body)).await.unwrap());
/// }
/// assert_eq!(ids[2].offset, Offset::Seq(3));
///
/// // "a" was dropped; after it nothing is missing, after nothing "a" is.
/// let after_a = journal.replay(ReplayFrom::After(ids[0]), 10).await.unwrap();
/// assert!(!after_a.gap);
/// assert_eq!(after_a.records.len(), 2);
/// let earliest = journal.replay(ReplayFrom::Earliest, 10).await.unwrap();
/// assert_eq!(earliest.records[0].body, "b");
///
/// // An id of another journal is unknown here.
/// let other = MemoryJournal::new(Retention::default());
/// let foreign = other.append(Bytes::from("x")).await.unwrap();
/// assert!(journal.replay(ReplayFrom::After(foreign), 10).await.unwrap().gap);
/// # }
/// ```
pub struct MemoryJournal {
    inner: Arc<Mutex<Inner>>,
    epoch: u32,
}

struct Inner {
    epoch: u32,
    retention: Retention,
    /// Retained records, oldest first; their sequence numbers are
    /// `last - len + 1 ..= last`.
    records: VecDeque<Record>,
    /// When each retained record was appended (parallel to `records`, so
    /// `records` can be handed out as a slice).
    times: VecDeque<Instant>,
    bytes: usize,
    /// Sequence number of the latest append; 0 before the first.
    last: u64,
    followers: Slab<Arc<dyn Follower>>,
}

impl MemoryJournal {
    /// An empty journal with a fresh epoch.
    ///
    /// ```
    /// use ssehub::journal::{MemoryJournal, Retention};
    ///
    /// let journal = MemoryJournal::new(Retention::default());
    /// assert_ne!(journal.epoch(), MemoryJournal::new(Retention::default()).epoch());
    /// ```
    pub fn new(retention: Retention) -> Self {
        let epoch = super::new_epoch();
        Self {
            inner: Arc::new(Mutex::new(Inner {
                epoch,
                retention,
                records: VecDeque::new(),
                times: VecDeque::new(),
                bytes: 0,
                last: 0,
                followers: Slab::new(),
            })),
            epoch,
        }
    }

    /// This journal's epoch: the first part of each of its ids.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use ssehub::journal::{Journal, MemoryJournal};
    ///
    /// let journal = MemoryJournal::default();
    /// let id = journal.append(bytes::Bytes::from("x")).await.unwrap();
    /// assert_eq!(id.epoch, journal.epoch());
    /// # }
    /// ```
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
}

impl Default for MemoryJournal {
    /// A journal with the default [`Retention`].
    fn default() -> Self {
        Self::new(Retention::default())
    }
}

impl fmt::Debug for MemoryJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = lock(&self.inner);
        f.debug_struct("MemoryJournal")
            .field("epoch", &format_args!("{:08x}", inner.epoch))
            .field("retention", &inner.retention)
            .field("records", &inner.records.len())
            .field("bytes", &inner.bytes)
            .field("last", &inner.last)
            .field("followers", &inner.followers.len())
            .finish()
    }
}

impl Inner {
    fn id(&self, seq: u64) -> JournalId {
        JournalId {
            epoch: self.epoch,
            offset: Offset::Seq(seq),
        }
    }

    /// Sequence number of the oldest retained record (`last + 1` when none
    /// is retained).
    fn first(&self) -> u64 {
        self.last + 1 - self.records.len() as u64
    }

    fn pop_oldest(&mut self) {
        if let Some(record) = self.records.pop_front() {
            self.bytes -= record.body.len();
        }
        self.times.pop_front();
    }

    /// Drops the records older than the retention's age.
    fn expire(&mut self, now: Instant) {
        let Some(age) = self.retention.max_age else {
            return;
        };
        while self
            .times
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= age)
        {
            self.pop_oldest();
        }
    }

    fn append(&mut self, body: Bytes) -> Result<JournalId, JournalError> {
        if let Some(max) = self.retention.max_bytes.filter(|&max| body.len() > max) {
            return Err(JournalError::TooLarge {
                size: body.len(),
                max,
            });
        }
        self.last += 1;
        let record = Record {
            id: self.id(self.last),
            body,
        };
        let now = Instant::now();
        self.bytes += record.body.len();
        self.records.push_back(record.clone());
        self.times.push_back(now);
        while self.records.len() > self.retention.max_records
            || self.retention.max_bytes.is_some_and(|max| self.bytes > max)
        {
            self.pop_oldest();
        }
        self.expire(now);
        for (_, follower) in &self.followers {
            follower.records(std::slice::from_ref(&record));
        }
        Ok(record.id)
    }

    /// Index in `records` of the first record to replay after `from`, and
    /// whether records after `from` are lost.
    fn start(&self, from: ReplayFrom) -> (usize, bool) {
        let after = match from {
            ReplayFrom::Earliest => return (0, false),
            ReplayFrom::After(JournalId {
                epoch,
                offset: Offset::Seq(seq),
            }) if epoch == self.epoch && (1..=self.last).contains(&seq) => seq,
            // Another epoch, another engine's shape, or never issued.
            ReplayFrom::After(_) => return (0, true),
        };
        let first = self.first();
        if after + 1 < first {
            // Records first..after+1 were dropped.
            return (0, true);
        }
        ((after + 1 - first) as usize, false)
    }

    fn replay(&mut self, from: ReplayFrom, max: usize) -> Replay {
        self.expire(Instant::now());
        let (start, gap) = self.start(from);
        let records = self.records.iter().skip(start).take(max).cloned().collect();
        Replay {
            records,
            gap,
            head: (self.last > 0).then(|| self.id(self.last)),
        }
    }

    fn follow(&mut self, from: FollowFrom, follower: Arc<dyn Follower>) -> usize {
        follower.state(FollowState::Up);
        let from = match from {
            FollowFrom::Latest => None,
            FollowFrom::Earliest => Some(ReplayFrom::Earliest),
            FollowFrom::After(id) => Some(ReplayFrom::After(id)),
        };
        if let Some(from) = from {
            self.expire(Instant::now());
            let (start, gap) = self.start(from);
            if gap {
                follower.state(FollowState::Gap);
            }
            let retained = self.records.make_contiguous();
            if start < retained.len() {
                follower.records(&retained[start..]);
            }
        }
        self.followers.insert(follower)
    }
}

impl Journal for MemoryJournal {
    fn append(&self, body: Bytes) -> BoxFuture<'_, Result<JournalId, JournalError>> {
        Box::pin(async move { lock(&self.inner).append(body) })
    }

    fn replay(&self, from: ReplayFrom, max: usize) -> BoxFuture<'_, Result<Replay, JournalError>> {
        Box::pin(async move { Ok(lock(&self.inner).replay(from, max)) })
    }

    fn follow(&self, from: FollowFrom, follower: Arc<dyn Follower>) -> Following {
        let key = lock(&self.inner).follow(from, follower);
        let inner: Weak<Mutex<Inner>> = Arc::downgrade(&self.inner);
        Following::new(move || {
            if let Some(inner) = inner.upgrade() {
                lock(&inner).followers.try_remove(key);
            }
        })
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Everything a follower was told, in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Seen {
        Record(JournalId, Bytes),
        Up,
        Gap,
    }

    #[derive(Default)]
    struct Log(Mutex<Vec<Seen>>);

    impl Follower for Log {
        fn records(&self, records: &[Record]) {
            let mut seen = lock(&self.0);
            seen.extend(records.iter().map(|r| Seen::Record(r.id, r.body.clone())));
        }
        fn state(&self, state: FollowState) {
            let seen = match state {
                FollowState::Up => Seen::Up,
                FollowState::Gap => Seen::Gap,
                other => panic!("a memory journal never reports {other:?}"),
            };
            lock(&self.0).push(seen);
        }
    }

    impl Log {
        fn take(&self) -> Vec<Seen> {
            std::mem::take(&mut lock(&self.0))
        }
        fn bodies(&self) -> Vec<Bytes> {
            self.take()
                .into_iter()
                .filter_map(|s| match s {
                    Seen::Record(_, body) => Some(body),
                    _ => None,
                })
                .collect()
        }
    }

    fn retention(max_records: usize) -> Retention {
        Retention {
            max_records,
            max_bytes: None,
            max_age: None,
        }
    }

    async fn append_all(journal: &MemoryJournal, bodies: &[&'static str]) -> Vec<JournalId> {
        let mut ids = Vec::new();
        for body in bodies {
            ids.push(
                journal
                    .append(Bytes::from_static(body.as_bytes()))
                    .await
                    .unwrap(),
            );
        }
        ids
    }

    fn bodies(replay: &Replay) -> Vec<&[u8]> {
        replay.records.iter().map(|r| &r.body[..]).collect()
    }

    #[tokio::test]
    async fn ids_are_contiguous_from_one_in_this_epoch() {
        let journal = MemoryJournal::new(retention(10));
        let ids = append_all(&journal, &["a", "b", "c"]).await;
        let expected: Vec<JournalId> = (1..=3)
            .map(|seq| JournalId {
                epoch: journal.epoch(),
                offset: Offset::Seq(seq),
            })
            .collect();
        assert_eq!(ids, expected);
        let replay = journal.replay(ReplayFrom::Earliest, 10).await.unwrap();
        assert_eq!(replay.records.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
        assert_eq!(replay.head, Some(ids[2]));
    }

    #[tokio::test]
    async fn replay_after_a_retained_id_pages_through_the_rest() {
        let journal = MemoryJournal::new(retention(10));
        let ids = append_all(&journal, &["a", "b", "c", "d", "e"]).await;
        let page = journal.replay(ReplayFrom::After(ids[0]), 2).await.unwrap();
        assert_eq!(bodies(&page), [b"b", b"c"]);
        assert!(!page.gap);
        assert!(page.more());
        let page = journal.replay(page.next_page().unwrap(), 2).await.unwrap();
        assert_eq!(bodies(&page), [b"d", b"e"]);
        assert!(!page.more());
        // After the latest: nothing, no gap.
        let page = journal.replay(ReplayFrom::After(ids[4]), 2).await.unwrap();
        assert!(page.records.is_empty());
        assert!(!page.gap);
        assert_eq!(page.head, Some(ids[4]));
        // A page of zero records still tells the rule.
        let page = journal.replay(ReplayFrom::After(ids[1]), 0).await.unwrap();
        assert!(page.records.is_empty() && !page.gap);
    }

    #[tokio::test]
    async fn replay_of_an_unknown_id_is_a_gap_from_the_earliest() {
        let journal = MemoryJournal::new(retention(10));
        let ids = append_all(&journal, &["a", "b"]).await;
        let epoch = journal.epoch();
        let unknown = [
            // Another epoch.
            JournalId {
                epoch: epoch.wrapping_add(1),
                ..ids[0]
            },
            // Never issued: before the first, after the latest.
            JournalId {
                epoch,
                offset: Offset::Seq(0),
            },
            JournalId {
                epoch,
                offset: Offset::Seq(3),
            },
            // Another engine's shape.
            JournalId {
                epoch,
                offset: Offset::Stream { ms: 1, seq: 1 },
            },
        ];
        for id in unknown {
            let replay = journal.replay(ReplayFrom::After(id), 10).await.unwrap();
            assert!(replay.gap, "{id}");
            assert_eq!(bodies(&replay), [b"a", b"b"], "{id}");
        }
        let earliest = journal.replay(ReplayFrom::Earliest, 10).await.unwrap();
        assert!(!earliest.gap);
    }

    #[tokio::test]
    async fn replay_past_the_retained_records_is_a_gap_exactly_when_one_is_lost() {
        let journal = MemoryJournal::new(retention(2));
        let ids = append_all(&journal, &["a", "b", "c", "d"]).await;
        // Retained: c, d. After a: b is lost. After b: nothing is lost.
        let after_a = journal.replay(ReplayFrom::After(ids[0]), 10).await.unwrap();
        assert!(after_a.gap);
        assert_eq!(bodies(&after_a), [b"c", b"d"]);
        let after_b = journal.replay(ReplayFrom::After(ids[1]), 10).await.unwrap();
        assert!(!after_b.gap);
        assert_eq!(bodies(&after_b), [b"c", b"d"]);
    }

    #[tokio::test]
    async fn byte_bound_drops_the_oldest_and_refuses_what_could_never_fit() {
        let journal = MemoryJournal::new(Retention {
            max_records: 100,
            max_bytes: Some(5),
            max_age: None,
        });
        let ids = append_all(&journal, &["aa", "bb", "cc"]).await;
        let replay = journal.replay(ReplayFrom::Earliest, 10).await.unwrap();
        assert_eq!(bodies(&replay), [b"bb", b"cc"]);
        assert!(
            !journal
                .replay(ReplayFrom::After(ids[0]), 10)
                .await
                .unwrap()
                .gap
        );
        let ids = [ids, append_all(&journal, &["ddd"]).await].concat();
        let replay = journal.replay(ReplayFrom::Earliest, 10).await.unwrap();
        assert_eq!(bodies(&replay), [&b"cc"[..], b"ddd"]);
        assert!(
            journal
                .replay(ReplayFrom::After(ids[0]), 10)
                .await
                .unwrap()
                .gap
        );
        let err = journal.append(Bytes::from("toolong")).await.unwrap_err();
        assert!(
            matches!(err, JournalError::TooLarge { size: 7, max: 5 }),
            "{err:?}"
        );
        // Nothing was appended.
        let replay = journal.replay(ReplayFrom::Earliest, 10).await.unwrap();
        assert_eq!(replay.head, Some(ids[3]));
    }

    #[tokio::test(start_paused = true)]
    async fn age_bound_expires_records_even_without_appends() {
        let journal = MemoryJournal::new(Retention {
            max_records: 100,
            max_bytes: None,
            max_age: Some(Duration::from_secs(10)),
        });
        let ids = append_all(&journal, &["old"]).await;
        tokio::time::advance(Duration::from_secs(6)).await;
        append_all(&journal, &["new"]).await;
        tokio::time::advance(Duration::from_secs(5)).await;
        // "old" is 11 s old, "new" 5 s.
        let replay = journal.replay(ReplayFrom::Earliest, 10).await.unwrap();
        assert_eq!(bodies(&replay), [b"new"]);
        let after_old = journal.replay(ReplayFrom::After(ids[0]), 10).await.unwrap();
        assert!(!after_old.gap, "nothing after \"old\" is lost");
        tokio::time::advance(Duration::from_secs(5)).await;
        let replay = journal.replay(ReplayFrom::Earliest, 10).await.unwrap();
        assert!(replay.records.is_empty());
        assert!(
            journal
                .replay(ReplayFrom::After(ids[0]), 10)
                .await
                .unwrap()
                .gap
        );
    }

    #[tokio::test]
    async fn zero_records_retained_still_reaches_followers() {
        let journal = MemoryJournal::new(retention(0));
        let log = Arc::new(Log::default());
        let _following = journal.follow(FollowFrom::Latest, log.clone());
        let ids = append_all(&journal, &["a", "b"]).await;
        assert_eq!(log.bodies(), ["a", "b"]);
        let replay = journal.replay(ReplayFrom::After(ids[1]), 10).await.unwrap();
        assert!(replay.records.is_empty() && !replay.gap);
        assert!(
            journal
                .replay(ReplayFrom::After(ids[0]), 10)
                .await
                .unwrap()
                .gap
        );
    }

    #[tokio::test]
    async fn follow_from_now_sees_later_appends_in_order_exactly_once() {
        let journal = MemoryJournal::new(retention(10));
        append_all(&journal, &["before"]).await;
        let log = Arc::new(Log::default());
        let _following = journal.follow(FollowFrom::Latest, log.clone());
        let ids = append_all(&journal, &["a", "b"]).await;
        assert_eq!(
            log.take(),
            [
                Seen::Up,
                Seen::Record(ids[0], Bytes::from("a")),
                Seen::Record(ids[1], Bytes::from("b")),
            ]
        );
    }

    #[tokio::test]
    async fn follow_from_an_id_catches_up_then_goes_live() {
        let journal = MemoryJournal::new(retention(10));
        let ids = append_all(&journal, &["a", "b", "c"]).await;
        let log = Arc::new(Log::default());
        let _following = journal.follow(FollowFrom::After(ids[0]), log.clone());
        append_all(&journal, &["d"]).await;
        let seen = log.take();
        assert_eq!(seen[0], Seen::Up);
        assert_eq!(
            seen[1..].iter().filter(|s| **s == Seen::Gap).count(),
            0,
            "{seen:?}"
        );
        let bodies: Vec<_> = seen[1..]
            .iter()
            .map(|s| match s {
                Seen::Record(_, b) => b.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(bodies, ["b", "c", "d"]);
    }

    #[tokio::test]
    async fn follow_from_a_lost_id_signals_the_gap_before_the_earliest() {
        let journal = MemoryJournal::new(retention(1));
        let ids = append_all(&journal, &["a", "b", "c"]).await;
        let log = Arc::new(Log::default());
        let _following = journal.follow(FollowFrom::After(ids[0]), log.clone());
        assert_eq!(
            log.take(),
            [Seen::Up, Seen::Gap, Seen::Record(ids[2], Bytes::from("c"))]
        );
    }

    #[tokio::test]
    async fn dropping_following_stops_delivery() {
        let journal = MemoryJournal::new(retention(10));
        let stopped = Arc::new(Log::default());
        let kept = Arc::new(Log::default());
        let following = journal.follow(FollowFrom::Latest, stopped.clone());
        let _kept = journal.follow(FollowFrom::Latest, kept.clone());
        append_all(&journal, &["a"]).await;
        drop(following);
        append_all(&journal, &["b"]).await;
        assert_eq!(stopped.bodies(), ["a"]);
        assert_eq!(kept.bodies(), ["a", "b"]);
        // A handle that outlives its journal is harmless.
        let gone = MemoryJournal::new(retention(1));
        let following = gone.follow(FollowFrom::Latest, Arc::new(Log::default()));
        drop(gone);
        drop(following);
    }

    /// Appends racing from many threads: every follower sees each record
    /// once, all in the same order, and that order is the ids' order.
    #[test]
    fn concurrent_appends_reach_every_follower_in_one_total_order() {
        let journal = Arc::new(MemoryJournal::new(retention(10_000)));
        let logs: Vec<Arc<Log>> = (0..3).map(|_| Arc::new(Log::default())).collect();
        let _following: Vec<Following> = logs
            .iter()
            .map(|log| journal.follow(FollowFrom::Latest, log.clone()))
            .collect();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let journal = journal.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    for i in 0..250 {
                        rt.block_on(journal.append(Bytes::from(format!("{t}:{i}"))))
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let first = logs[0].take();
        assert_eq!(first.len(), 1 + 1000);
        let ids: Vec<u64> = first[1..]
            .iter()
            .map(|s| match s {
                Seen::Record(
                    JournalId {
                        offset: Offset::Seq(seq),
                        ..
                    },
                    _,
                ) => *seq,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, (1..=1000).collect::<Vec<_>>());
        // Each appender's records in its own order, none twice.
        for t in 0..4 {
            let prefix = format!("{t}:");
            let mine: Vec<String> = first
                .iter()
                .filter_map(|s| match s {
                    Seen::Record(_, b) => Some(String::from_utf8(b.to_vec()).unwrap()),
                    _ => None,
                })
                .filter(|b| b.starts_with(&prefix))
                .collect();
            let expected: Vec<String> = (0..250).map(|i| format!("{t}:{i}")).collect();
            assert_eq!(mine, expected);
        }
        for log in &logs[1..] {
            assert_eq!(log.take(), first);
        }
    }
}
