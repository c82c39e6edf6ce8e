//! WebRTC playback (WHEP and Tencent's LEB signalling) on one UDP port.
//!
//! Owns: the UDP socket and the router that hands each datagram to its
//! session (by source address once known, else by the ICE username of a
//! STUN binding request, whose first half is the session's own ufrag),
//! the table of live sessions (ended by id on DELETE or `stopstream`),
//! and the per-stream feeds shared by every player of a stream
//! ([`feed`]). Signalling (an SDP offer in, an answer out) is called by
//! the HTTP listener after it has routed the request; play authorization
//! is [`crate::serve::playback::open`], the same as RTMP's.
//!
//! The server side is ICE-lite with one host candidate (the configured
//! address and the UDP port): the peer's checks come to us, so one socket
//! serves every session. Must not: touch the HTTP connection or decide
//! HTTP status codes (the caller maps [`Refusal`]).

mod audio;
mod feed;
mod publish;
mod session;
mod tcp;
mod udp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::{Candidate, IceCreds, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::process;
use crate::serve::ingest::{Push, Target};
use crate::serve::playback::{self, PlayDenied};
use crate::stream::live::Live;
use crate::Inner;
use feed::Feed;
use livestack_core::media::EndReason;
use session::{Datagram, Session};

/// Datagrams queued for one session before more are dropped.
const QUEUE: usize = 512;
/// Sessions at once on this node.
const MAX_SESSIONS: usize = 4096;

/// Why an offer gets no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The offer is not SDP, or offers nothing we can send.
    BadOffer(String),
    /// The play was refused.
    Denied(PlayDenied),
    /// Too many sessions.
    Busy,
    /// No WebRTC listener on this node.
    Off,
    /// The push was refused (authentication, a forbidden stream, …).
    PushRefused(EndReason),
}

impl Refusal {
    /// The HTTP status WHEP and WHIP answer with (LEB's `errcode` too).
    pub(crate) fn http_status(&self) -> u16 {
        match self {
            Refusal::BadOffer(_) => 400,
            Refusal::Denied(PlayDenied::Forbidden) => 403,
            Refusal::Denied(_) => 404,
            Refusal::Busy | Refusal::Off => 503,
            Refusal::PushRefused(reason) => match reason {
                EndReason::NoAuthParams
                | EndReason::NoTxTime
                | EndReason::Expired
                | EndReason::BadSignature => 401,
                EndReason::UnknownDomain => 404,
                EndReason::BadName => 400,
                EndReason::StoreUnavailable => 503,
                _ => 403,
            },
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Refusal::BadOffer(why) => format!("bad SDP offer: {why}"),
            Refusal::Denied(d) => d.describe().to_owned(),
            Refusal::Busy => "too many WebRTC sessions".to_owned(),
            Refusal::Off => "WebRTC is not enabled on this server".to_owned(),
            Refusal::PushRefused(reason) => format!("push refused: {}", reason.describe()),
        }
    }
}

