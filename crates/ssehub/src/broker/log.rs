//! The channel log: the frames a channel's subscribers have not all taken
//! yet, and each subscriber's place in it.
//!
//! # Design
//!
//! A publish appends the encoded frame once and wakes the subscribers that
//! were waiting; it never touches a subscriber's own buffer, because a
//! subscriber *is* a place in this log. A connection, when its server
//! polls it, takes every frame from its place to the end in one go (a
//! reference-count bump per frame) and hands them to the server as a
//! single chunk. So a publish to N subscribers costs N wake-ups at most —
//! and none for a subscriber that is still busy writing — and the frames of
//! a burst reach each socket in one write.
//!
//! Every frame carries its broker-wide publish *position*. Publishes are
//! serialized by the broker, which raises a watermark after each append: all
//! frames below the watermark are in their logs. A connection in several
//! channels reads the watermark first and takes only frames below it, then
//! sorts what it gathered by position; so each connection receives its
//! frames in strictly rising position, and the id of the last event a
//! client saw says exactly what it has seen on *every* channel — which is
//! what makes resuming with one `Last-Event-ID` exact.
//!
//! A subscriber that falls more than the client buffer behind the end of
//! the log has overflowed; the log is never kept longer than that for it,
//! so a stalled client pins no memory. What happens to it then is the
//! broker's [`OverflowPolicy`], applied lazily when it is next polled: the
//! outcome is the same as if the policy had been applied at each publish,
//! since nothing else reads that subscriber's place meanwhile. Only
//! `DropNewest` acts at publish time, since it must remember which frames
//! the full subscriber keeps.
//!
//! The loom model at the bottom of this file checks the watermark: two
//! publishes on two channels racing a connection in both, which gets each
//! once and in rising position. Run it (with the outlet's) with
//!
//! ```text
//! RUSTFLAGS="--cfg ssehub_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p ssehub --lib --release loom
//! ```

use std::collections::VecDeque;
use std::task::Waker;

use bytes::Bytes;
use slab::Slab;

use super::outlet::{Claim, Outlet};
use super::policy::OverflowPolicy;
use super::transport::Framing;
use super::writer::{Outlets, Writers};
use crate::sync::{Arc, Mutex, MutexGuard};

/// A frame and its broker-wide publish position.
pub(crate) type Positioned = (u64, Bytes);

#[derive(Debug)]
struct Frame {
    position: u64,
    bytes: Bytes,
    /// Bytes appended to this log up to and including this frame, so the
    /// byte size of any stretch of the log is one subtraction.
    end: u64,
}

#[derive(Debug)]
struct Subscriber<C> {
    /// What the broker knows the subscriber by (a weak handle on its
    /// client): the log only hands it back.
    client: C,
    /// The client's socket outlet: a parked one gets frames from the
    /// broker's writer instead of a wake-up (see `outlet.rs`).
    outlet: Arc<Outlet>,
    /// Sequence number (index in this log, not position) of the next frame
    /// this subscriber takes.
    pos: u64,
    /// Set while the subscriber's connection waits for a frame.
    waker: Option<Waker>,
    /// Replayed history, delivered before anything from the log.
    replay: Vec<Positioned>,
    /// Under [`OverflowPolicy::DropNewest`], the frames a full subscriber
    /// keeps; while set, every newer frame skips it.
    held: Option<Vec<Positioned>>,
    /// A client resuming from a journal: frames wait in the log, neither
    /// claimed nor taken, until its replay is done (`release`).
    paused: bool,
}

#[derive(Debug)]
struct State<C> {
    frames: VecDeque<Frame>,
    /// Sequence number of `frames[0]`.
    first_seq: u64,
    /// Sequence number of the next frame appended.
    next_seq: u64,
    /// Bytes appended before `frames[0]`.
    start: u64,
    /// Bytes appended in all.
    end: u64,
    /// Position of the last frame appended (0: none yet).
    last_position: u64,
    subscribers: Slab<Subscriber<C>>,
    deleted: bool,
}

impl<C> State<C> {
    /// Bytes appended before frame `seq`; `first_seq <= seq <= next_seq`.
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

