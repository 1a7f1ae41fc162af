//! `report`: turns the load generator's JSON lines into the tables of
//! `BENCHMARKS.md` (Markdown on stdout) and an SVG plot of latency and
//! memory against client count.
//!
//! For each scenario, client count and number of stalled clients, the latest
//! record of each server is used; ratios are ssehub's figure over the
//! baseline's and the floor's from the same set of runs.
//!
//! `--columns hub,ssehub,baseline` lays the tables out for any servers
//! instead: one column each, then the first one's figure over each other's
//! (plus the hub's own publish-to-write histogram reading, where recorded),
//! the bars for the first one, and the plot of those servers.
//!
//! `--scaleout` reports the scale-out scenarios (`bench/run.sh scaleout`,
//! `scaleout-idle`, `scaleout-rate`) for `hub`, `hub-redis` and
//! `hub-redis3` (or `--columns`): the aims first, then the tables; no plot.
//!
//! `--publish` reports publishing over HTTP (`bench/run.sh publish-topics`,
//! `publish-targeted`, `publish-fairness`) and broadcast, for `hub`,
//! `nchan`, `baseline` and `floor` (or `--columns`) side by side; no plot.
//!
//! `--soak` reports the soak and slow-peers runs (`bench/run.sh soak`,
//! `slowpeers`): each record as tables of its own, in file order; with
//! `--svg`, every soak's RSS and descriptors over time.
//!
//! `--current DIR [--plots OUT]` makes the figures of `BENCHMARKS.md` from
//! every results file in `DIR`: a table per scenario from the newest set of
//! runs with every server, and the latency, cost-vs-clients and
//! cost-vs-rate plots (module `current`, plots in module `plots`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::prelude::*;
use ssehub_bench::args::Args;
use ssehub_bench::record::Record;
use ssehub_bench::soak::Sample;

const PUBLISH: [&str; 4] = ["hub", "nchan", "baseline", "floor"];
// The figures of BENCHMARKS.md and their plots, in files of their own.
#[path = "report/current.rs"]
mod current;
#[path = "report/plots.rs"]
mod plots;

const USAGE: &str = "report [--results bench/results/results.jsonl] [--svg bench/results/plot.svg] [--columns S1,S2,...] [--bar-clients 10000] [--scaleout [--aim-clients 1000]] [--publish] [--soak [--svg FILE]] [--current bench/results [--plots bench/plots]]";
const SCALEOUT: [&str; 3] = ["hub", "hub-redis", "hub-redis3"];
const SERVERS: [&str; 4] = ["ssehub", "ssehub-lean", "baseline", "floor"];

type Key = (String, usize, usize);

/// The text of the results file at `path`; a file that cannot be read ends
/// the report.
fn read_or_exit(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("cannot read {path}: {e}");
        std::process::exit(1);
    })
}

/// The records of a results file's text, one JSON line each; lines that do
/// not parse are skipped.
fn records(text: &str) -> impl Iterator<Item = Record> + '_ {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Record>(l).ok())
}

fn load(path: &str) -> BTreeMap<Key, BTreeMap<String, Record>> {
    let text = read_or_exit(path);
    let mut groups: BTreeMap<Key, BTreeMap<String, Record>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Record>(line) {
            Ok(r) => {
                let key = (r.scenario.clone(), r.clients, r.stalled);
                groups.entry(key).or_default().insert(r.server.clone(), r);
            }
            Err(e) => eprintln!("skipping a bad line: {e}"),
        }
    }
    groups
}

struct Metric {
    name: &'static str,
    get: fn(&Record) -> f64,
    digits: usize,
}

/// A table row: its name, its figure in a record, the figure's decimals.
const fn metric(name: &'static str, get: fn(&Record) -> f64, digits: usize) -> Metric {
    Metric { name, get, digits }
}

// Rows several tables share.

/// Every update once and in order: what went wrong.
const LOST_DUP_REORDERED: Metric = metric(
    "lost + duplicated + reordered",
    |r| (r.lost + r.duplicated + r.out_of_order) as f64,
    0,
);

/// Memory per idle subscriber.
const IDLE_PER_CONN: Metric = metric(
    "idle memory, bytes/connection",
    |r| r.idle_bytes_per_conn,
    0,
);

/// Server CPU per delivery.
const CPU_PER_DELIVERY: Metric =
    metric("server CPU per delivery, us", |r| r.cpu_us_per_delivery, 3);

/// Deliveries per second.
const DELIVERIES_PER_S: Metric = metric("deliveries/s", |r| r.deliveries_per_s, 0);

/// How late the schedule ran at worst.
const SLIP_MAX: Metric = metric("schedule slip max, ms", |r| r.slip_max_ms, 2);

/// How long the subscribers took to connect.
const CONNECT_TIME: Metric = metric("connect time, s", |r| r.connect_s, 1);

/// The hub's own `ssehub_publish_to_write_seconds` reading (the upper bound
/// of the bucket holding quantile `key`), from its stats' `extra`.
fn hub_p2w(r: &Record, key: &str) -> f64 {
    extra2(r, "publish_to_write", key)
}

