//! A real OpenID provider for the single sign-on tests (SPEC 10): panva's certified
//! `oidc-provider`, run by Node from tests/oidc-provider (installed from its lockfile on first
//! use), over HTTPS with a test CA on a loopback port; and a client that signs in on its pages
//! the way a browser does (cookies, the login form, the consent form).
//!
//! Order of start: the provider's port is chosen first, the gateway starts naming that issuer
//! (its first look at the provider fails, which the gateway survives), then the provider starts
//! knowing the gateway's callback and back-channel addresses, and `ready` waits until the
//! gateway has learnt the provider.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::binary::free_port;
use super::browser::browser;
use super::{Client, DEADLINE, Gateway, Reply, RequestExt, eventually, skip_without};

pub const CLIENT_ID: &str = "portcullis";
pub const CLIENT_SECRET: &str = "portcullis-test-client-secret-0123456789";
/// The provider's name in the gateway's config.
pub const NAME: &str = "corp";
/// A service's client at the provider (client-credentials grant, SPEC 11), and the audience
/// of the access tokens it gets for the gateway's API.
pub const MACHINE_ID: &str = "ci-runner";
pub const MACHINE_SECRET: &str = "ci-runner-test-secret-0123456789abcdef";
pub const API_AUDIENCE: &str = "portcullis-api";
/// The issuer's name in the gateway's `[[issuers]]`.
pub const ISSUER_NAME: &str = "ci";

/// The provider's users: alice (admins, staff), bob (unverified email), carol (no group),
/// dave (another email domain). The provider ignores passwords.
pub fn users() -> Value {
    json!({
        "alice": { "email": "alice@example.com", "email_verified": true, "name": "Alice", "groups": ["admins", "staff"] },
        "bob": { "email": "bob@example.com", "email_verified": false, "groups": ["staff"] },
        "carol": { "email": "carol@example.com", "email_verified": true, "groups": [] },
        "dave": { "email": "dave@other.org", "email_verified": true, "groups": ["staff"] },
    })
}

/// How the provider is set up; `Default` is the usual confidential client.
#[derive(Clone)]
pub struct Options {
    /// The algorithm of its id_tokens (it holds an RS256 and an ES256 key).
    pub id_token_alg: &'static str,
    /// What discovery advertises at the token endpoint.
    pub client_auth_methods: &'static [&'static str],
    /// The algorithm of the machine client's access tokens.
    pub access_token_alg: &'static str,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            id_token_alg: "RS256",
            client_auth_methods: &["client_secret_basic", "client_secret_post"],
            access_token_alg: "RS256",
        }
    }
}

/// The test PKI and the provider's signing keys, in the provider's folder.
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The provider's RS256 signing key (PKCS#8 PEM), to sign tokens that pass its signature check.
    pub fn rsa_key(&self) -> Vec<u8> {
        std::fs::read(self.path("rs-1.pem")).expect("read the RSA key")
    }

    pub fn ec_key(&self) -> Vec<u8> {
        std::fs::read(self.path("es-1.pem")).expect("read the EC key")
    }

    fn create() -> Files {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("leaf params")
            .signed_by(&leaf_key, &Issuer::new(ca, ca_key))
            .expect("leaf certificate");
        let rsa = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
        let ec = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
        let files = Files { dir };
        for (name, contents) in [
            ("ca.pem", ca_cert.pem()),
            ("leaf.pem", leaf.pem()),
            ("leaf.key", leaf_key.serialize_pem()),
            ("rs-1.pem", rsa.serialize_pem()),
            ("es-1.pem", ec.serialize_pem()),
            ("client.secret", CLIENT_SECRET.to_string()),
        ] {
            std::fs::write(files.path(name), contents).expect("write a test file");
        }
        files
    }
}

/// A running provider; stopped (its stdin closed, then killed) on drop.
pub struct Provider {
    pub issuer: String,
    pub files: Files,
    pub web: Web,
    child: Child,
}

/// A provider's port chosen and its files written, before the gateway starts.
pub struct Planned {
    pub port: u16,
    pub files: Files,
}

impl Planned {
    /// `None` (the test skips) when Node is missing outside CI.
    pub fn new() -> Option<Planned> {
        if super::binary::which("node").is_none() {
            skip_without("node");
            return None;
        }
        Some(Planned {
            port: free_port(),
            files: Files::create(),
        })
    }

