//! An ordered, retained log of updates: the one history several processes
//! share.
//!
//! A publish *appends* a record to the journal; every process *follows*
//! the journal in order and fans each record out to its own clients; the
//! retained tail of the journal is the replay history; a `Last-Event-ID`
//! is a position in the journal ([`JournalId`]). Processes that follow one
//! journal see every record exactly once and all in the same order, whoever
//! appended it.
//!
//! The journal never looks inside a [`Record`]'s body: its users encode
//! what they need (topics, a private flag, the encoded SSE frame…).
//!
//! # Engines
//!
//! - [`MemoryJournal`]: one process, nothing to install. A ring bounded by
//!   a [`Retention`]; followers are called inline by the append.
//! - `RedisJournal` (feature `redis`): a Redis stream shared by any number
//!   of processes. An append is one round trip; each follower is one
//!   blocking read loop per process, so the work per record does not grow
//!   with the number of clients or topics.
//!
//! Other engines fit the same [`Journal`] trait: a NATS JetStream stream
//! (the stream sequence is an [`Offset::Seq`], `max_msgs`/`max_age` are the
//! retention, an ordered push consumer follows), a single-partition Kafka
//! topic (the partition offset is the `Offset::Seq`, retention is the
//! topic's, the epoch changes when the topic is recreated), or a PostgreSQL
//! table with a `bigserial` key (`LISTEN`/`NOTIFY` wakes the followers,
//! which then read by key range). Each needs a way to tell that its data was
//! lost — the epoch — and a position order that is total.
//!
//! # Positions and epochs
//!
//! Every id carries the journal's *epoch*, a random number fixed when the
//! journal's storage is created. When the storage loses its data (a memory
//! journal is a new one in every process, a Redis that restarted without
//! persistence), the epoch changes, so an id from before the loss is
//! recognised as unknown instead of being mistaken for a position in the
//! new log: [`Journal::replay`] then reports a gap, never a silent hole.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use bytes::Bytes;
//! use ssehub::journal::{Journal, MemoryJournal, ReplayFrom, Retention};
//!
//! let journal = MemoryJournal::new(Retention::default());
//! let first = journal.append(Bytes::from("one")).await.unwrap();
//! journal.append(Bytes::from("two")).await.unwrap();
//!
//! // A client that saw `first` resumes after it.
//! let id: ssehub::journal::JournalId = first.to_string().parse().unwrap();
//! let replay = journal.replay(ReplayFrom::After(id), 100).await.unwrap();
//! assert!(!replay.gap);
//! assert_eq!(replay.records.len(), 1);
//! assert_eq!(replay.records[0].body, "two");
//! # }
//! ```

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::error::Error as StdError;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

#[cfg(feature = "redis")]
pub use self::redis::{RedisJournal, RedisJournalConfig};
pub use futures_core::future::BoxFuture;
pub use memory::MemoryJournal;

/// A position in a journal: its epoch and an offset in that epoch's log.
///
/// Written as `EEEEEEEE-S` (an [`Offset::Seq`]) or `EEEEEEEE-MS-SEQ` (an
/// [`Offset::Stream`]): the epoch as 8 lowercase hex digits, then decimal
/// numbers without leading zeros. That is visible ASCII only, at most
/// [`JournalId::MAX_LEN`] bytes, with none of the bytes that make a
/// cross-origin `Last-Event-ID` header need a CORS preflight, and every id
/// has exactly one written form, so [`Display`](fmt::Display) and
/// [`FromStr`] round-trip.
///
/// Ids of one journal and one epoch are ordered like the log; comparing ids
/// of different epochs or engines tells nothing.
///
/// ```
/// use ssehub::journal::{JournalId, Offset};
///
/// let id = JournalId { epoch: 0x2a, offset: Offset::Seq(7) };
/// assert_eq!(id.to_string(), "0000002a-7");
/// assert_eq!("0000002a-7".parse::<JournalId>(), Ok(id));
///
/// let id: JournalId = "0000002a-1700000000000-3".parse().unwrap();
/// assert_eq!(id.offset, Offset::Stream { ms: 1_700_000_000_000, seq: 3 });
/// assert!("0000002A-7".parse::<JournalId>().is_err()); // not the written form
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JournalId {
    /// The epoch of the log this position belongs to.
    pub epoch: u32,
    /// The position in that log.
    pub offset: Offset,
}

