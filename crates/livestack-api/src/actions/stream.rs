//! Live streams: what is live (`DescribeLiveStreamOnlineList`,
//! `…PushInfoList`, `…State`), what was live (`…PublishedList`,
//! `…EventList`), and orders (`DropLiveStream`, `ForbidLiveStream`,
//! `ResumeLiveStream`, `Add/ResumeDelayLiveStream`,
//! `DescribeLiveDelayInfoList`).
//!
//! Owns: checking parameters and time windows, and asking the media plane
//! through `MediaControl`. Must not: touch connections itself; a drop or
//! forbid is an order to the media plane, which ends the connection.

use livestack_core::media::{EndReason, OnlineStream, StreamKey};
use livestack_model::{
    AddDelayLiveStreamRequest, AddDelayLiveStreamResponse, DelayInfo,
    DescribeLiveDelayInfoListRequest, DescribeLiveDelayInfoListResponse,
    DescribeLiveStreamEventListRequest, DescribeLiveStreamEventListResponse,
    DescribeLiveStreamOnlineListRequest, DescribeLiveStreamOnlineListResponse,
    DescribeLiveStreamPublishedListRequest, DescribeLiveStreamPublishedListResponse,
    DescribeLiveStreamPushInfoListRequest, DescribeLiveStreamPushInfoListResponse,
    DescribeLiveStreamStateRequest, DescribeLiveStreamStateResponse, DropLiveStreamRequest,
    DropLiveStreamResponse, ForbidLiveStreamRequest, ForbidLiveStreamResponse, PublishTime,
    PushDataInfo, ResumeDelayLiveStreamRequest, ResumeDelayLiveStreamResponse,
    ResumeLiveStreamRequest, ResumeLiveStreamResponse, StreamEventInfo, StreamName,
    StreamOnlineInfo,
};
use livestack_store::domains;
use livestack_store::streams::{self, Delayed, Forbidden, PushSession, SessionFilter};

use super::check::to_i64;
use super::check::{check_enum, check_range};
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::time::{parse_time, utc_iso};

pub(crate) const DAY: i64 = 86_400;

/// Total pages for `total` rows at `size` per page.
pub(crate) fn pages(total: u64, size: u64) -> u64 {
    if size == 0 {
        0
    } else {
        total.div_ceil(size)
    }
}

/// Store failures as the stream actions report them: their code lists have
/// no database codes (CSS asks its stream services, not a database). A
/// stream's facts that cannot be read fail as `GetStreamInfoError`, which
/// node holds a push as `GetUpstreamInfoError`, a write as
/// `UpdateDataError`.
fn stream_info(e: livestack_store::StoreError) -> ApiError {
    ApiError::internal(ErrorCode::InternalErrorGetStreamInfoError, e)
}

fn upstream_info(e: livestack_store::StoreError) -> ApiError {
    ApiError::internal(ErrorCode::InternalErrorGetUpstreamInfoError, e)
}

fn update_data(e: livestack_store::StoreError) -> ApiError {
    ApiError::internal(ErrorCode::InternalErrorUpdateDataError, e)
}

/// Checks that `name` is one of the caller's push domains
/// (`InternalError.ConfigNotExist` otherwise, as these actions document).
async fn check_push_domain(cx: &Cx, raw: &str) -> ApiResult<String> {
    let name = raw.trim().to_ascii_lowercase();
    let account = cx.account;
    let key = name.clone();
    let found = cx
        .store
        .run(move |c| domains::find(c, account, &key))
        .await
        .map_err(stream_info)?;
    match found {
        Some(d) if d.kind == livestack_core::DomainKind::Push => Ok(name),
        _ => Err(ApiError::new(
            ErrorCode::InternalErrorConfigNotExist,
            format!("`{name}` is not a push domain of this account."),
            format!("`{name}` 不是本账号的推流域名，配置不存在。"),
        )),
    }
}

fn key(cx: &Cx, app: &str, stream: &str) -> StreamKey {
    StreamKey {
        account: cx.account,
        app: app.to_owned(),
        stream: stream.to_owned(),
    }
}

