//! Arbitrary bytes into the FLV demuxer and the tag-body parsers.
//!
//! Checks that nothing panics, that splitting the input into pieces does
//! not change what the reader returns, and that every tag read re-encodes
//! to bytes that read back as the same tag.

#![no_main]

use libfuzzer_sys::fuzz_target;
use livestack_formats::aac::AudioSpecificConfig;
use livestack_formats::avc::AvcConfig;
use livestack_formats::flv::{
    self, AudioCodec, AudioInfo, FlvError, FlvReader, Tag, TagKind, VideoCodecId, VideoInfo,
};
use livestack_formats::hevc::HevcConfig;

fn read(mut reader: FlvReader, data: &[u8], piece: usize) -> (Vec<Tag>, Option<FlvError>) {
    let mut tags = Vec::new();
    for chunk in data.chunks(piece.max(1)) {
        reader.push(chunk);
        loop {
            match reader.next_tag() {
                Ok(Some(tag)) => tags.push(tag),
                Ok(None) => break,
                Err(e) => {
                    // A failed reader stays failed.
                    assert_eq!(reader.next_tag(), Err(e));
                    return (tags, Some(e));
                }
            }
        }
    }
    (tags, None)
}

fn body(kind: TagKind, payload: &[u8]) {
    match kind {
        TagKind::Video => {
            let Ok(info) = VideoInfo::parse(payload) else {
                return;
            };
            assert!(info.data_offset <= payload.len() || info.data(payload).is_empty());
            if info.is_sequence_header() {
                let data = info.data(payload);
                match info.codec {
                    VideoCodecId::Avc => {
                        if let Ok(c) = AvcConfig::parse(data) {
                            let _ = c.parse_sps();
                        }
                    }
                    VideoCodecId::Hevc => {
                        if let Ok(c) = HevcConfig::parse(data) {
                            let _ = c.parse_sps();
                        }
                    }
                    _ => {}
                }
            }
        }
        TagKind::Audio => {
            let Ok(info) = AudioInfo::parse(payload) else {
                return;
            };
            if info.codec == AudioCodec::Aac && info.is_sequence_header() {
                if let Ok(asc) = AudioSpecificConfig::parse(info.data(payload)) {
                    let _ = asc.adts_header(payload.len());
                }
            }
        }
        TagKind::Script => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let limit = 1 << 20;
    let whole = read(FlvReader::new().with_max_tag_len(limit), data, data.len());
    let pieces = read(FlvReader::new().with_max_tag_len(limit), data, 7);
    assert_eq!(whole, pieces);
    let bare = read(FlvReader::without_header().with_max_tag_len(limit), data, 3);

    for tag in whole.0.iter().chain(&bare.0) {
        body(tag.kind, &tag.payload);
        let bytes = flv::encode_tag(tag.kind, tag.timestamp_ms, &tag.payload).expect("fits");
        let (again, err) = read(FlvReader::without_header(), &bytes, bytes.len());
        assert_eq!((again.as_slice(), err), (std::slice::from_ref(tag), None));
    }
    // The body parsers on raw input, as RTMP hands them message payloads.
    body(TagKind::Video, data);
    body(TagKind::Audio, data);
});
