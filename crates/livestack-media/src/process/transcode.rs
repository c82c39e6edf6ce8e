//! Transcoding and watermark jobs: ffmpeg reads the source from
//! livestack, re-encodes it and publishes the result back as an internal
//! push, which players then get like any live stream.
//!
//! Owns: choosing the rendition and watermark of an output from the
//! templates. Must not: build command lines by hand (`ffmpeg` does) or
//! decide when to run (the processor does).

use livestack_core::media::OnlineStream;
use livestack_core::rules::{Kind, Profile, Rendition, TemplateId, TemplateSpec, VideoCodec};

use super::ffmpeg::{self, Io};
use super::supervisor::{Ffmpeg, JobError};
use super::{Job, WATERMARKED};

/// The rendition a transcode template gives `output` (`base_name`): the
/// template's own for its name, a child's for an adaptive child's name.
fn rendition_for<'t>(
    spec: &'t TemplateSpec,
    template_name: &str,
    suffix: &str,
) -> Option<&'t Rendition> {
    let TemplateSpec::Transcode(t) = spec else {
        return None;
    };
    if suffix == template_name {
        return Some(&t.output);
    }
    t.children
        .iter()
        .find(|c| c.name == suffix)
        .map(|c| &c.output)
}

/// The rendition as it applies to a source measured as `source`:
/// `Origin` ("the source's codec") becomes the source's codec (re-encoded
/// in it: sizes and rates still change), and the "never above the
/// source" switches cap the bitrate, height and frame rate.
pub(crate) fn fit_to_source(r: &Rendition, source: Option<&OnlineStream>) -> Rendition {
    let mut r = r.clone();
    if r.video_codec == VideoCodec::Origin {
        r.video_codec = match source.map(|s| s.video_codec.as_str()) {
            Some("h265") => VideoCodec::H265,
            _ => VideoCodec::H264,
        };
    }
    let Some(s) = source else {
        return r;
    };
    let source_kbps = u32::try_from(s.video_bps / 1000).unwrap_or(u32::MAX);
    if r.bitrate_to_source
        && source_kbps > 0
        && (r.video_bitrate == 0 || source_kbps < r.video_bitrate)
    {
        r.video_bitrate = source_kbps;
    }
    if r.height_to_source && s.height > 0 && r.height > s.height {
        // The width follows, keeping the aspect ratio.
        (r.width, r.height) = (0, s.height);
    }
    let source_fps = s.fps.round() as u32;
    if r.fps_to_source && source_fps > 0 && r.fps > source_fps {
        r.fps = source_fps;
    }
    r
}

/// The rendition and profile the transcode template `id` gives `output`,
/// fitted to the source as it is now.
fn rung_for(job: &Job, id: TemplateId, output: &str) -> Result<(Rendition, Profile), JobError> {
    let template = job
        .template(id)
        .filter(|t| t.kind() == Kind::Transcode)
        .ok_or_else(|| JobError::Work(format!("transcode template {} is gone", id.0)))?;
    let suffix = output
        .strip_prefix(job.key.source.stream.as_str())
        .and_then(|s| s.strip_prefix('_'))
        .unwrap_or_default();
    let rendition = rendition_for(&template.spec, &template.name, suffix).ok_or_else(|| {
        JobError::Work(format!("template {} has no output {suffix}", template.name))
    })?;
    let profile = match &template.spec {
        TemplateSpec::Transcode(t) => t.profile,
        _ => Default::default(),
    };
    let source = job.inner.live(&job.key.source).map(|l| l.snapshot());
    Ok((fit_to_source(rendition, source.as_ref()), profile))
}

/// Produces `output` from the source with the transcode template `id`.
pub(super) async fn transcode(job: &Job, id: TemplateId, output: &str) -> Result<(), JobError> {
    let (rendition, profile) = rung_for(job, id, output)?;
    // Held until ffmpeg ends: the credentials die with the attempt.
    let (input, out) = (job.reader(&job.source_name(false))?, job.writer(output)?);
    let io = Io {
        input: input.url.clone(),
        output: out.url.clone(),
    };
    let args = ffmpeg::transcode(&io, &rendition, profile, None);
    let program = job.inner.config.ffmpeg.clone();
    let mut p = Ffmpeg::spawn(&program, &args, &job.label())?;
    p.run_until(&job.cancel).await
}

/// Produces several transcoded outputs of the source (template, output
/// name) from one decode: one ffmpeg, an encoder per output.
pub(super) async fn ladder(job: &Job, outputs: &[(TemplateId, String)]) -> Result<(), JobError> {
    let input = job.reader(&job.source_name(false))?;
    // Held until ffmpeg ends: the credentials die with the attempt.
    let mut passes = Vec::with_capacity(outputs.len());
    let mut rungs = Vec::with_capacity(outputs.len());
    for (id, output) in outputs {
        let (rendition, profile) = rung_for(job, *id, output)?;
        let pass = job.writer(output)?;
        rungs.push(ffmpeg::Rung {
            rendition,
            profile,
            output: pass.url.clone(),
        });
        passes.push(pass);
    }
    let args = ffmpeg::ladder(&input.url, &rungs);
    let program = job.inner.config.ffmpeg.clone();
    let mut p = Ffmpeg::spawn(&program, &args, &job.label())?;
    p.run_until(&job.cancel).await
}

