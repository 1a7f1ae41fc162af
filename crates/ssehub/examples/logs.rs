//! Log streaming (the Go package's "Log Streaming" example): `tail -f` in
//! the browser. Each stream tails a file with [`ssehub::serve_fn`] and sends
//! every new line as a `log` event.
//!
//! ```text
//! cargo run -p ssehub --features axum --example logs
//! # then open http://127.0.0.1:3000
//! ```
//!
//! An optional argument sets the address: `-- 127.0.0.1:8080`.
//!
//! So that the demo works alone, the example writes its own log: a line
//! every 500 ms to `demo.log` in a directory under the system temp dir
//! (printed at start), truncated every 60 lines the way logrotate's
//! `copytruncate` does it. `GET /logs/stream?file=NAME` tails another file
//! of that directory; anything outside it is refused with `400`: a log
//! viewer must never become a way to read arbitrary files.
//!
//! ```text
//! echo "hello from the shell" >> /tmp/ssehub-example-logs/demo.log
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde::Deserialize;
use ssehub::{Event, Sender, StreamConfig};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// How often a stream looks for new lines.
const POLL: Duration = Duration::from_millis(100);

/// The directory whose files may be tailed.
fn log_dir() -> PathBuf {
    std::env::temp_dir().join("ssehub-example-logs")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    tokio::fs::create_dir_all(log_dir()).await?;
    let demo_log = log_dir().join("demo.log");
    tokio::fs::write(&demo_log, "").await?;
    tokio::spawn(write_demo_log(demo_log.clone()));

    // The Go `HandlerFunc` + `ServeFunc`: one task per stream, cancelled
    // (the tail future dropped) as soon as the browser goes away.
    let config = StreamConfig::default().keep_alive(Some(Duration::from_secs(30)));
    let tail = ssehub::axum::handler(config, |sender, request| async move {
        // `stream` below has checked the path.
        if let Ok(path) = requested_file(&request) {
            let _ = ssehub::serve_fn(sender, |send| tail_file(path, send)).await;
        }
    });
    // Check the request before any stream is opened, so a bad one gets a
    // real error status (EventSource then gives up instead of retrying).
    let stream = move |request: Parts| async move {
        match requested_file(&request) {
            Ok(_) => tail(request).await,
            Err(reason) => (StatusCode::BAD_REQUEST, reason).into_response(),
        }
    };

    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/logs/stream", get(stream));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!("writing {}", demo_log.display());
    // Every write gets a deadline, so a client that stops reading is dropped.
    let listener =
        ssehub::axum::WriteTimeoutListener::new(listener, std::time::Duration::from_secs(10));
    axum::serve(listener, app).await
}

#[derive(Deserialize)]
struct LogQuery {
    file: Option<String>,
}

