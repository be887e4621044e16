//! Test harness: a real gateway on 127.0.0.1:0 with real upstreams and a real TLS client.
#![allow(dead_code)]

pub mod binary;
pub mod cases;
pub mod client;
pub mod config;
pub mod h2raw;
pub mod raw;
pub mod recorder;
pub mod upstreams;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use portcullis::Running;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Every test waits at most this long for anything; a hang fails instead of stalling CI.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running gateway with its own temp dir (config, generated certificate).
pub struct Gateway {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub redirect: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    tls: TlsConnector,
}

/// Settings a test may change; everything else is the shipped default.
pub struct Setup {
    /// Extra TOML appended to `[server]`.
    pub server: String,
    /// The whole `[tokens]` section, keys included.
    pub tokens: String,
    /// The contents of users.toml.
    pub users: String,
    /// Extra top-level TOML (sections, `[[routes]]`).
    pub rest: String,
}

/// An ES256 key generated into the test's temp dir.
pub const ES256_TOKENS: &str = "[tokens]\nleeway = \"5s\"\n[[tokens.keys]]\nkid = \"k1\"\nalg = \"ES256\"\n\
    private_key_file = \"keys/k1.pem\"\ngenerate_if_missing = true\n";

/// Test users: alice (admin), bob (user), carol (disabled); the password is `<name>-password`.
pub fn test_users() -> String {
    static HASHES: std::sync::LazyLock<[String; 3]> = std::sync::LazyLock::new(|| {
        ["alice", "bob", "carol"].map(|name| {
            portcullis::sessions::users::hash_password(&format!("{name}-password")).expect("hash")
        })
    });
    format!(
        "[[user]]\nname = \"alice\"\nrole = \"admin\"\npassword_hash = \"{}\"\n\n\
         [[user]]\nname = \"bob\"\nrole = \"user\"\npassword_hash = \"{}\"\n\n\
         [[user]]\nname = \"carol\"\nrole = \"user\"\ndisabled = true\npassword_hash = \"{}\"\n",
        HASHES[0], HASHES[1], HASHES[2]
    )
}

impl Setup {
    pub fn routes(rest: impl Into<String>) -> Self {
        Setup {
            server: String::new(),
            tokens: ES256_TOKENS.into(),
            users: test_users(),
            rest: rest.into(),
        }
    }

    pub fn server(mut self, extra: &str) -> Self {
        self.server.push_str(extra);
        self.server.push('\n');
        self
    }

    pub fn tokens(mut self, section: &str) -> Self {
        self.tokens = section.into();
        self
    }
}

/// A public route named `name` at `path` to `upstream`.
pub fn public_route(name: &str, path: &str, upstream: SocketAddr) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"http://{upstream}\"\nauth = \"public\"\n"
    )
}

