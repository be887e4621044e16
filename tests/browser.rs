//! Browsers end to end (SPEC 4 cookie mode, SPEC 6 CSRF): the two cookies and every attribute
//! of them for the JSON cookie login, the form login, the cookie refresh and the logout; the
//! Origin/Referer rule on every cookie-driven state change; the form login's `return_to`
//! against open-redirect tricks; cookie tossing; CORS for allowed origins; `login_page`; and
//! the transparent refresh of an expired access cookie.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::json;
use support::browser::{
    Cookies, DEFAULTS, Expect, NOWHERE, OWN, Site, assert_no_set_cookie, browse, browser, cookie_login,
    issued_cookies, logged_in, short_lived_tokens,
};
use support::jwt::claims_of;
use support::upstreams::Upstream;
use support::{ACCESS_COOKIE as ACCESS, ES256_TOKENS, GENEROUS_LIMITS, Gateway, REFRESH_COOKIE as REFRESH};
use support::{PROTECTED, Reply, RequestExt, Setup, api_gateway, config, public_route, request, within};

// === configuration ===

const ALLOWED_ORIGIN: &str = "https://app.example.com";

/// `[cookies]` with one allowed cross-origin front end.
const COOKIES: &str = "[cookies]\nallowed_origins = [\"https://app.example.com\"]\n";

/// The same with transparent refresh switched on.
const TRANSPARENT_COOKIES: &str =
    "[cookies]\nallowed_origins = [\"https://app.example.com\"]\ntransparent_refresh = true\n";

// === where a request says it comes from ===

/// Refused: 403 `cross_site_request`, and nothing changes.
const CROSS_SITE: [(&str, Site); 8] = [
    ("no Origin and no Referer", NOWHERE),
    ("Origin: null", &[("origin", "null")]),
    ("a look-alike origin", &[("origin", "https://localhost.evil.com")]),
    ("another site's origin", &[("origin", "https://evil.com")]),
    ("the own host over http", &[("origin", "http://localhost")]),
    (
        "the own host on another port",
        &[("origin", "https://localhost:444")],
    ),
    (
        "a Referer from another site",
        &[("referer", "https://evil.com/page")],
    ),
    (
        "Origin: null beside a same-origin Referer",
        &[("origin", "null"), ("referer", "https://localhost/app")],
    ),
];

/// Allowed: the request does what it asks.
const SAME_SITE: [(&str, Site); 3] = [
    ("an origin in allowed_origins", &[("origin", ALLOWED_ORIGIN)]),
    ("the own origin", OWN),
    (
        "a Referer from the own origin",
        &[("referer", "https://localhost/app/page?x=1")],
    ),
];
const EVIL: Site = &[("origin", "https://evil.com")];
const ALLOWED: Site = &[("origin", ALLOWED_ORIGIN)];

/// Alice's cookie-mode body, default lifetimes: `{"sub","role","expires_in"}` and no token in it.
fn assert_cookie_body(reply: &Reply, cookies: &Cookies, what: &str) {
    let body = reply.json();
    let expected = json!({ "sub": "alice", "role": "admin", "expires_in": DEFAULTS.access_ttl });
    assert_eq!(body, expected, "{what}");
    let text = reply.text();
    assert!(
        !text.contains(&cookies.access) && !text.contains(&cookies.refresh),
        "{what}: the body holds a token: {text}"
    );
    assert_eq!(
        reply.header("cache-control"),
        Some("no-store"),
        "{what}: Cache-Control"
    );
}

// === logins, refreshes, logouts ===

async fn form_login(gateway: &Gateway, user: &str, return_to: Option<&str>, site: Site) -> Reply {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("username", user)
        .append_pair("password", &format!("{user}-password"));
    if let Some(return_to) = return_to {
        form.append_pair("return_to", return_to);
    }
    let request = browser(Method::POST, "/auth/login", site, &[])
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html");
    gateway.send(request.with_body(form.finish())).await
}

/// Proves that `live` is still the session's live refresh token and `retired` the one retired
/// last, without rotating anything: within the grace, presenting `retired` again is answered
/// with the live token (SPEC 5.3). Had anything rotated `live` behind our back, `retired`
/// would be two generations old, which is reuse: 401 and the session revoked.
async fn assert_live_refresh_token(gateway: &Gateway, retired: &str, live: &str, what: &str) {
    let what =
        format!("{what}: the token retired last (if refused, the live one was rotated behind our back)");
    let answer = gateway.refreshed(retired, &what).await;
    assert_eq!(answer.refresh, live, "{what}: the live refresh token changed");
}

/// The access cookie authenticates `/auth/me` as `sub`.
async fn assert_cookie_works(gateway: &Gateway, access: &str, sub: &str, what: &str) {
    let reply = cookie_get(gateway, "/auth/me", &[(ACCESS, access)]).await;
    assert_eq!(reply.status, 200, "{what}: {}", reply.text());
    assert_eq!(reply.json()["sub"], sub, "{what}");
}

/// A plain `GET path` with the cookies of `jar`.
async fn cookie_get(gateway: &Gateway, path: &str, jar: &[(&str, &str)]) -> Reply {
    browse(gateway, Method::GET, path, NOWHERE, jar).await
}

/// 403 `cross_site_request`, and no cookie handed out.
fn assert_cross_site(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 403, "{what}: {}", reply.text());
    assert_eq!(reply.json()["error"], "cross_site_request", "{what}");
    assert_no_set_cookie(reply, what);
}

// === 1. the cookies themselves ===

