//! Single sign-on through a real OpenID provider (SPEC 10): panva's certified `oidc-provider`
//! on a loopback port. A login through it ends in a normal session; every bad answer ends in
//! none; back-channel logout ends the sessions it names.

mod support;

use http::Method;
use serde_json::Value;

use support::browser::{DEFAULTS, browser, issued_cookies};
use support::oidc::{NAME, Options, Planned, Provider, begin, callback, log_in};
use support::upstreams::Upstream;
use support::{ACCESS_COOKIE, Client, ES256_TOKENS, Gateway, Reply, RequestExt, api_gateway};

/// A gateway with the provider `corp` (its `[[providers]]` entry plus `extra`) and an echo at
/// `/api/`, and the provider; `None` when Node is missing (outside CI).
async fn sso(extra: &str, options: Options) -> Option<(Gateway, Provider, Upstream)> {
    let planned = Planned::new()?;
    let (gateway, echo) = api_gateway(ES256_TOKENS, &planned.config(extra)).await;
    let provider = planned.start(&gateway, options).await;
    Some((gateway, provider, echo))
}

/// The session cookies of a successful callback, after checking it also spent the login cookie.
fn session_cookies(reply: &Reply) -> support::browser::Cookies {
    let mut rest = reply.headers.clone();
    let all: Vec<_> = rest.get_all("set-cookie").iter().cloned().collect();
    let (login, session): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|c| c.as_bytes().starts_with(b"__Host-portcullis-oidc="));
    assert_eq!(
        login.iter().map(|c| c.to_str().unwrap_or("")).collect::<Vec<_>>(),
        ["__Host-portcullis-oidc=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"],
        "the login cookie is cleared"
    );
    rest.remove("set-cookie");
    for cookie in session {
        rest.append("set-cookie", cookie);
    }
    let reply = Reply {
        status: reply.status,
        headers: rest,
        body: reply.body.clone(),
    };
    issued_cookies(&reply, DEFAULTS, "single sign-on")
}

fn query(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

#[tokio::test]
async fn a_user_signs_in_through_the_provider_and_gets_a_normal_cookie_session() {
    let Some((gateway, provider, echo)) = sso("", Options::default()).await else {
        return;
    };
    let (authorize, cookie) = begin(&gateway, "/api/whoami").await;
    assert!(
        authorize.starts_with(&format!("{}/auth?", provider.issuer)),
        "{authorize}"
    );
    let params = query(&authorize);
    let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(param("response_type"), Some("code"));
    assert_eq!(param("client_id"), Some("portcullis"));
    assert_eq!(param("code_challenge_method"), Some("S256"));
    assert_eq!(
        param("redirect_uri"),
        Some("https://localhost/auth/oidc/corp/callback")
    );
    assert_eq!(param("scope"), Some("openid email profile"));
    for name in ["state", "nonce", "code_challenge"] {
        assert!(param(name).is_some_and(|v| v.len() >= 43), "{name} has 256 bits");
    }

    let back = provider.sign_in(&authorize, "alice").await;
    let reply = callback(&gateway, &back, Some(&cookie)).await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/api/whoami"));
    let cookies = session_cookies(&reply);

    let api = with_access(&gateway, "/api/whoami", &cookies.access).await;
    assert_eq!(api.status, 200, "{}", api.text());
    assert_eq!(api.upstream_header("x-auth-sub"), ["corp:alice"]);
    assert_eq!(
        api.upstream_header("x-auth-role"),
        ["admin"],
        "groups admins -> admin, listed first"
    );
    let _ = echo;

    let me = with_access(&gateway, "/auth/me", &cookies.access).await;
    let me: Value = me.json();
    assert_eq!(
        (me["sub"].as_str(), me["idp"].as_str()),
        (Some("corp:alice"), Some("corp"))
    );
    assert_eq!(me["amr"], serde_json::json!(["fed"]));
    assert!(me["auth_time"].as_u64().is_some_and(|t| t > 0));
    assert_eq!(provider.last_token_auth().await, "basic");
}

/// The gateway's refusal of a callback: no session, the login cookie spent, and the reason.
fn assert_refused(reply: &Reply, status: u16, reason: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"], "oidc_failed", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("({reason})")),
        "expected {reason}: {message}"
    );
    let cookies: Vec<_> = reply.headers.get_all("set-cookie").iter().collect();
    assert_eq!(
        cookies,
        ["__Host-portcullis-oidc=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"],
        "no session cookie, only the login cookie cleared"
    );
}

