//! Transcoding templates and rules: `Create/Modify/Delete/DescribeLiveTranscodeTemplate`,
//! `DescribeLiveTranscodeTemplates`, `Create/DeleteLiveTranscodeRule`,
//! `DescribeLiveTranscodeRules`.
//!
//! Owns: the documented ranges and values of transcoding settings (bitrate
//! 0–8000 kbit/s, sizes 0–3000 in multiples of 2, 0–60 fps, GOP, rotation,
//! profile, codecs), their defaults, adaptive-bitrate children, and which
//! combinations contradict each other (`InternalError.ArgsNotMatch`). Must
//! not: transcode (the media plane reads the templates from the policy).

use livestack_core::rules::{
    AdaptiveChild, AudioCodec, Drm, DrmScheme, DrmTrack, HevcTag, HlsContainer, Kind, Profile,
    Rendition, Template, TemplateId, TemplateSpec, TranscodeSpec, VideoCodec,
};
use livestack_model::{
    ChildTemplateInfo, CreateLiveTranscodeRuleRequest, CreateLiveTranscodeRuleResponse,
    CreateLiveTranscodeTemplateRequest, CreateLiveTranscodeTemplateResponse,
    DeleteLiveTranscodeRuleRequest, DeleteLiveTranscodeRuleResponse,
    DeleteLiveTranscodeTemplateRequest, DeleteLiveTranscodeTemplateResponse,
    DescribeLiveTranscodeRulesRequest, DescribeLiveTranscodeRulesResponse,
    DescribeLiveTranscodeTemplateRequest, DescribeLiveTranscodeTemplateResponse,
    DescribeLiveTranscodeTemplatesRequest, DescribeLiveTranscodeTemplatesResponse,
    ModifyLiveTranscodeTemplateRequest, ModifyLiveTranscodeTemplateResponse, TemplateInfo,
};

use super::check::{check_enum, flag, not_one_of, ranged};
use super::processing as shared;
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::time::beijing;

/// The default keyframe interval, seconds.
const DEFAULT_GOP: u32 = 2;

fn args_not_match(en: String, zh: String) -> ApiError {
    ApiError::new(ErrorCode::InternalErrorArgsNotMatch, en, zh)
}

/// Template (and child) names: letters and digits, 1–10 characters (3–10
/// for fast-HD templates), `InvalidParameter.ArgsNotMatch` ("wrong template
/// name") otherwise.
fn check_name(name: &str, fast_hd: bool) -> ApiResult<()> {
    let min = if fast_hd { 3 } else { 1 };
    if (min..=10).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::InvalidParameterArgsNotMatch,
        format!("TemplateName `{name}` is not allowed: use {min} to 10 letters and digits."),
        format!("模板名 `{name}` 错误：仅支持字母和数字的组合，长度 {min}~10 个字符。"),
    ))
}

const VIDEO_CODECS: [(&str, VideoCodec); 3] = [
    ("h264", VideoCodec::H264),
    ("h265", VideoCodec::H265),
    ("origin", VideoCodec::Origin),
];
const AUDIO_CODECS: [(&str, AudioCodec); 2] =
    [("aac", AudioCodec::Aac), ("origin", AudioCodec::Origin)];
const PROFILES: [(&str, Profile); 3] = [
    ("baseline", Profile::Baseline),
    ("main", Profile::Main),
    ("high", Profile::High),
];
const DRM_SCHEMES: [(&str, DrmScheme); 3] = [
    ("fairplay", DrmScheme::FairPlay),
    ("normalaes", DrmScheme::NormalAes),
    ("widevine", DrmScheme::Widevine),
];
const DRM_TRACKS: [(&str, DrmTrack); 5] = [
    ("AUDIO", DrmTrack::Audio),
    ("SD", DrmTrack::Sd),
    ("HD", DrmTrack::Hd),
    ("UHD1", DrmTrack::Uhd1),
    ("UHD2", DrmTrack::Uhd2),
];
const HLS_CONTAINERS: [(&str, HlsContainer); 2] =
    [("ts", HlsContainer::Ts), ("fmp4", HlsContainer::Fmp4)];
