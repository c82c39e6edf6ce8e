//! Time-shift templates and rules, and what time-shift has kept:
//! `Create/Modify/Delete/DescribeLiveTimeShiftTemplate(s)`,
//! `Create/Delete/DescribeLiveTimeShiftRule(s)`,
//! `DescribeTimeShiftStreamList`, `DescribeTimeShiftRecordDetail`.
//!
//! Owns: the documented settings of time-shift templates (`Duration` one
//! of 1, 3, 7, 15 or 30 days; `ItemDuration` 3–10 s, default 5; `Area`
//! Mainland or Overseas), the `*` that time-shift rules use for "every app"
//! and "every stream" (the other families use ""), and the paging and
//! time-range checks of the two queries. Must not: keep segments (the
//! media plane does, and answers what it keeps through `MediaControl`).

use std::collections::BTreeMap;

use livestack_core::rules::{Kind, Template, TemplateSpec, TimeShiftSpec};
use livestack_model::{
    CreateLiveTimeShiftRuleRequest, CreateLiveTimeShiftRuleResponse,
    CreateLiveTimeShiftTemplateRequest, CreateLiveTimeShiftTemplateResponse,
    DeleteLiveTimeShiftRuleRequest, DeleteLiveTimeShiftRuleResponse,
    DeleteLiveTimeShiftTemplateRequest, DeleteLiveTimeShiftTemplateResponse,
    DescribeLiveTimeShiftRulesRequest, DescribeLiveTimeShiftRulesResponse,
    DescribeLiveTimeShiftTemplatesRequest, DescribeLiveTimeShiftTemplatesResponse,
    DescribeTimeShiftRecordDetailRequest, DescribeTimeShiftRecordDetailResponse,
    DescribeTimeShiftStreamListRequest, DescribeTimeShiftStreamListResponse,
    ModifyLiveTimeShiftTemplateRequest, ModifyLiveTimeShiftTemplateResponse, TimeShiftRecord,
    TimeShiftStreamInfo, TimeShiftTemplate,
};

use super::check::{check_enum, not_one_of, ranged, to_i64};
use super::processing as shared;
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::time::beijing;

/// The documented `Duration` values: 1, 3, 7, 15 and 30 days.
const DURATIONS: [i64; 5] = [86_400, 259_200, 604_800, 1_296_000, 2_592_000];
/// `ItemDuration` when none is given.
const DEFAULT_ITEM_DURATION: u32 = 5;
/// The documented areas.
const AREAS: [&str; 2] = ["Mainland", "Overseas"];
/// The longest span the stream list takes (documented: one day).
const MAX_QUERY_SPAN: i64 = 86_400;
/// The largest page of the stream list.
const MAX_PAGE_SIZE: i64 = 100;

/// The settings a Create or Modify request gives.
struct Fields {
    duration: Option<i64>,
    item_duration: Option<i64>,
    area: Option<String>,
    remove_watermark: Option<bool>,
    transcode_templates: Option<Vec<i64>>,
}

fn apply(s: &mut TimeShiftSpec, f: Fields) -> ApiResult<()> {
    if let Some(v) = check_enum("Duration", f.duration, &DURATIONS)? {
        s.duration = u32::try_from(v).unwrap_or(u32::MAX);
    }
    if let Some(v) = f.item_duration {
        s.item_duration = ranged("ItemDuration", v, 3, 10)?;
    }
    if let Some(area) = f.area {
        if !AREAS.contains(&area.as_str()) {
            return Err(not_one_of("Area", &area, &AREAS));
        }
        s.area = area;
    }
    if let Some(v) = f.remove_watermark {
        s.remove_watermark = v;
    }
    if let Some(ids) = f.transcode_templates {
        s.transcode_templates = ids;
    }
    Ok(())
}

/// Creates a time-shift template.
pub async fn create_live_time_shift_template(
    cx: Cx,
    req: CreateLiveTimeShiftTemplateRequest,
) -> ApiResult<CreateLiveTimeShiftTemplateResponse> {
    shared::check_text("TemplateName", &req.template_name, 255, true)?;
    let description = req.description.unwrap_or_default();
    shared::check_text("Description", &description, 1024, false)?;
    let mut spec = TimeShiftSpec {
        item_duration: DEFAULT_ITEM_DURATION,
        area: AREAS[0].to_owned(),
        ..TimeShiftSpec::default()
    };
    apply(
        &mut spec,
        Fields {
            duration: Some(to_i64(req.duration)),
            item_duration: req.item_duration.map(to_i64),
            area: req.area,
            remove_watermark: req.remove_watermark,
            transcode_templates: req.transcode_template_ids,
        },
    )?;
    let t = shared::create_template(
        &cx,
        req.template_name,
        description,
        TemplateSpec::TimeShift(spec),
    )
    .await?;
    Ok(CreateLiveTimeShiftTemplateResponse {
        template_id: to_i64(t.id.0),
    })
}

