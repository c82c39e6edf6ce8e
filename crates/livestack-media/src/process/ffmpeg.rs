//! The ffmpeg command lines livestack runs, as pure functions.
//!
//! Owns: every argument livestack passes to ffmpeg, built from templates
//! and settings so that they can be read and snapshot-tested without
//! running anything. Must not: spawn processes or touch files (the
//! supervisor and the jobs do).
//!
//! Every job reads its source from livestack's own RTMP port and either
//! publishes back to it (transcoding, watermarks) or writes files into a
//! working directory (recording, snapshots). The arguments start with
//! [`common`]: quiet logs (warnings and errors only, which the supervisor
//! keeps for its messages), no stats line, and `stdin` read for the `q`
//! command that ends a job cleanly (files finalized) rather than killed.

use livestack_core::rules::{Profile, RecordFormat, Rendition, VideoCodec, WatermarkSpec};
use std::path::Path;

/// Where a job reads and writes, and what it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Io {
    /// The source, an RTMP URL on loopback.
    pub(crate) input: String,
    /// The destination: an RTMP URL, a file or a file pattern.
    pub(crate) output: String,
}

/// Arguments every job starts with.
fn common(input: &str) -> Vec<String> {
    strings(&[
        "-hide_banner",
        "-loglevel",
        "warning",
        "-nostats",
        // Give up on a source that stalls rather than hang for ever; the
        // supervisor restarts the job if the stream is still live.
        "-rw_timeout",
        "15000000",
        "-i",
        input,
    ])
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| (*s).to_owned()).collect()
}

/// The `scale` filter for a rendition's size, if it changes the size.
/// Zero keeps the source's; one side zero keeps the aspect ratio (`-2`:
/// even, as encoders need).
fn scale_filter(r: &Rendition) -> Option<String> {
    match (r.width, r.height) {
        (0, 0) => None,
        (w, 0) => Some(format!("scale={w}:-2")),
        (0, h) => Some(format!("scale=-2:{h}")),
        (w, h) if r.short_edge_as_height => {
            // The short edge gets `height`, whatever the orientation.
            Some(format!(
                "scale='if(gte(iw,ih),-2,{h})':'if(gte(iw,ih),{h},-2)'"
            ))
            .filter(|_| w > 0)
        }
        (w, h) => Some(format!("scale={w}:{h}")),
    }
}

/// The filter graph that lays a watermark over input 0 from input 1:
/// the picture scaled to `width`%/`height`% of the video (0: the
/// picture's own size; one side 0: that side keeps the picture's aspect
/// ratio) at `x`%/`y`% from the top left. Then `after` (a scale, say).
fn watermark_graph(w: &WatermarkSpec, after: Option<&str>) -> String {
    // In scale2ref (ffmpeg 5.1 as Debian ships it) `iw`/`ih` are the
    // reference's (the video's) size and `main_w`/`main_h` the scaled
    // input's (the picture's): checked with showinfo.
    let scale = match (w.width, w.height) {
        (0, 0) => "w=main_w:h=main_h".to_owned(),
        (pw, 0) => format!("w=iw*{pw}/100:h=ow*main_h/main_w"),
        (0, ph) => format!("w=oh*main_w/main_h:h=ih*{ph}/100"),
        (pw, ph) => format!("w=iw*{pw}/100:h=ih*{ph}/100"),
    };
    let tail = after.map(|a| format!(",{a}")).unwrap_or_default();
    format!(
        "[1:v][0:v]scale2ref={scale}[wm][base];\
         [base][wm]overlay=x=main_w*{x}/100:y=main_h*{y}/100{tail}[v]",
        x = w.x,
        y = w.y,
    )
}

/// The `-profile:v` name of an H.264 profile.
fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Baseline => "baseline",
        Profile::Main => "main",
        Profile::High => "high",
    }
}

/// Video encoding arguments for a rendition: codec, bitrate (kbps; with a
/// VBV buffer of two seconds so the rate holds over short windows),
/// frame rate and a keyframe every `gop` seconds.
fn video_encoding(r: &Rendition, profile: Profile, out: &mut Vec<String>) {
    // `Origin` ("the source's codec") is resolved by the caller; H.264
    // when it was not.
    match r.video_codec {
        VideoCodec::H265 => out.extend(strings(&["-c:v", "libx265", "-preset", "veryfast"])),
        _ => {
            out.extend(strings(&["-c:v", "libx264", "-preset", "veryfast"]));
            out.extend(strings(&["-profile:v", profile_name(profile)]));
        }
    }
    out.extend(strings(&["-pix_fmt", "yuv420p"]));
    if r.video_bitrate > 0 {
        let b = r.video_bitrate;
        out.extend([
            "-b:v".to_owned(),
            format!("{b}k"),
            "-maxrate".to_owned(),
            format!("{b}k"),
            "-bufsize".to_owned(),
            format!("{}k", b * 2),
        ]);
    }
    if r.fps > 0 {
        out.extend(["-r".to_owned(), r.fps.to_string()]);
    }
    let gop = if r.gop == 0 { 2 } else { r.gop };
    out.extend([
        "-force_key_frames".to_owned(),
        format!("expr:gte(t,n_forced*{gop})"),
        "-sc_threshold".to_owned(),
        "0".to_owned(),
    ]);
}

