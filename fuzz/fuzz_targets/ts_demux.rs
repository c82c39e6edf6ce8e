//! Arbitrary bytes into the MPEG-TS demuxer SRT ingest feeds before any
//! signature is known to be good (its peer is authorized, but what it
//! sends is not).
//!
//! Input: one byte choosing how the rest is cut into pushes (1 to 256
//! bytes at a time), then the stream.
//!
//! Checks that nothing panics, that every frame it gives back parses as an
//! FLV audio or video body, and that what it holds stays within its
//! per-stream limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use livestack_formats::flv::{AudioInfo, TagKind, VideoInfo};
use livestack_formats::ts_demux::TsDemuxer;

fuzz_target!(|input: &[u8]| {
    let Some((&step, data)) = input.split_first() else {
        return;
    };
    let step = usize::from(step) + 1;
    let mut d = TsDemuxer::new();
    let mut check = |d: &mut TsDemuxer| {
        while let Some(f) = d.next_frame() {
            match f.kind {
                TagKind::Video => {
                    VideoInfo::parse(&f.body).expect("a video body the hub can read");
                }
                TagKind::Audio => {
                    AudioInfo::parse(&f.body).expect("an audio body the hub can read");
                }
                TagKind::Script => panic!("the demuxer makes no script tags"),
            }
        }
    };
    for chunk in data.chunks(step) {
        d.push(chunk);
        check(&mut d);
    }
    d.finish();
    check(&mut d);
});
