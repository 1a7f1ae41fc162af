//! The Mercure hub (`ssehub-server`) as a benchmark [`Fanout`], for
//! `server-hub`.
//!
//! Publishing goes through [`Running::publish`], the hub's in-process
//! publish (validated like an authorized `POST`: topic checks, the append
//! to the hub's log, and — once the log hands the update back — group
//! lookup and the broker's fan-out). The schedule hands its payloads to
//! one publisher task, which awaits each append before the next, in order,
//! as a publisher with one connection would: on a Redis transport that is
//! one round trip per update, and the time it takes is kept
//! (`append_ms` in the stats). The payloads carry their scheduled time, so
//! a publisher that falls behind shows in the latency. The hub does not
//! expose its subscriber count in process, so [`HubFanout::subscribers`]
//! reads `ssehub_connections` from the hub's own `GET /metrics`: the control
//! router runs on the same runtime as the hub (one worker when pinned), so it
//! cannot wait for the hub to answer inside a request; each call starts a
//! fetch in the background and answers what the previous fetch found. The
//! load generator polls `/stats` until the count it wants shows up, so the
//! lag is one poll.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use ssehub_server::Running;
use tokio::sync::mpsc;

use crate::clock::mono_ns;
use crate::control::Fanout;
use crate::wire;

/// The hub under test.
#[derive(Clone)]
pub struct HubFanout {
    inner: Arc<Inner>,
}

struct Inner {
    /// To the publisher task: a topic and its payloads, in schedule order.
    queue: mpsc::UnboundedSender<(String, Vec<String>)>,
    metrics_addr: SocketAddr,
    errors: AtomicU64,
    /// How long each `Running::publish` took, microseconds.
    append_us: Mutex<Histogram<u64>>,
    fetching: AtomicBool,
    last: Mutex<HubMetrics>,
}

impl HubFanout {
    /// Publishes through `hub`; reads its metrics from its own address.
    /// Must be called within a Tokio runtime: it spawns the publisher task.
    #[must_use]
    pub fn new(hub: Running) -> Self {
        let (queue, mut rx) = mpsc::unbounded_channel::<(String, Vec<String>)>();
        let inner = Arc::new(Inner {
            queue,
            metrics_addr: hub.local_addr(),
            errors: AtomicU64::new(0),
            append_us: Mutex::new(
                Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            ),
            fetching: AtomicBool::new(false),
            last: Mutex::new(HubMetrics::default()),
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while let Some((topic, payloads)) = rx.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                for p in &payloads {
                    let t = mono_ns();
                    let result = hub.publish(&topic, p).await;
                    let took = (mono_ns() - t) / 1000;
                    if result.is_err() {
                        inner.errors.fetch_add(1, Relaxed);
                    }
                    inner
                        .append_us
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .saturating_record(took.max(1));
                }
            }
        });
        Self { inner }
    }

    /// Starts one background `GET /metrics` (unless one is in flight).
    fn refresh(&self) {
        if self.inner.fetching.swap(true, Relaxed) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.inner.fetching.store(false, Relaxed);
            return;
        };
        let inner = self.inner.clone();
        rt.spawn(async move {
            let got = wire::request(
                inner.metrics_addr,
                "GET",
                "/metrics",
                b"",
                Duration::from_secs(5),
            )
            .await;
            if let Ok((200, body)) = got {
                let parsed = HubMetrics::parse(&String::from_utf8_lossy(&body));
                *inner.last.lock().unwrap_or_else(PoisonError::into_inner) = parsed;
            }
            inner.fetching.store(false, Relaxed);
        });
    }

    fn last(&self) -> HubMetrics {
        self.inner
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Fanout for HubFanout {
    type Topic = String;

    fn topic(&self, name: &str) -> String {
        name.to_owned()
    }

    fn publish(&self, topic: &String, payloads: &[String]) {
        if self
            .inner
            .queue
            .send((topic.clone(), payloads.to_vec()))
            .is_err()
        {
            self.inner.errors.fetch_add(payloads.len() as u64, Relaxed);
        }
    }

    fn subscribers(&self) -> usize {
        self.refresh();
        self.last().connections as usize
    }

    fn extra(&self) -> Value {
        let m = self.last();
        let h = &m.latency;
        let a = self
            .inner
            .append_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let ms = |q: f64| a.value_at_quantile(q) as f64 / 1000.0;
        json!({
            "source": "hub /metrics, as of the previous /stats request",
            "published": m.published,
            "delivered": m.delivered,
            "dropped": m.dropped,
            "slow_disconnects": m.slow_disconnects,
            "groups": m.groups,
            "publish_errors": self.inner.errors.load(Relaxed),
            "append_ms": {
                "count": a.len(),
                "p50": ms(0.5),
                "p99": ms(0.99),
                "max": a.max() as f64 / 1000.0,
            },
            "publish_to_write": {
                "count": h.count,
                "sum_s": h.sum,
                "mean_ms": if h.count > 0.0 { h.sum / h.count * 1e3 } else { 0.0 },
                "p50_le_ms": h.quantile_bound(0.5).map(|s| s * 1e3),
                "p90_le_ms": h.quantile_bound(0.9).map(|s| s * 1e3),
                "p99_le_ms": h.quantile_bound(0.99).map(|s| s * 1e3),
                "buckets": h.buckets,
            },
        })
    }
}

/// The figures of the hub's `/metrics` the benchmark uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HubMetrics {
    /// `ssehub_connections`.
    pub connections: u64,
    /// `ssehub_published_total`.
    pub published: u64,
    /// `ssehub_delivered_total`.
    pub delivered: u64,
    /// `ssehub_dropped_total`.
    pub dropped: u64,
    /// `ssehub_slow_disconnects_total`.
    pub slow_disconnects: u64,
    /// `ssehub_groups`.
    pub groups: u64,
    /// `ssehub_publish_to_write_seconds`.
    pub latency: PromHistogram,
}

