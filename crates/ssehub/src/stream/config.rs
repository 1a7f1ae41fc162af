//! [`StreamConfig`]: keep-alive, retry, buffer bounds and hooks of one stream.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Sender;

/// A connection hook: called with the stream's [`Sender`].
pub(crate) type Hook = Arc<dyn Fn(&Sender) + Send + Sync>;

/// Default interval between keep-alive comments on an idle stream.
///
/// 15 seconds: well under the 30–60 s idle timeouts of common proxies and load
/// balancers, and short enough that a vanished client is noticed quickly.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Default reconnection time announced with `retry:` when a stream opens.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(3);

/// Default bound on the events queued for one client.
pub const DEFAULT_BUFFER_EVENTS: usize = 256;

/// Default bound on the bytes queued for one client (1 MiB).
pub const DEFAULT_BUFFER_BYTES: usize = 1 << 20;

/// Configuration of a single-client stream: the Go `Config`.
///
/// Built by value; every setter returns the updated configuration.
///
/// | Go `Config`          | `StreamConfig`                      | default |
/// |----------------------|-------------------------------------|---------|
/// | `KeepAliveInterval`  | [`keep_alive`](Self::keep_alive)     | 15 s    |
/// | `RetryInterval`      | [`retry`](Self::retry)               | 3 s     |
/// | `OnConnect`          | [`on_connect`](Self::on_connect)     | none    |
/// | `OnDisconnect`       | [`on_disconnect`](Self::on_disconnect) | none  |
/// | –                    | [`buffer_events`](Self::buffer_events) | 256   |
/// | –                    | [`buffer_bytes`](Self::buffer_bytes) | 1 MiB   |
/// | –                    | [`accel_buffering_header`](Self::accel_buffering_header) | on |
///
/// ```
/// use std::time::Duration;
/// use ssehub::StreamConfig;
///
/// let config = StreamConfig::default()
///     .keep_alive(Some(Duration::from_secs(10)))
///     .retry(Some(Duration::from_millis(1500)))
///     .buffer_events(64)
///     .on_connect(|sender| println!("client connected, resume after {:?}", sender.last_event_id()));
/// # let _ = config;
/// ```
#[derive(Clone)]
#[must_use]
pub struct StreamConfig {
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) retry: Option<Duration>,
    pub(crate) buffer_events: usize,
    pub(crate) buffer_bytes: usize,
    pub(crate) accel_buffering_header: bool,
    pub(crate) on_connect: Option<Hook>,
    pub(crate) on_disconnect: Option<Hook>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            keep_alive: Some(DEFAULT_KEEP_ALIVE),
            retry: Some(DEFAULT_RETRY),
            buffer_events: DEFAULT_BUFFER_EVENTS,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            accel_buffering_header: true,
            on_connect: None,
            on_disconnect: None,
        }
    }
}

impl StreamConfig {
    /// Interval of keep-alive comments on an idle stream; `None` turns them off.
    ///
    /// The timer restarts whenever real data is written, so a busy stream
    /// carries no keep-alives. A keep-alive is also what reveals a client that
    /// vanished without closing its socket: it is noticed within one interval.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = ssehub::StreamConfig::default().keep_alive(Some(Duration::from_secs(5)));
    /// # let _ = config;
    /// ```
    pub fn keep_alive(mut self, interval: Option<Duration>) -> Self {
        // A zero interval would spin; treat it as the smallest useful one.
        self.keep_alive = interval.map(|d| d.max(Duration::from_millis(1)));
        self
    }

    /// Reconnection time sent as `retry:` when the stream opens; `None` sends
    /// a bare comment instead, so headers and first bytes still go out at once.
    ///
    /// Values above [`MAX_RETRY_MS`](crate::event::MAX_RETRY_MS) are clamped
    /// here, since a configuration is not caller data that could be refused later.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = ssehub::StreamConfig::default().retry(Some(Duration::from_secs(1)));
    /// # let _ = config;
    /// ```
    pub fn retry(mut self, retry: Option<Duration>) -> Self {
        let max = Duration::from_millis(crate::event::MAX_RETRY_MS);
        self.retry = retry.map(|d| d.min(max));
        self
    }

    /// Maximum number of events queued for the client (at least 1).
    ///
    /// [`Sender::send`] waits for room and [`Sender::try_send`] fails with
    /// [`TrySendError::Full`](crate::TrySendError::Full) when the bound is reached.
    ///
    /// ```
    /// let config = ssehub::StreamConfig::default().buffer_events(32);
    /// # let _ = config;
    /// ```
    pub fn buffer_events(mut self, events: usize) -> Self {
        self.buffer_events = events.max(1);
        self
    }

    /// Maximum number of encoded bytes queued for the client (at least 1).
    ///
    /// A single event larger than the bound is still accepted when the queue
    /// is empty, so a big event cannot block a stream forever.
    ///
    /// ```
    /// let config = ssehub::StreamConfig::default().buffer_bytes(64 * 1024);
    /// # let _ = config;
    /// ```
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes.max(1);
        self
    }

    /// Whether responses carry `X-Accel-Buffering: no`, which tells nginx not
    /// to buffer the stream. On by default.
    ///
    /// ```
    /// let config = ssehub::StreamConfig::default().accel_buffering_header(false);
    /// # let _ = config;
    /// ```
    pub fn accel_buffering_header(mut self, on: bool) -> Self {
        self.accel_buffering_header = on;
        self
    }

    /// Called once when a stream opens, before any event is sent on it.
    ///
    /// ```
    /// let config = ssehub::StreamConfig::default()
    ///     .on_connect(|sender| tracing::info!(closed = sender.is_closed(), "connected"));
    /// # let _ = config;
    /// ```
    pub fn on_connect(mut self, hook: impl Fn(&Sender) + Send + Sync + 'static) -> Self {
        self.on_connect = Some(Arc::new(hook));
        self
    }

    /// Called exactly once when the stream ends, whatever the reason (client
    /// gone, [`Sender::close`], every sender dropped).
    ///
    /// ```
    /// let config = ssehub::StreamConfig::default()
    ///     .on_disconnect(|_sender| tracing::info!("disconnected"));
    /// # let _ = config;
    /// ```
    pub fn on_disconnect(mut self, hook: impl Fn(&Sender) + Send + Sync + 'static) -> Self {
        self.on_disconnect = Some(Arc::new(hook));
        self
    }

    /// The configured keep-alive interval.
    ///
    /// ```
    /// assert!(ssehub::StreamConfig::default().keep_alive_interval().is_some());
    /// ```
    #[must_use]
    pub fn keep_alive_interval(&self) -> Option<std::time::Duration> {
        self.keep_alive
    }

    /// The configured reconnection time.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(ssehub::StreamConfig::default().retry_interval(), Some(Duration::from_secs(3)));
    /// ```
    #[must_use]
    pub fn retry_interval(&self) -> Option<std::time::Duration> {
        self.retry
    }
}

impl fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamConfig")
            .field("keep_alive", &self.keep_alive)
            .field("retry", &self.retry)
            .field("buffer_events", &self.buffer_events)
            .field("buffer_bytes", &self.buffer_bytes)
            .field("accel_buffering_header", &self.accel_buffering_header)
            .field("on_connect", &self.on_connect.is_some())
            .field("on_disconnect", &self.on_disconnect.is_some())
            .finish()
    }
}
