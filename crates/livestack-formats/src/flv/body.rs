//! The headers at the start of audio and video tag bodies (RTMP message
//! payloads), legacy and enhanced RTMP.
//!
//! Owns: frame type, codec id or FourCC, packet type, composition time and
//! where the codec data starts. Must not: parse the codec data itself.

use super::FlvError;

/// A video frame's type (`FrameType`, 4 bits legacy or 3 bits enhanced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// 1: a keyframe (IDR / IRAP / AV1 key frame); players can start here.
    Key,
    /// 2: an inter frame.
    Inter,
    /// 3: a disposable inter frame (H.263 only).
    DisposableInter,
    /// 4: a generated keyframe (server use only).
    GeneratedKey,
    /// 5: a video info / command frame: no picture.
    Command,
    /// Any other value.
    Reserved(u8),
}

impl FrameType {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Key,
            2 => Self::Inter,
            3 => Self::DisposableInter,
            4 => Self::GeneratedKey,
            5 => Self::Command,
            v => Self::Reserved(v),
        }
    }
}

/// The video codec, from a legacy `CodecID` or an enhanced-RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodecId {
    /// H.264: legacy id 7 or FourCC `avc1`.
    Avc,
    /// H.265: the widespread non-standard legacy id 12, or FourCC `hvc1`.
    Hevc,
    /// AV1: FourCC `av01`.
    Av1,
    /// VP9: FourCC `vp09`.
    Vp9,
    /// Another legacy `CodecID` (2 Sorenson H.263, 3 Screen video, 4 VP6, …).
    Legacy(u8),
    /// Another enhanced-RTMP FourCC.
    FourCc([u8; 4]),
    /// An enhanced command frame, which names no codec.
    Unspecified,
}

impl VideoCodecId {
    fn from_fourcc(cc: [u8; 4]) -> Self {
        match &cc {
            b"avc1" => Self::Avc,
            b"hvc1" => Self::Hevc,
            b"av01" => Self::Av1,
            b"vp09" => Self::Vp9,
            _ => Self::FourCc(cc),
        }
    }
}

/// What a video tag body carries (`AVCPacketType` or enhanced `VideoPacketType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoPacketType {
    /// The decoder configuration record (AVC sequence header, `SequenceStart`).
    SequenceStart,
    /// Coded frames (AVC NALU, `CodedFrames` and `CodedFramesX`).
    CodedFrames,
    /// End of sequence.
    SequenceEnd,
    /// Enhanced `Metadata` (AMF-encoded colour info).
    Metadata,
    /// Enhanced `MPEG2TSSequenceStart`.
    Mpeg2TsSequenceStart,
    /// Enhanced `Multitrack`: several tracks in one body; not unpacked here.
    Multitrack,
    /// A legacy codec with no packet type: the body after byte 0 is the frame.
    Raw,
    /// Any other value.
    Reserved(u8),
}

/// The header of a video tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoInfo {
    /// Key, inter or command frame.
    pub frame_type: FrameType,
    /// The codec.
    pub codec: VideoCodecId,
    /// Sequence header, coded frames, …
    pub packet_type: VideoPacketType,
    /// PTS minus DTS in milliseconds (0 when the body has none).
    pub composition_time_ms: i32,
    /// Whether the body uses the enhanced-RTMP header (`IsExHeader`).
    pub enhanced: bool,
    /// For command frames, the command byte, if present.
    pub command: Option<u8>,
    /// Offset of the codec data (configuration record or frames) in the body.
    pub data_offset: usize,
}