const HEVC_TAGS: [(&str, HevcTag); 2] = [("hvc1", HevcTag::Hvc1), ("hev1", HevcTag::Hev1)];

/// The value a wire name stands for (any case), `InvalidParameterValue` otherwise.
fn lookup<T: Copy>(name: &str, value: &str, table: &[(&str, T)]) -> ApiResult<T> {
    table
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(value.trim()))
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let allowed: Vec<&str> = table.iter().map(|(w, _)| *w).collect();
            not_one_of(name, value, &allowed)
        })
}

/// The wire name of a value.
fn wire<T: PartialEq>(value: T, table: &[(&'static str, T)]) -> &'static str {
    table
        .iter()
        .find(|(_, v)| *v == value)
        .map_or("", |(w, _)| w)
}

/// An optional string, with "" meaning "not given" (as the official
/// examples send it).
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The settings one output has, as a request (parent or child) gives them.
struct RenditionFields {
    vcodec: Option<String>,
    video_bitrate: Option<i64>,
    width: Option<i64>,
    height: Option<i64>,
    fps: Option<i64>,
    gop: Option<i64>,
    need_video: Option<i64>,
    need_audio: Option<i64>,
    bitrate_to_orig: Option<i64>,
    height_to_orig: Option<i64>,
    fps_to_orig: Option<i64>,
    short_edge_as_height: Option<i64>,
    acodec: Option<String>,
    audio_bitrate: Option<i64>,
}

/// The output settings of any request that names them like a template
/// (Create, Modify, `ChildTemplateInfo`).
macro_rules! rendition_fields {
    ($r:expr) => {
        RenditionFields {
            vcodec: $r.vcodec.clone(),
            video_bitrate: $r.video_bitrate.into(),
            width: $r.width,
            height: $r.height,
            fps: $r.fps,
            gop: $r.gop,
            need_video: $r.need_video,
            need_audio: $r.need_audio,
            bitrate_to_orig: $r.bitrate_to_orig,
            height_to_orig: $r.height_to_orig,
            fps_to_orig: $r.fps_to_orig,
            short_edge_as_height: $r.short_edge_as_height,
            acodec: $r.acodec.clone(),
            audio_bitrate: $r.audio_bitrate,
        }
    };
}

/// A width or height: 0–3000 and even.
fn even_size(name: &str, value: i64) -> ApiResult<u32> {
    let v = ranged(name, value, 0, 3000)?;
    if v % 2 == 0 {
        Ok(v)
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!("{name} must be a multiple of 2, not {v}."),
            format!("{name} 须为 2 的倍数，当前为 {v}。"),
        ))
    }
}

/// A keyframe interval: 0 (the source's) or `min`–6 seconds.
fn gop(value: i64, min: u32) -> ApiResult<u32> {
    if value == 0 {
        Ok(0)
    } else {
        ranged("Gop", value, min, 6)
    }
}

/// Applies the given fields to `r`; absent fields leave it unchanged.
fn apply_rendition(r: &mut Rendition, f: RenditionFields, gop_min: u32) -> ApiResult<()> {
    if let Some(v) = given(f.vcodec) {
        r.video_codec = lookup("Vcodec", &v, &VIDEO_CODECS)?;
    }
    if let Some(v) = given(f.acodec) {
        r.audio_codec = lookup("Acodec", &v, &AUDIO_CODECS)?;
    }
    if let Some(v) = f.video_bitrate {
        r.video_bitrate = ranged("VideoBitrate", v, 0, 8000)?;
    }
    if let Some(v) = f.audio_bitrate {
        r.audio_bitrate = ranged("AudioBitrate", v, 0, 500)?;
    }
    if let Some(v) = f.width {
        r.width = even_size("Width", v)?;
    }
    if let Some(v) = f.height {
        r.height = even_size("Height", v)?;
    }
    if let Some(v) = f.fps {
        r.fps = ranged("Fps", v, 0, 60)?;
    }
    if let Some(v) = f.gop {
        r.gop = gop(v, gop_min)?;
    }
    let flags: [(&str, Option<i64>, &mut bool); 6] = [
        ("NeedVideo", f.need_video, &mut r.video),
        ("NeedAudio", f.need_audio, &mut r.audio),
        ("BitrateToOrig", f.bitrate_to_orig, &mut r.bitrate_to_source),
        ("HeightToOrig", f.height_to_orig, &mut r.height_to_source),
        ("FpsToOrig", f.fps_to_orig, &mut r.fps_to_source),
        (
            "ShortEdgeAsHeight",
            f.short_edge_as_height,
            &mut r.short_edge_as_height,
        ),
    ];
    for (name, value, slot) in flags {
        if let Some(v) = flag(name, value)? {
            *slot = v;
        }
    }
    Ok(())
}

/// What a new template has before the request's fields apply: the
/// documented defaults (H.264 baseline, AAC, GOP 2 s, everything else 0 or
/// "as the source", video and audio kept).
fn default_rendition(video_codec: VideoCodec) -> Rendition {
    Rendition {
        video: true,
        audio: true,
        video_codec,
        gop: DEFAULT_GOP,
        ..Rendition::default()
    }
}

/// The settings of a Create or Modify request besides the output ones.
struct TemplateFields {
    output: RenditionFields,
    rotate: Option<i64>,
    profile: Option<String>,
    ai_trans_code: Option<i64>,
    adapt_bitrate_percent: Option<f64>,
    drm_type: Option<String>,
    drm_tracks: Option<String>,
    is_adaptive_bit_rate: Option<i64>,
    adaptive_children: Option<Vec<ChildTemplateInfo>>,
    audience_driven_transcode: Option<i64>,
    audience_threshold: Option<i64>,
}

macro_rules! template_fields {
    ($r:expr, $ai:expr) => {
        TemplateFields {
            output: rendition_fields!($r),
            rotate: $r.rotate,
            profile: $r.profile,
            ai_trans_code: $ai,
            adapt_bitrate_percent: $r.adapt_bitrate_percent,
            drm_type: $r.drm_type,
            drm_tracks: $r.drm_tracks,
            is_adaptive_bit_rate: $r.is_adaptive_bit_rate,
            adaptive_children: $r.adaptive_children,
            audience_driven_transcode: $r.audience_driven_transcode,
            audience_threshold: $r.audience_threshold,
        }
    };
}

/// DRM settings: documented to be cleared when the type and tracks are
/// absent or empty, on Modify as on Create.
fn parse_drm(scheme: Option<String>, tracks: Option<String>) -> ApiResult<Option<Drm>> {
    let (scheme, tracks) = match (given(scheme), given(tracks)) {
        (None, None) => return Ok(None),
        (Some(s), Some(t)) => (s, t),
        _ => {
            return Err(args_not_match(
                "DRMType and DRMTracks go together: give both or neither.".into(),
                "DRMType 与 DRMTracks 须同时传入或同时不传。".into(),
            ))
        }
    };
    let scheme = lookup("DRMType", &scheme, &DRM_SCHEMES)?;
    let mut parsed = tracks
        .split(['|', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| lookup("DRMTracks", t, &DRM_TRACKS))
        .collect::<ApiResult<Vec<DrmTrack>>>()?;
    parsed.sort_unstable();
    parsed.dedup();
    if parsed.iter().filter(|t| **t != DrmTrack::Audio).count() > 1 {
        return Err(args_not_match(
            format!("DRMTracks `{tracks}` names more than one of SD, HD, UHD1, UHD2."),
            format!("DRMTracks `{tracks}` 中 SD、HD、UHD1、UHD2 只能选一个。"),
        ));
    }
    Ok(Some(Drm {
        scheme,
        tracks: parsed,
    }))
}

/// The ladder of an adaptive template from the request's children: a child
/// with a `TemplateId` updates that existing child, one without is new.
/// Every child must give the same GOP
/// (`InvalidParameter.GopMustEqualAndExists`).
fn parse_children(
    given_children: Vec<ChildTemplateInfo>,
    existing: &[AdaptiveChild],
) -> ApiResult<Vec<AdaptiveChild>> {
    let gops: Vec<Option<i64>> = given_children.iter().map(|c| c.gop).collect();
    if gops.iter().any(Option::is_none) || gops.windows(2).any(|w| w[0] != w[1]) {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterGopMustEqualAndExists,
            "Every adaptive-bitrate child must give Gop, and all the same.",
            "自适应码率子模板 gop 值必须存在且相等。",
        ));
    }
    given_children
        .into_iter()
        .map(|c| {
            let mut child = match c.template_id.filter(|id| *id != 0) {
                Some(id) => existing
                    .iter()
                    .find(|e| e.id == TemplateId(id))
                    .cloned()
                    .ok_or_else(|| shared::missing_template(Kind::Transcode, id))?,
                None => AdaptiveChild {
                    output: default_rendition(VideoCodec::Origin),
                    ..AdaptiveChild::default()
                },
            };
            if let Some(name) = c.template_name.clone() {
                child.name = name;
            }
            check_name(&child.name, false)?;
            apply_rendition(&mut child.output, rendition_fields!(c), 2)?;
            if let Some(v) = given(c.hls_container_format.clone()) {
                child.hls_container = Some(lookup("HlsContainerFormat", &v, &HLS_CONTAINERS)?);
            }
            if let Some(v) = given(c.hls_mp4_video_codec_tag.clone()) {
                child.hevc_tag = Some(lookup("HlsMp4VideoCodecTag", &v, &HEVC_TAGS)?);
            }
            Ok(child)
        })
        .collect()
}

