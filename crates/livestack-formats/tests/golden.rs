//! Golden tests against the real tools: streams made by `ffmpeg` go through
//! the demuxer, header parsers and HLS segmenter, and `ffprobe`/`ffmpeg`
//! judge the output.
//!
//! These tests need `ffmpeg` and `ffprobe` (Debian package `ffmpeg`). Without
//! them they fail, saying so, rather than skip: CI installs the package.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use livestack_formats::aac::AudioSpecificConfig;
use livestack_formats::annexb;
use livestack_formats::avc::AvcConfig;
use livestack_formats::flv::{
    self, AudioInfo, FlvReader, Tag, TagKind, VideoCodecId, VideoInfo, VideoPacketType,
};
use livestack_formats::hevc::{self, HevcConfig};
use livestack_formats::hls::{Segmenter, SegmenterConfig};

/// The path of a tool, or a failure telling how to get it.
fn tool(name: &str) -> PathBuf {
    let candidates = [PathBuf::from("/usr/bin").join(name)];
    let from_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain(from_path)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found: install ffmpeg (apt-get install -y ffmpeg) to run the golden tests"))
}

fn run(name: &str, args: &[&str]) -> Output {
    let out = Command::new(tool(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a tool that must succeed and print nothing on stderr at `-v error`.
fn run_clean(name: &str, args: &[&str]) -> String {
    let out = run(name, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.trim().is_empty(),
        "{name} {args:?} reported: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ffprobe -of flat` output as a map (`streams.stream.0.codec_name` → `h264`).
fn probe(args: &[&str]) -> BTreeMap<String, String> {
    let mut all = vec!["-v", "error", "-of", "flat"];
    all.extend_from_slice(args);
    run_clean("ffprobe", &all)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// The FLV of the brief: 3 s of 640x360 25 fps H.264 (GOP 25) and AAC.
fn sample_flv() -> &'static [u8] {
    static FLV: OnceLock<Vec<u8>> = OnceLock::new();
    FLV.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out.flv");
        run(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=640x360:rate=25",
                "-f",
                "lavfi",
                "-i",
                "sine",
                "-t",
                "3",
                "-c:v",
                "libx264",
                "-g",
                "25",
                "-c:a",
                "aac",
                "-f",
                "flv",
                path_str(&out),
            ],
        );
        std::fs::read(&out).expect("read the generated FLV")
    })
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn demux(data: &[u8]) -> (FlvReader, Vec<Tag>) {
    let mut reader = FlvReader::new();
    let mut tags = Vec::new();
    // Feed in uneven pieces, as a socket would.
    for chunk in data.chunks(1000) {
        reader.push(chunk);
        while let Some(tag) = reader.next_tag().expect("valid FLV") {
            tags.push(tag);
        }
    }
    assert_eq!(reader.buffered(), 0, "trailing bytes left");
    (reader, tags)
}

#[test]
fn the_ffmpeg_flv_demuxes_and_its_headers_match_ffprobe() {
    let flv = sample_flv();
    let (reader, tags) = demux(flv);
    let header = reader.header().expect("header read");
    assert!(header.has_audio && header.has_video);

    let video_seq = tags
        .iter()
        .find(|t| t.kind == TagKind::Video)
        .expect("a video tag");
    let info = VideoInfo::parse(&video_seq.payload).unwrap();
    assert_eq!(
        (info.codec, info.packet_type),
        (VideoCodecId::Avc, VideoPacketType::SequenceStart)
    );
    let config = AvcConfig::parse(info.data(&video_seq.payload)).unwrap();
    let sps = config.parse_sps().unwrap();
    assert_eq!((sps.width, sps.height), (640, 360));
    assert_eq!(sps.fps(), Some(25.0));

    let audio_seq = tags
        .iter()
        .find(|t| t.kind == TagKind::Audio)
        .expect("an audio tag");
    let ainfo = AudioInfo::parse(&audio_seq.payload).unwrap();
    let asc = AudioSpecificConfig::parse(ainfo.data(&audio_seq.payload)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.flv");
    std::fs::write(&file, flv).unwrap();
    let p = probe(&["-show_streams", path_str(&file)]);
    assert_eq!(p["streams.stream.0.codec_name"], "h264");
    assert_eq!(p["streams.stream.0.profile"], sps.profile_name());
    assert_eq!(p["streams.stream.0.level"], sps.level_idc.to_string());
    assert_eq!(p["streams.stream.1.codec_name"], "aac");
    assert_eq!(
        p["streams.stream.1.sample_rate"],
        asc.sample_rate.to_string()
    );
    assert_eq!(p["streams.stream.1.channels"], asc.channels().to_string());

    // 75 video frames, keyframes once a second, AAC frames after the headers.
    let frames: Vec<VideoInfo> = tags
        .iter()
        .filter(|t| t.kind == TagKind::Video)
        .map(|t| VideoInfo::parse(&t.payload).unwrap())
        .filter(|i| i.packet_type == VideoPacketType::CodedFrames)
        .collect();
    assert_eq!(frames.len(), 75);
    assert_eq!(frames.iter().filter(|i| i.is_keyframe()).count(), 3);
    assert!(
        frames.iter().any(|i| i.composition_time_ms > 0),
        "x264 uses B-frames"
    );
}

#[test]
fn remuxed_tags_are_byte_identical_and_ffprobe_reads_them_the_same() {
    let flv = sample_flv();
    let (reader, tags) = demux(flv);
    let header = reader.header().unwrap();
    let mut out = BytesMut::new();
    out.extend_from_slice(&flv::encode_header(header.has_audio, header.has_video));
    for t in &tags {
        out.extend_from_slice(&flv::encode_tag(t.kind, t.timestamp_ms, &t.payload).unwrap());
    }
    assert!(
        out[..] == flv[..],
        "the re-muxed file differs from ffmpeg's"
    );

    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.flv");
    let b = dir.path().join("b.flv");
    std::fs::write(&a, flv).unwrap();
    std::fs::write(&b, &out).unwrap();
    let args = ["-show_streams", "-show_format", "-show_packets"];
    let strip = |mut m: BTreeMap<String, String>| {
        m.remove("format.filename");
        m
    };
    let pa = strip(probe(&[&args[..], &[path_str(&a)]].concat()));
    let pb = strip(probe(&[&args[..], &[path_str(&b)]].concat()));
    assert!(pa.len() > 100);
    assert_eq!(pa, pb);
}

/// Writes the window and the playlist to `dir`, checks every segment with
/// ffprobe and the playlist with ffmpeg; returns the playlist path.
fn check_hls(
    s: &Segmenter,
    dir: &Path,
    codec: &str,
    width: &str,
    with_audio: bool,
    seconds: f64,
) -> PathBuf {
    let mut total = 0.0;
    for seg in s.segments() {
        let path = dir.join(s.segment_name(seg.sequence));
        std::fs::write(&path, &seg.data).unwrap();
        let p = probe(&["-show_streams", "-show_format", path_str(&path)]);
        assert_eq!(
            p["streams.stream.0.codec_name"], codec,
            "segment {}",
            seg.sequence
        );
        assert_eq!(p["streams.stream.0.width"], width);
        assert_eq!(p["streams.stream.0.height"], "360");
        if with_audio {
            assert_eq!(p["streams.stream.1.codec_name"], "aac");
        }
        // The video track's duration is the segment's; the whole file runs a
        // little longer because audio interleaved around the cut overlaps.
        let video: f64 = p["streams.stream.0.duration"].parse().unwrap();
        let file: f64 = p["format.duration"].parse().unwrap();
        let listed = seg.duration_ms as f64 / 1000.0;
        assert!(
            (video - listed).abs() < 0.05 && file - video < 0.15,
            "segment {} lasts {video} s ({file} s with audio), listed {listed} s",
            seg.sequence
        );
        total += video;
    }
    assert!(
        (total - seconds).abs() < 0.05,
        "segments last {total} s in all"
    );
    let listed: u64 = s.segments().map(|x| x.duration_ms).sum();
    assert!(
        (listed as f64 / 1000.0 - seconds).abs() < 0.05,
        "playlist lists {listed} ms"
    );

    let playlist = dir.join("index.m3u8");
    std::fs::write(&playlist, s.playlist()).unwrap();
    run_clean(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            path_str(&playlist),
            "-c",
            "copy",
            "-f",
            "null",
            "-",
        ],
    );
    // Decoding every frame finds missing parameter sets or broken NAL units.
    run_clean(
        "ffmpeg",
        &["-v", "error", "-i", path_str(&playlist), "-f", "null", "-"],
    );
    playlist
}

#[test]
fn hls_segments_of_the_ffmpeg_flv_are_valid_for_ffprobe_and_ffmpeg() {
    let (_, tags) = demux(sample_flv());
    // Keyframes every second: a 1 s target cuts at each, the default 2 s
    // target at every other one.
    for (target_ms, want) in [(1_000, vec![1000, 1000, 1000]), (2_000, vec![2000, 1000])] {
        let mut s = Segmenter::new(SegmenterConfig {
            target_duration_ms: target_ms,
            ..SegmenterConfig::default()
        });
        for t in &tags {
            s.push(t.kind, t.timestamp_ms, &t.payload).unwrap();
        }
        s.finish();
        let durations: Vec<u64> = s.segments().map(|x| x.duration_ms).collect();
        assert_eq!(durations, want);
        assert!(s.playlist().ends_with("#EXT-X-ENDLIST\n"));
        let dir = tempfile::tempdir().unwrap();
        let playlist = check_hls(&s, dir.path(), "h264", "640", true, 3.0);
        let p = probe(&[
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames,codec_name",
            path_str(&playlist),
        ]);
        assert_eq!(
            p["streams.stream.0.nb_read_frames"], "75",
            "every frame arrives"
        );
    }
}

#[test]
fn hevc_in_enhanced_rtmp_tags_segments_into_valid_ts() {
    let out = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=25",
            "-t",
            "2",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx265",
            "-x265-params",
            "aud=1:keyint=25:min-keyint=25:bframes=0:log-level=error",
            "-f",
            "hevc",
            "-",
        ],
    );
    // Access units start at each AUD (x265 `aud=1`).
    let mut units: Vec<Vec<&[u8]>> = Vec::new();
    for nal in annexb::split_annexb(&out.stdout) {
        if hevc::nal_type(nal) == Some(35) || units.is_empty() {
            units.push(Vec::new());
        }
        if let Some(u) = units.last_mut() {
            u.push(nal);
        }
    }
    let first = units.first().expect("some output");
    let of_type = |t: u8| -> Vec<Bytes> {
        first
            .iter()
            .filter(|n| hevc::nal_type(n) == Some(t))
            .map(|n| Bytes::copy_from_slice(n))
            .collect()
    };
    let config = HevcConfig::from_parameter_sets(
        of_type(hevc::NAL_VPS),
        of_type(hevc::NAL_SPS),
        of_type(hevc::NAL_PPS),
    )
    .unwrap();
    let sps = config.parse_sps().unwrap();
    assert_eq!(
        (sps.width, sps.height, sps.profile_name()),
        (640, 360, "Main")
    );

    let mut s = Segmenter::new(SegmenterConfig {
        target_duration_ms: 1_000,
        ..SegmenterConfig::default()
    });
    let mut body = b"\x90hvc1".to_vec();
    body.extend_from_slice(&config.to_bytes());
    s.push(TagKind::Video, 0, &body).unwrap();
    for (i, unit) in units.iter().enumerate() {
        let key = unit
            .iter()
            .any(|n| matches!(hevc::nal_type(n), Some(16..=21)));
        // CodedFramesX: no composition time (no B-frames).
        let mut body = BytesMut::from(if key {
            &b"\x93hvc1"[..]
        } else {
            &b"\xA3hvc1"[..]
        });
        for nal in unit {
            body.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            body.extend_from_slice(nal);
        }
        s.push(TagKind::Video, i as u32 * 40, &body).unwrap();
    }
    s.finish();
    assert_eq!(units.len(), 50);
    let dir = tempfile::tempdir().unwrap();
    check_hls(&s, dir.path(), "hevc", "640", false, 2.0);
}
