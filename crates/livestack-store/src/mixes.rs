//! Mix sessions: the rows behind `CreateCommonMixStream` and
//! `CancelCommonMixStream`.
//!
//! Owns: one row per (account, `MixStreamSessionId`), unique by index, so
//! two nodes creating the same session at once make one, and its
//! generation, bumped by every update. Must not: interpret the layout:
//! `spec` is a JSON value the API writes and reads.

use crate::db::{Connection, OptionalExtension};
use crate::{AccountId, StoreResult};

/// A mix session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MixRow {
    /// The row id (0 before insert).
    pub id: i64,
    /// The owner.
    pub account: AccountId,
    /// `MixStreamSessionId`.
    pub session_id: String,
    /// The layout, as the API wrote it.
    pub spec: serde_json::Value,
    /// Bumped by every update.
    pub generation: i64,
    /// When it was created and last updated (Unix seconds).
    pub created_at: i64,
    /// See `created_at`.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, account_id, session_id, spec, generation, created_at, updated_at";

fn from_row(r: &crate::db::Row) -> crate::db::DbResult<MixRow> {
    let spec: String = r.get(3)?;
    let spec = serde_json::from_str(&spec).map_err(|e| crate::DbError::Conversion {
        index: 3,
        why: format!("a mix session's spec is not JSON: {e}"),
    })?;
    Ok(MixRow {
        id: r.get(0)?,
        account: AccountId(r.get(1)?),
        session_id: r.get(2)?,
        spec,
        generation: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

/// `account`'s session `session_id`, if there is one.
pub fn find(
    conn: &Connection,
    account: AccountId,
    session_id: &str,
) -> StoreResult<Option<MixRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM mix_sessions WHERE account_id = ?1 AND session_id = ?2"
    ))?;
    Ok(stmt
        .query_row(crate::params![account.0, session_id], from_row)
        .optional()?)
}

/// Creates `account`'s session `session_id` with `spec` at `now`, or
/// updates it with the next generation; returns the row as stored.
pub fn put(
    conn: &Connection,
    account: AccountId,
    session_id: &str,
    spec: &serde_json::Value,
    now: i64,
) -> StoreResult<MixRow> {
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO mix_sessions (account_id, session_id, spec, generation, created_at, updated_at)
         VALUES (?1, ?2, ?3, 0, ?4, ?4)
         ON CONFLICT (account_id, session_id) DO UPDATE SET spec = excluded.spec,
             generation = mix_sessions.generation + 1, updated_at = excluded.updated_at
         RETURNING {COLUMNS}"
    ))?;
    Ok(stmt.query_row(
        crate::params![account.0, session_id, spec.to_string(), now],
        from_row,
    )?)
}

/// Deletes `account`'s session `session_id`; false when there was none.
pub fn delete(conn: &Connection, account: AccountId, session_id: &str) -> StoreResult<bool> {
    let n = conn.execute(
        "DELETE FROM mix_sessions WHERE account_id = ?1 AND session_id = ?2",
        crate::params![account.0, session_id],
    )?;
    Ok(n > 0)
}

/// How many sessions `account` has.
pub fn count(conn: &Connection, account: AccountId) -> StoreResult<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM mix_sessions WHERE account_id = ?1",
        crate::params![account.0],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Every account's sessions: the media plane's policy.
pub fn all(conn: &Connection) -> StoreResult<Vec<MixRow>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM mix_sessions ORDER BY id"))?;
    let rows = stmt.query_map(crate::params![], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
