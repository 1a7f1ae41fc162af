//! The HTTP surface: the Mercure endpoints ([`subscribe`], [`publish`],
//! the [`subscriptions`] API), [`discovery`] metadata, health, metrics,
//! the live figures (`/stats`), the demo page and the debugger.
//!
//! Every Mercure endpoint first derives the hub's [`Identity`] for the
//! request (`421` for a host outside the public URLs); tokens are checked
//! against that identity's resource identifier, and refusals point at its
//! metadata.

mod discovery;
mod publish;
mod subscribe;
mod subscriptions;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Extension, Router};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::admission::{Admission, Refusal};
use crate::auth::{AuthConfig, AuthError};
use crate::config::Settings;
use crate::demo::DevKey;
use crate::hub::Core;
use crate::identity::{Identity, METADATA_PATH};
use crate::listen::{PeerAddr, RatePaid};
use crate::request::RequestError;
use crate::subscriptions::SUBSCRIPTIONS_PATH;

pub(crate) use subscribe::subscribe_response;

/// The hub's URL path.
pub const HUB_PATH: &str = "/.well-known/mercure";

/// The response header that says where a subscription resumed.
const MERCURE_LAST_EVENT_ID: HeaderName = HeaderName::from_static("mercure-last-event-id");

/// What every handler reads.
#[derive(Debug)]
pub(crate) struct App {
    pub core: Arc<Core>,
    pub auth: AuthConfig,
    pub settings: Settings,
    /// The development key the demo page's tokens are minted with.
    pub dev_key: Option<DevKey>,
    /// Reads the metrics for `/stats`.
    pub stats: crate::stats::Sampler,
    /// The limits subscribers and publishers must pass.
    pub admission: Arc<Admission>,
    /// Set as soon as a shutdown starts: `/readyz` answers `503` from then.
    pub draining: AtomicBool,
}

/// Where a request came from, for the per-address limits.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Peer {
    /// The TCP peer's address (forwarded headers are not trusted).
    pub ip: Option<IpAddr>,
    /// The request's subscribe rate was already charged.
    pub rate_paid: bool,
}

/// The `QUERY` method (draft-ietf-httpbis-safe-method-w-body), which
/// Mercure accepts for subscriptions whose matchers do not fit a URL.
pub(crate) fn query_method() -> Method {
    Method::from_bytes(b"QUERY").expect("a valid token")
}

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
        .route("/", get(crate::demo::page))
        .route("/demo/config.json", get(crate::demo::config))
        .route(crate::stats::STATS_PATH, get(crate::stats::snapshot))
        .route(crate::stats::LIVE_PATH, get(crate::stats::live));
    if settings.debugger {
        router = crate::debugger::routes(router);
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

/// The `Link` header naming the hub, for `identity`.
fn link(identity: &Identity) -> HeaderValue {
    HeaderValue::from_str(&format!("<{}{HUB_PATH}>; rel=\"mercure\"", identity.origin))
        .unwrap_or_else(|_| HeaderValue::from_static("</.well-known/mercure>; rel=\"mercure\""))
}

/// The hub's identity for this request, or the refusal (`421` for a host
/// outside the public URLs, `400` without a host). The refusal is boxed:
/// a `Response` is large and the happy path should not carry its size.
fn identity(
    app: &App,
    endpoint: &'static str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Identity, Box<Response>> {
    app.settings.identities.of(uri, headers).map_err(|err| {
        let status = err.status();
        app.core.metrics.refused(endpoint, status);
        tracing::debug!(endpoint, %status, reason = %err, "request refused");
        Box::new((status, format!("{err}\n")).into_response())
    })
}

/// A refusal of the request's form or parameters: `400 invalid_request`
/// (RFC 6750) or `413`.
fn refuse(app: &App, endpoint: &'static str, identity: &Identity, err: &RequestError) -> Response {
    let status = err.status();
    app.core.metrics.refused(endpoint, status);
    tracing::debug!(endpoint, %status, reason = %err, "request refused");
    if status == StatusCode::BAD_REQUEST {
        return AuthError::InvalidRequest(err.to_string()).response(&identity.metadata);
    }
    (status, format!("{err}\n")).into_response()
}

/// A refusal for the token: `401` or `403` with its challenge.
fn refuse_auth(
    app: &App,
    endpoint: &'static str,
    identity: &Identity,
    err: &AuthError,
) -> Response {
    let response = err.response(&identity.metadata);
    app.core.metrics.refused(endpoint, response.status());
    tracing::debug!(endpoint, status = %response.status(), reason = %err, "request refused");
    response
}

/// A refusal by a limit: `429` or `503`, with `Retry-After`.
fn limited(app: &App, endpoint: &'static str, refusal: &Refusal) -> Response {
    app.core.metrics.refused(endpoint, refusal.status());
    tracing::debug!(endpoint, status = %refusal.status(), reason = %refusal, "request limited");
    refusal.response()
}

/// `503` while the hub shuts down: clients retry, perhaps on another node.
fn shutting_down() -> Response {
    unavailable("shutting down")
}

/// `503` with `Retry-After` and a short reason: nothing was done, and the
/// client should try again shortly (here or on another node).
fn unavailable(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        format!("{reason}\n"),
    )
        .into_response()
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
