//! The debugger at `/.well-known/mercure/debug/`, where the reference hub
//! serves its own: a read-only page for production hubs, on with
//! `--debugger` (and by default in development mode).
//!
//! It shows the hub's live figures (`/stats/live`) and lets an operator
//! watch the updates an anonymous subscriber (or the browser's own cookie)
//! may see. It never mints, asks for or shows a token: its configuration
//! document holds only what the page adapts to, and every file is static.
//! Scripts and styles are files of their own, so the page runs under a
//! strict Content-Security-Policy (`'self'` only, nothing inline).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{HeaderValue, header};
use serde::Serialize;

use super::app::{App, HUB_PATH};
use crate::stats::LIVE_PATH;

/// The debugger's path (with its trailing slash: the page's files are
/// relative to it).
pub(crate) const DEBUG_PATH: &str = "/.well-known/mercure/debug/";

const PAGE: &str = include_str!("../../assets/debugger.html");
const SCRIPT: &str = include_str!("../../assets/debugger.js");
/// The styles shared with the demo page, then the debugger's own: one
/// file, one request.
const STYLE: &str = concat!(
    include_str!("../../assets/base.css"),
    include_str!("../../assets/debugger.css")
);
/// The styles the demo page and the debugger share.
pub(crate) const BASE_STYLE: &str = include_str!("../../assets/base.css");
pub(crate) const LIVE_SCRIPT: &str = include_str!("../../assets/live.js");
pub(crate) const LIVE_STYLE: &str = include_str!("../../assets/live.css");

/// Same-origin files only, no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The debugger's routes, added to `router` when it is enabled.
pub(crate) fn routes(router: Router<Arc<App>>) -> Router<Arc<App>> {
    let file = |content_type: &'static str, body: &'static str| {
        get(move || async move { asset(content_type, body) })
    };
    router
        .route(
            DEBUG_PATH.trim_end_matches('/'),
            get(|| async { Redirect::permanent(DEBUG_PATH) }),
        )
        .route(DEBUG_PATH, file("text/html; charset=utf-8", PAGE))
        .route(&format!("{DEBUG_PATH}config.json"), get(config))
        .route(
            &format!("{DEBUG_PATH}debugger.js"),
            file("text/javascript; charset=utf-8", SCRIPT),
        )
        .route(
            &format!("{DEBUG_PATH}debugger.css"),
            file("text/css; charset=utf-8", STYLE),
        )
        .route(
            &format!("{DEBUG_PATH}live.js"),
            file("text/javascript; charset=utf-8", LIVE_SCRIPT),
        )
        .route(
            &format!("{DEBUG_PATH}live.css"),
            file("text/css; charset=utf-8", LIVE_STYLE),
        )
}

/// A static file with the debugger's security headers.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// What the page adapts to: nothing secret, no token.
#[derive(Serialize)]
struct DebuggerConfig {
    hub: &'static str,
    stats: &'static str,
    version: &'static str,
    dev: bool,
    anonymous: bool,
    subscriptions: bool,
}

/// `GET /.well-known/mercure/debug/config.json`.
async fn config(State(app): State<Arc<App>>) -> Response {
    let document = DebuggerConfig {
        hub: HUB_PATH,
        stats: LIVE_PATH,
        version: env!("CARGO_PKG_VERSION"),
        dev: app.settings.dev,
        anonymous: app.settings.anonymous,
        subscriptions: app.settings.subscriptions,
    };
    let mut response = axum::Json(document).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