/// The rows of `scenario`; `hub_rows` adds the hub's own histogram.
fn metrics(scenario: &str, hub_rows: bool) -> Vec<Metric> {
    let m = metric;
    let mut rows = metrics_common(scenario);
    if hub_rows && matches!(scenario, "broadcast" | "isolation" | "isolation-overflow") {
        let at = rows.len().min(4);
        rows.insert(
            at,
            m(
                "hub histogram publish-to-write p99 (bucket bound), ms",
                |r| hub_p2w(r, "p99_le_ms"),
                2,
            ),
        );
        rows.insert(
            at,
            m(
                "hub histogram publish-to-write p50 (bucket bound), ms",
                |r| hub_p2w(r, "p50_le_ms"),
                2,
            ),
        );
    }
    rows
}

/// A figure from the hub's stats' `extra` (node 0's), `section.key`.
fn extra2(r: &Record, section: &str, key: &str) -> f64 {
    r.server_extra
        .get(section)
        .and_then(|h| h.get(key))
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(f64::NAN)
}

/// Calls of Redis command `cmd` per publish; NaN without a Redis.
fn redis_calls(r: &Record, cmd: &str) -> f64 {
    r.redis.as_ref().map_or(f64::NAN, |d| {
        *d.calls.get(cmd).unwrap_or(&0) as f64 / r.publishes.max(1) as f64
    })
}

/// A figure that exists only with a Redis behind the nodes.
fn with_redis(r: &Record, v: f64) -> f64 {
    if r.redis.is_some() { v } else { f64::NAN }
}

/// A figure that exists only with several nodes.
fn with_nodes(r: &Record, v: f64) -> f64 {
    if r.nodes > 1 { v } else { f64::NAN }
}

fn scaleout_metrics() -> Vec<Metric> {
    let m = metric;
    vec![
        DELIVERIES_PER_S,
        m("end-to-end p50, ms (all subscribers)", |r| r.lat_p50_ms, 2),
        m("end-to-end p99, ms (all subscribers)", |r| r.lat_p99_ms, 2),
        m(
            "publisher's node p50, ms",
            |r| with_nodes(r, r.lat_same_p50_ms),
            2,
        ),
        m(
            "publisher's node p99, ms",
            |r| with_nodes(r, r.lat_same_p99_ms),
            2,
        ),
        m(
            "other nodes p50, ms",
            |r| with_nodes(r, r.lat_other_p50_ms),
            2,
        ),
        m(
            "other nodes p99, ms",
            |r| with_nodes(r, r.lat_other_p99_ms),
            2,
        ),
        m(
            "append (Running::publish) p50, ms",
            |r| extra2(r, "append_ms", "p50"),
            3,
        ),
        m(
            "append (Running::publish) p99, ms",
            |r| extra2(r, "append_ms", "p99"),
            3,
        ),
        SLIP_MAX,
        LOST_DUP_REORDERED,
        m(
            "hub CPU per delivery, us (all nodes)",
            |r| r.cpu_us_per_delivery,
            3,
        ),
        m(
            "hub CPU per publish, us (all nodes)",
            |r| r.cpu_s * 1e6 / r.publishes.max(1) as f64,
            1,
        ),
        m(
            "Redis CPU per publish, us",
            |r| with_redis(r, r.redis_cpu_us_per_publish),
            1,
        ),
        m(
            "Redis requests read per publish (round trips)",
            |r| with_redis(r, r.redis_reads_per_publish),
            2,
        ),
        m(
            "Redis replies written per publish",
            |r| {
                with_redis(
                    r,
                    r.redis.as_ref().map_or(0, |d| d.writes) as f64 / r.publishes.max(1) as f64,
                )
            },
            2,
        ),
        m(
            "Redis EVALSHA per publish",
            |r| redis_calls(r, "evalsha"),
            2,
        ),
        m("Redis XREAD per publish", |r| redis_calls(r, "xread"), 2),
        m(
            "Redis XADD per publish (in the script)",
            |r| redis_calls(r, "xadd"),
            2,
        ),
        m(
            "Redis calls per publish, all (scripts' inner calls included)",
            |r| with_redis(r, r.redis_calls_per_publish),
            2,
        ),
    ]
}

