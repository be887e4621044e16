//! Independent HTTP/1.1 request-framing check on the raw client bytes, because hyper silently
//! "fixes" ambiguous framing (drops Content-Length next to Transfer-Encoding, drops duplicate
//! identical Content-Length lines) where our contract demands a 400 and a closed connection.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// hyper's default `max_buf_size`: a head hyper would accept is never one we gave up on.
const MAX_HEAD_LEN: usize = 8192 + 4096 * 100;
/// A buffer grown past this by one large head is freed rather than pinned for the connection.
const KEEP_HEAD_CAPACITY: usize = 16 * 1024;
/// Above hyper's default of 100, so every head hyper accepts also parses here.
const MAX_HEADERS: usize = 128;

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

/// Where the scanner is in the request stream; the chunk states mirror hyper's decoder so that
/// both agree on where each body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    ChunkStart,
    ChunkSize(u64),
    ChunkLws(u64),
    ChunkExt(u64),
    ChunkSizeLf(u64),
    ChunkData(u64),
    ChunkDataCr,
    ChunkDataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    /// Lost, violated, oversized or upgraded: later heads get no verdict, so they fail closed.
    Off,
}

#[derive(Debug)]
struct Scanner {
    state: State,
    head: Vec<u8>,
    head_started: bool,
    verdicts: Arc<FramingVerdicts>,
}

impl Scanner {
    fn new(verdicts: Arc<FramingVerdicts>) -> Self {
        Self {
            state: State::Head,
            head: Vec::new(),
            head_started: false,
            verdicts,
        }
    }

    /// Returns whether a head completed, so the caller restarts the deadline for the next one.
    fn feed(&mut self, mut data: &[u8]) -> bool {
        let mut completed = false;
        while !data.is_empty() {
            let (used, done) = self.step(data);
            completed |= done;
            data = data.get(used.max(1)..).unwrap_or_default();
        }
        completed
    }

    fn step(&mut self, data: &[u8]) -> (usize, bool) {
        let used = match self.state {
            State::Off => data.len(),
            State::Head => return self.scan_head(data),
            State::Body(left) => self.skip(left, data, State::Head, State::Body),
            State::ChunkData(left) => self.skip(left, data, State::ChunkDataCr, State::ChunkData),
            State::ChunkExt(size) => self.scan_extension(size, data),
            State::Trailer => self.scan_trailer(data),
            state => {
                self.state = data
                    .first()
                    .and_then(|&b| chunk_byte(state, b))
                    .unwrap_or(State::Off);
                1
            }
        };
        (used, false)
    }

    fn skip(&mut self, left: u64, data: &[u8], done: State, more: fn(u64) -> State) -> usize {
        let take = usize::try_from(left).map_or(data.len(), |left| left.min(data.len()));
        let rest = left.saturating_sub(take as u64);
        self.state = if rest == 0 { done } else { more(rest) };
        take
    }

    fn scan_extension(&mut self, size: u64, data: &[u8]) -> usize {
        // hyper rejects a bare LF inside an extension, so must we to stay in step with it.
        match memchr::memchr2(b'\r', b'\n', data) {
            None => data.len(),
            Some(i) => {
                let crlf = data.get(i) == Some(&b'\r');
                self.state = if crlf {
                    State::ChunkSizeLf(size)
                } else {
                    State::Off
                };
                i + 1
            }
        }
    }

    fn scan_trailer(&mut self, data: &[u8]) -> usize {
        match memchr::memchr(b'\r', data) {
            None => data.len(),
            Some(i) => {
                self.state = State::TrailerLf;
                i + 1
            }
        }
    }

    fn scan_head(&mut self, data: &[u8]) -> (usize, bool) {
        self.head_started = true;
        if self.head.is_empty() {
            // httparse skips empty lines before the request line; they are not part of the head.
            let blank = data.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
            if blank > 0 {
                return (blank, false);
            }
        }
        let Some(end) = find_head_end(&self.head, data) else {
            self.buffer_partial(data);
            return (data.len(), false);
        };
        if self.head.len() + end > MAX_HEAD_LEN {
            self.stop();
            return (data.len(), false);
        }
        let head = data.get(..end).unwrap_or_default();
        let (verdict, next) = if self.head.is_empty() {
            judge(head)
        } else {
            self.head.extend_from_slice(head);
            judge(&self.head)
        };
        self.release_head();
        self.verdicts.push(verdict);
        self.state = next;
        self.head_started = false;
        (end, true)
    }

