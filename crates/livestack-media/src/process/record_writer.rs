//! The in-process recorder: writes a live stream's FLV, MP4, HLS or AAC
//! recording straight from its hub, with no ffmpeg process, into the same
//! files an ffmpeg recording job leaves in its directory (so delivery,
//! naming, callbacks and crash recovery in [`super::record`] are shared).
//!
//! Owns: cutting the stream into files of `RecordInterval` seconds at a
//! keyframe (any audio frame for audio-only), the part files
//! (`part-NNNNNN.<ext>`) and their CSV list (`file,start,end` in seconds
//! from the first frame, a line once a file is whole), or an HLS
//! recording's `seg-NNNNNN.ts` and EVENT playlist. MP4 is written
//! fragmented (one fragment about every second: a crash loses at most the
//! last one) and made plain at delivery ([`livestack_formats::mp4`]).
//! Must not: block the hub (it reads like a player, and falls behind by
//! dropping frames, logged), re-encode (MP3 stays an ffmpeg job), or keep
//! more than a fragment or a segment of media in memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use livestack_core::rules::RecordFormat;
use livestack_formats::aac::AudioSpecificConfig;
use livestack_formats::flv::{self, AudioCodec, AudioInfo, TagKind};
use livestack_formats::hls::{Segmenter, SegmenterConfig};
use livestack_formats::llhls::{LlConfig, LlPackager};
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::ffmpeg::{record_extension, HLS_PLAYLIST, HLS_SEGMENT_SECS, SEGMENT_LIST};
use crate::deliver::append;
use crate::stream::hub::{Frame, FrameKind, Subscription};

/// Buffered bytes are written at least this often (what a crash may lose
/// of an FLV or AAC file) and whenever this many are waiting.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const FLUSH_BYTES: usize = 256 << 10;
/// MP4 fragments (and so flushes) are about this long.
const FRAGMENT_MS: u32 = 1000;

/// What to record and where.
pub(super) struct Target<'a> {
    pub(super) dir: &'a Path,
    pub(super) format: RecordFormat,
    /// Seconds per file (not HLS).
    pub(super) interval: u32,
    /// Leave video out.
    pub(super) audio_only: bool,
    /// For logs.
    pub(super) label: &'a str,
}

/// Records from `sub` until the push ends or `cancel` fires, then closes
/// the last file. Errors are the directory's (a full disk, say): the job
/// ends and its supervisor tries again.
pub(super) async fn record(
    target: &Target<'_>,
    mut sub: Subscription,
    ended: impl std::future::Future<Output = ()>,
    cancel: &CancellationToken,
) -> std::io::Result<()> {
    tokio::pin!(ended);
    let mut w = Writer::new(target);
    for frame in std::mem::take(&mut sub.start) {
        w.frame(&frame).await?;
    }
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            () = &mut ended => break,
            r = sub.live.recv() => match r {
                Ok(frame) => w.frame(&frame).await?,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(job = target.label, "recording fell behind; {n} frames skipped");
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    w.close().await
}

/// The file being written and what it needs.
struct Writer<'a> {
    t: &'a Target<'a>,
    ext: &'static str,
    /// The latest metadata and sequence headers, which start every file.
    metadata: Option<Arc<Frame>>,
    video_header: Option<Arc<Frame>>,
    audio_header: Option<Arc<Frame>>,
    /// The input's timeline: the last raw timestamp and its unwrapped
    /// value (milliseconds; 32-bit wraps and small steps back undone).
    clock: Option<(u32, i64)>,
    /// The first frame's unwrapped time: 0 s of the CSV list.
    origin: Option<i64>,
    /// The last step between frames, to close the last file.
    step: i64,
    last: i64,
    part: Option<Part>,
    parts: u32,
    /// HLS: the segmenter and the playlist's lines so far.
    hls: Option<Hls>,
}

struct Part {
    name: String,
    file: tokio::fs::File,
    start: i64,
    /// FLV: where the `duration` of the file's `onMetaData` is, written
    /// when the file is closed (players and ffprobe read the length of a
    /// file there).
    duration_at: Option<u64>,
    buf: BytesMut,
    flushed: Instant,
    kind: PartKind,
}

