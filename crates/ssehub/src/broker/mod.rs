//! The [`Broker`]: many clients, named channels, broadcast — the Go
//! package's `Broker`, `Client` and `Channel`.
//!
//! # How an event reaches a client
//!
//! ```text
//! broadcast(Event) -> encode ONCE -> channel log (append, wake waiting clients)
//!     each connection, when polled: take every frame past its position -> one chunk -> socket
//! ```
//!
//! Every client is a position in the log of each channel it is in (see
//! `log.rs` for the design); the broker-wide [`Broker::broadcast`] goes
//! through a hidden channel every client is in. A publisher never waits for
//! a client. A client that falls further behind than its buffer is handled
//! by the [`OverflowPolicy`]: by default it is disconnected, so a browser
//! reconnects with `Last-Event-ID`.
//!
//! # Lifecycle
//!
//! A connection registers a [`Client`], runs [`BrokerConfig::on_connect`],
//! then the setup given to [`Broker::handle_request`], and only then
//! returns the response — so no event reaches the client before both ran.
//! When the connection ends (client gone, [`Client::close`],
//! [`Broker::close`]) the client leaves every channel, the broker forgets it
//! and [`BrokerConfig::on_disconnect`] runs, exactly once.
//!
//! # Locks
//!
//! Every lock is a `std::sync::Mutex` held for a few pointer moves and never
//! across an `.await`. Order: the broker's maps, then a client's
//! subscriptions, then a channel's log; a lock is never taken while one
//! later in that order is held. Hooks and `for_each` callbacks run with no
//! lock held.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use ssehub::broker::Broker;
//!
//! let broker = Broker::new();
//! let request = http::Request::get("/notifications").body(()).unwrap();
//! let (parts, ()) = request.into_parts();
//! let response = broker.handle_request(&parts, |client| {
//!     client.subscribe("user:alice").unwrap();
//!     client.subscribe("broadcast").unwrap();
//! });
//! assert_eq!(response.status(), 200);
//! broker.channel("user:alice").unwrap().broadcast_data("hi alice").unwrap();
//! broker.broadcast_data("hi everyone").unwrap();
//! # }
//! ```

// Owners and handles import each other here, on purpose: `mod.rs` owns
// the broker and `channel.rs`, `client.rs` and `replica.rs` hold weak
// handles on it; a client holds the channels it is in and a channel hands
// back its members as clients (the public `Channel::subscribe(&Client)`);
// a client's journal resume runs in `replica.rs`, on the client. Nothing
// else in the library imports in a circle (`tests/layers.rs` lists these
// pairs and fails on any other).
mod channel;
mod client;
mod config;
mod history;
mod ids;
// The fan-out to lent connections (loan, outlet, transport, writer). Only
// the lean server (feature `server`) lends connections today: without it
// the fan-out is compiled, so the publish path is the same, but idle.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
mod loan;
mod log;
#[cfg_attr(not(feature = "server"), allow(dead_code))]
mod outlet;
mod policy;
mod record;
mod replica;
mod stats;
#[cfg_attr(not(feature = "server"), allow(dead_code))]
mod transport;
#[cfg_attr(not(feature = "server"), allow(dead_code))]
mod writer;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::sync::{self, lock};

use bytes::Bytes;
use http::Response;

pub use channel::Channel;
use channel::ChannelInner;
pub use client::{Client, ClientId, ResumeStatus};
pub use config::BrokerConfig;
pub use history::{HistoryConfig, HistoryEntry, HistoryGap, HistoryStore, MemoryHistory};
pub use ids::EARLIEST;
use ids::ResumePoint;
#[cfg(feature = "server")]
pub(crate) use loan::Lent;
pub use loan::SocketLoan;
use log::Limits;
pub use policy::{GapPolicy, GapReplay, OverflowPolicy};
pub use stats::BrokerStats;
use stats::Counters;
#[cfg(feature = "server")]
pub(crate) use transport::{Framing, Transport};
#[cfg(feature = "server")]
pub(crate) use writer::deliver_first;

pub use crate::error::BrokerError;
use crate::event::Event;
use crate::http::ResponseBody;
use crate::journal::{FollowFrom, Following, JournalId};
use crate::stream::{self, SseBody};
use replica::Replica;