/// A rendition's video and audio encoding, or `-vn` / `-an` for what it
/// leaves out.
fn av_encoding(r: &Rendition, profile: Profile, a: &mut Vec<String>) {
    if r.video {
        video_encoding(r, profile, a);
    } else {
        a.push("-vn".to_owned());
    }
    if r.audio {
        audio_encoding(r, a);
    } else {
        a.push("-an".to_owned());
    }
}

/// What encodes a relay task's push by a transcode template's
/// rendition: its size, video and audio settings (`-c copy` without one).
pub(crate) fn relay_encoding(r: &Rendition, profile: Profile) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(scale) = scale_filter(r) {
        a.extend(["-vf".to_owned(), scale]);
    }
    av_encoding(r, profile, &mut a);
    a
}

/// A relay task's own watermarks (inputs 1.. of its ffmpeg, in order)
/// laid over its source (input 0), each sized in percent of the video and
/// placed from its corner, then encoded by `rendition` (the task's
/// transcode template) or as H.264 at about the source's rate with the
/// sound copied: the filter graph, the maps and the encoding.
pub(crate) fn relay_watermarks(
    marks: &[livestack_core::pull::PullWatermark],
    rendition: Option<(&Rendition, Profile)>,
) -> Vec<String> {
    let mut graph = Vec::new();
    let mut base = "0:v".to_owned();
    for (k, w) in marks.iter().enumerate() {
        let scale = match (w.width, w.height) {
            (0, 0) => "w=main_w:h=main_h".to_owned(),
            (pw, 0) => format!("w=iw*{pw}/100:h=ow*main_h/main_w"),
            (0, ph) => format!("w=oh*main_w/main_h:h=ih*{ph}/100"),
            (pw, ph) => format!("w=iw*{pw}/100:h=ih*{ph}/100"),
        };
        let from_left = format!("main_w*{}/100", w.x);
        let from_top = format!("main_h*{}/100", w.y);
        let from_right = format!("main_w-overlay_w-main_w*{}/100", w.x);
        let from_bottom = format!("main_h-overlay_h-main_h*{}/100", w.y);
        let (x, y) = match w.location {
            1 => (from_right, from_top),
            2 => (from_right, from_bottom),
            3 => (from_left, from_bottom),
            _ => (from_left, from_top),
        };
        graph.push(format!(
            "[{i}:v][{base}]scale2ref={scale}[wm{k}][ref{k}];[ref{k}][wm{k}]overlay=x={x}:y={y}[b{k}]",
            i = k + 1
        ));
        base = format!("b{k}");
    }
    let scale = rendition
        .and_then(|(r, _)| scale_filter(r))
        .map(|s| format!(",{s}"))
        .unwrap_or_default();
    graph.push(format!("[{base}]format=yuv420p{scale}[v]"));
    let mut a = vec!["-filter_complex".to_owned(), graph.join(";")];
    a.extend(strings(&["-map", "[v]", "-map", "0:a:0?"]));
    match rendition {
        Some((r, profile)) => av_encoding(r, profile, &mut a),
        None => {
            let r = Rendition {
                video: true,
                video_bitrate: 1500,
                gop: 2,
                ..Rendition::default()
            };
            video_encoding(&r, Profile::High, &mut a);
            a.extend(strings(&["-c:a", "copy"]));
        }
    }
    a
}

/// Audio encoding arguments for a rendition.
fn audio_encoding(r: &Rendition, out: &mut Vec<String>) {
    let rate = if r.audio_bitrate == 0 {
        128
    } else {
        r.audio_bitrate
    };
    out.extend([
        "-c:a".to_owned(),
        "aac".to_owned(),
        "-b:a".to_owned(),
        format!("{rate}k"),
    ]);
}

/// A transcode: the source re-encoded as `r` (with the watermark laid
/// over it first, if any) and published as FLV to `io.output`.
pub(crate) fn transcode(
    io: &Io,
    r: &Rendition,
    profile: Profile,
    watermark: Option<(&WatermarkSpec, &str)>,
) -> Vec<String> {
    let mut a = common(&io.input);
    let scale = scale_filter(r);
    match (watermark, r.video) {
        (Some((w, picture)), true) => {
            a.extend(["-i".to_owned(), picture.to_owned()]);
            a.extend([
                "-filter_complex".to_owned(),
                watermark_graph(w, scale.as_deref()),
                "-map".to_owned(),
                "[v]".to_owned(),
            ]);
        }
        (_, true) => {
            a.extend(strings(&["-map", "0:v:0?"]));
            if let Some(s) = scale {
                a.extend(["-vf".to_owned(), s]);
            }
        }
        (_, false) => {}
    }
    if r.audio {
        a.extend(strings(&["-map", "0:a:0?"]));
    }
    av_encoding(r, profile, &mut a);
    a.extend(strings(&["-f", "flv", &io.output]));
    a
}