fn metrics_common(scenario: &str) -> Vec<Metric> {
    let m = metric;
    match scenario {
        "scaleout-idle" => vec![
            m(
                "idle memory, bytes/subscriber (RSS of all nodes)",
                |r| r.idle_bytes_per_conn,
                0,
            ),
            m(
                "RSS before, KiB (all nodes)",
                |r| r.rss_before_kib as f64,
                0,
            ),
            m(
                "RSS with the subscribers, KiB (all nodes)",
                |r| r.rss_idle_kib as f64,
                0,
            ),
            CONNECT_TIME,
        ],
        s if s == "scaleout" || s.starts_with("scaleout-rate") => scaleout_metrics(),
        s if s.starts_with("publish-") => publish_metrics(s),
        "idle" => vec![IDLE_PER_CONN, CONNECT_TIME],
        "broadcast" | "isolation" | "isolation-overflow" => vec![
            m("end-to-end p50, ms", |r| r.lat_p50_ms, 2),
            m("end-to-end p99, ms", |r| r.lat_p99_ms, 2),
            m("end-to-end max, ms", |r| r.lat_max_ms, 2),
            m(
                "server publish-to-last-write p99, ms",
                // The lean server owns its sockets: not measured there.
                |r| {
                    if r.server_lat_p99_ms > 0.0 {
                        r.server_lat_p99_ms
                    } else {
                        f64::NAN
                    }
                },
                2,
            ),
            SLIP_MAX,
            m(
                "broker: slow-client disconnects + dropped",
                |r| {
                    let n = |k: &str| r.server_extra.get(k).and_then(serde_json::Value::as_f64);
                    match (n("slow_disconnects"), n("dropped")) {
                        (Some(a), Some(b)) => a + b,
                        _ => f64::NAN,
                    }
                },
                0,
            ),
            LOST_DUP_REORDERED,
            CPU_PER_DELIVERY,
            IDLE_PER_CONN,
        ],
        "churn" => vec![
            m("connect+disconnect cycles/s", |r| r.churn_per_s, 0),
            m("cycle p99, ms", |r| r.churn_p99_ms, 2),
            m("server CPU per cycle, us", |r| r.cpu_us_per_churn, 1),
            m("RSS before churn, KiB", |r| r.rss_idle_kib as f64, 0),
            m("RSS peak, KiB", |r| r.churn_rss_peak_kib as f64, 0),
            m("RSS after, KiB", |r| r.rss_after_kib as f64, 0),
            m(
                "subscribers after (want = clients)",
                |r| r.churn_subscribers_after as f64,
                0,
            ),
        ],
        _ => vec![
            DELIVERIES_PER_S,
            CPU_PER_DELIVERY,
            m("end-to-end p50, ms", |r| r.lat_p50_ms, 2),
            m("end-to-end p99, ms", |r| r.lat_p99_ms, 2),
            LOST_DUP_REORDERED,
            m("disconnected", |r| r.disconnected as f64, 0),
        ],
    }
}

/// A figure; NaN stands for "not measured".
fn cell(v: Option<f64>, digits: usize) -> String {
    v.filter(|v| !v.is_nan())
        .map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 && !a.is_nan() && !b.is_nan() => format!("{:.2}x", a / b),
        _ => "–".into(),
    }
}

/// The order of the tables; other scenarios follow ([`table_order`], and
/// by name in `--current`).
const ORDER: [&str; 12] = [
    "idle",
    "broadcast",
    "saturation",
    "targeted",
    "churn",
    "isolation",
    "isolation-overflow",
    "publish-topics",
    "publish-targeted",
    "publish-fairness",
    "scaleout-idle",
    "scaleout",
];

/// Where a scenario's rows go: by their scenario's place in `order` (those
/// not in it last), then client count and stalled clients.
fn table_order(order: &[&str], key: &Key) -> (usize, usize, usize) {
    let rank = order.iter().position(|o| *o == key.0).unwrap_or(99);
    (rank, key.1, key.2)
}

/// A row's first cell: the client count, and the stalled clients if any.
fn clients_label(clients: usize, stalled: usize) -> String {
    if stalled > 0 {
        format!("{clients} + {stalled} stalled")
    } else {
        clients.to_string()
    }
}

/// A table's head and rule (no line break after): clients, metric, a
/// column per server and, with `ratios`, the first server's figure over
/// each other's.
fn table_head<S: AsRef<str>>(servers: &[S], ratios: bool) -> String {
    let mut head = String::from("| clients | metric |");
    let mut rule = String::from("|---|---|");
    for s in servers {
        let _ = write!(head, " {} |", s.as_ref());
        rule += "---:|";
    }
    if ratios {
        let first = servers[0].as_ref();
        for s in &servers[1..] {
            let _ = write!(head, " {first} / {} |", s.as_ref());
            rule += "---:|";
        }
    }
    head + "\n" + &rule
}

/// A table row (no line break after) for [`table_head`]'s columns: `label`,
/// the metric, its figure in each server's record (`record(server)`) and,
/// with `ratios`, the first server's over each other's.
fn table_row<'r, S: AsRef<str>>(
    label: &str,
    m: &Metric,
    servers: &[S],
    ratios: bool,
    record: impl Fn(&str) -> Option<&'r Record>,
) -> String {
    let v = |s: &S| record(s.as_ref()).map(|r| (m.get)(r));
    let mut row = format!("| {label} | {} |", m.name);
    for s in servers {
        let _ = write!(row, " {} |", cell(v(s), m.digits));
    }
    if ratios {
        for s in &servers[1..] {
            let _ = write!(row, " {} |", ratio(v(&servers[0]), v(s)));
        }
    }
    row
}

/// The 1-minute load averages `records` recorded at their start.
fn loads_before<'r>(records: impl IntoIterator<Item = &'r Record>) -> Vec<f64> {
    records
        .into_iter()
        .filter_map(|r| r.load_before.split(' ').next()?.parse().ok())
        .collect()
}

/// `min to max` of `loads`.
fn load_range(loads: &[f64]) -> String {
    let min = loads.iter().copied().fold(f64::INFINITY, f64::min);
    let max = loads.iter().copied().fold(0.0, f64::max);
    format!("{min:.2} to {max:.2}")
}

