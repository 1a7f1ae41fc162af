//! The hub core: publishing an update, joining a subscriber to its group,
//! replaying history on reconnection, leaving.
//!
//! One mutex (`state`) orders everything that must not interleave: a
//! publish (sequence number, history, group appends) and a subscriber's
//! join (group membership, replay). A joining subscriber therefore gets
//! exactly the updates after its `Last-Event-ID` from history and every
//! later one live, with no gap and no duplicate, while publishers publish.
//! The lock is held for map lookups and pointer moves; the fan-out to
//! sockets happens in the broker, outside it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use ssehub::broker::{Broker, BrokerConfig, Client, HistoryConfig, OverflowPolicy};
use ssehub::{BrokerError, Event, SseBody};
use tokio::time::Instant;
use url::Url;

use crate::auth::Grants;
use crate::body::first_generated_seq;
use crate::groups::{Group, GroupKey, Groups, key_of};
use crate::history::{Bounds, History, Resume, Update, format_id};
use crate::matcher::Matcher;
use crate::metrics::{Metrics, ReplayLabels};
use crate::request::publish::RESERVED_TYPE;
use crate::subscriptions::{ActiveSubscriptions, Subscription};
use crate::sync::lock;

/// The `Mercure-Last-Event-ID` response value when the resume point is not
/// (or no longer) known, or everything was asked for.
pub(crate) const EARLIEST: &str = ssehub::broker::EARLIEST;

/// An update as a publisher asked for it, validated.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewUpdate {
    pub topics: Vec<Arc<str>>,
    pub data: String,
    pub id: Option<String>,
    pub event_type: Option<String>,
    pub retry: Option<Duration>,
    pub private: bool,
}

/// How the hub's core is tuned.
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    pub base: Url,
    pub history: Bounds,
    pub keep_alive: Duration,
    pub client_buffer: usize,
    pub client_buffer_bytes: usize,
    pub subscriptions: bool,
}

/// State shared by every request.
#[derive(Debug)]
pub(crate) struct Core {
    pub broker: Broker,
    pub base: Url,
    pub metrics: Metrics,
    pub active: Option<ActiveSubscriptions>,
    epoch: u32,
    state: Mutex<State>,
    groups: Arc<AtomicUsize>,
    replay_events: usize,
    replay_bytes: usize,
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    last_id: Option<Arc<str>>,
    history: History,
    groups: Groups,
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

impl Core {
    pub fn new(config: &CoreConfig) -> Arc<Self> {
        Arc::new_cyclic(|core: &Weak<Core>| Self::with_self(config, core.clone()))
    }

    fn with_self(config: &CoreConfig, core: Weak<Core>) -> Self {
        let broker = Broker::with_config(
            BrokerConfig::default()
                .keep_alive(Some(config.keep_alive))
                .client_buffer_events(config.client_buffer)
                .client_buffer_bytes(config.client_buffer_bytes)
                .overflow(OverflowPolicy::Disconnect)
                // The hub keeps its own history (filtered per subscriber)
                // and writes its own ids into each frame.
                .history(HistoryConfig::disabled())
                .generate_ids(false)
                // Updates the broker's writer puts straight on sleeping
                // subscribers' sockets never pass through `HubBody`: they
                // are timed here.
                .on_direct_write(move |frame, count| {
                    if let Some(core) = core.upgrade()
                        && let Some(seq) = first_generated_seq(frame, core.epoch)
                    {
                        core.metrics.written(seq, count);
                    }
                }),
        );
        let groups = Arc::new(AtomicUsize::new(0));
        let epoch = new_epoch();
        Self {
            metrics: Metrics::new(broker.clone(), groups.clone()),
            broker,
            base: config.base.clone(),
            active: config.subscriptions.then(ActiveSubscriptions::default),
            epoch,
            state: Mutex::new(State {
                next_seq: 1,
                last_id: None,
                history: History::new(config.history, epoch),
                groups: Groups::default(),
            }),
            groups,
            // Leave room for live updates behind a full replay.
            replay_events: config
                .client_buffer
                .saturating_sub(config.client_buffer / 8)
                .max(1),
            replay_bytes: config.client_buffer_bytes - config.client_buffer_bytes / 8,
        }
    }

    /// The hub's epoch, part of every generated id.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The id of the last update published, or `earliest`.
    pub fn last_event_id(&self) -> String {
        lock(&self.state)
            .last_id
            .as_deref()
            .unwrap_or(EARLIEST)
            .to_owned()
    }

