//! A push, whatever carries it (RTMP, RTMPS, SRT): authorization, the
//! stream's claim in a cluster, registration in the stream registry, the
//! playback delay, and the end of it with its events and callbacks.
//!
//! Owns: [`Push`], the life of one push from "may this peer push this
//! stream" to "it ended, for this reason". Must not: read from a socket
//! or speak a protocol: the protocol modules hand it frames in FLV tag
//! body form and tell it when the connection ended.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use livestack_core::media::{EndReason, MediaEvent, StreamKey};
use livestack_core::AccountId;
use livestack_formats::hls::SegmenterConfig;

use crate::deliver::notify;
use crate::process::Direction;
use crate::serve::access;
use crate::stream::hub::FrameKind;
use crate::stream::live::{Live, Publisher};
use crate::Inner;

/// How long the begin callback waits for the picture size.
const BEGIN_WAIT: Duration = Duration::from_secs(5);

/// What a publish or play names.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) domain: Option<String>,
    pub(crate) app: String,
    pub(crate) stream: String,
    /// The stream name's query (`txSecret`, `txTime`, …).
    pub(crate) query: String,
}

impl Target {
    /// The account and generation of the processing job whose
    /// credential, in the query, lets `peer` `direction` exactly this
    /// stream.
    pub(crate) fn job_grant(
        &self,
        inner: &Inner,
        peer: SocketAddr,
        direction: Direction,
    ) -> Option<(AccountId, u64)> {
        inner
            .processor
            .internal_grant(&self.query, peer, &self.app, &self.stream, direction)
    }

    /// What an RTMP `publish` or `play` names: the stream name's
    /// query, or the app's, or the tcUrl's, carries the signature.
    pub(crate) fn from_rtmp(tc_url: Option<&str>, app: &str, name: &str) -> Target {
        let (host, tc_query) = tc_url
            .map(access::tc_url_parts)
            .unwrap_or((None, String::new()));
        let (app, app_query) = access::split_query(app);
        let (stream, query) = access::split_query(name);
        // Signatures usually ride on the stream name; some clients put the
        // query on the app (tcUrl) instead.
        let query = if query.is_empty() {
            if app_query.is_empty() {
                tc_query.clone()
            } else {
                app_query.to_owned()
            }
        } else {
            query.to_owned()
        };
        Target {
            domain: access::resolve_domain(host.as_deref(), &[&query, app_query, &tc_query]),
            app: app.to_owned(),
            stream: stream.to_owned(),
            query,
        }
    }
}

/// Who may push, decided before the push is accepted.
pub(crate) struct Authorized {
    key: StreamKey,
    domain: String,
    /// A processing job's output (loopback with the job's token).
    internal: bool,
    /// The relay task making the push, if one is.
    relay_task: Option<i64>,
    /// The processing job's generation, for its output push (else 0).
    generation: u64,
}

/// A push that was accepted: registered, announced, taking frames.
pub(crate) struct Push {
    pub(crate) live: Arc<Live>,
    who: Authorized,
    started: i64,
    went_live: Instant,
    peer: SocketAddr,
    /// When the begin callback goes at the latest (it waits for the
    /// picture size, which CSS's carries); `None` once sent.
    begin: Option<Instant>,
    delayed: VecDeque<Delayed>,
}

