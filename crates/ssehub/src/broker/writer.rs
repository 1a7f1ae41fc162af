//! The broker's fan-out writers: tasks that write claimed frames straight
//! to parked clients' sockets (see `outlet.rs` for when a frame is claimed).
//!
//! A publish hands each writer the outlets that got their first claimed
//! frame since the writer last visited them, and wakes it once, however
//! many subscribers they are. They join the one list waiting for the
//! writer (the list it visits is taken off first), so an outlet is on a
//! writer's lists at most once. A visit writes everything the outlet has
//! pending in one write: when publishes come faster than the writer goes
//! round, frames coalesce per socket, one write per socket per round, and
//! every publish is still written by the writer rather than by thousands
//! of woken connection tasks.
//!
//! There is one writer per core the process may run on (at most
//! [`MAX_SHARDS`]), each serving a fixed share of the clients (by id), so
//! one fan-out is spread over the runtime's worker threads as the wake-ups
//! of many connection tasks were.
//!
//! A writer runs in the runtime of the first connection that lent it a
//! socket. If that runtime goes away the task is dropped; the outlets it
//! had not visited get their pending frames back to write themselves (with
//! a wake), and publishes stop claiming until a connection starts it again.
//!
//! The writer writes bytes through each outlet's transport (the seam of
//! `transport.rs`): it frames nothing and knows no socket.
//!
//! A task can also write for the writers: within [`deliver_first`], the
//! first [`INLINE_VISITS`] outlets a poll's publishes list are visited by
//! the polling task itself at the end of that poll, once every lock the
//! publish took is released. The lean server answers publish requests
//! that way, so a publish reaches its few subscribers before its
//! acknowledgement is written — and without waking a writer task for them.

use std::cell::RefCell;
use std::future::Future;

use bytes::Bytes;
use smallvec::SmallVec;
use tokio::sync::Notify;

use super::outlet::{Clock, Outlet, Visitor};
use super::transport::Framing;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{Arc, Mutex, lock};

/// Called after each direct write with the bytes written and how many
/// connections they went to (`BrokerConfig::on_direct_write`).
pub(crate) type DirectWriteHook = std::sync::Arc<dyn Fn(&[u8], usize) + Send + Sync>;

/// Visits between two yields to the runtime, so a fan-out to many clients
/// does not hold a worker thread for its whole length.
const VISITS_PER_YIELD: usize = 256;

/// Most writers a broker runs.
const MAX_SHARDS: usize = 8;

/// Outlets a task visits itself per poll within [`deliver_first`]; the
/// rest of a large fan-out goes to the writers, which yield to the
/// runtime as they go, so one publisher's broadcast does not hold its
/// worker thread for the whole fan-out.
const INLINE_VISITS: usize = 16;

/// Outlets listed for the polling task, each with the writer it would
/// have gone to.
type Listed = SmallVec<[(Arc<Writer>, Arc<Outlet>); 4]>;

/// The outlets one publish lists for the writers: a handful on the
/// stack, since the usual update (Mercure's: one topic, few subscribers)
/// lists one or two and every publish would otherwise allocate for them.
pub(crate) type Outlets = SmallVec<[Arc<Outlet>; 4]>;

thread_local! {
    /// While a [`deliver_first`] poll runs on this thread: the outlets its
    /// publishes listed.
    static INLINE: RefCell<Option<Listed>> = const { RefCell::new(None) };
}

/// Makes a future with `make` and runs it so that what its publishes (and
/// the call's) hand the fan-out writers is written before it completes:
/// at the end of the call and of each poll the task visits, itself, the
/// first [`INLINE_VISITS`] outlets that call's or poll's publishes listed
/// (the writers get the rest, as always).
///
/// A visit is the writer's own (`Outlet::visit`): the frames reach the
/// socket in publish order whoever writes them, and a full socket or an
/// awake connection leaves them to the connection. The visits run after
/// the inner poll returned, with none of the publish's locks held, and
/// also when it panics.
pub(crate) async fn deliver_first<F: Future>(make: impl FnOnce() -> F) -> F::Output {
    // The call that makes the future may publish already (a handler that
    // publishes and returns a ready answer): it is a poll of its own.
    let future = {
        let _scope = Scope::enter();
        make()
    };
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        let _scope = Scope::enter();
        future.as_mut().poll(cx)
    })
    .await
}

