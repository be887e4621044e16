//! The byte-level scanner: finds each request head, judges its framing, and skips its body
//! exactly as hyper's decoder would, so that verdict k belongs to the k-th request.

use std::mem::MaybeUninit;
use std::sync::Arc;

use super::{FramingVerdicts, FramingViolation, Verdict};

/// Above hyper's largest buffer for any allowed `max_header_bytes` (up to 1 MiB, buffer twice
/// that): a head hyper would accept is never one we gave up on. hyper closes the connection
/// when its own buffer fills, so this cap is only a backstop for memory.
pub(super) const MAX_HEAD_LEN: usize = 2 * 1024 * 1024 + 64 * 1024;
/// A buffer grown past this by one large head is freed rather than pinned for the connection.
const KEEP_HEAD_CAPACITY: usize = 16 * 1024;
/// Above hyper's default of 100, so every head hyper accepts also parses here.
const MAX_HEADERS: usize = 128;

/// Where the scanner is in the request stream; the chunk states mirror hyper's decoder so that
/// both agree on where each body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
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
pub(super) struct Scanner {
    pub(super) state: State,
    head: Vec<u8>,
    head_started: bool,
    pub(super) verdicts: Arc<FramingVerdicts>,
}

impl Scanner {
    pub(super) fn new(verdicts: Arc<FramingVerdicts>) -> Self {
        Self {
            state: State::Head,
            head: Vec::new(),
            head_started: false,
            verdicts,
        }
    }

    /// Returns whether a head completed, so the caller restarts the deadline for the next one.
    pub(super) fn feed(&mut self, mut data: &[u8]) -> bool {
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

    pub(super) fn stop(&mut self) {
        self.state = State::Off;
        self.head_started = false;
        self.release_head();
    }

    pub(super) fn head_pending(&self) -> bool {
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
