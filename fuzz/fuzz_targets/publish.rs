//! Fuzzes the hub's publication form (`POST /.well-known/mercure` bodies).
//!
//! The first input byte picks the limits (the defaults, or tiny ones so the
//! size checks trip); the rest is the body. Invariants:
//!
//! * no panic, and a refusal is `400` or `413`, never anything else;
//! * what is accepted follows the protocol's input rules: at least one
//!   topic and no more than the limit, each one publishable; no reserved
//!   id or type; a retry the stream can carry;
//! * the fields are those an independent form decoder (`form_urlencoded`)
//!   reads: every `topic`, the first `data`, `id`, `type`, `retry`;
//! * re-encoding the accepted fields as a form parses back to the same
//!   publication;
//! * the log record of an accepted publication encodes, decodes to the same
//!   topics and flags, and its frame parses as one SSE message carrying the
//!   data, type and id subscribers must see.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use ssehub::journal::{JournalId, Offset};
use ssehub::parse::{Item, Parser};
use ssehub_server::fuzzing::{Publication, generated_id, parse_publication, store};
use ssehub_server::topic::{Limits, check_text, validate_topic};
use url::Url;

fuzz_target!(|input: &[u8]| {
    let Some((&control, body)) = input.split_first() else {
        return;
    };
    let limits = if control % 2 == 0 {
        Limits::default()
    } else {
        Limits {
            max_pattern_len: 16,
            max_matchers: 2,
            max_topics: 3,
        }
    };
    let base = Url::parse("https://hub.example/.well-known/mercure").unwrap();
    let publication = match parse_publication(body, &base, &limits) {
        Ok(publication) => publication,
        Err(refusal) => {
            assert!(
                refusal.status == 400 || refusal.status == 413,
                "unexpected status {refusal:?}"
            );
            return;
        }
    };
    check_rules(&publication, &base, &limits);
    check_against_form_decoder(&publication, body);

    let reencoded = reencode(&publication);
    assert_eq!(
        parse_publication(reencoded.as_bytes(), &base, &limits).as_ref(),
        Ok(&publication),
        "re-encoded as {reencoded:?}"
    );

    let position = JournalId {
        epoch: u32::from(control),
        offset: Offset::Seq(u64::from(control) + 1),
    };
    check_record(&publication, position);
});

fn check_rules(p: &Publication, base: &Url, limits: &Limits) {
    assert!(!p.topics.is_empty() && p.topics.len() <= limits.max_topics);
    for topic in &p.topics {
        assert_eq!(validate_topic(topic, base, limits), Ok(()), "{topic:?}");
    }
    if let Some(id) = &p.id {
        assert!(!id.is_empty() && !id.starts_with('#') && id != "earliest");
        assert_eq!(check_text(id, "id", limits), Ok(()));
    }
    if let Some(kind) = &p.event_type {
        assert!(!kind.is_empty() && kind != "mercure");
        assert_eq!(check_text(kind, "type", limits), Ok(()));
    }
    if let Some(retry) = p.retry {
        assert!(retry <= Duration::from_millis(ssehub::event::MAX_RETRY_MS));
    }
}

fn check_against_form_decoder(p: &Publication, body: &[u8]) {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let first = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let topics: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "topic")
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(p.topics, topics);
    assert_eq!(p.data, first("data").unwrap_or_default());
    assert_eq!(p.id, first("id").filter(|v| !v.is_empty()));
    assert_eq!(p.event_type, first("type").filter(|v| !v.is_empty()));
    assert_eq!(
        p.retry.is_some(),
        first("retry").is_some_and(|v| !v.is_empty())
    );
    assert_eq!(p.private, pairs.iter().any(|(k, _)| k == "private"));
}

fn reencode(p: &Publication) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for topic in &p.topics {
        form.append_pair("topic", topic);
    }
    form.append_pair("data", &p.data);
    if let Some(id) = &p.id {
        form.append_pair("id", id);
    }
    if let Some(kind) = &p.event_type {
        form.append_pair("type", kind);
    }
    if let Some(retry) = p.retry {
        form.append_pair("retry", &retry.as_millis().to_string());
    }
    if p.private {
        form.append_key_only("private");
    }
    form.finish()
}

fn check_record(p: &Publication, position: JournalId) {
    let stored = store(p, position).expect("an accepted publication is storable");
    assert_eq!(stored.topics, p.topics);
    assert_eq!(stored.private, p.private);
    assert_eq!(stored.caller_id, p.id.is_some());
    let id = p.id.clone().unwrap_or_else(|| generated_id(position));
    assert_eq!(stored.id, id);

    let items = Parser::new().parse(&stored.frame);
    let mut messages = items.iter().filter_map(|item| match item {
        Item::Message(message) => Some(message),
        _ => None,
    });
    let message = messages.next().expect("the frame holds a message");
    assert!(messages.next().is_none(), "one frame, one message");
    // SSE has no bare CR in data: a CR or CRLF is a line break.
    let data = p.data.replace("\r\n", "\n").replace('\r', "\n");
    assert_eq!(message.data, data);
    assert_eq!(message.event, p.event_type.as_deref().unwrap_or("message"));
    assert_eq!(message.last_event_id, id);
    let retry = items.iter().find_map(|item| match item {
        Item::Retry(retry) => Some(*retry),
        _ => None,
    });
    assert_eq!(retry, p.retry);
}
