//! The guard as hyper meets it: what reads return, when, and after which decisions.
use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn held_bytes_become_the_tunnel_after_a_101() {
    let (mut client, server) = tokio::io::duplex(1024);
    let (mut guarded, verdicts) = guard(server, Duration::from_secs(30), MAX_HEAD);
    let frames = b"\x81\x05he\n\nllo";
    client.write_all(&[UPGRADE, frames].concat()).await.unwrap();
    assert_eq!(read_all(&mut guarded, usize::MAX, 64).await, UPGRADE);
    assert_eq!(verdicts.next_request(), Ok(()));
    verdicts.stop_scanning();
    assert_eq!(read_all(&mut guarded, frames.len(), 64).await, frames);
}

#[tokio::test]
async fn held_bytes_are_judged_as_heads_after_a_refused_upgrade() {
    let (mut client, server) = tokio::io::duplex(1024);
    let (mut guarded, verdicts) = guard(server, Duration::from_secs(30), MAX_HEAD);
    client
        .write_all(&[UPGRADE, GET, b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"].concat())
        .await
        .unwrap();
    assert_eq!(read_all(&mut guarded, usize::MAX, 64).await, UPGRADE);
    assert_eq!(verdicts.next_request(), Ok(()));
    verdicts.upgrade_refused();
    assert_eq!(read_all(&mut guarded, usize::MAX, 64).await, refused_after(GET));
    assert_eq!(verdicts.next_request(), Ok(()));
    assert_eq!(verdicts.next_request(), Err(MalformedHead));
}

#[tokio::test]
async fn a_refusal_decided_before_anything_was_held_applies_to_what_comes_next() {
    let (mut client, server) = tokio::io::duplex(1024);
    let (mut guarded, verdicts) = guard(server, Duration::from_secs(30), MAX_HEAD);
    client.write_all(UPGRADE).await.unwrap();
    assert_eq!(read_all(&mut guarded, UPGRADE.len(), 64).await, UPGRADE);
    verdicts.upgrade_refused();
    client.write_all(GET).await.unwrap();
    assert_eq!(read_all(&mut guarded, GET.len(), 64).await, GET);
}

#[tokio::test]
async fn passes_bytes_through_both_ways() {
    let (mut client, server) = tokio::io::duplex(64);
    let (mut guarded, verdicts) = guard(server, Duration::from_secs(30), MAX_HEAD);
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
    let (mut guarded, verdicts) = guard(server, Duration::from_millis(100), MAX_HEAD);
    let mut buf = [0; 256];

    client.write_all(GET).await.unwrap();
    assert_eq!(guarded.read(&mut buf).await.unwrap(), GET.len());
    assert_eq!(
        read_outcome(&mut guarded).await,
        None,
        "complete head must not time out"
    );
    assert_eq!(verdicts.next_request(), Ok(()));

    // Part of a head is withheld from hyper, so the read that waits for the rest times out.
    client.write_all(b"GET / HT").await.unwrap();
    assert_eq!(read_outcome(&mut guarded).await, Some(io::ErrorKind::TimedOut));
}

#[tokio::test]
async fn stop_scanning_turns_into_pass_through() {
    let (mut client, server) = tokio::io::duplex(1024);
    let (mut guarded, verdicts) = guard(server, Duration::from_millis(100), MAX_HEAD);
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

/// Reads from the guard in `chunk`-byte steps until `want` bytes have come or a read stalls.
async fn read_all(guarded: &mut FramingGuard<tokio::io::DuplexStream>, want: usize, chunk: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0; chunk];
    while got.len() < want {
        let read = tokio::time::timeout(Duration::from_millis(300), guarded.read(&mut buf));
        match read.await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    got
}

#[tokio::test]
async fn a_head_in_pieces_reaches_hyper_whole_through_a_small_buffer() {
    let (mut client, server) = tokio::io::duplex(1024);
    let (mut guarded, verdicts) = guard(server, Duration::from_secs(30), MAX_HEAD);
    let request = [&one("Content-Length: 3")[..], b"abc", GET].concat();
    let (first, rest) = request.split_at(20);
    client.write_all(first).await.unwrap();
    let mut buf = [0; 8];
    let early = tokio::time::timeout(Duration::from_millis(100), guarded.read(&mut buf));
    assert!(early.await.is_err(), "part of a head reached hyper");
    client.write_all(rest).await.unwrap();
    assert_eq!(read_all(&mut guarded, request.len(), 7).await, request);
    assert_eq!(verdicts.next_request(), Ok(()));
    assert_eq!(verdicts.next_request(), Ok(()));
}

#[tokio::test]
async fn a_refused_head_reaches_hyper_as_the_stand_in_and_nothing_follows() {
    let (mut client, server) = tokio::io::duplex(1024);
    let (mut guarded, verdicts) = guard(server, Duration::from_secs(30), MAX_HEAD);
    client
        .write_all(&[GET, b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", GET].concat())
        .await
        .unwrap();
    let expected = refused_after(GET);
    assert_eq!(read_all(&mut guarded, usize::MAX, 5).await, expected);
    assert_eq!(verdicts.next_request(), Ok(()));
    assert_eq!(verdicts.next_request(), Err(MalformedHead));
    assert_eq!(verdicts.next_request(), Err(Unparseable));
}
