//! Upstreams (SPEC 12): https backends verified against a CA of the config's choosing, mutual
//! TLS and SNI; several endpoints with round robin, retries that never resend a non-idempotent
//! request, passive and active health with `portcullis_upstream_healthy`; and what
//! `portcullis check` refuses.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use http::{Method, StatusCode};
use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
use support::config::refused_by_check;
use support::recorder::{Recorded, Recorder, Then, plain_responder};
use support::tls_backend::{Backend, TestCa};
use support::upstreams::refused_addr;
use support::{DEADLINE, Gateway, RequestExt, Setup, eventually, request};

/// The public route `svc` at `/svc/` with `upstream` (its whole line) and `settings` (lines,
/// sub-tables last).
fn svc(upstream: &str, settings: &str) -> String {
    format!("[[routes]]\nname = \"svc\"\npath = \"/svc/\"\nauth = \"public\"\n{upstream}\n{settings}\n")
}

/// The `upstreams = [...]` line for plain-HTTP endpoints at `addrs`.
fn upstreams(addrs: &[SocketAddr]) -> String {
    let quoted: Vec<String> = addrs.iter().map(|a| format!("\"http://{a}\"")).collect();
    format!("upstreams = [{}]", quoted.join(", "))
}

/// A gateway whose route `svc` reaches `backend` at `https://127.0.0.1:<port>`, with `tls`
/// lines in `[routes.upstream_tls]`.
async fn https_gateway(backend: &Backend, tls: &str) -> Gateway {
    let upstream = format!("upstream = \"https://{}\"", backend.addr);
    let settings = format!("[routes.upstream_tls]\n{tls}");
    Gateway::start(Setup::routes(svc(&upstream, &settings))).await
}

/// `ca_file = "<path>"` for the upstream TLS table.
fn ca_line(path: &Path) -> String {
    format!("ca_file = \"{}\"\n", path.display())
}

