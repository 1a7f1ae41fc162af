//! The lean server's routed connections (`serve_connection_routed`): short
//! requests answered on kept-alive connections (checked with hyper's
//! client, an independent one), pipelining, the requests it leaves to the
//! fallback with every byte not yet used, and how idle connections end.
#![cfg(feature = "server")]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::RawResponse;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use ssehub::broker::{Broker, BrokerConfig};
use ssehub::server::{Rewind, Route, ServerConfig, serve_connection_routed};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

const MAX_BODY: usize = 1024;

/// A server whose route streams `GET /events` (channel "news"), answers
/// `POST` and `HEAD /publish` itself (publishing the body on "news", and
/// saying in `x-task` which task answered), and
/// hands the rest to a hyper fallback that says what it received. Sending
/// `true` on the returned channel closes idle connections.
async fn start(broker: &Broker, read_timeout: Duration) -> (SocketAddr, watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closing, closed) = watch::channel(false);
    let broker = broker.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let (broker, mut closed) = (broker.clone(), closed.clone());
            tokio::spawn(async move {
                let route = |request: &http::request::Parts| match (
                    request.method.as_str(),
                    request.uri.path(),
                ) {
                    ("GET", "/events") => Route::Stream(
                        broker.handle_request(request, |c| c.subscribe("news").unwrap()),
                    ),
                    ("POST" | "HEAD", "/publish") => Route::Answer { max_body: MAX_BODY },
                    _ => Route::Fallback,
                };
                let answer = |_request: http::request::Parts, body: Bytes| {
                    let published = broker.broadcast_data(String::from_utf8_lossy(&body));
                    let text = format!("answered {} bytes", body.len());
                    let task = tokio::task::try_id()
                        .map(|id| id.to_string())
                        .unwrap_or_default();
                    std::future::ready(
                        http::Response::builder()
                            .status(if published.is_ok() { 200 } else { 500 })
                            .header("x-answered", "lean")
                            .header("x-task", task)
                            .body(Bytes::from(text))
                            .unwrap(),
                    )
                };
                let fallback = |io: Rewind<TcpStream>| async move {
                    let service = hyper::service::service_fn(
                        |request: http::Request<hyper::body::Incoming>| async move {
                            let head = format!("{} {}", request.method(), request.uri().path());
                            let body = request.into_body().collect().await?.to_bytes();
                            let text = format!("fallback {head} {} bytes", body.len());
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(text))))
                        },
                    );
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(io), service)
                        .await
                        .map_err(std::io::Error::other)
                };
                let closing = || async move {
                    let _ = closed.wait_for(|closed| *closed).await;
                };
                let config = ServerConfig::default().read_timeout(read_timeout);
                let _ = serve_connection_routed(socket, config, closing, &route, &answer, fallback)
                    .await;
            });
        }
    });
    (addr, closing)
}

/// Everything the server sends until it closes the connection.
async fn read_to_close(socket: &mut TcpStream) -> String {
    let mut all = Vec::new();
    timeout(Duration::from_secs(5), socket.read_to_end(&mut all))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8(all).unwrap()
}