/// Many clients, named channels and broadcast: the Go `*Broker`.
///
/// A cheap handle (clone it into handlers and tasks). See the
/// [module docs](self) for how events flow and the guarantees.
///
/// | Go                      | Rust                                   |
/// |-------------------------|----------------------------------------|
/// | `NewBroker()`           | [`Broker::new`]                        |
/// | `NewBrokerWithConfig(c)`| [`Broker::with_config`]                |
/// | `Handler()` / `HandleFunc(setup)` | [`Broker::handler`] / [`Broker::handle_fn`] (axum) |
/// | `HandleRequest(w, r, setup)` | [`Broker::handle_request`]        |
/// | `Broadcast*`            | [`Broker::broadcast`], [`broadcast_data`](Broker::broadcast_data), [`broadcast_event`](Broker::broadcast_event), [`broadcast_json`](Broker::broadcast_json) |
/// | `ForEach` / `Clients()` | [`Broker::for_each`] / [`Broker::clients`] |
/// | `GetChannel` / `Channel`| [`Broker::channel`] / [`Broker::find_channel`] |
/// | `DeleteChannel` / `Channels()` | [`Broker::delete_channel`] / [`Broker::channel_names`] |
#[derive(Clone)]
pub struct Broker {
    inner: Arc<BrokerInner>,
    /// Following the journal, if any: held by the handles (not by
    /// `BrokerInner`, which a follower call may hold last), so following
    /// stops when the last handle is dropped or the broker is closed.
    following: Option<Arc<Mutex<Option<Following>>>>,
}

/// What an acknowledged publish ([`Broker::publish`],
/// [`Broker::publish_on`], [`Channel::publish`]) stored.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let broker = ssehub::broker::Broker::new();
/// let published = broker.publish(ssehub::Event::new("hi")).await.unwrap();
/// assert!(published.id.is_some()); // generated
/// assert_eq!(published.journal_id, None); // no journal
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The id written on the wire: the journal id, the generated or the
    /// caller's; `None` for an event without one (one that opted out of
    /// replay, or with [`BrokerConfig::generate_ids`] off).
    pub id: Option<String>,
    /// Where the journal stored the record, with a
    /// [journal](BrokerConfig::journal).
    pub journal_id: Option<JournalId>,
}

/// The response header that says whether a resume was exact:
/// `complete`, or `gap` (see [`GapPolicy`]).
pub const RESUME_HEADER: http::HeaderName = http::HeaderName::from_static("ssehub-resume");

/// The type of the event that tells a client its resume has a gap.
pub const GAP_EVENT: &str = "ssehub-gap";

pub(crate) struct BrokerInner {
    pub(crate) config: BrokerConfig,
    clients: Mutex<HashMap<ClientId, Client>>,
    channels: Mutex<HashMap<Arc<str>, Arc<ChannelInner>>>,
    /// The hidden channel behind [`Broker::broadcast`].
    everyone: Arc<ChannelInner>,
    next_id: AtomicU64,
    /// The next publish position, held for the whole of each publish so
    /// positions rise along every log and history records in order.
    publishing: Mutex<u64>,
    /// Every frame below this position is in its log (see `log.rs`; a
    /// `crate::sync` atomic: it is part of the model of the log).
    pub(crate) watermark: Arc<sync::atomic::AtomicU64>,
    epoch: u32,
    pub(crate) history: Arc<dyn HistoryStore>,
    /// False for the built-in history with zero bounds: nothing to record,
    /// so publishing skips it (a lock and a clock read per channel).
    records_history: bool,
    closed: AtomicBool,
    pub(crate) counters: Arc<Counters>,
    /// Writes frames straight to parked clients' sockets (`writer.rs`).
    pub(crate) writers: writer::Writers,
    /// The journal side (`replica.rs`), with a journal.
    pub(crate) replica: Option<Replica>,
}

impl Drop for BrokerInner {
    fn drop(&mut self) {
        self.writers.close();
    }
}

/// What a publish carries.
pub(crate) enum Publish {
    Event(Event),
    Frame(Bytes),
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker {
    /// A broker with the default configuration (Go `NewBroker`).
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// assert_eq!(broker.clients(), 0);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_config(BrokerConfig::default())
    }

