//! Judging one complete request head: everything hyper's HTTP/1.1 server would refuse with
//! its own bare answer, and the framing hyper would quietly repair, decided before hyper sees
//! a byte of it. httparse is hyper's own parser, run here with hyper's settings.

use std::mem::MaybeUninit;

use super::scanner::State;
use super::{FramingViolation, Verdict};

/// hyper's default (`http1::Builder::max_headers`, left unset because setting it moves
/// hyper's header slots to the heap); one more header is hyper's 431.
const MAX_HEADERS: usize = 100;
/// hyper answers 414 above this target length.
const MAX_TARGET_LEN: usize = u16::MAX as usize - 1;
/// hyper answers 431 for a header name this long.
const MAX_NAME_LEN: usize = 1 << 16;

/// What a head comes to.
#[derive(Debug)]
pub(super) struct Judgement {
    pub(super) verdict: Verdict,
    /// Where the stream is after the head: its body, or the next head.
    pub(super) next: State,
    /// An HTTP/1.1 head with `Upgrade`, after which hyper may switch protocols: what follows
    /// its body is held until the gateway has decided.
    pub(super) upgrade: bool,
}

/// The judgement on `head` (leading empty lines included, as hyper counts them).
pub(super) fn judge(head: &[u8], max_head_len: usize) -> Judgement {
    if head.len() > max_head_len {
        return refuse(FramingViolation::HeadTooLarge);
    }
    let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_HEADERS] =
        [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(head, &mut slots) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        Err(httparse::Error::TooManyHeaders) => return refuse(FramingViolation::HeadTooLarge),
        _ => return refuse(FramingViolation::MalformedHead),
    }
    if let Err(violation) = check_target(request.path.unwrap_or_default().as_bytes()) {
        return refuse(violation);
    }
    framing(request.version == Some(1), request.headers)
}

fn refuse(violation: FramingViolation) -> Judgement {
    Judgement {
        verdict: Err(violation),
        next: State::Rejected,
        upgrade: false,
    }
}

/// hyper turns the target into an `http::Uri` and answers a bare 400 when that fails. A target
/// of plain RFC 3986 origin-form characters always parses, so only the rest (absolute form,
/// `*`, `<`, non-ASCII, ...) is handed to `http` itself, which copies it.
fn check_target(target: &[u8]) -> Result<(), FramingViolation> {
    if target.len() > MAX_TARGET_LEN {
        return Err(FramingViolation::TargetTooLong);
    }
    let plain = target.first() == Some(&b'/') && target.iter().all(|&b| is_rfc3986_char(b));
    match plain || http::Uri::try_from(target).is_ok() {
        true => Ok(()),
        false => Err(FramingViolation::MalformedHead),
    }
}

/// unreserved / sub-delims / `%` / `:` / `@` / `/` / `?`, as a table: this runs over every
/// target.
const RFC3986: [bool; 256] = {
    let mut table = [false; 256];
    let extra = b"-._~%!$&'()*+,;=:@/?";
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

fn is_rfc3986_char(b: u8) -> bool {
    RFC3986[usize::from(b)]
}

/// RFC 9112 section 6.3, minus every lenient case hyper would quietly repair.
fn framing(http11: bool, headers: &[httparse::Header<'_>]) -> Judgement {
    let (mut cl, mut te, mut upgrade) = ((0, &b""[..]), (0, &b""[..]), false);
    for header in headers {
        if header.name.len() >= MAX_NAME_LEN {
            return refuse(FramingViolation::HeadTooLarge);
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            cl = (cl.0 + 1, header.value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            te = (te.0 + 1, header.value);
        } else if header.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    let violation = match (cl.0, te.0) {
        (_, 1..) if !http11 => FramingViolation::TransferEncodingInHttp10,
        (1.., 1..) => FramingViolation::ContentLengthWithTransferEncoding,
        (2.., _) => FramingViolation::DuplicateContentLength,
        (_, 2..) => FramingViolation::DuplicateTransferEncoding,
        (0, 0) => return admit(http11 && upgrade, State::Head),
        (0, _) if te.1.trim_ascii().eq_ignore_ascii_case(b"chunked") => {
            return admit(http11 && upgrade, State::ChunkStart);
        }
        (0, _) => FramingViolation::UnsupportedTransferEncoding,
        _ => match content_length(cl.1) {
            Some(0) => return admit(http11 && upgrade, State::Head),
            Some(len) => return admit(http11 && upgrade, State::Body(len)),
            None => FramingViolation::InvalidContentLength,
        },
    };
    refuse(violation)
}

fn admit(upgrade: bool, next: State) -> Judgement {
    Judgement {
        verdict: Ok(()),
        next,
        upgrade,
    }
}

/// 19 digits always fit a u64, so no overflow check is needed. httparse already refuses control
/// characters in values, so `trim_ascii` only ever trims spaces and tabs here.
fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    let valid = (1..=19).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit);
    valid.then(|| digits.iter().fold(0, |len, d| len * 10 + u64::from(d - b'0')))
}
