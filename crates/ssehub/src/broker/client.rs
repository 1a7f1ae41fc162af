//! [`Client`]: one connected client of a broker.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::sync::{self, lock};
use std::task::Waker;

use bytes::Bytes;

use super::channel::ChannelInner;
use super::ids::ResumePoint;
use super::loan::SocketLoan;
use super::log::{Positioned, TakeError};
use super::policy::{GapReplay, OverflowPolicy};
use super::replica::{self, poll_once};
use super::stats::Counters;
use super::{BrokerError, BrokerInner};
use crate::error::SendError;
use crate::event::Event;
use crate::journal::{JournalId, ReplayFrom};
use crate::stream::{Chunk, Feed, Overflowed, PushError, Sender};

/// A client's identifier, unique within its broker.
///
/// ```
/// let broker = ssehub::broker::Broker::new();
/// let (a, _body_a) = broker.connect(None).unwrap();
/// let (b, _body_b) = broker.connect(None).unwrap();
/// assert_ne!(a.id(), b.id());
/// assert_eq!(a.id().to_string(), a.id().get().to_string());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

impl ClientId {
    pub(crate) fn new(id: u64) -> Self {
        Self(id)
    }

    /// The id as a number.
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// assert!(client.id().get() > 0);
    /// ```
    #[must_use]
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

type Metadata = HashMap<String, Arc<dyn Any + Send + Sync>>;

/// A subscription: a channel and the client's slot in its log.
struct Cursor {
    channel: Arc<ChannelInner>,
    key: usize,
}

/// Whether a client's reconnect was resumed exactly.
///
/// ```
/// use ssehub::broker::{Broker, ResumeStatus};
///
/// let broker = Broker::new();
/// let (fresh, _a) = broker.connect(None).unwrap();
/// assert_eq!(fresh.resume_status(), ResumeStatus::NotRequested);
/// let (stranger, _b) = broker.connect(Some("not-an-id-we-issued".into())).unwrap();
/// assert_eq!(stranger.resume_status(), ResumeStatus::Gap);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumeStatus {
    /// The client sent no `Last-Event-ID`.
    NotRequested,
    /// Everything it missed on its channels is being replayed.
    Complete,
    /// Its id is unknown, or events after it were evicted from history on
    /// a channel it subscribed to (see [`GapPolicy`](super::GapPolicy)).
    Gap,
    /// With a [journal](super::BrokerConfig::journal): the id is older than
    /// the broker's window of recent records, and the journal is being read
    /// to tell. It becomes `Complete` or `Gap` once the first page is read
    /// (await [`Client::resumed`]); either way nothing is lost silently, as
    /// a gap is also signalled by the gap event. [`Broker::handle_request`](super::Broker::handle_request)
    /// sends no [`RESUME_HEADER`](super::RESUME_HEADER) then.
    Pending,
}

/// Why a resume has a gap; the `reason` of the gap event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GapReason {
    UnknownId,
    HistoryLost,
}

/// A reconnecting client's resume, active until its connection first runs.
#[derive(Debug)]
struct PendingResume {
    point: Option<ResumePoint>,
    active: bool,
    gap: Option<GapReason>,
    signaled: bool,
    journal: JournalResume,
}

/// Where a resume from a journal is (see `replica.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not a resume from a journal.
    Off,
    /// Its setup runs: subscriptions start paused and are resumed.
    Open,
    /// Reading the journal; whether there is a gap is not known yet.
    Reading,
    /// Replaying; the status is known.
    Replaying,
    /// Replay and live stream met: the subscriptions run.
    Done,
}

#[derive(Debug)]
struct JournalResume {
    phase: Phase,
    /// The channels subscribed during the setup, resumed.
    channels: Vec<Arc<str>>,
    /// Replayed frames, written before anything from the channel logs.
    frames: VecDeque<Bytes>,
}

