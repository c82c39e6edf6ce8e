//! An MPEG-TS demuxer for contribution feeds (SRT ingest): transport
//! packets in, FLV tag bodies out, ready for the same hub an RTMP push
//! feeds.
//!
//! Owns: packet sync, the PAT and PMT (the first program, its first H.264
//! or H.265 and its first ADTS AAC stream), PES reassembly with PTS/DTS,
//! 33-bit timestamp unwrapping, and the conversion of access units to FLV
//! bodies: Annex-B video to length-prefixed NAL units with sequence headers
//! built from the in-band parameter sets, ADTS frames to raw AAC with an
//! `AudioSpecificConfig` sequence header. Must not: do I/O, panic on any
//! input, or hold more than [`MAX_PES_LEN`] bytes per stream (the feed is
//! read before anything proves who sends it).
//!
//! Lost or reordered transport packets (a continuity counter that skips)
//! drop the PES they fall in rather than hand a decoder a damaged frame.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::annexb::{FlvVideoWriter, VideoUnit};
use crate::flv::TagKind;
use crate::ts::{PACKET_LEN, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264, STREAM_TYPE_H265};

/// How much of the feed's start is held back waiting for the
/// configuration of every stream the PMT announced (encoders put audio a
/// few hundred milliseconds behind video in the multiplex).
pub const START_HOLD_MS: u32 = 1500;
/// The most frames held back at the start, whatever their timestamps.
const START_HOLD_FRAMES: usize = 512;
/// The largest PES (one access unit) kept; a larger one is dropped.
pub const MAX_PES_LEN: usize = 8 << 20;
const SYNC: u8 = 0x47;
const PID_PAT: u16 = 0;
const TS_WRAP: i64 = 1 << 33;
/// 90 kHz ticks per millisecond.
const TICKS_PER_MS: i64 = 90;
/// FLV's legacy codec id for H.265 (the widespread extension Tencent's
/// CDN and most Chinese players use).
/// AAC, 44 kHz, 16-bit, stereo: the fixed header byte every AAC FLV tag
/// carries (the real parameters are in the sequence header).
const FLV_AAC: u8 = 0xAF;

/// One elementary stream's codec, from its PMT `stream_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EsCodec {
    /// H.264 in Annex-B.
    H264,
    /// H.265 in Annex-B.
    H265,
    /// AAC in ADTS frames.
    Aac,
}

/// One tag for the hub: its kind, its timestamp in milliseconds from the
/// feed's first timestamp, and its FLV body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvFrame {
    /// Audio or video.
    pub kind: TagKind,
    /// Decode time in milliseconds.
    pub timestamp: u32,
    /// The tag body (what an RTMP audio or video message carries).
    pub body: Bytes,
}

/// Counts of what the demuxer had to throw away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Transport packets read.
    pub packets: u64,
    /// Bytes skipped looking for a sync byte.
    pub resync_bytes: u64,
    /// PES packets dropped (a gap in the continuity counter, over the size
    /// limit, or without a usable header).
    pub dropped_pes: u64,
    /// Access units dropped before the decoder configuration was known.
    pub dropped_units: u64,
}

#[derive(Debug)]
struct Pes {
    pid: u16,
    codec: EsCodec,
    /// The continuity counter of the last packet, when a PES is open.
    cc: Option<u8>,
    buf: BytesMut,
    pts: i64,
    dts: i64,
    /// Bytes the PES header announced, when it announced any.
    expected: Option<usize>,
    /// Whether the PES in `buf` is being kept (false after a loss).
    open: bool,
}

impl Pes {
    fn new(pid: u16, codec: EsCodec) -> Pes {
        Pes {
            pid,
            codec,
            cc: None,
            buf: BytesMut::new(),
            pts: 0,
            dts: 0,
            expected: None,
            open: false,
        }
    }
}

/// An access unit, timestamps unwrapped (90 kHz).
#[derive(Debug)]
struct Unit {
    codec: EsCodec,
    pts: i64,
    dts: i64,
    data: Bytes,
}