/// Applies a request's fields to `spec` (defaults on Create, the stored
/// template on Modify).
fn apply(spec: &mut TranscodeSpec, f: TemplateFields) -> ApiResult<()> {
    apply_rendition(&mut spec.output, f.output, 1)?;
    if let Some(v) = check_enum("Rotate", f.rotate, &[0, 90, 180, 270])? {
        spec.rotate = u32::try_from(v).unwrap_or(0);
    }
    if let Some(v) = given(f.profile) {
        spec.profile = lookup("Profile", &v, &PROFILES)?;
    }
    if let Some(v) = flag("AiTransCode", f.ai_trans_code)? {
        spec.fast_hd = v;
    }
    if let Some(p) = f.adapt_bitrate_percent {
        if !(0.0..=0.9).contains(&p) {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!("AdaptBitratePercent must be between 0.0 and 0.9, not {p}."),
                format!("AdaptBitratePercent 的取值范围为 0.0~0.9，当前为 {p}。"),
            ));
        }
        spec.bitrate_saving_bp = (p * 10_000.0).round() as u32;
    }
    spec.drm = parse_drm(f.drm_type, f.drm_tracks)?;
    match flag("AudienceDrivenTranscode", f.audience_driven_transcode)? {
        Some(true) => {
            spec.audience_threshold.get_or_insert(0);
        }
        Some(false) => spec.audience_threshold = None,
        None => {}
    }
    if let (Some(t), Some(_)) = (f.audience_threshold, spec.audience_threshold) {
        spec.audience_threshold = Some(ranged("AudienceThreshold", t, 100, 1_000_000)?);
    }
    if let Some(adaptive) = flag("IsAdaptiveBitRate", f.is_adaptive_bit_rate)? {
        spec.adaptive = adaptive;
        if !adaptive {
            spec.children.clear();
        }
    }
    // Children only count for adaptive templates, as documented.
    if let (true, Some(children)) = (spec.adaptive, f.adaptive_children) {
        spec.children = parse_children(children, &spec.children)?;
    }
    check_consistent(spec)
}

