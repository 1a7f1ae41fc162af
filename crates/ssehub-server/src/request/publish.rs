//! A publication's form body, checked and turned into an update.
//!
//! Fields: `topic` (required; repeated, the first is the canonical topic,
//! the others alternate topics), `data`, `private` (present means private,
//! whatever its value), `id`, `type`, `retry`; other fields are ignored, for
//! future extensions. A field given twice counts by its first value, and an
//! empty `id`, `type` or `retry` counts as absent, as the reference hub
//! reads them.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::{RequestError, pairs};
use crate::topic::{Limits, check_text, validate_topic};
use crate::update::NewUpdate;

/// The event type of the hub's own events (subscription events).
pub(crate) const RESERVED_TYPE: &str = "mercure";

/// Parses a publication body for the hub at `base`.
pub(crate) fn parse(body: &[u8], base: &Url, limits: &Limits) -> Result<NewUpdate, RequestError> {
    let mut update = NewUpdate::default();
    let (mut data, mut id, mut kind, mut retry) = (None, None, None, None);
    for pair in pairs(body) {
        let (name, value) = pair?;
        match &*name {
            "topic" => {
                if update.topics.len() == limits.max_topics {
                    return Err(RequestError::TooManyTopics(limits.max_topics));
                }
                validate_topic(&value, base, limits).map_err(|source| RequestError::Field {
                    field: "topic",
                    source,
                })?;
                update.topics.push(Arc::from(&*value));
            }
            "data" => first(&mut data, value),
            "private" => update.private = true,
            "id" => first(&mut id, value),
            "type" => first(&mut kind, value),
            "retry" => first(&mut retry, value),
            _ => {}
        }
    }
    if update.topics.is_empty() {
        return Err(RequestError::MissingTopic);
    }
    update.data = data.unwrap_or_default();
    update.id = id
        .filter(|id| !id.is_empty())
        .map(|id| check_id(id, limits))
        .transpose()?;
    update.event_type = kind
        .filter(|kind| !kind.is_empty())
        .map(|kind| check_type(kind, limits))
        .transpose()?;
    update.retry = retry
        .filter(|retry| !retry.is_empty())
        .map(|retry| parse_retry(&retry))
        .transpose()?;
    Ok(update)
}

fn first(slot: &mut Option<String>, value: Cow<'_, str>) {
    if slot.is_none() {
        *slot = Some(value.into_owned());
    }
}

fn check_id(id: String, limits: &Limits) -> Result<String, RequestError> {
    check_text(&id, "id", limits).map_err(|source| RequestError::Field {
        field: "id",
        source,
    })?;
    if id.starts_with('#') || id == ssehub::broker::EARLIEST {
        return Err(RequestError::ReservedId);
    }
    Ok(id)
}

fn check_type(kind: String, limits: &Limits) -> Result<String, RequestError> {
    check_text(&kind, "type", limits).map_err(|source| RequestError::Field {
        field: "type",
        source,
    })?;
    if kind == RESERVED_TYPE {
        return Err(RequestError::ReservedType);
    }
    Ok(kind)
}

fn parse_retry(value: &str) -> Result<Duration, RequestError> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RequestError::Retry);
    }
    value
        .parse::<u64>()
        .ok()
        .filter(|&ms| ms <= ssehub::event::MAX_RETRY_MS)
        .map(Duration::from_millis)
        .ok_or(RequestError::Retry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::TopicError;

    fn base() -> Url {
        Url::parse("https://hub.example/.well-known/mercure").unwrap()
    }

    fn publish(body: &str) -> Result<NewUpdate, RequestError> {
        parse(body.as_bytes(), &base(), &Limits::default())
    }

    #[test]
    fn fields_are_decoded_and_topics_kept_in_order() {
        let u = publish(
            "topic=https%3A%2F%2Fex.com%2Fa&topic=urn%3Aalt&data=a+b%0A%0Ac&id=x&type=t&retry=10&private=",
        )
        .unwrap();
        assert_eq!(
            u.topics.iter().map(|t| &**t).collect::<Vec<_>>(),
            ["https://ex.com/a", "urn:alt"]
        );
        assert_eq!(u.data, "a b\n\nc");
        assert_eq!(u.id.as_deref(), Some("x"));
        assert_eq!(u.event_type.as_deref(), Some("t"));
        assert_eq!(u.retry, Some(Duration::from_millis(10)));
        assert!(u.private, "present means private, whatever the value");
        assert!(!publish("topic=a").unwrap().private);
    }

    #[test]
    fn the_first_of_repeated_fields_counts_and_empty_ones_are_absent() {
        let u = publish("topic=a&data=1&data=2&id=&type=&retry=&id=late").unwrap();
        assert_eq!(u.data, "1");
        assert_eq!((u.id, u.event_type, u.retry), (None, None, None));
        assert!(
            publish("topic=a&unknown=1&x").is_ok(),
            "unknown fields are ignored"
        );
    }

    #[test]
    fn input_rules() {
        let refused = |body: &str| publish(body).unwrap_err();
        assert_eq!(refused("data=x"), RequestError::MissingTopic);
        assert_eq!(refused("topic=a&id=%23frag"), RequestError::ReservedId);
        assert_eq!(refused("topic=a&id=earliest"), RequestError::ReservedId);
        assert_eq!(refused("topic=a&type=mercure"), RequestError::ReservedType);
        assert!(publish("topic=a&type=Mercure").is_ok(), "case-sensitive");
        for body in [
            "topic=a&id=a%0Ab",
            "topic=a&id=a%00b",
            "topic=a&type=a%0Db",
            "topic=a%C2%85b",
            "topic=a%E2%80%8Bb",
        ] {
            assert!(
                matches!(
                    refused(body),
                    RequestError::Field {
                        source: TopicError::ForbiddenCharacter(_),
                        ..
                    }
                ),
                "{body}"
            );
        }
        for body in [
            "topic=a&retry=1.5",
            "topic=a&retry=-1",
            "topic=a&retry=99999999999",
        ] {
            assert_eq!(refused(body), RequestError::Retry, "{body}");
        }
        assert_eq!(refused("topic=%FF"), RequestError::NotUtf8);
        assert_eq!(refused("topic=*").status(), http::StatusCode::BAD_REQUEST);
        for reserved in [
            "topic=%2F.well-known%2Fmercure%2Fsubscriptions%2Fx",
            "topic=https%3A%2F%2Fhub.example%2F.well-known%2Fmercure",
            "topic=a&topic=%2F.well-known%2F%256Dercure",
        ] {
            let err = refused(reserved);
            assert!(
                matches!(
                    err,
                    RequestError::Field {
                        source: TopicError::Reserved(_),
                        ..
                    }
                ),
                "{reserved}: {err}"
            );
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn size_limits_are_413() {
        let long = format!("topic={}", "a".repeat(5000));
        assert_eq!(refused_status(&long), http::StatusCode::PAYLOAD_TOO_LARGE);
        let long_id = format!("topic=a&id={}", "a".repeat(5000));
        assert_eq!(
            refused_status(&long_id),
            http::StatusCode::PAYLOAD_TOO_LARGE
        );
        let many = vec!["topic=a"; 1001].join("&");
        assert_eq!(
            publish(&many).unwrap_err(),
            RequestError::TooManyTopics(1000)
        );
    }

    fn refused_status(body: &str) -> http::StatusCode {
        publish(body).unwrap_err().status()
    }
}
