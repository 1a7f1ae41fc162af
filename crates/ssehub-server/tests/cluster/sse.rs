//! A small reader of `text/event-stream` bodies, written for these tests
//! rather than taken from the library under test: it keeps every event it
//! dispatches with its type, its own `id:` and its data, as the HTML
//! standard's EventSource would see them.

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::header::HeaderMap;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ev {
    /// The `event:` field; `message` when the block had none.
    pub kind: String,
    /// The `id:` field of this event's own block, if it had one.
    pub id: Option<String>,
    /// The data, lines joined with `\n`.
    pub data: String,
    /// The stream's last event ID when this event was dispatched (a
    /// `MessageEvent`'s `lastEventId`): where a client that handled this
    /// event resumes.
    pub last_event_id: String,
}

impl Ev {
    /// Whether this is the hub's signal that updates were lost.
    pub fn is_gap(&self) -> bool {
        self.kind == GAP_EVENT
    }
}

/// The type of the hub's gap event.
pub const GAP_EVENT: &str = "ssehub-gap";

/// The event-stream interpretation algorithm, fed with arbitrary chunks.
#[derive(Default)]
pub struct Parser {
    line: Vec<u8>,
    /// A CR ended the last line: an LF right after it belongs to it.
    after_cr: bool,
    kind: Option<String>,
    own_id: Option<String>,
    data: String,
    has_data: bool,
    /// The last event ID buffer: set by an `id:` line, but only taken as
    /// the stream's resume point when its block ends.
    id_buffer: String,
    /// The last event ID string once every fed block is handled.
    pub last_event_id: String,
    ready: VecDeque<Ev>,
}

impl Parser {
    /// Feeds bytes; complete events become available to [`Parser::pop`].
    pub fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&String::from_utf8_lossy(&line));
                }
                _ => self.line.push(byte),
            }
        }
    }

    /// The oldest complete event not yet taken.
    pub fn pop(&mut self) -> Option<Ev> {
        self.ready.pop_front()
    }

    fn line_done(&mut self, line: &str) {
        if line.is_empty() {
            // A block cut short by a dropped connection never moves it.
            self.last_event_id.clone_from(&self.id_buffer);
            let kind = self.kind.take();
            let own_id = self.own_id.take();
            if std::mem::take(&mut self.has_data) {
                let mut data = std::mem::take(&mut self.data);
                data.pop(); // the newline after the last data line
                self.ready.push_back(Ev {
                    kind: kind.unwrap_or_else(|| "message".to_owned()),
                    id: own_id,
                    data,
                    last_event_id: self.last_event_id.clone(),
                });
            }
            return;
        }
        if line.starts_with(':') {
            return; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.kind = Some(value.to_owned()),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => {
                value.clone_into(&mut self.id_buffer);
                self.own_id = Some(value.to_owned());
            }
            _ => {} // retry and unknown fields
        }
    }
}

/// A subscription response being read.
pub struct Stream {
    /// The response headers.
    pub headers: HeaderMap,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    /// The parser, with the stream's last event ID.
    pub parser: Parser,
}

impl Stream {
    /// Reads `response`'s body as an event stream.
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            headers: response.headers().clone(),
            body: response.bytes_stream().boxed(),
            parser: Parser::default(),
        }
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The next event; `Ok(None)` when the body ends, `Err` on a transport
    /// error (a node that died mid-stream).
    pub async fn next(&mut self) -> Result<Option<Ev>, String> {
        loop {
            if let Some(ev) = self.parser.pop() {
                return Ok(Some(ev));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.parser.feed(&chunk),
                Some(Err(err)) => return Err(format!("{err:?}")),
                None => return Ok(None),
            }
        }
    }

    /// The next event within `wait`; panics when the stream ends, fails
    /// or stays silent (for tests that expect an event now).
    pub async fn expect(&mut self, wait: std::time::Duration) -> Ev {
        match tokio::time::timeout(wait, self.next()).await {
            Ok(Ok(Some(ev))) => ev,
            Ok(Ok(None)) => panic!("the stream ended"),
            Ok(Err(err)) => panic!("the stream failed: {err}"),
            Err(_) => panic!("no event within {wait:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> (Vec<Ev>, String) {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk);
            while let Some(ev) = parser.pop() {
                out.push(ev);
            }
        }
        (out, parser.last_event_id)
    }

    fn ev(kind: &str, id: Option<&str>, data: &str, last: &str) -> Ev {
        Ev {
            kind: kind.into(),
            id: id.map(Into::into),
            data: data.into(),
            last_event_id: last.into(),
        }
    }

    #[test]
    fn the_reader_follows_the_interpretation_rules() {
        let (events, last) = all(&[
            b": keep-alive\n\nid: #a-1\ndata: one\n\n",
            b"event: ssehub-gap\ndata: {\"x\"",
            b":1}\r",
            b"\n\r\nid: #a-2\r\ndata:two\ndata\ndata:  three\n\nid: #a-3\n\n",
        ]);
        assert_eq!(
            events,
            [
                ev("message", Some("#a-1"), "one", "#a-1"),
                ev("ssehub-gap", None, "{\"x\":1}", "#a-1"),
                ev("message", Some("#a-2"), "two\n\n three", "#a-2"),
            ]
        );
        // An id-only block dispatches nothing but moves the resume point.
        assert_eq!(last, "#a-3");
        assert!(events[1].is_gap() && !events[0].is_gap());
        // An id whose block has not ended yet does not.
        let (events, last) = all(&[b"id: #a-1\ndata: one\n\nid: #a-2\ndata: two\n"]);
        assert_eq!(events, [ev("message", Some("#a-1"), "one", "#a-1")]);
        assert_eq!(last, "#a-1");
    }
}