/// Combinations the documentation rules out (`InternalError.ArgsNotMatch`).
fn check_consistent(spec: &TranscodeSpec) -> ApiResult<()> {
    let outputs = std::iter::once(&spec.output).chain(spec.children.iter().map(|c| &c.output));
    if outputs.into_iter().any(|o| !o.video && !o.audio) {
        return Err(args_not_match(
            "NeedVideo and NeedAudio cannot both be 0: the output would be empty.".into(),
            "NeedVideo 与 NeedAudio 不能同时为 0。".into(),
        ));
    }
    if spec.adaptive && spec.children.is_empty() {
        return Err(args_not_match(
            "IsAdaptiveBitRate is 1 but AdaptiveChildren is empty.".into(),
            "IsAdaptiveBitRate 为 1 时须传入 AdaptiveChildren。".into(),
        ));
    }
    let o = &spec.output;
    match spec.audience_threshold {
        Some(threshold) => {
            let ok = spec.fast_hd
                && o.height == 0
                && o.video_bitrate == 0
                && threshold >= 100
                && (5_000..=9_000).contains(&spec.bitrate_saving_bp);
            if !ok {
                return Err(args_not_match(
                    "AudienceDrivenTranscode 1 needs AiTransCode 1, Height 0, VideoBitrate 0, AdaptBitratePercent 0.5–0.9 and AudienceThreshold.".into(),
                    "智能降码须同时满足 AiTransCode = 1、Height = 0、VideoBitrate = 0，并传入 AdaptBitratePercent（0.5~0.9）与 AudienceThreshold。".into(),
                ));
            }
        }
        None if spec.bitrate_saving_bp > 5_000 => {
            return Err(args_not_match(
                "AdaptBitratePercent above 0.5 is only for audience-driven transcoding.".into(),
                "AdaptBitratePercent 大于 0.5 仅用于智能降码。".into(),
            ))
        }
        None if spec.fast_hd && o.height == 0 => {
            return Err(args_not_match(
                "A fast-HD template (AiTransCode 1) needs Height.".into(),
                "极速高清模板（AiTransCode = 1）必须传 Height。".into(),
            ))
        }
        None => {}
    }
    Ok(())
}

