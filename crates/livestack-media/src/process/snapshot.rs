//! Snapshot jobs: a JPEG of the stream every `SnapshotInterval` seconds,
//! named as the template says, stored, and announced by callback (200).
//!
//! Owns: the job's working directory (ffmpeg writes numbered files there
//! atomically; this module picks up each finished one), reading a
//! picture's size, and handing it on. Must not: build command lines by
//! hand (`ffmpeg` does) or decide when to run (the processor does).

use std::path::{Path, PathBuf};
use std::time::Duration;

use livestack_core::rules::{SnapshotSpec, TemplateId, TemplateSpec};

use super::ffmpeg::{self, Io};
use super::supervisor::{Ffmpeg, JobError};
use super::Job;

/// How often the working directory is looked at.
const SCAN_EVERY: Duration = Duration::from_millis(500);

/// The width and height of a JPEG, from its first frame header (SOF0–SOF15
/// except DHT/JPG/DAC markers).
pub(crate) fn jpeg_size(data: &[u8]) -> Option<(u32, u32)> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    while i + 4 <= data.len() {
        if data[i] != 0xFF {
            return None;
        }
        let marker = data[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        let sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if sof {
            let h = data.get(i + 5..i + 7)?;
            let w = data.get(i + 7..i + 9)?;
            return Some((
                u32::from(u16::from_be_bytes([w[0], w[1]])),
                u32::from(u16::from_be_bytes([h[0], h[1]])),
            ));
        }
        i += 2 + len;
    }
    None
}

/// The job's working directory: one per stream, template and task.
fn work_dir(job: &Job, template: TemplateId, task: Option<i64>) -> PathBuf {
    let k = &job.key.source;
    let name = match task {
        Some(t) => format!(
            "snapshot-{}-{}-{}-{}-task{t}",
            k.account.0, k.app, k.stream, template.0
        ),
        None => format!(
            "snapshot-{}-{}-{}-{}",
            k.account.0, k.app, k.stream, template.0
        ),
    };
    job.inner.config.work_dir.join(name)
}

/// The finished pictures in `dir`, oldest first.
async fn finished(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(e)) = entries.next_entry().await {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "jpg") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Takes snapshots with the template `id` until cancelled.
pub(super) async fn run(job: &Job, id: TemplateId, task: Option<i64>) -> Result<(), JobError> {
    let template = job
        .template(id)
        .ok_or_else(|| JobError::Work(format!("snapshot template {} is gone", id.0)))?;
    let TemplateSpec::Snapshot(spec) = &template.spec else {
        return Err(JobError::Work(format!(
            "template {} is not a snapshot template",
            id.0
        )));
    };
    let dir = work_dir(job, id, task);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| JobError::Work(format!("cannot create {}: {e}", dir.display())))?;
    // Pictures a previous attempt left are delivered first.
    for p in finished(&dir).await {
        deliver(job, spec, task, &p).await;
    }
    let io = Io {
        input: job.url(&job.source_name(false))?,
        output: dir.join("%08d.jpg").to_string_lossy().into_owned(),
    };
    let args = ffmpeg::snapshot(&io, spec.interval.max(1), spec.width, spec.height);
    let program = job.inner.config.ffmpeg.clone();
    let mut p = Ffmpeg::spawn(&program, &args, &job.label())?;
    let mut tick = tokio::time::interval(SCAN_EVERY);
    let result = loop {
        tokio::select! {
            r = p.run_until(&job.cancel) => break r,
            _ = tick.tick() => {
                for pic in finished(&dir).await {
                    deliver(job, spec, task, &pic).await;
                }
            }
        }
    };
    for pic in finished(&dir).await {
        deliver(job, spec, task, &pic).await;
    }
    result
}

/// Names, stores and announces one picture, then removes it from the
/// working directory (unless it could not be stored anywhere).
async fn deliver(job: &Job, spec: &SnapshotSpec, task: Option<i64>, path: &Path) {
    let data = match tokio::fs::read(path).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(job = %job.label(), "cannot read snapshot {}: {e}", path.display());
            return;
        }
    };
    let (width, height) = jpeg_size(&data).unwrap_or((spec.width, spec.height));
    let _ = (task, width, height);
    // Storage and callbacks are wired in next; until then the picture
    // stays in the working directory.
}
