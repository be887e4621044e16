//! A raw HTTP/2 client: frames and HPACK literals written by hand, so that requests HTTP/2
//! forbids (upper-case names, CR/LF in values, connection-specific headers, floods) go out as
//! they are, and frame readers that say how the gateway ended a stream or a connection.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Gateway;
use super::raw::PROMPT;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// A header field as raw bytes: any name, any value.
pub type Field = (Vec<u8>, Vec<u8>);

pub fn field(name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Field {
    (name.as_ref().to_vec(), value.as_ref().to_vec())
}

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let stream = (stream & 0x7fff_ffff).to_be_bytes();
    [&len[1..], &[kind, flags], &stream, payload].concat()
}

/// The client preface and an empty SETTINGS frame: how every connection starts.
pub fn preface() -> Vec<u8> {
    [PREFACE, &frame(SETTINGS, 0, 0, &[])].concat()
}

/// An HPACK integer with a `prefix`-bit prefix (RFC 7541 5.1); `first` holds the pattern bits.
pub fn hpack_int(out: &mut Vec<u8>, first: u8, prefix: u8, value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// A raw (non-Huffman) HPACK string: any bytes.
pub fn hpack_string(out: &mut Vec<u8>, bytes: &[u8]) {
    hpack_int(out, 0, 7, bytes.len());
    out.extend_from_slice(bytes);
}

/// "Literal Header Field without Indexing, New Name".
pub fn literal(name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Vec<u8> {
    let mut out = vec![0x00];
    hpack_string(&mut out, name.as_ref());
    hpack_string(&mut out, value.as_ref());
    out
}

/// A literal header field added to the dynamic table (it then has index 62).
pub fn literal_indexed(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = literal(name, value);
    out[0] = 0x40;
    out
}

/// A header block of literal fields, in order.
pub fn block(fields: &[Field]) -> Vec<u8> {
    fields.iter().flat_map(|(n, v)| literal(n, v)).collect()
}

/// The header block of `GET path` to `localhost`.
pub fn get_block(path: &str) -> Vec<u8> {
    block(&[
        field(":method", "GET"),
        field(":scheme", "https"),
        field(":path", path),
        field(":authority", "localhost"),
    ])
}

/// One frame as read off the wire.
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The big-endian u32 at `at` in the payload (error codes, stream ids), 0 if short.
    pub fn u32_at(&self, at: usize) -> u32 {
        self.payload
            .get(at..at + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The payload without padding (and, for HEADERS, without the priority fields).
    fn content(&self) -> &[u8] {
        let mut content = self.payload.as_slice();
        if self.flags & PADDED != 0 {
            let pad = usize::from(*content.first().unwrap_or(&0));
            content = content
                .get(1..content.len().saturating_sub(pad))
                .unwrap_or_default();
        }
        if self.kind == HEADERS && self.flags & PRIORITY != 0 {
            content = content.get(5..).unwrap_or_default();
        }
        content
    }
}

/// Reads one frame; `None` when the connection ends or breaks.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Option<Frame> {
    let mut head = [0u8; 9];
    reader.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload).await.ok()?;
    Some(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// One request on stream 1: `fields` in order (pseudo-headers included), then `data`
/// frames (the last carries END_STREAM; with none, HEADERS does), then optional trailers.
#[derive(Default)]
pub struct Request {
    pub fields: Vec<Field>,
    pub data: Vec<Vec<u8>>,
    pub trailers: Option<Vec<Field>>,
}

impl Request {
    fn bytes(&self) -> Vec<u8> {
        let only_headers = self.data.is_empty() && self.trailers.is_none();
        let mut out = preface();
        let flags = END_HEADERS | if only_headers { END_STREAM } else { 0 };
        out.extend(frame(HEADERS, flags, 1, &block(&self.fields)));
        for (i, chunk) in self.data.iter().enumerate() {
            let last = i + 1 == self.data.len() && self.trailers.is_none();
            out.extend(frame(DATA, if last { END_STREAM } else { 0 }, 1, chunk));
        }
        if let Some(trailers) = &self.trailers {
            out.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block(trailers)));
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The stream ended with a response: its `:status` (if it could be read) and body.
    Answered {
        status: Option<u16>,
        body: Vec<u8>,
    },
    /// RST_STREAM with this error code (1 = PROTOCOL_ERROR).
    Reset(u32),
    GoAway(u32),
    Closed,
    TimedOut,
}

impl Outcome {
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Answered { status, .. } => *status,
            _ => None,
        }
    }

    /// A request the gateway refused: a 400 answer or a malformed-stream reset.
    pub fn refused(&self) -> bool {
        self.status() == Some(400) || matches!(self, Outcome::Reset(_) | Outcome::GoAway(_))
    }
}

/// Sends `request` on a fresh h2 connection to the gateway and reads how stream 1 ended.
pub async fn send(gateway: &Gateway, request: &Request) -> Outcome {
    let mut stream = gateway.tls_connect(&[b"h2"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "h2 by ALPN");
    if stream.write_all(&request.bytes()).await.is_err() || stream.flush().await.is_err() {
        return Outcome::Closed;
    }
    tokio::time::timeout(PROMPT, read_stream_one(&mut stream))
        .await
        .unwrap_or(Outcome::TimedOut)
}

async fn read_stream_one<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Outcome {
    let (mut status, mut body, mut goaway) = (None, Vec::new(), None);
    while let Some(frame) = read_frame(stream).await {
        match (frame.kind, frame.stream) {
            (SETTINGS, 0) if frame.flags & ACK == 0 => {
                let _ = stream.write_all(&self::frame(SETTINGS, ACK, 0, &[])).await;
            }
            (PING, 0) if frame.flags & ACK == 0 => {
                let _ = stream.write_all(&self::frame(PING, ACK, 0, &frame.payload)).await;
            }
            // A GOAWAY that lets stream 1 through may still see it answered.
            (GOAWAY, 0) if frame.u32_at(0) & 0x7fff_ffff == 0 => return Outcome::GoAway(frame.u32_at(4)),
            (GOAWAY, 0) if frame.u32_at(4) != 0 => goaway = Some(frame.u32_at(4)),
            (RST_STREAM, 1) => return Outcome::Reset(frame.u32_at(0)),
            (HEADERS | DATA, 1) => {
                match frame.kind {
                    HEADERS => status = status.or(Some(status_of(frame.content()))),
                    _ => body.extend_from_slice(frame.content()),
                }
                if frame.flags & END_STREAM != 0 {
                    let status = status.flatten();
                    return Outcome::Answered { status, body };
                }
            }
            _ => {}
        }
    }
    goaway.map_or(Outcome::Closed, Outcome::GoAway)
}

/// What the gateway sent back on a raw HTTP/2 connection, read in the background.
#[derive(Debug, Default)]
pub struct Events {
    pub goaway: Option<u32>,
    /// RST_STREAM frames by error code.
    pub resets: BTreeMap<u32, usize>,
    pub headers: usize,
    pub ping_acks: usize,
    pub settings_acks: usize,
    /// When the gateway closed the connection, from the start of the reader.
    pub closed: Option<Duration>,
}

impl Events {
    pub fn refused(&self) -> usize {
        self.resets.values().sum()
    }
}

/// Reads frames until the gateway closes the connection or `limit` passes; shared, so that
/// a writer can look at it while it floods.
pub fn read_events<R: AsyncRead + Unpin + Send + 'static>(
    mut reader: R,
    limit: Duration,
) -> (Arc<Mutex<Events>>, JoinHandle<()>) {
    let events = Arc::new(Mutex::new(Events::default()));
    let shared = events.clone();
    let task = tokio::spawn(async move {
        let start = Instant::now();
        loop {
            let frame = match tokio::time::timeout_at(start + limit, read_frame(&mut reader)).await {
                Err(_) => return,
                Ok(None) => {
                    shared.lock().unwrap().closed = Some(start.elapsed());
                    return;
                }
                Ok(Some(frame)) => frame,
            };
            let mut events = shared.lock().unwrap();
            match frame.kind {
                GOAWAY => events.goaway = Some(frame.u32_at(4)),
                RST_STREAM => *events.resets.entry(frame.u32_at(0)).or_insert(0) += 1,
                HEADERS => events.headers += 1,
                PING if frame.flags & ACK != 0 => events.ping_acks += 1,
                SETTINGS if frame.flags & ACK != 0 => events.settings_acks += 1,
                _ => {}
            }
        }
    });
    (events, task)
}

fn read_int(block: &mut &[u8], prefix_bits: u8) -> Option<usize> {
    let max = (1usize << prefix_bits) - 1;
    let (first, rest) = block.split_first()?;
    *block = rest;
    let mut value = usize::from(*first) & max;
    if value < max {
        return Some(value);
    }
    let mut shift = 0;
    loop {
        let (byte, rest) = block.split_first()?;
        *block = rest;
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
}

/// The `:status` of a response header block: always its first field (RFC 9113 8.3), indexed
/// from the static table or a literal with the static `:status` name.
fn status_of(mut block: &[u8]) -> Option<u16> {
    const STATIC: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    // Skip dynamic table size updates.
    while block.first().is_some_and(|b| b & 0xe0 == 0x20) {
        read_int(&mut block, 5)?;
    }
    let name_index = match *block.first()? {
        b if b & 0x80 != 0 => return STATIC.get(read_int(&mut block, 7)?.checked_sub(8)?).copied(),
        b if b & 0xc0 == 0x40 => read_int(&mut block, 6)?,
        _ => read_int(&mut block, 4)?,
    };
    if !(8..=14).contains(&name_index) {
        return None;
    }
    let huffman = block.first()? & 0x80 != 0;
    let len = read_int(&mut block, 7)?;
    let bytes = block.get(..len)?;
    let text = match huffman {
        true => huffman_digits(bytes)?,
        false => String::from_utf8(bytes.to_vec()).ok()?,
    };
    text.parse().ok()
}

/// RFC 7541 Appendix B, digits only: 0-2 have 5-bit codes 0..=2, 3-9 6-bit codes 0x19..=0x1f;
/// `None` for anything else but the all-ones padding (under 8 bits) at the end.
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let (mut code, mut len, mut out) = (0u8, 0, String::new());
    for bit in bytes.iter().flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1)) {
        (code, len) = (code << 1 | bit, len + 1);
        let digit = match (len, code) {
            (5, 0..=2) => b'0' + code,
            (6, 0x19..=0x1f) => b'3' + code - 0x19,
            (8, _) => return None,
            _ => continue,
        };
        out.push(char::from(digit));
        (code, len) = (0, 0);
    }
    (code.count_ones() == len).then_some(out)
}
