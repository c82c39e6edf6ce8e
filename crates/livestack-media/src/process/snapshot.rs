//! Snapshot jobs: a JPEG of the stream every `SnapshotInterval` seconds,
//! named as the template says, stored, and announced by callback (200).
//!
//! Owns: the job's working directory (ffmpeg writes numbered files there
//! atomically; this module picks up each finished one), reading a
//! picture's size, and handing it on. Must not: build command lines by
//! hand (`ffmpeg` does) or decide when to run (the processor does).

use std::path::{Path, PathBuf};
use std::time::Duration;

use livestack_core::naming::SnapshotName;
use livestack_core::rules::{SnapshotSpec, StreamRef, TemplateId, TemplateSpec};

use super::ffmpeg::{self, Io};
use super::supervisor::{Ffmpeg, JobError};
use super::Job;
use crate::deliver::notify::{CallbackTarget, SnapshotEvent};
use crate::deliver::storage::{Destination, StorageError};

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
    let input = job.reader(&job.source_name(false))?;
    let io = Io {
        input: input.url.clone(),
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

/// Names, stores and announces one picture. The working-directory file
/// is moved by storage; if it cannot be stored anywhere it stays there
/// and the next scan tries again.
async fn deliver(job: &Job, spec: &SnapshotSpec, task: Option<i64>, path: &Path) {
    let data = match tokio::fs::read(path).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(job = %job.label(), "cannot read snapshot {}: {e}", path.display());
            return;
        }
    };
    let (width, height) = jpeg_size(&data).unwrap_or((spec.width, spec.height));
    let now_ms = job.inner.clock.unix_ms();
    let source = &job.key.source;
    let storage = &job.inner.storage;
    let name = SnapshotName {
        domain: &job.domain,
        app: &source.app,
        stream: &source.stream,
        width,
        height,
        ext: ".jpg",
        time_ms: now_ms,
        zone: storage.zone(),
    };
    let app_id = job
        .inner
        .policy()
        .processing
        .app_ids
        .get(&source.account)
        .copied()
        .unwrap_or(0);
    let dest = storage.destination(&spec.cos_bucket, &spec.cos_region, app_id);
    // The key in the bucket is what CSS's `pic_url` names; locally one
    // directory serves every domain and app, so they lead the key.
    let key = match (&dest, name.cos_key(&spec.cos_prefix, &spec.cos_file_name)) {
        (Destination::Local, Ok(_)) => name.local_key(&spec.cos_prefix, &spec.cos_file_name),
        (_, cos) => cos,
    };
    let key = match key {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(job = %job.label(), "snapshot name refused: {e}; the picture is dropped");
            let _ = tokio::fs::remove_file(path).await;
            return;
        }
    };
    let stored = match storage.put(&dest, &key, path).await {
        Ok(s) => s,
        Err(e) => match e {
            StorageError::Upload { kept, source, .. } => {
                tracing::warn!(job = %job.label(), "snapshot upload failed, kept locally: {source}");
                *kept
            }
            e => {
                tracing::warn!(job = %job.label(), "snapshot not stored: {e}");
                if e.kept().is_none() {
                    // Nothing will change on a retry (a bad key, a
                    // vanished file): do not scan it again and again.
                    let _ = tokio::fs::remove_file(path).await;
                }
                return;
            }
        },
    };
    tracing::debug!(job = %job.label(), task, key = stored.key, "snapshot stored");
    job.inner
        .emit(livestack_core::media::MediaEvent::SnapshotStored {
            account: source.account,
            domain: job.domain.clone(),
            at_ms: now_ms,
        });
    let policy = job.inner.policy();
    let at = StreamRef {
        account: source.account,
        domain: &job.domain,
        app: &source.app,
        stream: &source.stream,
    };
    if let Some(target) = CallbackTarget::for_push(&policy, &at) {
        job.inner.notifier.snapshot(
            &target,
            &SnapshotEvent {
                stream: source.stream.clone(),
                create_time: now_ms / 1000,
                file_size: stored.size,
                width,
                height,
                // The key the picture was stored under, as its full URL
                // names it (a local key leads with the domain and app).
                pic_url: format!("/{}", stored.key),
                pic_full_url: stored.url.clone(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jpegs_size_comes_from_its_frame_header() {
        // SOI, APP0 (16 bytes), SOF0 with height 180 and width 320.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        jpeg.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0xB4, 0x01, 0x40]);
        assert_eq!(jpeg_size(&jpeg), Some((320, 180)));
        assert_eq!(jpeg_size(b"not a jpeg"), None);
        assert_eq!(jpeg_size(&jpeg[..8]), None);
    }
}
