//! What a broker appends to its journal for one publish, and how a record
//! becomes the frame written to clients.
//!
//! # Layout
//!
//! ```text
//! byte 0      VERSION
//! byte 1      flags: EVERYONE | ADD_ID | TRANSIENT
//! varint      number of channel names (0 with EVERYONE)
//! per name:   varint length, UTF-8 bytes
//! rest        the encoded frame (an event encoded once, without its id line
//!             when ADD_ID is set)
//! ```
//!
//! Varints are LEB128 (7 bits a byte, low first). The frame is the tail, so
//! decoding hands it out as a slice of the record's `Bytes`: no copy until
//! a replica that has subscribers frames it with its id
//! ([`Decoded::frame`]). A record another program wrote to the same
//! journal (or a corrupt one) decodes as `None` and is skipped, never a
//! panic.

use bytes::{BufMut, Bytes, BytesMut};

use crate::journal::JournalId;

/// The layout's version, the first byte of every record.
const VERSION: u8 = 1;

/// Published with [`Broker::broadcast`](super::Broker::broadcast): for every client.
pub(crate) const EVERYONE: u8 = 1;
/// The frame gets `id: <journal id>` when it is delivered or replayed.
pub(crate) const ADD_ID: u8 = 2;
/// Not replayed (an event published with `with_replay(false)`).
pub(crate) const TRANSIENT: u8 = 4;
const KNOWN_FLAGS: u8 = EVERYONE | ADD_ID | TRANSIENT;

/// The record of one publish.
pub(crate) fn encode<'a>(
    flags: u8,
    names: impl Iterator<Item = &'a str> + Clone,
    frame: &[u8],
) -> Bytes {
    let count = names.clone().count();
    let names_len: usize = names.clone().map(|n| varint_len(n.len()) + n.len()).sum();
    let mut buf = BytesMut::with_capacity(2 + varint_len(count) + names_len + frame.len());
    buf.put_u8(VERSION);
    buf.put_u8(flags);
    put_varint(&mut buf, count);
    for name in names {
        put_varint(&mut buf, name.len());
        buf.put_slice(name.as_bytes());
    }
    buf.put_slice(frame);
    buf.freeze()
}

/// A record, read.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    flags: u8,
    body: Bytes,
    /// Where each name sits in `body`.
    names: Vec<(usize, usize)>,
    /// Where the frame starts in `body`.
    frame_at: usize,
}

/// Reads a record; `None` when it is not one of ours.
pub(crate) fn decode(body: &Bytes) -> Option<Decoded> {
    let bytes = &body[..];
    let (&version, rest) = bytes.split_first()?;
    let (&flags, _) = rest.split_first()?;
    if version != VERSION || flags & !KNOWN_FLAGS != 0 {
        return None;
    }
    let mut at = 2;
    let count = get_varint(bytes, &mut at)?;
    // Each name takes at least one byte: a count beyond the length is corrupt
    // (and must not size an allocation).
    if count > bytes.len() - at {
        return None;
    }
    let mut names = Vec::with_capacity(count);
    for _ in 0..count {
        let len = get_varint(bytes, &mut at)?;
        let end = at.checked_add(len).filter(|&end| end <= bytes.len())?;
        std::str::from_utf8(&bytes[at..end]).ok()?;
        names.push((at, end));
        at = end;
    }
    Some(Decoded {
        flags,
        body: body.clone(),
        names,
        frame_at: at,
    })
}

impl Decoded {
    /// For every client.
    pub(crate) fn everyone(&self) -> bool {
        self.flags & EVERYONE != 0
    }

    /// Replayed to a resuming client.
    pub(crate) fn replayable(&self) -> bool {
        self.flags & TRANSIENT == 0
    }

    /// The channels it was published on.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.names.iter().filter_map(|&(from, to)| {
            // Checked to be UTF-8 by `decode`.
            std::str::from_utf8(&self.body[from..to]).ok()
        })
    }

    /// Whether a client in `channels` (besides the broadcast every client
    /// is in) receives it.
    pub(crate) fn reaches(&self, channels: &[std::sync::Arc<str>]) -> bool {
        self.everyone() || self.names().any(|n| channels.iter().any(|c| &**c == n))
    }

    /// The frame to write for the record stored as `id`: with its id line
    /// when the publisher asked for one (one copy), else the stored bytes.
    pub(crate) fn frame(&self, id: JournalId) -> Bytes {
        let stored = self.body.slice(self.frame_at..);
        if self.flags & ADD_ID == 0 {
            return stored;
        }
        let id = id.to_string();
        let mut buf = BytesMut::with_capacity(4 + id.len() + 1 + stored.len());
        buf.put_slice(b"id: ");
        buf.put_slice(id.as_bytes());
        buf.put_u8(b'\n');
        buf.put_slice(&stored);
        buf.freeze()
    }
}

