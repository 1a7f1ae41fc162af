//! What the end-to-end tests share: a bench server on free ports, killed
//! when the test ends however it ends, and the load generator's record.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use ssehub_bench::record::Record;

/// A bench server started on free loopback ports.
pub struct Server {
    child: Child,
    /// Where it serves, `127.0.0.1:PORT`.
    pub addr: String,
    /// Its control endpoint (`--control-addr`), when it was given one.
    control: Option<String>,
}

impl Server {
    /// Starts the bench binary at `exe` with `--addr` (and, with `control`,
    /// `--control-addr`) on free ports, then `args`.
    pub fn start(exe: &str, control: bool, args: &[&str]) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let control = control.then(|| format!("127.0.0.1:{}", free_port()));
        let mut command = Command::new(exe);
        command.args(["--addr", &addr]);
        if let Some(control) = &control {
            command.args(["--control-addr", control]);
        }
        let child = command
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{exe} does not start: {e}"));
        Self {
            child,
            addr,
            control,
        }
    }

    /// The control address; the server must have been started with one.
    pub fn control(&self) -> &str {
        self.control
            .as_deref()
            .expect("started with a control address")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now (the OS's pick).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The load generator, to be given its arguments.
pub fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
}

/// Runs the load generator, which must succeed; returns the record it
/// printed and its log (standard error).
pub fn record(loadgen: &mut Command) -> (Record, String) {
    let output = loadgen.output().expect("loadgen runs");
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "loadgen failed:\n{log}");
    let line = String::from_utf8_lossy(&output.stdout);
    let rec = serde_json::from_str(line.trim()).expect("a record on stdout");
    (rec, log)
}
