//! The demo page at `/`: subscribe, publish, watch updates arrive.
//!
//! In development mode `/demo/config.json` hands the page a publisher and
//! a subscriber token; otherwise it asks for one.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use http::header;
use serde_json::json;

use crate::routes::{App, HUB_PATH};

const PAGE: &str = include_str!("../assets/index.html");

/// `GET /`.
pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /demo/config.json`.
pub(crate) async fn config(State(app): State<Arc<App>>) -> Response {
    let document = json!({
        "hub": HUB_PATH,
        "publisherToken": app.demo.publisher,
        "subscriberToken": app.demo.subscriber,
        "dev": app.settings.dev,
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        document.to_string(),
    )
        .into_response()
}
