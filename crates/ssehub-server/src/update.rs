//! An update as it travels through the log: the record a publish appends
//! (encoded once, by the publishing node) and the [`Update`] every node
//! rebuilds from it to fan out and to replay.
//!
//! The record holds what routing needs (topics, the private flag, a
//! publisher-chosen id) and the event already encoded without its `id:`
//! line; the hub-generated id is the record's position in the log, known
//! only once the log stored it. Each node therefore prepends one line to
//! shared bytes instead of encoding the event again.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! u8  version (1)
//! u8  flags: 1 = private, 2 = a publisher-chosen id follows the topics
//! u64 publication time, microseconds since the Unix epoch
//! u16 topic count, then per topic: u32 length, UTF-8 bytes
//! [u32 length, UTF-8 bytes of the publisher's id]
//! the rest: the encoded event without its id line
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use ssehub::journal::{JournalId, Record};
use ssehub::{Event, EventError};

/// An update as a publisher asked for it, validated.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewUpdate {
    pub topics: Vec<Arc<str>>,
    pub data: String,
    pub id: Option<String>,
    pub event_type: Option<String>,
    pub retry: Option<Duration>,
    pub private: bool,
}

const VERSION: u8 = 1;
const PRIVATE: u8 = 1;
const CALLER_ID: u8 = 2;

/// One update, rebuilt from its record.
#[derive(Debug, Clone)]
pub(crate) struct Update {
    /// Its position in the log.
    pub position: JournalId,
    /// The SSE id on the wire: the publisher's, or `#` and the position.
    pub id: Arc<str>,
    /// Whether the publisher chose the id.
    pub caller_id: bool,
    /// Its topics (one, or several with alternate topics).
    pub topics: Arc<[Arc<str>]>,
    /// Marked private.
    pub private: bool,
    /// The encoded frame, `id:` line included, shared by every delivery.
    pub frame: Bytes,
    /// When it was published (the publishing node's clock).
    pub published_us: u64,
}

/// A record that is not one of the hub's updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Another version of the layout (a newer hub on the same log).
    #[error("update record of unknown version {0}")]
    Version(u8),
    /// Cut short, or a length that overruns the record.
    #[error("update record truncated")]
    Truncated,
    /// A topic or id that is not UTF-8.
    #[error("update record holds text that is not UTF-8")]
    Utf8,
}

/// The hub-generated SSE id of the update at `position`: a relative IRI made
/// of a fragment, which publishers may not use (their ids cannot start with
/// `#`), and free of the bytes that would make a cross-origin
/// `Last-Event-ID` need a CORS preflight.
pub(crate) fn generated_id(position: JournalId) -> String {
    with_generated_id(position, str::to_owned)
}

/// [`generated_id`], shared: one allocation.
fn shared_generated_id(position: JournalId) -> Arc<str> {
    with_generated_id(position, |id| Arc::from(id))
}

/// `f` on the id of the update at `position`, formatted on the stack.
fn with_generated_id<T>(position: JournalId, f: impl FnOnce(&str) -> T) -> T {
    let mut text = [0; JournalId::MAX_LEN];
    let text = position.write_text(&mut text);
    let mut buf = [b'#'; 1 + JournalId::MAX_LEN];
    buf[1..=text.len()].copy_from_slice(text.as_bytes());
    // `#` and the id's ASCII.
    f(std::str::from_utf8(&buf[..=text.len()]).unwrap_or_default())
}