/// Changes a time-shift template; absent settings keep their values. A
/// stream being kept goes on with the settings it started with until its
/// push ends (as CSS applies rule changes to new pushes).
pub async fn modify_live_time_shift_template(
    cx: Cx,
    req: ModifyLiveTimeShiftTemplateRequest,
) -> ApiResult<ModifyLiveTimeShiftTemplateResponse> {
    if let Some(name) = &req.template_name {
        shared::check_text("TemplateName", name, 255, true)?;
    }
    if let Some(d) = &req.description {
        shared::check_text("Description", d, 1024, false)?;
    }
    let fields = Fields {
        duration: req.duration.map(to_i64),
        item_duration: req.item_duration.map(to_i64),
        area: req.area,
        remove_watermark: req.remove_watermark,
        transcode_templates: req.transcode_template_ids,
    };
    let (name, description) = (req.template_name, req.description);
    shared::modify_template(&cx, Kind::TimeShift, to_i64(req.template_id), move |t| {
        if let TemplateSpec::TimeShift(spec) = &mut t.spec {
            apply(spec, fields)?;
        }
        shared::rename(t, name, description);
        Ok(())
    })
    .await?;
    Ok(ModifyLiveTimeShiftTemplateResponse {})
}

/// Deletes a time-shift template no rule uses.
pub async fn delete_live_time_shift_template(
    cx: Cx,
    req: DeleteLiveTimeShiftTemplateRequest,
) -> ApiResult<DeleteLiveTimeShiftTemplateResponse> {
    shared::delete_template(&cx, Kind::TimeShift, req.template_id).await?;
    Ok(DeleteLiveTimeShiftTemplateResponse {})
}

/// The caller's time-shift templates.
pub async fn describe_live_time_shift_templates(
    cx: Cx,
    _req: DescribeLiveTimeShiftTemplatesRequest,
) -> ApiResult<DescribeLiveTimeShiftTemplatesResponse> {
    let templates = shared::list_templates(&cx, Kind::TimeShift).await?;
    Ok(DescribeLiveTimeShiftTemplatesResponse {
        templates: templates.into_iter().map(template_info).collect(),
    })
}

/// `*` (every app, every stream) as the other families store it: "".
fn every(name: String) -> String {
    if name == "*" {
        String::new()
    } else {
        name
    }
}

/// "" shown the way time-shift rules say it: `*`.
fn shown_every(name: String) -> String {
    if name.is_empty() {
        "*".to_owned()
    } else {
        name
    }
}

/// Binds a time-shift template to a push domain, app (`*`: every app)
/// and stream (`*`: every stream); one per place.
pub async fn create_live_time_shift_rule(
    cx: Cx,
    req: CreateLiveTimeShiftRuleRequest,
) -> ApiResult<CreateLiveTimeShiftRuleResponse> {
    let at = shared::at(req.domain_name, every(req.app_name), every(req.stream_name));
    shared::create_rule(&cx, Kind::TimeShift, at, req.template_id).await?;
    Ok(CreateLiveTimeShiftRuleResponse {})
}

/// Deletes the time-shift rule at a domain, app and stream (matched
/// exactly, `*` as given when it was made).
pub async fn delete_live_time_shift_rule(
    cx: Cx,
    req: DeleteLiveTimeShiftRuleRequest,
) -> ApiResult<DeleteLiveTimeShiftRuleResponse> {
    let at = shared::at(req.domain_name, every(req.app_name), every(req.stream_name));
    shared::delete_rule(&cx, Kind::TimeShift, at, None).await?;
    Ok(DeleteLiveTimeShiftRuleResponse {})
}

/// The caller's time-shift rules.
pub async fn describe_live_time_shift_rules(
    cx: Cx,
    _req: DescribeLiveTimeShiftRulesRequest,
) -> ApiResult<DescribeLiveTimeShiftRulesResponse> {
    let rules = shared::list_rules(&cx, Kind::TimeShift).await?;
    Ok(DescribeLiveTimeShiftRulesResponse {
        rules: rules
            .into_iter()
            .map(|r| {
                let mut info = shared::rule_info(r, beijing);
                info.app_name = shown_every(info.app_name);
                info.stream_name = shown_every(info.stream_name);
                info
            })
            .collect(),
    })
}

fn invalid(en: String, zh: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, en, zh)
}

/// `StartTime` ≤ `EndTime`, and at most `max_span` seconds apart when given.
fn check_range(start: i64, end: i64, max_span: Option<i64>) -> ApiResult<()> {
    if end < start {
        return Err(invalid(
            format!("EndTime ({end}) is before StartTime ({start})."),
            format!("EndTime（{end}）早于 StartTime（{start}）。"),
        ));
    }
    if let Some(max) = max_span.filter(|max| end - start > *max) {
        return Err(invalid(
            format!("StartTime and EndTime may be at most {max} seconds apart."),
            format!("StartTime 与 EndTime 的间隔不能超过 {max} 秒。"),
        ));
    }
    Ok(())
}

