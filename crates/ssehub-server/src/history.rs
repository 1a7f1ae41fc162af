//! The hub's update log: every update, in publish order, kept within
//! bounds (events, bytes, age) for subscribers that reconnect.
//!
//! The broker underneath keeps no history of its own: a hub subscriber's
//! replay depends on its matchers and its token, not on a channel, so the
//! hub filters this one log per request. Sequence numbers are contiguous,
//! so finding a position is arithmetic, not a search.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

/// One published update.
#[derive(Debug, Clone)]
pub(crate) struct Update {
    /// Hub-wide sequence number (contiguous).
    pub seq: u64,
    /// The SSE id on the wire.
    pub id: Arc<str>,
    /// Its topics (one, or several in compatibility mode).
    pub topics: Arc<[Arc<str>]>,
    /// Marked private.
    pub private: bool,
    /// The encoded frame shared with live delivery.
    pub frame: Bytes,
    /// When it was published.
    pub at: Instant,
}

/// Where a `Last-Event-ID` points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resume {
    /// After this sequence number.
    After(u64),
    /// Everything retained (`earliest`).
    Earliest,
    /// Unknown or no longer retained.
    Unknown,
}

/// Bounds of the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub events: usize,
    pub bytes: usize,
    pub age: Duration,
}

#[derive(Debug)]
pub(crate) struct History {
    entries: VecDeque<Update>,
    bytes: usize,
    /// Caller-chosen ids to the retained updates that carried them, oldest
    /// first: a reused id resumes after its earliest update, as the
    /// protocol asks, so nothing published after it is skipped.
    by_id: HashMap<Arc<str>, VecDeque<u64>>,
    bounds: Bounds,
    epoch: u32,
}

/// The `#EEEEEEEE-S` id of update `seq` in a hub with `epoch`: a relative
/// IRI made of a fragment, which publishers may not use (their ids cannot
/// start with `#`), and free of the bytes that would make a cross-origin
/// `Last-Event-ID` need a CORS preflight.
pub(crate) fn format_id(epoch: u32, seq: u64) -> String {
    let mut id = String::with_capacity(30);
    let _ = write!(id, "#{epoch:08x}-{seq}");
    id
}

/// The sequence number a hub-generated id names, if it is this epoch's.
pub(crate) fn parse_id(epoch: u32, id: &str) -> Option<u64> {
    let (e, s) = id.strip_prefix('#')?.split_once('-')?;
    if e.len() != 8 || s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    (u32::from_str_radix(e, 16).ok()? == epoch)
        .then(|| s.parse().ok())
        .flatten()
}

