//! Request framing, request targets, header and body limits, driven with raw HTTP/1.1 bytes over
//! TLS so that nothing in a client library can repair what the gateway is meant to refuse.
//!
//! Every test asserts both what the client got back and what the upstream saw.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::cases::assert_none_failed;
use support::raw::{self, Client, ReadEnd, Response, chunk, statuses};
use support::recorder::{Recorded, Recorder, Then, ok_with};
use support::upstreams::Upstream;
use support::{Gateway, Setup, public_route};

/// A second request hidden behind an ambiguous first one: a request-smuggling attempt.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";

const BODY_LIMIT: &str = "[limits]\nmax_body_bytes = \"1KiB\"\n\n";

/// A raw upstream that reads each request in full and answers a complete one with 200 and
/// its body; it records a request cut short as incomplete.
async fn body_upstream() -> Recorder {
    Recorder::start(|request: &Recorded| (ok_with(&request.body), Then::KeepAlive)).await
}

/// The bodies of the requests the upstream read in full, and how many requests it saw cut
/// short: EOF, reset, or malformed framing.
fn bodies(upstream: &Recorder) -> (Vec<String>, usize) {
    let (complete, aborted): (Vec<_>, Vec<_>) = upstream.requests().into_iter().partition(|r| r.complete);
    let text = |r: &Recorded| String::from_utf8_lossy(&r.body).into_owned();
    (complete.iter().map(text).collect(), aborted.len())
}

async fn gateway_with_echo() -> (Gateway, Upstream) {
    let echo = Upstream::echo().await;
    let gateway = Gateway::start(Setup::routes(public_route("echo", "/", echo.addr))).await;
    (gateway, echo)
}

// === reading what came back ===

/// Sends `bytes` on a new connection and reads every response until the gateway closes it,
/// which it must do cleanly and promptly (within `raw::PROMPT`).
async fn exchange(gateway: &Gateway, bytes: &[u8]) -> Vec<Response> {
    let (responses, end) = raw::exchange(gateway, bytes, &[]).await;
    assert!(end.is_ok(), "after {:?}: {end:?}", statuses(&responses));
    responses
}

