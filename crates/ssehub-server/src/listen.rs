//! What the lean and the TLS servers share: the accept loop's step and
//! serving a connection with hyper.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// The next accepted connection, or `None` once `shutdown` completes.
/// Accept errors (out of file descriptors, say) are logged and retried
/// after a pause instead of ending the server.
pub(crate) async fn accept_until<F: Future<Output = ()>>(
    listener: &TcpListener,
    shutdown: &mut Pin<&mut F>,
) -> Option<TcpStream> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => return Some(socket),
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = shutdown.as_mut() => return None,
        }
    }
}

/// Serves one connection with hyper (HTTP/1.1 or HTTP/2, whichever the
/// client speaks), watched by `graceful` so shutdown can wait for it.
pub(crate) async fn serve_hyper<I>(
    io: I,
    router: Router,
    watcher: Watcher,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(router));
    watcher.watch(connection.into_owned()).await
}
