//! Tests of what only the Redis store has, against a real `redis-server` started per test on
//! a free port: its key layout and prefixes, its scripts' checks, its connections (password,
//! TLS, RESP3, a restart), and the revocation feed between two stores ("replicas"). What every
//! store must do is the contract suite's (`sessions::contract`), run against this store too.

use std::time::{Duration, Instant};

use super::*;
use crate::sessions::contract::redis_server::{PREFIX, RedisServer, free_port};
use crate::sessions::contract::{IDLE_TTL, REFRESH_TTL, REVOCATION_TTL, T0, at, created, seed_for};

/// Starts a server and a store on it, or ends the test when the tests are skipped.
macro_rules! setup {
    () => {{
        let Some(server) = RedisServer::start() else {
            return;
        };
        let store = server.store().await;
        (server, store)
    }};
}

async fn query<T: redis::FromRedisValue>(conn: &mut MultiplexedConnection, cmd: &mut redis::Cmd) -> T {
    cmd.query_async(conn).await.expect("a raw command")
}

#[tokio::test]
async fn the_keys_follow_the_documented_layout_and_expire() {
    let (server, store) = setup!();
    let mut raw = server.raw().await;
    created(&store, "s1", "alice", T0).await;
    let ttl: i64 = query(&mut raw, redis::cmd("TTL").arg("portcullis:session:s1")).await;
    assert!(
        (REFRESH_TTL as i64..=(REFRESH_TTL + CREATE_SLACK) as i64).contains(&ttl),
        "{ttl}"
    );
    let members: Vec<String> = query(&mut raw, redis::cmd("SMEMBERS").arg("portcullis:user:alice")).await;
    assert_eq!(members, ["s1"]);
    let user_ttl: i64 = query(&mut raw, redis::cmd("TTL").arg("portcullis:user:alice")).await;
    assert!(user_ttl > 0, "{user_ttl}");
    let users: Vec<String> = query(&mut raw, redis::cmd("SMEMBERS").arg("portcullis:users")).await;
    assert_eq!(users, ["alice"]);
    let seed: Vec<u8> = query(
        &mut raw,
        redis::cmd("HGET").arg("portcullis:session:s1").arg("seed"),
    )
    .await;
    assert_eq!(seed, seed_for("s1"), "the seed is stored as its raw bytes");

    // A refresh sets the exact lifetime: the idle end plus the revocation ttl.
    store.advance("s1", 0, at(T0 + 5)).await.expect("advance");
    let ttl: i64 = query(&mut raw, redis::cmd("TTL").arg("portcullis:session:s1")).await;
    assert!(
        ((IDLE_TTL + REVOCATION_TTL - 2) as i64..=(IDLE_TTL + REVOCATION_TTL) as i64).contains(&ttl),
        "{ttl}"
    );
    store
        .revoke_session("s1", at(T0 + 6))
        .await
        .expect("revoke")
        .expect("live");
    let ttl: i64 = query(&mut raw, redis::cmd("TTL").arg("portcullis:session:s1")).await;
    assert!(
        ((REVOCATION_TTL - 2) as i64..=REVOCATION_TTL as i64).contains(&ttl),
        "{ttl}"
    );
    let value: String = query(
        &mut raw,
        redis::cmd("HGET").arg("portcullis:revocations").arg("session:s1"),
    )
    .await;
    assert_eq!(value, format!("{}:{}", T0 + 6, T0 + 6 + REVOCATION_TTL));
    let entries: i64 = query(&mut raw, redis::cmd("XLEN").arg("portcullis:revocations:feed")).await;
    assert_eq!(entries, 1);
}

#[tokio::test]
async fn two_prefixes_on_one_server_do_not_see_each_other() {
    let (server, store) = setup!();
    let other = RedisStore::connect(&server.url(), None, "other:")
        .await
        .expect("connect");
    created(&store, "s1", "alice", T0).await;
    store.revoke_user("alice", at(T0 + 1)).await.expect("revoke user");
    assert!(other.get("s1").await.expect("get").is_none());
    assert!(other.revocations(T0).await.expect("revocations").is_empty());
    assert_eq!(other.feed_position().await.expect("position"), "0-0");
}