/// Transport stream bytes in, FLV frames out. Feed it whatever the
/// transport delivers ([`push`](TsDemuxer::push)), then take frames with
/// [`next_frame`](TsDemuxer::next_frame).
#[derive(Debug, Default)]
pub struct TsDemuxer {
    /// The start of a packet split across pushes.
    partial: Vec<u8>,
    pmt_pid: Option<u16>,
    video: Option<Pes>,
    audio: Option<Pes>,
    /// The last timestamp seen, unwrapped, and the first (time zero).
    last: Option<i64>,
    base: i64,
    /// H.264/H.265 access units to FLV frames (holds the decoder configuration).
    video_flv: FlvVideoWriter,
    audio_config: Option<[u8; 2]>,
    out: VecDeque<FlvFrame>,
    /// Whether frames flow (every announced stream's configuration was
    /// seen, or the start hold ran out).
    started: bool,
    stats: DemuxStats,
}

impl TsDemuxer {
    /// A demuxer waiting for a PAT.
    pub fn new() -> TsDemuxer {
        TsDemuxer::default()
    }

    /// What was read and dropped so far.
    pub fn stats(&self) -> DemuxStats {
        self.stats
    }

    /// The codecs the PMT announced (video, audio).
    pub fn codecs(&self) -> (Option<EsCodec>, Option<EsCodec>) {
        (
            self.video.as_ref().map(|p| p.codec),
            self.audio.as_ref().map(|p| p.codec),
        )
    }

    /// Takes transport stream bytes: whole packets or any part of them.
    pub fn push(&mut self, mut data: &[u8]) {
        if !self.partial.is_empty() {
            let need = PACKET_LEN - self.partial.len();
            let take = need.min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() < PACKET_LEN {
                return;
            }
            let packet = std::mem::take(&mut self.partial);
            if packet[0] == SYNC {
                self.packet(&packet);
            } else {
                // Cannot happen: partial always starts at a sync byte.
                self.stats.resync_bytes += PACKET_LEN as u64;
            }
        }
        while !data.is_empty() {
            if data[0] != SYNC {
                let skip = data.iter().position(|&b| b == SYNC).unwrap_or(data.len());
                self.stats.resync_bytes += skip as u64;
                data = &data[skip..];
                continue;
            }
            if data.len() < PACKET_LEN {
                self.partial.extend_from_slice(data);
                return;
            }
            let (packet, rest) = data.split_at(PACKET_LEN);
            self.packet(packet);
            data = rest;
        }
    }

    /// Ends the feed: the PES packets still open (their length unknown
    /// until the next one starts) become frames, and whatever was held
    /// for the start comes out.
    pub fn finish(&mut self) {
        for which in [true, false] {
            if let Some(unit) = self.close_pes(which) {
                self.unit(unit);
            }
        }
        if !self.started && !self.out.is_empty() {
            let (mut configs, rest): (VecDeque<_>, VecDeque<_>) =
                self.out.drain(..).partition(is_sequence_header);
            configs.extend(rest);
            self.out = configs;
            self.started = true;
        }
    }

    /// The next frame demuxed, in order. Until the configuration of every
    /// stream the PMT announced is known (or [`START_HOLD_MS`] of frames
    /// are waiting), nothing comes out; then the sequence headers come
    /// first, so a hub (and its HLS segmenter) starts with all tracks.
    pub fn next_frame(&mut self) -> Option<FlvFrame> {
        if !self.started {
            if !self.ready() {
                return None;
            }
            self.started = true;
            // Sequence headers first, the rest in the order it came.
            let (mut configs, rest): (VecDeque<_>, VecDeque<_>) =
                self.out.drain(..).partition(is_sequence_header);
            configs.extend(rest);
            self.out = configs;
        }
        self.out.pop_front()
    }

    fn ready(&self) -> bool {
        let waiting_video = self.video.is_some() && !self.video_flv.configured();
        let waiting_audio = self.audio.is_some() && self.audio_config.is_none();
        if self.out.is_empty() {
            return false;
        }
        if !waiting_video && !waiting_audio {
            return true;
        }
        let first = self.out.iter().map(|f| f.timestamp).min().unwrap_or(0);
        let last = self.out.iter().map(|f| f.timestamp).max().unwrap_or(0);
        last.saturating_sub(first) >= START_HOLD_MS || self.out.len() >= START_HOLD_FRAMES
    }

