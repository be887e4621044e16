//! `POST /auth/login` (SPEC 4, 7): the token pair, failures that all look alike, request
//! validation, rate limits, users.toml reloads, and proxied traffic during a login flood.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use portcullis::auth::tokens::unix_now;
use serde_json::json;
use support::auth::{credentials, json_login, raw_login};
use support::browser::{DEFAULTS, OWN, cookie_login, issued_cookies};
use support::jwt::{claims_of, segment_of};
use support::upstreams::Upstream;
use support::{
    ES256_TOKENS, GENEROUS_LIMITS, Gateway, Reply, RequestExt, Setup, public_route, replace_users_file,
    test_users, user_entry,
};

/// Status, body and headers, without the ones that differ on every response by design.
fn comparable(reply: &Reply) -> (StatusCode, Bytes, BTreeSet<(String, Vec<u8>)>) {
    reply.comparable(&["date", "x-request-id", "retry-after"])
}

fn retry_after(reply: &Reply) -> u64 {
    let seconds = reply.retry_after();
    seconds.unwrap_or_else(|| panic!("{} without Retry-After in whole seconds", reply.status))
}

/// The users file with bob removed and `extra` users (name, role, password) added.
fn users_without_bob(extra: &[(&str, &str)]) -> String {
    let mut text: String = test_users()
        .split("[[user]]")
        .filter(|entry| !entry.trim().is_empty() && !entry.contains("name = \"bob\""))
        .map(|entry| format!("[[user]]{entry}"))
        .collect();
    for (name, role) in extra {
        text.push_str(&user_entry(name, role, ""));
    }
    text
}

// === the token pair ===

#[tokio::test]
async fn json_login_returns_a_bearer_token_pair_that_is_never_cached() {
    let tokens = ES256_TOKENS.replace(
        "[tokens]\n",
        "[tokens]\naccess_ttl = \"10m\"\nrefresh_ttl = \"3d\"\n",
    );
    let gateway = Gateway::start(Setup::routes(GENEROUS_LIMITS).tokens(&tokens)).await;
    let before = unix_now();
    let reply = gateway.login("alice", "alice-password").await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body = reply.json();
    let members: BTreeSet<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        members,
        BTreeSet::from([
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "refresh_expires_in"
        ])
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["refresh_expires_in"], 3 * 86_400);

    let access = body["access_token"].as_str().expect("access_token");
    let segments: Vec<&str> = access.split('.').collect();
    assert_eq!(segments.len(), 3, "{access}");
    assert_eq!(
        segment_of(access, 0),
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": "k1" })
    );
    let claims = claims_of(access);
    assert_eq!(claims["iss"], "portcullis");
    assert_eq!(claims["aud"], "default");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["role"], "admin");
    let iat = claims["iat"].as_u64().expect("iat");
    assert!((before..=unix_now()).contains(&iat), "iat {iat}");
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
    assert_eq!(claims["exp"].as_u64(), Some(iat + 600));
    for id in ["sid", "jti"] {
        assert!(
            claims[id].as_str().is_some_and(|v| v.len() >= 16),
            "{id}: {claims}"
        );
    }

    let refresh = body["refresh_token"].as_str().expect("refresh_token");
    assert!(refresh.len() >= 32, "refresh token too short: {refresh}");
    assert_ne!(
        refresh.split('.').count(),
        3,
        "the refresh token looks like a JWT"
    );

    let again = gateway.login("alice", "alice-password").await.json();
    let claims_again = claims_of(again["access_token"].as_str().unwrap());
    assert_ne!(
        claims_again["sid"], claims["sid"],
        "a new login reused the session id"
    );
    assert_ne!(claims_again["jti"], claims["jti"]);
    assert_ne!(again["refresh_token"], body["refresh_token"]);
}

#[tokio::test]
async fn mode_token_is_the_default_and_may_be_named() {
    let gateway = Gateway::start(Setup::routes(GENEROUS_LIMITS)).await;
    let body = json!({ "username": "bob", "password": "bob-password", "mode": "token" }).to_string();
    let reply = gateway.send(raw_login(Some("application/json"), body, &[])).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["token_type"], "Bearer");
    let charset = raw_login(
        Some("application/json; charset=utf-8"),
        credentials("bob", "bob-password"),
        &[],
    );
    assert_eq!(gateway.send(charset).await.status, 200);
}

// === failures that look alike ===

