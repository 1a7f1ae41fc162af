//! The HTTP side of a stream: response headers, `Last-Event-ID`, 204, and
//! [`respond`], the framework-neutral form of the Go `HandlerFunc`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use crate::error::LastEventIdError;
use crate::stream::{self, Sender, SseBody, StreamConfig};

/// Largest `Last-Event-ID` accepted, in bytes.
///
/// Ids this library generates are far shorter; the bound keeps a peer from
/// making every reconnect carry (and every lookup hash) an arbitrarily long
/// value.
pub const MAX_LAST_EVENT_ID_LEN: usize = 1024;

/// The request header a reconnecting client carries.
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Query parameters read, in order, when the header is absent: `lastEventId`
/// is what EventSource polyfills send, `last_event_id` what the current
/// Mercure protocol names, `lastEventID` what Mercure 0.x named.
pub const LAST_EVENT_ID_QUERY: [&str; 3] = ["lastEventId", "last_event_id", "lastEventID"];

const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// Reads the id a reconnecting client last saw.
///
/// The `Last-Event-ID` header is taken as raw bytes decoded as UTF-8 (invalid
/// sequences become U+FFFD, as browsers send what they received); when it is
/// absent, the `lastEventId`, `last_event_id` then `lastEventID` query
/// parameters are used.
/// The header wins when both are present. An empty value counts as absent.
///
/// # Errors
/// [`LastEventIdError::TooLong`] when the value exceeds
/// [`MAX_LAST_EVENT_ID_LEN`].
///
/// ```
/// let request = http::Request::get("/events?lastEventId=7")
///     .header("last-event-id", "42")
///     .body(())
///     .unwrap();
/// let (parts, ()) = request.into_parts();
/// assert_eq!(ssehub::last_event_id(&parts.headers, parts.uri.query()), Ok(Some("42".into())));
/// assert_eq!(ssehub::last_event_id(&http::HeaderMap::new(), Some("lastEventId=7")), Ok(Some("7".into())));
/// assert_eq!(ssehub::last_event_id(&http::HeaderMap::new(), None), Ok(None));
/// ```
pub fn last_event_id(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<String>, LastEventIdError> {
    let value = match headers.get(LAST_EVENT_ID).filter(|v| !v.is_empty()) {
        Some(header) => Some(String::from_utf8_lossy(header.as_bytes()).into_owned()),
        None => query.and_then(query_last_event_id),
    };
    match value {
        Some(v) if v.len() > MAX_LAST_EVENT_ID_LEN => Err(LastEventIdError::TooLong {
            len: v.len(),
            max: MAX_LAST_EVENT_ID_LEN,
        }),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

fn query_last_event_id(query: &str) -> Option<String> {
    LAST_EVENT_ID_QUERY.iter().find_map(|name| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.into_owned())
    })
}

/// Sets the headers every event-stream response carries:
/// `Content-Type: text/event-stream`, `Cache-Control: no-cache` and, unless
/// `accel_buffering` is false, `X-Accel-Buffering: no`.
///
/// No `Content-Length` and no connection-specific header is ever set, so
/// the same response is valid on HTTP/1.1 and HTTP/2.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// ssehub::set_stream_headers(&mut headers, true);
/// assert_eq!(headers["content-type"], "text/event-stream");
/// assert_eq!(headers["cache-control"], "no-cache");
/// assert_eq!(headers["x-accel-buffering"], "no");
/// ```
pub fn set_stream_headers(headers: &mut HeaderMap, accel_buffering: bool) {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if accel_buffering {
        headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    }
}

impl SseBody {
    /// Wraps the body in a `200 OK` event-stream response (see
    /// [`set_stream_headers`]).
    ///
    /// ```
    /// let (_sender, body) = ssehub::stream::new(&ssehub::StreamConfig::default());
    /// let response = body.into_response();
    /// assert_eq!(response.status(), 200);
    /// assert!(response.headers().get("content-length").is_none());
    /// ```
    #[must_use]
    pub fn into_response(self) -> Response<SseBody> {
        let accel = self.accel_buffering_header;
        let feed = self.feed.clone();
        let mut response = Response::new(self);
        set_stream_headers(response.headers_mut(), accel);
        if let Some(feed) = feed {
            feed.extend_response(response.extensions_mut());
        }
        response
    }
}

/// A `204 No Content` response: the way to tell a browser's EventSource to
/// stop reconnecting for good.
///
/// ```
/// let response: http::Response<String> = ssehub::no_content();
/// assert_eq!(response.status(), 204);
/// ```
#[must_use]
pub fn no_content<B: Default>() -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Answers an event-stream request by running `handler` in a new task with
/// the stream's [`Sender`]: the framework-neutral Go `HandlerFunc`.
///
/// The response is returned at once, so headers reach the client
/// immediately. `Last-Event-ID` is read from the request (see
/// [`last_event_id`]); an over-long one is answered `400 Bad Request`. The
/// handler's task is cancelled (its future dropped) as soon as the client
/// disconnects, and the response ends when the handler returns and its
/// `Sender` is dropped. Needs a tokio runtime.
///
/// Works with anything that speaks `http`: here under plain hyper.
///
/// ```no_run
/// use std::convert::Infallible;
/// use hyper::service::service_fn;
/// use hyper_util::rt::TokioIo;
/// use ssehub::{Event, StreamConfig};
///
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// loop {
///     let (socket, _) = listener.accept().await?;
///     let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
///         let (parts, _) = req.into_parts();
///         Ok::<_, Infallible>(ssehub::respond(&parts, &StreamConfig::default(), |sender| async move {
///             let _ = sender.send(Event::new("hello")).await;
///         }))
///     });
///     tokio::spawn(hyper::server::conn::http1::Builder::new()
///         .serve_connection(TokioIo::new(socket), service));
/// }
/// # }
/// ```
pub fn respond<F, Fut>(
    request: &http::request::Parts,
    config: &StreamConfig,
    handler: F,
) -> Response<ResponseBody>
where
    F: FnOnce(Sender) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let id = match last_event_id(&request.headers, request.uri.query()) {
        Ok(id) => id,
        Err(err) => return bad_request(&err.to_string()),
    };
    let (sender, body) = stream::new_resuming(config, id);
    let watcher = sender.clone();
    let task = handler(sender);
    tokio::spawn(async move {
        tokio::select! {
            biased;
            () = watcher.closed() => {}
            () = task => {}
        }
    });
    body.into_response().map(ResponseBody::Stream)
}

pub(crate) fn bad_request(reason: &str) -> Response<ResponseBody> {
    plain_text(StatusCode::BAD_REQUEST, reason)
}

/// A refusal: `status` with `reason` as a short plain-text body.
pub(crate) fn plain_text(status: StatusCode, reason: &str) -> Response<ResponseBody> {
    let text = Bytes::from(format!("{reason}\n"));
    let mut response = Response::new(ResponseBody::Error(Some(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Body of a [`respond`] response: the event stream, or the short
/// plain-text reason of a refused request.
#[derive(Debug)]
pub enum ResponseBody {
    /// The event stream.
    Stream(SseBody),
    /// The reason a request was refused; taken when written.
    Error(Option<Bytes>),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Stream(body) => Pin::new(body).poll_frame(cx),
            ResponseBody::Error(text) => Poll::Ready(text.take().map(|t| Ok(Frame::data(t)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Stream(body) => body.is_end_stream(),
            ResponseBody::Error(text) => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Stream(body) => body.size_hint(),
            ResponseBody::Error(text) => {
                SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64))
            }
        }
    }
}
