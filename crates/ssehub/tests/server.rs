//! The lean HTTP/1.1 server: the same wire as hyper's, read by our raw
//! client and an independent one, plus its write deadline.
#![cfg(feature = "server")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::RawResponse;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use ssehub::broker::{Broker, BrokerConfig};
use ssehub::server::{ServerConfig, serve};
use ssehub::{Event, StreamConfig};
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout};

async fn start(broker: &Broker, config: ServerConfig) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let broker = broker.clone();
    tokio::spawn(serve(
        listener,
        config,
        move |request: &http::request::Parts| {
            broker.handle_request(request, |client| {
                if let Some(topic) = request.uri.query() {
                    client.subscribe(topic).unwrap();
                }
            })
        },
    ));
    addr
}

async fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "condition not met in {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn headers_chunked_events_keep_alive_and_clean_end() {
    let broker = Broker::with_config(
        BrokerConfig::default()
            .keep_alive(Some(Duration::from_millis(50)))
            .generate_ids(false),
    );
    let addr = start(&broker, ServerConfig::default()).await;
    let mut response = RawResponse::get(addr, "/events?news", &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert_eq!(response.header("cache-control"), Some("no-cache"));
    assert_eq!(response.header("x-accel-buffering"), Some("no"));
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.header("content-length"), None);
    assert_eq!(
        response.read_until(b"\n\n", Duration::from_secs(1)).await,
        b"retry: 3000\n\n"
    );
    assert_eq!(
        response.read_until(b":\n\n", Duration::from_secs(1)).await,
        b":\n\n"
    );
    broker
        .channel("news")
        .unwrap()
        .broadcast_data("hello\nworld")
        .unwrap();
    let body = response
        .read_until(b"world\n\n", Duration::from_secs(1))
        .await;
    assert!(body.ends_with(b"data: hello\ndata: world\n\n"));
    broker.close_with(Event::with_type("bye", "")).unwrap();
    let rest = response.read_to_end(Duration::from_secs(1)).await;
    assert!(rest.ends_with(b"event: bye\ndata: \n\n"), "{rest:?}");
    assert!(response.saw_chunked_terminator());
}

#[tokio::test]
async fn a_client_that_leaves_is_noticed_at_once() {
    let broker = Broker::new();
    let addr = start(&broker, ServerConfig::default()).await;
    let mut response = RawResponse::get(addr, "/events", &[]).await;
    response.read_until(b"\n\n", Duration::from_secs(1)).await;
    assert_eq!(broker.clients(), 1);
    drop(response);
    wait_for(Duration::from_secs(1), || broker.clients() == 0).await;
}

#[tokio::test]
async fn refusals_are_short_plain_text() {
    let broker = Broker::new();
    let addr = start(&broker, ServerConfig::default().max_head_bytes(256)).await;
    for (request, status) in [
        ("POST /events HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(), "405"),
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(400)),
            "431",
        ),
        ("BLAH\r\n\r\n".to_owned(), "400"),
    ] {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = timeout(
            Duration::from_secs(2),
            tokio::io::AsyncReadExt::read_to_end(&mut socket, &mut answer),
        )
        .await
        .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        assert!(answer.contains("content-length:"), "{answer}");
    }
    let long_id = "x".repeat(ssehub::MAX_LAST_EVENT_ID_LEN + 1);
    let addr = start(&broker, ServerConfig::default()).await;
    let response = RawResponse::get(addr, "/", &[("last-event-id", long_id.as_bytes())]).await;
    assert_eq!(response.status, 400);
}

