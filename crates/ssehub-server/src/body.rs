//! A subscriber's response body: the broker's stream, plus the hub's
//! bookkeeping for as long as the connection lives.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use ssehub::SseBody;

use crate::admission::Slots;
use crate::hub::Membership;
use crate::metrics::first_generated_key;

pin_project_lite::pin_project! {
    /// Streams the broker's body and, when dropped (the client left or
    /// was closed), leaves the subscriber's group and gives its limits'
    /// slots back.
    pub(crate) struct HubBody {
        #[pin]
        inner: SseBody,
        membership: Membership,
        slots: Slots,
    }
}

impl HubBody {
    pub fn new(inner: SseBody, membership: Membership, slots: Slots) -> Self {
        Self {
            inner,
            membership,
            slots,
        }
    }
}

impl Body for HubBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && let Some(key) = first_generated_key(data)
        {
            // The oldest update of the chunk: the latency that matters.
            this.membership.core().metrics.written(key, 1);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
