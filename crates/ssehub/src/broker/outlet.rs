//! A client's outlet: its socket, lent to the broker's fan-out writer while
//! the connection sleeps.
//!
//! # Why
//!
//! At 10 events/s to 10k clients nothing batches: every event is one write
//! per subscriber. Waking each connection's task to make that write costs
//! more user time than the write itself (a run-queue push, a poll that
//! takes three locks, a timer re-poll, a second poll to go back to sleep).
//! A connection served by the lean HTTP/1.1 server therefore lends its
//! socket to the broker while it is *parked* — asleep with nothing in hand
//! — and the broker's writer task (`writer.rs`) writes a parked client's
//! frames straight to its socket, one walk over the subscribers per event.
//! The socket is whatever the edge lent (a [`Transport`], `transport.rs`);
//! the outlet frames nothing itself and knows no writer: the log tells it
//! which writer would visit it when it claims, the writer calls
//! [`Outlet::visit`].
//!
//! # The protocol
//!
//! `state` says what the connection is doing:
//!
//! - `ACTIVE`: running, or woken; it writes itself.
//! - `ARMING`: polling its sources. A wake during the poll sets `ACTIVE`,
//!   so the parking at the end of the poll fails.
//! - `PARKED`: the last poll found nothing and nothing woke it since, so
//!   the next frame published for it *is* the next frame it must write.
//! - `CLOSED`: the connection ended.
//!
//! A publish that finds a subscriber `PARKED` *claims* the frame: it moves
//! the subscriber's place in the channel log past it (so the connection
//! never takes it from there) and appends it, framed for the lent
//! transport (an HTTP/1.1 chunk for the lean server), to the outlet's
//! `pending` frames; the first claim since the writer's
//! last visit also puts the outlet on the writer's list. When the writer
//! visits a still-parked outlet it writes *everything* pending in one
//! write, so frames published while it was busy elsewhere go out together.
//! A full socket, or a connection that woke meanwhile, leaves the rest to
//! the connection, which writes `pending` before anything else it writes:
//! a claimed frame is always older than what the connection takes from
//! its sources afterwards, so frames reach the socket in publish order.
//!
//! Claims check `PARKED` and parking checks `pending` under the same lock
//! (`io`), so a frame claimed while the connection was getting ready to
//! sleep is never left behind: either the claim comes first and the
//! connection does not park, or the connection parks first and the writer
//! finds it parked.
//!
//! Every waker the connection registers while it polls its body is this
//! outlet (see [`Wake`]): whatever wakes it — a direct send, a new
//! subscription, a timer, the client closing — makes it `ACTIVE` before
//! its task runs, so the writer never writes around a frame queued
//! elsewhere.
//!
//! The loom model at the bottom of this file checks that protocol: claims
//! racing a connection that arms, parks, is woken and ends, and a writer
//! visiting — no claimed frame left behind a sleeping connection, none
//! written twice or out of order.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::task::{Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::transport::{Framing, Transport};
use crate::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use crate::sync::{Arc, Mutex, lock};

const ACTIVE: u8 = 0;
const ARMING: u8 = 1;
const PARKED: u8 = 2;
const CLOSED: u8 = 3;

/// A parked connection holds at most this much claimed and unwritten;
/// beyond it, publishes wake the connection as usual (and its client
/// buffer and overflow policy apply).
const MAX_PENDING_FRAMES: usize = 256;
const MAX_PENDING_BYTES: usize = 1024 * 1024;

/// A socket written within this many milliseconds is in a burst: new
/// frames are left to its connection, which takes them several at a time,
/// rather than claimed one `write(2)` each. So sparse streams (the 10
/// events/s of a live feed) get the writer's direct writes, and dense ones
/// (hundreds of events/s per client) the connection's batching.
const BURST_MS: u64 = 5;

/// Frames the writer writes with one vectored write.
const MAX_SLICES: usize = 256;

/// The fan-out's clock: milliseconds since the broker's writers started,
/// shared by the writers and their outlets so that their times compare.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since the epoch (never 0, which means "never written").
    pub(crate) fn now_ms(&self) -> u64 {
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }

    /// `now_ms` as an instant.
    pub(crate) fn instant(&self, at_ms: u64) -> Instant {
        self.epoch + Duration::from_millis(at_ms)
    }
}

/// What a claim asks of the writer that would visit the outlet
/// (`writer.rs` implements it; the outlet does not know the writer).
pub(crate) trait Visitor {
    /// Whether its task runs, so a claim will be written.
    fn is_running(&self) -> bool;

    /// Whether it may take one more outlet to visit.
    fn has_room(&self) -> bool;
}

