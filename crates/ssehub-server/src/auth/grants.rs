//! What a validated token permits: its `mercure` authorization details
//! (RFC 9396), parsed all-or-nothing.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use url::Url;

use super::token::Claims;
use super::{AuthConfig, TokenSource, legacy};
use crate::topic::{MatchType, Matcher, WILDCARD};

/// What a validated token grants, and who holds it. Cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use ssehub_server::auth::{self, Algorithm, AuthConfig, KeyConfig, Role};
///
/// let secret = "a-secret-of-at-least-32-bytes-!!";
/// let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
/// let config = AuthConfig {
///     subscriber: Some(KeyConfig::new(Algorithm::HS256, secret).unwrap()),
///     ..AuthConfig::new(base, "urn:hub")
/// };
/// let mut claims = auth::dev_claims("urn:hub", &["subscribe"], Duration::from_secs(60));
/// claims["sub"] = "alice".into();
/// claims["authorization_details"][0]["topics"] = serde_json::json!([
///     {"match": "/books/:id", "matchType": "URLPattern"},
/// ]);
/// let token = auth::mint(Algorithm::HS256, secret, &claims).unwrap();
/// let query = format!("access_token={token}");
/// let grants = auth::authenticate(&config, Role::Subscriber, &http::HeaderMap::new(), Some(&query))
///     .unwrap()
///     .unwrap();
/// assert_eq!(grants.subject(), Some("alice"));
/// assert!(grants.can_subscribe("https://hub.example/books/1"));
/// assert!(!grants.can_subscribe("https://example.com/books/1"));
/// ```
#[derive(Clone, Debug)]
pub struct Grants {
    base: Arc<Url>,
    subject: Option<String>,
    expires_at: Option<SystemTime>,
    source: TokenSource,
    details: Arc<[Detail]>,
    subscribe_matchers: Arc<[Matcher]>,
}

/// One `mercure` authorization detail, or one list of the legacy claim.
#[derive(Debug)]
pub(super) struct Detail {
    pub(super) publish: bool,
    pub(super) subscribe: bool,
    pub(super) topics: Vec<Matcher>,
    pub(super) payload: Option<Value>,
}

impl Grants {
    pub(super) fn new(
        config: &AuthConfig,
        details: Vec<Detail>,
        subject: Option<String>,
        expires_at: Option<SystemTime>,
        source: TokenSource,
    ) -> Self {
        let subscribe_matchers = canonical_matchers(&details);
        Self {
            base: Arc::new(config.base.clone()),
            subject,
            expires_at,
            source,
            details: details.into(),
            subscribe_matchers,
        }
    }

    /// The validated `sub` claim.
    ///
    /// ```
    /// # use ssehub_server::auth::{self, Algorithm, AuthConfig, KeyConfig, Role};
    /// # let config = AuthConfig { subscriber: Some(KeyConfig::new(Algorithm::HS256, "k").unwrap()), ..AuthConfig::new(url::Url::parse("https://h/").unwrap(), "urn:hub") };
    /// # let claims = auth::dev_claims("urn:hub", &["subscribe"], std::time::Duration::from_secs(60));
    /// # let query = format!("access_token={}", auth::mint(Algorithm::HS256, "k", &claims).unwrap());
    /// let grants = auth::authenticate(&config, Role::Subscriber, &http::HeaderMap::new(), Some(&query)).unwrap().unwrap();
    /// assert_eq!(grants.subject(), None); // dev tokens have no `sub`
    /// ```
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The `exp` claim: the hub must close a subscriber's connection by then.
    /// `None` only for legacy tokens accepted in compat mode.
    ///
    /// ```
    /// # use ssehub_server::auth::{self, Algorithm, AuthConfig, KeyConfig, Role};
    /// # let config = AuthConfig { subscriber: Some(KeyConfig::new(Algorithm::HS256, "k").unwrap()), ..AuthConfig::new(url::Url::parse("https://h/").unwrap(), "urn:hub") };
    /// # let claims = auth::dev_claims("urn:hub", &["subscribe"], std::time::Duration::from_secs(60));
    /// # let query = format!("access_token={}", auth::mint(Algorithm::HS256, "k", &claims).unwrap());
    /// let grants = auth::authenticate(&config, Role::Subscriber, &http::HeaderMap::new(), Some(&query)).unwrap().unwrap();
    /// assert!(grants.expires_at().unwrap() > std::time::SystemTime::now());
    /// ```
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// Where the token came from.
    ///
    /// ```
    /// # use ssehub_server::auth::{self, Algorithm, AuthConfig, KeyConfig, Role, TokenSource};
    /// # let config = AuthConfig { subscriber: Some(KeyConfig::new(Algorithm::HS256, "k").unwrap()), ..AuthConfig::new(url::Url::parse("https://h/").unwrap(), "urn:hub") };
    /// # let claims = auth::dev_claims("urn:hub", &["subscribe"], std::time::Duration::from_secs(60));
    /// # let query = format!("access_token={}", auth::mint(Algorithm::HS256, "k", &claims).unwrap());
    /// let grants = auth::authenticate(&config, Role::Subscriber, &http::HeaderMap::new(), Some(&query)).unwrap().unwrap();
    /// assert_eq!(grants.source(), TokenSource::Query);
    /// ```
    pub fn source(&self) -> TokenSource {
        self.source
    }

