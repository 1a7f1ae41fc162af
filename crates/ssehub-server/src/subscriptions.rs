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
//!
//! Each node keeps its own subscriptions in memory; with several nodes on
//! one Redis they are also shared there ([`crate::presence`]), so that
//! every node's API lists every node's subscriptions.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Grants;
use crate::matcher::{MatchType, Matcher};
use crate::presence::{Fetch, PresenceError, RedisPresence};
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
                let id = id_of(m.kind(), m.pattern(), &subscriber);
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

/// The id (topic, API path) of `subscriber`'s subscription to `pattern`;
/// with an empty `subscriber`, the prefix of every id of that matcher.
fn id_of(kind: MatchType, pattern: &str, subscriber: &str) -> String {
    match kind.name() {
        Some(name) => format!(
            "{SUBSCRIPTIONS_PATH}/{name}/{}/{}",
            encode(pattern),
            encode(subscriber)
        ),
        None => format!(
            "{SUBSCRIPTIONS_PATH}/{}/{}",
            encode(pattern),
            encode(subscriber)
        ),
    }
}

/// The key of a document another node wrote, when it is a well-formed
/// subscription document (its id agrees with its fields).
fn key_of(document: &Value) -> Option<Key> {
    let field = |name: &str| document.get(name).and_then(Value::as_str);
    if field("type")? != "subscription" {
        return None;
    }
    let subscriber = field("subscriber")?;
    let (kind, pattern) = match document.get("match_type") {
        Some(name) => (MatchType::from_name(name.as_str()?)?, field("match")?),
        None => (MatchType::LegacyTopic, field("topic")?),
    };
    (field("id")? == id_of(kind, pattern, subscriber))
        .then(|| (kind, pattern.into(), subscriber.into()))
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

    /// Whether the subscription of `key` is one this query asks for.
    fn selects(&self, key: &Key) -> bool {
        match self {
            Self::All => true,
            Self::Matcher(kind, matcher) => key.0 == *kind && *key.1 == **matcher,
            Self::One(kind, matcher, subscriber) => {
                key.0 == *kind && *key.1 == **matcher && *key.2 == **subscriber
            }
        }
    }
}

/// The active subscriptions: this node's in memory and, with
/// [`redis`](Self::redis), every other node's through the shared presence
/// registry (see [`crate::presence`]).
#[derive(Debug, Default)]
pub(crate) struct ActiveSubscriptions {
    active: Mutex<BTreeMap<Key, Document>>,
    presence: Option<RedisPresence>,
}

impl ActiveSubscriptions {
    /// This node's subscriptions only, in memory (also the `Default`).
    pub fn memory() -> Self {
        Self::default()
    }

    /// This node's subscriptions in memory, shared with the other nodes
    /// through the Redis of `client` under the key prefix `prefix`, as
    /// node `node` (unique per running process), whose entries expire
    /// `ttl` after its last heartbeat (heartbeats come every `ttl`/3).
    /// Must be called within a Tokio runtime; Redis is contacted in the
    /// background, and the node shows up once it answers.
    ///
    /// # Errors
    /// [`PresenceError::Config`] for an empty prefix or node name, a TTL
    /// under [`MIN_TTL`](crate::presence::MIN_TTL), or no runtime.
    pub fn redis(
        client: redis::Client,
        prefix: &str,
        node: &str,
        ttl: Duration,
    ) -> Result<Self, PresenceError> {
        Ok(Self {
            active: Mutex::default(),
            presence: Some(RedisPresence::new(client, prefix, node, ttl)?),
        })
    }

    /// Registers `subscriptions`. Never blocks: the shared registry is
    /// written in the background.
    pub fn add(&self, subscriptions: &[Subscription]) {
        let shared: Vec<(String, String)> = match &self.presence {
            Some(_) => subscriptions
                .iter()
                .filter_map(|s| {
                    let json = serde_json::to_string(&s.document).ok()?;
                    Some((s.document.id.clone(), json))
                })
                .collect(),
            None => Vec::new(),
        };
        let mut active = lock(&self.active);
        for subscription in subscriptions {
            active.insert(subscription.key.clone(), subscription.document.clone());
        }
        // Queued under the lock, so the shared registry sees the changes
        // in the order they were made here.
        if let Some(presence) = &self.presence {
            presence.set(shared);
        }
    }

    /// Unregisters `subscriptions`. Never blocks.
    pub fn remove(&self, subscriptions: &[Subscription]) {
        let mut active = lock(&self.active);
        for subscription in subscriptions {
            active.remove(&subscription.key);
        }
        if let Some(presence) = &self.presence {
            presence.delete(
                subscriptions
                    .iter()
                    .map(|s| s.document.id.clone())
                    .collect(),
            );
        }
    }

