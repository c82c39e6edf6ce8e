//! Transcoding and watermark jobs: ffmpeg reads the source from
//! livestack, re-encodes it and publishes the result back as an internal
//! push, which players then get like any live stream.
//!
//! Owns: choosing the rendition and watermark of an output from the
//! templates. Must not: build command lines by hand (`ffmpeg` does) or
//! decide when to run (the processor does).

use livestack_core::rules::{Kind, Rendition, TemplateId, TemplateSpec, VideoCodec};

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

/// Produces `output` from the source with the transcode template `id`.
pub(super) async fn transcode(job: &Job, id: TemplateId, output: &str) -> Result<(), JobError> {
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
    let mut rendition = rendition.clone();
    if rendition.video_codec == VideoCodec::Origin {
        // "The source's codec": re-encoded in it (sizes and rates still
        // change).
        let source = job
            .inner
            .live(&job.key.source)
            .map(|l| l.snapshot().video_codec);
        rendition.video_codec = match source.as_deref() {
            Some("h265") => VideoCodec::H265,
            _ => VideoCodec::H264,
        };
    }
    let io = Io {
        input: job.url(&job.source_name(false))?,
        output: job.url(output)?,
    };
    let args = ffmpeg::transcode(&io, &rendition, profile, None);
    let program = job.inner.config.ffmpeg.clone();
    let mut p = Ffmpeg::spawn(&program, &args, &job.label())?;
    p.run_until(&job.cancel).await
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
    let kbps = job
        .inner
        .live(&job.key.source)
        .map(|l| (l.snapshot().video_bps / 1000) as u32)
        .unwrap_or(0);
    let io = Io {
        input: job.url(&job.key.source.stream)?,
        output: job.url(&format!("{}{WATERMARKED}", job.key.source.stream))?,
    };
    let args = ffmpeg::watermark(
        &io,
        w,
        &picture.to_string_lossy(),
        if kbps == 0 { 1500 } else { kbps },
    );
    let program = job.inner.config.ffmpeg.clone();
    let mut p = Ffmpeg::spawn(&program, &args, &job.label())?;
    p.run_until(&job.cancel).await
}
