//! Canonicalises a request path before routing, refusing paths whose meaning could differ upstream.

use std::fmt;

/// Why a request path was refused; every variant maps to a 400 response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRejection {
    NotOriginForm,
    EncodedSlash,
    EncodedBackslash,
    Backslash,
    Nul,
    EncodedDotSegment,
    DotSegmentWithParameters,
    BadPercentEncoding,
    ControlCharacter,
}

impl fmt::Display for PathRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotOriginForm => "request target is not an origin-form path",
            Self::EncodedSlash => "path contains an encoded slash",
            Self::EncodedBackslash => "path contains an encoded backslash",
            Self::Backslash => "path contains a backslash",
            Self::Nul => "path contains a NUL byte",
            Self::EncodedDotSegment => "path contains an encoded dot segment",
            Self::DotSegmentWithParameters => "path contains a dot segment with parameters",
            Self::BadPercentEncoding => "path contains a malformed percent-escape",
            Self::ControlCharacter => "path contains a control or non-ASCII character",
        })
    }
}

impl std::error::Error for PathRejection {}

/// Normalise the path part (no query) of an origin-form request target.
///
/// Decodes escapes of unreserved characters, upper-cases the hex digits of
/// every other escape, removes dot segments and merges repeated slashes.
/// The result is idempotent under this function.
///
/// # Errors
///
/// Returns the first [`PathRejection`] met scanning left to right when the
/// path is not origin-form or contains a character or escape that could make
/// the backend resolve it differently from the router.
pub fn normalize_path(raw: &str) -> Result<String, PathRejection> {
    let Some((b'/', mut rest)) = raw.as_bytes().split_first() else {
        return Err(PathRejection::NotOriginForm);
    };
    // Output never exceeds the input: decoding shrinks, everything else is copied or dropped.
    let mut out = String::with_capacity(raw.len());
    out.push('/');
    loop {
        let seg_start = out.len();
        let (consumed, encoded_dot) = decode_segment(rest, &mut out)?;
        rest = &rest[consumed..];
        // `rest` is now empty or starts at the `/` that ended the segment.
        finish_segment(&mut out, seg_start, encoded_dot, !rest.is_empty())?;
        match rest.split_first() {
            Some((_, after_slash)) => rest = after_slash,
            None => return Ok(out),
        }
    }
}

/// Appends one segment (up to the next `/`) to `out`, decoded.
/// Returns the bytes consumed and whether an escaped `.` was decoded.
fn decode_segment(seg: &[u8], out: &mut String) -> Result<(usize, bool), PathRejection> {
    let mut encoded_dot = false;
    let mut i = 0;
    while let Some(&byte) = seg.get(i) {
        match byte {
            b'/' => break,
            b'%' => {
                let value = decode_escape(seg.get(i + 1..i + 3))?;
                encoded_dot |= value == b'.';
                push_escaped(value, out)?;
                i += 3;
            }
            _ => {
                check_literal(byte)?;
                out.push(char::from(byte));
                i += 1;
            }
        }
    }
    Ok((i, encoded_dot))
}

fn check_literal(byte: u8) -> Result<(), PathRejection> {
    match byte {
        0 => Err(PathRejection::Nul),
        b'\\' => Err(PathRejection::Backslash),
        // A path carrying `?` or `#` was split wrongly upstream of us; passing
        // it on would let the backend see a query or fragment we never routed on.
        b'?' | b'#' => Err(PathRejection::NotOriginForm),
        // Non-ASCII is refused here so the output stays ASCII and every
        // truncation index is a char boundary.
        0x01..=0x20 | 0x7F..=0xFF => Err(PathRejection::ControlCharacter),
        _ => Ok(()),
    }
}

fn decode_escape(hex: Option<&[u8]>) -> Result<u8, PathRejection> {
    match hex {
        Some(&[hi, lo]) => match (hex_value(hi), hex_value(lo)) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err(PathRejection::BadPercentEncoding),
        },
        _ => Err(PathRejection::BadPercentEncoding),
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Writes a decoded escape back out in canonical form: unreserved characters
/// literally, anything else re-escaped with upper-case hex so that `%25` can
/// never turn into a fresh escape on a second decoding.
fn push_escaped(value: u8, out: &mut String) -> Result<(), PathRejection> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    match value {
        b'/' => Err(PathRejection::EncodedSlash),
        b'\\' => Err(PathRejection::EncodedBackslash),
        0 => Err(PathRejection::Nul),
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
            out.push(char::from(value));
            Ok(())
        }
        _ => {
            out.push('%');
            out.push(char::from(HEX[usize::from(value >> 4)]));
            out.push(char::from(HEX[usize::from(value & 0x0F)]));
            Ok(())
        }
    }
}

