//! Tests of what only the SQLite store has: its schema, its file and durability. What every
//! store must do is the contract suite's (`sessions::contract`), run against this store too.

use tempfile::TempDir;

use super::*;
use crate::sessions::contract::{T0, at, created, new_session, seed_for};

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
    assert!(!store.is_shared(), "one gateway per file");
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
async fn a_seed_of_the_wrong_length_is_reported_as_corrupt_without_its_bytes() {
    let (_dir, store) = open_temp();
    created(&store, "s1", "alice", T0).await;
    store
        .lock()
        .execute("UPDATE sessions SET seed = x'deadbeef' WHERE sid = 's1'", [])
        .expect("damage the row");
    match store.get("s1").await {
        Err(StoreError::Corrupt(message)) => {
            let lower = message.to_lowercase();
            assert!(!lower.contains("deadbeef") && !lower.contains("222"), "{message}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        store.advance("s1", 0, at(T0)).await,
        Err(StoreError::Corrupt(_))
    ));
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

#[tokio::test]
async fn a_version_1_database_migrates_and_its_sessions_read_as_password_logins() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("sessions.db");
    {
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(schema::V1).expect("the version 1 schema");
        conn.execute_batch(
            "CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL) STRICT;
             INSERT INTO schema_version VALUES (1, 1);",
        )
        .expect("version 1");
        conn.execute(
            "INSERT INTO sessions VALUES ('s1', 'alice', 'user', ?1, 0, ?2, ?3, ?3, ?4, NULL, '192.0.2.7', NULL)",
            params![&seed_for("s1")[..], T0 * 1000, T0, T0 + 3600],
        )
        .expect("a version 1 session");
    }
    let store = SqliteStore::open(&path).expect("the store opens and migrates");
    assert_eq!(schema::stored_version(&store.lock()).expect("version"), 5);
    let record = store.get("s1").await.expect("get").expect("present");
    // Sessions from before DPoP are bearer sessions (`jkt` NULL).
    assert_eq!(record.origin, Origin::local(T0));
    assert_eq!(record.seed.expose(), &seed_for("s1"));
    assert_eq!(store.api_keys().await.expect("the version 3 table"), []);
    assert_eq!(store.factors_of("alice").await.expect("the version 4 table"), []);
}
