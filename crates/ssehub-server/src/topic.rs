//! Topics: the strings updates are published on, and the rules every
//! topic, matcher, id and event type must follow.
//!
//! A topic is an opaque string (usually an IRI). The protocol forbids in it,
//! as in every matcher, `id` and `type`: C0 and C1 control characters, DEL,
//! and Unicode format characters (general category `Cf`: bidirectional and
//! zero-width controls, which are invisible and let one identifier pass for
//! another). Two topic values cannot be published: `*`, the wildcard no
//! matcher could single out, and anything in the hub's reserved namespace
//! (`/.well-known/mercure` and below), where only the hub publishes
//! (subscription events).
//!
//! ```
//! use ssehub_server::topic::{is_protocol_string, is_reserved};
//!
//! assert!(is_protocol_string("https://example.com/books/1"));
//! assert!(!is_protocol_string("books/1\u{200b}")); // a zero-width space
//!
//! let hub = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
//! assert!(is_reserved("https://hub.example/.well-known/%6Dercure/subscriptions", &hub));
//! assert!(!is_reserved("https://example.com/books/1", &hub));
//! ```

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use url::Url;

/// The hub's path; everything under it is the hub's own namespace.
pub const RESERVED_PATH: &str = "/.well-known/mercure";

/// The reserved matcher value that matches every topic.
pub const WILDCARD: &str = "*";

/// Why a topic or matcher was refused.
///
/// ```
/// use ssehub_server::topic::TopicError;
/// assert_eq!(TopicError::Wildcard.to_string(), "the topic * is reserved for the wildcard matcher");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// A control character (C0, C1, DEL) or a Unicode format character.
    #[error("forbidden character (control or format) in {0}")]
    ForbiddenCharacter(&'static str),
    /// Longer than [`Limits::max_pattern_len`].
    #[error("{what} longer than {max} bytes")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// Not a valid URL pattern. The parser's own message is only logged:
    /// it can hold internal details of no use to a client.
    #[error("invalid URL pattern")]
    Pattern,
    /// An empty matcher where one is required (token grants).
    #[error("empty {0}")]
    Empty(&'static str),
    /// The topic `*`, which only the wildcard matcher could select.
    #[error("the topic * is reserved for the wildcard matcher")]
    Wildcard,
    /// A topic in the hub's reserved namespace.
    #[error("the topic {0:?} is in the hub's reserved namespace")]
    Reserved(String),
}

/// Resource bounds on what clients may submit.
///
/// ```
/// let limits = ssehub_server::topic::Limits::default();
/// assert_eq!((limits.max_pattern_len, limits.max_matchers), (4096, 100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest topic, matcher, `id` or `type`, in bytes.
    pub max_pattern_len: usize,
    /// Most matchers in one subscription, and in one token (summed over
    /// its details).
    pub max_matchers: usize,
    /// Most `topic` fields in one update.
    pub max_topics: usize,
}

impl Default for Limits {
    /// The reference hub's bounds, so that nothing it accepts is refused
    /// here: 4096-byte patterns, 100 matchers, 1000 topics per update.
    fn default() -> Self {
        Self {
            max_pattern_len: 4096,
            max_matchers: 100,
            max_topics: 1000,
        }
    }
}

/// Whether `value` is free of the characters the protocol forbids in
/// topics, matchers, ids and event types: C0 and C1 controls, DEL, and
/// format characters (`Cf`).
///
/// ```
/// use ssehub_server::topic::is_protocol_string;
/// assert!(is_protocol_string("https://é.example/📚"));
/// assert!(!is_protocol_string("a\tb") && !is_protocol_string("a\u{85}b"));
/// assert!(!is_protocol_string("a\u{202e}b"), "right-to-left override");
/// ```
pub fn is_protocol_string(value: &str) -> bool {
    // ASCII without controls is the common case and needs no table lookup.
    value.chars().all(|c| match c {
        ' '..='~' => true,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => false,
        c => c.general_category() != GeneralCategory::Format,
    })
}

/// Checks a topic, matcher, `id` or `type` (`what` names it in the error):
/// bounded, and only characters the protocol allows.
///
/// # Errors
/// [`TopicError::TooLong`] or [`TopicError::ForbiddenCharacter`].
///
/// ```
/// use ssehub_server::topic::{check_text, Limits, TopicError};
/// assert!(check_text("news", "topic", &Limits::default()).is_ok());
/// assert_eq!(check_text("a\u{0}", "id", &Limits::default()), Err(TopicError::ForbiddenCharacter("id")));
/// ```
pub fn check_text(value: &str, what: &'static str, limits: &Limits) -> Result<(), TopicError> {
    if value.len() > limits.max_pattern_len {
        return Err(TopicError::TooLong {
            what,
            max: limits.max_pattern_len,
        });
    }
    if !is_protocol_string(value) {
        return Err(TopicError::ForbiddenCharacter(what));
    }
    Ok(())
}

