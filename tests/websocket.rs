//! WebSocket tunnels (SPEC 6): an upgrade passes through only after authentication, only on
//! routes with `websocket = true`, and only when the upstream answers 101; an open tunnel is
//! closed when its session is revoked (logout, logout-all, admin revoke of a session or a
//! user, reuse detection), and only that session's tunnels are.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use support::upstreams::Upstream;
use support::{ES256_TOKENS, Gateway, Reply, Setup, client, config, within};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as Handshake, Response as Accepted,
};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async, client_async};

const ACCESS: &str = "__Host-portcullis-access";
const OWN_ORIGIN: &str = "https://localhost";
/// How long a revoked tunnel may stay open.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<TlsStream<TcpStream>>;

// === a WebSocket echo upstream ===

/// Greets each connection with `hello <X-Auth-Sub> <X-Auth-Session>` as it received them, then
/// echoes every text and binary message; records every handshake's headers, and counts the
/// connections it accepted and the ones that ended.
struct WsEcho {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    handshakes: Arc<Mutex<Vec<HeaderMap>>>,
    ended: watch::Receiver<usize>,
}

impl WsEcho {
    async fn start() -> WsEcho {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let (ended_tx, ended) = watch::channel(0usize);
        let ended_tx = Arc::new(ended_tx);
        let (count, seen) = (connections.clone(), handshakes.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (seen, ended_tx) = (seen.clone(), ended_tx.clone());
                tokio::spawn(async move {
                    serve(tcp, seen).await;
                    ended_tx.send_modify(|n| *n += 1);
                });
            }
        });
        WsEcho {
            addr,
            connections,
            handshakes,
            ended,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The headers of the n-th handshake the upstream accepted.
    fn handshake(&self, n: usize) -> HeaderMap {
        self.handshakes.lock().expect("lock")[n].clone()
    }

    /// Waits until `n` upstream connections have ended in all.
    async fn wait_ended(&self, n: usize, what: &str) {
        let mut ended = self.ended.clone();
        let waited = tokio::time::timeout(CLOSE_WITHIN, ended.wait_for(|count| *count >= n)).await;
        assert!(
            waited.is_ok(),
            "{what}: the upstream side of the tunnel is still open ({} of {n} ended)",
            *self.ended.borrow()
        );
    }

    fn ended(&self) -> usize {
        *self.ended.borrow()
    }
}

// The callback's `Result<Response, ErrorResponse>` is tungstenite's signature, not ours.
#[allow(clippy::result_large_err)]
async fn serve(tcp: TcpStream, seen: Arc<Mutex<Vec<HeaderMap>>>) {
    let mut greeting = String::new();
    let callback = |request: &Handshake, response: Accepted| -> Result<Accepted, ErrorResponse> {
        let headers = request.headers();
        let value = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        greeting = format!("hello {} {}", value("x-auth-sub"), value("x-auth-session"));
        seen.lock().expect("lock").push(headers.clone());
        Ok(response)
    };
    let Ok(mut ws) = accept_hdr_async(tcp, callback).await else {
        return;
    };
    if ws.send(Message::text(greeting)).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = ws.next().await {
        if message.is_close() {
            return;
        }
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            return;
        }
    }
}

// === the gateway ===

fn route(name: &str, path: &str, upstream: SocketAddr, websocket: bool) -> String {
    config::route(
        name,
        path,
        upstream,
        &format!("auth = \"required\"\nwebsocket = {websocket}"),
    )
}

const GENEROUS_LIMITS: &str = "[limits]\nlogin_per_ip = \"1000/min\"\nlogin_per_user = \"1000/min\"\n\
                               refresh_per_session = \"1000/min\"\n";

