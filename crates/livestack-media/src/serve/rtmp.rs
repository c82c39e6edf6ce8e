//! RTMP connections: ingest (publish) and playback (play) on one port.
//!
//! Owns: the accept loop and one task per connection driving a sans-IO
//! `ServerSession`, push and play authorization at the `publish`/`play`
//! commands, registering live pushes, the publisher's read loop (with the
//! idle timeout, `DropLiveStream`/`ForbidLiveStream` cancellation and the
//! playback delay), and handing players to [`crate::stream::output::play`].
//! Must not: touch the database or block the runtime.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument as _;

use bytes::Bytes;
use livestack_core::media::{EndReason, MediaEvent, StreamKey};
use livestack_core::AccountId;
use livestack_formats::hls::SegmenterConfig;
use livestack_rtmp::{strip_set_data_frame, ServerConfig, ServerSession, SessionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::deliver::notify;
use crate::metrics::Protocol;
use crate::process::Direction;
use crate::serve::access::{self, PlayRefusal};
use crate::stream::hub::FrameKind;
use crate::stream::live::{Live, Publisher};
use crate::stream::output::{self, PlayEnd};
use crate::Inner;

/// How long a connection may take to get to `publish` or `play`.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the begin callback waits for the picture size.
const BEGIN_WAIT: Duration = Duration::from_secs(5);
/// The longest message a connection may send before it is authorized
/// (`connect`, `createStream`, `publish` … are a few hundred bytes).
const SETUP_MAX_MESSAGE: u32 = 64 * 1024;
/// The bytes of partial messages it may hold meanwhile.
const SETUP_MAX_BUFFERED: usize = 256 * 1024;

pub(crate) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    crate::accept_loop(inner, listener, "RTMP", |inner, socket, peer| async move {
        if let Err(e) = connection(inner, socket, peer).await {
            tracing::debug!(%peer, "RTMP connection ended: {e}");
        }
    })
    .await;
}

