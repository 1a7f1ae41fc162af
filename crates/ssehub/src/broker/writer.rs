//! The broker's fan-out writer: one task that writes claimed frames straight
//! to parked clients' sockets (see `outlet.rs` for when a frame is claimed).
//!
//! A publish hands the writer one batch — the frame, framed once as an
//! HTTP/1.1 chunk, and the outlets that claimed it — and wakes it once,
//! however many subscribers the batch has. Batches are queued under the
//! broker's publishing lock, so the writer handles them in publish order,
//! and each outlet sees its frames in that order.
//!
//! The writer runs in the runtime of the first connection that lent it a
//! socket. If that runtime goes away the task is dropped; whatever it had
//! not written goes back to the connections (as pending frames, with a
//! wake), and later publishes stop claiming until a connection starts it
//! again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::config::DirectWriteHook;
use super::outlet::Outlet;
use crate::sync::lock;

/// Batches queued beyond this are not claimed: the clients' connections
/// take those frames themselves, batching several per write, which is what
/// a publisher running ahead of the sockets needs anyway.
const MAX_QUEUED_BATCHES: usize = 64;

/// Writes between two yields to the runtime, so a fan-out to many clients
/// does not hold a worker thread for its whole length.
const WRITES_PER_YIELD: usize = 256;

/// A frame framed once as one HTTP/1.1 chunk (size line, data, CRLF), so
/// each subscriber costs one plain `write(2)`.
#[derive(Debug)]
pub(crate) struct Frame {
    chunk: Bytes,
    /// Where the event starts in `chunk` (after the size line).
    data_start: usize,
    /// When the writer handles it, in milliseconds since the writer's epoch
    /// (read once per batch, not once per write).
    pub(crate) at_ms: u64,
}

impl Frame {
    fn new(data: &[u8]) -> Self {
        let mut size_line = [0u8; 18];
        let size_line = crate::chunked::size_line(data.len(), &mut size_line);
        let mut chunk = BytesMut::with_capacity(size_line.len() + data.len() + 2);
        chunk.extend_from_slice(size_line);
        chunk.extend_from_slice(data);
        chunk.extend_from_slice(b"\r\n");
        Self {
            chunk: chunk.freeze(),
            data_start: size_line.len(),
            at_ms: 0,
        }
    }

    /// The encoded event alone.
    fn data(&self) -> &[u8] {
        &self.chunk[self.data_start..self.chunk.len() - 2]
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.chunk
    }

    /// The bytes after the first `n` (no copy).
    pub(crate) fn rest_after(&self, n: usize) -> Bytes {
        self.chunk.slice(n..)
    }
}

#[derive(Debug)]
struct Batch {
    frame: Frame,
    outlets: Vec<Arc<Outlet>>,
}

#[derive(Debug, Default)]
struct Queue {
    batches: VecDeque<Batch>,
    /// A writer task is running (or about to).
    running: bool,
    /// The broker is gone: the task ends once the queue is empty.
    closed: bool,
}

pub(crate) struct Writer {
    queue: Mutex<Queue>,
    /// Mirrors `queue.running` for the check at every publish.
    running: AtomicBool,
    notify: Notify,
    /// What `Frame::at_ms` counts from.
    epoch: Instant,
    /// `BrokerConfig::on_direct_write`.
    on_write: Option<DirectWriteHook>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl Writer {
    pub(crate) fn new(on_write: Option<DirectWriteHook>) -> Self {
        Self {
            queue: Mutex::default(),
            running: AtomicBool::new(false),
            notify: Notify::new(),
            epoch: Instant::now(),
            on_write,
        }
    }

    /// Tells the hook about `count` writes of `frame`.
    fn wrote(&self, frame: &Frame, count: &mut usize) {
        if let Some(hook) = &self.on_write
            && *count > 0
        {
            hook(frame.data(), *count);
        }
        *count = 0;
    }

    /// Whether a publish may claim frames now.
    pub(crate) fn accepting(&self) -> bool {
        self.running.load(Ordering::Acquire) && lock(&self.queue).batches.len() < MAX_QUEUED_BATCHES
    }

    /// Starts the task if it is not running; false without a runtime.
    pub(crate) fn ensure_running(self: &Arc<Self>) -> bool {
        if self.running.load(Ordering::Acquire) {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let mut queue = lock(&self.queue);
        if queue.closed {
            return false;
        }
        if !queue.running {
            queue.running = true;
            self.running.store(true, Ordering::Release);
            runtime.spawn(run(self.clone()));
        }
        true
    }

    /// `Frame::at_ms` as an instant.
    pub(crate) fn instant(&self, at_ms: u64) -> Instant {
        self.epoch + Duration::from_millis(at_ms)
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means "never written".
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }

    /// Queues `frame` for `outlets`, which claimed it.
    pub(crate) fn submit(&self, frame: &[u8], outlets: Vec<Arc<Outlet>>) {
        let batch = Batch {
            frame: Frame::new(frame),
            outlets,
        };
        let mut queue = lock(&self.queue);
        if !queue.running {
            // The task is gone: the connections write these themselves.
            drop(queue);
            hand_back(batch);
            return;
        }
        queue.batches.push_back(batch);
        drop(queue);
        self.notify.notify_one();
    }

    /// The broker is gone: let the task finish.
    pub(crate) fn close(&self) {
        lock(&self.queue).closed = true;
        self.notify.notify_one();
    }

    fn next(&self) -> Next {
        let mut queue = lock(&self.queue);
        match queue.batches.pop_front() {
            Some(batch) => Next::Batch(batch),
            None if queue.closed => Next::Done,
            None => Next::Wait,
        }
    }
}

enum Next {
    Batch(Batch),
    Wait,
    Done,
}

async fn run(writer: Arc<Writer>) {
    let _stopped = Stopped(writer.clone());
    let mut since_yield = 0;
    loop {
        match writer.next() {
            Next::Batch(batch) => {
                let mut flight = InFlight { batch, next: 0 };
                flight.batch.frame.at_ms = writer.now_ms();
                let mut written = 0;
                while let Some(outlet) = flight.batch.outlets.get(flight.next) {
                    written += usize::from(outlet.deliver(&flight.batch.frame));
                    flight.next += 1;
                    since_yield += 1;
                    if since_yield == WRITES_PER_YIELD {
                        since_yield = 0;
                        writer.wrote(&flight.batch.frame, &mut written);
                        // Should the task be dropped here, `flight` hands
                        // the rest of the batch back.
                        tokio::task::yield_now().await;
                        flight.batch.frame.at_ms = writer.now_ms();
                    }
                }
                writer.wrote(&flight.batch.frame, &mut written);
            }
            Next::Wait => writer.notify.notified().await,
            Next::Done => return,
        }
    }
}

/// Hands every outlet of `batch` its frame as pending.
fn hand_back(batch: Batch) {
    for outlet in batch.outlets {
        outlet.deliver_later(&batch.frame);
    }
}

/// The batch being written; what is left of it is handed back if the task
/// is dropped.
struct InFlight {
    batch: Batch,
    next: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        for outlet in &self.batch.outlets[self.next..] {
            outlet.deliver_later(&self.batch.frame);
        }
    }
}

/// Marks the writer stopped when its task ends or is dropped, and hands
/// every queued frame back to its connection.
struct Stopped(Arc<Writer>);

impl Drop for Stopped {
    fn drop(&mut self) {
        let batches = {
            let mut queue = lock(&self.0.queue);
            queue.running = false;
            self.0.running.store(false, Ordering::Release);
            std::mem::take(&mut queue.batches)
        };
        for batch in batches {
            hand_back(batch);
        }
    }
}
