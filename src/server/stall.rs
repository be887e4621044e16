//! A deadline on writes that make no progress: a client that stops reading (slow read) would
//! otherwise hold its connection, its response and the upstream connection behind it forever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps `io` so that a write or flush stuck for `timeout` fails with `TimedOut`.
pub(super) fn guard<IO>(io: IO, timeout: Duration) -> StallGuard<IO> {
    StallGuard {
        io,
        timeout,
        deadline: None,
        armed: false,
    }
}

pub(super) struct StallGuard<IO> {
    io: IO,
    timeout: Duration,
    /// Allocated at the first stall and reused after.
    deadline: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<IO> StallGuard<IO> {
    /// Called with what the inner write returned: progress disarms, a first `Pending` arms.
    fn watch<T>(&mut self, cx: &mut Context<'_>, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.armed = false;
            return result;
        }
        if !self.armed {
            // An unrepresentable deadline means "never".
            let Some(at) = Instant::now().checked_add(self.timeout) else {
                return Poll::Pending;
            };
            match &mut self.deadline {
                Some(sleep) => sleep.as_mut().reset(at),
                None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.armed = true;
        }
        let expired = match &mut self.deadline {
            Some(sleep) => sleep.as_mut().poll(cx).is_ready(),
            None => false,
        };
        match expired {
            true => {
                let err = io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading");
                Poll::Ready(Err(err))
            }
            false => Poll::Pending,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for StallGuard<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for StallGuard<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.watch(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_flush(cx);
        this.watch(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_write_nobody_reads_fails_after_the_timeout_and_progress_resets_it() {
        let (near, mut far) = tokio::io::duplex(16);
        let mut guarded = guard(near, Duration::from_millis(200));
        guarded.write_all(&[0; 16]).await.expect("fits the buffer");
        let started = Instant::now();
        let stuck = guarded.write_all(&[0; 16]).await;
        assert_eq!(stuck.expect_err("nobody reads").kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
        // Reading frees room: the next write succeeds at once.
        let mut sink = [0; 32];
        tokio::io::AsyncReadExt::read(&mut far, &mut sink)
            .await
            .expect("read");
        guarded.write_all(&[0; 8]).await.expect("room again");
    }
}