/// Creates a transcoding template.
pub async fn create_live_transcode_template(
    cx: Cx,
    req: CreateLiveTranscodeTemplateRequest,
) -> ApiResult<CreateLiveTranscodeTemplateResponse> {
    let name = req.template_name.clone();
    let description = req.description.clone().unwrap_or_default();
    let fast_hd = flag("AiTransCode", req.ai_trans_code)?.unwrap_or(false);
    check_name(&name, fast_hd)?;
    let mut spec = TranscodeSpec {
        output: default_rendition(VideoCodec::H264),
        ..TranscodeSpec::default()
    };
    let ai = req.ai_trans_code;
    apply(&mut spec, template_fields!(req, ai))?;
    let t = shared::create_template(&cx, name, description, TemplateSpec::Transcode(spec)).await?;
    Ok(CreateLiveTranscodeTemplateResponse {
        template_id: t.id.0,
    })
}

/// Changes a transcoding template; absent fields keep their values (DRM
/// settings excepted, which absent clears, as documented).
pub async fn modify_live_transcode_template(
    cx: Cx,
    req: ModifyLiveTranscodeTemplateRequest,
) -> ApiResult<ModifyLiveTranscodeTemplateResponse> {
    let id = req.template_id;
    let description = req.description.clone();
    shared::modify_template(&cx, Kind::Transcode, id, move |t| {
        if let TemplateSpec::Transcode(spec) = &mut t.spec {
            apply(spec, template_fields!(req, None))?;
        }
        shared::rename(t, None, description);
        Ok(())
    })
    .await?;
    Ok(ModifyLiveTranscodeTemplateResponse {})
}

/// Deletes a transcoding template no rule uses.
pub async fn delete_live_transcode_template(
    cx: Cx,
    req: DeleteLiveTranscodeTemplateRequest,
) -> ApiResult<DeleteLiveTranscodeTemplateResponse> {
    shared::delete_template(&cx, Kind::Transcode, req.template_id).await?;
    Ok(DeleteLiveTranscodeTemplateResponse {})
}

/// One transcoding template.
pub async fn describe_live_transcode_template(
    cx: Cx,
    req: DescribeLiveTranscodeTemplateRequest,
) -> ApiResult<DescribeLiveTranscodeTemplateResponse> {
    let t = shared::get_template(&cx, Kind::Transcode, req.template_id).await?;
    Ok(DescribeLiveTranscodeTemplateResponse {
        template: template_info(t),
    })
}

