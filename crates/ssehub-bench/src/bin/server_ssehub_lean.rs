//! `server-ssehub-lean`: the same broker as `server-ssehub`, but event
//! streams are served by ssehub's own lean HTTP/1.1 server
//! (`ssehub::server::serve`, feature `server`) instead of axum/hyper. That
//! server answers `GET` only, so the benchmark's control requests (`/run`,
//! `/ack`, `/stats`) go to a second port served by axum (`--control-addr`;
//! the load generator's `--control`).
//!
//! The lean server owns its sockets, so its writes are timed where they
//! start: each response body is wrapped in [`TimedBody`] (what a body
//! yields, the connection writes at once), and the broker's writer reports
//! the frames it writes straight to lent sockets through
//! `BrokerConfig::on_direct_write`. Connections are served one by one with
//! `serve_connection_with` (what `ssehub::server::serve` runs, with a body
//! type of the caller's choosing); requests other than `GET` are closed.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use ssehub::broker::{Broker, BrokerConfig};
use ssehub::server::{ServerConfig, serve_connection_with};
use ssehub_bench::args::{Args, query_param};
use ssehub_bench::broker_hub::BrokerHub;
use ssehub_bench::control::{self, Control};
use ssehub_bench::procfs;
use ssehub_bench::timing::{self, TimedBody};
use tokio::net::TcpListener;

const USAGE: &str = "server-ssehub-lean [--addr 127.0.0.1:7404] [--control-addr 127.0.0.1:7414] [--write-timeout-s 10] [--keep-alive-s 15 (0: off)]";

fn main() -> io::Result<()> {
    let args = Args::from_env(USAGE);
    let addr = procfs::loopback_addr(args.opt("addr").unwrap_or("127.0.0.1:7404"));
    let control_addr = procfs::loopback_addr(args.opt("control-addr").unwrap_or("127.0.0.1:7414"));
    let write_timeout = Duration::from_secs(args.get("write-timeout-s", 10));
    let keep_alive = match args.get("keep-alive-s", 15) {
        0 => None,
        s => Some(Duration::from_secs(s)),
    };
    let _ = procfs::raise_nofile();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let broker = Broker::with_config(
                BrokerConfig::default()
                    .keep_alive(keep_alive)
                    .on_direct_write(|event: &[u8], _count| timing::observe(event)),
            );
            let hub = BrokerHub {
                broker: broker.clone(),
            };
            let ctl = Arc::new(Control::default());
            let control_router = control::router(hub.clone(), ctl.clone());
            let control_listener = TcpListener::bind(control_addr).await?;
            tokio::spawn(async move {
                let _ = axum::serve(control_listener, control_router).await;
            });
            let handler = Arc::new(move |parts: &axum::http::request::Parts| {
                let response = broker.handle_request(parts, |client| {
                    let topic = parts
                        .uri
                        .query()
                        .and_then(|q| query_param(q, "topic"))
                        .unwrap_or("all");
                    let _ = client.subscribe(topic);
                });
                Some(response.map(TimedBody::new))
            });
            let listener = TcpListener::bind(addr).await?;
            eprintln!(
                "server-ssehub-lean listening on {addr} (control {control_addr}), pid {}",
                std::process::id()
            );
            let config = ServerConfig::default().write_timeout(write_timeout);
            let accept = async move {
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        // Out of descriptors: wait for some to close, as
                        // `ssehub::server::serve` does.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        let closed = |_| async { Ok(()) };
                        let _ = serve_connection_with(socket, config, &*handler, closed).await;
                    });
                }
            };
            tokio::select! {
                r = accept => r,
                () = procfs::until_terminated() => {
                    eprintln!("server-ssehub-lean: {}", ctl.stats(&hub));
                    std::process::exit(0)
                }
            }
        })
}
