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
//! It serves one request per connection (the response says
//! `Connection: close`), answers `GET` only, and gives every write a
//! deadline: a client whose socket accepts nothing for
//! [`ServerConfig::write_timeout`] is disconnected. Use it for the
//! event-stream endpoints of a service; serve everything else with your
//! usual stack on another port, behind the same proxy, or on the same
//! port with [`serve_connection_with`], which hands the connections it
//! does not stream to a fallback (hyper, say) with the bytes it already
//! read.
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
        Head::Request(parts) if parts.method == Method::GET => handler(&parts),
        Head::Request(_) => plain_text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here"),
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
    mut socket: TcpStream,
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
    socket.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    let head = match tokio::time::timeout(
        config.read_timeout,
        read_head_into(&mut socket, &config, &mut buf),
    )
    .await
    {
        Ok(head) => head?,
        Err(_) => return Err(io::ErrorKind::TimedOut.into()),
    };
    let response = match head {
        Head::Closed => return Ok(()),
        Head::Request(parts) => handler(&parts),
        Head::TooLarge | Head::Invalid => None,
    };
    match response {
        Some(response) => {
            // The head is consumed; a streaming connection keeps no buffer.
            drop(buf);
            write_streaming(socket, response, &config).await
        }
        None => fallback(Rewind::new(Bytes::from(buf), socket)).await,
    }
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
    // Boxed: the parts are big and the other outcomes carry nothing.
    Request(Box<http::request::Parts>),
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
    loop {
        if buf.len() >= config.max_head_bytes {
            return Ok(Head::TooLarge);
        }
        let want = (config.max_head_bytes - buf.len()).min(4096);
        let start = buf.len();
        buf.resize(start + want, 0);
        let n = socket.read(&mut buf[start..]).await?;
        buf.truncate(start + n);
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
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(_)) => Some(to_parts(&request)),
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => Some(Head::TooLarge),
        Err(_) => Some(Head::Invalid),
    }
}

fn to_parts(request: &httparse::Request<'_, '_>) -> Head {
    let (Some(method), Some(path)) = (request.method, request.path) else {
        return Head::Invalid;
    };
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .version(http::Version::HTTP_11);
    for header in request.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    match builder.body(()) {
        Ok(request) => Head::Request(Box::new(request.into_parts().0)),
        Err(_) => Head::Invalid,
    }
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
            let head = response_head(parts.status, &parts.headers, Some(text.len()));
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
    let head = response_head(parts.status, &parts.headers, None);
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

/// The status line and headers; chunked when `content_length` is `None`.
fn response_head(
    status: StatusCode,
    headers: &HeaderMap,
    content_length: Option<usize>,
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
    match content_length {
        Some(len) => head.extend_from_slice(format!("content-length: {len}\r\n").as_bytes()),
        None => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
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
