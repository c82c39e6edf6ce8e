//! SRT ingest: one UDP port, every caller routed by its `streamid` before
//! its connection is accepted. Pushes only (`m=publish`, or no mode); a
//! player (`m=request`) is refused with 2405 (see [`caller`]).
//!
//! Tencent's push URL is
//! `srt://{push domain}:9000?streamid=#!::h={push domain},r={app}/{stream},txSecret=…,txTime=…`;
//! the `#!::` keys are SRT's access-control syntax (`h` host, `r`
//! resource, `m` mode), and every other key is a query parameter of the
//! push (`txSecret`, `txTime`, `domain`, …). A plain `app/stream?query`
//! streamid works too (the domain then comes from `domain=`).
//!
//! Owns: the listener (`srt-tokio`, sans-FFI; its handshake hands over the
//! streamid before the caller is accepted, which is where authorization
//! belongs), the mapping of refusals to SRT reject codes, and the read
//! loop that demuxes MPEG-TS ([`livestack_formats::ts_demux`]) into the
//! push. A push's authorization, registration and end are
//! [`crate::serve::ingest`]'s, the same as RTMP's. Must not: touch the
//! database or block the runtime.
//!
//! `srt-tokio` runs one task of its own for the listener and one per
//! connection: the listener's ends when [`serve`] closes it at shutdown,
//! a connection's when its socket is dropped at the end of its push.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use livestack_core::media::EndReason;
use livestack_formats::ts_demux::TsDemuxer;
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::{ConnectionRequest, SrtListener, SrtSocket};
use tokio::net::UdpSocket;
use tracing::Instrument as _;

use crate::metrics::MediaMetrics;
use crate::serve::access;
use crate::serve::ingest::{Push, Target};
use crate::Inner;

/// The receiver's latency (SRT's default is 120 ms; the caller's larger
/// one wins in the handshake).
const LATENCY: Duration = Duration::from_millis(120);
/// How long closing a connection may take once its push ended.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a caller asks for (`m=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `m=publish`, or no mode: a push.
    Publish,
    /// `m=request`: playback.
    Request,
}

/// Reads a caller's streamid: what it pushes or plays, and how.
pub(crate) fn parse_stream_id(id: &str) -> Option<(Target, Mode)> {
    let (host, resource, mode, query) = if let Some(pairs) = id.strip_prefix("#!::") {
        let (mut host, mut resource, mut mode) = (None, None, None);
        let mut query = form_urlencoded::Serializer::new(String::new());
        for pair in pairs.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=')?;
            match key {
                "h" => host = Some(value.to_ascii_lowercase()),
                "r" => resource = Some(value.to_owned()),
                "m" => mode = Some(value.to_owned()),
                // User, session and type name the caller, not the stream.
                "u" | "s" | "t" => {}
                _ => {
                    query.append_pair(key, value);
                }
            }
        }
        let mut query = query.finish();
        // A query on the resource (`r=live/s?txSecret=…`) joins the rest.
        let resource = resource?;
        let (resource, extra) = access::split_query(&resource);
        if !extra.is_empty() {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(extra);
        }
        (host, resource.to_owned(), mode, query)
    } else {
        let (resource, query) = access::split_query(id);
        (None, resource.to_owned(), None, query.to_owned())
    };
    let mode = match mode.as_deref() {
        None | Some("publish") => Mode::Publish,
        Some("request") => Mode::Request,
        Some(_) => return None,
    };
    let (app, stream) = resource.trim_start_matches('/').rsplit_once('/')?;
    Some((
        Target {
            domain: access::resolve_domain(host.as_deref(), &[&query]),
            app: app.to_owned(),
            stream: stream.to_owned(),
            query,
        },
        mode,
    ))
}

/// The SRT reject code a refused push gets (the caller's error shows it;
/// the CSS reason goes to the event log as for RTMP).
fn reject_reason(reason: EndReason) -> RejectReason {
    let code = match reason {
        EndReason::UnknownDomain => ServerRejectReason::Notfound,
        EndReason::NoTxTime
        | EndReason::Expired
        | EndReason::NoAuthParams
        | EndReason::BadSignature => ServerRejectReason::Unauthorized,
        EndReason::BadName => ServerRejectReason::BadRequest,
        EndReason::StoreUnavailable | EndReason::Shutdown => ServerRejectReason::Down,
        _ => ServerRejectReason::Forbidden,
    };
    RejectReason::Server(code)
}

