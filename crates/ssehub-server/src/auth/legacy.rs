//! The `mercure` claim of Mercure 0.x, honoured in compatibility mode for
//! tokens without authorization details:
//! `{"publish": [selector…], "subscribe": [selector…], "payload": any}`.
//!
//! A selector is a string — `*`, an exact topic, or a URI Template such as
//! `https://example.com/books/{id}` — or an object `{"match", "match_type"?,
//! "payload"?}` of the current matcher types. The claim becomes the same
//! details a current token would carry: one for `publish`, and one per
//! `subscribe` selector so that each keeps its own payload; the claim's
//! `payload` is the fallback of subscriptions no selector's payload covers.

use serde_json::Value;

use super::config::AuthConfig;
use super::details::{Detail, DetailError, compile, topic_matcher};
use crate::matcher::MatchType;

/// The most selectors per list, as 0.x hubs allowed.
const MAX_SELECTORS: usize = 1000;

/// The claim's details and its token-wide payload.
pub(super) fn parse(
    claim: &Value,
    config: &AuthConfig,
) -> Result<(Vec<Detail>, Option<Value>), DetailError> {
    let claim = match claim {
        Value::Null => return Ok((Vec::new(), None)),
        Value::Object(claim) => claim,
        _ => return Err(DetailError::LegacyShape("the mercure claim")),
    };
    let mut details = Vec::new();
    let publish = selectors(claim.get("publish"), "mercure.publish")?;
    if !publish.is_empty() {
        let topics = publish
            .iter()
            .map(|selector| selector_matcher(selector, config).map(|(m, _)| m))
            .collect::<Result<_, _>>()?;
        details.push(Detail {
            publish: true,
            subscribe: false,
            topics,
            payload: None,
        });
    }
    for selector in selectors(claim.get("subscribe"), "mercure.subscribe")? {
        let (matcher, payload) = selector_matcher(selector, config)?;
        details.push(Detail {
            publish: false,
            subscribe: true,
            topics: vec![matcher],
            payload,
        });
    }
    let payload = claim.get("payload").filter(|p| !p.is_null()).cloned();
    Ok((details, payload))
}

fn selectors<'a>(value: Option<&'a Value>, name: &'static str) -> Result<&'a [Value], DetailError> {
    match value {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(list)) if list.len() <= MAX_SELECTORS => Ok(list),
        Some(_) => Err(DetailError::LegacyShape(name)),
    }
}

/// A selector's matcher, and the payload an object selector carries.
fn selector_matcher(
    selector: &Value,
    config: &AuthConfig,
) -> Result<(crate::matcher::Matcher, Option<Value>), DetailError> {
    match selector {
        Value::String(pattern) => compile(MatchType::LegacyTopic, pattern, config)
            .map(|m| (m, None))
            .map_err(|err| DetailError::Matcher(0, err)),
        Value::Object(object) => {
            let payload = object.get("payload").filter(|p| !p.is_null()).cloned();
            topic_matcher(0, selector, config).map(|m| (m, payload))
        }
        _ => Err(DetailError::LegacyShape("a mercure claim selector")),
    }
}
