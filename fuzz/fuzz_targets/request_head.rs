//! Fuzzes the lean server's request-head parsing (`ssehub::server`), the
//! first thing any peer's bytes reach, and the `Last-Event-ID` reading of
//! what it yields.
//!
//! The first input byte picks where the rest is cut into two reads, as the
//! server parses after every read. Invariants:
//!
//! * no panic, whatever the bytes;
//! * reads do not change the outcome: once the head parses (or fails) at
//!   some read, the whole input gives the same outcome — a prefix that is
//!   complete or invalid stays so;
//! * a parsed head is consistent: its headers serialize back into a head
//!   that parses to the same method, target and headers;
//! * `ssehub::last_event_id` on a parsed head never panics and honours its
//!   length limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssehub::fuzzing::{RequestHead, parse_request_head};

fuzz_target!(|input: &[u8]| {
    let Some((&control, bytes)) = input.split_first() else {
        return;
    };
    let split = usize::from(control) * bytes.len() / 255;
    let whole = parse_request_head(bytes);
    // What the server sees after the first read, then after the second.
    let incremental = match parse_request_head(&bytes[..split]) {
        RequestHead::Partial => parse_request_head(bytes),
        outcome => outcome,
    };
    assert_eq!(
        summary(&incremental),
        summary(&whole),
        "a read boundary at {split} changed the outcome"
    );

    if let RequestHead::Request(parts) = &whole {
        let mut head = Vec::new();
        head.extend_from_slice(parts.method.as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(parts.uri.to_string().as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &parts.headers {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let again = parse_request_head(&head);
        assert_eq!(
            summary(&again),
            summary(&whole),
            "re-serialized as {:?}",
            String::from_utf8_lossy(&head)
        );

        if let Ok(Some(id)) = ssehub::last_event_id(&parts.headers, parts.uri.query()) {
            assert!(!id.is_empty() && id.len() <= ssehub::MAX_LAST_EVENT_ID_LEN);
        }
    }
});

/// The outcome, comparable: method, target and headers of a request.
fn summary(head: &RequestHead) -> String {
    match head {
        RequestHead::Partial => "partial".to_owned(),
        RequestHead::TooLarge => "too large".to_owned(),
        RequestHead::Invalid => "invalid".to_owned(),
        RequestHead::Request(parts) => {
            format!("{} {} {:?}", parts.method, parts.uri, parts.headers)
        }
    }
}
