//! A broker on a [`Journal`]: publishing appends, the follower fans out, and
//! resuming reads the journal.
//!
//! # Publishing
//!
//! A publish becomes one record (`record.rs`). The acknowledged path awaits
//! [`Journal::append`]. The synchronous `broadcast*` path goes through the
//! [`Appender`], an ordered queue: when nothing is queued the append is
//! polled once in the caller — a [`MemoryJournal`](crate::journal::MemoryJournal)
//! stores it (and delivers it, inline) right there, with no runtime at all —
//! and only an append still in flight makes the queue busy and moves to a
//! task, which then takes every later record in order. So the records of
//! one thread's `broadcast` calls reach the journal in call order.
//!
//! # Following
//!
//! One [`Follower`] per broker receives every record, in the journal's
//! order, and under the broker's publishing lock gives each one the next
//! local *position* and appends its frame to the logs of the channels it
//! names that have subscribers here. From there on it is the broker without
//! a journal: positions, the watermark, the lent sockets. The follower also
//! keeps the last records in a [`Window`].
//!
//! # Resuming
//!
//! A reconnecting client's subscriptions made during its setup start
//! *paused*: frames wait in the channel logs, neither claimed by the writer
//! nor taken by the connection. Then, with `L` its `Last-Event-ID`:
//!
//! - `L` is in the window: what followed it is in the window too, and the
//!   logs hold exactly the window's records up to the follower's last one
//!   `F`. Under the publishing lock, the window's records after `L` on the
//!   client's channels are queued for it and its subscriptions skip what
//!   their logs hold. Exact, at once.
//! - Otherwise a task reads `journal.replay` pages after `L` up to the head
//!   `H` the last page saw, queuing the client's records. Then, under the
//!   publishing lock, with `F` the follower's last record: `F == H` — the
//!   logs hold records up to `H`, all replayed: skip them; `F > H` — the
//!   window has `(H, F]` (else read the journal again from `H`): queue
//!   those, skip the logs; `F < H` — wait for the follower. Live frames are
//!   always after `F`, so replay and live meet with no gap and no
//!   duplicate while publishers keep publishing.
//!
//! An id the journal does not know, or no longer holds, is a gap
//! ([`GapPolicy`](super::GapPolicy)). So is a follower that was told
//! [`FollowState::Gap`] or [`FollowState::Reset`]: connected clients get
//! the gap event in order through the broadcast channel, and a client
//! resuming meanwhile is told too.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, watch};

use super::channel::ChannelInner;
use super::client::{ClientInner, GapReason};
use super::policy::{GapReplay, JournalWindow};
use super::record;
use super::stats::Counters;
use super::{BrokerInner, GAP_EVENT};
use crate::error::BrokerError;
use crate::event::Event;
use crate::journal::{FollowState, Follower, Journal, JournalError, JournalId, Record, ReplayFrom};
use crate::sync::lock;

/// Records read per `journal.replay` page of a resume.
const PAGE: usize = 256;
/// Records the synchronous publish queue holds before refusing more.
const MAX_BACKLOG: usize = 10_000;
/// How long a publish waits for the follower's first contact with the
/// journal: records appended before it would not reach this broker's own
/// clients.
const FOLLOWER_START: Duration = Duration::from_secs(5);
/// Attempts at one replay page before a resume gives up.
const READ_ATTEMPTS: u32 = 3;
/// How long a resume waits between checks of a follower that is behind.
const FOLLOWER_POLL: Duration = Duration::from_millis(500);

/// A broker's journal side.
pub(crate) struct Replica {
    pub(crate) journal: Arc<dyn Journal>,
    /// The recent records. Taken only under the broker's publishing lock.
    pub(crate) window: Mutex<Window>,
    pub(crate) appender: Arc<Appender>,
    /// Notified after every batch the follower delivered.
    pub(crate) followed: Notify,
    /// Whether the follower has been up (it reached the journal) once.
    up: watch::Sender<bool>,
    /// Bumped on every follower gap and reset.
    pub(crate) losses: AtomicU64,
}

