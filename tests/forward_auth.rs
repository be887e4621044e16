//! Forward-auth (SPEC 12): `GET /auth/verify` decides for a proxy in front of the backends,
//! from the original request in `X-Forwarded-*` / `X-Original-*`, believed only from a
//! trusted proxy; decision-only routes; the signed identity assertion. Real nginx
//! (`auth_request`) and real Caddy (`forward_auth`) in front of an echo backend, with
//! Portcullis deciding, each configured with the snippet shipped in `contrib/`.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use http::Method;
use serde_json::Value;
use support::dpop::DpopKey;
use support::upstreams::Upstream;
use support::{Gateway, Reply, Setup, config, eventually, request, skip_without};

/// Routes: `app` (any signed-in user, with a login page and an assertion), `admin` (admins
/// only), `open` (public), and `decide` (decision-only: no upstream).
fn routes(echo: SocketAddr) -> String {
    let app = "auth = \"required\"\nlogin_page = \"/login\"\nassertion = true";
    [
        config::route("app", "/app/", echo, app),
        config::route(
            "admin",
            "/admin/",
            echo,
            "auth = \"required\"\nroles = [\"admin\"]",
        ),
        config::route("open", "/open/", echo, "auth = \"public\""),
        "[[routes]]\nname = \"decide\"\npath = \"/decide/\"\nauth = \"required\"\n".into(),
    ]
    .concat()
}

/// A gateway that believes forwarded headers from `trusted` (a CIDR).
async fn gateway(trusted: &str) -> (Gateway, Upstream) {
    let echo = Upstream::echo().await;
    let setup = Setup::routes(routes(echo.addr)).server(&format!("trusted_proxies = [\"{trusted}\"]"));
    (Gateway::start(setup).await, echo)
}

/// `GET /auth/verify` as a proxy asks it, for the original `method` and `uri`, with `extra`
/// headers (credentials, `Accept`).
async fn verify(gateway: &Gateway, method: &str, uri: &str, extra: &[(&str, &str)]) -> Reply {
    let mut ask = request(Method::GET, "/auth/verify")
        .header("x-forwarded-method", method)
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example.com")
        .header("x-forwarded-uri", uri);
    for (name, value) in extra {
        ask = ask.header(*name, *value);
    }
    gateway.send(ask.body(Default::default()).expect("request")).await
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn forward_auth_answers_the_decision_of_a_proxied_request_with_the_identity_headers() {
    let (gateway, echo) = gateway("127.0.0.0/8").await;
    let (alice, bob) = (gateway.token("alice").await, gateway.token("bob").await);
    let (name, value) = bearer(&bob);
    let allowed = verify(&gateway, "GET", "/app/page?x=1", &[(name, &value)]).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(allowed.header("x-auth-sub"), Some("bob"));
    assert_eq!(allowed.header("x-auth-role"), Some("user"));
    assert!(allowed.header("x-auth-session").is_some_and(|s| !s.is_empty()));
    let refused = verify(&gateway, "GET", "/app/page", &[]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer realm=\"portcullis\"")
    );
    let forbidden = verify(&gateway, "GET", "/admin/users", &[(name, &value)]).await;
    assert_eq!(forbidden.status, 403, "bob is no admin");
    let (name, admin) = bearer(&alice);
    assert_eq!(
        verify(&gateway, "DELETE", "/admin/users/1", &[(name, &admin)])
            .await
            .status,
        200
    );
    let public = verify(&gateway, "POST", "/open/form", &[]).await;
    assert_eq!(
        (public.status, public.header("x-auth-sub")),
        (200.try_into().unwrap(), None)
    );
    let garbage = verify(&gateway, "GET", "/app/page", &[("authorization", "Bearer nope")]).await;
    assert_eq!(garbage.status, 401);
    assert_eq!(
        verify(&gateway, "GET", "/nowhere", &[(name, &admin)])
            .await
            .status,
        404
    );
    assert_eq!(
        verify(&gateway, "GET", "/app/%2e%2e/admin", &[(name, &admin)])
            .await
            .status,
        400
    );
    assert_eq!(echo.counts.requests(), 0, "forward-auth never reaches a backend");
}

