//! The reconnecting client (`ssehub::eventsource::EventSource`) against real servers on
//! 127.0.0.1: ssehub's own streams under hyper, and raw sockets where a test needs bytes no
//! well-behaved server sends. Every wait is bounded.
#![cfg(feature = "eventsource")]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::serve_hyper;
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use ssehub::eventsource::{ClientEvent, Error, EventSource, Message, ReadyState};
use ssehub::parse::ParseError;
use ssehub::{Event, ResponseBody, StreamConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep, timeout};

const STEP: Duration = Duration::from_secs(5);

/// The requests a test server received: when, and with which headers.
#[derive(Clone, Default)]
struct Requests(Arc<Mutex<Vec<(Instant, HeaderMap)>>>);

impl Requests {
    /// Records a request and returns its index.
    fn record(&self, headers: &HeaderMap) -> usize {
        let mut requests = self.0.lock().unwrap();
        requests.push((Instant::now(), headers.clone()));
        requests.len() - 1
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn at(&self, index: usize) -> Instant {
        self.0.lock().unwrap()[index].0
    }

    fn header(&self, index: usize, name: &str) -> Option<String> {
        self.0.lock().unwrap()[index]
            .1
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// Waits until `n` requests have arrived.
    async fn wait_for(&self, n: usize) {
        timeout(STEP, async {
            while self.count() < n {
                sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{n} requests not seen; {}", self.count()));
    }
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

fn config(retry_ms: u64) -> StreamConfig {
    StreamConfig::default().retry(Some(Duration::from_millis(retry_ms)))
}

/// A response with `status` and no body, in the type ssehub's own handlers return.
fn status(code: u16) -> http::Response<ResponseBody> {
    let mut response = http::Response::new(ResponseBody::Error(None));
    *response.status_mut() = StatusCode::from_u16(code).unwrap();
    response
}

/// The next item, which must come within [`STEP`].
async fn next(source: &mut EventSource) -> Option<Result<ClientEvent, Error>> {
    timeout(STEP, source.next())
        .await
        .expect("no item within the time limit")
}

async fn expect_open(source: &mut EventSource) {
    match next(source).await {
        Some(Ok(ClientEvent::Open)) => {}
        other => panic!("expected Open, got {other:?}"),
    }
}

async fn expect_message(source: &mut EventSource) -> Message {
    match next(source).await {
        Some(Ok(ClientEvent::Message(message))) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn expect_error(source: &mut EventSource) -> Error {
    match next(source).await {
        Some(Err(error)) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Expects the last, fatal error, then the end of the stream.
async fn expect_fatal(source: &mut EventSource) -> Error {
    let error = expect_error(source).await;
    assert!(error.is_fatal(), "{error:?} should be fatal");
    assert!(next(source).await.is_none(), "stream goes on after {error}");
    assert!(next(source).await.is_none());
    assert_eq!(source.ready_state(), ReadyState::Closed);
    error
}

fn message(event: &str, data: &str, id: &str) -> Message {
    Message {
        event: event.into(),
        data: data.into(),
        last_event_id: id.into(),
    }
}

/// A raw HTTP server: each accepted connection's request head is recorded and passed, with
/// the socket and the connection's index, to `handler`.
async fn serve_raw<F, Fut>(handler: F) -> (SocketAddr, Arc<Mutex<Vec<String>>>)
where
    F: Fn(usize, TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let log = heads.clone();
    tokio::spawn(async move {
        for index in 0.. {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
                let mut byte = [0];
                match socket.read(&mut byte).await {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).to_ascii_lowercase());
            tokio::spawn(handler(index, socket));
        }
    });
    (addr, heads)
}

const STREAM_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

#[tokio::test]
async fn events_arrive_typed_with_ids() {
    let requests = Requests::default();
    let log = requests.clone();
    let addr = serve_hyper(move |parts| {
        log.record(&parts.headers);
        ssehub::respond(&parts, &config(2000), |sender| async move {
            sender
                .send(Event::with_type("greeting", "hello").with_id("1"))
                .await
                .unwrap();
            sender.send(Event::new("line 1\nline 2")).await.unwrap();
            sender.send(Event::new("")).await.unwrap();
            sender
                .send(Event::new("{\"x\":1}").with_id("two").with_event("update"))
                .await
                .unwrap();
            sender.closed().await;
        })
    })
    .await;
    let mut source = EventSource::builder(url(addr, "/events"))
        .header("x-token", "secret")
        .header("accept", "text/html") // the event source's own value wins
        .build()
        .unwrap();
    assert_eq!(source.ready_state(), ReadyState::Connecting);
    assert_eq!(requests.count(), 0, "nothing is sent before the first poll");
    expect_open(&mut source).await;
    assert_eq!(source.ready_state(), ReadyState::Open);
    assert_eq!(
        expect_message(&mut source).await,
        message("greeting", "hello", "1")
    );
    assert_eq!(
        expect_message(&mut source).await,
        message("message", "line 1\nline 2", "1")
    );
    assert_eq!(
        expect_message(&mut source).await,
        message("message", "", "1")
    );
    assert_eq!(
        expect_message(&mut source).await,
        message("update", "{\"x\":1}", "two")
    );
    assert_eq!(source.last_event_id(), "two");
    assert_eq!(source.reconnection_time(), Duration::from_millis(2000));

    assert_eq!(requests.count(), 1);
    assert_eq!(
        requests.header(0, "accept").as_deref(),
        Some("text/event-stream")
    );
    let accepts = requests.0.lock().unwrap()[0]
        .1
        .get_all("accept")
        .iter()
        .count();
    assert_eq!(accepts, 1);
    assert_eq!(
        requests.header(0, "cache-control").as_deref(),
        Some("no-cache")
    );
    assert_eq!(requests.header(0, "x-token").as_deref(), Some("secret"));
    assert_eq!(requests.header(0, "last-event-id"), None);
}

#[tokio::test]
async fn reconnects_after_the_servers_retry_with_last_event_id() {
    let requests = Requests::default();
    let log = requests.clone();
    let addr = serve_hyper(move |parts| {
        let n = log.record(&parts.headers);
        // Frequent keep-alives, so the server notices a vanished client at once.
        let config = config(200).keep_alive(Some(Duration::from_millis(50)));
        ssehub::respond(&parts, &config, move |sender| async move {
            if n == 0 {
                sender.send(Event::new("a").with_id("1")).await.unwrap();
                sender.send(Event::new("b").with_id("2")).await.unwrap();
                // Returning ends the response: the client must come back.
            } else {
                sender.send(Event::new("c").with_id("3")).await.unwrap();
                sender.closed().await;
            }
        })
    })
    .await;
    // The builder's reconnection time (3 s by default) is replaced by the server's 200 ms.
    let mut source = EventSource::new(url(addr, "/")).unwrap();
    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        message("message", "a", "1")
    );
    assert_eq!(
        expect_message(&mut source).await,
        message("message", "b", "2")
    );
    assert!(matches!(
        expect_error(&mut source).await,
        Error::StreamEnded
    ));
    let ended = Instant::now();
    assert_eq!(source.ready_state(), ReadyState::Connecting);
    assert_eq!(source.reconnection_time(), Duration::from_millis(200));
    // After a connection that was open: exactly the reconnection time, no jitter.
    assert_eq!(source.reconnect_delay(), Some(Duration::from_millis(200)));
    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        message("message", "c", "3")
    );

    assert_eq!(requests.count(), 2);
    let gap = requests.at(1) - ended;
    assert!(
        (Duration::from_millis(150)..Duration::from_millis(1500)).contains(&gap),
        "reconnected after {gap:?}"
    );
    assert_eq!(requests.header(1, "last-event-id").as_deref(), Some("2"));
    assert_eq!(
        requests.header(1, "accept").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(
        requests.header(1, "cache-control").as_deref(),
        Some("no-cache")
    );
}

#[tokio::test]
async fn abrupt_disconnect_mid_event_discards_it_and_resumes() {
    // Connection 0 breaks inside the chunked body, connection 1 ends a close-delimited body
    // mid-event (a clean end for HTTP, a cut-off event for the stream), connection 2 stays.
    let (addr, heads) = serve_raw(|n, mut socket| async move {
        match n {
            0 => {
                let mut out = STREAM_HEAD.to_vec();
                out.extend(chunk(b"retry: 100\n\nid: 1\ndata: one\n\n"));
                out.extend(chunk(b"id: 2\nevent: cut\ndata: partial"));
                socket.write_all(&out).await.unwrap();
                sleep(Duration::from_millis(50)).await;
                // Dropped without the terminating chunk.
            }
            1 => {
                let out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n\
                    data: two\n\nid: 9\ndata: partial again\n";
                socket.write_all(out).await.unwrap();
                let _ = socket.shutdown().await;
            }
            _ => {
                let mut out = STREAM_HEAD.to_vec();
                out.extend(chunk(b"id: 3\ndata: three\n\n"));
                socket.write_all(&out).await.unwrap();
                sleep(Duration::from_secs(30)).await;
            }
        }
    })
    .await;
    let mut source = EventSource::new(url(addr, "/")).unwrap();
    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        message("message", "one", "1")
    );
    let error = expect_error(&mut source).await;
    assert!(
        matches!(error, Error::Transport(_)),
        "a broken chunked body is a transport error: {error:?}"
    );
    assert!(!error.is_fatal());
    assert_eq!(source.reconnect_delay(), Some(Duration::from_millis(100)));
    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        message("message", "two", "1")
    );
    assert!(matches!(
        expect_error(&mut source).await,
        Error::StreamEnded
    ));
    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        message("message", "three", "3")
    );
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 3);
    assert!(!heads[0].contains("last-event-id"), "{}", heads[0]);
    // The ids of the cut-off events never became the last event id.
    assert!(heads[1].contains("last-event-id: 1\r\n"), "{}", heads[1]);
    assert!(heads[2].contains("last-event-id: 1\r\n"), "{}", heads[2]);
}

#[tokio::test]
async fn no_content_stops_for_good() {
    let requests = Requests::default();
    let log = requests.clone();
    let addr = serve_hyper(move |parts| {
        log.record(&parts.headers);
        ssehub::no_content::<String>()
    })
    .await;
    let retry = Duration::from_millis(100);
    let mut source = EventSource::builder(url(addr, "/"))
        .retry(retry)
        .build()
        .unwrap();
    let error = expect_fatal(&mut source).await;
    assert!(
        matches!(error, Error::Http(StatusCode::NO_CONTENT)),
        "{error:?}"
    );
    sleep(retry * 5).await;
    assert_eq!(requests.count(), 1, "no request after a 204");
    assert!(next(&mut source).await.is_none());
}

#[tokio::test]
async fn error_statuses_stop_for_good() {
    for code in [500, 404, 503, 201, 206] {
        let requests = Requests::default();
        let log = requests.clone();
        let addr = serve_hyper(move |parts| {
            log.record(&parts.headers);
            let mut response = status(code);
            // Even with the right content type, only 200 opens a stream.
            ssehub::set_stream_headers(response.headers_mut(), false);
            response
        })
        .await;
        let mut source = EventSource::builder(url(addr, "/"))
            .retry(Duration::from_millis(50))
            .build()
            .unwrap();
        let error = expect_fatal(&mut source).await;
        assert!(
            matches!(error, Error::Http(s) if s.as_u16() == code),
            "{code}: {error:?}"
        );
        sleep(Duration::from_millis(250)).await;
        assert_eq!(requests.count(), 1, "{code}: requests after a fatal status");
    }
}

#[tokio::test]
async fn a_server_error_after_a_good_stream_stops_for_good() {
    let requests = Requests::default();
    let log = requests.clone();
    let addr = serve_hyper(move |parts| match log.record(&parts.headers) {
        0 => ssehub::respond(&parts, &config(50), |sender| async move {
            sender.send(Event::new("only").with_id("1")).await.unwrap();
        }),
        _ => status(500),
    })
    .await;
    let mut source = EventSource::new(url(addr, "/")).unwrap();
    expect_open(&mut source).await;
    expect_message(&mut source).await;
    assert!(matches!(
        expect_error(&mut source).await,
        Error::StreamEnded
    ));
    let error = expect_fatal(&mut source).await;
    assert!(matches!(
        error,
        Error::Http(StatusCode::INTERNAL_SERVER_ERROR)
    ));
    sleep(Duration::from_millis(250)).await;
    assert_eq!(requests.count(), 2);
    assert_eq!(requests.header(1, "last-event-id").as_deref(), Some("1"));
}

#[tokio::test]
async fn wrong_content_type_stops_for_good() {
    for content_type in [Some("text/plain"), Some("text/event-streams"), None] {
        let requests = Requests::default();
        let log = requests.clone();
        let addr = serve_hyper(move |parts| {
            log.record(&parts.headers);
            let mut response = ssehub::respond(&parts, &config(50), |sender| async move {
                let _ = sender.send(Event::new("never seen")).await;
                sender.closed().await;
            });
            match content_type {
                Some(value) => {
                    response
                        .headers_mut()
                        .insert("content-type", value.parse().unwrap());
                }
                None => {
                    response.headers_mut().remove("content-type");
                }
            }
            response
        })
        .await;
        let mut source = EventSource::builder(url(addr, "/"))
            .retry(Duration::from_millis(50))
            .build()
            .unwrap();
        let error = expect_fatal(&mut source).await;
        match &error {
            Error::ContentType(received) => assert_eq!(received.as_deref(), content_type),
            other => panic!("{content_type:?}: {other:?}"),
        }
        sleep(Duration::from_millis(250)).await;
        assert_eq!(requests.count(), 1, "{content_type:?}");
    }
}

#[tokio::test]
async fn content_type_parameters_and_case_are_accepted() {
    let addr = serve_hyper(move |parts| {
        let mut response = ssehub::respond(&parts, &config(50), |sender| async move {
            let _ = sender.send(Event::new("ok")).await;
            sender.closed().await;
        });
        response.headers_mut().insert(
            "content-type",
            "Text/Event-Stream ; charset=utf-8".parse().unwrap(),
        );
        response
    })
    .await;
    let mut source = EventSource::new(url(addr, "/")).unwrap();
    expect_open(&mut source).await;
    assert_eq!(expect_message(&mut source).await.data, "ok");
}

/// An address where connections are refused: a socket bound to a port but not listening.
/// Keeping it bound means no other test can take the port meanwhile.
fn refusing_port() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// Collects `n` errors, with when each arrived and the reconnection delay chosen after it.
async fn collect_failures(source: &mut EventSource, n: usize) -> Vec<(Instant, Duration)> {
    let mut failures = Vec::new();
    for _ in 0..n {
        let error = expect_error(source).await;
        let at = Instant::now();
        match &error {
            Error::Transport(e) => assert!(e.is_connect(), "{e:?}"),
            other => panic!("{other:?}"),
        }
        assert!(!error.is_fatal());
        failures.push((at, source.reconnect_delay().expect("waiting to reconnect")));
    }
    failures
}

/// Each measured gap between failures is the delay chosen after the first (never less, and
/// not much more on a busy machine).
fn assert_gaps_follow_delays(failures: &[(Instant, Duration)]) {
    for pair in failures.windows(2) {
        let ((at, delay), (next_at, _)) = (pair[0], pair[1]);
        let gap = next_at - at;
        assert!(
            gap + Duration::from_millis(20) >= delay && gap <= delay + Duration::from_millis(400),
            "gap {gap:?} for a delay of {delay:?}"
        );
    }
}

#[tokio::test]
async fn backoff_grows_on_repeated_refusals_and_is_capped() {
    let (_reserved, addr) = refusing_port();
    let mut source = EventSource::builder(url(addr, "/"))
        .retry(Duration::from_millis(100))
        .max_backoff(Duration::from_millis(500))
        .jitter(false)
        .build()
        .unwrap();
    let failures = collect_failures(&mut source, 6).await;
    let delays: Vec<u64> = failures
        .iter()
        .map(|(_, d)| u64::try_from(d.as_millis()).unwrap())
        .collect();
    // First failure: the reconnection time; then doubling, capped at max_backoff.
    assert_eq!(delays, [100, 200, 400, 500, 500, 500]);
    assert_gaps_follow_delays(&failures);
    source.close();
    assert!(next(&mut source).await.is_none());
}

#[tokio::test]
async fn jitter_keeps_delays_within_documented_bounds() {
    let (_reserved, addr) = refusing_port();
    let retry = Duration::from_millis(100);
    let cap = Duration::from_millis(800);
    let mut source = EventSource::builder(url(addr, "/"))
        .retry(retry)
        .max_backoff(cap)
        .build()
        .unwrap();
    let failures = collect_failures(&mut source, 7).await;
    let mut jittered = 0;
    for (n, (_, delay)) in (1u32..).zip(&failures) {
        // d = min(max(r, 100 ms) * 2^(n-1), max(cap, r)); jitter picks from [max(d/2, r), d].
        let ceiling = (retry * 2u32.pow(n - 1)).min(cap);
        let floor = (ceiling / 2).max(retry);
        assert!(
            (floor..=ceiling).contains(delay),
            "failure {n}: {delay:?} outside {floor:?}..={ceiling:?}"
        );
        if n >= 2 && *delay != ceiling {
            jittered += 1;
        }
    }
    assert!(jittered >= 3, "little jitter: {failures:?}");
    assert_gaps_follow_delays(&failures);
}

#[tokio::test]
async fn a_successful_open_resets_the_backoff() {
    // Refuse three times (by answering garbage that is not HTTP), then open, then refuse again.
    let (addr, heads) = serve_raw(|n, mut socket| async move {
        if n == 3 {
            let mut out = STREAM_HEAD.to_vec();
            out.extend(chunk(b"data: up\n\n"));
            socket.write_all(&out).await.unwrap();
            // Then the connection breaks.
        } else {
            let _ = socket.write_all(b"not http at all\r\n\r\n").await;
        }
    })
    .await;
    let mut source = EventSource::builder(url(addr, "/"))
        .retry(Duration::from_millis(100))
        .jitter(false)
        .build()
        .unwrap();
    let mut delays = Vec::new();
    for _ in 0..3 {
        let error = expect_error(&mut source).await;
        assert!(matches!(error, Error::Transport(_)), "{error:?}");
        delays.push(source.reconnect_delay().unwrap());
    }
    expect_open(&mut source).await;
    assert_eq!(expect_message(&mut source).await.data, "up");
    expect_error(&mut source).await;
    delays.push(source.reconnect_delay().unwrap());
    expect_error(&mut source).await;
    delays.push(source.reconnect_delay().unwrap());
    expect_error(&mut source).await;
    delays.push(source.reconnect_delay().unwrap());
    let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [100, 200, 400, 100, 100, 200]);
    assert!(heads.lock().unwrap().len() >= 6);
}

#[tokio::test]
async fn an_empty_id_resets_the_last_event_id() {
    let requests = Requests::default();
    let log = requests.clone();
    let addr = serve_hyper(move |parts| {
        let n = log.record(&parts.headers);
        ssehub::respond(&parts, &config(50), move |sender| async move {
            match n {
                0 => {
                    sender.send(Event::new("a").with_id("5")).await.unwrap();
                    sender.send(Event::new("b").with_id("")).await.unwrap();
                }
                1 => {
                    sender.send(Event::new("c").with_id("6")).await.unwrap();
                    // An id reset with no data: no event fires, but the id is taken.
                    sender.send(Event::empty().with_id("")).await.unwrap();
                }
                _ => sender.closed().await,
            }
        })
    })
    .await;
    let mut source = EventSource::new(url(addr, "/")).unwrap();
    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        message("message", "a", "5")
    );
    assert_eq!(
        expect_message(&mut source).await,
        message("message", "b", "")
    );
    assert_eq!(source.last_event_id(), "");
    assert!(matches!(
        expect_error(&mut source).await,
        Error::StreamEnded
    ));
    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        message("message", "c", "6")
    );
    assert!(matches!(
        expect_error(&mut source).await,
        Error::StreamEnded
    ));
    assert_eq!(source.last_event_id(), "");
    expect_open(&mut source).await;
    requests.wait_for(3).await;
    assert_eq!(requests.header(0, "last-event-id"), None);
    assert_eq!(requests.header(1, "last-event-id"), None);
    assert_eq!(requests.header(2, "last-event-id"), None);
}

#[tokio::test]
async fn the_initial_last_event_id_is_sent_until_the_server_sets_one() {
    let requests = Requests::default();
    let log = requests.clone();
    let addr = serve_hyper(move |parts| {
        let n = log.record(&parts.headers);
        ssehub::respond(&parts, &config(50), move |sender| async move {
            match n {
                0 => sender.send(Event::new("no id")).await.unwrap(),
                1 => sender.send(Event::new("x").with_id("42")).await.unwrap(),
                _ => sender.closed().await,
            }
        })
    })
    .await;
    let mut source = EventSource::builder(url(addr, "/"))
        .last_event_id("41")
        .header("last-event-id", "ignored")
        .build()
        .unwrap();
    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        message("message", "no id", "41")
    );
    expect_error(&mut source).await;
    expect_open(&mut source).await;
    assert_eq!(
        expect_message(&mut source).await,
        message("message", "x", "42")
    );
    expect_error(&mut source).await;
    expect_open(&mut source).await;
    requests.wait_for(3).await;
    assert_eq!(requests.header(0, "last-event-id").as_deref(), Some("41"));
    assert_eq!(requests.header(1, "last-event-id").as_deref(), Some("41"));
    assert_eq!(requests.header(2, "last-event-id").as_deref(), Some("42"));
    let sent = requests.0.lock().unwrap()[0]
        .1
        .get_all("last-event-id")
        .iter()
        .count();
    assert_eq!(sent, 1);
}

