//! What people see (SPEC 15): the account page (sessions, signing one out, this one, all;
//! the same-origin rule on its forms), the login form's error messages, and `[ui]` branding
//! (title, logo, templates). Browser-level: tests/e2e_browser.rs.

mod support;

use http::{Method, StatusCode};
use support::browser::{Cookies, OWN, browse, browser, logged_in};
use support::config::refused_by_check;
use support::{ACCESS_COOKIE, GENEROUS_LIMITS, Gateway, Reply, RequestExt, Setup, request};

const HTML: &[(&str, &str)] = &[("accept", "text/html")];

async fn gateway(rest: &str) -> Gateway {
    Gateway::start(Setup::routes(rest)).await
}

async fn account_page(gateway: &Gateway, cookies: &Cookies) -> Reply {
    let page = browser(Method::GET, "/auth/account", &[], &cookies.both()).headers(HTML);
    gateway.send(page.empty()).await
}

/// A form post of the account page, from `site`, as `cookies`.
async fn post_form(
    gateway: &Gateway,
    path: &str,
    site: support::browser::Site,
    cookies: &Cookies,
    form: &str,
) -> Reply {
    let post = browser(Method::POST, path, site, &cookies.both())
        .header("content-type", "application/x-www-form-urlencoded");
    gateway.send(post.with_body(form.to_string())).await
}

async fn signed_in(gateway: &Gateway, cookies: &Cookies) -> bool {
    let me = request(Method::GET, "/auth/me").cookies(&[(ACCESS_COOKIE, &cookies.access)]);
    gateway.send(me.empty()).await.status == StatusCode::OK
}

