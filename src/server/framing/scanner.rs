//! The byte-level scanner: finds each request head, has it judged, and skips its body exactly
//! as hyper's decoder would, so that verdict k belongs to the k-th request. It also decides
//! which bytes hyper may see: a head only once it is whole and admitted, and a refused head
//! never (a stand-in request carries the verdict instead).

use std::sync::Arc;

use super::head::judge;
use super::{FramingVerdicts, FramingViolation};

/// What hyper parses in place of a refused head: a request it accepts, whose verdict (already
/// queued) makes the gateway answer, and after which hyper closes the connection.
pub(super) const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n";
/// A buffer grown past this by one large head is freed rather than pinned for the connection.
const KEEP_HEAD_CAPACITY: usize = 16 * 1024;

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
    /// After an upgrade request: bytes are withheld unjudged until the gateway has answered
    /// it. A 101 makes them tunnel data (`Off`), anything else the next head.
    Held,
    /// Lost sync or upgraded: bytes pass unjudged, and later heads get no verdict, so they
    /// fail closed.
    Off,
    /// A head was refused: hyper gets the stand-in and nothing after it.
    Rejected,
}

/// The empty lines httparse skips before a request line: CR LF or a bare LF, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lead {
    Empty,
    /// A CR that must be followed by LF to be an empty line.
    Cr,
    /// The request line has begun.
    Done,
}

/// What one read came to: the first `keep` bytes stay where they are for hyper, and whatever
/// hyper must see after them has been appended to the outbox.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Fed {
    pub(super) keep: usize,
    pub(super) completed: bool,
}

impl Fed {
    /// `data[from..to]` goes to hyper: in place while it continues the kept prefix, copied
    /// behind the outbox once anything had to be copied there.
    fn release(&mut self, data: &[u8], from: usize, to: usize, out: &mut Vec<u8>) {
        if out.is_empty() && self.keep == from {
            self.keep = to;
        } else {
            out.extend_from_slice(data.get(from..to).unwrap_or_default());
        }
    }
}

#[derive(Debug)]
pub(super) struct Scanner {
    pub(super) state: State,
    /// The current head as far as it has arrived, withheld from hyper until it is judged.
    head: Vec<u8>,
    lead: Lead,
    /// The last head asked for an upgrade: hold what follows its body.
    hold_next: bool,
    max_head_len: usize,
    pub(super) verdicts: Arc<FramingVerdicts>,
}

impl Scanner {
    pub(super) fn new(verdicts: Arc<FramingVerdicts>, max_head_len: usize) -> Self {
        Self {
            state: State::Head,
            head: Vec::new(),
            lead: Lead::Empty,
            hold_next: false,
            max_head_len,
            verdicts,
        }
    }

    /// Scans one read; `out` must be empty (the guard drains it before reading again).
    pub(super) fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Fed {
        let mut fed = Fed::default();
        let mut at = 0;
        while at < data.len() {
            let rest = data.get(at..).unwrap_or_default();
            if self.state == State::Head && self.hold_next {
                self.hold_next = false;
                self.state = State::Held;
            }
            let used = match self.state {
                State::Rejected => break,
                State::Head => self.scan_head(data, at, &mut fed, out),
                State::Held => {
                    self.head.extend_from_slice(rest);
                    rest.len()
                }
                _ => {
                    let used = self.step(rest).max(1);
                    fed.release(data, at, at + used, out);
                    used
                }
            };
            at += used;
        }
        fed
    }

