//! Rules (SPEC 13): decided in order on the real request path (roles, subjects, methods,
//! sub-paths, client addresses behind a trusted proxy), RFC 9470 step-up challenges for API
//! clients and the step-up page for browsers, `portcullis explain`, and what `check` refuses.

mod support;

use http::{Method, StatusCode};
use portcullis::config::KeyAlgorithm;
use serde_json::{Value, json};
use support::binary::portcullis;
use support::browser::{OWN, browser};
use support::config::{for_binary, position, refused_by_check};
use support::jwt::{Key, claims, claims_of, header, set, sign_json};
use support::upstreams::Upstream;
use support::{Gateway, RequestExt, Setup, config::route, request};

/// Rules of the route `api` at `/api/`, decided in this order.
const API_RULES: &str = r#"
[[routes.rules]]
effect = "deny"
from = ["198.51.100.0/24"]

[[routes.rules]]
effect = "allow"
roles = ["admin"]

[[routes.rules]]
effect = "deny"
subjects = ["bob"]
paths = ["/api/reports/secret"]

[[routes.rules]]
effect = "allow"
methods = ["GET"]
paths = ["/api/reports"]

[[routes.rules]]
effect = "allow"
roles = ["user"]
paths = ["/api/billing"]
mfa = true
max_auth_age = "10m"
"#;

/// A gateway that believes `X-Forwarded-For` from 127.0.0.1, with the route `api` (the
/// rules above) in front of an echo, and a public route `open` whose one rule needs a
/// network the test never comes from.
async fn gateway() -> (Gateway, Upstream) {
    let echo = Upstream::echo().await;
    let open_rules = "[[routes.rules]]\neffect = \"allow\"\nfrom = [\"10.0.0.0/8\"]\n";
    let routes = format!(
        "{}{API_RULES}\n{}{open_rules}",
        route("api", "/api/", echo.addr, "auth = \"required\""),
        route("open", "/open/", echo.addr, "auth = \"public\""),
    );
    let setup = Setup::routes(routes).server("trusted_proxies = [\"127.0.0.1/32\"]");
    (Gateway::start(setup).await, echo)
}

/// An access token of the gateway's own key for `sub`/`role` that last proved who it is
/// `auth_age` seconds ago with the methods `amr`.
fn token(gateway: &Gateway, sub: &str, role: &str, auth_age: u64, amr: &[&str]) -> String {
    let key = Key::load(KeyAlgorithm::Es256, &gateway.dir.path().join("keys/k1.pem"));
    let mut claims = set(set(claims(), "sub", json!(sub)), "role", json!(role));
    let now = claims["iat"].as_u64().expect("iat");
    claims = set(set(claims, "auth_time", json!(now - auth_age)), "amr", json!(amr));
    claims = set(claims, "idp", json!("local"));
    sign_json(
        &header("ES256", "k1"),
        &claims,
        &key.encoding,
        jsonwebtoken::Algorithm::ES256,
    )
}

async fn status(
    gateway: &Gateway,
    method: Method,
    path: &str,
    token: &str,
    client: &str,
) -> (StatusCode, Value) {
    let reply = gateway
        .send(
            request(method, path)
                .header("authorization", format!("Bearer {token}"))
                .header("x-forwarded-for", client)
                .empty(),
        )
        .await;
    let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (reply.status, body)
}

#[tokio::test]
async fn the_first_matching_rule_decides_by_role_subject_method_path_and_client_address() {
    let (gateway, echo) = gateway().await;
    let alice = token(&gateway, "alice", "admin", 0, &["pwd"]);
    let bob = token(&gateway, "bob", "user", 0, &["pwd"]);
    let dave = token(&gateway, "dave", "user", 0, &["pwd"]);
    let (here, banned) = ("192.0.2.7", "198.51.100.9");
    let cases = [
        // The deny of a network comes first: not even an admin passes from there.
        (&alice, Method::DELETE, "/api/anything", banned, 403),
        (&alice, Method::DELETE, "/api/anything", here, 200),
        (&bob, Method::GET, "/api/reports/q1", here, 200),
        (&bob, Method::HEAD, "/api/reports", here, 200),
        (&bob, Method::POST, "/api/reports/q1", here, 403),
        (&bob, Method::GET, "/api/reports/secret/x", here, 403),
        (&dave, Method::GET, "/api/reports/secret/x", here, 200),
        // A prefix matches whole segments only, and no match is a refusal.
        (&bob, Method::GET, "/api/reportsx", here, 403),
        (&bob, Method::GET, "/api/other", here, 403),
    ];
    for (token, method, path, client, expected) in cases {
        let (status, body) = status(&gateway, method.clone(), path, token, client).await;
        let what = format!("{method} {path} from {client}: {body}");
        assert_eq!(status.as_u16(), expected, "{what}");
        if expected == 403 {
            assert_eq!(body["error"], "access_denied", "{what}");
        }
    }
    assert_eq!(
        echo.counts.requests(),
        4,
        "only the allowed requests reached the upstream"
    );
    // An anonymous caller on a public route meets no rule here: asked to authenticate.
    let open = gateway.get("/open/x").await;
    assert_eq!(open.status, StatusCode::UNAUTHORIZED, "{}", open.text());
}

