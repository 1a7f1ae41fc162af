//! The hub core: publishing an update to the log, fanning out what the log
//! delivers, joining a subscriber (with its replay) and leaving.
//!
//! # One log
//!
//! A publish only appends to the log ([`Journal`]) and answers once the log
//! stored the update. Every node follows the log in order — its own
//! updates like any other node's — and fans each update out to its local
//! groups, so every subscriber on every node sees one total order. The
//! log's retained tail is the history; a hub-generated id is a position in
//! it (`#` and the [`JournalId`]).
//!
//! # Joining without a gap or a duplicate
//!
//! A resuming subscriber first reads what it missed from the log (no lock
//! held; for Redis, `XRANGE` pages), then takes the `state` lock, which the
//! follower also takes for every update it delivers. Under it, the node's
//! short window of recent updates ([`Recent`]) bridges the position the
//! read reached to the node's head; the subscriber joins its group and gets
//! its replay before any live update can reach it. When the read got ahead
//! of this node's follower, the join waits for the follower to catch up;
//! when the follower ran past the window meanwhile, the log is read again.
//!
//! The lock is held for map lookups and pointer moves; the fan-out to
//! sockets happens in the broker. Lock order: the log's (a memory log calls
//! its follower under its own lock), then `state`, then the broker's.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use ssehub::broker::{
    Broker, BrokerConfig, Channel, Client, GAP_EVENT, HistoryConfig, OverflowPolicy,
};
use ssehub::journal::{
    FollowFrom, FollowState, Follower, Following, Journal, JournalError, JournalId, Record,
    ReplayFrom,
};
use ssehub::{BrokerError, Event, EventError, SseBody};
use tokio::sync::{Notify, mpsc};
use url::Url;

use crate::auth::{Grants, Jwks};
use crate::groups::{Group, GroupKey, Groups, Selector, key_of};
use crate::matcher::Matcher;
use crate::metrics::{Metrics, ReplayLabels, first_generated_key, ring_key};
use crate::recent::Recent;
use crate::request::publish::RESERVED_TYPE;
use crate::subscriptions::{ActiveSubscriptions, Subscription};
use crate::sync::lock;
use crate::update::{self, NewUpdate, Update, now_us, parse_generated};

/// The `Mercure-Last-Event-ID` response value when the resume point is not
/// (or no longer) known, or everything was asked for.
pub(crate) const EARLIEST: &str = ssehub::broker::EARLIEST;

/// Records read from the log per replay page.
const PAGE: usize = 1000;

/// How long a join waits for this node's follower to reach a position the
/// log already showed it, before answering `503`.
const CATCH_UP: Duration = Duration::from_secs(3);

/// How the hub's core is tuned.
#[derive(Debug)]
pub(crate) struct CoreConfig {
    pub base: Url,
    pub keep_alive: Duration,
    pub client_buffer: usize,
    pub client_buffer_bytes: usize,
    /// Recent updates kept to bridge replays to live delivery.
    pub window: usize,
    /// Publisher-chosen ids whose positions are remembered.
    pub caller_ids: usize,
    pub subscriptions: Option<ActiveSubscriptions>,
    /// The issuers' key sets, reported in `/metrics`.
    pub key_sets: Vec<Arc<Jwks>>,
}

