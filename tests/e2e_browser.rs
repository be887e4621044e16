//! End to end in headless Chromium (SPEC 1 "Browsers", 4, 6, 10): log in through the shipped
//! demo form, see that `document.cookie` holds no token, call the protected API from the demo
//! app page, let the access token expire and see the session go on through `/auth/refresh`, log
//! out, and see the API refuse; sign in through a real OpenID provider's pages; passkeys; and
//! the account page signing out another browser (SPEC 15), with screenshots of the pages.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test fails under `CI`, and elsewhere prints that it skips and passes.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use support::binary::{free_port, which};
use support::browser::short_lived_tokens;
use support::oidc::{Options, Planned};
use support::{ACCESS_COOKIE, Gateway, Setup, config, echo_header, eventually, public_route, skip_without};

/// The whole test, browser start and the one deliberate sleep included.
const WHOLE_TEST: Duration = Duration::from_secs(50);
/// Any single wait: chromedriver ready, a page, a script, a text on the page.
const STEP: Duration = Duration::from_secs(10);
/// Access tokens live 2 s with 1 s of leeway: after this they are refused for sure.
const ACCESS_EXPIRY: Duration = Duration::from_millis(3500);

/// Flags this machine needs (closed network, no GPU, root), plus a self-signed gateway
/// certificate that the browser must accept.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--ignore-certificate-errors",
    "--window-size=900,1000",
];

#[tokio::test]
async fn a_browser_session_logs_in_refreshes_and_logs_out() {
    in_browser("", None, async |client, origin| {
        // A browser navigating to the protected API is sent to the login page; the plain HTML
        // form logs in and answers 303 back to /api/hello with HttpOnly cookies.
        log_in_through_the_form(client, origin).await;
        let landed = page_json(client).await;
        assert_eq!(echo_header(&landed, "x-auth-sub"), ["alice"], "{landed}");

        // The app page: the browser holds the access cookie, HttpOnly, and scripts see no token.
        client
            .goto(&format!("{origin}/demo/app.html"))
            .await
            .expect("open the app page");
        let access = client
            .get_named_cookie(ACCESS_COOKIE)
            .await
            .expect("the browser holds the access cookie");
        assert_eq!(
            access.http_only(),
            Some(true),
            "the access cookie is not HttpOnly"
        );
        assert_eq!(access.secure(), Some(true), "the access cookie is not Secure");
        assert_no_token_in_document_cookie(client).await;

        let first = call_api(client, 200).await;
        assert_eq!(echo_header(&first, "x-auth-sub"), ["alice"], "{first}");
        let session = echo_header(&first, "x-auth-session");
        assert_eq!(session.len(), 1, "{first}");

        // The one deliberate sleep: let the access token expire (2 s + 1 s leeway).
        tokio::time::sleep(ACCESS_EXPIRY).await;
        let fetch = "fetch('/api/hello', { credentials: 'same-origin' })\
                     .then(r => done(r.status), e => done(String(e)));";
        let status = execute_async(client, fetch).await;
        assert_eq!(status, json!(401), "the access token should have expired by now");

        // The page refreshes through /auth/refresh and retries: the same session goes on.
        let second = call_api(client, 200).await;
        assert_eq!(echo_header(&second, "x-auth-sub"), ["alice"], "{second}");
        assert_eq!(
            echo_header(&second, "x-auth-session"),
            session,
            "a new session instead of the old one"
        );
        assert_no_token_in_document_cookie(client).await;

        // Log out with the page's button.
        click(client, "#logout").await;
        let shown = eventually(STEP, async || {
            let text = text_of(client, "#status").await;
            let done = text.starts_with("logged out");
            done.then(|| text.clone())
                .ok_or(format!("#status still shows {text:?}"))
        })
        .await;
        assert_eq!(shown, "logged out (204)");

        // The API refuses, and keeps refusing: the refresh cookie is gone too.
        for _ in 0..2 {
            let result = call_api(client, 401).await;
            assert!(result["error"].is_string(), "{result}");
        }
        assert_no_token_in_document_cookie(client).await;
    })
    .await;
}

