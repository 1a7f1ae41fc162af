//! What the plain, lean and TLS servers share: the accept loop with its
//! graceful shutdown, and serving a connection with hyper under a
//! request-head deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use ssehub::io::WriteTimeout;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// The TCP peer of a request's connection, in its `ConnectInfo`, for every
/// server the hub runs (hyper alone, the lean one's fallback, TLS).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub SocketAddr);

/// Marks a request whose subscribe rate was already charged: the lean
/// server looked at it first and handed it on to hyper.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RatePaid;

/// The next accepted connection and its peer, or `None` once `shutdown`
/// completes.
/// Accept errors (out of file descriptors, say) are logged and retried
/// after a pause instead of ending the server.
async fn accept_until<F: Future<Output = ()>>(
    listener: &TcpListener,
    shutdown: &mut Pin<&mut F>,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = shutdown.as_mut() => return None,
        }
    }
}

/// Serves one connection from `peer` with hyper (HTTP/1.1 or HTTP/2,
/// whichever the client speaks), watched by `graceful` so shutdown can
/// wait for it. Its requests carry the peer's address (`ConnectInfo`, as
/// axum's own server sets it); the first also [`RatePaid`] if `rate_paid`.
///
/// A peer must send a complete request head within `head_timeout`: hyper
/// enforces it for every HTTP/1.1 head (its timer-driven header read
/// timeout, which it skips when no timer is given), and the first request
/// must reach the router within it too — that also covers the bytes hyper
/// reads before it knows the protocol (it waits for them without a
/// deadline of its own) and an HTTP/2 preface with no request after it.
/// Without this, a peer that never finishes a head keeps its descriptor
/// and buffers for ever.
pub(crate) async fn serve_hyper<I>(
    io: I,
    router: Router,
    watcher: Watcher,
    peer: SocketAddr,
    rate_paid: bool,
    head_timeout: Duration,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    builder.http2().timer(TokioTimer::new());
    let first_request = Arc::new(Notify::new());
    let paid = Arc::new(AtomicBool::new(rate_paid));
    let service = {
        let first_request = first_request.clone();
        // One atomic store per request: cheap next to routing it.
        router.map_request(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                first_request.notify_one();
                request.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
                if paid.swap(false, Ordering::Relaxed) {
                    request.extensions_mut().insert(RatePaid);
                }
                request
            },
        )
    };
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(watcher.watch(connection.into_owned()));
    tokio::select! {
        biased;
        result = connection.as_mut() => return result,
        () = first_request.notified() => {}
        () = tokio::time::sleep(head_timeout) => {
            return Err(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no complete request head in time",
            )));
        }
    }
    connection.await
}

/// Accepts connections until `shutdown` completes, each served in a task
/// of its own by `serve(socket, peer, watcher)`; then stops listening,
/// tells hyper's connections to finish and waits for every task to end
/// (the hub's drain ends the streams). The part the plain, lean and TLS
/// servers share: each supplies only what it does with a connection.
///
/// Sockets come with Nagle's delay off: an event is latency, not bulk.
/// A connection served by hyper is watched by `watcher`, so shutdown
/// closes it once its requests end, and the token given with it is
/// cancelled, for connections kept alive outside hyper; the wait covers the
/// rest too (the lean server's streams, a TLS handshake under way).
pub(crate) async fn serve_connections<S, F>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    serve: S,
) -> std::io::Result<()>
where
    S: Fn(TcpStream, SocketAddr, Watcher, CancellationToken) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    // For connections kept alive outside hyper (the lean server's): they
    // close at their next idle moment once this is cancelled.
    let closing = CancellationToken::new();
    let tasks = TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    while let Some((socket, peer)) = accept_until(&listener, &mut shutdown).await {
        let _ = socket.set_nodelay(true);
        tasks.spawn(serve(socket, peer, graceful.watcher(), closing.clone()));
    }
    drop(listener);
    closing.cancel();
    graceful.shutdown().await;
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Serves `router` with hyper alone (HTTP/1.1 and h2c) until `shutdown`
/// completes, then waits for the open connections to end (the hub's drain
/// ends its streams): `--stream-server hyper` on plain HTTP.
pub(crate) async fn serve_plain(
    listener: TcpListener,
    router: Router,
    write_timeout: Duration,
    head_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_connections(listener, shutdown, |socket, peer, watcher, _| {
        let router = router.clone();
        async move {
            let io = WriteTimeout::new(socket, write_timeout);
            if let Err(err) = serve_hyper(io, router, watcher, peer, false, head_timeout).await {
                tracing::debug!(%err, "connection ended with an error");
            }
        }
    })
    .await
}
