//! Request and response bodies as they stream through the gateway.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

/// What the gateway answers with: an upstream's streamed body or one it wrote itself.
pub type ResponseBody = Either<Incoming, Full<Bytes>>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client's body crossed `max_body_bytes` mid-stream.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds max_body_bytes")]
pub struct BodyTooLarge;

/// Reading the client's body failed (bad chunk framing, a reset stream): the client's fault,
/// told apart from the upstream's so that it answers 400, not 502.
#[derive(Debug, thiserror::Error)]
#[error("reading the client's request body failed: {0}")]
pub(super) struct ClientBodyFailed(hyper::Error);

/// The client's request body on its way upstream: counted against `max_body_bytes`, and
/// with trailers dropped (the gateway does not forward request trailers).
///
/// Crossing the limit ends the stream with `BodyTooLarge`, which makes the upstream client
/// abort the request: the upstream sees a broken request, never a silently truncated one.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    remaining: u64,
}

impl RequestBody {
    pub fn new(inner: Incoming, max_bytes: u64) -> Self {
        RequestBody {
            inner,
            remaining: max_bytes,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(ClientBodyFailed(e).into()))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            // Trailers are skipped; the loop then reads the end of the stream.
            if let Ok(data) = frame.into_data() {
                let len = data.len() as u64;
                if len > self.remaining {
                    return Poll::Ready(Some(Err(BodyTooLarge.into())));
                }
                self.remaining -= len;
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
