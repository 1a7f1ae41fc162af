//! [`SseBody`]: the `http_body::Body` of an event-stream response.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::config::Hook;
use super::feed::Feed;
use super::sender::Sender;
use super::shared::{Chunk, Shared};

/// The keep-alive frame: an empty comment, the smallest thing a client ignores.
const KEEP_ALIVE_FRAME: &[u8] = b":\n\n";

/// The body of an event-stream response: the frames queued by the stream's
/// [`Sender`]s, keep-alive comments while idle, and nothing else.
///
/// Implements [`http_body::Body`], so any server built on the `http` crate
/// (hyper, axum, warp, …) can send it. The body never ends on its own while a
/// `Sender` is alive; it ends cleanly, at an event boundary, after
/// [`Sender::close`] or when every `Sender` is dropped. Dropping the body —
/// which servers do when the client disconnects — closes the stream so
/// senders learn of it at once.
///
/// Several frames ready at once are written as one chunk; a lone frame is
/// passed through without a copy.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use http_body_util::BodyExt;
/// use ssehub::{Event, StreamConfig};
///
/// let config = StreamConfig::default().retry(None).keep_alive(None);
/// let (sender, body) = ssehub::stream::new(&config);
/// sender.send(Event::new("hello")).await.unwrap();
/// drop(sender); // ends the stream once the queue is written
/// let bytes = body.collect().await.unwrap().to_bytes();
/// assert_eq!(&bytes[..], b":\n\ndata: hello\n\n");
/// # }
/// ```
pub struct SseBody {
    shared: Arc<Shared>,
    /// First bytes (`retry:` or a comment), sent as soon as the body is polled.
    preamble: Option<Bytes>,
    keep_alive: Option<KeepAlive>,
    on_disconnect: Option<Hook>,
    last_event_id: Option<Arc<str>>,
    /// Frames from elsewhere (a broker client's channels), polled after the queue.
    pub(crate) feed: Option<Arc<dyn Feed>>,
    done: bool,
    pub(crate) accel_buffering_header: bool,
}

impl SseBody {
    pub(crate) fn new(
        shared: Arc<Shared>,
        preamble: Bytes,
        keep_alive: Option<Duration>,
        on_disconnect: Option<Hook>,
        last_event_id: Option<Arc<str>>,
        accel_buffering_header: bool,
    ) -> Self {
        Self {
            shared,
            preamble: Some(preamble),
            keep_alive: keep_alive.map(KeepAlive::new),
            on_disconnect,
            last_event_id,
            feed: None,
            done: false,
            accel_buffering_header,
        }
    }

    /// Adds a feed of frames polled after the stream's own queue.
    pub(crate) fn with_feed(mut self, feed: Arc<dyn Feed>) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Marks the stream closed and runs the disconnect hook, exactly once.
    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        self.shared.body_gone();
        if let Some(feed) = self.feed.take() {
            feed.finished();
        }
        if let Some(hook) = self.on_disconnect.take() {
            let sender = Sender::new(self.shared.clone(), self.last_event_id.clone());
            hook(&sender);
        }
    }

    fn data(&mut self, bytes: Bytes) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(ka) = &mut self.keep_alive {
            ka.wrote();
        }
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut chunk = Chunk::default();
        if let Some(preamble) = this.preamble.take() {
            chunk.push(preamble);
        }
        let ended = this.shared.take_ready(cx.waker(), &mut chunk);
        if !ended {
            if let Some(feed) = &this.feed {
                if feed.poll_feed(cx.waker(), &mut chunk).is_err() {
                    // The feed gave up on this client (it fell too far
                    // behind): end the response after what is gathered.
                    this.shared.close();
                }
            }
        }
        if let Some(bytes) = chunk.into_bytes() {
            return this.data(bytes);
        }
        if ended {
            this.finish();
            return Poll::Ready(None);
        }
        if let Some(ka) = &mut this.keep_alive {
            let direct = this.feed.as_ref().and_then(|f| f.last_direct_write());
            ready!(ka.poll_due(cx, direct));
            return this.data(Bytes::from_static(KEEP_ALIVE_FRAME));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        // Unknown length: servers use chunked encoding (HTTP/1.1) or plain
        // DATA frames (HTTP/2), never a Content-Length.
        SizeHint::default()
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        self.finish();
    }
}

impl fmt::Debug for SseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseBody")
            .field("keep_alive", &self.keep_alive.as_ref().map(|k| k.interval))
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Keep-alive timer, reset lazily.
///
/// Resetting a timer on every write would touch the timer wheel once per
/// event; instead a write only records its time, and when the timer fires
/// early (because data went out meanwhile) it is re-armed for the true
/// deadline. The timer itself is created on the first poll, which always
/// runs inside the server's runtime, so a body can be made anywhere.
struct KeepAlive {
    interval: Duration,
    last_write: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl KeepAlive {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_write: Instant::now(),
            sleep: None,
        }
    }

    fn wrote(&mut self) {
        self.last_write = Instant::now();
    }

    /// Ready when the stream has been idle for a whole interval; `direct`
    /// is the last write made around the body (by the broker's writer).
    fn poll_due(&mut self, cx: &mut Context<'_>, direct: Option<Instant>) -> Poll<()> {
        if let Some(direct) = direct {
            self.last_write = self.last_write.max(direct);
        }
        let first_deadline = self.last_write + self.interval;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(first_deadline)));
        loop {
            ready!(sleep.as_mut().poll(cx));
            let deadline = self.last_write + self.interval;
            let now = Instant::now();
            if deadline <= now {
                self.last_write = now;
                sleep.as_mut().reset(now + self.interval);
                return Poll::Ready(());
            }
            sleep.as_mut().reset(deadline);
        }
    }
}
