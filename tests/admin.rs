//! The admin listener's token (SPEC 15): `/admin/*` needs it, probes stay open, `/metrics`
//! only with `protect_metrics`; the token is never logged, a reload picks up a new one, and
//! `check` refuses an admin listener off loopback without one.

mod support;

use http::{Method, StatusCode};
use support::binary::{portcullis, start_binary};
use support::config::{for_binary, position};
use support::{Client, Reply, RequestExt, request};

const TOKEN: &str = "f3a9c1e07b5d4a2e9c8b7a6f5e4d3c2b1a09f8e7d6c5b4a3";

async fn admin_with(client: &Client, path: &str, authorization: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = authorization
        .map(|value| ("authorization", value))
        .into_iter()
        .collect();
    client
        .admin_request(request(Method::GET, path).headers(&headers).empty())
        .await
}

#[tokio::test]
async fn the_admin_api_needs_the_token_and_the_probes_do_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("admin.token"), format!("{TOKEN}\n")).expect("token file");
    let admin = "[admin]\ntoken_file = \"admin.token\"\nprotect_metrics = true\n";
    let rest = format!("{}\n{admin}", support::ES256_TOKENS);
    let (binary, client) = start_binary(dir.path(), "", &rest).await;
    let right = format!("Bearer {TOKEN}");
    for path in ["/admin/sessions?sub=alice", "/admin/api-keys", "/metrics"] {
        for wrong in [None, Some("Bearer nope"), Some(&format!("Bearer {TOKEN}0")[..])] {
            let reply = admin_with(&client, path, wrong).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path} with {wrong:?}");
            assert_eq!(
                reply.header("www-authenticate"),
                Some("Bearer realm=\"portcullis-admin\"")
            );
        }
        let reply = admin_with(&client, path, Some(&right)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    }
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(
            admin_with(&client, probe, None).await.status,
            StatusCode::OK,
            "{probe}"
        );
    }
    let log = binary.log();
    assert!(log.contains("admin_refused"), "refusals are audited:\n{log}");
    assert!(!log.contains(&TOKEN[..16]), "the token is in the log:\n{log}");
}

#[tokio::test]
async fn a_reload_picks_up_a_new_token_and_metrics_stay_open_by_default() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("admin.token");
    std::fs::write(&file, TOKEN).expect("token file");
    let rest = format!(
        "{}\n[admin]\ntoken_file = \"admin.token\"\n",
        support::ES256_TOKENS
    );
    let (_binary, client) = start_binary(dir.path(), "", &rest).await;
    assert_eq!(admin_with(&client, "/metrics", None).await.status, StatusCode::OK);
    let new = TOKEN.replace('f', "e");
    support::write_atomically(&file, &new);
    let reload =
        request(Method::POST, "/admin/reload").headers(&[("authorization", &format!("Bearer {TOKEN}"))]);
    assert_eq!(client.admin_request(reload.empty()).await.status, StatusCode::OK);
    let old = admin_with(&client, "/admin/api-keys", Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(
        old.status,
        StatusCode::UNAUTHORIZED,
        "the old token after the reload"
    );
    let new = admin_with(&client, "/admin/api-keys", Some(&format!("Bearer {new}"))).await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.text());
}

