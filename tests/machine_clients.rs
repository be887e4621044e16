//! Machine clients (SPEC 11): access tokens of another issuer, here a real OpenID provider
//! (panva's `oidc-provider`) issuing client-credentials tokens, and API keys created through
//! the admin API. Each kind reaches only the routes that accept it, ends in the same identity
//! headers and revocation machinery as a session, and every forged or stale one is refused.

mod support;

use std::time::{Duration, Instant};

use http::Method;
use jsonwebtoken::Algorithm;
use portcullis::auth::tokens::unix_now;
use portcullis::config::KeyAlgorithm;
use serde_json::{Value, json};

use support::auth::assert_invalid_token;
use support::binary::start_binary;
use support::cases::assert_none_failed;
use support::dpop::DpopKey;
use support::jwt::{Key, claims_of, hmac, segment_of, sign_json, unsigned};
use support::oidc::{ISSUER_NAME, Options, Planned, Provider};
use support::redis::RedisServer;
use support::upstreams::Upstream;
use support::{
    ACCESS_COOKIE, Client, DEADLINE, ES256_TOKENS, GENEROUS_LIMITS, Gateway, Reply, RequestExt, Setup,
    config, eventually, request,
};

/// Routes of every test: one per credential kind, and one that takes them all; the issuer's
/// only when `issuer` (its `[[issuers]]` entry) is given.
fn routes(echo: &Upstream, issuer: &str) -> String {
    let route = |name: &str, accept: &str| {
        config::route(
            name,
            &format!("/{name}/"),
            echo.addr,
            &format!("accept = [{accept}]"),
        )
    };
    let ci = format!("\"issuer:{ISSUER_NAME}\"");
    let mut routes = route("sessions", "\"session\"") + &route("keys", "\"api_key\"");
    match issuer.is_empty() {
        true => routes += &route("any", "\"session\", \"api_key\""),
        false => {
            routes += &route("ci", &ci);
            routes += &route("any", &format!("\"session\", \"api_key\", {ci}"));
        }
    }
    routes + issuer
}

/// A gateway with `routes` for `issuer` and `GENEROUS_LIMITS`, and its echo.
async fn gateway(issuer: &str) -> (Gateway, Upstream) {
    let echo = Upstream::echo().await;
    let setup = Setup::routes(format!("{}{GENEROUS_LIMITS}", routes(&echo, issuer)));
    (Gateway::start(setup).await, echo)
}

/// The provider (started first) and a gateway accepting its tokens as issuer `ci`; `None`
/// when Node is missing (outside CI).
async fn with_issuer(options: Options) -> Option<(Gateway, Provider, Upstream)> {
    let planned = Planned::new()?;
    let issuer = planned.issuer_config("");
    let provider = planned.start_alone(options).await;
    let (gateway, echo) = gateway(&issuer).await;
    Some((gateway, provider, echo))
}

/// The identity headers the echo received: (sub, role, session).
fn identity(reply: &Reply) -> (String, String, String) {
    let one = |name: &str| reply.upstream_header(name).join(",");
    (one("x-auth-sub"), one("x-auth-role"), one("x-auth-session"))
}

