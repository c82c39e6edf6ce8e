//! Low-latency HLS packaging: FLV-level frames in, fMP4 parts, segments
//! and an LL-HLS media playlist out.
//!
//! Owns: where parts and segments are cut (a part never longer than the
//! part target; a segment at the first video keyframe past the segment
//! target, or by duration for audio-only streams), sample durations (each
//! sample waits for the next of its track), the rolling window, and the
//! playlist text: `EXT-X-PART-INF`, `EXT-X-SERVER-CONTROL` with blocking
//! reload and skips, `EXT-X-PART` for the last segments, `EXT-X-PRELOAD-HINT`
//! for the part being built, and delta updates (`EXT-X-SKIP`). Must not:
//! do I/O or wait (callers hold blocking requests and ask [`LlPackager::has`]
//! again when [`LlPackager::generation`] moves), or panic on any frame.
//!
//! The segments are whole fMP4 fragments, so a player that knows nothing
//! of LL-HLS plays the same playlist as ordinary fMP4 HLS.

use std::collections::VecDeque;
use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};

use crate::aac::AudioSpecificConfig;
use crate::avc::AvcConfig;
use crate::flv::{AudioCodec, AudioInfo, TagKind, VideoCodecId, VideoInfo, VideoPacketType};
use crate::fmp4::{self, Run, Sample, Track, AUDIO_TRACK, VIDEO_TRACK};
use crate::hevc::HevcConfig;
use crate::VideoCodec;

/// How a stream is cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlConfig {
    /// The longest part, in milliseconds (`PART-TARGET`).
    pub part_target_ms: u32,
    /// Segments are cut at the first keyframe at least this long after
    /// their start.
    pub segment_target_ms: u32,
    /// Complete segments kept and listed.
    pub window: usize,
    /// The stream name the file names start with.
    pub name: String,
}

impl Default for LlConfig {
    fn default() -> Self {
        LlConfig {
            part_target_ms: 500,
            segment_target_ms: 2000,
            window: 6,
            name: "stream".to_owned(),
        }
    }
}

/// What a file name under the stream asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlFile {
    /// An initialization segment, by version (a new one comes with each
    /// change of the tracks' configuration).
    Init(u32),
    /// A whole segment by media sequence number.
    Segment(u64),
    /// Part `1` of segment `0`.
    Part(u64, u32),
}

/// One part: its fragment and what the playlist says of it.
#[derive(Debug, Clone)]
struct Part {
    duration_ms: u32,
    independent: bool,
    data: Bytes,
}

#[derive(Debug)]
struct Segment {
    msn: u64,
    /// The version of the initialization segment it needs.
    init: u32,
    start_ms: u64,
    parts: Vec<Part>,
    /// Set once the segment is complete: its parts, joined.
    data: Option<Bytes>,
}

impl Segment {
    fn duration_ms(&self) -> u64 {
        self.parts.iter().map(|p| u64::from(p.duration_ms)).sum()
    }
}

/// A sample waiting for the next one of its track, which gives its
/// duration.
#[derive(Debug)]
struct Pending {
    at: u64,
    sample: Sample,
}

#[derive(Debug, Default)]
struct Building {
    start_ms: u64,
    video: Vec<Sample>,
    video_start: u64,
    audio: Vec<Sample>,
    audio_start: u64,
}

impl Building {
    fn is_empty(&self) -> bool {
        self.video.is_empty() && self.audio.is_empty()
    }

    fn end_ms(&self) -> u64 {
        let end =
            |start: u64, s: &[Sample]| start + s.iter().map(|s| u64::from(s.duration)).sum::<u64>();
        end(self.video_start, &self.video).max(end(self.audio_start, &self.audio))
    }
}

