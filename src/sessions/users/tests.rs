//! Tests for the users file, its reloading and the password checks.

use std::path::Path;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::limits::HashPool;

/// Cheap argon2 parameters so the tests stay fast; verification reads them from the string.
fn fast_hash(algorithm: Algorithm, password: &str) -> String {
    let params = Params::new(8, 1, 1, None).expect("valid test parameters");
    let argon2 = Argon2::new(algorithm, Version::V0x13, params);
    argon2
        .hash_password(password.as_bytes())
        .expect("hashing works")
        .to_string()
}

fn argon2id(password: &str) -> String {
    fast_hash(Algorithm::Argon2id, password)
}

fn entry(name: &str, role: &str, hash: &str, disabled: bool) -> String {
    format!("[[user]]\nname = {name:?}\nrole = {role:?}\npassword_hash = {hash:?}\ndisabled = {disabled}\n\n")
}

fn parse(text: &str) -> Result<UsersFile, ConfigErrors> {
    UsersFile::parse(Path::new("users.toml"), text)
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

fn checker(text: &str) -> PasswordCheck {
    let file = parse(text).expect("valid users file");
    PasswordCheck::File(Users::new("users.toml".into(), file))
}

/// alice (argon2id "correct horse"), carol (disabled), blank (hash of the empty string),
/// dave (bcrypt of a 72-byte password).
fn sample() -> PasswordCheck {
    let text = [
        entry("alice", "admin", &argon2id("correct horse"), false),
        entry("carol", "user", &argon2id("carol's password"), true),
        entry("blank", "user", &argon2id(""), false),
        entry(
            "dave",
            "user",
            &bcrypt::hash("b".repeat(72), 4).expect("bcrypt works"),
            false,
        ),
    ];
    checker(&text.concat())
}

async fn login(check: &PasswordCheck, user: &str, password: &str) -> Result<Authenticated, LoginError> {
    check.check(&HashPool::new(1, 4), user, password).await
}

// === the file ===

#[test]
fn every_problem_in_the_file_is_reported_at_once_with_its_position() {
    let argon2i = fast_hash(Algorithm::Argon2i, "pw");
    let text = format!(
        "[[user]]\nname = \"bad name\"\nrole = \"admin\"\npassword_hash = {argon2i:?}\n\n\
         [[user]]\nname = \"bob\"\npassword_hash = \"nope\"\n\n\
         {}{}",
        entry("alice", "user", &argon2id("a"), false),
        entry("ALICE", "user", &argon2id("b"), false),
    );
    let found = errors(&text);
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(
        found[0].starts_with("users.toml:2:8: name \"bad name\""),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("users.toml:4:17: password_hash uses argon2i"),
        "{found:#?}"
    );
    assert!(
        found[2].starts_with("users.toml:6:1: [[user]] is missing `role`"),
        "{found:#?}"
    );
    assert!(
        found[3].starts_with("users.toml:8:17: password_hash is not"),
        "{found:#?}"
    );
    assert!(
        found[4].starts_with("users.toml:17:8: user \"ALICE\" is already defined on line 11"),
        "{found:#?}"
    );
}

#[test]
fn an_unknown_key_is_refused_with_its_position() {
    let text = format!("{}admin = true\n", entry("alice", "user", &argon2id("a"), false));
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("users.toml:7:1: unknown field `admin`"),
        "{found:#?}"
    );
}

