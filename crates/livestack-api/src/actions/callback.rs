//! Callback templates and rules: `Create/Modify/Delete/DescribeLiveCallbackTemplate`,
//! `DescribeLiveCallbackTemplates`, `Create/DeleteLiveCallbackRule`,
//! `DescribeLiveCallbackRules`, and the record of what was sent,
//! `DescribeCallbackRecordsList`.
//!
//! Owns: the event URLs of a template (one per event, at least one, each
//! an absolute `http`/`https` URL), its `CallbackKey` and the exception
//! levels. Must not: send notifications (the media plane's events do).

use livestack_core::rules::{
    CallbackEvent, CallbackSpec, ExceptionLevel, Kind, Template, TemplateSpec,
};
use livestack_model::{
    CallBackRuleInfo, CallBackTemplateInfo, CallbackEventInfo, CreateLiveCallbackRuleRequest,
    CreateLiveCallbackRuleResponse, CreateLiveCallbackTemplateRequest,
    CreateLiveCallbackTemplateResponse, DeleteLiveCallbackRuleRequest,
    DeleteLiveCallbackRuleResponse, DeleteLiveCallbackTemplateRequest,
    DeleteLiveCallbackTemplateResponse, DescribeCallbackRecordsListRequest,
    DescribeCallbackRecordsListResponse, DescribeLiveCallbackRulesRequest,
    DescribeLiveCallbackRulesResponse, DescribeLiveCallbackTemplateRequest,
    DescribeLiveCallbackTemplateResponse, DescribeLiveCallbackTemplatesRequest,
    DescribeLiveCallbackTemplatesResponse, ModifyLiveCallbackTemplateRequest,
    ModifyLiveCallbackTemplateResponse,
};

use livestack_store::callbacks::{self, RecordFilter};

use super::check::{invalid_input, not_one_of};
use super::processing as shared;
use crate::cx::Cx;
use crate::error::ApiResult;
use crate::time::beijing;

const LEVELS: [(&str, ExceptionLevel); 4] = [
    ("error", ExceptionLevel::Error),
    ("warning", ExceptionLevel::Warning),
    ("info", ExceptionLevel::Info),
    ("alarm", ExceptionLevel::Alarm),
];

/// The URLs, key and levels a Create or Modify request gives; `None`
/// leaves a setting as it is, `Some("")` clears a URL.
struct CallbackFields {
    urls: Vec<(CallbackEvent, &'static str, Option<String>)>,
    key: Option<String>,
    levels: Option<Vec<String>>,
}

macro_rules! callback_fields {
    ($r:expr) => {
        CallbackFields {
            urls: vec![
                (
                    CallbackEvent::StreamBegin,
                    "StreamBeginNotifyUrl",
                    $r.stream_begin_notify_url,
                ),
                (
                    CallbackEvent::StreamEnd,
                    "StreamEndNotifyUrl",
                    $r.stream_end_notify_url,
                ),
                (
                    CallbackEvent::Record,
                    "RecordNotifyUrl",
                    $r.record_notify_url,
                ),
                (
                    CallbackEvent::RecordStatus,
                    "RecordStatusNotifyUrl",
                    $r.record_status_notify_url,
                ),
                (
                    CallbackEvent::Snapshot,
                    "SnapshotNotifyUrl",
                    $r.snapshot_notify_url,
                ),
                (
                    CallbackEvent::PornCensorship,
                    "PornCensorshipNotifyUrl",
                    $r.porn_censorship_notify_url,
                ),
                (
                    CallbackEvent::PushException,
                    "PushExceptionNotifyUrl",
                    $r.push_exception_notify_url,
                ),
                (
                    CallbackEvent::AudioAudit,
                    "AudioAuditNotifyUrl",
                    $r.audio_audit_notify_url,
                ),
                (
                    CallbackEvent::RecordException,
                    "RecordExceptionNotifyUrl",
                    $r.record_exception_notify_url,
                ),
            ],
            key: $r.callback_key,
            levels: $r.record_exception_levels,
        }
    };
}

/// An absolute http(s) URL with a host and no whitespace.
fn check_url(name: &str, url: &str) -> ApiResult<()> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let ok = url.len() <= 1024
        && host.is_some_and(|h| !h.is_empty())
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid_input(
            format!("{name} `{url}` is not an http:// or https:// URL."),
            format!("{name} `{url}` 不是合法的 http:// 或 https:// 地址。"),
        ))
    }
}

