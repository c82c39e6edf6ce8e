//! HTTP playback: HTTP-FLV and HLS, routed by the Host header to the play
//! domain.
//!
//! Owns: a small HTTP/1.1 server (request heads parsed with `httparse`,
//! keep-alive for playlists and segments), CORS for browser players, play
//! authentication and referer rules, and the HTTP-FLV stream. A hand-made
//! server rather than a framework because an HTTP-FLV response is an
//! endless body that wants the same batched vectored writes as RTMP
//! players, straight to the socket. Also serves the files of the local
//! record storage under `/records/<key>` (the `video_url`/`pic_url` of
//! callbacks): read-only, regular files only, no listing, nothing outside
//! the storage directory; a path that names no such file falls through to
//! playback, so an app called `records` still plays. Time-shift
//! playlists and segments (`txTimeshift=on`) come from
//! [`crate::stream::timeshift`]; the hourly access logs at
//! `/logs/<domain>/<file>` with a signed URL
//! ([`crate::deliver::access_log`]). And, in a cluster,
//! the relay pulls of other nodes (`/.livestack/relay/…`, see
//! [`crate::serve::relay`]). Must not: serve anything but playback,
//! recorded files and relay pulls.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use bytes::{Bytes, BytesMut};
use livestack_core::media::StreamKey;
use livestack_formats::llhls::LlFile;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::Protocol;
use crate::serve::access::{self, PlayRefusal};
use crate::stream::hub::Wire;
use crate::stream::live::Live;
use crate::stream::output;
use crate::Inner;

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted (an SDP offer is a few KiB).
const MAX_BODY: usize = 64 * 1024;
/// How long an idle keep-alive connection is kept.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// How long a master playlist waits for a new push's measurements.
const MEASURE_WAIT: Duration = Duration::from_secs(3);
/// How long a request head may take once its first byte has arrived: a
/// client trickling a byte every few seconds does not hold a connection.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    crate::accept_loop(inner, listener, "HTTP", |inner, socket, peer| async move {
        if let Err(e) = connection(inner, socket, peer).await {
            tracing::debug!(%peer, "HTTP connection ended: {e}");
        }
    })
    .await;
}

/// A parsed request head.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    query: String,
    host: Option<String>,
    referer: Option<String>,
    keep_alive: bool,
    /// `Range`, `If-None-Match`, `If-Modified-Since`, `If-Range`: for
    /// stored files.
    range: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    if_range: Option<String>,
    /// `Authorization`: a WHIP publisher's bearer token.
    authorization: Option<String>,
    /// `Content-Length` (0 when absent); bodies are read for POST only.
    content_length: usize,
    /// The body (WebRTC signalling).
    body: Bytes,
    /// The client's address (set once the head is parsed).
    peer: std::net::IpAddr,
}

fn parse_head(head: &[u8]) -> Option<Request> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let target = req.path?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::to_owned)
    };
    let connection = header("connection")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let keep_alive = match req.version {
        Some(0) => connection.contains("keep-alive"),
        _ => !connection.contains("close"),
    };
    Some(Request {
        method: req.method?.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        host: header("host"),
        referer: header("referer"),
        keep_alive,
        range: header("range"),
        if_none_match: header("if-none-match"),
        if_modified_since: header("if-modified-since"),
        if_range: header("if-range"),
        authorization: header("authorization"),
        content_length: header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
        body: Bytes::new(),
        peer: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    })
}

/// Accepts HTTPS connections: TLS with the play domain's certificate by
/// SNI, then the same HTTP handling.
pub(crate) async fn accept_tls_loop(
    inner: Arc<Inner>,
    listener: TcpListener,
    config: Arc<tokio_rustls::rustls::ServerConfig>,
) {
    crate::serve::tls::accept_loop(
        inner,
        listener,
        config,
        "HTTPS",
        |inner, stream, peer, _| async move {
            if let Err(e) = connection(inner, stream, peer).await {
                tracing::debug!(%peer, "HTTPS connection ended: {e}");
            }
        },
    )
    .await;
}

