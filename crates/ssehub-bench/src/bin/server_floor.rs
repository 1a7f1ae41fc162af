//! `server-floor`: the least a server can do. One thread (a current-thread
//! tokio runtime used only as an epoll loop), no HTTP framework, no task or
//! buffer between publish and socket: a publish formats its frames once and
//! `write(2)`s them straight to every subscriber's socket. Only a socket
//! that is full gets a pending buffer (bounded: 1 MiB, then the subscriber
//! is dropped), flushed when it becomes writable. Responses are unframed
//! (no chunked encoding: the body runs until the connection closes).
//!
//! It shows what this machine and the load generator allow at all.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
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

struct Sub {
    stream: TcpStream,
    /// Bytes the socket did not take yet; empty almost always.
    pending: RefCell<Vec<u8>>,
    /// Wakes the connection's task when `pending` fills or the sub is dropped.
    notify: Notify,
    alive: Cell<bool>,
    topic: usize,
    /// Index in its topic's list.
    index: Cell<usize>,
}

impl Sub {
    fn send(&self, frame: &[u8], max_pending: usize) {
        if !self.alive.get() {
            return;
        }
        let mut pending = self.pending.borrow_mut();
        if !pending.is_empty() {
            if pending.len() + frame.len() > max_pending {
                self.kill();
            } else {
                pending.extend_from_slice(frame);
            }
            return;
        }
        match self.stream.try_write(frame) {
            Ok(n) => {
                timing::observe(&frame[..n]);
                if n < frame.len() {
                    pending.extend_from_slice(&frame[n..]);
                    self.notify.notify_one();
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                pending.extend_from_slice(frame);
                self.notify.notify_one();
            }
            Err(_) => self.kill(),
        }
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

    /// Writes what is pending; false if the socket failed.
    fn flush(&self) -> bool {
        let mut pending = self.pending.borrow_mut();
        match self.stream.try_write(&pending) {
            Ok(n) => {
                timing::observe(&pending[..n]);
                pending.drain(..n);
                if pending.is_empty() {
                    *pending = Vec::new();
                }
                true
            }
            Err(e) => e.kind() == ErrorKind::WouldBlock,
        }
    }
}

#[derive(Default)]
struct FloorInner {
    topic_ids: RefCell<HashMap<String, usize>>,
    topics: RefCell<Vec<Vec<Rc<Sub>>>>,
    count: Cell<usize>,
    max_pending: usize,
}

#[derive(Clone)]
struct Floor(Rc<FloorInner>);

impl Floor {
    fn topic_id(&self, name: &str) -> usize {
        let mut ids = self.0.topic_ids.borrow_mut();
        if let Some(&id) = ids.get(name) {
            return id;
        }
        let mut topics = self.0.topics.borrow_mut();
        topics.push(Vec::new());
        ids.insert(name.to_owned(), topics.len() - 1);
        topics.len() - 1
    }

    fn add(&self, sub: &Rc<Sub>) {
        let mut topics = self.0.topics.borrow_mut();
        let list = &mut topics[sub.topic];
        sub.index.set(list.len());
        list.push(sub.clone());
        self.0.count.set(self.0.count.get() + 1);
    }

    fn remove(&self, sub: &Sub) {
        let mut topics = self.0.topics.borrow_mut();
        let list = &mut topics[sub.topic];
        let i = sub.index.get();
        list.swap_remove(i);
        if let Some(moved) = list.get(i) {
            moved.index.set(i);
        }
        self.0.count.set(self.0.count.get() - 1);
    }
}

impl Fanout for Floor {
    type Topic = usize;

    fn topic(&self, name: &str) -> usize {
        self.topic_id(name)
    }

    fn publish(&self, topic: &usize, payloads: &[String]) {
        let mut frame = Vec::with_capacity(payloads.iter().map(|p| p.len() + 8).sum());
        for p in payloads {
            frame.extend_from_slice(b"data: ");
            frame.extend_from_slice(p.as_bytes());
            frame.extend_from_slice(b"\n\n");
        }
        let topics = self.0.topics.borrow();
        for sub in &topics[*topic] {
            sub.send(&frame, self.0.max_pending);
        }
    }

    fn subscribers(&self) -> usize {
        self.0.count.get()
    }

    fn extra(&self) -> Value {
        json!({ "topics": self.0.topics.borrow().len() })
    }
}

/// Reads a request head (and anything after it) from a new connection.
async fn read_head(stream: &mut TcpStream) -> io::Result<(wire::RequestHead, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(end) = wire::head_end(&buf) {
            let head = wire::parse_request_head(&buf[..end])
                .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, "bad request"))?;
            return Ok((head, buf.split_off(end)));
        }
        if buf.len() > 16 * 1024 || stream.read_buf(&mut buf).await? == 0 {
            return Err(io::Error::new(ErrorKind::UnexpectedEof, "no request"));
        }
    }
}

async fn connection(floor: Floor, ctl: Arc<Control>, mut stream: TcpStream) {
    let Ok((head, mut body)) = read_head(&mut stream).await else {
        return;
    };
    if head.method == "GET" && head.path == "/events" {
        let topic = floor.topic_id(query_param(&head.query, "topic").unwrap_or("all"));
        // The response head goes first through `pending`, so no frame can
        // overtake it; registering and queueing happen with no await between.
        let sub = Rc::new(Sub {
            stream,
            pending: RefCell::new(EVENTS_HEAD.to_vec()),
            notify: Notify::new(),
            alive: Cell::new(true),
            topic,
            index: Cell::new(0),
        });
        floor.add(&sub);
        subscriber(&sub).await;
        sub.alive.set(false);
        floor.remove(&sub);
        return;
    }
    while body.len() < head.content_length {
        match stream.read_buf(&mut body).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    let (status, text) = match control::handle(
        &floor,
        &ctl,
        &head.method,
        &head.path,
        &head.query,
        &body[..head.content_length],
    ) {
        Action::Reply(status, text) => (status, text),
        Action::Start(spec) => {
            tokio::task::spawn_local(control::run_schedule(floor.clone(), ctl.clone(), spec));
            (200, "started".to_owned())
        }
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Waits for the peer to close, flushing `pending` whenever it has bytes.
async fn subscriber(sub: &Sub) {
    loop {
        if !sub.alive.get() {
            return;
        }
        if sub.pending.borrow().is_empty() {
            tokio::select! {
                () = sub.notify.notified() => {}
                r = sub.stream.readable() => {
                    if r.is_err() || sub.peer_closed() {
                        return;
                    }
                }
            }
        } else {
            tokio::select! {
                r = sub.stream.writable() => {
                    if r.is_err() || !sub.flush() {
                        return;
                    }
                }
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
    let max_pending = args.get("max-pending-bytes", 1 << 20);
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
