//! Single sign-on through a real OpenID provider (SPEC 10): panva's certified `oidc-provider`
//! on a loopback port. A login through it ends in a normal session; every bad answer ends in
//! none; back-channel logout ends the sessions it names.

mod support;

use http::Method;
use serde_json::Value;

use support::browser::{DEFAULTS, browser, issued_cookies};
use support::oidc::{NAME, Options, Planned, Provider};
use support::upstreams::Upstream;
use support::{ACCESS_COOKIE, ES256_TOKENS, Gateway, Reply, RequestExt, api_gateway};

/// A gateway with the provider `corp` (its `[[providers]]` entry plus `extra`) and an echo at
/// `/api/`, and the provider; `None` when Node is missing (outside CI).
async fn sso(extra: &str, options: Options) -> Option<(Gateway, Provider, Upstream)> {
    let planned = Planned::new()?;
    let (gateway, echo) = api_gateway(ES256_TOKENS, &planned.config(extra)).await;
    let provider = planned.start(&gateway, options).await;
    Some((gateway, provider, echo))
}

/// The gateway's redirect to the provider for a login that should end at `return_to`, and the
/// value of the login cookie it set.
async fn begin(gateway: &Gateway, return_to: &str) -> (String, String) {
    let reply = gateway.get(&format!("/auth/oidc/{NAME}/login?return_to={return_to}")).await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    let cookie = reply.header("set-cookie").expect("the login cookie").to_string();
    let value = cookie
        .strip_prefix("__Host-portcullis-oidc=")
        .and_then(|rest| rest.split(';').next())
        .expect("the login cookie's value");
    (reply.header("location").expect("a Location").to_string(), value.to_string())
}

/// The gateway's answer to the provider's redirect back to `callback`, with the login cookie.
async fn callback(gateway: &Gateway, callback: &str, cookie: Option<&str>) -> Reply {
    let path = callback.strip_prefix("https://localhost");
    let path = path.unwrap_or_else(|| panic!("not the gateway's callback: {callback}"));
    let jar: Vec<(&str, &str)> = cookie.map(|c| ("__Host-portcullis-oidc", c)).into_iter().collect();
    gateway.send(browser(Method::GET, path, &[], &jar).empty()).await
}

/// A whole login of `user` through the provider: the gateway's answer at the callback.
async fn sign_in(gateway: &Gateway, provider: &Provider, user: &str) -> Reply {
    let (authorize, cookie) = begin(gateway, "/api/whoami").await;
    let back = provider.sign_in(&authorize, user).await;
    callback(gateway, &back, Some(&cookie)).await
}

/// The session cookies of a successful callback, after checking it also spent the login cookie.
fn session_cookies(reply: &Reply) -> support::browser::Cookies {
    let mut rest = reply.headers.clone();
    let all: Vec<_> = rest.get_all("set-cookie").iter().cloned().collect();
    let (login, session): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|c| c.as_bytes().starts_with(b"__Host-portcullis-oidc="));
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
    let Some((gateway, provider, echo)) = sso("", Options::default()).await else { return };
    let (authorize, cookie) = begin(&gateway, "/api/whoami").await;
    assert!(authorize.starts_with(&format!("{}/auth?", provider.issuer)), "{authorize}");
    let params = query(&authorize);
    let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(param("response_type"), Some("code"));
    assert_eq!(param("client_id"), Some("portcullis"));
    assert_eq!(param("code_challenge_method"), Some("S256"));
    assert_eq!(param("redirect_uri"), Some("https://localhost/auth/oidc/corp/callback"));
    assert_eq!(param("scope"), Some("openid email profile"));
    for name in ["state", "nonce", "code_challenge"] {
        assert!(param(name).is_some_and(|v| v.len() >= 43), "{name} has 256 bits");
    }

    let back = provider.sign_in(&authorize, "alice").await;
    let reply = callback(&gateway, &back, Some(&cookie)).await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/api/whoami"));
    let cookies = session_cookies(&reply);

    let api = gateway.send(browser(Method::GET, "/api/whoami", &[], &[(ACCESS_COOKIE, &cookies.access)]).empty()).await;
    assert_eq!(api.status, 200, "{}", api.text());
    assert_eq!(api.upstream_header("x-auth-sub"), ["corp:alice"]);
    assert_eq!(api.upstream_header("x-auth-role"), ["admin"], "groups admins -> admin, listed first");
    let _ = echo;

    let me = gateway.send(browser(Method::GET, "/auth/me", &[], &[(ACCESS_COOKIE, &cookies.access)]).empty()).await;
    let me: Value = me.json();
    assert_eq!((me["sub"].as_str(), me["idp"].as_str()), (Some("corp:alice"), Some("corp")));
    assert_eq!(me["amr"], serde_json::json!(["fed"]));
    assert!(me["auth_time"].as_u64().is_some_and(|t| t > 0));
    assert_eq!(provider.last_token_auth().await, "basic");
}
