//! The HTTP surface: the Mercure endpoints, discovery metadata, health,
//! metrics and the demo page.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{self, AuthConfig, AuthError, Grants, Role, TokenSource};
use crate::body::HubBody;
use crate::config::Settings;
use crate::hub::Core;
use crate::request::{self, RequestError};
use crate::subscriptions::SUBSCRIPTIONS_PATH;

/// The hub's URL path.
pub const HUB_PATH: &str = "/.well-known/mercure";

/// The older response header some Mercure clients read the resume point from.
const MERCURE_LAST_EVENT_ID: HeaderName = HeaderName::from_static("mercure-last-event-id");

/// Development tokens handed to the demo page.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct DemoTokens {
    #[serde(rename = "publisherToken")]
    pub publisher: Option<String>,
    #[serde(rename = "subscriberToken")]
    pub subscriber: Option<String>,
}

/// What every handler reads.
#[derive(Debug)]
pub(crate) struct App {
    pub core: Arc<Core>,
    pub auth: AuthConfig,
    pub settings: Settings,
    pub demo: DemoTokens,
}

type Shared = State<Arc<App>>;

/// The router of the hub.
pub(crate) fn router(app: Arc<App>) -> Router {
    let settings = &app.settings;
    let mut router = Router::new()
        .route(
            HUB_PATH,
            get(subscribe)
                .post(publish)
                .layer(DefaultBodyLimit::max(settings.config.max_body)),
        )
        .route(SUBSCRIPTIONS_PATH, get(subscriptions))
        .route(
            &format!("{SUBSCRIPTIONS_PATH}/{{*rest}}"),
            get(subscriptions),
        )
        .route(
            &format!("/.well-known/oauth-protected-resource{HUB_PATH}"),
            get(resource_metadata),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/", get(crate::demo::page))
        .route("/demo/config.json", get(crate::demo::config));
    if !settings.config.cors_origins.is_empty() {
        router = router.layer(cors(&settings.config.cors_origins));
    }
    router.with_state(app)
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(origin_of(o)).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::CACHE_CONTROL,
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers(EXPOSED.map(HeaderName::from_static))
        .max_age(Duration::from_secs(3600))
}

/// Response headers a cross-origin page may read.
const EXPOSED: [&str; 3] = ["last-event-id", "mercure-last-event-id", "link"];

/// A configured origin as browsers send it (`https://app.example/` →
/// `https://app.example`).
fn origin_of(configured: &str) -> &str {
    configured.trim_end_matches('/')
}

/// The CORS headers of an actual (not preflight) request from an allowed
/// origin: what the CORS layer adds on the axum path, for responses the
/// lean stream server writes itself.
pub(crate) fn add_cors_headers(app: &App, request: &HeaderMap, response: &mut HeaderMap) {
    let Some(origin) = request.get(header::ORIGIN) else {
        return;
    };
    let allowed = app
        .settings
        .config
        .cors_origins
        .iter()
        .any(|o| origin_of(o).as_bytes() == origin.as_bytes());
    response.append(header::VARY, HeaderValue::from_static("origin"));
    if allowed {
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        response.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        response.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_str(&EXPOSED.join(",")).expect("static names"),
        );
    }
}

/// The `Link` header naming the hub.
fn link(app: &App) -> HeaderValue {
    HeaderValue::from_str(&format!("<{}>; rel=\"mercure\"", app.settings.base))
        .unwrap_or_else(|_| HeaderValue::from_static("</.well-known/mercure>; rel=\"mercure\""))
}

fn refuse(app: &App, endpoint: &'static str, err: &RequestError) -> Response {
    let status = match err {
        RequestError::Bad(_) => StatusCode::BAD_REQUEST,
        RequestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        RequestError::Reserved(_) => StatusCode::FORBIDDEN,
    };
    app.core.metrics.refused(endpoint, status);
    tracing::debug!(endpoint, %status, reason = %err, "request refused");
    if status == StatusCode::BAD_REQUEST {
        // RFC 6750: a malformed request to a protected resource.
        return AuthError::InvalidRequest(err.to_string()).response(&app.auth);
    }
    (status, err.to_string()).into_response()
}

fn refuse_auth(app: &App, endpoint: &'static str, err: &AuthError) -> Response {
    let response = err.response(&app.auth);
    app.core.metrics.refused(endpoint, response.status());
    tracing::debug!(endpoint, status = %response.status(), reason = %err, "request refused");
    response
}

/// `GET /.well-known/mercure`: an event stream of the matching updates.
async fn subscribe(State(app): Shared, uri: Uri, headers: HeaderMap) -> Response {
    subscribe_response(&app, &uri, &headers)
}

