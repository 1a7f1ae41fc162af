//! Single-client streams: a [`Sender`] to send events with and the
//! [`SseBody`] that carries them to the client.
//!
//! This is the layer for one client per handler (the Go package's `Stream`,
//! `HandlerFunc`, `Serve` and `ServeFunc`). A stream is a bounded queue of
//! encoded frames between the senders and the response body:
//!
//! ```text
//! Sender::send(Event) -> encode once -> bounded queue -> SseBody -> server -> socket
//!                                                     \-> keep-alive comment when idle
//! ```
//!
//! The body sends a first `retry:` line (or a comment) as soon as the server
//! polls it, so headers and first bytes reach the client at once; it sends a
//! keep-alive comment whenever the stream has been idle for the configured
//! interval; and it ends cleanly after [`Sender::close`] or when every sender
//! is dropped. When the client disconnects the server drops the body, and the
//! senders see [`SendError::Closed`](crate::SendError::Closed).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use ssehub::{Event, StreamConfig};
//!
//! let (sender, body) = ssehub::stream::new(&StreamConfig::default());
//! tokio::spawn(async move {
//!     for i in 0..3 {
//!         let event = Event::new(format!("tick {i}")).with_id(i.to_string());
//!         if sender.send(event).await.is_err() {
//!             break; // client gone
//!         }
//!     }
//! });
//! let response = body.into_response(); // 200, text/event-stream, no-cache
//! assert_eq!(response.headers()["content-type"], "text/event-stream");
//! # }
//! ```
//!
//! See the [MDN guide](https://developer.mozilla.org/en-US/docs/Web/API/Server-sent_events/Using_server-sent_events)
//! and the [specification](https://html.spec.whatwg.org/multipage/server-sent-events.html).

mod body;
mod config;
mod feed;
mod sender;
mod serve;
pub(crate) mod shared;

use std::sync::Arc;

use bytes::Bytes;

pub use body::SseBody;
pub use config::{
    DEFAULT_BUFFER_BYTES, DEFAULT_BUFFER_EVENTS, DEFAULT_KEEP_ALIVE, DEFAULT_RETRY, StreamConfig,
};
pub(crate) use feed::{Feed, Overflowed};
pub use sender::Sender;
pub use serve::{Served, serve, serve_fn};
pub(crate) use shared::{Chunk, PushError};

/// Opens a stream: a [`Sender`] and the [`SseBody`] to answer the request with.
///
/// The stream has no `Last-Event-ID`; use [`new_resuming`] (or
/// [`respond`](crate::respond), which reads it from the request) when
/// the client may be reconnecting. The `on_connect` hook, if any, runs
/// before this function returns.
///
/// ```
/// let (sender, body) = ssehub::stream::new(&ssehub::StreamConfig::default());
/// assert!(!sender.is_closed());
/// # drop(body);
/// ```
#[must_use]
pub fn new(config: &StreamConfig) -> (Sender, SseBody) {
    new_resuming(config, None)
}

/// Opens a stream for a client that sent `last_event_id`
/// (see [`last_event_id`](crate::last_event_id) to read it from a request).
///
/// ```
/// let (sender, _body) =
///     ssehub::stream::new_resuming(&ssehub::StreamConfig::default(), Some("41".into()));
/// assert_eq!(sender.last_event_id(), Some("41"));
/// ```
#[must_use]
pub fn new_resuming(config: &StreamConfig, last_event_id: Option<String>) -> (Sender, SseBody) {
    let shared = Arc::new(shared::Shared::new(
        config.buffer_events,
        config.buffer_bytes,
    ));
    let last_event_id: Option<Arc<str>> = last_event_id.map(Arc::from);
    let preamble = match config.retry {
        // `StreamConfig::retry` clamps to the wire maximum, so encoding cannot fail.
        Some(retry) => {
            crate::event::retry_frame(retry).unwrap_or_else(|_| Bytes::from_static(b":\n\n"))
        }
        None => Bytes::from_static(b":\n\n"),
    };
    let sender = Sender::new(shared.clone(), last_event_id.clone());
    let body = SseBody::new(
        shared,
        preamble,
        config.keep_alive,
        config.on_disconnect.clone(),
        last_event_id,
        config.accel_buffering_header,
    );
    if let Some(hook) = &config.on_connect {
        hook(&sender);
    }
    (sender, body)
}
