//! Publishing: `POST /.well-known/mercure` with a form body dispatches one
//! update and answers its id.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode, Uri};
use ssehub::journal::JournalError;

use super::app::{App, identity, limited, refuse, refuse_auth, shutting_down, unavailable};
use crate::auth::{self, AuthError, Role, TokenSource};
use crate::hub::PublishError;
use crate::request::{RequestError, publish};

/// The publication response. The order of the checks is the reference
/// hub's: the token (`401`), then the form (`400`, `413`), then whether the
/// token may publish on every topic of the update (`403`).
pub(super) async fn handle(app: &App, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    match answer(app, uri, headers, body).await {
        Ok(published) => published.map(axum::body::Body::from),
        Err(refused) => refused,
    }
}

/// [`handle`], with the acknowledgement as a plain `http` response whose
/// body is already whole: the lean server writes it without going through
/// axum's body and its collection, which every publish would pay for.
/// Refusals stay axum responses.
pub(super) async fn answer(
    app: &App,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<http::Response<Bytes>, Response> {
    const ENDPOINT: &str = "publish";
    let settings = &app.settings;
    let identity = match identity(app, ENDPOINT, uri, headers) {
        Ok(identity) => identity,
        Err(response) => return Err(*response),
    };
    let grants = match auth::authenticate_fetching(
        &app.auth,
        Role::Publisher,
        headers,
        uri.query(),
        &identity.resource,
    )
    .await
    {
        Ok(Some(grants)) => grants,
        Ok(None) => return Err(refuse_auth(app, ENDPOINT, &identity, &AuthError::Missing)),
        Err(err) => return Err(refuse_auth(app, ENDPOINT, &identity, &err)),
    };
    if grants.source() == TokenSource::Cookie
        && let Err(err) =
            auth::check_csrf(headers, &identity.origin, &settings.config.publish_origins)
    {
        return Err(refuse_auth(app, ENDPOINT, &identity, &err));
    }
    // The rate once the token is known good (a forged one costs nobody
    // else's budget), before the form is read.
    let token = match grants.subject() {
        Some(_) => None,
        None => auth::presented_token(&app.auth, headers, uri.query()),
    };
    let publisher = app
        .admission
        .publisher(grants.shared_subject(), token.as_deref());
    if let Err(refusal) = app.admission.publish(&publisher) {
        return Err(limited(app, ENDPOINT, &refusal));
    }
    if !is_form(headers) {
        return Err(refuse(app, ENDPOINT, &identity, &RequestError::NotForm));
    }
    let update = match publish::parse(body, &settings.base, &settings.limits) {
        Ok(update) => update,
        Err(err) => return Err(refuse(app, ENDPOINT, &identity, &err)),
    };
    if !update.topics.iter().all(|t| grants.can_publish(t)) {
        return Err(refuse_auth(
            app,
            ENDPOINT,
            &identity,
            &AuthError::InsufficientScope,
        ));
    }
    let refused = match app.core.publish(update).await {
        Ok(id) => {
            app.core.metrics.updates_total.inc();
            tracing::debug!(%id, "published");
            let mut response = http::Response::new(Bytes::from(id));
            let response_headers = response.headers_mut();
            response_headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response_headers.insert(header::LINK, identity.hub_link.clone());
            return Ok(response);
        }
        Err(PublishError::Closed) => shutting_down(),
        Err(PublishError::Log(JournalError::TooLarge { size, max })) => {
            let status = StatusCode::PAYLOAD_TOO_LARGE;
            app.core.metrics.refused(ENDPOINT, status);
            (status, format!("update of {size} bytes exceeds {max}\n")).into_response()
        }
        Err(PublishError::Log(err)) => {
            // Not acknowledged: the publisher retries (perhaps on another
            // node). With a remote log the update may still have been
            // stored; subscribers then receive it like any other.
            tracing::warn!(%err, "publish not stored");
            app.core
                .metrics
                .refused(ENDPOINT, StatusCode::SERVICE_UNAVAILABLE);
            unavailable("the update log is unavailable")
        }
        // The form was checked field by field; an update the encoder still
        // refuses is the publisher's, not the hub's, fault.
        Err(PublishError::Invalid(err)) => refuse_auth(
            app,
            ENDPOINT,
            &identity,
            &AuthError::InvalidRequest(err.to_string()),
        ),
    };
    Err(refused)
}

/// Whether the body is declared `application/x-www-form-urlencoded`.
fn is_form(headers: &HeaderMap) -> bool {
    // Over the bytes: every publish asks. A value with bytes past ASCII
    // is not one (as `to_str` would refuse it).
    headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        let essence = v.split(|&b| b == b';').next().unwrap_or_default();
        v.is_ascii()
            && essence
                .trim_ascii()
                .eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
    })
}
