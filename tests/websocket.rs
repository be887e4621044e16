//! WebSocket tunnels (SPEC 6): an upgrade passes through only after authentication, only on
//! routes with `websocket = true`, and only when the upstream answers 101; an open tunnel is
//! closed when its session is revoked (logout, logout-all, admin revoke of a session or a
//! user, reuse detection), and only that session's tunnels are.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::Full;
use support::browser::{self, OWN_ORIGIN};
use support::dpop::DpopKey;
use support::jwt::sid_of;
use support::upstreams::{Counts, Upstream};
use support::{ACCESS_COOKIE as ACCESS, ES256_TOKENS, GENEROUS_LIMITS, Gateway, Reply, RequestExt, Setup};
use support::{auth::Pair, config, request, tokens_with, within};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request as Handshake, Response};
use tokio_tungstenite::tungstenite::{self, ClientRequestBuilder, Message};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async, client_async};

/// How long a revoked tunnel may stay open.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<TlsStream<TcpStream>>;

// === a WebSocket echo upstream ===

/// Greets each connection with `hello <X-Auth-Sub> <X-Auth-Session>` as it received them, then
/// echoes every text and binary message; records every handshake's headers, and counts the
/// connections it accepted (`counts`) and the ones that ended.
struct WsEcho {
    addr: SocketAddr,
    counts: Arc<Counts>,
    handshakes: Arc<Mutex<Vec<HeaderMap>>>,
    ended: Arc<watch::Sender<usize>>,
}

impl WsEcho {
    async fn start() -> WsEcho {
        let (handshakes, ended) = (Arc::<Mutex<_>>::default(), Arc::new(watch::Sender::default()));
        let (seen, count) = (handshakes.clone(), ended.clone());
        let Upstream { addr, counts } = Upstream::serve(move |tcp, _| {
            let (seen, count) = (seen.clone(), count.clone());
            tokio::spawn(async move {
                serve(tcp, &seen).await;
                count.send_modify(|n| *n += 1);
            });
        })
        .await;
        WsEcho {
            addr,
            counts,
            handshakes,
            ended,
        }
    }

    /// The headers of the n-th handshake the upstream accepted.
    fn handshake(&self, n: usize) -> HeaderMap {
        self.handshakes.lock().expect("lock")[n].clone()
    }

    /// Waits until `n` upstream connections have ended in all.
    async fn wait_ended(&self, n: usize, what: &str) {
        let mut ended = self.ended.subscribe();
        let waited = tokio::time::timeout(CLOSE_WITHIN, ended.wait_for(|count| *count >= n)).await;
        let ended = self.ended();
        assert!(
            waited.is_ok(),
            "{what}: the upstream side of the tunnel is still open ({ended} of {n} ended)"
        );
    }

    fn ended(&self) -> usize {
        *self.ended.borrow()
    }
}

// The callback's `Result<Response, ErrorResponse>` is tungstenite's signature, not ours.
#[allow(clippy::result_large_err)]
async fn serve(tcp: TcpStream, handshakes: &Mutex<Vec<HeaderMap>>) {
    let mut greeting = String::new();
    let callback = |request: &Handshake, response: Response| -> Result<Response, ErrorResponse> {
        let headers = request.headers();
        let value = |name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-");
        greeting = format!("hello {} {}", value("x-auth-sub"), value("x-auth-session"));
        handshakes.lock().expect("lock").push(headers.clone());
        Ok(response)
    };
    let Ok(mut ws) = accept_hdr_async(tcp, callback).await else {
        return;
    };
    if ws.send(Message::text(greeting)).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = ws.next().await {
        if message.is_close()
            || ((message.is_text() || message.is_binary()) && ws.send(message).await.is_err())
        {
            return;
        }
    }
}

// === the gateway ===

/// A gateway with `/ws/` (auth required, `websocket` as given) to `upstream`.
async fn gateway_to(upstream: SocketAddr, websocket: bool, tokens: &str) -> Gateway {
    let settings = format!("auth = \"required\"\nwebsocket = {websocket}");
    let route = config::route("ws", "/ws/", upstream, &settings);
    let rest = format!("{route}{GENEROUS_LIMITS}");
    Gateway::start(Setup::routes(rest).tokens(tokens)).await
}

