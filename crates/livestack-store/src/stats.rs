//! Play statistics by minute, as the statistics queries read them.
//!
//! Owns: the `play_minutes` (per stream, protocol and play domain, kept
//! [`KEEP_MINUTES_SECS`]) and `play_clients` (per client address, kept
//! [`KEEP_CLIENTS_SECS`]) tables: reports add to a minute's row (bytes,
//! requests and answers add up; `online` keeps the minute's largest
//! count), and `deliver_minutes` (bytes relay tasks pushed out, kept
//! [`KEEP_DELIVERED_SECS`]). Must not: be written on the media path (the API's event
//! recorder writes what the media plane reports).

use crate::db::Connection;
use crate::params;
use livestack_core::media::{PlayProtocol, PlayStats};

use crate::{AccountId, StoreResult};

/// How long per-minute stream statistics are kept (the month
/// `DescribeStreamPlayInfoList` and the billing queries look back).
pub const KEEP_MINUTES_SECS: i64 = 31 * 86_400;
/// How long per-address statistics are kept (the day
/// `DescribeTopClientIpSumInfoList` looks back).
pub const KEEP_CLIENTS_SECS: i64 = 86_400;

/// How long relay bandwidth is kept (the three months
/// `DescribeDeliverBandwidthList` looks back).
pub const KEEP_DELIVERED_SECS: i64 = 93 * 86_400;

/// The HTTP codes counted one by one (CSS's `PlayCodeTotalInfo`).
pub const CODES: [u16; 7] = [400, 403, 404, 500, 502, 503, 504];

/// One minute of one stream over one protocol on one play domain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct Minute {
    pub minute: i64,
    pub domain: String,
    pub app: String,
    pub stream: String,
    pub protocol: String,
    pub bytes: u64,
    pub requests: u64,
    pub online: u64,
    /// Answers by class: 2xx, 3xx, 4xx, 5xx.
    pub classes: [u64; 4],
    /// Answers with each of [`CODES`].
    pub codes: [u64; 7],
}

impl Minute {
    /// Its protocol, when it is one livestack counts.
    pub fn protocol(&self) -> Option<PlayProtocol> {
        PlayProtocol::parse(&self.protocol)
    }
}

/// One client address's plays over a span.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct Client {
    pub ip: String,
    pub bytes: u64,
    pub requests: u64,
    pub failed: u64,
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Adds a report to its minute, and forgets what is past keeping.
pub fn add(conn: &Connection, report: &PlayStats) -> StoreResult<()> {
    for r in &report.streams {
        let mut classes = [0i64; 4];
        let mut codes = [0i64; 7];
        for &(code, n) in &r.codes {
            if let Some(c) = classes.get_mut(usize::from(code / 100).wrapping_sub(2)) {
                *c += i(n);
            }
            if let Some(k) = CODES.iter().position(|c| *c == code) {
                codes[k] += i(n);
            }
        }
        conn.execute(
            "INSERT INTO play_minutes (account_id, minute, domain, app, stream, protocol, bytes,
                 requests, online, s2xx, s3xx, s4xx, s5xx, s400, s403, s404, s500, s502, s503, s504)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20)
             ON CONFLICT (account_id, minute, domain, app, stream, protocol) DO UPDATE SET
                 bytes = play_minutes.bytes + excluded.bytes,
                 requests = play_minutes.requests + excluded.requests,
                 online = CASE WHEN excluded.online > play_minutes.online
                     THEN excluded.online ELSE play_minutes.online END,
                 s2xx = play_minutes.s2xx + excluded.s2xx,
                 s3xx = play_minutes.s3xx + excluded.s3xx,
                 s4xx = play_minutes.s4xx + excluded.s4xx,
                 s5xx = play_minutes.s5xx + excluded.s5xx,
                 s400 = play_minutes.s400 + excluded.s400,
                 s403 = play_minutes.s403 + excluded.s403,
                 s404 = play_minutes.s404 + excluded.s404,
                 s500 = play_minutes.s500 + excluded.s500,
                 s502 = play_minutes.s502 + excluded.s502,
                 s503 = play_minutes.s503 + excluded.s503,
                 s504 = play_minutes.s504 + excluded.s504",
            params![
                r.account.0,
                report.minute,
                r.domain,
                r.app,
                r.stream,
                r.protocol.as_str(),
                i(r.bytes),
                i(r.requests),
                i(r.online),
                classes[0],
                classes[1],
                classes[2],
                classes[3],
                codes[0],
                codes[1],
                codes[2],
                codes[3],
                codes[4],
                codes[5],
                codes[6]
            ],
        )?;
    }
    for c in &report.clients {
        conn.execute(
            "INSERT INTO play_clients (account_id, minute, domain, ip, bytes, requests, failed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (account_id, minute, domain, ip) DO UPDATE SET
                 bytes = play_clients.bytes + excluded.bytes,
                 requests = play_clients.requests + excluded.requests,
                 failed = play_clients.failed + excluded.failed",
            params![
                c.account.0,
                report.minute,
                c.domain,
                c.ip,
                i(c.bytes),
                i(c.requests),
                i(c.failed)
            ],
        )?;
    }
    for (account, bytes) in &report.delivered {
        conn.execute(
            "INSERT INTO deliver_minutes (account_id, minute, bytes) VALUES (?1, ?2, ?3)
             ON CONFLICT (account_id, minute) DO UPDATE SET
                 bytes = deliver_minutes.bytes + excluded.bytes",
            params![account.0, report.minute, i(*bytes)],
        )?;
    }
    conn.execute(
        "DELETE FROM deliver_minutes WHERE minute < ?1",
        [report.minute - KEEP_DELIVERED_SECS],
    )?;
    conn.execute(
        "DELETE FROM play_minutes WHERE minute < ?1",
        [report.minute - KEEP_MINUTES_SECS],
    )?;
    conn.execute(
        "DELETE FROM play_clients WHERE minute < ?1",
        [report.minute - KEEP_CLIENTS_SECS],
    )?;
    Ok(())
}

