//! A lean HTTP/1.1 server for event streams (feature `server`).
//!
//! An event-stream connection is mostly idle: one request, then a response
//! body that trickles for minutes or hours. A general-purpose HTTP stack
//! keeps read and write buffers, routing and per-request state alive for
//! all that time (about 20 KiB per connection with hyper and axum). This
//! server parses the request head with a small buffer it frees at once,
//! writes the response head, and then moves frames straight from the
//! response body to the socket, each as one HTTP/1.1 chunk — so an idle
//! connection costs little more than its socket and its stream.
//!
//! The response of a broker client ([`Broker::handle_request`],
//! [`SseBody::into_response`] of a [`Broker::connect`] body) goes further:
//! while its connection sleeps, the server lends the socket to the broker,
//! whose fan-out writer writes each published event to every sleeping
//! subscriber in one pass — one task wake-up per publish instead of one per
//! subscriber ([`BrokerStats::direct`] counts those deliveries). A socket
//! that is full, or a connection woken for any other reason, takes over
//! again; order and exactly-once delivery are the same either way. A
//! handler that wraps such a body in one that changes its bytes removes the
//! [`SocketLoan`] extension from the response.
//!
//! [`Broker::handle_request`]: crate::broker::Broker::handle_request
//! [`Broker::connect`]: crate::broker::Broker::connect
//! [`SseBody::into_response`]: crate::SseBody::into_response
//! [`BrokerStats::direct`]: crate::broker::BrokerStats::direct
//! [`SocketLoan`]: crate::broker::SocketLoan
//!
//! [`serve`] serves one request per connection (the response says
//! `Connection: close`) and answers `GET` only; every write has a
//! deadline: a client whose socket accepts nothing for
//! [`ServerConfig::write_timeout`] is disconnected. Use it for the
//! event-stream endpoints of a service; serve everything else with your
//! usual stack on another port, behind the same proxy, or on the same
//! port with [`serve_connection_with`], which hands the connections it
//! does not stream to a fallback (hyper, say) with the bytes it already
//! read. [`serve_connection_routed`] also answers short requests itself
//! (publishing, say) on kept-alive connections, so the hot path of a
//! service never reaches the general stack.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use ssehub::broker::Broker;
//! use ssehub::server::{ServerConfig, serve};
//!
//! let broker = Broker::new();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! let handler = {
//!     let broker = broker.clone();
//!     move |request: &http::request::Parts| {
//!         broker.handle_request(request, |client| {
//!             let _ = client.subscribe("news");
//!         })
//!     }
//! };
//! serve(listener, ServerConfig::default(), handler).await
//! # }
//! ```

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, Response, StatusCode};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::broker::{Framing, Lent, SocketLoan, Transport};
use crate::http::{ResponseBody, plain_text};

/// Settings of the lean server.
///
/// ```
/// use std::time::Duration;
/// let config = ssehub::server::ServerConfig::default()
///     .write_timeout(Duration::from_secs(5))
///     .max_head_bytes(4096);
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ServerConfig {
    write_timeout: Duration,
    read_timeout: Duration,
    max_head_bytes: usize,
}

impl Default for ServerConfig {
    /// 10 s write deadline, 10 s to send the request head, heads up to 8 KiB.
    fn default() -> Self {
        Self {
            write_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            max_head_bytes: 8 * 1024,
        }
    }
}

impl ServerConfig {
    /// How long a write may make no progress before the client is dropped.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = ssehub::server::ServerConfig::default().write_timeout(Duration::from_secs(3));
    /// # let _ = config;
    /// ```
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// How long a client may take to send its request head.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = ssehub::server::ServerConfig::default().read_timeout(Duration::from_secs(3));
    /// # let _ = config;
    /// ```
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Largest request head accepted; a larger one is answered `431`.
    ///
    /// ```
    /// let config = ssehub::server::ServerConfig::default().max_head_bytes(16 * 1024);
    /// # let _ = config;
    /// ```
    pub fn max_head_bytes(mut self, bytes: usize) -> Self {
        self.max_head_bytes = bytes.max(64);
        self
    }
}

