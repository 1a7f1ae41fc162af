//! [`BrokerConfig`]: a broker's settings and hooks (the policies it
//! names are in `policy.rs`, which the files below the broker read).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Client;
use super::history::{HistoryConfig, HistoryStore};
use super::policy::{GapPolicy, JournalWindow, OverflowPolicy};
use super::writer::DirectWriteHook;
use crate::journal::Journal;
use crate::stream::{DEFAULT_BUFFER_BYTES, DEFAULT_BUFFER_EVENTS, StreamConfig};

/// A broker hook, called with the client concerned.
pub(crate) type ClientHook = Arc<dyn Fn(&Client) + Send + Sync>;

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
    pub(crate) history: HistoryConfig,
    pub(crate) history_store: Option<Arc<dyn HistoryStore>>,
    pub(crate) generate_ids: bool,
    pub(crate) gap: GapPolicy,
    pub(crate) on_connect: Option<ClientHook>,
    pub(crate) on_disconnect: Option<ClientHook>,
    pub(crate) on_direct_write: Option<DirectWriteHook>,
    pub(crate) write_burst: Duration,
    pub(crate) journal: Option<Arc<dyn Journal>>,
    pub(crate) journal_window: JournalWindow,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            stream: StreamConfig::default()
                .buffer_events(DEFAULT_BUFFER_EVENTS)
                .buffer_bytes(DEFAULT_BUFFER_BYTES),
            overflow: OverflowPolicy::default(),
            history: HistoryConfig::default(),
            history_store: None,
            generate_ids: true,
            gap: GapPolicy::default(),
            on_connect: None,
            on_disconnect: None,
            on_direct_write: None,
            write_burst: Duration::from_millis(5),
            journal: None,
            journal_window: JournalWindow {
                records: 1024,
                bytes: 4 << 20,
            },
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

    /// Bounds of the in-memory replay history (see [`HistoryConfig`]).
    ///
    /// ```
    /// use ssehub::broker::{BrokerConfig, HistoryConfig};
    /// let config = BrokerConfig::default().history(HistoryConfig::default().max_events(100));
    /// # let _ = config;
    /// ```
    pub fn history(mut self, history: HistoryConfig) -> Self {
        self.history = history;
        self
    }

    /// Keeps replay history in `store` instead of the in-memory default.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ssehub::broker::{BrokerConfig, MemoryHistory};
    /// let config = BrokerConfig::default().history_store(Arc::new(MemoryHistory::new(Default::default())));
    /// # let _ = config;
    /// ```
    pub fn history_store(mut self, store: Arc<dyn HistoryStore>) -> Self {
        self.history_store = Some(store);
        self
    }

    /// Whether events published without an id get one from the broker (on
    /// by default): `EEEEEEEE-P`, the broker's epoch and the event's publish
    /// position. Without ids a client cannot resume after an event.
    ///
    /// ```
    /// let config = ssehub::broker::BrokerConfig::default().generate_ids(false);
    /// # let _ = config;
    /// ```
    pub fn generate_ids(mut self, on: bool) -> Self {
        self.generate_ids = on;
        self
    }

    /// What a client whose `Last-Event-ID` cannot be resumed after is told
    /// and gets (see [`GapPolicy`]).
    ///
    /// ```
    /// use ssehub::broker::{BrokerConfig, GapPolicy, GapReplay};
    /// let config = BrokerConfig::default().gap(GapPolicy::default().replay(GapReplay::AllRetained));
    /// # let _ = config;
    /// ```
    pub fn gap(mut self, gap: GapPolicy) -> Self {
        self.gap = gap;
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

    /// Called by the broker's fan-out writer after it wrote an event (the
    /// encoded frame) straight to the sockets of `count` sleeping
    /// connections — events that never pass through a response body, so a
    /// server timing its writes there (a publish-to-write metric, say)
    /// learns of them here. Only connections served by
    /// [`ssehub::server`](crate) lend their sockets; the hook runs on the
    /// writer's task, once per up to 256 sockets visited: keep it short.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let written = Arc::new(AtomicUsize::new(0));
    /// let config = ssehub::broker::BrokerConfig::default().on_direct_write({
    ///     let written = written.clone();
    ///     move |_frame, count| {
    ///         written.fetch_add(count, Ordering::Relaxed);
    ///     }
    /// });
    /// # let _ = config;
    /// ```
    pub fn on_direct_write(mut self, hook: impl Fn(&[u8], usize) + Send + Sync + 'static) -> Self {
        self.on_direct_write = Some(Arc::new(hook));
        self
    }

    /// How long after a write to a lent socket new frames are left to its
    /// connection rather than written by the fan-out writer (5 ms by
    /// default). A connection woken for them takes everything waiting in
    /// one write, so when one publisher sends faster than sockets drain,
    /// a window batches more frames per write (fewer writes, later
    /// frames); zero has the writer write every publish, one write per
    /// socket per round of the writer, which is the lowest latency and
    /// keeps publishers and subscribers in step (a hub publishing for
    /// many publishers at once, say). Rounded down to milliseconds.
    ///
    /// ```
    /// let config = ssehub::broker::BrokerConfig::default().write_burst(std::time::Duration::ZERO);
    /// # let _ = config;
    /// ```
    pub fn write_burst(mut self, window: Duration) -> Self {
        self.write_burst = window;
        self
    }

    /// Runs the broker on `journal`: an ordered log that several brokers —
    /// replicas of one application, each with its own clients — share, so
    /// they act as one.
    ///
    /// With a journal:
    ///
    /// - **Every publish is one record.** `broadcast*`, `publish*` and
    ///   `publish_frame_to` append the channel names and the event, encoded
    ///   once without its id line, to the journal. Nothing is delivered
    ///   directly: the broker follows the journal and fans each record out
    ///   to its own clients in the channels named, so every replica — the
    ///   publisher's own included — delivers every event exactly once, all
    ///   in the journal's one order. A record of channels this broker has
    ///   no client in is dropped after reading its header.
    /// - **The id is the journal's.** An event gets `id:` its
    ///   [`JournalId`](crate::journal::JournalId), the same on every
    ///   replica (a caller-supplied id is replaced; with
    ///   [`generate_ids(false)`](Self::generate_ids) the event is sent as
    ///   encoded, caller id included). A pre-encoded frame is sent as is.
    /// - **Acknowledged or not.** The async [`Broker::publish`](super::Broker::publish),
    ///   [`Broker::publish_on`](super::Broker::publish_on) and
    ///   [`Channel::publish`](super::Channel::publish) resolve once the
    ///   journal stored the record, with its id, or fail with
    ///   [`BrokerError::Journal`](crate::BrokerError::Journal). The
    ///   synchronous `broadcast*` methods hand the record to an ordered
    ///   queue and return: a failure later is logged and counted in
    ///   [`BrokerStats::journal_append_errors`](super::BrokerStats::journal_append_errors).
    ///   A [`MemoryJournal`](crate::journal::MemoryJournal) stores and
    ///   delivers inline, before `broadcast` returns.
    /// - **The journal is the history.** A client that reconnects to *any*
    ///   replica with a journal id as `Last-Event-ID` gets what it missed on
    ///   its channels, then the live stream, with no gap and no duplicate; an
    ///   id the journal no longer holds (or of another epoch, or not a
    ///   journal id) is a gap, told as [`GapPolicy`] says.
    ///   [`history`](Self::history) and [`history_store`](Self::history_store)
    ///   are not used. Recent records are resumed from the broker's window
    ///   (see [`journal_window`](Self::journal_window)) at once, older ones
    ///   by reading the journal; see [`Client::resumed`](super::Client::resumed).
    ///
    /// Without a journal (the default) nothing changes: publishes are
    /// delivered in the call, from the in-memory history.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// use ssehub::broker::{Broker, BrokerConfig};
    /// use ssehub::journal::{MemoryJournal, Retention};
    ///
    /// let journal = Arc::new(MemoryJournal::new(Retention::default()));
    /// let broker = Broker::with_config(BrokerConfig::default().journal(journal));
    /// let published = broker.channel("news").unwrap().publish(ssehub::Event::new("hi")).await.unwrap();
    /// assert_eq!(published.id, published.journal_id.map(|id| id.to_string()));
    /// # }
    /// ```
    pub fn journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// How many recently followed records (and bytes of them) a journal
    /// broker keeps in memory: a client resuming after one of them is
    /// resumed at once, without reading the journal, and a resume that reads
    /// the journal meets the live stream in this window. Default 1024
    /// records, 4 MiB. Unused without a [`journal`](Self::journal).
    ///
    /// ```
    /// let config = ssehub::broker::BrokerConfig::default().journal_window(10_000, 16 << 20);
    /// # let _ = config;
    /// ```
    pub fn journal_window(mut self, records: usize, bytes: usize) -> Self {
        self.journal_window = JournalWindow { records, bytes };
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
            .field("history", &self.history)
            .field("history_store", &self.history_store)
            .field("generate_ids", &self.generate_ids)
            .field("gap", &self.gap)
            .field("on_connect", &self.on_connect.is_some())
            .field("on_disconnect", &self.on_disconnect.is_some())
            .field("on_direct_write", &self.on_direct_write.is_some())
            .field("journal", &self.journal)
            .field("journal_window", &self.journal_window)
            .finish()
    }
}
