//! Server-Sent Events and their spec-exact encoding.
//!
//! An [`Event`] is built with infallible, chainable builders and turned into wire bytes exactly
//! once by [`Event::encode`] (or [`Event::encode_into`]). The encoding follows the WHATWG
//! [event stream format] and is safe by construction:
//!
//! * only LF (`\n`) is ever written as a line end, never CR, and never a byte order mark;
//! * `data` is split on `\r\n`, `\r` and `\n` into one `data:` line per piece, so a payload can
//!   never end an event early or inject a field;
//! * an event type, id or comment that cannot be written without breaking the line structure is
//!   refused with a typed [`EventError`] instead of being silently altered;
//! * every event ends with exactly one blank line.
//!
//! See MDN's [Using server-sent events] for an introduction, and the [WHATWG specification] for
//! how clients interpret the stream (the [`parse`](crate::parse) module implements that side).
//!
//! ```
//! use std::time::Duration;
//! use ssehub::event::Event;
//!
//! let event = Event::with_type("update", "line one\nline two")
//!     .with_id("42")
//!     .with_retry(Duration::from_secs(3));
//! assert_eq!(
//!     &event.encode()?[..],
//!     b"event: update\nid: 42\nretry: 3000\ndata: line one\ndata: line two\n\n"
//! );
//! # Ok::<(), ssehub::event::EventError>(())
//! ```
//!
//! [event stream format]: https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream
//! [Using server-sent events]: https://developer.mozilla.org/en-US/docs/Web/API/Server-sent_events/Using_server-sent_events
//! [WHATWG specification]: https://html.spec.whatwg.org/multipage/server-sent-events.html

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

/// Maximum reconnection time, in milliseconds, that [`Event::with_retry`] may carry:
/// 2 147 483 647 ms (`i32::MAX`, about 24.8 days).
///
/// Browsers store the reconnection time in a signed 32-bit timer; larger values are not portable,
/// so they are refused with [`EventError::RetryOutOfRange`] rather than clamped.
///
/// ```
/// use std::time::Duration;
/// use ssehub::event::{Event, MAX_RETRY_MS};
///
/// assert!(Event::empty().with_retry(Duration::from_millis(MAX_RETRY_MS)).validate().is_ok());
/// assert!(Event::empty().with_retry(Duration::from_millis(MAX_RETRY_MS + 1)).validate().is_err());
/// ```
pub const MAX_RETRY_MS: u64 = 2_147_483_647;

/// Why an [`Event`] cannot be encoded.
///
/// Returned by [`Event::validate`], [`Event::encode`], [`Event::encode_into`], [`comment`] and
/// [`retry_frame`]. Nothing is ever written for an event that fails validation.
///
/// ```
/// use ssehub::event::{Event, EventError};
///
/// let err = Event::new("hi").with_id("a\nb").encode().unwrap_err();
/// assert_eq!(err, EventError::InvalidId);
/// assert_eq!(err.to_string(), "event id must not contain a carriage return, line feed or NUL");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The event type contains a carriage return or a line feed.
    #[error("event type must not contain a carriage return or line feed")]
    InvalidEventType,
    /// The id contains a carriage return, a line feed or a NUL character (clients ignore an id
    /// with NUL, so sending one would silently break resumption).
    #[error("event id must not contain a carriage return, line feed or NUL")]
    InvalidId,
    /// The comment contains a carriage return or a line feed.
    #[error("comment must not contain a carriage return or line feed")]
    InvalidComment,
    /// The retry duration exceeds [`MAX_RETRY_MS`]. It is refused, not clamped, so that a
    /// configuration mistake is visible instead of quietly changing meaning.
    #[error("retry of {millis} ms exceeds the maximum of 2147483647 ms")]
    RetryOutOfRange {
        /// The requested retry, in whole milliseconds.
        millis: u128,
    },
    /// Serializing a value to JSON failed; holds serde_json's message (kept as a `String` so the
    /// error stays `Clone + Eq`).
    #[cfg(feature = "json")]
    #[error("failed to serialize event data as JSON: {0}")]
    Json(String),
}

