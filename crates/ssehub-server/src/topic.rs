//! Topics and topic matchers: what a subscription selects and what a token
//! grants.
//!
//! A topic is an opaque string (usually an IRI) free of control characters.
//! A [`Matcher`] is either the reserved wildcard `*`, an `Exact` byte-for-byte
//! comparison, or a WHATWG URL Pattern evaluated against the topic resolved
//! on the hub's URL. URL patterns run on the `regex` crate, whose matching
//! time is linear in the input, so a crafted pattern cannot backtrack
//! catastrophically; their size is bounded by [`Limits`] before they are
//! compiled.
//!
//! ```
//! use ssehub_server::topic::{Limits, Matcher, MatchType};
//!
//! let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
//! let books = Matcher::new(MatchType::UrlPattern, "https://example.com/books/:id", &base, &Limits::default()).unwrap();
//! assert!(books.matches("https://example.com/books/1", &base));
//! assert!(!books.matches("https://example.com/authors/1", &base));
//!
//! let exact = Matcher::new(MatchType::Exact, "news", &base, &Limits::default()).unwrap();
//! assert!(exact.matches("news", &base) && !exact.matches("News", &base));
//! ```

use std::fmt;
use std::sync::Arc;

use url::Url;
use urlpattern::{UrlPattern, UrlPatternInit, UrlPatternMatchInput, UrlPatternOptions};

/// The path every hub-generated topic lives under; publishers may not use it.
pub const RESERVED_PATH: &str = "/.well-known/mercure";

/// The reserved matcher value that matches every topic.
pub const WILDCARD: &str = "*";

/// Why a topic or matcher was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// A C0 or C1 control character or DEL.
    #[error("control character in {0}")]
    ControlCharacter(&'static str),
    /// Longer than [`Limits::max_pattern_len`].
    #[error("{what} longer than {max} bytes")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// Not a valid URL pattern.
    #[error("invalid URL pattern: {0}")]
    Pattern(String),
    /// An empty topic or matcher.
    #[error("empty {0}")]
    Empty(&'static str),
}

/// The matcher types of the protocol, by their canonical names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchType {
    /// Byte-for-byte comparison (`match`, `matchExact`).
    Exact,
    /// A WHATWG URL Pattern (`matchURLPattern`).
    UrlPattern,
}

impl MatchType {
    /// The canonical name: `Exact` or `URLPattern`.
    ///
    /// ```
    /// assert_eq!(ssehub_server::topic::MatchType::UrlPattern.name(), "URLPattern");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Self::Exact => "Exact",
            Self::UrlPattern => "URLPattern",
        }
    }

    /// The type named `name` (case-sensitive, canonical spelling).
    ///
    /// ```
    /// use ssehub_server::topic::MatchType;
    /// assert_eq!(MatchType::from_name("Exact"), Some(MatchType::Exact));
    /// assert_eq!(MatchType::from_name("urlpattern"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "Exact" => Some(Self::Exact),
            "URLPattern" => Some(Self::UrlPattern),
            _ => None,
        }
    }
}

impl fmt::Display for MatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Resource bounds on what clients may submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest topic or matcher pattern, in bytes.
    pub max_pattern_len: usize,
    /// Most matchers in one subscription request or one token.
    pub max_matchers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pattern_len: 2048,
            max_matchers: 64,
        }
    }
}

/// A compiled topic matcher. Cheap to clone.
///
/// ```
/// use ssehub_server::topic::{Limits, Matcher, MatchType};
/// let base = url::Url::parse("http://127.0.0.1:3000/.well-known/mercure").unwrap();
/// let all = Matcher::new(MatchType::Exact, "*", &base, &Limits::default()).unwrap();
/// assert!(all.is_wildcard() && all.matches("anything", &base));
/// ```
#[derive(Clone)]
pub struct Matcher {
    kind: MatchType,
    pattern: Arc<str>,
    compiled: Compiled,
}

#[derive(Clone)]
enum Compiled {
    Wildcard,
    Exact,
    Pattern(Arc<UrlPattern>),
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({:?})", self.kind, self.pattern)
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.pattern == other.pattern
    }
}

impl Eq for Matcher {}

impl Matcher {
    /// Validates and compiles a matcher; relative URL patterns resolve on
    /// `base` (the hub's URL).
    ///
    /// # Errors
    /// [`TopicError`] for control characters, an empty or over-long
    /// pattern, or an invalid URL pattern.
    pub fn new(
        kind: MatchType,
        pattern: &str,
        base: &Url,
        limits: &Limits,
    ) -> Result<Self, TopicError> {
        check_text(pattern, "matcher", limits)?;
        let compiled = if pattern == WILDCARD {
            Compiled::Wildcard
        } else {
            match kind {
                MatchType::Exact => Compiled::Exact,
                MatchType::UrlPattern => Compiled::Pattern(Arc::new(compile(pattern, base)?)),
            }
        };
        Ok(Self {
            kind,
            pattern: pattern.into(),
            compiled,
        })
    }