    fn buffer_partial(&mut self, data: &[u8]) {
        if self.head.len() + data.len() > MAX_HEAD_LEN {
            self.stop();
        } else {
            self.head.extend_from_slice(data);
        }
    }

    fn release_head(&mut self) {
        if self.head.capacity() > KEEP_HEAD_CAPACITY {
            self.head = Vec::new();
        } else {
            self.head.clear();
        }
    }

    fn stop(&mut self) {
        self.state = State::Off;
        self.head_started = false;
        self.release_head();
    }

    fn head_pending(&self) -> bool {
        self.state == State::Head && self.head_started
    }
}

/// Index just past the empty line ending the head (CRLF or bare LF, as httparse accepts),
/// looking back into the already buffered part of the head across read boundaries.
fn find_head_end(buffered: &[u8], data: &[u8]) -> Option<usize> {
    let before = |i: usize, back: usize| match i.checked_sub(back) {
        Some(j) => data.get(j).copied(),
        None => buffered
            .len()
            .checked_sub(back - i)
            .and_then(|j| buffered.get(j).copied()),
    };
    memchr::memchr_iter(b'\n', data)
        .find(|&i| match before(i, 1) {
            Some(b'\n') => true,
            Some(b'\r') => before(i, 2) == Some(b'\n'),
            _ => false,
        })
        .map(|i| i + 1)
}

fn judge(head: &[u8]) -> (Verdict, State) {
    let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_HEADERS] =
        [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(head, &mut slots) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => framing(request.headers),
        _ => (Err(FramingViolation::Unparseable), State::Off),
    }
}

/// RFC 9112 section 6.3, minus every lenient case hyper would quietly repair.
fn framing(headers: &[httparse::Header<'_>]) -> (Verdict, State) {
    let (mut cl, mut te) = ((0, &b""[..]), (0, &b""[..]));
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            cl = (cl.0 + 1, header.value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            te = (te.0 + 1, header.value);
        }
    }
    let violation = match (cl.0, te.0) {
        (0, 0) => return (Ok(()), State::Head),
        (1.., 1..) => FramingViolation::ContentLengthWithTransferEncoding,
        (2.., _) => FramingViolation::DuplicateContentLength,
        (_, 2..) => FramingViolation::DuplicateTransferEncoding,
        (0, _) if te.1.trim_ascii().eq_ignore_ascii_case(b"chunked") => {
            return (Ok(()), State::ChunkStart);
        }
        (0, _) => FramingViolation::UnsupportedTransferEncoding,
        _ => match content_length(cl.1) {
            Some(0) => return (Ok(()), State::Head),
            Some(len) => return (Ok(()), State::Body(len)),
            None => FramingViolation::InvalidContentLength,
        },
    };
    (Err(violation), State::Off)
}

/// 19 digits always fit a u64, so no overflow check is needed. httparse already refuses control
/// characters in values, so `trim_ascii` only ever trims spaces and tabs here.
fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    let valid = (1..=19).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit);
    valid.then(|| digits.iter().fold(0, |len, d| len * 10 + u64::from(d - b'0')))
}