/// The file `?file=` names: `demo.log` by default, relative names are
/// looked up in the log directory, and whatever it is must resolve (after
/// `..` and symlinks) to an existing file inside that directory.
fn requested_file(request: &Parts) -> Result<PathBuf, String> {
    let query = Query::<LogQuery>::try_from_uri(&request.uri).map_err(|e| e.body_text())?;
    let name = query.0.file.unwrap_or_else(|| "demo.log".into());
    let refused = || format!("{name:?} is not a log file of this server");
    let dir = log_dir().canonicalize().map_err(|e| e.to_string())?;
    let path = dir.join(&name).canonicalize().map_err(|_| refused())?;
    if path.starts_with(&dir) && path.is_file() {
        Ok(path)
    } else {
        Err(refused())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Sends every line appended to `path` from now on, as `log` events.
///
/// The file is reopened by name on every poll, so a file that was rotated
/// (renamed and replaced) is followed; one that shrank (truncated in place)
/// is read again from the top.
async fn tail_file(path: PathBuf, send: Sender) -> Result<(), BoxError> {
    let mut position = file_len(&path).await; // start at the end, like `tail -f`
    let mut partial = Vec::new(); // a line whose '\n' has not been written yet
    let mut ticker = tokio::time::interval(POLL);
    loop {
        ticker.tick().await;
        let len = file_len(&path).await;
        if len < position {
            position = 0; // truncated or replaced: start over
            partial.clear();
        }
        if len == position {
            continue;
        }
        let mut file = tokio::fs::File::open(&path).await?;
        file.seek(std::io::SeekFrom::Start(position)).await?;
        let read = file.take(len - position).read_to_end(&mut partial).await?;
        position += read as u64;

        // Send the complete lines; keep the rest for the next poll.
        let complete = partial
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let text = String::from_utf8_lossy(&partial[..complete]).into_owned();
        partial.drain(..complete);
        for line in text.lines() {
            send.send(Event::with_type("log", line)).await?;
        }
    }
}

/// Length of the file, 0 while it does not exist (mid-rotation, say).
async fn file_len(path: &Path) -> u64 {
    tokio::fs::metadata(path).await.map_or(0, |m| m.len())
}

/// Appends a made-up log line every 500 ms; every 60 lines, truncates the
/// file first.
async fn write_demo_log(path: PathBuf) {
    const LEVELS: [&str; 4] = ["INFO", "INFO", "DEBUG", "WARN"];
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    for n in 1u64.. {
        ticker.tick().await;
        let truncate = n % 60 == 0;
        let line = format!(
            "{} {:5} request {n} served in {} ms{}\n",
            utc_time(),
            LEVELS[n as usize % LEVELS.len()],
            (n * 37) % 250,
            if truncate { " (log rotated)" } else { "" },
        );
        if let Err(err) = write_line(&path, &line, truncate).await {
            eprintln!("cannot write {}: {err}", path.display());
        }
    }
}

async fn write_line(path: &Path, line: &str, truncate: bool) -> std::io::Result<()> {
    let mut options = tokio::fs::OpenOptions::new();
    if truncate {
        options.write(true).truncate(true);
    } else {
        options.append(true);
    }
    let mut file = options.create(true).open(path).await?;
    file.write_all(line.as_bytes()).await
}

/// `HH:MM:SS.mmm` in UTC.
fn utc_time() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() % 86_400;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02}.{:03}", now.subsec_millis())
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ssehub: log streaming</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
  #log { background: #111; color: #ddd; font: 13px/1.45 ui-monospace, monospace; padding: 1rem;
         height: 60vh; overflow-y: auto; white-space: pre-wrap; border-radius: 6px; }
  #log .WARN { color: #fc6; } #log .DEBUG { color: #8ad; }
  #status.open { color: #080; } #status.reconnecting { color: #b60; } #status.closed { color: #c33; }
</style>
<h1>Log streaming</h1>
<p>File: <code id="file"></code> · stream: <b id="status">connecting</b> · lines: <b id="count">0</b>
   · <label><input type="checkbox" id="follow" checked> follow</label></p>
<div id="log"></div>
<script>
  const $ = (id) => document.getElementById(id);
  // ?file=NAME on this page is passed on to the stream.
  const file = new URLSearchParams(location.search).get("file") || "demo.log";
  $("file").textContent = file;
  const source = new EventSource("/logs/stream?file=" + encodeURIComponent(file));
  let count = 0;
  source.onopen = () => { $("status").textContent = "open"; $("status").className = "open"; };
  source.onerror = () => {
    // A 400 (file refused) makes EventSource give up: readyState CLOSED.
    const state = source.readyState === EventSource.CONNECTING ? "reconnecting" : "closed";
    $("status").textContent = state; $("status").className = state;
  };
  source.addEventListener("log", (e) => {
    const div = document.createElement("div");
    div.textContent = e.data;
    const level = e.data.split(/\s+/)[1];
    if (level) div.className = level;
    const log = $("log");
    log.append(div);
    while (log.childElementCount > 1000) log.firstElementChild.remove();
    if ($("follow").checked) log.scrollTop = log.scrollHeight;
    $("count").textContent = ++count;
  });
</script>
"#;
