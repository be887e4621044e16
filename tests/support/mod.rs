//! Test harness: a real gateway on 127.0.0.1:0 with real upstreams and a real TLS client.
#![allow(dead_code)]

pub mod binary;
pub mod browser;
pub mod cases;
pub mod client;
pub mod config;
pub mod dpop;
pub mod h2raw;
pub mod matrix;
pub mod oidc;
pub mod passkey;
pub mod probe;
pub mod raw;
pub mod recorder;
pub mod rng;
pub mod tls_backend;
pub mod upstreams;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use portcullis::Running;
use rustls::ClientConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

// The kit for sessions and tokens: logins, refreshes, JWT forging, a redis-server.
pub mod auth;
pub mod jwt;
pub mod redis;

/// Every test waits at most this long for anything; a hang fails instead of stalling CI.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running gateway with its own temp dir (config, generated certificate). It derefs to its
/// `Client`, so `gateway.addr`, `gateway.admin` and every request helper are the client's.
pub struct Gateway {
    pub running: Option<Running>,
    pub redirect: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    client: Client,
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

/// `ES256_TOKENS` with `extra` settings (e.g. `refresh_grace = "1s"`) in its `[tokens]`.
pub fn tokens_with(extra: &str) -> String {
    ES256_TOKENS.replace("[tokens]\n", &format!("[tokens]\n{extra}\n"))
}

/// Limits high enough that no test meets them unless it sets its own.
pub const GENEROUS_LIMITS: &str = "[limits]\nlogin_per_ip = \"10000/min\"\nlogin_per_user = \"10000/min\"\n\
                                   refresh_per_session = \"10000/min\"\n";

/// The access and refresh cookies of cookie mode.
pub const ACCESS_COOKIE: &str = "__Host-portcullis-access";
pub const REFRESH_COOKIE: &str = "__Secure-portcullis-refresh";

/// The protected path of `api_gateway` (and of `Client::assert_access_works`).
pub const PROTECTED: &str = "/api/whoami";

/// Test users: alice (admin), bob (user), carol (disabled); the password is `<name>-password`.
pub fn test_users() -> String {
    static USERS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let users = [
            ("alice", "admin", ""),
            ("bob", "user", ""),
            ("carol", "user", "disabled = true\n"),
        ];
        users
            .map(|(name, role, extra)| user_entry(name, role, extra))
            .concat()
    });
    USERS.clone()
}

/// A `[[user]]` entry with the password `<name>-password` and `extra` lines.
pub fn user_entry(name: &str, role: &str, extra: &str) -> String {
    let hash = portcullis::sessions::users::hash_password(&format!("{name}-password")).expect("hash");
    format!("\n[[user]]\nname = \"{name}\"\nrole = \"{role}\"\n{extra}password_hash = \"{hash}\"\n")
}

/// Replaces `dir`/users.toml the way editors do (`write_atomically`).
pub fn replace_users_file(dir: &Path, text: &str) {
    write_atomically(&dir.join("users.toml"), text);
}

/// Saves like an editor does: a temporary file beside `path`, renamed over it.
pub fn write_atomically(path: &Path, contents: impl AsRef<[u8]>) {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".saving");
    std::fs::write(&temporary, contents).expect("write temporary file");
    std::fs::rename(&temporary, path).expect("rename over the file");
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
    config::route(name, path, upstream, "auth = \"public\"")
}

/// A route named `name` at `path` to `upstream` that needs a token.
pub fn required_route(name: &str, path: &str, upstream: SocketAddr) -> String {
    config::route(name, path, upstream, "auth = \"required\"")
}