/// Applies a request's settings and checks that at least one URL is left.
fn apply(s: &mut CallbackSpec, f: CallbackFields) -> ApiResult<()> {
    for (event, name, url) in f.urls {
        match url.map(|u| u.trim().to_owned()) {
            None => {}
            Some(u) if u.is_empty() => {
                s.urls.remove(&event);
            }
            Some(u) => {
                check_url(name, &u)?;
                s.urls.insert(event, u);
            }
        }
    }
    if let Some(key) = f.key {
        if key.len() > 256 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid_input(
                "CallbackKey must be at most 256 printable ASCII characters without spaces.".into(),
                "CallbackKey 须为不超过 256 个可打印 ASCII 字符，且不含空格。".into(),
            ));
        }
        s.key = key;
    }
    if let Some(levels) = f.levels {
        s.exception_levels = levels
            .iter()
            .map(|l| {
                LEVELS
                    .iter()
                    .find(|(w, _)| w.eq_ignore_ascii_case(l.trim()))
                    .map(|(_, v)| *v)
                    .ok_or_else(|| {
                        not_one_of(
                            "RecordExceptionLevels",
                            l,
                            &["error", "warning", "info", "alarm"],
                        )
                    })
            })
            .collect::<ApiResult<_>>()?;
    }
    if s.urls.keys().all(|e| *e == CallbackEvent::StreamMix) {
        return Err(invalid_input(
            "A callback template needs at least one notification URL.".into(),
            "回调模板至少需要填写一个回调 URL。".into(),
        ));
    }
    Ok(())
}

/// Creates a callback template.
pub async fn create_live_callback_template(
    cx: Cx,
    req: CreateLiveCallbackTemplateRequest,
) -> ApiResult<CreateLiveCallbackTemplateResponse> {
    shared::check_text("TemplateName", &req.template_name, 255, true)?;
    let description = req.description.clone().unwrap_or_default();
    shared::check_text("Description", &description, 1024, false)?;
    let mut spec = CallbackSpec::default();
    // Deprecated, but still echoed by Describe: kept as given.
    if let Some(url) = req.stream_mix_notify_url.clone().filter(|u| !u.is_empty()) {
        check_url("StreamMixNotifyUrl", &url)?;
        spec.urls.insert(CallbackEvent::StreamMix, url);
    }
    let name = req.template_name.clone();
    apply(&mut spec, callback_fields!(req))?;
    let t = shared::create_template(&cx, name, description, TemplateSpec::Callback(spec)).await?;
    Ok(CreateLiveCallbackTemplateResponse {
        template_id: t.id.0,
    })
}

/// Changes a callback template; absent settings keep their values and an
/// empty URL removes that event's URL.
pub async fn modify_live_callback_template(
    cx: Cx,
    mut req: ModifyLiveCallbackTemplateRequest,
) -> ApiResult<ModifyLiveCallbackTemplateResponse> {
    if let Some(name) = &req.template_name {
        shared::check_text("TemplateName", name, 255, true)?;
    }
    if let Some(d) = &req.description {
        shared::check_text("Description", d, 1024, false)?;
    }
    let (name, description) = (req.template_name.take(), req.description.take());
    shared::modify_template(&cx, Kind::Callback, req.template_id, move |t| {
        if let TemplateSpec::Callback(spec) = &mut t.spec {
            apply(spec, callback_fields!(req))?;
        }
        shared::rename(t, name, description);
        Ok(())
    })
    .await?;
    Ok(ModifyLiveCallbackTemplateResponse {})
}

/// Deletes a callback template no rule uses.
pub async fn delete_live_callback_template(
    cx: Cx,
    req: DeleteLiveCallbackTemplateRequest,
) -> ApiResult<DeleteLiveCallbackTemplateResponse> {
    shared::delete_template(&cx, Kind::Callback, req.template_id).await?;
    Ok(DeleteLiveCallbackTemplateResponse {})
}