async fn connection<S>(inner: Arc<Inner>, mut socket: S, peer: SocketAddr) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        // Read one request head: the first byte within the keep-alive
        // time, the whole head within HEAD_TIMEOUT of it.
        let mut started = !buf.is_empty();
        let mut deadline =
            tokio::time::Instant::now() + if started { HEAD_TIMEOUT } else { KEEP_ALIVE };
        let head_len = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            if buf.len() > MAX_HEAD {
                respond(
                    &mut socket,
                    431,
                    "text/plain",
                    Bytes::from_static(b"request header too large\n"),
                    false,
                    false,
                )
                .await?;
                return Ok(());
            }
            let read = tokio::select! {
                r = tokio::time::timeout_at(deadline, socket.read_buf(&mut buf)) => r,
                () = inner.shutdown.cancelled() => return Ok(()),
            };
            match read {
                Ok(Ok(0)) | Err(_) => return Ok(()),
                Ok(Ok(_)) => {
                    if !started {
                        started = true;
                        deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
                    }
                }
                Ok(Err(e)) => return Err(e),
            }
        };
        let head = buf.split_to(head_len);
        let Some(mut req) = parse_head(&head) else {
            respond(
                &mut socket,
                400,
                "text/plain",
                Bytes::from_static(b"bad request\n"),
                false,
                false,
            )
            .await?;
            return Ok(());
        };
        if req.content_length > 0 {
            if req.content_length > MAX_BODY {
                respond(
                    &mut socket,
                    413,
                    "text/plain",
                    Bytes::from_static(b"request body too large\n"),
                    false,
                    false,
                )
                .await?;
                return Ok(());
            }
            let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
            while buf.len() < req.content_length {
                let read = tokio::select! {
                    r = tokio::time::timeout_at(deadline, socket.read_buf(&mut buf)) => r,
                    () = inner.shutdown.cancelled() => return Ok(()),
                };
                match read {
                    Ok(Ok(0)) | Err(_) => return Ok(()),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e),
                }
            }
            req.body = buf.split_to(req.content_length).freeze();
        }
        let keep_alive = req.keep_alive;
        // One span per request (an HTTP-FLV play lasts as long as its
        // request): the host and path name the domain, app and stream.
        let span = tracing::info_span!("play", %peer, host = req.host.as_deref().unwrap_or(""), path = %req.path);
        // Boxed, and the HTTP-FLV play run after it: `handle`'s state
        // machine is sized for its largest path (kilobytes), and a play
        // lasts hours; only the play's own state stays for its length.
        let mut play = None;
        let keep = Box::pin(handle(&inner, &mut socket, peer, req, &mut play))
            .instrument(span.clone())
            .await?;
        if let Some(p) = play {
            return flv(
                &inner,
                &mut socket,
                p.live,
                &p.domain,
                Protocol::flv,
                p.peer,
                p.head_only,
            )
            .instrument(span)
            .await;
        }
        if !keep || !keep_alive {
            return Ok(());
        }
    }
}

/// An HTTP-FLV play `handle` resolved, for the connection to run.
struct FlvPlay {
    live: Arc<Live>,
    domain: String,
    peer: std::net::IpAddr,
    head_only: bool,
}

