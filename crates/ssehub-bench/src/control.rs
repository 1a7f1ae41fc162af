//! What every server under test shares: the publish schedule it runs on
//! request, its flow control, and its stats.
//!
//! A server implements [`Fanout`] (how it publishes to a topic) and routes
//! the control requests to [`handle`]; when that answers
//! [`Action::Start`], the server spawns [`run_schedule`] on its own runtime.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::args::query_param;
use crate::clock::{mono_ns, sleep_until_ns};
use crate::{payload, timing};

/// How a server publishes.
pub trait Fanout: Clone + 'static {
    /// A resolved topic (channel, broadcast sender, subscriber list).
    type Topic;
    /// The topic `name`, created if needed.
    fn topic(&self, name: &str) -> Self::Topic;
    /// Publishes `payloads`, in order, to everyone subscribed to `topic`.
    fn publish(&self, topic: &Self::Topic, payloads: &[String]);
    /// Current number of subscribers (all topics).
    fn subscribers(&self) -> usize;
    /// Server-specific counters for the stats.
    fn extra(&self) -> Value {
        Value::Null
    }
}

/// Fixed rate or as fast as the clients keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `rate` rounds per second, on schedule; each payload carries the time
    /// it was *scheduled* for, so a late publisher shows up in the latency.
    Rate,
    /// As fast as possible, but at most `window` rounds ahead of the slowest
    /// client (acknowledged with `POST /ack`), so nothing overflows a
    /// client's buffer: the rate the server sustains without loss.
    Max,
}

/// A schedule: `POST /run?mode=rate&rate=10&duration_ms=20000&size=100&topic=all`
/// (or `targeted=N` for topics `c0`…`c{N-1}`, one round publishing one event
/// to each), `window` and `burst` for `mode=max`.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Rate or max.
    pub mode: Mode,
    /// Rounds per second (`mode=rate`).
    pub rate: f64,
    /// How long to publish.
    pub duration: Duration,
    /// Payload size, bytes.
    pub size: usize,
    /// Topics published to in every round.
    pub topics: Vec<String>,
    /// Rounds ahead of the slowest client (`mode=max`).
    pub window: u64,
    /// Rounds published back to back before yielding (`mode=max`).
    pub burst: u64,
}

impl Spec {
    /// Parses a `/run` query.
    ///
    /// # Errors
    /// A message naming the bad parameter.
    pub fn from_query(q: &str) -> Result<Self, String> {
        fn num<T: std::str::FromStr>(q: &str, key: &str, default: T) -> Result<T, String> {
            query_param(q, key).map_or(Ok(default), |v| {
                v.parse().map_err(|_| format!("bad {key}: {v:?}"))
            })
        }
        let mode = match query_param(q, "mode").unwrap_or("rate") {
            "rate" => Mode::Rate,
            "max" => Mode::Max,
            other => return Err(format!("bad mode: {other:?}")),
        };
        let topics = match num::<usize>(q, "targeted", 0)? {
            0 => vec![query_param(q, "topic").unwrap_or("all").to_owned()],
            n => (0..n).map(|i| format!("c{i}")).collect(),
        };
        let rate: f64 = num(q, "rate", 10.0)?;
        // Written so that NaN is refused too.
        if rate.is_nan() || rate <= 0.0 {
            return Err("rate must be positive".into());
        }
        Ok(Self {
            mode,
            rate,
            duration: Duration::from_millis(num(q, "duration_ms", 10_000)?),
            size: num(q, "size", 100)?,
            topics,
            window: num(q, "window", 128)?,
            burst: num::<u64>(q, "burst", 64)?.max(1),
        })
    }
}

/// A server's schedule state.
#[derive(Debug, Default)]
pub struct Control {
    busy: AtomicBool,
    done: AtomicBool,
    acked: AtomicU64,
    ack_notify: Notify,
    published: AtomicU64,
    started_ns: AtomicU64,
    ended_ns: AtomicU64,
    slip_max_ns: AtomicU64,
    server_latency: Mutex<Value>,
}

/// What a control request asks the server to do.
#[derive(Debug)]
pub enum Action {
    /// Answer with this status and JSON/text body.
    Reply(u16, String),
    /// Spawn [`run_schedule`] with this spec, then answer 200.
    Start(Spec),
}

