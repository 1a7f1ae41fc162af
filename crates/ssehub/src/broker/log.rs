//! The channel log: the frames a channel's subscribers have not all taken
//! yet, and each subscriber's position in it.
//!
//! # Design
//!
//! A publish appends the encoded frame once and wakes the subscribers that
//! were waiting; it never touches a subscriber's own buffer, because a
//! subscriber *is* a position in this log. A connection, when its server
//! polls it, takes every frame from its position to the end in one go (a
//! reference-count bump per frame) and hands them to the server as a
//! single chunk. So a publish to N subscribers costs N wake-ups at most —
//! and none for a subscriber that is still busy writing — and the frames of
//! a burst reach each socket in one write.
//!
//! A subscriber that falls more than the client buffer behind the end of
//! the log has overflowed; the log is never kept longer than that for it,
//! so a stalled client pins no memory. What happens to it then is the
//! broker's [`OverflowPolicy`], applied lazily when it is next polled: the
//! outcome is the same as if the policy had been applied at each publish,
//! since nothing else reads that subscriber's position meanwhile.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Waker;

use bytes::Bytes;
use slab::Slab;

use super::client::ClientInner;
use super::config::OverflowPolicy;

#[derive(Debug)]
struct Frame {
    /// Broker-wide publish order, so a connection in several channels can
    /// write what it gathered from them in the order it was published.
    order: u64,
    bytes: Bytes,
    /// Bytes published on the channel up to and including this frame, so the
    /// byte size of any suffix of the log is one subtraction.
    end: u64,
}

#[derive(Debug)]
struct Subscriber {
    client: Weak<ClientInner>,
    /// Sequence number of the next frame this subscriber takes.
    pos: u64,
    /// Set while the subscriber's connection waits for a frame.
    waker: Option<Waker>,
    /// Under [`OverflowPolicy::DropNewest`], the frames a full subscriber
    /// keeps; while set, every newer frame skips it.
    held: Option<Vec<(u64, Bytes)>>,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Frame>,
    /// Sequence number of `frames[0]`.
    first_seq: u64,
    /// Sequence number of the next frame published.
    next_seq: u64,
    /// Bytes published before `frames[0]`.
    start: u64,
    /// Bytes published in all.
    end: u64,
    subscribers: Slab<Subscriber>,
    deleted: bool,
}

impl State {
    /// Bytes published before frame `seq`; `first_seq <= seq <= next_seq`.
    fn offset_before(&self, seq: u64) -> u64 {
        match ((seq - self.first_seq) as usize).checked_sub(1) {
            Some(prev) => self.frames[prev].end,
            None => self.start,
        }
    }

    /// Bytes of frames `from..to`, both within the log.
    fn bytes_between(&self, from: u64, to: u64) -> u64 {
        self.offset_before(to) - self.offset_before(from)
    }

    fn pop_front(&mut self) {
        if let Some(frame) = self.frames.pop_front() {
            self.start = frame.end;
            self.first_seq += 1;
        }
    }
}

/// The log was deleted (its channel was deleted or reclaimed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deleted;

/// What one subscriber took from the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
}

/// Why a subscriber got nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TakeError {
    /// The log is gone; forget this subscription.
    Deleted,
    /// The subscriber overflowed and the policy is to disconnect it.
    Overflowed,
}

/// Bounds a subscriber's backlog.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) events: u64,
    pub(crate) bytes: u64,
    pub(crate) policy: OverflowPolicy,
}

#[derive(Debug)]
pub(crate) struct Log {
    state: Mutex<State>,
    limits: Limits,
    /// The broker's publish counter, shared by all its logs.
    order: Arc<AtomicU64>,
}

