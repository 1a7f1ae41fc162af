//! `loadgen`: N concurrent SSE subscribers over HTTP/1.1 against one server
//! on loopback, driving that server's publish schedule and reporting
//! deliveries/s, latency percentiles, loss, duplicates, reordering, and the
//! server's RSS and CPU time from `/proc`.
//!
//! `--mode soak` runs the schedule with churning subscribers beside the
//! steady ones (every other reconnection resumes with `Last-Event-ID` and
//! must continue exactly) and samples the server's RSS and descriptors to
//! judge whether they stay flat; `--mode peers` runs the schedule twice
//! with the same subscribers, the second time beside slow-loris heads and
//! never-reading subscribers, to compare the normal subscribers' latency
//! and the server's memory with and without them.
//!
//! `--publish-http ADDR` publishes over HTTP instead of running the
//! server's schedule: `--in-flight K` keep-alive connections, each with one
//! publish request at a time, as fast as acknowledged (`--mode max`, at
//! most `--window` updates ahead of the subscriber furthest behind) or at
//! `--rate` publishes per second in all (`--mode rate`), round-robin over
//! the topics (`--targeted`: one per subscriber). It records publishes/s,
//! acknowledgement latency, server CPU per publish, publish-to-delivery
//! latency and fairness ([`ssehub_bench::fairness`]).
//!
//! One thread (a current-thread tokio runtime), a hand-rolled HTTP/1.1
//! client per connection (chunked and unframed bodies), one read buffer per
//! connection and one clock read per `read(2)`, so the load generator is not
//! the bottleneck before the server is. It raises its open-file limit,
//! spreads source addresses over 127.0.0.0/8 when one address's ephemeral
//! ports would not do, refuses any non-loopback target, and stops by itself.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::Value;
use ssehub_bench::args::Args;
use ssehub_bench::clock::{self, mono_ns};
use ssehub_bench::fairness::{self, Overtakes};
use ssehub_bench::payload;
use ssehub_bench::procfs::{self, ProcSample};
use ssehub_bench::publish::{self, Conn, Style, parse_nchan_status};
use ssehub_bench::record::{NodeStat, Phase, Record};
use ssehub_bench::redis_info::RedisInfo;
use ssehub_bench::soak::{Sample, fd_tolerance, rss_tolerance_kib, trend};
use ssehub_bench::sse::Scanner;
use ssehub_bench::wire::{self, Chunked, Framing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

const USAGE: &str = "\
loadgen --target 127.0.0.1:PORT[,ADDR...] --clients N --mode idle|rate|max|churn|soak|peers [options]

  --target A,B,...        several nodes of one hub: client i connects to node i % n,
                          the schedule runs on the first; latency is also reported
                          for the first node's subscribers and the others' apart
  --control ADDR[,...]    where /run, /ack and /stats go, one per target (default:
                          the targets); /run and /ack only go to the first
  --redis ADDR            the Redis the nodes share: its INFO (commandstats, cpu,
                          stats) is sampled around the schedule, per publish
  --label NAME            server label for the record (ssehub, baseline, floor)
  --scenario NAME         scenario label for the record
  --out FILE              append the record as a JSON line
  --topic T               topic every client subscribes to (default all)
  --path P                request target before the topic (default /events?topic=;
                          the Mercure hub: /.well-known/mercure?match=)
  --targeted              client i subscribes to its own topic c<i>
  --rate R                rounds per second (mode rate, default 10)
  --duration S            seconds of publishing or churn (default 10)
  --size B                payload bytes (default 100)
  --window W --burst B    flow control for mode max (default 128, 64)
  --stalled K             K extra clients that never read (isolation)
  --idle-wait S           settle time before the idle memory reading (default 3)
  --connect-concurrency C connections in progress at once (default 256)
  --churn-concurrency C   concurrent connect/disconnect loops (default 64)
  --per-address N         connections per source address before spreading (default 20000)
  --read-buf B            read buffer per connection (default 8192)
  --note TEXT             free text for the record
  soak (mode soak: the schedule at --rate for --duration, plus churn):
  --churn-concurrency C   churning subscribers at once (default 64); each holds a
                          stream for up to --hold-ms (default 2000), then leaves;
                          every other one resumes with Last-Event-ID
  --sample-every S        server RSS and descriptor sampling period (default 5)
  --warmup S              samples left out of the trends (default duration/6, <= 300)
  --fd-tolerance N        descriptor growth still flat (default churn concurrency + 16)
  --rss-tolerance-kib K   RSS growth still flat (default 10 % of the first third, >= 8 MiB)
  slow peers (mode peers: the schedule without, then with them):
  --slowloris K           connections whose request head never ends: half send a
                          byte every --drip-ms (default 1000), half half a head and
                          nothing more; each reopened when the server closes it
  --stalled K             subscribers that never read (opened between the schedules)
  --time-limit S          hard stop (default: duration + 300)
  publishing over HTTP (modes rate and max), instead of the server's schedule:
  --publish-http ADDR     where the publishes go (the load generator publishes)
  --publish-style S       plain: POST {publish-path}{topic}, the payload as the body
                          (default); mercure: POST /.well-known/mercure, form topic and
                          data, Authorization: Bearer (HS256 token minted here)
  --publish-path P        plain: request target before the topic (default /publish?topic=)
  --in-flight K           connections, one request in flight on each (default 1)
  --rate R                mode rate: publishes per second, all topics together
  --window W              mode max: updates a topic may run ahead of the subscriber
                          furthest behind on it (highest update received; default 128, 0: off)
  --jwt-key KEY           mercure: the hub's HS256 key (default: $BENCH_JWT_KEY)
  --jwt-issuer ISS        mercure: the token's iss (default https://bench.invalid)
  servers without the control interface (nchan):
  --pid P                 the process whose RSS and CPU are read
  --nchan-status          the control address serves nchan_stub_status at /nchan_status
                          (subscriber count; the figures go into server_extra)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Idle,
    Rate,
    Max,
    Churn,
    Soak,
    Peers,
}

struct Opts {
    /// Where subscribers connect: one address per node.
    targets: Vec<SocketAddr>,
    /// Each node's control address (`/stats`; `/run` and `/ack` go to the
    /// first only).
    controls: Vec<SocketAddr>,
    /// The Redis shared by the nodes, sampled around the schedule.
    redis: Option<SocketAddr>,
    clients: usize,
    mode: Mode,
    label: String,
    scenario: String,
    out: Option<String>,
    topic: String,
    /// The request target up to the topic: `GET {path}{topic}`.
    path: String,
    targeted: bool,
    rate: f64,
    duration: f64,
    size: usize,
    window: u64,
    burst: u64,
    stalled: usize,
    idle_wait: f64,
    connect_concurrency: usize,
    churn_concurrency: usize,
    addresses: usize,
    read_buf: usize,
    note: String,
    hold_ms: u64,
    sample_every: f64,
    warmup: f64,
    fd_tolerance: Option<f64>,
    rss_tolerance_kib: Option<f64>,
    slowloris: usize,
    drip_ms: u64,
    /// Publishing over HTTP, if the load generator publishes.
    publish: Option<HttpPublish>,
    /// The process to measure, when the server has no `/stats`.
    pid: Option<u32>,
    /// The control address is nchan's, with `nchan_stub_status`.
    nchan_status: bool,
}

/// Where and how the load generator publishes over HTTP.
struct HttpPublish {
    addr: SocketAddr,
    style: Style,
    in_flight: usize,
}

/// One subscriber's view of the run.
#[derive(Default)]
struct ClientStat {
    connected: Cell<bool>,
    ended: Cell<bool>,
    /// Every sequence number below this has arrived.
    next: Cell<u64>,
    unique: Cell<u64>,
    dup: Cell<u64>,
    ooo: Cell<u64>,
    max_plus1: Cell<u64>,
    unparsed: Cell<u64>,
    seen: RefCell<Vec<u64>>,
    error: RefCell<Option<String>>,
}

impl ClientStat {
    /// Notes update `seq`; returns how many later updates came before it
    /// ([`fairness::overtaken`]), or `None` for a duplicate.
    fn record(&self, seq: u64) -> Option<u64> {
        let mut seen = self.seen.borrow_mut();
        let word = (seq / 64) as usize;
        if seen.len() <= word {
            seen.resize(word + 1 + word / 2, 0);
        }
        let bit = 1u64 << (seq % 64);
        if seen[word] & bit != 0 {
            self.dup.set(self.dup.get() + 1);
            return None;
        }
        let overtaken = fairness::overtaken(&seen, self.next.get(), self.unique.get(), seq);
        seen[word] |= bit;
        self.unique.set(self.unique.get() + 1);
        if seq + 1 < self.max_plus1.get() {
            self.ooo.set(self.ooo.get() + 1);
        } else {
            self.max_plus1.set(seq + 1);
        }
        let mut n = self.next.get();
        while let Some(w) = seen.get((n / 64) as usize) {
            if w >> (n % 64) & 1 == 0 {
                break;
            }
            n += 1;
        }
        self.next.set(n);
        Some(overtaken)
    }