#[tokio::test]
async fn answers_many_requests_on_one_connection_then_falls_back() {
    let broker = Broker::new();
    let (addr, _closing) = start(&broker, Duration::from_secs(10)).await;
    let mut events = RawResponse::get(addr, "/events", &[]).await;
    assert_eq!(events.status, 200);

    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut client, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
    let connection = tokio::spawn(connection);
    for text in ["one", "two", "three"] {
        let request = http::Request::post("/publish")
            .header("host", "x")
            .body(Full::new(Bytes::from(text)))
            .unwrap();
        let response = client.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-answered"], "lean");
        assert!(response.headers().contains_key("date"), "RFC 9110: a Date");
        assert!(!response.headers().contains_key("connection"), "kept alive");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("answered {} bytes", text.len()));
    }
    // The same connection, now for a request the route does not answer.
    let request = http::Request::post("/other")
        .header("host", "x")
        .body(Full::new(Bytes::from_static(b"12345")))
        .unwrap();
    let response = client.send_request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "fallback POST /other 5 bytes");
    drop(client);
    let _ = timeout(Duration::from_secs(5), connection).await;

    for data in ["one", "two", "three"] {
        let needle = format!("data: {data}\n\n");
        events
            .read_until(needle.as_bytes(), Duration::from_secs(5))
            .await;
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let broker = Broker::new();
    let (addr, _closing) = start(&broker, Duration::from_secs(10)).await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    // Three requests in one write: two answered here, then one the fallback
    // must parse from the bytes already read.
    socket
        .write_all(
            b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab\
              POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n\
              POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz",
        )
        .await
        .unwrap();
    let all = read_to_close(&mut socket).await;
    let first = all.find("answered 2 bytes").expect(&all);
    let second = all.find("answered 0 bytes").expect(&all);
    let third = all.find("fallback POST /other 3 bytes").expect(&all);
    assert!(first < second && second < third, "{all}");
}

#[tokio::test]
async fn bodies_it_does_not_read_itself_go_to_the_fallback_whole() {
    let broker = Broker::new();
    let (addr, _closing) = start(&broker, Duration::from_secs(10)).await;
    let big = "x".repeat(MAX_BODY + 1);
    let requests = [
        // Chunked.
        "POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_owned(),
        // Larger than the route's limit.
        format!("POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}", big.len()),
        // Waiting for `100 Continue`: hyper sends it.
        "POST /publish HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab".to_owned(),
        // HTTP/1.0, whose connections are not kept alive the same way.
        "POST /publish HTTP/1.0\r\nHost: x\r\nContent-Length: 2\r\n\r\nab".to_owned(),
        // Two lengths.
        "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab".to_owned(),
    ];
    for request in requests {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket.write_all(request.as_bytes()).await.unwrap();
        let all = read_to_close(&mut socket).await;
        assert!(
            !all.contains("answered"),
            "{request:?} answered here:\n{all}"
        );
        let expected = [
            "fallback POST /publish 3 bytes".to_owned(),
            format!("fallback POST /publish {} bytes", big.len()),
            "fallback POST /publish 2 bytes".to_owned(),
            "400 Bad Request".to_owned(),
        ];
        assert!(
            expected.iter().any(|e| all.contains(e.as_str())),
            "{request:?} got:\n{all}"
        );
    }
}