#[tokio::test]
async fn a_browser_navigation_is_sent_to_the_login_page_with_the_original_url() {
    let (gateway, _echo) = gateway("127.0.0.1/32").await;
    let html = ("accept", "text/html,application/xhtml+xml");
    let redirected = verify(&gateway, "GET", "/app/page?x=1&y=2", &[html]).await;
    assert_eq!(redirected.status, 302);
    assert_eq!(
        redirected.header("location"),
        Some("/login?return_to=%2Fapp%2Fpage%3Fx%3D1%26y%3D2")
    );
    // nginx's auth_request passes on only 2xx, 401 and 403: the same page, in a 401.
    let nginx = verify(
        &gateway,
        "GET",
        "/app/page",
        &[html, ("x-original-uri", "/app/page")],
    )
    .await;
    assert_eq!(nginx.status, 401);
    assert_eq!(nginx.header("location"), Some("/login?return_to=%2Fapp%2Fpage"));
    let api = verify(&gateway, "GET", "/app/page", &[("accept", "application/json")]).await;
    assert_eq!((api.status.as_u16(), api.header("location")), (401, None));
}

#[tokio::test]
async fn forwarded_headers_from_a_peer_outside_trusted_proxies_are_refused() {
    let (gateway, echo) = gateway("10.9.8.0/24").await;
    let token = gateway.token("alice").await;
    let (name, value) = bearer(&token);
    let forged = verify(&gateway, "GET", "/app/page", &[(name, &value)]).await;
    assert_eq!(forged.status, 403, "{}", forged.text());
    assert_eq!(forged.header("x-auth-sub"), None);
    // The same caller through the proxy path is fine: only the decision endpoint is closed.
    assert_eq!(gateway.get_with_token("/app/page", &token).await.status, 200);
    assert_eq!(echo.counts.requests(), 1);
}

