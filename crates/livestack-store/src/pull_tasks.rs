//! Relay (pull-stream) tasks: the rows behind `CreateLivePullStreamTask`
//! and its family, and what each task's job last reported.
//!
//! Owns: the rows, their random tokens, the per-account uniqueness of
//! `SpecifyTaskId` (a unique index, so two nodes creating the same one at
//! once cannot both succeed) and the run reports. Must not: decide what is
//! valid or interpret the task's spec: `spec` is a JSON object the API
//! writes and reads, kept whole so that Describe echoes what was given.

use crate::db::{Connection, OptionalExtension};
use crate::{AccountId, StoreResult};

/// A relay task as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PullTaskRow {
    /// The row id (0 before insert).
    pub id: i64,
    /// The owner.
    pub account: AccountId,
    /// Made by the legacy `CreatePullStreamConfig` (its ConfigId is the
    /// row id) rather than `CreateLivePullStreamTask`.
    pub legacy: bool,
    /// Random, never 0 once stored: part of the public TaskId.
    pub token: i64,
    /// `SpecifyTaskId`; empty when none was given.
    pub specify: String,
    /// What to pull and push and how, as the API wrote it.
    pub spec: serde_json::Value,
    /// `Status` `enable` (true) or `pause`.
    pub enabled: bool,
    /// Unix seconds it starts.
    pub start: i64,
    /// Unix seconds it ends.
    pub end: i64,
    /// Bumped when the task must start over.
    pub generation: i64,
    /// When it was created and last changed (Unix seconds).
    pub created_at: i64,
    /// See `created_at`.
    pub updated_at: i64,
    /// `Operator` of the create and of the last change.
    pub created_by: String,
    /// See `created_by`.
    pub updated_by: String,
}

/// What a task's job last said about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunReport {
    /// The node running it.
    pub node: String,
    /// Whether it is pushing now.
    pub active: bool,
    /// The URL being pulled.
    pub file_url: String,
    /// Its position in the source list (0-based).
    pub file_index: i64,
    /// Loops of the file list done.
    pub looped: i64,
    /// Seconds into the current source.
    pub offset_secs: i64,
    /// Why the last attempt failed; empty when none did.
    pub last_error: String,
    /// When (Unix seconds).
    pub reported_at: i64,
    /// The task's `SourceType` (for its run spans; not kept with the
    /// report).
    pub source_type: String,
}

/// One run of a task: when it pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpan {
    /// The task's row id.
    pub task: i64,
    /// Its `SourceType`.
    pub source_type: String,
    /// Unix seconds it started pushing.
    pub started_at: i64,
    /// Unix seconds it stopped; `None` while it runs.
    pub ended_at: Option<i64>,
}

const COLUMNS: &str = "id, account_id, token, specify_task_id, spec, status, start_time, \
                       end_time, generation, created_at, updated_at, created_by, updated_by, \
                       legacy";

fn from_row(r: &crate::db::Row) -> crate::db::DbResult<PullTaskRow> {
    let spec: String = r.get(4)?;
    let spec = serde_json::from_str(&spec).map_err(|e| crate::DbError::Conversion {
        index: 4,
        why: format!("a relay task's spec is not JSON: {e}"),
    })?;
    Ok(PullTaskRow {
        id: r.get(0)?,
        account: AccountId(r.get(1)?),
        token: r.get(2)?,
        specify: r.get(3)?,
        spec,
        enabled: r.get::<String>(5)? == "enable",
        start: r.get(6)?,
        end: r.get(7)?,
        generation: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        created_by: r.get(11)?,
        updated_by: r.get(12)?,
        legacy: r.get(13)?,
    })
}

fn status(enabled: bool) -> &'static str {
    if enabled {
        "enable"
    } else {
        "pause"
    }
}

/// Stores a new task, giving it its id and a random token.
pub fn insert(conn: &Connection, row: &mut PullTaskRow) -> StoreResult<()> {
    while row.token == 0 {
        row.token = rand::random::<i64>();
    }
    let id: i64 = conn.query_row(
        "INSERT INTO pull_tasks (account_id, token, specify_task_id, spec, status, start_time,
             end_time, generation, created_at, updated_at, created_by, updated_by, legacy)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         RETURNING id",
        crate::params![
            row.account.0,
            row.token,
            row.specify,
            row.spec.to_string(),
            status(row.enabled),
            row.start,
            row.end,
            row.generation,
            row.created_at,
            row.updated_at,
            row.created_by,
            row.updated_by,
            row.legacy,
        ],
        |r| r.get(0),
    )?;
    row.id = id;
    Ok(())
}

