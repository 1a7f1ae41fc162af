//! One load-generator run, as a JSON line in the results file.

use serde::{Deserialize, Serialize};

use crate::redis_info::RedisDelta;
use crate::soak::{Sample, Trend};

/// The outcome of one scenario against one server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// Scenario name (`idle`, `broadcast`, `saturation`, `targeted`, `churn`, `isolation`).
    pub scenario: String,
    /// Server label (`ssehub`, `baseline`, `floor`).
    pub server: String,
    /// Subscribers asked for.
    pub clients: usize,
    /// Subscribers that connected.
    pub connected: usize,
    /// Connections that failed.
    pub connect_failures: usize,
    /// Seconds it took to connect them all.
    pub connect_s: f64,
    /// Stalled (never reading) extra clients.
    pub stalled: usize,
    /// Schedule mode (`idle`, `rate`, `max`, `churn`, `soak`, `peers`).
    pub mode: String,
    /// Server RSS before any client, KiB.
    pub rss_before_kib: u64,
    /// Server RSS with every client connected and idle, KiB.
    pub rss_idle_kib: u64,
    /// `(rss_idle - rss_before) / clients`, bytes.
    pub idle_bytes_per_conn: f64,
    /// Server RSS at the end, KiB.
    pub rss_after_kib: u64,
    /// Rounds the server published.
    pub published: u64,
    /// Distinct events received (all clients).
    pub deliveries: u64,
    /// Events that should have been received (published x live clients).
    pub expected: u64,
    /// `expected - deliveries` over clients that stayed connected.
    pub lost: u64,
    /// Events received twice.
    pub duplicated: u64,
    /// Events received after a later one.
    pub out_of_order: u64,
    /// Events whose data was not a benchmark payload.
    pub unparsed: u64,
    /// Clients whose stream ended during the run.
    pub disconnected: u64,
    /// Seconds from the first publish to the last delivery.
    pub run_s: f64,
    /// Deliveries per second over `run_s`.
    pub deliveries_per_s: f64,
    /// Server CPU seconds (user + system) during the run.
    pub cpu_s: f64,
    /// Server CPU microseconds per delivery.
    pub cpu_us_per_delivery: f64,
    /// End-to-end latency percentiles, ms (payload time to read by a client).
    pub lat_p50_ms: f64,
    /// 90th percentile.
    pub lat_p90_ms: f64,
    /// 99th percentile.
    pub lat_p99_ms: f64,
    /// 99.9th percentile.
    pub lat_p999_ms: f64,
    /// Maximum.
    pub lat_max_ms: f64,
    /// Server's publish-to-last-write latency, median, ms.
    pub server_lat_p50_ms: f64,
    /// 99th percentile.
    pub server_lat_p99_ms: f64,
    /// Maximum.
    pub server_lat_max_ms: f64,
    /// Latest a fixed-rate publish ran behind its schedule, ms.
    pub slip_max_ms: f64,
    /// Connect-and-disconnect cycles completed (churn).
    pub churn_cycles: u64,
    /// Cycles per second.
    pub churn_per_s: f64,
    /// Cycle (connect to response head) latency, 99th percentile, ms.
    pub churn_p99_ms: f64,
    /// Server CPU microseconds per cycle.
    pub cpu_us_per_churn: f64,
    /// Peak server RSS seen during churn, KiB.
    pub churn_rss_peak_kib: u64,
    /// Subscribers the server reports after churn settled.
    pub churn_subscribers_after: u64,
    /// `/proc/loadavg` before the run.
    pub load_before: String,
    /// `/proc/loadavg` after the run.
    pub load_after: String,
    /// Server-specific counters from `/stats`.
    pub server_extra: serde_json::Value,
    /// Unix time of the run.
    pub unix_time: u64,
    /// Free text.
    pub note: String,
    /// Server processes (hub nodes) the subscribers were spread over,
    /// client `i` on node `i % nodes`; the schedule runs on node 0. 0 in
    /// records from before nodes were counted (one server).
    pub nodes: usize,
    /// Per node, in order. RSS and CPU figures above are sums over them.
    pub node_stats: Vec<NodeStat>,
    /// Updates published (rounds x topics per round).
    pub publishes: u64,
    /// End-to-end latency of the subscribers on the publishing node (node
    /// 0), when there are several nodes: median, ms.
    pub lat_same_p50_ms: f64,
    /// 99th percentile.
    pub lat_same_p99_ms: f64,
    /// End-to-end latency of the subscribers on the other nodes: median, ms.
    pub lat_other_p50_ms: f64,
    /// 99th percentile.
    pub lat_other_p99_ms: f64,
    /// 99.9th percentile.
    pub lat_other_p999_ms: f64,
    /// What the Redis behind the nodes did during the schedule, if one was
    /// named (`loadgen --redis`).
    pub redis: Option<RedisDelta>,
    /// Redis CPU (user + system) per publish, microseconds.
    pub redis_cpu_us_per_publish: f64,
    /// Redis command calls per publish (scripts' inner calls included).
    pub redis_calls_per_publish: f64,
    /// Requests Redis read from clients per publish: round trips.
    pub redis_reads_per_publish: f64,
    /// Descriptors the server held before any client (node 0).
    pub fds_before: u64,
    /// Descriptors it held once the run had settled (soak, slow peers).
    pub fds_after: u64,
    /// Soak and slow peers: the server's RSS and descriptors, sampled
    /// through the schedule(s).
    pub samples: Vec<Sample>,
    /// Soak: how RSS moved after the warm-up, KiB, and whether it is flat.
    pub rss_trend: Option<Trend>,
    /// Soak: how the descriptor count moved, and whether it is flat.
    pub fd_trend: Option<Trend>,
    /// Soak: seconds of samples left out of the trends.
    pub warmup_s: f64,
    /// Soak: reconnections of churning subscribers with `Last-Event-ID`.
    pub resumes: u64,
    /// Soak: events the churning subscribers received.
    pub churn_events: u64,
    /// Soak: events missing inside a churning connection or across a
    /// resume (its first event is not the one after the id it named).
    pub churn_gaps: u64,
    /// Soak: events a churning subscriber received twice (within a
    /// connection, or again after resuming).
    pub churn_duplicated: u64,
    /// Slow peers: connections held open with a request head that never
    /// ends (a byte at a time, or half a head and silence).
    pub slowloris: usize,
    /// Slow peers: such connections opened in all (each reopened when the
    /// server closes it).
    pub slowloris_opened: u64,
    /// Slow peers: those the server closed.
    pub slowloris_closed: u64,
    /// Slow peers: how long the server kept them, median, s.
    pub slowloris_life_p50_s: f64,
    /// Longest.
    pub slowloris_life_max_s: f64,
    /// Slow peers: RSS with the slow peers connected, before the second
    /// schedule, KiB.
    pub rss_peers_kib: u64,
    /// Slow peers: descriptors at that moment.
    pub fds_peers: u64,
    /// Slow peers: the schedule before the slow peers came.
    pub without: Option<Phase>,
    /// Slow peers: the same schedule with them.
    pub with: Option<Phase>,
    /// Who published: empty for the server's own schedule (in process),
    /// `http` when the load generator published over HTTP to the server's
    /// publish endpoint.
    pub publish_via: String,
    /// HTTP publishing: requests in flight at once (one per connection).
    pub publish_in_flight: usize,
    /// HTTP publishing: the target rate in publishes per second (all
    /// topics together); 0 for as fast as acknowledged.
    pub publish_rate: f64,
    /// HTTP publishing: publishes that failed (transport error or a status
    /// other than 2xx).
    pub publish_errors: u64,
    /// HTTP publishing: connections opened (the in-flight count unless the
    /// server closed some).
    pub publish_connects: u64,
    /// HTTP publishing: publishes acknowledged per second, from the first
    /// publish to the last acknowledgement.
    pub publishes_per_s: f64,
    /// HTTP publishing: acknowledgement latency (request sent, or due at a
    /// fixed rate, to its response read), median, ms.
    pub ack_p50_ms: f64,
    /// 99th percentile.
    pub ack_p99_ms: f64,
    /// Maximum.
    pub ack_max_ms: f64,
    /// Server CPU microseconds per publish acknowledged.
    pub cpu_us_per_publish: f64,
    /// Fairness: for each update, how many updates published after it
    /// reached a subscriber before it (worst over the subscribers); the
    /// largest over the updates.
    pub overtaken_max: u64,
    /// The same, 99th percentile over the updates.
    pub overtaken_p99: u64,
}