    /// The matcher type.
    ///
    /// ```
    /// # use ssehub_server::topic::{Limits, Matcher, MatchType};
    /// # let base = url::Url::parse("http://h/.well-known/mercure").unwrap();
    /// let m = Matcher::new(MatchType::Exact, "a", &base, &Limits::default()).unwrap();
    /// assert_eq!(m.kind(), MatchType::Exact);
    /// ```
    pub fn kind(&self) -> MatchType {
        self.kind
    }

    /// The matcher as given.
    ///
    /// ```
    /// # use ssehub_server::topic::{Limits, Matcher, MatchType};
    /// # let base = url::Url::parse("http://h/.well-known/mercure").unwrap();
    /// let m = Matcher::new(MatchType::Exact, "a", &base, &Limits::default()).unwrap();
    /// assert_eq!(m.pattern(), "a");
    /// ```
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The matcher as given, shared.
    pub(crate) fn pattern_arc(&self) -> &Arc<str> {
        &self.pattern
    }

    /// Whether this is the reserved `*`, which matches every topic.
    ///
    /// ```
    /// # use ssehub_server::topic::{Limits, Matcher, MatchType};
    /// # let base = url::Url::parse("http://h/.well-known/mercure").unwrap();
    /// assert!(Matcher::new(MatchType::UrlPattern, "*", &base, &Limits::default()).unwrap().is_wildcard());
    /// ```
    pub fn is_wildcard(&self) -> bool {
        matches!(self.compiled, Compiled::Wildcard)
    }

    /// Whether this is an exact matcher (not the wildcard): a map lookup.
    pub(crate) fn exact(&self) -> Option<&str> {
        matches!(self.compiled, Compiled::Exact).then_some(&*self.pattern)
    }

    /// Whether `topic` is selected by this matcher. A topic that does not
    /// resolve to a URL on `base` matches no URL pattern.
    ///
    /// ```
    /// # use ssehub_server::topic::{Limits, Matcher, MatchType};
    /// let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
    /// let subs = Matcher::new(MatchType::UrlPattern, "/.well-known/mercure/subscriptions/:type/:match/:sub", &base, &Limits::default()).unwrap();
    /// assert!(subs.matches("/.well-known/mercure/subscriptions/Exact/a/b", &base));
    /// ```
    pub fn matches(&self, topic: &str, base: &Url) -> bool {
        match &self.compiled {
            Compiled::Wildcard => true,
            Compiled::Exact => *self.pattern == *topic,
            Compiled::Pattern(pattern) => match base.join(topic) {
                Ok(url) => pattern
                    .test(UrlPatternMatchInput::Url(url))
                    .unwrap_or(false),
                Err(_) => false,
            },
        }
    }
}

fn compile(pattern: &str, base: &Url) -> Result<UrlPattern, TopicError> {
    let init =
        UrlPatternInit::parse_constructor_string::<regex::Regex>(pattern, Some(base.clone()))
            .map_err(|err| TopicError::Pattern(err.to_string()))?;
    // ignoreCase stays off, as the protocol requires.
    UrlPattern::parse(init, UrlPatternOptions::default())
        .map_err(|err| TopicError::Pattern(err.to_string()))
}

fn check_text(value: &str, what: &'static str, limits: &Limits) -> Result<(), TopicError> {
    if value.is_empty() {
        return Err(TopicError::Empty(what));
    }
    if value.len() > limits.max_pattern_len {
        return Err(TopicError::TooLong {
            what,
            max: limits.max_pattern_len,
        });
    }
    if has_control(value) {
        return Err(TopicError::ControlCharacter(what));
    }
    Ok(())
}

