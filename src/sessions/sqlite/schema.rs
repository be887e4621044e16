//! The SQLite connection settings and the schema, created or migrated when the store opens.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::db_error;
use crate::sessions::store::StoreError;

/// The schema this build writes; a database with a newer one is refused, not guessed at.
pub(super) const CURRENT_VERSION: u64 = 5;

/// `MIGRATIONS[n]` takes a database from version `n` to `n + 1`; append, never edit.
const MIGRATIONS: [&str; CURRENT_VERSION as usize] = [V1, V2, V3, V4, V5];

/// STRICT tables make SQLite refuse a value of the wrong type instead of storing it, so a
/// bug cannot write what `get` would later have to report as corrupt.
pub(super) const V1: &str = "
    CREATE TABLE sessions (
        sid TEXT PRIMARY KEY,
        sub TEXT NOT NULL,
        role TEXT NOT NULL,
        seed BLOB NOT NULL,
        generation INTEGER NOT NULL,
        rotated_at INTEGER NOT NULL,  -- Unix milliseconds: grace windows can be sub-second
        created_at INTEGER NOT NULL,
        last_used_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        user_agent TEXT,
        ip TEXT NOT NULL,
        revoked_at INTEGER
    ) STRICT;
    CREATE INDEX sessions_by_sub ON sessions (sub);
    CREATE TABLE revocations (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        keep_until INTEGER NOT NULL,
        PRIMARY KEY (kind, key)
    ) STRICT, WITHOUT ROWID;
";

/// Single sign-on (SPEC 10): how each session began, the provider's handles on it for
/// back-channel logout, and the one-use keys (login states, logout token ids). Sessions from
/// version 1 were password logins; their `auth_time` is NULL and read as `created_at`.
const V2: &str = "
    ALTER TABLE sessions ADD COLUMN idp TEXT NOT NULL DEFAULT 'local';
    ALTER TABLE sessions ADD COLUMN auth_time INTEGER;
    ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';  -- space-separated
    ALTER TABLE sessions ADD COLUMN idp_sid TEXT;
    ALTER TABLE sessions ADD COLUMN idp_sub TEXT;
    CREATE INDEX sessions_by_idp_sid ON sessions (idp, idp_sid) WHERE idp_sid IS NOT NULL;
    CREATE INDEX sessions_by_idp_sub ON sessions (idp, idp_sub) WHERE idp_sub IS NOT NULL;
    CREATE TABLE used_once (
        key TEXT PRIMARY KEY,
        keep_until INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
";

/// API keys (SPEC 11): the SHA-256 of each key, never the key.
const V3: &str = "
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        hash BLOB NOT NULL,
        sub TEXT NOT NULL,
        role TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        last_used_at INTEGER
    ) STRICT, WITHOUT ROWID;
";

/// Second factors (SPEC 13): TOTP secrets (sealed before they get here) and passkeys, one
/// row each, their data opaque to the store.
const V4: &str = "
    CREATE TABLE factors (
        id TEXT PRIMARY KEY,
        sub TEXT NOT NULL,
        kind TEXT NOT NULL,
        label TEXT NOT NULL,
        data BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX factors_by_sub ON factors (sub);
";

/// DPoP (SPEC 14): the thumbprint of the key a session is bound to; NULL for a bearer session.
const V5: &str = "
    ALTER TABLE sessions ADD COLUMN jkt TEXT;
";

/// How long a statement waits for another connection (another process on the same file)
/// to release its write lock before failing as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Sets the pragmas every connection needs before it touches the data.
pub(super) fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
    // WAL lets readers (ping, sessions_of from another process) proceed during a write and
    // makes a commit one sequential append instead of a rollback-journal dance.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(db_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "SQLite refused WAL mode (kept {mode})"
        )));
    }
    // FULL, not NORMAL: in WAL mode NORMAL fsyncs only at checkpoints, so a power loss (or
    // an OS crash) may roll back the last commits, and a login, rotation or revocation we
    // already acknowledged would silently come undone (a revoked session alive again, a
    // rotated token valid again). FULL fsyncs the WAL at every commit, so an answered
    // request is on disk. `kill -9` alone would be safe with NORMAL too (the WAL sits in the
    // OS page cache), but power loss is in the requirement. The cost is one fsync per write.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(db_error)?;
    // No foreign keys yet; on so that a later migration adding one is enforced from day one.
    conn.pragma_update(None, "foreign_keys", "ON").map_err(db_error)
}

/// Creates the schema on a new file or brings an older one up to `CURRENT_VERSION`, in one
/// transaction so that a crash mid-migration leaves the previous version intact.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    // One row at most: the CHECK makes a second version row impossible.
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        ) STRICT;",
    )
    .map_err(db_error)?;
    let found = stored_version(&tx)?;
    if found > CURRENT_VERSION {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {found}, newer than the {CURRENT_VERSION} this build knows"
        )));
    }
    for migration in MIGRATIONS.iter().skip(found as usize) {
        tx.execute_batch(migration).map_err(db_error)?;
    }
    tx.execute(
        "INSERT INTO schema_version (id, version) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        [CURRENT_VERSION],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)
}

/// The recorded version; 0 for a database this store has never initialised.
pub(super) fn stored_version(conn: &Connection) -> Result<u64, StoreError> {
    let version: Option<u64> = conn
        .query_row("SELECT version FROM schema_version WHERE id = 1", [], |row| {
            row.get(0)
        })
        .optional()
        .map_err(db_error)?;
    Ok(version.unwrap_or(0))
}
