//! `server-hub`: the Mercure hub (`ssehub-server`, the `ssehub` binary's
//! library) started in this process, on the runtime the `ssehub` binary
//! would run it on (`Config::runtime`: one thread, the single-threaded
//! scheduler, when pinned with `taskset -c 0`).
//!
//! The hub is configured as a deployment would be for public updates:
//! anonymous subscribers, one trusted issuer (`https://bench.invalid`) with
//! an HS256 key, the keep-alive and write timeout of the other servers
//! (15 s, 10 s), history and client buffers at the hub's defaults. The key
//! is `--jwt-key`, else the environment's `BENCH_JWT_KEY`, else random:
//! the load generator, publishing over HTTP, mints its publisher token
//! with the same key (`bench/run.sh` hands both one), and the hub checks
//! that token on every publish. The per-address and per-subject rate
//! limits are off: every simulated client, and the one publisher, would
//! otherwise measure the limits rather than the hub. Its
//! subscribers connect with `GET /.well-known/mercure?match=T` (the load
//! generator's `--path`); its own routes own `--addr`, so the benchmark's
//! control requests (`/run`, `/ack`, `/stats`) go to a second port
//! (`--control-addr`, default port + 10; the load generator's `--control`).
//! The schedule publishes each payload with `Running::publish(topic,
//! payload)`, the hub's in-process publish path.
//!
//! `--stream-server`, `--head-timeout` and `--history-events` are handed
//! to the hub as they are (the slow-peers scenario runs both stream
//! servers; a soak with a short history fills it early).
//! `--transport URL` and `--transport-stream KEY` are handed to the hub as
//! they are (its `--transport`, `--transport-stream`): with a Redis URL,
//! several `server-hub` processes on one stream act as one hub, which is
//! how `bench/run.sh` runs `hub-redis` and `hub-redis3`. Left out, the hub
//! keeps its default (its log in memory).
//!
//! The hub owns its listener, so this server cannot time its writes: it
//! reports no publish-to-last-write latency of its own; the hub's
//! `ssehub_publish_to_write_seconds` histogram is in the stats' `extra`.

use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser as _;
use ssehub_bench::args::Args;
use ssehub_bench::control::{self, Control};
use ssehub_bench::hub_fanout::HubFanout;
use ssehub_bench::procfs;
use tokio::net::TcpListener;

const USAGE: &str = "server-hub [--addr 127.0.0.1:7405] [--control-addr ADDR (default: port + 10)] [--jwt-key KEY (default: $BENCH_JWT_KEY, else random)] [--write-timeout-s 10] [--keep-alive-s 15] [--transport memory|redis://HOST:PORT] [--transport-stream KEY] [--stream-server lean|hyper] [--head-timeout 10s] [--history-events N]";

/// 32 random bytes, hex: the hub's HS256 key when none is given.
fn random_key() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn main() -> io::Result<()> {
    let args = Args::from_env(USAGE);
    let addr = procfs::loopback_addr(args.opt("addr").unwrap_or("127.0.0.1:7405"));
    let control_addr = args.opt("control-addr").map_or_else(
        || SocketAddr::new(addr.ip(), addr.port() + 10),
        procfs::loopback_addr,
    );
    let write_timeout_s: u64 = args.get("write-timeout-s", 10);
    let keep_alive_s: u64 = args.get("keep-alive-s", 15);
    let _ = procfs::raise_nofile();
    let jwt_key = match args
        .opt("jwt-key")
        .map(str::to_owned)
        .or_else(|| std::env::var("BENCH_JWT_KEY").ok())
    {
        Some(key) if !key.is_empty() => key,
        _ => random_key()?,
    };
    let mut hub_args = vec![
        "ssehub".to_owned(),
        "--listen".to_owned(),
        addr.to_string(),
        // A key belongs to a trusted issuer: the load generator's
        // publisher tokens name it.
        "--issuer".to_owned(),
        "https://bench.invalid".to_owned(),
        "--jwt-key".to_owned(),
        jwt_key,
        "--anonymous".to_owned(),
        "--keep-alive".to_owned(),
        format!("{keep_alive_s}s"),
        "--write-timeout".to_owned(),
        format!("{write_timeout_s}s"),
        // Every simulated client comes from loopback: the per-address
        // limits would measure themselves, not the hub.
        "--max-connections-per-ip".to_owned(),
        "0".to_owned(),
        "--subscribe-rate".to_owned(),
        "0".to_owned(),
        // One publisher (one token subject) makes every publish.
        "--publish-rate".to_owned(),
        "0".to_owned(),
    ];
    for flag in [
        "transport",
        "transport-stream",
        "stream-server",
        "head-timeout",
        "history-events",
    ] {
        if let Some(value) = args.opt(flag) {
            hub_args.extend([format!("--{flag}"), value.to_owned()]);
        }
    }
    // An unknown flag (a hub built before it had one) ends here with
    // clap's message.
    let config = ssehub_server::Config::parse_from(hub_args);
    // The runtime the `ssehub` binary runs on for the same flags.
    config.runtime()?.block_on(async move {
        let hub = ssehub_server::start(config)
            .await
            .map_err(io::Error::other)?;
        let fanout = HubFanout::new(hub);
        let ctl = Arc::new(Control::default());
        let control_router = control::router(fanout.clone(), ctl.clone());
        let control_listener = TcpListener::bind(control_addr).await?;
        eprintln!(
            "server-hub listening on {addr} (control {control_addr}), pid {}",
            std::process::id()
        );
        tokio::select! {
            r = axum::serve(control_listener, control_router) => r,
            () = procfs::until_terminated() => {
                eprintln!("server-hub: {}", ctl.stats(&fanout));
                std::process::exit(0)
            }
        }
    })
}
