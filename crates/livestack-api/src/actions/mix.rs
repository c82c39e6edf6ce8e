//! Stream mixing (混流): `CreateCommonMixStream` and
//! `CancelCommonMixStream`.
//!
//! Owns: what a valid mix session is (inputs, layers, sizes, crops,
//! output, template and their codes), its stored layout (the core
//! [`MixLayout`] as JSON in `mix_sessions.spec`) and the media plane's
//! view of it ([`to_core`]). Must not: run anything (the media plane's
//! mix jobs do, from the policy).
//!
//! Inputs are named by stream name alone, as on CSS; each live input is
//! the caller's stream of that name being pushed when the session is
//! made (its push domain and app are kept with the session), and the
//! output is published on the push domain and app of the first live
//! input (of the replaced input for `OutputStreamType` 0).

use std::collections::HashSet;

use livestack_core::media::OnlineStream;
use livestack_core::mix::{
    Crop, Dim, MixInput, MixLayout, MixOutput, MixSession, MixSource, PlaceError, MAX_INPUTS,
    TEMPLATES,
};
use livestack_core::rules::{Kind, TemplateId, TemplateSpec};
use livestack_model::{
    CancelCommonMixStreamRequest, CancelCommonMixStreamResponse, CommonMixCropParams,
    CommonMixInputParam, CommonMixOutputParams, CreateCommonMixStreamRequest,
    CreateCommonMixStreamResponse,
};
use livestack_store::mixes::{self, MixRow};

use crate::actions::check::dry_run_stop;
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Bytes of a session id or an input or output name.
const MAX_NAME: usize = 80;
/// The sample rates `OutputAudioSampleRate` may take.
const SAMPLE_RATES: [i64; 12] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
];

fn code(code: ErrorCode, en: String, zh: String) -> ApiError {
    ApiError::new(code, en, zh)
}

/// `InvalidParameter.OtherError` for an option livestack cannot honour.
fn unsupported(what: &str) -> ApiError {
    code(
        ErrorCode::InvalidParameterOtherError,
        format!("{what} is not supported by livestack's mixer."),
        format!("livestack 混流暂不支持 {what}。"),
    )
}

/// 1 to 80 letters, digits and `_`, as CSS allows in these names.
fn check_name(label: &str, value: &str) -> ApiResult<()> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NAME
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(code(
            ErrorCode::InvalidParameter,
            format!("{label} `{value}` must be 1 to {MAX_NAME} letters, digits or `_`."),
            format!("{label} `{value}` 须为 1~{MAX_NAME} 个字母、数字或下划线。"),
        ))
    }
}

fn no_background() -> ApiError {
    code(
        ErrorCode::InvalidParameterInvalidLayerParam,
        "One input must be the background, ImageLayer 1.".into(),
        "须有一路输入为背景（ImageLayer 为 1）。".into(),
    )
}

fn layer_error(name: &str, why: &str, zh: &str) -> ApiError {
    code(
        ErrorCode::InvalidParameterInvalidLayerParam,
        format!("Input `{name}`: {why}"),
        format!("输入 `{name}`：{zh}"),
    )
}

/// A pixel-or-fraction layout value.
fn dim(name: &str, field: &str, v: Option<f64>) -> ApiResult<Option<Dim>> {
    let Some(v) = v else { return Ok(None) };
    Dim::from_wire(v).map(Some).ok_or_else(|| {
        layer_error(
            name,
            &format!("{field} must be pixels in [0, 2000] or a fraction in [0.01, 0.99], not {v}."),
            &format!("{field} 须为 [0, 2000] 的像素值或 [0.01, 0.99] 的比例，当前为 {v}。"),
        )
    })
}

/// `0xRRGGBB` (or `#RRGGBB`).
fn color(name: &str, v: Option<&str>) -> ApiResult<u32> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let hex = v
        .strip_prefix("0x")
        .or_else(|| v.strip_prefix("0X"))
        .or_else(|| v.strip_prefix('#'))
        .unwrap_or(v);
    match u32::from_str_radix(hex, 16) {
        Ok(c) if hex.len() == 6 => Ok(c),
        _ => Err(layer_error(
            name,
            &format!("Color must be 0xRRGGBB, not `{v}`."),
            &format!("Color 须为 0xRRGGBB 格式，当前为 `{v}`。"),
        )),
    }
}