/// The value of `portcullis_upstream_healthy` for route `svc`'s endpoint `http://<addr>`.
async fn healthy(gateway: &Gateway, addr: SocketAddr) -> Option<String> {
    let metrics = gateway.admin(Method::GET, "/metrics").await.text();
    let labels = [
        r#"route="svc""#.to_string(),
        format!(r#"endpoint="http://{addr}""#),
    ];
    let line = metrics.lines().find(|line| {
        line.starts_with("portcullis_upstream_healthy{") && labels.iter().all(|l| line.contains(l.as_str()))
    })?;
    line.rsplit(' ').next().map(str::to_string)
}

/// Waits until the metric of `addr` reads `value` ("0" or "1").
async fn wait_healthy(gateway: &Gateway, addr: SocketAddr, value: &str) {
    eventually(DEADLINE, async || match healthy(gateway, addr).await {
        Some(v) if v == value => Ok(()),
        other => Err(format!(
            "portcullis_upstream_healthy of {addr} is {other:?}, not {value}"
        )),
    })
    .await
}

/// `GET /svc/<name>`, which must be answered 200.
async fn get_ok(gateway: &Gateway, name: &str) {
    let reply = gateway.get(&format!("/svc/{name}")).await;
    assert_eq!(reply.status, StatusCode::OK, "GET /svc/{name}: {}", reply.text());
}

/// `GET /svc/<name>` through `gateway` gets 502 after a connection to `backend` that never
/// carried a request (the TLS handshake failed).
async fn refused_before_any_request(gateway: &Gateway, backend: &Backend, name: &str) {
    let reply = gateway.get(&format!("/svc/{name}")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert!(
        backend.seen.connections() >= 1,
        "the gateway never tried the backend"
    );
    assert_eq!(
        backend.seen.requests("/"),
        0,
        "a request got past the TLS handshake"
    );
}

/// `GET /svc/<name>` through `gateway` gets 200 from `backend`, which saw it once.
async fn reached(gateway: &Gateway, backend: &Backend, name: &str) {
    get_ok(gateway, name).await;
    assert_eq!(backend.seen.requests(&format!("/svc/{name}")), 1);
}

// === https upstreams ===

#[tokio::test]
async fn an_https_backend_signed_by_the_configured_ca_is_reached() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("backend CA");
    let backend = Backend::tls(ca.issue(&["127.0.0.1"], ServerAuth).server_config(None)).await;
    let gateway = https_gateway(&backend, &ca_line(&ca.write(dir.path(), "ca.pem"))).await;
    reached(&gateway, &backend, "hello").await;
    assert_eq!(
        backend.seen.handshakes().len(),
        1,
        "the request came over one verified TLS connection"
    );
}

#[tokio::test]
async fn replacing_the_ca_file_reloads_the_upstream_tls_settings_by_itself() {
    let dir = tempfile::tempdir().expect("dir");
    let (old, new) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let backend = Backend::tls(new.issue(&["127.0.0.1"], ServerAuth).server_config(None)).await;
    let ca_file = old.write(dir.path(), "ca.pem");
    let gateway = https_gateway(&backend, &ca_line(&ca_file)).await;
    refused_before_any_request(&gateway, &backend, "before").await;
    // An operator rotates the backend CA: the file is replaced, the config is not touched.
    support::write_atomically(
        &ca_file,
        std::fs::read(new.write(dir.path(), "new.pem")).expect("new CA"),
    );
    eventually(DEADLINE, async || match gateway.get("/svc/after").await.status {
        StatusCode::OK => Ok(()),
        other => Err(format!("still {other} after the CA file was replaced")),
    })
    .await;
}

#[tokio::test]
async fn a_backend_certificate_from_another_ca_gets_no_request() {
    let dir = tempfile::tempdir().expect("dir");
    let (trusted, other) = (TestCa::new("trusted CA"), TestCa::new("other CA"));
    let backend = Backend::tls(other.issue(&["127.0.0.1"], ServerAuth).server_config(None)).await;
    let gateway = https_gateway(&backend, &ca_line(&trusted.write(dir.path(), "ca.pem"))).await;
    refused_before_any_request(&gateway, &backend, "secret").await;
}

#[tokio::test]
async fn a_backend_requiring_mutual_tls_gets_the_gateways_client_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("backend CA");
    let server = ca.issue(&["127.0.0.1"], ServerAuth).server_config(Some(&ca));
    let backend = Backend::tls(server).await;
    let ca_file = ca_line(&ca.write(dir.path(), "ca.pem"));

    let without = https_gateway(&backend, &ca_file).await;
    refused_before_any_request(&without, &backend, "anonymous").await;

    let client = ca.issue(&["gateway.test"], ClientAuth);
    let (cert, key) = client.write(dir.path(), "gateway");
    let mtls = format!(
        "{ca_file}client_cert = \"{}\"\nclient_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let with = https_gateway(&backend, &mtls).await;
    reached(&with, &backend, "authenticated").await;
    let presented: Vec<_> = backend
        .seen
        .handshakes()
        .into_iter()
        .map(|h| h.client_cert)
        .collect();
    assert_eq!(presented, [Some(client.cert.der().clone())]);
}

#[tokio::test]
async fn server_name_is_sent_as_sni_and_verified_in_the_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("backend CA");
    // Valid for a name only: not for the address the endpoint is given as.
    let backend = Backend::tls(ca.issue(&["backend.test"], ServerAuth).server_config(None)).await;
    let ca_file = ca_line(&ca.write(dir.path(), "ca.pem"));

    let by_address = https_gateway(&backend, &ca_file).await;
    refused_before_any_request(&by_address, &backend, "by-address").await;

    let named = https_gateway(&backend, &format!("{ca_file}server_name = \"backend.test\"\n")).await;
    reached(&named, &backend, "by-name").await;
    let sni: Vec<_> = backend.seen.handshakes().into_iter().map(|h| h.sni).collect();
    assert_eq!(sni, [Some("backend.test".to_string())]);
}

// === several endpoints ===

#[tokio::test]
async fn round_robin_spreads_requests_over_every_endpoint() {
    let backends = [Backend::plain().await, Backend::plain().await];
    let route = svc(
        &upstreams(&backends.each_ref().map(|b| b.addr)),
        "balance = \"round_robin\"",
    );
    let gateway = Gateway::start(Setup::routes(route)).await;
    for n in 0..10 {
        get_ok(&gateway, &n.to_string()).await;
    }
    assert_eq!(backends.each_ref().map(|b| b.seen.requests("/svc/")), [5, 5]);
}

/// Two endpoints behind round robin with one retry, both serving; then the second is killed
/// and ten GETs must all succeed on the first. Returns the gateway and the backends.
async fn kill_one_of_two(health_check: &str) -> (Gateway, [Backend; 2]) {
    let mut backends = [Backend::plain().await, Backend::plain().await];
    let addrs = backends.each_ref().map(|b| b.addr);
    let settings = format!("balance = \"round_robin\"\nretries = 1\n{health_check}");
    let gateway = Gateway::start(Setup::routes(svc(&upstreams(&addrs), &settings))).await;
    for n in 0..4 {
        get_ok(&gateway, &format!("before-{n}")).await;
    }
    assert_eq!(backends.each_ref().map(|b| b.seen.requests("/svc/")), [2, 2]);
    backends[1].kill().await;
    for n in 0..10 {
        get_ok(&gateway, &format!("after-{n}")).await;
    }
    assert_eq!(backends[0].seen.requests("/svc/after-"), 10);
    (gateway, backends)
}