#[tokio::test]
async fn every_failed_login_answers_the_same_401() {
    let gateway = Gateway::start(Setup::routes(GENEROUS_LIMITS)).await;
    let long = "x".repeat(1025);
    let cases = [
        ("unknown user", "nobody", "nobody-password"),
        ("wrong password", "alice", "bob-password"),
        ("empty password", "alice", ""),
        ("disabled user with the right password", "carol", "carol-password"),
        ("disabled user with a wrong password", "carol", "wrong"),
        ("a 1025-byte password", "alice", long.as_str()),
        (
            "a 1025-byte password for an unknown user",
            "nobody",
            long.as_str(),
        ),
        ("a 1024-byte wrong password", "alice", &long[..1024]),
        ("empty user name", "", "alice-password"),
    ];
    let first = gateway.login(cases[0].1, cases[0].2).await;
    assert_eq!(first.status, 401);
    assert_eq!(first.json()["error"], "invalid_credentials");
    let reference = comparable(&first);
    for (case, user, password) in &cases[1..] {
        let reply = gateway.login(user, password).await;
        assert_eq!(reply.status, 401, "{case}");
        assert!(reply.headers.get("retry-after").is_none(), "{case}");
        assert_eq!(
            comparable(&reply),
            reference,
            "{case}: differs from an unknown user's answer"
        );
    }
    // Control: the same gateway lets the right password in.
    assert_eq!(gateway.login("alice", "alice-password").await.status, 200);
}

#[tokio::test]
async fn bcrypt_hashes_log_in_but_never_match_past_72_bytes() {
    let password = "b".repeat(72);
    let hash = bcrypt::hash(&password, 4).expect("bcrypt");
    let mut setup = Setup::routes(GENEROUS_LIMITS);
    setup.users.push_str(&format!(
        "\n[[user]]\nname = \"erin\"\nrole = \"user\"\npassword_hash = \"{hash}\"\n"
    ));
    let gateway = Gateway::start(setup).await;
    let reference = comparable(&gateway.login("nobody", "x").await);
    let longer = format!("{password}extra");
    for (case, attempt) in [
        ("72 bytes and more", longer.as_str()),
        ("one byte more", &longer[..73]),
        ("one byte less", &password[..71]),
    ] {
        let reply = gateway.login("erin", attempt).await;
        assert_eq!(comparable(&reply), reference, "{case}");
    }
    let reply = gateway.login("erin", &password).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(
        claims_of(reply.json()["access_token"].as_str().unwrap())["sub"],
        "erin"
    );
}

// === request validation ===