#[tokio::test]
async fn a_callback_without_its_own_login_state_begins_no_session() {
    let Some((gateway, provider, _echo)) = sso("", Options::default()).await else {
        return;
    };
    let (authorize, cookie) = begin(&gateway, "/").await;
    let (_, other_cookie) = begin(&gateway, "/").await;
    let back = provider.sign_in(&authorize, "alice").await;
    assert_refused(&callback(&gateway, &back, None).await, 403, "missing_state");
    assert_refused(
        &callback(&gateway, &back, Some("forged")).await,
        403,
        "missing_state",
    );
    assert_refused(
        &callback(&gateway, &back, Some(&other_cookie)).await,
        403,
        "state_mismatch",
    );
    // The genuine pair still works once, and only once: a replayed callback is refused.
    assert_eq!(callback(&gateway, &back, Some(&cookie)).await.status, 303);
    assert_refused(&callback(&gateway, &back, Some(&cookie)).await, 403, "replayed");
}

#[tokio::test]
async fn a_replayed_code_the_provider_refuses_and_a_cancelled_login_begin_no_session() {
    let Some((gateway, provider, _echo)) = sso("", Options::default()).await else {
        return;
    };
    let (authorize, cookie) = begin(&gateway, "/").await;
    let back = provider.sign_in(&authorize, "alice").await;
    assert_eq!(callback(&gateway, &back, Some(&cookie)).await.status, 303);
    // A fresh login's state with the spent code: the state passes, the provider says no.
    let (authorize, cookie) = begin(&gateway, "/").await;
    let state = query(&authorize)
        .into_iter()
        .find(|(n, _)| n == "state")
        .expect("state")
        .1;
    let code = query(&back)
        .into_iter()
        .find(|(n, _)| n == "code")
        .expect("code")
        .1;
    let replayed = format!("https://localhost/auth/oidc/{NAME}/callback?code={code}&state={state}");
    assert_refused(
        &callback(&gateway, &replayed, Some(&cookie)).await,
        403,
        "code_rejected",
    );

    let (authorize, cookie) = begin(&gateway, "/").await;
    let cancelled = provider.cancel(&authorize).await;
    assert!(cancelled.contains("error=access_denied"), "{cancelled}");
    assert_refused(
        &callback(&gateway, &cancelled, Some(&cookie)).await,
        403,
        "provider_error",
    );
}

/// How a forged id_token is signed.
enum Signer {
    /// The provider's own RS256 key: only the claims are wrong.
    Provider,
    /// A key the provider never published, under the provider's `kid` or another.
    Stranger(&'static str),
    /// HS256 with these bytes as the secret (the client secret, a public key).
    Hmac(Vec<u8>),
    /// `alg: none`, no signature.
    Unsigned,
}

fn forge(provider: &Provider, signer: &Signer, claims: &Value) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let header = |alg, kid: &str| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_string());
        header
    };
    match signer {
        Signer::Provider => {
            let key = EncodingKey::from_rsa_pem(&provider.files.rsa_key()).expect("the provider's key");
            encode(&header(Algorithm::RS256, "rs-1"), claims, &key).expect("sign")
        }
        Signer::Stranger(kid) => {
            let stranger = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("a key");
            let key = EncodingKey::from_rsa_pem(stranger.serialize_pem().as_bytes()).expect("key");
            encode(&header(Algorithm::RS256, kid), claims, &key).expect("sign")
        }
        Signer::Hmac(secret) => encode(
            &header(Algorithm::HS256, "rs-1"),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .expect("sign"),
        Signer::Unsigned => {
            use base64::Engine;
            let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!(
                "{}.{}.",
                b64(&serde_json::json!({"alg": "none", "kid": "rs-1"})),
                b64(claims)
            )
        }
    }
}

