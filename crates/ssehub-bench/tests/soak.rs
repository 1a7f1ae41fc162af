//! The soak, CI-sized: the hub (`server-hub`, the hub started in its own
//! process as the benchmark runs it) for about two minutes under
//! `loadgen --mode soak` — steady subscribers, subscribers coming and
//! going, every other one resuming with `Last-Event-ID` after a moment
//! offline, ten publishes a second — must keep its RSS and its descriptor
//! count flat, lose and duplicate nothing, resume exactly, and let every
//! departed subscriber go.
//!
//! The verdicts are the load generator's (`ssehub_bench::soak`): after a
//! 20 s warm-up, the mean of the last third of the samples against the
//! first third's, within the connections in flight (+16) for descriptors
//! and within 10 % (at least 8 MiB) for RSS. Generous for a loaded
//! two-core machine, yet a descriptor leaked per connection adds hundreds
//! over the run (the unit tests of `soak` show the margins).

mod common;

use std::time::Instant;

use common::{Server, loadgen, record};

const CLIENTS: usize = 200;
const DURATION_S: u64 = 100;
const CHURN: usize = 16;

#[test]
fn two_minutes_of_churn_publishes_and_resumes_leave_the_hub_flat() {
    let server = Server::start(env!("CARGO_BIN_EXE_server-hub"), true, &[]);
    let started = Instant::now();
    let (rec, log) = record(
        loadgen()
            .args(["--target", &server.addr, "--control", server.control()])
            .args(["--path", "/.well-known/mercure?match="])
            .args(["--label", "hub", "--scenario", "soak-ci", "--mode", "soak"])
            .args(["--clients", &CLIENTS.to_string(), "--rate", "10"])
            .args(["--duration", &DURATION_S.to_string()])
            .args(["--churn-concurrency", &CHURN.to_string()])
            .args(["--sample-every", "1", "--warmup", "20", "--idle-wait", "1"])
            // It stops by itself whatever happens.
            .args(["--time-limit", "240"]),
    );
    eprintln!("{log}\n(in {:?})", started.elapsed());

    assert_eq!(rec.connected, CLIENTS, "{log}");
    assert!(
        rec.published >= DURATION_S * 10 * 9 / 10,
        "published {}\n{log}",
        rec.published
    );
    assert_eq!(
        (rec.lost, rec.duplicated, rec.out_of_order, rec.disconnected),
        (0, 0, 0, 0),
        "every steady subscriber gets every update once, in order\n{log}"
    );
    assert!(
        rec.churn_cycles >= 200 && rec.resumes >= 50,
        "churn too thin to judge: {} cycles, {} resumes\n{log}",
        rec.churn_cycles,
        rec.resumes
    );
    assert_eq!(
        (rec.churn_gaps, rec.churn_duplicated),
        (0, 0),
        "churning subscribers miss or repeat nothing, resumes included\n{log}"
    );
    assert_eq!(
        rec.churn_subscribers_after, CLIENTS as u64,
        "the hub let every departed subscriber go\n{log}"
    );
    let series: Vec<(u64, u64, u64)> = rec
        .samples
        .iter()
        .map(|s| (s.t_s as u64, s.rss_kib, s.fds))
        .collect();
    let fds = rec.fd_trend.expect("enough samples for a descriptor trend");
    assert!(
        fds.flat,
        "descriptors grow: {fds:?}\n(t, rss KiB, fds): {series:?}"
    );
    let rss = rec.rss_trend.expect("enough samples for an RSS trend");
    assert!(
        rss.flat,
        "RSS grows: {rss:?}\n(t, rss KiB, fds): {series:?}"
    );
    // Settled: the steady subscribers' sockets and a few of the hub's own.
    assert!(
        rec.fds_after <= rec.fds_before + CLIENTS as u64 + 16,
        "{} descriptors after the run, {} before it\n{log}",
        rec.fds_after,
        rec.fds_before
    );
}
