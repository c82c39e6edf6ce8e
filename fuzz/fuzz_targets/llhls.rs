//! Arbitrary frame sequences into the LL-HLS packager (and so the fMP4
//! writer).
//!
//! Input: one flags byte (bit 0: a real AVC sequence header first, bit 1:
//! a real AAC one, bits 2-4: the part target in 100 ms steps), then
//! records: a control byte (bits 0-1: audio, video, script or a playlist
//! check; bit 2: a keyframe header; bit 3: a 4-byte absolute timestamp
//! instead of a 2-byte signed delta), the timestamp, a 2-byte length and
//! the body.
//!
//! Checks that nothing panics, that every URI a playlist lists is a file
//! the packager serves, that a whole segment is its parts joined, and that
//! each fragment starts with a `moof`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use livestack_formats::flv::TagKind;
use livestack_formats::llhls::{LlConfig, LlFile, LlPackager};

#[path = "../common/frames.rs"]
mod frames;
use frames::{take, AAC_SEQ, AVC_SEQ};

fn check(p: &LlPackager) {
    let text = p.playlist("", false);
    assert!(text.starts_with("#EXTM3U\n"));
    for line in text.lines() {
        let uri = if let Some(rest) = line.split("URI=\"").nth(1) {
            rest.split('"').next().unwrap_or("")
        } else if !line.starts_with('#') && !line.is_empty() {
            line
        } else {
            continue;
        };
        let is_hint = line.starts_with("#EXT-X-PRELOAD-HINT");
        match p.parse_name(uri) {
            Some(LlFile::Init(v)) => {
                assert!(p.init_version(v).is_some(), "{uri} listed but not served")
            }
            Some(LlFile::Part(msn, part)) => {
                let data = p.part(msn, part);
                assert!(is_hint || data.is_some(), "{uri} listed but not served");
                if let Some(d) = data {
                    assert_eq!(&d[4..8], b"moof");
                }
            }
            Some(LlFile::Segment(msn)) => {
                let whole = p
                    .segment(msn)
                    .unwrap_or_else(|| panic!("{uri} listed but not served in\n{text}"));
                let joined: Vec<u8> = (0..)
                    .map_while(|i| p.part(msn, i))
                    .flat_map(|b| b.to_vec())
                    .collect();
                assert_eq!(whole.to_vec(), joined);
            }
            None => panic!("{uri} is not a file of the stream"),
        }
    }
    let _ = p.playlist("?q=1", true);
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, mut data)) = input.split_first() else {
        return;
    };
    let mut p = LlPackager::new(LlConfig {
        part_target_ms: 100 * (1 + u32::from((flags >> 2) & 0x07)),
        segment_target_ms: 1000,
        window: 3,
        name: "s".into(),
    });
    if flags & 1 != 0 {
        p.push(TagKind::Video, 0, AVC_SEQ);
    }
    if flags & 2 != 0 {
        p.push(TagKind::Audio, 0, AAC_SEQ);
    }
    let mut ts: u32 = 0;
    let mut body = Vec::new();
    while let Some(&[control]) = take(&mut data, 1) {
        if control & 8 != 0 {
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
        body.clear();
        let kind = match control & 3 {
            0 => {
                body.extend_from_slice(&[0xAF, 1]);
                TagKind::Audio
            }
            1 => {
                let key = if control & 4 != 0 { 0x17 } else { 0x27 };
                body.extend_from_slice(&[key, 1, 0, 0, 0]);
                TagKind::Video
            }
            2 => TagKind::Script,
            _ => {
                check(&p);
                continue;
            }
        };
        body.extend_from_slice(raw);
        p.push(kind, ts, &body);
    }
    check(&p);
    p.finish();
    check(&p);
});
