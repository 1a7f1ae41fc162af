//! The load generator's event-stream scanner: splits lines across reads,
//! gathers `data:` and dispatches at the blank line, as the WHATWG parser
//! does for the line endings servers emit (`\n`, `\r\n`); comments, `retry:`,
//! `id:` and `event:` lines are skipped (unless ids are tracked, for
//! resuming: [`Scanner::with_ids`]). Only the first `data:` line of an
//! event is parsed, for the benchmark payload's sequence number and time.

/// Incremental scanner state for one stream.
#[derive(Debug, Default)]
pub struct Scanner {
    partial: Vec<u8>,
    has_data: bool,
    parsed: Option<(u64, u64)>,
    track_ids: bool,
    /// The `id:` field seen last (the WHATWG "last event ID buffer").
    id: Vec<u8>,
    /// `id` as of the last dispatched event.
    last_id: Vec<u8>,
}

impl Scanner {
    /// A scanner that also keeps the id of the last event it dispatched,
    /// for a reconnection with `Last-Event-ID`.
    #[must_use]
    pub fn with_ids() -> Self {
        Self {
            track_ids: true,
            ..Self::default()
        }
    }

    /// The id of the last event dispatched (empty when none had one, or
    /// ids are not tracked). An id whose event did not end before the
    /// stream did is not taken.
    #[must_use]
    pub fn last_event_id(&self) -> &[u8] {
        &self.last_id
    }

    /// Scans `input`; calls `on_event` with each complete event's
    /// `(seq, timestamp)` (or `None` when its data is not a benchmark payload).
    pub fn feed(&mut self, mut input: &[u8], on_event: &mut impl FnMut(Option<(u64, u64)>)) {
        while let Some(i) = memchr::memchr(b'\n', input) {
            let part = &input[..i];
            input = &input[i + 1..];
            if self.partial.is_empty() {
                self.line(part, on_event);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(part);
                self.line(&line, on_event);
                line.clear();
                self.partial = line;
            }
        }
        self.partial.extend_from_slice(input);
    }

    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(Option<(u64, u64)>)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                if self.track_ids {
                    self.last_id.clone_from(&self.id);
                }
                on_event(self.parsed.take());
            }
            self.has_data = false;
        } else if let Some(value) = line.strip_prefix(b"id:").filter(|_| self.track_ids) {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            self.id.clear();
            self.id.extend_from_slice(value);
        } else if let Some(value) = line.strip_prefix(b"data:") {
            if !self.has_data {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                self.parsed = crate::payload::parse(value);
            }
            self.has_data = true;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_across_any_split() {
        let a = crate::payload::make(1, 10, 40);
        let b = crate::payload::make(2, 20, 40);
        let wire =
            format!("retry: 3000\n\n:\n\ndata: {a}\n\nid: 7\r\ndata: {b}\r\n\r\ndata: other\n\n");
        for split in 0..wire.len() {
            let mut s = super::Scanner::default();
            let mut got = Vec::new();
            s.feed(&wire.as_bytes()[..split], &mut |e| got.push(e));
            s.feed(&wire.as_bytes()[split..], &mut |e| got.push(e));
            assert_eq!(got, [Some((1, 10)), Some((2, 20)), None], "split {split}");
        }
    }

    #[test]
    fn the_last_dispatched_id() {
        let a = crate::payload::make(0, 5, 40);
        let wire = format!("id: #e-1\ndata: {a}\n\nid: #e-2\n");
        let mut s = super::Scanner::with_ids();
        let mut got = 0;
        s.feed(wire.as_bytes(), &mut |_| got += 1);
        // The second id's event never ended: resuming names the first.
        assert_eq!((got, s.last_event_id()), (1, &b"#e-1"[..]));
        s.feed(format!("data: {a}\n\n").as_bytes(), &mut |_| got += 1);
        assert_eq!((got, s.last_event_id()), (2, &b"#e-2"[..]));
        assert!(super::Scanner::default().last_event_id().is_empty());
    }

    #[test]
    fn mercure_hub_frames() {
        // What the hub sends: an `id:` line before the data, ids of its
        // own (`#<epoch>-<seq>`, not the payload's), keep-alive comments.
        let a = crate::payload::make(0, 5, 100);
        let b = crate::payload::make(1, 6, 100);
        let wire = format!(
            "retry: 5000\n\n: keep-alive\n\nid: #0badcafe-1\ndata: {a}\n\nid: #0badcafe-2\ndata: {b}\n\n"
        );
        for split in 0..wire.len() {
            let mut s = super::Scanner::default();
            let mut got = Vec::new();
            s.feed(&wire.as_bytes()[..split], &mut |e| got.push(e));
            s.feed(&wire.as_bytes()[split..], &mut |e| got.push(e));
            assert_eq!(got, [Some((0, 5)), Some((1, 6))], "split {split}");
        }
    }
}
