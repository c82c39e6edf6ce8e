//! Bookkeeping, from what really happened:
//! `DescribeScreenShotSheetNumList` (snapshots stored),
//! `DescribeConcurrentRecordStreamNum` (streams recorded at once),
//! `DescribeStreamPushInfoList` (push quality, sampled each minute) and
//! `DescribePullTransformPushInfo` (how long relay tasks pushed).
//!
//! Owns: the windows, slots and filters of these two queries. Must not:
//! invent numbers: a slot with nothing in it says 0, and data for a zone
//! livestack does not serve (`Oversea`: one server is one region, counted
//! as `Mainland`) is all zeros.

use livestack_model::{
    ConcurrentRecordStreamNum, DescribeConcurrentRecordStreamNumRequest,
    DescribeConcurrentRecordStreamNumResponse, DescribePullTransformPushInfoRequest,
    DescribePullTransformPushInfoResponse, DescribeScreenShotSheetNumListRequest,
    DescribeScreenShotSheetNumListResponse, DescribeStreamPushInfoListRequest,
    DescribeStreamPushInfoListResponse, PushQualityData, TaskDurationInfo, TimeValue,
};
use livestack_store::samples;
use livestack_store::usage::{self, SLOT_SECS};

use super::stream::{window, DAY};
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::time::utc_iso;

/// Beijing time is UTC+8: its days start at 16:00 UTC.
const BEIJING: i64 = 8 * 3600;

/// Whether the zone's data is livestack's (`None`, `Mainland`) or none of
/// it (`Oversea`); another value is refused.
fn zone(name: &str, value: Option<&str>) -> ApiResult<bool> {
    match value.unwrap_or("") {
        "" | "Mainland" => Ok(true),
        "Oversea" => Ok(false),
        other => Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!("{name} must be Mainland or Oversea, not `{other}`."),
            format!("{name} 取值须为 Mainland 或 Oversea，当前为 `{other}`。"),
        )),
    }
}

/// The official examples write `2019-03-01 T12:00:00+08:00`; read it as
/// the time it means.
fn lenient(t: &str) -> String {
    t.replace(" T", "T")
}

/// The slot starts covering `from..=to`, `step` seconds apart, aligned to
/// `offset` (0 for UTC slots, [`BEIJING`] for Beijing days).
fn slots(from: i64, to: i64, step: i64, offset: i64) -> Vec<i64> {
    let first = (from + offset).div_euclid(step) * step - offset;
    let mut out = Vec::new();
    let mut at = first;
    while at <= to {
        out.push(at);
        at += step;
    }
    out
}

/// Snapshots stored per 5 minutes (`Granularity` `Minute`, up to 31 days)
/// or per Beijing day (`Day`, the default, up to 186 days), of every push
/// domain or those named.
pub async fn describe_screen_shot_sheet_num_list(
    cx: Cx,
    req: DescribeScreenShotSheetNumListRequest,
) -> ApiResult<DescribeScreenShotSheetNumListResponse> {
    let ours = zone("Zone", req.zone.as_deref())?;
    let (step, offset, span, age) = match req.granularity.as_deref().unwrap_or("Day") {
        "Minute" => (SLOT_SECS, 0, 31 * DAY, 93 * DAY),
        "Day" => (DAY, BEIJING, 186 * DAY, 186 * DAY),
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!("Granularity must be Minute or Day, not `{other}`."),
                format!("Granularity 取值须为 Minute 或 Day，当前为 `{other}`。"),
            ))
        }
    };
    let (from, to) = window(
        &cx,
        &lenient(&req.start_time),
        &lenient(&req.end_time),
        span,
        age,
    )?;
    let domains = req.push_domains.unwrap_or_default();
    let account = cx.account;
    let counted = if ours {
        cx.store
            .run(move |c| usage::snapshot_slots(c, account, &domains, from, to))
            .await?
    } else {
        Vec::new()
    };
    // `counted` is in slot order: one pass hands each 5-minute count to
    // the output slot holding it.
    let mut counts = counted.into_iter().peekable();
    let data_info_list = slots(from, to, step, offset)
        .into_iter()
        .map(|slot| {
            while counts.next_if(|(s, _)| *s < slot).is_some() {}
            let mut num = 0;
            while let Some((_, n)) = counts.next_if(|(s, _)| *s < slot + step) {
                num += n;
            }
            TimeValue {
                time: utc_iso(slot),
                num,
            }
        })
        .collect();
    Ok(DescribeScreenShotSheetNumListResponse { data_info_list })
}