fn crop(name: &str, c: Option<&CommonMixCropParams>) -> ApiResult<Option<Crop>> {
    let Some(c) = c else { return Ok(None) };
    let values = [
        c.crop_width,
        c.crop_height,
        c.crop_start_location_x,
        c.crop_start_location_y,
    ];
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut px = [0u32; 4];
    for (out, v) in px.iter_mut().zip(values) {
        let v = v.unwrap_or(0.0);
        if !(0.0..=2000.0).contains(&v) {
            return Err(code(
                ErrorCode::InvalidParameterInvalidCropParam,
                format!("Input `{name}`: crop values must be pixels in [0, 2000], not {v}."),
                format!("输入 `{name}`：裁剪参数须为 [0, 2000] 的像素值，当前为 {v}。"),
            ));
        }
        *out = v.round() as u32;
    }
    if px[0] == 0 || px[1] == 0 {
        return Err(code(
            ErrorCode::InvalidParameterInvalidCropParam,
            format!("Input `{name}`: CropWidth and CropHeight must be given and above 0."),
            format!("输入 `{name}`：CropWidth 与 CropHeight 须大于 0。"),
        ));
    }
    Ok(Some(Crop {
        width: px[0],
        height: px[1],
        x: px[2],
        y: px[3],
    }))
}

/// One input as the caller gave it, without its stream's place (filled
/// in from the online streams).
fn input(p: &CommonMixInputParam) -> ApiResult<MixInput> {
    let name = p.input_stream_name.trim();
    check_name("InputStreamName", name)?;
    if p.portrait_segment_params.is_some() {
        return Err(unsupported("PortraitSegmentParams (matting)"));
    }
    let l = &p.layout_params;
    if !(1..=16).contains(&l.image_layer) {
        return Err(layer_error(
            name,
            &format!("ImageLayer must be 1 to 16, not {}.", l.image_layer),
            &format!("ImageLayer 取值范围为 1~16，当前为 {}。", l.image_layer),
        ));
    }
    let stream = |audio, video| MixSource::Stream {
        domain: String::new(),
        app: String::new(),
        audio,
        video,
    };
    let source = match l.input_type.unwrap_or(0) {
        0 => stream(true, true),
        4 => stream(true, false),
        5 => stream(false, true),
        2 => {
            let id = l.watermark_id.filter(|&id| id > 0).ok_or_else(|| {
                code(
                    ErrorCode::InvalidParameterInvalidPictureId,
                    format!("Input `{name}` is a picture (InputType 2): WatermarkId must name one of your watermarks."),
                    format!("输入 `{name}` 为图片（InputType 2），须填写本账号的水印 WatermarkId。"),
                )
            })?;
            MixSource::Picture { watermark: id }
        }
        3 => MixSource::Canvas {
            color: color(name, l.color.as_deref())?,
        },
        8 => return Err(unsupported("a web page input (InputType 8)")),
        other => {
            return Err(layer_error(
                name,
                &format!("InputType must be 0, 2, 3, 4 or 5, not {other}."),
                &format!("InputType 须为 0、2、3、4 或 5，当前为 {other}。"),
            ))
        }
    };
    Ok(MixInput {
        name: name.to_owned(),
        source,
        layer: l.image_layer as u32,
        width: dim(name, "ImageWidth", l.image_width)?,
        height: dim(name, "ImageHeight", l.image_height)?,
        x: dim(name, "LocationX", l.location_x)?,
        y: dim(name, "LocationY", l.location_y)?,
        crop: crop(name, p.crop_params.as_ref())?,
    })
}

/// An optional number within `min..=max`, 0 when unset.
fn setting(err: ErrorCode, name: &str, v: Option<i64>, min: i64, max: i64) -> ApiResult<u32> {
    match v {
        None | Some(0) => Ok(0),
        Some(v) if (min..=max).contains(&v) => Ok(v as u32),
        Some(v) => Err(code(
            err,
            format!("{name} must be between {min} and {max}, not {v}."),
            format!("{name} 的取值范围为 {min}~{max}，当前为 {v}。"),
        )),
    }
}

