//! Arbitrary bytes into the AVC/HEVC decoder configuration and SPS
//! parsers, the AAC AudioSpecificConfig parser and the Annex-B converter.
//!
//! Input: read whole by every parser, and also as a length byte, a record
//! of that length, and a length-prefixed frame to convert with it.
//!
//! Checks that nothing panics, that parsed configuration records re-encode
//! to records that parse back the same, and that conversions of arbitrary
//! frames either fail cleanly or produce the size they promised.

#![no_main]

use libfuzzer_sys::fuzz_target;
use livestack_formats::aac::AudioSpecificConfig;
use livestack_formats::annexb::{self, AnnexBConverter};
use livestack_formats::avc::{AvcConfig, Sps};
use livestack_formats::bytes::BytesMut;
use livestack_formats::hevc::{HevcConfig, HevcSps};

fn convert(conv: &AnnexBConverter, frame: &[u8]) {
    for keyframe in [false, true] {
        let mut out = BytesMut::new();
        match conv.convert(frame, keyframe, &mut out) {
            Ok(()) => assert!(out.len() >= 6),
            Err(_) => assert!(out.is_empty()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The input read whole, and as a length byte, a record of that length
    // and a length-prefixed frame to convert with it.
    let (len, rest) = data
        .split_first()
        .map_or((0, data), |(l, r)| (usize::from(*l), r));
    let (head, frame) = rest.split_at(len.min(rest.len()));

    for record in [data, head] {
        if let Ok(c) = AvcConfig::parse(record) {
            let _ = c.parse_sps();
            assert_eq!(AvcConfig::parse(&c.to_bytes()).as_ref(), Ok(&c));
            convert(&AnnexBConverter::from_avc(&c), frame);
        }
        if let Ok(c) = HevcConfig::parse(record) {
            let _ = c.parse_sps();
            assert_eq!(HevcConfig::parse(&c.to_bytes()).as_ref(), Ok(&c));
            convert(&AnnexBConverter::from_hevc(&c), frame);
        }
        if let Ok(asc) = AudioSpecificConfig::parse(record) {
            let _ = asc.adts_header(frame.len());
        }
    }
    if let Ok(sps) = Sps::parse(data) {
        assert!(sps.width > 0 && sps.height > 0);
        let _ = sps.fps();
    }
    if let Ok(sps) = HevcSps::parse(data) {
        assert!(sps.width > 0 && sps.height > 0);
    }
    let total: usize = annexb::split_annexb(data).map(|n| n.len() + 4).sum();
    let mut out = BytesMut::new();
    annexb::to_length_prefixed(data, &mut out);
    assert_eq!(out.len(), total);
});