/// `frame` without its `id:` line. An encoded event has at most one, and
/// no other line of it starts with `id` (the fields are `event`, `retry`,
/// `data` and comments), so this is exact.
pub(crate) fn strip_id_line(frame: &Bytes) -> Bytes {
    let mut start = 0;
    while start < frame.len() {
        let end = frame[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(frame.len(), |i| start + i + 1);
        if frame[start..end].starts_with(b"id:") {
            let mut out = BytesMut::with_capacity(frame.len() - (end - start));
            out.put_slice(&frame[..start]);
            out.put_slice(&frame[end..]);
            return out.freeze();
        }
        start = end;
    }
    frame.clone()
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn put_varint(buf: &mut BytesMut, mut n: usize) {
    while n >= 0x80 {
        buf.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<usize> {
    let mut n: usize = 0;
    for shift in (0..usize::BITS).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        n |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::journal::Offset;
    use proptest::prelude::*;

    const ID: JournalId = JournalId {
        epoch: 0x2a,
        offset: Offset::Seq(7),
    };

    #[test]
    fn a_channel_record_round_trips_and_gets_its_id() {
        let frame = Event::with_type("t", "a\nb").encode().unwrap();
        let body = encode(ADD_ID, ["news", "user:ü"].into_iter(), &frame);
        let record = decode(&body).unwrap();
        assert!(!record.everyone());
        assert!(record.replayable());
        assert_eq!(record.names().collect::<Vec<_>>(), ["news", "user:ü"]);
        assert_eq!(
            &record.frame(ID)[..],
            b"id: 0000002a-7\nevent: t\ndata: a\ndata: b\n\n"
        );
        assert!(record.reaches(&["x".into(), "news".into()]));
        assert!(!record.reaches(&["x".into()]));
    }

    #[test]
    fn broadcasts_transients_and_raw_frames_keep_their_bytes() {
        let frame = Event::new("tick").encode().unwrap();
        let record = decode(&encode(EVERYONE | TRANSIENT, std::iter::empty(), &frame)).unwrap();
        assert!(record.everyone());
        assert!(!record.replayable());
        assert!(record.reaches(&[]));
        assert_eq!(record.frame(ID), frame);
        let raw = Event::new("x").with_id("mine").encode().unwrap();
        let record = decode(&encode(0, ["a"].into_iter(), &raw)).unwrap();
        assert_eq!(record.frame(ID), raw);
    }

    #[test]
    fn foreign_and_corrupt_records_are_refused() {
        for body in [
            &b""[..],
            b"\x01",
            b"\x02\x00\x00",             // another version
            b"\x01\x08\x00",             // an unknown flag
            b"\x01\x00\x05ab",           // more names than bytes
            b"\x01\x00\x01\x05ab",       // a name past the end
            b"\x01\x00\x01\x02\xff\xfe", // not UTF-8
            b"\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", // varint overflow
            b"hello",
        ] {
            assert!(decode(&Bytes::copy_from_slice(body)).is_none(), "{body:?}");
        }
    }

    #[test]
    fn the_id_line_is_stripped_and_nothing_else() {
        let with = Event::with_type("t", "id: in data")
            .with_id("n1")
            .with_comment("id: in a comment")
            .encode()
            .unwrap();
        let without = Event::with_type("t", "id: in data")
            .with_comment("id: in a comment")
            .encode()
            .unwrap();
        assert_eq!(strip_id_line(&with), without);
        assert_eq!(strip_id_line(&without), without);
        let only_id = Event::empty().with_id("x").encode().unwrap();
        assert_eq!(&strip_id_line(&only_id)[..], b"\n");
    }

    proptest! {
        #[test]
        fn records_round_trip(
            flags in 0u8..8,
            names in proptest::collection::vec("[a-z:é]{0,300}", 0..5),
            frame in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let body = encode(flags, names.iter().map(String::as_str), &frame);
            let record = decode(&body).unwrap();
            prop_assert_eq!(record.names().collect::<Vec<_>>(), names.iter().map(String::as_str).collect::<Vec<_>>());
            prop_assert_eq!(record.everyone(), flags & EVERYONE != 0);
            prop_assert_eq!(record.replayable(), flags & TRANSIENT == 0);
            let framed = record.frame(ID);
            if flags & ADD_ID == 0 {
                prop_assert_eq!(&framed[..], &frame[..]);
            } else {
                prop_assert!(framed.ends_with(&frame));
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&Bytes::from(body));
        }
    }
}