impl Push {
    /// Authorizes `target` for `peer`, claims the stream in a cluster and
    /// registers the push. A refusal is logged and reported (the event
    /// log's push error) before it is returned; the caller only tells its
    /// client, in the client's protocol.
    pub(crate) async fn start(
        inner: &Arc<Inner>,
        target: &Target,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Result<Push, EndReason> {
        let now = inner.clock.unix();
        let refused = |reason: EndReason| {
            tracing::info!("push refused: {}", reason.describe());
            inner.emit(MediaEvent::PublishRefused {
                domain: target.domain.clone().unwrap_or_default(),
                app: target.app.clone(),
                stream: target.stream.clone(),
                client: peer,
                reason,
                at: now,
            });
            reason
        };
        let who = authorize(inner, target, peer, now).map_err(refused)?;
        // In a cluster the push claims its stream first: a push of it on
        // another node is told to end (replaced), and without the database
        // no push starts (two nodes could both think they own the stream).
        // A push that will wait as the backup of this node's live push
        // claims nothing: the claim stays with the primary, and passes to
        // the backup when it takes over (see `finish`).
        let session_id = inner.next_session();
        let as_backup = takes_backup(inner, &who)
            && inner
                .streams
                .get(&who.key)
                .is_some_and(|l| !l.publisher.internal && !l.publisher.relay);
        let epoch = if as_backup {
            None
        } else {
            claim(inner, &who, session_id).await.map_err(refused)?
        };
        let live = register(inner, &who, target, (peer, local), now, session_id, epoch);
        if as_backup
            && inner
                .streams
                .get(&who.key)
                .is_some_and(|l| Arc::ptr_eq(&l, &live))
        {
            // The primary ended meanwhile: this push is the primary, and
            // claims the stream after all.
            claim_for(inner, &who.key, session_id);
        }
        if who.internal {
            tracing::debug!("internal push started");
        } else {
            tracing::info!("push started");
            inner.metrics.pushes.inc();
            inner.emit(MediaEvent::PublishStarted {
                key: who.key.clone(),
                domain: who.domain.clone(),
                client: peer,
                params: without_internal_token(&target.query),
                at: now,
                session: session_id,
            });
        }
        inner.processor.wake();
        Ok(Push {
            live,
            begin: (!who.internal).then(|| Instant::now() + BEGIN_WAIT),
            who,
            started: now,
            went_live: Instant::now(),
            peer,
            delayed: VecDeque::new(),
        })
    }

    /// Takes one frame (an FLV tag body), held back while the stream has
    /// a playback delay.
    pub(crate) fn frame(&mut self, inner: &Inner, kind: FrameKind, timestamp: u32, payload: Bytes) {
        let delay = inner
            .policy()
            .delay(&self.live.publisher.key, inner.clock.unix());
        inner.metrics.ingest_bytes.inc_by(payload.len() as u64);
        if delay == 0 && self.delayed.is_empty() {
            self.live.publish(kind, timestamp, payload);
        } else {
            self.delayed.push_back(Delayed {
                due: Instant::now() + Duration::from_secs(u64::from(delay)),
                kind,
                timestamp,
                payload,
            });
        }
    }

    /// Sends the begin callback once the picture size is known (or its
    /// wait is over) and publishes the delayed frames that are due; call
    /// after each batch of frames and when [`Push::next_due`] passes.
    pub(crate) fn tick(&mut self, inner: &Inner) {
        if let Some(deadline) = self.begin {
            if self.live.resolution().0 > 0 || Instant::now() >= deadline {
                notify::push_began(inner, &self.live);
                self.begin = None;
            }
        }
        while self
            .delayed
            .front()
            .is_some_and(|d| d.due <= Instant::now())
        {
            if let Some(d) = self.delayed.pop_front() {
                self.live.publish(d.kind, d.timestamp, d.payload);
            }
        }
    }

    /// When the next delayed frame is due.
    pub(crate) fn next_due(&self) -> Option<tokio::time::Instant> {
        self.delayed
            .front()
            .map(|d| tokio::time::Instant::from_std(d.due))
    }

    /// Ends the push: `reason` unless the server ended it (a drop, a
    /// forbid, a replacement), whose reason wins.
    pub(crate) fn finish(self, inner: &Inner, reason: EndReason) {
        if self.begin.is_some() {
            notify::push_began(inner, &self.live);
        }
        let reason = self.live.end_reason().unwrap_or(reason);
        finish(
            inner,
            self.who,
            &self.live,
            reason,
            self.started,
            self.went_live.elapsed(),
            self.peer,
        );
    }
}

/// Whether `target` may be pushed from `peer` now, and as whose stream.
fn authorize(
    inner: &Inner,
    target: &Target,
    peer: SocketAddr,
    now: i64,
) -> Result<Authorized, EndReason> {
    let policy = inner.policy();
    let domain = target.domain.clone().unwrap_or_default();
    // A processing job's output, published with that job's credential for
    // exactly this stream; the credential names the account.
    let grant = target.job_grant(inner, peer, Direction::Write);
    let internal = grant.is_some();
    // A relay task's push: its task was created by the account through
    // the API, so it needs no push signature, and it is a push like any
    // other from here on (listed, processed, called back).
    let task = inner
        .processor
        .task_grant(&target.query, peer, &target.app, &target.stream);
    let relay_task = match task {
        Some((_, crate::process::Origin::Relay(id))) => Some(id),
        _ => None,
    };
    let account = if let Some((account, _)) = grant {
        account
    } else if let Some((account, _)) = task {
        let d = access::admit_push(&policy, &domain, &target.app, &target.stream, now)?;
        if d.account != account {
            // The domain changed hands since the task was created.
            return Err(EndReason::UnknownDomain);
        }
        account
    } else {
        access::authorize_push(
            &policy,
            &domain,
            &target.app,
            &target.stream,
            &target.query,
            now,
        )?
    };
    Ok(Authorized {
        key: StreamKey {
            account,
            app: target.app.clone(),
            stream: target.stream.clone(),
        },
        domain,
        internal,
        relay_task,
        generation: grant.map_or(0, |(_, generation)| generation),
    })
}

/// Whether `who` pushes on a domain that takes backup streams.
fn takes_backup(inner: &Inner, who: &Authorized) -> bool {
    !who.internal
        && inner
            .config
            .backup_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&who.domain))
}

