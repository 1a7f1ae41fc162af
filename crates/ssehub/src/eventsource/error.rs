//! What can go wrong for an [`EventSource`](super::EventSource).

use http::StatusCode;

use crate::parse::ParseError;

/// An error of an [`EventSource`](super::EventSource), from [`Builder::build`](super::Builder::build)
/// or as an item of the stream.
///
/// In the stream, an error is either followed by a reconnection (like the `error` event a
/// browser fires while its `readyState` is `CONNECTING`) or is the last item, after which the
/// stream ends and no request is made again (the browser's `CLOSED`).
/// [`is_fatal`](Error::is_fatal) tells which.
///
/// | variant | when | then |
/// | --- | --- | --- |
/// | [`InvalidUrl`](Error::InvalidUrl), [`InvalidHeader`](Error::InvalidHeader), [`InvalidLastEventId`](Error::InvalidLastEventId) | [`build`](super::Builder::build) | no stream |
/// | [`Http`](Error::Http) | a status other than 200 (204 included) | stops for good |
/// | [`ContentType`](Error::ContentType) | a `Content-Type` other than `text/event-stream` | stops for good |
/// | [`Request`](Error::Request) | the request cannot be made at all | stops for good |
/// | [`Transport`](Error::Transport) | connecting failed or the connection broke | reconnects |
/// | [`Timeout`](Error::Timeout) | nothing arrived within the idle timeout | reconnects |
/// | [`StreamEnded`](Error::StreamEnded) | the server ended the response | reconnects |
/// | [`Parse`](Error::Parse) | an event over the size limit was dropped | goes on reading |
///
/// ```
/// use ssehub::eventsource::Error;
///
/// let error = Error::Http(http::StatusCode::NO_CONTENT);
/// assert!(error.is_fatal());
/// assert_eq!(error.to_string(), "server answered 204 No Content");
/// assert!(!Error::StreamEnded.is_fatal());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL does not parse, or its scheme is not `http` or `https`.
    #[error("invalid event source URL: {0}")]
    InvalidUrl(String),
    /// A header given to the [`Builder`](super::Builder) is not a valid name or value.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// The initial last event id contains NUL, CR or LF, which no event stream can carry.
    #[error("invalid last event id: it must not contain NUL, CR or LF")]
    InvalidLastEventId,
    /// The server answered with a status other than `200 OK`: the stream stops for good. A
    /// `204 No Content` is how a server asks a client to stop.
    #[error("server answered {0}")]
    Http(StatusCode),
    /// The `Content-Type` of a `200 OK` response is not `text/event-stream` (parameters such as
    /// `charset` are allowed): the stream stops for good. Holds the value received, if any.
    #[error("server answered with content type {0:?}, not text/event-stream")]
    ContentType(Option<String>),
    /// The request could not be made at all (reqwest refused to build it); retrying cannot
    /// help, so the stream stops for good.
    #[error("the request could not be made: {0}")]
    Request(#[source] reqwest::Error),
    /// Connecting failed, or the connection broke while reading: a reconnection follows.
    #[error("connection failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// Nothing arrived within the [idle timeout](super::Builder::idle_timeout), neither the
    /// response head nor any body bytes: the connection is dropped and a reconnection follows.
    #[error("no data from the server within the idle timeout")]
    Timeout,
    /// The server ended the response normally: a reconnection follows, as in a browser.
    #[error("the server ended the event stream")]
    StreamEnded,
    /// An event exceeded the [size limit](super::Builder::max_event_size) and was dropped; the
    /// stream goes on with the next event, on the same connection.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

impl Error {
    /// Whether the stream ends after this error (no reconnection, no further request).
    /// Errors from [`build`](super::Builder::build) are fatal too.
    ///
    /// ```
    /// use ssehub::eventsource::Error;
    ///
    /// assert!(Error::ContentType(Some("text/html".into())).is_fatal());
    /// assert!(!Error::Timeout.is_fatal());
    /// ```
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::InvalidUrl(_)
            | Error::InvalidHeader(_)
            | Error::InvalidLastEventId
            | Error::Http(_)
            | Error::ContentType(_)
            | Error::Request(_) => true,
            Error::Transport(_) | Error::Timeout | Error::StreamEnded | Error::Parse(_) => false,
        }
    }
}
