//! TOTP second factors (SPEC 13) with codes made by an independent implementation (the
//! `totp-rs` crate, reading the `otpauth://` URI the gateway hands out): enrolment and
//! confirmation with recovery codes, a password login that needs the code, replay refused,
//! recovery codes once, attempts rate limited like passwords, removal; and step-up, which
//! renews the same session.

mod support;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::auth::{Pair, login_request};
use support::browser::{OWN, browser};
use support::jwt::claims_of;
use support::upstreams::Upstream;
use support::{GENEROUS_LIMITS, Gateway, Reply, RequestExt, Setup, config::route, request};
use totp_rs::TOTP;

const MFA: &str = "[mfa]\nkey_file = \"mfa.key\"\ngenerate_if_missing = true\nissuer = \"Acme Corp\"\n\
                   [headers]\namr = \"X-Auth-Amr\"\n";

/// A gateway with TOTP, `limits` (a `[limits]` section), and the route `api` whose one rule
/// needs a second factor.
async fn gateway_with(limits: &str) -> (Gateway, Upstream) {
    let echo = Upstream::echo().await;
    let rule = "[[routes.rules]]\neffect = \"allow\"\nmfa = true\n";
    let rest = format!(
        "{MFA}{limits}{}{rule}",
        route("api", "/api/", echo.addr, "auth = \"required\"")
    );
    (Gateway::start(Setup::routes(rest)).await, echo)
}

async fn gateway() -> (Gateway, Upstream) {
    gateway_with(GENEROUS_LIMITS).await
}

fn now() -> u64 {
    portcullis::auth::tokens::unix_now()
}

/// The code for 30-second step `step`, made by `totp-rs`.
fn code(totp: &TOTP, step: u64) -> String {
    totp.generate(step * 30)
}

async fn post(gateway: &Gateway, path: &str, token: &str, body: &Value) -> Reply {
    gateway
        .send(request(Method::POST, path).bearer(token).json(body))
        .await
}

