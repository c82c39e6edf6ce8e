//! H.265 headers: the `HEVCDecoderConfigurationRecord` (the FLV/RTMP HEVC
//! sequence header) and enough of the sequence parameter set for the
//! picture size and profile.
//!
//! Owns: VPS/SPS/PPS arrays, NAL length size, SPS size and profile.
//! Must not: decode slices or the SPS beyond the conformance window and bit
//! depths (best effort), or panic on any input.

use bytes::{BufMut, Bytes, BytesMut};

use crate::bits::{unescape_rbsp, BitReader, EndOfData};

/// NAL unit type of a video parameter set.
pub const NAL_VPS: u8 = 32;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 34;

/// The NAL unit type of an H.265 NAL unit (from its first header byte).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| (b >> 1) & 0x3F)
}

/// What can go wrong reading H.265 headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HevcError {
    /// The configuration record ends early.
    #[error("HEVC decoder configuration record is truncated")]
    TruncatedConfig,
    /// The record (or the parameter sets given) has no SPS.
    #[error("HEVC decoder configuration has no SPS")]
    NoSps,
    /// The NAL unit given as an SPS is of another type.
    #[error("NAL unit of type {0} is not an HEVC SPS")]
    NotSps(u8),
    /// The SPS ends early.
    #[error("HEVC SPS is truncated")]
    TruncatedSps,
    /// An SPS field has a value the standard forbids.
    #[error("HEVC SPS field {0} is out of range")]
    InvalidSps(&'static str),
}

impl From<EndOfData> for HevcError {
    fn from(_: EndOfData) -> Self {
        Self::TruncatedSps
    }
}

/// One array of parameter sets of a single NAL unit type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NalArray {
    /// `array_completeness`: all parameter sets of this type are here.
    pub complete: bool,
    /// The NAL unit type (32 VPS, 33 SPS, 34 PPS, 39/40 SEI).
    pub nal_type: u8,
    /// The NAL units, each with its two-byte header.
    pub units: Vec<Bytes>,
}

/// A parsed `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcConfig {
    /// `configurationVersion` (1; some old muxers wrote 0).
    pub version: u8,
    /// `general_profile_space`.
    pub profile_space: u8,
    /// `general_tier_flag`: high tier.
    pub tier_high: bool,
    /// `general_profile_idc` (1 Main, 2 Main 10, 4 RExt, …).
    pub profile_idc: u8,
    /// `general_profile_compatibility_flags`.
    pub profile_compatibility: u32,
    /// `general_constraint_indicator_flags` (48 bits).
    pub constraint_flags: u64,
    /// `general_level_idc`: thirty times the level.
    pub level_idc: u8,
    /// `chromaFormat`.
    pub chroma_format: u8,
    /// Luma bit depth.
    pub bit_depth_luma: u8,
    /// Chroma bit depth.
    pub bit_depth_chroma: u8,
    /// Bytes in each NAL unit length prefix of the coded frames (1, 2 or 4).
    pub nal_length_size: u8,
    /// The parameter-set arrays in record order.
    pub arrays: Vec<NalArray>,
}

