//! The embedded session store: `Store` on one SQLite file, each decision one transaction.
//!
//! One connection behind a mutex: SQLite admits one writer at a time anyway, and every
//! operation here that decides something writes. Each decision (`advance`, `revoke_session`,
//! `revoke_user`, `purge`) reads, decides and writes inside one `BEGIN IMMEDIATE`
//! transaction, which takes the write lock up front, so even two processes on the same file
//! cannot both see generation `n` live. The store keeps the per-session seed that refresh
//! tokens are derived from (SPEC 5.2), never a token.
//!
//! The SQL runs on tokio's blocking pool. A caller that drops the future does not stop an
//! operation already running there: it completes (or rolls back) as a whole, never halfway.

mod api_keys;
mod factors;
mod schema;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::store::{
    Advance, ApiKeyRecord, FactorRecord, IdpLink, NewSession, Origin, Revocation, RevocationKind,
    SessionRecord, Store, StoreError, StoreFuture, Timing,
};
use crate::secret::Secret;

/// The columns `record_from_row` decodes, in its order.
const COLUMNS: &str = "sid, sub, role, seed, generation, rotated_at, created_at, last_used_at, expires_at, \
                       user_agent, ip, revoked_at, idp, auth_time, amr, idp_sid, idp_sub, jkt";

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens `path` (creating its parent folders and the file), configures the connection
    /// (WAL, `synchronous = FULL`, a busy timeout, foreign keys) and creates or migrates the
    /// schema. A database whose schema is newer than this build is refused as `Corrupt`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        prepare_file(path)?;
        let mut conn = Connection::open(path).map_err(db_error)?;
        schema::configure(&conn)?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// For benchmarks only: inserts many sessions in one transaction, synchronously on the
    /// calling thread (one fsync in total instead of one per session), to seed a large store.
    /// Never call it from the gateway: it blocks, and `create` is the operation to use.
    pub fn insert_many_for_bench(
        &self,
        sessions: impl Iterator<Item = NewSession>,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = immediate(&mut conn)?;
        for session in sessions {
            insert_session(&tx, &session)?;
        }
        tx.commit().map_err(db_error)
    }

    /// A panic inside an earlier operation poisons the mutex, but its transaction was rolled
    /// back when the panic dropped it, so the connection is consistent and stays usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `op` with the connection on the blocking pool, never on an async worker.
    fn run<T, F>(&self, op: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || op(&mut store.lock()))
                .await
                .map_err(task_failed)?
        })
    }
}