/// What the provider's id_token for alice says, for the login whose redirect was `authorize`.
fn alice_claims(provider: &Provider, authorize: &str) -> Value {
    let nonce = query(authorize)
        .into_iter()
        .find(|(n, _)| n == "nonce")
        .expect("nonce")
        .1;
    let now = portcullis::auth::tokens::unix_now();
    serde_json::json!({
        "iss": provider.issuer, "aud": "portcullis", "sub": "alice", "nonce": nonce,
        "iat": now, "exp": now + 600, "auth_time": now, "groups": ["admins"], "sid": "forged-sid",
    })
}

#[tokio::test]
async fn id_tokens_with_a_wrong_claim_key_or_algorithm_begin_no_session() {
    let Some((gateway, provider, _echo)) = sso("", Options::default()).await else {
        return;
    };
    let public_key = provider.files.path("rs-1.pem");
    let public_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(public_key).expect("key"))
        .expect("key")
        .public_key_pem();
    let now = portcullis::auth::tokens::unix_now();
    let cases: Vec<(&str, Signer, Value, &str)> = vec![
        ("the genuine claims", Signer::Provider, serde_json::json!({}), ""),
        (
            "another nonce",
            Signer::Provider,
            serde_json::json!({"nonce": "x"}),
            "nonce",
        ),
        (
            "no nonce",
            Signer::Provider,
            serde_json::json!({"nonce": null}),
            "nonce",
        ),
        (
            "another issuer",
            Signer::Provider,
            serde_json::json!({"iss": "https://evil.example"}),
            "id_token_issuer",
        ),
        (
            "another audience",
            Signer::Provider,
            serde_json::json!({"aud": "someone-else"}),
            "id_token_audience",
        ),
        (
            "expired",
            Signer::Provider,
            serde_json::json!({"exp": now - 60, "iat": now - 700}),
            "id_token_expired",
        ),
        (
            "issued in the future",
            Signer::Provider,
            serde_json::json!({"iat": now + 600, "exp": now + 1200}),
            "id_token_not_yet_valid",
        ),
        (
            "several audiences, no azp",
            Signer::Provider,
            serde_json::json!({"aud": ["portcullis", "other"]}),
            "azp",
        ),
        (
            "azp of another client",
            Signer::Provider,
            serde_json::json!({"azp": "other"}),
            "azp",
        ),
        (
            "another key, the provider's kid",
            Signer::Stranger("rs-1"),
            serde_json::json!({}),
            "id_token_signature",
        ),
        (
            "another key, an unknown kid",
            Signer::Stranger("rs-9"),
            serde_json::json!({}),
            "id_token_unknown_key",
        ),
        (
            "alg none",
            Signer::Unsigned,
            serde_json::json!({}),
            "id_token_malformed",
        ),
        (
            "HS256 with the client secret",
            Signer::Hmac(support::oidc::CLIENT_SECRET.into()),
            serde_json::json!({}),
            "id_token_algorithm",
        ),
        (
            "HS256 with the public key",
            Signer::Hmac(public_key.into_bytes()),
            serde_json::json!({}),
            "id_token_algorithm",
        ),
    ];
    for (case, signer, changes, reason) in cases {
        let (authorize, cookie) = begin(&gateway, "/").await;
        let mut claims = alice_claims(&provider, &authorize);
        for (name, value) in changes.as_object().expect("an object") {
            match value {
                Value::Null => drop(claims.as_object_mut().expect("object").remove(name)),
                value => claims[name] = value.clone(),
            }
        }
        provider
            .replace_next_id_token(&forge(&provider, &signer, &claims))
            .await;
        let back = provider.sign_in(&authorize, "alice").await;
        let reply = callback(&gateway, &back, Some(&cookie)).await;
        match reason {
            "" => assert_eq!(reply.status, 303, "{case}: {}", reply.text()),
            reason => assert_refused(&reply, 403, reason),
        }
    }
}