#[tokio::test]
async fn a_stale_or_single_factor_session_is_asked_to_step_up() {
    let (gateway, echo) = gateway().await;
    let challenge = |mfa: bool| {
        let acr = if mfa { ", acr_values=\"mfa\"" } else { "" };
        format!(
            "Bearer realm=\"portcullis\", error=\"insufficient_user_authentication\", \
             error_description=\"{}\"{acr}, max_age=600",
            "log in again recently and with a second factor to continue"
        )
    };
    let stale = token(&gateway, "dave", "user", 3600, &["pwd", "otp"]);
    let single = token(&gateway, "dave", "user", 5, &["pwd"]);
    for (what, token) in [("an hour-old login", &stale), ("a password alone", &single)] {
        let reply = gateway
            .send(
                request(Method::GET, "/api/billing/invoices")
                    .bearer(token)
                    .empty(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}: {}", reply.text());
        assert_eq!(
            reply.header("www-authenticate"),
            Some(challenge(true).as_str()),
            "{what}"
        );
        assert_eq!(
            reply.json()["error"],
            "insufficient_user_authentication",
            "{what}"
        );
    }
    for (amr, what) in [(["pwd", "otp"], "a code"), (["pwd", "hwk"], "a passkey")] {
        let fresh = token(&gateway, "dave", "user", 5, &amr);
        let (status, body) = status(
            &gateway,
            Method::GET,
            "/api/billing/invoices",
            &fresh,
            "192.0.2.7",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "a fresh login with {what}: {body}");
    }
    assert_eq!(echo.counts.requests(), 2);
    // A browser navigating with its session cookie goes to the step-up page, and back after.
    let jar = [(support::ACCESS_COOKIE, single.as_str())];
    let navigation = browser(Method::GET, "/api/billing/invoices?year=2026", OWN, &jar)
        .header("accept", "text/html")
        .empty();
    let reply = gateway.send(navigation).await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.text());
    let location = "/auth/step-up?return_to=%2Fapi%2Fbilling%2Finvoices%3Fyear%3D2026&acr_values=mfa";
    assert_eq!(reply.header("location"), Some(location));
    // A role no step-up can give: a refusal, not a challenge.
    let guest = token(&gateway, "erin", "guest", 3600, &["pwd"]);
    let (wrong_role, _) = status(&gateway, Method::GET, "/api/billing/x", &guest, "192.0.2.7").await;
    assert_eq!(wrong_role, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_token_of_a_password_session_says_when_and_how_its_holder_logged_in() {
    let (gateway, _echo) = gateway().await;
    let login = gateway.pair("alice").await;
    let refreshed = gateway.refreshed(&login.refresh, "refresh").await;
    let first = claims_of(&login.access);
    assert!(first["auth_time"].as_u64().is_some(), "{first}");
    // A rule judges `auth_time`, so a refresh must carry the login's, not its own `iat`.
    for token in [&login.access, &refreshed.access] {
        let claims = claims_of(token);
        let how = (&claims["idp"], &claims["amr"], &claims["auth_time"]);
        assert_eq!(
            how,
            (&json!("local"), &json!(["pwd"]), &first["auth_time"]),
            "{claims}"
        );
    }
}

/// `portcullis explain` on `config` with `args`: its exit code and standard output, the
/// config's path written as FILE.
fn explain(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let output = portcullis()
        .args(["explain", "--config"])
        .arg(config)
        .args(args)
        .output()
        .expect("run explain");
    let stdout = String::from_utf8_lossy(&output.stdout).replace(&config.display().to_string(), "FILE");
    (output.status.code().unwrap_or(-1), stdout)
}

#[test]
fn explain_prints_each_rules_verdict_with_its_line_and_exits_by_the_decision() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = for_binary(
        dir.path(),
        "",
        &format!(
            "{}{API_RULES}",
            route("api", "/api/", "127.0.0.1:9".parse().expect("addr"), "")
        ),
    );
    let line = |needle: &str| {
        position(&config.text, needle)
            .split(':')
            .next()
            .expect("line")
            .to_string()
    };
    let rule_lines: Vec<String> = config
        .text
        .match_indices("[[routes.rules]]")
        .map(|(offset, _)| (config.text[..offset].matches('\n').count() + 1).to_string())
        .collect();
    let bob_reads = [
        "--method",
        "GET",
        "--url",
        "https://gw.example.com/api/reports/q1",
        "--sub",
        "bob",
        "--role",
        "user",
    ];
    let (code, out) = explain(&config.path, &bob_reads);
    let expected = format!(
        "route: api (FILE:{}), auth required\n\
         caller: sub \"bob\", role \"user\", idp \"local\", amr [pwd], last proved 0s ago, from 127.0.0.1\n\
         rule 1  FILE:{}  deny   no match: from\n\
         rule 2  FILE:{}  allow  no match: roles\n\
         rule 3  FILE:{}  deny   no match: paths\n\
         rule 4  FILE:{}  allow  matches\n\
         rule 5  FILE:{}  allow  not consulted (an earlier rule decided)\n\
         decision: allow (rule 4 at FILE:{})\n",
        line("[[routes]]"),
        rule_lines[0],
        rule_lines[1],
        rule_lines[2],
        rule_lines[3],
        rule_lines[4],
        rule_lines[3],
    );
    assert_eq!((code, out), (0, expected));
    let (code, out) = explain(
        &config.path,
        &[
            "--method",
            "POST",
            "--url",
            "/api/reports",
            "--sub",
            "bob",
            "--role",
            "user",
            "--from",
            "198.51.100.1",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.ends_with(&format!(
            "decision: deny, 403 (rule 1 at FILE:{})\n",
            rule_lines[0]
        )),
        "{out}"
    );
    let (code, out) = explain(
        &config.path,
        &[
            "--method",
            "GET",
            "--url",
            "/api/billing",
            "--sub",
            "dave",
            "--role",
            "user",
            "--auth-age",
            "1h",
            "--mfa",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("rule 5  FILE:") && out.contains("no match: max_auth_age"),
        "{out}"
    );
    assert!(
        out.contains("decision: step-up, 401 insufficient_user_authentication (rule 5"),
        "{out}"
    );
    let (code, out) = explain(&config.path, &["--method", "GET", "--url", "/api/x"]);
    assert_eq!(
        (code, out.lines().last()),
        (1, Some("decision: deny (401: the route needs a caller)"))
    );
    let (code, _) = explain(&config.path, &["--method", "GET", "--url", "not-a-url"]);
    assert_eq!(
        code, 2,
        "a question that cannot be asked is neither allow nor deny"
    );
}

#[test]
fn check_reports_every_bad_rule_with_its_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = "127.0.0.1:9".parse().expect("addr");
    let rules = r#"
[[routes.rules]]
effect = "permit"
methods = ["get"]
paths = ["/other/x", "/api/../api/x"]
from = ["10.0.0.0/33"]
idp = ["nobody"]
mfa = false
max_auth_age = "0s"

[[routes.rules]]
effect = "allow"

[[routes.rules]]
effect = "deny"
roles = ["admin"]

[[routes.rules]]
roles = [""]
"#;
    let (text, stderr) = refused_by_check(
        dir.path(),
        &format!("{}{rules}", route("api", "/api/", upstream, "")),
    );
    let at = |needle: &str| format!("FILE:{}: ", position(&text, needle));
    let catch_all_line = position(&text, "effect = \"allow\"")
        .split(':')
        .next()
        .expect("line")
        .parse::<usize>()
        .expect("a line number")
        - 1;
    let expected = [
        format!(
            "{}effect must be \"allow\" or \"deny\", not \"permit\"",
            at("\"permit\"")
        ),
        format!(
            "{}method \"get\" must be an upper-case HTTP method",
            at("\"get\"")
        ),
        format!(
            "{}path \"/other/x\" is not below the route's path \"/api/\"",
            at("\"/other/x\"")
        ),
        format!("{}path \"/api/../api/x\"", at("\"/api/../")),
        at("\"10.0.0.0/33\""),
        format!("{}idp \"nobody\" is not \"local\"", at("\"nobody\"")),
        format!(
            "{}mfa = false would match only sessions without a second factor",
            at("false")
        ),
        format!("{}duration \"0s\" must be greater than zero", at("\"0s\"")),
        format!("this rule can never apply: the rule at line {catch_all_line} matches every request first"),
        "[[routes.rules]] is missing `effect`".to_string(),
        format!("{}role \"\" must be non-empty visible ASCII", at("\"\"]")),
    ];
    for message in expected {
        assert!(stderr.contains(&message), "missing {message:?} in:\n{stderr}");
    }
    // The first rule lost its refused conditions: it must not count as matching everything.
    assert_eq!(stderr.matches("can never apply").count(), 2, "{stderr}");
}