impl Replica {
    pub(crate) fn new(
        journal: Arc<dyn Journal>,
        window: JournalWindow,
        counters: Arc<Counters>,
    ) -> Self {
        let (up, _) = watch::channel(false);
        Self {
            appender: Arc::new(Appender {
                journal: journal.clone(),
                counters,
                up: up.subscribe(),
                queue: Mutex::new(Queue::default()),
            }),
            journal,
            window: Mutex::new(Window::new(window)),
            followed: Notify::new(),
            up,
            losses: AtomicU64::new(0),
        }
    }

    /// Returns once the follower reached the journal: at once when it did,
    /// else after asking the journal whether it is ready (so an
    /// unreachable one fails fast) and waiting for the follower.
    pub(crate) async fn await_follower(&self) -> Result<(), JournalError> {
        if *self.up.borrow() {
            return Ok(());
        }
        self.journal.ready().await?;
        if self.follower_started(FOLLOWER_START).await {
            Ok(())
        } else {
            Err(JournalError::unavailable(
                "the broker's journal follower has not reached the journal",
            ))
        }
    }

    /// Waits (at most `patience`) for the follower's first contact.
    pub(crate) async fn follower_started(&self, patience: Duration) -> bool {
        let mut up = self.up.subscribe();
        let started = up.wait_for(|up| *up);
        matches!(tokio::time::timeout(patience, started).await, Ok(Ok(_)))
    }
}

/// The last records the follower delivered, so a resume after one of them
/// needs no journal read, and one that read the journal meets the live
/// stream here.
#[derive(Debug)]
pub(crate) struct Window {
    records: VecDeque<Record>,
    bytes: usize,
    bounds: JournalWindow,
    /// Every record the follower delivered after this one is in `records`
    /// (`None`: unknown, as when following started "after the latest").
    base: Option<JournalId>,
    /// The last record delivered (in the current epoch).
    last: Option<JournalId>,
    /// The journal's current epoch, once known.
    epoch: Option<u32>,
}

impl Window {
    fn new(bounds: JournalWindow) -> Self {
        Self {
            records: VecDeque::new(),
            bytes: 0,
            bounds,
            base: None,
            last: None,
            epoch: None,
        }
    }

    fn push(&mut self, record: &Record) {
        self.last = Some(record.id);
        self.epoch = Some(record.id.epoch);
        self.bytes += record.body.len();
        self.records.push_back(record.clone());
        while self.records.len() > self.bounds.records || self.bytes > self.bounds.bytes {
            let Some(old) = self.records.pop_front() else {
                break;
            };
            self.bytes -= old.body.len();
            self.base = Some(old.id);
        }
    }

    /// Records were lost (a gap), or the log itself (a reset, with its new
    /// epoch): nothing kept tells what followed any id any more.
    fn lose(&mut self, reset: Option<u32>) {
        self.records.clear();
        self.bytes = 0;
        self.base = None;
        if let Some(epoch) = reset {
            self.epoch = Some(epoch);
            self.last = None;
        }
    }

    /// The records after `id`, when the window knows them all.
    pub(crate) fn after(&self, id: JournalId) -> Option<impl Iterator<Item = &Record>> {
        let start = if self.base == Some(id) {
            0
        } else {
            // Ids rise along the window (it holds one epoch).
            let at = self.records.partition_point(|r| r.id < id);
            if self.records.get(at).map(|r| r.id) != Some(id) {
                return None;
            }
            at + 1
        };
        Some(self.records.range(start..))
    }

    pub(crate) fn last(&self) -> Option<JournalId> {
        self.last
    }

    pub(crate) fn epoch(&self) -> Option<u32> {
        self.epoch
    }
}

/// The frame `record` gives a client resuming on `channels`, if any.
pub(crate) fn replay_frame(record: &Record, channels: &[Arc<str>]) -> Option<Bytes> {
    let decoded = record::decode(&record.body)?;
    (decoded.replayable() && decoded.reaches(channels)).then(|| decoded.frame(record.id))
}

/// Polls `future` once, with a waker that does nothing.
pub(crate) fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

type Append = Pin<Box<dyn Future<Output = Result<JournalId, JournalError>> + Send>>;

