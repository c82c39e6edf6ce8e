//! Relay (pull-stream) tasks, 拉流转推: `CreateLivePullStreamTask`,
//! `ModifyLivePullStreamTask`, `DeleteLivePullStreamTask`,
//! `DescribeLivePullStreamTasks`, `DescribeLivePullStreamTaskStatus` and
//! `RestartLivePullStreamTask`.
//!
//! Owns: what a valid relay task is (sources, target, window, options and
//! their codes), its stored spec ([`Spec`], the JSON in
//! `pull_tasks.spec`) and the media plane's view of it ([`to_core`]).
//! Must not: run anything (the media plane's relay jobs do, from the
//! policy) or reach a source itself.

use livestack_core::pull::{PullSourceKind, PullTarget, PullTask};
use livestack_model::{
    CreateLivePullStreamTaskRequest, CreateLivePullStreamTaskResponse,
    CreatePullStreamConfigRequest, CreatePullStreamConfigResponse, DeleteLivePullStreamTaskRequest,
    DeleteLivePullStreamTaskResponse, DeletePullStreamConfigRequest,
    DeletePullStreamConfigResponse, DescribeLivePullStreamTaskStatusRequest,
    DescribeLivePullStreamTaskStatusResponse, DescribeLivePullStreamTasksRequest,
    DescribeLivePullStreamTasksResponse, DescribePullStreamConfigsRequest,
    DescribePullStreamConfigsResponse, DescribePullTransformPushInfoListRequest,
    DescribePullTransformPushInfoListResponse, InsertTaskTemporaryFilesRequest,
    InsertTaskTemporaryFilesResponse, ModifyLivePullStreamTaskRequest,
    ModifyLivePullStreamTaskResponse, ModifyPullStreamConfigRequest,
    ModifyPullStreamConfigResponse, ModifyPullStreamStatusRequest, ModifyPullStreamStatusResponse,
    PullPushWatermarkInfo, PullStreamConfig, PullStreamTaskInfo, RecentPullInfo,
    RestartLivePullStreamTaskRequest, RestartLivePullStreamTaskResponse, TaskStatusInfo,
    TurnPushInfo,
};
use livestack_store::pull_tasks::{self, PullTaskRow};
use serde::{Deserialize, Serialize};

use crate::actions::check::{check_name, check_push_domain, dry_run_stop};
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{parse_task_id, task_id};
use crate::time::{parse_time, utc_iso};

const DAY: i64 = 86_400;
/// A task's window is shorter than this (the request doc; the older
/// PullStreamTaskInfo doc still says 7 days).
const MAX_SPAN: i64 = 30 * DAY;
/// Files of a `PullVodPushLive` task.
const MAX_FILES: usize = 30;
/// Bytes of `Comment`.
const MAX_COMMENT: usize = 512;
/// The documented callback events.
const EVENTS: [&str; 6] = [
    "TaskStart",
    "TaskExit",
    "VodSourceFileStart",
    "VodSourceFileFinish",
    "ResetTaskConfig",
    "TaskAlarm",
];
/// The region Describe reports (CSS's relay tasks run in one).
const REGION: &str = "ap-guangzhou";

/// A relay task as the caller gave it, kept whole as `pull_tasks.spec`
/// (wire names, so that what Describe echoes is what was given).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Spec {
    /// `PullLivePushLive` or `PullVodPushLive`.
    pub source_type: String,
    /// The source URLs.
    pub source_urls: Vec<String>,
    /// Target push domain ("" with ToUrl).
    pub domain_name: String,
    /// Target AppName.
    pub app_name: String,
    /// Target StreamName.
    pub stream_name: String,
    /// Any RTMP target instead of a domain's stream.
    pub to_url: String,
    /// Appended to the target's query.
    pub push_args: String,
    /// -1 forever, 0 once, n more times.
    pub vod_loop_times: i64,
    /// `ImmediateNewSource` or `ContinueBreakPoint`.
    pub vod_refresh_type: String,
    /// Where 314 events go.
    pub callback_url: String,
    /// Which events go there; empty: all.
    pub callback_events: Vec<String>,
    /// Free text.
    pub comment: String,
    /// The backup source's type.
    pub backup_source_type: String,
    /// The backup source.
    pub backup_source_url: String,
    /// The backup target (stored; not pushed yet).
    pub backup_to_url: String,
    /// As given.
    pub extra_cmd: String,
    /// As given.
    pub vod_local_mode: i64,
    /// `FileIndex`: the file (1-based) a file task's first loop starts
    /// at; 0 or 1: the first.
    pub file_index: i64,
    /// `OffsetTime`: seconds into that file the first loop starts at.
    pub offset_time: i64,
    /// The task's own watermarks, their pictures kept locally.
    pub watermarks: Vec<livestack_core::pull::PullWatermark>,
    /// The account's transcode template the push is encoded by; empty:
    /// copied.
    pub transcode_template_name: String,
    /// The account's record template the target is recorded by (its id
    /// as a string, as the wire has it); empty: none of the task's own.
    pub record_template_id: String,
    /// A legacy `CreatePullStreamConfig`'s own fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy: Option<LegacySpec>,
}

/// What a legacy pull config has beside a task's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LegacySpec {
    /// `FromUrl` as given.
    pub from_url: String,
    /// `ToUrl` as given.
    pub to_url: String,
    /// 1 深圳, 2 上海, 3 天津, 4 中国香港.
    pub area_id: i64,
    /// 1 电信, 2 移动, 3 联通, 4 其他.
    pub isp_id: i64,
    /// Set to status 0 (invalid) by `ModifyPullStreamStatus`.
    pub invalid: bool,
}

impl Spec {
    /// The spec of a stored task.
    fn of(row: &PullTaskRow) -> ApiResult<Spec> {
        serde_json::from_value(row.spec.clone())
            .map_err(|e| ApiError::internal(ErrorCode::InternalError, e))
    }

    /// As stored.
    fn to_json(&self) -> ApiResult<serde_json::Value> {
        serde_json::to_value(self).map_err(|e| ApiError::internal(ErrorCode::InternalError, e))
    }
}

fn code(code: ErrorCode, en: String, zh: String) -> ApiError {
    ApiError::new(code, en, zh)
}

fn not_found(id: &str) -> ApiError {
    code(
        ErrorCode::InvalidParameterTaskNotExist,
        format!("There is no relay task with TaskId `{id}`."),
        format!("拉流转推任务 `{id}` 不存在。"),
    )
}

fn unsupported(what: &str) -> ApiError {
    code(
        ErrorCode::InvalidParameterValue,
        format!(
            "{what} is not supported by livestack's relay tasks yet; the target domain's own rules \
             (transcoding, watermarks, recording) apply to the relayed stream."
        ),
        format!("livestack 的拉流转推任务暂不支持 {what}；目标域名自身的转码、水印、录制规则对转推流生效。"),
    )
}

