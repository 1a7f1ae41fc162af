//! What the broker hands an edge so that it can lend a connection: the
//! [`SocketLoan`] on a broker client's response, and the [`Lent`] handle
//! the connection keeps while its transport is lent.
//!
//! An edge that can write without waiting (the lean server) takes the
//! loan from the response's extensions and calls [`SocketLoan::lend`]
//! with its [`Transport`]; from then on it polls the body through the
//! [`Lent`] handle (`arm`, then `park` when there is nothing to write) and
//! writes what the broker left it ([`Lent::take_pending`]) before anything
//! else. Dropping the handle ends the loan.

use std::collections::VecDeque;
use std::fmt;
use std::task::Waker;

use bytes::Bytes;
use tokio::time::Instant;

use super::outlet::Outlet;
use super::transport::Transport;
use super::writer::{Writer, Writers};
use crate::sync::Arc;

/// The response extension through which the lean server
/// ([`ssehub::server`](crate)) finds a broker client's socket outlet: with
/// it, the server lends the connection's socket to the broker's fan-out
/// writer while the connection sleeps, and the broker writes events
/// straight to it, bypassing the response body.
///
/// [`SseBody::into_response`](crate::SseBody::into_response) sets it for a
/// broker client's body. If you wrap that body in something that changes
/// its bytes (rather than only observing them), remove the extension so
/// every byte goes through your wrapper:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let broker = ssehub::broker::Broker::new();
/// let (parts, ()) = http::Request::get("/events").body(()).unwrap().into_parts();
/// let mut response = broker.handle_request(&parts, |_| {});
/// assert!(response.extensions().get::<ssehub::broker::SocketLoan>().is_some());
/// response.extensions_mut().remove::<ssehub::broker::SocketLoan>();
/// # }
/// ```
#[derive(Clone)]
pub struct SocketLoan {
    outlet: Arc<Outlet>,
    /// The writer that visits `outlet`: started when the socket is lent.
    writer: Arc<Writer>,
}

impl fmt::Debug for SocketLoan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketLoan")
            .field("shard", &self.outlet.shard())
            .finish_non_exhaustive()
    }
}

impl SocketLoan {
    /// The loan of client `id`'s connection, visited by one of `writers`.
    pub(crate) fn for_client(writers: &Writers, id: u64) -> Self {
        let writer = writers.for_client(id);
        Self {
            outlet: Arc::new(Outlet::new(writer.shard(), writers.clock())),
            writer,
        }
    }

    /// The outlet, for the channel logs the client subscribes to.
    pub(crate) fn outlet(&self) -> &Arc<Outlet> {
        &self.outlet
    }

    /// When the transport was last written (by the broker's writer or the
    /// connection), for the keep-alive.
    pub(crate) fn last_write(&self) -> Option<Instant> {
        self.outlet.last_write()
    }

    /// Lends `transport` to the broker's fan-out writer; `None` when there
    /// is no runtime to run the writer in (the connection then writes
    /// everything itself). Call from the connection's task.
    pub(crate) fn lend(&self, transport: Arc<dyn Transport>) -> Option<Lent> {
        if !self.writer.ensure_running() {
            return None;
        }
        self.outlet.attach(transport);
        Some(Lent {
            waker: Waker::from(self.outlet.clone()),
            outlet: self.outlet.clone(),
        })
    }
}

/// A connection whose transport is lent; dropping it ends the loan.
///
/// The connection arms it at the start of every poll of its sources and
/// parks it when the poll found nothing; while it is parked the broker's
/// writer may write to the transport, and any wake (through
/// [`waker`](Self::waker), which every source must be polled with) makes
/// the connection the only writer again.
pub(crate) struct Lent {
    outlet: Arc<Outlet>,
    /// The outlet as a waker: every source the body polls wakes the
    /// connection through it, which stops the writer's direct writes.
    waker: Waker,
}

impl Lent {
    /// Starts a poll; `task` is the connection task's own waker.
    pub(crate) fn arm(&self, task: &Waker) {
        self.outlet.arm(task);
    }

    /// The waker to poll every source with during the poll.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// The poll found something: the connection writes it itself.
    pub(crate) fn activate(&self) {
        self.outlet.activate();
    }

    /// The poll found nothing: sleep, unless frames were claimed for the
    /// connection meanwhile (false: write [`take_pending`](Self::take_pending)
    /// first).
    pub(crate) fn park(&self) -> bool {
        self.outlet.park()
    }

    /// Whether frames wait for the connection to write first.
    pub(crate) fn busy(&self) -> bool {
        self.outlet.busy()
    }

    /// The frames the writer left to the connection (already framed for
    /// its transport), oldest first: they go out before anything else.
    pub(crate) fn take_pending(&self) -> VecDeque<Bytes> {
        self.outlet.take_pending()
    }

    /// The connection wrote to its transport (a connection writing often
    /// batches better than the writer would: new frames stay with it).
    pub(crate) fn wrote(&self) {
        self.outlet.wrote();
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.outlet.detach();
    }
}
