//! H.264 headers: the `AVCDecoderConfigurationRecord` (the FLV/RTMP AVC
//! sequence header) and the sequence parameter set.
//!
//! Owns: reading SPS/PPS lists, the NAL length size, and the SPS fields a
//! server reports or needs (profile, level, picture size, frame rate).
//! Must not: decode slices, or panic on any input (every field read is
//! bounds-checked, every size computed with checked arithmetic).

use bytes::{BufMut, Bytes, BytesMut};

use crate::bits::{unescape_rbsp, BitReader, EndOfData};

/// What can go wrong reading H.264 headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AvcError {
    /// The configuration record ends early.
    #[error("AVC decoder configuration record is truncated")]
    TruncatedConfig,
    /// `configurationVersion` is not 1.
    #[error("unsupported AVC decoder configuration version {0}")]
    BadVersion(u8),
    /// The record lists no SPS.
    #[error("AVC decoder configuration has no SPS")]
    NoSps,
    /// The NAL unit given as an SPS is of another type.
    #[error("NAL unit of type {0} is not an SPS")]
    NotSps(u8),
    /// The SPS ends early.
    #[error("SPS is truncated")]
    TruncatedSps,
    /// An SPS field has a value the standard forbids.
    #[error("SPS field {0} is out of range")]
    InvalidSps(&'static str),
}

impl From<EndOfData> for AvcError {
    fn from(_: EndOfData) -> Self {
        Self::TruncatedSps
    }
}

/// A parsed `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// `AVCProfileIndication` (the SPS `profile_idc`).
    pub profile_indication: u8,
    /// `profile_compatibility` (the SPS constraint flags).
    pub profile_compatibility: u8,
    /// `AVCLevelIndication` (the SPS `level_idc`).
    pub level_indication: u8,
    /// Bytes in each NAL unit length prefix of the coded frames (1, 2 or 4).
    pub nal_length_size: u8,
    /// Sequence parameter sets, each a whole NAL unit with its header byte.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets, each a whole NAL unit with its header byte.
    pub pps: Vec<Bytes>,
}

impl AvcConfig {
    /// Parses a configuration record (the body of an AVC sequence header
    /// after the 5-byte FLV video header).
    pub fn parse(data: &[u8]) -> Result<Self, AvcError> {
        let mut cur = Cursor(data);
        let version = cur.u8()?;
        if version != 1 {
            return Err(AvcError::BadVersion(version));
        }
        let profile_indication = cur.u8()?;
        let profile_compatibility = cur.u8()?;
        let level_indication = cur.u8()?;
        let nal_length_size = (cur.u8()? & 0x03) + 1;
        let sps_count = cur.u8()? & 0x1F;
        let sps = (0..sps_count)
            .map(|_| cur.nal())
            .collect::<Result<Vec<_>, _>>()?;
        let pps_count = cur.u8()?;
        let pps = (0..pps_count)
            .map(|_| cur.nal())
            .collect::<Result<Vec<_>, _>>()?;
        // High-profile records may carry chroma/bit-depth fields and SPS
        // extensions after this; the SPS already says all of it.
        Ok(Self {
            profile_indication,
            profile_compatibility,
            level_indication,
            nal_length_size,
            sps,
            pps,
        })
    }

    /// Builds a configuration record from parameter sets, using 4-byte NAL
    /// lengths, for muxing sources that carry SPS/PPS in band.
    pub fn from_parameter_sets(sps: Vec<Bytes>, pps: Vec<Bytes>) -> Result<Self, AvcError> {
        let first = sps.first().ok_or(AvcError::NoSps)?;
        let h = first.get(1..4).ok_or(AvcError::TruncatedSps)?;
        Ok(Self {
            profile_indication: h[0],
            profile_compatibility: h[1],
            level_indication: h[2],
            nal_length_size: 4,
            sps,
            pps,
        })
    }

