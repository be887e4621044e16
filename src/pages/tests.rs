//! Every page renders, escapes what it is given, and takes `[ui]`'s replacements.

use super::*;

fn ui(title: &str) -> UiConfig {
    UiConfig {
        title: title.into(),
        logo_file: None,
        template_dir: None,
    }
}

#[test]
fn every_page_renders_and_escapes_what_it_is_given() {
    let pages = Pages::load(&ui("Acme <Corp>")).expect("the built-in pages load");
    let page = pages.login(std::iter::empty(), "/a?b=\"><script>", false, Some("<wrong>"));
    assert!(
        page.contains("name=\"username\"") && page.contains("name=\"password\""),
        "{page}"
    );
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("&lt;wrong&gt;") && page.contains("Acme &lt;Corp&gt;"),
        "{page}"
    );
    let page = pages.continue_to("/app?a=1&b=\"");
    assert!(
        page.contains("content=\"0;url=") && !page.contains("b=\""),
        "{page}"
    );
    let second = SecondFactorPage {
        mfa_token: "tok\"en",
        return_to: "/",
        code: true,
        passkeys: true,
        problem: Some("wrong <code>"),
    };
    let page = pages.second_factor(&second);
    assert!(page.contains("data-passkey=\"second-factor\""), "{page}");
    assert!(page.contains("wrong &lt;code&gt;"), "{page}");
    assert!(
        page.contains("name=\"code\"") && page.contains("tok&quot;en"),
        "{page}"
    );
    let step_up_page = StepUpPage {
        sub: "<alice>",
        return_to: "/x",
        code: true,
        passkeys: false,
        reason: "why",
        blocked: None,
    };
    let page = pages.step_up(&step_up_page);
    assert!(
        page.contains("name=\"password\"") && page.contains("name=\"code\""),
        "{page}"
    );
    assert!(
        page.contains("&lt;alice&gt;") && !page.contains("<alice>"),
        "{page}"
    );
    let listed = [ListedPasskey {
        id: "a\"b".into(),
        name: "<my key>".into(),
    }];
    let page = pages.factors("alice", Some(false), Some(&listed));
    assert!(
        page.contains("data-totp=\"enroll\"") && page.contains("&lt;my key&gt;"),
        "{page}"
    );
    assert!(!page.contains("<my key>"), "{page}");
    let page = pages.error(403, "oidc_failed", "<b>no</b>");
    assert!(
        page.contains("403") && page.contains("&lt;b&gt;no") && !page.contains("<b>"),
        "{page}"
    );
}

#[test]
fn a_template_dir_replaces_pages_by_name_and_refuses_unknown_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    let login = "{% extends \"layout.html\" %}{% block main %}<p>Welcome to {{ brand }}</p>{% endblock %}";
    std::fs::write(dir.path().join("login.html"), login).expect("write");
    let logo = dir.path().join("logo.svg");
    std::fs::write(&logo, "<svg xmlns=\"http://www.w3.org/2000/svg\"/>").expect("write");
    let config = UiConfig {
        template_dir: Some(dir.path().to_path_buf()),
        logo_file: Some(logo),
        ..ui("Acme")
    };
    let pages = Pages::load(&config).expect("loads");
    let page = pages.login(std::iter::empty(), "/", false, None);
    assert!(page.contains("<p>Welcome to Acme</p>"), "{page}");
    assert!(page.contains("<img src=\"/auth/logo\" alt=\"Acme\">"), "{page}");
    assert_eq!(pages.logo().map(|l| l.content_type), Some("image/svg+xml"));
    // The others stay built in.
    assert!(pages.error(404, "not_found", "x").contains("404"));
    std::fs::write(dir.path().join("logn.html"), "typo").expect("write");
    let error = Pages::load(&config).err().expect("an unknown name");
    assert!(error.contains("logn.html: no page has this name"), "{error}");
    std::fs::remove_file(dir.path().join("logn.html")).expect("remove");
    std::fs::write(dir.path().join("login.html"), "{% if %}").expect("write");
    let error = Pages::load(&config).err().expect("a syntax error");
    assert!(error.contains("login.html"), "{error}");
}

#[test]
fn the_account_page_lists_sessions_and_marks_this_one() {
    let pages = Pages::load(&ui("Portcullis")).expect("loads");
    let session = |id: &str, current| ListedSession {
        id: id.into(),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0".into()),
        ip: "192.0.2.7".into(),
        idp: "local".into(),
        created_at: 1_796_500_000,
        last_used_at: 1_796_500_060,
        current,
    };
    let sessions = [session("s1", true), session("s<2>", false)];
    let names = ["key <1>".to_string()];
    let page = pages.account(&AccountPage {
        sub: "alice",
        sessions: &sessions,
        totp: Some(true),
        passkeys: Some(&names),
        notice: None,
    });
    assert_eq!(page.matches("Firefox on Linux").count(), 3, "{page}");
    assert!(
        page.contains("aria-current=\"true\"") && page.contains("(this device)"),
        "{page}"
    );
    assert!(
        page.contains("value=\"s&lt;2&gt;\"") && page.contains("key &lt;1&gt;"),
        "{page}"
    );
    assert!(
        page.contains("2026-12-05 19:46 UTC") && page.contains("password"),
        "{page}"
    );
}
