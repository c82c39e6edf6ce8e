//! Record and screenshot tasks: `Create/Stop/Delete/DescribeRecordTask`,
//! `Create/Stop/Delete/DescribeScreenshotTask`, and the legacy
//! `CreateLiveRecord`, `StopLiveRecord`, `DeleteLiveRecord`.
//!
//! Owns: the documented windows and limits of tasks, the public TaskIds
//! and ScrollTokens (and the ids the media plane's callbacks report,
//! [`crate::ids::public_task_id`]), and the codes of these actions. Must not: record or
//! take snapshots; the media plane does, for the tasks in its policy
//! (`Processing::tasks`), which every change here republishes.
//!
//! A task whose template stores files in an object-storage bucket is
//! created only if the media plane can reach that bucket now
//! (`MediaControl::check_bucket`); otherwise the answer is
//! `FailedOperation.InvokeVideoApiFail`. Legacy tasks have no template
//! and always record into the media library (the local directory), so
//! they need no check.
//!
//! The documented rules:
//! - current tasks (<https://cloud.tencent.com/document/product/267/45983>,
//!   <https://www.tencentcloud.com/document/api/267/37309>): StartTime
//!   omitted means now and may be at most 6 days ahead; EndTime later than
//!   StartTime and now, earlier than now + 7 days, at most 24 hours after
//!   StartTime; at most 3 tasks of a stream overlap; a missing or wrong
//!   record TemplateId records HLS, a wrong snapshot TemplateId takes no
//!   snapshots. Stopping ends a task for good; deleting "does not affect
//!   running tasks and takes effect only for new pushes"
//!   (<https://www.tencentcloud.com/document/api/267/37308>).
//! - `Describe*Task`: a window of at most 7 days starting at most 90 days
//!   ago; a task is listed when it starts and ends inside it; deleted tasks
//!   are not listed; pages follow `ScrollToken`.
//! - legacy (<https://cloud.tencent.com/document/api/267/30148>,
//!   <https://www.tencentcloud.com/document/api/267/30847>): Beijing
//!   times `yyyy-mm-dd HH:MM:SS`, URL-encoded or not; scheduled mode needs
//!   both times, at most one day apart; real-time mode (`Highlight` 1)
//!   needs the stream live, starts now and lasts at most 30 minutes; in
//!   scheduled mode at most 4000 tasks a (Beijing) day, deleted ones not
//!   counted, and 400 at once ([`TaskLimits`], which an operator may
//!   raise as Tencent does on request); an ongoing recording cannot be
//!   deleted (<https://www.tencentcloud.com/document/api/267/30844>). The
//!   one-day span of scheduled mode is the older API's
//!   (<https://cloud.tencent.com/doc/api/258/4723>).

use livestack_core::rules::{Kind, RecordFormat, Template, TemplateId};
use livestack_core::tasks::{LegacyRecord, Task, TaskKind};
use livestack_model::{
    CreateLiveRecordRequest, CreateLiveRecordResponse, CreateRecordTaskRequest,
    CreateRecordTaskResponse, CreateScreenshotTaskRequest, CreateScreenshotTaskResponse,
    DeleteLiveRecordRequest, DeleteLiveRecordResponse, DeleteRecordTaskRequest,
    DeleteRecordTaskResponse, DeleteScreenshotTaskRequest, DeleteScreenshotTaskResponse,
    DescribeRecordTaskRequest, DescribeRecordTaskResponse, DescribeScreenshotTaskRequest,
    DescribeScreenshotTaskResponse, RecordTask, ScreenshotTask, StopLiveRecordRequest,
    StopLiveRecordResponse, StopRecordTaskRequest, StopRecordTaskResponse,
    StopScreenshotTaskRequest, StopScreenshotTaskResponse,
};
use livestack_store::tasks::{self, Family, TaskFilter, TaskRow};
use livestack_store::{templates, Connection};

use super::check::{
    check_name, check_push_domain, dry_run_stop, is_push_domain, not_push_domain, to_i64,
};
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{parse_scroll_token, parse_task_id, scroll_token, task_id};
pub use crate::settings::TaskLimits;

const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// Current tasks of one stream that may overlap.
pub const MAX_OVERLAPPING: usize = 3;
pub use crate::settings::{LEGACY_AT_ONCE, LEGACY_PER_DAY};

/// Tasks in one page of `Describe*Task` (undocumented; the doc only says a
/// page may not hold everything).
pub const PAGE_SIZE: u64 = 100;

// ---------------------------------------------------------------- checks

/// The most windows of `windows` that are open at one instant inside
/// `[from, to)` (windows are half-open `[start, end)`).
pub fn max_overlap(windows: &[(i64, i64)], from: i64, to: i64) -> usize {
    let mut edges: Vec<(i64, i32)> = windows
        .iter()
        .map(|&(s, e)| (s.max(from), e.min(to)))
        .filter(|(s, e)| s < e)
        .flat_map(|(s, e)| [(s, 1), (e, -1)])
        .collect();
    // At one instant, ends come before starts: [0,10) and [10,20) do not overlap.
    edges.sort_unstable();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        open += step;
        most = most.max(open);
    }
    usize::try_from(most).unwrap_or(0)
}