/// A gateway with an echo behind the required route `api` at `/api/`, `GENEROUS_LIMITS`,
/// the `[tokens]` section `tokens`, and `rest` (more sections or routes).
pub async fn api_gateway(tokens: &str, rest: &str) -> (Gateway, upstreams::Upstream) {
    let echo = upstreams::Upstream::echo().await;
    let routes = format!(
        "{}{GENEROUS_LIMITS}{rest}",
        required_route("api", "/api/", echo.addr)
    );
    (Gateway::start(Setup::routes(routes).tokens(tokens)).await, echo)
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
        Gateway {
            client: Client::new(running.public_addr, running.admin_addr, dir.path()),
            redirect: running.redirect_addr,
            running: Some(running),
            dir,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    pub async fn stop(&mut self) -> bool {
        match self.running.take() {
            Some(running) => running.shutdown().await,
            None => true,
        }
    }
}

impl Deref for Gateway {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// A client of one gateway (in this process or the real binary): its public and admin
/// addresses and a TLS config trusting the certificate it generated.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// Names the gateway in failure messages (replicas set it).
    pub name: &'static str,
    tls: Arc<ClientConfig>,
}

impl Client {
    /// A client trusting `dir`/certs/gateway.crt.
    pub fn new(addr: SocketAddr, admin: SocketAddr, dir: &Path) -> Client {
        Client {
            addr,
            admin,
            name: "the gateway",
            tls: client::trusting(dir, &[]),
        }
    }

    pub fn named(self, name: &'static str) -> Client {
        Client { name, ..self }
    }

    /// A fresh TLS connection offering the given ALPN protocols.
    pub async fn tls_connect(&self, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        let mut config = (*self.tls).clone();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        within(client::connect(self.addr, &Arc::new(config)))
            .await
            .expect("TLS")
    }

    /// A new HTTP/1.1 connection, for requests sent on it later (or many on one).
    pub async fn h1(&self) -> http1::SendRequest<Full<Bytes>> {
        client::h1(self.tls_connect(&[b"http/1.1"]).await).await.0
    }

    /// A new HTTP/2 connection (ALPN h2 is checked), for many requests on it.
    pub async fn h2(&self) -> http2::SendRequest<Full<Bytes>> {
        let stream = self.tls_connect(&[b"h2"]).await;
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        client::h2(stream).await.0
    }

    /// Sends one request over a new HTTP/1.1 connection.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        self.try_send(request).await.expect("response")
    }

    /// `send`, with a broken connection or response reported instead of failing the test.
    pub async fn try_send(&self, request: Request<Full<Bytes>>) -> Result<Reply, hyper::Error> {
        Reply::try_read(within(self.h1().await.send_request(request)).await).await
    }

    /// Sends one request over a new HTTP/2 connection.
    pub async fn send_h2(&self, request: Request<Full<Bytes>>) -> Reply {
        self.try_send_h2(request).await.expect("response")
    }

    pub async fn try_send_h2(&self, request: Request<Full<Bytes>>) -> Result<Reply, hyper::Error> {
        Reply::try_read(within(self.h2().await.send_request(request)).await).await
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
        self.send(auth::json_login(username, password, &[])).await
    }

    /// An access token for a test user (see `test_users`).
    pub async fn token(&self, username: &str) -> String {
        self.pair(username).await.access
    }

    /// `GET path` with `Authorization: Bearer <token>`.
    pub async fn get_with_token(&self, path: &str, token: &str) -> Reply {
        self.send(request(Method::GET, path).bearer(token).empty()).await
    }

    /// One plain-HTTP request to the admin listener.
    pub async fn admin(&self, method: Method, path: &str) -> Reply {
        self.admin_request(request(method, path).empty()).await
    }

    /// `admin` with a request of the test's making (a body, headers).
    pub async fn admin_request(&self, request: Request<Full<Bytes>>) -> Reply {
        let tcp = within(TcpStream::connect(self.admin))
            .await
            .expect("connect to admin");
        let mut sender = client::h1(tcp).await.0;
        let response = within(sender.send_request(request)).await;
        Reply::read(response.expect("admin response")).await
    }

    /// The status of `GET /readyz` on the admin listener.
    pub async fn readyz(&self) -> StatusCode {
        self.admin(Method::GET, "/readyz").await.status
    }

    pub async fn healthz(&self) -> StatusCode {
        self.admin(Method::GET, "/healthz").await.status
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
    request(Method::GET, path).empty()
}

/// A request for `path` with `Host: localhost`, finished with `RequestExt`.
pub fn request(method: Method, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
}

/// Headers and bodies for a request being built.
pub trait RequestExt: Sized {
    fn headers(self, headers: &[(&str, &str)]) -> Self;
    /// `Authorization: Bearer <token>`.
    fn bearer(self, token: &str) -> Self;
    /// One `Cookie` header with every pair of `jar`; none when `jar` is empty.
    fn cookies(self, jar: &[(&str, &str)]) -> Self;
    fn with_body(self, body: impl Into<Bytes>) -> Request<Full<Bytes>>;
    /// `Content-Type: application/json` and `body` as its JSON text.
    fn json(self, body: &Value) -> Request<Full<Bytes>>;

    fn empty(self) -> Request<Full<Bytes>> {
        self.with_body(Bytes::new())
    }
}

impl RequestExt for http::request::Builder {
    fn headers(mut self, headers: &[(&str, &str)]) -> Self {
        for (name, value) in headers {
            self = self.header(*name, *value);
        }
        self
    }

    fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    fn cookies(self, jar: &[(&str, &str)]) -> Self {
        if jar.is_empty() {
            return self;
        }
        let joined: Vec<String> = jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
        self.header("cookie", joined.join("; "))
    }

    fn with_body(self, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
        self.body(Full::new(body.into())).expect("request")
    }

    fn json(self, body: &Value) -> Request<Full<Bytes>> {
        self.header("content-type", "application/json")
            .with_body(body.to_string())
    }
}

/// Awaits `future` within `DEADLINE`, failing the test on a hang.
pub async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future).await.expect("timed out")
}

