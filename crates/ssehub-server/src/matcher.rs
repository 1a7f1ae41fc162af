//! Topic matchers: what a subscription selects and what a token grants.
//!
//! The protocol has two matcher types, by their canonical (case-sensitive)
//! names: `exact`, a byte-for-byte comparison, and `urlpattern`, a WHATWG
//! URL Pattern evaluated on the topic resolved against the hub's URL. The
//! value `*` matches every topic whatever the type. Compatibility mode adds
//! the 0.x selector of the `topic` parameter and of the legacy `mercure`
//! claim: the topic itself, or a URI Template (RFC 6570) it expands from.
//!
//! URL patterns and templates run on the `regex` crate, whose matching time
//! is linear in the input, so a crafted pattern cannot backtrack
//! catastrophically; their size is bounded by [`Limits`] before they are
//! compiled.
//!
//! ```
//! use ssehub_server::matcher::{MatchType, Matcher};
//! use ssehub_server::topic::Limits;
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

use crate::template::UriTemplate;
use crate::topic::{Limits, TopicError, WILDCARD, check_text};

/// The kinds of topic matcher.
///
/// ```
/// use ssehub_server::matcher::MatchType;
/// assert_eq!(MatchType::from_name("urlpattern"), Some(MatchType::UrlPattern));
/// assert_eq!(MatchType::from_name("URLPattern"), None, "names are case-sensitive");
/// assert_eq!(MatchType::LegacyTopic.name(), None, "not a protocol matcher type");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchType {
    /// `exact`: byte-for-byte comparison (`match`, `match_exact`).
    Exact,
    /// `urlpattern`: a WHATWG URL Pattern (`match_urlpattern`).
    UrlPattern,
    /// The 0.x selector (compatibility mode only): the topic itself, or a
    /// URI Template it expands from. Not addressable by name.
    LegacyTopic,
}

impl MatchType {
    /// The canonical name, for the protocol's two types.
    ///
    /// ```
    /// assert_eq!(ssehub_server::matcher::MatchType::Exact.name(), Some("exact"));
    /// ```
    pub fn name(self) -> Option<&'static str> {
        match self {
            Self::Exact => Some("exact"),
            Self::UrlPattern => Some("urlpattern"),
            Self::LegacyTopic => None,
        }
    }

    /// The protocol type named `name` (case-sensitive, canonical spelling).
    ///
    /// ```
    /// use ssehub_server::matcher::MatchType;
    /// assert_eq!(MatchType::from_name("exact"), Some(MatchType::Exact));
    /// assert_eq!(MatchType::from_name("Exact"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "exact" => Some(Self::Exact),
            "urlpattern" => Some(Self::UrlPattern),
            _ => None,
        }
    }
}

impl fmt::Display for MatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name().unwrap_or("topic"))
    }
}