/// The ordered queue behind the synchronous publish methods.
pub(crate) struct Appender {
    journal: Arc<dyn Journal>,
    counters: Arc<Counters>,
    up: watch::Receiver<bool>,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// A task owns the queue: every record goes behind the ones it holds.
    busy: bool,
    records: VecDeque<Bytes>,
}

impl Appender {
    /// Appends `body` without waiting. Returns its id when the journal
    /// stored it at once, `None` when the append goes on in a task.
    pub(crate) fn submit(self: &Arc<Self>, body: Bytes) -> Result<Option<JournalId>, BrokerError> {
        let mut queue = lock(&self.queue);
        if queue.busy {
            if queue.records.len() >= MAX_BACKLOG {
                Counters::add(&self.counters.journal_append_errors, 1);
                return Err(JournalError::unavailable(format!(
                    "{MAX_BACKLOG} publishes are waiting for the journal"
                ))
                .into());
            }
            queue.records.push_back(body);
            return Ok(None);
        }
        let up = *self.up.borrow();
        if !up {
            // Until the follower reached the journal, a record could be
            // appended before the point it follows from: wait in the task.
            queue.records.push_back(body);
            return self.spawn(&mut queue, None).map(|()| None);
        }
        let journal = self.journal.clone();
        let mut append: Append = Box::pin(async move { journal.append(body).await });
        // Still under the queue lock, so no other publish can overtake it.
        match poll_once(&mut append) {
            Poll::Ready(Ok(id)) => {
                self.stored();
                Ok(Some(id))
            }
            Poll::Ready(Err(err)) => Err(err.into()),
            Poll::Pending => self.spawn(&mut queue, Some(append)).map(|()| None),
        }
    }

    fn spawn(
        self: &Arc<Self>,
        queue: &mut Queue,
        first: Option<Append>,
    ) -> Result<(), BrokerError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            queue.records.clear();
            return Err(JournalError::Config(
                "publishing to this journal needs a Tokio runtime".into(),
            )
            .into());
        };
        queue.busy = true;
        runtime.spawn(self.clone().drain(first));
        Ok(())
    }

    async fn drain(self: Arc<Self>, first: Option<Append>) {
        match first {
            Some(append) => self.done(append.await),
            None => {
                // Past the patience, or when the journal does not answer,
                // the appends are tried anyway: they fail, counted.
                if self.journal.ready().await.is_ok() {
                    let mut up = self.up.clone();
                    let _ = tokio::time::timeout(FOLLOWER_START, up.wait_for(|up| *up)).await;
                }
            }
        }
        loop {
            let body = {
                let mut queue = lock(&self.queue);
                match queue.records.pop_front() {
                    Some(body) => body,
                    None => {
                        queue.busy = false;
                        return;
                    }
                }
            };
            let result = self.journal.append(body).await;
            self.done(result);
        }
    }

    fn done(&self, result: Result<JournalId, JournalError>) {
        match result {
            Ok(_) => self.stored(),
            Err(err) => {
                Counters::add(&self.counters.journal_append_errors, 1);
                tracing::warn!(error = %err, "journal: a broadcast was not stored");
            }
        }
    }

    fn stored(&self) {
        Counters::add(&self.counters.journal_appended, 1);
        Counters::add(&self.counters.published, 1);
    }

    /// Appends `body` and waits for the journal's acknowledgement.
    pub(crate) async fn acknowledged(
        &self,
        replica: &Replica,
        body: Bytes,
    ) -> Result<JournalId, BrokerError> {
        replica.await_follower().await?;
        let id = self.journal.append(body).await?;
        self.stored();
        Ok(id)
    }
}

/// The id a published event carries on the wire.
pub(crate) enum Wire {
    /// Its journal id, known once it is stored.
    Journal,
    /// What it was encoded with (perhaps none).
    Fixed(Option<Arc<str>>),
}

impl Wire {
    pub(crate) fn resolve(self, stored: Option<JournalId>) -> Option<Arc<str>> {
        match self {
            Self::Journal => stored.map(|id| Arc::from(id.to_string())),
            Self::Fixed(id) => id,
        }
    }
}