pub(crate) struct ClientInner {
    id: ClientId,
    broker: Weak<BrokerInner>,
    /// The direct queue, for [`Client::send`]; closing it ends the response.
    sender: Sender,
    /// Channel subscriptions. Lock order: a client's `subs`, then a
    /// channel's log; never the other way round.
    subs: Mutex<Vec<Cursor>>,
    metadata: Mutex<Metadata>,
    counters: Arc<Counters>,
    policy: OverflowPolicy,
    /// The broker's publish watermark (see `log.rs`).
    watermark: Arc<sync::atomic::AtomicU64>,
    /// Lock order: after a channel's log (it is locked inside `Log::subscribe`).
    resume: Mutex<PendingResume>,
    /// Set on the connection's first poll, which ends the resume window.
    started: AtomicBool,
    /// A resume from a journal is not done, or its frames not all taken:
    /// the connection looks at `resume` before its channels.
    resuming: AtomicBool,
    /// Notified when a journal resume's status is known, its frames were
    /// taken, or the client is gone.
    resume_changed: tokio::sync::Notify,
    /// Set once the client has been unregistered (the disconnect hook ran).
    gone: AtomicBool,
    /// Its connection's outlet, which an edge that can lends its socket
    /// to (see `loan.rs`, `outlet.rs`).
    loan: SocketLoan,
}

/// One client connected to a [`Broker`](super::Broker): the Go `*Client`.
///
/// A cheap handle (clone it freely). A client receives everything broadcast
/// on the broker, everything published on the channels it subscribes to,
/// and what is sent to it directly. When its connection ends it leaves every
/// channel and the broker forgets it; sends then fail with
/// [`SendError::Closed`].
///
/// ```
/// use ssehub::broker::Broker;
///
/// let broker = Broker::new();
/// let (client, _body) = broker.connect(None).unwrap();
/// client.set("user_id", String::from("alice"));
/// client.subscribe("user:alice").unwrap();
/// assert!(client.in_channel("user:alice"));
/// assert_eq!(client.get_string("user_id").as_deref(), Some("alice"));
/// client.send_data("only for this tab").unwrap();
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

impl Client {
    pub(crate) fn new(
        id: ClientId,
        broker: &Arc<BrokerInner>,
        sender: Sender,
        resume: Option<ResumePoint>,
    ) -> Self {
        let journal_resume = broker.replica.is_some() && resume.is_some();
        Self {
            inner: Arc::new(ClientInner {
                id,
                broker: Arc::downgrade(broker),
                sender,
                subs: Mutex::new(Vec::new()),
                metadata: Mutex::new(HashMap::new()),
                counters: broker.counters.clone(),
                policy: broker.config.overflow,
                watermark: broker.watermark.clone(),
                resume: Mutex::new(PendingResume {
                    point: resume,
                    active: resume.is_some(),
                    gap: None,
                    signaled: false,
                    journal: JournalResume {
                        phase: if journal_resume {
                            Phase::Open
                        } else {
                            Phase::Off
                        },
                        channels: Vec::new(),
                        frames: VecDeque::new(),
                    },
                }),
                started: AtomicBool::new(false),
                resuming: AtomicBool::new(journal_resume),
                resume_changed: tokio::sync::Notify::new(),
                gone: AtomicBool::new(false),
                loan: SocketLoan::for_client(&broker.writers, id.get()),
            }),
        }
    }

    /// Whether this client's reconnect is resumed exactly. Final once the
    /// setup of [`Broker::handle_request`](super::Broker::handle_request)
    /// has run (subscriptions made later are not resumed).
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(Some(ssehub::broker::EARLIEST.into())).unwrap();
    /// assert_eq!(client.resume_status(), ssehub::broker::ResumeStatus::Complete);
    /// ```
    ///
    /// With a [journal](super::BrokerConfig::journal) the status may be
    /// [`ResumeStatus::Pending`] (before the setup ended, or while the
    /// journal is read): see [`resumed`](Self::resumed).
    #[must_use]
    pub fn resume_status(&self) -> ResumeStatus {
        let resume = lock(&self.inner.resume);
        match (resume.point, resume.gap, resume.journal.phase) {
            (None, _, _) => ResumeStatus::NotRequested,
            (Some(_), Some(_), _) => ResumeStatus::Gap,
            (Some(_), None, Phase::Open | Phase::Reading) => ResumeStatus::Pending,
            (Some(_), None, _) => ResumeStatus::Complete,
        }
    }