#[tokio::test]
async fn claims_decide_who_may_log_in_and_with_which_role() {
    let extra = "allowed_email_domains = [\"example.com\"]";
    let Some((gateway, provider, _echo)) = sso(extra, Options::default()).await else {
        return;
    };
    let alice = log_in(&gateway, &provider, "alice").await;
    assert_eq!(
        alice.status,
        303,
        "verified email in an allowed domain: {}",
        alice.text()
    );
    assert_refused(
        &log_in(&gateway, &provider, "bob").await,
        403,
        "email_not_verified",
    );
    assert_refused(&log_in(&gateway, &provider, "dave").await, 403, "email_domain");
    // carol's email is fine, but her groups map to no role and default_role is "".
    assert_refused(&log_in(&gateway, &provider, "carol").await, 403, "no_role");
}

#[tokio::test]
async fn a_default_role_admits_users_whose_groups_map_to_none() {
    let Some((gateway, provider, _echo)) = sso("default_role = \"guest\"", Options::default()).await else {
        return;
    };
    let reply = log_in(&gateway, &provider, "carol").await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    let access = session_cookies(&reply).access;
    let me = with_access(&gateway, "/auth/me", &access).await;
    assert_eq!(me.json()["role"], "guest");
}

#[tokio::test]
async fn an_es256_provider_that_only_takes_client_secret_post_works_too() {
    let options = Options {
        id_token_alg: "ES256",
        client_auth_methods: &["client_secret_post"],
        ..Options::default()
    };
    let Some((gateway, provider, _echo)) = sso("", options).await else {
        return;
    };
    let reply = log_in(&gateway, &provider, "alice").await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    assert_eq!(
        provider.last_token_auth().await,
        "post",
        "discovery lists only client_secret_post"
    );
}

