//! An MPEG-TS muxer for HLS: PAT, PMT, PES packetisation with PTS/DTS and
//! PCR, one video and one audio elementary stream.
//!
//! Owns: the 188-byte packet layout, continuity counters, adaptation fields
//! (PCR, `random_access_indicator`, stuffing), PSI sections and their CRC.
//! Must not: parse or convert codec data (callers give Annex-B video and
//! ADTS audio), decide segment boundaries (that is [`crate::hls`]), or
//! allocate more than once per call (output size is computed first).
//!
//! Timestamps are milliseconds; the muxer writes them at 90 kHz shifted by
//! [`TIMESTAMP_OFFSET_MS`], so that the PCR, which follows the decode time
//! unshifted, runs that far ahead of the data as a decoder buffer expects.

use bytes::{BufMut, BytesMut};

use crate::VideoCodec;

/// Bytes in a transport stream packet.
pub const PACKET_LEN: usize = 188;
/// The PID of the program map table.
pub const PID_PMT: u16 = 0x1000;
/// The PID of the video elementary stream.
pub const PID_VIDEO: u16 = 0x100;
/// The PID of the audio elementary stream.
pub const PID_AUDIO: u16 = 0x101;
/// The delay added to every PTS/DTS relative to the PCR, in milliseconds.
pub const TIMESTAMP_OFFSET_MS: u64 = 700;
/// PMT `stream_type` for H.264.
pub const STREAM_TYPE_H264: u8 = 0x1B;
/// PMT `stream_type` for H.265.
pub const STREAM_TYPE_H265: u8 = 0x24;
/// PMT `stream_type` for AAC in ADTS.
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;

const PAYLOAD_LEN: usize = PACKET_LEN - 4;
const PTS_MASK: u64 = (1 << 33) - 1;
const PID_NULL: u16 = 0x1FFF;

/// What can go wrong muxing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TsError {
    /// A frame was written for a track the muxer was created without.
    #[error("the muxer has no {0} track")]
    NoSuchTrack(&'static str),
}

/// One elementary stream's state.
#[derive(Debug, Clone)]
struct Track {
    pid: u16,
    stream_id: u8,
    cc: u8,
}

/// An MPEG-TS muxer for one program with optional video and audio.
///
/// Call [`write_tables`](Self::write_tables) at the start of every segment,
/// then write frames in decode order. Continuity counters carry on across
/// segments, so concatenated segments form a valid stream.
#[derive(Debug, Clone)]
pub struct TsMuxer {
    video: Option<Track>,
    audio: Option<Track>,
    video_codec: VideoCodec,
    pat_cc: u8,
    pmt_cc: u8,
}

impl TsMuxer {
    /// A muxer for the given tracks. `video_codec` is ignored without video.
    pub fn new(has_video: bool, has_audio: bool, video_codec: VideoCodec) -> Self {
        Self {
            video: has_video.then_some(Track {
                pid: PID_VIDEO,
                stream_id: 0xE0,
                cc: 0,
            }),
            audio: has_audio.then_some(Track {
                pid: PID_AUDIO,
                stream_id: 0xC0,
                cc: 0,
            }),
            video_codec,
            pat_cc: 0,
            pmt_cc: 0,
        }
    }

    /// Whether the muxer has a video track.
    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    /// Whether the muxer has an audio track.
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// The video codec declared in the PMT.
    pub fn video_codec(&self) -> VideoCodec {
        self.video_codec
    }

    /// The PID that carries the PCR: video if present, else audio.
    fn pcr_pid(&self) -> u16 {
        self.video
            .as_ref()
            .or(self.audio.as_ref())
            .map_or(PID_NULL, |t| t.pid)
    }