#[tokio::test]
async fn malformed_login_requests_are_refused_with_415_or_400() {
    let gateway = Gateway::start(Setup::routes(GENEROUS_LIMITS)).await;
    let good = credentials("alice", "alice-password");
    let cases: Vec<(&str, Option<&str>, String, u16)> = vec![
        ("no content type", None, good.clone(), 415),
        ("text/plain", Some("text/plain"), good.clone(), 415),
        (
            "bad JSON",
            Some("application/json"),
            "{\"username\": \"alice\",".into(),
            400,
        ),
        (
            "not an object",
            Some("application/json"),
            "[\"alice\"]".into(),
            400,
        ),
        ("empty body", Some("application/json"), String::new(), 400),
        (
            "unknown field",
            Some("application/json"),
            json!({ "username": "alice", "password": "alice-password", "admin": true }).to_string(),
            400,
        ),
        (
            "missing password",
            Some("application/json"),
            json!({ "username": "alice" }).to_string(),
            400,
        ),
        (
            "password not a string",
            Some("application/json"),
            json!({ "username": "alice", "password": 12345 }).to_string(),
            400,
        ),
        (
            "unknown mode",
            Some("application/json"),
            json!({ "username": "alice", "password": "alice-password", "mode": "session" }).to_string(),
            400,
        ),
    ];
    for (case, content_type, body, expected) in cases {
        let reply = gateway.send(raw_login(content_type, body, &[])).await;
        assert_eq!(
            reply.status,
            expected,
            "{case}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(reply.json()["error"].is_string(), "{case}");
        assert!(reply.json().get("access_token").is_none(), "{case}");
    }
    let put = gateway
        .send(support::request(Method::PUT, "/auth/login").empty())
        .await;
    assert_eq!(
        (put.status.as_u16(), put.header("allow")),
        (405, Some("GET, POST"))
    );
}

#[tokio::test]
async fn cookie_mode_login_sets_cookies_and_returns_no_token() {
    let gateway = Gateway::start(Setup::routes(GENEROUS_LIMITS)).await;
    let reply = cookie_login(&gateway, "alice", OWN).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let body = reply.json();
    assert_eq!(
        (body["sub"].as_str(), body["role"].as_str()),
        (Some("alice"), Some("admin"))
    );
    assert!(
        body.get("access_token").is_none() && body.get("refresh_token").is_none(),
        "{body}"
    );
    issued_cookies(&reply, DEFAULTS, "cookie login");
}

// === rate limits ===

#[tokio::test]
async fn over_the_per_user_limit_logins_get_the_same_429_for_existing_and_unknown_users() {
    let gateway = Gateway::start(Setup::routes(
        "[limits]\nlogin_per_user = \"3/min\"\nlogin_per_ip = \"100/min\"\n",
    ))
    .await;
    let mut limited = Vec::new();
    for user in ["alice", "nobody"] {
        for attempt in 1..=3 {
            let reply = gateway.login(user, "wrong-password").await;
            assert_eq!(reply.status, 401, "{user}, attempt {attempt}");
        }
        // Over the limit even the right password is refused, without being checked.
        let reply = gateway.login(user, &format!("{user}-password")).await;
        assert_eq!(
            reply.status,
            429,
            "{user}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.json()["error"], "rate_limited");
        let wait = retry_after(&reply);
        assert!((1..=20).contains(&wait), "{user}: Retry-After {wait}");
        limited.push((comparable(&reply), wait));
    }
    assert_eq!(
        limited[0].0, limited[1].0,
        "an existing and an unknown user are told apart"
    );
    assert!(
        limited[0].1.abs_diff(limited[1].1) <= 1,
        "Retry-After {} vs {}",
        limited[0].1,
        limited[1].1
    );
}

#[tokio::test]
async fn forwarding_headers_never_reset_the_per_ip_limit() {
    let gateway = Gateway::start(Setup::routes(
        "[limits]\nlogin_per_ip = \"3/min\"\nlogin_per_user = \"100/min\"\n",
    ))
    .await;
    let attempt = |n: usize, user: &str, password: &str| {
        let forged = format!("198.51.100.{n}");
        let forwarded = format!("for={forged}");
        let headers = [
            ("x-forwarded-for", forged.as_str()),
            ("x-real-ip", &forged),
            ("forwarded", &forwarded),
            ("true-client-ip", &forged),
        ];
        json_login(user, password, &headers)
    };
    for n in 1..=3 {
        let reply = gateway.send(attempt(n, &format!("user{n}"), "wrong")).await;
        assert_eq!(reply.status, 401, "attempt {n}");
    }
    for n in 4..=6 {
        let reply = gateway.send(attempt(n, &format!("user{n}"), "wrong")).await;
        assert_eq!(reply.status, 429, "attempt {n} with a new X-Forwarded-For");
        retry_after(&reply);
    }
    let reply = gateway.send(attempt(7, "bob", "bob-password")).await;
    assert_eq!(reply.status, 429, "a right password from the limited address");
}

#[tokio::test]
async fn another_user_can_log_in_while_one_is_limited() {
    let gateway = Gateway::start(Setup::routes(
        "[limits]\nlogin_per_user = \"3/min\"\nlogin_per_ip = \"100/min\"\n",
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(gateway.login("alice", "guess").await.status, 401);
    }
    assert_eq!(gateway.login("alice", "alice-password").await.status, 429);
    let reply = gateway.login("bob", "bob-password").await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(gateway.login("alice", "alice-password").await.status, 429);
}

// === users.toml reloads ===

#[tokio::test]
async fn an_edited_users_file_is_picked_up_without_a_restart() {
    let gateway = Gateway::start(Setup::routes(GENEROUS_LIMITS)).await;
    assert_eq!(gateway.login("dave", "dave-password").await.status, 401);
    assert_eq!(gateway.login("bob", "bob-password").await.status, 200);
    replace_users_file(gateway.dir.path(), &users_without_bob(&[("dave", "auditor")]));
    gateway.login_until("dave", "dave-password", 200).await;
    let token = gateway.token("dave").await;
    let claims = claims_of(&token);
    assert_eq!(claims["role"], "auditor");
    assert_eq!(gateway.login("bob", "bob-password").await.status, 401);
    assert_eq!(gateway.login("alice", "alice-password").await.status, 200);
}

#[tokio::test]
async fn a_broken_users_file_edit_keeps_the_previous_users() {
    let gateway = Gateway::start(Setup::routes(GENEROUS_LIMITS)).await;
    let dave_hash = portcullis::sessions::users::hash_password("dave-password").expect("hash");
    let broken = [
        // Not TOML at all.
        format!("[[user]\nname = \"dave\"\npassword_hash = \"{dave_hash}\"\n"),
        // Valid TOML, one good new user, one entry that is wrong: nothing of it may apply.
        format!(
            "[[user]]\nname = \"alice\"\nrole = \"admin\"\npassword_hash = \"not-a-hash\"\n\n\
             [[user]]\nname = \"dave\"\nrole = \"user\"\npassword_hash = \"{dave_hash}\"\n"
        ),
    ];
    for text in &broken {
        replace_users_file(gateway.dir.path(), text);
        // The file is polled about every second; watch for well over two polls.
        let watch = tokio::time::Instant::now() + Duration::from_millis(2500);
        let mut rounds = 0;
        while tokio::time::Instant::now() < watch || rounds < 2 {
            rounds += 1;
            let reply = gateway.login("alice", "alice-password").await;
            assert_eq!(reply.status, 200, "alice after a broken edit:\n{text}");
            assert_eq!(
                gateway.login("dave", "dave-password").await.status,
                401,
                "part of a broken edit applied:\n{text}"
            );
        }
    }
    // The reloader survived the rejections: a good edit still applies.
    replace_users_file(gateway.dir.path(), &users_without_bob(&[("dave", "user")]));
    gateway.login_until("dave", "dave-password", 200).await;
}

// === a login flood ===

/// How long a flood login may take: a full hashing queue drains at ~0.35 s a hash unoptimised.
const FLOOD_DEADLINE: Duration = Duration::from_secs(60);

/// A login on its own connection with its own deadline; `None` if the deadline passed.
async fn flood_login(gateway: &Gateway, n: usize) -> Option<(u16, bool)> {
    let attempt = async {
        let mut sender = gateway.h1().await;
        let login = json_login(&format!("flood{n}"), "wrong-password", &[]);
        let response = sender.send_request(login).await.expect("response");
        let status = response.status().as_u16();
        let has_retry_after = response.headers().contains_key("retry-after");
        response.into_body().collect().await.expect("body");
        (status, has_retry_after)
    };
    tokio::time::timeout(FLOOD_DEADLINE, attempt).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_requests_keep_flowing_during_a_flood_of_failed_logins() {
    let echo = Upstream::echo().await;
    let rest = format!(
        "{}[limits]\nlogin_per_ip = \"10000/min\"\nlogin_per_user = \"10000/min\"\n",
        public_route("echo", "/", echo.addr)
    );
    let gateway = Arc::new(Gateway::start(Setup::routes(&rest)).await);
    let flood: Vec<_> = (0..200)
        .map(|n| {
            let gateway = gateway.clone();
            tokio::spawn(async move { flood_login(&gateway, n).await })
        })
        .collect();
    let mut proxied = 0;
    while flood.iter().any(|task| !task.is_finished()) {
        let reply = tokio::time::timeout(Duration::from_secs(5), gateway.get("/during-the-flood"))
            .await
            .unwrap_or_else(|_| panic!("a proxied request took over 5 s after {proxied} during the flood"));
        assert_eq!(reply.status, 200);
        proxied += 1;
        // Paced, so that the flood and not this loop is what competes for the gateway.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut statuses = std::collections::BTreeMap::new();
    for task in flood {
        let (status, has_retry_after) = task
            .await
            .expect("flood task")
            .expect("a flood login hung past its deadline");
        assert!(
            [401, 429, 503].contains(&status),
            "a failed login answered {status}"
        );
        if status == 503 {
            assert!(has_retry_after, "503 without Retry-After");
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert!(proxied >= 1, "no proxied request ran during the flood");
    assert_eq!(statuses.values().sum::<usize>(), 200, "{statuses:?}");
    eprintln!("flood answers: {statuses:?}; proxied during the flood: {proxied}");
    // The pool drains: a real login works again afterwards.
    gateway.login_until("alice", "alice-password", 200).await;
}