impl JournalId {
    /// The longest written id: `EEEEEEEE-` and two 20-digit numbers.
    ///
    /// ```
    /// use ssehub::journal::{JournalId, Offset};
    ///
    /// let id = JournalId { epoch: u32::MAX, offset: Offset::Stream { ms: u64::MAX, seq: u64::MAX } };
    /// assert_eq!(id.to_string().len(), JournalId::MAX_LEN);
    /// ```
    pub const MAX_LEN: usize = 8 + 1 + 20 + 1 + 20;

    /// Writes the id's text (what [`Display`](fmt::Display) shows) into
    /// `buf` and returns it: no allocation and no formatting machinery, for
    /// the paths that write one per update.
    ///
    /// ```
    /// use ssehub::journal::{JournalId, Offset};
    ///
    /// let id = JournalId { epoch: 0xabc, offset: Offset::Stream { ms: 17, seq: 3 } };
    /// let mut buf = [0; JournalId::MAX_LEN];
    /// assert_eq!(id.write_text(&mut buf), "00000abc-17-3");
    /// assert_eq!(id.write_text(&mut buf), id.to_string());
    /// ```
    pub fn write_text<'b>(&self, buf: &'b mut [u8; Self::MAX_LEN]) -> &'b str {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, out) in buf[..8].iter_mut().enumerate() {
            *out = HEX[(self.epoch >> (28 - 4 * i)) as usize & 0xf];
        }
        let mut len = 8;
        let mut number = |n: u64, buf: &mut [u8; Self::MAX_LEN]| {
            let mut digits = itoa::Buffer::new();
            let digits = digits.format(n).as_bytes();
            buf[len] = b'-';
            buf[len + 1..len + 1 + digits.len()].copy_from_slice(digits);
            len += 1 + digits.len();
        };
        match self.offset {
            Offset::Seq(seq) => number(seq, buf),
            Offset::Stream { ms, seq } => {
                number(ms, buf);
                number(seq, buf);
            }
        }
        // Hex digits, dashes and decimal digits only.
        std::str::from_utf8(&buf[..len]).unwrap_or_default()
    }
}

/// Where a record sits in its epoch's log. Its shape is the engine's.
///
/// ```
/// use ssehub::journal::Offset;
///
/// assert!(Offset::Seq(1) < Offset::Seq(2));
/// assert!(Offset::Stream { ms: 5, seq: 9 } < Offset::Stream { ms: 6, seq: 0 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Offset {
    /// A contiguous sequence number, from 1 ([`MemoryJournal`]; the shape
    /// of a NATS stream sequence, a Kafka offset or a `bigserial`).
    Seq(u64),
    /// A Redis stream entry id: milliseconds and a sequence within them.
    Stream {
        /// The entry's milliseconds part.
        ms: u64,
        /// The entry's sequence part.
        seq: u64,
    },
}

impl fmt::Display for JournalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.write_text(&mut [0; Self::MAX_LEN]))
    }
}

