//! Fuzzes the hub's subscription request: the query string, the form body
//! of a `QUERY` request and the `Last-Event-ID` header, then the resume ids
//! the hub and the library's broker recognise.
//!
//! Invariants:
//!
//! * no panic, and a refusal is always `400`;
//! * an accepted subscription has between one matcher and the limit, each
//!   of which selects the topic it was written as (exact and 0.x
//!   selectors) or everything (`*`);
//! * its resume point is the one the documented precedence gives, computed
//!   here independently (header, else `last_event_id` of the query then
//!   the body, else in compatibility mode `lastEventID`; an empty value
//!   yields to a non-empty one), and within the length limit;
//! * the library's `ssehub::last_event_id` reads the same header value;
//! * every resume id parser accepts only the canonical spelling of what it
//!   returns: the hub's `#<journal id>`, a `JournalId`, a broker's
//!   `<epoch>-<position>` — parse then format gives back the input.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use ssehub::journal::JournalId;
use ssehub_server::fuzzing::{generated_id, parse_generated_id, parse_subscription};
use ssehub_server::matcher::MatchType;
use ssehub_server::topic::Limits;
use url::Url;

/// The input, as text a seed can be written in: a line of flags (`c`
/// compatibility mode, `s` small limits, `h` a header, `q` a query, `b` a
/// body), the `Last-Event-ID` header's line, the query's line, then the
/// body (the rest).
#[derive(Debug)]
struct Input<'a> {
    query: Option<&'a str>,
    body: Option<&'a [u8]>,
    last_event_id: Option<&'a [u8]>,
    compat: bool,
    small_limits: bool,
}

impl<'a> Input<'a> {
    fn read(bytes: &'a [u8]) -> Option<Self> {
        let mut fields = bytes.splitn(4, |&b| b == b'\n');
        let flags = fields.next()?;
        let header = fields.next().unwrap_or_default();
        let query = std::str::from_utf8(fields.next().unwrap_or_default()).ok()?;
        let body = fields.next().unwrap_or_default();
        let has = |flag: u8| flags.contains(&flag);
        Some(Self {
            query: has(b'q').then_some(query),
            body: has(b'b').then_some(body),
            last_event_id: has(b'h').then_some(header),
            compat: has(b'c'),
            small_limits: has(b's'),
        })
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Some(input) = Input::read(bytes) else {
        return;
    };
    let base = Url::parse("https://hub.example/.well-known/mercure").unwrap();
    let limits = if input.small_limits {
        Limits {
            max_pattern_len: 16,
            max_matchers: 3,
            max_topics: 3,
        }
    } else {
        Limits::default()
    };
    let mut headers = HeaderMap::new();
    let header = input
        .last_event_id
        .and_then(|raw| HeaderValue::from_bytes(raw).ok());
    if let Some(value) = &header {
        headers.insert("last-event-id", value.clone());
    }

    // Whatever the hub makes of it, the library's reader agrees on a header.
    if let Some(value) = &header
        && !value.is_empty()
    {
        let lossy = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match ssehub::last_event_id(&headers, input.query) {
            Ok(Some(id)) => assert_eq!(id, lossy),
            Ok(None) => panic!("a non-empty header is a resume point"),
            Err(_) => assert!(lossy.len() > ssehub::MAX_LAST_EVENT_ID_LEN),
        }
    }

    let subscription = match parse_subscription(
        input.query,
        input.body,
        &headers,
        &base,
        &limits,
        input.compat,
    ) {
        Ok(subscription) => subscription,
        Err(refusal) => {
            assert_eq!(refusal.status, 400, "{refusal:?}");
            return;
        }
    };
    assert!(!subscription.matchers.is_empty());
    assert!(subscription.matchers.len() <= limits.max_matchers);
    for matcher in &subscription.matchers {
        if matcher.is_wildcard() {
            assert!(matcher.matches("urn:anything", &base));
        } else if matcher.kind() != MatchType::UrlPattern {
            assert!(
                matcher.matches(matcher.pattern(), &base),
                "{matcher:?} does not select its own topic"
            );
        }
    }

    let expected = expected_last_event_id(&input, header.as_ref());
    assert_eq!(subscription.last_event_id, expected);
    if let Some(id) = &subscription.last_event_id {
        assert!(id.len() <= limits.max_pattern_len);
        check_resume_ids(id);
    }
    if let Some(query) = input.query {
        for (_, value) in form_urlencoded::parse(query.as_bytes()) {
            check_resume_ids(&value);
        }
    }
});

/// The documented precedence, from an independent form decoder.
fn expected_last_event_id(input: &Input<'_>, header: Option<&HeaderValue>) -> Option<String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in [input.query.map(str::as_bytes), input.body]
        .into_iter()
        .flatten()
    {
        pairs.extend(form_urlencoded::parse(part).map(|(k, v)| (k.into_owned(), v.into_owned())));
    }
    let first = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let header = header.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let param =
        first("last_event_id").or_else(|| input.compat.then(|| first("lastEventID")).flatten());
    match (header, param) {
        (Some(h), _) if !h.is_empty() => Some(h),
        (_, Some(p)) if !p.is_empty() => Some(p),
        (h, p) => h.or(p),
    }
}

/// Each resume id parser accepts only what its formatter writes.
fn check_resume_ids(id: &str) {
    if let Some(position) = parse_generated_id(id) {
        assert_eq!(generated_id(position), id, "the hub's id parser");
    }
    if let Ok(position) = id.parse::<JournalId>() {
        assert_eq!(position.to_string(), id, "JournalId's parser");
    }
    // A broker recognises its own epoch's ids; take the epoch the id names
    // (leniently, so that a lenient parser gets the chance to accept it).
    let epoch = id
        .get(..8)
        .and_then(|e| u32::from_str_radix(e, 16).ok())
        .unwrap_or(0);
    if let Some(position) = ssehub::fuzzing::parse_broker_id(epoch, id) {
        assert_eq!(
            ssehub::fuzzing::format_broker_id(epoch, position),
            id,
            "the broker's id parser"
        );
    }
}
