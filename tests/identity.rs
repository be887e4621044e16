//! Who the upstream is told the caller is (SPEC 6): identity headers that only the gateway
//! sets, where the token may come from, roles, `/auth/me`, the JWKS, and the key and password
//! commands of the binary.

mod support;

use std::process::Stdio;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, Request};
use serde_json::Value;
use support::auth::assert_challenge;
use support::binary::portcullis;
use support::jwt::claims_of;
use support::raw::exchange;
use support::request as req;
use support::upstreams::Upstream;
use support::{ACCESS_COOKIE, Gateway, RequestExt, Setup, public_route, required_route};

const IDENTITY: [&str; 3] = ["x-auth-sub", "x-auth-role", "x-auth-session"];

/// A gateway with `/api/` (required) and `/pub/` (public) to one echo, plus `rest`.
async fn gateway_with(rest: &str) -> (Gateway, Upstream) {
    let echo = Upstream::echo().await;
    let routes = format!(
        "{}{}{rest}",
        required_route("api", "/api/", echo.addr),
        public_route("pub", "/pub/", echo.addr)
    );
    (Gateway::start(Setup::routes(routes)).await, echo)
}

/// Every value the echo received under a header whose name, read case-insensitively and with
/// `_` as `-`, is `name`.
fn received(echo_reply: &Value, name: &str) -> Vec<String> {
    let pairs = echo_reply["headers"].as_array().expect("echo headers");
    let named = |n: &str| n.replace('_', "-").eq_ignore_ascii_case(name);
    let matching = pairs.iter().filter(|pair| pair[0].as_str().is_some_and(named));
    matching
        .map(|pair| pair[1].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The identity the upstream saw: with a token, exactly one value for each identity header,
/// from its claims; without one, none.
fn assert_identity(echo_reply: &Value, token: Option<&str>) {
    let claims = token.map(claims_of);
    for (header, claim) in IDENTITY.iter().zip(["sub", "role", "sid"]) {
        let expected: Vec<&str> = claims.iter().map(|c| c[claim].as_str().expect("claim")).collect();
        let headers = &echo_reply["headers"];
        assert_eq!(received(echo_reply, header), expected, "{header}: {headers}");
    }
}

/// Sends `head` (a request head without its final empty line) on its own connection, asking
/// the gateway to close it, and returns the status and the body.
async fn raw_exchange(gateway: &Gateway, head: &str) -> (u16, Vec<u8>) {
    let (responses, _) = exchange(gateway, format!("{head}\r\n\r\n").as_bytes(), &[]).await;
    let response = responses.first().expect("a response");
    (response.status, response.body.clone())
}

// === identity headers ===

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream_of_a_public_route() {
    let (gateway, echo) = gateway_with("").await;
    let head = "GET /pub/x HTTP/1.1\r\nHost: localhost\r\n\
        X-Auth-Sub: root\r\nx_auth_role: admin\r\nX-AUTH-SESSION: s1\r\nX_AUTH_SUB: root\r\n\
        x-auth-role: admin\r\nX-Auth-Sub: second\r\nConnection: close, X-Auth-Sub";
    let (status, body) = raw_exchange(&gateway, head).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let seen: Value = serde_json::from_slice(&body).expect("echo JSON");
    assert_identity(&seen, None);
    assert_eq!(echo.counts.requests(), 1);

    let spoofed = Request::get("/pub/y")
        .header("host", "localhost")
        .header("x-auth-sub", "root")
        .header("x_auth_session", "s1")
        .header("X-Auth-Role", "admin");
    let reply = gateway.send_h2(spoofed.empty()).await;
    assert_eq!(reply.status, 200);
    assert_identity(&reply.json(), None);
}

#[tokio::test]
async fn a_valid_token_sets_exactly_one_of_each_identity_header_despite_spoofed_copies() {
    let (gateway, echo) = gateway_with("").await;
    let token = gateway.token("bob").await;
    let head = format!(
        "GET /api/x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         X-Auth-Sub: alice\r\nx-auth-sub: root\r\nX-AUTH-SUB: admin\r\nX_Auth_Sub: alice\r\nx_auth_sub: r\r\n\
         X-Auth-Role: admin\r\nx_auth_role: admin\r\nX-AUTH-ROLE: admin\r\n\
         X-Auth-Session: stolen\r\nX_AUTH_SESSION: stolen\r\nx-auth-session: stolen\r\n\
         Connection: close, X-Auth-Sub, X-Auth-Role, X-Auth-Session"
    );
    let (status, body) = raw_exchange(&gateway, &head).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_identity(&serde_json::from_slice(&body).expect("echo JSON"), Some(&token));

    let spoofed = req(Method::GET, "https://localhost/api/h2")
        .bearer(&token)
        .header("x-auth-sub", "alice")
        .header("x-auth-sub", "root")
        .header("x_auth_sub", "alice")
        .header("X-Auth-Role", "admin")
        .header("x_auth_role", "admin")
        .header("x-auth-session", "stolen")
        .header("X_AUTH_SESSION", "stolen");
    let reply = gateway.send_h2(spoofed.empty()).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["version"], "HTTP/1.1");
    assert_identity(&reply.json(), Some(&token));
    assert_eq!(echo.counts.requests(), 2);
}

#[tokio::test]
async fn a_public_route_forwards_a_valid_identity_and_ignores_an_invalid_token() {
    let (gateway, echo) = gateway_with("").await;
    let token = gateway.token("alice").await;
    let reply = gateway.get_with_token("/pub/who", &token).await;
    assert_eq!(reply.status, 200);
    assert_identity(&reply.json(), Some(&token));

    let [h, p, s] = token.split('.').collect::<Vec<_>>()[..] else {
        panic!("three segments")
    };
    let forged_claims = claims_of(&token);
    let mut forged_claims = forged_claims.as_object().expect("object").clone();
    forged_claims.insert("role".into(), "superuser".into());
    let forged = format!(
        "{h}.{}.{s}",
        URL_SAFE_NO_PAD.encode(Value::Object(forged_claims).to_string())
    );
    for (case, token) in [
        ("a forged token", forged.as_str()),
        ("garbage", "not-a-token"),
        ("a truncated token", &token[..token.len() - 10]),
        ("a two-segment token", &format!("{h}.{p}")),
    ] {
        let reply = gateway.get_with_token("/pub/anonymous", token).await;
        assert_eq!(reply.status, 200, "{case}");
        assert_identity(&reply.json(), None);
    }
    let basic = Request::get("/pub/basic")
        .header("host", "localhost")
        .header("authorization", "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=");
    let reply = gateway.send(basic.empty()).await;
    assert_eq!(reply.status, 200);
    assert_identity(&reply.json(), None);
    assert_eq!(echo.counts.requests(), 6);
}

// === Authorization ===

#[tokio::test]
async fn authorization_is_stripped_before_the_upstream_by_default() {
    let (gateway, _echo) = gateway_with("").await;
    let token = gateway.token("alice").await;
    for path in ["/api/a", "/pub/a"] {
        let request = req(Method::GET, path)
            .bearer(&token)
            .header("proxy-authorization", "Basic eDp5");
        let reply = gateway.send(request.empty()).await;
        assert_eq!(reply.status, 200, "{path}");
        assert!(
            reply.upstream_header("authorization").is_empty(),
            "{path}: Authorization reached the upstream"
        );
        assert!(reply.upstream_header("proxy-authorization").is_empty(), "{path}");
        assert_identity(&reply.json(), Some(&token));
    }
}

#[tokio::test]
async fn authorization_is_forwarded_when_configured() {
    let (gateway, _echo) = gateway_with("[headers]\nforward_authorization = true\n").await;
    let token = gateway.token("alice").await;
    let reply = gateway.get_with_token("/api/a", &token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.upstream_header("authorization"),
        [format!("Bearer {token}")]
    );
    assert_identity(&reply.json(), Some(&token));
}

#[tokio::test]
async fn two_authorization_headers_are_refused_with_400() {
    let (gateway, echo) = gateway_with("").await;
    let token = gateway.token("alice").await;
    for path in ["/api/a", "/pub/a"] {
        let request = req(Method::GET, path)
            .bearer(&token)
            .header("authorization", format!("Bearer {token}"));
        let reply = gateway.send(request.empty()).await;
        assert_eq!(reply.status, 400, "{path}");
        let request = req(Method::GET, path)
            .bearer(&token)
            .header("authorization", "Basic eDp5");
        assert_eq!(gateway.send(request.empty()).await.status, 400, "{path}");
    }
    let mut h2 = req(Method::GET, "https://localhost/api/a").bearer(&token).empty();
    h2.headers_mut()
        .append("authorization", format!("Bearer {token}").parse().unwrap());
    assert_eq!(gateway.send_h2(h2).await.status, 400, "over HTTP/2");
    assert_eq!(echo.counts.requests(), 0);
}

#[tokio::test]
async fn a_non_bearer_authorization_fails_and_never_falls_back_to_the_cookie() {
    let (gateway, echo) = gateway_with("").await;
    let token = gateway.token("alice").await;
    for authorization in [
        "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=".to_string(),
        format!("Bearer  {token}"),
        format!("Token {token}"),
        "Bearer".to_string(),
    ] {
        let request = Request::get("/api/a")
            .header("host", "localhost")
            .header("authorization", authorization.as_str())
            .header("cookie", format!("{ACCESS_COOKIE}={token}"));
        let reply = gateway.send(request.empty()).await;
        assert_eq!(reply.status, 401, "{authorization}");
        assert_challenge(&reply, "invalid_token", &authorization);
        assert!(!String::from_utf8_lossy(&reply.body).contains(&token));
    }
    assert_eq!(echo.counts.requests(), 0);
    // The scheme is case-insensitive (RFC 9110 11.1).
    let request = Request::get("/api/a")
        .header("host", "localhost")
        .header("authorization", format!("bEaReR {token}"));
    assert_eq!(gateway.send(request.empty()).await.status, 200);
}

// === the access cookie ===

#[tokio::test]
async fn the_access_cookie_authenticates_and_is_removed_from_the_upstream_cookie_header() {
    let (gateway, _echo) = gateway_with("").await;
    let token = gateway.token("bob").await;
    let request = Request::get("/api/page")
        .header("host", "localhost")
        .header("cookie", format!("theme=dark; {ACCESS_COOKIE}={token}; lang=en"));
    let reply = gateway.send(request.empty()).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_identity(&reply.json(), Some(&token));
    assert_eq!(reply.upstream_header("cookie"), ["theme=dark; lang=en"]);

    let only = Request::get("/api/page")
        .header("host", "localhost")
        .header("cookie", format!("{ACCESS_COOKIE}={token}"));
    let reply = gateway.send(only.empty()).await;
    assert_eq!(reply.status, 200);
    let cookies = reply.upstream_header("cookie");
    assert!(
        cookies
            .iter()
            .all(|c| !c.contains(&token) && !c.contains(ACCESS_COOKIE)),
        "{cookies:?}"
    );
}

#[tokio::test]
async fn two_access_cookies_are_refused_with_401() {
    let (gateway, echo) = gateway_with("").await;
    let alice = gateway.token("alice").await;
    let bob = gateway.token("bob").await;
    let one_header = Request::get("/api/a").header("host", "localhost").header(
        "cookie",
        format!("{ACCESS_COOKIE}={bob}; {ACCESS_COOKIE}={alice}"),
    );
    let two_headers = Request::get("/api/a")
        .header("host", "localhost")
        .header("cookie", format!("{ACCESS_COOKIE}={bob}"))
        .header("cookie", format!("{ACCESS_COOKIE}={alice}"));
    let same_token = Request::get("/api/a").header("host", "localhost").header(
        "cookie",
        format!("{ACCESS_COOKIE}={alice}; x=1; {ACCESS_COOKIE}={alice}"),
    );
    for (case, request) in [
        ("in one header", one_header),
        ("in two headers", two_headers),
        ("the same token twice", same_token),
    ] {
        let reply = gateway.send(request.empty()).await;
        assert_eq!(reply.status, 401, "{case}");
        assert!(!String::from_utf8_lossy(&reply.body).contains(&alice));
    }
    assert_eq!(echo.counts.requests(), 0);
}

/// A `Cookie` header with UTF-8 bytes in another cookie's value (browsers send what the site
/// set, e.g. `city=Zürich`): the gateway's cookie must still be found and never forwarded.
fn cookie_with_non_ascii(pairs: &str) -> http::HeaderValue {
    http::HeaderValue::from_bytes(format!("{pairs}; city=Zürich").as_bytes()).expect("obs-text value")
}

#[tokio::test]
async fn the_access_cookie_is_never_forwarded_beside_a_non_ascii_cookie() {
    let (gateway, _echo) = gateway_with("").await;
    let token = gateway.token("bob").await;
    for path in ["/pub/page", "/api/page"] {
        let mut request = req(Method::GET, path).empty();
        request.headers_mut().insert(
            "cookie",
            cookie_with_non_ascii(&format!("{ACCESS_COOKIE}={token}")),
        );
        let reply = gateway.send(request).await;
        assert_eq!(
            reply.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        let cookies = reply.upstream_header("cookie");
        assert!(
            cookies.iter().all(|c| !c.contains(&token)),
            "{path}: the access token reached the upstream in {cookies:?}"
        );
        assert_eq!(cookies, ["city=Zürich"], "{path}");
        assert_identity(&reply.json(), Some(&token));
    }
}

#[tokio::test]
async fn two_access_cookies_are_refused_even_when_one_sits_beside_a_non_ascii_cookie() {
    let (gateway, echo) = gateway_with("").await;
    let alice = gateway.token("alice").await;
    let bob = gateway.token("bob").await;
    let mut request = req(Method::GET, "/api/a")
        .header("cookie", format!("{ACCESS_COOKIE}={alice}"))
        .empty();
    request
        .headers_mut()
        .append("cookie", cookie_with_non_ascii(&format!("{ACCESS_COOKIE}={bob}")));
    let reply = gateway.send(request).await;
    assert_eq!(reply.status, 401, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(echo.counts.requests(), 0);
}

#[tokio::test]
async fn a_token_in_the_query_string_is_ignored() {
    let (gateway, echo) = gateway_with("").await;
    let token = gateway.token("alice").await;
    for path in [
        format!("/api/a?access_token={token}"),
        format!("/api/a?token={token}&x=1"),
    ] {
        let reply = gateway.get(&path).await;
        assert_eq!(reply.status, 401, "{path}");
        assert_eq!(reply.headers["www-authenticate"], "Bearer realm=\"portcullis\"");
    }
    assert_eq!(echo.counts.requests(), 0);
    let reply = gateway.get(&format!("/pub/a?access_token={token}")).await;
    assert_eq!(reply.status, 200);
    assert_identity(&reply.json(), None);
}

// === roles ===

#[tokio::test]
async fn a_route_with_roles_admits_only_those_roles() {
    let admin_echo = Upstream::echo().await;
    let admin = required_route("admin", "/admin/", admin_echo.addr);
    let (gateway, _echo) = gateway_with(&format!("{admin}roles = [\"admin\"]\n")).await;
    let bob = gateway.token("bob").await;
    let reply = gateway.get_with_token("/admin/panel", &bob).await;
    assert_eq!(reply.status, 403, "{}", String::from_utf8_lossy(&reply.body));
    assert_challenge(&reply, "insufficient_scope", "bob on /admin/");
    assert_eq!(admin_echo.counts.requests(), 0);

    let alice = gateway.token("alice").await;
    let reply = gateway.get_with_token("/admin/panel", &alice).await;
    assert_eq!(reply.status, 200);
    assert_identity(&reply.json(), Some(&alice));
    assert_eq!(admin_echo.counts.requests(), 1);
    // A route without roles takes any authenticated user.
    assert_eq!(gateway.get_with_token("/api/x", &bob).await.status, 200);
    // Without a token it is 401, not 403.
    assert_eq!(gateway.get("/admin/panel").await.status, 401);
}

// === the gateway's own endpoints ===

#[tokio::test]
async fn auth_me_describes_the_caller_and_needs_a_token() {
    let (gateway, _echo) = gateway_with("").await;
    let token = gateway.token("bob").await;
    let claims = claims_of(&token);
    let reply = gateway.get_with_token("/auth/me", &token).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.headers["cache-control"], "no-store");
    let me = reply.json();
    assert_eq!(me["sub"], "bob");
    assert_eq!(me["role"], "user");
    assert_eq!(me["sid"], claims["sid"]);
    assert_eq!(me["exp"], claims["exp"]);

    let cookie = Request::get("/auth/me")
        .header("host", "localhost")
        .header("cookie", format!("{ACCESS_COOKIE}={token}"));
    assert_eq!(gateway.send(cookie.empty()).await.json()["sub"], "bob");

    let anonymous = gateway.get("/auth/me").await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.headers.contains_key("www-authenticate"));
    let [h, p, _] = token.split('.').collect::<Vec<_>>()[..] else {
        panic!("three segments")
    };
    let invalid = gateway.get_with_token("/auth/me", &format!("{h}.{p}.AAAA")).await;
    assert_eq!(invalid.status, 401);
    assert_challenge(&invalid, "invalid_token", "a bad signature");
}

#[tokio::test]
async fn the_jwks_publishes_the_es256_public_key_only() {
    let (gateway, _echo) = gateway_with("").await;
    let reply = gateway.get("/.well-known/jwks.json").await;
    assert_eq!(reply.status, 200);
    let jwks = reply.json();
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{jwks}");
    let key = &keys[0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["kid"], "k1");
    assert!(key["x"].is_string() && key["y"].is_string(), "{key}");
    assert!(key.get("d").is_none(), "the private key is published: {key}");
    // It is the key that signs: a login token verifies with it.
    let token = gateway.token("alice").await;
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).expect("JWK");
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("usable key");
    let (input, signature) = token.rsplit_once('.').expect("signature");
    let verified = jsonwebtoken::crypto::verify(
        signature,
        input.as_bytes(),
        &decoding,
        jsonwebtoken::Algorithm::ES256,
    );
    assert!(matches!(verified, Ok(true)));
}