    /// A broker with `config` (Go `NewBrokerWithConfig`).
    ///
    /// ```
    /// use ssehub::broker::{Broker, BrokerConfig};
    /// let broker = Broker::with_config(BrokerConfig::default().client_buffer_events(64));
    /// # let _ = broker;
    /// ```
    #[must_use]
    pub fn with_config(config: BrokerConfig) -> Self {
        let records_history = config.history_store.is_some() || config.history.max_events > 0;
        let history = config
            .history_store
            .clone()
            .unwrap_or_else(|| Arc::new(MemoryHistory::new(config.history)));
        let burst_ms = u64::try_from(config.write_burst.as_millis()).unwrap_or(u64::MAX);
        let writers = writer::Writers::new(config.on_direct_write.clone(), burst_ms);
        let counters = Arc::new(Counters::default());
        let replica = config
            .journal
            .clone()
            .map(|journal| Replica::new(journal, config.journal_window, counters.clone()));
        let inner = Arc::new_cyclic(|weak| BrokerInner {
            everyone: Arc::new(ChannelInner::new(
                Arc::from("*"),
                true,
                limits(&config),
                FIRST_POSITION,
                weak.clone(),
            )),
            config,
            clients: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            publishing: Mutex::new(FIRST_POSITION),
            watermark: Arc::new(sync::atomic::AtomicU64::new(FIRST_POSITION)),
            epoch: ids::new_epoch(),
            history,
            records_history,
            closed: AtomicBool::new(false),
            counters,
            writers,
            replica,
        });
        // Started once the broker exists: a memory journal reports `Up`
        // inline, to a follower that must reach the broker.
        let following = inner.replica.as_ref().map(|replica| {
            let follower = Arc::new(replica::BrokerFollower(Arc::downgrade(&inner)));
            Arc::new(Mutex::new(Some(
                replica.journal.follow(FollowFrom::Latest, follower),
            )))
        });
        Self { inner, following }
    }

    /// Whether the broker can publish now: always without a journal; with
    /// one, once its follower reached the journal (waiting up to 5 s for
    /// that) and the journal answers [`Journal::ready`](crate::journal::Journal::ready).
    /// For readiness probes, and for a replica that should not take traffic
    /// before it follows.
    ///
    /// # Errors
    /// [`BrokerError::Closed`] once closed; [`BrokerError::Journal`] when the
    /// journal cannot be reached.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// use ssehub::broker::{Broker, BrokerConfig};
    ///
    /// let journal = Arc::new(ssehub::journal::MemoryJournal::default());
    /// let broker = Broker::with_config(BrokerConfig::default().journal(journal));
    /// broker.ready().await.unwrap();
    /// # }
    /// ```
    pub async fn ready(&self) -> Result<(), BrokerError> {
        if self.is_closed() {
            return Err(BrokerError::Closed);
        }
        let Some(replica) = &self.inner.replica else {
            return Ok(());
        };
        replica.await_follower().await?;
        replica.journal.ready().await?;
        Ok(())
    }

