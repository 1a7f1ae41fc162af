//! What the lean and the TLS servers share: the accept loop's step and
//! serving a connection with hyper.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use ssehub::axum::WriteTimeoutListener;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

/// The TCP peer of a request's connection, in its `ConnectInfo`, for every
/// server the hub runs (axum's own, the lean one's fallback, TLS).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, WriteTimeoutListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, WriteTimeoutListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// Marks a request whose subscribe rate was already charged: the lean
/// server looked at it first and handed it on to hyper.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RatePaid;

/// The next accepted connection and its peer, or `None` once `shutdown`
/// completes.
/// Accept errors (out of file descriptors, say) are logged and retried
/// after a pause instead of ending the server.
pub(crate) async fn accept_until<F: Future<Output = ()>>(
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
pub(crate) async fn serve_hyper<I>(
    io: I,
    router: Router,
    watcher: Watcher,
    peer: SocketAddr,
    rate_paid: bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let paid = Arc::new(AtomicBool::new(rate_paid));
    let service = router.map_request(move |mut request: http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
        if paid.swap(false, Ordering::Relaxed) {
            request.extensions_mut().insert(RatePaid);
        }
        request
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    watcher.watch(connection.into_owned()).await
}
