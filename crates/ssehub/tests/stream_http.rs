//! Single-client streams over real TCP on 127.0.0.1, served by plain hyper
//! (the framework-neutral path) and by axum.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{RawResponse, serve_hyper};
use ssehub::{Event, Served, StreamConfig};
use tokio::time::{Instant, timeout};

fn fast_config() -> StreamConfig {
    StreamConfig::default()
        .keep_alive(Some(Duration::from_millis(100)))
        .retry(Some(Duration::from_millis(2500)))
}

#[tokio::test]
async fn headers_and_first_bytes_arrive_at_once() {
    let addr = serve_hyper(|parts| {
        ssehub::respond(&parts, &StreamConfig::default(), |sender| async move {
            // Never sends anything: the first bytes must still arrive.
            sender.closed().await;
        })
    })
    .await;
    let start = Instant::now();
    let mut response = RawResponse::get(addr, "/events", &[]).await;
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert_eq!(response.header("cache-control"), Some("no-cache"));
    assert_eq!(response.header("x-accel-buffering"), Some("no"));
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.header("content-length"), None);
    let first = response.read_until(b"\n\n", Duration::from_secs(1)).await;
    assert_eq!(first, b"retry: 3000\n\n");
}

#[tokio::test]
async fn keep_alive_comments_only_when_idle() {
    let addr = serve_hyper(|parts| {
        ssehub::respond(&parts, &fast_config(), |sender| async move {
            // Busy for 300 ms (an event every 20 ms), then idle.
            for i in 0..15 {
                let _ = sender.send(Event::new(i.to_string())).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sender.closed().await;
        })
    })
    .await;
    let mut response = RawResponse::get(addr, "/", &[]).await;
    let busy = response.read_for(Duration::from_millis(280)).await;
    assert!(
        !contains(&busy, b":\n\n"),
        "keep-alive while busy: {busy:?}"
    );
    let idle = response.read_for(Duration::from_millis(450)).await;
    let comments = count(&idle, b":\n\n");
    assert!(
        (2..=5).contains(&comments),
        "{comments} keep-alives in 450 ms idle"
    );
}

#[tokio::test]
async fn vanished_client_is_noticed_within_one_keep_alive_interval() {
    let disconnects = Arc::new(AtomicUsize::new(0));
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let config = {
        let disconnects = disconnects.clone();
        fast_config().on_disconnect(move |sender| {
            assert!(sender.is_closed());
            disconnects.fetch_add(1, Ordering::SeqCst);
            let _ = closed_tx.send(Instant::now());
        })
    };
    let addr = serve_hyper(move |parts| {
        ssehub::respond(&parts, &config, |sender| async move {
            // Only waits: the client must be noticed through keep-alives.
            sender.closed().await;
        })
    })
    .await;
    let mut response = RawResponse::get(addr, "/", &[]).await;
    response.read_until(b"\n\n", Duration::from_secs(1)).await;
    let dropped_at = Instant::now();
    drop(response);
    let closed_at = timeout(Duration::from_secs(2), closed_rx.recv())
        .await
        .expect("disconnect not noticed")
        .unwrap();
    let noticed_after = closed_at - dropped_at;
    assert!(
        noticed_after < Duration::from_millis(100 + 100),
        "noticed after {noticed_after:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        disconnects.load(Ordering::SeqCst),
        1,
        "on_disconnect exactly once"
    );
}

#[tokio::test]
async fn close_ends_the_response_cleanly_after_queued_events() {
    let addr = serve_hyper(|parts| {
        ssehub::respond(&parts, &fast_config(), |sender| async move {
            sender
                .send(Event::new("last words").with_id("9"))
                .await
                .unwrap();
            sender.close();
            assert!(sender.send_data("too late").await.is_err());
        })
    })
    .await;
    let mut response = RawResponse::get(addr, "/", &[]).await;
    let body = response.read_to_end(Duration::from_secs(2)).await;
    assert_eq!(body, b"retry: 2500\n\nid: 9\ndata: last words\n\n");
    assert!(
        response.saw_chunked_terminator(),
        "no 0-length chunk at the end"
    );
}

#[tokio::test]
async fn serve_fn_is_cancelled_when_the_client_leaves() {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let addr = serve_hyper(move |parts| {
        let done_tx = done_tx.clone();
        let (sender, body) = ssehub::stream::new(&fast_config());
        drop(parts);
        tokio::spawn(async move {
            let served = ssehub::serve_fn(sender, |send| async move {
                loop {
                    send.send_data("tick").await?;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
            let _ = done_tx.lock().unwrap().take().unwrap().send(served);
        });
        body.into_response().map(ssehub::ResponseBody::Stream)
    })
    .await;
    let mut response = RawResponse::get(addr, "/", &[]).await;
    response
        .read_until(b"data: tick\n\n", Duration::from_secs(1))
        .await;
    drop(response);
    let served = timeout(Duration::from_secs(2), done_rx)
        .await
        .expect("serve_fn still running");
    assert_eq!(
        served.unwrap(),
        Ok::<_, ssehub::SendError>(Served::Disconnected)
    );
}

#[tokio::test]
async fn serve_ends_the_stream_when_the_source_ends() {
    let addr = serve_hyper(|parts| {
        let (sender, body) = ssehub::stream::new(&fast_config().retry(None));
        drop(parts);
        tokio::spawn(async move {
            let events = futures_util::stream::iter((0..3).map(|i| Event::new(i.to_string())));
            assert_eq!(ssehub::serve(sender, events).await, Served::Finished);
        });
        body.into_response().map(ssehub::ResponseBody::Stream)
    })
    .await;
    let mut response = RawResponse::get(addr, "/", &[]).await;
    let body = response.read_to_end(Duration::from_secs(2)).await;
    assert_eq!(body, b":\n\ndata: 0\n\ndata: 1\n\ndata: 2\n\n");
}

#[tokio::test]
async fn last_event_id_header_is_raw_utf8_and_wins_over_query() {
    let addr = serve_hyper(|parts| {
        ssehub::respond(&parts, &fast_config().retry(None), |sender| async move {
            let id = sender.last_event_id().map(str::to_owned);
            let _ = sender.send_data(format!("{id:?}")).await;
        })
    })
    .await;
    let cases: [(&str, Headers, &str); 5] = [
        ("/", &[("last-event-id", "…".as_bytes())], "Some(\"…\")"),
        ("/?lastEventId=q", &[("last-event-id", b"h")], "Some(\"h\")"),
        ("/?lastEventId=q%20x", &[], "Some(\"q x\")"),
        (
            "/?last_event_id=m",
            &[("last-event-id", b"")],
            "Some(\"m\")",
        ),
        ("/", &[("last-event-id", b"")], "None"),
    ];
    for (path, headers, expected) in cases {
        let mut response = RawResponse::get(addr, path, headers).await;
        let body = response.read_to_end(Duration::from_secs(2)).await;
        assert_eq!(
            body,
            format!(":\n\ndata: {expected}\n\n").as_bytes(),
            "{path}"
        );
    }
    let long = vec![b'x'; ssehub::MAX_LAST_EVENT_ID_LEN + 1];
    let response = RawResponse::get(addr, "/", &[("last-event-id", &long)]).await;
    assert_eq!(response.status, 400);
}

#[tokio::test]
async fn no_content_stops_clients() {
    let addr =
        serve_hyper(|_parts| ssehub::no_content::<http_body_util::Empty<bytes::Bytes>>()).await;
    let mut response = RawResponse::get(addr, "/", &[]).await;
    assert_eq!(response.status, 204);
    assert!(
        response
            .read_to_end(Duration::from_secs(1))
            .await
            .is_empty()
    );
}

/// ENC-ATOMIC: many concurrent senders and a 5 ms keep-alive never interleave
/// inside an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_never_interleave_inside_an_event() {
    let config = fast_config()
        .keep_alive(Some(Duration::from_millis(5)))
        .retry(None);
    let addr = serve_hyper(move |parts| {
        ssehub::respond(&parts, &config, |sender| async move {
            let mut tasks = Vec::new();
            for task in 0..8 {
                let sender = sender.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..200 {
                        let data = format!("t{task}-{i}\nsecond line of t{task}-{i}");
                        sender
                            .send(Event::new(data).with_id(format!("{task}.{i}")))
                            .await
                            .unwrap();
                        if i % 50 == 0 {
                            tokio::time::sleep(Duration::from_millis(7)).await;
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        })
    })
    .await;
    let mut response = RawResponse::get(addr, "/", &[]).await;
    let body = response.read_to_end(Duration::from_secs(10)).await;
    let mut parser = ssehub::parse::Parser::new();
    let mut next = [0usize; 8];
    for item in parser.parse(&body) {
        if let ssehub::parse::Item::Message(m) = item {
            let (task, i) = m.last_event_id.split_once('.').unwrap();
            let (task, i): (usize, usize) = (task.parse().unwrap(), i.parse().unwrap());
            assert_eq!(m.data, format!("t{task}-{i}\nsecond line of t{task}-{i}"));
            assert_eq!(next[task], i, "order within one sender");
            next[task] += 1;
        }
    }
    assert_eq!(next, [200; 8]);
}

/// Extra request headers of a raw request.
type Headers<'a> = &'a [(&'a str, &'a [u8])];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    count(haystack, needle) > 0
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// HTTP-H2: over HTTP/2 (h2c) the response carries no connection-specific
/// header, and events still arrive.
#[tokio::test]
async fn http2_responses_have_no_connection_specific_headers() {
    use http_body_util::BodyExt;
    let addr = serve_hyper(|parts| {
        ssehub::respond(&parts, &fast_config().retry(None), |sender| async move {
            let _ = sender.send_data("over h2").await;
        })
    })
    .await;
    let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut request_sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(socket),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(format!("http://{addr}/events"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = request_sender.send_request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    for name in [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
    ] {
        assert!(response.headers().get(name).is_none(), "{name} on HTTP/2");
    }
    let body = timeout(Duration::from_secs(2), response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b":\n\ndata: over h2\n\n");
}

/// The axum extractor and handler helper over real TCP.
#[tokio::test]
async fn axum_last_event_id_extractor_and_handler() {
    use ssehub::axum::LastEventId;
    async fn resume(LastEventId(id): LastEventId) -> ssehub::SseBody {
        let (sender, body) = ssehub::stream::new_resuming(&StreamConfig::default().retry(None), id);
        tokio::spawn(async move {
            let _ = sender
                .send_data(format!("after {:?}", sender.last_event_id()))
                .await;
        });
        body
    }
    let app = axum::Router::new()
        .route("/resume", axum::routing::get(resume))
        .route(
            "/hello",
            axum::routing::get(ssehub::axum::handler(
                StreamConfig::default().retry(None),
                |sender, request| async move {
                    let _ = sender.send_data(request.uri.path().to_owned()).await;
                },
            )),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut response = RawResponse::get(addr, "/resume", &[("last-event-id", b"41")]).await;
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    let body = response.read_to_end(Duration::from_secs(2)).await;
    assert_eq!(body, b":\n\ndata: after Some(\"41\")\n\n");
    let mut response = RawResponse::get(addr, "/resume?lastEventId=7", &[]).await;
    let body = response.read_to_end(Duration::from_secs(2)).await;
    assert_eq!(body, b":\n\ndata: after Some(\"7\")\n\n");
    let long = vec![b'x'; ssehub::MAX_LAST_EVENT_ID_LEN + 1];
    let response = RawResponse::get(addr, "/resume", &[("last-event-id", &long)]).await;
    assert_eq!(response.status, 400);
    let mut response = RawResponse::get(addr, "/hello", &[]).await;
    let body = response.read_to_end(Duration::from_secs(2)).await;
    assert_eq!(body, b":\n\ndata: /hello\n\n");
}
