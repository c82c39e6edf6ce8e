//! Fragmented MP4 (CMAF-style) for LL-HLS: an initialization segment
//! (`ftyp` + `moov`) and media fragments (`moof` + `mdat`).
//!
//! Owns: the box layouts: sample entries for H.264 (`avc1`/`avcC`), H.265
//! (`hvc1`/`hvcC`) and AAC (`mp4a`/`esds`), empty sample tables with
//! `mvex`/`trex`, and per-fragment `tfhd`/`tfdt`/`trun` with durations,
//! sizes, sync flags and composition offsets. Must not: parse codec data
//! (callers hand over the decoder configuration records FLV carries and
//! length-prefixed samples), choose fragment boundaries (that is
//! [`crate::llhls`]), or panic on any input.
//!
//! Every track uses a 1 kHz timescale: the input is FLV, whose timestamps
//! are milliseconds, so durations and decode times are exact.

use bytes::{BufMut, Bytes, BytesMut};

use crate::VideoCodec;

/// Ticks per second of every track.
pub const TIMESCALE: u32 = 1000;
/// The track id of video (when present) and of audio.
pub const VIDEO_TRACK: u32 = 1;
/// The track id of audio.
pub const AUDIO_TRACK: u32 = 2;

/// A track of the initialization segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Track {
    /// Video: the codec, its decoder configuration record (what an FLV
    /// sequence header carries: `AVCDecoderConfigurationRecord` or
    /// `HEVCDecoderConfigurationRecord`) and the picture size.
    Video {
        /// H.264 or H.265.
        codec: VideoCodec,
        /// The configuration record.
        config: Bytes,
        /// Width in pixels.
        width: u16,
        /// Height in pixels.
        height: u16,
    },
    /// AAC: its `AudioSpecificConfig`, sampling rate and channel count.
    Audio {
        /// The `AudioSpecificConfig` bytes.
        config: Bytes,
        /// Samples per second.
        sample_rate: u32,
        /// Channels.
        channels: u16,
    },
}

impl Track {
    fn id(&self) -> u32 {
        match self {
            Track::Video { .. } => VIDEO_TRACK,
            Track::Audio { .. } => AUDIO_TRACK,
        }
    }
}

/// One sample of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode duration in milliseconds.
    pub duration: u32,
    /// Presentation minus decode time, in milliseconds.
    pub composition_offset: i32,
    /// A sync sample (video keyframe; every audio sample).
    pub sync: bool,
    /// The sample's bytes (length-prefixed NAL units, or one raw AAC frame).
    pub data: Bytes,
}

/// One track's run of samples in a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run<'a> {
    /// [`VIDEO_TRACK`] or [`AUDIO_TRACK`].
    pub track: u32,
    /// The decode time of the first sample, in milliseconds.
    pub decode_time: u64,
    /// The samples, in decode order.
    pub samples: &'a [Sample],
}

/// Appends a box: its size is patched in when `body` returns.
pub(crate) fn boxed(out: &mut BytesMut, kind: &[u8; 4], body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u32(0);
    out.put_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Appends a full box (version and flags after the type).
pub(crate) fn full(
    out: &mut BytesMut,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut BytesMut),
) {
    boxed(out, kind, |o| {
        o.put_u32((u32::from(version) << 24) | (flags & 0x00FF_FFFF));
        body(o);
    });
}

/// The identity transformation matrix of `mvhd` and `tkhd`.
pub(crate) const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// The initialization segment for `tracks` (at most one of each kind).
pub fn init_segment(tracks: &[Track]) -> Bytes {
    let mut out = BytesMut::with_capacity(1024);
    boxed(&mut out, b"ftyp", |o| {
        o.put_slice(b"iso6");
        o.put_u32(0);
        for brand in [b"iso6", b"cmfc", b"isom", b"mp41"] {
            o.put_slice(brand);
        }
    });
    boxed(&mut out, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            o.put_u32(0); // creation time
            o.put_u32(0); // modification time
            o.put_u32(TIMESCALE);
            o.put_u32(0); // duration: fragmented
            o.put_u32(0x0001_0000); // rate 1.0
            o.put_u16(0x0100); // volume 1.0
            o.put_slice(&[0; 10]);
            MATRIX.iter().for_each(|m| o.put_u32(*m));
            o.put_slice(&[0; 24]);
            o.put_u32(AUDIO_TRACK + 1); // next track id
        });
        for t in tracks {
            trak(o, t);
        }
        boxed(o, b"mvex", |o| {
            for t in tracks {
                full(o, b"trex", 0, 0, |o| {
                    o.put_u32(t.id());
                    o.put_u32(1); // sample description index
                    o.put_u32(0);
                    o.put_u32(0);
                    o.put_u32(0);
                });
            }
        });
    });
    out.freeze()
}