/// Whether `value` holds a C0 or C1 control character or DEL.
///
/// ```
/// use ssehub_server::topic::has_control;
/// assert!(has_control("a\u{85}b") && has_control("a\tb") && !has_control("https://é.example/"));
/// ```
pub fn has_control(value: &str) -> bool {
    value
        .chars()
        .any(|c| matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'))
}

/// Checks a published topic: non-empty, bounded, no control characters.
///
/// # Errors
/// [`TopicError`] saying which rule the topic breaks.
///
/// ```
/// use ssehub_server::topic::{validate_topic, Limits};
/// assert!(validate_topic("https://example.com/books/1", &Limits::default()).is_ok());
/// assert!(validate_topic("a\nb", &Limits::default()).is_err());
/// ```
pub fn validate_topic(topic: &str, limits: &Limits) -> Result<(), TopicError> {
    check_text(topic, "topic", limits)
}

/// Whether `topic`, resolved on the hub's URL, addresses the hub's reserved
/// namespace (`/.well-known/mercure` and below), whatever its scheme or host.
///
/// ```
/// use ssehub_server::topic::is_reserved;
/// let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
/// assert!(is_reserved("/.well-known/mercure/subscriptions/x", &base));
/// assert!(is_reserved("https://other.example/.well-known/mercure", &base));
/// assert!(!is_reserved("https://example.com/.well-known/mercure-news", &base));
/// assert!(!is_reserved("books/1", &base));
/// ```
pub fn is_reserved(topic: &str, base: &Url) -> bool {
    // An absolute topic can only reach the reserved path by naming it (URL
    // parsing decodes no percent-escapes in path segments, and control
    // characters are refused before this), so most topics skip the parse.
    if has_scheme(topic) && !topic.contains("well-known") {
        return false;
    }
    match base.join(topic) {
        Ok(url) => {
            let path = url.path();
            path == RESERVED_PATH
                || path
                    .strip_prefix(RESERVED_PATH)
                    .is_some_and(|rest| rest.starts_with('/'))
        }
        Err(_) => false,
    }
}

/// Whether `value` starts with a URI scheme (`ALPHA *(ALPHA / DIGIT / "+" / "-" / ".") ":"`).
fn has_scheme(value: &str) -> bool {
    let Some((scheme, _)) = value.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://hub.example/.well-known/mercure").unwrap()
    }

    #[test]
    fn url_patterns_resolve_relative_topics_and_patterns_on_the_hub() {
        let m = Matcher::new(
            MatchType::UrlPattern,
            "/books/:id",
            &base(),
            &Limits::default(),
        )
        .unwrap();
        assert!(m.matches("/books/7", &base()));
        assert!(m.matches("https://hub.example/books/7", &base()));
        assert!(!m.matches("https://elsewhere.example/books/7", &base()));
        assert!(!m.matches("/books/7/chapters", &base()));
    }

    #[test]
    fn url_patterns_are_case_sensitive_except_the_host() {
        let m = Matcher::new(
            MatchType::UrlPattern,
            "https://Example.com/Books/:id",
            &base(),
            &Limits::default(),
        )
        .unwrap();
        assert!(m.matches("https://example.com/Books/1", &base()));
        assert!(!m.matches("https://example.com/books/1", &base()));
    }

    #[test]
    fn exact_matching_is_byte_for_byte_without_normalization() {
        let m = Matcher::new(MatchType::Exact, "/books/1", &base(), &Limits::default()).unwrap();
        assert!(m.matches("/books/1", &base()));
        assert!(!m.matches("https://hub.example/books/1", &base()));
        let nfc = Matcher::new(MatchType::Exact, "caf\u{e9}", &base(), &Limits::default()).unwrap();
        assert!(!nfc.matches("cafe\u{301}", &base()));
    }

    #[test]
    fn limits_and_control_characters_are_refused() {
        let limits = Limits {
            max_pattern_len: 8,
            max_matchers: 1,
        };
        assert!(matches!(
            Matcher::new(MatchType::Exact, "123456789", &base(), &limits),
            Err(TopicError::TooLong { .. })
        ));
        assert_eq!(
            Matcher::new(MatchType::Exact, "a\u{7f}", &base(), &limits),
            Err(TopicError::ControlCharacter("matcher"))
        );
        assert!(matches!(
            Matcher::new(
                MatchType::UrlPattern,
                "https://x/(",
                &base(),
                &Limits::default()
            ),
            Err(TopicError::Pattern(_))
        ));
    }

    #[test]
    fn the_reserved_namespace_is_found_through_relative_and_absolute_forms() {
        let base = base();
        for topic in [
            "mercure",
            "mercure/subscriptions",
            "#fragment",
            "?query",
            "/.well-known/mercure",
            "https://elsewhere.example/.well-known/mercure/x",
            "HTTPS://hub.example/.well-known/mercure",
            "https:\\\\hub.example\\.well-known\\mercure",
            "//other.example/.well-known/mercure",
        ] {
            assert!(is_reserved(topic, &base), "{topic}");
        }
        for topic in [
            "urn:example:mercure",
            "https://example.com/books/1",
            "https://example.com/%2Ewell-known/mercure",
            "https://example.com/.well-known/mercurex",
            "subscriptions/x",
        ] {
            assert!(!is_reserved(topic, &base), "{topic}");
        }
    }

    #[test]
    fn non_url_topics_match_no_pattern_but_do_not_fail() {
        let m = Matcher::new(
            MatchType::UrlPattern,
            "https://x/:id",
            &base(),
            &Limits::default(),
        )
        .unwrap();
        assert!(!m.matches("http://[::1", &base()));
    }
}