    fn step(&mut self, data: &[u8]) -> usize {
        match self.state {
            State::Off | State::Rejected | State::Head | State::Held => data.len(),
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
        }
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

    /// The head starting at (or continuing at) `data[at]`: judged and released when whole,
    /// withheld when not, replaced by the stand-in when refused.
    fn scan_head(&mut self, data: &[u8], at: usize, fed: &mut Fed, out: &mut Vec<u8>) -> usize {
        let rest = data.get(at..).unwrap_or_default();
        let from = self.skip_empty_lines(rest);
        let end = match self.lead {
            Lead::Done => find_head_end(&self.head, rest, from),
            Lead::Empty | Lead::Cr => None,
        };
        let Some(end) = end else {
            // hyper answers 431 once this much is buffered without the head being complete.
            if self.head.len() + rest.len() >= self.max_head_len {
                self.refuse(FramingViolation::HeadTooLarge, out);
            } else {
                self.head.extend_from_slice(rest);
            }
            return rest.len();
        };
        fed.completed = true;
        let whole = rest.get(..end).unwrap_or_default();
        let judgement = if self.head.is_empty() {
            judge(whole, self.max_head_len)
        } else {
            self.head.extend_from_slice(whole);
            judge(&self.head, self.max_head_len)
        };
        match judgement.verdict {
            Err(violation) => self.refuse(violation, out),
            Ok(()) => {
                if self.head.is_empty() {
                    fed.release(data, at, at + end, out);
                } else if out.is_empty() {
                    // The whole head was withheld; hand it over without another copy.
                    std::mem::swap(out, &mut self.head);
                } else {
                    out.extend_from_slice(&self.head);
                }
                self.verdicts.push(Ok(()));
                self.state = judgement.next;
                self.hold_next = judgement.upgrade;
                self.end_head();
            }
        }
        end
    }

    /// How many leading bytes of `data` are empty lines (httparse skips them, hyper counts
    /// them towards the head size).
    fn skip_empty_lines(&mut self, data: &[u8]) -> usize {
        let mut i = 0;
        while self.lead != Lead::Done {
            let Some(&b) = data.get(i) else { break };
            self.lead = match (self.lead, b) {
                (_, b'\n') => Lead::Empty,
                (Lead::Empty, b'\r') => Lead::Cr,
                // A CR without LF starts the head, which httparse then refuses.
                _ => return self.start_line(i),
            };
            i += 1;
        }
        i
    }

    fn start_line(&mut self, at: usize) -> usize {
        self.lead = Lead::Done;
        at
    }

    fn refuse(&mut self, violation: FramingViolation, out: &mut Vec<u8>) {
        self.verdicts.push(Err(violation));
        out.extend_from_slice(STAND_IN);
        self.state = State::Rejected;
        self.end_head();
    }

    fn end_head(&mut self) {
        self.lead = Lead::Empty;
        if self.head.capacity() > KEEP_HEAD_CAPACITY {
            self.head = Vec::new();
        } else {
            self.head.clear();
        }
    }

    /// Stops judging; whatever was withheld goes to hyper after all (into `out`).
    pub(super) fn stop(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        self.end_head();
        self.hold_next = false;
        if self.state != State::Rejected {
            self.state = State::Off;
        }
    }

    /// The upgrade was refused: what was held is judged as the next head(s), and whatever of
    /// it hyper may see goes into `out`. Returns whether a head completed.
    pub(super) fn resume(&mut self, out: &mut Vec<u8>) -> bool {
        let held = std::mem::take(&mut self.head);
        self.state = State::Head;
        let mut after = Vec::new();
        let fed = self.feed(&held, &mut after);
        out.extend_from_slice(held.get(..fed.keep).unwrap_or_default());
        out.extend_from_slice(&after);
        fed.completed
    }

    /// Bytes held or withheld so far.
    pub(super) fn withheld(&self) -> usize {
        self.head.len()
    }

    /// Whether part of a head has arrived and the rest has not.
    pub(super) fn head_pending(&self) -> bool {
        self.state == State::Head && !self.head.is_empty()
    }
}

/// Index just past the empty line ending the head (CRLF or bare LF, as httparse accepts),
/// searching `data` from `from` (where the request line or its continuation is) and looking
/// back into the already buffered part of the head across read boundaries.
fn find_head_end(buffered: &[u8], data: &[u8], from: usize) -> Option<usize> {
    let before = |i: usize, back: usize| match i.checked_sub(back) {
        Some(j) => data.get(j).copied(),
        None => buffered
            .len()
            .checked_sub(back - i)
            .and_then(|j| buffered.get(j).copied()),
    };
    let tail = data.get(from..).unwrap_or_default();
    memchr::memchr_iter(b'\n', tail)
        .map(|i| i + from)
        .find(|&i| match before(i, 1) {
            Some(b'\n') => true,
            Some(b'\r') => before(i, 2) == Some(b'\n'),
            _ => false,
        })
        .map(|i| i + 1)
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