fn time_param(name: &str, value: &str) -> ApiResult<i64> {
    parse_time(value).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!("{name} must be a time such as 2018-11-29T19:00:00Z, not `{value}`."),
            format!("{name} 须为 UTC 时间，例如 2018-11-29T19:00:00Z，当前为 `{value}`。"),
        )
    })
}

/// Checks a history window: start before end, end not in the future,
/// at most `max_span` long and not older than `max_age`.
pub(crate) fn window(
    cx: &Cx,
    start: &str,
    end: &str,
    max_span: i64,
    max_age: i64,
) -> ApiResult<(i64, i64)> {
    let from = time_param("StartTime", start)?;
    let to = time_param("EndTime", end)?;
    let bad = |en: String, zh: String| Err(ApiError::new(ErrorCode::InvalidParameterValue, en, zh));
    if from > to {
        return bad(
            "StartTime must not be after EndTime.".into(),
            "StartTime 不能晚于 EndTime。".into(),
        );
    }
    if to > cx.now + 60 {
        return bad(
            "EndTime must not be in the future.".into(),
            "EndTime 不能超过当前时间。".into(),
        );
    }
    if to - from > max_span {
        return bad(
            format!(
                "EndTime and StartTime may be at most {} days apart.",
                max_span / DAY
            ),
            format!("EndTime 和 StartTime 相差不可超过 {} 天。", max_span / DAY),
        );
    }
    if from < cx.now - max_age {
        return bad(
            format!("StartTime may be at most {} days ago.", max_age / DAY),
            format!("最长支持查询 {} 天内的数据。", max_age / DAY),
        );
    }
    Ok((from, to))
}

/// Whether a stream's (domain, app, stream) pass the request's filters.
fn online_matches(
    (d0, a0, s0): (&str, &str, &str),
    domain: Option<&str>,
    app: Option<&str>,
    stream: Option<&str>,
) -> bool {
    domain.is_none_or(|d| d0.eq_ignore_ascii_case(d))
        && app.is_none_or(|a| a0 == a)
        && stream.is_none_or(|n| s0 == n)
}

/// A stream of the caller's live on some node of the cluster.
struct LiveAnywhere {
    app: String,
    stream: String,
    domain: String,
    started: i64,
    /// The node it is pushed to; `None` for this one.
    node: Option<String>,
}

/// The caller's live streams on every node: this node's media plane, and
/// on PostgreSQL the open push sessions of the other nodes whose lease is
/// current (see `livestack_store::cluster`). A stream pushed here wins
/// over a stale row of another node.
async fn live_anywhere(cx: &Cx) -> ApiResult<Vec<LiveAnywhere>> {
    let mut out: Vec<LiveAnywhere> = cx
        .media
        .online(cx.account)
        .into_iter()
        .map(|s: OnlineStream| LiveAnywhere {
            app: s.key.app,
            stream: s.key.stream,
            domain: s.domain,
            started: s.started,
            node: None,
        })
        .collect();
    if cx.store.backend() == livestack_store::Backend::Postgres {
        let (account, node) = (cx.account, cx.node.to_string());
        let remote = cx
            .store
            .run(move |c| livestack_store::cluster::remote_online(c, account, &node))
            .await
            .map_err(upstream_info)?;
        for r in remote {
            if !out.iter().any(|l| l.app == r.app && l.stream == r.stream) {
                out.push(LiveAnywhere {
                    app: r.app,
                    stream: r.stream,
                    domain: r.domain,
                    started: r.started_at,
                    node: Some(r.node),
                });
            }
        }
    }
    Ok(out)
}

/// The other node app/stream is pushed to, if it is live on one (and not
/// here).
async fn owner_elsewhere(cx: &Cx, app: &str, stream: &str) -> ApiResult<Option<String>> {
    Ok(live_anywhere(cx)
        .await?
        .into_iter()
        .find(|s| s.app == app && s.stream == stream)
        .and_then(|s| s.node))
}

