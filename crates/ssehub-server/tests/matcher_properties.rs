//! Property tests of the topic matchers against oracles written here from
//! the specifications, independent of the hub's implementation (which
//! compiles URL patterns with the `urlpattern` crate and URI Templates to
//! regular expressions).
//!
//! * `match_urlpattern`: patterns are generated from a grammar whose
//!   matching set is easy to compute by the WHATWG URL Pattern rules —
//!   literal segments, `:name` segments (one or more characters other than
//!   `/`) and `*` (any characters, `/` included, possibly none), on a fixed
//!   host or relative to the hub — and a topic is selected exactly when the
//!   oracle says so.
//! * `match` (exact): selected exactly when byte-for-byte equal.
//! * `--compat` URI Templates (RFC 6570): `{id}` selects exactly the
//!   topics whose middle is a simple-expansion value (unreserved characters,
//!   `,` between list items, `%XX` triplets), `{+path}` those whose middle
//!   is a reserved-expansion value (reserved characters too).

use proptest::prelude::*;
use ssehub_server::matcher::{MatchType, Matcher};
use ssehub_server::topic::Limits;
use url::Url;

const HUB: &str = "https://hub.example/.well-known/mercure";

fn base() -> Url {
    Url::parse(HUB).unwrap()
}

/// One path segment of a generated URL pattern.
#[derive(Debug, Clone)]
enum Segment {
    /// Literal text (lowercase letters and digits: no pattern syntax).
    Literal(String),
    /// `:name`: one or more characters other than `/`.
    Param,
    /// `*`: any characters, `/` included, possibly none.
    Star,
}

/// A generated pattern: an optional host (none: relative, resolved on the
/// hub) and its path segments.
#[derive(Debug, Clone)]
struct Pattern {
    host: Option<&'static str>,
    segments: Vec<Segment>,
}

impl Pattern {
    fn text(&self) -> String {
        let mut path = String::new();
        for (i, segment) in self.segments.iter().enumerate() {
            path.push('/');
            match segment {
                Segment::Literal(text) => path.push_str(text),
                Segment::Param => path.push_str(&format!(":p{i}")),
                Segment::Star => path.push('*'),
            }
        }
        if path.is_empty() {
            path.push('/');
        }
        match self.host {
            Some(host) => format!("https://{host}{path}"),
            None => path,
        }
    }

    /// The oracle: whether the absolute `topic` is in the pattern's set.
    fn selects(&self, topic: &str) -> bool {
        let host = self.host.unwrap_or("hub.example");
        let Some(path) = topic.strip_prefix(&format!("https://{host}")) else {
            return false;
        };
        if self.segments.is_empty() {
            return path == "/";
        }
        let mut elements = Vec::new();
        for segment in &self.segments {
            elements.push(Element::Text("/".to_owned()));
            elements.push(match segment {
                Segment::Literal(text) => Element::Text(text.clone()),
                Segment::Param => Element::Param,
                Segment::Star => Element::Star,
            });
        }
        matches_elements(&elements, path)
    }
}

enum Element {
    Text(String),
    Param,
    Star,
}

/// Whether `input` is the concatenation of strings each element accepts.
fn matches_elements(elements: &[Element], input: &str) -> bool {
    let Some((first, rest)) = elements.split_first() else {
        return input.is_empty();
    };
    match first {
        Element::Text(text) => input
            .strip_prefix(text.as_str())
            .is_some_and(|after| matches_elements(rest, after)),
        Element::Param => {
            // One or more characters, none of them `/`.
            let run = input.find('/').unwrap_or(input.len());
            (1..=run).any(|n| matches_elements(rest, &input[n..]))
        }
        Element::Star => (0..=input.len())
            .filter(|&n| input.is_char_boundary(n))
            .any(|n| matches_elements(rest, &input[n..])),
    }
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("books".to_owned()),
        "[a-z0-9]{1,3}",
    ]
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        3 => literal().prop_map(Segment::Literal),
        2 => Just(Segment::Param),
        1 => Just(Segment::Star),
    ]
}

fn pattern() -> impl Strategy<Value = Pattern> {
    (
        prop_oneof![
            Just(Some("example.com")),
            Just(Some("other.example")),
            Just(None)
        ],
        prop::collection::vec(segment(), 0..5),
    )
        .prop_map(|(host, segments)| Pattern { host, segments })
}

/// A topic on one of the pattern hosts, absolute or relative, whose path
/// segments come from the same small alphabet as the patterns' literals
/// (so that near misses are frequent), possibly with an empty segment or a
/// trailing `/`.
fn topic() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("https://example.com"),
            Just("https://other.example"),
            Just("https://hub.example"),
            Just(""),
        ],
        prop::collection::vec(prop_oneof![literal(), Just(String::new())], 0..6),
        any::<bool>(),
    )
        .prop_map(|(origin, segments, trailing)| {
            let mut topic = origin.to_owned();
            for segment in &segments {
                topic.push('/');
                topic.push_str(segment);
            }
            if trailing || topic == origin {
                topic.push('/');
            }
            topic
        })
}

