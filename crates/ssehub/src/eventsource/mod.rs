//! A reconnecting event-stream client: the browser's `EventSource`, in Rust (feature `eventsource`, formerly `client`).
//!
//! An [`EventSource`] is a [`Stream`] of [`ClientEvent`]s (`Open`, then `Message`s) and
//! [`Error`]s. It follows the WHATWG [processing model] as browsers do:
//!
//! * every request is a `GET` with `Accept: text/event-stream` and `Cache-Control: no-cache`,
//!   plus `Last-Event-ID` with the last event id seen, when it is not empty (an `id` field with
//!   an empty value resets it, and the next request carries none); redirects are followed by
//!   the `reqwest::Client` (its default policy follows up to 10);
//! * a `200 OK` whose `Content-Type` is `text/event-stream` (parameters such as
//!   `;charset=utf-8` allowed, case ignored) opens the stream: [`ClientEvent::Open`];
//! * any other status, `204 No Content` included, and any other content type **stop the
//!   stream for good**: a last, [fatal](Error::is_fatal) error item, then the end of the
//!   stream, and no further request;
//! * the body is read with ssehub's own [`Parser`]; `retry:` sets the reconnection time; an
//!   event cut off by the end of a connection is discarded;
//! * when a connection ends ([`Error::StreamEnded`]), breaks or cannot be made
//!   ([`Error::Transport`]), the error is an item of the stream, like the `error` event a
//!   browser fires, and a new request follows after a wait.
//!
//! # The wait before reconnecting
//!
//! With `r` the reconnection time ([`Builder::retry`], 3 s by default, replaced by the
//! server's `retry:`) and `n` the number of consecutive attempts that failed without opening
//! the stream:
//!
//! * after a connection that was open, and after a first failure (`n ≤ 1`): exactly `r`, as in
//!   browsers;
//! * from the second consecutive failure on: `d = min(max(r, 100 ms) × 2^(n−1), max(max_backoff, r))`
//!   ([`Builder::max_backoff`], 30 s by default); with [jitter](Builder::jitter) (on by
//!   default) a uniformly random value in `[max(d / 2, r), d]`;
//! * a successful open resets `n` to 0.
//!
//! So the wait is never shorter than the reconnection time (the specification's minimum) and,
//! unless the server's `retry:` asks for more, never longer than `max_backoff`.
//! [`EventSource::reconnect_delay`] tells the wait chosen.
//!
//! # Bounds
//!
//! One event buffers at most [`Builder::max_event_size`] bytes (larger ones are dropped and
//! reported as [`Error::Parse`]); the body is only read as fast as the stream is polled; the
//! parser's output for one received chunk is the most ever queued. Nothing a server sends
//! makes the client panic. [`Builder::idle_timeout`] bounds how long a silent connection is
//! kept (by default, as in browsers, forever).
//!
//! # Stopping
//!
//! [`EventSource::close`], a [`Closer`] from another task, or dropping the stream stop
//! everything: the connection or the pending wait is dropped and no request is made again.
//!
//! The stream needs a tokio runtime with its time driver (reqwest needs tokio anyway). It is
//! HTTP/1.1 over plain TCP unless the application enables more reqwest features (`http2`, a
//! TLS backend) in its own `Cargo.toml`; see [`Builder::client`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! # let url = format!("http://{}/events", listener.local_addr().unwrap());
//! # tokio::spawn(async move {
//! #     // First connection: a stream that ends; second: 204 No Content.
//! #     for answer in [
//! #         &b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\nretry: 10\n\nid: 1\nevent: greeting\ndata: hello\n\n"[..],
//! #         &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
//! #     ] {
//! #         let (mut socket, _) = listener.accept().await.unwrap();
//! #         let mut request = Vec::new();
//! #         while !request.ends_with(b"\r\n\r\n") {
//! #             let mut byte = [0];
//! #             if socket.read(&mut byte).await.unwrap() == 0 { break }
//! #             request.push(byte[0]);
//! #         }
//! #         socket.write_all(answer).await.unwrap();
//! #     }
//! # });
//! use futures_util::StreamExt;
//! use ssehub::eventsource::{ClientEvent, Error, EventSource};
//!
//! let mut source = EventSource::new(&url).unwrap();
//! let mut seen = Vec::new();
//! while let Some(item) = source.next().await {
//!     match item {
//!         Ok(ClientEvent::Open) => seen.push("open".to_string()),
//!         Ok(ClientEvent::Message(message)) => {
//!             seen.push(format!("{} {} (id {})", message.event, message.data, message.last_event_id));
//!         }
//!         Err(error) if error.is_fatal() => seen.push(format!("stopped: {error}")),
//!         Err(error) => seen.push(format!("reconnecting: {error}")),
//!     }
//! }
//! assert_eq!(
//!     seen,
//!     [
//!         "open",
//!         "greeting hello (id 1)",
//!         "reconnecting: the server ended the event stream",
//!         "stopped: server answered 204 No Content",
//!     ]
//! );
//! # }
//! ```
//!
//! [processing model]: https://html.spec.whatwg.org/multipage/server-sent-events.html#sse-processing-model
//! [`Parser`]: crate::parse::Parser
#![cfg_attr(docsrs, doc(cfg(feature = "eventsource")))]

