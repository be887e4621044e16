//! Idle and stall detection for HTTP/2 connections, which hyper times out neither way: a
//! connection that moves no bytes for `idle_timeout` is drained, and one whose client keeps a
//! frame or a header block in transit past the head deadline (HTTP/2 slowloris,
//! CONTINUATION trickle) is dropped.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// "Nothing in transit" in the `*_since_ms` fields.
const NONE: u64 = u64::MAX;

/// When the connection last moved bytes, and since when a client frame or header block has
/// been in transit, as milliseconds since it opened.
pub(super) struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
    frame_since_ms: AtomicU64,
    block_since_ms: AtomicU64,
}

impl Activity {
    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    /// Counts as activity now (also used when the gateway itself starts a goodbye).
    pub(super) fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Resolves once a frame or a header block has been in transit for `timeout`.
    pub(super) async fn stalled(&self, timeout: Duration) {
        loop {
            let frame = self.frame_since_ms.load(Ordering::Relaxed);
            let since = frame.min(self.block_since_ms.load(Ordering::Relaxed));
            let deadline = match since {
                NONE => Instant::now() + timeout,
                since => self.opened + Duration::from_millis(since) + timeout,
            };
            if since != NONE && Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// Resolves once `timeout` has passed without any bytes moving.
    pub(super) async fn expired(&self, timeout: Duration) {
        loop {
            let last = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Wraps `io` so that every read or write that moves bytes counts as activity.
pub(super) fn track<IO>(io: IO) -> (ActivityIo<IO>, Arc<Activity>) {
    let activity = Arc::new(Activity {
        opened: Instant::now(),
        last_ms: AtomicU64::new(0),
        frame_since_ms: AtomicU64::new(NONE),
        block_since_ms: AtomicU64::new(NONE),
    });
    (
        ActivityIo {
            inner: io,
            activity: activity.clone(),
            frames: FrameCursor::default(),
        },
        activity,
    )
}

pub(super) struct ActivityIo<IO> {
    inner: IO,
    activity: Arc<Activity>,
    frames: FrameCursor,
}

/// Follows HTTP/2 frame boundaries (RFC 9113 4.1) in what the client sends; hyper parses the
/// frames themselves, this only needs their lengths and the END_HEADERS flag.
struct FrameCursor {
    preface_left: usize,
    header: [u8; 9],
    header_len: usize,
    payload_left: usize,
    block_open: bool,
}

impl Default for FrameCursor {
    fn default() -> Self {
        FrameCursor {
            preface_left: PREFACE_LEN,
            header: [0; 9],
            header_len: 0,
            payload_left: 0,
            block_open: false,
        }
    }
}

const PREFACE_LEN: usize = 24;
const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

impl FrameCursor {
    /// Consumes `bytes` and records in `activity` what is in transit after them.
    fn advance(&mut self, mut bytes: &[u8], activity: &Activity) {
        let was_open = self.block_open;
        let mut completed = false;
        while !bytes.is_empty() {
            let (used, done) = self.step(bytes);
            bytes = &bytes[used..];
            completed |= done;
        }
        let now = activity.now_ms();
        let mid_frame =
            (1..PREFACE_LEN).contains(&self.preface_left) || self.header_len > 0 || self.payload_left > 0;
        // A completed frame is progress: only a single frame that takes too long is a stall.
        let frame_since = match (mid_frame, completed) {
            (false, _) => NONE,
            (true, true) => now,
            (true, false) => activity.frame_since_ms.load(Ordering::Relaxed).min(now),
        };
        activity.frame_since_ms.store(frame_since, Ordering::Relaxed);
        // A header block is measured from its HEADERS frame to its END_HEADERS, however many
        // CONTINUATION frames come between.
        match (was_open, self.block_open) {
            (false, true) => activity.block_since_ms.store(now, Ordering::Relaxed),
            (_, false) => activity.block_since_ms.store(NONE, Ordering::Relaxed),
            (true, true) => {}
        }
    }

    /// One step over the front of `bytes`: how many it used and whether a frame completed.
    fn step(&mut self, bytes: &[u8]) -> (usize, bool) {
        if self.preface_left > 0 {
            let used = self.preface_left.min(bytes.len());
            self.preface_left -= used;
            return (used, false);
        }
        if self.payload_left > 0 {
            let used = self.payload_left.min(bytes.len());
            self.payload_left -= used;
            return (used, self.payload_left == 0);
        }
        let used = (9 - self.header_len).min(bytes.len());
        self.header[self.header_len..self.header_len + used].copy_from_slice(&bytes[..used]);
        self.header_len += used;
        if self.header_len < 9 {
            return (used, false);
        }
        self.header_len = 0;
        let [l0, l1, l2, kind, flags, ..] = self.header;
        self.payload_left = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        let ends_block = flags & END_HEADERS != 0;
        match kind {
            HEADERS | PUSH_PROMISE => self.block_open = !ends_block,
            CONTINUATION if ends_block => self.block_open = false,
            _ => {}
        }
        (used, self.payload_left == 0)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ActivityIo<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some(fresh) = buf.filled().get(before..).filter(|fresh| !fresh.is_empty()) {
            this.activity.touch();
            this.frames.advance(fresh, &this.activity);
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ActivityIo<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut bytes = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        bytes.extend_from_slice(payload);
        bytes
    }

    fn in_transit(activity: &Activity) -> (bool, bool) {
        let frame = activity.frame_since_ms.load(Ordering::Relaxed) != NONE;
        let block = activity.block_since_ms.load(Ordering::Relaxed) != NONE;
        (frame, block)
    }

    #[tokio::test]
    async fn frames_and_header_blocks_in_transit_are_tracked() {
        let (_, activity) = track(());
        let mut cursor = FrameCursor::default();
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        cursor.advance(&preface[..10], &activity);
        assert_eq!(in_transit(&activity), (true, false), "half a preface");
        cursor.advance(&preface[10..], &activity);
        assert_eq!(in_transit(&activity), (false, false));
        let settings = frame(0x4, 0, &[0; 6]);
        cursor.advance(&settings[..4], &activity);
        assert_eq!(in_transit(&activity), (true, false), "half a frame head");
        cursor.advance(&settings[4..], &activity);
        assert_eq!(in_transit(&activity), (false, false));
        // HEADERS without END_HEADERS opens a block that CONTINUATION frames keep open.
        cursor.advance(&frame(HEADERS, 0, b"abc"), &activity);
        assert_eq!(in_transit(&activity), (false, true));
        cursor.advance(&frame(CONTINUATION, 0, b"d"), &activity);
        assert_eq!(in_transit(&activity), (false, true));
        cursor.advance(&frame(CONTINUATION, END_HEADERS, b"e"), &activity);
        assert_eq!(in_transit(&activity), (false, false));
    }
}