struct Entry {
    ufrag: String,
    tx: mpsc::Sender<Datagram>,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Table {
    /// By session id (the WHEP resource, LEB's `svrsig`).
    by_id: HashMap<String, Entry>,
    /// Session id by our ICE ufrag.
    by_ufrag: HashMap<String, String>,
    /// Session id by the peer's address, once a check has come from it.
    by_addr: HashMap<SocketAddr, String>,
}

impl Table {
    /// The session a STUN request names: our ufrag is the first half of
    /// its USERNAME. How a peer not yet known is routed, over UDP or TCP.
    fn id_for_stun(&self, packet: &[u8]) -> Option<String> {
        let user = livestack_formats::stun::username(packet)?;
        let ufrag = user.split(':').next()?;
        self.by_ufrag.get(ufrag).cloned()
    }
}

/// A stream's feed, with the stream it reads.
type FeedEntry = (Weak<Live>, Weak<Feed>);

/// The WebRTC side of the media plane.
pub(crate) struct Webrtc {
    socket: Arc<UdpSocket>,
    /// Players' sends on the socket.
    sender: udp::Sender,
    /// The address the socket is bound to.
    local: SocketAddr,
    /// What the host candidate advertises.
    candidate: SocketAddr,
    /// Whether ICE-TCP is served on the same port number (its passive
    /// candidate is then advertised too).
    tcp: bool,
    crypto: Arc<str0m::crypto::CryptoProvider>,
    table: Mutex<Table>,
    /// One feed per live stream, by the stream's address (with the stream
    /// itself, weakly, so the address is not reused while listed).
    feeds: Mutex<HashMap<usize, FeedEntry>>,
}

impl Webrtc {
    /// Serves WebRTC on `socket` and, when given, ICE-TCP on `tcp` (the
    /// same port number), advertising `advertise` (the socket's own IP
    /// when unset and not a wildcard, else 127.0.0.1).
    pub(crate) fn start(
        inner: &Arc<Inner>,
        socket: UdpSocket,
        tcp: Option<tokio::net::TcpListener>,
        advertise: Option<IpAddr>,
    ) -> std::io::Result<()> {
        let local = socket.local_addr()?;
        let ip = advertise.unwrap_or(if local.ip().is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            local.ip()
        });
        let socket = Arc::new(socket);
        let webrtc = Webrtc {
            sender: udp::Sender::new(Arc::clone(&socket))?,
            socket,
            local,
            candidate: SocketAddr::new(ip, local.port()),
            tcp: tcp.is_some(),
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            table: Mutex::new(Table::default()),
            feeds: Mutex::new(HashMap::new()),
        };
        if inner.webrtc.set(webrtc).is_err() {
            return Err(std::io::Error::other("WebRTC is already served"));
        }
        inner.tasks.spawn(route(Arc::clone(inner)));
        if let Some(listener) = tcp {
            inner
                .tasks
                .spawn(tcp::accept_loop(Arc::clone(inner), listener));
        }
        Ok(())
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stream's shared feed, started by its first player.
    fn feed(&self, inner: &Inner, live: Arc<Live>) -> Arc<Feed> {
        let key = Arc::as_ptr(&live) as usize;
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        feeds.retain(|_, (_, f)| f.strong_count() > 0);
        // The entry's Weak<Live> keeps the address from being reused, and
        // names this stream only while it is alive (a stream that ended
        // and was pushed again is another Live).
        let same_stream = |(l, _): &FeedEntry| l.upgrade().is_some_and(|l| Arc::ptr_eq(&l, &live));
        if let Some(feed) = feeds
            .get(&key)
            .filter(|entry| same_stream(entry))
            .and_then(|(_, f)| f.upgrade())
        {
            return feed;
        }
        let weak_live = Arc::downgrade(&live);
        let feed = Arc::new(Feed::start(inner, live));
        feeds.insert(key, (weak_live, Arc::downgrade(&feed)));
        feed
    }

    /// The queue of the session a STUN request names (see
    /// [`Table::id_for_stun`]), for an ICE-TCP connection's first packet.
    fn session_for_stun(&self, packet: &[u8]) -> Option<mpsc::Sender<Datagram>> {
        let table = self.table();
        let id = table.id_for_stun(packet)?;
        table.by_id.get(&id).map(|e| e.tx.clone())
    }

    /// Enters a session for `rtc` in the table (routed by its ufrag): its
    /// id, its datagrams and what ends it.
    fn register(
        &self,
        inner: &Inner,
        ufrag: String,
    ) -> Result<(String, mpsc::Receiver<Datagram>, CancellationToken), Refusal> {
        let mut table = self.table();
        if table.by_id.len() >= MAX_SESSIONS {
            return Err(Refusal::Busy);
        }
        let id = random_token(16);
        let (tx, rx) = mpsc::channel(QUEUE);
        let cancel = inner.shutdown.child_token();
        table.by_ufrag.insert(ufrag.clone(), id.clone());
        table.by_id.insert(
            id.clone(),
            Entry {
                ufrag,
                tx,
                cancel: cancel.clone(),
            },
        );
        Ok((id, rx, cancel))
    }