/// A Server-Sent Event: optional comment, event type, id, retry and data.
///
/// Builders take `self` by value and never fail, so events can be written in one chained
/// expression; validation happens when the event is encoded ([`encode`](Event::encode),
/// [`encode_into`](Event::encode_into)) or explicitly with [`validate`](Event::validate). Every
/// path that puts an event on the wire encodes it, so nothing invalid can reach a client.
///
/// "No data" ([`Event::empty`]) and "empty data" (`Event::new("")`) are distinct: the first
/// writes no `data:` line and does not fire an event in clients (useful for retry- or id-only
/// frames), the second writes one `data:` line and fires a `message` with `""`.
///
/// ```
/// use ssehub::event::Event;
///
/// assert_eq!(&Event::new("").encode()?[..], b"data: \n\n");
/// assert_eq!(&Event::empty().with_id("7").encode()?[..], b"id: 7\n\n");
/// # Ok::<(), ssehub::event::EventError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    retry: Option<Duration>,
    comment: Option<String>,
    /// Kept out of replay history (see [`Event::with_replay`]).
    no_replay: bool,
}

impl Event {
    /// Whether a broker keeps this event in its replay history (the
    /// default), so a client that reconnects with `Last-Event-ID` gets it
    /// again. Pass `false` for events pointless to replay, such as a stats
    /// tick that the next tick supersedes; such events also get no
    /// broker-generated id, so a client's `Last-Event-ID` keeps pointing at
    /// the last event that can be resumed after.
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// let tick = Event::with_type("stats", "{}").with_replay(false);
    /// assert!(!tick.is_replayable());
    /// assert!(Event::new("x").is_replayable());
    /// ```
    #[must_use]
    pub fn with_replay(mut self, replay: bool) -> Self {
        self.no_replay = !replay;
        self
    }

    /// Whether the event goes into replay history; see [`with_replay`](Event::with_replay).
    ///
    /// ```
    /// assert!(ssehub::Event::new("x").is_replayable());
    /// ```
    #[must_use]
    pub fn is_replayable(&self) -> bool {
        !self.no_replay
    }

    /// Creates an event carrying `data` (Go: `NewEvent`).
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// assert_eq!(&Event::new("hello").encode()?[..], b"data: hello\n\n");
    /// # Ok::<(), ssehub::event::EventError>(())
    /// ```
    #[must_use]
    pub fn new(data: impl Into<String>) -> Self {
        Self {
            data: Some(data.into()),
            ..Self::default()
        }
    }

    /// Creates an event with an event type and data (Go: `NewEventWithType`).
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// let event = Event::with_type("ping", "1");
    /// assert_eq!(&event.encode()?[..], b"event: ping\ndata: 1\n\n");
    /// # Ok::<(), ssehub::event::EventError>(())
    /// ```
    #[must_use]
    pub fn with_type(event: impl Into<String>, data: impl Into<String>) -> Self {
        Self::new(data).with_event(event)
    }

