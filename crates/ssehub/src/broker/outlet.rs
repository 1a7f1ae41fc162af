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
//! The loom models at the bottom of this file check that protocol: claims
//! racing a connection that arms, parks, is woken and ends, and a writer
//! visiting — no claimed frame left behind a sleeping connection, none
//! written twice or out of order, nothing written once the loan ended.
//! Run them (with the log's, `log.rs`) with
//!
//! ```text
//! RUSTFLAGS="--cfg ssehub_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p ssehub --lib --release loom
//! ```

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

    /// A socket written within this many milliseconds is in a burst: new
    /// frames are left to its connection, which takes them several at a
    /// time, rather than claimed (`BrokerConfig::write_burst`).
    fn burst_ms(&self) -> u64;
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
            || now_ms.saturating_sub(self.wrote_at_ms.load(Ordering::Relaxed)) < writer.burst_ms()
        {
            return Claim::No;
        }
        let mut io = lock(&self.io);
        // Checked again under `io`, which parking also holds. An outlet
        // waiting for its visit takes the frame along; another joins the
        // writer's waiting list.
        let Some(framing) = io.transport.as_ref().map(|t| t.framing()) else {
            return Claim::No;
        };
        if self.state.load(Ordering::Acquire) != PARKED
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
        // Borrowed, not cloned: the write happens under the lock anyway,
        // and a reference count is one more locked update of a line that
        // is cold in a fan-out to thousands of sockets.
        let Some(transport) = io.transport.as_deref() else {
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
        let framing = transport.framing();
        // A full socket or an error leaves the rest to the connection
        // (which meets the error itself).
        if let Ok(n) = written {
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
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::broker::transport::testing::Recorder;

    /// A writer whose answer the test sets.
    struct Stub {
        running: bool,
    }

    impl Visitor for Stub {
        fn is_running(&self) -> bool {
            self.running
        }

        fn burst_ms(&self) -> u64 {
            BURST_MS
        }
    }

    /// The broker's default `write_burst`.
    const BURST_MS: u64 = 5;

    const WRITER: Stub = Stub { running: true };

    /// Long after any write: never in a burst.
    const LATER: u64 = 1_000_000;

    /// Counts the wakes of the connection's task.
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Task {
        fn wakes(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// An outlet lent its connection's transport, active.
    fn lent() -> (Arc<Outlet>, Arc<Recorder>) {
        let outlet = Arc::new(Outlet::new(0, Clock::new()));
        let transport = Arc::new(Recorder::default());
        outlet.attach(transport.clone());
        (outlet, transport)
    }

    /// A lent outlet, parked, its task's wake counter, and its transport.
    fn parked() -> (Arc<Outlet>, Arc<Task>, Arc<Recorder>) {
        let (outlet, transport) = lent();
        let task = Arc::new(Task::default());
        outlet.arm(&Waker::from(task.clone()));
        assert!(outlet.park());
        (outlet, task, transport)
    }

    /// A publish of `event` at `now_ms`, with `writer` to visit.
    fn claim_with(
        outlet: &Outlet,
        position: u64,
        now_ms: u64,
        writer: &Stub,
        event: &'static str,
    ) -> Claim {
        outlet.try_claim(position, now_ms, writer, |framing| {
            (framing.frame)(event.as_bytes())
        })
    }

    /// A publish of `event` long after any write, with a writer that has
    /// room.
    fn claim(outlet: &Outlet, position: u64, event: &'static str) -> Claim {
        claim_with(outlet, position, LATER, &WRITER, event)
    }

    /// Asserts the publish is claimed (whether it schedules a visit or not).
    #[track_caller]
    fn claimed(outlet: &Outlet, position: u64, event: &'static str) {
        let claim = claim(outlet, position, event);
        assert!(matches!(claim, Claim::Claimed { .. }), "{claim:?}");
    }

    /// A visit that must find nothing to write.
    #[track_caller]
    fn visit_writing_nothing(outlet: &Outlet) {
        outlet.visit(LATER, |_, _| panic!("nothing is written"));
    }

    /// The frames left to the connection, as text.
    fn pending(outlet: &Outlet) -> Vec<String> {
        outlet
            .take_pending()
            .into_iter()
            .map(|frame| String::from_utf8_lossy(&frame).into_owned())
            .collect()
    }

    #[test]
    fn a_parked_outlet_is_claimed_and_visited_in_one_write() {
        let (outlet, task, transport) = parked();
        assert_eq!(claim(&outlet, 1, "a"), Claim::Claimed { schedule: true });
        // Waiting for its visit already: no second place on a list.
        assert_eq!(claim(&outlet, 2, "b"), Claim::Claimed { schedule: false });
        let mut whole = Vec::new();
        outlet.visit(LATER, |frame, framing| {
            whole.push((framing.event)(frame).to_vec());
        });
        assert_eq!(transport.text(), "[a][b]");
        assert_eq!(transport.writes.load(Ordering::SeqCst), 1);
        assert_eq!(whole, [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(task.wakes(), 0, "all written: the connection sleeps on");
        // The next claim (once the burst window passed) needs a new visit.
        assert_eq!(
            claim_with(&outlet, 3, LATER + BURST_MS, &WRITER, "c"),
            Claim::Claimed { schedule: true }
        );
    }

    #[test]
    fn one_publish_on_several_channels_is_claimed_once() {
        let (outlet, _task, _transport) = parked();
        assert_eq!(claim(&outlet, 7, "a"), Claim::Claimed { schedule: true });
        assert_eq!(claim(&outlet, 7, "a"), Claim::AlreadyClaimed);
        // Even once the connection woke: the copy must still be skipped.
        outlet.activate();
        assert_eq!(claim(&outlet, 7, "a"), Claim::AlreadyClaimed);
        assert_eq!(pending(&outlet).len(), 1);
    }

    #[test]
    fn only_a_parked_outlet_is_claimed() {
        let outlet = Outlet::new(0, Clock::new());
        // Not lent, and active: the connection writes for itself.
        assert_eq!(claim(&outlet, 1, "a"), Claim::No);
        outlet.attach(Arc::new(Recorder::default()));
        assert_eq!(claim(&outlet, 1, "a"), Claim::No);
        let task = Arc::new(Task::default());
        outlet.arm(&Waker::from(task));
        assert_eq!(claim(&outlet, 1, "a"), Claim::No, "arming is not parked");
        assert!(outlet.park());
        claimed(&outlet, 1, "a");
    }

    #[test]
    fn a_wake_while_arming_keeps_the_connection_active() {
        let (outlet, _transport) = lent();
        let task = Arc::new(Task::default());
        outlet.arm(&Waker::from(task.clone()));
        // A source woke the connection during its poll...
        Waker::from(outlet.clone()).wake_by_ref();
        assert_eq!(task.wakes(), 1);
        // ...so parking leaves it active (its task polls again) and
        // nothing is claimed for it.
        assert!(outlet.park());
        assert_eq!(claim(&outlet, 1, "a"), Claim::No);
    }

    #[test]
    fn a_claim_while_arming_again_stops_the_park() {
        let (outlet, task, _transport) = parked();
        claimed(&outlet, 1, "a");
        // Woken for something else before the writer came: it polls again,
        // finds the frame pending and must not sleep.
        Waker::from(outlet.clone()).wake_by_ref();
        assert_eq!(task.wakes(), 1);
        outlet.arm(&Waker::from(task.clone()));
        assert!(outlet.busy());
        assert!(
            !outlet.park(),
            "a claimed frame is never left behind a sleeper"
        );
        assert_eq!(pending(&outlet), ["[a]"]);
        assert!(!outlet.busy());
    }

    #[test]
    fn a_visit_leaves_an_awake_connection_its_frames() {
        let (outlet, _task, transport) = parked();
        claimed(&outlet, 1, "a");
        outlet.activate();
        visit_writing_nothing(&outlet);
        assert_eq!(transport.text(), "");
        assert_eq!(pending(&outlet), ["[a]"]);
    }

    #[test]
    fn a_short_write_leaves_the_rest_to_the_connection_and_wakes_it() {
        let (outlet, task, transport) = parked();
        *lock(&transport.room) = Some(4);
        claimed(&outlet, 1, "ab");
        claimed(&outlet, 2, "cd");
        let mut whole = 0;
        outlet.visit(LATER, |_, _| whole += 1);
        assert_eq!(transport.text(), "[ab]");
        assert_eq!(whole, 1);
        assert_eq!(task.wakes(), 1);
        // Awake now: no more claims, and the connection writes the rest.
        assert_eq!(claim(&outlet, 3, "ef"), Claim::No);
        assert_eq!(pending(&outlet), ["[cd]"]);
    }

    #[test]
    fn a_full_socket_leaves_everything_to_the_connection() {
        let (outlet, task, transport) = parked();
        *lock(&transport.room) = Some(0);
        claimed(&outlet, 1, "a");
        visit_writing_nothing(&outlet);
        assert_eq!(task.wakes(), 1);
        assert_eq!(pending(&outlet), ["[a]"]);
        assert_eq!(outlet.last_write(), None, "nothing written, no write time");
    }

    #[test]
    fn a_socket_written_within_the_burst_window_is_left_to_its_connection() {
        let (outlet, _task, _transport) = parked();
        claimed(&outlet, 1, "a");
        outlet.visit(100, |_, _| {});
        let at = |now_ms| claim_with(&outlet, 2, now_ms, &WRITER, "b");
        assert_eq!(at(100 + BURST_MS - 1), Claim::No);
        assert!(matches!(at(100 + BURST_MS), Claim::Claimed { .. }));
    }

    #[test]
    fn a_writer_that_is_stopped_gets_no_claims() {
        let (outlet, _task, _transport) = parked();
        let claim_by = |position, writer: &Stub| claim_with(&outlet, position, LATER, writer, "x");
        assert_eq!(claim_by(1, &Stub { running: false }), Claim::No);
        assert_eq!(claim_by(1, &WRITER), Claim::Claimed { schedule: true });
        // Already waiting for its visit: the next frame goes along.
        assert_eq!(claim_by(2, &WRITER), Claim::Claimed { schedule: false });
    }

    #[test]
    fn pending_frames_are_bounded() {
        let (outlet, _task, _transport) = parked();
        for position in 1..=MAX_PENDING_FRAMES as u64 {
            claimed(&outlet, position, "x");
        }
        assert_eq!(claim(&outlet, 1_000, "x"), Claim::No);
        assert_eq!(pending(&outlet).len(), MAX_PENDING_FRAMES);
    }

    #[test]
    fn a_detached_outlet_is_never_claimed_written_or_woken() {
        let (outlet, task, transport) = parked();
        claimed(&outlet, 1, "a");
        outlet.detach();
        transport.returned.store(true, Ordering::SeqCst);
        assert_eq!(claim(&outlet, 2, "b"), Claim::No);
        assert!(!outlet.busy(), "what was pending went with the connection");
        visit_writing_nothing(&outlet);
        outlet.abandon();
        Waker::from(outlet.clone()).wake_by_ref();
        assert_eq!(task.wakes(), 0);
    }

    #[test]
    fn an_abandoned_outlet_wakes_its_connection_for_its_frames() {
        let (outlet, task, _transport) = parked();
        claimed(&outlet, 1, "a");
        outlet.abandon();
        assert_eq!(task.wakes(), 1);
        assert_eq!(claim(&outlet, 2, "b"), Claim::No, "awake now");
        // No longer on a list: the next claim after parking schedules it.
        let task_waker = Waker::from(task.clone());
        outlet.arm(&task_waker);
        assert!(!outlet.park());
        assert_eq!(pending(&outlet).len(), 1);
        outlet.arm(&task_waker);
        assert!(outlet.park());
        assert_eq!(claim(&outlet, 2, "b"), Claim::Claimed { schedule: true });
    }

    #[test]
    fn the_last_write_counts_the_connection_and_the_writer() {
        let (outlet, _task, _transport) = parked();
        assert_eq!(outlet.last_write(), None);
        outlet.wrote();
        let first = outlet.last_write().expect("written");
        claimed(&outlet, 1, "a");
        outlet.visit(LATER, |_, _| {});
        assert!(outlet.last_write().expect("written") > first);
    }

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

/// loom models of the protocol above: every interleaving of a publisher
/// claiming, the writer visiting and the connection polling, parking,
/// waking and ending (see `crate::sync` for how to run them).
#[cfg(all(test, ssehub_loom))]
mod loom_model {
    use std::collections::VecDeque;

    use loom::sync::Notify;
    use loom::thread;

    use super::*;
    use crate::broker::transport::testing::{BRACKETS, Recorder};

    /// A writer that always runs.
    struct Always;

    impl Visitor for Always {
        fn is_running(&self) -> bool {
            true
        }

        fn burst_ms(&self) -> u64 {
            5
        }
    }

    /// The clock of every claim and visit: never in a burst.
    const NOW: u64 = 1_000;

    /// The connection task: a wake lets its thread run again.
    struct Task(Notify);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.notify();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.notify();
        }
    }

    /// What the channel log is to the outlet: frames not claimed, which the
    /// connection takes itself, and the waker of a connection waiting.
    #[derive(Default)]
    struct Source {
        frames: VecDeque<u64>,
        waiting: Option<Waker>,
        ended: bool,
    }

    /// The writer's lists, and whether the publisher is done.
    #[derive(Default)]
    struct Lists {
        outlets: VecDeque<Arc<Outlet>>,
        done: bool,
    }

    fn framed(position: u64) -> Bytes {
        (BRACKETS.frame)(position.to_string().as_bytes())
    }

    /// A publish, as `Log::append` does it: claim for a caught-up parked
    /// subscriber under the log's lock, else leave the frame in the log
    /// and wake the connection; hand a newly scheduled outlet to the writer
    /// after the lock.
    fn publish(
        position: u64,
        outlet: &Arc<Outlet>,
        source: &Mutex<Source>,
        lists: &Mutex<Lists>,
        writer: &Notify,
    ) {
        let mut log = lock(source);
        let claim = if log.frames.is_empty() {
            outlet.try_claim(position, NOW, &Always, |framing| {
                assert!(framing.same(&BRACKETS));
                framed(position)
            })
        } else {
            Claim::No
        };
        match claim {
            Claim::Claimed { schedule } => {
                drop(log);
                if schedule {
                    lock(lists).outlets.push_back(outlet.clone());
                    writer.notify();
                }
            }
            Claim::AlreadyClaimed => unreachable!("one channel: claimed once"),
            Claim::No => {
                log.frames.push_back(position);
                let waiting = log.waiting.take();
                drop(log);
                if let Some(waker) = waiting {
                    waker.wake();
                }
            }
        }
    }

    /// The lean server's loop (`server.rs`, `next_step` and
    /// `write_streaming`) around a lent socket: frames left to it go out
    /// before anything it takes itself.
    fn connection(
        outlet: &Arc<Outlet>,
        source: &Mutex<Source>,
        socket: &Recorder,
        progress: &Notify,
    ) {
        let task = Arc::new(Task(Notify::new()));
        let task_waker = Waker::from(task.clone());
        let lent_waker = Waker::from(outlet.clone());
        let write = |bytes: &[u8]| {
            lock(&socket.written).extend_from_slice(bytes);
            progress.notify();
        };
        let write_pending = || {
            for frame in outlet.take_pending() {
                write(&frame);
            }
        };
        loop {
            outlet.arm(&task_waker);
            if outlet.busy() {
                outlet.activate();
                write_pending();
                continue;
            }
            let (frames, ended) = {
                let mut log = lock(source);
                let frames: Vec<u64> = log.frames.drain(..).collect();
                if frames.is_empty() && !log.ended {
                    log.waiting = Some(lent_waker.clone());
                }
                (frames, log.ended)
            };
            if !frames.is_empty() {
                outlet.activate();
                write_pending();
                for position in frames {
                    write(&framed(position));
                }
                continue;
            }
            if ended {
                outlet.activate();
                write_pending();
                break;
            }
            if outlet.park() {
                task.0.wait();
            } else {
                write_pending();
            }
        }
        outlet.detach();
        socket.returned.store(true, Ordering::SeqCst);
    }

    fn writer_loop(lists: &Mutex<Lists>, writer: &Notify, progress: &Notify) {
        loop {
            let next = {
                let mut lists = lock(lists);
                match lists.outlets.pop_front() {
                    Some(outlet) => Some(outlet),
                    None if lists.done => return,
                    None => None,
                }
            };
            match next {
                Some(outlet) => {
                    outlet.visit(NOW, |_, _| {});
                    progress.notify();
                }
                None => writer.wait(),
            }
        }
    }

    fn model(check: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        // Every interleaving with up to three preemptions: the races here
        // need two (a claim between a poll and its park; a wake between a
        // visit's check and its write).
        builder.preemption_bound.get_or_insert(3);
        builder.check(check);
    }

    /// Frames published while the connection polls, parks, is woken and
    /// writes, and while the writer visits and fills the socket: each frame
    /// reaches the socket exactly once, in order, and no claimed frame is
    /// left behind a sleeping connection — the model waits for every frame
    /// to be written before it ends the stream, so loom reports a deadlock
    /// if one is (nobody would wake the connection to write it).
    #[test]
    fn loom_claims_racing_park_wake_and_visit_write_each_frame_once_in_order() {
        model(|| {
            let outlet = Arc::new(Outlet::new(0, Clock::new()));
            let socket = Arc::new(Recorder::default());
            // The writer's writes fill the socket part-way through the
            // second frame: the rest is the connection's.
            *lock(&socket.room) = Some(4);
            outlet.attach(socket.clone());
            let source = Arc::new(Mutex::new(Source::default()));
            let lists = Arc::new(Mutex::new(Lists::default()));
            let notify = Arc::new(Notify::new());
            let progress = Arc::new(Notify::new());

            let connection = {
                let (outlet, source, socket, progress) = (
                    outlet.clone(),
                    source.clone(),
                    socket.clone(),
                    progress.clone(),
                );
                thread::spawn(move || connection(&outlet, &source, &socket, &progress))
            };
            let writer = {
                let (lists, notify, progress) = (lists.clone(), notify.clone(), progress.clone());
                thread::spawn(move || writer_loop(&lists, &notify, &progress))
            };
            for position in 1..=2 {
                publish(position, &outlet, &source, &lists, &notify);
            }
            lock(&*lists).done = true;
            notify.notify();
            while socket.text() != "[1][2]" {
                progress.wait();
            }
            // Everything is out: end the stream (the body ends).
            let waiting = {
                let mut log = lock(&*source);
                log.ended = true;
                log.waiting.take()
            };
            if let Some(waker) = waiting {
                waker.wake();
            }
            writer.join().expect("writer");
            connection.join().expect("connection");
            assert_eq!(socket.text(), "[1][2]", "nothing written twice");
        });
    }

    /// A claim and a visit racing the connection's end: nothing is written
    /// once the transport is given back, and the outlet stays closed.
    #[test]
    fn loom_claims_racing_detach_never_write_to_a_returned_socket() {
        model(|| {
            let outlet = Arc::new(Outlet::new(0, Clock::new()));
            let socket = Arc::new(Recorder::default());
            outlet.attach(socket.clone());
            let task = Arc::new(Task(Notify::new()));
            outlet.arm(&Waker::from(task));
            assert!(outlet.park());

            let publisher = {
                let outlet = outlet.clone();
                thread::spawn(move || {
                    let claim = outlet.try_claim(1, NOW, &Always, |_| framed(1));
                    if claim == (Claim::Claimed { schedule: true }) {
                        // The writer's visit, right after the publish.
                        outlet.visit(NOW, |_, _| {});
                    }
                    claim
                })
            };
            outlet.detach();
            socket.returned.store(true, Ordering::SeqCst);
            let claim = publisher.join().expect("publisher");
            // Written whole before the end, or dropped with the connection.
            let written = socket.text();
            assert!(written.is_empty() || written == "[1]", "{written}");
            assert!(matches!(claim, Claim::No | Claim::Claimed { .. }));
            assert!(!outlet.busy(), "nothing is left pending after the end");
            let after = outlet.try_claim(2, NOW * 2, &Always, |_| framed(2));
            assert_eq!(after, Claim::No);
        });
    }
}