/// Checks a URL a relay opens: one of `schemes`, a host, what `more`
/// asks of it, and an address the operator's fetch policy permits
/// (resolved now); `bad` makes the refusal from the reason.
async fn check_relay_url(
    cx: &Cx,
    url: &str,
    schemes: &[&str],
    bad: impl Fn(&str) -> ApiError,
    more: impl Fn(&reqwest::Url) -> Result<(), &'static str>,
) -> ApiResult<()> {
    let parsed = reqwest::Url::parse(url).map_err(|_| bad("is not a URL"))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(bad(&format!(
            "must be one of {}",
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    more(&parsed).map_err(&bad)?;
    if livestack_net::check_url_resolved(cx.fetch.policy(), url)
        .await
        .is_err()
    {
        return Err(bad(
            "is an internal address, or a name that does not resolve to a public one",
        ));
    }
    Ok(())
}

/// Checks a source URL: a scheme CSS pulls from, and for files one of the
/// formats it plays (CSS refuses internal addresses for relay sources).
async fn check_source(cx: &Cx, kind: PullSourceKind, url: &str) -> ApiResult<()> {
    let url = url.trim();
    let bad = |why: &str| {
        code(
            ErrorCode::InvalidParameterInvalidSourceUrl,
            format!("The source URL `{url}` {why}."),
            format!("源地址 `{url}` 不规范：{why}。"),
        )
    };
    let schemes: &[&str] = match kind {
        PullSourceKind::Live => &["rtmp", "rtmps", "http", "https", "rtsp", "srt"],
        PullSourceKind::Vod | PullSourceKind::Picture => &["http", "https"],
    };
    check_relay_url(cx, url, schemes, bad, |parsed| {
        let path = parsed.path().to_ascii_lowercase();
        if kind == PullSourceKind::Vod
            && ![".flv", ".mp4", ".m3u8"].iter().any(|e| path.ends_with(e))
        {
            return Err("must name an .flv, .mp4 or .m3u8 file");
        }
        if kind == PullSourceKind::Picture
            && ![".png", ".jpg", ".jpeg"].iter().any(|e| path.ends_with(e))
        {
            return Err("must name a .png or .jpg picture");
        }
        Ok(())
    })
    .await
}

/// Checks `ToUrl`: an RTMP, RTMPS, RTSP, RTP or SRT URL.
async fn check_to_url(cx: &Cx, url: &str) -> ApiResult<()> {
    let bad = |why: &str| {
        code(
            ErrorCode::InvalidParameterInvalidToUrl,
            format!("ToUrl `{url}` {why}."),
            format!("ToUrl `{url}` 不规范：{why}。"),
        )
    };
    let schemes = ["rtmp", "rtmps", "rtsp", "rtp", "srt"];
    check_relay_url(cx, url, &schemes, bad, |_| Ok(())).await
}

fn check_callback_url(url: &str) -> ApiResult<()> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(code(
            ErrorCode::InvalidParameterInvalidCallbackUrl,
            format!("CallbackUrl `{url}` must be an http:// or https:// URL."),
            format!("CallbackUrl `{url}` 须为 http:// 或 https:// 地址。"),
        )),
    }
}

fn check_events(events: &[String]) -> ApiResult<()> {
    match events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        None => Ok(()),
        Some(e) => Err(code(
            ErrorCode::InvalidParameterValue,
            format!("CallbackEvents: `{e}` is not one of {}.", EVENTS.join(", ")),
            format!(
                "CallbackEvents 中的 `{e}` 不是 {} 之一。",
                EVENTS.join("、")
            ),
        )),
    }
}

/// `StartTime` and `EndTime` as Unix seconds; one that does not parse is
/// refused with `err`.
fn times(err: ErrorCode, start: &str, end: &str) -> ApiResult<(i64, i64)> {
    let parse = |label: &str, v: &str| {
        parse_time(v).ok_or_else(|| {
            code(
                err,
                format!("{label} `{v}` is not a time such as 2026-12-03T12:00:00Z."),
                format!("{label} `{v}` 不是形如 2026-12-03T12:00:00Z 的时间。"),
            )
        })
    };
    Ok((parse("StartTime", start)?, parse("EndTime", end)?))
}

/// The window `[start, end)` from two times: end after start and after
/// now, shorter than 30 days.
fn window(now: i64, start: &str, end: &str) -> ApiResult<(i64, i64)> {
    let bad = |en: String, zh: String| code(ErrorCode::InvalidParameterInvalidTaskTime, en, zh);
    let (s, e) = times(ErrorCode::InvalidParameterInvalidTaskTime, start, end)?;
    if e <= s {
        return Err(bad(
            "EndTime must be later than StartTime.".into(),
            "EndTime 须晚于 StartTime。".into(),
        ));
    }
    if e <= now {
        return Err(bad(
            "EndTime must be later than the current time.".into(),
            "EndTime 须晚于当前时间。".into(),
        ));
    }
    if e - s >= MAX_SPAN {
        return Err(bad(
            "EndTime - StartTime must be less than 30 days.".into(),
            "EndTime 与 StartTime 之差须小于 30 天。".into(),
        ));
    }
    Ok((s, e))
}

fn source_kind(s: &str) -> ApiResult<PullSourceKind> {
    match s {
        "PullLivePushLive" => Ok(PullSourceKind::Live),
        "PullVodPushLive" => Ok(PullSourceKind::Vod),
        "PullPicPushLive" => Ok(PullSourceKind::Picture),
        other => Err(code(
            ErrorCode::InvalidParameterValue,
            format!("SourceType must be PullLivePushLive, PullVodPushLive or PullPicPushLive, not `{other}`."),
            format!("SourceType 须为 PullLivePushLive、PullVodPushLive 或 PullPicPushLive，当前为 `{other}`。"),
        )),
    }
}

fn loops(v: &str) -> ApiResult<i64> {
    match v.trim().parse::<i64>() {
        Ok(n) if n >= -1 => Ok(n),
        _ => Err(code(
            ErrorCode::InvalidParameterValue,
            format!("VodLoopTimes must be -1 (forever), 0 (once) or a number of loops, not `{v}`."),
            format!("VodLoopTimes 须为 -1（无限循环）、0（不循环）或循环次数，当前为 `{v}`。"),
        )),
    }
}

fn refresh_type(v: &str) -> ApiResult<String> {
    match v {
        "ImmediateNewSource" | "ContinueBreakPoint" => Ok(v.to_owned()),
        other => Err(code(
            ErrorCode::InvalidParameterValue,
            format!(
                "VodRefreshType must be ImmediateNewSource or ContinueBreakPoint, not `{other}`."
            ),
            format!(
                "VodRefreshType 须为 ImmediateNewSource 或 ContinueBreakPoint，当前为 `{other}`。"
            ),
        )),
    }
}