#[tokio::test]
async fn the_jwks_is_an_empty_set_when_only_hs256_is_configured() {
    let echo = Upstream::echo().await;
    let tokens = "[tokens]\n[[tokens.keys]]\nkid = \"h1\"\nalg = \"HS256\"\n\
                  secret_file = \"keys/h1.secret\"\ngenerate_if_missing = true\n";
    let gateway = Gateway::start(Setup::routes(public_route("pub", "/", echo.addr)).tokens(tokens)).await;
    let reply = gateway.get("/.well-known/jwks.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({ "keys": [] }));
    let secret = std::fs::read_to_string(gateway.dir.path().join("keys/h1.secret")).expect("secret");
    assert!(
        !String::from_utf8_lossy(&reply.body).contains(secret.trim()),
        "the secret is published"
    );
}

// === the binary ===

#[test]
fn keygen_writes_a_0600_key_for_every_algorithm() {
    let dir = tempfile::tempdir().expect("temp dir");
    for alg in ["ES256", "EdDSA", "RS256", "HS256"] {
        let path = dir.path().join("keys").join(alg);
        let output = portcullis()
            .args(["keygen", "--alg", alg, "--out"])
            .arg(&path)
            .output()
            .expect("run keygen");
        assert!(
            output.status.success(),
            "{alg}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let written = std::fs::read(&path).expect("key written");
        let loaded = match alg {
            "ES256" => jsonwebtoken::EncodingKey::from_ec_pem(&written).map(drop),
            "EdDSA" => jsonwebtoken::EncodingKey::from_ed_pem(&written).map(drop),
            "RS256" => jsonwebtoken::EncodingKey::from_rsa_pem(&written).map(drop),
            _ => {
                assert!(written.trim_ascii().len() >= 32, "HS256 secret too short");
                Ok(())
            }
        };
        assert!(loaded.is_ok(), "{alg}: {loaded:?}");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{alg}: mode {mode:o}");
    }
    let bad = portcullis()
        .args(["keygen", "--alg", "HS512", "--out"])
        .arg(dir.path().join("bad"))
        .output()
        .expect("run keygen");
    assert!(!bad.status.success());
    assert!(!dir.path().join("bad").exists());
}

#[test]
fn keygen_writes_a_private_pem_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("k.pem");
    let output = portcullis()
        .args(["keygen", "--alg", "ES256", "--out"])
        .arg(&path)
        .output()
        .expect("run keygen");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = std::fs::read(&path).expect("key written");
    assert!(written.starts_with(b"-----BEGIN PRIVATE KEY-----"));
    jsonwebtoken::EncodingKey::from_ec_pem(&written).expect("an ES256 key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");

    let again = portcullis()
        .args(["keygen", "--alg", "ES256", "--out"])
        .arg(&path)
        .output()
        .expect("run keygen");
    assert!(!again.status.success(), "keygen overwrote a key");
    assert!(!again.stderr.is_empty(), "no message on refusal");
    assert_eq!(std::fs::read(&path).unwrap(), written, "the key changed");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["k.pem"], "temporary files left behind");
}

/// Runs `portcullis hash-password` with `input` on stdin.
fn hash_password(input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = portcullis()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write password");
    child.wait_with_output().expect("hash-password ends")
}

#[test]
fn hash_password_refuses_an_empty_or_oversized_password() {
    for (case, input) in [
        ("empty", b"\n".to_vec()),
        ("1025 bytes", [&[b'p'; 1025][..], b"\n"].concat()),
    ] {
        let output = hash_password(&input);
        assert!(!output.status.success(), "{case}");
        assert!(output.stdout.is_empty(), "{case}: printed a hash");
    }
}

#[test]
fn hash_password_reads_stdin_and_prints_an_argon2id_hash() {
    let output = hash_password(b"pw\n");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let hash = stdout.trim();
    assert!(hash.starts_with("$argon2id$"), "{stdout}");
    use argon2::password_hash::PasswordVerifier;
    let parsed = argon2::password_hash::phc::PasswordHash::new(hash).expect("PHC string");
    let argon = argon2::Argon2::default();
    assert!(
        argon.verify_password(b"pw", &parsed).is_ok(),
        "the hash is not of the password"
    );
    assert!(
        argon.verify_password(b"pw\n", &parsed).is_err(),
        "the newline was hashed"
    );
}