    pub fn issuer(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The `[[providers]]` entry for this provider, with `extra` lines.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "\n[[providers]]\nname = \"{NAME}\"\ndisplay_name = \"Corp SSO\"\nissuer = \"{}\"\n\
             client_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{}\"\nca_file = \"{}\"\n\
             subject_prefix = \"corp:\"\nrole_claim = \"groups\"\nrole_map = [[\"admins\", \"admin\"], [\"staff\", \"user\"]]\n{extra}\n",
            self.issuer(),
            self.files.path("client.secret").display(),
            self.files.path("ca.pem").display(),
        )
    }

    /// The `[[issuers]]` entry that accepts the machine client's access tokens, with `extra`
    /// lines (`role_claim = "scope"` maps its scopes).
    pub fn issuer_config(&self, extra: &str) -> String {
        format!(
            "\n[[issuers]]\nname = \"{ISSUER_NAME}\"\nissuer = \"{}\"\nca_file = \"{}\"\n\
             audience = \"{API_AUDIENCE}\"\nsubject_prefix = \"ci:\"\nrole_claim = \"scope\"\n\
             role_map = [[\"deploy\", \"deployer\"], [\"read\", \"reader\"]]\n{extra}\n",
            self.issuer(),
            self.files.path("ca.pem").display(),
        )
    }

    /// Starts the provider for `gateway`: its callback (as the kit's `Host: localhost` and as a
    /// browser at the real port reach it) and back-channel logout registered, its CA trusted.
    pub async fn start(self, gateway: &Gateway, options: Options) -> Provider {
        self.start_for(gateway, gateway.dir.path(), options).await
    }

    /// `start` for a gateway that is not in this process: its client and its folder (where
    /// its certificate is).
    pub async fn start_for(self, gateway: &Client, dir: &Path, options: Options) -> Provider {
        let provider = self.launch(Some((gateway.addr.port(), dir)), options).await;
        provider.wait_until_known(gateway).await;
        provider
    }

    /// Starts the provider before any gateway, for machine clients only (no login returns
    /// to a gateway, and no back-channel logout is sent).
    pub async fn start_alone(self, options: Options) -> Provider {
        self.launch(None, options).await
    }

    async fn launch(self, gateway: Option<(u16, &Path)>, options: Options) -> Provider {
        super::npm::install(&package_dir());
        let port = gateway.map_or(9, |(port, _)| port);
        let callback = |host: &str| format!("https://{host}/auth/oidc/{NAME}/callback");
        let mut config = json!({
            "port": self.port,
            "cert": self.files.path("leaf.pem"),
            "key": self.files.path("leaf.key"),
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [callback("localhost"), callback(&format!("localhost:{port}"))],
            "id_token_alg": options.id_token_alg,
            "access_token_alg": options.access_token_alg,
            "machine_client": { "client_id": MACHINE_ID, "client_secret": MACHINE_SECRET },
            "resource_audience": API_AUDIENCE,
            "client_auth_methods": options.client_auth_methods,
            // The client must use a method the provider takes.
            "token_endpoint_auth_method": options.client_auth_methods[0],
            "signing_keys": [
                { "pem": self.files.path("rs-1.pem"), "kid": "rs-1", "alg": "RS256" },
                { "pem": self.files.path("es-1.pem"), "kid": "es-1", "alg": "ES256" },
            ],
            "users": users(),
        });
        if let Some((port, dir)) = gateway {
            let logout = format!("https://127.0.0.1:{port}/auth/oidc/{NAME}/backchannel-logout");
            config["backchannel_logout_uri"] = Value::from(logout);
            // The gateway's own (self-signed) certificate: the back-channel POSTs reach it.
            config["ca_file"] = json!(dir.join("certs/gateway.crt"));
        }
        let config_path = self.files.path("provider.json");
        std::fs::write(&config_path, config.to_string()).expect("write the provider config");
        Provider {
            issuer: self.issuer(),
            web: Web::trusting(&self.files.path("ca.pem")),
            child: run(&config_path).await,
            files: self.files,
        }
    }
}

/// Runs the provider on `config` and waits until it listens.
async fn run(config: &Path) -> Child {
    let mut child = Command::new("node")
        .arg(package_dir().join("provider.mjs"))
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = async {
        while let Some(line) = lines.next_line().await.expect("read the provider's output") {
            if line.starts_with("OIDC_PROVIDER_LISTENING") {
                return;
            }
        }
        panic!("the provider exited before listening");
    };
    tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("the provider starts within 30 s");
    child
}

