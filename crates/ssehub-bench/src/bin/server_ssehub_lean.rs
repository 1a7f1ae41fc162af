//! `server-ssehub-lean`: the same broker as `server-ssehub`, but event
//! streams are served by ssehub's own lean HTTP/1.1 server
//! (`ssehub::server::serve`, feature `server`) instead of axum/hyper. That
//! server answers `GET` only, so the benchmark's control requests (`/run`,
//! `/ack`, `/stats`) go to a second port served by axum (`--control-addr`;
//! the load generator's `--control`).
//!
//! The lean server owns its sockets, so this variant cannot time its writes:
//! it reports no publish-to-last-write latency.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use serde_json::{Value, json};
use ssehub::Event;
use ssehub::broker::{Broker, BrokerConfig, Channel};
use ssehub::server::ServerConfig;
use ssehub_bench::args::{Args, query_param};
use ssehub_bench::control::{self, Action, Control, Fanout};
use ssehub_bench::procfs;
use tokio::net::TcpListener;

const USAGE: &str = "server-ssehub-lean [--addr 127.0.0.1:7404] [--control-addr 127.0.0.1:7414] [--write-timeout-s 10]";

#[derive(Clone)]
struct Hub {
    broker: Broker,
}

impl Fanout for Hub {
    type Topic = Channel;

    fn topic(&self, name: &str) -> Channel {
        self.broker
            .channel(name)
            .expect("the broker is never closed")
    }

    fn publish(&self, topic: &Channel, payloads: &[String]) {
        for p in payloads {
            if let Ok(frame) = Event::new(p.as_str()).encode() {
                let _ = topic.broadcast_frame(frame);
            }
        }
    }

    fn subscribers(&self) -> usize {
        self.broker.clients()
    }

    fn extra(&self) -> Value {
        let s = self.broker.stats();
        json!({
            "channels": s.channels,
            "published": s.published,
            "delivered": s.delivered,
            "dropped": s.dropped,
            "slow_disconnects": s.slow_disconnects,
        })
    }
}

#[derive(Clone)]
struct App {
    hub: Hub,
    ctl: Arc<Control>,
}

async fn control_route(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> (StatusCode, String) {
    let query = uri.query().unwrap_or("");
    match control::handle(
        &app.hub,
        &app.ctl,
        method.as_str(),
        uri.path(),
        query,
        &body,
    ) {
        Action::Reply(status, body) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        ),
        Action::Start(spec) => {
            tokio::spawn(control::run_schedule(
                app.hub.clone(),
                app.ctl.clone(),
                spec,
            ));
            (StatusCode::OK, "started".into())
        }
    }
}

fn main() -> io::Result<()> {
    let args = Args::from_env(USAGE);
    let addr = procfs::loopback_addr(args.opt("addr").unwrap_or("127.0.0.1:7404"));
    let control_addr = procfs::loopback_addr(args.opt("control-addr").unwrap_or("127.0.0.1:7414"));
    let write_timeout = Duration::from_secs(args.get("write-timeout-s", 10));
    let _ = procfs::raise_nofile();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let broker = Broker::with_config(BrokerConfig::default());
            let app = App {
                hub: Hub {
                    broker: broker.clone(),
                },
                ctl: Arc::new(Control::default()),
            };
            let control_router = Router::new()
                .fallback(control_route)
                .with_state(app.clone());
            let control_listener = TcpListener::bind(control_addr).await?;
            tokio::spawn(async move {
                let _ = axum::serve(control_listener, control_router).await;
            });
            let handler = move |parts: &axum::http::request::Parts| {
                broker.handle_request(parts, |client| {
                    let topic = parts
                        .uri
                        .query()
                        .and_then(|q| query_param(q, "topic"))
                        .unwrap_or("all");
                    let _ = client.subscribe(topic);
                })
            };
            let listener = TcpListener::bind(addr).await?;
            eprintln!(
                "server-ssehub-lean listening on {addr} (control {control_addr}), pid {}",
                std::process::id()
            );
            let config = ServerConfig::default().write_timeout(write_timeout);
            tokio::select! {
                r = ssehub::server::serve(listener, config, handler) => r,
                () = procfs::until_terminated() => {
                    eprintln!("server-ssehub-lean: {}", app.ctl.stats(&app.hub));
                    std::process::exit(0)
                }
            }
        })
}