/// Answers one request, or (an HTTP-FLV play) leaves it in `play` for
/// the connection to run; false when the connection must close.
async fn handle<S: AsyncWrite + Unpin>(
    inner: &Arc<Inner>,
    socket: &mut S,
    peer: SocketAddr,
    mut req: Request,
    play: &mut Option<FlvPlay>,
) -> std::io::Result<bool> {
    req.peer = peer.ip();
    let head_only = req.method == "HEAD";
    match req.method.as_str() {
        "GET" | "HEAD" => {}
        "POST" | "DELETE" | "PATCH" => return signal(inner, socket, peer, &req).await,
        "OPTIONS" => {
            // CORS preflight for browser players.
            respond(
                socket,
                204,
                "text/plain",
                Bytes::new(),
                req.keep_alive,
                true,
            )
            .await?;
            return Ok(true);
        }
        _ => {
            respond(
                socket,
                405,
                "text/plain",
                Bytes::from_static(b"method not allowed\n"),
                req.keep_alive,
                head_only,
            )
            .await?;
            return Ok(true);
        }
    }
    if req.path == PLAYER_PATH {
        respond(
            socket,
            200,
            "text/html; charset=utf-8",
            Bytes::from_static(PLAYER_PAGE.as_bytes()),
            req.keep_alive,
            head_only,
        )
        .await?;
        return Ok(true);
    }
    if let Some(rest) = req.path.strip_prefix(crate::serve::relay::PULL_PATH) {
        return relay_pull(inner, socket, peer, &req, rest, head_only).await;
    }
    if let Some(rest) = req.path.strip_prefix("/logs/") {
        // A path that is no signed log file falls through to playback, so
        // an app called `logs` still plays.
        let get = |k: &str| access::query_get(&req.query, k);
        let (secret, time) = (get("txSecret"), get("txTime"));
        if let Some(data) = inner
            .access_logs
            .file(rest, secret.as_deref(), time.as_deref())
            .await
        {
            respond(
                socket,
                200,
                "text/plain; charset=utf-8",
                Bytes::from(data),
                req.keep_alive,
                head_only,
            )
            .await?;
            return Ok(true);
        }
    }
    if let Some(key) = req.path.strip_prefix("/records/") {
        if let Some(found) = record_file(inner.storage.local_dir(), key).await {
            // The file exists; with signed URLs ([storage] sign_key) only
            // a valid signature over its key reads it.
            let tx_secret = access::query_get(&req.query, "txSecret");
            let tx_time = access::query_get(&req.query, "txTime");
            if !inner
                .storage
                .may_read(&found.key, tx_secret.as_deref(), tx_time.as_deref())
            {
                tracing::info!(%peer, key = found.key, "record download refused: bad or expired signature");
                return forbidden(socket, &req, head_only).await;
            }
            if found.content_type == PLAYLIST {
                if let Some(time) = tx_time.as_deref() {
                    return serve_signed_playlist(inner, socket, found, time, &req, head_only)
                        .await;
                }
            }
            return serve_record(inner, socket, found, &req, head_only).await;
        }
    }
    let Some((app, file)) = req.path.trim_start_matches('/').split_once('/') else {
        return not_found(socket, &req, head_only).await;
    };
    let (stream, kind) = match file.rsplit_once('.') {
        Some((s, "flv")) => (s, Kind::Flv),
        Some((s, "m3u8")) => (s, Kind::Playlist),
        Some((s, "ts")) => match s.rsplit_once('-') {
            Some((stream, _)) => (stream, Kind::Segment),
            None => return not_found(socket, &req, head_only).await,
        },
        Some((s, "m4s" | "mp4")) => match s.rsplit_once("-ll-") {
            Some((stream, _)) => (stream, Kind::LlFile),
            None => return not_found(socket, &req, head_only).await,
        },
        _ => return not_found(socket, &req, head_only).await,
    };
    let host = req.host.as_deref().map(access::strip_port);
    let domain = access::resolve_domain(host, &[&req.query]).unwrap_or_default();
    let policy = inner.policy();
    let decision = access::authorize_play(
        &policy,
        &domain,
        app,
        stream,
        &req.query,
        Some(req.referer.as_deref()),
        inner.clock.unix(),
    );
    // What a refusal counts under in the play statistics: the domain's
    // account, the stream asked for.
    let refused = |status: u16, account| {
        let key = StreamKey {
            account,
            app: app.to_owned(),
            stream: stream.to_owned(),
        };
        let protocol = match kind {
            Kind::Flv => livestack_core::media::PlayProtocol::Flv,
            _ => livestack_core::media::PlayProtocol::Hls,
        };
        let play = crate::stream::plays::PlayKey::new(&key, &domain, protocol);
        inner
            .plays
            .refused(play, req.peer, status, inner.clock.unix_ms());
    };
    let account = match decision {
        Ok(a) => a,
        Err(PlayRefusal::Forbidden) => {
            tracing::info!(%peer, domain, app, stream, "HTTP play refused: forbidden");
            if let Some(d) = policy.domain(&domain) {
                refused(403, d.account);
            }
            return forbidden(socket, &req, head_only).await;
        }
        Err(PlayRefusal::NotFound) => return not_found(socket, &req, head_only).await,
    };
    let key = StreamKey {
        account,
        app: app.to_owned(),
        stream: stream.to_owned(),
    };
    if matches!(kind, Kind::Playlist | Kind::Segment)
        && access::query_get(&req.query, "txTimeshift").as_deref() == Some("on")
    {
        return timeshift(inner, socket, &key, &domain, kind, file, &req, head_only).await;
    }
    if matches!(kind, Kind::Playlist) {
        if let Some(body) = adaptive_playlist(inner, &policy, &key, &domain, &req.query).await {
            respond(
                socket,
                200,
                "application/vnd.apple.mpegurl",
                Bytes::from(body),
                req.keep_alive,
                head_only,
            )
            .await?;
            return Ok(true);
        }
    }
    let Some(live) = inner.processor.resolve_play(inner, &key, &domain).await else {
        refused(404, account);
        return not_found(socket, &req, head_only).await;
    };
    if live.publisher.relay && !matches!(kind, Kind::Flv) {
        live.touch();
    }
    match kind {
        Kind::Playlist if wants_ll(inner, &domain, &req.query) => {
            ll_playlist(inner, socket, &live, &domain, &req, head_only).await
        }
        Kind::LlFile => ll_file(inner, socket, &live, &domain, file, &req, head_only).await,
        Kind::Playlist => {
            live.start_hls();
            if !live.has_segments() {
                // HLS started by this very request (or a relay it
                // started): the first segment is a GOP or so away; an HLS
                // player asks once, not again.
                wait_for_segments(inner, &live).await;
            }
            if !live.has_segments() {
                // The first segment is still being cut: players retry.
                return not_found(socket, &req, head_only).await;
            }
            playlist(
                inner,
                socket,
                &domain,
                &key,
                live.playlist(&req.query),
                &req,
                head_only,
            )
            .await
        }
        Kind::Segment => match live.start_hls().segment(file) {
            Some(data) => {
                inner.hls_request(&domain, &key, req.peer, 200, data.len());
                respond(socket, 200, "video/mp2t", data, req.keep_alive, head_only).await?;
                Ok(true)
            }
            None => not_found(socket, &req, head_only).await,
        },
        Kind::Flv => {
            *play = Some(FlvPlay {
                live,
                domain,
                peer: req.peer,
                head_only,
            });
            Ok(false)
        }
    }
}

