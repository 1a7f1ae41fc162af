//! ssehub: Server-Sent Events for Rust.
//!
//! Use the layer you need: a single stream per handler ([`respond`],
//! [`serve`]), a [`broker`] of channels and clients, a broker shared by
//! several processes through a [`journal`], and the edges that put them on
//! a socket.
//!
//! # Layout
//!
//! Five layers, bottom up; a module imports only from layers below its own
//! (`tests/layers.rs` checks it; DESIGN.md draws the path of a publish and
//! states the lock order):
//!
//! 1. **Protocol** — [`Event`] and its spec-exact encoding to shared
//!    [`Bytes`](bytes::Bytes) ([`event`]); an incremental parser that
//!    follows the WHATWG rules ([`parse`]). No runtime, no I/O.
//! 2. **Stream** — one client's [`Sender`], a bounded queue of encoded
//!    frames, and the [`SseBody`] response body with `retry:` and
//!    keep-alive ([`stream`]); the [`serve`] / [`serve_fn`] helpers and
//!    [`respond`], the framework-neutral handler.
//! 3. **Log** — [`journal`]: an ordered, retained log with positions,
//!    replay and followers, in memory or on Redis (feature `redis`).
//! 4. **Broker** — [`broker`]: clients, named channels, one log of frames
//!    per channel with each subscriber's place in it, replay history,
//!    overflow policy; optionally on a journal, so that several processes
//!    act as one; and the fan-out writer that writes to sleeping
//!    connections through a transport the edges lend it.
//! 5. **Edges** — axum 0.8 (feature `axum`), [`io::WriteTimeout`] for
//!    sockets served by hyper, the lean HTTP/1.1 server `server` (feature
//!    `server`), which lends sleeping connections to the broker, and the
//!    reconnecting `EventSource` client `eventsource` (`client` is its
//!    deprecated alias).
//!
//! [`error`] holds the typed errors of every layer.
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