/// One output of a [`ladder`]: its rendition, H.264 profile and the RTMP
/// URL it is published to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rung {
    pub(crate) rendition: Rendition,
    pub(crate) profile: Profile,
    pub(crate) output: String,
}

/// Several transcodes of one source in one process: the source is
/// decoded once, its pictures `split` to each rung's scaler and encoder,
/// and every rung published as FLV to its own URL. Audio is encoded per
/// rung (its rate is the rung's; decoding it twice costs little).
pub(crate) fn ladder(input: &str, rungs: &[Rung]) -> Vec<String> {
    let mut a = common(input);
    let video: Vec<usize> = (0..rungs.len())
        .filter(|&k| rungs[k].rendition.video)
        .collect();
    if !video.is_empty() {
        let mut graph = format!("[0:v]split={}", video.len());
        for k in &video {
            graph.push_str(&format!("[s{k}]"));
        }
        for k in &video {
            let filter = scale_filter(&rungs[*k].rendition).unwrap_or_else(|| "null".to_owned());
            graph.push_str(&format!(";[s{k}]{filter}[v{k}]"));
        }
        a.extend(["-filter_complex".to_owned(), graph]);
    }
    for (k, rung) in rungs.iter().enumerate() {
        let r = &rung.rendition;
        if r.video {
            a.extend(["-map".to_owned(), format!("[v{k}]")]);
        }
        if r.audio {
            a.extend(strings(&["-map", "0:a:0?"]));
        }
        av_encoding(r, rung.profile, &mut a);
        a.extend(strings(&["-f", "flv", &rung.output]));
    }
    a
}

/// Video re-encoded at about the source's bitrate (at least 300 kbps),
/// 2 s GOP, audio kept: the jobs that change the picture, not the rendition.
fn at_source_rate(video_kbps: u32) -> Rendition {
    Rendition {
        video: true,
        audio: true,
        video_bitrate: video_kbps.max(300),
        gop: 2,
        ..Rendition::default()
    }
}

/// A watermark job: the source with the picture laid over it, at the
/// source's size, frame rate and (about) its video bitrate; audio copied.
pub(crate) fn watermark(io: &Io, w: &WatermarkSpec, picture: &str, video_kbps: u32) -> Vec<String> {
    let r = at_source_rate(video_kbps);
    let mut a = common(&io.input);
    a.extend(["-i".to_owned(), picture.to_owned()]);
    a.extend([
        "-filter_complex".to_owned(),
        watermark_graph(w, None),
        "-map".to_owned(),
        "[v]".to_owned(),
        "-map".to_owned(),
        "0:a:0?".to_owned(),
    ]);
    video_encoding(&r, Profile::High, &mut a);
    a.extend(strings(&["-c:a", "copy", "-f", "flv", &io.output]));
    a
}

/// A WebRTC baseline job: the source's video as H.264 constrained
/// baseline (no B-frames) at about its bitrate, with x264's zero-latency
/// tuning (no frame threads or lookahead holding pictures back: these
/// players want the least delay); audio copied.
pub(crate) fn webrtc_baseline(io: &Io, video_kbps: u32) -> Vec<String> {
    let r = at_source_rate(video_kbps);
    let mut a = common(&io.input);
    a.extend(strings(&["-map", "0:v:0", "-map", "0:a:0?"]));
    video_encoding(&r, Profile::Baseline, &mut a);
    a.extend(strings(&[
        "-tune",
        "zerolatency",
        "-c:a",
        "copy",
        "-f",
        "flv",
        &io.output,
    ]));
    a
}

/// One input of a mix job's ffmpeg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MixPart {
    /// A live stream on loopback RTMP, and which of its tracks are used
    /// (`audio` only when it has sound).
    Stream {
        url: String,
        video: bool,
        audio: bool,
    },
    /// A picture file, its alpha channel honoured or not.
    Picture { path: String, alpha: bool },
    /// A plain colour (0xRRGGBB) of a size.
    Canvas { color: u32, width: u32, height: u32 },
}

/// Where one input's picture goes on a mix's canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MixPlace {
    /// The input (an index into the parts).
    pub(crate) part: usize,
    pub(crate) rect: livestack_core::mix::Rect,
    pub(crate) crop: Option<livestack_core::mix::Crop>,
}

