//! Adversarial suite (issue 9): request smuggling and desync, attacked the way Burp's HTTP
//! Request Smuggler, smuggler.py and h2csmuggler do.
//!
//! The oracle is the recording raw upstream of `support::recorder`: it parses what the gateway
//! sends with httparse and its own strict body framing, records every request per connection,
//! and notes any request it could not frame. For every attack the upstream must receive at
//! most the one intended request and never the `.../smuggled` request hidden in a body, and
//! the client connection must stay in step: a follow-up request on it gets its own response,
//! or the gateway has closed it.
//!
//! Covered, as data-driven matrices (each case reported by name):
//! - HTTP/1.1 CL.TE, TE.CL and TE-only with obfuscated `Transfer-Encoding` (spacing, tab,
//!   case, quotes, lists, duplicates, obs-fold, `\x0b`, bare LF, space before colon) and
//!   obfuscated `Content-Length` (sign, list, hex, spaces, leading zeros, huge, negative);
//! - bad chunk sizes, extensions and terminators;
//! - early answers (401, 404, 405, 400, 413, gateway endpoints) on keep-alive connections
//!   whose unread body is a full second request, including a body sent after the answer;
//! - pipelined requests in one write: responses in order, each forwarded once;
//! - malformed upstream responses (CL+TE, two CLs, bad chunk size, bytes after the body,
//!   bodies on HEAD/204/304, bare CR, obs-fold, garbage status lines, 1xx then nothing): the
//!   client gets 502/504 or a correct answer, never the leftover bytes, and the poisoned
//!   upstream connection is not reused;
//! - upgrade desync: a WebSocket upgrade the upstream refuses, and h2c smuggling (an upstream
//!   answering 101 to a request that asked for no upgrade);
//! - HTTP/2 (ALPN h2) downgraded to the HTTP/1.1 upstream, with raw frames and a minimal HPACK
//!   encoder (the h2 crate refuses to send most of these): H2.TE, H2.CL lies, CR/LF/NUL in
//!   values, bad names, connection-specific headers, pseudo-header abuse, odd `:path`s.
//!
//! Left out: header hygiene, path normalisation, tokens and abuse/timeouts (other files of
//! this suite); HTTP/2 flow-control and HPACK-bomb attacks; timing measurements.

#[path = "../support/mod.rs"]
mod support;

use std::collections::HashMap;

use support::cases::assert_none_failed;
use support::config::route;
use support::h2raw::{self, Field, Outcome, field};
use support::raw::{Client, ReadEnd, Response, exchange, statuses};
use support::recorder::{Recorded, Recorder, Responder, Then, ok_reply, plain_responder};
use support::{Gateway, Setup};

// === The gateway under test ===

/// Routes: `/pub/` public, `/private/` authenticated, `/getonly/` GET only, `/slow/` with a
/// 1 s timeout, `/ws/` WebSocket; nothing else is routed (404). Bodies are limited to 1 KiB.
async fn start(responder: impl Responder) -> (Gateway, Recorder) {
    let upstream = Recorder::start(responder).await;
    let up = upstream.addr;
    let named = |name: &str, settings: &str| route(name, &format!("/{name}/"), up, settings);
    let routes = [
        "[limits]\nmax_body_bytes = \"1KiB\"\n",
        &named("pub", "auth = \"public\""),
        &named("private", "auth = \"required\""),
        &named("getonly", "auth = \"public\"\nmethods = [\"GET\"]"),
        &named("slow", "auth = \"public\"\ntimeout = \"1s\""),
        &named("ws", "auth = \"public\"\nwebsocket = true"),
    ]
    .concat();
    let gateway = Gateway::start(Setup::routes(routes)).await;
    (gateway, upstream)
}

/// Placeholder for a case's tag in prepared bytes; every tag has the same length, so a
/// Content-Length computed with the placeholder stays right.
const TAG: &str = "@TAG@";

/// A request that must only ever be seen as body bytes; `tag` makes it attributable.
fn smuggled(tag: &str) -> String {
    format!("GET /pub/{tag}/smuggled HTTP/1.1\r\nHost: localhost\r\nX-Smuggled: 1\r\n\r\n")
}

/// `data` as the one chunk of a chunked body.
fn chunked(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n0\r\n\r\n", data.len())
}