    /// Ends the setup's resume window (subscriptions made from now on are
    /// live only) and waits until the resume's status is known: what
    /// [`resume_status`](Self::resume_status) says once it is not
    /// [`Pending`](ResumeStatus::Pending). For a server that builds its
    /// response itself after [`Broker::connect`](super::Broker::connect) and
    /// wants an exact [`RESUME_HEADER`](super::RESUME_HEADER) even when the
    /// journal must be read. Without a journal it returns at once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// use ssehub::broker::{Broker, BrokerConfig, ResumeStatus};
    /// use ssehub::journal::MemoryJournal;
    ///
    /// let broker = Broker::with_config(BrokerConfig::default().journal(Arc::new(MemoryJournal::default())));
    /// let news = broker.channel("news").unwrap();
    /// let first = news.publish(ssehub::Event::new("one")).await.unwrap();
    /// news.publish(ssehub::Event::new("two")).await.unwrap();
    ///
    /// let (client, _body) = broker.connect(first.id).unwrap();
    /// client.subscribe("news").unwrap();
    /// assert_eq!(client.resumed().await, ResumeStatus::Complete);
    /// # }
    /// ```
    pub async fn resumed(&self) -> ResumeStatus {
        self.inner.seal();
        loop {
            let changed = self.inner.resume_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let status = self.resume_status();
            if status != ResumeStatus::Pending || self.inner.is_gone() {
                return status;
            }
            changed.await;
        }
    }

    pub(crate) fn from_inner(inner: Arc<ClientInner>) -> Self {
        Self { inner }
    }

    /// The client's id (Go `ID`).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// println!("client {}", client.id());
    /// ```
    #[must_use]
    pub fn id(&self) -> ClientId {
        self.inner.id
    }

    /// The `Last-Event-ID` the client sent when it connected (Go `LastEventID`).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(Some("17".into())).unwrap();
    /// assert_eq!(client.last_event_id(), Some("17"));
    /// ```
    #[must_use]
    pub fn last_event_id(&self) -> Option<&str> {
        self.inner.sender.last_event_id()
    }

