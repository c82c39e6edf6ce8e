//! Arbitrary frame sequences into the HLS segmenter (and so the Annex-B
//! converter and the TS muxer).
//!
//! Input: one flags byte, then records. Flags: bit 0 prepends a real AVC
//! sequence header, bit 1 a real AAC one, bit 2 a real HEVC one (enhanced
//! RTMP); bits 3-5 pick the target duration. A record is a control byte
//! (bits 0-1: audio, video, script, or finish; bit 2: a 4-byte absolute
//! timestamp follows instead of a 2-byte signed delta; bit 3: prefix the
//! body with a coded-frame header; bit 4: that header is a keyframe), the
//! timestamp, a 2-byte length and the body.
//!
//! Checks that nothing panics, that every segment is whole TS packets
//! starting with a PAT, that durations stay within the configured bounds
//! whatever the timestamps do, and that the playlist's target duration
//! covers every segment.

#![no_main]

use libfuzzer_sys::fuzz_target;
use livestack_formats::flv::TagKind;
use livestack_formats::hls::{Segmenter, SegmenterConfig};

#[path = "../common/frames.rs"]
mod frames;
use frames::{take, AAC_SEQ, AVC_SEQ, HEVC_SEQ};

fuzz_target!(|input: &[u8]| {
    let Some((&flags, mut data)) = input.split_first() else {
        return;
    };
    let target_ms = 500 * (1 + u64::from((flags >> 3) & 0x07));
    let config = SegmenterConfig {
        target_duration_ms: target_ms,
        max_segment_duration_ms: 4 * target_ms,
        window: 3,
        ..SegmenterConfig::default()
    };
    let max_ms = config.max_segment_duration_ms;
    let mut s = Segmenter::new(config);
    if flags & 1 != 0 {
        let _ = s.push(TagKind::Video, 0, AVC_SEQ);
    }
    if flags & 2 != 0 {
        let _ = s.push(TagKind::Audio, 0, AAC_SEQ);
    }
    if flags & 4 != 0 {
        let _ = s.push(TagKind::Video, 0, HEVC_SEQ);
    }
    let mut ts: u32 = 0;
    let mut body = Vec::new();
    while let Some(&[control]) = take(&mut data, 1) {
        if control & 4 != 0 {
            let Some(b) = take(&mut data, 4) else { break };
            ts = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        } else {
            let Some(b) = take(&mut data, 2) else { break };
            ts = ts.wrapping_add_signed(i32::from(i16::from_be_bytes([b[0], b[1]])));
        }
        let Some(b) = take(&mut data, 2) else { break };
        let len = usize::from(u16::from_be_bytes([b[0], b[1]])).min(data.len());
        let Some(raw) = take(&mut data, len) else {
            break;
        };
        let kind = match control & 3 {
            0 => TagKind::Audio,
            1 => TagKind::Video,
            2 => TagKind::Script,
            _ => {
                s.finish();
                continue;
            }
        };
        body.clear();
        if control & 8 != 0 {
            match kind {
                TagKind::Video => {
                    let key = if control & 16 != 0 { 0x17 } else { 0x27 };
                    body.extend_from_slice(&[key, 1, 0, 0, 0]);
                    body.extend_from_slice(&(raw.len() as u32).to_be_bytes());
                }
                _ => body.extend_from_slice(&[0xAF, 1]),
            }
        }
        body.extend_from_slice(raw);
        let _ = s.push(kind, ts, &body);
    }
    s.finish();

    let mut last_seq = None;
    for seg in s.segments() {
        assert!(last_seq.is_none_or(|l| seg.sequence == l + 1));
        last_seq = Some(seg.sequence);
        assert_eq!(seg.data.len() % 188, 0);
        assert_eq!(&seg.data[..4], &[0x47, 0x40, 0x00, seg.data[3]]);
        assert!(seg.data.chunks(188).all(|p| p[0] == 0x47));
        // A segment ends at most one allowed timestamp step (10 s) past its
        // bound, plus the allowed skew between tracks (10 s) when one track
        // opened it and the other closed it.
        assert!(
            seg.duration_ms > 0 && seg.duration_ms <= max_ms + 21_000,
            "{}",
            seg.duration_ms
        );
        assert!(s.segment(seg.sequence).is_some());
    }
    let playlist = s.playlist();
    let target: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
        .and_then(|v| v.parse().ok())
        .expect("target duration");
    assert!(s
        .segments()
        .all(|seg| (seg.duration_ms + 500) / 1000 <= target));
});
