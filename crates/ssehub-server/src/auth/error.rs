//! [`AuthError`]: why a request was refused, and its RFC 6750 response.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// Why a request was refused; [`AuthError::response`] renders it.
///
/// ```
/// use ssehub_server::auth::AuthError;
/// assert_eq!(AuthError::InvalidToken.to_string(), "invalid token");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The operation needs a token and none was presented.
    #[error("missing access token")]
    Missing,
    /// A token was presented and failed validation (whatever the reason).
    #[error("invalid token")]
    InvalidToken,
    /// A valid token that does not grant the operation.
    #[error("insufficient scope")]
    InsufficientScope,
    /// A malformed token presentation: an `Authorization` header that is
    /// not `Bearer <token>`, or a cookie-authenticated `POST` without an
    /// allowed `Origin` or `Referer` ([`check_csrf`](super::check_csrf)).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl AuthError {
    /// The HTTP status of the response.
    ///
    /// ```
    /// use ssehub_server::auth::AuthError;
    /// assert_eq!(AuthError::InsufficientScope.status(), http::StatusCode::FORBIDDEN);
    /// ```
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Missing | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The [RFC 6750] response: `Missing` → 401 with a bare `Bearer`
    /// challenge; `InvalidToken` → 401 `error="invalid_token"`;
    /// `InsufficientScope` → 403 `error="insufficient_scope"`;
    /// `InvalidRequest` → 400 `error="invalid_request"`. Every challenge
    /// names `resource_metadata` (the URL of the hub's protected resource
    /// metadata for this request; omitted when empty). The body is a short
    /// `text/plain` reason that never says why a token failed.
    ///
    /// [RFC 6750]: https://www.rfc-editor.org/rfc/rfc6750#section-3
    ///
    /// ```
    /// use ssehub_server::auth::AuthError;
    /// let response = AuthError::InvalidToken.response("https://hub.example/.well-known/oauth-protected-resource/.well-known/mercure");
    /// assert_eq!(response.status(), 401);
    /// assert_eq!(
    ///     response.headers()["www-authenticate"],
    ///     r#"Bearer error="invalid_token", resource_metadata="https://hub.example/.well-known/oauth-protected-resource/.well-known/mercure""#
    /// );
    /// assert_eq!(AuthError::Missing.response("").headers()["www-authenticate"], "Bearer");
    /// ```
    pub fn response(&self, resource_metadata: &str) -> Response {
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, self.challenge(resource_metadata));
        response
    }

    fn challenge(&self, resource_metadata: &str) -> HeaderValue {
        let error = match self {
            Self::Missing => None,
            Self::InvalidToken => Some("invalid_token"),
            Self::InsufficientScope => Some("insufficient_scope"),
            Self::InvalidRequest(_) => Some("invalid_request"),
        };
        let mut params = Vec::new();
        if let Some(error) = error {
            params.push(format!("error=\"{error}\""));
        }
        if !resource_metadata.is_empty() {
            // A quoted-string: backslash-escape the two characters it
            // cannot hold.
            let quoted = resource_metadata.replace('\\', "\\\\").replace('"', "\\\"");
            params.push(format!("resource_metadata=\"{quoted}\""));
        }
        let value = match params.is_empty() {
            true => "Bearer".to_owned(),
            false => format!("Bearer {}", params.join(", ")),
        };
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}
