//! `report --current DIR [--plots OUT]`: the figures of `BENCHMARKS.md`.
//!
//! Reads every `*.jsonl` in `DIR` and, for each scenario, takes the set of
//! runs that one file holds of it: the set with the most servers, the newest
//! of those if several have as many (so a later re-run of one server does
//! not replace a table of every peer; it is named under the table). Prints
//! one Markdown table per scenario, every server side by side, with the
//! file, the revisions and the dates the runs record. With `--plots OUT`
//! it writes the plots ([`super::plots`]) into `OUT`:
//!
//! - `latency-<scenario>.svg` for [`LATENCY`]: publish-to-delivery by
//!   percentile, a panel per client count, a line per server;
//! - `cost-vs-clients.svg`: CPU per delivery in `broadcast` and
//!   `saturation`, and idle memory per subscriber, against client count;
//! - `cost-vs-rate.svg`: CPU per publish of the servers and of Redis
//!   against the publish rate, from scenarios named `<family>-rate-<N>`
//!   (`bench/run.sh scaleout-rate`, `RATES="…"`), one line per server and
//!   client count.
//!
//! Soak and slow-peer runs are left to `report --soak`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ssehub_bench::record::Record;

use super::ORDER;
use super::plots::{self, Line, Panel, PlotError};

/// Scenarios whose latency is plotted by percentile; in the others it is
/// queueing in the flow-control window (`saturation`, `targeted`).
pub const LATENCY: [&str; 3] = ["broadcast", "isolation", "scaleout"];

/// The order of the columns; other servers follow by name.
const SERVER_ORDER: [&str; 7] = [
    "ssehub-lean",
    "hub",
    "ssehub",
    "baseline",
    "floor",
    "hub-redis",
    "hub-redis3",
];

/// Scenarios of one-off experiments, kept in the history only:
/// `churn-rounds` ran three churn rounds against one server process.
const SKIP: [&str; 1] = ["churn-rounds"];

/// Why the report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CurrentError {
    /// A results directory or file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A plot could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// What was written.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error("plotting {name}: {source}")]
    Plot {
        /// The plot's file name.
        name: String,
        /// Why it failed.
        source: PlotError,
    },
}

/// The runs of one scenario that one results file holds: the newest per
/// server, client count and stalled clients.
#[derive(Debug, Clone, Default)]
pub struct Set {
    /// The file, as named in the report.
    pub file: String,
    /// The scenario.
    pub scenario: String,
    /// Its records, oldest first.
    pub records: Vec<Record>,
}

impl Set {
    /// The servers measured, in column order.
    #[must_use]
    pub fn servers(&self) -> Vec<String> {
        let names: BTreeSet<&str> = self.records.iter().map(|r| r.server.as_str()).collect();
        let mut out: Vec<String> = SERVER_ORDER
            .iter()
            .filter(|s| names.contains(**s))
            .map(|s| (*s).to_owned())
            .collect();
        out.extend(
            names
                .iter()
                .filter(|s| !SERVER_ORDER.contains(s))
                .map(|s| (*s).to_owned()),
        );
        out
    }

    /// Unix time of its newest run.
    #[must_use]
    pub fn newest(&self) -> u64 {
        self.records.iter().map(|r| r.unix_time).max().unwrap_or(0)
    }

    /// The record of `server` at `clients` and `stalled`.
    #[must_use]
    pub fn get(&self, server: &str, clients: usize, stalled: usize) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.server == server && r.clients == clients && r.stalled == stalled)
    }

    /// Its (clients, stalled) rows, in order.
    #[must_use]
    pub fn rows(&self) -> Vec<(usize, usize)> {
        let rows: BTreeSet<(usize, usize)> = self
            .records
            .iter()
            .map(|r| (r.clients, r.stalled))
            .collect();
        rows.into_iter().collect()
    }
}

/// The sets of one file's records, by scenario (soak and slow-peer runs,
/// and [`SKIP`], left out).
#[must_use]
pub fn sets_of(file: &str, records: Vec<Record>) -> BTreeMap<String, Set> {
    let mut by: BTreeMap<String, BTreeMap<(String, usize, usize), Record>> = BTreeMap::new();
    for r in records {
        if matches!(r.mode.as_str(), "soak" | "peers") || SKIP.contains(&r.scenario.as_str()) {
            continue;
        }
        let key = (r.server.clone(), r.clients, r.stalled);
        let slot = by.entry(r.scenario.clone()).or_default();
        // The later line wins a tie: a file is appended to in run order.
        if slot
            .get(&key)
            .is_none_or(|old| old.unix_time <= r.unix_time)
        {
            slot.insert(key, r);
        }
    }
    by.into_iter()
        .map(|(scenario, recs)| {
            let mut records: Vec<Record> = recs.into_values().collect();
            records.sort_by_key(|r| r.unix_time);
            let set = Set {
                file: file.to_owned(),
                scenario: scenario.clone(),
                records,
            };
            (scenario, set)
        })
        .collect()
}

