//! Whether a server's footprint stays flat over a long run: samples of its
//! RSS and open descriptors over time, and the verdict on each series.
//!
//! A series is judged after a warm-up (allocator arenas, the history ring
//! and connection tables fill up first): the mean of its last third is
//! compared with the mean of its first third, and the least-squares slope
//! over all of it is reported per hour. Means of thirds, not single
//! readings, so that the connections a churning load holds at one instant
//! do not decide the verdict; a leak of anything per connection adds up
//! over thousands of connections and shows in the difference.
//!
//! ```
//! use ssehub_bench::soak::{Sample, trend};
//! let flat: Vec<Sample> = (0..60)
//!     .map(|t| Sample { t_s: f64::from(t), rss_kib: 20_000, fds: 100 + (t % 7) as u64 })
//!     .collect();
//! let fds = trend(&flat, 10.0, |s| s.fds as f64).unwrap();
//! assert!(fds.growth.abs() < 4.0 && fds.slope_per_h.abs() < 100.0);
//! ```

use serde::{Deserialize, Serialize};

/// One reading of the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sample {
    /// Seconds since the schedule started.
    pub t_s: f64,
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// Entries of `/proc/<pid>/fd`.
    pub fds: u64,
}

/// How one series moved after the warm-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Trend {
    /// Samples judged (after the warm-up).
    pub samples: usize,
    /// Mean of the first third.
    pub first_mean: f64,
    /// Mean of the last third.
    pub last_mean: f64,
    /// `last_mean - first_mean`.
    pub growth: f64,
    /// Least-squares slope over the judged samples, per hour.
    pub slope_per_h: f64,
    /// The most a judged sample read.
    pub max: f64,
    /// The growth allowed.
    pub tolerance: f64,
    /// `growth <= tolerance`.
    pub flat: bool,
}

/// The trend of `value` over the samples taken at or after `warmup_s`;
/// `None` with fewer than six of them (two per third). The verdict is left
/// to [`Trend::judge`].
#[must_use]
pub fn trend(samples: &[Sample], warmup_s: f64, value: impl Fn(&Sample) -> f64) -> Option<Trend> {
    let judged: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t_s >= warmup_s)
        .map(|s| (s.t_s, value(s)))
        .collect();
    let n = judged.len();
    if n < 6 {
        return None;
    }
    let third = n / 3;
    let mean = |part: &[(f64, f64)]| part.iter().map(|p| p.1).sum::<f64>() / part.len() as f64;
    let first_mean = mean(&judged[..third]);
    let last_mean = mean(&judged[n - third..]);
    let (mt, mv) = (
        judged.iter().map(|p| p.0).sum::<f64>() / n as f64,
        mean(&judged),
    );
    let (mut cov, mut var) = (0.0, 0.0);
    for &(t, v) in &judged {
        cov += (t - mt) * (v - mv);
        var += (t - mt) * (t - mt);
    }
    let slope = if var > 0.0 { cov / var } else { 0.0 };
    Some(Trend {
        samples: n,
        first_mean,
        last_mean,
        growth: last_mean - first_mean,
        slope_per_h: slope * 3600.0,
        max: judged.iter().map(|p| p.1).fold(f64::MIN, f64::max),
        tolerance: 0.0,
        flat: false,
    })
}

impl Trend {
    /// Sets the verdict: flat when the last third's mean exceeds the first
    /// third's by at most `tolerance`.
    #[must_use]
    pub fn judge(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
        self.flat = self.growth <= tolerance;
        self
    }
}

/// The growth of the descriptor count allowed by default: the connections
/// a churning load may hold at one instant, plus a few the server opens
/// for itself (its log, a timer, a control connection).
#[must_use]
pub fn fd_tolerance(churn_concurrency: usize) -> f64 {
    churn_concurrency as f64 + 16.0
}

/// The growth of RSS allowed by default, KiB: 10 % of the first third's
/// mean, and at least 8 MiB (an allocator keeps what a burst needed).
#[must_use]
pub fn rss_tolerance_kib(first_mean_kib: f64) -> f64 {
    (first_mean_kib * 0.10).max(8192.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readings every second for two minutes of a server whose
    /// descriptors follow a churning load: `steady` subscribers plus up to
    /// `churners` connections in flight, plus `leak_per_cycle` descriptors
    /// (and 8 KiB each) for each of the `cycles_per_s` connections that
    /// came and went.
    fn run(steady: u64, churners: u64, cycles_per_s: f64, leak_per_cycle: f64) -> Vec<Sample> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..120)
            .map(|t| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let in_flight = x % (churners + 1);
                let leaked = (leak_per_cycle * cycles_per_s * f64::from(t)) as u64;
                Sample {
                    t_s: f64::from(t),
                    rss_kib: 30_000 + (x >> 20) % 2048 + leaked * 8,
                    fds: 12 + steady + in_flight + leaked,
                }
            })
            .collect()
    }

    fn fds_flat(samples: &[Sample], churners: usize) -> bool {
        trend(samples, 20.0, |s| s.fds as f64)
            .unwrap()
            .judge(fd_tolerance(churners))
            .flat
    }

    #[test]
    fn a_churning_load_without_a_leak_is_flat() {
        let samples = run(200, 16, 20.0, 0.0);
        assert!(fds_flat(&samples, 16));
        let rss = trend(&samples, 20.0, |s| s.rss_kib as f64).unwrap();
        assert!(rss.judge(rss_tolerance_kib(rss.first_mean)).flat);
    }

    #[test]
    fn one_descriptor_leaked_per_connection_is_not_flat() {
        // The CI soak's churn: 16 loops, a few connections a second each.
        assert!(!fds_flat(&run(200, 16, 20.0, 1.0), 16));
        // Even at one connection a second, or one leak in ten.
        assert!(!fds_flat(&run(200, 16, 1.0, 1.0), 16));
        assert!(!fds_flat(&run(200, 16, 20.0, 0.1), 16));
        let leak = run(200, 16, 20.0, 1.0);
        let fds = trend(&leak, 20.0, |s| s.fds as f64).unwrap();
        assert!((fds.slope_per_h - 20.0 * 3600.0).abs() < 3600.0, "{fds:?}");
    }

    #[test]
    fn memory_leaked_per_connection_is_not_flat() {
        // 8 KiB per connection, 20 connections a second: about what two
        // minutes can tell from an allocator's noise.
        let samples = run(200, 16, 20.0, 1.0);
        let rss = trend(&samples, 20.0, |s| s.rss_kib as f64).unwrap();
        assert!(
            !rss.judge(rss_tolerance_kib(rss.first_mean)).flat,
            "{rss:?}"
        );
    }

    #[test]
    fn too_few_samples_give_no_verdict() {
        assert_eq!(
            trend(&run(1, 1, 1.0, 0.0)[..25], 20.0, |s| s.fds as f64),
            None
        );
    }
}
