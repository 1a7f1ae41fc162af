//! The wait before a reconnection: the reconnection time, growing exponentially (with optional
//! jitter) while attempts keep failing. Pure arithmetic plus a cheap random source.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The smallest base the exponential backoff grows from, so that a reconnection time of zero
/// (`retry: 0`) cannot turn repeated failures into a busy loop.
pub(crate) const MIN_BACKOFF_BASE: Duration = Duration::from_millis(100);

/// How long to wait before the next connection attempt.
///
/// `failures` counts the consecutive attempts that failed before reaching an open stream; it is
/// 0 after a connection that was open. With 0 or 1 failures the wait is exactly `reconnection`
/// (as browsers do). From the second failure on it is
/// `min(max(reconnection, MIN_BACKOFF_BASE) * 2^(failures - 1), max(max_backoff, reconnection))`,
/// and with `jitter` a uniformly random value in `[max(that / 2, reconnection), that]`.
///
/// The wait is never shorter than `reconnection` (the specification's minimum) and, unless the
/// server's `retry` is itself larger, never longer than `max_backoff`.
pub(crate) fn delay(
    reconnection: Duration,
    failures: u32,
    max_backoff: Duration,
    jitter: bool,
) -> Duration {
    delay_with(reconnection, failures, max_backoff, jitter.then(random_u64))
}

/// [`delay`] with the random value supplied (`None`: no jitter), for tests.
pub(crate) fn delay_with(
    reconnection: Duration,
    failures: u32,
    max_backoff: Duration,
    random: Option<u64>,
) -> Duration {
    if failures <= 1 {
        return reconnection;
    }
    let cap = max_backoff.max(reconnection);
    let base = reconnection.max(MIN_BACKOFF_BASE);
    // 2^31 times any base overflows nothing that matters: saturate, then cap.
    let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
    let ceiling = base.saturating_mul(factor).min(cap);
    let Some(random) = random else {
        return ceiling;
    };
    let floor = (ceiling / 2).max(reconnection);
    let span = ceiling.saturating_sub(floor).as_nanos();
    if span == 0 {
        return ceiling;
    }
    // `span` fits in u64 nanoseconds for any wait under 584 years; beyond that the jitter is
    // taken over the first 584 years of the span, which is still a valid choice.
    let span = u64::try_from(span).unwrap_or(u64::MAX);
    let offset = if span == u64::MAX {
        random
    } else {
        random % (span + 1)
    };
    floor.saturating_add(Duration::from_nanos(offset))
}

/// A cheap, well-mixed random number: SipHash, keyed by the standard library's per-process
/// random keys, over a counter and the current time. Good enough to spread reconnections of
/// many clients apart; not for anything that needs unpredictability.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn exact_reconnection_time_until_failures_repeat() {
        for failures in [0, 1] {
            assert_eq!(delay_with(MS * 200, failures, MS * 1000, None), MS * 200);
            assert_eq!(
                delay_with(MS * 200, failures, MS * 1000, Some(u64::MAX)),
                MS * 200
            );
            // Honoured even when zero, or above the cap.
            assert_eq!(
                delay_with(Duration::ZERO, failures, MS * 1000, None),
                Duration::ZERO
            );
            assert_eq!(delay_with(MS * 5000, failures, MS * 1000, None), MS * 5000);
        }
    }

    #[test]
    fn doubles_then_caps() {
        let delays: Vec<Duration> = (2..9)
            .map(|n| delay_with(MS * 200, n, MS * 3000, None))
            .collect();
        assert_eq!(
            delays,
            [
                MS * 400,
                MS * 800,
                MS * 1600,
                MS * 3000,
                MS * 3000,
                MS * 3000,
                MS * 3000
            ]
        );
        // A server retry above the cap wins over the cap.
        assert_eq!(delay_with(MS * 5000, 6, MS * 3000, None), MS * 5000);
        // Zero reconnection time: backoff still grows from the floor.
        assert_eq!(delay_with(Duration::ZERO, 2, MS * 3000, None), MS * 200);
        assert_eq!(delay_with(Duration::ZERO, 3, MS * 3000, None), MS * 400);
    }

    #[test]
    fn no_overflow_at_extremes() {
        let huge = Duration::from_millis(u64::MAX);
        for failures in [0, 1, 2, 31, 32, 33, 64, u32::MAX] {
            for random in [None, Some(0), Some(u64::MAX)] {
                let d = delay_with(huge, failures, huge, random);
                assert!(d >= huge);
                let d = delay_with(MS, failures, Duration::MAX, random);
                assert!(d >= MS);
                let d = delay_with(Duration::MAX, failures, Duration::ZERO, random);
                assert_eq!(d, Duration::MAX);
            }
        }
    }

    #[test]
    fn jitter_stays_within_bounds_and_spreads() {
        let r = MS * 100;
        let cap = MS * 2000;
        for failures in 2..12 {
            let ceiling = delay_with(r, failures, cap, None);
            let floor = (ceiling / 2).max(r);
            let samples: Vec<Duration> = (0..200).map(|_| delay(r, failures, cap, true)).collect();
            for d in &samples {
                assert!(
                    (floor..=ceiling).contains(d),
                    "{d:?} outside {floor:?}..={ceiling:?}"
                );
            }
            let distinct: std::collections::HashSet<_> = samples.iter().collect();
            assert!(distinct.len() > 100, "little spread: {}", distinct.len());
            let (min, max) = (samples.iter().min().unwrap(), samples.iter().max().unwrap());
            let quarter = (ceiling - floor) / 4;
            assert!(*min < floor + quarter && *max > ceiling - quarter);
        }
        // The extremes of the random value reach both ends.
        assert_eq!(delay_with(r, 4, cap, Some(0)), MS * 400);
        assert_eq!(delay_with(r, 4, cap, Some(400_000_000)), MS * 800);
    }
}
