//! The bounded frame queue shared by a stream's [`Sender`](super::Sender)s and
//! its [`SseBody`](super::SseBody).
//!
//! One `std::sync::Mutex` guards the queue; it is only ever held for a few
//! pointer moves and never across an `.await`. Waiting happens outside the
//! lock: the body parks its `Waker` in the state, senders wait on a
//! [`Notify`] for room, and anyone may wait on a second `Notify` for the end.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::sync::lock;
use std::task::Waker;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

/// Why a push was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    Full,
    Closed,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Bytes>,
    queued_bytes: usize,
    /// No more frames are accepted; the body ends once the queue is drained.
    closing: bool,
    body_waker: Option<Waker>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Set once the stream can carry nothing more (closing, or body gone).
    /// Read without the lock by `is_closed`.
    closed: AtomicBool,
    /// Live `Sender` handles; the stream closes when the last one is dropped.
    senders: AtomicUsize,
    room: Notify,
    ended: Notify,
    max_events: usize,
    max_bytes: usize,
}

impl Shared {
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            closed: AtomicBool::new(false),
            senders: AtomicUsize::new(0),
            room: Notify::new(),
            ended: Notify::new(),
            max_events,
            max_bytes,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Queues one encoded frame, or says why it cannot.
    pub(crate) fn try_push(&self, frame: Bytes) -> Result<(), PushError> {
        let waker = {
            let mut st = lock(&self.state);
            if st.closing {
                return Err(PushError::Closed);
            }
            // An oversized frame still goes through on an empty queue, or it
            // could never be sent at all.
            let fits =
                st.queue.len() < self.max_events && st.queued_bytes + frame.len() <= self.max_bytes;
            if !fits && !st.queue.is_empty() {
                return Err(PushError::Full);
            }
            st.queued_bytes += frame.len();
            st.queue.push_back(frame);
            st.body_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queues a frame, evicting the oldest ones until it fits; returns how
    /// many were evicted.
    pub(crate) fn push_evicting(&self, frame: Bytes) -> u64 {
        let mut evicted = 0;
        let waker = {
            let mut st = lock(&self.state);
            if st.closing {
                return 0;
            }
            while !st.queue.is_empty()
                && (st.queue.len() >= self.max_events
                    || st.queued_bytes + frame.len() > self.max_bytes)
            {
                if let Some(old) = st.queue.pop_front() {
                    st.queued_bytes -= old.len();
                    evicted += 1;
                }
            }
            st.queued_bytes += frame.len();
            st.queue.push_back(frame);
            st.body_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        evicted
    }

    /// Wakes the body so it polls its sources again.
    pub(crate) fn wake_body(&self) {
        let waker = lock(&self.state).body_waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Waits until a frame of `len` bytes may be pushed, or the stream closed.
    pub(crate) async fn wait_for_room(&self, len: usize) {
        let notified = self.room.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let st = lock(&self.state);
            let fits = st.queue.len() < self.max_events && st.queued_bytes + len <= self.max_bytes;
            if st.closing || fits || st.queue.is_empty() {
                return;
            }
        }
        notified.await;
    }

    /// Resolves once the stream is closed.
    pub(crate) async fn wait_closed(&self) {
        loop {
            let notified = self.ended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Stops accepting frames; what is queued is still delivered.
    pub(crate) fn close(&self) {
        let waker = {
            let mut st = lock(&self.state);
            st.closing = true;
            st.body_waker.take()
        };
        self.mark_closed();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The body is gone: drop what is queued and release everyone waiting.
    pub(crate) fn body_gone(&self) {
        {
            let mut st = lock(&self.state);
            st.closing = true;
            st.queue.clear();
            st.queued_bytes = 0;
            st.body_waker = None;
        }
        self.mark_closed();
    }

    fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
        self.room.notify_waiters();
        self.ended.notify_waiters();
    }

    pub(crate) fn add_sender(&self) {
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn remove_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }

    /// Takes every queued frame as one chunk, or registers `waker` to be
    /// woken by the next push. Returns the chunk and whether the stream has
    /// ended (closing with nothing left).
    pub(crate) fn take_ready(&self, waker: &Waker, chunk: &mut Chunk) -> bool {
        let ended;
        let took;
        {
            let mut st = lock(&self.state);
            took = !st.queue.is_empty();
            for frame in st.queue.drain(..) {
                chunk.push(frame);
            }
            st.queued_bytes = 0;
            ended = st.closing;
            if chunk.is_empty() && !ended {
                match &mut st.body_waker {
                    Some(w) => w.clone_from(waker),
                    slot @ None => *slot = Some(waker.clone()),
                }
            }
        }
        if took {
            self.room.notify_waiters();
        }
        ended
    }
}

/// Frames gathered for one write: a single frame is passed through without a
/// copy; several are joined so the server issues one write for all of them.
#[derive(Debug, Default)]
pub(crate) enum Chunk {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Chunk {
    pub(crate) fn push(&mut self, frame: Bytes) {
        *self = match std::mem::take(self) {
            Chunk::Empty => Chunk::One(frame),
            Chunk::One(first) => {
                let mut buf = BytesMut::with_capacity((first.len() + frame.len()) * 2);
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&frame);
                Chunk::Many(buf)
            }
            Chunk::Many(mut buf) => {
                buf.extend_from_slice(&frame);
                Chunk::Many(buf)
            }
        };
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Chunk::Empty)
    }

    pub(crate) fn into_bytes(self) -> Option<Bytes> {
        match self {
            Chunk::Empty => None,
            Chunk::One(b) => Some(b),
            Chunk::Many(b) => Some(b.freeze()),
        }
    }
}
