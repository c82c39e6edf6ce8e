//! Watermarks and watermark rules: `AddLiveWatermark`, `UpdateLiveWatermark`,
//! `DeleteLiveWatermark`, `DescribeLiveWatermark(s)`,
//! `Create/DeleteLiveWatermarkRule`, `DescribeLiveWatermarkRules`.
//!
//! Owns: fetching the picture once (http or https, at most 10 MB within
//! 10 s, PNG or JPEG by its magic bytes) and handing the bytes to the store,
//! which keeps them under `<data dir>/watermarks/`; the documented ranges
//! (positions and sizes in percent, canvas 360–4096 px, default
//! 1920×1080) and codes (`InvalidParameter` for a bad Add,
//! `InternalError.WatermarkEditError` for a bad Update,
//! `InternalError.GetWatermarkError` with the reason when the picture
//! cannot be had). Must not: draw watermarks (the media plane does).

use livestack_core::rules::{Kind, Picture, PictureFormat, Template, TemplateSpec, WatermarkSpec};
use livestack_model::{
    AddLiveWatermarkRequest, AddLiveWatermarkResponse, CreateLiveWatermarkRuleRequest,
    CreateLiveWatermarkRuleResponse, DeleteLiveWatermarkRequest, DeleteLiveWatermarkResponse,
    DeleteLiveWatermarkRuleRequest, DeleteLiveWatermarkRuleResponse, DescribeLiveWatermarkRequest,
    DescribeLiveWatermarkResponse, DescribeLiveWatermarkRulesRequest,
    DescribeLiveWatermarkRulesResponse, DescribeLiveWatermarksRequest,
    DescribeLiveWatermarksResponse, UpdateLiveWatermarkRequest, UpdateLiveWatermarkResponse,
    WatermarkInfo,
};
use livestack_store::templates;

use super::check::{ranged, recode};
use super::processing as shared;
use crate::cx::Cx;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::time::beijing_iso;

/// The largest picture accepted.
pub const MAX_PICTURE_BYTES: usize = 10 * 1024 * 1024;
pub use crate::settings::FETCH_TIMEOUT;
/// Canvas size when none is given.
const DEFAULT_BACKGROUND: (u32, u32) = (1920, 1080);
/// Characters the documentation forbids in `PictureUrl`.
const FORBIDDEN_URL_CHARS: &[char] = &[';', '(', ')', '{', '}', '$', '>', '`', '#', '"', '\'', '|'];

/// The settings an Add or Update request gives; `None` leaves a setting
/// as it is (Add starts from the defaults).
#[derive(Clone)]
struct WatermarkFields {
    name: Option<String>,
    x: Option<i64>,
    y: Option<i64>,
    width: Option<i64>,
    height: Option<i64>,
    background_width: Option<i64>,
    background_height: Option<i64>,
}

macro_rules! watermark_fields {
    ($r:expr) => {
        WatermarkFields {
            name: $r.watermark_name.clone().into(),
            x: $r.x_position.into(),
            y: $r.y_position.into(),
            width: $r.width,
            height: $r.height,
            background_width: $r.background_width,
            background_height: $r.background_height,
        }
    };
}

/// Checks a picture URL: http or https, none of the forbidden characters.
fn check_picture_url(url: &str) -> ApiResult<()> {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    if scheme_ok
        && url.len() <= 1024
        && !url.contains(FORBIDDEN_URL_CHARS)
        && !url.contains(char::is_whitespace)
    {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::InvalidParameterValue,
        format!("PictureUrl `{url}` must be an http:// or https:// URL without any of ;(){{}}$>`#\"'| or spaces."),
        format!("PictureUrl `{url}` 须为 http:// 或 https:// 地址，且不含 ;(){{}}$>`#\"'| 或空格。"),
    ))
}