/// Why a publish was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishError {
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    Closed,
    /// A field cannot be encoded as SSE (the request parser refuses those
    /// first).
    #[error(transparent)]
    Invalid(#[from] EventError),
    /// The log did not store it.
    #[error(transparent)]
    Log(#[from] JournalError),
}

/// Why a subscriber could not join.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JoinError {
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    Closed,
    /// Its replay could not be read from the log.
    #[error(transparent)]
    Log(#[from] JournalError),
    /// This node's follower did not reach the replay's end in time (its
    /// log's engine is slow or unreachable).
    #[error("this node is catching up with the log")]
    Lagging,
}

impl From<BrokerError> for JoinError {
    fn from(_: BrokerError) -> Self {
        // The broker refuses new clients only once it is closed.
        Self::Closed
    }
}

/// State shared by every request.
#[derive(Debug)]
pub(crate) struct Core {
    pub broker: Broker,
    pub base: Url,
    pub metrics: Metrics,
    pub active: Option<ActiveSubscriptions>,
    journal: Arc<dyn Journal>,
    state: Mutex<State>,
    /// Woken when the follower delivered updates.
    advanced: Notify,
    /// The follower reads the log live.
    live: AtomicBool,
    following: Mutex<Option<Following>>,
    /// Subscription events, published one after the other in the order
    /// subscribers came and went.
    announcements: mpsc::UnboundedSender<NewUpdate>,
    groups: Arc<AtomicUsize>,
    replay_events: usize,
    replay_bytes: usize,
}

#[derive(Debug)]
struct State {
    recent: Recent,
    groups: Groups,
    /// The channels an update goes to, kept from one update to the next
    /// (empty between them).
    targets: Vec<Channel>,
}

/// A subscriber that joined: its broker client, the response body, its
/// hub-assigned id, and where it resumed (for the `Mercure-Last-Event-ID`
/// response header, when it asked to resume).
pub(crate) struct Joined {
    pub client: Client,
    pub body: SseBody,
    pub subscriber: String,
    pub last_event_id: Option<String>,
    pub membership: Membership,
}

/// Leaves the group (and ends the subscriber's active subscriptions) when
/// dropped, i.e. when the connection's response body is dropped.
#[derive(Debug)]
pub(crate) struct Membership {
    core: Arc<Core>,
    key: Option<GroupKey>,
    matchers: i64,
    subscriptions: Vec<Subscription>,
}

/// What a resuming subscriber gets before going live.
struct Replay {
    /// The requested id, when it is known and nothing after it was lost.
    exact: bool,
    /// Updates after the requested id were lost (or it is unknown).
    gap: bool,
    /// Visible updates, oldest first, at most a client buffer's worth.
    updates: VecDeque<Update>,
    bytes: usize,
}

/// How far a replay has read.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    /// The log must be read from here.
    Read(ReplayFrom),
    /// Read up to this position (`None`: the log was empty). `seen` says
    /// the log showed it, so this node's follower will deliver it.
    At {
        position: Option<JournalId>,
        seen: bool,
    },
    /// Nothing to replay: live from the log's head.
    Head,
}

impl Core {
    /// A hub core on `journal`; call [`start`](Self::start) to follow it.
    pub fn new(config: CoreConfig, journal: Arc<dyn Journal>) -> Arc<Self> {
        let (announcements, queue) = mpsc::unbounded_channel();
        let core = Arc::new_cyclic(|core: &Weak<Core>| {
            Self::with_self(config, journal, announcements, core.clone())
        });
        tokio::spawn(announce(Arc::downgrade(&core), queue));
        core
    }

    fn with_self(
        config: CoreConfig,
        journal: Arc<dyn Journal>,
        announcements: mpsc::UnboundedSender<NewUpdate>,
        core: Weak<Core>,
    ) -> Self {
        let broker = Broker::with_config(
            BrokerConfig::default()
                .keep_alive(Some(config.keep_alive))
                .client_buffer_events(config.client_buffer)
                .client_buffer_bytes(config.client_buffer_bytes)
                .overflow(OverflowPolicy::Disconnect)
                // The log is the history (filtered per subscriber), and
                // each frame carries the hub's own id.
                .history(HistoryConfig::disabled())
                .generate_ids(false)
                // Every publish goes out in the writer's next round: with
                // many publishers, woken connections batching for
                // themselves cost more and let publishers overtake
                // one another (BENCHMARKS, "Publishing").
                .write_burst(Duration::ZERO)
                // Updates the broker's writer puts straight on sleeping
                // subscribers' sockets never pass through `HubBody`: they
                // are timed here.
                .on_direct_write(move |frame, count| {
                    if let Some(core) = core.upgrade()
                        && let Some(key) = first_generated_key(frame)
                    {
                        core.metrics.written(key, count);
                    }
                }),
        );
        let groups = Arc::new(AtomicUsize::new(0));
        Self {
            metrics: Metrics::new(broker.clone(), groups.clone(), config.key_sets),
            broker,
            base: config.base,
            active: config.subscriptions,
            journal,
            state: Mutex::new(State {
                recent: Recent::new(config.window, config.caller_ids),
                groups: Groups::default(),
                targets: Vec::new(),
            }),
            advanced: Notify::new(),
            live: AtomicBool::new(false),
            following: Mutex::new(None),
            announcements,
            groups,
            // Leave room for live updates behind a full replay.
            replay_events: config
                .client_buffer
                .saturating_sub(config.client_buffer / 8)
                .max(1),
            replay_bytes: config.client_buffer_bytes - config.client_buffer_bytes / 8,
        }
    }