    /// Whether a `mercure` detail grants `publish` with a topic matcher
    /// that matches `topic`.
    ///
    /// ```
    /// # use ssehub_server::auth::{self, Algorithm, AuthConfig, KeyConfig, Role};
    /// # let config = AuthConfig { publisher: Some(KeyConfig::new(Algorithm::HS256, "k").unwrap()), ..AuthConfig::new(url::Url::parse("https://h/").unwrap(), "urn:hub") };
    /// # let claims = auth::dev_claims("urn:hub", &["publish"], std::time::Duration::from_secs(60));
    /// # let query = format!("access_token={}", auth::mint(Algorithm::HS256, "k", &claims).unwrap());
    /// let grants = auth::authenticate(&config, Role::Publisher, &http::HeaderMap::new(), Some(&query)).unwrap().unwrap();
    /// assert!(grants.can_publish("anything"));
    /// ```
    pub fn can_publish(&self, topic: &str) -> bool {
        self.details
            .iter()
            .any(|detail| detail.publish && self.any_matches(&detail.topics, topic))
    }

    /// Whether a `mercure` detail grants `subscribe` with a topic matcher
    /// that matches `topic`: private updates, subscription events and the
    /// subscription API.
    ///
    /// ```
    /// # use ssehub_server::auth::{self, Algorithm, AuthConfig, KeyConfig, Role};
    /// # let config = AuthConfig { subscriber: Some(KeyConfig::new(Algorithm::HS256, "k").unwrap()), ..AuthConfig::new(url::Url::parse("https://h/").unwrap(), "urn:hub") };
    /// # let claims = auth::dev_claims("urn:hub", &["subscribe"], std::time::Duration::from_secs(60));
    /// # let query = format!("access_token={}", auth::mint(Algorithm::HS256, "k", &claims).unwrap());
    /// let grants = auth::authenticate(&config, Role::Subscriber, &http::HeaderMap::new(), Some(&query)).unwrap().unwrap();
    /// assert!(grants.can_subscribe("/.well-known/mercure/subscriptions"));
    /// ```
    pub fn can_subscribe(&self, topic: &str) -> bool {
        self.details
            .iter()
            .any(|detail| detail.subscribe && self.any_matches(&detail.topics, topic))
    }

    /// The matchers of all `subscribe` details, deduplicated and sorted by
    /// (type, pattern): equal lists mean equal subscribe rights, so the hub
    /// can group subscribers by it. `*` is always spelled as the `Exact`
    /// matcher `*`, and a list holding it is just `[*]` (it covers the rest).
    ///
    /// ```
    /// # use ssehub_server::auth::{self, Algorithm, AuthConfig, KeyConfig, Role};
    /// # let config = AuthConfig { subscriber: Some(KeyConfig::new(Algorithm::HS256, "k").unwrap()), ..AuthConfig::new(url::Url::parse("https://h/").unwrap(), "urn:hub") };
    /// # let claims = auth::dev_claims("urn:hub", &["subscribe"], std::time::Duration::from_secs(60));
    /// # let query = format!("access_token={}", auth::mint(Algorithm::HS256, "k", &claims).unwrap());
    /// let grants = auth::authenticate(&config, Role::Subscriber, &http::HeaderMap::new(), Some(&query)).unwrap().unwrap();
    /// assert!(grants.subscribe_matchers()[0].is_wildcard());
    /// ```
    pub fn subscribe_matchers(&self) -> &[Matcher] {
        &self.subscribe_matchers
    }

