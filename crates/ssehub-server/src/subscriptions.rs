//! Active subscriptions: the documents the subscription events carry and
//! the registry the subscription API reads.
//!
//! A connection's subscriber id is the hub's (a random `urn:uuid:`), never
//! the client's: a subscription is one matcher of one connection. Its
//! topic, which is also its API URL, is
//! `/.well-known/mercure/subscriptions/{match_type}/{match}/{subscriber}` —
//! or `/.well-known/mercure/subscriptions/{topic}/{subscriber}` for a 0.x
//! `topic=` selector in compatibility mode — each variable percent-encoded
//! exactly once as a whole (RFC 6570 simple expansion). Its document is
//! plain JSON: `id` (that topic), `type: "subscription"`, `subscriber`,
//! `match_type` and `match` (or `topic`), `active`, and the `payload` the
//! subscriber's token attaches to it.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Grants;
use crate::matcher::{MatchType, Matcher};
use crate::sync::lock;

/// The collection of subscriptions.
pub(crate) const SUBSCRIPTIONS_PATH: &str = "/.well-known/mercure/subscriptions";

/// RFC 6570 simple expansion keeps only the unreserved characters.
const EXPANSION: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A subscription's document, as events and the API show it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Document {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    subscriber: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    matcher: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    match_type: Option<&'static str>,
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Value>,
}

/// What orders the registry: by matcher, then subscriber, so that a
/// matcher's subscriptions are one range.
type Key = (MatchType, Arc<str>, Arc<str>);

/// One subscription of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    key: Key,
    document: Document,
}

impl Subscription {
    /// The subscriptions `matchers` create for `subscriber`, with the
    /// payloads `grants` attach to them; one per distinct matcher.
    pub fn for_matchers(
        matchers: &[Matcher],
        subscriber: &str,
        grants: Option<&Grants>,
    ) -> Vec<Self> {
        let subscriber: Arc<str> = subscriber.into();
        let mut subscriptions: Vec<Self> = matchers
            .iter()
            .map(|m| {
                let id = match m.kind().name() {
                    Some(kind) => format!(
                        "{SUBSCRIPTIONS_PATH}/{kind}/{}/{}",
                        encode(m.pattern()),
                        encode(&subscriber)
                    ),
                    None => format!(
                        "{SUBSCRIPTIONS_PATH}/{}/{}",
                        encode(m.pattern()),
                        encode(&subscriber)
                    ),
                };
                let legacy = m.kind() == MatchType::LegacyTopic;
                let document = Document {
                    id,
                    kind: "subscription",
                    subscriber: subscriber.to_string(),
                    topic: legacy.then(|| m.pattern().to_owned()),
                    matcher: (!legacy).then(|| m.pattern().to_owned()),
                    match_type: m.kind().name(),
                    active: true,
                    payload: grants.and_then(|g| g.payload_for(m)).cloned(),
                };
                Self {
                    key: (m.kind(), m.pattern_arc().clone(), subscriber.clone()),
                    document,
                }
            })
            .collect();
        subscriptions.sort_by(|a, b| a.key.cmp(&b.key));
        subscriptions.dedup_by(|a, b| a.key == b.key);
        subscriptions
    }

    /// Its topic (and API path).
    pub fn topic(&self) -> &str {
        &self.document.id
    }

    /// The JSON of its event: active, or ended.
    pub fn event(&self, active: bool) -> String {
        let mut document = self.document.clone();
        document.active = active;
        serde_json::to_string(&document).unwrap_or_default()
    }
}

fn encode(value: &str) -> String {
    utf8_percent_encode(value, EXPANSION).to_string()
}

/// What a subscription API request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Query {
    /// `/subscriptions`.
    All,
    /// `/subscriptions/{match_type}/{match}` (or `/{topic}` in compat).
    Matcher(MatchType, String),
    /// `/subscriptions/{match_type}/{match}/{subscriber}` (or
    /// `/{topic}/{subscriber}` in compat).
    One(MatchType, String, String),
}

/// Why a subscription API path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    /// A segment that is not valid percent-encoded UTF-8.
    #[error("a path segment is not percent-encoded UTF-8")]
    Encoding,
    /// A `{match_type}` this hub does not implement.
    #[error("unknown match type {0:?}")]
    MatchType(String),
    /// No such API resource.
    #[error("not found")]
    NotFound,
}

