//! Listeners and connection lifecycle: the admin and redirect listeners, TLS versions and
//! ALPN, the handshake / head / idle deadlines, graceful drain, and the real binary.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use rustls::ProtocolVersion;
use support::binary::{self, Binary};
use support::client::{self, Connection};
use support::raw::{Response, plain_exchange};
use support::upstreams::Upstream;
use support::{DEADLINE, Gateway, Setup, config, eventually, public_route, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

// === helpers ===

/// Polls `condition` until it holds, failing the test after `DEADLINE`.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let complaint = format!("timed out waiting until {what}");
    eventually(DEADLINE, async || {
        condition().then_some(()).ok_or(complaint.clone())
    })
    .await
}

/// Reads until the peer closes the connection (EOF or error) and returns how long that took,
/// or `None` when it is still open after `limit`.
async fn closed_within<S: AsyncReadExt + Unpin>(stream: &mut S, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let closed = tokio::time::timeout(limit, stream.read_to_end(&mut Vec::new())).await;
    closed.ok().map(|_| started.elapsed())
}

/// Asserts that nothing serves `addr` any more: connecting fails, or the connection is
/// closed at once without a byte.
async fn assert_refuses_connections(addr: SocketAddr) {
    if let Ok(mut tcp) = TcpStream::connect(addr).await {
        let mut buffer = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buffer)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "{addr} still accepts connections after stop: {read:?}"
        );
    }
}

/// Starts `GET path` on its own HTTP/1.1 connection in the background.
async fn start_request(gateway: &Gateway, path: &str) -> JoinHandle<client::Answer> {
    let stream = gateway.tls_connect(&[b"http/1.1"]).await;
    let path = path.to_string();
    tokio::spawn(async move { client::get_over(stream, &path).await })
}

// === admin listener ===

#[tokio::test]
async fn the_admin_listener_answers_healthz_and_readyz_over_plain_http() {
    let echo = Upstream::echo().await;
    let gateway = Gateway::start(Setup::routes(public_route("echo", "/", echo.addr))).await;
    let health = gateway.admin(Method::GET, "/healthz").await;
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json()["status"], "ok");
    let ready = gateway.admin(Method::GET, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["status"], "ready");
    assert_eq!(echo.counts.requests(), 0, "an admin request reached the upstream");
}

#[tokio::test]
async fn health_readiness_and_admin_paths_are_404_on_the_public_listener() {
    let echo = Upstream::echo().await;
    let gateway = Gateway::start(Setup::routes(public_route("api", "/api/", echo.addr))).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let reply = gateway.get(path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.json()["error"], "not_found", "{path}");
    }
    let reload = Request::post("/admin/reload")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = gateway.send(reload).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "not_found");
    assert_eq!(echo.counts.requests(), 0);
}

// === redirect listener ===

/// A gateway with a redirect listener, extra `[server]` lines, and routes for
/// `app.example.com` and `*.tenants.example.com` (the test certificate names only localhost).
async fn gateway_with_redirect(server: &str) -> (Gateway, SocketAddr) {
    let routes = [
        ("app", "host = \"app.example.com\""),
        ("tenants", "host = \"*.tenants.example.com\""),
        ("any", ""),
    ]
    .map(|(name, host)| config::route(name, "/", ([127, 0, 0, 1], 9).into(), host))
    .concat();
    let setup = Setup::routes(routes).server(&format!("redirect_listen = \"127.0.0.1:0\"\n{server}"));
    let gateway = Gateway::start(setup).await;
    let redirect = gateway.redirect.expect("redirect listener is bound");
    (gateway, redirect)
}