impl Store for SqliteStore {
    fn create(&self, session: NewSession) -> StoreFuture<'_, ()> {
        self.run(move |conn| insert_session(conn, &session))
    }

    fn get<'a>(&'a self, sid: &'a str) -> StoreFuture<'a, Option<SessionRecord>> {
        let sid = sid.to_owned();
        self.run(move |conn| load(conn, &sid))
    }

    fn advance<'a>(&'a self, sid: &'a str, presented: u64, timing: Timing) -> StoreFuture<'a, Advance> {
        let sid = sid.to_owned();
        self.run(move |conn| advance(conn, &sid, presented, timing))
    }

    fn revoke_session<'a>(&'a self, sid: &'a str, timing: Timing) -> StoreFuture<'a, Option<SessionRecord>> {
        let sid = sid.to_owned();
        self.run(move |conn| revoke_session(conn, &sid, timing))
    }

    fn revoke_user<'a>(&'a self, sub: &'a str, timing: Timing) -> StoreFuture<'a, Vec<String>> {
        let sub = sub.to_owned();
        self.run(move |conn| revoke_user(conn, &sub, timing))
    }

    fn revoke_federated<'a>(
        &'a self,
        idp: &'a str,
        link: IdpLink<'a>,
        timing: Timing,
    ) -> StoreFuture<'a, Vec<String>> {
        let idp = idp.to_owned();
        let (column, value) = match link {
            IdpLink::Sid(sid) => ("idp_sid", sid.to_owned()),
            IdpLink::Sub(sub) => ("idp_sub", sub.to_owned()),
        };
        self.run(move |conn| revoke_federated(conn, &idp, column, &value, timing))
    }

    fn use_once<'a>(&'a self, key: &'a str, keep_until: u64, timing: Timing) -> StoreFuture<'a, bool> {
        let key = key.to_owned();
        self.run(move |conn| use_once(conn, &key, keep_until, timing.now))
    }

    fn sessions_of<'a>(&'a self, sub: &'a str, timing: Timing) -> StoreFuture<'a, Vec<SessionRecord>> {
        let sub = sub.to_owned();
        self.run(move |conn| live_sessions(conn, &sub, timing))
    }

    fn revocations(&self, now: u64) -> StoreFuture<'_, Vec<Revocation>> {
        self.run(move |conn| revocations(conn, now))
    }

    fn purge(&self, timing: Timing) -> StoreFuture<'_, u64> {
        self.run(move |conn| purge(conn, timing))
    }

    fn create_api_key<'a>(&'a self, key: &'a ApiKeyRecord) -> StoreFuture<'a, ()> {
        let key = key.clone();
        self.run(move |conn| api_keys::insert(conn, &key))
    }

    fn api_keys(&self) -> StoreFuture<'_, Vec<ApiKeyRecord>> {
        self.run(|conn| api_keys::all(conn))
    }

    fn api_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ApiKeyRecord>> {
        let id = id.to_owned();
        self.run(move |conn| api_keys::one(conn, &id))
    }

    fn delete_api_key<'a>(&'a self, id: &'a str, timing: Timing) -> StoreFuture<'a, bool> {
        let id = id.to_owned();
        self.run(move |conn| api_keys::delete(conn, &id, timing))
    }

    fn touch_api_keys<'a>(&'a self, uses: &'a [(String, u64)]) -> StoreFuture<'a, ()> {
        let uses = uses.to_vec();
        self.run(move |conn| api_keys::touch(conn, &uses))
    }

    fn put_factor<'a>(&'a self, factor: &'a FactorRecord) -> StoreFuture<'a, bool> {
        let factor = factor.clone();
        self.run(move |conn| factors::put(conn, &factor))
    }

    fn factor<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<FactorRecord>> {
        let id = id.to_owned();
        self.run(move |conn| factors::one(conn, &id))
    }

    fn factors_of<'a>(&'a self, sub: &'a str) -> StoreFuture<'a, Vec<FactorRecord>> {
        let sub = sub.to_owned();
        self.run(move |conn| factors::of(conn, &sub))
    }

    fn delete_factor<'a>(&'a self, sub: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        let (sub, id) = (sub.to_owned(), id.to_owned());
        self.run(move |conn| factors::delete(conn, &sub, &id))
    }

    fn renew_authentication<'a>(
        &'a self,
        sid: &'a str,
        auth_time: u64,
        amr: &'a [String],
        timing: Timing,
    ) -> StoreFuture<'a, bool> {
        let (sid, amr) = (sid.to_owned(), amr.to_vec());
        self.run(move |conn| factors::renew(conn, &sid, auth_time, &amr, timing))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        // Reads a table rather than `SELECT 1`, which SQLite answers without the file.
        self.run(|conn| schema::stored_version(conn).map(drop))
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        // Commits are already durable in the WAL; this folds it into the database file so a
        // stopped gateway leaves one self-contained file behind.
        self.run(|conn| {
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                .map_err(db_error)
        })
    }
}

fn task_failed(error: tokio::task::JoinError) -> StoreError {
    let how = if error.is_panic() {
        "panicked"
    } else {
        "was cancelled"
    };
    StoreError::Unavailable(format!("a session store task {how}"))
}

/// Live means usable for a refresh: not revoked, before the absolute end, not idle too long.
fn is_live(session: &SessionRecord, timing: Timing) -> bool {
    session.revoked_at.is_none()
        && timing.now < session.expires_at
        && timing.now < session.last_used_at.saturating_add(timing.idle_ttl)
}