    /// Appends a PAT and a PMT (two packets).
    pub fn write_tables(&mut self, out: &mut BytesMut) {
        out.reserve(2 * PACKET_LEN);
        let pmt_hi = 0xE0 | (PID_PMT >> 8) as u8;
        let pat = [
            0x00,
            0xB0,
            13,
            0x00,
            0x01,
            0xC1,
            0x00,
            0x00,
            0x00,
            0x01,
            pmt_hi,
            PID_PMT as u8,
        ];
        write_section(out, 0, &mut self.pat_cc, &pat);

        let mut pmt = [0u8; 12 + 2 * 5];
        let mut streams = Vec::with_capacity(2);
        if let Some(v) = &self.video {
            let stream_type = match self.video_codec {
                VideoCodec::H264 => STREAM_TYPE_H264,
                VideoCodec::H265 => STREAM_TYPE_H265,
            };
            streams.push((stream_type, v.pid));
        }
        if let Some(a) = &self.audio {
            streams.push((STREAM_TYPE_AAC_ADTS, a.pid));
        }
        let pcr = self.pcr_pid();
        let len = 12 + 5 * streams.len();
        // section_length: everything after it, CRC included.
        let section_len = (len - 3 + 4) as u8;
        pmt[..12].copy_from_slice(&[
            0x02,
            0xB0,
            section_len,
            0x00,
            0x01,
            0xC1,
            0x00,
            0x00,
            0xE0 | (pcr >> 8) as u8,
            pcr as u8,
            0xF0,
            0x00,
        ]);
        for (i, (stream_type, pid)) in streams.iter().enumerate() {
            let at = 12 + 5 * i;
            pmt[at..at + 5].copy_from_slice(&[
                *stream_type,
                0xE0 | (pid >> 8) as u8,
                *pid as u8,
                0xF0,
                0x00,
            ]);
        }
        write_section(out, PID_PMT, &mut self.pmt_cc, &pmt[..len]);
    }

    /// Appends one video access unit (Annex-B, AUD first) as a PES packet.
    /// Keyframes get `random_access_indicator`; every video PES carries a PCR.
    pub fn write_video(
        &mut self,
        pts_ms: u64,
        dts_ms: u64,
        keyframe: bool,
        annexb: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), TsError> {
        let pcr = self.pcr_pid();
        let track = self.video.as_mut().ok_or(TsError::NoSuchTrack("video"))?;
        let pcr = (pcr == track.pid).then_some(dts_ms);
        let pes = Pes {
            pts_ms,
            dts_ms,
            random_access: keyframe,
            pcr_ms: pcr,
            bounded_length: false,
            parts: &[annexb],
        };
        pes.write(track, out);
        Ok(())
    }

    /// Appends one or more ADTS frames as a PES packet.
    pub fn write_audio(
        &mut self,
        pts_ms: u64,
        adts_frame: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), TsError> {
        self.write_audio_parts(pts_ms, &[adts_frame], out)
    }

    /// Like [`write_audio`](Self::write_audio) with the ADTS data given in
    /// pieces (typically the 7-byte header and the raw frame), which saves
    /// joining them first.
    pub fn write_audio_parts(
        &mut self,
        pts_ms: u64,
        parts: &[&[u8]],
        out: &mut BytesMut,
    ) -> Result<(), TsError> {
        let pcr = self.pcr_pid();
        let track = self.audio.as_mut().ok_or(TsError::NoSuchTrack("audio"))?;
        // Without video every audio frame is a random access point and
        // carries the clock.
        let audio_only = pcr == track.pid;
        let pcr = audio_only.then_some(pts_ms);
        let pes = Pes {
            pts_ms,
            dts_ms: pts_ms,
            random_access: audio_only,
            pcr_ms: pcr,
            bounded_length: true,
            parts,
        };
        pes.write(track, out);
        Ok(())
    }
}

/// A timestamp in 90 kHz units, shifted and wrapped to 33 bits.
fn ts90(ms: u64) -> u64 {
    ms.wrapping_add(TIMESTAMP_OFFSET_MS).wrapping_mul(90) & PTS_MASK
}

/// Writes a PTS or DTS field with its 4-bit prefix.
fn put_timestamp(out: &mut BytesMut, prefix: u8, t: u64) {
    out.put_u8((prefix << 4) | (((t >> 30) as u8 & 0x07) << 1) | 1);
    out.put_u16((((t >> 15) & 0x7FFF) as u16) << 1 | 1);
    out.put_u16(((t & 0x7FFF) as u16) << 1 | 1);
}

