//! Live stream bookkeeping: push sessions (the event history), forbidden
//! streams and delayed streams.

use crate::db::Value;
use crate::db::{Connection, OptionalExtension};

use crate::{AccountId, StoreResult};

/// One push attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSession {
    /// The owner.
    pub account_id: AccountId,
    /// The media plane's session number.
    pub session: i64,
    /// Push domain.
    pub domain: String,
    /// AppName.
    pub app: String,
    /// StreamName.
    pub stream: String,
    /// The publisher's IP address.
    pub client_ip: String,
    /// The push URL's query string.
    pub params: String,
    /// When it started (Unix seconds).
    pub started_at: i64,
    /// When it ended; `None` while live.
    pub ended_at: Option<i64>,
    /// Why it ended (empty while live).
    pub stop_reason: String,
    /// CSS error code of the end.
    pub errcode: i64,
    /// CSS sub error code of the end.
    pub sub_errcode: i64,
    /// `WIDTHxHEIGHT`, empty when unknown.
    pub resolution: String,
    /// False for a refused push.
    pub succeeded: bool,
}

const COLUMNS: &str = "account_id, session, domain, app, stream, client_ip, params, started_at, \
                       ended_at, stop_reason, errcode, sub_errcode, resolution, succeeded";

impl PushSession {
    fn from_row(r: &crate::db::Row) -> crate::db::DbResult<PushSession> {
        Ok(PushSession {
            account_id: AccountId(r.get(0)?),
            session: r.get(1)?,
            domain: r.get(2)?,
            app: r.get(3)?,
            stream: r.get(4)?,
            client_ip: r.get(5)?,
            params: r.get(6)?,
            started_at: r.get(7)?,
            ended_at: r.get(8)?,
            stop_reason: r.get(9)?,
            errcode: r.get(10)?,
            sub_errcode: r.get(11)?,
            resolution: r.get(12)?,
            succeeded: r.get(13)?,
        })
    }
}

/// Records a push session (open when `ended_at` is `None`) made on `node`.
pub fn insert_session(conn: &Connection, node: &str, s: &PushSession) -> StoreResult<()> {
    conn.execute(
        &format!(
            "INSERT INTO stream_sessions ({COLUMNS}, node) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        ),
        crate::params![
            s.account_id.0,
            s.session,
            s.domain,
            s.app,
            s.stream,
            s.client_ip,
            s.params,
            s.started_at,
            s.ended_at,
            s.stop_reason,
            s.errcode,
            s.sub_errcode,
            s.resolution,
            s.succeeded,
            node,
        ],
    )?;
    Ok(())
}

/// Closes the open session with this media-plane session number.
pub fn close_session(
    conn: &Connection,
    session: i64,
    ended_at: i64,
    reason: &str,
    code: (i64, i64),
    resolution: &str,
) -> StoreResult<bool> {
    let n = conn.execute(
        "UPDATE stream_sessions SET ended_at = ?2, stop_reason = ?3, errcode = ?4,
             sub_errcode = ?5, resolution = ?6
         WHERE session = ?1 AND ended_at IS NULL",
        crate::params![session, ended_at, reason, code.0, code.1, resolution],
    )?;
    Ok(n > 0)
}

/// Closes every session `node` left open (after a crash or restart:
/// nothing of its own is live when it starts; other nodes' are theirs).
pub fn close_all_open(
    conn: &Connection,
    node: &str,
    ended_at: i64,
    reason: &str,
) -> StoreResult<u64> {
    let n = conn.execute(
        "UPDATE stream_sessions SET ended_at = ?1, stop_reason = ?2
         WHERE ended_at IS NULL AND node = ?3",
        (ended_at, reason, node),
    )?;
    Ok(n as u64)
}

/// Filters for the session history.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    /// Sessions that started or ended within [from, to] (Unix seconds).
    pub from: i64,
    /// End of the window.
    pub to: i64,
    /// Only this push domain.
    pub domain: Option<String>,
    /// Only this AppName.
    pub app: Option<String>,
    /// Stream name: exact, or a substring when `fuzzy`.
    pub stream: Option<String>,
    /// Substring match on the stream name.
    pub fuzzy: bool,
    /// Only successful pushes.
    pub succeeded_only: bool,
    /// Only ended sessions.
    pub ended_only: bool,
    /// Oldest first.
    pub ascending: bool,
}

