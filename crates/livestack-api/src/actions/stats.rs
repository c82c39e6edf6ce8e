//! Play statistics from real traffic: `DescribeStreamPlayInfoList`,
//! `DescribeAllStreamPlayInfoList`, `DescribeLiveDomainPlayInfoList`,
//! `DescribeStreamDayPlayInfoList`, `DescribeBillBandwidthAndFluxList`,
//! `DescribeVisitTopSumInfoList`, `DescribeTopClientIpSumInfoList`,
//! `DescribeHttpStatusInfoList`, `DescribePlayErrorCodeDetailInfoList`,
//! `DescribePlayErrorCodeSumInfoList` and `DescribeProIspPlaySumInfoList`;
//! from the push samples, `DescribePushBandwidthAndFluxList` and
//! `DescribeUploadStreamNums`; from the transcoding jobs' spans,
//! `DescribeLiveTranscodeDetailInfo`, `DescribeLiveTranscodeTotalInfo` and
//! `DescribeTranscodeTaskNum`; and the hourly access logs,
//! `DescribeLogDownloadList`; what relay tasks pushed out,
//! `DescribeDeliverBandwidthList`.
//!
//! Owns: each action's windows, granularities, paging, units (bandwidth in
//! Mbit/s, flux in MB of 10^6 bytes, as the push statistics), and the
//! arithmetic over the per-minute rows the store keeps (sums, peaks, the
//! 95th percentile of 5-minute bandwidths). Must not: invent numbers: a
//! minute nobody played says 0, data of a zone livestack does not serve
//! (`Oversea`: one server is one region, counted as `Mainland`) is empty,
//! and without an IP database province, country and ISP are one
//! documented "unknown" group (未知 / Unknown).

use std::collections::BTreeMap;

use livestack_core::media::PlayProtocol;
use livestack_model::{
    BandwidthInfo, DescribeDeliverBandwidthListRequest, DescribeDeliverBandwidthListResponse,
    DescribeLogDownloadListRequest, DescribeLogDownloadListResponse, LogInfo,
};
use livestack_model::{
    BillDataInfo, ClientIpPlaySumInfo, ConcurrentRecordStreamNum, DayStreamPlayInfo,
    DescribeAllStreamPlayInfoListRequest, DescribeAllStreamPlayInfoListResponse,
    DescribeBillBandwidthAndFluxListRequest, DescribeBillBandwidthAndFluxListResponse,
    DescribeHttpStatusInfoListRequest, DescribeHttpStatusInfoListResponse,
    DescribeLiveDomainPlayInfoListRequest, DescribeLiveDomainPlayInfoListResponse,
    DescribeLiveTranscodeDetailInfoRequest, DescribeLiveTranscodeDetailInfoResponse,
    DescribeLiveTranscodeTotalInfoRequest, DescribeLiveTranscodeTotalInfoResponse,
    DescribePlayErrorCodeDetailInfoListRequest, DescribePlayErrorCodeDetailInfoListResponse,
    DescribePlayErrorCodeSumInfoListRequest, DescribePlayErrorCodeSumInfoListResponse,
    DescribeProIspPlaySumInfoListRequest, DescribeProIspPlaySumInfoListResponse,
    DescribePushBandwidthAndFluxListRequest, DescribePushBandwidthAndFluxListResponse,
    DescribeStreamDayPlayInfoListRequest, DescribeStreamDayPlayInfoListResponse,
    DescribeStreamPlayInfoListRequest, DescribeStreamPlayInfoListResponse,
    DescribeTopClientIpSumInfoListRequest, DescribeTopClientIpSumInfoListResponse,
    DescribeTranscodeTaskNumRequest, DescribeTranscodeTaskNumResponse,
    DescribeUploadStreamNumsRequest, DescribeUploadStreamNumsResponse,
    DescribeVisitTopSumInfoListRequest, DescribeVisitTopSumInfoListResponse, DomainDetailInfo,
    DomainInfoList, HttpCodeInfo, HttpCodeValue, HttpStatusData, HttpStatusInfo,
    MonitorStreamPlayInfo, PlayCodeTotalInfo, PlayDataInfoByStream, PlaySumStatInfo,
    ProIspPlayCodeDataInfo, ProIspPlaySumInfo, TranscodeDetailInfo, TranscodeTaskNum,
    TranscodeTotalInfo,
};
use livestack_model::{
    CdnPlayStatData, DescribeGroupProIspPlayInfoListRequest,
    DescribeGroupProIspPlayInfoListResponse, DescribeProvinceIspPlayInfoListRequest,
    DescribeProvinceIspPlayInfoListResponse, GroupProIspDataInfo, PlayStatInfo,
};
use livestack_store::stats::{self, Minute, CODES};

use super::check::{check_enum, not_one_of, recode};
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::time::{beijing, parse_time, utc_iso};

const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// Beijing days start at 16:00 UTC.
const BEIJING: i64 = 8 * HOUR;

/// Bit/s of `bytes` over `secs`, in Mbit/s.
fn mbps(bytes: u64, secs: i64) -> f64 {
    bytes as f64 * 8.0 / secs.max(1) as f64 / 1e6
}

/// `bytes` in MB (10^6 bytes).
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn bad(code: ErrorCode, en: String, zh: String) -> ApiError {
    ApiError::new(code, en, zh)
}

/// A query's window: Unix seconds, and whether it was written in the ISO
/// form (answers write times the way the request did).
struct Span {
    from: i64,
    to: i64,
    iso: bool,
}

impl Span {
    fn show(&self, t: i64) -> String {
        if self.iso {
            utc_iso(t)
        } else {
            beijing(t)
        }
    }
}

fn describe(secs: i64) -> (String, String) {
    if secs % DAY == 0 {
        (format!("{} days", secs / DAY), format!("{} 天", secs / DAY))
    } else {
        (
            format!("{} hours", secs / HOUR),
            format!("{} 小时", secs / HOUR),
        )
    }
}

/// Reads `StartTime` and `EndTime`: start not after end, at most
/// `max_span` apart, not older than `max_age`. `code` is the action's
/// documented code for a bad value.
fn span(
    cx: &Cx,
    start: &str,
    end: &str,
    max_span: i64,
    max_age: i64,
    code: ErrorCode,
) -> ApiResult<Span> {
    let read = |name: &str, v: &str| {
        parse_time(&v.replace(" T", "T")).ok_or_else(|| {
            bad(
                code,
                format!("{name} must be a time such as 2019-01-08T10:00:00Z or 2019-01-08 18:00:00, not `{v}`."),
                format!("{name} 须为 2019-01-08T10:00:00Z 或 2019-01-08 18:00:00 形式的时间，当前为 `{v}`。"),
            )
        })
    };
    let (from, to) = (read("StartTime", start)?, read("EndTime", end)?);
    if from > to {
        return Err(bad(
            code,
            "StartTime must not be after EndTime.".into(),
            "StartTime 不能晚于 EndTime。".into(),
        ));
    }
    if to - from > max_span {
        let (en, zh) = describe(max_span);
        return Err(bad(
            code,
            format!("StartTime and EndTime may be at most {en} apart."),
            format!("StartTime 与 EndTime 相差不可超过 {zh}。"),
        ));
    }
    if from < cx.now - max_age {
        let (en, zh) = describe(max_age);
        return Err(bad(
            code,
            format!("Only the last {en} can be queried."),
            format!("仅支持查询最近 {zh} 的数据。"),
        ));
    }
    Ok(Span {
        from,
        to,
        iso: start.contains('T'),
    })
}

