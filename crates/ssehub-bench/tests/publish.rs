//! Publishing over HTTP, end to end and briefly: the load generator
//! publishes to the hub's Mercure endpoint with a token it mints with the
//! key the hub was given, and to the floor's `POST /publish`, over
//! keep-alive connections; every update reaches every subscriber once, no
//! publish fails, and no connection is opened twice.

mod common;

use common::{Server, loadgen, record};
use ssehub_bench::record::Record;

const KEY: &str = "a-bench-key-of-at-least-32-bytes!!";

/// The load generator's record of a brief run with `args`.
fn run(args: &[&str]) -> Record {
    let (rec, log) = record(
        loadgen()
            .args(args)
            .args(["--size", "100", "--duration", "2", "--idle-wait", "0.5"])
            // It stops by itself whatever happens.
            .args(["--time-limit", "60"])
            .env("BENCH_JWT_KEY", KEY),
    );
    eprintln!("{log}");
    rec
}

fn check(rec: &Record, clients: usize, in_flight: usize) {
    assert_eq!(rec.connected, clients, "{rec:?}");
    assert_eq!(rec.publish_via, "http");
    assert!(rec.publishes > 10, "only {} publishes", rec.publishes);
    assert_eq!(rec.publish_errors, 0, "{}", rec.note);
    assert_eq!(rec.publishes, rec.published);
    assert_eq!(
        (rec.lost, rec.duplicated, rec.disconnected, rec.unparsed),
        (0, 0, 0, 0),
        "every update reaches its subscribers once"
    );
    assert_eq!(rec.deliveries, rec.expected);
    assert_eq!(
        rec.publish_connects, in_flight as u64,
        "one keep-alive connection per publisher"
    );
    assert!(rec.ack_p50_ms > 0.0 && rec.ack_p99_ms >= rec.ack_p50_ms);
    assert!(rec.cpu_us_per_publish > 0.0 || rec.cpu_s == 0.0);
}

#[test]
fn the_hub_takes_publishes_with_a_minted_token() {
    let server = Server::start(env!("CARGO_BIN_EXE_server-hub"), true, &["--jwt-key", KEY]);
    let addr = &server.addr;
    let rec = run(&[
        "--target",
        addr,
        "--control",
        server.control(),
        "--path",
        "/.well-known/mercure?match=",
        "--label",
        "hub",
        "--scenario",
        "publish-ci",
        "--clients",
        "40",
        "--targeted",
        "--mode",
        "max",
        "--publish-http",
        addr,
        "--publish-style",
        "mercure",
        "--in-flight",
        "2",
    ]);
    check(&rec, 40, 2);
}

#[test]
fn the_floor_takes_publishes_on_keep_alive_connections() {
    let server = Server::start(env!("CARGO_BIN_EXE_server-floor"), false, &[]);
    let addr = &server.addr;
    let rec = run(&[
        "--target",
        addr,
        "--label",
        "floor",
        "--scenario",
        "publish-ci",
        "--clients",
        "30",
        "--mode",
        "rate",
        "--rate",
        "200",
        "--publish-http",
        addr,
        "--in-flight",
        "4",
    ]);
    check(&rec, 30, 4);
    assert!(rec.published >= 300, "{} of 400 due", rec.published);
}
