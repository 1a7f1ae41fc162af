//! What `Event::encode` writes, read by an independent client parser (the `eventsource-stream`
//! crate, used by reqwest-eventsource) as well as by our own: both must see the same events.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use proptest::prelude::*;
use ssehub::event::{Event, MAX_RETRY_MS};
use ssehub::parse::{Item, Parser};

/// One dispatched event as a client reports it: type, data, id, retry carried by the event.
type Seen = (String, String, String, Option<Duration>);

/// Reads `chunks` with eventsource-stream.
fn eventsource_stream_reads(chunks: Vec<Bytes>) -> Vec<Seen> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        futures_util::stream::iter(chunks.into_iter().map(Ok::<_, Infallible>))
            .eventsource()
            .map(|event| {
                let event = event.expect("eventsource-stream accepts our encoding");
                (event.event, event.data, event.id, event.retry)
            })
            .collect()
            .await
    })
}

/// Reads `chunks` with our parser, attaching a `retry` to the message it was sent with (as
/// eventsource-stream does) so the two can be compared.
fn ssehub_reads(chunks: &[Bytes]) -> Vec<Seen> {
    let mut parser = Parser::new();
    let mut seen = Vec::new();
    let mut retry = None;
    for chunk in chunks {
        for item in parser.parse(chunk) {
            match item {
                Item::Retry(r) => retry = Some(r),
                Item::Message(m) => seen.push((m.event, m.data, m.last_event_id, retry.take())),
                Item::Comment(_) | Item::Error(_) => {}
            }
        }
    }
    seen
}

fn text(forbidden: &'static [char]) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => any::<char>().prop_map(String::from),
        1 => prop::sample::select(vec![
            "\n", "\r", "\r\n", " ", ":", "\t", "\0", "\u{FEFF}", "\u{2028}", "\u{0085}", "é",
        ])
        .prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..16).prop_map(move |pieces| {
        pieces
            .concat()
            .chars()
            .filter(|c| !forbidden.contains(c))
            .collect()
    })
}

/// Events that carry data (retry- or id-only frames fire nothing in a client, and
/// eventsource-stream drops their retry, so they are compared in the unit tests instead).
fn event_with_data() -> impl Strategy<Value = Event> {
    (
        text(&[]),
        prop::option::of(text(&['\r', '\n'])),
        prop::option::of(text(&['\r', '\n', '\0'])),
        prop::option::of(0..=MAX_RETRY_MS),
        prop::option::of(text(&['\r', '\n'])),
    )
        .prop_map(|(data, event_type, id, retry, comment)| {
            let mut event = Event::new(data);
            if let Some(event_type) = event_type {
                event = event.with_event(event_type);
            }
            if let Some(id) = id {
                event = event.with_id(id);
            }
            if let Some(retry) = retry {
                event = event.with_retry(Duration::from_millis(retry));
            }
            if let Some(comment) = comment {
                event = event.with_comment(comment);
            }
            event
        })
}

/// Splits `bytes` at `cuts` (taken modulo the length).
fn chunked(bytes: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    cuts.windows(2)
        .map(|w| Bytes::copy_from_slice(&bytes[w[0]..w[1]]))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn eventsource_stream_agrees_with_ssehub(
        events in prop::collection::vec(event_with_data(), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut bytes = Vec::new();
        for event in &events {
            bytes.extend_from_slice(&event.encode().expect("valid event"));
        }
        let chunks = chunked(&bytes, &cuts);
        let ours = ssehub_reads(&chunks);
        prop_assert_eq!(ours.len(), events.len());
        prop_assert_eq!(eventsource_stream_reads(chunks), ours);
    }
}

/// The ENC-SPLIT vectors through eventsource-stream, one byte per chunk.
#[test]
fn split_vectors_through_eventsource_stream() {
    for data in [
        "a\nb", "a\n", "\n", "a\n\nb", "a\r\nb", "a\rb", "\r\n\r", "", " x", "\u{2028}",
    ] {
        let bytes = Event::new(data).with_id("").encode().expect("valid event");
        let chunks = bytes
            .iter()
            .map(|b| Bytes::copy_from_slice(&[*b]))
            .collect();
        let expected = data.replace("\r\n", "\n").replace('\r', "\n");
        assert_eq!(
            eventsource_stream_reads(chunks),
            [("message".to_owned(), expected, String::new(), None)],
            "data {data:?}"
        );
    }
}
