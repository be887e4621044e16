//! Scanner tests: verdicts, and what hyper gets to see, must not depend on how the bytes are
//! split. The guard's own IO behaviour is tested in `guard`.

mod guard;

use super::scanner::STAND_IN;
use super::*;
use FramingViolation::*;

const SPLITS: [usize; 7] = [1, 2, 3, 5, 7, 64, usize::MAX];
const MAX_HEAD: usize = 4096;

/// What scanning `input` in pieces of `split` bytes came to.
#[derive(Debug, PartialEq, Eq)]
struct Scanned {
    verdicts: Vec<Verdict>,
    state: State,
    /// Every byte released to hyper, in order.
    seen: Vec<u8>,
}

fn scan(input: &[u8], split: usize) -> Scanned {
    let verdicts = Arc::new(FramingVerdicts::default());
    let mut scanner = Scanner::new(Arc::clone(&verdicts), MAX_HEAD);
    let mut seen = Vec::new();
    for piece in input.chunks(split.min(input.len()).max(1)) {
        let mut out = Vec::new();
        let fed = scanner.feed(piece, &mut out);
        seen.extend_from_slice(&piece[..fed.keep]);
        seen.extend_from_slice(&out);
    }
    let verdicts = verdicts.queue().drain(..).collect();
    Scanned {
        verdicts,
        state: scanner.state,
        seen,
    }
}

/// Scans `input` with every split; hyper must see `input` itself when every head is admitted.
fn assert_scan(input: &[u8], expected: &[Verdict], end: State) {
    let seen = match expected.iter().all(Result::is_ok) {
        true => input.to_vec(),
        false => scan(input, usize::MAX).seen,
    };
    assert_seen(input, expected, end, &seen);
}

fn assert_seen(input: &[u8], expected: &[Verdict], end: State, seen: &[u8]) {
    let want = Scanned {
        verdicts: expected.to_vec(),
        state: end,
        seen: seen.to_vec(),
    };
    for split in SPLITS {
        assert_eq!(
            scan(input, split),
            want,
            "split {split}: {}",
            input.escape_ascii()
        );
    }
}

/// What hyper sees for a refused head that follows `before`.
fn refused_after(before: &[u8]) -> Vec<u8> {
    [before, STAND_IN].concat()
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
    let body = b"5;name=\"v\"\r\nhello\r\nA \t; x\r\n0123456789\r\n0;last\r\nX-Sum: 1\r\nX-More: 2\r\n\r\n";
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
        assert_seen(
            &input,
            &[Err(ContentLengthWithTransferEncoding)],
            State::Rejected,
            STAND_IN,
        );
    }
}

#[test]
fn content_length_values() {
    let dup = one("Content-Length: 5\r\nContent-Length: 5");
    assert_seen(&dup, &[Err(DuplicateContentLength)], State::Rejected, STAND_IN);
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
        assert_seen(&input, &[Err(InvalidContentLength)], State::Rejected, STAND_IN);
    }
    let max = one("Content-Length: 9999999999999999999");
    assert_scan(&max, &[Ok(())], State::Body(9_999_999_999_999_999_999));
}

