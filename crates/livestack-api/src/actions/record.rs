//! Recording templates and rules: `Create/Modify/Delete/DescribeLiveRecordTemplate`,
//! `DescribeLiveRecordTemplates`, `Create/DeleteLiveRecordRule`,
//! `DescribeLiveRecordRules`.
//!
//! Owns: the documented ranges of recording settings (file interval
//! 60–43200 s, 60–7200 s for audio formats; storage 0–1500 days; HLS
//! continuation 0–1800 s) and their defaults (1800 s files, standard
//! storage, every format off). Must not: record (the media plane does).

use livestack_core::rules::{
    Kind, RecordFormat, RecordOutput, RecordSpec, StorageClass, Template, TemplateSpec,
};
use livestack_model::{
    CreateLiveRecordRuleRequest, CreateLiveRecordRuleResponse, CreateLiveRecordTemplateRequest,
    CreateLiveRecordTemplateResponse, DeleteLiveRecordRuleRequest, DeleteLiveRecordRuleResponse,
    DeleteLiveRecordTemplateRequest, DeleteLiveRecordTemplateResponse,
    DescribeLiveRecordRulesRequest, DescribeLiveRecordRulesResponse,
    DescribeLiveRecordTemplateRequest, DescribeLiveRecordTemplateResponse,
    DescribeLiveRecordTemplatesRequest, DescribeLiveRecordTemplatesResponse, FlvSpecialParam,
    HlsSpecialParam, ModifyLiveRecordTemplateRequest, ModifyLiveRecordTemplateResponse,
    RecordParam, RecordTemplateInfo,
};

use super::check::{check_bucket, flag, invalid_input, not_one_of, ranged};
use super::processing as shared;
use crate::cx::Cx;
use crate::error::ApiResult;
use crate::time::beijing;

/// Seconds per recorded file when none is given.
const DEFAULT_INTERVAL: u32 = 1800;
/// The longest storage time: 1500 days.
const MAX_STORAGE_SECS: i64 = 1500 * 86_400;

/// A format's parameter name, for messages.
fn param_name(format: RecordFormat) -> &'static str {
    match format {
        RecordFormat::Flv => "FlvParam",
        RecordFormat::Hls => "HlsParam",
        RecordFormat::Mp4 => "Mp4Param",
        RecordFormat::Aac => "AacParam",
        RecordFormat::Mp3 => "Mp3Param",
    }
}

/// A format that is not recorded: the documented defaults.
fn default_output() -> RecordOutput {
    RecordOutput {
        interval: DEFAULT_INTERVAL,
        ..RecordOutput::default()
    }
}

