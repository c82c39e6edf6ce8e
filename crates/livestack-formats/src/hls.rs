//! HLS segmenting: FLV-level frames in, MPEG-TS segments and a media
//! playlist out.
//!
//! Owns: turning RTMP/FLV tag bodies into TS (through [`crate::annexb`] and
//! [`crate::ts`]), choosing where segments are cut (video keyframes once the
//! target duration is reached; by duration for audio-only streams), mapping
//! 32-bit RTMP timestamps onto a monotonic timeline, the rolling window of
//! segments in memory, and the playlist text.
//! Must not: do I/O or know about HTTP (callers serve
//! [`Segmenter::playlist`] and [`Segmenter::segment`]), or panic on any
//! frame sequence.
//!
//! Timestamps are made monotonic per track: 32-bit wrap-around is undone,
//! and a jump (more than 10 s forward or 0.5 s backward within a track, or
//! a track starting more than 10 s away from the other) is spliced out by
//! shifting the rest of that track to continue one frame after its last, so
//! segments never get negative or absurd durations and the TS timeline stays
//! continuous. A change of tracks, video codec or codec parameters
//! starts a segment marked `#EXT-X-DISCONTINUITY`.

use std::collections::VecDeque;
use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};

use crate::aac::{AacError, AudioSpecificConfig};
use crate::annexb::{AnnexBConverter, AnnexBError};
use crate::avc::{AvcConfig, AvcError};
use crate::flv::{
    AudioCodec, AudioInfo, AudioPacketType, FlvError, TagKind, VideoCodecId, VideoInfo,
    VideoPacketType,
};
use crate::hevc::{HevcConfig, HevcError};
use crate::ts::{TsError, TsMuxer};
use crate::VideoCodec;

/// A forward step within a track larger than this is a discontinuity.
const MAX_FORWARD_GAP_MS: i64 = 10_000;
/// A backward step within a track larger than this is a discontinuity;
/// smaller ones are clamped to keep decode order.
const MAX_BACKWARD_JITTER_MS: i64 = 500;
/// The frame duration assumed before a track has shown one.
const DEFAULT_STEP_MS: u64 = 40;