/// With transparent refresh on, the browser itself drops the expired access cookie and sends
/// only the refresh cookie; a navigation must still reach the API in the same session.
#[tokio::test]
async fn a_browser_navigating_after_its_access_cookie_expired_is_refreshed_transparently() {
    in_browser(
        "[cookies]\ntransparent_refresh = true\n",
        None,
        async |client, origin| {
            log_in_through_the_form(client, origin).await;
            let landed = page_json(client).await;
            let session = echo_header(&landed, "x-auth-session");
            assert_eq!(session.len(), 1, "{landed}");

            // The one deliberate sleep: the access cookie's Max-Age (2 s) runs out in the browser.
            tokio::time::sleep(ACCESS_EXPIRY).await;
            let held = client.get_named_cookie(ACCESS_COOKIE).await;
            assert!(
                held.is_err(),
                "the browser still holds the access cookie: {held:?}"
            );

            client
                .goto(&format!("{origin}/api/again"))
                .await
                .expect("open /api/again");
            let url = client.current_url().await.expect("url");
            assert_eq!(url.path(), "/api/again", "sent elsewhere: {url}");
            let again = page_json(client).await;
            assert_eq!(echo_header(&again, "x-auth-sub"), ["alice"], "{again}");
            assert_eq!(echo_header(&again, "x-auth-session"), session, "a new session");
            let renewed = client
                .get_named_cookie(ACCESS_COOKIE)
                .await
                .expect("the refresh handed the browser a new access cookie");
            assert_eq!(renewed.http_only(), Some(true));
            assert_no_token_in_document_cookie(client).await;
        },
    )
    .await;
}

/// Single sign-on (SPEC 10) as a person does it: the protected page sends the browser to the
/// gateway's login page, whose button goes to the provider (a real one, `oidc-provider`); the
/// person signs in and consents there, and lands back on the page with a session that the app
/// page's script can use, without ever seeing a token.
#[tokio::test]
async fn a_browser_signs_in_through_the_providers_pages_and_uses_the_api() {
    let Some(planned) = Planned::new() else {
        return;
    };
    in_browser("", Some(planned), async |client, origin| {
        client
            .goto(&format!("{origin}/api/hello"))
            .await
            .expect("open /api/hello");
        let url = client.current_url().await.expect("url");
        assert_eq!(
            (url.path(), url.query()),
            ("/auth/login", Some("return_to=%2Fapi%2Fhello"))
        );
        assert_eq!(text_of(client, "a.provider").await, "Corp SSO");
        click(client, "a.provider").await;
        // The provider's own pages: sign in, then consent.
        wait_for_heading(client, "Sign-in").await;
        fill(client, "input[name=login]", "alice").await;
        fill(client, "input[name=password]", "unused").await;
        click(client, "button[type=submit]").await;
        wait_for_heading(client, "Authorize").await;
        click(client, "button[type=submit]").await;
        wait_for_path(client, "/api/hello").await;
        let landed = page_json(client).await;
        assert_eq!(echo_header(&landed, "x-auth-sub"), ["corp:alice"], "{landed}");
        assert_eq!(echo_header(&landed, "x-auth-role"), ["admin"], "{landed}");

        client
            .goto(&format!("{origin}/demo/app.html"))
            .await
            .expect("open the app page");
        let called = call_api(client, 200).await;
        assert_eq!(echo_header(&called, "x-auth-sub"), ["corp:alice"], "{called}");
        assert_no_token_in_document_cookie(client).await;
    })
    .await;
}

