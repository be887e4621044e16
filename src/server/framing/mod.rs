//! Independent HTTP/1.1 request-framing check on the raw client bytes, because hyper silently
//! "fixes" ambiguous framing (drops Content-Length next to Transfer-Encoding, drops duplicate
//! identical Content-Length lines) where our contract demands a 400 and a closed connection.
//!
//! `scanner` follows the byte stream and judges each head; `FramingGuard` is the IO wrapper
//! that feeds it and enforces the head deadline; `FramingVerdicts` hands verdicts to the service.

mod scanner;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use scanner::{Scanner, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingViolation {
    ContentLengthWithTransferEncoding,
    DuplicateContentLength,
    InvalidContentLength,
    DuplicateTransferEncoding,
    UnsupportedTransferEncoding,
    Unparseable,
}

type Verdict = Result<(), FramingViolation>;

/// Verdicts per request head in arrival order, shared between the IO guard and the service.
#[derive(Debug, Default)]
pub struct FramingVerdicts {
    queue: Mutex<VecDeque<Verdict>>,
    stopped: AtomicBool,
}

impl FramingVerdicts {
    /// The service calls this once per request, in arrival order (HTTP/1.1 requests on one
    /// connection are handled strictly in order). An empty queue means the scanner lost sync or
    /// gave up, so the answer fails closed.
    pub fn next_request(&self) -> Result<(), FramingViolation> {
        self.queue()
            .pop_front()
            .unwrap_or(Err(FramingViolation::Unparseable))
    }

    /// After a 101 (or a 2xx to CONNECT) the bytes are an opaque tunnel, not HTTP.
    pub fn stop_scanning(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    fn push(&self, verdict: Verdict) {
        self.queue().push_back(verdict);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<Verdict>> {
        // A panic elsewhere must not turn into a panic on the IO path.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Transparent IO wrapper that scans the request direction and enforces the head deadline.
pub struct FramingGuard<IO> {
    io: IO,
    scanner: Scanner,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

pub fn guard<IO>(io: IO, header_read_timeout: Duration) -> (FramingGuard<IO>, Arc<FramingVerdicts>)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let verdicts = Arc::new(FramingVerdicts::default());
    let guard = FramingGuard {
        io,
        scanner: Scanner::new(Arc::clone(&verdicts)),
        timeout: header_read_timeout,
        deadline: None,
        armed: false,
    };
    (guard, verdicts)
}

impl<IO> FramingGuard<IO> {
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    fn honour_stop(&mut self) {
        if self.scanner.state != State::Off && self.scanner.verdicts.is_stopped() {
            self.scanner.stop();
            self.armed = false;
        }
    }

    fn deadline_passed(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.deadline {
            Some(sleep) if self.armed => sleep.as_mut().poll(cx).is_ready(),
            _ => false,
        }
    }

    /// A fresh deadline per head: restarting it on every read would let a slow client trickle
    /// bytes forever, never restarting it would charge one head for its predecessors' time.
    fn rearm(&mut self, head_completed: bool) {
        if !self.scanner.head_pending() {
            self.armed = false;
            return;
        }
        if self.armed && !head_completed {
            return;
        }
        // An unrepresentable deadline means "never": the caller asked for no practical limit.
        let Some(at) = Instant::now().checked_add(self.timeout) else {
            self.armed = false;
            return;
        };
        match &mut self.deadline {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
        }
        self.armed = true;
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FramingGuard<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.honour_stop();
        // Polled before the read so that the waker is registered even when the read is Pending.
        if this.deadline_passed(cx) {
            let err = io::Error::new(io::ErrorKind::TimedOut, "request head read timed out");
            return Poll::Ready(Err(err));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let fresh = buf.filled().get(before..).unwrap_or_default();
        if !fresh.is_empty() && this.scanner.state != State::Off {
            let completed = this.scanner.feed(fresh);
            this.rearm(completed);
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FramingGuard<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