/// A string that is not a written [`JournalId`].
///
/// ```
/// use ssehub::journal::{JournalId, ParseIdError};
///
/// assert_eq!("earliest".parse::<JournalId>(), Err(ParseIdError::Shape));
/// assert_eq!("0000zz00-1".parse::<JournalId>(), Err(ParseIdError::Epoch));
/// assert_eq!("00000000-01".parse::<JournalId>(), Err(ParseIdError::Offset));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseIdError {
    /// Not two or three dash-separated parts.
    #[error("a journal id is EEEEEEEE-N or EEEEEEEE-N-N")]
    Shape,
    /// The epoch is not 8 lowercase hex digits.
    #[error("a journal id's epoch is 8 lowercase hex digits")]
    Epoch,
    /// An offset part is not a decimal `u64` without leading zeros.
    #[error("a journal id's offset is decimal without leading zeros")]
    Offset,
}

impl FromStr for JournalId {
    type Err = ParseIdError;

    // By hand over the bytes: every resume and every timed write parses one.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        let Some(dash) = s.iter().position(|&b| b == b'-') else {
            return Err(ParseIdError::Shape);
        };
        let (epoch, rest) = (&s[..dash], &s[dash + 1..]);
        let (first, second) = match rest.iter().position(|&b| b == b'-') {
            Some(dash) => (&rest[..dash], Some(&rest[dash + 1..])),
            None => (rest, None),
        };
        if second.is_some_and(|second| second.contains(&b'-')) {
            return Err(ParseIdError::Shape);
        }
        let epoch = parse_epoch(epoch).ok_or(ParseIdError::Epoch)?;
        let first = parse_decimal(first)?;
        let offset = match second {
            None => Offset::Seq(first),
            Some(second) => Offset::Stream {
                ms: first,
                seq: parse_decimal(second)?,
            },
        };
        Ok(Self { epoch, offset })
    }
}

/// Exactly 8 lowercase hex digits (an epoch as ids and keys write it).
pub(crate) fn parse_epoch(s: &[u8]) -> Option<u32> {
    if s.len() != 8 {
        return None;
    }
    s.iter().try_fold(0u32, |epoch, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(epoch << 4 | u32::from(digit))
    })
}

/// A canonical decimal `u64`: digits only, no leading zero but for "0".
fn parse_decimal(s: &[u8]) -> Result<u64, ParseIdError> {
    if s.is_empty() || (s.len() > 1 && s[0] == b'0') {
        return Err(ParseIdError::Offset);
    }
    s.iter()
        .try_fold(0u64, |n, &b| {
            let digit = b.wrapping_sub(b'0');
            (digit < 10)
                .then(|| n.checked_mul(10)?.checked_add(u64::from(digit)))
                .flatten()
        })
        .ok_or(ParseIdError::Offset)
}

/// One appended record: where it is, and the bytes its appender gave.
///
/// ```
/// use bytes::Bytes;
/// use ssehub::journal::{JournalId, Offset, Record};
///
/// let record = Record { id: JournalId { epoch: 1, offset: Offset::Seq(1) }, body: Bytes::from("x") };
/// assert_eq!(record.body, "x");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its position.
    pub id: JournalId,
    /// Its body, opaque to the journal.
    pub body: Bytes,
}

/// How much of the log stays replayable.
///
/// A record is dropped from the replay history when any bound is exceeded;
/// followers still receive every record. How each engine applies the
/// bounds:
///
/// - `max_records`: exact in memory. Redis trims approximately (`MAXLEN ~`,
///   whole internal nodes at a time), so it keeps *at least* this many.
///   Followers of a Redis journal read records after they were appended,
///   so this must also cover how far behind a follower may fall (a follower
///   that falls further is told [`FollowState::Gap`]).
/// - `max_bytes`: memory only, the sum of retained bodies; a larger body is
///   refused ([`JournalError::TooLarge`]). Redis ignores it: its memory is
///   bounded by `max_records` and by Redis's own `maxmemory`.
/// - `max_age`: both engines; Redis trims by entry id (`MINID ~`) and
///   replays nothing older, whether trimmed yet or not.
///
/// ```
/// use std::time::Duration;
/// use ssehub::journal::Retention;
///
/// let retention = Retention { max_records: 1000, max_age: Some(Duration::from_secs(60)), ..Retention::default() };
/// assert_eq!(retention.max_bytes, Retention::default().max_bytes);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Records kept.
    pub max_records: usize,
    /// Body bytes kept (memory only).
    pub max_bytes: Option<usize>,
    /// How long a record stays replayable.
    pub max_age: Option<Duration>,
}