    /// Creates an event with no fields at all, the same as [`Event::default`].
    ///
    /// Used for frames that carry only a retry, an id or a comment. Encoded as is, it becomes
    /// the harmless comment frame `:\n\n` (see [`encode`](Event::encode)).
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// assert_eq!(Event::empty(), Event::default());
    /// assert_eq!(&Event::empty().encode()?[..], b":\n\n");
    /// # Ok::<(), ssehub::event::EventError>(())
    /// ```
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// Creates an event of type `event` whose data is `value` serialized as compact JSON
    /// (Go: `NewJSONEvent`).
    ///
    /// # Errors
    ///
    /// [`EventError::Json`] when `value` cannot be serialized (e.g. a map with non-string keys).
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// let event = Event::json("point", &serde_json::json!({ "x": 1 }))?;
    /// assert_eq!(&event.encode()?[..], b"event: point\ndata: {\"x\":1}\n\n");
    /// # Ok::<(), ssehub::event::EventError>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(
        event: impl Into<String>,
        value: &T,
    ) -> Result<Self, EventError> {
        Ok(Self::json_data(value)?.with_event(event))
    }

    /// Creates an event whose data is `value` serialized as compact JSON, with no event type.
    ///
    /// # Errors
    ///
    /// [`EventError::Json`] when `value` cannot be serialized.
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// let event = Event::json_data(&[1, 2, 3])?;
    /// assert_eq!(event.data(), Some("[1,2,3]"));
    /// # Ok::<(), ssehub::event::EventError>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn json_data<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, EventError> {
        serde_json::to_string(value)
            .map(Self::new)
            .map_err(|e| EventError::Json(e.to_string()))
    }

    /// Sets the event id (Go: `WithID`).
    ///
    /// An empty id is meaningful: it is written as `id: ` and resets the client's last event id,
    /// so its next reconnect sends no `Last-Event-ID`. That is distinct from no id at all, which
    /// leaves the client's last event id unchanged. The id must not contain CR, LF or NUL.
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// assert_eq!(&Event::new("x").with_id("").encode()?[..], b"id: \ndata: x\n\n");
    /// # Ok::<(), ssehub::event::EventError>(())
    /// ```
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the event type (the name a client's `addEventListener` listens for).
    ///
    /// An empty type is not written, because clients treat it as the default `message` anyway.
    /// The type must not contain CR or LF; its case is preserved.
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// assert_eq!(&Event::new("x").with_event("Tick").encode()?[..], b"event: Tick\ndata: x\n\n");
    /// assert_eq!(&Event::new("x").with_event("").encode()?[..], b"data: x\n\n");
    /// # Ok::<(), ssehub::event::EventError>(())
    /// ```
    #[must_use]
    pub fn with_event(mut self, event: impl Into<String>) -> Self {
        self.event = Some(event.into());
        self
    }

    /// Sets the data. Any CR, LF or CRLF inside it becomes a line break that clients restore as
    /// `\n`.
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// assert_eq!(&Event::empty().with_data("a\r\nb").encode()?[..], b"data: a\ndata: b\n\n");
    /// # Ok::<(), ssehub::event::EventError>(())
    /// ```
    #[must_use]
    pub fn with_data(mut self, data: impl Into<String>) -> Self {
        self.data = Some(data.into());
        self
    }

    /// Sets the reconnection time clients should wait before reconnecting (Go: `WithRetry`).
    ///
    /// Written in whole milliseconds (sub-millisecond parts are truncated). Values above
    /// [`MAX_RETRY_MS`] are refused when encoding.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ssehub::event::Event;
    ///
    /// let event = Event::empty().with_retry(Duration::from_micros(2500));
    /// assert_eq!(&event.encode()?[..], b"retry: 2\n\n");
    /// # Ok::<(), ssehub::event::EventError>(())
    /// ```
    #[must_use]
    pub fn with_retry(mut self, retry: Duration) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Sets a comment, written first as `: comment`. Clients never dispatch comments; they are
    /// useful for keep-alives and debugging. The comment must not contain CR or LF.
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// let event = Event::new("x").with_comment("note");
    /// assert_eq!(&event.encode()?[..], b": note\ndata: x\n\n");
    /// # Ok::<(), ssehub::event::EventError>(())
    /// ```
    #[must_use]
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// The id, if set (`Some("")` is the reset id).
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// assert_eq!(Event::new("x").with_id("1").id(), Some("1"));
    /// assert_eq!(Event::new("x").id(), None);
    /// ```
    #[must_use]
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The event type, if set.
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// assert_eq!(Event::with_type("tick", "x").event_type(), Some("tick"));
    /// ```
    #[must_use]
    pub fn event_type(&self) -> Option<&str> {
        self.event.as_deref()
    }

    /// The data, if set.
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// assert_eq!(Event::new("x").data(), Some("x"));
    /// assert_eq!(Event::empty().data(), None);
    /// ```
    #[must_use]
    pub fn data(&self) -> Option<&str> {
        self.data.as_deref()
    }

    /// The reconnection time, if set, as given (before truncation to milliseconds).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ssehub::event::Event;
    ///
    /// let event = Event::empty().with_retry(Duration::from_secs(1));
    /// assert_eq!(event.retry(), Some(Duration::from_secs(1)));
    /// ```
    #[must_use]
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// The comment, if set.
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// assert_eq!(Event::empty().with_comment("hi").comment(), Some("hi"));
    /// ```
    #[must_use]
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// Checks that the event can be encoded without changing its meaning.
    ///
    /// # Errors
    ///
    /// The first problem found, in this order: [`EventError::InvalidComment`],
    /// [`EventError::InvalidEventType`], [`EventError::InvalidId`],
    /// [`EventError::RetryOutOfRange`]. Data is always valid.
    ///
    /// ```
    /// use ssehub::event::{Event, EventError};
    ///
    /// assert_eq!(Event::new("a\nb").validate(), Ok(()));
    /// assert_eq!(Event::new("x").with_event("a\rb").validate(), Err(EventError::InvalidEventType));
    /// ```
    pub fn validate(&self) -> Result<(), EventError> {
        if self.comment.as_deref().is_some_and(has_line_break) {
            return Err(EventError::InvalidComment);
        }
        if self.event.as_deref().is_some_and(has_line_break) {
            return Err(EventError::InvalidEventType);
        }
        if self
            .id
            .as_deref()
            .is_some_and(|id| has_line_break(id) || id.contains('\0'))
        {
            return Err(EventError::InvalidId);
        }
        if let Some(retry) = self.retry {
            retry_millis(retry)?;
        }
        Ok(())
    }

    /// Validates the event and encodes it once into immutable, cheaply clonable [`Bytes`].
    ///
    /// Fields are written in the order comment, `event`, `id`, `retry`, `data`, each as
    /// `name: value` with exactly one space, so leading spaces, tabs or colons of the value
    /// survive (clients strip exactly one space). The event ends with one blank line. An event
    /// that would write no line at all (no fields, or only an empty event type) is encoded as
    /// the comment frame `:\n\n`, so a frame is never a bare blank line.
    ///
    /// # Errors
    ///
    /// See [`validate`](Event::validate).
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// let bytes = Event::new("  indented\n\nend").encode()?;
    /// assert_eq!(&bytes[..], b"data:   indented\ndata: \ndata: end\n\n");
    /// # Ok::<(), ssehub::event::EventError>(())
    /// ```
    pub fn encode(&self) -> Result<Bytes, EventError> {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode_into(&mut buf)?;
        Ok(buf.freeze())
    }

    /// Validates the event and appends its encoding to `buf`. On error nothing is appended.
    ///
    /// Useful to batch several events into one write.
    ///
    /// # Errors
    ///
    /// See [`validate`](Event::validate).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use ssehub::event::Event;
    ///
    /// let mut buf = BytesMut::new();
    /// Event::new("a").encode_into(&mut buf)?;
    /// Event::new("b").encode_into(&mut buf)?;
    /// assert!(Event::new("c").with_id("\0").encode_into(&mut buf).is_err());
    /// assert_eq!(&buf[..], b"data: a\n\ndata: b\n\n");
    /// # Ok::<(), ssehub::event::EventError>(())
    /// ```
    pub fn encode_into(&self, buf: &mut BytesMut) -> Result<(), EventError> {
        // Validate everything before writing anything, so an error leaves `buf` untouched.
        self.validate()?;
        buf.reserve(self.encoded_len());
        if self.writes_no_line() {
            buf.put_slice(b":\n");
        }
        if let Some(comment) = &self.comment {
            put_comment_line(buf, comment);
        }
        if let Some(event) = self.non_empty_event() {
            put_field(buf, "event", event.as_bytes());
        }
        if let Some(id) = &self.id {
            put_field(buf, "id", id.as_bytes());
        }
        if let Some(retry) = self.retry {
            // Validated above; `retry_millis` cannot fail here, but stay total anyway.
            let millis = retry_millis(retry)?;
            put_field(buf, "retry", decimal(millis).as_bytes());
        }
        if let Some(data) = &self.data {
            for line in DataLines::new(data) {
                put_field(buf, "data", line.as_bytes());
            }
        }
        buf.put_u8(b'\n');
        Ok(())
    }

    /// The exact number of bytes [`encode`](Event::encode) produces for this event.
    ///
    /// Computed without validating: for an invalid event it is the length the encoding would
    /// have, although encoding it fails. Retry values are assumed to be in range.
    ///
    /// ```
    /// use ssehub::event::Event;
    ///
    /// let event = Event::with_type("t", "a\nb").with_id("1");
    /// assert_eq!(event.encoded_len(), event.encode()?.len());
    /// # Ok::<(), ssehub::event::EventError>(())
    /// ```
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let mut len = 1; // the terminating blank line
        if self.writes_no_line() {
            len += 2; // ":\n"
        }
        if let Some(comment) = &self.comment {
            len += comment_line_len(comment);
        }
        if let Some(event) = self.non_empty_event() {
            len += field_len("event", event.len());
        }
        if let Some(id) = &self.id {
            len += field_len("id", id.len());
        }
        if let Some(retry) = self.retry {
            let millis = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX);
            len += field_len("retry", decimal(millis).len());
        }
        if let Some(data) = &self.data {
            len += DataLines::new(data)
                .map(|line| field_len("data", line.len()))
                .sum::<usize>();
        }
        len
    }

    /// The event type to write: `None` when unset or empty (empty means `message` to clients).
    fn non_empty_event(&self) -> Option<&str> {
        self.event.as_deref().filter(|e| !e.is_empty())
    }

    /// True when the event has nothing to write, so it would otherwise be a bare blank line.
    fn writes_no_line(&self) -> bool {
        self.comment.is_none()
            && self.non_empty_event().is_none()
            && self.id.is_none()
            && self.retry.is_none()
            && self.data.is_none()
    }
}

