//! Incremental parser for `text/event-stream`, following the WHATWG
//! [event stream interpretation] exactly.
//!
//! The [`Parser`] is fed bytes as they arrive, in chunks of any size and split anywhere (inside
//! a CRLF pair, inside the byte order mark, inside a multi-byte character), and yields
//! [`Item`]s: dispatched [`Message`]s, comments and reconnection times. It is pure code with no
//! I/O, used by ssehub's own client, tests and benchmarks.
//!
//! What the specification says, and this parser does:
//!
//! * one UTF-8 byte order mark at the very start of the stream is skipped; bytes are decoded as
//!   UTF-8 with U+FFFD for invalid sequences;
//! * lines end with CRLF, a lone LF or a lone CR;
//! * a line starting with `:` is a comment; a line without `:` is a field name with an empty
//!   value; otherwise one space after the first `:` is removed from the value;
//! * `event` sets the event type, `data` appends the value and a LF to the data buffer, `id`
//!   sets the last event id unless the value contains NUL, `retry` sets the reconnection time if
//!   the value is ASCII digits; any other field is ignored;
//! * a blank line dispatches: the last event id is updated (even when no event fires), and if
//!   the data buffer is not empty a message fires with its last LF removed and type `message`
//!   unless an event type was given;
//! * at the end of the stream an incomplete event is discarded.
//!
//! One addition for safety: the parser is bounded (see [`Parser::with_max_event_size`]), so a
//! peer cannot make it buffer without limit.
//!
//! ```
//! use ssehub::parse::{Item, Message, Parser};
//!
//! let mut parser = Parser::new();
//! let mut items = parser.parse(b"event: add\ndata: 73\nid: 1\n\nda");
//! items.extend(parser.parse(b"ta: 5\r\n\r\n"));
//! assert_eq!(
//!     items,
//!     [
//!         Item::Message(Message {
//!             event: "add".into(),
//!             data: "73".into(),
//!             last_event_id: "1".into(),
//!         }),
//!         Item::Message(Message {
//!             event: "message".into(),
//!             data: "5".into(),
//!             last_event_id: "1".into(),
//!         }),
//!     ]
//! );
//! ```
//!
//! See also MDN's [Using server-sent events] and the [WHATWG specification].
//!
//! [event stream interpretation]: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
//! [Using server-sent events]: https://developer.mozilla.org/en-US/docs/Web/API/Server-sent_events/Using_server-sent_events
//! [WHATWG specification]: https://html.spec.whatwg.org/multipage/server-sent-events.html

use std::borrow::Cow;
use std::collections::VecDeque;
use std::mem;
use std::time::Duration;

/// The UTF-8 encoding of U+FEFF, skipped once at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Default for [`Parser::with_max_event_size`]: 16 MiB.
///
/// ```
/// use ssehub::parse::{Parser, DEFAULT_MAX_EVENT_SIZE};
///
/// assert_eq!(Parser::new().max_event_size(), DEFAULT_MAX_EVENT_SIZE);
/// ```
pub const DEFAULT_MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;

/// Something the [`Parser`] recognised in the stream, in stream order.
///
/// ```
/// use std::time::Duration;
/// use ssehub::parse::{Item, Parser};
///
/// let items = Parser::new().parse(b": hi\nretry: 10\n\n");
/// assert_eq!(items, [Item::Comment(" hi".into()), Item::Retry(Duration::from_millis(10))]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A dispatched event.
    Message(Message),
    /// A comment line: the raw text after the leading `:`, including any leading space (a
    /// comment has no value syntax, so nothing is stripped).
    Comment(String),
    /// A valid `retry` field was seen; the parser's
    /// [`reconnection_time`](Parser::reconnection_time) is now this value. Emitted when the line
    /// is read, not when the event is dispatched, as the specification applies it immediately.
    Retry(Duration),
    /// The event in progress exceeded the parser's size limit and was dropped, up to and
    /// including its terminating blank line. The stream stays usable: parsing resumes with the
    /// next event.
    Error(ParseError),
}