/// Asks the media plane whether the buckets `template` stores files in
/// can take them now. A task whose files would pile up on local disk,
/// unseen, because their bucket cannot be reached is refused with
/// `FailedOperation.InvokeVideoApiFail` (the seed's code for a failed
/// call to the storage service); files kept in the media library
/// (livestack's local directory) need no check.
async fn check_storage(cx: &Cx, template: &Template) -> ApiResult<()> {
    let buckets = template.spec.buckets();
    if buckets.is_empty() {
        return Ok(());
    }
    let account = cx.account;
    let app_id = cx
        .store
        .run(move |c| livestack_store::accounts::get(c, account))
        .await?
        .map_or(0, |a| a.app_id);
    for (bucket, region) in buckets {
        if let Err(reason) = cx.media.check_bucket(app_id, bucket, region).await {
            let id = template.id.0;
            return Err(ApiError::new(
                ErrorCode::FailedOperationInvokeVideoApiFail,
                format!(
                    "Template {id} stores files in the bucket `{bucket}`, which cannot take them now: {reason}. \
                     Check the object storage settings, or store to the media library; no task was created."
                ),
                format!(
                    "模板 {id} 的存储桶 `{bucket}` 当前无法写入（{reason}）。请检查对象存储配置或改为存储到点播；任务未创建。"
                ),
            ));
        }
    }
    Ok(())
}

fn invalid(en: String, zh: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, en, zh)
}

/// The window of a current task: `StartTime` (omitted or 0: now) and
/// `EndTime`, checked against the documented rules.
fn current_window(now: i64, start: Option<u64>, end: u64) -> ApiResult<(i64, i64)> {
    let start = start.filter(|&s| s != 0).map_or(now, to_i64);
    let end = to_i64(end);
    if end <= now {
        return Err(invalid(
            "EndTime must be later than the current time.".into(),
            "EndTime 必须大于当前时间。".into(),
        ));
    }
    if end <= start {
        return Err(invalid(
            "EndTime must be later than StartTime.".into(),
            "EndTime 必须大于 StartTime。".into(),
        ));
    }
    if end >= now.saturating_add(7 * DAY) {
        return Err(invalid(
            "EndTime must be earlier than the current time plus 7 days.".into(),
            "EndTime 必须小于当前时间+7天。".into(),
        ));
    }
    if start > now + 6 * DAY {
        return Err(invalid(
            "StartTime may be at most 6 days after the current time.".into(),
            "StartTime 不能晚于当前时间+6天。".into(),
        ));
    }
    if end - start > DAY {
        return Err(invalid(
            "EndTime - StartTime may not exceed 24 hours.".into(),
            "EndTime - StartTime 不能超过24小时。".into(),
        ));
    }
    Ok((start, end))
}

/// The query window of `Describe*Task`.
fn describe_window(now: i64, start: u64, end: u64) -> ApiResult<(i64, i64)> {
    let (from, to) = (to_i64(start), to_i64(end));
    if to <= from {
        return Err(invalid(
            "EndTime must be later than StartTime.".into(),
            "EndTime 必须大于 StartTime。".into(),
        ));
    }
    if from < now - 90 * DAY {
        return Err(invalid(
            "StartTime may be at most 90 days ago.".into(),
            "StartTime 不能早于当前时间之前90天。".into(),
        ));
    }
    if to - from > 7 * DAY {
        return Err(invalid(
            "The query window may span at most one week.".into(),
            "查询时间跨度不能超过一周。".into(),
        ));
    }
    Ok((from, to))
}

// ---------------------------------------------------------------- current tasks

/// What a current Create request gives.
struct NewTask {
    kind: TaskKind,
    domain: String,
    app: String,
    stream: String,
    start: Option<u64>,
    end: u64,
    stream_type: Option<u64>,
    template: Option<u64>,
    extension: Option<String>,
}

fn family(kind: TaskKind) -> Family {
    Family {
        kind,
        legacy: false,
    }
}

fn noun(kind: TaskKind) -> (&'static str, &'static str) {
    match kind {
        TaskKind::Record => ("recording", "录制"),
        TaskKind::Screenshot => ("screenshot", "截图"),
    }
}

