//! The active subscriptions API: `GET /.well-known/mercure/subscriptions`,
//! `…/{match_type}/{match}` and `…/{match_type}/{match}/{subscriber}` (and
//! the 0.x `…/{topic}[/{subscriber}]` routes in compatibility mode).
//!
//! A token is required even when subscribers may be anonymous, and it must
//! grant subscribing to the requested path itself: the API is a private
//! view of who listens to what.
//!
//! With several nodes on one Redis, every node lists every node's
//! subscriptions; while that registry cannot be read the API answers `503`
//! with `Retry-After`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode, Uri};

use super::app::{App, HUB_PATH, identity, refuse_auth, unavailable};
use crate::auth::{self, AuthError, Role};
use crate::subscriptions::{PathError, Query};

/// The API's handler.
pub(super) async fn handle(State(app): State<Arc<App>>, uri: Uri, headers: HeaderMap) -> Response {
    const ENDPOINT: &str = "subscriptions";
    let identity = match identity(&app, ENDPOINT, &uri, &headers) {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let Some(active) = &app.core.active else {
        return (
            StatusCode::NOT_FOUND,
            "active subscriptions are off (--subscriptions)\n",
        )
            .into_response();
    };
    let grants = match auth::authenticate_fetching(
        &app.auth,
        Role::Subscriber,
        &headers,
        uri.query(),
        &identity.resource,
    )
    .await
    {
        Ok(Some(grants)) => grants,
        Ok(None) => return refuse_auth(&app, ENDPOINT, &identity, &AuthError::Missing),
        Err(err) => return refuse_auth(&app, ENDPOINT, &identity, &err),
    };
    let path = uri.path();
    let query = match Query::parse(path, app.settings.config.compat) {
        Ok(query) => query,
        Err(PathError::NotFound) => return not_found(),
        Err(err) => {
            let err = AuthError::InvalidRequest(err.to_string());
            return refuse_auth(&app, ENDPOINT, &identity, &err);
        }
    };
    if !grants.can_subscribe(path) {
        return refuse_auth(&app, ENDPOINT, &identity, &AuthError::InsufficientScope);
    }
    let last_event_id = app.core.last_event_id();
    let document = match active.document(&query, path).await {
        Ok(Some(document)) => document,
        Ok(None) => return not_found(),
        Err(err) => {
            // A list without the other nodes' subscriptions would pass
            // for a complete one: refuse until the registry answers.
            tracing::warn!(%err, "subscriptions not listed");
            app.core
                .metrics
                .refused(ENDPOINT, StatusCode::SERVICE_UNAVAILABLE);
            return unavailable("the subscription registry is unavailable");
        }
    };
    let body = document.to_string();
    let etag = format!("\"{:016x}\"", fnv1a(body.as_bytes()));
    let link = format!(
        "<{HUB_PATH}>; rel=\"mercure\"; last-event-id=\"{last_event_id}\"; type=\"mercure\"; content-type=\"application/json\""
    );
    let mut out = HeaderMap::new();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("must-revalidate"),
    );
    if let Ok(link) = HeaderValue::from_str(&link) {
        out.insert(header::LINK, link);
    }
    if let Ok(tag) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, tag);
    }
    if headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| matches!(tag.trim(), "*") || tag.trim().trim_start_matches("W/") == etag)
    {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    (out, body).into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such subscription\n").into_response()
}

/// FNV-1a, 64 bits: a stable tag of the document's bytes, the same on
/// every node and across restarts.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