    /// Connected and not ended since: still receiving.
    fn live(&self) -> bool {
        self.connected.get() && !self.ended.get()
    }

    fn reset(&self) {
        self.next.set(0);
        self.unique.set(0);
        self.dup.set(0);
        self.ooo.set(0);
        self.max_plus1.set(0);
        self.unparsed.set(0);
        self.seen.borrow_mut().clear();
    }
}

struct Shared {
    running: Cell<bool>,
    hist: RefCell<Histogram<u64>>,
    /// The same latencies, per node.
    node_hist: Vec<RefCell<Histogram<u64>>>,
    last_ns: Cell<u64>,
    /// HTTP publishing: each update's worst "overtaken by".
    overtakes: RefCell<Overtakes>,
}

impl Shared {
    /// Zeroes the subscribers' counts and the latency histograms before a
    /// schedule, so that a second schedule on the same subscribers (slow
    /// peers) counts only its own updates.
    fn reset(&self, clients: &[Rc<ClientStat>]) {
        for s in clients {
            s.reset();
        }
        self.hist.borrow_mut().reset();
        for h in &self.node_hist {
            h.borrow_mut().reset();
        }
    }
}

impl Opts {
    /// The node client `i` connects to.
    fn node_of(&self, i: usize) -> usize {
        i % self.targets.len()
    }

    /// Topics the HTTP publishers go round: one per subscriber when
    /// targeted; 1 otherwise (and for the server's own schedule, whose
    /// rounds publish one update to every topic).
    fn stride(&self) -> u64 {
        if self.publish.is_some() && self.targeted {
            self.clients.max(1) as u64
        } else {
            1
        }
    }

    /// The round-robin slot of client `i`'s topic (see [`Opts::stride`]).
    fn topic_slot(&self, i: usize) -> u64 {
        if self.stride() > 1 { i as u64 } else { 0 }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

fn source_ip(opts: &Opts, i: usize) -> Option<IpAddr> {
    (opts.addresses > 1).then(|| spread_ip(i % opts.addresses))
}

/// Source address number `k` in 127.0.0.0/8 (127.0.0.1, 127.0.0.2, …).
fn spread_ip(k: usize) -> IpAddr {
    let k = k as u32 + 1;
    IpAddr::V4(Ipv4Addr::new(127, (k >> 16) as u8, (k >> 8) as u8, k as u8))
}

async fn connect(target: SocketAddr, source: Option<IpAddr>, stall: bool) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if stall {
        // The smallest receive buffer, so the server's writes back up soon.
        socket.set_recv_buffer_size(1)?;
    }
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn events_request(opts: &Opts, i: usize) -> String {
    let host = opts.targets[opts.node_of(i)];
    let topic = if opts.targeted {
        format!("c{i}")
    } else {
        opts.topic.clone()
    };
    format!(
        "GET {}{topic} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
        opts.path, host
    )
}

/// Connects, reads the response head; returns the stream, the head and the
/// buffer holding the first body bytes at `start..filled`.
async fn open_stream(
    target: SocketAddr,
    request: &str,
    source: Option<IpAddr>,
    stall: bool,
    buf: &mut [u8],
) -> Result<(TcpStream, wire::ResponseHead, usize, usize), String> {
    let mut stream = connect(target, source, stall)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            return Err("response head too large".into());
        }
        let n = stream
            .read(&mut buf[filled..])
            .await
            .map_err(|e| format!("read head: {e}"))?;
        if n == 0 {
            return Err("closed before the response head".into());
        }
        filled += n;
        if let Some(end) = wire::head_end(&buf[..filled]) {
            let head = wire::parse_response_head(&buf[..end]).ok_or("bad response head")?;
            if head.status != 200 {
                return Err(format!("status {}", head.status));
            }
            return Ok((stream, head, end, filled));
        }
    }
}

async fn subscriber(
    opts: Rc<Opts>,
    shared: Rc<Shared>,
    stat: Rc<ClientStat>,
    i: usize,
    permit: tokio::sync::OwnedSemaphorePermit,
    stall: bool,
) {
    let result = async {
        let mut buf = vec![0u8; opts.read_buf];
        let request = events_request(&opts, i);
        let node = opts.node_of(i);
        let (mut stream, head, start, filled) = open_stream(
            opts.targets[node],
            &request,
            source_ip(&opts, i),
            stall,
            &mut buf,
        )
        .await?;
        stat.connected.set(true);
        drop(permit);
        if stall {
            // Hold the connection and never read from it.
            std::future::pending::<()>().await;
        }
        let mut scanner = Scanner::default();
        let mut chunked = Chunked::default();
        let mut left = match head.framing {
            Framing::Length(n) => n,
            _ => u64::MAX,
        };
        let mut now = mono_ns();
        let mut data = &buf[start..filled];
        // HTTP publishing round-robin: this topic's updates are every
        // `stride`-th, counted here as 0, 1, 2, …
        let (stride, slot) = (opts.stride(), opts.topic_slot(i));
        let fair = opts.publish.is_some();
        loop {
            let mut on_event = |ev: Option<(u64, u64)>| {
                if !shared.running.get() {
                    return;
                }
                match ev {
                    Some((seq, ts)) if seq % stride == slot => {
                        let us = (now.saturating_sub(ts) / 1000).max(1);
                        shared.hist.borrow_mut().saturating_record(us);
                        shared.node_hist[node].borrow_mut().saturating_record(us);
                        let overtaken = stat.record(seq / stride);
                        if let (true, Some(n)) = (fair, overtaken) {
                            shared.overtakes.borrow_mut().note(seq, n);
                        }
                        shared.last_ns.set(now);
                    }
                    // Not a payload, or another topic's.
                    _ => stat.unparsed.set(stat.unparsed.get() + 1),
                }
            };
            let finished = match head.framing {
                Framing::Chunked => chunked
                    .feed(data, |b| scanner.feed(b, &mut on_event))
                    .map_err(|_| "malformed chunked body".to_owned())?,
                Framing::Length(_) => {
                    let n = (data.len() as u64).min(left) as usize;
                    scanner.feed(&data[..n], &mut on_event);
                    left -= n as u64;
                    left == 0
                }
                Framing::UntilClose => {
                    scanner.feed(data, &mut on_event);
                    false
                }
            };
            if finished {
                return Ok(());
            }
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Ok(());
            }
            now = mono_ns();
            data = &buf[..n];
        }
    }
    .await;
    stat.ended.set(true);
    if let Err(e) = result {
        *stat.error.borrow_mut() = Some(e);
    }
}

/// A control request to the first node (where the schedule runs).
async fn control(opts: &Opts, method: &str, target: &str) -> Result<Value, String> {
    control_at(opts.controls[0], method, target).await
}

