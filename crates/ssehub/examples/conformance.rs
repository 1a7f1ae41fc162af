//! Conformance server: one route per scenario that independent SSE clients
//! (npm `eventsource`, Python `httpx-sse`, headless Chromium's `EventSource`)
//! check against the obligations in `SSE-OBLIGATIONS.md`.
//!
//! It is built only with ssehub's public API, so it doubles as a tour of it:
//! [`ssehub::axum::handler`] for plain streams, [`ssehub::respond`] and
//! [`ssehub::no_content`] inside an ordinary axum handler when a request may
//! be refused, [`StreamConfig`] for keep-alive and reconnection time, and the
//! [`Event`] builders.
//!
//! Run it (the address defaults to `127.0.0.1:0`, an ephemeral port; the
//! first line printed is `listening on http://ADDR`):
//!
//! ```text
//! cargo run -p ssehub --features axum --example conformance -- 127.0.0.1:8080
//! curl -N http://127.0.0.1:8080/encoding
//! ```
//!
//! The client suites live in `tests/clients/` at the workspace root
//! (`tests/clients/run.sh` builds this example, starts it and runs them).
//!
//! Routes:
//!
//! | route | scenario |
//! | --- | --- |
//! | `/` | a tiny HTML page, so the browser tests are same-origin |
//! | `/encoding` | tricky `data` values ([`ENCODING_VECTORS`]), then `end` |
//! | `/types` | typed events (`Notice`, `notice`, empty type), then `end` |
//! | `/ids` | ids with a leading space, non-ASCII, none, reset; then `end` |
//! | `/long` | one 1 MiB single-line `data`, then `end` |
//! | `/silent` | a stream that never sends anything (no retry, no keep-alive) |
//! | `/idle` | 50 ms keep-alive: `first`, 600 ms of silence, `last` |
//! | `/idle/with-id` | the same, with `first` carrying the id `k1` |
//! | `/reconnect/{retry,reset,unicode}?session=S` | first connection sends events and ends; later ones echo `Last-Event-ID` |
//! | `/reconnect/stop?session=S` | first connection sends an event and ends; later ones get `204` |
//! | `/refuse/{status}?session=S` | answers with that 4xx/5xx status |
//! | `/log?session=S` | JSON list of the requests a session made (times in ms since start) |

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use ssehub::{Event, Sender, StreamConfig};

/// The `data` values sent by `/encoding`, one `message` event each, in order.
///
/// What a conforming client must receive for each (WHATWG §9.2.6): line
/// breaks (`\n`, `\r\n`, `\r`) all come back as `\n`, every other character
/// (U+2028, U+2029, U+0085, VT, FF, NUL, U+FEFF, leading spaces, tabs and
/// colons) comes back unchanged, and `""` still fires an event.
pub const ENCODING_VECTORS: &[&str] = &[
    "a\nb",
    "a\n",
    "\n",
    "a\n\nb",
    "a\r\nb", // arrives as "a\nb"
    "a\rb",   // arrives as "a\nb"
    "  lead", // two leading spaces survive
    "\tx",    // a leading tab survives
    ":colon", // a leading colon is data, not a comment
    "",       // fires a message with ""
    "x\u{2028}y\u{2029}z\u{0085}w\u{000B}v\u{000C}u\u{0000}t\u{FEFF}s",
];

/// Length of the `/long` payload: 1 MiB.
const LONG_LEN: usize = 1 << 20;

/// The `/long` payload: `0000000,0000001,...`, 8 bytes per counter, no line
/// break, exactly [`LONG_LEN`] bytes. Counters make a dropped or repeated
/// piece visible, not just a wrong length.
fn long_payload() -> String {
    (0..LONG_LEN / 8).map(|i| format!("{i:07},")).collect()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    // The test scripts read the port from this first line.
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app()).await
}

