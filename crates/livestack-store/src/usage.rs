//! What was processed, kept for the bookkeeping queries: snapshots stored
//! per push domain and 5-minute slot, recording spans and transcoding
//! spans.
//!
//! Owns: the `snapshot_counts`, `recording_spans` and `transcode_spans`
//! tables. Must not:
//! be written on the media path (the API's event recorder writes them).

use crate::db::Connection;
use crate::params;

use crate::{AccountId, StoreResult};

/// Seconds in a slot of `snapshot_counts`.
pub const SLOT_SECS: i64 = 300;

/// Counts one snapshot of `domain` at Unix ms `at_ms`.
pub fn count_snapshot(
    conn: &Connection,
    account: AccountId,
    domain: &str,
    at_ms: i64,
) -> StoreResult<()> {
    let slot = at_ms.div_euclid(1000).div_euclid(SLOT_SECS) * SLOT_SECS;
    conn.execute(
        "INSERT INTO snapshot_counts (account_id, domain, slot, num) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (account_id, domain, slot) DO UPDATE SET num = snapshot_counts.num + 1",
        params![account.0, domain, slot],
    )?;
    Ok(())
}

/// Snapshots per slot start (Unix s) in `from..=to`, of `domains` (all
/// when empty), slots with none left out.
pub fn snapshot_slots(
    conn: &Connection,
    account: AccountId,
    domains: &[String],
    from: i64,
    to: i64,
) -> StoreResult<Vec<(i64, u64)>> {
    let mut stmt = conn.prepare(
        "SELECT domain, slot, num FROM snapshot_counts
         WHERE account_id = ?1 AND slot >= ?2 AND slot <= ?3 ORDER BY slot",
    )?;
    let rows = stmt.query_map(
        params![account.0, from.div_euclid(SLOT_SECS) * SLOT_SECS, to],
        |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<i64>(2)?)),
    )?;
    let mut out: Vec<(i64, u64)> = Vec::new();
    for row in rows {
        let (domain, slot, num) = row?;
        if !domains.is_empty() && !domains.iter().any(|d| d.eq_ignore_ascii_case(&domain)) {
            continue;
        }
        let num = u64::try_from(num).unwrap_or(0);
        match out.last_mut() {
            Some((s, n)) if *s == slot => *n += num,
            _ => out.push((slot, num)),
        }
    }
    Ok(out)
}

/// A recording span as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSpan {
    /// The push domain.
    pub domain: String,
    /// AppName.
    pub app: String,
    /// StreamName.
    pub stream: String,
    /// Recorded as slow live.
    pub slow_live: bool,
    /// Unix ms it started.
    pub started_ms: i64,
    /// Unix ms it stopped; `None` while it goes on.
    pub ended_ms: Option<i64>,
}

/// Records that span `span` of `account` started on `node`.
pub fn start_recording(
    conn: &Connection,
    node: &str,
    account: AccountId,
    span: u64,
    s: &RecordingSpan,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO recording_spans
         (account_id, span, domain, app, stream, slow_live, started_ms, ended_ms, node)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8) ON CONFLICT (span) DO NOTHING",
        params![
            account.0,
            span as i64,
            s.domain,
            s.app,
            s.stream,
            s.slow_live,
            s.started_ms,
            node
        ],
    )?;
    Ok(())
}

/// Records that span `span` stopped at `at_ms`.
pub fn stop_recording(conn: &Connection, span: u64, at_ms: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE recording_spans SET ended_ms = ?2 WHERE span = ?1 AND ended_ms IS NULL",
        params![span as i64, at_ms],
    )?;
    Ok(())
}

/// Closes spans a crash of `node` left open, at the time they started (the
/// only time known of them); returns how many.
pub fn close_open_recordings(conn: &Connection, node: &str) -> StoreResult<usize> {
    Ok(conn.execute(
        "UPDATE recording_spans SET ended_ms = started_ms WHERE ended_ms IS NULL AND node = ?1",
        [node],
    )?)
}