impl Default for Retention {
    /// 10 000 records, 16 MiB, 15 minutes: the hub's defaults.
    fn default() -> Self {
        Self {
            max_records: 10_000,
            max_bytes: Some(16 << 20),
            max_age: Some(Duration::from_secs(15 * 60)),
        }
    }
}

/// Where a replay starts.
///
/// ```
/// use ssehub::journal::{JournalId, ReplayFrom};
///
/// let from = match "0000002a-7".parse::<JournalId>() {
///     Ok(id) => ReplayFrom::After(id),
///     Err(_) => ReplayFrom::Earliest,
/// };
/// assert!(matches!(from, ReplayFrom::After(_)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// From the oldest retained record.
    Earliest,
    /// After this position.
    After(JournalId),
}

/// Where following starts ([`Journal::follow`]).
///
/// ```
/// use ssehub::journal::{FollowFrom, Replay};
///
/// // Follow on from where a read of the log ended: after its head, or from
/// // the very start when it was empty, so that nothing appended between the
/// // read and the follower's first contact with the engine is missed.
/// let page = Replay { records: Vec::new(), gap: false, head: None };
/// let from = page.head.map_or(FollowFrom::Earliest, FollowFrom::After);
/// assert_eq!(from, FollowFrom::Earliest);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowFrom {
    /// Records appended after the follower first reached the engine.
    Latest,
    /// Every retained record, then the rest.
    Earliest,
    /// Records after this position (from the earliest retained, after a
    /// `Gap`, when it is no longer retained).
    After(JournalId),
}

/// One page of a replay.
///
/// The rule, for every engine: after an id that is still retained (or the
/// latest one), the records after it; after an id of another epoch, one no
/// longer retained, or one the journal never issued: `gap` is set and the
/// records come from the earliest retained. Never a silent hole.
///
/// "No longer retained" is exact in memory (a gap only when a record after
/// the id was dropped). Redis cannot tell which records followed an entry
/// it trimmed, so an id that was itself trimmed is a gap there.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use bytes::Bytes;
/// use ssehub::journal::{Journal, MemoryJournal, ReplayFrom, Retention};
///
/// let journal = MemoryJournal::new(Retention::default());
/// for n in 0..5 {
///     journal.append(Bytes::from(n.to_string())).await.unwrap();
/// }
/// // Page through everything, two records at a time.
/// let mut seen = Vec::new();
/// let mut from = ReplayFrom::Earliest;
/// loop {
///     let page = journal.replay(from, 2).await.unwrap();
///     seen.extend(page.records.iter().map(|r| r.body.clone()));
///     match page.next_page() {
///         Some(next) => from = next,
///         None => break,
///     }
/// }
/// assert_eq!(seen, ["0", "1", "2", "3", "4"]);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The records, in log order, at most the `max` asked for.
    pub records: Vec<Record>,
    /// Records after the requested position are lost (or the position is
    /// unknown): `records` start at the earliest retained one.
    pub gap: bool,
    /// The latest position of the log when the page was read (`None` while
    /// nothing was appended in this epoch), whether retained or not. A
    /// client that received nothing new resumes from here.
    pub head: Option<JournalId>,
}

impl Replay {
    /// More records follow this page.
    ///
    /// ```
    /// use ssehub::journal::Replay;
    ///
    /// let empty = Replay { records: Vec::new(), gap: false, head: None };
    /// assert!(!empty.more());
    /// ```
    pub fn more(&self) -> bool {
        self.records.last().is_some_and(|r| Some(r.id) != self.head)
    }