fn app() -> Router {
    let log = Log::default();
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/encoding", get(ssehub::axum::handler(quiet(), encoding)))
        .route("/types", get(ssehub::axum::handler(quiet(), types)))
        .route("/ids", get(ssehub::axum::handler(quiet(), ids)))
        .route("/long", get(ssehub::axum::handler(quiet(), long)))
        .route(
            "/silent",
            // Nothing at all is ever written by the handler: no `retry:`, no
            // keep-alive. The headers must reach the client anyway.
            get(ssehub::axum::handler(
                StreamConfig::default().retry(None).keep_alive(None),
                |sender: Sender, _| async move { sender.closed().await },
            )),
        )
        .route(
            "/idle",
            get(ssehub::axum::handler(
                StreamConfig::default().keep_alive(Some(Duration::from_millis(50))),
                idle,
            )),
        )
        .route(
            "/idle/with-id",
            get(ssehub::axum::handler(
                StreamConfig::default().keep_alive(Some(Duration::from_millis(50))),
                idle_with_id,
            )),
        )
        .route(
            "/reconnect/retry",
            get(resumable(&log, Duration::from_millis(500), || {
                vec![Event::new("first").with_id("r1")]
            })),
        )
        .route(
            "/reconnect/reset",
            get(resumable(&log, Duration::from_millis(200), || {
                vec![
                    Event::new("a").with_id("x1"),
                    // `id: ` with nothing after it resets the client's last
                    // event id: its next request carries no Last-Event-ID.
                    Event::new("b").with_id(""),
                ]
            })),
        )
        .route(
            "/reconnect/unicode",
            get(resumable(&log, Duration::from_millis(200), || {
                vec![Event::new("a").with_id("…")]
            })),
        )
        .route("/reconnect/stop", get(stop))
        .route("/refuse/{status}", get(refuse))
        .route("/log", get(show_log))
        .with_state(log)
}

/// A stream config with no keep-alive, so only the events a route sends
/// reach the client (plus the initial `retry: 3000`).
fn quiet() -> StreamConfig {
    StreamConfig::default().keep_alive(None)
}

/// Sends a last `end` event, then keeps the stream open until the client
/// leaves, so that it does not reconnect meanwhile.
async fn end(sender: &Sender) {
    let _ = sender.send(Event::with_type("end", "")).await;
    sender.closed().await;
}

async fn encoding(sender: Sender, _request: Parts) {
    for data in ENCODING_VECTORS {
        if sender.send(Event::new(*data)).await.is_err() {
            return;
        }
    }
    end(&sender).await;
}

async fn types(sender: Sender, _request: Parts) {
    let events = [
        Event::with_type("Notice", "upper"),
        Event::with_type("notice", "lower"),
        // An empty type is not written, so clients see a `message`.
        Event::with_type("", "untyped"),
        Event::with_type("message", "explicit"),
    ];
    for event in events {
        if sender.send(event).await.is_err() {
            return;
        }
    }
    end(&sender).await;
}

async fn ids(sender: Sender, _request: Parts) {
    let events = [
        Event::new("1").with_id(" lead"), // client's lastEventId: " lead"
        Event::new("2").with_id("…"),     // "…"
        Event::new("3"),                  // no id: still "…"
        Event::new("4").with_id(""),      // reset: ""
    ];
    for event in events {
        if sender.send(event).await.is_err() {
            return;
        }
    }
    end(&sender).await;
}

async fn long(sender: Sender, _request: Parts) {
    // Larger than the default 1 MiB queue bound: a single oversized event
    // still goes through when the queue is empty.
    if sender.send(Event::new(long_payload())).await.is_ok() {
        end(&sender).await;
    }
}

async fn idle(sender: Sender, _request: Parts) {
    idle_after(sender, Event::new("first")).await;
}

/// As `/idle`, but `first` carries an id: some parsers (httpx-sse 0.4.3)
/// then wrongly dispatch an empty event for the blank line of each
/// keep-alive.
async fn idle_with_id(sender: Sender, _request: Parts) {
    idle_after(sender, Event::new("first").with_id("k1")).await;
}

async fn idle_after(sender: Sender, first: Event) {
    if sender.send(first).await.is_err() {
        return;
    }
    // About 12 keep-alive comments go out meanwhile; none may fire an event.
    tokio::time::sleep(Duration::from_millis(600)).await;
    if sender.send(Event::new("last")).await.is_ok() {
        sender.closed().await;
    }
}

/// A resumable stream with reconnection time `retry`. The first connection
/// of a session sends `first_events()` and ends; every later one sends
/// `resumed` with the id the client resumed from (as ssehub decoded the
/// `Last-Event-ID` header), or `fresh` when it sent none, and stays open.
fn resumable(
    log: &Log,
    retry: Duration,
    first_events: fn() -> Vec<Event>,
) -> impl Fn(Parts) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    let log = log.clone();
    let config = StreamConfig::default().retry(Some(retry)).keep_alive(None);
    ssehub::axum::handler(config, move |sender: Sender, request: Parts| {
        let log = log.clone();
        async move {
            let (session, n) = log.start(&request, StatusCode::OK);
            if n == 1 {
                for event in first_events() {
                    if sender.send(event).await.is_err() {
                        break;
                    }
                }
                // Returning ends the response cleanly: the client reconnects
                // after `retry`, with the last id it saw.
                log.end(&session, n);
                return;
            }
            let greeting = match sender.last_event_id() {
                Some(id) => Event::with_type("resumed", id),
                None => Event::with_type("fresh", ""),
            };
            if sender.send(greeting).await.is_ok() {
                // ssehub drops this future when the client leaves.
                sender.closed().await;
            }
        }
    })
}

