//! DPoP (SPEC 14) with a client no one here wrote: panva's `dpop` package, run by Node from
//! tests/dpop-client, logs in, calls a `require_dpop` route, refreshes and calls it again
//! against a real gateway and a real recording upstream.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::jwt::{claims_of, sid_of};
use support::recorder::{Recorder, plain_responder};
use support::{GENEROUS_LIMITS, Gateway, PROTECTED, Setup, config, npm, skip_without};

/// The client's flow, with a proof key for `alg`, as test user `user` against a gateway whose
/// `/api/` route to a recording upstream takes only DPoP-bound tokens, with `rest` in its
/// config. The client's summary has `jkt` (its key's thumbprint), the tokens it got, and
/// `steps`, one per answer. `None` (the test skips) when Node is missing outside CI.
async fn flow(alg: &str, user: &str, rest: &str) -> Option<(Value, Gateway, Recorder)> {
    if support::binary::which("node").is_none() {
        skip_without("node");
        return None;
    }
    let dir = npm::package_dir("dpop-client");
    npm::install(&dir);
    let upstream = Recorder::start(plain_responder).await;
    let settings = "auth = \"required\"\nrequire_dpop = true";
    let route = config::route("api", "/api/", upstream.addr, settings);
    let gateway = Gateway::start(Setup::routes(format!("{route}{GENEROUS_LIMITS}{rest}"))).await;
    let run = tokio::process::Command::new("node")
        .arg(dir.join("client.mjs"))
        .arg(format!("https://127.0.0.1:{}", gateway.addr.port()))
        .args([user, &format!("{user}-password"), PROTECTED, alg])
        .env(
            "NODE_EXTRA_CA_CERTS",
            gateway.dir.path().join("certs/gateway.crt"),
        )
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the client finishes within 30 s")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the client failed:\n{stdout}\n{stderr}");
    let summary: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
    assert!(
        summary.get("error").is_none(),
        "the client's flow broke: {summary:#}"
    );
    Some((summary, gateway, upstream))
}

/// (step, attempt, status) of every answer the client got.
fn answers(summary: &Value) -> Vec<(String, u64, u64)> {
    let steps = summary["steps"].as_array().expect("steps");
    let number = |step: &Value, name: &str| step[name].as_u64().unwrap_or_else(|| panic!("no {name}"));
    steps
        .iter()
        .map(|s| {
            let name = s["step"].as_str().expect("step name").to_string();
            (name, number(s, "attempt"), number(s, "status"))
        })
        .collect()
}

/// Both access tokens are bound to the client's key, and the upstream got the user's identity
/// once per call, for the session of the token of that call.
fn assert_bound_and_forwarded(summary: &Value, upstream: &Recorder, user: &str, role: &str) {
    let tokens = ["access_token", "refreshed_access_token"].map(|name| {
        let token = summary[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name}: {summary:#}"));
        let jkt = &claims_of(token)["cnf"]["jkt"];
        assert_eq!(jkt, &summary["jkt"], "{name} is not bound to the client's key");
        token.to_string()
    });
    let calls = upstream.requests();
    assert_eq!(calls.len(), 2, "the upstream got {calls:#?}");
    for (call, token) in calls.iter().zip(&tokens) {
        assert_eq!(call.path, PROTECTED);
        assert_eq!(call.header("x-auth-sub"), [user], "{call:#?}");
        assert_eq!(call.header("x-auth-role"), [role], "{call:#?}");
        assert_eq!(call.header("x-auth-session"), [sid_of(token)], "{call:#?}");
    }
}

#[tokio::test]
async fn a_real_dpop_client_logs_in_calls_and_refreshes_and_its_token_is_refused_as_bearer() {
    // Every proof algorithm the gateway takes; `dpop` names Ed25519's "Ed25519" (RFC 9864).
    for alg in ["ES256", "Ed25519", "RS256"] {
        let Some((summary, gateway, upstream)) = flow(alg, "bob", "").await else {
            return;
        };
        let expected = ["login", "call", "refresh", "call after refresh"].map(|s| (s.to_string(), 1, 200));
        assert_eq!(answers(&summary), expected, "{alg}: {summary:#}");
        let body = format!("up:{PROTECTED}");
        for call in [1, 3] {
            assert_eq!(
                summary["steps"][call]["body"],
                body.as_str(),
                "{alg}: {summary:#}"
            );
        }
        assert_bound_and_forwarded(&summary, &upstream, "bob", "user");

        // The token that just worked with its proof is refused without one.
        let access = summary["refreshed_access_token"].as_str().expect("token");
        let reply = gateway.get_with_token(PROTECTED, access).await;
        let text = reply.text();
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("DPoP "), "{alg}: challenge {challenge:?}");
        assert_eq!(
            reply.status, 401,
            "{alg}: a DPoP-bound token worked as Bearer: {text}"
        );
        assert_eq!(
            upstream.requests().len(),
            2,
            "{alg}: the upstream got the Bearer call"
        );
    }
}

#[tokio::test]
async fn a_real_dpop_client_answers_the_nonce_challenge_and_goes_on() {
    let nonces = "[dpop]\nrequire_nonce = true\n";
    let Some((summary, _gateway, upstream)) = flow("ES256", "alice", nonces).await else {
        return;
    };
    // Only the first login is challenged: the nonce that comes with the tokens (300 s long)
    // serves the calls and the refresh.
    let expected = [
        ("login", 1, 400),
        ("login", 2, 200),
        ("call", 1, 200),
        ("refresh", 1, 200),
        ("call after refresh", 1, 200),
    ];
    let expected = expected.map(|(step, attempt, status)| (step.to_string(), attempt, status));
    assert_eq!(answers(&summary), expected, "{summary:#}");
    let steps = &summary["steps"];
    assert_eq!(steps[0]["body"]["error"], "use_dpop_nonce", "{summary:#}");
    // The challenge and the token answers carry a nonce.
    for answer in [0, 1, 3] {
        let nonce = steps[answer]["dpop_nonce"].as_str().unwrap_or_default();
        assert!(
            !nonce.is_empty(),
            "answer {answer} without DPoP-Nonce: {summary:#}"
        );
    }
    assert_bound_and_forwarded(&summary, &upstream, "alice", "admin");
}