    /// The `payload` for a subscription whose matcher is
    /// `subscription_matcher` (the `match…` query value): that of the first
    /// `subscribe` detail one of whose topic matchers matches this string
    /// taken as a topic (`*` matches every subscription). `None` when no
    /// detail matches or the first that matches has no payload.
    ///
    /// ```
    /// # use ssehub_server::auth::{self, Algorithm, AuthConfig, KeyConfig, Role};
    /// # let config = AuthConfig { subscriber: Some(KeyConfig::new(Algorithm::HS256, "k").unwrap()), ..AuthConfig::new(url::Url::parse("https://h/").unwrap(), "urn:hub") };
    /// let mut claims = auth::dev_claims("urn:hub", &["subscribe"], std::time::Duration::from_secs(60));
    /// claims["authorization_details"][0]["payload"] = serde_json::json!({"tenant": "t1"});
    /// # let query = format!("access_token={}", auth::mint(Algorithm::HS256, "k", &claims).unwrap());
    /// let grants = auth::authenticate(&config, Role::Subscriber, &http::HeaderMap::new(), Some(&query)).unwrap().unwrap();
    /// assert_eq!(grants.payload_for("https://example.com/books/:id").unwrap()["tenant"], "t1");
    /// ```
    pub fn payload_for(&self, subscription_matcher: &str) -> Option<&Value> {
        self.details
            .iter()
            .find(|detail| {
                detail.subscribe && self.any_matches(&detail.topics, subscription_matcher)
            })
            .and_then(|detail| detail.payload.as_ref())
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

/// Every `mercure` detail of `authorization_details`, plus, in compat mode,
/// the legacy `mercure` claim. One bad detail refuses the whole token.
pub(super) fn parse_details(claims: &Claims, config: &AuthConfig) -> Result<Vec<Detail>, String> {
    let mut details = match &claims.authorization_details {
        Some(list) => mercure_details(list, config)?,
        None => Vec::new(),
    };
    if let (true, Some(claim)) = (config.compat, &claims.mercure) {
        details.extend(legacy::parse(claim, config)?);
    }
    Ok(details)
}

fn mercure_details(list: &[Value], config: &AuthConfig) -> Result<Vec<Detail>, String> {
    let mut mercure = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        match entry.get("type") {
            Some(Value::String(kind)) if kind == "mercure" => mercure.push(entry),
            // Another RFC 9396 type, for another resource server.
            Some(Value::String(_)) => {}
            _ => {
                return Err(format!(
                    "authorization_details[{i}] is not an object with a type"
                ));
            }
        }
    }
    if mercure.len() > config.max_details {
        return Err(format!("more than {} mercure details", config.max_details));
    }
    mercure
        .into_iter()
        .enumerate()
        .map(|(i, detail)| {
            parse_detail(detail, config).map_err(|err| format!("mercure detail {i}: {err}"))
        })
        .collect()
}

fn parse_detail(detail: &Value, config: &AuthConfig) -> Result<Detail, String> {
    let (publish, subscribe) = actions(detail.get("actions"))?;
    let topics = non_empty_array(detail.get("topics"), "topics")?;
    if topics.len() > config.limits.max_matchers {
        return Err(format!("more than {} topics", config.limits.max_matchers));
    }
    let topics = topics
        .iter()
        .map(|topic| topic_matcher(topic, config))
        .collect::<Result<_, _>>()?;
    let payload = match detail.get("payload") {
        None => None,
        Some(payload @ Value::Object(_)) => Some(payload.clone()),
        Some(_) => return Err("payload is not an object".into()),
    };
    Ok(Detail {
        publish,
        subscribe,
        topics,
        payload,
    })
}

/// `(publish, subscribe)`.
fn actions(value: Option<&Value>) -> Result<(bool, bool), String> {
    let (mut publish, mut subscribe) = (false, false);
    for action in non_empty_array(value, "actions")? {
        match action.as_str() {
            Some("publish") => publish = true,
            Some("subscribe") => subscribe = true,
            _ => return Err(format!("unknown action {action}")),
        }
    }
    Ok((publish, subscribe))
}

fn non_empty_array<'a>(value: Option<&'a Value>, name: &str) -> Result<&'a [Value], String> {
    match value {
        Some(Value::Array(list)) if !list.is_empty() => Ok(list),
        _ => Err(format!("{name} is not a non-empty array")),
    }
}

/// A topic matcher object: `{"match": "…", "matchType": "Exact" | "URLPattern"}`.
fn topic_matcher(value: &Value, config: &AuthConfig) -> Result<Matcher, String> {
    let pattern = value
        .get("match")
        .and_then(Value::as_str)
        .ok_or("a topic matcher has no string match")?;
    let kind = match value.get("matchType") {
        None => MatchType::Exact,
        Some(Value::String(name)) => {
            MatchType::from_name(name).ok_or_else(|| format!("unknown matchType {name:?}"))?
        }
        Some(_) => return Err("matchType is not a string".into()),
    };
    compile(kind, pattern, config)
}

pub(super) fn compile(
    kind: MatchType,
    pattern: &str,
    config: &AuthConfig,
) -> Result<Matcher, String> {
    // `*` matches everything whatever the type: one spelling of it keeps
    // equal rights comparing equal.
    let kind = if pattern == WILDCARD {
        MatchType::Exact
    } else {
        kind
    };
    Matcher::new(kind, pattern, &config.base, &config.limits)
        .map_err(|err| format!("{pattern:?}: {err}"))
}
