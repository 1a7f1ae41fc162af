//! The Go `Serve` and `ServeFunc` helpers: pump events into a stream until
//! the source ends or the client leaves.

use std::future::{Future, poll_fn};
use std::pin::pin;

use futures_core::Stream;

use super::Sender;
use crate::event::Event;

/// How a [`serve`] or [`serve_fn`] call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Served {
    /// The source ran to completion; the stream was then ended cleanly.
    Finished,
    /// The client went away (or the stream was closed) first; the source was
    /// dropped at that point.
    Disconnected,
}

/// Sends every event of `events` to the client (Go `Serve`).
///
/// Returns when the source ends ([`Served::Finished`]) or as soon as the
/// client is gone ([`Served::Disconnected`]); the source is dropped then, so
/// whatever produces events learns of it. Keep-alive is the body's job and
/// happens meanwhile. Consumes the sender: if it is the last one, the
/// response ends after the last event is written.
///
/// Events that cannot be encoded are skipped with a `tracing` warning, so a
/// single bad event cannot end a long-lived stream.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use http_body_util::BodyExt;
/// use ssehub::{Event, Served, StreamConfig};
///
/// let config = StreamConfig::default().retry(None).keep_alive(None);
/// let (sender, body) = ssehub::stream::new(&config);
/// let (tx, mut rx) = tokio::sync::mpsc::channel(8);
/// let events = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
/// tokio::spawn(async move {
///     for i in 0..2 {
///         tx.send(Event::new(format!("tick {i}"))).await.unwrap();
///     }
/// });
/// let served = ssehub::serve(sender, events).await;
/// assert_eq!(served, Served::Finished);
/// let bytes = body.collect().await.unwrap().to_bytes();
/// assert_eq!(&bytes[..], b":\n\ndata: tick 0\n\ndata: tick 1\n\n");
/// # }
/// ```
pub async fn serve<S>(sender: Sender, events: S) -> Served
where
    S: Stream<Item = Event>,
{
    let mut events = pin!(events);
    let pump = async {
        while let Some(event) = poll_fn(|cx| events.as_mut().poll_next(cx)).await {
            match sender.send(event).await {
                Ok(()) => {}
                Err(crate::SendError::Invalid(err)) => {
                    tracing::warn!(%err, "skipping an event that cannot be encoded");
                }
                Err(_) => return Served::Disconnected,
            }
        }
        Served::Finished
    };
    tokio::select! {
        biased;
        () = sender.closed() => Served::Disconnected,
        served = pump => served,
    }
}

/// Runs `produce` with a clone of the sender until it returns or the client
/// leaves (Go `ServeFunc`).
///
/// When the client goes away first, the producer's future is dropped — the
/// Rust form of the Go context being cancelled — and the result is
/// `Ok(Served::Disconnected)`. An error returned by the producer is passed
/// through; either way the stream ends when `sender` (and the clone given to
/// the producer) are dropped.
///
/// # Errors
/// Whatever `produce` returns.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use ssehub::{Event, Served, StreamConfig};
///
/// let (sender, body) = ssehub::stream::new(&StreamConfig::default());
/// drop(body); // the client disconnects at once
/// let served = ssehub::serve_fn(sender, |send| async move {
///     let mut ticker = tokio::time::interval(Duration::from_millis(10));
///     for i in 0.. {
///         ticker.tick().await;
///         send.send(Event::new(format!("tick {i}"))).await?;
///     }
///     Ok::<_, ssehub::SendError>(())
/// })
/// .await;
/// assert_eq!(served, Ok(Served::Disconnected));
/// # }
/// ```
pub async fn serve_fn<F, Fut, E>(sender: Sender, produce: F) -> Result<Served, E>
where
    F: FnOnce(Sender) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let producer = produce(sender.clone());
    tokio::select! {
        biased;
        () = sender.closed() => Ok(Served::Disconnected),
        result = producer => match result {
            Ok(()) => Ok(Served::Finished),
            // A producer that failed because the client left is a disconnect,
            // not an error of its own.
            Err(_) if sender.is_closed() => Ok(Served::Disconnected),
            Err(err) => Err(err),
        },
    }
}