/// The streams with time-shift segments kept between `StartTime` and
/// `EndTime` (at most a day apart), one entry per stream and kind
/// (pushed or watermarked), paged.
pub async fn describe_time_shift_stream_list(
    cx: Cx,
    req: DescribeTimeShiftStreamListRequest,
) -> ApiResult<DescribeTimeShiftStreamListResponse> {
    check_range(req.start_time, req.end_time, Some(MAX_QUERY_SPAN))?;
    let size = match req.page_size.unwrap_or(0) {
        n if n < 0 => {
            return Err(invalid(
                format!("PageSize must not be negative, not {n}."),
                format!("PageSize 不能为负数（当前为 {n}）。"),
            ))
        }
        0 => MAX_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    let page = req.page_num.unwrap_or(1);
    if page < 1 {
        return Err(invalid(
            format!("PageNum must be at least 1, not {page}."),
            format!("PageNum 须不小于 1（当前为 {page}）。"),
        ));
    }
    let domain = req.domain.map(|d| d.trim().to_ascii_lowercase());
    // One entry per stream (domain, app, stream) and kind.
    let mut streams: BTreeMap<(String, String, String, bool), TimeShiftStreamInfo> =
        BTreeMap::new();
    for s in cx
        .media
        .timeshift_sessions(cx.account, req.start_time, req.end_time)
    {
        if domain.as_deref().is_some_and(|d| d != s.domain)
            || req
                .stream_name
                .as_deref()
                .is_some_and(|n| n != s.key.stream)
        {
            continue;
        }
        let id = (
            s.domain.clone(),
            s.key.app.clone(),
            s.key.stream.clone(),
            s.watermarked,
        );
        let info = streams.entry(id).or_insert_with(|| TimeShiftStreamInfo {
            domain_group: None,
            domain: s.domain.clone(),
            app_name: s.key.app.clone(),
            stream_name: s.key.stream.clone(),
            start_time: s.start,
            end_time: s.end,
            trans_code_id: Some(0),
            stream_type: i64::from(s.watermarked),
            duration: Some(u64::from(s.keep_secs)),
            time_shift_sub_streams: None,
        });
        info.start_time = info.start_time.min(s.start);
        info.end_time = info.end_time.max(s.end);
        info.duration = Some(u64::from(s.keep_secs));
    }
    let total = streams.len();
    let skip = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let take = usize::try_from(size).unwrap_or(0);
    Ok(DescribeTimeShiftStreamListResponse {
        total_size: to_i64(total),
        stream_list: streams.into_values().skip(skip).take(take).collect(),
    })
}

/// The recording sessions (one per push) time-shift kept of one stream
/// between `StartTime` and `EndTime`.
pub async fn describe_time_shift_record_detail(
    cx: Cx,
    req: DescribeTimeShiftRecordDetailRequest,
) -> ApiResult<DescribeTimeShiftRecordDetailResponse> {
    check_range(req.start_time, req.end_time, None)?;
    // Only the pushed (or watermarked) stream is kept, never a
    // transcoded output.
    if req.trans_code_id.is_some_and(|id| id != 0) {
        return Ok(DescribeTimeShiftRecordDetailResponse {
            record_list: Vec::new(),
        });
    }
    let domain = req.domain.trim().to_ascii_lowercase();
    let record_list = cx
        .media
        .timeshift_sessions(cx.account, req.start_time, req.end_time)
        .into_iter()
        .filter(|s| {
            s.domain == domain && s.key.app == req.app_name && s.key.stream == req.stream_name
        })
        .map(|s| TimeShiftRecord {
            sid: s.sid,
            start_time: s.start,
            end_time: s.end,
        })
        .collect();
    Ok(DescribeTimeShiftRecordDetailResponse { record_list })
}

/// A stored template on the wire.
fn template_info(t: Template) -> TimeShiftTemplate {
    let TemplateSpec::TimeShift(s) = t.spec else {
        return TimeShiftTemplate::default();
    };
    TimeShiftTemplate {
        template_name: t.name,
        duration: u64::from(s.duration),
        item_duration: u64::from(s.item_duration),
        template_id: u64::try_from(t.id.0).unwrap_or(0),
        description: t.description,
        area: s.area,
        remove_watermark: s.remove_watermark,
        transcode_template_ids: s
            .transcode_templates
            .into_iter()
            .filter_map(|id| u64::try_from(id).ok())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_means_every_app_or_stream_and_is_shown_back_as_a_star() {
        assert_eq!(every("*".into()), "");
        assert_eq!(every("live".into()), "live");
        assert_eq!(shown_every(String::new()), "*");
        assert_eq!(shown_every("cam".into()), "cam");
    }

    #[test]
    fn only_the_documented_durations_and_segment_lengths_are_taken() {
        let mut s = TimeShiftSpec::default();
        let fields = |duration, item| Fields {
            duration: Some(duration),
            item_duration: Some(item),
            area: None,
            remove_watermark: None,
            transcode_templates: None,
        };
        assert!(apply(&mut s, fields(604_800, 3)).is_ok());
        assert_eq!((s.duration, s.item_duration), (604_800, 3));
        for (d, i) in [(3600, 5), (86_400, 2), (86_400, 11)] {
            let e = apply(&mut s, fields(d, i)).expect_err("refused");
            assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        }
    }
}