/// Tells node `owner` to end its push of app/stream, reported as forbidden
/// or dropped (see `propagation::DropOrder`).
async fn order_drop(
    cx: &Cx,
    owner: &str,
    app: &str,
    stream: &str,
    forbidden: bool,
) -> ApiResult<()> {
    let order = crate::propagation::DropOrder {
        node: owner.to_owned(),
        account: cx.account.0,
        app: app.to_owned(),
        stream: stream.to_owned(),
        forbidden,
        replaced: false,
    };
    // The order is how this node calls the owner: not sent, not called.
    crate::propagation::send_drop(&cx.store, &order)
        .await
        .map_err(|e| ApiError::internal(ErrorCode::InternalErrorCallOtherSvrError, e))
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// The caller's live streams.
pub async fn describe_live_stream_online_list(
    cx: Cx,
    req: DescribeLiveStreamOnlineListRequest,
) -> ApiResult<DescribeLiveStreamOnlineListResponse> {
    let page_size = check_range("PageSize", req.page_size.map_or(10, to_i64), 10, 300_000)? as u64;
    let page_num = check_range("PageNum", req.page_num.map_or(1, to_i64), 1, i64::MAX)? as u64;
    let (domain, app, stream) = (
        non_empty(req.domain_name),
        non_empty(req.app_name),
        non_empty(req.stream_name),
    );
    let anywhere = live_anywhere(&cx).await?;
    let delayed = delayed_streams(&cx).await.map_err(stream_info)?;
    let mut online: Vec<LiveAnywhere> = anywhere
        .into_iter()
        .filter(|s| {
            online_matches(
                (&s.domain, &s.app, &s.stream),
                domain.as_deref(),
                app.as_deref(),
                stream.as_deref(),
            )
        })
        .collect();
    online.sort_by(|a, b| (&a.app, &a.stream).cmp(&(&b.app, &b.stream)));
    let total = online.len() as u64;
    let info = online
        .into_iter()
        .skip(((page_num - 1).saturating_mul(page_size)) as usize)
        .take(page_size as usize)
        .map(|s| StreamOnlineInfo {
            push_to_delay: i64::from(
                delayed
                    .iter()
                    .any(|d| d.app == s.app && d.stream == s.stream),
            ),
            stream_name: s.stream,
            publish_time_list: vec![PublishTime {
                publish_time: utc_iso(s.started),
            }],
            app_name: s.app,
            domain_name: s.domain,
        })
        .collect();
    Ok(DescribeLiveStreamOnlineListResponse {
        total_num: total,
        total_page: pages(total, page_size),
        page_num,
        page_size,
        online_info: info,
    })
}

async fn delayed_streams(cx: &Cx) -> livestack_store::StoreResult<Vec<Delayed>> {
    let (account, now) = (cx.account, cx.now);
    cx.store
        .run(move |c| streams::delays(c, account, now))
        .await
}

/// Statistics of the caller's live pushes, measured from the streams.
pub async fn describe_live_stream_push_info_list(
    cx: Cx,
    req: DescribeLiveStreamPushInfoListRequest,
) -> ApiResult<DescribeLiveStreamPushInfoListResponse> {
    let page_size = check_range("PageSize", req.page_size.map_or(200, to_i64), 1, 100_000)? as u64;
    let page_num = check_range("PageNum", req.page_num.map_or(1, to_i64), 1, 10_000)? as u64;
    let (domain, app) = (non_empty(req.push_domain), non_empty(req.app_name));
    let matches = |d: &str, a: &str, s: &str| {
        online_matches((d, a, s), domain.as_deref(), app.as_deref(), None)
    };
    let mut online: Vec<PushDataInfo> = cx
        .media
        .online(cx.account)
        .into_iter()
        .filter(|s| matches(&s.domain, &s.key.app, &s.key.stream))
        .map(|s| PushDataInfo {
            stream_name: Some(s.key.stream),
            app_name: Some(s.key.app),
            client_ip: Some(s.client.ip().to_string()),
            server_ip: Some(s.server.ip().to_string()),
            video_fps: Some(s.fps.round() as u64),
            video_speed: Some(s.video_bps),
            audio_fps: Some(s.audio_fps.round() as u64),
            audio_speed: Some(s.audio_bps),
            push_domain: Some(s.domain),
            begin_push_time: Some(crate::time::beijing(s.started)),
            acodec: Some(s.audio_codec.to_ascii_uppercase()),
            vcodec: Some(s.video_codec.to_ascii_uppercase()),
            resolution: Some(resolution(s.width.into(), s.height.into())),
            asample_rate: Some(u64::from(s.sample_rate)),
            meta_audio_speed: Some(0),
            meta_video_speed: Some(0),
            meta_fps: Some(0),
        })
        .collect();
    // Pushes held by other nodes: as their latest per-minute sample has
    // them (a push younger than a minute shows its start only).
    if cx.store.backend() == livestack_store::Backend::Postgres {
        let (account, node) = (cx.account, cx.node.to_string());
        let remote = cx
            .store
            .run(move |c| {
                let mut out = Vec::new();
                for r in livestack_store::cluster::remote_online(c, account, &node)? {
                    let sample = livestack_store::samples::latest(
                        c,
                        account,
                        &r.app,
                        &r.stream,
                        r.started_at.saturating_mul(1000),
                    )?;
                    out.push((r, sample));
                }
                Ok(out)
            })
            .await?;
        for (r, sample) in remote {
            let here = online.iter().any(|o| {
                o.app_name.as_deref() == Some(&r.app) && o.stream_name.as_deref() == Some(&r.stream)
            });
            if here || !matches(&r.domain, &r.app, &r.stream) {
                continue;
            }
            let s = sample.unwrap_or_default();
            let kbps = |bps: i64| u64::try_from(bps).unwrap_or(0);
            online.push(PushDataInfo {
                stream_name: Some(r.stream),
                app_name: Some(r.app),
                client_ip: Some(r.client_ip),
                server_ip: Some(s.server_ip),
                video_fps: Some(s.fps.round() as u64),
                video_speed: Some(kbps(s.video_bps)),
                audio_fps: Some(s.audio_fps.round() as u64),
                audio_speed: Some(kbps(s.audio_bps)),
                push_domain: Some(r.domain),
                begin_push_time: Some(crate::time::beijing(r.started_at)),
                acodec: Some(s.audio_codec.to_ascii_uppercase()),
                vcodec: Some(s.video_codec.to_ascii_uppercase()),
                resolution: Some(resolution(s.width, s.height)),
                asample_rate: Some(0),
                meta_audio_speed: Some(0),
                meta_video_speed: Some(0),
                meta_fps: Some(0),
            });
        }
    }
    if online.is_empty() {
        return Err(ApiError::new(
            ErrorCode::FailedOperationHasNotLivingStream,
            "No stream is live.",
            "无在线流。",
        ));
    }
    online.sort_by(|a, b| (&a.app_name, &a.stream_name).cmp(&(&b.app_name, &b.stream_name)));
    let total = online.len() as u64;
    let list = online
        .into_iter()
        .skip(((page_num - 1).saturating_mul(page_size)) as usize)
        .take(page_size as usize)
        .collect();
    Ok(DescribeLiveStreamPushInfoListResponse {
        data_info_list: list,
        total_num: total,
        total_page: pages(total, page_size),
        page_num,
        page_size,
    })
}

/// `640*360`, or empty while the picture size is unknown.
fn resolution(width: i64, height: i64) -> String {
    if width > 0 {
        format!("{width}*{height}")
    } else {
        String::new()
    }
}

/// `active`, `inactive` or `forbid`.
pub async fn describe_live_stream_state(
    cx: Cx,
    req: DescribeLiveStreamStateRequest,
) -> ApiResult<DescribeLiveStreamStateResponse> {
    check_push_domain(&cx, &req.domain_name).await?;
    let (account, now) = (cx.account, cx.now);
    let (app, stream) = (req.app_name.clone(), req.stream_name.clone());
    let ban = cx
        .store
        .run(move |c| streams::find_forbidden(c, account, &app, &stream))
        .await
        .map_err(stream_info)?;
    let state = if ban.is_some_and(|b| b.resume_at > now) {
        "forbid"
    } else if live_anywhere(&cx)
        .await?
        .iter()
        .any(|s| s.app == req.app_name && s.stream == req.stream_name)
    {
        "active"
    } else {
        "inactive"
    };
    Ok(DescribeLiveStreamStateResponse {
        stream_state: Some(state.to_owned()),
    })
}

fn session_times(s: &PushSession) -> (String, String, u64) {
    let end = s.ended_at.unwrap_or(s.started_at);
    (
        utc_iso(s.started_at),
        utc_iso(end),
        u64::try_from(end - s.started_at).unwrap_or(0),
    )
}

/// Page `page_num` (1-based) of the caller's push sessions matching
/// `filter`, and how many match in all.
async fn session_page(
    cx: &Cx,
    filter: SessionFilter,
    page_num: u64,
    page_size: u64,
) -> livestack_store::StoreResult<(u64, Vec<PushSession>)> {
    let account = cx.account;
    let offset = (page_num - 1).saturating_mul(page_size);
    cx.store
        .run(move |c| streams::list_sessions(c, account, &filter, offset, page_size))
        .await
}

/// A push session as a `StreamName` or `StreamEventInfo`: the model has
/// two structs with the same fields for the published and event lists.
macro_rules! session_row {
    ($ty:ident, $s:expr) => {{
        let s: PushSession = $s;
        let (start, end, duration) = session_times(&s);
        $ty {
            stream_name: s.stream,
            app_name: s.app,
            domain_name: s.domain,
            stream_start_time: start,
            stream_end_time: end,
            stop_reason: s.stop_reason,
            duration,
            client_ip: s.client_ip,
            resolution: s.resolution,
        }
    }};
}

/// Streams pushed in a time window (ended pushes).
pub async fn describe_live_stream_published_list(
    cx: Cx,
    req: DescribeLiveStreamPublishedListRequest,
) -> ApiResult<DescribeLiveStreamPublishedListResponse> {
    let page_size = check_range("PageSize", req.page_size.map_or(10, to_i64), 10, 100)? as u64;
    let page_num = check_range("PageNum", req.page_num.map_or(1, to_i64), 1, i64::MAX)? as u64;
    let domain = check_push_domain(&cx, &req.domain_name).await?;
    let (from, to) = window(&cx, &req.start_time, &req.end_time, 31 * DAY, 62 * DAY)?;
    let filter = SessionFilter {
        from,
        to,
        domain: Some(domain),
        app: non_empty(req.app_name),
        stream: non_empty(req.stream_name),
        fuzzy: true,
        succeeded_only: true,
        ended_only: true,
        ascending: false,
    };
    let (total, rows) = session_page(&cx, filter, page_num, page_size)
        .await
        .map_err(stream_info)?;
    Ok(DescribeLiveStreamPublishedListResponse {
        publish_info: rows
            .into_iter()
            .map(|s| session_row!(StreamName, s))
            .collect(),
        page_num,
        page_size,
        total_num: total,
        total_page: pages(total, page_size),
    })
}

/// Push start/stop events (including refused pushes) in a time window.
pub async fn describe_live_stream_event_list(
    cx: Cx,
    req: DescribeLiveStreamEventListRequest,
) -> ApiResult<DescribeLiveStreamEventListResponse> {
    let page_size = check_range("PageSize", req.page_size.map_or(10, to_i64), 1, 100)? as u64;
    let page_num = check_range("PageNum", req.page_num.map_or(1, to_i64), 1, i64::MAX)? as u64;
    if page_num.saturating_mul(page_size) > 10_000 + page_size {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            "Only the first 10000 events can be paged through.",
            "目前只支持10000条内的查询。",
        ));
    }
    let is_filter = check_enum("IsFilter", Some(req.is_filter.unwrap_or(0)), &[0, 1])? == Some(1);
    let is_strict = check_enum("IsStrict", Some(req.is_strict.unwrap_or(0)), &[0, 1])? == Some(1);
    let is_asc = check_enum("IsAsc", Some(req.is_asc.unwrap_or(0)), &[0, 1])? == Some(1);
    let (from, to) = window(&cx, &req.start_time, &req.end_time, 31 * DAY, 62 * DAY)?;
    let filter = SessionFilter {
        from,
        to,
        domain: non_empty(req.domain_name).map(|d| d.to_ascii_lowercase()),
        app: non_empty(req.app_name),
        stream: non_empty(req.stream_name),
        fuzzy: !is_strict,
        succeeded_only: is_filter,
        ended_only: true,
        ascending: is_asc,
    };
    let (total, rows) = session_page(&cx, filter, page_num, page_size)
        .await
        .map_err(ApiError::from)?;
    Ok(DescribeLiveStreamEventListResponse {
        event_list: rows
            .into_iter()
            .map(|s| session_row!(StreamEventInfo, s))
            .collect(),
        page_num,
        page_size,
        total_num: total.min(10_000),
        total_page: pages(total.min(10_000), page_size),
    })
}

