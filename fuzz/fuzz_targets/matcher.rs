//! Fuzzes topic matchers (`match`, `match_urlpattern`, the 0.x `topic`
//! selector and its URI Templates) and the topic rules.
//!
//! Invariants:
//!
//! * no panic compiling a matcher or matching any topic;
//! * an exact matcher selects exactly its own string;
//! * a 0.x selector selects its own string; when it is a URI Template, it
//!   also selects its expansion with every variable undefined, and with
//!   every variable set to `v`;
//! * a URL pattern free of pattern syntax that is already a normalized
//!   absolute URL selects that URL;
//! * `*` selects everything, whatever the type;
//! * the reserved namespace does not depend on spelling a topic relative
//!   or absolute: a topic is reserved exactly when its resolved URL is, and
//!   a reserved topic is never publishable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssehub_server::fuzzing::template_matches;
use ssehub_server::matcher::{MatchType, Matcher};
use ssehub_server::topic::{Limits, TopicError, is_reserved, validate_topic};
use url::Url;

/// The input, as text a seed can be written in: the matcher type's line
/// (`exact`, `urlpattern`, anything else for a 0.x selector), the pattern's
/// line, then the topic (the rest, newlines included).
#[derive(Debug)]
struct Input<'a> {
    kind: MatchType,
    pattern: &'a str,
    topic: &'a str,
}

impl<'a> Input<'a> {
    fn read(text: &'a str) -> Self {
        let mut fields = text.splitn(3, '\n');
        let kind = match fields.next().unwrap_or_default() {
            "exact" => MatchType::Exact,
            "urlpattern" => MatchType::UrlPattern,
            _ => MatchType::LegacyTopic,
        };
        Self {
            kind,
            pattern: fields.next().unwrap_or_default(),
            topic: fields.next().unwrap_or_default(),
        }
    }
}

fuzz_target!(|text: &str| {
    let input = Input::read(text);
    let base = Url::parse("https://hub.example/.well-known/mercure").unwrap();
    let limits = Limits::default();
    let kind = input.kind;
    check_topic(input.topic, &base, &limits);

    let Ok(matcher) = Matcher::new(kind, input.pattern, &base, &limits) else {
        return;
    };
    let selects = matcher.matches(input.topic, &base);
    assert_eq!(
        selects,
        matcher.matches(input.topic, &base),
        "deterministic"
    );
    if matcher.is_wildcard() {
        assert!(selects);
        return;
    }
    match kind {
        MatchType::Exact => {
            assert_eq!(selects, input.pattern == input.topic);
        }
        MatchType::LegacyTopic => {
            assert!(matcher.matches(input.pattern, &base));
            if input.pattern == input.topic {
                assert!(selects);
            }
            if template_matches(input.pattern, input.topic).is_some() {
                for value in [None, Some("v")] {
                    let expansion = expand(input.pattern, value);
                    assert!(
                        matcher.matches(&expansion, &base),
                        "{:?} does not select its expansion {expansion:?}",
                        input.pattern
                    );
                }
            }
        }
        MatchType::UrlPattern => {
            let literal = is_plain_url_with_scheme(input.pattern);
            if literal
                && let Ok(url) = Url::parse(input.pattern)
                && url.as_str() == input.pattern
                && url.query().is_none()
                && url.fragment().is_none()
            {
                assert!(
                    matcher.matches(input.pattern, &base),
                    "{:?} does not select itself",
                    input.pattern
                );
            }
        }
    }
});

/// `scheme://` followed by no other pattern syntax.
fn is_plain_url_with_scheme(pattern: &str) -> bool {
    let Some((scheme, rest)) = pattern.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme.bytes().all(|b| b.is_ascii_alphabetic())
        && !rest.contains([':', '*', '(', ')', '{', '}', '?', '+', '\\', '#', '@'])
}

fn check_topic(topic: &str, base: &Url, limits: &Limits) {
    let reserved = is_reserved(topic, base);
    if let Ok(resolved) = base.join(topic) {
        assert_eq!(
            reserved,
            is_reserved(resolved.as_str(), base),
            "{topic:?} resolves to {resolved}"
        );
    }
    if reserved {
        assert!(matches!(
            validate_topic(topic, base, limits),
            Err(TopicError::Reserved(_)
                | TopicError::ForbiddenCharacter(_)
                | TopicError::TooLong { .. })
        ));
    }
}

/// RFC 6570 expansion with every variable undefined (`None`) or set to
/// `value`: a valid template is literals and `{…}` expressions.
fn expand(template: &str, value: Option<&str>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let expression = &rest[start + 1..start + end];
        if let Some(value) = value {
            out.push_str(&expand_expression(expression, value));
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

fn expand_expression(expression: &str, value: &str) -> String {
    let (first, separator, named, list) = match expression.as_bytes().first() {
        Some(b'+') => ("", ",", false, &expression[1..]),
        Some(b'#') => ("#", ",", false, &expression[1..]),
        Some(b'.') => (".", ".", false, &expression[1..]),
        Some(b'/') => ("/", "/", false, &expression[1..]),
        Some(b';') => (";", ";", true, &expression[1..]),
        Some(b'?') => ("?", "&", true, &expression[1..]),
        Some(b'&') => ("&", "&", true, &expression[1..]),
        _ => ("", ",", false, expression),
    };
    let items: Vec<String> = list
        .split(',')
        .map(|varspec| {
            let name = varspec
                .strip_suffix('*')
                .unwrap_or_else(|| varspec.split(':').next().unwrap_or(varspec));
            if named {
                format!("{name}={value}")
            } else {
                value.to_owned()
            }
        })
        .collect();
    format!("{first}{}", items.join(separator))
}
