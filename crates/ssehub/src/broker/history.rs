//! Replay history: what a reconnecting client missed.
//!
//! Every replayable event a broker publishes on a channel is recorded in a
//! [`HistoryStore`] together with its *position*: the broker-wide publish
//! order, which rises across all channels. A client that reconnects with a
//! `Last-Event-ID` is resumed after the position that id names, on every
//! channel it subscribes to during its setup. [`MemoryHistory`] is the
//! in-memory store; a store shared by several broker nodes implements the
//! same trait.
//!
//! Bounds: the number of events and bytes are **per channel**, so a busy
//! channel cannot evict a quiet channel's history; the age is
//! **broker-wide**, since "how long may a client be away and still resume"
//! is one promise to every client.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

/// One recorded event.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// Broker-wide publish position (rises across channels).
    pub position: u64,
    /// The event's id, as written on the wire (caller-supplied or generated).
    pub id: Option<Arc<str>>,
    /// The encoded frame, shared with live delivery.
    pub frame: Bytes,
    /// When it was published.
    pub published_at: Instant,
}

/// Some events after the requested position are no longer in the history
/// (evicted by its bounds), so a replay would have a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("history lost: events after the requested position were evicted")]
pub struct HistoryGap;

/// Where replay history lives. Implementations must be cheap to call under
/// the broker's publish lock: `record` is called once per replayable
/// event, in publish order.
///
/// ```
/// use ssehub::broker::{HistoryStore, MemoryHistory, HistoryConfig};
///
/// let history = MemoryHistory::new(HistoryConfig::default());
/// assert!(history.replay("news", Some(0), 10).unwrap().is_empty());
/// ```
pub trait HistoryStore: Send + Sync + fmt::Debug + 'static {
    /// Records an event published on `channel`.
    fn record(&self, channel: &str, entry: HistoryEntry);

    /// The events of `channel` with a position after `after` (all retained
    /// ones for `None`) and at most `until`, in order.
    ///
    /// # Errors
    /// [`HistoryGap`] when some event after `after` was evicted.
    fn replay(
        &self,
        channel: &str,
        after: Option<u64>,
        until: u64,
    ) -> Result<Vec<HistoryEntry>, HistoryGap>;

    /// The position of the retained event whose caller-supplied id is `id`.
    fn resolve(&self, id: &str) -> Option<u64>;

    /// Forgets a deleted channel's history.
    fn forget(&self, channel: &str);
}

/// Bounds of a [`MemoryHistory`].
///
/// ```
/// use std::time::Duration;
/// use ssehub::broker::HistoryConfig;
///
/// let config = HistoryConfig::default()
///     .max_events(500)
///     .max_bytes(256 * 1024)
///     .max_age(Some(Duration::from_secs(300)));
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct HistoryConfig {
    pub(crate) max_events: usize,
    pub(crate) max_bytes: usize,
    pub(crate) max_age: Option<Duration>,
}

impl Default for HistoryConfig {
    /// 1024 events and 1 MiB per channel, for 15 minutes.
    fn default() -> Self {
        Self {
            max_events: 1024,
            max_bytes: 1 << 20,
            max_age: Some(Duration::from_secs(15 * 60)),
        }
    }
}

impl HistoryConfig {
    /// No history at all: every resume is a gap.
    ///
    /// ```
    /// let config = ssehub::broker::HistoryConfig::disabled();
    /// # let _ = config;
    /// ```
    pub fn disabled() -> Self {
        Self {
            max_events: 0,
            max_bytes: 0,
            max_age: None,
        }
    }

    /// Events kept per channel.
    ///
    /// ```
    /// let config = ssehub::broker::HistoryConfig::default().max_events(100);
    /// # let _ = config;
    /// ```
    pub fn max_events(mut self, events: usize) -> Self {
        self.max_events = events;
        self
    }

    /// Encoded bytes kept per channel.
    ///
    /// ```
    /// let config = ssehub::broker::HistoryConfig::default().max_bytes(64 * 1024);
    /// # let _ = config;
    /// ```
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How long an event stays replayable, for every channel; `None` keeps
    /// events until the count or byte bound evicts them.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = ssehub::broker::HistoryConfig::default().max_age(Some(Duration::from_secs(60)));
    /// # let _ = config;
    /// ```
    pub fn max_age(mut self, age: Option<Duration>) -> Self {
        self.max_age = age;
        self
    }
}

#[derive(Debug, Default)]
struct ChannelHistory {
    entries: VecDeque<HistoryEntry>,
    bytes: usize,
    /// Highest position evicted so far: a replay after an earlier position
    /// has a hole.
    evicted_through: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    channels: HashMap<Arc<str>, ChannelHistory>,
    /// Caller-supplied ids of retained events, for `resolve` without a scan.
    ids: HashMap<Arc<str>, u64>,
}