#[tokio::test]
async fn a_killed_endpoint_leaves_the_rotation_and_no_get_fails() {
    let (gateway, mut backends) = kill_one_of_two("").await;
    wait_healthy(&gateway, backends[1].addr, "0").await;
    assert_eq!(healthy(&gateway, backends[0].addr).await.as_deref(), Some("1"));
    // Out of rotation, not merely failing: serving again within its 10 s cool-down, it gets nothing.
    backends[1].restart().await;
    for n in 0..6 {
        get_ok(&gateway, &format!("cooling-{n}")).await;
    }
    assert_eq!(
        backends.each_ref().map(|b| b.seen.requests("/svc/cooling-")),
        [6, 0]
    );
}

#[tokio::test]
async fn a_restarted_endpoint_comes_back_once_its_health_checks_pass() {
    let check = "[routes.health_check]\npath = \"/healthz\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
                 unhealthy_after = 2\nhealthy_after = 2\n";
    let (gateway, mut backends) = kill_one_of_two(check).await;
    wait_healthy(&gateway, backends[1].addr, "0").await;
    backends[1].restart().await;
    wait_healthy(&gateway, backends[1].addr, "1").await;
    assert!(
        backends[1].seen.requests("/healthz") > 0,
        "no health check reached it"
    );
    let mut n = 0;
    eventually(DEADLINE, async || {
        n += 1;
        get_ok(&gateway, &format!("back-{n}")).await;
        match backends[1].seen.requests("/svc/back-") {
            0 => Err(format!("{n} requests since it came back, none reached it")),
            _ => Ok(()),
        }
    })
    .await;
    assert!(
        n <= 2,
        "round robin took {n} requests to reach the restored endpoint"
    );
}

#[tokio::test]
async fn with_every_endpoint_down_the_route_answers_503() {
    let dead = [refused_addr().await, refused_addr().await];
    let check = "[routes.health_check]\npath = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\n\
                 unhealthy_after = 1\nhealthy_after = 1\n";
    let gateway = Gateway::start(Setup::routes(svc(&upstreams(&dead), check))).await;
    for addr in dead {
        wait_healthy(&gateway, addr, "0").await;
    }
    for n in 0..3 {
        let reply = gateway.get(&format!("/svc/{n}")).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text());
    }
}

// === retries after an upstream read the request and failed ===

/// A gateway with round robin and one retry over an endpoint that reads each request whole and
/// closes without answering, and one that answers.
async fn swallower_and_answerer() -> (Gateway, Recorder, Recorder) {
    let swallower = Recorder::start(|_: &Recorded| (Vec::new(), Then::Close)).await;
    let answerer = Recorder::start(plain_responder).await;
    let route = svc(
        &upstreams(&[swallower.addr, answerer.addr]),
        "balance = \"round_robin\"\nretries = 1",
    );
    (Gateway::start(Setup::routes(route)).await, swallower, answerer)
}

/// The target and body of every complete POST that `upstream` received.
fn posts(upstream: &Recorder) -> Vec<(String, String)> {
    let requests = upstream.requests().into_iter();
    let complete = requests.filter(|r| r.method == "POST" && r.complete);
    complete
        .map(|r| (r.path, String::from_utf8_lossy(&r.body).into_owned()))
        .collect()
}

#[tokio::test]
async fn a_post_that_reached_a_failing_upstream_is_never_resent() {
    let (gateway, swallower, answerer) = swallower_and_answerer().await;
    let mut failed = Vec::new();
    // With a body (it is gone once read) and without one (nothing to lose, still not idempotent).
    for n in 0..8 {
        let (path, body) = (
            format!("/svc/orders/{n}"),
            if n < 4 {
                format!("order-{n}")
            } else {
                String::new()
            },
        );
        let reply = gateway
            .send(request(Method::POST, &path).with_body(body.clone()))
            .await;
        match reply.status {
            StatusCode::BAD_GATEWAY => failed.push((path, body)),
            StatusCode::OK => {}
            other => panic!("POST {path}: {other} {}", reply.text()),
        }
    }
    assert_eq!(posts(&swallower), failed, "the 502s are the POSTs it read whole");
    for (kind, empty) in [("with a body", false), ("without a body", true)] {
        let some = failed.iter().any(|(_, body)| body.is_empty() == empty);
        assert!(
            some,
            "no POST {kind} went to the failing endpoint first: {failed:?}"
        );
    }
    let answered = posts(&answerer);
    let resent: Vec<_> = failed
        .iter()
        .filter(|f| answered.iter().any(|a| a.0 == f.0))
        .collect();
    assert!(resent.is_empty(), "resent to the other endpoint: {resent:?}");
    assert_eq!(answered.len() + failed.len(), 8, "{answered:?}");
}