/// Play domains of a request, lower-case; empty means every domain.
fn domains(list: Option<Vec<String>>) -> Vec<String> {
    list.unwrap_or_default()
        .into_iter()
        .map(|d| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect()
}

/// `value` is one of `allowed`; otherwise the shared
/// [`not_one_of`] refusal, under the action's own `code`.
fn one_of(name: &str, value: &str, allowed: &[&str], code: ErrorCode) -> ApiResult<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(recode(not_one_of(name, value, allowed), code))
    }
}

/// Whether rows of `zone` are livestack's (`None`, `""`, `Mainland`,
/// `China`, `Global`) or none of them (`Oversea`, `Foreign`).
fn zone(value: Option<&str>, code: ErrorCode) -> ApiResult<bool> {
    match value.unwrap_or("") {
        "" | "Mainland" | "China" | "Global" => Ok(true),
        "Oversea" | "Foreign" => Ok(false),
        other => Err(recode(
            not_one_of("MainlandOrOversea", other, &["Mainland", "Oversea"]),
            code,
        )),
    }
}

/// The protocols `ServiceName` counts: `LVB` (everything but WebRTC),
/// `LEB` (WebRTC), both when absent.
fn service(value: Option<&str>) -> ApiResult<Option<&'static str>> {
    match value.unwrap_or("") {
        "" => Ok(None),
        "LVB" => Ok(Some("LVB")),
        "LEB" => Ok(Some("LEB")),
        other => Err(not_one_of("ServiceName", other, &["LVB", "LEB"])),
    }
}

fn counted(m: &Minute, service: Option<&str>) -> bool {
    service.is_none_or(|s| m.protocol().is_some_and(|p| p.service() == s))
}

/// `Granularity` 1 (one minute), the only one the per-minute queries take.
fn one_minute(granularity: u64) -> ApiResult<()> {
    if granularity == 1 {
        return Ok(());
    }
    Err(bad(
        ErrorCode::InvalidParameterValue,
        format!("Granularity must be 1 (one minute), not {granularity}."),
        format!("Granularity 取值须为 1（1 分钟），当前为 {granularity}。"),
    ))
}

/// Page number and size within their documented ranges.
fn page(
    num: Option<u64>,
    size: Option<u64>,
    default_size: u64,
    sizes: (u64, u64),
    code: ErrorCode,
) -> ApiResult<(u64, u64)> {
    let num = num.unwrap_or(1);
    let size = size.unwrap_or(default_size);
    if !(1..=1000).contains(&num) {
        return Err(bad(
            code,
            format!("PageNum must be between 1 and 1000, not {num}."),
            format!("PageNum 的取值范围为 1~1000，当前为 {num}。"),
        ));
    }
    if !(sizes.0..=sizes.1).contains(&size) {
        return Err(bad(
            code,
            format!(
                "PageSize must be between {} and {}, not {size}.",
                sizes.0, sizes.1
            ),
            format!(
                "PageSize 的取值范围为 {}~{}，当前为 {size}。",
                sizes.0, sizes.1
            ),
        ));
    }
    Ok((num, size))
}

/// The page `num` of `items`, `size` to a page, and the number of pages.
fn paged<T>(items: Vec<T>, num: u64, size: u64) -> (Vec<T>, u64) {
    let pages = (items.len() as u64).div_ceil(size);
    let skip = usize::try_from((num - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let page = items
        .into_iter()
        .skip(skip)
        .take(usize::try_from(size).unwrap_or(0))
        .collect();
    (page, pages)
}

/// The minutes of `from..=to` on `domains`.
async fn minutes(cx: &Cx, domains: Vec<String>, from: i64, to: i64) -> ApiResult<Vec<Minute>> {
    let account = cx.account;
    let first = from.div_euclid(MINUTE) * MINUTE;
    Ok(cx
        .store
        .run(move |c| stats::minutes(c, account, &domains, first, to))
        .await?)
}

/// Slot starts covering `from..=to`, `step` apart, aligned to `offset`
/// (0: UTC; [`BEIJING`]: Beijing days).
fn slots(from: i64, to: i64, step: i64, offset: i64) -> Vec<i64> {
    let mut at = (from + offset).div_euclid(step) * step - offset;
    let mut out = Vec::new();
    while at <= to {
        out.push(at);
        at += step;
    }
    out
}

/// The slot of `slots` (sorted starts, `step` apart) `t` falls in.
fn slot_of(slots: &[i64], t: i64) -> Option<usize> {
    let i = slots.partition_point(|s| *s <= t);
    i.checked_sub(1)
}

/// One point a minute of a stream or of the whole account: bandwidth,
/// flux, requests and players online (each minute's largest count, added
/// over streams and protocols), every minute of the window, zeros
/// included. At most a day, within the last month.
pub async fn describe_stream_play_info_list(
    cx: Cx,
    req: DescribeStreamPlayInfoListRequest,
) -> ApiResult<DescribeStreamPlayInfoListResponse> {
    let span = span(
        &cx,
        &req.start_time,
        &req.end_time,
        DAY,
        31 * DAY,
        ErrorCode::InvalidParameterValue,
    )?;
    let service = service(req.service_name.as_deref())?;
    let stream = req.stream_name.filter(|s| !s.is_empty());
    let rows = minutes(
        &cx,
        domains(req.play_domain.map(|d| vec![d])),
        span.from,
        span.to,
    )
    .await?;
    let rows: Vec<Minute> = rows
        .into_iter()
        .filter(|m| counted(m, service) && stream.as_deref().is_none_or(|s| s == m.stream))
        .collect();
    let points = slots(span.from, span.to, MINUTE, 0);
    let sums = per_minute(&rows, &points);
    Ok(DescribeStreamPlayInfoListResponse {
        data_info_list: points
            .iter()
            .zip(sums)
            .map(|(t, (bytes, request, online))| DayStreamPlayInfo {
                time: span.show(*t),
                bandwidth: mbps(bytes, MINUTE),
                flux: mb(bytes),
                request,
                online,
            })
            .collect(),
    })
}

/// CSS's name of a protocol in `MonitorStreamPlayInfo.Protocol`.
fn protocol_name(p: Option<PlayProtocol>) -> &'static str {
    match p {
        Some(PlayProtocol::Rtmp) => "Rtmp",
        Some(PlayProtocol::Flv) => "Flv",
        Some(PlayProtocol::Hls) => "Hls",
        Some(PlayProtocol::Webrtc) => "WebRTC",
        None => "Unknown",
    }
}

/// Every stream played in one minute, by play domain and protocol.
pub async fn describe_all_stream_play_info_list(
    cx: Cx,
    req: DescribeAllStreamPlayInfoListRequest,
) -> ApiResult<DescribeAllStreamPlayInfoListResponse> {
    let at = span(
        &cx,
        &req.query_time,
        &req.query_time,
        0,
        31 * DAY,
        ErrorCode::InvalidParameterValue,
    )?;
    let minute = at.from.div_euclid(MINUTE) * MINUTE;
    let rows = minutes(&cx, domains(req.play_domains), minute, minute).await?;
    Ok(DescribeAllStreamPlayInfoListResponse {
        query_time: req.query_time,
        data_info_list: rows
            .into_iter()
            .map(|m| MonitorStreamPlayInfo {
                play_domain: m.domain.clone(),
                stream_name: m.stream.clone(),
                rate: 0,
                protocol: protocol_name(m.protocol()).to_owned(),
                bandwidth: mbps(m.bytes, MINUTE),
                online: m.online,
                request: m.requests,
            })
            .collect(),
    })
}

/// The last whole minute, per play domain and in total.
pub async fn describe_live_domain_play_info_list(
    cx: Cx,
    req: DescribeLiveDomainPlayInfoListRequest,
) -> ApiResult<DescribeLiveDomainPlayInfoListResponse> {
    let minute = cx.now.div_euclid(MINUTE) * MINUTE - MINUTE;
    let rows = minutes(&cx, domains(req.play_domains), minute, minute).await?;
    let mut by_domain: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for m in &rows {
        let d = by_domain.entry(m.domain.clone()).or_default();
        d.0 += m.bytes;
        d.1 += m.requests;
        d.2 += m.online;
    }
    let (bytes, request, online) = by_domain
        .values()
        .fold((0, 0, 0), |a, d| (a.0 + d.0, a.1 + d.1, a.2 + d.2));
    Ok(DescribeLiveDomainPlayInfoListResponse {
        time: beijing(minute),
        total_bandwidth: mbps(bytes, MINUTE),
        total_flux: mb(bytes),
        total_request: request,
        total_online: online,
        domain_info_list: by_domain
            .into_iter()
            .map(|(domain, (bytes, request, online))| DomainInfoList {
                domain,
                detail_info_list: vec![DomainDetailInfo {
                    mainland_or_oversea: "Mainland".to_owned(),
                    bandwidth: mbps(bytes, MINUTE),
                    flux: mb(bytes),
                    online,
                    request,
                }],
            })
            .collect(),
    })
}

/// The flux of each stream on one Beijing day, paged (1000 a page by
/// default).
pub async fn describe_stream_day_play_info_list(
    cx: Cx,
    req: DescribeStreamDayPlayInfoListRequest,
) -> ApiResult<DescribeStreamDayPlayInfoListResponse> {
    let code = ErrorCode::InvalidParameterValue;
    let day = parse_time(&format!("{} 00:00:00", req.day_time.trim())).ok_or_else(|| {
        bad(
            code,
            format!(
                "DayTime must be a date such as 2020-06-20, not `{}`.",
                req.day_time
            ),
            format!(
                "DayTime 须为 2020-06-20 形式的日期，当前为 `{}`。",
                req.day_time
            ),
        )
    })?;
    let (num, size) = page(req.page_num, req.page_size, 1000, (100, 1000), code)?;
    let service = service(req.service_name.as_deref())?;
    let ours = zone(req.mainland_or_oversea.as_deref(), code)?;
    let rows = if ours {
        minutes(
            &cx,
            domains(req.play_domain.map(|d| vec![d])),
            day,
            day + DAY - 1,
        )
        .await?
    } else {
        Vec::new()
    };
    let mut by_stream: BTreeMap<String, u64> = BTreeMap::new();
    for m in rows.iter().filter(|m| counted(m, service)) {
        *by_stream.entry(m.stream.clone()).or_default() += m.bytes;
    }
    let all: Vec<PlayDataInfoByStream> = by_stream
        .into_iter()
        .map(|(stream_name, bytes)| PlayDataInfoByStream {
            stream_name,
            total_flux: mb(bytes),
        })
        .collect();
    let total = all.len() as u64;
    let (list, pages) = paged(all, num, size);
    Ok(DescribeStreamDayPlayInfoListResponse {
        data_info_list: list,
        total_num: total,
        total_page: pages,
        page_num: num,
        page_size: size,
    })
}

/// The 95th percentile of `values`: sorted, the top 5 % left out (the
/// value at rank ⌈0.95·n⌉), with its index in `values`.
fn p95(values: &[f64]) -> Option<(usize, f64)> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]).then(a.cmp(b)));
    let rank = (values.len() * 95).div_ceil(100);
    let i = *order.get(rank.checked_sub(1)?)?;
    Some((i, values[i]))
}