/// The most streams recorded at the same time in each 5 minutes of the
/// window (up to 31 days, within 180), for slow-live (`IsDelayLive`)
/// or normal recording. A stream recorded in several formats counts
/// once.
pub async fn describe_concurrent_record_stream_num(
    cx: Cx,
    req: DescribeConcurrentRecordStreamNumRequest,
) -> ApiResult<DescribeConcurrentRecordStreamNumResponse> {
    let slow = match req.live_type.as_str() {
        "SlowLive" => true,
        "NormalLive" => false,
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!("LiveType must be SlowLive or NormalLive, not `{other}`."),
                format!("LiveType 取值须为 SlowLive 或 NormalLive，当前为 `{other}`。"),
            ))
        }
    };
    let ours = zone("MainlandOrOversea", req.mainland_or_oversea.as_deref())?;
    let (from, to) = window(
        &cx,
        &lenient(&req.start_time),
        &lenient(&req.end_time),
        31 * DAY,
        180 * DAY,
    )?;
    let domains = req.push_domains.unwrap_or_default();
    let account = cx.account;
    let spans = if ours {
        cx.store
            .run(move |c| usage::recordings_between(c, account, from * 1000, to * 1000 + 999))
            .await?
    } else {
        Vec::new()
    };
    let now_ms = cx.now.saturating_mul(1000);
    // Each stream's recording time as disjoint intervals (formats merged).
    let mut by_stream: std::collections::BTreeMap<(String, String, String), Vec<(i64, i64)>> =
        std::collections::BTreeMap::new();
    for s in spans.into_iter().filter(|s| s.slow_live == slow) {
        if !domains.is_empty() && !domains.iter().any(|d| d.eq_ignore_ascii_case(&s.domain)) {
            continue;
        }
        by_stream
            .entry((s.domain.to_ascii_lowercase(), s.app, s.stream))
            .or_default()
            .push((s.started_ms, s.ended_ms.unwrap_or(now_ms)));
    }
    // +1 where a stream's recording begins, -1 where it ends.
    let mut edges: Vec<(i64, i64)> = Vec::new();
    for mut ivs in by_stream.into_values() {
        ivs.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (a, b) in ivs {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        for (a, b) in merged {
            edges.push((a, 1));
            edges.push((b, -1));
        }
    }
    // Ends before starts at the same instant: back-to-back is not overlap.
    edges.sort_unstable();
    let mut data = Vec::new();
    let (mut running, mut next) = (0i64, 0usize);
    for slot in slots(from, to, SLOT_SECS, 0) {
        let (start_ms, end_ms) = (slot * 1000, (slot + SLOT_SECS) * 1000);
        while next < edges.len() && edges[next].0 < start_ms {
            running += edges[next].1;
            next += 1;
        }
        let mut peak = running;
        while next < edges.len() && edges[next].0 < end_ms {
            running += edges[next].1;
            peak = peak.max(running);
            next += 1;
        }
        data.push(ConcurrentRecordStreamNum {
            time: beijing_offset(slot),
            num: u64::try_from(peak).unwrap_or(0),
        });
    }
    Ok(DescribeConcurrentRecordStreamNumResponse {
        data_info_list: Some(data),
    })
}

/// How long the caller's relay tasks pushed in each 5 minutes of the
/// window (up to 31 days, within the last 3 years), of one `SourceType`
/// or all: each run counted from the report that it started pushing to
/// the one that it stopped (or now, while it runs), deleted tasks' runs
/// included, as on a bill.
pub async fn describe_pull_transform_push_info(
    cx: Cx,
    req: DescribePullTransformPushInfoRequest,
) -> ApiResult<DescribePullTransformPushInfoResponse> {
    let ours = zone("MainlandOrOversea", req.mainland_or_oversea.as_deref())?;
    let kind = match req.source_type.as_deref().unwrap_or("") {
        "" => None,
        k @ ("PullLivePushLive" | "PullVodPushLive" | "PullPicPushLive") => Some(k.to_owned()),
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!("SourceType must be PullLivePushLive, PullVodPushLive or PullPicPushLive, not `{other}`."),
                format!("SourceType 取值须为 PullLivePushLive、PullVodPushLive 或 PullPicPushLive，当前为 `{other}`。"),
            ))
        }
    };
    let (from, to) = window(
        &cx,
        &lenient(&req.start_time),
        &lenient(&req.end_time),
        31 * DAY,
        3 * 366 * DAY,
    )?;
    let account = cx.account;
    let spans = if ours {
        cx.store
            .run(move |c| livestack_store::pull_tasks::spans_between(c, account, from, to))
            .await?
    } else {
        Vec::new()
    };
    let runs: Vec<(i64, i64)> = spans
        .into_iter()
        .filter(|s| kind.as_deref().is_none_or(|k| k == s.source_type))
        .map(|s| (s.started_at, s.ended_at.unwrap_or(cx.now)))
        .collect();
    let mut total = 0u64;
    let data_info_list: Vec<TaskDurationInfo> = slots(from, to, SLOT_SECS, 0)
        .into_iter()
        .map(|slot| {
            let (a, b) = (slot.max(from), (slot + SLOT_SECS).min(to + 1));
            let seconds: i64 = runs
                .iter()
                .map(|&(s, e)| (e.min(b) - s.max(a)).max(0))
                .sum();
            let seconds = u64::try_from(seconds).unwrap_or(0);
            total += seconds;
            TaskDurationInfo {
                time: utc_iso(slot),
                duration: seconds.div_ceil(60),
                duration_second: seconds,
            }
        })
        .collect();
    Ok(DescribePullTransformPushInfoResponse {
        data_info_list,
        total_duration: total.div_ceil(60),
        total_duration_second: total,
    })
}

