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
use crate::metrics::ring_key;
use crate::update::parse_generated;

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

/// The ring key of the position in the first hub-generated `id:` line of
/// `chunk`. Updates with publisher-chosen ids are not timed.
pub(crate) fn first_generated_key(chunk: &[u8]) -> Option<u64> {
    const FIELD: &[u8] = b"id: #";
    let start = chunk.windows(FIELD.len()).position(|w| w == FIELD)?;
    // Only at a line start: `id: #` inside data is not a field.
    if start > 0 && chunk[start - 1] != b'\n' {
        return None;
    }
    let value = &chunk[start + FIELD.len() - 1..];
    let end = value.iter().position(|&b| b == b'\n')?;
    parse_generated(std::str::from_utf8(&value[..end]).ok()?).map(ring_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_generated_id_at_a_line_start() {
        let chunk = b"event: x\nid: #0000000a-17\ndata: y\n\nid: #0000000a-18\ndata: z\n\n";
        assert_eq!(first_generated_key(chunk), Some(17));
        assert_eq!(first_generated_key(b"data: id: #0000000a-1\n\n"), None);
        assert_eq!(first_generated_key(b"id: urn:x\ndata: y\n\n"), None);
        assert_eq!(first_generated_key(b":\n\n"), None);
    }
}
