//! `GET /stats` and `GET /stats/live`: the [`Sampler`](crate::stats::Sampler)'s figures as JSON
//! and as an event stream.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header;
use ssehub::{Event, StreamConfig};

use super::app::App;
use crate::stats::{Sample, Snapshot};

/// Time between two samples of the live stream.
const TICK: Duration = Duration::from_secs(1);

/// `GET /stats`.
pub(crate) async fn snapshot(State(app): State<Arc<App>>) -> Response {
    let snapshot = app.stats.snapshot(&app.core.metrics, &app.core.broker);
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(snapshot)).into_response()
}

/// `GET /stats/live`: a `stats` event at once, then one a second until the
/// client leaves or the hub drains.
pub(crate) async fn live(State(app): State<Arc<App>>, request: http::request::Parts) -> Response {
    // Samples come every second: no keep-alive comments needed.
    let config = StreamConfig::default().keep_alive(None);
    ssehub::respond(&request, &config, move |sender| async move {
        let mut before: Option<Snapshot> = None;
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if app.core.broker.is_closed() {
                break;
            }
            let now = app.stats.snapshot(&app.core.metrics, &app.core.broker);
            let sample = Sample::between(before.as_ref(), now.clone());
            before = Some(now);
            let event = match Event::json("stats", &sample) {
                Ok(event) => event,
                Err(err) => {
                    tracing::warn!(%err, "stats sample not encodable");
                    break;
                }
            };
            if sender.send(event).await.is_err() {
                break;
            }
        }
    })
    .into_response()
}
