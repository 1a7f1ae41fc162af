//! `/stats` and `/stats/live`: the hub's state as counts, for the live view
//! of the demo page and of the debugger (their handlers are in
//! `routes/stats.rs`).
//!
//! Every figure is read from the counters `/metrics` exposes (the
//! [`Metrics`] gauges and counters, the broker's own counters and the
//! publish-to-write histogram); nothing is counted a second time on the
//! hot path. Only counts are exposed — no topic, no subscriber, no token —
//! so the endpoints need no token, as `/metrics` needs none.
//!
//! `/stats` answers one [`Snapshot`] as JSON (totals since start, latency
//! quantiles over every observation). `/stats/live` is an event stream of
//! `stats` events, one a second, each a [`Sample`]: the snapshot and the
//! rates and latency quantiles of the second just past.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::metrics::Metrics;

/// The JSON snapshot's path.
pub(crate) const STATS_PATH: &str = "/stats";

/// The live stream's path.
pub(crate) const LIVE_PATH: &str = "/stats/live";

/// Reads the hub's metrics into [`Snapshot`]s.
#[derive(Debug)]
pub(crate) struct Sampler {
    /// A registry holding only (a handle on) the latency histogram: its
    /// buckets are readable only through an encoder.
    latency: Registry,
}

/// The hub's state at one instant: gauges and totals since start.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Snapshot {
    /// When it was taken, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Open subscriber connections.
    pub connections: i64,
    /// Topic matchers over all connections.
    pub subscriptions: i64,
    /// Updates this node accepted from publishers (and its own
    /// subscription events, with `--subscriptions`).
    pub published: u64,
    /// Updates this node read from the log and fanned out (its own
    /// publishes and, on a shared log, those of the other nodes).
    pub updates: u64,
    /// Update deliveries handed to subscriber connections.
    pub delivered: u64,
    /// Updates dropped for slow subscribers.
    pub dropped: u64,
    /// Subscribers disconnected for falling behind.
    pub slow_disconnects: u64,
    /// Publish-to-write latency over every observation.
    pub latency: Latency,
    /// Cumulative observations per bucket, as (upper bound in seconds,
    /// count): what interval quantiles are computed from.
    #[serde(skip)]
    buckets: Vec<(f64, u64)>,
}

/// Publish-to-write latency figures, estimated from the histogram's
/// buckets as Prometheus' `histogram_quantile` does (linear within a
/// bucket); `null` without observations.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Latency {
    /// Observations (one per update written to one subscriber).
    pub count: u64,
    /// Median, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile, in milliseconds.
    pub p99_ms: Option<f64>,
}

/// What changed between two snapshots, per second.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Interval {
    /// Its length.
    pub seconds: f64,
    /// Updates accepted per second.
    pub published_per_sec: f64,
    /// Updates fanned out per second.
    pub updates_per_sec: f64,
    /// Deliveries per second.
    pub delivered_per_sec: f64,
    /// Latency of the writes of this interval alone.
    pub latency: Latency,
}

/// One event of the live stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Sample {
    /// The state now.
    #[serde(flatten)]
    pub now: Snapshot,
    /// Since the previous sample; `null` in the first one.
    pub interval: Option<Interval>,
}

impl Sampler {
    pub fn new(metrics: &Metrics) -> Self {
        let mut latency = Registry::default();
        latency.register("latency", "", metrics.latency.clone());
        Self { latency }
    }

    /// The state now.
    pub fn snapshot(&self, metrics: &Metrics, broker: &ssehub::broker::Broker) -> Snapshot {
        let buckets = self.buckets();
        let broker = broker.stats();
        Snapshot {
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            connections: metrics.connections.get(),
            subscriptions: metrics.subscriptions.get(),
            published: metrics.published.get(),
            updates: metrics.followed.get(),
            delivered: broker.delivered,
            dropped: broker.dropped,
            slow_disconnects: broker.slow_disconnects,
            latency: Latency::of(&buckets),
            buckets,
        }
    }

    /// The histogram's cumulative buckets, read from its own exposition.
    fn buckets(&self) -> Vec<(f64, u64)> {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.latency);
        parse_buckets(&text)
    }
}

/// `(le, count)` of every `_bucket` line of an exposition, in order.
fn parse_buckets(text: &str) -> Vec<(f64, u64)> {
    text.lines()
        .filter_map(|line| {
            let rest = &line[line.find("_bucket{")? + "_bucket{".len()..];
            let le = rest.split("le=\"").nth(1)?.split('"').next()?;
            let count = rest.rsplit_once("} ")?.1.split_whitespace().next()?;
            Some((le.parse().ok()?, count.parse().ok()?))
        })
        .collect()
}