/// The position a hub-generated id names.
pub(crate) fn parse_generated(id: &str) -> Option<JournalId> {
    id.strip_prefix('#')?.parse().ok()
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The record of `new`, published now.
///
/// # Errors
/// When a field cannot be encoded as SSE (the request parser refuses those
/// first).
pub(crate) fn encode(new: NewUpdate, published_us: u64) -> Result<Bytes, EventError> {
    let mut event = Event::new(new.data);
    if let Some(kind) = new.event_type {
        event = event.with_event(kind);
    }
    if let Some(retry) = new.retry {
        event = event.with_retry(retry);
    }
    if let Some(id) = &new.id {
        // Checked here, where the whole event is, rather than when a node
        // prepends the line.
        Event::new("").with_id(id).validate()?;
    }
    let topics_len: usize = new.topics.iter().map(|t| 4 + t.len()).sum();
    let id_len = new.id.as_ref().map_or(0, |id| 4 + id.len());
    let mut buf = BytesMut::with_capacity(12 + topics_len + id_len + event.encoded_len());
    buf.put_u8(VERSION);
    let mut flags = 0;
    if new.private {
        flags |= PRIVATE;
    }
    if new.id.is_some() {
        flags |= CALLER_ID;
    }
    buf.put_u8(flags);
    buf.put_u64_le(published_us);
    // The request parser bounds topics (count and length) far below these.
    buf.put_u16_le(u16::try_from(new.topics.len()).unwrap_or(u16::MAX));
    for topic in new.topics.iter().take(usize::from(u16::MAX)) {
        put_text(&mut buf, topic);
    }
    if let Some(id) = &new.id {
        put_text(&mut buf, id);
    }
    event.encode_into(&mut buf)?;
    Ok(buf.freeze())
}

fn put_text(buf: &mut BytesMut, text: &str) {
    buf.put_u32_le(u32::try_from(text.len()).unwrap_or(u32::MAX));
    buf.put_slice(text.as_bytes());
}

/// Rebuilds the update a record holds.
///
/// # Errors
/// [`RecordError`] for a record the hub did not write.
pub(crate) fn decode(record: &Record) -> Result<Update, RecordError> {
    let mut reader = Reader(&record.body[..]);
    let version = reader.u8()?;
    if version != VERSION {
        return Err(RecordError::Version(version));
    }
    let flags = reader.u8()?;
    let published_us = u64::from_le_bytes(reader.take(8)?.try_into().expect("8 bytes"));
    let count = u16::from_le_bytes(reader.take(2)?.try_into().expect("2 bytes"));
    // One topic (the usual update) in one allocation; collecting goes
    // through a `Vec` first.
    let topics: Arc<[Arc<str>]> = if count == 1 {
        Arc::new([Arc::from(reader.text()?)])
    } else {
        (0..count)
            .map(|_| reader.text().map(Arc::from))
            .collect::<Result<_, _>>()?
    };
    let caller_id = flags & CALLER_ID != 0;
    let id: Arc<str> = if caller_id {
        reader.text()?.into()
    } else {
        shared_generated_id(record.id)
    };
    let tail = record.body.slice(record.body.len() - reader.0.len()..);
    let mut frame = BytesMut::with_capacity(5 + id.len() + tail.len());
    frame.put_slice(b"id: ");
    frame.put_slice(id.as_bytes());
    frame.put_u8(b'\n');
    frame.put_slice(&tail);
    Ok(Update {
        position: record.id,
        id,
        caller_id,
        topics,
        private: flags & PRIVATE != 0,
        frame: frame.freeze(),
        published_us,
    })
}

/// How long ago `published_us` was, by this node's clock.
pub(crate) fn age(published_us: u64) -> Duration {
    Duration::from_micros(now_us().saturating_sub(published_us))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }

    fn text(&mut self) -> Result<&'a str, RecordError> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        let bytes = self.take(usize::try_from(len).map_err(|_| RecordError::Truncated)?)?;
        std::str::from_utf8(bytes).map_err(|_| RecordError::Utf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssehub::journal::Offset;

    fn position(seq: u64) -> JournalId {
        JournalId {
            epoch: 0xabc,
            offset: Offset::Seq(seq),
        }
    }

    fn new_update() -> NewUpdate {
        NewUpdate {
            topics: vec!["https://example.com/a".into(), "urn:b".into()],
            data: "line one\nline two".into(),
            id: None,
            event_type: Some("change".into()),
            retry: Some(Duration::from_millis(1500)),
            private: true,
        }
    }

    #[test]
    fn an_update_survives_the_log_with_a_generated_id() {
        let body = encode(new_update(), 42).unwrap();
        let update = decode(&Record {
            id: position(7),
            body,
        })
        .unwrap();
        assert_eq!(&*update.id, "#00000abc-7");
        assert!(!update.caller_id && update.private);
        assert_eq!(update.published_us, 42);
        assert_eq!(&*update.topics[1], "urn:b");
        assert_eq!(
            &update.frame[..],
            b"id: #00000abc-7\nevent: change\nretry: 1500\ndata: line one\ndata: line two\n\n"
        );
    }

    #[test]
    fn a_publisher_id_is_kept_and_a_public_update_stays_public() {
        let new = NewUpdate {
            id: Some("urn:uuid:1".into()),
            private: false,
            event_type: None,
            retry: None,
            ..new_update()
        };
        let update = decode(&Record {
            id: position(1),
            body: encode(new, 0).unwrap(),
        })
        .unwrap();
        assert!(update.caller_id && !update.private);
        assert_eq!(
            &update.frame[..],
            b"id: urn:uuid:1\ndata: line one\ndata: line two\n\n"
        );
    }

    #[test]
    fn foreign_or_damaged_records_are_errors_not_panics() {
        let body = encode(new_update(), 1).unwrap();
        // Version, flags, time, count, then the two topics.
        let header = 12 + (4 + 21) + (4 + 5);
        for cut in 0..header {
            let record = Record {
                id: position(1),
                body: body.slice(..cut),
            };
            assert!(decode(&record).is_err(), "cut at {cut}");
        }
        let mut other = body.to_vec();
        other[0] = 9;
        let record = Record {
            id: position(1),
            body: other.into(),
        };
        assert_eq!(decode(&record).unwrap_err(), RecordError::Version(9));
    }

    #[test]
    fn generated_ids_name_their_position() {
        let id = generated_id(position(42));
        assert_eq!(parse_generated(&id), Some(position(42)));
        assert_eq!(parse_generated("00000abc-42"), None);
        assert_eq!(parse_generated("#00000abc-"), None);
        let stream = JournalId {
            epoch: 1,
            offset: Offset::Stream { ms: 17, seq: 3 },
        };
        assert_eq!(generated_id(stream), "#00000001-17-3");
        assert_eq!(parse_generated("#00000001-17-3"), Some(stream));
        let longest = JournalId {
            epoch: u32::MAX,
            offset: Offset::Stream {
                ms: u64::MAX,
                seq: u64::MAX,
            },
        };
        for id in [position(42), stream, longest] {
            assert_eq!(*shared_generated_id(id), generated_id(id));
        }
        assert_eq!(generated_id(longest).len(), 1 + JournalId::MAX_LEN);
    }
}