#[tokio::test]
async fn a_seed_of_the_wrong_length_is_reported_as_corrupt_without_its_bytes() {
    let (server, store) = setup!();
    let mut raw = server.raw().await;
    created(&store, "s1", "alice", T0).await;
    let _: i64 = query(
        &mut raw,
        redis::cmd("HSET")
            .arg("portcullis:session:s1")
            .arg("seed")
            .arg(&[0xde_u8, 0xad, 0xbe, 0xef][..]),
    )
    .await;
    match store.get("s1").await {
        Err(StoreError::Corrupt(message)) => {
            let lower = message.to_lowercase();
            assert!(!lower.contains("deadbeef") && !lower.contains("222"), "{message}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // The scripts check what they decide on, and change nothing when it does not decode.
    let _: i64 = query(
        &mut raw,
        redis::cmd("HSET")
            .arg("portcullis:session:s1")
            .arg("generation")
            .arg("x"),
    )
    .await;
    match store.advance("s1", 0, at(T0)).await {
        Err(StoreError::Corrupt(message)) => assert!(message.contains("does not decode"), "{message}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        store.revoke_user("alice", at(T0)).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(store.revocations(T0).await.expect("revocations").is_empty());

    let _: i64 = query(
        &mut raw,
        redis::cmd("HSET")
            .arg("portcullis:revocations")
            .arg("bogus:x")
            .arg("1:2"),
    )
    .await;
    assert!(matches!(store.revocations(0).await, Err(StoreError::Corrupt(_))));
}

#[tokio::test]
async fn revocations_reads_a_large_hash_completely() {
    let (_server, store) = setup!();
    for i in 0..2500 {
        store
            .revoke_user(&format!("user{i}"), at(T0))
            .await
            .expect("revoke user");
    }
    let all = store.revocations(T0).await.expect("revocations");
    assert_eq!(all.len(), 2500);
    let mut keys: Vec<_> = all.iter().map(|r| r.key.clone()).collect();
    keys.dedup();
    assert_eq!(keys.len(), 2500, "each entry once");
}

#[tokio::test]
async fn purge_also_empties_the_user_sets_of_purged_and_vanished_sessions() {
    let (server, store) = setup!();
    let now = T0 + REFRESH_TTL + REVOCATION_TTL;
    created(&store, "expired", "alice", T0).await;
    created(&store, "live", "alice", now - 1).await;
    created(&store, "gone", "bob", now - 1).await;
    // A session whose key Redis already let expire leaves its sid behind in the user's set.
    let mut raw = server.raw().await;
    let _: i64 = query(&mut raw, redis::cmd("DEL").arg("portcullis:session:gone")).await;

    assert_eq!(
        store.purge(at(now)).await.expect("purge"),
        1,
        "the expired session; the vanished one was no longer there to delete"
    );
    let alice: Vec<String> = query(&mut raw, redis::cmd("SMEMBERS").arg("portcullis:user:alice")).await;
    assert_eq!(alice, ["live"]);
    let bob: i64 = query(&mut raw, redis::cmd("EXISTS").arg("portcullis:user:bob")).await;
    assert_eq!(bob, 0, "the dead sid is gone, and with it the empty set");
    let users: Vec<String> = query(&mut raw, redis::cmd("SMEMBERS").arg("portcullis:users")).await;
    assert_eq!(users, ["alice"]);
    assert_eq!(store.purge(at(now)).await.expect("purge"), 0);
}

#[tokio::test]
async fn a_password_can_be_given_apart_from_the_url() {
    let Some(server) = RedisServer::start_with(&["--requirepass", "s3cret-pass"]) else {
        return;
    };
    let store = RedisStore::connect(&server.url(), Some("s3cret-pass"), PREFIX)
        .await
        .expect("connects with the password");
    store.ping().await.expect("ping");
    let url = format!("redis://:s3cret-pass@127.0.0.1:{}/0", server.port);
    RedisStore::connect(&url, None, PREFIX)
        .await
        .expect("connects with the password in the URL");
    let wrong = format!("redis://:not-it@127.0.0.1:{}/0", server.port);
    match RedisStore::connect(&wrong, None, PREFIX).await {
        Err(StoreError::Unavailable(message)) => assert!(!message.contains("not-it"), "{message}"),
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("a wrong password was accepted"),
    }
}

#[tokio::test]
async fn an_unreachable_server_or_a_bad_url_is_unavailable_at_start() {
    let port = free_port();
    let started = Instant::now();
    let url = format!("redis://127.0.0.1:{port}/0");
    assert!(matches!(
        RedisStore::connect(&url, None, PREFIX).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    match RedisStore::connect("http://user:hunter2@example.com", None, PREFIX).await {
        Err(StoreError::Unavailable(message)) => assert!(!message.contains("hunter2"), "{message}"),
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("an http URL was accepted"),
    }
}

#[tokio::test]
async fn a_tls_url_is_tried_with_rustls_and_fails_cleanly_on_a_plain_server() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{}/0", server.port);
    assert!(matches!(
        RedisStore::connect(&url, None, PREFIX).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn the_store_speaks_resp3_as_well() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = format!("{}?protocol=resp3", server.url());
    let store = RedisStore::connect(&url, None, PREFIX).await.expect("connect");
    let start = store.feed_position().await.expect("position");
    created(&store, "s1", "alice", T0).await;
    created(&store, "s2", "alice", T0 + 1).await;
    assert_eq!(
        store
            .get("s1")
            .await
            .expect("get")
            .expect("present")
            .seed
            .expose(),
        &seed_for("s1")
    );
    assert_eq!(
        store
            .sessions_of("alice", at(T0 + 2))
            .await
            .expect("sessions")
            .len(),
        2
    );
    assert_eq!(
        store
            .revoke_user("alice", at(T0 + 2))
            .await
            .expect("revoke")
            .len(),
        2
    );
    assert_eq!(store.revocations(T0 + 2).await.expect("revocations").len(), 3);
    let (fed, _) = store
        .revocations_since(&start, Duration::from_millis(100), T0 + 2)
        .await
        .expect("the feed answered");
    assert_eq!(fed.len(), 3);
    assert_eq!(store.purge(at(T0 + 2)).await.expect("purge"), 0);
}

// === the revocation feed ===

impl RedisStore {
    /// The revocations part of `changes_since`, which the tests below check.
    async fn revocations_since(
        &self,
        position: &str,
        wait: Duration,
        now: u64,
    ) -> Result<(Vec<Revocation>, String), StoreError> {
        let (news, next) = self.changes_since(position, wait, now).await?;
        Ok((news.revocations, next))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_replica_reaches_another_quickly() {
    let (server, a) = setup!();
    let b = server.store().await;
    assert!(a.is_shared() && b.is_shared());
    let start = b.feed_position().await.expect("position");
    assert_eq!(start, "0-0", "no feed yet");
    created(&a, "s1", "alice", T0).await;

    let follower = {
        let b = b.clone();
        let start = start.clone();
        tokio::spawn(async move {
            let answer = b.revocations_since(&start, Duration::from_secs(1), T0).await;
            (answer, Instant::now())
        })
    };
    // Let the follower block in XREAD first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let revoked_at = Instant::now();
    a.revoke_user("alice", at(T0 + 1)).await.expect("revoke user");
    let (answer, seen_at) = follower.await.expect("the follower finished");
    let latency = seen_at.duration_since(revoked_at);
    println!("revocation feed latency between two replicas: {latency:?}");
    assert!(latency < Duration::from_millis(500), "{latency:?}");

    let (revocations, position) = answer.expect("the feed answered");
    let mut seen: Vec<_> = revocations.iter().map(|r| (r.kind, r.key.as_str())).collect();
    seen.sort_unstable_by_key(|(kind, key)| (kind_name(*kind), *key));
    assert_eq!(
        seen,
        [(RevocationKind::Session, "s1"), (RevocationKind::User, "alice")]
    );
    assert!(revocations.iter().all(|r| r.not_before == T0 + 1));
    assert_ne!(position, start);
    assert_eq!(position, a.feed_position().await.expect("position"));

    // Nothing new: the wait runs out and the position stays.
    let waited = Instant::now();
    let (nothing, same) = b
        .revocations_since(&position, Duration::from_millis(200), T0)
        .await
        .expect("the feed answered");
    assert!(nothing.is_empty());
    assert_eq!(same, position);
    assert!(
        waited.elapsed() >= Duration::from_millis(150),
        "{:?}",
        waited.elapsed()
    );

    // Reuse detection and a single logout are fed too.
    created(&a, "s2", "bob", T0).await;
    created(&a, "s3", "bob", T0).await;
    a.advance("s2", 0, at(T0 + 1)).await.expect("rotate");
    assert_eq!(a.advance("s2", 5, at(T0 + 2)).await, Ok(Advance::Reuse));
    a.revoke_session("s3", at(T0 + 2))
        .await
        .expect("revoke")
        .expect("live");
    let (fed, _) = b
        .revocations_since(&position, Duration::ZERO, T0)
        .await
        .expect("the feed answered");
    let keys: Vec<_> = fed.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["s2", "s3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_feed_read_does_not_hold_up_other_operations() {
    let (_server, store) = setup!();
    created(&store, "s1", "alice", T0).await;
    let position = store.feed_position().await.expect("position");
    let follower = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .revocations_since(&position, Duration::from_secs(2), T0)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    store.ping().await.expect("ping");
    assert!(store.get("s1").await.expect("get").is_some());
    assert_eq!(
        store.advance("s1", 0, at(T0 + 1)).await,
        Ok(Advance::Rotated { generation: 1 })
    );
    let took = started.elapsed();
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert!(!follower.is_finished(), "the feed read is still waiting");
    follower.abort();
}

#[tokio::test]
async fn entries_past_their_keep_until_are_not_fed() {
    let (_server, store) = setup!();
    let start = store.feed_position().await.expect("position");
    store.revoke_user("old", at(T0)).await.expect("revoke");
    store
        .revoke_user("new", at(T0 + 2 * REVOCATION_TTL))
        .await
        .expect("revoke");
    let (fed, _) = store
        .revocations_since(&start, Duration::ZERO, T0 + REVOCATION_TTL)
        .await
        .expect("the feed answered");
    let keys: Vec<_> = fed.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["new"]);
}

#[tokio::test]
async fn a_position_older_than_the_feed_holds_returns_every_revocation_in_force() {
    let (_server, store) = setup!();
    let start = store.feed_position().await.expect("position");
    store.revoke_user("alice", at(T0)).await.expect("revoke");
    store.revoke_user("bob", at(T0)).await.expect("revoke");
    let middle = store.feed_position().await.expect("position");
    store.revoke_user("carol", at(T0)).await.expect("revoke");
    let end = store.feed_position().await.expect("position");
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.trim_feed(Duration::ZERO).await.expect("trim"), 3);

    // Entries after `start` and `middle` were trimmed: both get the whole state.
    for position in [start.as_str(), middle.as_str(), "", "not-an-id"] {
        let (all, next) = store
            .revocations_since(position, Duration::from_secs(1), T0)
            .await
            .expect("the feed answered");
        let keys: Vec<_> = all.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["alice", "bob", "carol"], "from {position:?}");
        assert_eq!(next, end);
    }
    // A position at the end missed nothing, though the entries before it are gone.
    let (nothing, same) = store
        .revocations_since(&end, Duration::from_millis(50), T0)
        .await
        .expect("the feed answered");
    assert!(nothing.is_empty());
    assert_eq!(same, end);

    // Only entries older than the retention go.
    store.revoke_user("dave", at(T0)).await.expect("revoke");
    assert_eq!(store.trim_feed(FEED_RETENTION).await.expect("trim"), 0);
    let (fed, _) = store
        .revocations_since(&end, Duration::ZERO, T0)
        .await
        .expect("the feed answered");
    assert_eq!(fed.len(), 1);
}

#[tokio::test]
async fn api_key_changes_come_through_the_feed_and_a_missed_feed_reloads_them() {
    let (_server, store) = setup!();
    let start = store.feed_position().await.expect("position");
    let new = crate::auth::api_keys::NewApiKey {
        sub: "ci",
        role: "deployer",
        name: "ci",
        expires_in: None,
    };
    let (key, _) = crate::auth::api_keys::generate(&new, T0);
    store.create_api_key(&key).await.expect("create");
    store.delete_api_key(&key.id, at(T0 + 1)).await.expect("delete");
    let (news, _) = store
        .changes_since(&start, Duration::ZERO, T0 + 1)
        .await
        .expect("the feed answered");
    assert_eq!(news.api_keys, [key.id.clone(), key.id.clone()]);
    let revoked: Vec<_> = news.revocations.iter().map(|r| r.key.clone()).collect();
    assert_eq!(revoked, [crate::sessions::store::api_key_sid(&key.id)]);
    assert!(!news.complete);
    let (news, _) = store
        .changes_since("not-an-id", Duration::ZERO, T0 + 1)
        .await
        .expect("the feed answered");
    assert!(news.complete, "a reader that missed entries must reload the keys");
}

#[tokio::test]
async fn a_feed_that_was_reset_returns_every_revocation_in_force() {
    let (server, store) = setup!();
    store.revoke_user("alice", at(T0)).await.expect("revoke");
    let end = store.feed_position().await.expect("position");
    // A position ahead of the feed: a Redis that lost its data and numbers entries anew.
    let ahead = "99999999999999-0";
    let (all, next) = store
        .revocations_since(ahead, Duration::from_secs(1), T0)
        .await
        .expect("the feed answered");
    assert_eq!((all.len(), next.as_str()), (1, end.as_str()));
    // The feed deleted under a reader that had a position in it.
    let mut raw = server.raw().await;
    let _: i64 = query(&mut raw, redis::cmd("DEL").arg("portcullis:revocations:feed")).await;
    let (all, next) = store
        .revocations_since(&end, Duration::from_secs(1), T0)
        .await
        .expect("the feed answered");
    assert_eq!((all.len(), next.as_str()), (1, "0-0"));
    // From "0-0" on a missing feed nothing was missed: the reader waits for the first entry.
    let (nothing, same) = store
        .revocations_since("0-0", Duration::from_millis(50), T0)
        .await
        .expect("the feed answered");
    assert_eq!((nothing.len(), same.as_str()), (0, "0-0"));
}

#[test]
fn only_canonical_stream_ids_are_positions() {
    assert_eq!(parse_id("0-0"), Some((0, 0)));
    assert_eq!(parse_id("1700000000000-12"), Some((1_700_000_000_000, 12)));
    for bad in [
        "", "0", "-", "1-", "-1", "+1-0", "01-0", "1-01", "1-2-3", "a-b", "1 -0",
    ] {
        assert_eq!(parse_id(bad), None, "{bad:?}");
    }
}

#[tokio::test]
async fn a_feed_entry_that_does_not_decode_reloads_everything() {
    let (server, store) = setup!();
    let start = store.feed_position().await.expect("position");
    store.revoke_user("alice", at(T0)).await.expect("revoke");
    let mut raw = server.raw().await;
    let _: String = query(
        &mut raw,
        redis::cmd("XADD")
            .arg("portcullis:revocations:feed")
            .arg("*")
            .arg("kind")
            .arg("nonsense"),
    )
    .await;
    let (all, next) = store
        .revocations_since(&start, Duration::ZERO, T0)
        .await
        .expect("the feed answered");
    assert_eq!(all.len(), 1);
    assert_eq!(next, store.feed_position().await.expect("position"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_survives_a_redis_restart_and_the_feed_resumes() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let a = server.store().await;
    let b = server.store().await;
    a.revoke_user("before", at(T0)).await.expect("revoke");
    let position = b.feed_position().await.expect("position");
    // B has an open feed connection when Redis goes away.
    b.revocations_since(&position, Duration::ZERO, T0)
        .await
        .expect("the feed answered");

    server.stop();
    let started = Instant::now();
    let answer = b
        .revocations_since(&position, Duration::from_millis(200), T0)
        .await;
    assert!(matches!(answer, Err(StoreError::Unavailable(_))), "{answer:?}");
    assert!(matches!(a.ping().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(
        a.revoke_user("during", at(T0)).await,
        Err(StoreError::Unavailable(_))
    ));
    println!("failing while Redis was down took {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    server.restart();
    let restarted = Instant::now();
    // The same store objects come back by themselves.
    let mut tries = 0;
    while a.ping().await.is_err() {
        tries += 1;
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "A never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "reconnected {:?} after the restart ({tries} failed pings)",
        restarted.elapsed()
    );
    // A revocation recorded after the restart reaches B, which resumes from its old position.
    a.revoke_user("after", at(T0 + 1)).await.expect("revoke");
    let mut fed = Vec::new();
    while fed.is_empty() {
        assert!(restarted.elapsed() < Duration::from_secs(10), "B never resumed");
        match b.revocations_since(&position, Duration::from_secs(1), T0).await {
            Ok((revocations, next)) => {
                assert_ne!(next, position);
                fed = revocations;
            }
            Err(StoreError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(other) => panic!("{other:?}"),
        }
    }
    let keys: Vec<_> = fed.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["after"]);
    assert!(
        b.get("anything")
            .await
            .expect("B's main connection works")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_api_key_is_refused_while_the_others_load_and_the_feed_goes_on() {
    use crate::auth::api_keys::{NewApiKey, generate};
    use crate::auth::{ApiKeys, Revocations, TokenError};
    use crate::sessions::service::SessionService;

    let (server, a) = setup!();
    let new = |name| NewApiKey {
        sub: "svc",
        role: "bot",
        name,
        expires_in: None,
    };
    let (damaged, damaged_key) = generate(&new("damaged"), T0);
    let (kept, kept_key) = generate(&new("kept"), T0);
    a.create_api_key(&damaged).await.expect("create");
    a.create_api_key(&kept).await.expect("create");
    let mut raw = server.raw().await;
    let hash_key = format!("{PREFIX}apikey:{}", damaged.id);
    let _: i64 = query(
        &mut raw,
        redis::cmd("HSET").arg(&hash_key).arg("hash").arg("short"),
    )
    .await;
    // Another replica starts: the damaged key is left out, the other loads.
    let keys = Arc::new(ApiKeys::new());
    let replica = Arc::new(SessionService::new(
        Arc::new(server.store().await),
        Arc::new(Revocations::new()),
        keys.clone(),
    ));
    let (_, position) = replica.load_state(T0).await.expect("the state loads");
    assert!(keys.verify(&kept_key, T0).is_ok());
    assert_eq!(
        keys.verify(&damaged_key, T0).map(drop),
        Err(TokenError::ApiKeyInvalid)
    );
    // The feed names the damaged key, then a new one: the follower refuses the first and
    // goes on to the second.
    let stop = tokio_util::sync::CancellationToken::new();
    let follower = tokio::spawn({
        let (replica, stop) = (replica.clone(), stop.clone());
        async move { replica.follow_changes(position, stop).await }
    });
    let feed = format!("{PREFIX}revocations:feed");
    let xadd = redis::cmd("XADD")
        .arg(&feed)
        .arg("*")
        .arg("kind")
        .arg("api_key")
        .arg("key")
        .arg(&damaged.id)
        .clone();
    let _: String = query(&mut raw, &mut xadd.clone()).await;
    let (later, later_key) = generate(&new("later"), T0);
    a.create_api_key(&later).await.expect("create");
    let deadline = Instant::now() + Duration::from_secs(5);
    while keys.verify(&later_key, T0).is_err() {
        assert!(
            Instant::now() < deadline,
            "the follower stopped at the damaged key"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        keys.verify(&damaged_key, T0).map(drop),
        Err(TokenError::ApiKeyInvalid)
    );
    stop.cancel();
    follower.await.expect("the follower ends");
}
