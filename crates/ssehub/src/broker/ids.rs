//! Broker-generated event ids and the resume point a `Last-Event-ID` names.
//!
//! A generated id is `EEEEEEEE-P`: the broker's epoch as 8 lowercase hex
//! digits, a dash, and the event's publish position in decimal. Visible
//! ASCII only, at most 29 bytes, and none of the characters that would make
//! a cross-origin `Last-Event-ID` header "unsafe" (`"():<>?@[\]{}`), so a
//! browser's reconnect needs no CORS preflight. The epoch changes whenever
//! a broker is created, so an id from before a restart is recognised as
//! unknown instead of being mistaken for a position in the new history.

use std::fmt::Write as _;

/// The `Last-Event-ID` value asking for all retained history.
pub const EARLIEST: &str = "earliest";

/// Where a reconnecting client resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResumePoint {
    /// After the event at this position.
    After(u64),
    /// From the oldest retained event ([`EARLIEST`]).
    Earliest,
    /// The id names no retained event (unknown, or from before a restart).
    Unknown,
    /// With a journal: after this record of the journal.
    Journal(crate::journal::JournalId),
}

/// A fresh epoch: differs between broker instances and across restarts.
pub(crate) fn new_epoch() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's randomness per process and
    // advanced per instance; mixing in the time separates restarts even if
    // a platform seeded it weakly.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    let h = hasher.finish();
    (h ^ (h >> 32)) as u32
}

/// The id of the event at `position` for a broker with `epoch`.
pub(crate) fn format(epoch: u32, position: u64) -> String {
    let mut id = String::with_capacity(29);
    // Writing to a String cannot fail.
    let _ = write!(id, "{epoch:08x}-{position}");
    id
}

/// The position a generated id names, if it is one of this epoch's.
///
/// Only the spelling [`format`] writes is one: 8 lowercase hex digits, and
/// the position in decimal without a leading zero. Anything else (`0300`,
/// an uppercase or `+`-signed epoch) may be a publisher's own id, looked up
/// as such.
pub(crate) fn parse(epoch: u32, id: &str) -> Option<u64> {
    let (e, p) = id.split_once('-')?;
    let epoch_ok = e.len() == 8 && e.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let position_ok = !p.is_empty()
        && p.len() <= 20
        && p.bytes().all(|b| b.is_ascii_digit())
        && (p == "0" || !p.starts_with('0'));
    if !epoch_ok || !position_ok {
        return None;
    }
    if u32::from_str_radix(e, 16).ok()? != epoch {
        return None;
    }
    p.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// LEI-ID-SAFE: generated ids are visible ASCII, at most 128 bytes,
        /// free of CORS-unsafe bytes, and parse back to their position.
        #[test]
        fn generated_ids_are_safe_and_round_trip(epoch: u32, position: u64) {
            let id = format(epoch, position);
            prop_assert!(id.len() <= 128);
            prop_assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
            let unsafe_bytes: &[u8] = b"\"():<>?@[\\]{}";
            prop_assert!(!id.bytes().any(|b| unsafe_bytes.contains(&b)), "unsafe byte in {}", id);
            prop_assert_eq!(parse(epoch, &id), Some(position));
            prop_assert_eq!(parse(epoch.wrapping_add(1), &id), None);
        }
    }

    #[test]
    fn other_values_are_not_generated_ids() {
        for id in [
            "",
            "42",
            "earliest",
            "abc-1",
            "0000000g-1",
            "00000000-",
            "00000000-1x",
        ] {
            assert_eq!(parse(0, id), None, "{id}");
        }
        // Not the written form (found by fuzzing: these named positions).
        assert_eq!(parse(0, "00000000-0300"), None);
        assert_eq!(parse(0, "00000000-00"), None);
        assert_eq!(parse(0x2a, "0000002A-7"), None);
        assert_eq!(parse(0x2a, "+000002a-7"), None);
        assert_eq!(parse(0x2a, "0000002a-7"), Some(7));
        assert_eq!(parse(0, "00000000-0"), Some(0));
        assert_ne!(new_epoch(), new_epoch());
    }
}