#[tokio::test]
async fn redirects_are_followed() {
    let requests = Requests::default();
    let log = requests.clone();
    let addr = serve_hyper(move |parts| {
        log.record(&parts.headers);
        if parts.uri.path() == "/old" {
            let mut response = status(307);
            response
                .headers_mut()
                .insert("location", "/events".parse().unwrap());
            return response;
        }
        ssehub::respond(&parts, &config(50), |sender| async move {
            let _ = sender.send(Event::new("moved")).await;
            sender.closed().await;
        })
    })
    .await;
    let mut source = EventSource::new(url(addr, "/old")).unwrap();
    expect_open(&mut source).await;
    assert_eq!(expect_message(&mut source).await.data, "moved");
    assert_eq!(requests.count(), 2);
    assert_eq!(
        requests.header(1, "accept").as_deref(),
        Some("text/event-stream")
    );
}

#[tokio::test]
async fn close_and_drop_stop_everything() {
    // Dropping an open stream closes its connection: the server's handler sees it.
    let (gone_tx, gone_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let requests = Requests::default();
    let log = requests.clone();
    let addr = serve_hyper(move |parts| {
        let gone = gone_tx.clone();
        let n = log.record(&parts.headers);
        // Frequent keep-alives, so the server notices a vanished client at once.
        let config = config(200)
            .keep_alive(Some(Duration::from_millis(50)))
            .on_disconnect(move |_| {
                let _ = gone.send(n);
            });
        ssehub::respond(&parts, &config, move |sender| async move {
            if n == 0 {
                sender.send(Event::new("hi")).await.unwrap();
                sender.closed().await;
            }
            // Later requests end at once: the client waits 200 ms to come back.
        })
    })
    .await;
    let mut gone_rx = gone_rx;
    let mut source = EventSource::new(url(addr, "/")).unwrap();
    expect_open(&mut source).await;
    expect_message(&mut source).await;
    drop(source);
    let gone = timeout(Duration::from_secs(2), gone_rx.recv())
        .await
        .expect("the server did not see the client leave");
    assert_eq!(gone, Some(0));

    // A closer used from another task while the stream waits to reconnect.
    let mut source = EventSource::new(url(addr, "/")).unwrap();
    let closer = source.closer();
    expect_open(&mut source).await;
    assert!(matches!(
        expect_error(&mut source).await,
        Error::StreamEnded
    ));
    assert!(source.reconnect_delay().is_some());
    let consumer = tokio::spawn(async move { source.next().await.is_none() });
    sleep(Duration::from_millis(50)).await;
    closer.close();
    let ended = timeout(Duration::from_millis(500), consumer)
        .await
        .expect("close did not wake the consumer")
        .unwrap();
    assert!(ended);
    let count = requests.count();
    sleep(Duration::from_millis(600)).await;
    assert_eq!(requests.count(), count, "a request after close");
    assert_eq!(count, 2);

    // close() on the stream itself, while open.
    let mut source = EventSource::new(url(addr, "/")).unwrap();
    expect_open(&mut source).await;
    source.close();
    assert_eq!(source.ready_state(), ReadyState::Closed);
    assert!(next(&mut source).await.is_none());
}

#[tokio::test]
async fn an_oversized_event_is_reported_and_skipped() {
    let requests = Requests::default();
    let log = requests.clone();
    let addr = serve_hyper(move |parts| {
        log.record(&parts.headers);
        ssehub::respond(&parts, &config(50), |sender| async move {
            sender.send(Event::new("x".repeat(500))).await.unwrap();
            sender.send(Event::new("small")).await.unwrap();
            sender.closed().await;
        })
    })
    .await;
    let mut source = EventSource::builder(url(addr, "/"))
        .max_event_size(100)
        .build()
        .unwrap();
    expect_open(&mut source).await;
    let error = expect_error(&mut source).await;
    assert!(
        matches!(
            error,
            Error::Parse(ParseError::EventTooLarge { limit: 100 })
        ),
        "{error:?}"
    );
    assert!(!error.is_fatal());
    assert_eq!(source.ready_state(), ReadyState::Open, "same connection");
    assert_eq!(expect_message(&mut source).await.data, "small");
    assert_eq!(requests.count(), 1);
}

#[tokio::test]
async fn the_idle_timeout_drops_silent_connections() {
    // Connection 0 never answers; connection 1 answers, then goes silent; connection 2 talks.
    let (addr, heads) = serve_raw(|n, mut socket| async move {
        match n {
            0 => sleep(Duration::from_secs(30)).await,
            1 => {
                socket.write_all(STREAM_HEAD).await.unwrap();
                sleep(Duration::from_secs(30)).await;
            }
            _ => {
                socket.write_all(STREAM_HEAD).await.unwrap();
                for i in 0..50 {
                    // Keep-alive comments count as activity.
                    let frame = if i == 5 {
                        &b"data: alive\n\n"[..]
                    } else {
                        b":\n\n"
                    };
                    if socket.write_all(&chunk(frame)).await.is_err() {
                        return;
                    }
                    sleep(Duration::from_millis(50)).await;
                }
            }
        }
        drop(socket);
    })
    .await;
    let mut source = EventSource::builder(url(addr, "/"))
        .retry(Duration::from_millis(50))
        .idle_timeout(Some(Duration::from_millis(300)))
        .build()
        .unwrap();
    let start = Instant::now();
    assert!(matches!(expect_error(&mut source).await, Error::Timeout));
    assert!(start.elapsed() >= Duration::from_millis(300));
    expect_open(&mut source).await;
    let opened = Instant::now();
    assert!(matches!(expect_error(&mut source).await, Error::Timeout));
    assert!(opened.elapsed() >= Duration::from_millis(280));
    expect_open(&mut source).await;
    let talking = Instant::now();
    assert_eq!(expect_message(&mut source).await.data, "alive");
    // 0.75 s of keep-alives every 50 ms: no timeout meanwhile.
    let quiet = timeout(Duration::from_millis(750), source.next()).await;
    assert!(quiet.is_err(), "unexpected {quiet:?}");
    assert!(talking.elapsed() >= Duration::from_millis(700));
    assert_eq!(heads.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn hostile_server_input_never_panics() {
    let bodies: Vec<Vec<u8>> = vec![
        // Binary noise, lone CRs, NULs, invalid UTF-8, a BOM in the middle.
        (0..=255u8).cycle().take(5000).collect(),
        b"\xEF\xBB\xBF\xEF\xBB\xBFdata: \xFF\xFE\r\r\n\0id: a\0b\ndata\n\n:\n\r\n".to_vec(),
        // Retry values: not digits, overflowing u64, zero.
        b"retry: -1\nretry: 1e3\nretry: 99999999999999999999999\nretry: 0\ndata: z\n\n".to_vec(),
    ];
    let served = bodies.clone();
    let (addr, heads) = serve_raw(move |n, mut socket| {
        let body = served.get(n).cloned();
        async move {
            let Some(body) = body else {
                // Finally: the largest retry, then an end. The client must wait without
                // overflowing anything.
                let mut out = STREAM_HEAD.to_vec();
                out.extend(chunk(b"retry: 18446744073709551615\n\n"));
                out.extend(b"0\r\n\r\n");
                let _ = socket.write_all(&out).await;
                return;
            };
            let mut out = STREAM_HEAD.to_vec();
            for piece in body.chunks(7) {
                out.extend(chunk(piece));
            }
            out.extend(b"0\r\n\r\n");
            let _ = socket.write_all(&out).await;
        }
    })
    .await;
    let mut source = EventSource::builder(url(addr, "/"))
        .retry(Duration::from_millis(20))
        .max_event_size(256)
        .build()
        .unwrap();
    let mut messages = Vec::new();
    let mut ended = 0;
    while ended < 4 {
        match next(&mut source).await {
            Some(Ok(ClientEvent::Message(m))) => messages.push(m),
            Some(Ok(ClientEvent::Open) | Err(Error::Parse(_))) => {}
            Some(Err(Error::StreamEnded)) => ended += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(messages.iter().any(|m| m.data == "z"));
    assert_eq!(source.reconnection_time(), Duration::from_millis(u64::MAX));
    assert_eq!(
        source.reconnect_delay(),
        Some(Duration::from_millis(u64::MAX))
    );
    assert!(
        timeout(Duration::from_millis(200), source.next())
            .await
            .is_err()
    );
    assert_eq!(heads.lock().unwrap().len(), 4);
    source.close();
    assert!(next(&mut source).await.is_none());
}

#[tokio::test]
async fn not_http_at_all_is_retried_without_panicking() {
    let (addr, heads) = serve_raw(|n, mut socket| async move {
        let garbage: &[u8] = match n {
            0 => b"\0\0\0\0",
            1 => b"HTTP/1.1 999999 Nope\r\n\r\n",
            2 => b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: nope\r\n\r\n",
            _ => b"HTTP/1.1 204 No Content\r\n\r\n",
        };
        let _ = socket.write_all(garbage).await;
    })
    .await;
    let mut source = EventSource::builder(url(addr, "/"))
        .retry(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(50))
        .build()
        .unwrap();
    for _ in 0..3 {
        let error = expect_error(&mut source).await;
        assert!(matches!(error, Error::Transport(_)), "{error:?}");
    }
    let error = expect_fatal(&mut source).await;
    assert!(matches!(error, Error::Http(StatusCode::NO_CONTENT)));
    assert_eq!(heads.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn builder_rejects_what_cannot_work() {
    for url in ["", "relative/path", "ftp://host/", "data:text/plain,hi"] {
        assert!(
            matches!(EventSource::new(url), Err(Error::InvalidUrl(_))),
            "{url}"
        );
    }
    let bad_name = EventSource::builder("http://127.0.0.1/")
        .header("bad name", "x")
        .build();
    assert!(matches!(bad_name, Err(Error::InvalidHeader(_))));
    for id in ["a\nb", "a\rb", "a\0b"] {
        let built = EventSource::builder("http://127.0.0.1/")
            .last_event_id(id)
            .build();
        assert!(matches!(built, Err(Error::InvalidLastEventId)), "{id:?}");
    }
}