/// The caller's transcoding templates of one type: plain (0, the default)
/// or adaptive-bitrate (1).
pub async fn describe_live_transcode_templates(
    cx: Cx,
    req: DescribeLiveTranscodeTemplatesRequest,
) -> ApiResult<DescribeLiveTranscodeTemplatesResponse> {
    let adaptive = flag("TemplateType", req.template_type)?.unwrap_or(false);
    let templates = shared::list_templates(&cx, Kind::Transcode).await?;
    Ok(DescribeLiveTranscodeTemplatesResponse {
        templates: templates
            .into_iter()
            .filter(|t| matches!(&t.spec, TemplateSpec::Transcode(s) if s.adaptive == adaptive))
            .map(template_info)
            .collect(),
    })
}

/// Binds a transcoding template to a play domain (and app).
pub async fn create_live_transcode_rule(
    cx: Cx,
    req: CreateLiveTranscodeRuleRequest,
) -> ApiResult<CreateLiveTranscodeRuleResponse> {
    let at = shared::at(req.domain_name, req.app_name, req.stream_name);
    shared::create_rule(&cx, Kind::Transcode, at, req.template_id).await?;
    Ok(CreateLiveTranscodeRuleResponse {})
}

/// Deletes a transcoding rule, matched exactly on domain, app, stream and
/// template.
pub async fn delete_live_transcode_rule(
    cx: Cx,
    req: DeleteLiveTranscodeRuleRequest,
) -> ApiResult<DeleteLiveTranscodeRuleResponse> {
    let at = shared::at(req.domain_name, req.app_name, req.stream_name);
    shared::delete_rule(&cx, Kind::Transcode, at, Some(req.template_id)).await?;
    Ok(DeleteLiveTranscodeRuleResponse {})
}

/// The caller's transcoding rules, optionally only those of some
/// templates and domains.
pub async fn describe_live_transcode_rules(
    cx: Cx,
    req: DescribeLiveTranscodeRulesRequest,
) -> ApiResult<DescribeLiveTranscodeRulesResponse> {
    let ids = req.template_ids.unwrap_or_default();
    let domains: Vec<String> = req
        .domain_names
        .unwrap_or_default()
        .iter()
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    let rules = shared::list_rules(&cx, Kind::Transcode).await?;
    Ok(DescribeLiveTranscodeRulesResponse {
        rules: rules
            .into_iter()
            .filter(|r| ids.is_empty() || ids.contains(&r.template.0))
            .filter(|r| domains.is_empty() || domains.contains(&r.domain))
            .map(|r| shared::rule_info(r, beijing))
            .collect(),
    })
}

fn child_info(c: AdaptiveChild) -> ChildTemplateInfo {
    let o = c.output;
    ChildTemplateInfo {
        template_id: Some(c.id.0),
        template_name: Some(c.name),
        vcodec: Some(wire(o.video_codec, &VIDEO_CODECS).to_owned()),
        video_bitrate: Some(o.video_bitrate.into()),
        width: Some(o.width.into()),
        height: Some(o.height.into()),
        fps: Some(o.fps.into()),
        gop: Some(o.gop.into()),
        need_video: Some(o.video.into()),
        need_audio: Some(o.audio.into()),
        bitrate_to_orig: Some(o.bitrate_to_source.into()),
        height_to_orig: Some(o.height_to_source.into()),
        fps_to_orig: Some(o.fps_to_source.into()),
        short_edge_as_height: Some(o.short_edge_as_height.into()),
        hls_container_format: c.hls_container.map(|v| wire(v, &HLS_CONTAINERS).to_owned()),
        hls_mp4_video_codec_tag: c.hevc_tag.map(|v| wire(v, &HEVC_TAGS).to_owned()),
        acodec: Some(wire(o.audio_codec, &AUDIO_CODECS).to_owned()),
        audio_bitrate: Some(o.audio_bitrate.into()),
    }
}

