//! Annex-B: the start-code byte-stream form of H.264/H.265 that MPEG-TS
//! carries, converted from the length-prefixed form FLV/RTMP carries.
//!
//! Owns: rewriting NAL length prefixes as start codes, putting an access
//! unit delimiter first, and inserting the parameter sets (SPS/PPS, and VPS
//! for HEVC) before IDR/IRAP pictures that lack them in band, as HLS
//! players need every segment to be decodable on its own.
//! Must not: parse NAL payloads, or allocate more than once per frame (the
//! output size is computed first, then written in one pass).

use bytes::{BufMut, Bytes, BytesMut};

use crate::avc::AvcConfig;
use crate::hevc::{self, HevcConfig};
use crate::VideoCodec;

const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// H.264 access unit delimiter, `primary_pic_type` 7 (any slice type).
const AUD_H264: [u8; 6] = [0, 0, 0, 1, 0x09, 0xF0];
/// H.265 access unit delimiter, `pic_type` 2 (any slice type).
const AUD_H265: [u8; 7] = [0, 0, 0, 1, 0x46, 0x01, 0x50];

/// What can go wrong converting a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnnexBError {
    /// A NAL unit's length prefix runs past the end of the frame.
    #[error("NAL unit at byte {offset} runs past the end of the frame")]
    Truncated {
        /// Where the length prefix starts.
        offset: usize,
    },
}

/// Per-NAL classification that depends on the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NalClass {
    Aud,
    ParameterSet,
    Irap,
    OtherVcl,
    Other,
}

fn classify(codec: VideoCodec, nal: &[u8]) -> NalClass {
    let Some(&b) = nal.first() else {
        return NalClass::Other;
    };
    match codec {
        VideoCodec::H264 => match b & 0x1F {
            9 => NalClass::Aud,
            7 | 8 => NalClass::ParameterSet,
            5 => NalClass::Irap,
            1..=4 => NalClass::OtherVcl,
            _ => NalClass::Other,
        },
        VideoCodec::H265 => match (b >> 1) & 0x3F {
            35 => NalClass::Aud,
            hevc::NAL_VPS | hevc::NAL_SPS | hevc::NAL_PPS => NalClass::ParameterSet,
            16..=23 => NalClass::Irap,
            0..=15 => NalClass::OtherVcl,
            _ => NalClass::Other,
        },
    }
}

/// Converts one codec's length-prefixed frames to Annex-B access units.
///
/// Built from the stream's decoder configuration; rebuild it when a new
/// sequence header arrives.
#[derive(Debug, Clone)]
pub struct AnnexBConverter {
    codec: VideoCodec,
    nal_length_size: usize,
    /// The parameter sets with start codes, ready to copy.
    parameter_sets: Bytes,
}

impl AnnexBConverter {
    /// A converter for H.264 with the SPS/PPS of `config`.
    pub fn from_avc(config: &AvcConfig) -> Self {
        Self::new(
            VideoCodec::H264,
            config.nal_length_size,
            config.sps.iter().chain(&config.pps).collect(),
        )
    }

    /// A converter for H.265 with the VPS/SPS/PPS of `config`.
    pub fn from_hevc(config: &HevcConfig) -> Self {
        let sets = [hevc::NAL_VPS, hevc::NAL_SPS, hevc::NAL_PPS];
        Self::new(
            VideoCodec::H265,
            config.nal_length_size,
            sets.iter().flat_map(|t| config.units_of_type(*t)).collect(),
        )
    }

    fn new(codec: VideoCodec, nal_length_size: u8, sets: Vec<&Bytes>) -> Self {
        let len: usize = sets.iter().map(|s| START_CODE.len() + s.len()).sum();
        let mut parameter_sets = BytesMut::with_capacity(len);
        for s in sets {
            parameter_sets.put_slice(&START_CODE);
            parameter_sets.put_slice(s);
        }
        Self {
            codec,
            nal_length_size: usize::from(nal_length_size.clamp(1, 4)),
            parameter_sets: parameter_sets.freeze(),
        }
    }

    /// The parameter sets inserted before IDR/IRAP pictures, with start codes.
    pub fn parameter_sets(&self) -> &[u8] {
        &self.parameter_sets
    }