/// The packager of one stream.
#[derive(Debug)]
pub struct LlPackager {
    config: LlConfig,
    video: Option<Track>,
    audio: Option<Track>,
    /// Whether packaging runs (a keyframe, or the first audio frame of an
    /// audio-only stream, started it since the last configuration), and
    /// with video.
    started: Option<bool>,
    /// The initialization segments still needed, by version; the last
    /// is the current one.
    inits: VecDeque<(u32, Bytes)>,
    /// Discontinuities (changes of initialization segment) that left
    /// the window: `EXT-X-DISCONTINUITY-SEQUENCE`.
    discontinuity_sequence: u64,
    pending_video: Option<Pending>,
    pending_audio: Option<Pending>,
    building: Building,
    segments: VecDeque<Segment>,
    next_msn: u64,
    fragments: u32,
    generation: u64,
    ended: bool,
}

impl LlPackager {
    /// A packager waiting for sequence headers and a first keyframe.
    pub fn new(config: LlConfig) -> LlPackager {
        LlPackager {
            config,
            video: None,
            audio: None,
            started: None,
            inits: VecDeque::new(),
            discontinuity_sequence: 0,
            pending_video: None,
            pending_audio: None,
            building: Building::default(),
            segments: VecDeque::new(),
            next_msn: 0,
            fragments: 0,
            generation: 0,
            ended: false,
        }
    }

    /// Moves each time a part, a segment or the end is added: a request
    /// held for a part asks [`has`](Self::has) again then.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Takes one FLV tag body. Frames that cannot be packaged (an
    /// unsupported codec, before the sequence headers) are dropped.
    pub fn push(&mut self, kind: TagKind, timestamp: u32, body: &[u8]) {
        let at = u64::from(timestamp);
        match kind {
            TagKind::Video => self.push_video(at, body),
            TagKind::Audio => self.push_audio(at, body),
            TagKind::Script => {}
        }
    }

    fn push_video(&mut self, at: u64, body: &[u8]) {
        let Ok(info) = VideoInfo::parse(body) else {
            return;
        };
        let data = info.data(body);
        match info.packet_type {
            VideoPacketType::SequenceStart => {
                let parsed = match info.codec {
                    VideoCodecId::Avc => AvcConfig::parse(data)
                        .ok()
                        .and_then(|c| c.parse_sps().ok())
                        .map(|s| (VideoCodec::H264, s.width, s.height)),
                    VideoCodecId::Hevc => HevcConfig::parse(data)
                        .ok()
                        .and_then(|c| c.parse_sps().ok())
                        .map(|s| (VideoCodec::H265, s.width, s.height)),
                    _ => None,
                };
                let Some((codec, width, height)) = parsed else {
                    return;
                };
                let track = Track::Video {
                    codec,
                    config: Bytes::copy_from_slice(data),
                    width: width.min(u32::from(u16::MAX)) as u16,
                    height: height.min(u32::from(u16::MAX)) as u16,
                };
                if self.video.as_ref() != Some(&track) {
                    self.video = Some(track);
                    self.reconfigure();
                }
            }
            VideoPacketType::CodedFrames => {
                if self.video.is_none()
                    || !matches!(info.codec, VideoCodecId::Avc | VideoCodecId::Hevc)
                {
                    return;
                }
                let sample = Sample {
                    duration: 0,
                    composition_offset: info.composition_time_ms,
                    sync: info.is_keyframe(),
                    data: Bytes::copy_from_slice(data),
                };
                if self.started.is_none() {
                    if !sample.sync {
                        return;
                    }
                    self.start(at);
                }
                if let Some(prev) = self.pending_video.replace(Pending { at, sample }) {
                    self.video_sample(prev, at);
                }
            }
            _ => {}
        }
    }

