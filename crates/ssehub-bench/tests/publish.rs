//! Publishing over HTTP, end to end and briefly: the load generator
//! publishes to the hub's Mercure endpoint with a token it mints with the
//! key the hub was given, and to the floor's `POST /publish`, over
//! keep-alive connections; every update reaches every subscriber once, no
//! publish fails, and no connection is opened twice.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use ssehub_bench::record::Record;

const KEY: &str = "a-bench-key-of-at-least-32-bytes!!";

/// The child process, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn loadgen(args: &[&str]) -> Record {
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .args(["--size", "100", "--duration", "2", "--idle-wait", "0.5"])
        // It stops by itself whatever happens.
        .args(["--time-limit", "60"])
        .env("BENCH_JWT_KEY", KEY)
        .output()
        .expect("loadgen runs");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "loadgen failed:\n{log}");
    eprintln!("{log}");
    let line = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(line.trim()).expect("a record on stdout")
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
    let (port, control) = (free_port(), free_port());
    let addr = format!("127.0.0.1:{port}");
    let control_addr = format!("127.0.0.1:{control}");
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_server-hub"))
            .args(["--addr", &addr, "--control-addr", &control_addr])
            .args(["--jwt-key", KEY])
            .stdout(Stdio::null())
            .spawn()
            .expect("server-hub starts"),
    );
    let rec = loadgen(&[
        "--target",
        &addr,
        "--control",
        &control_addr,
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
        &addr,
        "--publish-style",
        "mercure",
        "--in-flight",
        "2",
    ]);
    check(&rec, 40, 2);
}

#[test]
fn the_floor_takes_publishes_on_keep_alive_connections() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_server-floor"))
            .args(["--addr", &addr])
            .stdout(Stdio::null())
            .spawn()
            .expect("server-floor starts"),
    );
    let rec = loadgen(&[
        "--target",
        &addr,
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
        &addr,
        "--in-flight",
        "4",
    ]);
    check(&rec, 30, 4);
    assert!(rec.published >= 300, "{} of 400 due", rec.published);
}