/// Checks a spec as a whole (after a create or a modify): sources,
/// target, options. The target domain is checked in the transaction.
async fn check_spec(cx: &Cx, spec: &mut Spec) -> ApiResult<PullSourceKind> {
    let kind = source_kind(&spec.source_type)?;
    spec.source_urls = spec
        .source_urls
        .iter()
        .map(|u| u.trim().to_owned())
        .collect();
    let n = spec.source_urls.len();
    let allowed = match kind {
        PullSourceKind::Live | PullSourceKind::Picture => 1..=1,
        PullSourceKind::Vod => 1..=MAX_FILES,
    };
    if !allowed.contains(&n) {
        return Err(code(
            ErrorCode::InvalidParameterInvalidSourceUrl,
            format!(
                "SourceUrls must hold {} URL(s) for {}, not {n}.",
                if kind != PullSourceKind::Vod {
                    "exactly 1".to_owned()
                } else {
                    format!("1 to {MAX_FILES}")
                },
                spec.source_type
            ),
            format!(
                "{} 的 SourceUrls 个数不符（当前 {n} 个）。",
                spec.source_type
            ),
        ));
    }
    for url in &spec.source_urls {
        check_source(cx, kind, url).await?;
    }
    spec.to_url = spec.to_url.trim().to_owned();
    if spec.to_url.is_empty() {
        spec.domain_name = spec.domain_name.trim().to_ascii_lowercase();
        check_name(ErrorCode::InvalidParameter, "AppName", &spec.app_name)?;
        check_name(ErrorCode::InvalidParameter, "StreamName", &spec.stream_name)?;
    } else {
        check_to_url(cx, &spec.to_url).await?;
    }
    if !spec.backup_to_url.is_empty() {
        let url = spec.backup_to_url.clone();
        let bad = |why: &str| {
            code(
                ErrorCode::InvalidParameterInvalidBackupToUrl,
                format!("BackupToUrl `{url}` {why}."),
                format!("BackupToUrl `{url}` 不规范：{why}。"),
            )
        };
        check_relay_url(cx, &url, &["rtmp", "rtmps"], bad, |_| Ok(())).await?;
    }
    if spec.file_index < 0 || spec.file_index > n as i64 || spec.offset_time < 0 {
        return Err(code(
            ErrorCode::InvalidParameterValue,
            format!(
                "FileIndex must be a file's number (1 to {n}) and OffsetTime seconds from 0, not {} and {}.",
                spec.file_index, spec.offset_time
            ),
            format!(
                "FileIndex 须为文件序号（1~{n}），OffsetTime 须为不小于 0 的秒数，当前为 {} 与 {}。",
                spec.file_index, spec.offset_time
            ),
        ));
    }
    if !spec.callback_url.is_empty() {
        check_callback_url(&spec.callback_url)?;
    }
    check_events(&spec.callback_events)?;
    if spec.comment.len() > MAX_COMMENT {
        return Err(code(
            ErrorCode::InvalidParameterValue,
            format!(
                "Comment may hold at most {MAX_COMMENT} bytes, not {}.",
                spec.comment.len()
            ),
            format!(
                "Comment 最长 {MAX_COMMENT} 字节，当前 {} 字节。",
                spec.comment.len()
            ),
        ));
    }
    if !spec.backup_source_url.is_empty() {
        if kind != PullSourceKind::Live {
            return Err(code(
                ErrorCode::InvalidParameterInvalidSourceUrl,
                "A backup source is only for PullLivePushLive tasks.".into(),
                "仅 PullLivePushLive 任务可设置备源。".into(),
            ));
        }
        if spec.backup_source_type != "PullLivePushLive" {
            return Err(unsupported(
                "a BackupSourceType other than PullLivePushLive",
            ));
        }
        check_source(cx, PullSourceKind::Live, &spec.backup_source_url).await?;
    }
    Ok(kind)
}

/// The task's own templates are the account's: a transcode template of
/// that name, a record template of that id.
fn check_templates(
    c: &livestack_store::db::Connection,
    account: livestack_core::AccountId,
    spec: &Spec,
) -> ApiResult<()> {
    use livestack_core::rules::{Kind, TemplateId};
    use livestack_store::templates;
    let name = &spec.transcode_template_name;
    if !name.is_empty()
        && !templates::list(c, account, Kind::Transcode)?
            .iter()
            .any(|t| &t.name == name)
    {
        return Err(code(
            ErrorCode::InvalidParameterValue,
            format!("TranscodeTemplateName `{name}` is not one of your transcode templates."),
            format!("TranscodeTemplateName `{name}` 不是本账号的转码模板。"),
        ));
    }
    let id = spec.record_template_id.as_str();
    if !id.is_empty() {
        let found = match id.parse::<i64>() {
            Ok(n) => templates::find(c, account, Kind::Record, TemplateId(n))?.is_some(),
            Err(_) => false,
        };
        if !found {
            return Err(code(
                ErrorCode::InvalidParameterValue,
                format!("RecordTemplateId `{id}` is not one of your record templates."),
                format!("RecordTemplateId `{id}` 不是本账号的录制模板。"),
            ));
        }
    }
    Ok(())
}

/// The most watermarks of one task.
const MAX_WATERMARKS: usize = 4;

/// A task's `WatermarkList`: at most 4, percentages and corners in range,
/// each picture fetched once (through the guarded fetcher) and kept.
async fn watermarks(
    cx: &Cx,
    kind: &str,
    list: &[PullPushWatermarkInfo],
) -> ApiResult<Vec<livestack_core::pull::PullWatermark>> {
    let bad = |en: String, zh: String| code(ErrorCode::InvalidParameterInvalidWatermark, en, zh);
    if list.len() > MAX_WATERMARKS {
        return Err(bad(
            format!(
                "WatermarkList holds at most {MAX_WATERMARKS} watermarks, not {}.",
                list.len()
            ),
            format!(
                "WatermarkList 最多 {MAX_WATERMARKS} 个水印，当前为 {} 个。",
                list.len()
            ),
        ));
    }
    if !list.is_empty() && kind == "PullPicPushLive" {
        return Err(unsupported("WatermarkList on a PullPicPushLive task"));
    }
    let mut out = Vec::with_capacity(list.len());
    for w in list {
        let percent = |v: i64| (0..=100).contains(&v);
        if ![w.x_position, w.y_position, w.width, w.height]
            .into_iter()
            .all(percent)
            || !(0..=3).contains(&w.location)
        {
            return Err(bad(
                "XPosition, YPosition, Width and Height are percentages (0 to 100) and Location 0 to 3.".into(),
                "XPosition、YPosition、Width、Height 为百分比（0~100），Location 取值 0~3。".into(),
            ));
        }
        let url = w.picture_url.trim();
        if url.chars().any(|c| ";(){}$>`#\"'|".contains(c)) {
            return Err(bad(
                format!(
                    "PictureUrl `{url}` holds a character CSS forbids there (;(){{}}$>`#\"'|)."
                ),
                format!("PictureUrl `{url}` 含有禁止的字符（;(){{}}$>`#\"'|）。"),
            ));
        }
        let picture = crate::actions::watermark::fetch_and_keep(cx, url)
            .await
            .map_err(|e| {
                crate::actions::check::recode(e, ErrorCode::InvalidParameterInvalidWatermark)
            })?;
        out.push(livestack_core::pull::PullWatermark {
            picture_url: url.to_owned(),
            picture,
            x: w.x_position as u32,
            y: w.y_position as u32,
            width: w.width as u32,
            height: w.height as u32,
            location: w.location as u32,
        });
    }
    Ok(out)
}

/// The media plane's view of a stored task, `None` when its spec does
/// not read (written by a newer livestack).
pub(crate) fn to_core(row: &PullTaskRow) -> Option<PullTask> {
    let spec = Spec::of(row).ok()?;
    let kind = match spec.source_type.as_str() {
        "PullLivePushLive" => PullSourceKind::Live,
        "PullVodPushLive" => PullSourceKind::Vod,
        "PullPicPushLive" => PullSourceKind::Picture,
        _ => return None,
    };
    let target = if spec.to_url.is_empty() {
        PullTarget::Stream {
            domain: spec.domain_name,
            app: spec.app_name,
            stream: spec.stream_name,
        }
    } else {
        PullTarget::Url(spec.to_url)
    };
    Some(PullTask {
        id: row.id,
        public_id: task_id(row.id, row.token),
        account: row.account,
        kind,
        sources: spec.source_urls,
        backup: Some(spec.backup_source_url).filter(|u| !u.is_empty()),
        target,
        push_args: spec.push_args,
        backup_target: Some(spec.backup_to_url).filter(|u| !u.is_empty()),
        start: row.start,
        end: row.end,
        enabled: row.enabled,
        loops: spec.vod_loop_times,
        callback_url: spec.callback_url,
        callback_events: spec.callback_events,
        generation: row.generation,
        inserts: Vec::new(),
        // The first loop's start, for a task that starts within a day of
        // its creation (after that CSS ignores them).
        start_file: if row.start - row.created_at <= 86_400 && kind == PullSourceKind::Vod {
            usize::try_from(spec.file_index - 1).unwrap_or(0)
        } else {
            0
        },
        start_offset: if row.start - row.created_at <= 86_400 && kind == PullSourceKind::Vod {
            u64::try_from(spec.offset_time).unwrap_or(0)
        } else {
            0
        },
        watermarks: spec.watermarks.clone(),
        transcode_template: spec.transcode_template_name.clone(),
        record_template: spec.record_template_id.trim().parse().ok(),
    })
}