/// A gateway with `/ws/` (websocket = true, auth required) to a WebSocket echo.
async fn gateway_with_tokens(tokens: &str) -> (Gateway, WsEcho) {
    let echo = WsEcho::start().await;
    let rest = format!("{}{GENEROUS_LIMITS}", route("ws", "/ws/", echo.addr, true));
    let gateway = Gateway::start(Setup::routes(rest).tokens(tokens)).await;
    (gateway, echo)
}

async fn gateway() -> (Gateway, WsEcho) {
    gateway_with_tokens(ES256_TOKENS).await
}

// === sessions ===

#[derive(Debug, Clone)]
struct Pair {
    access: String,
    refresh: String,
}

impl Pair {
    fn sid(&self) -> String {
        let payload = self.access.split('.').nth(1).expect("a JWT");
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("claims");
        claims["sid"].as_str().expect("sid").to_string()
    }

    fn from_reply(reply: &Reply, what: &str) -> Pair {
        assert_eq!(
            reply.status,
            200,
            "{what}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        let body = reply.json();
        Pair {
            access: body["access_token"].as_str().expect("access_token").to_string(),
            refresh: body["refresh_token"].as_str().expect("refresh_token").to_string(),
        }
    }
}

async fn login(gateway: &Gateway, user: &str) -> Pair {
    let reply = gateway.login(user, &format!("{user}-password")).await;
    Pair::from_reply(&reply, &format!("login {user}"))
}

fn json_post(path: &str, body: Value) -> Request<Full<Bytes>> {
    client::request(
        "POST",
        path,
        None,
        &[("content-type", "application/json")],
        body.to_string(),
    )
}

async fn refresh(gateway: &Gateway, refresh_token: &str) -> Reply {
    gateway
        .send(json_post(
            "/auth/refresh",
            json!({ "refresh_token": refresh_token }),
        ))
        .await
}

/// `POST path` with `Authorization: Bearer <access>` and no body.
async fn bearer_post(gateway: &Gateway, path: &str, access: &str) -> Reply {
    gateway
        .send(client::request("POST", path, Some(access), &[], ""))
        .await
}

async fn admin(gateway: &Gateway, method: Method, path: &str) -> StatusCode {
    support::admin_request(gateway.admin, method, path).await.0
}

// === the WebSocket client ===

/// Opens `wss://localhost<path>` over a fresh TLS connection to the gateway, with `headers`.
async fn connect(
    gateway: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws, http::Response<Option<Vec<u8>>>), tungstenite::Error> {
    let stream = gateway.tls_connect(&[b"http/1.1"]).await;
    let mut request = format!("wss://localhost{path}")
        .into_client_request()
        .expect("client request");
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    within(client_async(request, stream)).await
}

/// A tunnel that the gateway accepted with 101, past the upstream's greeting, which must name
/// `sub` and the session `sid`: what the gateway told the upstream.
async fn tunnel(gateway: &Gateway, path: &str, headers: &[(&str, &str)], sub: &str, sid: &str) -> Ws {
    let (mut ws, response) = match connect(gateway, path, headers).await {
        Ok(connected) => connected,
        Err(tungstenite::Error::Http(response)) => panic!(
            "upgrade refused with {}: {}",
            response.status(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
        ),
        Err(e) => panic!("upgrade failed: {e}"),
    };
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        next_text(&mut ws, "the greeting").await,
        format!("hello {sub} {sid}")
    );
    ws
}

async fn bearer_tunnel(gateway: &Gateway, pair: &Pair, sub: &str) -> Ws {
    let authorization = format!("Bearer {}", pair.access);
    tunnel(
        gateway,
        "/ws/chat",
        &[("authorization", &authorization)],
        sub,
        &pair.sid(),
    )
    .await
}

async fn next_text(ws: &mut Ws, what: &str) -> String {
    loop {
        match within(ws.next()).await {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("{what}: expected a text message, got {other:?}"),
        }
    }
}

/// A text and a binary message go to the upstream and come back.
async fn assert_echoes(ws: &mut Ws, what: &str) {
    let text = format!("ping from {what}");
    within(ws.send(Message::text(text.clone())))
        .await
        .unwrap_or_else(|e| panic!("{what}: send: {e}"));
    assert_eq!(next_text(ws, what).await, text, "{what}");
    let bytes = Bytes::from_static(&[0, 1, 2, 255, 254]);
    within(ws.send(Message::binary(bytes.clone())))
        .await
        .unwrap_or_else(|e| panic!("{what}: send: {e}"));
    loop {
        match within(ws.next()).await {
            Some(Ok(Message::Binary(echoed))) => {
                assert_eq!(echoed, bytes, "{what}");
                return;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("{what}: expected the binary echo, got {other:?}"),
        }
    }
}

/// The client sees the tunnel end (a close frame, EOF or a reset) within `CLOSE_WITHIN`.
async fn assert_closed(ws: &mut Ws, what: &str) {
    let ended = tokio::time::timeout(CLOSE_WITHIN, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "{what}: the tunnel is still open after {CLOSE_WITHIN:?}"
    );
}

// === 1. the upgrade ===

#[tokio::test]
async fn an_upgrade_with_a_bearer_token_gets_101_and_messages_pass_both_ways() {
    let (gateway, echo) = gateway().await;
    let alice = login(&gateway, "alice").await;
    let authorization = format!("Bearer {}", alice.access);
    let (mut ws, response) = connect(&gateway, "/ws/chat?room=1", &[("authorization", &authorization)])
        .await
        .expect("upgrade");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let upgrade = response.headers().get("upgrade").and_then(|v| v.to_str().ok());
    assert!(
        upgrade.is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "Upgrade: {upgrade:?}"
    );
    // Upstream to client, unprompted: the greeting names who the gateway said is calling.
    assert_eq!(
        next_text(&mut ws, "the greeting").await,
        format!("hello alice {}", alice.sid())
    );
    // Client to upstream and back, several times.
    for round in 0..3 {
        assert_echoes(&mut ws, &format!("round {round}")).await;
    }
    assert_eq!(echo.connections(), 1);
    let seen = echo.handshake(0);
    assert_eq!(seen.get_all("x-auth-sub").iter().count(), 1);
    assert_eq!(seen["x-auth-role"], "admin");
    assert!(
        seen.get("authorization").is_none(),
        "the token reached the upstream: {seen:?}"
    );

    // A close from the client ends the upstream side too.
    within(ws.close(None)).await.expect("close");
    echo.wait_ended(1, "a client close").await;
}

#[tokio::test]
async fn an_upgrade_with_the_access_cookie_gets_101_hides_the_cookie_and_closes_on_cookie_logout() {
    let (gateway, echo) = gateway().await;
    let body = json!({ "username": "bob", "password": "bob-password", "mode": "cookie" });
    let mut request = json_post("/auth/login", body);
    request
        .headers_mut()
        .insert("origin", HeaderValue::from_static(OWN_ORIGIN));
    let reply = gateway.send(request).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let access = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{ACCESS}=")))
        .and_then(|v| v.split(';').next())
        .expect("access cookie")
        .to_string();
    let pair = Pair {
        access: access.clone(),
        refresh: String::new(),
    };
    let cookie = format!("theme=dark; {ACCESS}={access}");
    let mut ws = tunnel(
        &gateway,
        "/ws/chat",
        &[("cookie", &cookie), ("origin", OWN_ORIGIN)],
        "bob",
        &pair.sid(),
    )
    .await;
    assert_echoes(&mut ws, "a cookie tunnel").await;
    let seen = echo.handshake(0);
    let cookies: Vec<_> = seen.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["theme=dark"], "the upstream's Cookie header");

    // A cookie logout from the own origin closes the tunnel of that session.
    let logout = Request::post("/auth/logout")
        .header("host", "localhost")
        .header("origin", OWN_ORIGIN)
        .header("cookie", &cookie)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = gateway.send(logout).await;
    assert_eq!(reply.status, 204, "{}", String::from_utf8_lossy(&reply.body));
    assert_closed(&mut ws, "a cookie tunnel after a cookie logout").await;
    echo.wait_ended(1, "a cookie tunnel after a cookie logout").await;
}

#[tokio::test]
async fn an_upgrade_without_a_valid_token_is_401_and_never_reaches_the_upstream() {
    let (gateway, echo) = gateway().await;
    let alice = login(&gateway, "alice").await;
    let mut forged = alice.access.clone();
    forged.pop();
    forged.push(if alice.access.ends_with('A') { 'B' } else { 'A' });
    let forged = format!("Bearer {forged}");
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        ("no token", vec![]),
        ("a forged token", vec![("authorization", forged.as_str())]),
        (
            "a garbage cookie",
            vec![("cookie", "__Host-portcullis-access=garbage")],
        ),
    ];
    for (what, headers) in &cases {
        match connect(&gateway, "/ws/chat", headers).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}")
            }
            Ok((_, response)) => panic!("{what}: upgraded with {}", response.status()),
            Err(e) => panic!("{what}: {e}"),
        }
    }
    assert_eq!(echo.connections(), 0, "the upstream saw a connection");
}