/// WebRTC signalling: WHEP (`POST /<app>/<stream>/whep` with an SDP
/// offer, `DELETE` of the session it creates) and Tencent's LEB
/// (`POST /webrtc/v1/pullstream` and `/webrtc/v1/stopstream`, JSON).
async fn signal<S: AsyncWrite + Unpin>(
    inner: &Arc<Inner>,
    socket: &mut S,
    peer: SocketAddr,
    req: &Request,
) -> std::io::Result<bool> {
    use crate::serve::webrtc;
    let method = req.method.as_str();
    if method == "DELETE" {
        if let Some(id) = req.path.strip_prefix(webrtc::SESSION_PATH) {
            let closed = inner.webrtc.get().is_some_and(|w| w.close(id));
            if closed {
                return plain(socket, req, false, 200, b"").await;
            }
        }
        return not_found(socket, req, false).await;
    }
    if method == "PATCH" {
        // Trickle ICE: the server is ICE-lite with its one candidate in
        // the answer, and the peer's checks reach it; nothing to add.
        return plain(socket, req, false, 405, b"trickle ICE is not used\n").await;
    }
    if req.path == "/webrtc/v1/pullstream" || req.path == "/webrtc/v1/stopstream" {
        let reply = match req.path.as_str() {
            "/webrtc/v1/pullstream" => webrtc::leb_pull(inner, peer, &req.body).await,
            _ => webrtc::leb_stop(inner, &req.body),
        };
        respond(
            socket,
            200,
            "application/json",
            Bytes::from(reply.to_string()),
            req.keep_alive,
            false,
        )
        .await?;
        return Ok(true);
    }
    let (path, whip) = match (
        req.path.strip_suffix("/whep"),
        req.path.strip_suffix("/whip"),
    ) {
        (Some(p), _) => (p, false),
        (_, Some(p)) => (p, true),
        _ => return not_found(socket, req, false).await,
    };
    let Some((app, stream)) = path.trim_start_matches('/').split_once('/') else {
        return not_found(socket, req, false).await;
    };
    let host = req.host.as_deref().map(access::strip_port);
    let mut query = req.query.clone();
    // WHIP clients (OBS among them) send their stream key as a bearer
    // token: `txSecret=…&txTime=…` there signs the push like a query.
    if let Some(token) = req
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .filter(|_| whip)
    {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(token.trim().trim_start_matches('?'));
    }
    let target = crate::serve::ingest::Target {
        domain: access::resolve_domain(host, &[&query]),
        app: app.to_owned(),
        stream: stream.to_owned(),
        query,
    };
    let offer = String::from_utf8_lossy(&req.body);
    let result = if whip {
        webrtc::publish(inner, &target, peer, &offer).await
    } else {
        webrtc::play(inner, &target, peer, &offer).await
    };
    match result {
        Ok((id, answer)) => {
            let location = format!("Location: {}{id}\r\n", webrtc::SESSION_PATH);
            respond_with(
                socket,
                201,
                "application/sdp",
                &location,
                Bytes::from(answer),
                req.keep_alive,
                false,
            )
            .await?;
            Ok(true)
        }
        Err(refusal) => {
            let what = if whip { "WHIP push" } else { "WHEP play" };
            tracing::info!(%peer, app, stream, "{what} refused: {}", refusal.describe());
            respond(
                socket,
                refusal.http_status(),
                "text/plain",
                Bytes::from(format!("{}\n", refusal.describe())),
                req.keep_alive,
                false,
            )
            .await?;
            Ok(true)
        }
    }
}

/// Whether a playlist request gets LL-HLS: its play domain serves it
/// (`[media] ll_hls_domains`), or it asks with `ll=1`.
fn wants_ll(inner: &Inner, domain: &str, query: &str) -> bool {
    access::query_get(query, "ll").is_some_and(|v| v == "1")
        || inner
            .config
            .ll_hls_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
}

/// How long a blocking LL-HLS request is held for its part (a few part
/// targets; the spec asks servers to answer within three target
/// durations).
const LL_HOLD: Duration = Duration::from_secs(6);

/// Holds until `ready` says yes, the packager's generation moving in
/// between, or `LL_HOLD` passes; returns `ready`'s last answer.
async fn ll_wait(inner: &Inner, live: &Live, ready: impl Fn(&Live) -> bool) -> bool {
    let mut generation = live.ll_watch();
    let deadline = tokio::time::Instant::now() + LL_HOLD;
    loop {
        if ready(live) {
            return true;
        }
        tokio::select! {
            r = generation.changed() => if r.is_err() { return ready(live) },
            () = tokio::time::sleep_until(deadline) => return ready(live),
            () = inner.shutdown.cancelled() => return false,
        }
    }
}

/// The play query without LL-HLS's own parameters: what every URI of
/// the playlist carries (signatures, `domain=`, `ll=`).
fn ll_suffix(query: &str) -> String {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("_HLS_"))
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
}

/// An LL-HLS media playlist, held while `_HLS_msn`/`_HLS_part` name a
/// part not cut yet (blocking playlist reload), a delta update for
/// `_HLS_skip=YES`.
async fn ll_playlist<S: AsyncWrite + Unpin>(
    inner: &Arc<Inner>,
    socket: &mut S,
    live: &Arc<Live>,
    domain: &str,
    req: &Request,
    head_only: bool,
) -> std::io::Result<bool> {
    live.start_ll(LL_PART_TARGET_MS);
    let number = |key| access::query_get(&req.query, key).and_then(|v| v.parse::<u64>().ok());
    let msn = number("_HLS_msn");
    let part = number("_HLS_part").map(|p| p.min(u64::from(u32::MAX)) as u32);
    if let Some(msn) = msn {
        if live.ll(|p| p.too_far(msn)).unwrap_or(false) {
            return plain(
                socket,
                req,
                head_only,
                400,
                b"_HLS_msn is too far ahead
",
            )
            .await;
        }
        ll_wait(inner, live, |l| l.ll(|p| p.has(msn, part)).unwrap_or(false)).await;
    } else {
        // A stream that just started packaging has its first whole
        // segment a segment target after its next keyframe: players that
        // know nothing of parts (and hls.js's first load) need one.
        ll_wait(inner, live, |l| l.ll(|p| p.has_segment()).unwrap_or(false)).await;
    }
    let skip = access::query_get(&req.query, "_HLS_skip").is_some_and(|v| v == "YES" || v == "v2");
    let Some(body) = live.ll_playlist(&ll_suffix(&req.query), skip) else {
        return not_found(socket, req, head_only).await;
    };
    playlist(
        inner,
        socket,
        domain,
        &live.publisher.key,
        body,
        req,
        head_only,
    )
    .await
}