/// A dispatched event, as an `EventSource` would deliver it as a `MessageEvent`.
///
/// ```
/// use ssehub::parse::{Item, Message, Parser};
///
/// let items = Parser::new().parse(b"data: a\ndata: b\n\n");
/// let expected = Message { event: "message".into(), data: "a\nb".into(), last_event_id: String::new() };
/// assert_eq!(items, [Item::Message(expected)]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The event type: the last `event` field of the event, or `message` when it had none or
    /// an empty one.
    pub event: String,
    /// The `data` field values joined with `\n`.
    pub data: String,
    /// The stream's last event id when this event was dispatched (`""` if none was ever set or
    /// it was reset with an empty `id`).
    pub last_event_id: String,
}

/// Why the parser dropped input (see [`Item::Error`]).
///
/// ```
/// use ssehub::parse::{Item, ParseError, Parser};
///
/// let items = Parser::new().with_max_event_size(8).parse(b"data: 0123456789\n\ndata: ok\n\n");
/// assert_eq!(items[0], Item::Error(ParseError::EventTooLarge { limit: 8 }));
/// assert!(matches!(&items[1], Item::Message(m) if m.data == "ok"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The event in progress needed more than `limit` buffered bytes.
    #[error("event exceeds the maximum size of {limit} bytes")]
    EventTooLarge {
        /// The configured [`Parser::max_event_size`].
        limit: usize,
    },
}

/// An incremental, bounded event stream parser.
///
/// Feed it bytes with [`feed`](Parser::feed), take complete items with
/// [`next_item`](Parser::next_item) or [`drain`](Parser::drain) (or do both with
/// [`parse`](Parser::parse)), and call [`finish`](Parser::finish) when the connection ends.
/// Like an `EventSource`, one parser can follow a stream across reconnections: after
/// `finish`, feed it the next connection's bytes and the last event id and reconnection time
/// carry over.
///
/// ```
/// use ssehub::parse::{Item, Parser};
///
/// let mut parser = Parser::new();
/// // One byte at a time, with a CRLF split between chunks.
/// for byte in b"id: 7\r\ndata: x\r\n\r\n" {
///     parser.feed(&[*byte]);
/// }
/// let Some(Item::Message(message)) = parser.next_item() else { panic!() };
/// assert_eq!((message.data.as_str(), message.last_event_id.as_str()), ("x", "7"));
/// assert_eq!(parser.next_item(), None);
/// ```
#[derive(Debug, Clone)]
pub struct Parser {
    /// Complete items not yet taken by the caller.
    items: VecDeque<Item>,
    /// Bytes of the current line seen so far, when it spans chunks.
    line: Vec<u8>,
    /// The spec's data buffer.
    data: String,
    /// The spec's event type buffer.
    event_type: String,
    /// The spec's last event ID buffer (set by `id` fields, read at dispatch).
    id_buffer: String,
    /// The last event ID string of the event source (set at dispatch).
    last_event_id: String,
    /// The last valid `retry` value seen.
    reconnection_time: Option<Duration>,
    /// The previous chunk ended with CR: a LF starting the next chunk belongs to that line end.
    after_cr: bool,
    /// `Some(n)` while still at the start of the stream, having matched `n` bytes of the BOM;
    /// `None` once past it.
    bom_matched: Option<usize>,
    /// Whether we are discarding an oversized event.
    mode: Mode,
    /// Limit on buffered bytes for the event in progress.
    max_event_size: usize,
}

/// Whether lines are being interpreted or discarded after an overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Dropping the rest of an oversized event until its blank line. `line_has_bytes` tells
    /// whether the line being dropped is non-empty so far (so its end is not a blank line).
    Skipping {
        line_has_bytes: bool,
    },
}

impl Default for Parser {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
            line: Vec::new(),
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            last_event_id: String::new(),
            reconnection_time: None,
            after_cr: false,
            bom_matched: Some(0),
            mode: Mode::Normal,
            max_event_size: DEFAULT_MAX_EVENT_SIZE,
        }
    }
}