impl VideoInfo {
    /// Parses the header of a video tag body.
    pub fn parse(body: &[u8]) -> Result<Self, FlvError> {
        const TRUNC: FlvError = FlvError::TruncatedBody { what: "video" };
        let first = *body.first().ok_or(TRUNC)?;
        if first & 0x80 == 0 {
            return Self::parse_legacy(body, first);
        }
        let frame_type = FrameType::from_u8((first >> 4) & 0x07);
        let mut packet = first & 0x0F;
        let mut pos = 1;
        if packet != 4 && frame_type == FrameType::Command {
            return Ok(Self {
                frame_type,
                codec: VideoCodecId::Unspecified,
                packet_type: VideoPacketType::Reserved(packet),
                composition_time_ms: 0,
                enhanced: true,
                command: body.get(1).copied(),
                data_offset: body.len().min(2),
            });
        }
        packet = skip_mod_ex(body, &mut pos, packet, TRUNC)?;
        if packet == 6 {
            let b = *body.get(pos).ok_or(TRUNC)?;
            pos += 1;
            let multitrack_type = b >> 4;
            // ManyTracksManyCodecs (2) puts a FourCC in every track instead.
            let codec = if multitrack_type != 2 {
                VideoCodecId::from_fourcc(fourcc(body, &mut pos, TRUNC)?)
            } else {
                VideoCodecId::Unspecified
            };
            return Ok(Self {
                frame_type,
                codec,
                packet_type: VideoPacketType::Multitrack,
                composition_time_ms: 0,
                enhanced: true,
                command: None,
                data_offset: pos,
            });
        }
        let codec = VideoCodecId::from_fourcc(fourcc(body, &mut pos, TRUNC)?);
        let (packet_type, composition_time_ms) = match packet {
            0 => (VideoPacketType::SequenceStart, 0),
            1 if matches!(codec, VideoCodecId::Avc | VideoCodecId::Hevc) => {
                let b = body.get(pos..pos + 3).ok_or(TRUNC)?;
                pos += 3;
                (VideoPacketType::CodedFrames, si24(b))
            }
            1 | 3 => (VideoPacketType::CodedFrames, 0),
            2 => (VideoPacketType::SequenceEnd, 0),
            4 => (VideoPacketType::Metadata, 0),
            5 => (VideoPacketType::Mpeg2TsSequenceStart, 0),
            p => (VideoPacketType::Reserved(p), 0),
        };
        Ok(Self {
            frame_type,
            codec,
            packet_type,
            composition_time_ms,
            enhanced: true,
            command: None,
            data_offset: pos,
        })
    }

    fn parse_legacy(body: &[u8], first: u8) -> Result<Self, FlvError> {
        let frame_type = FrameType::from_u8(first >> 4);
        let codec_id = first & 0x0F;
        let (codec, packet_type, composition_time_ms, data_offset) = match codec_id {
            7 | 12 => {
                let h = body
                    .get(1..5)
                    .ok_or(FlvError::TruncatedBody { what: "video" })?;
                let packet_type = match h[0] {
                    0 => VideoPacketType::SequenceStart,
                    1 => VideoPacketType::CodedFrames,
                    2 => VideoPacketType::SequenceEnd,
                    p => VideoPacketType::Reserved(p),
                };
                let codec = if codec_id == 7 {
                    VideoCodecId::Avc
                } else {
                    VideoCodecId::Hevc
                };
                (codec, packet_type, si24(&h[1..4]), 5)
            }
            id => (VideoCodecId::Legacy(id), VideoPacketType::Raw, 0, 1),
        };
        let command = if frame_type == FrameType::Command {
            body.get(data_offset).copied()
        } else {
            None
        };
        Ok(Self {
            frame_type,
            codec,
            packet_type,
            composition_time_ms,
            enhanced: false,
            command,
            data_offset,
        })
    }

    /// Whether this starts a group of pictures (key or generated-key frame).
    pub fn is_keyframe(&self) -> bool {
        matches!(self.frame_type, FrameType::Key | FrameType::GeneratedKey)
    }

    /// Whether this carries a decoder configuration record.
    pub fn is_sequence_header(&self) -> bool {
        self.packet_type == VideoPacketType::SequenceStart
    }

    /// The codec data of `body` (the body this info was parsed from).
    pub fn data<'a>(&self, body: &'a [u8]) -> &'a [u8] {
        body.get(self.data_offset..).unwrap_or(&[])
    }
}