/// Disconnects a live push.
pub async fn drop_live_stream(
    cx: Cx,
    req: DropLiveStreamRequest,
) -> ApiResult<DropLiveStreamResponse> {
    check_push_domain(&cx, &req.domain_name).await?;
    let key = key(&cx, &req.app_name, &req.stream_name);
    let live = cx.media.online(cx.account).iter().any(|s| s.key == key);
    if !live {
        // Live on another node: that node is told to drop it (over the
        // database's change channel), and this one answers once the push
        // has ended there.
        if let Some(owner) = owner_elsewhere(&cx, &req.app_name, &req.stream_name).await? {
            cx.commit_point()?;
            return drop_on(&cx, &owner, &req.app_name, &req.stream_name).await;
        }
        return Err(not_live(&req.app_name, &req.stream_name));
    }
    cx.commit_point()?;
    if !cx.media.drop_stream(&key, EndReason::Dropped) {
        return Err(not_live(&req.app_name, &req.stream_name));
    }
    Ok(DropLiveStreamResponse {})
}

/// How long a node waits for another to end a push it was told to drop.
const REMOTE_DROP_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Orders node `owner` to drop the push of app/stream and waits until its
/// session has ended; `InternalError.CallOtherSvrError` when it does not
/// within [`REMOTE_DROP_WAIT`] (the owner is down or cannot hear).
async fn drop_on(
    cx: &Cx,
    owner: &str,
    app: &str,
    stream: &str,
) -> ApiResult<DropLiveStreamResponse> {
    order_drop(cx, owner, app, stream, false).await?;
    let deadline = tokio::time::Instant::now() + REMOTE_DROP_WAIT;
    loop {
        // Only the other nodes' sessions: this node never held the push.
        let (account, node) = (cx.account, cx.node.to_string());
        let still = cx
            .store
            .run(move |c| livestack_store::cluster::remote_online(c, account, &node))
            .await
            .map_err(upstream_info)?
            .iter()
            .any(|s| s.app == app && s.stream == stream && s.node == owner);
        if !still {
            return Ok(DropLiveStreamResponse {});
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::new(
                ErrorCode::InternalErrorCallOtherSvrError,
                format!("The stream is pushed to node `{owner}`, which did not end it in time."),
                format!("该流推在节点 `{owner}` 上，该节点未能及时断开。"),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn not_live(app: &str, stream: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InternalErrorStreamStatusError,
        format!("The stream {app}/{stream} is not live."),
        format!("流 {app}/{stream} 不在推流状态（流状态异常）。"),
    )
}

/// Forbids a stream to push until `ResumeTime` (default 7 days, at most
/// 90), and disconnects it if it is live.
pub async fn forbid_live_stream(
    cx: Cx,
    req: ForbidLiveStreamRequest,
) -> ApiResult<ForbidLiveStreamResponse> {
    let domain = check_push_domain(&cx, &req.domain_name).await?;
    let resume_at = match non_empty(req.resume_time) {
        Some(t) => time_param("ResumeTime", &t)?,
        None => cx.now + 7 * DAY,
    };
    if resume_at <= cx.now || resume_at > cx.now + 90 * DAY {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            "ResumeTime must be in the future and at most 90 days away.",
            "ResumeTime 须晚于当前时间，且最长支持禁推90天。",
        ));
    }
    let reason = req.reason.unwrap_or_default();
    if reason.len() > 2048 {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            "Reason may be at most 2048 bytes long.",
            "Reason 长度不能超过 2048 字节。",
        ));
    }
    cx.commit_point()?;
    let ban = Forbidden {
        account_id: cx.account,
        app: req.app_name.clone(),
        stream: req.stream_name.clone(),
        domain,
        resume_at,
        reason,
    };
    let now = cx.now;
    cx.store
        .run(move |c| streams::forbid(c, &ban, now))
        .await
        .map_err(update_data)?;
    cx.publish_policy().await?;
    cx.media.drop_stream(
        &key(&cx, &req.app_name, &req.stream_name),
        EndReason::ForbiddenWhileLive,
    );
    // Pushed to another node: that node ends it too (the ban is already
    // in the store, so its publisher cannot come back).
    if let Some(owner) = owner_elsewhere(&cx, &req.app_name, &req.stream_name).await? {
        order_drop(&cx, &owner, &req.app_name, &req.stream_name, true).await?;
    }
    Ok(ForbidLiveStreamResponse {})
}