/// Passkeys (SPEC 13) in a real browser with Chromium's virtual authenticator (a CTAP2
/// platform authenticator that verifies its user): a password session registers a passkey on
/// the second-factor page, steps up with it when a rule asks for a second factor, and after
/// logging out signs in with the passkey alone.
#[tokio::test]
async fn a_browser_registers_a_passkey_steps_up_with_it_and_signs_in_with_it_alone() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let run = async {
        let echo = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let rules = "[[routes.rules]]\neffect = \"allow\"\nmfa = true\n";
        let routes = [
            config::route("api", "/api/", echo, "login_page = \"/auth/login\""),
            format!(
                "{}{rules}",
                config::route("secure", "/secure/", echo, "login_page = \"/auth/login\"")
            ),
        ];
        let rest = format!(
            "[demo]\necho_listen = \"{echo}\"\n[webauthn]\nrp_id = \"localhost\"\n[headers]\namr = \"X-Auth-Amr\"\n{}",
            routes.concat()
        );
        let gateway = Gateway::start(Setup::routes(rest)).await;
        let origin = format!("https://localhost:{}", gateway.addr.port());
        let (_browser, client) = Browser::start(chromium, chromedriver).await;
        client
            .issue_cmd(VirtualAuthenticator)
            .await
            .expect("a virtual authenticator");
        passkey_scenario(&client, &origin).await;
        client.close().await.expect("end the WebDriver session");
    };
    let ran = tokio::time::timeout(WHOLE_TEST, run).await;
    ran.unwrap_or_else(|_| panic!("the browser test took more than {WHOLE_TEST:?}"));
}

async fn passkey_scenario(client: &Client, origin: &str) {
    // A password login on the gateway's own page.
    client
        .goto(&format!("{origin}/api/hello"))
        .await
        .expect("open /api/hello");
    fill(client, "#username", "alice").await;
    fill(client, "#password", "alice-password").await;
    click(client, "button[type=submit]").await;
    wait_for_path(client, "/api/hello").await;
    assert_eq!(echo_header(&page_json(client).await, "x-auth-amr"), ["pwd"]);

    // Register a passkey on the second-factor page.
    client
        .goto(&format!("{origin}/auth/mfa"))
        .await
        .expect("open /auth/mfa");
    click(client, "#add-passkey").await;
    let listed = client
        .wait()
        .at_most(STEP)
        .for_element(Locator::Css("#passkey-list li"))
        .await;
    let listed = listed.unwrap_or_else(|e| panic!("no passkey listed: {e}"));
    assert!(listed.text().await.expect("text").starts_with("Passkey"));

    // A rule asks for a second factor: the step-up page, then the passkey, then the page.
    client
        .goto(&format!("{origin}/secure/report"))
        .await
        .expect("open /secure/report");
    wait_for_path(client, "/auth/step-up").await;
    click(client, "button[data-passkey=step-up]").await;
    wait_for_path(client, "/secure/report").await;
    let report = page_json(client).await;
    assert_eq!(echo_header(&report, "x-auth-amr"), ["hwk"], "{report}");
    let session = echo_header(&report, "x-auth-session");

    // Log out; then the passkey alone signs in, to a new session.
    let logout = "fetch('/auth/logout', { method: 'POST' }).then(r => done(r.status), e => done(String(e)));";
    assert_eq!(execute_async(client, logout).await, json!(204));
    client
        .goto(&format!("{origin}/api/hello"))
        .await
        .expect("open /api/hello");
    wait_for_path(client, "/auth/login").await;
    click(client, "button[data-passkey=login]").await;
    wait_for_path(client, "/api/hello").await;
    let landed = page_json(client).await;
    assert_eq!(echo_header(&landed, "x-auth-sub"), ["alice"], "{landed}");
    assert_eq!(echo_header(&landed, "x-auth-amr"), ["hwk"], "{landed}");
    assert_ne!(echo_header(&landed, "x-auth-session"), session);
}

/// WebDriver's `Add Virtual Authenticator` (WebAuthn §11.3): a CTAP2 platform authenticator
/// with resident keys that verifies its user and consents by itself.
#[derive(Debug)]
struct VirtualAuthenticator;

impl fantoccini::wd::WebDriverCompatibleCommand for VirtualAuthenticator {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/webauthn/authenticator",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let options = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        (http::Method::POST, Some(options.to_string()))
    }
}

