//! Errors returned by the stream and broker APIs.
//!
//! Everything a caller or a network peer can cause is reported as one of these
//! types; nothing in ssehub panics on caller data.

use crate::event::{Event, EventError};
use crate::journal::JournalError;

/// Sending on a stream failed.
///
/// This is the counterpart of the Go package's `ErrStreamClosed` (the
/// [`SendError::Closed`] variant), plus the case of an event that cannot be
/// encoded on the wire.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use ssehub::{Event, SendError, StreamConfig};
///
/// let (sender, body) = ssehub::stream::new(&StreamConfig::default());
/// drop(body); // the client went away
/// let err = sender.send(Event::new("hi")).await.unwrap_err();
/// assert!(matches!(err, SendError::Closed));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The stream is closed: the client disconnected, or the stream was
    /// closed by [`Sender::close`](crate::Sender::close).
    #[error("stream closed")]
    Closed,
    /// The event cannot be encoded (for example an event type containing a
    /// line break); nothing was written.
    #[error("invalid event: {0}")]
    Invalid(#[from] EventError),
}

/// [`Sender::try_send`](crate::Sender::try_send) could not queue the event.
///
/// ```
/// use ssehub::{Event, StreamConfig, TrySendError};
///
/// let config = StreamConfig::default().buffer_events(1);
/// let (sender, _body) = ssehub::stream::new(&config);
/// sender.try_send(Event::new("first")).unwrap();
/// match sender.try_send(Event::new("second")) {
///     Err(TrySendError::Full(event)) => assert_eq!(event.data(), Some("second")),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError {
    /// The client's buffer is full; the event is handed back untouched.
    #[error("stream buffer full")]
    Full(Event),
    /// The stream is closed.
    #[error("stream closed")]
    Closed,
    /// The event cannot be encoded; nothing was written.
    #[error("invalid event: {0}")]
    Invalid(#[from] EventError),
}

impl From<TrySendError> for SendError {
    fn from(err: TrySendError) -> Self {
        match err {
            // A full buffer is only observable through `try_send`; callers who
            // fold it into `SendError` treat it like a closed stream.
            TrySendError::Full(_) | TrySendError::Closed => SendError::Closed,
            TrySendError::Invalid(e) => SendError::Invalid(e),
        }
    }
}

/// The `Last-Event-ID` a client sent could not be accepted.
///
/// ```
/// use ssehub::LastEventIdError;
///
/// let err = LastEventIdError::TooLong { len: 5000, max: 1024 };
/// assert_eq!(err.to_string(), "Last-Event-ID is 5000 bytes, more than the 1024 allowed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LastEventIdError {
    /// The value is longer than [`MAX_LAST_EVENT_ID_LEN`](crate::MAX_LAST_EVENT_ID_LEN).
    #[error("Last-Event-ID is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// Length of the value received, in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// A broker operation failed: the Go package's `ErrBrokerClosed`,
/// `ErrChannelNotFound` and `ErrClientNotFound`, plus an event that cannot
/// be encoded.
///
/// ```
/// let broker = ssehub::broker::Broker::new();
/// assert_eq!(broker.delete_channel("nope"), Err(ssehub::BrokerError::ChannelNotFound));
/// broker.close();
/// assert_eq!(broker.broadcast_data("late"), Err(ssehub::BrokerError::Closed));
/// ```
// PartialEq by hand: a journal error holds its cause as a trait object.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker is closed (Go `ErrBrokerClosed`).
    #[error("broker closed")]
    Closed,
    /// No such channel, or it was deleted (Go `ErrChannelNotFound`).
    #[error("channel not found")]
    ChannelNotFound,
    /// No such client, or it is gone (Go `ErrClientNotFound`).
    #[error("client not found")]
    ClientNotFound,
    /// The event cannot be encoded; nothing was published.
    #[error("invalid event: {0}")]
    Invalid(#[from] EventError),
    /// The broker's journal did not store the publish (it is unreachable,
    /// refused the record, or is not configured to work); see
    /// [`BrokerConfig::journal`](crate::broker::BrokerConfig::journal).
    /// Nothing was delivered by this broker, though with a remote journal a
    /// record whose acknowledgement was lost may still reach every replica.
    ///
    /// ```
    /// use ssehub::BrokerError;
    /// use ssehub::journal::JournalError;
    ///
    /// let err = BrokerError::from(JournalError::Config("no runtime".into()));
    /// assert!(matches!(err, BrokerError::Journal(JournalError::Config(_))));
    /// assert_eq!(err.to_string(), "journal: invalid journal configuration: no runtime");
    /// assert_eq!(err, BrokerError::from(JournalError::Config("no runtime".into())));
    /// ```
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
}

impl PartialEq for BrokerError {
    /// Journal errors are equal when they are of the same kind and say the
    /// same (their causes are not comparable).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Closed, Self::Closed)
            | (Self::ChannelNotFound, Self::ChannelNotFound)
            | (Self::ClientNotFound, Self::ClientNotFound) => true,
            (Self::Invalid(a), Self::Invalid(b)) => a == b,
            (Self::Journal(a), Self::Journal(b)) => {
                std::mem::discriminant(a) == std::mem::discriminant(b)
                    && a.to_string() == b.to_string()
            }
            _ => false,
        }
    }
}

impl Eq for BrokerError {}
