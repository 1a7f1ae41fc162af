//! Resume under fire: a server that keeps publishing on three channels and
//! keeps cutting its clients off, and clients that nevertheless receive
//! every event of their channels exactly once, in order.
//!
//! ```text
//! cargo run -p ssehub --features axum --example resume
//! # open http://127.0.0.1:3000/?topic=a&topic=c  (and another tab with ?topic=b)
//! ```
//!
//! An optional argument sets the address: `-- 127.0.0.1:8080`. The
//! environment variable `RESUME_SEED` (a number) changes the pseudo-random
//! choices of the publisher and of the chaos task.
//!
//! What to watch on the page: the connection counter climbs every few
//! hundred milliseconds (the server closed the stream; the browser waited
//! the 100 ms `retry:` and reconnected), while for every topic the page's
//! own check stays at "0 missing, 0 repeated". In the developer tools'
//! network tab each reconnect of `/events` carries a `Last-Event-ID`
//! header and gets `SSEHub-Resume: complete` back.
//!
//! What happens:
//!
//! - A publisher puts one or two events every 5 ms on a randomly chosen
//!   channel `a`, `b` or `c`; each is a message whose data is
//!   `{"channel":"a","n":17}` (`n` counts that channel's events from 1).
//!   The broker gives every event its id; the example never makes one up.
//! - A chaos task closes a randomly chosen connected client every 50–300 ms
//!   ([`Client::close`]): a real server-side end of the response, while
//!   events keep coming.
//! - `GET /events?topic=a&topic=b` subscribes the connection to the given
//!   channels (all three without `topic`) in the broker's setup. A browser
//!   that reconnects sends the id of the last event it saw, and the broker
//!   replays exactly what it missed on those channels, then goes live. The
//!   page asks for `lastEventId=earliest` on its first connection, so it
//!   starts from the oldest retained event, i.e. from the first one
//!   published.
//! - History is large enough never to evict anything here (the publisher
//!   stops after [`MAX_EVENTS`]), so every resume is exact.
//!
//! Routes:
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | the page (`?topic=a&topic=c&client=NAME`); it records every event in `window.received` |
//! | `GET /events?topic=…&client=NAME` | the event stream; `client` names the connection in `/stats` |
//! | `GET /published?topic=…` | everything published on those channels so far, in publish order |
//! | `POST /stop` | stops publishing and dropping; returns everything published, in publish order |
//! | `GET /stats` | requests per client name: with/without `Last-Event-ID`, resume status, chaos drops |

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use ssehub::broker::{Broker, BrokerConfig, Client, HistoryConfig, ResumeStatus};

/// The channels the publisher publishes on.
const CHANNELS: [&str; 3] = ["a", "b", "c"];

/// The publisher stops after this many events, so the record of what was
/// published (and the history) stays bounded: five minutes or so of demo.
const MAX_EVENTS: u64 = 100_000;

/// The data of every event, as JSON: `{"channel":"a","n":17}`.
#[derive(Clone, Serialize)]
struct Published {
    channel: &'static str,
    /// 1 for the channel's first event, 2 for its second, …
    n: u64,
}

