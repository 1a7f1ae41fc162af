//! Property tests for the protocol layer: what `Event::encode` writes, `Parser` reads back
//! exactly (as an `EventSource` would), however the bytes are split into chunks.

use std::time::Duration;

use bytes::BytesMut;
use proptest::prelude::*;
use ssehub::event::{self, Event, EventError, MAX_RETRY_MS};
use ssehub::parse::{Item, Message, Parser};

/// Characters that matter to the wire format, mixed with arbitrary Unicode.
fn wire_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => Just('\n'),
        2 => Just('\r'),
        1 => Just(' '),
        1 => Just(':'),
        1 => Just('\t'),
        1 => Just('\0'),
        1 => Just('\u{FEFF}'),
        1 => Just('\u{2028}'),
        1 => Just('\u{2029}'),
        1 => Just('\u{0085}'),
        1 => Just('\u{000B}'),
        1 => Just('\u{000C}'),
        2 => prop::char::range('a', 'z'),
    ]
}

/// Arbitrary text that often contains CR, LF, CRLF and other awkward characters.
fn wire_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => wire_char().prop_map(String::from),
            1 => Just("\r\n".to_owned()),
        ],
        0..24,
    )
    .prop_map(|pieces| pieces.concat())
}

/// Text with the characters removed that a field cannot carry.
fn text_without(forbidden: &'static [char]) -> impl Strategy<Value = String> {
    wire_text().prop_map(move |s| s.chars().filter(|c| !forbidden.contains(c)).collect())
}

fn valid_retry() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_millis(MAX_RETRY_MS)),
        (0..=MAX_RETRY_MS, 0u32..1_000_000)
            .prop_map(|(ms, ns)| Duration::from_millis(ms) + Duration::from_nanos(u64::from(ns))),
    ]
}

/// Any event that is valid by construction.
fn valid_event() -> impl Strategy<Value = Event> {
    (
        prop::option::of(wire_text()),
        prop::option::of(text_without(&['\r', '\n'])),
        prop::option::of(text_without(&['\r', '\n', '\0'])),
        prop::option::of(valid_retry()),
        prop::option::of(text_without(&['\r', '\n'])),
    )
        .prop_map(|(data, event_type, id, retry, comment)| {
            let mut event = Event::empty();
            if let Some(data) = data {
                event = event.with_data(data);
            }
            if let Some(event_type) = event_type {
                event = event.with_event(event_type);
            }
            if let Some(id) = id {
                event = event.with_id(id);
            }
            if let Some(retry) = retry {
                event = event.with_retry(retry);
            }
            if let Some(comment) = comment {
                event = event.with_comment(comment);
            }
            event
        })
}