/// Accepts SRT callers on `socket` until shutdown.
pub(crate) async fn serve(inner: Arc<Inner>, socket: UdpSocket) {
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => return tracing::error!("SRT listener has no address: {e}"),
    };
    let bound = SrtListener::builder()
        .socket(socket)
        .latency(LATENCY)
        .bind(local)
        .await;
    let (mut listener, mut incoming) = match bound {
        Ok(l) => l,
        Err(e) => return tracing::error!("cannot serve SRT on {local}: {e}"),
    };
    let mut warnings = livestack_core::limits::AcceptWarnings::default();
    loop {
        let request = tokio::select! {
            r = incoming.incoming().next() => r,
            () = inner.shutdown.cancelled() => break,
        };
        let Some(request) = request else { break };
        let peer = request.remote();
        let Some(permit) = inner.connections.try_acquire(peer.ip()) else {
            if let Some(more) = warnings.refused() {
                tracing::warn!(listener = "SRT", %peer, more, "connection refused: the connection limits are reached");
            }
            inner.tasks.spawn(async move {
                let _ = request
                    .reject(RejectReason::Server(ServerRejectReason::Overload))
                    .await;
            });
            continue;
        };
        let inner2 = Arc::clone(&inner);
        inner.tasks.spawn(async move {
            let _permit = permit;
            caller(inner2, request, local).await;
        });
    }
    listener.close().await;
}

/// One caller: authorize by its streamid, then ingest until it ends.
async fn caller(inner: Arc<Inner>, request: ConnectionRequest, local: SocketAddr) {
    let peer = request.remote();
    let id = request
        .stream_id()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let Some((target, mode)) = parse_stream_id(&id) else {
        tracing::info!(%peer, streamid = id, "SRT caller refused: the streamid names no app/stream");
        let _ = request
            .reject(RejectReason::Server(ServerRejectReason::BadRequest))
            .await;
        return;
    };
    let span = tracing::info_span!("push", domain = target.domain.as_deref().unwrap_or(""),
        app = %target.app, stream = %target.stream, %peer, protocol = "srt");
    if mode == Mode::Request {
        // SRT playback worked on an idle machine but not on a busy one
        // (srt-tokio sending to libsrt receivers: the README walk's
        // player never decoded a frame), so it is refused until it does.
        tracing::info!(%peer, app = %target.app, stream = %target.stream,
            "SRT caller refused: SRT playback (m=request) is not served; play over RTMP, HTTP-FLV or HLS");
        let _ = request
            .reject(RejectReason::Server(ServerRejectReason::BadMode))
            .await;
        return;
    }
    async move {
        let mut push = match Push::start(&inner, &target, peer, local).await {
            Ok(push) => push,
            Err(reason) => {
                let _ = request.reject(reject_reason(reason)).await;
                return;
            }
        };
        let socket = match request.accept(None).await {
            Ok(socket) => socket,
            Err(e) => {
                tracing::info!("SRT handshake failed: {e}");
                push.finish(&inner, EndReason::ProtocolError);
                return;
            }
        };
        let reason = ingest(&inner, &mut push, socket).await;
        push.finish(&inner, reason);
    }
    .instrument(span)
    .await;
}

