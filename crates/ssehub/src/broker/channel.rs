//! [`Channel`]: a named group of clients that receive what is published on it.

use std::fmt;
use std::sync::{Arc, Weak};

use bytes::Bytes;

use super::client::{Client, ClientInner};
use super::log::{Limits, Log};
use super::{BrokerInner, Publish};
use crate::error::BrokerError;
use crate::event::Event;

pub(crate) struct ChannelInner {
    pub(crate) name: Arc<str>,
    /// The broker-wide broadcast channel every client is in; not listed.
    pub(crate) hidden: bool,
    pub(crate) log: Log<Weak<ClientInner>>,
    pub(crate) broker: Weak<BrokerInner>,
}

impl ChannelInner {
    pub(crate) fn new(
        name: Arc<str>,
        hidden: bool,
        limits: Limits,
        watermark: u64,
        broker: Weak<BrokerInner>,
    ) -> Self {
        Self {
            name,
            hidden,
            log: Log::new(limits, watermark),
            broker,
        }
    }

    pub(crate) fn broker(&self) -> Result<Arc<BrokerInner>, BrokerError> {
        self.broker.upgrade().ok_or(BrokerError::Closed)
    }

    /// Publishes through the broker, which assigns the position and id.
    pub(crate) fn publish(&self, event: Event) -> Result<(), BrokerError> {
        self.broker()?.publish(self, Publish::Event(event))
    }

    pub(crate) fn publish_frame(&self, frame: Bytes) -> Result<(), BrokerError> {
        self.broker()?.publish(self, Publish::Frame(frame))
    }

    /// Deletes the channel: every subscriber leaves it.
    pub(crate) fn delete(self: &Arc<Self>) {
        for client in self.log.delete() {
            if let Some(inner) = client.upgrade() {
                Client::from_inner(inner).forget(self);
            }
        }
    }
}

/// A named channel of a [`Broker`](super::Broker): the Go `*Channel`.
///
/// A cheap handle. What is broadcast on a channel is encoded once and
/// reaches every client subscribed to it, in publish order. After the
/// channel is deleted, broadcasting through an old handle fails with
/// [`BrokerError::ChannelNotFound`].
///
/// ```
/// use ssehub::broker::Broker;
///
/// let broker = Broker::new();
/// let news = broker.channel("news").unwrap();
/// let (client, _body) = broker.connect(None).unwrap();
/// news.subscribe(&client).unwrap();
/// assert!(news.has(&client));
/// assert_eq!(news.size(), 1);
/// news.broadcast_event("article", "Breaking news!").unwrap();
/// ```
#[derive(Clone)]
pub struct Channel {
    pub(crate) inner: Arc<ChannelInner>,
}

impl Channel {
    /// The channel's name (Go `Name`).
    ///
    /// ```
    /// let broker = ssehub::broker::Broker::new();
    /// assert_eq!(broker.channel("news").unwrap().name(), "news");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Subscribes `client` to the channel (Go `Subscribe`); a no-op if it is
    /// already subscribed.
    ///
    /// # Errors
    /// [`BrokerError::ChannelNotFound`] if the channel was deleted,
    /// [`BrokerError::Closed`] if the client is gone.
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let channel = broker.channel("news").unwrap();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// channel.subscribe(&client).unwrap();
    /// assert!(client.in_channel("news"));
    /// ```
    pub fn subscribe(&self, client: &Client) -> Result<(), BrokerError> {
        client.attach(&self.inner)
    }

    /// Removes `client` from the channel (Go `Unsubscribe`).
    ///
    /// # Errors
    /// [`BrokerError::ClientNotFound`] if the client is not subscribed.
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let channel = broker.channel("news").unwrap();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// channel.subscribe(&client).unwrap();
    /// channel.unsubscribe(&client).unwrap();
    /// assert_eq!(channel.unsubscribe(&client), Err(ssehub::BrokerError::ClientNotFound));
    /// ```
    pub fn unsubscribe(&self, client: &Client) -> Result<(), BrokerError> {
        if client.detach(&self.inner) {
            Ok(())
        } else {
            Err(BrokerError::ClientNotFound)
        }
    }

    /// Whether `client` is subscribed (Go `Has`).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let channel = broker.channel("news").unwrap();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// assert!(!channel.has(&client));
    /// ```
    #[must_use]
    pub fn has(&self, client: &Client) -> bool {
        client.has_channel(&self.inner)
    }

    /// Number of subscribed clients (Go `Size`).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// assert_eq!(broker.channel("news").unwrap().size(), 0);
    /// ```
    #[must_use]
    pub fn size(&self) -> usize {
        self.inner.log.len()
    }