/// One callback template, with its key.
pub async fn describe_live_callback_template(
    cx: Cx,
    req: DescribeLiveCallbackTemplateRequest,
) -> ApiResult<DescribeLiveCallbackTemplateResponse> {
    let t = shared::get_template(&cx, Kind::Callback, req.template_id).await?;
    Ok(DescribeLiveCallbackTemplateResponse {
        template: template_info(t),
    })
}

/// The caller's callback templates.
pub async fn describe_live_callback_templates(
    cx: Cx,
    _req: DescribeLiveCallbackTemplatesRequest,
) -> ApiResult<DescribeLiveCallbackTemplatesResponse> {
    let templates = shared::list_templates(&cx, Kind::Callback).await?;
    Ok(DescribeLiveCallbackTemplatesResponse {
        templates: templates.into_iter().map(template_info).collect(),
    })
}

/// Binds a callback template to a push domain (AppName "" for every app)
/// or one of its apps.
pub async fn create_live_callback_rule(
    cx: Cx,
    req: CreateLiveCallbackRuleRequest,
) -> ApiResult<CreateLiveCallbackRuleResponse> {
    let at = shared::at(req.domain_name, req.app_name, None::<String>);
    shared::create_rule(&cx, Kind::Callback, at, req.template_id).await?;
    Ok(CreateLiveCallbackRuleResponse {})
}

/// Deletes the callback rule of a domain and app.
pub async fn delete_live_callback_rule(
    cx: Cx,
    req: DeleteLiveCallbackRuleRequest,
) -> ApiResult<DeleteLiveCallbackRuleResponse> {
    let at = shared::at(req.domain_name, req.app_name, None::<String>);
    shared::delete_rule(&cx, Kind::Callback, at, None).await?;
    Ok(DeleteLiveCallbackRuleResponse {})
}

/// The caller's callback rules.
pub async fn describe_live_callback_rules(
    cx: Cx,
    _req: DescribeLiveCallbackRulesRequest,
) -> ApiResult<DescribeLiveCallbackRulesResponse> {
    let rules = shared::list_rules(&cx, Kind::Callback).await?;
    Ok(DescribeLiveCallbackRulesResponse {
        rules: Some(
            rules
                .into_iter()
                .map(|r| {
                    let info = shared::rule_info(r, beijing);
                    CallBackRuleInfo {
                        create_time: info.create_time,
                        update_time: info.update_time,
                        template_id: info.template_id,
                        domain_name: info.domain_name,
                        app_name: info.app_name,
                    }
                })
                .collect(),
        ),
    })
}

/// A stored template on the wire; events without a URL answer "".
fn template_info(t: Template) -> CallBackTemplateInfo {
    let TemplateSpec::Callback(mut s) = t.spec else {
        return CallBackTemplateInfo::default();
    };
    let mut url = |e| s.urls.remove(&e).unwrap_or_default();
    CallBackTemplateInfo {
        template_id: t.id.0,
        template_name: t.name,
        description: t.description,
        stream_begin_notify_url: url(CallbackEvent::StreamBegin),
        stream_mix_notify_url: url(CallbackEvent::StreamMix),
        stream_end_notify_url: url(CallbackEvent::StreamEnd),
        record_notify_url: url(CallbackEvent::Record),
        snapshot_notify_url: url(CallbackEvent::Snapshot),
        porn_censorship_notify_url: url(CallbackEvent::PornCensorship),
        push_exception_notify_url: Some(url(CallbackEvent::PushException)),
        audio_audit_notify_url: Some(url(CallbackEvent::AudioAudit)),
        record_exception_notify_url: Some(url(CallbackEvent::RecordException)),
        callback_key: s.key,
        record_exception_levels: Some(
            s.exception_levels
                .iter()
                .filter_map(|l| {
                    LEVELS
                        .iter()
                        .find(|(_, v)| v == l)
                        .map(|(w, _)| (*w).to_owned())
                })
                .collect(),
        ),
    }
}