/// A mix job's picture and sound: its inputs, the canvas, the pictures in
/// layer order (the first is the background) and the output settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MixGraph {
    pub(crate) parts: Vec<MixPart>,
    pub(crate) canvas: (u32, u32),
    pub(crate) places: Vec<MixPlace>,
    /// `UseMixCropCenter`: cut to the place's shape instead of stretching.
    pub(crate) crop_center: bool,
    pub(crate) output: livestack_core::mix::MixOutput,
}

/// A mix: every input's picture scaled (and cropped) into its place and
/// laid over the background in layer order, their sound mixed, encoded
/// as H.264 and AAC and published as FLV to `output`. Inputs that end
/// keep their last picture on the canvas (`overlay`'s `eof_action`); live
/// inputs give up after 5 s without data, so one that stalls does not
/// hold the others up. Generated inputs (canvases, pictures) are paced at
/// their own rate (`-re`); live ones arrive at theirs.
pub(crate) fn mix(g: &MixGraph, output: &str) -> Vec<String> {
    let o = &g.output;
    let fps = if o.fps == 0 { 25 } else { o.fps };
    let mut a = strings(&["-hide_banner", "-loglevel", "warning", "-nostats"]);
    for part in &g.parts {
        match part {
            MixPart::Stream { url, .. } => {
                a.extend(strings(&["-rw_timeout", "5000000", "-i", url]));
            }
            MixPart::Picture { path, .. } => {
                a.extend(strings(&["-re", "-loop", "1", "-framerate"]));
                a.extend([fps.to_string(), "-i".to_owned(), path.clone()]);
            }
            MixPart::Canvas {
                color,
                width,
                height,
            } => {
                a.extend(strings(&["-re", "-f", "lavfi", "-i"]));
                a.push(format!("color=c=0x{color:06x}:s={width}x{height}:r={fps}"));
            }
        }
    }
    let mut graph: Vec<String> = Vec::new();
    let (cw, ch) = g.canvas;
    for (k, p) in g.places.iter().enumerate() {
        let mut f: Vec<String> = Vec::new();
        match g.parts.get(p.part) {
            Some(MixPart::Stream { .. }) => f.push("setpts=PTS-STARTPTS".into()),
            Some(MixPart::Picture { alpha, .. }) => f.push(
                if *alpha {
                    "format=rgba"
                } else {
                    "format=rgb24"
                }
                .into(),
            ),
            _ => {}
        }
        if let Some(c) = p.crop {
            f.push(format!("crop={}:{}:{}:{}", c.width, c.height, c.x, c.y));
        }
        let (w, h) = if k == 0 {
            (cw, ch)
        } else {
            (p.rect.width.max(1), p.rect.height.max(1))
        };
        if g.crop_center {
            f.push(format!(
                "scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h}"
            ));
        } else {
            f.push(format!("scale={w}:{h}"));
        }
        if k == 0 {
            f.push(format!("fps={fps}"));
            f.push("format=yuv420p".into());
        }
        graph.push(format!("[{}:v]{}[v{k}]", p.part, f.join(",")));
    }
    let mut base = "v0".to_owned();
    for (k, p) in g.places.iter().enumerate().skip(1) {
        let next = format!("b{k}");
        graph.push(format!(
            "[{base}][v{k}]overlay=x={}:y={}:eof_action=repeat[{next}]",
            p.rect.x, p.rect.y
        ));
        base = next;
    }
    graph.push(format!("[{base}]format=yuv420p[vout]"));
    let sounds: Vec<usize> = g
        .parts
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p, MixPart::Stream { audio: true, .. }))
        .map(|(j, _)| j)
        .collect();
    for (k, j) in sounds.iter().enumerate() {
        graph.push(format!(
            "[{j}:a]asetpts=PTS-STARTPTS,aresample=async=1[a{k}]"
        ));
    }
    match sounds.len() {
        0 => {}
        1 => graph.push("[a0]anull[aout]".into()),
        n => {
            let labels: String = (0..n).map(|k| format!("[a{k}]")).collect();
            graph.push(format!(
                "{labels}amix=inputs={n}:duration=longest:dropout_transition=0[aout]"
            ));
        }
    }
    a.extend(["-filter_complex".to_owned(), graph.join(";")]);
    a.extend(strings(&["-map", "[vout]"]));
    let r = Rendition {
        video: true,
        audio: !sounds.is_empty(),
        video_bitrate: if o.video_kbps == 0 {
            1500
        } else {
            o.video_kbps
        },
        gop: if o.gop_secs == 0 { 2 } else { o.gop_secs },
        audio_bitrate: o.audio_kbps,
        ..Rendition::default()
    };
    video_encoding(&r, Profile::Main, &mut a);
    if sounds.is_empty() {
        a.push("-an".to_owned());
    } else {
        a.extend(strings(&["-map", "[aout]"]));
        audio_encoding(&r, &mut a);
        let rate = if o.sample_rate == 0 {
            44_100
        } else {
            o.sample_rate
        };
        let channels = if o.channels == 0 { 2 } else { o.channels };
        a.extend(["-ar".to_owned(), rate.to_string()]);
        a.extend(["-ac".to_owned(), channels.to_string()]);
    }
    a.extend(strings(&["-f", "flv", output]));
    a
}