/// The most rows one query reads (a month of minutes of about a dozen
/// streams over every protocol).
const MAX_ROWS: i64 = 2_000_000;

/// The minutes of `account` from `from` to `to` (Unix seconds, minute
/// starts, inclusive) on `domains` (every domain when empty), oldest
/// first.
pub fn minutes(
    conn: &Connection,
    account: AccountId,
    domains: &[String],
    from: i64,
    to: i64,
) -> StoreResult<Vec<Minute>> {
    let mut stmt = conn.prepare(
        "SELECT minute, domain, app, stream, protocol, bytes, requests, online, s2xx, s3xx,
                s4xx, s5xx, s400, s403, s404, s500, s502, s503, s504
         FROM play_minutes WHERE account_id = ?1 AND minute >= ?2 AND minute <= ?3
         ORDER BY minute, domain, app, stream, protocol LIMIT ?4",
    )?;
    let rows = stmt.query_map(params![account.0, from, to, MAX_ROWS], |r| {
        Ok(Minute {
            minute: r.get(0)?,
            domain: r.get(1)?,
            app: r.get(2)?,
            stream: r.get(3)?,
            protocol: r.get(4)?,
            bytes: u(r.get(5)?),
            requests: u(r.get(6)?),
            online: u(r.get(7)?),
            classes: [u(r.get(8)?), u(r.get(9)?), u(r.get(10)?), u(r.get(11)?)],
            codes: [
                u(r.get(12)?),
                u(r.get(13)?),
                u(r.get(14)?),
                u(r.get(15)?),
                u(r.get(16)?),
                u(r.get(17)?),
                u(r.get(18)?),
            ],
        })
    })?;
    let mut out = Vec::new();
    for row in rows {
        let m = row?;
        if domains.is_empty() || domains.iter().any(|d| d.eq_ignore_ascii_case(&m.domain)) {
            out.push(m);
        }
    }
    Ok(out)
}

/// Each client address of `account` from `from` to `to` (Unix seconds)
/// on `domains` (every domain when empty), its minutes added up.
pub fn clients(
    conn: &Connection,
    account: AccountId,
    domains: &[String],
    from: i64,
    to: i64,
) -> StoreResult<Vec<Client>> {
    let mut stmt = conn.prepare(
        "SELECT domain, ip, bytes, requests, failed FROM play_clients
         WHERE account_id = ?1 AND minute >= ?2 AND minute <= ?3 LIMIT ?4",
    )?;
    let rows = stmt.query_map(params![account.0, from, to, MAX_ROWS], |r| {
        Ok((
            r.get::<String>(0)?,
            Client {
                ip: r.get(1)?,
                bytes: u(r.get(2)?),
                requests: u(r.get(3)?),
                failed: u(r.get(4)?),
            },
        ))
    })?;
    let mut by_ip: std::collections::BTreeMap<String, Client> = std::collections::BTreeMap::new();
    for row in rows {
        let (domain, c) = row?;
        if !domains.is_empty() && !domains.iter().any(|d| d.eq_ignore_ascii_case(&domain)) {
            continue;
        }
        let e = by_ip.entry(c.ip.clone()).or_insert_with(|| Client {
            ip: c.ip.clone(),
            ..Client::default()
        });
        e.bytes += c.bytes;
        e.requests += c.requests;
        e.failed += c.failed;
    }
    Ok(by_ip.into_values().collect())
}

/// Bytes relay tasks of `account` pushed out per minute in `from..=to`
/// (Unix seconds of minute starts): (minute, bytes), oldest first.
pub fn delivered(
    conn: &Connection,
    account: AccountId,
    from: i64,
    to: i64,
) -> StoreResult<Vec<(i64, u64)>> {
    let mut stmt = conn.prepare(
        "SELECT minute, bytes FROM deliver_minutes
         WHERE account_id = ?1 AND minute >= ?2 AND minute <= ?3 ORDER BY minute",
    )?;
    let rows = stmt.query_map(params![account.0, from, to], |r| {
        Ok((r.get::<i64>(0)?, u(r.get(1)?)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
