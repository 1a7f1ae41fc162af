//! Peers that never finish their request head: the hub closes them once
//! `--head-timeout` has passed, whichever server reads the head — the lean
//! stream server, hyper behind it (heads it hands over), hyper alone
//! (`--stream-server hyper`), hyper behind TLS — while a head that
//! completes in time, even a byte at a time, is served.

use std::time::{Duration, Instant};

use clap::Parser as _;
use ssehub_server::{Config, Running};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// The deadline under test; short so the tests are quick.
const HEAD_TIMEOUT: &str = "1s";
/// How long a closing may take beyond the deadline on a loaded machine.
const SLACK: Duration = Duration::from_secs(8);
/// A complete subscription request.
const SUBSCRIBE: &[u8] = b"GET /.well-known/mercure?match=t HTTP/1.1\r\nHost: h\r\n\r\n";

async fn hub(stream_server: &str) -> Running {
    hub_with(&["--stream-server", stream_server]).await
}

async fn hub_with(extra: &[&str]) -> Running {
    let mut args = vec![
        "ssehub",
        "--listen",
        "127.0.0.1:0",
        "--dev",
        "--head-timeout",
        HEAD_TIMEOUT,
    ];
    args.extend_from_slice(extra);
    ssehub_server::start(Config::parse_from(args))
        .await
        .unwrap()
}

/// Connects to the hub in plain TCP.
async fn tcp(running: &Running) -> TcpStream {
    TcpStream::connect(running.local_addr()).await.unwrap()
}

/// Writes `prefix` at once, then `drip` a byte every `every`, never the
/// end of the head; returns how long the hub kept the connection open and
/// what it answered (if anything) before closing it.
async fn stall(
    mut socket: impl AsyncRead + AsyncWrite + Unpin,
    prefix: &[u8],
    drip: &[u8],
    every: Duration,
) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(1) + SLACK;
    socket.write_all(prefix).await.unwrap();
    let mut drip = drip.iter();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        assert!(
            Instant::now() < deadline,
            "the hub still holds a connection whose head never ends after {:?}",
            start.elapsed()
        );
        tokio::select! {
            read = socket.read(&mut buf) => match read {
                Ok(0) | Err(_) => return (start.elapsed(), answer),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            () = tokio::time::sleep(every) => {
                if let Some(byte) = drip.next() {
                    // The hub may close between two bytes.
                    if socket.write_all(std::slice::from_ref(byte)).await.is_err() {
                        return (start.elapsed(), answer);
                    }
                }
            }
        }
    }
}

/// Every kind of unfinished head is closed after the deadline and not
/// before it, on the server named.
async fn unfinished_heads_are_closed(stream_server: &str) {
    let running = hub(stream_server).await;
    let endless = vec![b'a'; 4096];
    let mut big = b"GET /.well-known/mercure?match=t HTTP/1.1\r\nHost: h\r\n".to_vec();
    // Beyond the lean server's 8 KiB: it hands the connection to hyper.
    big.extend_from_slice(format!("X-Pad: {}\r\n", "p".repeat(9000)).as_bytes());
    let cases: [(&str, &[u8], &[u8]); 4] = [
        ("nothing at all", b"", b""),
        ("a byte at a time", b"", SUBSCRIBE.split_last().unwrap().1),
        (
            "a header that never ends",
            b"GET / HTTP/1.1\r\nX-Long: ",
            &endless,
        ),
        (
            "a head too large for the lean server, then silence",
            &big,
            b"",
        ),
    ];
    for (what, prefix, drip) in cases {
        let every = Duration::from_millis(100);
        let (held, answer) = stall(tcp(&running).await, prefix, drip, every).await;
        assert!(
            held >= Duration::from_millis(900),
            "{stream_server}, {what}: closed after {held:?}, before the deadline"
        );
        assert!(
            !String::from_utf8_lossy(&answer).contains(" 200 "),
            "{stream_server}, {what}: an unfinished head was served: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn lean_server_closes_unfinished_heads() {
    unfinished_heads_are_closed("lean").await;
}

#[tokio::test]
async fn hyper_server_closes_unfinished_heads() {
    unfinished_heads_are_closed("hyper").await;
}

/// Over TLS, the deadline starts once the handshake is done: a peer that
/// completes it and then sends half a head, or nothing, is closed too.
#[tokio::test]
async fn tls_server_closes_unfinished_heads() {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("ssehub-slow-heads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let running = hub_with(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
    for (what, prefix) in [("nothing", &b""[..]), ("half a head", &SUBSCRIBE[..20])] {
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = connector.connect(name, tcp(&running).await).await.unwrap();
        let (held, answer) = stall(tls, prefix, b"", Duration::from_millis(100)).await;
        assert!(
            held >= Duration::from_millis(900) && answer.is_empty(),
            "TLS, {what}: closed after {held:?} with {answer:?}"
        );
    }
    running.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A head that arrives slowly but within the deadline is served.
#[tokio::test]
async fn slow_but_complete_heads_are_served() {
    for stream_server in ["lean", "hyper"] {
        let running = hub(stream_server).await;
        let mut socket = TcpStream::connect(running.local_addr()).await.unwrap();
        for piece in SUBSCRIBE.chunks(SUBSCRIBE.len() / 4 + 1) {
            socket.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
                .await
                .expect("a response head in time")
                .unwrap();
            assert!(n > 0, "{stream_server}: closed before answering");
            head.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 200"), "{stream_server}: {head}");
        // The stream stays open past the head deadline: it is not a head.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        socket.write_all(b"").await.unwrap();
        let alive = tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buf)).await;
        assert!(
            !matches!(alive, Ok(Ok(0))),
            "{stream_server}: the stream was closed after the head deadline"
        );
        running.shutdown().await.unwrap();
    }
}

/// A deadline of zero would close every connection: refused at start, with
/// the flag named.
#[test]
fn a_zero_or_unreadable_head_timeout_is_refused() {
    for value in ["0s", "0", "soon"] {
        let err = Config::try_parse_from(["ssehub", "--head-timeout", value]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("--head-timeout"), "{value}: {message}");
    }
    let config = Config::try_parse_from(["ssehub", "--head-timeout", "1m 30s"]).unwrap();
    assert_eq!(config.head_timeout, Duration::from_secs(90));
    assert_eq!(
        Config::try_parse_from(["ssehub"]).unwrap().head_timeout,
        Duration::from_secs(10)
    );
}