/// The line under the tables: the load average at the start of `records`.
fn load_note<'r>(records: impl IntoIterator<Item = &'r Record>) -> String {
    format!(
        "\nLoad average (1 min) at the start of the runs: {}.\n",
        load_range(&loads_before(records))
    )
}

fn tables(groups: &BTreeMap<Key, BTreeMap<String, Record>>) -> String {
    let mut out = String::new();
    let mut keys: Vec<&Key> = groups.keys().collect();
    // The single-process scenarios, as before there were others.
    keys.sort_by_key(|k| table_order(&ORDER[..6], k));
    let mut current = String::new();
    for key in keys {
        let (scenario, clients, stalled) = key;
        let recs = &groups[key];
        if *scenario != current {
            current.clone_from(scenario);
            let _ = writeln!(out, "\n### {scenario}\n");
            let _ = writeln!(
                out,
                "| clients | metric | ssehub (axum) | ssehub-lean | baseline | floor | ssehub / baseline | ssehub / floor | lean / baseline | lean / floor |"
            );
            let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        }
        let label = clients_label(*clients, *stalled);
        for m in metrics(scenario, false) {
            let v = |s: &str| recs.get(s).map(|r| (m.get)(r));
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                m.name,
                cell(v("ssehub"), m.digits),
                cell(v("ssehub-lean"), m.digits),
                cell(v("baseline"), m.digits),
                cell(v("floor"), m.digits),
                ratio(v("ssehub"), v("baseline")),
                ratio(v("ssehub"), v("floor")),
                ratio(v("ssehub-lean"), v("baseline")),
                ratio(v("ssehub-lean"), v("floor")),
            );
        }
    }
    out + &load_note(groups.values().flat_map(|g| g.values()))
}

/// The tables for `servers`: a column each, then the first one's figure
/// over each other's.
fn tables_for(groups: &BTreeMap<Key, BTreeMap<String, Record>>, servers: &[&str]) -> String {
    let mut out = String::new();
    let mut keys: Vec<&Key> = groups
        .iter()
        .filter(|(_, recs)| servers.iter().any(|s| recs.contains_key(*s)))
        .map(|(k, _)| k)
        .collect();
    keys.sort_by_key(|k| table_order(&ORDER, k));
    let mut current = String::new();
    for key in keys {
        let (scenario, clients, stalled) = key;
        let recs = &groups[key];
        if *scenario != current {
            current.clone_from(scenario);
            let _ = writeln!(out, "\n### {scenario}\n");
            let _ = writeln!(out, "{}", table_head(servers, true));
        }
        let label = clients_label(*clients, *stalled);
        for m in metrics(scenario, servers.contains(&"hub")) {
            let row = table_row(&label, &m, servers, true, |s| recs.get(s));
            let _ = writeln!(out, "{row}");
        }
    }
    out + &load_note(
        groups
            .values()
            .flat_map(|g| servers.iter().filter_map(|s| g.get(*s))),
    )
}

/// The title and head of a table of goals (`what`: aims, bars), each with
/// what was measured and a verdict.
fn verdicts_head(title: &str, what: &str) -> String {
    format!("\n### {title}\n\n| {what} | measured | verdict |\n|---|---|---|\n")
}

/// A row of [`verdicts_head`]'s table; `None` for a goal not measured.
fn verdict_row(goal: &str, measured: &str, pass: Option<bool>) -> String {
    let verdict = match pass {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "not measured",
    };
    format!("| {goal} | {measured} | {verdict} |\n")
}

/// The scale-out aims, at `n` subscribers (`bench/run.sh scaleout`).
fn scaleout_aims(groups: &BTreeMap<Key, BTreeMap<String, Record>>, n: usize) -> String {
    let mut out = verdicts_head(&format!("Scale-out aims, {n} subscribers"), "aim");
    let mut row = |aim: &str, measured: String, pass: Option<bool>| {
        out += &verdict_row(aim, &measured, pass);
    };
    let mem = get(groups, "scaleout", n, 0, "hub");
    let r3 = get(groups, "scaleout", n, 0, "hub-redis3");
    for (q, name) in [("p50", "median"), ("p99", "p99")] {
        let pick = |r: &Record, other: bool| match (q, other) {
            ("p50", false) => r.lat_p50_ms,
            ("p50", true) => r.lat_other_p50_ms,
            (_, false) => r.lat_p99_ms,
            (_, true) => r.lat_other_p99_ms,
        };
        let x = mem.zip(r3).map(|(m, r)| pick(r, true) / pick(m, false));
        row(
            &format!("other-node {name} <= 1.5x the single-node memory hub's"),
            x.map_or("–".into(), |x| {
                format!(
                    "{x:.2}x ({:.2} vs {:.2} ms)",
                    r3.map_or(0.0, |r| pick(r, true)),
                    mem.map_or(0.0, |r| pick(r, false))
                )
            }),
            x.map(|x| x <= 1.5),
        );
    }
    for server in ["hub-redis", "hub-redis3"] {
        let r = get(groups, "scaleout", n, 0, server);
        // One append, and at most one batched read per node per publish:
        // never one per subscriber or topic. 5% on top for what a reader
        // sends when nothing arrives (its blocking read timing out) and
        // connection upkeep.
        let limit = r.map(|r| (1.0 + r.nodes.max(1) as f64) * 1.05);
        row(
            &format!("{server}: Redis round trips per publish <= 1 append + 1 read per node"),
            r.zip(limit).map_or("–".into(), |(r, l)| {
                format!(
                    "{:.2} (limit {l:.2}; EVALSHA {:.2}, XREAD {:.2}; {} subscribers)",
                    r.redis_reads_per_publish,
                    redis_calls(r, "evalsha"),
                    redis_calls(r, "xread"),
                    r.connected
                )
            }),
            r.zip(limit).map(|(r, l)| {
                r.redis.is_some() && r.redis_reads_per_publish <= l && r.lost + r.out_of_order == 0
            }),
        );
    }
    out
}