/// Writes every changeable field of a stored task back.
pub fn update(conn: &Connection, row: &PullTaskRow) -> StoreResult<bool> {
    let n = conn.execute(
        "UPDATE pull_tasks SET specify_task_id = ?3, spec = ?4, status = ?5, start_time = ?6,
             end_time = ?7, generation = ?8, updated_at = ?9, updated_by = ?10
         WHERE id = ?1 AND account_id = ?2 AND deleted_at IS NULL",
        crate::params![
            row.id,
            row.account.0,
            row.specify,
            row.spec.to_string(),
            status(row.enabled),
            row.start,
            row.end,
            row.generation,
            row.updated_at,
            row.updated_by,
        ],
    )?;
    Ok(n > 0)
}

/// One of `account`'s tasks (`legacy`: made by `CreatePullStreamConfig`),
/// unless deleted.
pub fn find(
    conn: &Connection,
    account: AccountId,
    legacy: bool,
    id: i64,
) -> StoreResult<Option<PullTaskRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM pull_tasks
         WHERE id = ?1 AND account_id = ?2 AND legacy = ?3 AND deleted_at IS NULL"
    ))?;
    Ok(stmt
        .query_row(crate::params![id, account.0, legacy], from_row)
        .optional()?)
}

/// `account`'s task created with `SpecifyTaskId` `specify`, unless deleted.
pub fn find_specified(
    conn: &Connection,
    account: AccountId,
    specify: &str,
) -> StoreResult<Option<PullTaskRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM pull_tasks
         WHERE account_id = ?1 AND specify_task_id = ?2 AND specify_task_id <> ''
           AND legacy = FALSE AND deleted_at IS NULL"
    ))?;
    Ok(stmt
        .query_row(crate::params![account.0, specify], from_row)
        .optional()?)
}

/// Deletes one of `account`'s tasks at `now`, and its run report.
pub fn delete(conn: &Connection, account: AccountId, id: i64, now: i64) -> StoreResult<bool> {
    let n = conn.execute(
        "UPDATE pull_tasks SET deleted_at = ?3
         WHERE id = ?1 AND account_id = ?2 AND deleted_at IS NULL",
        crate::params![id, account.0, now],
    )?;
    conn.execute(
        "DELETE FROM pull_task_runs WHERE task_id = ?1",
        crate::params![id],
    )?;
    conn.execute(
        "UPDATE pull_task_spans SET ended_at = CASE WHEN ?2 > started_at THEN ?2 ELSE started_at END
         WHERE task_id = ?1 AND ended_at IS NULL",
        crate::params![id, now],
    )?;
    Ok(n > 0)
}

/// How many tasks of a family `account` has (ended ones too, until
/// deleted: they count against the limit, as CSS's do).
pub fn count(conn: &Connection, account: AccountId, legacy: bool) -> StoreResult<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM pull_tasks
         WHERE account_id = ?1 AND legacy = ?2 AND deleted_at IS NULL",
        crate::params![account.0, legacy],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A page of `account`'s tasks of a family, last changed first.
pub fn page(
    conn: &Connection,
    account: AccountId,
    legacy: bool,
    offset: u64,
    limit: u64,
) -> StoreResult<Vec<PullTaskRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM pull_tasks
         WHERE account_id = ?1 AND legacy = ?4 AND deleted_at IS NULL
         ORDER BY updated_at DESC, id DESC LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = stmt.query_map(
        crate::params![
            account.0,
            i64::try_from(limit).unwrap_or(i64::MAX),
            i64::try_from(offset).unwrap_or(i64::MAX),
            legacy
        ],
        from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every account's tasks that have not ended at `now` nor been deleted,
/// paused ones included: the media plane's policy.
pub fn in_force(conn: &Connection, now: i64) -> StoreResult<Vec<PullTaskRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM pull_tasks WHERE deleted_at IS NULL AND end_time > ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map(crate::params![now], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records what task `task`'s job says, unless the task is gone.
pub fn report(conn: &Connection, task: i64, r: &RunReport) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO pull_task_runs (task_id, node, active, file_url, file_index, looped,
             offset_secs, last_error, reported_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
         WHERE EXISTS (SELECT 1 FROM pull_tasks WHERE id = ?1 AND deleted_at IS NULL)
         ON CONFLICT (task_id) DO UPDATE SET node = excluded.node, active = excluded.active,
             file_url = excluded.file_url, file_index = excluded.file_index,
             looped = excluded.looped, offset_secs = excluded.offset_secs,
             last_error = excluded.last_error, reported_at = excluded.reported_at",
        crate::params![
            task,
            r.node,
            r.active,
            r.file_url,
            r.file_index,
            r.looped,
            r.offset_secs,
            r.last_error,
            r.reported_at,
        ],
    )?;
    // A run opens with the first report that it pushes and closes with
    // the first that it does not.
    let open: Option<i64> = conn
        .query_row(
            "SELECT id FROM pull_task_spans WHERE task_id = ?1 AND ended_at IS NULL",
            crate::params![task],
            |row| row.get(0),
        )
        .optional()?;
    match (open, r.active) {
        (None, true) => {
            conn.execute(
                "INSERT INTO pull_task_spans (task_id, account_id, source_type, started_at)
                 SELECT id, account_id, ?2, ?3 FROM pull_tasks
                 WHERE id = ?1 AND deleted_at IS NULL",
                crate::params![task, r.source_type, r.reported_at],
            )?;
        }
        (Some(span), false) => close_span(conn, span, r.reported_at)?,
        _ => {}
    }
    Ok(())
}

fn close_span(conn: &Connection, span: i64, at: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE pull_task_spans SET ended_at = CASE WHEN ?2 > started_at THEN ?2 ELSE started_at END WHERE id = ?1",
        crate::params![span, at],
    )?;
    Ok(())
}