/// The `q` quantile of cumulative `buckets`, in seconds: linear
/// interpolation within the bucket holding it; the highest finite bound
/// when it lies in the `+Inf` bucket.
fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(le, count) in buckets {
        if count as f64 >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let within = (count - lower.1) as f64;
            let fraction = if within > 0.0 {
                (rank - lower.1 as f64) / within
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * fraction);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

impl Latency {
    fn of(buckets: &[(f64, u64)]) -> Self {
        let ms = |q| quantile(buckets, q).map(|s| round(s * 1000.0, 3));
        Self {
            count: buckets.last().map_or(0, |b| b.1),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
        }
    }
}

/// `value` rounded to `digits` decimals (JSON for people and charts).
fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

impl Sample {
    /// `now`, with what changed since `before`.
    pub(crate) fn between(before: Option<&Snapshot>, now: Snapshot) -> Self {
        let interval = before.map(|before| {
            let seconds = (now.time_ms.saturating_sub(before.time_ms) as f64 / 1000.0).max(0.001);
            let rate = |a: u64, b: u64| round(a.saturating_sub(b) as f64 / seconds, 2);
            // Buckets of this interval alone; both lists come from the same
            // histogram, so their bounds line up.
            let delta: Vec<(f64, u64)> = now
                .buckets
                .iter()
                .zip(before.buckets.iter().chain(std::iter::repeat(&(0.0, 0))))
                .map(|(&(le, n), &(_, b))| (le, n.saturating_sub(b)))
                .collect();
            Interval {
                seconds: round(seconds, 3),
                published_per_sec: rate(now.published, before.published),
                updates_per_sec: rate(now.updates, before.updates),
                delivered_per_sec: rate(now.delivered, before.delivered),
                latency: Latency::of(&delta),
            }
        });
        Self { now, interval }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

    fn histogram_buckets(observations: &[f64]) -> Vec<(f64, u64)> {
        let histogram = Histogram::new(exponential_buckets(0.001, 2.0, 4));
        for &v in observations {
            histogram.observe(v);
        }
        let mut registry = Registry::default();
        registry.register("latency", "", histogram);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        parse_buckets(&text)
    }

    #[test]
    fn buckets_are_read_from_the_exposition() {
        let buckets = histogram_buckets(&[0.0005, 0.003, 0.003, 1.0]);
        assert_eq!(
            buckets,
            vec![
                (0.001, 1),
                (0.002, 1),
                (0.004, 3),
                (0.008, 3),
                (f64::INFINITY, 4)
            ]
        );
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let buckets = histogram_buckets(&[0.003, 0.003, 0.003, 0.003]);
        // Every observation in (2 ms, 4 ms]: the median is half-way.
        assert_eq!(quantile(&buckets, 0.5), Some(0.003));
        assert_eq!(quantile(&buckets, 1.0), Some(0.004));
        assert_eq!(quantile(&histogram_buckets(&[]), 0.5), None);
        // Beyond the last finite bound: that bound.
        assert_eq!(quantile(&histogram_buckets(&[5.0]), 0.99), Some(0.008));
    }

    #[test]
    fn an_interval_counts_only_its_own_observations() {
        let snapshot = |time_ms, published, buckets: Vec<(f64, u64)>| Snapshot {
            time_ms,
            connections: 1,
            subscriptions: 1,
            published,
            updates: published,
            delivered: published,
            dropped: 0,
            slow_disconnects: 0,
            latency: Latency::of(&buckets),
            buckets,
        };
        let before = snapshot(1_000, 10, vec![(0.001, 10), (f64::INFINITY, 10)]);
        // Four more, all slower than a millisecond.
        let now = snapshot(3_000, 14, vec![(0.001, 10), (f64::INFINITY, 14)]);
        let sample = Sample::between(Some(&before), now);
        let interval = sample.interval.unwrap();
        assert_eq!(interval.seconds, 2.0);
        assert_eq!(interval.published_per_sec, 2.0);
        assert_eq!(interval.latency.count, 4);
        assert_eq!(interval.latency.p50_ms, Some(1.0));
        // Over every observation: 10 of 14 under a millisecond.
        assert_eq!(sample.now.latency.p50_ms, Some(0.7));
        assert!(Sample::between(None, before).interval.is_none());
    }
}