/// The segment list a recording writes in its directory: one CSV line
/// (`file,start,end`, seconds) as each file is complete.
pub(crate) const SEGMENT_LIST: &str = "segments.csv";
/// The playlist of an HLS recording, in its directory.
pub(crate) const HLS_PLAYLIST: &str = "index.m3u8";
/// Seconds per segment of an HLS recording.
pub(crate) const HLS_SEGMENT_SECS: u32 = 10;

/// The extension of a recorded file of `format` (HLS: its segments).
pub(crate) fn record_extension(format: RecordFormat) -> &'static str {
    match format {
        RecordFormat::Flv => "flv",
        RecordFormat::Mp4 => "mp4",
        RecordFormat::Aac => "aac",
        RecordFormat::Mp3 => "mp3",
        RecordFormat::Hls => "ts",
    }
}

/// Rewrites a finished fragmented MP4 `input` as a plain MP4 `output`
/// with its real duration and the `moov` box first ("faststart"), as
/// CSS delivers MP4 recordings: players then know the length at once and
/// can seek over HTTP. Streams are copied, not encoded.
pub(crate) fn faststart(input: &Path, output: &Path) -> Vec<String> {
    vec![
        "-hide_banner".into(),
        "-loglevel".into(),
        "error".into(),
        "-nostdin".into(),
        "-y".into(),
        "-i".into(),
        input.display().to_string(),
        "-map".into(),
        "0".into(),
        "-c".into(),
        "copy".into(),
        "-movflags".into(),
        "+faststart".into(),
        "-f".into(),
        "mp4".into(),
        output.display().to_string(),
    ]
}

/// What a recording writes, for [`record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordIo<'a> {
    /// The source, an RTMP URL on loopback.
    pub(crate) input: &'a str,
    /// The job's working directory (files are written inside it).
    pub(crate) dir: &'a str,
    /// The format.
    pub(crate) format: RecordFormat,
    /// Seconds per file (not used for HLS: one playlist per push).
    pub(crate) interval: u32,
    /// Sound only (`RecordType` audio of a legacy task).
    pub(crate) audio_only: bool,
}

/// A recording: the source's streams copied (MP3: the sound encoded) into
/// `dir`.
///
/// FLV, MP4, AAC and MP3 go through the segment muxer, one file every
/// `interval` seconds (cut at the next keyframe) named `part-NNNNNN.ext`,
/// each with its own timestamps from zero, and a line in
/// [`SEGMENT_LIST`] when a file is complete: that is how livestack learns
/// it can deliver it. Every file is written through packet by packet
/// (`flush_packets`) and MP4 is fragmented at each keyframe with the
/// (empty) `moov` first, so a file cut short by a crash plays up to its
/// last keyframe. HLS is one event playlist ([`HLS_PLAYLIST`]) listing
/// every segment of the push.
pub(crate) fn record(io: &RecordIo<'_>) -> Vec<String> {
    let mut a = common(io.input);
    let audio_only = io.audio_only || matches!(io.format, RecordFormat::Aac | RecordFormat::Mp3);
    if audio_only {
        a.extend(strings(&["-map", "0:a:0", "-vn"]));
    } else {
        // Leaves out the data stream an RTMP source also has.
        a.extend(strings(&["-map", "0:v:0?", "-map", "0:a:0?"]));
    }
    match io.format {
        RecordFormat::Mp3 => a.extend(strings(&["-c:a", "libmp3lame", "-b:a", "128k"])),
        _ => a.extend(strings(&["-c", "copy"])),
    }
    let ext = record_extension(io.format);
    if io.format == RecordFormat::Hls {
        a.extend([
            "-f".to_owned(),
            "hls".to_owned(),
            "-hls_time".to_owned(),
            HLS_SEGMENT_SECS.to_string(),
            "-hls_list_size".to_owned(),
            "0".to_owned(),
            "-hls_playlist_type".to_owned(),
            "event".to_owned(),
            "-hls_segment_filename".to_owned(),
            format!("{}/seg-%06d.{ext}", io.dir),
            format!("{}/{HLS_PLAYLIST}", io.dir),
        ]);
        return a;
    }
    let (muxer, options) = match io.format {
        RecordFormat::Mp4 => (
            "mp4",
            "movflags=+frag_keyframe+empty_moov+default_base_moof:flush_packets=1",
        ),
        RecordFormat::Aac => ("adts", "flush_packets=1"),
        RecordFormat::Mp3 => ("mp3", "flush_packets=1"),
        _ => ("flv", "flush_packets=1"),
    };
    a.extend([
        "-f".to_owned(),
        "segment".to_owned(),
        "-segment_time".to_owned(),
        io.interval.max(1).to_string(),
        "-reset_timestamps".to_owned(),
        "1".to_owned(),
        "-segment_list".to_owned(),
        format!("{}/{SEGMENT_LIST}", io.dir),
        "-segment_list_type".to_owned(),
        "csv".to_owned(),
        "-segment_format".to_owned(),
        muxer.to_owned(),
        "-segment_format_options".to_owned(),
        options.to_owned(),
        format!("{}/part-%06d.{ext}", io.dir),
    ]);
    a
}

