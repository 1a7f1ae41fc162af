//! ssehub: Server-Sent Events for Rust.
//!
//! Three layers, each usable on its own:
//!
//! 1. **Protocol** — [`Event`] and its spec-exact encoding to shared
//!    [`Bytes`](bytes::Bytes) ([`event`]), and an incremental parser that
//!    follows the WHATWG rules ([`parse`]).
//! 2. **Streams** — one client's [`Sender`] and the [`SseBody`] response body
//!    with keep-alive ([`stream`]), the [`serve`] / [`serve_fn`] helpers and
//!    [`respond`], the framework-neutral handler.
//! 3. **Integrations** — axum 0.8 behind the `axum` feature.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use ssehub::{Event, StreamConfig};
//!
//! let request = http::Request::get("/events").body(()).unwrap();
//! let (parts, ()) = request.into_parts();
//! let response = ssehub::respond(&parts, &StreamConfig::default(), |sender| async move {
//!     let _ = sender.send(Event::with_type("greeting", "hello")).await;
//! });
//! assert_eq!(response.status(), 200);
//! assert_eq!(response.headers()["content-type"], "text/event-stream");
//! # }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
pub mod axum;
pub mod broker;
#[cfg(feature = "server")]
mod chunked;
/// The reconnecting client's former name: `broker::Client` is a broker's
/// subscriber, so the `EventSource` client lives in [`eventsource`].
#[cfg(feature = "eventsource")]
#[deprecated(note = "renamed `ssehub::eventsource`; this alias goes in the next release")]
pub mod client {
    pub use crate::eventsource::*;
}
pub mod error;
pub mod event;
#[cfg(feature = "eventsource")]
pub mod eventsource;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod io;
pub mod journal;
pub mod parse;
#[cfg(feature = "server")]
pub mod server;
pub mod stream;
mod sync;

/// The README's examples are compiled and run as doctests.
#[cfg(all(doctest, feature = "axum", feature = "redis"))]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

pub use error::{BrokerError, LastEventIdError, SendError, TrySendError};
pub use event::{Event, EventError};
pub use http::{
    LAST_EVENT_ID, LAST_EVENT_ID_QUERY, MAX_LAST_EVENT_ID_LEN, ResponseBody, last_event_id,
    no_content, respond, set_stream_headers,
};
pub use stream::{Sender, Served, SseBody, StreamConfig, serve, serve_fn};