/// The spans of `account` that overlap `from_ms..=to_ms`.
pub fn recordings_between(
    conn: &Connection,
    account: AccountId,
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<Vec<RecordingSpan>> {
    let mut stmt = conn.prepare(
        "SELECT domain, app, stream, slow_live, started_ms, ended_ms FROM recording_spans
         WHERE account_id = ?1 AND started_ms <= ?3 AND (ended_ms IS NULL OR ended_ms >= ?2)",
    )?;
    let rows = stmt.query_map(params![account.0, from_ms, to_ms], |r| {
        Ok(RecordingSpan {
            domain: r.get(0)?,
            app: r.get(1)?,
            stream: r.get(2)?,
            slow_live: r.get(3)?,
            started_ms: r.get(4)?,
            ended_ms: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A transcoding job's span as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscodeSpan {
    /// The push domain.
    pub domain: String,
    /// AppName.
    pub app: String,
    /// StreamName of the source.
    pub stream: String,
    /// CSS's `Type` (`Transcode`, `WaterMark`, `Webrtc`).
    pub kind: String,
    /// CSS's `ModuleCodec`.
    pub codec: String,
    /// Output width.
    pub width: i64,
    /// Output height.
    pub height: i64,
    /// Output bitrate, kbit/s.
    pub bitrate_kbps: i64,
    /// Unix ms it started.
    pub started_ms: i64,
    /// Unix ms it stopped; `None` while it goes on.
    pub ended_ms: Option<i64>,
}

/// Records that transcoding span `span` of `account` started on `node`.
pub fn start_transcode(
    conn: &Connection,
    node: &str,
    account: AccountId,
    span: u64,
    s: &TranscodeSpan,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO transcode_spans
         (account_id, span, domain, app, stream, kind, codec, width, height, bitrate_kbps,
          started_ms, ended_ms, node)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL, ?12)
         ON CONFLICT (span) DO NOTHING",
        params![
            account.0,
            span as i64,
            s.domain,
            s.app,
            s.stream,
            s.kind,
            s.codec,
            s.width,
            s.height,
            s.bitrate_kbps,
            s.started_ms,
            node
        ],
    )?;
    Ok(())
}

/// Records that transcoding span `span` stopped at `at_ms`.
pub fn stop_transcode(conn: &Connection, span: u64, at_ms: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE transcode_spans SET ended_ms = ?2 WHERE span = ?1 AND ended_ms IS NULL",
        params![span as i64, at_ms],
    )?;
    Ok(())
}

/// Closes transcoding spans a crash of `node` left open, at the time they
/// started (the only time known of them); returns how many.
pub fn close_open_transcodes(conn: &Connection, node: &str) -> StoreResult<usize> {
    Ok(conn.execute(
        "UPDATE transcode_spans SET ended_ms = started_ms WHERE ended_ms IS NULL AND node = ?1",
        [node],
    )?)
}

/// The transcoding spans of `account` that overlap `from_ms..=to_ms`,
/// oldest first.
pub fn transcodes_between(
    conn: &Connection,
    account: AccountId,
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<Vec<TranscodeSpan>> {
    let mut stmt = conn.prepare(
        "SELECT domain, app, stream, kind, codec, width, height, bitrate_kbps, started_ms, ended_ms
         FROM transcode_spans
         WHERE account_id = ?1 AND started_ms <= ?3 AND (ended_ms IS NULL OR ended_ms >= ?2)
         ORDER BY started_ms, id LIMIT 1000000",
    )?;
    let rows = stmt.query_map(params![account.0, from_ms, to_ms], |r| {
        Ok(TranscodeSpan {
            domain: r.get(0)?,
            app: r.get(1)?,
            stream: r.get(2)?,
            kind: r.get(3)?,
            codec: r.get(4)?,
            width: r.get(5)?,
            height: r.get(6)?,
            bitrate_kbps: r.get(7)?,
            started_ms: r.get(8)?,
            ended_ms: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