/// The push's read loop: datagrams of TS packets in, frames to the hub;
/// returns why it ended. SRT's packet counts go to the metrics as
/// srt-tokio reports them (once a second), and into the log at the end:
/// the Live API has no field for a push's loss or latency.
async fn ingest(inner: &Inner, push: &mut Push, mut socket: SrtSocket) -> EndReason {
    let mut demux = TsDemuxer::new();
    let mut stats = socket.statistics().clone();
    let mut counted = Counted::default();
    let reason = loop {
        let next_due = push.next_due();
        tokio::select! {
            Some(s) = stats.next() => counted.update(&inner.metrics, &s),
            r = tokio::time::timeout(inner.config.idle_timeout, socket.next()) => match r {
                Ok(Some(Ok((_, data)))) => {
                    demux.push(&data);
                    frames(inner, push, &mut demux);
                    push.tick(inner);
                }
                Ok(Some(Err(e))) => {
                    tracing::debug!("SRT receive failed: {e}");
                    break EndReason::ProtocolError;
                }
                Ok(None) => {
                    // The last access unit has no successor to end it.
                    demux.finish();
                    frames(inner, push, &mut demux);
                    break EndReason::ClientClosed;
                }
                Err(_) => break EndReason::Idle,
            },
            () = push.live.cancelled() => break push.live.end_reason().unwrap_or(EndReason::Shutdown),
            () = async { match next_due { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => push.tick(inner),
        }
    };
    let stats = demux.stats();
    if stats.dropped_pes > 0 || stats.resync_bytes > 0 {
        tracing::info!(
            dropped_pes = stats.dropped_pes,
            resync_bytes = stats.resync_bytes,
            "the SRT feed had damaged or lost transport packets"
        );
    }
    let settings = socket.settings();
    tracing::info!(
        latency_ms = settings.recv_tsbpd_latency.as_millis() as u64,
        received = counted.received,
        lost = counted.lost,
        retransmitted = counted.retransmitted,
        dropped = counted.dropped,
        "SRT push's packets"
    );
    // Tells a caller the server ended it (a drop, a forbid, shutdown).
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close()).await;
    reason
}

/// An SRT push's packet counts so far (srt-tokio reports totals; the
/// metrics take the differences).
#[derive(Debug, Default)]
struct Counted {
    received: u64,
    lost: u64,
    retransmitted: u64,
    dropped: u64,
}

impl Counted {
    fn update(&mut self, metrics: &MediaMetrics, s: &srt_tokio::SocketStatistics) {
        use crate::metrics::SrtPackets;
        for (what, total, seen) in [
            (SrtPackets::received, s.rx_unique_data, &mut self.received),
            (SrtPackets::lost, s.rx_loss_data, &mut self.lost),
            (
                SrtPackets::retransmitted,
                s.rx_retransmit_data,
                &mut self.retransmitted,
            ),
            (SrtPackets::dropped, s.rx_dropped_data, &mut self.dropped),
        ] {
            metrics.srt(what, total.saturating_sub(*seen));
            *seen = (*seen).max(total);
        }
    }
}

fn frames(inner: &Inner, push: &mut Push, demux: &mut TsDemuxer) {
    while let Some(f) = demux.next_frame() {
        push.frame(inner, f.kind.into(), f.timestamp, f.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tencents_streamid_names_the_domain_the_stream_and_its_signature() {
        let (t, mode) =
            parse_stream_id("#!::h=Push.Example.com,r=live/s1,txSecret=abc,txTime=65F0A2B1")
                .unwrap();
        assert_eq!(mode, Mode::Publish);
        assert_eq!(t.domain.as_deref(), Some("push.example.com"));
        assert_eq!((t.app.as_str(), t.stream.as_str()), ("live", "s1"));
        assert_eq!(t.query, "txSecret=abc&txTime=65F0A2B1");
    }

    #[test]
    fn a_query_on_the_resource_and_the_mode_are_read_too() {
        let (t, mode) =
            parse_stream_id("#!::r=live/s1?txSecret=a&domain=push.example.com,m=request").unwrap();
        assert_eq!(mode, Mode::Request);
        assert_eq!(t.domain.as_deref(), Some("push.example.com"));
        assert_eq!(t.query, "txSecret=a&domain=push.example.com");
        let (t, mode) = parse_stream_id("live/s2?domain=push.example.com&txTime=1").unwrap();
        assert_eq!(mode, Mode::Publish);
        assert_eq!((t.app.as_str(), t.stream.as_str()), ("live", "s2"));
        assert_eq!(t.domain.as_deref(), Some("push.example.com"));
    }

    #[test]
    fn a_streamid_without_app_and_stream_or_with_an_unknown_mode_is_refused() {
        assert!(parse_stream_id("").is_none());
        assert!(parse_stream_id("#!::h=push.example.com").is_none());
        assert!(parse_stream_id("#!::r=live/s,m=bidirectional").is_none());
        assert!(parse_stream_id("#!::r=live/s,broken").is_none());
        assert!(parse_stream_id("justastream").is_none());
    }

    #[test]
    fn refusals_map_to_the_srt_reject_code_of_their_kind() {
        let code = |r| match reject_reason(r) {
            RejectReason::Server(c) => c as i32,
            _ => 0,
        };
        assert_eq!(code(EndReason::BadSignature), 2401);
        assert_eq!(code(EndReason::Expired), 2401);
        assert_eq!(code(EndReason::UnknownDomain), 2404);
        assert_eq!(code(EndReason::StreamForbidden), 2403);
        assert_eq!(code(EndReason::StoreUnavailable), 2503);
    }
}