fn output(o: &CommonMixOutputParams) -> ApiResult<MixOutput> {
    let stream = o.output_stream_name.trim();
    check_name("OutputStreamName", stream)?;
    if o.mix_sei.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(unsupported("MixSei"));
    }
    let replaces_input = match o.output_stream_type.unwrap_or(0) {
        0 => true,
        1 => false,
        other => {
            return Err(code(
                ErrorCode::InvalidParameterInvalidOutputType,
                format!("OutputStreamType must be 0 or 1, not {other}."),
                format!("OutputStreamType 须为 0 或 1，当前为 {other}。"),
            ))
        }
    };
    let sample_rate = match o.output_audio_sample_rate {
        None | Some(0) => 0,
        Some(r) if SAMPLE_RATES.contains(&r) => r as u32,
        Some(r) => {
            return Err(code(
                ErrorCode::InvalidParameter,
                format!("OutputAudioSampleRate must be one of {SAMPLE_RATES:?}, not {r}."),
                format!("OutputAudioSampleRate 须为 {SAMPLE_RATES:?} 之一，当前为 {r}。"),
            ))
        }
    };
    use ErrorCode::{InvalidParameter as Bad, InvalidParameterInvalidBitrate as Rate};
    Ok(MixOutput {
        stream: stream.to_owned(),
        domain: String::new(),
        app: String::new(),
        replaces_input,
        video_kbps: setting(
            Rate,
            "OutputStreamBitRate",
            o.output_stream_bit_rate,
            1,
            10_000,
        )?,
        gop_secs: setting(Bad, "OutputStreamGop", o.output_stream_gop, 1, 10)?,
        fps: setting(
            Bad,
            "OutputStreamFrameRate",
            o.output_stream_frame_rate,
            1,
            60,
        )?,
        audio_kbps: setting(Rate, "OutputAudioBitRate", o.output_audio_bit_rate, 1, 500)?,
        sample_rate,
        channels: setting(Bad, "OutputAudioChannels", o.output_audio_channels, 1, 2)?,
    })
}

/// The caller's live push named `name`, preferring one on `near`'s push
/// domain and app.
fn find_online<'a>(
    online: &'a [OnlineStream],
    name: &str,
    near: Option<(&str, &str)>,
) -> Option<&'a OnlineStream> {
    let mut named = online.iter().filter(|s| s.key.stream == name);
    let first = named.clone().next();
    near.and_then(|(d, a)| named.find(|s| s.domain == d && s.key.app == a))
        .or(first)
}