/// Applies the settings to `spec` and returns the name to keep.
fn apply(spec: &mut WatermarkSpec, name: &mut String, f: WatermarkFields) -> ApiResult<()> {
    if let Some(n) = f.name {
        if n.trim().is_empty() || n.len() > 30 {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!("WatermarkName `{n}` must be 1 to 30 bytes long."),
                format!("WatermarkName `{n}` 长度须为 1~30 字节。"),
            ));
        }
        *name = n;
    }
    let percents = [
        ("XPosition", f.x, &mut spec.x),
        ("YPosition", f.y, &mut spec.y),
        ("Width", f.width, &mut spec.width),
        ("Height", f.height, &mut spec.height),
    ];
    for (label, value, slot) in percents {
        if let Some(v) = value {
            *slot = ranged(label, v, 0, 100)?;
        }
    }
    let canvas = [
        (
            "BackgroundWidth",
            f.background_width,
            &mut spec.background_width,
        ),
        (
            "BackgroundHeight",
            f.background_height,
            &mut spec.background_height,
        ),
    ];
    for (label, value, slot) in canvas {
        if let Some(v) = value {
            *slot = ranged(label, v, 360, 4096)?;
        }
    }
    Ok(())
}

/// `InternalError.GetWatermarkError` saying why.
fn fetch_error(url: &str, why_en: &str, why_zh: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InternalErrorGetWatermarkError,
        format!("The watermark picture {url} could not be fetched: {why_en}."),
        format!("获取水印图片 {url} 失败：{why_zh}。"),
    )
}

/// The size of a PNG (from its IHDR chunk) or JPEG (from its first SOF
/// segment), `None` for anything else.
pub fn sniff_picture(bytes: &[u8]) -> Option<(PictureFormat, u32, u32)> {
    let be16 = |at: usize| -> Option<u32> {
        Some(u32::from(u16::from_be_bytes([
            *bytes.get(at)?,
            *bytes.get(at + 1)?,
        ])))
    };
    let be32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let (format, width, height) = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        if bytes.get(12..16)? != b"IHDR" {
            return None;
        }
        (PictureFormat::Png, be32(16)?, be32(20)?)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        let mut at = 2;
        loop {
            if *bytes.get(at)? != 0xFF {
                return None;
            }
            let marker = *bytes.get(at + 1)?;
            match marker {
                // Fill bytes before a marker.
                0xFF => at += 1,
                // Markers without a length.
                0x01 | 0xD0..=0xD7 => at += 2,
                // Start of frame (not DHT 0xC4, JPG 0xC8, DAC 0xCC): the size.
                0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                    break (PictureFormat::Jpeg, be16(at + 7)?, be16(at + 5)?);
                }
                // End of image or start of scan before any frame header.
                0xD9 | 0xDA => return None,
                _ => at += 2 + usize::try_from(be16(at + 2)?).ok()?,
            }
        }
    } else {
        return None;
    };
    (width > 0 && height > 0).then_some((format, width, height))
}

/// Fetches a picture once and checks it is a PNG or JPEG of at most
/// [`MAX_PICTURE_BYTES`].
async fn fetch_picture(
    fetch: &livestack_net::Fetcher,
    url: &str,
) -> ApiResult<(Vec<u8>, PictureFormat, u32, u32)> {
    // One message for a refused address, a closed port and a host that
    // does not answer: the answer must not map the server's network.
    let unreachable = || fetch_error(url, "the server could not be reached", "无法连接该服务器");
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            let secs = FETCH_TIMEOUT.as_secs();
            fetch_error(
                url,
                &format!("no complete answer within {secs} s"),
                &format!("{secs} 秒内未完成下载"),
            )
        } else if e.is_connect() || livestack_net::is_refused(&e) {
            unreachable()
        } else {
            let why = format!("{:#}", anyhow::Error::new(e));
            fetch_error(url, &why, &why)
        }
    };
    use livestack_net::GetError;
    let bytes = fetch
        .get_bounded(url, MAX_PICTURE_BYTES)
        .await
        .map_err(|e| match e {
            GetError::Refused(_) => unreachable(),
            GetError::Http(e) => failed(e),
            GetError::Status(status) => fetch_error(
                url,
                &format!("the server answered HTTP {status}"),
                &format!("服务器返回 HTTP {status}"),
            ),
            GetError::TooLarge(_) => {
                let mb = MAX_PICTURE_BYTES / (1024 * 1024);
                fetch_error(
                    url,
                    &format!("it is larger than {mb} MB"),
                    &format!("图片超过 {mb} MB"),
                )
            }
        })?;
    let (format, width, height) = sniff_picture(&bytes).ok_or_else(|| {
        fetch_error(
            url,
            "it is not a PNG or JPEG image",
            "不是 PNG 或 JPEG 图片",
        )
    })?;
    Ok((bytes, format, width, height))
}