/// One byte of chunked framing, exactly as hyper's decoder accepts it; None means lost sync.
fn chunk_byte(state: State, b: u8) -> Option<State> {
    use State::*;
    let hex = || char::from(b).to_digit(16).map(u64::from);
    let next = match (state, b) {
        (ChunkStart, _) => ChunkSize(hex()?),
        (ChunkSize(n), b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
            ChunkSize(n.checked_mul(16)?.checked_add(hex()?)?)
        }
        (ChunkSize(n) | ChunkLws(n), b' ' | b'\t') => ChunkLws(n),
        (ChunkSize(n) | ChunkLws(n), b';') => ChunkExt(n),
        (ChunkSize(n) | ChunkLws(n), b'\r') => ChunkSizeLf(n),
        (ChunkSizeLf(0), b'\n') => TrailerStart,
        (ChunkSizeLf(n), b'\n') => ChunkData(n),
        (ChunkDataCr, b'\r') => ChunkDataLf,
        (ChunkDataLf, b'\n') => ChunkStart,
        (TrailerStart, b'\r') => EndLf,
        (TrailerStart, _) => Trailer,
        (TrailerLf, b'\n') => TrailerStart,
        (EndLf, b'\n') => Head,
        _ => return None,
    };
    Some(next)
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

#[cfg(test)]
mod tests {
    use super::*;
    use FramingViolation::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SPLITS: [usize; 7] = [1, 2, 3, 5, 7, 64, usize::MAX];

    /// Every verdict the scanner queued for `input` fed in pieces of `split` bytes.
    fn scan(input: &[u8], split: usize) -> (Vec<Verdict>, State) {
        let verdicts = Arc::new(FramingVerdicts::default());
        let mut scanner = Scanner::new(Arc::clone(&verdicts));
        for piece in input.chunks(split.min(input.len()).max(1)) {
            scanner.feed(piece);
        }
        let queued = verdicts.queue().drain(..).collect();
        (queued, scanner.state)
    }

    fn assert_scan(input: &[u8], expected: &[Verdict], end: State) {
        for split in SPLITS {
            let (got, state) = scan(input, split);
            assert_eq!(got, expected, "split {split}: {}", input.escape_ascii());
            assert_eq!(state, end, "split {split}: {}", input.escape_ascii());
        }
    }

    fn one(te_or_cl: &str) -> Vec<u8> {
        format!("POST / HTTP/1.1\r\nHost: a\r\n{te_or_cl}\r\n\r\n").into_bytes()
    }

    const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";

    #[test]
    fn plain_and_pipelined_gets() {
        assert_scan(GET, &[Ok(())], State::Head);
        assert_scan(&[GET, GET].concat(), &[Ok(()), Ok(())], State::Head);
        assert_scan(
            b"\r\n\nGET / HTTP/1.1\nHost: a\n\nGET / HTTP/1.0\r\n\r\n",
            &[Ok(()); 2],
            State::Head,
        );
    }

    #[test]
    fn content_length_body_then_get() {
        let body_looks_like_head = b"GET / HTTP/1.1\r\n\r\n";
        let post = [&one("Content-Length: 18")[..], body_looks_like_head, GET].concat();
        assert_scan(&post, &[Ok(()), Ok(())], State::Head);
        assert_scan(
            &[&one("Content-Length: 0")[..], GET].concat(),
            &[Ok(()); 2],
            State::Head,
        );
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers_then_get() {
        let body =
            b"5;name=\"v\"\r\nhello\r\nA \t; x\r\n0123456789\r\n0;last\r\nX-Sum: 1\r\nX-More: 2\r\n\r\n";
        let input = [&one("Transfer-Encoding: chunked")[..], body, GET].concat();
        assert_scan(&input, &[Ok(()), Ok(())], State::Head);
        let no_trailers = [&one("transfer-encoding:  Chunked ")[..], b"0\r\n\r\n", GET].concat();
        assert_scan(&no_trailers, &[Ok(()), Ok(())], State::Head);
    }

    #[test]
    fn content_length_with_transfer_encoding() {
        let cases = [
            "Content-Length: 5\r\nTransfer-Encoding: chunked",
            "transfer-encoding: chunked\r\ncontent-length: 5",
        ];
        for case in cases {
            let input = [&one(case)[..], GET].concat();
            assert_scan(&input, &[Err(ContentLengthWithTransferEncoding)], State::Off);
        }
    }

    #[test]
    fn content_length_values() {
        let dup = one("Content-Length: 5\r\nContent-Length: 5");
        assert_scan(&dup, &[Err(DuplicateContentLength)], State::Off);
        for bad in [
            "+5",
            "5, 5",
            "abc",
            "",
            "-1",
            "5 5",
            "0x5",
            "12345678901234567890",
        ] {
            let input = one(&format!("Content-Length: {bad}"));
            assert_scan(&input, &[Err(InvalidContentLength)], State::Off);
        }
        let max = one("Content-Length: 9999999999999999999");
        assert_scan(&max, &[Ok(())], State::Body(9_999_999_999_999_999_999));
    }

    #[test]
    fn transfer_encoding_values() {
        for bad in ["gzip, chunked", "chunked, chunked", "identity", "chunked;x", ""] {
            let input = one(&format!("Transfer-Encoding: {bad}"));
            assert_scan(&input, &[Err(UnsupportedTransferEncoding)], State::Off);
        }
        let dup = one("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked");
        assert_scan(&dup, &[Err(DuplicateTransferEncoding)], State::Off);
        let ok = one("Transfer-Encoding:  Chunked ");
        assert_scan(&ok, &[Ok(())], State::ChunkStart);
    }

    #[test]
    fn broken_chunk_loses_sync() {
        for body in [
            "zz\r\n",
            "5\nhello\r\n",
            "5\r\nhelloXX",
            "1;a\nb\r\n",
            "0\r\n\r\r",
        ] {
            let input = [&one("Transfer-Encoding: chunked")[..], body.as_bytes(), GET].concat();
            assert_scan(&input, &[Ok(())], State::Off);
        }
        let overflow = [&one("Transfer-Encoding: chunked")[..], b"10000000000000000\r\n"].concat();
        assert_scan(&overflow, &[Ok(())], State::Off);
    }

    #[test]
    fn unparseable_and_oversized_heads_fail_closed() {
        let (verdicts, state) = scan(&[b"GET / HTTP/9\r\n\r\n", GET].concat(), usize::MAX);
        assert_eq!((verdicts, state), (vec![Err(Unparseable)], State::Off));
        let huge = [
            b"GET / HTTP/1.1\r\nX: ",
            &vec![b'a'; MAX_HEAD_LEN][..],
            b"\r\n\r\n",
        ]
        .concat();
        assert_eq!(scan(&huge, 4096), (vec![], State::Off));
        let (_guarded, shared) = guard(tokio::io::duplex(8).0, Duration::from_secs(1));
        assert_eq!(shared.next_request(), Err(Unparseable));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let sample = [
            &one("Transfer-Encoding: chunked")[..],
            b"3;x\r\nabc\r\n0\r\nT: 1\r\n\r\n",
            GET,
        ]
        .concat();
        for _ in 0..2000 {
            let mut input = sample.clone();
            for _ in 0..rand() % 6 {
                let at = (rand() as usize) % input.len();
                input[at] = b"\r\n0 ;:aZ\x00\xff"[(rand() as usize) % 10];
            }
            let (verdicts, _) = scan(&input, (rand() as usize % 9) + 1);
            assert!(verdicts.len() <= 2);
        }
    }

    #[tokio::test]
    async fn passes_bytes_through_both_ways() {
        let (mut client, server) = tokio::io::duplex(64);
        let (mut guarded, verdicts) = guard(server, Duration::from_secs(30));
        let request = [&one("Content-Length: 3")[..], b"abc", GET].concat();
        let response = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        let write = async {
            client.write_all(&request).await.unwrap();
            let mut got = vec![0; response.len()];
            client.read_exact(&mut got).await.unwrap();
            got
        };
        let echo = async {
            let mut got = vec![0; request.len()];
            guarded.read_exact(&mut got).await.unwrap();
            guarded.write_all(response).await.unwrap();
            guarded.flush().await.unwrap();
            got
        };
        let (from_server, at_server) = tokio::join!(write, echo);
        assert_eq!((from_server, at_server), (response.to_vec(), request.clone()));
        assert_eq!(verdicts.next_request(), Ok(()));
        assert_eq!(verdicts.next_request(), Ok(()));
        assert_eq!(verdicts.next_request(), Err(Unparseable));
    }

    async fn read_outcome(guarded: &mut FramingGuard<tokio::io::DuplexStream>) -> Option<io::ErrorKind> {
        let mut buf = [0; 256];
        let bounded = tokio::time::timeout(Duration::from_millis(400), guarded.read(&mut buf));
        match bounded.await {
            Ok(Ok(n)) => panic!("unexpected read of {n} bytes"),
            Ok(Err(err)) => Some(err.kind()),
            Err(_elapsed) => None,
        }
    }

    #[tokio::test]
    async fn head_deadline_fires_only_for_incomplete_heads() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut guarded, verdicts) = guard(server, Duration::from_millis(100));
        let mut buf = [0; 256];

        client.write_all(GET).await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), GET.len());
        assert_eq!(
            read_outcome(&mut guarded).await,
            None,
            "complete head must not time out"
        );
        assert_eq!(verdicts.next_request(), Ok(()));

        client.write_all(b"GET / HT").await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 8);
        assert_eq!(read_outcome(&mut guarded).await, Some(io::ErrorKind::TimedOut));
    }

    #[tokio::test]
    async fn stop_scanning_turns_into_pass_through() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut guarded, verdicts) = guard(server, Duration::from_millis(100));
        let upgrade = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
        let mut buf = [0; 256];
        client.write_all(upgrade).await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), upgrade.len());
        assert_eq!(verdicts.next_request(), Ok(()));
        verdicts.stop_scanning();
        client.write_all(b"\x81\x05hello partial").await.unwrap();
        assert_eq!(guarded.read(&mut buf).await.unwrap(), 15);
        assert_eq!(read_outcome(&mut guarded).await, None);
    }
}