enum PartKind {
    Flv,
    Mp4 {
        packager: Box<LlPackager>,
        next_msn: u64,
        init_written: bool,
    },
    Aac {
        config: Option<AudioSpecificConfig>,
    },
}

struct Hls {
    segmenter: Segmenter,
    /// The playlist's lines for the segments closed so far.
    lines: String,
    target_secs: u64,
    /// The open segment: its number and length so far, written up to
    /// the last take.
    open: Option<(u64, u64)>,
    flushed: Instant,
}

impl<'a> Writer<'a> {
    fn new(t: &'a Target<'a>) -> Self {
        let hls = (t.format == RecordFormat::Hls).then(|| Hls {
            segmenter: Segmenter::new(SegmenterConfig {
                target_duration_ms: u64::from(HLS_SEGMENT_SECS) * 1000,
                window: 2,
                name: "seg".to_owned(),
                ..SegmenterConfig::default()
            }),
            lines: String::new(),
            target_secs: u64::from(HLS_SEGMENT_SECS),
            open: None,
            flushed: Instant::now(),
        });
        Writer {
            t,
            ext: record_extension(t.format),
            metadata: None,
            video_header: None,
            audio_header: None,
            clock: None,
            origin: None,
            step: 0,
            last: 0,
            part: None,
            parts: 0,
            hls,
        }
    }

    fn unwrap(&mut self, ts: u32) -> i64 {
        let now = match self.clock {
            None => i64::from(ts),
            Some((raw, at)) => at + i64::from(ts.wrapping_sub(raw) as i32),
        };
        self.clock = Some((ts, now));
        now
    }

    async fn frame(&mut self, f: &Arc<Frame>) -> std::io::Result<()> {
        if self.t.audio_only && f.kind == FrameKind::Video {
            return Ok(());
        }
        if let Some(hls) = &mut self.hls {
            return hls.push(self.t.dir, f).await;
        }
        let at = self.unwrap(f.timestamp);
        if f.sequence_header || f.kind == FrameKind::Script {
            let slot = match f.kind {
                FrameKind::Video => &mut self.video_header,
                FrameKind::Audio => &mut self.audio_header,
                FrameKind::Script => &mut self.metadata,
            };
            let changed = slot.as_ref().is_some_and(|old| old.payload != f.payload);
            *slot = Some(Arc::clone(f));
            // An MP4 file has one set of tracks: new codec settings start
            // a new file (FLV and AAC carry them inline).
            if changed && f.kind != FrameKind::Script && self.t.format == RecordFormat::Mp4 {
                self.close_part(at).await?;
            }
            if self.part.is_none() {
                return Ok(());
            }
        }
        // Files start on a keyframe, or any audio frame without video.
        let has_video = self.video_header.is_some() && !self.t.audio_only;
        let starts = if has_video {
            f.kind == FrameKind::Video && f.keyframe && !f.sequence_header
        } else {
            f.kind == FrameKind::Audio && !f.sequence_header
        };
        if starts {
            let long = self
                .part
                .as_ref()
                .is_some_and(|p| at - p.start >= i64::from(self.t.interval.max(1)) * 1000);
            if long {
                self.close_part(at).await?;
            }
            if self.part.is_none() {
                self.open_part(at).await?;
            }
        }
        if at > self.last {
            self.step = (at - self.last).min(100);
            self.last = at;
        }
        let Some(part) = &mut self.part else {
            return Ok(());
        };
        part.push(f, at)?;
        if part.flushed.elapsed() >= FLUSH_EVERY || part.buf.len() >= FLUSH_BYTES {
            part.flush().await?;
        }
        Ok(())
    }

