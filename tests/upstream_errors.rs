//! What the client gets when the upstream misbehaves (refused, slow, reset, malformed,
//! truncated), and what the gateway removes from the responses it passes on.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{HeaderMap, Request};
use support::upstreams::{Upstream, ok_response, refused_addr};
use support::{Gateway, Reply, RequestExt, Setup, get, public_route};

/// A gateway with one public catch-all route to `upstream`, plus `extra` route keys.
async fn gateway_to(upstream: SocketAddr, extra: &str) -> Gateway {
    let route = format!("{}{extra}", public_route("upstream", "/", upstream));
    Gateway::start(Setup::routes(route)).await
}

/// Asserts the gateway's JSON error shape: `{"error": code, "message": ...}` and its headers.
fn assert_gateway_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    let json = reply.json();
    assert_eq!(json["error"], code, "{json}");
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
    assert_eq!(reply.headers["content-type"], "application/json");
    assert!(
        reply.headers.contains_key("strict-transport-security"),
        "{:?}",
        reply.headers
    );
}

/// One GET over a new connection that reports a broken response instead of panicking.
async fn fetch(gateway: &Gateway, path: &str, h2: bool) -> Result<Reply, hyper::Error> {
    match h2 {
        true => {
            gateway
                .try_send_h2(Request::get(format!("https://localhost{path}")).empty())
                .await
        }
        false => gateway.try_send(get(path)).await,
    }
}

#[tokio::test]
async fn a_refused_upstream_is_answered_with_502_bad_gateway() {
    let refused = refused_addr().await;
    let gateway = gateway_to(refused, "").await;
    let reply = gateway.get("/x").await;
    assert_gateway_error(&reply, 502, "bad_gateway");
    let body = String::from_utf8_lossy(&reply.body);
    assert!(
        !body.contains(&refused.port().to_string()),
        "the error leaks the upstream address: {body}"
    );
}

#[tokio::test]
async fn an_upstream_slower_than_the_route_timeout_is_answered_with_504_in_time() {
    let slow = Upstream::delayed_echo(Duration::from_secs(2)).await;
    let gateway = gateway_to(slow.addr, "timeout = \"300ms\"\n").await;
    let started = Instant::now();
    let reply = gateway.get("/slow").await;
    let elapsed = started.elapsed();
    assert_gateway_error(&reply, 504, "gateway_timeout");
    assert!(
        elapsed < Duration::from_millis(1500),
        "the 504 took {elapsed:?}; the route timeout is 300ms"
    );
    assert!(
        elapsed >= Duration::from_millis(250),
        "the 504 came after only {elapsed:?}, before the route timeout"
    );
    assert_eq!(
        slow.counts.requests(),
        1,
        "the request never reached the upstream"
    );
}

#[tokio::test]
async fn an_upstream_that_closes_without_answering_is_a_502_and_is_not_retried() {
    let silent = Upstream::raw(|_| Vec::new(), true).await;
    let gateway = gateway_to(silent.addr, "").await;
    let reply = gateway.get("/x").await;
    assert_gateway_error(&reply, 502, "bad_gateway");
    assert_eq!(
        silent.counts.requests(),
        1,
        "the gateway sent the request more than once"
    );
}

#[tokio::test]
async fn a_connection_that_sent_a_malformed_response_is_never_reused() {
    fn reply(n: usize) -> Vec<u8> {
        match n {
            0 => b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n".to_vec(),
            2 => b"HTTP/1.1 abc Nonsense\r\ncontent-length: 0\r\n\r\n".to_vec(),
            _ => ok_response("fine"),
        }
    }
    let upstream = Upstream::raw(reply, false).await;
    let gateway = gateway_to(upstream.addr, "").await;

    assert_gateway_error(&gateway.get("/0").await, 502, "bad_gateway");
    let second = gateway.get("/1").await;
    assert_eq!(second.status, 200);
    assert_eq!(&second.body[..], b"fine");
    assert_eq!(upstream.counts.requests(), 2);
    assert_eq!(
        upstream.counts.connections(),
        2,
        "the request after a malformed response reused its connection"
    );

    // The healthy second connection is pooled; when it too goes bad it is dropped as well.
    assert_gateway_error(&gateway.get("/2").await, 502, "bad_gateway");
    assert_eq!(
        upstream.counts.connections(),
        2,
        "the pooled connection was not reused"
    );
    let fourth = gateway.get("/3").await;
    assert_eq!(fourth.status, 200);
    assert_eq!(&fourth.body[..], b"fine");
    assert_eq!(upstream.counts.requests(), 4);
    assert_eq!(upstream.counts.connections(), 3);
}

#[tokio::test]
async fn a_truncated_upstream_body_never_reaches_the_client_as_a_complete_response() {
    fn short_length(_: usize) -> Vec<u8> {
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789".to_vec()
    }
    fn unterminated_chunks(_: usize) -> Vec<u8> {
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\n0123456789\r\n".to_vec()
    }
    let (short, chunked) = (
        Upstream::raw(short_length, true).await,
        Upstream::raw(unterminated_chunks, true).await,
    );
    let routes = format!(
        "{}{}",
        public_route("short", "/short/", short.addr),
        public_route("chunked", "/chunked/", chunked.addr)
    );
    let gateway = Gateway::start(Setup::routes(routes)).await;
    for path in ["/short/x", "/chunked/x"] {
        for h2 in [false, true] {
            let result = fetch(&gateway, path, h2).await;
            assert!(
                !matches!(&result, Ok(reply) if reply.status.is_success()),
                "{path} (h2: {h2}) looked complete: {result:?}"
            );
        }
    }
    assert_eq!(short.counts.requests(), 2);
    assert_eq!(chunked.counts.requests(), 2);
}

#[tokio::test]
async fn hop_by_hop_headers_of_the_upstream_response_do_not_reach_the_client() {
    fn reply(_: usize) -> Vec<u8> {
        b"HTTP/1.1 200 OK\r\n\
          Connection: x-secret\r\n\
          X-Secret: 1\r\n\
          Keep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\n\
          X-Kept: yes\r\n\
          content-length: 2\r\n\r\nok"
            .to_vec()
    }
    let upstream = Upstream::raw(reply, false).await;
    let gateway = gateway_to(upstream.addr, "").await;
    let reply = gateway.get("/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body[..], b"ok");
    assert_no_hop_by_hop(&reply.headers);
    assert_eq!(reply.headers["x-kept"], "yes");
    assert!(
        reply.headers.contains_key("strict-transport-security"),
        "{:?}",
        reply.headers
    );
}

fn assert_no_hop_by_hop(headers: &HeaderMap) {
    for removed in ["x-secret", "keep-alive", "proxy-connection"] {
        assert!(
            !headers.contains_key(removed),
            "{removed} reached the client: {headers:?}"
        );
    }
    for connection in headers.get_all("connection") {
        let value = connection.to_str().unwrap_or_default().to_ascii_lowercase();
        assert!(
            !value.contains("x-secret"),
            "the upstream's Connection header reached the client: {headers:?}"
        );
    }
}