async fn create_task(cx: &Cx, req: NewTask) -> ApiResult<String> {
    let domain = req.domain.trim().to_ascii_lowercase();
    check_name(ErrorCode::InvalidParameter, "AppName", &req.app)?;
    check_name(ErrorCode::InvalidParameter, "StreamName", &req.stream)?;
    let stream_type = match req.stream_type.unwrap_or(0) {
        v @ (0 | 1) => v as i64,
        v => {
            return Err(invalid(
                format!("StreamType must be 0 or 1, not {v}."),
                format!("StreamType 的取值须为 0 或 1，当前为 {v}。"),
            ))
        }
    };
    let (start, end) = current_window(cx.now, req.start, req.end)?;
    let (account, now, dry_run, kind) = (cx.account, cx.now, cx.dry_run, req.kind);
    let template_kind = match kind {
        TaskKind::Record => Kind::Record,
        TaskKind::Screenshot => Kind::Snapshot,
    };
    let mut row = TaskRow {
        task: Task {
            id: 0,
            public_id: String::new(),
            account,
            kind,
            domain,
            app: req.app,
            stream: req.stream,
            start,
            end,
            template: None,
            legacy: None,
            extension: req.extension.unwrap_or_default(),
        },
        token: 0,
        stream_type,
        stream_param: String::new(),
        created_at: now,
        stopped_at: 0,
    };
    let requested = req.template.filter(|&t| t != 0).map(to_i64);
    // Before anything is written: the domain (so that a wrong one is
    // said first), then where the template's files would go. Both are
    // checked again in the transaction.
    let (is_push, template) = {
        let domain = row.task.domain.clone();
        cx.store
            .run(move |c| {
                let template = match requested {
                    Some(id) => templates::find(c, account, template_kind, TemplateId(id))?,
                    None => None,
                };
                Ok((is_push_domain(c, account, &domain)?, template))
            })
            .await?
    };
    if !is_push {
        return Err(not_push_domain(
            &row.task.domain,
            ErrorCode::InvalidParameter,
        ));
    }
    if let Some(t) = &template {
        check_storage(cx, t).await?;
    }
    let row = cx
        .store
        .transaction(move |c| {
            let t = &mut row.task;
            check_push_domain(c, account, &t.domain, ErrorCode::InvalidParameter)?;
            // A template id that is not one of the caller's templates of
            // the family counts as none (recording: HLS; snapshots: none).
            if let Some(id) = requested {
                if templates::find(c, account, template_kind, TemplateId(id))?.is_some() {
                    t.template = Some(TemplateId(id));
                }
            }
            let running = tasks::running_between(
                c,
                account,
                &family(kind),
                Some((&t.domain, &t.app, &t.stream)),
                (t.start, t.end),
                now,
            )?;
            let windows: Vec<(i64, i64)> =
                running.iter().map(|r| (r.task.start, r.task.end)).collect();
            if max_overlap(&windows, t.start, t.end) + 1 > MAX_OVERLAPPING {
                let (en, zh) = noun(kind);
                return Err(ApiError::new(
                    ErrorCode::LimitExceededMaximumRunningTask,
                    format!(
                        "{}/{}/{} already has {MAX_OVERLAPPING} {en} tasks overlapping this window.",
                        t.domain, t.app, t.stream
                    ),
                    format!(
                        "{}/{}/{} 在该时段已有 {MAX_OVERLAPPING} 个重叠的{zh}任务。",
                        t.domain, t.app, t.stream
                    ),
                ));
            }
            dry_run_stop(dry_run)?;
            tasks::insert(c, &mut row)?;
            Ok::<_, ApiError>(row)
        })
        .await?;
    cx.publish_policy().await?;
    Ok(task_id(row.task.id, row.token))
}

fn task_not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ResourceNotFoundTaskId,
        format!("There is no task with TaskId `{id}`."),
        format!("TaskId `{id}` 不存在。"),
    )
}

/// Stops (`delete` false) or deletes a current task named by its TaskId.
async fn end_task(cx: &Cx, kind: TaskKind, public_id: String, delete: bool) -> ApiResult<()> {
    let Some((id, token)) = parse_task_id(public_id.trim()) else {
        return Err(task_not_found(&public_id));
    };
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    cx.store
        .transaction(move |c| {
            match tasks::find(c, account, kind, false, id)? {
                Some(row) if row.token == token => {}
                _ => return Err(task_not_found(&public_id)),
            }
            dry_run_stop(dry_run)?;
            if delete {
                tasks::delete(c, account, id, now)?;
            } else {
                tasks::stop(c, account, id, now)?;
            }
            Ok::<_, ApiError>(())
        })
        .await?;
    cx.publish_policy().await
}

/// What a `Describe*Task` request gives.
struct Query {
    start: u64,
    end: u64,
    domain: Option<String>,
    app: Option<String>,
    stream: Option<String>,
    scroll_token: Option<String>,
}