/// The audio codec, from a legacy `SoundFormat` or an enhanced FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// AAC: `SoundFormat` 10 or FourCC `mp4a`.
    Aac,
    /// MP3: `SoundFormat` 2 (or 14 for 8 kHz) or FourCC `.mp3`.
    Mp3,
    /// Opus: FourCC `Opus`.
    Opus,
    /// FLAC: FourCC `fLaC`.
    Flac,
    /// AC-3: FourCC `ac-3`.
    Ac3,
    /// E-AC-3: FourCC `ec-3`.
    Eac3,
    /// Another legacy `SoundFormat` (0 PCM, 1 ADPCM, 7/8 G.711, 11 Speex, …).
    Legacy(u8),
    /// Another enhanced FourCC.
    FourCc([u8; 4]),
    /// A multitrack body with a codec per track.
    Unspecified,
}

impl AudioCodec {
    fn from_fourcc(cc: [u8; 4]) -> Self {
        match &cc {
            b"mp4a" => Self::Aac,
            b".mp3" => Self::Mp3,
            b"Opus" => Self::Opus,
            b"fLaC" => Self::Flac,
            b"ac-3" => Self::Ac3,
            b"ec-3" => Self::Eac3,
            _ => Self::FourCc(cc),
        }
    }
}

/// What an audio tag body carries (`AACPacketType` or enhanced `AudioPacketType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioPacketType {
    /// The codec configuration (AAC `AudioSpecificConfig`, `SequenceStart`).
    SequenceStart,
    /// Coded frames (AAC raw).
    CodedFrames,
    /// Enhanced `SequenceEnd`.
    SequenceEnd,
    /// Enhanced `MultichannelConfig`.
    MultichannelConfig,
    /// Enhanced `Multitrack`; not unpacked here.
    Multitrack,
    /// A legacy codec without packet type: the body after byte 0 is the frame.
    Raw,
    /// Any other value.
    Reserved(u8),
}

/// The header of an audio tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioInfo {
    /// The codec.
    pub codec: AudioCodec,
    /// The raw 4-bit `SoundFormat` (10 = AAC, 9 = enhanced header).
    pub sound_format: u8,
    /// The 2-bit `SoundRate` (0 = 5.5 kHz, 1 = 11 kHz, 2 = 22 kHz, 3 = 44 kHz);
    /// informational only, AAC carries its real rate in its configuration.
    pub sound_rate: u8,
    /// `SoundSize`: 16-bit samples rather than 8-bit.
    pub sample_16bit: bool,
    /// `SoundType`: stereo rather than mono.
    pub stereo: bool,
    /// Sequence header, raw frames, …
    pub packet_type: AudioPacketType,
    /// Whether the body uses the enhanced-RTMP header (`SoundFormat` 9).
    pub enhanced: bool,
    /// Offset of the codec data in the body.
    pub data_offset: usize,
}

impl AudioInfo {
    /// Parses the header of an audio tag body.
    pub fn parse(body: &[u8]) -> Result<Self, FlvError> {
        const TRUNC: FlvError = FlvError::TruncatedBody { what: "audio" };
        let first = *body.first().ok_or(TRUNC)?;
        let sound_format = first >> 4;
        let mut info = Self {
            codec: AudioCodec::Legacy(sound_format),
            sound_format,
            sound_rate: (first >> 2) & 0x03,
            sample_16bit: first & 0x02 != 0,
            stereo: first & 0x01 != 0,
            packet_type: AudioPacketType::Raw,
            enhanced: false,
            data_offset: 1,
        };
        match sound_format {
            10 => {
                let p = *body.get(1).ok_or(TRUNC)?;
                info.codec = AudioCodec::Aac;
                info.packet_type = match p {
                    0 => AudioPacketType::SequenceStart,
                    1 => AudioPacketType::CodedFrames,
                    p => AudioPacketType::Reserved(p),
                };
                info.data_offset = 2;
            }
            2 | 14 => info.codec = AudioCodec::Mp3,
            9 => {
                info.enhanced = true;
                // The rate/size/type bits are the packet type here.
                info.sound_rate = 0;
                info.sample_16bit = false;
                info.stereo = false;
                let mut pos = 1;
                let packet = skip_mod_ex(body, &mut pos, first & 0x0F, TRUNC)?;
                if packet == 5 {
                    let b = *body.get(pos).ok_or(TRUNC)?;
                    pos += 1;
                    info.codec = if b >> 4 != 2 {
                        AudioCodec::from_fourcc(fourcc(body, &mut pos, TRUNC)?)
                    } else {
                        AudioCodec::Unspecified
                    };
                    info.packet_type = AudioPacketType::Multitrack;
                } else {
                    info.codec = AudioCodec::from_fourcc(fourcc(body, &mut pos, TRUNC)?);
                    info.packet_type = match packet {
                        0 => AudioPacketType::SequenceStart,
                        1 => AudioPacketType::CodedFrames,
                        2 => AudioPacketType::SequenceEnd,
                        4 => AudioPacketType::MultichannelConfig,
                        p => AudioPacketType::Reserved(p),
                    };
                }
                info.data_offset = pos;
            }
            _ => {}
        }
        Ok(info)
    }