    /// The client's own stream (Go `Stream()`): send with backpressure
    /// ([`Sender::send`] waits for room in this client's queue), or wait for
    /// the end with [`Sender::closed`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// client.stream().send_data("waits for room if the queue is full").await.unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn stream(&self) -> &Sender {
        &self.inner.sender
    }

    /// Stores a value under `key` (Go `Set`); any `Send + Sync + 'static` type.
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// # let (client, _body) = broker.connect(None).unwrap();
    /// #[derive(Debug, PartialEq)]
    /// struct Role { admin: bool }
    /// client.set("role", Role { admin: true });
    /// assert_eq!(client.get::<Role>("role").unwrap().admin, true);
    /// ```
    pub fn set<T: Any + Send + Sync>(&self, key: impl Into<String>, value: T) {
        lock(&self.inner.metadata).insert(key.into(), Arc::new(value));
    }

    /// The value stored under `key`, if there is one of type `T` (Go `Get`).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// # let (client, _body) = broker.connect(None).unwrap();
    /// client.set("visits", 3u32);
    /// assert_eq!(client.get::<u32>("visits").as_deref(), Some(&3));
    /// assert!(client.get::<String>("visits").is_none()); // wrong type
    /// ```
    #[must_use]
    pub fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        let value = lock(&self.inner.metadata).get(key)?.clone();
        value.downcast::<T>().ok()
    }

    /// The value under `key` as a string, if it is a `String` or a
    /// `&'static str` (Go `GetString`).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// # let (client, _body) = broker.connect(None).unwrap();
    /// client.set("role", "admin");
    /// assert_eq!(client.get_string("role").as_deref(), Some("admin"));
    /// assert_eq!(client.get_string("missing"), None);
    /// ```
    #[must_use]
    pub fn get_string(&self, key: &str) -> Option<String> {
        let value = lock(&self.inner.metadata).get(key)?.clone();
        if let Some(s) = value.downcast_ref::<String>() {
            return Some(s.clone());
        }
        value
            .downcast_ref::<&'static str>()
            .map(|s| (*s).to_owned())
    }

    /// Sends an event to this client only (Go `Send`), without waiting.
    ///
    /// When the client's queue is full the broker's
    /// [`OverflowPolicy`] applies: `Disconnect` closes the client and
    /// returns [`SendError::Closed`]; `DropOldest` and `DropNewest` drop an
    /// event (counted in [`BrokerStats::dropped`](super::BrokerStats::dropped)) and return `Ok`.
    ///
    /// # Errors
    /// [`SendError::Closed`] when the client is gone, [`SendError::Invalid`]
    /// for an event that cannot be encoded.
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// client.send(ssehub::Event::with_type("hello", "just you")).unwrap();
    /// ```
    pub fn send(&self, event: Event) -> Result<(), SendError> {
        self.send_frame(event.encode()?)
    }

    /// Sends an encoded frame to this client only; see [`send`](Self::send).
    ///
    /// # Errors
    /// [`SendError::Closed`] when the client is gone.
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// let frame = ssehub::Event::new("pre-encoded").encode().unwrap();
    /// client.send_frame(frame).unwrap();
    /// ```
    pub fn send_frame(&self, frame: Bytes) -> Result<(), SendError> {
        let shared = self.inner.sender.shared();
        let result = match shared.try_push(frame.clone()) {
            Err(PushError::Full) => match self.inner.policy {
                OverflowPolicy::Disconnect => {
                    Counters::add(&self.inner.counters.slow_disconnects, 1);
                    tracing::debug!(client = %self.id(), "client queue full: disconnecting");
                    self.close();
                    Err(SendError::Closed)
                }
                OverflowPolicy::DropNewest => {
                    Counters::add(&self.inner.counters.dropped, 1);
                    Ok(())
                }
                OverflowPolicy::DropOldest => {
                    let evicted = shared.push_evicting(frame);
                    Counters::add(&self.inner.counters.dropped, evicted);
                    Ok(())
                }
            },
            Err(PushError::Closed) => Err(SendError::Closed),
            Ok(()) => Ok(()),
        };
        if result.is_ok() {
            // A direct send is published and handed to its one client at once.
            Counters::add(&self.inner.counters.published, 1);
            Counters::add(&self.inner.counters.delivered, 1);
        }
        result
    }

    /// Sends a `message` event with `data` to this client (Go `SendData`).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// # let (client, _body) = broker.connect(None).unwrap();
    /// client.send_data("hello").unwrap();
    /// ```
    pub fn send_data(&self, data: impl Into<String>) -> Result<(), SendError> {
        self.send(Event::new(data))
    }

    /// Sends an event of type `event` to this client (Go `SendEvent`).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// # let (client, _body) = broker.connect(None).unwrap();
    /// client.send_event("notification", "New message").unwrap();
    /// ```
    pub fn send_event(
        &self,
        event: impl Into<String>,
        data: impl Into<String>,
    ) -> Result<(), SendError> {
        self.send(Event::with_type(event, data))
    }

    /// Sends `value` as JSON in an event of type `event` (Go `SendJSON`).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// # let (client, _body) = broker.connect(None).unwrap();
    /// client.send_json("update", &serde_json::json!({"count": 42})).unwrap();
    /// ```
    #[cfg(feature = "json")]
    pub fn send_json<T: serde::Serialize + ?Sized>(
        &self,
        event: impl Into<String>,
        value: &T,
    ) -> Result<(), SendError> {
        self.send(Event::json(event, value)?)
    }

    /// Subscribes to channel `name`, creating it if needed (Go `Subscribe`).
    /// Subscribing twice is a no-op. The client receives what is published
    /// on the channel from now on.
    ///
    /// # Errors
    /// [`BrokerError::Closed`] when the broker is closed or the client gone.
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// client.subscribe("news").unwrap();
    /// assert_eq!(client.channels(), vec!["news".to_string()]);
    /// ```
    pub fn subscribe(&self, name: &str) -> Result<(), BrokerError> {
        let broker = self.inner.broker.upgrade().ok_or(BrokerError::Closed)?;
        loop {
            let channel = broker.channel_inner(name)?;
            match self.attach(&channel) {
                // The channel was deleted between lookup and subscription:
                // look it up again, which creates a fresh one.
                Err(BrokerError::ChannelNotFound) => continue,
                other => return other,
            }
        }
    }

    /// Adds a subscription to `channel` unless there is one.
    pub(crate) fn attach(&self, channel: &Arc<ChannelInner>) -> Result<(), BrokerError> {
        let mut subs = lock(&self.inner.subs);
        if self.inner.gone.load(Ordering::Acquire) {
            return Err(BrokerError::Closed);
        }
        if subs.iter().any(|c| Arc::ptr_eq(&c.channel, channel)) {
            return Ok(());
        }
        let key = channel
            .log
            .subscribe(
                Arc::downgrade(&self.inner),
                self.inner.loan.outlet().clone(),
                |until| self.inner.replay_for(channel, until),
            )
            .map_err(|_| BrokerError::ChannelNotFound)?;
        subs.push(Cursor {
            channel: channel.clone(),
            key,
        });
        drop(subs);
        self.inner.signal_gap();
        // The connection may be parked waiting on its other subscriptions:
        // wake it so it starts waiting on this one too.
        self.inner.sender.shared().wake_body();
        Ok(())
    }

    /// Leaves channel `name` (Go `Unsubscribe`).
    ///
    /// # Errors
    /// [`BrokerError::ChannelNotFound`] when the client is not in that channel.
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// client.subscribe("news").unwrap();
    /// client.unsubscribe("news").unwrap();
    /// assert!(!client.in_channel("news"));
    /// ```
    pub fn unsubscribe(&self, name: &str) -> Result<(), BrokerError> {
        let mut subs = lock(&self.inner.subs);
        let index = subs
            .iter()
            .position(|c| !c.channel.hidden && &*c.channel.name == name)
            .ok_or(BrokerError::ChannelNotFound)?;
        let cursor = subs.swap_remove(index);
        drop(subs);
        cursor.channel.log.unsubscribe(cursor.key);
        Ok(())
    }

    /// Removes the subscription to `channel`, if any; true if there was one.
    pub(crate) fn detach(&self, channel: &Arc<ChannelInner>) -> bool {
        let mut subs = lock(&self.inner.subs);
        let Some(index) = subs.iter().position(|c| Arc::ptr_eq(&c.channel, channel)) else {
            return false;
        };
        let cursor = subs.swap_remove(index);
        drop(subs);
        cursor.channel.log.unsubscribe(cursor.key);
        true
    }

    /// Forgets the subscription to a deleted channel (its log already
    /// dropped every subscriber).
    pub(crate) fn forget(&self, channel: &Arc<ChannelInner>) {
        lock(&self.inner.subs).retain(|c| !Arc::ptr_eq(&c.channel, channel));
    }

    /// Names of the channels the client is in (Go `Channels`).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// client.subscribe("a").unwrap();
    /// client.subscribe("b").unwrap();
    /// let mut names = client.channels();
    /// names.sort();
    /// assert_eq!(names, ["a", "b"]);
    /// ```
    #[must_use]
    pub fn channels(&self) -> Vec<String> {
        lock(&self.inner.subs)
            .iter()
            .filter(|c| !c.channel.hidden)
            .map(|c| c.channel.name.to_string())
            .collect()
    }

    /// Whether the client is in channel `name` (Go `InChannel`).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// assert!(!client.in_channel("news"));
    /// ```
    #[must_use]
    pub fn in_channel(&self, name: &str) -> bool {
        lock(&self.inner.subs)
            .iter()
            .any(|c| !c.channel.hidden && &*c.channel.name == name)
    }

    pub(crate) fn has_channel(&self, channel: &Arc<ChannelInner>) -> bool {
        lock(&self.inner.subs)
            .iter()
            .any(|c| Arc::ptr_eq(&c.channel, channel))
    }

    /// Whether the client is gone (disconnected or closed).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let (client, body) = broker.connect(None).unwrap();
    /// drop(body);
    /// assert!(client.is_closed());
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.inner.sender.is_closed()
    }

    /// Resolves once the client is gone (Go `Done`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let broker = ssehub::broker::Broker::new();
    /// let (client, body) = broker.connect(None).unwrap();
    /// drop(body);
    /// client.closed().await;
    /// # }
    /// ```
    pub async fn closed(&self) {
        self.inner.sender.closed().await;
    }

    /// Disconnects the client (Go `Close`): it leaves every channel at once,
    /// and its HTTP response ends after what is already queued for it.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// client.close();
    /// assert!(client.is_closed());
    /// assert_eq!(broker.clients(), 0);
    /// ```
    pub fn close(&self) {
        self.inner.sender.close();
        self.inner.unregister();
    }
}