/// One page of the caller's current tasks of `kind`, and the next page's
/// ScrollToken ("" on the last page).
async fn describe_tasks(cx: &Cx, kind: TaskKind, q: Query) -> ApiResult<(Vec<TaskRow>, String)> {
    let (from, to) = describe_window(cx.now, q.start, q.end)?;
    let after = parse_scroll_token(q.scroll_token.as_deref().unwrap_or("").trim())?;
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = TaskFilter {
        family: family(kind),
        from,
        to,
        domain: non_empty(q.domain).map(|d| d.trim().to_ascii_lowercase()),
        app: non_empty(q.app),
        stream: non_empty(q.stream),
        after,
        // One more than a page tells whether there is a next one.
        limit: PAGE_SIZE + 1,
    };
    let account = cx.account;
    let mut rows = cx
        .store
        .run(move |c| tasks::list(c, account, &filter))
        .await?;
    let next = if rows.len() as u64 > PAGE_SIZE {
        rows.truncate(PAGE_SIZE as usize);
        rows.last()
            .map(|r| scroll_token(r.task.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((rows, next))
}

/// The fields both task structs of the wire share.
macro_rules! task_row {
    ($ty:ident, $r:expr) => {{
        let r: TaskRow = $r;
        $ty {
            task_id: task_id(r.task.id, r.token),
            domain_name: r.task.domain,
            app_name: r.task.app,
            stream_name: r.task.stream,
            start_time: u64::try_from(r.task.start).unwrap_or(0),
            end_time: u64::try_from(r.task.end).unwrap_or(0),
            template_id: r
                .task
                .template
                .map_or(0, |t| u64::try_from(t.0).unwrap_or(0)),
            stopped: u64::try_from(r.stopped_at).unwrap_or(0),
        }
    }};
}

/// Creates a recording task.
pub async fn create_record_task(
    cx: Cx,
    req: CreateRecordTaskRequest,
) -> ApiResult<CreateRecordTaskResponse> {
    let task = NewTask {
        kind: TaskKind::Record,
        domain: req.domain_name,
        app: req.app_name,
        stream: req.stream_name,
        start: req.start_time,
        end: req.end_time,
        stream_type: req.stream_type,
        template: req.template_id,
        extension: req.extension,
    };
    Ok(CreateRecordTaskResponse {
        task_id: create_task(&cx, task).await?,
    })
}

/// Ends a recording task now; it will not start again.
pub async fn stop_record_task(
    cx: Cx,
    req: StopRecordTaskRequest,
) -> ApiResult<StopRecordTaskResponse> {
    end_task(&cx, TaskKind::Record, req.task_id, false).await?;
    Ok(StopRecordTaskResponse {})
}

/// Deletes a recording task (a recording under way goes on until its push
/// ends).
pub async fn delete_record_task(
    cx: Cx,
    req: DeleteRecordTaskRequest,
) -> ApiResult<DeleteRecordTaskResponse> {
    end_task(&cx, TaskKind::Record, req.task_id, true).await?;
    Ok(DeleteRecordTaskResponse {})
}

/// The caller's recording tasks in a window, a page at a time.
pub async fn describe_record_task(
    cx: Cx,
    req: DescribeRecordTaskRequest,
) -> ApiResult<DescribeRecordTaskResponse> {
    let query = Query {
        start: req.start_time,
        end: req.end_time,
        domain: req.domain_name,
        app: req.app_name,
        stream: req.stream_name,
        scroll_token: req.scroll_token,
    };
    let (rows, next) = describe_tasks(&cx, TaskKind::Record, query).await?;
    Ok(DescribeRecordTaskResponse {
        scroll_token: next,
        task_list: rows.into_iter().map(|r| task_row!(RecordTask, r)).collect(),
    })
}

/// Creates a screenshot task.
pub async fn create_screenshot_task(
    cx: Cx,
    req: CreateScreenshotTaskRequest,
) -> ApiResult<CreateScreenshotTaskResponse> {
    let task = NewTask {
        kind: TaskKind::Screenshot,
        domain: req.domain_name,
        app: req.app_name,
        stream: req.stream_name,
        start: req.start_time,
        end: req.end_time,
        stream_type: req.stream_type,
        template: Some(req.template_id),
        extension: req.extension,
    };
    Ok(CreateScreenshotTaskResponse {
        task_id: create_task(&cx, task).await?,
    })
}

/// Ends a screenshot task now; it will not start again.
pub async fn stop_screenshot_task(
    cx: Cx,
    req: StopScreenshotTaskRequest,
) -> ApiResult<StopScreenshotTaskResponse> {
    end_task(&cx, TaskKind::Screenshot, req.task_id, false).await?;
    Ok(StopScreenshotTaskResponse {})
}

/// Deletes a screenshot task (snapshots under way go on until the push
/// ends).
pub async fn delete_screenshot_task(
    cx: Cx,
    req: DeleteScreenshotTaskRequest,
) -> ApiResult<DeleteScreenshotTaskResponse> {
    end_task(&cx, TaskKind::Screenshot, req.task_id, true).await?;
    Ok(DeleteScreenshotTaskResponse {})
}

/// The caller's screenshot tasks in a window, a page at a time.
pub async fn describe_screenshot_task(
    cx: Cx,
    req: DescribeScreenshotTaskRequest,
) -> ApiResult<DescribeScreenshotTaskResponse> {
    let query = Query {
        start: req.start_time,
        end: req.end_time,
        domain: req.domain_name,
        app: req.app_name,
        stream: req.stream_name,
        scroll_token: req.scroll_token,
    };
    let (rows, next) = describe_tasks(&cx, TaskKind::Screenshot, query).await?;
    Ok(DescribeScreenshotTaskResponse {
        scroll_token: next,
        task_list: rows
            .into_iter()
            .map(|r| task_row!(ScreenshotTask, r))
            .collect(),
    })
}

// ---------------------------------------------------------------- legacy

const LEGACY: Family = Family {
    kind: TaskKind::Record,
    legacy: true,
};

fn bad_value(en: String, zh: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameterValue, en, zh)
}

/// One URL-encoded value (`+` for a space); `None` when it holds a bare
/// `&` or `=`, which an encoded value cannot.
fn url_decode(value: &str) -> Option<String> {
    let mut pairs = form_urlencoded::parse(value.as_bytes());
    match (pairs.next(), pairs.next()) {
        (Some((k, v)), None) if v.is_empty() && !value.contains('=') => Some(k.into_owned()),
        _ => None,
    }
}

/// A legacy time: Beijing time `yyyy-mm-dd HH:MM:SS`, which the
/// documentation asks to URL-encode (`2017-01-01+10%3a10%3a01`); both the
/// encoded and the plain form are taken.
fn legacy_time(name: &str, value: &str) -> ApiResult<i64> {
    crate::time::parse_time(value)
        .or_else(|| url_decode(value).as_deref().and_then(crate::time::parse_time))
        .ok_or_else(|| {
            bad_value(
                format!("{name} must be a Beijing time such as 2017-01-01 10:10:01 (URL-encoded: 2017-01-01+10%3a10%3a01), not `{value}`."),
                format!("{name} 须为中国标准时间，如 2017-01-01 10:10:01（URLEncode 后为 2017-01-01+10%3a10%3a01），当前为 `{value}`。"),
            )
        })
}

/// `StreamParam`: `record_interval` (1800–7200 s) and `storage_time` (s),
/// URL-encoded pairs.
fn check_stream_param(value: &str) -> ApiResult<()> {
    // The documentation asks for the whole value to be URL-encoded once.
    let decoded = if value.contains('%') {
        url_decode(value).unwrap_or_else(|| value.to_owned())
    } else {
        value.to_owned()
    };
    for (key, v) in form_urlencoded::parse(decoded.as_bytes()) {
        let n: Option<i64> = v.parse().ok();
        let ok = match key.as_ref() {
            "record_interval" => n.is_some_and(|n| (1800..=7200).contains(&n)),
            "storage_time" => n.is_some_and(|n| n >= 0),
            _ => false,
        };
        if !ok {
            return Err(bad_value(
                format!("StreamParam `{key}={v}` is not supported: use record_interval (1800-7200) and storage_time (seconds)."),
                format!("StreamParam `{key}={v}` 不支持：仅支持 record_interval（1800~7200 秒）与 storage_time（秒）。"),
            ));
        }
    }
    Ok(())
}

fn legacy_format(value: Option<&str>) -> ApiResult<RecordFormat> {
    let v = value.map(str::trim).filter(|v| !v.is_empty());
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("flv") => Ok(RecordFormat::Flv),
        Some("hls") => Ok(RecordFormat::Hls),
        Some("mp4") => Ok(RecordFormat::Mp4),
        Some("aac") => Ok(RecordFormat::Aac),
        Some("mp3") => Ok(RecordFormat::Mp3),
        Some(_) => Err(bad_value(
            format!(
                "FileFormat must be flv, hls, mp4, aac or mp3, not `{}`.",
                v.unwrap_or("")
            ),
            format!(
                "FileFormat 的取值须为 flv、hls、mp4、aac、mp3 之一，当前为 `{}`。",
                v.unwrap_or("")
            ),
        )),
    }
}

fn legacy_audio_only(value: Option<&str>) -> ApiResult<bool> {
    let v = value.map(str::trim).filter(|v| !v.is_empty());
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("video") => Ok(false),
        Some("audio") => Ok(true),
        Some(_) => Err(bad_value(
            format!(
                "RecordType must be video or audio, not `{}`.",
                v.unwrap_or("")
            ),
            format!(
                "RecordType 的取值须为 video 或 audio，当前为 `{}`。",
                v.unwrap_or("")
            ),
        )),
    }
}