    /// Ends session `id`; false when there is none.
    pub(crate) fn close(&self, id: &str) -> bool {
        match self.table().by_id.get(id) {
            Some(entry) => {
                entry.cancel.cancel();
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: &str) {
        let mut table = self.table();
        if let Some(entry) = table.by_id.remove(id) {
            table.by_ufrag.remove(&entry.ufrag);
        }
        table.by_addr.retain(|_, v| v != id);
    }
}

/// The WebRTC side of this node and the parsed `offer`: what both
/// signalling paths check before anything else.
fn offered<'a>(inner: &'a Inner, offer: &str) -> Result<(&'a Webrtc, SdpOffer), Refusal> {
    let webrtc = inner.webrtc.get().ok_or(Refusal::Off)?;
    let offer = SdpOffer::from_sdp_string(offer).map_err(|e| Refusal::BadOffer(e.to_string()))?;
    Ok((webrtc, offer))
}

/// Answers a player's `offer` for what `target` names: the play decision
/// of every protocol, then a session of its own. Returns the session id
/// and the SDP answer.
pub(crate) async fn play(
    inner: &Arc<Inner>,
    target: &Target,
    peer: SocketAddr,
    offer: &str,
) -> Result<(String, String), Refusal> {
    let (webrtc, offer) = offered(inner, offer)?;
    let live = playback::open(inner, target, peer)
        .await
        .map_err(Refusal::Denied)?;
    // Counted as a player of the stream asked for, whatever output of it
    // (the B-frame-free one) it gets.
    let key = live.publisher.key.clone();
    let live = without_bframes(inner, live).await;
    let (rtc, answer, ufrag) = answer(webrtc, offer, Flow::ToPlayer)?;
    let (id, rx, cancel) = webrtc.register(inner, ufrag)?;
    let stream = live.publisher.key.stream.clone();
    let session = Session {
        rtc,
        sender: webrtc.sender.clone(),
        local: webrtc.local,
        feed: webrtc.feed(inner, live),
        datagrams: rx,
        cancel,
        player: inner.player(
            crate::metrics::Protocol::webrtc,
            target.domain.as_deref().unwrap_or(""),
            &key,
            peer.ip(),
        ),
    };
    let span = tracing::info_span!("webrtc", %peer, stream, session = %id);
    spawn_session(inner, &id, span, async move {
        tracing::info!("WebRTC play started");
        let end = session.run().await;
        tracing::info!(?end, "WebRTC play ended");
    });
    Ok((id, answer))
}

/// What a WebRTC player of `live` gets: `live` itself, or, when it has
/// B-frames, its baseline output ([`process::WEBRTC_BASELINE`]), started
/// on demand and stopped when unwatched like a transcoded output, and
/// shared by every WebRTC player of the stream. Browsers show pictures in
/// the order they arrive, so passing B-frames through would make the
/// picture jump back and forth.
///
/// Only pushes made on this node (and their watermarked outputs) get
/// one: a transcoded output has its template's profile, and an edge relay
/// is processed by the node that owns the push. Those, and a baseline
/// output that does not start in time, are passed through as they are
/// (the feed says so in the log).
async fn without_bframes(inner: &Arc<Inner>, live: Arc<Live>) -> Arc<Live> {
    let p = &live.publisher;
    if !live.has_bframes() || p.relay {
        return live;
    }
    let source = if p.internal {
        p.key.stream.strip_suffix(process::WATERMARKED)
    } else {
        Some(p.key.stream.as_str())
    };
    let Some(source) = source else {
        return live;
    };
    let output = livestack_core::media::StreamKey {
        stream: format!("{source}{}", process::WEBRTC_BASELINE),
        ..p.key.clone()
    };
    inner
        .processor
        .ask(&output, process::Demanded::WebRtcBaseline);
    match inner.processor.wait_for(inner, &output).await {
        Some(baseline) => baseline,
        None => {
            tracing::warn!(stream = %p.key.stream, "the WebRTC baseline output did not start; playing the stream with its B-frames");
            live
        }
    }
}

/// Takes a WHIP publisher's `offer` for what `target` names: the push
/// path of every protocol (authorization, claim, registration), then a
/// session of its own. Returns the session id and the SDP answer.
pub(crate) async fn publish(
    inner: &Arc<Inner>,
    target: &Target,
    peer: SocketAddr,
    offer: &str,
) -> Result<(String, String), Refusal> {
    let (webrtc, offer) = offered(inner, offer)?;
    // The offer is checked before the push is registered, so a bad one
    // takes no stream over.
    let (rtc, answer, ufrag) = answer(webrtc, offer, Flow::FromPublisher)?;
    let (id, rx, cancel) = webrtc.register(inner, ufrag)?;
    let push = match Push::start(inner, target, peer, webrtc.local).await {
        Ok(push) => push,
        Err(reason) => {
            webrtc.remove(&id);
            return Err(Refusal::PushRefused(reason));
        }
    };
    let session = publish::Publishing {
        rtc,
        sender: webrtc.sender.clone(),
        local: webrtc.local,
        datagrams: rx,
        cancel,
        push,
    };
    let span = tracing::info_span!("whip", %peer, stream = %target.stream, session = %id);
    let owner = Arc::clone(inner);
    spawn_session(inner, &id, span, async move {
        tracing::info!("WHIP push started");
        session.run(owner).await;
    });
    Ok((id, answer))
}

/// Which way media flows in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    ToPlayer,
    FromPublisher,
}

/// Runs a session's task on the server's tracker, in `span`; its entry
/// in the table goes when it ends.
fn spawn_session(
    inner: &Arc<Inner>,
    id: &str,
    span: tracing::Span,
    session: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let owner = Arc::clone(inner);
    let id = id.to_owned();
    inner.tasks.spawn(tracing::Instrument::instrument(
        async move {
            session.await;
            if let Some(webrtc) = owner.webrtc.get() {
                webrtc.remove(&id);
            }
        },
        span,
    ));
}

/// A new ICE-lite `Rtc` (H.264 and Opus) with its one host candidate,
/// its SDP answer to `offer` and its ICE ufrag.
fn answer(
    webrtc: &Webrtc,
    offer: SdpOffer,
    direction: Flow,
) -> Result<(str0m::Rtc, String, String), Refusal> {
    let creds = IceCreds {
        ufrag: random_token(8),
        pass: random_token(24),
    };
    let mut config = RtcConfig::new();
    if direction == Flow::ToPlayer {
        // Only the MID (BUNDLE needs it): no transport-wide sequence
        // numbers, so players send no TWCC feedback, which a server that
        // does not adapt its bitrate would only parse (it was the largest
        // single cost per player in the profile). Publishers keep the
        // standard set: their congestion control wants the feedback.
        config = config
            .clear_extension_map()
            .set_extension(4, str0m::rtp::Extension::RtpMid);
    }
    let mut rtc = config
        .set_ice_lite(true)
        .set_local_ice_credentials(creds.clone())
        .set_crypto_provider(Arc::clone(&webrtc.crypto))
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    let candidate =
        Candidate::host(webrtc.candidate, "udp").map_err(|e| Refusal::BadOffer(e.to_string()))?;
    rtc.add_local_candidate(candidate);
    if webrtc.tcp {
        let candidate = Candidate::builder()
            .tcp()
            .host(webrtc.candidate)
            .tcptype(str0m::net::TcpType::Passive)
            .build()
            .map_err(|e| Refusal::BadOffer(e.to_string()))?;
        rtc.add_local_candidate(candidate);
    }
    let answer = accept_offer(&mut rtc, offer)?;
    Ok((rtc, answer.to_sdp_string(), creds.ufrag))
}

/// `rtc`'s answer to `offer`. str0m 0.24 panics on some malformed offers
/// (a payload type given twice: "Pt locked multiple times", found by the
/// `webrtc_signal` fuzz target); such an offer is refused like any other
/// bad one instead of taking the connection's task down.
fn accept_offer(
    rtc: &mut str0m::Rtc,
    offer: SdpOffer,
) -> Result<str0m::change::SdpAnswer, Refusal> {
    let accepted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rtc.sdp_api().accept_offer(offer)
    }));
    match accepted {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(Refusal::BadOffer(e.to_string())),
        Err(_) => Err(Refusal::BadOffer(
            "the offer could not be negotiated".to_owned(),
        )),
    }
}

