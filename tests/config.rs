//! `gateway.toml`: the shipped file is valid, and `portcullis check` reports every error with
//! its position.

use std::path::Path;
use std::process::Command;

use portcullis::config::{self, AuthPolicy};

/// Appended to configs that do not set up tokens, after their own lines so positions hold.
const TOKENS: &str = "\n[tokens]\n[[tokens.keys]]\nkid = \"k1\"\nalg = \"ES256\"\n\
    private_key_file = \"k1.pem\"\ngenerate_if_missing = true\n";

/// Writes `text` (plus a tokens section and an empty users.toml) and runs `portcullis check`.
fn check(text: &str) -> (i32, String, String) {
    check_with_users(text, "")
}

/// `check` with `users` as users.toml; its path shows as USERS in stderr.
fn check_with_users(text: &str, users: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let text = match text.contains("[tokens") {
        true => text.to_string(),
        false => format!("{text}{TOKENS}"),
    };
    std::fs::write(&path, text).unwrap();
    let users_path = dir.path().join("users.toml");
    std::fs::write(&users_path, users).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr)
        .replace(&path.display().to_string(), "FILE")
        .replace(&users_path.display().to_string(), "USERS");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

/// `git` run in the repository; its exit status and standard output.
fn git(args: &[&str]) -> (bool, String) {
    let output = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git runs (the tests run in a checkout)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn the_certs_folder_ships_with_its_readme_while_generated_keys_stay_out_of_git() {
    let (tracked, _) = git(&["ls-files", "--error-unmatch", "certs/README.md"]);
    assert!(tracked, "certs/README.md must be part of a fresh clone");
    let generated = ["certs/gateway.crt", "certs/gateway.key", "certs/signing-k1.pem"];
    for file in generated {
        let (ignored, _) = git(&["check-ignore", "--quiet", "--no-index", file]);
        assert!(ignored, "{file} would be committed");
    }
    let (_, tracked_files) = git(&["ls-files", "certs"]);
    assert_eq!(tracked_files.trim(), "certs/README.md");
    let config = config::load(Path::new("gateway.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.tls.cert.starts_with("certs"), "{:?}", config.tls.cert);
}

#[test]
fn the_shipped_gateway_toml_is_valid() {
    let config = config::load(Path::new("gateway.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        config.tls.self_signed_if_missing,
        "a fresh clone must serve without a certificate"
    );
    assert!(config.demo.is_some(), "a fresh clone needs the demo upstream");
    let demo = config
        .routes
        .iter()
        .find(|r| r.name == "demo")
        .expect("demo route");
    assert_eq!(demo.auth, AuthPolicy::Public);
}

#[test]
fn check_reports_every_error_with_its_position_at_once() {
    let text = r#"[server]
listen = "not an address"
idle_timeout = "forever"

[limits]
max_body_bytes = "lots"

[[routes]]
name = "api"
path = "/api/../x"
upstream = "ftp://127.0.0.1:9000"

[[routes]]
name = "login"
path = "/auth/login"
upstream = "http://127.0.0.1:9000"
auth = "sometimes"

[tls]
self_signed_if_missing = true
"#;
    let (code, _, stderr) = check(text);
    assert_eq!(code, 1);
    let lines: Vec<&str> = stderr.lines().collect();
    let expected = [
        "FILE:2:10: \"not an address\" is not an address",
        "FILE:3:16: invalid duration \"forever\"",
        "FILE:6:18: invalid size \"lots\"",
        "FILE:10:8: route path \"/api/../x\" is not normalised",
        "FILE:11:12: upstream \"ftp://127.0.0.1:9000\" must be like",
        "FILE:17:8: auth must be \"required\" or \"public\"",
        "FILE:15:8: route path \"/auth/login\" is reserved",
    ];
    for prefix in expected {
        assert!(
            lines.iter().any(|line| line.starts_with(prefix)),
            "missing {prefix:?} in:\n{stderr}"
        );
    }
    assert_eq!(lines.len(), expected.len(), "{stderr}");
}

#[test]
fn an_unknown_key_is_an_error_at_its_position() {
    let text = "[server]\nlisten = \"127.0.0.1:0\"\nlisen = \"oops\"\n[tls]\nself_signed_if_missing = true\n";
    let (code, _, stderr) = check(text);
    assert_eq!(code, 1);
    assert_lines(&stderr, &["FILE:3:1: unknown field `lisen` in [server]"]);
}

/// Asserts that stderr is exactly one line starting with each of `expected`, in that order.
fn assert_lines(stderr: &str, expected: &[&str]) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{stderr}");
    for (line, prefix) in lines.iter().zip(expected) {
        assert!(line.starts_with(prefix), "expected {prefix:?} in:\n{stderr}");
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_reported_with_the_bad_values_in_file_order() {
    let text = r#"[server]
listen = "127.0.0.1:0"
idle_timeout = "forever"

[tls]
self_signed_if_missing = true
colour = "blue"

[limits]
max_body_bytes = 10

[[routes]]
name = "api"
path = "/api"
upstream = "http://127.0.0.1:9000"
retry = 3
"#;
    let (code, _, stderr) = check(text);
    assert_eq!(code, 1);
    assert_lines(
        &stderr,
        &[
            "FILE:3:16: invalid duration \"forever\"",
            "FILE:7:1: unknown field `colour` in [tls], expected one of `cert`, `key`",
            "FILE:10:18: invalid type: integer `10` for `max_body_bytes` in [limits], expected a string",
            "FILE:16:1: unknown field `retry` in [[routes]] #1, expected one of `name`",
        ],
    );
}

#[test]
fn every_missing_key_is_reported_but_not_a_key_already_reported_for_its_type() {
    let text = r#"[[routes]]
name = 5
path = "/a"
upstream = "http://127.0.0.1:9000"

[[routes]]
path = "/b"

[demo]

[tls]
self_signed_if_missing = true
"#;
    let (code, _, stderr) = check(text);
    assert_eq!(code, 1);
    assert_lines(
        &stderr,
        &[
            "FILE:2:8: invalid type: integer `5` for `name` in [[routes]] #1, expected a string",
            "FILE:6:1: [[routes]] is missing `name`",
            "FILE:9:1: [demo] is missing `echo_listen`",
        ],
    );
}

#[test]
fn every_structural_problem_of_the_users_file_is_reported_with_its_own_position() {
    let users = r#"[[user]]
name = "alice"
role = 5
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
admin = true

[[user]]
nmae = "bob"
"#;
    let (code, _, stderr) = check_with_users("[tls]\nself_signed_if_missing = true\n", users);
    assert_eq!(code, 1);
    assert_lines(
        &stderr,
        &[
            "USERS:3:8: invalid type: integer `5` for `role` in [[user]] #1, expected a string",
            "USERS:5:1: unknown field `admin` in [[user]] #1",
            "USERS:7:1: [[user]] is missing `name`",
            "USERS:7:1: [[user]] is missing `role`",
            "USERS:7:1: [[user]] is missing `password_hash`",
            "USERS:8:1: unknown field `nmae` in [[user]] #2",
        ],
    );
}

#[test]
fn a_syntax_error_is_reported_with_its_position() {
    let (code, _, stderr) = check("[server\nlisten = 1\n");
    assert_eq!(code, 1);
    assert!(stderr.starts_with("FILE:1:"), "{stderr}");
}

#[test]
fn a_missing_certificate_without_self_signing_is_an_error() {
    let (code, _, stderr) = check("[tls]\ncert = \"nope.crt\"\nkey = \"nope.key\"\n");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("FILE:2:8:") && stderr.contains("nope.crt does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("FILE:3:7:") && stderr.contains("nope.key does not exist"),
        "{stderr}"
    );
}

#[test]
fn a_certificate_that_is_not_pem_is_reported_by_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.crt"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("bad.key"), "not a key").unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        format!("[tls]\ncert = \"bad.crt\"\nkey = \"bad.key\"\n{TOKENS}"),
    )
    .unwrap();
    std::fs::write(dir.path().join("users.toml"), "").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(&path)
        .output();
    let output = output.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.crt") && stderr.contains("certificate"),
        "{stderr}"
    );
}

#[test]
fn route_conflicts_and_bad_values_are_all_reported() {
    let text = r#"[server]
trusted_proxies = ["10.0.0.0/8", "not-a-cidr"]

[headers]
subject = "Authorization"

[cookies]
allowed_origins = ["https://app.example.com", "https://app.example.com/path"]

[[routes]]
name = "a"
host = "bad host!"
path = "/"
upstream = "http://127.0.0.1:9000"
methods = ["GET", "get"]
roles = ["admin"]
auth = "public"

[[routes]]
name = "a"
path = "/"
upstream = "http://127.0.0.1:9000"
"#;
    let (code, _, stderr) = check(text);
    assert_eq!(code, 1);
    for needle in [
        "FILE:2:34: \"not-a-cidr\" is not a CIDR",
        "FILE:5:11: \"Authorization\" is a standard header",
        "FILE:8:47: \"https://app.example.com/path\" is not an origin",
        "FILE:12:8: host \"bad host!\"",
        "FILE:15:19: method \"get\"",
        "FILE:16:10: roles need auth = \"required\"",
        "FILE:19:1: route name \"a\" is used twice",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

#[test]
fn keys_and_users_are_checked_too() {
    let text = "[tokens]\n[[tokens.keys]]\nkid = \"h\"\nalg = \"HS256\"\nprivate_key_file = \"x.pem\"\n\n\
                [[tokens.keys]]\nkid = \"e\"\nalg = \"ES999\"\nprivate_key_file = \"x.pem\"\n\n\
                [[tokens.keys]]\nkid = \"s\"\nalg = \"HS256\"\nsecret_file = \"missing.secret\"\n\n\
                [users]\nfile = \"nobody.toml\"\n";
    let (code, _, stderr) = check(text);
    assert_eq!(code, 1);
    for needle in [
        "FILE:2:1: HS256 keys take secret_file or secret_env",
        "FILE:9:7: alg must be ES256, EdDSA, RS256 or HS256",
        "FILE:12:1:",
        "missing.secret does not exist",
        "FILE:18:8:",
        "nobody.toml does not exist",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

#[test]
fn a_short_hmac_secret_fails_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hs.secret"), "only-sixteen-byt").unwrap();
    std::fs::write(dir.path().join("users.toml"), "").unwrap();
    let path = dir.path().join("gateway.toml");
    let text = "[tls]\nself_signed_if_missing = true\n[tokens]\n[[tokens.keys]]\nkid = \"h\"\nalg = \"HS256\"\nsecret_file = \"hs.secret\"\n";
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(&path)
        .output();
    let output = output.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 32 are required"), "{stderr}");
}

#[test]
fn a_valid_config_passes_check() {
    let (code, stdout, stderr) = check(
        "[tls]\nself_signed_if_missing = true\n[[routes]]\nname = \"r\"\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\n",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok (1 routes)"), "{stdout}");
}