/// Unix seconds of the last Beijing midnight at or before `now`.
fn beijing_midnight(now: i64) -> i64 {
    let local = now + 8 * HOUR;
    local - local.rem_euclid(DAY) - 8 * HOUR
}

/// The push domain of a legacy request: `DomainName`, or when it is
/// omitted the caller's only push domain.
fn legacy_domain(cx: &Cx, given: Option<String>) -> ApiResult<String> {
    if let Some(d) = given.map(|d| d.trim().to_ascii_lowercase()) {
        if !d.is_empty() {
            return Ok(d);
        }
    }
    let all = cx.policy.domains();
    let mut push = all
        .iter()
        .filter(|d| d.account_id == cx.account && d.kind == livestack_core::DomainKind::Push);
    match (push.next(), push.next()) {
        (Some(only), None) => Ok(only.name.clone()),
        _ => Err(ApiError::new(
            ErrorCode::MissingParameter,
            "DomainName is required unless the account has exactly one push domain.",
            "账号有多个推流域名（或没有推流域名）时必须设置 DomainName。",
        )),
    }
}

/// Creates a legacy recording task: scheduled (default) or real-time
/// (`Highlight` 1, for a live stream).
pub async fn create_live_record(
    cx: Cx,
    req: CreateLiveRecordRequest,
) -> ApiResult<CreateLiveRecordResponse> {
    let app = req
        .app_name
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "live".to_owned());
    check_name(ErrorCode::InvalidParameterValue, "AppName", &app)?;
    check_name(
        ErrorCode::InvalidParameterValue,
        "StreamName",
        &req.stream_name,
    )?;
    let domain = legacy_domain(&cx, req.domain_name)?;
    let realtime =
        crate::actions::check::check_enum("Highlight", req.highlight, &[0, 1])? == Some(1);
    let mix = crate::actions::check::check_enum("MixStream", req.mix_stream, &[0, 1])?;
    let format = legacy_format(req.file_format.as_deref())?;
    let audio_only = legacy_audio_only(req.record_type.as_deref())?;
    let stream_param = req.stream_param.unwrap_or_default();
    check_stream_param(&stream_param)?;
    let given = |name: &str, v: Option<String>| -> ApiResult<Option<i64>> {
        match v.filter(|s| !s.trim().is_empty()) {
            Some(v) => legacy_time(name, &v).map(Some),
            None => Ok(None),
        }
    };
    let now = cx.now;
    let end_given = given("EndTime", req.end_time)?;
    let (start, end) = if realtime {
        // The start is ignored; the end is at most 30 minutes away, and a
        // missing, past or farther end means 30 minutes.
        let latest = now + 30 * MINUTE;
        let end = end_given
            .filter(|&e| e > now && e <= latest)
            .unwrap_or(latest);
        (now, end)
    } else {
        let start = given("StartTime", req.start_time)?;
        let (Some(start), Some(end)) = (start, end_given) else {
            return Err(ApiError::new(
                ErrorCode::MissingParameter,
                "Scheduled recording (Highlight 0) needs StartTime and EndTime.",
                "定时录制模式必须设置 StartTime 和 EndTime。",
            ));
        };
        if end <= start {
            return Err(bad_value(
                "EndTime must be later than StartTime.".into(),
                "EndTime 必须晚于 StartTime。".into(),
            ));
        }
        if end <= now {
            return Err(bad_value(
                "EndTime must be later than the current time.".into(),
                "EndTime 必须晚于当前时间。".into(),
            ));
        }
        if end - start > DAY {
            return Err(bad_value(
                "EndTime may be at most one day after StartTime.".into(),
                "EndTime 与 StartTime 相差不能超过1天。".into(),
            ));
        }
        (start, end)
    };
    if realtime {
        let live = cx.media.online(cx.account).iter().any(|s| {
            s.domain.eq_ignore_ascii_case(&domain)
                && s.key.app == app
                && s.key.stream == req.stream_name
        });
        if !live {
            return Err(ApiError::new(
                ErrorCode::ResourceUnavailableStreamNotExist,
                format!(
                    "{domain}/{app}/{} is not being pushed: real-time recording needs a live stream.",
                    req.stream_name
                ),
                format!(
                    "推流不存在：{domain}/{app}/{} 未在推流，实时视频录制需要主播正在推流。",
                    req.stream_name
                ),
            ));
        }
    }
    let (account, dry_run, limits) = (cx.account, cx.dry_run, cx.task_limits);
    let mut row = TaskRow {
        task: Task {
            id: 0,
            public_id: String::new(),
            account,
            kind: TaskKind::Record,
            domain,
            app,
            stream: req.stream_name,
            start,
            end,
            template: None,
            legacy: Some(LegacyRecord { format, audio_only }),
            extension: String::new(),
        },
        token: 0,
        stream_type: mix.unwrap_or(0),
        stream_param,
        created_at: now,
        stopped_at: 0,
    };
    let row = cx
        .store
        .transaction(move |c| {
            check_push_domain(
                c,
                account,
                &row.task.domain,
                ErrorCode::InvalidParameterValue,
            )?;
            // The documented limits are those of scheduled mode.
            if !realtime {
                let today = tasks::created_since(c, account, &LEGACY, beijing_midnight(now))?;
                let most = limits.legacy_per_day;
                if today >= most {
                    return Err(ApiError::new(
                        ErrorCode::LimitExceededMaximumTask,
                        format!("This account has created {most} recording tasks today, the limit."),
                        format!("当天已创建的录制任务数已达上限（{most} 个）。"),
                    ));
                }
                let running =
                    tasks::running_between(c, account, &LEGACY, None, (start, end), now)?;
                let windows: Vec<(i64, i64)> =
                    running.iter().map(|r| (r.task.start, r.task.end)).collect();
                let most = limits.legacy_running;
                if max_overlap(&windows, start, end) as u64 + 1 > most {
                    return Err(ApiError::new(
                        ErrorCode::LimitExceededMaximumRunningTask,
                        format!("{most} recording tasks would already run at the same time in this window."),
                        format!("该时段内并发运行的录制任务数已达上限（{most} 个）。"),
                    ));
                }
            }
            dry_run_stop(dry_run)?;
            tasks::insert(c, &mut row)?;
            Ok::<_, ApiError>(row)
        })
        .await?;
    cx.publish_policy().await?;
    Ok(CreateLiveRecordResponse {
        task_id: u64::try_from(row.task.id).unwrap_or(0),
    })
}