#[tokio::test]
async fn connection_close_head_and_a_stream_after_answers() {
    let broker = Broker::new();
    let (addr, _closing) = start(&broker, Duration::from_secs(10)).await;
    // `Connection: close` is honoured and said.
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(
            b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\na",
        )
        .await
        .unwrap();
    let all = read_to_close(&mut socket).await;
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(all.contains("\r\nconnection: close\r\n"), "{all}");
    assert!(all.ends_with("\r\n\r\nanswered 1 bytes"), "{all}");

    // HEAD: the length of the body, not the body; then a stream on the
    // same connection.
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(
            b"HEAD /publish HTTP/1.1\r\nHost: x\r\n\r\nGET /events HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
    let seen = read_until(&mut socket, "text/event-stream").await;
    assert!(seen.contains("content-length: 16\r\n"), "{seen}");
    assert!(
        !seen.contains("answered 0 bytes"),
        "a HEAD answer has no body: {seen}"
    );
    broker.broadcast_data("live").unwrap();
    read_until(&mut socket, "data: live").await;
}

#[tokio::test]
async fn what_an_answer_publishes_reaches_parked_subscribers_before_it() {
    // Which task wrote each frame the broker wrote to a lent socket.
    let direct = Arc::new(Mutex::new(Vec::new()));
    let config = BrokerConfig::default()
        .write_burst(Duration::ZERO)
        .on_direct_write({
            let direct = direct.clone();
            move |event, _count| {
                let task = tokio::task::try_id().map(|id| id.to_string());
                direct
                    .lock()
                    .unwrap()
                    .push((task, String::from_utf8_lossy(event).into_owned()));
            }
        });
    let broker = Broker::with_config(config);
    let (addr, _closing) = start(&broker, Duration::from_secs(10)).await;
    let mut subscriber = TcpStream::connect(addr).await.unwrap();
    subscriber
        .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut subscriber, "text/event-stream").await;
    // Time to find nothing to write and lend its socket while it sleeps.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut publisher = TcpStream::connect(addr).await.unwrap();
    publisher
        .write_all(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst")
        .await
        .unwrap();
    let answer = read_until(&mut publisher, "answered 5 bytes").await;
    let task = answer
        .lines()
        .find_map(|line| line.strip_prefix("x-task: "))
        .expect("the answering task")
        .to_owned();
    // Delivery went first: on loopback, the event already waits in the
    // subscriber's socket once the answer has arrived (read without
    // waiting, past tokio's readiness).
    let mut subscriber = subscriber.into_std().unwrap();
    let mut waiting = [0u8; 1024];
    let n = std::io::Read::read(&mut subscriber, &mut waiting).expect("written before the answer");
    let waiting = String::from_utf8_lossy(&waiting[..n]);
    assert!(waiting.contains("data: first"), "{waiting}");
    let direct = direct.lock().unwrap().clone();
    assert!(
        direct.iter().any(
            |(by, event)| by.as_deref() == Some(task.as_str()) && event.contains("data: first")
        ),
        "written by the answering task {task}, not a writer task: {direct:?}"
    );
}

/// What the server sends until it has sent `needle`, within 5 s.
async fn read_until(socket: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let mut chunk = [0u8; 1024];
        let n = timeout(deadline - Instant::now(), socket.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("{needle:?} in time"))
            .unwrap();
        assert_ne!(n, 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(seen).unwrap()
}

#[tokio::test]
async fn each_read_of_a_request_has_the_whole_read_timeout() {
    let broker = Broker::new();
    let read_timeout = Duration::from_secs(2);
    let (addr, _closing) = start(&broker, read_timeout).await;
    let head = b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n";

    // The head within the timeout, then the body within the timeout of
    // the head (not of the connection): answered.
    let mut socket = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(read_timeout * 3 / 5).await;
    socket.write_all(head).await.unwrap();
    tokio::time::sleep(read_timeout * 3 / 5).await;
    socket.write_all(b"ab").await.unwrap();
    read_until(&mut socket, "answered 2 bytes").await;

    // A body that never comes: the connection ends after the timeout,
    // without an answer.
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(head).await.unwrap();
    let started = Instant::now();
    let all = timeout(read_timeout * 3, async {
        let mut all = Vec::new();
        let _ = socket.read_to_end(&mut all).await;
        all
    })
    .await
    .expect("closed after the read timeout");
    assert!(all.is_empty(), "{}", String::from_utf8_lossy(&all));
    assert!(
        started.elapsed() >= read_timeout * 9 / 10,
        "closed too soon"
    );
}

#[tokio::test]
async fn idle_connections_end_when_closing_or_after_the_read_timeout() {
    let broker = Broker::new();
    // Long enough for a loaded machine to read the first request in time.
    let (addr, _closing) = start(&broker, Duration::from_secs(1)).await;
    let post = b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na";

    // Idle past the read timeout after an answer: closed, like hyper's
    // header read timeout.
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(post).await.unwrap();
    let started = Instant::now();
    let all = read_to_close(&mut socket).await;
    assert!(all.contains("answered 1 bytes"), "{all}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed too soon"
    );

    // Closing: an idle kept-alive connection ends at once.
    let (long_addr, long_closing) = start(&broker, Duration::from_secs(30)).await;
    let mut socket = TcpStream::connect(long_addr).await.unwrap();
    socket.write_all(post).await.unwrap();
    let mut first = [0u8; 256];
    let n = timeout(Duration::from_secs(5), socket.read(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).contains("answered 1 bytes"));
    long_closing.send(true).unwrap();
    let started = Instant::now();
    let rest = read_to_close(&mut socket).await;
    assert!(rest.is_empty(), "{rest}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