/// Creates a relay task (or, for a `SpecifyTaskId` the account already
/// used, answers that task's TaskId: the id deduplicates retries).
pub async fn create_live_pull_stream_task(
    cx: Cx,
    req: CreateLivePullStreamTaskRequest,
) -> ApiResult<CreateLivePullStreamTaskResponse> {
    let own_watermarks = watermarks(
        &cx,
        &req.source_type,
        req.watermark_list.as_deref().unwrap_or_default(),
    )
    .await?;
    let vod_loop_times = match req.vod_loop_times.as_deref() {
        Some(v) if !v.trim().is_empty() => loops(v)?,
        _ => -1,
    };
    let mut spec = Spec {
        source_type: req.source_type,
        source_urls: req.source_urls,
        domain_name: req.domain_name,
        app_name: req.app_name,
        stream_name: req.stream_name,
        to_url: req.to_url.unwrap_or_default(),
        push_args: req.push_args.unwrap_or_default(),
        vod_loop_times,
        vod_refresh_type: refresh_type(
            req.vod_refresh_type
                .as_deref()
                .filter(|v| !v.is_empty())
                .unwrap_or("ImmediateNewSource"),
        )?,
        callback_url: req.callback_url.unwrap_or_default().trim().to_owned(),
        callback_events: req.callback_events.unwrap_or_default(),
        comment: req.comment.unwrap_or_default(),
        backup_source_type: req.backup_source_type.unwrap_or_default(),
        backup_source_url: req.backup_source_url.unwrap_or_default().trim().to_owned(),
        backup_to_url: req.backup_to_url.unwrap_or_default().trim().to_owned(),
        extra_cmd: req.extra_cmd.unwrap_or_default(),
        vod_local_mode: req.vod_local_mode.unwrap_or(0),
        transcode_template_name: req
            .transcode_template_name
            .unwrap_or_default()
            .trim()
            .to_owned(),
        record_template_id: req.record_template_id.unwrap_or_default().trim().to_owned(),
        file_index: req.file_index.unwrap_or(0),
        offset_time: req.offset_time.unwrap_or(0),
        watermarks: own_watermarks,
        legacy: None,
    };
    let (start, end) = window(cx.now, &req.start_time, &req.end_time)?;
    check_spec(&cx, &mut spec).await?;
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    let limit = cx.task_limits.pull_tasks;
    let specify = req.specify_task_id.unwrap_or_default().trim().to_owned();
    let mut row = PullTaskRow {
        id: 0,
        account,
        legacy: false,
        token: 0,
        specify,
        spec: spec.to_json()?,
        enabled: true,
        start,
        end,
        generation: 0,
        created_at: now,
        updated_at: now,
        created_by: req.operator.clone(),
        updated_by: req.operator,
    };
    let (row, created) = cx
        .store
        .transaction(move |c| {
            if !row.specify.is_empty() {
                if let Some(existing) = pull_tasks::find_specified(c, account, &row.specify)? {
                    return Ok::<_, ApiError>((existing, false));
                }
            }
            if spec.to_url.is_empty() {
                check_push_domain(
                    c,
                    account,
                    &spec.domain_name,
                    ErrorCode::InvalidParameterToUrlNoPermission,
                )?;
            }
            check_templates(c, account, &spec)?;
            if pull_tasks::count(c, account, false)? >= limit {
                return Err(code(
                    ErrorCode::InvalidParameterTaskNumMoreThanLimit,
                    format!("An account holds at most {limit} relay tasks (ended ones count until deleted)."),
                    format!("每个账号最多 {limit} 个拉流转推任务（已结束的任务在删除前也计入）。"),
                ));
            }
            dry_run_stop(dry_run)?;
            pull_tasks::insert(c, &mut row)?;
            Ok((row, true))
        })
        .await?;
    if created {
        cx.publish_policy().await?;
    }
    Ok(CreateLivePullStreamTaskResponse {
        task_id: task_id(row.id, row.token),
    })
}

/// The caller's task named by `TaskId` (or by `SpecifyTaskId` when given);
/// `None` when there is none.
fn find(
    c: &livestack_store::db::Connection,
    account: livestack_core::AccountId,
    public_id: &str,
    specify: Option<&str>,
) -> livestack_store::StoreResult<Option<PullTaskRow>> {
    if let Some(s) = specify.map(str::trim).filter(|s| !s.is_empty()) {
        return pull_tasks::find_specified(c, account, s);
    }
    let Some((id, token)) = parse_task_id(public_id.trim()) else {
        return Ok(None);
    };
    Ok(pull_tasks::find(c, account, false, id)?.filter(|row| row.token == token))
}

/// The name a caller used for a task: its SpecifyTaskId when given.
fn named<'a>(public_id: &'a str, specify: Option<&'a str>) -> &'a str {
    specify
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(public_id)
}

/// Changes a relay task. Changing what it pulls or where it pushes starts
/// it over; a change of its window, status or callbacks alone does not.
pub async fn modify_live_pull_stream_task(
    cx: Cx,
    req: ModifyLivePullStreamTaskRequest,
) -> ApiResult<ModifyLivePullStreamTaskResponse> {
    if req.backup_vod_url.as_deref().is_some_and(|u| !u.is_empty()) {
        return Err(unsupported("BackupVodUrl"));
    }
    let enabled = match req.status.as_deref() {
        None | Some("") => None,
        Some("enable") => Some(true),
        Some("pause") => Some(false),
        Some(other) => {
            return Err(code(
                ErrorCode::InvalidParameterValue,
                format!("Status must be enable or pause, not `{other}`."),
                format!("Status 须为 enable 或 pause，当前为 `{other}`。"),
            ))
        }
    };
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    let public_id = req.task_id.clone();
    let row = cx
        .store
        .run(move |c| find(c, account, &public_id, None))
        .await?
        .ok_or_else(|| not_found(&req.task_id))?;
    let old = Spec::of(&row)?;
    let mut spec = old.clone();
    if let Some(urls) = req.source_urls {
        spec.source_urls = urls;
    }
    if let Some(v) = req.vod_loop_times {
        spec.vod_loop_times = loops(&v.to_string())?;
    }
    if let Some(v) = req.vod_refresh_type.filter(|v: &String| !v.is_empty()) {
        spec.vod_refresh_type = refresh_type(&v)?;
    }
    if let Some(v) = req.callback_url {
        spec.callback_url = v.trim().to_owned();
    }
    if let Some(v) = req.callback_events {
        spec.callback_events = v;
    }
    if let Some(v) = req.to_url {
        spec.to_url = v;
    }
    if let Some(v) = req.comment {
        spec.comment = v;
    }
    if let Some(v) = req.backup_source_type {
        spec.backup_source_type = v;
    }
    if let Some(v) = req.backup_source_url {
        spec.backup_source_url = v.trim().to_owned();
    }
    if let Some(v) = req.backup_to_url {
        spec.backup_to_url = v.trim().to_owned();
    }
    if let Some(v) = req.vod_local_mode {
        spec.vod_local_mode = v;
    }
    if let Some(v) = req.file_index {
        spec.file_index = v;
    }
    // A list replaces the task's watermarks; `[]` clears them.
    if let Some(list) = &req.watermark_list {
        spec.watermarks = watermarks(&cx, &spec.source_type, list).await?;
    }
    if let Some(v) = req.offset_time {
        spec.offset_time = v;
    }
    let start = req.start_time.unwrap_or_else(|| utc_iso(row.start));
    let end = req.end_time.unwrap_or_else(|| utc_iso(row.end));
    let (start, end) = window(now, &start, &end)?;
    check_spec(&cx, &mut spec).await?;
    let restart = spec.source_urls != old.source_urls
        || spec.to_url != old.to_url
        || spec.vod_loop_times != old.vod_loop_times
        || spec.backup_source_url != old.backup_source_url
        || spec.backup_to_url != old.backup_to_url
        || spec.watermarks != old.watermarks
        || spec.file_index != old.file_index
        || spec.offset_time != old.offset_time;
    let specify = req.specify_task_id.map(|s| s.trim().to_owned());
    let mut row = row;
    row.spec = spec.to_json()?;
    row.start = start;
    row.end = end;
    row.enabled = enabled.unwrap_or(row.enabled);
    row.updated_at = now;
    row.updated_by = req.operator;
    if restart {
        row.generation += 1;
    }
    if let Some(s) = specify.filter(|s| !s.is_empty()) {
        row.specify = s;
    }
    cx.store
        .transaction(move |c| {
            if let Some(other) = pull_tasks::find_specified(c, account, &row.specify)? {
                if other.id != row.id {
                    return Err(code(
                        ErrorCode::InvalidParameterValue,
                        format!("SpecifyTaskId `{}` names another task.", row.specify),
                        format!("SpecifyTaskId `{}` 已被其他任务使用。", row.specify),
                    ));
                }
            }
            dry_run_stop(dry_run)?;
            if !pull_tasks::update(c, &row)? {
                return Err(not_found(&req.task_id));
            }
            Ok(())
        })
        .await?;
    cx.publish_policy().await?;
    Ok(ModifyLivePullStreamTaskResponse {})
}