/// In a cluster, claims `key` for push session `session` in the
/// background (a backup taking over, a switch): owned by the task tracker.
pub(crate) fn claim_for(inner: &Inner, key: &StreamKey, session: u64) {
    if let Some(link) = inner.cluster.get() {
        let (claim, key) = (link.ownership.claim(key, session), key.clone());
        inner.tasks.spawn(async move {
            if let Err(e) = claim.await {
                tracing::warn!(stream = %key.stream, "the backup push could not claim the stream: {e}");
            }
        });
    }
}

/// How long a push waits for its claim before it is refused.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(5);

/// A push URL's query without livestack's internal token (a relay task's
/// push carries one beside the task's `PushArgs`).
fn without_internal_token(query: &str) -> String {
    query
        .split('&')
        .filter(|p| p.split('=').next() != Some(crate::process::INTERNAL_PARAM))
        .collect::<Vec<_>>()
        .join("&")
}

/// Claims the stream for session `session` when this node is in a
/// cluster (not for internal pushes: their source holds the claim);
/// returns the claim's epoch.
async fn claim(inner: &Inner, who: &Authorized, session: u64) -> Result<Option<i64>, EndReason> {
    let Some(link) = inner.cluster.get().filter(|_| !who.internal) else {
        return Ok(None);
    };
    match tokio::time::timeout(CLAIM_TIMEOUT, link.ownership.claim(&who.key, session)).await {
        Ok(Ok(epoch)) => Ok(Some(epoch)),
        Ok(Err(e)) => {
            tracing::warn!("push refused: cannot claim the stream in the database: {e}");
            Err(EndReason::StoreUnavailable)
        }
        Err(_) => {
            tracing::warn!("push refused: the database did not answer the stream's claim within {CLAIM_TIMEOUT:?}");
            Err(EndReason::StoreUnavailable)
        }
    }
}