fn follow_up(tag: &str) -> String {
    format!("GET /pub/{tag}/follow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

// === 1. HTTP/1.1 framing: CL.TE, TE.CL, TE.TE, obfuscated Content-Length ===

/// What a framing case must produce.
#[derive(Debug, Clone)]
enum Want {
    /// `status`, nothing upstream, the connection closed.
    Refused(u16),
    /// Forwarded once with exactly this body, then the follow-up on the same connection.
    Forwarded(String),
    /// Either of the above (RFC-valid but unusual: a gateway may be stricter).
    RefusedOrForwarded(String),
}

struct Case {
    name: String,
    /// Header lines (each ending in CRLF, or in whatever the attack needs) after `Host`.
    headers: String,
    body: String,
    want: Want,
}

/// Runs one framing attack on a fresh connection followed by a follow-up, and checks both
/// what the client saw and what the upstream received.
async fn run_case(gateway: &Gateway, upstream: &Recorder, tag: &str, case: &Case) -> Option<String> {
    assert_eq!(
        tag.len(),
        TAG.len(),
        "tags replace {TAG} in place, keeping lengths"
    );
    let case_bytes = format!("{}\r\n{}", case.headers, case.body).replace(TAG, tag);
    let sent = format!(
        "POST /pub/{tag}/main HTTP/1.1\r\nHost: localhost\r\n{case_bytes}{}",
        follow_up(tag)
    );
    let (responses, end) = exchange(gateway, sent.as_bytes(), &[]).await;
    let seen = upstream.tagged(tag);
    let shown = || {
        format!(
            "[{}]\nsent: {:?}\nclient got: {:?} then {:?}\nupstream saw: {:?}",
            case.name,
            sent,
            responses
                .iter()
                .map(|r| (r.status, r.body_text()))
                .collect::<Vec<_>>(),
            end,
            seen.iter()
                .map(|r| (&r.method, &r.path, String::from_utf8_lossy(&r.body), r.complete))
                .collect::<Vec<_>>()
        )
    };
    if seen.iter().any(|r| r.path.contains("smuggled")) {
        return Some(format!("SMUGGLED request reached the upstream\n{}", shown()));
    }
    if let Err(end) = &end {
        return Some(format!("client stream did not end cleanly: {end:?}\n{}", shown()));
    }
    let refused = |status: u16| responses.len() == 1 && responses[0].status == status && seen.is_empty();
    let forwarded = |body: &str| {
        let main: Vec<_> = seen.iter().filter(|r| r.path.ends_with("/main")).collect();
        statuses(&responses) == [200, 200]
            && responses[0].body_text() == format!("up:/pub/{tag}/main")
            && responses[1].body_text() == format!("up:/pub/{tag}/follow")
            && main.len() == 1
            && main[0].complete
            && main[0].body == body.replace(TAG, tag).as_bytes()
            && seen.len() == 2
    };
    let ok = match &case.want {
        Want::Refused(status) => refused(*status),
        Want::Forwarded(body) => forwarded(body),
        Want::RefusedOrForwarded(body) => refused(400) || forwarded(body),
    };
    (!ok).then(|| format!("expected {:?}\n{}", case.want, shown()))
}

async fn run_matrix(gateway: &Gateway, upstream: &Recorder, prefix: &str, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let tag = format!("{prefix}{i:03}");
        if let Some(failure) = run_case(gateway, upstream, &tag, case).await {
            failures.push(failure);
        }
    }
    upstream.settle().await;
    // A late arrival (an aborted or smuggled request logged after its case) still counts.
    for r in upstream.requests() {
        if r.path.contains("smuggled") {
            failures.push(format!("SMUGGLED request reached the upstream: {r:?}"));
        }
    }
    for (conn, why) in upstream.unframeable() {
        failures.push(format!(
            "the upstream could not frame what the gateway sent on conn {conn}: {why}"
        ));
    }
    failures
}

#[tokio::test]
async fn obfuscated_transfer_encoding_cl_te_te_cl_and_te_te_never_smuggle() {
    // Transfer-Encoding spellings: (name, header line, valid chunked?). `None` means invalid:
    // the gateway must refuse it; `Some(true)` valid; `Some(false)` borderline.
    let variants: Vec<(&str, &str, Option<bool>)> = vec![
        ("plain", "Transfer-Encoding: chunked\r\n", Some(true)),
        ("xchunked", "Transfer-Encoding: xchunked\r\n", None),
        ("leading space", "Transfer-Encoding:  chunked\r\n", Some(true)),
        ("trailing space", "Transfer-Encoding: chunked \r\n", Some(true)),
        ("tab before value", "Transfer-Encoding:\tchunked\r\n", Some(true)),
        ("space before colon", "Transfer-Encoding : chunked\r\n", None),
        ("lower-case name", "Transfer-encoding: chunked\r\n", Some(true)),
        ("upper-case value", "Transfer-Encoding: CHUNKED\r\n", Some(true)),
        ("quoted", "Transfer-Encoding: \"chunked\"\r\n", None),
        (
            "chunked, identity",
            "Transfer-Encoding: chunked, identity\r\n",
            None,
        ),
        (
            "identity, chunked",
            "Transfer-Encoding: identity, chunked\r\n",
            None,
        ),
        (
            "chunked, chunked",
            "Transfer-Encoding: chunked, chunked\r\n",
            None,
        ),
        ("empty list member", "Transfer-Encoding: , chunked\r\n", None),
        (
            "duplicated",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            None,
        ),
        (
            "duplicated with identity",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
            None,
        ),
        (
            "duplicated xchunked first",
            "Transfer-Encoding: xchunked\r\nTransfer-Encoding: chunked\r\n",
            None,
        ),
        ("obs-fold", "Transfer-Encoding:\r\n chunked\r\n", None),
        ("obs-fold tab", "Transfer-Encoding: x\r\n\tchunked\r\n", None),
        ("vertical tab", "Transfer-Encoding:\x0bchunked\r\n", None),
        ("form feed", "Transfer-Encoding:\x0cchunked\r\n", None),
        ("NUL in value", "Transfer-Encoding: chunked\x00\r\n", None),
        (
            "bare LF before it",
            "X: X\nTransfer-Encoding: chunked\r\n",
            Some(false),
        ),
        ("bare CR before it", "X: X\rTransfer-Encoding: chunked\r\n", None),
        (
            "line-folded name",
            "X: X\r\n Transfer-Encoding: chunked\r\n",
            None,
        ),
        ("no space", "Transfer-Encoding:chunked\r\n", Some(true)),
        ("chunked;q", "Transfer-Encoding: chunked;q=1\r\n", None),
        ("gzip", "Transfer-Encoding: gzip\r\n", None),
        ("unicode k", "Transfer-Encoding: chun\u{212a}ed\r\n", None),
    ];
    let (gateway, upstream) = start(plain_responder).await;
    let mut cases = Vec::new();
    for (name, te, valid) in variants {
        let hidden = smuggled(TAG);
        // CL.TE: a front end honouring CL forwards it all; one honouring TE stops at `0`.
        let cl_te_body = format!("0\r\n\r\n{hidden}");
        cases.push(Case {
            name: format!("CL.TE {name}"),
            headers: format!("Content-Length: {}\r\n{te}", cl_te_body.len()),
            body: cl_te_body,
            want: Want::Refused(400),
        });
        // TE.CL: TE first, CL covering only the chunk-size line.
        let chunk = chunked(&hidden);
        let size_line = format!("{:x}\r\n", hidden.len());
        cases.push(Case {
            name: format!("TE.CL {name}"),
            headers: format!("{te}Content-Length: {}\r\n", size_line.len()),
            body: chunk.clone(),
            want: Want::Refused(400),
        });
        // TE only: the hidden request is chunk data; a parser ignoring this TE spelling would
        // read the chunk as the next request.
        let want = match valid {
            Some(true) => Want::Forwarded(hidden.clone()),
            Some(false) => Want::RefusedOrForwarded(hidden.clone()),
            None => Want::Refused(400),
        };
        cases.push(Case {
            name: format!("TE only {name}"),
            headers: te.to_string(),
            body: chunk,
            want,
        });
    }
    let failures = run_matrix(&gateway, &upstream, "te", &cases).await;
    assert_none_failed("Transfer-Encoding obfuscation", &failures);
}

#[tokio::test]
async fn obfuscated_content_length_never_smuggles() {
    let (gateway, upstream) = start(plain_responder).await;
    let body = smuggled(TAG);
    let len = body.len();
    let refuse = |name: &str, headers: String| Case {
        name: name.to_string(),
        headers,
        body: body.clone(),
        want: Want::Refused(400),
    };
    let forward = |name: &str, headers: String| Case {
        name: name.to_string(),
        headers,
        body: body.clone(),
        want: Want::Forwarded(body.clone()),
    };
    let cases = vec![
        forward("control", format!("Content-Length: {len}\r\n")),
        refuse("plus sign", format!("Content-Length: +{len}\r\n")),
        refuse("minus sign", format!("Content-Length: -{len}\r\n")),
        refuse("negative one", "Content-Length: -1\r\n".into()),
        refuse(
            "list of equal values",
            format!("Content-Length: {len}, {len}\r\n"),
        ),
        refuse(
            "list of different values",
            format!("Content-Length: {len}, 0\r\n"),
        ),
        refuse(
            "two different headers",
            format!("Content-Length: 0\r\nContent-Length: {len}\r\n"),
        ),
        refuse(
            "two equal headers",
            format!("Content-Length: {len}\r\nContent-Length: {len}\r\n"),
        ),
        refuse("hex", format!("Content-Length: 0x{len:x}\r\n")),
        refuse("decimal point", format!("Content-Length: {len}.0\r\n")),
        refuse("exponent", "Content-Length: 1e2\r\n".into()),
        refuse("empty", "Content-Length: \r\n".into()),
        refuse("trailing garbage", format!("Content-Length: {len}x\r\n")),
        refuse(
            "inner space",
            format!("Content-Length: {} {}\r\n", len / 10, len % 10),
        ),
        refuse("20 digits", "Content-Length: 99999999999999999999\r\n".into()),
        refuse("u64 overflow", "Content-Length: 18446744073709551616\r\n".into()),
        refuse("obs-fold", format!("Content-Length:\r\n {len}\r\n")),
        refuse("vertical tab", format!("Content-Length:\x0b{len}\r\n")),
        refuse("space before colon", format!("Content-Length : {len}\r\n")),
        refuse("zero then list", format!("Content-Length: 0,{len}\r\n")),
        refuse("fullwidth digits", "Content-Length: \u{ff14}\u{ff15}\r\n".into()),
        forward("extra leading space", format!("Content-Length:   {len}\r\n")),
        forward("trailing space", format!("Content-Length: {len} \r\n")),
        forward("tab", format!("Content-Length:\t{len}\r\n")),
        forward("lower-case name", format!("content-length: {len}\r\n")),
        Case {
            name: "leading zeros".into(),
            headers: format!("Content-Length: 000{len}\r\n"),
            body: body.clone(),
            want: Want::RefusedOrForwarded(body.clone()),
        },
        Case {
            name: "19 digits (over the body limit)".into(),
            headers: "Content-Length: 9999999999999999999\r\n".into(),
            body: body.clone(),
            want: Want::Refused(413),
        },
        Case {
            name: "declared over the 1 KiB limit".into(),
            headers: "Content-Length: 1025\r\n".into(),
            body: body.clone(),
            want: Want::Refused(413),
        },
    ];
    let failures = run_matrix(&gateway, &upstream, "cl", &cases).await;
    assert_none_failed("Content-Length obfuscation", &failures);
}

#[tokio::test]
async fn transfer_encoding_on_http10_and_odd_request_lines_never_smuggle() {
    let (gateway, upstream) = start(plain_responder).await;
    let mut failures = Vec::new();
    // (name, bytes, acceptable first statuses); a follow-up is appended to each.
    let hidden = smuggled("rl");
    let chunk = chunked(&hidden);
    let cases: Vec<(&str, String)> = vec![
        (
            "HTTP/1.0 with chunked",
            format!(
                "POST /pub/rl/main HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}"
            ),
        ),
        (
            "HTTP/1.0 CL.TE",
            format!(
                "POST /pub/rl/main HTTP/1.0\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"
            ),
        ),
        ("HTTP/0.9 style line", format!("GET /pub/rl/main\r\n\r\n{hidden}")),
        (
            "HTTP/2 version in h1",
            format!("GET /pub/rl/main HTTP/2.0\r\nHost: localhost\r\n\r\n{hidden}"),
        ),
        (
            "two spaces in request line",
            format!("GET  /pub/rl/main HTTP/1.1\r\nHost: localhost\r\n\r\n{hidden}"),
        ),
        (
            "tab in request line",
            format!("GET\t/pub/rl/main HTTP/1.1\r\nHost: localhost\r\n\r\n{hidden}"),
        ),
        (
            "request line with bare CR",
            format!("GET /pub/rl/main\rHTTP/1.1\r\nHost: localhost\r\n\r\n{hidden}"),
        ),
        (
            "request line with a smuggled line",
            "GET /pub/rl/main HTTP/1.1\rX GET /pub/rl/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"
                .to_string(),
        ),
        (
            "header without colon",
            format!(
                "POST /pub/rl/main HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{hidden}"
            ),
        ),
        (
            "header name with space",
            format!(
                "POST /pub/rl/main HTTP/1.1\r\nHost: localhost\r\nContent Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"
            ),
        ),
    ];
    for (name, bytes) in cases {
        let sent = format!("{bytes}{}", follow_up("rl"));
        let before = upstream.requests().len();
        let (responses, end) = exchange(&gateway, sent.as_bytes(), &[]).await;
        let seen: Vec<Recorded> = upstream.requests().split_off(before);
        let smuggled_seen = seen.iter().any(|r| r.path.contains("smuggled"));
        // A refusal (400/505) with the connection closed, or the one request answered in
        // order; never a response to the hidden request.
        let first_ok = responses.first().is_some_and(|r| [400, 505].contains(&r.status))
            && responses.len() == 1
            && seen.is_empty();
        let served = responses
            .iter()
            .all(|r| r.status == 200 && !r.body_text().contains("smuggled"))
            && seen.iter().all(|r| r.complete && !r.path.contains("smuggled"));
        if smuggled_seen || end.is_err() || !(first_ok || served) {
            failures.push(format!(
                "[{name}] sent {sent:?}\nclient got {:?} then {end:?}\nupstream saw {:?}",
                responses
                    .iter()
                    .map(|r| (r.status, r.body_text()))
                    .collect::<Vec<_>>(),
                seen.iter().map(|r| (&r.method, &r.path)).collect::<Vec<_>>()
            ));
        }
    }
    assert_none_failed("request line and version oddities", &failures);
}

// === 2. Chunk sizes, extensions and terminators ===

#[tokio::test]
async fn bad_chunk_sizes_and_terminators_never_smuggle_or_reach_the_upstream_whole() {
    let (gateway, upstream) = start(plain_responder).await;
    /// What a chunked body must produce.
    enum Chunks {
        /// Forwarded once with this body, then the follow-up on the same connection.
        Valid(&'static str),
        /// An error answer (4xx/5xx), the connection closed, no complete request upstream.
        Broken,
        /// Broken, or forwarded with this body; never anything else.
        BrokenOr(&'static str),
        /// A size over the 1 KiB limit: 413 and closed.
        TooLarge,
    }
    use Chunks::*;
    let big = "A".repeat(1100);
    let cases: Vec<(&str, String, Chunks)> = vec![
        ("control", "5\r\nhello\r\n0\r\n\r\n".into(), Valid("hello")),
        (
            "two chunks",
            "2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n".into(),
            Valid("hello"),
        ),
        (
            "leading zeros",
            "0005\r\nhello\r\n0000\r\n\r\n".into(),
            Valid("hello"),
        ),
        (
            "upper-case hex",
            "A\r\nhellohello\r\n0\r\n\r\n".into(),
            Valid("hellohello"),
        ),
        (
            "space before extension",
            "5 ;ext\r\nhello\r\n0\r\n\r\n".into(),
            Valid("hello"),
        ),
        (
            "tab after size",
            "5\t\r\nhello\r\n0\r\n\r\n".into(),
            Valid("hello"),
        ),
        (
            "quoted extension with ;",
            "5;a=\"x;y\"\r\nhello\r\n0;z=1\r\n\r\n".into(),
            Valid("hello"),
        ),
        (
            "trailer with framing headers",
            "5\r\nhello\r\n0\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            Valid("hello"),
        ),
        ("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n".into(), Broken),
        ("plus sign", "+5\r\nhello\r\n0\r\n\r\n".into(), Broken),
        ("minus sign", "-5\r\nhello\r\n0\r\n\r\n".into(), Broken),
        ("space inside size", "0 5\r\nhello\r\n0\r\n\r\n".into(), Broken),
        (
            "17 hex digits (overflow)",
            "10000000000000005\r\nhello\r\n0\r\n\r\n".into(),
            Broken,
        ),
        ("empty size line", "\r\nhello\r\n0\r\n\r\n".into(), Broken),
        ("size with bare LF", "5\nhello\r\n0\r\n\r\n".into(), Broken),
        ("data with bare LF", "5\r\nhello\n0\r\n\r\n".into(), Broken),
        ("missing CRLF after data", "5\r\nhello0\r\n\r\n".into(), Broken),
        ("data longer than size", "3\r\nhello\r\n0\r\n\r\n".into(), Broken),
        ("data shorter than size", "8\r\nhello\r\n0\r\n\r\n".into(), Broken),
        (
            "extension with bare CR",
            "5;a=b\rc\r\nhello\r\n0\r\n\r\n".into(),
            Broken,
        ),
        (
            "extension with bare LF",
            "5;a\nb\r\nhello\r\n0\r\n\r\n".into(),
            Broken,
        ),
        (
            "quoted extension with CRLF",
            "5;a=\"x\r\nGET /pub/ch/smuggled HTTP/1.1\r\n\"\r\nhello\r\n0\r\n\r\n".into(),
            Broken,
        ),
        (
            "last chunk with bare LF end",
            "5\r\nhello\r\n0\n\n".into(),
            BrokenOr("hello"),
        ),
        ("last chunk then CR only", "5\r\nhello\r\n0\r\n\rX".into(), Broken),
        (
            "0 without final CRLF, then a request",
            "5\r\nhello\r\n0\r\nGET /pub/ch/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
            BrokenOr("hello"),
        ),
        (
            "request hidden as chunk extension",
            "5;GET /pub/ch/smuggled HTTP/1.1\r\nhello\r\n0\r\n\r\n".into(),
            Valid("hello"),
        ),
        (
            "size 2^64-1 then data over the limit",
            format!("ffffffffffffffff\r\n{big}"),
            TooLarge,
        ),
        (
            "chunk over the limit",
            format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len()),
            TooLarge,
        ),
    ];
    let mut failures = Vec::new();
    for (i, (name, body, want)) in cases.into_iter().enumerate() {
        let tag = format!("ch-{i}");
        // The hidden request after the body: where a lost parser would look for the next one.
        let body = body.replace("/pub/ch/", &format!("/pub/{tag}/"));
        let sent = format!(
            "POST /pub/{tag}/main HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n{body}{}{}",
            smuggled(&tag),
            follow_up(&tag)
        );
        let (responses, end) = exchange(&gateway, sent.as_bytes(), &[]).await;
        let seen = upstream.tagged(&tag);
        let main: Vec<&Recorded> = seen.iter().filter(|r| r.path.ends_with("/main")).collect();
        let follow = seen.iter().filter(|r| r.path.ends_with("/follow")).count();
        let hidden = seen.iter().filter(|r| r.path.ends_with("/smuggled")).count();
        // With a valid body, the hidden request after it is a genuine pipelined request: it
        // must be answered in order, between main and follow.
        let valid = |expected: &str| {
            statuses(&responses) == [200, 200, 200]
                && responses[0].body_text() == format!("up:/pub/{tag}/main")
                && responses[1].body_text() == format!("up:/pub/{tag}/smuggled")
                && responses[2].body_text() == format!("up:/pub/{tag}/follow")
                && main.len() == 1
                && main[0].complete
                && main[0].body == expected.as_bytes()
                && hidden == 1
                && follow == 1
        };
        let broken = || {
            responses.len() == 1
                && (400..600).contains(&responses[0].status)
                && main.iter().all(|r| !r.complete)
                && hidden == 0
                && follow == 0
        };
        let ok = end.is_ok()
            && match want {
                Valid(expected) => valid(expected),
                Broken => broken(),
                BrokenOr(expected) => broken() || valid(expected),
                TooLarge => statuses(&responses) == [413] && main.iter().all(|r| !r.complete) && hidden == 0,
            };
        if !ok {
            failures.push(format!(
                "[{name}]\nsent: {sent:?}\nclient got: {:?} then {end:?}\nupstream saw: {:?}",
                responses
                    .iter()
                    .map(|r| (r.status, r.body_text()))
                    .collect::<Vec<_>>(),
                seen.iter()
                    .map(|r| (&r.path, String::from_utf8_lossy(&r.body), r.complete))
                    .collect::<Vec<_>>()
            ));
        }
    }
    upstream.settle().await;
    for (conn, why) in upstream.unframeable() {
        failures.push(format!(
            "the upstream could not frame what the gateway sent on conn {conn}: {why}"
        ));
    }
    assert_none_failed("chunked framing", &failures);
}

// === 3. Early answers on keep-alive: the unread body is never parsed as a request ===

#[tokio::test]
async fn a_body_left_unread_by_an_early_answer_is_never_parsed_as_a_request() {
    let (gateway, upstream) = start(plain_responder).await;
    let mut failures = Vec::new();
    // (name, request line + headers up to the body framing, expected status, chunked?)
    let cases: Vec<(&str, &str, u16, bool)> = vec![
        (
            "401 no token",
            "POST /private/{tag}/main HTTP/1.1\r\n",
            401,
            false,
        ),
        (
            "401 no token, chunked",
            "POST /private/{tag}/main HTTP/1.1\r\n",
            401,
            true,
        ),
        (
            "401 bad token",
            "POST /private/{tag}/main HTTP/1.1\r\nAuthorization: Bearer x.y.z\r\n",
            401,
            false,
        ),
        (
            "401 with Expect: 100-continue",
            "POST /private/{tag}/main HTTP/1.1\r\nExpect: 100-continue\r\n",
            401,
            false,
        ),
        (
            "401 GET with a body",
            "GET /private/{tag}/main HTTP/1.1\r\n",
            401,
            false,
        ),
        (
            "404 unrouted",
            "POST /nowhere/{tag}/main HTTP/1.1\r\n",
            404,
            false,
        ),
        (
            "404 unrouted, chunked",
            "POST /nowhere/{tag}/main HTTP/1.1\r\n",
            404,
            true,
        ),
        (
            "405 method the route does not take",
            "POST /getonly/{tag}/main HTTP/1.1\r\n",
            405,
            false,
        ),
        ("405 gateway endpoint", "POST /auth/me HTTP/1.1\r\n", 405, false),
        (
            "405 login with PUT, chunked",
            "PUT /auth/login HTTP/1.1\r\n",
            405,
            true,
        ),
        (
            "400 encoded slash",
            "POST /pub/{tag}/a%2fb HTTP/1.1\r\n",
            400,
            false,
        ),
        (
            "400 two Authorization",
            "POST /pub/{tag}/main HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n",
            400,
            false,
        ),
        (
            "200 jwks with a body",
            "GET /.well-known/jwks.json HTTP/1.1\r\n",
            200,
            false,
        ),
        ("401 auth/me with a body", "GET /auth/me HTTP/1.1\r\n", 401, false),
        (
            "413 declared over the limit",
            "POST /pub/{tag}/main HTTP/1.1\r\n",
            413,
            false,
        ),
    ];
    for (i, (name, head, status, chunk)) in cases.into_iter().enumerate() {
        let tag = format!("early-{i}");
        let hidden = smuggled(&tag);
        let body = match (chunk, status) {
            (true, _) => chunked(&hidden).into_bytes(),
            (false, 413) => format!("{hidden}{}", "x".repeat(1100 - hidden.len())).into_bytes(),
            (false, _) => hidden.clone().into_bytes(),
        };
        let framing = match chunk {
            true => "Transfer-Encoding: chunked\r\n".to_string(),
            false => format!("Content-Length: {}\r\n", body.len()),
        };
        let sent = [
            head.replace("{tag}", &tag).as_bytes(),
            b"Host: localhost\r\n",
            framing.as_bytes(),
            b"\r\n",
            &body,
            follow_up(&tag).as_bytes(),
        ]
        .concat();
        let (responses, end) = exchange(&gateway, &sent, &[]).await;
        let seen = upstream.tagged(&tag);
        let main_seen = seen.iter().any(|r| r.path.ends_with("/main"));
        let hidden_seen = seen.iter().any(|r| r.path.contains("smuggled"));
        // The early answer, then either the follow-up's own answer or a closed connection.
        let first_ok = responses.first().is_some_and(|r| r.status == status);
        let rest_ok = match responses.get(1..).unwrap_or_default() {
            [] => seen.iter().all(|r| !r.path.ends_with("/follow")),
            [follow] => follow.status == 200 && follow.body_text() == format!("up:/pub/{tag}/follow"),
            _ => false,
        };
        let must_close = status == 413;
        if hidden_seen
            || main_seen
            || end.is_err()
            || !first_ok
            || !rest_ok
            || (must_close && responses.len() != 1)
        {
            failures.push(format!(
                "[{name}] expected {status}\nsent: {:?}\nclient got: {:?} then {end:?}\nupstream saw: {:?}",
                String::from_utf8_lossy(&sent),
                responses
                    .iter()
                    .map(|r| (r.status, r.body_text()))
                    .collect::<Vec<_>>(),
                seen.iter().map(|r| &r.path).collect::<Vec<_>>()
            ));
        }
    }
    upstream.settle().await;
    if upstream
        .requests()
        .iter()
        .any(|r| r.path.contains("smuggled") || r.path.ends_with("/main"))
    {
        failures.push(format!("late upstream arrivals: {:?}", upstream.requests()));
    }
    assert_none_failed("early answers", &failures);
}

#[tokio::test]
async fn a_body_sent_after_an_early_answer_is_never_parsed_as_a_request() {
    let (gateway, upstream) = start(plain_responder).await;
    let mut failures = Vec::new();
    for (name, framing) in [
        ("content-length", "Content-Length: 66\r\n"),
        ("chunked", "Transfer-Encoding: chunked\r\n"),
    ] {
        let tag = format!("late-{name}");
        let mut client = Client::open(&gateway).await;
        client
            .send(format!("POST /private/{tag}/main HTTP/1.1\r\nHost: localhost\r\n{framing}\r\n").as_bytes())
            .await;
        let first = client.response(false).await;
        // The body arrives only now: a full request that must never be parsed as one.
        let hidden = smuggled(&tag);
        let body = match name {
            "chunked" => chunked(&hidden).into_bytes(),
            _ => format!("{hidden:<66}").into_bytes(),
        };
        client
            .send(&[body.as_slice(), follow_up(&tag).as_bytes()].concat())
            .await;
        let next = client.response(false).await;
        let ok = matches!(&first, Ok(r) if r.status == 401)
            && match &next {
                Ok(r) => r.status == 200 && r.body_text() == format!("up:/pub/{tag}/follow"),
                Err(ReadEnd::Closed(rest)) => rest.is_empty(),
                Err(_) => false,
            };
        upstream.settle().await;
        let seen = upstream.tagged(&tag);
        if !ok || seen.iter().any(|r| r.path.contains("smuggled")) {
            failures.push(format!(
                "[{name}] first {first:?}\nthen {next:?}\nupstream saw {:?}",
                seen.iter().map(|r| &r.path).collect::<Vec<_>>()
            ));
        }
    }
    assert_none_failed("late bodies", &failures);
}

// === 4. Pipelining ===

#[tokio::test]
async fn pipelined_requests_in_one_write_are_answered_in_order_and_forwarded_once_each() {
    let (gateway, upstream) = start(plain_responder).await;
    let hidden = smuggled("pipe");
    // (request bytes, expected status, expected body: the upstream's echo or a marker)
    let mut requests: Vec<(String, u16, Option<String>)> = vec![
        (
            "GET /pub/pipe/p01 HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
            200,
            Some("up:/pub/pipe/p01".into()),
        ),
        (
            format!(
                "POST /pub/pipe/p02 HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{hidden}",
                hidden.len()
            ),
            200,
            Some("up:/pub/pipe/p02".into()),
        ),
        (
            format!(
                "POST /pub/pipe/p03 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                chunked(&hidden)
            ),
            200,
            Some("up:/pub/pipe/p03".into()),
        ),
        (
            format!(
                "POST /private/pipe/p04 HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{hidden}",
                hidden.len()
            ),
            401,
            None,
        ),
        (
            "GET /pub/pipe/p05?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
            200,
            Some("up:/pub/pipe/p05?x=1".into()),
        ),
        (
            format!(
                "PUT /nowhere/pipe/p06 HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{hidden}",
                hidden.len()
            ),
            404,
            None,
        ),
        (
            "HEAD /pub/pipe/p07 HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
            200,
            Some(String::new()),
        ),
        (
            "DELETE /pub/pipe/p08 HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
            200,
            Some("up:/pub/pipe/p08".into()),
        ),
        (
            "GET /.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
            200,
            None,
        ),
        (
            "\r\nGET /pub/pipe/p10 HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
            200,
            Some("up:/pub/pipe/p10".into()),
        ),
        (
            "OPTIONS /pub/pipe/p11 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".into(),
            200,
            Some("up:/pub/pipe/p11".into()),
        ),
    ];
    for i in 12..40 {
        requests.push((
            format!("GET /pub/pipe/p{i:02} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
            200,
            Some(format!("up:/pub/pipe/p{i:02}")),
        ));
    }
    requests.push((
        "GET /pub/pipe/p40 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".into(),
        200,
        Some("up:/pub/pipe/p40".into()),
    ));
    let sent: String = requests.iter().map(|(r, _, _)| r.as_str()).collect();
    let (responses, end) = exchange(&gateway, sent.as_bytes(), &[6]).await;
    let mut failures = Vec::new();
    if let Err(end) = &end {
        failures.push(format!("stream did not end cleanly: {end:?}"));
    }
    if responses.len() != requests.len() {
        failures.push(format!(
            "{} responses for {} requests",
            responses.len(),
            requests.len()
        ));
    }
    for (i, ((request, status, body), got)) in requests.iter().zip(&responses).enumerate() {
        let body_ok = body.as_ref().is_none_or(|b| got.body_text() == *b);
        if got.status != *status || !body_ok {
            failures.push(format!(
                "#{i} {:?}: expected {status} {body:?}, got {} {:?}",
                request.lines().next(),
                got.status,
                got.body_text()
            ));
        }
    }
    let heads = responses
        .get(6)
        .and_then(|r| r.header("content-length"))
        .map(str::to_string);
    if heads.as_deref() != Some("16") {
        failures.push(format!("HEAD answer lost its Content-Length: {heads:?}"));
    }
    upstream.settle().await;
    let seen: Vec<String> = upstream.requests().iter().map(|r| r.path.clone()).collect();
    let expected: Vec<String> = requests
        .iter()
        .filter_map(|(r, _, _)| {
            let path = r.trim_start().split(' ').nth(1)?;
            path.starts_with("/pub/").then(|| path.to_string())
        })
        .collect();
    if seen != expected {
        failures.push(format!(
            "upstream order:\n  saw      {seen:?}\n  expected {expected:?}"
        ));
    }
    let bodies: Vec<(String, Vec<u8>)> = upstream
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("p02") || r.path.ends_with("p03"))
        .map(|r| (r.path.clone(), r.body.clone()))
        .collect();
    for (path, body) in bodies {
        if body != hidden.as_bytes() {
            failures.push(format!(
                "{path} body changed: {:?}",
                String::from_utf8_lossy(&body)
            ));
        }
    }
    assert_none_failed("pipelining", &failures);
}

// === 5. Malformed upstream responses: no leftover bytes, no reuse of a poisoned connection ===

const POISON: &str = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned";

/// What the client may get for a malformed upstream response.
#[derive(Debug, PartialEq)]
enum Allowed {
    Status(u16),
    /// 200 with exactly this body.
    Ok(&'static str),
    /// The response was cut off (possibly before its head) and the connection closed.
    Aborted,
}

/// A malformed-response case: (name, method, route, allowed outcomes, is the response
/// malformed, so that its upstream connection must be retired?, the upstream's reply to
/// `/<route>/bad-<name>/main` and what it does next).
type Malformed = (
    &'static str,
    &'static str,
    &'static str,
    Vec<Allowed>,
    bool,
    (String, Then),
);

/// Runs one malformed-response case; returns its problems.
async fn malformed_case(gateway: &Gateway, upstream: &Recorder, case: &Malformed) -> Vec<String> {
    use Allowed::*;
    let (name, method, route, allowed, retire, _) = case;
    let base = format!("/{route}/bad-{name}");
    let mut client = Client::open(gateway).await;
    let request = format!("{method} {base}/main HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let first = client.exchange(request.as_bytes(), *method == "HEAD").await;
    let outcome = match &first {
        Result::Ok(r) if r.status == 200 && *method != "HEAD" => Ok(if r.body == b"ok" { "ok" } else { "?" }),
        Result::Ok(r) => Status(r.status),
        Err(ReadEnd::Closed(_)) => Aborted,
        Err(_) => Status(0),
    };
    let leaked = |r: &Response| {
        r.body_text().contains("poison") || r.headers.iter().any(|(_, v)| v.contains("poison"))
    };
    let mut problems = Vec::new();
    if !allowed.contains(&outcome) {
        problems.push(format!("first answer {first:?} is none of {allowed:?}"));
    }
    if first.as_ref().is_ok_and(leaked) {
        problems.push("the first answer carries the upstream's leftover bytes".into());
    }
    // Follow-ups: on the same client connection while it is open, then on new ones; all at
    // once after the bad answer, when a poisoned pooled connection would be reused.
    let follow =
        |n: usize, close: &str| format!("GET {base}/follow-{n} HTTP/1.1\r\nHost: localhost\r\n{close}\r\n");
    let mut follows = Vec::new();
    if first.is_ok() {
        follows.push((0, client.exchange(follow(0, "").as_bytes(), false).await));
    }
    for n in 1..=3 {
        let mut fresh = Client::open(gateway).await;
        let request = follow(n, "Connection: close\r\n");
        follows.push((n, fresh.exchange(request.as_bytes(), false).await));
    }
    for (n, follow) in &follows {
        let expected = format!("up:{base}/follow-{n}");
        match follow {
            Result::Ok(r) if r.status == 200 && r.body_text() == expected => {}
            // The client connection of the bad answer may have been closed instead.
            Err(ReadEnd::Closed(rest)) if *n == 0 && rest.is_empty() => {}
            other => problems.push(format!("follow-up {n} got {other:?}, expected {expected:?}")),
        }
    }
    // The upstream connection that sent a malformed response never carries another request
    // (SPEC 6: "one that sent a malformed response is never reused").
    let requests = upstream.requests();
    match requests.iter().position(|r| r.path == format!("{base}/main")) {
        Some(at) if *retire => {
            let conn = requests[at].conn;
            let reused: Vec<&str> = requests[at + 1..]
                .iter()
                .filter(|r| r.conn == conn)
                .map(|r| r.path.as_str())
                .collect();
            if !reused.is_empty() {
                problems.push(format!(
                    "the poisoned upstream connection {conn} was reused for {reused:?}"
                ));
            }
        }
        Some(_) => {}
        None => problems.push("the upstream never saw the request".into()),
    }
    problems.into_iter().map(|p| format!("[{name}] {p}")).collect()
}

async fn malformed_matrix(cases: &[Malformed]) -> Vec<String> {
    let replies: HashMap<String, (Vec<u8>, Then)> = cases
        .iter()
        .map(|(name, _, route, _, _, (reply, then))| {
            (
                format!("/{route}/bad-{name}/main"),
                (reply.clone().into_bytes(), *then),
            )
        })
        .collect();
    let responder = move |request: &Recorded| match replies.get(&request.path) {
        Some(reply) => reply.clone(),
        None => (ok_reply(request), Then::KeepAlive),
    };
    let (gateway, upstream) = start(responder).await;
    let mut failures = Vec::new();
    for case in cases {
        failures.extend(malformed_case(&gateway, &upstream, case).await);
    }
    failures
}

#[tokio::test]
async fn malformed_upstream_responses_are_502_and_never_leak_into_the_next_response() {
    use Allowed::*;
    let ka = |reply: String| (reply, Then::KeepAlive);
    let cases: Vec<Malformed> = vec![
        (
            "two-cls",
            "GET",
            "pub",
            vec![Status(502)],
            true,
            ka(format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 45\r\n\r\nok{POISON}"
            )),
        ),
        (
            "cl-list",
            "GET",
            "pub",
            vec![Status(502)],
            true,
            ka(format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 2, 45\r\n\r\nok{POISON}"
            )),
        ),
        (
            "cl-plus",
            "GET",
            "pub",
            vec![Status(502)],
            true,
            ka(format!("HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok{POISON}")),
        ),
        (
            "bad-chunk-size",
            "GET",
            "pub",
            vec![Status(502), Aborted],
            true,
            ka(format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n{POISON}"
            )),
        ),
        (
            "chunk-data-overrun",
            "GET",
            "pub",
            vec![Status(502), Aborted],
            true,
            ka(format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nok\r\n0\r\n\r\n{POISON}"
            )),
        ),
        (
            "extra-response-after-body",
            "GET",
            "pub",
            vec![Status(502), Ok("ok")],
            true,
            ka(format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok{POISON}")),
        ),
        (
            "extra-after-chunked",
            "GET",
            "pub",
            vec![Status(502), Ok("ok")],
            true,
            ka(format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n{POISON}"
            )),
        ),
        (
            "204-with-body",
            "GET",
            "pub",
            vec![Status(502), Status(204)],
            true,
            ka(format!("HTTP/1.1 204 No Content\r\n\r\n{POISON}")),
        ),
        (
            "304-with-body",
            "GET",
            "pub",
            vec![Status(502), Status(304)],
            true,
            ka(format!(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 8\r\n\r\npoisoned{POISON}"
            )),
        ),
        (
            "head-with-body",
            "HEAD",
            "pub",
            vec![Status(502), Status(200)],
            true,
            ka(format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned{POISON}"
            )),
        ),
        (
            "bare-cr-header",
            "GET",
            "pub",
            vec![Status(502)],
            true,
            ka(format!(
                "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok{POISON}"
            )),
        ),
        (
            "bare-cr-line-end",
            "GET",
            "pub",
            vec![Status(502)],
            true,
            ka(format!("HTTP/1.1 200 OK\rContent-Length: 2\r\n\r\nok{POISON}")),
        ),
        (
            "nul-in-header",
            "GET",
            "pub",
            vec![Status(502)],
            true,
            ka(format!(
                "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok{POISON}"
            )),
        ),
        (
            "obs-fold",
            "GET",
            "pub",
            vec![Status(502)],
            true,
            ka(format!(
                "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok{POISON}"
            )),
        ),
        (
            "space-before-colon",
            "GET",
            "pub",
            vec![Status(502)],
            true,
            ka(format!("HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok{POISON}")),
        ),
        (
            "status-garbage",
            "GET",
            "pub",
            vec![Status(502)],
            true,
            ka(format!("HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok{POISON}")),
        ),
        (
            "version-garbage",
            "GET",
            "pub",
            vec![Status(502)],
            true,
            ka(format!("HTTX/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok{POISON}")),
        ),
        (
            "not-http-at-all",
            "GET",
            "pub",
            vec![Status(502)],
            true,
            ka(format!("hello there\r\n\r\n{POISON}")),
        ),
        (
            "1xx-then-response",
            "GET",
            "pub",
            vec![Ok("ok")],
            false,
            ka("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".into()),
        ),
        (
            "1xx-then-nothing",
            "GET",
            "slow",
            vec![Status(504)],
            true,
            ("HTTP/1.1 102 Processing\r\n\r\n".into(), Then::Hold),
        ),
        (
            "1xx-then-close",
            "GET",
            "pub",
            vec![Status(502)],
            true,
            ("HTTP/1.1 100 Continue\r\n\r\n".into(), Then::Close),
        ),
        (
            "short-body-then-close",
            "GET",
            "pub",
            vec![Status(502), Aborted],
            true,
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok".into(),
                Then::Close,
            ),
        ),
    ];
    assert_none_failed("malformed upstream responses", &malformed_matrix(&cases).await);
}

