//! Callback records: each event-callback attempt and the receiver's
//! answer, as `DescribeCallbackRecordsList` lists them.
//!
//! Owns: the `callback_records` table and its retention (rows older than
//! [`KEEP_MS`] are pruned as new ones arrive). Must not: be written on
//! the media path (the API's event recorder writes them).

use crate::db::Connection;
use crate::params;

use crate::{AccountId, StoreResult};

/// How long records are kept: the action's 14-day query window.
pub const KEEP_MS: i64 = 14 * 86_400 * 1000;

/// One attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRecord {
    /// The stream's account.
    pub account_id: AccountId,
    /// StreamName.
    pub stream: String,
    /// `event_type` of the callback.
    pub event_type: i64,
    /// The body sent.
    pub request: String,
    /// The answer body, or why there was none.
    pub response: String,
    /// 0 for a 200 answer, the HTTP status otherwise (502/504 for none).
    pub result_code: i64,
    /// Unix ms sent.
    pub sent_ms: i64,
    /// Unix ms answered.
    pub answered_ms: i64,
}

/// Stores `r` and drops records older than [`KEEP_MS`] before it.
pub fn insert(conn: &Connection, r: &CallbackRecord) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO callback_records
         (account_id, stream, event_type, request, response, result_code, sent_ms, answered_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            r.account_id.0,
            r.stream,
            r.event_type,
            r.request,
            r.response,
            r.result_code,
            r.sent_ms,
            r.answered_ms
        ],
    )?;
    conn.execute(
        "DELETE FROM callback_records WHERE sent_ms < ?1",
        [r.sent_ms - KEEP_MS],
    )?;
    Ok(())
}

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFilter {
    /// Whose.
    pub account_id: AccountId,
    /// StreamName, exact.
    pub stream: String,
    /// Sent at or after (Unix ms).
    pub from_ms: i64,
    /// Sent at or before (Unix ms).
    pub to_ms: i64,
    /// Only this `event_type`.
    pub event_type: Option<i64>,
    /// Only successes (`Some(true)`) or only failures (`Some(false)`).
    pub succeeded: Option<bool>,
}

/// The total matching and one page of them, newest first.
pub fn page(
    conn: &Connection,
    f: &RecordFilter,
    offset: u64,
    limit: u64,
) -> StoreResult<(u64, Vec<CallbackRecord>)> {
    let mut cond = String::from(
        "account_id = ?1 AND stream = ?2 AND sent_ms >= ?3 AND sent_ms <= ?4 \
         AND (CAST(?5 AS BIGINT) IS NULL OR event_type = ?5)",
    );
    match f.succeeded {
        Some(true) => cond.push_str(" AND result_code = 0"),
        Some(false) => cond.push_str(" AND result_code <> 0"),
        None => {}
    }
    let args = params![f.account_id.0, f.stream, f.from_ms, f.to_ms, f.event_type];
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM callback_records WHERE {cond}"),
        args,
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare(&format!(
        "SELECT account_id, stream, event_type, request, response, result_code, sent_ms, answered_ms
         FROM callback_records WHERE {cond} ORDER BY sent_ms DESC, id DESC LIMIT ?6 OFFSET ?7"
    ))?;
    let rows = stmt.query_map(
        params![
            f.account_id.0,
            f.stream,
            f.from_ms,
            f.to_ms,
            f.event_type,
            i64::try_from(limit).unwrap_or(i64::MAX),
            i64::try_from(offset).unwrap_or(i64::MAX)
        ],
        |r| {
            Ok(CallbackRecord {
                account_id: AccountId(r.get(0)?),
                stream: r.get(1)?,
                event_type: r.get(2)?,
                request: r.get(3)?,
                response: r.get(4)?,
                result_code: r.get(5)?,
                sent_ms: r.get(6)?,
                answered_ms: r.get(7)?,
            })
        },
    )?;
    Ok((
        u64::try_from(total).unwrap_or(0),
        rows.collect::<Result<_, _>>()?,
    ))
}