    fn push_audio(&mut self, at: u64, body: &[u8]) {
        let Ok(info) = AudioInfo::parse(body) else {
            return;
        };
        if info.codec != AudioCodec::Aac {
            return;
        }
        let data = info.data(body);
        if info.is_sequence_header() {
            let Ok(asc) = AudioSpecificConfig::parse(data) else {
                return;
            };
            let track = Track::Audio {
                config: Bytes::copy_from_slice(data),
                sample_rate: asc.sample_rate,
                channels: u16::from(asc.channels().max(1)),
            };
            if self.audio.as_ref() != Some(&track) {
                self.audio = Some(track);
                self.reconfigure();
            }
            return;
        }
        if self.audio.is_none() {
            return;
        }
        let sample = Sample {
            duration: 0,
            composition_offset: 0,
            sync: true,
            data: Bytes::copy_from_slice(data),
        };
        if self.started.is_none() {
            // With video, audio waits for the first keyframe.
            if self.video.is_some() {
                return;
            }
            self.start(at);
        }
        if let Some(prev) = self.pending_audio.replace(Pending { at, sample }) {
            self.audio_sample(prev, at);
        }
    }

    /// A track appeared or changed: what was cut so far ends, and the
    /// next keyframe starts over with a new initialization segment.
    fn reconfigure(&mut self) {
        if self.started.is_some() {
            self.close_all();
            self.started = None;
            self.generation += 1;
        }
    }

    fn start(&mut self, at: u64) {
        let tracks: Vec<Track> = self
            .video
            .iter()
            .chain(self.audio.iter())
            .cloned()
            .collect();
        let version = self.inits.back().map_or(1, |i| i.0 + 1);
        self.inits.push_back((version, fmp4::init_segment(&tracks)));
        self.started = Some(self.video.is_some());
        self.open_segment(at);
    }

    fn open_segment(&mut self, at: u64) {
        self.segments.push_back(Segment {
            msn: self.next_msn,
            init: self.inits.back().map_or(0, |i| i.0),
            start_ms: at,
            parts: Vec::new(),
            data: None,
        });
        self.next_msn += 1;
        self.building = Building {
            start_ms: at,
            ..Building::default()
        };
    }

    fn has_video(&self) -> bool {
        self.started == Some(true)
    }

    fn video_sample(&mut self, mut p: Pending, next_at: u64) {
        p.sample.duration = duration(p.at, next_at);
        self.cut_before(p.at, &p.sample);
        if self.building.video.is_empty() {
            self.building.video_start = p.at;
        }
        self.building.video.push(p.sample);
    }

    fn audio_sample(&mut self, mut p: Pending, next_at: u64) {
        p.sample.duration = duration(p.at, next_at);
        if !self.has_video() {
            self.cut_before(p.at, &p.sample);
        }
        if self.building.audio.is_empty() {
            self.building.audio_start = p.at;
        }
        self.building.audio.push(p.sample);
    }

    /// Closes the part (and the segment) the sample at `at` must not join.
    fn cut_before(&mut self, at: u64, sample: &Sample) {
        let Some(segment) = self.segments.back() else {
            return;
        };
        if segment.data.is_some() {
            return;
        }
        let segment_start = segment.start_ms;
        if sample.sync
            && !self.building.is_empty()
            && at.saturating_sub(segment_start) >= u64::from(self.config.segment_target_ms)
        {
            self.close_part(at);
            self.close_segment();
            self.open_segment(at);
        } else if !self.building.is_empty()
            && (at + u64::from(sample.duration)).saturating_sub(self.building.start_ms)
                > u64::from(self.config.part_target_ms)
        {
            self.close_part(at);
            self.building = Building {
                start_ms: at,
                ..Building::default()
            };
        }
    }