impl Provider {
    /// Restarts the provider (same issuer) with a new RSA signing key `kid`, as a provider
    /// rotating its keys does; what it knew of logins in progress is lost.
    pub async fn rotate_rsa_key(&mut self, kid: &str) {
        self.child.kill().await.expect("stop the provider");
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
        std::fs::write(self.files.path("rs-1.pem"), key.serialize_pem()).expect("write the new key");
        let path = self.files.path("provider.json");
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read config")).expect("JSON");
        config["signing_keys"][0]["kid"] = Value::from(kid);
        std::fs::write(&path, config.to_string()).expect("write config");
        self.child = run(&path).await;
    }

    /// The gateway retries a provider it could not reach at most once a second, on a login.
    pub async fn wait_until_known(&self, gateway: &Client) {
        eventually(DEADLINE, async || {
            let reply = gateway.get(&format!("/auth/oidc/{NAME}/login")).await;
            match reply.status {
                StatusCode::FOUND => Ok(()),
                status => Err(format!("the gateway has not learnt the provider yet: {status}")),
            }
        })
        .await;
    }

    /// The id_token the provider puts in its next token response instead of its own.
    pub async fn replace_next_id_token(&self, token: &str) {
        let url = format!("{}/__test/next_id_token", self.issuer);
        let answer = self
            .web
            .send(Method::POST, &url, &mut Jar::default(), Some(token.to_owned()))
            .await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
    }

    /// An access token for the gateway's API, by the client-credentials grant (RFC 6749 4.4),
    /// with `scope` (space-separated; `""` asks for none).
    pub async fn client_credentials(&self, scope: &str) -> String {
        let mut form =
            format!("grant_type=client_credentials&client_id={MACHINE_ID}&client_secret={MACHINE_SECRET}");
        if !scope.is_empty() {
            form.push_str(&format!("&scope={}", scope.replace(' ', "+")));
        }
        let url = format!("{}/token", self.issuer);
        let answer = self
            .web
            .send(Method::POST, &url, &mut Jar::default(), Some(form))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let body: Value = serde_json::from_slice(&answer.body).expect("JSON");
        body["access_token"]
            .as_str()
            .expect("an access token")
            .to_string()
    }

    /// How many times the key set (`/jwks`) was fetched since the provider started.
    pub async fn jwks_fetches(&self) -> u64 {
        let url = format!("{}/__test/jwks_fetches", self.issuer);
        let answer = self.web.send(Method::GET, &url, &mut Jar::default(), None).await;
        answer.text().trim().parse().expect("a count")
    }

    /// How the gateway authenticated at the token endpoint last: `basic` or `post`.
    pub async fn last_token_auth(&self) -> String {
        let url = format!("{}/__test/last_token_auth", self.issuer);
        self.web
            .send(Method::GET, &url, &mut Jar::default(), None)
            .await
            .text()
    }