impl ClientInner {
    /// History of `channel` up to position `until` that this client missed,
    /// while its resume window is open. Runs under the channel log's lock.
    ///
    /// Resuming from a journal, the subscription starts paused instead and
    /// the channel is noted for the journal replay.
    fn replay_for(&self, channel: &ChannelInner, until: u64) -> (Vec<Positioned>, bool) {
        let mut resume = lock(&self.resume);
        let Some(point) = resume.point.filter(|_| resume.active) else {
            return (Vec::new(), false);
        };
        if resume.journal.phase == Phase::Open {
            if !channel.hidden {
                resume.journal.channels.push(channel.name.clone());
            }
            return (Vec::new(), true);
        }
        let Some(broker) = self.broker.upgrade() else {
            return (Vec::new(), false);
        };
        let history = &broker.history;
        let exact = match point {
            ResumePoint::After(position) => history
                .replay(&channel.name, Some(position), until)
                .map_err(|_| GapReason::HistoryLost),
            ResumePoint::Earliest => Ok(history
                .replay(&channel.name, None, until)
                .unwrap_or_default()),
            ResumePoint::Unknown | ResumePoint::Journal(_) => Err(GapReason::UnknownId),
        };
        let entries = match exact {
            Ok(entries) => entries,
            Err(reason) => {
                resume.gap.get_or_insert(reason);
                match broker.config.gap.replay {
                    GapReplay::AllRetained => history
                        .replay(&channel.name, None, until)
                        .unwrap_or_default(),
                    _ => Vec::new(),
                }
            }
        };
        let entries = entries.into_iter().map(|e| (e.position, e.frame)).collect();
        (entries, false)
    }