/// Checks the request and builds the session's layout from it and the
/// caller's live streams.
fn layout(req: &CreateCommonMixStreamRequest, online: &[OnlineStream]) -> ApiResult<MixLayout> {
    let n = req.input_stream_list.len();
    if n > MAX_INPUTS {
        return Err(code(
            ErrorCode::InvalidParameterInputNumLimitExceeded,
            format!("A mix takes at most {MAX_INPUTS} inputs, not {n}."),
            format!("混流输入最多 {MAX_INPUTS} 路，当前为 {n} 路。"),
        ));
    }
    let mut inputs = req
        .input_stream_list
        .iter()
        .map(input)
        .collect::<ApiResult<Vec<_>>>()?;
    inputs.sort_by_key(|i| i.layer);
    let mut layers = HashSet::new();
    let mut names = HashSet::new();
    for i in &inputs {
        if !layers.insert(i.layer) {
            return Err(layer_error(
                &i.name,
                &format!("ImageLayer {} is used by another input.", i.layer),
                &format!("ImageLayer {} 与其他输入重复。", i.layer),
            ));
        }
        if !names.insert(i.name.clone()) {
            return Err(layer_error(
                &i.name,
                "another input has the same name.",
                "与其他输入重名。",
            ));
        }
    }
    if inputs.first().map(|i| i.layer) != Some(1) {
        return Err(no_background());
    }
    let template = req.mix_stream_template_id.unwrap_or(0);
    if template != 0 {
        match TEMPLATES.iter().find(|(id, _)| *id == template) {
            Some((_, k)) if *k == n => {}
            Some((_, k)) => {
                return Err(code(
                    ErrorCode::InvalidParameterTemplateNotMatchInputNum,
                    format!("Template {template} takes {k} inputs, not {n}."),
                    format!("模板 {template} 需要 {k} 路输入，当前为 {n} 路。"),
                ))
            }
            None => {
                return Err(code(
                    ErrorCode::InvalidParameterTemplateNotMatchInputNum,
                    format!(
                        "There is no mix template {template}; the templates are {:?}.",
                        TEMPLATES.map(|t| t.0)
                    ),
                    format!(
                        "不存在混流模板 {template}，可用模板为 {:?}。",
                        TEMPLATES.map(|t| t.0)
                    ),
                ))
            }
        }
    }
    // Each live input is the caller's push of that name now; the first
    // fixes where the rest are looked for first.
    let mut near: Option<(String, String)> = None;
    for i in &mut inputs {
        let MixSource::Stream { domain, app, .. } = &mut i.source else {
            continue;
        };
        let s = find_online(
            online,
            &i.name,
            near.as_ref().map(|(d, a)| (d.as_str(), a.as_str())),
        )
        .ok_or_else(|| {
            code(
                ErrorCode::FailedOperationStreamNotExist,
                format!(
                    "The input stream `{}` is not being pushed: a mix starts from live streams.",
                    i.name
                ),
                format!(
                    "输入流 `{}` 不存在（未在推流），混流需要输入流正在推流。",
                    i.name
                ),
            )
        })?;
        *domain = s.domain.clone();
        *app = s.key.app.clone();
        near.get_or_insert_with(|| (s.domain.clone(), s.key.app.clone()));
    }
    let Some((domain, app)) = near else {
        return Err(code(
            ErrorCode::InvalidParameterInvalidLayerParam,
            "A mix needs at least one live stream input (InputType 0, 4 or 5).".into(),
            "混流至少需要一路直播流输入（InputType 为 0、4 或 5）。".into(),
        ));
    };
    let mut out = output(&req.output_params)?;
    if out.replaces_input {
        let replaced = inputs
            .iter()
            .find(|i| i.name == out.stream && i.stream().is_some())
            .ok_or_else(|| {
                code(
                    ErrorCode::InvalidParameterInvalidOutputType,
                    format!("OutputStreamType 0 makes the mix replace one of its live inputs, and `{}` is none of them; use OutputStreamType 1 for a new stream.", out.stream),
                    format!("OutputStreamType 为 0 时输出流须为输入流之一，`{}` 不是；新流请用 OutputStreamType 1。", out.stream),
                )
            })?;
        let (d, a) = replaced.stream().unwrap_or_default();
        (out.domain, out.app) = (d.to_owned(), a.to_owned());
    } else {
        if names.contains(&out.stream) {
            return Err(code(
                ErrorCode::InvalidParameterInvalidOutputStreamId,
                format!("The output stream `{}` is one of the inputs; with OutputStreamType 1 it must be a new stream.", out.stream),
                format!("输出流 `{}` 与输入流重名，OutputStreamType 为 1 时须为新流。", out.stream),
            ));
        }
        (out.domain, out.app) = (domain, app);
    }
    let control = req.control_params.as_ref();
    let flag = |v: Option<i64>| v == Some(1);
    if control.is_some_and(|c| flag(c.pass_input_sei)) {
        return Err(unsupported("PassInputSei"));
    }
    let l = MixLayout {
        inputs,
        output: out,
        template,
        crop_center: control.is_some_and(|c| flag(c.use_mix_crop_center)),
        picture_alpha: control.is_some_and(|c| flag(c.use_picture_transparent)),
    };
    // The geometry must hold for the inputs as they are now.
    let size = |i: &MixInput| {
        let (d, a) = i.stream()?;
        online
            .iter()
            .find(|s| s.key.stream == i.name && s.domain == d && s.key.app == a)
            .filter(|s| s.width > 0 && s.height > 0)
            .map(|s| (s.width, s.height))
    };
    match l.place(&size) {
        Ok(_) => Ok(l),
        Err(PlaceError::NoBackground) => Err(no_background()),
        Err(PlaceError::BackgroundSize) => match l.background().map(|b| &b.source) {
            Some(MixSource::Stream { .. }) => Err(code(
                ErrorCode::FailedOperationGetStreamResolutionError,
                "The background stream's picture size is not known yet (no video seen); give ImageWidth and ImageHeight or retry once it plays.".into(),
                "暂时无法获取背景流的长宽（尚无视频），请填写 ImageWidth 与 ImageHeight 或稍后重试。".into(),
            )),
            _ => Err(code(
                ErrorCode::InvalidParameterInvalidBackgroudResolution,
                "The background (ImageLayer 1) needs ImageWidth and ImageHeight in pixels.".into(),
                "背景（ImageLayer 1）须以像素填写 ImageWidth 与 ImageHeight。".into(),
            )),
        },
        Err(PlaceError::Crop(name)) => Err(code(
            ErrorCode::InvalidParameterInvalidCropParam,
            format!("Input `{name}`: the crop reaches outside its picture."),
            format!("输入 `{name}`：裁剪区域超出原始画面。"),
        )),
    }
}