impl Published {
    /// The event's data (written out by hand: this example needs only the
    /// `axum` feature, not `json`).
    fn to_json(&self) -> String {
        format!(r#"{{"channel":"{}","n":{}}}"#, self.channel, self.n)
    }
}

/// Counts per client name (the `client` query parameter), for `/stats`.
#[derive(Default, Serialize)]
struct ClientStats {
    /// Requests to `/events`.
    connections: u64,
    /// Those that carried a `Last-Event-ID` header (reconnects do).
    with_last_event_id: u64,
    /// Those the broker resumed exactly / with a gap (`SSEHub-Resume`).
    resumed_complete: u64,
    resumed_gap: u64,
    /// Connections the chaos task closed.
    dropped: u64,
}

struct App {
    broker: Broker,
    /// Everything published, in publish order. The lock is held across each
    /// publish, so this order is the broker's order too.
    published: Mutex<Vec<Published>>,
    publishing: AtomicBool,
    /// Cleared by `/stop` too: the chaos task stops closing clients.
    dropping: AtomicBool,
    stats: Mutex<BTreeMap<String, ClientStats>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let seed = std::env::var("RESUME_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2024);

    let broker = Broker::with_config(
        BrokerConfig::default()
            // Browsers wait this long before reconnecting.
            .retry(Some(Duration::from_millis(100)))
            // Keep everything this demo publishes: no resume ever has a gap.
            .history(
                HistoryConfig::default()
                    .max_events(MAX_EVENTS as usize)
                    .max_bytes(64 << 20)
                    .max_age(None),
            ),
    );
    let app = Arc::new(App {
        broker,
        published: Mutex::new(Vec::new()),
        publishing: AtomicBool::new(true),
        dropping: AtomicBool::new(true),
        stats: Mutex::new(BTreeMap::new()),
    });

    let events = app.broker.handle_fn({
        let app = app.clone();
        move |client, request| events_setup(&app, client, request)
    });
    let router = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/events", get(events))
        .route("/published", get(published))
        .route("/stop", post(stop))
        .route("/stats", get(stats))
        .with_state(app.clone());

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    tokio::spawn(publisher(app.clone(), seed));
    tokio::spawn(chaos(app, seed.wrapping_add(1)));
    // Every write gets a deadline, so a client that stops reading is dropped.
    let listener =
        ssehub::axum::WriteTimeoutListener::new(listener, std::time::Duration::from_secs(10));
    axum::serve(listener, router).await
}

/// The `topic` query parameters, in order; all channels when there is none.
fn topics(uri: &Uri) -> Vec<String> {
    let query = uri.query().unwrap_or_default();
    let topics: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "topic")
        .map(|(_, value)| value.into_owned())
        .collect();
    if topics.is_empty() {
        CHANNELS.iter().map(|c| (*c).to_owned()).collect()
    } else {
        topics
    }
}

/// Setup of `GET /events`: runs before the response starts, so the
/// broker resumes the client on exactly these subscriptions.
fn events_setup(app: &App, client: &Client, request: &Parts) {
    for topic in topics(&request.uri) {
        let _ = client.subscribe(&topic);
    }
    let name = form_urlencoded::parse(request.uri.query().unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "client")
        .map_or_else(|| "anonymous".to_owned(), |(_, value)| value.into_owned());
    client.set("name", name.clone());

    // Bookkeeping for /stats. The resume status is final once the
    // subscriptions are made.
    let mut stats = lock(&app.stats);
    let entry = stats.entry(name).or_default();
    entry.connections += 1;
    if has_last_event_id(&request.headers) {
        entry.with_last_event_id += 1;
    }
    match client.resume_status() {
        ResumeStatus::Complete => entry.resumed_complete += 1,
        ResumeStatus::Gap => entry.resumed_gap += 1,
        _ => {} // NotRequested: a first connection without `lastEventId`
    }
}

fn has_last_event_id(headers: &HeaderMap) -> bool {
    headers
        .get("last-event-id")
        .is_some_and(|value| !value.is_empty())
}

/// Publishes one or two events every 5 ms on random channels, until
/// `/stop` or [`MAX_EVENTS`].
async fn publisher(app: Arc<App>, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut counts = [0u64; CHANNELS.len()];
    let mut ticker = tokio::time::interval(Duration::from_millis(5));
    let mut total = 0;
    'publishing: loop {
        ticker.tick().await;
        for _ in 0..=rng.below(2) {
            if total == MAX_EVENTS || !app.publishing.load(Ordering::Acquire) {
                break 'publishing;
            }
            let i = rng.below(CHANNELS.len() as u64) as usize;
            counts[i] += 1;
            let event = Published {
                channel: CHANNELS[i],
                n: counts[i],
            };
            let mut published = lock(&app.published);
            app.broker
                .channel(event.channel)
                .and_then(|channel| channel.broadcast_data(event.to_json()))
                .expect("the broker is never closed");
            published.push(event);
            total += 1;
        }
    }
    app.publishing.store(false, Ordering::Release);
    println!("publishing stopped after {total} events");
}

/// Every 50–300 ms, ends the response of one connected client.
async fn chaos(app: Arc<App>, seed: u64) {
    let mut rng = Rng::new(seed);
    loop {
        tokio::time::sleep(Duration::from_millis(50 + rng.below(251))).await;
        if !app.dropping.load(Ordering::Acquire) {
            return;
        }
        let mut clients = Vec::new();
        app.broker.for_each(|client| clients.push(client.clone()));
        if clients.is_empty() {
            continue;
        }
        clients.sort_by_key(Client::id);
        let victim = &clients[rng.below(clients.len() as u64) as usize];
        if let Some(name) = victim.get_string("name") {
            lock(&app.stats).entry(name).or_default().dropped += 1;
        }
        victim.close();
    }
}

/// `GET /published?topic=a&topic=b`.
async fn published(State(app): State<Arc<App>>, uri: Uri) -> Json<Vec<Published>> {
    let topics = topics(&uri);
    let published = lock(&app.published);
    Json(
        published
            .iter()
            .filter(|p| topics.iter().any(|t| t == p.channel))
            .cloned()
            .collect(),
    )
}

