//! W3C Trace Context (SPEC 15): a request's `traceparent` is continued, or a trace begun, and
//! the upstream gets a `traceparent` naming the gateway's own span as its parent. The trace id
//! goes into the access log, so one request can be followed through the gateway and its backends.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Sampled: the one flag W3C defines.
const SAMPLED: u8 = 0x01;

/// Where this request sits in its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The caller's span, when the request continued a trace.
    pub parent_id: Option<[u8; 8]>,
    /// The gateway's span for this request: the upstream's parent.
    pub span_id: [u8; 8],
    pub flags: u8,
}

impl TraceContext {
    /// Continues the request's trace when its one `traceparent` is valid; else begins one,
    /// `sampled` as the gateway decides (and then the caller's `tracestate` means nothing).
    pub fn of(headers: &HeaderMap, sampled: bool) -> TraceContext {
        let mut sent = headers.get_all(&TRACEPARENT).iter();
        let continued = match (sent.next(), sent.next()) {
            (Some(value), None) => parse(value.as_bytes()),
            _ => None,
        };
        let ids = random_ids();
        let span_id = eight(&ids[16..]);
        match continued {
            Some((trace_id, parent_id, flags)) => TraceContext {
                trace_id,
                parent_id: Some(parent_id),
                span_id,
                flags,
            },
            None => TraceContext {
                trace_id: ids[..16].try_into().unwrap_or([1; 16]),
                parent_id: None,
                span_id,
                flags: if sampled { SAMPLED } else { 0 },
            },
        }
    }

    pub fn continued(&self) -> bool {
        self.parent_id.is_some()
    }

    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// `00-<trace id>-<the gateway's span>-<flags>`, for the upstream: written into a buffer
    /// on the stack (every proxied request sends one), then copied once into the header.
    pub fn traceparent(&self) -> HeaderValue {
        let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
        write_hex(&mut text[3..35], &self.trace_id);
        write_hex(&mut text[36..52], &self.span_id);
        write_hex(&mut text[53..55], &[self.flags]);
        HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static(""))
    }

    /// The trace id as 32 lower-case hex digits (for the access log).
    pub fn trace_id(&self) -> Hex<'_> {
        Hex(&self.trace_id)
    }
}

/// Lower-case hex digits of some bytes, written without an allocation.
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// `version-traceid-parentid-flags` (W3C Trace Context §3.2): lower-case hex, neither id all
/// zeros, version `ff` invalid; a later version may append fields after a `-`.
fn parse(value: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    let text = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    if !text.is_ascii() || text.len() < 55 {
        return None;
    }
    let (head, tail) = text.split_at(55);
    let version = &head[..2];
    let length_ok = match version {
        "00" => tail.is_empty(),
        "ff" => false,
        _ => tail.is_empty() || tail.starts_with('-'),
    };
    let bytes = head.as_bytes();
    if !length_ok || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    hex_bytes::<1>(version)?;
    let trace_id = hex_bytes::<16>(&head[3..35])?;
    let parent_id = hex_bytes::<8>(&head[36..52])?;
    let flags = hex_bytes::<1>(&head[53..55])?[0];
    (trace_id != [0; 16] && parent_id != [0; 8]).then_some((trace_id, parent_id, flags))
}

/// `bytes` as lower-case hex digits into `out` (twice as long).
fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// `N` bytes from exactly `2N` lower-case hex digits.
fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N
        || !digits
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// 24 random bytes for a trace id and a span id, from a per-thread wyrand generator seeded
/// by the OS (through aws-lc) once per thread: ids must be unpredictable enough not to
/// collide, not secret, and every request needs them, so no system call per request.
fn random_ids() -> [u8; 24] {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new({
            let mut seed = [0u8; 8];
            // Without an entropy source the seed stays 0: ids still differ per call.
            let _ = aws_lc_rs::rand::fill(&mut seed);
            u64::from_ne_bytes(seed)
        });
    }
    STATE.with(|state| {
        let mut ids = [0u8; 24];
        for chunk in ids.chunks_mut(8) {
            let next = state.get().wrapping_add(0xa076_1d64_78bd_642f);
            state.set(next);
            let mixed = u128::from(next) * u128::from(next ^ 0xe703_7ed1_a0b4_28db);
            let word = ((mixed >> 64) as u64) ^ (mixed as u64);
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        ids
    })
}

/// A fresh span id (for spans the gateway makes beside the request's own).
pub fn new_span_id() -> [u8; 8] {
    eight(&random_ids()[..8])
}

fn eight(bytes: &[u8]) -> [u8; 8] {
    bytes.try_into().unwrap_or([1; 8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(TRACEPARENT, value.parse().expect("header value"));
        }
        headers
    }

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_continued_with_a_span_of_our_own() {
        let trace = TraceContext::of(&with(&[GOOD]), false);
        assert!(trace.continued() && trace.sampled());
        assert_eq!(trace.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let sent = trace.traceparent();
        let sent = sent.to_str().expect("ascii");
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{sent}");
        assert!(
            !sent.contains("00f067aa0ba902b7") && sent.ends_with("-01"),
            "{sent}"
        );
        // A later version's extra fields are ignored.
        let future = format!("cc{}-what-ever", &GOOD[2..]);
        assert!(TraceContext::of(&with(&[&future]), false).continued());
    }

    #[test]
    fn an_invalid_traceparent_begins_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let trace = TraceContext::of(&with(&[bad]), true);
            assert!(!trace.continued(), "{bad}");
            assert_ne!(
                trace.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{bad}"
            );
            assert!(trace.sampled(), "a new trace is sampled as asked");
        }
        assert!(
            !TraceContext::of(&with(&[GOOD, GOOD]), false).continued(),
            "two of them"
        );
        let fresh = (
            TraceContext::of(&HeaderMap::new(), false),
            TraceContext::of(&HeaderMap::new(), false),
        );
        assert_ne!(fresh.0.trace_id, fresh.1.trace_id);
        assert!(!fresh.0.sampled());
    }
}
