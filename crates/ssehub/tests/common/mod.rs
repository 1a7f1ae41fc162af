//! Test helpers: a hyper server on 127.0.0.1 and a raw HTTP/1.1 client that
//! shows exactly what went over the wire.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http::request::Parts;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves `handler` with hyper (HTTP/1.1 and h2c) on an ephemeral port.
pub async fn serve_hyper<F, B>(handler: F) -> SocketAddr
where
    F: Fn(Parts) -> http::Response<B> + Clone + Send + Sync + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, _) = req.into_parts();
                        Ok::<_, Infallible>(handler(parts))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    addr
}

/// Sends `GET path` from a socket with a tiny receive window and returns it
/// unread: a client that stalls.
pub async fn stalled_get(addr: SocketAddr, path: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream
}

/// A response read off a raw socket: status, headers, and the de-chunked body
/// as it arrives.
pub struct RawResponse {
    socket: TcpStream,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Raw bytes after the headers not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked body bytes not yet returned.
    body: Vec<u8>,
    chunked: bool,
    terminated: bool,
    eof: bool,
}

impl RawResponse {
    pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &[u8])]) -> Self {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n")
                .into_bytes();
        for (name, value) in headers {
            request.extend_from_slice(name.as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        socket.write_all(&request).await.unwrap();
        let mut raw = Vec::new();
        let head_end = loop {
            if let Some(pos) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buf))
                .await
                .expect("no response head within 2 s")
                .unwrap();
            assert!(n > 0, "connection closed before the response head");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8(raw[..head_end].to_vec()).unwrap();
        let rest = raw[head_end + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v == "chunked");
        // Bodiless answers end with the head.
        let bodiless = status == 204
            || status == 304
            || headers
                .iter()
                .any(|(k, v)| k == "content-length" && v == "0");
        let mut response = Self {
            socket,
            status,
            headers,
            raw: rest,
            body: Vec::new(),
            chunked,
            terminated: bodiless,
            eof: false,
        };
        response.dechunk();
        response
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn saw_chunked_terminator(&self) -> bool {
        self.terminated
    }

    fn dechunk(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size = usize::from_str_radix(
                std::str::from_utf8(&self.raw[..line_end]).unwrap().trim(),
                16,
            )
            .unwrap();
            if size == 0 {
                self.terminated = true;
                self.raw.clear();
                return;
            }
            if self.raw.len() < line_end + 2 + size + 2 {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.raw.drain(..line_end + 2 + size + 2);
        }
    }

    /// Reads more from the socket, waiting at most until `deadline`.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> bool {
        if self.eof || self.terminated {
            return false;
        }
        let mut buf = [0u8; 16384];
        match tokio::time::timeout_at(deadline, self.socket.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.eof = true;
                false
            }
            Ok(Ok(n)) => {
                self.raw.extend_from_slice(&buf[..n]);
                self.dechunk();
                true
            }
            Err(_) => false,
        }
    }

    /// Body bytes up to and including the first `needle`; panics on timeout.
    pub async fn read_until(&mut self, needle: &[u8], limit: Duration) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(pos) = self.body.windows(needle.len()).position(|w| w == needle) {
                return self.body.drain(..pos + needle.len()).collect();
            }
            if !self.fill(deadline).await && tokio::time::Instant::now() >= deadline {
                panic!(
                    "{needle:?} not seen within {limit:?}; got {:?}",
                    String::from_utf8_lossy(&self.body)
                );
            }
            if self.eof || self.terminated {
                panic!(
                    "stream ended before {needle:?}; got {:?}",
                    String::from_utf8_lossy(&self.body)
                );
            }
        }
    }

    /// Every body byte that arrives within `duration`.
    pub async fn read_for(&mut self, duration: Duration) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + duration;
        while tokio::time::Instant::now() < deadline {
            if !self.fill(deadline).await && (self.eof || self.terminated) {
                break;
            }
        }
        std::mem::take(&mut self.body)
    }

    /// The rest of the body; panics if it does not end within `limit`.
    pub async fn read_to_end(&mut self, limit: Duration) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + limit;
        while !(self.eof || self.terminated) {
            if !self.fill(deadline).await && tokio::time::Instant::now() >= deadline {
                panic!(
                    "body did not end within {limit:?}; got {:?}",
                    String::from_utf8_lossy(&self.body)
                );
            }
        }
        std::mem::take(&mut self.body)
    }
}
