//! The broker's fan-out writers: tasks that write claimed frames straight
//! to parked clients' sockets (see `outlet.rs` for when a frame is claimed).
//!
//! A publish hands each writer one batch — the frame, framed once as an
//! HTTP/1.1 chunk, and the outlets that claimed it — and wakes it once,
//! however many subscribers the batch has. Batches are queued under the
//! broker's publishing lock, so a writer handles them in publish order,
//! and each outlet sees its frames in that order.
//!
//! There is one writer per core the process may run on (at most
//! [`MAX_SHARDS`]), each serving a fixed share of the clients (by id), so
//! one fan-out is spread over the runtime's worker threads as the wake-ups
//! of many connection tasks were.
//!
//! A writer runs in the runtime of the first connection that lent it a
//! socket. If that runtime goes away the task is dropped; whatever it had
//! not written goes back to the connections (as pending frames, with a
//! wake), and later publishes stop claiming until a connection starts it
//! again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::config::DirectWriteHook;
use super::outlet::Outlet;
use crate::sync::lock;

/// Writes between two yields to the runtime, so a fan-out to many clients
/// does not hold a worker thread for its whole length.
const WRITES_PER_YIELD: usize = 256;

/// Most writers a broker runs.
const MAX_SHARDS: usize = 8;

/// The broker's writers.
pub(crate) struct Writers {
    shards: Box<[Arc<Writer>]>,
}

impl Writers {
    pub(crate) fn new(on_write: Option<DirectWriteHook>) -> Self {
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_SHARDS);
        Self {
            shards: (0..n)
                .map(|shard| Arc::new(Writer::new(shard, on_write.clone())))
                .collect(),
        }
    }

    /// The writer of client `id`.
    pub(crate) fn for_client(&self, id: u64) -> Arc<Writer> {
        self.shards[(id % self.shards.len() as u64) as usize].clone()
    }

    /// Queues `frame` with each writer for the outlets of its share.
    pub(crate) fn submit(&self, frame: &[u8], claimed: Vec<Arc<Outlet>>) {
        let frame = Frame::new(frame);
        if let [writer] = &*self.shards {
            writer.submit(frame, claimed);
            return;
        }
        let mut shares = vec![Vec::new(); self.shards.len()];
        for outlet in claimed {
            shares[outlet.shard()].push(outlet);
        }
        for (writer, share) in self.shards.iter().zip(shares) {
            if !share.is_empty() {
                writer.submit(frame.clone(), share);
            }
        }
    }

    /// The broker is gone: let the tasks finish.
    pub(crate) fn close(&self) {
        for writer in &self.shards {
            writer.close();
        }
    }
}

/// A frame framed once as one HTTP/1.1 chunk (size line, data, CRLF), so
/// each subscriber costs one plain `write(2)`.
#[derive(Debug, Clone)]
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
    /// Which share of the clients it writes for.
    shard: usize,
    queue: Mutex<Queue>,
    /// Mirrors `queue.running`, for the check at every claim.
    running: AtomicBool,
    /// Batches queued or being written.
    unfinished: AtomicUsize,
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
    fn new(shard: usize, on_write: Option<DirectWriteHook>) -> Self {
        Self {
            shard,
            queue: Mutex::default(),
            running: AtomicBool::new(false),
            unfinished: AtomicUsize::new(0),
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

    pub(crate) fn shard(&self) -> usize {
        self.shard
    }

    /// Whether a publish may claim frames for this writer now: only while
    /// it is idle. A publish that comes while it writes goes the usual way
    /// — the connections take it themselves, together with whatever else
    /// came meanwhile, in one write — so a publisher running ahead of the
    /// sockets gets batching, not one `write(2)` per frame per subscriber.
    pub(crate) fn accepting(&self) -> bool {
        self.running.load(Ordering::Acquire) && self.unfinished.load(Ordering::Acquire) == 0
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
    fn submit(&self, frame: Frame, outlets: Vec<Arc<Outlet>>) {
        let batch = Batch { frame, outlets };
        let mut queue = lock(&self.queue);
        if !queue.running {
            // The task is gone: the connections write these themselves.
            drop(queue);
            hand_back(batch);
            return;
        }
        queue.batches.push_back(batch);
        self.unfinished.fetch_add(1, Ordering::AcqRel);
        drop(queue);
        self.notify.notify_one();
    }

    /// The broker is gone: let the task finish.
    fn close(&self) {
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
                writer.unfinished.fetch_sub(1, Ordering::AcqRel);
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
            self.0.unfinished.store(0, Ordering::Release);
            std::mem::take(&mut queue.batches)
        };
        for batch in batches {
            hand_back(batch);
        }
    }
}