#[derive(Default)]
struct Io {
    /// The connection's transport, while it is lent.
    transport: Option<Arc<dyn Transport>>,
    /// Claimed frames, oldest first, framed for `transport` — the first
    /// perhaps only the unwritten rest of one. The connection writes them
    /// before anything else.
    pending: VecDeque<Bytes>,
    pending_bytes: usize,
    /// On a writer's list, not yet visited.
    scheduled: bool,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("lent", &self.transport.is_some())
            .field("pending", &self.pending.len())
            .field("pending_bytes", &self.pending_bytes)
            .field("scheduled", &self.scheduled)
            .finish()
    }
}

impl Io {
    fn push(&mut self, chunk: Bytes) {
        self.pending_bytes += chunk.len();
        self.pending.push_back(chunk);
    }

    fn take(&mut self) -> VecDeque<Bytes> {
        self.pending_bytes = 0;
        std::mem::take(&mut self.pending)
    }

    /// Drops the first `n` bytes of `pending`; calls `whole` with each
    /// frame written entirely.
    fn consume(&mut self, mut n: usize, mut whole: impl FnMut(&Bytes)) {
        self.pending_bytes -= n;
        while n > 0 {
            let Some(front) = self.pending.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                if let Some(done) = self.pending.pop_front() {
                    whole(&done);
                }
            } else {
                let rest = front.slice(n..);
                *front = rest;
                return;
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Outlet {
    state: AtomicU8,
    /// Position of the last frame claimed, so a publish on several of the
    /// client's channels is claimed once. Written under the broker's
    /// publishing lock only.
    last_claimed: AtomicU64,
    io: Mutex<Io>,
    /// The connection task's own waker.
    task: Mutex<Option<Waker>>,
    /// When the socket was last written, by the writer or the connection
    /// (`Clock::now_ms`; 0: never); the keep-alive counts the writer's
    /// writes too.
    wrote_at_ms: AtomicU64,
    /// Which of the broker's writers visits it.
    shard: usize,
    clock: Clock,
}

/// What a publish may do with a subscriber's place in a channel log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Not parked (or too much pending): wake the connection as usual.
    No,
    /// Claimed: move past the frame; `schedule` says the outlet must be put
    /// on its writer's list.
    Claimed { schedule: bool },
    /// Claimed already through another channel: just move past the frame.
    AlreadyClaimed,
}

impl Outlet {
    pub(crate) fn new(shard: usize, clock: Clock) -> Self {
        Self {
            state: AtomicU8::new(ACTIVE),
            last_claimed: AtomicU64::new(0),
            io: Mutex::new(Io::default()),
            task: Mutex::new(None),
            wrote_at_ms: AtomicU64::new(0),
            shard,
            clock,
        }
    }

    /// Which of the broker's writers serves this outlet.
    pub(crate) fn shard(&self) -> usize {
        self.shard
    }

    /// Lends the connection's transport; the outlet stays `ACTIVE` until
    /// the connection parks. The caller makes sure a writer runs.
    pub(crate) fn attach(&self, transport: Arc<dyn Transport>) {
        lock(&self.io).transport = Some(transport);
    }

    /// The connection ended: give the transport back and drop what is
    /// pending.
    pub(crate) fn detach(&self) {
        self.state.store(CLOSED, Ordering::Release);
        let mut io = lock(&self.io);
        io.transport = None;
        io.take();
        drop(io);
        lock(&self.task).take();
    }

    /// Called by a publish under the channel log's lock: claims the frame
    /// at `position` if the connection is parked, its socket is not in a
    /// burst (`now_ms`: the fan-out's clock) and `writer` will visit.
    /// `frame` frames the event for the lent transport's framing; the
    /// caller frames once per framing, for every outlet.
    pub(crate) fn try_claim(
        &self,
        position: u64,
        now_ms: u64,
        writer: &impl Visitor,
        frame: impl FnOnce(&'static Framing) -> Bytes,
    ) -> Claim {
        // First: once this publish claimed the frame through another of
        // the client's channels, every other copy must be skipped too,
        // whatever happened to the connection since.
        if self.last_claimed.load(Ordering::Relaxed) == position {
            return Claim::AlreadyClaimed;
        }
        if self.state.load(Ordering::Acquire) != PARKED
            || !writer.is_running()
            || now_ms.saturating_sub(self.wrote_at_ms.load(Ordering::Relaxed)) < BURST_MS
        {
            return Claim::No;
        }
        let mut io = lock(&self.io);
        // Checked again under `io`, which parking also holds. An outlet
        // waiting for its visit takes the frame along; another joins a new
        // list only if the writer has room.
        let Some(framing) = io.transport.as_ref().map(|t| t.framing()) else {
            return Claim::No;
        };
        if self.state.load(Ordering::Acquire) != PARKED
            || !(io.scheduled || writer.has_room())
            || io.pending.len() >= MAX_PENDING_FRAMES
            || io.pending_bytes >= MAX_PENDING_BYTES
        {
            return Claim::No;
        }
        io.push(frame(framing));
        self.last_claimed.store(position, Ordering::Relaxed);
        let schedule = !std::mem::replace(&mut io.scheduled, true);
        Claim::Claimed { schedule }
    }

    /// The writer's visit: writes everything pending, in one write, if the
    /// connection is still parked; `whole` sees each frame written entirely
    /// (with its framing). Whatever it cannot write (full socket), or finds
    /// the connection awake for, is the connection's to write.
    pub(crate) fn visit(&self, now_ms: u64, mut whole: impl FnMut(&Bytes, &'static Framing)) {
        let mut io = lock(&self.io);
        io.scheduled = false;
        if io.pending.is_empty() || self.state.load(Ordering::Acquire) != PARKED {
            // Awake: it writes what is pending before anything else.
            return;
        }
        let Some(transport) = io.transport.clone() else {
            return;
        };
        let written = if io.pending.len() == 1 {
            transport.try_write(&[IoSlice::new(&io.pending[0])])
        } else {
            let slices: Vec<IoSlice<'_>> = io
                .pending
                .iter()
                .take(MAX_SLICES)
                .map(|b| IoSlice::new(b))
                .collect();
            transport.try_write(&slices)
        };
        // A full socket or an error leaves the rest to the connection
        // (which meets the error itself).
        if let Ok(n) = written {
            let framing = transport.framing();
            io.consume(n, |frame| whole(frame, framing));
            self.wrote_at_ms.store(now_ms, Ordering::Relaxed);
        }
        let rest = !io.pending.is_empty();
        drop(io);
        if rest {
            self.wake();
        }
    }

    /// The writer is gone: whatever is pending is the connection's.
    pub(crate) fn abandon(&self) {
        let mut io = lock(&self.io);
        io.scheduled = false;
        let rest = !io.pending.is_empty();
        drop(io);
        if rest {
            self.wake();
        }
    }

    /// Makes the connection `ACTIVE` and wakes its task.
    fn wake(&self) {
        if self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s != CLOSED).then_some(ACTIVE)
            })
            .is_ok()
        {
            let task = lock(&self.task).clone();
            if let Some(task) = task {
                task.wake();
            }
        }
    }

    // ---- the connection's part (through `loan::Lent`) ----

    /// Starts a poll of the connection's sources; `task` is the waker of
    /// the connection's own task.
    pub(crate) fn arm(&self, task: &Waker) {
        {
            let mut slot = lock(&self.task);
            match &mut *slot {
                Some(w) => w.clone_from(task),
                slot @ None => *slot = Some(task.clone()),
            }
        }
        self.state.store(ARMING, Ordering::Release);
    }

    /// The poll found something to write: the connection writes it.
    pub(crate) fn activate(&self) {
        self.state.store(ACTIVE, Ordering::Release);
    }

    /// The poll found nothing: park, unless something woke the connection
    /// while it polled or a frame was claimed for it meanwhile (then false:
    /// it must not sleep).
    pub(crate) fn park(&self) -> bool {
        let io = lock(&self.io);
        if !io.pending.is_empty() {
            self.state.store(ACTIVE, Ordering::Release);
            return false;
        }
        // A wake during the poll set `ACTIVE`: then this fails, and the
        // task, already scheduled again, polls once more.
        let _ = self
            .state
            .compare_exchange(ARMING, PARKED, Ordering::AcqRel, Ordering::Acquire);
        true
    }

    /// The connection wrote to its socket.
    pub(crate) fn wrote(&self) {
        self.wrote_at_ms
            .store(self.clock.now_ms(), Ordering::Relaxed);
    }

    /// Whether frames are pending for the connection to write first.
    pub(crate) fn busy(&self) -> bool {
        !lock(&self.io).pending.is_empty()
    }

    /// The frames pending, for the connection to write before anything
    /// else (it is awake, so the writer leaves them alone).
    pub(crate) fn take_pending(&self) -> VecDeque<Bytes> {
        lock(&self.io).take()
    }

    /// When the socket was last written (by the writer or the
    /// connection), if it was.
    pub(crate) fn last_write(&self) -> Option<Instant> {
        match self.wrote_at_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.clock.instant(ms)),
        }
    }
}

impl Wake for Outlet {
    fn wake(self: Arc<Self>) {
        Outlet::wake(&self);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        Outlet::wake(self);
    }
}

#[cfg(all(test, not(ssehub_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_short_write_keeps_the_rest_of_the_frame_it_cut() {
        let mut io = Io::default();
        io.push(Bytes::from_static(b"aaaaa"));
        io.push(Bytes::from_static(b"bbb"));
        io.push(Bytes::from_static(b"cc"));
        let mut whole = Vec::new();
        io.consume(6, |f| whole.push(f.clone()));
        assert_eq!(whole, [Bytes::from_static(b"aaaaa")]);
        assert_eq!(io.pending, [&b"bb"[..], &b"cc"[..]]);
        assert_eq!(io.pending_bytes, 4);
        io.consume(4, |f| whole.push(f.clone()));
        assert_eq!(whole.len(), 3);
        assert!(io.pending.is_empty());
        assert_eq!(io.pending_bytes, 0);
    }
}
