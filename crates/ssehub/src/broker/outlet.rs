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
//!
//! # The protocol
//!
//! `state` says whether the writer may write:
//!
//! - `ACTIVE`: the connection is running, or was woken; it writes itself.
//! - `ARMING`: the connection is polling its sources. A wake during the
//!   poll sets `ACTIVE`, so the parking at the end of the poll fails.
//! - `PARKED`: the last poll found nothing and nothing woke it since, so
//!   the next frame published for it *is* the next frame it must write.
//! - `CLOSED`: the connection ended; frames for it are dropped.
//!
//! A publish that finds a subscriber `PARKED` *claims* the frame: it moves
//! the subscriber's place in the channel log past it (so the connection
//! never takes it itself) and queues it for the writer, instead of waking
//! the connection. The writer writes a claimed frame if the outlet is still
//! parked and nothing is pending; otherwise — or when the socket is full —
//! it keeps the frame in `pending` and wakes the connection. The
//! connection, before it writes anything, waits until every claim is
//! settled and writes `pending` first: a claim is always older than what
//! the connection takes afterwards, so frames reach the socket in publish
//! order. The writer and the connection take `io` around every write, so
//! their writes never interleave.
//!
//! Every waker the connection registers while it polls its body is this
//! outlet (see [`Wake`]): whatever wakes it — a direct send, a new
//! subscription, a timer, the client closing — makes it `ACTIVE` before
//! its task runs, so the writer never writes around a frame queued
//! elsewhere.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Wake, Waker};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::writer::{Frame, Writer};
use crate::sync::lock;

const ACTIVE: u8 = 0;
const ARMING: u8 = 1;
const PARKED: u8 = 2;
const CLOSED: u8 = 3;

#[derive(Debug, Default)]
struct Io {
    /// The connection's socket, while it streams.
    socket: Option<Arc<TcpStream>>,
    /// Claimed frames (or the unwritten rest of one) the connection must
    /// write before anything else.
    pending: VecDeque<Bytes>,
}

#[derive(Debug)]
pub(crate) struct Outlet {
    state: AtomicU8,
    /// Frames claimed for this outlet that the writer has not handled yet.
    claimed: AtomicUsize,
    /// Position of the last frame claimed, so a publish on several of the
    /// client's channels is claimed once. Written under the broker's
    /// publishing lock only.
    last_claimed: AtomicU64,
    io: Mutex<Io>,
    /// The connection task's own waker.
    task: Mutex<Option<Waker>>,
    /// When the writer last wrote (`Frame::at_ms`; 0: never); the
    /// keep-alive counts those writes too.
    wrote_at_ms: AtomicU64,
    writer: Arc<Writer>,
}

impl Outlet {
    pub(crate) fn new(writer: Arc<Writer>) -> Self {
        Self {
            state: AtomicU8::new(ACTIVE),
            claimed: AtomicUsize::new(0),
            last_claimed: AtomicU64::new(0),
            io: Mutex::new(Io::default()),
            task: Mutex::new(None),
            wrote_at_ms: AtomicU64::new(0),
            writer,
        }
    }

    /// Lends the connection's socket; the outlet stays `ACTIVE` until the
    /// connection parks. Returns false when there is no runtime to run the
    /// writer in (the connection then writes everything itself).
    pub(crate) fn attach(&self, socket: Arc<TcpStream>) -> bool {
        if !self.writer.ensure_running() {
            return false;
        }
        lock(&self.io).socket = Some(socket);
        true
    }

    /// Which of the broker's writers serves this outlet.
    pub(crate) fn shard(&self) -> usize {
        self.writer.shard()
    }

    /// The connection ended: give the socket back and drop what is pending.
    pub(crate) fn detach(&self) {
        self.state.store(CLOSED, Ordering::Release);
        let mut io = lock(&self.io);
        io.socket = None;
        io.pending.clear();
        drop(io);
        lock(&self.task).take();
    }

    /// Called by a publish under the channel log's lock: claims the frame
    /// at `position` if the connection is parked. Returns whether this
    /// subscriber's place may move past the frame (claimed now, or already
    /// claimed through another of its channels), and whether a new claim
    /// was made (the writer must be given this outlet).
    pub(crate) fn try_claim(&self, position: u64) -> Claim {
        // First: once this publish claimed the frame through another of
        // the client's channels, every other copy must be skipped too,
        // whatever happened to the connection since.
        if self.last_claimed.load(Ordering::Relaxed) == position {
            return Claim::AlreadyClaimed;
        }
        if self.state.load(Ordering::Acquire) != PARKED || !self.writer.accepting() {
            return Claim::No;
        }
        self.last_claimed.store(position, Ordering::Relaxed);
        self.claimed.fetch_add(1, Ordering::AcqRel);
        Claim::Claimed
    }