impl Gateway {
    pub async fn start(setup: Setup) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{}\n\
             [tls]\nself_signed_if_missing = true\n\n{}\n{}",
            setup.server, setup.tokens, setup.rest
        );
        std::fs::write(dir.path().join("users.toml"), &setup.users).expect("write users");
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, &text).expect("write config");
        let config = portcullis::config::load(&path).unwrap_or_else(|e| panic!("config:\n{e}\n{text}"));
        let running = portcullis::start(config).await.expect("gateway starts");
        let tls = client_tls(&dir.path().join("certs/gateway.crt"));
        Gateway {
            addr: running.public_addr,
            admin: running.admin_addr,
            redirect: running.redirect_addr,
            running: Some(running),
            dir,
            tls,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    /// A fresh TLS connection offering the given ALPN protocols.
    pub async fn tls_connect(&self, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        let connector = self.connector(alpn);
        let name = ServerName::try_from("localhost").expect("name");
        connector.connect(name, tcp).await.expect("TLS handshake")
    }

    fn connector(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut config = (*self.tls.config().clone()).clone();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }

    /// Sends one request over a new HTTP/1.1 connection.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        let stream = self.tls_connect(&[b"http/1.1"]).await;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("h1 handshake");
        tokio::spawn(connection);
        let response = within(sender.send_request(request)).await.expect("response");
        Reply::read(response).await
    }

    /// Sends one request over a new HTTP/2 connection.
    pub async fn send_h2(&self, request: Request<Full<Bytes>>) -> Reply {
        let stream = self.tls_connect(&[b"h2"]).await;
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let executor = hyper_util::rt::TokioExecutor::new();
        let (mut sender, connection) = hyper::client::conn::http2::handshake(executor, TokioIo::new(stream))
            .await
            .expect("h2 handshake");
        tokio::spawn(connection);
        let response = within(sender.send_request(request)).await.expect("response");
        Reply::read(response).await
    }

    /// `GET path` with `Host: localhost` over HTTP/1.1.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(get(path)).await
    }

    /// Writes raw bytes on a new TLS connection and reads until the gateway closes it (or
    /// the deadline passes). Returns everything read as lossy text.
    pub async fn raw(&self, bytes: &[u8]) -> String {
        let mut stream = self.tls_connect(&[b"http/1.1"]).await;
        stream.write_all(bytes).await.expect("write");
        stream.flush().await.expect("flush");
        read_until_closed(&mut stream).await
    }

    /// `POST /auth/login` with a JSON body.
    pub async fn login(&self, username: &str, password: &str) -> Reply {
        let body = serde_json::json!({ "username": username, "password": password }).to_string();
        let request = Request::post("/auth/login")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        self.send(request).await
    }

    /// An access token for a test user (see `test_users`).
    pub async fn token(&self, username: &str) -> String {
        let reply = self.login(username, &format!("{username}-password")).await;
        assert_eq!(
            reply.status,
            200,
            "login failed: {}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// `GET path` with `Authorization: Bearer <token>`.
    pub async fn get_with_token(&self, path: &str, token: &str) -> Reply {
        let request = Request::get(path)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        self.send(request).await
    }

    pub async fn stop(&mut self) -> bool {
        match self.running.take() {
            Some(running) => running.shutdown().await,
            None => true,
        }
    }
}

/// Reads until EOF, an error, or the deadline; a test asserting on "closed" checks `closed`.
pub async fn read_until_closed<S: AsyncReadExt + Unpin>(stream: &mut S) -> String {
    let mut buffer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut buffer)).await;
    String::from_utf8_lossy(&buffer).into_owned()
}

/// A GET request for `path` with `Host: localhost`.
pub fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// Awaits `future` within `DEADLINE`, failing the test on a hang.
pub async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future).await.expect("timed out")
}

/// A response read in full.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    async fn read(response: http::Response<hyper::body::Incoming>) -> Reply {
        let (parts, body) = response.into_parts();
        let body = within(body.collect()).await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// For an echo upstream's reply: every value it received under `name`.
    pub fn upstream_header(&self, name: &str) -> Vec<String> {
        self.json()["headers"]
            .as_array()
            .expect("echo headers")
            .iter()
            .filter(|pair| pair[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .map(|pair| pair[1].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// For an echo upstream's reply: the request target it received.
    pub fn upstream_uri(&self) -> String {
        self.json()["uri"].as_str().expect("echo uri").to_string()
    }
}

fn client_tls(cert: &std::path::Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert).expect("cert file") {
        roots.add(cert.expect("cert")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// One plain-HTTP request to an admin listener: its status and body.
pub async fn admin_request(admin: SocketAddr, method: http::Method, path: &str) -> (StatusCode, Bytes) {
    let tcp = within(TcpStream::connect(admin)).await.expect("connect to admin");
    let (mut sender, connection) = within(hyper::client::conn::http1::handshake(TokioIo::new(tcp)))
        .await
        .expect("admin handshake");
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = within(sender.send_request(request))
        .await
        .expect("admin response");
    let status = response.status();
    let body = within(response.into_body().collect())
        .await
        .expect("admin body")
        .to_bytes();
    (status, body)
}