/// Serves `handler` on `listener` until the listener fails; each accepted
/// connection runs in its own task. Errors accepting a connection (such as
/// running out of file descriptors) are logged and retried after a pause.
///
/// # Errors
/// Only if the listener itself cannot be used.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// ssehub::server::serve(listener, Default::default(), |request: &http::request::Parts| {
///     ssehub::respond(request, &ssehub::StreamConfig::default(), |sender| async move {
///         let _ = sender.send_data("hello").await;
///     })
/// })
/// .await
/// # }
/// ```
pub async fn serve<F>(listener: TcpListener, config: ServerConfig, handler: F) -> io::Result<()>
where
    F: Fn(&http::request::Parts) -> Response<ResponseBody> + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                let handler = handler.clone();
                tokio::spawn(async move {
                    if let Err(err) = serve_connection(socket, config, &*handler).await {
                        tracing::debug!(%err, "event-stream connection ended with an error");
                    }
                });
            }
            Err(err) => {
                // Typically EMFILE: wait for connections to close instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one connection: one request, one response.
///
/// # Errors
/// I/O errors and timeouts of the connection.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// let (socket, _) = listener.accept().await?;
/// ssehub::server::serve_connection(socket, Default::default(), &|request: &http::request::Parts| {
///     ssehub::respond(request, &ssehub::StreamConfig::default(), |_sender| async {})
/// })
/// .await
/// # }
/// ```
pub async fn serve_connection<F>(
    mut socket: TcpStream,
    config: ServerConfig,
    handler: &F,
) -> io::Result<()>
where
    F: Fn(&http::request::Parts) -> Response<ResponseBody> + ?Sized,
{
    // Small writes must go out at once: an event is latency, not bulk.
    socket.set_nodelay(true)?;
    let head =
        match tokio::time::timeout(config.read_timeout, read_head(&mut socket, &config)).await {
            Ok(head) => head?,
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        };
    let response = match head {
        Head::Request(parts, _) if parts.method == Method::GET => handler(&parts),
        Head::Request(..) => plain_text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here"),
        Head::TooLarge => plain_text(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large",
        ),
        Head::Invalid => plain_text(StatusCode::BAD_REQUEST, "malformed request"),
        Head::Closed => return Ok(()),
    };
    write_response(socket, response, &config).await
}

/// Serves one connection for which `handler` may answer with an event
/// stream of any body type, and hands every other connection — requests
/// the handler declines (`None`), heads it cannot parse — to `fallback`
/// with the socket as it was: the bytes read so far are replayed first
/// ([`Rewind`]). So one port can carry lean event streams and a general
/// HTTP stack for the rest (publishing, health, pages).
///
/// # Errors
/// I/O errors and timeouts of the connection, or the fallback's.
///
/// ```no_run
/// # async fn run(socket: tokio::net::TcpStream) -> std::io::Result<()> {
/// use ssehub::server::{Rewind, ServerConfig, serve_connection_with};
/// let broker = ssehub::broker::Broker::new();
/// let handler = |request: &http::request::Parts| {
///     (request.uri.path() == "/events").then(|| broker.handle_request(request, |_| {}))
/// };
/// let fallback = |socket: Rewind<tokio::net::TcpStream>| async move {
///     drop(socket); // hand it to hyper, for one
///     Ok(())
/// };
/// serve_connection_with(socket, ServerConfig::default(), &handler, fallback).await
/// # }
/// ```
pub async fn serve_connection_with<F, B, G, Fut>(
    socket: TcpStream,
    config: ServerConfig,
    handler: &F,
    fallback: G,
) -> io::Result<()>
where
    F: Fn(&http::request::Parts) -> Option<Response<B>> + ?Sized,
    B: http_body::Body<Data = Bytes> + Unpin,
    G: FnOnce(Rewind<TcpStream>) -> Fut,
    Fut: std::future::Future<Output = io::Result<()>>,
{
    let route =
        |request: &http::request::Parts| handler(request).map_or(Route::Fallback, Route::Stream);
    // Never called: this route answers nothing itself.
    let answer = |_, _| std::future::ready(Response::new(Bytes::new()));
    let closing = std::future::pending;
    serve_connection_routed(socket, config, closing, &route, &answer, fallback).await
}

/// What [`serve_connection_routed`] does with one request, as its route
/// decides from the request head.
#[derive(Debug)]
pub enum Route<B> {
    /// Answer with this event stream; the connection ends with it.
    Stream(Response<B>),
    /// Read the request body (at most `max_body` bytes, framed by
    /// `Content-Length`), answer with the answer handler, and keep the
    /// connection for the next request. A request this server does not
    /// read itself (a chunked or larger body, `Expect`, HTTP/1.0) goes to
    /// the fallback instead, with everything after it.
    Answer {
        /// Largest body read here.
        max_body: usize,
    },
    /// Hand the connection, from this request on, to the fallback.
    Fallback,
}

/// Serves one kept-alive connection request by request, as `route` says:
/// event streams ([`Route::Stream`]) are written as [`serve_connection`]
/// writes them, short requests ([`Route::Answer`]) are answered by `answer`
/// with a complete body, and the first request routed elsewhere — or a head
/// this server cannot parse — hands the connection to `fallback` with the
/// bytes not yet used ([`Rewind`]). So the hot requests of a service
/// (subscribing and publishing, say) take no general HTTP stack at all,
/// and the rest still get one on the same port.
///
/// What an answer publishes to subscribers this server lent to the broker
/// is written to their sockets before the answer is: the connection's own
/// task writes the first 16 such subscribers when `answer` returns, and
/// the broker's fan-out writers the rest. A publisher that hears back
/// knows its few subscribers were written to (or are awake and about to
/// write it themselves).
///
/// Each request head must be complete within the read timeout of the
/// connection's opening or of the previous response; an idle connection
/// is closed then, as it is when the future `closing()` makes completes
/// between requests (never in the middle of one). It is made only once the
/// connection is first idle, so a stream carries nothing of it.
///
/// # Errors
/// I/O errors and timeouts of the connection, or the fallback's.
///
/// ```no_run
/// # async fn run(socket: tokio::net::TcpStream) -> std::io::Result<()> {
/// use bytes::Bytes;
/// use ssehub::server::{Rewind, Route, ServerConfig, serve_connection_routed};
/// let broker = ssehub::broker::Broker::new();
/// let route = |request: &http::request::Parts| match (request.method.as_str(), request.uri.path()) {
///     ("GET", "/events") => Route::Stream(broker.handle_request(request, |_| {})),
///     ("POST", "/publish") => Route::Answer { max_body: 64 * 1024 },
///     _ => Route::Fallback,
/// };
/// let answer = |_request: http::request::Parts, body: Bytes| {
///     let published = broker.broadcast_data(String::from_utf8_lossy(&body));
///     let status = if published.is_ok() { 204 } else { 400 };
///     std::future::ready(http::Response::builder().status(status).body(Bytes::new()).unwrap())
/// };
/// let fallback = |socket: Rewind<tokio::net::TcpStream>| async move {
///     drop(socket); // hand it to hyper, for one
///     Ok(())
/// };
/// let closing = std::future::pending; // a shutdown signal, for one
/// serve_connection_routed(socket, ServerConfig::default(), closing, &route, &answer, fallback).await
/// # }
/// ```
pub async fn serve_connection_routed<C, CF, R, B, A, AF, G, Fut>(
    mut socket: TcpStream,
    config: ServerConfig,
    closing: C,
    route: &R,
    answer: &A,
    fallback: G,
) -> io::Result<()>
where
    C: FnOnce() -> CF,
    CF: std::future::Future<Output = ()>,
    R: Fn(&http::request::Parts) -> Route<B> + ?Sized,
    B: http_body::Body<Data = Bytes> + Unpin,
    A: Fn(http::request::Parts, Bytes) -> AF + ?Sized,
    AF: std::future::Future<Output = Response<Bytes>>,
    G: FnOnce(Rewind<TcpStream>) -> Fut,
    Fut: std::future::Future<Output = io::Result<()>>,
{
    socket.set_nodelay(true)?;
    let mut closing = Closing::Later(closing);
    // Every byte read and not yet used: a fallback replays it all.
    let mut buf = Vec::with_capacity(1024);
    let mut answered = false;
    // One timer for every read of the connection, moved later for each:
    // moving a registered timer later is an atomic store, where a timeout
    // per read registered a timer entry and removed it again.
    let mut timer = Box::pin(tokio::time::sleep(config.read_timeout));
    loop {
        timer
            .as_mut()
            .reset(tokio::time::Instant::now() + config.read_timeout);
        if answered && buf.is_empty() {
            // Idle between requests: the only place closing ends it.
            let closed = closing.future();
            tokio::select! {
                biased;
                () = closed => return Ok(()),
                ready = socket.readable() => ready?,
                () = timer.as_mut() => return Ok(()),
            }
        }
        let head = tokio::select! {
            biased;
            head = read_head_into(&mut socket, &config, &mut buf) => head?,
            () = timer.as_mut() => return Err(io::ErrorKind::TimedOut.into()),
        };
        let (request, head_len) = match head {
            Head::Closed => return Ok(()),
            Head::Request(request, len) => (request, len),
            Head::TooLarge | Head::Invalid => {
                return fallback(Rewind::new(Bytes::from(buf), socket)).await;
            }
        };
        let body_len = match route(&request) {
            Route::Stream(response) => {
                // The head is consumed; a streaming connection keeps
                // neither its buffer, nor the parsed request, nor the timer.
                drop((buf, request, timer));
                return write_streaming(socket, response, &config).await;
            }
            Route::Answer { max_body } => match answerable(&request, max_body) {
                Some(len) => len,
                None => return fallback(Rewind::new(Bytes::from(buf), socket)).await,
            },
            Route::Fallback => return fallback(Rewind::new(Bytes::from(buf), socket)).await,
        };
        let end = head_len + body_len;
        if buf.len() < end {
            // Usually the body came with the head and this is skipped.
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + config.read_timeout);
            tokio::select! {
                biased;
                read = read_to(&mut socket, &mut buf, end) => read?,
                () = timer.as_mut() => return Err(io::ErrorKind::TimedOut.into()),
            }
        }
        let body = Bytes::copy_from_slice(&buf[head_len..end]);
        buf.drain(..end);
        if buf.capacity() > KEPT_BUFFER {
            // One large body does not stay with the connection.
            buf.shrink_to(KEPT_BUFFER.max(buf.len()));
        }
        let close = wants_close(&request.headers);
        let head_only = request.method == Method::HEAD;
        // What the answer publishes reaches its (few) parked subscribers
        // before the answer is written, from this task, without waking a
        // writer task for them.
        let response = crate::broker::deliver_first(|| answer(*request, body)).await;
        write_answer(&socket, response, close, head_only, &config).await?;
        if close {
            return Ok(());
        }
        answered = true;
    }
}

