//! Arbitrary bytes as a fragmented MP4 file, made plain.
//!
//! Checks that nothing panics, and that when a plan comes out it is a
//! plain file: it starts with `ftyp` then `moov`, its `mdat` header says
//! exactly how much data follows, and every range it copies lies inside
//! the source.

#![no_main]

use libfuzzer_sys::fuzz_target;
use livestack_formats::mp4::{assemble, box_header, faststart_bytes};

fuzz_target!(|data: &[u8]| {
    let Ok(plan) = faststart_bytes(data) else {
        return;
    };
    let copied: u64 = plan.copies.iter().map(|c| c.1).sum();
    for (at, len) in &plan.copies {
        assert!(at + len <= data.len() as u64, "a copy past the end");
    }
    let out = assemble(&plan, data);
    assert_eq!(out.len() as u64, plan.header.len() as u64 + copied);
    let ftyp = box_header(&out).expect("header").expect("ftyp");
    assert_eq!(&ftyp.kind, b"ftyp");
    let at = ftyp.len.expect("sized") as usize;
    let moov = box_header(&out[at..]).expect("header").expect("moov");
    assert_eq!(&moov.kind, b"moov");
    let at = at + moov.len.expect("sized") as usize;
    let mdat = box_header(&out[at..]).expect("header").expect("mdat");
    assert_eq!(&mdat.kind, b"mdat");
    assert_eq!(mdat.len.expect("sized") - mdat.header_len, copied);
});