fn get<'a>(
    groups: &'a BTreeMap<Key, BTreeMap<String, Record>>,
    scenario: &str,
    clients: usize,
    stalled: usize,
    server: &str,
) -> Option<&'a Record> {
    groups
        .get(&(scenario.to_owned(), clients, stalled))?
        .get(server)
}

fn bars(groups: &BTreeMap<Key, BTreeMap<String, Record>>, n: usize, server: &str) -> String {
    let mut out = verdicts_head(&format!("The bar: {server}, {n} clients"), "bar");
    let mut row = |bar: &str, measured: String, pass: Option<bool>| {
        out += &verdict_row(bar, &measured, pass);
    };
    let idle = get(groups, "idle", n, 0, server);
    row(
        "idle memory <= 8 KiB per connection",
        idle.map_or("–".into(), |r| format!("{:.0} B", r.idle_bytes_per_conn)),
        idle.map(|r| r.idle_bytes_per_conn <= 8192.0),
    );
    let (s, b) = (
        get(groups, "saturation", n, 0, server),
        get(groups, "saturation", n, 0, "baseline"),
    );
    let sat = s
        .zip(b)
        .map(|(s, b)| s.cpu_us_per_delivery / b.cpu_us_per_delivery);
    row(
        "saturation CPU per delivery <= 0.4x baseline",
        sat.map_or("–".into(), |x| {
            format!(
                "{x:.2}x ({:.3} vs {:.3} us)",
                s.map_or(0.0, |r| r.cpu_us_per_delivery),
                b.map_or(0.0, |r| r.cpu_us_per_delivery)
            )
        }),
        sat.map(|x| x <= 0.4),
    );
    let (s, b) = (
        get(groups, "broadcast", n, 0, server),
        get(groups, "broadcast", n, 0, "baseline"),
    );
    let bc = s.zip(b).map(|(s, b)| s.lat_p99_ms / b.lat_p99_ms);
    let clean =
        s.map(|r| r.lost + r.duplicated + r.out_of_order + r.disconnected == 0 && r.published > 0);
    row(
        "broadcast 10 ev/s: nothing lost, p99 <= 0.65x baseline",
        bc.map_or("–".into(), |x| {
            format!(
                "{x:.2}x ({:.1} vs {:.1} ms), lost {}",
                s.map_or(0.0, |r| r.lat_p99_ms),
                b.map_or(0.0, |r| r.lat_p99_ms),
                s.map_or(0, |r| r.lost)
            )
        }),
        bc.zip(clean).map(|(x, c)| x <= 0.65 && c),
    );
    let (with, without) = (
        get(groups, "isolation", n, 1, server),
        get(groups, "isolation", n, 0, server),
    );
    let iso = with
        .zip(without)
        .map(|(w, wo)| w.lat_p99_ms / wo.lat_p99_ms);
    row(
        "isolation: p99 with one stalled client within 10%",
        iso.map_or("–".into(), |x| {
            format!(
                "{x:.2}x ({:.1} vs {:.1} ms)",
                with.map_or(0.0, |r| r.lat_p99_ms),
                without.map_or(0.0, |r| r.lat_p99_ms)
            )
        }),
        iso.map(|x| x <= 1.10),
    );
    let (small, big) = (
        get(groups, "saturation", 1000, 0, server),
        get(groups, "saturation", n, 0, server),
    );
    let growth = small
        .zip(big)
        .map(|(a, b)| b.cpu_us_per_delivery / a.cpu_us_per_delivery);
    row(
        "CPU per delivery flat or falling from 1k to 10k (within 10%)",
        growth.map_or("–".into(), |x| {
            format!(
                "{x:.2}x ({:.3} -> {:.3} us)",
                small.map_or(0.0, |r| r.cpu_us_per_delivery),
                big.map_or(0.0, |r| r.cpu_us_per_delivery)
            )
        }),
        growth.map(|x| x <= 1.10),
    );
    out
}

/// One chart: where, which scenario, title, y label, and the value plotted.
type Panel<'r, 'b> = (
    &'r DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    &'static str,
    &'static str,
    &'static str,
    fn(&Record) -> f64,
);