/// The signal that closes idle connections: made at the first idle moment,
/// and kept for the next ones.
enum Closing<C, F> {
    Later(C),
    Made(Pin<Box<F>>),
    Taken,
}

impl<C: FnOnce() -> F, F: std::future::Future<Output = ()>> Closing<C, F> {
    fn future(&mut self) -> Pin<&mut F> {
        if let Closing::Later(_) = self
            && let Closing::Later(make) = std::mem::replace(self, Closing::Taken)
        {
            *self = Closing::Made(Box::pin(make()));
        }
        match self {
            Closing::Made(future) => future.as_mut(),
            // Only `Later` is ever replaced, and at once by `Made`.
            Closing::Later(_) | Closing::Taken => unreachable!("made above"),
        }
    }
}

/// The buffer a kept-alive connection keeps between requests, at most.
const KEPT_BUFFER: usize = 16 * 1024;

/// The length of the request's body when this server can read it itself:
/// HTTP/1.1, no `Transfer-Encoding`, no `Expect`, at most one
/// `Content-Length` (none: no body) of at most `max_body`. Anything else
/// is the fallback's, which answers it fully (`413`, `100 Continue`, …).
fn answerable(request: &http::request::Parts, max_body: usize) -> Option<usize> {
    let headers = &request.headers;
    if request.version != http::Version::HTTP_11
        || headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers.contains_key(http::header::EXPECT)
    {
        return None;
    }
    let mut lengths = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let len = match (lengths.next(), lengths.next()) {
        (None, _) => 0,
        (Some(value), None) => {
            let digits = value.as_bytes();
            if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse().ok()?
        }
        (Some(_), Some(_)) => return None,
    };
    (len <= max_body).then_some(len)
}