impl Parser {
    /// A parser at the start of a stream, with the default size limit
    /// ([`DEFAULT_MAX_EVENT_SIZE`]).
    ///
    /// ```
    /// use ssehub::parse::Parser;
    ///
    /// let parser = Parser::new();
    /// assert_eq!(parser.last_event_id(), "");
    /// assert_eq!(parser.reconnection_time(), None);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the maximum number of bytes the parser buffers for one event: the data collected so
    /// far plus the current, incomplete line (field name included). The default is
    /// [`DEFAULT_MAX_EVENT_SIZE`] (16 MiB), so a 1 MiB single-line event parses fine.
    ///
    /// An event that would exceed it is dropped up to its blank line, and an
    /// [`Item::Error`] takes its place; the bytes being skipped are not buffered. Lines that
    /// are not part of an event (comments, `retry`) are bounded by the same limit.
    ///
    /// ```
    /// use ssehub::parse::{Item, Parser};
    ///
    /// let mut parser = Parser::new().with_max_event_size(1024);
    /// let items = parser.parse(&[b'x'; 2000]);
    /// assert!(matches!(items[..], [Item::Error(_)]));
    /// ```
    #[must_use]
    pub fn with_max_event_size(mut self, max: usize) -> Self {
        self.max_event_size = max;
        self
    }

    /// The configured limit (see [`with_max_event_size`](Parser::with_max_event_size)).
    ///
    /// ```
    /// use ssehub::parse::Parser;
    ///
    /// assert_eq!(Parser::new().with_max_event_size(10).max_event_size(), 10);
    /// ```
    #[must_use]
    pub fn max_event_size(&self) -> usize {
        self.max_event_size
    }

    /// Feeds the next bytes of the stream. Complete items become available from
    /// [`next_item`](Parser::next_item) and [`drain`](Parser::drain).
    ///
    /// A line is interpreted as soon as its end is seen; a CR at the end of a chunk ends the
    /// line at once, and a LF at the start of the next chunk is then recognised as part of it.
    ///
    /// ```
    /// use ssehub::parse::Parser;
    ///
    /// let mut parser = Parser::new();
    /// parser.feed(b"data: 1\r");
    /// parser.feed(b"\r");
    /// assert!(parser.next_item().is_some());
    /// parser.feed(b"\n"); // would be a second blank line if it did not pair with the CR
    /// assert!(parser.next_item().is_none());
    /// ```
    pub fn feed(&mut self, chunk: &[u8]) {
        let chunk = self.strip_bom(chunk);
        self.consume(chunk);
    }

    /// Takes the next complete item, if any.
    ///
    /// ```
    /// use ssehub::parse::{Item, Parser};
    ///
    /// let mut parser = Parser::new();
    /// parser.feed(b":a\n:b\n");
    /// assert_eq!(parser.next_item(), Some(Item::Comment("a".into())));
    /// assert_eq!(parser.next_item(), Some(Item::Comment("b".into())));
    /// assert_eq!(parser.next_item(), None);
    /// ```
    pub fn next_item(&mut self) -> Option<Item> {
        self.items.pop_front()
    }