/// A live playlist, counted as an HLS request of `domain`.
async fn playlist<S: AsyncWrite + Unpin>(
    inner: &Inner,
    socket: &mut S,
    domain: &str,
    key: &StreamKey,
    body: String,
    req: &Request,
    head_only: bool,
) -> std::io::Result<bool> {
    let body = Bytes::from(body);
    inner.hls_request(domain, key, req.peer, 200, body.len());
    respond(
        socket,
        200,
        "application/vnd.apple.mpegurl",
        body,
        req.keep_alive,
        head_only,
    )
    .await?;
    Ok(true)
}

/// Time-shift playback (`txTimeshift=on`, already authorized): a
/// playlist of the window `tsStart`–`tsEnd` or `tsDelay` behind the live
/// edge, and its segments, from what the stream's time-shift rule kept.
/// The stream need not be live. A malformed window is 400 with the
/// reason; a window with nothing kept, or a transcoded output
/// (`tsCodecname`: only the pushed or watermarked stream is kept), is 404.
#[allow(clippy::too_many_arguments)]
async fn timeshift<S: AsyncWrite + Unpin>(
    inner: &Inner,
    socket: &mut S,
    key: &StreamKey,
    domain: &str,
    kind: Kind,
    file: &str,
    req: &Request,
    head_only: bool,
) -> std::io::Result<bool> {
    use crate::stream::timeshift::{Window, WindowError};
    if access::query_get(&req.query, "tsCodecname").is_some_and(|c| !c.is_empty()) {
        return not_found(socket, req, head_only).await;
    }
    if matches!(kind, Kind::Segment) {
        let seq = file
            .strip_suffix(".ts")
            .and_then(|s| s.rsplit_once('-'))
            .and_then(|(_, n)| n.parse::<u64>().ok());
        let Some(path) = seq.and_then(|n| inner.timeshift.segment_path(key, n)) else {
            return not_found(socket, req, head_only).await;
        };
        let Ok(data) = tokio::fs::read(&path).await else {
            // Pruned since the playlist listed it.
            return not_found(socket, req, head_only).await;
        };
        inner.hls_request(domain, key, req.peer, 200, data.len());
        respond(
            socket,
            200,
            "video/mp2t",
            Bytes::from(data),
            req.keep_alive,
            head_only,
        )
        .await?;
        return Ok(true);
    }
    let now = inner.clock.unix_ms();
    let (stream, query) = (&key.stream, &req.query);
    let listed = Window::from_query(query, now).and_then(|w| {
        inner
            .timeshift
            .playlist(key, w, now, inner.config.hls_window, |seq| {
                format!("{stream}-{seq}.ts?{query}")
            })
    });
    match listed {
        Ok(body) => playlist(inner, socket, domain, key, body, req, head_only).await,
        Err(WindowError::Empty) => not_found(socket, req, head_only).await,
        Err(WindowError::Bad(why)) => {
            respond(
                socket,
                400,
                "text/plain",
                Bytes::from(format!("{why}\n")),
                req.keep_alive,
                head_only,
            )
            .await?;
            Ok(true)
        }
    }
}

/// The longest LL-HLS part. A third of a second (Apple's example value)
/// puts `PART-HOLD-BACK`, three part targets, at 1 s: with 0.5 s parts
/// hls.js played 1.8–2.3 s behind the publisher on loopback, with these
/// 1.2–1.8 s (`docs/benchmarks.md`).
const LL_PART_TARGET_MS: u32 = 334;

/// An LL-HLS file; a request for the part being cut (the playlist's
/// preload hint) is held until it is.
async fn ll_file<S: AsyncWrite + Unpin>(
    inner: &Arc<Inner>,
    socket: &mut S,
    live: &Arc<Live>,
    domain: &str,
    file: &str,
    req: &Request,
    head_only: bool,
) -> std::io::Result<bool> {
    let mut found = live.ll_file(file);
    if let Some((LlFile::Part(msn, part), None)) = found {
        if !live.ll(|p| p.too_far(msn)).unwrap_or(true) {
            ll_wait(inner, live, |l| {
                l.ll(|p| p.has(msn, Some(part))).unwrap_or(false)
            })
            .await;
            found = live.ll_file(file);
        }
    }
    let Some((what, Some(data))) = found else {
        return not_found(socket, req, head_only).await;
    };
    let content_type = match what {
        LlFile::Init(_) => "video/mp4",
        _ => "video/iso.segment",
    };
    inner.hls_request(domain, &live.publisher.key, req.peer, 200, data.len());
    respond(socket, 200, content_type, data, req.keep_alive, head_only).await?;
    Ok(true)
}

/// How long a playlist request waits for the first segment of a stream
/// whose HLS it started (or of a new edge relay).
const RELAY_SEGMENT_WAIT: Duration = Duration::from_secs(8);

async fn wait_for_segments(inner: &Inner, live: &Live) {
    let deadline = tokio::time::Instant::now() + RELAY_SEGMENT_WAIT;
    while !live.has_segments() && tokio::time::Instant::now() < deadline {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
            () = inner.shutdown.cancelled() => return,
        }
    }
}

