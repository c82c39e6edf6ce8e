//! RTMP connections, plain or inside TLS (RTMPS): ingest (publish) and
//! playback (play) on one port each.
//!
//! Owns: the accept loops and one task per connection driving a sans-IO
//! `ServerSession`, the publisher's read loop (the idle timeout,
//! `DropLiveStream`/`ForbidLiveStream` cancellation), play authorization
//! at the `play` command, and handing players to
//! [`crate::stream::output::play`]. A push's authorization, registration
//! and end are [`crate::serve::ingest`]'s, shared with SRT. Must not:
//! touch the database or block the runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use livestack_core::media::EndReason;
use livestack_rtmp::{strip_set_data_frame, ServerConfig, ServerSession, SessionEvent};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::Protocol;
use crate::serve::ingest::{Push, Target};
use crate::serve::playback::{self, PlayDenied};
use crate::stream::hub::{FrameKind, Wire};
use crate::stream::output::{self, PlayEnd};
use crate::Inner;

/// How long a connection may take to get to `publish` or `play`.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest message a connection may send before it is authorized
/// (`connect`, `createStream`, `publish` … are a few hundred bytes).
const SETUP_MAX_MESSAGE: u32 = 64 * 1024;
/// The bytes of partial messages it may hold meanwhile.
const SETUP_MAX_BUFFERED: usize = 256 * 1024;

pub(crate) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    crate::accept_loop(inner, listener, "RTMP", |inner, socket, peer| async move {
        let result = match socket.local_addr() {
            Ok(local) => {
                let (rd, wr) = socket.into_split();
                connection(inner, rd, wr, peer, local).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::debug!(%peer, "RTMP connection ended: {e}");
        }
    })
    .await;
}

/// RTMPS: RTMP inside TLS, with the certificate bound to the domain the
/// client names by SNI (push or play domain).
pub(crate) async fn accept_tls_loop(
    inner: Arc<Inner>,
    listener: TcpListener,
    config: Arc<tokio_rustls::rustls::ServerConfig>,
) {
    crate::serve::tls::accept_loop(
        inner,
        listener,
        config,
        "RTMPS",
        |inner, stream, peer, local| async move {
            let (rd, wr) = tokio::io::split(stream);
            if let Err(e) = connection(inner, rd, wr, peer, local).await {
                tracing::debug!(%peer, "RTMPS connection ended: {e}");
            }
        },
    )
    .await;
}

/// A connection: read until the client asks to publish or play.
async fn connection<R, W>(
    inner: Arc<Inner>,
    mut rd: R,
    mut wr: W,
    peer: SocketAddr,
    local: SocketAddr,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
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
                    let target = Target::from_rtmp(tc_url.as_deref(), &app, &name);
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
                    let target = Target::from_rtmp(tc_url.as_deref(), &app, &name);
                    let span = tracing::info_span!("play", domain = target.domain.as_deref().unwrap_or(""),
                        app = %target.app, stream = %target.stream, %peer);
                    // A player sends next to nothing: the read buffer
                    // sized for publishers is not kept for hours.
                    drop(buf);
                    return play(inner, session, rd, wr, peer, stream_id, target)
                        .instrument(span)
                        .await;
                }
                _ => {}
            }
        }
    }
}

async fn flush<W: AsyncWrite + Unpin>(
    session: &mut ServerSession,
    wr: &mut W,
) -> std::io::Result<()> {
    while let Some(out) = session.take_output() {
        wr.write_all(&out).await?;
    }
    Ok(())
}

/// A connection's I/O: the session state machine and the socket halves.
struct Conn<R, W> {
    session: ServerSession,
    rd: R,
    wr: W,
    buf: Vec<u8>,
    peer: SocketAddr,
    local: SocketAddr,
}

/// A push: authorize, register, ingest until it ends, finish.
async fn publish<R, W>(
    inner: Arc<Inner>,
    mut conn: Conn<R, W>,
    stream_id: u32,
    target: Target,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut push = match Push::start(&inner, &target, conn.peer, conn.local).await {
        Ok(push) => push,
        Err(reason) => {
            refuse(&mut conn, stream_id, reason).await;
            return Ok(());
        }
    };
    conn.session.accept_publish(stream_id);
    // An authorized publisher sends keyframes of any size RTMP allows.
    conn.session.set_input_limits(
        livestack_rtmp::chunk::DEFAULT_MAX_MESSAGE_LEN,
        livestack_rtmp::chunk::DEFAULT_MAX_BUFFERED,
    );
    let reason = ingest(&inner, &mut push, &mut conn).await;
    push.finish(&inner, reason);
    Ok(())
}

/// Answers a refused `publish` with the CSS reason (the refusal is
/// already logged and reported).
async fn refuse<R, W: AsyncWrite + Unpin>(
    conn: &mut Conn<R, W>,
    stream_id: u32,
    reason: EndReason,
) {
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
}

/// The publisher's read loop; returns why it ended.
async fn ingest<R, W>(inner: &Inner, push: &mut Push, conn: &mut Conn<R, W>) -> EndReason
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        // Events already decoded (possibly with the publish command).
        while let Some(event) = conn.session.poll_event() {
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
            push.frame(inner, kind, timestamp, payload);
        }
        push.tick(inner);
        if flush(&mut conn.session, &mut conn.wr).await.is_err() {
            return EndReason::ProtocolError;
        }
        let next_due = push.next_due();
        let n = tokio::select! {
            r = tokio::time::timeout(inner.config.idle_timeout, conn.rd.read(&mut conn.buf)) => match r {
                Ok(Ok(0)) => return EndReason::ClientClosed,
                Ok(Ok(n)) => n,
                Ok(Err(_)) => return EndReason::ProtocolError,
                Err(_) => return EndReason::Idle,
            },
            () = push.live.cancelled() => return push.live.end_reason().unwrap_or(EndReason::Shutdown),
            () = async { match next_due { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => continue,
        };
        if conn.session.feed(&conn.buf[..n]).is_err() {
            return EndReason::ProtocolError;
        }
    }
}

async fn play<R, W>(
    inner: Arc<Inner>,
    mut session: ServerSession,
    mut rd: R,
    mut wr: W,
    peer: SocketAddr,
    stream_id: u32,
    target: Target,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let live = match playback::open(&inner, &target, peer).await {
        Ok(live) => live,
        Err(denied) => {
            let code = match denied {
                PlayDenied::Forbidden => "NetStream.Play.Failed",
                PlayDenied::NoDomain | PlayDenied::NotLive => "NetStream.Play.StreamNotFound",
            };
            let why = denied.describe();
            tracing::info!("RTMP play refused: {why}");
            session.reject_play(stream_id, code, why);
            let _ = flush(&mut session, &mut wr).await;
            return Ok(());
        }
    };
    session.accept_play(stream_id);
    let mut prelude = Vec::new();
    while let Some(out) = session.take_output() {
        prelude.push(out);
    }
    let sub = live.hub.subscribe();
    let key = live.publisher.key.clone();
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
    let player = inner.player(
        Protocol::rtmp,
        target.domain.as_deref().unwrap_or(""),
        &key,
        peer.ip(),
    );
    let end = tokio::select! {
        end = output::play(&mut wr, prelude, sub, Wire::Rtmp, inner.config.merge_write, &cancel, |n| player.add(n)) => end,
        () = reader => PlayEnd::Disconnected,
    };
    tracing::debug!(%peer, stream = target.stream, "RTMP play ended: {end:?}");
    Ok(())
}