    async fn open_part(&mut self, at: i64) -> std::io::Result<()> {
        self.origin.get_or_insert(at);
        let name = format!("part-{:06}.{}", self.parts, self.ext);
        self.parts += 1;
        let file = tokio::fs::File::create(self.t.dir.join(&name)).await?;
        let kind = match self.t.format {
            RecordFormat::Mp4 => PartKind::Mp4 {
                packager: Box::new(LlPackager::new(LlConfig {
                    part_target_ms: FRAGMENT_MS,
                    segment_target_ms: FRAGMENT_MS,
                    window: 2,
                    name: "part".to_owned(),
                })),
                next_msn: 0,
                init_written: false,
            },
            RecordFormat::Aac => PartKind::Aac { config: None },
            _ => PartKind::Flv,
        };
        let mut part = Part {
            name,
            file,
            start: at,
            duration_at: None,
            buf: BytesMut::with_capacity(64 << 10),
            flushed: Instant::now(),
            kind,
        };
        if matches!(part.kind, PartKind::Flv) {
            let video = self.video_header.is_some() && !self.t.audio_only;
            let audio = self.audio_header.is_some();
            part.buf
                .extend_from_slice(&flv::encode_header(audio, video));
            let meta = file_metadata(self.metadata.as_ref().map(|m| &m.payload[..]));
            part.duration_at = Some((part.buf.len() + flv::TAG_HEADER_LEN + DURATION_AT) as u64);
            flv::encode_tag_into(TagKind::Script, 0, &meta, &mut part.buf)
                .map_err(std::io::Error::other)?;
        }
        // The publisher's metadata goes into an FLV's own (above); MP4 and
        // AAC have no place for it.
        for h in [&self.video_header, &self.audio_header]
            .into_iter()
            .flatten()
        {
            if self.t.audio_only && h.kind == FrameKind::Video {
                continue;
            }
            part.push(h, at)?;
        }
        self.part = Some(part);
        Ok(())
    }

    /// Ends the current file at `end` (unwrapped ms) and lists it.
    async fn close_part(&mut self, end: i64) -> std::io::Result<()> {
        let Some(mut part) = self.part.take() else {
            return Ok(());
        };
        part.finish();
        part.flush().await?;
        if let Some(at) = part.duration_at {
            use tokio::io::AsyncSeekExt;
            let secs = (end - part.start).max(0) as f64 / 1000.0;
            part.file.seek(std::io::SeekFrom::Start(at)).await?;
            part.file.write_all(&secs.to_be_bytes()).await?;
            part.file.flush().await?;
        }
        part.file.sync_data().await?;
        drop(part.file);
        let origin = self.origin.unwrap_or(part.start);
        let secs = |t: i64| (t - origin) as f64 / 1000.0;
        let line = format!(
            "{},{:.3},{:.3}\n",
            part.name,
            secs(part.start),
            secs(end.max(part.start))
        );
        append(&self.t.dir.join(SEGMENT_LIST), line.as_bytes()).await
    }

    async fn close(mut self) -> std::io::Result<()> {
        if let Some(hls) = &mut self.hls {
            return hls.finish(self.t.dir).await;
        }
        let end = self.last + self.step;
        self.close_part(end).await
    }
}

/// Where the `duration` number's 8 bytes are in [`file_metadata`]'s
/// payload: after the name (13 bytes), the array's marker and count (5),
/// the key (10) and the number's marker (1).
const DURATION_AT: usize = 13 + 5 + 10 + 1;

/// A file's `onMetaData`: `duration` first (0 until the file is closed),
/// then what the publisher's said, but its own duration and file size
/// (a live push's, or none).
fn file_metadata(publisher: Option<&[u8]>) -> BytesMut {
    use livestack_rtmp::amf0::{self, Amf0Value};
    let mut props = vec![("duration".to_owned(), Amf0Value::Number(0.0))];
    if let Some(values) = publisher.and_then(|p| amf0::decode_all(p).ok()) {
        if let Some(meta) = values.iter().find_map(Amf0Value::as_properties) {
            props.extend(
                meta.iter()
                    .filter(|(k, _)| k != "duration" && k != "filesize")
                    .cloned(),
            );
        }
    }
    let mut out = BytesMut::with_capacity(256);
    amf0::encode_string("onMetaData", &mut out);
    amf0::encode(&Amf0Value::EcmaArray(props), &mut out);
    out
}

