//! A subscription's parameters: its topic matchers and its resume point.
//!
//! The parameters come from the query string and, for a `QUERY` request,
//! from the form body too: the hub takes the union of both, as if they had
//! all been in one place, so that matcher lists too long for a URL fit.
//! Names are case-sensitive: `match` (or `match_exact`) for exact
//! matchers, `match_urlpattern` for URL patterns, and any other name in the
//! reserved `match` namespace (compared case-insensitively, so typos fail
//! loudly) is refused. `topic`, the 0.x parameter, selects by topic or URI
//! Template in compatibility mode and is refused otherwise.
//!
//! The resume point is the `Last-Event-ID` header, else `last_event_id`
//! (the query's when both the query and the body have one), else, in
//! compatibility mode, `lastEventID`, the 0.x spelling (0.x clients that
//! resume with it would otherwise silently miss what they asked for).

use http::HeaderMap;
use url::Url;

use super::{RequestError, decode_pairs};
use crate::matcher::{MatchType, Matcher};
use crate::topic::Limits;

/// The request header of a reconnecting `EventSource`.
const LAST_EVENT_ID: &str = "last-event-id";

/// The query (or body) parameter carrying the resume point.
const LAST_EVENT_ID_PARAM: &str = "last_event_id";

/// The 0.x spelling of [`LAST_EVENT_ID_PARAM`], read in compatibility mode.
const LEGACY_LAST_EVENT_ID_PARAM: &str = "lastEventID";

/// What a subscription asks for.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// Its matchers, in the order given.
    pub matchers: Vec<Matcher>,
    /// Its resume point: `Some` whenever the request carried one, even an
    /// empty one (the response then says where it resumed).
    pub last_event_id: Option<String>,
}

/// How a subscription request is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules<'a> {
    /// The hub's URL, the base of relative URL patterns.
    pub base: &'a Url,
    /// Size bounds.
    pub limits: &'a Limits,
    /// Whether the 0.x `topic` parameter is accepted.
    pub compat: bool,
}

/// Parses a subscription from its query string, its form body (`QUERY`)
/// and its headers.
pub(crate) fn parse(
    query: Option<&str>,
    body: Option<&[u8]>,
    headers: &HeaderMap,
    rules: Rules<'_>,
) -> Result<Subscription, RequestError> {
    let mut pairs = decode_pairs(query.unwrap_or_default().as_bytes())?;
    if let Some(body) = body {
        pairs.extend(decode_pairs(body)?);
    }
    let mut matchers = Vec::new();
    let mut last_event_id = None;
    let mut legacy_last_event_id = None;
    for (name, value) in pairs {
        let (kind, param) = match name.as_str() {
            "match" => (MatchType::Exact, "match"),
            "match_exact" => (MatchType::Exact, "match_exact"),
            "match_urlpattern" => (MatchType::UrlPattern, "match_urlpattern"),
            "topic" if rules.compat => (MatchType::LegacyTopic, "topic"),
            "topic" => return Err(RequestError::UnknownMatcher(name)),
            LAST_EVENT_ID_PARAM => {
                last_event_id.get_or_insert(value);
                continue;
            }
            LEGACY_LAST_EVENT_ID_PARAM if rules.compat => {
                legacy_last_event_id.get_or_insert(value);
                continue;
            }
            other if is_match_namespace(other) => {
                return Err(RequestError::UnknownMatcher(name));
            }
            _ => continue,
        };
        if matchers.len() == rules.limits.max_matchers {
            return Err(RequestError::TooManyMatchers(rules.limits.max_matchers));
        }
        let matcher = Matcher::new(kind, &value, rules.base, rules.limits)
            .map_err(|source| RequestError::Matcher { param, source })?;
        matchers.push(matcher);
    }
    if matchers.is_empty() {
        return Err(RequestError::NoMatcher);
    }
    let header = headers.get(LAST_EVENT_ID).map(|value| {
        // Browsers send back the bytes they received: decode, never refuse.
        String::from_utf8_lossy(value.as_bytes()).into_owned()
    });
    let last_event_id = match (header, last_event_id.or(legacy_last_event_id)) {
        (Some(id), _) if !id.is_empty() => Some(id),
        (_, Some(id)) if !id.is_empty() => Some(id),
        // Both empty or absent: an empty one still asks where it resumes.
        (header, param) => header.or(param),
    };
    if let Some(id) = &last_event_id
        && id.len() > rules.limits.max_pattern_len
    {
        return Err(RequestError::LastEventIdTooLong(
            rules.limits.max_pattern_len,
        ));
    }
    Ok(Subscription {
        matchers,
        last_event_id,
    })
}

