//! What a Redis server did during a run, from its `INFO`: calls per
//! command (`commandstats`), its CPU time (`cpu`), the requests it read and
//! the replies it wrote (`stats`), and its memory (`memory`).
//!
//! The load generator samples a scale-out run's Redis before and after the
//! schedule, on one connection of its own, and records the difference per
//! publish. Each sample is one `INFO commandstats cpu stats memory`
//! request; the [`RedisDelta`] leaves that request out again.
//!
//! ```
//! use ssehub_bench::redis_info::RedisSample;
//!
//! let before = RedisSample::parse(
//!     "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=50\r\n\
//!      # CPU\r\nused_cpu_sys:1.000000\r\nused_cpu_user:2.000000\r\n\
//!      # Stats\r\ntotal_reads_processed:100\r\ntotal_writes_processed:90\r\n",
//! );
//! let after = RedisSample::parse(
//!     "cmdstat_evalsha:calls=110,usec=550\r\ncmdstat_xread:calls=300,usec=900\r\n\
//!      cmdstat_info:calls=7,usec=1\r\n\
//!      used_cpu_sys:1.001000\r\nused_cpu_user:2.002000\r\n\
//!      total_reads_processed:501\r\ntotal_writes_processed:491\r\n",
//! );
//! let d = after.since(&before);
//! assert_eq!(d.calls["evalsha"], 100);
//! assert_eq!(d.calls["xread"], 300);
//! assert!(!d.calls.contains_key("info"), "the sampler's own requests are left out");
//! assert_eq!(d.reads, 400, "one read of the 401 was the second sample's INFO");
//! assert_eq!(d.writes, 400, "one write of the 401 was the first sample's reply");
//! assert!((d.cpu_s - 0.003).abs() < 1e-9);
//! ```

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One `INFO` reading.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RedisSample {
    /// `calls` of every `cmdstat_<name>` line, by lowercase command name
    /// (subcommands as Redis writes them, e.g. `client|setinfo`).
    pub calls: BTreeMap<String, u64>,
    /// `usec` of every `cmdstat_<name>` line: time spent executing it.
    pub usec: BTreeMap<String, u64>,
    /// `used_cpu_sys + used_cpu_user`, seconds.
    pub cpu_s: f64,
    /// `total_reads_processed`: reads from client sockets (one per
    /// request that arrives alone; a pipelined batch may share one).
    pub reads: u64,
    /// `total_writes_processed`: writes to client sockets.
    pub writes: u64,
    /// `used_memory`, bytes.
    pub used_memory: u64,
    /// `process_id` (from `server`, when asked for).
    pub pid: u64,
}

/// What happened between two samples, without the sampler's own
/// requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisDelta {
    /// Calls per command (commands run inside scripts included: Redis
    /// counts an `EVALSHA` and each `redis.call` in it). `info` is left out.
    pub calls: BTreeMap<String, u64>,
    /// Microseconds spent executing each command.
    pub usec: BTreeMap<String, u64>,
    /// Redis CPU seconds, user + system.
    pub cpu_s: f64,
    /// Requests read from clients, the sampler's left out: the client
    /// round trips (a pipelined batch that arrives in one read counts once).
    pub reads: u64,
    /// Replies written to clients, the sampler's left out (one per wake of
    /// a blocked `XREAD`, one per answered read).
    pub writes: u64,
    /// `used_memory` after, bytes.
    pub used_memory_after: u64,
}

impl RedisSample {
    /// Reads the text of an `INFO` reply (any sections; unknown lines are
    /// ignored).
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut s = Self::default();
        let (mut sys, mut user) = (0.0, 0.0);
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            if let Some(cmd) = key.strip_prefix("cmdstat_") {
                for kv in value.split(',') {
                    match kv.split_once('=') {
                        Some(("calls", v)) => {
                            s.calls.insert(cmd.to_owned(), v.parse().unwrap_or(0));
                        }
                        Some(("usec", v)) => {
                            s.usec.insert(cmd.to_owned(), v.parse().unwrap_or(0));
                        }
                        _ => {}
                    }
                }
                continue;
            }
            match key {
                "used_cpu_sys" => sys = value.parse().unwrap_or(0.0),
                "used_cpu_user" => user = value.parse().unwrap_or(0.0),
                "total_reads_processed" => s.reads = value.parse().unwrap_or(0),
                "total_writes_processed" => s.writes = value.parse().unwrap_or(0),
                "used_memory" => s.used_memory = value.parse().unwrap_or(0),
                "process_id" => s.pid = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        s.cpu_s = sys + user;
        s
    }