/// One PES packet to write.
struct Pes<'a> {
    pts_ms: u64,
    dts_ms: u64,
    /// Set `random_access_indicator` on the first packet.
    random_access: bool,
    /// Put this PCR on the first packet.
    pcr_ms: Option<u64>,
    /// Write the real `PES_packet_length` (audio) rather than 0 (video).
    bounded_length: bool,
    /// The elementary stream data, in pieces.
    parts: &'a [&'a [u8]],
}

impl Pes<'_> {
    /// Appends the PES packet split into TS packets.
    fn write(&self, track: &mut Track, out: &mut BytesMut) {
        let Self {
            pts_ms,
            dts_ms,
            random_access,
            pcr_ms,
            bounded_length,
            parts,
        } = *self;
        let data_len: usize = parts.iter().map(|p| p.len()).sum();
        let pts = ts90(pts_ms);
        let dts = ts90(dts_ms);
        let with_dts = pts != dts;
        let header_data_len = if with_dts { 10 } else { 5 };
        let pes_header_len = 9 + header_data_len;
        let total = pes_header_len + data_len;

        // The first packet's adaptation field: length, flags, optional PCR.
        let first_af = match (random_access, pcr_ms.is_some()) {
            (_, true) => 8,
            (true, false) => 2,
            (false, false) => 0,
        };
        let first_room = PAYLOAD_LEN - first_af;
        let packets = 1 + total.saturating_sub(first_room).div_ceil(PAYLOAD_LEN);
        out.reserve(packets * PACKET_LEN);

        let mut src = Chunks {
            parts,
            index: 0,
            offset: 0,
        };
        let mut remaining = total;
        let mut first = true;
        while first || remaining > 0 {
            let af = if first { first_af } else { 0 };
            let room = PAYLOAD_LEN - af;
            let payload = remaining.min(room);
            let stuffing = room - payload;
            let af_total = af + stuffing;
            let pid_hi = (track.pid >> 8) as u8 & 0x1F;
            out.put_u8(0x47);
            out.put_u8(if first { 0x40 } else { 0 } | pid_hi);
            out.put_u8(track.pid as u8);
            out.put_u8(if af_total > 0 { 0x30 } else { 0x10 } | track.cc);
            track.cc = (track.cc + 1) & 0x0F;
            if af_total > 0 {
                // af_total <= 184, the length excludes its own byte.
                out.put_u8((af_total - 1) as u8);
                if af_total > 1 {
                    let mut flags = 0;
                    if first && random_access {
                        flags |= 0x40;
                    }
                    let pcr = if first { pcr_ms } else { None };
                    if pcr.is_some() {
                        flags |= 0x10;
                    }
                    out.put_u8(flags);
                    let mut used = 2;
                    if let Some(ms) = pcr {
                        let base = ms.wrapping_mul(90) & PTS_MASK;
                        out.put_u32((base >> 1) as u32);
                        out.put_u8((((base & 1) as u8) << 7) | 0x7E);
                        out.put_u8(0);
                        used += 6;
                    }
                    out.put_bytes(0xFF, af_total - used);
                }
            }
            let mut payload_left = payload;
            if first {
                let packet_len = if bounded_length {
                    u16::try_from(total - 6).unwrap_or(0)
                } else {
                    0
                };
                out.put_slice(&[0, 0, 1, track.stream_id]);
                out.put_u16(packet_len);
                // '10', data_alignment_indicator: every PES starts an access unit.
                out.put_u8(0x84);
                out.put_u8(if with_dts { 0xC0 } else { 0x80 });
                out.put_u8(header_data_len as u8);
                put_timestamp(out, if with_dts { 0x3 } else { 0x2 }, pts);
                if with_dts {
                    put_timestamp(out, 0x1, dts);
                }
                payload_left -= pes_header_len;
            }
            src.copy_to(out, payload_left);
            remaining -= payload;
            first = false;
        }
    }
}