impl History {
    pub fn new(bounds: Bounds, epoch: u32) -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
            by_id: HashMap::new(),
            bounds,
            epoch,
        }
    }

    pub fn push(&mut self, update: Update, caller_id: bool) {
        if self.bounds.events == 0 {
            return;
        }
        if caller_id {
            self.by_id
                .entry(update.id.clone())
                .or_default()
                .push_back(update.seq);
        }
        self.bytes += update.frame.len();
        self.entries.push_back(update);
        self.evict(Instant::now());
    }

    /// Drops what exceeds the bounds, oldest first.
    pub fn evict(&mut self, now: Instant) {
        while let Some(front) = self.entries.front() {
            let over = self.entries.len() > self.bounds.events
                || self.bytes > self.bounds.bytes
                || now.saturating_duration_since(front.at) > self.bounds.age;
            if !over {
                break;
            }
            let old = self.entries.pop_front().expect("front exists");
            self.bytes -= old.frame.len();
            if let Some(seqs) = self.by_id.get_mut(&old.id)
                && seqs.front() == Some(&old.seq)
            {
                seqs.pop_front();
                if seqs.is_empty() {
                    self.by_id.remove(&old.id);
                }
            }
        }
    }

    /// Where a reconnecting subscriber resumes. An id is known while the
    /// update it names is retained — or while it is the newest update's
    /// predecessor, so a subscriber that missed nothing is never told it
    /// did.
    pub fn resume(&self, last_event_id: &str, next_seq: u64) -> Resume {
        if last_event_id == ssehub::broker::EARLIEST {
            return Resume::Earliest;
        }
        let seq = parse_id(self.epoch, last_event_id).or_else(|| {
            self.by_id
                .get(last_event_id)
                .and_then(|seqs| seqs.front().copied())
        });
        match seq {
            Some(seq) if seq < next_seq && self.retained_from(seq, next_seq) => Resume::After(seq),
            _ => Resume::Unknown,
        }
    }

    /// Whether every update after `seq` is still here.
    fn retained_from(&self, seq: u64, next_seq: u64) -> bool {
        match self.entries.front() {
            Some(front) => seq + 1 >= front.seq,
            // Nothing retained: only the very last update's id resumes
            // without loss.
            None => seq + 1 == next_seq,
        }
    }

    /// The updates after `after` (all retained for `None`), oldest first.
    pub fn since(&self, after: Option<u64>) -> impl DoubleEndedIterator<Item = &Update> {
        let skip = match (after, self.entries.front()) {
            (Some(seq), Some(front)) => usize::try_from((seq + 1).saturating_sub(front.seq))
                .unwrap_or(usize::MAX)
                .min(self.entries.len()),
            _ => 0,
        };
        self.entries.range(skip..)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(seq: u64, id: &str) -> Update {
        Update {
            seq,
            id: id.into(),
            topics: Arc::from(vec![Arc::<str>::from("t")]),
            private: false,
            frame: Bytes::from(vec![b'x'; 10]),
            at: Instant::now(),
        }
    }

    fn bounds(events: usize) -> Bounds {
        Bounds {
            events,
            bytes: usize::MAX,
            age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn generated_ids_round_trip_only_in_their_epoch() {
        let id = format_id(0xabc, 42);
        assert_eq!(id, "#00000abc-42");
        assert_eq!(parse_id(0xabc, &id), Some(42));
        assert_eq!(parse_id(0xabd, &id), None);
        assert_eq!(parse_id(0xabc, "00000abc-42"), None);
        assert_eq!(parse_id(0xabc, "#00000abc-"), None);
    }

    #[test]
    fn resume_points_follow_retention() {
        let mut h = History::new(bounds(3), 1);
        for seq in 1..=5 {
            h.push(update(seq, &format_id(1, seq)), false);
        }
        // 3, 4, 5 retained: resuming after 2 loses nothing, after 1 does.
        assert_eq!(h.resume(&format_id(1, 2), 6), Resume::After(2));
        assert_eq!(h.resume(&format_id(1, 1), 6), Resume::Unknown);
        assert_eq!(h.resume(&format_id(1, 9), 6), Resume::Unknown);
        assert_eq!(h.resume("earliest", 6), Resume::Earliest);
        let after: Vec<u64> = h.since(Some(3)).map(|u| u.seq).collect();
        assert_eq!(after, [4, 5]);
    }

    #[test]
    fn a_reused_caller_id_resolves_to_its_earliest_retained_update() {
        let mut h = History::new(bounds(3), 1);
        h.push(update(1, "a"), true);
        h.push(update(2, "b"), true);
        h.push(update(3, "a"), true);
        assert_eq!(h.resume("a", 4), Resume::After(1));
        h.push(update(4, "c"), true);
        // 1 is gone: the earliest "a" in the history is now 3.
        assert_eq!(h.resume("a", 5), Resume::After(3));
        h.push(update(5, "d"), true);
        h.push(update(6, "e"), true);
        assert_eq!(h.resume("a", 7), Resume::Unknown);
        assert_eq!(h.resume("e", 7), Resume::After(6));
    }

    #[test]
    fn bytes_and_age_bound_the_log() {
        let mut h = History::new(
            Bounds {
                events: 100,
                bytes: 25,
                age: Duration::from_secs(3600),
            },
            1,
        );
        for seq in 1..=4 {
            h.push(update(seq, &seq.to_string()), false);
        }
        assert_eq!(h.len(), 2);
        h.evict(Instant::now() + Duration::from_secs(7200));
        assert_eq!(h.len(), 0);
    }
}