/// Handles `/run`, `/ack`, `/stats` and `/publish`.
pub fn handle<F: Fanout>(
    fanout: &F,
    ctl: &Control,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> Action {
    match (method, path) {
        ("POST", "/run") => match Spec::from_query(query) {
            Err(e) => Action::Reply(400, e),
            Ok(_) if ctl.busy.swap(true, Relaxed) => Action::Reply(409, "busy".into()),
            Ok(spec) => {
                ctl.reset();
                Action::Start(spec)
            }
        },
        ("POST", "/ack") => {
            let seq = query_param(query, "seq").and_then(|v| v.parse().ok());
            match seq {
                Some(seq) => {
                    ctl.acked.fetch_max(seq, Relaxed);
                    ctl.ack_notify.notify_one();
                    Action::Reply(200, "ok".into())
                }
                None => Action::Reply(400, "seq?".into()),
            }
        }
        ("GET", "/stats") => Action::Reply(200, ctl.stats(fanout).to_string()),
        ("POST", "/publish") => {
            let topic = fanout.topic(query_param(query, "topic").unwrap_or("all"));
            fanout.publish(&topic, &[String::from_utf8_lossy(body).into_owned()]);
            Action::Reply(200, "ok".into())
        }
        _ => Action::Reply(404, "not found".into()),
    }
}

impl Control {
    fn reset(&self) {
        self.done.store(false, Relaxed);
        self.acked.store(0, Relaxed);
        self.published.store(0, Relaxed);
        self.started_ns.store(0, Relaxed);
        self.ended_ns.store(0, Relaxed);
        self.slip_max_ns.store(0, Relaxed);
        *self
            .server_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Value::Null;
    }

    /// The `/stats` document.
    pub fn stats<F: Fanout>(&self, fanout: &F) -> Value {
        json!({
            "pid": std::process::id(),
            "subscribers": fanout.subscribers(),
            "busy": self.busy.load(Relaxed),
            "done": self.done.load(Relaxed),
            "published": self.published.load(Relaxed),
            "started_ns": self.started_ns.load(Relaxed),
            "ended_ns": self.ended_ns.load(Relaxed),
            "slip_max_ms": self.slip_max_ns.load(Relaxed) as f64 / 1e6,
            "server_latency": self.server_latency.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            "extra": fanout.extra(),
        })
    }
}

/// Runs a schedule to the end, then records the publish-to-last-write
/// latency (fixed-rate schedules) and marks the run done.
pub async fn run_schedule<F: Fanout>(fanout: F, ctl: Arc<Control>, spec: Spec) {
    let topics: Vec<F::Topic> = spec.topics.iter().map(|t| fanout.topic(t)).collect();
    let timed = spec.mode == Mode::Rate;
    timing::reset();
    timing::enable(timed);
    let start = mono_ns() + 50_000_000;
    let end = start + spec.duration.as_nanos() as u64;
    sleep_until_ns(start).await;
    ctl.started_ns.store(start, Relaxed);
    let mut published_at = Vec::new();
    let mut k: u64 = 0;
    match spec.mode {
        Mode::Rate => {
            let period = (1e9 / spec.rate) as u64;
            loop {
                let scheduled = start + k * period;
                if scheduled >= end {
                    break;
                }
                sleep_until_ns(scheduled).await;
                let now = mono_ns();
                ctl.slip_max_ns.fetch_max(now - scheduled.min(now), Relaxed);
                let p = [payload::make(k, scheduled, spec.size)];
                for topic in &topics {
                    fanout.publish(topic, &p);
                }
                published_at.push(now);
                k += 1;
                ctl.published.store(k, Relaxed);
            }
        }
        Mode::Max => loop {
            if mono_ns() >= end {
                break;
            }
            let allowed = ctl.acked.load(Relaxed) + spec.window;
            if k < allowed {
                let n = (allowed - k).min(spec.burst);
                let batch: Vec<String> = (0..n)
                    .map(|i| payload::make(k + i, mono_ns(), spec.size))
                    .collect();
                for topic in &topics {
                    fanout.publish(topic, &batch);
                }
                k += n;
                ctl.published.store(k, Relaxed);
                tokio::task::yield_now().await;
            } else {
                let notified = ctl.ack_notify.notified();
                let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
            }
        },
    }
    ctl.ended_ns.store(mono_ns(), Relaxed);
    // Let the last events reach every socket before reading write times.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if timed {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
        let mut unwritten = 0u64;
        // `BENCH_SERIES=FILE`: one line per event (sequence number, ms since
        // the schedule started, publish-to-last-write in ms), to see when
        // in a run the slow events fall.
        let mut series = String::new();
        for (seq, &at) in published_at.iter().enumerate() {
            let last = timing::last_write(seq as u64);
            if last >= at {
                hist.saturating_record(((last - at) / 1000).max(1));
                let (since, took) = (at.saturating_sub(start), last - at);
                let _ = writeln!(
                    series,
                    "{seq} {:.1} {:.2}",
                    since as f64 / 1e6,
                    took as f64 / 1e6
                );
            } else {
                unwritten += 1;
            }
        }
        if let Some(path) = std::env::var_os("BENCH_SERIES") {
            let _ = std::fs::write(path, series);
        }
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        *ctl.server_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = json!({
            "count": hist.len(),
            "unwritten": unwritten,
            "p50_ms": ms(0.5),
            "p90_ms": ms(0.9),
            "p99_ms": ms(0.99),
            "max_ms": hist.max() as f64 / 1000.0,
        });
    }
    timing::enable(false);
    ctl.done.store(true, Relaxed);
    ctl.busy.store(false, Relaxed);
}

/// The control interface (`/run`, `/ack`, `/stats`, `/publish`) as an axum
/// router over any [`Fanout`]; every server of the benchmark mounts it.
pub fn router<F: Fanout + Send + Sync>(fanout: F, ctl: Arc<Control>) -> axum::Router
where
    F::Topic: Send,
{
    axum::Router::new().fallback(
        move |method: axum::http::Method, uri: axum::http::Uri, body: bytes::Bytes| {
            let (fanout, ctl) = (fanout.clone(), ctl.clone());
            async move {
                let query = uri.query().unwrap_or("");
                match handle(&fanout, &ctl, method.as_str(), uri.path(), query, &body) {
                    Action::Reply(status, body) => (
                        axum::http::StatusCode::from_u16(status)
                            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
                        body,
                    ),
                    Action::Start(spec) => {
                        tokio::spawn(run_schedule(fanout, ctl, spec));
                        (axum::http::StatusCode::OK, "started".to_owned())
                    }
                }
            }
        },
    )
}