    /// Where the next page starts, when [`more`](Self::more) records follow.
    ///
    /// ```
    /// use ssehub::journal::Replay;
    ///
    /// let empty = Replay { records: Vec::new(), gap: true, head: None };
    /// assert_eq!(empty.next_page(), None);
    /// ```
    pub fn next_page(&self) -> Option<ReplayFrom> {
        match self.records.last() {
            Some(last) if self.more() => Some(ReplayFrom::After(last.id)),
            _ => None,
        }
    }
}

/// What a follower is told besides records.
///
/// ```
/// use ssehub::journal::FollowState;
///
/// let state = FollowState::Reset { epoch: 7 };
/// assert!(matches!(state, FollowState::Reset { epoch: 7 }));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FollowState {
    /// Following is live: when it starts, and again after a [`Down`].
    ///
    /// [`Down`]: FollowState::Down
    Up,
    /// The engine is unreachable. Records appended meanwhile arrive after
    /// the next `Up`, from where delivery stopped.
    Down(JournalError),
    /// The engine lost its data and started a new log with this epoch.
    /// The records that follow are the new log's, from its start; ids of
    /// earlier epochs are unknown to it.
    Reset {
        /// The new log's epoch.
        epoch: u32,
    },
    /// Records between the last one delivered and the next were dropped
    /// before this follower read them (it fell behind the retention, or the
    /// position it asked to follow from is no longer retained). Delivery
    /// goes on with the next retained record.
    Gap,
}

/// Receives a journal's records, in log order, exactly once each.
///
/// Calls are serialized and must return quickly: they run inline in
/// [`Journal::append`] for a [`MemoryJournal`] (with its lock held, so a
/// follower must not call back into that journal) and on the one reader
/// task of a `RedisJournal`. Hand the records to a queue or a broker; do
/// not wait in here.
///
/// ```
/// use std::sync::Mutex;
/// use ssehub::journal::{FollowState, Follower, Record};
///
/// #[derive(Default)]
/// struct Collect(Mutex<Vec<Record>>);
///
/// impl Follower for Collect {
///     fn records(&self, records: &[Record]) {
///         self.0.lock().unwrap().extend_from_slice(records);
///     }
///     fn state(&self, state: FollowState) {
///         eprintln!("journal: {state:?}");
///     }
/// }
/// ```
pub trait Follower: Send + Sync + 'static {
    /// The next records of the log (one or more, in order).
    fn records(&self, records: &[Record]);

    /// A change of state, delivered between the records it concerns.
    fn state(&self, state: FollowState);
}