/// A Prometheus histogram: cumulative counts by upper bound (seconds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromHistogram {
    /// `(le, cumulative count)`, in exposition order; `le` is `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
    /// `_sum`.
    pub sum: f64,
    /// `_count`.
    pub count: f64,
}

impl PromHistogram {
    /// The upper bound of the bucket holding quantile `q` (seconds), if
    /// anything was observed and it is not beyond the last finite bound.
    #[must_use]
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let want = q * self.count;
        self.buckets
            .iter()
            .find(|(_, c)| *c >= want)
            .map(|(le, _)| *le)
            .filter(|le| le.is_finite())
    }
}

impl HubMetrics {
    /// Reads the OpenMetrics text of the hub's `/metrics`.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut m = Self::default();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.trim().parse::<f64>() else {
                continue;
            };
            let int = v as u64;
            match name {
                "ssehub_connections" => m.connections = int,
                "ssehub_published_total" => m.published = int,
                "ssehub_delivered_total" => m.delivered = int,
                "ssehub_dropped_total" => m.dropped = int,
                "ssehub_slow_disconnects_total" => m.slow_disconnects = int,
                "ssehub_groups" => m.groups = int,
                "ssehub_publish_to_write_seconds_sum" => m.latency.sum = v,
                "ssehub_publish_to_write_seconds_count" => m.latency.count = v,
                _ => {
                    if let Some(le) = name
                        .strip_prefix("ssehub_publish_to_write_seconds_bucket{le=\"")
                        .and_then(|rest| rest.strip_suffix("\"}"))
                    {
                        let le = if le == "+Inf" {
                            f64::INFINITY
                        } else {
                            le.parse().unwrap_or(f64::NAN)
                        };
                        m.latency.buckets.push((le, v));
                    }
                }
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_hub_exposition() {
        let text = "\
# HELP ssehub_connections Open subscriber connections.
# TYPE ssehub_connections gauge
ssehub_connections 1000
# TYPE ssehub_published counter
ssehub_published_total 200
# TYPE ssehub_publish_to_write_seconds histogram
ssehub_publish_to_write_seconds_sum 1.5
ssehub_publish_to_write_seconds_count 100
ssehub_publish_to_write_seconds_bucket{le=\"5e-5\"} 10
ssehub_publish_to_write_seconds_bucket{le=\"0.0001\"} 60
ssehub_publish_to_write_seconds_bucket{le=\"0.0002\"} 99
ssehub_publish_to_write_seconds_bucket{le=\"+Inf\"} 100
ssehub_delivered_total 200000
ssehub_dropped_total 0
ssehub_slow_disconnects_total 3
ssehub_groups 1
# EOF
";
        let m = HubMetrics::parse(text);
        assert_eq!(
            (
                m.connections,
                m.published,
                m.delivered,
                m.slow_disconnects,
                m.groups
            ),
            (1000, 200, 200_000, 3, 1)
        );
        assert_eq!(m.latency.buckets.len(), 4);
        assert_eq!(m.latency.quantile_bound(0.5), Some(0.0001));
        assert_eq!(m.latency.quantile_bound(0.99), Some(0.0002));
        assert_eq!(m.latency.quantile_bound(1.0), None);
        assert_eq!(HubMetrics::parse("").latency.quantile_bound(0.5), None);
    }
}
