//! What the hub's integration tests share: access tokens minted as the
//! reference hub's `mercure token` mints them, and a subscriber's event
//! stream read with the library's parser.

// Each test binary uses its own share of these.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use ssehub::parse::{Item, Message, Parser};
use ssehub_server::auth::DETAIL_TYPE;

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `claims` signed with `key` under `alg`, with `typ: at+jwt` and `kid`
/// in the header.
pub fn sign(claims: &Value, alg: Algorithm, key: &EncodingKey, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".into());
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// `claims` signed with the HS256 `secret`.
pub fn sign_hs256(claims: &Value, secret: &str) -> String {
    sign(
        claims,
        Algorithm::HS256,
        &EncodingKey::from_secret(secret.as_bytes()),
        None,
    )
}

/// One authorization detail of the Mercure type granting `actions` on
/// every topic.
pub fn everything(actions: &[&str]) -> Value {
    json!([{
        "type": DETAIL_TYPE,
        "actions": actions,
        "topics": [{"match": "*", "match_type": "exact"}],
    }])
}

/// `base` with the members of `overrides` put in, replaced or added.
pub fn merged(mut base: Value, overrides: &Value) -> Value {
    for (name, value) in overrides.as_object().unwrap() {
        base[name] = value.clone();
    }
    base
}

/// A subscriber's event stream, parsed.
pub struct Events {
    /// The response's headers.
    pub headers: reqwest::header::HeaderMap,
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: Parser,
    wait: Duration,
}

impl Events {
    /// Reads `response`'s body; [`next`](Self::next) waits at most `wait`
    /// for each message.
    pub fn new(response: reqwest::Response, wait: Duration) -> Self {
        Self {
            headers: response.headers().clone(),
            body: response.bytes_stream().boxed(),
            parser: Parser::new(),
            wait,
        }
    }

    /// The `retry:` the stream set, if any.
    pub fn reconnection_time(&self) -> Option<Duration> {
        self.parser.reconnection_time()
    }

    /// The next message, or `None` when the stream ends or nothing comes
    /// in time.
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            while let Some(item) = self.parser.next_item() {
                if let Item::Message(message) = item {
                    return Some(message);
                }
            }
            match tokio::time::timeout(self.wait, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.parser.feed(&chunk),
                _ => return None,
            }
        }
    }
}