/// One format's settings from its `RecordParam` (which replaces the
/// format's settings as a whole). `to_cos`: files go to object storage, so
/// an enabled format needs a bucket, a region and a path.
fn parse_output(format: RecordFormat, p: RecordParam, to_cos: bool) -> ApiResult<RecordOutput> {
    let name = param_name(format);
    let field = |f: &str| format!("{name}.{f}");
    let max_interval = match format {
        RecordFormat::Aac | RecordFormat::Mp3 => 7200,
        _ => 43_200,
    };
    let interval = match p.record_interval {
        0 => DEFAULT_INTERVAL,
        v => ranged(&field("RecordInterval"), v, 60, max_interval)?,
    };
    let storage_time =
        super::check::check_range(&field("StorageTime"), p.storage_time, 0, MAX_STORAGE_SECS)?;
    let storage_class = match p.storage_mode.as_deref().map(str::trim) {
        None | Some("") | Some("normal") => StorageClass::Standard,
        Some("cold") => StorageClass::Cold,
        Some(other) => {
            return Err(not_one_of(
                &field("StorageMode"),
                other,
                &["normal", "cold"],
            ))
        }
    };
    let out = RecordOutput {
        enabled: flag(&field("Enable"), Some(p.enable))? == Some(true),
        interval,
        storage_time: u64::try_from(storage_time).unwrap_or(0),
        vod_sub_app_id: p.vod_sub_app_id,
        vod_file_name: p.vod_file_name,
        procedure: p.procedure.unwrap_or_default(),
        storage_class,
        class_id: p.class_id,
        cos_bucket: p.cos_bucket_name.unwrap_or_default(),
        cos_region: p.cos_bucket_region.unwrap_or_default(),
        cos_path: p.cos_bucket_path.unwrap_or_default(),
    };
    if !out.cos_path.is_empty() && !out.cos_path.starts_with('/') {
        return Err(invalid_input(
            format!("{} must start with `/`.", field("CosBucketPath")),
            format!("{} 必须以斜杠（/）开头。", field("CosBucketPath")),
        ));
    }
    if !out.cos_bucket.is_empty() || !out.cos_region.is_empty() {
        check_bucket(
            &field("CosBucketName"),
            &out.cos_bucket,
            &field("CosBucketRegion"),
            &out.cos_region,
        )?;
    }
    if to_cos
        && out.enabled
        && [&out.cos_bucket, &out.cos_region, &out.cos_path]
            .iter()
            .any(|s| s.is_empty())
    {
        return Err(invalid_input(
            format!(
                "With CosStore 1, {name} needs CosBucketName, CosBucketRegion and CosBucketPath."
            ),
            format!(
                "存储至 cos 时，{name} 须填写 CosBucketName、CosBucketRegion 与 CosBucketPath。"
            ),
        ));
    }
    Ok(out)
}

/// The settings a Create or Modify request may change.
struct RecordFields {
    params: [(RecordFormat, Option<RecordParam>); 5],
    hls_special: Option<HlsSpecialParam>,
    remove_watermark: Option<bool>,
    flv_special: Option<FlvSpecialParam>,
}

macro_rules! record_fields {
    ($r:expr) => {
        RecordFields {
            params: [
                (RecordFormat::Flv, $r.flv_param),
                (RecordFormat::Hls, $r.hls_param),
                (RecordFormat::Mp4, $r.mp4_param),
                (RecordFormat::Aac, $r.aac_param),
                (RecordFormat::Mp3, $r.mp3_param),
            ],
            hls_special: $r.hls_special_param,
            remove_watermark: $r.remove_watermark,
            flv_special: $r.flv_special_param,
        }
    };
}

/// Applies a request's settings; absent ones are left as they are.
fn apply(spec: &mut RecordSpec, f: RecordFields) -> ApiResult<()> {
    for (format, param) in f.params {
        if let Some(p) = param {
            spec.outputs
                .insert(format, parse_output(format, p, spec.to_cos)?);
        }
    }
    if let Some(secs) = f.hls_special.and_then(|h| h.flow_continue_duration) {
        spec.hls_resume_timeout = ranged(
            "HlsSpecialParam.FlowContinueDuration",
            i64::try_from(secs).unwrap_or(i64::MAX),
            0,
            1800,
        )?;
    }
    if let Some(v) = f.remove_watermark {
        spec.remove_watermark = v;
    }
    if let Some(v) = f.flv_special.and_then(|s| s.upload_in_recording) {
        spec.upload_while_recording = v;
    }
    Ok(())
}

/// Creates a recording template.
pub async fn create_live_record_template(
    cx: Cx,
    req: CreateLiveRecordTemplateRequest,
) -> ApiResult<CreateLiveRecordTemplateResponse> {
    shared::check_text("TemplateName", &req.template_name, 255, true)?;
    let description = req.description.clone().unwrap_or_default();
    shared::check_description(&description)?;
    let mut spec = RecordSpec {
        outputs: RecordFormat::ALL
            .into_iter()
            .map(|f| (f, default_output()))
            .collect(),
        slow_live: flag("IsDelayLive", req.is_delay_live)?.unwrap_or(false),
        to_cos: flag("CosStore", req.cos_store)?.unwrap_or(false),
        ..RecordSpec::default()
    };
    let name = req.template_name.clone();
    apply(&mut spec, record_fields!(req))?;
    let t = shared::create_template(&cx, name, description, TemplateSpec::Record(spec)).await?;
    Ok(CreateLiveRecordTemplateResponse {
        template_id: t.id.0,
    })
}

