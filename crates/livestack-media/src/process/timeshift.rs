//! The time-shift job: cuts a live stream into HLS segments of the
//! template's `ItemDuration` and keeps them ([`crate::stream::timeshift`]).
//!
//! Owns: reading the stream in-process from its hub (no ffmpeg: the
//! segmenter the live HLS output uses, at its own segment length) and the
//! wall-clock start of each segment. Must not: block the hub: it reads
//! like a player (dropped frames only if it falls a minute behind) and
//! writes files on its own task.

use std::sync::Arc;

use livestack_core::rules::{TemplateId, TemplateSpec};
use livestack_formats::hls::{Segmenter, SegmenterConfig};
use tokio::sync::broadcast::error::RecvError;

use super::supervisor::JobError;
use super::Job;
use crate::stream::hub::Frame;
use crate::stream::timeshift::SessionWriter;

/// A segment start further than this from the wall clock is re-anchored
/// to it (a publisher's clock that jumps, or one running fast or slow).
const MAX_DRIFT_MS: i64 = 10_000;

/// Keeps the stream's segments until the job is cancelled or the push
/// ends.
pub(crate) async fn run(job: &Job, template: TemplateId) -> Result<(), JobError> {
    let Some(TemplateSpec::TimeShift(spec)) = job.template(template).map(|t| t.spec.clone()) else {
        return Err(JobError::Work("the time-shift template is gone".into()));
    };
    let (name, live) = job.source_live(spec.remove_watermark)?;
    let watermarked = name != job.key.source.stream;
    let mut sub = live.hub.subscribe_internal();
    let sid = format!("{:x}", live.publisher.session);
    let store = Arc::clone(&job.inner.timeshift);
    let mut writer = store
        .begin(
            &job.key.source,
            &sid,
            &job.domain,
            watermarked,
            spec.duration,
        )
        .await
        .map_err(|e| JobError::Work(format!("cannot open the time-shift index: {e}")))?;
    let mut segmenter = Segmenter::new(SegmenterConfig {
        target_duration_ms: u64::from(spec.item_duration.clamp(3, 10)) * 1000,
        window: 2,
        name: "ts".to_owned(),
        ..SegmenterConfig::default()
    });
    let clock = &job.inner.clock;
    // The cached GOP happened before now: its first frame is as far back
    // as the hub's latest timestamp is ahead of it.
    let latest = live.hub.last_timestamp();
    let first = sub
        .start
        .iter()
        .find(|f| !f.sequence_header && f.kind != crate::stream::hub::FrameKind::Script)
        .map_or(latest, |f| f.timestamp);
    let behind = i64::from(latest.wrapping_sub(first)).min(60_000);
    let mut next_start = clock.unix_ms() - behind;
    let mut kept = Kept {
        writer: &mut writer,
        next_start: &mut next_start,
        clock,
        label: &name,
    };
    for frame in std::mem::take(&mut sub.start) {
        kept.push(&mut segmenter, &frame).await;
    }
    loop {
        tokio::select! {
            () = job.cancel.cancelled() => break,
            () = live.cancelled() => break,
            r = sub.live.recv() => match r {
                Ok(frame) => kept.push(&mut segmenter, &frame).await,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(stream = %name, "time-shift fell behind; {n} frames skipped");
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    if let Some(seq) = segmenter.finish() {
        kept.store(&segmenter, seq).await;
    }
    Ok(())
}

/// Where finished segments go.
struct Kept<'a> {
    writer: &'a mut SessionWriter,
    /// The wall-clock start (Unix ms) of the segment being cut.
    next_start: &'a mut i64,
    clock: &'a livestack_core::Clock,
    label: &'a str,
}

impl Kept<'_> {
    async fn push(&mut self, segmenter: &mut Segmenter, frame: &Frame) {
        match segmenter.push(frame.kind.into(), frame.timestamp, &frame.payload) {
            Ok(Some(seq)) => self.store(segmenter, seq).await,
            Ok(None) => {}
            Err(e) => tracing::debug!(stream = %self.label, "time-shift skipped a frame: {e}"),
        }
    }

    async fn store(&mut self, segmenter: &Segmenter, seq: u64) {
        let Some(segment) = segmenter.segment(seq) else {
            return;
        };
        let duration = u32::try_from(segment.duration_ms).unwrap_or(u32::MAX);
        let now = self.clock.unix_ms();
        let mut start = *self.next_start;
        if (start + i64::from(duration) - now).abs() > MAX_DRIFT_MS {
            start = now - i64::from(duration);
        }
        *self.next_start = start + i64::from(duration);
        if let Err(e) = self
            .writer
            .add(start, duration, segment.discontinuity, &segment.data)
            .await
        {
            // A full disk loses this segment, not the stream's next ones.
            tracing::warn!(stream = %self.label, "cannot keep a time-shift segment: {e}");
        }
    }
}