/// SPEC 15 in two real browsers (two Chromium profiles, so two sessions of one user): the
/// account page of one lists both and signs the other out, whose next page load goes to the
/// login page. Screenshots of the login and account pages go to `target/screenshots/`, and
/// also to `$PORTCULLIS_SCREENSHOTS` when set (the README's come from `docs/screenshots`).
#[tokio::test]
async fn the_account_page_signs_out_another_browser() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let run = async {
        let echo = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let api = config::route("api", "/api/", echo, "login_page = \"/auth/login\"");
        let rest = format!("[demo]\necho_listen = \"{echo}\"\n[ui]\ntitle = \"Acme Intranet\"\n{api}");
        let gateway = Gateway::start(Setup::routes(rest)).await;
        let origin = format!("https://localhost:{}", gateway.addr.port());
        let (_here_browser, here) = Browser::start(chromium.clone(), chromedriver.clone()).await;
        let (_there_browser, there) = Browser::start(chromium, chromedriver).await;
        sign_in_on_the_login_page(&here, &origin, true).await;
        sign_in_on_the_login_page(&there, &origin, false).await;
        here.goto(&format!("{origin}/auth/account"))
            .await
            .expect("open the account page");
        wait_for_heading(&here, "Your account").await;
        let sessions = here
            .find_all(Locator::Css(".sessions > li"))
            .await
            .expect("sessions");
        assert_eq!(sessions.len(), 2, "both browsers' sessions are listed");
        let current = here
            .find_all(Locator::Css(".sessions > li[aria-current]"))
            .await
            .expect("current");
        assert_eq!(current.len(), 1, "exactly one is this browser's");
        screenshot(&here, "account.png").await;
        click(&here, ".sessions > li:not([aria-current]) form button").await;
        wait_for_path(&here, "/auth/account").await;
        assert!(
            text_of(&here, "main")
                .await
                .contains("That device is signed out.")
        );
        assert_eq!(
            here.find_all(Locator::Css(".sessions > li"))
                .await
                .expect("sessions")
                .len(),
            1
        );
        // The other browser's next page load asks it to sign in again.
        there
            .goto(&format!("{origin}/api/hello"))
            .await
            .expect("open /api/hello");
        wait_for_path(&there, "/auth/login").await;
        here.goto(&format!("{origin}/api/hello"))
            .await
            .expect("open /api/hello");
        wait_for_path(&here, "/api/hello").await;
        for client in [here, there] {
            client.close().await.expect("end the WebDriver session");
        }
    };
    let ran = tokio::time::timeout(WHOLE_TEST, run).await;
    ran.unwrap_or_else(|_| panic!("the browser test took more than {WHOLE_TEST:?}"));
}

/// From a protected page to the gateway's own login page and back, as alice; `capture`: a
/// screenshot of the login page first.
async fn sign_in_on_the_login_page(client: &Client, origin: &str, capture: bool) {
    client
        .goto(&format!("{origin}/api/hello"))
        .await
        .expect("open /api/hello");
    wait_for_path(client, "/auth/login").await;
    if capture {
        screenshot(client, "login.png").await;
    }
    fill(client, "#username", "alice").await;
    fill(client, "#password", "alice-password").await;
    click(client, "form button[type=submit]").await;
    wait_for_path(client, "/api/hello").await;
}

/// Saves the page as `name` under target/screenshots and `$PORTCULLIS_SCREENSHOTS`.
async fn screenshot(client: &Client, name: &str) {
    let png = client
        .screenshot()
        .await
        .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
    let mut dirs = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")];
    dirs.extend(std::env::var_os("PORTCULLIS_SCREENSHOTS").map(PathBuf::from));
    for dir in dirs {
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(dir.join(name), &png).expect("write the screenshot");
    }
}

/// Runs one browser scenario within `WHOLE_TEST` against a fresh demo gateway (see
/// `demo_gateway`) and, if given, a provider; or skips it without the browser. The scenario
/// gets the WebDriver client and the gateway's origin.
async fn in_browser(cookies: &str, provider: Option<Planned>, scenario: impl AsyncFnOnce(&Client, &str)) {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let started = Instant::now();
    let run = async {
        let (gateway, origin) = demo_gateway(cookies, provider.as_ref()).await;
        let _provider = match provider {
            Some(planned) => Some(planned.start(&gateway, Options::default()).await),
            None => None,
        };
        let (_browser, client) = Browser::start(chromium, chromedriver).await;
        scenario(&client, &origin).await;
        client.close().await.expect("end the WebDriver session");
    };
    let ran = tokio::time::timeout(WHOLE_TEST, run).await;
    ran.unwrap_or_else(|_| panic!("the browser test took more than {WHOLE_TEST:?}"));
    eprintln!("e2e browser test took {:?}", started.elapsed());
}