    /// Ends the part being built at `end_ms`.
    fn close_part(&mut self, end_ms: u64) {
        let b = std::mem::take(&mut self.building);
        if b.is_empty() {
            return;
        }
        let mut runs = Vec::with_capacity(2);
        if !b.video.is_empty() {
            runs.push(Run {
                track: VIDEO_TRACK,
                decode_time: b.video_start,
                samples: &b.video,
            });
        }
        if !b.audio.is_empty() {
            runs.push(Run {
                track: AUDIO_TRACK,
                decode_time: b.audio_start,
                samples: &b.audio,
            });
        }
        self.fragments = self.fragments.wrapping_add(1);
        let data = fmp4::fragment(self.fragments, &runs);
        let independent = b.video.first().is_none_or(|s| s.sync);
        let duration_ms = end_ms
            .saturating_sub(b.start_ms)
            .max(1)
            .min(u64::from(u32::MAX)) as u32;
        if let Some(segment) = self.segments.back_mut() {
            segment.parts.push(Part {
                duration_ms,
                independent,
                data,
            });
        }
        self.building.start_ms = end_ms;
        self.generation += 1;
    }

    fn close_segment(&mut self) {
        if let Some(segment) = self.segments.back_mut().filter(|s| s.data.is_none()) {
            let mut data =
                BytesMut::with_capacity(segment.parts.iter().map(|p| p.data.len()).sum());
            for p in &segment.parts {
                data.extend_from_slice(&p.data);
            }
            segment.data = Some(data.freeze());
            if segment.parts.is_empty() {
                // Nothing was cut into it: it never existed.
                self.segments.pop_back();
            }
        }
        let complete = self.segments.iter().filter(|s| s.data.is_some()).count();
        for _ in self.config.window..complete {
            let gone = self.segments.pop_front();
            let next = self.segments.front().map(|s| s.init);
            if gone.is_some_and(|g| next.is_some_and(|n| n != g.init)) {
                self.discontinuity_sequence += 1;
            }
        }
        // Initialization segments no listed segment needs any more (the
        // current one stays).
        while self.inits.len() > 1
            && self
                .inits
                .front()
                .is_some_and(|(v, _)| self.segments.iter().all(|s| s.init != *v))
        {
            self.inits.pop_front();
        }
        self.generation += 1;
    }

    /// Gives the waiting samples a duration (their track's last one) and
    /// closes what is open.
    fn close_all(&mut self) {
        if let Some(mut p) = self.pending_video.take() {
            p.sample.duration = 40;
            let end = p.at + 40;
            self.video_sample(p, end);
        }
        if let Some(mut p) = self.pending_audio.take() {
            p.sample.duration = 23;
            let end = p.at + 23;
            self.audio_sample(p, end);
        }
        let end = self.building.end_ms();
        self.close_part(end);
        self.close_segment();
    }

    /// Ends the stream: the last part and segment are closed, and the
    /// playlist ends (`EXT-X-ENDLIST`).
    pub fn finish(&mut self) {
        if self.started.is_some() && !self.ended {
            self.close_all();
        }
        self.ended = true;
        self.generation += 1;
    }

    /// The current initialization segment, once the stream has started.
    pub fn init(&self) -> Option<Bytes> {
        self.inits.back().map(|i| i.1.clone())
    }

    /// An initialization segment by version, while a listed segment
    /// needs it.
    pub fn init_version(&self, version: u32) -> Option<Bytes> {
        self.inits
            .iter()
            .find(|i| i.0 == version)
            .map(|i| i.1.clone())
    }