mod backoff;
mod builder;
mod error;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use futures_core::stream::FusedStream;
use http::StatusCode;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio::time::{Instant, Sleep};

pub use self::builder::Builder;
pub use self::error::Error;
pub use crate::parse::Message;
use crate::parse::{Item, Parser};

/// The reconnection time until a server sets one with `retry:`: 3 s, as browsers use.
///
/// ```
/// use ssehub::eventsource::{DEFAULT_RETRY, EventSource};
///
/// let source = EventSource::new("http://localhost/").unwrap();
/// assert_eq!(source.reconnection_time(), DEFAULT_RETRY);
/// assert_eq!(DEFAULT_RETRY.as_secs(), 3);
/// ```
pub const DEFAULT_RETRY: Duration = Duration::from_secs(3);

/// The default [`Builder::max_backoff`]: 30 s.
///
/// ```
/// assert_eq!(ssehub::eventsource::DEFAULT_MAX_BACKOFF.as_secs(), 30);
/// ```
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Body chunks read in one poll before yielding to the executor, so that a server flooding
/// bytes that make no item (comments, an oversized event) cannot monopolise the task.
const MAX_CHUNKS_PER_POLL: usize = 32;

/// What an [`EventSource`] yields when all goes well.
///
/// ```
/// use ssehub::eventsource::{ClientEvent, Message};
///
/// let event = ClientEvent::Message(Message {
///     event: "message".into(),
///     data: "hi".into(),
///     last_event_id: "3".into(),
/// });
/// assert!(matches!(event, ClientEvent::Message(ref m) if m.data == "hi"));
/// assert_ne!(event, ClientEvent::Open);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A connection was established: the server answered `200 OK` with
    /// `text/event-stream`. Yielded on every (re)connection, like the browser's `open` event.
    Open,
    /// A dispatched event: type (`message` by default), data, and the last event id at the
    /// time it was dispatched.
    Message(Message),
}

/// The browser's `readyState`.
///
/// ```
/// use ssehub::eventsource::{EventSource, ReadyState};
///
/// let mut source = EventSource::new("http://localhost/").unwrap();
/// assert_eq!(source.ready_state(), ReadyState::Connecting);
/// source.close();
/// assert_eq!(source.ready_state(), ReadyState::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadyState {
    /// Not connected yet, waiting to reconnect, or waiting for the response.
    Connecting,
    /// Receiving the event stream.
    Open,
    /// Stopped for good: closed, dropped by a fatal error.
    Closed,
}