/// Another node's edge relay pulling a stream pushed here: the same
/// HTTP-FLV stream a player gets, for a signed request only, from the
/// pushes of this node only (relays never chain).
async fn relay_pull<S: AsyncWrite + Unpin>(
    inner: &Arc<Inner>,
    socket: &mut S,
    peer: SocketAddr,
    req: &Request,
    rest: &str,
    head_only: bool,
) -> std::io::Result<bool> {
    use crate::serve::relay::{check_pull, PullRefusal};
    let pull = match check_pull(inner, rest, &req.query) {
        Ok(pull) => pull,
        Err(PullRefusal::NotFound) => return not_found(socket, req, head_only).await,
        Err(PullRefusal::Forbidden) => {
            tracing::warn!(%peer, "relay pull refused: no valid cluster signature");
            return forbidden(socket, req, head_only).await;
        }
    };
    let Some(live) = inner
        .processor
        .resolve_local(inner, &pull.key, &pull.domain)
        .await
    else {
        tracing::info!(%peer, app = pull.key.app, stream = pull.key.stream, "relay pull: the stream is not pushed here");
        return not_found(socket, req, head_only).await;
    };
    tracing::info!(%peer, app = pull.key.app, stream = pull.key.stream, "relay pull started");
    flv(
        inner,
        socket,
        live,
        &pull.domain,
        Protocol::relay,
        peer.ip(),
        head_only,
    )
    .await?;
    Ok(false)
}

/// The multi-variant playlist of an adaptive-bitrate transcode
/// (`StreamName_Adaptive.m3u8`): one variant per child, each a transcoded
/// output of its own (`StreamName_Child.m3u8`) started on demand. `None`
/// when `key` does not name an adaptive template's output of a live
/// stream.
/// The picture size of an output asked for as `width`×`height` (0: follow
/// the other side, keeping the source's aspect ratio; both 0: the
/// source's), rounded to even numbers as encoders need.
fn output_size(width: u32, height: u32, src_w: u32, src_h: u32) -> Option<(u32, u32)> {
    let even = |v: f64| ((v / 2.0).round() as u32).max(1) * 2;
    match (width, height) {
        (0, 0) if src_w > 0 && src_h > 0 => Some((src_w, src_h)),
        (0, h) if h > 0 && src_w > 0 && src_h > 0 => {
            Some((even(f64::from(h) * f64::from(src_w) / f64::from(src_h)), h))
        }
        (w, 0) if w > 0 && src_w > 0 && src_h > 0 => {
            Some((w, even(f64::from(w) * f64::from(src_h) / f64::from(src_w))))
        }
        (w, h) if w > 0 && h > 0 => Some((w, h)),
        _ => None,
    }
}

/// The RFC 6381 codecs of a rung: its video profile and AAC-LC.
fn codecs(r: &livestack_core::rules::Rendition, profile: livestack_core::rules::Profile) -> String {
    use livestack_core::rules::{Profile, VideoCodec};
    let video = match (r.video_codec, profile) {
        (VideoCodec::H265, _) => "hvc1.1.6.L120.90",
        (_, Profile::Baseline) => "avc1.42e01f",
        (_, Profile::Main) => "avc1.4d401f",
        (_, Profile::High) => "avc1.640028",
    };
    format!("{video},mp4a.40.2")
}

async fn adaptive_playlist(
    inner: &Arc<Inner>,
    policy: &livestack_core::media::Policy,
    key: &StreamKey,
    domain: &str,
    query: &str,
) -> Option<String> {
    use livestack_core::rules::{StreamRef, TemplateSpec};
    let at = StreamRef {
        account: key.account,
        domain,
        app: &key.app,
        stream: &key.stream,
    };
    let (template, base) = policy.processing.transcode_request(&at)?;
    let TemplateSpec::Transcode(spec) = &template.spec else {
        return None;
    };
    let suffix = livestack_core::rules::OutputName::parse(&key.stream)?.template;
    if !spec.adaptive || suffix != template.name || spec.children.is_empty() {
        return None;
    }
    let source_key = StreamKey {
        stream: base.clone(),
        ..key.clone()
    };
    let mut source = inner.live(&source_key)?.snapshot();
    // A push that has just started may not be measured yet; the rungs'
    // attributes come from it, and players read the master only once.
    let deadline = tokio::time::Instant::now() + MEASURE_WAIT;
    while (source.width == 0 || source.fps <= 0.0) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        source = inner.live(&source_key)?.snapshot();
    }
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
    for child in &spec.children {
        let output = StreamKey {
            stream: livestack_core::rules::OutputName::format(&base, &child.name),
            ..key.clone()
        };
        inner
            .processor
            .ask(&output, crate::process::Demanded::Transcode(template.id));
        // What the rung will be, as its transcode fits it to the source:
        // players choose rungs by these attributes.
        let r = crate::process::fit_to_source(&child.output, Some(&source));
        let bandwidth = (u64::from(r.video_bitrate) + u64::from(r.audio_bitrate.max(1))) * 1000;
        out.push_str(&format!("#EXT-X-STREAM-INF:BANDWIDTH={bandwidth}"));
        if let Some((w, h)) = output_size(r.width, r.height, source.width, source.height) {
            out.push_str(&format!(",RESOLUTION={w}x{h}"));
        }
        let fps = if r.fps > 0 {
            f64::from(r.fps)
        } else {
            source.fps
        };
        if fps > 0.0 {
            out.push_str(&format!(",FRAME-RATE={fps:.3}"));
        }
        out.push_str(&format!(",CODECS=\"{}\"", codecs(&r, spec.profile)));
        out.push('\n');
        let q = child_query(policy, domain, &output.stream, query);
        out.push_str(&format!("{}.m3u8{q}\n", output.stream));
    }
    Some(out)
}