/// A snapshot job: one JPEG of the source every `interval` seconds (the
/// first at once), scaled to `width`×`height` (0 keeps the source's; one
/// side 0 keeps the aspect ratio), written atomically (a temporary name,
/// then a rename) as numbered files to `io.output` (a `%08d.jpg` pattern),
/// so that a file with its final name is always whole.
pub(crate) fn snapshot(io: &Io, interval: u32, width: u32, height: u32) -> Vec<String> {
    let mut a = common(&io.input);
    let size = Rendition {
        width,
        height,
        ..Rendition::default()
    };
    let mut filter = format!("fps=1/{}", interval.max(1));
    if let Some(scale) = scale_filter(&size) {
        filter = format!("{filter},{scale}");
    }
    a.extend(strings(&["-map", "0:v:0", "-an", "-vf", &filter]));
    a.extend(strings(&[
        "-q:v",
        "3",
        "-f",
        "image2",
        "-atomic_writing",
        "1",
        &io.output,
    ]));
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use livestack_core::rules::{Picture, PictureFormat};

    fn io() -> Io {
        Io {
            input: "rtmp://127.0.0.1:1935/live/cam?livestack_internal=T".into(),
            output: "rtmp://127.0.0.1:1935/live/cam_hd?livestack_internal=T".into(),
        }
    }

    fn hd() -> Rendition {
        Rendition {
            video: true,
            audio: true,
            video_bitrate: 1000,
            width: 0,
            height: 720,
            fps: 25,
            gop: 2,
            audio_bitrate: 64,
            ..Rendition::default()
        }
    }

    fn mark() -> WatermarkSpec {
        WatermarkSpec {
            source_url: "http://x/p.png".into(),
            picture: Picture {
                file: "1.png".into(),
                format: PictureFormat::Png,
                width: 64,
                height: 32,
                size: 10,
            },
            x: 5,
            y: 10,
            width: 20,
            height: 0,
            background_width: 0,
            background_height: 0,
        }
    }

    #[test]
    fn a_transcode_scales_encodes_at_the_template_rates_and_publishes_flv() {
        assert_eq!(
            transcode(&io(), &hd(), Profile::Main, None).join(" "),
            "-hide_banner -loglevel warning -nostats -rw_timeout 15000000 \
             -i rtmp://127.0.0.1:1935/live/cam?livestack_internal=T \
             -map 0:v:0? -vf scale=-2:720 -map 0:a:0? \
             -c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p \
             -b:v 1000k -maxrate 1000k -bufsize 2000k -r 25 \
             -force_key_frames expr:gte(t,n_forced*2) -sc_threshold 0 \
             -c:a aac -b:a 64k \
             -f flv rtmp://127.0.0.1:1935/live/cam_hd?livestack_internal=T"
        );
    }

    #[test]
    fn an_audio_only_transcode_drops_the_video() {
        let r = Rendition {
            video: false,
            ..hd()
        };
        let args = transcode(&io(), &r, Profile::Main, None).join(" ");
        assert!(
            args.contains(" -map 0:a:0? -vn -c:a aac -b:a 64k -f flv "),
            "{args}"
        );
        assert!(!args.contains("libx264"));
    }

    #[test]
    fn a_ladder_decodes_once_and_splits_the_pictures_to_each_rungs_encoder() {
        let url = |s: &str| format!("rtmp://127.0.0.1:1935/live/cam_{s}?livestack_internal=T");
        let sd = Rendition {
            height: 360,
            video_bitrate: 500,
            ..hd()
        };
        let same_size = Rendition { height: 0, ..hd() };
        let sound = Rendition {
            video: false,
            ..hd()
        };
        let rungs = [
            (hd(), "hd"),
            (sd, "sd"),
            (sound, "aac"),
            (same_size, "full"),
        ]
        .map(|(rendition, name)| Rung {
            rendition,
            profile: Profile::Main,
            output: url(name),
        });
        let args = ladder(&io().input, &rungs).join(" ");
        assert_eq!(args.matches(" -i ").count(), 1, "{args}");
        assert!(
            args.contains(
                " -filter_complex [0:v]split=3[s0][s1][s3];[s0]scale=-2:720[v0];\
                 [s1]scale=-2:360[v1];[s3]null[v3] "
            ),
            "{args}"
        );
        assert!(
            args.contains(" -map [v1] -map 0:a:0? -c:v libx264 ")
                && args.contains(" -b:v 500k ")
                && args.contains(&format!(
                    " -map 0:a:0? -vn -c:a aac -b:a 64k -f flv {}",
                    url("aac")
                ))
                && args.ends_with(&format!("-f flv {}", url("full"))),
            "{args}"
        );
        assert_eq!(args.matches(" -f flv ").count(), 4);
    }

    #[test]
    fn a_transcode_with_a_watermark_overlays_before_scaling() {
        let args = transcode(&io(), &hd(), Profile::High, Some((&mark(), "/p/1.png")));
        let joined = args.join(" ");
        assert!(joined.contains(" -i /p/1.png -filter_complex "), "{joined}");
        let graph = &args[args.iter().position(|a| a == "-filter_complex").unwrap() + 1];
        assert_eq!(
            graph,
            "[1:v][0:v]scale2ref=w=iw*20/100:h=ow*main_h/main_w[wm][base];\
             [base][wm]overlay=x=main_w*5/100:y=main_h*10/100,scale=-2:720[v]"
        );
        assert!(joined.contains("-map [v] -map 0:a:0?"), "{joined}");
    }

    #[test]
    fn a_snapshot_job_writes_one_scaled_jpeg_per_interval_atomically() {
        let io = Io {
            input: "rtmp://127.0.0.1:1935/live/cam?livestack_internal=T".into(),
            output: "/w/%08d.jpg".into(),
        };
        assert_eq!(
            snapshot(&io, 10, 320, 0).join(" "),
            "-hide_banner -loglevel warning -nostats -rw_timeout 15000000 \
             -i rtmp://127.0.0.1:1935/live/cam?livestack_internal=T \
             -map 0:v:0 -an -vf fps=1/10,scale=320:-2 \
             -q:v 3 -f image2 -atomic_writing 1 /w/%08d.jpg"
        );
        assert!(snapshot(&io, 5, 0, 0).join(" ").contains("-vf fps=1/5 "));
    }

    #[test]
    fn sizes_of_zero_keep_the_source_size_or_aspect() {
        let mut r = hd();
        (r.width, r.height) = (0, 0);
        assert_eq!(scale_filter(&r), None);
        (r.width, r.height) = (640, 0);
        assert_eq!(scale_filter(&r).as_deref(), Some("scale=640:-2"));
        (r.width, r.height) = (640, 360);
        assert_eq!(scale_filter(&r).as_deref(), Some("scale=640:360"));
    }

    #[test]
    fn a_watermark_job_keeps_the_source_size_and_copies_the_audio() {
        let args = watermark(&io(), &mark(), "/p/1.png", 800).join(" ");
        assert!(
            args.contains("overlay=x=main_w*5/100:y=main_h*10/100[v]"),
            "{args}"
        );
        assert!(args.contains("-b:v 800k"), "{args}");
        assert!(
            args.ends_with(
                "-c:a copy -f flv rtmp://127.0.0.1:1935/live/cam_hd?livestack_internal=T"
            ),
            "{args}"
        );
    }

    fn rec(format: RecordFormat, audio_only: bool) -> String {
        record(&RecordIo {
            input: "rtmp://127.0.0.1:1935/live/cam?livestack_internal=T",
            dir: "/w/r1",
            format,
            interval: 1800,
            audio_only,
        })
        .join(" ")
    }

    #[test]
    fn an_flv_recording_copies_the_streams_into_segments_listed_as_they_complete() {
        assert_eq!(
            rec(RecordFormat::Flv, false),
            "-hide_banner -loglevel warning -nostats -rw_timeout 15000000 \
             -i rtmp://127.0.0.1:1935/live/cam?livestack_internal=T \
             -map 0:v:0? -map 0:a:0? -c copy \
             -f segment -segment_time 1800 -reset_timestamps 1 \
             -segment_list /w/r1/segments.csv -segment_list_type csv \
             -segment_format flv -segment_format_options flush_packets=1 \
             /w/r1/part-%06d.flv"
        );
    }

    #[test]
    fn an_mp4_recording_is_fragmented_so_that_a_cut_file_still_plays() {
        assert!(rec(RecordFormat::Mp4, false).ends_with(
            "-segment_format mp4 -segment_format_options \
             movflags=+frag_keyframe+empty_moov+default_base_moof:flush_packets=1 \
             /w/r1/part-%06d.mp4"
        ));
    }

    #[test]
    fn audio_recordings_drop_the_video_and_mp3_is_encoded() {
        let aac = rec(RecordFormat::Aac, false);
        assert!(aac.contains(" -map 0:a:0 -vn -c copy -f segment "), "{aac}");
        assert!(aac.ends_with(
            "-segment_format adts -segment_format_options flush_packets=1 /w/r1/part-%06d.aac"
        ));
        let mp3 = rec(RecordFormat::Mp3, false);
        assert!(
            mp3.contains(" -map 0:a:0 -vn -c:a libmp3lame -b:a 128k -f segment "),
            "{mp3}"
        );
        assert!(mp3.ends_with("/w/r1/part-%06d.mp3"), "{mp3}");
    }

    #[test]
    fn an_audio_only_task_records_flv_without_video() {
        let flv = rec(RecordFormat::Flv, true);
        assert!(flv.contains(" -map 0:a:0 -vn -c copy -f segment "), "{flv}");
        assert!(flv.ends_with("/w/r1/part-%06d.flv"), "{flv}");
    }

    #[test]
    fn an_hls_recording_is_one_event_playlist_listing_every_segment() {
        assert_eq!(
            rec(RecordFormat::Hls, false),
            "-hide_banner -loglevel warning -nostats -rw_timeout 15000000 \
             -i rtmp://127.0.0.1:1935/live/cam?livestack_internal=T \
             -map 0:v:0? -map 0:a:0? -c copy \
             -f hls -hls_time 10 -hls_list_size 0 -hls_playlist_type event \
             -hls_segment_filename /w/r1/seg-%06d.ts /w/r1/index.m3u8"
        );
    }

    #[test]
    fn a_mix_lays_each_picture_in_its_place_over_the_background_and_mixes_the_sound() {
        use livestack_core::mix::{Crop, MixOutput, Rect};
        let rect = |x, y, width, height| Rect {
            x,
            y,
            width,
            height,
        };
        let g = MixGraph {
            parts: vec![
                MixPart::Canvas {
                    color: 0x0000ff,
                    width: 640,
                    height: 360,
                },
                MixPart::Stream {
                    url: "rtmp://l/live/a?t=1".into(),
                    video: true,
                    audio: true,
                },
                MixPart::Stream {
                    url: "rtmp://l/live/b?t=2".into(),
                    video: false,
                    audio: true,
                },
                MixPart::Picture {
                    path: "/p/logo.png".into(),
                    alpha: true,
                },
            ],
            canvas: (640, 360),
            places: vec![
                MixPlace {
                    part: 0,
                    rect: rect(0, 0, 640, 360),
                    crop: None,
                },
                MixPlace {
                    part: 1,
                    rect: rect(320, 180, 320, 180),
                    crop: Some(Crop {
                        width: 100,
                        height: 50,
                        x: 10,
                        y: 20,
                    }),
                },
                MixPlace {
                    part: 3,
                    rect: rect(10, 10, 64, 64),
                    crop: None,
                },
            ],
            crop_center: false,
            output: MixOutput {
                stream: "out".into(),
                domain: "d".into(),
                app: "live".into(),
                replaces_input: false,
                video_kbps: 800,
                gop_secs: 0,
                fps: 0,
                audio_kbps: 0,
                sample_rate: 0,
                channels: 1,
            },
        };
        let args = mix(&g, "rtmp://l/live/out?t=3").join(" ");
        assert!(
            args.contains("-re -f lavfi -i color=c=0x0000ff:s=640x360:r=25"),
            "{args}"
        );
        assert!(
            args.contains("-rw_timeout 5000000 -i rtmp://l/live/a?t=1"),
            "{args}"
        );
        assert!(
            args.contains("-re -loop 1 -framerate 25 -i /p/logo.png"),
            "{args}"
        );
        assert!(
            args.contains(
                "[0:v]scale=640:360,fps=25,format=yuv420p[v0];\
                 [1:v]setpts=PTS-STARTPTS,crop=100:50:10:20,scale=320:180[v1];\
                 [3:v]format=rgba,scale=64:64[v2];\
                 [v0][v1]overlay=x=320:y=180:eof_action=repeat[b1];\
                 [b1][v2]overlay=x=10:y=10:eof_action=repeat[b2];\
                 [b2]format=yuv420p[vout];\
                 [1:a]asetpts=PTS-STARTPTS,aresample=async=1[a0];\
                 [2:a]asetpts=PTS-STARTPTS,aresample=async=1[a1];\
                 [a0][a1]amix=inputs=2:duration=longest:dropout_transition=0[aout]"
            ),
            "{args}"
        );
        assert!(args.contains("-b:v 800k"), "{args}");
        assert!(
            args.ends_with("-ar 44100 -ac 1 -f flv rtmp://l/live/out?t=3"),
            "{args}"
        );
    }
}