/// A billing granularity (`Granularity`: 5, 60 or 1440 minutes): its
/// slot length, the longest window it takes and how its slots align.
fn granularity(value: Option<u64>, allowed: &[u64]) -> ApiResult<(i64, i64, i64)> {
    let g = value.unwrap_or(5);
    let shape = match g {
        5 => (5 * MINUTE, DAY, 0),
        60 => (HOUR, 31 * DAY, 0),
        1440 => (DAY, 31 * DAY, BEIJING),
        _ => (0, 0, 0),
    };
    if shape.0 == 0 || !allowed.contains(&g) {
        let list = allowed
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(bad(
            ErrorCode::InvalidParameterValue,
            format!("Granularity must be one of {list}, not {g}."),
            format!("Granularity 取值须为 {list} 之一，当前为 {g}。"),
        ));
    }
    Ok(shape)
}

/// Bandwidth and flux as the billing queries give them.
struct Billing {
    peak: (i64, f64),
    p95: (i64, f64),
    sum_bytes: u64,
    slots: Vec<BillDataInfo>,
}

/// Billing figures of `samples` (Unix seconds, bytes) over `span`: every
/// 5-minute bandwidth of the window (zeros included) is a sample of the
/// peak and the 95th percentile; each slot of `step` (aligned to
/// `offset`) has its flux and its largest 5-minute bandwidth.
fn billing(samples: &[(i64, u64)], span: &Span, step: i64, offset: i64) -> Billing {
    let five = slots(span.from, span.to, 5 * MINUTE, 0);
    let mut five_bytes = vec![0u64; five.len()];
    for (t, b) in samples {
        if let Some(i) = slot_of(&five, *t) {
            five_bytes[i] += b;
        }
    }
    let five_mbps: Vec<f64> = five_bytes.iter().map(|b| mbps(*b, 5 * MINUTE)).collect();
    let starts = slots(span.from, span.to, step, offset);
    // Per slot: its flux, its largest 5-minute bandwidth and when.
    let mut per_slot: Vec<(u64, f64, i64)> = starts.iter().map(|s| (0, 0.0, *s)).collect();
    for (i, t) in five.iter().enumerate() {
        if let Some(k) = slot_of(&starts, *t) {
            let s = &mut per_slot[k];
            s.0 += five_bytes[i];
            if five_mbps[i] > s.1 {
                s.1 = five_mbps[i];
                s.2 = *t;
            }
        }
    }
    let peak = five_mbps
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .map_or((span.from, 0.0), |(i, v)| (five[i], *v));
    let p95 = p95(&five_mbps).map_or((span.from, 0.0), |(i, v)| (five[i], v));
    Billing {
        peak,
        p95,
        sum_bytes: five_bytes.iter().sum(),
        slots: starts
            .iter()
            .zip(per_slot)
            .map(|(start, (bytes, bandwidth, peak_at))| BillDataInfo {
                time: Some(utc_iso(*start)),
                bandwidth: Some(bandwidth),
                flux: Some(mb(bytes)),
                peak_time: Some(utc_iso(peak_at)),
            })
            .collect(),
    }
}

/// Whether `RegionNames` (when given) include livestack's one region.
fn our_region(names: Option<&[String]>) -> bool {
    names.is_none_or(|r| r.is_empty() || r.iter().any(|n| n == "China Mainland"))
}