/// Lifts a ban.
pub async fn resume_live_stream(
    cx: Cx,
    req: ResumeLiveStreamRequest,
) -> ApiResult<ResumeLiveStreamResponse> {
    check_push_domain(&cx, &req.domain_name).await?;
    cx.commit_point()?;
    let account = cx.account;
    cx.store
        .run(move |c| streams::resume(c, account, &req.app_name, &req.stream_name))
        .await
        .map_err(update_data)?;
    cx.publish_policy().await?;
    Ok(ResumeLiveStreamResponse {})
}

/// Delays a stream's playback by `DelayTime` seconds (at most 600) until
/// `ExpireTime` (default and at most 7 days).
pub async fn add_delay_live_stream(
    cx: Cx,
    req: AddDelayLiveStreamRequest,
) -> ApiResult<AddDelayLiveStreamResponse> {
    let domain = check_push_domain(&cx, &req.domain_name).await?;
    let delay = check_range("DelayTime", to_i64(req.delay_time), 1, 600)?;
    let expire_at = match non_empty(req.expire_time) {
        Some(t) => time_param("ExpireTime", &t)?,
        None => cx.now + 7 * DAY,
    };
    if expire_at <= cx.now || expire_at > cx.now + 7 * DAY {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            "ExpireTime must be in the future and at most 7 days away.",
            "ExpireTime 须晚于当前时间，且最长支持7天内生效。",
        ));
    }
    cx.commit_point()?;
    let row = Delayed {
        account_id: cx.account,
        app: req.app_name,
        stream: req.stream_name,
        domain,
        delay_time: delay,
        expire_at,
        created_at: cx.now,
    };
    cx.store
        .run(move |c| streams::set_delay(c, &row))
        .await
        .map_err(update_data)?;
    cx.publish_policy().await?;
    Ok(AddDelayLiveStreamResponse {})
}