/// A reconnecting Server-Sent Events client, as a [`Stream`] of
/// `Result<`[`ClientEvent`]`, `[`Error`]`>`. See the [module documentation](self) for the
/// behaviour; build one with [`EventSource::new`] or [`EventSource::builder`].
///
/// Nothing is sent until the stream is first polled. The stream ends (yields `None`) after a
/// fatal error or [`close`](EventSource::close), and only then.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// # let url = format!("http://{}/", listener.local_addr().unwrap());
/// # tokio::spawn(async move {
/// #     let (mut socket, _) = listener.accept().await.unwrap();
/// #     let mut request = Vec::new();
/// #     while !request.ends_with(b"\r\n\r\n") {
/// #         let mut byte = [0];
/// #         if socket.read(&mut byte).await.unwrap() == 0 { break }
/// #         request.push(byte[0]);
/// #     }
/// #     assert!(String::from_utf8_lossy(&request).contains("last-event-id: 41\r\n"));
/// #     socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream;charset=utf-8\r\n\r\nid: 42\ndata: {\"n\":42}\n\n").await.unwrap();
/// #     std::future::pending::<()>().await;
/// # });
/// use futures_util::StreamExt;
/// use ssehub::eventsource::{ClientEvent, EventSource, ReadyState};
///
/// let mut source = EventSource::builder(&url).last_event_id("41").build().unwrap();
/// assert_eq!(source.next().await.unwrap().unwrap(), ClientEvent::Open);
/// assert_eq!(source.ready_state(), ReadyState::Open);
/// let Some(Ok(ClientEvent::Message(message))) = source.next().await else { panic!() };
/// assert_eq!((message.data.as_str(), message.last_event_id.as_str()), (r#"{"n":42}"#, "42"));
/// assert_eq!(source.last_event_id(), "42");
/// source.close();
/// assert!(source.next().await.is_none());
/// # }
/// ```
pub struct EventSource {
    url: reqwest::Url,
    /// The builder's extra headers, without the ones the event source sets itself.
    headers: HeaderMap,
    client: reqwest::Client,
    /// Keeps the last event id across connections.
    parser: Parser,
    reconnection_time: Duration,
    max_backoff: Duration,
    jitter: bool,
    idle_timeout: Option<Duration>,
    /// Consecutive attempts that failed before the stream opened.
    failures: u32,
    state: State,
    shared: Arc<Shared>,
}

/// Everything [`Builder::build`] has validated.
struct Config {
    url: reqwest::Url,
    headers: HeaderMap,
    last_event_id: String,
    retry: Duration,
    max_backoff: Duration,
    jitter: bool,
    idle_timeout: Option<Duration>,
    max_event_size: usize,
    client: reqwest::Client,
}

type ResponseFuture = Pin<Box<dyn Future<Output = reqwest::Result<reqwest::Response>> + Send>>;
type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

enum State {
    /// Connect at the next poll.
    Start,
    /// Waiting the given delay before reconnecting.
    Waiting(Pin<Box<Sleep>>, Duration),
    /// Request sent, waiting for the response head.
    Connecting(ResponseFuture, Option<Pin<Box<Sleep>>>),
    /// Reading the event stream.
    Open(BodyStream, Option<Pin<Box<Sleep>>>),
    /// Stopped for good.
    Closed,
}

/// What a poll of the current state decided, applied once its borrows end.
enum Step {
    Pending,
    Connect,
    Response(reqwest::Response),
    /// The connection attempt failed, or an open connection ended or broke (`opened`).
    Retry {
        error: Error,
        opened: bool,
    },
    Fatal(Error),
}

