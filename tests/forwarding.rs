//! What the upstream receives: paths, forwarding headers, header hygiene, bodies, routes.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::upstreams::Upstream;
use support::{Gateway, Setup, get, public_route};

async fn gateway_with_echo() -> (Gateway, Upstream) {
    let echo = Upstream::echo().await;
    let gateway = Gateway::start(Setup::routes(public_route("echo", "/", echo.addr))).await;
    (gateway, echo)
}

#[tokio::test]
async fn the_upstream_receives_the_normalised_path_and_query() {
    let (gateway, _echo) = gateway_with_echo().await;
    let reply = gateway.get("/a/./b/../c//d/%7Euser/%3a?x=%2F&y=1").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.upstream_uri(), "/a/c/d/~user/%3A?x=%2F&y=1");
}

#[tokio::test]
async fn strip_prefix_removes_the_route_prefix_upstream() {
    let echo = Upstream::echo().await;
    let route = format!("{}strip_prefix = true\n", public_route("api", "/api/", echo.addr));
    let gateway = Gateway::start(Setup::routes(route)).await;
    assert_eq!(
        gateway.get("/api/users/7?full=1").await.upstream_uri(),
        "/users/7?full=1"
    );
    assert_eq!(gateway.get("/api").await.upstream_uri(), "/");
}