#[tokio::test]
async fn on_a_route_without_websocket_the_upgrade_is_not_passed_and_the_client_gets_no_101() {
    let http_echo = Upstream::echo().await;
    let rest = format!(
        "{}{GENEROUS_LIMITS}",
        route("plain", "/plain/", http_echo.addr, false)
    );
    let gateway = Gateway::start(Setup::routes(rest)).await;
    let access = gateway.token("alice").await;
    let request = Request::get("/plain/chat")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {access}"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = gateway.send(request).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(
        reply.upstream_header("upgrade"),
        Vec::<String>::new(),
        "Upgrade reached the upstream"
    );
    let connection = reply.upstream_header("connection");
    assert!(
        connection
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("upgrade")),
        "Connection: {connection:?}"
    );
    assert_eq!(reply.upstream_header("x-auth-sub"), ["alice"]);
    assert!(reply.headers.get("upgrade").is_none());

    // A WebSocket client gets the 200, not a 101.
    let authorization = format!("Bearer {access}");
    match connect(&gateway, "/plain/chat", &[("authorization", &authorization)]).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), StatusCode::OK),
        Ok((_, response)) => panic!("upgraded with {}", response.status()),
        Err(e) => panic!("{e}"),
    }
    assert_eq!(http_echo.counts.requests(), 2);
}

