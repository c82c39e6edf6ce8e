//! Snapshot templates and rules: `Create/Modify/Delete/DescribeLiveSnapshotTemplate`,
//! `DescribeLiveSnapshotTemplates`, `Create/DeleteLiveSnapshotRule`,
//! `DescribeLiveSnapshotRules`.
//!
//! Owns: the documented ranges of snapshot settings (interval 2–300 s on
//! Create, 5–300 s on Modify; width 0–3000, height 0–2000) and their
//! defaults (10 s, source size, the documented COS prefix and file name).
//! Must not: take snapshots (the media plane does).

use livestack_core::rules::{Kind, SnapshotSpec, Template, TemplateSpec};
use livestack_model::{
    CreateLiveSnapshotRuleRequest, CreateLiveSnapshotRuleResponse,
    CreateLiveSnapshotTemplateRequest, CreateLiveSnapshotTemplateResponse,
    DeleteLiveSnapshotRuleRequest, DeleteLiveSnapshotRuleResponse,
    DeleteLiveSnapshotTemplateRequest, DeleteLiveSnapshotTemplateResponse,
    DescribeLiveSnapshotRulesRequest, DescribeLiveSnapshotRulesResponse,
    DescribeLiveSnapshotTemplateRequest, DescribeLiveSnapshotTemplateResponse,
    DescribeLiveSnapshotTemplatesRequest, DescribeLiveSnapshotTemplatesResponse,
    ModifyLiveSnapshotTemplateRequest, ModifyLiveSnapshotTemplateResponse, SnapshotTemplateInfo,
};

use super::check::{check_bucket, flag, invalid_input, ranged};
use super::processing as shared;
use crate::cx::Cx;
use crate::error::ApiResult;
use crate::time::beijing;

/// Seconds between snapshots when none is given.
const DEFAULT_INTERVAL: u32 = 10;
/// The folder used when `CosPrefix` is not given.
const DEFAULT_COS_PREFIX: &str = "/{Year}-{Month}-{Day}";
/// The file name used when `CosFileName` is not given.
const DEFAULT_COS_FILE_NAME: &str =
    "{StreamID}-screenshot-{Hour}-{Minute}-{Second}-{Width}x{Height}{Ext}";

/// The settings a Create or Modify request gives.
struct SnapshotFields {
    interval: Option<i64>,
    width: Option<i64>,
    height: Option<i64>,
    porn_flag: Option<i64>,
    cos_app_id: i64,
    cos_bucket: String,
    cos_region: String,
    cos_prefix: Option<String>,
    cos_file_name: Option<String>,
}

macro_rules! snapshot_fields {
    ($r:expr) => {
        SnapshotFields {
            interval: $r.snapshot_interval,
            width: $r.width,
            height: $r.height,
            porn_flag: $r.porn_flag,
            cos_app_id: $r.cos_app_id,
            cos_bucket: $r.cos_bucket,
            cos_region: $r.cos_region,
            cos_prefix: $r.cos_prefix,
            cos_file_name: $r.cos_file_name,
        }
    };
}

/// Applies a request's settings; absent optional ones are left as they
/// are (the COS location is required by both actions). `min_interval` is
/// the action's documented lower bound.
fn apply(s: &mut SnapshotSpec, f: SnapshotFields, min_interval: u32) -> ApiResult<()> {
    if let Some(v) = f.interval {
        s.interval = ranged("SnapshotInterval", v, min_interval, 300)?;
    }
    if let Some(v) = f.width {
        s.width = ranged("Width", v, 0, 3000)?;
    }
    if let Some(v) = f.height {
        s.height = ranged("Height", v, 0, 2000)?;
    }
    if let Some(v) = flag("PornFlag", f.porn_flag)? {
        s.porn_check = v;
    }
    s.cos_app_id = i64::from(ranged("CosAppId", f.cos_app_id, 0, u32::MAX)?);
    check_bucket("CosBucket", &f.cos_bucket, "CosRegion", &f.cos_region)?;
    if f.cos_bucket.ends_with(&format!("-{}", f.cos_app_id)) {
        return Err(invalid_input(
            "CosBucket must not include the `-appid` part.".into(),
            "CosBucket 参数值不能包含 -[appid] 部分。".into(),
        ));
    }
    s.cos_bucket = f.cos_bucket;
    s.cos_region = f.cos_region;
    if let Some(v) = f.cos_prefix.filter(|v| !v.is_empty()) {
        s.cos_prefix = v;
    }
    if let Some(v) = f.cos_file_name.filter(|v| !v.is_empty()) {
        s.cos_file_name = v;
    }
    Ok(())
}

