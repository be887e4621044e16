//! Metrics and logs of a scripted session against the real binary: the counters move as they
//! should, and no secret the session used appears in any log line or metric.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};
use support::binary::{Binary, free_port, plain_get};
use support::upstreams::Upstream;
use support::{ES256_TOKENS, test_users, within};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

struct Client {
    addr: SocketAddr,
    tls: TlsConnector,
}

struct Answer {
    status: StatusCode,
    set_cookies: Vec<String>,
    body: Value,
}

impl Client {
    fn new(addr: SocketAddr, dir: &Path) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(dir.join("certs/gateway.crt")).expect("cert") {
            roots.add(cert.expect("cert")).expect("root");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client {
            addr,
            tls: TlsConnector::from(Arc::new(config)),
        }
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Answer {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        let stream = self.tls.connect(name, tcp).await.expect("handshake");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("h1");
        tokio::spawn(connection);
        let response = within(sender.send_request(request)).await.expect("response");
        let status = response.status();
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let body = within(response.into_body().collect())
            .await
            .expect("body")
            .to_bytes();
        Answer {
            status,
            set_cookies,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        }
    }

    async fn post(&self, path: &str, body: Value, extra: &[(&str, &str)]) -> Answer {
        let mut request = Request::post(path)
            .header("host", "localhost")
            .header("content-type", "application/json");
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        self.send(request.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = Request::get(path).header("host", "localhost");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.send(request.body(Full::new(Bytes::new())).unwrap()).await
    }
}

fn write_config(dir: &Path, public: SocketAddr, admin: SocketAddr, upstream: SocketAddr) {
    let text = format!(
        "[server]\nlisten = \"{public}\"\nadmin_listen = \"{admin}\"\n\n[tls]\nself_signed_if_missing = true\n\n\
         {ES256_TOKENS}\n[log]\nformat = \"json\"\n\n\
         [[routes]]\nname = \"api\"\npath = \"/api/\"\nupstream = \"http://{upstream}\"\n"
    );
    std::fs::write(dir.join("users.toml"), test_users()).unwrap();
    std::fs::write(dir.join("gateway.toml"), text).unwrap();
}

/// The value of one series in Prometheus text, or 0 when absent.
fn series(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_scripted_session_moves_the_counters_and_leaves_no_secret_in_logs_or_metrics() {
    let echo = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let (public, admin): (SocketAddr, SocketAddr) = (
        ([127, 0, 0, 1], free_port()).into(),
        ([127, 0, 0, 1], free_port()).into(),
    );
    write_config(dir.path(), public, admin, echo.addr);
    let binary = Binary::start(dir.path(), admin).await;
    let client = Client::new(public, dir.path());

    let login = client
        .post(
            "/auth/login",
            json!({ "username": "alice", "password": "alice-password" }),
            &[],
        )
        .await;
    assert_eq!(login.status, 200);
    let access = login.body["access_token"].as_str().unwrap().to_string();
    let refresh_token = login.body["refresh_token"].as_str().unwrap().to_string();
    let wrong = client
        .post(
            "/auth/login",
            json!({ "username": "alice", "password": "not-her-password" }),
            &[],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let cookie_login = client
        .post(
            "/auth/login",
            json!({ "username": "bob", "password": "bob-password", "mode": "cookie" }),
            &[("origin", "https://localhost")],
        )
        .await;
    assert_eq!(cookie_login.status, 200);
    let cookie_values: Vec<String> = cookie_login
        .set_cookies
        .iter()
        .map(|c| {
            c.split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap()
                .1
                .to_string()
        })
        .collect();

    assert_eq!(client.get("/api/one", Some(&access)).await.status, 200);
    assert_eq!(client.get("/api/two", Some(&access)).await.status, 200);
    assert_eq!(client.get("/api/three", None).await.status, 401);
    assert_eq!(client.get("/api/four", Some("not.a.token")).await.status, 401);
    let refreshed = client
        .post("/auth/refresh", json!({ "refresh_token": refresh_token }), &[])
        .await;
    assert_eq!(refreshed.status, 200);
    let new_refresh = refreshed.body["refresh_token"].as_str().unwrap().to_string();
    let new_access = refreshed.body["access_token"].as_str().unwrap().to_string();
    let logout = client
        .post("/auth/logout", json!({ "refresh_token": new_refresh }), &[])
        .await;
    assert_eq!(logout.status, 204);
    assert_eq!(client.get("/api/five", Some(&new_access)).await.status, 401);

    let metrics = plain_get(admin, "/metrics").await.expect("metrics");
    let expected = [
        ("portcullis_requests_total{route=\"api\",status=\"200\"}", 2.0),
        ("portcullis_requests_total{route=\"api\",status=\"401\"}", 3.0),
        ("portcullis_auth_failures_total{reason=\"missing\"}", 1.0),
        ("portcullis_auth_failures_total{reason=\"invalid_token\"}", 1.0),
        ("portcullis_auth_failures_total{reason=\"revoked\"}", 1.0),
        ("portcullis_logins_total{result=\"ok\"}", 2.0),
        ("portcullis_logins_total{result=\"invalid_credentials\"}", 1.0),
        ("portcullis_refreshes_total{result=\"ok\"}", 1.0),
        ("portcullis_revocations{kind=\"session\"}", 1.0),
        ("portcullis_request_duration_seconds_count{route=\"api\"}", 5.0),
    ];
    for (series_name, value) in expected {
        assert_eq!(
            series(&metrics, series_name),
            value,
            "{series_name} in:\n{metrics}"
        );
    }

    let log = binary.log();
    for event in ["login_ok", "login_failed", "refresh", "logout"] {
        assert!(
            log.contains(&format!("\"event\":\"{event}\"")),
            "no {event} audit event in:\n{log}"
        );
    }
    let secrets = [
        "alice-password".to_string(),
        "not-her-password".to_string(),
        "bob-password".to_string(),
        access,
        refresh_token,
        new_access,
        new_refresh,
    ];
    for secret in secrets.iter().chain(&cookie_values) {
        assert!(!log.contains(secret.as_str()), "a secret appears in the log");
        assert!(
            !metrics.contains(secret.as_str()),
            "a secret appears in the metrics"
        );
    }
}

#[tokio::test]
async fn text_logs_in_a_file_are_plain_and_name_the_client_behind_a_trusted_proxy() {
    let echo = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let (public, admin): (SocketAddr, SocketAddr) = (
        ([127, 0, 0, 1], free_port()).into(),
        ([127, 0, 0, 1], free_port()).into(),
    );
    let text = format!(
        "[server]\nlisten = \"{public}\"\nadmin_listen = \"{admin}\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n\
         [tls]\nself_signed_if_missing = true\n\n{ES256_TOKENS}\n\
         [[routes]]\nname = \"open\"\npath = \"/\"\nupstream = \"http://{}\"\nauth = \"public\"\n",
        echo.addr
    );
    std::fs::write(dir.path().join("users.toml"), test_users()).unwrap();
    std::fs::write(dir.path().join("gateway.toml"), text).unwrap();
    let binary = Binary::start(dir.path(), admin).await;
    let client = Client::new(public, dir.path());

    let wrong = json!({ "username": "alice", "password": "wrong" });
    assert_eq!(client.post("/auth/login", wrong, &[]).await.status, 401);
    let from_proxy = Request::get("/hello")
        .header("host", "localhost")
        .header("x-forwarded-for", "203.0.113.7")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(client.send(from_proxy).await.status, 200);

    let log = binary.log();
    assert!(
        !log.contains('\x1b'),
        "terminal colour codes in a log file:\n{log:?}"
    );
    assert!(log.contains("event=\"login_failed\""), "not grep-able:\n{log}");
    let access_line = log
        .lines()
        .find(|line| line.contains("portcullis::access") && line.contains("route=\"open\""))
        .unwrap_or_else(|| panic!("no access line for the proxied request:\n{log}"));
    assert!(access_line.contains("client=203.0.113.7"), "{access_line}");
    assert!(access_line.contains("peer=127.0.0.1:"), "{access_line}");
}