impl HevcConfig {
    /// Parses a configuration record (the codec data of an HEVC sequence header).
    pub fn parse(data: &[u8]) -> Result<Self, HevcError> {
        let head = data.get(..23).ok_or(HevcError::TruncatedConfig)?;
        let mut rest = &data[23..];
        let mut constraint = [0u8; 8];
        constraint[2..].copy_from_slice(&head[6..12]);
        let mut config = Self {
            version: head[0],
            profile_space: head[1] >> 6,
            tier_high: head[1] & 0x20 != 0,
            profile_idc: head[1] & 0x1F,
            profile_compatibility: u32::from_be_bytes([head[2], head[3], head[4], head[5]]),
            constraint_flags: u64::from_be_bytes(constraint),
            level_idc: head[12],
            chroma_format: head[16] & 0x03,
            bit_depth_luma: (head[17] & 0x07) + 8,
            bit_depth_chroma: (head[18] & 0x07) + 8,
            nal_length_size: (head[21] & 0x03) + 1,
            arrays: Vec::new(),
        };
        let count = head[22];
        for _ in 0..count {
            let h = rest.get(..3).ok_or(HevcError::TruncatedConfig)?;
            let complete = h[0] & 0x80 != 0;
            let nal_type = h[0] & 0x3F;
            let n = u16::from_be_bytes([h[1], h[2]]);
            rest = &rest[3..];
            let mut units = Vec::new();
            for _ in 0..n {
                let l = rest.get(..2).ok_or(HevcError::TruncatedConfig)?;
                let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
                let unit = rest.get(2..2 + len).ok_or(HevcError::TruncatedConfig)?;
                units.push(Bytes::copy_from_slice(unit));
                rest = &rest[2 + len..];
            }
            config.arrays.push(NalArray {
                complete,
                nal_type,
                units,
            });
        }
        Ok(config)
    }

    /// Builds a configuration record from in-band parameter sets, taking
    /// the profile fields from the SPS and using 4-byte NAL lengths.
    pub fn from_parameter_sets(
        vps: Vec<Bytes>,
        sps: Vec<Bytes>,
        pps: Vec<Bytes>,
    ) -> Result<Self, HevcError> {
        let parsed = HevcSps::parse(sps.first().ok_or(HevcError::NoSps)?)?;
        let array = |nal_type, units| NalArray {
            complete: true,
            nal_type,
            units,
        };
        Ok(Self {
            version: 1,
            profile_space: parsed.profile_space,
            tier_high: parsed.tier_high,
            profile_idc: parsed.profile_idc,
            profile_compatibility: parsed.profile_compatibility,
            constraint_flags: parsed.constraint_flags,
            level_idc: parsed.level_idc,
            chroma_format: parsed.chroma_format_idc.min(3) as u8,
            bit_depth_luma: parsed.bit_depth_luma.min(15) as u8,
            bit_depth_chroma: parsed.bit_depth_chroma.min(15) as u8,
            nal_length_size: 4,
            arrays: vec![
                array(NAL_VPS, vps),
                array(NAL_SPS, sps),
                array(NAL_PPS, pps),
            ],
        })
    }

    /// The record's bytes, as an FLV HEVC sequence header carries them.
    /// Units longer than 65535 bytes and arrays past 255 are left out.
    pub fn to_bytes(&self) -> Bytes {
        let body: usize = self
            .arrays
            .iter()
            .map(|a| 3 + a.units.iter().map(|u| 2 + u.len()).sum::<usize>())
            .sum();
        let mut out = BytesMut::with_capacity(23 + body);
        out.put_u8(self.version);
        out.put_u8(
            (self.profile_space << 6) | (u8::from(self.tier_high) << 5) | (self.profile_idc & 0x1F),
        );
        out.put_u32(self.profile_compatibility);
        out.put_slice(&self.constraint_flags.to_be_bytes()[2..]);
        out.put_u8(self.level_idc);
        out.put_u16(0xF000); // min_spatial_segmentation_idc 0
        out.put_u8(0xFC); // parallelismType 0
        out.put_u8(0xFC | (self.chroma_format & 0x03));
        out.put_u8(0xF8 | (self.bit_depth_luma.saturating_sub(8) & 0x07));
        out.put_u8(0xF8 | (self.bit_depth_chroma.saturating_sub(8) & 0x07));
        out.put_u16(0); // avgFrameRate unknown
                        // constantFrameRate 0, numTemporalLayers 1, temporalIdNested 1.
        out.put_u8(0x0C | (self.nal_length_size.clamp(1, 4) - 1));
        let arrays: Vec<&NalArray> = self.arrays.iter().take(255).collect();
        out.put_u8(arrays.len() as u8);
        for a in arrays {
            out.put_u8((u8::from(a.complete) << 7) | (a.nal_type & 0x3F));
            let units: Vec<&Bytes> = a
                .units
                .iter()
                .filter(|u| u.len() <= usize::from(u16::MAX))
                .take(usize::from(u16::MAX))
                .collect();
            out.put_u16(units.len() as u16);
            for u in units {
                out.put_u16(u.len() as u16);
                out.put_slice(u);
            }
        }
        out.freeze()
    }