    /// The API document for `query`: a collection (`id` is the request's
    /// `path`), one subscription, or `None` when that one does not exist.
    /// Every node's subscriptions, ordered by matcher then subscriber, so
    /// every node answers the same document.
    ///
    /// # Errors
    /// With a shared registry, [`PresenceError::Unavailable`] (or
    /// `Engine`) when Redis cannot be read: a partial list would pass for
    /// a complete one.
    pub async fn document(
        &self,
        query: &Query,
        path: &str,
    ) -> Result<Option<Value>, PresenceError> {
        let remote = match &self.presence {
            Some(presence) => {
                let id;
                let fetch = match query {
                    Query::All => Fetch::All,
                    Query::Matcher(kind, matcher) => {
                        id = id_of(*kind, matcher, "");
                        Fetch::Prefix(&id)
                    }
                    Query::One(kind, matcher, subscriber) => {
                        id = id_of(*kind, matcher, subscriber);
                        Fetch::One(&id)
                    }
                };
                presence.others(fetch).await?
            }
            None => Vec::new(),
        };
        let mut found = BTreeMap::new();
        for bytes in remote {
            let entry = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|document| Some((key_of(&document)?, document)));
            match entry {
                Some((key, document)) if query.selects(&key) => {
                    found.insert(key, document);
                }
                Some(_) => {}
                None => tracing::debug!("skipped a malformed subscription document in Redis"),
            }
        }
        {
            // This node's own entries, from memory (they win over a stale
            // copy of them).
            let active = lock(&self.active);
            let mut local = |key: &Key, document: &Document| {
                if let Ok(document) = serde_json::to_value(document) {
                    found.insert(key.clone(), document);
                }
            };
            match query {
                Query::All => active.iter().for_each(|(k, d)| local(k, d)),
                Query::Matcher(kind, matcher) => {
                    let matcher: Arc<str> = matcher.as_str().into();
                    let from = (*kind, matcher.clone(), Arc::<str>::from(""));
                    active
                        .range((Bound::Included(from), Bound::Unbounded))
                        .take_while(|((k, m, _), _)| k == kind && *m == matcher)
                        .for_each(|(k, d)| local(k, d));
                }
                Query::One(kind, matcher, subscriber) => {
                    let key = (*kind, matcher.as_str().into(), subscriber.as_str().into());
                    if let Some(document) = active.get(&key) {
                        local(&key, document);
                    }
                }
            }
        }
        Ok(match query {
            Query::One(..) => found.into_values().next(),
            _ => Some(serde_json::json!({
                "id": path,
                "type": "subscriptions",
                "subscriptions": found.into_values().collect::<Vec<_>>(),
            })),
        })
    }

    /// Leaves the shared registry cleanly: this node's entries are deleted
    /// from Redis (later changes stay local). Call it once the node's
    /// connections are closed. A no-op in memory.
    ///
    /// # Errors
    /// [`PresenceError::Unavailable`] (or `Engine`) when Redis could not
    /// delete them; they then expire after the TTL.
    pub async fn shutdown(&self) -> Result<(), PresenceError> {
        match &self.presence {
            Some(presence) => presence.shutdown().await,
            None => Ok(()),
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

    #[tokio::test]
    async fn the_api_lists_by_matcher_and_finds_one() {
        let registry = ActiveSubscriptions::memory();
        let a = Subscription::for_matchers(&[matcher(MatchType::Exact, "a")], "s1", None);
        let a2 = Subscription::for_matchers(&[matcher(MatchType::Exact, "a")], "s2", None);
        let b = Subscription::for_matchers(&[matcher(MatchType::UrlPattern, "/b/:x")], "s2", None);
        for s in [&a, &a2, &b] {
            registry.add(s);
        }
        let all = registry
            .document(&Query::All, SUBSCRIPTIONS_PATH)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(all["subscriptions"].as_array().unwrap().len(), 3);
        assert_eq!(all["type"], "subscriptions");
        let only_a = registry
            .document(&Query::Matcher(MatchType::Exact, "a".into()), "/x")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(only_a["subscriptions"].as_array().unwrap().len(), 2);
        assert_eq!(only_a["id"], "/x");
        let one = registry
            .document(
                &Query::One(MatchType::UrlPattern, "/b/:x".into(), "s2".into()),
                "/y",
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one["subscriber"], "s2");
        assert!(
            registry
                .document(
                    &Query::One(MatchType::Exact, "a".into(), "nobody".into()),
                    "/z"
                )
                .await
                .unwrap()
                .is_none()
        );
        registry.remove(&a);
        let only_a = registry
            .document(&Query::Matcher(MatchType::Exact, "a".into()), "/x")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(only_a["subscriptions"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn documents_read_back_give_their_keys_unless_forged() {
        let subscriptions = Subscription::for_matchers(
            &[
                matcher(MatchType::Exact, "a/b c"),
                matcher(MatchType::UrlPattern, "/b/:x"),
                matcher(MatchType::LegacyTopic, "https://example.com/{id}"),
            ],
            "urn:uuid:1",
            None,
        );
        assert_eq!(subscriptions.len(), 3);
        for subscription in &subscriptions {
            let document: Value = serde_json::from_str(&subscription.event(true)).unwrap();
            assert_eq!(key_of(&document), Some(subscription.key.clone()));
            let query = Query::One(
                subscription.key.0,
                subscription.key.1.to_string(),
                subscription.key.2.to_string(),
            );
            assert!(query.selects(&subscription.key));
            let mut forged = document.clone();
            forged["subscriber"] = "urn:uuid:2".into();
            assert_eq!(key_of(&forged), None, "the id names another subscriber");
            assert!(
                !query.selects(
                    &key_of(&document)
                        .map(|(k, m, _)| (k, m, "x".into()))
                        .unwrap()
                )
            );
        }
        let mut unknown: Value = serde_json::from_str(&subscriptions[0].event(true)).unwrap();
        unknown["match_type"] = "regex".into();
        assert_eq!(key_of(&unknown), None);
        assert_eq!(key_of(&serde_json::json!({"type": "subscription"})), None);
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
