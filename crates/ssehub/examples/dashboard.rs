//! Live dashboard (the Go package's "Live Dashboard" example): one task
//! collects server stats every second and broadcasts them to every open
//! page with [`Broker::broadcast`]; the page's EventSource shows them.
//!
//! ```text
//! cargo run -p ssehub --features axum --example dashboard
//! # then open http://127.0.0.1:3000 (in a few tabs: watch "clients")
//! ```
//!
//! An optional argument sets the address: `-- 127.0.0.1:8080`.
//!
//! The stats are real: connected clients ([`Broker::clients`]), HTTP
//! requests this server answered (a middleware with an atomic counter), and
//! the process's CPU and memory use read from `/proc/self` (Linux; shown as
//! "n/a" elsewhere).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{Html, Response};
use axum::routing::{get, post};
use serde::Serialize;
use ssehub::Event;
use ssehub::broker::Broker;
use tokio::time::MissedTickBehavior;

/// What the page receives once a second, as the JSON of a `stats` event.
#[derive(Serialize)]
struct Stats {
    /// Connected EventSources.
    clients: usize,
    /// HTTP requests answered since start (pages, streams, everything).
    requests: u64,
    /// CPU used by this process over the last interval, in % of one core.
    cpu_percent: Option<f64>,
    /// Resident memory, in bytes.
    memory_bytes: Option<u64>,
    /// Unix time in milliseconds.
    timestamp: u64,
}

/// Every request passes through `count_requests`.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

async fn count_requests(request: Request, next: Next) -> Response {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let broker = Broker::new();

    // The stats broadcaster. A broadcast is encoded once and never waits
    // for a slow page, so one task serves any number of dashboards.
    tokio::spawn({
        let broker = broker.clone();
        async move {
            let mut cpu = CpuMeter::new();
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            // After a stall, carry on a second later rather than catching up
            // with a burst of ticks.
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let stats = Stats {
                    clients: broker.clients(),
                    requests: REQUESTS.load(Ordering::Relaxed),
                    cpu_percent: cpu.percent(),
                    memory_bytes: resident_memory(),
                    timestamp: unix_millis(),
                };
                // `broker.broadcast_json("stats", &stats)` would do, but
                // would also keep every tick in the replay history for
                // reconnecting pages. A tick is superseded by the next one:
                // keep it out.
                let tick = Event::json("stats", &stats)
                    .expect("Stats always serializes")
                    .with_replay(false);
                let _ = broker.broadcast(tick); // fails only once the broker is closed
            }
        }
    });

    let mut app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        // Every request becomes a broker client that receives broadcasts.
        .route("/dashboard/events", get(broker.handler()));
    if std::env::var("SSEHUB_TEST_HOOKS").as_deref() == Ok("1") {
        // Test-only: end every stream from the server side, so the browser
        // tests can watch EventSource reconnect.
        let broker = broker.clone();
        app = app.route(
            "/debug/drop-connections",
            post(move || async move {
                broker.for_each(|client| client.close());
                StatusCode::NO_CONTENT
            }),
        );
    }
    let app = app.layer(middleware::from_fn(count_requests));

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // Every write gets a deadline, so a client that stops reading is dropped.
    let listener =
        ssehub::axum::WriteTimeoutListener::new(listener, std::time::Duration::from_secs(10));
    axum::serve(listener, app).await
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// CPU use from the process's user + system time in `/proc/self/stat`,
/// measured between two calls.
struct CpuMeter {
    last: Option<(u64, Instant)>,
}

impl CpuMeter {
    /// Linux reports these times in clock ticks of 1/100 s (`USER_HZ`,
    /// 100 on every mainstream architecture).
    const TICKS_PER_SECOND: f64 = 100.0;

    fn new() -> Self {
        Self {
            last: cpu_ticks().map(|ticks| (ticks, Instant::now())),
        }
    }

    fn percent(&mut self) -> Option<f64> {
        let now = (cpu_ticks()?, Instant::now());
        let (ticks, at) = self.last.replace(now)?;
        let busy = now.0.saturating_sub(ticks) as f64 / Self::TICKS_PER_SECOND;
        let elapsed = now.1.duration_since(at).as_secs_f64();
        (elapsed > 0.0).then(|| 100.0 * busy / elapsed)
    }
}

/// `utime + stime` of this process, in clock ticks.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Field 2 is the command name in parentheses and may contain spaces:
    // count fields from the last ')'. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // fields 3..=13
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size from the `VmRSS:` line of `/proc/self/status`.
fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ssehub: live dashboard</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
  .cards { display: flex; gap: 1rem; flex-wrap: wrap; }
  .card { border: 1px solid #ccc; border-radius: 8px; padding: 1rem 1.5rem; min-width: 9rem; }
  .card .label { color: #666; font-size: .85rem; }
  .card .value { font-size: 2rem; font-variant-numeric: tabular-nums; }
  #status.open { color: #080; } #status.reconnecting { color: #b60; }
</style>
<h1>Live dashboard</h1>
<p>Stream: <b id="status">connecting</b> · updates received: <b id="updates">0</b>
   · last update: <span id="time">–</span></p>
<div class="cards">
  <div class="card"><div class="label">Connected clients</div><div class="value" id="clients">–</div></div>
  <div class="card"><div class="label">Requests served</div><div class="value" id="requests">–</div></div>
  <div class="card"><div class="label">CPU (one core)</div><div class="value" id="cpu">–</div></div>
  <div class="card"><div class="label">Memory (RSS)</div><div class="value" id="memory">–</div></div>
</div>
<script>
  const $ = (id) => document.getElementById(id);
  const source = new EventSource("/dashboard/events");
  let updates = 0;
  source.onopen = () => { $("status").textContent = "open"; $("status").className = "open"; };
  source.onerror = () => {
    // EventSource reconnects by itself; CLOSED only after a fatal error.
    const state = source.readyState === EventSource.CONNECTING ? "reconnecting" : "closed";
    $("status").textContent = state; $("status").className = state;
  };
  source.addEventListener("stats", (e) => {
    const s = JSON.parse(e.data);
    $("clients").textContent = s.clients;
    $("requests").textContent = s.requests;
    $("cpu").textContent = s.cpu_percent == null ? "n/a" : s.cpu_percent.toFixed(1) + " %";
    $("memory").textContent = s.memory_bytes == null ? "n/a" : (s.memory_bytes / 1048576).toFixed(1) + " MiB";
    $("time").textContent = new Date(s.timestamp).toLocaleTimeString();
    $("time").title = new Date(s.timestamp).toISOString();
    $("updates").textContent = ++updates;
  });
</script>
"#;
