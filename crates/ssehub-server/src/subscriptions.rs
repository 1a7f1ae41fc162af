//! Active subscriptions: the subscription events published when a
//! subscription starts or ends, and the registry the subscriptions API
//! reads.
//!
//! A subscription is identified by its topic,
//! `/.well-known/mercure/subscriptions/{matchType}/{match}/{subscriber}`,
//! each variable percent-encoded once as a whole (RFC 6570 simple
//! expansion). Two connections of one subscriber with the same matcher
//! share the subscription: it becomes active with the first and inactive
//! with the last, so its identifier stays unique among active ones.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::auth::Grants;
use crate::hub::lock;
use crate::topic::Matcher;

/// The collection of subscriptions.
pub(crate) const SUBSCRIPTIONS_PATH: &str = "/.well-known/mercure/subscriptions";

/// The JSON-LD context of every document.
const CONTEXT: &str = "https://mercure.rocks/";

/// RFC 6570 simple expansion keeps only the unreserved characters.
const EXPANSION: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One subscription of one subscriber.
#[derive(Debug, Clone)]
pub(crate) struct SubscriptionEvent {
    topic: Arc<str>,
    document: Value,
}

impl SubscriptionEvent {
    /// The subscriptions `matchers` create for `subscriber`, with the
    /// payloads `grants` attach to them.
    pub fn for_matchers(
        matchers: &[Matcher],
        subscriber: &str,
        grants: Option<&Grants>,
    ) -> Vec<Self> {
        let mut events: Vec<Self> = matchers
            .iter()
            .map(|m| {
                let topic = format!(
                    "{SUBSCRIPTIONS_PATH}/{}/{}/{}",
                    m.kind().name(),
                    utf8_percent_encode(m.pattern(), EXPANSION),
                    utf8_percent_encode(subscriber, EXPANSION),
                );
                let mut document = json!({
                    "id": topic,
                    "type": "Subscription",
                    "matchType": m.kind().name(),
                    "match": m.pattern(),
                    "subscriber": subscriber,
                    "active": true,
                });
                if let Some(payload) = grants.and_then(|g| g.payload_for(m.pattern())) {
                    document["payload"] = payload.clone();
                }
                Self {
                    topic: topic.into(),
                    document,
                }
            })
            .collect();
        events.sort_by(|a, b| a.topic.cmp(&b.topic));
        events.dedup_by(|a, b| a.topic == b.topic);
        events
    }
}

/// The active subscriptions, by topic.
#[derive(Debug, Default)]
pub(crate) struct ActiveSubscriptions {
    active: Mutex<BTreeMap<Arc<str>, (Value, usize)>>,
}

impl ActiveSubscriptions {
    /// Registers `events`; returns the (topic, document) of those that
    /// became active.
    pub fn add(&self, events: &[SubscriptionEvent]) -> Vec<(Arc<str>, String)> {
        let mut active = lock(&self.active);
        let mut changed = Vec::new();
        for event in events {
            let entry = active
                .entry(event.topic.clone())
                .or_insert_with(|| (event.document.clone(), 0));
            entry.1 += 1;
            if entry.1 == 1 {
                changed.push((event.topic.clone(), with_context(&event.document)));
            }
        }
        changed
    }

    /// Unregisters `events`; returns those that became inactive, with
    /// `active: false`.
    pub fn remove(&self, events: &[SubscriptionEvent]) -> Vec<(Arc<str>, String)> {
        let mut active = lock(&self.active);
        let mut changed = Vec::new();
        for event in events {
            let Some(entry) = active.get_mut(&event.topic) else {
                continue;
            };
            entry.1 -= 1;
            if entry.1 == 0 {
                let (mut document, _) = active.remove(&event.topic).expect("present");
                document["active"] = Value::Bool(false);
                changed.push((event.topic.clone(), with_context(&document)));
            }
        }
        changed
    }

