//! [`Sender`]: the handle a handler sends events with (the Go `Stream`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::shared::{PushError, Shared};
use crate::error::{SendError, TrySendError};
use crate::event::{self, Event};

/// Sends events to one connected client: the Go package's `Stream`.
///
/// Cheap to clone; every clone feeds the same response. The stream ends —
/// after everything queued has been written — when [`close`](Self::close) is
/// called or the last `Sender` is dropped. When the client goes away first,
/// every send fails with [`SendError::Closed`] and [`closed`](Self::closed)
/// resolves.
///
/// Events are validated and encoded once, in the caller's task; the response
/// body only moves the encoded bytes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ssehub::SendError> {
/// use ssehub::{Event, StreamConfig};
///
/// let (sender, body) = ssehub::stream::new(&StreamConfig::default());
/// sender.send(Event::with_type("greeting", "hello").with_id("1")).await?;
/// sender.send_data("plain message").await?;
/// sender.send_comment("just a comment").await?;
/// assert!(!sender.is_closed());
/// sender.close();
/// # drop(body);
/// # Ok(()) }
/// ```
pub struct Sender {
    shared: Arc<Shared>,
    last_event_id: Option<Arc<str>>,
}

impl Sender {
    pub(crate) fn new(shared: Arc<Shared>, last_event_id: Option<Arc<str>>) -> Self {
        shared.add_sender();
        Self {
            shared,
            last_event_id,
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The `Last-Event-ID` the client sent when it (re)connected, if any.
    ///
    /// Set when the stream was opened from a request (for example with
    /// [`respond`](crate::respond)); `None` for a first connection.
    ///
    /// ```
    /// let (sender, _body) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// assert_eq!(sender.last_event_id(), None);
    /// ```
    #[must_use]
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// Sends an event, waiting for room in the client's buffer.
    ///
    /// The wait is the backpressure a slow client exerts on this one sender;
    /// it never affects other streams. Use [`try_send`](Self::try_send) to
    /// never wait.
    ///
    /// # Errors
    /// [`SendError::Closed`] once the stream is closed, and
    /// [`SendError::Invalid`] for an event that cannot be encoded.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (sender, _body) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// sender.send(ssehub::Event::new("hello").with_id("7")).await.unwrap();
    /// # }
    /// ```
    pub async fn send(&self, event: Event) -> Result<(), SendError> {
        self.send_frame(event.encode()?).await
    }

    /// Sends an already encoded frame (see [`Event::encode`]), waiting for room.
    ///
    /// This is how one encoding is shared by many streams: encode once, clone
    /// the `Bytes` (a reference-count bump) into each stream.
    ///
    /// # Errors
    /// [`SendError::Closed`] once the stream is closed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let frame = ssehub::Event::new("for everyone").encode().unwrap();
    /// let (a, _body_a) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// let (b, _body_b) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// a.send_frame(frame.clone()).await.unwrap();
    /// b.send_frame(frame).await.unwrap();
    /// # }
    /// ```
    pub async fn send_frame(&self, frame: Bytes) -> Result<(), SendError> {
        loop {
            match self.shared.try_push(frame.clone()) {
                Ok(()) => return Ok(()),
                Err(PushError::Closed) => return Err(SendError::Closed),
                Err(PushError::Full) => self.shared.wait_for_room(frame.len()).await,
            }
        }
    }

    /// Queues an event without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] (with the event handed back) when the client's
    /// buffer is full, [`TrySendError::Closed`] once the stream is closed, and
    /// [`TrySendError::Invalid`] for an event that cannot be encoded.
    ///
    /// ```
    /// let (sender, _body) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// sender.try_send(ssehub::Event::new("no waiting")).unwrap();
    /// ```
    pub fn try_send(&self, event: Event) -> Result<(), TrySendError> {
        if self.shared.is_closed() {
            return Err(TrySendError::Closed);
        }
        let frame = event.encode()?;
        match self.shared.try_push(frame) {
            Ok(()) => Ok(()),
            Err(PushError::Full) => Err(TrySendError::Full(event)),
            Err(PushError::Closed) => Err(TrySendError::Closed),
        }
    }

    /// Sends a `message` event with `data` (Go `SendData`).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (sender, _body) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// sender.send_data("line one\nline two").await.unwrap();
    /// # }
    /// ```
    pub async fn send_data(&self, data: impl Into<String>) -> Result<(), SendError> {
        self.send(Event::new(data)).await
    }

    /// Sends an event of type `event` with `data` (Go `SendEvent`).
    ///
    /// # Errors
    /// As [`send`](Self::send); an event type with a line break is
    /// [`SendError::Invalid`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (sender, _body) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// sender.send_event("notification", "You have mail").await.unwrap();
    /// # }
    /// ```
    pub async fn send_event(
        &self,
        event: impl Into<String>,
        data: impl Into<String>,
    ) -> Result<(), SendError> {
        self.send(Event::with_type(event, data)).await
    }

    /// Sends `value` serialized as JSON in an event of type `event` (Go `SendJSON`).
    ///
    /// # Errors
    /// As [`send`](Self::send); a serialization failure is
    /// [`SendError::Invalid`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (sender, _body) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// #[derive(serde::Serialize)]
    /// struct User { name: &'static str }
    /// sender.send_json("user", &User { name: "Alice" }).await.unwrap();
    /// # }
    /// ```
    #[cfg(feature = "json")]
    pub async fn send_json<T: serde::Serialize + ?Sized>(
        &self,
        event: impl Into<String>,
        value: &T,
    ) -> Result<(), SendError> {
        self.send(Event::json(event, value)?).await
    }

    /// Sends a comment line, which clients ignore (Go `SendComment`).
    ///
    /// # Errors
    /// As [`send`](Self::send); a comment with a line break is
    /// [`SendError::Invalid`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (sender, _body) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// sender.send_comment("ping").await.unwrap();
    /// # }
    /// ```
    pub async fn send_comment(&self, text: &str) -> Result<(), SendError> {
        self.send_frame(event::comment(text)?).await
    }

    /// Tells the client how long to wait before reconnecting (Go `SendRetry`).
    ///
    /// # Errors
    /// As [`send`](Self::send); a value above
    /// [`MAX_RETRY_MS`](crate::event::MAX_RETRY_MS) is [`SendError::Invalid`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (sender, _body) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// sender.send_retry(std::time::Duration::from_secs(3)).await.unwrap();
    /// # }
    /// ```
    pub async fn send_retry(&self, retry: Duration) -> Result<(), SendError> {
        self.send_frame(event::retry_frame(retry)?).await
    }

    /// Whether the stream is closed (Go `IsClosed`).
    ///
    /// ```
    /// let (sender, body) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// assert!(!sender.is_closed());
    /// drop(body);
    /// assert!(sender.is_closed());
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Closes the stream (Go `Close`): nothing more is accepted, what is
    /// already queued is written, then the HTTP response ends.
    ///
    /// ```
    /// let (sender, _body) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// sender.close();
    /// assert!(sender.is_closed());
    /// ```
    pub fn close(&self) {
        self.shared.close();
    }

    /// Resolves once the stream is closed, for whatever reason (Go `Done`).
    ///
    /// Typical use is to stop producing events when the client leaves:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (sender, body) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// let waiter = tokio::spawn({
    ///     let sender = sender.clone();
    ///     async move { sender.closed().await }
    /// });
    /// drop(body); // the client disconnects
    /// waiter.await.unwrap();
    /// # }
    /// ```
    pub async fn closed(&self) {
        self.shared.wait_closed().await;
    }
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        Self::new(self.shared.clone(), self.last_event_id.clone())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shared.remove_sender();
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("last_event_id", &self.last_event_id)
            .field("closed", &self.is_closed())
            .finish()
    }
}