/// An upstream response with both Content-Length and Transfer-Encoding: RFC 9112 6.3 says an
/// intermediary must drop the Content-Length before forwarding (and ought to treat it as an
/// error); SPEC 6 says such a connection is never reused.
#[tokio::test]
async fn an_upstream_response_with_content_length_and_transfer_encoding_is_not_relayed_inconsistently() {
    use Allowed::*;
    let ka = |reply: String| (reply, Then::KeepAlive);
    let cases: Vec<Malformed> = vec![
        ("cl-and-te", "GET", "pub", vec![Status(502), Ok("ok")], true, ka(format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n{POISON}"
            ))),
        ("te-and-cl-clean", "GET", "pub", vec![Status(502), Ok("ok")], true, ka("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                .into())),
        ("cl-shorter-than-chunked", "GET", "pub", vec![Status(502)], true, ka(format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\nok{POISON}\r\n0\r\n\r\n",
                2 + POISON.len()
            ))),
    ];
    assert_none_failed("CL+TE upstream responses", &malformed_matrix(&cases).await);
}

// === 6. Upgrade desync: refused WebSocket upgrades and h2c smuggling ===

fn upgrade_responder(request: &Recorded) -> (Vec<u8>, Then) {
    match request.path.as_str() {
        // The upstream refuses the WebSocket upgrade: no tunnel may open.
        p if p.starts_with("/ws/refused") && p.ends_with("/main") => (
            b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\n\r\nno".to_vec(),
            Then::KeepAlive,
        ),
        p if p.starts_with("/ws/ok200") && p.ends_with("/main") => (ok_reply(request), Then::KeepAlive),
        // A naive backend switching to whatever it was asked (h2csmuggler's target).
        p if p.contains("/switch") => (
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec(),
            Then::Hold,
        ),
        _ => (ok_reply(request), Then::KeepAlive),
    }
}