/// Chromium and chromedriver (the first of their names on `PATH` or in /usr/bin), or `None`
/// after saying that the test skips.
fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let chromium = which("chromium").or_else(|| which("chromium-browser"));
    if let (Some(chromium), Some(chromedriver)) = (chromium, which("chromedriver")) {
        return Some((chromium, chromedriver));
    }
    skip_without("chromium/chromedriver (apt-get install chromium chromium-driver)");
    None
}

/// A gateway with 2 s access tokens, the demo pages at `/demo/` and a protected `/api/` whose
/// login page is the demo's form, or with a `provider` the gateway's own, which offers it;
/// `cookies` is an extra `[cookies]` section. Returns the origin.
async fn demo_gateway(cookies: &str, provider: Option<&Planned>) -> (Gateway, String) {
    let echo = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (login_page, sso) = match provider {
        Some(planned) => ("/auth/login", planned.config("")),
        None => ("/demo/login.html", String::new()),
    };
    let settings = format!("auth = \"required\"\nlogin_page = \"{login_page}\"");
    let api = config::route("api", "/api/", echo, &settings);
    let demo = public_route("demo", "/demo/", echo);
    let rest = format!("[demo]\necho_listen = \"{echo}\"\n\n{cookies}\n{demo}\n{api}\n{sso}");
    let gateway = Gateway::start(Setup::routes(rest).tokens(&short_lived_tokens("2s"))).await;
    let origin = format!("https://localhost:{}", gateway.addr.port());
    (gateway, origin)
}

/// From a protected page to the login form and back, logged in as alice.
async fn log_in_through_the_form(client: &Client, origin: &str) {
    client
        .goto(&format!("{origin}/api/hello"))
        .await
        .expect("open /api/hello");
    let url = client.current_url().await.expect("url");
    let sent_to = (url.path(), url.query());
    let login_page = ("/demo/login.html", Some("return_to=%2Fapi%2Fhello"));
    assert_eq!(sent_to, login_page, "not sent to the login page: {url}");
    fill(client, "#username", "alice").await;
    fill(client, "#password", "alice-password").await;
    click(client, "#submit").await;
    wait_for_path(client, "/api/hello").await;
}

/// chromedriver, in a process group of its own together with the Chromium it starts.
/// Dropping it on any path (a failed assertion, the test's timeout) kills that process group:
/// Chromium's crashpad handlers leave the group, but exit with the browser.
struct Browser {
    driver: Child,
    dir: tempfile::TempDir,
}

impl Browser {
    async fn start(chromium: PathBuf, chromedriver: PathBuf) -> (Browser, Client) {
        let dir = tempfile::tempdir().expect("temp dir");
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).expect("profile dir");
        let log = std::fs::File::create(dir.path().join("chromedriver.log")).expect("log file");
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            // Chromium keeps its crash database and caches under these, not in the profile.
            .env("XDG_CONFIG_HOME", dir.path())
            .env("XDG_CACHE_HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", chromedriver.display()));
        let mut browser = Browser { driver, dir };
        browser.wait_until_listening(port).await;

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| flag.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let step = STEP.as_millis() as u64;
        let capabilities = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
            "timeouts": { "implicit": 0, "pageLoad": step, "script": step },
        }));
        let mut builder = ClientBuilder::new(HttpConnector::new());
        let connect = builder.capabilities(capabilities.expect("capabilities"));
        let client = tokio::time::timeout(STEP, connect.connect(&format!("http://127.0.0.1:{port}"))).await;
        let client =
            client.unwrap_or_else(|_| panic!("no WebDriver session within {STEP:?}\n{}", browser.log()));
        let client = client.unwrap_or_else(|e| panic!("WebDriver session: {e}\n{}", browser.log()));
        (browser, client)
    }

    async fn wait_until_listening(&mut self, port: u16) {
        eventually(STEP, async || {
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("chromedriver exited ({status})\n{}", self.log());
            }
            let listening = TcpStream::connect(("127.0.0.1", port)).is_ok();
            listening
                .then_some(())
                .ok_or_else(|| format!("chromedriver not listening\n{}", self.log()))
        })
        .await
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let tail = text.lines().rev().take(40).collect::<Vec<_>>();
        let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        format!("chromedriver log (last lines):\n{tail}")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
        let group = libc::pid_t::try_from(self.driver.id()).expect("pid");
        // SAFETY: kill(2) with a plain integer argument. The group is the one `start` created
        // for chromedriver, and chromedriver is not reaped yet, so its id names nothing else.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn find(client: &Client, css: &str) -> fantoccini::elements::Element {
    let found = client.find(Locator::Css(css)).await;
    found.unwrap_or_else(|e| panic!("{css}: {e}"))
}