/// For each scenario, the set with the most servers, the newest of those;
/// and the newer sets of fewer servers, which the report names.
#[must_use]
pub fn choose(all: Vec<Set>) -> BTreeMap<String, (Set, Vec<Set>)> {
    let mut by: BTreeMap<String, Vec<Set>> = BTreeMap::new();
    for s in all {
        by.entry(s.scenario.clone()).or_default().push(s);
    }
    by.into_iter()
        .filter_map(|(scenario, mut sets)| {
            sets.sort_by_key(|s| (s.servers().len(), s.newest()));
            let chosen = sets.pop()?;
            let newer: Vec<Set> = sets
                .into_iter()
                .filter(|s| s.newest() > chosen.newest())
                .collect();
            Some((scenario, (chosen, newer)))
        })
        .collect()
}

/// Reads every `*.jsonl` of `dir` (lines that do not parse are skipped, as
/// the report always has), named `dir/file`.
///
/// # Errors
/// [`CurrentError::Read`] if the directory or a file cannot be read.
pub fn load_dir(dir: &Path) -> Result<Vec<Set>, CurrentError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CurrentError::Read { path, source }
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
        let records = super::records(&text).collect();
        out.extend(sets_of(&path.display().to_string(), records).into_values());
    }
    Ok(out)
}

/// The revisions a set's records name: the note up to its first `;` or
/// `(` holds "crate revision" pairs (`ssehub 83aeafd ssehub-server
/// 684a0d5`, a `+uncommitted` after a revision), each given once.
fn revisions(set: &Set) -> String {
    let mut seen: Vec<String> = Vec::new();
    for r in &set.records {
        let head = r.note.split([';', '(']).next().unwrap_or_default();
        let mut pairs: Vec<String> = Vec::new();
        let mut words = head.split_whitespace().peekable();
        while let Some(word) = words.next() {
            match pairs.last_mut() {
                Some(last) if word.starts_with('+') => {
                    last.push(' ');
                    last.push_str(word);
                }
                _ => pairs.push(match words.next() {
                    Some(rev) => format!("{word} `{rev}`"),
                    None => word.to_owned(),
                }),
            }
            // A revision's suffix follows it directly.
            while let Some(suffix) = words.next_if(|w| w.starts_with('+')) {
                if let Some(last) = pairs.last_mut() {
                    last.push(' ');
                    last.push_str(suffix);
                }
            }
        }
        for pair in pairs {
            if !seen.contains(&pair) {
                seen.push(pair);
            }
        }
    }
    if seen.is_empty() {
        "revision not recorded".into()
    } else {
        seen.join(", ")
    }
}