impl Part {
    /// Adds one frame at `at` (unwrapped ms) to the buffer.
    fn push(&mut self, f: &Frame, at: i64) -> std::io::Result<()> {
        let ts = u32::try_from(at - self.start).unwrap_or(0);
        match &mut self.kind {
            PartKind::Flv => {
                flv::encode_tag_into(f.kind.into(), ts, &f.payload, &mut self.buf)
                    .map_err(std::io::Error::other)?;
            }
            PartKind::Mp4 { packager, .. } => {
                packager.push(f.kind.into(), ts, &f.payload);
                self.drain();
            }
            PartKind::Aac { config } => {
                if f.kind != FrameKind::Audio {
                    return Ok(());
                }
                let Ok(info) = AudioInfo::parse(&f.payload) else {
                    return Ok(());
                };
                if info.codec != AudioCodec::Aac {
                    return Ok(());
                }
                let data = info.data(&f.payload);
                if info.is_sequence_header() {
                    *config = AudioSpecificConfig::parse(data).ok();
                } else if let Some(c) = config {
                    if let Ok(header) = c.adts_header(data.len()) {
                        self.buf.extend_from_slice(&header);
                        self.buf.extend_from_slice(data);
                    }
                }
            }
        }
        Ok(())
    }

    /// MP4: moves the packager's finished fragments into the buffer (the
    /// initialization segment before the first).
    fn drain(&mut self) {
        let PartKind::Mp4 {
            packager,
            next_msn,
            init_written,
        } = &mut self.kind
        else {
            return;
        };
        while let Some(fragment) = packager.segment(*next_msn) {
            if !*init_written {
                if let Some(init) = packager.init() {
                    self.buf.extend_from_slice(&init);
                }
                *init_written = true;
            }
            self.buf.extend_from_slice(&fragment);
            *next_msn += 1;
        }
    }

    /// The end of the file: MP4's last fragment.
    fn finish(&mut self) {
        if let PartKind::Mp4 { packager, .. } = &mut self.kind {
            packager.finish();
            self.drain();
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let data: Bytes = self.buf.split().freeze();
            self.file.write_all(&data).await?;
            self.file.flush().await?;
        }
        self.flushed = Instant::now();
        Ok(())
    }
}

impl Hls {
    async fn push(&mut self, dir: &Path, f: &Frame) -> std::io::Result<()> {
        let kind: TagKind = f.kind.into();
        match self.segmenter.push(kind, f.timestamp, &f.payload) {
            Ok(Some(seq)) => self.store(dir, seq).await?,
            Ok(None) => {}
            Err(e) => tracing::debug!("HLS recording skipped a frame: {e}"),
        }
        if self.flushed.elapsed() >= FLUSH_EVERY {
            self.flushed = Instant::now();
            if let Some(open) = self.segmenter.take_open() {
                append(&dir.join(segment_name(open.sequence)), &open.data).await?;
                self.open = Some((open.sequence, open.duration_ms));
                self.write_playlist(dir, false).await?;
            }
        }
        Ok(())
    }

    /// A segment closed: the rest of its bytes, and its line.
    async fn store(&mut self, dir: &Path, seq: u64) -> std::io::Result<()> {
        let Some(segment) = self.segmenter.segment(seq) else {
            return Ok(());
        };
        let name = segment_name(seq);
        append(&dir.join(&name), &segment.data).await?;
        let secs = segment.duration_ms as f64 / 1000.0;
        self.target_secs = self.target_secs.max(segment.duration_ms.div_ceil(1000));
        if segment.discontinuity && !self.lines.is_empty() {
            self.lines.push_str("#EXT-X-DISCONTINUITY\n");
        }
        self.lines
            .push_str(&format!("#EXTINF:{secs:.3},\n{name}\n"));
        self.open = None;
        self.write_playlist(dir, false).await
    }