    /// An iterator taking every complete item now available.
    ///
    /// ```
    /// use ssehub::parse::Parser;
    ///
    /// let mut parser = Parser::new();
    /// parser.feed(b"data: a\n\ndata: b\n\n");
    /// assert_eq!(parser.drain().count(), 2);
    /// assert_eq!(parser.drain().count(), 0);
    /// ```
    pub fn drain(&mut self) -> Drain<'_> {
        Drain { parser: self }
    }

    /// Feeds `chunk` and returns every complete item now available.
    ///
    /// ```
    /// use ssehub::parse::{Item, Parser};
    ///
    /// let mut parser = Parser::new();
    /// assert!(parser.parse(b"data: x").is_empty());
    /// assert!(matches!(&parser.parse(b"\n\n")[..], [Item::Message(_)]));
    /// ```
    pub fn parse(&mut self, chunk: &[u8]) -> Vec<Item> {
        self.feed(chunk);
        self.items.drain(..).collect()
    }

    /// Ends the stream: an incomplete line and an event without its blank line are discarded,
    /// as the specification requires. Items already complete stay available.
    ///
    /// The parser is then ready for the next connection's stream (a leading BOM is skipped
    /// again). The last event id and reconnection time are kept; an `id` of the discarded event
    /// is forgotten, since it never reached the last event id (browsers behave the same way).
    ///
    /// ```
    /// use ssehub::parse::Parser;
    ///
    /// let mut parser = Parser::new();
    /// parser.feed(b"id: 1\ndata: complete\n\nid: 2\ndata: cut off\n");
    /// parser.finish();
    /// assert_eq!(parser.drain().count(), 1);
    /// assert_eq!(parser.last_event_id(), "1");
    /// ```
    pub fn finish(&mut self) {
        self.line = Vec::new();
        self.data = String::new();
        self.event_type.clear();
        self.id_buffer.clone_from(&self.last_event_id);
        self.after_cr = false;
        self.bom_matched = Some(0);
        self.mode = Mode::Normal;
    }

    /// The last event id: set at each dispatch from the `id` fields seen so far, and kept until
    /// a later `id` changes it (an empty `id` resets it to `""`). A client sends it as
    /// `Last-Event-ID` when it reconnects.
    ///
    /// ```
    /// use ssehub::parse::Parser;
    ///
    /// let mut parser = Parser::new();
    /// parser.feed(b"id: 5\n\n"); // no data: no event fires, but the id is taken
    /// assert_eq!(parser.last_event_id(), "5");
    /// parser.feed(b"id\n\n");
    /// assert_eq!(parser.last_event_id(), "");
    /// ```
    #[must_use]
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time from the last valid `retry` field, if any.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ssehub::parse::Parser;
    ///
    /// let mut parser = Parser::new();
    /// parser.feed(b"retry: 1500\nretry: soon\n");
    /// assert_eq!(parser.reconnection_time(), Some(Duration::from_millis(1500)));
    /// ```
    #[must_use]
    pub fn reconnection_time(&self) -> Option<Duration> {
        self.reconnection_time
    }

    /// Skips a UTF-8 BOM at the start of the stream, which may arrive split across chunks.
    /// Bytes held back because they looked like the start of a BOM are fed as ordinary input
    /// once they turn out not to be one.
    fn strip_bom<'c>(&mut self, mut chunk: &'c [u8]) -> &'c [u8] {
        while let Some(matched) = self.bom_matched {
            let Some((&byte, rest)) = chunk.split_first() else {
                break;
            };
            if BOM.get(matched) == Some(&byte) {
                chunk = rest;
                let matched = matched + 1;
                self.bom_matched = (matched < BOM.len()).then_some(matched);
            } else {
                self.bom_matched = None;
                self.consume(&BOM[..matched]);
            }
        }
        chunk
    }

    /// Splits bytes into lines and interprets each complete one.
    fn consume(&mut self, mut bytes: &[u8]) {
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while !bytes.is_empty() {
            let Some(end) = bytes.iter().position(|&b| b == b'\r' || b == b'\n') else {
                self.buffer_partial_line(bytes);
                return;
            };
            let (line, rest) = bytes.split_at(end);
            let rest = match rest {
                [b'\r', b'\n', rest @ ..] => rest,
                [b'\r'] => {
                    // The LF of a CRLF may be the first byte of the next chunk.
                    self.after_cr = true;
                    &[]
                }
                [_, rest @ ..] => rest,
                [] => &[],
            };
            self.end_line(line);
            bytes = rest;
        }
    }

    /// Keeps the start of a line that continues in a later chunk, within the size limit.
    fn buffer_partial_line(&mut self, bytes: &[u8]) {
        match self.mode {
            Mode::Skipping { .. } => {
                self.mode = Mode::Skipping {
                    line_has_bytes: true,
                };
            }
            Mode::Normal => {
                if self.exceeds_limit(self.line.len() + bytes.len()) {
                    self.overflow(Mode::Skipping {
                        line_has_bytes: true,
                    });
                } else {
                    self.line.extend_from_slice(bytes);
                }
            }
        }
    }

    /// A line end was seen; `tail` is the part of the line in the current chunk.
    fn end_line(&mut self, tail: &[u8]) {
        if let Mode::Skipping { line_has_bytes } = self.mode {
            let blank = !line_has_bytes && tail.is_empty();
            self.mode = if blank {
                // The oversized event ends here; it is not dispatched.
                Mode::Normal
            } else {
                Mode::Skipping {
                    line_has_bytes: false,
                }
            };
            return;
        }
        if self.exceeds_limit(self.line.len() + tail.len()) {
            self.overflow(Mode::Skipping {
                line_has_bytes: false,
            });
        } else if self.line.is_empty() {
            // Common case: the whole line is in this chunk, interpret it in place.
            self.process_line(tail);
        } else {
            let mut line = mem::take(&mut self.line);
            line.extend_from_slice(tail);
            self.process_line(&line);
        }
    }

    /// True if buffering a line of `line_len` bytes would exceed the limit for this event.
    fn exceeds_limit(&self, line_len: usize) -> bool {
        self.data.len().saturating_add(line_len) > self.max_event_size
    }

    /// Drops the event in progress and reports it; lines are then skipped until a blank line.
    fn overflow(&mut self, mode: Mode) {
        self.line = Vec::new();
        self.data = String::new();
        self.event_type.clear();
        self.mode = mode;
        self.items.push_back(Item::Error(ParseError::EventTooLarge {
            limit: self.max_event_size,
        }));
    }

    /// Interprets one complete line (without its line end).
    ///
    /// Lines are split into field and value as bytes and only the parts that are kept are
    /// decoded. That gives the same result as decoding the whole stream first: `:`, space, CR
    /// and LF are ASCII, and UTF-8 never uses ASCII bytes inside a multi-byte sequence, so
    /// these splits never cut a character, and an invalid sequence cut by them decodes to the
    /// same U+FFFD either way.
    fn process_line(&mut self, line: &[u8]) {
        match line {
            [] => self.dispatch(),
            [b':', comment @ ..] => self.items.push_back(Item::Comment(decode(comment).into())),
            _ => {
                let (field, value) = match line.iter().position(|&b| b == b':') {
                    Some(colon) => {
                        let value = &line[colon + 1..];
                        (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                    }
                    None => (line, &[][..]),
                };
                self.process_field(field, value);
            }
        }
    }

    /// The specification's "process the field" steps.
    fn process_field(&mut self, field: &[u8], value: &[u8]) {
        match field {
            b"event" => self.event_type = decode(value).into_owned(),
            b"data" => {
                self.data.push_str(&decode(value));
                self.data.push('\n');
            }
            // NUL is only ever the byte 0 in UTF-8, so checking bytes is exact.
            b"id" if !value.contains(&0) => self.id_buffer = decode(value).into_owned(),
            b"retry" => {
                if let Some(millis) = parse_retry(value) {
                    let retry = Duration::from_millis(millis);
                    self.reconnection_time = Some(retry);
                    self.items.push_back(Item::Retry(retry));
                }
            }
            _ => {}
        }
    }

    /// The specification's dispatch steps for a blank line.
    fn dispatch(&mut self) {
        // The last event id is taken even if no event fires, and the buffer is not reset.
        self.last_event_id.clone_from(&self.id_buffer);
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event = match mem::take(&mut self.event_type) {
            event if event.is_empty() => String::from("message"),
            event => event,
        };
        self.items.push_back(Item::Message(Message {
            event,
            data,
            last_event_id: self.last_event_id.clone(),
        }));
    }
}