/// One poll of [`deliver_first`]: collects on enter, visits on drop.
struct Scope {
    /// An enclosing scope's list, put back on drop.
    outer: Option<Listed>,
}

impl Scope {
    fn enter() -> Self {
        let outer = INLINE.with(|inline| inline.borrow_mut().replace(Listed::new()));
        Self { outer }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let listed =
            INLINE.with(|inline| std::mem::replace(&mut *inline.borrow_mut(), self.outer.take()));
        let Some(listed) = listed else { return };
        let mut tally = Tally::new();
        let mut now_ms = None;
        for (writer, outlet) in listed {
            let now_ms = *now_ms.get_or_insert_with(|| writer.clock.now_ms());
            writer.visit(&outlet, now_ms, &mut tally);
            writer.report(&mut tally);
        }
    }
}

/// Moves up to what the thread's [`deliver_first`] scope still takes
/// from the front of `outlets` into it (none outside a scope).
fn keep_inline(writers: &Writers, outlets: &mut Outlets) {
    INLINE.with(|inline| {
        // Never borrowed across a publish; should it be, the writers
        // take the outlets.
        let Ok(mut inline) = inline.try_borrow_mut() else {
            return;
        };
        let Some(listed) = inline.as_mut() else {
            return;
        };
        let room = INLINE_VISITS
            .saturating_sub(listed.len())
            .min(outlets.len());
        listed.extend(
            outlets
                .drain(..room)
                .map(|outlet| (writers.shards[outlet.shard()].clone(), outlet)),
        );
    });
}

/// The broker's writers.
pub(crate) struct Writers {
    /// Shared with every writer and outlet, so their times compare.
    clock: Clock,
    /// At least one.
    shards: Box<[Arc<Writer>]>,
}

