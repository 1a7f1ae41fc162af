//! Entry points for the fuzz targets of `fuzz/` (feature `fuzzing`): the
//! request parsers a peer reaches that are otherwise private to the hub.
//!
//! Not a stable API, and hidden from the documentation. Each function is a
//! thin wrapper over the code the hub runs on a request, returning plain
//! public values, so that a target exercises exactly that code.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use ssehub::journal::{JournalId, Record};
use url::Url;

use crate::matcher::Matcher;
use crate::request::{self, RequestError, subscribe};
use crate::template::UriTemplate;
use crate::topic::Limits;
use crate::update;
pub use crate::update::RecordError;

/// Why the hub refused a request, as the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The response status.
    pub status: StatusCode,
    /// The response's reason.
    pub reason: String,
}

impl From<RequestError> for Refusal {
    fn from(err: RequestError) -> Self {
        Self {
            status: err.status(),
            reason: err.to_string(),
        }
    }
}

/// An accepted publication form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The `topic` fields, in order.
    pub topics: Vec<String>,
    /// The first `data` field, or empty.
    pub data: String,
    /// The first `id`, when not empty.
    pub id: Option<String>,
    /// The first `type`, when not empty.
    pub event_type: Option<String>,
    /// The first `retry`, when not empty.
    pub retry: Option<Duration>,
    /// Whether a `private` field was there.
    pub private: bool,
}

/// Decodes a form as the hub does (`+` is a space, a stray `%` stays).
///
/// ```
/// let pairs = ssehub_server::fuzzing::decode_form(b"a=1+2&b").unwrap();
/// assert_eq!(pairs, [("a".into(), "1 2".into()), ("b".into(), String::new())]);
/// ```
///
/// # Errors
/// A name or value that is not UTF-8.
pub fn decode_form(input: &[u8]) -> Result<Vec<(String, String)>, Refusal> {
    request::decode_pairs(input).map_err(Refusal::from)
}

/// Parses a publication's form body for the hub at `base`.
///
/// ```
/// use ssehub_server::fuzzing::parse_publication;
/// let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
/// let p = parse_publication(b"topic=a&data=x", &base, &Default::default()).unwrap();
/// assert_eq!((p.topics, p.data), (vec!["a".to_owned()], "x".to_owned()));
/// assert_eq!(parse_publication(b"data=x", &base, &Default::default()).unwrap_err().status, 400);
/// ```
///
/// # Errors
/// The refusal the publisher would get.
pub fn parse_publication(body: &[u8], base: &Url, limits: &Limits) -> Result<Publication, Refusal> {
    let update = request::publish::parse(body, base, limits)?;
    Ok(Publication {
        topics: update.topics.iter().map(|t| t.to_string()).collect(),
        data: update.data,
        id: update.id,
        event_type: update.event_type,
        retry: update.retry,
        private: update.private,
    })
}

/// An update as the hub reads it back from its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its topics.
    pub topics: Vec<String>,
    /// The SSE id subscribers see.
    pub id: String,
    /// Whether the id is the publisher's.
    pub caller_id: bool,
    /// Whether it is private.
    pub private: bool,
    /// The event subscribers receive, `id:` line first.
    pub frame: Bytes,
}

/// Why [`store`] failed: a round trip the hub could not make is a bug the
/// fuzzer reports.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The update could not be written as an event.
    #[error("encoding: {0}")]
    Encode(#[from] ssehub::EventError),
    /// The record written could not be read back.
    #[error("decoding: {0}")]
    Decode(#[from] RecordError),
}

/// Encodes `publication` as the hub's log record at `position`, and
/// decodes it back, as a node delivering it does.
///
/// ```
/// use ssehub::journal::{JournalId, Offset};
/// use ssehub_server::fuzzing::{parse_publication, store};
/// let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
/// let p = parse_publication(b"topic=a&data=x", &base, &Default::default()).unwrap();
/// let stored = store(&p, JournalId { epoch: 1, offset: Offset::Seq(2) }).unwrap();
/// assert_eq!(stored.id, "#00000001-2");
/// assert_eq!(stored.frame, "id: #00000001-2\ndata: x\n\n");
/// ```
///
/// # Errors
/// [`StoreError`]: why the publication could not be encoded or decoded.
pub fn store(publication: &Publication, position: JournalId) -> Result<Stored, StoreError> {
    let new = crate::update::NewUpdate {
        topics: publication
            .topics
            .iter()
            .map(|t| t.as_str().into())
            .collect(),
        data: publication.data.clone(),
        id: publication.id.clone(),
        event_type: publication.event_type.clone(),
        retry: publication.retry,
        private: publication.private,
    };
    let body = update::encode(new, 0)?;
    let stored = update::decode(&Record { id: position, body })?;
    Ok(Stored {
        topics: stored.topics.iter().map(|t| t.to_string()).collect(),
        id: stored.id.to_string(),
        caller_id: stored.caller_id,
        private: stored.private,
        frame: stored.frame,
    })
}

/// An accepted subscription request.
#[derive(Debug)]
pub struct SubscriptionRequest {
    /// Its matchers, in order.
    pub matchers: Vec<Matcher>,
    /// Its resume point.
    pub last_event_id: Option<String>,
}

/// Parses a subscription from its query string, its `QUERY` form body and
/// its headers, for the hub at `base`.
///
/// ```
/// use ssehub_server::fuzzing::parse_subscription;
/// let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
/// let s = parse_subscription(Some("match=a&last_event_id=x"), None, &http::HeaderMap::new(), &base, &Default::default(), false).unwrap();
/// assert_eq!((s.matchers.len(), s.last_event_id.as_deref()), (1, Some("x")));
/// ```
///
/// # Errors
/// The refusal the subscriber would get.
pub fn parse_subscription(
    query: Option<&str>,
    body: Option<&[u8]>,
    headers: &HeaderMap,
    base: &Url,
    limits: &Limits,
    compat: bool,
) -> Result<SubscriptionRequest, Refusal> {
    let rules = subscribe::Rules {
        base,
        limits,
        compat,
    };
    let parsed = subscribe::parse(query, body, headers, rules)?;
    Ok(SubscriptionRequest {
        matchers: parsed.matchers,
        last_event_id: parsed.last_event_id,
    })
}

/// The hub's SSE id for the update at `position`.
///
/// ```
/// use ssehub::journal::{JournalId, Offset};
/// assert_eq!(ssehub_server::fuzzing::generated_id(JournalId { epoch: 1, offset: Offset::Seq(2) }), "#00000001-2");
/// ```
pub fn generated_id(position: JournalId) -> String {
    update::generated_id(position)
}

/// The log position a `Last-Event-ID` names, when it is one of the hub's
/// own ids (where the hub resumes a subscriber).
///
/// ```
/// assert!(ssehub_server::fuzzing::parse_generated_id("#00000001-2").is_some());
/// assert!(ssehub_server::fuzzing::parse_generated_id("00000001-2").is_none());
/// ```
pub fn parse_generated_id(id: &str) -> Option<JournalId> {
    update::parse_generated(id)
}

/// Whether `topic` could expand from the URI Template `template`; `None`
/// when `template` is not a template (a plain string).
///
/// ```
/// assert_eq!(ssehub_server::fuzzing::template_matches("/books/{id}", "/books/7"), Some(true));
/// assert_eq!(ssehub_server::fuzzing::template_matches("/books/1", "/books/1"), None);
/// ```
pub fn template_matches(template: &str, topic: &str) -> Option<bool> {
    UriTemplate::parse(template).map(|t| t.matches(topic))
}
