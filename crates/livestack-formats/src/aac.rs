//! AAC headers: the `AudioSpecificConfig` (the FLV/RTMP AAC sequence
//! header) and ADTS frame headers for MPEG-TS.
//!
//! Owns: object type, sampling rate and channel layout, and the 7-byte ADTS
//! header built from them. Must not: decode audio, or panic on any input.

use crate::bits::{BitReader, EndOfData};

/// Sampling rates by `samplingFrequencyIndex` (ISO/IEC 14496-3 Table 1.18).
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Bytes in an ADTS header without CRC.
pub const ADTS_HEADER_LEN: usize = 7;
/// The largest ADTS frame (13-bit `frame_length`, header included).
pub const MAX_ADTS_FRAME_LEN: usize = 0x1FFF;

/// What can go wrong with AAC headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AacError {
    /// The configuration ends early.
    #[error("AudioSpecificConfig is truncated")]
    Truncated,
    /// A reserved sampling frequency index (13 or 14).
    #[error("reserved AAC sampling frequency index {0}")]
    BadSampleRateIndex(u8),
    /// ADTS can only carry object types 1 to 4 (Main, LC, SSR, LTP).
    #[error("AAC object type {0} cannot be carried in ADTS")]
    NotAdtsObjectType(u8),
    /// ADTS needs a sampling frequency index, not an explicit rate.
    #[error("AAC sampling rate {0} Hz has no ADTS frequency index")]
    NotAdtsSampleRate(u32),
    /// The frame does not fit ADTS's 13-bit length.
    #[error("AAC frame of {0} bytes is too long for ADTS")]
    FrameTooLong(usize),
}

impl From<EndOfData> for AacError {
    fn from(_: EndOfData) -> Self {
        Self::Truncated
    }
}

/// A parsed `AudioSpecificConfig`: what a player needs to decode the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// The core `audioObjectType` (2 = AAC LC). For explicitly signalled
    /// HE-AAC (object type 5 or 29) this is the core type after the SBR/PS
    /// extension header, which is what ADTS carries.
    pub object_type: u8,
    /// `samplingFrequencyIndex`, or `None` when the rate is explicit.
    pub sample_rate_index: Option<u8>,
    /// The core sampling rate in Hz.
    pub sample_rate: u32,
    /// `channelConfiguration` (0 = defined in a program config element).
    pub channel_config: u8,
}

impl AudioSpecificConfig {
    /// Parses an `AudioSpecificConfig` (the codec data of an AAC sequence header).
    pub fn parse(data: &[u8]) -> Result<Self, AacError> {
        let mut r = BitReader::new(data);
        let mut object_type = read_object_type(&mut r)?;
        let (sample_rate_index, sample_rate) = read_sample_rate(&mut r)?;
        let channel_config = r.bits(4)? as u8;
        if object_type == 5 || object_type == 29 {
            // Explicit SBR/PS: the extension rate, then the core object type.
            let _extension_rate = read_sample_rate(&mut r)?;
            object_type = read_object_type(&mut r)?;
        }
        Ok(Self {
            object_type,
            sample_rate_index,
            sample_rate,
            channel_config,
        })
    }

    /// Number of channels for channel configurations 1..=7 (0 means a
    /// program config element decides, reported as 0).
    pub fn channels(&self) -> u8 {
        match self.channel_config {
            7 => 8,
            c => c,
        }
    }