/// Encodes a comment-only frame, `: text\n\n` (or `:\n\n` for empty text), as used for
/// keep-alives. Clients never dispatch it.
///
/// # Errors
///
/// [`EventError::InvalidComment`] if `text` contains CR or LF.
///
/// ```
/// use ssehub::event::comment;
///
/// assert_eq!(&comment("keep-alive")?[..], b": keep-alive\n\n");
/// assert_eq!(&comment("")?[..], b":\n\n");
/// assert!(comment("a\nb").is_err());
/// # Ok::<(), ssehub::event::EventError>(())
/// ```
pub fn comment(text: &str) -> Result<Bytes, EventError> {
    Event::empty().with_comment(text).encode()
}

/// Encodes a frame that only sets the client's reconnection time: `retry: N\n\n`.
///
/// # Errors
///
/// [`EventError::RetryOutOfRange`] if `retry` exceeds [`MAX_RETRY_MS`].
///
/// ```
/// use std::time::Duration;
/// use ssehub::event::retry_frame;
///
/// assert_eq!(&retry_frame(Duration::from_secs(5))?[..], b"retry: 5000\n\n");
/// # Ok::<(), ssehub::event::EventError>(())
/// ```
pub fn retry_frame(retry: Duration) -> Result<Bytes, EventError> {
    Event::empty().with_retry(retry).encode()
}

