//! The seam between the broker's fan-out and the edges that lend it their
//! connections: what a lent connection must do, owned here, implemented at
//! the edge.
//!
//! The broker writes a published event straight to a sleeping
//! connection's socket (see `outlet.rs`). It knows nothing of sockets or
//! of HTTP: an edge that lends a connection hands it a [`Transport`] —
//! a non-blocking write, and the [`Framing`] of its wire. The lean
//! HTTP/1.1 server (`server.rs`) implements it for its `TcpStream`, each
//! event one HTTP/1.1 chunk; hyper and axum lend nothing.
//!
//! A publish frames its event once per framing, not once per connection:
//! framings are `'static` and compared by address, so every connection of
//! one edge shares the framed bytes (a reference-count bump each).

use std::fmt;
use std::io::{self, IoSlice};

use bytes::Bytes;

/// How an edge puts one event on its wire.
///
/// A `static` of the edge: the broker frames each publish once per
/// framing, telling framings apart by address ([`Framing::same`]).
pub(crate) struct Framing {
    /// `event` framed for the wire.
    pub(crate) frame: fn(&[u8]) -> Bytes,
    /// The event inside bytes made by `frame` (for
    /// [`BrokerConfig::on_direct_write`](super::BrokerConfig::on_direct_write)).
    pub(crate) event: fn(&[u8]) -> &[u8],
}

impl Framing {
    /// Whether `self` and `other` are the same framing.
    pub(crate) fn same(&'static self, other: &'static Framing) -> bool {
        std::ptr::eq(self, other)
    }
}

impl fmt::Debug for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Framing").finish_non_exhaustive()
    }
}

/// A connection lent to the broker's fan-out writer.
///
/// Called from the writer's task, never from the connection's; the
/// connection keeps writing through its own handle when it is awake (the
/// outlet's state machine makes sure the two never write at once).
pub(crate) trait Transport: Send + Sync + 'static {
    /// The framing of every frame written through this transport.
    fn framing(&self) -> &'static Framing;

    /// Writes as much of `frames` (framed by [`framing`](Self::framing),
    /// in order) as the connection takes now, without waiting: `Ok(n)`
    /// bytes, or `WouldBlock` when it is full. Any other error is left for
    /// the connection to meet on its next write.
    fn try_write(&self, frames: &[IoSlice<'_>]) -> io::Result<usize>;
}

/// A transport for the tests and models of the fan-out: it records what is
/// written, takes only as many bytes as it is given room for, and frames
/// each event in brackets so that framing shows.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::{self, IoSlice};

    use bytes::Bytes;

    use super::{Framing, Transport};
    use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use crate::sync::{Mutex, lock};

    /// `[event]`.
    pub(crate) static BRACKETS: Framing = Framing {
        frame: bracket,
        event: unbracket,
    };

    fn bracket(event: &[u8]) -> Bytes {
        let mut framed = Vec::with_capacity(event.len() + 2);
        framed.push(b'[');
        framed.extend_from_slice(event);
        framed.push(b']');
        Bytes::from(framed)
    }

    fn unbracket(framed: &[u8]) -> &[u8] {
        &framed[1..framed.len() - 1]
    }

    #[derive(Default)]
    pub(crate) struct Recorder {
        /// Every byte written, in order.
        pub(crate) written: Mutex<Vec<u8>>,
        /// Bytes it still takes (`None`: any number); at 0 it would block.
        pub(crate) room: Mutex<Option<usize>>,
        /// Calls of `try_write` that wrote something.
        pub(crate) writes: AtomicUsize,
        /// Set once the connection took the transport back: a write after
        /// that would reach a socket the broker no longer holds.
        pub(crate) returned: AtomicBool,
    }

    impl Recorder {
        /// What was written, as text.
        pub(crate) fn text(&self) -> String {
            String::from_utf8(lock(&self.written).clone()).expect("test frames are text")
        }
    }

    impl Transport for Recorder {
        fn framing(&self) -> &'static Framing {
            &BRACKETS
        }

        fn try_write(&self, frames: &[IoSlice<'_>]) -> io::Result<usize> {
            assert!(
                !self.returned.load(Ordering::SeqCst),
                "written after the loan ended"
            );
            let mut room = lock(&self.room);
            let mut left = room.unwrap_or(usize::MAX);
            if left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut written = lock(&self.written);
            let mut n = 0;
            for frame in frames {
                let take = frame.len().min(left);
                written.extend_from_slice(&frame[..take]);
                n += take;
                left -= take;
            }
            if let Some(room) = &mut *room {
                *room = left;
            }
            self.writes.fetch_add(1, Ordering::SeqCst);
            Ok(n)
        }
    }
}
