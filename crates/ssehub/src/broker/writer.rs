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

use bytes::Bytes;
use tokio::sync::Notify;

use super::outlet::{Outlet, join};
use crate::sync::lock;

/// Batches queued beyond this are not claimed: the clients' connections
/// take those frames themselves, batching several per write, which is what
/// a publisher running ahead of the sockets needs anyway.
const MAX_QUEUED_BATCHES: usize = 64;

/// Writes between two yields to the runtime, so a fan-out to many clients
/// does not hold a worker thread for its whole length.
const WRITES_PER_YIELD: usize = 256;

/// A frame framed as one HTTP/1.1 chunk: size line, data, CRLF.
#[derive(Debug)]
pub(crate) struct Frame {
    size_line: [u8; 18],
    size_len: usize,
    data: Bytes,
}

impl Frame {
    pub(crate) fn new(data: Bytes) -> Self {
        let mut size_line = [0u8; 18];
        let size_len = crate::chunked::size_line(data.len(), &mut size_line).len();
        Self {
            size_line,
            size_len,
            data,
        }
    }

    pub(crate) fn slices(&self) -> [&[u8]; 3] {
        [&self.size_line[..self.size_len], &self.data, b"\r\n"]
    }

    pub(crate) fn len(&self) -> usize {
        self.size_len + self.data.len() + 2
    }

    /// The bytes after the first `n`, as one buffer.
    pub(crate) fn rest_after(&self, n: usize) -> Bytes {
        join(self.slices(), n)
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

#[derive(Debug, Default)]
pub(crate) struct Writer {
    queue: Mutex<Queue>,
    /// Mirrors `queue.running` for the check at every publish.
    running: AtomicBool,
    notify: Notify,
}

impl Writer {
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

    /// Queues `frame` for `outlets`, which claimed it.
    pub(crate) fn submit(&self, frame: Bytes, outlets: Vec<Arc<Outlet>>) {
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
                let mut outlets = batch.outlets.into_iter();
                while let Some(outlet) = outlets.next() {
                    outlet.deliver(&batch.frame);
                    since_yield += 1;
                    if since_yield == WRITES_PER_YIELD {
                        since_yield = 0;
                        // Should the task be dropped meanwhile, `Stopped`
                        // hands the rest of this batch back too.
                        let rest = Batch {
                            frame: Frame::new(batch.frame.data.clone()),
                            outlets: outlets.collect(),
                        };
                        let guard = Unwritten(Some(rest));
                        tokio::task::yield_now().await;
                        let Some(rest) = guard.disarm() else { break };
                        outlets = rest.outlets.into_iter();
                    }
                }
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

/// Part of a batch held across a yield: handed back if the task is dropped.
struct Unwritten(Option<Batch>);

impl Unwritten {
    fn disarm(mut self) -> Option<Batch> {
        self.0.take()
    }
}

impl Drop for Unwritten {
    fn drop(&mut self) {
        if let Some(batch) = self.0.take() {
            hand_back(batch);
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