    /// Whether this carries the codec configuration (AAC sequence header).
    pub fn is_sequence_header(&self) -> bool {
        self.packet_type == AudioPacketType::SequenceStart
    }

    /// The legacy `SoundRate` in Hz (AAC streams always say 44 kHz here).
    pub fn legacy_sample_rate(&self) -> u32 {
        match self.sound_rate {
            0 => 5512,
            1 => 11025,
            2 => 22050,
            _ => 44100,
        }
    }

    /// The codec data of `body` (the body this info was parsed from).
    pub fn data<'a>(&self, body: &'a [u8]) -> &'a [u8] {
        body.get(self.data_offset..).unwrap_or(&[])
    }
}

/// Skips enhanced-RTMP `ModEx` prefixes (packet type 7), returning the real
/// packet type. Each round consumes at least two bytes, so it ends.
fn skip_mod_ex(
    body: &[u8],
    pos: &mut usize,
    mut packet: u8,
    trunc: FlvError,
) -> Result<u8, FlvError> {
    while packet == 7 {
        let mut size = usize::from(*body.get(*pos).ok_or(trunc)?) + 1;
        *pos += 1;
        if size == 256 {
            let b = body.get(*pos..*pos + 2).ok_or(trunc)?;
            size = usize::from(u16::from_be_bytes([b[0], b[1]])) + 1;
            *pos += 2;
        }
        *pos += size;
        let b = *body.get(*pos).ok_or(trunc)?;
        *pos += 1;
        packet = b & 0x0F;
    }
    Ok(packet)
}

fn fourcc(body: &[u8], pos: &mut usize, trunc: FlvError) -> Result<[u8; 4], FlvError> {
    let b = body.get(*pos..*pos + 4).ok_or(trunc)?;
    *pos += 4;
    Ok([b[0], b[1], b[2], b[3]])
}

