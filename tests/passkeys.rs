//! Passkeys over the API (SPEC 13), answered by a software authenticator: registration, a
//! passwordless login, the second factor after a password, a step-up, listing and deleting;
//! an answer made for another origin, a replayed ceremony and another user's passkey refused.
//! The same in a real browser: `e2e_browser`.

mod support;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::auth::{Pair, login_request};
use support::jwt::claims_of;
use support::passkey::Authenticator;
use support::{GENEROUS_LIMITS, Gateway, Reply, RequestExt, Setup, request};

/// The harness sends `Host: localhost`: the origin the gateway expects.
const ORIGIN: &str = "https://localhost";

async fn gateway() -> Gateway {
    let rest = format!("[webauthn]\nrp_id = \"localhost\"\n{GENEROUS_LIMITS}");
    Gateway::start(Setup::routes(rest)).await
}

async fn post(gateway: &Gateway, path: &str, token: Option<&str>, body: &Value) -> Reply {
    let mut builder = request(Method::POST, path);
    if let Some(token) = token {
        builder = builder.bearer(token);
    }
    gateway.send(builder.json(body)).await
}

/// `start` then `finish` of a `login/start` body, the authenticator answering as at `origin`.
async fn use_passkey(
    gateway: &Gateway,
    key: &mut Authenticator,
    start: &Value,
    token: Option<&str>,
    origin: &str,
) -> Reply {
    let started = post(gateway, "/auth/passkeys/login/start", token, start).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let started = started.json();
    let credential = key.get(&started["publicKey"], origin);
    let finish = json!({ "state": started["state"], "credential": credential });
    post(gateway, "/auth/passkeys/login/finish", token, &finish).await
}

/// Registers `key` for the holder of `token`; the finish body, for replays.
async fn register(gateway: &Gateway, key: &mut Authenticator, token: &str, name: &str) -> Value {
    let started = post(gateway, "/auth/passkeys/register/start", Some(token), &json!({})).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let started = started.json();
    let credential = key.create(&started["publicKey"], ORIGIN);
    let finish = json!({ "state": started["state"], "credential": credential, "name": name });
    let registered = post(gateway, "/auth/passkeys/register/finish", Some(token), &finish).await;
    assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.text());
    assert_eq!(registered.json()["id"], key.id());
    finish
}

#[tokio::test]
async fn a_passkey_signs_in_alone_once_per_ceremony_and_only_from_its_origin() {
    let gateway = gateway().await;
    let alice = gateway.token("alice").await;
    let mut key = Authenticator::new(b"alice-laptop");
    let finish = register(&gateway, &mut key, &alice, "laptop").await;
    let replayed = post(&gateway, "/auth/passkeys/register/finish", Some(&alice), &finish).await;
    assert_eq!(replayed.json()["error"], "passkey_refused", "{}", replayed.text());
    let listed = gateway
        .send(request(Method::GET, "/auth/passkeys").bearer(&alice).empty())
        .await
        .json();
    assert_eq!(
        (listed[0]["id"].clone(), listed[0]["name"].clone()),
        (json!(key.id()), json!("laptop"))
    );
    // An answer made on another site is refused; the right one logs in, with amr ["hwk"].
    let phished = use_passkey(&gateway, &mut key, &json!({}), None, "https://evil.example").await;
    assert_eq!(phished.status, StatusCode::UNAUTHORIZED, "{}", phished.text());
    let pair = Pair::from_reply(
        &use_passkey(&gateway, &mut key, &json!({}), None, ORIGIN).await,
        "passkey login",
    );
    let claims = claims_of(&pair.access);
    assert_eq!(
        (&claims["sub"], &claims["amr"]),
        (&json!("alice"), &json!(["hwk"]))
    );
    // A host under rp_id that the gateway does not serve cannot run a ceremony (`Host` is the
    // client's to choose; a page on another subdomain must not pass for the gateway).
    let mut elsewhere = request(Method::POST, "/auth/passkeys/login/start").json(&json!({}));
    elsewhere
        .headers_mut()
        .insert("host", http::HeaderValue::from_static("phish.localhost"));
    let refused = gateway.send(elsewhere).await;
    assert_eq!(refused.json()["error"], "passkey_refused", "{}", refused.text());
    // The same ceremony twice: the second is refused.
    let started = post(&gateway, "/auth/passkeys/login/start", None, &json!({}))
        .await
        .json();
    let finish = json!({ "state": started["state"], "credential": key.get(&started["publicKey"], ORIGIN) });
    assert_eq!(
        post(&gateway, "/auth/passkeys/login/finish", None, &finish)
            .await
            .status,
        StatusCode::OK
    );
    let again = post(&gateway, "/auth/passkeys/login/finish", None, &finish).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.text());
}

#[tokio::test]
async fn after_a_password_a_passkey_is_the_second_factor_and_steps_a_session_up() {
    let gateway = gateway().await;
    let (alice, bob) = (gateway.pair("alice").await, gateway.token("bob").await);
    let mut alices = Authenticator::new(b"alice-key");
    let mut bobs = Authenticator::new(b"bob-key");
    register(&gateway, &mut alices, &alice.access, "phone").await;
    register(&gateway, &mut bobs, &bob, "bob's").await;
    let mfa_token = |reply: Reply| {
        let body = reply.json();
        assert_eq!(
            (body["error"].clone(), body["methods"].clone()),
            (json!("mfa_required"), json!(["passkey"]))
        );
        body["mfa_token"].as_str().expect("mfa_token").to_string()
    };
    // Bob's passkey cannot finish alice's login.
    let start = json!({ "mfa_token": mfa_token(gateway.send(login_request("alice")).await) });
    let wrong = use_passkey(&gateway, &mut bobs, &start, None, ORIGIN).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text());
    let start = json!({ "mfa_token": mfa_token(gateway.send(login_request("alice")).await) });
    let done = use_passkey(&gateway, &mut alices, &start, None, ORIGIN).await;
    let pair = Pair::from_reply(&done, "password then passkey");
    assert_eq!(claims_of(&pair.access)["amr"], json!(["pwd", "hwk"]));
    // A step-up of the first (password-only) session keeps its id.
    let stepped = use_passkey(
        &gateway,
        &mut alices,
        &json!({ "step_up": true }),
        Some(&alice.access),
        ORIGIN,
    )
    .await;
    assert_eq!(stepped.status, StatusCode::OK, "{}", stepped.text());
    let access = stepped.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    assert_eq!(claims_of(&access)["sid"], claims_of(&alice.access)["sid"]);
    assert_eq!(claims_of(&access)["amr"], json!(["hwk"]));
}

#[tokio::test]
async fn only_its_owner_deletes_a_passkey_and_logins_need_no_second_factor_after() {
    let gateway = gateway().await;
    let (alice, bob) = (gateway.token("alice").await, gateway.token("bob").await);
    let mut key = Authenticator::new(b"alice-key");
    register(&gateway, &mut key, &alice, "key").await;
    let path = format!("/auth/passkeys/{}", key.id());
    let delete = |token: &str| gateway.send(request(Method::DELETE, &path).bearer(token).empty());
    assert_eq!(delete(&bob).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        gateway.send(login_request("alice")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(delete(&alice).await.status, StatusCode::NO_CONTENT);
    assert_eq!(delete(&alice).await.status, StatusCode::NOT_FOUND);
    Pair::from_reply(
        &gateway.send(login_request("alice")).await,
        "login after deleting the passkey",
    );
}
