//! The accept loop's one step, shared by the lean and the TLS servers.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

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