fn trak(o: &mut BytesMut, t: &Track) {
    let (width, height) = match t {
        Track::Video { width, height, .. } => (u32::from(*width), u32::from(*height)),
        Track::Audio { .. } => (0, 0),
    };
    let audio = matches!(t, Track::Audio { .. });
    boxed(o, b"trak", |o| {
        // Enabled, in movie, in preview.
        full(o, b"tkhd", 0, 7, |o| {
            o.put_u32(0);
            o.put_u32(0);
            o.put_u32(t.id());
            o.put_u32(0);
            o.put_u32(0); // duration
            o.put_slice(&[0; 8]);
            o.put_u16(0); // layer
            o.put_u16(0); // alternate group
            o.put_u16(if audio { 0x0100 } else { 0 });
            o.put_u16(0);
            MATRIX.iter().for_each(|m| o.put_u32(*m));
            o.put_u32(width << 16);
            o.put_u32(height << 16);
        });
        boxed(o, b"mdia", |o| {
            full(o, b"mdhd", 0, 0, |o| {
                o.put_u32(0);
                o.put_u32(0);
                o.put_u32(TIMESCALE);
                o.put_u32(0);
                o.put_u16(0x55C4); // "und"
                o.put_u16(0);
            });
            full(o, b"hdlr", 0, 0, |o| {
                o.put_u32(0);
                o.put_slice(if audio { b"soun" } else { b"vide" });
                o.put_slice(&[0; 12]);
                o.put_slice(if audio {
                    b"SoundHandler\0"
                } else {
                    b"VideoHandler\0"
                });
            });
            boxed(o, b"minf", |o| {
                if audio {
                    full(o, b"smhd", 0, 0, |o| o.put_u32(0));
                } else {
                    full(o, b"vmhd", 0, 1, |o| o.put_slice(&[0; 8]));
                }
                boxed(o, b"dinf", |o| {
                    full(o, b"dref", 0, 0, |o| {
                        o.put_u32(1);
                        full(o, b"url ", 0, 1, |_| {});
                    });
                });
                boxed(o, b"stbl", |o| {
                    full(o, b"stsd", 0, 0, |o| {
                        o.put_u32(1);
                        sample_entry(o, t);
                    });
                    for kind in [b"stts", b"stsc", b"stco"] {
                        full(o, kind, 0, 0, |o| o.put_u32(0));
                    }
                    full(o, b"stsz", 0, 0, |o| {
                        o.put_u32(0);
                        o.put_u32(0);
                    });
                });
            });
        });
    });
}

fn sample_entry(o: &mut BytesMut, t: &Track) {
    match t {
        Track::Video {
            codec,
            config,
            width,
            height,
        } => {
            let (entry, record) = match codec {
                VideoCodec::H264 => (b"avc1", b"avcC"),
                VideoCodec::H265 => (b"hvc1", b"hvcC"),
            };
            boxed(o, entry, |o| {
                o.put_slice(&[0; 6]);
                o.put_u16(1); // data reference index
                o.put_slice(&[0; 16]);
                o.put_u16(*width);
                o.put_u16(*height);
                o.put_u32(0x0048_0000); // 72 dpi
                o.put_u32(0x0048_0000);
                o.put_u32(0);
                o.put_u16(1); // frame count
                o.put_slice(&[0; 32]); // compressor name
                o.put_u16(0x0018); // depth
                o.put_i16(-1);
                boxed(o, record, |o| o.put_slice(config));
            });
        }
        Track::Audio {
            config,
            sample_rate,
            channels,
        } => {
            boxed(o, b"mp4a", |o| {
                o.put_slice(&[0; 6]);
                o.put_u16(1);
                o.put_slice(&[0; 8]);
                o.put_u16(*channels);
                o.put_u16(16);
                o.put_u32(0);
                // 16.16 fixed point; rates above 65535 Hz do not fit and
                // are written as 0 (the AudioSpecificConfig has the rate).
                o.put_u32(if *sample_rate <= 0xFFFF {
                    sample_rate << 16
                } else {
                    0
                });
                full(o, b"esds", 0, 0, |o| esds(o, config));
            });
        }
    }
}

/// An MPEG-4 descriptor: tag, a one-byte length (every descriptor here is
/// short), body.
fn descriptor(o: &mut BytesMut, tag: u8, body: &[u8]) {
    o.put_u8(tag);
    o.put_u8(body.len().min(127) as u8);
    o.put_slice(&body[..body.len().min(127)]);
}

fn esds(o: &mut BytesMut, asc: &[u8]) {
    let asc = &asc[..asc.len().min(64)];
    let mut specific = BytesMut::new();
    descriptor(&mut specific, 0x05, asc);
    let mut decoder = BytesMut::new();
    decoder.put_u8(0x40); // MPEG-4 audio
    decoder.put_u8(0x15); // audio stream
    decoder.put_slice(&[0; 3]); // buffer size
    decoder.put_u32(0); // max bitrate
    decoder.put_u32(0); // average bitrate
    decoder.put_slice(&specific);
    let mut es = BytesMut::new();
    es.put_u16(0); // ES id
    es.put_u8(0); // flags
    descriptor(&mut es, 0x04, &decoder);
    descriptor(&mut es, 0x06, &[0x02]);
    descriptor(o, 0x03, &es);
}