#[test]
fn unknown_keys_and_wrong_types_in_every_entry_are_reported_with_the_rest() {
    let text = format!(
        "{}admin = true\n\n[[user]]\nname = 7\nrole = \"user\"\npassword_hash = \"nope\"\nshell = \"sh\"\n",
        entry("alice", "user", &argon2id("a"), false),
    );
    let found = errors(&text);
    let expected = [
        "users.toml:7:1: unknown field `admin` in [[user]] #1",
        "users.toml:10:8: invalid type: integer `7` for `name` in [[user]] #2, expected a string",
        "users.toml:12:17: password_hash is not a valid PHC string",
        "users.toml:13:1: unknown field `shell` in [[user]] #2",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (line, prefix) in found.iter().zip(expected) {
        assert!(line.starts_with(prefix), "expected {prefix:?} in {found:#?}");
    }
}

#[test]
fn argon2i_and_argon2d_hashes_are_refused() {
    for algorithm in [Algorithm::Argon2i, Algorithm::Argon2d] {
        let text = entry("alice", "user", &fast_hash(algorithm, "pw"), false);
        let found = errors(&text);
        assert!(found[0].contains("only argon2id"), "{found:#?}");
    }
}

#[test]
fn a_bcrypt_hash_with_an_unknown_prefix_is_refused() {
    let hash = bcrypt::hash("pw", 4)
        .expect("bcrypt works")
        .replacen("$2b$", "$2x$", 1);
    assert_eq!(errors(&entry("alice", "user", &hash, false)).len(), 1);
}

#[test]
fn names_must_be_visible_ascii_of_at_most_128_bytes() {
    let hash = argon2id("a");
    assert!(parse(&entry(&"n".repeat(128), "user", &hash, false)).is_ok());
    for name in ["n".repeat(129), String::new(), "tab\there".into(), "josé".into()] {
        assert_eq!(errors(&entry(&name, "user", &hash, false)).len(), 1, "{name:?}");
    }
    assert_eq!(errors(&entry("alice", "", &hash, false)).len(), 1);
}

#[test]
fn disabled_defaults_to_false_and_the_hash_is_never_printed() {
    let hash = argon2id("a");
    let text = format!("[[user]]\nname = \"alice\"\nrole = \"user\"\npassword_hash = {hash:?}\n");
    let file = parse(&text).expect("valid");
    let alice = file.get("alice").expect("alice is there");
    assert!(!alice.disabled);
    let printed = format!("{file:?}");
    assert!(
        printed.contains("[redacted]") && !printed.contains("argon2"),
        "{printed}"
    );
}

// === local password checks ===

#[tokio::test]
async fn a_correct_argon2id_password_logs_in() {
    let who = login(&sample(), "alice", "correct horse").await;
    assert_eq!(
        who,
        Ok(Authenticated {
            sub: "alice".into(),
            role: "admin".into()
        })
    );
}

#[tokio::test]
async fn wrong_unknown_disabled_empty_and_oversized_attempts_all_fail_alike() {
    let check = sample();
    let attempts = [
        ("alice", "wrong horse".to_string()),
        ("mallory", "correct horse".to_string()),
        ("carol", "carol's password".to_string()),
        ("blank", String::new()),
        ("alice", String::new()),
        ("alice", "x".repeat(1025)),
    ];
    for (user, password) in attempts {
        let outcome = login(&check, user, &password).await;
        assert_eq!(
            outcome,
            Err(LoginError::InvalidCredentials),
            "{user} / {} bytes",
            password.len()
        );
    }
}

#[tokio::test]
async fn bcrypt_accepts_the_password_but_not_one_longer_than_72_bytes() {
    let check = sample();
    let exact = "b".repeat(72);
    assert!(login(&check, "dave", &exact).await.is_ok());
    let longer = format!("{exact}b");
    assert_eq!(
        login(&check, "dave", &longer).await,
        Err(LoginError::InvalidCredentials)
    );
}

#[tokio::test]
async fn a_full_hashing_pool_answers_overloaded() {
    let pool = HashPool::new(1, 1);
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let mut blocked = pin!(pool.run(move || {
        let _ = started_tx.send(());
        let _ = release_rx.recv();
    }));
    let _ = blocked.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    started_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the worker is busy");
    let mut queued = pin!(pool.run(|| ()));
    let _ = queued.as_mut().poll(&mut Context::from_waker(Waker::noop()));

    let outcome = sample().check(&pool, "alice", "correct horse").await;
    assert_eq!(outcome, Err(LoginError::Overloaded));
    release_tx.send(()).expect("worker waits");
}

#[test]
fn the_dummy_and_new_hashes_use_the_default_argon2id_parameters() {
    let dummy = password::DUMMY_HASH.as_ref().expect("the dummy hash builds");
    let hashed = hash_password("s3cret").expect("hashing works");
    for hash in [dummy.to_string(), hashed.clone()] {
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    }
    assert!(parse(&entry("alice", "user", &hashed, false)).is_ok());
    assert!(hash_password("").is_err());
}

// === reloading ===

#[test]
fn a_reload_picks_up_an_edit_and_a_broken_edit_keeps_the_old_users() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("users.toml");
    std::fs::write(&path, entry("alice", "user", &argon2id("a"), false)).expect("write");
    let users = Users::new(path.clone(), UsersFile::load(&path).expect("valid"));

    std::fs::write(&path, entry("bob", "user", &argon2id("b"), false)).expect("write");
    users.reload_now().expect("valid edit");
    assert!(users.current().get("bob").is_some() && users.current().get("alice").is_none());

    std::fs::write(&path, "[[user]]\nname = \"carol\"\n").expect("write");
    let rejected = users.reload_now().expect_err("broken edit");
    assert!(
        rejected
            .to_string()
            .contains("users.toml:1:1: [[user]] is missing `role`"),
        "{rejected}"
    );
    assert!(users.current().get("bob").is_some());
}

