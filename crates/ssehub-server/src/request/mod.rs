//! What a request asks for, checked against the protocol's input rules
//! before anything reaches the hub: the matchers and resume point of a
//! subscription ([`subscribe`]), the update of a publication
//! ([`publish`]). Both are `application/x-www-form-urlencoded`, decoded by
//! [`decode_pairs`].

pub(crate) mod publish;
pub(crate) mod subscribe;

use std::borrow::Cow;

use http::StatusCode;

use crate::topic::TopicError;

/// Why a request was refused, before any token is looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestError {
    /// A name or value that is not UTF-8 once decoded.
    #[error("a form field is not UTF-8")]
    NotUtf8,
    /// A publication whose body is not a form.
    #[error("the body must be application/x-www-form-urlencoded")]
    NotForm,
    /// A publication without a `topic` field.
    #[error("missing topic field")]
    MissingTopic,
    /// A publication with more `topic` fields than allowed.
    #[error("more than {0} topic fields")]
    TooManyTopics(usize),
    /// A `topic`, `id` or `type` field the protocol refuses.
    #[error("{field}: {source}")]
    Field {
        /// Which field.
        field: &'static str,
        /// Why.
        source: TopicError,
    },
    /// An `id` starting with `#` (the hub's own ids) or `earliest`.
    #[error("id may not start with # nor be earliest: both are reserved")]
    ReservedId,
    /// The `type` `mercure`, reserved for the hub's subscription events.
    #[error("the type mercure is reserved for the hub's own events")]
    ReservedType,
    /// A `retry` that is not a number of milliseconds the stream can carry.
    #[error("retry must be ASCII digits, at most {}", ssehub::event::MAX_RETRY_MS)]
    Retry,
    /// A parameter in the reserved `match` namespace that names no matcher
    /// type of this hub.
    #[error("{0:?} is not a topic matcher parameter: use match or match_urlpattern")]
    UnknownMatcher(String),
    /// More matchers than allowed in one subscription.
    #[error("more than {0} topic matchers")]
    TooManyMatchers(usize),
    /// A matcher the protocol refuses.
    #[error("{param}: {source}")]
    Matcher {
        /// The parameter it came in.
        param: &'static str,
        /// Why.
        source: TopicError,
    },
    /// A subscription without any matcher.
    #[error("no topic matcher: add a match or match_urlpattern parameter")]
    NoMatcher,
    /// A resume point longer than allowed.
    #[error("Last-Event-ID longer than {0} bytes")]
    LastEventIdTooLong(usize),
}

impl RequestError {
    /// `413 Content Too Large` for what exceeds a size limit of a
    /// publication (body, topic count, field length), `400` otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooManyTopics(_)
            | Self::Field {
                source: TopicError::TooLong { .. },
                ..
            } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Splits an `application/x-www-form-urlencoded` string into decoded
/// pairs, as `URLSearchParams` does (`+` is a space, a stray `%` stays
/// itself, a name without `=` has an empty value) — except that what is not
/// UTF-8 is refused instead of replaced: topics are compared byte for byte.
pub(crate) fn decode_pairs(input: &[u8]) -> Result<Vec<(String, String)>, RequestError> {
    pairs(input)
        .map(|pair| pair.map(|(name, value)| (name.into_owned(), value.into_owned())))
        .collect()
}

/// [`decode_pairs`], one pair at a time, borrowing from `input` what needs
/// no decoding: a publication's field names and usual values cost no
/// allocation.
pub(crate) fn pairs(
    input: &[u8],
) -> impl Iterator<Item = Result<(Cow<'_, str>, Cow<'_, str>), RequestError>> {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut split = pair.splitn(2, |&b| b == b'=');
            let name = decode_field(split.next().unwrap_or_default())?;
            let value = decode_field(split.next().unwrap_or_default())?;
            Ok((name, value))
        })
}

/// One name or value: `+` is a space and `%XX` a byte; a `%` without two
/// hex digits stays itself. One pass copying the runs between those bytes
/// (found with `memchr2`): every publish decodes a percent-encoded topic
/// and data field, where a byte-by-byte iterator cost more than the rest
/// of the form.
fn decode_field(raw: &[u8]) -> Result<Cow<'_, str>, RequestError> {
    let Some(first) = memchr::memchr2(b'%', b'+', raw) else {
        return std::str::from_utf8(raw)
            .map(Cow::Borrowed)
            .map_err(|_| RequestError::NotUtf8);
    };
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    let mut next = Some(first);
    while let Some(at) = next {
        out.extend_from_slice(&rest[..at]);
        let digit = |i: usize| rest.get(at + i).copied().and_then(hex_digit);
        let (byte, used) = match (rest[at], digit(1), digit(2)) {
            (b'+', _, _) => (b' ', 1),
            (_, Some(high), Some(low)) => (high << 4 | low, 3),
            (stray, _, _) => (stray, 1),
        };
        out.push(byte);
        rest = &rest[at + used..];
        next = memchr::memchr2(b'%', b'+', rest);
    }
    out.extend_from_slice(rest);
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| RequestError::NotUtf8)
}

/// The value of one hexadecimal digit, either case.
fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_decode_like_url_search_params_but_refuse_bad_utf8() {
        assert_eq!(
            decode_pairs(b"a=1&b&c=x+y%2Bz&&d=%zz").unwrap(),
            [
                ("a".into(), "1".into()),
                ("b".into(), String::new()),
                ("c".into(), "x y+z".into()),
                ("d".into(), "%zz".into()),
            ]
        );
        assert_eq!(decode_pairs(b"a=%FF"), Err(RequestError::NotUtf8));
        assert_eq!(decode_pairs(b"a=\xFF"), Err(RequestError::NotUtf8));
        assert_eq!(decode_pairs(b"a+%FF=1"), Err(RequestError::NotUtf8));
        // Nothing to decode: borrowed.
        let (name, value) = pairs(b"topic=urn:a").next().unwrap().unwrap();
        assert!(matches!(
            (name, value),
            (Cow::Borrowed("topic"), Cow::Borrowed("urn:a"))
        ));
    }

    proptest::proptest! {
        /// The decoder agrees with the `url` crate's `URLSearchParams`
        /// parser wherever the result is UTF-8, and refuses exactly where
        /// that parser substitutes U+FFFD.
        #[test]
        fn pairs_decode_as_the_url_crate_does(
            bytes in proptest::collection::vec(
                proptest::sample::select(b"ab%+=&2BfFz\xC3\xA9\xFF".to_vec()),
                0..40,
            )
        ) {
            let oracle: Vec<(String, String)> = url::form_urlencoded::parse(&bytes)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            match decode_pairs(&bytes) {
                Ok(ours) => proptest::prop_assert_eq!(ours, oracle),
                Err(err) => {
                    proptest::prop_assert_eq!(err, RequestError::NotUtf8);
                    let replaced = oracle.iter().any(|(n, v)| (n.clone() + v).contains('\u{FFFD}'));
                    proptest::prop_assert!(replaced);
                }
            }
        }
    }

    #[test]
    fn only_size_limits_of_a_publication_are_413() {
        let long = RequestError::Field {
            field: "id",
            source: TopicError::TooLong { what: "id", max: 1 },
        };
        assert_eq!(long.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            RequestError::TooManyTopics(1).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let matcher = RequestError::Matcher {
            param: "match",
            source: TopicError::TooLong {
                what: "matcher",
                max: 1,
            },
        };
        assert_eq!(matcher.status(), StatusCode::BAD_REQUEST);
    }
}