/// Registers the push in the stream registry (replacing a push of the
/// same stream, or waiting as its backup) and returns it.
fn register(
    inner: &Inner,
    who: &Authorized,
    target: &Target,
    (peer, local): (SocketAddr, SocketAddr),
    now: i64,
    session_id: u64,
    epoch: Option<i64>,
) -> Arc<Live> {
    let key = &who.key;
    // Watermark rules apply to pushes that start after them (as CSS).
    let watermark = (!who.internal)
        .then(|| {
            inner
                .policy()
                .processing
                .for_push(&livestack_core::rules::StreamRef {
                    account: key.account,
                    domain: &who.domain,
                    app: &key.app,
                    stream: &key.stream,
                })
                .watermark
                .map(|t| t.id)
        })
        .flatten();
    let cancel = inner.shutdown.child_token();
    let publisher = Publisher {
        key: key.clone(),
        domain: who.domain.clone(),
        client: peer,
        server: local,
        started: now,
        // The internal token is not the user's parameters.
        params: if who.internal {
            String::new()
        } else {
            without_internal_token(&target.query)
        },
        session: session_id,
        internal: who.internal,
        watermark,
        relay: false,
        epoch,
        relay_task: who.relay_task,
        generation: who.generation,
    };
    let segmenter = SegmenterConfig {
        target_duration_ms: inner.config.hls_segment.as_millis() as u64,
        window: inner.config.hls_window,
        // A watermarked output's segments are named (and asked for) by
        // the source's name.
        name: target
            .stream
            .strip_suffix(crate::process::WATERMARKED)
            .unwrap_or(&target.stream)
            .to_owned(),
        ..SegmenterConfig::default()
    };
    // A push domain that takes backup streams keeps a second push of a
    // live stream on this node as its backup.
    let backup = takes_backup(inner, who);
    let make = |feed| {
        Arc::new(Live::new(
            publisher,
            feed,
            cancel,
            segmenter,
            inner.config.chunk_size,
        ))
    };
    // A job's output joins the push of the job it takes over from.
    if who.internal {
        return inner
            .streams
            .insert_beside(key, session_id, who.generation, make);
    }
    let (live, is_backup) = inner.streams.insert_push(key, session_id, backup, make);
    if is_backup {
        tracing::info!("kept as the backup of the live push");
    }
    live
}

/// Ends a push: its HLS playlist, its registry entry, its events.
fn finish(
    inner: &Inner,
    who: Authorized,
    live: &Arc<Live>,
    reason: EndReason,
    started: i64,
    lasted: Duration,
    peer: SocketAddr,
) {
    live.finish_hls();
    // A relay task's push that ends by itself (its ffmpeg restarting)
    // leaves its players attached for the task's next push.
    let linger = live.publisher.relay_task.is_some() && reason == EndReason::ClientClosed;
    let promoted = inner
        .streams
        .remove_if_current(&who.key, live.publisher.session, linger);
    if let Some(backup) = &promoted {
        tracing::info!(
            session = backup.publisher.session,
            "the backup push takes over"
        );
        // The stream's claim passes to the push that now feeds it (a
        // job's output claims nothing: its source holds the claim).
        if !who.internal {
            claim_for(inner, &who.key, backup.publisher.session);
        }
    }
    inner.processor.wake();
    if who.internal {
        tracing::debug!("internal push ended: {}", reason.describe());
        return;
    }
    tracing::info!("push ended: {}", reason.describe());
    if let Some(link) = inner.cluster.get().filter(|_| promoted.is_none()) {
        // Owned by the tracker; a replacement's claim is left alone (so is
        // the primary's when a backup ends: it claimed nothing).
        let release = link.ownership.release(&who.key, live.publisher.session);
        inner.tasks.spawn(release);
    }
    notify::push_ended(inner, live, reason, lasted);
    inner.emit(MediaEvent::PublishStopped {
        key: who.key,
        domain: who.domain,
        client: peer,
        reason,
        at: inner.clock.unix(),
        started,
        session: live.publisher.session,
        resolution: live.resolution(),
    });
}

/// Frames held back for a playback delay (`AddDelayLiveStream`).
struct Delayed {
    due: Instant,
    kind: FrameKind,
    timestamp: u32,
    payload: Bytes,
}