/// What else the notes say (after the revision), once each, with the
/// client counts whose runs say it.
fn notes(set: &Set) -> Vec<(String, BTreeSet<usize>)> {
    let mut seen: Vec<(String, BTreeSet<usize>)> = Vec::new();
    for r in &set.records {
        let Some((_, rest)) = r.note.split_once([';', '(']) else {
            continue;
        };
        let rest = rest.trim().trim_end_matches(')').trim().to_owned();
        if rest.is_empty() {
            continue;
        }
        match seen.iter_mut().find(|(n, _)| *n == rest) {
            Some((_, clients)) => {
                clients.insert(r.clients);
            }
            None => seen.push((rest, BTreeSet::from([r.clients]))),
        }
    }
    seen
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time.
#[must_use]
pub fn utc(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let secs = unix % 86_400;
    // Days to a civil date (proleptic Gregorian), after H. Hinnant.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// The range of the runs' 1-minute load average at their start.
fn loads(set: &Set) -> String {
    let v = super::loads_before(&set.records);
    if v.is_empty() {
        return "not recorded".into();
    }
    super::load_range(&v)
}

/// One scenario's table, with where its figures come from.
#[must_use]
pub fn table(set: &Set, newer: &[Set]) -> String {
    let mut out = String::new();
    let servers = set.servers();
    let first = set.records.iter().map(|r| r.unix_time).min().unwrap_or(0);
    let _ = writeln!(out, "\n### {}\n", set.scenario);
    let _ = writeln!(
        out,
        "`{}`: {}; run {} to {} UTC; load average (1 min) at the start {}.",
        set.file,
        revisions(set),
        utc(first),
        utc(set.newest()),
        loads(set)
    );
    let all: BTreeSet<usize> = set.records.iter().map(|r| r.clients).collect();
    for (note, clients) in notes(set) {
        if clients == all {
            let _ = writeln!(out, "Note: {note}.");
        } else {
            let counts: Vec<String> = clients.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "Note ({} clients): {note}.", counts.join(", "));
        }
    }
    for s in newer {
        let _ = writeln!(
            out,
            "Newer runs of fewer servers: `{}` ({}; {}).",
            s.file,
            s.servers().join(", "),
            utc(s.newest())
        );
    }
    let _ = writeln!(out, "\n{}", super::table_head(&servers, false));
    let hub = servers.iter().any(|s| s == "hub");
    for (clients, stalled) in set.rows() {
        let label = super::clients_label(clients, stalled);
        for m in super::metrics(&set.scenario, hub) {
            let row = super::table_row(&label, &m, &servers, false, |s| {
                set.get(s, clients, stalled)
            });
            let _ = writeln!(out, "{row}");
        }
    }
    out
}

/// Every table, in report order.
#[must_use]
pub fn tables(chosen: &BTreeMap<String, (Set, Vec<Set>)>) -> String {
    let mut keys: Vec<&String> = chosen.keys().collect();
    keys.sort_by_key(|k| (ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()), *k));
    keys.into_iter()
        .map(|k| table(&chosen[k].0, &chosen[k].1))
        .collect()
}

/// The latency panels of a scenario: one per client count (no stalled
/// clients), one line per server.
#[must_use]
pub fn latency_panels(set: &Set) -> Vec<Panel> {
    set.rows()
        .into_iter()
        .filter(|(_, stalled)| *stalled == 0)
        .map(|(clients, _)| Panel {
            title: format!("{}, {clients} subscribers", set.scenario),
            x_desc: "publish to delivery, ms".into(),
            y_desc: "percentile".into(),
            x_log: false,
            y_log: false,
            lines: set
                .servers()
                .into_iter()
                .filter_map(|s| {
                    let r = set.get(&s, clients, 0)?;
                    Some(Line {
                        label: s,
                        points: plots::percentile_points(r),
                    })
                })
                .collect(),
        })
        .collect()
}

/// Lines of `value` against client count, one per server of `set` (no
/// stalled clients; values that were not measured left out).
fn by_clients(set: &Set, value: fn(&Record) -> f64) -> Vec<Line> {
    set.servers()
        .into_iter()
        .map(|s| {
            let mut points: Vec<(f64, f64)> = set
                .records
                .iter()
                .filter(|r| r.server == s && r.stalled == 0)
                .map(|r| (r.clients as f64, value(r)))
                .filter(|(_, y)| *y > 0.0 && y.is_finite())
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Line { label: s, points }
        })
        .collect()
}