impl BrokerInner {
    /// The record of a publish on `channels` (see `record.rs`), and the id
    /// it carries on the wire. The event is validated.
    pub(crate) fn journal_record(
        &self,
        channels: &[&ChannelInner],
        what: super::Publish,
    ) -> Result<(Bytes, Wire), BrokerError> {
        let live: Vec<&ChannelInner> = channels
            .iter()
            .copied()
            .filter(|c| !c.log.is_deleted())
            .collect();
        if live.is_empty() {
            return Err(if channels.iter().any(|c| c.hidden) {
                BrokerError::Closed
            } else {
                BrokerError::ChannelNotFound
            });
        }
        let (flags, frame, wire) = match what {
            super::Publish::Event(event) => {
                let frame = event.encode()?;
                let own = || Wire::Fixed(event.id().map(Arc::from));
                if !event.is_replayable() {
                    (record::TRANSIENT, frame, own())
                } else if self.config.generate_ids {
                    // The journal id replaces any id of the caller's.
                    let frame = if event.id().is_some() {
                        record::strip_id_line(&frame)
                    } else {
                        frame
                    };
                    (record::ADD_ID, frame, Wire::Journal)
                } else {
                    (0, frame, own())
                }
            }
            super::Publish::Frame(frame) => (0, frame, Wire::Fixed(None)),
        };
        let body = if live.iter().any(|c| c.hidden) {
            record::encode(flags | record::EVERYONE, std::iter::empty(), &frame)
        } else {
            record::encode(flags, live.iter().map(|c| &*c.name), &frame)
        };
        Ok((body, wire))
    }
}

/// The broker's follower of its journal.
pub(crate) struct BrokerFollower(pub(crate) Weak<BrokerInner>);

impl Follower for BrokerFollower {
    fn records(&self, records: &[Record]) {
        if let Some(broker) = self.0.upgrade() {
            broker.follow_records(records);
        }
    }

    fn state(&self, state: FollowState) {
        if let Some(broker) = self.0.upgrade() {
            broker.follow_state(state);
        }
    }
}

impl BrokerInner {
    fn follow_records(&self, records: &[Record]) {
        let Some(replica) = &self.replica else {
            return;
        };
        let mut next = lock(&self.publishing);
        let mut window = lock(&replica.window);
        let mut targets: Vec<Arc<ChannelInner>> = Vec::new();
        for record in records {
            Counters::add(&self.counters.journal_followed, 1);
            window.push(record);
            let Some(decoded) = record::decode(&record.body) else {
                Counters::add(&self.counters.journal_malformed, 1);
                tracing::debug!(id = %record.id, "journal: skipping a record that is not a broker's");
                continue;
            };
            targets.clear();
            if decoded.everyone() {
                if self.everyone.log.len() > 0 {
                    targets.push(self.everyone.clone());
                }
            } else {
                let channels = lock(&self.channels);
                for name in decoded.names() {
                    if let Some(channel) = channels.get(name) {
                        let new = !targets.iter().any(|t| Arc::ptr_eq(t, channel));
                        if new && channel.log.len() > 0 {
                            targets.push(channel.clone());
                        }
                    }
                }
            }
            if targets.is_empty() {
                // Nobody here: not even the frame is built.
                Counters::add(&self.counters.journal_skipped, 1);
                continue;
            }
            self.deliver(&mut next, &targets, decoded.frame(record.id));
        }
        drop(window);
        drop(next);
        replica.followed.notify_waiters();
    }

    /// Appends `frame` at the next position to each of `targets` (under the
    /// publishing lock, held by the caller as `next`).
    fn deliver(&self, next: &mut u64, targets: &[Arc<ChannelInner>], frame: Bytes) {
        let position = *next;
        let (mut skipped, mut claimed) = (0, 0);
        for channel in targets {
            // A log deleted meanwhile has nobody to deliver to.
            if let Ok(appended) = channel.log.append(position, frame.clone(), &self.writers) {
                skipped += appended.skipped;
                claimed += appended.claimed;
            }
        }
        *next = position + 1;
        self.watermark.store(position + 1, Ordering::Release);
        Counters::add(&self.counters.dropped, skipped);
        Counters::add(&self.counters.delivered, claimed);
        Counters::add(&self.counters.direct, claimed);
    }