/// The query a variant URI of an adaptive playlist carries: the player's
/// query re-signed for the child's name (play signatures cover the
/// suffixed name, and livestack has the key), with the same expiry.
fn child_query(
    policy: &livestack_core::media::Policy,
    domain: &str,
    child: &str,
    query: &str,
) -> String {
    let auth = policy.domain(domain).and_then(|d| d.auth.as_ref());
    let expiry = access::query_get(query, "txTime").and_then(|t| i64::from_str_radix(&t, 16).ok());
    match (auth.and_then(|a| a.keys.first()), expiry) {
        (Some(key), Some(expiry)) => {
            format!("?{}", livestack_core::urlsign::query(key, child, expiry))
        }
        _ if query.is_empty() => String::new(),
        _ => format!("?{query}"),
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Flv,
    Playlist,
    Segment,
    /// An LL-HLS initialization segment, segment or part.
    LlFile,
}

async fn flv<S: AsyncWrite + Unpin>(
    inner: &Arc<Inner>,
    socket: &mut S,
    live: Arc<Live>,
    domain: &str,
    protocol: Protocol,
    peer: std::net::IpAddr,
    head_only: bool,
) -> std::io::Result<()> {
    // No Content-Length and `Connection: close`: the body runs until the
    // stream ends, written raw (no chunked framing to pay for per write).
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nConnection: close\r\n\
         Cache-Control: no-cache\r\n{CORS}\r\n"
    );
    if head_only {
        socket.write_all(head.as_bytes()).await?;
        return Ok(());
    }
    let sub = live.hub.subscribe();
    let key = live.publisher.key.clone();
    drop(live);
    let prelude = vec![
        Bytes::from(head),
        livestack_formats::flv::encode_header(true, true),
    ];
    let cancel = inner.shutdown.child_token();
    // A relay is one connection per stream per edge, on which every
    // edge player's latency rides: its writes are merged briefly.
    let merge = match protocol {
        Protocol::relay => crate::serve::relay::PULL_MERGE.min(inner.config.merge_write),
        _ => inner.config.merge_write,
    };
    let player = inner.player(protocol, domain, &key, peer);
    let end = output::play(socket, prelude, sub, Wire::Flv, merge, &cancel, |n| {
        player.add(n)
    })
    .await;
    tracing::debug!("HTTP-FLV play ended: {end:?}");
    Ok(())
}

/// The WebRTC player page (WHEP in plain browser APIs).
const PLAYER_PATH: &str = "/webrtc/player.html";
const PLAYER_PAGE: &str = include_str!("../../assets/webrtc-player.html");

/// The content type of HLS playlists.
const PLAYLIST: &str = "application/vnd.apple.mpegurl";

/// A file of the local record storage, opened.
struct RecordFile {
    /// Its key (decoded), which signatures cover.
    key: String,
    file: tokio::fs::File,
    len: u64,
    /// Unix milliseconds of the last change.
    modified_ms: i64,
    content_type: &'static str,
}

/// The file `/records/<encoded>` names, when it is a regular file inside
/// `root`: the key is percent-decoded and must be a safe key with no
/// hidden level (copies in progress are `.name.partial`), and its real
/// path, symlinks resolved, must stay inside `root`.
async fn record_file(root: &Path, encoded: &str) -> Option<RecordFile> {
    let key = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()?;
    livestack_core::naming::check_key(&key).ok()?;
    if key.split('/').any(|level| level.starts_with('.')) {
        return None;
    }
    let root = tokio::fs::canonicalize(root).await.ok()?;
    let path = tokio::fs::canonicalize(root.join(&*key)).await.ok()?;
    if !path.starts_with(&root) {
        return None;
    }
    let file = tokio::fs::File::open(&path).await.ok()?;
    let meta = file.metadata().await.ok()?;
    if !meta.is_file() {
        return None;
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let content_type = match ext.as_str() {
        "flv" => "video/x-flv",
        "mp4" => "video/mp4",
        "m3u8" => PLAYLIST,
        "ts" => "video/mp2t",
        "aac" => "audio/aac",
        "mp3" => "audio/mpeg",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        _ => "application/octet-stream",
    };
    let modified_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    Some(RecordFile {
        key: key.into_owned(),
        file,
        len: meta.len(),
        modified_ms,
        content_type,
    })
}

/// Sends a recorded file; false when the connection must close (the file
/// changed size under us, or shutdown).
/// A recorded HLS playlist under signed URLs: each segment line gets a
/// signature of its own that expires with the playlist's, since a player
/// asks for segments by their bare relative names.
async fn serve_signed_playlist<S: AsyncWrite + Unpin>(
    inner: &Arc<Inner>,
    socket: &mut S,
    mut found: RecordFile,
    tx_time: &str,
    req: &Request,
    head_only: bool,
) -> std::io::Result<bool> {
    // Recorded playlists are small (a line per segment); a bound keeps a
    // stray large file from being read into memory.
    const MAX_PLAYLIST: u64 = 16 << 20;
    if found.len > MAX_PLAYLIST {
        return serve_record(inner, socket, found, req, head_only).await;
    }
    let mut text = String::new();
    found.file.read_to_string(&mut text).await?;
    let dir = found.key.rsplit_once('/').map_or("", |(d, _)| d);
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        let uri = line.trim();
        let relative = !uri.is_empty()
            && !uri.starts_with('#')
            && !uri.contains("://")
            && !uri.starts_with('/')
            && !uri.contains('?');
        out.push_str(line);
        if relative {
            let key = if dir.is_empty() {
                uri.to_owned()
            } else {
                format!("{dir}/{uri}")
            };
            if let Some(q) = inner.storage.sign_until(&key, tx_time) {
                out.push('?');
                out.push_str(&q);
            }
        }
        out.push('\n');
    }
    respond(
        socket,
        200,
        PLAYLIST,
        Bytes::from(out),
        req.keep_alive,
        head_only,
    )
    .await?;
    Ok(true)
}