/// A topic the pattern selects by construction: each `:name` becomes a
/// non-empty value without `/`, each `*` any value (with `/` or empty).
fn instance(pattern: &Pattern) -> impl Strategy<Value = String> + use<> {
    let pattern = pattern.clone();
    prop::collection::vec(
        (
            "[a-z0-9]{1,3}",
            prop_oneof![Just(String::new()), "[a-z]{1,2}(/[a-z]{0,2}){0,2}"],
        ),
        pattern.segments.len(),
    )
    .prop_map(move |values| {
        let mut path = String::new();
        for (segment, (param, star)) in pattern.segments.iter().zip(values) {
            path.push('/');
            match segment {
                Segment::Literal(text) => path.push_str(text),
                Segment::Param => path.push_str(&param),
                Segment::Star => path.push_str(&star),
            }
        }
        if path.is_empty() {
            path.push('/');
        }
        match pattern.host {
            Some(host) => format!("https://{host}{path}"),
            None => path,
        }
    })
}

fn url_pattern(text: &str) -> Matcher {
    Matcher::new(MatchType::UrlPattern, text, &base(), &Limits::default())
        .unwrap_or_else(|err| panic!("{text:?} does not compile: {err}"))
}

/// The topic as the oracle sees it: resolved on the hub.
fn absolute(topic: &str) -> String {
    base().join(topic).unwrap().to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A topic matches a generated pattern exactly when the oracle says so.
    #[test]
    fn url_patterns_select_what_the_spec_says(pattern in pattern(), topic in topic()) {
        // `//x` is a network-path reference (a host), not a path.
        prop_assume!(!topic.starts_with("//"));
        let matcher = url_pattern(&pattern.text());
        prop_assert_eq!(
            matcher.matches(&topic, &base()),
            pattern.selects(&absolute(&topic)),
            "pattern {} topic {}", pattern.text(), topic
        );
    }

    /// Instances of a pattern (its parameters and wildcards filled in) are
    /// selected, and the oracle agrees (a check of the oracle itself).
    #[test]
    fn url_patterns_select_their_instances(
        (pattern, topic) in pattern().prop_flat_map(|p| (Just(p.clone()), instance(&p)))
    ) {
        prop_assume!(!topic.starts_with("//"));
        prop_assert!(pattern.selects(&absolute(&topic)), "oracle: {} {}", pattern.text(), topic);
        prop_assert!(
            url_pattern(&pattern.text()).matches(&topic, &base()),
            "pattern {} topic {}", pattern.text(), topic
        );
    }

    /// An exact matcher selects exactly its own string: no case folding, no
    /// normalization, no resolution of relative references.
    #[test]
    fn exact_matchers_compare_bytes(
        pattern in "[aA/é:.]{0,4}|https://example\\.com/[a-z]{0,2}",
        topic in "[aA/é:.]{0,4}|https://example\\.com/[a-z]{0,2}|e\u{301}",
    ) {
        let matcher = Matcher::new(MatchType::Exact, &pattern, &base(), &Limits::default()).unwrap();
        prop_assert_eq!(matcher.matches(&topic, &base()), pattern == topic);
        prop_assert!(matcher.matches(&pattern, &base()));
    }

    /// `{id}` (simple expansion) and `{+path}` (reserved expansion), the two
    /// template forms 0.x applications use, select exactly the topics whose
    /// middle part is a value the expression can expand to.
    #[test]
    fn uri_templates_select_their_expansions(
        prefix in prop_oneof![Just("https://example.com/books/"), Just("/"), Just("urn:x:")],
        reserved in any::<bool>(),
        suffix in prop_oneof![Just(""), Just("/pages"), Just(".json")],
        topic_prefix in prop_oneof![Just("https://example.com/books/"), Just("/"), Just("urn:x:"), Just("https://example.com/")],
        middle in prop::collection::vec(
            prop_oneof![
                Just("a"), Just("Z9"), Just("-._~"), Just(","), Just("/"), Just("?q=1"),
                Just("#f"), Just("%41"), Just("%zz"), Just("%"), Just(" "), Just("é"), Just("!$&'()*+;=:@[]"),
            ],
            0..4,
        ),
        topic_suffix in prop_oneof![Just(""), Just("/pages"), Just(".json")],
    ) {
        let expression = if reserved { "{+path}" } else { "{id}" };
        let template = format!("{prefix}{expression}{suffix}");
        let middle = middle.concat();
        let topic = format!("{topic_prefix}{middle}{topic_suffix}");
        let matcher = Matcher::new(MatchType::LegacyTopic, &template, &base(), &Limits::default()).unwrap();

        let expected = topic
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .is_some_and(|value| expansion_value(value, reserved));
        prop_assert_eq!(
            matcher.matches(&topic, &base()),
            expected,
            "template {} topic {}", template, topic
        );
        prop_assert!(matcher.matches(&template, &base()), "a selector selects itself");
    }
}

/// RFC 6570 §3.2.2–3.2.3: what one variable's value (or a list of them,
/// comma-joined) expands to — unreserved characters and `%XX` triplets,
/// plus the reserved characters under `+`.
fn expansion_value(value: &str, reserved: bool) -> bool {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let triplet = bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
            if !triplet {
                return false;
            }
            i += 3;
            continue;
        }
        let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b) || b == b',';
        let reserved_char = b":/?#[]@!$&'()*+,;=".contains(&b);
        if !(unreserved || (reserved && reserved_char)) {
            return false;
        }
        i += 1;
    }
    true
}