/// Changes a recording template; absent settings keep their values, a
/// given format parameter replaces that format's settings.
pub async fn modify_live_record_template(
    cx: Cx,
    req: ModifyLiveRecordTemplateRequest,
) -> ApiResult<ModifyLiveRecordTemplateResponse> {
    if let Some(name) = &req.template_name {
        shared::check_text("TemplateName", name, 255, true)?;
    }
    if let Some(d) = &req.description {
        shared::check_description(d)?;
    }
    let (name, description) = (req.template_name.clone(), req.description.clone());
    shared::modify_template(&cx, Kind::Record, req.template_id, move |t| {
        if let TemplateSpec::Record(spec) = &mut t.spec {
            apply(spec, record_fields!(req))?;
        }
        shared::rename(t, name, description);
        Ok(())
    })
    .await?;
    Ok(ModifyLiveRecordTemplateResponse {})
}

/// Deletes a recording template no rule uses.
pub async fn delete_live_record_template(
    cx: Cx,
    req: DeleteLiveRecordTemplateRequest,
) -> ApiResult<DeleteLiveRecordTemplateResponse> {
    shared::delete_template(&cx, Kind::Record, req.template_id).await?;
    Ok(DeleteLiveRecordTemplateResponse {})
}

/// One recording template.
pub async fn describe_live_record_template(
    cx: Cx,
    req: DescribeLiveRecordTemplateRequest,
) -> ApiResult<DescribeLiveRecordTemplateResponse> {
    let t = shared::get_template(&cx, Kind::Record, req.template_id).await?;
    Ok(DescribeLiveRecordTemplateResponse {
        template: template_info(t),
    })
}

/// The caller's recording templates for standard (`IsDelayLive` 0, the
/// default) or slow (1) live streams.
pub async fn describe_live_record_templates(
    cx: Cx,
    req: DescribeLiveRecordTemplatesRequest,
) -> ApiResult<DescribeLiveRecordTemplatesResponse> {
    let slow = flag("IsDelayLive", req.is_delay_live)?.unwrap_or(false);
    let templates = shared::list_templates(&cx, Kind::Record).await?;
    Ok(DescribeLiveRecordTemplatesResponse {
        templates: templates
            .into_iter()
            .filter(|t| matches!(&t.spec, TemplateSpec::Record(s) if s.slow_live == slow))
            .map(template_info)
            .collect(),
    })
}

/// Binds a recording template to a push domain, app or stream.
pub async fn create_live_record_rule(
    cx: Cx,
    req: CreateLiveRecordRuleRequest,
) -> ApiResult<CreateLiveRecordRuleResponse> {
    let at = shared::at(req.domain_name, req.app_name, req.stream_name);
    shared::create_rule(&cx, Kind::Record, at, req.template_id).await?;
    Ok(CreateLiveRecordRuleResponse {})
}

/// Deletes the recording rule at a domain, app and stream (matched exactly).
pub async fn delete_live_record_rule(
    cx: Cx,
    req: DeleteLiveRecordRuleRequest,
) -> ApiResult<DeleteLiveRecordRuleResponse> {
    let at = shared::at(req.domain_name, req.app_name, req.stream_name);
    shared::delete_rule(&cx, Kind::Record, at, None).await?;
    Ok(DeleteLiveRecordRuleResponse {})
}

