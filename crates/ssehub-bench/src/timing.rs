//! The server's own publish-to-last-write latency.
//!
//! Each server wraps its connections in [`TimedIo`] (or, for the floor
//! server, calls [`observe`] after its writes; the lean server, which owns
//! its sockets, wraps its bodies in [`TimedBody`] and passes the broker's
//! direct writes to [`observe`]). While timing is enabled, every
//! successful socket write is scanned for `data: ` lines; the sequence number
//! at the start of each payload gets the write's time as its latest write.
//! After a schedule, the latest write of event `k` minus the time it was
//! published is the time the server needed to get it onto every socket.
//! Timing is only enabled for fixed-rate schedules: the scan costs CPU, and
//! saturation runs measure CPU.

use std::io;
use std::pin::Pin;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::clock::mono_ns;

/// Sequence numbers are tracked modulo this many.
pub const RING: usize = 1 << 16;

static ENABLED: AtomicBool = AtomicBool::new(false);
static LAST_WRITE: [AtomicU64; RING] = [const { AtomicU64::new(0) }; RING];

/// Forgets every recorded write.
pub fn reset() {
    for slot in &LAST_WRITE {
        slot.store(0, Relaxed);
    }
}

/// Turns recording on or off.
pub fn enable(on: bool) {
    ENABLED.store(on, Relaxed);
}

/// The time of the latest write that carried event `seq` (0 if none).
#[must_use]
pub fn last_write(seq: u64) -> u64 {
    LAST_WRITE[(seq % RING as u64) as usize].load(Relaxed)
}

/// Records that `written` just went out on a socket.
#[inline]
pub fn observe(written: &[u8]) {
    if ENABLED.load(Relaxed) {
        observe_now(written, mono_ns());
    }
}

/// Built once: constructing a searcher per write cost about 1% of the
/// server's CPU in a first profile.
static DATA_LINE: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"data: "));

fn observe_now(written: &[u8], now: u64) {
    for pos in DATA_LINE.find_iter(written) {
        if let Some((seq, _)) = crate::payload::parse(&written[pos + 6..]) {
            LAST_WRITE[(seq % RING as u64) as usize].fetch_max(now, Relaxed);
        }
    }
}

/// An I/O object that reports its writes to [`observe`].
#[derive(Debug)]
pub struct TimedIo<T> {
    inner: T,
}

impl<T> TimedIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self { inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.get_mut().inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            observe(&buf[..*n]);
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &poll {
            if ENABLED.load(Relaxed) {
                let now = mono_ns();
                let mut left = *n;
                for b in bufs {
                    if left == 0 {
                        break;
                    }
                    let take = left.min(b.len());
                    observe_now(&b[..take], now);
                    left -= take;
                }
            }
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A response body that reports the data it yields to [`observe`]: for a
/// server that owns its sockets (the lean server writes what a body yields
/// at once, unless the socket is full), the time a frame leaves the body is
/// the time it is written. It only observes, so the broker's socket loan
/// stays valid.
#[derive(Debug)]
pub struct TimedBody<B> {
    inner: B,
}

impl<B> TimedBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self { inner }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for TimedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let poll = Pin::new(&mut self.get_mut().inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll {
            if let Some(data) = frame.data_ref() {
                observe(data);
            }
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timed_body_records_the_events_it_yields_and_only_while_enabled() {
        let event = |seq| {
            let frame = format!("data: {}\n\n", crate::payload::make(seq, 1, 100));
            TimedBody::new(ssehub::ResponseBody::Error(Some(Bytes::from(frame))))
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        reset();

        enable(false);
        let mut body = event(41);
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_ready());
        assert_eq!(last_write(41), 0, "timing is off: nothing recorded");

        enable(true);
        let before = mono_ns();
        let mut body = event(42);
        let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) else {
            panic!("the frame passes through");
        };
        enable(false);
        assert!(frame.data_ref().is_some_and(|d| d.starts_with(b"data: ")));
        assert!(last_write(42) >= before);
        assert_eq!(last_write(43), 0);
    }
}