/// A stored template on the wire, every field filled (defaults where the
/// caller set nothing).
fn template_info(t: Template) -> TemplateInfo {
    let TemplateSpec::Transcode(s) = t.spec else {
        return TemplateInfo::default();
    };
    let o = &s.output;
    let (drm_type, drm_tracks) = match &s.drm {
        Some(d) => (
            wire(d.scheme, &DRM_SCHEMES).to_owned(),
            d.tracks
                .iter()
                .map(|tr| wire(*tr, &DRM_TRACKS))
                .collect::<Vec<_>>()
                .join("|"),
        ),
        None => (String::new(), String::new()),
    };
    TemplateInfo {
        vcodec: wire(o.video_codec, &VIDEO_CODECS).to_owned(),
        video_bitrate: o.video_bitrate.into(),
        acodec: wire(o.audio_codec, &AUDIO_CODECS).to_owned(),
        audio_bitrate: o.audio_bitrate.into(),
        width: o.width.into(),
        height: o.height.into(),
        fps: o.fps.into(),
        gop: o.gop.into(),
        rotate: s.rotate.into(),
        profile: wire(s.profile, &PROFILES).to_owned(),
        bitrate_to_orig: o.bitrate_to_source.into(),
        height_to_orig: o.height_to_source.into(),
        fps_to_orig: o.fps_to_source.into(),
        need_video: o.video.into(),
        need_audio: o.audio.into(),
        template_id: t.id.0,
        template_name: t.name,
        description: t.description,
        ai_trans_code: s.fast_hd.into(),
        adapt_bitrate_percent: f64::from(s.bitrate_saving_bp) / 10_000.0,
        short_edge_as_height: Some(o.short_edge_as_height.into()),
        drm_type: Some(drm_type),
        drm_tracks: Some(drm_tracks),
        is_adaptive_bit_rate: Some(s.adaptive.into()),
        adaptive_children: Some(s.children.into_iter().map(child_info).collect()),
        audience_driven_transcode: Some(s.audience_threshold.is_some().into()),
        audience_threshold: Some(s.audience_threshold.unwrap_or(0).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> TemplateFields {
        let req = CreateLiveTranscodeTemplateRequest::default();
        template_fields!(req, None)
    }

    fn check(f: impl FnOnce(&mut TemplateFields), code: Option<&str>) {
        let mut fields = fields();
        f(&mut fields);
        let mut spec = TranscodeSpec {
            output: default_rendition(VideoCodec::H264),
            ..TranscodeSpec::default()
        };
        let got = apply(&mut spec, fields).err().map(|e| e.code.as_str());
        assert_eq!(got, code);
    }

    fn child(gop: Option<i64>) -> ChildTemplateInfo {
        ChildTemplateInfo {
            template_name: Some("low".into()),
            gop,
            ..ChildTemplateInfo::default()
        }
    }

    #[test]
    fn documented_ranges_and_values_are_enforced() {
        const BAD: Option<&str> = Some("InvalidParameterValue");
        check(|_| {}, None);
        check(|f| f.output.video_bitrate = Some(8000), None);
        check(|f| f.output.video_bitrate = Some(8001), BAD);
        check(|f| f.output.width = Some(1280), None);
        check(|f| f.output.width = Some(1281), BAD);
        check(|f| f.output.height = Some(3002), BAD);
        check(|f| f.output.fps = Some(61), BAD);
        check(|f| f.output.gop = Some(7), BAD);
        check(|f| f.output.gop = Some(0), None);
        check(|f| f.rotate = Some(45), BAD);
        check(|f| f.profile = Some("High".into()), None);
        check(|f| f.profile = Some("ultra".into()), BAD);
        check(|f| f.output.vcodec = Some("vp9".into()), BAD);
        check(|f| f.output.acodec = Some("opus".into()), BAD);
        check(|f| f.output.audio_bitrate = Some(501), BAD);
        check(|f| f.output.need_video = Some(2), BAD);
        check(|f| f.adapt_bitrate_percent = Some(0.95), BAD);
        check(
            |f| {
                f.drm_type = Some("playready".into());
                f.drm_tracks = Some("AUDIO".into());
            },
            BAD,
        );
    }

    #[test]
    fn contradicting_arguments_are_refused() {
        const NOT_MATCH: Option<&str> = Some("InternalError.ArgsNotMatch");
        check(
            |f| {
                f.output.need_video = Some(0);
                f.output.need_audio = Some(0);
            },
            NOT_MATCH,
        );
        check(|f| f.ai_trans_code = Some(1), NOT_MATCH);
        check(
            |f| {
                f.ai_trans_code = Some(1);
                f.output.height = Some(720);
            },
            None,
        );
        check(|f| f.is_adaptive_bit_rate = Some(1), NOT_MATCH);
        check(|f| f.drm_type = Some("widevine".into()), NOT_MATCH);
        check(
            |f| {
                f.drm_type = Some("widevine".into());
                f.drm_tracks = Some("SD|HD".into());
            },
            NOT_MATCH,
        );
        check(
            |f| {
                f.drm_type = Some("widevine".into());
                f.drm_tracks = Some("AUDIO|HD".into());
            },
            None,
        );
        check(|f| f.audience_driven_transcode = Some(1), NOT_MATCH);
        check(
            |f| {
                f.ai_trans_code = Some(1);
                f.audience_driven_transcode = Some(1);
                f.adapt_bitrate_percent = Some(0.6);
                f.audience_threshold = Some(500);
            },
            None,
        );
        check(|f| f.adapt_bitrate_percent = Some(0.6), NOT_MATCH);
    }

    #[test]
    fn adaptive_children_need_equal_gops() {
        const GOP: Option<&str> = Some("InvalidParameter.GopMustEqualAndExists");
        let adaptive = |children: Vec<ChildTemplateInfo>| {
            move |f: &mut TemplateFields| {
                f.is_adaptive_bit_rate = Some(1);
                f.adaptive_children = Some(children);
            }
        };
        check(adaptive(vec![child(Some(2))]), None);
        check(adaptive(vec![child(None)]), GOP);
        check(adaptive(vec![child(Some(2)), child(Some(4))]), GOP);
        check(
            adaptive(vec![child(Some(1))]),
            Some("InvalidParameterValue"),
        );
        let mut bad_name = child(Some(2));
        bad_name.template_name = Some("low-1".into());
        check(
            adaptive(vec![bad_name]),
            Some("InvalidParameter.ArgsNotMatch"),
        );
        let mut unknown = child(Some(2));
        unknown.template_id = Some(99);
        check(adaptive(vec![unknown]), Some("InternalError.ConfNotFound"));
    }

    #[test]
    fn names_are_letters_and_digits() {
        assert!(check_name("900p", false).is_ok());
        assert!(check_name("a", false).is_ok());
        assert!(check_name("a", true).is_err(), "fast HD needs 3");
        for bad in ["", "hd_1", "abcdefghijk", "高清"] {
            assert_eq!(
                check_name(bad, false).expect_err(bad).code.as_str(),
                "InvalidParameter.ArgsNotMatch"
            );
        }
    }

    #[test]
    fn defaults_come_back_as_documented() {
        let t = Template {
            id: TemplateId(1001),
            account: livestack_core::AccountId(1),
            name: "hd".into(),
            description: String::new(),
            created_at: 0,
            updated_at: 0,
            spec: TemplateSpec::Transcode(TranscodeSpec {
                output: default_rendition(VideoCodec::H264),
                ..TranscodeSpec::default()
            }),
        };
        let info = serde_json::to_value(template_info(t)).expect("json");
        for (field, want) in [
            ("Vcodec", serde_json::json!("h264")),
            ("Acodec", serde_json::json!("aac")),
            ("Profile", serde_json::json!("baseline")),
            ("Gop", serde_json::json!(2)),
            ("Fps", serde_json::json!(0)),
            ("Width", serde_json::json!(0)),
            ("Rotate", serde_json::json!(0)),
            ("NeedVideo", serde_json::json!(1)),
            ("AiTransCode", serde_json::json!(0)),
            ("AdaptBitratePercent", serde_json::json!(0.0)),
            ("DRMType", serde_json::json!("")),
            ("IsAdaptiveBitRate", serde_json::json!(0)),
        ] {
            assert_eq!(info[field], want, "{field}");
        }
    }
}