/// A compiled topic matcher. Cheap to clone.
///
/// ```
/// use ssehub_server::matcher::{MatchType, Matcher};
/// use ssehub_server::topic::Limits;
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
    /// A legacy selector that is a URI Template (also compared exactly).
    Template(Arc<UriTemplate>),
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
    /// `base` (the hub's URL). The empty string is a valid exact matcher
    /// (it selects no topic that can be published).
    ///
    /// # Errors
    /// [`TopicError`] for forbidden characters, an over-long pattern, or an
    /// invalid URL pattern.
    ///
    /// ```
    /// use ssehub_server::matcher::{MatchType, Matcher};
    /// use ssehub_server::topic::{Limits, TopicError};
    /// let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
    /// let err = Matcher::new(MatchType::UrlPattern, "https://example.com/(", &base, &Limits::default());
    /// assert_eq!(err.unwrap_err(), TopicError::Pattern);
    /// ```
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
                // A selector that is not a valid template is a plain string,
                // compared exactly, as 0.x hubs did.
                MatchType::LegacyTopic => match UriTemplate::parse(pattern) {
                    Some(template) => Compiled::Template(Arc::new(template)),
                    None => Compiled::Exact,
                },
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
    /// # use ssehub_server::matcher::{MatchType, Matcher};
    /// # let base = url::Url::parse("http://h/.well-known/mercure").unwrap();
    /// let m = Matcher::new(MatchType::Exact, "a", &base, &Default::default()).unwrap();
    /// assert_eq!(m.kind(), MatchType::Exact);
    /// ```
    pub fn kind(&self) -> MatchType {
        self.kind
    }

    /// The matcher as given.
    ///
    /// ```
    /// # use ssehub_server::matcher::{MatchType, Matcher};
    /// # let base = url::Url::parse("http://h/.well-known/mercure").unwrap();
    /// let m = Matcher::new(MatchType::Exact, "a", &base, &Default::default()).unwrap();
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
    /// # use ssehub_server::matcher::{MatchType, Matcher};
    /// # let base = url::Url::parse("http://h/.well-known/mercure").unwrap();
    /// assert!(Matcher::new(MatchType::UrlPattern, "*", &base, &Default::default()).unwrap().is_wildcard());
    /// ```
    pub fn is_wildcard(&self) -> bool {
        matches!(self.compiled, Compiled::Wildcard)
    }

    /// The topic this matcher selects, when it selects exactly one (a map
    /// lookup finds its subscribers).
    pub(crate) fn exact(&self) -> Option<&str> {
        matches!(self.compiled, Compiled::Exact).then_some(&*self.pattern)
    }

    /// Whether `topic` is selected by this matcher. A topic that does not
    /// resolve to a URL on `base` matches no URL pattern.
    ///
    /// ```
    /// # use ssehub_server::matcher::{MatchType, Matcher};
    /// let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
    /// let subs = Matcher::new(MatchType::UrlPattern, "/.well-known/mercure/subscriptions/:type/:match/:sub", &base, &Default::default()).unwrap();
    /// assert!(subs.matches("/.well-known/mercure/subscriptions/exact/a/b", &base));
    /// ```
    pub fn matches(&self, topic: &str, base: &Url) -> bool {
        match &self.compiled {
            Compiled::Wildcard => true,
            Compiled::Exact => *self.pattern == *topic,
            Compiled::Pattern(pattern) => match base.join(topic) {
                Ok(url) => pattern
                    .test(UrlPatternMatchInput::Url(comparable_host(url)))
                    .unwrap_or(false),
                Err(_) => false,
            },
            Compiled::Template(template) => *self.pattern == *topic || template.matches(topic),
        }
    }
}

/// `url` with its host as a pattern's hostname is compiled: `urlpattern`
/// canonicalizes every pattern hostname as a special URL's host
/// (lowercased, IDNA), whatever the scheme, while the URL parser keeps the
/// host of a non-special URL (`foo://Host/`) as written. Without this, such
/// a pattern would not even select its own URL; with it, hosts compare
/// case-insensitively for every scheme, as for `https`.
fn comparable_host(mut url: Url) -> Url {
    const SPECIAL: [&str; 6] = ["http", "https", "ws", "wss", "ftp", "file"];
    if SPECIAL.contains(&url.scheme()) {
        return url;
    }
    let Some(host) = url.host_str() else {
        return url;
    };
    let mut dummy = Url::parse("http://dummy.test").expect("a valid URL");
    if url::quirks::set_hostname(&mut dummy, host).is_ok() {
        let canonical = url::quirks::hostname(&dummy).to_owned();
        if canonical != host {
            // A host the special parser accepts is a valid opaque host.
            let _ = url.set_host(Some(&canonical));
        }
    }
    url
}