/// Whether the client asked to close the connection after this response.
fn wants_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("close"))
}

/// Reads until `buf` holds at least `end` bytes; no further, so a
/// pipelined request stays on the socket until its turn.
async fn read_to(socket: &mut TcpStream, buf: &mut Vec<u8>, end: usize) -> io::Result<()> {
    while buf.len() < end {
        let want = end - buf.len();
        // Read into spare capacity: nothing is zeroed first.
        buf.reserve(want);
        let n = (&mut *socket).take(want as u64).read_buf(buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

/// Writes a complete response: its head and its body in one vectored
/// write when the socket takes it (as it does on a reading client).
async fn write_answer(
    socket: &TcpStream,
    response: Response<Bytes>,
    close: bool,
    head_only: bool,
    config: &ServerConfig,
) -> io::Result<()> {
    let (parts, body) = response.into_parts();
    let bodiless = has_no_content(parts.status);
    let length = (!bodiless).then_some(body.len());
    let head = response_head(parts.status, &parts.headers, length, close);
    let body: &[u8] = if bodiless || head_only { &[] } else { &body };
    write_all(socket, &[&head, body], config).await
}

pin_project_lite::pin_project! {
    /// An I/O object whose first reads return bytes already read from it
    /// (`prefix`), then read through; writes go straight through.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tokio::io::AsyncReadExt;
    /// let mut io = ssehub::server::Rewind::new(bytes::Bytes::from_static(b"GET "), &b"/ HTTP/1.1"[..]);
    /// let mut all = String::new();
    /// io.read_to_string(&mut all).await.unwrap();
    /// assert_eq!(all, "GET / HTTP/1.1");
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct Rewind<T> {
        prefix: Bytes,
        #[pin]
        inner: T,
    }
}

impl<T> Rewind<T> {
    /// `inner`, with `prefix` read first.
    pub fn new(prefix: Bytes, inner: T) -> Self {
        Self { prefix, inner }
    }

    /// The wrapped I/O object (any unread prefix is lost).
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: tokio::io::AsyncRead> tokio::io::AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite> tokio::io::AsyncWrite for Rewind<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

pub(crate) enum Head {
    // Boxed: the parts are big and the other outcomes carry nothing. The
    // length is the head's in bytes: what follows it is the body.
    Request(Box<http::request::Parts>, usize),
    TooLarge,
    Invalid,
    Closed,
}

async fn read_head(socket: &mut TcpStream, config: &ServerConfig) -> io::Result<Head> {
    // Freed as soon as the head is parsed: nothing of it stays with the
    // connection.
    let mut buf = Vec::with_capacity(1024);
    read_head_into(socket, config, &mut buf).await
}

/// Reads until `buf` holds a complete request head (or cannot); every byte
/// read stays in `buf`, for a connection handed to another server.
async fn read_head_into(
    socket: &mut TcpStream,
    config: &ServerConfig,
    buf: &mut Vec<u8>,
) -> io::Result<Head> {
    // A kept-alive connection may hold the next request already.
    if !buf.is_empty()
        && let Some(head) = parse_head(buf)
    {
        return Ok(head);
    }
    loop {
        if buf.len() >= config.max_head_bytes {
            return Ok(Head::TooLarge);
        }
        let want = (config.max_head_bytes - buf.len()).min(4096);
        // Read into spare capacity: nothing is zeroed first.
        buf.reserve(want);
        let n = (&mut *socket).take(want as u64).read_buf(buf).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        if let Some(head) = parse_head(buf) {
            return Ok(head);
        }
    }
}

/// Parses the request head at the start of `buf`: `None` while it is
/// incomplete (more bytes may complete it). Bytes after the head are left
/// alone. Kept apart from the socket so that it can be fuzzed.
pub(crate) fn parse_head(buf: &[u8]) -> Option<Head> {
    // Left uninitialised: `httparse` fills only the headers there are,
    // where zeroing all 64 slots (2 KiB) would cost every request.
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; 64];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => Some(to_parts(&request, &buf[..len])),
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => Some(Head::TooLarge),
        Err(_) => Some(Head::Invalid),
    }
}

fn to_parts(request: &httparse::Request<'_, '_>, head: &[u8]) -> Head {
    let (Some(method), Some(path)) = (request.method, request.path) else {
        return Head::Invalid;
    };
    let version = match request.version {
        Some(0) => http::Version::HTTP_10,
        _ => http::Version::HTTP_11,
    };
    // One copy of the head, which the target and every header value then
    // share, instead of a copy (an allocation) each.
    let shared = Bytes::copy_from_slice(head);
    let part = |text: &[u8]| {
        // `httparse` hands out slices of `head`: the same range of the copy.
        let start = text.as_ptr().addr() - head.as_ptr().addr();
        shared.slice(start..start + text.len())
    };
    // Built field by field: the same checks as `http::request::Builder`,
    // without moving the whole request through it once per header.
    let (Ok(method), Ok(uri)) = (
        Method::from_bytes(method.as_bytes()),
        http::Uri::from_maybe_shared(part(path.as_bytes())),
    ) else {
        return Head::Invalid;
    };
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            http::HeaderValue::from_maybe_shared(part(header.value)),
        ) else {
            return Head::Invalid;
        };
        headers.append(name, value);
    }
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Head::Request(Box::new(parts), head.len())
}

