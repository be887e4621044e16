//! Independent HTTP/1.1 request-head check on the raw client bytes, for two reasons: hyper
//! silently "fixes" ambiguous framing (drops Content-Length next to Transfer-Encoding, drops
//! duplicate identical Content-Length lines) where our contract demands a 400 and a closed
//! connection; and a head hyper's parser refuses gets hyper's own bare 400/431/414, without
//! HSTS or a JSON body. So hyper only ever sees heads that were judged first: an admitted head
//! as it came, a refused one as a stand-in request whose queued verdict makes the gateway
//! answer with its usual error response, after which the connection closes.
//!
//! `scanner` follows the byte stream and decides what hyper sees; `head` judges one head;
//! `FramingGuard` is the IO wrapper that feeds the scanner and enforces the head deadline;
//! `FramingVerdicts` hands verdicts to the service.

mod head;
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

/// An outbox grown past this by one large head is freed rather than pinned for the connection.
const KEEP_OUTBOX_CAPACITY: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingViolation {
    ContentLengthWithTransferEncoding,
    DuplicateContentLength,
    InvalidContentLength,
    DuplicateTransferEncoding,
    UnsupportedTransferEncoding,
    TransferEncodingInHttp10,
    /// Not a head hyper's parser accepts: bad request line, header line, or request target.
    MalformedHead,
    /// Over `max_header_bytes` (empty lines before it included) or too many header lines.
    HeadTooLarge,
    TargetTooLong,
    /// No verdict: the scanner lost sync or stopped judging.
    Unparseable,
}

type Verdict = Result<(), FramingViolation>;

/// Verdicts per request head in arrival order, shared between the IO guard and the service.
#[derive(Debug, Default)]
pub struct FramingVerdicts {
    queue: Mutex<VecDeque<Verdict>>,
    stopped: AtomicBool,
    refused: AtomicBool,
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

    /// A request that asked for an upgrade was answered without one: what the guard held
    /// after it is HTTP after all. Requests are answered in order and nothing after an upgrade
    /// request is judged before this, so it always concerns the request on hold.
    pub fn upgrade_refused(&self) {
        self.refused.store(true, Ordering::Release);
    }

    fn push(&self, verdict: Verdict) {
        self.queue().push_back(verdict);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn take_refused(&self) -> bool {
        self.refused.swap(false, Ordering::AcqRel)
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<Verdict>> {
        // A panic elsewhere must not turn into a panic on the IO path.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// IO wrapper that judges the request direction before hyper reads it and enforces the head
/// deadline; the response direction passes untouched.
pub struct FramingGuard<IO> {
    io: IO,
    scanner: Scanner,
    /// Bytes hyper may read that are not where the last read put them: a head that arrived in
    /// several reads, whatever followed it in the same read, or the stand-in. Usually empty.
    outbox: Vec<u8>,
    /// How much of `outbox` hyper has read.
    sent: usize,
    max_head_len: usize,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

/// `max_head_len` is `max_header_bytes`, which hyper is also configured with.
pub fn guard<IO>(
    io: IO,
    header_read_timeout: Duration,
    max_head_len: usize,
) -> (FramingGuard<IO>, Arc<FramingVerdicts>)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let verdicts = Arc::new(FramingVerdicts::default());
    let guard = FramingGuard {
        io,
        scanner: Scanner::new(Arc::clone(&verdicts), max_head_len),
        outbox: Vec::new(),
        sent: 0,
        max_head_len,
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

    /// Acts on what the gateway decided about an upgrade request.
    fn honour_decisions(&mut self) {
        let verdicts = &self.scanner.verdicts;
        match self.scanner.state {
            State::Off | State::Rejected => {}
            _ if verdicts.is_stopped() => {
                self.scanner.stop(&mut self.outbox);
                self.armed = false;
            }
            State::Held if verdicts.take_refused() => {
                let completed = self.scanner.resume(&mut self.outbox);
                self.rearm(completed);
            }
            _ => {}
        }
    }

    /// Copies what fits of the outbox into `buf`; whether anything was left to copy.
    fn deliver(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let pending = self.outbox.get(self.sent..).unwrap_or_default();
        if pending.is_empty() {
            return false;
        }
        let n = pending.len().min(buf.remaining());
        buf.put_slice(pending.get(..n).unwrap_or_default());
        self.sent += n;
        if self.sent == self.outbox.len() {
            self.sent = 0;
            if self.outbox.capacity() > KEEP_OUTBOX_CAPACITY {
                self.outbox = Vec::new();
            } else {
                self.outbox.clear();
            }
        }
        true
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
        this.honour_decisions();
        if this.deliver(buf) {
            return Poll::Ready(Ok(()));
        }
        // hyper has the stand-in and closes after answering it (an end of file here would
        // make hyper drop that answer), or is answering an upgrade request while enough is
        // held: either way it gets nothing now, and its own progress wakes it.
        let held_enough = this.scanner.state == State::Held && this.scanner.withheld() >= this.max_head_len;
        if this.scanner.state == State::Rejected || held_enough {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        loop {
            // Polled before the read so that the waker is registered even when the read is
            // Pending.
            if this.deadline_passed(cx) {
                let err = io::Error::new(io::ErrorKind::TimedOut, "request head read timed out");
                return Poll::Ready(Err(err));
            }
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
            let fresh = buf.filled().get(before..).unwrap_or_default();
            if fresh.is_empty() || this.scanner.state == State::Off {
                return Poll::Ready(Ok(()));
            }
            let fed = this.scanner.feed(fresh, &mut this.outbox);
            buf.set_filled(before + fed.keep);
            this.rearm(fed.completed);
            // The answer to an upgrade request may have come before what was just held.
            this.honour_decisions();
            this.deliver(buf);
            // Everything withheld (part of a head): returning no bytes would read as an end of
            // file, so read on.
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
        }
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
