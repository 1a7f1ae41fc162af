//! Event payloads: `SSSSSSSSSS TTTTTTTTTTTTTTTTTTTT xxx…` — a 10-digit
//! sequence number, a 20-digit `CLOCK_MONOTONIC` timestamp in nanoseconds,
//! then padding to the requested size.

/// Bytes of the sequence number and timestamp, with their separators.
pub const HEADER_LEN: usize = 32;

/// A payload of `size` bytes (at least [`HEADER_LEN`]).
#[must_use]
pub fn make(seq: u64, ts_ns: u64, size: usize) -> String {
    let mut s = format!("{seq:010} {ts_ns:020} ");
    let size = size.max(HEADER_LEN);
    s.extend(std::iter::repeat_n('x', size - s.len()));
    s
}

/// The sequence number and timestamp at the start of `data`.
#[must_use]
pub fn parse(data: &[u8]) -> Option<(u64, u64)> {
    if data.len() < 31 || data[10] != b' ' {
        return None;
    }
    Some((digits(&data[..10])?, digits(&data[11..31])?))
}

fn digits(d: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &b in d {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let p = super::make(42, 123_456_789, 100);
        assert_eq!(p.len(), 100);
        assert_eq!(super::parse(p.as_bytes()), Some((42, 123_456_789)));
        assert_eq!(super::parse(b"hello"), None);
    }
}
