//! One live stream as WebRTC media, made once and shared by every WebRTC
//! player of the stream.
//!
//! Owns: reading the stream's hub, turning its H.264 frames into Annex-B
//! access units on the 90 kHz clock and its AAC into Opus on the 48 kHz
//! clock ([`super::audio`]), a cache from the last keyframe on (so a new
//! player starts on a picture at once, as the hub's GOP cache does for
//! RTMP), and the fan-out to players. The feed runs while at least one
//! player holds it. Must not: touch sockets or sessions.

use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use livestack_formats::annexb::AnnexBConverter;
use livestack_formats::avc::AvcConfig;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::audio::AacToOpus;
use crate::stream::hub::{Frame, FrameKind};
use crate::stream::live::Live;

/// Items a player may fall behind before it is dropped as too slow.
const CHANNEL: usize = 2048;
/// The cache never holds more than this many items (a stream that sends
/// no keyframe for minutes would otherwise grow it without end).
const MAX_CACHED: usize = 4096;

/// One unit of WebRTC media.
#[derive(Debug)]
pub(crate) enum RtcMedia {
    /// An H.264 access unit, Annex-B, parameter sets before IDR pictures.
    Video {
        /// Presentation time on the 90 kHz clock.
        rtp: u64,
        /// The publisher's millisecond timeline (for wall-clock mapping).
        ms: i64,
        keyframe: bool,
        /// Shared by every player's RTP packetizer (str0m takes an
        /// `Arc<[u8]>`, so each player's write is a reference, not a copy).
        data: Arc<[u8]>,
    },
    /// One 20 ms Opus frame.
    Audio {
        /// On the 48 kHz clock.
        rtp: u64,
        ms: i64,
        data: Arc<[u8]>,
    },
}

impl RtcMedia {
    /// Where on the publisher's timeline this unit is.
    pub(crate) fn ms(&self) -> i64 {
        match self {
            RtcMedia::Video { ms, .. } | RtcMedia::Audio { ms, .. } => *ms,
        }
    }
}

/// What a new player starts from.
pub(crate) struct FeedSubscription {
    /// The cache: from the last keyframe on.
    pub(crate) start: Vec<Arc<RtcMedia>>,
    pub(crate) live: broadcast::Receiver<Arc<RtcMedia>>,
}

#[derive(Default)]
struct State {
    cache: Vec<Arc<RtcMedia>>,
    /// `None` once the stream has ended.
    tx: Option<broadcast::Sender<Arc<RtcMedia>>>,
}

/// The shared part, written by the feed task.
#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn publish(&self, media: RtcMedia) {
        let media = Arc::new(media);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let starts_gop = matches!(&*media, RtcMedia::Video { keyframe: true, .. });
        if starts_gop {
            state.cache.clear();
        }
        if (starts_gop || !state.cache.is_empty()) && state.cache.len() < MAX_CACHED {
            state.cache.push(Arc::clone(&media));
        }
        if let Some(tx) = &state.tx {
            // No receiver is not an error: players come and go.
            let _ = tx.send(media);
        }
    }

    fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.tx = None;
        state.cache.clear();
    }
}

/// A running feed; the task stops when the last holder drops it.
pub(crate) struct Feed {
    shared: Arc<Shared>,
    _stop: DropGuard,
}

impl Feed {
    /// Starts feeding from `live` on the server's task tracker.
    pub(crate) fn start(inner: &crate::Inner, live: Arc<Live>) -> Feed {
        let (tx, _) = broadcast::channel(CHANNEL);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                cache: Vec::new(),
                tx: Some(tx),
            }),
        });
        let stop = inner.shutdown.child_token();
        let span = tracing::info_span!("webrtc_feed", stream = %live.publisher.key.stream);
        inner.tasks.spawn(tracing::Instrument::instrument(
            run(live, Arc::clone(&shared), stop.clone()),
            span,
        ));
        Feed {
            shared,
            _stop: stop.drop_guard(),
        }
    }

    /// The cache and the live channel, taken together so nothing falls
    /// between them; `None` once the stream has ended.
    pub(crate) fn subscribe(&self) -> Option<FeedSubscription> {
        let state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let tx = state.tx.as_ref()?;
        Some(FeedSubscription {
            start: state.cache.clone(),
            live: tx.subscribe(),
        })
    }
}

