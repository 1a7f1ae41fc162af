//! Publishing over HTTP, as an application publishes: the requests each
//! server's publish endpoint takes, the publisher token the Mercure hub
//! checks, and a keep-alive HTTP/1.1 connection that sends one request at a
//! time and waits for its answer.
//!
//! Two request shapes cover every server of the benchmark:
//!
//! - [`Style::Plain`]: `POST {path}{topic}` with the payload as the body —
//!   the reference servers' `POST /publish?topic=T`, and nchan's publisher
//!   location.
//! - [`Style::Mercure`]: `POST /.well-known/mercure`, an
//!   `application/x-www-form-urlencoded` body `topic=…&data=…`, and
//!   `Authorization: Bearer` with a token from [`mint_token`].

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::{self, Chunked, Framing};

/// The type of the Mercure authorization detail (RFC 9396) that grants
/// publishing.
pub const MERCURE_DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

/// The hub's path.
pub const MERCURE_PATH: &str = "/.well-known/mercure";

/// How a server takes a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Style {
    /// `POST {path}{topic}`, the payload as the body.
    Plain {
        /// The request target up to the topic, e.g. `/publish?topic=`.
        path: String,
    },
    /// A Mercure publish: form-encoded `topic` and `data`, bearer token.
    Mercure {
        /// The publisher's access token.
        token: String,
    },
}

/// One complete HTTP/1.1 request (head and body) publishing `data` to
/// `topic` on the server at `host`.
#[must_use]
pub fn build_request(style: &Style, host: &str, topic: &str, data: &str) -> Vec<u8> {
    let (target, auth, content_type, body) = match style {
        Style::Plain { path } => (
            format!("{path}{topic}"),
            String::new(),
            "text/plain",
            data.to_owned(),
        ),
        Style::Mercure { token } => (
            MERCURE_PATH.to_owned(),
            format!("Authorization: Bearer {token}\r\n"),
            "application/x-www-form-urlencoded",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("topic", topic)
                .append_pair("data", data)
                .finish(),
        ),
    };
    let mut req = format!(
        "POST {target} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body.as_bytes());
    req
}

/// The claims of a publisher token for the hub: an RFC 9068 access token
/// (`iss`, `aud`, `sub`, `client_id`, `iat`, `exp`, `jti`) whose Mercure
/// authorization detail grants publishing to every topic (`*`).
#[must_use]
pub fn publisher_claims(issuer: &str, audience: &str, ttl: Duration) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    json!({
        "iss": issuer,
        "aud": audience,
        "sub": "bench-publisher",
        "client_id": issuer,
        "iat": now,
        "exp": now + ttl.as_secs().max(1),
        "jti": format!("bench-{now}"),
        "authorization_details": [{
            "type": MERCURE_DETAIL_TYPE,
            "actions": ["publish"],
            "topics": [{"match": "*"}],
        }],
    })
}

/// Signs `claims` with HS256 and `key` (the secret's bytes), header
/// `typ: at+jwt`.
///
/// # Errors
/// When the claims cannot be serialized or signed.
pub fn mint_token(key: &[u8], claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
}

/// The hub's resource identifier for requests to `addr` (the `aud` its
/// tokens must carry, as it derives it from the `Host` header).
#[must_use]
pub fn mercure_audience(addr: SocketAddr) -> String {
    format!("http://{addr}{MERCURE_PATH}")
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server answered, but not with a 2xx.
    #[error("status {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The answer was not HTTP/1.1 the client understands.
    #[error("malformed response")]
    Malformed,
    /// The server closed the connection before answering.
    #[error("closed before the response")]
    Closed,
}

/// A keep-alive connection to a publish endpoint, one request at a time;
/// reconnects when the server closes it (after answering).
#[derive(Debug)]
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Bytes read past the last response (none unless the server
    /// misbehaves; kept rather than lost).
    filled: usize,
    /// Connections opened (1 when the server kept the first alive).
    pub connects: u64,
}