/// What a client sees of `data`: every CRLF, CR or LF becomes LF.
fn normalize_line_ends(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

/// The items a spec-exact parser must produce for `events`, encoded one after another.
fn expected_items(events: &[Event]) -> (Vec<Item>, String) {
    let mut last_event_id = String::new();
    let mut items = Vec::new();
    for event in events {
        let event_type = event.event_type().filter(|t| !t.is_empty());
        let writes_nothing = event.comment().is_none()
            && event_type.is_none()
            && event.id().is_none()
            && event.retry().is_none()
            && event.data().is_none();
        if writes_nothing {
            // Encoded as the placeholder comment ":".
            items.push(Item::Comment(String::new()));
        }
        if let Some(comment) = event.comment() {
            let raw = if comment.is_empty() {
                String::new()
            } else {
                format!(" {comment}")
            };
            items.push(Item::Comment(raw));
        }
        if let Some(id) = event.id() {
            last_event_id = id.to_owned();
        }
        if let Some(retry) = event.retry() {
            let millis = u64::try_from(retry.as_millis()).expect("valid retry");
            items.push(Item::Retry(Duration::from_millis(millis)));
        }
        if let Some(data) = event.data() {
            items.push(Item::Message(Message {
                event: event_type.unwrap_or("message").to_owned(),
                data: normalize_line_ends(data),
                last_event_id: last_event_id.clone(),
            }));
        }
    }
    (items, last_event_id)
}

fn encode_all(events: &[Event]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for event in events {
        event.encode_into(&mut buf).expect("valid event");
    }
    buf.to_vec()
}

/// Feeds `bytes` split at `cuts` (positions, any order, may repeat or exceed the length).
fn parse_split(bytes: &[u8], cuts: &[usize]) -> (Vec<Item>, Parser) {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    let mut parser = Parser::new();
    let mut items = Vec::new();
    for pair in cuts.windows(2) {
        items.extend(parser.parse(&bytes[pair[0]..pair[1]]));
    }
    parser.finish();
    items.extend(parser.drain());
    (items, parser)
}

/// The error `validate` must report, checking fields in its documented order.
fn expected_error(
    comment: Option<&str>,
    event_type: Option<&str>,
    id: Option<&str>,
    retry: Option<Duration>,
) -> Option<EventError> {
    let breaks = |s: &str| s.contains(['\r', '\n']);
    if comment.is_some_and(breaks) {
        Some(EventError::InvalidComment)
    } else if event_type.is_some_and(breaks) {
        Some(EventError::InvalidEventType)
    } else if id.is_some_and(|id| breaks(id) || id.contains('\0')) {
        Some(EventError::InvalidId)
    } else {
        retry
            .map(|r| r.as_millis())
            .filter(|&millis| millis > u128::from(MAX_RETRY_MS))
            .map(|millis| EventError::RetryOutOfRange { millis })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn single_event_round_trips(event in valid_event()) {
        let bytes = event.encode().expect("valid event");
        let (expected, last_id) = expected_items(std::slice::from_ref(&event));
        let (items, parser) = parse_split(&bytes, &[]);
        prop_assert_eq!(items, expected);
        prop_assert_eq!(parser.last_event_id(), last_id.as_str());
    }

    #[test]
    fn event_sequences_round_trip_across_any_chunking(
        events in prop::collection::vec(valid_event(), 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let bytes = encode_all(&events);
        let cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        let (expected, last_id) = expected_items(&events);
        let (items, parser) = parse_split(&bytes, &cuts);
        prop_assert_eq!(&items, &expected);
        prop_assert_eq!(parser.last_event_id(), last_id.as_str());

        let every_byte: Vec<usize> = (0..bytes.len()).collect();
        let (bytewise, _) = parse_split(&bytes, &every_byte);
        prop_assert_eq!(bytewise, expected);
    }

    #[test]
    fn encoding_is_well_formed(event in valid_event()) {
        let bytes = event.encode().expect("valid event");
        prop_assert!(!bytes.contains(&b'\r'), "ENC-LF");
        prop_assert!(!bytes.starts_with(b"\xEF\xBB\xBF"), "ENC-NOBOM");
        prop_assert!(bytes.ends_with(b"\n\n"), "ENC-TERM");
        prop_assert!(
            !bytes[..bytes.len() - 1].windows(2).any(|w| w == b"\n\n"),
            "ENC-TERM: no blank line inside an event"
        );
        prop_assert!(std::str::from_utf8(&bytes).is_ok(), "ENC-UTF8");
        prop_assert_eq!(bytes.len(), event.encoded_len());
    }

    #[test]
    fn invalid_events_get_the_typed_error_and_write_nothing(
        data in prop::option::of(wire_text()),
        comment in prop::option::of(wire_text()),
        event_type in prop::option::of(wire_text()),
        id in prop::option::of(wire_text()),
        retry in prop::option::of((any::<u64>(), 0u32..1_000_000_000)
            .prop_map(|(secs, nanos)| Duration::new(secs, nanos))),
    ) {
        let mut event = Event::empty();
        if let Some(data) = &data {
            event = event.with_data(data.clone());
        }
        if let Some(comment) = &comment {
            event = event.with_comment(comment.clone());
        }
        if let Some(event_type) = &event_type {
            event = event.with_event(event_type.clone());
        }
        if let Some(id) = &id {
            event = event.with_id(id.clone());
        }
        if let Some(retry) = retry {
            event = event.with_retry(retry);
        }
        let expected = expected_error(
            comment.as_deref(),
            event_type.as_deref(),
            id.as_deref(),
            retry,
        );
        let mut buf = BytesMut::from(&b"prefix"[..]);
        let result = event.encode_into(&mut buf);
        prop_assert_eq!(event.validate().err(), expected.clone());
        prop_assert_eq!(event.encode().err(), expected.clone());
        match expected {
            Some(error) => {
                prop_assert_eq!(result, Err(error));
                prop_assert_eq!(&buf[..], b"prefix");
            }
            None => prop_assert!(result.is_ok()),
        }
    }

    #[test]
    fn comment_frames_never_dispatch(text in wire_text()) {
        match event::comment(&text) {
            Ok(bytes) => {
                prop_assert!(!text.contains(['\r', '\n']));
                let (items, _) = parse_split(&bytes, &[]);
                prop_assert!(matches!(&items[..], [Item::Comment(_)]));
            }
            Err(error) => {
                prop_assert!(text.contains(['\r', '\n']));
                prop_assert_eq!(error, EventError::InvalidComment);
            }
        }
    }

    #[test]
    fn retry_frames_round_trip(millis in 0..=MAX_RETRY_MS) {
        let bytes = event::retry_frame(Duration::from_millis(millis)).expect("in range");
        let (items, parser) = parse_split(&bytes, &[]);
        prop_assert_eq!(items, vec![Item::Retry(Duration::from_millis(millis))]);
        prop_assert_eq!(parser.reconnection_time(), Some(Duration::from_millis(millis)));
    }

    #[test]
    fn arbitrary_bytes_parse_the_same_however_split(
        bytes in stream_like_bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let (whole, _) = parse_split(&bytes, &[]);
        let (split, _) = parse_split(&bytes, &cuts);
        prop_assert_eq!(&split, &whole);
        let every_byte: Vec<usize> = (0..bytes.len()).collect();
        let (bytewise, _) = parse_split(&bytes, &every_byte);
        prop_assert_eq!(&bytewise, &whole);
        for item in &whole {
            if let Item::Message(message) = item {
                prop_assert!(!message.data.contains('\r'));
                prop_assert!(!message.event.is_empty());
                prop_assert!(!message.event.contains(['\r', '\n']));
                prop_assert!(!message.last_event_id.contains(['\r', '\n', '\0']));
            }
        }
    }
}

/// Bytes built from the stream's own tokens (field names, separators, line ends, BOM, NUL,
/// digits) mixed with arbitrary bytes, so that random input often forms real fields.
fn stream_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        3 => any::<u8>().prop_map(|b| vec![b]),
        2 => prop::sample::select(vec![
            &b"data"[..], b"id", b"event", b"retry", b":", b": ", b" ", b"\r", b"\n", b"\r\n",
            b"\0", b"42", b"x", b"\xEF\xBB\xBF", b"\xE2\x80\xA8", b"\xFF",
        ])
        .prop_map(<[u8]>::to_vec),
    ];
    prop::collection::vec(token, 0..80).prop_map(|tokens| tokens.concat())
}

/// ENC-LONG: a 1 MiB single-line payload survives, in one chunk or many.
#[test]
fn one_mib_single_line_round_trips() {
    let data: String = "0123456789abcdef\u{2028}é"
        .chars()
        .cycle()
        .take(1 << 20)
        .collect();
    let event = Event::with_type("big", data.clone()).with_id("1");
    let bytes = event.encode().expect("valid event");
    let expected = vec![Item::Message(Message {
        event: "big".into(),
        data,
        last_event_id: "1".into(),
    })];
    let (items, _) = parse_split(&bytes, &[]);
    assert_eq!(items, expected);
    let cuts: Vec<usize> = (0..bytes.len()).step_by(7919).collect();
    let (items, _) = parse_split(&bytes, &cuts);
    assert_eq!(items, expected);
}

/// The ENC-SPLIT vectors, as a client sees them.
#[test]
fn split_vectors_reach_the_client_intact() {
    for data in [
        "a\nb", "a\n", "\n", "a\n\nb", "a\r\nb", "a\rb", "\r\n\r", "",
    ] {
        let bytes = Event::new(data).encode().expect("valid event");
        let (items, _) = parse_split(&bytes, &[]);
        assert_eq!(
            items,
            [Item::Message(Message {
                event: "message".into(),
                data: normalize_line_ends(data),
                last_event_id: String::new(),
            })],
            "data {data:?}"
        );
    }
}

/// ENC-ID: an empty id resets the client's last event id; no id leaves it alone.
#[test]
fn empty_id_resets_last_event_id() {
    let events = [
        Event::new("a").with_id("7"),
        Event::new("b"),
        Event::new("c").with_id(""),
    ];
    let (items, parser) = parse_split(&encode_all(&events), &[]);
    let ids: Vec<&str> = items
        .iter()
        .filter_map(|item| match item {
            Item::Message(m) => Some(m.last_event_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, ["7", "7", ""]);
    assert_eq!(parser.last_event_id(), "");
}