/// Iterator returned by [`Parser::drain`]: takes the parser's complete items in order.
///
/// ```
/// use ssehub::parse::{Item, Parser};
///
/// let mut parser = Parser::new();
/// parser.feed(b": one\n: two\n");
/// let comments: Vec<Item> = parser.drain().collect();
/// assert_eq!(comments.len(), 2);
/// ```
#[derive(Debug)]
pub struct Drain<'a> {
    parser: &'a mut Parser,
}

impl Iterator for Drain<'_> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        self.parser.next_item()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.parser.items.len();
        (len, Some(len))
    }
}

impl ExactSizeIterator for Drain<'_> {}

/// UTF-8 decoding with U+FFFD for invalid sequences, as the specification requires.
fn decode(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// A `retry` value: one or more ASCII digits, in milliseconds. A value too large for `u64`
/// milliseconds (about 584 million years) is ignored like any other unusable value.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &digit| {
        acc.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(event: &str, data: &str, id: &str) -> Item {
        Item::Message(Message {
            event: event.into(),
            data: data.into(),
            last_event_id: id.into(),
        })
    }

    fn parse_all(input: &[u8]) -> Vec<Item> {
        let mut parser = Parser::new();
        let items = parser.parse(input);
        // Every split into two chunks, and byte-at-a-time, must give the same items.
        for split in 0..=input.len() {
            let mut p = Parser::new();
            let mut two = p.parse(&input[..split]);
            two.extend(p.parse(&input[split..]));
            assert_eq!(two, items, "split at {split}");
        }
        let mut p = Parser::new();
        let bytewise: Vec<Item> = input.iter().flat_map(|b| p.parse(&[*b])).collect();
        assert_eq!(bytewise, items, "byte at a time");
        items
    }

    fn messages(input: &[u8]) -> Vec<Item> {
        parse_all(input)
            .into_iter()
            .filter(|item| matches!(item, Item::Message(_)))
            .collect()
    }

    #[test]
    fn spec_stock_example() {
        assert_eq!(
            parse_all(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
            [msg("message", "YHOO\n+2\n10", "")]
        );
    }

    #[test]
    fn spec_four_blocks_example() {
        let stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n";
        assert_eq!(
            parse_all(stream),
            [
                Item::Comment(" test stream".into()),
                msg("message", "first event", "1"),
                msg("message", "second event", ""),
                msg("message", " third event", ""),
            ]
        );
        // "the end of the stream is not enough to trigger the dispatch of the last event"
        let mut parser = Parser::new();
        let items = parser.parse(b"data: first event\nid: 1\n\ndata:  third event\n");
        parser.finish();
        assert_eq!(items, [msg("message", "first event", "1")]);
        assert_eq!(parser.next_item(), None);
    }

    #[test]
    fn spec_empty_data_example() {
        let mut parser = Parser::new();
        let items = parser.parse(b"data\n\ndata\ndata\n\ndata:");
        parser.finish();
        assert_eq!(items, [msg("message", "", ""), msg("message", "\n", "")]);
        assert_eq!(parser.next_item(), None);
        assert_eq!(
            messages(b"data\n\ndata\ndata\n\ndata:\n\n"),
            [
                msg("message", "", ""),
                msg("message", "\n", ""),
                msg("message", "", "")
            ]
        );
    }

    #[test]
    fn spec_space_after_colon_example() {
        assert_eq!(
            parse_all(b"data:test\n\ndata: test\n\n"),
            [msg("message", "test", ""), msg("message", "test", "")]
        );
    }

    #[test]
    fn spec_event_types_example() {
        let stream = b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n";
        assert_eq!(
            parse_all(stream),
            [
                msg("add", "73857293", ""),
                msg("remove", "2153", ""),
                msg("add", "113411", "")
            ]
        );
    }

    #[test]
    fn line_ends_cr_lf_crlf_mixed() {
        assert_eq!(
            messages(b"data: a\rdata: b\r\ndata: c\n\r\n\r"),
            [msg("message", "a\nb\nc", "")]
        );
        assert_eq!(
            messages(b"data: 1\r\rdata: 2\n\ndata: 3\r\n\r\n"),
            [
                msg("message", "1", ""),
                msg("message", "2", ""),
                msg("message", "3", "")
            ]
        );
        // LF CR is two line ends, CR LF is one.
        assert_eq!(
            messages(b"data: x\n\rdata: y\r\n\n"),
            [msg("message", "x", ""), msg("message", "y", "")]
        );
    }

    #[test]
    fn cr_at_chunk_end_pairs_with_next_lf() {
        let mut parser = Parser::new();
        assert!(parser.parse(b"data: a\r").is_empty());
        assert!(parser.parse(b"\ndata: b\r").is_empty());
        assert!(parser.parse(b"").is_empty()); // an empty chunk must not lose the pending CR
        assert!(parser.parse(b"\n").is_empty());
        assert_eq!(parser.parse(b"\r"), [msg("message", "a\nb", "")]);
        assert!(parser.parse(b"\n").is_empty());
        assert!(parser.parse(b"\n").is_empty()); // a real second blank line: nothing to dispatch
    }

    #[test]
    fn bom_skipped_once_at_start() {
        assert_eq!(
            messages(b"\xEF\xBB\xBFdata: x\n\n"),
            [msg("message", "x", "")]
        );
        // A BOM at the start of a line later in the stream is part of the field name.
        assert_eq!(
            messages(b"\xEF\xBB\xBFdata: x\n\n\xEF\xBB\xBFdata: y\n\n"),
            [msg("message", "x", "")]
        );
        // Only one BOM is stripped.
        assert!(messages(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n").is_empty());
        // A BOM inside data is kept.
        assert_eq!(
            messages("data: \u{FEFF}x\n\n".as_bytes()),
            [msg("message", "\u{FEFF}x", "")]
        );
    }

    #[test]
    fn partial_bom_is_ordinary_input() {
        // EF BB followed by something else: not a BOM, so the line is "\u{FFFD}data: x" (an
        // unknown field) and nothing fires.
        assert!(messages(b"\xEF\xBBdata: x\n\n").is_empty());
        // A comment line starting with a lone EF byte is an unknown field, not a comment.
        assert!(parse_all(b"\xEF:c\n").is_empty());
        let mut parser = Parser::new();
        parser.feed(b"\xEF");
        parser.feed(b"\xBB");
        parser.feed(b"\xBF: after bom\n");
        assert_eq!(parser.next_item(), Some(Item::Comment(" after bom".into())));
    }

    #[test]
    fn invalid_utf8_replaced_and_multibyte_split() {
        assert_eq!(
            messages(b"data: a\xFFb\xE2\x82\n\n"),
            [msg("message", "a\u{FFFD}b\u{FFFD}", "")]
        );
        assert_eq!(
            messages("data: é€😀\n\n".as_bytes()),
            [msg("message", "é€😀", "")]
        );
    }

    #[test]
    fn id_rules() {
        // An id containing NUL is ignored; the previous id stays.
        assert_eq!(
            messages(b"id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"),
            [msg("message", "a", "1"), msg("message", "b", "1")]
        );
        // Persistence across events, reset by an empty id, leading space kept beyond one.
        assert_eq!(
            messages(b"id: 1\ndata: a\n\ndata: b\n\nid:\ndata: c\n\nid:  x\ndata: d\n\n"),
            [
                msg("message", "a", "1"),
                msg("message", "b", "1"),
                msg("message", "c", ""),
                msg("message", "d", " x"),
            ]
        );
        // The id is taken on dispatch even when no event fires.
        let mut parser = Parser::new();
        assert!(parser.parse(b"id: 9\n").is_empty());
        assert_eq!(parser.last_event_id(), "");
        assert!(parser.parse(b"\n").is_empty());
        assert_eq!(parser.last_event_id(), "9");
    }

    #[test]
    fn retry_rules() {
        let retry = |ms| Item::Retry(Duration::from_millis(ms));
        assert_eq!(
            parse_all(b"retry: 10\nretry: 1x\nretry:\nretry: -1\nretry:  5\nretry: 007\n"),
            [retry(10), retry(7)]
        );
        assert!(parse_all(b"retry: 99999999999999999999999\n").is_empty());
        let mut parser = Parser::new();
        parser.feed(b"retry: 3000\n");
        assert_eq!(parser.reconnection_time(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn fields_without_colon_and_unknown_fields() {
        assert_eq!(
            messages(b"data\nfoo: bar\nevent\nbaz\ndata : x\n:data\nData: y\ndata: z\n\n"),
            [msg("message", "\nz", "")]
        );
        assert_eq!(
            messages(b"event: a\nevent\ndata: x\n\n"),
            [msg("message", "x", "")]
        );
        assert_eq!(
            messages(b"data: a:b: c\n\n"),
            [msg("message", "a:b: c", "")]
        );
    }

    #[test]
    fn event_type_reset_after_dispatch_and_on_empty_data() {
        assert_eq!(
            messages(b"event: t\n\ndata: a\n\nevent: u\ndata: b\n\ndata: c\n\n"),
            [
                msg("message", "a", ""),
                msg("u", "b", ""),
                msg("message", "c", "")
            ]
        );
    }

    #[test]
    fn webkit_layout_test_stream() {
        let stream =
            b": a comment (ignored)\nthis line will be ignored\nfield: unknown\n:another\n\n\
data : ignored since there is a space after data\n\n\
data\ndata:\ndata\n: dispatch event with two newlines\n\n\
data: simple\n\n\
data: spanning\ndata:multiple\ndata\ndata: lines\ndata\n\n\
id: 1\ndata: id is 1\n\n\
data: id is still 1\n\n\
id\ndata: no id\n\n\
event: open\ndata: a message event with the name \"open\"\n\n\
data: a line ending with crlf\r\ndata: a line with a : (colon)\ndata: a line ending with cr\r\r";
        assert_eq!(
            messages(stream),
            [
                msg("message", "\n\n", ""),
                msg("message", "simple", ""),
                msg("message", "spanning\nmultiple\n\nlines\n", ""),
                msg("message", "id is 1", "1"),
                msg("message", "id is still 1", "1"),
                msg("message", "no id", ""),
                msg("open", "a message event with the name \"open\"", ""),
                msg(
                    "message",
                    "a line ending with crlf\na line with a : (colon)\na line ending with cr",
                    ""
                ),
            ]
        );
    }

    #[test]
    fn finish_discards_partial_and_allows_reconnect() {
        let mut parser = Parser::new();
        parser.feed(
            b"retry: 5\nid: 1\ndata: a\n\nid: 2\nevent: t\ndata: partial\ndata: line without end",
        );
        parser.finish();
        let items: Vec<Item> = parser.drain().collect();
        assert_eq!(
            items,
            [
                Item::Retry(Duration::from_millis(5)),
                msg("message", "a", "1")
            ]
        );
        // Next connection: BOM skipped again, id "2" of the discarded event forgotten, event
        // type and data buffers empty.
        assert_eq!(
            parser.parse(b"\xEF\xBB\xBFdata: b\n\n"),
            [msg("message", "b", "1")]
        );
        assert_eq!(parser.reconnection_time(), Some(Duration::from_millis(5)));
    }

    #[test]
    fn oversized_event_dropped_and_stream_recovers() {
        let input = b"data: ok1\n\ndata: 0123456789\ndata: more\nid: 9\n\ndata: ok2\n\n";
        for split in 0..=input.len() {
            let mut parser = Parser::new().with_max_event_size(12);
            let mut items = parser.parse(&input[..split]);
            items.extend(parser.parse(&input[split..]));
            assert_eq!(
                items,
                [
                    msg("message", "ok1", ""),
                    Item::Error(ParseError::EventTooLarge { limit: 12 }),
                    msg("message", "ok2", ""),
                ],
                "split at {split}"
            );
        }
        // Accumulated data lines count too.
        let mut parser = Parser::new().with_max_event_size(20);
        let items = parser.parse(b"data: 12345\ndata: 12345\ndata: 12345\n\ndata: x\n\n");
        assert_eq!(
            items,
            [
                Item::Error(ParseError::EventTooLarge { limit: 20 }),
                msg("message", "x", "")
            ]
        );
        // A giant unterminated line stays bounded.
        let mut parser = Parser::new().with_max_event_size(100);
        for _ in 0..1000 {
            parser.feed(&[b'a'; 1000]);
        }
        assert!(parser.line.capacity() <= 200);
        assert_eq!(parser.drain().count(), 1);
    }

    #[test]
    fn one_mib_line_parses_by_default() {
        let data = "x".repeat(1 << 20);
        let mut input = b"data: ".to_vec();
        input.extend_from_slice(data.as_bytes());
        input.extend_from_slice(b"\n\n");
        let mut parser = Parser::new();
        let mut items = Vec::new();
        for chunk in input.chunks(4096) {
            items.extend(parser.parse(chunk));
        }
        assert_eq!(items, [msg("message", &data, "")]);
    }

    #[test]
    fn parse_retry_values() {
        assert_eq!(parse_retry(b"0"), Some(0));
        assert_eq!(parse_retry(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_retry(b"18446744073709551616"), None);
        assert_eq!(parse_retry(b""), None);
        assert_eq!(parse_retry(b"+1"), None);
        assert_eq!(parse_retry("١".as_bytes()), None);
    }
}