async fn serve_record<S: AsyncWrite + Unpin>(
    inner: &Arc<Inner>,
    socket: &mut S,
    mut found: RecordFile,
    req: &Request,
    head_only: bool,
) -> std::io::Result<bool> {
    use super::ranges::{reply, Conditions, Reply, Validators};
    use tokio::io::AsyncSeekExt as _;

    let validators = Validators::new(found.len, found.modified_ms);
    let conditions = Conditions {
        range: req.range.as_deref(),
        if_none_match: req.if_none_match.as_deref(),
        if_modified_since: req.if_modified_since.as_deref(),
        if_range: req.if_range.as_deref(),
    };
    let len = found.len;
    let (status, start, count, extra) = match reply(&conditions, &validators, len) {
        Reply::NotModified => ("304 Not Modified", 0, 0, String::new()),
        Reply::Full => ("200 OK", 0, len, String::new()),
        Reply::Partial { start, end } => (
            "206 Partial Content",
            start,
            end - start + 1,
            format!("Content-Range: bytes {start}-{end}/{len}\r\n"),
        ),
        Reply::Unsatisfiable => (
            "416 Range Not Satisfiable",
            0,
            0,
            format!("Content-Range: bytes */{len}\r\n"),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {count}\r\n\
         Accept-Ranges: bytes\r\nETag: {}\r\nLast-Modified: {}\r\n{extra}\
         Connection: {}\r\n{CORS}\r\n",
        found.content_type,
        validators.etag,
        validators.last_modified,
        if req.keep_alive {
            "keep-alive"
        } else {
            "close"
        }
    );
    socket.write_all(head.as_bytes()).await?;
    if head_only || count == 0 {
        socket.flush().await?;
        return Ok(true);
    }
    if start > 0 {
        found.file.seek(std::io::SeekFrom::Start(start)).await?;
    }
    let mut body = tokio::io::BufReader::with_capacity(64 * 1024, found.file.take(count));
    let sent = tokio::select! {
        r = tokio::io::copy_buf(&mut body, socket) => r?,
        () = inner.shutdown.cancelled() => return Ok(false),
    };
    socket.flush().await?;
    Ok(sent == count)
}

const CORS: &str = "Access-Control-Allow-Origin: *\r\n\
                    Access-Control-Allow-Methods: GET, HEAD, OPTIONS, POST, DELETE, PATCH\r\n\
                    Access-Control-Allow-Headers: *\r\n\
                    Access-Control-Expose-Headers: *\r\n";

async fn forbidden<S: AsyncWrite + Unpin>(
    socket: &mut S,
    req: &Request,
    head_only: bool,
) -> std::io::Result<bool> {
    plain(socket, req, head_only, 403, b"forbidden\n").await
}

async fn not_found<S: AsyncWrite + Unpin>(
    socket: &mut S,
    req: &Request,
    head_only: bool,
) -> std::io::Result<bool> {
    plain(socket, req, head_only, 404, b"not found\n").await
}

/// A short plain-text answer; the connection stays usable.
async fn plain<S: AsyncWrite + Unpin>(
    socket: &mut S,
    req: &Request,
    head_only: bool,
    status: u16,
    body: &'static [u8],
) -> std::io::Result<bool> {
    respond(
        socket,
        status,
        "text/plain",
        Bytes::from_static(body),
        req.keep_alive,
        head_only,
    )
    .await?;
    Ok(true)
}

async fn respond<S: AsyncWrite + Unpin>(
    socket: &mut S,
    status: u16,
    content_type: &str,
    body: Bytes,
    keep_alive: bool,
    head_only: bool,
) -> std::io::Result<()> {
    respond_with(
        socket,
        status,
        content_type,
        "",
        body,
        keep_alive,
        head_only,
    )
    .await
}

/// [`respond`] with `extra` header lines (each ending in CRLF).
async fn respond_with<S: AsyncWrite + Unpin>(
    socket: &mut S,
    status: u16,
    content_type: &str,
    extra: &str,
    body: Bytes,
    keep_alive: bool,
    head_only: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        409 => "Conflict",
        413 => "Content Too Large",
        503 => "Service Unavailable",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\nConnection: {}\r\n{extra}{CORS}\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    let body = (!head_only && !body.is_empty()).then_some(body);
    output::write_all(socket, std::iter::once(Bytes::from(head)).chain(body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_give_path_query_host_and_keep_alive() {
        let r = parse_head(b"GET /live/cam.flv?txSecret=a&txTime=b HTTP/1.1\r\nHost: play.example.com:8080\r\nReferer: http://a.com/\r\n\r\n").expect("parses");
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.query.as_str()),
            ("GET", "/live/cam.flv", "txSecret=a&txTime=b")
        );
        assert_eq!(r.host.as_deref(), Some("play.example.com:8080"));
        assert_eq!(r.referer.as_deref(), Some("http://a.com/"));
        assert!(r.keep_alive);
        let r = parse_head(b"GET / HTTP/1.0\r\n\r\n").expect("parses");
        assert!(!r.keep_alive);
        assert!(parse_head(b"garbage\r\n\r\n").is_none());
    }
}
