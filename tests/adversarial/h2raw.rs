//! A raw HTTP/2 client for the adversarial suites: frames and HPACK literals written by
//! hand, so that requests HTTP/2 forbids (upper-case names, connection-specific headers)
//! can be sent as they are. Shared by headers.rs and paths.rs.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub type Field = (Vec<u8>, Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    /// RST_STREAM with this error code (1 = PROTOCOL_ERROR).
    Reset(u32),
    GoAway(u32),
    Closed,
}

impl Outcome {
    /// A request the gateway refused: a 400 answer or a malformed-stream reset.
    pub fn refused(&self) -> bool {
        matches!(
            self,
            Outcome::Status(400) | Outcome::Reset(_) | Outcome::GoAway(_)
        )
    }
}

pub struct Request {
    /// Pseudo-headers first, then the header fields, sent as they are.
    pub fields: Vec<Field>,
    pub body: Option<Vec<u8>>,
    pub trailers: Vec<Field>,
}

fn int(value: usize, prefix_bits: u8, first: u8, out: &mut Vec<u8>) {
    let max = (1usize << prefix_bits) - 1;
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

/// Literal header fields without indexing, new names, no Huffman coding.
fn block(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        int(name.len(), 7, 0, &mut out);
        out.extend_from_slice(name);
        int(value.len(), 7, 0, &mut out);
        out.extend_from_slice(value);
    }
    out
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// Sends `request` as stream 1 of a fresh connection and reads the answer's status.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, request: &Request) -> Outcome {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frame(0x4, 0, 0, &[], &mut out);
    let only_headers = request.body.is_none() && request.trailers.is_empty();
    let flags = END_HEADERS | if only_headers { END_STREAM } else { 0 };
    frame(0x1, flags, 1, &block(&request.fields), &mut out);
    if let Some(body) = &request.body {
        let flags = if request.trailers.is_empty() {
            END_STREAM
        } else {
            0
        };
        frame(0x0, flags, 1, body, &mut out);
    }
    if !request.trailers.is_empty() {
        frame(
            0x1,
            END_HEADERS | END_STREAM,
            1,
            &block(&request.trailers),
            &mut out,
        );
    }
    if stream.write_all(&out).await.is_err() {
        return Outcome::Closed;
    }
    let _ = stream.flush().await;
    loop {
        let mut head = [0u8; 9];
        if stream.read_exact(&mut head).await.is_err() {
            return Outcome::Closed;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        if stream.read_exact(&mut payload).await.is_err() {
            return Outcome::Closed;
        }
        match kind {
            0x4 if flags & 1 == 0 => {
                let mut ack = Vec::new();
                frame(0x4, 1, 0, &[], &mut ack);
                let _ = stream.write_all(&ack).await;
            }
            0x6 if flags & 1 == 0 => {
                let mut pong = Vec::new();
                frame(0x6, 1, 0, &payload, &mut pong);
                let _ = stream.write_all(&pong).await;
            }
            0x1 if id == 1 => {
                let mut block = &payload[..];
                if flags & 0x8 != 0 {
                    let pad = usize::from(block[0]);
                    block = &block[1..block.len() - pad];
                }
                if flags & 0x20 != 0 {
                    block = &block[5..];
                }
                return Outcome::Status(status(block).unwrap_or(0));
            }
            0x3 if id == 1 => {
                return Outcome::Reset(u32::from_be_bytes(payload[..4].try_into().unwrap()));
            }
            0x7 => {
                let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                let last = u32::from_be_bytes(payload[..4].try_into().unwrap()) & 0x7fff_ffff;
                if last == 0 || code != 0 {
                    return Outcome::GoAway(code);
                }
            }
            _ => {}
        }
    }
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

/// The `:status` of a response header block: always its first field (RFC 9113 8.3).
fn status(mut block: &[u8]) -> Option<u16> {
    // Skip dynamic table size updates.
    while block.first().is_some_and(|b| b & 0xe0 == 0x20) {
        read_int(&mut block, 5)?;
    }
    let first = *block.first()?;
    let name_index = match first {
        b if b & 0x80 != 0 => {
            return match read_int(&mut block, 7)? {
                8 => Some(200),
                9 => Some(204),
                10 => Some(206),
                11 => Some(304),
                12 => Some(400),
                13 => Some(404),
                14 => Some(500),
                _ => None,
            };
        }
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

/// RFC 7541 Appendix B, digits only: 0-2 have 5-bit codes 0..=2, 3-9 6-bit codes 0x19..=0x1f.
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let mut out = String::new();
    let mut i = 0;
    let take = |i: usize, n: usize| bits[i..i + n].iter().fold(0u8, |acc, b| acc << 1 | b);
    while i + 5 <= bits.len() {
        let five = take(i, 5);
        if five <= 2 {
            out.push(char::from(b'0' + five));
            i += 5;
        } else if i + 6 <= bits.len() && (0x19..=0x1f).contains(&take(i, 6)) {
            out.push(char::from(b'0' + take(i, 6) - 0x19 + 3));
            i += 6;
        } else {
            break; // padding (all ones)
        }
    }
    (!out.is_empty()).then_some(out)
}