    /// A complete segment.
    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        self.segments.iter().find(|s| s.msn == msn)?.data.clone()
    }

    /// A part of a segment (complete or not).
    pub fn part(&self, msn: u64, index: u32) -> Option<Bytes> {
        let s = self.segments.iter().find(|s| s.msn == msn)?;
        s.parts.get(index as usize).map(|p| p.data.clone())
    }

    /// Whether the playlist holds segment `msn` complete (`part` `None`),
    /// or part `part` of it or anything later, or the stream ended:
    /// what a blocking playlist request waits for.
    pub fn has(&self, msn: u64, part: Option<u32>) -> bool {
        if self.ended {
            return true;
        }
        let Some(last) = self.segments.back() else {
            return false;
        };
        match part {
            None => self
                .segments
                .iter()
                .any(|s| s.msn >= msn && s.data.is_some()),
            Some(p) => {
                last.msn > msn
                    || (last.msn == msn && (last.parts.len() > p as usize || last.data.is_some()))
            }
        }
    }

    /// Whether a request for `msn`/`part` asks too far ahead to wait for
    /// (more than two segments past the last, as the spec bounds it).
    pub fn too_far(&self, msn: u64) -> bool {
        msn > self.next_msn + 1
    }

    /// Whether any part exists (a playlist can be served).
    pub fn ready(&self) -> bool {
        self.segments.iter().any(|s| !s.parts.is_empty())
    }

    /// Whether a whole segment exists (or the stream ended): what a
    /// player that knows nothing of parts needs in its first playlist.
    pub fn has_segment(&self) -> bool {
        self.ended || self.segments.iter().any(|s| s.data.is_some())
    }

    /// Reads a file name (`<name>-ll-init.mp4`, `<name>-ll-<msn>.m4s`,
    /// `<name>-ll-<msn>.<part>.m4s`) under this stream.
    pub fn parse_name(&self, file: &str) -> Option<LlFile> {
        let rest = file.strip_prefix(&self.config.name)?.strip_prefix("-ll-")?;
        if let Some(version) = rest
            .strip_prefix("init")
            .and_then(|r| r.strip_suffix(".mp4"))
        {
            return Some(LlFile::Init(version.parse().ok()?));
        }
        let numbers = rest.strip_suffix(".m4s")?;
        match numbers.split_once('.') {
            Some((msn, part)) => Some(LlFile::Part(msn.parse().ok()?, part.parse().ok()?)),
            None => Some(LlFile::Segment(numbers.parse().ok()?)),
        }
    }

    /// The media playlist. `suffix` goes after every URI (the play
    /// query, so files pass play authentication too); `skip` asks for a
    /// delta update (`_HLS_skip=YES`).
    pub fn playlist(&self, suffix: &str, skip: bool) -> String {
        let name = &self.config.name;
        let part_target = f64::from(self.config.part_target_ms) / 1000.0;
        let longest = self
            .segments
            .iter()
            .map(Segment::duration_ms)
            .max()
            .unwrap_or(0)
            .max(u64::from(self.config.segment_target_ms));
        let target = longest.div_ceil(1000);
        let skip_until = 6 * target;
        let mut out = String::with_capacity(256 + 160 * self.segments.len());
        let first = self.segments.front().map_or(self.next_msn, |s| s.msn);
        // Delta update: the segments older than CAN-SKIP-UNTIL from the
        // end are left out.
        let total_ms: u64 = self.segments.iter().map(Segment::duration_ms).sum();
        let mut skipped = 0;
        if skip {
            let mut from_end = total_ms;
            for s in &self.segments {
                if from_end <= skip_until * 1000 || s.data.is_none() {
                    break;
                }
                from_end -= s.duration_ms();
                skipped += 1;
            }
        }
        let _ = writeln!(out, "#EXTM3U");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", if skipped > 0 { 9 } else { 6 });
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
        let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={part_target:.3}");
        let _ = writeln!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3},CAN-SKIP-UNTIL={skip_until}.0",
            3.0 * part_target
        );
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first}");
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        if skipped > 0 {
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
        // Parts are listed for the last segments only (players need them
        // within three part targets of the live edge).
        let parts_from = self.segments.len().saturating_sub(3);
        let mut map = None;
        for (i, s) in self.segments.iter().enumerate().skip(skipped) {
            if map != Some(s.init) {
                // A new initialization segment: a discontinuity, unless
                // it is the first listed and its predecessor (skipped)
                // used the same one.
                let before = i.checked_sub(1).and_then(|b| self.segments.get(b));
                if map.is_some() || (skipped > 0 && before.is_some_and(|b| b.init != s.init)) {
                    let _ = writeln!(out, "#EXT-X-DISCONTINUITY");
                }
                let _ = writeln!(
                    out,
                    "#EXT-X-MAP:URI=\"{name}-ll-init{}.mp4{suffix}\"",
                    s.init
                );
                map = Some(s.init);
            }
            if i >= parts_from {
                for (n, p) in s.parts.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "#EXT-X-PART:DURATION={:.3},URI=\"{name}-ll-{}.{n}.m4s{suffix}\"{}",
                        f64::from(p.duration_ms) / 1000.0,
                        s.msn,
                        if p.independent {
                            ",INDEPENDENT=YES"
                        } else {
                            ""
                        }
                    );
                }
            }
            if s.data.is_some() {
                let _ = writeln!(out, "#EXTINF:{:.3},", s.duration_ms() as f64 / 1000.0);
                let _ = writeln!(out, "{name}-ll-{}.m4s{suffix}", s.msn);
            }
        }
        if self.ended {
            let _ = writeln!(out, "#EXT-X-ENDLIST");
        } else if let Some(s) = self.segments.back().filter(|s| s.data.is_none()) {
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{name}-ll-{}.{}.m4s{suffix}\"",
                s.msn,
                s.parts.len()
            );
        }
        out
    }
}

