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
        }
    }
}