/// Reads the UDP socket until shutdown, handing each datagram to its
/// session; a datagram no session claims is dropped.
async fn route(inner: Arc<Inner>) {
    let Some(webrtc) = inner.webrtc.get() else {
        return;
    };
    let mut buf = vec![0u8; 2048];
    loop {
        let received = tokio::select! {
            () = inner.shutdown.cancelled() => return,
            r = webrtc.socket.recv_from(&mut buf) => r,
        };
        let (len, source) = match received {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors surface here on some systems: not fatal.
                tracing::debug!("WebRTC socket: {e}");
                continue;
            }
        };
        let contents = &buf[..len];
        let tx = {
            let mut table = webrtc.table();
            let id = match table.by_addr.get(&source) {
                Some(id) => Some(id.clone()),
                None => table.id_for_stun(contents),
            };
            match id {
                Some(id) => {
                    table.by_addr.entry(source).or_insert_with(|| id.clone());
                    table.by_id.get(&id).map(|e| e.tx.clone())
                }
                None => None,
            }
        };
        if let Some(tx) = tx {
            // A full queue drops the datagram, as a congested link would.
            let _ = tx.try_send(Datagram {
                source,
                at: Instant::now(),
                contents: contents.to_vec(),
                tcp: None,
            });
        }
    }
}

