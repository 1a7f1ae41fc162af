//! `server-floor`: the least a server can do. One thread (a current-thread
//! tokio runtime used only as an epoll loop), no HTTP framework, no task or
//! queue per event: a publish appends its pre-encoded frame to the topic's
//! byte log once, and a single flusher `write(2)`s everything a subscriber
//! has not got yet straight to its socket — one write per subscriber however
//! many frames accumulated, `FLUSH_SLICE` writes between turns of the
//! publisher. A subscriber is an offset into the log;
//! only one whose socket is full waits for writability (bounded: 1 MiB
//! behind, then it is dropped). Responses are unframed (no chunked
//! encoding: the body runs until the connection closes).
//!
//! Control and publish requests (`POST /publish?topic=T`, body = payload)
//! are answered on the same thread, on keep-alive connections; a publish
//! goes through the same `Fanout::publish` as the schedule's.
//!
//! It shows what this machine and the load generator allow at all.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use ssehub_bench::args::{Args, query_param};
use ssehub_bench::control::{self, Action, Control, Fanout};
use ssehub_bench::{procfs, timing, wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

const USAGE: &str = "server-floor [--addr 127.0.0.1:7003] [--max-pending-bytes 1048576]";

const EVENTS_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";

/// Subscribers written to before the flusher lets the publisher run again.
const FLUSH_SLICE: usize = 64;

/// A topic: its unsent frames and its subscribers.
struct Topic {
    /// Bytes published at offsets `base..base + log.len()`.
    log: RefCell<Vec<u8>>,
    base: Cell<u64>,
    subs: RefCell<Vec<Rc<Sub>>>,
    /// Queued for the flusher.
    dirty: Cell<bool>,
}

impl Topic {
    fn end(&self) -> u64 {
        self.base.get() + self.log.borrow().len() as u64
    }

    /// Drops the bytes every subscriber has written.
    fn trim(&self) {
        let end = self.end();
        let min = self
            .subs
            .borrow()
            .iter()
            .filter(|s| s.alive.get())
            .map(|s| s.pos.get())
            .min()
            .unwrap_or(end);
        let drop = (min - self.base.get()) as usize;
        if drop > 0 {
            let mut log = self.log.borrow_mut();
            log.drain(..drop);
            if log.is_empty() && log.capacity() > 64 * 1024 {
                *log = Vec::new();
            }
            self.base.set(min);
        }
    }
}

struct Sub {
    stream: TcpStream,
    topic: Rc<Topic>,
    /// Offset in the topic's log of the next byte to write.
    pos: Cell<u64>,
    /// The socket was full: the sub's own task writes when it drains.
    blocked: Cell<bool>,
    /// Wakes the sub's task when it becomes blocked or is dropped.
    notify: Notify,
    alive: Cell<bool>,
    /// Index in its topic's list.
    index: Cell<usize>,
}

impl Sub {
    /// Writes everything from its position to the end of the log, in one
    /// `write(2)`.
    fn write_log(&self, max_pending: u64) {
        let topic = &self.topic;
        let end = topic.end();
        let pos = self.pos.get();
        if pos == end || !self.alive.get() {
            return;
        }
        if end - pos > max_pending {
            self.kill();
            return;
        }
        let log = topic.log.borrow();
        let unsent = &log[(pos - topic.base.get()) as usize..];
        match self.stream.try_write(unsent) {
            Ok(n) => {
                timing::observe(&unsent[..n]);
                self.pos.set(pos + n as u64);
                if n < unsent.len() {
                    self.block();
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => self.block(),
            Err(_) => self.kill(),
        }
    }

    fn block(&self) {
        self.blocked.set(true);
        self.notify.notify_one();
    }

    fn kill(&self) {
        self.alive.set(false);
        self.notify.notify_one();
    }

    /// Whether the peer closed (a read returns 0 or fails).
    fn peer_closed(&self) -> bool {
        let mut probe = [0u8; 64];
        match self.stream.try_read(&mut probe) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != ErrorKind::WouldBlock,
        }
    }
}

#[derive(Default)]
struct FloorInner {
    topic_ids: RefCell<HashMap<String, Rc<Topic>>>,
    count: Cell<usize>,
    max_pending: u64,
    /// Topics with bytes some subscriber has not been written yet.
    dirty: RefCell<VecDeque<Rc<Topic>>>,
    /// Wakes the flusher after a publish.
    wake: Notify,
}

#[derive(Clone)]
struct Floor(Rc<FloorInner>);

impl Floor {
    fn topic_named(&self, name: &str) -> Rc<Topic> {
        let mut ids = self.0.topic_ids.borrow_mut();
        if let Some(topic) = ids.get(name) {
            return topic.clone();
        }
        let topic = Rc::new(Topic {
            log: RefCell::new(Vec::new()),
            base: Cell::new(0),
            subs: RefCell::new(Vec::new()),
            dirty: Cell::new(false),
        });
        ids.insert(name.to_owned(), topic.clone());
        topic
    }

    fn add(&self, sub: &Rc<Sub>) {
        let mut list = sub.topic.subs.borrow_mut();
        sub.index.set(list.len());
        list.push(sub.clone());
        self.0.count.set(self.0.count.get() + 1);
    }

    fn remove(&self, sub: &Sub) {
        let mut list = sub.topic.subs.borrow_mut();
        let i = sub.index.get();
        list.swap_remove(i);
        if let Some(moved) = list.get(i) {
            moved.index.set(i);
        }
        self.0.count.set(self.0.count.get() - 1);
    }
}

/// The one writer: takes dirty topics in turn and writes to each of their
/// subscribers what it has not got yet, letting the publisher run after
/// every `FLUSH_SLICE` writes — frames published meanwhile go out with the
/// same write to the subscribers not yet reached.
async fn flusher(floor: Floor) {
    let mut budget = FLUSH_SLICE;
    loop {
        let next = floor.0.dirty.borrow_mut().pop_front();
        let Some(topic) = next else {
            floor.0.wake.notified().await;
            continue;
        };
        // A publish from now on queues the topic again.
        topic.dirty.set(false);
        let mut i = 0;
        loop {
            let sub = topic.subs.borrow().get(i).cloned();
            let Some(sub) = sub else { break };
            i += 1;
            if sub.blocked.get() {
                continue;
            }
            sub.write_log(floor.0.max_pending);
            budget -= 1;
            if budget == 0 {
                budget = FLUSH_SLICE;
                tokio::task::yield_now().await;
            }
        }
        topic.trim();
    }
}

impl Fanout for Floor {
    type Topic = Rc<Topic>;

    fn topic(&self, name: &str) -> Rc<Topic> {
        self.topic_named(name)
    }

    fn publish(&self, topic: &Rc<Topic>, payloads: &[String]) {
        let mut log = topic.log.borrow_mut();
        for p in payloads {
            log.extend_from_slice(b"data: ");
            log.extend_from_slice(p.as_bytes());
            log.extend_from_slice(b"\n\n");
        }
        drop(log);
        if !topic.dirty.replace(true) {
            self.0.dirty.borrow_mut().push_back(topic.clone());
            self.0.wake.notify_one();
        }
    }

    fn subscribers(&self) -> usize {
        self.0.count.get()
    }

    fn extra(&self) -> Value {
        json!({ "topics": self.0.topic_ids.borrow().len() })
    }
}

/// Reads a request head from `stream` into `buf` (which may already hold
/// the start of it); returns the head and leaves what follows it in `buf`.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<wire::RequestHead> {
    loop {
        if let Some(end) = wire::head_end(buf) {
            let head = wire::parse_request_head(&buf[..end])
                .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, "bad request"))?;
            buf.drain(..end);
            return Ok(head);
        }
        if buf.len() > 16 * 1024 || stream.read_buf(buf).await? == 0 {
            return Err(io::Error::new(ErrorKind::UnexpectedEof, "no request"));
        }
    }
}