/// The callbacks sent for one stream in a window of at most a day within
/// the last 14 days, newest first, with what each receiver answered
/// (`ResultCode` 0 for 200, else its HTTP status; 502/504 when it could
/// not be reached or did not answer in time). Times come back in the
/// format `StartTime` was given in.
pub async fn describe_callback_records_list(
    cx: Cx,
    req: DescribeCallbackRecordsListRequest,
) -> ApiResult<DescribeCallbackRecordsListResponse> {
    use super::check::{check_enum, check_range, to_i64};
    use super::stream::{pages, window, DAY};
    let page_size = check_range("PageSize", to_i64(req.page_size), 1, 100)? as u64;
    let page_num = check_range("PageNum", to_i64(req.page_num), 1, i64::MAX)? as u64;
    let event_type = check_enum("EventType", req.event_type.map(to_i64), &[0, 1, 100, 200])?;
    let (from, to) = window(&cx, &req.start_time, &req.end_time, DAY, 14 * DAY)?;
    if req.stream_name.is_empty() {
        return Err(crate::error::ApiError::new(
            crate::error::ErrorCode::MissingParameter,
            "StreamName is required: records are listed per stream.",
            "缺少 StreamName 参数：按流查询回调记录。",
        ));
    }
    let filter = RecordFilter {
        account_id: cx.account,
        stream: req.stream_name,
        from_ms: from.saturating_mul(1000),
        to_ms: to.saturating_mul(1000).saturating_add(999),
        event_type,
        succeeded: req.result_code.map(|c| c == 0),
    };
    let offset = (page_num - 1).saturating_mul(page_size);
    let (total, rows) = cx
        .store
        .run(move |c| callbacks::page(c, &filter, offset, page_size))
        .await?;
    // The request's own format: ISO-8601 UTC, or Beijing time.
    let iso = req.start_time.contains('T');
    let show = |ms: i64| {
        let secs = ms.div_euclid(1000);
        if iso {
            crate::time::utc_iso(secs)
        } else {
            beijing(secs)
        }
    };
    Ok(DescribeCallbackRecordsListResponse {
        data_info_list: rows
            .into_iter()
            .map(|r| CallbackEventInfo {
                event_time: show(r.sent_ms),
                event_type: u64::try_from(r.event_type).unwrap_or(0),
                request: r.request,
                response: r.response,
                response_time: show(r.answered_ms),
                result_code: u64::try_from(r.result_code).unwrap_or(0),
                stream_id: r.stream,
            })
            .collect(),
        page_num,
        page_size,
        total_num: total,
        total_page: pages(total, page_size),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(url: Option<&str>) -> CallbackFields {
        CallbackFields {
            urls: vec![(
                CallbackEvent::StreamBegin,
                "StreamBeginNotifyUrl",
                url.map(str::to_owned),
            )],
            key: None,
            levels: None,
        }
    }

    #[test]
    fn urls_are_checked_and_one_is_required() {
        let code = |spec: &mut CallbackSpec, f| apply(spec, f).err().map(|e| e.code.as_str());
        let mut s = CallbackSpec::default();
        assert_eq!(
            code(&mut s, fields(None)),
            Some("InternalError.InvalidInput"),
            "no URL at all"
        );
        assert_eq!(
            code(&mut s, fields(Some("ftp://x/y"))),
            Some("InternalError.InvalidInput")
        );
        assert_eq!(
            code(&mut s, fields(Some("http:///path"))),
            Some("InternalError.InvalidInput")
        );
        assert_eq!(
            code(&mut s, fields(Some("https://hooks.example.com/live?a=1"))),
            None
        );
        assert_eq!(
            code(&mut s, fields(Some(""))),
            Some("InternalError.InvalidInput"),
            "clearing the last URL"
        );
        let levels = CallbackFields {
            levels: Some(vec!["error".into(), "fatal".into()]),
            ..fields(Some("http://a/b"))
        };
        assert_eq!(code(&mut s, levels), Some("InvalidParameterValue"));
    }
}