/// Fetches `url` and keeps the picture in the store's picture folder.
pub(crate) async fn fetch_and_keep(cx: &Cx, url: &str) -> ApiResult<Picture> {
    let (bytes, format, width, height) = fetch_picture(&cx.fetch, url).await?;
    // Nothing is kept for a dry run: it stops once the picture checks out.
    cx.commit_point()?;
    let dir = templates::picture_dir(&cx.store);
    let size = bytes.len() as u64;
    let file = cx
        .store
        .run(move |_| templates::save_picture(&dir, &bytes, format.extension()))
        .await?;
    Ok(Picture {
        file,
        format,
        width,
        height,
        size,
    })
}

/// Removes a kept picture; a failure is only logged (an orphan file is
/// harmless, and the API change it follows has happened).
async fn forget_picture(cx: &Cx, picture: &Picture) {
    let dir = templates::picture_dir(&cx.store);
    let file = picture.file.clone();
    if let Err(e) = cx
        .store
        .run(move |_| templates::remove_picture(&dir, &file))
        .await
    {
        tracing::warn!(
            request_id = &*cx.request_id,
            "could not remove a watermark picture: {e}"
        );
    }
}

/// Adds a watermark: checks the settings and the quota (100), fetches the
/// picture, keeps it and stores the watermark.
pub async fn add_live_watermark(
    cx: Cx,
    req: AddLiveWatermarkRequest,
) -> ApiResult<AddLiveWatermarkResponse> {
    let invalid = |e| recode(e, ErrorCode::InvalidParameter);
    let url = req.picture_url.trim().to_owned();
    check_picture_url(&url).map_err(invalid)?;
    let mut spec = WatermarkSpec {
        source_url: url.clone(),
        background_width: DEFAULT_BACKGROUND.0,
        background_height: DEFAULT_BACKGROUND.1,
        ..WatermarkSpec::default()
    };
    let mut name = String::new();
    apply(&mut spec, &mut name, watermark_fields!(req)).map_err(invalid)?;
    shared::precheck_quota(&cx, Kind::Watermark).await?;
    spec.picture = fetch_and_keep(&cx, &url).await?;
    let picture = spec.picture.clone();
    match shared::create_template(&cx, name, String::new(), TemplateSpec::Watermark(spec)).await {
        Ok(t) => Ok(AddLiveWatermarkResponse {
            watermark_id: u64::try_from(t.id.0).unwrap_or(0),
        }),
        Err(e) => {
            forget_picture(&cx, &picture).await;
            Err(e)
        }
    }
}