async fn write_response(
    socket: TcpStream,
    response: Response<ResponseBody>,
    config: &ServerConfig,
) -> io::Result<()> {
    let (parts, body) = response.into_parts();
    match body {
        ResponseBody::Error(text) => {
            let text = text.unwrap_or_default();
            let head = response_head(parts.status, &parts.headers, Some(text.len()), true);
            write_all(&socket, &[&head, &text], config).await
        }
        ResponseBody::Stream(body) => {
            write_streaming(socket, Response::from_parts(parts, body), config).await
        }
    }
}

/// Writes a response whose body streams: chunked, each frame one chunk.
///
/// When the body is a broker client's, the socket is lent to the broker
/// while the connection sleeps (see `broker/loan.rs`): the broker's
/// writer then writes the client's frames itself, and this loop writes
/// only what the writer could not (a full socket) or what came another way
/// (direct sends, keep-alives, a burst taken at once).
async fn write_streaming<B>(
    socket: TcpStream,
    response: Response<B>,
    config: &ServerConfig,
) -> io::Result<()>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let handle = response.extensions().get::<SocketLoan>().cloned();
    let (parts, mut body) = response.into_parts();
    let socket = Arc::new(socket);
    let head = response_head(parts.status, &parts.headers, None, true);
    write_all(&socket, &[&head], config).await?;
    let lent = handle.and_then(|loan| loan.lend(socket.clone()));
    let mut probe = [0u8; 64];
    loop {
        match next_step(&mut body, &socket, lent.as_ref()).await {
            Step::Frame(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                // Claims made before this poll are older than `data`.
                write_claimed(lent.as_ref(), &socket, config).await?;
                let mut line = [0u8; 18];
                let size = crate::chunked::size_line(data.len(), &mut line);
                write_all(&socket, &[size, &data, b"\r\n"], config).await?;
                if let Some(lent) = &lent {
                    // A connection writing often batches better than the
                    // writer would: it keeps new frames for a while.
                    lent.wrote();
                }
            }
            // A body that fails cannot be ended cleanly: drop the connection.
            Step::Frame(Some(Err(()))) => return Err(io::ErrorKind::Other.into()),
            Step::Frame(None) => {
                // The stream ended at an event boundary: end the body,
                // after the frames claimed for it.
                write_claimed(lent.as_ref(), &socket, config).await?;
                return write_all(&socket, &[b"0\r\n\r\n"], config).await;
            }
            // Frames claimed for this connection were left to it: they
            // go out before anything else.
            Step::Outlet => write_claimed(lent.as_ref(), &socket, config).await?,
            Step::Readable(ready) => {
                ready?;
                // A client sends nothing after its request; reading
                // is only how its leaving is noticed.
                match socket.try_read(&mut probe) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) => return Err(err),
                }
            }
        }
    }
}

