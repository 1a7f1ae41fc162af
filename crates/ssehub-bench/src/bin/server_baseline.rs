//! `server-baseline`: SSE fan-out the way Rust users write it today — axum
//! 0.8 `Sse` over a `tokio::sync::broadcast` receiver, one broadcast channel
//! per topic (capacity 256, like ssehub's default client buffer), keep-alive
//! on (`KeepAlive::default()`), each message a `String` turned into an
//! `axum::response::sse::Event` per subscriber. A lagging subscriber skips
//! what it missed (`RecvError::Lagged` filtered out), as the usual examples do.
//!
//! Served on one multi-threaded tokio runtime like `server-ssehub`, with
//! TCP_NODELAY and the same write timing.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use serde::Deserialize;
use ssehub_bench::args::Args;
use ssehub_bench::control::{self, Control, Fanout};
use ssehub_bench::procfs;
use ssehub_bench::timing::TimedIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

const USAGE: &str = "server-baseline [--addr 127.0.0.1:7002]";

#[derive(Clone, Default)]
struct Topics {
    senders: Arc<Mutex<HashMap<String, broadcast::Sender<String>>>>,
}

impl Fanout for Topics {
    type Topic = broadcast::Sender<String>;

    fn topic(&self, name: &str) -> Self::Topic {
        self.senders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert_with(|| broadcast::channel(256).0)
            .clone()
    }

    fn publish(&self, topic: &Self::Topic, payloads: &[String]) {
        for p in payloads {
            let _ = topic.send(p.clone());
        }
    }

    fn subscribers(&self) -> usize {
        self.senders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(broadcast::Sender::receiver_count)
            .sum()
    }
}

#[derive(Clone)]
struct App {
    topics: Topics,
    ctl: Arc<Control>,
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default = "all")]
    topic: String,
}

fn all() -> String {
    "all".into()
}

async fn events(
    State(app): State<App>,
    Query(q): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = app.topics.topic(&q.topic).subscribe();
    let stream = BroadcastStream::new(rx)
        .filter_map(Result::ok)
        .map(|data| Ok(Event::default().data(data)));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

struct BenchListener {
    inner: TcpListener,
}

impl axum::serve::Listener for BenchListener {
    type Io = TimedIo<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((socket, addr)) => {
                    let _ = socket.set_nodelay(true);
                    return (TimedIo::new(socket), addr);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

fn main() -> io::Result<()> {
    let args = Args::from_env(USAGE);
    let addr = procfs::loopback_addr(args.opt("addr").unwrap_or("127.0.0.1:7002"));
    let _ = procfs::raise_nofile();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let app = App {
                topics: Topics::default(),
                ctl: Arc::new(Control::default()),
            };
            let router = Router::new()
                .route("/events", get(events))
                .with_state(app.clone())
                .merge(control::router(app.topics.clone(), app.ctl.clone()));
            let listener = BenchListener {
                inner: TcpListener::bind(addr).await?,
            };
            eprintln!(
                "server-baseline listening on {addr}, pid {}",
                std::process::id()
            );
            tokio::select! {
                r = axum::serve(listener, router) => r,
                () = procfs::until_terminated() => {
                    eprintln!("server-baseline: {}", app.ctl.stats(&app.topics));
                    std::process::exit(0)
                }
            }
        })
}