    /// Registers a new client and returns it with the body of its response;
    /// the building block of [`handle_request`](Self::handle_request) for
    /// servers that assemble responses themselves.
    ///
    /// The `on_connect` hook runs before this returns. Serve the body with
    /// [`SseBody::into_response`] (or return it from an axum handler).
    ///
    /// # Errors
    /// [`BrokerError::Closed`] once the broker is closed.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// let (client, body) = broker.connect(None).unwrap();
    /// assert_eq!(broker.clients(), 1);
    /// drop(body); // the connection ends
    /// assert_eq!(broker.clients(), 0);
    /// assert!(client.is_closed());
    /// ```
    pub fn connect(&self, last_event_id: Option<String>) -> Result<(Client, SseBody), BrokerError> {
        if self.is_closed() {
            return Err(BrokerError::Closed);
        }
        let id = ClientId::new(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let resume = last_event_id
            .as_deref()
            .map(|id| self.inner.resume_point(id));
        let (sender, body) = stream::new_resuming(&self.inner.config.stream, last_event_id);
        let client = Client::new(id, &self.inner, sender, resume);
        let body = body.with_feed(Arc::new(client.inner.clone()));
        client.attach(&self.inner.everyone)?;
        lock(&self.inner.clients).insert(id, client.clone());
        Counters::add(&self.inner.counters.clients, 1);
        // A close that raced with this registration must not leave the
        // client behind.
        if self.is_closed() {
            client.close();
            return Err(BrokerError::Closed);
        }
        if let Some(hook) = &self.inner.config.on_connect {
            hook(&client);
        }
        tracing::debug!(client = %id, "client connected");
        Ok((client, body))
    }

    /// Answers an event-stream request (Go `HandleRequest`): registers a
    /// client with the request's `Last-Event-ID`, runs `on_connect`, then
    /// `setup` (subscribe it to channels, store data), and returns the
    /// response. Framework-neutral: any server that speaks `http` can send it.
    ///
    /// An over-long `Last-Event-ID` is answered `400`. A closed broker
    /// answers `200` with a `retry:` and an immediately ended stream, so
    /// browsers try again later (perhaps on another node) instead of giving
    /// up as they would on an error status.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let broker = ssehub::broker::Broker::new();
    /// let (parts, ()) = http::Request::get("/events").body(()).unwrap().into_parts();
    /// let response = broker.handle_request(&parts, |client| {
    ///     client.subscribe("news").unwrap();
    /// });
    /// assert_eq!(response.headers()["content-type"], "text/event-stream");
    /// # }
    /// ```
    pub fn handle_request(
        &self,
        request: &http::request::Parts,
        setup: impl FnOnce(&Client),
    ) -> Response<ResponseBody> {
        let last_event_id = match crate::last_event_id(&request.headers, request.uri.query()) {
            Ok(id) => id,
            Err(err) => return crate::http::bad_request(&err.to_string()),
        };
        match self.connect(last_event_id) {
            Ok((client, body)) => {
                setup(&client);
                // The setup's subscriptions are the resumed ones.
                client.inner.seal();
                let mut response = body.into_response();
                let status = match client.resume_status() {
                    ResumeStatus::Complete => Some("complete"),
                    ResumeStatus::Gap => Some("gap"),
                    _ => None,
                };
                if let Some(status) = status {
                    response
                        .headers_mut()
                        .insert(RESUME_HEADER, http::HeaderValue::from_static(status));
                }
                response.map(ResponseBody::Stream)
            }
            Err(_) => {
                let (sender, body) = stream::new(&self.inner.config.stream);
                sender.close();
                body.into_response().map(ResponseBody::Stream)
            }
        }
    }

    /// Publishes an event to every client (Go `Broadcast`): encoded once,
    /// never waiting for a slow client.
    ///
    /// # Errors
    /// [`BrokerError::Closed`] once the broker is closed,
    /// [`BrokerError::Invalid`] for an event that cannot be encoded.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// broker.broadcast(ssehub::Event::with_type("announcement", "Maintenance at midnight")).unwrap();
    /// ```
    pub fn broadcast(&self, event: Event) -> Result<(), BrokerError> {
        if self.is_closed() {
            return Err(BrokerError::Closed);
        }
        self.inner
            .publish(&self.inner.everyone, Publish::Event(event))
    }

    /// Publishes an already encoded frame to every client.
    ///
    /// # Errors
    /// [`BrokerError::Closed`] once the broker is closed.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// broker.broadcast_frame(ssehub::Event::new("x").encode().unwrap()).unwrap();
    /// ```
    pub fn broadcast_frame(&self, frame: Bytes) -> Result<(), BrokerError> {
        if self.is_closed() {
            return Err(BrokerError::Closed);
        }
        self.inner
            .publish(&self.inner.everyone, Publish::Frame(frame))
    }

    /// Publishes a `message` event with `data` to every client (Go `BroadcastData`).
    ///
    /// # Errors
    /// As [`broadcast`](Self::broadcast).
    ///
    /// ```
    /// ssehub::broker::Broker::new().broadcast_data("Hello everyone!").unwrap();
    /// ```
    pub fn broadcast_data(&self, data: impl Into<String>) -> Result<(), BrokerError> {
        self.broadcast(Event::new(data))
    }

    /// Publishes an event of type `event` to every client (Go `BroadcastEvent`).
    ///
    /// # Errors
    /// As [`broadcast`](Self::broadcast).
    ///
    /// ```
    /// ssehub::broker::Broker::new().broadcast_event("announcement", "Hi").unwrap();
    /// ```
    pub fn broadcast_event(
        &self,
        event: impl Into<String>,
        data: impl Into<String>,
    ) -> Result<(), BrokerError> {
        self.broadcast(Event::with_type(event, data))
    }

    /// Publishes `value` as JSON to every client (Go `BroadcastJSON`).
    ///
    /// # Errors
    /// As [`broadcast`](Self::broadcast).
    ///
    /// ```
    /// ssehub::broker::Broker::new()
    ///     .broadcast_json("stats", &serde_json::json!({"users": 100}))
    ///     .unwrap();
    /// ```
    #[cfg(feature = "json")]
    pub fn broadcast_json<T: serde::Serialize + ?Sized>(
        &self,
        event: impl Into<String>,
        value: &T,
    ) -> Result<(), BrokerError> {
        self.broadcast(Event::json(event, value)?)
    }

    /// Publishes one event on several channels at once: one position, one
    /// id, one encoding shared by all of them. A client in more than one
    /// of these channels receives it once. Returns the id written on the
    /// wire (the caller's, or the generated one; `None` for an event that
    /// opted out of replay and has no id). Channels deleted meanwhile are
    /// skipped.
    ///
    /// # Errors
    /// [`BrokerError::Invalid`] for an event that cannot be encoded,
    /// [`BrokerError::ChannelNotFound`] if every channel was deleted,
    /// [`BrokerError::Closed`] once the broker is closed.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// let (a, b) = (broker.channel("a").unwrap(), broker.channel("b").unwrap());
    /// let id = broker.publish_to(&[a, b], ssehub::Event::new("to both")).unwrap();
    /// assert!(id.is_some());
    /// ```
    pub fn publish_to(
        &self,
        channels: &[Channel],
        event: Event,
    ) -> Result<Option<String>, BrokerError> {
        if self.is_closed() {
            return Err(BrokerError::Closed);
        }
        with_inners(channels, |inners| {
            self.inner
                .publish_to(inners, Publish::Event(event))
                .map(|id| id.map(|id| id.to_string()))
        })
    }

    /// Publishes an already encoded frame to several channels at once, as
    /// [`publish_to`](Self::publish_to) does for an event: one position, one
    /// shared `Bytes`, delivered once to a client in several of them. For
    /// servers that keep the encoded frame themselves (their own history,
    /// say): the frame's id is whatever was encoded into it.
    ///
    /// # Errors
    /// [`BrokerError::ChannelNotFound`] if every channel was deleted,
    /// [`BrokerError::Closed`] once the broker is closed.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// let (a, b) = (broker.channel("a").unwrap(), broker.channel("b").unwrap());
    /// let frame = ssehub::Event::new("to both").with_id("7").encode().unwrap();
    /// broker.publish_frame_to(&[a, b], frame).unwrap();
    /// ```
    pub fn publish_frame_to(&self, channels: &[Channel], frame: Bytes) -> Result<(), BrokerError> {
        if self.is_closed() {
            return Err(BrokerError::Closed);
        }
        with_inners(channels, |inners| {
            self.inner
                .publish_to(inners, Publish::Frame(frame))
                .map(|_| ())
        })
    }

    /// Publishes an event to every client and resolves once it is stored:
    /// with a [journal](BrokerConfig::journal), when the journal
    /// acknowledged the record (its id is the journal id); without one at
    /// once, like [`broadcast`](Self::broadcast). Unlike `broadcast`, a
    /// journal failure is returned, not only logged.
    ///
    /// # Errors
    /// [`BrokerError::Journal`] when the journal did not store it, and as
    /// [`broadcast`](Self::broadcast).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// use ssehub::broker::{Broker, BrokerConfig};
    ///
    /// let journal = Arc::new(ssehub::journal::MemoryJournal::default());
    /// let broker = Broker::with_config(BrokerConfig::default().journal(journal));
    /// let published = broker.publish(ssehub::Event::with_type("notice", "hi")).await.unwrap();
    /// println!("stored as {}", published.journal_id.unwrap());
    /// # }
    /// ```
    pub async fn publish(&self, event: Event) -> Result<Published, BrokerError> {
        let everyone = self.inner.everyone.clone();
        self.inner.publish_acknowledged(&[&everyone], event).await
    }

    /// Publishes one event on several channels, as
    /// [`publish_to`](Self::publish_to) does, and resolves once it is
    /// stored, as [`publish`](Self::publish) does.
    ///
    /// # Errors
    /// As [`publish`](Self::publish) and [`publish_to`](Self::publish_to).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let broker = ssehub::broker::Broker::new();
    /// let (a, b) = (broker.channel("a").unwrap(), broker.channel("b").unwrap());
    /// broker.publish_on(&[a, b], ssehub::Event::new("to both")).await.unwrap();
    /// # }
    /// ```
    pub async fn publish_on(
        &self,
        channels: &[Channel],
        event: Event,
    ) -> Result<Published, BrokerError> {
        let inners: Vec<&ChannelInner> = channels.iter().map(|c| &*c.inner).collect();
        self.inner.publish_acknowledged(&inners, event).await
    }

    /// Calls `f` for every connected client (Go `ForEach`), with no lock
    /// held, so `f` may call any broker method.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// let (admin, _body) = broker.connect(None).unwrap();
    /// admin.set("role", "admin");
    /// broker.for_each(|client| {
    ///     if client.get_string("role").as_deref() == Some("admin") {
    ///         let _ = client.send_event("admin", "Special message");
    ///     }
    /// });
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&Client)) {
        let clients: Vec<Client> = lock(&self.inner.clients).values().cloned().collect();
        for client in &clients {
            f(client);
        }
    }

    /// Number of connected clients (Go `Clients()`).
    ///
    /// ```
    /// assert_eq!(ssehub::broker::Broker::new().clients(), 0);
    /// ```
    #[must_use]
    pub fn clients(&self) -> usize {
        lock(&self.inner.clients).len()
    }

    /// The connected client with this id.
    ///
    /// # Errors
    /// [`BrokerError::ClientNotFound`] if there is none (or it is gone).
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// assert_eq!(broker.client(client.id()).unwrap().id(), client.id());
    /// client.close();
    /// assert_eq!(broker.client(client.id()).unwrap_err(), ssehub::BrokerError::ClientNotFound);
    /// ```
    pub fn client(&self, id: ClientId) -> Result<Client, BrokerError> {
        lock(&self.inner.clients)
            .get(&id)
            .cloned()
            .ok_or(BrokerError::ClientNotFound)
    }

    /// The channel `name`, created if needed (Go `GetChannel`).
    ///
    /// # Errors
    /// [`BrokerError::Closed`] once the broker is closed.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// let news = broker.channel("news").unwrap();
    /// assert_eq!(broker.channel_names(), ["news"]);
    /// # let _ = news;
    /// ```
    pub fn channel(&self, name: &str) -> Result<Channel, BrokerError> {
        self.inner
            .channel_inner(name)
            .map(|inner| Channel { inner })
    }

    /// The channel `name` if it exists (Go `Channel`).
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// assert!(broker.find_channel("news").is_none());
    /// broker.channel("news").unwrap();
    /// assert!(broker.find_channel("news").is_some());
    /// ```
    #[must_use]
    pub fn find_channel(&self, name: &str) -> Option<Channel> {
        lock(&self.inner.channels)
            .get(name)
            .cloned()
            .map(|inner| Channel { inner })
    }

    /// Deletes channel `name` (Go `DeleteChannel`): every subscriber leaves
    /// it, and old handles to it fail with [`BrokerError::ChannelNotFound`].
    ///
    /// # Errors
    /// [`BrokerError::ChannelNotFound`] if there is no such channel.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// let old = broker.channel("job:1").unwrap();
    /// broker.delete_channel("job:1").unwrap();
    /// assert_eq!(old.broadcast_data("x"), Err(ssehub::BrokerError::ChannelNotFound));
    /// ```
    pub fn delete_channel(&self, name: &str) -> Result<(), BrokerError> {
        // Under the publishing lock, so no publish is half done on it.
        let _publishing = lock(&self.inner.publishing);
        let channel = lock(&self.inner.channels)
            .remove(name)
            .ok_or(BrokerError::ChannelNotFound)?;
        Counters::sub(&self.inner.counters.channels, 1);
        channel.delete();
        self.inner.history.forget(name);
        Ok(())
    }

    /// Deletes every channel that has no subscriber, with its replay
    /// history; returns how many.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// broker.channel("empty").unwrap();
    /// assert_eq!(broker.reclaim_empty_channels(), 1);
    /// assert!(broker.channel_names().is_empty());
    /// ```
    pub fn reclaim_empty_channels(&self) -> usize {
        let _publishing = lock(&self.inner.publishing);
        let mut channels = lock(&self.inner.channels);
        let before = channels.len();
        channels.retain(|name, channel| {
            let unused = channel.log.delete_if_unused();
            if unused {
                self.inner.history.forget(name);
            }
            !unused
        });
        let reclaimed = before - channels.len();
        Counters::sub(&self.inner.counters.channels, reclaimed as u64);
        reclaimed
    }

    /// Names of the existing channels (Go `Channels()`).
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// broker.channel("a").unwrap();
    /// assert_eq!(broker.channel_names(), ["a"]);
    /// ```
    #[must_use]
    pub fn channel_names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.inner.channels)
            .keys()
            .map(|k| k.to_string())
            .collect();
        names.sort_unstable();
        names
    }

    /// A snapshot of the broker's counters.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// let (_client, _body) = broker.connect(None).unwrap();
    /// assert_eq!(broker.stats().clients, 1);
    /// ```
    #[must_use]
    pub fn stats(&self) -> BrokerStats {
        self.inner.counters.snapshot()
    }

    /// Whether the broker is closed.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// broker.close();
    /// assert!(broker.is_closed());
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Closes the broker: every client's response ends (after what is queued
    /// for it), every channel is deleted, and later calls fail with
    /// [`BrokerError::Closed`]. Closing twice is harmless.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// broker.close();
    /// assert!(client.is_closed());
    /// assert!(broker.connect(None).is_err());
    /// ```
    pub fn close(&self) {
        // Closing a closed broker is a no-op by design.
        let _ = self.shutdown(None);
    }

    /// Closes the broker like [`close`](Self::close), after sending
    /// `farewell` to every client.
    ///
    /// # Errors
    /// [`BrokerError::Invalid`] if `farewell` cannot be encoded (the broker
    /// is then closed without it); [`BrokerError::Closed`] if it was
    /// already closed.
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// broker.close_with(ssehub::Event::with_type("bye", "server restarting")).unwrap();
    /// ```
    pub fn close_with(&self, farewell: Event) -> Result<(), BrokerError> {
        match farewell.encode() {
            Ok(frame) => self.shutdown(Some(frame)),
            Err(err) => {
                self.close();
                Err(err.into())
            }
        }
    }

    fn shutdown(&self, farewell: Option<Bytes>) -> Result<(), BrokerError> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Err(BrokerError::Closed);
        }
        let clients: Vec<Client> = lock(&self.inner.clients).values().cloned().collect();
        for client in clients {
            if let Some(frame) = &farewell {
                let _ = client.send_frame(frame.clone());
            }
            client.close();
        }
        let _publishing = lock(&self.inner.publishing);
        let channels: Vec<Arc<ChannelInner>> =
            lock(&self.inner.channels).drain().map(|(_, c)| c).collect();
        Counters::sub(&self.inner.counters.channels, channels.len() as u64);
        for channel in channels {
            channel.delete();
        }
        self.inner.everyone.delete();
        drop(_publishing);
        if let Some(following) = &self.following {
            // Dropped outside the lock: a memory journal takes its own.
            let following = lock(following).take();
            drop(following);
        }
        tracing::debug!("broker closed");
        Ok(())
    }
}