/// The subscription response, for axum and for the lean stream server.
pub(crate) fn subscribe_response(app: &Arc<App>, uri: &Uri, headers: &HeaderMap) -> Response {
    let settings = &app.settings;
    let matchers = match request::subscribe_matchers(
        uri.query(),
        &settings.base,
        &settings.limits,
        settings.config.compat,
    ) {
        Ok(matchers) => matchers,
        Err(err) => return refuse(app, "subscribe", &err),
    };
    let grants = match auth::authenticate(&app.auth, Role::Subscriber, headers, uri.query()) {
        Ok(Some(grants)) => Some(grants),
        Ok(None) if settings.anonymous => None,
        Ok(None) => return refuse_auth(app, "subscribe", &AuthError::Missing),
        Err(err) => return refuse_auth(app, "subscribe", &err),
    };
    // The header wins over the query parameter (`lastEventID`, or the
    // spellings other clients use).
    let last_event_id = match ssehub::last_event_id(headers, uri.query()) {
        Ok(id) => id,
        Err(err) => return refuse(app, "subscribe", &RequestError::Bad(err.to_string())),
    };
    let subscriber = grants
        .as_ref()
        .and_then(Grants::subject)
        .map_or_else(random_urn, str::to_owned);
    let deadline = deadline(settings, grants.as_ref());
    let query_token = grants
        .as_ref()
        .is_some_and(|g| g.source() == TokenSource::Query);
    let joined = match app
        .core
        .subscribe(matchers, grants, last_event_id.as_deref(), &subscriber)
    {
        Ok(joined) => joined,
        // Shutting down: the stream ends at once and the browser retries,
        // perhaps on another node.
        Err(_) => return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response(),
    };
    tracing::debug!(
        client = %joined.client.id(),
        %subscriber,
        resumed_at = joined.last_event_id.as_deref(),
        "subscribed"
    );
    if let Some(deadline) = deadline {
        let client = joined.client.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => client.close(),
                () = client.closed() => {}
            }
        });
    }
    let mut response = joined
        .body
        .into_response()
        .map(|body| Body::new(HubBody::new(body, joined.membership)));
    let out = response.headers_mut();
    out.insert(header::LINK, link(app));
    if query_token {
        out.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
    if let Some(id) = joined
        .last_event_id
        .and_then(|id| HeaderValue::from_str(&id).ok())
    {
        out.insert("last-event-id", id.clone());
        out.insert(MERCURE_LAST_EVENT_ID, id);
    }
    response
}

/// When a subscription must end: the token's expiry, and the maximum
/// lifetime less a random part of the jitter (so connections opened
/// together do not all end together).
fn deadline(settings: &Settings, grants: Option<&Grants>) -> Option<tokio::time::Instant> {
    let now = tokio::time::Instant::now();
    let expiry = grants.and_then(Grants::expires_at).map(|at| {
        now + at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    });
    let lifetime = settings.config.max_lifetime.map(|max| {
        let jitter = settings.config.lifetime_jitter.clamp(0.0, 1.0) * rand::random::<f64>();
        now + max.mul_f64(1.0 - jitter)
    });
    match (expiry, lifetime) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A random `urn:uuid:` (version 4) for an anonymous subscriber.
fn random_urn() -> String {
    uuid::Uuid::new_v4().urn().to_string()
}

/// `POST /.well-known/mercure`: publishes one update, answers its id.
async fn publish(State(app): Shared, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let settings = &app.settings;
    let grants = match auth::authenticate(&app.auth, Role::Publisher, &headers, uri.query()) {
        Ok(Some(grants)) => grants,
        Ok(None) => return refuse_auth(&app, "publish", &AuthError::Missing),
        Err(err) => return refuse_auth(&app, "publish", &err),
    };
    if grants.source() == TokenSource::Cookie
        && let Err(err) = auth::check_csrf(&headers, &app.auth, &settings.config.cors_origins)
    {
        return refuse_auth(&app, "publish", &err);
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        let err = RequestError::Bad("body must be application/x-www-form-urlencoded".into());
        return refuse(&app, "publish", &err);
    }
    let update = match request::publish_form(
        &body,
        &settings.base,
        &settings.limits,
        settings.config.compat,
    ) {
        Ok(update) => update,
        Err(err) => return refuse(&app, "publish", &err),
    };
    if !update.topics.iter().all(|t| grants.can_publish(t)) {
        return refuse_auth(&app, "publish", &AuthError::InsufficientScope);
    }
    match app.core.publish(update) {
        Ok(id) => {
            tracing::debug!(%id, "published");
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    ),
                    (header::LINK, link(&app)),
                ],
                id.to_string(),
            )
                .into_response()
        }
        Err(ssehub::BrokerError::Closed) => {
            (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
        }
        Err(err) => refuse(&app, "publish", &RequestError::Bad(err.to_string())),
    }
}

/// The subscriptions API: the collection, a matcher's subscriptions, or one.
async fn subscriptions(State(app): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let Some(active) = &app.core.active else {
        return (
            StatusCode::NOT_FOUND,
            "active subscriptions are off (--subscriptions)",
        )
            .into_response();
    };
    let grants = match auth::authenticate(&app.auth, Role::Subscriber, &headers, uri.query()) {
        Ok(Some(grants)) => grants,
        Ok(None) => return refuse_auth(&app, "subscriptions", &AuthError::Missing),
        Err(err) => return refuse_auth(&app, "subscriptions", &err),
    };
    let path = uri.path();
    if !grants.can_subscribe(path) {
        return refuse_auth(&app, "subscriptions", &AuthError::InsufficientScope);
    }
    match active.document(path, &app.core.last_event_id()) {
        Some(document) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/ld+json"),
                ),
                (header::LINK, link(&app)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("must-revalidate"),
                ),
            ],
            document.to_string(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such subscription").into_response(),
    }
}

/// OAuth 2.0 protected resource metadata (RFC 9728).
async fn resource_metadata(State(app): Shared) -> Response {
    let mut methods = vec!["header"];
    if app.auth.query_token {
        methods.push("query");
    }
    let mut document = json!({
        "resource": app.auth.audience,
        "bearer_methods_supported": methods,
        "mercure_cookie": true,
        "mercure_version": 8,
    });
    if let Some(issuer) = &app.auth.issuer {
        document["authorization_servers"] = json!([issuer]);
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.to_string(),
    )
        .into_response()
}

async fn metrics(State(app): Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.core.metrics.render(),
    )
        .into_response()
}