    /// The writer's part: writes a claimed frame if the connection is still
    /// parked, else keeps it for the connection. True if it wrote it whole.
    pub(crate) fn deliver(&self, frame: &Frame) -> bool {
        let mut io = lock(&self.io);
        let state = self.state.load(Ordering::Acquire);
        if state == CLOSED {
            drop(io);
            self.settle_claim();
            return false;
        }
        let mut wake = false;
        match io.socket.clone() {
            Some(socket) if state == PARKED && io.pending.is_empty() => {
                match socket.try_write(frame.bytes()) {
                    Ok(n) if n == frame.bytes().len() => {
                        self.wrote_at_ms.store(frame.at_ms, Ordering::Relaxed);
                    }
                    // A short write, a full socket or an error: the
                    // connection takes over (and meets the error itself).
                    Ok(n) => {
                        io.pending.push_back(frame.rest_after(n));
                        wake = true;
                    }
                    Err(_) => {
                        io.pending.push_back(frame.rest_after(0));
                        wake = true;
                    }
                }
            }
            _ => {
                io.pending.push_back(frame.rest_after(0));
                wake = true;
            }
        }
        drop(io);
        if wake {
            self.activate_and_wake();
        }
        self.settle_claim();
        !wake
    }

    /// The slow path for a claimed frame: leave it to the connection.
    pub(crate) fn deliver_later(&self, frame: &Frame) {
        {
            let mut io = lock(&self.io);
            if self.state.load(Ordering::Acquire) != CLOSED {
                io.pending.push_back(frame.rest_after(0));
            }
        }
        self.activate_and_wake();
        self.settle_claim();
    }

    /// One claim handled: once none is left, a connection waiting for the
    /// writer may go on.
    fn settle_claim(&self) {
        if self.claimed.fetch_sub(1, Ordering::AcqRel) == 1
            && self.state.load(Ordering::Acquire) != PARKED
        {
            self.wake_task();
        }
    }

    fn activate_and_wake(&self) {
        if self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s != CLOSED).then_some(ACTIVE)
            })
            .is_ok()
        {
            self.wake_task();
        }
    }

    fn wake_task(&self) {
        let task = lock(&self.task).clone();
        if let Some(task) = task {
            task.wake();
        }
    }

    // ---- the connection's part ----

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
    /// while it polled.
    pub(crate) fn park(&self) {
        let _ = self
            .state
            .compare_exchange(ARMING, PARKED, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Whether the writer holds or left frames the connection must handle
    /// before polling its sources.
    pub(crate) fn busy(&self) -> bool {
        self.claimed.load(Ordering::Acquire) > 0 || !lock(&self.io).pending.is_empty()
    }

    /// Ready once every claim is settled; then the frames left pending are
    /// the connection's to write, before anything else.
    pub(crate) fn poll_settled(&self, task: &Waker) -> Poll<Vec<Bytes>> {
        if self.claimed.load(Ordering::Acquire) > 0 {
            {
                let mut slot = lock(&self.task);
                match &mut *slot {
                    Some(w) => w.clone_from(task),
                    slot @ None => *slot = Some(task.clone()),
                }
            }
            // Settled between the check and the registration: don't sleep.
            if self.claimed.load(Ordering::Acquire) > 0 {
                return Poll::Pending;
            }
        }
        Poll::Ready(lock(&self.io).pending.drain(..).collect())
    }

    /// When the writer last wrote to this socket, if it did.
    pub(crate) fn last_write(&self) -> Option<Instant> {
        match self.wrote_at_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.writer.instant(ms)),
        }
    }
}

/// The response extension through which a server finds the outlet of an
/// event-stream response's client (set by `SseBody::into_response`).
#[derive(Debug, Clone)]
pub(crate) struct OutletHandle(pub(crate) Arc<Outlet>);

/// What a publish may do with a subscriber's place in a channel log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Not parked: wake the connection as usual.
    No,
    /// Claimed now: move past the frame and hand the outlet to the writer.
    Claimed,
    /// Claimed already through another channel: just move past the frame.
    AlreadyClaimed,
}

impl Wake for Outlet {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.activate_and_wake();
    }
}