/// What can go wrong with a frame given to the segmenter. The segmenter
/// drops the frame and stays usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HlsError {
    /// The tag body header is malformed.
    #[error(transparent)]
    Flv(#[from] FlvError),
    /// The AVC sequence header is malformed.
    #[error(transparent)]
    Avc(#[from] AvcError),
    /// The HEVC sequence header is malformed.
    #[error(transparent)]
    Hevc(#[from] HevcError),
    /// The AAC sequence header is malformed or cannot go into ADTS.
    #[error(transparent)]
    Aac(#[from] AacError),
    /// A video frame's NAL units are malformed.
    #[error(transparent)]
    AnnexB(#[from] AnnexBError),
    /// HLS over MPEG-TS here carries H.264 and H.265 only.
    #[error("video codec {0:?} is not supported for HLS")]
    UnsupportedVideoCodec(VideoCodecId),
    /// HLS over MPEG-TS here carries AAC only.
    #[error("audio codec {0:?} is not supported for HLS")]
    UnsupportedAudioCodec(AudioCodec),
    /// The muxer refused a frame (the segmenter checks tracks first, so
    /// this does not happen).
    #[error(transparent)]
    Ts(#[from] TsError),
    /// A coded frame's codec differs from its sequence header's.
    #[error("video frame codec does not match the sequence header")]
    CodecMismatch,
}

/// How segments are cut, kept and named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Cut at the first video keyframe (or audio frame, without video) once
    /// a segment is this long. Default 2 s.
    pub target_duration_ms: u64,
    /// Cut even without a keyframe once a segment is this long, bounding
    /// memory for streams with huge GOPs. Default 30 s.
    pub max_segment_duration_ms: u64,
    /// Segments kept in memory and listed in the playlist. Default 6.
    pub window: usize,
    /// Segment file names are `<name>-<sequence>.ts`. Default `segment`.
    pub name: String,
    /// Prepended to segment names in the playlist (e.g. `/live/room1/`).
    /// Default empty: names are relative to the playlist.
    pub url_prefix: String,
    /// The sequence number of the first segment. Default 0; a stream that
    /// restarts under the same playlist URL should continue past the last
    /// number it served, so players do not mistake new segments for old.
    pub first_sequence: u64,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            target_duration_ms: 2_000,
            max_segment_duration_ms: 30_000,
            window: 6,
            name: "segment".to_owned(),
            url_prefix: String::new(),
            first_sequence: 0,
        }
    }
}

/// A finished TS segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its media sequence number (counts up from `first_sequence`).
    pub sequence: u64,
    /// Its duration in milliseconds.
    pub duration_ms: u64,
    /// Whether it starts after a discontinuity (new tracks or codec).
    pub discontinuity: bool,
    /// The MPEG-TS bytes, starting with a PAT and PMT.
    pub data: Bytes,
}

/// One track's mapping from RTMP timestamps to the output timeline.
#[derive(Debug, Clone, Copy, Default)]
struct TrackClock {
    last_raw: Option<u32>,
    /// `last_raw` with 32-bit wrap-arounds undone.
    unwrapped: i64,
    /// Added to `unwrapped` to splice out jumps.
    offset: i64,
    /// The latest output time.
    last: Option<u64>,
    /// The latest normal step between frames, for splicing.
    step: u64,
}

impl TrackClock {
    /// Maps a raw timestamp to this track's output time, `other` being the
    /// other track's latest output time.
    fn map(&mut self, raw: u32, other: Option<u64>) -> u64 {
        self.unwrapped = match self.last_raw {
            None => i64::from(raw),
            // The signed 32-bit difference undoes wrap-around.
            Some(last) => self.unwrapped + i64::from(raw.wrapping_sub(last) as i32),
        };
        self.last_raw = Some(raw);
        let mut t = self.unwrapped + self.offset;
        // Where to continue from after a jump, which then shifts the rest
        // of the track; jitter is only clamped.
        let mut splice = None;
        if let Some(last) = self.last {
            let last = last as i64;
            let step = if self.step == 0 {
                DEFAULT_STEP_MS
            } else {
                self.step
            } as i64;
            let delta = t - last;
            if !(-MAX_BACKWARD_JITTER_MS..=MAX_FORWARD_GAP_MS).contains(&delta) {
                splice = Some(last + step);
            } else if delta <= 0 {
                t = last + 1;
            } else {
                self.step = (delta as u64).min(1_000);
            }
        }
        // Tracks may run a little apart, not a jump apart: a track that
        // strays (or starts) too far from the other is brought alongside.
        if let Some(other) = other {
            let other = other as i64;
            let candidate = splice.unwrap_or(t);
            if !(-MAX_FORWARD_GAP_MS..=MAX_FORWARD_GAP_MS).contains(&(candidate - other)) {
                splice = Some(self.last.map_or(other, |last| other.max(last as i64 + 1)));
            }
        }
        if let Some(at) = splice {
            self.offset = at - self.unwrapped;
            t = at;
        }
        // A negative time can only come from a raw clock running backwards
        // from its first value; it is held at zero.
        let t = t.max(0) as u64;
        self.last = Some(t);
        t
    }
}

/// The tracks of a segment's PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tracks {
    video: Option<VideoCodec>,
    audio: bool,
}

/// The segment being written.
#[derive(Debug)]
struct OpenSegment {
    muxer: TsMuxer,
    buf: BytesMut,
    start_ms: u64,
    discontinuity: bool,
    /// Decode time of the latest frame of the track that drives cutting.
    last_ms: u64,
}

/// Cuts FLV-level frames into MPEG-TS segments and renders the playlist.
///
/// Feed it every tag of a stream with [`push`](Self::push), sequence
/// headers included (resend them first when joining a stream late). Frames
/// before the first sequence headers, and video frames before the first
/// keyframe, are dropped.
#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    segments: VecDeque<Segment>,
    next_sequence: u64,
    discontinuity_sequence: u64,
    max_duration_ms: u64,
    video: Option<AnnexBConverter>,
    audio: Option<AudioSpecificConfig>,
    current: Option<OpenSegment>,
    video_clock: TrackClock,
    audio_clock: TrackClock,
    /// The tracks, codecs or parameters changed: cut at the next chance.
    reconfigure: bool,
    /// The next segment is marked `#EXT-X-DISCONTINUITY` whatever its tracks.
    force_discontinuity: bool,
    /// The tracks of the latest segment opened.
    last_tracks: Option<Tracks>,
    ended: bool,
    /// Reused for each frame's Annex-B conversion.
    scratch: BytesMut,
    size_hint: usize,
}