    /// The NAL units of one type across all arrays, in record order.
    pub fn units_of_type(&self, nal_type: u8) -> impl Iterator<Item = &Bytes> + '_ {
        self.arrays
            .iter()
            .filter(move |a| a.nal_type == nal_type)
            .flat_map(|a| a.units.iter())
    }

    /// Parses the first SPS of the record.
    pub fn parse_sps(&self) -> Result<HevcSps, HevcError> {
        HevcSps::parse(self.units_of_type(NAL_SPS).next().ok_or(HevcError::NoSps)?)
    }
}

/// The fields of an H.265 sequence parameter set that a server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcSps {
    /// `general_profile_space`.
    pub profile_space: u8,
    /// `general_tier_flag`.
    pub tier_high: bool,
    /// `general_profile_idc`.
    pub profile_idc: u8,
    /// `general_profile_compatibility_flags`.
    pub profile_compatibility: u32,
    /// The 48 general constraint-indicator bits.
    pub constraint_flags: u64,
    /// `general_level_idc`: thirty times the level (120 = 4.0).
    pub level_idc: u8,
    /// `chroma_format_idc`.
    pub chroma_format_idc: u32,
    /// Luma bit depth.
    pub bit_depth_luma: u32,
    /// Chroma bit depth.
    pub bit_depth_chroma: u32,
    /// Displayed width: `pic_width_in_luma_samples` less the conformance window.
    pub width: u32,
    /// Displayed height: `pic_height_in_luma_samples` less the conformance window.
    pub height: u32,
}

impl HevcSps {
    /// Parses an SPS NAL unit (including its two-byte NAL header).
    pub fn parse(nal: &[u8]) -> Result<Self, HevcError> {
        let t = nal_type(nal).ok_or(HevcError::TruncatedSps)?;
        if t != NAL_SPS {
            return Err(HevcError::NotSps(t));
        }
        let rbsp = unescape_rbsp(nal.get(2..).ok_or(HevcError::TruncatedSps)?);
        let mut r = BitReader::new(&rbsp);
        let _vps_id = r.bits(4)?;
        let max_sub_layers_minus1 = r.bits(3)?;
        if max_sub_layers_minus1 > 6 {
            return Err(HevcError::InvalidSps("sps_max_sub_layers_minus1"));
        }
        let _temporal_id_nesting = r.flag()?;
        // profile_tier_level(1, sps_max_sub_layers_minus1)
        let profile_space = r.bits(2)? as u8;
        let tier_high = r.flag()?;
        let profile_idc = r.bits(5)? as u8;
        let profile_compatibility = r.bits(32)?;
        let constraint_flags = (u64::from(r.bits(16)?) << 32) | u64::from(r.bits(32)?);
        let level_idc = r.u8()?;
        let mut sub_layer_flags = [(false, false); 7];
        for f in sub_layer_flags
            .iter_mut()
            .take(max_sub_layers_minus1 as usize)
        {
            *f = (r.flag()?, r.flag()?);
        }
        if max_sub_layers_minus1 > 0 {
            r.skip(2 * (8 - max_sub_layers_minus1 as usize))?;
        }
        for &(profile_present, level_present) in
            sub_layer_flags.iter().take(max_sub_layers_minus1 as usize)
        {
            if profile_present {
                r.skip(88)?;
            }
            if level_present {
                r.skip(8)?;
            }
        }
        let _sps_id = r.ue()?;
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(HevcError::InvalidSps("chroma_format_idc"));
        }
        let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
        let pic_width = u64::from(r.ue()?);
        let pic_height = u64::from(r.ue()?);
        let mut window = [0u64; 4];
        if r.flag()? {
            for w in &mut window {
                *w = u64::from(r.ue()?);
            }
        }
        let (sub_w, sub_h) = match (chroma_format_idc, separate_colour_plane) {
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        let width = pic_width
            .checked_sub(sub_w * (window[0] + window[1]))
            .filter(|w| *w > 0)
            .and_then(|w| u32::try_from(w).ok())
            .ok_or(HevcError::InvalidSps("conf_win_left/right_offset"))?;
        let height = pic_height
            .checked_sub(sub_h * (window[2] + window[3]))
            .filter(|h| *h > 0)
            .and_then(|h| u32::try_from(h).ok())
            .ok_or(HevcError::InvalidSps("conf_win_top/bottom_offset"))?;
        let bit_depth_luma = r.ue()?.saturating_add(8);
        let bit_depth_chroma = r.ue()?.saturating_add(8);
        Ok(Self {
            profile_space,
            tier_high,
            profile_idc,
            profile_compatibility,
            constraint_flags,
            level_idc,
            chroma_format_idc,
            bit_depth_luma,
            bit_depth_chroma,
            width,
            height,
        })
    }