/// True if `s` contains a character that would end a line in an event stream.
fn has_line_break(s: &str) -> bool {
    line_break(s).is_some()
}

/// Where the first `\r` or `\n` of `s` is. `memchr2` scans a word or a
/// vector at a time, where `str::find` with a char set goes char by char:
/// every publish's data is split here three times (its length twice, then
/// the copy).
fn line_break(s: &str) -> Option<usize> {
    memchr::memchr2(b'\r', b'\n', s.as_bytes())
}

/// Whole milliseconds of `retry`, refused above [`MAX_RETRY_MS`].
fn retry_millis(retry: Duration) -> Result<u64, EventError> {
    let millis = retry.as_millis();
    u64::try_from(millis)
        .ok()
        .filter(|&ms| ms <= MAX_RETRY_MS)
        .ok_or(EventError::RetryOutOfRange { millis })
}

/// Decimal digits of `n`; retry is the only number we write, so a `String` is simplest.
fn decimal(n: u64) -> String {
    n.to_string()
}

/// Length of `name: value\n`.
fn field_len(name: &str, value_len: usize) -> usize {
    name.len() + 2 + value_len + 1
}

/// Writes `name: value\n`. Always one space: clients strip exactly one, so a value that starts
/// with spaces (or is empty) round-trips unchanged.
fn put_field(buf: &mut BytesMut, name: &str, value: &[u8]) {
    buf.put_slice(name.as_bytes());
    buf.put_slice(b": ");
    buf.put_slice(value);
    buf.put_u8(b'\n');
}