    fn follow_state(&self, state: FollowState) {
        let Some(replica) = &self.replica else {
            return;
        };
        match state {
            FollowState::Up => {
                tracing::info!("journal: following");
                replica.up.send_replace(true);
            }
            FollowState::Down(err) => {
                Counters::add(&self.counters.journal_down, 1);
                tracing::warn!(error = %err, "journal: unreachable, following resumes when it is back");
            }
            FollowState::Reset { epoch } => {
                Counters::add(&self.counters.journal_resets, 1);
                tracing::warn!(epoch = %format_args!("{epoch:08x}"), "journal: it lost its data and started a new log; clients are told of the gap");
                self.lost(replica, Some(epoch));
            }
            FollowState::Gap => {
                Counters::add(&self.counters.journal_gaps, 1);
                tracing::warn!(
                    "journal: records were dropped before this broker read them; clients are told of the gap"
                );
                self.lost(replica, None);
            }
            #[allow(unreachable_patterns)] // FollowState is non-exhaustive
            other => tracing::debug!(state = ?other, "journal: follower state"),
        }
        replica.followed.notify_waiters();
    }

    /// Records were lost between the last one delivered and the next: every
    /// connected client gets the gap event, in order, through the channel
    /// they are all in.
    fn lost(&self, replica: &Replica, reset: Option<u32>) {
        let mut next = lock(&self.publishing);
        let mut window = lock(&replica.window);
        let last = window.last().map(|id| id.to_string()).unwrap_or_default();
        window.lose(reset);
        replica.losses.fetch_add(1, Ordering::AcqRel);
        drop(window);
        if self.config.gap.event && self.everyone.log.len() > 0 {
            if let Ok(frame) = gap_event(&last, GapReason::HistoryLost).encode() {
                let everyone = [self.everyone.clone()];
                self.deliver(&mut next, &everyone, frame);
            }
        }
    }
}

/// The gap event for a client whose last event was `last_event_id`.
pub(crate) fn gap_event(last_event_id: &str, reason: GapReason) -> Event {
    let reason = match reason {
        GapReason::UnknownId => "unknown-id",
        GapReason::HistoryLost => "history-lost",
    };
    let data = serde_json::json!({ "last_event_id": last_event_id, "reason": reason });
    Event::with_type(GAP_EVENT, data.to_string())
}

/// How a resume's read of the journal ended.
enum Read {
    /// Up to this head (`None`: the journal was empty).
    Head(Option<JournalId>),
    /// The client is gone, or told to go: stop.
    Stop,
}

/// Resumes `client` from the journal, after `after` (`from` is where its
/// first page starts). See the module docs.
pub(crate) async fn resume(
    client: Arc<ClientInner>,
    broker: Arc<BrokerInner>,
    mut from: ReplayFrom,
    after: Option<JournalId>,
) {
    let Some(replica) = &broker.replica else {
        return;
    };
    let losses = replica.losses.load(Ordering::Acquire);
    let channels = client.journal_channels();
    let buffer = broker.config.buffer_events().max(PAGE);
    let mut first = true;
    // The head of the previous read, to tell when a second read found
    // nothing new.
    let mut previous: Option<Option<JournalId>> = None;
    loop {
        let head = match read(&client, &broker, from, after, &channels, buffer, &mut first).await {
            Read::Head(head) => head,
            Read::Stop => return,
        };
        if !replica.follower_started(FOLLOWER_START).await {
            if client.is_gone() {
                return;
            }
            // Read on from where this read ended.
            from = head.map_or(ReplayFrom::Earliest, ReplayFrom::After);
            previous = Some(head);
            continue;
        }
        // Meet the follower.
        loop {
            let followed = replica.followed.notified();
            tokio::pin!(followed);
            followed.as_mut().enable();
            match meet(&client, &broker, replica, head, previous, &channels, losses) {
                Meet::Done => return,
                Meet::Reread(next) => {
                    from = next;
                    break;
                }
                Meet::Wait => {
                    if client.is_gone() {
                        return;
                    }
                    let _ = tokio::time::timeout(FOLLOWER_POLL, followed).await;
                }
            }
        }
        previous = Some(head);
    }
}