impl Writers {
    /// `burst_ms`: `BrokerConfig::write_burst`, in the clock's milliseconds.
    pub(crate) fn new(on_write: Option<DirectWriteHook>, burst_ms: u64) -> Self {
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_SHARDS);
        let clock = Clock::new();
        Self {
            clock,
            shards: (0..n)
                .map(|shard| Arc::new(Writer::new(shard, clock, burst_ms, on_write.clone())))
                .collect(),
        }
    }

    /// The writers' clock.
    pub(crate) fn clock(&self) -> Clock {
        self.clock
    }

    /// Milliseconds on the writers' clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The writer of client `id`.
    pub(crate) fn for_client(&self, id: u64) -> Arc<Writer> {
        self.shards[(id % self.shards.len() as u64) as usize].clone()
    }

    /// The writer that visits `outlet`.
    pub(crate) fn of(&self, outlet: &Outlet) -> &Writer {
        &self.shards[outlet.shard()]
    }

    /// Hands each writer the outlets of its share to visit (within
    /// [`deliver_first`], the first few go to the polling task instead).
    pub(crate) fn submit(&self, outlets: impl Into<Outlets>) {
        let mut outlets = outlets.into();
        keep_inline(self, &mut outlets);
        if outlets.is_empty() {
            return;
        }
        if let [writer] = &*self.shards {
            writer.submit(outlets.into_vec());
            return;
        }
        let mut shares = vec![Vec::new(); self.shards.len()];
        for outlet in outlets {
            shares[outlet.shard()].push(outlet);
        }
        for (writer, share) in self.shards.iter().zip(shares) {
            if !share.is_empty() {
                writer.submit(share);
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

#[derive(Debug, Default)]
struct Queue {
    /// The outlets waiting for the writer's next round.
    waiting: Vec<Arc<Outlet>>,
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
    notify: Notify,
    clock: Clock,
    /// `BrokerConfig::write_burst`.
    burst_ms: u64,
    /// `BrokerConfig::on_direct_write`.
    on_write: Option<DirectWriteHook>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("shard", &self.shard)
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl Writer {
    fn new(shard: usize, clock: Clock, burst_ms: u64, on_write: Option<DirectWriteHook>) -> Self {
        Self {
            shard,
            burst_ms,
            queue: Mutex::new(Queue::default()),
            running: AtomicBool::new(false),
            notify: Notify::new(),
            clock,
            on_write,
        }
    }

    pub(crate) fn shard(&self) -> usize {
        self.shard
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
            // The guard goes in as an argument, not made at the task's
            // first poll: a task dropped before it ever ran (its runtime
            // shut down first) must still mark the writer stopped, or
            // claims would wait for visits that never come.
            runtime.spawn(run(Stopped(self.clone())));
        }
        true
    }

    /// Queues `outlets` for a visit.
    fn submit(&self, outlets: Vec<Arc<Outlet>>) {
        let mut queue = lock(&self.queue);
        if !queue.running {
            // The task is gone: the connections write these themselves.
            drop(queue);
            outlets.iter().for_each(|o| o.abandon());
            return;
        }
        if queue.waiting.is_empty() {
            queue.waiting = outlets;
        } else {
            queue.waiting.extend(outlets);
        }
        drop(queue);
        self.notify.notify_one();
    }

    fn close(&self) {
        lock(&self.queue).closed = true;
        self.notify.notify_one();
    }

    fn next(&self) -> Next {
        let mut queue = lock(&self.queue);
        if !queue.waiting.is_empty() {
            Next::List(std::mem::take(&mut queue.waiting))
        } else if queue.closed {
            Next::Done
        } else {
            Next::Wait
        }
    }

    /// Visits `outlet`, counting what it wrote whole when a hook wants to
    /// know.
    fn visit(&self, outlet: &Outlet, now_ms: u64, tally: &mut Tally) {
        let counting = self.on_write.is_some();
        outlet.visit(now_ms, |frame, framing| {
            if counting {
                count(tally, frame, framing);
            }
        });
    }

    /// Tells the hook what was written whole since the last report.
    fn report(&self, tally: &mut Tally) {
        if let Some(hook) = &self.on_write {
            for (framed, count, framing) in tally.drain(..) {
                hook((framing.event)(&framed), count);
            }
        }
    }
}

impl Visitor for Writer {
    fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    fn burst_ms(&self) -> u64 {
        self.burst_ms
    }
}

/// Frames written whole since the last report, by frame: a publish's frame
/// is one shared buffer, so this stays a handful of entries (on the stack:
/// an inline visit makes one per publish).
type Tally = SmallVec<[(Bytes, usize, &'static Framing); 2]>;

enum Next {
    List(Vec<Arc<Outlet>>),
    Wait,
    Done,
}

async fn run(stopped: Stopped) {
    let writer = &stopped.0;
    let mut since_yield = 0;
    let mut tally = Tally::new();
    loop {
        match writer.next() {
            Next::List(outlets) => {
                let mut flight = InFlight { outlets, next: 0 };
                let mut now_ms = writer.clock.now_ms();
                while let Some(outlet) = flight.outlets.get(flight.next) {
                    writer.visit(outlet, now_ms, &mut tally);
                    flight.next += 1;
                    since_yield += 1;
                    if since_yield == VISITS_PER_YIELD {
                        since_yield = 0;
                        writer.report(&mut tally);
                        // Should the task be dropped here, `flight` hands
                        // the rest of the list back.
                        tokio::task::yield_now().await;
                        now_ms = writer.clock.now_ms();
                    }
                }
                writer.report(&mut tally);
            }
            Next::Wait => writer.notify.notified().await,
            Next::Done => return,
        }
    }
}

fn count(tally: &mut Tally, frame: &Bytes, framing: &'static Framing) {
    match tally
        .iter_mut()
        .find(|(f, _, _)| f.as_ptr() == frame.as_ptr())
    {
        Some((_, n, _)) => *n += 1,
        None => tally.push((frame.clone(), 1, framing)),
    }
}

/// The list being visited; the outlets not visited yet get their pending
/// frames back if the task is dropped.
struct InFlight {
    outlets: Vec<Arc<Outlet>>,
    next: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        for outlet in &self.outlets[self.next..] {
            outlet.abandon();
        }
    }
}

/// Marks the writer stopped when its task ends or is dropped, and hands
/// every queued outlet its pending frames back.
struct Stopped(Arc<Writer>);

impl Drop for Stopped {
    fn drop(&mut self) {
        let lists = {
            let mut queue = lock(&self.0.queue);
            queue.running = false;
            self.0.running.store(false, Ordering::Release);
            std::mem::take(&mut queue.waiting)
        };
        for outlet in &lists {
            outlet.abandon();
        }
    }
}

#[cfg(all(test, not(ssehub_loom)))]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};
    use std::time::Duration;

    use super::*;
    use crate::broker::outlet::Claim;
    use crate::broker::transport::testing::{BRACKETS, Recorder};

    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// An outlet of `writers`' shard 0, lent and parked.
    fn parked(writers: &Writers) -> (Arc<Outlet>, Arc<Task>, Arc<Recorder>) {
        let outlet = Arc::new(Outlet::new(0, writers.clock()));
        let transport = Arc::new(Recorder::default());
        outlet.attach(transport.clone());
        let task = Arc::new(Task::default());
        outlet.arm(&Waker::from(task.clone()));
        assert!(outlet.park());
        (outlet, task, transport)
    }

    /// Claims `framed` (position `position`) for `outlet`, as a publish does.
    fn claim(writers: &Writers, outlet: &Outlet, position: u64, framed: &Bytes) -> Claim {
        let writer = writers.of(outlet);
        outlet.try_claim(position, writers.now_ms() + 1_000, writer, |_| {
            framed.clone()
        })
    }

    #[test]
    fn clients_are_shared_out_by_id() {
        let writers = Writers::new(None, 5);
        let n = writers.shards.len();
        assert!((1..=MAX_SHARDS).contains(&n));
        for id in 0..20u64 {
            let writer = writers.for_client(id);
            assert_eq!(writer.shard(), (id % n as u64) as usize);
            let outlet = Outlet::new(writer.shard(), writers.clock());
            assert!(Arc::ptr_eq(
                &writers.shards[writers.of(&outlet).shard()],
                &writer
            ));
        }
    }

    #[test]
    fn without_a_runtime_nothing_is_claimed_and_lists_go_back() {
        let writers = Writers::new(None, 5);
        let writer = writers.for_client(0);
        assert!(!writer.ensure_running(), "no runtime to run in");
        assert!(!writer.is_running());
        let (outlet, task, _transport) = parked(&writers);
        let framed = (BRACKETS.frame)(b"a");
        assert_eq!(claim(&writers, &outlet, 1, &framed), Claim::No);
        // A list that reaches a writer that is not running is handed back.
        writers.submit(vec![outlet.clone()]);
        assert_eq!(task.0.load(Ordering::SeqCst), 0, "nothing was pending");
    }

    #[tokio::test]
    async fn a_running_writer_visits_a_list_and_reports_what_it_wrote() {
        let (writers, reported) = reporting();
        let (first, first_task, first_socket) = parked(&writers);
        let (second, _, second_socket) = parked(&writers);
        // One publish: one framed buffer for both.
        let framed = (BRACKETS.frame)(b"e");
        assert_eq!(
            claim(&writers, &first, 1, &framed),
            Claim::Claimed { schedule: true }
        );
        assert_eq!(
            claim(&writers, &second, 1, &framed),
            Claim::Claimed { schedule: true }
        );
        writers.submit(vec![first.clone(), second.clone()]);
        for _ in 0..200 {
            if !second_socket.text().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(first_socket.text(), "[e]");
        assert_eq!(second_socket.text(), "[e]");
        assert_eq!(first_task.0.load(Ordering::SeqCst), 0, "it slept through");
        assert_eq!(*lock(&reported), [(b"e".to_vec(), 2)]);
    }

    #[test]
    fn a_writer_whose_runtime_ends_hands_back_what_it_held() {
        let writers = Writers::new(None, 5);
        let writer = writers.for_client(0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        assert!(runtime.block_on(async { writer.ensure_running() }));
        let (outlet, task, transport) = parked(&writers);
        let framed = (BRACKETS.frame)(b"a");
        assert!(matches!(
            claim(&writers, &outlet, 1, &framed),
            Claim::Claimed { .. }
        ));
        // Queued, but the task never runs again.
        writers.submit(vec![outlet.clone()]);
        drop(runtime);
        assert!(!writer.is_running());
        assert_eq!(task.0.load(Ordering::SeqCst), 1, "woken for its frame");
        assert_eq!(transport.text(), "");
        assert_eq!(outlet.take_pending(), [framed]);
        // Claims stop until a connection starts a writer again.
        let (parked_again, _, _) = parked(&writers);
        let framed = (BRACKETS.frame)(b"b");
        assert_eq!(claim(&writers, &parked_again, 2, &framed), Claim::No);
    }

    /// What a hook was told: each event written whole, and to how many.
    type Reported = Arc<std::sync::Mutex<Vec<(Vec<u8>, usize)>>>;

    /// Writers running (every shard) with a hook that records what it is
    /// told.
    fn reporting() -> (Writers, Reported) {
        let reported = Arc::new(std::sync::Mutex::new(Vec::new()));
        let hook: DirectWriteHook = {
            let reported = reported.clone();
            Arc::new(move |event: &[u8], count: usize| {
                lock(&reported).push((event.to_vec(), count));
            })
        };
        let writers = Writers::new(Some(hook), 5);
        for shard in &writers.shards {
            assert!(shard.ensure_running());
        }
        (writers, reported)
    }

    #[tokio::test]
    async fn within_deliver_first_the_task_writes_what_its_publish_listed() {
        let (writers, reported) = reporting();
        let (first, first_task, first_socket) = parked(&writers);
        let (second, _, second_socket) = parked(&writers);
        let framed = (BRACKETS.frame)(b"e");
        deliver_first(|| async {
            for outlet in [&first, &second] {
                assert!(matches!(
                    claim(&writers, outlet, 1, &framed),
                    Claim::Claimed { schedule: true }
                ));
            }
            writers.submit(vec![first.clone(), second.clone()]);
            // Nothing is written while the publish's poll runs.
            assert_eq!(first_socket.text(), "");
        })
        .await;
        // Written when the poll returned: this task never yielded, so no
        // writer task can have done it.
        assert_eq!(first_socket.text(), "[e]");
        assert_eq!(second_socket.text(), "[e]");
        assert_eq!(first_task.0.load(Ordering::SeqCst), 0, "it slept through");
        assert!(
            writers
                .shards
                .iter()
                .all(|w| lock(&w.queue).waiting.is_empty())
        );
        let total: usize = lock(&reported).iter().map(|(_, n)| n).sum();
        assert_eq!(total, 2);
        assert!(lock(&reported).iter().all(|(event, _)| event == b"e"));
        // Outside the scope the writers take lists again.
        assert!(matches!(
            claim(&writers, &first, 2, &framed),
            Claim::Claimed { schedule: true }
        ));
        writers.submit(vec![first.clone()]);
        assert_eq!(first_socket.text(), "[e]", "not written by this task");
        for _ in 0..200 {
            if first_socket.text() == "[e][e]" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(first_socket.text(), "[e][e]");
    }

    #[tokio::test]
    async fn beyond_inline_visits_the_writers_take_the_rest() {
        let (writers, _) = reporting();
        let outlets: Vec<_> = (0..INLINE_VISITS + 3).map(|_| parked(&writers)).collect();
        let framed = (BRACKETS.frame)(b"e");
        deliver_first(|| async {
            for (outlet, _, _) in &outlets {
                assert!(matches!(
                    claim(&writers, outlet, 1, &framed),
                    Claim::Claimed { .. }
                ));
            }
            writers.submit(
                outlets
                    .iter()
                    .map(|(o, _, _)| o.clone())
                    .collect::<Vec<_>>(),
            );
        })
        .await;
        let written = |outlets: &[(Arc<Outlet>, Arc<Task>, Arc<Recorder>)]| {
            outlets.iter().filter(|(_, _, s)| s.text() == "[e]").count()
        };
        assert_eq!(
            written(&outlets),
            INLINE_VISITS,
            "the first ones, by this task"
        );
        assert!(
            outlets[..INLINE_VISITS]
                .iter()
                .all(|(_, _, s)| s.text() == "[e]")
        );
        for _ in 0..200 {
            if written(&outlets) == outlets.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(written(&outlets), outlets.len(), "the rest, by the writers");
    }

    #[tokio::test]
    async fn a_poll_that_panics_still_writes_what_it_listed() {
        let (writers, _) = reporting();
        let (outlet, _, socket) = parked(&writers);
        let framed = (BRACKETS.frame)(b"e");
        let mut publish = std::pin::pin!(deliver_first(|| async {
            assert!(matches!(
                claim(&writers, &outlet, 1, &framed),
                Claim::Claimed { .. }
            ));
            writers.submit(vec![outlet.clone()]);
            panic!("the answer failed after publishing");
        }));
        let mut cx = std::task::Context::from_waker(Waker::noop());
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            publish.as_mut().poll(&mut cx)
        }));
        assert!(polled.is_err());
        assert_eq!(socket.text(), "[e]");
    }

    #[tokio::test]
    async fn a_closed_broker_ends_its_writers() {
        let writers = Writers::new(None, 5);
        let writer = writers.for_client(0);
        assert!(writer.ensure_running());
        tokio::task::yield_now().await;
        writers.close();
        for _ in 0..200 {
            if !writer.is_running() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!writer.is_running());
        assert!(!writer.ensure_running(), "a closed writer does not start");
    }
}
