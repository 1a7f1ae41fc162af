//! The HTTP surface: the Mercure endpoints ([`subscribe`], [`publish`],
//! the [`subscriptions`] API), [`discovery`] metadata, health, metrics,
//! the live figures (`/stats`), the demo page and the debugger. This file
//! is the router; what the handlers share is in `app.rs`.
//!
//! Every Mercure endpoint first derives the hub's [`Identity`] for the
//! request (`421` for a host outside the public URLs); tokens are checked
//! against that identity's resource identifier, and refusals point at its
//! metadata.

mod app;
mod debugger;
mod demo;
mod discovery;
mod publish;
mod stats;
mod subscribe;
mod subscriptions;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Extension, Router};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::identity::METADATA_PATH;
use crate::listen::{PeerAddr, RatePaid};
use crate::subscriptions::SUBSCRIPTIONS_PATH;

pub use app::HUB_PATH;
pub(crate) use app::{App, Peer};
use app::{query_method, unavailable};
pub(crate) use subscribe::subscribe_response;

/// The router of the hub.
pub(crate) fn router(app: Arc<App>) -> Router {
    let settings = &app.settings;
    let mut router = Router::new()
        .route(
            HUB_PATH,
            // `any`: axum's method router has no `QUERY`.
            any(hub_endpoint).layer(DefaultBodyLimit::max(settings.config.max_body)),
        )
        .route(SUBSCRIPTIONS_PATH, get(subscriptions::handle))
        .route(
            &format!("{SUBSCRIPTIONS_PATH}/{{*rest}}"),
            get(subscriptions::handle),
        )
        .route(METADATA_PATH, get(discovery::metadata))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(demo::page))
        .route("/demo/config.json", get(demo::config))
        .route(crate::stats::STATS_PATH, get(stats::snapshot))
        .route(crate::stats::LIVE_PATH, get(stats::live));
    if settings.debugger {
        router = debugger::routes(router);
    }
    // With an admin listener, metrics stay off the public address unless
    // asked for.
    if settings.config.admin_listen.is_none() || settings.config.metrics_on_main {
        router = router.route("/metrics", get(metrics));
    }
    if !settings.config.cors_origins.is_empty() {
        router = router.layer(cors(&settings.config.cors_origins, settings.config.compat));
    }
    router.with_state(app)
}

/// The admin listener's router: probes and metrics only.
pub(crate) fn admin_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// `/.well-known/mercure`: subscriptions by `GET`, `HEAD` and `QUERY`,
/// publications by `POST`.
async fn hub_endpoint(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    connected: Option<Extension<ConnectInfo<PeerAddr>>>,
    rate_paid: Option<Extension<RatePaid>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let peer = Peer {
        ip: connected.map(|Extension(ConnectInfo(PeerAddr(addr)))| addr.ip()),
        rate_paid: rate_paid.is_some(),
    };
    match method {
        Method::GET | Method::HEAD => subscribe_response(&app, &uri, &headers, None, peer).await,
        Method::POST => publish::handle(&app, &uri, &headers, &body).await,
        m if m == query_method() => {
            subscribe_response(&app, &uri, &headers, Some(&body), peer).await
        }
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD, POST, QUERY")],
            "use GET, HEAD or QUERY to subscribe, POST to publish\n",
        )
            .into_response(),
    }
}

/// The response to a publication (`POST /.well-known/mercure`) with its
/// whole body, for servers that write it themselves (the lean one).
pub(crate) async fn publish_response(
    app: &App,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> http::Response<bytes::Bytes> {
    let refused = match publish::answer(app, uri, headers, body).await {
        Ok(published) => return published,
        Err(refused) => refused,
    };
    let (parts, body) = refused.into_parts();
    // Refusals' bodies are whole strings: collecting them cannot fail or
    // wait.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    http::Response::from_parts(parts, body)
}

/// Response headers a cross-origin page may read: discovery, the resume
/// point, the RFC 6750 challenge (so an app on another origin can tell
/// an expired token from a missing grant and find the metadata), and when
/// a limit lets it try again.
fn exposed(compat: bool) -> &'static [&'static str] {
    if compat {
        &[
            "link",
            "mercure-last-event-id",
            "www-authenticate",
            "retry-after",
            "last-event-id",
        ]
    } else {
        &[
            "link",
            "mercure-last-event-id",
            "www-authenticate",
            "retry-after",
        ]
    }
}

/// Whether `origins` is the `*` wildcard: any origin, but then without
/// credentials (browsers refuse `*` with credentials).
fn any_origin(origins: &[String]) -> bool {
    origins.iter().any(|o| o == "*")
}

fn cors(origins: &[String], compat: bool) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::HEAD, Method::POST, query_method()])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::CACHE_CONTROL,
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers(
            exposed(compat)
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect::<Vec<_>>(),
        )
        .max_age(Duration::from_secs(3600));
    if any_origin(origins) {
        return layer.allow_origin(AllowOrigin::any());
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(configured_origin(o)).ok())
        .collect();
    layer
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
}

/// A configured origin as browsers send it (`https://app.example/` →
/// `https://app.example`).
fn configured_origin(configured: &str) -> &str {
    configured.trim_end_matches('/')
}

/// The CORS headers of an actual (not preflight) request from an allowed
/// origin: what the CORS layer adds on the axum path, for responses the
/// lean stream server writes itself.
pub(crate) fn add_cors_headers(app: &App, request: &HeaderMap, response: &mut HeaderMap) {
    let origins = &app.settings.config.cors_origins;
    let Some(origin) = request.get(header::ORIGIN) else {
        return;
    };
    if origins.is_empty() {
        return;
    }
    let expose = || HeaderValue::from_str(&exposed(app.settings.config.compat).join(",")).ok();
    if any_origin(origins) {
        response.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        response.append(header::VARY, HeaderValue::from_static("origin"));
        if !origins
            .iter()
            .any(|o| configured_origin(o).as_bytes() == origin.as_bytes())
        {
            return;
        }
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        response.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if let Some(expose) = expose() {
        response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose);
    }
}

/// `/readyz`: `200` while this node follows the log and its engine answers,
/// `503` with the reason otherwise (a load balancer then sends traffic to
/// the other nodes).
async fn readyz(axum::extract::State(app): axum::extract::State<Arc<App>>) -> Response {
    if app.draining.load(Ordering::Acquire) || app.core.broker.is_closed() {
        return unavailable("draining");
    }
    match app.core.ready().await {
        Ok(()) => "ready\n".into_response(),
        Err(err) => unavailable(&err.to_string()),
    }
}

/// `/healthz`: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

async fn metrics(axum::extract::State(app): axum::extract::State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.core.metrics.render(),
    )
        .into_response()
}