/// `account`'s task runs that overlap `from..=to` (Unix seconds), deleted
/// tasks' included.
pub fn spans_between(
    conn: &Connection,
    account: AccountId,
    from: i64,
    to: i64,
) -> StoreResult<Vec<RunSpan>> {
    let mut stmt = conn.prepare_cached(
        "SELECT task_id, source_type, started_at, ended_at FROM pull_task_spans
         WHERE account_id = ?1 AND started_at <= ?3 AND (ended_at IS NULL OR ended_at >= ?2)
         ORDER BY started_at",
    )?;
    let rows = stmt.query_map(crate::params![account.0, from, to], |r| {
        Ok(RunSpan {
            task: r.get(0)?,
            source_type: r.get(1)?,
            started_at: r.get(2)?,
            ended_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What task `task`'s job last said, if it ever ran.
pub fn last_report(conn: &Connection, task: i64) -> StoreResult<Option<RunReport>> {
    let mut stmt = conn.prepare_cached(
        "SELECT node, active, file_url, file_index, looped, offset_secs, last_error, reported_at
         FROM pull_task_runs WHERE task_id = ?1",
    )?;
    Ok(stmt
        .query_row(crate::params![task], |r| {
            Ok(RunReport {
                node: r.get(0)?,
                active: r.get(1)?,
                file_url: r.get(2)?,
                file_index: r.get(3)?,
                looped: r.get(4)?,
                offset_secs: r.get(5)?,
                last_error: r.get(6)?,
                reported_at: r.get(7)?,
                source_type: String::new(),
            })
        })
        .optional()?)
}

/// Files inserted into a task, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertRow {
    /// The row id (0 before insert).
    pub id: i64,
    /// The task's row id.
    pub task: i64,
    /// `InsertAfterIndex`.
    pub after: i64,
    /// `InsertPriorityType`.
    pub priority: i64,
    /// `InsertContext`.
    pub context: String,
    /// The files' URLs.
    pub files: Vec<String>,
}

/// Stores an insert for task `row.task` at `now`.
pub fn insert_files(conn: &Connection, row: &InsertRow, now: i64) -> StoreResult<i64> {
    let files = serde_json::Value::from(row.files.clone()).to_string();
    Ok(conn.query_row(
        "INSERT INTO pull_task_inserts (task_id, after_index, priority, context, files, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        crate::params![row.task, row.after, row.priority, row.context, files, now],
        |r| r.get(0),
    )?)
}

/// Every insert not played yet of a task not deleted, oldest first: the
/// media plane's policy.
pub fn pending_inserts(conn: &Connection) -> StoreResult<Vec<InsertRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.id, i.task_id, i.after_index, i.priority, i.context, i.files
         FROM pull_task_inserts i JOIN pull_tasks t ON t.id = i.task_id
         WHERE i.played_at IS NULL AND t.deleted_at IS NULL ORDER BY i.id",
    )?;
    let rows = stmt.query_map(crate::params![], |r| {
        let files: String = r.get(5)?;
        Ok(InsertRow {
            id: r.get(0)?,
            task: r.get(1)?,
            after: r.get(2)?,
            priority: r.get(3)?,
            context: r.get(4)?,
            files: serde_json::from_str(&files).unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Notes that an insert's files have been started.
pub fn insert_played(conn: &Connection, id: i64, at: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE pull_task_inserts SET played_at = ?2 WHERE id = ?1 AND played_at IS NULL",
        crate::params![id, at],
    )?;
    Ok(())
}
