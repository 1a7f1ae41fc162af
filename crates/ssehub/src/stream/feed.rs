//! [`Feed`]: what a body reads besides its own queue (a broker client's
//! subscriptions), so the body knows no broker.

use super::shared::Chunk;

/// A source of frames for a body besides its own queue: a broker client's
/// channel subscriptions.
pub(crate) trait Feed: Send + Sync + 'static {
    /// Appends every ready frame to `chunk`, or registers `waker` to be woken
    /// when one is published. `Err` ends the stream (the client overflowed
    /// and the policy is to disconnect it).
    fn poll_feed(&self, waker: &std::task::Waker, chunk: &mut Chunk) -> Result<(), Overflowed>;

    /// Called once when the body ends or is dropped.
    fn finished(&self);

    /// When bytes last went to the client around the body (written
    /// straight to its socket by a broker's fan-out writer), so the
    /// keep-alive counts them.
    fn last_direct_write(&self) -> Option<tokio::time::Instant> {
        None
    }

    /// Adds what a server may use to the response's extensions (a broker
    /// client: its [`SocketLoan`](crate::broker::SocketLoan)).
    fn extend_response(&self, _extensions: &mut http::Extensions) {}
}

/// The client fell further behind than its buffer allows.
#[derive(Debug)]
pub(crate) struct Overflowed;