#[tokio::test]
async fn an_sso_session_refreshes_and_lists_like_any_other_and_keeps_how_it_began() {
    let Some((gateway, provider, _echo)) = sso("", Options::default()).await else {
        return;
    };
    let cookies = session_cookies(&log_in(&gateway, &provider, "alice").await);
    let site: support::browser::Site = support::browser::OWN;
    let refreshed = gateway
        .send(
            browser(
                Method::POST,
                "/auth/refresh",
                site,
                &[(support::REFRESH_COOKIE, &cookies.refresh)],
            )
            .empty(),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let renewed = issued_cookies(&refreshed, DEFAULTS, "refresh");
    let me = with_access(&gateway, "/auth/me", &renewed.access).await;
    let me = me.json();
    assert_eq!(
        (me["idp"].as_str(), me["amr"].clone()),
        (Some("corp"), serde_json::json!(["fed"]))
    );
    let listed = with_access(&gateway, "/auth/sessions", &renewed.access).await;
    let listed = listed.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(
        (listed[0]["idp"].as_str(), listed[0]["current"].as_bool()),
        (Some("corp"), Some(true))
    );
}

#[tokio::test]
async fn the_login_page_offers_each_provider_and_the_password_form() {
    let Some((gateway, _provider, _echo)) = sso("", Options::default()).await else {
        return;
    };
    let page = gateway.get("/auth/login?return_to=/app/").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    // Autoescaping writes '/' as "&#x2f;" in attributes; browsers read it back as '/'.
    let html = page.text().replace("&#x2f;", "/");
    assert!(
        html.contains("href=\"/auth/oidc/corp/login?return_to=/app/\""),
        "{html}"
    );
    assert!(html.contains(">Corp SSO</a>"), "{html}");
    assert!(
        html.contains("action=\"/auth/login\"") && html.contains("name=\"password\""),
        "{html}"
    );
}

/// `GET path` from a browser holding the access cookie `access`.
async fn with_access(gateway: &Client, path: &str, access: &str) -> Reply {
    gateway
        .send(browser(Method::GET, path, &[], &[(ACCESS_COOKIE, access)]).empty())
        .await
}

/// Whether the browser holding `access` still gets through to the API.
async fn api_status(gateway: &Client, access: &str) -> u16 {
    with_access(gateway, "/api/whoami", access).await.status.as_u16()
}

#[tokio::test]
async fn the_providers_back_channel_logout_ends_that_users_session_at_once() {
    let Some((gateway, provider, _echo)) = sso("", Options::default()).await else {
        return;
    };
    let alice = session_cookies(&log_in(&gateway, &provider, "alice").await);
    let dave = session_cookies(&log_in(&gateway, &provider, "dave").await);
    assert_eq!(api_status(&gateway, &alice.access).await, 200);
    // The provider signs and POSTs a real logout token for alice's provider session.
    let sent = provider.back_channel_logout("alice").await;
    assert!(sent["sid"].is_string(), "{sent}");
    assert_eq!(
        api_status(&gateway, &alice.access).await,
        401,
        "alice's access token is revoked"
    );
    let refresh = browser(
        Method::POST,
        "/auth/refresh",
        support::browser::OWN,
        &[(support::REFRESH_COOKIE, &alice.refresh)],
    );
    assert_eq!(
        gateway.send(refresh.empty()).await.status,
        401,
        "and her refresh token"
    );
    assert_eq!(
        api_status(&gateway, &dave.access).await,
        200,
        "dave's session is another provider session"
    );
}

/// POSTs `logout_token` to the gateway's back-channel endpoint.
async fn post_logout(gateway: &Gateway, token: &str) -> Reply {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", token)
        .finish();
    let request = support::request(Method::POST, &format!("/auth/oidc/{NAME}/backchannel-logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .with_body(body);
    gateway.send(request).await
}

#[tokio::test]
async fn a_logout_token_that_is_not_exactly_right_revokes_nothing_and_one_is_used_once() {
    let Some((gateway, provider, _echo)) = sso("", Options::default()).await else {
        return;
    };
    let alice = session_cookies(&log_in(&gateway, &provider, "alice").await);
    let now = portcullis::auth::tokens::unix_now();
    let valid = serde_json::json!({
        "iss": provider.issuer, "aud": "portcullis", "sub": "alice", "iat": now, "exp": now + 120,
        "jti": "logout-1", "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    let changed = |changes: Value| {
        let mut claims = valid.clone();
        for (name, value) in changes.as_object().expect("an object") {
            match value {
                Value::Null => drop(claims.as_object_mut().expect("object").remove(name)),
                value => claims[name] = value.clone(),
            }
        }
        claims
    };
    let bad: Vec<(&str, String)> = vec![
        (
            "a nonce",
            forge(
                &provider,
                &Signer::Provider,
                &changed(serde_json::json!({"nonce": "n"})),
            ),
        ),
        (
            "no logout event",
            forge(
                &provider,
                &Signer::Provider,
                &changed(serde_json::json!({"events": {}})),
            ),
        ),
        (
            "neither sid nor sub",
            forge(
                &provider,
                &Signer::Provider,
                &changed(serde_json::json!({"sub": null})),
            ),
        ),
        (
            "no jti",
            forge(
                &provider,
                &Signer::Provider,
                &changed(serde_json::json!({"jti": null})),
            ),
        ),
        (
            "another audience",
            forge(
                &provider,
                &Signer::Provider,
                &changed(serde_json::json!({"aud": "x"})),
            ),
        ),
        (
            "expired",
            forge(
                &provider,
                &Signer::Provider,
                &changed(serde_json::json!({"exp": now - 60})),
            ),
        ),
        ("another key", forge(&provider, &Signer::Stranger("rs-1"), &valid)),
        (
            "HS256 with the client secret",
            forge(
                &provider,
                &Signer::Hmac(support::oidc::CLIENT_SECRET.into()),
                &valid,
            ),
        ),
        ("alg none", forge(&provider, &Signer::Unsigned, &valid)),
        ("malformed", "not.a.jwt".to_string()),
        ("empty", String::new()),
        ("oversized", "a".repeat(20_000)),
    ];
    for (case, token) in bad {
        let reply = post_logout(&gateway, &token).await;
        assert_eq!(reply.status, 400, "{case}: {}", reply.text());
        assert_eq!(reply.json()["error"], "invalid_request", "{case}");
        assert_eq!(
            api_status(&gateway, &alice.access).await,
            200,
            "{case}: nothing was revoked"
        );
    }
    let token = forge(&provider, &Signer::Provider, &valid);
    assert_eq!(post_logout(&gateway, &token).await.status, 200);
    assert_eq!(
        api_status(&gateway, &alice.access).await,
        401,
        "every session of alice through corp ended"
    );
    let replay = post_logout(&gateway, &token).await;
    assert_eq!(
        (replay.status.as_u16(), replay.json()["error"].clone()),
        (400, "invalid_request".into()),
        "jti used once"
    );
}

#[tokio::test]
async fn a_provider_that_is_down_answers_503_while_password_logins_and_other_providers_work() {
    let (Some(corp), Some(backup)) = (Planned::new(), Planned::new()) else {
        return;
    };
    let backup_entry = backup.config("").replace("name = \"corp\"", "name = \"backup\"");
    let (gateway, _echo) = api_gateway(ES256_TOKENS, &format!("{}{backup_entry}", corp.config(""))).await;
    for name in ["corp", "backup"] {
        let reply = gateway.get(&format!("/auth/oidc/{name}/login")).await;
        assert_eq!(reply.status, 503, "{name}: {}", reply.text());
        assert_eq!(
            (reply.json()["error"].as_str(), reply.retry_after()),
            (Some("unavailable"), Some(1))
        );
    }
    assert_eq!(
        gateway.login("alice", "alice-password").await.status,
        200,
        "password logins work meanwhile"
    );
    // corp comes up: the gateway learns it on the next login (`start` waits for that).
    let provider = corp.start(&gateway, Options::default()).await;
    assert_eq!(log_in(&gateway, &provider, "alice").await.status, 303);
    assert_eq!(
        gateway.get("/auth/oidc/backup/login").await.status,
        503,
        "backup is still down"
    );
}

#[tokio::test]
async fn a_browser_navigating_into_a_failed_login_gets_a_page_and_the_outcome_is_counted() {
    let Some((gateway, provider, _echo)) = sso("", Options::default()).await else {
        return;
    };
    assert_eq!(log_in(&gateway, &provider, "alice").await.status, 303);
    let (authorize, _cookie) = begin(&gateway, "/").await;
    let back = provider.sign_in(&authorize, "alice").await;
    let path = back.strip_prefix("https://localhost").expect("the callback");
    const NAVIGATION: support::browser::Site = &[("accept", "text/html"), ("sec-fetch-mode", "navigate")];
    let page = gateway
        .send(browser(Method::GET, path, NAVIGATION, &[]).empty())
        .await;
    assert_eq!(page.status, 403);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        page.text().contains("oidc_failed") && page.text().contains("missing_state"),
        "{}",
        page.text()
    );
    let metrics = gateway.admin(Method::GET, "/metrics").await.text();
    for line in [
        "portcullis_oidc_logins_total{idp=\"corp\",result=\"ok\"} 1",
        "portcullis_oidc_logins_total{idp=\"corp\",result=\"failed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
}

#[test]
fn check_reports_every_bad_provider_setting_with_its_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("ok.secret"), "s3cret").expect("secret");
    let providers = "\
[[providers]]
name = \"Corp!\"
issuer = \"http://idp.example.com\"
client_id = \"portcullis\"
client_secret_file = \"missing.secret\"
role_map = [[\"admins\"], [\"staff\", \"bad role!\"]]
scopes = [\"email\"]

[[providers]]
name = \"dup\"
issuer = \"https://idp.example.com?tenant=1\"
client_id = \"portcullis\"
client_secret_file = \"ok.secret\"

[[providers]]
name = \"dup\"
issuer = \"https://idp.example.com\"
client_id = \"portcullis\"
client_secret_env = \"X\"
client_secret_file = \"ok.secret\"
client_auth = \"private_key_jwt\"
allowed_email_domains = [\"@example.com\"]
";
    let (text, stderr) = support::config::refused_by_check(dir.path(), providers);
    let text = &text;
    for (needle, message) in [
        (
            "\"Corp!\"",
            "provider name \"Corp!\" must be 1-32 lower-case letters",
        ),
        (
            "\"http://idp",
            "issuer \"http://idp.example.com\" must be an https:// URL",
        ),
        ("\"missing.secret\"", "missing.secret does not exist"),
        (
            "[\"admins\"]",
            "each role_map entry is [\"claim value\", \"role\"]",
        ),
        ("\"bad role!\"", "bad role!"),
        ("[\"email\"]", "scopes must include \"openid\""),
        (
            "\"https://idp.example.com?tenant=1\"",
            "must be an https:// URL without user, query or fragment",
        ),
        ("\"private_key_jwt\"", "client_auth must be"),
        ("\"@example.com\"", "is not a domain name"),
    ] {
        let expected = format!("FILE:{}:", support::config::position(text, needle));
        let found = stderr
            .lines()
            .any(|line| line.starts_with(&expected) && line.contains(message));
        assert!(found, "missing {expected} {message:?} in:\n{stderr}");
    }
    assert!(
        stderr.contains("give client_secret_file or client_secret_env, not both"),
        "{stderr}"
    );
    let third = text.rfind("[[providers]]").expect("the third provider");
    let line = text[..third].matches('\n').count() + 1;
    let expected = format!("FILE:{line}:1: provider name \"dup\" is used twice");
    assert!(
        stderr.lines().any(|line| line == expected),
        "missing {expected:?} in:\n{stderr}"
    );
}

#[tokio::test]
async fn no_return_to_from_the_open_redirect_corpus_leads_off_the_gateway() {
    let Some((gateway, provider, _echo)) = sso("", Options::default()).await else {
        return;
    };
    let corpus = include_str!("data/open_redirects.txt");
    let attacks: Vec<&str> = corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(attacks.len() > 50, "the corpus is read");
    for attack in attacks {
        let encoded: String = form_urlencoded::byte_serialize(attack.as_bytes()).collect();
        let (authorize, cookie) = begin(&gateway, &encoded).await;
        let back = provider.sign_in(&authorize, "alice").await;
        let reply = callback(&gateway, &back, Some(&cookie)).await;
        assert_eq!(
            (reply.status.as_u16(), reply.header("location")),
            (303, Some("/")),
            "{attack:?}"
        );
    }
    // A plain path passes through, query and all.
    let (authorize, cookie) = begin(&gateway, "%2Fapp%2Fpage%3Fx%3D1").await;
    let reply = callback(
        &gateway,
        &provider.sign_in(&authorize, "alice").await,
        Some(&cookie),
    )
    .await;
    assert_eq!(reply.header("location"), Some("/app/page?x=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_back_channel_logout_on_one_replica_is_enforced_by_the_other_within_a_second() {
    use portcullis::config::KeyAlgorithm;
    use support::jwt::{key_entry, tokens_section};
    let (Some(redis), Some(planned)) = (support::redis::RedisServer::start().await, Planned::new()) else {
        return;
    };
    let key = tempfile::tempdir().expect("temp dir");
    portcullis::auth::keys::generate(KeyAlgorithm::Es256, &key.path().join("k1.pem")).expect("key");
    let tokens = tokens_section(&key_entry(
        "k1",
        KeyAlgorithm::Es256,
        &format!("private_key_file = {:?}", key.path().join("k1.pem")),
    ));
    let echo = Upstream::echo().await;
    let rest = format!(
        "{}\n{}\n[store]\nbackend = \"redis\"\nurl = \"{}\"\n{}",
        support::required_route("api", "/api/", echo.addr),
        support::GENEROUS_LIMITS,
        redis.url(),
        planned.config("")
    );
    let start = || Gateway::start(support::Setup::routes(rest.clone()).tokens(&tokens));
    let (a, b) = (start().await, start().await);
    // The provider's back-channel logouts go to replica A.
    let provider = planned.start(&a, Options::default()).await;
    provider.wait_until_known(&b).await;
    let alice = session_cookies(&log_in(&b, &provider, "alice").await);
    assert_eq!(api_status(&b, &alice.access).await, 200);
    provider.back_channel_logout("alice").await;
    let revoked = std::time::Instant::now();
    assert_eq!(api_status(&a, &alice.access).await, 401, "A revoked it itself");
    while api_status(&b, &alice.access).await != 401 {
        assert!(
            revoked.elapsed() < std::time::Duration::from_secs(1),
            "B still accepts alice after a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_provider_that_rotated_its_keys_is_followed_on_the_first_unknown_kid() {
    let Some((gateway, mut provider, _echo)) = sso("", Options::default()).await else {
        return;
    };
    assert_eq!(log_in(&gateway, &provider, "alice").await.status, 303);
    // Same issuer, a new key under a new kid: the gateway's cached keys do not have it.
    provider.rotate_rsa_key("rs-2").await;
    let reply = log_in(&gateway, &provider, "alice").await;
    assert_eq!(reply.status, 303, "the keys were fetched again: {}", reply.text());
    // Rotated again within the minute: the gateway does not ask again so soon (a flood of
    // made-up kids cannot make it hammer the provider), so this login fails until it may.
    provider.rotate_rsa_key("rs-3").await;
    assert_refused(
        &log_in(&gateway, &provider, "alice").await,
        403,
        "id_token_unknown_key",
    );
}

#[tokio::test]
async fn a_browser_arriving_at_the_callback_gets_a_page_that_goes_on_by_itself() {
    let Some((gateway, provider, _echo)) = sso("", Options::default()).await else {
        return;
    };
    let (authorize, cookie) = begin(&gateway, "/api/whoami").await;
    let back = provider.sign_in(&authorize, "alice").await;
    let path = back.strip_prefix("https://localhost").expect("the callback");
    const NAVIGATION: support::browser::Site = &[("accept", "text/html"), ("sec-fetch-mode", "navigate")];
    let jar = [("__Host-portcullis-oidc", cookie.as_str())];
    let page = gateway
        .send(browser(Method::GET, path, NAVIGATION, &jar).empty())
        .await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    // Autoescaping writes '/' as "&#x2f;"; the browser reads it back.
    let html = page.text().replace("&#x2f;", "/");
    assert!(
        html.contains("<meta http-equiv=\"refresh\" content=\"0;url=/api/whoami\">"),
        "{html}"
    );
    let cookies = session_cookies(&page);
    assert_eq!(api_status(&gateway, &cookies.access).await, 200);
}

#[tokio::test]
async fn logins_failures_and_logouts_through_a_provider_are_audited_and_no_secret_is_logged() {
    let Some(planned) = Planned::new() else { return };
    let echo = Upstream::echo().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let route = support::required_route("api", "/api/", echo.addr);
    let rest = format!("{ES256_TOKENS}\n{route}\n{}", planned.config(""));
    let (binary, client) = support::binary::start_binary(dir.path(), "", &rest).await;
    let provider = planned.start_for(&client, dir.path(), Options::default()).await;
    let (authorize, cookie) = begin(&client, "/api/whoami").await;
    let back = provider.sign_in(&authorize, "alice").await;
    let reply = callback(&client, &back, Some(&cookie)).await;
    let cookies = session_cookies(&reply);
    assert_eq!(
        callback(&client, &back, Some(&cookie)).await.status,
        403,
        "replayed"
    );
    provider.back_channel_logout("alice").await;
    assert_eq!(api_status(&client, &cookies.access).await, 401);

    let log = binary.log();
    for event in [
        "event=\"oidc_login_ok\"",
        "event=\"oidc_failed\"",
        "reason=\"replayed\"",
        "event=\"backchannel_logout\"",
    ] {
        assert!(log.contains(event), "no {event} in:\n{log}");
    }
    let code = query(&back)
        .into_iter()
        .find(|(n, _)| n == "code")
        .expect("code")
        .1;
    let state = query(&back)
        .into_iter()
        .find(|(n, _)| n == "state")
        .expect("state")
        .1;
    let secrets = [
        support::oidc::CLIENT_SECRET,
        &cookie,
        &code,
        &state,
        &cookies.access,
        &cookies.refresh,
    ];
    for secret in secrets {
        assert!(!log.contains(secret), "a secret appears in the log: {secret}");
    }
}