/// Sends `pieces` on a new connection, pausing between them so that the gateway reads the
/// request in parts: the one response, after which the gateway must close the connection.
async fn one_response(gateway: &Gateway, pieces: &[&[u8]]) -> Response {
    let mut client = Client::open(gateway).await;
    for piece in pieces {
        client.send(piece).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    last_response(&mut client).await
}

/// The next response on `client`, after which the gateway must close the connection promptly.
async fn last_response(client: &mut Client) -> Response {
    let reply = client.response(false).await;
    let reply = reply.unwrap_or_else(|end| panic!("no response: {end:?}"));
    let end = client.response(false).await;
    let closed = matches!(&end, Err(ReadEnd::Closed(rest)) if rest.is_empty());
    assert!(closed, "not closed after a {}: {end:?}", reply.status);
    reply
}

/// Sends `request` followed by a smuggled second request, and checks the contract for
/// ambiguous framing: that of `assert_refused_with_400`.
async fn assert_ambiguous_framing_is_refused(request: &str) {
    assert_refused_with_400(&format!("{request}{SMUGGLED}")).await;
}

/// Sends `request` (which asks for `Connection: close`, or hides a second request) and expects
/// exactly one 400, the connection closed, and nothing at all upstream.
async fn assert_refused_with_400(request: &str) {
    let (gateway, echo) = gateway_with_echo().await;
    let got = exchange(&gateway, request.as_bytes()).await;
    assert_eq!(statuses(&got), [400], "sent:\n{request}");
    assert_eq!(echo.counts.requests(), 0, "the upstream received:\n{request}");
}

// === 1. ambiguous framing ===

#[tokio::test]
async fn content_length_followed_by_transfer_encoding_is_refused_and_the_connection_closed() {
    assert_ambiguous_framing_is_refused(
        "POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn transfer_encoding_followed_by_content_length_is_refused_and_the_connection_closed() {
    assert_ambiguous_framing_is_refused(
        "POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n\
         0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn a_duplicate_identical_content_length_is_refused_and_the_connection_closed() {
    assert_ambiguous_framing_is_refused(
        "POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
}

#[tokio::test]
async fn two_chunked_transfer_encoding_lines_are_refused_and_the_connection_closed() {
    assert_ambiguous_framing_is_refused(
        "POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn a_transfer_coding_before_chunked_is_refused_and_the_connection_closed() {
    assert_ambiguous_framing_is_refused(
        "POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn a_transfer_coding_after_chunked_is_refused_and_the_connection_closed() {
    assert_ambiguous_framing_is_refused(
        "POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn a_signed_content_length_is_refused_and_the_connection_closed() {
    assert_ambiguous_framing_is_refused(
        "POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello",
    )
    .await;
}

#[tokio::test]
async fn a_content_length_list_is_refused_and_the_connection_closed() {
    assert_ambiguous_framing_is_refused(
        "POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 5\r\n\r\nhello",
    )
    .await;
}

#[tokio::test]
async fn an_ambiguous_request_after_a_good_one_on_the_same_connection_is_refused_and_closes_it() {
    let (gateway, echo) = gateway_with_echo().await;
    let sent = format!(
        "GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n\
         POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\n{SMUGGLED}"
    );
    let responses = exchange(&gateway, sent.as_bytes()).await;
    assert_eq!(statuses(&responses), [200, 400]);
    assert_eq!(responses[0].reply().upstream_uri(), "/first");
    assert_eq!(echo.counts.requests(), 1, "only /first may reach the upstream");
}

// === 2. valid framing passes ===

#[tokio::test]
async fn a_chunked_post_with_a_trailer_reaches_the_upstream_whole_and_without_the_trailer() {
    let (gateway, echo) = gateway_with_echo().await;
    let reply = one_response(
        &gateway,
        &[b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n\
          Connection: close\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: secret\r\n\r\n"],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    assert_eq!(reply.json()["body"], "hello world");
    assert!(reply.reply().upstream_header("x-trailer").is_empty());
    assert!(reply.reply().upstream_header("trailer").is_empty());
    assert_eq!(echo.counts.requests(), 1);
}

#[tokio::test]
async fn a_request_trailer_never_reaches_the_upstream_on_the_wire() {
    let upstream = body_upstream().await;
    let gateway = Gateway::start(Setup::routes(public_route("raw", "/", upstream.addr))).await;
    let reply = one_response(
        &gateway,
        &[b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n\
          Connection: close\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: secret\r\n\r\n"],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    assert_eq!(reply.body_text(), "hello world");
    assert_eq!(bodies(&upstream), (vec!["hello world".into()], 0));
    let wire = String::from_utf8_lossy(&upstream.log().wire).to_ascii_lowercase();
    assert!(
        !wire.contains("secret"),
        "the trailer reached the upstream:\n{wire}"
    );
}

#[tokio::test]
async fn two_pipelined_gets_on_one_connection_both_reach_the_upstream_in_order() {
    let (gateway, echo) = gateway_with_echo().await;
    let responses = exchange(
        &gateway,
        b"GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /second HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&responses), [200, 200]);
    let uris: Vec<String> = responses.iter().map(|r| r.reply().upstream_uri()).collect();
    assert_eq!(uris, ["/first", "/second"]);
    assert_eq!(echo.counts.requests(), 2);
}

// === 3. request paths ===

fn get_bytes(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn paths_that_could_mean_something_else_upstream_are_refused_with_400() {
    let (gateway, echo) = gateway_with_echo().await;
    let refused = [
        "/a%2fb",
        "/a%2Fb",
        "/a%5cb",
        "/a\\b",
        "/a%00b",
        "/%2e%2e/x",
        "/.%2e/x",
        "/x/..;/y",
    ];
    for shown in refused {
        let reply = one_response(&gateway, &[get_bytes(shown).as_bytes()]).await;
        assert_eq!(reply.status, 400, "{shown}:\n{}", reply.body_text());
        assert_eq!(reply.header("content-type"), Some("application/json"), "{shown}");
        assert_eq!(reply.json()["error"], "bad_request", "{shown}");
        assert!(reply.json()["message"].is_string(), "{shown}");
        assert_eq!(echo.counts.requests(), 0, "{shown} reached the upstream");
    }
}

#[tokio::test]
async fn dot_segments_and_repeated_slashes_are_normalised_before_the_upstream() {
    let (gateway, echo) = gateway_with_echo().await;
    for (target, expected) in [("/a/./b/../c", "/a/c"), ("//a///b", "/a/b")] {
        let reply = one_response(&gateway, &[get_bytes(target).as_bytes()]).await;
        assert_eq!(reply.status, 200, "{target}:\n{}", reply.body_text());
        assert_eq!(reply.reply().upstream_uri(), expected, "{target}");
    }
    assert_eq!(echo.counts.requests(), 2);
}

// === 4. header size ===

#[tokio::test]
async fn headers_over_max_header_bytes_are_refused_with_431() {
    let echo = Upstream::echo().await;
    let gateway =
        Gateway::start(Setup::routes(public_route("echo", "/", echo.addr)).server("max_header_bytes = 2048"))
            .await;

    let small = format!(
        "GET /small HTTP/1.1\r\nHost: localhost\r\nX-Fill: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(1000)
    );
    let reply = one_response(&gateway, &[small.as_bytes()]).await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    assert_eq!(echo.counts.requests(), 1);

    let one_large = format!(
        "GET /large HTTP/1.1\r\nHost: localhost\r\nX-Fill: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(3000)
    );
    let many: String = (0..40)
        .map(|i| format!("X-Fill-{i}: {}\r\n", "b".repeat(60)))
        .collect();
    let many_small = format!("GET /many HTTP/1.1\r\nHost: localhost\r\n{many}Connection: close\r\n\r\n");
    for (what, request) in [
        ("one large header", one_large),
        ("many small headers", many_small),
    ] {
        let reply = one_response(&gateway, &[request.as_bytes()]).await;
        assert_eq!(reply.status, 431, "{what}:\n{}", reply.body_text());
        assert_eq!(echo.counts.requests(), 1, "{what} reached the upstream");
    }
}

#[tokio::test]
async fn a_head_within_a_large_max_header_bytes_is_forwarded_not_refused_as_ambiguous() {
    let echo = Upstream::echo().await;
    let gateway = Gateway::start(
        Setup::routes(public_route("echo", "/", echo.addr)).server("max_header_bytes = 1048576"),
    )
    .await;
    let request = format!(
        "GET /big HTTP/1.1\r\nHost: localhost\r\nX-Fill: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(500_000)
    );
    let reply = one_response(&gateway, &[request.as_bytes()]).await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    assert_eq!(reply.reply().upstream_uri(), "/big");
    assert_eq!(echo.counts.requests(), 1);
}

// === 5. headers and request targets the gateway refuses ===

#[tokio::test]
async fn two_authorization_headers_are_refused_with_400() {
    assert_refused_with_400(
        "GET /x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\
         Connection: close\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn two_host_headers_are_refused_with_400() {
    assert_refused_with_400(
        "GET /x HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn an_http11_request_without_host_is_refused_with_400() {
    assert_refused_with_400("GET /x HTTP/1.1\r\nConnection: close\r\n\r\n").await;
}

#[tokio::test]
async fn an_http11_request_without_host_is_refused_with_400_even_in_absolute_form() {
    assert_refused_with_400("GET http://localhost/x HTTP/1.1\r\nConnection: close\r\n\r\n").await;
}

#[tokio::test]
async fn connect_is_refused_with_400() {
    assert_refused_with_400(
        "CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\nConnection: close\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn an_absolute_form_target_with_a_matching_host_is_forwarded_as_its_path() {
    let (gateway, echo) = gateway_with_echo().await;
    let reply = one_response(
        &gateway,
        &[b"GET http://localhost/x?q=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    assert_eq!(reply.reply().upstream_uri(), "/x?q=1");
    assert_eq!(reply.reply().upstream_header("host"), ["localhost"]);
    assert_eq!(echo.counts.requests(), 1);
}

// === 6. body limits ===

#[tokio::test]
async fn a_body_of_exactly_max_body_bytes_passes() {
    let echo = Upstream::echo().await;
    let gateway = Gateway::start(Setup::routes(format!(
        "{BODY_LIMIT}{}",
        public_route("echo", "/", echo.addr)
    )))
    .await;
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n{}",
        "x".repeat(1024)
    );
    let reply = one_response(&gateway, &[request.as_bytes()]).await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    assert_eq!(reply.json()["body_bytes"], 1024);
    assert_eq!(echo.counts.requests(), 1);
}

#[tokio::test]
async fn a_declared_content_length_over_max_body_bytes_is_refused_with_413_before_the_upstream() {
    let echo = Upstream::echo().await;
    let gateway = Gateway::start(Setup::routes(format!(
        "{BODY_LIMIT}{}",
        public_route("echo", "/", echo.addr)
    )))
    .await;
    let reply = one_response(
        &gateway,
        &[b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\n\r\n"],
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.body_text());
    assert_eq!(reply.json()["error"], "body_too_large");
    assert_eq!(echo.counts.requests(), 0);
}

const CHUNKED_POST: &[u8] = b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";

#[tokio::test]
async fn a_chunked_body_of_exactly_max_body_bytes_reaches_the_upstream_complete() {
    let upstream = body_upstream().await;
    let gateway = Gateway::start(Setup::routes(format!(
        "{BODY_LIMIT}{}",
        public_route("raw", "/", upstream.addr)
    )))
    .await;
    let request = [
        b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec(),
        chunk(&[b'a'; 512]),
        chunk(&[b'b'; 512]),
        b"0\r\n\r\n".to_vec(),
    ]
    .concat();
    let reply = one_response(&gateway, &[&request]).await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    let body = format!("{}{}", "a".repeat(512), "b".repeat(512));
    assert_eq!(bodies(&upstream), (vec![body], 0));
}

#[tokio::test]
async fn a_chunked_body_crossing_max_body_bytes_mid_stream_is_413_and_aborted_upstream() {
    let upstream = body_upstream().await;
    let gateway = Gateway::start(Setup::routes(format!(
        "{BODY_LIMIT}{}",
        public_route("raw", "/", upstream.addr)
    )))
    .await;
    let mut client = Client::open(&gateway).await;
    client
        .send(&[CHUNKED_POST.to_vec(), chunk(&[b'a'; 600])].concat())
        .await;
    // The request is under way upstream before the limit is crossed: truly mid-stream.
    upstream.wait_for(|log| log.requests.len() == 1).await;
    client
        .send(&[chunk(&[b'b'; 600]), b"0\r\n\r\n".to_vec()].concat())
        .await;
    let reply = last_response(&mut client).await;
    assert_eq!(reply.status, 413, "{}", reply.body_text());
    // Every connection the upstream accepted has ended; none carried a complete request.
    upstream
        .wait_for(|log| log.connections >= 1 && log.ended == log.connections)
        .await;
    let (complete, aborted) = bodies(&upstream);
    assert!(
        complete.is_empty(),
        "the upstream received a complete (truncated) request: {} bytes",
        complete.iter().map(String::len).sum::<usize>()
    );
    assert_eq!(aborted, 1, "the upstream did not see an aborted request");
}

// === 7. heads hyper's own parser would refuse ===

/// What is wrong with `reply` as the gateway's own answer to a refused head, if anything.
fn refusal_problems(reply: &Response, status: u16, code: &str) -> Vec<String> {
    let body: Option<Value> = serde_json::from_slice(&reply.body).ok();
    let text = |name: &str| body.as_ref().and_then(|b| b[name].as_str());
    let (hsts, content_type) = (
        reply.header("strict-transport-security"),
        reply.header("content-type"),
    );
    let connection = reply.header("connection");
    [
        (
            reply.status == status,
            format!("status {} instead of {status}", reply.status),
        ),
        (hsts.is_some(), "no Strict-Transport-Security".into()),
        (
            content_type == Some("application/json"),
            format!("content-type {content_type:?}"),
        ),
        (connection == Some("close"), format!("connection {connection:?}")),
        (
            text("error") == Some(code) && text("message").is_some(),
            format!("body {:?}", reply.body_text()),
        ),
    ]
    .into_iter()
    .filter_map(|(ok, problem)| (!ok).then_some(problem))
    .collect()
}

#[tokio::test]
async fn heads_hyper_would_refuse_get_the_gateways_own_json_answer_with_hsts_and_a_close() {
    // `max_header_bytes` large enough for a 64 KiB request target.
    const HEAD_LIMIT: usize = 70_000;
    // (name, bytes, status, `error` code): every head hyper's HTTP/1.1 parser refuses, which
    // must still get the gateway's own answer.
    let get = |lines: &str| format!("GET /a HTTP/1.1\r\nHost: localhost\r\n{lines}\r\n").into_bytes();
    let post = |lines: &str, body: &str| {
        format!("POST /a HTTP/1.1\r\nHost: localhost\r\n{lines}\r\n{body}").into_bytes()
    };
    let line = |request_line: &[u8]| [request_line, b"\r\nHost: localhost\r\n\r\n"].concat();
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let fill = |len: usize| get(&format!("X-Fill: {}\r\n", "a".repeat(len)));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "two different Content-Length values",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello"),
            400,
            "bad_request",
        ),
        (
            "a Content-Length too large for hyper",
            post("Content-Length: 18446744073709551615\r\n", ""),
            400,
            "bad_request",
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            b"POST /a HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        ("obs-fold", get("X-A: one\r\n two\r\n"), 400, "bad_request"),
        (
            "a space in a header name",
            get("Bad Name: x\r\n"),
            400,
            "bad_request",
        ),
        ("a space before the colon", get("X-A : x\r\n"), 400, "bad_request"),
        (
            "a non-token byte in a header name",
            get("Bad@Name: x\r\n"),
            400,
            "bad_request",
        ),
        (
            "a control byte in a header name",
            get("X\x01Y: z\r\n"),
            400,
            "bad_request",
        ),
        (
            "a header line without a colon",
            get("NoColon\r\n"),
            400,
            "bad_request",
        ),
        (
            "a NUL in a header value",
            get("X-A: a\x00b\r\n"),
            400,
            "bad_request",
        ),
        (
            "an extra word in the request line",
            line(b"GET /a b HTTP/1.1"),
            400,
            "bad_request",
        ),
        (
            "an unknown HTTP version",
            line(b"GET /a HTTP/1.2"),
            400,
            "bad_request",
        ),
        (
            "a method that is not a token",
            line(b"G(T /a HTTP/1.1"),
            400,
            "bad_request",
        ),
        (
            "a target the URI parser refuses",
            line(b"GET /a<b HTTP/1.1"),
            400,
            "bad_request",
        ),
        (
            "invalid UTF-8 in the target",
            line(b"GET /\xff HTTP/1.1"),
            400,
            "bad_request",
        ),
        (
            "a bare CR before the request line",
            [b"\r\r".as_slice(), &line(b"GET /a HTTP/1.1")].concat(),
            400,
            "bad_request",
        ),
        (
            "the HTTP/2 preface on HTTP/1.1",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        ("101 header lines", get(&many), 431, "headers_too_large"),
        (
            "a head over max_header_bytes",
            fill(HEAD_LIMIT + 1000),
            431,
            "headers_too_large",
        ),
        (
            "a head over hyper's buffer (twice max_header_bytes)",
            fill(3 * HEAD_LIMIT),
            431,
            "headers_too_large",
        ),
        (
            "empty lines up to max_header_bytes",
            "\r\n".repeat(HEAD_LIMIT).into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "a request target over 64 KiB",
            line(format!("GET /{} HTTP/1.1", "a".repeat(66_000)).as_bytes()),
            414,
            "uri_too_long",
        ),
    ];
    let echo = Upstream::echo().await;
    let gateway = Gateway::start(
        Setup::routes(public_route("echo", "/", echo.addr))
            .server(&format!("max_header_bytes = {HEAD_LIMIT}")),
    )
    .await;
    let mut failures = Vec::new();
    for (name, head, status, code) in cases {
        let sent = [head.as_slice(), SMUGGLED.as_bytes()].concat();
        let (responses, end) = raw::exchange(&gateway, &sent, &[]).await;
        let mut problems = match (responses.as_slice(), &end) {
            ([reply], Ok(())) => refusal_problems(reply, status, code),
            _ => vec!["not one response, then the connection closed".into()],
        };
        if echo.counts.requests() > 0 {
            problems.push(format!(
                "the upstream received {} request(s)",
                echo.counts.requests()
            ));
        }
        if !problems.is_empty() {
            let got = statuses(&responses);
            failures.push(format!(
                "[{name}] {}\n  got: {got:?} then {end:?}",
                problems.join("; ")
            ));
        }
    }
    assert_none_failed("malformed heads", &failures);
}

#[tokio::test]
async fn a_malformed_head_after_good_pipelined_requests_is_answered_in_order_after_them() {
    let (gateway, echo) = gateway_with_echo().await;
    let sent = "GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n\
                POST /second HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello\
                GET /third HTTP/1.1\r\nHost: localhost\r\nBad Name: x\r\n\r\n";
    let responses = exchange(&gateway, format!("{sent}{SMUGGLED}").as_bytes()).await;
    assert_eq!(statuses(&responses), [200, 200, 400]);
    assert_eq!(responses[0].reply().upstream_uri(), "/first");
    assert_eq!(responses[1].json()["body"], "hello");
    assert_eq!(
        refusal_problems(&responses[2], 400, "bad_request"),
        Vec::<String>::new()
    );
    assert_eq!(
        echo.counts.requests(),
        2,
        "only /first and /second may reach the upstream"
    );
}

#[tokio::test]
async fn a_head_that_arrives_in_pieces_is_forwarded_once_it_is_whole() {
    let (gateway, echo) = gateway_with_echo().await;
    let reply = one_response(
        &gateway,
        &[
            b"\r\nGET /pie",
            b"ces HTTP/1.1\r\nHost: local",
            b"host\r\nConnection: close\r",
            b"\n\r\n",
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    assert_eq!(reply.reply().upstream_uri(), "/pieces");
    assert_eq!(echo.counts.requests(), 1);
}

#[tokio::test]
async fn a_malformed_head_that_arrives_in_pieces_gets_the_json_answer() {
    let (gateway, echo) = gateway_with_echo().await;
    let reply = one_response(
        &gateway,
        &[
            b"GET /a HTTP/1.1\r\nHost: loc",
            b"alhost\r\nBad Na",
            b"me: x\r\n\r\n",
        ],
    )
    .await;
    assert_eq!(refusal_problems(&reply, 400, "bad_request"), Vec::<String>::new());
    assert_eq!(echo.counts.requests(), 0);
}