/// State shared with [`Closer`]s.
#[derive(Default)]
struct Shared {
    closed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl EventSource {
    /// An event source for `url` with the default settings (see [`Builder`]).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when `url` does not parse or is not `http`/`https`;
    /// [`Error::Request`] when no `reqwest::Client` can be made.
    ///
    /// ```
    /// use ssehub::eventsource::EventSource;
    ///
    /// let source = EventSource::new("http://localhost:8080/events").unwrap();
    /// assert_eq!(source.url().as_str(), "http://localhost:8080/events");
    /// assert!(EventSource::new("/relative").is_err());
    /// ```
    pub fn new(url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(url).build()
    }

    /// A [`Builder`] for an event source of `url`; the URL is checked by
    /// [`build`](Builder::build).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ssehub::eventsource::EventSource;
    ///
    /// let source = EventSource::builder("http://localhost/events")
    ///     .retry(Duration::from_millis(250))
    ///     .jitter(false)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(source.reconnection_time(), Duration::from_millis(250));
    /// ```
    pub fn builder(url: impl Into<String>) -> Builder {
        Builder::new(url.into())
    }

    fn from_parts(config: Config) -> Self {
        let mut headers = config.headers;
        headers.remove(ACCEPT);
        headers.remove(CACHE_CONTROL);
        headers.remove(crate::LAST_EVENT_ID);
        let mut parser = Parser::new().with_max_event_size(config.max_event_size);
        if !config.last_event_id.is_empty() {
            // The parser keeps the last event id across connections but has no setter: an id
            // line and a blank line set it without dispatching anything (the builder rejected
            // NUL, CR and LF), and `finish` readies it for the first real stream (BOM included).
            let mut line = Vec::with_capacity(config.last_event_id.len() + 6);
            line.extend_from_slice(b"id: ");
            line.extend_from_slice(config.last_event_id.as_bytes());
            line.extend_from_slice(b"\n\n");
            parser.feed(&line);
            parser.finish();
            parser.drain().for_each(drop);
        }
        Self {
            url: config.url,
            headers,
            client: config.client,
            parser,
            reconnection_time: config.retry,
            max_backoff: config.max_backoff,
            jitter: config.jitter,
            idle_timeout: config.idle_timeout,
            failures: 0,
            state: State::Start,
            shared: Arc::default(),
        }
    }

    /// The URL requests go to (before any redirect).
    ///
    /// ```
    /// use ssehub::eventsource::EventSource;
    ///
    /// let source = EventSource::new("http://localhost/a/../events").unwrap();
    /// assert_eq!(source.url().path(), "/events");
    /// ```
    #[must_use]
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// Where the event source is: connecting (or waiting to), open, or closed for good.
    ///
    /// ```
    /// use ssehub::eventsource::{EventSource, ReadyState};
    ///
    /// let source = EventSource::new("http://localhost/").unwrap();
    /// assert_eq!(source.ready_state(), ReadyState::Connecting);
    /// ```
    #[must_use]
    pub fn ready_state(&self) -> ReadyState {
        match self.state {
            _ if self.shared.closed.load(Ordering::Acquire) => ReadyState::Closed,
            State::Closed => ReadyState::Closed,
            State::Open(..) => ReadyState::Open,
            State::Start | State::Waiting(..) | State::Connecting(..) => ReadyState::Connecting,
        }
    }

    /// The last event id: what the next request sends as `Last-Event-ID` (none when empty).
    ///
    /// ```
    /// use ssehub::eventsource::EventSource;
    ///
    /// assert_eq!(EventSource::new("http://localhost/").unwrap().last_event_id(), "");
    /// ```
    #[must_use]
    pub fn last_event_id(&self) -> &str {
        self.parser.last_event_id()
    }

    /// The reconnection time: the builder's [`retry`](Builder::retry) until the server sends
    /// `retry:`, then the server's value.
    ///
    /// ```
    /// use ssehub::eventsource::{DEFAULT_RETRY, EventSource};
    ///
    /// assert_eq!(EventSource::new("http://localhost/").unwrap().reconnection_time(), DEFAULT_RETRY);
    /// ```
    #[must_use]
    pub fn reconnection_time(&self) -> Duration {
        self.reconnection_time
    }

    /// While waiting to reconnect, the wait chosen (reconnection time, backoff and jitter
    /// included; see the [module documentation](self)), counted from the error item that
    /// preceded it. `None` otherwise.
    ///
    /// ```
    /// use ssehub::eventsource::EventSource;
    ///
    /// assert_eq!(EventSource::new("http://localhost/").unwrap().reconnect_delay(), None);
    /// ```
    #[must_use]
    pub fn reconnect_delay(&self) -> Option<Duration> {
        match self.state {
            State::Waiting(_, delay) if !self.shared.closed.load(Ordering::Acquire) => Some(delay),
            _ => None,
        }
    }

    /// Stops for good, as the browser's `close()`: the connection or the pending wait is
    /// dropped at once, no request is made again, and the stream ends.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use futures_util::StreamExt;
    /// use ssehub::eventsource::EventSource;
    ///
    /// let mut source = EventSource::new("http://localhost/").unwrap();
    /// source.close();
    /// assert!(source.next().await.is_none());
    /// # }
    /// ```
    pub fn close(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.state = State::Closed;
    }

    /// A handle that can [`close`](Closer::close) this event source from elsewhere, for
    /// example from another task while this one is consuming the stream.
    ///
    /// ```
    /// use ssehub::eventsource::{EventSource, ReadyState};
    ///
    /// let source = EventSource::new("http://localhost/").unwrap();
    /// let closer = source.closer();
    /// closer.close();
    /// assert_eq!(source.ready_state(), ReadyState::Closed);
    /// ```
    #[must_use]
    pub fn closer(&self) -> Closer {
        Closer {
            shared: self.shared.clone(),
        }
    }

    /// Sends a request with the event source's headers.
    fn connect(&self) -> State {
        let mut headers = self.headers.clone();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let id = self.parser.last_event_id();
        if !id.is_empty() {
            // Ids come from the stream, so they hold no CR, LF or NUL; other control
            // characters are valid in an id but not in an HTTP header, and such an id is not
            // sent (the server sees a client without a last event id).
            if let Ok(value) = HeaderValue::from_bytes(id.as_bytes()) {
                headers.insert(crate::LAST_EVENT_ID, value);
            }
        }
        let response = self.client.get(self.url.clone()).headers(headers).send();
        State::Connecting(Box::pin(response), self.idle_timer())
    }

    fn idle_timer(&self) -> Option<Pin<Box<Sleep>>> {
        self.idle_timeout
            .map(|timeout| Box::pin(tokio::time::sleep(timeout)))
    }

    /// Checks the response as the specification says, and opens the stream or fails it.
    fn open(&mut self, response: reqwest::Response) -> Result<ClientEvent, Error> {
        let status = response.status();
        if status != StatusCode::OK {
            return Err(self.fail(Error::Http(status)));
        }
        let content_type = response.headers().get(CONTENT_TYPE);
        if !content_type.is_some_and(is_event_stream) {
            let received = content_type.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            return Err(self.fail(Error::ContentType(received)));
        }
        self.failures = 0;
        self.state = State::Open(Box::pin(response.bytes_stream()), self.idle_timer());
        Ok(ClientEvent::Open)
    }

    /// Fails the connection for good.
    fn fail(&mut self, error: Error) -> Error {
        self.state = State::Closed;
        error
    }

    /// Schedules a reconnection after a failed attempt or a lost connection.
    fn retry_later(&mut self, error: Error, opened: bool) -> Error {
        if opened {
            // The cut-off event, if any, is discarded.
            self.parser.finish();
        } else {
            self.failures = self.failures.saturating_add(1);
        }
        let delay = backoff::delay(
            self.reconnection_time,
            self.failures,
            self.max_backoff,
            self.jitter,
        );
        self.state = State::Waiting(Box::pin(tokio::time::sleep(delay)), delay);
        error
    }

    /// Lets a [`Closer`] wake this task; only needed while one exists.
    fn register_closer(&self, cx: &Context<'_>) {
        if Arc::strong_count(&self.shared) > 1 {
            let mut waker = crate::sync::lock(&self.shared.waker);
            match &mut *waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
    }
}

impl Stream for EventSource {
    type Item = Result<ClientEvent, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let mut chunks = 0;
        loop {
            if this.shared.closed.load(Ordering::Acquire) {
                this.state = State::Closed;
            }
            if matches!(this.state, State::Closed) {
                return Poll::Ready(None);
            }
            // Items of the chunks already read come first.
            while let Some(item) = this.parser.next_item() {
                match item {
                    Item::Message(message) => {
                        return Poll::Ready(Some(Ok(ClientEvent::Message(message))));
                    }
                    Item::Retry(time) => this.reconnection_time = time,
                    Item::Comment(_) => {}
                    Item::Error(error) => return Poll::Ready(Some(Err(Error::Parse(error)))),
                }
            }
            let step = match &mut this.state {
                State::Closed => return Poll::Ready(None),
                State::Start => Step::Connect,
                State::Waiting(sleep, _) => match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Step::Connect,
                    Poll::Pending => Step::Pending,
                },
                State::Connecting(response, timer) => match response.as_mut().poll(cx) {
                    Poll::Ready(Ok(response)) => Step::Response(response),
                    Poll::Ready(Err(error)) if error.is_builder() => {
                        Step::Fatal(Error::Request(error))
                    }
                    Poll::Ready(Err(error)) => Step::Retry {
                        error: Error::Transport(error),
                        opened: false,
                    },
                    Poll::Pending if expired(timer, cx) => Step::Retry {
                        error: Error::Timeout,
                        opened: false,
                    },
                    Poll::Pending => Step::Pending,
                },
                State::Open(body, timer) => {
                    if chunks == MAX_CHUNKS_PER_POLL {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    match body.as_mut().poll_next(cx) {
                        Poll::Ready(Some(Ok(chunk))) => {
                            chunks += 1;
                            this.parser.feed(&chunk);
                            if let (Some(timer), Some(timeout)) = (timer, this.idle_timeout) {
                                timer.as_mut().reset(Instant::now() + timeout);
                            }
                            continue;
                        }
                        Poll::Ready(Some(Err(error))) => Step::Retry {
                            error: Error::Transport(error),
                            opened: true,
                        },
                        Poll::Ready(None) => Step::Retry {
                            error: Error::StreamEnded,
                            opened: true,
                        },
                        Poll::Pending if expired(timer, cx) => Step::Retry {
                            error: Error::Timeout,
                            opened: true,
                        },
                        Poll::Pending => Step::Pending,
                    }
                }
            };
            match step {
                Step::Pending => {
                    this.register_closer(cx);
                    if this.shared.closed.load(Ordering::Acquire) {
                        continue;
                    }
                    return Poll::Pending;
                }
                Step::Connect => this.state = this.connect(),
                Step::Response(response) => return Poll::Ready(Some(this.open(response))),
                Step::Retry { error, opened } => {
                    return Poll::Ready(Some(Err(this.retry_later(error, opened))));
                }
                Step::Fatal(error) => return Poll::Ready(Some(Err(this.fail(error)))),
            }
        }
    }
}

impl FusedStream for EventSource {
    fn is_terminated(&self) -> bool {
        self.ready_state() == ReadyState::Closed
    }
}

impl fmt::Debug for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSource")
            .field("url", &self.url.as_str())
            .field("ready_state", &self.ready_state())
            .field("last_event_id", &self.last_event_id())
            .field("reconnection_time", &self.reconnection_time)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

/// Closes an [`EventSource`] from anywhere; made by [`EventSource::closer`]. Closing wakes
/// the task polling the stream, which then drops its connection and ends the stream.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use futures_util::StreamExt;
/// use ssehub::eventsource::EventSource;
///
/// // Nothing listens on port 9 (discard): the source keeps retrying until closed.
/// let mut source = EventSource::builder("http://127.0.0.1:9/")
///     .retry(std::time::Duration::from_millis(10))
///     .build()
///     .unwrap();
/// let closer = source.closer();
/// let consumer = tokio::spawn(async move {
///     let mut errors = 0;
///     while let Some(item) = source.next().await {
///         assert!(item.is_err());
///         errors += 1;
///     }
///     errors
/// });
/// tokio::time::sleep(std::time::Duration::from_millis(50)).await;
/// closer.close();
/// assert!(closer.is_closed());
/// assert!(consumer.await.unwrap() >= 1);
/// # }
/// ```
#[derive(Clone)]
pub struct Closer {
    shared: Arc<Shared>,
}

impl Closer {
    /// Closes the event source for good (see [`EventSource::close`]).
    ///
    /// ```
    /// use ssehub::eventsource::EventSource;
    ///
    /// let source = EventSource::new("http://localhost/").unwrap();
    /// source.closer().close();
    /// assert!(source.closer().is_closed());
    /// ```
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        let waker = crate::sync::lock(&self.shared.waker).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the event source was closed, by a `Closer` or [`EventSource::close`].
    ///
    /// ```
    /// use ssehub::eventsource::EventSource;
    ///
    /// let mut source = EventSource::new("http://localhost/").unwrap();
    /// let closer = source.closer();
    /// assert!(!closer.is_closed());
    /// source.close();
    /// assert!(closer.is_closed());
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Closer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Closer")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Whether an idle timer is set and has fired (registering the task to wake when it does).
fn expired(timer: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> bool {
    timer
        .as_mut()
        .is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
}

/// The MIME type essence is `text/event-stream`, whatever the parameters and letter case.
fn is_event_stream(value: &HeaderValue) -> bool {
    let essence = value
        .as_bytes()
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default();
    essence
        .trim_ascii()
        .eq_ignore_ascii_case(b"text/event-stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_essence() {
        for ok in [
            "text/event-stream",
            "text/event-stream;charset=utf-8",
            "TEXT/Event-Stream ; charset=UTF-8",
            " text/event-stream\t",
        ] {
            assert!(is_event_stream(&HeaderValue::from_static(ok)), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "text/event-streams",
            "text/event-stream, text/html",
            "text/ event-stream",
            "application/json;text/event-stream",
        ] {
            assert!(!is_event_stream(&HeaderValue::from_static(bad)), "{bad}");
        }
    }

    #[test]
    fn initial_last_event_id_without_side_effects() {
        let source = EventSource::builder("http://localhost/")
            .last_event_id(" spaced id ")
            .build()
            .unwrap();
        assert_eq!(source.last_event_id(), " spaced id ");
        let mut parser = source.parser;
        // The first stream's BOM is still skipped and no item is pending.
        assert_eq!(parser.next_item(), None);
        let items = parser.parse(b"\xEF\xBB\xBFdata: x\n\n");
        assert!(matches!(&items[..], [Item::Message(m)] if m.last_event_id == " spaced id "));
    }

    #[test]
    fn send_and_unpin() {
        fn check<T: Send + Unpin>() {}
        check::<EventSource>();
        check::<Closer>();
        check::<Builder>();
        fn sync<T: Sync>() {}
        sync::<Closer>();
    }
}
