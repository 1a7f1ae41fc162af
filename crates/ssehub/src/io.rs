//! [`WriteTimeout`]: a deadline on every write to a connection.
//!
//! A client that stops reading eventually fills its socket buffers, and the
//! server's writes to it stop making progress. Nothing in HTTP ends such a
//! connection by itself; this wrapper does: a write (or flush) that stays
//! pending longer than the deadline fails with
//! [`io::ErrorKind::TimedOut`], the server drops the connection, the
//! response body goes with it and the client leaves its broker.
//! Keep-alive comments are writes too, so an idle but dead peer is caught
//! the same way.
//!
//! Wrap accepted sockets with it in any server; with axum, use
//! [`WriteTimeoutListener`](crate::axum::WriteTimeoutListener).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use std::time::Duration;
//! use ssehub::io::WriteTimeout;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let client = tokio::spawn(tokio::net::TcpStream::connect(addr));
//! let (socket, _) = listener.accept().await?;
//! let socket = WriteTimeout::new(socket, Duration::from_secs(10));
//! // hand `socket` to hyper (wrapped in hyper_util's TokioIo) as usual
//! # drop((socket, client)); Ok(()) }
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// An I/O object whose writes fail with `TimedOut` when they make no
/// progress for longer than a deadline.
#[derive(Debug)]
pub struct WriteTimeout<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write is pending; allocated on the first stall only, so
    /// a connection that never stalls carries no timer.
    deadline: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<T> WriteTimeout<T> {
    /// Wraps `inner` with a `timeout` on every write and flush.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let wrapped = ssehub::io::WriteTimeout::new(tokio::io::sink(), Duration::from_secs(5));
    /// # let _ = wrapped;
    /// ```
    pub fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: None,
            armed: false,
        }
    }

    /// The wrapped I/O object.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let wrapped = ssehub::io::WriteTimeout::new(tokio::io::sink(), Duration::from_secs(5));
    /// let _sink: &tokio::io::Sink = wrapped.get_ref();
    /// ```
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Unwraps the I/O object.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let wrapped = ssehub::io::WriteTimeout::new(tokio::io::sink(), Duration::from_secs(5));
    /// let _sink = wrapped.into_inner();
    /// ```
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// Passes a write's outcome through, arming the deadline while it is
    /// pending and failing once the deadline has passed.
    fn check<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.armed = false;
            return poll;
        }
        let at = Instant::now() + self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if !self.armed {
            deadline.as_mut().reset(at);
            self.armed = true;
        }
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "write made no progress before its deadline",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