    /// Calls `f` for every subscribed client (Go `ForEach`). No lock is held
    /// while `f` runs, so it may call any broker method.
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let channel = broker.channel("admins").unwrap();
    /// let (client, _body) = broker.connect(None).unwrap();
    /// channel.subscribe(&client).unwrap();
    /// channel.for_each(|c| { let _ = c.send_data("only admins see this"); });
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&Client)) {
        for client in self.inner.log.clients() {
            if let Some(inner) = client.upgrade() {
                f(&Client::from_inner(inner));
            }
        }
    }

    /// Publishes an event to every subscriber (Go `Broadcast`): encoded once,
    /// never waiting for a slow client.
    ///
    /// # Errors
    /// [`BrokerError::Invalid`] for an event that cannot be encoded,
    /// [`BrokerError::ChannelNotFound`] if the channel was deleted.
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let channel = broker.channel("news").unwrap();
    /// channel.broadcast(ssehub::Event::with_type("article", "…").with_id("a1")).unwrap();
    /// ```
    pub fn broadcast(&self, event: Event) -> Result<(), BrokerError> {
        self.inner.publish(event)
    }

    /// Publishes an event to every subscriber and resolves once it is
    /// stored: with a [journal](super::BrokerConfig::journal), when the
    /// journal acknowledged the record (the returned id is the journal id,
    /// the one every replica writes); without one at once, like
    /// [`broadcast`](Self::broadcast). Unlike `broadcast`, a journal failure
    /// is returned, not only logged.
    ///
    /// # Errors
    /// [`BrokerError::Journal`] when the journal did not store it, and as
    /// [`broadcast`](Self::broadcast).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// use ssehub::broker::{Broker, BrokerConfig};
    /// use ssehub::journal::{Journal, MemoryJournal, ReplayFrom};
    ///
    /// let journal = Arc::new(MemoryJournal::default());
    /// let broker = Broker::with_config(BrokerConfig::default().journal(journal.clone()));
    /// let news = broker.channel("news").unwrap();
    /// let published = news.publish(ssehub::Event::new("Breaking")).await.unwrap();
    /// let stored = journal.replay(ReplayFrom::Earliest, 10).await.unwrap();
    /// assert_eq!(Some(stored.records[0].id), published.journal_id);
    /// # }
    /// ```
    pub async fn publish(&self, event: Event) -> Result<super::Published, BrokerError> {
        let broker = self.inner.broker()?;
        broker.publish_acknowledged(&[&*self.inner], event).await
    }

    /// Publishes an already encoded frame (see [`Event::encode`]). It is
    /// recorded in replay history as it is: the broker cannot add an id to
    /// bytes already encoded, so give the event its id before encoding it
    /// if clients should resume after it.
    ///
    /// # Errors
    /// [`BrokerError::ChannelNotFound`] if the channel was deleted.
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// let frame = ssehub::Event::new("pre-encoded").encode().unwrap();
    /// broker.channel("news").unwrap().broadcast_frame(frame).unwrap();
    /// ```
    pub fn broadcast_frame(&self, frame: Bytes) -> Result<(), BrokerError> {
        self.inner.publish_frame(frame)
    }

    /// Publishes a `message` event with `data` (Go `BroadcastData`).
    ///
    /// # Errors
    /// As [`broadcast`](Self::broadcast).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// broker.channel("news").unwrap().broadcast_data("Breaking news!").unwrap();
    /// ```
    pub fn broadcast_data(&self, data: impl Into<String>) -> Result<(), BrokerError> {
        self.broadcast(Event::new(data))
    }

    /// Publishes an event of type `event` (Go `BroadcastEvent`).
    ///
    /// # Errors
    /// As [`broadcast`](Self::broadcast).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// broker.channel("news").unwrap().broadcast_event("article", "{}").unwrap();
    /// ```
    pub fn broadcast_event(
        &self,
        event: impl Into<String>,
        data: impl Into<String>,
    ) -> Result<(), BrokerError> {
        self.broadcast(Event::with_type(event, data))
    }

    /// Publishes `value` as JSON in an event of type `event` (Go `BroadcastJSON`).
    ///
    /// # Errors
    /// As [`broadcast`](Self::broadcast).
    ///
    /// ```
    /// # let broker = ssehub::broker::Broker::new();
    /// broker.channel("jobs").unwrap()
    ///     .broadcast_json("progress", &serde_json::json!({"progress": 50}))
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
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.inner.name)
            .field("size", &self.size())
            .finish()
    }
}
