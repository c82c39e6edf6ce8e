//! Record and screenshot tasks (`livestack_core::tasks`): the rows behind
//! `CreateRecordTask`, `CreateScreenshotTask` and the legacy
//! `CreateLiveRecord`, in one `tasks` table.
//!
//! Owns: the rows, their random tokens, and the question "which tasks are
//! in force" for the media plane's policy ([`in_force`]). Must not: decide
//! what is valid (windows, limits and codes belong to the API) or encode
//! public TaskIds (the API derives them from the id and the token).
//!
//! A stopped task keeps its row with `stopped_at` set, a deleted one with
//! `deleted_at` set: every API query skips deleted rows, and [`in_force`]
//! keeps a deleted task only while the push it was recording when it was
//! deleted goes on (DeleteRecordTask "does not affect a running task, only
//! new pushes").

use crate::db::Value;
use crate::db::{Connection, OptionalExtension};
use livestack_core::rules::{RecordFormat, TemplateId};
use livestack_core::tasks::{LegacyRecord, Task, TaskKind};

use crate::{AccountId, StoreResult};

/// A task as stored: what the media plane needs ([`Task`]) and what only
/// the API shows or checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// The media plane's view; `task.id` is the row id (0 before insert).
    pub task: Task,
    /// Random, never 0 once stored: part of the public TaskId of current
    /// tasks, so that one cannot be guessed from the id.
    pub token: i64,
    /// `StreamType` (1: a mixed stream), or `MixStream` of a legacy task.
    pub stream_type: i64,
    /// `StreamParam` of a legacy task, as given.
    pub stream_param: String,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// When it was stopped; 0 when it never was.
    pub stopped_at: i64,
}

const COLUMNS: &str = "id, account_id, kind, legacy, token, domain, app, stream, start_time, \
                       end_time, template_id, stream_type, format, audio_only, extension, \
                       stream_param, created_at, stopped_at";

fn kind_str(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Record => "record",
        TaskKind::Screenshot => "screenshot",
    }
}

fn format_str(format: RecordFormat) -> &'static str {
    match format {
        RecordFormat::Flv => "flv",
        RecordFormat::Hls => "hls",
        RecordFormat::Mp4 => "mp4",
        RecordFormat::Aac => "aac",
        RecordFormat::Mp3 => "mp3",
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown task {0} `{1}`")]
struct Unknown(&'static str, String);

fn bad(index: usize, what: &'static str, value: String) -> crate::DbError {
    crate::DbError::Conversion {
        index,
        why: Unknown(what, value).to_string(),
    }
}

fn from_row(r: &crate::db::Row) -> crate::db::DbResult<TaskRow> {
    let kind: String = r.get(2)?;
    let kind = match kind.as_str() {
        "record" => TaskKind::Record,
        "screenshot" => TaskKind::Screenshot,
        _ => return Err(bad(2, "kind", kind)),
    };
    let legacy = if r.get::<bool>(3)? {
        let format: String = r.get(12)?;
        let format = RecordFormat::ALL
            .into_iter()
            .find(|f| format_str(*f) == format)
            .ok_or_else(|| bad(12, "format", format))?;
        Some(LegacyRecord {
            format,
            audio_only: r.get(13)?,
        })
    } else {
        None
    };
    Ok(TaskRow {
        task: Task {
            id: r.get(0)?,
            // The API encodes it from the id and the token.
            public_id: String::new(),
            account: AccountId(r.get(1)?),
            kind,
            domain: r.get(5)?,
            app: r.get(6)?,
            stream: r.get(7)?,
            start: r.get(8)?,
            end: r.get(9)?,
            template: r.get::<Option<i64>>(10)?.map(TemplateId),
            legacy,
            extension: r.get(14)?,
        },
        token: r.get(4)?,
        stream_type: r.get(11)?,
        stream_param: r.get(15)?,
        created_at: r.get(16)?,
        stopped_at: r.get(17)?,
    })
}

/// Stores a new task, giving it its id and (when it has none) a random
/// token.
pub fn insert(conn: &Connection, row: &mut TaskRow) -> StoreResult<()> {
    while row.token == 0 {
        row.token = rand::random::<i64>();
    }
    let t = &row.task;
    let (format, audio_only) = match t.legacy {
        Some(l) => (format_str(l.format), l.audio_only),
        None => ("", false),
    };
    let id: i64 = conn.query_row(
        "INSERT INTO tasks (account_id, kind, legacy, token, domain, app, stream, start_time,
             end_time, template_id, stream_type, format, audio_only, extension, stream_param,
             created_at, stopped_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         RETURNING id",
        crate::params![
            t.account.0,
            kind_str(t.kind),
            t.legacy.is_some(),
            row.token,
            t.domain,
            t.app,
            t.stream,
            t.start,
            t.end,
            t.template.map(|id| id.0),
            row.stream_type,
            format,
            audio_only,
            t.extension,
            row.stream_param,
            row.created_at,
            row.stopped_at,
        ],
        |r| r.get(0),
    )?;
    row.task.id = id;
    Ok(())
}

/// One of `account`'s tasks of `kind`, current (`legacy` false) or legacy,
/// unless it was deleted.
pub fn find(
    conn: &Connection,
    account: AccountId,
    kind: TaskKind,
    legacy: bool,
    id: i64,
) -> StoreResult<Option<TaskRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE id = ?1 AND account_id = ?2 AND kind = ?3 AND legacy = ?4 AND deleted_at IS NULL"
    ))?;
    Ok(stmt
        .query_row(
            crate::params![id, account.0, kind_str(kind), legacy],
            from_row,
        )
        .optional()?)
}

