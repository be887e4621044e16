//! Scanner and guard tests: verdicts must not depend on how the bytes are split.
use super::scanner::MAX_HEAD_LEN;
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