/// SPEC 5.3 in the order the trait documents. The grace window is half-open: with
/// `grace = 0` no retired token is ever accepted again.
fn decide(session: &SessionRecord, presented: u64, timing: Timing) -> Advance {
    if !is_live(session, timing) {
        Advance::Ended
    } else if presented == session.generation {
        Advance::Rotated {
            generation: session.generation.saturating_add(1),
        }
    } else if presented.checked_add(1) == Some(session.generation)
        && timing.now_ms < session.rotated_at_ms.saturating_add(timing.grace_ms)
    {
        Advance::Replayed {
            generation: session.generation,
        }
    } else {
        Advance::Reuse
    }
}

fn advance(conn: &mut Connection, sid: &str, presented: u64, timing: Timing) -> Result<Advance, StoreError> {
    let tx = immediate(conn)?;
    let Some(session) = load(&tx, sid)? else {
        return Ok(Advance::Ended);
    };
    let outcome = decide(&session, presented, timing);
    match outcome {
        Advance::Rotated { generation } => {
            tx.execute(
                "UPDATE sessions SET generation = ?2, rotated_at = ?3, last_used_at = ?4 WHERE sid = ?1",
                params![sid, generation, timing.now_ms, timing.now],
            )
            .map_err(db_error)?;
        }
        Advance::Replayed { .. } => {
            tx.execute(
                "UPDATE sessions SET last_used_at = ?2 WHERE sid = ?1",
                params![sid, timing.now],
            )
            .map_err(db_error)?;
        }
        Advance::Reuse => mark_revoked(&tx, sid, timing)?,
        Advance::Ended => return Ok(outcome),
    }
    tx.commit().map_err(db_error)?;
    Ok(outcome)
}

fn revoke_session(
    conn: &mut Connection,
    sid: &str,
    timing: Timing,
) -> Result<Option<SessionRecord>, StoreError> {
    let tx = immediate(conn)?;
    let Some(mut session) = load(&tx, sid)?.filter(|s| is_live(s, timing)) else {
        return Ok(None);
    };
    mark_revoked(&tx, sid, timing)?;
    tx.commit().map_err(db_error)?;
    session.revoked_at = Some(timing.now);
    Ok(Some(session))
}

/// Liveness is decided in Rust (`is_live`) rather than in SQL so that there is one
/// definition of it; the rows of one `sub` are few and found through the index.
fn revoke_user(conn: &mut Connection, sub: &str, timing: Timing) -> Result<Vec<String>, StoreError> {
    let tx = immediate(conn)?;
    let mut revoked = Vec::new();
    for session in sessions_by_sub(&tx, sub)?
        .into_iter()
        .filter(|s| is_live(s, timing))
    {
        mark_revoked(&tx, &session.sid, timing)?;
        revoked.push(session.sid);
    }
    // Recorded even when no session was live: tokens of sessions that just ended may not
    // have expired yet.
    record_revocation(&tx, RevocationKind::User, sub, timing)?;
    tx.commit().map_err(db_error)?;
    Ok(revoked)
}

/// `column` is `idp_sid` or `idp_sub`, never input.
fn revoke_federated(
    conn: &mut Connection,
    idp: &str,
    column: &str,
    value: &str,
    timing: Timing,
) -> Result<Vec<String>, StoreError> {
    let tx = immediate(conn)?;
    let sessions: Vec<SessionRecord> = {
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM sessions WHERE idp = ?1 AND {column} = ?2 ORDER BY sid"
            ))
            .map_err(db_error)?;
        let rows = stmt.query_map([idp, value], record_from_row).map_err(db_error)?;
        rows.map(|row| row.map_err(db_error)).collect::<Result<_, _>>()?
    };
    let mut revoked = Vec::new();
    for session in sessions.into_iter().filter(|s| is_live(s, timing)) {
        mark_revoked(&tx, &session.sid, timing)?;
        revoked.push(session.sid);
    }
    tx.commit().map_err(db_error)?;
    Ok(revoked)
}