/// A cursor over a list of byte slices read as one.
struct Chunks<'a> {
    parts: &'a [&'a [u8]],
    index: usize,
    offset: usize,
}

impl Chunks<'_> {
    fn copy_to(&mut self, out: &mut BytesMut, mut n: usize) {
        while n > 0 {
            let Some(part) = self.parts.get(self.index) else {
                return;
            };
            let take = n.min(part.len() - self.offset);
            out.put_slice(&part[self.offset..self.offset + take]);
            self.offset += take;
            n -= take;
            if self.offset == part.len() {
                self.index += 1;
                self.offset = 0;
            }
        }
    }
}

/// Appends a PSI section (without CRC) as one packet: pointer field,
/// section, CRC-32, 0xFF filling.
fn write_section(out: &mut BytesMut, pid: u16, cc: &mut u8, section: &[u8]) {
    out.put_u8(0x47);
    out.put_u8(0x40 | (pid >> 8) as u8 & 0x1F);
    out.put_u8(pid as u8);
    out.put_u8(0x10 | *cc);
    *cc = (*cc + 1) & 0x0F;
    out.put_u8(0); // pointer_field
    out.put_slice(section);
    out.put_u32(crc32_mpeg2(section));
    out.put_bytes(0xFF, PAYLOAD_LEN - 1 - section.len() - 4);
}