    /// The record's bytes, as an FLV AVC sequence header carries them.
    /// Parameter sets past the format's limits (31 SPS, 255 PPS, 65535
    /// bytes each) are left out.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(
            7 + self
                .sps
                .iter()
                .chain(&self.pps)
                .map(|n| 2 + n.len())
                .sum::<usize>(),
        );
        out.put_slice(&[
            1,
            self.profile_indication,
            self.profile_compatibility,
            self.level_indication,
            0xFC | (self.nal_length_size.clamp(1, 4) - 1),
        ]);
        let fits = |n: &&Bytes| n.len() <= usize::from(u16::MAX);
        let sps: Vec<&Bytes> = self.sps.iter().filter(fits).take(31).collect();
        out.put_u8(0xE0 | sps.len() as u8);
        for n in sps {
            out.put_u16(n.len() as u16);
            out.put_slice(n);
        }
        let pps: Vec<&Bytes> = self.pps.iter().filter(fits).take(255).collect();
        out.put_u8(pps.len() as u8);
        for n in pps {
            out.put_u16(n.len() as u16);
            out.put_slice(n);
        }
        out.freeze()
    }

    /// Parses the first SPS of the record.
    pub fn parse_sps(&self) -> Result<Sps, AvcError> {
        Sps::parse(self.sps.first().ok_or(AvcError::NoSps)?)
    }
}

/// A byte cursor for the configuration record.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn u8(&mut self) -> Result<u8, AvcError> {
        let (&b, rest) = self.0.split_first().ok_or(AvcError::TruncatedConfig)?;
        self.0 = rest;
        Ok(b)
    }

    fn nal(&mut self) -> Result<Bytes, AvcError> {
        let len = usize::from(u16::from_be_bytes([self.u8()?, self.u8()?]));
        if self.0.len() < len {
            return Err(AvcError::TruncatedConfig);
        }
        let (nal, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(Bytes::copy_from_slice(nal))
    }
}

/// The fields of an H.264 sequence parameter set that a server uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Sps {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High, …).
    pub profile_idc: u8,
    /// The `constraint_set0..5` flags byte.
    pub constraint_flags: u8,
    /// `level_idc`: ten times the level (31 = 3.1).
    pub level_idc: u8,
    /// `seq_parameter_set_id`.
    pub id: u32,
    /// `chroma_format_idc` (1 = 4:2:0 unless a high profile says otherwise).
    pub chroma_format_idc: u32,
    /// Luma bit depth (8 unless a high profile says otherwise).
    pub bit_depth_luma: u32,
    /// `frame_mbs_only_flag`: progressive frames only.
    pub frame_mbs_only: bool,
    /// Displayed width in pixels, after frame cropping.
    pub width: u32,
    /// Displayed height in pixels, after frame cropping.
    pub height: u32,
    /// The sample aspect ratio, when the VUI gives one.
    pub sample_aspect_ratio: Option<(u16, u16)>,
    /// VUI `num_units_in_tick` and `time_scale`, when present and non-zero.
    pub timing: Option<(u32, u32)>,
}