    /// The API document for `path` (the collection, a matcher's
    /// collection, or one subscription), `None` for an unknown single
    /// subscription.
    pub fn document(&self, path: &str, last_event_id: &str) -> Option<Value> {
        let active = lock(&self.active);
        let rest = path.strip_prefix(SUBSCRIPTIONS_PATH).unwrap_or_default();
        let depth = rest.split('/').filter(|s| !s.is_empty()).count();
        if depth >= 3 {
            let (document, _) = active.get(path)?;
            let mut document = document.clone();
            document["@context"] = CONTEXT.into();
            document["lastEventID"] = last_event_id.into();
            return Some(document);
        }
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let subscriptions: Vec<Value> = active
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(topic, _)| topic.starts_with(&prefix))
            .map(|(_, (document, _))| document.clone())
            .collect();
        Some(json!({
            "@context": CONTEXT,
            "id": path,
            "type": "Subscriptions",
            "lastEventID": last_event_id,
            "subscriptions": subscriptions,
        }))
    }
}

fn with_context(document: &Value) -> String {
    let mut document = document.clone();
    document["@context"] = CONTEXT.into();
    document.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::{Limits, MatchType};

    fn matcher(kind: MatchType, pattern: &str) -> Matcher {
        let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
        Matcher::new(kind, pattern, &base, &Limits::default()).unwrap()
    }

    #[test]
    fn topics_encode_each_variable_once_as_a_whole() {
        let events = SubscriptionEvent::for_matchers(
            &[matcher(
                MatchType::UrlPattern,
                "https://example.com/:selector",
            )],
            "urn:uuid:bb3de268",
            None,
        );
        assert_eq!(
            &*events[0].topic,
            "/.well-known/mercure/subscriptions/URLPattern/https%3A%2F%2Fexample.com%2F%3Aselector/urn%3Auuid%3Abb3de268"
        );
        let percent =
            SubscriptionEvent::for_matchers(&[matcher(MatchType::Exact, "a%20b")], "s", None);
        assert!(
            percent[0].topic.contains("/a%2520b/"),
            "{}",
            percent[0].topic
        );
    }

    #[test]
    fn a_subscription_is_active_from_its_first_connection_to_its_last() {
        let registry = ActiveSubscriptions::default();
        let events =
            SubscriptionEvent::for_matchers(&[matcher(MatchType::Exact, "a")], "sub", None);
        assert_eq!(registry.add(&events).len(), 1);
        assert_eq!(registry.add(&events).len(), 0);
        assert_eq!(registry.remove(&events).len(), 0);
        let ended = registry.remove(&events);
        assert_eq!(ended.len(), 1);
        let document: Value = serde_json::from_str(&ended[0].1).unwrap();
        assert_eq!(document["active"], false);
        assert_eq!(document["@context"], CONTEXT);
    }

    #[test]
    fn the_api_lists_by_prefix_and_finds_one() {
        let registry = ActiveSubscriptions::default();
        let a = SubscriptionEvent::for_matchers(&[matcher(MatchType::Exact, "a")], "s1", None);
        let b = SubscriptionEvent::for_matchers(&[matcher(MatchType::Exact, "b")], "s2", None);
        registry.add(&a);
        registry.add(&b);
        let all = registry.document(SUBSCRIPTIONS_PATH, "earliest").unwrap();
        assert_eq!(all["subscriptions"].as_array().unwrap().len(), 2);
        assert_eq!(all["type"], "Subscriptions");
        let only_a = registry
            .document("/.well-known/mercure/subscriptions/Exact/a", "x")
            .unwrap();
        assert_eq!(only_a["subscriptions"].as_array().unwrap().len(), 1);
        let one = registry
            .document("/.well-known/mercure/subscriptions/Exact/b/s2", "x")
            .unwrap();
        assert_eq!(one["subscriber"], "s2");
        assert_eq!(one["lastEventID"], "x");
        assert!(
            registry
                .document("/.well-known/mercure/subscriptions/Exact/b/nobody", "x")
                .is_none()
        );
    }
}
