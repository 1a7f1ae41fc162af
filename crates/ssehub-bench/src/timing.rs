//! The server's own publish-to-last-write latency.
//!
//! Each server wraps its connections in [`TimedIo`] (or, for the floor
//! server, calls [`observe`] after its writes). While timing is enabled, every
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