/// CRC-32/MPEG-2: polynomial 0x04C11DB7, initial value all ones, no
/// reflection, no final XOR.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits output into packets and checks the invariants every packet
    /// must keep.
    fn packets(out: &[u8]) -> Vec<&[u8]> {
        assert_eq!(out.len() % PACKET_LEN, 0);
        let packets: Vec<&[u8]> = out.chunks(PACKET_LEN).collect();
        for p in &packets {
            assert_eq!(p[0], 0x47);
            if p[3] & 0x20 != 0 {
                assert!(usize::from(p[4]) <= 183);
            }
        }
        packets
    }

    fn pid(p: &[u8]) -> u16 {
        (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2])
    }

    /// The payload of a packet after any adaptation field.
    fn payload(p: &[u8]) -> &[u8] {
        if p[3] & 0x20 != 0 {
            &p[5 + usize::from(p[4])..]
        } else {
            &p[4..]
        }
    }

    fn read_ts(b: &[u8]) -> u64 {
        (u64::from(b[0] >> 1) & 0x07) << 30
            | u64::from(u16::from_be_bytes([b[1], b[2]]) >> 1) << 15
            | u64::from(u16::from_be_bytes([b[3], b[4]]) >> 1)
    }

    #[test]
    fn the_crc_matches_the_mpeg2_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn the_tables_are_a_pat_and_a_pmt_with_both_streams() {
        let mut m = TsMuxer::new(true, true, VideoCodec::H264);
        let mut out = BytesMut::new();
        m.write_tables(&mut out);
        let p = packets(&out);
        assert_eq!(p.len(), 2);
        assert_eq!((pid(p[0]), pid(p[1])), (0, PID_PMT));
        // The PAT points at the PMT.
        assert_eq!(
            &p[0][5..17],
            &[0, 0xB0, 13, 0, 1, 0xC1, 0, 0, 0, 1, 0xF0, 0x00]
        );
        // The PMT: PCR on video, H.264 then AAC.
        let pmt = &p[1][5..];
        assert_eq!(&pmt[8..10], &[0xE1, 0x00]);
        assert_eq!(
            &pmt[12..22],
            &[0x1B, 0xE1, 0x00, 0xF0, 0, 0x0F, 0xE1, 0x01, 0xF0, 0]
        );
        // The CRC over the section including itself leaves zero.
        let len = 3 + usize::from(pmt[2]);
        assert_eq!(crc32_mpeg2(&pmt[..len]), 0);
        // Counters advance per write.
        out.clear();
        m.write_tables(&mut out);
        assert_eq!(out[3] & 0x0F, 1);
    }

    #[test]
    fn an_audio_only_pmt_puts_the_pcr_on_audio() {
        let mut m = TsMuxer::new(false, true, VideoCodec::H264);
        let mut out = BytesMut::new();
        m.write_tables(&mut out);
        let pmt = &out[PACKET_LEN + 5..];
        assert_eq!(&pmt[8..10], &[0xE1, 0x01]);
        assert_eq!(pmt[12], STREAM_TYPE_AAC_ADTS);
        assert_eq!(pmt[2], 13 + 5);
    }

    #[test]
    fn a_keyframe_pes_has_pcr_random_access_pts_dts_and_stuffing() {
        let mut m = TsMuxer::new(true, true, VideoCodec::H265);
        let mut out = BytesMut::new();
        let data: Vec<u8> = (0..500u32).map(|i| i as u8).collect();
        m.write_video(1040, 1000, true, &data, &mut out).unwrap();
        let p = packets(&out);
        // 19-byte PES header + 500 bytes, 176 bytes in the first packet.
        assert_eq!(p.len(), 3);
        assert_eq!(out.len(), out.capacity());
        let first = p[0];
        assert_eq!(first[1] & 0x40, 0x40);
        assert_eq!(first[5] & 0x50, 0x50); // random access + PCR
        let pcr_base = u64::from(u32::from_be_bytes([first[6], first[7], first[8], first[9]])) << 1;
        assert_eq!(pcr_base, 1000 * 90);
        let pes = payload(first);
        assert_eq!(&pes[..4], &[0, 0, 1, 0xE0]);
        assert_eq!(pes[7], 0xC0);
        assert_eq!(read_ts(&pes[9..]), (1040 + TIMESTAMP_OFFSET_MS) * 90);
        assert_eq!(read_ts(&pes[14..]), (1000 + TIMESTAMP_OFFSET_MS) * 90);
        // Continuity counters count up; the payload comes back whole.
        let mut all = Vec::new();
        for (i, pk) in p.iter().enumerate() {
            assert_eq!(usize::from(pk[3] & 0x0F), i);
            all.extend_from_slice(payload(pk));
        }
        assert_eq!(&all[19..], &data[..]);
    }

    #[test]
    fn payloads_of_every_size_fill_whole_packets() {
        for len in [
            0usize, 1, 156, 157, 158, 165, 166, 167, 183, 184, 350, 351, 352, 1000,
        ] {
            let mut m = TsMuxer::new(true, true, VideoCodec::H264);
            let mut out = BytesMut::new();
            let data = vec![0xAB; len];
            m.write_video(0, 0, false, &data, &mut out).unwrap();
            m.write_audio_parts(0, &[&data[..len / 2], &data[len / 2..]], &mut out)
                .unwrap();
            let p = packets(&out);
            let mut video = Vec::new();
            let mut audio = Vec::new();
            for pk in p {
                if pid(pk) == PID_VIDEO {
                    video.extend_from_slice(payload(pk));
                } else {
                    audio.extend_from_slice(payload(pk));
                }
            }
            assert_eq!(&video[14..], &data[..], "video {len}");
            assert_eq!(&audio[14..], &data[..], "audio {len}");
            // The audio PES is bounded: its length covers the rest.
            assert_eq!(
                usize::from(u16::from_be_bytes([audio[4], audio[5]])),
                8 + len
            );
        }
    }

    #[test]
    fn writing_to_a_missing_track_is_an_error() {
        let mut m = TsMuxer::new(false, true, VideoCodec::H264);
        let mut out = BytesMut::new();
        assert_eq!(
            m.write_video(0, 0, true, b"x", &mut out),
            Err(TsError::NoSuchTrack("video"))
        );
        let mut m = TsMuxer::new(true, false, VideoCodec::H264);
        assert_eq!(
            m.write_audio(0, b"x", &mut out),
            Err(TsError::NoSuchTrack("audio"))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn timestamps_wrap_at_33_bits() {
        let wrap_ms = (1u64 << 33) / 90 + 1;
        assert!(ts90(wrap_ms) < 90 * 1000);
    }
}