/// `gateway_to` a WebSocket echo.
async fn gateway() -> (Gateway, WsEcho) {
    let echo = WsEcho::start().await;
    (gateway_to(echo.addr, true, ES256_TOKENS).await, echo)
}

/// An upgrade request as a WebSocket client sends it, with a bearer token.
fn upgrade_request(path: &str, access: &str) -> Request<Full<Bytes>> {
    let upgrade = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    request(Method::GET, path)
        .bearer(access)
        .headers(&upgrade)
        .empty()
}

// === the WebSocket client ===

/// Opens `wss://localhost<path>` over a fresh TLS connection to the gateway, with `headers`.
async fn connect(
    gateway: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws, http::Response<Option<Vec<u8>>>), tungstenite::Error> {
    let stream = gateway.tls_connect(&[b"http/1.1"]).await;
    let uri = format!("wss://localhost{path}").parse().expect("uri");
    let mut request = ClientRequestBuilder::new(uri);
    for (name, value) in headers {
        request = request.with_header(*name, *value);
    }
    within(client_async(request, stream)).await
}

/// The status of an upgrade that the gateway refused (no 101).
async fn refused(gateway: &Gateway, path: &str, headers: &[(&str, &str)], what: &str) -> StatusCode {
    match connect(gateway, path, headers).await {
        Err(tungstenite::Error::Http(response)) => response.status(),
        Ok((_, response)) => panic!("{what}: upgraded with {}", response.status()),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// A tunnel to `/ws/chat` that the gateway accepted with 101, past the upstream's greeting,
/// which must name `sub` and the session `sid`: what the gateway told the upstream.
async fn tunnel(gateway: &Gateway, headers: &[(&str, &str)], sub: &str, sid: &str) -> Ws {
    let connected = connect(gateway, "/ws/chat", headers).await;
    let (mut ws, response) = connected.unwrap_or_else(|e| panic!("upgrade failed: {e:?}"));
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let greeting = next_data(&mut ws, "the greeting").await;
    assert_eq!(greeting, Message::text(format!("hello {sub} {sid}")));
    ws
}

async fn bearer_tunnel(gateway: &Gateway, pair: &Pair, sub: &str) -> Ws {
    let authorization = format!("Bearer {}", pair.access);
    tunnel(gateway, &[("authorization", &authorization)], sub, &pair.sid()).await
}

/// The next text or binary message, past pings and pongs.
async fn next_data(ws: &mut Ws, what: &str) -> Message {
    loop {
        match within(ws.next()).await {
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => return message,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("{what}: expected a message, got {other:?}"),
        }
    }
}

/// A text and a binary message go to the upstream and come back.
async fn assert_echoes(ws: &mut Ws, what: &str) {
    let text = Message::text(format!("ping from {what}"));
    let binary = Message::binary(Bytes::from_static(&[0, 1, 2, 255, 254]));
    for message in [text, binary] {
        let sent = within(ws.send(message.clone())).await;
        sent.unwrap_or_else(|e| panic!("{what}: send: {e}"));
        assert_eq!(next_data(ws, what).await, message, "{what}");
    }
}

/// The client sees the tunnel end (a close frame, EOF or a reset) within `CLOSE_WITHIN`.
async fn assert_closed(ws: &mut Ws, what: &str) {
    let ended = tokio::time::timeout(CLOSE_WITHIN, async {
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                return;
            }
        }
    });
    assert!(
        ended.await.is_ok(),
        "{what}: the tunnel is still open after {CLOSE_WITHIN:?}"
    );
}

// === 1. the upgrade ===