/// The caller's recording rules.
pub async fn describe_live_record_rules(
    cx: Cx,
    _req: DescribeLiveRecordRulesRequest,
) -> ApiResult<DescribeLiveRecordRulesResponse> {
    let rules = shared::list_rules(&cx, Kind::Record).await?;
    Ok(DescribeLiveRecordRulesResponse {
        rules: Some(
            rules
                .into_iter()
                .map(|r| shared::rule_info(r, beijing))
                .collect(),
        ),
    })
}

fn record_param(o: RecordOutput) -> RecordParam {
    RecordParam {
        record_interval: o.interval.into(),
        storage_time: i64::try_from(o.storage_time).unwrap_or(i64::MAX),
        enable: o.enabled.into(),
        vod_sub_app_id: o.vod_sub_app_id,
        vod_file_name: o.vod_file_name,
        procedure: Some(o.procedure),
        storage_mode: Some(
            match o.storage_class {
                StorageClass::Standard => "normal",
                StorageClass::Cold => "cold",
            }
            .to_owned(),
        ),
        class_id: o.class_id,
        cos_bucket_name: Some(o.cos_bucket),
        cos_bucket_region: Some(o.cos_region),
        cos_bucket_path: Some(o.cos_path),
    }
}

/// A stored template on the wire, every format present.
fn template_info(t: Template) -> RecordTemplateInfo {
    let TemplateSpec::Record(mut s) = t.spec else {
        return RecordTemplateInfo::default();
    };
    let mut param = |f| record_param(s.outputs.remove(&f).unwrap_or_else(default_output));
    RecordTemplateInfo {
        template_id: t.id.0,
        template_name: t.name,
        description: t.description,
        flv_param: param(RecordFormat::Flv),
        hls_param: param(RecordFormat::Hls),
        mp4_param: param(RecordFormat::Mp4),
        aac_param: param(RecordFormat::Aac),
        mp3_param: param(RecordFormat::Mp3),
        is_delay_live: s.slow_live.into(),
        hls_special_param: HlsSpecialParam {
            flow_continue_duration: Some(s.hls_resume_timeout.into()),
        },
        remove_watermark: Some(s.remove_watermark),
        cos_store: Some(s.to_cos.into()),
        flv_special_param: Some(FlvSpecialParam {
            upload_in_recording: Some(s.upload_while_recording),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(interval: i64) -> RecordParam {
        RecordParam {
            record_interval: interval,
            enable: 1,
            ..RecordParam::default()
        }
    }

    #[test]
    fn intervals_follow_the_format() {
        let code = |format, p, cos| parse_output(format, p, cos).err().map(|e| e.code.as_str());
        assert_eq!(
            parse_output(RecordFormat::Flv, param(0), false)
                .map(|o| o.interval)
                .ok(),
            Some(1800)
        );
        assert_eq!(code(RecordFormat::Flv, param(43_200), false), None);
        assert_eq!(
            code(RecordFormat::Flv, param(59), false),
            Some("InvalidParameterValue")
        );
        assert_eq!(code(RecordFormat::Aac, param(7200), false), None);
        assert_eq!(
            code(RecordFormat::Aac, param(7201), false),
            Some("InvalidParameterValue")
        );
        let storage = RecordParam {
            storage_time: MAX_STORAGE_SECS + 1,
            ..param(0)
        };
        assert_eq!(
            code(RecordFormat::Mp4, storage, false),
            Some("InvalidParameterValue")
        );
        let mode = RecordParam {
            storage_mode: Some("archive".into()),
            ..param(0)
        };
        assert_eq!(
            code(RecordFormat::Mp4, mode, false),
            Some("InvalidParameterValue")
        );
        assert_eq!(
            code(RecordFormat::Hls, param(0), true),
            Some("InternalError.InvalidInput")
        );
        let path = RecordParam {
            cos_bucket_path: Some("no-slash".into()),
            ..param(0)
        };
        assert_eq!(
            code(RecordFormat::Hls, path, false),
            Some("InternalError.InvalidInput")
        );
    }
}