/// Billing bandwidth and flux of playback: per slot of 5 minutes (a day
/// at most), an hour or a Beijing day (a month at most), the slot's flux
/// and its largest 5-minute bandwidth; overall the peak, the 95th
/// percentile of every 5-minute bandwidth of the window (zeros
/// included), and the flux.
pub async fn describe_bill_bandwidth_and_flux_list(
    cx: Cx,
    req: DescribeBillBandwidthAndFluxListRequest,
) -> ApiResult<DescribeBillBandwidthAndFluxListResponse> {
    let code = ErrorCode::InvalidParameterValue;
    let (step, max_span, offset) = granularity(req.granularity, &[5, 60, 1440])?;
    let span = span(
        &cx,
        &req.start_time,
        &req.end_time,
        max_span,
        31 * DAY,
        code,
    )?;
    let service = service(req.service_name.as_deref())?;
    let ours =
        zone(req.mainland_or_oversea.as_deref(), code)? && our_region(req.region_names.as_deref());
    let samples: Vec<(i64, u64)> = if ours {
        minutes(&cx, domains(req.play_domains), span.from, span.to)
            .await?
            .into_iter()
            .filter(|m| counted(m, service))
            .map(|m| (m.minute, m.bytes))
            .collect()
    } else {
        Vec::new()
    };
    let b = billing(&samples, &span, step, offset);
    Ok(DescribeBillBandwidthAndFluxListResponse {
        peak_bandwidth_time: span.show(b.peak.0),
        peak_bandwidth: b.peak.1,
        p95_peak_bandwidth_time: span.show(b.p95.0),
        p95_peak_bandwidth: b.p95.1,
        sum_flux: mb(b.sum_bytes),
        data_info_list: b.slots,
    })
}

/// What publishers sent, from the push samples (one per push per
/// `push_sample_interval`, kept 7 days), on `domains` in `span`: (Unix
/// seconds, bytes, which push).
async fn pushed(
    cx: &Cx,
    domains: Vec<String>,
    span: &Span,
) -> ApiResult<Vec<livestack_store::samples::PushBytes>> {
    let account = cx.account;
    let (from, to) = (span.from * 1000, span.to * 1000 + 999);
    let rows = cx
        .store
        .run(move |c| livestack_store::samples::of_account(c, account, from, to))
        .await?;
    Ok(rows
        .into_iter()
        .filter(|r| domains.is_empty() || domains.iter().any(|d| d.eq_ignore_ascii_case(&r.domain)))
        .collect())
}

/// Billing bandwidth and flux of what publishers pushed, as
/// [`describe_bill_bandwidth_and_flux_list`] gives playback's; from the
/// push samples, so within their 7 days.
pub async fn describe_push_bandwidth_and_flux_list(
    cx: Cx,
    req: DescribePushBandwidthAndFluxListRequest,
) -> ApiResult<DescribePushBandwidthAndFluxListResponse> {
    let code = ErrorCode::InvalidParameterValue;
    let (step, max_span, offset) = granularity(req.granularity, &[5, 60, 1440])?;
    let span = span(
        &cx,
        &req.start_time,
        &req.end_time,
        max_span,
        31 * DAY,
        code,
    )?;
    let ours =
        zone(req.mainland_or_oversea.as_deref(), code)? && our_region(req.region_names.as_deref());
    let samples: Vec<(i64, u64)> = if ours {
        pushed(&cx, domains(req.push_domains), &span)
            .await?
            .into_iter()
            .map(|r| (r.at_ms.div_euclid(1000), r.bytes))
            .collect()
    } else {
        Vec::new()
    };
    let b = billing(&samples, &span, step, offset);
    Ok(DescribePushBandwidthAndFluxListResponse {
        peak_bandwidth_time: utc_iso(b.peak.0),
        peak_bandwidth: b.peak.1,
        p95_peak_bandwidth_time: utc_iso(b.p95.0),
        p95_peak_bandwidth: b.p95.1,
        sum_flux: mb(b.sum_bytes),
        data_info_list: b.slots,
    })
}

/// How many pushes were live in each 5-minute slot (a day at most) or
/// Beijing day (a month at most): the distinct pushes sampled in it.
pub async fn describe_upload_stream_nums(
    cx: Cx,
    req: DescribeUploadStreamNumsRequest,
) -> ApiResult<DescribeUploadStreamNumsResponse> {
    let code = ErrorCode::InvalidParameterValue;
    let (step, max_span, offset) = granularity(req.granularity, &[5, 1440])?;
    let span = span(
        &cx,
        &req.start_time,
        &req.end_time,
        max_span,
        31 * DAY,
        code,
    )?;
    let rows = pushed(&cx, domains(req.domains), &span).await?;
    let starts = slots(span.from, span.to, step, offset);
    // The pushes seen in each slot: (domain, (app, stream, started)).
    type Pushes = std::collections::BTreeSet<(String, (String, String, i64))>;
    let mut live: Vec<Pushes> = vec![Pushes::new(); starts.len()];
    for r in rows {
        if let Some(i) = slot_of(&starts, r.at_ms.div_euclid(1000)) {
            live[i].insert((r.domain, r.push));
        }
    }
    Ok(DescribeUploadStreamNumsResponse {
        data_info_list: starts
            .iter()
            .zip(live)
            .map(|(t, pushes)| ConcurrentRecordStreamNum {
                time: span.show(*t),
                num: pushes.len() as u64,
            })
            .collect(),
    })
}

/// The top play domains or streams (`TopIndex`) of a window of at most 4
/// hours in the last day, by requests, flux or mean speed.
pub async fn describe_visit_top_sum_info_list(
    cx: Cx,
    req: DescribeVisitTopSumInfoListRequest,
) -> ApiResult<DescribeVisitTopSumInfoListResponse> {
    let code = ErrorCode::InvalidParameterValue;
    let span = span(&cx, &req.start_time, &req.end_time, 4 * HOUR, DAY, code)?;
    one_of("TopIndex", &req.top_index, &["Domain", "StreamId"], code)?;
    let by_domain = req.top_index == "Domain";
    let order = req.order_param.unwrap_or_else(|| "TotalRequest".to_owned());
    one_of(
        "OrderParam",
        &order,
        &["AvgFluxPerSecond", "TotalRequest", "TotalFlux"],
        code,
    )?;
    let (num, size) = page(req.page_num, req.page_size, 20, (1, 1000), code)?;
    let rows = minutes(&cx, domains(req.play_domains), span.from, span.to).await?;
    let mut sums: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for m in &rows {
        let name = if by_domain { &m.domain } else { &m.stream };
        let e = sums.entry(name.clone()).or_default();
        e.0 += m.bytes;
        e.1 += m.requests;
    }
    // The mean of the per-minute speeds over the window's minutes.
    let window_minutes = slots(span.from, span.to, MINUTE, 0).len().max(1) as f64;
    let mut list: Vec<PlaySumStatInfo> = sums
        .into_iter()
        .map(|(name, (bytes, requests))| PlaySumStatInfo {
            name,
            avg_flux_per_second: mb(bytes) / 60.0 / window_minutes,
            total_flux: mb(bytes),
            total_request: requests,
        })
        .collect();
    list.sort_by(|a, b| {
        let key = |x: &PlaySumStatInfo| match order.as_str() {
            "TotalRequest" => x.total_request as f64,
            "TotalFlux" => x.total_flux,
            _ => x.avg_flux_per_second,
        };
        key(b).total_cmp(&key(a)).then_with(|| a.name.cmp(&b.name))
    });
    let total = list.len() as u64;
    let (list, pages) = paged(list, num, size);
    Ok(DescribeVisitTopSumInfoListResponse {
        page_num: Some(num),
        page_size: Some(size),
        top_index: Some(req.top_index),
        order_param: Some(order),
        total_num: Some(total),
        total_page: Some(pages),
        data_info_list: Some(list),
    })
}