/// Checks a topic an update is published on: [`check_text`], not `*`, and
/// not in the reserved namespace of the hub at `base`.
///
/// # Errors
/// [`TopicError`] saying which rule the topic breaks.
///
/// ```
/// use ssehub_server::topic::{validate_topic, Limits};
/// let hub = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
/// assert!(validate_topic("https://example.com/books/1", &hub, &Limits::default()).is_ok());
/// assert!(validate_topic("*", &hub, &Limits::default()).is_err());
/// assert!(validate_topic("a\nb", &hub, &Limits::default()).is_err());
/// ```
pub fn validate_topic(topic: &str, base: &Url, limits: &Limits) -> Result<(), TopicError> {
    check_text(topic, "topic", limits)?;
    if topic == WILDCARD {
        return Err(TopicError::Wildcard);
    }
    if is_reserved(topic, base) {
        return Err(TopicError::Reserved(topic.to_owned()));
    }
    Ok(())
}

/// Whether `topic`, resolved as a URL reference on the hub's URL `base`,
/// addresses the reserved namespace: its path, once dot-segments are
/// removed and percent-encoded unreserved characters decoded, is
/// `/.well-known/mercure` or below it — whatever the scheme or host. A
/// topic that is not a URL reference names no hub path.
///
/// ```
/// use ssehub_server::topic::is_reserved;
/// let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
/// assert!(is_reserved("/.well-known/mercure/subscriptions/x", &base));
/// assert!(is_reserved("https://other.example/.well-known/mercure", &base));
/// assert!(is_reserved("/.well-known/mercure/../mercure/x", &base));
/// assert!(is_reserved("https://example.com/%2Ewell-known/mercure", &base));
/// assert!(!is_reserved("https://example.com/.well-known/mercure-news", &base));
/// assert!(!is_reserved("urn:example:books:1", &base));
/// ```
pub fn is_reserved(topic: &str, base: &Url) -> bool {
    // A topic whose path does not depend on the hub's can only reach the
    // reserved path by spelling it, or by percent-encoding some of it; the
    // common topic skips the parse. (Relative topics resolve on the hub's
    // own path, so they are parsed.)
    if resolves_on_its_own(topic, base) && !topic.contains('%') && !topic.contains("well-known") {
        return false;
    }
    segment_is_reserved(topic, base).unwrap_or_else(|| joined_is_reserved(topic, base))
}

/// [`is_reserved`] by resolving `topic` with the URL parser.
fn joined_is_reserved(topic: &str, base: &Url) -> bool {
    let Ok(url) = base.join(topic) else {
        return false;
    };
    is_reserved_path(&decode_unreserved(url.path()))
}