/// Applies dot-segment removal and slash merging to the segment just written
/// at `out[seg_start..]`. On entry `out[..seg_start]` always ends with `/`.
fn finish_segment(
    out: &mut String,
    seg_start: usize,
    encoded_dot: bool,
    followed_by_slash: bool,
) -> Result<(), PathRejection> {
    let segment = &out.as_bytes()[seg_start..];
    let is_dot = segment == b".";
    let is_dot_dot = segment == b"..";
    let is_empty = segment.is_empty();
    if (is_dot || is_dot_dot) && encoded_dot {
        // Backends that decode once more would treat these as real dot segments.
        return Err(PathRejection::EncodedDotSegment);
    }
    if is_dot_with_parameters(segment) {
        // Servlet containers drop `;params` and then resolve `..;` as `..`: a known bypass.
        return Err(PathRejection::DotSegmentWithParameters);
    }
    if is_dot || is_dot_dot {
        // Dropping the segment but keeping the preceding `/` yields the
        // trailing slash RFC 3986 5.2.4 prescribes for `/a/.` and `/a/b/..`.
        out.truncate(seg_start);
    }
    if is_dot_dot {
        pop_segment(out);
    }
    if followed_by_slash && !(is_empty || is_dot || is_dot_dot) {
        out.push('/');
    }
    Ok(())
}

/// `.;x` or `..;x`, also with `;` escaped: a dot segment once the parameters are gone.
fn is_dot_with_parameters(segment: &[u8]) -> bool {
    parameters_start(segment).is_some_and(|start| matches!(&segment[..start], b"." | b".."))
}

/// Where a normalised segment's `;parameters` begin: at `;`, or at `%3B` (this normaliser
/// writes an escaped `;` that way), since a backend may decode before it strips parameters.
pub(crate) fn parameters_start(segment: &[u8]) -> Option<usize> {
    let literal = segment.iter().position(|&b| b == b';');
    let escaped = segment.windows(3).position(|w| w == b"%3B");
    literal.into_iter().chain(escaped).min()
}

/// Removes the last segment of `out` (which ends with `/`), never going above the root.
fn pop_segment(out: &mut String) {
    let without_slash = &out[..out.len() - 1];
    let keep = without_slash.rfind('/').map_or(1, |slash| slash + 1);
    out.truncate(keep);
}