/// A page of an account's sessions matching `filter`, and the total count.
pub fn list_sessions(
    conn: &Connection,
    account: AccountId,
    f: &SessionFilter,
    offset: u64,
    limit: u64,
) -> StoreResult<(u64, Vec<PushSession>)> {
    let mut clauses = vec![
        "account_id = ?1".to_owned(),
        "started_at <= ?3".to_owned(),
        "COALESCE(ended_at, ?3) >= ?2".to_owned(),
    ];
    let mut args: Vec<Value> = vec![
        Value::Integer(account.0),
        Value::Integer(f.from),
        Value::Integer(f.to),
    ];
    let mut add = |sql: &str, value: Value| {
        args.push(value);
        clauses.push(sql.replace('#', &format!("?{}", args.len())));
    };
    if let Some(d) = &f.domain {
        add("domain = #", Value::Text(d.clone()));
    }
    if let Some(a) = &f.app {
        add("app = #", Value::Text(a.clone()));
    }
    if let Some(s) = &f.stream {
        if f.fuzzy {
            // instr() rather than LIKE: `_` and `%` in names stay literal.
            add("instr(stream, #) > 0", Value::Text(s.clone()));
        } else {
            add("stream = #", Value::Text(s.clone()));
        }
    }
    if f.succeeded_only {
        clauses.push("succeeded = TRUE".to_owned());
    }
    if f.ended_only {
        clauses.push("ended_at IS NOT NULL".to_owned());
    }
    let where_clause = clauses.join(" AND ");
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM stream_sessions WHERE {where_clause}"),
        &args[..],
        |r| r.get(0),
    )?;
    let order = if f.ascending { "ASC" } else { "DESC" };
    let n = args.len();
    args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    args.push(Value::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM stream_sessions WHERE {where_clause}
         ORDER BY COALESCE(ended_at, started_at) {order}, id {order} LIMIT ?{} OFFSET ?{}",
        n + 1,
        n + 2
    ))?;
    let rows = stmt.query_map(&args[..], PushSession::from_row)?;
    Ok((
        u64::try_from(total).unwrap_or(0),
        rows.collect::<Result<_, _>>()?,
    ))
}

/// A forbidden stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    /// The owner.
    pub account_id: AccountId,
    /// AppName.
    pub app: String,
    /// StreamName.
    pub stream: String,
    /// The push domain named when it was forbidden.
    pub domain: String,
    /// When pushing is allowed again (Unix seconds).
    pub resume_at: i64,
    /// Why, as given.
    pub reason: String,
}

/// Forbids a stream (replacing an earlier entry).
pub fn forbid(conn: &Connection, f: &Forbidden, now: i64) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO forbidden_streams (account_id, app, stream, domain, resume_at, reason, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (account_id, app, stream) DO UPDATE
         SET domain = excluded.domain, resume_at = excluded.resume_at,
             reason = excluded.reason, created_at = excluded.created_at",
        crate::params![f.account_id.0, f.app, f.stream, f.domain, f.resume_at, f.reason, now],
    )?;
    Ok(())
}

/// Lifts a ban; false when the stream was not forbidden.
pub fn resume(conn: &Connection, account: AccountId, app: &str, stream: &str) -> StoreResult<bool> {
    let n = conn.execute(
        "DELETE FROM forbidden_streams WHERE account_id = ?1 AND app = ?2 AND stream = ?3",
        (account.0, app, stream),
    )?;
    Ok(n > 0)
}

/// The ban on a stream, if any (expired or not).
pub fn find_forbidden(
    conn: &Connection,
    account: AccountId,
    app: &str,
    stream: &str,
) -> StoreResult<Option<Forbidden>> {
    Ok(conn
        .query_row(
            "SELECT account_id, app, stream, domain, resume_at, reason FROM forbidden_streams
             WHERE account_id = ?1 AND app = ?2 AND stream = ?3",
            (account.0, app, stream),
            forbidden_from_row,
        )
        .optional()?)
}

fn forbidden_from_row(r: &crate::db::Row) -> crate::db::DbResult<Forbidden> {
    Ok(Forbidden {
        account_id: AccountId(r.get(0)?),
        app: r.get(1)?,
        stream: r.get(2)?,
        domain: r.get(3)?,
        resume_at: r.get(4)?,
        reason: r.get(5)?,
    })
}

