//! Subscribing: `GET`, `HEAD` or `QUERY /.well-known/mercure` opens an event
//! stream of the updates the request's matchers select and its token (or
//! anonymity) allows.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Uri};

use super::app::{
    App, MERCURE_LAST_EVENT_ID, Peer, identity, limited, refuse, refuse_auth, shutting_down,
    unavailable,
};
use crate::auth::{self, AuthError, Grants, Role, TokenSource};
use crate::body::HubBody;
use crate::config::Settings;
use crate::forwarded;
use crate::hub::JoinError;
use crate::request::subscribe::{self, Rules};

/// The subscription response, for axum and for the lean stream server.
/// `body` is the form body of a `QUERY` request; `peer` says where it came
/// from. Nothing in it waits before the join: every refusal, limits
/// included, is answered on the first poll.
pub(crate) async fn subscribe_response(
    app: &Arc<App>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    peer: Peer,
) -> Response {
    const ENDPOINT: &str = "subscribe";
    let settings = &app.settings;
    let identity = match identity(app, ENDPOINT, uri, headers) {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    // The limits by address before anything costs: the slots are given
    // back when `slots` drops, with the stream or with a refusal below.
    let client = peer
        .ip
        .map(|ip| forwarded::client_address(&settings.config.trusted_proxies, ip, headers));
    let mut slots = match app.admission.subscriber(client, peer.rate_paid) {
        Ok(slots) => slots,
        Err(refusal) => return limited(app, ENDPOINT, &refusal),
    };
    // The token first, as the reference hub does: a request that may not
    // subscribe learns nothing of how its parameters would be read.
    let grants = match auth::authenticate_fetching(
        &app.auth,
        Role::Subscriber,
        headers,
        uri.query(),
        &identity.resource,
    )
    .await
    {
        Ok(Some(grants)) => Some(grants),
        Ok(None) if settings.anonymous => None,
        Ok(None) => return refuse_auth(app, ENDPOINT, &identity, &AuthError::Missing),
        Err(err) => return refuse_auth(app, ENDPOINT, &identity, &err),
    };
    if let Some(subject) = grants.as_ref().and_then(Grants::subject)
        && let Err(refusal) = slots.for_subject(subject)
    {
        return limited(app, ENDPOINT, &refusal);
    }
    let rules = Rules {
        base: &settings.base,
        limits: &settings.limits,
        compat: settings.config.compat,
    };
    let request = match subscribe::parse(uri.query(), body, headers, rules) {
        Ok(request) => request,
        Err(err) => return refuse(app, ENDPOINT, &identity, &err),
    };
    let deadline = deadline(settings, grants.as_ref());
    let query_token = grants
        .as_ref()
        .is_some_and(|g| g.source() == TokenSource::Query);
    let joined = match app
        .core
        .subscribe(request.matchers, grants, request.last_event_id.as_deref())
        .await
    {
        Ok(joined) => joined,
        Err(JoinError::Closed) => return shutting_down(),
        Err(err) => {
            tracing::warn!(%err, "subscriber not joined");
            app.core
                .metrics
                .refused(ENDPOINT, http::StatusCode::SERVICE_UNAVAILABLE);
            return unavailable("the update log is unavailable");
        }
    };
    tracing::debug!(
        client = %joined.client.id(),
        subscriber = %joined.subscriber,
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
        .map(|body| Body::new(HubBody::new(body, joined.membership, slots)));
    let out = response.headers_mut();
    out.insert(header::LINK, identity.hub_link.clone());
    if query_token {
        // A token in the URL (compat): no shared cache may keep the stream.
        out.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
    if let Some(id) = joined
        .last_event_id
        .and_then(|id| HeaderValue::from_str(&id).ok())
    {
        if settings.config.compat {
            // Mercure 0.x clients read the resume point from this name.
            out.insert("last-event-id", id.clone());
        }
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
        // The flag is validated to 0..=1; the clamp keeps `mul_f64` from
        // ever seeing a negative factor.
        let jitter = settings.config.lifetime_jitter.clamp(0.0, 1.0) * rand::random::<f64>();
        now + max.mul_f64(1.0 - jitter)
    });
    match (expiry, lifetime) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