    /// The codec this converter was built for.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Appends the Annex-B access unit for one length-prefixed frame to
    /// `out`: an AUD, then the frame's NAL units with 4-byte start codes,
    /// with the parameter sets before the first IDR/IRAP NAL unit (or the
    /// first picture of a frame flagged `keyframe`) unless the frame
    /// carries its own. Existing AUDs and empty NAL units are dropped.
    ///
    /// On error nothing is appended.
    pub fn convert(
        &self,
        frame: &[u8],
        keyframe: bool,
        out: &mut BytesMut,
    ) -> Result<(), AnnexBError> {
        let aud: &[u8] = match self.codec {
            VideoCodec::H264 => &AUD_H264,
            VideoCodec::H265 => &AUD_H265,
        };
        // First pass: validate, size the output, find where to insert.
        let mut size = aud.len();
        let mut in_band_sets = false;
        let mut first_irap = None;
        let mut first_vcl = None;
        for (i, nal) in self.nal_units(frame).enumerate() {
            let nal = nal?;
            match classify(self.codec, nal) {
                NalClass::Aud => continue,
                NalClass::ParameterSet => in_band_sets = true,
                NalClass::Irap => {
                    first_irap.get_or_insert(i);
                    first_vcl.get_or_insert(i);
                }
                NalClass::OtherVcl => {
                    first_vcl.get_or_insert(i);
                }
                NalClass::Other => {}
            }
            if !nal.is_empty() {
                size += START_CODE.len() + nal.len();
            }
        }
        let insert_at = if in_band_sets {
            None
        } else if first_irap.is_some() {
            first_irap
        } else if keyframe {
            first_vcl
        } else {
            None
        };
        if insert_at.is_some() {
            size += self.parameter_sets.len();
        }
        // Second pass: write. Errors were all found above.
        out.reserve(size);
        out.put_slice(aud);
        for (i, nal) in self.nal_units(frame).enumerate() {
            let Ok(nal) = nal else { break };
            if Some(i) == insert_at {
                out.put_slice(&self.parameter_sets);
            }
            if nal.is_empty() || classify(self.codec, nal) == NalClass::Aud {
                continue;
            }
            out.put_slice(&START_CODE);
            out.put_slice(nal);
        }
        Ok(())
    }

    /// The NAL units of a length-prefixed frame.
    fn nal_units<'a>(&self, frame: &'a [u8]) -> LengthPrefixed<'a> {
        LengthPrefixed {
            data: frame,
            pos: 0,
            length_size: self.nal_length_size,
        }
    }
}

/// Iterates the NAL units of a length-prefixed frame; ends after an error.
struct LengthPrefixed<'a> {
    data: &'a [u8],
    pos: usize,
    length_size: usize,
}

impl<'a> Iterator for LengthPrefixed<'a> {
    type Item = Result<&'a [u8], AnnexBError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let offset = self.pos;
        let fail = |s: &mut Self| {
            s.pos = s.data.len();
            Some(Err(AnnexBError::Truncated { offset }))
        };
        let Some(prefix) = self.data.get(offset..offset + self.length_size) else {
            return fail(self);
        };
        let len = prefix
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let start = offset + self.length_size;
        let Some(nal) = start
            .checked_add(len)
            .and_then(|end| self.data.get(start..end))
        else {
            return fail(self);
        };
        self.pos = start + len;
        Some(Ok(nal))
    }
}

/// FLV's video codec ids.
const FLV_CODEC_AVC: u8 = 7;
const FLV_CODEC_HEVC: u8 = 12;

/// What became of one access unit given to [`FlvVideoWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoUnit {
    /// A frame was written (after a new sequence header, if it changed).
    Written,
    /// Only parameter sets, or nothing: no frame.
    Empty,
    /// Pictures before any SPS/PPS were seen: dropped, no player could
    /// decode them.
    Undecodable,
}

/// Annex-B access units (MPEG-TS, RTP depacketizers) to FLV video tag
/// bodies: in-band parameter sets become an AVC/HEVC sequence header
/// whenever they change, the pictures a length-prefixed frame.
#[derive(Debug, Clone, Default)]
pub struct FlvVideoWriter {
    /// The decoder configuration last written.
    config: Option<Bytes>,
}

impl FlvVideoWriter {
    /// Whether a sequence header has been written.
    pub fn configured(&self) -> bool {
        self.config.is_some()
    }