async fn redirect_for(redirect: SocketAddr, host: &str) -> Response {
    let request = format!("GET /x?y=1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    plain_exchange(redirect, &request).await
}

#[tokio::test]
async fn the_redirect_listener_answers_308_to_the_same_target_over_https() {
    let (gateway, redirect) = gateway_with_redirect("").await;
    let port = gateway.addr.port();
    for (host, location_host) in [
        ("localhost:8080", "localhost"),
        ("LocalHost.", "localhost"),
        ("127.0.0.1:8080", "127.0.0.1"),
        ("app.example.com:8080", "app.example.com"),
        ("a.tenants.example.com", "a.tenants.example.com"),
    ] {
        let reply = redirect_for(redirect, host).await;
        assert_eq!(reply.status, 308, "{host}: {reply:?}");
        let expected = format!("https://{location_host}:{port}/x?y=1");
        assert_eq!(reply.header("location"), Some(expected.as_str()), "{host}");
    }
}

#[tokio::test]
async fn the_redirect_listener_refuses_a_host_no_route_or_certificate_names() {
    let (_gateway, redirect) = gateway_with_redirect("").await;
    for host in [
        "evil.example",
        "example.com",
        "tenants.example.com",
        "app.example.com.evil.example",
    ] {
        let reply = redirect_for(redirect, host).await;
        assert_eq!(reply.status, 400, "{host}: {reply:?}");
        assert_eq!(reply.header("location"), None, "{host}");
    }
}

#[tokio::test]
async fn the_redirect_listener_sends_everyone_to_the_configured_public_host() {
    let (_gateway, redirect) = gateway_with_redirect("public_host = \"gateway.example.com\"").await;
    for host in ["localhost", "evil.example"] {
        let reply = redirect_for(redirect, host).await;
        assert_eq!(reply.status, 308, "{host}: {reply:?}");
        assert_eq!(
            reply.header("location"),
            Some("https://gateway.example.com/x?y=1")
        );
    }
    let (_gateway, redirect) = gateway_with_redirect("public_host = \"gateway.example.com:8443\"").await;
    let reply = redirect_for(redirect, "localhost").await;
    assert_eq!(
        reply.header("location"),
        Some("https://gateway.example.com:8443/x?y=1")
    );
}

#[tokio::test]
async fn the_redirect_listener_answers_400_to_a_request_without_host() {
    let (_gateway, redirect) = gateway_with_redirect("").await;
    let reply = plain_exchange(redirect, "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.header("location"), None);
}

// === TLS ===

#[tokio::test]
async fn tls_1_2_only_and_tls_1_3_only_clients_both_complete_a_handshake() {
    let echo = Upstream::echo().await;
    let gateway = Gateway::start(Setup::routes(public_route("echo", "/", echo.addr))).await;
    let cert = client::gateway_cert(gateway.dir.path());
    for (version, expected) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let config = client::config(std::slice::from_ref(&cert), &[version], &[b"http/1.1"]);
        let stream = within(client::connect(gateway.addr, &config)).await.expect("TLS");
        assert_eq!(stream.get_ref().1.protocol_version(), Some(expected));
        let reply = client::get_over(stream, "/").await.expect("response");
        assert_eq!(reply.status, 200, "{expected:?}");
    }
    assert_eq!(echo.counts.requests(), 2);
}

#[tokio::test]
async fn alpn_offers_of_h2_and_http_1_1_are_each_honoured() {
    let echo = Upstream::echo().await;
    let gateway = Gateway::start(Setup::routes(public_route("echo", "/", echo.addr))).await;
    for (offer, expected) in [
        (&[&b"h2"[..]][..], Some(&b"h2"[..])),
        (&[&b"http/1.1"[..]][..], Some(&b"http/1.1"[..])),
        (&[][..], None),
    ] {
        let stream = gateway.tls_connect(offer).await;
        assert_eq!(stream.get_ref().1.alpn_protocol(), expected, "offer {offer:?}");
        let reply = client::get_over(stream, "/").await.expect("response");
        assert_eq!(reply.status, 200, "offer {offer:?}");
        assert_eq!(reply.upstream_uri(), "/", "offer {offer:?}");
    }
    assert_eq!(echo.counts.requests(), 3);
}

// === deadlines ===

#[tokio::test]
async fn a_connection_that_never_sends_a_client_hello_is_closed_at_the_handshake_deadline() {
    let setup = Setup::routes("").server("header_read_timeout = \"300ms\"\nidle_timeout = \"30s\"");
    let gateway = Gateway::start(setup).await;
    let mut tcp = TcpStream::connect(gateway.addr).await.expect("connect");
    let closed = closed_within(&mut tcp, Duration::from_secs(3)).await;
    let closed = closed.expect("a silent connection is still open after 3 s");
    assert!(
        closed >= Duration::from_millis(200),
        "closed after {closed:?}, before the handshake deadline"
    );
}

#[tokio::test]
async fn a_partial_request_head_is_cut_off_at_the_header_read_deadline() {
    let setup = Setup::routes("").server("header_read_timeout = \"300ms\"\nidle_timeout = \"30s\"");
    let gateway = Gateway::start(setup).await;
    let mut tls = gateway.tls_connect(&[b"http/1.1"]).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    tls.flush().await.expect("flush");
    let closed = closed_within(&mut tls, Duration::from_secs(3)).await;
    let closed = closed.expect("a half-sent head still holds the connection after 3 s");
    assert!(
        closed >= Duration::from_millis(200),
        "closed after {closed:?}, before the head deadline"
    );
}

#[tokio::test]
async fn a_request_head_trickled_byte_by_byte_is_still_cut_off_at_the_deadline() {
    let setup = Setup::routes("").server("header_read_timeout = \"300ms\"\nidle_timeout = \"30s\"");
    let gateway = Gateway::start(setup).await;
    let tls = gateway.tls_connect(&[b"http/1.1"]).await;
    let (mut reader, mut writer) = tokio::io::split(tls);
    let trickle = tokio::spawn(async move {
        let head = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: {}", "a".repeat(200));
        for byte in head.bytes() {
            if writer.write_all(&[byte]).await.is_err() || writer.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let closed = closed_within(&mut reader, Duration::from_secs(3)).await;
    trickle.abort();
    closed.expect("a head trickled one byte at a time still holds the connection after 3 s");
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed_after_idle_timeout() {
    let echo = Upstream::echo().await;
    let setup = Setup::routes(public_route("echo", "/", echo.addr))
        .server("idle_timeout = \"500ms\"\nheader_read_timeout = \"10s\"");
    let gateway = Gateway::start(setup).await;
    let (mut sender, connection) = client::h1(gateway.tls_connect(&[b"http/1.1"]).await).await;
    let reply = client::h1_get(&mut sender, "/").await.expect("response");
    assert_eq!(reply.status, 200);
    assert_closed_when_idle(connection).await;
    drop(sender);
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_idle_timeout() {
    let echo = Upstream::echo().await;
    let setup = Setup::routes(public_route("echo", "/", echo.addr))
        .server("idle_timeout = \"500ms\"\nheader_read_timeout = \"10s\"");
    let gateway = Gateway::start(setup).await;
    let stream = gateway.tls_connect(&[b"h2"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) = client::h2(stream).await;
    let reply = client::h2_get(&mut sender, "/").await.expect("response");
    assert_eq!(reply.status, 200);
    assert_closed_when_idle(connection).await;
    drop(sender);
}

/// With `idle_timeout = "500ms"`: the gateway ends the connection after about that long,
/// not at once and not never. The client keeps its sender, so only the gateway can end it.
async fn assert_closed_when_idle(connection: Connection) {
    let idle_since = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(3), connection).await;
    let idle = idle_since.elapsed();
    assert!(ended.is_ok(), "an idle connection is still open after 3 s");
    assert!(
        idle >= Duration::from_millis(300),
        "closed after {idle:?}, before the idle timeout"
    );
}

// === graceful drain, in process ===

#[tokio::test]
async fn stop_lets_an_in_flight_request_finish_and_then_refuses_connections() {
    let slow = Upstream::delayed_echo(Duration::from_millis(800)).await;
    let mut gateway = Gateway::start(Setup::routes(public_route("slow", "/", slow.addr))).await;
    let in_flight = start_request(&gateway, "/slow").await;
    wait_until("the upstream has the request", || slow.counts.requests() == 1).await;

    let drained = within(gateway.stop()).await;

    let reply = within(in_flight).await.expect("task");
    let reply = reply.expect("the in-flight request was cut");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.upstream_uri(), "/slow");
    assert!(drained, "stop() reported connections left after the grace");
    assert_refuses_connections(gateway.addr).await;
    assert_refuses_connections(gateway.admin).await;
}

#[tokio::test]
async fn an_in_flight_http2_request_survives_a_graceful_stop() {
    let slow = Upstream::delayed_echo(Duration::from_millis(800)).await;
    let mut gateway = Gateway::start(Setup::routes(public_route("slow", "/", slow.addr))).await;
    let stream = gateway.tls_connect(&[b"h2"]).await;
    let in_flight = tokio::spawn(async move { client::get_over(stream, "/slow").await });
    wait_until("the upstream has the request", || slow.counts.requests() == 1).await;

    let drained = within(gateway.stop()).await;

    let reply = within(in_flight).await.expect("task");
    assert_eq!(reply.expect("the in-flight request was cut").status, 200);
    assert!(drained, "stop() reported connections left after the grace");
    assert_refuses_connections(gateway.addr).await;
}

#[tokio::test]
async fn stop_does_not_wait_for_idle_keep_alive_connections() {
    let echo = Upstream::echo().await;
    let setup = Setup::routes(public_route("echo", "/", echo.addr)).server("idle_timeout = \"30s\"");
    let mut gateway = Gateway::start(setup).await;
    // Two idle connections that each served one request: HTTP/1.1 and HTTP/2.
    let (mut h1_sender, h1_connection) = client::h1(gateway.tls_connect(&[b"http/1.1"]).await).await;
    assert_eq!(
        client::h1_get(&mut h1_sender, "/")
            .await
            .expect("h1 response")
            .status,
        200
    );
    let (mut h2_sender, h2_connection) = client::h2(gateway.tls_connect(&[b"h2"]).await).await;
    assert_eq!(
        client::h2_get(&mut h2_sender, "/")
            .await
            .expect("h2 response")
            .status,
        200
    );
    let started = Instant::now();
    let drained = within(gateway.stop()).await;
    let took = started.elapsed();
    assert!(drained);
    assert!(
        took < Duration::from_secs(2),
        "stop() waited {took:?} for idle connections"
    );
    // The gateway, not the client (which still holds its senders), ended both connections
    // (cleanly or not: only that they ended matters here).
    let _ = within(h1_connection).await.expect("h1 connection task");
    let _ = within(h2_connection).await.expect("h2 connection task");
    drop((h1_sender, h2_sender));
}

#[tokio::test]
async fn stop_gives_up_on_requests_that_outlive_the_shutdown_grace() {
    let slow = Upstream::delayed_echo(Duration::from_secs(5)).await;
    let setup = Setup::routes(public_route("slow", "/", slow.addr)).server("shutdown_grace = \"300ms\"");
    let mut gateway = Gateway::start(setup).await;
    let in_flight = start_request(&gateway, "/slow").await;
    wait_until("the upstream has the request", || slow.counts.requests() == 1).await;

    let started = Instant::now();
    let drained = within(gateway.stop()).await;
    let took = started.elapsed();

    assert!(
        !drained,
        "stop() claims a 5 s request finished within a 300 ms grace"
    );
    assert!(
        took >= Duration::from_millis(250),
        "stop() gave up after {took:?}, before the grace"
    );
    assert!(
        took < Duration::from_secs(2),
        "stop() took {took:?} with a 300 ms grace"
    );
    let outcome = within(in_flight).await.expect("task");
    assert!(
        outcome.is_err(),
        "the request outlived the grace and still completed: {outcome:?}"
    );
    assert_refuses_connections(gateway.addr).await;
}

#[tokio::test]
async fn a_connection_stuck_in_the_tls_handshake_does_not_hold_stop_past_the_grace() {
    let setup = Setup::routes("")
        .server("shutdown_grace = \"300ms\"\nheader_read_timeout = \"5s\"\nidle_timeout = \"30s\"");
    let mut gateway = Gateway::start(setup).await;
    // Send a real ClientHello and never answer the server's flight: the gateway's handshake
    // is then provably under way (it has written its ServerHello) and waiting for us.
    let mut tcp = TcpStream::connect(gateway.addr).await.expect("connect");
    let client_hello = client::client_hello(&client::config(&[], rustls::DEFAULT_VERSIONS, &[]));
    tcp.write_all(&client_hello).await.expect("write");
    let mut server_hello = [0u8; 5];
    within(tcp.read_exact(&mut server_hello))
        .await
        .expect("the gateway answers the ClientHello");
    assert_eq!(server_hello[0], 0x16, "not a TLS handshake record");

    let started = Instant::now();
    within(gateway.stop()).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "stop() took {took:?} with a 300 ms grace: a half-open TLS handshake held it"
    );
}

// === the real binary ===

/// The binary's config: real ports, the test users, and one public route to `upstream`.
fn write_binary_config(dir: &Path, upstream: SocketAddr) -> config::BinaryConfig {
    config::for_binary(
        dir,
        "shutdown_grace = \"5s\"",
        &public_route("slow", "/", upstream),
    )
}

/// Every file under `dir`, in a fixed order.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let entries = walkdir::WalkDir::new(dir).sort_by_file_name().into_iter();
    let entries = entries.map(|entry| entry.expect("entry"));
    entries
        .filter(|e| !e.file_type().is_dir())
        .map(|e| e.into_path())
        .collect()
}

fn assert_check_passes(path: &Path) {
    let output = binary::portcullis()
        .args(["check", "--config"])
        .arg(path)
        .env_remove("PORTCULLIS_CONFIG")
        .output()
        .expect("run portcullis check");
    assert!(
        output.status.success(),
        "portcullis check failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn portcullis_check_accepts_the_binary_config_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_binary_config(dir.path(), ([127, 0, 0, 1], 9).into());
    let before = files_in(dir.path());
    assert_check_passes(&config.path);
    assert_eq!(
        files_in(dir.path()),
        before,
        "check generated files (a certificate or key) it should only validate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_drains_an_in_flight_request_on_sigterm_and_exits_0() {
    let slow = Upstream::delayed_echo(Duration::from_secs(1)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_binary_config(dir.path(), slow.addr);
    assert_check_passes(&config.path);

    let mut child = Binary::start(dir.path(), config.admin).await;

    let tls = client::trusting(dir.path(), &[b"http/1.1"]);
    let stream = within(client::connect(config.public, &tls)).await.expect("TLS");
    let in_flight = tokio::spawn(async move { client::get_over(stream, "/slow").await });
    wait_until("the upstream has the request", || slow.counts.requests() == 1).await;

    child.signal("TERM");

    let outcome = within(in_flight).await.expect("task");
    let reply = outcome.unwrap_or_else(|e| panic!("in-flight request cut: {e}\n{}", child.log()));
    assert_eq!(reply.status, 200);

    let status = child.wait_exit().await;
    assert_eq!(status.code(), Some(0), "exit status {status}:\n{}", child.log());
    assert_refuses_connections(config.public).await;
    // The generated certificate is now on disk, and check still accepts the config.
    assert!(dir.path().join("certs/gateway.crt").exists());
    assert_check_passes(&config.path);
}
