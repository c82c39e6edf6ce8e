//! Recording what the media plane reports: push sessions for the event
//! and published lists, callback attempts for
//! `DescribeCallbackRecordsList`, snapshots and recording spans for
//! `DescribeScreenShotSheetNumList` and `DescribeConcurrentRecordStreamNum`,
//! play statistics by minute for the statistics queries.
//!
//! Owns: turning [`MediaEvent`]s into `stream_sessions` rows, and
//! republishing the policy when the end of a push lets a task go (a task
//! deleted while it recorded that push). Must not: block the media plane
//! (events arrive on a bounded channel the media plane never waits on).

use std::sync::Arc;

use livestack_core::media::MediaEvent;
use livestack_store::{streams, tasks, Store};
use tokio::sync::mpsc;

use crate::policy::PolicyPublisher;

/// Records events until the channel closes (the media plane has shut down).
/// Rows that a restart must close are marked with `node`, this node's name.
pub async fn record(
    store: Store,
    policy: Arc<PolicyPublisher>,
    node: Arc<str>,
    mut rx: mpsc::Receiver<MediaEvent>,
) {
    while let Some(event) = rx.recv().await {
        // A push that ends may end a deleted task's last recording.
        let ended = match &event {
            MediaEvent::PublishStopped { key, .. } => Some(key.clone()),
            _ => None,
        };
        if let Err(e) = record_one(&store, &node, event).await {
            tracing::error!("cannot record a stream event: {e}");
        }
        if let Some(key) = ended {
            if let Err(e) = release_deleted_tasks(&store, &policy, key).await {
                tracing::error!("cannot republish the policy after a push ended: {e}");
            }
        }
    }
}

/// Republishes the policy when a task of the stream `key` was deleted
/// while it ran: it stayed in force only while the push went on.
async fn release_deleted_tasks(
    store: &Store,
    policy: &PolicyPublisher,
    key: livestack_core::media::StreamKey,
) -> livestack_store::StoreResult<()> {
    let now = policy.clock().unix();
    let lingering = store
        .run(move |c| tasks::deleted_while_running(c, key.account, &key.app, &key.stream, now))
        .await?;
    if lingering {
        policy.refresh().await?;
    }
    Ok(())
}