/// Creates a snapshot template.
pub async fn create_live_snapshot_template(
    cx: Cx,
    req: CreateLiveSnapshotTemplateRequest,
) -> ApiResult<CreateLiveSnapshotTemplateResponse> {
    shared::check_text("TemplateName", &req.template_name, 255, true)?;
    let description = req.description.clone().unwrap_or_default();
    shared::check_text("Description", &description, 1024, false)?;
    let mut spec = SnapshotSpec {
        interval: DEFAULT_INTERVAL,
        cos_prefix: DEFAULT_COS_PREFIX.to_owned(),
        cos_file_name: DEFAULT_COS_FILE_NAME.to_owned(),
        ..SnapshotSpec::default()
    };
    let name = req.template_name.clone();
    apply(&mut spec, snapshot_fields!(req), 2)?;
    let t = shared::create_template(&cx, name, description, TemplateSpec::Snapshot(spec)).await?;
    Ok(CreateLiveSnapshotTemplateResponse {
        template_id: t.id.0,
    })
}

/// Changes a snapshot template; absent settings keep their values
/// (`SnapshotInterval` 0, as the official example sends, counts as absent).
pub async fn modify_live_snapshot_template(
    cx: Cx,
    mut req: ModifyLiveSnapshotTemplateRequest,
) -> ApiResult<ModifyLiveSnapshotTemplateResponse> {
    if let Some(name) = &req.template_name {
        shared::check_text("TemplateName", name, 255, true)?;
    }
    if let Some(d) = &req.description {
        shared::check_text("Description", d, 1024, false)?;
    }
    req.snapshot_interval = req.snapshot_interval.filter(|v| *v != 0);
    let (name, description) = (req.template_name.take(), req.description.take());
    shared::modify_template(&cx, Kind::Snapshot, req.template_id, move |t| {
        if let TemplateSpec::Snapshot(spec) = &mut t.spec {
            apply(spec, snapshot_fields!(req), 5)?;
        }
        shared::rename(t, name, description);
        Ok(())
    })
    .await?;
    Ok(ModifyLiveSnapshotTemplateResponse {})
}

/// Deletes a snapshot template no rule uses.
pub async fn delete_live_snapshot_template(
    cx: Cx,
    req: DeleteLiveSnapshotTemplateRequest,
) -> ApiResult<DeleteLiveSnapshotTemplateResponse> {
    shared::delete_template(&cx, Kind::Snapshot, req.template_id).await?;
    Ok(DeleteLiveSnapshotTemplateResponse {})
}

/// One snapshot template.
pub async fn describe_live_snapshot_template(
    cx: Cx,
    req: DescribeLiveSnapshotTemplateRequest,
) -> ApiResult<DescribeLiveSnapshotTemplateResponse> {
    let t = shared::get_template(&cx, Kind::Snapshot, req.template_id).await?;
    Ok(DescribeLiveSnapshotTemplateResponse {
        template: template_info(t),
    })
}

/// The caller's snapshot templates.
pub async fn describe_live_snapshot_templates(
    cx: Cx,
    _req: DescribeLiveSnapshotTemplatesRequest,
) -> ApiResult<DescribeLiveSnapshotTemplatesResponse> {
    let templates = shared::list_templates(&cx, Kind::Snapshot).await?;
    Ok(DescribeLiveSnapshotTemplatesResponse {
        templates: templates.into_iter().map(template_info).collect(),
    })
}