#[tokio::test]
async fn the_reloader_follows_a_file_replaced_by_rename() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("users.toml");
    std::fs::write(&path, entry("alice", "user", &argon2id("a"), false)).expect("write");
    let users = Users::new(path.clone(), UsersFile::load(&path).expect("valid"));
    let stop = tokio_util::sync::CancellationToken::new();
    users.spawn_reloader(Duration::from_millis(10), stop.clone());

    let staged = dir.path().join("users.toml.new");
    std::fs::write(&staged, entry("bob", "user", &argon2id("b"), false)).expect("write");
    std::fs::rename(&staged, &path).expect("rename");
    let deadline = Instant::now() + Duration::from_secs(5);
    while users.current().get("bob").is_none() {
        assert!(Instant::now() < deadline, "the edit was not picked up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
}

// === check_url ===

/// A checker that answers one request with `status` and `answer`, and hands back the request.
async fn fake_checker(status: u16, answer: &'static str) -> (PasswordCheck, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let request = read_request(&mut socket).await;
        let reply = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{answer}",
            answer.len()
        );
        socket.write_all(reply.as_bytes()).await.expect("reply");
        request
    });
    let url = format!("http://{addr}/check").parse().expect("url");
    (
        PasswordCheck::Remote {
            url,
            client: crate::proxy::UpstreamClient::new(),
        },
        task,
    )
}

async fn read_request(socket: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = socket.read(&mut buffer).await.expect("read");
        data.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if read == 0 {
            return text;
        }
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length = text[..end].lines().find_map(|line| {
            let lower = line.to_ascii_lowercase();
            lower
                .strip_prefix("content-length:")
                .and_then(|n| n.trim().parse::<usize>().ok())
        });
        if data.len() >= end + 4 + length.unwrap_or(0) {
            return text;
        }
    }
}

#[tokio::test]
async fn a_checker_that_answers_200_with_an_identity_logs_in() {
    let (check, request) = fake_checker(200, r#"{"sub":"u-42","role":"admin","extra":1}"#).await;
    let who = login(&check, "alice", "pw").await;
    assert_eq!(
        who,
        Ok(Authenticated {
            sub: "u-42".into(),
            role: "admin".into()
        })
    );
    let request = request.await.expect("checker ran");
    assert!(request.starts_with("POST /check HTTP/1.1\r\n"), "{request}");
    assert!(
        request.ends_with(r#"{"password":"pw","username":"alice"}"#),
        "{request}"
    );
}

#[tokio::test]
async fn a_checker_refusal_or_a_bad_identity_is_invalid_credentials() {
    for (status, answer) in [(401, "{}"), (200, r#"{"sub":"a b","role":"x"}"#), (200, "nope")] {
        let (check, _request) = fake_checker(status, answer).await;
        assert_eq!(
            login(&check, "alice", "pw").await,
            Err(LoginError::InvalidCredentials),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_checker_is_unavailable_never_a_success() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let url = format!("http://{addr}/check").parse().expect("url");
    let check = PasswordCheck::Remote {
        url,
        client: crate::proxy::UpstreamClient::new(),
    };
    assert_eq!(
        login(&check, "alice", "pw").await,
        Err(LoginError::CheckerUnavailable)
    );
}
