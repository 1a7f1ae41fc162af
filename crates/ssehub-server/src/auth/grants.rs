//! What a validated token permits.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use url::Url;

use super::config::{AuthConfig, TokenSource};
use super::details::Detail;
use crate::matcher::Matcher;

/// What a validated token grants, and who holds it. Cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use ssehub_server::auth::{self, Algorithm, AuthConfig, Issuer, KeyConfig, Role};
///
/// let secret = "a-secret-of-at-least-32-bytes-!!";
/// let hub = "https://hub.example/.well-known/mercure";
/// let mut config = AuthConfig::new(url::Url::parse(hub).unwrap());
/// config.issuers.push(Issuer::new("https://app.example").subscriber(KeyConfig::new(Algorithm::HS256, secret).unwrap()));
/// let mut claims = auth::token_claims("https://app.example", &[hub], &["subscribe"], Duration::from_secs(60));
/// claims["sub"] = "alice".into();
/// claims["authorization_details"][0]["topics"] = serde_json::json!([
///     {"match": "/books/:id", "match_type": "urlpattern"},
/// ]);
/// let token = auth::mint(Algorithm::HS256, secret, &claims).unwrap();
/// let mut headers = http::HeaderMap::new();
/// headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
/// let grants = auth::authenticate(&config, Role::Subscriber, &headers, None, hub).unwrap().unwrap();
/// assert_eq!(grants.subject(), Some("alice"));
/// assert!(grants.can_subscribe("https://hub.example/books/1"));
/// assert!(!grants.can_subscribe("https://example.com/books/1"));
/// ```
#[derive(Clone, Debug)]
pub struct Grants {
    base: Arc<Url>,
    // Shared: the verified-token cache hands out a copy per request.
    subject: Option<Arc<str>>,
    expires_at: Option<SystemTime>,
    source: TokenSource,
    details: Arc<[Detail]>,
    legacy_payload: Option<Arc<Value>>,
    subscribe_matchers: Arc<[Matcher]>,
}

impl Grants {
    pub(super) fn new(
        config: &AuthConfig,
        details: Vec<Detail>,
        legacy_payload: Option<Value>,
        subject: Option<String>,
        expires_at: Option<SystemTime>,
        source: TokenSource,
    ) -> Self {
        let subscribe_matchers = canonical_matchers(&details);
        Self {
            base: Arc::new(config.base.clone()),
            subject: subject.map(Arc::from),
            expires_at,
            source,
            details: details.into(),
            legacy_payload: legacy_payload.map(Arc::new),
            subscribe_matchers,
        }
    }

    /// The token's `sub` claim, when it is a string.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// [`subject`](Self::subject), shared rather than copied.
    pub(crate) fn shared_subject(&self) -> Option<&Arc<str>> {
        self.subject.as_ref()
    }

    /// The `exp` claim: the hub must close a subscriber's connection by
    /// then. `None` only for tokens without `exp`, accepted in
    /// compatibility mode.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// Where the token came from.
    pub fn source(&self) -> TokenSource {
        self.source
    }

    /// Whether a detail grants `publish` with a topic matcher that matches
    /// `topic`.
    pub fn can_publish(&self, topic: &str) -> bool {
        self.details
            .iter()
            .any(|detail| detail.publish && self.any_matches(&detail.topics, topic))
    }

    /// Whether a detail grants `subscribe` with a topic matcher that
    /// matches `topic`: private updates, subscription events and the
    /// subscription API.
    pub fn can_subscribe(&self, topic: &str) -> bool {
        self.details
            .iter()
            .any(|detail| detail.subscribe && self.any_matches(&detail.topics, topic))
    }

    /// The matchers of all `subscribe` details, deduplicated and sorted by
    /// (type, pattern): equal lists mean equal subscribe rights, so the hub
    /// can group subscribers by it. A list holding `*` is just `[*]` (it
    /// covers the rest).
    pub fn subscribe_matchers(&self) -> &[Matcher] {
        &self.subscribe_matchers
    }

    /// The `payload` of a subscription with matcher `subscription`: that of
    /// the first `subscribe` detail one of whose matchers matches the
    /// subscription's pattern taken as a topic (`*` matches every
    /// subscription); failing that — no detail matches, or the one that
    /// does has no payload — the legacy claim's `payload` (compatibility
    /// mode).
    pub fn payload_for(&self, subscription: &Matcher) -> Option<&Value> {
        self.details
            .iter()
            .find(|detail| {
                detail.subscribe && self.any_matches(&detail.topics, subscription.pattern())
            })
            .and_then(|detail| detail.payload.as_ref())
            .or(self.legacy_payload.as_deref())
    }

    fn any_matches(&self, matchers: &[Matcher], topic: &str) -> bool {
        matchers
            .iter()
            .any(|matcher| matcher.matches(topic, &self.base))
    }
}

fn canonical_matchers(details: &[Detail]) -> Arc<[Matcher]> {
    let mut all: Vec<Matcher> = details
        .iter()
        .filter(|detail| detail.subscribe)
        .flat_map(|detail| detail.topics.iter().cloned())
        .collect();
    if let Some(wildcard) = all.iter().find(|matcher| matcher.is_wildcard()) {
        return Arc::from([wildcard.clone()]);
    }
    all.sort_by(|a, b| (a.kind(), a.pattern()).cmp(&(b.kind(), b.pattern())));
    all.dedup();
    all.into()
}