/// SPEC 14 behind a proxy: the proof must name the original request (method, the host and
/// path the client used), which forward-auth reads from the forwarded headers.
#[tokio::test]
async fn a_dpop_bound_token_passes_forward_auth_only_with_a_proof_of_the_original_request() {
    let (gateway, _echo) = gateway("127.0.0.1/32").await;
    let key = DpopKey::es256();
    let token = gateway.dpop_pair(&key, "bob").await.access;
    let authorization = format!("DPoP {token}");
    let ask = async |method: &str, htu: &str| {
        let proof = key.proof(method, htu, Some(&token));
        let extra = [
            ("authorization", authorization.as_str()),
            ("dpop", proof.as_str()),
        ];
        verify(&gateway, "POST", "/app/orders?id=7", &extra).await
    };
    let allowed = ask("POST", "https://app.example.com/app/orders").await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(allowed.header("x-auth-sub"), Some("bob"));
    for (what, method, htu) in [
        ("the gateway's own URL", "POST", "https://localhost/auth/verify"),
        (
            "the verify request's method",
            "GET",
            "https://app.example.com/app/orders",
        ),
    ] {
        let refused = ask(method, htu).await;
        assert_eq!(refused.status, 401, "{what}");
        let challenge = refused.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains("error=\"invalid_dpop_proof\""),
            "{what}: {challenge}"
        );
    }
    let (name, value) = bearer(&token);
    assert_eq!(
        verify(&gateway, "POST", "/app/orders", &[(name, &value)])
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn a_decision_only_route_answers_forward_auth_and_is_absent_to_proxied_requests() {
    let (gateway, _echo) = gateway("127.0.0.1/32").await;
    let token = gateway.token("bob").await;
    let (name, value) = bearer(&token);
    assert_eq!(
        verify(&gateway, "GET", "/decide/x", &[(name, &value)])
            .await
            .status,
        200
    );
    assert_eq!(verify(&gateway, "GET", "/decide/x", &[]).await.status, 401);
    assert_eq!(gateway.get_with_token("/decide/x", &token).await.status, 404);
    assert_eq!(gateway.get("/decide/x").await.status, 404);
}

/// The claims of `token` after verifying its ES256 signature with the gateway's JWKS.
async fn verified_claims(gateway: &Gateway, token: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_slice(&gateway.get("/.well-known/jwks.json").await.body).expect("JWKS");
    let header = jsonwebtoken::decode_header(token).expect("JWT header");
    assert_eq!(header.typ.as_deref(), Some("portcullis-assertion+jwt"));
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("the signing key in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&["app"]);
    validation.set_issuer(&["portcullis"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("a valid assertion")
        .claims
}

#[tokio::test]
async fn the_assertion_is_a_short_lived_jwt_for_the_route_reused_within_the_session() {
    let (gateway, _echo) = gateway("127.0.0.1/32").await;
    let token = gateway.token("bob").await;
    let proxied = gateway
        .send(
            request(Method::GET, "/app/page")
                .header("authorization", format!("Bearer {token}"))
                .header("x-auth-assertion", "forged")
                .body(Default::default())
                .expect("request"),
        )
        .await;
    assert_eq!(proxied.status, 200);
    let sent = proxied.upstream_header("x-auth-assertion");
    assert_eq!(
        sent.len(),
        1,
        "exactly one assertion, the client's copy gone: {sent:?}"
    );
    let claims = verified_claims(&gateway, &sent[0]).await;
    assert_eq!(
        (claims["sub"].as_str(), claims["role"].as_str()),
        (Some("bob"), Some("user"))
    );
    assert_eq!(claims["aud"], "app");
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!(lifetime <= 60, "SPEC 12: at most 60 s, got {lifetime}");
    assert_eq!(
        claims["sid"].as_str(),
        proxied
            .upstream_header("x-auth-session")
            .first()
            .map(String::as_str)
    );
    let (name, value) = bearer(&token);
    let answered = verify(&gateway, "GET", "/app/other", &[(name, &value)]).await;
    assert_eq!(
        answered.header("x-auth-assertion"),
        Some(sent[0].as_str()),
        "one signature per session and route"
    );
    let other_session = gateway.token("bob").await;
    let (name, value) = bearer(&other_session);
    let fresh = verify(&gateway, "GET", "/app/other", &[(name, &value)]).await;
    assert_ne!(fresh.header("x-auth-assertion"), Some(sent[0].as_str()));
    let plain = gateway
        .get_with_token("/admin/x", &gateway.token("alice").await)
        .await;
    assert!(
        plain.upstream_header("x-auth-assertion").is_empty(),
        "no assertion on a route without it"
    );
}

// === real nginx with auth_request ===

/// A shipped snippet from `contrib/` with the test's addresses in place of the examples.
fn snippet(file: &str, gateway: &Gateway, echo: SocketAddr) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(file);
    let certificate = gateway.config_path().with_file_name("certs").join("gateway.crt");
    std::fs::read_to_string(path)
        .expect("the shipped snippet")
        .replace(
            "https://portcullis.internal:8443",
            &format!("https://{}", gateway.addr),
        )
        .replace("/etc/portcullis/gateway.crt", &certificate.display().to_string())
        .replace("portcullis.internal", "localhost")
        .replace("http://backend:9000", &format!("http://{echo}"))
}

/// nginx on `port` in front of `echo`, asking `gateway` through `auth_request` from
/// 127.0.0.2, with `contrib/nginx-auth-request.conf`.
fn start_nginx(dir: &std::path::Path, port: u16, gateway: &Gateway, echo: SocketAddr) -> Proxy {
    let snippet = snippet("nginx-auth-request.conf", gateway, echo)
        .replace("# proxy_bind 10.0.0.2;", "proxy_bind 127.0.0.2;");
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {0}/nginx.pid;\nerror_log {0}/error.log info;\n\
         events {{ worker_connections 64; }}\nhttp {{\naccess_log off;\nclient_body_temp_path {0};\n\
         proxy_temp_path {0};\nfastcgi_temp_path {0};\nuwsgi_temp_path {0};\nscgi_temp_path {0};\n\
         server {{\nlisten 127.0.0.1:{port};\n{snippet}\n}}\n}}\n",
        dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    Proxy::start(port, Command::new("nginx").arg("-c").arg(&path))
}

/// Caddy on `port` in front of `echo`, asking `gateway` through `forward_auth`, with
/// `contrib/Caddyfile.forward-auth`.
fn start_caddy(dir: &std::path::Path, port: u16, gateway: &Gateway, echo: SocketAddr) -> Proxy {
    let snippet = snippet("Caddyfile.forward-auth", gateway, echo);
    let conf = format!(
        "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {0}\n}}\n\
         http://127.0.0.1:{port} {{\n{snippet}\n}}\n",
        dir.display()
    );
    let path = dir.join("Caddyfile");
    std::fs::write(&path, conf).expect("write Caddyfile");
    let mut caddy = Command::new("caddy");
    caddy
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&path)
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env("HOME", dir);
    Proxy::start(port, &mut caddy)
}

/// A proxy this test started on `port`, stopped by its PID when the test ends (also on failure).
struct Proxy {
    child: Child,
    port: u16,
}

impl Proxy {
    fn start(port: u16, command: &mut Command) -> Proxy {
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        Proxy {
            child: child.expect("start the proxy"),
            port,
        }
    }

    /// Waits until the proxy accepts connections.
    async fn listening(&self) {
        eventually(Duration::from_secs(10), async || {
            let listening = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await;
            listening.map_err(|e| format!("the proxy is not listening: {e}"))
        })
        .await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// `GET path` to the proxy on `port` over plain HTTP with `headers`.
async fn through(port: u16, path: &str, headers: &[(&str, &str)]) -> Reply {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to nginx");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let mut ask = http::Request::get(path).header("host", format!("127.0.0.1:{port}"));
    for (name, value) in headers {
        ask = ask.header(*name, *value);
    }
    Reply::read(
        sender
            .send_request(
                ask.body(http_body_util::Full::<bytes::Bytes>::default())
                    .expect("request"),
            )
            .await
            .expect("answer"),
    )
    .await
}

#[tokio::test]
async fn nginx_auth_request_lets_portcullis_decide_with_the_shipped_snippet() {
    if support::binary::which("nginx").is_none() && skip_without("nginx") {
        return;
    }
    let (gateway, echo) = gateway("127.0.0.2/32").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = support::binary::free_port();
    let nginx = start_nginx(dir.path(), port, &gateway, echo.addr);
    nginx.listening().await;
    let bob = gateway.token("bob").await;
    let auth = format!("Bearer {bob}");
    let allowed = eventually(Duration::from_secs(10), async || {
        let reply = through(
            port,
            "/app/page?x=1",
            &[("authorization", &auth), ("x-auth-sub", "admin")],
        )
        .await;
        match reply.status.as_u16() {
            200 => Ok(reply),
            other => Err(format!("nginx answered {other}: {}", reply.text())),
        }
    })
    .await;
    assert_eq!(
        allowed.upstream_header("x-auth-sub"),
        ["bob"],
        "set by nginx from the decision, the forged one gone"
    );
    assert_eq!(allowed.upstream_uri(), "/app/page?x=1");
    assert_eq!(through(port, "/app/page", &[]).await.status, 401);
    let login = through(port, "/app/page?x=1", &[("accept", "text/html")]).await;
    assert_eq!(login.status, 302);
    // nginx makes the redirect absolute (its `absolute_redirect`), on the host the browser used.
    let page = format!("http://127.0.0.1:{port}/login?return_to=%2Fapp%2Fpage%3Fx%3D1");
    assert_eq!(login.header("location"), Some(page.as_str()));
    assert_eq!(
        through(port, "/admin/users", &[("authorization", &auth)])
            .await
            .status,
        403
    );
    // The same forged headers straight to the gateway, from 127.0.0.1, which it does not trust.
    let direct = verify(&gateway, "GET", "/app/page", &[("authorization", &auth)]).await;
    assert_eq!(direct.status, 403);
}

#[tokio::test]
async fn caddy_forward_auth_lets_portcullis_decide_with_the_shipped_snippet() {
    if support::binary::which("caddy").is_none() && skip_without("caddy") {
        return;
    }
    let (gateway, echo) = gateway("127.0.0.1/32").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = support::binary::free_port();
    let caddy = start_caddy(dir.path(), port, &gateway, echo.addr);
    caddy.listening().await;
    let bob = gateway.token("bob").await;
    let auth = format!("Bearer {bob}");
    let allowed = through(
        port,
        "/app/page?x=1",
        &[("authorization", &auth), ("x-auth-role", "admin")],
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(allowed.upstream_header("x-auth-sub"), ["bob"]);
    assert_eq!(
        allowed.upstream_header("x-auth-role"),
        ["user"],
        "the forged role is gone"
    );
    assert_eq!(allowed.upstream_header("x-auth-assertion").len(), 1);
    assert_eq!(allowed.upstream_uri(), "/app/page?x=1");
    let anonymous = through(port, "/open/x", &[("x-auth-sub", "admin")]).await;
    assert_eq!(anonymous.status, 200);
    assert!(
        anonymous.upstream_header("x-auth-sub").is_empty(),
        "a client copy passed: {}",
        anonymous.text()
    );
    let alice = format!("Bearer {}", gateway.token("alice").await);
    let unasserted = through(port, "/admin/users", &[("authorization", &alice)]).await;
    assert_eq!(unasserted.upstream_header("x-auth-sub"), ["alice"]);
    assert!(
        unasserted.upstream_header("x-auth-assertion").is_empty(),
        "{}",
        unasserted.text()
    );
    assert_eq!(through(port, "/app/page", &[]).await.status, 401);
    let login = through(port, "/app/page?x=1", &[("accept", "text/html")]).await;
    assert_eq!(login.status, 302);
    assert_eq!(
        login.header("location"),
        Some("/login?return_to=%2Fapp%2Fpage%3Fx%3D1")
    );
    assert_eq!(
        through(port, "/admin/users", &[("authorization", &auth)])
            .await
            .status,
        403
    );
    assert_eq!(
        echo.counts.requests(),
        3,
        "only the three allowed requests reached the backend"
    );
}

#[tokio::test]
async fn forward_auth_never_rotates_a_refresh_cookie_whose_successor_could_not_reach_the_browser() {
    let echo = Upstream::echo().await;
    let setup = Setup::routes(format!(
        "{}[cookies]\ntransparent_refresh = true\n",
        routes(echo.addr)
    ))
    .server("trusted_proxies = [\"127.0.0.1/32\"]");
    let gateway = Gateway::start(setup).await;
    let pair = gateway.pair("bob").await;
    let refresh_only = format!("{}={}", support::REFRESH_COOKIE, pair.refresh);
    let answer = verify(&gateway, "GET", "/app/page", &[("cookie", &refresh_only)]).await;
    assert_eq!(
        answer.status, 401,
        "a proxy does not pass Set-Cookie on: no rotation here"
    );
    assert!(answer.headers.get("set-cookie").is_none());
    // The same browser through the gateway itself is refreshed transparently.
    let proxied = gateway
        .send(
            request(Method::GET, "/app/page")
                .header("cookie", &refresh_only)
                .body(Default::default())
                .unwrap(),
        )
        .await;
    assert_eq!(proxied.status, 200, "{}", proxied.text());
}
