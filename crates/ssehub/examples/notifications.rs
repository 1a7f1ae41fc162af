//! User notifications (the Go package's "User Notifications" example):
//! every user has a channel `user:<id>`, everyone is in `broadcast`, and a
//! POST sends a notification to one user or to all.
//!
//! ```text
//! cargo run -p ssehub --features axum --example notifications
//! # open http://127.0.0.1:3000/?user=alice in two tabs and ?user=bob in a third
//! curl -X POST http://127.0.0.1:3000/notifications/send -H 'content-type: application/json' \
//!      -d '{"user_id":"alice","title":"Hi","message":"Only alice sees this","type":"info"}'
//! ```
//!
//! An optional argument sets the address: `-- 127.0.0.1:8080`.
//!
//! Routes:
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | the page: pick a user, see notifications, send one |
//! | `GET /notifications/stream?user=ID` | the user's event stream |
//! | `POST /notifications/send` | `{user_id, title, message, type}`; no or empty `user_id` = everyone |
//! | `GET /notifications/online` | users with open streams, and how many tabs each |
//!
//! Things to notice:
//!
//! - A user with several tabs needs nothing special: each tab is a client
//!   subscribed to the same `user:<id>` channel, so each gets every message.
//! - Every notification has an id, from a counter as in the Go example,
//!   but one that starts at the clock's time: ids must not repeat after a
//!   restart, or a tab reconnecting with an old `Last-Event-ID` could be
//!   resumed after a newer notification that happens to reuse it.
//!   When a connection drops, the browser reconnects with `Last-Event-ID`
//!   and the broker replays, on the channels the setup subscribes to, what
//!   was published meanwhile: the Go example's `sendMissedNotifications`
//!   comes for free. If that is impossible (say, the server restarted), the
//!   stream starts with an `ssehub-gap` event, which the page shows.
//! - `client.set("user_id", …)` stores data on a connection; the `online`
//!   route reads it back with `get_string` while walking all clients.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use ssehub::Event;
use ssehub::broker::{Broker, Client};

/// The JSON of a `notification` event.
#[derive(Serialize)]
struct Notification {
    id: String,
    title: String,
    message: String,
    /// `info`, `warning` or `error`.
    #[serde(rename = "type")]
    kind: String,
}

/// Body of `POST /notifications/send`.
#[derive(Deserialize)]
struct SendRequest {
    #[serde(default)]
    user_id: String,
    title: String,
    #[serde(default)]
    message: String,
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Clone)]
struct App {
    broker: Broker,
    /// The last notification id (the Go example's `eventID`).
    last_id: Arc<AtomicU64>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let app = App {
        broker: Broker::new(),
        // Microseconds since 1970: above any id of an earlier run.
        last_id: Arc::new(AtomicU64::new(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
        )),
    };

    // `handle_fn` registers a client per request and runs the setup before
    // the response starts, so no event can slip by in between.
    let stream = app.broker.handle_fn(stream_setup);
    let mut router = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/notifications/stream", get(stream))
        .route("/notifications/send", post(send))
        .route("/notifications/online", get(online));
    if std::env::var("SSEHUB_TEST_HOOKS").as_deref() == Ok("1") {
        // Test-only: end every stream from the server side, so the browser
        // tests can watch EventSource reconnect.
        router = router.route(
            "/debug/drop-connections",
            post(|State(app): State<App>| async move {
                app.broker.for_each(|client| client.close());
                StatusCode::NO_CONTENT
            }),
        );
    }

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // Every write gets a deadline, so a client that stops reading is dropped.
    let listener =
        ssehub::axum::WriteTimeoutListener::new(listener, std::time::Duration::from_secs(10));
    axum::serve(listener, router.with_state(app)).await
}

#[derive(Deserialize)]
struct StreamQuery {
    user: Option<String>,
}

/// Setup of `GET /notifications/stream?user=ID`.
fn stream_setup(client: &Client, request: &Parts) {
    // A real app takes the user from its session or auth token (EventSource
    // cannot send custom headers; cookies and query parameters work).
    let user = Query::<StreamQuery>::try_from_uri(&request.uri)
        .ok()
        .and_then(|q| q.0.user)
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "guest".into());
    client.set("user_id", user.clone());
    // On a reconnect, what these channels published since the client's
    // Last-Event-ID is replayed before the live stream.
    let _ = client.subscribe(&format!("user:{user}"));
    let _ = client.subscribe("broadcast"); // global notifications
}

fn notification_event(notification: &Notification) -> Event {
    Event::json("notification", notification)
        .expect("a Notification always serializes")
        .with_id(notification.id.clone())
}

