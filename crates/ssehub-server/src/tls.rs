//! HTTPS: rustls in front of the same router, HTTP/2 or HTTP/1.1 chosen by
//! ALPN, write deadlines on the TCP socket underneath, graceful shutdown.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use ssehub::io::WriteTimeout;
use tokio::net::TcpListener;

use crate::listen::{serve_connections, serve_hyper};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS handshake that takes longer than this is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or parsing a PEM file failed.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the pair.
    #[error("TLS configuration: {0}")]
    Config(#[from] tokio_rustls::rustls::Error),
}

/// Loads a certificate chain and its private key, offering HTTP/2 and
/// HTTP/1.1 by ALPN.
///
/// # Errors
/// [`TlsError`] for unreadable or mismatched files.
///
/// ```
/// use std::path::Path;
/// let result = ssehub_server::tls::acceptor(Path::new("/no/cert.pem"), Path::new("/no/key.pem"));
/// assert!(result.is_err_and(|err| err.to_string().starts_with("/no/cert.pem")));
/// ```
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let pem_error = |path: &Path| {
        let path = path.display().to_string();
        move |err: tokio_rustls::rustls::pki_types::pem::Error| TlsError::Pem {
            path: path.clone(),
            reason: err.to_string(),
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(pem_error(cert))?
        .collect::<Result<_, _>>()
        .map_err(pem_error(cert))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem_error(key))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` over TLS until `shutdown` completes, then waits for the
/// open connections to finish (the hub's drain ends its streams).
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    write_timeout: Duration,
    head_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_connections(listener, shutdown, |tcp, peer, watcher, _| {
        let (acceptor, router) = (acceptor.clone(), router.clone());
        async move {
            let tls = match tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                acceptor.accept(WriteTimeout::new(tcp, write_timeout)),
            )
            .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, %err, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            if let Err(err) = serve_hyper(tls, router, watcher, peer, false, head_timeout).await {
                tracing::debug!(%peer, %err, "connection ended with an error");
            }
        }
    })
    .await
}