    /// Sends the gap event, once, if the resume has a gap.
    fn signal_gap(&self) {
        let mut resume = lock(&self.resume);
        let Some(reason) = resume.gap.filter(|_| !resume.signaled) else {
            return;
        };
        resume.signaled = true;
        let last_event_id = self.sender.last_event_id().unwrap_or_default();
        drop(resume);
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        if !broker.config.gap.event {
            return;
        }
        // The direct queue is written before any channel frame, so the
        // signal precedes whatever is replayed or live.
        if let Ok(frame) = replica::gap_event(last_event_id, reason).encode() {
            let _ = self.sender.shared().try_push(frame);
        }
    }

    /// Whether the client is gone (its connection ended or it was closed).
    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire) || self.sender.is_closed()
    }

    /// Ends the resume window. Resuming from a journal, this starts the
    /// resume: at once from the broker's window when it holds the id, else
    /// by reading the journal (see `replica.rs`). Called with no lock held;
    /// only the first call does anything.
    pub(crate) fn seal(self: &Arc<Self>) {
        let point = {
            let mut resume = lock(&self.resume);
            if resume.journal.phase != Phase::Open {
                return;
            }
            resume.active = false;
            resume.point
        };
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let Some(replica) = &broker.replica else {
            return;
        };
        match point {
            Some(ResumePoint::Journal(id)) => {
                let publishing = lock(&broker.publishing);
                let window = lock(&replica.window);
                if window.epoch().is_some_and(|epoch| epoch != id.epoch) {
                    // Not of the journal's current epoch: certainly unknown.
                    drop(window);
                    drop(publishing);
                    self.resume_unknown(&broker);
                } else if let Some(records) = window.after(id) {
                    let channels = self.journal_channels();
                    self.push_replay(records.filter_map(|r| replica::replay_frame(r, &channels)));
                    self.finish_resume(true);
                } else {
                    drop(window);
                    drop(publishing);
                    lock(&self.resume).journal.phase = Phase::Reading;
                    Counters::add(&self.counters.journal_resume_reads, 1);
                    self.start_resume(&broker, ReplayFrom::After(id), Some(id));
                }
            }
            Some(ResumePoint::Earliest) => {
                lock(&self.resume).journal.phase = Phase::Replaying;
                Counters::add(&self.counters.journal_resume_reads, 1);
                self.start_resume(&broker, ReplayFrom::Earliest, None);
            }
            _ => self.resume_unknown(&broker),
        }
        self.signal_gap();
        self.resume_changed.notify_waiters();
        self.sender.shared().wake_body();
    }

    /// A resume after an id that is no journal id of the current epoch.
    fn resume_unknown(self: &Arc<Self>, broker: &Arc<BrokerInner>) {
        lock(&self.resume).gap.get_or_insert(GapReason::UnknownId);
        match broker.config.gap.replay {
            GapReplay::AllRetained => {
                lock(&self.resume).journal.phase = Phase::Replaying;
                Counters::add(&self.counters.journal_resume_reads, 1);
                self.start_resume(broker, ReplayFrom::Earliest, None);
            }
            _ => {
                let _publishing = lock(&broker.publishing);
                self.finish_resume(false);
            }
        }
    }

    /// Runs the journal resume: inline as far as it gets without waiting (a
    /// memory journal's reads are ready at once), the rest on the runtime.
    fn start_resume(
        self: &Arc<Self>,
        broker: &Arc<BrokerInner>,
        from: ReplayFrom,
        after: Option<JournalId>,
    ) {
        let mut task = Box::pin(replica::resume(self.clone(), broker.clone(), from, after));
        if poll_once(&mut task).is_ready() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(task);
            }
            Err(_) => {
                Counters::add(&self.counters.journal_resume_errors, 1);
                tracing::warn!(client = %self.id, "journal: resuming needs a Tokio runtime; disconnecting the client");
                self.abandon_resume();
            }
        }
    }

    /// The channels a journal resume covers.
    pub(crate) fn journal_channels(&self) -> Vec<Arc<str>> {
        lock(&self.resume).journal.channels.clone()
    }

    /// Queues replayed frames; returns how many are queued.
    pub(crate) fn push_replay(&self, frames: impl Iterator<Item = Bytes>) -> usize {
        let mut resume = lock(&self.resume);
        resume.journal.frames.extend(frames);
        let queued = resume.journal.frames.len();
        drop(resume);
        if queued > 0 {
            self.sender.shared().wake_body();
        }
        queued
    }

    /// Waits until at most `limit` replayed frames wait; false if the client
    /// is gone.
    pub(crate) async fn drained_below(&self, limit: usize) -> bool {
        loop {
            let changed = self.resume_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.is_gone() {
                return false;
            }
            if lock(&self.resume).journal.frames.len() <= limit {
                return true;
            }
            // A timeout too: a connection that stopped polling is noticed.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), changed).await;
        }
    }

    /// The resume has a gap; the gap event is sent (once).
    pub(crate) fn resume_gap(&self, reason: GapReason) {
        lock(&self.resume).gap.get_or_insert(reason);
        self.signal_gap();
        self.resume_changed.notify_waiters();
    }

    /// The journal answered: whether the resume has a gap is known.
    pub(crate) fn resume_known(&self) {
        let mut resume = lock(&self.resume);
        if resume.journal.phase == Phase::Reading {
            resume.journal.phase = Phase::Replaying;
        }
        drop(resume);
        self.resume_changed.notify_waiters();
    }

    /// Replay and live stream meet: the paused subscriptions run, having
    /// skipped what their logs hold when `skip` (it was replayed). The
    /// caller holds the broker's publishing lock.
    pub(crate) fn finish_resume(&self, skip: bool) {
        for cursor in lock(&self.subs).iter() {
            cursor.channel.log.release(cursor.key, skip);
        }
        lock(&self.resume).journal.phase = Phase::Done;
        self.resume_changed.notify_waiters();
        self.sender.shared().wake_body();
    }

    /// The resume cannot be done: the client is disconnected, so it
    /// reconnects and tries again (perhaps on another replica).
    pub(crate) fn abandon_resume(self: &Arc<Self>) {
        self.sender.close();
        self.unregister();
    }

    /// Leaves every channel, leaves the broker and runs the disconnect hook;
    /// only the first call does anything.
    pub(crate) fn unregister(self: &Arc<Self>) {
        if self.gone.swap(true, Ordering::AcqRel) {
            return;
        }
        self.resume_changed.notify_waiters();
        let cursors = std::mem::take(&mut *lock(&self.subs));
        for cursor in cursors {
            cursor.channel.log.unsubscribe(cursor.key);
        }
        if let Some(broker) = self.broker.upgrade() {
            broker.forget_client(self.id);
            if let Some(hook) = &broker.config.on_disconnect {
                hook(&Client::from_inner(self.clone()));
            }
        }
        tracing::debug!(client = %self.id, "client gone");
    }
}