/// What a resume does after its read of the journal.
enum Meet {
    /// Replay and live stream met.
    Done,
    /// Read the journal again from here.
    Reread(ReplayFrom),
    /// The follower is behind the read: wait for it.
    Wait,
}

/// Meets the follower after a read that ended at `head` (see the module
/// docs), under the publishing lock.
fn meet(
    client: &ClientInner,
    broker: &BrokerInner,
    replica: &Replica,
    head: Option<JournalId>,
    previous: Option<Option<JournalId>>,
    channels: &[Arc<str>],
    losses: u64,
) -> Meet {
    let _publishing = lock(&broker.publishing);
    let window = lock(&replica.window);
    let last = window.last();
    let skip = match head {
        // Nothing was in the journal; if nothing was followed since either,
        // the logs hold nothing to skip.
        None if last.is_none() => true,
        None => return Meet::Reread(ReplayFrom::Earliest),
        Some(head) if window.epoch().is_some_and(|e| e != head.epoch) => {
            // The journal was reset while this client was read.
            client.resume_gap(GapReason::HistoryLost);
            false
        }
        Some(head) => match last {
            Some(last) if last == head => true,
            Some(last) if last > head => match window.after(head) {
                Some(records) => {
                    client.push_replay(records.filter_map(|r| replay_frame(r, channels)));
                    true
                }
                None => return Meet::Reread(ReplayFrom::After(head)),
            },
            // The follower is behind `head`: it delivers it soon.
            Some(_) => return Meet::Wait,
            // The follower delivered nothing since it started, perhaps
            // "after" `head`: once a second read finds nothing new after
            // `head`, nothing is missing.
            None if previous == Some(Some(head)) => true,
            None => return Meet::Reread(ReplayFrom::After(head)),
        },
    };
    if replica.losses.load(Ordering::Acquire) != losses {
        client.resume_gap(GapReason::HistoryLost);
    }
    client.finish_resume(skip);
    Meet::Done
}