/// "Unknown" in the language asked for (`OutLanguage`).
fn unknown(language: Option<&str>) -> &'static str {
    if language == Some("English") {
        "Unknown"
    } else {
        "未知"
    }
}

/// The client addresses of a window of at most 4 hours in the last day,
/// by requests, failed requests or flux; province and country are
/// unknown without an IP database.
pub async fn describe_top_client_ip_sum_info_list(
    cx: Cx,
    req: DescribeTopClientIpSumInfoListRequest,
) -> ApiResult<DescribeTopClientIpSumInfoListResponse> {
    let code = ErrorCode::InvalidParameter;
    let span = span(&cx, &req.start_time, &req.end_time, 4 * HOUR, DAY, code)?;
    let order = req.order_param.unwrap_or_else(|| "TotalRequest".to_owned());
    one_of(
        "OrderParam",
        &order,
        &["TotalRequest", "FailedRequest", "TotalFlux"],
        code,
    )?;
    let (num, size) = page(req.page_num, req.page_size, 20, (1, 1000), code)?;
    let ours = zone(req.mainland_or_oversea.as_deref(), code)?;
    let account = cx.account;
    let list = domains(req.play_domains);
    let (from, to) = (span.from.div_euclid(MINUTE) * MINUTE, span.to);
    let mut clients = if ours {
        cx.store
            .run(move |c| stats::clients(c, account, &list, from, to))
            .await?
    } else {
        Vec::new()
    };
    clients.sort_by(|a, b| {
        let key = |c: &stats::Client| match order.as_str() {
            "FailedRequest" => c.failed,
            "TotalFlux" => c.bytes,
            _ => c.requests,
        };
        key(b).cmp(&key(a)).then_with(|| a.ip.cmp(&b.ip))
    });
    let unknown = unknown(req.out_language.as_deref());
    let total = clients.len() as u64;
    let (page_items, pages) = paged(clients, num, size);
    Ok(DescribeTopClientIpSumInfoListResponse {
        page_num: num,
        page_size: size,
        order_param: order,
        total_num: total,
        total_page: pages,
        data_info_list: page_items
            .into_iter()
            .map(|c| ClientIpPlaySumInfo {
                client_ip: c.ip,
                province: unknown.to_owned(),
                total_flux: mb(c.bytes),
                total_request: c.requests,
                total_failed_request: c.failed,
                country_area: unknown.to_owned(),
            })
            .collect(),
    })
}

