//! axum 0.8 integration (feature `axum`).
//!
//! - [`SseBody`] implements [`IntoResponse`], so a handler can return it.
//! - [`LastEventId`] extracts the id a reconnecting client sent.
//! - [`handler`] turns an async closure over a [`Sender`] into an axum
//!   handler: the Go `HandlerFunc`.
//!
//! ```
//! use axum::{Router, routing::get};
//! use ssehub::{Event, StreamConfig};
//!
//! let app: Router = Router::new().route(
//!     "/events",
//!     get(ssehub::axum::handler(StreamConfig::default(), |sender, _request| async move {
//!         for i in 0.. {
//!             let event = Event::new(format!("tick {i}")).with_id(i.to_string());
//!             if sender.send(event).await.is_err() {
//!                 break; // the client left
//!             }
//!             tokio::time::sleep(std::time::Duration::from_secs(1)).await;
//!         }
//!     })),
//! );
//! # let _ = app;
//! ```

use std::future::{Future, Ready, ready};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::error::LastEventIdError;
use crate::stream::{Sender, SseBody, StreamConfig};

impl IntoResponse for SseBody {
    fn into_response(self) -> Response {
        SseBody::into_response(self).map(axum::body::Body::new)
    }
}

impl IntoResponse for LastEventIdError {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.to_string()).into_response()
    }
}

/// Extracts the id a reconnecting client last saw: the `Last-Event-ID`
/// header, else the `lastEventId` / `last_event_id` query parameter (see
/// [`last_event_id`](crate::last_event_id)). `None` on a first connection.
///
/// An over-long value is rejected with `400 Bad Request`.
///
/// ```
/// use axum::{Router, routing::get};
/// use ssehub::axum::LastEventId;
///
/// async fn events(LastEventId(id): LastEventId) -> ssehub::SseBody {
///     let (sender, body) = ssehub::stream::new_resuming(&ssehub::StreamConfig::default(), id);
///     tokio::spawn(async move {
///         let resume_after = sender.last_event_id().unwrap_or("start").to_owned();
///         let _ = sender.send_data(format!("resuming after {resume_after}")).await;
///     });
///     body
/// }
/// let app: Router = Router::new().route("/events", get(events));
/// # let _ = app;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LastEventId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for LastEventId {
    type Rejection = LastEventIdError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        crate::last_event_id(&parts.headers, parts.uri.query()).map(LastEventId)
    }
}

/// Makes an axum handler that opens a stream per request and runs `f` with
/// its [`Sender`] and the request head, in a task of its own: the Go
/// `HandlerFunc`.
///
/// The response (headers and a first `retry:`) is sent at once; `f` is
/// cancelled when the client disconnects; the response ends when `f`
/// returns. See [`respond`](crate::respond) for the details.
///
/// ```
/// use axum::{Router, routing::get};
///
/// let app: Router = Router::new().route(
///     "/hello",
///     get(ssehub::axum::handler(ssehub::StreamConfig::default(), |sender, request| async move {
///         let _ = sender.send_data(format!("hello, {}", request.uri.path())).await;
///     })),
/// );
/// # let _ = app;
/// ```
pub fn handler<F, Fut>(
    config: StreamConfig,
    f: F,
) -> impl Fn(Parts) -> Ready<Response> + Clone + Send + Sync + 'static
where
    F: Fn(Sender, Parts) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    move |parts: Parts| {
        let f = f.clone();
        let response = crate::respond(&parts, &config, |sender| f(sender, parts.clone()));
        ready(response.into_response())
    }
}

impl crate::broker::Broker {
    /// An axum handler that connects every request as a plain client (Go
    /// `Handler()`): it receives broadcasts and what is sent to it.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// let broker = ssehub::broker::Broker::new();
    /// let app: Router = Router::new().route("/events", get(broker.handler()));
    /// # let _ = app;
    /// ```
    pub fn handler(&self) -> impl Fn(Parts) -> Ready<Response> + Clone + Send + Sync + 'static {
        self.handle_fn(|_client, _request| {})
    }

    /// An axum handler that connects every request and runs `setup` with the
    /// new client and the request head before responding (Go `HandleFunc`).
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// let broker = ssehub::broker::Broker::new();
    /// let app: Router = Router::new().route(
    ///     "/notifications",
    ///     get(broker.handle_fn(|client, request| {
    ///         let user = request.uri.query().unwrap_or("anonymous").to_owned();
    ///         client.set("user_id", user.clone());
    ///         let _ = client.subscribe(&format!("user:{user}"));
    ///         let _ = client.subscribe("broadcast");
    ///     })),
    /// );
    /// # let _ = app;
    /// ```
    pub fn handle_fn<F>(
        &self,
        setup: F,
    ) -> impl Fn(Parts) -> Ready<Response> + Clone + Send + Sync + 'static
    where
        F: Fn(&crate::broker::Client, &Parts) + Clone + Send + Sync + 'static,
    {
        let broker = self.clone();
        move |parts: Parts| {
            let response = broker.handle_request(&parts, |client| setup(client, &parts));
            ready(response.into_response())
        }
    }
}

/// A listener for [`axum::serve()`] whose connections carry a write deadline
/// (see [`WriteTimeout`](crate::io::WriteTimeout)): a client that stops
/// reading is disconnected instead of holding its connection forever.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use std::time::Duration;
/// use ssehub::axum::WriteTimeoutListener;
///
/// let broker = ssehub::broker::Broker::new();
/// let app = axum::Router::new().route("/events", axum::routing::get(broker.handler()));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(WriteTimeoutListener::new(listener, Duration::from_secs(10)), app).await
/// # }
/// ```
#[derive(Debug)]
pub struct WriteTimeoutListener {
    inner: tokio::net::TcpListener,
    timeout: std::time::Duration,
}

impl WriteTimeoutListener {
    /// Wraps `listener`; every accepted connection gets `timeout` on writes
    /// and `TCP_NODELAY` (events are small and wanted at once).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let listener = ssehub::axum::WriteTimeoutListener::new(listener, std::time::Duration::from_secs(5));
    /// # let _ = listener; Ok(()) }
    /// ```
    #[must_use]
    pub fn new(listener: tokio::net::TcpListener, timeout: std::time::Duration) -> Self {
        Self {
            inner: listener,
            timeout,
        }
    }
}

impl axum::serve::Listener for WriteTimeoutListener {
    type Io = crate::io::WriteTimeout<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (socket, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        // An event is small and wanted now: do not hold it back waiting for
        // the previous segment's ACK (Nagle).
        let _ = socket.set_nodelay(true);
        (crate::io::WriteTimeout::new(socket, self.timeout), addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
