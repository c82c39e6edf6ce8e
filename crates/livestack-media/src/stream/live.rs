//! One live push: its hub, its HLS segmenter, what it measures, and how it
//! is stopped.
//!
//! Owns: the per-stream state shared between the publisher's task (which
//! feeds it), player tasks and HTTP requests (which read it), and the
//! control plane (which stops it). Must not: do I/O; the locks are held for
//! in-memory updates only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use livestack_core::media::{EndReason, OnlineStream, StreamKey};
use livestack_formats::aac::AudioSpecificConfig;
use livestack_formats::avc::AvcConfig;
use livestack_formats::flv::{AudioCodec, AudioInfo, TagKind, VideoCodecId, VideoInfo};
use livestack_formats::hevc::HevcConfig;
use livestack_formats::hls::{Segmenter, SegmenterConfig};
use livestack_formats::llhls::{LlConfig, LlFile, LlPackager};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::stream::hub::{Frame, FrameKind, Hub};
use crate::stream::stats::Meter;

/// Codec facts from the sequence headers.
#[derive(Debug, Clone, Default)]
struct CodecInfo {
    video_codec: &'static str,
    audio_codec: &'static str,
    width: u32,
    height: u32,
    sample_rate: u32,
}

/// What the per-minute push samples read (`DescribeStreamPushInfoList`):
/// the latest timestamps, the bytes so far, the GOP and the publisher's
/// own `onMetaData` claims. Atomics, so the publish path never waits.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Timestamp (ms) of the latest video / audio message.
    pub(crate) video_ts: AtomicU32,
    pub(crate) audio_ts: AtomicU32,
    /// Bytes of media received.
    pub(crate) bytes: AtomicU64,
    /// Timestamp of the latest keyframe, and the distance to the one
    /// before (ms).
    last_key_ts: AtomicU32,
    pub(crate) gop_ms: AtomicU32,
    /// `onMetaData`: videodatarate and audiodatarate (kbps), framerate.
    pub(crate) meta_video_kbps: AtomicU32,
    pub(crate) meta_audio_kbps: AtomicU32,
    pub(crate) meta_fps: AtomicU32,
    /// A video frame with a composition offset has arrived: the stream
    /// has B-frames (pictures sent before they are shown), which WebRTC
    /// players cannot take as they are.
    reordered: AtomicBool,
}

impl Progress {
    fn video(&self, ts: u32, keyframe: bool, composition_ms: i32) {
        self.video_ts.store(ts, Ordering::Relaxed);
        if composition_ms != 0 {
            self.reordered.store(true, Ordering::Relaxed);
        }
        if keyframe {
            let last = self.last_key_ts.swap(ts, Ordering::Relaxed);
            if last != 0 && ts > last {
                self.gop_ms.store(ts - last, Ordering::Relaxed);
            }
        }
    }

    /// Reads `@setDataFrame`/`onMetaData` (a rare message: parsing it
    /// costs nothing that matters).
    fn metadata(&self, payload: &[u8]) {
        let Ok(values) = livestack_rtmp::amf0::decode_all(payload) else {
            return;
        };
        let Some(meta) = values.iter().find(|v| v.as_properties().is_some()) else {
            return;
        };
        let number = |key: &str| {
            meta.get(key)
                .and_then(livestack_rtmp::amf0::Amf0Value::as_number)
                .filter(|n| n.is_finite() && *n >= 0.0)
                .map_or(0, |n| n.round().min(f64::from(u32::MAX)) as u32)
        };
        self.meta_video_kbps
            .store(number("videodatarate"), Ordering::Relaxed);
        self.meta_audio_kbps
            .store(number("audiodatarate"), Ordering::Relaxed);
        self.meta_fps.store(number("framerate"), Ordering::Relaxed);
    }
}

/// Which of a stream's pushes feeds its players: shared by the pushes of
/// one stream, which is one push unless its push domain takes backup
/// streams (主备流). A hand-over happens at the new feeder's next
/// keyframe, sending its sequence headers first and shifting its
/// timestamps to continue after the last one players got, so players
/// change publishers without noticing more than a jump in the picture.
pub(crate) struct Switch {
    state: Mutex<SwitchState>,
}

struct SwitchState {
    /// The push session feeding the players.
    feeder: u64,
    /// The push taking over at its next keyframe.
    pending: Option<u64>,
    /// Added to the feeder's timestamps.
    offset: i64,
    /// `EnableOptimalSwitching`: the media plane switches to the better
    /// push by itself.
    optimal: bool,
}