    /// The playlist so far. While the recording runs it also lists the
    /// open segment as long as it is on disk, so that what a crash leaves
    /// is listed (nobody plays this playlist before delivery).
    async fn write_playlist(&self, dir: &Path, ended: bool) -> std::io::Result<()> {
        let open = match self.open {
            Some((seq, ms)) if !ended && ms > 0 => {
                format!(
                    "#EXTINF:{:.3},\n{}\n",
                    ms as f64 / 1000.0,
                    segment_name(seq)
                )
            }
            _ => String::new(),
        };
        let text = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PLAYLIST-TYPE:EVENT\n{}{open}{}",
            self.target_secs,
            self.lines,
            if ended { "#EXT-X-ENDLIST\n" } else { "" }
        );
        let tmp: PathBuf = dir.join(format!("{HLS_PLAYLIST}.tmp"));
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(tmp, dir.join(HLS_PLAYLIST)).await
    }

    async fn finish(&mut self, dir: &Path) -> std::io::Result<()> {
        if let Some(seq) = self.segmenter.finish() {
            self.store(dir, seq).await?;
        }
        if self.lines.is_empty() {
            return Ok(());
        }
        self.write_playlist(dir, true).await
    }
}

fn segment_name(seq: u64) -> String {
    format!("seg-{seq:06}.ts")
}

/// The largest `moov` or `moof` read whole when making an MP4 plain.
const MAX_INDEX_BOX: u64 = 64 << 20;

/// Writes the plain form of the fragmented MP4 `src` to `out` (index
/// first; [`livestack_formats::mp4`]). Blocking: run it off the runtime.
pub(super) fn make_plain(src: &Path, out: &Path) -> std::io::Result<()> {
    use livestack_formats::mp4::{box_header, Faststart};
    use std::io::{Read, Seek, SeekFrom, Write};
    let invalid = |e: livestack_formats::mp4::Mp4Error| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
    };
    let mut file = std::fs::File::open(src)?;
    let file_len = file.metadata()?.len();
    let mut plan = Faststart::new();
    let mut at = 0u64;
    while at < file_len {
        let mut head = [0u8; 16];
        let n = file.read(&mut head)?;
        let Some(h) = box_header(&head[..n]).map_err(invalid)? else {
            break;
        };
        let len = h.len.unwrap_or(file_len - at);
        if matches!(&h.kind, b"ftyp" | b"moov" | b"moof") {
            if len > MAX_INDEX_BOX || at + len > file_len {
                // Too big to be ours, or cut short: the file ends here.
                break;
            }
            let mut whole = vec![0u8; len as usize];
            file.seek(SeekFrom::Start(at))?;
            file.read_exact(&mut whole)?;
            plan.push_box(h.kind, at, &whole).map_err(invalid)?;
        }
        at = at.saturating_add(len);
        file.seek(SeekFrom::Start(at.min(file_len)))?;
    }
    let plan = plan.finish(file_len).map_err(invalid)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    w.write_all(&plan.header)?;
    for (offset, len) in &plan.copies {
        file.seek(SeekFrom::Start(*offset))?;
        let copied = std::io::copy(&mut (&mut file).take(*len), &mut w)?;
        if copied != *len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank while it was copied",
            ));
        }
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use livestack_rtmp::amf0::{self, Amf0Value};

    #[test]
    fn a_files_metadata_has_its_duration_where_it_is_patched_and_keeps_the_publishers_fields() {
        let mut publisher = BytesMut::new();
        amf0::encode_string("onMetaData", &mut publisher);
        amf0::encode(
            &Amf0Value::EcmaArray(vec![
                ("duration".into(), Amf0Value::Number(13.0)),
                ("width".into(), Amf0Value::Number(640.0)),
                ("filesize".into(), Amf0Value::Number(1e6)),
            ]),
            &mut publisher,
        );
        let mut meta = file_metadata(Some(&publisher)).to_vec();
        meta[DURATION_AT..DURATION_AT + 8].copy_from_slice(&4.5f64.to_be_bytes());
        let values = amf0::decode_all(&meta).expect("AMF0");
        assert_eq!(values[0].as_str(), Some("onMetaData"));
        let props = values[1].as_properties().expect("array");
        assert_eq!(props[0], ("duration".into(), Amf0Value::Number(4.5)));
        assert_eq!(values[1].get("width"), Some(&Amf0Value::Number(640.0)));
        assert_eq!(values[1].get("filesize"), None);
        assert_eq!(props.len(), 2);
        // Without the publisher's: the duration alone.
        let bare = file_metadata(None);
        assert_eq!(
            amf0::decode_all(&bare).expect("AMF0")[1]
                .as_properties()
                .map(<[_]>::len),
            Some(1)
        );
    }
}