async fn control_at(addr: SocketAddr, method: &str, target: &str) -> Result<Value, String> {
    let (status, body) = wire::request(addr, method, target, b"", Duration::from_secs(10))
        .await
        .map_err(|e| format!("{method} {target}: {e}"))?;
    if status != 200 {
        return Err(format!(
            "{method} {target}: status {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn server_stats(opts: &Opts) -> Result<Value, String> {
    stats_at(opts, opts.controls[0]).await
}

/// A node's `/stats` (`pid`, `subscribers`, `extra`, …); for nchan, the
/// same built from its `nchan_stub_status` and `--pid`.
async fn stats_at(opts: &Opts, addr: SocketAddr) -> Result<Value, String> {
    let mut stats = if opts.nchan_status {
        let (status, body) =
            wire::request(addr, "GET", "/nchan_status", b"", Duration::from_secs(10))
                .await
                .map_err(|e| format!("GET /nchan_status: {e}"))?;
        if status != 200 {
            return Err(format!("GET /nchan_status: status {status}"));
        }
        let extra = parse_nchan_status(&String::from_utf8_lossy(&body));
        serde_json::json!({ "subscribers": extra["subscribers"].clone(), "extra": extra })
    } else {
        control_at(addr, "GET", "/stats").await?
    };
    if let Some(pid) = opts.pid {
        stats["pid"] = pid.into();
    }
    Ok(stats)
}

/// Every node's process, sampled at one moment.
fn sample_all(pids: &[u32]) -> Vec<ProcSample> {
    pids.iter().map(|&pid| sample(pid)).collect()
}

fn cpu_ns(samples: &[ProcSample]) -> u64 {
    samples.iter().map(|s| s.cpu_ns).sum()
}

fn rss_kib(samples: &[ProcSample]) -> u64 {
    samples.iter().map(|s| s.rss_kib).sum()
}

async fn redis_sample(
    conn: &mut Option<RedisInfo>,
) -> Result<Option<ssehub_bench::redis_info::RedisSample>, String> {
    match conn {
        None => Ok(None),
        Some(c) => c
            .sample()
            .await
            .map(Some)
            .map_err(|e| format!("Redis INFO: {e}")),
    }
}

fn sample(pid: u32) -> ProcSample {
    procfs::sample(pid).unwrap_or_else(|e| {
        eprintln!("loadgen: cannot read /proc/{pid}: {e} (did the server die?)");
        std::process::exit(1);
    })
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn sleep_s(s: f64) {
    tokio::time::sleep(Duration::from_secs_f64(s)).await;
}

fn f(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

async fn wait_subscribers(opts: &Opts, control: SocketAddr, want: u64, timeout_s: f64) -> u64 {
    let deadline = mono_ns() + (timeout_s * 1e9) as u64;
    loop {
        let n = stats_at(opts, control)
            .await
            .ok()
            .and_then(|s| s["subscribers"].as_u64())
            .unwrap_or(0);
        if n == want || mono_ns() > deadline {
            return n;
        }
        sleep_s(0.1).await;
    }
}

async fn run(opts: Rc<Opts>) -> Result<Record, String> {
    let mut rec = Record {
        scenario: opts.scenario.clone(),
        server: opts.label.clone(),
        clients: opts.clients,
        stalled: opts.stalled,
        mode: format!("{:?}", opts.mode).to_lowercase(),
        note: opts.note.clone(),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        load_before: procfs::loadavg(),
        ..Record::default()
    };
    // The servers: ready, and their pids.
    let deadline = mono_ns() + 20_000_000_000;
    let mut pids = Vec::with_capacity(opts.controls.len());
    for &addr in &opts.controls {
        let stats = loop {
            match stats_at(&opts, addr).await {
                Ok(s) => break s,
                Err(e) if mono_ns() > deadline => {
                    return Err(format!("server at {addr} not ready: {e}"));
                }
                Err(_) => sleep_s(0.1).await,
            }
        };
        pids.push(stats["pid"].as_u64().ok_or("no pid in /stats")? as u32);
    }
    let before = sample_all(&pids);
    rec.rss_before_kib = rss_kib(&before);
    rec.fds_before = procfs::open_fds(pids[0]).unwrap_or(0);
    rec.nodes = pids.len();
    rec.node_stats = (0..pids.len())
        .map(|k| NodeStat {
            target: opts.targets[k].to_string(),
            pid: pids[k],
            rss_before_kib: before[k].rss_kib,
            ..NodeStat::default()
        })
        .collect();

    // Subscribers.
    let shared = Rc::new(Shared {
        running: Cell::new(false),
        hist: RefCell::new(histogram()),
        node_hist: (0..pids.len()).map(|_| RefCell::new(histogram())).collect(),
        last_ns: Cell::new(0),
        overtakes: RefCell::new(Overtakes::default()),
    });
    let stats_all: Vec<Rc<ClientStat>> = (0..opts.clients + opts.stalled)
        .map(|_| Rc::new(ClientStat::default()))
        .collect();
    let sem = Arc::new(Semaphore::new(opts.connect_concurrency));
    let t0 = mono_ns();
    // Slow peers come between the two schedules, not now.
    let initial = if opts.mode == Mode::Peers {
        opts.clients
    } else {
        stats_all.len()
    };
    for (i, stat) in stats_all[..initial].iter().enumerate() {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let stall = i >= opts.clients;
        tokio::task::spawn_local(subscriber(
            opts.clone(),
            shared.clone(),
            stat.clone(),
            i,
            permit,
            stall,
        ));
    }
    let connect_deadline = mono_ns() + 180_000_000_000;
    loop {
        let pending = stats_all[..initial]
            .iter()
            .filter(|s| !s.connected.get() && !s.ended.get())
            .count();
        if pending == 0 || mono_ns() > connect_deadline {
            break;
        }
        sleep_s(0.05).await;
    }
    rec.connect_s = (mono_ns() - t0) as f64 / 1e9;
    let clients = &stats_all[..opts.clients];
    rec.connected = clients.iter().filter(|s| s.connected.get()).count();
    rec.connect_failures = opts.clients - rec.connected;
    if let Some(err) = stats_all.iter().find_map(|s| s.error.borrow().clone()) {
        eprintln!(
            "loadgen: {} failed connections, first error: {err}",
            rec.connect_failures
        );
    }
    let mut total = 0;
    for (k, &addr) in opts.controls.iter().enumerate() {
        let on_node = stats_all
            .iter()
            .enumerate()
            .filter(|&(i, s)| opts.node_of(i) == k && s.connected.get())
            .count() as u64;
        rec.node_stats[k].clients = on_node as usize;
        total += on_node;
        let registered = wait_subscribers(&opts, addr, on_node, 30.0).await;
        if registered != on_node {
            eprintln!("loadgen: node {addr} reports {registered} subscribers, {on_node} connected");
        }
    }
    sleep_s(opts.idle_wait).await;
    let idle = sample_all(&pids);
    rec.rss_idle_kib = rss_kib(&idle);
    for (n, s) in rec.node_stats.iter_mut().zip(&idle) {
        n.rss_idle_kib = s.rss_kib;
    }
    rec.idle_bytes_per_conn = (rec.rss_idle_kib as f64 - rec.rss_before_kib as f64) * 1024.0
        / (rec.connected + initial - opts.clients).max(1) as f64;

    match opts.mode {
        Mode::Idle => {}
        Mode::Rate | Mode::Max => match &opts.publish {
            Some(publish) => {
                http_publish(&opts, publish, &mut rec, &pids, &shared, clients).await?;
            }
            None => schedule(&opts, &mut rec, &pids, &shared, clients).await?,
        },
        Mode::Churn => churn(&opts, &mut rec, pids[0], total).await?,
        Mode::Soak => soak(&opts, &mut rec, &pids, &shared, clients, total).await?,
        Mode::Peers => peers(&opts, &mut rec, &pids, &shared, &stats_all, sem).await?,
    }
    let after = sample_all(&pids);
    rec.rss_after_kib = rss_kib(&after);
    for (n, s) in rec.node_stats.iter_mut().zip(&after) {
        n.rss_after_kib = s.rss_kib;
    }
    rec.load_after = procfs::loadavg();
    if let Ok(s) = server_stats(&opts).await {
        rec.server_extra = s["extra"].clone();
    }
    Ok(rec)
}

/// Fills the delivery figures of one schedule, whoever published:
/// disconnections, deliveries, lost, duplicated, out-of-order and unparsed
/// events, run time, deliveries/s, CPU, the per-node figures and the latency
/// quantiles. `due(i)` is how many updates subscriber `i` should have
/// received (lost and expected count only the subscribers still connected);
/// the run lasts from `started_ns` (mono) to the last delivery; `cpu` holds
/// the servers sampled before and after it.
fn fill_deliveries(
    rec: &mut Record,
    opts: &Opts,
    shared: &Shared,
    clients: &[Rc<ClientStat>],
    due: impl Fn(usize) -> u64,
    started_ns: u64,
    (cpu0, cpu1): (&[ProcSample], &[ProcSample]),
) {
    rec.disconnected = clients
        .iter()
        .filter(|s| s.connected.get() && s.ended.get())
        .count() as u64;
    rec.deliveries = clients.iter().map(|s| s.unique.get()).sum();
    rec.expected = clients
        .iter()
        .enumerate()
        .filter(|(_, s)| s.live())
        .map(|(i, _)| due(i))
        .sum();
    rec.lost = clients
        .iter()
        .enumerate()
        .filter(|(_, s)| s.live())
        .map(|(i, s)| due(i).saturating_sub(s.unique.get()))
        .sum();
    rec.duplicated = clients.iter().map(|s| s.dup.get()).sum();
    rec.out_of_order = clients.iter().map(|s| s.ooo.get()).sum();
    rec.unparsed = clients.iter().map(|s| s.unparsed.get()).sum();
    rec.run_s = shared.last_ns.get().saturating_sub(started_ns) as f64 / 1e9;
    rec.deliveries_per_s = rec.deliveries as f64 / rec.run_s.max(1e-9);
    rec.cpu_s = (cpu_ns(cpu1) - cpu_ns(cpu0)) as f64 / 1e9;
    rec.cpu_us_per_delivery = rec.cpu_s * 1e6 / rec.deliveries.max(1) as f64;
    for (k, n) in rec.node_stats.iter_mut().enumerate() {
        n.cpu_s = (cpu1[k].cpu_ns - cpu0[k].cpu_ns) as f64 / 1e9;
        n.deliveries = clients
            .iter()
            .enumerate()
            .filter(|&(i, _)| opts.node_of(i) == k)
            .map(|(_, s)| s.unique.get())
            .sum();
        let h = shared.node_hist[k].borrow();
        n.lat_p50_ms = ms(&h, 0.5);
        n.lat_p99_ms = ms(&h, 0.99);
        n.lat_max_ms = h.max() as f64 / 1000.0;
    }
    let h = shared.hist.borrow();
    rec.lat_p50_ms = ms(&h, 0.5);
    rec.lat_p90_ms = ms(&h, 0.9);
    rec.lat_p99_ms = ms(&h, 0.99);
    rec.lat_p999_ms = ms(&h, 0.999);
    rec.lat_max_ms = h.max() as f64 / 1000.0;
}

async fn schedule(
    opts: &Rc<Opts>,
    rec: &mut Record,
    pids: &[u32],
    shared: &Rc<Shared>,
    clients: &[Rc<ClientStat>],
) -> Result<(), String> {
    shared.reset(clients);
    let mut redis = match opts.redis {
        Some(addr) => Some(
            RedisInfo::connect(addr)
                .await
                .map_err(|e| format!("Redis at {addr}: {e}"))?,
        ),
        None => None,
    };
    shared.running.set(true);
    let topics = if opts.targeted {
        format!("targeted={}", opts.clients)
    } else {
        format!("topic={}", opts.topic)
    };
    let mode = if opts.mode == Mode::Max {
        "max"
    } else {
        "rate"
    };
    let query = format!(
        "/run?mode={mode}&rate={}&duration_ms={}&size={}&{topics}&window={}&burst={}",
        opts.rate,
        (opts.duration * 1000.0) as u64,
        opts.size,
        opts.window,
        opts.burst
    );
    let cpu0 = sample_all(pids);
    let redis0 = redis_sample(&mut redis).await?;
    control(opts, "POST", &query).await?;
    let stop = Rc::new(Cell::new(false));
    if opts.mode == Mode::Max {
        // Flow control: tell the server how far the slowest live client got.
        let (opts, stop) = (opts.clone(), stop.clone());
        let clients: Vec<Rc<ClientStat>> = clients.to_vec();
        tokio::task::spawn_local(async move {
            let mut acked = 0;
            while !stop.get() {
                sleep_s(0.005).await;
                let min = clients
                    .iter()
                    .filter(|s| s.live())
                    .map(|s| s.next.get())
                    .min()
                    .unwrap_or(0);
                if min > acked {
                    acked = min;
                    let _ = control(&opts, "POST", &format!("/ack?seq={min}")).await;
                }
            }
        });
    }
    let deadline = mono_ns() + ((opts.duration + 120.0) * 1e9) as u64;
    let stats = loop {
        sleep_s(0.25).await;
        let s = server_stats(opts).await?;
        if s["done"].as_bool() == Some(true) {
            break s;
        }
        if mono_ns() > deadline {
            return Err("the server's schedule never finished".into());
        }
    };
    let published = stats["published"].as_u64().unwrap_or(0);
    // Let the last events arrive (the server already waited 1.5 s).
    let drain_deadline = mono_ns() + 10_000_000_000;
    while clients.iter().any(|s| s.live() && s.next.get() < published) && mono_ns() < drain_deadline
    {
        sleep_s(0.05).await;
    }
    stop.set(true);
    shared.running.set(false);
    let cpu1 = sample_all(pids);
    let redis1 = redis_sample(&mut redis).await?;
    rec.published = published;
    rec.publishes = published
        * if opts.targeted {
            opts.clients as u64
        } else {
            1
        };
    let started_ns = stats["started_ns"].as_u64().unwrap_or(0);
    let cpu = (&cpu0[..], &cpu1[..]);
    fill_deliveries(rec, opts, shared, clients, |_| published, started_ns, cpu);
    if shared.node_hist.len() > 1 {
        let same = shared.node_hist[0].borrow();
        let mut other = histogram();
        for h in &shared.node_hist[1..] {
            other.add(&*h.borrow()).map_err(|e| e.to_string())?;
        }
        rec.lat_same_p50_ms = ms(&same, 0.5);
        rec.lat_same_p99_ms = ms(&same, 0.99);
        rec.lat_other_p50_ms = ms(&other, 0.5);
        rec.lat_other_p99_ms = ms(&other, 0.99);
        rec.lat_other_p999_ms = ms(&other, 0.999);
    }
    if let (Some(r0), Some(r1)) = (redis0, redis1) {
        let d = r1.since(&r0);
        let per = rec.publishes.max(1) as f64;
        rec.redis_cpu_us_per_publish = d.cpu_s * 1e6 / per;
        rec.redis_calls_per_publish = d.total_calls() as f64 / per;
        rec.redis_reads_per_publish = d.reads as f64 / per;
        rec.redis = Some(d);
    }
    let sl = &stats["server_latency"];
    rec.server_lat_p50_ms = f(sl, "p50_ms");
    rec.server_lat_p99_ms = f(sl, "p99_ms");
    rec.server_lat_max_ms = f(sl, "max_ms");
    rec.slip_max_ms = f(&stats, "slip_max_ms");
    Ok(())
}

/// The HTTP publishers' shared state.
struct PubState {
    /// The next update's sequence number (send order, all topics).
    next: Cell<u64>,
    acked: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
    /// Acknowledgement latency, microseconds.
    ack: RefCell<Histogram<u64>>,
    last_ack_ns: Cell<u64>,
    /// `--mode max`: updates with a round-robin ordinal below this may go.
    allowed: Cell<u64>,
    wake: tokio::sync::Notify,
    slip_max_ns: Cell<u64>,
    connects: Cell<u64>,
}

/// One HTTP publisher: one keep-alive connection, one request at a time,
/// taking the next update (and its topic, round-robin) each time, until
/// the publishing time is over.
async fn http_publisher(
    opts: Rc<Opts>,
    st: Rc<PubState>,
    topics: Rc<Vec<String>>,
    start: u64,
    end: u64,
) {
    let Some(publish) = &opts.publish else { return };
    let host = publish.addr.to_string();
    let mut conn = Conn::new(publish.addr);
    let stride = topics.len().max(1) as u64;
    let period = 1e9 / opts.rate;
    clock::sleep_until_ns(start).await;
    loop {
        let k = st.next.get();
        // The payload's time: when the update was due (fixed rate, so a
        // publisher running late shows in the latency) or sent (max).
        let ts = if opts.mode == Mode::Rate {
            let due = start + (k as f64 * period) as u64;
            if due >= end {
                break;
            }
            st.next.set(k + 1);
            clock::sleep_until_ns_precise(due).await;
            st.slip_max_ns
                .set(st.slip_max_ns.get().max(mono_ns().saturating_sub(due)));
            due
        } else {
            if mono_ns() >= end {
                break;
            }
            if k / stride >= st.allowed.get() {
                // Too far ahead of a subscriber: wait for it (or 20 ms).
                let _ = tokio::time::timeout(Duration::from_millis(20), st.wake.notified()).await;
                continue;
            }
            st.next.set(k + 1);
            mono_ns()
        };
        let topic = &topics[(k % stride) as usize];
        let request = publish::build_request(
            &publish.style,
            &host,
            topic,
            &payload::make(k, ts, opts.size),
        );
        let result = conn.send(&request).await;
        let now = mono_ns();
        match result {
            Ok(_) => {
                st.acked.set(st.acked.get() + 1);
                st.last_ack_ns.set(now);
                st.ack
                    .borrow_mut()
                    .saturating_record((now.saturating_sub(ts) / 1000).max(1));
            }
            Err(e) => {
                st.errors.set(st.errors.get() + 1);
                st.first_error.borrow_mut().get_or_insert(e.to_string());
                // A server that refuses is not hammered.
                sleep_s(0.001).await;
            }
        }
    }
    st.connects.set(st.connects.get() + conn.connects);
}

/// Publishing over HTTP for `--duration` (the load generator publishes;
/// the server runs no schedule), then the same delivery figures as
/// [`schedule`], plus publishes/s, acknowledgement latency, CPU per
/// publish and fairness.
async fn http_publish(
    opts: &Rc<Opts>,
    publish: &HttpPublish,
    rec: &mut Record,
    pids: &[u32],
    shared: &Rc<Shared>,
    clients: &[Rc<ClientStat>],
) -> Result<(), String> {
    shared.reset(clients);
    shared.overtakes.borrow_mut().clear();
    let stride = opts.stride();
    let topics: Rc<Vec<String>> = Rc::new(if stride > 1 {
        (0..opts.clients).map(|i| format!("c{i}")).collect()
    } else {
        vec![opts.topic.clone()]
    });
    let st = Rc::new(PubState {
        next: Cell::new(0),
        acked: Cell::new(0),
        errors: Cell::new(0),
        first_error: RefCell::new(None),
        ack: RefCell::new(histogram()),
        last_ack_ns: Cell::new(0),
        allowed: Cell::new(if opts.window == 0 {
            u64::MAX
        } else {
            opts.window
        }),
        wake: tokio::sync::Notify::new(),
        slip_max_ns: Cell::new(0),
        connects: Cell::new(0),
    });
    shared.running.set(true);
    let cpu0 = sample_all(pids);
    let start = mono_ns() + 50_000_000;
    let end = start + (opts.duration * 1e9) as u64;
    let stop = Rc::new(Cell::new(false));
    if opts.mode == Mode::Max && opts.window > 0 {
        // Flow control, every millisecond: no topic more than `window`
        // updates ahead of the highest update its furthest-behind
        // subscriber has received. The highest, not the first missing:
        // an update the server holds back must not stop the others (the
        // fairness figure would be capped by the window).
        let (st, stop, clients) = (st.clone(), stop.clone(), clients.to_vec());
        let window = opts.window;
        tokio::task::spawn_local(async move {
            while !stop.get() {
                let min = clients
                    .iter()
                    .filter(|s| s.live())
                    .map(|s| s.max_plus1.get())
                    .min()
                    .unwrap_or(0);
                if min + window > st.allowed.get() {
                    st.allowed.set(min + window);
                    st.wake.notify_waiters();
                }
                sleep_s(0.001).await;
            }
        });
    }
    let publishers: Vec<_> = (0..publish.in_flight)
        .map(|_| {
            tokio::task::spawn_local(http_publisher(
                opts.clone(),
                st.clone(),
                topics.clone(),
                start,
                end,
            ))
        })
        .collect();
    for p in publishers {
        p.await.map_err(|e| format!("publisher: {e}"))?;
    }
    stop.set(true);
    let sent = st.next.get();
    // Let the last updates arrive.
    let due = |i: usize| fairness::per_topic(sent, stride, opts.topic_slot(i));
    let drain_deadline = mono_ns() + 10_000_000_000;
    while clients
        .iter()
        .enumerate()
        .any(|(i, s)| s.live() && s.next.get() < due(i))
        && mono_ns() < drain_deadline
    {
        sleep_s(0.02).await;
    }
    shared.running.set(false);
    let cpu1 = sample_all(pids);
    let acked = st.acked.get();
    rec.publish_via = "http".into();
    rec.publish_in_flight = publish.in_flight;
    rec.publish_rate = if opts.mode == Mode::Rate {
        opts.rate
    } else {
        0.0
    };
    rec.publish_errors = st.errors.get();
    rec.publish_connects = st.connects.get();
    if let Some(e) = st.first_error.borrow().as_deref() {
        eprintln!("loadgen: {} publishes failed, first: {e}", st.errors.get());
        rec.note = format!(
            "{} publish errors (first: {e}); {}",
            st.errors.get(),
            rec.note
        );
    }
    rec.published = sent;
    rec.publishes = acked;
    rec.publishes_per_s =
        acked as f64 / (st.last_ack_ns.get().saturating_sub(start) as f64 / 1e9).max(1e-9);
    {
        let a = st.ack.borrow();
        rec.ack_p50_ms = ms(&a, 0.5);
        rec.ack_p99_ms = ms(&a, 0.99);
        rec.ack_max_ms = a.max() as f64 / 1000.0;
    }
    rec.slip_max_ms = st.slip_max_ns.get() as f64 / 1e6;
    let cpu = (&cpu0[..], &cpu1[..]);
    fill_deliveries(rec, opts, shared, clients, due, start, cpu);
    rec.cpu_us_per_publish = rec.cpu_s * 1e6 / acked.max(1) as f64;
    (rec.overtaken_max, rec.overtaken_p99) = shared.overtakes.borrow().summary(sent);
    Ok(())
}

async fn churn_once(opts: &Opts, source: IpAddr, buf: &mut [u8]) -> Result<(), String> {
    let request = format!(
        "GET {}churn HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        opts.path, opts.targets[0]
    );
    let (stream, ..) = open_stream(opts.targets[0], &request, Some(source), false, buf).await?;
    drop(stream);
    Ok(())
}

async fn churn(opts: &Rc<Opts>, rec: &mut Record, pid: u32, steady: u64) -> Result<(), String> {
    let before = sample(pid);
    let end = mono_ns() + (opts.duration * 1e9) as u64;
    let cycles = Rc::new(Cell::new(0u64));
    let failures = Rc::new(Cell::new(0u64));
    let hist = Rc::new(RefCell::new(histogram()));
    let peak = Rc::new(Cell::new(before.rss_kib));
    let running = Rc::new(Cell::new(opts.churn_concurrency));
    {
        let (peak, running) = (peak.clone(), running.clone());
        tokio::task::spawn_local(async move {
            while running.get() > 0 {
                if let Ok(s) = procfs::sample(pid) {
                    peak.set(peak.get().max(s.rss_kib));
                }
                sleep_s(0.2).await;
            }
        });
    }
    for c in 0..opts.churn_concurrency {
        let (opts, cycles, failures, hist, running) = (
            opts.clone(),
            cycles.clone(),
            failures.clone(),
            hist.clone(),
            running.clone(),
        );
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 4096];
            let mut k = c;
            while mono_ns() < end {
                // Source addresses 127.0.1.x: many, so TIME_WAIT never runs
                // one address out of ports.
                let source = spread_ip(256 + k % 250);
                k += opts.churn_concurrency;
                let t = mono_ns();
                match churn_once(&opts, source, &mut buf).await {
                    Ok(()) => {
                        cycles.set(cycles.get() + 1);
                        hist.borrow_mut()
                            .saturating_record(((mono_ns() - t) / 1000).max(1));
                    }
                    Err(_) => failures.set(failures.get() + 1),
                }
            }
            running.set(running.get() - 1);
        });
    }
    let t0 = mono_ns();
    while running.get() > 0 {
        sleep_s(0.05).await;
    }
    let elapsed = (mono_ns() - t0) as f64 / 1e9;
    let cpu1 = sample(pid).cpu_ns;
    rec.churn_cycles = cycles.get();
    rec.churn_per_s = cycles.get() as f64 / elapsed;
    rec.churn_p99_ms = ms(&hist.borrow(), 0.99);
    rec.cpu_s = (cpu1 - before.cpu_ns) as f64 / 1e9;
    rec.cpu_us_per_churn = rec.cpu_s * 1e6 / cycles.get().max(1) as f64;
    rec.churn_rss_peak_kib = peak.get();
    rec.churn_subscribers_after = wait_subscribers(opts, opts.controls[0], steady, 20.0).await;
    sleep_s(2.0).await;
    if failures.get() > 0 {
        rec.note = format!("{} churn failures; {}", failures.get(), rec.note);
    }
    Ok(())
}

/// The server's RSS and descriptors every `--sample-every` seconds until
/// `stop`, `t_s` counted from `t0` (mono ns).
fn spawn_sampler(
    pid: u32,
    every: f64,
    t0: u64,
    samples: Rc<RefCell<Vec<Sample>>>,
    stop: Rc<Cell<bool>>,
) {
    tokio::task::spawn_local(async move {
        while !stop.get() {
            if let (Ok(p), Ok(fds)) = (procfs::sample(pid), procfs::open_fds(pid)) {
                samples.borrow_mut().push(Sample {
                    t_s: mono_ns().saturating_sub(t0) as f64 / 1e9,
                    rss_kib: p.rss_kib,
                    fds,
                });
            }
            sleep_s(every).await;
        }
    });
}

/// What the churning subscribers of a soak saw.
#[derive(Default)]
struct ChurnStats {
    cycles: Cell<u64>,
    failures: Cell<u64>,
    resumes: Cell<u64>,
    events: Cell<u64>,
    gaps: Cell<u64>,
    dups: Cell<u64>,
    first_error: RefCell<Option<String>>,
}

/// Where a churning subscriber's last stream stopped: the id it would
/// resume from and the sequence number of that event.
type Resume = (String, u64);

/// One churning stream: subscribes (resuming from `resume` if given),
/// reads for `hold`, leaves; checks that its events follow each other
/// (and the resumed-from one) exactly. Returns where it stopped, if it
/// received anything.
async fn churn_stream(
    opts: &Opts,
    source: IpAddr,
    resume: Option<&Resume>,
    hold: Duration,
    buf: &mut [u8],
    st: &ChurnStats,
) -> Result<Option<Resume>, String> {
    let target = opts.targets[0];
    let last_event_id =
        resume.map_or_else(String::new, |(id, _)| format!("Last-Event-ID: {id}\r\n"));
    let request = format!(
        "GET {}{} HTTP/1.1\r\nHost: {target}\r\nAccept: text/event-stream\r\n{last_event_id}\r\n",
        opts.path, opts.topic
    );
    let (mut stream, head, start, filled) =
        open_stream(target, &request, Some(source), false, buf).await?;
    let mut scanner = Scanner::with_ids();
    let mut chunked = Chunked::default();
    let mut prev = resume.map(|r| r.1);
    let mut on_event = |ev: Option<(u64, u64)>| {
        let Some((seq, _)) = ev else { return };
        st.events.set(st.events.get() + 1);
        match prev {
            Some(p) if seq <= p => st.dups.set(st.dups.get() + 1),
            Some(p) => {
                st.gaps.set(st.gaps.get() + (seq - p - 1));
                prev = Some(seq);
            }
            None => prev = Some(seq),
        }
    };
    let mut feed = |data: &[u8], scanner: &mut Scanner| -> Result<bool, String> {
        match head.framing {
            Framing::Chunked => chunked
                .feed(data, |b| scanner.feed(b, &mut on_event))
                .map_err(|_| "malformed chunked body".to_owned()),
            _ => {
                scanner.feed(data, &mut on_event);
                Ok(false)
            }
        }
    };
    let ended = feed(&buf[start..filled], &mut scanner)?;
    let deadline = tokio::time::Instant::now() + hold;
    if !ended {
        loop {
            match tokio::time::timeout_at(deadline, stream.read(buf)).await {
                Err(_) => break,
                Ok(Ok(0)) => return Err("the server ended the stream".into()),
                Ok(Ok(n)) => {
                    if feed(&buf[..n], &mut scanner)? {
                        return Err("the server ended the stream".into());
                    }
                }
                Ok(Err(e)) => return Err(format!("read: {e}")),
            }
        }
    }
    drop(stream);
    let id = String::from_utf8_lossy(scanner.last_event_id()).into_owned();
    Ok(prev
        .filter(|_| !id.is_empty())
        .map(|seq| (id, seq))
        .or_else(|| resume.cloned()))
}

/// A churning subscriber: streams of random length, one after the other
/// until `stop`; every other one resumes where the previous one stopped.
async fn churn_loop(opts: Rc<Opts>, st: Rc<ChurnStats>, k: usize, stop: Rc<Cell<bool>>) {
    let mut buf = vec![0u8; 8192];
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (k as u64 + 1).wrapping_mul(0xff51_afd7_ed55_8ccd);
    let mut last: Option<Resume> = None;
    let mut n = 0usize;
    while !stop.get() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let hold = Duration::from_millis(100 + x % opts.hold_ms);
        let source = spread_ip(256 + (k + n * opts.churn_concurrency) % 250);
        let resume = if n % 2 == 1 { last.clone() } else { None };
        if resume.is_some() {
            // Offline for a moment, as a browser between two attempts:
            // updates published meanwhile must come back with the resume.
            sleep_s(0.2 + (x >> 32) as f64 % 600.0 / 1000.0).await;
        }
        match churn_stream(&opts, source, resume.as_ref(), hold, &mut buf, &st).await {
            Ok(stopped) => {
                st.cycles.set(st.cycles.get() + 1);
                if resume.is_some() {
                    st.resumes.set(st.resumes.get() + 1);
                }
                last = stopped;
            }
            Err(e) => {
                st.failures.set(st.failures.get() + 1);
                st.first_error.borrow_mut().get_or_insert(e);
                last = None;
                sleep_s(0.1).await;
            }
        }
        n += 1;
    }
}

/// The soak: the schedule for `--duration` with the steady subscribers,
/// churning ones beside them, and the server sampled throughout; then
/// whether its RSS and descriptors stayed flat, and whether it let every
/// churning subscriber go.
async fn soak(
    opts: &Rc<Opts>,
    rec: &mut Record,
    pids: &[u32],
    shared: &Rc<Shared>,
    clients: &[Rc<ClientStat>],
    steady: u64,
) -> Result<(), String> {
    let stop = Rc::new(Cell::new(false));
    let samples = Rc::new(RefCell::new(Vec::new()));
    let t0 = mono_ns();
    spawn_sampler(
        pids[0],
        opts.sample_every,
        t0,
        samples.clone(),
        stop.clone(),
    );
    let st = Rc::new(ChurnStats::default());
    let running = Rc::new(Cell::new(opts.churn_concurrency));
    for k in 0..opts.churn_concurrency {
        let (opts, st, stop, running) = (opts.clone(), st.clone(), stop.clone(), running.clone());
        tokio::task::spawn_local(async move {
            churn_loop(opts, st, k, stop).await;
            running.set(running.get() - 1);
        });
    }
    // The churning loops stop with the schedule, before its drain.
    {
        let (stop, duration) = (stop.clone(), opts.duration);
        tokio::task::spawn_local(async move {
            sleep_s(duration).await;
            stop.set(true);
        });
    }
    let result = schedule(opts, rec, pids, shared, clients).await;
    stop.set(true);
    let waited = mono_ns() + 30_000_000_000;
    while running.get() > 0 && mono_ns() < waited {
        sleep_s(0.05).await;
    }
    result?;
    let elapsed = opts.duration;
    rec.churn_cycles = st.cycles.get();
    rec.churn_per_s = st.cycles.get() as f64 / elapsed;
    rec.resumes = st.resumes.get();
    rec.churn_events = st.events.get();
    rec.churn_gaps = st.gaps.get();
    rec.churn_duplicated = st.dups.get();
    if st.failures.get() > 0 {
        rec.note = format!(
            "{} churn failures (first: {}); {}",
            st.failures.get(),
            st.first_error.borrow().as_deref().unwrap_or("?"),
            rec.note
        );
    }
    // Every churning subscriber gone: the server is back to the steady ones.
    rec.churn_subscribers_after = wait_subscribers(opts, opts.controls[0], steady, 30.0).await;
    sleep_s(2.0).await;
    rec.fds_after = procfs::open_fds(pids[0]).unwrap_or(0);
    let samples = samples.borrow().clone();
    rec.warmup_s = opts.warmup;
    rec.rss_trend = trend(&samples, opts.warmup, |s| s.rss_kib as f64).map(|t| {
        let tolerance = opts
            .rss_tolerance_kib
            .unwrap_or_else(|| rss_tolerance_kib(t.first_mean));
        t.judge(tolerance)
    });
    rec.fd_trend = trend(&samples, opts.warmup, |s| s.fds as f64).map(|t| {
        t.judge(
            opts.fd_tolerance
                .unwrap_or_else(|| fd_tolerance(opts.churn_concurrency)),
        )
    });
    rec.samples = samples;
    Ok(())
}

/// What the slow-loris connections of a slow-peers run did.
struct LorisStats {
    opened: Cell<u64>,
    closed: Cell<u64>,
    /// How long the server kept each, ms.
    life: RefCell<Histogram<u64>>,
}

/// One slow-loris peer: a connection whose request head never ends —
/// a byte every `--drip-ms` (even `k`) or half a head and then silence
/// (odd `k`) — reopened whenever the server closes it, until `stop`.
async fn slowloris_loop(
    opts: Rc<Opts>,
    k: usize,
    st: Rc<LorisStats>,
    sem: Arc<Semaphore>,
    stop: Rc<Cell<bool>>,
) {
    let request = events_request(&opts, k);
    // Never the head's last byte.
    let head = &request.as_bytes()[..request.len() - 1];
    let drip = k % 2 == 0;
    let mut probe = [0u8; 512];
    let mut n = 0usize;
    while !stop.get() {
        let source = spread_ip(512 + (k + n * opts.slowloris) % 250);
        n += 1;
        let connected = {
            let Ok(_permit) = sem.acquire().await else {
                return;
            };
            connect(opts.targets[0], Some(source), false).await
        };
        let Ok(mut stream) = connected else {
            sleep_s(0.5).await;
            continue;
        };
        st.opened.set(st.opened.get() + 1);
        let t = mono_ns();
        let mut sent = if drip { 0 } else { head.len() / 2 };
        if !drip && stream.write_all(&head[..sent]).await.is_err() {
            sent = usize::MAX;
        }
        let closed = loop {
            if sent == usize::MAX {
                break true;
            }
            let wait = Duration::from_millis(opts.drip_ms.min(500));
            match tokio::time::timeout(wait, stream.read(&mut probe)).await {
                // An answer (408, 400) is read; the close follows.
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => break true,
                Err(_) if stop.get() => break false,
                Err(_) => {
                    let due = (mono_ns() - t) / 1_000_000 / opts.drip_ms + 1;
                    while drip && (sent as u64) < due && sent < head.len() {
                        if stream.write_all(&head[sent..=sent]).await.is_err() {
                            sent = usize::MAX;
                            break;
                        }
                        sent += 1;
                    }
                }
            }
        };
        if closed {
            st.closed.set(st.closed.get() + 1);
            st.life
                .borrow_mut()
                .saturating_record(((mono_ns() - t) / 1_000_000).max(1));
        }
    }
}

/// A schedule's figures, taken from the record `schedule` filled, with the
/// server's peak over `samples` since `since` (seconds into the run).
fn phase(rec: &Record, samples: &[Sample], since: f64) -> Phase {
    let during = samples.iter().filter(|s| s.t_s >= since);
    Phase {
        published: rec.published,
        lost: rec.lost,
        duplicated: rec.duplicated,
        disconnected: rec.disconnected,
        lat_p50_ms: rec.lat_p50_ms,
        lat_p99_ms: rec.lat_p99_ms,
        lat_p999_ms: rec.lat_p999_ms,
        lat_max_ms: rec.lat_max_ms,
        cpu_s: rec.cpu_s,
        rss_max_kib: during.clone().map(|s| s.rss_kib).max().unwrap_or(0),
        fds_max: during.map(|s| s.fds).max().unwrap_or(0),
    }
}

/// Slow peers: the schedule with the normal subscribers alone, then the
/// slow-loris connections and never-reading subscribers join, then the same
/// schedule again — latency and footprint with and without, one server,
/// one set of subscribers.
async fn peers(
    opts: &Rc<Opts>,
    rec: &mut Record,
    pids: &[u32],
    shared: &Rc<Shared>,
    stats_all: &[Rc<ClientStat>],
    sem: Arc<Semaphore>,
) -> Result<(), String> {
    let clients = &stats_all[..opts.clients];
    let stop = Rc::new(Cell::new(false));
    let samples = Rc::new(RefCell::new(Vec::new()));
    let t0 = mono_ns();
    let since = |t: u64| t.saturating_sub(t0) as f64 / 1e9;
    spawn_sampler(
        pids[0],
        opts.sample_every,
        t0,
        samples.clone(),
        stop.clone(),
    );
    schedule(opts, rec, pids, shared, clients).await?;
    rec.without = Some(phase(rec, &samples.borrow(), 0.0));

    // The slow peers.
    let loris = Rc::new(LorisStats {
        opened: Cell::new(0),
        closed: Cell::new(0),
        life: RefCell::new(histogram()),
    });
    for k in 0..opts.slowloris {
        tokio::task::spawn_local(slowloris_loop(
            opts.clone(),
            k,
            loris.clone(),
            sem.clone(),
            stop.clone(),
        ));
    }
    for (i, stat) in stats_all.iter().enumerate().skip(opts.clients) {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        tokio::task::spawn_local(subscriber(
            opts.clone(),
            shared.clone(),
            stat.clone(),
            i,
            permit,
            true,
        ));
    }
    let stalled = &stats_all[opts.clients..];
    let deadline = mono_ns() + 120_000_000_000;
    while mono_ns() < deadline
        && (stalled.iter().any(|s| !s.connected.get() && !s.ended.get())
            || loris.opened.get() < opts.slowloris as u64)
    {
        sleep_s(0.05).await;
    }
    let stalled_up = stalled.iter().filter(|s| s.connected.get()).count();
    if stalled_up < opts.stalled {
        eprintln!(
            "loadgen: {stalled_up} of {} never-reading subscribers connected",
            opts.stalled
        );
    }
    sleep_s(opts.idle_wait).await;
    rec.rss_peers_kib = sample(pids[0]).rss_kib;
    rec.fds_peers = procfs::open_fds(pids[0]).unwrap_or(0);
    let with_from = since(mono_ns());
    schedule(opts, rec, pids, shared, clients).await?;
    rec.with = Some(phase(rec, &samples.borrow(), with_from));
    rec.fds_after = procfs::open_fds(pids[0]).unwrap_or(0);
    stop.set(true);
    rec.slowloris = opts.slowloris;
    rec.slowloris_opened = loris.opened.get();
    rec.slowloris_closed = loris.closed.get();
    let life = loris.life.borrow();
    if !life.is_empty() {
        rec.slowloris_life_p50_s = life.value_at_quantile(0.5) as f64 / 1000.0;
        rec.slowloris_life_max_s = life.max() as f64 / 1000.0;
    }
    rec.samples = samples.borrow().clone();
    Ok(())
}

fn main() {
    let args = Args::from_env(USAGE);
    let addrs =
        |list: &str| -> Vec<SocketAddr> { list.split(',').map(procfs::loopback_addr).collect() };
    let targets = addrs(args.opt("target").unwrap_or("127.0.0.1:7001"));
    let clients: usize = args.get("clients", 100);
    let stalled: usize = args.get("stalled", 0);
    let mode = match args.opt("mode").unwrap_or("rate") {
        "idle" => Mode::Idle,
        "rate" => Mode::Rate,
        "max" => Mode::Max,
        "churn" => Mode::Churn,
        "soak" => Mode::Soak,
        "peers" => Mode::Peers,
        other => {
            eprintln!("unknown --mode {other}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let duration: f64 = args.get("duration", 10.0);
    let limit = procfs::raise_nofile();
    let per_address: usize = args.get("per-address", 20_000);
    let slowloris: usize = args.get("slowloris", 0);
    let churn_concurrency: usize = args.get("churn-concurrency", 64);
    // Churning and slow-loris connections have source addresses of their
    // own (127.0.1.x, 127.0.2.x); they count against the open-file limit.
    let churners = if matches!(mode, Mode::Churn | Mode::Soak) {
        churn_concurrency
    } else {
        0
    };
    let needed = clients + stalled;
    if ((needed + slowloris + churners) as u64) + 64 > limit {
        eprintln!(
            "loadgen: {} connections need more than the open-file limit {limit}",
            needed + slowloris + churners
        );
        std::process::exit(2);
    }
    let controls = args.opt("control").map_or_else(|| targets.clone(), addrs);
    let limit_s: f64 = args.get("time-limit", duration + 300.0);
    let publish = args.opt("publish-http").map(|addr| {
        let addr = procfs::loopback_addr(addr);
        if !matches!(mode, Mode::Rate | Mode::Max) {
            eprintln!("loadgen: --publish-http goes with --mode rate or max");
            std::process::exit(2);
        }
        let style = match args.opt("publish-style").unwrap_or("plain") {
            "plain" => Style::Plain {
                path: args
                    .opt("publish-path")
                    .unwrap_or("/publish?topic=")
                    .to_owned(),
            },
            "mercure" => {
                let key = args
                    .opt("jwt-key")
                    .map(str::to_owned)
                    .or_else(|| std::env::var("BENCH_JWT_KEY").ok())
                    .filter(|k| !k.is_empty())
                    .unwrap_or_else(|| {
                        eprintln!(
                            "loadgen: --publish-style mercure needs --jwt-key or BENCH_JWT_KEY"
                        );
                        std::process::exit(2);
                    });
                // Valid for the whole run, whatever happens.
                let claims = publish::publisher_claims(
                    args.opt("jwt-issuer").unwrap_or("https://bench.invalid"),
                    &publish::mercure_audience(addr),
                    Duration::from_secs_f64(limit_s + 600.0),
                );
                let token = publish::mint_token(key.as_bytes(), &claims).unwrap_or_else(|e| {
                    eprintln!("loadgen: cannot mint the publisher token: {e}");
                    std::process::exit(2);
                });
                Style::Mercure { token }
            }
            other => {
                eprintln!("unknown --publish-style {other}\n{USAGE}");
                std::process::exit(2);
            }
        };
        HttpPublish {
            addr,
            style,
            in_flight: args.get::<usize>("in-flight", 1).max(1),
        }
    });
    if controls.len() != targets.len() {
        eprintln!(
            "loadgen: {} targets but {} control addresses",
            targets.len(),
            controls.len()
        );
        std::process::exit(2);
    }
    let opts = Rc::new(Opts {
        targets,
        controls,
        redis: args.opt("redis").map(procfs::loopback_addr),
        clients,
        mode,
        label: args.opt("label").unwrap_or("server").to_owned(),
        scenario: args.opt("scenario").unwrap_or("adhoc").to_owned(),
        out: args.opt("out").map(str::to_owned),
        topic: args.opt("topic").unwrap_or("all").to_owned(),
        path: args.opt("path").unwrap_or("/events?topic=").to_owned(),
        targeted: args.flag("targeted"),
        rate: args.get("rate", 10.0),
        duration,
        size: args.get("size", 100),
        window: args.get("window", 128),
        burst: args.get("burst", 64),
        stalled,
        idle_wait: args.get("idle-wait", 3.0),
        connect_concurrency: args.get("connect-concurrency", 256),
        churn_concurrency,
        addresses: needed.div_ceil(per_address.max(1)),
        read_buf: args.get("read-buf", 8192),
        note: args.opt("note").unwrap_or("").to_owned(),
        hold_ms: args.get::<u64>("hold-ms", 2000).max(100),
        sample_every: args.get::<f64>("sample-every", 5.0).max(0.1),
        warmup: args.get("warmup", (duration / 6.0).min(300.0)),
        fd_tolerance: args
            .opt("fd-tolerance")
            .map(|_| args.get("fd-tolerance", 0.0)),
        rss_tolerance_kib: args
            .opt("rss-tolerance-kib")
            .map(|_| args.get("rss-tolerance-kib", 0.0)),
        slowloris,
        drip_ms: args.get::<u64>("drip-ms", 1000).max(1),
        publish,
        pid: args.opt("pid").map(|_| args.get("pid", 0)),
        nchan_status: args.flag("nchan-status"),
    });
    // Stop by ourselves whatever happens.
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(limit_s));
        eprintln!("loadgen: time limit of {limit_s} s reached, stopping");
        std::process::exit(3);
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&rt, run(opts.clone()));
    match result {
        Ok(rec) => {
            let line = serde_json::to_string(&rec).expect("record");
            println!("{line}");
            eprintln!("{}", summary(&rec));
            if let Some(path) = &opts.out {
                use std::io::Write;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path);
                if let Err(e) = file.and_then(|mut f| writeln!(f, "{line}")) {
                    eprintln!("loadgen: cannot append to {path}: {e}");
                    std::process::exit(1);
                }
            }
            // The connections' tasks are not waited for.
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}

fn summary(r: &Record) -> String {
    let mut s = format!(
        "[{} {}] clients {}/{} (+{} stalled) connected in {:.1}s; idle {:.0} B/conn (RSS {} -> {} KiB)",
        r.scenario,
        r.server,
        r.connected,
        r.clients,
        r.stalled,
        r.connect_s,
        r.idle_bytes_per_conn,
        r.rss_before_kib,
        r.rss_idle_kib
    );
    if r.published > 0 {
        s += &format!(
            "\n  published {} rounds; {} deliveries in {:.2}s = {:.0}/s; lost {} dup {} ooo {} unparsed {} disconnected {}\n  \
             server CPU {:.2}s = {:.3} us/delivery; e2e latency p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms\n  \
             server publish-to-last-write p50 {:.2} p99 {:.2} max {:.2} ms; schedule slip max {:.2} ms",
            r.published,
            r.deliveries,
            r.run_s,
            r.deliveries_per_s,
            r.lost,
            r.duplicated,
            r.out_of_order,
            r.unparsed,
            r.disconnected,
            r.cpu_s,
            r.cpu_us_per_delivery,
            r.lat_p50_ms,
            r.lat_p90_ms,
            r.lat_p99_ms,
            r.lat_p999_ms,
            r.lat_max_ms,
            r.server_lat_p50_ms,
            r.server_lat_p99_ms,
            r.server_lat_max_ms,
            r.slip_max_ms
        );
    }
    if r.publish_via == "http" {
        s += &format!(
            "\n  over HTTP, {} in flight{}: {} publishes acknowledged = {:.0}/s, {} failed, {} connections; \
             ack p50 {:.3} p99 {:.3} max {:.3} ms; server CPU {:.1} us/publish; overtaken by max {} p99 {}",
            r.publish_in_flight,
            if r.publish_rate > 0.0 {
                format!(" at {} /s", r.publish_rate)
            } else {
                String::new()
            },
            r.publishes,
            r.publishes_per_s,
            r.publish_errors,
            r.publish_connects,
            r.ack_p50_ms,
            r.ack_p99_ms,
            r.ack_max_ms,
            r.cpu_us_per_publish,
            r.overtaken_max,
            r.overtaken_p99
        );
    }
    if r.churn_cycles > 0 && r.mode == "churn" {
        s += &format!(
            "\n  churn {} cycles = {:.0}/s, p99 {:.2} ms, {:.1} us CPU/cycle; RSS peak {} KiB, after {} KiB; subscribers after {}",
            r.churn_cycles,
            r.churn_per_s,
            r.churn_p99_ms,
            r.cpu_us_per_churn,
            r.churn_rss_peak_kib,
            r.rss_after_kib,
            r.churn_subscribers_after
        );
    }
    if r.nodes > 1 {
        for (k, n) in r.node_stats.iter().enumerate() {
            s += &format!(
                "\n  node {k} {} (pid {}): {} clients, RSS {} -> {} KiB, CPU {:.2}s, {} deliveries, p50 {:.2} p99 {:.2} max {:.2} ms",
                n.target,
                n.pid,
                n.clients,
                n.rss_before_kib,
                n.rss_idle_kib,
                n.cpu_s,
                n.deliveries,
                n.lat_p50_ms,
                n.lat_p99_ms,
                n.lat_max_ms
            );
        }
        if r.published > 0 {
            s += &format!(
                "\n  publisher's node p50 {:.2} p99 {:.2} ms; other nodes p50 {:.2} p99 {:.2} p99.9 {:.2} ms",
                r.lat_same_p50_ms,
                r.lat_same_p99_ms,
                r.lat_other_p50_ms,
                r.lat_other_p99_ms,
                r.lat_other_p999_ms
            );
        }
    }
    if let Some(d) = &r.redis {
        let per = r.publishes.max(1) as f64;
        let calls: Vec<String> = d
            .calls
            .iter()
            .map(|(cmd, n)| format!("{cmd} {:.2}", *n as f64 / per))
            .collect();
        s += &format!(
            "\n  Redis per publish ({} publishes): CPU {:.1} us, {:.2} requests read, {:.2} replies written, calls {:.2} ({})",
            r.publishes,
            r.redis_cpu_us_per_publish,
            r.redis_reads_per_publish,
            d.writes as f64 / per,
            r.redis_calls_per_publish,
            calls.join(", ")
        );
    }
    if let (Some(rss), Some(fds)) = (&r.rss_trend, &r.fd_trend) {
        let verdict = |flat: bool| if flat { "flat" } else { "NOT FLAT" };
        s += &format!(
            "\n  soak: {} resumes, {} churn events, {} gaps, {} duplicated\n  \
             RSS {}: first third {:.0} KiB, last third {:.0} KiB ({:+.0}, allowed {:.0}), slope {:+.0} KiB/h\n  \
             fds {}: first third {:.1}, last third {:.1} ({:+.1}, allowed {:.0}), slope {:+.1}/h; {} before, {} after",
            r.resumes,
            r.churn_events,
            r.churn_gaps,
            r.churn_duplicated,
            verdict(rss.flat),
            rss.first_mean,
            rss.last_mean,
            rss.growth,
            rss.tolerance,
            rss.slope_per_h,
            verdict(fds.flat),
            fds.first_mean,
            fds.last_mean,
            fds.growth,
            fds.tolerance,
            fds.slope_per_h,
            r.fds_before,
            r.fds_after
        );
    }
    if let (Some(a), Some(b)) = (&r.without, &r.with) {
        s += &format!(
            "\n  slow peers: {} slow-loris ({} opened, {} closed by the server after p50 {:.1} s, max {:.1} s), {} never reading; \
             RSS with them idle {} KiB, {} fds\n  \
             without: p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms, lost {}, RSS max {} KiB, fds max {}\n  \
             with:    p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms, lost {}, RSS max {} KiB, fds max {}",
            r.slowloris,
            r.slowloris_opened,
            r.slowloris_closed,
            r.slowloris_life_p50_s,
            r.slowloris_life_max_s,
            r.stalled,
            r.rss_peers_kib,
            r.fds_peers,
            a.lat_p50_ms,
            a.lat_p99_ms,
            a.lat_p999_ms,
            a.lat_max_ms,
            a.lost,
            a.rss_max_kib,
            a.fds_max,
            b.lat_p50_ms,
            b.lat_p99_ms,
            b.lat_p999_ms,
            b.lat_max_ms,
            b.lost,
            b.rss_max_kib,
            b.fds_max
        );
    }
    s += &format!("\n  load {} -> {}", r.load_before, r.load_after);
    s
}