    /// Writes the FLV bodies for one access unit (`hevc`: H.265, else
    /// H.264) with decode time `timestamp` (ms) and composition offset
    /// `cts` (ms) to `emit`: a sequence header first when the unit's
    /// parameter sets are new, then the frame. AUDs and end-of-sequence
    /// units are left out.
    pub fn access_unit(
        &mut self,
        data: &[u8],
        hevc: bool,
        timestamp: u32,
        cts: i32,
        mut emit: impl FnMut(crate::ts_demux::FlvFrame),
    ) -> VideoUnit {
        use crate::flv::TagKind;
        use crate::ts_demux::FlvFrame;
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        let mut nals = Vec::new();
        let mut key = false;
        for nal in split_annexb(data) {
            let Some(&first) = nal.first() else {
                continue;
            };
            if hevc {
                match (first >> 1) & 0x3F {
                    32 => vps.push(Bytes::copy_from_slice(nal)),
                    33 => sps.push(Bytes::copy_from_slice(nal)),
                    34 => pps.push(Bytes::copy_from_slice(nal)),
                    // Access unit delimiters, end of sequence/bitstream.
                    35..=37 => {}
                    t => {
                        key |= (16..=23).contains(&t);
                        nals.push(nal);
                    }
                }
            } else {
                match first & 0x1F {
                    7 => sps.push(Bytes::copy_from_slice(nal)),
                    8 => pps.push(Bytes::copy_from_slice(nal)),
                    9..=11 => {}
                    t => {
                        key |= t == 5;
                        nals.push(nal);
                    }
                }
            }
        }
        let codec = if hevc { FLV_CODEC_HEVC } else { FLV_CODEC_AVC };
        if !sps.is_empty() && !pps.is_empty() {
            let config = if hevc {
                HevcConfig::from_parameter_sets(vps, sps, pps)
                    .ok()
                    .map(|c| c.to_bytes())
            } else {
                AvcConfig::from_parameter_sets(sps, pps)
                    .ok()
                    .map(|c| c.to_bytes())
            };
            if let Some(config) = config.filter(|c| self.config.as_ref() != Some(c)) {
                let mut body = BytesMut::with_capacity(5 + config.len());
                body.put_slice(&[0x10 | codec, 0, 0, 0, 0]);
                body.put_slice(&config);
                emit(FlvFrame {
                    kind: TagKind::Video,
                    timestamp,
                    body: body.freeze(),
                });
                self.config = Some(config);
            }
        }
        if nals.is_empty() {
            return VideoUnit::Empty;
        }
        if self.config.is_none() {
            return VideoUnit::Undecodable;
        }
        let cts = cts.clamp(-(1 << 23), (1 << 23) - 1);
        let size: usize = nals.iter().map(|n| 4 + n.len()).sum();
        let mut body = BytesMut::with_capacity(5 + size);
        let frame_type = if key { 0x10 } else { 0x20 };
        body.put_u8(frame_type | codec);
        body.put_u8(1);
        body.put_slice(&cts.to_be_bytes()[1..]);
        for nal in nals {
            body.put_u32(nal.len() as u32);
            body.put_slice(nal);
        }
        emit(FlvFrame {
            kind: TagKind::Video,
            timestamp,
            body: body.freeze(),
        });
        VideoUnit::Written
    }
}

/// The NAL units of an Annex-B byte stream (split at 3- and 4-byte start
/// codes; leading zero bytes and empty units are skipped).
pub fn split_annexb(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || loop {
        let start = find_start_code(rest)?;
        let body = &rest[start..];
        let end = find_start_code(body).map_or(body.len(), |next| {
            // Back up over the start code and the zeros before it.
            let mut e = next - 3;
            while e > 0 && body[e - 1] == 0 {
                e -= 1;
            }
            e
        });
        rest = &body[end..];
        if end > 0 {
            return Some(&body[..end]);
        }
        if rest.is_empty() {
            return None;
        }
    })
}

/// The index just past the first `00 00 01` in `data`.
fn find_start_code(data: &[u8]) -> Option<usize> {
    data.windows(3).position(|w| w == [0, 0, 1]).map(|p| p + 3)
}