impl Segmenter {
    /// A segmenter with the given configuration.
    pub fn new(mut config: SegmenterConfig) -> Self {
        config.window = config.window.max(1);
        config.target_duration_ms = config.target_duration_ms.max(1);
        config.max_segment_duration_ms = config
            .max_segment_duration_ms
            .max(config.target_duration_ms);
        let first_sequence = config.first_sequence;
        Self {
            config,
            segments: VecDeque::new(),
            next_sequence: first_sequence,
            discontinuity_sequence: 0,
            max_duration_ms: 0,
            video: None,
            audio: None,
            current: None,
            video_clock: TrackClock::default(),
            audio_clock: TrackClock::default(),
            reconfigure: false,
            force_discontinuity: false,
            last_tracks: None,
            ended: false,
            scratch: BytesMut::new(),
            size_hint: 64 * 1024,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &SegmenterConfig {
        &self.config
    }

    /// Takes one FLV tag (as an RTMP message: type, timestamp, body).
    /// Returns the sequence number of a segment this frame completed.
    ///
    /// On error the frame is dropped and the segmenter stays usable.
    pub fn push(
        &mut self,
        kind: TagKind,
        timestamp_ms: u32,
        body: &[u8],
    ) -> Result<Option<u64>, HlsError> {
        match kind {
            TagKind::Video => self.push_video(timestamp_ms, body),
            TagKind::Audio => self.push_audio(timestamp_ms, body),
            TagKind::Script => Ok(None),
        }
    }

    fn push_video(&mut self, timestamp_ms: u32, body: &[u8]) -> Result<Option<u64>, HlsError> {
        let info = VideoInfo::parse(body)?;
        match info.packet_type {
            VideoPacketType::SequenceStart => {
                let data = info.data(body);
                let converter = match info.codec {
                    VideoCodecId::Avc => AnnexBConverter::from_avc(&AvcConfig::parse(data)?),
                    VideoCodecId::Hevc => AnnexBConverter::from_hevc(&HevcConfig::parse(data)?),
                    other => return Err(HlsError::UnsupportedVideoCodec(other)),
                };
                match &self.video {
                    // Encoders and relays resend unchanged headers: no cut.
                    Some(old)
                        if old.codec() == converter.codec()
                            && old.parameter_sets() == converter.parameter_sets() => {}
                    Some(_) => {
                        self.reconfigure = true;
                        self.force_discontinuity = true;
                    }
                    None => self.reconfigure = self.current.is_some(),
                }
                self.video = Some(converter);
                return Ok(None);
            }
            VideoPacketType::CodedFrames => {}
            _ => return Ok(None),
        }
        let Some(converter) = &self.video else {
            return Ok(None);
        };
        let frame_codec = match info.codec {
            VideoCodecId::Avc => VideoCodec::H264,
            VideoCodecId::Hevc => VideoCodec::H265,
            other => return Err(HlsError::UnsupportedVideoCodec(other)),
        };
        if frame_codec != converter.codec() {
            return Err(HlsError::CodecMismatch);
        }
        self.scratch.clear();
        let keyframe = info.is_keyframe();
        converter.convert(info.data(body), keyframe, &mut self.scratch)?;

        let dts = self.video_clock.map(timestamp_ms, self.audio_clock.last);
        let pts = dts.saturating_add_signed(i64::from(info.composition_time_ms.max(0)));
        let mut completed = None;
        if let Some(cur) = &self.current {
            let elapsed = dts.saturating_sub(cur.start_ms);
            let cut = if keyframe {
                self.reconfigure
                    || !cur.muxer.has_video()
                    || elapsed >= self.config.target_duration_ms
            } else {
                elapsed >= self.config.max_segment_duration_ms
            };
            if cut {
                completed = self.close_segment(dts);
            }
        }
        if self.current.is_none() {
            // Segments start at keyframes, except straight after a forced cut.
            if !keyframe && completed.is_none() {
                return Ok(None);
            }
            self.open_segment(dts, true);
        }
        if let Some(cur) = &mut self.current {
            if cur.muxer.has_video() {
                cur.muxer
                    .write_video(pts, dts, keyframe, &self.scratch, &mut cur.buf)?;
                cur.last_ms = dts;
            }
        }
        Ok(completed)
    }

    fn push_audio(&mut self, timestamp_ms: u32, body: &[u8]) -> Result<Option<u64>, HlsError> {
        let info = AudioInfo::parse(body)?;
        if info.codec != AudioCodec::Aac {
            return Err(HlsError::UnsupportedAudioCodec(info.codec));
        }
        match info.packet_type {
            AudioPacketType::SequenceStart => {
                let config = AudioSpecificConfig::parse(info.data(body))?;
                // Refuse what ADTS cannot carry now rather than per frame.
                config.adts_header(0)?;
                match self.audio {
                    Some(old) if old == config => {}
                    Some(_) => {
                        self.reconfigure = true;
                        self.force_discontinuity = true;
                    }
                    None => self.reconfigure = self.current.is_some(),
                }
                self.audio = Some(config);
                return Ok(None);
            }
            AudioPacketType::CodedFrames => {}
            _ => return Ok(None),
        }
        let Some(config) = self.audio else {
            return Ok(None);
        };
        let raw = info.data(body);
        let header = config.adts_header(raw.len())?;
        let pts = self.audio_clock.map(timestamp_ms, self.video_clock.last);
        let mut completed = None;
        let mut closed_had_video = false;
        if let Some(cur) = &self.current {
            let elapsed = pts.saturating_sub(cur.start_ms);
            closed_had_video = cur.muxer.has_video();
            let cut = if closed_had_video {
                // Video drives cutting; this only bounds a segment whose
                // video stopped coming.
                elapsed >= self.config.max_segment_duration_ms
            } else {
                // Audio-only segment: audio drives. A pending change that
                // adds video waits for the video keyframe instead.
                (self.reconfigure && self.video.is_none())
                    || elapsed >= self.config.target_duration_ms
            };
            if cut {
                completed = self.close_segment(pts);
            }
        }
        if self.current.is_none() {
            if self.video.is_none() {
                self.open_segment(pts, false);
            } else if completed.is_some() {
                self.open_segment(pts, closed_had_video);
            }
            // Otherwise audio waits for the segment a video keyframe opens.
        }
        if let Some(cur) = &mut self.current {
            if cur.muxer.has_audio() {
                cur.muxer
                    .write_audio_parts(pts, &[&header, raw], &mut cur.buf)?;
                if !cur.muxer.has_video() {
                    cur.last_ms = pts;
                }
            }
        }
        Ok(completed)
    }

    /// Opens a segment with the audio track if configured and the video
    /// track if configured and `with_video`.
    fn open_segment(&mut self, start_ms: u64, with_video: bool) {
        let configured = Tracks {
            video: self.video.as_ref().map(|v| v.codec()),
            audio: self.audio.is_some(),
        };
        let tracks = Tracks {
            video: configured.video.filter(|_| with_video),
            ..configured
        };
        let mut muxer = TsMuxer::new(
            tracks.video.is_some(),
            tracks.audio,
            tracks.video.unwrap_or(VideoCodec::H264),
        );
        let mut buf = BytesMut::with_capacity(self.size_hint);
        muxer.write_tables(&mut buf);
        let discontinuity =
            self.force_discontinuity || self.last_tracks.is_some_and(|last| last != tracks);
        self.current = Some(OpenSegment {
            muxer,
            buf,
            start_ms,
            discontinuity,
            last_ms: start_ms,
        });
        self.last_tracks = Some(tracks);
        self.force_discontinuity = false;
        if tracks == configured {
            self.reconfigure = false;
        }
        self.ended = false;
    }

    /// Closes the open segment at `end_ms` (the start of what follows).
    fn close_segment(&mut self, end_ms: u64) -> Option<u64> {
        let cur = self.current.take()?;
        let duration_ms = end_ms.saturating_sub(cur.start_ms);
        // A segment holding a single frame still lasts that frame.
        let duration_ms = if duration_ms == 0 {
            self.video_clock.step.max(1)
        } else {
            duration_ms
        };
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.size_hint = cur.buf.len() + cur.buf.len() / 8;
        self.max_duration_ms = self.max_duration_ms.max(duration_ms);
        self.segments.push_back(Segment {
            sequence,
            duration_ms,
            discontinuity: cur.discontinuity,
            data: cur.buf.freeze(),
        });
        while self.segments.len() > self.config.window {
            if let Some(old) = self.segments.pop_front() {
                if old.discontinuity {
                    self.discontinuity_sequence += 1;
                }
            }
        }
        Some(sequence)
    }

    /// Ends the stream: closes the open segment (lasting up to the end of
    /// its last frame) and marks the playlist `#EXT-X-ENDLIST`. Returns the
    /// sequence number of the segment closed. Frames pushed afterwards
    /// start a new segment after a discontinuity.
    pub fn finish(&mut self) -> Option<u64> {
        let step = if self.current.as_ref().is_some_and(|c| c.muxer.has_video()) {
            self.video_clock.step
        } else {
            self.audio_clock.step
        };
        let end = self.current.as_ref().map(|c| c.last_ms + step.max(1))?;
        let closed = self.close_segment(end);
        self.ended = true;
        self.force_discontinuity = true;
        closed
    }

    /// Takes the bytes of the open segment written so far, for a caller
    /// that writes segments to disk as they grow (so that a crash loses
    /// only what was not taken yet). The segment keeps its sequence number;
    /// once closed, its `data` holds only what came after the last take.
    pub fn take_open(&mut self) -> Option<Segment> {
        let sequence = self.next_sequence;
        let cur = self.current.as_mut()?;
        Some(Segment {
            sequence,
            duration_ms: cur.last_ms.saturating_sub(cur.start_ms),
            discontinuity: cur.discontinuity,
            data: cur.buf.split().freeze(),
        })
    }

    /// The segments in the window, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> + '_ {
        self.segments.iter()
    }

    /// A segment in the window by sequence number.
    pub fn segment(&self, sequence: u64) -> Option<&Segment> {
        let first = self.segments.front()?.sequence;
        self.segments
            .get(usize::try_from(sequence.checked_sub(first)?).ok()?)
    }

    /// The file name of a segment: `<name>-<sequence>.ts`.
    pub fn segment_name(&self, sequence: u64) -> String {
        format!("{}-{sequence}.ts", self.config.name)
    }

    /// The sequence number a file name from [`segment_name`](Self::segment_name) stands for.
    pub fn parse_segment_name(&self, file_name: &str) -> Option<u64> {
        let rest = file_name
            .strip_prefix(self.config.name.as_str())?
            .strip_prefix('-')?;
        let digits = rest.strip_suffix(".ts")?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// The media playlist, with segment URIs `<url_prefix><name>-<seq>.ts`.
    pub fn playlist(&self) -> String {
        self.playlist_with(|s| {
            format!(
                "{}{}",
                self.config.url_prefix,
                self.segment_name(s.sequence)
            )
        })
    }

    /// The media playlist with segment URIs from `uri` (for signed or
    /// absolute URLs).
    pub fn playlist_with(&self, mut uri: impl FnMut(&Segment) -> String) -> String {
        // Rounded EXTINF values must not exceed the target duration, which
        // must not change during the stream: use the largest ever seen.
        let target_s = self
            .config
            .target_duration_ms
            .div_ceil(1000)
            .max((self.max_duration_ms + 500) / 1000)
            .max(1);
        let first = self
            .segments
            .front()
            .map_or(self.next_sequence, |s| s.sequence);
        let mut out = String::with_capacity(128 + self.segments.len() * 64);
        out.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
        // Writing into a String cannot fail.
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target_s}");
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first}");
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        for s in &self.segments {
            if s.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let _ = writeln!(
                out,
                "#EXTINF:{}.{:03},",
                s.duration_ms / 1000,
                s.duration_ms % 1000
            );
            out.push_str(&uri(s));
            out.push('\n');
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

impl Default for Segmenter {
    fn default() -> Self {
        Self::new(SegmenterConfig::default())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::avc::tests::{PPS, SPS_640X360};
    use crate::ts::{PACKET_LEN, PID_AUDIO, PID_VIDEO};

    /// The FLV AVC sequence header of the 640x360 test parameter sets.
    pub(crate) fn avc_seq_header() -> Vec<u8> {
        let config = AvcConfig::from_parameter_sets(
            vec![Bytes::from_static(SPS_640X360)],
            vec![Bytes::from_static(PPS)],
        )
        .unwrap();
        let mut body = vec![0x17, 0, 0, 0, 0];
        body.extend_from_slice(&config.to_bytes());
        body
    }

    fn video(key: bool, cts: u8) -> Vec<u8> {
        let nal: &[u8] = if key {
            &[0x65, 0x88, 0x80]
        } else {
            &[0x41, 0x9A, 0x00]
        };
        let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, cts, 0, 0, 0, 3];
        body.extend_from_slice(nal);
        body
    }

    const AAC_SEQ: &[u8] = &[0xAF, 0x00, 0x12, 0x10];
    const AAC_FRAME: &[u8] = &[0xAF, 0x01, 0x21, 0x10, 0x04];

    /// Pushes `seconds` of 25 fps video (keyframe every `gop` frames) and
    /// 43 audio frames per second starting at `start`.
    fn feed(s: &mut Segmenter, start: u32, seconds: u32, gop: u32, audio: bool) -> Vec<u64> {
        let mut done = Vec::new();
        let mut a = 0;
        for i in 0..seconds * 25 {
            let t = start.wrapping_add(i * 40);
            done.extend(s.push(TagKind::Video, t, &video(i % gop == 0, 0)).unwrap());
            while audio && a * 1000 / 43 <= i * 40 {
                let at = start.wrapping_add(a * 1000 / 43);
                done.extend(s.push(TagKind::Audio, at, AAC_FRAME).unwrap());
                a += 1;
            }
        }
        done
    }

    fn av_segmenter(config: SegmenterConfig) -> Segmenter {
        let mut s = Segmenter::new(config);
        s.push(TagKind::Video, 0, &avc_seq_header()).unwrap();
        s.push(TagKind::Audio, 0, AAC_SEQ).unwrap();
        s
    }

    fn durations(s: &Segmenter) -> Vec<u64> {
        s.segments().map(|x| x.duration_ms).collect()
    }

    fn pids(seg: &Segment) -> Vec<u16> {
        seg.data
            .chunks(PACKET_LEN)
            .map(|p| (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]))
            .collect()
    }

    #[test]
    fn a_segment_taken_as_it_grows_joins_up_to_the_segment_cut_whole() {
        let mut taken = av_segmenter(SegmenterConfig::default());
        let mut joined = Vec::new();
        let mut t = 0u32;
        for second in 0..3u32 {
            // One second at a time, as the recorder flushes.
            for i in 0..25 {
                let at = t + i * 40;
                taken
                    .push(TagKind::Video, at, &video((second * 25 + i) % 30 == 0, 0))
                    .unwrap();
            }
            t += 1000;
            if let Some(open) = taken.take_open() {
                assert_eq!(open.sequence, if second < 2 { 0 } else { 1 });
                joined.push(open);
            }
        }
        // Segment 0 closed (at 2.4 s) holds what came after the last take.
        let closed = taken.segment(0).expect("closed");
        let mut data: Vec<u8> = joined
            .iter()
            .filter(|o| o.sequence == 0)
            .flat_map(|o| o.data.to_vec())
            .collect();
        data.extend_from_slice(&closed.data);
        assert_eq!(closed.duration_ms, 2400);
        assert_eq!(data.len() % PACKET_LEN, 0);
        assert!(joined[0].duration_ms >= 900, "{}", joined[0].duration_ms);
        // The same frames cut whole (video only here) give a segment of
        // the same length in packets.
        let mut video_only = av_segmenter(SegmenterConfig::default());
        for i in 0..75u32 {
            video_only
                .push(TagKind::Video, i * 40, &video(i % 30 == 0, 0))
                .unwrap();
        }
        assert_eq!(video_only.segment(0).expect("cut").data.len(), data.len());
    }

    #[test]
    fn segments_are_cut_at_keyframes_after_the_target_duration() {
        let mut s = av_segmenter(SegmenterConfig::default());
        // Keyframes every 1.2 s: cuts at 2.4 s, 4.8 s, 7.2 s.
        let done = feed(&mut s, 0, 8, 30, true);
        assert_eq!(done, vec![0, 1, 2]);
        assert_eq!(durations(&s), vec![2400, 2400, 2400]);
        let first = s.segment(0).unwrap();
        let p = pids(first);
        assert_eq!(&p[..2], &[0, 0x1000]);
        assert!(p.contains(&PID_VIDEO) && p.contains(&PID_AUDIO));
        assert_eq!(first.data.len() % PACKET_LEN, 0);
    }

    #[test]
    fn the_playlist_lists_the_window_with_target_duration_and_sequence() {
        let mut s = av_segmenter(SegmenterConfig {
            window: 2,
            name: "room".to_owned(),
            url_prefix: "/live/".to_owned(),
            ..SegmenterConfig::default()
        });
        feed(&mut s, 0, 10, 50, true);
        assert_eq!(s.finish(), Some(4));
        assert_eq!(
            s.playlist(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n\
             #EXTINF:2.000,\n/live/room-3.ts\n#EXTINF:2.000,\n/live/room-4.ts\n#EXT-X-ENDLIST\n"
        );
        assert!(s.segment(2).is_none());
        assert_eq!(s.segment(4).map(|x| x.sequence), Some(4));
        assert_eq!(s.parse_segment_name("room-4.ts"), Some(4));
        assert_eq!(s.parse_segment_name("room-+4.ts"), None);
        assert_eq!(s.parse_segment_name("other-4.ts"), None);
        let custom = s.playlist_with(|seg| format!("x{}", seg.sequence));
        assert!(custom.contains("\nx3\n"));
    }

    #[test]
    fn sequence_numbers_can_continue_from_an_earlier_stream() {
        let mut s = av_segmenter(SegmenterConfig {
            first_sequence: 41,
            ..SegmenterConfig::default()
        });
        feed(&mut s, 0, 3, 50, true);
        assert_eq!(
            s.segments().map(|x| x.sequence).collect::<Vec<_>>(),
            vec![41]
        );
        assert!(s.playlist().contains("\nsegment-41.ts\n"));
        assert!(s.playlist().contains("#EXT-X-MEDIA-SEQUENCE:41\n"));
    }

    #[test]
    fn long_gops_make_long_segments_and_a_larger_target_duration() {
        let mut s = av_segmenter(SegmenterConfig::default());
        feed(&mut s, 0, 11, 125, false);
        assert_eq!(durations(&s), vec![5000, 5000]);
        assert!(s.playlist().contains("#EXT-X-TARGETDURATION:5\n"));
    }

    #[test]
    fn without_keyframes_segments_are_forced_at_the_maximum_duration() {
        let mut s = av_segmenter(SegmenterConfig {
            max_segment_duration_ms: 4_000,
            ..SegmenterConfig::default()
        });
        feed(&mut s, 0, 9, 1_000, false);
        assert_eq!(durations(&s), vec![4000, 4000]);
    }

    #[test]
    fn audio_only_streams_are_cut_by_duration() {
        let mut s = Segmenter::default();
        s.push(TagKind::Audio, 0, AAC_SEQ).unwrap();
        for i in 0..215u32 {
            s.push(TagKind::Audio, i * 1000 / 43, AAC_FRAME).unwrap();
        }
        let d = durations(&s);
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|d| (2000..2030).contains(d)), "{d:?}");
        assert!(pids(s.segment(0).unwrap()).iter().all(|p| *p != PID_VIDEO));
    }

    #[test]
    fn frames_before_sequence_headers_or_the_first_keyframe_are_dropped() {
        let mut s = Segmenter::default();
        s.push(TagKind::Video, 0, &video(true, 0)).unwrap();
        s.push(TagKind::Video, 0, &avc_seq_header()).unwrap();
        s.push(TagKind::Video, 40, &video(false, 0)).unwrap();
        assert!(s.current.is_none());
        s.push(TagKind::Video, 80, &video(true, 0)).unwrap();
        assert_eq!(s.current.as_ref().map(|c| c.start_ms), Some(80));
    }

    #[test]
    fn timestamp_jumps_and_wraparound_never_give_negative_or_huge_durations() {
        let mut s = av_segmenter(SegmenterConfig::default());
        feed(&mut s, 0, 4, 25, true);
        // The publisher's clock jumps back to 0, then forward by an hour, then wraps.
        feed(&mut s, 0, 4, 25, true);
        feed(&mut s, 3_600_000, 4, 25, true);
        feed(&mut s, u32::MAX - 1_000, 4, 25, true);
        s.finish();
        let d = durations(&s);
        assert_eq!(d.len(), 6);
        assert!(d.iter().all(|d| (1900..=2100).contains(d)), "{d:?}");
    }

    #[test]
    fn a_track_starting_far_from_the_other_is_brought_alongside() {
        let mut s = av_segmenter(SegmenterConfig::default());
        s.push(TagKind::Video, 1_000, &video(true, 0)).unwrap();
        s.push(TagKind::Audio, 3_000_000, AAC_FRAME).unwrap();
        feed(&mut s, 1_040, 3, 25, false);
        s.finish();
        assert_eq!(durations(&s), vec![2040, 1000]);
    }

    #[test]
    fn a_track_walking_away_in_allowed_steps_is_held_near_the_other() {
        let mut s = av_segmenter(SegmenterConfig::default());
        for i in 0..200u32 {
            s.push(TagKind::Video, i * 40, &video(i % 25 == 0, 0))
                .unwrap();
            // Audio runs 9 s ahead per frame: each step allowed, the drift not.
            s.push(TagKind::Audio, i * 9_000, AAC_FRAME).unwrap();
        }
        s.finish();
        let d = durations(&s);
        assert!(d.iter().all(|d| *d <= 12_000), "{d:?}");
        assert!(s.audio_clock.last.unwrap() <= s.video_clock.last.unwrap() + 10_000);
    }

    #[test]
    fn a_late_audio_track_starts_a_discontinuity_at_the_next_keyframe() {
        let mut s = Segmenter::default();
        s.push(TagKind::Video, 0, &avc_seq_header()).unwrap();
        feed(&mut s, 0, 3, 25, false);
        s.push(TagKind::Audio, 3000, AAC_SEQ).unwrap();
        feed(&mut s, 3000, 3, 25, true);
        s.finish();
        let segs: Vec<&Segment> = s.segments().collect();
        assert_eq!(
            segs.iter()
                .map(|x| (x.duration_ms, x.discontinuity))
                .collect::<Vec<_>>(),
            vec![(2000, false), (1000, false), (2000, true), (1000, false)]
        );
        assert!(!pids(segs[1]).contains(&PID_AUDIO));
        assert!(pids(segs[2]).contains(&PID_AUDIO));
        assert!(s
            .playlist()
            .contains("#EXT-X-DISCONTINUITY\n#EXTINF:2.000,"));
    }

    #[test]
    fn video_joining_an_audio_only_stream_starts_a_discontinuity_at_its_keyframe() {
        let mut s = Segmenter::default();
        s.push(TagKind::Audio, 0, AAC_SEQ).unwrap();
        for i in 0..43u32 {
            s.push(TagKind::Audio, i * 1000 / 43, AAC_FRAME).unwrap();
        }
        s.push(TagKind::Video, 1000, &avc_seq_header()).unwrap();
        // Audio goes on alone, cut by duration, until the first keyframe.
        for i in 43..130u32 {
            s.push(TagKind::Audio, i * 1000 / 43, AAC_FRAME).unwrap();
        }
        feed(&mut s, 3050, 2, 25, true);
        s.finish();
        let segs: Vec<&Segment> = s.segments().collect();
        assert_eq!(
            segs.iter()
                .map(|x| (x.duration_ms, x.discontinuity))
                .collect::<Vec<_>>(),
            vec![(2000, false), (1050, false), (2000, true)]
        );
        assert!(!pids(segs[1]).contains(&PID_VIDEO));
        assert!(pids(segs[2]).contains(&PID_VIDEO));
    }

    #[test]
    fn when_video_stops_audio_still_bounds_the_segment() {
        let mut s = av_segmenter(SegmenterConfig {
            max_segment_duration_ms: 4_000,
            ..SegmenterConfig::default()
        });
        feed(&mut s, 0, 1, 25, true);
        for i in 43..430u32 {
            s.push(TagKind::Audio, i * 1000 / 43, AAC_FRAME).unwrap();
        }
        let d = durations(&s);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().all(|d| (4000..4030).contains(d)), "{d:?}");
    }