/// Stops and deletes a relay task.
pub async fn delete_live_pull_stream_task(
    cx: Cx,
    req: DeleteLivePullStreamTaskRequest,
) -> ApiResult<DeleteLivePullStreamTaskResponse> {
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    cx.store
        .transaction(move |c| {
            let specify = req.specify_task_id.as_deref();
            let row = find(c, account, &req.task_id, specify)?
                .ok_or_else(|| not_found(named(&req.task_id, specify)))?;
            dry_run_stop(dry_run)?;
            pull_tasks::delete(c, account, row.id, now)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    cx.publish_policy().await?;
    Ok(DeleteLivePullStreamTaskResponse {})
}

/// Starts a relay task over: its push is interrupted and made again.
pub async fn restart_live_pull_stream_task(
    cx: Cx,
    req: RestartLivePullStreamTaskRequest,
) -> ApiResult<RestartLivePullStreamTaskResponse> {
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    cx.store
        .transaction(move |c| {
            let mut row =
                find(c, account, &req.task_id, None)?.ok_or_else(|| not_found(&req.task_id))?;
            dry_run_stop(dry_run)?;
            row.generation += 1;
            row.updated_at = now;
            row.updated_by = req.operator;
            pull_tasks::update(c, &row)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    cx.publish_policy().await?;
    Ok(RestartLivePullStreamTaskResponse {})
}

fn info(row: &PullTaskRow, now: i64, recent: Option<RecentPullInfo>) -> PullStreamTaskInfo {
    let spec = Spec::of(row).unwrap_or_default();
    // CSS's statuses: enable, pause, invalid (ended).
    let status = if row.end <= now {
        "invalid"
    } else if row.enabled {
        "enable"
    } else {
        "pause"
    };
    PullStreamTaskInfo {
        task_id: task_id(row.id, row.token),
        source_type: spec.source_type,
        source_urls: spec.source_urls,
        domain_name: spec.domain_name,
        app_name: spec.app_name,
        stream_name: spec.stream_name,
        push_args: spec.push_args,
        start_time: utc_iso(row.start),
        end_time: utc_iso(row.end),
        region: REGION.to_owned(),
        vod_loop_times: spec.vod_loop_times,
        vod_refresh_type: spec.vod_refresh_type,
        create_time: utc_iso(row.created_at),
        update_time: utc_iso(row.updated_at),
        create_by: row.created_by.clone(),
        update_by: row.updated_by.clone(),
        callback_url: spec.callback_url,
        callback_events: spec.callback_events,
        // Documented as not returned yet ("暂不返回").
        callback_info: String::new(),
        error_info: String::new(),
        status: status.to_owned(),
        recent_pull_info: recent.unwrap_or_default(),
        comment: spec.comment,
        backup_source_type: spec.backup_source_type,
        backup_source_url: spec.backup_source_url,
        watermark_list: spec
            .watermarks
            .iter()
            .map(|w| PullPushWatermarkInfo {
                picture_url: w.picture_url.clone(),
                x_position: i64::from(w.x),
                y_position: i64::from(w.y),
                width: i64::from(w.width),
                height: i64::from(w.height),
                location: i64::from(w.location),
            })
            .collect(),
        vod_local_mode: spec.vod_local_mode,
        record_template_id: spec.record_template_id,
        backup_to_url: spec.backup_to_url,
        transcode_template_name: Some(spec.transcode_template_name),
    }
}

/// The caller's relay tasks, last changed first, a page at a time; one
/// task (by TaskId or SpecifyTaskId) with what it last pulled.
pub async fn describe_live_pull_stream_tasks(
    cx: Cx,
    req: DescribeLivePullStreamTasksRequest,
) -> ApiResult<DescribeLivePullStreamTasksResponse> {
    let page_num = req.page_num.unwrap_or(1).max(1);
    let page_size = req.page_size.unwrap_or(10);
    if !(1..=20).contains(&page_size) {
        return Err(code(
            ErrorCode::InvalidParameterValue,
            format!("PageSize must be 1 to 20, not {page_size}."),
            format!("PageSize 取值须为 1~20，当前为 {page_size}。"),
        ));
    }
    let (account, now) = (cx.account, cx.now);
    let limit = cx.task_limits.pull_tasks;
    let one = [req.task_id.as_deref(), req.specify_task_id.as_deref()]
        .iter()
        .any(|v| v.is_some_and(|v| !v.trim().is_empty()));
    let (infos, total) = cx
        .store
        .run(move |c| {
            if one {
                let id = req.task_id.as_deref().unwrap_or("");
                let Some(row) = find(c, account, id, req.specify_task_id.as_deref())? else {
                    return Ok((Vec::new(), 0));
                };
                let recent = pull_tasks::last_report(c, row.id)?.map(|r| RecentPullInfo {
                    file_url: Some(r.file_url),
                    offset_time: Some(u64::try_from(r.offset_secs).unwrap_or(0)),
                    report_time: Some(utc_iso(r.reported_at)),
                    looped_times: Some(r.looped),
                });
                return Ok((vec![info(&row, now, recent)], 1));
            }
            let total = pull_tasks::count(c, account, false)?;
            let rows = pull_tasks::page(c, account, false, (page_num - 1) * page_size, page_size)?;
            Ok((rows.iter().map(|r| info(r, now, None)).collect(), total))
        })
        .await?;
    Ok(DescribeLivePullStreamTasksResponse {
        task_infos: infos,
        page_num,
        page_size,
        total_num: total,
        total_page: total.div_ceil(page_size),
        limit_task_num: limit,
    })
}

/// What a relay task is doing now, as its job last reported.
pub async fn describe_live_pull_stream_task_status(
    cx: Cx,
    req: DescribeLivePullStreamTaskStatusRequest,
) -> ApiResult<DescribeLivePullStreamTaskStatusResponse> {
    let account = cx.account;
    let id = req.task_id.clone();
    let found = cx
        .store
        .run(move |c| {
            let Some(row) = find(c, account, &id, None)? else {
                return Ok(None);
            };
            let report = pull_tasks::last_report(c, row.id)?;
            Ok(Some((row, report)))
        })
        .await?;
    let (row, report) = found.ok_or_else(|| not_found(&req.task_id))?;
    let spec = Spec::of(&row).unwrap_or_default();
    let r = report.unwrap_or_default();
    let next = usize::try_from(r.file_index)
        .ok()
        .and_then(|i| spec.source_urls.get(i + 1))
        .cloned()
        .unwrap_or_default();
    Ok(DescribeLivePullStreamTaskStatusResponse {
        task_status_info: TaskStatusInfo {
            file_url: Some(r.file_url),
            looped_times: Some(r.looped),
            offset_time: Some(r.offset_secs),
            report_time: Some(if r.reported_at > 0 {
                utc_iso(r.reported_at)
            } else {
                String::new()
            }),
            run_status: Some(if r.active { "active" } else { "inactive" }.to_owned()),
            file_duration: Some(0),
            next_file_url: Some(next),
        },
    })
}

/// Plays files once between a running file task's own files: after the
/// one playing (`InsertAfterIndex` 0) or after the file numbered
/// `InsertAfterIndex` (past the end: after the last), highest priority
/// first among inserts at the same place; their start and finish
/// callbacks carry `InsertContext`. The job restarts its push there to
/// play them (see the media plane's relay jobs).
pub async fn insert_task_temporary_files(
    cx: Cx,
    req: InsertTaskTemporaryFilesRequest,
) -> ApiResult<InsertTaskTemporaryFilesResponse> {
    let files: Vec<String> = req
        .temporary_files
        .iter()
        .map(|f| f.trim().to_owned())
        .collect();
    if files.is_empty() || files.len() > MAX_FILES {
        return Err(code(
            ErrorCode::InvalidParameterValue,
            format!(
                "TemporaryFiles must hold 1 to {MAX_FILES} URLs, not {}.",
                files.len()
            ),
            format!(
                "TemporaryFiles 须为 1~{MAX_FILES} 个文件地址，当前为 {} 个。",
                files.len()
            ),
        ));
    }
    for f in &files {
        check_source(&cx, PullSourceKind::Vod, f).await?;
    }
    let after = req.insert_after_index.unwrap_or(0);
    if after < 0 {
        return Err(code(
            ErrorCode::InvalidParameterValue,
            format!("InsertAfterIndex must be 0 or a file's number (from 1), not {after}."),
            format!("InsertAfterIndex 须为 0 或文件序号（从 1 开始），当前为 {after}。"),
        ));
    }
    let priority = crate::actions::check::check_enum(
        "InsertPriorityType",
        req.insert_priority_type,
        &[0, 1, 2],
    )?
    .unwrap_or(0);
    let context = req.insert_context.unwrap_or_default();
    if context.len() > MAX_COMMENT {
        return Err(code(
            ErrorCode::InvalidParameterValue,
            format!("InsertContext may hold at most {MAX_COMMENT} bytes."),
            format!("InsertContext 最长 {MAX_COMMENT} 字节。"),
        ));
    }
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    let id = req.task_id.clone();
    cx.store
        .transaction(move |c| {
            let row = find(c, account, &id, None)?.ok_or_else(|| not_found(&id))?;
            let running = row.enabled && row.start <= now && now < row.end;
            let vod = Spec::of(&row).is_ok_and(|s| s.source_type == "PullVodPushLive");
            if !(running && vod) {
                return Err(code(
                    ErrorCode::InvalidParameterTaskNotExist,
                    format!("Task `{id}` is not a running PullVodPushLive task: files are inserted into a file task while it runs."),
                    format!("任务 `{id}` 不是运行中的点播拉流任务：插播仅支持运行中的 PullVodPushLive 任务。"),
                ));
            }
            dry_run_stop(dry_run)?;
            pull_tasks::insert_files(
                c,
                &pull_tasks::InsertRow {
                    id: 0,
                    task: row.id,
                    after,
                    priority,
                    context,
                    files,
                },
                now,
            )?;
            Ok::<_, ApiError>(())
        })
        .await?;
    cx.publish_policy().await?;
    Ok(InsertTaskTemporaryFilesResponse {})
}

/// The push quality of a relay task's target stream over the window (up
/// to a month ago): the push samples of that stream while the task was
/// pushing it (one a minute, kept 7 days). A task pushing to a `ToUrl`
/// elsewhere has none: livestack measures the pushes it receives, not
/// what its relays send to other servers.
pub async fn describe_pull_transform_push_info_list(
    cx: Cx,
    req: DescribePullTransformPushInfoListRequest,
) -> ApiResult<DescribePullTransformPushInfoListResponse> {
    let (from, to) =
        super::stream::window(&cx, &req.start_time, &req.end_time, 31 * DAY, 31 * DAY)?;
    let account = cx.account;
    let id = req.task_id.trim().to_owned();
    let rows = cx
        .store
        .run(move |c| {
            let Some(row) = find(c, account, &id, None)? else {
                return Ok(None);
            };
            let Some(PullTask {
                target:
                    PullTarget::Stream {
                        domain,
                        app,
                        stream,
                    },
                ..
            }) = to_core(&row)
            else {
                return Ok(Some(Vec::new()));
            };
            let spans = pull_tasks::spans_between(c, account, from, to)?;
            let samples = livestack_store::samples::list(
                c,
                account,
                &stream,
                Some(&domain),
                Some(&app),
                from * 1000,
                to * 1000 + 999,
            )?;
            // Only while the task was the one pushing.
            let ours = |at_ms: i64| {
                spans.iter().any(|s| {
                    s.task == row.id
                        && s.started_at * 1000 <= at_ms
                        && s.ended_at.is_none_or(|e| at_ms <= e * 1000 + 999)
                })
            };
            Ok(Some(
                samples.into_iter().filter(|s| ours(s.at_ms)).collect(),
            ))
        })
        .await?;
    let rows: Vec<livestack_store::samples::Sample> = rows.ok_or_else(|| {
        ApiError::new(
            ErrorCode::FailedOperationNotFound,
            format!("There is no relay task {}.", req.task_id),
            format!("拉流转推任务 {} 不存在。", req.task_id),
        )
    })?;
    let whole = |v: f64| {
        if v.is_finite() && v > 0.0 {
            v.round() as i64
        } else {
            0
        }
    };
    Ok(DescribePullTransformPushInfoListResponse {
        data_info_list: Some(
            rows.into_iter()
                .map(|r| TurnPushInfo {
                    video_fps: Some(whole(r.fps)),
                    audio_fps: Some(whole(r.audio_fps)),
                    video_rate: Some(r.video_bps),
                    audio_rate: Some(r.audio_bps),
                    stream_flag: Some(r.stream),
                    time: Some(utc_iso(r.at_ms.div_euclid(1000))),
                })
                .collect(),
        ),
    })
}

// ---------------------------------------------------------------- legacy

/// Legacy pull configs an account may hold.
const LEGACY_MAX: u64 = 10;
/// A legacy config's window is shorter than this.
const LEGACY_SPAN: i64 = 7 * DAY;
/// Files or streams of one `FromUrl`.
const LEGACY_MAX_URLS: usize = 10;

fn legacy_invalid(en: String, zh: String) -> ApiError {
    code(ErrorCode::InvalidParameter, en, zh)
}

fn legacy_not_found(id: &str) -> ApiError {
    legacy_invalid(
        format!("There is no pull config with ConfigId `{id}`."),
        format!("拉流配置 `{id}` 不存在。"),
    )
}

/// `FromUrl`: up to 10 space-separated URLs, rtmp or http (not https),
/// live streams or flv/mp4/hls files. One rtmp URL, or one http .flv or
/// .m3u8 URL, is a live source; several URLs, or an .mp4, are files
/// played in order.
fn legacy_sources(from: &str) -> ApiResult<(PullSourceKind, Vec<String>)> {
    let urls: Vec<String> = from.split_whitespace().map(str::to_owned).collect();
    if urls.is_empty() || urls.len() > LEGACY_MAX_URLS {
        return Err(legacy_invalid(
            format!(
                "FromUrl must hold 1 to {LEGACY_MAX_URLS} URLs separated by spaces, not {}.",
                urls.len()
            ),
            format!(
                "FromUrl 须为 1~{LEGACY_MAX_URLS} 个以空格分隔的地址，当前 {} 个。",
                urls.len()
            ),
        ));
    }
    for u in &urls {
        let ok = reqwest::Url::parse(u).is_ok_and(|p| {
            let path = p.path().to_ascii_lowercase();
            match p.scheme() {
                "rtmp" => true,
                "http" => [".flv", ".mp4", ".m3u8"].iter().any(|e| path.ends_with(e)),
                _ => false,
            }
        });
        if !ok {
            return Err(legacy_invalid(
                format!("FromUrl `{u}` must be an rtmp:// URL or an http:// URL of an .flv, .mp4 or .m3u8 (https is not supported)."),
                format!("FromUrl `{u}` 须为 rtmp:// 地址或 .flv、.mp4、.m3u8 的 http:// 地址（不支持 https）。"),
            ));
        }
    }
    let files = urls.len() > 1
        || urls[0]
            .to_ascii_lowercase()
            .split('?')
            .next()
            .is_some_and(|p| p.ends_with(".mp4"));
    if files && urls.iter().any(|u| u.starts_with("rtmp://")) {
        return Err(legacy_invalid(
            "FromUrl may list several files, not several live streams.".into(),
            "FromUrl 可列多个文件，不能列多个直播流。".into(),
        ));
    }
    let kind = if files {
        PullSourceKind::Vod
    } else {
        PullSourceKind::Live
    };
    Ok((kind, urls))
}

/// `ToUrl`: `rtmp://<push domain>/<app>/<stream>[?args]`.
fn legacy_target(to: &str) -> ApiResult<(String, String, String, String)> {
    let bad = || {
        legacy_invalid(
            format!("ToUrl `{to}` must be rtmp://<push domain>/<AppName>/<StreamName>."),
            format!("ToUrl `{to}` 须为 rtmp://推流域名/AppName/StreamName。"),
        )
    };
    let u = reqwest::Url::parse(to.trim()).map_err(|_| bad())?;
    if u.scheme() != "rtmp" {
        return Err(bad());
    }
    let domain = u.host_str().ok_or_else(bad)?.to_ascii_lowercase();
    let mut parts = u.path().trim_start_matches('/').splitn(2, '/');
    let app = parts.next().unwrap_or("").to_owned();
    let stream = parts.next().unwrap_or("").to_owned();
    check_name(ErrorCode::InvalidParameter, "AppName", &app)?;
    check_name(ErrorCode::InvalidParameter, "StreamName", &stream)?;
    Ok((domain, app, stream, u.query().unwrap_or("").to_owned()))
}

/// The window of a legacy config: both times after now, end after start,
/// less than 7 days apart.
fn legacy_window(now: i64, start: &str, end: &str) -> ApiResult<(i64, i64)> {
    let (s, e) = times(ErrorCode::InvalidParameter, start, end)?;
    if e <= s {
        return Err(legacy_invalid(
            "EndTime must be later than StartTime.".into(),
            "结束时间必须大于开始时间。".into(),
        ));
    }
    if s <= now || e <= now {
        return Err(legacy_invalid(
            "StartTime and EndTime must be later than the current time.".into(),
            "结束时间和开始时间必须大于当前时间。".into(),
        ));
    }
    if e - s >= LEGACY_SPAN {
        return Err(legacy_invalid(
            "EndTime - StartTime must be less than 7 days.".into(),
            "结束时间和开始时间之差必须小于七天。".into(),
        ));
    }
    Ok((s, e))
}

fn legacy_place(area: i64, isp: i64) -> ApiResult<()> {
    for (name, v) in [("AreaId", area), ("IspId", isp)] {
        if !(1..=4).contains(&v) {
            return Err(code(
                ErrorCode::InvalidParameterValue,
                format!("{name} must be 1, 2, 3 or 4, not {v}."),
                format!("{name} 取值须为 1、2、3、4，当前为 {v}。"),
            ));
        }
    }
    if (area == 4) != (isp == 4) {
        return Err(legacy_invalid(
            "AreaId 4 (Hong Kong, China) goes with IspId 4 (other), and only with it.".into(),
            "AreaId 为 4（中国香港）时 IspId 须为 4（其他），反之亦然。".into(),
        ));
    }
    Ok(())
}

/// Turns a legacy config's fields into a spec, checked.
async fn legacy_spec(cx: &Cx, l: LegacySpec) -> ApiResult<Spec> {
    legacy_place(l.area_id, l.isp_id)?;
    let (kind, urls) = legacy_sources(&l.from_url)?;
    let (domain, app, stream, args) = legacy_target(&l.to_url)?;
    for u in &urls {
        check_source(cx, kind, u).await?;
    }
    Ok(Spec {
        source_type: match kind {
            PullSourceKind::Live => "PullLivePushLive",
            PullSourceKind::Vod | PullSourceKind::Picture => "PullVodPushLive",
        }
        .to_owned(),
        source_urls: urls,
        domain_name: domain,
        app_name: app,
        stream_name: stream,
        push_args: args,
        // A legacy config plays its files once.
        vod_loop_times: 0,
        vod_refresh_type: "ImmediateNewSource".to_owned(),
        legacy: Some(l),
        ..Spec::default()
    })
}

/// Creates a legacy pull config (a relay task; its ConfigId is the row id).
pub async fn create_pull_stream_config(
    cx: Cx,
    req: CreatePullStreamConfigRequest,
) -> ApiResult<CreatePullStreamConfigResponse> {
    let (start, end) = legacy_window(cx.now, &req.start_time, &req.end_time)?;
    let spec = legacy_spec(
        &cx,
        LegacySpec {
            from_url: req.from_url,
            to_url: req.to_url,
            area_id: req.area_id,
            isp_id: req.isp_id,
            invalid: false,
        },
    )
    .await?;
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    let mut row = PullTaskRow {
        id: 0,
        account,
        legacy: true,
        token: 0,
        specify: String::new(),
        spec: spec.to_json()?,
        enabled: true,
        start,
        end,
        generation: 0,
        created_at: now,
        updated_at: now,
        created_by: String::new(),
        updated_by: String::new(),
    };
    let row = cx
        .store
        .transaction(move |c| {
            check_push_domain(c, account, &spec.domain_name, ErrorCode::InvalidParameter)?;
            if pull_tasks::count(c, account, true)? >= LEGACY_MAX {
                return Err(legacy_invalid(
                    format!("An account holds at most {LEGACY_MAX} pull configs."),
                    format!("每个账号最多 {LEGACY_MAX} 个拉流配置。"),
                ));
            }
            dry_run_stop(dry_run)?;
            pull_tasks::insert(c, &mut row)?;
            Ok::<_, ApiError>(row)
        })
        .await?;
    cx.publish_policy().await?;
    Ok(CreatePullStreamConfigResponse {
        config_id: row.id.to_string(),
    })
}

fn legacy_find(
    c: &livestack_store::db::Connection,
    account: livestack_core::AccountId,
    id: &str,
) -> ApiResult<PullTaskRow> {
    let n: i64 = id.trim().parse().map_err(|_| legacy_not_found(id))?;
    pull_tasks::find(c, account, true, n)?.ok_or_else(|| legacy_not_found(id))
}

fn legacy_of(row: &PullTaskRow) -> ApiResult<LegacySpec> {
    Spec::of(row)?.legacy.ok_or_else(|| {
        ApiError::internal(
            ErrorCode::InternalError,
            anyhow::anyhow!("pull config {} has no legacy spec", row.id),
        )
    })
}

/// Changes a legacy pull config; AreaId and IspId change together.
pub async fn modify_pull_stream_config(
    cx: Cx,
    req: ModifyPullStreamConfigRequest,
) -> ApiResult<ModifyPullStreamConfigResponse> {
    if req.area_id.is_some() != req.isp_id.is_some() {
        return Err(legacy_invalid(
            "AreaId and IspId are changed together.".into(),
            "AreaId 和 IspId 须同时修改。".into(),
        ));
    }
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    let id = req.config_id.clone();
    let mut row = cx
        .store
        .transaction(move |c| legacy_find(c, account, &id))
        .await?;
    let mut l = legacy_of(&row)?;
    let old = l.clone();
    if let Some(v) = req.from_url {
        l.from_url = v;
    }
    if let Some(v) = req.to_url {
        l.to_url = v;
    }
    if let (Some(a), Some(i)) = (req.area_id, req.isp_id) {
        l.area_id = a;
        l.isp_id = i;
    }
    if req.start_time.is_some() || req.end_time.is_some() {
        let start = req.start_time.unwrap_or_else(|| utc_iso(row.start));
        let end = req.end_time.unwrap_or_else(|| utc_iso(row.end));
        (row.start, row.end) = legacy_window(now, &start, &end)?;
    }
    let restart = l.from_url != old.from_url || l.to_url != old.to_url;
    let spec = legacy_spec(&cx, l).await?;
    row.spec = spec.to_json()?;
    row.updated_at = now;
    if restart {
        row.generation += 1;
    }
    cx.store
        .transaction(move |c| {
            check_push_domain(c, account, &spec.domain_name, ErrorCode::InvalidParameter)?;
            dry_run_stop(dry_run)?;
            if !pull_tasks::update(c, &row)? {
                return Err(legacy_not_found(&req.config_id));
            }
            Ok(())
        })
        .await?;
    cx.publish_policy().await?;
    Ok(ModifyPullStreamConfigResponse {})
}

/// Deletes a legacy pull config.
pub async fn delete_pull_stream_config(
    cx: Cx,
    req: DeletePullStreamConfigRequest,
) -> ApiResult<DeletePullStreamConfigResponse> {
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    cx.store
        .transaction(move |c| {
            let row = legacy_find(c, account, &req.config_id)?;
            dry_run_stop(dry_run)?;
            pull_tasks::delete(c, account, row.id, now)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    cx.publish_policy().await?;
    Ok(DeletePullStreamConfigResponse {})
}

fn area_name(id: i64) -> &'static str {
    match id {
        1 => "深圳",
        2 => "上海",
        3 => "天津",
        4 => "中国香港",
        _ => "",
    }
}

fn isp_name(id: i64) -> &'static str {
    match id {
        1 => "电信",
        2 => "移动",
        3 => "联通",
        _ => "其他",
    }
}

/// The legacy status: 0 invalid (ended or set so), 1 initial (not started
/// yet), 2 running, 3 failed to start, 4 paused.
fn legacy_status(
    row: &PullTaskRow,
    l: &LegacySpec,
    run: Option<&pull_tasks::RunReport>,
    now: i64,
) -> &'static str {
    if l.invalid || row.end <= now {
        "0"
    } else if !row.enabled {
        "4"
    } else if row.start > now {
        "1"
    } else {
        match run {
            Some(r) if r.active => "2",
            Some(r) if !r.last_error.is_empty() => "3",
            _ => "1",
        }
    }
}

/// The caller's legacy pull configs, or the one named.
pub async fn describe_pull_stream_configs(
    cx: Cx,
    req: DescribePullStreamConfigsRequest,
) -> ApiResult<DescribePullStreamConfigsResponse> {
    let (account, now) = (cx.account, cx.now);
    let rows = cx
        .store
        .transaction(move |c| {
            let rows = match req.config_id.as_deref().filter(|s| !s.trim().is_empty()) {
                Some(id) => vec![legacy_find(c, account, id)?],
                None => pull_tasks::page(c, account, true, 0, u64::MAX / 2)?,
            };
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let run = pull_tasks::last_report(c, row.id)?;
                out.push((row, run));
            }
            Ok::<_, ApiError>(out)
        })
        .await?;
    let mut configs = Vec::with_capacity(rows.len());
    for (row, run) in rows {
        let l = legacy_of(&row)?;
        configs.push(PullStreamConfig {
            config_id: row.id.to_string(),
            status: legacy_status(&row, &l, run.as_ref(), now).to_owned(),
            from_url: l.from_url,
            to_url: l.to_url,
            area_name: area_name(l.area_id).to_owned(),
            isp_name: isp_name(l.isp_id).to_owned(),
            start_time: utc_iso(row.start),
            end_time: utc_iso(row.end),
        });
    }
    Ok(DescribePullStreamConfigsResponse {
        pull_stream_configs: Some(configs),
    })
}

/// Sets legacy pull configs' status: 2 running, 4 paused, 0 invalid.
pub async fn modify_pull_stream_status(
    cx: Cx,
    req: ModifyPullStreamStatusRequest,
) -> ApiResult<ModifyPullStreamStatusResponse> {
    let status = req.status.trim().to_owned();
    if !["0", "2", "4"].contains(&status.as_str()) {
        return Err(code(
            ErrorCode::InvalidParameterValue,
            format!("Status must be 0 (invalid), 2 (running) or 4 (paused), not `{status}`."),
            format!("Status 取值须为 0（无效）、2（运行中）或 4（暂停），当前为 `{status}`。"),
        ));
    }
    if req.config_ids.is_empty() {
        return Err(code(
            ErrorCode::MissingParameter,
            "ConfigIds must name at least one config.".into(),
            "ConfigIds 至少须有一个配置。".into(),
        ));
    }
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    cx.store
        .transaction(move |c| {
            let mut rows = Vec::new();
            for id in &req.config_ids {
                rows.push(legacy_find(c, account, id)?);
            }
            dry_run_stop(dry_run)?;
            for mut row in rows {
                let mut spec = Spec::of(&row)?;
                if let Some(l) = spec.legacy.as_mut() {
                    l.invalid = status == "0";
                }
                row.enabled = status == "2";
                row.spec = spec.to_json()?;
                row.updated_at = now;
                pull_tasks::update(c, &row)?;
            }
            Ok::<_, ApiError>(())
        })
        .await?;
    cx.publish_policy().await?;
    Ok(ModifyPullStreamStatusResponse {})
}