/// A signed 24-bit big-endian integer.
fn si24(b: &[u8]) -> i32 {
    let v = (i32::from(b[0]) << 16) | (i32::from(b[1]) << 8) | i32::from(b[2]);
    (v << 8) >> 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_avc_keyframe_has_its_packet_type_and_composition_time() {
        let body = [0x17, 0x01, 0x00, 0x00, 0x50, 0xAA];
        let info = VideoInfo::parse(&body).unwrap();
        assert_eq!(info.frame_type, FrameType::Key);
        assert_eq!(info.codec, VideoCodecId::Avc);
        assert_eq!(info.packet_type, VideoPacketType::CodedFrames);
        assert_eq!(info.composition_time_ms, 80);
        assert!(info.is_keyframe() && !info.enhanced);
        assert_eq!(info.data(&body), &[0xAA]);
    }

    #[test]
    fn a_negative_composition_time_is_sign_extended() {
        let info = VideoInfo::parse(&[0x27, 0x01, 0xFF, 0xFF, 0xD8]).unwrap();
        assert_eq!(info.composition_time_ms, -40);
        assert_eq!(info.frame_type, FrameType::Inter);
    }

    #[test]
    fn legacy_hevc_uses_codec_id_12() {
        let info = VideoInfo::parse(&[0x1C, 0x00, 0, 0, 0]).unwrap();
        assert_eq!(info.codec, VideoCodecId::Hevc);
        assert!(info.is_sequence_header());
    }

    #[test]
    fn other_legacy_codecs_have_no_packet_type() {
        let info = VideoInfo::parse(&[0x22, 0xAB]).unwrap();
        assert_eq!(info.codec, VideoCodecId::Legacy(2));
        assert_eq!(info.packet_type, VideoPacketType::Raw);
        assert_eq!(info.data_offset, 1);
    }

    #[test]
    fn enhanced_rtmp_headers_give_the_fourcc_and_packet_type() {
        // Key frame, SequenceStart, hvc1.
        let info = VideoInfo::parse(b"\x90hvc1\x01").unwrap();
        assert!(info.enhanced && info.is_sequence_header());
        assert_eq!(info.codec, VideoCodecId::Hevc);
        assert_eq!(info.data_offset, 5);
        // Inter frame, CodedFrames, hvc1: has a composition time.
        let info = VideoInfo::parse(b"\xA1hvc1\x00\x00\x28x").unwrap();
        assert_eq!(info.packet_type, VideoPacketType::CodedFrames);
        assert_eq!(info.composition_time_ms, 40);
        assert_eq!(info.data_offset, 8);
        // Key frame, CodedFramesX, avc1: no composition time.
        let info = VideoInfo::parse(b"\x93avc1x").unwrap();
        assert_eq!(info.packet_type, VideoPacketType::CodedFrames);
        assert_eq!((info.composition_time_ms, info.data_offset), (0, 5));
        // AV1 coded frames carry no composition time.
        let info = VideoInfo::parse(b"\x91av01x").unwrap();
        assert_eq!((info.codec, info.data_offset), (VideoCodecId::Av1, 5));
    }

    #[test]
    fn enhanced_mod_ex_prefixes_are_skipped() {
        // ModEx with 3 bytes of data, then ModEx type 0 / packet CodedFramesX.
        let info = VideoInfo::parse(b"\x97\x02abc\x03avc1x").unwrap();
        assert_eq!(info.packet_type, VideoPacketType::CodedFrames);
        assert_eq!(info.codec, VideoCodecId::Avc);
        assert_eq!(info.data_offset, 10);
    }

    #[test]
    fn enhanced_command_frames_carry_a_command_byte() {
        let info = VideoInfo::parse(&[0xD0, 0x01]).unwrap();
        assert_eq!(info.frame_type, FrameType::Command);
        assert_eq!(info.command, Some(1));
    }

    #[test]
    fn truncated_video_bodies_are_errors() {
        for body in [
            &b""[..],
            b"\x17\x01\x00",
            b"\x90hvc",
            b"\x97\xff",
            b"\x96\x00av",
        ] {
            assert_eq!(
                VideoInfo::parse(body),
                Err(FlvError::TruncatedBody { what: "video" }),
                "{body:?}"
            );
        }
    }

    #[test]
    fn an_aac_body_has_its_packet_type_and_flags() {
        let info = AudioInfo::parse(&[0xAF, 0x00, 0x12, 0x10]).unwrap();
        assert_eq!(info.codec, AudioCodec::Aac);
        assert!(info.is_sequence_header());
        assert!(info.stereo && info.sample_16bit);
        assert_eq!(info.legacy_sample_rate(), 44100);
        assert_eq!(info.data(&[0xAF, 0x00, 0x12, 0x10]), &[0x12, 0x10]);
        let info = AudioInfo::parse(&[0xAE, 0x01]).unwrap();
        assert_eq!(info.packet_type, AudioPacketType::CodedFrames);
        assert!(!info.stereo);
    }

    #[test]
    fn enhanced_audio_gives_the_fourcc() {
        let info = AudioInfo::parse(b"\x90Opus\x01").unwrap();
        assert!(info.enhanced && info.is_sequence_header());
        assert_eq!(info.codec, AudioCodec::Opus);
        assert_eq!(info.data_offset, 5);
    }

    #[test]
    fn other_legacy_audio_has_no_packet_type() {
        let info = AudioInfo::parse(&[0x2F, 0xFF]).unwrap();
        assert_eq!(info.codec, AudioCodec::Mp3);
        assert_eq!(info.packet_type, AudioPacketType::Raw);
        assert_eq!(
            AudioInfo::parse(&[0xA0]),
            Err(FlvError::TruncatedBody { what: "audio" })
        );
    }
}