async fn fill(client: &Client, css: &str, text: &str) {
    let typed = find(client, css).await.send_keys(text).await;
    typed.unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

async fn click(client: &Client, css: &str) {
    let clicked = find(client, css).await.click().await;
    clicked.unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn wait_for_path(client: &Client, path: &str) {
    eventually(STEP, async || {
        let url = client.current_url().await.expect("url");
        (url.path() == path)
            .then_some(())
            .ok_or(format!("still on {url}, expected {path}"))
    })
    .await
}

/// Waits until the page's `h1` reads `heading` (the provider's pages share one `<title>`).
async fn wait_for_heading(client: &Client, heading: &str) {
    let h1 = format!("//h1[normalize-space() = '{heading}']");
    let found = client.wait().at_most(STEP).for_element(Locator::XPath(&h1)).await;
    found.unwrap_or_else(|e| panic!("no heading {heading:?} within {STEP:?}: {e}"));
}

async fn text_of(client: &Client, css: &str) -> String {
    let text = find(client, css).await.text().await;
    text.unwrap_or_else(|e| panic!("text of {css}: {e}"))
}

/// Runs `body` as an async script; it calls `done(value)` to finish.
async fn execute_async(client: &Client, body: &str) -> Value {
    let script = format!("const done = arguments[arguments.length - 1];\n{body}");
    client
        .execute_async(&script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script {body:?}: {e}"))
}

/// Calls the API through the app page, which shows the status in `#status` and the response
/// in `#result`; checks that both say `expected` and returns the JSON of the latter.
async fn call_api(client: &Client, expected: u64) -> Value {
    let call = "window.portcullisDemo.callApi().then(done, e => done(String(e)));";
    let status = execute_async(client, call).await;
    let shown = text_of(client, "#status").await;
    let result = text_of(client, "#result").await;
    assert_eq!(status, json!(expected), "the page showed {shown}: {result}");
    assert_eq!(shown, expected.to_string());
    serde_json::from_str(&result).unwrap_or_else(|e| panic!("#result is not JSON ({e}): {result}"))
}

/// The JSON document the browser is showing (Chromium wraps it in a `<pre>`).
async fn page_json(client: &Client) -> Value {
    let text = text_of(client, "pre").await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the page is not JSON ({e}): {text}"))
}

async fn assert_no_token_in_document_cookie(client: &Client) {
    let cookies = execute_async(client, "done(document.cookie);").await;
    let cookies = cookies.as_str().expect("document.cookie is a string");
    assert!(
        !cookies.to_ascii_lowercase().contains("portcullis"),
        "document.cookie = {cookies:?}"
    );
    assert!(!looks_like_jwt(cookies), "document.cookie = {cookies:?}");
}

/// Whether `text` holds three dot-separated base64url runs, the first starting like a JSON
/// object (`eyJ`), as a compact JWS does.
fn looks_like_jwt(text: &str) -> bool {
    let base64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.split(|c: char| !(base64url(c) || c == '.')).any(|word| {
        let parts: Vec<&str> = word.split('.').collect();
        parts.len() == 3 && parts[0].starts_with("eyJ") && parts[1..].iter().all(|p| !p.is_empty())
    })
}

#[test]
fn the_jwt_detector_sees_tokens() {
    assert!(looks_like_jwt(
        "a=1; t=eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
    ));
    assert!(!looks_like_jwt("theme=dark; lang=en.gb"));
    assert!(!looks_like_jwt(""));
}