/// Alice enrolled: her session's access token, her authenticator (parsed from the URI the
/// gateway gave), the step her confirming code used, and her recovery codes.
async fn enrolled_alice(gateway: &Gateway) -> (String, TOTP, u64, Vec<String>) {
    let token = gateway.token("alice").await;
    let enrolment = post(gateway, "/auth/mfa/totp/enroll", &token, &json!({})).await;
    assert_eq!(enrolment.status, StatusCode::OK, "{}", enrolment.text());
    let enrolment = enrolment.json();
    let uri = enrolment["otpauth_uri"].as_str().expect("otpauth_uri");
    let totp = TOTP::from_url(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
    assert_eq!(
        (totp.issuer.as_deref(), totp.account_name.as_str()),
        (Some("Acme Corp"), "alice")
    );
    assert_eq!(
        totp.get_secret_base32(),
        enrolment["secret"].as_str().expect("secret")
    );
    let step = now() / 30;
    let wrong = format!(
        "{:06}",
        (code(&totp, step).parse::<u32>().expect("digits") + 1) % 1_000_000
    );
    let refused = post(
        gateway,
        "/auth/mfa/totp/confirm",
        &token,
        &json!({ "code": wrong }),
    )
    .await;
    assert_eq!(
        (refused.status, refused.json()["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("invalid_code"))
    );
    let confirmed = post(
        gateway,
        "/auth/mfa/totp/confirm",
        &token,
        &json!({ "code": code(&totp, step) }),
    )
    .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text());
    let codes: Vec<String> =
        serde_json::from_value(confirmed.json()["recovery_codes"].clone()).expect("codes");
    assert_secret_sealed_at_rest(gateway, &totp.secret, &codes);
    (token, totp, step, codes)
}

/// Neither the TOTP secret (raw, base32 or base64url) nor a recovery code is anywhere in the SQLite files.
fn assert_secret_sealed_at_rest(gateway: &Gateway, secret: &[u8], codes: &[String]) {
    let data = gateway.dir.path().join("data");
    let files = std::fs::read_dir(&data).expect("the store's folder");
    let stored: Vec<u8> = files
        .flat_map(|f| std::fs::read(f.expect("entry").path()).unwrap_or_default())
        .collect();
    assert!(stored.len() > 4096, "the store holds nothing?");
    let base32 = data_encoding::BASE32_NOPAD.encode(secret);
    let needles = [
        secret.to_vec(),
        base32.into_bytes(),
        codes[0].clone().into_bytes(),
    ];
    for needle in needles {
        assert!(
            !stored.windows(needle.len()).any(|w| w == needle),
            "found in the store: {needle:?}"
        );
    }
}

/// A password login of alice that stops at the second factor: its `mfa_token`.
async fn mfa_token(gateway: &Gateway) -> String {
    let reply = gateway.send(login_request("alice")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"], "mfa_required", "{body}");
    assert!(body.get("access_token").is_none(), "{body}");
    body["mfa_token"].as_str().expect("mfa_token").to_string()
}

async fn finish(gateway: &Gateway, mfa_token: &str, code: &str) -> Reply {
    let body = json!({ "mfa_token": mfa_token, "code": code });
    gateway
        .send(request(Method::POST, "/auth/login/mfa").json(&body))
        .await
}

#[tokio::test]
async fn an_enrolled_user_logs_in_with_a_code_once_and_a_recovery_code_once() {
    let (gateway, _echo) = gateway().await;
    let (single_factor, totp, confirmed_step, recovery) = enrolled_alice(&gateway).await;
    assert_eq!(recovery.len(), 10);
    // The code that confirmed the enrolment cannot log in: a code is accepted once.
    // A wrong code spends the attempt and hands out a token for the next one.
    let replayed = finish(&gateway, &mfa_token(&gateway).await, &code(&totp, confirmed_step)).await;
    let body = replayed.json();
    assert_eq!(body["error"], "invalid_code", "{body}");
    let token = body["mfa_token"].as_str().expect("a new mfa_token").to_string();
    let next = code(&totp, confirmed_step + 1);
    let pair = Pair::from_reply(&finish(&gateway, &token, &next).await, "login with a code");
    let claims = claims_of(&pair.access);
    assert_eq!(
        (&claims["amr"], &claims["idp"]),
        (&json!(["pwd", "otp"]), &json!("local"))
    );
    // The token finished its login; the same code on a new login is a replay.
    assert_eq!(
        finish(&gateway, &token, &next).await.json()["error"],
        "invalid_mfa_token"
    );
    let again = finish(&gateway, &mfa_token(&gateway).await, &next).await;
    assert_eq!(again.json()["error"], "invalid_code", "{}", again.text());
    // A recovery code works once, typed loosely.
    let loosely = recovery[3].to_uppercase().replace('-', " ");
    let recovered = finish(&gateway, &mfa_token(&gateway).await, &loosely).await;
    Pair::from_reply(&recovered, "login with a recovery code");
    let reused = finish(&gateway, &mfa_token(&gateway).await, &recovery[3]).await;
    assert_eq!(reused.json()["error"], "invalid_code", "{}", reused.text());
    // The session with a second factor passes the route's rule; the password-only one does not.
    let passed = gateway
        .send(
            request(Method::GET, "/api/x")
                .bearer(&pair.access)
                .header("x-auth-amr", "hwk")
                .empty(),
        )
        .await;
    assert_eq!(passed.status, StatusCode::OK);
    // `[headers] amr` tells the backend how, and a client's copy never reaches it.
    assert_eq!(passed.upstream_header("x-auth-amr"), ["pwd otp"]);
    let before = gateway.get_with_token("/api/x", &single_factor).await;
    assert_eq!(before.status, StatusCode::UNAUTHORIZED);
    assert_eq!(before.json()["error"], "insufficient_user_authentication");
    // Junk and forged tokens finish nothing.
    for bad in ["", "junk", &token.replace('A', "B")] {
        let reply = finish(&gateway, bad, &recovery[0]).await;
        assert_eq!(reply.json()["error"], "invalid_mfa_token", "{bad:?}");
    }
}

#[tokio::test]
async fn wrong_codes_are_rate_limited_like_passwords() {
    // Eight attempts a minute for alice: enrolling takes three, the password step one.
    let limits = "[limits]\nlogin_per_ip = \"1000/min\"\nlogin_per_user = \"8/min\"\n";
    let (gateway, _echo) = gateway_with(limits).await;
    let (_, totp, step, _) = enrolled_alice(&gateway).await;
    let mut token = mfa_token(&gateway).await;
    let wrong = format!(
        "{:06}",
        (code(&totp, step + 1).parse::<u32>().expect("digits") + 7) % 1_000_000
    );
    for attempt in 1..=4 {
        let reply = finish(&gateway, &token, &wrong).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {}",
            reply.text()
        );
        token = reply.json()["mfa_token"].as_str().expect("mfa_token").to_string();
    }
    // The right code now waits, as a password would.
    let limited = finish(&gateway, &token, &code(&totp, step + 1)).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text()
    );
    assert!(limited.retry_after().is_some_and(|s| s >= 1));
}

#[tokio::test]
async fn totp_is_removed_only_with_a_current_code_and_logins_need_none_after() {
    let (gateway, _echo) = gateway().await;
    let (token, totp, step, _) = enrolled_alice(&gateway).await;
    let delete = |body: Value| {
        gateway.send(
            request(Method::DELETE, "/auth/mfa/totp")
                .bearer(&token)
                .json(&body),
        )
    };
    assert_eq!(delete(json!({})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        delete(json!({ "code": "000000" })).await.json()["error"],
        "invalid_code"
    );
    // A second enrolment while one is confirmed is refused.
    let twice = post(&gateway, "/auth/mfa/totp/enroll", &token, &json!({})).await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert_eq!(
        delete(json!({ "code": code(&totp, step + 1) })).await.status,
        StatusCode::NO_CONTENT
    );
    Pair::from_reply(&gateway.send(login_request("alice")).await, "login after removal");
}

#[tokio::test]
async fn a_browser_gets_the_code_page_after_its_password_and_cookies_after_the_code() {
    let (gateway, _echo) = gateway().await;
    let (_, totp, step, _) = enrolled_alice(&gateway).await;
    let form = "username=alice&password=alice-password&return_to=%2Fapi%2Freport";
    let login = browser(Method::POST, "/auth/login", OWN, &[])
        .header("content-type", "application/x-www-form-urlencoded")
        .with_body(form);
    let page = gateway.send(login).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.header("set-cookie").is_none(), "no session before the code");
    let html = page.text();
    let token = html
        .split("name=\"mfa_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no mfa_token in {html}"));
    assert!(html.contains("autocomplete=\"one-time-code\""), "{html}");
    let body = format!("mfa_token={token}&code={}", code(&totp, step + 1));
    let submit = |site| {
        browser(Method::POST, "/auth/login/mfa", site, &[])
            .header("content-type", "application/x-www-form-urlencoded")
            .with_body(body.clone())
    };
    // The code step of a cookie login is a CSRF target like the password step.
    let cross_site = gateway.send(submit(&[("origin", "https://evil.example")])).await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    let done = gateway.send(submit(OWN)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(done.header("location"), Some("/api/report"));
    let cookies = support::browser::issued_cookies(&done, support::browser::DEFAULTS, "code login");
    assert_eq!(claims_of(&cookies.access)["amr"], json!(["pwd", "otp"]));
}

#[tokio::test]
async fn a_step_up_renews_the_same_session_and_its_refresh_lineage() {
    let (gateway, echo) = gateway().await;
    let login = gateway.pair("alice").await;
    let sid = claims_of(&login.access)["sid"].clone();
    let step_up = async |token: &str, body: Value| post(&gateway, "/auth/step-up", token, &body).await;
    // Without a second factor enrolled, a step-up renews the time but cannot add one.
    let renewed = step_up(&login.access, json!({ "password": "alice-password" })).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text());
    assert_eq!(
        claims_of(renewed.json()["access_token"].as_str().expect("token"))["amr"],
        json!(["pwd"])
    );
    // Enrolled: the step-up needs the code too, and a wrong password changes nothing.
    let (_, totp, step, _) = enrolled_alice(&gateway).await;
    let wrong = step_up(
        &login.access,
        json!({ "password": "nope", "code": code(&totp, step + 1) }),
    )
    .await;
    assert_eq!(wrong.json()["error"], "invalid_credentials", "{}", wrong.text());
    let no_code = step_up(&login.access, json!({ "password": "alice-password" })).await;
    assert_eq!(no_code.status, StatusCode::BAD_REQUEST, "{}", no_code.text());
    let stepped = step_up(
        &login.access,
        json!({ "password": "alice-password", "code": code(&totp, step + 1) }),
    )
    .await;
    assert_eq!(stepped.status, StatusCode::OK, "{}", stepped.text());
    let access = stepped.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let claims = claims_of(&access);
    assert_eq!((&claims["sid"], &claims["amr"]), (&sid, &json!(["pwd", "otp"])));
    assert_eq!(
        gateway.get_with_token("/api/x", &access).await.status,
        StatusCode::OK
    );
    assert_eq!(echo.counts.requests(), 1);
    // The login's refresh token still refreshes the same session, which now says `otp`.
    let refreshed = gateway.refreshed(&login.refresh, "refresh after step-up").await;
    let claims = claims_of(&refreshed.access);
    assert_eq!((&claims["sid"], &claims["amr"]), (&sid, &json!(["pwd", "otp"])));
    // A revoked session cannot be stepped up.
    assert_eq!(
        gateway.logout(&refreshed.refresh).await.status,
        StatusCode::NO_CONTENT
    );
    let revoked = step_up(
        &refreshed.access,
        json!({ "password": "alice-password", "code": "x" }),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED, "{}", revoked.text());
}