#[tokio::test]
async fn a_refused_upgrade_or_an_unasked_101_never_opens_a_tunnel_to_the_upstream() {
    // The relayed 101 itself is the separate test below.
    assert_none_failed("upgrade desync", &upgrade_matrix(false, true).await);
}

/// RFC 9110 15.2.2: a server must not switch to a protocol the client did not ask for, so an
/// upstream's 101 to a request that asked for no upgrade (or for h2c, which the gateway
/// strips) is a bad upstream response: 502, like any other malformed one.
#[tokio::test]
async fn an_upstream_101_to_a_request_that_asked_for_no_upgrade_is_a_502() {
    assert_none_failed("unasked 101", &upgrade_matrix(true, false).await);
}

/// `strict`: the unasked-101 cases must be 502 (else a relayed 101 is tolerated as long as
/// no tunnel opens); `refusals`: include the refused-upgrade cases.
async fn upgrade_matrix(strict: bool, refusals: bool) -> Vec<String> {
    let (gateway, upstream) = start(upgrade_responder).await;
    let mut failures = Vec::new();
    let websocket = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let h2c =
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";
    let bad_version = websocket.replace("13", "1337");
    // (name, path of a GET, its header lines, statuses the answer may have)
    let cases: [(&str, &str, &str, &[u16]); 7] = [
        (
            "websocket refused by the upstream",
            "/ws/refused/main",
            websocket,
            &[426],
        ),
        (
            "websocket answered 200 by the upstream",
            "/ws/ok200/main",
            websocket,
            &[200],
        ),
        (
            "websocket with a bad version",
            "/ws/refused/main",
            &bad_version,
            &[426, 400],
        ),
        (
            "h2c upgrade on a public route",
            "/pub/h2c/switch",
            h2c,
            &[502, 400],
        ),
        (
            "h2c upgrade on a websocket route",
            "/ws/h2c/switch",
            h2c,
            &[502, 400],
        ),
        ("plain GET answered 101", "/pub/plain/switch", "", &[502]),
        (
            "websocket answered 101 on a non-websocket route",
            "/pub/ws/switch",
            websocket,
            &[502],
        ),
    ];
    for (name, path, headers, allowed) in cases {
        let unasked = path.ends_with("/switch");
        if !unasked && !refusals {
            continue;
        }
        let allowed = [allowed, if unasked && !strict { &[101] } else { &[] }].concat();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
        let mut client = Client::open(&gateway).await;
        let first = client.exchange(request.as_bytes(), false).await;
        // What a tunnel would carry straight to the upstream: the h2 preface and a request
        // to a protected path without a token.
        client
            .send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET /private/tunnel/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        let second = client.response(false).await;
        let mut problems = Vec::new();
        match &first {
            Ok(r) if allowed.contains(&r.status) => {}
            other => problems.push(format!("first answer {other:?}, expected one of {allowed:?}")),
        }
        // The bytes after it are HTTP to the gateway (refused: 400, or 401 for the protected
        // path) or the connection is closed; never tunnelled.
        // A refusal is the gateway's own answer (JSON, HSTS), never hyper's bare one.
        let own_answer = |r: &Response| {
            r.header("content-type") == Some("application/json")
                && r.header("strict-transport-security").is_some()
        };
        match &second {
            Ok(r) if [400, 401].contains(&r.status) && own_answer(r) => {}
            Err(ReadEnd::Closed(rest)) if rest.is_empty() => {}
            other => problems.push(format!("after the upgrade attempt: {other:?}")),
        }
        upstream.settle().await;
        let tunnelled = String::from_utf8_lossy(&upstream.log().after_switch).into_owned();
        if tunnelled.contains("smuggled") || tunnelled.contains("PRI *") {
            problems.push(format!(
                "client bytes reached the upstream through a tunnel: {tunnelled:?}"
            ));
        }
        if upstream.requests().iter().any(|r| r.path.contains("smuggled")) {
            problems.push("the tunnelled request reached the upstream".into());
        }
        let forwarded_upgrade: Vec<String> = upstream
            .requests()
            .iter()
            .filter(|r| r.path.contains("h2c") || r.path.contains("plain"))
            .flat_map(|r| [r.header("upgrade"), r.header("http2-settings")].concat())
            .map(str::to_string)
            .collect();
        if !forwarded_upgrade.is_empty() {
            problems.push(format!(
                "h2c upgrade headers reached the upstream: {forwarded_upgrade:?}"
            ));
        }
        if !problems.is_empty() {
            failures.push(format!("[{name}]\n  {}", problems.join("\n  ")));
        }
    }
    failures
}