/// A connection: an event stream (`GET /events`), or control and publish
/// requests, answered in turn on this thread and kept alive until the
/// client asks to close (an HTTP publisher sends its publishes one after
/// the other on one connection).
async fn connection(floor: Floor, ctl: Arc<Control>, mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let Ok(head) = read_head(&mut stream, &mut buf).await else {
            return;
        };
        if head.method == "GET" && head.path == "/events" {
            subscribe(&floor, stream, &head).await;
            return;
        }
        while buf.len() < head.content_length {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let body: Vec<u8> = buf.drain(..head.content_length).collect();
        let (status, text) =
            match control::handle(&floor, &ctl, &head.method, &head.path, &head.query, &body) {
                Action::Reply(status, text) => (status, text),
                Action::Start(spec) => {
                    tokio::task::spawn_local(control::run_schedule(
                        floor.clone(),
                        ctl.clone(),
                        spec,
                    ));
                    (200, "started".to_owned())
                }
            };
        let connection = if head.close { "close" } else { "keep-alive" };
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{text}",
            text.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
        if head.close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// An event stream: the head, then the subscriber joins its topic until
/// the peer goes.
async fn subscribe(floor: &Floor, stream: TcpStream, head: &wire::RequestHead) {
    let topic = floor.topic_named(query_param(&head.query, "topic").unwrap_or("all"));
    // The head goes out before the subscriber joins, so no frame can
    // overtake it; a fresh socket always takes these few bytes.
    if !matches!(stream.try_write(EVENTS_HEAD), Ok(n) if n == EVENTS_HEAD.len()) {
        return;
    }
    let sub = Rc::new(Sub {
        stream,
        pos: Cell::new(topic.end()),
        topic,
        blocked: Cell::new(false),
        notify: Notify::new(),
        alive: Cell::new(true),
        index: Cell::new(0),
    });
    floor.add(&sub);
    subscriber(&sub, floor.0.max_pending).await;
    sub.alive.set(false);
    floor.remove(&sub);
}

/// Waits for the peer to close; while the socket is full, writes the rest
/// of the log whenever it drains.
async fn subscriber(sub: &Sub, max_pending: u64) {
    loop {
        if !sub.alive.get() {
            return;
        }
        if sub.blocked.get() {
            tokio::select! {
                r = sub.stream.writable() => {
                    if r.is_err() {
                        return;
                    }
                    sub.blocked.set(false);
                    sub.write_log(max_pending);
                }
                r = sub.stream.readable() => {
                    if r.is_err() || sub.peer_closed() {
                        return;
                    }
                }
            }
        } else {
            tokio::select! {
                () = sub.notify.notified() => {}
                r = sub.stream.readable() => {
                    if r.is_err() || sub.peer_closed() {
                        return;
                    }
                }
            }
        }
    }
}

fn main() -> io::Result<()> {
    let args = Args::from_env(USAGE);
    let addr = procfs::loopback_addr(args.opt("addr").unwrap_or("127.0.0.1:7003"));
    let max_pending: u64 = args.get("max-pending-bytes", 1 << 20);
    let _ = procfs::raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let floor = Floor(Rc::new(FloorInner {
            max_pending,
            ..FloorInner::default()
        }));
        let ctl = Arc::new(Control::default());
        tokio::task::spawn_local(flusher(floor.clone()));
        let listener = TcpListener::bind(addr).await?;
        eprintln!(
            "server-floor listening on {addr}, pid {}",
            std::process::id()
        );
        let accept = async {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::task::spawn_local(connection(floor.clone(), ctl.clone(), stream));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        };
        tokio::select! {
            () = accept => Ok(()),
            () = procfs::until_terminated() => {
                eprintln!("server-floor: {}", ctl.stats(&floor));
                std::process::exit(0)
            }
        }
    })
}