    fn packet(&mut self, p: &[u8]) {
        self.stats.packets += 1;
        if p[1] & 0x80 != 0 {
            // transport_error_indicator: the packet is known to be damaged.
            return self.lose(u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]));
        }
        let start = p[1] & 0x40 != 0;
        let pid = u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
        let control = (p[3] >> 4) & 0x03;
        let cc = p[3] & 0x0F;
        let mut payload = 4;
        if control & 0x02 != 0 {
            payload += 1 + usize::from(p[4]);
        }
        if control & 0x01 == 0 || payload >= PACKET_LEN {
            return;
        }
        let body = &p[payload..];
        if pid == PID_PAT {
            if start {
                self.pat(body);
            }
        } else if Some(pid) == self.pmt_pid {
            if start {
                self.pmt(body);
            }
        } else if self.video.as_ref().is_some_and(|v| v.pid == pid) {
            self.es(true, start, cc, body);
        } else if self.audio.as_ref().is_some_and(|a| a.pid == pid) {
            self.es(false, start, cc, body);
        }
    }

    /// A PSI section's bytes after the pointer field, up to its CRC.
    fn section(body: &[u8], table_id: u8) -> Option<&[u8]> {
        let pointer = usize::from(*body.first()?);
        let s = body.get(1 + pointer..)?;
        if *s.first()? != table_id {
            return None;
        }
        let len = usize::from(u16::from(s.get(1)? & 0x0F) << 8 | u16::from(*s.get(2)?));
        // Header fields after the length (5) and the CRC (4) at the end.
        s.get(8..(3 + len).checked_sub(4)?)
    }

    fn pat(&mut self, body: &[u8]) {
        let Some(programs) = Self::section(body, 0x00) else {
            return;
        };
        for entry in programs.chunks_exact(4) {
            let number = u16::from_be_bytes([entry[0], entry[1]]);
            if number != 0 {
                let pid = u16::from(entry[2] & 0x1F) << 8 | u16::from(entry[3]);
                self.pmt_pid = Some(pid);
                return;
            }
        }
    }

    fn pmt(&mut self, body: &[u8]) {
        let Some(s) = Self::section(body, 0x02) else {
            return;
        };
        let Some(info) = s.get(2..4) else {
            return;
        };
        let info_len = usize::from(u16::from(info[0] & 0x0F) << 8 | u16::from(info[1]));
        let mut streams = s.get(4 + info_len..).unwrap_or_default();
        let (mut video, mut audio) = (None, None);
        while streams.len() >= 5 {
            let kind = streams[0];
            let pid = u16::from(streams[1] & 0x1F) << 8 | u16::from(streams[2]);
            let es_len = usize::from(u16::from(streams[3] & 0x0F) << 8 | u16::from(streams[4]));
            match kind {
                STREAM_TYPE_H264 if video.is_none() => video = Some((pid, EsCodec::H264)),
                STREAM_TYPE_H265 if video.is_none() => video = Some((pid, EsCodec::H265)),
                STREAM_TYPE_AAC_ADTS if audio.is_none() => audio = Some((pid, EsCodec::Aac)),
                _ => {}
            }
            streams = streams.get(5 + es_len..).unwrap_or_default();
        }
        // A repeated PMT (every few hundred milliseconds) changes nothing;
        // a changed one starts its streams afresh.
        let same =
            |p: &Option<Pes>, n: Option<(u16, EsCodec)>| p.as_ref().map(|p| (p.pid, p.codec)) == n;
        if !same(&self.video, video) {
            self.video = video.map(|(pid, codec)| Pes::new(pid, codec));
            self.video_flv = FlvVideoWriter::default();
        }
        if !same(&self.audio, audio) {
            self.audio = audio.map(|(pid, codec)| Pes::new(pid, codec));
            self.audio_config = None;
        }
    }

    /// A packet of the PES of a known stream.
    fn es(&mut self, video: bool, start: bool, cc: u8, body: &[u8]) {
        let slot = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        let Some(pes) = slot else {
            return;
        };
        let expected_cc = pes.cc.map(|c| (c + 1) & 0x0F);
        if pes.cc == Some(cc) && !start {
            // A duplicate packet (allowed once by the standard).
            return;
        }
        pes.cc = Some(cc);
        if start {
            let finished = self.close_pes(video);
            if let Some(unit) = finished {
                self.unit(unit);
            }
            self.open_pes(video, body);
        } else if expected_cc != Some(cc) {
            self.lose_es(video);
        } else {
            let slot = if video {
                &mut self.video
            } else {
                &mut self.audio
            };
            let Some(pes) = slot.as_mut().filter(|p| p.open) else {
                return;
            };
            if pes.buf.len() + body.len() > MAX_PES_LEN {
                pes.open = false;
                pes.buf.clear();
                self.stats.dropped_pes += 1;
                return;
            }
            pes.buf.extend_from_slice(body);
            if pes.expected.is_some_and(|n| pes.buf.len() >= n) {
                if let Some(unit) = self.close_pes(video) {
                    self.unit(unit);
                }
            }
        }
    }

    fn lose(&mut self, pid: u16) {
        if self.video.as_ref().is_some_and(|v| v.pid == pid) {
            self.lose_es(true);
        } else if self.audio.as_ref().is_some_and(|a| a.pid == pid) {
            self.lose_es(false);
        }
    }

    fn lose_es(&mut self, video: bool) {
        let slot = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        if let Some(pes) = slot {
            if pes.open {
                self.stats.dropped_pes += 1;
            }
            pes.open = false;
            pes.buf.clear();
        }
    }

    /// Starts a PES from the packet that carries its header.
    fn open_pes(&mut self, video: bool, body: &[u8]) {
        let header = parse_pes_header(body);
        let slot = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        let Some(pes) = slot else {
            return;
        };
        let Some((pts, dts, data_at, expected)) = header else {
            self.stats.dropped_pes += 1;
            pes.open = false;
            return;
        };
        let (pts, dts) = (pts, dts.unwrap_or(pts));
        pes.buf.clear();
        pes.buf.extend_from_slice(&body[data_at..]);
        pes.expected = expected;
        pes.open = true;
        // Unwrapped against the last timestamp of either stream: audio and
        // video run within a second of each other.
        let dts = self.unwrap(dts);
        let pts = dts + wrap_diff(pts, dts);
        let slot = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        if let Some(pes) = slot {
            pes.dts = dts;
            pes.pts = pts;
            if pes.expected.is_some_and(|n| pes.buf.len() >= n) {
                if let Some(unit) = self.close_pes(video) {
                    self.unit(unit);
                }
            }
        }
    }

    fn close_pes(&mut self, video: bool) -> Option<Unit> {
        let slot = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        let pes = slot.as_mut()?;
        if !pes.open {
            return None;
        }
        pes.open = false;
        let mut data = std::mem::take(&mut pes.buf);
        if let Some(n) = pes.expected {
            data.truncate(n);
        }
        Some(Unit {
            codec: pes.codec,
            pts: pes.pts,
            dts: pes.dts,
            data: data.freeze(),
        })
    }

    /// A raw 33-bit timestamp placed next to the last one seen.
    fn unwrap(&mut self, raw: i64) -> i64 {
        let value = match self.last {
            None => {
                self.base = raw;
                raw
            }
            Some(last) => last + wrap_diff(raw, last.rem_euclid(TS_WRAP)),
        };
        self.last = Some(value);
        value
    }

    fn millis(&self, ticks: i64) -> u32 {
        // Before time zero (audio starting just ahead of the first video
        // frame) is time zero; FLV time wraps after 49 days, as RTMP's.
        ((ticks - self.base).max(0) / TICKS_PER_MS) as u32
    }

    fn unit(&mut self, unit: Unit) {
        match unit.codec {
            EsCodec::H264 | EsCodec::H265 => self.video_unit(&unit),
            EsCodec::Aac => self.audio_unit(&unit),
        }
    }

    fn video_unit(&mut self, unit: &Unit) {
        let hevc = unit.codec == EsCodec::H265;
        let timestamp = self.millis(unit.dts);
        let cts = ((unit.pts - unit.dts) / TICKS_PER_MS).clamp(-(1 << 23), (1 << 23) - 1) as i32;
        let out = &mut self.out;
        let written = self
            .video_flv
            .access_unit(&unit.data, hevc, timestamp, cts, |f| out.push_back(f));
        if written == VideoUnit::Undecodable {
            // No player could decode it.
            self.stats.dropped_units += 1;
        }
    }

    fn audio_unit(&mut self, unit: &Unit) {
        let mut data = &unit.data[..];
        let mut at = unit.dts;
        while data.len() >= 7 {
            if data[0] != 0xFF || data[1] & 0xF6 != 0xF0 {
                // Not an ADTS frame: the rest of this PES is lost.
                self.stats.dropped_units += 1;
                return;
            }
            let protection_absent = data[1] & 0x01 != 0;
            let profile = data[2] >> 6;
            let rate_index = (data[2] >> 2) & 0x0F;
            let channels = ((data[2] & 0x01) << 2) | (data[3] >> 6);
            let frame_len = (usize::from(data[3] & 0x03) << 11)
                | (usize::from(data[4]) << 3)
                | usize::from(data[5] >> 5);
            let header_len = if protection_absent { 7 } else { 9 };
            let Some(rate) = SAMPLE_RATES.get(usize::from(rate_index)) else {
                self.stats.dropped_units += 1;
                return;
            };
            if frame_len <= header_len || frame_len > data.len() {
                self.stats.dropped_units += 1;
                return;
            }
            let config = [
                ((profile + 1) << 3) | (rate_index >> 1),
                ((rate_index & 1) << 7) | (channels << 3),
            ];
            let timestamp = self.millis(at);
            if self.audio_config != Some(config) {
                self.out.push_back(FlvFrame {
                    kind: TagKind::Audio,
                    timestamp,
                    body: Bytes::copy_from_slice(&[FLV_AAC, 0, config[0], config[1]]),
                });
                self.audio_config = Some(config);
            }
            let raw = &data[header_len..frame_len];
            let mut body = BytesMut::with_capacity(2 + raw.len());
            body.put_slice(&[FLV_AAC, 1]);
            body.put_slice(raw);
            self.out.push_back(FlvFrame {
                kind: TagKind::Audio,
                timestamp,
                body: body.freeze(),
            });
            // 1024 samples a frame.
            at += 1024 * 90_000 / i64::from(*rate);
            data = &data[frame_len..];
        }
    }
}

