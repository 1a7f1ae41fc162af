//! Job progress (the Go package's "Progress Updates" example): `POST /jobs`
//! starts a background job that reports its progress on channel
//! `job:<id>`; `GET /jobs/{id}/progress` streams it.
//!
//! ```text
//! cargo run -p ssehub --features axum --example progress
//! # then open http://127.0.0.1:3000 and press Start (a few times)
//! curl -X POST http://127.0.0.1:3000/jobs          # {"job_id":"1"}
//! curl -N http://127.0.0.1:3000/jobs/1/progress
//! ```
//!
//! An optional argument sets the address: `-- 127.0.0.1:8080`. The channel
//! of a finished job is deleted `PROGRESS_CLEANUP_SECS` seconds (default 60)
//! after it completes; asking for its progress is then a `404`.
//!
//! Things to notice:
//!
//! - A late page still sees the whole job: a first connection is served
//!   from the oldest event the channel's history retains (the `earliest`
//!   resume point), and a page that reconnects after a dropped connection
//!   resumes exactly after the last update it saw (`Last-Event-ID`).
//! - The stream route checks that the job exists and answers `404`
//!   otherwise, using [`Broker::handle_request`] inside an ordinary axum
//!   handler. (The Go example subscribes to any id, which silently
//!   re-creates the channel of a deleted job.)
//! - The broker tells browsers to reconnect after 1 s instead of the
//!   default 3 s: jobs are short.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use ssehub::LAST_EVENT_ID;
use ssehub::broker::{Broker, BrokerConfig, Channel, EARLIEST};

/// The JSON of a `progress` event.
#[derive(Serialize)]
struct Progress {
    job_id: String,
    /// 0 to 100.
    progress: u8,
    /// `running` or `completed`.
    status: &'static str,
    message: String,
}

#[derive(Clone)]
struct App {
    broker: Broker,
    next_id: Arc<AtomicU64>,
    cleanup_after: Duration,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let cleanup_secs = std::env::var("PROGRESS_CLEANUP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let app = App {
        broker: Broker::with_config(BrokerConfig::default().retry(Some(Duration::from_secs(1)))),
        next_id: Arc::new(AtomicU64::new(1)),
        cleanup_after: Duration::from_secs(cleanup_secs),
    };

    let mut router = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/jobs", post(start_job))
        .route("/jobs/{id}/progress", get(job_progress));
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

/// `POST /jobs`: starts a job, answers `{"job_id": "7"}`.
async fn start_job(State(app): State<App>) -> Response {
    let id = app.next_id.fetch_add(1, Ordering::Relaxed);
    // The channel exists from now on, so the browser can ask for progress
    // as soon as it has the answer.
    let channel = match app.broker.channel(&format!("job:{id}")) {
        Ok(channel) => channel,
        Err(err) => return (StatusCode::SERVICE_UNAVAILABLE, err.to_string()).into_response(),
    };
    tokio::spawn(run_job(app, id, channel));
    Json(serde_json::json!({ "job_id": id.to_string() })).into_response()
}

async fn run_job(app: App, id: u64, channel: Channel) {
    let report = |progress: u8, status: &'static str, message: String| {
        let update = Progress {
            job_id: id.to_string(),
            progress,
            status,
            message,
        };
        // Each update gets an id from the broker and goes into the
        // channel's history, which late and reconnecting pages replay.
        let _ = channel.broadcast_json("progress", &update);
    };
    for step in 0..=10u8 {
        report(step * 10, "running", format!("Processing step {step}"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    report(100, "completed", "Job finished successfully".into());

    // Late pages can still read the result for a while; then the channel
    // goes (its remaining subscribers simply leave it).
    tokio::time::sleep(app.cleanup_after).await;
    let _ = app.broker.delete_channel(&format!("job:{id}"));
}

/// `GET /jobs/{id}/progress`: the job's event stream, or `404`.
async fn job_progress(State(app): State<App>, Path(id): Path<u64>, mut request: Parts) -> Response {
    // find_channel, unlike channel(), never creates one.
    let Some(channel) = app.broker.find_channel(&format!("job:{id}")) else {
        return (StatusCode::NOT_FOUND, format!("no job {id}")).into_response();
    };
    // A first connection (no Last-Event-ID) starts from the job's first
    // update still in history; a reconnection resumes after its last one.
    if !request.headers.contains_key(LAST_EVENT_ID) {
        let earliest = HeaderValue::from_static(EARLIEST);
        request.headers.insert(LAST_EVENT_ID, earliest);
    }
    app.broker
        .handle_request(&request, |client| {
            // Subscribing through the handle fails if the channel was
            // deleted meanwhile (by name, it would be created again).
            if channel.subscribe(client).is_err() {
                client.close();
            }
        })
        .into_response()
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ssehub: job progress</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 40rem; }
  button { font: inherit; padding: .4rem 1.2rem; }
  .job { display: grid; grid-template-columns: 5rem 1fr 3.5rem; gap: .3rem .8rem; align-items: center;
         border: 1px solid #ddd; border-radius: 8px; padding: .6rem .9rem; margin: .6rem 0; }
  .job progress { width: 100%; height: 1.1rem; }
  .job .message { grid-column: 2 / 4; color: #666; font-size: .85rem; }
  .job.completed { border-color: #8c8; background: #f3fbf3; }
  .job.reconnecting { border-color: #db6; }
</style>
<h1>Job progress</h1>
<p><button id="start">Start a job</button></p>
<div id="jobs"></div>
<template id="job">
  <div class="job"><b class="name"></b><progress max="100" value="0"></progress><span class="percent">0 %</span>
  <span></span><span class="message">starting…</span></div>
</template>
<script>
  // Per job: the progress values received, in order, and stream transitions
  // (the tests read them).
  window.jobs = {};

  document.getElementById("start").onclick = async () => {
    const { job_id } = await (await fetch("/jobs", { method: "POST" })).json();
    watch(job_id);
  };

  function watch(id) {
    const row = document.getElementById("job").content.firstElementChild.cloneNode(true);
    row.id = "job-" + id;
    row.querySelector(".name").textContent = "Job " + id;
    document.getElementById("jobs").prepend(row);
    const job = (window.jobs[id] = { received: [], states: [], status: "connecting" });

    const source = new EventSource(`/jobs/${id}/progress`);
    source.onopen = () => { job.states.push("open"); row.classList.remove("reconnecting"); };
    source.onerror = () => {
      const state = source.readyState === EventSource.CONNECTING ? "reconnecting" : "closed";
      job.states.push(state);
      if (state === "reconnecting") row.classList.add("reconnecting");
    };
    source.addEventListener("progress", (e) => {
      const p = JSON.parse(e.data);
      job.received.push(p.progress);
      job.status = p.status;
      row.querySelector("progress").value = p.progress;
      row.querySelector(".percent").textContent = p.progress + " %";
      row.querySelector(".message").textContent = p.message;
      if (p.status === "completed") {
        row.classList.add("completed");
        // Done: close, or the browser would keep the stream open (and
        // reconnect to it) for nothing.
        source.close();
      }
    });
  }
</script>
"#;
