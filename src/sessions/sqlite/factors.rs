//! Second factors in SQLite (one row per factor, its data opaque), and step-up's renewal of a
//! session's authentication.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{clamp, db_error, immediate, is_live, load};
use crate::sessions::store::{FactorKind, FactorRecord, StoreError, Timing};

const COLUMNS: &str = "id, sub, kind, label, data, created_at, last_used_at";

/// Inserts or replaces, unless the id is another user's; one transaction.
pub(super) fn put(conn: &mut Connection, factor: &FactorRecord) -> Result<bool, StoreError> {
    let tx = immediate(conn)?;
    let owner: Option<String> = tx
        .query_row("SELECT sub FROM factors WHERE id = ?1", [&factor.id], |row| {
            row.get(0)
        })
        .optional()
        .map_err(db_error)?;
    if owner.is_some_and(|owner| owner != factor.sub) {
        return Ok(false);
    }
    tx.execute(
        &format!(
            "INSERT INTO factors ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, label = excluded.label,
               data = excluded.data, created_at = excluded.created_at, last_used_at = excluded.last_used_at"
        ),
        params![
            factor.id,
            factor.sub,
            factor.kind.name(),
            factor.label,
            factor.data,
            clamp(factor.created_at),
            factor.last_used_at.map(clamp),
        ],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    Ok(true)
}

pub(super) fn one(conn: &Connection, id: &str) -> Result<Option<FactorRecord>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM factors WHERE id = ?1"))
        .and_then(|mut stmt| stmt.query_row([id], from_row).optional())
        .map_err(db_error)?
        .transpose()
}

pub(super) fn of(conn: &Connection, sub: &str) -> Result<Vec<FactorRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM factors WHERE sub = ?1 ORDER BY created_at, id"
        ))
        .map_err(db_error)?;
    let rows = stmt.query_map([sub], from_row).map_err(db_error)?;
    rows.map(|row| row.map_err(db_error).and_then(|record| record))
        .collect()
}

pub(super) fn delete(conn: &Connection, sub: &str, id: &str) -> Result<bool, StoreError> {
    let deleted = conn
        .execute("DELETE FROM factors WHERE id = ?1 AND sub = ?2", [id, sub])
        .map_err(db_error)?;
    Ok(deleted > 0)
}

/// Sets `auth_time` and `amr` of a live session, in one transaction with the liveness check.
pub(super) fn renew(
    conn: &mut Connection,
    sid: &str,
    auth_time: u64,
    amr: &[String],
    timing: Timing,
) -> Result<bool, StoreError> {
    let tx = immediate(conn)?;
    if !load(&tx, sid)?.is_some_and(|session| is_live(&session, timing)) {
        return Ok(false);
    }
    tx.execute(
        "UPDATE sessions SET auth_time = ?2, amr = ?3 WHERE sid = ?1",
        params![sid, clamp(auth_time), amr.join(" ")],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    Ok(true)
}

/// An unknown kind is stored data this build cannot read: corrupt, not skipped.
fn from_row(row: &Row<'_>) -> rusqlite::Result<Result<FactorRecord, StoreError>> {
    let kind: String = row.get(2)?;
    let Some(kind) = FactorKind::from_name(&kind) else {
        return Ok(Err(StoreError::Corrupt(format!(
            "a second factor of unknown kind {kind:?}"
        ))));
    };
    Ok(Ok(FactorRecord {
        id: row.get(0)?,
        sub: row.get(1)?,
        kind,
        label: row.get(3)?,
        data: row.get(4)?,
        created_at: row.get(5)?,
        last_used_at: row.get(6)?,
    }))
}