/// `POST /stop`: no more publishing and no more dropping; everything that
/// was published.
async fn stop(State(app): State<Arc<App>>) -> Json<Vec<Published>> {
    app.publishing.store(false, Ordering::Release);
    app.dropping.store(false, Ordering::Release);
    // Under the lock: a publish in progress has finished.
    Json(lock(&app.published).clone())
}

/// The body of `GET /stats`.
#[derive(Serialize)]
struct Stats<'a> {
    published: usize,
    publishing: bool,
    connected: usize,
    clients: &'a BTreeMap<String, ClientStats>,
}

/// `GET /stats`.
async fn stats(State(app): State<Arc<App>>) -> Response {
    let published = lock(&app.published).len();
    let clients = lock(&app.stats);
    Json(Stats {
        published,
        publishing: app.publishing.load(Ordering::Acquire),
        connected: app.broker.clients(),
        clients: &clients,
    })
    .into_response()
}

/// xorshift64*: small, seeded, good enough to pick channels and delays.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % n
    }
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ssehub: resume</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 46rem; }
  table { border-collapse: collapse; margin: 1rem 0; }
  th, td { border: 1px solid #ccc; padding: .3rem .8rem; text-align: right; }
  .bad { color: #c33; font-weight: bold; } .good { color: #080; }
  #log { font-family: ui-monospace, monospace; font-size: .8rem; color: #555; white-space: pre; }
</style>
<h1>Resume under fire</h1>
<p>The server publishes on channels a, b and c and closes a random stream every 50–300 ms.
  This page reconnects each time with <code>Last-Event-ID</code> and must still see every event
  of its topics once, in order.</p>
<p>Topics: <b id="topics"></b> · stream: <b id="status">connecting</b> ·
  connections: <b id="opens">0</b> · events: <b id="count">0</b></p>
<table>
  <thead><tr><th>topic</th><th>last n</th><th>missing</th><th>repeated</th></tr></thead>
  <tbody id="checks"></tbody>
</table>
<div id="log"></div>
<script>
  const params = new URLSearchParams(location.search);
  const topics = params.getAll("topic").length ? params.getAll("topic") : ["a", "b", "c"];
  const name = params.get("client") || "browser";
  document.getElementById("topics").textContent = topics.join(", ");

  // The tests read these.
  window.received = []; // {data, lastEventId} of every event, as it arrives
  window.opens = []; // for each open: how many events had arrived before it
  window.errors = 0;
  window.gaps = []; // data of ssehub-gap events: the broker could not resume exactly

  const url = "/events?" + topics.map((t) => "topic=" + encodeURIComponent(t)).join("&") +
    "&client=" + encodeURIComponent(name) +
    // First connection: everything retained. Reconnects send Last-Event-ID,
    // which takes precedence over this.
    "&lastEventId=earliest";
  const source = new EventSource(url);
  window.source = source;
  source.onopen = () => {
    opens.push(received.length);
    show("status", "open");
    show("opens", opens.length);
  };
  source.onerror = () => {
    errors++;
    show("status", source.readyState === EventSource.CONNECTING ? "reconnecting" : "closed");
  };

  source.addEventListener("ssehub-gap", (e) => { gaps.push(e.data); show("status", "gap: " + e.data); });

  // The page's own check: per topic, n must go 1, 2, 3, …
  const last = Object.fromEntries(topics.map((t) => [t, { n: 0, missing: 0, repeated: 0 }]));
  const lines = [];
  source.onmessage = (e) => {
    received.push({ data: e.data, lastEventId: e.lastEventId });
    const { channel, n } = JSON.parse(e.data);
    const check = last[channel];
    if (n <= check.n) check.repeated++;
    else { check.missing += n - check.n - 1; check.n = n; }
    lines.unshift(`${e.lastEventId.padEnd(20)} ${e.data}`);
    lines.length = Math.min(lines.length, 15);
    scheduleRender();
  };

  let pending = false;
  function scheduleRender() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      show("count", received.length);
      document.getElementById("checks").replaceChildren(...topics.map((t) => {
        const c = last[t];
        const row = document.createElement("tr");
        for (const [value, judged] of [[t, false], [c.n, false], [c.missing, true], [c.repeated, true]]) {
          const cell = row.insertCell();
          cell.textContent = value;
          if (judged) cell.className = value ? "bad" : "good";
        }
        return row;
      }));
      document.getElementById("log").textContent = lines.join("\n");
    });
  }
  function show(id, text) { document.getElementById(id).textContent = text; }
</script>
"#;