async fn record_one(
    store: &Store,
    node: &Arc<str>,
    event: MediaEvent,
) -> livestack_store::StoreResult<()> {
    let node = Arc::clone(node);
    match event {
        MediaEvent::PublishStarted {
            key,
            domain,
            client,
            params,
            at,
            session,
        } => {
            let row = streams::PushSession {
                account_id: key.account,
                session: session as i64,
                domain,
                app: key.app,
                stream: key.stream,
                client_ip: client.ip().to_string(),
                params,
                started_at: at,
                ended_at: None,
                stop_reason: String::new(),
                errcode: 0,
                sub_errcode: 0,
                resolution: String::new(),
                succeeded: true,
            };
            store
                .run(move |c| streams::insert_session(c, &node, &row))
                .await
        }
        MediaEvent::PublishStopped {
            reason,
            at,
            session,
            resolution,
            ..
        } => {
            let (code, sub) = reason.code();
            let res = if resolution.0 > 0 {
                format!("{}x{}", resolution.0, resolution.1)
            } else {
                String::new()
            };
            store
                .run(move |c| {
                    streams::close_session(
                        c,
                        session as i64,
                        at,
                        reason.describe(),
                        (i64::from(code), i64::from(sub)),
                        &res,
                    )
                    .map(|_| ())
                })
                .await
        }
        MediaEvent::CallbackAttempted {
            account,
            stream,
            event_type,
            request,
            response,
            result_code,
            sent_ms,
            answered_ms,
        } => {
            let row = livestack_store::callbacks::CallbackRecord {
                account_id: account,
                stream,
                event_type,
                request,
                response,
                result_code,
                sent_ms,
                answered_ms,
            };
            store
                .run(move |c| livestack_store::callbacks::insert(c, &row))
                .await
        }
        MediaEvent::SnapshotStored {
            account,
            domain,
            at_ms,
        } => {
            store
                .run(move |c| livestack_store::usage::count_snapshot(c, account, &domain, at_ms))
                .await
        }
        MediaEvent::RecordingStarted {
            key,
            domain,
            slow_live,
            span,
            at_ms,
        } => {
            let row = livestack_store::usage::RecordingSpan {
                domain,
                app: key.app,
                stream: key.stream,
                slow_live,
                started_ms: at_ms,
                ended_ms: None,
            };
            store
                .run(move |c| {
                    livestack_store::usage::start_recording(c, &node, key.account, span, &row)
                })
                .await
        }
        MediaEvent::PushSampled(p) => {
            let o = p.stream;
            let row = livestack_store::samples::Sample {
                account_id: o.key.account.0,
                domain: o.domain,
                app: o.key.app,
                stream: o.key.stream,
                at_ms: p.at_ms,
                started_ms: p.started_ms,
                client_ip: o.client.ip().to_string(),
                server_ip: o.server.ip().to_string(),
                sequence: p.sequence,
                params: o.params,
                video_codec: o.video_codec,
                audio_codec: o.audio_codec,
                width: i64::from(o.width),
                height: i64::from(o.height),
                fps: o.fps,
                video_bps: i64::try_from(o.video_bps).unwrap_or(i64::MAX),
                audio_fps: o.audio_fps,
                audio_bps: i64::try_from(o.audio_bps).unwrap_or(i64::MAX),
                video_ts: i64::from(p.video_ts),
                audio_ts: i64::from(p.audio_ts),
                meta_video_kbps: i64::from(p.meta_video_kbps),
                meta_audio_kbps: i64::from(p.meta_audio_kbps),
                meta_fps: i64::from(p.meta_fps),
                gop_ms: i64::from(p.gop_ms),
                bytes: i64::try_from(p.bytes).unwrap_or(i64::MAX),
                interval_ms: p.interval_ms,
            };
            store
                .run(move |c| livestack_store::samples::insert(c, &row))
                .await
        }
        MediaEvent::TranscodeStarted { span, job, at_ms } => {
            let account = job.key.account;
            let row = livestack_store::usage::TranscodeSpan {
                domain: job.domain,
                app: job.key.app,
                stream: job.key.stream,
                kind: job.kind.to_owned(),
                codec: job.codec,
                width: i64::from(job.width),
                height: i64::from(job.height),
                bitrate_kbps: i64::from(job.bitrate_kbps),
                started_ms: at_ms,
                ended_ms: None,
            };
            store
                .run(move |c| {
                    livestack_store::usage::start_transcode(c, &node, account, span, &row)
                })
                .await
        }
        MediaEvent::TranscodeStopped { span, at_ms } => {
            store
                .run(move |c| livestack_store::usage::stop_transcode(c, span, at_ms))
                .await
        }
        MediaEvent::PlayStats(report) => {
            store
                .transaction(move |c| livestack_store::stats::add(c, &report))
                .await
        }
        MediaEvent::PullTaskReported {
            task,
            kind,
            active,
            file_url,
            file_index,
            looped,
            offset_secs,
            last_error,
            at,
        } => {
            let report = livestack_store::pull_tasks::RunReport {
                node: node.to_string(),
                active,
                file_url,
                file_index,
                looped,
                offset_secs,
                last_error,
                reported_at: at,
                source_type: match kind {
                    livestack_core::pull::PullSourceKind::Live => "PullLivePushLive",
                    livestack_core::pull::PullSourceKind::Vod => "PullVodPushLive",
                    livestack_core::pull::PullSourceKind::Picture => "PullPicPushLive",
                }
                .to_owned(),
            };
            store
                .run(move |c| livestack_store::pull_tasks::report(c, task, &report))
                .await
        }
        MediaEvent::PullInsertPlayed { insert, at } => {
            store
                .run(move |c| livestack_store::pull_tasks::insert_played(c, insert, at))
                .await
        }
        MediaEvent::RecordingStopped { span, at_ms } => {
            store
                .run(move |c| livestack_store::usage::stop_recording(c, span, at_ms))
                .await
        }
        MediaEvent::PublishRefused {
            domain,
            app,
            stream,
            client,
            reason,
            at,
        } => {
            // Refusals are recorded only for domains that belong to an
            // account; an unknown domain has no owner to show them to.
            let lookup = domain.clone();
            let Some(d) = store
                .run(move |c| livestack_store::domains::find_any(c, &lookup))
                .await?
            else {
                return Ok(());
            };
            let (code, sub) = reason.code();
            let row = streams::PushSession {
                account_id: d.account_id,
                session: -1,
                domain,
                app,
                stream,
                client_ip: client.ip().to_string(),
                params: String::new(),
                started_at: at,
                ended_at: Some(at),
                stop_reason: reason.describe().to_owned(),
                errcode: i64::from(code),
                sub_errcode: i64::from(sub),
                resolution: String::new(),
                succeeded: false,
            };
            store
                .run(move |c| streams::insert_session(c, &node, &row))
                .await
        }
    }
}