#[tokio::test]
async fn forwarding_headers_are_replaced_not_trusted_from_the_client() {
    let (gateway, _echo) = gateway_with_echo().await;
    let request = Request::get("/x")
        .header("host", "app.example.com")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=6.6.6.6")
        .header("x-original-url", "/admin")
        .header("x-rewrite-url", "/admin")
        .header("x-http-method-override", "DELETE")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = gateway.send(request).await;
    assert_eq!(reply.upstream_header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(reply.upstream_header("x-forwarded-proto"), ["https"]);
    assert_eq!(reply.upstream_header("x-forwarded-host"), ["app.example.com"]);
    assert_eq!(reply.upstream_header("forwarded"), ["for=127.0.0.1;proto=https"]);
    assert_eq!(reply.upstream_header("host"), ["app.example.com"]);
    for dropped in ["x-original-url", "x-rewrite-url", "x-http-method-override"] {
        assert!(
            reply.upstream_header(dropped).is_empty(),
            "{dropped} reached the upstream"
        );
    }
}

#[tokio::test]
async fn a_trusted_proxy_gets_its_forwarded_for_chain_appended() {
    let echo = Upstream::echo().await;
    let setup =
        Setup::routes(public_route("echo", "/", echo.addr)).server("trusted_proxies = [\"127.0.0.1/32\"]");
    let gateway = Gateway::start(setup).await;
    let request = Request::get("/")
        .header("host", "localhost")
        .header("x-forwarded-for", "203.0.113.9");
    let reply = gateway.send(request.body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(
        reply.upstream_header("x-forwarded-for"),
        ["203.0.113.9, 127.0.0.1"]
    );
    assert_eq!(
        reply.upstream_header("forwarded"),
        ["for=203.0.113.9;proto=https"]
    );
}

#[tokio::test]
async fn client_identity_headers_never_reach_the_upstream_in_any_spelling() {
    let (gateway, _echo) = gateway_with_echo().await;
    let request = Request::get("/")
        .header("host", "localhost")
        .header("X-Auth-Sub", "admin")
        .header("x-auth-role", "admin")
        .header("X_Auth_Session", "s1")
        .header("x_auth_sub", "admin")
        .header("connection", "x-auth-other")
        .header("authorization", "Bearer abc")
        .header("proxy-authorization", "Basic abc")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = gateway.send(request).await;
    let received: Vec<String> = reply.json()["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[0].as_str().unwrap().replace('_', "-"))
        .collect();
    for forbidden in [
        "x-auth-sub",
        "x-auth-role",
        "x-auth-session",
        "authorization",
        "proxy-authorization",
    ] {
        assert!(
            !received.iter().any(|name| name == forbidden),
            "{forbidden} reached the upstream: {received:?}"
        );
    }
}

#[tokio::test]
async fn hop_by_hop_and_connection_named_headers_are_removed() {
    let (gateway, _echo) = gateway_with_echo().await;
    let request = Request::get("/")
        .header("host", "localhost")
        .header("connection", "x-internal, keep-alive")
        .header("x-internal", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("x-kept", "yes")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = gateway.send(request).await;
    for removed in ["x-internal", "keep-alive", "te"] {
        assert!(
            reply.upstream_header(removed).is_empty(),
            "{removed} reached the upstream"
        );
    }
    assert_eq!(reply.upstream_header("x-kept"), ["yes"]);
}

#[tokio::test]
async fn the_gateway_cookies_are_removed_and_others_pass_as_one_header() {
    let (gateway, _echo) = gateway_with_echo().await;
    let request = Request::get("/")
        .header("host", "localhost")
        .header("cookie", "theme=dark; __Host-portcullis-access=token")
        .header("cookie", "__Secure-portcullis-refresh=r; lang=en")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = gateway.send(request).await;
    assert_eq!(reply.upstream_header("cookie"), ["theme=dark; lang=en"]);
}

#[tokio::test]
async fn a_short_well_formed_request_id_is_kept_and_a_bad_one_replaced() {
    let (gateway, _echo) = gateway_with_echo().await;
    let keep = Request::get("/")
        .header("host", "localhost")
        .header("x-request-id", "trace-42");
    let reply = gateway.send(keep.body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(reply.upstream_header("x-request-id"), ["trace-42"]);
    assert_eq!(reply.headers["x-request-id"], "trace-42");
    let bad = Request::get("/")
        .header("host", "localhost")
        .header("x-request-id", "<script>");
    let reply = gateway.send(bad.body(Full::new(Bytes::new())).unwrap()).await;
    let sent = reply.upstream_header("x-request-id");
    assert_eq!(sent.len(), 1);
    assert_ne!(sent[0], "<script>");
    assert_eq!(reply.headers["x-request-id"], sent[0].as_str());
}

#[tokio::test]
async fn every_response_carries_strict_transport_security() {
    let (gateway, _echo) = gateway_with_echo().await;
    for path in ["/", "/auth/login", "/%2f"] {
        let reply = gateway.get(path).await;
        assert!(
            reply.headers.contains_key("strict-transport-security"),
            "{path}: {:?}",
            reply.status
        );
    }
}

#[tokio::test]
async fn a_large_body_streams_through_unchanged() {
    let (gateway, _echo) = gateway_with_echo().await;
    let body = "x".repeat(3 << 20);
    let request = Request::post("/upload")
        .header("host", "localhost")
        .body(Full::new(Bytes::from(body.clone())));
    let reply = gateway.send(request.unwrap()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["body_bytes"], body.len());
}

#[tokio::test]
async fn http2_clients_are_served_and_forwarded_as_http1() {
    let (gateway, _echo) = gateway_with_echo().await;
    let request = Request::get("https://localhost/h2?q=1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = gateway.send_h2(request).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.upstream_uri(), "/h2?q=1");
    assert_eq!(reply.json()["version"], "HTTP/1.1");
    assert_eq!(reply.upstream_header("host"), ["localhost"]);
}

#[tokio::test]
async fn the_most_specific_route_receives_the_request() {
    let (general, exact, wildcard) = (
        Upstream::echo().await,
        Upstream::echo().await,
        Upstream::echo().await,
    );
    let routes = format!(
        "{}{}host = \"api.example.com\"\n{}host = \"*.example.com\"\n",
        public_route("general", "/", general.addr),
        public_route("exact", "/", exact.addr),
        public_route("wild", "/", wildcard.addr),
    );
    let gateway = Gateway::start(Setup::routes(routes)).await;
    for (host, expected) in [
        ("api.example.com", &exact),
        ("www.example.com", &wildcard),
        ("other.org", &general),
    ] {
        let request = Request::get("/")
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(gateway.send(request).await.status, 200);
        assert_eq!(expected.counts.requests(), 1, "{host}");
    }
}

#[tokio::test]
async fn no_matching_route_is_404_and_reaches_no_upstream() {
    let echo = Upstream::echo().await;
    let gateway = Gateway::start(Setup::routes(public_route("api", "/api/", echo.addr))).await;
    let reply = gateway.get("/apix").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "not_found");
    assert_eq!(gateway.get("/auth/unknown").await.status, 404);
    assert_eq!(echo.counts.requests(), 0);
}

#[tokio::test]
async fn a_required_route_answers_401_without_reaching_the_upstream() {
    let echo = Upstream::echo().await;
    let route = format!(
        "[[routes]]\nname = \"p\"\npath = \"/\"\nupstream = \"http://{}\"\n",
        echo.addr
    );
    let gateway = Gateway::start(Setup::routes(route)).await;
    let reply = gateway.send(get("/private")).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.headers["www-authenticate"], "Bearer realm=\"portcullis\"");
    assert_eq!(echo.counts.requests(), 0);
}

#[tokio::test]
async fn upstream_connections_are_pooled_and_kept_alive() {
    let (gateway, echo) = gateway_with_echo().await;
    for _ in 0..5 {
        assert_eq!(gateway.get("/").await.status, 200);
    }
    assert_eq!(echo.counts.requests(), 5);
    assert_eq!(echo.counts.connections(), 1);
}