#[tokio::test]
async fn a_browser_steps_up_through_the_page_and_returns_where_it_was() {
    let (gateway, echo) = gateway().await;
    // A password-only browser session, begun before TOTP was enrolled.
    let cookies = support::browser::logged_in(&gateway, "alice").await;
    let (_, totp, step, _) = enrolled_alice(&gateway).await;
    let navigate = |path: &str, access: &str| {
        let jar = [(support::ACCESS_COOKIE, access)];
        browser(Method::GET, path, OWN, &jar)
            .header("accept", "text/html")
            .empty()
    };
    let sent = gateway.send(navigate("/api/x?y=1", &cookies.access)).await;
    assert_eq!(sent.status, StatusCode::FOUND, "{}", sent.text());
    let location = sent.header("location").expect("location").to_string();
    assert_eq!(
        location,
        "/auth/step-up?return_to=%2Fapi%2Fx%3Fy%3D1&acr_values=mfa"
    );
    let page = gateway.send(navigate(&location, &cookies.access)).await;
    let html = page.text();
    assert_eq!(page.status, StatusCode::OK, "{html}");
    for field in [
        "name=\"password\"",
        "name=\"code\"",
        "name=\"return_to\"",
        "Password for alice",
    ] {
        assert!(html.contains(field), "{field} missing from {html}");
    }
    let form = format!(
        "password=alice-password&code={}&return_to=%2Fapi%2Fx%3Fy%3D1",
        code(&totp, step + 1)
    );
    let submit = |site| {
        let jar = [(support::ACCESS_COOKIE, cookies.access.as_str())];
        browser(Method::POST, "/auth/step-up", site, &jar)
            .header("content-type", "application/x-www-form-urlencoded")
            .with_body(form.clone())
    };
    let forged = gateway.send(submit(&[("origin", "https://evil.example")])).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let done = gateway.send(submit(OWN)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(done.header("location"), Some("/api/x?y=1"));
    let set: Vec<&str> = done
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(set.len(), 1, "only the access cookie is renewed: {set:?}");
    let access = set[0]
        .strip_prefix(&format!("{}=", support::ACCESS_COOKIE))
        .and_then(|rest| rest.split(';').next())
        .expect("the access cookie");
    assert_eq!(
        claims_of(access)["sid"],
        claims_of(&cookies.access)["sid"],
        "the same session"
    );
    assert_eq!(
        gateway.send(navigate("/api/x?y=1", access)).await.status,
        StatusCode::OK
    );
    assert_eq!(echo.counts.requests(), 1);
}

#[test]
fn check_refuses_a_missing_or_short_mfa_key_and_a_bad_rp_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rest = "[mfa]\nkey_file = \"nowhere.key\"\n[webauthn]\nrp_id = \"https://Example.com:8443\"\n";
    let (text, stderr) = support::config::refused_by_check(dir.path(), rest);
    let at = |needle| support::config::position(&text, needle);
    assert!(
        stderr.contains(&format!("FILE:{}: ", at("\"nowhere.key\""))),
        "{stderr}"
    );
    assert!(stderr.contains("portcullis keygen --alg HS256"), "{stderr}");
    let rp_id = format!(
        "FILE:{}: rp_id \"https://Example.com:8443\" must be a lower-case domain name",
        at("\"https:")
    );
    assert!(stderr.contains(&rp_id), "{stderr}");
    std::fs::write(dir.path().join("short.key"), "too short\n").expect("write");
    let (_, stderr) = support::config::refused_by_check(dir.path(), "[mfa]\nkey_file = \"short.key\"\n");
    assert!(
        stderr.contains("[mfa]: the [mfa] key must hold at least 32 bytes of secret"),
        "{stderr}"
    );
}