/// Every ban still in force at `now`, of every account (for the media
/// plane's policy).
pub fn forbidden_in_force(conn: &Connection, now: i64) -> StoreResult<Vec<Forbidden>> {
    let mut stmt = conn.prepare(
        "SELECT account_id, app, stream, domain, resume_at, reason FROM forbidden_streams
         WHERE resume_at > ?1",
    )?;
    let rows = stmt.query_map([now], forbidden_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A delayed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delayed {
    /// The owner.
    pub account_id: AccountId,
    /// AppName.
    pub app: String,
    /// StreamName.
    pub stream: String,
    /// Push domain.
    pub domain: String,
    /// Seconds of delay.
    pub delay_time: i64,
    /// Until when (Unix seconds).
    pub expire_at: i64,
    /// When it was set (Unix seconds).
    pub created_at: i64,
}

/// Sets (or replaces) a stream's delay.
pub fn set_delay(conn: &Connection, d: &Delayed) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO delayed_streams (account_id, app, stream, domain, delay_time, expire_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (account_id, app, stream) DO UPDATE
         SET domain = excluded.domain, delay_time = excluded.delay_time,
             expire_at = excluded.expire_at, created_at = excluded.created_at",
        crate::params![d.account_id.0, d.app, d.stream, d.domain, d.delay_time, d.expire_at, d.created_at],
    )?;
    Ok(())
}

/// Removes a stream's delay; false when it had none.
pub fn clear_delay(
    conn: &Connection,
    account: AccountId,
    app: &str,
    stream: &str,
) -> StoreResult<bool> {
    let n = conn.execute(
        "DELETE FROM delayed_streams WHERE account_id = ?1 AND app = ?2 AND stream = ?3",
        (account.0, app, stream),
    )?;
    Ok(n > 0)
}

/// Every delay in force at `now`, of every account (for the media plane).
pub fn delays_in_force(conn: &Connection, now: i64) -> StoreResult<Vec<Delayed>> {
    let mut stmt = conn.prepare(
        "SELECT account_id, app, stream, domain, delay_time, expire_at, created_at
         FROM delayed_streams WHERE expire_at > ?1",
    )?;
    let rows = stmt.query_map([now], delayed_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn delayed_from_row(r: &crate::db::Row) -> crate::db::DbResult<Delayed> {
    Ok(Delayed {
        account_id: AccountId(r.get(0)?),
        app: r.get(1)?,
        stream: r.get(2)?,
        domain: r.get(3)?,
        delay_time: r.get(4)?,
        expire_at: r.get(5)?,
        created_at: r.get(6)?,
    })
}

/// An account's delays in force at `now`.
pub fn delays(conn: &Connection, account: AccountId, now: i64) -> StoreResult<Vec<Delayed>> {
    let mut stmt = conn.prepare(
        "SELECT account_id, app, stream, domain, delay_time, expire_at, created_at
         FROM delayed_streams WHERE account_id = ?1 AND expire_at > ?2 ORDER BY created_at, stream",
    )?;
    let rows = stmt.query_map((account.0, now), delayed_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{accounts, Store};

    fn session(account: AccountId, n: i64, stream: &str, start: i64, ok: bool) -> PushSession {
        PushSession {
            account_id: account,
            session: n,
            domain: "push.example.com".into(),
            app: "live".into(),
            stream: stream.into(),
            client_ip: "127.0.0.1".into(),
            params: String::new(),
            started_at: start,
            ended_at: if ok { None } else { Some(start) },
            stop_reason: String::new(),
            errcode: 0,
            sub_errcode: 0,
            resolution: String::new(),
            succeeded: ok,
        }
    }

    #[test]
    fn sessions_are_recorded_closed_and_listed_by_window_and_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_for_tests(dir.path()).expect("open");
        store
            .run_blocking(|c| {
                let a = accounts::ensure(c, "root")?.id;
                insert_session(c, "", &session(a, 1, "cam_1", 100, true))?;
                insert_session(c, "", &session(a, 2, "cam_2", 200, false))?;
                assert!(close_session(c, 1, 150, "closed", (1, 0), "640x360")?);
                assert!(!close_session(c, 1, 160, "again", (1, 0), "")?);
                let all = SessionFilter {
                    from: 0,
                    to: 1000,
                    ..SessionFilter::default()
                };
                let (n, rows) = list_sessions(c, a, &all, 0, 10)?;
                assert_eq!(n, 2);
                assert_eq!(rows[0].stream, "cam_2", "newest first");
                assert_eq!(rows[1].ended_at, Some(150));
                let ok_only = SessionFilter {
                    succeeded_only: true,
                    ..all.clone()
                };
                assert_eq!(list_sessions(c, a, &ok_only, 0, 10)?.0, 1);
                let fuzzy = SessionFilter {
                    stream: Some("m_".into()),
                    fuzzy: true,
                    ..all.clone()
                };
                assert_eq!(list_sessions(c, a, &fuzzy, 0, 10)?.0, 2, "`_` is literal");
                let window = SessionFilter {
                    from: 160,
                    to: 1000,
                    ..all.clone()
                };
                assert_eq!(list_sessions(c, a, &window, 0, 10)?.0, 1);
                let other = accounts::ensure(c, "other")?.id;
                assert_eq!(list_sessions(c, other, &all, 0, 10)?.0, 0);
                Ok(())
            })
            .expect("store");
    }

    #[test]
    fn bans_replace_each_other_expire_and_lift() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_for_tests(dir.path()).expect("open");
        store
            .run_blocking(|c| {
                let a = accounts::ensure(c, "root")?.id;
                let ban = Forbidden {
                    account_id: a,
                    app: "live".into(),
                    stream: "s".into(),
                    domain: "push.example.com".into(),
                    resume_at: 500,
                    reason: "test".into(),
                };
                forbid(c, &ban, 0)?;
                forbid(
                    c,
                    &Forbidden {
                        resume_at: 900,
                        ..ban.clone()
                    },
                    1,
                )?;
                assert_eq!(forbidden_in_force(c, 600)?.len(), 1);
                assert!(forbidden_in_force(c, 900)?.is_empty());
                assert!(resume(c, a, "live", "s")?);
                assert!(!resume(c, a, "live", "s")?);
                Ok(())
            })
            .expect("store");
    }
}