fn compile(pattern: &str, base: &Url) -> Result<UrlPattern, TopicError> {
    let invalid = |err: urlpattern::Error| {
        tracing::debug!(%err, pattern, "invalid URL pattern");
        TopicError::Pattern
    };
    let init =
        UrlPatternInit::parse_constructor_string::<regex::Regex>(pattern, Some(base.clone()))
            .map_err(invalid)?;
    // ignoreCase stays off, as the protocol requires.
    UrlPattern::parse(init, UrlPatternOptions::default()).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://hub.example/.well-known/mercure").unwrap()
    }

    fn matcher(kind: MatchType, pattern: &str) -> Matcher {
        Matcher::new(kind, pattern, &base(), &Limits::default()).unwrap()
    }

    #[test]
    fn url_patterns_resolve_relative_topics_and_patterns_on_the_hub() {
        let m = matcher(MatchType::UrlPattern, "/books/:id");
        assert!(m.matches("/books/7", &base()));
        assert!(m.matches("https://hub.example/books/7", &base()));
        assert!(!m.matches("https://elsewhere.example/books/7", &base()));
        assert!(!m.matches("/books/7/chapters", &base()));
    }

    #[test]
    fn url_patterns_are_case_sensitive_except_the_host() {
        let m = matcher(MatchType::UrlPattern, "https://Example.com/Books/:id");
        assert!(m.matches("https://example.com/Books/1", &base()));
        assert!(!m.matches("https://example.com/books/1", &base()));
    }

    /// Found by fuzzing: `httpsto://aHamplpic` did not select itself, the
    /// pattern's host being lowercased and the topic's not.
    #[test]
    fn hosts_compare_alike_for_every_scheme() {
        for pattern in ["httpsto://aHamplpic", "foo://Example.com/books/:id"] {
            let m = matcher(MatchType::UrlPattern, pattern);
            let topic = pattern.replace(":id", "1");
            assert!(m.matches(&topic, &base()), "{pattern}");
            assert!(m.matches(&topic.to_lowercase(), &base()), "{pattern}");
        }
        let m = matcher(MatchType::UrlPattern, "foo://example.com/Books");
        assert!(
            !m.matches("foo://example.com/books", &base()),
            "paths stay case-sensitive"
        );
        assert!(!m.matches("foo://other.example/Books", &base()));
    }

    #[test]
    fn exact_matching_is_byte_for_byte_without_normalization() {
        let m = matcher(MatchType::Exact, "/books/1");
        assert!(m.matches("/books/1", &base()));
        assert!(!m.matches("https://hub.example/books/1", &base()));
        let nfc = matcher(MatchType::Exact, "caf\u{e9}");
        assert!(!nfc.matches("cafe\u{301}", &base()));
    }

    #[test]
    fn the_wildcard_matches_everything_whatever_the_type() {
        for kind in [
            MatchType::Exact,
            MatchType::UrlPattern,
            MatchType::LegacyTopic,
        ] {
            let m = matcher(kind, "*");
            assert!(m.is_wildcard() && m.matches("urn:x", &base()), "{kind:?}");
        }
    }

    #[test]
    fn legacy_selectors_are_exact_or_uri_templates() {
        let template = matcher(MatchType::LegacyTopic, "https://example.com/books/{id}");
        assert!(template.exact().is_none());
        assert!(template.matches("https://example.com/books/7", &base()));
        assert!(template.matches("https://example.com/books/{id}", &base()));
        assert!(!template.matches("https://example.com/books/7/pages", &base()));
        let plain = matcher(MatchType::LegacyTopic, "https://example.com/books/1");
        assert_eq!(plain.exact(), Some("https://example.com/books/1"));
        let broken = matcher(MatchType::LegacyTopic, "https://example.com/{");
        assert!(broken.matches("https://example.com/{", &base()));
        assert!(!broken.matches("https://example.com/x", &base()));
    }

    #[test]
    fn limits_and_forbidden_characters_are_refused() {
        let limits = Limits {
            max_pattern_len: 8,
            ..Limits::default()
        };
        assert!(matches!(
            Matcher::new(MatchType::Exact, "123456789", &base(), &limits),
            Err(TopicError::TooLong { .. })
        ));
        assert_eq!(
            Matcher::new(MatchType::Exact, "a\u{7f}", &base(), &limits),
            Err(TopicError::ForbiddenCharacter("matcher"))
        );
        assert_eq!(
            Matcher::new(
                MatchType::UrlPattern,
                "https://x/(",
                &base(),
                &Limits::default()
            ),
            Err(TopicError::Pattern)
        );
    }

    #[test]
    fn non_url_topics_match_no_pattern_but_do_not_fail() {
        let m = matcher(MatchType::UrlPattern, "https://x/:id");
        assert!(!m.matches("http://[::1", &base()));
    }
}