/// An AVC/HEVC or AAC sequence header (packet type 0 in both).
fn is_sequence_header(f: &FlvFrame) -> bool {
    f.body.get(1) == Some(&0)
}

/// Sampling rates by ADTS frequency index.
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// `a - b` for two 33-bit timestamps, taking the shorter way round.
fn wrap_diff(a: i64, b: i64) -> i64 {
    let d = (a - b).rem_euclid(TS_WRAP);
    if d >= TS_WRAP / 2 {
        d - TS_WRAP
    } else {
        d
    }
}

/// A PES header: PTS, DTS, where the data starts, and the data's length
/// when the header gives one. `None` for a packet that is not a PES start
/// or has no PTS.
fn parse_pes_header(b: &[u8]) -> Option<(i64, Option<i64>, usize, Option<usize>)> {
    if b.get(..3)? != [0, 0, 1] {
        return None;
    }
    let packet_len = usize::from(u16::from_be_bytes([*b.get(4)?, *b.get(5)?]));
    let flags = *b.get(7)?;
    let header_len = usize::from(*b.get(8)?);
    let data_at = 9 + header_len;
    if b.len() < data_at {
        return None;
    }
    let pts = if flags & 0x80 != 0 {
        read_timestamp(b.get(9..14)?)
    } else {
        return None;
    };
    let dts = if flags & 0xC0 == 0xC0 {
        Some(read_timestamp(b.get(14..19)?))
    } else {
        None
    };
    let expected = (packet_len != 0).then(|| packet_len.saturating_sub(3 + header_len));
    Some((pts, dts, data_at, expected))
}