/// One fragment (`moof` + `mdat`) with `runs`, numbered `sequence`.
pub fn fragment(sequence: u32, runs: &[Run<'_>]) -> Bytes {
    let data_len: usize = runs
        .iter()
        .flat_map(|r| r.samples.iter())
        .map(|s| s.data.len())
        .sum();
    let mut out = BytesMut::with_capacity(
        256 + data_len + runs.iter().map(|r| 16 * r.samples.len()).sum::<usize>(),
    );
    // Where each trun's data offset goes, patched once the moof's size
    // is known.
    let mut offsets = Vec::with_capacity(runs.len());
    boxed(&mut out, b"moof", |o| {
        full(o, b"mfhd", 0, 0, |o| o.put_u32(sequence));
        for run in runs {
            boxed(o, b"traf", |o| {
                // default-base-is-moof
                full(o, b"tfhd", 0, 0x02_0000, |o| o.put_u32(run.track));
                full(o, b"tfdt", 1, 0, |o| o.put_u64(run.decode_time));
                // data offset, durations, sizes, flags, composition offsets
                full(o, b"trun", 1, 0x000F01, |o| {
                    o.put_u32(run.samples.len() as u32);
                    offsets.push(o.len());
                    o.put_i32(0);
                    for s in run.samples {
                        o.put_u32(s.duration);
                        o.put_u32(s.data.len() as u32);
                        o.put_u32(if s.sync { 0x0200_0000 } else { 0x0101_0000 });
                        o.put_i32(s.composition_offset);
                    }
                });
            });
        }
    });
    let moof_len = out.len();
    let mut at = moof_len + 8;
    for (run, offset) in runs.iter().zip(offsets) {
        out[offset..offset + 4].copy_from_slice(&(at as i32).to_be_bytes());
        at += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    out.put_u32((8 + data_len) as u32);
    out.put_slice(b"mdat");
    for s in runs.iter().flat_map(|r| r.samples.iter()) {
        out.put_slice(&s.data);
    }
    out.freeze()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 640×360 H.264 track and a stereo 44.1 kHz AAC one.
    pub(crate) fn tracks() -> Vec<Track> {
        vec![
            Track::Video {
                codec: VideoCodec::H264,
                config: Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]),
                width: 640,
                height: 360,
            },
            Track::Audio {
                config: Bytes::from_static(&[0x12, 0x10]),
                sample_rate: 44100,
                channels: 2,
            },
        ]
    }

    /// The boxes at the top level of `data`: (type, size).
    fn top(data: &[u8]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 8 <= data.len() {
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            out.push((
                String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned(),
                size,
            ));
            assert!(size >= 8 && at + size <= data.len(), "box at {at} overruns");
            at += size;
        }
        assert_eq!(at, data.len());
        out
    }

    #[test]
    fn an_init_segment_is_ftyp_then_moov_with_both_tracks() {
        let init = init_segment(&tracks());
        let boxes = top(&init);
        assert_eq!(boxes[0].0, "ftyp");
        assert_eq!(boxes[1].0, "moov");
        let text = String::from_utf8_lossy(&init);
        for kind in [
            "mvhd", "trak", "avc1", "avcC", "mp4a", "esds", "mvex", "trex",
        ] {
            assert!(text.contains(kind), "no {kind}");
        }
    }

    #[test]
    fn a_fragments_data_offsets_point_at_each_tracks_samples_in_mdat() {
        let video = [
            Sample {
                duration: 40,
                composition_offset: 80,
                sync: true,
                data: Bytes::from_static(b"VVVV"),
            },
            Sample {
                duration: 40,
                composition_offset: 0,
                sync: false,
                data: Bytes::from_static(b"vv"),
            },
        ];
        let audio = [Sample {
            duration: 23,
            composition_offset: 0,
            sync: true,
            data: Bytes::from_static(b"AAA"),
        }];
        let f = fragment(
            7,
            &[
                Run {
                    track: VIDEO_TRACK,
                    decode_time: 1000,
                    samples: &video,
                },
                Run {
                    track: AUDIO_TRACK,
                    decode_time: 990,
                    samples: &audio,
                },
            ],
        );
        let boxes = top(&f);
        assert_eq!(
            boxes.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(),
            ["moof", "mdat"]
        );
        let mdat_at = boxes[0].1 + 8;
        assert_eq!(&f[mdat_at..], b"VVVVvvAAA");
        // The second trun's offset (relative to the moof) is past the video.
        let truns: Vec<usize> = f
            .windows(4)
            .enumerate()
            .filter(|(_, w)| w == b"trun")
            .map(|(i, _)| i)
            .collect();
        let offset =
            |trun: usize| i32::from_be_bytes(f[trun + 12..trun + 16].try_into().unwrap()) as usize;
        assert_eq!(offset(truns[0]), mdat_at);
        assert_eq!(offset(truns[1]), mdat_at + 6);
    }
}