thread_local! {
    /// Wakers collected under the lock and woken after it is released;
    /// reused so a publish to many subscribers does not allocate.
    static WAKE_LIST: std::cell::RefCell<Vec<Waker>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Log {
    pub(crate) fn new(limits: Limits, order: Arc<AtomicU64>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            limits,
            order,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent before anything that can
        // panic, so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a frame and wakes the subscribers waiting for one; returns
    /// how many subscribers had to skip it (full, under `DropNewest`).
    pub(crate) fn publish(&self, bytes: Bytes) -> Result<u64, Deleted> {
        WAKE_LIST.with(|list| {
            // A re-entrant publish (from a waker) falls back to a fresh list.
            let mut fresh = Vec::new();
            let mut guard = list.try_borrow_mut().ok();
            let wakers = guard.as_deref_mut().unwrap_or(&mut fresh);
            let skipped = {
                let mut st = self.lock();
                if st.deleted {
                    return Err(Deleted);
                }
                let skipped = if self.limits.policy == OverflowPolicy::DropNewest {
                    self.hold_full_subscribers(&mut st, bytes.len() as u64)
                } else {
                    0
                };
                st.end += bytes.len() as u64;
                let end = st.end;
                // Taken under this log's lock, so orders rise along the log.
                let order = self.order.fetch_add(1, Ordering::Relaxed);
                st.frames.push_back(Frame { order, bytes, end });
                st.next_seq += 1;
                let mut keep_from = st.next_seq;
                for (_, sub) in &mut st.subscribers {
                    if let Some(waker) = sub.waker.take() {
                        wakers.push(waker);
                    }
                    keep_from = keep_from.min(sub.pos);
                }
                self.trim(&mut st, keep_from);
                skipped
            };
            for waker in wakers.drain(..) {
                waker.wake();
            }
            Ok(skipped)
        })
    }

    /// `DropNewest`, applied before a frame of `len` bytes is appended: a
    /// subscriber it would overflow keeps what it has (copied out of the log
    /// as reference-counted frames, so the log can still be trimmed) and
    /// skips this frame and every later one until its connection takes them.
    fn hold_full_subscribers(&self, st: &mut State, len: u64) -> u64 {
        let (first_seq, next_seq) = (st.first_seq, st.next_seq);
        let mut full = Vec::new();
        for (key, sub) in &st.subscribers {
            if sub.held.is_some() {
                full.push((key, None));
            } else if sub.pos >= first_seq
                && (next_seq - sub.pos >= self.limits.events
                    || st.bytes_between(sub.pos, next_seq) + len > self.limits.bytes)
            {
                let kept = (sub.pos..next_seq)
                    .map(|seq| {
                        let frame = &st.frames[(seq - first_seq) as usize];
                        (frame.order, frame.bytes.clone())
                    })
                    .collect();
                full.push((key, Some(kept)));
            }
        }
        let skipped = full.len() as u64;
        for (key, kept) in full {
            let sub = &mut st.subscribers[key];
            if let Some(kept) = kept {
                sub.held = Some(kept);
            }
            // Past the frame about to be appended.
            sub.pos = next_seq + 1;
        }
        skipped
    }

    /// Drops frames every subscriber has taken, and frames so old that any
    /// subscriber still needing them has overflowed anyway.
    fn trim(&self, st: &mut State, keep_from: u64) {
        let keep_from = keep_from.max(st.next_seq.saturating_sub(self.limits.events));
        while st.first_seq < keep_from {
            st.pop_front();
        }
        while st.frames.len() > 1 && st.end - st.start > self.limits.bytes {
            st.pop_front();
        }
    }

    /// Registers a subscriber at the end of the log.
    pub(crate) fn subscribe(&self, client: Weak<ClientInner>) -> Result<usize, Deleted> {
        let mut st = self.lock();
        if st.deleted {
            return Err(Deleted);
        }
        let pos = st.next_seq;
        Ok(st.subscribers.insert(Subscriber {
            client,
            pos,
            waker: None,
            held: None,
        }))
    }

    /// Removes a subscriber; returns how many remain.
    pub(crate) fn unsubscribe(&self, key: usize) -> usize {
        let mut st = self.lock();
        st.subscribers.try_remove(key);
        st.subscribers.len()
    }

    /// Number of subscribers.
    pub(crate) fn len(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// The subscribers' clients, for iterating without holding the lock.
    pub(crate) fn clients(&self) -> Vec<Weak<ClientInner>> {
        self.lock()
            .subscribers
            .iter()
            .map(|(_, s)| s.client.clone())
            .collect()
    }

    /// Marks the log deleted and returns its subscribers' clients.
    pub(crate) fn delete(&self) -> Vec<Weak<ClientInner>> {
        let mut st = self.lock();
        st.deleted = true;
        st.frames.clear();
        std::mem::take(&mut st.subscribers)
            .into_iter()
            .map(|(_, s)| s.client)
            .collect()
    }

    /// Deletes the log only if it has no subscriber.
    pub(crate) fn delete_if_unused(&self) -> bool {
        let mut st = self.lock();
        if st.subscribers.is_empty() {
            st.deleted = true;
            st.frames.clear();
            true
        } else {
            false
        }
    }

    /// Appends the frames subscriber `key` has not taken to `out`, with
    /// their publish order, applying the overflow policy; or parks `waker`
    /// until the next publish.
    pub(crate) fn take(
        &self,
        key: usize,
        waker: &Waker,
        out: &mut Vec<(u64, Bytes)>,
    ) -> Result<Taken, TakeError> {
        let mut st = self.lock();
        if st.deleted {
            return Err(TakeError::Deleted);
        }
        let (first_seq, next_seq) = (st.first_seq, st.next_seq);
        let Some(sub) = st.subscribers.get_mut(key) else {
            return Err(TakeError::Deleted);
        };
        let held = sub.held.take().unwrap_or_default();
        let held_count = held.len() as u64;
        out.extend(held);
        let pos = sub.pos;
        if pos == next_seq && held_count > 0 {
            return Ok(Taken {
                delivered: held_count,
                dropped: 0,
            });
        }
        if pos == next_seq {
            let sub = &mut st.subscribers[key];
            match &mut sub.waker {
                Some(w) => w.clone_from(waker),
                slot @ None => *slot = Some(waker.clone()),
            }
            return Ok(Taken::default());
        }
        let limits = self.limits;
        let overflowed = pos < first_seq
            || next_seq - pos > limits.events
            || st.bytes_between(pos, next_seq) > limits.bytes;
        let (from, to) = if !overflowed {
            (pos, next_seq)
        } else {
            match limits.policy {
                OverflowPolicy::Disconnect => return Err(TakeError::Overflowed),
                OverflowPolicy::DropOldest => {
                    let mut from = first_seq.max(next_seq.saturating_sub(limits.events));
                    while from + 1 < next_seq && st.bytes_between(from, next_seq) > limits.bytes {
                        from += 1;
                    }
                    (from, next_seq)
                }
                OverflowPolicy::DropNewest => {
                    let from = pos.max(first_seq);
                    let mut to = next_seq.min(from + limits.events);
                    while to > from + 1 && st.bytes_between(from, to) > limits.bytes {
                        to -= 1;
                    }
                    (from, to)
                }
            }
        };
        for seq in from..to {
            let frame = &st.frames[(seq - first_seq) as usize];
            out.push((frame.order, frame.bytes.clone()));
        }
        // After an overflow the subscriber resumes at the end of the log:
        // what it skipped is counted as dropped.
        st.subscribers[key].pos = next_seq;
        let delivered = to - from;
        Ok(Taken {
            delivered: delivered + held_count,
            dropped: next_seq - pos - delivered,
        })
    }
}
