//! `CLOCK_MONOTONIC` in nanoseconds: comparable between processes on one
//! machine (unlike [`std::time::Instant`], whose value is opaque).

use std::time::Duration;

/// Nanoseconds on `CLOCK_MONOTONIC`.
#[must_use]
pub fn mono_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `deadline_ns` (tokio timer
/// resolution: about a millisecond late at most).
pub async fn sleep_until_ns(deadline_ns: u64) {
    let now = mono_ns();
    if deadline_ns > now {
        tokio::time::sleep(Duration::from_nanos(deadline_ns - now)).await;
    }
}

/// How far ahead of a precise deadline [`sleep_until_ns_precise`] stops
/// trusting the runtime's timer (which rounds up to millisecond ticks).
const TIMER_SLACK_NS: u64 = 2_000_000;

/// Sleeps until `CLOCK_MONOTONIC` reaches `deadline_ns`, to within a few
/// microseconds: the runtime's timer for all but the last two
/// milliseconds, then yielding to the other tasks until it is due.
///
/// For open-loop schedules whose latencies are measured from the due
/// time: on the timer alone every request would start up to a millisecond
/// late, the same for every server, and that slip would swamp the
/// differences between servers that the latency figures are for. The
/// cost is the load generator's own core, busy while a deadline is near.
pub async fn sleep_until_ns_precise(deadline_ns: u64) {
    sleep_until_ns(deadline_ns.saturating_sub(TIMER_SLACK_NS)).await;
    while mono_ns() < deadline_ns {
        tokio::task::yield_now().await;
    }
}
