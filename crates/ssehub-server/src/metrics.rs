//! `/metrics`: the hub's counters in the OpenMetrics text format, which
//! Prometheus scrapes natively.
//!
//! Hub-owned figures are `prometheus-client` metrics; the broker's own
//! counters (delivered, dropped, ...) are read at scrape time by a
//! collector, so the hot path never counts anything twice.
//!
//! Beside the `ssehub_*` metrics, the reference hub's own names
//! (`mercure_subscribers_connected`, `mercure_subscribers_total`,
//! `mercure_updates_total`), with its types and meanings, so that a
//! dashboard made for it reads this hub too.

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
use ssehub::journal::{JournalId, Offset};

use crate::admission::LimitLabels;
use crate::auth::Jwks;
use crate::update::{age, parse_generated};

/// Publication times remembered for the latency histogram, by a hash of
/// the update's position modulo this size.
const RING: usize = 8192;

/// The ring key of a position: distinct for neighbouring positions of
/// either engine's shape.
pub(crate) fn ring_key(position: JournalId) -> u64 {
    match position.offset {
        Offset::Seq(seq) => seq,
        Offset::Stream { ms, seq } => ms.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seq,
        _ => 0,
    }
}

/// The ring key of the position in the first hub-generated `id:` line of
/// `chunk`. Updates with publisher-chosen ids are not timed.
pub(crate) fn first_generated_key(chunk: &[u8]) -> Option<u64> {
    const FIELD: &[u8] = b"id: #";
    let start = chunk.windows(FIELD.len()).position(|w| w == FIELD)?;
    // Only at a line start: `id: #` inside data is not a field.
    if start > 0 && chunk[start - 1] != b'\n' {
        return None;
    }
    let value = &chunk[start + FIELD.len() - 1..];
    let end = value.iter().position(|&b| b == b'\n')?;
    parse_generated(std::str::from_utf8(&value[..end]).ok()?).map(ring_key)
}

/// Label of the replay counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ReplayLabels {
    /// `hit`: resumed without loss; `miss`: unknown or evicted id.
    pub result: &'static str,
}

/// Label of the log-event counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct LogLabels {
    /// `down`, `up`, `gap` (records lost before this node read them) or
    /// `reset` (the log's engine lost its data).
    pub event: &'static str,
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
    /// Records this node read from the log.
    pub followed: Counter,
    /// 1 while this node follows the log live, 0 while its engine is
    /// unreachable.
    pub log_up: Gauge,
    pub log_events: Family<LogLabels, Counter>,
    /// Requests refused by a limit, by limit.
    pub limited: Family<LimitLabels, Counter>,
    /// The connection ceiling in effect (0: none).
    pub max_connections: Gauge,
    /// `mercure_subscribers_total`: subscribers ever connected to this
    /// node.
    pub subscribers_total: Counter,
    /// `mercure_updates_total`: updates published through this node
    /// (`POST`s and in-process publications; not subscription events).
    pub updates_total: Counter,
    /// (ring key, publication time in µs since the Unix epoch) of recent
    /// updates.
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

/// Labels of the key-set metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JwksLabels {
    issuer: String,
    /// The set's URL or file, without credentials or query.
    source: String,
}

/// Labels of the key-set refresh counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JwksResultLabels {
    issuer: String,
    source: String,
    /// `ok` or `error`.
    result: &'static str,
}

/// The issuers' key sets, read at scrape time from the sets themselves.
#[derive(Debug)]
struct JwksCollector(Vec<Arc<Jwks>>);