/// A running [`Journal::follow`]. Dropping it stops following.
///
/// ```
/// use ssehub::journal::Following;
///
/// let following = Following::new(|| eprintln!("stopped"));
/// drop(following); // prints "stopped"
/// ```
#[must_use = "dropping a Following stops it"]
pub struct Following {
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl Following {
    /// A handle that runs `stop` when dropped (for engines).
    pub fn new(stop: impl FnOnce() + Send + 'static) -> Self {
        Self {
            stop: Some(Box::new(stop)),
        }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

impl fmt::Debug for Following {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Following").finish_non_exhaustive()
    }
}

/// An ordered, retained log of records. Used as `Arc<dyn Journal>`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::{Arc, Mutex};
/// use bytes::Bytes;
/// use ssehub::journal::{FollowFrom, FollowState, Follower, Journal, MemoryJournal, Record, Retention};
///
/// #[derive(Default)]
/// struct Collect(Mutex<Vec<Bytes>>);
/// impl Follower for Collect {
///     fn records(&self, records: &[Record]) {
///         self.0.lock().unwrap().extend(records.iter().map(|r| r.body.clone()));
///     }
///     fn state(&self, _: FollowState) {}
/// }
///
/// let journal: Arc<dyn Journal> = Arc::new(MemoryJournal::new(Retention::default()));
/// journal.ready().await.unwrap();
/// journal.append(Bytes::from("before")).await.unwrap();
/// let seen = Arc::new(Collect::default());
/// let following = journal.follow(FollowFrom::Latest, seen.clone());
/// journal.append(Bytes::from("after")).await.unwrap();
/// drop(following);
/// journal.append(Bytes::from("unseen")).await.unwrap();
/// assert_eq!(*seen.0.lock().unwrap(), ["after"]);
/// # }
/// ```
pub trait Journal: Send + Sync + fmt::Debug + 'static {
    /// Appends a record; resolves with its id once the engine stored it
    /// (for Redis: the server acknowledged the write).
    ///
    /// An error means the record was not acknowledged. With a remote engine
    /// it may still have been stored (the reply was lost), in which case
    /// followers receive it like any other.
    fn append(&self, body: Bytes) -> BoxFuture<'_, Result<JournalId, JournalError>>;

    /// Up to `max` records from `from`, by the rule described on [`Replay`].
    fn replay(&self, from: ReplayFrom, max: usize) -> BoxFuture<'_, Result<Replay, JournalError>>;

    /// Delivers to `follower` every record from `from` on (see
    /// [`FollowFrom`]), in log order, exactly once, across
    /// reconnections, with the [`FollowState`] changes in between: `Up`
    /// first once following is live (`Down` first when the engine cannot
    /// be reached yet), `Gap` right after it if a `from` position is no
    /// longer retained (then the records come from the earliest retained).
    /// Following stops when the returned handle is dropped; a call already
    /// running on another thread then completes.
    fn follow(&self, from: FollowFrom, follower: Arc<dyn Follower>) -> Following;

    /// Whether appends can be stored now (a readiness probe).
    fn ready(&self) -> BoxFuture<'_, Result<(), JournalError>>;
}

/// Why a journal operation failed. Nothing a peer or an engine does makes
/// a journal panic; it answers one of these.
///
/// ```
/// use ssehub::journal::JournalError;
///
/// let err = JournalError::unavailable(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
/// assert!(matches!(err, JournalError::Unavailable(_)));
/// assert!(std::error::Error::source(&err).is_some());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The engine cannot be reached or cannot serve now (connection
    /// refused or lost, timeout, loading its data). Worth retrying later.
    #[error("journal unavailable: {0}")]
    Unavailable(#[source] Arc<dyn StdError + Send + Sync>),
    /// The body is larger than the journal accepts.
    #[error("record of {size} bytes exceeds the journal's limit of {max}")]
    TooLarge {
        /// The body's length.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The engine refused the request or answered something unexpected
    /// (wrong key type, a script error); retrying will not help.
    #[error("journal engine error: {0}")]
    Engine(#[source] Arc<dyn StdError + Send + Sync>),
    /// The journal's configuration cannot work (a malformed URL, an empty
    /// key, no runtime to run on).
    #[error("invalid journal configuration: {0}")]
    Config(String),
}

impl JournalError {
    /// An [`Unavailable`](Self::Unavailable) error caused by `source`.
    pub fn unavailable(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Unavailable(Arc::from(source.into()))
    }

    /// An [`Engine`](Self::Engine) error caused by `source`.
    ///
    /// ```
    /// use ssehub::journal::JournalError;
    ///
    /// let err = JournalError::engine("unexpected reply");
    /// assert_eq!(err.to_string(), "journal engine error: unexpected reply");
    /// ```
    pub fn engine(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Engine(Arc::from(source.into()))
    }
}

/// A fresh epoch: differs between journals and across restarts.
fn new_epoch() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's randomness per process and
    // advanced per instance; mixing in the time separates restarts even if
    // a platform seeded it weakly.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    let h = hasher.finish();
    (h ^ (h >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn offsets() -> impl Strategy<Value = Offset> {
        prop_oneof![
            any::<u64>().prop_map(Offset::Seq),
            (any::<u64>(), any::<u64>()).prop_map(|(ms, seq)| Offset::Stream { ms, seq }),
        ]
    }

    proptest! {
        /// Every id is short, visible ASCII without CORS-unsafe bytes, and
        /// parses back to itself.
        #[test]
        fn ids_are_safe_and_round_trip(epoch: u32, offset in offsets()) {
            let id = JournalId { epoch, offset };
            let text = id.to_string();
            // The shape the docs give, written by hand for speed.
            let documented = match offset {
                Offset::Seq(seq) => format!("{epoch:08x}-{seq}"),
                Offset::Stream { ms, seq } => format!("{epoch:08x}-{ms}-{seq}"),
            };
            prop_assert_eq!(&text, &documented);
            prop_assert!(text.len() <= JournalId::MAX_LEN);
            prop_assert!(text.bytes().all(|b| (0x21..=0x7e).contains(&b)));
            let unsafe_bytes: &[u8] = b"\"():<>?@[\\]{}";
            prop_assert!(!text.bytes().any(|b| unsafe_bytes.contains(&b)), "unsafe byte in {}", text);
            prop_assert_eq!(text.parse::<JournalId>(), Ok(id));
        }

        /// Parsing never panics, and whatever parses is written back the same.
        #[test]
        fn parsing_arbitrary_text_is_canonical(text in "[0-9a-fA-F+-]{0,60}") {
            if let Ok(id) = text.parse::<JournalId>() {
                prop_assert_eq!(id.to_string(), text);
            }
        }

        /// Ids of one epoch order like their offsets.
        #[test]
        fn ids_order_like_offsets(epoch: u32, a: u64, b: u64) {
            let ia = JournalId { epoch, offset: Offset::Seq(a) };
            let ib = JournalId { epoch, offset: Offset::Seq(b) };
            prop_assert_eq!(ia.cmp(&ib), a.cmp(&b));
        }
    }

    #[test]
    fn malformed_ids_are_typed_errors() {
        use ParseIdError::{Epoch, Offset as BadOffset, Shape};
        for (text, err) in [
            ("", Shape),
            ("earliest", Shape),
            ("0000002a", Shape),
            ("0000002a-1-2-3", Shape),
            ("2a-1", Epoch),
            ("0000002A-1", Epoch),
            ("+000002a-1", Epoch),
            ("0000002a0-1", Epoch),
            ("0000002a-", BadOffset),
            ("0000002a-01", BadOffset),
            ("0000002a-+1", BadOffset),
            ("0000002a-1x", BadOffset),
            ("0000002a-1-", BadOffset),
            ("0000002a-18446744073709551616", BadOffset),
            ("0000002a-١", BadOffset),
        ] {
            assert_eq!(text.parse::<JournalId>(), Err(err), "{text:?}");
        }
        assert_eq!(
            "ffffffff-0-0".parse::<JournalId>(),
            Ok(JournalId {
                epoch: u32::MAX,
                offset: Offset::Stream { ms: 0, seq: 0 }
            })
        );
    }

    #[test]
    fn a_page_knows_whether_more_follow() {
        let id = |seq| JournalId {
            epoch: 1,
            offset: Offset::Seq(seq),
        };
        let record = |seq| Record {
            id: id(seq),
            body: Bytes::new(),
        };
        let page = Replay {
            records: vec![record(1), record(2)],
            gap: false,
            head: Some(id(3)),
        };
        assert!(page.more());
        assert_eq!(page.next_page(), Some(ReplayFrom::After(id(2))));
        let last = Replay {
            records: vec![record(3)],
            gap: false,
            head: Some(id(3)),
        };
        assert!(!last.more());
        assert_eq!(last.next_page(), None);
    }

    #[test]
    fn epochs_differ() {
        assert_ne!(new_epoch(), new_epoch());
    }

    #[test]
    fn following_runs_its_stop_once_when_dropped() {
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        let following = Following::new(move || {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
        drop(following);
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