/// Whether the normalised `path` is at or below `prefix`, by whole segments (`/api` matches
/// `/api` and `/api/x`, never `/apix`): how routes and rules match paths.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    let bare = prefix.trim_end_matches('/');
    if path.contains(';') || path.contains("%3B") {
        return segments_match(bare, path);
    }
    match path.strip_prefix(bare) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Segment by segment, ignoring `;parameters` in the path: servlet containers (Tomcat, Jetty,
/// Spring) route `/admin;x=1` as `/admin`, so the gateway must put it under `/admin` too.
/// The normaliser writes an escaped `;` as `%3B`, which a backend may decode first.
fn segments_match(bare_prefix: &str, path: &str) -> bool {
    let mut segments = path.split('/');
    bare_prefix.split('/').all(|want| {
        segments
            .next()
            .is_some_and(|segment| without_parameters(segment) == want)
    })
}

fn without_parameters(segment: &str) -> &str {
    match parameters_start(segment.as_bytes()) {
        Some(start) => &segment[..start],
        None => segment,
    }
}

#[cfg(test)]
mod tests {
    use super::PathRejection::*;
    use super::*;
    use std::fmt::Write as _;

    fn ok(raw: &str) -> String {
        normalize_path(raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e}"))
    }

    fn err(raw: &str) -> PathRejection {
        match normalize_path(raw) {
            Ok(out) => panic!("{raw:?} accepted as {out:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn root_and_slash_merging() {
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("//"), "/");
        assert_eq!(ok("///"), "/");
        assert_eq!(ok("//a///b"), "/a/b");
        assert_eq!(ok("//a///b//"), "/a/b/");
        assert_eq!(ok("/a/b"), "/a/b");
        assert_eq!(ok("/a/b/"), "/a/b/");
    }

    #[test]
    fn dot_segments_removed() {
        assert_eq!(ok("/a/./b/../c"), "/a/c");
        assert_eq!(ok("/a/b/."), "/a/b/");
        assert_eq!(ok("/a/b/.."), "/a/");
        assert_eq!(ok("/a/.."), "/");
        assert_eq!(ok("/.."), "/");
        assert_eq!(ok("/."), "/");
        assert_eq!(ok("/../a"), "/a");
        assert_eq!(ok("/../../a/../../b"), "/b");
        assert_eq!(ok("/a/b/c/../../d"), "/a/d");
        assert_eq!(ok("/a//..//b"), "/b");
        assert_eq!(ok("/a/./"), "/a/");
        assert_eq!(ok("/a/../"), "/");
    }

    #[test]
    fn dots_inside_segments_are_ordinary() {
        assert_eq!(ok("/.a"), "/.a");
        assert_eq!(ok("/a."), "/a.");
        assert_eq!(ok("/..."), "/...");
        assert_eq!(ok("/..a/b"), "/..a/b");
        assert_eq!(ok("/a..b/"), "/a..b/");
    }

    #[test]
    fn unreserved_escapes_decoded() {
        assert_eq!(ok("/%61%62%63"), "/abc");
        assert_eq!(ok("/%7E"), "/~");
        assert_eq!(ok("/%7e"), "/~");
        assert_eq!(ok("/%41%5A%30%39%2D%5F"), "/AZ09-_");
        assert_eq!(ok("/a%2Eb"), "/a.b");
        assert_eq!(ok("/a%2eb"), "/a.b");
        assert_eq!(ok("/a%2e/"), "/a./");
        assert_eq!(ok("/%2e%2e%2e"), "/...");
        assert_eq!(ok("/%2ea"), "/.a");
    }

    #[test]
    fn reserved_escapes_kept_upper_case() {
        assert_eq!(ok("/%3a"), "/%3A");
        assert_eq!(ok("/%3A"), "/%3A");
        assert_eq!(ok("/%25"), "/%25");
        assert_eq!(ok("/%252e%252e"), "/%252e%252e");
        assert_eq!(ok("/%252F"), "/%252F");
        assert_eq!(ok("/%c3%a9"), "/%C3%A9");
        assert_eq!(ok("/%3f%23"), "/%3F%23");
        assert_eq!(ok("/%0a%7f%20"), "/%0A%7F%20");
    }

    #[test]
    fn dot_segments_with_parameters_refused() {
        assert_eq!(err("/public/..;/admin"), DotSegmentWithParameters);
        assert_eq!(err("/public/.;x=1/admin"), DotSegmentWithParameters);
        assert_eq!(err("/public/%2e%2e;/admin"), DotSegmentWithParameters);
        assert_eq!(err("/public/..%3B/admin"), DotSegmentWithParameters);
        assert_eq!(err("/public/.%3bx/admin"), DotSegmentWithParameters);
        assert_eq!(ok("/public/...;/admin"), "/public/...;/admin");
    }

    #[test]
    fn matrix_parameters_kept() {
        assert_eq!(ok("/a;x=1/b"), "/a;x=1/b");
        assert_eq!(ok("/a;x=1/../b;y=2"), "/b;y=2");
        assert_eq!(ok("/;x=/"), "/;x=/");
    }

    #[test]
    fn not_origin_form() {
        assert_eq!(err(""), NotOriginForm);
        assert_eq!(err("*"), NotOriginForm);
        assert_eq!(err("http://x/"), NotOriginForm);
        assert_eq!(err("a/b"), NotOriginForm);
        assert_eq!(err("%2F"), NotOriginForm);
        assert_eq!(err("/a#b"), NotOriginForm);
        assert_eq!(err("/a?b"), NotOriginForm);
    }

    #[test]
    fn encoded_slash_and_backslash() {
        assert_eq!(err("/a%2fb"), EncodedSlash);
        assert_eq!(err("/a%2Fb"), EncodedSlash);
        assert_eq!(err("/%2f"), EncodedSlash);
        assert_eq!(err("/a%5cb"), EncodedBackslash);
        assert_eq!(err("/a%5Cb"), EncodedBackslash);
        assert_eq!(err("/a\\b"), Backslash);
        assert_eq!(err("/..\\"), Backslash);
    }

    #[test]
    fn nul_and_controls() {
        assert_eq!(err("/a\0b"), Nul);
        assert_eq!(err("/a%00"), Nul);
        assert_eq!(err("/a b"), ControlCharacter);
        assert_eq!(err("/a\tb"), ControlCharacter);
        assert_eq!(err("/a\rb"), ControlCharacter);
        assert_eq!(err("/a\nb"), ControlCharacter);
        assert_eq!(err("/a\x7fb"), ControlCharacter);
        assert_eq!(err("/\x1f"), ControlCharacter);
        assert_eq!(err("/é"), ControlCharacter);
        assert_eq!(err("/\u{2215}"), ControlCharacter);
    }

    #[test]
    fn encoded_dot_segments() {
        assert_eq!(err("/a/%2e%2e/b"), EncodedDotSegment);
        assert_eq!(err("/a/%2E%2E/b"), EncodedDotSegment);
        assert_eq!(err("/.%2e/"), EncodedDotSegment);
        assert_eq!(err("/%2E./"), EncodedDotSegment);
        assert_eq!(err("/%2e"), EncodedDotSegment);
        assert_eq!(err("/a/%2E"), EncodedDotSegment);
        assert_eq!(err("/a/%2e/"), EncodedDotSegment);
        assert_eq!(err("/%2e%2e"), EncodedDotSegment);
    }

    #[test]
    fn bad_percent_encoding() {
        assert_eq!(err("/%"), BadPercentEncoding);
        assert_eq!(err("/%g1"), BadPercentEncoding);
        assert_eq!(err("/%1g"), BadPercentEncoding);
        assert_eq!(err("/%1"), BadPercentEncoding);
        assert_eq!(err("/%1/"), BadPercentEncoding);
        assert_eq!(err("/a%"), BadPercentEncoding);
        assert_eq!(err("/%%41"), BadPercentEncoding);
        assert_eq!(err("/%+1"), BadPercentEncoding);
        assert_eq!(err("/%\u{e9}"), BadPercentEncoding);
    }

    #[test]
    fn first_offence_left_to_right_wins() {
        assert_eq!(err("/%2f\\"), EncodedSlash);
        assert_eq!(err("/\\%2f"), Backslash);
        assert_eq!(err("/%2e%2e/%00"), EncodedDotSegment);
    }

    #[test]
    fn display_is_short_and_distinct() {
        let all = [
            NotOriginForm,
            EncodedSlash,
            EncodedBackslash,
            Backslash,
            Nul,
            EncodedDotSegment,
            DotSegmentWithParameters,
            BadPercentEncoding,
            ControlCharacter,
        ];
        assert_eq!(EncodedSlash.to_string(), "path contains an encoded slash");
        for (i, a) in all.iter().enumerate() {
            assert!(!a.to_string().is_empty());
            for b in &all[i + 1..] {
                assert_ne!(a.to_string(), b.to_string());
            }
        }
    }

    /// Fixed-seed xorshift64 so failures reproduce.
    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            usize::try_from(self.0 % n as u64).expect("remainder is below n")
        }
    }

    const PIECES: &[&str] = &[
        "/", "//", ".", "..", "%2e", "%2E", "%2f", "%5c", ";x=", "%41", "%7e", "a", "b", "%25",
    ];

    fn generated_inputs(count: usize, extra: &[&str]) -> Vec<String> {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        (0..count)
            .map(|_| {
                let mut s = String::from("/");
                for _ in 0..rng.below(9) {
                    let pick = rng.below(PIECES.len() + extra.len());
                    s.push_str(PIECES.get(pick).unwrap_or_else(|| &extra[pick - PIECES.len()]));
                }
                s
            })
            .collect()
    }

    fn assert_canonical(input: &str, out: &str) {
        assert!(out.starts_with('/'), "{input:?} -> {out:?}");
        assert!(out.len() <= input.len(), "{input:?} -> {out:?}");
        let body = out.strip_suffix('/').unwrap_or(out);
        for segment in body.split('/').skip(1) {
            assert!(!segment.is_empty(), "{input:?} -> {out:?}");
            assert!(segment != "." && segment != "..", "{input:?} -> {out:?}");
        }
        assert!(!out.to_ascii_lowercase().contains("%2e"), "{out:?}");
    }

    #[test]
    fn idempotent_and_canonical_over_generated_inputs() {
        let mut accepted = 0;
        for input in generated_inputs(50_000, &[]) {
            if let Ok(once) = normalize_path(&input) {
                accepted += 1;
                assert_canonical(&input, &once);
                assert_eq!(normalize_path(&once).as_deref(), Ok(once.as_str()), "{input:?}");
            }
        }
        // Guard against a generator that only exercises the rejection paths.
        assert!(accepted > 5_000, "only {accepted} inputs accepted");
    }

    #[test]
    fn agrees_with_segment_stack_model() {
        for input in generated_inputs(50_000, &[]) {
            assert_eq!(normalize_path(&input), model(&input), "{input:?}");
        }
    }

    #[test]
    fn never_panics_on_hostile_inputs() {
        let hostile = [
            "%",
            "%0",
            "%g",
            "\\",
            "\0",
            " ",
            "\u{7f}",
            "é",
            "#",
            "?",
            "%00",
            "%5C",
            "\u{1F600}",
        ];
        for input in generated_inputs(50_000, &hostile) {
            let _ = normalize_path(&input);
            let _ = normalize_path(&input[1..]);
            assert_eq!(normalize_path(&input), model(&input), "{input:?}");
        }
    }

    /// Independent, allocation-heavy restatement of the contract used as an oracle.
    fn model(raw: &str) -> Result<String, PathRejection> {
        let path = raw.strip_prefix('/').ok_or(NotOriginForm)?;
        let raw_segments: Vec<&str> = path.split('/').collect();
        let mut stack: Vec<String> = Vec::new();
        let mut last_was_dot = false;
        for raw_segment in &raw_segments {
            let decoded = model_decode(raw_segment)?;
            last_was_dot = decoded == "." || decoded == "..";
            if last_was_dot && raw_segment.to_ascii_lowercase().contains("%2e") {
                return Err(EncodedDotSegment);
            }
            if let Some((before, _)) = decoded.replace("%3B", ";").split_once(';')
                && (before == "." || before == "..")
            {
                return Err(DotSegmentWithParameters);
            }
            if decoded == ".." {
                stack.pop();
            } else if !decoded.is_empty() && !last_was_dot {
                stack.push(decoded);
            }
        }
        let trailing_slash = last_was_dot || raw_segments.last() == Some(&"");
        let mut out = format!("/{}", stack.join("/"));
        if trailing_slash && !stack.is_empty() {
            out.push('/');
        }
        Ok(out)
    }

    fn model_decode(segment: &str) -> Result<String, PathRejection> {
        let bytes = segment.as_bytes();
        let mut out = String::new();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b != b'%' {
                match b {
                    0 => return Err(Nul),
                    b'\\' => return Err(Backslash),
                    b'?' | b'#' => return Err(NotOriginForm),
                    _ if !b.is_ascii_graphic() => return Err(ControlCharacter),
                    _ => {}
                }
                out.push(char::from(b));
                i += 1;
                continue;
            }
            let hex = bytes.get(i + 1..i + 3).ok_or(BadPercentEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| BadPercentEncoding)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return Err(BadPercentEncoding);
            }
            let v = u8::from_str_radix(hex, 16).map_err(|_| BadPercentEncoding)?;
            match v {
                b'/' => return Err(EncodedSlash),
                b'\\' => return Err(EncodedBackslash),
                0 => return Err(Nul),
                _ if v.is_ascii_alphanumeric() || b"-._~".contains(&v) => out.push(char::from(v)),
                _ => {
                    let _ = write!(out, "%{v:02X}");
                }
            }
            i += 3;
        }
        Ok(out)
    }
}
