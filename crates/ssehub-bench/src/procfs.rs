//! A process's resident memory and CPU time, from `/proc/<pid>/status` and
//! `/proc/<pid>/stat`.

use std::fs;
use std::io;

use serde::{Deserialize, Serialize};

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcSample {
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// `utime + stime`, nanoseconds (clock-tick resolution, usually 10 ms).
    pub cpu_ns: u64,
}

/// Reads `pid`'s RSS and CPU time.
///
/// # Errors
/// When the process is gone or `/proc` cannot be read.
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; fields after it are
    // counted from the last ')': state is field 3, utime 14, stime 15.
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let cpu_ns = (ticks(11) + ticks(12)) * 1_000_000_000 / hz;
    Ok(ProcSample { rss_kib, cpu_ns })
}

/// How many file descriptors `pid` holds open (entries of
/// `/proc/<pid>/fd`).
///
/// # Errors
/// When the process is gone or its descriptors cannot be listed (another
/// user's process).
pub fn open_fds(pid: u32) -> io::Result<u64> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64)
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` shows them.
#[must_use]
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Raises this process's open-file limit to its hard limit; returns the
/// new soft limit.
#[must_use]
pub fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        if setrlimit(Resource::Nofile, lim).is_err() {
            return getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        }
    }
    lim.current.unwrap_or(u64::MAX)
}

/// Resolves when the process receives SIGTERM (or SIGINT).
pub async fn until_terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Parses `--addr` and refuses anything but a loopback address: the
/// benchmark never serves or targets another machine.
#[must_use]
pub fn loopback_addr(value: &str) -> std::net::SocketAddr {
    let addr: std::net::SocketAddr = value.parse().unwrap_or_else(|_| {
        eprintln!("not an ip:port address: {value:?}");
        std::process::exit(2);
    });
    if !addr.ip().is_loopback() {
        eprintln!(
            "refusing non-loopback address {addr}: the benchmark only runs on 127.0.0.0/8 and ::1"
        );
        std::process::exit(2);
    }
    addr
}