/// `/reconnect/stop`: the first connection gets one event and ends; any
/// reconnect is answered `204 No Content`, which tells an EventSource to stop
/// for good. An ordinary axum handler that chooses between
/// [`ssehub::respond`] and [`ssehub::no_content`].
async fn stop(State(log): State<Log>, request: Parts) -> Response {
    let (session, n) = log.start(&request, StatusCode::OK);
    if n > 1 {
        log.set_status(&session, n, StatusCode::NO_CONTENT);
        return ssehub::no_content();
    }
    let config = StreamConfig::default()
        .retry(Some(Duration::from_millis(200)))
        .keep_alive(None);
    ssehub::respond(&request, &config, move |sender| async move {
        let _ = sender.send(Event::new("only").with_id("s1")).await;
        log.end(&session, n);
    })
    .map(axum::body::Body::new)
}

/// `/refuse/{status}`: a non-stream answer (e.g. 401, 404), which browsers
/// treat as terminal.
async fn refuse(State(log): State<Log>, Path(status): Path<u16>, request: Parts) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::BAD_REQUEST);
    log.start(&request, status);
    (status, "refused\n").into_response()
}

async fn show_log(State(log): State<Log>, Query(query): Query<SessionQuery>) -> impl IntoResponse {
    Json(log.get(&query.session))
}

#[derive(Deserialize)]
struct SessionQuery {
    #[serde(default)]
    session: String,
}

/// One request of a session, as `/log` reports it.
#[derive(Clone, Serialize)]
struct Request {
    /// 1 for the first request of the session.
    n: usize,
    status: u16,
    /// Milliseconds since the server started.
    started_ms: f64,
    /// When the server ended the stream (`null` if it did not: still open,
    /// ended by the client, or not a stream).
    ended_ms: Option<f64>,
    /// The raw `Last-Event-ID` header (UTF-8, lossy), `null` when absent.
    last_event_id_header: Option<String>,
}

/// Requests per session, so that tests (which may run concurrently) each see
/// only their own.
#[derive(Clone)]
struct Log {
    epoch: Instant,
    sessions: Arc<Mutex<HashMap<String, Vec<Request>>>>,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            sessions: Arc::default(),
        }
    }
}

impl Log {
    fn now_ms(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64() * 1000.0
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Vec<Request>>) -> R) -> R {
        f(&mut self.sessions.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records a request; returns its session and number.
    fn start(&self, request: &Parts, status: StatusCode) -> (String, usize) {
        let session = Query::<SessionQuery>::try_from_uri(&request.uri)
            .map(|q| q.0.session)
            .unwrap_or_default();
        let header = request
            .headers
            .get(ssehub::LAST_EVENT_ID)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let started_ms = self.now_ms();
        let n = self.with(|sessions| {
            let requests = sessions.entry(session.clone()).or_default();
            requests.push(Request {
                n: requests.len() + 1,
                status: status.as_u16(),
                started_ms,
                ended_ms: None,
                last_event_id_header: header,
            });
            requests.len()
        });
        (session, n)
    }

    fn update(&self, session: &str, n: usize, f: impl FnOnce(&mut Request)) {
        self.with(|sessions| {
            if let Some(request) = sessions.get_mut(session).and_then(|r| r.get_mut(n - 1)) {
                f(request);
            }
        });
    }

    fn end(&self, session: &str, n: usize) {
        let now = self.now_ms();
        self.update(session, n, |r| r.ended_ms = Some(now));
    }

    fn set_status(&self, session: &str, n: usize, status: StatusCode) {
        self.update(session, n, |r| r.status = status.as_u16());
    }

    fn get(&self, session: &str) -> Vec<Request> {
        self.with(|sessions| sessions.get(session).cloned().unwrap_or_default())
    }
}

/// The page the browser tests open, so that their `EventSource`s are
/// same-origin.
const PAGE: &str = "<!doctype html>
<html lang=\"en\">
<meta charset=\"utf-8\">
<title>ssehub conformance</title>
<p>ssehub conformance server. The browser tests open <code>EventSource</code>s from this page.</p>
</html>
";