/// `POST /notifications/send`.
async fn send(State(app): State<App>, Json(request): Json<SendRequest>) -> Response {
    // Without a user: everyone. With one: that user's channel, which exists
    // once the user has connected (find_channel does not create it).
    let to = Some(request.user_id).filter(|u| !u.is_empty());
    let channel = match &to {
        None => app.broker.channel("broadcast").ok(),
        Some(user) => app.broker.find_channel(&format!("user:{user}")),
    };
    let Some(channel) = channel else {
        let reason = format!("no user {:?} has connected", to.unwrap_or_default());
        return (StatusCode::NOT_FOUND, reason).into_response();
    };

    let notification = Notification {
        id: (app.last_id.fetch_add(1, Ordering::Relaxed) + 1).to_string(),
        title: request.title,
        message: request.message,
        kind: Some(request.kind)
            .filter(|kind| !kind.is_empty())
            .unwrap_or_else(|| "info".into()),
    };
    if let Err(err) = channel.broadcast(notification_event(&notification)) {
        return (StatusCode::SERVICE_UNAVAILABLE, err.to_string()).into_response();
    }
    // `size()` counts the tabs subscribed right now.
    let tabs = channel.size();
    Json(serde_json::json!({ "id": notification.id, "tabs": tabs })).into_response()
}

/// `GET /notifications/online`: `{ "alice": 2, "bob": 1 }`.
async fn online(State(app): State<App>) -> Json<BTreeMap<String, usize>> {
    let mut users = BTreeMap::new();
    app.broker.for_each(|client| {
        if let Some(user) = client.get_string("user_id") {
            *users.entry(user).or_default() += 1;
        }
    });
    Json(users)
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ssehub: notifications</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 46rem; }
  form { display: flex; gap: .5rem; flex-wrap: wrap; align-items: end; margin: 1rem 0; }
  label { display: flex; flex-direction: column; font-size: .8rem; color: #555; }
  input, select, button { font: inherit; padding: .3rem .5rem; }
  fieldset { border: 1px solid #ccc; border-radius: 8px; }
  #list { list-style: none; padding: 0; }
  #list li { border-left: 4px solid #48c; background: #f4f8fc; margin: .4rem 0; padding: .5rem .8rem; }
  #list li.warning { border-color: #d90; background: #fdf8ec; }
  #list li.error { border-color: #c33; background: #fcf0f0; }
  #list .meta { color: #777; font-size: .8rem; }
  #status.open { color: #080; } #status.reconnecting { color: #b60; }
</style>
<h1>Notifications</h1>
<form id="who">
  <label>You are <input id="user" name="user" size="10"></label>
  <button>Switch user</button>
  <span>Stream: <b id="status">connecting</b> · online: <span id="online">–</span></span>
</form>
<fieldset>
  <legend>Send a notification</legend>
  <form id="send">
    <label>To user (empty = everyone) <input id="to" size="10"></label>
    <label>Title <input id="title" value="Hello" required></label>
    <label>Message <input id="message" value="Something happened"></label>
    <label>Type <select id="type"><option>info</option><option>warning</option><option>error</option></select></label>
    <button>Send</button>
  </form>
  <div id="result"></div>
</fieldset>
<ul id="list"></ul>
<script>
  const $ = (id) => document.getElementById(id);
  const user = new URLSearchParams(location.search).get("user") || "alice";
  $("user").value = user;
  document.title = `${user}: notifications`;

  // One EventSource per tab. `states` records its transitions (the tests read it).
  window.states = [];
  const source = new EventSource("/notifications/stream?user=" + encodeURIComponent(user));
  window.source = source;
  source.onopen = () => {
    states.push("open");
    $("status").textContent = "open"; $("status").className = "open";
    refreshOnline();
  };
  source.onerror = () => {
    // Still CONNECTING: the browser retries on its own, sending Last-Event-ID.
    const state = source.readyState === EventSource.CONNECTING ? "reconnecting" : "closed";
    states.push(state);
    $("status").textContent = state; $("status").className = state;
  };

  window.received = []; // every notification id, as it arrives (the tests read it)
  source.addEventListener("notification", (e) => {
    const n = JSON.parse(e.data);
    received.push(n.id);
    const li = document.createElement("li");
    li.className = n.type;
    li.dataset.id = n.id;
    const title = document.createElement("b");
    title.textContent = n.title; // textContent: never render senders' HTML
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${n.type} · ${new Date().toLocaleTimeString()}`;
    li.append(title, " ", n.message, meta);
    $("list").prepend(li);
  });

  // The broker could not replay what this tab missed (history lost, or
  // the server restarted): say so.
  source.addEventListener("ssehub-gap", () => {
    const li = document.createElement("li");
    li.className = "warning";
    li.textContent = "Some notifications may have been missed while disconnected.";
    $("list").prepend(li);
  });

  $("send").onsubmit = async (e) => {
    e.preventDefault();
    const response = await fetch("/notifications/send", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user_id: $("to").value.trim(), title: $("title").value,
                             message: $("message").value, type: $("type").value }),
    });
    if (response.ok) {
      const { tabs } = await response.json();
      $("result").textContent = `sent to ${tabs} open tab${tabs === 1 ? "" : "s"}`;
    } else {
      $("result").textContent = `not sent: ${await response.text()}`;
    }
  };
  $("who").onsubmit = (e) => {
    e.preventDefault();
    location.search = "?user=" + encodeURIComponent($("user").value.trim());
  };

  async function refreshOnline() {
    const users = await (await fetch("/notifications/online")).json();
    $("online").textContent =
      Object.entries(users).map(([u, tabs]) => `${u} (${tabs} tab${tabs > 1 ? "s" : ""})`).join(", ") || "nobody";
  }
  setInterval(refreshOnline, 3000);
</script>
"#;
