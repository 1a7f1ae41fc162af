//! Entry points for the fuzz targets of `fuzz/` (feature `fuzzing`): the
//! parsers a network peer reaches that are otherwise private to the crate.
//!
//! Not a stable API, and hidden from the documentation: each function is a
//! thin wrapper over the code the crate runs, so that a fuzz target
//! exercises exactly that code and nothing the target re-implements.

use crate::server::{self, Head};

/// What the lean server makes of the bytes a connection sent so far.
#[derive(Debug)]
pub enum RequestHead {
    /// Incomplete: the server reads more (up to its head limit).
    Partial,
    /// A complete head, as the handler receives it.
    Request(Box<http::request::Parts>),
    /// More header fields than the server takes (answered 431).
    TooLarge,
    /// Not a request head the server understands (answered 400).
    Invalid,
}

/// Parses the request head at the start of `buf`, as the lean server does
/// after each read of a connection.
///
/// ```
/// use ssehub::fuzzing::{RequestHead, parse_request_head};
/// assert!(matches!(parse_request_head(b"GET /events HTTP/1.1\r\n"), RequestHead::Partial));
/// let head = b"GET /events?topic=a HTTP/1.1\r\nHost: a\r\nX-Two: b \r\nX-Two: c\r\n\r\nbody";
/// let RequestHead::Request(parts) = parse_request_head(head) else {
///     panic!("a complete head");
/// };
/// assert_eq!(parts.uri.path(), "/events");
/// assert_eq!(parts.uri.query(), Some("topic=a"));
/// assert_eq!(parts.headers["host"], "a");
/// let two: Vec<_> = parts.headers.get_all("x-two").iter().collect();
/// assert_eq!(two, ["b", "c"]);
/// assert!(matches!(parse_request_head(b"\x01 / HTTP/1.1\r\n\r\n"), RequestHead::Invalid));
/// ```
pub fn parse_request_head(buf: &[u8]) -> RequestHead {
    match server::parse_head(buf) {
        None => RequestHead::Partial,
        Some(Head::Request(parts, _)) => RequestHead::Request(parts),
        Some(Head::TooLarge) => RequestHead::TooLarge,
        // `Closed` is the socket's, never the parser's.
        Some(Head::Invalid | Head::Closed) => RequestHead::Invalid,
    }
}

/// The id a broker with `epoch` gives the event at `position`.
///
/// ```
/// assert_eq!(ssehub::fuzzing::format_broker_id(0x2a, 7), "0000002a-7");
/// ```
pub fn format_broker_id(epoch: u32, position: u64) -> String {
    crate::broker::fuzzing::format_id(epoch, position)
}

/// The position a `Last-Event-ID` names for a broker with `epoch`, when it
/// is one of that broker's ids (where the broker resumes a client).
///
/// ```
/// assert_eq!(ssehub::fuzzing::parse_broker_id(0x2a, "0000002a-7"), Some(7));
/// assert_eq!(ssehub::fuzzing::parse_broker_id(0x2b, "0000002a-7"), None);
/// ```
pub fn parse_broker_id(epoch: u32, id: &str) -> Option<u64> {
    crate::broker::fuzzing::parse_id(epoch, id)
}