impl Switch {
    /// A switch fed by push session `feeder`.
    pub(crate) fn new(feeder: u64) -> Switch {
        Switch {
            state: Mutex::new(SwitchState {
                feeder,
                pending: None,
                offset: 0,
                optimal: false,
            }),
        }
    }

    /// A switch for push session `session` taking over a hub whose
    /// players stayed attached after the push before it ended: it feeds
    /// from its first keyframe, its timestamps continuing theirs.
    pub(crate) fn taking_over(session: u64) -> Switch {
        Switch {
            state: Mutex::new(SwitchState {
                feeder: 0,
                pending: Some(session),
                offset: 0,
                optimal: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SwitchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes push session `to` the feeder from its next keyframe on.
    pub(crate) fn hand_over(&self, to: u64) {
        let mut s = self.lock();
        s.pending = (s.feeder != to).then_some(to);
    }

    /// Whether push session `session` feeds the players now.
    pub(crate) fn feeds(&self, session: u64) -> bool {
        self.lock().feeder == session
    }

    /// Whether optimal switching is on.
    pub(crate) fn optimal(&self) -> bool {
        self.lock().optimal
    }

    /// Turns optimal switching on or off.
    pub(crate) fn set_optimal(&self, on: bool) {
        self.lock().optimal = on;
    }
}

/// `timestamp` shifted by `offset`, within what RTMP can carry.
fn shifted(timestamp: u32, offset: i64) -> u32 {
    (i64::from(timestamp) + offset).clamp(0, i64::from(u32::MAX)) as u32
}

/// A live push.
pub(crate) struct Live {
    /// Who is pushing what.
    pub(crate) publisher: Publisher,
    pub(crate) hub: Arc<Hub>,
    /// Whether this push feeds the hub (see [`Switch`]).
    pub(crate) switch: Arc<Switch>,
    /// Its latest metadata, video and audio sequence headers, sent ahead
    /// of its frames when it takes over a hub.
    headers: Mutex<[Option<Bytes>; 3]>,
    cancel: CancellationToken,
    end_reason: Mutex<Option<EndReason>>,
    meter: Mutex<Meter>,
    info: Mutex<CodecInfo>,
    /// HLS, cut from the first HLS request on ([`Live::start_hls`]): a
    /// window of segments in memory is most of what a stream costs, and
    /// most streams are never played over HLS.
    hls: Mutex<Segmenter>,
    hls_on: AtomicBool,
    /// LL-HLS, started by the first low-latency playlist request and fed
    /// what the hub carries from then on.
    ll: Mutex<Option<LlPackager>>,
    ll_on: AtomicBool,
    /// The packager's generation, for requests held until a part exists.
    ll_generation: watch::Sender<u64>,
    chunk_size: u32,
    /// Read by the push sampler.
    pub(crate) progress: Progress,
    /// When it went live, and the last HLS request for it (ms after
    /// that): an edge relay with no player attached and no HLS request
    /// for a while is stopped.
    created: Instant,
    touched_ms: AtomicU64,
}

/// Who is pushing, for [`Live::new`].
pub(crate) struct Publisher {
    pub(crate) key: StreamKey,
    pub(crate) domain: String,
    pub(crate) client: SocketAddr,
    pub(crate) server: SocketAddr,
    pub(crate) started: i64,
    pub(crate) params: String,
    pub(crate) session: u64,
    /// A processing job's output (transcode, watermark) published back on
    /// loopback: not listed, no events, no processing of its own.
    pub(crate) internal: bool,
    /// The watermark laid over this push's outputs, chosen when it started.
    pub(crate) watermark: Option<livestack_core::rules::TemplateId>,
    /// An edge relay: a stream pushed to another node, pulled from it for
    /// this node's players (also `internal`: not listed, no events, no
    /// processing here; the owner does all that).
    pub(crate) relay: bool,
    /// The epoch of this push's claim on its stream (several nodes).
    pub(crate) epoch: Option<i64>,
    /// The relay task (row id) making this push, if one is.
    pub(crate) relay_task: Option<i64>,
    /// A processing job's output: the job's generation (0 otherwise).
    pub(crate) generation: u64,
}

impl Live {
    /// A live push feeding `hub` (a new one, or the hub of the push it
    /// replaces, so that players stay attached).
    pub(crate) fn new(
        p: Publisher,
        (hub, switch): (Arc<Hub>, Arc<Switch>),
        cancel: CancellationToken,
        hls: SegmenterConfig,
        chunk_size: u32,
    ) -> Live {
        Live {
            publisher: p,
            hub,
            switch,
            headers: Mutex::new([None, None, None]),
            cancel,
            end_reason: Mutex::new(None),
            meter: Mutex::new(Meter::new(Instant::now())),
            info: Mutex::new(CodecInfo::default()),
            hls: Mutex::new(Segmenter::new(hls)),
            hls_on: AtomicBool::new(false),
            ll: Mutex::new(None),
            ll_on: AtomicBool::new(false),
            ll_generation: watch::Sender::new(0),
            chunk_size,
            progress: Progress::default(),
            created: Instant::now(),
            touched_ms: AtomicU64::new(0),
        }
    }

    /// The video bitrate (kbps) an encoder re-encoding this stream should
    /// aim at: what the publisher's metadata says, else what a whole
    /// measuring window saw; 0 while neither is known (the first seconds
    /// of a push without metadata).
    pub(crate) fn video_kbps_hint(&self) -> u32 {
        let meta = self.progress.meta_video_kbps.load(Ordering::Relaxed);
        if meta > 0 {
            return meta;
        }
        self.meter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .settled()
            .map_or(0, |r| u32::try_from(r.video_bps / 1000).unwrap_or(u32::MAX))
    }

    /// Whether the stream has shown B-frames (see [`Progress`]).
    pub(crate) fn has_bframes(&self) -> bool {
        self.progress.reordered.load(Ordering::Relaxed)
    }

    /// Notes an HLS request (players of HLS attach to no hub).
    pub(crate) fn touch(&self) {
        let ms = self.created.elapsed().as_millis() as u64;
        self.touched_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long since the last HLS request, or since it went live.
    pub(crate) fn untouched_for(&self) -> std::time::Duration {
        let at = std::time::Duration::from_millis(self.touched_ms.load(Ordering::Relaxed));
        self.created.elapsed().saturating_sub(at)
    }

    /// Ends the push: the publisher's task sees the token and closes the
    /// connection. The first reason given is the one reported.
    pub(crate) fn stop(&self, reason: EndReason) {
        let mut r = self.end_reason.lock().unwrap_or_else(|e| e.into_inner());
        r.get_or_insert(reason);
        self.cancel.cancel();
    }

    /// Why the push was stopped from outside, if it was.
    pub(crate) fn end_reason(&self) -> Option<EndReason> {
        *self.end_reason.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token the publisher's task watches.
    pub(crate) fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Takes one message from the publisher: measures it, and, while
    /// this push feeds the hub (see [`Switch`]), encodes it once for every
    /// output and hands it to the hub (and the HLS segmenter, when on).
    pub(crate) fn publish(&self, kind: FrameKind, timestamp: u32, payload: Bytes) {
        let now = Instant::now();
        let mut keyframe = false;
        let mut sequence_header = false;
        let mut composition_ms = 0;
        self.progress
            .bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        match kind {
            FrameKind::Video => {
                if let Ok(v) = VideoInfo::parse(&payload) {
                    keyframe = v.is_keyframe();
                    sequence_header = v.is_sequence_header();
                    composition_ms = v.composition_time_ms;
                    if sequence_header {
                        self.learn_video(&v, v.data(&payload));
                    }
                }
                if !sequence_header {
                    self.progress.video(timestamp, keyframe, composition_ms);
                }
                self.meter
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .video(payload.len(), now);
            }
            FrameKind::Audio => {
                if let Ok(a) = AudioInfo::parse(&payload) {
                    sequence_header = a.is_sequence_header();
                    self.learn_audio(&a, a.data(&payload));
                }
                if !sequence_header {
                    self.progress.audio_ts.store(timestamp, Ordering::Relaxed);
                }
                self.meter
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .audio(payload.len(), now);
            }
            FrameKind::Script => self.progress.metadata(&payload),
        }
        if kind == FrameKind::Script || sequence_header {
            let slot = match kind {
                FrameKind::Script => 0,
                FrameKind::Video => 1,
                FrameKind::Audio => 2,
            };
            self.headers.lock().unwrap_or_else(|e| e.into_inner())[slot] = Some(payload.clone());
        }
        // Under the switch's lock, so a hand-over and the frames around it
        // reach the hub in order.
        let mut sw = self.switch.lock();
        if sw.feeder != self.publisher.session {
            let takes_over = sw.pending == Some(self.publisher.session)
                && kind == FrameKind::Video
                && keyframe
                && !sequence_header;
            if !takes_over {
                return;
            }
            sw.feeder = self.publisher.session;
            sw.pending = None;
            sw.offset = i64::from(self.hub.last_timestamp()) + 1 - i64::from(timestamp);
            let at = shifted(timestamp, sw.offset);
            let headers = self
                .headers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let kinds = [FrameKind::Script, FrameKind::Video, FrameKind::Audio];
            for (kind, header) in kinds.into_iter().zip(headers) {
                if let Some(h) = header {
                    let is_header = kind != FrameKind::Script;
                    self.send(kind, at, h, kind == FrameKind::Video, is_header);
                }
            }
        }
        let at = shifted(timestamp, sw.offset);
        self.send(kind, at, payload, keyframe, sequence_header);
    }

    /// Encodes one message for every output and hands it to the hub.
    fn send(
        &self,
        kind: FrameKind,
        timestamp: u32,
        payload: Bytes,
        keyframe: bool,
        sequence_header: bool,
    ) {
        let frame = Frame::new(
            kind,
            timestamp,
            keyframe,
            sequence_header,
            payload,
            self.chunk_size,
        );
        let tag_kind = TagKind::from(kind);
        if self.hls_on.load(Ordering::Acquire) {
            let mut hls = self.hls.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = hls.push(tag_kind, timestamp, &frame.payload) {
                tracing::debug!(stream = %self.publisher.key.stream, "HLS dropped a frame: {e}");
            }
        }
        if self.ll_on.load(Ordering::Acquire) {
            self.ll_update(|p| p.push(tag_kind, timestamp, &frame.payload));
        }
        self.hub.push(frame);
    }

    fn learn_video(&self, v: &VideoInfo, config: &[u8]) {
        let mut info = self.info.lock().unwrap_or_else(|e| e.into_inner());
        match v.codec {
            VideoCodecId::Avc => {
                info.video_codec = "h264";
                if let Ok(sps) = AvcConfig::parse(config).and_then(|c| c.parse_sps()) {
                    (info.width, info.height) = (sps.width, sps.height);
                }
            }
            VideoCodecId::Hevc => {
                info.video_codec = "h265";
                if let Ok(sps) = HevcConfig::parse(config)
                    .map_err(|_| ())
                    .and_then(|c| c.parse_sps().map_err(|_| ()))
                {
                    (info.width, info.height) = (sps.width, sps.height);
                }
            }
            VideoCodecId::Av1 => info.video_codec = "av1",
            VideoCodecId::Vp9 => info.video_codec = "vp9",
            _ => info.video_codec = "other",
        }
    }

    fn learn_audio(&self, a: &AudioInfo, data: &[u8]) {
        let mut info = self.info.lock().unwrap_or_else(|e| e.into_inner());
        info.audio_codec = match a.codec {
            AudioCodec::Aac => "aac",
            AudioCodec::Mp3 => "mp3",
            AudioCodec::Opus => "opus",
            _ => "other",
        };
        if a.codec == AudioCodec::Aac && a.is_sequence_header() {
            if let Ok(asc) = AudioSpecificConfig::parse(data) {
                info.sample_rate = asc.sample_rate;
            }
        } else if info.sample_rate == 0 {
            info.sample_rate = a.legacy_sample_rate();
        }
    }

    /// Runs `f` on the LL-HLS packager (when it runs) and announces its
    /// new generation to held requests.
    fn ll_update(&self, f: impl FnOnce(&mut LlPackager)) {
        let generation = {
            let mut ll = self.ll.lock().unwrap_or_else(|e| e.into_inner());
            let Some(p) = ll.as_mut() else {
                return;
            };
            f(p);
            p.generation()
        };
        self.ll_generation.send_if_modified(|g| {
            let changed = *g != generation;
            *g = generation;
            changed
        });
    }

    /// Starts cutting HLS segments for this stream (once): primed with
    /// the hub's sequence headers and current GOP, so the first segment
    /// is ready at the first keyframe after the target duration, then fed
    /// every frame the hub gets. Under the switch's lock, so no frame
    /// falls between the two.
    pub(crate) fn start_hls(&self) -> &Live {
        if self.hls_on.load(Ordering::Acquire) {
            return self;
        }
        let _switch = self.switch.lock();
        let mut hls = self.hls.lock().unwrap_or_else(|e| e.into_inner());
        if self.hls_on.load(Ordering::Acquire) {
            return self;
        }
        for f in self.hub.start_frames() {
            if let Err(e) = hls.push(f.kind.into(), f.timestamp, &f.payload) {
                tracing::debug!(stream = %self.publisher.key.stream, "HLS dropped a frame: {e}");
            }
        }
        self.hls_on.store(true, Ordering::Release);
        self
    }

    /// Starts LL-HLS packaging for this stream (once), with parts of at
    /// most `part_target_ms` and the file names, segment target and
    /// window of its HLS segmenter: primed with the hub's sequence
    /// headers and current GOP, then fed every frame the hub gets. Under
    /// the switch's lock, so no frame falls between the two.
    pub(crate) fn start_ll(&self, part_target_ms: u32) {
        if self.ll_on.load(Ordering::Acquire) {
            return;
        }
        let _switch = self.switch.lock();
        let mut ll = self.ll.lock().unwrap_or_else(|e| e.into_inner());
        if ll.is_some() {
            return;
        }
        let config = {
            let hls = self.hls.lock().unwrap_or_else(|e| e.into_inner());
            let hls = hls.config();
            LlConfig {
                part_target_ms,
                segment_target_ms: hls.target_duration_ms.clamp(1000, 10_000) as u32,
                window: hls.window.max(3),
                name: hls.name.clone(),
            }
        };
        let mut p = LlPackager::new(config);
        for f in self.hub.start_frames() {
            p.push(f.kind.into(), f.timestamp, &f.payload);
        }
        *ll = Some(p);
        self.ll_on.store(true, Ordering::Release);
    }

    /// The LL-HLS playlist, once a part exists (see
    /// [`LlPackager::playlist`]).
    pub(crate) fn ll_playlist(&self, suffix: &str, skip: bool) -> Option<String> {
        let ll = self.ll.lock().unwrap_or_else(|e| e.into_inner());
        ll.as_ref()
            .filter(|p| p.ready())
            .map(|p| p.playlist(suffix, skip))
    }

    /// Asks the LL-HLS packager (when it runs).
    pub(crate) fn ll<T>(&self, f: impl FnOnce(&LlPackager) -> T) -> Option<T> {
        let ll = self.ll.lock().unwrap_or_else(|e| e.into_inner());
        ll.as_ref().map(f)
    }

    /// An LL-HLS file by name: the initialization segment, a segment or
    /// a part.
    pub(crate) fn ll_file(&self, file: &str) -> Option<(LlFile, Option<Bytes>)> {
        self.ll(|p| {
            let what = p.parse_name(file)?;
            let data = match what {
                LlFile::Init(version) => p.init_version(version),
                LlFile::Segment(msn) => p.segment(msn),
                LlFile::Part(msn, part) => p.part(msn, part),
            };
            Some((what, data))
        })
        .flatten()
    }

    /// Follows the LL-HLS packager's generation.
    pub(crate) fn ll_watch(&self) -> watch::Receiver<u64> {
        self.ll_generation.subscribe()
    }

    /// Closes the last HLS segment (and LL-HLS part) when the push ends.
    pub(crate) fn finish_hls(&self) {
        self.ll_update(LlPackager::finish);
        self.hls.lock().unwrap_or_else(|e| e.into_inner()).finish();
    }

    /// The HLS playlist, with `query` (the player's signature) appended to
    /// every segment URI so the segments pass play authentication too.
    pub(crate) fn playlist(&self, query: &str) -> String {
        let hls = self.hls.lock().unwrap_or_else(|e| e.into_inner());
        if query.is_empty() {
            hls.playlist()
        } else {
            let suffix = format!("?{query}");
            hls.playlist_with(|s| format!("{}{suffix}", hls.segment_name(s.sequence)))
        }
    }

    /// A segment by file name (`<stream>-<n>.ts`).
    pub(crate) fn segment(&self, file_name: &str) -> Option<Bytes> {
        let hls = self.hls.lock().unwrap_or_else(|e| e.into_inner());
        let sequence = hls.parse_segment_name(file_name)?;
        hls.segment(sequence).map(|s| s.data.clone())
    }

    /// Whether any HLS segment is ready.
    pub(crate) fn has_segments(&self) -> bool {
        self.hls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .segments()
            .next()
            .is_some()
    }

    /// What `DescribeLiveStream*` report.
    pub(crate) fn snapshot(&self) -> OnlineStream {
        let rates = self
            .meter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rates(Instant::now());
        let info = self.info.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let p = &self.publisher;
        OnlineStream {
            key: p.key.clone(),
            domain: p.domain.clone(),
            client: p.client,
            server: p.server,
            started: p.started,
            params: p.params.clone(),
            video_codec: info.video_codec.to_owned(),
            audio_codec: info.audio_codec.to_owned(),
            width: info.width,
            height: info.height,
            fps: rates.fps,
            video_bps: rates.video_bps,
            audio_bps: rates.audio_bps,
            audio_fps: rates.audio_fps,
            sample_rate: info.sample_rate,
            players: self.hub.players() as u64,
        }
    }

    /// The picture size seen so far.
    pub(crate) fn resolution(&self) -> (u32, u32) {
        let info = self.info.lock().unwrap_or_else(|e| e.into_inner());
        (info.width, info.height)
    }
}