#[tokio::test]
async fn an_upstream_that_refuses_the_upgrade_sends_its_status_and_no_tunnel_opens() {
    type Answer = fn(usize) -> Vec<u8>;
    let refuse_with_400: Answer =
        |_| b"HTTP/1.1 400 Bad Request\r\ncontent-length: 13\r\n\r\nno websockets".to_vec();
    let refuse_with_200: Answer = |_| b"HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\njust some html".to_vec();
    for (status, reply, body) in [
        (400, refuse_with_400, "no websockets"),
        (200, refuse_with_200, "just some html"),
    ] {
        let upstream = Upstream::raw(reply, false).await;
        let rest = format!("{}{GENEROUS_LIMITS}", route("ws", "/ws/", upstream.addr, true));
        let gateway = Gateway::start(Setup::routes(rest)).await;
        let access = gateway.token("alice").await;

        let stream = gateway.tls_connect(&[b"http/1.1"]).await;
        let (mut sender, connection) = within(hyper::client::conn::http1::handshake(TokioIo::new(stream)))
            .await
            .expect("h1 handshake");
        tokio::spawn(connection);
        let upgrade = Request::get("/ws/chat")
            .header("host", "localhost")
            .header("authorization", format!("Bearer {access}"))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = within(sender.send_request(upgrade)).await.expect("response");
        assert_eq!(response.status().as_u16(), status, "the upstream's status");
        assert!(response.headers().get("upgrade").is_none());
        let received = within(response.into_body().collect())
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(received, body.as_bytes(), "the upstream's body");

        // The connection is still HTTP with the gateway: its own endpoint answers, rather than
        // the upstream behind a tunnel.
        let next = Request::get("/.well-known/jwks.json")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = within(sender.send_request(next))
            .await
            .expect("a second request on the same connection");
        assert_eq!(response.status(), 200, "after a refused upgrade");
        let jwks = within(response.into_body().collect())
            .await
            .expect("body")
            .to_bytes();
        let jwks: Value = serde_json::from_slice(&jwks)
            .unwrap_or_else(|e| panic!("not the gateway's JWKS ({e}): {}", String::from_utf8_lossy(&jwks)));
        assert!(jwks["keys"].is_array(), "{jwks}");
        assert_eq!(upstream.counts.requests(), 1, "upstream {status}");
    }
}