/// Writes the frames claimed for this connection that the writer left to
/// it (a full socket, or it found the connection awake) — before anything
/// the connection took itself, which is newer.
async fn write_claimed(
    lent: Option<&Lent>,
    socket: &TcpStream,
    config: &ServerConfig,
) -> io::Result<()> {
    let Some(lent) = lent else {
        return Ok(());
    };
    loop {
        let pending = lent.take_pending();
        if pending.is_empty() {
            return Ok(());
        }
        for bytes in pending {
            write_all(socket, &[&bytes], config).await?;
        }
    }
}

/// A streaming socket, as the broker's fan-out writer sees it when it is
/// lent: frames are HTTP/1.1 chunks, written without waiting.
impl Transport for TcpStream {
    fn framing(&self) -> &'static Framing {
        &crate::chunked::FRAMING
    }

    fn try_write(&self, frames: &[IoSlice<'_>]) -> io::Result<usize> {
        match frames {
            [one] => TcpStream::try_write(self, one),
            _ => self.try_write_vectored(frames),
        }
    }
}

/// What woke a streaming connection.
enum Step {
    Frame(Option<Result<http_body::Frame<Bytes>, ()>>),
    /// Frames were claimed for the connection that it must write itself.
    Outlet,
    Readable(io::Result<()>),
}

