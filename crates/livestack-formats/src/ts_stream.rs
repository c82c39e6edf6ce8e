//! A continuous MPEG-TS stream from FLV-level frames, for players that
//! read TS off a transport (SRT playback) rather than in segments.
//!
//! Owns: starting at a keyframe (or the first audio frame of an
//! audio-only stream), repeating PAT and PMT at every keyframe so a
//! receiver can join anywhere, starting over with new tables when a
//! track's configuration changes, and the Annex-B and ADTS conversion
//! (through [`crate::annexb`] and [`crate::aac`]). Must not: do I/O, cut
//! segments (that is [`crate::hls`]), or panic on any frame.

use bytes::BytesMut;

use crate::aac::AudioSpecificConfig;
use crate::annexb::AnnexBConverter;
use crate::avc::AvcConfig;
use crate::flv::{AudioCodec, AudioInfo, TagKind, VideoCodecId, VideoInfo, VideoPacketType};
use crate::hevc::HevcConfig;
use crate::ts::TsMuxer;
use crate::VideoCodec;

/// FLV frames in, TS packets out.
#[derive(Debug, Default)]
pub struct TsStream {
    video: Option<AnnexBConverter>,
    audio: Option<AudioSpecificConfig>,
    /// The muxer of the tracks as they were when the stream (re)started.
    muxer: Option<TsMuxer>,
    scratch: BytesMut,
}

impl TsStream {
    /// A stream waiting for its sequence headers and a keyframe.
    pub fn new() -> TsStream {
        TsStream::default()
    }

    /// Appends to `out` the TS packets of one FLV tag body (none for a
    /// header, a frame before the start, or one that cannot be converted).
    pub fn push(&mut self, kind: TagKind, timestamp: u32, body: &[u8], out: &mut BytesMut) {
        match kind {
            TagKind::Video => self.video(u64::from(timestamp), body, out),
            TagKind::Audio => self.audio(u64::from(timestamp), body, out),
            TagKind::Script => {}
        }
    }

    fn video(&mut self, at: u64, body: &[u8], out: &mut BytesMut) {
        let Ok(info) = VideoInfo::parse(body) else {
            return;
        };
        let data = info.data(body);
        match info.packet_type {
            VideoPacketType::SequenceStart => {
                let converter = match info.codec {
                    VideoCodecId::Avc => AvcConfig::parse(data)
                        .ok()
                        .map(|c| AnnexBConverter::from_avc(&c)),
                    VideoCodecId::Hevc => HevcConfig::parse(data)
                        .ok()
                        .map(|c| AnnexBConverter::from_hevc(&c)),
                    _ => None,
                };
                if let Some(c) = converter {
                    let same = self.video.as_ref().is_some_and(|v| {
                        v.codec() == c.codec() && v.parameter_sets() == c.parameter_sets()
                    });
                    if !same {
                        self.video = Some(c);
                        self.muxer = None;
                    }
                }
            }
            VideoPacketType::CodedFrames => {
                let Some(converter) = &self.video else {
                    return;
                };
                let keyframe = info.is_keyframe();
                let codec = match info.codec {
                    VideoCodecId::Avc => VideoCodec::H264,
                    VideoCodecId::Hevc => VideoCodec::H265,
                    _ => return,
                };
                if codec != converter.codec() {
                    return;
                }
                if self.muxer.is_none() {
                    if !keyframe {
                        return;
                    }
                    self.muxer = Some(TsMuxer::new(true, self.audio.is_some(), codec));
                }
                self.scratch.clear();
                if converter
                    .convert(data, keyframe, &mut self.scratch)
                    .is_err()
                {
                    return;
                }
                if let Some(m) = self.muxer.as_mut() {
                    if keyframe {
                        m.write_tables(out);
                    }
                    let pts = at.saturating_add_signed(i64::from(info.composition_time_ms.max(0)));
                    let _ = m.write_video(pts, at, keyframe, &self.scratch, out);
                }
            }
            _ => {}
        }
    }

    fn audio(&mut self, at: u64, body: &[u8], out: &mut BytesMut) {
        let Ok(info) = AudioInfo::parse(body) else {
            return;
        };
        if info.codec != AudioCodec::Aac {
            return;
        }
        let data = info.data(body);
        if info.is_sequence_header() {
            let Ok(config) = AudioSpecificConfig::parse(data) else {
                return;
            };
            if config.adts_header(0).is_err() {
                return;
            }
            if self.audio != Some(config) {
                self.audio = Some(config);
                // A track appeared or changed: new tables at the next
                // keyframe (or now, audio only).
                self.muxer = None;
            }
            return;
        }
        let Some(config) = self.audio else {
            return;
        };
        if self.muxer.is_none() {
            if self.video.is_some() {
                return;
            }
            let mut m = TsMuxer::new(false, true, VideoCodec::H264);
            m.write_tables(out);
            self.muxer = Some(m);
        }
        let Ok(header) = config.adts_header(data.len()) else {
            return;
        };
        if let Some(m) = self.muxer.as_mut().filter(|m| m.has_audio()) {
            let _ = m.write_audio_parts(at, &[&header, data], out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avc::tests::{PPS, SPS_640X360};
    use crate::ts_demux::TsDemuxer;
    use bytes::Bytes;

    #[test]
    fn what_it_writes_the_demuxer_reads_back_from_the_first_keyframe() {
        let config = AvcConfig::from_parameter_sets(
            vec![Bytes::from_static(SPS_640X360)],
            vec![Bytes::from_static(PPS)],
        )
        .unwrap();
        let mut header = vec![0x17, 0, 0, 0, 0];
        header.extend_from_slice(&config.to_bytes());
        let frame = |key: bool| {
            let nal: &[u8] = if key {
                &[0x65, 0x88, 0x84]
            } else {
                &[0x41, 0x9a]
            };
            let mut b = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
            b.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            b.extend_from_slice(nal);
            b
        };
        let mut s = TsStream::new();
        let mut out = BytesMut::new();
        s.push(TagKind::Video, 0, &header, &mut out);
        s.push(TagKind::Audio, 0, &[0xAF, 0, 0x12, 0x10], &mut out);
        // Before the first keyframe: nothing.
        s.push(TagKind::Video, 0, &frame(false), &mut out);
        s.push(TagKind::Audio, 0, &[0xAF, 1, 0x21], &mut out);
        assert!(out.is_empty());
        for i in 1..30u32 {
            s.push(TagKind::Video, i * 40, &frame(i % 10 == 1), &mut out);
            s.push(TagKind::Audio, i * 40, &[0xAF, 1, 0x21, i as u8], &mut out);
        }
        assert_eq!(out.len() % 188, 0);
        let mut d = TsDemuxer::new();
        d.push(&out);
        d.finish();
        let frames: Vec<_> = std::iter::from_fn(|| d.next_frame()).collect();
        let videos = frames.iter().filter(|f| f.kind == TagKind::Video).count();
        let audios = frames.iter().filter(|f| f.kind == TagKind::Audio).count();
        // 29 pictures and 29 AAC frames, plus one header each.
        assert_eq!((videos, audios), (30, 30), "{frames:?}");
    }
}