#[tokio::test]
async fn the_account_page_lists_every_session_and_signs_out_another_one() {
    let gateway = gateway(GENEROUS_LIMITS).await;
    let (here, there) = (
        logged_in(&gateway, "alice").await,
        logged_in(&gateway, "alice").await,
    );
    let bob = logged_in(&gateway, "bob").await;
    let page = account_page(&gateway, &here).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    assert!(
        html.contains(&format!("value=\"{}\"", there.sid())),
        "the other session has a form"
    );
    assert!(
        !html.contains(&format!("value=\"{}\"", here.sid())),
        "this one is signed out otherwise"
    );
    assert_eq!(html.matches("(this device)").count(), 1, "{html}");
    assert!(!html.contains(&bob.sid()), "only alice's sessions");

    // From another site, nothing happens; another user's session id changes nothing either.
    let evil: support::browser::Site = &[("origin", "https://evil.example")];
    let forged = post_form(
        &gateway,
        "/auth/account/revoke",
        evil,
        &here,
        &format!("sid={}", there.sid()),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let others = post_form(
        &gateway,
        "/auth/account/revoke",
        OWN,
        &here,
        &format!("sid={}", bob.sid()),
    )
    .await;
    assert_eq!(others.status, StatusCode::SEE_OTHER);
    assert!(signed_in(&gateway, &there).await && signed_in(&gateway, &bob).await);

    let revoked = post_form(
        &gateway,
        "/auth/account/revoke",
        OWN,
        &here,
        &format!("sid={}", there.sid()),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(revoked.header("location"), Some("/auth/account?done=revoked"));
    assert!(
        !signed_in(&gateway, &there).await,
        "the other device is signed out"
    );
    assert!(signed_in(&gateway, &here).await, "this one is not");
    let back = browser(Method::GET, "/auth/account?done=revoked", &[], &here.both()).headers(HTML);
    let page = gateway.send(back.empty()).await.text();
    assert!(
        page.contains("That device is signed out.") && !page.contains(&there.sid()),
        "{page}"
    );
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session_and_clears_the_cookies() {
    let gateway = gateway(GENEROUS_LIMITS).await;
    let (here, there) = (
        logged_in(&gateway, "alice").await,
        logged_in(&gateway, "alice").await,
    );
    let reply = post_form(&gateway, "/auth/account/logout-all", OWN, &here, "").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(
        reply.header("location"),
        Some("/auth/login?return_to=%2Fauth%2Faccount")
    );
    let cleared = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter(|c| c.to_str().unwrap_or("").contains("Max-Age=0"));
    assert_eq!(cleared.count(), 2, "both cookies cleared");
    assert!(!signed_in(&gateway, &here).await && !signed_in(&gateway, &there).await);
    // This device alone.
    let (here, there) = (
        logged_in(&gateway, "alice").await,
        logged_in(&gateway, "alice").await,
    );
    assert_eq!(
        post_form(&gateway, "/auth/account/logout", OWN, &here, "")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert!(!signed_in(&gateway, &here).await && signed_in(&gateway, &there).await);
}

#[tokio::test]
async fn without_a_session_the_account_page_sends_the_browser_to_log_in_first() {
    let gateway = gateway("").await;
    let reply = browse(&gateway, Method::GET, "/auth/account", &[], &[]).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(
        reply.header("location"),
        Some("/auth/login?return_to=%2Fauth%2Faccount")
    );
}

/// The HTML login form's answer to `username`/`password`.
async fn form_login(gateway: &Gateway, username: &str, password: &str) -> Reply {
    let form = format!("username={username}&password={password}&return_to=%2Fapp");
    let post = browser(Method::POST, "/auth/login", OWN, &[])
        .header("content-type", "application/x-www-form-urlencoded");
    gateway.send(post.with_body(form)).await
}

#[tokio::test]
async fn the_login_form_says_what_went_wrong_without_saying_which_field() {
    let limits = "[limits]\nlogin_per_ip = \"100/min\"\nlogin_per_user = \"1/min\"\n";
    let gateway = gateway(limits).await;
    let wrong_password = form_login(&gateway, "alice", "nope").await;
    let no_such_user = form_login(&gateway, "mallory", "nope").await;
    for reply in [&wrong_password, &no_such_user] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html"))
        );
        let page = reply.text();
        assert!(page.contains("The username or password is not right."), "{page}");
        // minijinja escapes `/` too.
        assert!(
            page.contains("name=\"return_to\" value=\"&#x2f;app\""),
            "the form keeps where to go: {page}"
        );
    }
    assert_eq!(
        wrong_password.text(),
        no_such_user.text(),
        "the two failures are told apart"
    );
    let limited = form_login(&gateway, "alice", "nope").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.retry_after().is_some_and(|s| s >= 1));
    assert!(limited.text().contains("Too many attempts"), "{}", limited.text());
}

#[tokio::test]
async fn ui_names_the_gateway_shows_its_logo_and_replaces_templates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let png = b"\x89PNG\r\n\x1a\nnot really";
    std::fs::write(dir.path().join("logo.png"), png).expect("logo");
    std::fs::create_dir(dir.path().join("pages")).expect("dir");
    let login = "{% extends \"layout.html\" %}{% block main %}<p class=\"ours\">Welcome to {{ brand }}</p>{% endblock %}";
    std::fs::write(dir.path().join("pages/login.html"), login).expect("template");
    let ui = format!(
        "[ui]\ntitle = \"Acme Intranet\"\nlogo_file = {:?}\ntemplate_dir = {:?}\n",
        dir.path().join("logo.png"),
        dir.path().join("pages")
    );
    let gateway = gateway(&ui).await;
    let login = browse(&gateway, Method::GET, "/auth/login", &[], &[])
        .await
        .text();
    assert!(
        login.contains("<title>Sign in · Acme Intranet</title>"),
        "{login}"
    );
    assert!(
        login.contains("<p class=\"ours\">Welcome to Acme Intranet</p>"),
        "{login}"
    );
    assert!(
        login.contains("<img src=\"/auth/logo\" alt=\"Acme Intranet\">"),
        "{login}"
    );
    let logo = browse(&gateway, Method::GET, "/auth/logo", &[], &[]).await;
    assert_eq!(
        (logo.status, logo.header("content-type")),
        (StatusCode::OK, Some("image/png"))
    );
    assert_eq!(&logo.body[..], png);
    assert!(
        logo.header("content-security-policy")
            .is_some_and(|csp| csp.contains("sandbox"))
    );
    // The other pages stay built in, with the name and the logo.
    let account = browse(&gateway, Method::GET, "/auth/account", &[], &[]).await;
    assert_eq!(account.status, StatusCode::FOUND);
}

#[test]
fn check_refuses_a_logo_it_cannot_show_and_a_missing_template_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("logo.bmp"), "BM").expect("logo");
    for (ui, message) in [
        (
            "logo_file = \"logo.bmp\"",
            "logo_file must be .png, .svg, .jpg, .jpeg, .webp or .gif",
        ),
        ("logo_file = \"gone.png\"", "gone.png does not exist"),
        ("template_dir = \"nowhere\"", "nowhere is not a folder"),
    ] {
        let (_, stderr) = refused_by_check(dir.path(), &format!("[ui]\n{ui}\n"));
        assert!(stderr.contains(message), "{ui}: {stderr}");
    }
    // A replaced template that does not parse is found by check too, not only at start.
    std::fs::create_dir(dir.path().join("broken")).expect("dir");
    std::fs::write(dir.path().join("broken/login.html"), "{% if %}").expect("template");
    let (_, stderr) = refused_by_check(dir.path(), "[ui]\ntemplate_dir = \"broken\"\n");
    assert!(
        stderr.contains("[ui]: ") && stderr.contains("broken/login.html"),
        "{stderr}"
    );
}