/// Stops one of `account`'s tasks at `now` (a task stopped before keeps
/// its first stop time); false when it has no such task.
pub fn stop(conn: &Connection, account: AccountId, id: i64, now: i64) -> StoreResult<bool> {
    let n = conn.execute(
        "UPDATE tasks SET stopped_at = CASE WHEN stopped_at = 0 THEN ?3 ELSE stopped_at END
         WHERE id = ?1 AND account_id = ?2 AND deleted_at IS NULL",
        crate::params![id, account.0, now],
    )?;
    Ok(n > 0)
}

/// Deletes one of `account`'s tasks at `now`; false when it has no such
/// task.
pub fn delete(conn: &Connection, account: AccountId, id: i64, now: i64) -> StoreResult<bool> {
    let n = conn.execute(
        "UPDATE tasks SET deleted_at = ?3
         WHERE id = ?1 AND account_id = ?2 AND deleted_at IS NULL",
        crate::params![id, account.0, now],
    )?;
    Ok(n > 0)
}

/// Which of `account`'s tasks a query is about: one family (a kind,
/// current or legacy), and optionally one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// Recording or snapshots.
    pub kind: TaskKind,
    /// `CreateLiveRecord` tasks rather than current ones.
    pub legacy: bool,
}

/// The tasks of `family` that `account` has, not deleted, not stopped,
/// not ended at `now`, and whose window meets `[from, to)`; only those of
/// one stream (domain, app, stream) when `stream` is given. In id order.
pub fn running_between(
    conn: &Connection,
    account: AccountId,
    family: &Family,
    stream: Option<(&str, &str, &str)>,
    (from, to): (i64, i64),
    now: i64,
) -> StoreResult<Vec<TaskRow>> {
    let mut sql = format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE account_id = ?1 AND kind = ?2 AND legacy = ?3 AND deleted_at IS NULL
           AND stopped_at = 0 AND end_time > ?4 AND start_time < ?6 AND end_time > ?5"
    );
    let mut args: Vec<Value> = vec![
        account.0.into(),
        kind_str(family.kind).to_owned().into(),
        family.legacy.into(),
        now.into(),
        from.into(),
        to.into(),
    ];
    if let Some((domain, app, name)) = stream {
        sql.push_str(" AND domain = ?7 AND app = ?8 AND stream = ?9");
        args.extend([
            domain.to_owned().into(),
            app.to_owned().into(),
            name.to_owned().into(),
        ]);
    }
    sql.push_str(" ORDER BY id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(args, from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many tasks of `family` `account` created at or after `since` and
/// has not deleted.
pub fn created_since(
    conn: &Connection,
    account: AccountId,
    family: &Family,
    since: i64,
) -> StoreResult<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM tasks
         WHERE account_id = ?1 AND kind = ?2 AND legacy = ?3 AND created_at >= ?4
           AND deleted_at IS NULL",
        crate::params![account.0, kind_str(family.kind), family.legacy, since],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A page of `account`'s tasks for `Describe*Task`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFilter {
    /// The family.
    pub family: Family,
    /// Tasks that start at or after this (Unix seconds)…
    pub from: i64,
    /// …and end at or before this.
    pub to: i64,
    /// Only this push domain (lower-case).
    pub domain: Option<String>,
    /// Only this AppName.
    pub app: Option<String>,
    /// Only this StreamName.
    pub stream: Option<String>,
    /// Only tasks with a larger id (the previous page's last).
    pub after: i64,
    /// At most this many.
    pub limit: u64,
}