fn metric(metrics: &str, line_start: &str) -> f64 {
    let line = metrics.lines().find(|l| l.starts_with(line_start));
    line.and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

async fn auth_failures(gateway: &Client, reason: &str) -> f64 {
    let metrics = gateway.admin(Method::GET, "/metrics").await.text();
    metric(
        &metrics,
        &format!("portcullis_auth_failures_total{{reason=\"{reason}\"}}"),
    )
}

// === other issuers' tokens ===

#[tokio::test]
async fn a_client_credentials_token_reaches_the_backend_as_its_mapped_identity() {
    let Some((gateway, provider, echo)) = with_issuer(Options::default()).await else {
        return;
    };
    let token = provider.client_credentials("deploy read").await;
    let claims = claims_of(&token);
    for path in ["/ci/x", "/any/x"] {
        let reply = gateway.get_with_token(path, &token).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        let session = format!("issuer:{ISSUER_NAME}:{}", claims["jti"].as_str().expect("a jti"));
        assert_eq!(
            identity(&reply),
            ("ci:ci-runner".into(), "deployer".into(), session)
        );
        assert!(
            reply.upstream_header("authorization").is_empty(),
            "the token stays at the gateway"
        );
    }
    // The role follows the first role_map pair the scope holds; no mapped scope is refused.
    let reader = provider.client_credentials("read").await;
    let reply = gateway.get_with_token("/ci/x", &reader).await;
    assert_eq!(identity(&reply).1, "reader");
    let unmapped = provider.client_credentials("").await;
    assert_invalid_token(
        &gateway.get_with_token("/ci/x", &unmapped).await,
        "no scope maps to a role",
    );
    assert_eq!(auth_failures(&gateway, "issuer_token_unmapped").await, 1.0);
    assert_eq!(echo.counts.requests(), 3);
}

#[tokio::test]
async fn each_credential_reaches_only_the_routes_that_accept_it() {
    let Some((gateway, provider, _echo)) = with_issuer(Options::default()).await else {
        return;
    };
    let foreign = provider.client_credentials("deploy").await;
    let session = gateway.token("bob").await;
    let key = create_key(
        &gateway,
        json!({ "sub": "svc", "role": "deployer", "name": "svc" }),
    )
    .await;
    let key = key["key"].as_str().expect("a key").to_string();
    for (credential, what, accepted_by) in [
        (&session, "session", ["sessions", "any"]),
        (&key, "api key", ["keys", "any"]),
        (&foreign, "issuer token", ["ci", "any"]),
    ] {
        for route in ["sessions", "keys", "ci", "any"] {
            let reply = gateway.get_with_token(&format!("/{route}/x"), credential).await;
            match accepted_by.contains(&route) {
                true => assert_eq!(reply.status, 200, "{what} on {route}: {}", reply.text()),
                false => assert_invalid_token(&reply, &format!("{what} on {route}")),
            }
        }
    }
    assert_eq!(auth_failures(&gateway, "not_accepted").await, 6.0);
    // The gateway's own endpoints act on sessions: the others have none.
    for credential in [&key, &foreign] {
        assert_invalid_token(&gateway.get_with_token("/auth/me", credential).await, "/auth/me");
    }
    // The access cookie carries only the gateway's own tokens.
    let cookie = request(Method::GET, "/any/x")
        .cookies(&[(ACCESS_COOKIE, &key)])
        .empty();
    assert_invalid_token(&gateway.send(cookie).await, "an API key as the access cookie");
}

#[tokio::test]
async fn forged_and_stale_issuer_tokens_are_refused_without_reaching_the_backend() {
    let Some((gateway, provider, echo)) = with_issuer(Options::default()).await else {
        return;
    };
    let genuine = provider.client_credentials("deploy").await;
    let header = segment_of(&genuine, 0);
    let claims = claims_of(&genuine);
    let idp_key = Key::load(KeyAlgorithm::Rs256, &provider.files.path("rs-1.pem"));
    let idp = |claims: &Value| sign_json(&header, claims, &idp_key.encoding, Algorithm::RS256);
    let with = |member: &str, value: Value| {
        let mut changed = claims.clone();
        changed[member] = value;
        changed
    };
    let now = unix_now();
    let attacker = &Key::attacker(KeyAlgorithm::Rs256).encoding;
    let hs256 = json!({ "alg": "HS256", "typ": "at+jwt", "kid": header["kid"] });
    let none = json!({ "alg": "none", "typ": "at+jwt", "kid": header["kid"] });
    let cases = [
        (
            "signed by another key",
            sign_json(&header, &claims, attacker, Algorithm::RS256),
        ),
        ("alg none", unsigned(none.to_string(), claims.to_string(), "")),
        (
            "HMAC keyed with the issuer's public key",
            hmac(&hs256, &claims, idp_key.public_pem().as_bytes(), Algorithm::HS256),
        ),
        ("another audience", idp(&with("aud", json!("another-api")))),
        (
            "another issuer",
            idp(&with("iss", json!("https://evil.example.com"))),
        ),
        ("expired", idp(&with("exp", json!(now - 60)))),
        ("not valid yet", idp(&with("nbf", json!(now + 600)))),
        ("issued in the future", idp(&with("iat", json!(now + 600)))),
    ];
    let mut failures = Vec::new();
    for (what, token) in &cases {
        let reply = gateway.get_with_token("/ci/x", token).await;
        if reply.status != 401
            || reply
                .header("www-authenticate")
                .is_none_or(|c| !c.contains("invalid_token"))
        {
            failures.push(format!("{what}: {} {}", reply.status, reply.text()));
        }
    }
    assert_none_failed("forged issuer tokens", &failures);
    assert_eq!(echo.counts.requests(), 0);
    // The control: the same claims signed by the issuer's own key pass.
    assert_eq!(gateway.get_with_token("/ci/x", &idp(&claims)).await.status, 200);
    assert_eq!(auth_failures(&gateway, "issuer_token_expired").await, 1.0);
    // Another `iss` is no issuer the gateway knows: its own tokens' check refuses it.
    assert_eq!(auth_failures(&gateway, "issuer_token_invalid").await, 6.0);
}

/// RFC 9449 §6.1: another issuer's token with `cnf.jkt` is held to its key like ours; one
/// bound some other way (here to a client certificate) is refused, not taken as a bearer token.
#[tokio::test]
async fn an_issuer_token_bound_to_a_dpop_key_needs_a_proof_by_that_key() {
    let Some((gateway, provider, _echo)) = with_issuer(Options::default()).await else {
        return;
    };
    let genuine = provider.client_credentials("deploy").await;
    let (header, mut claims) = (segment_of(&genuine, 0), claims_of(&genuine));
    let idp_key = Key::load(KeyAlgorithm::Rs256, &provider.files.path("rs-1.pem"));
    let key = DpopKey::es256();
    claims["cnf"] = json!({ "jkt": key.thumbprint() });
    let bound = sign_json(&header, &claims, &idp_key.encoding, Algorithm::RS256);
    let as_bearer = gateway.get_with_token("/ci/x", &bound).await;
    assert_eq!(as_bearer.status, 401, "{}", as_bearer.text());
    assert_eq!(auth_failures(&gateway, "dpop_bound_as_bearer").await, 1.0);
    let proof = key.proof("GET", "https://localhost/ci/x", Some(&bound));
    let authorization = format!("DPoP {bound}");
    let with_proof =
        request(Method::GET, "/ci/x").headers(&[("authorization", &authorization), ("dpop", &proof)]);
    let reply = gateway.send(with_proof.empty()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(identity(&reply).0, "ci:ci-runner");
    claims["cnf"] = json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" });
    let other_binding = sign_json(&header, &claims, &idp_key.encoding, Algorithm::RS256);
    assert_invalid_token(
        &gateway.get_with_token("/ci/x", &other_binding).await,
        "a certificate-bound token",
    );
}

#[tokio::test]
async fn only_the_algorithms_an_issuer_is_configured_with_are_accepted_from_its_jwks_uri() {
    let Some(planned) = Planned::new() else {
        return;
    };
    // The keys' address given instead of found by discovery.
    let jwks_uri = format!("jwks_uri = \"{}/jwks\"", planned.issuer());
    let issuer = planned.issuer_config(&format!("algorithms = [\"ES256\"]\n{jwks_uri}"));
    let options = Options {
        access_token_alg: "ES256",
        ..Options::default()
    };
    let provider = planned.start_alone(options).await;
    let (gateway, _echo) = gateway(&issuer).await;
    let token = provider.client_credentials("deploy").await;
    assert_eq!(segment_of(&token, 0)["alg"], "ES256");
    assert_eq!(gateway.get_with_token("/ci/x", &token).await.status, 200);
    // The same claims under the issuer's own (published) RSA key: a genuine signature with an
    // algorithm this issuer is not trusted for.
    let rsa = Key::load(KeyAlgorithm::Rs256, &provider.files.path("rs-1.pem"));
    let header = json!({ "alg": "RS256", "typ": "at+jwt", "kid": "rs-1" });
    let rs256 = sign_json(&header, &claims_of(&token), &rsa.encoding, Algorithm::RS256);
    assert_invalid_token(
        &gateway.get_with_token("/ci/x", &rs256).await,
        "RS256 for an ES256 issuer",
    );
}

#[tokio::test]
async fn an_issuer_down_at_start_fails_closed_and_its_tokens_work_once_it_answers() {
    let Some(planned) = Planned::new() else {
        return;
    };
    let (gateway, _echo) = gateway(&planned.issuer_config("")).await;
    assert_eq!(gateway.readyz().await, 200, "the gateway runs without the issuer");
    // A token the issuer would sign, before its keys could be fetched.
    let idp_key = Key::load(KeyAlgorithm::Rs256, &planned.files.path("rs-1.pem"));
    let now = unix_now();
    let claims = json!({ "iss": planned.issuer(), "aud": "portcullis-api", "sub": "ci-runner",
        "scope": "deploy", "iat": now, "exp": now + 300, "jti": "early" });
    let header = json!({ "alg": "RS256", "typ": "at+jwt", "kid": "rs-1" });
    let early = sign_json(&header, &claims, &idp_key.encoding, Algorithm::RS256);
    assert_invalid_token(&gateway.get_with_token("/ci/x", &early).await, "no keys yet");
    assert!(auth_failures(&gateway, "issuer_unavailable").await >= 1.0);
    let provider = planned.start_alone(Options::default()).await;
    // A token asks the issuer again at most once a second: no need to wait for the background.
    let token = provider.client_credentials("deploy").await;
    eventually(Duration::from_secs(5), async || {
        match gateway.get_with_token("/ci/x", &token).await.status.as_u16() {
            200 => Ok(()),
            status => Err(format!("the issuer's token is still refused: {status}")),
        }
    })
    .await;
    assert_eq!(gateway.get_with_token("/ci/x", &early).await.status, 200);
}

#[tokio::test]
async fn a_rotated_issuer_key_is_fetched_by_the_first_token_that_names_it() {
    let Some((gateway, mut provider, _echo)) = with_issuer(Options::default()).await else {
        return;
    };
    let before = provider.client_credentials("deploy").await;
    assert_eq!(gateway.get_with_token("/ci/x", &before).await.status, 200);
    provider.rotate_rsa_key("rs-2").await;
    let after = provider.client_credentials("deploy").await;
    assert_eq!(segment_of(&after, 0)["kid"], "rs-2");
    let reply = gateway.get_with_token("/ci/x", &after).await;
    assert_eq!(
        reply.status,
        200,
        "the new key is fetched at once: {}",
        reply.text()
    );
    // The retired key is gone from the issuer's set, but a token verified before stays cached
    // until it expires, as for the gateway's own tokens.
    assert_eq!(gateway.get_with_token("/ci/x", &before).await.status, 200);
}

#[tokio::test]
async fn revoking_a_user_refuses_their_issuer_tokens_issued_until_then() {
    let Some((gateway, provider, _echo)) = with_issuer(Options::default()).await else {
        return;
    };
    let token = provider.client_credentials("deploy").await;
    assert_eq!(gateway.get_with_token("/ci/x", &token).await.status, 200);
    // A revocation covers tokens issued before its second (`iat` counts whole seconds).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let revoked = gateway
        .admin(Method::POST, "/admin/users/ci:ci-runner/revoke")
        .await;
    assert_eq!(revoked.status, 204);
    assert_invalid_token(
        &gateway.get_with_token("/ci/x", &token).await,
        "a token of a revoked user",
    );
    // A token issued after the revocation is accepted again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = provider.client_credentials("deploy").await;
    assert_eq!(gateway.get_with_token("/ci/x", &fresh).await.status, 200);
}

// === API keys ===

async fn create_key(gateway: &Client, body: Value) -> Value {
    let reply = gateway
        .admin_request(request(Method::POST, "/admin/api-keys").json(&body))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    reply.json()
}

async fn listed(gateway: &Client) -> Vec<Value> {
    let reply = gateway.admin(Method::GET, "/admin/api-keys").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json().as_array().expect("a list").clone()
}

#[tokio::test]
async fn an_api_key_is_shown_once_works_until_deleted_and_records_its_use() {
    let (gateway, echo) = gateway("").await;
    let created = create_key(
        &gateway,
        json!({ "sub": "ci:deploy", "role": "deployer", "name": "deploy job" }),
    )
    .await;
    let (id, key) = (
        created["id"].as_str().expect("id"),
        created["key"].as_str().expect("key"),
    );
    assert!(key.starts_with(&format!("pcl_{id}_")), "{key}");
    assert_eq!(created["expires_at"], Value::Null);
    let list = listed(&gateway).await;
    assert_eq!(list.len(), 1);
    let entry = &list[0];
    assert_eq!(
        (
            entry["id"].as_str(),
            entry["sub"].as_str(),
            entry["name"].as_str()
        ),
        (Some(id), Some("ci:deploy"), Some("deploy job"))
    );
    assert_eq!(entry["last_used_at"], Value::Null);
    assert!(
        !entry.to_string().contains(&key[key.len() - 43..]),
        "the list never shows the key"
    );

    let reply = gateway.get_with_token("/keys/x", key).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        identity(&reply),
        ("ci:deploy".into(), "deployer".into(), format!("api_key:{id}"))
    );
    // The use is written off the request path, soon.
    eventually(
        DEADLINE,
        async || match listed(&gateway).await[0]["last_used_at"].as_u64() {
            Some(at) if at + 5 >= unix_now() => Ok(()),
            other => Err(format!("last_used_at is {other:?}")),
        },
    )
    .await;

    let path = format!("/admin/api-keys/{id}");
    assert_eq!(gateway.admin(Method::DELETE, &path).await.status, 204);
    assert_invalid_token(&gateway.get_with_token("/keys/x", key).await, "a deleted key");
    assert_eq!(gateway.admin(Method::DELETE, &path).await.status, 404);
    assert!(listed(&gateway).await.is_empty());
    assert_eq!(echo.counts.requests(), 1);
}

#[tokio::test]
async fn an_expired_api_key_is_refused() {
    let (gateway, _echo) = gateway("").await;
    let created = create_key(
        &gateway,
        json!({ "sub": "svc", "role": "r", "name": "short", "expires_in": 1 }),
    )
    .await;
    let key = created["key"].as_str().expect("key");
    let expires_at = created["expires_at"].as_u64().expect("expires_at");
    assert!(
        (unix_now()..=unix_now() + 1).contains(&expires_at),
        "{expires_at}"
    );
    eventually(Duration::from_secs(3), async || {
        match gateway.get_with_token("/keys/x", key).await.status.as_u16() {
            401 => Ok(()),
            status => Err(format!("still {status}")),
        }
    })
    .await;
    assert_eq!(auth_failures(&gateway, "api_key_expired").await, 1.0);
}

#[tokio::test]
async fn bad_api_keys_are_invalid_tokens_and_bad_requests_create_none() {
    let (gateway, echo) = gateway("").await;
    let created = create_key(&gateway, json!({ "sub": "svc", "role": "r", "name": "n" })).await;
    let (id, key) = (
        created["id"].as_str().expect("id"),
        created["key"].as_str().expect("key"),
    );
    let other = create_key(&gateway, json!({ "sub": "svc", "role": "r", "name": "other" })).await;
    let other_secret = &other["key"].as_str().expect("key")[4 + 32 + 1..];
    let bad = [
        ("malformed", "pcl_not-a-key".to_string()),
        (
            "the right id with another key's secret",
            format!("pcl_{id}_{other_secret}"),
        ),
        ("an unknown id", format!("pcl_{}_{other_secret}", "0".repeat(32))),
        ("one character short", key[..key.len() - 1].to_string()),
        ("huge", format!("pcl_{id}_{}", "A".repeat(10_000))),
    ];
    for (what, token) in &bad {
        assert_invalid_token(&gateway.get_with_token("/keys/x", token).await, what);
    }
    assert_eq!(auth_failures(&gateway, "api_key_invalid").await, bad.len() as f64);
    assert_eq!(echo.counts.requests(), 0);

    for (body, status) in [
        (json!({ "sub": "has space", "role": "r", "name": "n" }), 400),
        (json!({ "sub": "s", "role": "", "name": "n" }), 400),
        (json!({ "sub": "s", "role": "r", "name": "" }), 400),
        (
            json!({ "sub": "s", "role": "r", "name": "n", "expires_in": 0 }),
            400,
        ),
        (json!({ "sub": "s", "role": "r", "name": "n", "scopes": [] }), 400),
        (json!({ "sub": "s", "role": "r" }), 400),
    ] {
        let reply = gateway
            .admin_request(request(Method::POST, "/admin/api-keys").json(&body))
            .await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text());
    }
    let form = request(Method::POST, "/admin/api-keys")
        .header("content-type", "text/plain")
        .with_body("sub=s");
    assert_eq!(gateway.admin_request(form).await.status, 415);
    assert_eq!(listed(&gateway).await.len(), 2, "no bad request created a key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_api_key_made_on_one_replica_works_on_another_until_deleted_there_within_a_second() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let echo = Upstream::echo().await;
    let store = format!("[store]\nbackend = \"redis\"\nurl = \"{}\"\n", redis.url());
    let replica = async || Gateway::start(Setup::routes(format!("{}{store}", routes(&echo, "")))).await;
    let (a, b) = (replica().await, replica().await);
    let created = create_key(&a, json!({ "sub": "svc", "role": "deployer", "name": "shared" })).await;
    let (id, key) = (
        created["id"].as_str().expect("id"),
        created["key"].as_str().expect("key"),
    );
    let made = Instant::now();
    eventually(DEADLINE, async || {
        match b.get_with_token("/keys/x", key).await.status.as_u16() {
            200 => Ok(()),
            status => Err(format!("B refuses the key A made: {status}")),
        }
    })
    .await;
    assert!(
        made.elapsed() < Duration::from_secs(1),
        "B knew the key after {:?}",
        made.elapsed()
    );
    assert_eq!(listed(&b).await.len(), 1, "B lists A's key");
    assert_eq!(
        a.admin(Method::DELETE, &format!("/admin/api-keys/{id}"))
            .await
            .status,
        204
    );
    let deleted = Instant::now();
    eventually(Duration::from_secs(1), async || {
        match b.get_with_token("/keys/x", key).await.status.as_u16() {
            401 => Ok(()),
            status => Err(format!(
                "B still answers {status} {:?} after the deletion on A",
                deleted.elapsed()
            )),
        }
    })
    .await;
    // A replica started later loads the keys in force, and only those.
    let kept = create_key(&b, json!({ "sub": "svc", "role": "deployer", "name": "kept" })).await;
    let c = replica().await;
    assert_eq!(
        c.get_with_token("/keys/x", kept["key"].as_str().expect("key"))
            .await
            .status,
        200
    );
    assert_invalid_token(
        &c.get_with_token("/keys/x", key).await,
        "a key deleted before C started",
    );
}

#[tokio::test]
async fn the_gateway_logs_key_ids_but_never_a_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let echo = Upstream::echo().await;
    let rest = format!("{ES256_TOKENS}{}", routes(&echo, ""));
    let (binary, gateway) = start_binary(dir.path(), "", &rest).await;
    let created = create_key(&gateway, json!({ "sub": "svc", "role": "r", "name": "logged" })).await;
    let (id, key) = (
        created["id"].as_str().expect("id"),
        created["key"].as_str().expect("key"),
    );
    let secret = &key[key.len() - 43..];
    assert_eq!(gateway.get_with_token("/keys/x", key).await.status, 200);
    let wrong = format!("pcl_{id}_{}", "B".repeat(43));
    assert_eq!(gateway.get_with_token("/keys/x", &wrong).await.status, 401);
    assert_eq!(
        gateway
            .admin(Method::DELETE, &format!("/admin/api-keys/{id}"))
            .await
            .status,
        204
    );
    assert_eq!(gateway.get_with_token("/keys/x", key).await.status, 401);
    let log = eventually(DEADLINE, async || {
        let log = binary.log();
        match log.contains("api_key_revoked") {
            true => Ok(log),
            false => Err(format!("no api_key_revoked event yet:\n{log}")),
        }
    })
    .await;
    let created_event = log
        .lines()
        .find(|l| l.contains("api_key_created"))
        .expect("an api_key_created event");
    assert!(created_event.contains(id), "{created_event}");
    for secret in [secret, &wrong[wrong.len() - 43..]] {
        assert!(!log.contains(secret), "a key's secret is in the log:\n{log}");
    }
}