/// Changes a watermark. A new `PictureUrl` is fetched and replaces the
/// kept picture; the same URL keeps the picture already fetched.
pub async fn update_live_watermark(
    cx: Cx,
    req: UpdateLiveWatermarkRequest,
) -> ApiResult<UpdateLiveWatermarkResponse> {
    let invalid = |e| recode(e, ErrorCode::InternalErrorWatermarkEditError);
    let url = req.picture_url.trim().to_owned();
    check_picture_url(&url).map_err(invalid)?;
    let fields = watermark_fields!(req);
    let current = shared::get_template(&cx, Kind::Watermark, req.watermark_id).await?;
    let TemplateSpec::Watermark(mut checked) = current.spec else {
        return Err(shared::missing_template(Kind::Watermark, req.watermark_id));
    };
    // Checked on a copy first, so that a bad request fetches nothing; the
    // change itself applies to the template as stored when it is written.
    apply(&mut checked, &mut current.name.clone(), fields.clone()).map_err(invalid)?;
    let new_picture = if checked.source_url == url {
        None
    } else {
        Some(fetch_and_keep(&cx, &url).await?)
    };
    let changed = new_picture.clone();
    let result = shared::modify_template(&cx, Kind::Watermark, req.watermark_id, move |t| {
        if let TemplateSpec::Watermark(spec) = &mut t.spec {
            apply(spec, &mut t.name, fields).map_err(invalid)?;
            if let Some(p) = changed {
                spec.picture = p;
                spec.source_url = url;
            }
        }
        Ok(())
    })
    .await;
    match (result, new_picture) {
        (Ok((before, _)), Some(_)) => {
            if let TemplateSpec::Watermark(old) = &before.spec {
                forget_picture(&cx, &old.picture).await;
            }
            Ok(UpdateLiveWatermarkResponse {})
        }
        (Ok(_), None) => Ok(UpdateLiveWatermarkResponse {}),
        (Err(e), Some(p)) => {
            forget_picture(&cx, &p).await;
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

/// Deletes a watermark no rule uses, and its picture.
pub async fn delete_live_watermark(
    cx: Cx,
    req: DeleteLiveWatermarkRequest,
) -> ApiResult<DeleteLiveWatermarkResponse> {
    let deleted = shared::delete_template(&cx, Kind::Watermark, req.watermark_id).await?;
    if let TemplateSpec::Watermark(spec) = &deleted.spec {
        forget_picture(&cx, &spec.picture).await;
    }
    Ok(DeleteLiveWatermarkResponse {})
}

/// One watermark.
pub async fn describe_live_watermark(
    cx: Cx,
    req: DescribeLiveWatermarkRequest,
) -> ApiResult<DescribeLiveWatermarkResponse> {
    let id = i64::try_from(req.watermark_id).unwrap_or(i64::MAX);
    let t = shared::get_template(&cx, Kind::Watermark, id).await?;
    let in_use = in_use(&cx).await?;
    Ok(DescribeLiveWatermarkResponse {
        watermark: Some(watermark_info(t, &in_use)),
    })
}

/// The caller's watermarks, optionally only those whose name contains
/// `Name`, one page (`PageNo` from 1, `PageSize` 500 by default) at a time.
pub async fn describe_live_watermarks(
    cx: Cx,
    req: DescribeLiveWatermarksRequest,
) -> ApiResult<DescribeLiveWatermarksResponse> {
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let page_no = super::check::check_range("PageNo", req.page_no.map_or(1, to_i64), 1, i64::MAX)?;
    let page_size =
        super::check::check_range("PageSize", req.page_size.map_or(500, to_i64), 1, i64::MAX)?;
    let name = req.name.unwrap_or_default();
    let in_use = in_use(&cx).await?;
    let all: Vec<Template> = shared::list_templates(&cx, Kind::Watermark)
        .await?
        .into_iter()
        .filter(|t| t.name.contains(&name))
        .collect();
    let skip = usize::try_from((page_no - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
    Ok(DescribeLiveWatermarksResponse {
        total_num: all.len() as u64,
        watermark_list: all
            .into_iter()
            .skip(skip)
            .take(usize::try_from(page_size).unwrap_or(usize::MAX))
            .map(|t| watermark_info(t, &in_use))
            .collect(),
    })
}

/// Binds a watermark (`TemplateId` is the `WatermarkId`) to a push domain,
/// app or stream.
pub async fn create_live_watermark_rule(
    cx: Cx,
    req: CreateLiveWatermarkRuleRequest,
) -> ApiResult<CreateLiveWatermarkRuleResponse> {
    let at = shared::at(req.domain_name, req.app_name, req.stream_name);
    shared::create_rule(&cx, Kind::Watermark, at, req.template_id).await?;
    Ok(CreateLiveWatermarkRuleResponse {})
}

/// Deletes the watermark rule at a domain, app and stream.
pub async fn delete_live_watermark_rule(
    cx: Cx,
    req: DeleteLiveWatermarkRuleRequest,
) -> ApiResult<DeleteLiveWatermarkRuleResponse> {
    let at = shared::at(req.domain_name, req.app_name, req.stream_name);
    shared::delete_rule(&cx, Kind::Watermark, at, None).await?;
    Ok(DeleteLiveWatermarkRuleResponse {})
}

/// The caller's watermark rules (times in the ISO form of the official
/// example).
pub async fn describe_live_watermark_rules(
    cx: Cx,
    _req: DescribeLiveWatermarkRulesRequest,
) -> ApiResult<DescribeLiveWatermarkRulesResponse> {
    let rules = shared::list_rules(&cx, Kind::Watermark).await?;
    Ok(DescribeLiveWatermarkRulesResponse {
        rules: Some(
            rules
                .into_iter()
                .map(|r| shared::rule_info(r, beijing_iso))
                .collect(),
        ),
    })
}

/// The ids of the caller's watermarks that a rule uses.
async fn in_use(cx: &Cx) -> ApiResult<Vec<i64>> {
    Ok(shared::list_rules(cx, Kind::Watermark)
        .await?
        .iter()
        .map(|r| r.template.0)
        .collect())
}

/// A stored watermark on the wire; `Status` 1 while a rule uses it.
fn watermark_info(t: Template, in_use: &[i64]) -> WatermarkInfo {
    let TemplateSpec::Watermark(s) = t.spec else {
        return WatermarkInfo::default();
    };
    WatermarkInfo {
        watermark_id: t.id.0,
        picture_url: s.source_url,
        x_position: s.x.into(),
        y_position: s.y.into(),
        watermark_name: t.name,
        status: in_use.contains(&t.id.0).into(),
        create_time: beijing_iso(t.created_at),
        width: s.width.into(),
        height: s.height.into(),
        background_width: s.background_width.into(),
        background_height: s.background_height.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_recognised_by_their_magic_and_measured() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&[0, 0, 1, 0x40, 0, 0, 0, 0xF0, 8, 6, 0, 0, 0]);
        assert_eq!(sniff_picture(&png), Some((PictureFormat::Png, 320, 240)));
        // SOI, an APP0 segment of 16 bytes, then SOF0 with 8-bit samples, height 2, width 3.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        jpeg.extend_from_slice(&[0; 14]);
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x02, 0x00, 0x03, 0x03]);
        assert_eq!(sniff_picture(&jpeg), Some((PictureFormat::Jpeg, 3, 2)));
        for bad in [
            &b"GIF89a......"[..],
            b"<html>",
            b"",
            b"\x89PNG\r\n\x1a\n",
            &[0xFF, 0xD8, 0xFF, 0xD9],
        ] {
            assert_eq!(sniff_picture(bad), None, "{bad:?}");
        }
        let mut empty = png.clone();
        empty[16..20].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(sniff_picture(&empty), None, "zero width");
    }

    #[test]
    fn picture_urls_follow_the_documented_rules() {
        assert!(check_picture_url("https://cdn.example.com/logo.png?v=2").is_ok());
        for bad in [
            "ftp://x/logo.png",
            "http://x/a;b.png",
            "http://x/a|b",
            "logo.png",
            "http://x/a b",
        ] {
            assert!(check_picture_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_percentages_and_a_canvas() {
        let fields = |x, bg| WatermarkFields {
            name: Some("logo".into()),
            x: Some(x),
            y: None,
            width: None,
            height: None,
            background_width: bg,
            background_height: None,
        };
        let mut spec = WatermarkSpec::default();
        let mut name = String::new();
        assert!(apply(&mut spec, &mut name, fields(100, Some(360))).is_ok());
        assert_eq!(
            (name.as_str(), spec.x, spec.background_width),
            ("logo", 100, 360)
        );
        assert!(apply(&mut spec, &mut name, fields(101, None)).is_err());
        assert!(apply(&mut spec, &mut name, fields(0, Some(359))).is_err());
        let long = WatermarkFields {
            name: Some("x".repeat(31)),
            ..fields(0, None)
        };
        assert!(apply(&mut spec, &mut name, long).is_err());
    }
}