/// Length of the comment line written by [`put_comment_line`].
fn comment_line_len(comment: &str) -> usize {
    if comment.is_empty() {
        2
    } else {
        comment.len() + 3
    }
}

/// Writes `: comment\n`, or `:\n` for an empty comment (no trailing space to trim).
fn put_comment_line(buf: &mut BytesMut, comment: &str) {
    if comment.is_empty() {
        buf.put_slice(b":\n");
    } else {
        buf.put_slice(b": ");
        buf.put_slice(comment.as_bytes());
        buf.put_u8(b'\n');
    }
}

/// Splits data into lines on `\r\n`, `\r` and `\n` (CRLF counting as one break), keeping
/// empty pieces: `""` is one empty line and `"a\n"` is `"a"` then `""`. These are exactly the
/// line ends a client recognises, so each piece becomes one `data:` line and the client rebuilds
/// the data with `\n` between pieces.
struct DataLines<'a> {
    /// What is left to split; `None` once the last piece has been returned.
    rest: Option<&'a str>,
}

impl<'a> DataLines<'a> {
    fn new(data: &'a str) -> Self {
        Self { rest: Some(data) }
    }
}

impl<'a> Iterator for DataLines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let Some(end) = line_break(rest) else {
            self.rest = None;
            return Some(rest);
        };
        let after = if rest[end..].starts_with("\r\n") {
            end + 2
        } else {
            end + 1
        };
        self.rest = Some(&rest[after..]);
        Some(&rest[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(event: &Event) -> Vec<u8> {
        let bytes = event.encode().expect("valid event");
        assert_eq!(
            bytes.len(),
            event.encoded_len(),
            "encoded_len must be exact"
        );
        bytes.to_vec()
    }

    fn data(d: &str) -> Vec<u8> {
        enc(&Event::new(d))
    }

    // ENC-LF, ENC-TERM
    #[test]
    fn lf_only_and_single_terminator() {
        let event = Event::with_type("t", "a\r\nb\rc\nd")
            .with_id("1")
            .with_comment("c")
            .with_retry(Duration::from_millis(10));
        let bytes = enc(&event);
        assert!(!bytes.contains(&b'\r'));
        assert!(bytes.ends_with(b"\n\n"));
        assert!(!bytes[..bytes.len() - 1].windows(2).any(|w| w == b"\n\n"));
        assert_eq!(
            bytes,
            b": c\nevent: t\nid: 1\nretry: 10\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    // ENC-SPLIT
    #[test]
    fn data_split_on_every_line_end() {
        assert_eq!(data("a\nb"), b"data: a\ndata: b\n\n");
        assert_eq!(data("a\n"), b"data: a\ndata: \n\n");
        assert_eq!(data("\n"), b"data: \ndata: \n\n");
        assert_eq!(data("a\n\nb"), b"data: a\ndata: \ndata: b\n\n");
        assert_eq!(data("a\r\nb"), b"data: a\ndata: b\n\n");
        assert_eq!(data("a\rb"), b"data: a\ndata: b\n\n");
        assert_eq!(data("\r\n\r"), b"data: \ndata: \ndata: \n\n");
        assert_eq!(data("\n\r"), b"data: \ndata: \ndata: \n\n");
    }

    // ENC-SPACE
    #[test]
    fn leading_spaces_tabs_colons_survive() {
        assert_eq!(data(" a"), b"data:  a\n\n");
        assert_eq!(data("\tb"), b"data: \tb\n\n");
        assert_eq!(data(":c"), b"data: :c\n\n");
        assert_eq!(data("  x\n y"), b"data:   x\ndata:  y\n\n");
        assert_eq!(
            enc(&Event::with_type(" t", "x").with_id(" i")),
            b"event:  t\nid:  i\ndata: x\n\n"
        );
    }

    // ENC-EMPTY
    #[test]
    fn empty_data_distinct_from_no_data() {
        assert_eq!(data(""), b"data: \n\n");
        assert_eq!(enc(&Event::empty()), b":\n\n");
        assert_eq!(enc(&Event::empty().with_event("")), b":\n\n");
        assert_eq!(enc(&Event::empty().with_event("t")), b"event: t\n\n");
    }

    // ENC-UNICODE
    #[test]
    fn only_cr_lf_break_lines() {
        let s = "a\u{2028}b\u{2029}c\u{0085}d\u{000B}e\u{000C}f\0g\u{FEFF}h";
        let mut expected = b"data: ".to_vec();
        expected.extend_from_slice(s.as_bytes());
        expected.extend_from_slice(b"\n\n");
        assert_eq!(data(s), expected);
    }

    // ENC-EVENT
    #[test]
    fn event_type_rules() {
        for bad in ["a\nb", "a\rb", "\r\n", "\n"] {
            let mut buf = BytesMut::from(&b"keep"[..]);
            let event = Event::with_type(bad, "x");
            assert_eq!(
                event.encode_into(&mut buf),
                Err(EventError::InvalidEventType)
            );
            assert_eq!(&buf[..], b"keep", "nothing appended on error");
        }
        assert_eq!(enc(&Event::with_type("", "x")), b"data: x\n\n");
        assert_eq!(
            enc(&Event::with_type("CamelCase", "x")),
            b"event: CamelCase\ndata: x\n\n"
        );
    }

    // ENC-ID
    #[test]
    fn id_rules() {
        for bad in ["a\nb", "a\rb", "a\0b", "\0"] {
            assert_eq!(
                Event::new("x").with_id(bad).encode(),
                Err(EventError::InvalidId)
            );
        }
        assert_eq!(enc(&Event::new("x").with_id("")), b"id: \ndata: x\n\n");
        assert_eq!(enc(&Event::new("x").with_id(" 5")), b"id:  5\ndata: x\n\n");
        assert_eq!(enc(&Event::new("x")), b"data: x\n\n");
        assert_eq!(enc(&Event::empty().with_id("")), b"id: \n\n");
    }

    // ENC-RETRY
    #[test]
    fn retry_rules() {
        let r = |d| enc(&Event::empty().with_retry(d));
        assert_eq!(r(Duration::ZERO), b"retry: 0\n\n");
        assert_eq!(
            r(Duration::from_millis(MAX_RETRY_MS)),
            b"retry: 2147483647\n\n"
        );
        assert_eq!(r(Duration::from_micros(999)), b"retry: 0\n\n");
        assert_eq!(r(Duration::from_nanos(1_999_999)), b"retry: 1\n\n");
        assert_eq!(
            Event::empty()
                .with_retry(Duration::from_millis(MAX_RETRY_MS + 1))
                .encode(),
            Err(EventError::RetryOutOfRange {
                millis: u128::from(MAX_RETRY_MS) + 1
            })
        );
        assert_eq!(
            retry_frame(Duration::MAX),
            Err(EventError::RetryOutOfRange {
                millis: Duration::MAX.as_millis()
            })
        );
        assert_eq!(
            &retry_frame(Duration::from_secs(1)).unwrap()[..],
            b"retry: 1000\n\n"
        );
    }

    // ENC-COMMENT
    #[test]
    fn comment_rules() {
        assert_eq!(&comment("ka").unwrap()[..], b": ka\n\n");
        assert_eq!(&comment("").unwrap()[..], b":\n\n");
        assert_eq!(&comment(" x").unwrap()[..], b":  x\n\n");
        for bad in ["a\nb", "a\r", "\r\n"] {
            assert_eq!(comment(bad), Err(EventError::InvalidComment));
            assert_eq!(
                Event::new("x").with_comment(bad).encode(),
                Err(EventError::InvalidComment)
            );
        }
        assert_eq!(enc(&Event::new("x").with_comment("")), b":\ndata: x\n\n");
    }

    // ENC-NOBOM
    #[test]
    fn never_starts_with_bom() {
        for event in [
            Event::new("\u{FEFF}x"),
            Event::with_type("\u{FEFF}", "\u{FEFF}"),
            Event::empty().with_comment("\u{FEFF}"),
            Event::empty().with_id("\u{FEFF}"),
        ] {
            assert!(!enc(&event).starts_with(b"\xEF\xBB\xBF"));
        }
        assert_eq!(data("\u{FEFF}x"), "data: \u{FEFF}x\n\n".as_bytes());
    }

    #[test]
    fn validation_order_and_messages() {
        let event = Event::with_type("a\n", "x")
            .with_id("\0")
            .with_comment("\r");
        assert_eq!(event.validate(), Err(EventError::InvalidComment));
        assert_eq!(
            EventError::RetryOutOfRange { millis: 5 }.to_string(),
            "retry of 5 ms exceeds the maximum of 2147483647 ms"
        );
    }

    #[test]
    fn getters_reflect_builders() {
        let event = Event::with_type("t", "d")
            .with_id("i")
            .with_retry(Duration::from_millis(3))
            .with_comment("c")
            .with_data("d2")
            .with_event("t2");
        assert_eq!(event.event_type(), Some("t2"));
        assert_eq!(event.data(), Some("d2"));
        assert_eq!(event.id(), Some("i"));
        assert_eq!(event.retry(), Some(Duration::from_millis(3)));
        assert_eq!(event.comment(), Some("c"));
    }

    #[test]
    fn data_lines_iterator() {
        let split = |s| DataLines::new(s).collect::<Vec<_>>();
        assert_eq!(split(""), [""]);
        assert_eq!(split("a"), ["a"]);
        assert_eq!(split("a\r\n"), ["a", ""]);
        assert_eq!(split("\r\r\n\n"), ["", "", "", ""]);
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_events() {
        use std::collections::BTreeMap;
        let event = Event::json("p", &serde_json::json!({"s": "a\nb"})).unwrap();
        assert_eq!(enc(&event), b"event: p\ndata: {\"s\":\"a\\nb\"}\n\n");
        let mut bad = BTreeMap::new();
        bad.insert(vec![1u8], 1);
        assert!(matches!(Event::json_data(&bad), Err(EventError::Json(_))));
    }
}