fn read_timestamp(b: &[u8]) -> i64 {
    (i64::from(b[0] >> 1) & 0x07) << 30
        | i64::from(b[1]) << 22
        | i64::from(b[2] >> 1) << 15
        | i64::from(b[3]) << 7
        | i64::from(b[4] >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aac::AudioSpecificConfig;
    use crate::avc::tests::{PPS, SPS_640X360};
    use crate::avc::AvcConfig;
    use crate::flv::{AudioInfo, VideoInfo};
    use crate::ts::TsMuxer;
    use crate::VideoCodec;

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nals {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(n);
        }
        out
    }

    /// A stream muxed by livestack's own TS muxer: two video access units
    /// (a keyframe with its parameter sets, then an inter frame) and two
    /// AAC frames in one PES.
    fn muxed() -> Vec<u8> {
        let mut mux = TsMuxer::new(true, true, VideoCodec::H264);
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        let idr: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
        let inter: &[u8] = &[0x41, 0x9a, 0x02, 0x04];
        let key = annexb(&[SPS_640X360, PPS, idr]);
        mux.write_video(1040, 1000, true, &key, &mut out).unwrap();
        let asc = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        let mut adts = Vec::new();
        for raw in [&[0x21u8, 0x10, 0x05][..], &[0x21, 0x10, 0x06, 0x07]] {
            adts.extend_from_slice(&asc.adts_header(raw.len()).unwrap());
            adts.extend_from_slice(raw);
        }
        mux.write_audio(1000, &adts, &mut out).unwrap();
        mux.write_video(1040, 1040, false, &annexb(&[inter]), &mut out)
            .unwrap();
        out.to_vec()
    }

    fn frames(d: &mut TsDemuxer) -> Vec<FlvFrame> {
        std::iter::from_fn(|| d.next_frame()).collect()
    }

    #[test]
    fn a_muxed_stream_comes_back_as_flv_sequence_headers_and_frames() {
        let mut d = TsDemuxer::new();
        d.push(&muxed());
        d.finish();
        assert_eq!(d.codecs(), (Some(EsCodec::H264), Some(EsCodec::Aac)));
        let f = frames(&mut d);
        let videos: Vec<_> = f.iter().filter(|f| f.kind == TagKind::Video).collect();
        let audios: Vec<_> = f.iter().filter(|f| f.kind == TagKind::Audio).collect();
        assert_eq!(videos.len(), 3, "{f:?}");
        let header = VideoInfo::parse(&videos[0].body).unwrap();
        assert!(header.is_sequence_header());
        let config = AvcConfig::parse(header.data(&videos[0].body)).unwrap();
        assert_eq!(config.sps[0].as_ref(), SPS_640X360);
        assert_eq!(config.pps[0].as_ref(), PPS);
        let key = VideoInfo::parse(&videos[1].body).unwrap();
        assert!(key.is_keyframe() && !key.is_sequence_header());
        // The IDR alone, length-prefixed; its composition offset is 40 ms.
        assert_eq!(
            &videos[1].body[5..],
            &[0, 0, 0, 5, 0x65, 0x88, 0x84, 0x00, 0x33]
        );
        assert_eq!(&videos[1].body[2..5], &[0, 0, 40]);
        assert_eq!(videos[1].timestamp, 0);
        assert!(!VideoInfo::parse(&videos[2].body).unwrap().is_keyframe());
        assert_eq!(videos[2].timestamp, 40);
        assert_eq!(audios.len(), 3);
        assert!(AudioInfo::parse(&audios[0].body)
            .unwrap()
            .is_sequence_header());
        assert_eq!(&audios[0].body[2..], &[0x12, 0x10]);
        assert_eq!(&audios[1].body[..], &[0xAF, 1, 0x21, 0x10, 0x05]);
        assert_eq!(&audios[2].body[..], &[0xAF, 1, 0x21, 0x10, 0x06, 0x07]);
        // 1024 samples at 44.1 kHz later.
        assert_eq!(audios[2].timestamp, 23);
    }

    #[test]
    fn bytes_split_anywhere_give_the_same_frames() {
        let ts = muxed();
        let mut whole = TsDemuxer::new();
        whole.push(&ts);
        whole.finish();
        let expected = frames(&mut whole);
        for step in [1, 7, 100, 187, 189, 1316] {
            let mut d = TsDemuxer::new();
            for chunk in ts.chunks(step) {
                d.push(chunk);
            }
            d.finish();
            assert_eq!(frames(&mut d), expected, "chunks of {step}");
        }
    }

    #[test]
    fn frames_wait_for_every_announced_track_and_start_with_their_headers() {
        // The muxed stream with its audio PES moved after the video: the
        // video is held until the audio's configuration arrives.
        let mut mux = TsMuxer::new(true, true, VideoCodec::H264);
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        let idr: &[u8] = &[0x65, 0x88];
        mux.write_video(0, 0, true, &annexb(&[SPS_640X360, PPS, idr]), &mut out)
            .unwrap();
        mux.write_video(40, 40, false, &annexb(&[&[0x41, 0x9a]]), &mut out)
            .unwrap();
        mux.write_video(80, 80, false, &annexb(&[&[0x41, 0x9b]]), &mut out)
            .unwrap();
        let mut d = TsDemuxer::new();
        d.push(&out);
        assert_eq!(d.next_frame(), None, "video waits for the audio");
        let asc = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        let mut adts = asc.adts_header(1).unwrap().to_vec();
        adts.push(0x21);
        let mut out = BytesMut::new();
        mux.write_audio(0, &adts, &mut out).unwrap();
        d.push(&out);
        let f = frames(&mut d);
        let headers: Vec<_> = f.iter().take(2).map(|f| (f.kind, f.body[1])).collect();
        assert!(headers.contains(&(TagKind::Video, 0)) && headers.contains(&(TagKind::Audio, 0)));
        assert_eq!(f.len(), 5, "{f:?}");
    }

    #[test]
    fn garbage_before_the_stream_is_skipped() {
        let mut input = vec![0x12, 0x34, 0x56];
        input.extend_from_slice(&muxed());
        let mut d = TsDemuxer::new();
        d.push(&input);
        d.finish();
        assert_eq!(d.stats().resync_bytes, 3);
        assert_eq!(frames(&mut d).len(), 6);
    }

    #[test]
    fn a_lost_packet_drops_the_access_unit_it_belonged_to() {
        // A big keyframe spans many packets; lose one from its middle.
        let mut mux = TsMuxer::new(true, false, VideoCodec::H264);
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        let mut idr = vec![0x65u8];
        idr.extend(std::iter::repeat_n(0x55, 2000));
        mux.write_video(0, 0, true, &annexb(&[SPS_640X360, PPS, &idr]), &mut out)
            .unwrap();
        mux.write_video(40, 40, false, &annexb(&[&[0x41, 0x9a]]), &mut out)
            .unwrap();
        let mut ts = out.to_vec();
        ts.drain(5 * PACKET_LEN..6 * PACKET_LEN);
        let mut d = TsDemuxer::new();
        d.push(&ts);
        d.finish();
        assert_eq!(d.stats().dropped_pes, 1);
        // The inter frame still arrives, after no configuration: dropped
        // as undecodable, so nothing reaches players.
        assert!(frames(&mut d).is_empty());
        assert_eq!(d.stats().dropped_units, 1);
    }

    #[test]
    fn timestamps_continue_across_the_33_bit_wrap() {
        let mut d = TsDemuxer::new();
        let near = TS_WRAP - 90 * 20;
        assert_eq!(d.unwrap(near), near);
        let after = d.unwrap(90 * 20);
        assert_eq!(d.millis(after), 40);
    }

    #[test]
    fn no_input_panics_or_grows_without_bound() {
        let mut d = TsDemuxer::new();
        let mut packet = vec![0u8; PACKET_LEN];
        for seed in 0u32..20_000 {
            let mut x = seed.wrapping_mul(2_654_435_761);
            for b in packet.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            packet[0] = SYNC;
            // Send some packets to the PAT and a PMT so the parsers run.
            if seed % 3 == 0 {
                packet[1] &= 0xE0;
                packet[2] = 0;
            }
            d.push(&packet);
            while d.next_frame().is_some() {}
        }
        d.finish();
        assert!(d.video.as_ref().is_none_or(|p| p.buf.len() <= MAX_PES_LEN));
    }
}