    /// Learns the publisher ids of the log's retained updates, then follows
    /// the log from its head. While the log cannot be read, retries in the
    /// background (the node is not ready meanwhile).
    pub async fn start(self: &Arc<Self>) {
        if let Err(err) = self.try_start().await {
            tracing::warn!(%err, "the log cannot be read yet; retrying");
            let core = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut delay = Duration::from_millis(100);
                loop {
                    tokio::time::sleep(delay).await;
                    let Some(core) = core.upgrade() else { return };
                    if core.broker.is_closed() || core.try_start().await.is_ok() {
                        return;
                    }
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            });
        }
    }

    async fn try_start(self: &Arc<Self>) -> Result<(), JournalError> {
        let head = self.index_retained().await?;
        let follower = Arc::new(HubFollower(Arc::downgrade(self)));
        // From the start of an empty log, not its latest record at the
        // reader's first contact: an update may be appended in between.
        let from = head.map_or(FollowFrom::Earliest, FollowFrom::After);
        *lock(&self.following) = Some(self.journal.follow(from, follower));
        Ok(())
    }

    /// Reads the retained log once, for the positions of publisher ids;
    /// returns its head.
    async fn index_retained(&self) -> Result<Option<JournalId>, JournalError> {
        let mut from = ReplayFrom::Earliest;
        loop {
            let page = self.journal.replay(from, PAGE).await?;
            let mut state = lock(&self.state);
            for record in &page.records {
                if let Ok(update) = update::decode(record)
                    && update.caller_id
                {
                    state.recent.remember(update.id.clone(), update.position);
                }
            }
            if let Some(last) = page.records.last()
                && page.head == Some(last.id)
                && let Ok(update) = update::decode(last)
            {
                state.recent.set_head(last.id, update.id);
            }
            drop(state);
            match page.next_page() {
                Some(next) => from = next,
                None => return Ok(page.head),
            }
        }
    }

    /// The id of the last update this node delivered, or `earliest`.
    pub fn last_event_id(&self) -> String {
        lock(&self.state)
            .recent
            .head_id()
            .map_or(EARLIEST, |id| &**id)
            .to_owned()
    }

    /// Whether this node can take publishes and serve subscribers now:
    /// following the log live, and the log's engine answering.
    pub async fn ready(&self) -> Result<(), JournalError> {
        if !self.live.load(Ordering::Acquire) {
            return Err(JournalError::unavailable(
                "this node is not following the log",
            ));
        }
        self.journal.ready().await
    }

    /// Publishes an update; returns its id once the log stored it.
    ///
    /// # Errors
    /// [`PublishError::Closed`] while shutting down, `Log` when the log did
    /// not acknowledge it, `Invalid` if a field cannot be encoded.
    pub async fn publish(&self, new: NewUpdate) -> Result<String, PublishError> {
        if self.broker.is_closed() {
            return Err(PublishError::Closed);
        }
        let caller_id = new.id.clone();
        let record = update::encode(new, now_us())?;
        let position = self.journal.append(record).await?;
        self.metrics.published.inc();
        Ok(caller_id.unwrap_or_else(|| update::generated_id(position)))
    }

    /// Joins a subscriber: its group, its replay, its active subscriptions.
    /// Its id is the hub's, a random `urn:uuid:` per connection: clients
    /// can neither choose nor forge it, and it tells nothing of the token.
    ///
    /// # Errors
    /// [`JoinError::Closed`] while shutting down; `Log` or `Lagging` when
    /// its replay cannot be read now.
    pub async fn subscribe(
        self: &Arc<Self>,
        matchers: Vec<Matcher>,
        grants: Option<Grants>,
        last_event_id: Option<&str>,
    ) -> Result<Joined, JoinError> {
        if self.broker.is_closed() {
            return Err(JoinError::Closed);
        }
        let subscriber = uuid::Uuid::new_v4().urn().to_string();
        let count = matchers.len() as i64;
        let key = GroupKey {
            matchers: key_of(&matchers),
            reads: grants.as_ref().map(|g| key_of(g.subscribe_matchers())),
        };
        let subscriptions = self
            .active
            .as_ref()
            .map(|_| Subscription::for_matchers(&matchers, &subscriber, grants.as_ref()))
            .unwrap_or_default();
        let selector = Selector { matchers, grants };
        let mut replay = Replay {
            exact: false,
            gap: false,
            updates: VecDeque::new(),
            bytes: 0,
        };
        let mut cursor = last_event_id.map(|id| self.resume_point(id, &mut replay));
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        let (client, body, response_id) = loop {
            match cursor {
                Some(Cursor::Read(from)) => {
                    cursor = Some(self.read_log(from, &selector, &mut replay).await?);
                }
                Some(Cursor::Head) => {
                    let head = self.journal.replay(ReplayFrom::Earliest, 0).await?.head;
                    cursor = Some(Cursor::At {
                        position: head,
                        seen: true,
                    });
                }
                _ => {}
            }
            let notified = self.advanced.notified();
            match self.attempt(cursor, &key, &selector, &mut replay, last_event_id)? {
                Attempt::Joined(client, body, response_id) => break (client, body, response_id),
                Attempt::Read(from) => cursor = Some(Cursor::Read(from)),
                Attempt::Wait => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Err(JoinError::Lagging);
                    }
                }
            }
        };
        self.metrics.connections.inc();
        self.metrics.subscribers_total.inc();
        self.metrics.subscriptions.inc_by(count);
        let membership = Membership {
            core: self.clone(),
            key: Some(key),
            matchers: count,
            subscriptions,
        };
        membership.announce(true);
        Ok(Joined {
            client,
            body,
            subscriber,
            last_event_id: response_id,
            membership,
        })
    }

    /// Under the lock: bridges the replay read so far to this node's live
    /// delivery and joins, sending the replay before anything else can
    /// reach the subscriber — or says what to do first.
    fn attempt(
        &self,
        cursor: Option<Cursor>,
        key: &GroupKey,
        selector: &Selector,
        replay: &mut Replay,
        last_event_id: Option<&str>,
    ) -> Result<Attempt, JoinError> {
        let mut state = lock(&self.state);
        match cursor {
            None | Some(Cursor::Read(_) | Cursor::Head) => {}
            Some(Cursor::At { position, seen }) => {
                match self.bridge(&state, position, seen, selector, replay) {
                    Bridge::Done => {}
                    Bridge::Wait => return Ok(Attempt::Wait),
                    Bridge::Read(from) => return Ok(Attempt::Read(from)),
                }
            }
        }
        let (client, body) = self.broker.connect(None)?;
        if let Err(err) = self.join(&mut state, key.clone(), selector.clone(), &client) {
            client.close();
            return Err(err);
        }
        let response_id = last_event_id.map(|requested| {
            if replay.gap {
                self.count_replay("miss");
                let _ = client.send_frame(gap_frame(Some(requested)));
            } else {
                self.count_replay(if replay.exact { "hit" } else { "earliest" });
            }
            self.metrics.replayed.inc_by(replay.updates.len() as u64);
            for update in &replay.updates {
                // The buffer was sized for this, so it cannot overflow; a
                // client that is already gone simply gets nothing.
                let _ = client.send_frame(update.frame.clone());
            }
            if replay.exact && !replay.gap {
                requested.to_owned()
            } else {
                EARLIEST.to_owned()
            }
        });
        Ok(Attempt::Joined(client, body, response_id))
    }

    /// Where a `Last-Event-ID` points: a hub-generated position (tried
    /// against the recent window first), a publisher id this node saw, or
    /// nothing known (a gap: live from the head, with the gap event).
    fn resume_point(&self, last_event_id: &str, replay: &mut Replay) -> Cursor {
        if last_event_id == EARLIEST {
            return Cursor::Read(ReplayFrom::Earliest);
        }
        let position = parse_generated(last_event_id)
            .or_else(|| lock(&self.state).recent.lookup(last_event_id));
        match position {
            Some(position) => {
                replay.exact = true;
                Cursor::At {
                    position: Some(position),
                    seen: false,
                }
            }
            None => {
                // Not a position: nothing says which updates came after
                // it, so (as the reference hub does) nothing is replayed.
                replay.gap = true;
                Cursor::Head
            }
        }
    }

    /// Reads the log from `from` to its head, keeping what `selector` sees.
    async fn read_log(
        &self,
        mut from: ReplayFrom,
        selector: &Selector,
        replay: &mut Replay,
    ) -> Result<Cursor, JournalError> {
        loop {
            let page = self.journal.replay(from, PAGE).await?;
            // Updates after the position are lost (trimmed, or the engine
            // lost the log it belongs to). Positions are ordered, so every
            // record the log still holds came after it: the subscriber
            // gets those, told of the gap first — the hole is only what
            // the log no longer has.
            replay.gap |= page.gap;
            for record in &page.records {
                self.keep(replay, selector, decoded(record));
            }
            match page.next_page() {
                Some(next) => from = next,
                None => {
                    return Ok(Cursor::At {
                        position: page.records.last().map(|r| r.id).or(page.head),
                        seen: true,
                    });
                }
            }
        }
    }

    /// Adds `update` to the replay if the subscriber sees it, dropping the
    /// oldest when the replay outgrows a client buffer.
    fn keep(&self, replay: &mut Replay, selector: &Selector, update: Option<Update>) {
        let Some(update) = update else { return };
        if !selector.sees(&update, &self.base) {
            return;
        }
        replay.bytes += update.frame.len();
        replay.updates.push_back(update);
        while replay.updates.len() > self.replay_events || replay.bytes > self.replay_bytes {
            let Some(old) = replay.updates.pop_front() else {
                break;
            };
            replay.bytes -= old.frame.len();
            // The oldest were left out: the response says `earliest`.
            replay.exact = false;
        }
    }

    /// Connects a replay that read up to `position` to this node's live
    /// delivery.
    fn bridge(
        &self,
        state: &State,
        position: Option<JournalId>,
        seen: bool,
        selector: &Selector,
        replay: &mut Replay,
    ) -> Bridge {
        let Some(position) = position else {
            // The log was empty when read: nothing delivered here since, or
            // read it again.
            return match state.recent.head() {
                None => Bridge::Done,
                Some(_) => Bridge::Read(ReplayFrom::Earliest),
            };
        };
        if let Some(after) = state.recent.after(position) {
            for record in after {
                self.keep(replay, selector, decoded(record));
            }
            return Bridge::Done;
        }
        if seen && state.recent.is_ahead(position) {
            Bridge::Wait
        } else {
            Bridge::Read(ReplayFrom::After(position))
        }
    }

    /// Adds `client` to the group of `key` (creating it).
    fn join(
        &self,
        state: &mut State,
        key: GroupKey,
        selector: Selector,
        client: &Client,
    ) -> Result<(), JoinError> {
        let group = state.groups.join(key.clone(), |name| {
            Ok::<_, BrokerError>(Group {
                channel: self.broker.channel(&name)?,
                selector,
            })
        })?;
        self.groups.store(state.groups.len(), Ordering::Relaxed);
        if let Err(err) = client.subscribe(group.channel.name()) {
            self.leave_locked(state, &key);
            return Err(err.into());
        }
        Ok(())
    }

    /// Fans an update the log delivered out to the groups that see it.
    fn deliver(&self, state: &mut State, record: &Record, update: &Update) {
        self.metrics
            .published_at(ring_key(update.position), update.published_us);
        let mut channels = std::mem::take(&mut state.targets);
        state.groups.targets(update, &self.base, &mut channels);
        if !channels.is_empty() {
            // Groups leave under this lock, so their channels exist; a
            // closed broker means the hub is stopping.
            let _ = self
                .broker
                .publish_frame_to(&channels, update.frame.clone());
        }
        channels.clear();
        state.targets = channels;
        state.recent.push(record.clone(), update);
    }

    /// Tells every connected subscriber that updates were lost before this
    /// node could deliver them.
    fn announce_gap(&self) {
        let _ = self.broker.broadcast_frame(gap_frame(None));
    }

    fn count_replay(&self, result: &'static str) {
        self.metrics
            .replays
            .get_or_create(&ReplayLabels { result })
            .inc();
    }

    fn leave_locked(&self, state: &mut State, key: &GroupKey) {
        if let Some(group) = state.groups.leave(key) {
            let _ = self.broker.delete_channel(group.channel.name());
        }
        self.groups.store(state.groups.len(), Ordering::Relaxed);
    }

    /// Closes every stream, spread evenly over `drain` so clients do not
    /// all reconnect in the same instant, then closes the broker and stops
    /// following the log.
    pub async fn drain(&self, drain: Duration) {
        let mut clients = Vec::new();
        self.broker.for_each(|c| clients.push(c.clone()));
        if !clients.is_empty() {
            // At most ~100 pauses, whatever the number of clients.
            let batch = clients.len().div_ceil(100);
            let pause = drain / clients.len().div_ceil(batch) as u32;
            for chunk in clients.chunks(batch) {
                for client in chunk {
                    client.close();
                }
                tokio::time::sleep(pause).await;
            }
        }
        self.broker.close();
        if let Some(active) = &self.active
            && let Err(err) = active.shutdown().await
        {
            // The entries expire on their own.
            tracing::warn!(%err, "this node's subscriptions stay listed until they expire");
        }
        lock(&self.following).take();
        self.live.store(false, Ordering::Release);
    }
}