/// In-memory [`HistoryStore`] bounded by events and bytes per channel and
/// by age broker-wide.
///
/// ```
/// use bytes::Bytes;
/// use ssehub::broker::{HistoryConfig, HistoryEntry, HistoryStore, MemoryHistory};
///
/// let history = MemoryHistory::new(HistoryConfig::default().max_events(2));
/// for position in 0..4 {
///     history.record("news", HistoryEntry {
///         position,
///         id: Some(format!("n{position}").into()),
///         frame: Bytes::from(format!("id: n{position}\ndata: x\n\n")),
///         published_at: tokio::time::Instant::now(),
///     });
/// }
/// // Positions 2 and 3 are retained; 0 and 1 were evicted.
/// assert_eq!(history.resolve("n3"), Some(3));
/// assert_eq!(history.resolve("n1"), None);
/// assert_eq!(history.replay("news", Some(1), 10).unwrap().len(), 2);
/// assert_eq!(history.replay("news", Some(2), 10).unwrap().len(), 1);
/// assert_eq!(history.replay("news", Some(1), 2).unwrap().len(), 1); // `until` bounds it
/// assert!(history.replay("news", Some(0), 10).is_err()); // 1 is lost
/// assert_eq!(history.replay("news", None, 10).unwrap().len(), 2); // all retained
/// ```
#[derive(Debug)]
pub struct MemoryHistory {
    config: HistoryConfig,
    state: Mutex<State>,
}

impl MemoryHistory {
    /// An empty history with `config`'s bounds.
    ///
    /// ```
    /// let history = ssehub::broker::MemoryHistory::new(Default::default());
    /// # let _ = history;
    /// ```
    #[must_use]
    pub fn new(config: HistoryConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    fn evict(
        config: &HistoryConfig,
        ids: &mut HashMap<Arc<str>, u64>,
        history: &mut ChannelHistory,
    ) {
        let now = Instant::now();
        while let Some(front) = history.entries.front() {
            let too_many = history.entries.len() > config.max_events;
            let too_big = history.bytes > config.max_bytes;
            let too_old = config
                .max_age
                .is_some_and(|age| now.saturating_duration_since(front.published_at) > age);
            if !(too_many || too_big || too_old) {
                break;
            }
            let Some(entry) = history.entries.pop_front() else {
                break;
            };
            history.bytes -= entry.frame.len();
            history.evicted_through = Some(entry.position);
            if let Some(id) = &entry.id {
                if ids.get(id) == Some(&entry.position) {
                    ids.remove(id);
                }
            }
        }
    }
}

impl HistoryStore for MemoryHistory {
    fn record(&self, channel: &str, entry: HistoryEntry) {
        let mut st = self.lock();
        let State { channels, ids } = &mut *st;
        if let Some(id) = &entry.id {
            ids.insert(id.clone(), entry.position);
        }
        let history = match channels.get_mut(channel) {
            Some(history) => history,
            None => channels.entry(Arc::from(channel)).or_default(),
        };
        history.bytes += entry.frame.len();
        history.entries.push_back(entry);
        Self::evict(&self.config, ids, history);
    }

    fn replay(
        &self,
        channel: &str,
        after: Option<u64>,
        until: u64,
    ) -> Result<Vec<HistoryEntry>, HistoryGap> {
        let mut st = self.lock();
        let State { channels, ids } = &mut *st;
        let Some(history) = channels.get_mut(channel) else {
            return Ok(Vec::new());
        };
        Self::evict(&self.config, ids, history);
        if let (Some(after), Some(evicted)) = (after, history.evicted_through) {
            if evicted > after {
                return Err(HistoryGap);
            }
        }
        // Positions rise along the deque: find the first one after `after`.
        let start = match after {
            Some(after) => history.entries.partition_point(|e| e.position <= after),
            None => 0,
        };
        Ok(history
            .entries
            .range(start..)
            .take_while(|e| e.position <= until)
            .cloned()
            .collect())
    }

    fn resolve(&self, id: &str) -> Option<u64> {
        self.lock().ids.get(id).copied()
    }

    fn forget(&self, channel: &str) {
        let mut st = self.lock();
        let State { channels, ids } = &mut *st;
        if let Some(history) = channels.remove(channel) {
            for entry in history.entries {
                if let Some(id) = &entry.id {
                    if ids.get(id) == Some(&entry.position) {
                        ids.remove(id);
                    }
                }
            }
        }
    }
}