    /// The profile's name as ffprobe prints it.
    pub fn profile_name(&self) -> &'static str {
        match self.profile_idc {
            1 => "Main",
            2 => "Main 10",
            3 => "Main Still Picture",
            4 => "Rext",
            _ => "Unknown",
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Parameter sets x265 writes for ffmpeg's `testsrc` at 1920x1080
    /// (4:4:4, profile RExt, level 4.0).
    pub(crate) const VPS_1080: &str = "40010c01ffff0408000003009e08000003000078959809";
    pub(crate) const SPS_1080: &str =
        "4201010408000003009e0800000300007890007810021cb2cacd24995e02dc08080010000003001000000301e080";
    pub(crate) const PPS_1080: &str = "4401c172860c4624";
    /// An SPS for 1918x1078 4:2:0 Main (conformance window on both axes).
    const SPS_1918X1078: &str =
        "420101016000000300900000030000030078a003c08010e75596566924caf0168080000003008000000f04";

    pub(crate) fn hex(s: &str) -> Bytes {
        Bytes::from(
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>(),
        )
    }

    #[test]
    fn x265_sps_give_the_size_and_profile_ffprobe_reports() {
        let sps = HevcSps::parse(&hex(SPS_1080)).unwrap();
        assert_eq!(
            (sps.width, sps.height, sps.profile_name(), sps.level_idc),
            (1920, 1080, "Rext", 120)
        );
        assert_eq!(sps.chroma_format_idc, 3);
        let sps = HevcSps::parse(&hex(SPS_1918X1078)).unwrap();
        assert_eq!(
            (sps.width, sps.height, sps.profile_name()),
            (1918, 1078, "Main")
        );
    }

    #[test]
    fn a_configuration_record_round_trips_and_finds_the_sps() {
        let config = HevcConfig::from_parameter_sets(
            vec![hex(VPS_1080)],
            vec![hex(SPS_1080)],
            vec![hex(PPS_1080)],
        )
        .unwrap();
        let parsed = HevcConfig::parse(&config.to_bytes()).unwrap();
        assert_eq!(parsed, config);
        assert_eq!(parsed.nal_length_size, 4);
        assert_eq!(parsed.units_of_type(NAL_PPS).count(), 1);
        assert_eq!(parsed.parse_sps().unwrap().width, 1920);
    }

    #[test]
    fn truncated_or_wrong_input_is_an_error_never_a_panic() {
        assert_eq!(HevcConfig::parse(&[1; 22]), Err(HevcError::TruncatedConfig));
        assert_eq!(HevcSps::parse(&hex(PPS_1080)), Err(HevcError::NotSps(34)));
        let sps = hex(SPS_1080);
        for len in 0..sps.len() {
            let _ = HevcSps::parse(&sps[..len]);
        }
        let config = HevcConfig::from_parameter_sets(vec![], vec![sps], vec![])
            .unwrap()
            .to_bytes();
        for len in 0..config.len() {
            let _ = HevcConfig::parse(&config[..len]);
        }
    }
}