impl Collector for JwksCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let labels = |set: &Jwks| JwksLabels {
            issuer: set.issuer().to_owned(),
            source: set.source().to_string(),
        };
        {
            let mut family = encoder.encode_descriptor(
                "jwks_refresh",
                "Fetches of issuers' key sets (JWKS), by result",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for set in &self.0 {
                let (ok, failed, _) = set.stats();
                for (result, value) in [("ok", ok), ("error", failed)] {
                    let labels = JwksResultLabels {
                        issuer: set.issuer().to_owned(),
                        source: set.source().to_string(),
                        result,
                    };
                    ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "jwks_last_success_timestamp_seconds",
                "Unix time of the last good fetch of an issuer's key set (0: never)",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for set in &self.0 {
                let (_, _, last) = set.stats();
                ConstGauge::new(last as i64).encode(family.encode_family(&labels(set))?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "jwks_keys",
            "Keys held from an issuer's key set",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for set in &self.0 {
            ConstGauge::new(set.keys_held() as i64).encode(family.encode_family(&labels(set))?)?;
        }
        Ok(())
    }
}

impl Metrics {
    pub fn new(
        broker: Broker,
        groups: Arc<std::sync::atomic::AtomicUsize>,
        key_sets: Vec<Arc<Jwks>>,
    ) -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("ssehub");
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
        let followed = Counter::default();
        registry.register(
            "log_records",
            "Updates this node read from the log and fanned out",
            followed.clone(),
        );
        let log_up = Gauge::default();
        registry.register(
            "log_up",
            "1 while this node follows the log live, 0 while the log's engine is unreachable",
            log_up.clone(),
        );
        let log_events = Family::<LogLabels, Counter>::default();
        registry.register(
            "log_events",
            "Changes of this node's following of the log, by kind",
            log_events.clone(),
        );
        let limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "limited",
            "Requests refused by a limit (with 429 or 503 and Retry-After), by limit",
            limited.clone(),
        );
        let max_connections = Gauge::default();
        registry.register(
            "max_connections",
            "Open subscriber streams this node holds at most (0: no ceiling)",
            max_connections.clone(),
        );
        registry.register_collector(Box::new(BrokerCollector(broker, groups)));
        if !key_sets.is_empty() {
            registry.register_collector(Box::new(JwksCollector(key_sets)));
        }
        // The reference hub's metrics: same names, types, help and meaning.
        root.register(
            "mercure_subscribers_connected",
            "The current number of running subscribers",
            connections.clone(),
        );
        let subscribers_total = Counter::default();
        root.register(
            "mercure_subscribers",
            "Total number of handled subscribers",
            subscribers_total.clone(),
        );
        let updates_total = Counter::default();
        root.register(
            "mercure_updates",
            "Total number of handled updates",
            updates_total.clone(),
        );
        Self {
            registry: root,
            connections,
            subscriptions,
            published,
            replays,
            replayed,
            refused,
            latency,
            followed,
            log_up,
            log_events,
            limited,
            max_connections,
            subscribers_total,
            updates_total,
            ring: (0..RING)
                .map(|_| (AtomicU64::new(u64::MAX), AtomicU64::new(0)))
                .collect(),
        }
    }

    /// Notes when the update with ring key `key` was published.
    pub fn published_at(&self, key: u64, published_us: u64) {
        let (slot_key, slot_us) = &self.ring[(key % RING as u64) as usize];
        // A reader may see a torn pair; it compares the key again after
        // reading the time, so it never uses a wrong instant.
        slot_key.store(u64::MAX, Ordering::Release);
        slot_us.store(published_us, Ordering::Release);
        slot_key.store(key, Ordering::Release);
    }

    /// Records the publish-to-write latency of `count` writes of the update
    /// with ring key `key`, if it is recent.
    pub fn written(&self, key: u64, count: usize) {
        let (slot_key, slot_us) = &self.ring[(key % RING as u64) as usize];
        if slot_key.load(Ordering::Acquire) != key {
            return;
        }
        let published_us = slot_us.load(Ordering::Acquire);
        if slot_key.load(Ordering::Acquire) != key {
            return;
        }
        let seconds = age(published_us).as_secs_f64();
        for _ in 0..count {
            self.latency.observe(seconds);
        }
    }

    /// Counts a change of the log's following.
    pub fn log_event(&self, event: &'static str) {
        self.log_events.get_or_create(&LogLabels { event }).inc();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_generated_id_at_a_line_start() {
        let chunk = b"event: x\nid: #0000000a-17\ndata: y\n\nid: #0000000a-18\ndata: z\n\n";
        assert_eq!(first_generated_key(chunk), Some(17));
        assert_eq!(first_generated_key(b"data: id: #0000000a-1\n\n"), None);
        assert_eq!(first_generated_key(b"id: urn:x\ndata: y\n\n"), None);
        assert_eq!(first_generated_key(b":\n\n"), None);
    }
}