#[test]
fn check_refuses_an_open_admin_listener_off_loopback_and_a_short_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exposed = for_binary(dir.path(), "", "");
    let text = exposed
        .text
        .replace("admin_listen = \"127.0.0.1:", "admin_listen = \"0.0.0.0:");
    std::fs::write(&exposed.path, &text).expect("config");
    let check = || {
        portcullis()
            .args(["check", "--config"])
            .arg(&exposed.path)
            .output()
            .expect("check")
    };
    let output = check();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is not a loopback address: set [admin] token_file"),
        "{stderr}"
    );
    // With a token the same listener is fine; protect_metrics alone is not.
    std::fs::write(dir.path().join("admin.token"), TOKEN).expect("token file");
    std::fs::write(
        &exposed.path,
        format!("{text}\n[admin]\ntoken_file = \"admin.token\"\n"),
    )
    .expect("config");
    assert!(
        check().status.success(),
        "{}",
        String::from_utf8_lossy(&check().stderr)
    );
    let alone = format!("{text}\n[admin]\nprotect_metrics = true\n");
    std::fs::write(&exposed.path, &alone).expect("config");
    let stderr = String::from_utf8_lossy(&check().stderr).to_string();
    // Reported at the value: column 19 of its line.
    let line = position(&alone, "protect_metrics = true").replace(":1", ":19");
    let message = format!("{line}: protect_metrics = true needs token_file or token_env");
    assert!(stderr.contains(&message), "{stderr}");
    // A token too short to be one stops the gateway at start, naming the file, not the token.
    std::fs::write(dir.path().join("admin.token"), "letmein").expect("token file");
    std::fs::write(
        &exposed.path,
        format!("{}\n[admin]\ntoken_file = \"admin.token\"\n", exposed.text),
    )
    .expect("config");
    let run = portcullis()
        .args(["run", "--config"])
        .arg(&exposed.path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("the admin token must be at least 32"), "{stderr}");
    assert!(!stderr.contains("letmein"), "the token is printed: {stderr}");
}

/// `portcullis admin …` with the config at `config`: exit code, stdout, stderr.
fn admin_cli(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = portcullis()
        .args(["admin", "--config"])
        .arg(config)
        .args(args)
        .output()
        .expect("run portcullis admin");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

#[tokio::test]
async fn the_admin_cli_reads_the_address_and_token_from_the_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("admin.token"), TOKEN).expect("token file");
    let rest = format!(
        "{}\n[admin]\ntoken_file = \"admin.token\"\n",
        support::ES256_TOKENS
    );
    let (_binary, client) = start_binary(dir.path(), "", &rest).await;
    let config = dir.path().join("gateway.toml");
    let pair = client.pair("alice").await;
    let cli = |args: &'static [&'static str]| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || admin_cli(&config, args))
    };
    let (code, listed, _) = cli(&["sessions", "--sub", "alice"]).await.expect("cli");
    assert_eq!(code, Some(0));
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("JSON on stdout");
    assert_eq!(listed[0]["id"], pair.sid(), "{listed}");
    let (code, created, _) = cli(&[
        "api-keys",
        "create",
        "--sub",
        "ci",
        "--role",
        "deployer",
        "--name",
        "CI",
        "--expires-in",
        "1d",
    ])
    .await
    .expect("cli");
    assert_eq!(code, Some(0));
    let created: serde_json::Value = serde_json::from_str(&created).expect("JSON");
    assert!(
        created["key"].as_str().is_some_and(|key| key.starts_with("pcl_")),
        "{created}"
    );
    let (code, keys, _) = cli(&["api-keys", "list"]).await.expect("cli");
    assert_eq!(code, Some(0));
    assert!(keys.contains(created["id"].as_str().expect("id")), "{keys}");
    assert_eq!(
        client.get_with_token("/auth/me", &pair.access).await.status,
        StatusCode::OK
    );
    assert_eq!(cli(&["revoke", "--sub", "alice"]).await.expect("cli").0, Some(0));
    let me = client.get_with_token("/auth/me", &pair.access).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "revoked by the CLI");
    let (code, _, stderr) = cli(&["revoke", "--session", "no-such-session"])
        .await
        .expect("cli");
    assert_eq!(code, Some(1), "a refusal: {stderr}");
    assert!(stderr.contains("404"), "{stderr}");
    // A config whose token is not the gateway's is refused like anyone else.
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(dir.path().join("wrong.token"), TOKEN.replace('a', "b")).expect("token");
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("admin.token", "wrong.token");
    std::fs::write(&wrong, text).expect("config");
    let (code, _, stderr) = tokio::task::spawn_blocking(move || admin_cli(&wrong, &["api-keys", "list"]))
        .await
        .expect("cli");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
}

#[test]
fn the_admin_cli_says_when_the_listener_cannot_be_reached() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = for_binary(dir.path(), "", "");
    let (code, _, stderr) = admin_cli(&config.path, &["reload"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot reach the admin listener"), "{stderr}");
}
