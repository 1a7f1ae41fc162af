//! Counters a caller can read: [`BrokerStats`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a broker's counters, from [`Broker::stats`](super::Broker::stats).
///
/// Gauges (`clients`, `channels`) are current values; the rest count since
/// the broker was created.
///
/// ```
/// let broker = ssehub::broker::Broker::new();
/// broker.broadcast_data("nobody listens").unwrap();
/// let stats = broker.stats();
/// assert_eq!(stats.clients, 0);
/// assert_eq!(stats.published, 1);
/// assert_eq!(stats.delivered, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerStats {
    /// Connected clients.
    pub clients: u64,
    /// Named channels.
    pub channels: u64,
    /// Events published (broadcasts, channel broadcasts and direct sends), each counted once.
    pub published: u64,
    /// Events handed to client connections for writing (one per event per client).
    pub delivered: u64,
    /// Of `delivered`, events the broker's fan-out writer took for a
    /// connection that was asleep (lean server only): written straight to
    /// its socket, or left to the connection when the socket was full.
    pub direct: u64,
    /// Events a client never got because of the overflow policy.
    pub dropped: u64,
    /// Clients disconnected because they fell too far behind.
    pub slow_disconnects: u64,
    /// With a journal: publishes the journal acknowledged.
    pub journal_appended: u64,
    /// With a journal: publishes of the synchronous `broadcast*` methods the
    /// journal did not store (each also logged); the acknowledged
    /// `publish` methods return the error instead.
    pub journal_append_errors: u64,
    /// With a journal: records its follower received, from every replica.
    pub journal_followed: u64,
    /// Of `journal_followed`, records dropped because no client of this
    /// broker is in any of their channels.
    pub journal_skipped: u64,
    /// Of `journal_followed`, records that are not a broker's (another
    /// program's, or corrupt), skipped.
    pub journal_malformed: u64,
    /// Times the journal could not be reached by the follower (it
    /// reconnects and resumes where it stopped).
    pub journal_down: u64,
    /// Times the follower was told records were lost before it read them
    /// (it fell behind the journal's retention); connected clients are sent
    /// the gap event.
    pub journal_gaps: u64,
    /// Times the journal lost its data and started a new epoch; connected
    /// clients are sent the gap event.
    pub journal_resets: u64,
    /// Resumes that read the journal (older than the broker's window of
    /// recent records).
    pub journal_resume_reads: u64,
    /// Resumes abandoned because the journal could not be read; the client
    /// is disconnected so it retries.
    pub journal_resume_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) clients: AtomicU64,
    pub(crate) channels: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) direct: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) slow_disconnects: AtomicU64,
    pub(crate) journal_appended: AtomicU64,
    pub(crate) journal_append_errors: AtomicU64,
    pub(crate) journal_followed: AtomicU64,
    pub(crate) journal_skipped: AtomicU64,
    pub(crate) journal_malformed: AtomicU64,
    pub(crate) journal_down: AtomicU64,
    pub(crate) journal_gaps: AtomicU64,
    pub(crate) journal_resets: AtomicU64,
    pub(crate) journal_resume_reads: AtomicU64,
    pub(crate) journal_resume_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Relaxed);
        }
    }

    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> BrokerStats {
        BrokerStats {
            clients: self.clients.load(Relaxed),
            channels: self.channels.load(Relaxed),
            published: self.published.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            direct: self.direct.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            slow_disconnects: self.slow_disconnects.load(Relaxed),
            journal_appended: self.journal_appended.load(Relaxed),
            journal_append_errors: self.journal_append_errors.load(Relaxed),
            journal_followed: self.journal_followed.load(Relaxed),
            journal_skipped: self.journal_skipped.load(Relaxed),
            journal_malformed: self.journal_malformed.load(Relaxed),
            journal_down: self.journal_down.load(Relaxed),
            journal_gaps: self.journal_gaps.load(Relaxed),
            journal_resets: self.journal_resets.load(Relaxed),
            journal_resume_reads: self.journal_resume_reads.load(Relaxed),
            journal_resume_errors: self.journal_resume_errors.load(Relaxed),
        }
    }
}
