//! What a request asks for: the matchers of a subscription (query string)
//! and the update of a publication (form body), checked against the
//! protocol's input rules before anything reaches the hub.

use std::sync::Arc;
use std::time::Duration;

use percent_encoding::percent_decode;
use url::Url;

use crate::hub::NewUpdate;
use crate::topic::{
    Limits, MatchType, Matcher, TopicError, has_control, is_reserved, validate_topic,
};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestError {
    /// 400: malformed.
    #[error("{0}")]
    Bad(String),
    /// 413: over a size limit.
    #[error("{0}")]
    TooLarge(String),
    /// 403: a topic in the hub's reserved namespace.
    #[error("{0}")]
    Reserved(String),
}

impl From<TopicError> for RequestError {
    fn from(err: TopicError) -> Self {
        match err {
            TopicError::TooLong { .. } => Self::TooLarge(err.to_string()),
            _ => Self::Bad(err.to_string()),
        }
    }
}

/// Splits an `application/x-www-form-urlencoded` string into decoded
/// pairs, refusing what is not UTF-8 (instead of replacing it, as lenient
/// parsers do: a topic must be compared byte for byte).
pub(crate) fn decode_pairs(input: &[u8]) -> Result<Vec<(String, String)>, RequestError> {
    let decode = |raw: &[u8]| {
        let plus: Vec<u8> = raw
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        let bytes: Vec<u8> = percent_decode(&plus).collect();
        String::from_utf8(bytes).map_err(|_| RequestError::Bad("field is not UTF-8".into()))
    };
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut split = pair.splitn(2, |&b| b == b'=');
            let name = decode(split.next().unwrap_or_default())?;
            let value = decode(split.next().unwrap_or_default())?;
            Ok((name, value))
        })
        .collect()
}

/// The matchers of a subscription query: `match`, `matchExact` and
/// `matchURLPattern` parameters (and `topic` in compatibility mode). Other
/// parameters (`lastEventID`, `access_token`) are read by their own parsers.
///
/// Any other parameter in the reserved `match` namespace is refused, so a
/// misspelled matcher type fails loudly.
pub(crate) fn subscribe_matchers(
    query: Option<&str>,
    base: &Url,
    limits: &Limits,
    compat: bool,
) -> Result<Vec<Matcher>, RequestError> {
    let pairs = decode_pairs(query.unwrap_or_default().as_bytes())?;
    let mut matchers = Vec::new();
    for (name, value) in pairs {
        let kind = match name.as_str() {
            "match" | "matchExact" => MatchType::Exact,
            "matchURLPattern" => MatchType::UrlPattern,
            "topic" if compat => MatchType::Exact,
            other if other.len() >= 5 && other[..5].eq_ignore_ascii_case("match") => {
                return Err(RequestError::Bad(format!(
                    "unknown matcher parameter {other:?}"
                )));
            }
            _ => continue,
        };
        if matchers.len() == limits.max_matchers {
            return Err(RequestError::Bad(format!(
                "more than {} topic matchers",
                limits.max_matchers
            )));
        }
        let matcher = Matcher::new(kind, &value, base, limits).map_err(|err| match err {
            // Over-long matchers are a malformed subscription (400), not a
            // body too large.
            TopicError::TooLong { .. } => RequestError::Bad(err.to_string()),
            other => RequestError::from(other),
        })?;
        matchers.push(matcher);
    }
    if matchers.is_empty() {
        return Err(RequestError::Bad(
            "no topic matcher: add a match or matchURLPattern parameter".into(),
        ));
    }
    Ok(matchers)
}

/// Parses a publication body into an update.
pub(crate) fn publish_form(
    body: &[u8],
    base: &Url,
    limits: &Limits,
    compat: bool,
) -> Result<NewUpdate, RequestError> {
    let mut update = NewUpdate::default();
    let mut data = None;
    for (name, value) in decode_pairs(body)? {
        match name.as_str() {
            "topic" => {
                validate_topic(&value, limits)?;
                update.topics.push(Arc::from(value));
            }
            "data" => set_once(&mut data, value, "data")?,
            "private" => update.private = true,
            "id" => {
                check_field(&value, "id", limits)?;
                if value.starts_with('#') {
                    return Err(RequestError::Bad("id must not start with #".into()));
                }
                set_once(&mut update.id, value, "id")?;
            }
            "type" => {
                check_field(&value, "type", limits)?;
                set_once(&mut update.event_type, value, "type")?;
            }
            "retry" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(RequestError::Bad("retry must be ASCII digits".into()));
                }
                let millis: u64 = value
                    .parse()
                    .ok()
                    .filter(|&ms| ms <= ssehub::event::MAX_RETRY_MS)
                    .ok_or_else(|| RequestError::Bad("retry too large".into()))?;
                if update
                    .retry
                    .replace(Duration::from_millis(millis))
                    .is_some()
                {
                    return Err(RequestError::Bad("more than one retry field".into()));
                }
            }
            _ => {}
        }
    }
    match update.topics.len() {
        0 => return Err(RequestError::Bad("missing topic".into())),
        1 => {}
        _ if compat => {}
        _ => {
            return Err(RequestError::Bad(
                "exactly one topic per update (several need --compat)".into(),
            ));
        }
    }
    if let Some(topic) = update.topics.iter().find(|t| is_reserved(t, base)) {
        return Err(RequestError::Reserved(format!(
            "topic {topic:?} is in the hub's reserved namespace"
        )));
    }
    update.data = data.unwrap_or_default();
    Ok(update)
}