    /// What happened from `before` to `self`, both taken with
    /// [`RedisInfo::sample`]: the second sample's request was read (and
    /// counted) before Redis answered it, and the first sample's reply was
    /// written after, so one read and one write are taken off; `info` calls
    /// are left out altogether.
    #[must_use]
    pub fn since(&self, before: &Self) -> RedisDelta {
        let diff = |after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>| {
            after
                .iter()
                .filter(|(cmd, _)| cmd.as_str() != "info")
                .map(|(cmd, &n)| {
                    (
                        cmd.clone(),
                        n.saturating_sub(*before.get(cmd).unwrap_or(&0)),
                    )
                })
                .filter(|&(_, n)| n > 0)
                .collect::<BTreeMap<_, _>>()
        };
        RedisDelta {
            calls: diff(&self.calls, &before.calls),
            usec: diff(&self.usec, &before.usec),
            cpu_s: (self.cpu_s - before.cpu_s).max(0.0),
            reads: self.reads.saturating_sub(before.reads).saturating_sub(1),
            writes: self.writes.saturating_sub(before.writes).saturating_sub(1),
            used_memory_after: self.used_memory,
        }
    }
}

impl RedisDelta {
    /// Calls of every command, scripts' inner calls included.
    #[must_use]
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }
}

/// A connection that asks one Redis for its `INFO`.
#[derive(Debug)]
pub struct RedisInfo {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// The sections every sample asks for.
const SECTIONS: [&str; 5] = ["server", "commandstats", "cpu", "stats", "memory"];

impl RedisInfo {
    /// Connects to `addr` (no authentication: the benchmark's Redis is a
    /// private one on loopback).
    ///
    /// # Errors
    /// When the connection fails.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting to Redis"))??;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(16 << 10),
        })
    }

    /// One `INFO server commandstats cpu stats memory` (one request, one
    /// read on the server's side).
    ///
    /// # Errors
    /// An I/O error, a timeout, or a reply that is not a bulk string.
    pub async fn sample(&mut self) -> io::Result<RedisSample> {
        let mut req = format!("*{}\r\n$4\r\nINFO\r\n", SECTIONS.len() + 1);
        for s in SECTIONS {
            req += &format!("${}\r\n{s}\r\n", s.len());
        }
        self.stream.write_all(req.as_bytes()).await?;
        self.buf.clear();
        let body = tokio::time::timeout(Duration::from_secs(5), self.read_bulk())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "Redis INFO"))??;
        Ok(RedisSample::parse(&String::from_utf8_lossy(&body)))
    }

    async fn read_bulk(&mut self) -> io::Result<Vec<u8>> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("reply head"))?;
                if let Some(err) = head.strip_prefix('-') {
                    return Err(io::Error::other(format!("Redis: {err}")));
                }
                let len: usize = head
                    .strip_prefix('$')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| bad("INFO reply is not a bulk string"))?;
                let start = end + 2;
                if self.buf.len() >= start + len + 2 {
                    return Ok(self.buf[start..start + len].to_vec());
                }
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(bad("Redis closed the connection"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_7_info() {
        let text = "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\n\r\n\
            # Commandstats\r\n\
            cmdstat_evalsha:calls=1000,usec=9000,usec_per_call=9.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_client|setinfo:calls=4,usec=3,usec_per_call=0.75,rejected_calls=0,failed_calls=0\r\n\
            \r\n# CPU\r\nused_cpu_sys:0.500000\r\nused_cpu_user:0.250000\r\nused_cpu_sys_children:9.0\r\n\
            \r\n# Stats\r\ntotal_reads_processed:77\r\ntotal_writes_processed:70\r\n\
            # Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n";
        let s = RedisSample::parse(text);
        assert_eq!(s.calls["evalsha"], 1000);
        assert_eq!(s.usec["evalsha"], 9000);
        assert_eq!(s.calls["client|setinfo"], 4);
        assert!(
            (s.cpu_s - 0.75).abs() < 1e-12,
            "children's CPU is not Redis's"
        );
        assert_eq!(
            (s.reads, s.writes, s.used_memory, s.pid),
            (77, 70, 1_048_576, 4242)
        );
    }

    #[test]
    fn delta_drops_commands_that_did_not_run() {
        let before =
            RedisSample::parse("cmdstat_ping:calls=3,usec=3\r\ntotal_reads_processed:10\r\n");
        let after = RedisSample::parse(
            "cmdstat_ping:calls=3,usec=3\r\ncmdstat_xadd:calls=2,usec=8\r\ntotal_reads_processed:10\r\n",
        );
        let d = after.since(&before);
        assert_eq!(d.calls.len(), 1);
        assert_eq!(d.total_calls(), 2);
        assert_eq!(d.reads, 0, "never negative");
    }
}