impl Sps {
    /// Parses an SPS NAL unit (including its one-byte NAL header).
    pub fn parse(nal: &[u8]) -> Result<Self, AvcError> {
        let header = *nal.first().ok_or(AvcError::TruncatedSps)?;
        if header & 0x1F != 7 {
            return Err(AvcError::NotSps(header & 0x1F));
        }
        let rbsp = unescape_rbsp(&nal[1..]);
        let mut r = BitReader::new(&rbsp);
        let profile_idc = r.u8()?;
        let constraint_flags = r.u8()?;
        let level_idc = r.u8()?;
        let id = r.ue()?;
        if id > 31 {
            return Err(AvcError::InvalidSps("seq_parameter_set_id"));
        }
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        let mut bit_depth_luma = 8;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc > 3 {
                return Err(AvcError::InvalidSps("chroma_format_idc"));
            }
            if chroma_format_idc == 3 {
                separate_colour_plane = r.flag()?;
            }
            let luma_minus8 = r.ue()?;
            if luma_minus8 > 6 {
                return Err(AvcError::InvalidSps("bit_depth_luma_minus8"));
            }
            bit_depth_luma = luma_minus8 + 8;
            let _bit_depth_chroma_minus8 = r.ue()?;
            let _qpprime_y_zero_transform_bypass = r.flag()?;
            if r.flag()? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.flag()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let _log2_max_frame_num_minus4 = r.ue()?;
        match r.ue()? {
            0 => {
                let _log2_max_poc_lsb_minus4 = r.ue()?;
            }
            1 => {
                let _delta_pic_order_always_zero = r.flag()?;
                let _offset_for_non_ref_pic = r.se()?;
                let _offset_for_top_to_bottom_field = r.se()?;
                let cycle = r.ue()?;
                if cycle > 255 {
                    return Err(AvcError::InvalidSps(
                        "num_ref_frames_in_pic_order_cnt_cycle",
                    ));
                }
                for _ in 0..cycle {
                    let _offset_for_ref_frame = r.se()?;
                }
            }
            2 => {}
            _ => return Err(AvcError::InvalidSps("pic_order_cnt_type")),
        }
        let _max_num_ref_frames = r.ue()?;
        let _gaps_in_frame_num_allowed = r.flag()?;
        let width_mbs = u64::from(r.ue()?) + 1;
        let height_map_units = u64::from(r.ue()?) + 1;
        let frame_mbs_only = r.flag()?;
        if !frame_mbs_only {
            let _mb_adaptive_frame_field = r.flag()?;
        }
        let _direct_8x8_inference = r.flag()?;
        let mut crop = [0u64; 4];
        if r.flag()? {
            for c in &mut crop {
                *c = u64::from(r.ue()?);
            }
        }
        // Table 6-1: SubWidthC/SubHeightC; monochrome and separate planes
        // crop in whole samples.
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (sub_w, sub_h) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let full_w = width_mbs * 16;
        let full_h = field_factor * height_map_units * 16;
        let crop_w = sub_w * (crop[0] + crop[1]);
        let crop_h = sub_h * field_factor * (crop[2] + crop[3]);
        let width = full_w
            .checked_sub(crop_w)
            .filter(|w| *w > 0)
            .and_then(|w| u32::try_from(w).ok())
            .ok_or(AvcError::InvalidSps("frame_crop_left/right_offset"))?;
        let height = full_h
            .checked_sub(crop_h)
            .filter(|h| *h > 0)
            .and_then(|h| u32::try_from(h).ok())
            .ok_or(AvcError::InvalidSps("frame_crop_top/bottom_offset"))?;

        let mut sps = Self {
            profile_idc,
            constraint_flags,
            level_idc,
            id,
            chroma_format_idc,
            bit_depth_luma,
            frame_mbs_only,
            width,
            height,
            sample_aspect_ratio: None,
            timing: None,
        };
        // The VUI is optional extra information: a truncated one still
        // leaves a usable SPS, so its errors only end the reading.
        if r.flag().unwrap_or(false) {
            let _ = sps.read_vui(&mut r);
        }
        Ok(sps)
    }

    fn read_vui(&mut self, r: &mut BitReader<'_>) -> Result<(), EndOfData> {
        if r.flag()? {
            let idc = r.u8()?;
            self.sample_aspect_ratio = if idc == 255 {
                let w = r.bits(16)? as u16;
                let h = r.bits(16)? as u16;
                Some((w, h))
            } else {
                SAR_TABLE.get(usize::from(idc)).copied().flatten()
            };
        }
        if r.flag()? {
            let _overscan_appropriate = r.flag()?;
        }
        if r.flag()? {
            let _video_format = r.bits(3)?;
            let _full_range = r.flag()?;
            if r.flag()? {
                r.skip(24)?; // colour primaries, transfer, matrix
            }
        }
        if r.flag()? {
            let _top = r.ue()?;
            let _bottom = r.ue()?;
        }
        if r.flag()? {
            let num_units_in_tick = r.bits(32)?;
            let time_scale = r.bits(32)?;
            if num_units_in_tick > 0 && time_scale > 0 {
                self.timing = Some((num_units_in_tick, time_scale));
            }
        }
        Ok(())
    }