fn plot(
    groups: &BTreeMap<Key, BTreeMap<String, Record>>,
    path: &str,
    servers: &[&str],
) -> Result<(), Box<dyn std::error::Error>> {
    let series = |scenario: &str, f: fn(&Record) -> f64, server: &str| -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> = groups
            .iter()
            .filter(|((s, _, stalled), _)| s == scenario && *stalled == 0)
            .filter_map(|((_, n, _), recs)| recs.get(server).map(|r| (*n as f64, f(r))))
            .filter(|(_, y)| *y > 0.0)
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts
    };
    let root = SVGBackend::new(path, (1100, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    let colors = [
        RGBColor(200, 40, 40),
        RGBColor(230, 140, 20),
        RGBColor(40, 90, 200),
        RGBColor(60, 160, 60),
        RGBColor(130, 60, 170),
    ];
    let panels: [Panel<'_, '_>; 2] = [
        (
            &left,
            "broadcast",
            "broadcast 10 ev/s: end-to-end p99 (ms)",
            "p99 ms",
            |r| r.lat_p99_ms,
        ),
        (
            &right,
            "idle",
            "idle memory per connection (KiB)",
            "KiB",
            |r| r.idle_bytes_per_conn / 1024.0,
        ),
    ];
    for (area, scenario, title, ylabel, f) in panels {
        let all: Vec<(f64, f64)> = servers
            .iter()
            .flat_map(|s| series(scenario, f, s))
            .collect();
        let xmax = all.iter().map(|p| p.0).fold(1000.0, f64::max) * 1.3;
        let ymax = all.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((50f64..xmax).log_scale(), 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("clients")
            .y_desc(ylabel)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()?;
        for (server, color) in servers.iter().zip(colors.iter().cycle().copied()) {
            let pts = series(scenario, f, server);
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(*server)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart.draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// `--soak`: every soak and slow-peers record of the results file, in
/// order, as tables: the soak's deliveries, churn and resumes, and how its
/// RSS and descriptors moved; the slow-peers runs' normal subscribers and
/// the hub's footprint without and with the slow peers.
fn soak_tables(path: &str) -> String {
    let text = read_or_exit(path);
    let records: Vec<Record> = records(&text).collect();
    let mut out = String::new();
    for r in records.iter().filter(|r| r.mode == "soak") {
        let seconds = r.samples.last().map_or(0.0, |s| s.t_s);
        let _ = writeln!(
            out,
            "\n#### Soak: {} ({} steady subscribers, {} updates, {:.0} s; load {} -> {})\n",
            r.server, r.clients, r.published, seconds, r.load_before, r.load_after
        );
        let _ = writeln!(out, "| | |\n|---|---:|");
        let rows: [(&str, String); 9] = [
            (
                "steady subscribers: lost / duplicated / out of order / dropped",
                format!(
                    "{} / {} / {} / {}",
                    r.lost, r.duplicated, r.out_of_order, r.disconnected
                ),
            ),
            (
                "steady subscribers' latency p50 / p99 / max, ms",
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    r.lat_p50_ms, r.lat_p99_ms, r.lat_max_ms
                ),
            ),
            (
                "churning streams (per second)",
                format!("{} ({:.1})", r.churn_cycles, r.churn_per_s),
            ),
            ("of which resumed with Last-Event-ID", r.resumes.to_string()),
            (
                "events the churning streams received",
                r.churn_events.to_string(),
            ),
            (
                "missed / repeated by them, resumes included",
                format!("{} / {}", r.churn_gaps, r.churn_duplicated),
            ),
            (
                "subscribers the hub holds after the churn (steady)",
                format!("{} ({})", r.churn_subscribers_after, r.connected),
            ),
            (
                "descriptors before / after the run",
                format!("{} / {}", r.fds_before, r.fds_after),
            ),
            ("hub CPU, s", format!("{:.1}", r.cpu_s)),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "| {name} | {value} |");
        }
        let _ = writeln!(
            out,
            "\n| after {:.0} s of warm-up | first third | last third | growth | allowed | slope per hour | |\n|---|---:|---:|---:|---:|---:|---|",
            r.warmup_s
        );
        for (name, trend, scale, unit) in [
            ("RSS", r.rss_trend, 1024.0, " MiB"),
            ("descriptors", r.fd_trend, 1.0, ""),
        ] {
            let Some(t) = trend else { continue };
            let _ = writeln!(
                out,
                "| {name} | {:.1}{unit} | {:.1}{unit} | {:+.1}{unit} | {:.1}{unit} | {:+.1}{unit} | {} |",
                t.first_mean / scale,
                t.last_mean / scale,
                t.growth / scale,
                t.tolerance / scale,
                t.slope_per_h / scale,
                if t.flat { "flat" } else { "**grows**" }
            );
        }
    }
    for r in records.iter().filter(|r| r.mode == "peers") {
        let (Some(a), Some(b)) = (&r.without, &r.with) else {
            continue;
        };
        let _ = writeln!(
            out,
            "\n#### Slow peers: {} ({}; {} normal subscribers, {} updates per schedule; load {} -> {})\n",
            r.server, r.scenario, r.clients, b.published, r.load_before, r.load_after
        );
        let _ = writeln!(out, "| | without | with |\n|---|---:|---:|");
        let life = format!(
            "{} (opened {}, closed by the hub {} after p50 {:.1} s, max {:.1} s)",
            r.slowloris,
            r.slowloris_opened,
            r.slowloris_closed,
            r.slowloris_life_p50_s,
            r.slowloris_life_max_s
        );
        let hub = |key: &str| {
            r.server_extra
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .map_or_else(|| "?".to_owned(), |v| v.to_string())
        };
        let rows: [(&str, String, String); 9] = [
            ("slow-loris heads", "0".into(), life),
            (
                "never-reading subscribers",
                "0".into(),
                r.stalled.to_string(),
            ),
            (
                "normal subscribers' latency p50 / p99 / p99.9, ms",
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    a.lat_p50_ms, a.lat_p99_ms, a.lat_p999_ms
                ),
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    b.lat_p50_ms, b.lat_p99_ms, b.lat_p999_ms
                ),
            ),
            (
                "max, ms",
                format!("{:.1}", a.lat_max_ms),
                format!("{:.1}", b.lat_max_ms),
            ),
            (
                "lost / duplicated / dropped",
                format!("{} / {} / {}", a.lost, a.duplicated, a.disconnected),
                format!("{} / {} / {}", b.lost, b.duplicated, b.disconnected),
            ),
            (
                "hub RSS, most sampled, MiB",
                format!("{:.1}", a.rss_max_kib as f64 / 1024.0),
                format!(
                    "{:.1} ({:.1} with the peers idle)",
                    b.rss_max_kib as f64 / 1024.0,
                    r.rss_peers_kib as f64 / 1024.0
                ),
            ),
            (
                "hub descriptors, most sampled",
                a.fds_max.to_string(),
                format!(
                    "{} ({} with the peers idle, {} at the end)",
                    b.fds_max, r.fds_peers, r.fds_after
                ),
            ),
            (
                "hub's slow-client disconnects / dropped updates, whole run",
                String::new(),
                format!("{} / {}", hub("slow_disconnects"), hub("dropped")),
            ),
            (
                "hub CPU during the schedule, s",
                format!("{:.1}", a.cpu_s),
                format!("{:.1}", b.cpu_s),
            ),
        ];
        for (name, without, with) in rows {
            let _ = writeln!(out, "| {name} | {without} | {with} |");
        }
    }
    out
}

/// A panel of the soak plot: where, its title, the value of a sample.
type SoakPanel<'a, 'b> = (
    &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    &'a str,
    &'a dyn Fn(&Sample) -> f64,
);

/// `--soak --svg FILE`: every soak record's RSS and descriptors over time,
/// one panel each, one line per run (named by its server arguments), the
/// first run's warm-up shaded.
fn soak_plot(path: &str, svg: &str) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let runs: Vec<Record> = records(&text)
        .filter(|r| r.mode == "soak" && !r.samples.is_empty())
        .collect();
    let Some(first) = runs.first() else {
        return Err("no soak record with samples".into());
    };
    let root = SVGBackend::new(svg, (1100, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    let end = runs
        .iter()
        .filter_map(|r| r.samples.last())
        .map(|s| s.t_s / 60.0)
        .fold(0.1, f64::max);
    let rss = format!("hub RSS (MiB), {} subscribers + churn", first.clients);
    let rss_of = |s: &Sample| s.rss_kib as f64 / 1024.0;
    let fds_of = |s: &Sample| s.fds as f64;
    let panels: [SoakPanel<'_, '_>; 2] = [
        (&left, &rss, &rss_of),
        (&right, "hub open descriptors", &fds_of),
    ];
    let colors = [
        RGBColor(40, 90, 200),
        RGBColor(200, 40, 40),
        RGBColor(60, 160, 60),
        RGBColor(130, 60, 170),
    ];
    for (area, title, value) in panels {
        let top = runs
            .iter()
            .flat_map(|r| r.samples.iter().map(value))
            .fold(0.0, f64::max)
            * 1.15
            + 1.0;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..end, 0.0..top)?;
        chart.configure_mesh().x_desc("minutes").draw()?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, 0.0), ((first.warmup_s / 60.0).min(end), top)],
            RGBColor(230, 230, 230).filled(),
        )))?;
        for (k, r) in runs.iter().enumerate() {
            let color = colors[k % colors.len()];
            let pts: Vec<(f64, f64)> = r.samples.iter().map(|s| (s.t_s / 60.0, value(s))).collect();
            let label = r
                .note
                .split_once("(server args: ")
                .map_or("defaults", |(_, args)| args.trim_end_matches(')'))
                .to_owned();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn main() {
    let args = Args::from_env(USAGE);
    let results = args.opt("results").unwrap_or("bench/results/results.jsonl");
    let svg = args.opt("svg").unwrap_or("bench/results/plot.svg");
    let n: usize = args.get("bar-clients", 10_000);
    if let Some(dir) = args.opt("current") {
        current_main(dir, args.opt("plots"));
        return;
    }
    if args.flag("soak") {
        print!("{}", soak_tables(results));
        if let Some(svg) = args.opt("svg") {
            if let Err(e) = soak_plot(results, svg) {
                eprintln!("plot failed: {e}");
                std::process::exit(1);
            }
            eprintln!("wrote {svg}");
        }
        return;
    }
    let groups = load(results);
    let columns: Vec<&str> = args
        .opt("columns")
        .map(|c| c.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if args.flag("publish") {
        let servers: &[&str] = if columns.is_empty() {
            &PUBLISH
        } else {
            &columns
        };
        print!("{}", publish_tables(&groups, servers));
        return;
    }
    if args.flag("scaleout") {
        let servers: &[&str] = if columns.is_empty() {
            &SCALEOUT
        } else {
            &columns
        };
        print!("{}", scaleout_aims(&groups, args.get("aim-clients", 1000)));
        print!("{}", tables_for(&groups, servers));
        return;
    }
    let servers: &[&str] = if columns.is_empty() {
        print!("{}", bars(&groups, n, "ssehub"));
        print!("{}", bars(&groups, n, "ssehub-lean"));
        print!("{}", tables(&groups));
        &SERVERS
    } else {
        print!("{}", bars(&groups, n, columns[0]));
        print!("{}", tables_for(&groups, &columns));
        &columns
    };
    if let Err(e) = plot(&groups, svg, servers) {
        eprintln!("plot failed: {e}");
        std::process::exit(1);
    }
    eprintln!("wrote {svg}");
}

/// The rows of a publishing-over-HTTP scenario (`publish-*`), or of
/// broadcast, in `--publish`.
fn publish_metrics(scenario: &str) -> Vec<Metric> {
    let m = metric;
    if scenario == "broadcast" {
        return vec![
            m("publish-to-delivery p50, ms", |r| r.lat_p50_ms, 2),
            m("publish-to-delivery p99, ms", |r| r.lat_p99_ms, 2),
            m("publish-to-delivery max, ms", |r| r.lat_max_ms, 2),
            CPU_PER_DELIVERY,
            LOST_DUP_REORDERED,
            IDLE_PER_CONN,
            m(
                "published over HTTP (1) or in process (0)",
                |r| f64::from(u8::from(r.publish_via == "http")),
                0,
            ),
        ];
    }
    vec![
        m("publishes/s acknowledged", |r| r.publishes_per_s, 0),
        m("server CPU per publish, us", |r| r.cpu_us_per_publish, 1),
        m("ack p50, ms", |r| r.ack_p50_ms, 3),
        m("ack p99, ms", |r| r.ack_p99_ms, 3),
        m("ack max, ms", |r| r.ack_max_ms, 3),
        m("publish-to-delivery p50, ms", |r| r.lat_p50_ms, 3),
        m("publish-to-delivery p99, ms", |r| r.lat_p99_ms, 3),
        m("overtaken by, max", |r| r.overtaken_max as f64, 0),
        m("overtaken by, p99", |r| r.overtaken_p99 as f64, 0),
        DELIVERIES_PER_S,
        m("lost + duplicated", |r| (r.lost + r.duplicated) as f64, 0),
        // With several publishes in flight, some reordering is the
        // concurrency itself; "overtaken by" says how much.
        m(
            "deliveries after a later update",
            |r| r.out_of_order as f64,
            0,
        ),
        m("publish errors", |r| r.publish_errors as f64, 0),
        m("publish slip max (fixed rate), ms", |r| r.slip_max_ms, 2),
    ]
}

/// `--publish`: the publishing-over-HTTP scenarios and broadcast, a column
/// per server, then the first one's figure over each other's.
fn publish_tables(groups: &BTreeMap<Key, BTreeMap<String, Record>>, servers: &[&str]) -> String {
    let mut out = String::new();
    let mut keys: Vec<&Key> = groups
        .iter()
        .filter(|(k, recs)| {
            (k.0.starts_with("publish-") || k.0 == "broadcast")
                && servers.iter().any(|s| recs.contains_key(*s))
        })
        .map(|(k, _)| k)
        .collect();
    keys.sort_by_key(|k| (k.0 == "broadcast", k.0.clone(), k.1, k.2));
    let mut current = String::new();
    // How each run published, said under its table.
    let mut notes = String::new();
    for key in keys {
        let (scenario, clients, _) = key;
        let recs = &groups[key];
        if *scenario != current {
            current.clone_from(scenario);
            out += &std::mem::take(&mut notes);
            let _ = writeln!(out, "\n### {scenario}\n");
            let _ = writeln!(out, "{}", table_head(servers, true));
        }
        let label = clients.to_string();
        for m in publish_metrics(scenario) {
            let row = table_row(&label, &m, servers, true, |s| recs.get(s));
            let _ = writeln!(out, "{row}");
        }
        let how: Vec<String> = servers
            .iter()
            .filter_map(|s| recs.get(*s).map(|r| (s, r)))
            .filter(|(_, r)| r.publish_via == "http")
            .map(|(s, r)| {
                let rate = if r.publish_rate > 0.0 {
                    format!("{} publishes/s", r.publish_rate)
                } else {
                    "as fast as acknowledged".to_owned()
                };
                format!("{s} ({} in flight, {rate})", r.publish_in_flight)
            })
            .collect();
        if !how.is_empty() {
            let _ = write!(
                notes,
                "\n{clients} clients: the load generator published over HTTP to {}.\n",
                how.join(", ")
            );
        }
    }
    out + &notes
}

/// `--current DIR [--plots OUT]` (module `current`).
fn current_main(dir: &str, plots: Option<&str>) {
    match current::run(std::path::Path::new(dir), plots.map(std::path::Path::new)) {
        Ok(written) => {
            for path in written {
                eprintln!("wrote {}", path.display());
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
