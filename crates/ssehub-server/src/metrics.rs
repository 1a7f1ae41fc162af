//! `/metrics`: the hub's counters in the OpenMetrics text format, which
//! Prometheus scrapes natively.
//!
//! Hub-owned figures are `prometheus-client` metrics; the broker's own
//! counters (delivered, dropped, ...) are read at scrape time by a
//! collector, so the hot path never counts anything twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use ssehub::broker::Broker;
use tokio::time::Instant;

/// Publish instants remembered for the latency histogram, by sequence
/// number modulo this size.
const RING: usize = 8192;

/// Label of the replay counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ReplayLabels {
    /// `hit`: resumed without loss; `miss`: unknown or evicted id.
    pub result: &'static str,
}

/// Label of the refusal counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RefusalLabels {
    /// `publish` or `subscribe`.
    pub endpoint: &'static str,
    /// The HTTP status sent.
    pub status: u16,
}

/// The hub's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub subscriptions: Gauge,
    pub published: Counter,
    pub replays: Family<ReplayLabels, Counter>,
    pub replayed: Counter,
    pub refused: Family<RefusalLabels, Counter>,
    pub latency: Histogram,
    started: Instant,
    /// (sequence number, nanoseconds since `started`) of recent publishes.
    ring: Box<[(AtomicU64, AtomicU64)]>,
}

#[derive(Debug)]
struct BrokerCollector(Broker, Arc<std::sync::atomic::AtomicUsize>);

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let counters = [
            (
                "delivered",
                "Update deliveries handed to subscriber connections",
                stats.delivered,
            ),
            (
                "direct",
                "Of the deliveries, those the fan-out writer took for sleeping connections",
                stats.direct,
            ),
            (
                "dropped",
                "Updates dropped for slow subscribers",
                stats.dropped,
            ),
            (
                "slow_disconnects",
                "Subscribers disconnected for falling too far behind",
                stats.slow_disconnects,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let groups = ConstGauge::new(self.1.load(Ordering::Relaxed) as i64);
        groups.encode(encoder.encode_descriptor(
            "groups",
            "Subscription groups (subscribers sharing matchers and rights)",
            None,
            groups.metric_type(),
        )?)?;
        Ok(())
    }
}

impl Metrics {
    pub fn new(broker: Broker, groups: Arc<std::sync::atomic::AtomicUsize>) -> Self {
        let mut registry = Registry::with_prefix("ssehub");
        let connections = Gauge::default();
        let subscriptions = Gauge::default();
        let published = Counter::default();
        let replays = Family::<ReplayLabels, Counter>::default();
        let replayed = Counter::default();
        let refused = Family::<RefusalLabels, Counter>::default();
        // 50 µs .. ~1.6 s.
        let latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "connections",
            "Open subscriber connections",
            connections.clone(),
        );
        registry.register(
            "subscriptions",
            "Active topic matchers over all connections",
            subscriptions.clone(),
        );
        registry.register("published", "Updates published", published.clone());
        registry.register(
            "replays",
            "Reconnections with a Last-Event-ID, by outcome",
            replays.clone(),
        );
        registry.register(
            "replayed",
            "Updates sent from history to reconnecting subscribers",
            replayed.clone(),
        );
        registry.register(
            "refused",
            "Requests refused, by endpoint and status",
            refused.clone(),
        );
        registry.register(
            "publish_to_write_seconds",
            "Time from an update's publication to its hand-off to a subscriber's socket",
            latency.clone(),
        );
        registry.register_collector(Box::new(BrokerCollector(broker, groups)));
        Self {
            registry,
            connections,
            subscriptions,
            published,
            replays,
            replayed,
            refused,
            latency,
            started: Instant::now(),
            ring: (0..RING)
                .map(|_| (AtomicU64::new(u64::MAX), AtomicU64::new(0)))
                .collect(),
        }
    }

    /// Notes when update `seq` was published.
    pub fn published_at(&self, seq: u64, at: Instant) {
        let (slot_seq, slot_nanos) = &self.ring[(seq % RING as u64) as usize];
        let nanos = at.saturating_duration_since(self.started).as_nanos() as u64;
        // A reader may see a torn pair; it compares the sequence number
        // again after reading the time, so it never uses a wrong instant.
        slot_seq.store(u64::MAX, Ordering::Release);
        slot_nanos.store(nanos, Ordering::Release);
        slot_seq.store(seq, Ordering::Release);
    }

    /// Records the publish-to-write latency of `count` writes of update
    /// `seq`, if it is recent.
    pub fn written(&self, seq: u64, count: usize) {
        let (slot_seq, slot_nanos) = &self.ring[(seq % RING as u64) as usize];
        if slot_seq.load(Ordering::Acquire) != seq {
            return;
        }
        let nanos = slot_nanos.load(Ordering::Acquire);
        if slot_seq.load(Ordering::Acquire) != seq {
            return;
        }
        let now = self.started.elapsed().as_nanos() as u64;
        let seconds = now.saturating_sub(nanos) as f64 / 1e9;
        for _ in 0..count {
            self.latency.observe(seconds);
        }
    }

    /// Counts a refused request.
    pub fn refused(&self, endpoint: &'static str, status: http::StatusCode) {
        self.refused
            .get_or_create(&RefusalLabels {
                endpoint,
                status: status.as_u16(),
            })
            .inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
