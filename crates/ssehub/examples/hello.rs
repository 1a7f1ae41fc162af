//! The smallest useful ssehub server: a page whose EventSource shows a tick
//! every second, resuming after the last tick it saw when it reconnects.
//!
//! ```text
//! cargo run -p ssehub --features axum --example hello
//! # then open http://127.0.0.1:3000
//! ```
//!
//! An optional argument sets the address: `-- 127.0.0.1:8080`.

use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use ssehub::{Event, StreamConfig};

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>ssehub: hello</title>
<h1>ssehub: hello</h1>
<p>Status: <b id="status">connecting</b></p>
<ol id="ticks"></ol>
<script>
  const source = new EventSource("/events");
  const status = document.getElementById("status");
  source.onopen = () => status.textContent = "open";
  source.onerror = () => status.textContent = "reconnecting";
  source.addEventListener("tick", (e) => {
    const li = document.createElement("li");
    li.textContent = `${e.data} (id ${e.lastEventId})`;
    document.getElementById("ticks").prepend(li);
  });
</script>
"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let events = ssehub::axum::handler(StreamConfig::default(), |sender, _request| async move {
        // Resume after the last tick the browser saw, if it says so.
        let start = sender
            .last_event_id()
            .and_then(|id| id.parse::<u64>().ok())
            .map_or(0, |id| id + 1);
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        for n in start.. {
            ticker.tick().await;
            let event = Event::with_type("tick", format!("tick {n}")).with_id(n.to_string());
            if sender.send(event).await.is_err() {
                break; // the browser left
            }
        }
    });
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/events", get(events));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // Every write gets a deadline, so a client that stops reading is dropped.
    let listener =
        ssehub::axum::WriteTimeoutListener::new(listener, std::time::Duration::from_secs(10));
    axum::serve(listener, app).await
}