/// Sends `request` on an open HTTP/2 connection (from `Client::h2`), which carries many at once.
pub async fn send_on(sender: &http2::SendRequest<Full<Bytes>>, request: Request<Full<Bytes>>) -> Reply {
    let mut sender = sender.clone();
    within(sender.ready()).await.expect("h2 ready");
    Reply::read(within(sender.send_request(request)).await.expect("h2 response")).await
}

/// A response read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub async fn read(response: http::Response<hyper::body::Incoming>) -> Reply {
        Reply::try_read(Ok(response)).await.expect("body")
    }

    async fn try_read(
        response: Result<http::Response<hyper::body::Incoming>, hyper::Error>,
    ) -> Result<Reply, hyper::Error> {
        let (parts, body) = response?.into_parts();
        let body = within(body.collect()).await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name`, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Retry-After` in whole seconds, if there is one.
    pub fn retry_after(&self) -> Option<u64> {
        self.header("retry-after")?.parse().ok()
    }

    /// Status, body and headers, without `ignored` ones (those that differ on every
    /// response by design), to compare two answers.
    pub fn comparable(&self, ignored: &[&str]) -> (StatusCode, Bytes, BTreeSet<(String, Vec<u8>)>) {
        let headers = self
            .headers
            .iter()
            .filter(|(name, _)| !ignored.contains(&name.as_str()))
            .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
            .collect();
        (self.status, self.body.clone(), headers)
    }

    /// For an echo upstream's reply: every value it received under `name`.
    pub fn upstream_header(&self, name: &str) -> Vec<String> {
        echo_header(&self.json(), name)
    }

    /// For an echo upstream's reply: the request target it received.
    pub fn upstream_uri(&self) -> String {
        self.json()["uri"].as_str().expect("echo uri").to_string()
    }
}

/// Every value an echo upstream (its JSON answer) received under `name`.
pub fn echo_header(echo: &Value, name: &str) -> Vec<String> {
    let pairs = echo["headers"].as_array();
    let pairs = pairs.unwrap_or_else(|| panic!("not an echo reply: {echo}"));
    let named = pairs
        .iter()
        .filter(|pair| pair[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)));
    named
        .map(|pair| pair[1].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Polls `check` about every 50 ms until it gives a value; fails with its last complaint once
/// `limit` has passed.
pub async fn eventually<T>(limit: Duration, mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(complaint) => assert!(tokio::time::Instant::now() < deadline, "{complaint}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a tool a test needs may be missing: not under CI (the `CI` variable set to anything
/// but "", "0" or "false"), where this fails; elsewhere it says that the test skips.
pub fn skip_without(tool: &str) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"));
    assert!(!ci, "{tool} is not installed, and CI must run this test");
    eprintln!("skipping: {tool} not installed");
    true
}