    /// The 7-byte ADTS header (MPEG-4, no CRC) for one raw AAC frame of
    /// `raw_len` bytes.
    pub fn adts_header(&self, raw_len: usize) -> Result<[u8; ADTS_HEADER_LEN], AacError> {
        if !(1..=4).contains(&self.object_type) {
            return Err(AacError::NotAdtsObjectType(self.object_type));
        }
        let index = self
            .sample_rate_index
            .ok_or(AacError::NotAdtsSampleRate(self.sample_rate))?;
        let frame_len = raw_len + ADTS_HEADER_LEN;
        if frame_len > MAX_ADTS_FRAME_LEN {
            return Err(AacError::FrameTooLong(raw_len));
        }
        let profile = self.object_type - 1;
        let ch = self.channel_config & 0x07;
        // frame_len < 2^13, so these shifts keep every bit.
        let len = frame_len as u16;
        Ok([
            0xFF,
            0xF1, // sync, MPEG-4, layer 0, no CRC
            (profile << 6) | (index << 2) | (ch >> 2),
            ((ch & 0x03) << 6) | ((len >> 11) as u8),
            (len >> 3) as u8,
            (((len & 0x07) as u8) << 5) | 0x1F, // buffer fullness 0x7FF: VBR
            0xFC,                               // fullness low bits, one raw block
        ])
    }
}

fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, AacError> {
    let t = r.bits(5)? as u8;
    Ok(if t == 31 { 32 + r.bits(6)? as u8 } else { t })
}

fn read_sample_rate(r: &mut BitReader<'_>) -> Result<(Option<u8>, u32), AacError> {
    let index = r.bits(4)? as u8;
    match index {
        15 => Ok((None, r.bits(24)?)),
        i => SAMPLE_RATES
            .get(usize::from(i))
            .map(|rate| (Some(i), *rate))
            .ok_or(AacError::BadSampleRateIndex(i)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(config: &[u8], object_type: u8, rate: u32, channels: u8) {
        let c = AudioSpecificConfig::parse(config).unwrap();
        assert_eq!(
            (c.object_type, c.sample_rate, c.channels()),
            (object_type, rate, channels)
        );
    }

    #[test]
    fn common_configurations_parse() {
        // ffmpeg's native encoder: LC 44.1 kHz mono with a backward-compatible SBR sync extension.
        check(&[0x12, 0x08, 0x56, 0xE5, 0x00], 2, 44100, 1);
        check(&[0x11, 0x90], 2, 48000, 2);
        check(&[0x13, 0x90], 2, 22050, 2);
        // HE-AAC v1 explicit: AOT 5, 24 kHz core, stereo, 48 kHz extension, core LC.
        check(&[0x2B, 0x11, 0x88, 0x00], 2, 24000, 2);
        // Explicit rate escape (index 15) with 44.1 kHz written out.
        check(&[0x17, 0x80, 0x56, 0x22, 0x10], 2, 44100, 2);
    }

    #[test]
    fn the_adts_header_matches_what_ffmpeg_writes() {
        // The first frame of ffmpeg's `sine` source (LC 44.1 kHz mono, 258
        // bytes) as `ffmpeg -c:a copy -f adts` writes it.
        let c = AudioSpecificConfig::parse(&[0x12, 0x08]).unwrap();
        assert_eq!(
            c.adts_header(258).unwrap(),
            [0xFF, 0xF1, 0x50, 0x40, 0x21, 0x3F, 0xFC]
        );
    }

    #[test]
    fn what_adts_cannot_carry_is_an_error() {
        let explicit = AudioSpecificConfig::parse(&[0x17, 0x80, 0x56, 0x22, 0x10]).unwrap();
        assert_eq!(
            explicit.adts_header(10),
            Err(AacError::NotAdtsSampleRate(44100))
        );
        let c = AudioSpecificConfig::parse(&[0x12, 0x08]).unwrap();
        assert_eq!(c.adts_header(8185), Err(AacError::FrameTooLong(8185)));
        assert!(c.adts_header(8184).is_ok());
        let eld = AudioSpecificConfig::parse(&[0xF8, 0xE6, 0x20]).unwrap();
        assert_eq!(eld.object_type, 39);
        assert_eq!(eld.adts_header(10), Err(AacError::NotAdtsObjectType(39)));
    }

    #[test]
    fn bad_configurations_are_errors() {
        assert_eq!(AudioSpecificConfig::parse(&[]), Err(AacError::Truncated));
        assert_eq!(
            AudioSpecificConfig::parse(&[0x16, 0x88]),
            Err(AacError::BadSampleRateIndex(13))
        );
    }
}