    #[test]
    fn a_resent_sequence_header_changes_nothing_but_a_new_one_cuts_with_a_discontinuity() {
        let mut s = av_segmenter(SegmenterConfig::default());
        feed(&mut s, 0, 1, 25, true);
        s.push(TagKind::Video, 1000, &avc_seq_header()).unwrap();
        s.push(TagKind::Audio, 1000, AAC_SEQ).unwrap();
        feed(&mut s, 1000, 1, 25, true);
        assert_eq!(s.segments().count(), 0);
        // Same SPS, other PPS: the next keyframe cuts.
        let mut header = avc_seq_header();
        let last = header.len() - 1;
        header[last] ^= 1;
        s.push(TagKind::Video, 2000, &header).unwrap();
        feed(&mut s, 2000, 2, 50, true);
        s.finish();
        assert_eq!(
            s.segments()
                .map(|x| (x.duration_ms, x.discontinuity))
                .collect::<Vec<_>>(),
            vec![(2000, false), (2000, true)]
        );
    }

    #[test]
    fn discontinuities_leaving_the_window_are_counted() {
        let mut s = av_segmenter(SegmenterConfig {
            window: 1,
            ..SegmenterConfig::default()
        });
        feed(&mut s, 0, 2, 50, true);
        s.finish();
        feed(&mut s, 2000, 6, 50, true);
        let p = s.playlist();
        assert!(
            p.contains("#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"),
            "{p}"
        );
        assert!(!p.contains("ENDLIST"));
    }

    #[test]
    fn bad_frames_are_errors_and_leave_the_segmenter_usable() {
        let mut s = av_segmenter(SegmenterConfig::default());
        assert!(s.push(TagKind::Video, 0, &[]).is_err());
        assert!(s.push(TagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]).is_err());
        assert!(s
            .push(TagKind::Video, 0, &[0x17, 1, 0, 0, 0, 0, 0, 0, 9, 1])
            .is_err());
        assert_eq!(
            s.push(TagKind::Audio, 0, &[0x2F, 0]),
            Err(HlsError::UnsupportedAudioCodec(AudioCodec::Mp3))
        );
        assert!(matches!(
            s.push(TagKind::Video, 0, b"\x90av01\x00"),
            Err(HlsError::UnsupportedVideoCodec(VideoCodecId::Av1))
        ));
        feed(&mut s, 0, 5, 25, true);
        assert_eq!(s.segments().count(), 2);
    }
}