#[tokio::test]
async fn an_independent_client_reads_it_and_resumes() {
    let broker = Broker::new();
    let addr = start(&broker, ServerConfig::default()).await;
    let http = reqwest::Client::new();
    let mut events = http
        .get(format!("http://{addr}/events?room"))
        .send()
        .await
        .unwrap()
        .bytes_stream()
        .eventsource();
    wait_for(Duration::from_secs(1), || broker.clients() == 1).await;
    let room = broker.channel("room").unwrap();
    room.broadcast(Event::with_type("msg", "one")).unwrap();
    let first = timeout(Duration::from_secs(1), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((first.event.as_str(), first.data.as_str()), ("msg", "one"));
    drop(events);
    room.broadcast(Event::with_type("msg", "two")).unwrap();
    let mut events = http
        .get(format!("http://{addr}/events?room"))
        .header("last-event-id", &first.id)
        .send()
        .await
        .unwrap()
        .bytes_stream()
        .eventsource();
    let second = timeout(Duration::from_secs(1), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.data, "two");
}

#[tokio::test]
async fn a_stalled_client_is_dropped_by_the_write_deadline() {
    let broker = Broker::with_config(BrokerConfig::default().client_buffer_bytes(64 << 20));
    let addr = start(
        &broker,
        ServerConfig::default().write_timeout(Duration::from_millis(300)),
    )
    .await;
    let stalled = common::stalled_get(addr, "/events?room").await;
    wait_for(Duration::from_secs(1), || broker.clients() == 1).await;
    let room = broker.channel("room").unwrap();
    let payload = "x".repeat(64 * 1024);
    let start = Instant::now();
    while broker.clients() == 1 {
        assert!(start.elapsed() < Duration::from_secs(20), "never dropped");
        for _ in 0..8 {
            room.broadcast_data(payload.clone()).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stalled);
}

#[tokio::test]
async fn single_streams_work_too() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        ServerConfig::default(),
        |request: &http::request::Parts| {
            ssehub::respond(
                request,
                &StreamConfig::default().retry(None),
                |sender| async move {
                    for i in 0..3 {
                        sender.send_data(i.to_string()).await.unwrap();
                    }
                },
            )
        },
    ));
    let mut response = RawResponse::get(addr, "/", &[]).await;
    let body = response.read_to_end(Duration::from_secs(2)).await;
    assert_eq!(body, b":\n\ndata: 0\n\ndata: 1\n\ndata: 2\n\n");
}

/// One port, two servers: the lean writer for event streams, hyper for
/// everything the handler declines — with the bytes already read replayed.
#[tokio::test]
async fn declined_requests_reach_the_fallback_with_every_byte() {
    use http_body_util::BodyExt as _;
    use hyper_util::rt::TokioIo;

    let broker = Broker::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_broker = broker.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let broker = server_broker.clone();
            tokio::spawn(async move {
                let handler = |request: &http::request::Parts| {
                    (request.method == http::Method::GET && request.uri.path() == "/events")
                        .then(|| broker.handle_request(request, |c| c.subscribe("news").unwrap()))
                };
                let fallback = |io: ssehub::server::Rewind<tokio::net::TcpStream>| async move {
                    // Echo the body back: proves the replayed prefix and the
                    // rest of the socket arrive in order.
                    let service = hyper::service::service_fn(
                        |request: http::Request<hyper::body::Incoming>| async move {
                            let method = request.method().clone();
                            let body = request.into_body().collect().await?.to_bytes();
                            let mut text = format!("{method} ").into_bytes();
                            text.extend_from_slice(&body);
                            Ok::<_, hyper::Error>(http::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(text),
                            )))
                        },
                    );
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(io), service)
                        .await
                        .map_err(std::io::Error::other)
                };
                let _ = ssehub::server::serve_connection_with(
                    socket,
                    ServerConfig::default(),
                    &handler,
                    fallback,
                )
                .await;
            });
        }
    });

    // The stream goes through the lean writer.
    let mut events = RawResponse::get(addr, "/events", &[]).await;
    assert_eq!(events.status, 200);
    assert_eq!(events.header("connection"), Some("close"));
    broker
        .channel("news")
        .unwrap()
        .broadcast_data("hello")
        .unwrap();
    events
        .read_until(b"data: hello\n\n", Duration::from_secs(5))
        .await;

    // A POST whose body is larger than the first read, sent in two parts.
    let body = "x".repeat(10_000);
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body.as_bytes()[..100]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    socket.write_all(&body.as_bytes()[100..]).await.unwrap();
    let mut answer = Vec::new();
    timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut socket, &mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        answer.ends_with(&format!("POST {body}")),
        "{}",
        &answer[..200.min(answer.len())]
    );

    // A GET the handler declines goes to the fallback too.
    let other = RawResponse::get(addr, "/elsewhere", &[]).await;
    assert_eq!(other.status, 200);
}