// === 2. revocation closes tunnels ===

#[tokio::test]
async fn logging_out_closes_the_tunnel_of_that_session_and_not_of_another_session() {
    let (gateway, echo) = gateway().await;
    let one = login(&gateway, "alice").await;
    let two = login(&gateway, "alice").await;
    let mut first = bearer_tunnel(&gateway, &one, "alice").await;
    let mut second = bearer_tunnel(&gateway, &two, "alice").await;
    assert_echoes(&mut first, "session one before the logout").await;

    let reply = bearer_post(&gateway, "/auth/logout", &one.access).await;
    assert_eq!(reply.status, 204, "{}", String::from_utf8_lossy(&reply.body));
    assert_closed(&mut first, "the logged-out session's tunnel").await;
    echo.wait_ended(1, "the logged-out session's tunnel").await;

    assert_echoes(&mut second, "another session of the same user").await;
    assert_eq!(echo.ended(), 1, "another session's tunnel ended too");
}

#[tokio::test]
async fn logging_out_with_the_refresh_token_closes_the_tunnel_of_that_session() {
    let (gateway, echo) = gateway().await;
    let pair = login(&gateway, "bob").await;
    let mut ws = bearer_tunnel(&gateway, &pair, "bob").await;
    let reply = gateway
        .send(json_post(
            "/auth/logout",
            json!({ "refresh_token": pair.refresh }),
        ))
        .await;
    assert_eq!(reply.status, 204, "{}", String::from_utf8_lossy(&reply.body));
    assert_closed(&mut ws, "after a logout by refresh token").await;
    echo.wait_ended(1, "after a logout by refresh token").await;
}

#[tokio::test]
async fn logout_all_closes_every_tunnel_of_the_user_and_no_one_elses() {
    let (gateway, echo) = gateway().await;
    let one = login(&gateway, "alice").await;
    let two = login(&gateway, "alice").await;
    let bob = login(&gateway, "bob").await;
    let mut first = bearer_tunnel(&gateway, &one, "alice").await;
    let mut second = bearer_tunnel(&gateway, &two, "alice").await;
    let mut bystander = bearer_tunnel(&gateway, &bob, "bob").await;

    let reply = bearer_post(&gateway, "/auth/logout-all", &two.access).await;
    assert_eq!(reply.status, 204, "{}", String::from_utf8_lossy(&reply.body));
    assert_closed(&mut first, "alice's first tunnel").await;
    assert_closed(&mut second, "alice's second tunnel").await;
    echo.wait_ended(2, "alice's tunnels").await;
    assert_echoes(&mut bystander, "bob's tunnel").await;
    assert_eq!(echo.ended(), 2);
}