/// The HTTP answers (HTTP-FLV and HLS) as `(code, count)` of a set of
/// minutes: 200 for every success, and each error code CSS lists.
fn answers<'a>(rows: impl Iterator<Item = &'a Minute>) -> Vec<(String, u64)> {
    let mut ok = 0;
    let mut codes = [0u64; 7];
    for m in rows {
        ok += m.classes[0];
        for (c, n) in codes.iter_mut().zip(m.codes) {
            *c += n;
        }
    }
    std::iter::once(("200".to_owned(), ok))
        .chain(CODES.iter().zip(codes).map(|(c, n)| (c.to_string(), n)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// HTTP answers per 5 minutes of a window of at most a day in the last
/// month.
pub async fn describe_http_status_info_list(
    cx: Cx,
    req: DescribeHttpStatusInfoListRequest,
) -> ApiResult<DescribeHttpStatusInfoListResponse> {
    let span = span(
        &cx,
        &req.start_time,
        &req.end_time,
        DAY,
        31 * DAY,
        ErrorCode::InvalidParameterValue,
    )?;
    let rows = minutes(&cx, domains(req.play_domains), span.from, span.to).await?;
    let starts = slots(span.from, span.to, 5 * MINUTE, 0);
    let mut by_slot: Vec<Vec<&Minute>> = vec![Vec::new(); starts.len()];
    for m in &rows {
        if let Some(i) = slot_of(&starts, m.minute) {
            by_slot[i].push(m);
        }
    }
    Ok(DescribeHttpStatusInfoListResponse {
        data_info_list: starts
            .iter()
            .zip(by_slot)
            .map(|(t, ms)| HttpStatusData {
                time: Some(utc_iso(*t)),
                http_status_info_list: Some(
                    answers(ms.into_iter())
                        .into_iter()
                        .map(|(http_status, num)| HttpStatusInfo { http_status, num })
                        .collect(),
                ),
            })
            .collect(),
    })
}

/// 4xx and 5xx answers per minute (`Granularity` 1) of a window in the
/// last day, with their share of all answers; minutes without any say 0.
pub async fn describe_play_error_code_detail_info_list(
    cx: Cx,
    req: DescribePlayErrorCodeDetailInfoListRequest,
) -> ApiResult<DescribePlayErrorCodeDetailInfoListResponse> {
    let code = ErrorCode::InvalidParameterValue;
    one_minute(req.granularity)?;
    let classes: Vec<usize> = req
        .stat_type
        .split(',')
        .map(|t| match t.trim() {
            "4xx" => Ok(2),
            "5xx" => Ok(3),
            other => Err(bad(
                code,
                format!("StatType must be 4xx, 5xx or `4xx,5xx`, not `{other}`."),
                format!("StatType 取值须为 4xx、5xx 或 4xx,5xx，当前为 `{other}`。"),
            )),
        })
        .collect::<ApiResult<_>>()?;
    let span = span(&cx, &req.start_time, &req.end_time, DAY, DAY, code)?;
    let ours = zone(req.mainland_or_oversea.as_deref(), code)?;
    let rows = if ours {
        minutes(&cx, domains(req.play_domains), span.from, span.to).await?
    } else {
        Vec::new()
    };
    let points = slots(span.from, span.to, MINUTE, 0);
    let mut per_minute = vec![[0u64; 4]; points.len()];
    for m in &rows {
        if let Some(i) = slot_of(&points, m.minute) {
            for (a, b) in per_minute[i].iter_mut().zip(m.classes) {
                *a += b;
            }
        }
    }
    Ok(DescribePlayErrorCodeDetailInfoListResponse {
        http_code_list: classes
            .iter()
            .map(|&class| HttpCodeInfo {
                http_code: format!("{}xx", class + 2),
                value_list: points
                    .iter()
                    .zip(&per_minute)
                    .map(|(t, c)| {
                        let all: u64 = c.iter().sum();
                        HttpCodeValue {
                            time: Some(utc_iso(*t)),
                            numbers: Some(c[class]),
                            percentage: Some(if all == 0 {
                                0.0
                            } else {
                                c[class] as f64 * 100.0 / all as f64
                            }),
                        }
                    })
                    .collect(),
            })
            .collect(),
        stat_type: req.stat_type,
    })
}

/// HTTP answers of a window in the last day, in one "unknown"
/// country/province/ISP group (no IP database), with the totals by class
/// and by code.
pub async fn describe_play_error_code_sum_info_list(
    cx: Cx,
    req: DescribePlayErrorCodeSumInfoListRequest,
) -> ApiResult<DescribePlayErrorCodeSumInfoListResponse> {
    let code = ErrorCode::InvalidParameterValue;
    let span = span(&cx, &req.start_time, &req.end_time, DAY, DAY, code)?;
    let (num, size) = page(req.page_num, req.page_size, 20, (1, 1000), code)?;
    let ours = zone(req.mainland_or_oversea.as_deref(), code)?;
    one_of(
        "GroupType",
        req.group_type.as_deref().unwrap_or("CountryProIsp"),
        &["CountryProIsp", "Country"],
        code,
    )?;
    let rows = if ours {
        minutes(&cx, domains(req.play_domains), span.from, span.to).await?
    } else {
        Vec::new()
    };
    let mut classes = [0u64; 4];
    for m in &rows {
        for (a, b) in classes.iter_mut().zip(m.classes) {
            *a += b;
        }
    }
    let unknown = unknown(req.out_language.as_deref()).to_owned();
    let all: u64 = classes.iter().sum();
    let groups = if all == 0 {
        Vec::new()
    } else {
        vec![ProIspPlayCodeDataInfo {
            country_area_name: unknown.clone(),
            province_name: unknown.clone(),
            isp_name: unknown,
            code2xx: classes[0],
            code3xx: classes[1],
            code4xx: classes[2],
            code5xx: classes[3],
        }]
    };
    let total = groups.len() as u64;
    let (groups, pages) = paged(groups, num, size);
    Ok(DescribePlayErrorCodeSumInfoListResponse {
        pro_isp_info_list: groups,
        total_code_all: all,
        total_code4xx: classes[2],
        total_code5xx: classes[3],
        total_code_list: answers(rows.iter())
            .into_iter()
            .filter(|(c, _)| c != "200")
            .map(|(code, num)| PlayCodeTotalInfo { code, num })
            .collect(),
        page_num: num,
        page_size: size,
        total_page: pages,
        total_num: total,
        total_code2xx: classes[0],
        total_code3xx: classes[1],
    })
}

/// Flux and requests by province, ISP or country (`StatType`) of a window
/// of at most a day in the last month: one "unknown" group (no IP
/// database).
pub async fn describe_pro_isp_play_sum_info_list(
    cx: Cx,
    req: DescribeProIspPlaySumInfoListRequest,
) -> ApiResult<DescribeProIspPlaySumInfoListResponse> {
    let code = ErrorCode::InvalidParameterValue;
    one_of(
        "StatType",
        &req.stat_type,
        &["Province", "Isp", "CountryOrArea"],
        code,
    )?;
    let span = span(&cx, &req.start_time, &req.end_time, DAY, 31 * DAY, code)?;
    let (num, size) = page(req.page_num, req.page_size, 20, (1, 1000), code)?;
    let ours = zone(req.mainland_or_oversea.as_deref(), code)?;
    let rows = if ours {
        minutes(&cx, domains(req.play_domains), span.from, span.to).await?
    } else {
        Vec::new()
    };
    let bytes: u64 = rows.iter().map(|m| m.bytes).sum();
    let requests: u64 = rows.iter().map(|m| m.requests).sum();
    let seconds = (slots(span.from, span.to, MINUTE, 0).len().max(1) as i64 * MINUTE) as f64;
    let per_second = mb(bytes) / seconds;
    let groups = if requests == 0 && bytes == 0 {
        Vec::new()
    } else {
        vec![ProIspPlaySumInfo {
            name: unknown(req.out_language.as_deref()).to_owned(),
            total_flux: mb(bytes),
            total_request: requests,
            avg_flux_per_second: per_second,
        }]
    };
    let total = groups.len() as u64;
    let (groups, pages) = paged(groups, num, size);
    Ok(DescribeProIspPlaySumInfoListResponse {
        total_flux: mb(bytes),
        total_request: requests,
        stat_type: req.stat_type,
        page_size: size,
        page_num: num,
        total_num: total,
        total_page: pages,
        data_info_list: groups,
        avg_flux_per_second: per_second,
    })
}

/// The transcoding spans of `account` overlapping `from..=to` (Unix
/// seconds) on `domains` (every push domain when empty).
async fn transcodes(
    cx: &Cx,
    domains: Vec<String>,
    from: i64,
    to: i64,
) -> ApiResult<Vec<livestack_store::usage::TranscodeSpan>> {
    let account = cx.account;
    let rows = cx
        .store
        .run(move |c| {
            livestack_store::usage::transcodes_between(c, account, from * 1000, to * 1000 + 999)
        })
        .await?;
    Ok(rows
        .into_iter()
        .filter(|r| domains.is_empty() || domains.iter().any(|d| d.eq_ignore_ascii_case(&r.domain)))
        .collect())
}

/// Milliseconds of `span` within `from_ms..to_ms` (a span still running
/// ends at `now_ms`).
fn overlap(
    s: &livestack_store::usage::TranscodeSpan,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
) -> i64 {
    let end = s.ended_ms.unwrap_or(now_ms).min(to_ms);
    (end - s.started_ms.max(from_ms)).max(0)
}

/// A Beijing date written `yyyymmdd`: the Unix second its day starts.
fn beijing_day(name: &str, v: &str) -> ApiResult<i64> {
    let v = v.trim();
    let ok = v.len() == 8 && v.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| parse_time(&format!("{}-{}-{} 00:00:00", &v[..4], &v[4..6], &v[6..])))
        .flatten()
        .ok_or_else(|| {
            bad(
                ErrorCode::InvalidParameterValue,
                format!("{name} must be a date written yyyymmdd, such as 20200620, not `{v}`."),
                format!("{name} 须为 yyyymmdd 形式的日期，例如 20200620，当前为 `{v}`。"),
            )
        })
}

/// Transcoding by stream, output and day (Beijing days, within the last
/// month): when it ran, for how many minutes in all (interruptions left
/// out), with which codec, size and bitrate.
pub async fn describe_live_transcode_detail_info(
    cx: Cx,
    req: DescribeLiveTranscodeDetailInfoRequest,
) -> ApiResult<DescribeLiveTranscodeDetailInfoResponse> {
    let code = ErrorCode::InvalidParameterValue;
    let (first, last) = match (
        req.day_time.as_deref(),
        req.start_day_time.as_deref(),
        req.end_day_time.as_deref(),
    ) {
        (Some(d), _, _) if !d.is_empty() => {
            let d = beijing_day("DayTime", d)?;
            (d, d)
        }
        (_, Some(s), Some(e)) if !s.is_empty() && !e.is_empty() => (
            beijing_day("StartDayTime", s)?,
            beijing_day("EndDayTime", e)?,
        ),
        _ => {
            return Err(bad(
                ErrorCode::InvalidParameter,
                "DayTime, or StartDayTime and EndDayTime, is required.".into(),
                "DayTime 与（StartDayTime，EndDayTime）必须传一个。".into(),
            ))
        }
    };
    if last < first || first < cx.now - 32 * DAY {
        return Err(bad(
            code,
            "The days must be in order and within the last month.".into(),
            "仅支持查询近 1 个月内的数据，且起始日期不能晚于结束日期。".into(),
        ));
    }
    let num = req.page_num.unwrap_or(1);
    let size = req.page_size.unwrap_or(20);
    if !(1..=100).contains(&num) || !(10..=1000).contains(&size) {
        return Err(bad(
            code,
            format!("PageNum must be 1 to 100 and PageSize 10 to 1000, not {num} and {size}."),
            format!("PageNum 取值范围为 1~100，PageSize 为 10~1000，当前为 {num} 与 {size}。"),
        ));
    }
    let domain = req
        .push_domain
        .filter(|d| !d.is_empty())
        .map(|d| vec![d.to_ascii_lowercase()]);
    let stream = req.stream_name.filter(|s| !s.is_empty());
    let spans = transcodes(&cx, domain.unwrap_or_default(), first, last + DAY - 1).await?;
    let now_ms = cx.now * 1000;
    // (day, stream, domain, type, codec, resolution, bitrate) → (first,
    // last, ms)
    type Key = (i64, String, String, String, String, String, i64);
    let mut rows: BTreeMap<Key, (i64, i64, i64)> = BTreeMap::new();
    for s in spans
        .iter()
        .filter(|s| stream.as_deref().is_none_or(|n| n == s.stream))
    {
        for day in slots(first, last, DAY, BEIJING) {
            let (from_ms, to_ms) = (day * 1000, (day + DAY) * 1000);
            let ms = overlap(s, from_ms, to_ms, now_ms);
            if ms == 0 {
                continue;
            }
            let key = (
                day,
                s.stream.clone(),
                s.domain.clone(),
                s.kind.clone(),
                s.codec.clone(),
                format!("{}*{}", s.width, s.height),
                s.bitrate_kbps,
            );
            let start = s.started_ms.max(from_ms);
            let end = s.ended_ms.unwrap_or(now_ms).min(to_ms);
            let e = rows.entry(key).or_insert((start, end, 0));
            e.0 = e.0.min(start);
            e.1 = e.1.max(end);
            e.2 += ms;
        }
    }
    let minute = |ms: i64| {
        let t = beijing(ms.div_euclid(1000));
        t[..16].to_owned()
    };
    let all: Vec<TranscodeDetailInfo> = rows
        .into_iter()
        .map(
            |((_, stream, domain, kind, codec, resolution, bitrate), (start, end, ms))| {
                TranscodeDetailInfo {
                    stream_name: stream,
                    start_time: minute(start),
                    end_time: minute(end),
                    duration: u64::try_from(ms.div_euclid(60_000)).unwrap_or(0),
                    module_codec: codec,
                    bitrate: u64::try_from(bitrate).unwrap_or(0),
                    push_domain: domain,
                    resolution,
                    mainland_or_oversea: "Mainland".to_owned(),
                    r#type: kind,
                }
            },
        )
        .collect();
    let total = all.len() as u64;
    let (list, pages) = paged(all, num, size);
    Ok(DescribeLiveTranscodeDetailInfoResponse {
        data_info_list: list,
        page_num: num,
        page_size: size,
        total_num: total,
        total_page: pages,
    })
}

/// Minutes of transcoding by codec and size, per Beijing day, or per hour
/// when push domains are named (as CSS answers), within three months.
pub async fn describe_live_transcode_total_info(
    cx: Cx,
    req: DescribeLiveTranscodeTotalInfoRequest,
) -> ApiResult<DescribeLiveTranscodeTotalInfoResponse> {
    let code = ErrorCode::InvalidParameterValue;
    let span = span(
        &cx,
        &req.start_time,
        &req.end_time,
        93 * DAY,
        93 * DAY,
        code,
    )?;
    let ours = zone(req.mainland_or_oversea.as_deref(), code)?;
    let domains = domains(req.push_domains);
    let (step, offset) = if domains.is_empty() {
        (DAY, BEIJING)
    } else {
        (HOUR, 0)
    };
    let spans = if ours {
        transcodes(&cx, domains, span.from, span.to).await?
    } else {
        Vec::new()
    };
    let now_ms = cx.now * 1000;
    let mut rows: BTreeMap<(i64, String, String), i64> = BTreeMap::new();
    for t in slots(span.from, span.to, step, offset) {
        for s in &spans {
            let ms = overlap(s, t * 1000, (t + step) * 1000, now_ms);
            if ms > 0 {
                *rows
                    .entry((t, s.codec.clone(), format!("{}*{}", s.width, s.height)))
                    .or_default() += ms;
            }
        }
    }
    Ok(DescribeLiveTranscodeTotalInfoResponse {
        data_info_list: rows
            .into_iter()
            .map(|((t, codec, resolution), ms)| TranscodeTotalInfo {
                time: utc_iso(t),
                duration: u64::try_from(ms.div_euclid(60_000)).unwrap_or(0),
                module_codec: codec,
                resolution,
            })
            .collect(),
    })
}

/// Transcoding jobs running per 5 minutes, by output bitrate.
pub async fn describe_transcode_task_num(
    cx: Cx,
    req: DescribeTranscodeTaskNumRequest,
) -> ApiResult<DescribeTranscodeTaskNumResponse> {
    let span = span(
        &cx,
        &req.start_time,
        &req.end_time,
        31 * DAY,
        93 * DAY,
        ErrorCode::InvalidParameterValue,
    )?;
    let spans = transcodes(&cx, domains(req.push_domains), span.from, span.to).await?;
    let now_ms = cx.now * 1000;
    let mut rows: Vec<TranscodeTaskNum> = Vec::new();
    for t in slots(span.from, span.to, 5 * MINUTE, 0) {
        let mut by_rate: BTreeMap<i64, u64> = BTreeMap::new();
        for s in &spans {
            if overlap(s, t * 1000, (t + 5 * MINUTE) * 1000, now_ms) > 0 {
                *by_rate.entry(s.bitrate_kbps).or_default() += 1;
            }
        }
        rows.extend(by_rate.into_iter().map(|(rate, num)| TranscodeTaskNum {
            time: Some(span.show(t)),
            code_rate: Some(u64::try_from(rate).unwrap_or(0)),
            num: Some(num),
        }));
    }
    Ok(DescribeTranscodeTaskNumResponse {
        data_info_list: Some(rows),
    })
}

/// Whether a list of province or ISP names (absent or empty: all) takes
/// in the one group livestack has, "unknown".
fn takes_unknown(names: Option<&[String]>) -> bool {
    names.is_none_or(|n| n.is_empty() || n.iter().any(|x| x == "未知" || x == "Unknown"))
}

/// Per-minute sums (bytes, requests, online) of `rows` over `points`.
fn per_minute(rows: &[Minute], points: &[i64]) -> Vec<(u64, u64, u64)> {
    let mut sums = vec![(0u64, 0u64, 0u64); points.len()];
    for m in rows {
        if let Some(i) = slot_of(points, m.minute) {
            sums[i].0 += m.bytes;
            sums[i].1 += m.requests;
            sums[i].2 += m.online;
        }
    }
    sums
}

/// Playback per minute by province and ISP (a day at most, in the last
/// month): without an IP database, one group, 未知 / 未知, which a filter
/// naming other provinces or ISPs leaves out.
pub async fn describe_group_pro_isp_play_info_list(
    cx: Cx,
    req: DescribeGroupProIspPlayInfoListRequest,
) -> ApiResult<DescribeGroupProIspPlayInfoListResponse> {
    let code = ErrorCode::InvalidParameter;
    let span = span(&cx, &req.start_time, &req.end_time, DAY, 31 * DAY, code)?;
    let ours = zone(req.mainland_or_oversea.as_deref(), code)?
        && takes_unknown(req.province_names.as_deref())
        && takes_unknown(req.isp_names.as_deref());
    if !ours {
        return Ok(DescribeGroupProIspPlayInfoListResponse {
            data_info_list: Vec::new(),
        });
    }
    let rows = minutes(&cx, domains(req.play_domains), span.from, span.to).await?;
    let points = slots(span.from, span.to, MINUTE, 0);
    let sums = per_minute(&rows, &points);
    Ok(DescribeGroupProIspPlayInfoListResponse {
        data_info_list: vec![GroupProIspDataInfo {
            province_name: "未知".to_owned(),
            isp_name: "未知".to_owned(),
            detail_info_list: points
                .iter()
                .zip(sums)
                .map(|(t, (bytes, request, online))| CdnPlayStatData {
                    time: Some(utc_iso(*t)),
                    bandwidth: Some(mbps(bytes, MINUTE)),
                    flux: Some(mb(bytes)),
                    request: Some(request),
                    online: Some(online),
                })
                .collect(),
        }],
    })
}

/// One playback figure (`StatType`) per minute (`Granularity` 1, a day at
/// most) for the provinces and ISPs asked for: all of it when none are
/// named (or "Unknown" is), zeros for named ones (no IP database places a
/// client in a province).
pub async fn describe_province_isp_play_info_list(
    cx: Cx,
    req: DescribeProvinceIspPlayInfoListRequest,
) -> ApiResult<DescribeProvinceIspPlayInfoListResponse> {
    let code = ErrorCode::InvalidParameterValue;
    one_minute(req.granularity)?;
    let value: fn(u64, u64, u64) -> f64 = match req.stat_type.as_str() {
        "Bandwidth" => |b, _, _| mbps(b, MINUTE),
        "FluxPerSecond" => |b, _, _| mb(b) / 60.0,
        "Flux" => |b, _, _| mb(b),
        "Request" => |_, r, _| r as f64,
        "Online" => |_, _, o| o as f64,
        other => {
            return Err(bad(
                code,
                format!("StatType must be Bandwidth, FluxPerSecond, Flux, Request or Online, not `{other}`."),
                format!("StatType 取值须为 Bandwidth、FluxPerSecond、Flux、Request 或 Online，当前为 `{other}`。"),
            ))
        }
    };
    let span = span(&cx, &req.start_time, &req.end_time, DAY, 31 * DAY, code)?;
    // No client is known to be on IPv6 or in a named province or ISP.
    let ours = zone(req.mainland_or_oversea.as_deref(), code)?
        && takes_unknown(req.province_names.as_deref())
        && takes_unknown(req.isp_names.as_deref())
        && req.ip_type.as_deref().is_none_or(str::is_empty);
    let rows = if ours {
        minutes(&cx, domains(req.play_domains), span.from, span.to).await?
    } else {
        Vec::new()
    };
    let points = slots(span.from, span.to, MINUTE, 0);
    let sums = per_minute(&rows, &points);
    Ok(DescribeProvinceIspPlayInfoListResponse {
        data_info_list: points
            .iter()
            .zip(sums)
            .map(|(t, (b, r, o))| PlayStatInfo {
                time: span.show(*t),
                value: value(b, r, o),
            })
            .collect(),
        stat_type: req.stat_type,
    })
}

/// The hourly access log files of play domains of the caller, for at most
/// 7 days (Beijing times): name, signed download URL (valid a day), hour
/// and size. `IsFastLive` 1 lists WebRTC's (快直播) files.
pub async fn describe_log_download_list(
    cx: Cx,
    req: DescribeLogDownloadListRequest,
) -> ApiResult<DescribeLogDownloadListResponse> {
    let code = ErrorCode::InvalidParameterValue;
    let span = span(&cx, &req.start_time, &req.end_time, 7 * DAY, 31 * DAY, code)?;
    let leb = check_enum("IsFastLive", req.is_fast_live, &[0, 1])? == Some(1);
    let wanted = domains(Some(req.play_domains));
    if wanted.is_empty() {
        return Err(bad(
            ErrorCode::InvalidParameter,
            "PlayDomains must name at least one play domain.".into(),
            "PlayDomains 至少须包含一个播放域名。".into(),
        ));
    }
    let account = cx.account;
    let names = wanted.clone();
    let missing = cx
        .store
        .run(move |c| {
            for d in &names {
                let found = livestack_store::domains::find(c, account, d)?;
                if found.is_none_or(|f| f.kind != livestack_core::DomainKind::Play) {
                    return Ok(Some(d.clone()));
                }
            }
            Ok(None)
        })
        .await?;
    if let Some(d) = missing {
        return Err(bad(
            ErrorCode::ResourceNotFoundDomainNotExist,
            format!("`{d}` is not a play domain of this account."),
            format!("`{d}` 不是本账号的播放域名。"),
        ));
    }
    // Hours that start in the window, and the one it starts in.
    let first = span.from - (span.from + BEIJING).rem_euclid(HOUR);
    let files = cx.media.access_logs(wanted, leb, first, span.to).await;
    Ok(DescribeLogDownloadListResponse {
        total_num: files.len() as u64,
        log_info_list: files
            .into_iter()
            .map(|f| LogInfo {
                log_name: f.name,
                log_url: f.url,
                log_time: beijing(f.hour),
                file_size: i64::try_from(f.size).unwrap_or(i64::MAX),
            })
            .collect(),
    })
}

/// Bandwidth of what relay tasks pushed out (CSS's 转推), per 5 minutes
/// for a window of a day or less, per hour beyond (a month at most,
/// within the last three).
pub async fn describe_deliver_bandwidth_list(
    cx: Cx,
    req: DescribeDeliverBandwidthListRequest,
) -> ApiResult<DescribeDeliverBandwidthListResponse> {
    let span = span(
        &cx,
        &req.start_time,
        &req.end_time,
        31 * DAY,
        93 * DAY,
        ErrorCode::InvalidParameterValue,
    )?;
    let step = if span.to - span.from <= DAY {
        5 * MINUTE
    } else {
        HOUR
    };
    let account = cx.account;
    let (from, to) = (span.from.div_euclid(MINUTE) * MINUTE, span.to);
    let rows = cx
        .store
        .run(move |c| stats::delivered(c, account, from, to))
        .await?;
    let starts = slots(span.from, span.to, step, 0);
    let mut bytes = vec![0u64; starts.len()];
    for (minute, b) in rows {
        if let Some(k) = slot_of(&starts, minute) {
            bytes[k] += b;
        }
    }
    Ok(DescribeDeliverBandwidthListResponse {
        data_info_list: Some(
            starts
                .iter()
                .zip(bytes)
                .map(|(t, b)| BandwidthInfo {
                    time: utc_iso(*t),
                    bandwidth: mbps(b, step),
                })
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_95th_percentile_leaves_out_the_top_five_percent() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p95(&v), Some((94, 95.0)));
        v.reverse();
        assert_eq!(p95(&v), Some((5, 95.0)));
        assert_eq!(p95(&[3.0]), Some((0, 3.0)));
        assert_eq!(p95(&[]), None);
        // 12 five-minute samples of an hour: rank 12, the largest.
        let hour: Vec<f64> = (0..12).map(f64::from).collect();
        assert_eq!(p95(&hour), Some((11, 11.0)));
    }

    #[test]
    fn slots_cover_the_window_aligned_to_their_zone() {
        assert_eq!(slots(610, 1210, 300, 0), vec![600, 900, 1200]);
        // 2019-11-07T16:00:00Z is midnight in Beijing.
        let day = 1_573_142_400;
        assert_eq!(
            slots(day + 3600, day + DAY + 10, DAY, BEIJING),
            vec![day, day + DAY]
        );
        assert_eq!(slot_of(&[600, 900, 1200], 899), Some(0));
        assert_eq!(slot_of(&[600, 900, 1200], 599), None);
    }
}
