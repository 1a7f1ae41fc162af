//! Fairness between concurrent publishers, as the subscribers see it: for
//! each update, how many updates published *after* it (its request sent
//! later, so a higher sequence number on its topic) reached a subscriber
//! *before* it — "overtaken by". A server that holds one publisher's request
//! while it serves the others shows as updates overtaken by hundreds.
//!
//! The count is made as each update arrives, from what the subscriber has
//! received so far: a bitmap of sequence numbers and the first one missing.
//! With nothing out of order it costs one comparison.

/// How many of the updates a subscriber received before `seq` have a
/// higher sequence number, given that it had received `received` distinct
/// updates, all of `0..next`, and those whose bits are set in `seen` (one
/// bit per sequence number, 64 per word). `seq` itself must not have been
/// received yet (so `seq >= next`).
///
/// Of the `received`, those below `seq` are `seq` less the ones missing in
/// `next..seq`; the others came from above.
#[must_use]
pub fn overtaken(seen: &[u64], next: u64, received: u64, seq: u64) -> u64 {
    let missing = missing_between(seen, next, seq);
    received.saturating_sub(seq.saturating_sub(missing))
}

/// Sequence numbers in `from..to` whose bit is clear in `seen` (bits past
/// its end count as clear).
#[must_use]
pub fn missing_between(seen: &[u64], from: u64, to: u64) -> u64 {
    if to <= from {
        return 0;
    }
    let mut set = 0u64;
    let mut k = from;
    while k < to {
        let word = (k / 64) as usize;
        let bit = k % 64;
        // The bits of this word from `bit` up to `to` (or the word's end).
        let span = (64 - bit).min(to - k);
        let mask = if span == 64 {
            u64::MAX
        } else {
            ((1u64 << span) - 1) << bit
        };
        if let Some(w) = seen.get(word) {
            set += u64::from((w & mask).count_ones());
        }
        k += span;
    }
    (to - from) - set
}

/// Updates published round-robin over `topics` topics (update `k` to topic
/// `k % topics`, as its `k / topics`-th): how many of the first `published`
/// went to topic `topic`.
#[must_use]
pub fn per_topic(published: u64, topics: u64, topic: u64) -> u64 {
    let topics = topics.max(1);
    if topic >= topics {
        return 0;
    }
    (published + topics - 1 - topic) / topics
}

/// The worst "overtaken by" of each update over every subscriber that got
/// it, indexed by the update's publish sequence number.
#[derive(Debug, Clone, Default)]
pub struct Overtakes {
    worst: Vec<u32>,
}

impl Overtakes {
    /// A subscriber received update `update` after `n` later ones.
    pub fn note(&mut self, update: u64, n: u64) {
        let i = update as usize;
        if self.worst.len() <= i {
            self.worst.resize(i + 1 + i / 2, 0);
        }
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if self.worst[i] < n {
            self.worst[i] = n;
        }
    }

    /// Forgets every update.
    pub fn clear(&mut self) {
        self.worst.clear();
    }

    /// Over updates `0..published` (an update no subscriber got counts as
    /// not overtaken): the largest figure and the 99th percentile.
    #[must_use]
    pub fn summary(&self, published: u64) -> (u64, u64) {
        let n = published as usize;
        if n == 0 {
            return (0, 0);
        }
        let mut v: Vec<u32> = (0..n)
            .map(|i| self.worst.get(i).copied().unwrap_or(0))
            .collect();
        v.sort_unstable();
        // The nearest-rank percentile: the smallest value with at least
        // 99 % of the updates at or below it.
        let rank = (n * 99).div_ceil(100).max(1);
        (u64::from(v[n - 1]), u64::from(v[rank - 1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays an arrival order the way a subscriber records it, returning
    /// each arrival's "overtaken by".
    fn replay(order: &[u64]) -> Vec<u64> {
        let mut seen = vec![0u64; 4];
        let (mut next, mut received) = (0u64, 0u64);
        let mut out = Vec::new();
        for &seq in order {
            out.push(overtaken(&seen, next, received, seq));
            seen[(seq / 64) as usize] |= 1 << (seq % 64);
            received += 1;
            while seen[(next / 64) as usize] >> (next % 64) & 1 == 1 {
                next += 1;
            }
        }
        out
    }

    /// The definition, counted directly.
    fn brute(order: &[u64]) -> Vec<u64> {
        (0..order.len())
            .map(|i| order[..i].iter().filter(|&&v| v > order[i]).count() as u64)
            .collect()
    }

    #[test]
    fn in_order_is_never_overtaken() {
        let order: Vec<u64> = (0..200).collect();
        assert!(replay(&order).iter().all(|&n| n == 0));
    }

    #[test]
    fn a_held_update_counts_everything_that_passed_it() {
        // Update 3 held while 4..=100 go through: overtaken by 97.
        let mut order: Vec<u64> = (0..3).collect();
        order.extend(4..=100);
        order.push(3);
        let got = replay(&order);
        assert_eq!(*got.last().unwrap(), 97);
        assert_eq!(got, brute(&order));
    }

    #[test]
    fn matches_the_definition_with_gaps_and_shuffles() {
        // Across word boundaries, with losses (62, 130 never arrive).
        let order = [
            1, 0, 5, 3, 2, 4, 70, 64, 63, 61, 60, 65, 66, 131, 129, 128, 6, 7, 8,
        ];
        assert_eq!(replay(&order), brute(&order));
    }

    #[test]
    fn missing_between_counts_clear_bits() {
        let seen = [0b1011u64, u64::MAX];
        assert_eq!(missing_between(&seen, 0, 4), 1);
        assert_eq!(missing_between(&seen, 0, 64), 61);
        assert_eq!(missing_between(&seen, 60, 130), 4 + 2);
        assert_eq!(missing_between(&seen, 5, 5), 0);
        assert_eq!(missing_between(&seen, 9, 3), 0);
    }

    #[test]
    fn round_robin_shares() {
        // 5 updates over 2 topics: 0, 2, 4 and 1, 3.
        assert_eq!(
            (per_topic(5, 2, 0), per_topic(5, 2, 1), per_topic(5, 2, 2)),
            (3, 2, 0)
        );
        assert_eq!(per_topic(0, 3, 0), 0);
        assert_eq!(per_topic(7, 1, 0), 7);
        assert_eq!(per_topic(7, 0, 0), 7);
    }

    #[test]
    fn summary_takes_the_worst_per_update() {
        let mut o = Overtakes::default();
        for k in 0..100 {
            o.note(k, 0);
        }
        o.note(10, 5);
        o.note(10, 3);
        o.note(20, 475);
        // Of 100 updates, the 99th smallest is the second worst.
        assert_eq!(o.summary(100), (475, 5));
        assert_eq!(o.summary(200).1, 0);
        assert_eq!(o.summary(0), (0, 0));
        // Updates nobody got count as 0.
        assert_eq!(Overtakes::default().summary(10), (0, 0));
    }
}