// === 7. HTTP/2 downgraded to the HTTP/1.1 upstream, with raw frames ===

/// What an h2 case must produce.
#[derive(Debug)]
enum H2Want {
    /// Answered 200 by the upstream, which got exactly one request with this body.
    Forwarded(Vec<u8>),
    /// Reset, GOAWAY, closed or 400, and nothing at all reached the upstream.
    Refused,
    /// Not answered 2xx, and the upstream got no complete request, or one whose body is
    /// exactly this (the declared length) and never anything more.
    AtMost(Option<Vec<u8>>),
    /// Forwarded with this body, or `AtMost(Some(body))`: malformed trailers, which the
    /// gateway drops anyway.
    EitherWay(Vec<u8>),
}

/// Builds an h2 case for a tag.
type CaseFn<'a> = Box<dyn Fn(&str) -> H2Case + 'a>;

struct H2Case {
    name: &'static str,
    fields: Vec<Field>,
    data: Vec<Vec<u8>>,
    trailers: Option<Vec<Field>>,
    want: H2Want,
}

#[tokio::test]
async fn http2_requests_downgraded_to_http11_never_smuggle() {
    let (gateway, upstream) = start(plain_responder).await;
    let hidden = smuggled("h2");
    let hidden_bytes = hidden.as_bytes().to_vec();
    // The ordinary pseudo-headers for `tag`, plus `x-case` to attribute what the upstream saw.
    let base = |tag: &str, method: &str| -> Vec<Field> {
        vec![
            field(":method", method),
            field(":scheme", "https"),
            field(":authority", "localhost"),
            field(":path", format!("/pub/{tag}/main")),
            field("x-case", tag),
        ]
    };
    let with = |tag: &str, extra: Vec<Field>| {
        let mut fields = base(tag, "POST");
        fields.extend(extra);
        fields
    };
    let replace = |tag: &str, name: &str, value: &[u8]| {
        let mut fields = base(tag, "POST");
        for f in &mut fields {
            if f.0 == name.as_bytes() {
                f.1 = value.to_vec();
            }
        }
        fields
    };
    let without = |tag: &str, name: &str| {
        let mut fields = base(tag, "POST");
        fields.retain(|f| f.0 != name.as_bytes());
        fields
    };
    use H2Want::*;
    let hello = || vec![b"hello".to_vec()];
    let cases: Vec<CaseFn> = vec![
        // Controls: the frame writer works and a body that is a whole HTTP/1.1 request is
        // forwarded as body bytes, with framing of the gateway's own.
        Box::new(|t| H2Case {
            name: "control GET",
            fields: base(t, "GET"),
            data: vec![],
            trailers: None,
            want: Forwarded(vec![]),
        }),
        Box::new(|t| H2Case {
            name: "control POST with content-length",
            fields: with(t, vec![field("content-length", "5")]),
            data: hello(),
            trailers: None,
            want: Forwarded(b"hello".to_vec()),
        }),
        Box::new(|t| H2Case {
            name: "body is an HTTP/1.1 request, no content-length",
            fields: base(t, "POST"),
            data: vec![hidden_bytes.clone()],
            trailers: None,
            want: Forwarded(hidden_bytes.clone()),
        }),
        Box::new(|t| H2Case {
            name: "body is an HTTP/1.1 request, with content-length",
            fields: with(t, vec![field("content-length", hidden.len().to_string())]),
            data: vec![hidden_bytes.clone()],
            trailers: None,
            want: Forwarded(hidden_bytes.clone()),
        }),
        Box::new(|t| H2Case {
            name: "body is an HTTP/1.1 request in many frames",
            fields: base(t, "POST"),
            data: hidden_bytes.chunks(7).map(<[u8]>::to_vec).collect(),
            trailers: None,
            want: Forwarded(hidden_bytes.clone()),
        }),
        Box::new(|t| H2Case {
            name: "legitimate trailers are dropped",
            fields: with(t, vec![field("te", "trailers")]),
            data: hello(),
            trailers: Some(vec![field("x-trailer", "1")]),
            want: Forwarded(b"hello".to_vec()),
        }),
        // H2.TE
        Box::new(|t| H2Case {
            name: "H2.TE transfer-encoding: chunked",
            fields: with(t, vec![field("transfer-encoding", "chunked")]),
            data: vec![[b"0\r\n\r\n".as_slice(), &hidden_bytes].concat()],
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "H2.TE with content-length",
            fields: with(
                t,
                vec![
                    field("content-length", "5"),
                    field("transfer-encoding", "chunked"),
                ],
            ),
            data: vec![b"0\r\n\r\n".to_vec()],
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "transfer-encoding in trailers",
            fields: base(t, "POST"),
            data: hello(),
            trailers: Some(vec![field("transfer-encoding", "chunked")]),
            want: EitherWay(b"hello".to_vec()),
        }),
        Box::new(|t| H2Case {
            name: "content-length in trailers",
            fields: base(t, "POST"),
            data: hello(),
            trailers: Some(vec![field("content-length", "0")]),
            want: EitherWay(b"hello".to_vec()),
        }),
        Box::new(|t| H2Case {
            name: "te: gzip",
            fields: with(t, vec![field("te", "gzip")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        // H2.CL
        Box::new(|t| H2Case {
            name: "H2.CL shorter, one DATA frame",
            fields: with(t, vec![field("content-length", "5")]),
            data: vec![[b"hello".as_slice(), &hidden_bytes].concat()],
            trailers: None,
            want: AtMost(None),
        }),
        Box::new(|t| H2Case {
            name: "H2.CL shorter, two DATA frames",
            fields: with(t, vec![field("content-length", "5")]),
            data: vec![b"hello".to_vec(), hidden_bytes.clone()],
            trailers: None,
            want: AtMost(Some(b"hello".to_vec())),
        }),
        Box::new(|t| H2Case {
            name: "H2.CL zero with a body",
            fields: with(t, vec![field("content-length", "0")]),
            data: vec![hidden_bytes.clone()],
            trailers: None,
            want: AtMost(Some(vec![])),
        }),
        Box::new(|t| H2Case {
            name: "H2.CL longer than the DATA",
            fields: with(t, vec![field("content-length", "100")]),
            data: hello(),
            trailers: None,
            want: AtMost(None),
        }),
        Box::new(|t| H2Case {
            name: "content-length twice, different",
            fields: with(
                t,
                vec![field("content-length", "5"), field("content-length", "50")],
            ),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "content-length list",
            fields: with(t, vec![field("content-length", "5, 50")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "content-length +5",
            fields: with(t, vec![field("content-length", "+5")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        // Header injection into the HTTP/1.1 head
        Box::new(|t| H2Case {
            name: "CRLF in a value",
            fields: with(t, vec![field(b"x-inject", b"a\r\nTransfer-Encoding: chunked")]),
            data: vec![b"0\r\n\r\n".to_vec()],
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "CRLFCRLF request in a value",
            fields: with(
                t,
                vec![field(b"x-inject", format!("a\r\n\r\n{hidden}").as_bytes())],
            ),
            data: vec![],
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "LF in a value",
            fields: with(t, vec![field(b"x-inject", b"a\nTransfer-Encoding: chunked")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "CR in a value",
            fields: with(t, vec![field(b"x-inject", b"a\rTransfer-Encoding: chunked")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "NUL in a value",
            fields: with(t, vec![field(b"x-inject", b"a\0b")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "CRLF in a name",
            fields: with(t, vec![field(b"x-inject\r\ntransfer-encoding", b"chunked")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "colon in a name",
            fields: with(t, vec![field(b"transfer-encoding:chunked\r\nx", b"1")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "space in a name",
            fields: with(t, vec![field(b"transfer-encoding ", b"chunked")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "upper-case name",
            fields: with(t, vec![field("X-Upper", "1")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "upper-case Transfer-Encoding",
            fields: with(t, vec![field("Transfer-Encoding", "chunked")]),
            data: vec![b"0\r\n\r\n".to_vec()],
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "empty name",
            fields: with(t, vec![field(b"", b"x")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        // Connection-specific headers (RFC 9113 8.2.2)
        Box::new(|t| H2Case {
            name: "connection",
            fields: with(t, vec![field("connection", "keep-alive")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "connection naming content-length",
            fields: with(
                t,
                vec![
                    field("content-length", "5"),
                    field("connection", "content-length"),
                ],
            ),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "keep-alive",
            fields: with(t, vec![field("keep-alive", "timeout=5")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "upgrade",
            fields: with(t, vec![field("upgrade", "h2c")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "proxy-connection",
            fields: with(t, vec![field("proxy-connection", "keep-alive")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        // Pseudo-header abuse
        Box::new(|t| H2Case {
            name: "duplicate :path",
            fields: with(t, vec![field(":path", "/pub/h2/smuggled")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "duplicate :method",
            fields: {
                let mut f = base(t, "POST");
                f.insert(1, field(":method", "GET"));
                f
            },
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "missing :method",
            fields: without(t, ":method"),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "missing :path",
            fields: without(t, ":path"),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "missing :scheme",
            fields: without(t, ":scheme"),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "pseudo-header after a regular one",
            fields: {
                let mut f = base(t, "POST");
                let p = f.remove(3);
                f.push(p);
                f
            },
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "unknown pseudo-header",
            fields: with(t, vec![field(":smuggle", "1")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "pseudo-header in trailers",
            fields: base(t, "POST"),
            data: hello(),
            trailers: Some(vec![field(":path", "/pub/h2/smuggled")]),
            want: EitherWay(b"hello".to_vec()),
        }),
        Box::new(|t| H2Case {
            name: ":path empty",
            fields: replace(t, ":path", b""),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: ":path *",
            fields: replace(t, ":path", b"*"),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: ":path absolute URI",
            fields: replace(t, ":path", format!("http://evil.example/pub/{t}/main").as_bytes()),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: ":path with a space",
            fields: replace(t, ":path", format!("/pub/{t}/main HTTP/1.1").as_bytes()),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: ":path with a request",
            fields: replace(
                t,
                ":path",
                format!("/pub/{t}/main HTTP/1.1\r\nHost: localhost\r\n\r\n{hidden}").as_bytes(),
            ),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: ":path without a slash",
            fields: replace(t, ":path", format!("pub/{t}/main").as_bytes()),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: ":method with a request line",
            fields: replace(t, ":method", b"GET /pub/h2/smuggled HTTP/1.1\r\nX:"),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: ":method with a space",
            fields: replace(t, ":method", b"GET /pub/h2/smuggled"),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: ":authority with CRLF",
            fields: replace(t, ":authority", b"localhost\r\nTransfer-Encoding: chunked"),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: ":authority with a space",
            fields: replace(t, ":authority", b"localhost x"),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: "host disagreeing with :authority",
            fields: with(t, vec![field("host", "evil.example")]),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
        Box::new(|t| H2Case {
            name: ":scheme with CRLF",
            fields: replace(t, ":scheme", b"https\r\nX: y"),
            data: hello(),
            trailers: None,
            want: Refused,
        }),
    ];
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let tag = format!("h2-{i:02}");
        let H2Case {
            name,
            fields,
            data,
            trailers,
            want,
        } = case(&tag);
        let before = upstream.requests().len();
        let outcome = h2raw::send(
            &gateway,
            &h2raw::Request {
                fields,
                data,
                trailers,
            },
        )
        .await;
        // Let an aborted upstream request land in the log before judging.
        if !matches!(want, Forwarded(_)) {
            upstream.settle().await;
        }
        let seen: Vec<Recorded> = upstream.requests().split_off(before);
        let mine: Vec<&Recorded> = seen
            .iter()
            .filter(|r| r.path.contains(&tag) || r.header("x-case") == [tag.as_str()])
            .collect();
        let mut problems = Vec::new();
        if seen.iter().any(|r| r.path.contains("smuggled")) {
            problems.push("SMUGGLED request reached the upstream".to_string());
        }
        if mine.len() > 1 {
            problems.push(format!("{} upstream requests for one stream", mine.len()));
        }
        let answered_2xx = matches!(
            outcome,
            Outcome::Answered {
                status: Some(200..=299),
                ..
            }
        );
        let refused = matches!(
            &outcome,
            Outcome::Reset(_)
                | Outcome::GoAway(_)
                | Outcome::Closed
                | Outcome::Answered {
                    status: Some(400),
                    ..
                }
        );
        let expected = format!("up:/pub/{tag}/main");
        let forwarded = |body: &Vec<u8>| {
            matches!(&outcome, Outcome::Answered { status: Some(200), body: b } if b == expected.as_bytes())
                && mine.len() == 1
                && mine[0].complete
                && &mine[0].body == body
        };
        let at_most = |allowed: &Option<Vec<u8>>| {
            let complete: Vec<_> = mine.iter().filter(|r| r.complete).collect();
            !answered_2xx
                && !matches!(outcome, Outcome::TimedOut)
                && match allowed {
                    None => complete.is_empty(),
                    Some(body) => complete.iter().all(|r| &r.body == body),
                }
        };
        match &want {
            EitherWay(body) => {
                if !forwarded(body) && !at_most(&Some(body.clone())) {
                    problems.push(format!("expected forwarding of {body:?} or an error"));
                }
            }
            Forwarded(body) => {
                if !forwarded(body) {
                    problems.push(format!(
                        "expected forwarding of {:?}",
                        String::from_utf8_lossy(body)
                    ));
                }
            }
            Refused => {
                if !refused || !mine.is_empty() {
                    problems.push("expected a reset, GOAWAY or 400 with nothing upstream".into());
                }
            }
            AtMost(allowed) => {
                if !at_most(allowed) {
                    problems.push(format!(
                        "expected an error and at most a complete body of {allowed:?}"
                    ));
                }
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "[{}] {}\n  client: {outcome:?}\n  upstream: {:?}",
                name,
                problems.join("; "),
                mine.iter()
                    .map(|r| (
                        &r.method,
                        &r.path,
                        &r.framing,
                        String::from_utf8_lossy(&r.body),
                        r.complete
                    ))
                    .collect::<Vec<_>>()
            ));
        }
    }
    upstream.settle().await;
    for r in upstream.requests() {
        if r.path.contains("smuggled") {
            failures.push(format!("SMUGGLED request reached the upstream: {r:?}"));
        }
    }
    for (conn, why) in upstream.unframeable() {
        failures.push(format!(
            "the upstream could not frame what the gateway sent on conn {conn}: {why}"
        ));
    }
    assert_none_failed("HTTP/2 downgrade", &failures);
}