impl Query {
    /// Reads an API path (`path` starts with [`SUBSCRIPTIONS_PATH`]),
    /// with the 0.x `/subscriptions/{topic}[/{subscriber}]` routes when
    /// `compat`.
    pub fn parse(path: &str, compat: bool) -> Result<Self, PathError> {
        let rest = path
            .strip_prefix(SUBSCRIPTIONS_PATH)
            .ok_or(PathError::NotFound)?;
        let rest = match rest {
            "" | "/" => return Ok(Self::All),
            rest => rest.strip_prefix('/').ok_or(PathError::NotFound)?,
        };
        let segments = rest
            .split('/')
            .map(|segment| {
                percent_decode_str(segment)
                    .decode_utf8()
                    .map(|s| s.into_owned())
                    .map_err(|_| PathError::Encoding)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let kind = |name: &str| MatchType::from_name(name);
        match &segments[..] {
            [topic] if compat => Ok(Self::Matcher(MatchType::LegacyTopic, topic.clone())),
            [first, matcher] => match kind(first) {
                Some(kind) => Ok(Self::Matcher(kind, matcher.clone())),
                None if compat => Ok(Self::One(
                    MatchType::LegacyTopic,
                    first.clone(),
                    matcher.clone(),
                )),
                None => Err(PathError::MatchType(first.clone())),
            },
            [first, matcher, subscriber] => match kind(first) {
                Some(kind) => Ok(Self::One(kind, matcher.clone(), subscriber.clone())),
                None => Err(PathError::MatchType(first.clone())),
            },
            _ => Err(PathError::NotFound),
        }
    }
}

/// The active subscriptions.
#[derive(Debug, Default)]
pub(crate) struct ActiveSubscriptions {
    active: Mutex<BTreeMap<Key, Document>>,
}

impl ActiveSubscriptions {
    /// Registers `subscriptions`.
    pub fn add(&self, subscriptions: &[Subscription]) {
        let mut active = lock(&self.active);
        for subscription in subscriptions {
            active.insert(subscription.key.clone(), subscription.document.clone());
        }
    }

    /// Unregisters `subscriptions`.
    pub fn remove(&self, subscriptions: &[Subscription]) {
        let mut active = lock(&self.active);
        for subscription in subscriptions {
            active.remove(&subscription.key);
        }
    }

    /// The API document for `query`: a collection (`id` is the request's
    /// `path`), one subscription, or `None` when that one does not exist.
    pub fn document(&self, query: &Query, path: &str) -> Option<Value> {
        let active = lock(&self.active);
        let collection = |subscriptions: Vec<&Document>| {
            serde_json::json!({
                "id": path,
                "type": "subscriptions",
                "subscriptions": subscriptions,
            })
        };
        match query {
            Query::All => Some(collection(active.values().collect())),
            Query::Matcher(kind, matcher) => {
                let matcher: Arc<str> = matcher.as_str().into();
                let from = (*kind, matcher.clone(), Arc::<str>::from(""));
                let documents = active
                    .range((Bound::Included(from), Bound::Unbounded))
                    .take_while(|((k, m, _), _)| k == kind && *m == matcher)
                    .map(|(_, document)| document)
                    .collect();
                Some(collection(documents))
            }
            Query::One(kind, matcher, subscriber) => active
                .get(&(*kind, matcher.as_str().into(), subscriber.as_str().into()))
                .and_then(|document| serde_json::to_value(document).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::Limits;

    fn matcher(kind: MatchType, pattern: &str) -> Matcher {
        let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
        Matcher::new(kind, pattern, &base, &Limits::default()).unwrap()
    }

    #[test]
    fn topics_encode_each_variable_once_as_a_whole() {
        let subscriptions = Subscription::for_matchers(
            &[matcher(
                MatchType::UrlPattern,
                "https://example.com/:selector",
            )],
            "urn:uuid:bb3de268",
            None,
        );
        assert_eq!(
            subscriptions[0].topic(),
            "/.well-known/mercure/subscriptions/urlpattern/https%3A%2F%2Fexample.com%2F%3Aselector/urn%3Auuid%3Abb3de268"
        );
        let percent =
            Subscription::for_matchers(&[matcher(MatchType::Exact, "a%20b c")], "s", None);
        assert!(
            percent[0].topic().contains("/exact/a%2520b%20c/"),
            "{}",
            percent[0].topic()
        );
        let legacy = Subscription::for_matchers(
            &[matcher(MatchType::LegacyTopic, "https://example.com/{id}")],
            "s",
            None,
        );
        assert_eq!(
            legacy[0].topic(),
            "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2F%7Bid%7D/s"
        );
    }

    #[test]
    fn documents_are_plain_json_in_the_current_shape() {
        let subscriptions = Subscription::for_matchers(
            &[
                matcher(MatchType::Exact, "a"),
                matcher(MatchType::Exact, "a"),
                matcher(MatchType::LegacyTopic, "t"),
            ],
            "sub",
            None,
        );
        assert_eq!(
            subscriptions.len(),
            2,
            "identical matchers are one subscription"
        );
        let exact: Value = serde_json::from_str(&subscriptions[0].event(true)).unwrap();
        assert_eq!(
            exact,
            serde_json::json!({
                "id": "/.well-known/mercure/subscriptions/exact/a/sub",
                "type": "subscription",
                "subscriber": "sub",
                "match": "a",
                "match_type": "exact",
                "active": true,
            })
        );
        let legacy: Value = serde_json::from_str(&subscriptions[1].event(false)).unwrap();
        assert_eq!(legacy["topic"], "t");
        assert_eq!(legacy["active"], false);
        assert!(legacy.get("match").is_none() && legacy.get("match_type").is_none());
    }

    #[test]
    fn the_api_lists_by_matcher_and_finds_one() {
        let registry = ActiveSubscriptions::default();
        let a = Subscription::for_matchers(&[matcher(MatchType::Exact, "a")], "s1", None);
        let a2 = Subscription::for_matchers(&[matcher(MatchType::Exact, "a")], "s2", None);
        let b = Subscription::for_matchers(&[matcher(MatchType::UrlPattern, "/b/:x")], "s2", None);
        for s in [&a, &a2, &b] {
            registry.add(s);
        }
        let all = registry.document(&Query::All, SUBSCRIPTIONS_PATH).unwrap();
        assert_eq!(all["subscriptions"].as_array().unwrap().len(), 3);
        assert_eq!(all["type"], "subscriptions");
        let only_a = registry
            .document(&Query::Matcher(MatchType::Exact, "a".into()), "/x")
            .unwrap();
        assert_eq!(only_a["subscriptions"].as_array().unwrap().len(), 2);
        assert_eq!(only_a["id"], "/x");
        let one = registry
            .document(
                &Query::One(MatchType::UrlPattern, "/b/:x".into(), "s2".into()),
                "/y",
            )
            .unwrap();
        assert_eq!(one["subscriber"], "s2");
        assert!(
            registry
                .document(
                    &Query::One(MatchType::Exact, "a".into(), "nobody".into()),
                    "/z"
                )
                .is_none()
        );
        registry.remove(&a);
        let only_a = registry
            .document(&Query::Matcher(MatchType::Exact, "a".into()), "/x")
            .unwrap();
        assert_eq!(only_a["subscriptions"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn api_paths_decode_their_segments_and_know_the_old_routes_in_compat() {
        let p = |path: &str, compat| Query::parse(path, compat);
        assert_eq!(p(SUBSCRIPTIONS_PATH, false), Ok(Query::All));
        assert_eq!(
            p(
                "/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fa%2Fb",
                false
            ),
            Ok(Query::Matcher(MatchType::Exact, "https://a/b".into()))
        );
        assert_eq!(
            p(
                "/.well-known/mercure/subscriptions/urlpattern/%2Fb%2F%3Ax/urn%3Auuid%3A1",
                false
            ),
            Ok(Query::One(
                MatchType::UrlPattern,
                "/b/:x".into(),
                "urn:uuid:1".into()
            ))
        );
        assert_eq!(
            p("/.well-known/mercure/subscriptions/Exact/a", false),
            Err(PathError::MatchType("Exact".into()))
        );
        assert_eq!(
            p("/.well-known/mercure/subscriptions/exact/%FF", false),
            Err(PathError::Encoding)
        );
        assert_eq!(
            p("/.well-known/mercure/subscriptions/t", false),
            Err(PathError::NotFound)
        );
        assert_eq!(
            p("/.well-known/mercure/subscriptions/t", true),
            Ok(Query::Matcher(MatchType::LegacyTopic, "t".into()))
        );
        assert_eq!(
            p("/.well-known/mercure/subscriptions/t/s", true),
            Ok(Query::One(MatchType::LegacyTopic, "t".into(), "s".into()))
        );
        assert_eq!(
            p("/.well-known/mercure/subscriptions/exact/t", true),
            Ok(Query::Matcher(MatchType::Exact, "t".into()))
        );
        assert_eq!(
            p("/.well-known/mercure/subscriptions/a/b/c/d", true),
            Err(PathError::NotFound)
        );
    }
}