/// Finds a legacy task by `TaskId` and checks it records `StreamName`.
fn legacy_task(
    c: &Connection,
    account: livestack_core::AccountId,
    id: i64,
    stream: &str,
) -> ApiResult<TaskRow> {
    let row = tasks::find(c, account, TaskKind::Record, true, id)?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::ResourceNotFoundTaskId,
            format!("There is no recording task {id}."),
            format!("录制任务 {id} 不存在（TaskId 不存在）。"),
        )
    })?;
    if row.task.stream != stream {
        return Err(ApiError::new(
            ErrorCode::ResourceNotFoundChannelNotExist,
            format!("Recording task {id} does not record the stream `{stream}`."),
            format!("频道不存在：录制任务 {id} 不属于流 `{stream}`。"),
        ));
    }
    Ok(row)
}

/// Ends a legacy recording task now.
pub async fn stop_live_record(
    cx: Cx,
    req: StopLiveRecordRequest,
) -> ApiResult<StopLiveRecordResponse> {
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    cx.store
        .transaction(move |c| {
            legacy_task(c, account, req.task_id, &req.stream_name)?;
            dry_run_stop(dry_run)?;
            tasks::stop(c, account, req.task_id, now)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    cx.publish_policy().await?;
    Ok(StopLiveRecordResponse {})
}

/// Deletes a legacy recording task that is not running (one that has not
/// started, has ended or was stopped); a running one must be stopped first.
pub async fn delete_live_record(
    cx: Cx,
    req: DeleteLiveRecordRequest,
) -> ApiResult<DeleteLiveRecordResponse> {
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    cx.store
        .transaction(move |c| {
            let row = legacy_task(c, account, req.task_id, &req.stream_name)?;
            let running = row.stopped_at == 0 && row.task.start <= now && now < row.task.end;
            if running {
                return Err(ApiError::new(
                    ErrorCode::FailedOperationAlterTaskState,
                    format!(
                        "Recording task {} is running: stop it with StopLiveRecord first.",
                        req.task_id
                    ),
                    format!(
                        "录制任务 {} 正在进行中，不能删除，请先调用 StopLiveRecord 终止录制。",
                        req.task_id
                    ),
                ));
            }
            dry_run_stop(dry_run)?;
            tasks::delete(c, account, req.task_id, now)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    cx.publish_policy().await?;
    Ok(DeleteLiveRecordResponse {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_counts_windows_open_at_one_instant() {
        assert_eq!(max_overlap(&[], 0, 10), 0);
        assert_eq!(max_overlap(&[(0, 10), (10, 20), (20, 30)], 0, 30), 1);
        assert_eq!(max_overlap(&[(0, 10), (5, 15), (8, 30)], 0, 30), 3);
        assert_eq!(max_overlap(&[(0, 10), (5, 15), (8, 30)], 12, 30), 2);
        assert_eq!(max_overlap(&[(0, 10), (20, 30), (40, 50)], 0, 50), 1);
        assert_eq!(max_overlap(&[(0, 10)], 10, 20), 0);
    }

    #[test]
    fn current_windows_follow_the_documentation() {
        let now = 1_000_000;
        let code = |start, end| current_window(now, start, end).err().map(|e| e.code);
        assert_eq!(
            current_window(now, None, (now + 60) as u64).ok(),
            Some((now, now + 60))
        );
        assert_eq!(
            current_window(now, Some(0), (now + 60) as u64).ok(),
            Some((now, now + 60))
        );
        let bad = Some(ErrorCode::InvalidParameter);
        assert_eq!(code(None, now as u64), bad, "end not after now");
        assert_eq!(
            code(Some((now + 100) as u64), (now + 100) as u64),
            bad,
            "end not after start"
        );
        assert_eq!(
            code(Some((now + 7 * DAY - 100) as u64), (now + 7 * DAY) as u64),
            bad
        );
        assert_eq!(
            code(
                Some((now + 6 * DAY + 1) as u64),
                (now + 6 * DAY + 60) as u64
            ),
            bad
        );
        assert_eq!(code(None, (now + DAY + 1) as u64), bad, "longer than a day");
        assert_eq!(code(None, (now + DAY) as u64), None);
        assert_eq!(
            code(Some((now - 600) as u64), (now + 60) as u64),
            None,
            "a start in the past is fine"
        );
    }

    #[test]
    fn legacy_times_are_beijing_time_encoded_or_not() {
        let want = crate::time::parse_time("2017-01-01 10:10:01");
        assert_eq!(
            legacy_time("StartTime", "2017-01-01+10%3a10%3a01").ok(),
            want
        );
        assert_eq!(legacy_time("StartTime", "2017-01-01 10:10:01").ok(), want);
        assert_eq!(
            legacy_time("StartTime", "2017-01-01%2010%3A10%3A01").ok(),
            want
        );
        assert!(legacy_time("StartTime", "tomorrow").is_err());
        assert!(legacy_time("StartTime", "2017-01-01+10%3a10%3a01&x=1").is_err());
    }

    #[test]
    fn legacy_options_are_case_insensitive_and_checked() {
        assert_eq!(legacy_format(None).ok(), Some(RecordFormat::Flv));
        assert_eq!(legacy_format(Some("MP4")).ok(), Some(RecordFormat::Mp4));
        assert!(legacy_format(Some("avi")).is_err());
        assert_eq!(legacy_audio_only(Some("Audio")).ok(), Some(true));
        assert_eq!(legacy_audio_only(None).ok(), Some(false));
        assert!(legacy_audio_only(Some("both")).is_err());
        assert!(check_stream_param("record_interval=3600&storage_time=2592000").is_ok());
        assert!(check_stream_param("record_interval%3D3600%26storage_time%3D2592000").is_ok());
        assert!(check_stream_param("").is_ok());
        assert!(check_stream_param("record_interval=60").is_err());
        assert!(check_stream_param("colour=red").is_err());
    }

    #[test]
    fn the_legacy_limits_default_to_the_documented_ones() {
        let limits = TaskLimits::default();
        assert_eq!((limits.legacy_per_day, limits.legacy_running), (4000, 400));
        assert_eq!(MAX_OVERLAPPING, 3);
    }

    #[test]
    fn the_legacy_day_starts_at_beijing_midnight() {
        // 2019-02-26 00:44:25 Beijing time.
        assert_eq!(
            beijing_midnight(1_551_113_065),
            1_551_113_065 - 44 * 60 - 25
        );
        assert_eq!(beijing_midnight(1_551_110_400), 1_551_110_400);
    }

    #[tokio::test]
    async fn the_media_plane_policy_carries_the_tasks_in_force() {
        use livestack_store::{accounts, Store};

        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_for_tests(dir.path()).expect("open");
        let now = livestack_core::Clock::system().unix();
        let ids = store
            .run_blocking(|c| {
                let account = accounts::ensure(c, "root")?.id;
                let mut ids = Vec::new();
                for (stream, end, legacy) in [
                    ("a", now + 600, false),
                    ("b", now + 600, true),
                    ("c", now - 1, false),
                    ("d", now + 600, false),
                ] {
                    let mut row = TaskRow {
                        task: Task {
                            id: 0,
                            public_id: String::new(),
                            account,
                            kind: TaskKind::Record,
                            domain: "push.example.com".into(),
                            app: "live".into(),
                            stream: stream.into(),
                            start: now - 600,
                            end,
                            template: None,
                            legacy: legacy.then_some(LegacyRecord {
                                format: RecordFormat::Hls,
                                audio_only: false,
                            }),
                            extension: "x".into(),
                        },
                        token: 0,
                        stream_type: 0,
                        stream_param: String::new(),
                        created_at: now - 600,
                        stopped_at: 0,
                    };
                    tasks::insert(c, &mut row)?;
                    ids.push((row.task.id, account, row.token));
                }
                let (d, account, _) = ids[3];
                tasks::stop(c, account, d, now)?;
                Ok(ids)
            })
            .expect("store");
        let publisher = crate::policy::PolicyPublisher::new(store, livestack_core::Clock::system());
        publisher.refresh().await.expect("refresh");
        let policy = publisher.subscribe().borrow().clone();
        let in_policy: Vec<i64> = policy.processing.tasks.iter().map(|t| t.id).collect();
        assert_eq!(
            in_policy,
            vec![ids[0].0, ids[1].0],
            "not the ended or stopped ones"
        );
        assert_eq!(
            policy.processing.tasks[1].legacy.map(|l| l.format),
            Some(RecordFormat::Hls)
        );
        // Each carries the id its creator was given: the TaskId of a
        // current task, the integer of a legacy one.
        let public: Vec<&str> = policy
            .processing
            .tasks
            .iter()
            .map(|t| t.public_id.as_str())
            .collect();
        assert_eq!(
            public,
            vec![task_id(ids[0].0, ids[0].2), ids[1].0.to_string()]
        );
    }
}