/// A sample's duration from its timestamp and the next one's: at least
/// 1 ms, at most 10 s (a gap in the feed is not a 10-minute frame).
fn duration(at: u64, next: u64) -> u32 {
    next.saturating_sub(at).clamp(1, 10_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avc::tests::SPS_640X360;
    use crate::hls::tests::avc_seq_header;

    fn frame(key: bool) -> Vec<u8> {
        vec![
            if key { 0x17 } else { 0x27 },
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            2,
            0x65,
            0x88,
        ]
    }

    /// 25 fps video with a keyframe every `gop` frames, and 44.1 kHz AAC.
    fn feed(p: &mut LlPackager, seconds: u32, gop: u32) {
        p.push(TagKind::Video, 0, &avc_seq_header());
        p.push(TagKind::Audio, 0, &[0xAF, 0, 0x12, 0x10]);
        let (mut i, mut a) = (0u32, 0u32);
        while i * 40 < seconds * 1000 {
            let audio_at = a * 1024 * 1000 / 44100;
            if audio_at <= i * 40 {
                p.push(TagKind::Audio, audio_at, &[0xAF, 1, 0x21, a as u8]);
                a += 1;
            } else {
                p.push(TagKind::Video, i * 40, &frame(i % gop == 0));
                i += 1;
            }
        }
    }

    fn packager() -> LlPackager {
        LlPackager::new(LlConfig {
            name: "cam".into(),
            ..LlConfig::default()
        })
    }

    #[test]
    fn parts_stay_within_the_target_and_segments_start_at_keyframes() {
        let mut p = packager();
        p.push(TagKind::Video, 0, &avc_seq_header());
        for i in 0..250u32 {
            p.push(TagKind::Video, i * 40, &frame(i % 50 == 0));
        }
        // Segments of 2 s (a keyframe every 2 s), parts of at most 0.5 s.
        let complete: Vec<&Segment> = p.segments.iter().filter(|s| s.data.is_some()).collect();
        assert_eq!(complete.len(), 4);
        for s in &complete {
            assert_eq!(s.duration_ms(), 2000);
            assert!(s.parts.iter().all(|p| p.duration_ms <= 500));
            assert!(s.parts[0].independent);
            assert!(s.parts[1..].iter().all(|p| !p.independent));
        }
        assert!(p.has(3, None) && p.has(4, Some(0)) && !p.has(5, Some(0)));
    }

    #[test]
    fn the_playlist_has_the_ll_hls_tags_and_a_preload_hint() {
        let mut p = packager();
        feed(&mut p, 7, 50);
        let text = p.playlist("?txSecret=s", false);
        for tag in [
            "#EXT-X-PART-INF:PART-TARGET=0.500",
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,CAN-SKIP-UNTIL=12.0",
            "#EXT-X-MAP:URI=\"cam-ll-init1.mp4?txSecret=s\"",
            "#EXT-X-PART:DURATION=0.480,URI=\"cam-ll-3.0.m4s?txSecret=s\",INDEPENDENT=YES",
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"cam-ll-3.",
            "cam-ll-2.m4s?txSecret=s",
        ] {
            assert!(text.contains(tag), "{tag} not in\n{text}");
        }
        assert!(p.init().is_some());
        assert_eq!(p.parse_name("cam-ll-init1.mp4"), Some(LlFile::Init(1)));
        assert_eq!(p.parse_name("cam-ll-3.2.m4s"), Some(LlFile::Part(3, 2)));
        assert_eq!(p.parse_name("cam-ll-3.m4s"), Some(LlFile::Segment(3)));
        assert_eq!(p.parse_name("other-ll-3.m4s"), None);
        // A segment is its parts, joined.
        let joined: Vec<u8> = (0..)
            .map_while(|i| p.part(1, i))
            .flat_map(|b| b.to_vec())
            .collect();
        assert!(p.segment(1).is_some_and(|s| s.to_vec() == joined));
    }

    #[test]
    fn a_delta_update_skips_the_old_segments() {
        let mut p = LlPackager::new(LlConfig {
            name: "cam".into(),
            window: 20,
            ..LlConfig::default()
        });
        feed(&mut p, 30, 50);
        let full = p.playlist("", false);
        let delta = p.playlist("", true);
        assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{delta}");
        assert!(delta.contains("#EXT-X-VERSION:9"));
        assert!(delta.len() < full.len());
    }

    #[test]
    fn a_new_configuration_starts_a_new_init_segment_after_a_discontinuity() {
        let mut p = packager();
        p.push(TagKind::Video, 0, &avc_seq_header());
        for i in 0..100u32 {
            p.push(TagKind::Video, i * 40, &frame(i % 50 == 0));
        }
        // The encoder restarts with other parameters.
        let other = AvcConfig::from_parameter_sets(
            vec![Bytes::from_static(SPS_640X360)],
            vec![Bytes::from_static(&[0x68, 0xEB, 0xE3, 0xC4, 0x48, 0x45])],
        )
        .unwrap();
        let mut header = vec![0x17, 0, 0, 0, 0];
        header.extend_from_slice(&other.to_bytes());
        p.push(TagKind::Video, 4000, &header);
        for i in 100..200u32 {
            p.push(TagKind::Video, i * 40, &frame(i % 50 == 0));
        }
        let text = p.playlist("", false);
        assert!(
            text.contains("#EXT-X-MAP:URI=\"cam-ll-init1.mp4\""),
            "{text}"
        );
        assert!(
            text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"cam-ll-init2.mp4\""),
            "{text}"
        );
        assert!(p.init_version(1).is_some() && p.init_version(2).is_some());
    }

    #[test]
    fn finishing_closes_the_last_segment_and_ends_the_list() {
        let mut p = packager();
        feed(&mut p, 3, 50);
        p.finish();
        let text = p.playlist("", false);
        assert!(text.trim_end().ends_with("#EXT-X-ENDLIST"));
        assert!(!text.contains("PRELOAD-HINT"));
        assert!(p.has(99, Some(0)));
    }

    #[test]
    fn nothing_is_packaged_before_a_keyframe_or_without_headers() {
        let mut p = packager();
        p.push(TagKind::Video, 0, &frame(true));
        p.push(TagKind::Video, 0, &avc_seq_header());
        p.push(TagKind::Video, 40, &frame(false));
        assert!(!p.ready() && p.init().is_none());
        for junk in [&[][..], &[0x17], &[0x27, 1, 0, 0], &[0xAF, 0, 0xFF]] {
            p.push(TagKind::Video, 80, junk);
            p.push(TagKind::Audio, 80, junk);
        }
        p.push(TagKind::Video, 80, &frame(true));
        p.push(TagKind::Video, 120, &frame(false));
        assert!(p.init().is_some());
    }
}