/// The bitrate (kbps) a job re-encoding the source at the source's rate
/// aims at ([`Live::video_kbps_hint`]); for a push too young to have one
/// it waits for the first measuring window (a few seconds at most), then
/// takes 1500.
///
/// [`Live::video_kbps_hint`]: crate::stream::live::Live::video_kbps_hint
async fn video_kbps(job: &Job) -> u32 {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let hint = job
            .inner
            .live(&job.key.source)
            .map_or(0, |l| l.video_kbps_hint());
        if hint > 0 || tokio::time::Instant::now() >= deadline {
            return if hint == 0 { 1500 } else { hint };
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
            () = job.cancel.cancelled() => return 1500,
        }
    }
}

/// Lays the watermark `id` over the source, published as the source name
/// with [`WATERMARKED`].
pub(super) async fn watermark(job: &Job, id: TemplateId) -> Result<(), JobError> {
    let template = job
        .template(id)
        .ok_or_else(|| JobError::Work(format!("watermark {} is gone", id.0)))?;
    let TemplateSpec::Watermark(w) = &template.spec else {
        return Err(JobError::Work(format!(
            "template {} is not a watermark",
            id.0
        )));
    };
    let picture = job.policy.processing.picture_path(&w.picture);
    let kbps = video_kbps(job).await;
    let input = job.reader(&job.key.source.stream)?;
    let out = job.writer(&format!("{}{WATERMARKED}", job.key.source.stream))?;
    let io = Io {
        input: input.url.clone(),
        output: out.url.clone(),
    };
    let args = ffmpeg::watermark(&io, w, &picture.to_string_lossy(), kbps);
    let program = job.inner.config.ffmpeg.clone();
    let mut p = Ffmpeg::spawn(&program, &args, &job.label())?;
    p.run_until(&job.cancel).await
}

/// Re-encodes what players of the source get without B-frames, for
/// WebRTC players, published as the source name with
/// [`WEBRTC_BASELINE`](super::WEBRTC_BASELINE).
pub(super) async fn webrtc_baseline(job: &Job) -> Result<(), JobError> {
    let kbps = video_kbps(job).await;
    let input = job.reader(&job.source_name(false))?;
    let out = job.writer(&format!(
        "{}{}",
        job.key.source.stream,
        super::WEBRTC_BASELINE
    ))?;
    let io = Io {
        input: input.url.clone(),
        output: out.url.clone(),
    };
    let args = ffmpeg::webrtc_baseline(&io, kbps);
    let program = job.inner.config.ffmpeg.clone();
    let mut p = Ffmpeg::spawn(&program, &args, &job.label())?;
    p.run_until(&job.cancel).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use livestack_core::media::StreamKey;
    use livestack_core::AccountId;

    fn source(codec: &str) -> OnlineStream {
        OnlineStream {
            key: StreamKey {
                account: AccountId(1),
                app: "live".into(),
                stream: "cam".into(),
            },
            domain: "push.example.com".into(),
            client: ([127, 0, 0, 1], 1).into(),
            server: ([127, 0, 0, 1], 2).into(),
            started: 0,
            params: String::new(),
            video_codec: codec.into(),
            audio_codec: "aac".into(),
            width: 640,
            height: 360,
            fps: 25.0,
            video_bps: 600_000,
            audio_bps: 64_000,
            audio_fps: 43.0,
            sample_rate: 44_100,
            players: 0,
        }
    }

    #[test]
    fn never_above_the_source_caps_bitrate_height_and_frame_rate() {
        let r = Rendition {
            video_bitrate: 2000,
            height: 720,
            width: 1280,
            fps: 30,
            bitrate_to_source: true,
            height_to_source: true,
            fps_to_source: true,
            ..Rendition::default()
        };
        let fit = fit_to_source(&r, Some(&source("h264")));
        assert_eq!(
            (fit.video_bitrate, fit.width, fit.height, fit.fps),
            (600, 0, 360, 25)
        );
        let free = Rendition {
            bitrate_to_source: false,
            height_to_source: false,
            fps_to_source: false,
            ..r
        };
        let fit = fit_to_source(&free, Some(&source("h264")));
        assert_eq!(
            (fit.video_bitrate, fit.width, fit.height, fit.fps),
            (2000, 1280, 720, 30)
        );
    }

    #[test]
    fn the_origin_codec_is_the_sources() {
        let r = Rendition {
            video_codec: VideoCodec::Origin,
            ..Rendition::default()
        };
        assert_eq!(
            fit_to_source(&r, Some(&source("h265"))).video_codec,
            VideoCodec::H265
        );
        assert_eq!(
            fit_to_source(&r, Some(&source("h264"))).video_codec,
            VideoCodec::H264
        );
        assert_eq!(fit_to_source(&r, None).video_codec, VideoCodec::H264);
    }
}