#[test]
fn check_reports_every_bad_issuer_and_accept_setting_with_its_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rest = "\
[[issuers]]
name = \"CI!\"
issuer = \"http://idp.example.com\"
audience = \"api\"
algorithms = [\"RS256\", \"HS256\", \"none\"]
ca_file = \"missing.pem\"
role_map = [[\"deploy\"]]

[[issuers]]
name = \"ok\"
issuer = \"https://idp.example.com\"
jwks_uri = \"http://keys.example.com/jwks\"
audience = \"api\"

[[issuers]]
name = \"ok\"
issuer = \"https://other.example.com\"
algorithms = []

[[routes]]
name = \"r\"
path = \"/r/\"
upstream = \"http://127.0.0.1:9000\"
accept = [\"session\", \"password\", \"issuer:nobody\", \"session\"]
";
    let (text, stderr) = support::config::refused_by_check(dir.path(), rest);
    let text = &text;
    let at = |needle: &str| format!("FILE:{}:", config::position(text, needle));
    let third = text.rfind("[[issuers]]").expect("the third issuer");
    let third_line = text[..third].matches('\n').count() + 1;
    for (expected, message) in [
        (
            at("\"CI!\""),
            "issuer name \"CI!\" must be 1-32 lower-case letters",
        ),
        (
            at("\"http://idp"),
            "must be an https:// URL (http:// only on loopback) for discovery",
        ),
        (at("\"HS256\""), "algorithm \"HS256\" is not accepted"),
        (at("\"none\""), "algorithm \"none\" is not accepted"),
        (at("\"missing.pem\""), "missing.pem does not exist"),
        (at("[\"deploy\"]"), "each role_map entry is"),
        (
            at("\"http://keys"),
            "jwks_uri \"http://keys.example.com/jwks\" must be an https:// URL",
        ),
        (
            format!("FILE:{third_line}:1:"),
            "issuer name \"ok\" is used twice",
        ),
        (format!("FILE:{third_line}:1:"), "missing `audience`"),
        (at("[]"), "algorithms = [] accepts no token"),
        (
            at("\"password\""),
            "accept takes \"session\", \"api_key\" or \"issuer:<name>\"",
        ),
        (at("\"issuer:nobody\""), "no [[issuers]] entry has that name"),
        (at("\"session\"]"), "accept lists \"session\" twice"),
    ] {
        let found = stderr
            .lines()
            .any(|line| line.starts_with(&expected) && line.contains(message));
        assert!(found, "missing {expected} {message:?} in:\n{stderr}");
    }
}