impl Feed for Arc<ClientInner> {
    fn poll_feed(&self, waker: &Waker, chunk: &mut Chunk) -> Result<(), Overflowed> {
        if !self.started.swap(true, Ordering::AcqRel) {
            // The connection runs: subscriptions from now on start live.
            lock(&self.resume).active = false;
            self.seal();
        }
        if self.resuming.load(Ordering::Acquire) {
            let mut resume = lock(&self.resume);
            let frames = std::mem::take(&mut resume.journal.frames);
            let replayed = frames.len() as u64;
            for frame in frames {
                chunk.push(frame);
            }
            let done = resume.journal.phase == Phase::Done;
            if done {
                // Set under the lock that `finish_resume` takes after its
                // last frames: nothing is queued behind this.
                self.resuming.store(false, Ordering::Release);
            }
            drop(resume);
            Counters::add(&self.counters.delivered, replayed);
            if replayed > 0 {
                self.resume_changed.notify_waiters();
            }
            if !done {
                // The resume wakes the connection when it has more.
                return Ok(());
            }
        }
        // Read before any log: every frame below it is already appended.
        let watermark = self.watermark.load(Ordering::Acquire);
        let mut deferred = false;
        let mut subs = lock(&self.subs);
        let mut delivered = 0;
        let mut dropped = 0;
        let mut result = Ok(());
        let mut sources = 0;
        let mut gathered = Vec::new();
        subs.retain(|cursor| {
            match cursor
                .channel
                .log
                .take(cursor.key, waker, watermark, &mut gathered)
            {
                Ok(taken) => {
                    delivered += taken.delivered;
                    dropped += taken.dropped;
                    deferred |= taken.deferred;
                    sources += usize::from(taken.delivered > 0);
                    true
                }
                Err(TakeError::Deleted) => false,
                Err(TakeError::Overflowed) => {
                    result = Err(Overflowed);
                    true
                }
            }
        });
        drop(subs);
        // Frames from several channels go out in the order they were
        // published; each channel's own frames are already in order.
        if sources > 1 {
            gathered.sort_by_key(|(position, _)| *position);
            // One publish on several of this client's channels shares a
            // position: deliver it once.
            let before = gathered.len();
            gathered.dedup_by_key(|(position, _)| *position);
            delivered -= (before - gathered.len()) as u64;
        }
        for (_, frame) in gathered {
            chunk.push(frame);
        }
        if deferred {
            // Frames left above the watermark were not waited for: poll again.
            waker.wake_by_ref();
        }
        Counters::add(&self.counters.delivered, delivered);
        Counters::add(&self.counters.dropped, dropped);
        if result.is_err() {
            Counters::add(&self.counters.slow_disconnects, 1);
            tracing::debug!(client = %self.id, "client fell behind: disconnecting");
        }
        result
    }

    fn finished(&self) {
        self.unregister();
    }

    fn last_direct_write(&self) -> Option<tokio::time::Instant> {
        self.loan.last_write()
    }

    fn extend_response(&self, extensions: &mut http::Extensions) {
        // For the lean server, which may lend the socket to the broker.
        extensions.insert(self.loan.clone());
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.inner.id)
            .field("last_event_id", &self.last_event_id())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