#[tokio::test]
async fn a_get_that_reached_a_failing_upstream_is_retried_on_another() {
    let (gateway, swallower, answerer) = swallower_and_answerer().await;
    for n in 0..4 {
        let reply = gateway.get(&format!("/svc/item-{n}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.text(), format!("up:/svc/item-{n}"));
    }
    let swallowed: Vec<String> = swallower.requests().into_iter().map(|r| r.path).collect();
    assert!(!swallowed.is_empty(), "no GET went to the failing endpoint first");
    let answered: Vec<String> = answerer.requests().into_iter().map(|r| r.path).collect();
    assert!(
        swallowed.iter().all(|path| answered.contains(path)),
        "swallowed {swallowed:?}, answered {answered:?}"
    );
}

// === portcullis check ===

/// `line:col` (1-based) of `value` on the first line of `text` that starts with `start`.
fn value_position(text: &str, start: &str, value: &str) -> String {
    let (row, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.starts_with(start))
        .expect("line");
    let column = line.find(value).expect("value on its line");
    format!("{}:{}", row + 1, column + 1)
}

#[test]
fn check_refuses_contradictory_or_out_of_range_upstream_settings() {
    let one = "upstream = \"http://127.0.0.1:9\"";
    let cases = [
        (
            format!("{one}\nupstreams = [\"http://127.0.0.1:10\"]"),
            ("upstreams = [", "["),
            "give upstream (one endpoint) or upstreams (several), not both",
        ),
        (
            format!("{one}\nbalance = \"random\""),
            ("balance = ", "\"random\""),
            "balance must be \"least_request\" or \"round_robin\", not \"random\"",
        ),
        (
            format!("{one}\nretries = 99"),
            ("retries = ", "99"),
            "retries must be between 0 and 5",
        ),
        (
            format!("{one}\nretries = -1"),
            ("retries = ", "-1"),
            "retries must be between 0 and 5",
        ),
        (
            format!(
                "{}\n[routes.upstream_tls]\nserver_name = \"backend.test\"",
                upstreams(&[
                    "127.0.0.1:9".parse().expect("addr"),
                    "127.0.0.1:10".parse().expect("addr")
                ])
            ),
            ("[routes.upstream_tls]", "["),
            "[routes.upstream_tls] applies to https:// upstreams; this route has none",
        ),
    ];
    for (lines, (line, value), message) in cases {
        let dir = tempfile::tempdir().expect("dir");
        let (text, stderr) = refused_by_check(dir.path(), &svc(&lines, ""));
        let expected = format!("FILE:{}: {message}", value_position(&text, line, value));
        assert_eq!(stderr.trim_end(), expected, "for:\n{lines}");
    }
}

#[test]
fn check_refuses_upstream_tls_files_it_cannot_use() {
    let ca = TestCa::new("backend CA");
    let https = "upstream = \"https://127.0.0.1:9\"";
    let tls = "[routes.upstream_tls]\nca_file = \"ca.pem\"\nclient_cert = \"gateway.crt\"\nclient_key = \"gateway.key\"";
    let mismatched = ca.issue(&["other.test"], ClientAuth).key.serialize_pem();
    let cases: [(&str, &str, &str); 3] = [
        (
            "ca.pem",
            "not a certificate\n",
            "ca.pem: cannot read CA certificates",
        ),
        (
            "gateway.key",
            "not a key\n",
            "gateway.key: cannot read private key",
        ),
        (
            "gateway.key",
            &mismatched,
            "certificate and key do not form a usable TLS config",
        ),
    ];
    for (file, contents, message) in cases {
        let dir = tempfile::tempdir().expect("dir");
        ca.write(dir.path(), "ca.pem");
        ca.issue(&["gateway.test"], ClientAuth)
            .write(dir.path(), "gateway");
        std::fs::write(dir.path().join(file), contents).expect("write the bad file");
        let (_, stderr) = refused_by_check(dir.path(), &svc(https, tls));
        let prefix = "FILE:1:1: route \"svc\": ";
        assert!(
            stderr.starts_with(prefix) && stderr.contains(message) && stderr.lines().count() == 1,
            "{file} = {contents:?}: expected {prefix}…{message}, got:\n{stderr}"
        );
    }
    // Two routes with unusable files: both are named in one run.
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").expect("write");
    let second = "[[routes]]\nname = \"other\"\npath = \"/other/\"\nauth = \"public\"\n\
                  upstream = \"https://127.0.0.1:9\"\n[routes.upstream_tls]\nca_file = \"ca.pem\"\n";
    let only_ca = "[routes.upstream_tls]\nca_file = \"ca.pem\"";
    let (_, stderr) = refused_by_check(dir.path(), &(svc(https, only_ca) + second));
    let routes: Vec<&str> = stderr.lines().filter_map(|l| l.split('"').nth(1)).collect();
    assert_eq!(routes, ["svc", "other"], "{stderr}");
}
