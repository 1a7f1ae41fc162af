//! Mercure authorization details (RFC 9396 `authorization_details` entries
//! of type [`DETAIL_TYPE`](super::DETAIL_TYPE)), parsed all-or-nothing: one
//! bad Mercure detail refuses the whole token, and entries of other types,
//! meant for other resource servers, are skipped.

use serde_json::Value;

use super::config::{AuthConfig, DETAIL_TYPE};
use crate::matcher::{MatchType, Matcher};
use crate::topic::{TopicError, WILDCARD};

/// What one detail grants: `publish` and/or `subscribe` on its topics, and
/// the payload of the subscriptions it authorizes.
#[derive(Debug)]
pub(super) struct Detail {
    pub(super) publish: bool,
    pub(super) subscribe: bool,
    pub(super) topics: Vec<Matcher>,
    pub(super) payload: Option<Value>,
}

/// Why authorization details (or the legacy `mercure` claim) refuse a
/// token.
///
/// ```
/// use ssehub_server::auth::DetailError;
/// assert_eq!(DetailError::TooManyTopics(100).to_string(), "more than 100 topic matchers in all");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetailError {
    /// `authorization_details` is not an array.
    #[error("not an array")]
    NotArray,
    /// An entry that is not an object, or whose `type` is not a string.
    #[error("entry {0} is not an object with a string type")]
    Entry(usize),
    /// More Mercure details than [`Limits::max_matchers`](crate::topic::Limits).
    #[error("more than {0} Mercure details")]
    TooManyDetails(usize),
    /// More topic matchers, summed over the details, than the limit.
    #[error("more than {0} topic matchers in all")]
    TooManyTopics(usize),
    /// `actions` is not a non-empty array of strings.
    #[error("detail {0}: actions is not a non-empty array of strings")]
    Actions(usize),
    /// `topics` is not a non-empty array.
    #[error("detail {0}: topics is not a non-empty array")]
    Topics(usize),
    /// A topic matcher that is not `{"match": string, "match_type"?: string}`.
    #[error("detail {0}: a topic matcher is not an object with a string match")]
    MatcherShape(usize),
    /// A `match_type` this hub does not implement (names are case-sensitive).
    #[error("detail {0}: unknown match_type {1:?}")]
    MatchType(usize, String),
    /// A matcher the protocol refuses (empty, too long, bad characters, not
    /// a URL pattern).
    #[error("detail {0}: {1}")]
    Matcher(usize, TopicError),
    /// The legacy claim or one of its lists has the wrong shape.
    #[error("{0} has the wrong shape")]
    LegacyShape(&'static str),
}

/// The Mercure details of an `authorization_details` claim.
pub(super) fn parse(list: &Value, config: &AuthConfig) -> Result<Vec<Detail>, DetailError> {
    let list = list.as_array().ok_or(DetailError::NotArray)?;
    let mut mercure = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let entry = entry.as_object().ok_or(DetailError::Entry(i))?;
        match entry.get("type") {
            Some(Value::String(kind)) if kind == DETAIL_TYPE => mercure.push(entry),
            // Another type, for another resource server.
            None | Some(Value::String(_)) => {}
            Some(_) => return Err(DetailError::Entry(i)),
        }
    }
    let max = config.limits.max_matchers;
    if mercure.len() > max {
        return Err(DetailError::TooManyDetails(max));
    }
    // Bound the work before any URL pattern is compiled.
    let topics: usize = mercure
        .iter()
        .filter_map(|detail| detail.get("topics").and_then(Value::as_array))
        .map(Vec::len)
        .sum();
    if topics > max {
        return Err(DetailError::TooManyTopics(max));
    }
    mercure
        .into_iter()
        .enumerate()
        .map(|(i, detail)| parse_detail(i, detail, config))
        .collect()
}

fn parse_detail(
    i: usize,
    detail: &serde_json::Map<String, Value>,
    config: &AuthConfig,
) -> Result<Detail, DetailError> {
    let actions = detail
        .get("actions")
        .and_then(Value::as_array)
        .filter(|list| !list.is_empty())
        .ok_or(DetailError::Actions(i))?;
    let (mut publish, mut subscribe) = (false, false);
    for action in actions {
        match action.as_str().ok_or(DetailError::Actions(i))? {
            "publish" => publish = true,
            "subscribe" => subscribe = true,
            // Actions of later specifications grant nothing here, and do
            // not spoil the token.
            _ => {}
        }
    }
    let topics = detail
        .get("topics")
        .and_then(Value::as_array)
        .filter(|list| !list.is_empty())
        .ok_or(DetailError::Topics(i))?
        .iter()
        .map(|topic| topic_matcher(i, topic, config))
        .collect::<Result<_, _>>()?;
    Ok(Detail {
        publish,
        subscribe,
        topics,
        payload: detail.get("payload").filter(|p| !p.is_null()).cloned(),
    })
}

/// `{"match": "…", "match_type": "exact" | "urlpattern"}`; `match_type`
/// defaults to `exact`. Bare strings are refused: a 0.x token must not
/// silently read as exact matchers.
pub(super) fn topic_matcher(
    i: usize,
    value: &Value,
    config: &AuthConfig,
) -> Result<Matcher, DetailError> {
    let object = value.as_object().ok_or(DetailError::MatcherShape(i))?;
    let pattern = object
        .get("match")
        .and_then(Value::as_str)
        .ok_or(DetailError::MatcherShape(i))?;
    let kind = match object.get("match_type") {
        None => MatchType::Exact,
        Some(Value::String(name)) if name.is_empty() => MatchType::Exact,
        Some(Value::String(name)) => {
            MatchType::from_name(name).ok_or_else(|| DetailError::MatchType(i, name.clone()))?
        }
        Some(_) => return Err(DetailError::MatcherShape(i)),
    };
    compile(kind, pattern, config).map_err(|err| DetailError::Matcher(i, err))
}

/// A granted matcher. `*` is spelled as the exact matcher `*` whatever the
/// type, so that equal rights compare equal.
pub(super) fn compile(
    kind: MatchType,
    pattern: &str,
    config: &AuthConfig,
) -> Result<Matcher, TopicError> {
    if pattern.is_empty() {
        return Err(TopicError::Empty("matcher"));
    }
    let kind = if pattern == WILDCARD {
        MatchType::Exact
    } else {
        kind
    };
    Matcher::new(kind, pattern, &config.base, &config.limits)
}