/// Appends the NAL units of an Annex-B access unit to `out` with 4-byte
/// length prefixes: the form FLV/RTMP and MP4 carry.
pub fn to_length_prefixed(annexb: &[u8], out: &mut BytesMut) {
    out.reserve(annexb.len() + 16);
    for nal in split_annexb(annexb) {
        // A NAL unit inside a slice longer than 4 GiB cannot exist in memory
        // that fits a u32-addressed frame; saturate defensively.
        out.put_u32(u32::try_from(nal.len()).unwrap_or(u32::MAX));
        out.put_slice(nal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avc::tests::{PPS, SPS_640X360};

    fn avc() -> AnnexBConverter {
        let config = AvcConfig::from_parameter_sets(
            vec![Bytes::from_static(SPS_640X360)],
            vec![Bytes::from_static(PPS)],
        )
        .unwrap();
        AnnexBConverter::from_avc(&config)
    }

    fn frame(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nals {
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(n);
        }
        out
    }

    fn check(conv: &AnnexBConverter, input: &[u8], keyframe: bool, want: &[&[u8]]) {
        let mut out = BytesMut::new();
        conv.convert(input, keyframe, &mut out).unwrap();
        // The output was sized exactly, in one allocation.
        assert_eq!(out.len(), out.capacity());
        let want: Vec<u8> = want.iter().flat_map(|n| n.iter().copied()).collect();
        assert_eq!(&out[..], &want[..]);
    }

    #[test]
    fn an_idr_frame_gets_an_aud_and_the_parameter_sets_after_its_sei() {
        let sei: &[u8] = &[0x06, 0x05, 0x01];
        let idr: &[u8] = &[0x65, 0x88, 0x84];
        check(
            &avc(),
            &frame(&[sei, idr]),
            true,
            &[
                &AUD_H264,
                &START_CODE,
                sei,
                &START_CODE,
                SPS_640X360,
                &START_CODE,
                PPS,
                &START_CODE,
                idr,
            ],
        );
    }

    #[test]
    fn an_inter_frame_gets_only_an_aud() {
        let p: &[u8] = &[0x41, 0x9A];
        check(&avc(), &frame(&[p]), false, &[&AUD_H264, &START_CODE, p]);
    }

    #[test]
    fn in_band_parameter_sets_and_existing_auds_are_not_duplicated() {
        let sps: &[u8] = &[0x67, 1];
        let idr: &[u8] = &[0x65, 2];
        check(
            &avc(),
            &frame(&[&[0x09, 0xF0], sps, idr, &[]]),
            true,
            &[&AUD_H264, &START_CODE, sps, &START_CODE, idr],
        );
    }

    #[test]
    fn a_keyframe_without_idr_gets_the_parameter_sets_before_its_first_slice() {
        let i_slice: &[u8] = &[0x41, 7];
        check(
            &avc(),
            &frame(&[i_slice]),
            true,
            &[
                &AUD_H264,
                &START_CODE,
                SPS_640X360,
                &START_CODE,
                PPS,
                &START_CODE,
                i_slice,
            ],
        );
    }

    #[test]
    fn short_length_prefixes_are_supported() {
        let mut config = AvcConfig::parse(&avc_record()).unwrap();
        config.nal_length_size = 2;
        let conv = AnnexBConverter::from_avc(&config);
        check(
            &conv,
            &[0, 2, 0x41, 1, 0, 1, 0x41],
            false,
            &[&AUD_H264, &START_CODE, &[0x41, 1], &START_CODE, &[0x41]],
        );
    }

    fn avc_record() -> Bytes {
        AvcConfig::from_parameter_sets(vec![Bytes::from_static(SPS_640X360)], vec![])
            .unwrap()
            .to_bytes()
    }

    #[test]
    fn a_truncated_frame_is_an_error_and_writes_nothing() {
        let mut out = BytesMut::new();
        let input = [0, 0, 0, 2, 0x41, 1, 0, 0, 0, 9, 0x41];
        assert_eq!(
            avc().convert(&input, false, &mut out),
            Err(AnnexBError::Truncated { offset: 6 })
        );
        assert!(out.is_empty());
        assert_eq!(
            avc().convert(&[0, 0], false, &mut out),
            Err(AnnexBError::Truncated { offset: 0 })
        );
    }

    #[test]
    fn hevc_irap_frames_get_vps_sps_pps() {
        use crate::hevc::tests::{hex, PPS_1080, SPS_1080, VPS_1080};
        let config = HevcConfig::from_parameter_sets(
            vec![hex(VPS_1080)],
            vec![hex(SPS_1080)],
            vec![hex(PPS_1080)],
        )
        .unwrap();
        let conv = AnnexBConverter::from_hevc(&config);
        let idr: &[u8] = &[0x26, 0x01, 0xAF]; // IDR_W_RADL
        check(
            &conv,
            &frame(&[idr]),
            true,
            &[
                &AUD_H265,
                &START_CODE,
                &hex(VPS_1080),
                &START_CODE,
                &hex(SPS_1080),
                &START_CODE,
                &hex(PPS_1080),
                &START_CODE,
                idr,
            ],
        );
    }

    #[test]
    fn annexb_streams_split_at_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 0, 0, 1, 0x65, 0, 3,
        ];
        let nals: Vec<&[u8]> = split_annexb(&data).collect();
        assert_eq!(nals, vec![&[0x67, 1][..], &[0x68, 2], &[0x65, 0, 3]]);
        assert_eq!(split_annexb(&[0, 0, 1]).count(), 0);
        assert_eq!(split_annexb(&[1, 2, 3]).count(), 0);
        let mut out = BytesMut::new();
        to_length_prefixed(&data, &mut out);
        assert_eq!(&out[..6], &[0, 0, 0, 2, 0x67, 1]);
        assert_eq!(out.len(), 3 * 4 + 2 + 2 + 3);
    }
}