/// The cost-against-clients panels that have data.
#[must_use]
pub fn cost_panels(chosen: &BTreeMap<String, (Set, Vec<Set>)>) -> Vec<Panel> {
    // Scenario, title, y axis, value.
    type Spec = (&'static str, &'static str, &'static str, fn(&Record) -> f64);
    let specs: [Spec; 3] = [
        (
            "broadcast",
            "CPU per delivery, broadcast 10 ev/s",
            "server CPU per delivery, µs",
            |r| r.cpu_us_per_delivery,
        ),
        (
            "saturation",
            "CPU per delivery, saturation",
            "server CPU per delivery, µs",
            |r| r.cpu_us_per_delivery,
        ),
        (
            "idle",
            "memory per idle subscriber",
            "RSS per subscriber, KiB",
            |r| r.idle_bytes_per_conn / 1024.0,
        ),
    ];
    specs
        .into_iter()
        .filter_map(|(scenario, title, y_desc, value)| {
            let (set, _) = chosen.get(scenario)?;
            Some(Panel {
                title: title.into(),
                x_desc: "subscribers".into(),
                y_desc: y_desc.into(),
                x_log: true,
                y_log: false,
                lines: by_clients(set, value),
            })
        })
        .collect()
}

/// The family and rate of a scenario named `<family>-rate-<N>`.
#[must_use]
pub fn rate_of(scenario: &str) -> Option<(&str, f64)> {
    let (family, rate) = scenario.rsplit_once("-rate-")?;
    Some((family, rate.parse().ok()?))
}

/// Cost against publish rate, for each family with at least two rates:
/// CPU per publish of the servers (all nodes) and of Redis, one line per
/// server and client count.
#[must_use]
pub fn rate_panels(chosen: &BTreeMap<String, (Set, Vec<Set>)>) -> Vec<Panel> {
    // family -> (server, clients) -> rate -> record
    type Sweep<'a> = BTreeMap<(String, usize), BTreeMap<u64, &'a Record>>;
    let mut families: BTreeMap<&str, Sweep<'_>> = BTreeMap::new();
    for (scenario, (set, _)) in chosen {
        let Some((family, rate)) = rate_of(scenario) else {
            continue;
        };
        for r in set.records.iter().filter(|r| r.stalled == 0) {
            families
                .entry(family)
                .or_default()
                .entry((r.server.clone(), r.clients))
                .or_default()
                .insert(rate as u64, r);
        }
    }
    let mut panels = Vec::new();
    for (family, sweep) in families {
        let rates: BTreeSet<u64> = sweep.values().flat_map(|m| m.keys().copied()).collect();
        if rates.len() < 2 {
            continue;
        }
        let lines = |value: fn(&Record) -> f64| -> Vec<Line> {
            let mut keys: Vec<&(String, usize)> = sweep.keys().collect();
            keys.sort_by_key(|(s, c)| {
                (
                    SERVER_ORDER
                        .iter()
                        .position(|o| o == s)
                        .unwrap_or(SERVER_ORDER.len()),
                    s.clone(),
                    *c,
                )
            });
            keys.into_iter()
                .map(|key| Line {
                    label: format!("{} ({} subscribers)", key.0, key.1),
                    points: sweep[key]
                        .iter()
                        .map(|(rate, r)| (*rate as f64, value(r)))
                        .filter(|(_, y)| *y > 0.0 && y.is_finite())
                        .collect(),
                })
                .filter(|l| !l.points.is_empty())
                .collect()
        };
        let server_cpu = lines(|r| r.cpu_s * 1e6 / r.publishes.max(r.published).max(1) as f64);
        let redis_cpu = lines(|r| {
            if r.redis.is_some() {
                r.redis_cpu_us_per_publish
            } else {
                f64::NAN
            }
        });
        panels.push(Panel {
            title: format!("{family}: server CPU per publish (all nodes)"),
            x_desc: "updates per second".into(),
            y_desc: "µs per publish".into(),
            x_log: true,
            y_log: false,
            lines: server_cpu,
        });
        if !redis_cpu.is_empty() {
            panels.push(Panel {
                title: format!("{family}: Redis CPU per publish"),
                x_desc: "updates per second".into(),
                y_desc: "µs per publish".into(),
                x_log: true,
                y_log: false,
                lines: redis_cpu,
            });
        }
    }
    panels
}

/// Prints the tables and, with `plots`, writes the plots; returns the
/// files written.
///
/// # Errors
/// [`CurrentError`] if a file cannot be read or written, or a plot drawn.
pub fn run(dir: &Path, plots_dir: Option<&Path>) -> Result<Vec<PathBuf>, CurrentError> {
    let chosen = choose(load_dir(dir)?);
    print!("{}", tables(&chosen));
    let Some(out) = plots_dir else {
        return Ok(Vec::new());
    };
    std::fs::create_dir_all(out).map_err(|source| CurrentError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let mut figures: Vec<(String, Result<String, PlotError>)> = Vec::new();
    for scenario in LATENCY {
        if let Some((set, _)) = chosen.get(scenario) {
            figures.push((
                format!("latency-{scenario}.svg"),
                plots::latency_svg(&latency_panels(set)),
            ));
        }
    }
    let cost = cost_panels(&chosen);
    if !cost.is_empty() {
        figures.push(("cost-vs-clients.svg".into(), plots::xy_svg(&cost)));
    }
    let rate = rate_panels(&chosen);
    if !rate.is_empty() {
        figures.push(("cost-vs-rate.svg".into(), plots::xy_svg(&rate)));
    }
    let mut written = Vec::new();
    for (name, svg) in figures {
        let svg = svg.map_err(|source| CurrentError::Plot {
            name: name.clone(),
            source,
        })?;
        let path = out.join(&name);
        std::fs::write(&path, svg).map_err(|source| CurrentError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(scenario: &str, server: &str, clients: usize, t: u64) -> Record {
        Record {
            scenario: scenario.into(),
            server: server.into(),
            clients,
            mode: "rate".into(),
            unix_time: t,
            note: "ssehub abc1234 ; 4000-byte payloads".into(),
            cpu_us_per_delivery: 1.0 + clients as f64 / 1e4,
            cpu_s: 1.0,
            publishes: 1000,
            ..Record::default()
        }
    }

    /// The sets [`choose`] takes from one file's `records`.
    fn chosen_of(records: Vec<Record>) -> BTreeMap<String, (Set, Vec<Set>)> {
        choose(sets_of("f", records).into_values().collect())
    }

    #[test]
    fn the_set_with_most_servers_wins_and_newer_partial_runs_are_named() {
        let full = sets_of(
            "a.jsonl",
            vec![
                rec("broadcast", "ssehub-lean", 1000, 10),
                rec("broadcast", "baseline", 1000, 11),
                rec("broadcast", "ssehub-lean", 1000, 12),
            ],
        );
        let partial = sets_of("b.jsonl", vec![rec("broadcast", "hub", 1000, 50)]);
        let chosen = choose(full.into_values().chain(partial.into_values()).collect());
        let (set, newer) = &chosen["broadcast"];
        assert_eq!(set.file, "a.jsonl");
        assert_eq!(set.servers(), ["ssehub-lean", "baseline"]);
        // The re-run replaced the first run of the same server and count.
        assert_eq!(
            set.get("ssehub-lean", 1000, 0).map(|r| r.unix_time),
            Some(12)
        );
        assert_eq!(newer.len(), 1);
        let md = table(set, newer);
        assert!(md.contains("`a.jsonl`: ssehub `abc1234`; run 1970-01-01 00:00"));
        assert!(md.contains("Note: 4000-byte payloads."));
        assert!(md.contains("Newer runs of fewer servers: `b.jsonl` (hub;"));
        assert!(md.contains("| clients | metric | ssehub-lean | baseline |"));
    }

    #[test]
    fn revisions_are_named_once_and_notes_say_for_which_runs() {
        let mut a = rec("x", "hub", 200, 1);
        a.note = "ssehub 83aeafd +uncommitted ssehub-server 684a0d5 ; big payloads".into();
        let mut b = rec("x", "floor", 1000, 2);
        b.note = "ssehub 83aeafd +uncommitted".into();
        let set = sets_of("f", vec![a, b]).remove("x").expect("a set");
        assert_eq!(
            revisions(&set),
            "ssehub `83aeafd` +uncommitted, ssehub-server `684a0d5`"
        );
        assert!(table(&set, &[]).contains("Note (200 clients): big payloads."));
    }

    #[test]
    fn soak_and_one_off_runs_are_left_out() {
        let mut soak = rec("soak", "hub", 1000, 1);
        soak.mode = "soak".into();
        let sets = sets_of("x", vec![soak, rec("churn-rounds", "hub", 1000, 2)]);
        assert!(sets.is_empty());
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13");
    }

    #[test]
    fn rates_come_from_the_scenario_name() {
        assert_eq!(rate_of("scaleout-rate-3000"), Some(("scaleout", 3000.0)));
        assert_eq!(rate_of("broadcast"), None);
        let chosen = chosen_of(vec![
            rec("scaleout-rate-1000", "hub", 30, 1),
            rec("scaleout-rate-3000", "hub", 30, 2),
            rec("scaleout-rate-3000", "hub-redis", 30, 3),
        ]);
        let panels = rate_panels(&chosen);
        // No Redis in these records: one panel, the servers' CPU.
        assert_eq!(panels.len(), 1);
        let lines = &panels[0].lines;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0].label, "hub (30 subscribers)");
        assert_eq!(lines[0].points[0].1, 1000.0);
        assert_eq!(
            lines[0].points.iter().map(|p| p.0).collect::<Vec<_>>(),
            [1000.0, 3000.0]
        );
    }

    #[test]
    fn cost_lines_follow_client_count() {
        let chosen = chosen_of(vec![
            rec("broadcast", "floor", 10_000, 1),
            rec("broadcast", "floor", 1000, 2),
        ]);
        let panels = cost_panels(&chosen);
        assert_eq!(panels.len(), 1);
        assert_eq!(panels[0].lines[0].points, [(1000.0, 1.1), (10_000.0, 2.0)]);
    }
}