/// Reads the journal from `from` to its head, queuing `client`'s records.
async fn read(
    client: &Arc<ClientInner>,
    broker: &BrokerInner,
    mut from: ReplayFrom,
    after: Option<JournalId>,
    channels: &[Arc<str>],
    buffer: usize,
    first: &mut bool,
) -> Read {
    let Some(replica) = &broker.replica else {
        return Read::Stop;
    };
    loop {
        if client.is_gone() {
            return Read::Stop;
        }
        let mut attempt = 0;
        let page = loop {
            match replica.journal.replay(from, PAGE).await {
                Ok(page) => break page,
                Err(err) if attempt + 1 < READ_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(error = %err, "journal: resume read failed, retrying");
                    tokio::time::sleep(Duration::from_millis(100) * attempt).await;
                }
                Err(err) => {
                    Counters::add(&broker.counters.journal_resume_errors, 1);
                    tracing::warn!(error = %err, "journal: cannot resume a client; disconnecting it so it retries");
                    client.abandon_resume();
                    return Read::Stop;
                }
            }
        };
        if page.gap {
            if *first {
                // An id of the journal's epoch that it no longer holds, or
                // one it never issued.
                let epoch = page
                    .head
                    .or(page.records.first().map(|r| r.id))
                    .map(|id| id.epoch);
                let known = after.is_some_and(|after| Some(after.epoch) == epoch);
                client.resume_gap(if known {
                    GapReason::HistoryLost
                } else {
                    GapReason::UnknownId
                });
                if broker.config.gap.replay == GapReplay::Nothing {
                    // Only live events: nothing replayed, nothing skipped.
                    let _publishing = lock(&broker.publishing);
                    client.finish_resume(false);
                    return Read::Stop;
                }
            } else {
                client.resume_gap(GapReason::HistoryLost);
            }
        }
        if std::mem::take(first) {
            client.resume_known();
        }
        let queued = client.push_replay(
            page.records
                .iter()
                .filter_map(|r| replay_frame(r, channels)),
        );
        if queued > buffer && !client.drained_below(buffer).await {
            return Read::Stop;
        }
        match page.next_page() {
            Some(next) => from = next,
            None => return Read::Head(page.head.or(page.records.last().map(|r| r.id))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Offset;

    fn record(seq: u64) -> Record {
        Record {
            id: JournalId {
                epoch: 1,
                offset: Offset::Seq(seq),
            },
            body: Bytes::from(vec![0; 10]),
        }
    }

    fn ids<'a>(records: impl Iterator<Item = &'a Record>) -> Vec<u64> {
        records
            .map(|r| match r.id.offset {
                Offset::Seq(seq) => seq,
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn the_window_knows_what_followed_each_id_it_holds() {
        let mut window = Window::new(JournalWindow {
            records: 3,
            bytes: 1000,
        });
        assert!(window.after(record(1).id).is_none());
        for seq in 1..=5 {
            window.push(&record(seq));
        }
        // Holds 3..=5; 2 was evicted, so what follows 2 is known too.
        assert_eq!(ids(window.after(record(2).id).unwrap()), [3, 4, 5]);
        assert_eq!(ids(window.after(record(4).id).unwrap()), [5]);
        assert_eq!(ids(window.after(record(5).id).unwrap()), Vec::<u64>::new());
        assert!(
            window.after(record(1).id).is_none(),
            "3 is not all that followed 1"
        );
        assert!(window.after(record(9).id).is_none(), "never delivered");
        assert_eq!(window.last(), Some(record(5).id));
        assert_eq!(window.epoch(), Some(1));
    }

    #[test]
    fn the_byte_bound_evicts_and_a_zero_window_still_knows_the_last_id() {
        let mut window = Window::new(JournalWindow {
            records: 0,
            bytes: 0,
        });
        window.push(&record(1));
        assert_eq!(ids(window.after(record(1).id).unwrap()), Vec::<u64>::new());
        let mut window = Window::new(JournalWindow {
            records: 100,
            bytes: 25,
        });
        for seq in 1..=4 {
            window.push(&record(seq));
        }
        assert_eq!(ids(window.after(record(2).id).unwrap()), [3, 4]);
    }

    #[test]
    fn after_a_loss_nothing_is_vouched_for() {
        let mut window = Window::new(JournalWindow {
            records: 10,
            bytes: 1000,
        });
        for seq in 1..=3 {
            window.push(&record(seq));
        }
        window.lose(None);
        assert!(window.after(record(3).id).is_none());
        assert_eq!(
            window.last(),
            Some(record(3).id),
            "still the last delivered"
        );
        window.push(&record(7));
        assert!(window.after(record(3).id).is_none(), "4..=6 were lost");
        assert_eq!(ids(window.after(record(7).id).unwrap()), Vec::<u64>::new());
        window.lose(Some(9));
        assert_eq!(window.last(), None);
        assert_eq!(window.epoch(), Some(9));
    }

    #[test]
    fn replay_frames_are_filtered_by_channel_and_replayability() {
        let event = Event::new("x").encode().unwrap();
        let on = |flags, names: &[&str]| Record {
            id: record(1).id,
            body: record::encode(flags, names.iter().copied(), &event),
        };
        let mine: Vec<Arc<str>> = vec!["a".into()];
        assert!(replay_frame(&on(record::ADD_ID, &["a", "b"]), &mine).is_some());
        assert!(replay_frame(&on(record::ADD_ID, &["b"]), &mine).is_none());
        assert!(replay_frame(&on(record::EVERYONE, &[]), &mine).is_some());
        assert!(replay_frame(&on(record::TRANSIENT, &["a"]), &mine).is_none());
        let foreign = Record {
            id: record(1).id,
            body: Bytes::from_static(b"not ours"),
        };
        assert!(replay_frame(&foreign, &mine).is_none());
    }

    #[test]
    fn gap_events_are_json() {
        let frame = gap_event("a\"b", GapReason::UnknownId).encode().unwrap();
        let text = String::from_utf8(frame.to_vec()).unwrap();
        assert!(
            text.contains(r#"data: {"last_event_id":"a\"b","reason":"unknown-id"}"#),
            "{text}"
        );
    }
}
