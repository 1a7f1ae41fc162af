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