    /// Makes the provider send its real back-channel logout for `account`'s latest session.
    pub async fn back_channel_logout(&self, account: &str) -> Value {
        let url = format!("{}/__test/backchannel?account={account}", self.issuer);
        let answer = self.web.send(Method::POST, &url, &mut Jar::default(), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        serde_json::from_slice(&answer.body).expect("JSON")
    }

    /// Signs `user` in on the provider's pages, starting at `authorize` (the gateway's redirect),
    /// and returns where the provider sends the browser back (the callback URL).
    pub async fn sign_in(&self, authorize: &str, user: &str) -> String {
        self.walk(authorize, user, false).await
    }

    /// Like `sign_in`, but the user presses Cancel on the login page.
    pub async fn cancel(&self, authorize: &str) -> String {
        self.walk(authorize, "", true).await
    }

    async fn walk(&self, authorize: &str, user: &str, cancel: bool) -> String {
        let mut jar = Jar::default();
        let mut url = authorize.to_string();
        for _ in 0..12 {
            let page = self.web.send(Method::GET, &url, &mut jar, None).await;
            let next = match page.location() {
                Some(location) if location.starts_with('/') => format!("{}{location}", self.issuer),
                Some(location) => location,
                None if cancel => format!("{}/abort", form_action(&page.text())),
                None => self.submit(&page.text(), user, &mut jar).await,
            };
            if !next.starts_with(&self.issuer) {
                return next;
            }
            url = next;
        }
        panic!("the provider's pages did not lead back to the gateway");
    }

    /// Fills in the page's form (login or consent) and returns where the provider redirects.
    async fn submit(&self, page: &str, user: &str, jar: &mut Jar) -> String {
        let action = form_action(page);
        let form = match page.contains("name=\"prompt\" value=\"login\"") {
            true => format!("prompt=login&login={user}&password=unused"),
            false => "prompt=consent".to_string(),
        };
        let answer = self.web.send(Method::POST, &action, jar, Some(form)).await;
        let location = answer.location();
        let location =
            location.unwrap_or_else(|| panic!("the form was refused ({}): {}", answer.status, answer.text()));
        match location.starts_with('/') {
            true => format!("{}{location}", self.issuer),
            false => location,
        }
    }
}

// === logging in through the gateway ===

/// The gateway's redirect to the provider for a login that should end at `return_to`, and the
/// value of the login cookie it set.
pub async fn begin(gateway: &Client, return_to: &str) -> (String, String) {
    let reply = gateway
        .get(&format!("/auth/oidc/{NAME}/login?return_to={return_to}"))
        .await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    let cookie = reply.header("set-cookie").expect("the login cookie").to_string();
    let value = cookie
        .strip_prefix("__Host-portcullis-oidc=")
        .and_then(|rest| rest.split(';').next())
        .expect("the login cookie's value");
    (
        reply.header("location").expect("a Location").to_string(),
        value.to_string(),
    )
}

/// The gateway's answer to the provider's redirect back to `callback`, with the login cookie.
pub async fn callback(gateway: &Client, callback: &str, cookie: Option<&str>) -> Reply {
    let path = callback.strip_prefix("https://localhost");
    let path = path.unwrap_or_else(|| panic!("not the gateway's callback: {callback}"));
    let jar: Vec<(&str, &str)> = cookie
        .map(|c| ("__Host-portcullis-oidc", c))
        .into_iter()
        .collect();
    gateway.send(browser(Method::GET, path, &[], &jar).empty()).await
}

/// A whole login of `user` through the provider: the gateway's answer at the callback.
pub async fn log_in(gateway: &Client, provider: &Provider, user: &str) -> Reply {
    let (authorize, cookie) = begin(gateway, "/api/whoami").await;
    let back = provider.sign_in(&authorize, user).await;
    callback(gateway, &back, Some(&cookie)).await
}

/// The `action` of the page's form (the provider's pages have one).
fn form_action(page: &str) -> String {
    let start = page.find("action=\"").expect("a form") + "action=\"".len();
    let end = page[start..].find('"').expect("the action's end");
    page[start..start + end].replace("&amp;", "&")
}

/// Cookies of one site, as a browser keeps them (name to value; paths do not matter here).
#[derive(Default)]
pub struct Jar(Vec<(String, String)>);

impl Jar {
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn update(&mut self, set_cookie: &str) {
        let pair = set_cookie.split(';').next().unwrap_or("");
        let Some((name, value)) = pair.split_once('=') else {
            return;
        };
        self.0.retain(|(n, _)| n != name.trim());
        let expired = set_cookie.to_ascii_lowercase().contains("max-age=0") || value.is_empty();
        if !expired {
            self.0.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
}

/// An answer of the provider.
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn location(&self) -> Option<String> {
        let location = self.headers.get(http::header::LOCATION)?.to_str().ok()?;
        Some(location.to_string())
    }
}

/// An HTTPS client that trusts the test CA, for talking to the provider like a browser.
pub struct Web(HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>);

impl Web {
    fn trusting(ca: &Path) -> Web {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(ca).expect("read the CA");
        for cert in
            <rustls_pki_types::CertificateDer<'_> as rustls_pki_types::pem::PemObject>::pem_slice_iter(&pem)
        {
            roots.add(cert.expect("a certificate")).expect("a usable CA");
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        Web(HttpClient::builder(TokioExecutor::new()).build(https))
    }

    pub async fn send(&self, method: Method, url: &str, jar: &mut Jar, form: Option<String>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(url)
            .header("cookie", jar.header());
        if form.is_some() {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        let request = request
            .body(Full::new(Bytes::from(form.unwrap_or_default())))
            .expect("request");
        let exchange = async {
            let response = self.0.request(request).await.expect("the provider answers");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("the provider's body").to_bytes();
            Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        };
        let answer = tokio::time::timeout(DEADLINE, exchange)
            .await
            .expect("the provider answers in time");
        for value in answer.headers.get_all(http::header::SET_COOKIE) {
            jar.update(value.to_str().unwrap_or(""));
        }
        answer
    }
}

/// tests/oidc-provider, where the provider's package lives.
fn package_dir() -> PathBuf {
    super::npm::package_dir("oidc-provider")
}