#[tokio::test]
async fn an_admin_revoking_a_session_closes_its_tunnel_and_no_other() {
    let (gateway, echo) = gateway().await;
    let one = login(&gateway, "alice").await;
    let two = login(&gateway, "alice").await;
    let mut first = bearer_tunnel(&gateway, &one, "alice").await;
    let mut second = bearer_tunnel(&gateway, &two, "alice").await;

    let status = admin(
        &gateway,
        Method::DELETE,
        &format!("/admin/sessions/{}", one.sid()),
    )
    .await;
    assert_eq!(status, 204);
    assert_closed(&mut first, "the revoked session's tunnel").await;
    echo.wait_ended(1, "the revoked session's tunnel").await;
    assert_echoes(&mut second, "alice's other session").await;
    assert_eq!(echo.ended(), 1);
}

#[tokio::test]
async fn an_admin_revoking_a_user_closes_every_tunnel_of_that_user_and_no_one_elses() {
    let (gateway, echo) = gateway().await;
    let one = login(&gateway, "alice").await;
    let two = login(&gateway, "alice").await;
    let bob = login(&gateway, "bob").await;
    let mut first = bearer_tunnel(&gateway, &one, "alice").await;
    let mut second = bearer_tunnel(&gateway, &two, "alice").await;
    let mut bystander = bearer_tunnel(&gateway, &bob, "bob").await;

    let status = admin(&gateway, Method::POST, "/admin/users/alice/revoke").await;
    assert_eq!(status, 204);
    assert_closed(&mut first, "alice's first tunnel").await;
    assert_closed(&mut second, "alice's second tunnel").await;
    echo.wait_ended(2, "alice's tunnels").await;
    assert_echoes(&mut bystander, "bob's tunnel").await;
    assert_eq!(echo.ended(), 2);
}

#[tokio::test]
async fn reuse_detection_closes_the_tunnels_of_the_stolen_session_and_no_other() {
    let tokens = ES256_TOKENS.replace("[tokens]\n", "[tokens]\nrefresh_grace = \"1s\"\n");
    let (gateway, echo) = gateway_with_tokens(&tokens).await;
    let r0 = login(&gateway, "alice").await;
    let bystander = login(&gateway, "alice").await;
    let r1 = Pair::from_reply(&refresh(&gateway, &r0.refresh).await, "refresh R0");
    // Tunnels opened with the retired and with the live generation's access token.
    let mut old = bearer_tunnel(&gateway, &r0, "alice").await;
    let mut new = bearer_tunnel(&gateway, &r1, "alice").await;
    let mut other = bearer_tunnel(&gateway, &bystander, "alice").await;

    // Past the 1 s grace (and a margin for whole-second clocks): the one sleep that is the point.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_echoes(&mut new, "the live tunnel before the reuse").await;

    let reply = refresh(&gateway, &r0.refresh).await;
    assert_eq!(
        reply.status,
        401,
        "R0 after the grace: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_closed(&mut old, "the tunnel of the retired access token").await;
    assert_closed(&mut new, "the tunnel of the live access token").await;
    echo.wait_ended(2, "the stolen session's tunnels").await;
    assert_echoes(&mut other, "another session of alice").await;
    assert_eq!(echo.ended(), 2);
}

/// Cross-site WebSocket hijacking: a cookie rides along on a cross-site upgrade, so the
/// upgrade needs the gateway's own origin like any unsafe request; a bearer token does not.
#[tokio::test]
async fn a_cookie_authenticated_upgrade_from_another_origin_is_refused_with_403() {
    let (gateway, echo) = gateway().await;
    let access = login(&gateway, "alice").await.access;
    let cookie = format!("{ACCESS}={access}");
    for origin in ["https://evil.example", "null"] {
        match connect(&gateway, "/ws/chat", &[("cookie", &cookie), ("origin", origin)]).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}")
            }
            Ok((_, response)) => panic!("{origin}: upgraded with {}", response.status()),
            Err(e) => panic!("{origin}: {e}"),
        }
    }
    assert_eq!(echo.connections(), 0, "the upstream saw a cross-site upgrade");
}
