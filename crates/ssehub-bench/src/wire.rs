//! Minimal HTTP/1.1 pieces: finding and parsing a message head, a chunked
//! body decoder, and a one-shot client for the control requests.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Offset just past the `\r\n\r\n` that ends a message head, if present.
#[must_use]
pub fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n\r\n").map(|i| i + 4)
}

/// A request line and the headers the servers care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query without the `?` (empty if none).
    pub query: String,
    /// `Content-Length`, 0 if absent.
    pub content_length: usize,
    /// The client asks for the connection to end after the response
    /// (`Connection: close`, or HTTP/1.0 without `keep-alive`).
    pub close: bool,
}

/// Parses a request head (everything up to and including `\r\n\r\n`).
#[must_use]
pub fn parse_request_head(head: &[u8]) -> Option<RequestHead> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?;
    let http10 = first.next() == Some("HTTP/1.0");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut content_length = 0;
    let mut close = http10;
    for (k, v) in lines.filter_map(|l| l.split_once(':')) {
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            content_length = v.parse().unwrap_or(0);
        } else if k.eq_ignore_ascii_case("connection") {
            for token in v.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        }
    }
    Some(RequestHead {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        content_length,
        close,
    })
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length: n`.
    Length(u64),
    /// Neither: the body runs until the connection closes.
    UntilClose,
}

/// A response's status and body framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Body framing.
    pub framing: Framing,
}

/// Parses a response head.
#[must_use]
pub fn parse_response_head(head: &[u8]) -> Option<ResponseHead> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut framing = Framing::UntilClose;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked;
        } else if k.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
            framing = Framing::Length(v.parse().ok()?);
        }
    }
    Some(ResponseHead { status, framing })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// In the trailer section; `true` at the start of a line.
    Trailer(bool),
    TrailerLf(bool),
    Done,
}

/// Malformed chunked encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChunk;

/// An incremental `Transfer-Encoding: chunked` decoder.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: ChunkState,
    size: u64,
}

impl Default for Chunked {
    fn default() -> Self {
        Self {
            state: ChunkState::Size,
            size: 0,
        }
    }
}

impl Chunked {
    /// Decodes `input`, passing each run of body bytes to `out`. Returns
    /// `Ok(true)` once the last chunk and trailers have been read.
    ///
    /// # Errors
    /// [`BadChunk`] on malformed framing.
    pub fn feed(&mut self, mut input: &[u8], mut out: impl FnMut(&[u8])) -> Result<bool, BadChunk> {
        use ChunkState::*;
        while let Some(&b) = input.first() {
            match self.state {
                Done => return Ok(true),
                Data => {
                    let n = (self.size as usize).min(input.len());
                    out(&input[..n]);
                    self.size -= n as u64;
                    input = &input[n..];
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let v = (b as char).to_digit(16).unwrap_or(0);
                        self.size = self
                            .size
                            .checked_mul(16)
                            .ok_or(BadChunk)?
                            .checked_add(u64::from(v))
                            .ok_or(BadChunk)?;
                    }
                    b';' | b' ' | b'\t' => self.state = Extension,
                    b'\r' => self.state = SizeLf,
                    b'\n' => self.end_size(),
                    _ => return Err(BadChunk),
                },
                Extension => match b {
                    b'\r' => self.state = SizeLf,
                    b'\n' => self.end_size(),
                    _ => {}
                },
                SizeLf => {
                    if b != b'\n' {
                        return Err(BadChunk);
                    }
                    self.end_size();
                }
                DataCr => match b {
                    b'\r' => self.state = DataLf,
                    b'\n' => self.state = Size,
                    _ => return Err(BadChunk),
                },
                DataLf => {
                    if b != b'\n' {
                        return Err(BadChunk);
                    }
                    self.state = Size;
                }
                Trailer(line_start) => match b {
                    b'\r' => self.state = TrailerLf(line_start),
                    b'\n' if line_start => self.state = Done,
                    b'\n' => self.state = Trailer(true),
                    _ => self.state = Trailer(false),
                },
                TrailerLf(line_start) => {
                    if b != b'\n' {
                        return Err(BadChunk);
                    }
                    self.state = if line_start { Done } else { Trailer(true) };
                }
            }
            input = &input[1..];
        }
        Ok(self.state == Done)
    }

    fn end_size(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::Trailer(true)
        } else {
            ChunkState::Data
        };
    }
}

/// Sends one request with `Connection: close` and returns the status and
/// body. Loopback only; gives up after `timeout`.
///
/// # Errors
/// Connection failures, time-outs and malformed responses.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
    timeout: Duration,
) -> io::Result<(u16, Vec<u8>)> {
    tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect(addr).await?;
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut msg = head.into_bytes();
        msg.extend_from_slice(body);
        stream.write_all(&msg).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed response");
        let end = head_end(&buf).ok_or_else(bad)?;
        let head = parse_response_head(&buf[..end]).ok_or_else(bad)?;
        let raw = &buf[end..];
        let body = match head.framing {
            Framing::Chunked => {
                let mut out = Vec::new();
                Chunked::default()
                    .feed(raw, |b| out.extend_from_slice(b))
                    .map_err(|_| bad())?;
                out
            }
            Framing::Length(n) => raw[..(n as usize).min(raw.len())].to_vec(),
            Framing::UntilClose => raw.to_vec(),
        };
        Ok((head.status, body))
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "control request timed out"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_any_split() {
        let wire = b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = Chunked::default();
            let mut out = Vec::new();
            let a = d
                .feed(&wire[..split], |b| out.extend_from_slice(b))
                .unwrap();
            let b = d
                .feed(&wire[split..], |b| out.extend_from_slice(b))
                .unwrap();
            assert!(!a || split == wire.len());
            assert!(b, "split {split}");
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz");
        }
    }

    #[test]
    fn heads() {
        let h =
            parse_response_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(
            h,
            ResponseHead {
                status: 200,
                framing: Framing::Chunked
            }
        );
        let h = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
            .unwrap();
        assert_eq!(h.framing, Framing::UntilClose);
        let r = parse_request_head(b"POST /run?mode=max HTTP/1.1\r\nContent-Length: 3\r\n\r\n")
            .unwrap();
        assert_eq!(
            (r.path.as_str(), r.query.as_str(), r.content_length, r.close),
            ("/run", "mode=max", 3, false)
        );
        let r = parse_request_head(b"POST /publish HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        assert!(r.close);
        let r = parse_request_head(b"GET /stats HTTP/1.0\r\n\r\n").unwrap();
        assert!(r.close);
        let r =
            parse_request_head(b"GET /stats HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(!r.close);
    }
}
