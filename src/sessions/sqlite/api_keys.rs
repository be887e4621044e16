//! API keys in SQLite: one row per key, holding its hash, never the key.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{clamp, db_error, immediate, record_revocation};
use crate::sessions::store::{ApiKeyRecord, RevocationKind, StoreError, Timing, api_key_sid};

const COLUMNS: &str = "id, hash, sub, role, name, created_at, expires_at, last_used_at";

pub(super) fn insert(conn: &Connection, key: &ApiKeyRecord) -> Result<(), StoreError> {
    conn.execute(
        &format!("INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)"),
        params![
            key.id,
            &key.hash[..],
            key.sub,
            key.role,
            key.name,
            key.created_at,
            key.expires_at.map(clamp),
        ],
    )
    .map_err(db_error)?;
    Ok(())
}

pub(super) fn all(conn: &Connection) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"))
        .map_err(db_error)?;
    let rows = stmt.query_map([], from_row).map_err(db_error)?;
    rows.map(|row| row.map_err(db_error)).collect()
}

pub(super) fn one(conn: &Connection, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"))
        .and_then(|mut stmt| stmt.query_row([id], from_row).optional())
        .map_err(db_error)
}

/// Deletes the key and records its revocation in one transaction.
pub(super) fn delete(conn: &mut Connection, id: &str, timing: Timing) -> Result<bool, StoreError> {
    let tx = immediate(conn)?;
    let deleted = tx
        .execute("DELETE FROM api_keys WHERE id = ?1", [id])
        .map_err(db_error)?;
    if deleted == 0 {
        return Ok(false);
    }
    record_revocation(&tx, RevocationKind::Session, &api_key_sid(id), timing)?;
    tx.commit().map_err(db_error)?;
    Ok(true)
}

pub(super) fn touch(conn: &mut Connection, uses: &[(String, u64)]) -> Result<(), StoreError> {
    let tx = immediate(conn)?;
    {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?2) WHERE id = ?1",
            )
            .map_err(db_error)?;
        for (id, at) in uses {
            stmt.execute(params![id, clamp(*at)]).map_err(db_error)?;
        }
    }
    tx.commit().map_err(db_error)
}

/// A hash of the wrong length surfaces as a conversion error, which `db_error` calls corrupt.
fn from_row(row: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.get(0)?,
        hash: row.get(1)?,
        sub: row.get(2)?,
        role: row.get(3)?,
        name: row.get(4)?,
        created_at: row.get(5)?,
        expires_at: row.get(6)?,
        last_used_at: row.get(7)?,
    })
}