    /// Frames per second from the VUI timing (`time_scale / 2 / num_units_in_tick`).
    pub fn fps(&self) -> Option<f64> {
        self.timing
            .map(|(units, scale)| f64::from(scale) / (2.0 * f64::from(units)))
    }

    /// The profile's name as ffprobe prints it.
    pub fn profile_name(&self) -> &'static str {
        match self.profile_idc {
            66 if self.constraint_flags & 0x40 != 0 => "Constrained Baseline",
            66 => "Baseline",
            77 => "Main",
            88 => "Extended",
            100 => "High",
            110 => "High 10",
            122 => "High 4:2:2",
            244 => "High 4:4:4 Predictive",
            44 => "CAVLC 4:4:4",
            _ => "Unknown",
        }
    }
}

/// Table E-1: sample aspect ratios for `aspect_ratio_idc` 1..=16.
const SAR_TABLE: [Option<(u16, u16)>; 17] = [
    None,
    Some((1, 1)),
    Some((12, 11)),
    Some((10, 11)),
    Some((16, 11)),
    Some((40, 33)),
    Some((24, 11)),
    Some((20, 11)),
    Some((32, 11)),
    Some((80, 33)),
    Some((18, 11)),
    Some((15, 11)),
    Some((64, 33)),
    Some((160, 99)),
    Some((4, 3)),
    Some((3, 2)),
    Some((2, 1)),
];

