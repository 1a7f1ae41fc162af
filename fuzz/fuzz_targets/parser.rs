//! Fuzzes `ssehub::parse::Parser` with arbitrary bytes.
//!
//! The first input byte chooses where the rest is split into two chunks and whether the parser
//! runs with a tiny size limit; the invariants checked are:
//!
//! * no panic, whatever the input;
//! * one chunk, two chunks and byte-at-a-time feeding give the same items (chunk boundaries,
//!   including inside CRLF, the BOM or a UTF-8 sequence, never change the result);
//! * what is dispatched is encodable: a message's type is non-empty without CR/LF, its id has
//!   no CR/LF/NUL, its data no CR, a comment no CR/LF;
//! * parse -> encode -> parse is the identity on messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssehub::event::Event;
use ssehub::parse::{Item, Message, Parser};

fuzz_target!(|input: &[u8]| {
    let Some((&control, stream)) = input.split_first() else {
        return;
    };
    let split = usize::from(control) * stream.len() / 255;
    // Every other input uses a small limit, so the overflow and skipping paths get exercised.
    let new_parser = || {
        if control % 2 == 0 {
            Parser::new()
        } else {
            Parser::new().with_max_event_size(64)
        }
    };

    let whole = parse_chunks(new_parser(), [stream]);
    let two = parse_chunks(new_parser(), [&stream[..split], &stream[split..]]);
    assert_eq!(
        whole, two,
        "two chunks split at {split} differ from one chunk"
    );
    let bytewise = parse_chunks(new_parser(), stream.chunks(1));
    assert_eq!(
        whole, bytewise,
        "byte-at-a-time feeding differs from one chunk"
    );

    for item in &whole {
        match item {
            Item::Message(message) => check_message(message),
            Item::Comment(text) => assert!(!text.contains(['\r', '\n'])),
            Item::Retry(_) | Item::Error(_) => {}
        }
    }
});

fn parse_chunks<'a>(mut parser: Parser, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Item> {
    let mut items = Vec::new();
    for chunk in chunks {
        items.extend(parser.parse(chunk));
    }
    parser.finish();
    items.extend(parser.drain());
    items
}

fn check_message(message: &Message) {
    assert!(!message.event.is_empty());
    assert!(!message.event.contains(['\r', '\n']));
    assert!(!message.data.contains('\r'));
    assert!(!message.last_event_id.contains(['\r', '\n', '\0']));

    let event = Event::with_type(message.event.as_str(), message.data.as_str())
        .with_id(message.last_event_id.as_str());
    let bytes = event
        .encode()
        .expect("a parsed message is always encodable");
    assert_eq!(bytes.len(), event.encoded_len());
    let reparsed = Parser::new().parse(&bytes);
    assert_eq!(
        reparsed,
        [Item::Message(message.clone())],
        "re-encoding changed the message"
    );
}
