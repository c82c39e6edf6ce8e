//! One WebRTC player: a str0m `Rtc` driven by its own task.
//!
//! Owns: the ICE-lite/DTLS/SRTP state of one peer (inside `Rtc`), the
//! datagrams the router hands it, writing the stream's media from the
//! feed with a wall clock that follows the publisher's timeline (so the
//! browser's audio/video sync, which reads RTCP sender reports, holds),
//! and ending: on DELETE or stopstream, when the peer stops answering
//! (ICE consent), when it never connects, when the stream ends or the
//! player falls too far behind. Must not: read the socket (the router
//! does) or decide who may play (signalling does, before the session
//! exists).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::feed::{Feed, RtcMedia};
use super::udp::{Outbox, Sender};

/// A peer that has not completed ICE and DTLS by then is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A packet for one session, from UDP or an ICE-TCP connection.
pub(crate) struct Datagram {
    pub(crate) source: SocketAddr,
    pub(crate) at: Instant,
    pub(crate) contents: Vec<u8>,
    /// For a packet that came over TCP: the connection's way back.
    pub(crate) tcp: Option<mpsc::Sender<Vec<u8>>>,
}

impl Datagram {
    /// Hands the packet to `rtc` (which received it on `local`), noting in
    /// `outbox` how to answer its source. A packet that is neither STUN,
    /// DTLS nor SRTP is ignored.
    pub(crate) fn feed(
        self,
        rtc: &mut Rtc,
        local: SocketAddr,
        outbox: &mut Outbox,
    ) -> Result<(), str0m::RtcError> {
        let proto = match self.tcp {
            Some(tx) => {
                outbox.learn_tcp(self.source, tx);
                Protocol::Tcp
            }
            None => Protocol::Udp,
        };
        let Ok(contents) = self.contents.as_slice().try_into() else {
            return Ok(());
        };
        rtc.handle_input(Input::Receive(
            self.at,
            Receive {
                proto,
                source: self.source,
                destination: local,
                contents,
            },
        ))
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Closed,
    NeverConnected,
    PeerGone,
    StreamEnded,
    TooSlow,
    Failed,
}

/// Where one kind of media goes.
#[derive(Clone, Copy)]
struct Track {
    mid: Mid,
    pt: Pt,
}

pub(crate) struct Session {
    pub(crate) rtc: Rtc,
    pub(crate) sender: Sender,
    pub(crate) local: SocketAddr,
    pub(crate) feed: Arc<Feed>,
    pub(crate) datagrams: mpsc::Receiver<Datagram>,
    pub(crate) cancel: CancellationToken,
    /// Counts this player and the bytes sent to it.
    pub(crate) player: crate::metrics::PlayerGuard,
}

impl Session {
    /// Runs until the session ends; says why.
    pub(crate) async fn run(mut self) -> End {
        let Some(sub) = self.feed.subscribe() else {
            return End::StreamEnded;
        };
        let mut backlog = sub.start.into_iter();
        let mut live = sub.live;
        let mut video: Option<Track> = None;
        let mut audio: Option<Track> = None;
        let mut connected = false;
        // The wall clock of the publisher's timeline: instant = base.0 +
        // (ms - base.1).
        let mut base: Option<(Instant, i64)> = None;
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        let mut outbox = Outbox::new(self.sender.clone());
        loop {
            // Drain what the Rtc wants done until it waits for time.
            let timeout = loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Transmit(t)) => {
                        let n = outbox.push(t);
                        self.player.add(n as u64);
                    }
                    Ok(Output::Event(event)) => match event {
                        Event::Connected => connected = true,
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            return End::PeerGone;
                        }
                        Event::MediaAdded(added) => {
                            let track = self.track(added.mid, added.kind);
                            match added.kind {
                                MediaKind::Video => video = video.or(track),
                                MediaKind::Audio => audio = audio.or(track),
                            }
                        }
                        Event::KeyframeRequest(_) => {
                            // An RTMP publisher cannot be asked for one; the
                            // next keyframe of the stream answers it.
                            tracing::trace!("keyframe requested");
                        }
                        _ => {}
                    },
                    Err(e) => {
                        tracing::debug!("WebRTC session failed: {e}");
                        return End::Failed;
                    }
                }
            };
            // What this wake-up made, in as few system calls as it allows.
            let n = outbox.flush().await;
            self.player.add(n as u64);
            if !self.rtc.is_alive() {
                return End::PeerGone;
            }
            let wait = tokio::time::Instant::from_std(timeout);
            tokio::select! {
                () = self.cancel.cancelled() => return End::Closed,
                () = tokio::time::sleep_until(deadline), if !connected => return End::NeverConnected,
                d = self.datagrams.recv() => {
                    let Some(d) = d else { return End::Closed };
                    if d.feed(&mut self.rtc, self.local, &mut outbox).is_err() {
                        return End::Failed;
                    }
                }
                r = live.recv(), if connected => {
                    let media = match r {
                        Ok(m) => m,
                        Err(broadcast::error::RecvError::Lagged(_)) => return End::TooSlow,
                        Err(broadcast::error::RecvError::Closed) => return End::StreamEnded,
                    };
                    // The cache first, then live media: all that is there,
                    // so it leaves in one batch.
                    for cached in backlog.by_ref() {
                        self.write(&cached, video, audio, &mut base);
                    }
                    self.write(&media, video, audio, &mut base);
                    loop {
                        match live.try_recv() {
                            Ok(media) => self.write(&media, video, audio, &mut base),
                            Err(broadcast::error::TryRecvError::Empty) => break,
                            Err(broadcast::error::TryRecvError::Lagged(_)) => return End::TooSlow,
                            Err(broadcast::error::TryRecvError::Closed) => return End::StreamEnded,
                        }
                    }
                }
                () = tokio::time::sleep_until(wait) => {
                    if self.rtc.handle_input(Input::Timeout(Instant::now())).is_err() {
                        return End::Failed;
                    }
                }
            }
        }
    }

    /// The payload type to send `kind` with: for video H.264 with
    /// packetization mode 1 (FU-A), constrained baseline preferred as
    /// browsers offer it first for hardware decoders; Opus for audio.
    fn track(&mut self, mid: Mid, kind: MediaKind) -> Option<Track> {
        let writer = self.rtc.writer(mid)?;
        let mut best: Option<(u8, Pt)> = None;
        for p in writer.payload_params() {
            let spec = p.spec();
            let rank = match (kind, spec.codec) {
                (MediaKind::Audio, Codec::Opus) => 3,
                (MediaKind::Video, Codec::H264) if spec.format.packetization_mode == Some(1) => {
                    match spec.format.profile_level_id.map(|id| id >> 8) {
                        Some(0x42e0) => 3,
                        Some(0x4200) => 2,
                        _ => 1,
                    }
                }
                _ => 0,
            };
            if rank > 0 && best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, p.pt()));
            }
        }
        best.map(|(_, pt)| Track { mid, pt })
    }

    fn write(
        &mut self,
        media: &RtcMedia,
        video: Option<Track>,
        audio: Option<Track>,
        base: &mut Option<(Instant, i64)>,
    ) {
        let (track, rtp, data) = match media {
            RtcMedia::Video { rtp, data, .. } => (video, MediaTime::from_90khz(*rtp), data),
            RtcMedia::Audio { rtp, data, .. } => (
                audio,
                MediaTime::new(*rtp, str0m::media::Frequency::FORTY_EIGHT_KHZ),
                data,
            ),
        };
        let Some(track) = track else { return };
        let ms = media.ms();
        let (at, base_ms) = *base.get_or_insert((Instant::now(), ms));
        let offset = ms - base_ms;
        let wallclock = if offset >= 0 {
            at + Duration::from_millis(offset.unsigned_abs())
        } else {
            at.checked_sub(Duration::from_millis(offset.unsigned_abs()))
                .unwrap_or(at)
        };
        let Some(writer) = self.rtc.writer(track.mid) else {
            return;
        };
        if let Err(e) = writer.write(track.pt, wallclock, rtp, Arc::clone(data)) {
            tracing::debug!("WebRTC write failed: {e}");
        }
    }
}
