//! `[users] check_url`: the password check delegated to an existing backend fails closed.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use support::upstreams::refused_addr;
use support::{Gateway, Setup};
use tokio::net::TcpListener;

/// A checker that accepts `alice`/`right` as sub `alice-id`, answers 500 for `crash`, and
/// 401 otherwise; it counts the requests it saw.
async fn checker() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let counter = counter.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let (status, answer) = match (asked["username"].as_str(), asked["password"].as_str()) {
                        (Some("alice"), Some("right")) => {
                            (200, json!({ "sub": "alice-id", "role": "admin" }))
                        }
                        (Some("crash"), _) => (500, json!({ "sub": "crash", "role": "admin" })),
                        _ => (401, json!({})),
                    };
                    let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    (addr, seen)
}

fn delegated(checker: std::net::SocketAddr) -> Setup {
    let mut setup = Setup::routes(format!("[users]\ncheck_url = \"http://{checker}/check\"\n"));
    setup.users = String::new();
    setup
}

#[tokio::test]
async fn a_checker_that_answers_200_logs_the_user_in_with_its_sub_and_role() {
    let (addr, seen) = checker().await;
    let gateway = Gateway::start(delegated(addr)).await;
    let reply = gateway.login("alice", "right").await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let token = reply.json()["access_token"].as_str().unwrap().to_string();
    let me = gateway.get_with_token("/auth/me", &token).await.json();
    assert_eq!(
        (me["sub"].as_str(), me["role"].as_str()),
        (Some("alice-id"), Some("admin"))
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn any_other_answer_from_the_checker_is_a_failed_login() {
    let (addr, seen) = checker().await;
    let gateway = Gateway::start(delegated(addr)).await;
    for (user, password) in [("alice", "wrong"), ("crash", "x"), ("nobody", "x")] {
        let reply = gateway.login(user, password).await;
        assert_eq!(reply.status, 401, "{user}");
        assert_eq!(reply.json()["error"], "invalid_credentials");
    }
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_unreachable_checker_is_503_never_a_success() {
    let gateway = Gateway::start(delegated(refused_addr().await)).await;
    let reply = gateway.login("alice", "right").await;
    assert_eq!(reply.status, 503, "{}", String::from_utf8_lossy(&reply.body));
    assert!(reply.headers.contains_key("retry-after"));
    assert!(reply.json().get("access_token").is_none());
}
