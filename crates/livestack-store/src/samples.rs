//! Push-quality samples, as `DescribeStreamPushInfoList` lists them.
//!
//! Owns: the `push_samples` table and its retention ([`KEEP_MS`], the
//! action's 7-day window). Must not: be written on the media path.

use crate::db::Connection;
use crate::params;

use crate::{AccountId, StoreResult};

/// How long samples are kept.
pub const KEEP_MS: i64 = 7 * 86_400 * 1000;

/// One sample, as stored.
#[derive(Debug, Clone, PartialEq, Default)]
#[allow(missing_docs)]
pub struct Sample {
    pub account_id: i64,
    pub domain: String,
    pub app: String,
    pub stream: String,
    pub at_ms: i64,
    pub started_ms: i64,
    pub client_ip: String,
    pub server_ip: String,
    pub sequence: String,
    pub params: String,
    pub video_codec: String,
    pub audio_codec: String,
    pub width: i64,
    pub height: i64,
    pub fps: f64,
    pub video_bps: i64,
    pub audio_fps: f64,
    pub audio_bps: i64,
    pub video_ts: i64,
    pub audio_ts: i64,
    pub meta_video_kbps: i64,
    pub meta_audio_kbps: i64,
    pub meta_fps: i64,
    pub gop_ms: i64,
    pub bytes: i64,
    pub interval_ms: i64,
}

const COLUMNS: &str = "account_id, domain, app, stream, at_ms, started_ms, client_ip, server_ip, \
     sequence, params, video_codec, audio_codec, width, height, fps, video_bps, audio_fps, \
     audio_bps, video_ts, audio_ts, meta_video_kbps, meta_audio_kbps, meta_fps, gop_ms, bytes, \
     interval_ms";

/// Stores `s` and drops samples older than [`KEEP_MS`] before it.
pub fn insert(conn: &Connection, s: &Sample) -> StoreResult<()> {
    conn.execute(
        &format!(
            "INSERT INTO push_samples ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
              ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)"
        ),
        params![
            s.account_id,
            s.domain,
            s.app,
            s.stream,
            s.at_ms,
            s.started_ms,
            s.client_ip,
            s.server_ip,
            s.sequence,
            s.params,
            s.video_codec,
            s.audio_codec,
            s.width,
            s.height,
            s.fps,
            s.video_bps,
            s.audio_fps,
            s.audio_bps,
            s.video_ts,
            s.audio_ts,
            s.meta_video_kbps,
            s.meta_audio_kbps,
            s.meta_fps,
            s.gop_ms,
            s.bytes,
            s.interval_ms
        ],
    )?;
    conn.execute(
        "DELETE FROM push_samples WHERE at_ms < ?1",
        [s.at_ms - KEEP_MS],
    )?;
    Ok(())
}

/// The samples of `stream` of `account` in `from_ms..=to_ms`, oldest
/// first, of `domain` and `app` when given.
pub fn list(
    conn: &Connection,
    account: AccountId,
    stream: &str,
    domain: Option<&str>,
    app: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<Vec<Sample>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM push_samples
         WHERE account_id = ?1 AND stream = ?2 AND at_ms >= ?3 AND at_ms <= ?4
           AND (CAST(?5 AS TEXT) IS NULL OR domain = ?5) AND (CAST(?6 AS TEXT) IS NULL OR app = ?6)
         ORDER BY at_ms, id LIMIT 10000"
    ))?;
    let rows = stmt.query_map(
        params![account.0, stream, from_ms, to_ms, domain, app],
        sample_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One sample's share of a push, for the account-wide push statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushBytes {
    /// The push domain.
    pub domain: String,
    /// Which push: `app/stream` and when it started (Unix ms).
    pub push: (String, String, i64),
    /// Unix ms of the sample.
    pub at_ms: i64,
    /// Bytes received since the push's previous sample.
    pub bytes: u64,
}

/// The samples of every push of `account` in `from_ms..=to_ms`, oldest
/// first.
pub fn of_account(
    conn: &Connection,
    account: AccountId,
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<Vec<PushBytes>> {
    let mut stmt = conn.prepare(
        "SELECT domain, app, stream, started_ms, at_ms, bytes FROM push_samples
         WHERE account_id = ?1 AND at_ms >= ?2 AND at_ms <= ?3 ORDER BY at_ms, id LIMIT 2000000",
    )?;
    let rows = stmt.query_map(params![account.0, from_ms, to_ms], |r| {
        Ok(PushBytes {
            domain: r.get(0)?,
            push: (r.get(1)?, r.get(2)?, r.get(3)?),
            at_ms: r.get(4)?,
            bytes: u64::try_from(r.get::<i64>(5)?).unwrap_or(0),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The latest sample of the push of `account`'s `app/stream` that started
/// at `started_ms` (the push now live on another node, for
/// `DescribeLiveStreamPushInfoList`).
pub fn latest(
    conn: &Connection,
    account: AccountId,
    app: &str,
    stream: &str,
    started_ms: i64,
) -> StoreResult<Option<Sample>> {
    use crate::db::OptionalExtension as _;
    Ok(conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM push_samples
                 WHERE account_id = ?1 AND stream = ?2 AND app = ?3 AND started_ms = ?4
                 ORDER BY at_ms DESC, id DESC LIMIT 1"
            ),
            (account.0, stream, app, started_ms),
            sample_row,
        )
        .optional()?)
}

fn sample_row(r: &crate::db::Row) -> crate::db::DbResult<Sample> {
    Ok(Sample {
        account_id: r.get(0)?,
        domain: r.get(1)?,
        app: r.get(2)?,
        stream: r.get(3)?,
        at_ms: r.get(4)?,
        started_ms: r.get(5)?,
        client_ip: r.get(6)?,
        server_ip: r.get(7)?,
        sequence: r.get(8)?,
        params: r.get(9)?,
        video_codec: r.get(10)?,
        audio_codec: r.get(11)?,
        width: r.get(12)?,
        height: r.get(13)?,
        fps: r.get(14)?,
        video_bps: r.get(15)?,
        audio_fps: r.get(16)?,
        audio_bps: r.get(17)?,
        video_ts: r.get(18)?,
        audio_ts: r.get(19)?,
        meta_video_kbps: r.get(20)?,
        meta_audio_kbps: r.get(21)?,
        meta_fps: r.get(22)?,
        gop_ms: r.get(23)?,
        bytes: r.get(24)?,
        interval_ms: r.get(25)?,
    })
}