/// `2019-03-01T01:00:00+08:00`, as the action's example writes times.
fn beijing_offset(unix: i64) -> String {
    let iso = utc_iso(unix + BEIJING);
    format!("{}+08:00", iso.trim_end_matches('Z'))
}

/// The quality samples of one stream's pushes (one per minute of each
/// push, kept 7 days), oldest first: measured rates and frame rates,
/// the latest timestamps beside the time elapsed (their gap is upstream
/// stall), the publisher's `onMetaData` claims, the GOP, and the
/// bandwidth (Mbit/s) and flux (MB, 10^6 bytes) of the minute.
pub async fn describe_stream_push_info_list(
    cx: Cx,
    req: DescribeStreamPushInfoListRequest,
) -> ApiResult<DescribeStreamPushInfoListResponse> {
    if req.stream_name.is_empty() {
        return Err(ApiError::new(
            ErrorCode::MissingParameter,
            "StreamName is required.",
            "缺少 StreamName 参数。",
        ));
    }
    let (from, to) = window(
        &cx,
        &lenient(&req.start_time),
        &lenient(&req.end_time),
        7 * DAY,
        7 * DAY,
    )?;
    let account = cx.account;
    let domain = req
        .push_domain
        .filter(|d| !d.is_empty())
        .map(|d| d.to_ascii_lowercase());
    let app = req
        .app_name
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "live".to_owned());
    let stream = req.stream_name;
    let rows = cx
        .store
        .run(move |c| {
            samples::list(
                c,
                account,
                &stream,
                domain.as_deref(),
                Some(&app),
                from * 1000,
                to * 1000 + 999,
            )
        })
        .await?;
    let whole = |v: f64| {
        if v.is_finite() && v > 0.0 {
            v.round() as u64
        } else {
            0
        }
    };
    let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(DescribeStreamPushInfoListResponse {
        data_info_list: rows
            .into_iter()
            .map(|r| {
                let seconds = r.interval_ms.max(1) as f64 / 1000.0;
                PushQualityData {
                    time: utc_iso(r.at_ms.div_euclid(1000)),
                    push_domain: r.domain,
                    app_name: r.app,
                    client_ip: r.client_ip,
                    begin_push_time: format!(
                        "{}.{:03}",
                        crate::time::beijing(r.started_ms.div_euclid(1000)),
                        r.started_ms.rem_euclid(1000)
                    ),
                    resolution: format!("{}*{}", r.width, r.height),
                    v_codec: r.video_codec,
                    a_codec: r.audio_codec,
                    sequence: r.sequence,
                    video_fps: whole(r.fps),
                    video_rate: unsigned(r.video_bps),
                    audio_fps: whole(r.audio_fps),
                    audio_rate: unsigned(r.audio_bps),
                    local_ts: unsigned(r.at_ms - r.started_ms),
                    video_ts: unsigned(r.video_ts),
                    audio_ts: unsigned(r.audio_ts),
                    meta_video_rate: unsigned(r.meta_video_kbps),
                    meta_audio_rate: unsigned(r.meta_audio_kbps),
                    mate_fps: unsigned(r.meta_fps),
                    stream_param: r.params,
                    bandwidth: r.bytes as f64 * 8.0 / seconds / 1e6,
                    flux: r.bytes as f64 / 1e6,
                    server_ip: r.server_ip,
                    gop_size: Some(r.gop_ms),
                }
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_days_start_at_16_utc_and_minutes_are_5_minute_slots() {
        // 2019-11-07T16:00:00Z is midnight in Beijing.
        let start = 1_573_142_400;
        assert_eq!(utc_iso(start), "2019-11-07T16:00:00Z");
        assert_eq!(
            slots(start + 3600, start + DAY + 10, DAY, BEIJING),
            vec![start, start + DAY]
        );
        assert_eq!(slots(610, 1210, SLOT_SECS, 0), vec![600, 900, 1200]);
        assert_eq!(beijing_offset(start), "2019-11-08T00:00:00+08:00");
    }
}