/// Ends a stream's delay.
pub async fn resume_delay_live_stream(
    cx: Cx,
    req: ResumeDelayLiveStreamRequest,
) -> ApiResult<ResumeDelayLiveStreamResponse> {
    check_push_domain(&cx, &req.domain_name).await?;
    cx.commit_point()?;
    let account = cx.account;
    let removed = cx
        .store
        .run(move |c| streams::clear_delay(c, account, &req.app_name, &req.stream_name))
        .await
        .map_err(update_data)?;
    if !removed {
        return Err(ApiError::new(
            ErrorCode::ResourceNotFound,
            "The stream has no playback delay.",
            "该流未设置延播。",
        ));
    }
    cx.publish_policy().await?;
    Ok(ResumeDelayLiveStreamResponse {})
}

/// The caller's delays in force.
pub async fn describe_live_delay_info_list(
    cx: Cx,
    _req: DescribeLiveDelayInfoListRequest,
) -> ApiResult<DescribeLiveDelayInfoListResponse> {
    let rows = delayed_streams(&cx).await.map_err(ApiError::from)?;
    Ok(DescribeLiveDelayInfoListResponse {
        delay_info_list: rows
            .into_iter()
            .map(|d| DelayInfo {
                domain_name: d.domain,
                app_name: d.app,
                stream_name: d.stream,
                delay_interval: u64::try_from(d.delay_time).unwrap_or(0),
                create_time: utc_iso(d.created_at),
                expire_time: utc_iso(d.expire_at),
                status: 1,
            })
            .collect(),
    })
}