/// A key still remembered (even past `keep_until`, until `purge`) counts as used.
fn use_once(conn: &mut Connection, key: &str, keep_until: u64, now: u64) -> Result<bool, StoreError> {
    let tx = immediate(conn)?;
    let used: Option<u64> = tx
        .query_row("SELECT keep_until FROM used_once WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()
        .map_err(db_error)?;
    if used.is_some_and(|until| until > now) {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO used_once (key, keep_until) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET keep_until = excluded.keep_until",
        params![key, clamp(keep_until)],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    Ok(true)
}

/// Sets `revoked_at` and records the `Session` revocation, inside the caller's transaction.
fn mark_revoked(tx: &Transaction<'_>, sid: &str, timing: Timing) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE sessions SET revoked_at = ?2 WHERE sid = ?1",
        params![sid, timing.now],
    )
    .map_err(db_error)?;
    record_revocation(tx, RevocationKind::Session, sid, timing)
}

/// Records a revocation from `now` until `now + revocation_ttl`; recording one again keeps
/// the later times, so a second revocation never shortens the first.
fn record_revocation(
    tx: &Transaction<'_>,
    kind: RevocationKind,
    key: &str,
    timing: Timing,
) -> Result<(), StoreError> {
    let keep_until = clamp(timing.now.saturating_add(timing.revocation_ttl));
    tx.prepare_cached(
        "INSERT INTO revocations (kind, key, not_before, keep_until) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (kind, key) DO UPDATE SET
             not_before = max(not_before, excluded.not_before),
             keep_until = max(keep_until, excluded.keep_until)",
    )
    .and_then(|mut stmt| stmt.execute(params![kind_name(kind), key, timing.now, keep_until]))
    .map_err(db_error)?;
    Ok(())
}

fn revocations(conn: &Connection, now: u64) -> Result<Vec<Revocation>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT kind, key, not_before, keep_until FROM revocations WHERE keep_until > ?1 ORDER BY kind, key",
        )
        .map_err(db_error)?;
    let rows = stmt
        .query_map([now], |row| {
            Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .map_err(db_error)?;
    rows.map(|row| {
        let (kind, key, not_before, keep_until) = row.map_err(db_error)?;
        Ok(Revocation {
            kind: parse_kind(&kind)?,
            key,
            not_before,
            keep_until,
        })
    })
    .collect()
}

/// Deletes sessions that ended more than `revocation_ttl` ago (until then the row explains
/// the revocation entry that covers its tokens), then revocations nobody needs any more.
/// A session ends at the earliest of `revoked_at`, `expires_at`, `last_used_at + idle_ttl`.
/// This scans the table: `purge` runs rarely and an index on `last_used_at` would cost a
/// write on every refresh.
fn purge(conn: &mut Connection, timing: Timing) -> Result<u64, StoreError> {
    let tx = immediate(conn)?;
    let mut deleted = 0;
    if let Some(ended_by) = timing.now.checked_sub(timing.revocation_ttl) {
        // NULL (no idle cut-off this early, or never revoked) compares as false.
        let idle_by = ended_by.checked_sub(timing.idle_ttl);
        deleted += tx
            .execute(
                "DELETE FROM sessions
                 WHERE revoked_at <= ?1 OR expires_at <= ?1 OR last_used_at <= ?2",
                params![ended_by, idle_by],
            )
            .map_err(db_error)?;
    }
    deleted += tx
        .execute("DELETE FROM revocations WHERE keep_until <= ?1", [timing.now])
        .map_err(db_error)?;
    deleted += tx
        .execute("DELETE FROM used_once WHERE keep_until <= ?1", [timing.now])
        .map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    Ok(deleted as u64)
}

fn insert_session(conn: &Connection, session: &NewSession) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO sessions (sid, sub, role, seed, generation, rotated_at, created_at, last_used_at,
                               expires_at, user_agent, ip, revoked_at, idp, auth_time, amr, idp_sid, idp_sub,
                               jkt)
         VALUES (?1, ?2, ?3, ?4, 0, ?9, ?5, ?5, ?6, ?7, ?8, NULL, ?10, ?11, ?12, ?13, ?14, ?15)",
    )
    .and_then(|mut stmt| {
        let origin = &session.origin;
        stmt.execute(params![
            session.sid,
            session.sub,
            session.role,
            &session.seed.expose()[..],
            session.created_at,
            session.expires_at,
            session.user_agent,
            session.ip,
            session.created_at.saturating_mul(1000),
            origin.idp,
            origin.auth_time,
            origin.amr.join(" "),
            origin.idp_sid,
            origin.idp_sub,
            origin.jkt,
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

fn load(conn: &Connection, sid: &str) -> Result<Option<SessionRecord>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM sessions WHERE sid = ?1"))
        .and_then(|mut stmt| stmt.query_row([sid], record_from_row).optional())
        .map_err(db_error)
}

fn live_sessions(conn: &Connection, sub: &str, timing: Timing) -> Result<Vec<SessionRecord>, StoreError> {
    let all = sessions_by_sub(conn, sub)?;
    Ok(all.into_iter().filter(|s| is_live(s, timing)).collect())
}

/// Every session of `sub`, live or not, newest first (ties by sid, for a stable order).
fn sessions_by_sub(conn: &Connection, sub: &str) -> Result<Vec<SessionRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE sub = ?1 ORDER BY created_at DESC, sid"
        ))
        .map_err(db_error)?;
    let rows = stmt.query_map([sub], record_from_row).map_err(db_error)?;
    rows.map(|row| row.map_err(db_error)).collect()
}