#[test]
fn transfer_encoding_values() {
    for bad in ["gzip, chunked", "chunked, chunked", "identity", "chunked;x", ""] {
        let input = one(&format!("Transfer-Encoding: {bad}"));
        assert_seen(
            &input,
            &[Err(UnsupportedTransferEncoding)],
            State::Rejected,
            STAND_IN,
        );
    }
    let dup = one("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked");
    assert_seen(&dup, &[Err(DuplicateTransferEncoding)], State::Rejected, STAND_IN);
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
fn heads_hyper_refuses_become_the_stand_in_after_what_came_before() {
    let cases: [(&[u8], FramingViolation); 9] = [
        (b"GET / HTTP/9\r\n\r\n", MalformedHead),
        (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", MalformedHead),
        (b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", MalformedHead),
        (b"GET /a<b HTTP/1.1\r\n\r\n", MalformedHead),
        (b"GET /\xff HTTP/1.1\r\n\r\n", MalformedHead),
        (b"\r\rGET / HTTP/1.1\r\n\r\n", MalformedHead),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", MalformedHead),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            TransferEncodingInHttp10,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            DuplicateContentLength,
        ),
    ];
    for (head, violation) in cases {
        let input = [GET, head, GET].concat();
        assert_seen(
            &input,
            &[Ok(()), Err(violation)],
            State::Rejected,
            &refused_after(GET),
        );
    }
}

#[test]
fn targets_are_refused_only_where_hyper_would_refuse_them() {
    let admitted: [&[u8]; 6] = [
        b"/a/b?c=d&e=%20",
        b"/a\"{}|\\^",
        b"/caf\xc3\xa9",
        b"*",
        b"http://localhost/x",
        b"localhost:443",
    ];
    for target in admitted {
        let input = [b"OPTIONS ", target, b" HTTP/1.1\r\n\r\n"].concat();
        assert_scan(&input, &[Ok(())], State::Head);
    }
    let too_long = [b"GET /", &vec![b'a'; u16::MAX as usize][..], b" HTTP/1.1\r\n\r\n"].concat();
    let verdicts = Arc::new(FramingVerdicts::default());
    let mut scanner = Scanner::new(Arc::clone(&verdicts), 1 << 20);
    scanner.feed(&too_long, &mut Vec::new());
    assert_eq!(verdicts.next_request(), Err(TargetTooLong));
}

#[test]
fn too_large_heads_are_refused_as_soon_as_they_are_too_large() {
    let fill = |len| [b"GET / HTTP/1.1\r\nX: ", &vec![b'a'; len][..], b"\r\n\r\n"].concat();
    let at_limit = fill(MAX_HEAD - 23);
    assert_eq!(at_limit.len(), MAX_HEAD);
    assert_scan(&at_limit, &[Ok(())], State::Head);
    let over = fill(MAX_HEAD - 22);
    assert_seen(&over, &[Err(HeadTooLarge)], State::Rejected, STAND_IN);
    // Without its end, and with the empty lines before it that hyper also counts.
    let endless = [&b"\r\n".repeat(100)[..], &fill(4 * MAX_HEAD)[..10_000]].concat();
    assert_seen(&endless, &[Err(HeadTooLarge)], State::Rejected, STAND_IN);
    let empty_lines = b"\n".repeat(MAX_HEAD);
    assert_seen(&empty_lines, &[Err(HeadTooLarge)], State::Rejected, STAND_IN);
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let lines = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_seen(lines.as_bytes(), &[Err(HeadTooLarge)], State::Rejected, STAND_IN);
    let hundred = lines.replace("X-100: v\r\n", "");
    assert_scan(hundred.as_bytes(), &[Ok(())], State::Head);
}

const UPGRADE: &[u8] = b"POST /ws HTTP/1.1\r\nUpgrade: websocket\r\nContent-Length: 2\r\n\r\nhi";

#[test]
fn what_follows_an_upgrade_request_and_its_body_is_held_unjudged() {
    let input = [UPGRADE, b"\x81\x05he\n\nllo", GET].concat();
    assert_seen(&input, &[Ok(())], State::Held, UPGRADE);
    let http10 = b"GET /ws HTTP/1.0\r\nUpgrade: websocket\r\n\r\n";
    assert_scan(&[&http10[..], GET].concat(), &[Ok(()); 2], State::Head);
}

#[test]
fn an_unjudged_connection_fails_closed() {
    let (_guarded, shared) = guard(tokio::io::duplex(8).0, Duration::from_secs(1), MAX_HEAD);
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
        let scanned = scan(&input, (rand() as usize % 9) + 1);
        assert!(scanned.verdicts.len() <= 2);
        assert!(scanned.seen.len() <= input.len() + STAND_IN.len());
    }
}