impl Conn {
    /// A connection to `addr`, opened at the first request.
    #[must_use]
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: vec![0; 16 * 1024],
            filled: 0,
            connects: 0,
        }
    }

    /// Sends `request` and reads the whole response.
    ///
    /// # Errors
    /// [`PublishError`]; the connection is dropped after any error.
    pub async fn send(&mut self, request: &[u8]) -> Result<u16, PublishError> {
        let result = self.exchange(request).await;
        if result.is_err() {
            self.stream = None;
            self.filled = 0;
        }
        result
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<u16, PublishError> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.filled = 0;
            self.connects += 1;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(PublishError::Closed);
        };
        stream.write_all(request).await?;
        let end = loop {
            if let Some(end) = wire::head_end(&self.buf[..self.filled]) {
                break end;
            }
            if self.filled == self.buf.len() {
                return Err(PublishError::Malformed);
            }
            let n = stream.read(&mut self.buf[self.filled..]).await?;
            if n == 0 {
                return Err(PublishError::Closed);
            }
            self.filled += n;
        };
        let head = wire::parse_response_head(&self.buf[..end]).ok_or(PublishError::Malformed)?;
        let close = says_close(&self.buf[..end]);
        // The body: read and thrown away, but the start kept for errors.
        let mut body = Vec::new();
        let pos = end;
        let done = match head.framing {
            Framing::Length(n) => {
                let n = usize::try_from(n).map_err(|_| PublishError::Malformed)?;
                let have = (self.filled - pos).min(n);
                body.extend_from_slice(&self.buf[pos..pos + have]);
                let mut remaining = n - have;
                if remaining == 0 {
                    // Whatever follows stays for the next response.
                    self.buf.copy_within(pos + have..self.filled, 0);
                    self.filled -= pos + have;
                } else {
                    self.filled = 0;
                    while remaining > 0 {
                        let k = stream.read(&mut self.buf[..]).await?;
                        if k == 0 {
                            return Err(PublishError::Closed);
                        }
                        let take = k.min(remaining);
                        body.extend_from_slice(&self.buf[..take]);
                        remaining -= take;
                        if take < k {
                            self.buf.copy_within(take..k, 0);
                            self.filled = k - take;
                        }
                    }
                }
                true
            }
            Framing::Chunked => {
                let mut dec = Chunked::default();
                let mut done = dec
                    .feed(&self.buf[pos..self.filled], |b| body.extend_from_slice(b))
                    .map_err(|_| PublishError::Malformed)?;
                self.filled = 0;
                while !done {
                    let k = stream.read(&mut self.buf[..]).await?;
                    if k == 0 {
                        return Err(PublishError::Closed);
                    }
                    done = dec
                        .feed(&self.buf[..k], |b| body.extend_from_slice(b))
                        .map_err(|_| PublishError::Malformed)?;
                }
                true
            }
            Framing::UntilClose => {
                // No length: the body ends with the connection.
                body.extend_from_slice(&self.buf[pos..self.filled]);
                self.filled = 0;
                loop {
                    let k = stream.read(&mut self.buf[..]).await?;
                    if k == 0 {
                        break;
                    }
                    body.extend_from_slice(&self.buf[..k]);
                }
                self.stream = None;
                false
            }
        };
        if done && close {
            self.stream = None;
            self.filled = 0;
        }
        if !(200..300).contains(&head.status) {
            body.truncate(200);
            return Err(PublishError::Status {
                status: head.status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(head.status)
    }
}

/// Whether a response head says `Connection: close`.
fn says_close(head: &[u8]) -> bool {
    String::from_utf8_lossy(head).split("\r\n").any(|line| {
        line.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("connection")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
        })
    })
}