/// Whether a normalized path is the reserved one or below it.
fn is_reserved_path(path: &str) -> bool {
    path == RESERVED_PATH
        || path
            .strip_prefix(RESERVED_PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// [`is_reserved`] without the URL parser for the usual relative topic, a
/// single path segment of unreserved characters (`chat`, `user-42`): it
/// replaces the last segment of the hub's path, so the resolved path is
/// the hub's directory followed by the topic. `None` for any other topic.
fn segment_is_reserved(topic: &str, base: &Url) -> Option<bool> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if topic.is_empty() || topic == "." || topic == ".." || !topic.bytes().all(unreserved) {
        return None;
    }
    if base.cannot_be_a_base() {
        return None;
    }
    let path = base.path();
    let dir = decode_unreserved(&path[..=path.rfind('/')?]);
    // `dir` ends with `/` and the topic holds none: the resolved path is
    // below the reserved one only if `dir` already is.
    let equal = dir.len() + topic.len() == RESERVED_PATH.len()
        && RESERVED_PATH
            .strip_prefix(&*dir)
            .is_some_and(|rest| rest == topic);
    let below = dir
        .strip_prefix(RESERVED_PATH)
        .is_some_and(|rest| rest.starts_with('/'));
    Some(equal || below)
}

/// RFC 3986 §6.2.2.2: `%XX` triplets of unreserved characters (ALPHA,
/// DIGIT, `-`, `.`, `_`, `~`) decoded, every other triplet left as is.
fn decode_unreserved(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains('%') {
        return path.into();
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b));
        match decoded {
            Some(b) => {
                out.push(char::from(b));
                i += 3;
            }
            None => {
                // Paths from the URL parser are ASCII; copy a whole char
                // anyway so nothing can split one.
                let c = path[i..].chars().next().unwrap_or('\u{fffd}');
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out.into()
}

/// Whether `topic` resolves to a path of its own, whatever the hub's:
/// it starts with a URI scheme (`ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")
/// ":"`) and is either followed by `/` or of another scheme than the hub.
///
/// A scheme alone is not enough: the URL Standard resolves `https:mercure`
/// on an `https` hub as the relative reference `mercure`, that is, in the
/// hub's own namespace.
fn resolves_on_its_own(topic: &str, base: &Url) -> bool {
    let Some((scheme, rest)) = topic.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    let is_scheme = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    is_scheme && (rest.starts_with('/') || !scheme.eq_ignore_ascii_case(base.scheme()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://hub.example/.well-known/mercure").unwrap()
    }

    #[test]
    fn the_reserved_namespace_is_found_through_every_spelling() {
        let base = base();
        for topic in [
            "",
            "mercure",
            "mercure/subscriptions",
            "#fragment",
            "?query",
            "/.well-known/mercure",
            "https://elsewhere.example/.well-known/mercure/x",
            "HTTPS://hub.example/.well-known/mercure",
            "https:\\\\hub.example\\.well-known\\mercure",
            "//other.example/.well-known/mercure",
            "/.well-known/%6Dercure/subscriptions/x",
            "/.well-known/%6dercure",
            "https://x.example/%2Ewell-known/mercure",
            "https://x.example/%2ewell-known/%6D%65rcure/",
            "https://x.example/.%77ell-known/mercure",
            "/.well-known/mercure/../mercure/x",
            "/a/%2e%2e/.well-known/mercure",
            "https://x.example/a/b/../../.well-known/mercure/x",
            // The hub's scheme without slashes is a relative reference
            // (found by fuzzing: these were publishable).
            "https:",
            "https:?/",
            "https:mercure/subscriptions/x",
            "HTTPS:mercure",
            "https:#x",
        ] {
            assert!(is_reserved(topic, &base), "{topic:?}");
        }
        for topic in [
            "urn:example:mercure",
            "https://example.com/books/1",
            "https://example.com/.well-known/mercurex",
            "https://example.com/.WELL-KNOWN/mercure",
            "https://example.com/.well-known/%2Fmercure",
            "subscriptions/x",
            "books/1",
            "https:/mercure",
            "http:mercure",
            "urn:mercure",
        ] {
            assert!(!is_reserved(topic, &base), "{topic:?}");
        }
    }

    proptest::proptest! {
        /// The shortcut for single-segment topics agrees with resolving
        /// them with the URL parser, on hub paths in and out of the
        /// reserved namespace.
        #[test]
        fn single_segments_resolve_as_the_url_parser_resolves_them(
            topic in "mercure|[a-z.~_-]{0,12}",
            path in proptest::sample::select(vec![
                "/.well-known/mercure",
                "/.well-known/mercure/",
                "/.well-known/mercure/x",
                "/.well-known/",
                "/.well-known/%6Dercure/",
                "/.%77ell-known/x",
                "/",
                "/hub/.well-known/mercure",
                "/a/b",
            ]),
        ) {
            let base = Url::parse(&format!("https://hub.example{path}")).unwrap();
            if let Some(fast) = segment_is_reserved(&topic, &base) {
                proptest::prop_assert_eq!(fast, joined_is_reserved(&topic, &base));
            }
        }
    }

    #[test]
    fn single_segments_in_the_hub_directory_are_found() {
        let base = base();
        assert_eq!(segment_is_reserved("mercure", &base), Some(true));
        assert_eq!(segment_is_reserved("c42", &base), Some(false));
        assert_eq!(segment_is_reserved("mercure-x", &base), Some(false));
        let below = Url::parse("https://hub.example/.well-known/mercure/x").unwrap();
        assert_eq!(segment_is_reserved("c42", &below), Some(true));
        for other in ["", ".", "..", "a/b", "%6Dercure", "a:b"] {
            assert_eq!(segment_is_reserved(other, &base), None, "{other:?}");
        }
    }

    #[test]
    fn forbidden_characters_are_controls_and_format_characters() {
        for bad in [
            "\u{0}",
            "\n",
            "\r",
            "\u{1f}",
            "\u{7f}",
            "\u{80}",
            "\u{9f}",
            "\u{ad}",
            "\u{200b}",
            "\u{200e}",
            "\u{2066}",
            "\u{feff}",
            "\u{e0001}",
        ] {
            assert!(!is_protocol_string(&format!("a{bad}b")), "{bad:?}");
        }
        for good in ["", " ", "é", "日本", "🙂", "\u{a0}", "a b"] {
            assert!(is_protocol_string(good), "{good:?}");
        }
    }

    #[test]
    fn published_topics_follow_every_rule() {
        let limits = Limits {
            max_pattern_len: 8,
            ..Limits::default()
        };
        let base = base();
        assert_eq!(
            validate_topic("123456789", &base, &limits),
            Err(TopicError::TooLong {
                what: "topic",
                max: 8
            })
        );
        assert_eq!(
            validate_topic("*", &base, &limits),
            Err(TopicError::Wildcard)
        );
        assert!(matches!(
            validate_topic("mercure", &base, &limits),
            Err(TopicError::Reserved(_))
        ));
        assert!(validate_topic("**", &base, &limits).is_ok());
    }
}
