//! What a node remembers of the log it follows: the latest updates it
//! delivered (a short window, to bridge a replay read from the log to live
//! delivery without a gap or a duplicate) and where each publisher-chosen
//! id sits in the log (so a `Last-Event-ID` that is a publisher's id can be
//! resumed from).
//!
//! The log itself is the history; this is a cache of its newest part,
//! filled in log order by the node's follower. It keeps the log's records
//! rather than the updates decoded from them: a bridge decodes the few it
//! needs again, where keeping every decoded update would free each
//! (several allocations, long out of the cache) as it leaves the window,
//! on every publish. With the log in memory a record is the log's own,
//! shared.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use ssehub::journal::{JournalId, Record};

use crate::update::Update;

/// The newest updates a node delivered, and the positions of publisher ids.
#[derive(Debug)]
pub(crate) struct Recent {
    window: VecDeque<Record>,
    capacity: usize,
    /// Publisher ids to their positions, oldest first: a reused id resumes
    /// after its earliest update, as the protocol asks.
    ids: HashMap<Arc<str>, VecDeque<JournalId>>,
    /// The same entries in log order, to forget the oldest first.
    id_order: VecDeque<(Arc<str>, JournalId)>,
    id_capacity: usize,
    /// The latest update delivered: its position and wire id.
    head: Option<(JournalId, Arc<str>)>,
}

impl Recent {
    /// Keeps `capacity` updates and the positions of `id_capacity`
    /// publisher ids.
    pub fn new(capacity: usize, id_capacity: usize) -> Self {
        Self {
            window: VecDeque::with_capacity(capacity.min(1024)),
            capacity: capacity.max(1),
            ids: HashMap::new(),
            id_order: VecDeque::new(),
            id_capacity,
            head: None,
        }
    }

    /// Notes the next update of the log, `update` decoded from `record`.
    /// An update of another epoch than the head's starts over: positions
    /// of different epochs do not order.
    pub fn push(&mut self, record: Record, update: &Update) {
        if self
            .head
            .as_ref()
            .is_some_and(|(head, _)| head.epoch != update.position.epoch)
        {
            self.reset();
        }
        self.head = Some((update.position, update.id.clone()));
        if update.caller_id && self.id_capacity > 0 {
            self.remember(update.id.clone(), update.position);
        }
        if self.window.len() == self.capacity {
            self.window.pop_front();
        }
        self.window.push_back(record);
    }

    /// Indexes a publisher id without keeping its update (a node filling
    /// its index from the log at start).
    pub fn remember(&mut self, id: Arc<str>, position: JournalId) {
        if self.id_order.len() == self.id_capacity
            && let Some((old, old_position)) = self.id_order.pop_front()
            && let Some(positions) = self.ids.get_mut(&old)
        {
            if positions.front() == Some(&old_position) {
                positions.pop_front();
            }
            if positions.is_empty() {
                self.ids.remove(&old);
            }
        }
        self.ids.entry(id.clone()).or_default().push_back(position);
        self.id_order.push_back((id, position));
    }

    /// Sets the head without an update (after filling the index).
    pub fn set_head(&mut self, position: JournalId, id: Arc<str>) {
        self.head = Some((position, id));
    }

    /// Forgets everything: the log was lost and a new one began.
    pub fn reset(&mut self) {
        self.window.clear();
        self.ids.clear();
        self.id_order.clear();
        self.head = None;
    }

    /// The position of the latest update delivered.
    pub fn head(&self) -> Option<JournalId> {
        self.head.as_ref().map(|(position, _)| *position)
    }

    /// The wire id of the latest update delivered.
    pub fn head_id(&self) -> Option<&Arc<str>> {
        self.head.as_ref().map(|(_, id)| id)
    }

    /// The earliest position of publisher id `id` this node knows.
    pub fn lookup(&self, id: &str) -> Option<JournalId> {
        self.ids.get(id).and_then(|p| p.front().copied())
    }

    /// The records of the updates after `position`, when this node has all
    /// of them: it is the head, or in the window.
    pub fn after(&self, position: JournalId) -> Option<impl Iterator<Item = &Record>> {
        if self.head() == Some(position) {
            return Some(self.window.range(self.window.len()..));
        }
        let index = self
            .window
            .binary_search_by(|r| {
                if r.id.epoch == position.epoch {
                    r.id.cmp(&position)
                } else {
                    std::cmp::Ordering::Greater
                }
            })
            .ok()?;
        Some(self.window.range(index + 1..))
    }

    /// Whether `position` is one this node has not delivered yet in its
    /// epoch (its follower is behind the reader that saw it).
    pub fn is_ahead(&self, position: JournalId) -> bool {
        match self.head() {
            None => true,
            Some(head) => head.epoch != position.epoch || head < position,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ssehub::journal::Offset;

    fn position(epoch: u32, seq: u64) -> JournalId {
        JournalId {
            epoch,
            offset: Offset::Seq(seq),
        }
    }

    /// Pushes the update at `seq` (the record's body is not read).
    fn push(recent: &mut Recent, epoch: u32, seq: u64, caller: Option<&str>) {
        let update = Update {
            position: position(epoch, seq),
            id: caller.map_or_else(|| format!("#{seq}").into(), Into::into),
            caller_id: caller.is_some(),
            topics: Arc::from(vec![Arc::<str>::from("t")]),
            private: false,
            frame: Bytes::new(),
            published_us: 0,
        };
        let record = Record {
            id: update.position,
            body: Bytes::new(),
        };
        recent.push(record, &update);
    }

    fn seqs<'a>(records: impl Iterator<Item = &'a Record>) -> Vec<u64> {
        records
            .map(|r| match r.id.offset {
                Offset::Seq(seq) => seq,
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn the_window_bridges_positions_it_holds_and_the_head() {
        let mut recent = Recent::new(3, 10);
        for seq in 1..=5 {
            push(&mut recent, 1, seq, None);
        }
        assert_eq!(seqs(recent.after(position(1, 3)).unwrap()), [4, 5]);
        assert_eq!(
            seqs(recent.after(position(1, 5)).unwrap()),
            Vec::<u64>::new()
        );
        // 2 left the window: the log must be read.
        assert!(recent.after(position(1, 2)).is_none());
        assert!(recent.after(position(2, 4)).is_none());
        assert!(recent.is_ahead(position(1, 6)));
        assert!(!recent.is_ahead(position(1, 5)));
        assert!(recent.is_ahead(position(2, 1)));
    }

    #[test]
    fn a_reused_publisher_id_resolves_to_its_earliest_known_position() {
        let mut recent = Recent::new(10, 2);
        push(&mut recent, 1, 1, Some("a"));
        push(&mut recent, 1, 2, Some("a"));
        assert_eq!(recent.lookup("a"), Some(position(1, 1)));
        push(&mut recent, 1, 3, Some("b"));
        // The index holds two entries: the first "a" is forgotten.
        assert_eq!(recent.lookup("a"), Some(position(1, 2)));
        push(&mut recent, 1, 4, Some("c"));
        assert_eq!(recent.lookup("a"), None);
        assert_eq!(recent.head_id().map(|id| &**id), Some("c"));
    }

    #[test]
    fn a_new_epoch_starts_over() {
        let mut recent = Recent::new(10, 10);
        push(&mut recent, 1, 1, Some("a"));
        push(&mut recent, 2, 1, None);
        assert_eq!(recent.lookup("a"), None);
        assert_eq!(recent.head(), Some(position(2, 1)));
        assert!(recent.after(position(1, 1)).is_none());
    }
}