async fn run(live: Arc<Live>, shared: Arc<Shared>, stop: CancellationToken) {
    let mut sub = live.hub.subscribe();
    drop(live);
    let mut convert = Converter::default();
    for frame in &sub.start {
        convert.frame(frame, |m| shared.publish(m));
    }
    loop {
        let frame = tokio::select! {
            () = stop.cancelled() => break,
            r = sub.live.recv() => r,
        };
        match frame {
            Ok(frame) => convert.frame(&frame, |m| shared.publish(m)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    skipped = n,
                    "WebRTC feed fell behind the stream; resuming at the next keyframe"
                );
                convert.await_keyframe = true;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    shared.close();
}

/// FLV frames in, WebRTC media out: sans-IO (no channel, no socket), so
/// the feed task only moves frames through it.
#[derive(Default)]
pub(crate) struct Converter {
    video: Option<AnnexBConverter>,
    audio: Option<AacToOpus>,
    /// After a gap: drop video until a keyframe.
    await_keyframe: bool,
    /// Said once per stream in the log.
    warned_codec: bool,
    warned_bframes: bool,
    warned_audio: bool,
}

impl Converter {
    pub(crate) fn frame(&mut self, frame: &Frame, mut emit: impl FnMut(RtcMedia)) {
        let p = &frame.payload;
        match frame.kind {
            FrameKind::Video if p.len() >= 5 => {
                let codec = p[0] & 0x0F;
                if codec != 7 {
                    if !self.warned_codec {
                        self.warned_codec = true;
                        tracing::warn!(
                            codec,
                            "WebRTC players get no video: only H.264 is passed through"
                        );
                    }
                    return;
                }
                let body = p.slice(5..);
                if p[1] == 0 {
                    match AvcConfig::parse(&body) {
                        Ok(config) => self.video = Some(AnnexBConverter::from_avc(&config)),
                        Err(e) => tracing::warn!("unusable AVC sequence header: {e}"),
                    }
                    return;
                }
                if p[1] != 1 {
                    return;
                }
                let Some(video) = &self.video else { return };
                if self.await_keyframe && !frame.keyframe {
                    return;
                }
                self.await_keyframe = false;
                // Composition offset: signed 24 bits.
                let cts =
                    (i32::from(p[2]) << 16 | i32::from(p[3]) << 8 | i32::from(p[4])) << 8 >> 8;
                if cts != 0 && !self.warned_bframes {
                    self.warned_bframes = true;
                    tracing::warn!(
                        "the stream has B-frames, which WebRTC players may show out of order"
                    );
                }
                let mut out = BytesMut::new();
                if video.convert(&body, frame.keyframe, &mut out).is_err() {
                    return;
                }
                let pts = i64::from(frame.timestamp) + i64::from(cts);
                emit(RtcMedia::Video {
                    rtp: u64::try_from(pts.max(0)).unwrap_or(0) * 90,
                    ms: i64::from(frame.timestamp),
                    keyframe: frame.keyframe,
                    data: Arc::from(&out[..]),
                });
            }
            FrameKind::Audio if p.len() >= 2 => {
                if p[0] >> 4 != 10 {
                    if !self.warned_audio {
                        self.warned_audio = true;
                        tracing::warn!(
                            format = p[0] >> 4,
                            "WebRTC players get no audio: only AAC is transcoded to Opus"
                        );
                    }
                    return;
                }
                if p[1] == 0 {
                    match AacToOpus::new(&p[2..]) {
                        Ok(t) => self.audio = Some(t),
                        Err(e) => {
                            self.audio = None;
                            tracing::warn!("WebRTC players get no audio: {e}");
                        }
                    }
                    return;
                }
                let Some(audio) = &mut self.audio else { return };
                let ms = i64::from(frame.timestamp);
                if let Err(e) = audio.push(&p[2..], frame.timestamp, |rtp, data| {
                    emit(RtcMedia::Audio {
                        rtp,
                        ms,
                        data: Arc::from(&data[..]),
                    });
                }) {
                    tracing::warn!("WebRTC audio stopped: {e}");
                    self.audio = None;
                }
            }
            _ => {}
        }
    }
}
