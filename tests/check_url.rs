//! `[users] check_url`: the password check delegated to an existing backend fails closed.

mod support;

use serde_json::{Value, json};
use support::recorder::{Recorded, Recorder, Then};
use support::upstreams::refused_addr;
use support::{Gateway, Setup};

/// A checker that accepts `alice`/`right` as sub `alice-id`, answers 500 for `crash`, and
/// 401 otherwise; it records the requests it saw.
async fn checker() -> Recorder {
    Recorder::start(|request: &Recorded| {
        let asked: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let (status, answer) = match (asked["username"].as_str(), asked["password"].as_str()) {
            (Some("alice"), Some("right")) => ("200 OK", json!({ "sub": "alice-id", "role": "admin" })),
            (Some("crash"), _) => (
                "500 Internal Server Error",
                json!({ "sub": "crash", "role": "admin" }),
            ),
            _ => ("401 Unauthorized", json!({})),
        };
        let body = answer.to_string();
        let head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n", body.len());
        ((head + &body).into_bytes(), Then::KeepAlive)
    })
    .await
}

fn delegated(checker: std::net::SocketAddr) -> Setup {
    let mut setup = Setup::routes(format!("[users]\ncheck_url = \"http://{checker}/check\"\n"));
    setup.users = String::new();
    setup
}

#[tokio::test]
async fn a_checker_that_answers_200_logs_the_user_in_with_its_sub_and_role() {
    let checker = checker().await;
    let gateway = Gateway::start(delegated(checker.addr)).await;
    let reply = gateway.login("alice", "right").await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let token = reply.json()["access_token"].as_str().unwrap().to_string();
    let me = gateway.get_with_token("/auth/me", &token).await.json();
    assert_eq!(
        (me["sub"].as_str(), me["role"].as_str()),
        (Some("alice-id"), Some("admin"))
    );
    assert_eq!(checker.requests().len(), 1);
}

#[tokio::test]
async fn any_other_answer_from_the_checker_is_a_failed_login() {
    let checker = checker().await;
    let gateway = Gateway::start(delegated(checker.addr)).await;
    for (user, password) in [("alice", "wrong"), ("crash", "x"), ("nobody", "x")] {
        let reply = gateway.login(user, password).await;
        assert_eq!(reply.status, 401, "{user}");
        assert_eq!(reply.json()["error"], "invalid_credentials");
    }
    assert_eq!(checker.requests().len(), 3);
}

#[tokio::test]
async fn an_unreachable_checker_is_503_never_a_success() {
    let gateway = Gateway::start(delegated(refused_addr().await)).await;
    let reply = gateway.login("alice", "right").await;
    assert_eq!(reply.status, 503, "{}", String::from_utf8_lossy(&reply.body));
    assert!(reply.headers.contains_key("retry-after"));
    assert!(reply.json().get("access_token").is_none());
}
