//! What every handler reads ([`App`]) and the answers they share: the
//! hub's identity for a request, and the refusals. Apart from `mod.rs` (the
//! router) so the handlers, the debugger and the lean server import it
//! without importing the router that names them.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderName};
use http::{HeaderMap, Method, StatusCode, Uri};

use crate::admission::{Admission, Refusal};
use crate::auth::{AuthConfig, AuthError};
use crate::config::Settings;
use crate::demo::DevKey;
use crate::hub::Core;
use crate::identity::Identity;
use crate::request::RequestError;
use crate::stats::Sampler;

/// The hub's URL path.
pub const HUB_PATH: &str = "/.well-known/mercure";

/// The response header that says where a subscription resumed.
pub(super) const MERCURE_LAST_EVENT_ID: HeaderName =
    HeaderName::from_static("mercure-last-event-id");

/// What every handler reads.
#[derive(Debug)]
pub(crate) struct App {
    pub core: Arc<Core>,
    pub auth: AuthConfig,
    pub settings: Settings,
    /// The development key the demo page's tokens are minted with.
    pub dev_key: Option<DevKey>,
    /// Reads the metrics for `/stats`.
    pub stats: Sampler,
    /// The limits subscribers and publishers must pass.
    pub admission: Arc<Admission>,
    /// Set as soon as a shutdown starts: `/readyz` answers `503` from then.
    pub draining: AtomicBool,
}

/// Where a request came from, for the per-address limits.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Peer {
    /// The TCP peer's address (forwarded headers count only from a
    /// `--trusted-proxy`, read where the limits are checked).
    pub ip: Option<IpAddr>,
    /// The request's subscribe rate was already charged.
    pub rate_paid: bool,
}

/// The `QUERY` method (draft-ietf-httpbis-safe-method-w-body), which
/// Mercure accepts for subscriptions whose matchers do not fit a URL.
pub(crate) fn query_method() -> Method {
    Method::from_bytes(b"QUERY").expect("a valid token")
}

/// The hub's identity for this request, or the refusal (`421` for a host
/// outside the public URLs, `400` without a host). The refusal is boxed:
/// a `Response` is large and the happy path should not carry its size.
pub(super) fn identity(
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
pub(super) fn refuse(
    app: &App,
    endpoint: &'static str,
    identity: &Identity,
    err: &RequestError,
) -> Response {
    let status = err.status();
    app.core.metrics.refused(endpoint, status);
    tracing::debug!(endpoint, %status, reason = %err, "request refused");
    if status == StatusCode::BAD_REQUEST {
        return AuthError::InvalidRequest(err.to_string()).response(&identity.metadata);
    }
    (status, format!("{err}\n")).into_response()
}

/// A refusal for the token: `401` or `403` with its challenge.
pub(super) fn refuse_auth(
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
pub(super) fn limited(app: &App, endpoint: &'static str, refusal: &Refusal) -> Response {
    app.core.metrics.refused(endpoint, refusal.status());
    tracing::debug!(endpoint, status = %refusal.status(), reason = %refusal, "request limited");
    refusal.response()
}

/// `503` while the hub shuts down: clients retry, perhaps on another node.
pub(super) fn shutting_down() -> Response {
    unavailable("shutting down")
}

/// `503` with `Retry-After` and a short reason: nothing was done, and the
/// client should try again shortly (here or on another node).
pub(super) fn unavailable(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        format!("{reason}\n"),
    )
        .into_response()
}