/// SPEC 14: an upgrade with a DPoP-bound token needs a proof of the upgrade request; a
/// proof cannot open a second tunnel, and the token alone opens none.
#[tokio::test]
async fn a_dpop_bound_token_opens_a_tunnel_only_with_a_fresh_proof() {
    let (gateway, _echo) = gateway().await;
    let key = DpopKey::es256();
    let pair = gateway.dpop_pair(&key, "bob").await;
    let authorization = format!("DPoP {}", pair.access);
    let proof = key.proof("GET", "https://localhost/ws/chat", Some(&pair.access));
    let headers = [
        ("authorization", authorization.as_str()),
        ("dpop", proof.as_str()),
    ];
    let mut ws = tunnel(&gateway, &headers, "bob", &pair.sid()).await;
    assert_echoes(&mut ws, "a DPoP tunnel").await;
    let replayed = refused(&gateway, "/ws/chat", &headers, "the same proof again").await;
    assert_eq!(replayed, StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {}", pair.access);
    let as_bearer = refused(&gateway, "/ws/chat", &[("authorization", &bearer)], "as Bearer").await;
    assert_eq!(as_bearer, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_upgrade_with_a_bearer_token_gets_101_and_messages_pass_both_ways() {
    let (gateway, echo) = gateway().await;
    let alice = gateway.pair("alice").await;
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
    let greeting = next_data(&mut ws, "the greeting").await;
    assert_eq!(greeting, Message::text(format!("hello alice {}", alice.sid())));
    // Client to upstream and back, several times.
    for round in 0..3 {
        assert_echoes(&mut ws, &format!("round {round}")).await;
    }
    assert_eq!(echo.counts.connections(), 1);
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
    let access = browser::logged_in(&gateway, "bob").await.access;
    let jar = [("theme", "dark"), (ACCESS, &access)];
    let cookie = format!("theme=dark; {ACCESS}={access}");
    let headers = [("cookie", cookie.as_str()), ("origin", OWN_ORIGIN)];
    let mut ws = tunnel(&gateway, &headers, "bob", &sid_of(&access)).await;
    assert_echoes(&mut ws, "a cookie tunnel").await;
    let seen = echo.handshake(0);
    let cookies: Vec<_> = seen.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["theme=dark"], "the upstream's Cookie header");

    // A cookie logout from the own origin closes the tunnel of that session.
    let reply = browser::browse(&gateway, Method::POST, "/auth/logout", browser::OWN, &jar).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_closed(&mut ws, "a cookie tunnel after a cookie logout").await;
    echo.wait_ended(1, "a cookie tunnel after a cookie logout").await;
}

#[tokio::test]
async fn an_upgrade_without_a_valid_token_is_401_and_never_reaches_the_upstream() {
    let (gateway, echo) = gateway().await;
    let alice = gateway.pair("alice").await;
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
        let status = refused(&gateway, "/ws/chat", headers, what).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
    }
    assert_eq!(echo.counts.connections(), 0, "the upstream saw a connection");
}

#[tokio::test]
async fn on_a_route_without_websocket_the_upgrade_is_not_passed_and_the_client_gets_no_101() {
    let http_echo = Upstream::echo().await;
    let gateway = gateway_to(http_echo.addr, false, ES256_TOKENS).await;
    let access = gateway.token("alice").await;
    let reply = gateway.send(upgrade_request("/ws/chat", &access)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
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
    let status = refused(
        &gateway,
        "/ws/chat",
        &[("authorization", &authorization)],
        "plain",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
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
        let gateway = gateway_to(upstream.addr, true, ES256_TOKENS).await;
        let access = gateway.token("alice").await;

        let mut sender = gateway.h1().await;
        let mut send =
            async |request| Reply::read(within(sender.send_request(request)).await.expect("response")).await;
        let reply = send(upgrade_request("/ws/chat", &access)).await;
        assert_eq!(reply.status, status, "the upstream's status");
        assert!(reply.headers.get("upgrade").is_none());
        assert_eq!(reply.body, body.as_bytes(), "the upstream's body");

        // The connection is still HTTP with the gateway: its own endpoint answers, rather than
        // the upstream behind a tunnel.
        let reply = send(request(Method::GET, "/.well-known/jwks.json").empty()).await;
        assert_eq!(reply.status, 200, "after a refused upgrade: {}", reply.text());
        let jwks = reply.json();
        assert!(jwks["keys"].is_array(), "{jwks}");
        assert_eq!(upstream.counts.requests(), 1, "upstream {status}");
    }
}

// === 2. revocation closes tunnels ===

#[tokio::test]
async fn logging_out_closes_the_tunnel_of_that_session_and_not_of_another_session() {
    let (gateway, echo) = gateway().await;
    let one = gateway.pair("alice").await;
    let two = gateway.pair("alice").await;
    let mut first = bearer_tunnel(&gateway, &one, "alice").await;
    let mut second = bearer_tunnel(&gateway, &two, "alice").await;
    assert_echoes(&mut first, "session one before the logout").await;

    let reply = gateway
        .send(request(Method::POST, "/auth/logout").bearer(&one.access).empty())
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_closed(&mut first, "the logged-out session's tunnel").await;
    echo.wait_ended(1, "the logged-out session's tunnel").await;

    assert_echoes(&mut second, "another session of the same user").await;
    assert_eq!(echo.ended(), 1, "another session's tunnel ended too");
}

#[tokio::test]
async fn logging_out_with_the_refresh_token_closes_the_tunnel_of_that_session() {
    let (gateway, echo) = gateway().await;
    let pair = gateway.pair("bob").await;
    let mut ws = bearer_tunnel(&gateway, &pair, "bob").await;
    let reply = gateway.logout(&pair.refresh).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_closed(&mut ws, "after a logout by refresh token").await;
    echo.wait_ended(1, "after a logout by refresh token").await;
}

#[tokio::test]
async fn logout_all_closes_every_tunnel_of_the_user_and_no_one_elses() {
    let (gateway, echo) = gateway().await;
    let one = gateway.pair("alice").await;
    let two = gateway.pair("alice").await;
    let bob = gateway.pair("bob").await;
    let mut first = bearer_tunnel(&gateway, &one, "alice").await;
    let mut second = bearer_tunnel(&gateway, &two, "alice").await;
    let mut bystander = bearer_tunnel(&gateway, &bob, "bob").await;

    let reply = gateway
        .send(
            request(Method::POST, "/auth/logout-all")
                .bearer(&two.access)
                .empty(),
        )
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_closed(&mut first, "alice's first tunnel").await;
    assert_closed(&mut second, "alice's second tunnel").await;
    echo.wait_ended(2, "alice's tunnels").await;
    assert_echoes(&mut bystander, "bob's tunnel").await;
    assert_eq!(echo.ended(), 2);
}

#[tokio::test]
async fn an_admin_revoking_a_session_closes_its_tunnel_and_no_other() {
    let (gateway, echo) = gateway().await;
    let one = gateway.pair("alice").await;
    let two = gateway.pair("alice").await;
    let mut first = bearer_tunnel(&gateway, &one, "alice").await;
    let mut second = bearer_tunnel(&gateway, &two, "alice").await;

    let revoke = format!("/admin/sessions/{}", one.sid());
    let status = gateway.admin(Method::DELETE, &revoke).await.status;
    assert_eq!(status, 204);
    assert_closed(&mut first, "the revoked session's tunnel").await;
    echo.wait_ended(1, "the revoked session's tunnel").await;
    assert_echoes(&mut second, "alice's other session").await;
    assert_eq!(echo.ended(), 1);
}

#[tokio::test]
async fn an_admin_revoking_a_user_closes_every_tunnel_of_that_user_and_no_one_elses() {
    let (gateway, echo) = gateway().await;
    let one = gateway.pair("alice").await;
    let two = gateway.pair("alice").await;
    let bob = gateway.pair("bob").await;
    let mut first = bearer_tunnel(&gateway, &one, "alice").await;
    let mut second = bearer_tunnel(&gateway, &two, "alice").await;
    let mut bystander = bearer_tunnel(&gateway, &bob, "bob").await;

    let status = gateway
        .admin(Method::POST, "/admin/users/alice/revoke")
        .await
        .status;
    assert_eq!(status, 204);
    assert_closed(&mut first, "alice's first tunnel").await;
    assert_closed(&mut second, "alice's second tunnel").await;
    echo.wait_ended(2, "alice's tunnels").await;
    assert_echoes(&mut bystander, "bob's tunnel").await;
    assert_eq!(echo.ended(), 2);
}

#[tokio::test]
async fn reuse_detection_closes_the_tunnels_of_the_stolen_session_and_no_other() {
    let echo = WsEcho::start().await;
    let gateway = gateway_to(echo.addr, true, &tokens_with("refresh_grace = \"1s\"")).await;
    let r0 = gateway.pair("alice").await;
    let bystander = gateway.pair("alice").await;
    let r1 = gateway.refreshed(&r0.refresh, "refresh R0").await;
    // Tunnels opened with the retired and with the live generation's access token.
    let mut old = bearer_tunnel(&gateway, &r0, "alice").await;
    let mut new = bearer_tunnel(&gateway, &r1, "alice").await;
    let mut other = bearer_tunnel(&gateway, &bystander, "alice").await;

    // Past the 1 s grace (and a margin for whole-second clocks): the one sleep that is the point.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_echoes(&mut new, "the live tunnel before the reuse").await;

    let reply = gateway.refresh(&r0.refresh).await;
    assert_eq!(reply.status, 401, "R0 after the grace: {}", reply.text());
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
    let access = gateway.token("alice").await;
    let cookie = format!("{ACCESS}={access}");
    for origin in ["https://evil.example", "null"] {
        let status = refused(
            &gateway,
            "/ws/chat",
            &[("cookie", &cookie), ("origin", origin)],
            origin,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin}");
    }
    assert_eq!(
        echo.counts.connections(),
        0,
        "the upstream saw a cross-site upgrade"
    );
}

/// SPEC 10: a session begun through a provider is a normal session, tunnels included: the
/// provider's back-channel logout closes its tunnel like any revocation.
#[tokio::test]
async fn a_tunnel_of_a_single_sign_on_session_closes_when_the_provider_logs_the_user_out() {
    let Some(planned) = support::oidc::Planned::new() else {
        return;
    };
    let echo = WsEcho::start().await;
    let route = config::route("ws", "/ws/", echo.addr, "auth = \"required\"\nwebsocket = true");
    let rest = format!("{route}{GENEROUS_LIMITS}{}", planned.config(""));
    let gateway = Gateway::start(Setup::routes(rest)).await;
    let provider = planned.start(&gateway, support::oidc::Options::default()).await;
    let reply = support::oidc::log_in(&gateway, &provider, "alice").await;
    let access = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| {
            c.to_str()
                .ok()?
                .strip_prefix(&format!("{ACCESS}="))?
                .split(';')
                .next()
        })
        .next()
        .expect("the access cookie")
        .to_string();
    let cookie = format!("{ACCESS}={access}");
    let headers = [("cookie", cookie.as_str()), ("origin", OWN_ORIGIN)];
    let mut ws = tunnel(&gateway, &headers, "corp:alice", &sid_of(&access)).await;
    assert_echoes(&mut ws, "a single sign-on tunnel").await;
    provider.back_channel_logout("alice").await;
    assert_closed(&mut ws, "a single sign-on tunnel after back-channel logout").await;
    echo.wait_ended(1, "a single sign-on tunnel after back-channel logout")
        .await;
}

#[tokio::test]
async fn deleting_an_api_key_closes_its_tunnels_and_no_session_s() {
    let echo = WsEcho::start().await;
    let settings = "websocket = true\naccept = [\"session\", \"api_key\"]";
    let route = config::route("ws", "/ws/", echo.addr, settings);
    let gateway = Gateway::start(Setup::routes(format!("{route}{GENEROUS_LIMITS}"))).await;
    let body = serde_json::json!({ "sub": "svc", "role": "bot", "name": "chat bot" });
    let created = gateway
        .admin_request(request(Method::POST, "/admin/api-keys").json(&body))
        .await
        .json();
    let (id, key) = (
        created["id"].as_str().expect("id"),
        created["key"].as_str().expect("key"),
    );
    let authorization = format!("Bearer {key}");
    let mut keyed = tunnel(
        &gateway,
        &[("authorization", &authorization)],
        "svc",
        &format!("api_key:{id}"),
    )
    .await;
    let pair = gateway.pair("alice").await;
    let mut session = bearer_tunnel(&gateway, &pair, "alice").await;

    let deleted = gateway
        .admin(Method::DELETE, &format!("/admin/api-keys/{id}"))
        .await;
    assert_eq!(deleted.status, 204);
    assert_closed(&mut keyed, "the deleted key's tunnel").await;
    echo.wait_ended(1, "the deleted key's tunnel").await;
    assert_echoes(&mut session, "alice's session").await;
}