/// A connection: read until the client asks to publish or play.
async fn connection(inner: Arc<Inner>, socket: TcpStream, peer: SocketAddr) -> std::io::Result<()> {
    let local = socket.local_addr()?;
    let (mut rd, mut wr) = socket.into_split();
    let mut session = ServerSession::new(ServerConfig {
        chunk_size: inner.config.chunk_size,
        ..ServerConfig::default()
    });
    // An unauthorized client can make the session hold little: 40 of
    // them declaring 16 MiB messages once cost 600 MB.
    session.set_input_limits(SETUP_MAX_MESSAGE, SETUP_MAX_BUFFERED);
    // ...and all of them together, authorized or not, hold at most the
    // shared budget.
    session.set_shared_budget(Arc::clone(&inner.rtmp_buffered));
    let mut buf = vec![0u8; 64 * 1024];
    let mut tc_url: Option<String> = None;
    let mut app = String::new();
    let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    loop {
        let n = tokio::select! {
            r = tokio::time::timeout_at(deadline, rd.read(&mut buf)) => match r {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            },
            () = inner.shutdown.cancelled() => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        if let Err(e) = session.feed(&buf[..n]) {
            tracing::debug!(%peer, "malformed RTMP input: {e}");
            return Ok(());
        }
        flush(&mut session, &mut wr).await?;
        while let Some(event) = session.poll_event() {
            match event {
                SessionEvent::Connect {
                    app: a, tc_url: t, ..
                } => {
                    app = a;
                    tc_url = t;
                }
                SessionEvent::Publish {
                    stream_id, name, ..
                } => {
                    let target = Target::new(tc_url.as_deref(), &app, &name);
                    // One span per push: a grep of the stream name or the
                    // peer gives its whole story.
                    let span = tracing::info_span!("push", domain = target.domain.as_deref().unwrap_or(""),
                        app = %target.app, stream = %target.stream, %peer);
                    let conn = Conn {
                        session,
                        rd,
                        wr,
                        buf,
                        peer,
                        local,
                    };
                    return publish(inner, conn, stream_id, target)
                        .instrument(span)
                        .await;
                }
                SessionEvent::Play {
                    stream_id, name, ..
                } => {
                    let target = Target::new(tc_url.as_deref(), &app, &name);
                    let span = tracing::info_span!("play", domain = target.domain.as_deref().unwrap_or(""),
                        app = %target.app, stream = %target.stream, %peer);
                    return play(inner, session, rd, wr, peer, stream_id, target)
                        .instrument(span)
                        .await;
                }
                _ => {}
            }
        }
    }
}

async fn flush(session: &mut ServerSession, wr: &mut OwnedWriteHalf) -> std::io::Result<()> {
    while let Some(out) = session.take_output() {
        wr.write_all(&out).await?;
    }
    Ok(())
}

/// What a publish or play names.
#[derive(Debug)]
struct Target {
    domain: Option<String>,
    app: String,
    stream: String,
    /// The stream name's query (`txSecret`, `txTime`, …).
    query: String,
}

impl Target {
    /// The account of the processing job whose credential, in the query,
    /// lets `peer` `direction` exactly this stream.
    fn job_grant(
        &self,
        inner: &Inner,
        peer: SocketAddr,
        direction: Direction,
    ) -> Option<AccountId> {
        inner
            .processor
            .internal_grant(&self.query, peer, &self.app, &self.stream, direction)
    }

    fn new(tc_url: Option<&str>, app: &str, name: &str) -> Target {
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

/// A connection's I/O: the session state machine and the socket halves.
struct Conn {
    session: ServerSession,
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: Vec<u8>,
    peer: SocketAddr,
    local: SocketAddr,
}

/// Who may push, decided at the `publish` command.
struct Authorized {
    key: StreamKey,
    domain: String,
    /// A processing job's output (loopback with the job's token).
    internal: bool,
    /// The relay task making the push, if one is.
    relay_task: Option<i64>,
}

/// A push: authorize, register, ingest until it ends, finish.
async fn publish(
    inner: Arc<Inner>,
    mut conn: Conn,
    stream_id: u32,
    target: Target,
) -> std::io::Result<()> {
    let now = inner.clock.unix();
    let who = match authorize(&inner, &target, conn.peer, now) {
        Ok(who) => who,
        Err(reason) => {
            refuse(&inner, &mut conn, stream_id, target, reason, now).await;
            return Ok(());
        }
    };
    // In a cluster the push claims its stream first: a push of it on
    // another node is told to end (replaced), and without the database no
    // push starts (two nodes could both think they own the stream).
    // A push that will wait as the backup of this node's live push claims
    // nothing: the claim stays with the primary, and passes to the backup
    // when it takes over (see `finish`).
    let session_id = inner.next_session();
    let as_backup = takes_backup(&inner, &who)
        && inner
            .streams
            .get(&who.key)
            .is_some_and(|l| !l.publisher.internal && !l.publisher.relay);
    let epoch = if as_backup {
        None
    } else {
        match claim(&inner, &who, session_id).await {
            Ok(epoch) => epoch,
            Err(reason) => {
                refuse(&inner, &mut conn, stream_id, target, reason, now).await;
                return Ok(());
            }
        }
    };
    let (live, session_id) = register(&inner, &who, &target, &conn, now, session_id, epoch);
    if as_backup
        && inner
            .streams
            .get(&who.key)
            .is_some_and(|l| Arc::ptr_eq(&l, &live))
    {
        // The primary ended meanwhile: this push is the primary, and
        // claims the stream after all.
        claim_for(&inner, &who.key, session_id);
    }
    conn.session.accept_publish(stream_id);
    // An authorized publisher sends keyframes of any size RTMP allows.
    conn.session.set_input_limits(
        livestack_rtmp::chunk::DEFAULT_MAX_MESSAGE_LEN,
        livestack_rtmp::chunk::DEFAULT_MAX_BUFFERED,
    );
    flush(&mut conn.session, &mut conn.wr).await?;
    let went_live = Instant::now();
    if who.internal {
        tracing::debug!("internal push started");
    } else {
        tracing::info!("push started");
        inner.metrics.pushes.inc();
        inner.emit(MediaEvent::PublishStarted {
            key: who.key.clone(),
            domain: who.domain.clone(),
            client: conn.peer,
            params: without_internal_token(&target.query),
            at: now,
            session: session_id,
        });
    }
    inner.processor.wake();

    // The begin callback waits for the picture size (CSS's carries it),
    // at most BEGIN_WAIT for a stream without video.
    let mut begin = (!who.internal).then(|| Instant::now() + BEGIN_WAIT);
    let reason = ingest(
        &inner,
        &live,
        &mut conn.session,
        &mut conn.rd,
        &mut conn.wr,
        &mut conn.buf,
        &mut begin,
    )
    .await;
    if begin.is_some() {
        notify::push_began(&inner, &live);
    }
    let reason = live.end_reason().unwrap_or(reason);
    finish(
        &inner,
        who,
        &live,
        reason,
        now,
        went_live.elapsed(),
        conn.peer,
    );
    Ok(())
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
    let account = if let Some(account) = grant {
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

/// Answers a refused `publish` with the CSS reason and reports it.
async fn refuse(
    inner: &Inner,
    conn: &mut Conn,
    stream_id: u32,
    target: Target,
    reason: EndReason,
    now: i64,
) {
    tracing::info!("push refused: {}", reason.describe());
    let code = match reason {
        EndReason::BadName => "NetStream.Publish.BadName",
        _ => "NetStream.Publish.Denied",
    };
    let (errcode, sub) = reason.code();
    conn.session.reject_publish(
        stream_id,
        code,
        &format!("{} ({errcode}/{sub})", reason.describe()),
    );
    let _ = flush(&mut conn.session, &mut conn.wr).await;
    inner.emit(MediaEvent::PublishRefused {
        domain: target.domain.unwrap_or_default(),
        app: target.app,
        stream: target.stream,
        client: conn.peer,
        reason,
        at: now,
    });
}

/// Registers the push in the stream registry (replacing a push of the
/// same stream) and returns it with its session id.
fn register(
    inner: &Inner,
    who: &Authorized,
    target: &Target,
    conn: &Conn,
    now: i64,
    session_id: u64,
    epoch: Option<i64>,
) -> (Arc<Live>, u64) {
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
        client: conn.peer,
        server: conn.local,
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
    let (live, is_backup) = inner.streams.insert_push(key, session_id, backup, |feed| {
        Arc::new(Live::new(
            publisher,
            feed,
            cancel,
            segmenter,
            inner.config.chunk_size,
        ))
    });
    if is_backup {
        tracing::info!("kept as the backup of the live push");
    }
    (live, session_id)
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
        // The stream's claim passes to the push that now feeds it.
        claim_for(inner, &who.key, backup.publisher.session);
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

/// The publisher's read loop; returns why it ended. `begin` holds the
/// deadline of a begin callback not sent yet: it goes once the picture
/// size is measured or the deadline passes.
async fn ingest(
    inner: &Inner,
    live: &Arc<Live>,
    session: &mut ServerSession,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    buf: &mut [u8],
    begin: &mut Option<Instant>,
) -> EndReason {
    let mut delayed: VecDeque<Delayed> = VecDeque::new();
    loop {
        if let Some(deadline) = *begin {
            if live.resolution().0 > 0 || Instant::now() >= deadline {
                notify::push_began(inner, live);
                *begin = None;
            }
        }
        // Events already decoded (possibly with the publish command).
        while let Some(event) = session.poll_event() {
            let (kind, timestamp, payload) = match event {
                SessionEvent::Audio {
                    timestamp, payload, ..
                } => (FrameKind::Audio, timestamp, payload),
                SessionEvent::Video {
                    timestamp, payload, ..
                } => (FrameKind::Video, timestamp, payload),
                SessionEvent::Metadata { payload, .. } => {
                    (FrameKind::Script, 0, strip_set_data_frame(&payload))
                }
                SessionEvent::DeleteStream { .. } => return EndReason::ClientClosed,
                _ => continue,
            };
            let delay = inner
                .policy()
                .delay(&live.publisher.key, inner.clock.unix());
            inner.metrics.ingest_bytes.inc_by(payload.len() as u64);
            if delay == 0 && delayed.is_empty() {
                live.publish(kind, timestamp, payload);
            } else {
                delayed.push_back(Delayed {
                    due: Instant::now() + Duration::from_secs(u64::from(delay)),
                    kind,
                    timestamp,
                    payload,
                });
            }
        }
        while delayed.front().is_some_and(|d| d.due <= Instant::now()) {
            if let Some(d) = delayed.pop_front() {
                live.publish(d.kind, d.timestamp, d.payload);
            }
        }
        if flush(session, wr).await.is_err() {
            return EndReason::ProtocolError;
        }
        let next_due = delayed
            .front()
            .map(|d| tokio::time::Instant::from_std(d.due));
        let n = tokio::select! {
            r = tokio::time::timeout(inner.config.idle_timeout, rd.read(buf)) => match r {
                Ok(Ok(0)) => return EndReason::ClientClosed,
                Ok(Ok(n)) => n,
                Ok(Err(_)) => return EndReason::ProtocolError,
                Err(_) => return EndReason::Idle,
            },
            () = live.cancelled() => return live.end_reason().unwrap_or(EndReason::Shutdown),
            () = async { match next_due { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => continue,
        };
        if session.feed(&buf[..n]).is_err() {
            return EndReason::ProtocolError;
        }
    }
}

async fn play(
    inner: Arc<Inner>,
    mut session: ServerSession,
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    peer: SocketAddr,
    stream_id: u32,
    target: Target,
) -> std::io::Result<()> {
    let policy = inner.policy();
    let domain = target.domain.clone().unwrap_or_default();
    let grant = target.job_grant(&inner, peer, Direction::Read);
    let internal = grant.is_some();
    let decision = if let Some(account) = grant {
        Ok(account)
    } else {
        access::authorize_play(
            &policy,
            &domain,
            &target.app,
            &target.stream,
            &target.query,
            None,
            inner.clock.unix(),
        )
    };
    let live = match decision {
        Ok(account) => {
            let key = StreamKey {
                account,
                app: target.app.clone(),
                stream: target.stream.clone(),
            };
            if internal {
                // A job reads exactly what it names, and may start before
                // its source (a watermarked output, say) is up.
                inner.processor.wait_for(&inner, &key).await
            } else {
                inner.processor.resolve_play(&inner, &key, &domain).await
            }
        }
        Err(_) => None,
    };
    let Some(live) = live else {
        let (code, why) = match decision {
            Err(PlayRefusal::Forbidden) => ("NetStream.Play.Failed", "play authentication failed"),
            Err(PlayRefusal::NotFound) => ("NetStream.Play.StreamNotFound", "no such play domain"),
            Ok(_) => ("NetStream.Play.StreamNotFound", "the stream is not live"),
        };
        tracing::info!(%peer, domain, app = target.app, stream = target.stream, "RTMP play refused: {why}");
        session.reject_play(stream_id, code, why);
        let _ = flush(&mut session, &mut wr).await;
        return Ok(());
    };
    session.accept_play(stream_id);
    let mut prelude = Vec::new();
    while let Some(out) = session.take_output() {
        prelude.push(out);
    }
    let sub = live.hub.subscribe();
    let cancel = inner.shutdown.child_token();
    drop(live);
    let mut read_buf = vec![0u8; 4096];
    // Keep reading so that a player that leaves is noticed at once; what a
    // player sends after `play` (acknowledgements, pings) needs no answer
    // that cannot wait for the connection's end.
    let reader = async {
        loop {
            match rd.read(&mut read_buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if session.feed(&read_buf[..n]).is_err() {
                        return;
                    }
                    while let Some(event) = session.poll_event() {
                        if matches!(event, SessionEvent::DeleteStream { .. }) {
                            return;
                        }
                    }
                }
            }
        }
    };
    let player = inner
        .metrics
        .player(Protocol::rtmp, target.domain.as_deref().unwrap_or(""));
    let end = tokio::select! {
        end = output::play(&mut wr, prelude, sub, |f| &f.rtmp, inner.config.merge_write, &cancel, &player.bytes) => end,
        () = reader => PlayEnd::Disconnected,
    };
    tracing::debug!(%peer, stream = target.stream, "RTMP play ended: {end:?}");
    Ok(())
}
