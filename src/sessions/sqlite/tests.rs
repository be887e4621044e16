//! Tests for the SQLite session store: schema, the decisions of SPEC 5.3 and 5.4, durability.

use std::sync::Arc;

use tempfile::TempDir;
use tokio::sync::Barrier;

use super::*;
use crate::sessions::contract::{
    GRACE, IDLE_TTL, REFRESH_TTL, REVOCATION_TTL, T0, at, created, new_session, revocation_list, seed_for,
};

fn open_temp() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = SqliteStore::open(&dir.path().join("nested/folder/sessions.db")).expect("the store opens");
    (dir, store)
}

#[tokio::test]
async fn the_schema_is_created_on_first_open_and_reopened_intact() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("a/b/sessions.db");
    let store = SqliteStore::open(&path).expect("first open");
    assert_eq!(
        schema::stored_version(&store.lock()).expect("version"),
        schema::CURRENT_VERSION
    );
    created(&store, "s1", "alice", T0).await;
    drop(store);

    let store = SqliteStore::open(&path).expect("second open");
    assert_eq!(
        schema::stored_version(&store.lock()).expect("version"),
        schema::CURRENT_VERSION
    );
    let mode: String = store
        .lock()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    let sync: i64 = store
        .lock()
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .expect("sync");
    assert_eq!((mode.as_str(), sync), ("wal", 2), "WAL with synchronous = FULL");
    assert!(store.get("s1").await.expect("get").is_some());
    store.ping().await.expect("ping");
}

#[cfg(unix)]
#[test]
fn the_database_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _store) = open_temp();
    let meta = std::fs::metadata(dir.path().join("nested/folder/sessions.db")).expect("metadata");
    assert_eq!(meta.permissions().mode() & 0o077, 0);
}

#[tokio::test]
async fn a_schema_newer_than_this_build_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("sessions.db");
    let store = SqliteStore::open(&path).expect("first open");
    store
        .lock()
        .execute(
            "UPDATE schema_version SET version = ?1",
            [schema::CURRENT_VERSION + 1],
        )
        .expect("bump the version");
    drop(store);
    assert!(matches!(SqliteStore::open(&path), Err(StoreError::Corrupt(_))));
}

#[tokio::test]
async fn a_created_session_reads_back_with_its_seed_intact() {
    let (_dir, store) = open_temp();
    created(&store, "s1", "alice", T0).await;
    let record = store.get("s1").await.expect("get").expect("present");
    assert_eq!(record.seed.expose(), &seed_for("s1"));
    assert_eq!(
        (record.sid.as_str(), record.sub.as_str(), record.role.as_str()),
        ("s1", "alice", "user")
    );
    assert_eq!(
        (
            record.generation,
            record.rotated_at_ms / 1000,
            record.last_used_at
        ),
        (0, T0, T0)
    );
    assert_eq!((record.created_at, record.expires_at), (T0, T0 + REFRESH_TTL));
    assert_eq!(record.user_agent.as_deref(), Some("curl/8"));
    assert_eq!((record.ip.as_str(), record.revoked_at), ("192.0.2.7", None));
    assert!(store.get("unknown").await.expect("get").is_none());
}

