//! `server-ssehub`: the ssehub [`Broker`] served by axum 0.8 (hyper), on one
//! multi-threaded tokio runtime (one worker per CPU it may run on: one when
//! pinned with `taskset -c 0`). Every connection carries ssehub's write
//! deadline and a TCP_NODELAY socket, as a production server would.
//!
//! `GET /events?topic=T` subscribes the new client to channel `T`; the
//! benchmark schedule publishes pre-validated events with
//! `Channel::broadcast_frame(Event::new(payload).encode())`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use ssehub::broker::{Broker, BrokerConfig};
use ssehub::io::WriteTimeout;
use ssehub_bench::args::{Args, query_param};
use ssehub_bench::broker_hub::BrokerHub;
use ssehub_bench::control::{self, Control};
use ssehub_bench::procfs;
use ssehub_bench::timing::TimedIo;
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "server-ssehub [--addr 127.0.0.1:7001] [--write-timeout-s 10]";

/// Accepts connections with TCP_NODELAY, ssehub's write deadline and the
/// benchmark's write timing.
struct BenchListener {
    inner: TcpListener,
    write_timeout: Duration,
}

impl axum::serve::Listener for BenchListener {
    type Io = TimedIo<WriteTimeout<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((socket, addr)) => {
                    let _ = socket.set_nodelay(true);
                    let io = TimedIo::new(WriteTimeout::new(socket, self.write_timeout));
                    return (io, addr);
                }
                // Out of file descriptors and the like: back off, as axum does.
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
    let addr = procfs::loopback_addr(args.opt("addr").unwrap_or("127.0.0.1:7001"));
    let write_timeout = Duration::from_secs(args.get("write-timeout-s", 10));
    let _ = procfs::raise_nofile();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let broker = Broker::with_config(BrokerConfig::default());
            let hub = BrokerHub {
                broker: broker.clone(),
            };
            let ctl = Arc::new(Control::default());
            let router = Router::new()
                .route(
                    "/events",
                    get(broker.handle_fn(|client, parts| {
                        let topic = parts
                            .uri
                            .query()
                            .and_then(|q| query_param(q, "topic"))
                            .unwrap_or("all");
                        let _ = client.subscribe(topic);
                    })),
                )
                .merge(control::router(hub.clone(), ctl.clone()));
            let listener = BenchListener {
                inner: TcpListener::bind(addr).await?,
                write_timeout,
            };
            eprintln!(
                "server-ssehub listening on {addr}, pid {}",
                std::process::id()
            );
            tokio::select! {
                r = axum::serve(listener, router) => r,
                () = procfs::until_terminated() => {
                    eprintln!("server-ssehub: {}", ctl.stats(&hub));
                    std::process::exit(0)
                }
            }
        })
}