fn random_token(len: usize) -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Where a WHEP session lives (`Location`), for its `DELETE`.
pub(crate) const SESSION_PATH: &str = "/webrtc/session/";

/// What a `webrtc://domain/app/stream?query` URL names.
fn parse_stream_url(url: &str) -> Option<Target> {
    let rest = url.strip_prefix("webrtc://")?;
    let (host, path) = rest.split_once('/')?;
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let (app, stream) = path.split_once('/')?;
    if host.is_empty() || app.is_empty() || stream.is_empty() || stream.contains('/') {
        return None;
    }
    Some(Target {
        domain: Some(crate::serve::access::strip_port(host).to_ascii_lowercase()),
        app: app.to_owned(),
        stream: stream.to_owned(),
        query: query.to_owned(),
    })
}

/// LEB's error answer. `errcode` follows HTTP's meaning of the failure
/// (400 bad request, 403 forbidden, 404 no such stream, 503 unavailable),
/// as Tencent does not publish its own numbers.
fn leb_error(code: u16, message: &str) -> serde_json::Value {
    serde_json::json!({ "errcode": code, "errmsg": message })
}

/// `POST /webrtc/v1/pullstream`: `{streamurl, sessionid, clientinfo,
/// localsdp: {type: "offer", sdp}}` → `{errcode, errmsg, remotesdp:
/// {type: "answer", sdp}, svrsig}`; `svrsig` names the session for
/// `stopstream`.
pub(crate) async fn leb_pull(
    inner: &Arc<Inner>,
    peer: SocketAddr,
    body: &[u8],
) -> serde_json::Value {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return leb_error(400, "the body is not JSON");
    };
    let Some(target) = request["streamurl"].as_str().and_then(parse_stream_url) else {
        return leb_error(400, "streamurl is not a webrtc://domain/app/stream URL");
    };
    let Some(offer) = request["localsdp"]["sdp"].as_str() else {
        return leb_error(400, "localsdp.sdp is missing");
    };
    match play(inner, &target, peer, offer).await {
        Ok((id, answer)) => serde_json::json!({
            "errcode": 0,
            "errmsg": "",
            "remotesdp": { "type": "answer", "sdp": answer },
            "svrsig": id,
        }),
        Err(refusal) => {
            tracing::info!(%peer, app = target.app, stream = target.stream, "LEB play refused: {}", refusal.describe());
            leb_error(refusal.http_status(), &refusal.describe())
        }
    }
}

/// `POST /webrtc/v1/stopstream`: `{streamurl, svrsig}` ends the session.
pub(crate) fn leb_stop(inner: &Inner, body: &[u8]) -> serde_json::Value {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return leb_error(400, "the body is not JSON");
    };
    let Some(id) = request["svrsig"].as_str() else {
        return leb_error(400, "svrsig is missing");
    };
    if inner.webrtc.get().is_some_and(|w| w.close(id)) {
        serde_json::json!({ "errcode": 0, "errmsg": "" })
    } else {
        leb_error(404, "no such session")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb_stream_urls_name_domain_app_stream_and_signature() {
        let t = parse_stream_url("webrtc://Play.Example.com:443/live/cam?txSecret=a&txTime=b")
            .expect("parses");
        assert_eq!(t.domain.as_deref(), Some("play.example.com"));
        assert_eq!((t.app.as_str(), t.stream.as_str()), ("live", "cam"));
        assert_eq!(t.query, "txSecret=a&txTime=b");
        assert!(parse_stream_url("rtmp://a/live/cam").is_none());
        assert!(parse_stream_url("webrtc://a/live").is_none());
        assert!(parse_stream_url("webrtc://a/live/x/y").is_none());
    }
}