fn set_once(slot: &mut Option<String>, value: String, name: &str) -> Result<(), RequestError> {
    match slot.replace(value) {
        Some(_) => Err(RequestError::Bad(format!("more than one {name} field"))),
        None => Ok(()),
    }
}

/// An `id` or `type`: bounded, no control characters (which also keeps CR,
/// LF and NUL from injecting SSE fields).
fn check_field(value: &str, what: &str, limits: &Limits) -> Result<(), RequestError> {
    if value.len() > limits.max_pattern_len {
        return Err(RequestError::TooLarge(format!(
            "{what} longer than {} bytes",
            limits.max_pattern_len
        )));
    }
    if has_control(value) {
        return Err(RequestError::Bad(format!("control character in {what}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://hub.example/.well-known/mercure").unwrap()
    }

    fn publish(body: &str, compat: bool) -> Result<NewUpdate, RequestError> {
        publish_form(body.as_bytes(), &base(), &Limits::default(), compat)
    }

    fn subscribe(query: &str) -> Result<Vec<Matcher>, RequestError> {
        subscribe_matchers(Some(query), &base(), &Limits::default(), false)
    }

    #[test]
    fn publication_fields_are_decoded() {
        let u = publish(
            "topic=https%3A%2F%2Fex.com%2Fa&data=a+b%0A%0Ac&id=x&type=t&retry=10&private=",
            false,
        )
        .unwrap();
        assert_eq!(&*u.topics[0], "https://ex.com/a");
        assert_eq!(u.data, "a b\n\nc");
        assert_eq!(u.id.as_deref(), Some("x"));
        assert_eq!(u.event_type.as_deref(), Some("t"));
        assert_eq!(u.retry, Some(Duration::from_millis(10)));
        assert!(u.private);
        assert!(!publish("topic=a", false).unwrap().private);
    }

    #[test]
    fn publication_input_rules() {
        let bad = |body: &str| matches!(publish(body, false), Err(RequestError::Bad(_)));
        assert!(bad("data=x"), "topic required");
        assert!(bad("topic=a&topic=b"), "one topic unless compat");
        assert!(publish("topic=a&topic=b", true).is_ok());
        assert!(bad("topic=a&id=%23frag"));
        assert!(bad("topic=a&id=a%0Ab"));
        assert!(bad("topic=a&id=a%00b"));
        assert!(bad("topic=a&type=a%0Db"));
        assert!(bad("topic=a&retry=1.5"));
        assert!(bad("topic=a&retry="));
        assert!(bad("topic=a&retry=99999999999"));
        assert!(bad("topic=a%C2%85b"), "C1 control in topic");
        assert!(bad("topic=%FF"), "not UTF-8");
        assert!(bad("topic=a&data=1&data=2"));
        assert!(matches!(
            publish("topic=%2F.well-known%2Fmercure%2Fsubscriptions%2Fx", false),
            Err(RequestError::Reserved(_))
        ));
        assert!(matches!(
            publish(
                "topic=https%3A%2F%2Fhub.example%2F.well-known%2Fmercure",
                false
            ),
            Err(RequestError::Reserved(_))
        ));
        let long = format!("topic={}", "a".repeat(3000));
        assert!(matches!(
            publish(&long, false),
            Err(RequestError::TooLarge(_))
        ));
    }

    #[test]
    fn subscription_parameters() {
        let q = subscribe(
            "match=a&matchURLPattern=%2Fbooks%2F%3Aid&matchExact=b&lastEventID=x&other=1",
        )
        .unwrap();
        assert_eq!(q.len(), 3);
        assert_eq!(q[1].kind(), MatchType::UrlPattern);
        assert!(matches!(subscribe("matchFoo=a"), Err(RequestError::Bad(_))));
        assert!(matches!(
            subscribe("MATCHexact=a"),
            Err(RequestError::Bad(_))
        ));
        assert!(matches!(subscribe("other=1"), Err(RequestError::Bad(_))));
        assert!(matches!(subscribe("match=a%01"), Err(RequestError::Bad(_))));
        assert!(
            matches!(subscribe("topic=a"), Err(RequestError::Bad(_))),
            "topic needs compat"
        );
        assert!(subscribe_matchers(Some("topic=a"), &base(), &Limits::default(), true).is_ok());
        let many = vec!["match=a"; 65].join("&");
        assert!(matches!(subscribe(&many), Err(RequestError::Bad(_))));
    }
}