/// Skips a `scaling_list()` (7.3.2.1.1.1): only its length depends on data.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), EndOfData> {
    let mut last: i64 = 8;
    let mut next: i64 = 8;
    for _ in 0..size {
        if next != 0 {
            let delta = i64::from(r.se()?);
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The SPS x264 writes for ffmpeg's `testsrc` at 640x360, 25 fps: High
    /// 4:4:4 Predictive (the source is RGB), level 3.0.
    pub(crate) const SPS_640X360: &[u8] = &[
        0x67, 0xF4, 0x00, 0x1E, 0x91, 0x9B, 0x28, 0x14, 0x05, 0xFF, 0x13, 0x80, 0x88, 0x00, 0x00,
        0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x01, 0x90, 0x78, 0xB1, 0x6C, 0xB0,
    ];
    /// The PPS that goes with it.
    pub(crate) const PPS: &[u8] = &[0x68, 0xEB, 0xE3, 0xC4, 0x48, 0x44];

    /// Constrained Baseline 1280x720 at 30 fps, level 3.1.
    const SPS_1280X720_BASELINE: &[u8] = &[
        0x67, 0x42, 0xC0, 0x1F, 0xD9, 0x00, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1, 0x83, 0x24, 0x80,
    ];
    /// High 718x478 at 50 fps: needs frame cropping on both axes.
    const SPS_718X478_CROPPED: &[u8] = &[
        0x67, 0x64, 0x00, 0x1F, 0xAC, 0xD9, 0x40, 0xB4, 0x3D, 0xEA, 0xB0, 0x11, 0x00, 0x00, 0x03,
        0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x64, 0x0F, 0x18, 0x31, 0x96,
    ];
    /// High 4:2:2 1920x1080 interlaced (field coding, cropped by 8 lines).
    const SPS_1920X1080_422_INTERLACED: &[u8] = &[
        0x67, 0x7A, 0x00, 0x28, 0xBC, 0xD9, 0x40, 0x78, 0x04, 0x4F, 0xCB, 0x80, 0x88, 0x00, 0x00,
        0x1F, 0x48, 0x00, 0x07, 0x53, 0x00, 0xF8, 0xB1, 0x6C, 0xB0,
    ];
    /// High 4:4:4 720x480 interlaced.
    const SPS_720X480_444_INTERLACED: &[u8] = &[
        0x67, 0xF4, 0x00, 0x1E, 0x91, 0x9B, 0x28, 0x16, 0x8F, 0x6C, 0x04, 0x40, 0x00, 0x00, 0xFA,
        0x40, 0x00, 0x3A, 0x98, 0x07, 0xC5, 0x0A, 0x65, 0x80,
    ];

    fn check(nal: &[u8], width: u32, height: u32, profile: &str, level: u8, fps: Option<f64>) {
        let sps = Sps::parse(nal).unwrap();
        assert_eq!(
            (
                sps.width,
                sps.height,
                sps.profile_name(),
                sps.level_idc,
                sps.fps()
            ),
            (width, height, profile, level, fps)
        );
    }

    #[test]
    fn x264_sps_give_the_size_profile_level_and_fps_ffprobe_reports() {
        check(
            SPS_640X360,
            640,
            360,
            "High 4:4:4 Predictive",
            30,
            Some(25.0),
        );
        check(
            SPS_1280X720_BASELINE,
            1280,
            720,
            "Constrained Baseline",
            31,
            Some(30.0),
        );
        check(SPS_718X478_CROPPED, 718, 478, "High", 31, Some(50.0));
        check(
            SPS_1920X1080_422_INTERLACED,
            1920,
            1080,
            "High 4:2:2",
            40,
            Some(30000.0 / 1001.0),
        );
        check(
            SPS_720X480_444_INTERLACED,
            720,
            480,
            "High 4:4:4 Predictive",
            30,
            Some(30000.0 / 1001.0),
        );
        assert!(
            !Sps::parse(SPS_720X480_444_INTERLACED)
                .unwrap()
                .frame_mbs_only
        );
    }

    #[test]
    fn a_configuration_record_round_trips() {
        let config = AvcConfig::from_parameter_sets(
            vec![Bytes::from_static(SPS_640X360)],
            vec![Bytes::from_static(PPS)],
        )
        .unwrap();
        let bytes = config.to_bytes();
        assert_eq!(&bytes[..6], &[1, 0xF4, 0x00, 0x1E, 0xFF, 0xE1]);
        let parsed = AvcConfig::parse(&bytes).unwrap();
        assert_eq!(parsed, config);
        assert_eq!(parsed.parse_sps().unwrap().width, 640);
    }

    #[test]
    fn truncated_or_wrong_input_is_an_error() {
        assert_eq!(AvcConfig::parse(&[]), Err(AvcError::TruncatedConfig));
        assert_eq!(AvcConfig::parse(&[0]), Err(AvcError::BadVersion(0)));
        assert_eq!(
            AvcConfig::parse(&[1, 0x64, 0, 0x1E, 0xFF, 0xE1, 0x00, 0x10, 0x67]),
            Err(AvcError::TruncatedConfig)
        );
        assert_eq!(Sps::parse(PPS), Err(AvcError::NotSps(8)));
        assert_eq!(Sps::parse(&SPS_640X360[..6]), Err(AvcError::TruncatedSps));
        for len in 0..SPS_640X360.len() {
            // Never a panic, whatever the cut.
            let _ = Sps::parse(&SPS_640X360[..len]);
        }
    }

    #[test]
    fn cropping_larger_than_the_picture_is_refused() {
        // Baseline, 1 MB wide/high, cropping flag with left offset 8 (ue 0001001).
        let mut r = Vec::new();
        // profile 66, flags, level 30, then bits:
        // sps_id ue0 '1', log2_max_frame_num ue0 '1', poc_type ue2 '011', lsb? no (type 2),
        // max_ref ue0 '1', gaps '0', w ue0 '1', h ue0 '1', frame_mbs_only '1', direct '1',
        // crop '1', left ue8 '0001001', right '1', top '1', bottom '1', vui '0'.
        r.extend_from_slice(&[0x67, 66, 0, 30]);
        let bits = "1101110111110001001111 0";
        let bits: String = bits.chars().filter(|c| !c.is_whitespace()).collect();
        let mut bytes = Vec::new();
        for chunk in bits.as_bytes().chunks(8) {
            let mut b = 0u8;
            for (i, c) in chunk.iter().enumerate() {
                if *c == b'1' {
                    b |= 0x80 >> i;
                }
            }
            bytes.push(b);
        }
        r.extend_from_slice(&bytes);
        assert_eq!(
            Sps::parse(&r),
            Err(AvcError::InvalidSps("frame_crop_left/right_offset"))
        );
    }
}
