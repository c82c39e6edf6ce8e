//! WebRTC's media path, both ways, through str0m's H.264 packetizer and
//! depacketizer (the ones livestack's sessions run):
//!
//! - to players: an FLV AVC frame becomes an Annex-B access unit
//!   (`AnnexBConverter`, as the WebRTC feed makes it), then RTP payloads
//!   of at most 1200 bytes;
//! - from WHIP publishers: RTP payloads are depacketized to an Annex-B
//!   unit, which `FlvVideoWriter` writes as FLV bodies.
//!
//! Input: one byte `n`, an AVC decoder configuration of `n` bytes, then a
//! length-prefixed frame (the rest). Checks that nothing panics, that
//! every payload fits the MTU, that the depacketized unit carries the
//! NAL units that went in (when they can be told apart: no start-code
//! pattern inside, no trailing zero byte), and that the FLV writer's frame
//! holds those NAL units again.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use livestack_formats::annexb::{split_annexb, AnnexBConverter, FlvVideoWriter};
use livestack_formats::avc::AvcConfig;
use str0m::format::CodecExtra;
use str0m::unversioned::{Depacketizer, H264Depacketizer, H264Packetizer, Packetizer};

const MTU: usize = 1200;

/// NAL units the RTP path carries (AUD and filler are dropped by design).
fn carried(annexb: &[u8]) -> Vec<&[u8]> {
    split_annexb(annexb)
        .filter(|n| !n.is_empty() && !matches!(n[0] & 0x1F, 9 | 12))
        .collect()
}

/// A NAL unit that survives the trip unchanged: a valid header (the
/// forbidden bit clear, FU-A does not carry it; not one of the types RTP
/// itself uses, 24 to 31, nor 0), more than a header, and nothing that
/// reads as a start code inside or at its end.
fn clean(nal: &[u8]) -> bool {
    nal.len() > 1
        && nal[0] & 0x80 == 0
        && !matches!(nal[0] & 0x1F, 0 | 24..=31)
        && nal.last() != Some(&0)
        && !nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 3)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (config, frame) = rest.split_at(usize::from(n).min(rest.len()));
    let Ok(config) = AvcConfig::parse(config) else {
        return;
    };
    let converter = AnnexBConverter::from_avc(&config);
    let mut unit = BytesMut::new();
    if converter.convert(frame, true, &mut unit).is_err() {
        return;
    }

    let mut packetizer = H264Packetizer::default();
    let Ok(payloads) = packetizer.packetize(MTU, &unit) else {
        return;
    };
    assert!(payloads.iter().all(|p| p.len() <= MTU), "a payload over the MTU");

    let mut depacketizer = H264Depacketizer::default();
    let mut back = Vec::new();
    let mut extra = CodecExtra::None;
    for p in &payloads {
        if depacketizer.depacketize(p, &mut back, &mut extra).is_err() {
            return;
        }
    }

    // str0m holds SPS and PPS back and sends the last of each as one
    // STAP-A ahead of the next other unit (or not at all, if that does not
    // fit a packet): everything else must come out as it went in.
    let other = |n: &&[u8]| !matches!(n[0] & 0x1F, 7 | 8);
    let sent = carried(&unit);
    if sent.iter().all(|n| clean(n)) {
        let want: Vec<&[u8]> = sent.iter().copied().filter(other).collect();
        let got: Vec<&[u8]> = carried(&back).into_iter().filter(other).collect();
        assert_eq!(got, want, "NAL units changed on the way");
    }

    let mut writer = FlvVideoWriter::default();
    let mut frames = Vec::new();
    writer.access_unit(&back, false, 0, 0, |f| frames.push(f));
    for f in &frames {
        assert!(f.body.len() >= 5, "an FLV video body without its header");
    }
});
