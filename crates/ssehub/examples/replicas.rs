//! One replica of an application that runs several behind a load balancer.
//! Every replica builds its `Broker` on the same Redis stream (a
//! [`RedisJournal`]), so:
//!
//! - a publish on any replica reaches the pages of every replica, each
//!   once, all in the one order of the stream, with the same id everywhere;
//! - a page whose connection drops and comes back on *another* replica
//!   sends its `Last-Event-ID` there and gets exactly what it missed, then
//!   the live stream: the journal is the history, not one process's memory.
//!
//! ```text
//! # two terminals, one Redis
//! cargo run -p ssehub --features axum,redis --example replicas -- 127.0.0.1:3001 redis://127.0.0.1:6379 demo a
//! cargo run -p ssehub --features axum,redis --example replicas -- 127.0.0.1:3002 redis://127.0.0.1:6379 demo b
//! # open http://127.0.0.1:3002/ (replica b), then publish on replica a:
//! curl -d 'hello from a' http://127.0.0.1:3001/publish
//! ```
//!
//! The page on `b` lists the event with the id `a` answered. Stop `b`
//! (Ctrl-C), publish a few more on `a`, start `b` again: the page
//! reconnects with `Last-Event-ID` and lists exactly the events it missed.
//!
//! Arguments, all optional and positional: the listen address
//! (`127.0.0.1:3000`), the Redis URL (`redis://127.0.0.1:6379`), the stream
//! key (`ssehub-replicas-example`) and the replica's name (`replica`), the
//! last three also from the environment as `REDIS_URL`, `REPLICAS_STREAM`
//! and `REPLICA` — how replicas are usually configured. The journal keeps
//! the stream key and the hash `{KEY}:meta` in Redis.
//!
//! Routes:
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | the page: the events this replica's stream delivers, and a form to publish |
//! | `GET /events` | the event stream; resumes after `Last-Event-ID` (or `?lastEventId=`) |
//! | `POST /publish` | the body (text) becomes an event's data; answers its id once Redis stored it, `503` when it could not |
//! | `GET /readyz` | `200` once this replica follows the stream, `503` while Redis is unreachable |

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use ssehub::broker::{Broker, BrokerConfig};
use ssehub::journal::{JournalError, RedisJournal, RedisJournalConfig};
use ssehub::{BrokerError, Event};

/// Where this replica listens, which Redis stream it shares and its name.
struct Args {
    addr: String,
    redis_url: String,
    stream: String,
    replica: String,
}

impl Args {
    /// Positional arguments first, then the environment, then defaults; an
    /// empty value counts as none (`'' '' demo` sets only the stream key).
    fn parse() -> Self {
        let given = |value: &String| !value.is_empty();
        let mut args = std::env::args().skip(1);
        let mut next = |env: Option<&str>, default: &str| {
            args.next()
                .filter(given)
                .or_else(|| env.and_then(|name| std::env::var(name).ok()).filter(given))
                .unwrap_or_else(|| default.to_owned())
        };
        Self {
            addr: next(None, "127.0.0.1:3000"),
            redis_url: next(Some("REDIS_URL"), "redis://127.0.0.1:6379"),
            stream: next(Some("REPLICAS_STREAM"), "ssehub-replicas-example"),
            replica: next(Some("REPLICA"), "replica"),
        }
    }
}

struct App {
    broker: Broker,
    /// The page, with this replica's name in it.
    page: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();

    // Nothing is contacted yet: a replica may start while Redis is away;
    // /readyz says so until it can follow the stream, and publishes fail
    // with 503 meanwhile.
    let journal = RedisJournal::new(RedisJournalConfig::new(args.redis_url, args.stream))
        .map_err(|err| format!("cannot set up the Redis journal: {err}"))?;
    let broker = Broker::with_config(
        BrokerConfig::default()
            // A dropped page comes back after a second, on whichever
            // replica the load balancer picks.
            .retry(Some(Duration::from_secs(1)))
            .journal(Arc::new(journal)),
    );
    let app = Arc::new(App {
        broker: broker.clone(),
        page: PAGE.replace("{{REPLICA}}", &html_escape(&args.replica)),
    });

