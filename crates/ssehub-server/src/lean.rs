//! Plain-HTTP serving with ssehub's lean server: subscriptions
//! (`GET /.well-known/mercure`) are written by `ssehub::server`, which keeps
//! no HTTP buffers for the life of a stream, and publications (`POST`) are
//! answered by it on kept-alive connections, so neither takes hyper's
//! path; every other request on the same port (the API, the page, CORS
//! preflights, h2c, chunked or oversized bodies) goes to hyper with the
//! bytes not yet used.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use ssehub::io::WriteTimeout;
use ssehub::server::{Rewind, Route, ServerConfig, serve_connection_routed};
use tokio::net::{TcpListener, TcpStream};

use crate::listen::{serve_connections, serve_hyper};
use crate::routes::{App, HUB_PATH, Peer, add_cors_headers, publish_response, subscribe_response};

/// The output of `future` if it completes without waiting. Dropping it
/// otherwise is harmless: a subscription does nothing that lasts before
/// its last wait.
fn ready_now<T>(future: impl Future<Output = T>) -> Option<T> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(value) => Some(value),
        std::task::Poll::Pending => None,
    }
}

/// Serves until `shutdown` completes, then waits for the open connections
/// to end (the hub's drain ends the streams).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    router: Router,
    write_timeout: Duration,
    head_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let config = ServerConfig::default()
        .write_timeout(write_timeout)
        .read_timeout(head_timeout);
    serve_connections(listener, shutdown, |socket, peer, watcher, closing| {
        let (app, router) = (app.clone(), router.clone());
        async move {
            // Set when the route passed the request's subscribe rate and
            // handed it on: hyper's turn must not charge it again.
            let rate_paid = AtomicBool::new(false);
            let route = |request: &http::request::Parts| {
                if request.uri.path() != HUB_PATH {
                    return Route::Fallback;
                }
                if request.method == http::Method::POST {
                    return Route::Answer {
                        max_body: app.settings.config.max_body,
                    };
                }
                if request.method != http::Method::GET {
                    return Route::Fallback;
                }
                // Answered here when it needs no waiting (always, unless a
                // replay must be read from a remote log); otherwise hyper
                // serves the request, which may wait. Only the join waits,
                // after every limit was passed.
                let from = Peer {
                    ip: Some(peer.ip()),
                    rate_paid: false,
                };
                let Some(mut response) = ready_now(subscribe_response(
                    &app,
                    &request.uri,
                    &request.headers,
                    None,
                    from,
                )) else {
                    rate_paid.store(true, Ordering::Relaxed);
                    return Route::Fallback;
                };
                add_cors_headers(&app, &request.headers, response.headers_mut());
                Route::Stream(response)
            };
            let answer = |request: http::request::Parts, body: Bytes| {
                let app = app.clone();
                async move {
                    let mut response =
                        publish_response(&app, &request.uri, &request.headers, &body).await;
                    add_cors_headers(&app, &request.headers, response.headers_mut());
                    response
                }
            };
            let fallback = |io: Rewind<TcpStream>| {
                let paid = rate_paid.load(Ordering::Relaxed);
                async move {
                    serve_hyper(
                        WriteTimeout::new(io, write_timeout),
                        router,
                        watcher,
                        peer,
                        paid,
                        head_timeout,
                    )
                    .await
                    .map_err(std::io::Error::other)
                }
            };
            let closing = move || closing.cancelled_owned();
            let served =
                serve_connection_routed(socket, config, closing, &route, &answer, fallback).await;
            if let Err(err) = served {
                tracing::debug!(%err, "connection ended with an error");
            }
        }
    })
    .await
}