#[tokio::test]
async fn a_cookie_mode_login_sets_both_cookies_with_every_attribute_and_returns_no_token() {
    let (gateway, _echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let reply = cookie_login(&gateway, "alice", OWN).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let cookies = issued_cookies(&reply, DEFAULTS, "cookie login");
    assert_cookie_body(&reply, &cookies, "cookie login");
    assert_ne!(cookies.access, cookies.refresh);
    let claims = claims_of(&cookies.access);
    assert_eq!(claims["sub"], "alice", "the access cookie is alice's token");
    assert!(
        gateway.session_ids("alice").await.contains(&cookies.sid()),
        "the login began no session"
    );

    // A login with another session's cookies planted never takes that session over.
    let planted = logged_in(&gateway, "bob").await;
    let body = json!({ "username": "alice", "password": "alice-password", "mode": "cookie" });
    let request = browser(Method::POST, "/auth/login", OWN, &planted.both())
        .header("content-type", "application/json")
        .with_body(body.to_string());
    let reply = gateway.send(request).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let fresh = issued_cookies(&reply, DEFAULTS, "a login over planted cookies");
    assert_ne!(fresh.sid(), planted.sid(), "the login reused the planted session");
    assert_ne!(fresh.sid(), cookies.sid());
    assert_eq!(claims_of(&fresh.access)["sub"], "alice");
}

#[tokio::test]
async fn the_access_cookie_authenticates_a_proxied_get_and_the_upstream_never_sees_a_gateway_cookie() {
    let (gateway, echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let cookies = logged_in(&gateway, "bob").await;
    let jar = [
        ("theme", "dark"),
        (ACCESS, cookies.access.as_str()),
        (REFRESH, cookies.refresh.as_str()),
        ("lang", "en"),
    ];
    let reply = cookie_get(&gateway, PROTECTED, &jar).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(echo.counts.requests(), 1);
    assert_eq!(reply.upstream_header("x-auth-sub"), ["bob"]);
    assert_eq!(reply.upstream_header("x-auth-role"), ["user"]);
    assert_eq!(reply.upstream_header("x-auth-session"), [cookies.sid()]);
    assert_eq!(
        reply.upstream_header("cookie"),
        ["theme=dark; lang=en"],
        "other cookies pass untouched, as one Cookie header"
    );
    let seen = reply.json()["headers"].to_string();
    for (name, token) in [(ACCESS, &cookies.access), (REFRESH, &cookies.refresh)] {
        assert!(
            !seen.contains(name) && !seen.contains(token.as_str()),
            "{name} reached the upstream: {seen}"
        );
    }
}

#[tokio::test]
async fn a_form_login_answers_303_to_return_to_and_sets_the_same_cookies() {
    let (gateway, _echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let reply = form_login(&gateway, "bob", Some("/app/page?x=1#top"), OWN).await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/app/page?x=1#top"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let cookies = issued_cookies(&reply, DEFAULTS, "form login");
    let text = reply.text();
    assert!(
        !text.contains(&cookies.access) && !text.contains(&cookies.refresh),
        "the redirect's body holds a token: {text}"
    );
    assert_cookie_works(&gateway, &cookies.access, "bob", "the form login's access cookie").await;
    assert!(gateway.session_ids("bob").await.contains(&cookies.sid()));
}

#[tokio::test]
async fn a_cookie_refresh_rotates_both_cookies_and_returns_no_token() {
    let (gateway, _echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let first = logged_in(&gateway, "alice").await;
    let reply = browse(&gateway, Method::POST, "/auth/refresh", OWN, &first.both()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let second = issued_cookies(&reply, DEFAULTS, "cookie refresh");
    assert_cookie_body(&reply, &second, "cookie refresh");
    assert_ne!(
        second.refresh, first.refresh,
        "the refresh cookie was not rotated"
    );
    assert_ne!(second.access, first.access, "the access cookie was not re-issued");
    assert_eq!(second.sid(), first.sid(), "a refresh moved to another session");
    assert_cookie_works(&gateway, &second.access, "alice", "the new access cookie").await;
    // A real rotation: the old cookie is the one retired last, the new one is live.
    assert_live_refresh_token(
        &gateway,
        &first.refresh,
        &second.refresh,
        "after the cookie refresh",
    )
    .await;

    // The new refresh cookie rotates again.
    let reply = browse(&gateway, Method::POST, "/auth/refresh", OWN, &second.both()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let third = issued_cookies(&reply, DEFAULTS, "second cookie refresh");
    assert_ne!(third.refresh, second.refresh);
}

#[tokio::test]
async fn a_cookie_logout_ends_the_session_and_clears_both_cookies_with_the_same_names_paths_and_attributes() {
    let (gateway, echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let cookies = logged_in(&gateway, "alice").await;
    let reply = browse(&gateway, Method::POST, "/auth/logout", OWN, &cookies.both()).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    issued_cookies(&reply, DEFAULTS.cleared(), "clearing both cookies");

    assert!(
        !gateway.session_ids("alice").await.contains(&cookies.sid()),
        "the session is still live"
    );
    let reply = cookie_get(&gateway, PROTECTED, &[(ACCESS, &cookies.access)]).await;
    assert_eq!(
        reply.status,
        401,
        "the access cookie outlived the logout: {}",
        reply.text()
    );
    assert_eq!(echo.counts.requests(), 0);
    let reply = browse(&gateway, Method::POST, "/auth/refresh", OWN, &cookies.both()).await;
    assert_eq!(reply.status, 401, "the refresh cookie outlived the logout");
    assert_no_set_cookie(&reply, "a refresh after the logout");
}

// === 2. CSRF ===

#[tokio::test]
async fn cookie_authenticated_unsafe_methods_need_the_own_or_an_allowed_origin() {
    let (gateway, echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let cookies = logged_in(&gateway, "alice").await;
    let jar = [(ACCESS, cookies.access.as_str())];
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        for (what, site) in CROSS_SITE {
            let what = format!("cookie {method} with {what}");
            let before = echo.counts.requests();
            let request = browser(method.clone(), PROTECTED, site, &jar)
                .header("content-type", "application/x-www-form-urlencoded")
                .with_body("amount=1000&to=mallory");
            let reply = gateway.send(request).await;
            assert_cross_site(&reply, &what);
            assert_eq!(echo.counts.requests(), before, "{what}: the upstream saw it");
        }
        for (what, site) in SAME_SITE {
            let what = format!("cookie {method} with {what}");
            let before = echo.counts.requests();
            let request = browser(method.clone(), PROTECTED, site, &jar).with_body("amount=1");
            let reply = gateway.send(request).await;
            assert_eq!(reply.status, 200, "{what}: {}", reply.text());
            assert_eq!(reply.json()["method"], method.as_str(), "{what}");
            assert_eq!(reply.upstream_header("x-auth-sub"), ["alice"], "{what}");
            assert_eq!(echo.counts.requests(), before + 1, "{what}");
        }
    }
    // The session is untouched by all of this.
    assert_cookie_works(&gateway, &cookies.access, "alice", "after the CSRF matrix").await;
}

#[tokio::test]
async fn a_cookie_get_needs_no_origin_and_a_bearer_post_needs_no_origin() {
    let (gateway, echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let cookies = logged_in(&gateway, "alice").await;
    let reply = cookie_get(&gateway, PROTECTED, &[(ACCESS, &cookies.access)]).await;
    assert_eq!(reply.status, 200, "cookie GET: {}", reply.text());
    assert_eq!(reply.upstream_header("x-auth-sub"), ["alice"]);

    let access = gateway.token("bob").await;
    for method in [Method::POST, Method::DELETE] {
        let request = request(method.clone(), PROTECTED)
            .bearer(&access)
            .with_body("x=1");
        let reply = gateway.send(request).await;
        assert_eq!(reply.status, 200, "bearer {method}: {}", reply.text());
        assert_eq!(reply.upstream_header("x-auth-sub"), ["bob"]);
    }
    // A bearer token beside a cookie: the bearer decides, and it needs no Origin either.
    let request = browser(Method::POST, PROTECTED, EVIL, &[(ACCESS, &cookies.access)])
        .header("authorization", format!("Bearer {access}"))
        .empty();
    let reply = gateway.send(request).await;
    assert_eq!(reply.status, 200, "bearer POST with a cookie: {}", reply.text());
    assert_eq!(reply.upstream_header("x-auth-sub"), ["bob"]);
    assert_eq!(echo.counts.requests(), 4);
}

#[tokio::test]
async fn a_cookie_mode_login_needs_the_own_or_an_allowed_origin_and_a_refused_one_begins_no_session() {
    let (gateway, _echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    for (what, site) in CROSS_SITE {
        let what = format!("cookie login with {what}");
        let reply = cookie_login(&gateway, "bob", site).await;
        assert_cross_site(&reply, &what);
        assert_eq!(
            gateway.session_ids("bob").await,
            BTreeSet::new(),
            "{what}: a session was begun"
        );
    }
    for (what, site) in SAME_SITE {
        let what = format!("cookie login with {what}");
        let before = gateway.session_ids("bob").await;
        let reply = cookie_login(&gateway, "bob", site).await;
        assert_eq!(reply.status, 200, "{what}: {}", reply.text());
        let cookies = issued_cookies(&reply, DEFAULTS, &what);
        let after = gateway.session_ids("bob").await;
        assert_eq!(after.len(), before.len() + 1, "{what}");
        assert!(after.contains(&cookies.sid()), "{what}");
    }
}

#[tokio::test]
async fn a_form_login_needs_the_own_or_an_allowed_origin_and_a_refused_one_begins_no_session() {
    let (gateway, _echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    for (what, site) in CROSS_SITE {
        let what = format!("form login with {what}");
        let reply = form_login(&gateway, "bob", Some("/app"), site).await;
        assert_cross_site(&reply, &what);
        assert_eq!(reply.header("location"), None, "{what}");
        assert_eq!(
            gateway.session_ids("bob").await,
            BTreeSet::new(),
            "{what}: a session was begun"
        );
    }
    for (what, site) in SAME_SITE {
        let what = format!("form login with {what}");
        let before = gateway.session_ids("bob").await;
        let reply = form_login(&gateway, "bob", Some("/app"), site).await;
        assert_eq!(reply.status, 303, "{what}: {}", reply.text());
        assert_eq!(reply.header("location"), Some("/app"), "{what}");
        let cookies = issued_cookies(&reply, DEFAULTS, &what);
        let after = gateway.session_ids("bob").await;
        assert_eq!(after.len(), before.len() + 1, "{what}");
        assert!(after.contains(&cookies.sid()), "{what}");
    }
}

#[tokio::test]
async fn a_cookie_refresh_needs_the_own_or_an_allowed_origin_and_a_refused_one_rotates_nothing() {
    let (gateway, _echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let login = logged_in(&gateway, "alice").await;
    // One JSON rotation first, so that there is a retired token to prove liveness with.
    let mut live = gateway.refreshed(&login.refresh, "a JSON refresh").await.refresh;
    let mut retired = login.refresh.clone();
    let access = login.access.clone();

    for (what, site) in CROSS_SITE {
        let what = format!("cookie refresh with {what}");
        let jar = [(ACCESS, access.as_str()), (REFRESH, live.as_str())];
        let reply = browse(&gateway, Method::POST, "/auth/refresh", site, &jar).await;
        assert_cross_site(&reply, &what);
        assert_live_refresh_token(&gateway, &retired, &live, &what).await;
    }
    for (what, site) in SAME_SITE {
        let what = format!("cookie refresh with {what}");
        let jar = [(ACCESS, access.as_str()), (REFRESH, live.as_str())];
        let reply = browse(&gateway, Method::POST, "/auth/refresh", site, &jar).await;
        assert_eq!(reply.status, 200, "{what}: {}", reply.text());
        let cookies = issued_cookies(&reply, DEFAULTS, &what);
        assert_cookie_body(&reply, &cookies, &what);
        assert_ne!(cookies.refresh, live, "{what}: not rotated");
        assert_eq!(cookies.sid(), login.sid(), "{what}");
        retired = std::mem::replace(&mut live, cookies.refresh);
        assert_live_refresh_token(&gateway, &retired, &live, &what).await;
    }
}

#[tokio::test]
async fn a_cookie_logout_needs_the_own_or_an_allowed_origin_and_a_refused_one_ends_nothing() {
    let (gateway, _echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let victim = logged_in(&gateway, "alice").await;
    for (what, site) in CROSS_SITE {
        let what = format!("cookie logout with {what}");
        let reply = browse(&gateway, Method::POST, "/auth/logout", site, &victim.both()).await;
        assert_cross_site(&reply, &what);
        assert!(
            gateway.session_ids("alice").await.contains(&victim.sid()),
            "{what}: the session was ended"
        );
        assert_cookie_works(&gateway, &victim.access, "alice", &what).await;
    }
    for (what, site) in SAME_SITE {
        let what = format!("cookie logout with {what}");
        let cookies = logged_in(&gateway, "alice").await;
        let reply = browse(&gateway, Method::POST, "/auth/logout", site, &cookies.both()).await;
        assert_eq!(reply.status, 204, "{what}: {}", reply.text());
        issued_cookies(&reply, DEFAULTS.cleared(), &what);
        let live = gateway.session_ids("alice").await;
        assert!(!live.contains(&cookies.sid()), "{what}: the session lives on");
        assert!(live.contains(&victim.sid()), "{what}: ended another session");
        let reply = cookie_get(&gateway, "/auth/me", &[(ACCESS, &cookies.access)]).await;
        assert_eq!(reply.status, 401, "{what}: the access cookie still works");
    }
}

#[tokio::test]
async fn cookie_authenticated_logout_all_and_session_deletion_need_the_own_or_an_allowed_origin() {
    let (gateway, _echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let one = logged_in(&gateway, "alice").await;
    let two = logged_in(&gateway, "alice").await;
    let all = BTreeSet::from([one.sid(), two.sid()]);
    let delete_two = format!("/auth/sessions/{}", two.sid());
    for (what, site) in CROSS_SITE {
        for (method, path) in [
            (Method::POST, "/auth/logout-all"),
            (Method::DELETE, delete_two.as_str()),
        ] {
            let what = format!("cookie {method} {path} with {what}");
            let request = browser(method, path, site, &one.both()).empty();
            let reply = gateway.send(request).await;
            assert_cross_site(&reply, &what);
            assert_eq!(gateway.session_ids("alice").await, all, "{what}");
        }
    }
    let request = browser(Method::DELETE, &delete_two, OWN, &one.both()).empty();
    let reply = gateway.send(request).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_eq!(gateway.session_ids("alice").await, BTreeSet::from([one.sid()]));
    let request = browser(
        Method::POST,
        "/auth/logout-all",
        &[("referer", "https://localhost/settings")],
        &one.both(),
    )
    .empty();
    let reply = gateway.send(request).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_eq!(gateway.session_ids("alice").await, BTreeSet::new());
}

#[tokio::test]
async fn an_html_form_post_logs_out_and_refreshes_from_the_cookies() {
    let (gateway, _echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let form_post = |path: &str, cookies: &Cookies| {
        browser(Method::POST, path, OWN, &cookies.both())
            .header("content-type", "application/x-www-form-urlencoded")
            .empty()
    };
    let cookies = logged_in(&gateway, "alice").await;
    let reply = gateway.send(form_post("/auth/logout", &cookies)).await;
    assert_eq!(
        reply.status,
        204,
        "<form method=post action=/auth/logout>: {}",
        reply.text()
    );
    issued_cookies(&reply, DEFAULTS.cleared(), "both cookies cleared");
    assert!(!gateway.session_ids("alice").await.contains(&cookies.sid()));

    let cookies = logged_in(&gateway, "alice").await;
    let reply = gateway.send(form_post("/auth/refresh", &cookies)).await;
    assert_eq!(
        reply.status,
        200,
        "<form method=post action=/auth/refresh>: {}",
        reply.text()
    );
    let refreshed = issued_cookies(&reply, DEFAULTS, "form refresh");
    assert_live_refresh_token(&gateway, &cookies.refresh, &refreshed.refresh, "form refresh").await;

    // The same form from another site is still refused.
    let other = logged_in(&gateway, "alice").await;
    let request = browser(Method::POST, "/auth/logout", EVIL, &other.both())
        .header("content-type", "application/x-www-form-urlencoded")
        .empty();
    assert_cross_site(&gateway.send(request).await, "a cross-site logout form");
}

// === 3. return_to ===

#[tokio::test]
async fn the_form_login_redirects_only_to_a_same_origin_path_and_every_open_redirect_trick_lands_on_the_root()
{
    let (gateway, _echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let tricks = [
        "//evil.com",
        "///evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "/%09/evil.com",
        "/\t/evil.com",
        "/%2f/evil.com",
        "/%2F%2Fevil.com",
        "/%5cevil.com",
        "https://evil.com",
        "https:evil.com",
        "javascript:alert(1)",
        "/x\r\nSet-Cookie: a=b",
        "/x\nLocation: https://evil.com",
        "/%0d%0aLocation:https://evil.com",
        "/\u{3002}evil.com",
        "/\u{FF0F}evil.com",
        "\u{3002}evil.com",
        "/%E3%80%82evil.com",
        "/ /evil.com",
        "",
        "evil.com",
    ];
    for trick in tricks {
        let reply = form_login(&gateway, "bob", Some(trick), OWN).await;
        assert_eq!(reply.status, 303, "{trick:?}: {}", reply.text());
        assert_eq!(
            reply.headers.get_all("location").iter().collect::<Vec<_>>(),
            ["/"],
            "return_to {trick:?}"
        );
        issued_cookies(
            &reply,
            DEFAULTS,
            &format!("{trick:?}: the login itself still succeeds"),
        );
    }
    let reply = form_login(&gateway, "bob", None, OWN).await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.header("location"), Some("/"), "no return_to");
    for kept in ["/app?x=1", "/app/page?x=1&y=%2F#top", "/"] {
        let reply = form_login(&gateway, "bob", Some(kept), OWN).await;
        assert_eq!(reply.status, 303, "{kept:?}");
        assert_eq!(reply.header("location"), Some(kept), "return_to {kept:?}");
    }
}

// === 4. cookie tossing ===

#[tokio::test]
async fn two_access_cookies_on_a_proxied_route_are_refused_with_401_and_reach_nothing() {
    let (gateway, echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let victim = logged_in(&gateway, "alice").await;
    let attacker = logged_in(&gateway, "bob").await;
    let one_header = [
        (ACCESS, attacker.access.as_str()),
        (ACCESS, victim.access.as_str()),
    ];
    let same_twice = [(ACCESS, victim.access.as_str()), (ACCESS, victim.access.as_str())];
    for (what, jar) in [
        ("an attacker's and the victim's", one_header),
        ("the same cookie twice", same_twice),
    ] {
        let reply = cookie_get(&gateway, PROTECTED, &jar).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text());
    }
    // The copies split over two Cookie headers (as HTTP/2 clients send them).
    let request = browser(Method::GET, PROTECTED, NOWHERE, &[(ACCESS, &attacker.access)])
        .header("cookie", format!("{ACCESS}={}", victim.access))
        .empty();
    let reply = gateway.send(request).await;
    assert_eq!(reply.status, 401, "two Cookie headers: {}", reply.text());
    assert_eq!(echo.counts.requests(), 0, "the upstream saw a tossed request");

    // One copy still works.
    let reply = cookie_get(&gateway, PROTECTED, &[(ACCESS, &victim.access)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.upstream_header("x-auth-sub"), ["alice"]);
}

#[tokio::test]
async fn two_cookies_under_one_name_on_the_cookie_refresh_are_refused_with_400_and_rotate_nothing() {
    let (gateway, _echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let victim = logged_in(&gateway, "alice").await;
    let attacker = logged_in(&gateway, "bob").await;
    let live = gateway.refreshed(&victim.refresh, "a JSON refresh").await.refresh;
    let retired = victim.refresh.clone();

    let tossed: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "the attacker's refresh cookie before the victim's",
            vec![(REFRESH, &attacker.refresh), (REFRESH, &live)],
        ),
        (
            "the victim's refresh cookie twice",
            vec![(REFRESH, &live), (REFRESH, &live)],
        ),
        (
            "two access cookies beside the refresh cookie",
            vec![
                (ACCESS, &attacker.access),
                (ACCESS, &victim.access),
                (REFRESH, &live),
            ],
        ),
        (
            "the victim's refresh cookie and junk",
            vec![(REFRESH, &live), (REFRESH, "x")],
        ),
    ];
    for (what, jar) in &tossed {
        let reply = browse(&gateway, Method::POST, "/auth/refresh", OWN, jar).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.text());
        assert_no_set_cookie(&reply, what);
        assert_live_refresh_token(&gateway, &retired, &live, what).await;
    }
    // The attacker's session was not rotated either.
    let reply = browse(&gateway, Method::POST, "/auth/refresh", OWN, &attacker.both()).await;
    assert_eq!(reply.status, 200, "the attacker's own refresh: {}", reply.text());
    assert_live_refresh_token(
        &gateway,
        &attacker.refresh,
        &issued_cookies(&reply, DEFAULTS, "attacker refresh").refresh,
        "the attacker's session",
    )
    .await;

    // The single cookie afterwards is a proper rotation of the same live token.
    let reply = browse(&gateway, Method::POST, "/auth/refresh", OWN, &[(REFRESH, &live)]).await;
    assert_eq!(reply.status, 200, "single-cookie refresh: {}", reply.text());
    let next = issued_cookies(&reply, DEFAULTS, "single-cookie refresh");
    assert_ne!(next.refresh, live);
    assert_eq!(next.sid(), victim.sid());
    assert_live_refresh_token(&gateway, &live, &next.refresh, "after the single-cookie refresh").await;
}

#[tokio::test]
async fn two_cookies_under_one_name_on_the_cookie_logout_are_refused_and_end_nothing() {
    let (gateway, _echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let victim = logged_in(&gateway, "alice").await;
    let attacker = logged_in(&gateway, "bob").await;
    let jar = [
        (REFRESH, attacker.refresh.as_str()),
        (REFRESH, victim.refresh.as_str()),
        (ACCESS, victim.access.as_str()),
    ];
    let reply = browse(&gateway, Method::POST, "/auth/logout", OWN, &jar).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_no_set_cookie(&reply, "a tossed logout");
    assert!(gateway.session_ids("alice").await.contains(&victim.sid()));
    assert!(gateway.session_ids("bob").await.contains(&attacker.sid()));
}

// === 5. CORS ===

#[tokio::test]
async fn an_allowed_origin_gets_cors_with_credentials_on_auth_endpoints_and_no_other_origin_does() {
    let (gateway, _echo) = api_gateway(ES256_TOKENS, COOKIES).await;
    let preflight = |origin: &'static str| {
        request(Method::OPTIONS, "/auth/login")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .empty()
    };
    let reply = gateway.send(preflight(ALLOWED_ORIGIN)).await;
    assert_eq!(reply.status, 204, "preflight: {}", reply.text());
    assert_eq!(
        reply
            .headers
            .get_all("access-control-allow-origin")
            .iter()
            .collect::<Vec<_>>(),
        [ALLOWED_ORIGIN]
    );
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"));
    let vary: Vec<String> = reply
        .headers
        .get_all("vary")
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or_default()
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
        })
        .collect();
    assert!(vary.contains(&"origin".to_string()), "Vary: {vary:?}");
    let methods = reply.header("access-control-allow-methods").unwrap_or_default();
    assert!(
        methods.contains("POST"),
        "Access-Control-Allow-Methods: {methods:?}"
    );
    // A browser app binding its tokens with DPoP sends proofs and reads the nonce.
    let headers = reply.header("access-control-allow-headers").unwrap_or_default();
    assert!(
        headers.contains("dpop"),
        "Access-Control-Allow-Headers: {headers:?}"
    );
    assert_eq!(reply.header("access-control-expose-headers"), Some("dpop-nonce"));

    for origin in [
        "https://evil.com",
        "https://app.example.com.evil.com",
        "null",
        "http://app.example.com",
    ] {
        let reply = gateway.send(preflight(origin)).await;
        assert_eq!(
            reply.header("access-control-allow-origin"),
            None,
            "preflight from {origin}"
        );
        assert_eq!(
            reply.header("access-control-allow-credentials"),
            None,
            "preflight from {origin}"
        );
    }

    // The real request from the allowed origin may be read by it.
    let reply = cookie_login(&gateway, "alice", ALLOWED).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("access-control-allow-origin"), Some(ALLOWED_ORIGIN));
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"));
    let cookies = issued_cookies(&reply, DEFAULTS, "cookie login from the allowed origin");
    let reply = browse(&gateway, Method::POST, "/auth/refresh", ALLOWED, &cookies.both()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("access-control-allow-origin"), Some(ALLOWED_ORIGIN));

    // A token-mode login from another origin works, but that origin may not read it.
    let body = json!({ "username": "bob", "password": "bob-password" });
    let login = browser(Method::POST, "/auth/login", EVIL, &[]);
    let reply = gateway.send(login.json(&body)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert_eq!(reply.header("access-control-allow-credentials"), None);
}

// === 6. login_page ===

#[tokio::test]
async fn a_browser_without_a_session_is_sent_to_the_login_page_and_an_api_client_gets_401() {
    let echo = Upstream::echo().await;
    let login = public_route("login", "/login", echo.addr);
    let settings = "auth = \"required\"\nlogin_page = \"/login\"";
    let app = config::route("app", "/", echo.addr, settings);
    let rest = format!("{login}{app}{GENEROUS_LIMITS}{COOKIES}");
    let gateway = Gateway::start(Setup::routes(rest)).await;
    let request_for = |method: Method, accept: Option<&str>| {
        let accept = accept.map(|value| ("accept", value));
        request(method, "/path?q=1").headers(accept.as_slice()).empty()
    };
    const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

    let reply = gateway.send(request_for(Method::GET, Some(BROWSER_ACCEPT))).await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/login?return_to=%2Fpath%3Fq%3D1"));

    for (what, request) in [
        (
            "an API client",
            request_for(Method::GET, Some("application/json")),
        ),
        ("no Accept", request_for(Method::GET, None)),
        ("a POST", request_for(Method::POST, Some(BROWSER_ACCEPT))),
    ] {
        let reply = gateway.send(request).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text());
        assert_eq!(reply.header("location"), None, "{what}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"portcullis\""),
            "{what}"
        );
    }
    assert_eq!(echo.counts.requests(), 0, "the upstream saw an anonymous request");

    // The login page itself is reachable, and a session passes straight through.
    let reply = gateway.get("/login").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let cookies = logged_in(&gateway, "bob").await;
    let request = browser(Method::GET, "/path?q=1", NOWHERE, &[(ACCESS, &cookies.access)])
        .header("accept", BROWSER_ACCEPT)
        .empty();
    let reply = gateway.send(request).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.upstream_header("x-auth-sub"), ["bob"]);
    assert_eq!(reply.upstream_uri(), "/path?q=1");
}

// === 7. transparent refresh ===

/// With transparent refresh the refresh cookie is sent everywhere: `Path=/`.
const AT_ROOT: Expect = Expect {
    refresh_path: "/",
    ..DEFAULTS
};
/// `AT_ROOT` with the access tokens of `short_lived_tokens`.
const TRANSPARENT: Expect = Expect {
    access_ttl: 1,
    ..AT_ROOT
};

/// `access` is alice's, in the session of `before`, issued later than it.
fn assert_fresh_access(access: &str, before: &str, what: &str) {
    let (new, old) = (claims_of(access), claims_of(before));
    assert_eq!(new["sub"], "alice", "{what}: {new}");
    assert_eq!(new["sid"], old["sid"], "{what}: {new}");
    assert_ne!(new["jti"], old["jti"], "{what}: {new}");
    let (new_exp, old_exp) = (new["exp"].as_u64(), old["exp"].as_u64());
    assert!(new_exp > old_exp, "{what}: exp {new_exp:?} after {old_exp:?}");
}

/// A gateway with 1 s access tokens (1 s leeway), a browser logged in, and the access cookie
/// expired: the one place in this file where a sleep is the point.
async fn expired_browser(cookies: &str, expect: Expect) -> (Gateway, Upstream, Cookies) {
    let (gateway, echo) = api_gateway(&short_lived_tokens("1s"), cookies).await;
    let reply = cookie_login(&gateway, "alice", OWN).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let login = issued_cookies(&reply, expect, "cookie login");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let reply = cookie_get(&gateway, "/auth/me", &[(ACCESS, &login.access)]).await;
    assert_eq!(
        reply.status,
        401,
        "the access cookie should be expired by now: {}",
        reply.text()
    );
    (gateway, echo, login)
}

/// A same-origin navigation with the given cookies.
fn navigation(cookies: &[(&str, &str)]) -> Request<Full<Bytes>> {
    browser(Method::GET, PROTECTED, NOWHERE, cookies)
        .header("accept", "text/html")
        .header("sec-fetch-site", "same-origin")
        .empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_cookie_with_a_valid_refresh_cookie_is_refreshed_transparently_in_one_lineage() {
    let (gateway, echo, login) = expired_browser(TRANSPARENT_COOKIES, TRANSPARENT).await;

    let reply = gateway.send(navigation(&login.both())).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(echo.counts.requests(), 1, "forwarded once");
    assert_eq!(reply.upstream_header("x-auth-sub"), ["alice"]);
    assert_eq!(reply.upstream_header("x-auth-role"), ["admin"]);
    assert_eq!(reply.upstream_header("x-auth-session"), [login.sid()]);
    let seen = reply.json()["headers"].to_string();
    assert!(
        !seen.contains(&login.refresh) && !seen.contains(REFRESH),
        "the refresh cookie reached the upstream: {seen}"
    );
    let second = issued_cookies(&reply, TRANSPARENT, "transparent refresh");
    assert_ne!(second.access, login.access);
    assert_ne!(second.refresh, login.refresh);
    assert_eq!(second.sid(), login.sid());
    // A fresh token (lived one second, so checked by its claims rather than by using it).
    assert_fresh_access(&second.access, &login.access, "the transparent refresh");
    assert_live_refresh_token(
        &gateway,
        &login.refresh,
        &second.refresh,
        "after the transparent refresh",
    )
    .await;

    // Eight tabs at once, each with the expired access cookie and the same refresh cookie.
    const N: usize = 8;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::new();
    for _ in 0..N {
        let mut sender = gateway.h1().await;
        let request = navigation(&[(ACCESS, &login.access), (REFRESH, &second.refresh)]);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            Reply::read(within(sender.send_request(request)).await.expect("response")).await
        }));
    }
    let mut refreshes = BTreeSet::new();
    for (n, task) in tasks.into_iter().enumerate() {
        let reply = within(task).await.expect("task");
        let what = format!("concurrent navigation {n}");
        assert_eq!(reply.status, 200, "{what}: {}", reply.text());
        assert_eq!(reply.upstream_header("x-auth-session"), [login.sid()], "{what}");
        let cookies = issued_cookies(&reply, TRANSPARENT, &what);
        assert_eq!(cookies.sid(), login.sid(), "{what}");
        refreshes.insert(cookies.refresh);
    }
    assert_eq!(echo.counts.requests(), 1 + N, "each forwarded exactly once");
    assert_eq!(
        refreshes.len(),
        1,
        "the concurrent refreshes forked the lineage: {refreshes:?}"
    );
    let third = refreshes.pop_first().expect("one refresh cookie");
    assert_ne!(third, second.refresh);
    assert_live_refresh_token(
        &gateway,
        &second.refresh,
        &third,
        "after the concurrent navigations",
    )
    .await;

    // The session survived (no reuse detection): the kept cookie refreshes.
    let reply = browse(&gateway, Method::POST, "/auth/refresh", OWN, &[(REFRESH, &third)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let fourth = issued_cookies(&reply, TRANSPARENT, "refresh after the concurrent navigations");
    assert_fresh_access(&fourth.access, &login.access, "the refresh after the navigations");
    assert!(gateway.session_ids("alice").await.contains(&login.sid()));

    // The logout clears the refresh cookie where it was set: Path=/.
    let reply = browse(&gateway, Method::POST, "/auth/logout", OWN, &fourth.both()).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    issued_cookies(&reply, TRANSPARENT.cleared(), "a logout with transparent refresh");
    assert!(!gateway.session_ids("alice").await.contains(&login.sid()));
}

/// What a real browser sends once the access cookie's Max-Age has run out: the refresh cookie
/// alone (headless Chromium shows the same in tests/e2e_browser.rs).
#[tokio::test]
async fn a_navigation_with_only_the_refresh_cookie_is_refreshed_transparently() {
    let (gateway, echo, login) = expired_browser(TRANSPARENT_COOKIES, TRANSPARENT).await;
    let reply = gateway.send(navigation(&[(REFRESH, &login.refresh)])).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(echo.counts.requests(), 1, "forwarded once");
    assert_eq!(reply.upstream_header("x-auth-sub"), ["alice"]);
    assert_eq!(reply.upstream_header("x-auth-session"), [login.sid()]);
    let second = issued_cookies(&reply, TRANSPARENT, "refresh-cookie-only navigation");
    assert_eq!(second.sid(), login.sid());
    assert_fresh_access(
        &second.access,
        &login.access,
        "the refresh-cookie-only navigation",
    );
    assert_live_refresh_token(&gateway, &login.refresh, &second.refresh, "after it").await;

    // No cookie at all is still a plain 401.
    let reply = gateway.send(navigation(&[])).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_no_set_cookie(&reply, "a navigation without cookies");
}

/// The transparent refresh and `POST /auth/refresh` are one rotation service: the same
/// `refresh_per_session` limit holds for both.
#[tokio::test]
async fn a_transparent_refresh_past_the_session_refresh_limit_is_429_and_rotates_nothing() {
    let echo = Upstream::echo().await;
    let api = config::route("api", "/api/", echo.addr, "");
    let rest = format!("{api}[limits]\nrefresh_per_session = \"1/min\"\n{TRANSPARENT_COOKIES}");
    let gateway = Gateway::start(Setup::routes(rest)).await;
    let login = cookie_login(&gateway, "alice", OWN).await;
    let login = issued_cookies(&login, AT_ROOT, "login");

    let first = gateway.send(navigation(&[(REFRESH, &login.refresh)])).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let second = issued_cookies(&first, AT_ROOT, "first");

    let over = gateway.send(navigation(&[(REFRESH, &second.refresh)])).await;
    assert_eq!(over.status, 429, "{}", over.text());
    assert!(over.header("retry-after").is_some(), "429 without Retry-After");
    assert_no_set_cookie(&over, "a transparent refresh over the limit");
    assert_eq!(
        echo.counts.requests(),
        1,
        "the limited request reached the upstream"
    );
    let metrics = gateway.admin(Method::GET, "/metrics").await.text();
    for series in [
        "portcullis_refreshes_total{result=\"ok\"} 1",
        "portcullis_refreshes_total{result=\"rate_limited\"} 1",
    ] {
        assert!(metrics.contains(series), "no {series} in:\n{metrics}");
    }
}

#[tokio::test]
async fn a_cross_site_request_or_an_unsafe_method_never_triggers_a_transparent_refresh() {
    let (gateway, echo, login) = expired_browser(TRANSPARENT_COOKIES, TRANSPARENT).await;
    // A retired token to prove that nothing rotated.
    let live = gateway.refreshed(&login.refresh, "a JSON refresh").await.refresh;
    let jar = [(ACCESS, login.access.as_str()), (REFRESH, live.as_str())];
    // What a browser sends once the access cookie has gone: the same rules hold.
    let refresh_only = [(REFRESH, live.as_str())];

    let cross_site = |jar: &[(&str, &str)]| {
        browser(Method::GET, PROTECTED, NOWHERE, jar)
            .header("accept", "text/html")
            .header("sec-fetch-site", "cross-site")
            .empty()
    };
    let post = |jar: &[(&str, &str)]| browser(Method::POST, PROTECTED, OWN, jar).with_body("x=1");
    let tossed = navigation(&[
        (ACCESS, &login.access),
        (REFRESH, &login.refresh),
        (REFRESH, &live),
    ]);
    let tossed_alone = navigation(&[(REFRESH, &login.refresh), (REFRESH, &live)]);
    for (what, request) in [
        ("a cross-site GET", cross_site(&jar)),
        ("a same-origin POST", post(&jar)),
        ("a GET with two refresh cookies", tossed),
        (
            "a cross-site GET with the refresh cookie alone",
            cross_site(&refresh_only),
        ),
        (
            "a same-origin POST with the refresh cookie alone",
            post(&refresh_only),
        ),
        ("a GET with two refresh cookies alone", tossed_alone),
    ] {
        let reply = gateway.send(request).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text());
        assert_no_set_cookie(&reply, what);
        assert_live_refresh_token(&gateway, &login.refresh, &live, what).await;
    }
    assert_eq!(echo.counts.requests(), 0, "the upstream saw a request");
}

#[tokio::test]
async fn without_transparent_refresh_an_expired_access_cookie_is_401_and_rotates_nothing() {
    let expect = Expect {
        access_ttl: 1,
        ..DEFAULTS
    };
    let (gateway, echo, login) = expired_browser(COOKIES, expect).await;
    // A retired token to prove that nothing rotated.
    let live = gateway.refreshed(&login.refresh, "a JSON refresh").await.refresh;

    let reply = gateway
        .send(navigation(&[(ACCESS, &login.access), (REFRESH, &live)]))
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "WWW-Authenticate {challenge:?}"
    );
    assert_no_set_cookie(&reply, "an expired cookie without transparent refresh");
    assert_eq!(echo.counts.requests(), 0);
    assert_live_refresh_token(&gateway, &login.refresh, &live, "after the expired navigation").await;
}