/// `match`, or a name beginning with `match` in any case.
fn is_match_namespace(name: &str) -> bool {
    name.get(..5)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("match"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://hub.example/.well-known/mercure").unwrap()
    }

    fn subscribe_with(
        query: &str,
        body: Option<&str>,
        headers: &HeaderMap,
        compat: bool,
    ) -> Result<Subscription, RequestError> {
        let base = base();
        let limits = Limits::default();
        let rules = Rules {
            base: &base,
            limits: &limits,
            compat,
        };
        parse(Some(query), body.map(str::as_bytes), headers, rules)
    }

    fn subscribe(query: &str) -> Result<Subscription, RequestError> {
        subscribe_with(query, None, &HeaderMap::new(), false)
    }

    #[test]
    fn matcher_parameters_are_case_sensitive_and_the_namespace_reserved() {
        let s = subscribe(
            "match=a&match_urlpattern=%2Fbooks%2F%3Aid&match_exact=b&last_event_id=x&other=1",
        )
        .unwrap();
        let kinds: Vec<_> = s.matchers.iter().map(Matcher::kind).collect();
        assert_eq!(
            kinds,
            [MatchType::Exact, MatchType::UrlPattern, MatchType::Exact]
        );
        assert_eq!(s.last_event_id.as_deref(), Some("x"));
        for bad in [
            "matchURLPattern=a",
            "matchExact=a",
            "MATCH=a",
            "Match_urlpattern=a",
            "match_uritemplate=a",
            "matches=a",
            "match_=a",
        ] {
            assert!(
                matches!(subscribe(bad), Err(RequestError::UnknownMatcher(_))),
                "{bad}"
            );
        }
        assert_eq!(subscribe("other=1").unwrap_err(), RequestError::NoMatcher);
        assert!(matches!(
            subscribe("match=a%01"),
            Err(RequestError::Matcher { .. })
        ));
        assert!(matches!(
            subscribe("match_urlpattern=https%3A%2F%2Fx%2F("),
            Err(RequestError::Matcher { .. })
        ));
        assert!(subscribe("match=").is_ok(), "an empty value is a value");
        let many = vec!["match=a"; 101].join("&");
        assert_eq!(
            subscribe(&many).unwrap_err(),
            RequestError::TooManyMatchers(100)
        );
    }

    #[test]
    fn the_topic_parameter_needs_compatibility_mode() {
        assert!(matches!(
            subscribe("topic=a"),
            Err(RequestError::UnknownMatcher(_))
        ));
        let s = subscribe_with("topic=a%2F%7Bid%7D", None, &HeaderMap::new(), true).unwrap();
        assert_eq!(s.matchers[0].kind(), MatchType::LegacyTopic);
    }

    #[test]
    fn the_0x_resume_parameter_needs_compatibility_mode_and_yields_to_the_current_one() {
        let headers = HeaderMap::new();
        let modern = subscribe_with("match=a&lastEventID=old", None, &headers, false).unwrap();
        assert_eq!(modern.last_event_id, None);
        let compat = subscribe_with("match=a&lastEventID=old", None, &headers, true).unwrap();
        assert_eq!(compat.last_event_id.as_deref(), Some("old"));
        let both = subscribe_with(
            "match=a&lastEventID=old&last_event_id=new",
            None,
            &headers,
            true,
        )
        .unwrap();
        assert_eq!(both.last_event_id.as_deref(), Some("new"));
    }

    #[test]
    fn query_and_body_are_united_and_the_query_cursor_wins() {
        let s = subscribe_with(
            "match=a&last_event_id=from-query",
            Some("match=b&match_urlpattern=%2Fc%2F%3Ax&last_event_id=from-body"),
            &HeaderMap::new(),
            false,
        )
        .unwrap();
        assert_eq!(s.matchers.len(), 3);
        assert_eq!(s.last_event_id.as_deref(), Some("from-query"));
        let body_only = subscribe_with(
            "",
            Some("match=b&last_event_id=b"),
            &HeaderMap::new(),
            false,
        )
        .unwrap();
        assert_eq!(body_only.last_event_id.as_deref(), Some("b"));
        assert!(matches!(
            subscribe_with("match=a", Some("Match=b"), &HeaderMap::new(), false),
            Err(RequestError::UnknownMatcher(_))
        ));
    }

    #[test]
    fn the_header_wins_and_an_empty_cursor_is_still_a_cursor() {
        let mut headers = HeaderMap::new();
        headers.insert("last-event-id", "from-header".parse().unwrap());
        let s = subscribe_with("match=a&last_event_id=q", None, &headers, false).unwrap();
        assert_eq!(s.last_event_id.as_deref(), Some("from-header"));
        let mut empty = HeaderMap::new();
        empty.insert("last-event-id", "".parse().unwrap());
        let s = subscribe_with("match=a&last_event_id=q", None, &empty, false).unwrap();
        assert_eq!(s.last_event_id.as_deref(), Some("q"));
        let s = subscribe_with("match=a", None, &empty, false).unwrap();
        assert_eq!(s.last_event_id.as_deref(), Some(""));
        assert_eq!(
            subscribe("match=a&last_event_id=")
                .unwrap()
                .last_event_id
                .as_deref(),
            Some("")
        );
        assert_eq!(subscribe("match=a").unwrap().last_event_id, None);
    }
}