enum Attempt {
    /// Joined, with the `Mercure-Last-Event-ID` value when it resumed.
    Joined(Client, SseBody, Option<String>),
    /// Wait for this node's follower.
    Wait,
    /// Read the log from here first.
    Read(ReplayFrom),
}

enum Bridge {
    /// The replay reaches this node's head.
    Done,
    /// The log showed updates this node's follower has not delivered yet.
    Wait,
    /// The follower moved past what this node remembers: read the log.
    Read(ReplayFrom),
}

/// A record as an update; a record the hub did not write is skipped.
fn decoded(record: &Record) -> Option<Update> {
    match update::decode(record) {
        Ok(update) => Some(update),
        Err(err) => {
            tracing::warn!(id = %record.id, %err, "skipping a record of the log");
            None
        }
    }
}

/// The hub's gap event: updates a subscriber should have had were lost.
/// No `id:` line, so the client's resume point is unchanged; a typed event,
/// so Mercure clients listening to `message` events do not see it.
fn gap_frame(requested: Option<&str>) -> Bytes {
    let data = serde_json::json!({ "lastEventID": requested, "resumedAt": EARLIEST });
    Event::new(data.to_string())
        .with_event(GAP_EVENT)
        .encode()
        .unwrap_or_default()
}

/// The node's reader of the log.
struct HubFollower(Weak<Core>);

