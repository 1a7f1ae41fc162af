//! Configuration of an [`EventSource`].

use std::fmt;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::{DEFAULT_MAX_BACKOFF, DEFAULT_RETRY, Error, EventSource};
use crate::parse::DEFAULT_MAX_EVENT_SIZE;

/// Configures an [`EventSource`]; made by [`EventSource::builder`].
///
/// | setting | default |
/// | --- | --- |
/// | [`header`](Builder::header) | none beyond `Accept` and `Cache-Control` |
/// | [`last_event_id`](Builder::last_event_id) | none |
/// | [`retry`](Builder::retry) | [`DEFAULT_RETRY`] (3 s, like browsers) |
/// | [`max_backoff`](Builder::max_backoff) | [`DEFAULT_MAX_BACKOFF`] (30 s) |
/// | [`jitter`](Builder::jitter) | on |
/// | [`idle_timeout`](Builder::idle_timeout) | none (like browsers) |
/// | [`max_event_size`](Builder::max_event_size) | [`DEFAULT_MAX_EVENT_SIZE`] (16 MiB) |
/// | [`client`](Builder::client) | a new `reqwest::Client` with reqwest's defaults |
///
/// ```
/// use std::time::Duration;
/// use ssehub::eventsource::EventSource;
///
/// let source = EventSource::builder("http://127.0.0.1:8080/events")
///     .header("authorization", "Bearer secret")
///     .last_event_id("41")
///     .retry(Duration::from_secs(1))
///     .max_backoff(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// assert_eq!(source.last_event_id(), "41");
/// assert_eq!(source.reconnection_time(), Duration::from_secs(1));
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    url: String,
    headers: HeaderMap,
    header_error: Option<String>,
    last_event_id: String,
    retry: Duration,
    max_backoff: Duration,
    jitter: bool,
    idle_timeout: Option<Duration>,
    max_event_size: usize,
    client: Option<reqwest::Client>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may be credentials: show the names only.
        f.debug_struct("Builder")
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("last_event_id", &self.last_event_id)
            .field("retry", &self.retry)
            .field("max_backoff", &self.max_backoff)
            .field("jitter", &self.jitter)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_event_size", &self.max_event_size)
            .field("client", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

impl Builder {
    pub(super) fn new(url: String) -> Self {
        Self {
            url,
            headers: HeaderMap::new(),
            header_error: None,
            last_event_id: String::new(),
            retry: DEFAULT_RETRY,
            max_backoff: DEFAULT_MAX_BACKOFF,
            jitter: true,
            idle_timeout: None,
            max_event_size: DEFAULT_MAX_EVENT_SIZE,
            client: None,
        }
    }

    /// Adds a header to every request (appended, so a name may repeat). `Accept`,
    /// `Cache-Control` and `Last-Event-ID` are the event source's own: values given here for
    /// them are replaced (use [`last_event_id`](Builder::last_event_id) for the latter). An
    /// invalid name or value makes [`build`](Builder::build) fail with
    /// [`Error::InvalidHeader`].
    ///
    /// ```
    /// use ssehub::eventsource::{Error, EventSource};
    ///
    /// assert!(EventSource::builder("http://localhost/").header("x-token", "abc").build().is_ok());
    /// let bad = EventSource::builder("http://localhost/").header("x-token", "a\nb").build();
    /// assert!(matches!(bad, Err(Error::InvalidHeader(_))));
    /// ```
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: fmt::Display,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: fmt::Display,
    {
        if self.header_error.is_some() {
            return self;
        }
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            (Err(err), _) => self.header_error = Some(format!("name: {err}")),
            (_, Err(err)) => self.header_error = Some(format!("value: {err}")),
        }
        self
    }

    /// The last event id to start from, sent as `Last-Event-ID` on the first request (and on
    /// reconnections until the server sends an `id`), as if an earlier connection had seen it.
    /// The empty string (the default) sends none. An id containing NUL, CR or LF makes
    /// [`build`](Builder::build) fail with [`Error::InvalidLastEventId`].
    ///
    /// ```
    /// use ssehub::eventsource::EventSource;
    ///
    /// let source = EventSource::builder("http://localhost/").last_event_id("7").build().unwrap();
    /// assert_eq!(source.last_event_id(), "7");
    /// ```
    pub fn last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = id.into();
        self
    }

    /// The initial reconnection time: the wait before reconnecting, until the server sets its
    /// own with a `retry:` field. Default [`DEFAULT_RETRY`], 3 s, as browsers use.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ssehub::eventsource::EventSource;
    ///
    /// let source = EventSource::builder("http://localhost/")
    ///     .retry(Duration::from_millis(500))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(source.reconnection_time(), Duration::from_millis(500));
    /// ```
    pub fn retry(mut self, reconnection_time: Duration) -> Self {
        self.retry = reconnection_time;
        self
    }

    /// The longest wait the exponential backoff grows to while attempts keep failing. Default
    /// [`DEFAULT_MAX_BACKOFF`], 30 s. A reconnection time larger than this (set here or by the
    /// server's `retry:`) is still honoured: the wait is never shorter than the reconnection
    /// time. See [`EventSource`] for the whole rule.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ssehub::eventsource::EventSource;
    ///
    /// let builder = EventSource::builder("http://localhost/").max_backoff(Duration::from_secs(5));
    /// assert!(builder.build().is_ok());
    /// ```
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// Whether backoff waits are randomised (default on), so that many clients that lost the
    /// same server do not come back in lock step. With jitter, a backoff wait `d` becomes a
    /// uniformly random value between `max(d / 2, reconnection time)` and `d`. The wait after a
    /// connection that was open, and after a first failure, is always exactly the reconnection
    /// time.
    ///
    /// ```
    /// use ssehub::eventsource::EventSource;
    ///
    /// assert!(EventSource::builder("http://localhost/").jitter(false).build().is_ok());
    /// ```
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// Drops a connection when nothing arrives for this long, neither the response head nor
    /// any body bytes (keep-alive comments count), and reconnects after
    /// [`Error::Timeout`]. Default `None`: wait forever, as browsers do. Set it to a few times
    /// the server's keep-alive interval (ssehub servers send one every 15 s by default) to
    /// notice a dead peer that never closed the connection.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ssehub::eventsource::EventSource;
    ///
    /// let builder = EventSource::builder("http://localhost/").idle_timeout(Some(Duration::from_secs(45)));
    /// assert!(builder.build().is_ok());
    /// ```
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The most bytes buffered for one event (see [`Parser::with_max_event_size`]). A larger
    /// event is dropped and reported as [`Error::Parse`]; the stream goes on. Default
    /// [`DEFAULT_MAX_EVENT_SIZE`] (16 MiB).
    ///
    /// [`Parser::with_max_event_size`]: crate::parse::Parser::with_max_event_size
    ///
    /// ```
    /// use ssehub::eventsource::EventSource;
    ///
    /// assert!(EventSource::builder("http://localhost/").max_event_size(64 * 1024).build().is_ok());
    /// ```
    pub fn max_event_size(mut self, max: usize) -> Self {
        self.max_event_size = max;
        self
    }

    /// The `reqwest::Client` to make requests with, for its connection pool, proxy, TLS,
    /// timeouts or redirect policy. By default a new client with reqwest's defaults is made
    /// (redirects followed, up to 10). Note that a client-wide `timeout` would cut long-lived
    /// streams; use [`idle_timeout`](Builder::idle_timeout) instead.
    ///
    /// `https` URLs need a TLS feature of reqwest, which the application enables in its own
    /// `Cargo.toml` (for example `reqwest = { version = "0.12", features = ["rustls-tls"] }`);
    /// ssehub enables none.
    ///
    /// ```
    /// use ssehub::eventsource::EventSource;
    ///
    /// let client = reqwest::Client::builder().user_agent("my-app/1.0").build().unwrap();
    /// assert!(EventSource::builder("http://localhost/").client(client).build().is_ok());
    /// ```
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Makes the [`EventSource`]. Nothing is sent until the stream is first polled.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when the URL does not parse or is not `http`/`https`,
    /// [`Error::InvalidHeader`], [`Error::InvalidLastEventId`], and [`Error::Request`] when
    /// no default `reqwest::Client` can be made.
    ///
    /// ```
    /// use ssehub::eventsource::{Error, EventSource};
    ///
    /// assert!(EventSource::builder("http://localhost:8080/events").build().is_ok());
    /// assert!(matches!(EventSource::builder("not a url").build(), Err(Error::InvalidUrl(_))));
    /// assert!(matches!(EventSource::builder("ftp://host/").build(), Err(Error::InvalidUrl(_))));
    /// ```
    pub fn build(self) -> Result<EventSource, Error> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|err| Error::InvalidUrl(format!("{:?}: {err}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::InvalidUrl(format!(
                "{:?}: scheme must be http or https",
                self.url
            )));
        }
        if let Some(err) = self.header_error {
            return Err(Error::InvalidHeader(err));
        }
        if self.last_event_id.contains(['\0', '\r', '\n']) {
            return Err(Error::InvalidLastEventId);
        }
        let client = match self.client {
            Some(client) => client,
            None => reqwest::Client::builder().build().map_err(Error::Request)?,
        };
        Ok(EventSource::from_parts(super::Config {
            url,
            headers: self.headers,
            last_event_id: self.last_event_id,
            retry: self.retry,
            max_backoff: self.max_backoff,
            jitter: self.jitter,
            idle_timeout: self.idle_timeout,
            max_event_size: self.max_event_size,
            client,
        }))
    }
}