    let router = Router::new()
        .route("/", get(page))
        // Every connection receives every publish (the broker's broadcast
        // channel); the broker reads `Last-Event-ID` and resumes from Redis.
        .route("/events", get(broker.handler()))
        .route("/publish", post(publish))
        .route("/readyz", get(readyz))
        .with_state(app);

    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", args.addr))?;
    println!("listening on http://{}", listener.local_addr()?);
    println!("replica {:?}", args.replica);
    // Every write gets a deadline, so a page that stops reading is dropped.
    let listener = ssehub::axum::WriteTimeoutListener::new(listener, Duration::from_secs(10));
    axum::serve(listener, router).await?;
    Ok(())
}

/// `GET /`.
async fn page(State(app): State<Arc<App>>) -> Html<String> {
    Html(app.page.clone())
}

/// `POST /publish`: the acknowledged publish, so the answer is only `200`
/// once Redis stored the event, with the journal id every replica writes on
/// the wire. A non-UTF-8 body is refused by axum's `String` extractor (400).
async fn publish(State(app): State<Arc<App>>, body: String) -> Response {
    match app.broker.publish(Event::new(body)).await {
        Ok(published) => {
            // With a journal every event gets the journal's id.
            let id = published.id.unwrap_or_default();
            (StatusCode::OK, format!("{id}\n")).into_response()
        }
        Err(err @ BrokerError::Invalid(_)) => {
            (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response()
        }
        Err(err @ BrokerError::Journal(JournalError::TooLarge { .. })) => {
            (StatusCode::PAYLOAD_TOO_LARGE, format!("{err}\n")).into_response()
        }
        // Not stored (Redis unreachable, refusing, …): the caller may retry,
        // here or on another replica.
        Err(err) => unavailable(&err),
    }
}

/// `GET /readyz`: for the load balancer, which should send no traffic to a
/// replica that cannot follow the stream (its pages would miss events).
async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.broker.ready().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(err) => unavailable(&err),
    }
}

fn unavailable(err: &BrokerError) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("retry-after", "1")],
        format!("{err}\n"),
    )
        .into_response()
}

/// The replica's name goes into the page as text.
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ssehub: replica {{REPLICA}}</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 46rem; }
  code { color: #555; } .gap { color: #c33; }
</style>
<h1>Served by replica <span id="replica">{{REPLICA}}</span></h1>
<p>Stream: <b id="status">connecting</b>. Publish on any replica; every page of every replica
  lists the event once, with the same id.</p>
<form id="publish"><input id="text" placeholder="an event" autofocus> <button>Publish here</button>
  <span id="answer"></span></form>
<ol id="events"></ol>
<script>
  // The tests read these: every event as it arrived, and any gap notice.
  window.received = []; // {id, data}
  window.gaps = [];

  const list = document.getElementById("events");
  const status = document.getElementById("status");
  function add(id, text, className) {
    const item = document.createElement("li");
    item.dataset.id = id;
    if (className) item.className = className;
    const code = document.createElement("code");
    code.textContent = id;
    item.append(code, " ", text);
    list.append(item);
  }

  // A reconnect, to this replica or another, sends the last id seen.
  const source = new EventSource("/events");
  source.onopen = () => { status.textContent = "open"; };
  source.onerror = () => {
    status.textContent = source.readyState === EventSource.CONNECTING ? "reconnecting" : "closed";
  };
  source.onmessage = (e) => {
    received.push({ id: e.lastEventId, data: e.data });
    add(e.lastEventId, e.data);
  };
  // The broker could not resume exactly (Redis lost the events missed).
  source.addEventListener("ssehub-gap", (e) => {
    gaps.push(e.data);
    add("", "gap: " + e.data, "gap");
  });

  document.getElementById("publish").onsubmit = async (e) => {
    e.preventDefault();
    const text = document.getElementById("text");
    const answer = document.getElementById("answer");
    try {
      const response = await fetch("/publish", { method: "POST", body: text.value });
      answer.textContent = (response.ok ? "stored as " : "not stored: ") + (await response.text());
      if (response.ok) text.value = "";
    } catch (err) {
      answer.textContent = "not stored: " + err;
    }
  };
</script>
"#;