/// nchan's `nchan_stub_status` text (`name: value` lines) as a JSON
/// object of numbers (values with a unit, like `16K`, as strings).
#[must_use]
pub fn parse_nchan_status(text: &str) -> Value {
    let mut out = serde_json::Map::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().replace(' ', "_"), v.trim());
        let value = v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n));
        out.insert(k, value);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn split(req: &[u8]) -> (wire::RequestHead, String, String) {
        let end = wire::head_end(req).unwrap();
        let head = wire::parse_request_head(&req[..end]).unwrap();
        let text = String::from_utf8_lossy(&req[..end]).into_owned();
        let body = String::from_utf8_lossy(&req[end..]).into_owned();
        assert_eq!(head.content_length, body.len());
        (head, text, body)
    }

    #[test]
    fn plain_requests_carry_the_payload_as_the_body() {
        let style = Style::Plain {
            path: "/publish?topic=".into(),
        };
        let req = build_request(&style, "127.0.0.1:7001", "c7", "0000000001 x y");
        let (head, text, body) = split(&req);
        assert_eq!(
            (
                head.method.as_str(),
                head.path.as_str(),
                head.query.as_str()
            ),
            ("POST", "/publish", "topic=c7")
        );
        assert!(text.contains("\r\nHost: 127.0.0.1:7001\r\n"));
        assert!(!text.contains("Authorization"));
        assert_eq!(body, "0000000001 x y");
    }

    #[test]
    fn mercure_requests_are_forms_with_a_bearer_token() {
        let style = Style::Mercure {
            token: "a.b.c".into(),
        };
        let data = "0000000001 00000000000000000042 xx&=+%";
        let req = build_request(&style, "127.0.0.1:7405", "https://e.x/c 1", data);
        let (head, text, body) = split(&req);
        assert_eq!(
            (head.method.as_str(), head.path.as_str()),
            ("POST", MERCURE_PATH)
        );
        assert!(text.contains("\r\nAuthorization: Bearer a.b.c\r\n"));
        assert!(text.contains("\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
        let fields: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            fields,
            [
                ("topic".to_owned(), "https://e.x/c 1".to_owned()),
                ("data".to_owned(), data.to_owned())
            ]
        );
    }

    #[test]
    fn the_hub_accepts_the_minted_token_for_publishing() {
        use ssehub_server::auth::{self, Algorithm, AuthConfig, Issuer, KeyConfig, Role};
        let key = "0123456789abcdef0123456789abcdef";
        let addr: SocketAddr = "127.0.0.1:7405".parse().unwrap();
        let audience = mercure_audience(addr);
        assert_eq!(audience, "http://127.0.0.1:7405/.well-known/mercure");
        let claims = publisher_claims("https://bench.invalid", &audience, Duration::from_secs(60));
        let token = mint_token(key.as_bytes(), &claims).unwrap();

        let mut config = AuthConfig::new(url::Url::parse(&audience).unwrap());
        config.issuers.push(
            Issuer::new("https://bench.invalid")
                .publisher(KeyConfig::new(Algorithm::HS256, key).unwrap()),
        );
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        let grants = auth::authenticate(&config, Role::Publisher, &headers, None, &audience)
            .unwrap()
            .expect("a token was presented");
        assert!(grants.can_publish("c1") && grants.can_publish("all"));
        // Another key, another audience: refused.
        let wrong = mint_token(b"another-key-of-32-bytes-at-least!!", &claims).unwrap();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {wrong}").parse().unwrap(),
        );
        assert!(auth::authenticate(&config, Role::Publisher, &headers, None, &audience).is_err());
        headers.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        assert!(
            auth::authenticate(
                &config,
                Role::Publisher,
                &headers,
                None,
                "http://other/.well-known/mercure"
            )
            .is_err()
        );
    }

    #[test]
    fn connection_close_is_seen_in_any_case() {
        assert!(says_close(b"HTTP/1.1 200 OK\r\nconnection: Close\r\n\r\n"));
        assert!(says_close(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\n\r\n"
        ));
        assert!(!says_close(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n"
        ));
    }

    #[test]
    fn nchan_status_becomes_json() {
        let v = parse_nchan_status(
            "total published messages: 12\nshared memory used: 16K\nsubscribers: 1000\n",
        );
        assert_eq!(v["subscribers"], 1000);
        assert_eq!(v["total_published_messages"], 12);
        assert_eq!(v["shared_memory_used"], "16K");
    }

    /// One connection, several answers framed each way, then a close.
    #[tokio::test]
    async fn keeps_the_connection_across_framings_and_reconnects_after_close() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answers: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 429 Too Many\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow",
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
        ];
        let server = tokio::spawn(async move {
            let mut accepted = 0;
            let mut next = 0;
            while next < answers.len() {
                let (mut s, _) = listener.accept().await.unwrap();
                accepted += 1;
                let mut buf = vec![0u8; 4096];
                let mut filled = 0;
                while next < answers.len() {
                    // One request (head and body) per answer.
                    let (end, len) = loop {
                        if let Some(end) = wire::head_end(&buf[..filled]) {
                            let h = wire::parse_request_head(&buf[..end]).unwrap();
                            if filled >= end + h.content_length {
                                break (end, h.content_length);
                            }
                        }
                        let n = s.read(&mut buf[filled..]).await.unwrap();
                        filled += n;
                    };
                    buf.copy_within(end + len..filled, 0);
                    filled -= end + len;
                    s.write_all(answers[next]).await.unwrap();
                    next += 1;
                    if next == 3 {
                        break;
                    }
                }
            }
            accepted
        });
        let mut conn = Conn::new(addr);
        let req = build_request(
            &Style::Plain {
                path: "/p?t=".into(),
            },
            "h",
            "a",
            "data",
        );
        assert_eq!(conn.send(&req).await.unwrap(), 200);
        assert_eq!(conn.send(&req).await.unwrap(), 201);
        match conn.send(&req).await {
            Err(PublishError::Status { status: 429, body }) => assert_eq!(body, "slow"),
            other => panic!("{other:?}"),
        }
        assert_eq!(conn.send(&req).await.unwrap(), 202);
        assert_eq!(conn.connects, 2);
        assert_eq!(server.await.unwrap(), 2);
    }
}