    /// Publishes an update; returns its id.
    ///
    /// # Errors
    /// [`BrokerError::Closed`] while shutting down; [`BrokerError::Invalid`]
    /// if a field cannot be encoded (the request parser refuses those
    /// first).
    pub fn publish(&self, new: NewUpdate) -> Result<Arc<str>, BrokerError> {
        if self.broker.is_closed() {
            return Err(BrokerError::Closed);
        }
        let mut state = lock(&self.state);
        let seq = state.next_seq;
        let caller_id = new.id.is_some();
        let id: Arc<str> = match new.id {
            Some(id) => id.into(),
            None => format_id(self.epoch, seq).into(),
        };
        let mut event = Event::new(new.data).with_id(&*id);
        if let Some(kind) = new.event_type {
            event = event.with_event(kind);
        }
        if let Some(retry) = new.retry {
            event = event.with_retry(retry);
        }
        let frame: Bytes = event.encode()?;
        let at = Instant::now();
        let update = Update {
            seq,
            id: id.clone(),
            topics: new.topics.into(),
            private: new.private,
            frame,
            at,
        };
        let channels = state.groups.targets(&update, &self.base);
        if !channels.is_empty() {
            // Groups leave under this lock, so their channels exist.
            self.broker
                .publish_frame_to(&channels, update.frame.clone())?;
        }
        state.next_seq = seq + 1;
        state.last_id = Some(id.clone());
        state.history.push(update, caller_id);
        drop(state);
        self.metrics.published.inc();
        self.metrics.published_at(seq, at);
        Ok(id)
    }

    /// Joins a subscriber: its group, its replay, its active subscriptions.
    /// Its id is the hub's, a random `urn:uuid:` per connection: clients
    /// can neither choose nor forge it, and it tells nothing of the token.
    ///
    /// # Errors
    /// [`BrokerError::Closed`] while shutting down.
    pub fn subscribe(
        self: &Arc<Self>,
        matchers: Vec<Matcher>,
        grants: Option<Grants>,
        last_event_id: Option<&str>,
    ) -> Result<Joined, BrokerError> {
        let subscriber = uuid::Uuid::new_v4().urn().to_string();
        let (client, body) = self.broker.connect(None)?;
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
        let mut state = lock(&self.state);
        let group = state.groups.join(key.clone(), |name| {
            Ok::<_, BrokerError>(Group {
                channel: self.broker.channel(&name)?,
                matchers,
                grants,
            })
        })?;
        self.groups.store(state.groups.len(), Ordering::Relaxed);
        if let Err(err) = client.subscribe(group.channel.name()) {
            self.leave_locked(&mut state, &key);
            return Err(err);
        }
        let response_id = last_event_id.map(|id| self.replay(&state, &group, &client, id));
        drop(state);
        self.metrics.connections.inc();
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

    /// Sends `group`'s share of history after `last_event_id` to `client`;
    /// returns the `Mercure-Last-Event-ID` response value: the requested id
    /// when everything after it was still retained (the subscriber lost
    /// nothing), else `earliest` (it asked for everything, or its id is
    /// unknown or too old: it should re-fetch).
    fn replay(&self, state: &State, group: &Group, client: &Client, last_event_id: &str) -> String {
        let after = match state.history.resume(last_event_id, state.next_seq) {
            Resume::After(seq) => Some(seq),
            Resume::Earliest => None,
            Resume::Unknown => {
                self.count_replay("miss");
                return EARLIEST.to_owned();
            }
        };
        // The newest visible updates that fit the client's buffer.
        let mut frames: Vec<&Update> = Vec::new();
        let (mut bytes, mut truncated) = (0, false);
        for update in state.history.since(after).rev() {
            if !group.sees(update, &self.base) {
                continue;
            }
            bytes += update.frame.len();
            if frames.len() == self.replay_events || bytes > self.replay_bytes {
                truncated = true;
                break;
            }
            frames.push(update);
        }
        for update in frames.iter().rev() {
            // The buffer was sized for this, so it cannot overflow; a client
            // that is already gone simply gets nothing.
            let _ = client.send_frame(update.frame.clone());
        }
        self.metrics.replayed.inc_by(frames.len() as u64);
        self.count_replay(if after.is_some() { "hit" } else { "earliest" });
        match after {
            Some(_) if !truncated => last_event_id.to_owned(),
            _ => EARLIEST.to_owned(),
        }
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
    /// all reconnect in the same instant, then closes the broker.
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
    }
}

impl Membership {
    /// The hub this membership is in.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Publishes the subscription events of this subscriber's matchers
    /// whose state changed.
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
            if let Err(err) = self.core.publish(update) {
                tracing::debug!(%err, "subscription event not published");
            }
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

/// A fresh epoch: differs between hub instances and across restarts.
fn new_epoch() -> u32 {
    rand::random()
}