/// The media plane's view of a stored session, `None` when its layout
/// does not read (written by a newer livestack).
pub(crate) fn to_core(row: &MixRow) -> Option<MixSession> {
    Some(MixSession {
        id: row.id,
        account: row.account,
        session_id: row.session_id.clone(),
        layout: serde_json::from_value(row.spec.clone()).ok()?,
        generation: row.generation,
    })
}

/// Starts a mix session, or changes the layout of a running one (the
/// same `MixStreamSessionId`).
pub async fn create_common_mix_stream(
    cx: Cx,
    req: CreateCommonMixStreamRequest,
) -> ApiResult<CreateCommonMixStreamResponse> {
    let session_id = req.mix_stream_session_id.trim().to_owned();
    check_name("MixStreamSessionId", &session_id)?;
    let online = cx.media.online(cx.account);
    let l = layout(&req, &online)?;
    let spec =
        serde_json::to_value(&l).map_err(|e| ApiError::internal(ErrorCode::InternalError, e))?;
    let (account, now, dry_run) = (cx.account, cx.now, cx.dry_run);
    let pictures: Vec<i64> = l
        .inputs
        .iter()
        .filter_map(|i| match i.source {
            MixSource::Picture { watermark } => Some(watermark),
            _ => None,
        })
        .collect();
    let taken = online.iter().any(|s| s.key.stream == l.output.stream);
    cx.store
        .transaction(move |c| {
            for id in pictures {
                let found = livestack_store::templates::find(c, account, Kind::Watermark, TemplateId(id))?;
                if !found.is_some_and(|t| matches!(t.spec, TemplateSpec::Watermark(_))) {
                    return Err(code(
                        ErrorCode::InvalidParameterInvalidPictureId,
                        format!("WatermarkId {id} is not one of your watermarks."),
                        format!("WatermarkId {id} 不是本账号的水印。"),
                    ));
                }
            }
            let existing = mixes::find(c, account, &session_id)?;
            let previous: Option<MixLayout> = existing
                .as_ref()
                .and_then(|row| serde_json::from_value(row.spec.clone()).ok());
            if let Some(p) = &previous {
                if p.output.stream != l.output.stream {
                    return Err(code(
                        ErrorCode::InvalidParameterSessionOutputStreamChanged,
                        format!("Session {session_id} publishes `{}`; a session's output stream cannot change (cancel it and start another).", p.output.stream),
                        format!("会话 {session_id} 的输出流为 `{}`，同一会话输出流不可变更（请取消后重新发起）。", p.output.stream),
                    ));
                }
            }
            // A new stream must not be one being pushed already, unless
            // it is this session's own output.
            if !l.output.replaces_input && taken && previous.is_none() {
                return Err(code(
                    ErrorCode::InvalidParameterInvalidOutputStreamId,
                    format!("The output stream `{}` is being pushed already.", l.output.stream),
                    format!("输出流 `{}` 已存在（正在推流）。", l.output.stream),
                ));
            }
            dry_run_stop(dry_run)?;
            mixes::put(c, account, &session_id, &spec, now)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    cx.publish_policy().await?;
    Ok(CreateCommonMixStreamResponse {})
}

/// Ends a mix session: its output stops.
pub async fn cancel_common_mix_stream(
    cx: Cx,
    req: CancelCommonMixStreamRequest,
) -> ApiResult<CancelCommonMixStreamResponse> {
    let session_id = req.mix_stream_session_id.trim().to_owned();
    let (account, dry_run) = (cx.account, cx.dry_run);
    cx.store
        .transaction(move |c| {
            if mixes::find(c, account, &session_id)?.is_none() {
                return Err(code(
                    ErrorCode::InvalidParameterCancelSessionNotExist,
                    format!("There is no mix session `{session_id}`."),
                    format!("混流会话 `{session_id}` 不存在。"),
                ));
            }
            dry_run_stop(dry_run)?;
            mixes::delete(c, account, &session_id)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    cx.publish_policy().await?;
    Ok(CancelCommonMixStreamResponse {})
}