impl BrokerInner {
    pub(crate) fn channel_inner(&self, name: &str) -> Result<Arc<ChannelInner>, BrokerError> {
        let mut channels = lock(&self.channels);
        if self.closed.load(Ordering::Acquire) {
            return Err(BrokerError::Closed);
        }
        if let Some(channel) = channels.get(name) {
            return Ok(channel.clone());
        }
        let name: Arc<str> = Arc::from(name);
        let channel = Arc::new(ChannelInner::new(
            name.clone(),
            false,
            limits(&self.config),
            self.watermark.load(Ordering::Acquire),
            self.everyone.broker.clone(),
        ));
        channels.insert(name, channel.clone());
        Counters::add(&self.counters.channels, 1);
        Ok(channel)
    }

    /// Publishes on `channel`: see [`publish_to`](Self::publish_to).
    pub(crate) fn publish(&self, channel: &ChannelInner, what: Publish) -> Result<(), BrokerError> {
        self.publish_to(&[channel], what).map(drop)
    }

    /// Publishes one event on several channels: assigns the next position,
    /// gives the event its id, encodes it once, records it in each
    /// channel's history and appends it to each channel's log. Returns the
    /// id written on the wire. Deleted channels are skipped; if every one
    /// is, nothing is published.
    pub(crate) fn publish_to(
        &self,
        channels: &[&ChannelInner],
        what: Publish,
    ) -> Result<Option<Arc<str>>, BrokerError> {
        if let Publish::Event(event) = &what {
            event.validate()?;
        }
        if let Some(replica) = &self.replica {
            // One record; the follower delivers it, here and everywhere.
            let (body, wire) = self.journal_record(channels, what)?;
            let stored = replica.appender.submit(body)?;
            return Ok(wire.resolve(stored));
        }
        let mut next = lock(&self.publishing);
        // Deletions also hold the publishing lock, so this stays true
        // until the appends below.
        let live: Cow<'_, [&ChannelInner]> = if channels.iter().any(|c| c.log.is_deleted()) {
            channels
                .iter()
                .copied()
                .filter(|c| !c.log.is_deleted())
                .collect()
        } else {
            // The usual case, without a copy.
            Cow::Borrowed(channels)
        };
        if live.is_empty() {
            return Err(if channels.iter().any(|c| c.hidden) {
                BrokerError::Closed
            } else {
                BrokerError::ChannelNotFound
            });
        }
        let position = *next;
        let (frame, wire_id, caller_id, replayable) = match what {
            Publish::Event(event) => {
                let replayable = event.is_replayable();
                let caller_id: Option<Arc<str>> = event.id().map(Arc::from);
                let event = if caller_id.is_none() && replayable && self.config.generate_ids {
                    event.with_id(ids::format(self.epoch, position))
                } else {
                    event
                };
                let wire_id = event.id().map(Arc::from);
                (event.encode()?, wire_id, caller_id, replayable)
            }
            Publish::Frame(frame) => (frame, None, None, true),
        };
        let published_at = tokio::time::Instant::now();
        let record = replayable && self.records_history;
        let mut skipped = 0;
        let mut claimed = 0;
        for channel in live.iter() {
            // Recorded before it is appended: a subscriber that sees the
            // frame in the log must find it in history too (`Log::subscribe`).
            if record {
                self.history.record(
                    &channel.name,
                    HistoryEntry {
                        position,
                        id: caller_id.clone(),
                        frame: frame.clone(),
                        published_at,
                    },
                );
            }
            let appended = channel
                .log
                .append(position, frame.clone(), &self.writers)
                .map_err(|_| BrokerError::ChannelNotFound)?;
            skipped += appended.skipped;
            claimed += appended.claimed;
        }
        *next = position + 1;
        self.watermark.store(position + 1, Ordering::Release);
        drop(next);
        Counters::add(&self.counters.published, 1);
        Counters::add(&self.counters.dropped, skipped);
        // A claimed frame is as good as taken: it goes to the socket or,
        // if that is full, ahead of everything else the connection writes.
        Counters::add(&self.counters.delivered, claimed);
        Counters::add(&self.counters.direct, claimed);
        Ok(wire_id)
    }

    /// Publishes `event` on `channels` and waits until it is stored: in the
    /// journal, or (without one) in the logs and history, at once.
    async fn publish_acknowledged(
        &self,
        channels: &[&ChannelInner],
        event: Event,
    ) -> Result<Published, BrokerError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(BrokerError::Closed);
        }
        let Some(replica) = &self.replica else {
            let id = self.publish_to(channels, Publish::Event(event))?;
            return Ok(Published {
                id: id.map(|id| id.to_string()),
                journal_id: None,
            });
        };
        event.validate()?;
        let (body, wire) = self.journal_record(channels, Publish::Event(event))?;
        let stored = replica.appender.acknowledged(replica, body).await?;
        Ok(Published {
            id: wire.resolve(Some(stored)).map(|id| id.to_string()),
            journal_id: Some(stored),
        })
    }

    /// Where a client that sent `last_event_id` resumes.
    fn resume_point(&self, last_event_id: &str) -> ResumePoint {
        if last_event_id == EARLIEST {
            return ResumePoint::Earliest;
        }
        if self.replica.is_some() {
            return match last_event_id.parse() {
                Ok(id) => ResumePoint::Journal(id),
                Err(_) => ResumePoint::Unknown,
            };
        }
        if let Some(position) = ids::parse(self.epoch, last_event_id) {
            return ResumePoint::After(position);
        }
        match self.history.resolve(last_event_id) {
            Some(position) => ResumePoint::After(position),
            None => ResumePoint::Unknown,
        }
    }

    pub(crate) fn forget_client(&self, id: ClientId) {
        if lock(&self.clients).remove(&id).is_some() {
            Counters::sub(&self.counters.clients, 1);
        }
    }
}

/// Positions start at 1, so 0 can mean "nothing yet".
const FIRST_POSITION: u64 = 1;

fn limits(config: &BrokerConfig) -> Limits {
    Limits {
        events: config.buffer_events() as u64,
        bytes: config.buffer_bytes() as u64,
        policy: config.overflow,
    }
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The broker's id format, for [`crate::fuzzing`].
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    pub(crate) use super::ids::{format as format_id, parse as parse_id};
}

/// `f` on the channels' shared parts: on the stack for a single channel
/// (a publish to one topic, the usual one), else in a `Vec`.
fn with_inners<R>(channels: &[Channel], f: impl FnOnce(&[&ChannelInner]) -> R) -> R {
    match channels {
        [one] => f(&[&*one.inner]),
        _ => f(&channels.iter().map(|c| &*c.inner).collect::<Vec<_>>()),
    }
}