impl Follower for HubFollower {
    fn records(&self, records: &[Record]) {
        let Some(core) = self.0.upgrade() else { return };
        let mut state = lock(&core.state);
        for record in records {
            if let Some(update) = decoded(record) {
                core.deliver(&mut state, record, &update);
            }
        }
        drop(state);
        core.metrics.followed.inc_by(records.len() as u64);
        core.advanced.notify_waiters();
    }

    fn state(&self, change: FollowState) {
        let Some(core) = self.0.upgrade() else { return };
        match change {
            FollowState::Up => {
                tracing::info!("following the log");
                core.live.store(true, Ordering::Release);
                core.metrics.log_up.set(1);
                core.metrics.log_event("up");
            }
            FollowState::Down(err) => {
                tracing::warn!(%err, "the log is unreachable; publishes answer 503 until it returns");
                core.live.store(false, Ordering::Release);
                core.metrics.log_up.set(0);
                core.metrics.log_event("down");
            }
            FollowState::Reset { epoch } => {
                tracing::warn!(
                    epoch = format_args!("{epoch:08x}"),
                    "the log's engine lost its data; a new log begins"
                );
                lock(&core.state).recent.reset();
                core.metrics.log_event("reset");
                core.announce_gap();
            }
            FollowState::Gap => {
                tracing::warn!("updates were dropped from the log before this node read them");
                core.metrics.log_event("gap");
                core.announce_gap();
            }
            _ => {}
        }
        core.advanced.notify_waiters();
    }
}

