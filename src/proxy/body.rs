//! Request and response bodies as they stream through the gateway.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::sync::oneshot;

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
///
/// A body that no upstream has read yet can be had back for a retry: with a `reclaim` slot,
/// dropping it unread (as the client does when a connect fails) sends it there.
#[derive(Debug)]
pub struct RequestBody {
    /// `None`: no body (a retry of a request without one).
    inner: Option<Incoming>,
    remaining: u64,
    read: bool,
    reclaim: Option<oneshot::Sender<RequestBody>>,
}

impl RequestBody {
    pub fn new(inner: Incoming, max_bytes: u64) -> Self {
        RequestBody {
            inner: Some(inner),
            remaining: max_bytes,
            read: false,
            reclaim: None,
        }
    }

    pub(super) fn empty() -> Self {
        RequestBody {
            inner: None,
            remaining: 0,
            read: false,
            reclaim: None,
        }
    }

    /// This body, and where it goes if it is dropped before anything read it.
    pub(super) fn reclaimable(mut self) -> (Self, oneshot::Receiver<RequestBody>) {
        let (sender, receiver) = oneshot::channel();
        self.reclaim = Some(sender);
        (self, receiver)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let Some(reclaim) = self.reclaim.take() else {
            return;
        };
        if !self.read {
            let unread = RequestBody {
                inner: self.inner.take(),
                remaining: self.remaining,
                read: false,
                reclaim: None,
            };
            let _ = reclaim.send(unread);
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
        self.read = true;
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            let frame = match Pin::new(&mut *inner).poll_frame(cx) {
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
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}
