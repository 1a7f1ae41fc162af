//! Discovery: the OAuth 2.0 protected resource metadata (RFC 9728) at
//! `/.well-known/oauth-protected-resource/.well-known/mercure`, which every
//! `401` and `403` challenge points at.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Uri, header};
use serde::Serialize;

use super::app::{App, identity};
use crate::auth::DETAIL_TYPE;

/// The metadata document.
#[derive(Serialize)]
struct Metadata<'a> {
    resource: &'a str,
    bearer_methods_supported: &'a [&'a str],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authorization_servers: Vec<&'a str>,
    authorization_details_types_supported: [&'a str; 1],
    mercure_cookie: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    mercure_subscriptions: bool,
}

/// `GET` the metadata, for the identity the request names.
pub(super) async fn metadata(
    State(app): State<Arc<App>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let identity = match identity(&app, "metadata", &uri, &headers) {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let methods: &[&str] = if app.auth.compat {
        // 0.x clients may still put the token in the URL.
        &["header", "query"]
    } else {
        &["header"]
    };
    let document = Metadata {
        resource: &identity.resource,
        bearer_methods_supported: methods,
        authorization_servers: app
            .auth
            .issuers
            .iter()
            .filter(|issuer| issuer.authorization_server)
            .map(|issuer| issuer.id.as_str())
            .collect(),
        authorization_details_types_supported: [DETAIL_TYPE],
        mercure_cookie: &app.auth.cookie_name,
        mercure_subscriptions: app.settings.subscriptions,
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::Json(document),
    )
        .into_response()
}