/// Decodes a row of `COLUMNS`; a seed of the wrong length or a negative time surfaces as a
/// conversion error, which `db_error` reports as corrupt.
fn record_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        sid: row.get(0)?,
        sub: row.get(1)?,
        role: row.get(2)?,
        seed: Secret::new(row.get(3)?),
        generation: row.get(4)?,
        rotated_at_ms: row.get(5)?,
        created_at: row.get(6)?,
        last_used_at: row.get(7)?,
        expires_at: row.get(8)?,
        user_agent: row.get(9)?,
        ip: row.get(10)?,
        revoked_at: row.get(11)?,
        origin: Origin {
            idp: row.get(12)?,
            auth_time: row.get::<_, Option<u64>>(13)?.map_or_else(|| row.get(6), Ok)?,
            amr: row
                .get::<_, String>(14)?
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            idp_sid: row.get(15)?,
            idp_sub: row.get(16)?,
            jkt: row.get(17)?,
        },
    })
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)
}

fn kind_name(kind: RevocationKind) -> &'static str {
    match kind {
        RevocationKind::Session => "session",
        RevocationKind::User => "user",
    }
}

fn parse_kind(name: &str) -> Result<RevocationKind, StoreError> {
    match name {
        "session" => Ok(RevocationKind::Session),
        "user" => Ok(RevocationKind::User),
        _ => Err(StoreError::Corrupt(format!("unknown revocation kind {name:?}"))),
    }
}

/// SQLite integers are signed: a time past `i64::MAX` (a huge ttl) is stored as the largest
/// one, which is "never" for any clock.
fn clamp(seconds: u64) -> u64 {
    seconds.min(i64::MAX as u64)
}

/// Data that cannot be decoded, or a damaged file, is corrupt; anything else (I/O, locks,
/// a full disk) leaves the store unavailable. rusqlite's messages name columns and types,
/// never values, so no seed can leak into an error.
fn db_error(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match &error {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(error.to_string()),
        _ if matches!(error.sqlite_error_code(), Some(DatabaseCorrupt | NotADatabase)) => {
            StoreError::Corrupt(error.to_string())
        }
        _ => StoreError::Unavailable(error.to_string()),
    }
}

/// Creates the parent folders and the file itself before SQLite does, so that on Unix they
/// are private to the gateway's user: the file holds every session's seed. SQLite gives
/// the `-wal` and `-shm` files the database file's permissions.
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let failed = |error: std::io::Error| StoreError::Unavailable(format!("{}: {error}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent).map_err(failed)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop).map_err(failed)
}