/// `account`'s tasks matching `filter`, not deleted, in id order.
pub fn list(
    conn: &Connection,
    account: AccountId,
    filter: &TaskFilter,
) -> StoreResult<Vec<TaskRow>> {
    let mut sql = format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE account_id = ?1 AND kind = ?2 AND legacy = ?3 AND deleted_at IS NULL
           AND start_time >= ?4 AND end_time <= ?5 AND id > ?6"
    );
    let mut args: Vec<Value> = vec![
        account.0.into(),
        kind_str(filter.family.kind).to_owned().into(),
        filter.family.legacy.into(),
        filter.from.into(),
        filter.to.into(),
        filter.after.into(),
    ];
    for (column, value) in [
        ("domain", &filter.domain),
        ("app", &filter.app),
        ("stream", &filter.stream),
    ] {
        if let Some(v) = value {
            args.push(v.clone().into());
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    args.push(i64::try_from(filter.limit).unwrap_or(i64::MAX).into());
    sql.push_str(&format!(" ORDER BY id LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(args, from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every account's tasks the media plane must know at `now`: not stopped,
/// not ended, and either not deleted or deleted while recording a push
/// that is still live (a push of the task's stream that started before the
/// deletion, inside the task's window, and has not ended). In id order,
/// with their tokens (the API makes their public ids from them).
pub fn in_force(conn: &Connection, now: i64) -> StoreResult<Vec<TaskRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tasks t
         WHERE t.stopped_at = 0 AND t.end_time > ?1
           AND (t.deleted_at IS NULL
                OR (t.start_time <= t.deleted_at AND t.deleted_at < t.end_time
                    AND EXISTS (SELECT 1 FROM stream_sessions s
                                WHERE s.account_id = t.account_id AND s.app = t.app
                                  AND s.stream = t.stream AND LOWER(s.domain) = t.domain
                                  AND s.succeeded AND s.ended_at IS NULL
                                  AND s.started_at <= t.deleted_at)))
         ORDER BY t.id"
    ))?;
    let rows = stmt.query_map([now], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Whether a task of `account`'s stream `app`/`stream` was deleted while
/// in force and has not ended: when a push of that stream ends, the
/// media plane's policy must be rebuilt to let the task go.
pub fn deleted_while_running(
    conn: &Connection,
    account: AccountId,
    app: &str,
    stream: &str,
    now: i64,
) -> StoreResult<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM tasks
             WHERE account_id = ?1 AND app = ?2 AND stream = ?3 AND deleted_at IS NOT NULL
               AND stopped_at = 0 AND end_time > ?4 AND start_time <= deleted_at)",
        crate::params![account.0, app, stream, now],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::{self, PushSession};
    use crate::{accounts, Store};

    fn row(account: AccountId, kind: TaskKind, stream: &str, start: i64, end: i64) -> TaskRow {
        TaskRow {
            task: Task {
                id: 0,
                public_id: String::new(),
                account,
                kind,
                domain: "push.example.com".into(),
                app: "live".into(),
                stream: stream.into(),
                start,
                end,
                template: Some(TemplateId(1001)),
                legacy: None,
                extension: "ext".into(),
            },
            token: 0,
            stream_type: 0,
            stream_param: String::new(),
            created_at: 50,
            stopped_at: 0,
        }
    }

    const RECORD: Family = Family {
        kind: TaskKind::Record,
        legacy: false,
    };

    #[test]
    fn tasks_round_trip_and_stay_with_their_owner_and_family() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_for_tests(dir.path()).expect("open");
        store
            .run_blocking(|c| {
                let a = accounts::ensure(c, "root")?.id;
                let b = accounts::ensure(c, "other")?.id;
                let mut t = row(a, TaskKind::Record, "s", 100, 200);
                insert(c, &mut t)?;
                assert!(t.task.id > 0 && t.token != 0);
                let mut legacy = row(a, TaskKind::Record, "s", 100, 200);
                legacy.task.template = None;
                legacy.task.legacy = Some(LegacyRecord {
                    format: RecordFormat::Mp4,
                    audio_only: true,
                });
                legacy.stream_param = "record_interval=3600".into();
                insert(c, &mut legacy)?;
                assert_eq!(
                    find(c, a, TaskKind::Record, false, t.task.id)?,
                    Some(t.clone())
                );
                assert_eq!(
                    find(c, a, TaskKind::Record, true, legacy.task.id)?,
                    Some(legacy.clone())
                );
                assert_eq!(
                    find(c, b, TaskKind::Record, false, t.task.id)?,
                    None,
                    "tenancy"
                );
                assert_eq!(find(c, a, TaskKind::Screenshot, false, t.task.id)?, None);
                assert_eq!(find(c, a, TaskKind::Record, true, t.task.id)?, None);
                assert!(!stop(c, b, t.task.id, 150)?);
                assert!(!delete(c, b, t.task.id, 150)?);
                assert!(stop(c, a, t.task.id, 150)?);
                assert!(stop(c, a, t.task.id, 160)?);
                let stopped = find(c, a, TaskKind::Record, false, t.task.id)?.expect("row");
                assert_eq!(stopped.stopped_at, 150, "the first stop counts");
                assert!(delete(c, a, t.task.id, 170)?);
                assert!(!delete(c, a, t.task.id, 170)?, "already deleted");
                assert_eq!(find(c, a, TaskKind::Record, false, t.task.id)?, None);
                assert_eq!(
                    created_since(c, a, &RECORD, 50)?,
                    0,
                    "deleted ones do not count"
                );
                let legacy_family = Family {
                    kind: TaskKind::Record,
                    legacy: true,
                };
                assert_eq!(created_since(c, a, &legacy_family, 50)?, 1);
                assert_eq!(created_since(c, a, &legacy_family, 51)?, 0);
                Ok(())
            })
            .expect("store");
    }

    #[test]
    fn running_tasks_and_pages_are_filtered_by_window_and_stream() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_for_tests(dir.path()).expect("open");
        store
            .run_blocking(|c| {
                let a = accounts::ensure(c, "root")?.id;
                let mut ids = Vec::new();
                for (stream, start, end) in [("s", 100, 200), ("s", 150, 300), ("t", 100, 200)] {
                    let mut t = row(a, TaskKind::Record, stream, start, end);
                    insert(c, &mut t)?;
                    ids.push(t.task.id);
                }
                let mut shot = row(a, TaskKind::Screenshot, "s", 100, 200);
                insert(c, &mut shot)?;
                let running = |stream, window, now| {
                    running_between(c, a, &RECORD, stream, window, now)
                        .map(|v| v.iter().map(|r| r.task.id).collect::<Vec<_>>())
                };
                let s = Some(("push.example.com", "live", "s"));
                assert_eq!(running(s, (0, 1000), 0)?, vec![ids[0], ids[1]]);
                assert_eq!(
                    running(s, (200, 1000), 0)?,
                    vec![ids[1]],
                    "[100,200) ends at 200"
                );
                assert_eq!(
                    running(s, (0, 150), 0)?,
                    vec![ids[0]],
                    "[150,300) starts at 150"
                );
                assert_eq!(
                    running(s, (0, 1000), 250)?,
                    vec![ids[1]],
                    "ended ones do not run"
                );
                assert_eq!(running(None, (0, 1000), 0)?, ids);
                stop(c, a, ids[1], 120)?;
                assert_eq!(
                    running(s, (0, 1000), 0)?,
                    vec![ids[0]],
                    "stopped ones do not run"
                );

                let mut filter = TaskFilter {
                    family: RECORD,
                    from: 100,
                    to: 200,
                    domain: None,
                    app: None,
                    stream: None,
                    after: 0,
                    limit: 10,
                };
                let page = |f: &TaskFilter| {
                    list(c, a, f).map(|v| v.iter().map(|r| r.task.id).collect::<Vec<_>>())
                };
                assert_eq!(
                    page(&filter)?,
                    vec![ids[0], ids[2]],
                    "inside the window only"
                );
                filter.stream = Some("t".into());
                assert_eq!(page(&filter)?, vec![ids[2]]);
                filter.stream = None;
                filter.limit = 1;
                assert_eq!(page(&filter)?, vec![ids[0]]);
                filter.after = ids[0];
                assert_eq!(page(&filter)?, vec![ids[2]]);
                Ok(())
            })
            .expect("store");
    }

    #[test]
    fn a_task_deleted_while_recording_stays_in_force_until_that_push_ends() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_for_tests(dir.path()).expect("open");
        store
            .run_blocking(|c| {
                let a = accounts::ensure(c, "root")?.id;
                let mut live = row(a, TaskKind::Record, "s", 100, 1000);
                insert(c, &mut live)?;
                let mut idle = row(a, TaskKind::Record, "t", 100, 1000);
                insert(c, &mut idle)?;
                let mut pending = row(a, TaskKind::Record, "s", 600, 1000);
                insert(c, &mut pending)?;
                let session = PushSession {
                    account_id: a,
                    session: 7,
                    domain: "Push.example.com".into(),
                    app: "live".into(),
                    stream: "s".into(),
                    client_ip: "127.0.0.1".into(),
                    params: String::new(),
                    started_at: 150,
                    ended_at: None,
                    stop_reason: String::new(),
                    errcode: 0,
                    sub_errcode: 0,
                    resolution: String::new(),
                    succeeded: true,
                };
                streams::insert_session(c, "", &session)?;
                for t in [&live, &idle, &pending] {
                    delete(c, a, t.task.id, 200)?;
                }
                let ids =
                    |now| in_force(c, now).map(|v| v.iter().map(|t| t.task.id).collect::<Vec<_>>());
                assert_eq!(
                    ids(300)?,
                    vec![live.task.id],
                    "only the recording one lingers"
                );
                assert!(deleted_while_running(c, a, "live", "s", 300)?);
                assert!(deleted_while_running(c, a, "live", "t", 300)?);
                assert!(!deleted_while_running(c, a, "live", "s", 1000)?);
                streams::close_session(c, 7, 400, "ended", (0, 0), "")?;
                assert!(ids(450)?.is_empty(), "the push ended: the task goes");
                let mut next = row(a, TaskKind::Screenshot, "s", 100, 1000);
                insert(c, &mut next)?;
                assert_eq!(ids(450)?, vec![next.task.id]);
                stop(c, a, next.task.id, 460)?;
                assert!(ids(470)?.is_empty());
                Ok(())
            })
            .expect("store");
    }
}