/// Publishes subscription events in the order they were queued.
async fn announce(core: Weak<Core>, mut queue: mpsc::UnboundedReceiver<NewUpdate>) {
    while let Some(update) = queue.recv().await {
        let Some(core) = core.upgrade() else { return };
        if let Err(err) = core.publish(update).await {
            tracing::debug!(%err, "subscription event not published");
        }
    }
}

impl Membership {
    /// The hub this membership is in.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Queues the subscription events of this subscriber's matchers.
    fn announce(&self, active: bool) {
        let Some(registry) = &self.core.active else {
            return;
        };
        if active {
            registry.add(&self.subscriptions);
        } else {
            registry.remove(&self.subscriptions);
        }
        for subscription in &self.subscriptions {
            // Private, and of the reserved type no publisher may use, so a
            // subscriber can trust it comes from the hub.
            let update = NewUpdate {
                topics: vec![subscription.topic().into()],
                data: subscription.event(active),
                private: true,
                event_type: Some(RESERVED_TYPE.to_owned()),
                ..NewUpdate::default()
            };
            let _ = self.core.announcements.send(update);
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.core.leave_locked(&mut lock(&self.core.state), &key);
            self.core.metrics.connections.dec();
            self.core.metrics.subscriptions.dec_by(self.matchers);
            self.announce(false);
        }
    }
}