/// Binds a snapshot template to a push domain, app or stream (one snapshot
/// template per domain).
pub async fn create_live_snapshot_rule(
    cx: Cx,
    req: CreateLiveSnapshotRuleRequest,
) -> ApiResult<CreateLiveSnapshotRuleResponse> {
    let at = shared::at(req.domain_name, req.app_name, req.stream_name);
    shared::create_rule(&cx, Kind::Snapshot, at, req.template_id).await?;
    Ok(CreateLiveSnapshotRuleResponse {})
}

/// Deletes the snapshot rule at a domain, app and stream (matched exactly).
pub async fn delete_live_snapshot_rule(
    cx: Cx,
    req: DeleteLiveSnapshotRuleRequest,
) -> ApiResult<DeleteLiveSnapshotRuleResponse> {
    let at = shared::at(req.domain_name, req.app_name, req.stream_name);
    shared::delete_rule(&cx, Kind::Snapshot, at, None).await?;
    Ok(DeleteLiveSnapshotRuleResponse {})
}

/// The caller's snapshot rules.
pub async fn describe_live_snapshot_rules(
    cx: Cx,
    _req: DescribeLiveSnapshotRulesRequest,
) -> ApiResult<DescribeLiveSnapshotRulesResponse> {
    let rules = shared::list_rules(&cx, Kind::Snapshot).await?;
    Ok(DescribeLiveSnapshotRulesResponse {
        rules: Some(
            rules
                .into_iter()
                .map(|r| shared::rule_info(r, beijing))
                .collect(),
        ),
    })
}

/// A stored template on the wire. Third-party COS keys are not supported,
/// so `CosSecretId`/`CosSecretKey` are null.
fn template_info(t: Template) -> SnapshotTemplateInfo {
    let TemplateSpec::Snapshot(s) = t.spec else {
        return SnapshotTemplateInfo::default();
    };
    SnapshotTemplateInfo {
        template_id: t.id.0,
        template_name: t.name,
        snapshot_interval: s.interval.into(),
        width: s.width.into(),
        height: s.height.into(),
        porn_flag: s.porn_check.into(),
        cos_app_id: s.cos_app_id,
        cos_bucket: s.cos_bucket,
        cos_region: s.cos_region,
        description: t.description,
        cos_prefix: Some(s.cos_prefix),
        cos_file_name: Some(s.cos_file_name),
        cos_secret_id: None,
        cos_secret_key: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_the_cos_location_are_checked() {
        let base = || SnapshotFields {
            interval: None,
            width: None,
            height: None,
            porn_flag: None,
            cos_app_id: 1_250_000_000,
            cos_bucket: "shots".into(),
            cos_region: "ap-guangzhou".into(),
            cos_prefix: None,
            cos_file_name: None,
        };
        let code = |f: SnapshotFields, min| {
            apply(&mut SnapshotSpec::default(), f, min)
                .err()
                .map(|e| e.code.as_str())
        };
        assert_eq!(code(base(), 2), None);
        assert_eq!(
            code(
                SnapshotFields {
                    interval: Some(2),
                    ..base()
                },
                2
            ),
            None
        );
        assert_eq!(
            code(
                SnapshotFields {
                    interval: Some(2),
                    ..base()
                },
                5
            ),
            Some("InvalidParameterValue")
        );
        assert_eq!(
            code(
                SnapshotFields {
                    interval: Some(301),
                    ..base()
                },
                2
            ),
            Some("InvalidParameterValue")
        );
        assert_eq!(
            code(
                SnapshotFields {
                    height: Some(2001),
                    ..base()
                },
                2
            ),
            Some("InvalidParameterValue")
        );
        assert_eq!(
            code(
                SnapshotFields {
                    width: Some(3000),
                    ..base()
                },
                2
            ),
            None
        );
        assert_eq!(
            code(
                SnapshotFields {
                    cos_bucket: String::new(),
                    ..base()
                },
                2
            ),
            Some("InternalError.InvalidInput")
        );
        assert_eq!(
            code(
                SnapshotFields {
                    cos_bucket: "shots-1250000000".into(),
                    ..base()
                },
                2
            ),
            Some("InternalError.InvalidInput")
        );
    }
}
