//! [`BrokerConfig`] and the [`OverflowPolicy`] for clients that fall behind.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Client;
use crate::stream::{DEFAULT_BUFFER_BYTES, DEFAULT_BUFFER_EVENTS, StreamConfig};

/// A broker hook, called with the client concerned.
pub(crate) type ClientHook = Arc<dyn Fn(&Client) + Send + Sync>;

/// What happens to a client whose buffer overflows: it has more unsent
/// events (or bytes) than [`BrokerConfig::client_buffer_events`] (or
/// [`client_buffer_bytes`](BrokerConfig::client_buffer_bytes)) allow.
///
/// A publisher never waits for a slow client whatever the policy; every
/// dropped event and every disconnect is counted in [`BrokerStats`](super::BrokerStats).
///
/// ```
/// use ssehub::broker::{BrokerConfig, OverflowPolicy};
///
/// let config = BrokerConfig::default().overflow(OverflowPolicy::DropOldest);
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// End the client's response (the default). A browser reconnects with
    /// `Last-Event-ID` and can resume from the channel's history, so nothing
    /// is silently lost.
    #[default]
    Disconnect,
    /// Skip the oldest unsent events so the newest `client_buffer_events` remain.
    DropOldest,
    /// Keep the oldest unsent events and skip those that arrived while the
    /// buffer was full.
    DropNewest,
}

/// Configuration of a [`Broker`](super::Broker): the Go `BrokerConfig`, plus
/// the overflow policy and hooks.
///
/// | Go `BrokerConfig`   | `BrokerConfig`                                   | default |
/// |---------------------|--------------------------------------------------|---------|
/// | `KeepAliveInterval` | [`keep_alive`](Self::keep_alive)                  | 15 s    |
/// | `RetryInterval`     | [`retry`](Self::retry)                            | 3 s     |
/// | `ClientBufferSize`  | [`client_buffer_events`](Self::client_buffer_events) | 256  |
/// | –                   | [`client_buffer_bytes`](Self::client_buffer_bytes) | 1 MiB  |
/// | –                   | [`overflow`](Self::overflow)                      | `Disconnect` |
/// | `broker.OnConnect`  | [`on_connect`](Self::on_connect)                  | none    |
/// | `broker.OnDisconnect` | [`on_disconnect`](Self::on_disconnect)          | none    |
///
/// ```
/// use std::time::Duration;
/// use ssehub::broker::{Broker, BrokerConfig};
///
/// let broker = Broker::with_config(
///     BrokerConfig::default()
///         .keep_alive(Some(Duration::from_secs(30)))
///         .retry(Some(Duration::from_secs(3)))
///         .client_buffer_events(256)
///         .on_connect(|client| tracing::info!(id = %client.id(), "connected"))
///         .on_disconnect(|client| tracing::info!(id = %client.id(), "disconnected")),
/// );
/// # let _ = broker;
/// ```
#[derive(Clone)]
#[must_use]
pub struct BrokerConfig {
    pub(crate) stream: StreamConfig,
    pub(crate) overflow: OverflowPolicy,
    pub(crate) on_connect: Option<ClientHook>,
    pub(crate) on_disconnect: Option<ClientHook>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            stream: StreamConfig::default()
                .buffer_events(DEFAULT_BUFFER_EVENTS)
                .buffer_bytes(DEFAULT_BUFFER_BYTES),
            overflow: OverflowPolicy::default(),
            on_connect: None,
            on_disconnect: None,
        }
    }
}

impl BrokerConfig {
    /// Keep-alive interval of every client's stream (see
    /// [`StreamConfig::keep_alive`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = ssehub::broker::BrokerConfig::default().keep_alive(Some(Duration::from_secs(5)));
    /// # let _ = config;
    /// ```
    pub fn keep_alive(mut self, interval: Option<Duration>) -> Self {
        self.stream = self.stream.keep_alive(interval);
        self
    }

    /// Reconnection time sent to every client when it connects (see
    /// [`StreamConfig::retry`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = ssehub::broker::BrokerConfig::default().retry(Some(Duration::from_secs(1)));
    /// # let _ = config;
    /// ```
    pub fn retry(mut self, retry: Option<Duration>) -> Self {
        self.stream = self.stream.retry(retry);
        self
    }

    /// How many unsent events a client may have, per channel and in its
    /// direct queue, before the [`overflow`](Self::overflow) policy applies
    /// (the Go `ClientBufferSize`).
    ///
    /// ```
    /// let config = ssehub::broker::BrokerConfig::default().client_buffer_events(64);
    /// # let _ = config;
    /// ```
    pub fn client_buffer_events(mut self, events: usize) -> Self {
        self.stream = self.stream.buffer_events(events);
        self
    }

    /// How many unsent bytes a client may have, per channel and in its
    /// direct queue, before the [`overflow`](Self::overflow) policy applies.
    ///
    /// ```
    /// let config = ssehub::broker::BrokerConfig::default().client_buffer_bytes(256 * 1024);
    /// # let _ = config;
    /// ```
    pub fn client_buffer_bytes(mut self, bytes: usize) -> Self {
        self.stream = self.stream.buffer_bytes(bytes);
        self
    }

    /// What happens to a client that falls further behind than its buffer.
    ///
    /// ```
    /// use ssehub::broker::{BrokerConfig, OverflowPolicy};
    /// let config = BrokerConfig::default().overflow(OverflowPolicy::DropNewest);
    /// # let _ = config;
    /// ```
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// Whether responses carry `X-Accel-Buffering: no` (on by default).
    ///
    /// ```
    /// let config = ssehub::broker::BrokerConfig::default().accel_buffering_header(false);
    /// # let _ = config;
    /// ```
    pub fn accel_buffering_header(mut self, on: bool) -> Self {
        self.stream = self.stream.accel_buffering_header(on);
        self
    }

    /// Called when a client connects, before its setup runs and before any
    /// event reaches it (the Go `broker.OnConnect`).
    ///
    /// ```
    /// let config = ssehub::broker::BrokerConfig::default()
    ///     .on_connect(|client| tracing::info!(id = %client.id(), "connected"));
    /// # let _ = config;
    /// ```
    pub fn on_connect(mut self, hook: impl Fn(&Client) + Send + Sync + 'static) -> Self {
        self.on_connect = Some(Arc::new(hook));
        self
    }

    /// Called exactly once when a client is gone, after it has left every
    /// channel (the Go `broker.OnDisconnect`).
    ///
    /// ```
    /// let config = ssehub::broker::BrokerConfig::default()
    ///     .on_disconnect(|client| tracing::info!(id = %client.id(), "disconnected"));
    /// # let _ = config;
    /// ```
    pub fn on_disconnect(mut self, hook: impl Fn(&Client) + Send + Sync + 'static) -> Self {
        self.on_disconnect = Some(Arc::new(hook));
        self
    }

    pub(crate) fn buffer_events(&self) -> usize {
        self.stream.buffer_events
    }

    pub(crate) fn buffer_bytes(&self) -> usize {
        self.stream.buffer_bytes
    }
}

impl fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("stream", &self.stream)
            .field("overflow", &self.overflow)
            .field("on_connect", &self.on_connect.is_some())
            .field("on_disconnect", &self.on_disconnect.is_some())
            .finish()
    }
}