/// Waits for the next body frame or for the client's side of the socket;
/// with a lent socket, parks it with the broker when there is neither.
///
/// Polled by hand rather than with `select!` over `readable()`: the socket's
/// read readiness then keeps one waker slot for the whole connection
/// instead of queueing and dequeuing a waiter on every event.
async fn next_step<B>(body: &mut B, socket: &TcpStream, lent: Option<&Lent>) -> Step
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    std::future::poll_fn(|cx| {
        let Some(lent) = lent else {
            if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) {
                return Poll::Ready(Step::Frame(frame.map(|f| f.map_err(|_| ()))));
            }
            return socket.poll_read_ready(cx).map(Step::Readable);
        };
        lent.arm(cx.waker());
        if lent.busy() {
            lent.activate();
            return Poll::Ready(Step::Outlet);
        }
        let mut via_outlet = Context::from_waker(lent.waker());
        if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(&mut via_outlet) {
            lent.activate();
            return Poll::Ready(Step::Frame(frame.map(|f| f.map_err(|_| ()))));
        }
        if let Poll::Ready(ready) = socket.poll_read_ready(&mut via_outlet) {
            lent.activate();
            return Poll::Ready(Step::Readable(ready));
        }
        if lent.park() {
            Poll::Pending
        } else {
            // A frame was claimed for it while it polled: write it first.
            Poll::Ready(Step::Outlet)
        }
    })
    .await
}

/// The status line and headers, with the date; chunked when
/// `content_length` is `None`, ending the connection after the body when
/// `close`.
fn response_head(
    status: StatusCode,
    headers: &HeaderMap,
    content_length: Option<usize>,
    close: bool,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if is_framing(name) {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key(http::header::DATE) {
        head.extend_from_slice(b"date: ");
        date::now(|date| head.extend_from_slice(date));
        head.extend_from_slice(b"\r\n");
    }
    match content_length {
        Some(len) => {
            head.extend_from_slice(b"content-length: ");
            head.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        None if has_no_content(status) => {}
        None => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if close {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// RFC 9110: 1xx, 204 and 304 responses have no content, hence no length
/// and no chunked framing.
fn has_no_content(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// The `Date` of responses (RFC 9110: an origin server with a clock sends
/// one), formatted once a second per thread rather than per response.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static NOW: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }

    /// Calls `with` with the current date, as `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub(super) fn now(with: impl FnOnce(&[u8])) {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        NOW.with_borrow_mut(|(at, text)| {
            if *at != second {
                *at = second;
                *text = httpdate::fmt_http_date(now);
            }
            with(text.as_bytes());
        });
    }
}

/// Headers this server sets itself.
fn is_framing(name: &HeaderName) -> bool {
    name == http::header::CONTENT_LENGTH
        || name == http::header::TRANSFER_ENCODING
        || name == http::header::CONNECTION
}

/// Writes every slice (at most three), trying one vectored write first;
/// waits for the socket only when it is full, and then at most
/// `write_timeout` per wait. Allocates nothing.
async fn write_all(socket: &TcpStream, parts: &[&[u8]], config: &ServerConfig) -> io::Result<()> {
    let mut slices: [&[u8]; 3] = [&[]; 3];
    for (slot, part) in slices.iter_mut().zip(parts) {
        *slot = part;
    }
    let mut first = 0;
    loop {
        while first < slices.len() && slices[first].is_empty() {
            first += 1;
        }
        if first == slices.len() {
            return Ok(());
        }
        let io = [
            IoSlice::new(slices[first]),
            IoSlice::new(slices.get(first + 1).copied().unwrap_or(&[])),
            IoSlice::new(slices.get(first + 2).copied().unwrap_or(&[])),
        ];
        match socket.try_write_vectored(&io) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                for slice in &mut slices[first..] {
                    let taken = n.min(slice.len());
                    *slice = &slice[taken..];
                    n -= taken;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                match tokio::time::timeout(config.write_timeout, socket.writable()).await {
                    Ok(ready) => ready?,
                    Err(_) => return Err(io::ErrorKind::TimedOut.into()),
                }
            }
            Err(err) => return Err(err),
        }
    }
}