#[tokio::test]
async fn a_seed_of_the_wrong_length_is_reported_as_corrupt_without_its_bytes() {
    let (_dir, store) = open_temp();
    created(&store, "s1", "alice", T0).await;
    store
        .lock()
        .execute("UPDATE sessions SET seed = x'deadbeef' WHERE sid = 's1'", [])
        .expect("damage the row");
    match store.get("s1").await {
        Err(StoreError::Corrupt(message)) => {
            assert!(!message.to_lowercase().contains("deadbeef"), "{message}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        store.advance("s1", 0, at(T0)).await,
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
async fn the_live_token_rotates_and_the_previous_one_replays_only_within_the_grace() {
    let (_dir, store) = open_temp();
    created(&store, "s1", "alice", T0).await;
    assert_eq!(
        store.advance("s1", 0, at(T0 + 5)).await,
        Ok(Advance::Rotated { generation: 1 })
    );
    assert_eq!(
        store.advance("s1", 0, at(T0 + 14)).await,
        Ok(Advance::Replayed { generation: 1 })
    );
    let record = store.get("s1").await.expect("get").expect("present");
    assert_eq!(
        (
            record.generation,
            record.rotated_at_ms / 1000,
            record.last_used_at
        ),
        (1, T0 + 5, T0 + 14)
    );

    assert_eq!(
        store.advance("s1", 0, at(T0 + 5 + GRACE)).await,
        Ok(Advance::Reuse)
    );
    let record = store.get("s1").await.expect("get").expect("present");
    assert_eq!(record.revoked_at, Some(T0 + 5 + GRACE));
    let revocations = store.revocations(T0 + 5 + GRACE).await.expect("revocations");
    let expected = Revocation {
        kind: RevocationKind::Session,
        key: "s1".to_owned(),
        not_before: T0 + 5 + GRACE,
        keep_until: T0 + 5 + GRACE + REVOCATION_TTL,
    };
    assert_eq!(revocations, vec![expected]);
    assert_eq!(
        store.advance("s1", 1, at(T0 + 16)).await,
        Ok(Advance::Ended),
        "the live token died too"
    );
}

#[tokio::test]
async fn an_older_or_a_future_generation_is_reuse() {
    let (_dir, store) = open_temp();
    for sid in ["old", "future"] {
        created(&store, sid, "alice", T0).await;
        for presented in 0..2 {
            assert!(matches!(
                store.advance(sid, presented, at(T0 + 1)).await,
                Ok(Advance::Rotated { .. })
            ));
        }
    }
    assert_eq!(
        store.advance("old", 0, at(T0 + 2)).await,
        Ok(Advance::Reuse),
        "two generations back"
    );
    assert_eq!(
        store.advance("future", 3, at(T0 + 2)).await,
        Ok(Advance::Reuse),
        "never issued"
    );
    assert_eq!(
        store.advance("future", u64::MAX, at(T0 + 2)).await,
        Ok(Advance::Ended)
    );
}

#[tokio::test]
async fn expired_idle_revoked_and_unknown_sessions_have_ended() {
    let (_dir, store) = open_temp();
    created(&store, "expired", "alice", T0).await;
    created(&store, "idle", "alice", T0).await;
    created(&store, "revoked", "alice", T0).await;
    // Keep "expired" in use so that only the absolute end applies to it.
    let mut now = T0;
    while now + IDLE_TTL / 2 < T0 + REFRESH_TTL {
        now += IDLE_TTL / 2;
        let generation = store
            .get("expired")
            .await
            .expect("get")
            .expect("present")
            .generation;
        assert!(matches!(
            store.advance("expired", generation, at(now)).await,
            Ok(Advance::Rotated { .. })
        ));
    }
    let generation = store
        .get("expired")
        .await
        .expect("get")
        .expect("present")
        .generation;
    assert_eq!(
        store.advance("expired", generation, at(T0 + REFRESH_TTL)).await,
        Ok(Advance::Ended)
    );
    assert_eq!(
        store.advance("idle", 0, at(T0 + IDLE_TTL - 1)).await,
        Ok(Advance::Rotated { generation: 1 })
    );
    assert_eq!(
        store.advance("idle", 1, at(T0 + 2 * IDLE_TTL - 1)).await,
        Ok(Advance::Ended)
    );
    assert!(
        store
            .revoke_session("revoked", at(T0 + 1))
            .await
            .expect("revoke")
            .is_some()
    );
    assert_eq!(store.advance("revoked", 0, at(T0 + 2)).await, Ok(Advance::Ended));
    assert_eq!(store.advance("unknown", 0, at(T0 + 2)).await, Ok(Advance::Ended));
    // Ending is not reuse: nothing but the explicit revocation was recorded.
    assert_eq!(
        revocation_list(&store, T0 + 2).await,
        vec![(RevocationKind::Session, "revoked".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_one_session_rotate_exactly_once() {
    let (_dir, store) = open_temp();
    created(&store, "s1", "alice", T0).await;
    let outcomes = race(32, |_| (store.clone(), "s1")).await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Advance::Rotated { generation: 1 })
            .count(),
        1
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Advance::Replayed { generation: 1 })
            .count(),
        31
    );
    assert_eq!(
        store.get("s1").await.expect("get").expect("present").generation,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_also_serialise_their_refreshes() {
    // Separate connections do not share the mutex, so this exercises BEGIN IMMEDIATE itself.
    let (dir, first) = open_temp();
    let second = SqliteStore::open(&dir.path().join("nested/folder/sessions.db")).expect("second open");
    created(&first, "s1", "alice", T0).await;
    let outcomes = race(16, |i| {
        (if i % 2 == 0 { first.clone() } else { second.clone() }, "s1")
    })
    .await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Advance::Rotated { .. }))
            .count(),
        1
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Advance::Replayed { generation: 1 })
            .count(),
        15
    );
}

/// Starts `n` tasks that present generation 0 at the same moment and returns what each got.
async fn race(n: usize, pick: impl Fn(usize) -> (SqliteStore, &'static str)) -> Vec<Advance> {
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (store, sid) = pick(i);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                store.advance(sid, 0, at(T0 + 1)).await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(
            task.await
                .expect("the task finished")
                .expect("the store answered"),
        );
    }
    outcomes
}

#[tokio::test]
async fn revoke_session_revokes_a_live_session_once() {
    let (_dir, store) = open_temp();
    created(&store, "s1", "alice", T0).await;
    let revoked = store
        .revoke_session("s1", at(T0 + 3))
        .await
        .expect("revoke")
        .expect("it was live");
    assert_eq!((revoked.sid.as_str(), revoked.revoked_at), ("s1", Some(T0 + 3)));
    assert!(
        store
            .revoke_session("s1", at(T0 + 4))
            .await
            .expect("revoke")
            .is_none()
    );
    assert!(
        store
            .revoke_session("unknown", at(T0 + 4))
            .await
            .expect("revoke")
            .is_none()
    );
    let revocations = store.revocations(T0 + 4).await.expect("revocations");
    assert_eq!(revocations.len(), 1);
    assert_eq!(
        (revocations[0].not_before, revocations[0].keep_until),
        (T0 + 3, T0 + 3 + REVOCATION_TTL)
    );
}

#[tokio::test]
async fn revoke_user_revokes_every_live_session_of_that_user_only() {
    let (_dir, store) = open_temp();
    created(&store, "a1", "alice", T0).await;
    created(&store, "a2", "alice", T0 + 1).await;
    created(&store, "a3", "alice", T0 + 2).await;
    created(&store, "b1", "bob", T0).await;
    store
        .revoke_session("a3", at(T0 + 3))
        .await
        .expect("revoke")
        .expect("live");

    let revoked = store.revoke_user("alice", at(T0 + 4)).await.expect("revoke user");
    assert_eq!(revoked, vec!["a2".to_owned(), "a1".to_owned()]);
    assert!(
        store
            .get("b1")
            .await
            .expect("get")
            .expect("present")
            .revoked_at
            .is_none()
    );
    let user = Revocation {
        kind: RevocationKind::User,
        key: "alice".to_owned(),
        not_before: T0 + 4,
        keep_until: T0 + 4 + REVOCATION_TTL,
    };
    let revocations = store.revocations(T0 + 4).await.expect("revocations");
    assert!(revocations.contains(&user), "{revocations:?}");
    let sessions = revocations.iter().filter(|r| r.kind == RevocationKind::Session);
    let mut keys: Vec<_> = sessions.map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["a1", "a2", "a3"]);
    assert_eq!(revocations.len(), 4);
}

#[tokio::test]
async fn recording_a_revocation_again_keeps_the_later_times() {
    let (_dir, store) = open_temp();
    store
        .revoke_user("alice", at(T0 + 100))
        .await
        .expect("revoke user");
    store
        .revoke_user("alice", at(T0 + 50))
        .await
        .expect("revoke user with a clock behind");
    let revocations = store.revocations(T0).await.expect("revocations");
    assert_eq!(revocations.len(), 1);
    assert_eq!(
        (revocations[0].not_before, revocations[0].keep_until),
        (T0 + 100, T0 + 100 + REVOCATION_TTL)
    );
}

#[tokio::test]
async fn sessions_of_lists_only_live_sessions_newest_first() {
    let (_dir, store) = open_temp();
    created(&store, "old", "alice", T0 - IDLE_TTL).await;
    created(&store, "a1", "alice", T0).await;
    created(&store, "a2", "alice", T0 + 1).await;
    created(&store, "a0", "alice", T0 + 1).await;
    created(&store, "revoked", "alice", T0).await;
    created(&store, "b1", "bob", T0).await;
    store
        .revoke_session("revoked", at(T0 + 1))
        .await
        .expect("revoke")
        .expect("live");

    let live = store.sessions_of("alice", at(T0 + 2)).await.expect("sessions");
    let sids: Vec<_> = live.iter().map(|s| s.sid.as_str()).collect();
    assert_eq!(sids, ["a0", "a2", "a1"]);
    assert!(
        store
            .sessions_of("nobody", at(T0 + 2))
            .await
            .expect("sessions")
            .is_empty()
    );
}

#[tokio::test]
async fn revocations_omit_entries_past_their_keep_until() {
    let (_dir, store) = open_temp();
    created(&store, "s1", "alice", T0).await;
    store
        .revoke_session("s1", at(T0))
        .await
        .expect("revoke")
        .expect("live");
    assert_eq!(
        store
            .revocations(T0 + REVOCATION_TTL - 1)
            .await
            .expect("revocations")
            .len(),
        1
    );
    assert!(
        store
            .revocations(T0 + REVOCATION_TTL)
            .await
            .expect("revocations")
            .is_empty()
    );
}

#[tokio::test]
async fn purge_removes_long_ended_sessions_and_forgotten_revocations() {
    let (_dir, store) = open_temp();
    let now = T0 + REFRESH_TTL + REVOCATION_TTL;
    created(&store, "expired", "alice", T0).await;
    created(&store, "idle", "alice", now - REVOCATION_TTL - IDLE_TTL).await;
    created(&store, "revoked", "alice", now - 2 * REVOCATION_TTL).await;
    created(&store, "just-revoked", "alice", now - 2).await;
    created(&store, "live", "alice", now - 1).await;
    store
        .revoke_session("revoked", at(now - REVOCATION_TTL))
        .await
        .expect("revoke")
        .expect("live");
    store
        .revoke_session("just-revoked", at(now - 1))
        .await
        .expect("revoke")
        .expect("live");

    assert_eq!(
        store.purge(at(now)).await.expect("purge"),
        4,
        "three sessions and one revocation"
    );
    for gone in ["expired", "idle", "revoked"] {
        assert!(store.get(gone).await.expect("get").is_none(), "{gone}");
    }
    for kept in ["just-revoked", "live"] {
        assert!(store.get(kept).await.expect("get").is_some(), "{kept}");
    }
    assert_eq!(
        revocation_list(&store, now).await,
        vec![(RevocationKind::Session, "just-revoked".to_owned())]
    );
    assert_eq!(store.purge(at(now)).await.expect("purge"), 0);
}

#[tokio::test]
async fn purge_early_in_the_clock_deletes_nothing_it_should_keep() {
    let (_dir, store) = open_temp();
    created(&store, "s1", "alice", 0).await;
    assert_eq!(store.purge(at(1)).await.expect("purge"), 0);
    assert!(store.get("s1").await.expect("get").is_some());
}

#[tokio::test]
async fn what_one_store_wrote_is_there_after_reopening_the_file() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("sessions.db");
    let store = SqliteStore::open(&path).expect("open");
    created(&store, "s1", "alice", T0).await;
    created(&store, "s2", "bob", T0).await;
    assert_eq!(
        store.advance("s1", 0, at(T0 + 1)).await,
        Ok(Advance::Rotated { generation: 1 })
    );
    store.revoke_user("bob", at(T0 + 2)).await.expect("revoke user");
    drop(store);

    let store = SqliteStore::open(&path).expect("reopen");
    let s1 = store.get("s1").await.expect("get").expect("present");
    assert_eq!(
        (s1.generation, s1.rotated_at_ms / 1000, s1.seed.expose()),
        (1, T0 + 1, &seed_for("s1"))
    );
    assert_eq!(
        store.get("s2").await.expect("get").expect("present").revoked_at,
        Some(T0 + 2)
    );
    assert_eq!(store.revocations(T0 + 2).await.expect("revocations").len(), 2);
    assert_eq!(
        store.advance("s1", 0, at(T0 + 3)).await,
        Ok(Advance::Replayed { generation: 1 })
    );
}

#[tokio::test]
async fn insert_many_for_bench_stores_every_session() {
    let (_dir, store) = open_temp();
    let sessions = (0..1000).map(|i| new_session(&format!("s{i}"), &format!("user{}", i % 10), T0));
    store.insert_many_for_bench(sessions).expect("bulk insert");
    assert_eq!(
        store
            .sessions_of("user3", at(T0 + 1))
            .await
            .expect("sessions")
            .len(),
        100
    );
}

#[tokio::test]
async fn an_unwritable_location_is_unavailable() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").expect("write");
    assert!(matches!(
        SqliteStore::open(&file.join("sessions.db")),
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_corrupt() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("sessions.db");
    std::fs::write(&path, vec![b'x'; 4096]).expect("write");
    assert!(matches!(SqliteStore::open(&path), Err(StoreError::Corrupt(_))));
}

#[tokio::test]
async fn flush_folds_the_write_ahead_log_into_the_database_file() {
    let (dir, store) = open_temp();
    created(&store, "s1", "alice", T0).await;
    let wal = dir.path().join("nested/folder/sessions.db-wal");
    let size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(size() > 0, "a commit should sit in the WAL before the flush");
    store.flush().await.expect("flush");
    assert_eq!(size(), 0, "the WAL is emptied into the database file");
    assert!(store.get("s1").await.expect("get").is_some());
}