/// One schedule of a slow-peers run: what the normal subscribers saw, and
/// the server's peak footprint meanwhile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Phase {
    /// Rounds published.
    pub published: u64,
    /// Events the normal subscribers missed.
    pub lost: u64,
    /// Events received twice.
    pub duplicated: u64,
    /// Normal subscribers whose stream ended.
    pub disconnected: u64,
    /// Publish-to-delivery latency of the normal subscribers, median, ms.
    pub lat_p50_ms: f64,
    /// 99th percentile.
    pub lat_p99_ms: f64,
    /// 99.9th percentile.
    pub lat_p999_ms: f64,
    /// Maximum.
    pub lat_max_ms: f64,
    /// Server CPU seconds.
    pub cpu_s: f64,
    /// Highest RSS sampled, KiB.
    pub rss_max_kib: u64,
    /// Most descriptors sampled.
    pub fds_max: u64,
}

/// One node's share of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeStat {
    /// Its subscriber address.
    pub target: String,
    /// Its process.
    pub pid: u32,
    /// Subscribers connected to it (stalled ones included).
    pub clients: usize,
    /// RSS before any client, KiB.
    pub rss_before_kib: u64,
    /// RSS with its clients connected and idle, KiB.
    pub rss_idle_kib: u64,
    /// RSS at the end, KiB.
    pub rss_after_kib: u64,
    /// CPU seconds (user + system) during the schedule.
    pub cpu_s: f64,
    /// Deliveries to its subscribers.
    pub deliveries: u64,
    /// End-to-end latency of its subscribers, median, ms.
    pub lat_p50_ms: f64,
    /// 99th percentile.
    pub lat_p99_ms: f64,
    /// Maximum.
    pub lat_max_ms: f64,
}