    fn frame(&self, seq: u64) -> &Frame {
        &self.frames[(seq - self.first_seq) as usize]
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
    /// Frames at or above the watermark were left for the next poll.
    pub(crate) deferred: bool,
}

/// What an append did besides appending.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    /// Subscribers that had to skip the frame (full, under `DropNewest`).
    pub(crate) skipped: u64,
    /// Subscribers whose parked connection gets the frame from the writer.
    pub(crate) claimed: u64,
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

/// A channel's log; `C` is how the broker knows a subscriber (a weak
/// handle on its client), which the log only stores and hands back.
#[derive(Debug)]
pub(crate) struct Log<C> {
    state: Mutex<State<C>>,
    limits: Limits,
}

thread_local! {
    /// Wakers collected under the lock and woken after it is released;
    /// reused so a publish to many subscribers does not allocate.
    static WAKE_LIST: std::cell::RefCell<Vec<Waker>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<C: Clone> Log<C> {
    /// A log for a channel created when every frame below `watermark` had
    /// been published: none of those can be delivered live from this log.
    pub(crate) fn new(limits: Limits, watermark: u64) -> Self {
        Self {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                first_seq: 0,
                next_seq: 0,
                start: 0,
                end: 0,
                last_position: watermark.saturating_sub(1),
                subscribers: Slab::new(),
                deleted: false,
            }),
            limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        crate::sync::lock(&self.state)
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.lock().deleted
    }

    /// Appends the frame published at `position` and wakes the subscribers
    /// waiting for one — or hands it to `writers` for those whose
    /// connection is parked. The broker
    /// calls this in rising position order, under its publishing lock.
    pub(crate) fn append(
        &self,
        position: u64,
        bytes: Bytes,
        writers: &Writers,
    ) -> Result<Appended, Deleted> {
        let now_ms = writers.now_ms();
        let mut claimed = 0;
        let mut to_visit = Outlets::new();
        // Framed on the first claim, once for every outlet lent by the same
        // edge (in practice: once).
        let mut framed: Option<(&'static Framing, Bytes)> = None;
        let skipped = WAKE_LIST.with(|list| {
            // A re-entrant append (from a waker) falls back to a fresh list.
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
                st.frames.push_back(Frame {
                    position,
                    bytes: bytes.clone(),
                    end,
                });
                let seq = st.next_seq;
                st.next_seq += 1;
                st.last_position = position;
                let mut keep_from = st.next_seq;
                for (_, sub) in &mut st.subscribers {
                    // Caught up with nothing held back: this frame is the
                    // next thing its connection writes.
                    let caught_up = sub.pos == seq
                        && sub.replay.is_empty()
                        && sub.held.is_none()
                        && !sub.paused;
                    if caught_up {
                        let frame = |framing: &'static Framing| match &framed {
                            Some((f, b)) if f.same(framing) => b.clone(),
                            _ => framed.insert((framing, (framing.frame)(&bytes))).1.clone(),
                        };
                        let writer = writers.of(&sub.outlet);
                        match sub.outlet.try_claim(position, now_ms, writer, frame) {
                            Claim::Claimed { schedule } => {
                                sub.pos = seq + 1;
                                claimed += 1;
                                if schedule {
                                    to_visit.push(sub.outlet.clone());
                                }
                                continue;
                            }
                            Claim::AlreadyClaimed => {
                                sub.pos = seq + 1;
                                continue;
                            }
                            Claim::No => {}
                        }
                    }
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
        })?;
        if !to_visit.is_empty() {
            writers.submit(to_visit);
        }
        Ok(Appended { skipped, claimed })
    }

    /// `DropNewest`, applied before a frame of `len` bytes is appended: a
    /// subscriber it would overflow keeps what it has (copied out of the log
    /// as reference-counted frames, so the log can still be trimmed) and
    /// skips this frame and every later one until its connection takes them.
    fn hold_full_subscribers(&self, st: &mut State<C>, len: u64) -> u64 {
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
                        let frame = st.frame(seq);
                        (frame.position, frame.bytes.clone())
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
    fn trim(&self, st: &mut State<C>, keep_from: u64) {
        let keep_from = keep_from.max(st.next_seq.saturating_sub(self.limits.events));
        while st.first_seq < keep_from {
            st.pop_front();
        }
        while st.frames.len() > 1 && st.end - st.start > self.limits.bytes {
            st.pop_front();
        }
    }

    /// Registers a subscriber at the end of the log and returns its key.
    ///
    /// `replay` is called with the position of the last frame that will not
    /// reach the subscriber live; what it returns (history up to that
    /// position) is delivered first. It runs under this log's lock, so no
    /// frame can be appended between the two — which is what makes a resume
    /// free of gaps and duplicates while publishers keep publishing.
    ///
    /// `replay` also says whether the subscriber starts paused: see
    /// [`release`](Self::release).
    pub(crate) fn subscribe(
        &self,
        client: C,
        outlet: Arc<Outlet>,
        replay: impl FnOnce(u64) -> (Vec<Positioned>, bool),
    ) -> Result<usize, Deleted> {
        let mut st = self.lock();
        if st.deleted {
            return Err(Deleted);
        }
        let pos = st.next_seq;
        let (replay, paused) = replay(st.last_position);
        Ok(st.subscribers.insert(Subscriber {
            client,
            outlet,
            pos,
            waker: None,
            replay,
            held: None,
            paused,
        }))
    }

    /// Ends a subscriber's pause. With `skip`, every frame in the log now is
    /// skipped: the caller delivered them (or their records) otherwise. The
    /// broker calls this under its publishing lock, so "now" is exact.
    pub(crate) fn release(&self, key: usize, skip: bool) {
        let mut st = self.lock();
        let next_seq = st.next_seq;
        if let Some(sub) = st.subscribers.get_mut(key) {
            sub.paused = false;
            if skip {
                sub.pos = next_seq;
                sub.held = None;
            }
        }
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
    pub(crate) fn clients(&self) -> Vec<C> {
        self.lock()
            .subscribers
            .iter()
            .map(|(_, s)| s.client.clone())
            .collect()
    }

    /// Marks the log deleted and returns its subscribers' clients.
    pub(crate) fn delete(&self) -> Vec<C> {
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

    /// Appends to `out` the frames subscriber `key` has not taken and whose
    /// position is below `watermark`, applying the overflow policy; or parks
    /// `waker` until the next append.
    pub(crate) fn take(
        &self,
        key: usize,
        waker: &Waker,
        watermark: u64,
        out: &mut Vec<Positioned>,
    ) -> Result<Taken, TakeError> {
        let mut st = self.lock();
        if st.deleted {
            return Err(TakeError::Deleted);
        }
        let (first_seq, next_seq) = (st.first_seq, st.next_seq);
        let Some(sub) = st.subscribers.get_mut(key) else {
            return Err(TakeError::Deleted);
        };
        if sub.paused {
            // `release` wakes the connection.
            return Ok(Taken::default());
        }
        let mut earlier = std::mem::take(&mut sub.replay);
        earlier.extend(sub.held.take().unwrap_or_default());
        let earlier_count = earlier.len() as u64;
        out.extend(earlier);
        let pos = sub.pos;
        if pos >= next_seq {
            if earlier_count == 0 {
                match &mut sub.waker {
                    Some(w) => w.clone_from(waker),
                    slot @ None => *slot = Some(waker.clone()),
                }
            }
            return Ok(Taken {
                delivered: earlier_count,
                ..Taken::default()
            });
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
                    let mut from = pos
                        .max(first_seq)
                        .max(next_seq.saturating_sub(limits.events));
                    while from + 1 < next_seq && st.bytes_between(from, next_seq) > limits.bytes {
                        from += 1;
                    }
                    (from, next_seq)
                }
                // `DropNewest` acts at append time; what remains is frames
                // the byte bound trimmed: deliver what the log still has.
                OverflowPolicy::DropNewest => (pos.max(first_seq), next_seq),
            }
        };
        // Frames at or above the watermark may have a lower-positioned
        // frame still being appended to another channel: leave them.
        let mut to_taken = from;
        while to_taken < to && st.frame(to_taken).position < watermark {
            let frame = st.frame(to_taken);
            out.push((frame.position, frame.bytes.clone()));
            to_taken += 1;
        }
        let deferred = to_taken < to;
        // The subscriber resumes where it stopped taking, or — when frames
        // were skipped by the policy — past them: those count as dropped.
        let resume = if deferred { to_taken } else { next_seq };
        st.subscribers[key].pos = resume;
        let delivered = to_taken - from;
        Ok(Taken {
            delivered: delivered + earlier_count,
            dropped: (from - pos) + if deferred { 0 } else { next_seq - to },
            deferred,
        })
    }
}

#[cfg(all(test, not(ssehub_loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;
    use crate::broker::outlet::Clock;

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

    /// The writers appends hand claimed frames to, and a log under these
    /// limits.
    fn log(events: u64, bytes: u64, policy: OverflowPolicy) -> (Writers, Log<&'static str>) {
        let limits = Limits {
            events,
            bytes,
            policy,
        };
        (Writers::new(None, 5), Log::new(limits, 1))
    }

    /// A log no test fills.
    fn roomy() -> (Writers, Log<&'static str>) {
        log(16, 1 << 20, OverflowPolicy::Disconnect)
    }

    fn outlet() -> Arc<Outlet> {
        Arc::new(Outlet::new(0, Clock::new()))
    }

    fn subscribe(log: &Log<&'static str>, name: &'static str) -> usize {
        log.subscribe(name, outlet(), |_| (Vec::new(), false))
            .expect("a live log")
    }

    fn frame(position: u64) -> Bytes {
        Bytes::from(format!("data: {position}\n\n"))
    }

    /// Appends the frame of each position; how many subscribers skipped
    /// them (full, under `DropNewest`).
    fn append(
        log: &Log<&'static str>,
        writers: &Writers,
        positions: impl IntoIterator<Item = u64>,
    ) -> u64 {
        positions
            .into_iter()
            .map(|p| log.append(p, frame(p), writers).expect("appended").skipped)
            .sum()
    }

    /// What `key` takes below `watermark` (positions, and the take's
    /// report), or why it can take nothing.
    fn try_take(
        log: &Log<&'static str>,
        key: usize,
        watermark: u64,
    ) -> Result<(Vec<u64>, Taken), TakeError> {
        let task = Arc::new(Task::default());
        let mut out = Vec::new();
        let taken = log.take(key, &Waker::from(task), watermark, &mut out)?;
        Ok((out.into_iter().map(|(p, _)| p).collect(), taken))
    }

    fn take(log: &Log<&'static str>, key: usize, watermark: u64) -> (Vec<u64>, Taken) {
        try_take(log, key, watermark).expect("taken")
    }

    #[test]
    fn an_append_wakes_a_waiting_subscriber_once() {
        let (writers, log) = roomy();
        let key = subscribe(&log, "a");
        let task = Arc::new(Task::default());
        let mut out = Vec::new();
        let taken = log.take(key, &Waker::from(task.clone()), 10, &mut out);
        assert_eq!(taken, Ok(Taken::default()));
        append(&log, &writers, 1..=2);
        assert_eq!(task.wakes(), 1, "the waker is taken by the first append");
        log.take(key, &Waker::from(task.clone()), 10, &mut out)
            .expect("taken");
        assert_eq!(out, [(1, frame(1)), (2, frame(2))]);
    }

    #[test]
    fn frames_at_or_above_the_watermark_wait_for_the_next_take() {
        let (writers, log) = roomy();
        let key = subscribe(&log, "a");
        append(&log, &writers, 1..=3);
        let (taken, report) = take(&log, key, 3);
        assert_eq!(taken, [1, 2]);
        assert!(report.deferred);
        assert_eq!(report.delivered, 2);
        let (taken, report) = take(&log, key, 4);
        assert_eq!(taken, [3]);
        assert!(!report.deferred);
    }

    #[test]
    fn replay_comes_first_and_meets_the_log_exactly() {
        let (writers, log) = roomy();
        append(&log, &writers, [1]);
        let mut seen_last = None;
        let key = log
            .subscribe("a", outlet(), |last| {
                seen_last = Some(last);
                (vec![(1, frame(1))], false)
            })
            .expect("a live log");
        assert_eq!(seen_last, Some(1), "history up to the last append");
        append(&log, &writers, [2]);
        assert_eq!(take(&log, key, 10).0, [1, 2]);
    }

    #[test]
    fn a_paused_subscriber_gets_nothing_until_released() {
        let (writers, log) = roomy();
        let key = log
            .subscribe("a", outlet(), |_| (Vec::new(), true))
            .expect("a live log");
        append(&log, &writers, [1]);
        assert_eq!(take(&log, key, 10).0, Vec::<u64>::new());
        append(&log, &writers, [2]);
        // Released skipping what its replay already delivered.
        log.release(key, true);
        append(&log, &writers, [3]);
        assert_eq!(take(&log, key, 10).0, [3]);
    }

    #[test]
    fn the_log_keeps_only_what_someone_still_needs() {
        let (writers, log) = roomy();
        let fast = subscribe(&log, "fast");
        let slow = subscribe(&log, "slow");
        append(&log, &writers, 1..=4);
        assert_eq!(take(&log, fast, 10).0, [1, 2, 3, 4]);
        assert_eq!(log.lock().frames.len(), 4, "slow still needs them");
        assert_eq!(take(&log, slow, 10).0, [1, 2, 3, 4]);
        append(&log, &writers, [5]);
        assert_eq!(log.lock().frames.len(), 1, "trimmed at the next append");
        assert_eq!(log.len(), 2);
        assert_eq!(log.unsubscribe(slow), 1);
    }

    #[test]
    fn an_overflowed_subscriber_is_disconnected_by_default() {
        let (writers, log) = log(3, 1 << 20, OverflowPolicy::Disconnect);
        let key = subscribe(&log, "a");
        append(&log, &writers, 1..=4);
        assert_eq!(try_take(&log, key, 10), Err(TakeError::Overflowed));
        // The log never held more than the bound for it.
        assert_eq!(log.lock().frames.len(), 3);
    }

    #[test]
    fn drop_oldest_keeps_the_newest_frames_and_counts_the_rest() {
        let (writers, log) = log(3, 1 << 20, OverflowPolicy::DropOldest);
        let key = subscribe(&log, "a");
        append(&log, &writers, 1..=5);
        let (taken, report) = take(&log, key, 10);
        assert_eq!(taken, [3, 4, 5]);
        assert_eq!(report.dropped, 2);
    }

    #[test]
    fn drop_newest_keeps_what_the_full_subscriber_had() {
        let (writers, log) = log(2, 1 << 20, OverflowPolicy::DropNewest);
        let key = subscribe(&log, "a");
        assert_eq!(append(&log, &writers, 1..=4), 2, "two skipped");
        assert_eq!(take(&log, key, 10).0, [1, 2]);
        // Taken: it is no longer full, and gets what comes next.
        append(&log, &writers, [5]);
        assert_eq!(take(&log, key, 10).0, [5]);
    }

    #[test]
    fn the_byte_bound_overflows_too() {
        let one = frame(1).len() as u64;
        let (writers, log) = log(100, 2 * one, OverflowPolicy::Disconnect);
        let key = subscribe(&log, "a");
        append(&log, &writers, 1..=3);
        assert_eq!(try_take(&log, key, 10), Err(TakeError::Overflowed));
    }

    #[test]
    fn a_deleted_log_refuses_everything_and_hands_back_its_subscribers() {
        let (writers, log) = roomy();
        let key = subscribe(&log, "a");
        subscribe(&log, "b");
        assert!(!log.delete_if_unused());
        let mut clients = log.delete();
        clients.sort_unstable();
        assert_eq!(clients, ["a", "b"]);
        assert!(log.is_deleted());
        assert_eq!(log.append(1, frame(1), &writers), Err(Deleted));
        assert_eq!(try_take(&log, key, 10), Err(TakeError::Deleted));
        assert!(
            log.subscribe("c", outlet(), |_| (Vec::new(), false))
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_parked_lent_subscriber_is_claimed_and_skips_the_frame() {
        use crate::broker::loan::SocketLoan;
        use crate::broker::transport::testing::Recorder;

        let (writers, log) = roomy();
        let loan = SocketLoan::for_client(&writers, 0);
        let key = log
            .subscribe("a", loan.outlet().clone(), |_| (Vec::new(), false))
            .expect("a live log");
        let transport = Arc::new(Recorder::default());
        let lent = loan.lend(transport.clone()).expect("a runtime");
        let task = Arc::new(Task::default());
        lent.arm(&Waker::from(task.clone()));
        // The connection's poll: nothing in the log, so it parks.
        let mut out = Vec::new();
        log.take(key, lent.waker(), 10, &mut out).expect("taken");
        assert!(out.is_empty());
        assert!(lent.park());
        // Past the burst window of the clock's start ("never written" counts
        // as written at 0).
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let appended = log.append(1, frame(1), &writers).expect("appended");
        assert_eq!(appended.claimed, 1);
        assert_eq!(task.wakes(), 0, "claimed, not woken");
        for _ in 0..200 {
            if !transport.text().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(transport.text(), "[data: 1\n\n]");
        // The subscriber's place moved past it: never taken a second time.
        assert_eq!(take(&log, key, 10).0, Vec::<u64>::new());
        assert_eq!(log.lock().frames.len(), 0, "nobody needs it any more");
    }
}

/// A loom model of the log and the watermark (see `crate::sync` for how to
/// run it): publishes on two channels racing a connection that takes from
/// both.
#[cfg(all(test, ssehub_loom))]
mod loom_model {
    use std::task::Wake;

    use loom::sync::Notify;
    use loom::thread;

    use super::*;
    use crate::sync::atomic::{AtomicU64, Ordering};
    use crate::sync::lock;

    struct Task(Notify);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.notify();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.notify();
        }
    }

    /// The broker's side of a publish (`BrokerInner::publish`): a position
    /// under the publishing lock, the frame appended to each channel, then
    /// the watermark raised past it.
    struct Broker {
        publishing: Mutex<u64>,
        watermark: AtomicU64,
        writers: Writers,
    }

    impl Broker {
        fn publish(&self, logs: &[&Log<()>]) {
            let mut next = lock(&self.publishing);
            let position = *next;
            for log in logs {
                let frame = Bytes::from(position.to_string());
                log.append(position, frame, &self.writers)
                    .expect("a live log");
            }
            *next = position + 1;
            self.watermark.store(position + 1, Ordering::Release);
        }
    }

    /// Two publishes — one on `a`, one on both `b` and `a` — from two
    /// threads, while the connection of a client in both channels polls
    /// them as `ClientInner::poll_feed` does (watermark first, then each
    /// log, then sort and one copy per position): it gets each publish
    /// exactly once and in rising position, whatever the interleaving.
    #[test]
    fn loom_a_connection_in_two_channels_gets_every_publish_once_in_order() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound.get_or_insert(3);
        builder.check(|| {
            let limits = Limits {
                events: 16,
                bytes: 1 << 20,
                policy: OverflowPolicy::Disconnect,
            };
            let a = Arc::new(Log::new(limits, 1));
            let b = Arc::new(Log::new(limits, 1));
            let broker = Arc::new(Broker {
                publishing: Mutex::new(1),
                watermark: AtomicU64::new(1),
                writers: Writers::new(None, 5),
            });
            // Its socket is never lent: the outlet never claims.
            let outlet = Arc::new(Outlet::new(0, broker.writers.clock()));
            let in_a = a.subscribe((), outlet.clone(), |_| (Vec::new(), false));
            let in_b = b.subscribe((), outlet, |_| (Vec::new(), false));
            let (in_a, in_b) = (in_a.expect("subscribed"), in_b.expect("subscribed"));

            let first = {
                let (broker, a) = (broker.clone(), a.clone());
                thread::spawn(move || broker.publish(&[&a]))
            };
            let second = {
                let (broker, a, b) = (broker.clone(), a.clone(), b.clone());
                thread::spawn(move || broker.publish(&[&b, &a]))
            };

            let task = Arc::new(Task(Notify::new()));
            let waker = Waker::from(task.clone());
            let mut received = Vec::new();
            while received.len() < 2 {
                let watermark = broker.watermark.load(Ordering::Acquire);
                let mut gathered = Vec::new();
                let mut deferred = false;
                let mut sources = 0;
                for (log, key) in [(&a, in_a), (&b, in_b)] {
                    let taken = log
                        .take(key, &waker, watermark, &mut gathered)
                        .expect("not overflowed");
                    deferred |= taken.deferred;
                    sources += usize::from(taken.delivered > 0);
                }
                if sources > 1 {
                    gathered.sort_by_key(|(position, _)| *position);
                    gathered.dedup_by_key(|(position, _)| *position);
                }
                let got = !gathered.is_empty();
                received.extend(gathered.into_iter().map(|(position, _)| position));
                if deferred {
                    // Above the watermark: a publish is still appending.
                    thread::yield_now();
                } else if !got && received.len() < 2 {
                    task.0.wait();
                }
            }
            first.join().expect("first publisher");
            second.join().expect("second publisher");
            assert_eq!(received, [1, 2], "once each, in rising position");
        });
    }
}
