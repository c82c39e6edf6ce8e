//! Recording jobs: ffmpeg copies a live stream into files in a working
//! directory, and livestack delivers each file to storage (and announces
//! it, event 100) as soon as it is complete.
//!
//! Owns: the working directory of each recording attempt
//! (`<work_dir>/record/<id>/`: a [`Manifest`] saying what is recorded and
//! where it goes, ffmpeg's files, its segment list or playlist), finding
//! complete files, naming them by the template's patterns, handing them
//! to [`deliver`], and the startup recovery that delivers what a crash
//! left behind ([`leftovers`], [`recover`]). Must not: build command
//! lines (`ffmpeg` does) or decide when a recording runs (the processor
//! does).
//!
//! FLV, MP4, AAC and MP3 are cut every `RecordInterval` seconds; ffmpeg
//! adds a line to the segment list when a file is complete, which the
//! job reads once a second. HLS is one playlist per push, delivered with
//! its segments when ffmpeg ends: when the push ends (its input ends),
//! when the rule or task ends (it is asked to quit), or when it fails.
//!
//! Crash safety: files are written through packet by packet and MP4 is
//! fragmented, so a file cut short still plays. If livestack dies,
//! ffmpeg loses its input and closes its files; the next start finds the
//! directory, waits for that ffmpeg to be gone, and delivers every file
//! not yet delivered (a delivered file is removed from the directory). A
//! file whose delivery fails stays on local disk, is tried again later in
//! the job and at the next start, and is counted in the job's status.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livestack_core::rules::{RecordFormat, RecordOutput, TemplateId, TemplateSpec};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::ffmpeg::{self, RecordIo, HLS_PLAYLIST, SEGMENT_LIST};
use super::supervisor::{Ffmpeg, JobError, JobStatus};
use super::Job;
use crate::Inner;

/// The manifest's name in a recording's directory.
const MANIFEST: &str = "job.json";
/// How often a running job looks for complete files.
const SCAN_EVERY: Duration = Duration::from_secs(1);
/// A file whose delivery failed is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// How long recovery waits for the ffmpeg of a previous run to finish
/// its files.
const ORPHAN_WAIT: Duration = Duration::from_secs(30);
/// A file cut short smaller than this holds no media (an MP4 header, say).
const MIN_PARTIAL: u64 = 1024;

/// What a recording attempt is, written in its directory when it starts
/// so that the files can be named and delivered without the policy (by
/// the next start, after a crash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// The owning account.
    pub(crate) account: i64,
    /// The push domain.
    pub(crate) domain: String,
    /// AppName.
    pub(crate) app: String,
    /// StreamName.
    pub(crate) stream: String,
    /// The format.
    pub(crate) format: RecordFormat,
    /// The record template, if any.
    pub(crate) template: Option<i64>,
    /// The task recording, or `None` for a rule.
    pub(crate) task: Option<i64>,
    /// The format's settings (file-name pattern, bucket).
    pub(crate) output: RecordOutput,
    /// Files go to object storage (`CosStore`).
    pub(crate) to_cos: bool,
    /// Whether the source without its watermark is recorded.
    pub(crate) raw: bool,
    /// Unix milliseconds when ffmpeg started: the start of the first file.
    pub(crate) started_ms: i64,
    /// The push session recorded.
    pub(crate) session: u64,
    /// The push URL's query (`stream_param` of callbacks).
    pub(crate) stream_param: String,
    /// ffmpeg's process id, once started.
    pub(crate) pid: Option<u32>,
}

/// A complete file as the segment list gives it: name, and its start and
/// end in seconds on the input's timeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Segment {
    pub(crate) file: String,
    pub(crate) start: f64,
    pub(crate) end: f64,
}

/// The complete files in a CSV segment list (`file,start,end` lines); a
/// last line still being written (no newline yet) is left for later.
pub(crate) fn parse_segment_list(text: &str) -> Vec<Segment> {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .filter_map(|line| {
            // The file name comes first and may be quoted; times are last.
            let mut fields = line.rsplitn(3, ',');
            let end = fields.next()?.trim().parse().ok()?;
            let start = fields.next()?.trim().parse().ok()?;
            let file = fields.next()?.trim().trim_matches('"').to_owned();
            (!file.is_empty() && !file.contains('/')).then_some(Segment { file, start, end })
        })
        .collect()
}

/// An HLS playlist's segments (duration in seconds, URI) and whether it
/// is closed (`#EXT-X-ENDLIST`).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Playlist {
    pub(crate) segments: Vec<(f64, String)>,
    pub(crate) ended: bool,
}

impl Playlist {
    /// Reads an ffmpeg playlist.
    pub(crate) fn parse(text: &str) -> Playlist {
        let mut p = Playlist::default();
        let mut duration = None;
        for line in text.lines().map(str::trim) {
            if let Some(d) = line.strip_prefix("#EXTINF:") {
                duration = d.split(',').next().and_then(|d| d.trim().parse().ok());
            } else if line == "#EXT-X-ENDLIST" {
                p.ended = true;
            } else if !line.is_empty() && !line.starts_with('#') {
                p.segments.push((duration.take().unwrap_or(0.0), line.to_owned()));
            }
        }
        p
    }

    /// Seconds of media it lists.
    pub(crate) fn duration(&self) -> f64 {
        self.segments.iter().map(|(d, _)| d).sum()
    }
}

/// `text` (a playlist) with each segment URI replaced by `rename`'s and
/// closed with `#EXT-X-ENDLIST` if it was not (ffmpeg was cut short).
pub(crate) fn finish_playlist(text: &str, rename: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut ended = false;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        ended |= t == "#EXT-X-ENDLIST";
        if t.starts_with('#') {
            out.push_str(t);
        } else {
            out.push_str(&rename(t));
        }
        out.push('\n');
    }
    if !ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// The default `VodFileName`: the stream and the file's start and end.
const DEFAULT_FILE_NAME: &str = "{StreamID}_{StartYear}-{StartMonth}-{StartDay}-{StartHour}-{StartMinute}-{StartSecond}_{EndYear}-{EndMonth}-{EndDay}-{EndHour}-{EndMinute}-{EndSecond}";

/// Year, month, day, hour, minute, second and millisecond of Unix
/// milliseconds in Beijing time (UTC+8), as CSS names files.
fn beijing_parts(ms: i64) -> [i64; 7] {
    let ms = ms + 8 * 3_600_000;
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    [
        year,
        month,
        day,
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    ]
}

/// A recorded file's name (without extension) from the `VodFileName`
/// pattern (empty: the default) with its placeholders filled in:
/// `{StreamID}` and `{Start|End}{Year|Month|Day|Hour|Minute|Second|Millisecond}`
/// (Beijing time, two digits, three for milliseconds). Characters that
/// cannot be in a file name become `_`.
pub(crate) fn file_name(pattern: &str, stream: &str, start_ms: i64, end_ms: i64) -> String {
    let pattern = if pattern.trim().is_empty() {
        DEFAULT_FILE_NAME
    } else {
        pattern
    };
    let mut out = pattern.replace("{StreamID}", stream);
    const UNITS: [&str; 7] = [
        "Year",
        "Month",
        "Day",
        "Hour",
        "Minute",
        "Second",
        "Millisecond",
    ];
    for (prefix, ms) in [("Start", start_ms), ("End", end_ms)] {
        for (unit, value) in UNITS.iter().zip(beijing_parts(ms)) {
            let text = match *unit {
                "Year" => format!("{value:04}"),
                "Millisecond" => format!("{value:03}"),
                _ => format!("{value:02}"),
            };
            out = out.replace(&format!("{{{prefix}{unit}}}"), &text);
        }
    }
    out.chars()
        .map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c })
        .collect()
}

/// What a job records, from its template (or the task's defaults).
struct Settings {
    output: RecordOutput,
    to_cos: bool,
    raw: bool,
    audio_only: bool,
    interval: u32,
}

impl Settings {
    fn for_job(
        job: &Job,
        template: Option<TemplateId>,
        format: RecordFormat,
        task: Option<i64>,
    ) -> Result<Settings, JobError> {
        let spec = match template {
            Some(id) => match job.template(id).map(|t| &t.spec) {
                Some(TemplateSpec::Record(r)) => Some(r),
                _ => {
                    return Err(JobError::Work(format!(
                        "record template {} is gone",
                        id.0
                    )))
                }
            },
            None => None,
        };
        let output = spec
            .and_then(|s| s.outputs.get(&format))
            .cloned()
            .unwrap_or_default();
        let legacy = task.and_then(|id| {
            job.policy
                .processing
                .tasks
                .iter()
                .find(|t| t.id == id)
                .and_then(|t| t.legacy)
        });
        let mut interval = if output.interval == 0 {
            1800
        } else {
            output.interval
        };
        if let Some(cap) = job.inner.config.max_record_interval {
            interval = interval.min(cap.as_secs().max(1) as u32);
        }
        Ok(Settings {
            to_cos: spec.is_some_and(|s| s.to_cos),
            raw: spec.is_some_and(|s| s.remove_watermark),
            audio_only: legacy.is_some_and(|l| l.audio_only),
            interval,
            output,
        })
    }
}

/// Unix milliseconds now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where the recordings' directories are.
fn record_root(work_dir: &Path) -> PathBuf {
    work_dir.join("record")
}

/// A new, empty directory for one attempt.
fn new_dir(work_dir: &Path) -> std::io::Result<PathBuf> {
    use rand::RngCore;
    let root = record_root(work_dir);
    std::fs::create_dir_all(&root)?;
    let mut tag = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut tag);
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let dir = root.join(format!("{}-{tag}", now_ms()));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

/// Writes the manifest (through a temporary file, so it is never half
/// written).
fn write_manifest(dir: &Path, m: &Manifest) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(m).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, dir.join(MANIFEST))
}

/// Records one format of the job's source until ffmpeg ends (the push
/// ended, the job was cancelled, or it failed), delivering files as they
/// are complete and the rest when it ends.
pub(super) async fn run(
    job: &Job,
    template: Option<TemplateId>,
    format: RecordFormat,
    task: Option<i64>,
) -> Result<(), JobError> {
    let s = Settings::for_job(job, template, format, task)?;
    let live = job
        .inner
        .live(&job.key.source)
        .ok_or_else(|| JobError::Work("the stream is not live".into()))?;
    let input = job.url(&job.source_name(s.raw))?;
    let work = |e: std::io::Error| JobError::Work(format!("working directory: {e}"));
    let dir = new_dir(&job.inner.config.work_dir).map_err(work)?;
    let mut manifest = Manifest {
        account: job.key.source.account.0,
        domain: job.domain.clone(),
        app: job.key.source.app.clone(),
        stream: job.key.source.stream.clone(),
        format,
        template: template.map(|t| t.0),
        task,
        output: s.output.clone(),
        to_cos: s.to_cos,
        raw: s.raw,
        started_ms: now_ms(),
        session: live.publisher.session,
        stream_param: live.publisher.params.clone(),
        pid: None,
    };
    drop(live);
    let dir_text = dir.to_string_lossy().into_owned();
    let args = ffmpeg::record(&RecordIo {
        input: &input,
        dir: &dir_text,
        format,
        interval: s.interval,
        audio_only: s.audio_only,
    });
    let started = write_manifest(&dir, &manifest)
        .map_err(work)
        .and_then(|()| Ffmpeg::spawn(&job.inner.config.ffmpeg, &args, &job.label()));
    let mut p = match started {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    manifest.pid = p.id();
    if let Err(e) = write_manifest(&dir, &manifest) {
        tracing::warn!(job = %job.label(), "cannot note ffmpeg's pid: {e}");
    }

    let mut rec = Recording::new(dir, manifest, Some(Arc::clone(&job.status)));
    let exited = CancellationToken::new();
    let ffmpeg = async {
        let r = p.run_until(&job.cancel).await;
        exited.cancel();
        r
    };
    let watch = async {
        if format == RecordFormat::Hls {
            return;
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(SCAN_EVERY) => {}
                () = exited.cancelled() => return,
            }
            rec.deliver_listed(&job.inner, false).await;
        }
    };
    let (result, ()) = tokio::join!(ffmpeg, watch);
    rec.finish(&job.inner).await;
    result
}

/// One recording directory being delivered, by its running job or by
/// recovery.
struct Recording {
    dir: PathBuf,
    m: Manifest,
    /// Files of the segment list delivered (or found gone).
    done: HashSet<String>,
    /// Files whose delivery failed, and when to try again.
    retry_at: HashMap<String, Instant>,
    /// The job's status, for a running job.
    status: Option<Arc<Mutex<JobStatus>>>,
    label: String,
}

impl Recording {
    fn new(dir: PathBuf, m: Manifest, status: Option<Arc<Mutex<JobStatus>>>) -> Recording {
        let label = format!(
            "{}/{}/{} record {:?}{}",
            m.domain,
            m.app,
            m.stream,
            m.format,
            m.task.map(|t| format!(" (task {t})")).unwrap_or_default()
        );
        Recording {
            dir,
            m,
            done: HashSet::new(),
            retry_at: HashMap::new(),
            status,
            label,
        }
    }

    fn note(&self, result: &Result<(), String>) {
        let Some(status) = &self.status else { return };
        let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => s.files += 1,
            Err(e) => {
                s.storage_failures += 1;
                s.last_storage_error = Some(e.clone());
            }
        }
    }

    /// The segment list so far.
    async fn listed(&self) -> Vec<Segment> {
        let text = tokio::fs::read_to_string(self.dir.join(SEGMENT_LIST))
            .await
            .unwrap_or_default();
        parse_segment_list(&text)
    }

    /// Unix milliseconds of a time on the input's timeline: the first
    /// file starts when ffmpeg started.
    fn wall(&self, base: f64, t: f64) -> i64 {
        self.m.started_ms + ((t - base) * 1000.0).round() as i64
    }

    /// Delivers the complete files not delivered yet; `all` also tries
    /// those waiting to be tried again. Whether nothing is left undelivered.
    async fn deliver_listed(&mut self, inner: &Inner, all: bool) -> bool {
        let list = self.listed().await;
        let base = list.first().map_or(0.0, |s| s.start);
        let mut clean = true;
        for seg in &list {
            if self.done.contains(&seg.file) {
                continue;
            }
            if !all && self.retry_at.get(&seg.file).is_some_and(|t| Instant::now() < *t) {
                clean = false;
                continue;
            }
            let path = self.dir.join(&seg.file);
            if !path.exists() {
                // Delivered by an earlier run.
                self.done.insert(seg.file.clone());
                continue;
            }
            let (start, end) = (self.wall(base, seg.start), self.wall(base, seg.end));
            if self.deliver_file(inner, &path, start, end).await {
                self.done.insert(seg.file.clone());
                self.retry_at.remove(&seg.file);
            } else {
                self.retry_at
                    .insert(seg.file.clone(), Instant::now() + RETRY_AFTER);
                clean = false;
            }
        }
        clean
    }

    /// Names, stores and announces one file; whether it was stored.
    async fn deliver_file(&self, inner: &Inner, path: &Path, start_ms: i64, end_ms: i64) -> bool {
        let name = format!(
            "{}.{}",
            file_name(&self.m.output.vod_file_name, &self.m.stream, start_ms, end_ms),
            ffmpeg::record_extension(self.m.format)
        );
        let result = deliver(
            inner,
            &self.m,
            &[(path.to_owned(), name)],
            start_ms,
            end_ms,
        )
        .await;
        if let Err(e) = &result {
            tracing::warn!(job = %self.label, "cannot deliver {}: {e}; it stays in {}", path.display(), self.dir.display());
        }
        self.note(&result);
        result.is_ok()
    }

    /// Delivers what is left once ffmpeg has ended, and removes the
    /// directory if nothing is.
    async fn finish(&mut self, inner: &Inner) {
        let clean = if self.m.format == RecordFormat::Hls {
            self.finish_hls(inner).await
        } else {
            let listed = self.deliver_listed(inner, true).await;
            listed && self.deliver_unlisted(inner).await
        };
        if clean {
            if let Err(e) = tokio::fs::remove_dir_all(&self.dir).await {
                tracing::warn!(job = %self.label, "cannot remove {}: {e}", self.dir.display());
            }
        }
    }

    /// Files ffmpeg did not get to list (it was killed): delivered if they
    /// hold media, from the end of the last listed file to their last
    /// write.
    async fn deliver_unlisted(&mut self, inner: &Inner) -> bool {
        let list = self.listed().await;
        let base = list.first().map_or(0.0, |s| s.start);
        let mut start = list
            .last()
            .map_or(self.m.started_ms, |s| self.wall(base, s.end));
        let mut parts: Vec<(String, std::fs::Metadata)> = Vec::new();
        if let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await {
            while let Ok(Some(e)) = entries.next_entry().await {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("part-") && !self.done.contains(&name) {
                    if let Ok(meta) = e.metadata().await {
                        parts.push((name, meta));
                    }
                }
            }
        }
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut clean = true;
        for (name, meta) in parts {
            let path = self.dir.join(&name);
            if meta.len() < MIN_PARTIAL {
                let _ = tokio::fs::remove_file(&path).await;
                continue;
            }
            let end = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(start, |d| d.as_millis() as i64)
                .max(start);
            if self.deliver_file(inner, &path, start, end).await {
                self.done.insert(name);
            } else {
                clean = false;
            }
            start = end;
        }
        clean
    }

    /// Delivers the playlist of an HLS recording and its segments, under
    /// the recording's name; whether all of it was stored.
    async fn finish_hls(&mut self, inner: &Inner) -> bool {
        let text = tokio::fs::read_to_string(self.dir.join(HLS_PLAYLIST))
            .await
            .unwrap_or_default();
        let playlist = Playlist::parse(&text);
        if playlist.segments.is_empty() {
            // Nothing was recorded (the stream was gone, say).
            return true;
        }
        let start = self.m.started_ms;
        let end = start + (playlist.duration() * 1000.0).round() as i64;
        let name = file_name(&self.m.output.vod_file_name, &self.m.stream, start, end);
        let segment_name = |uri: &str| {
            let n = uri
                .trim_start_matches("seg-")
                .trim_end_matches(".ts")
                .to_owned();
            format!("{name}_{n}.ts")
        };
        let mut files: Vec<(PathBuf, String)> = playlist
            .segments
            .iter()
            .map(|(_, uri)| (self.dir.join(uri), segment_name(uri)))
            .collect();
        let closed = self.dir.join("final.m3u8");
        if let Err(e) = tokio::fs::write(&closed, finish_playlist(&text, segment_name)).await {
            tracing::warn!(job = %self.label, "cannot write the final playlist: {e}");
            return false;
        }
        // The playlist last: it is what the callback announces.
        files.push((closed, format!("{name}.m3u8")));
        let result = deliver(inner, &self.m, &files, start, end).await;
        if let Err(e) = &result {
            tracing::warn!(job = %self.label, "cannot deliver the HLS recording: {e}; it stays in {}", self.dir.display());
        }
        self.note(&result);
        result.is_ok()
    }
}

/// Hands a finished recording to storage and announces it: `files` are
/// (local path, file name) pairs, the last the one announced (the file
/// itself, or an HLS playlist after its segments); the recording spans
/// `start_ms`..`end_ms`. A stored file is removed from the working
/// directory; one that could not be stored stays there.
///
/// For now the destination is the local recordings directory next to
/// the working directory (`<data dir>/recordings/<domain>/<app>/<stream>/`)
/// and the announcement is a log line: the storage backends and callbacks
/// come in here.
async fn deliver(
    inner: &Inner,
    m: &Manifest,
    files: &[(PathBuf, String)],
    start_ms: i64,
    end_ms: i64,
) -> Result<(), String> {
    let work_dir = &inner.config.work_dir;
    let root = work_dir
        .parent()
        .map_or_else(|| work_dir.join("recordings"), |p| p.join("recordings"));
    let folder = root.join(&m.domain).join(&m.app).join(&m.stream);
    tokio::fs::create_dir_all(&folder)
        .await
        .map_err(|e| format!("{}: {e}", folder.display()))?;
    let mut size = 0;
    let mut url = String::new();
    for (local, name) in files {
        let dest = folder.join(name);
        if tokio::fs::rename(local, &dest).await.is_err() {
            tokio::fs::copy(local, &dest)
                .await
                .map_err(|e| format!("{}: {e}", dest.display()))?;
            let _ = tokio::fs::remove_file(local).await;
        }
        size += tokio::fs::metadata(&dest).await.map_or(0, |m| m.len());
        url = dest.to_string_lossy().into_owned();
    }
    tracing::info!(
        domain = %m.domain,
        app = %m.app,
        stream = %m.stream,
        format = ?m.format,
        start_ms,
        end_ms,
        size,
        "recorded file stored at {url}"
    );
    Ok(())
}

/// The recording directories a previous run left (every one there when
/// the processor starts, before it starts any job).
pub(crate) fn leftovers(work_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(record_root(work_dir)) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Whether the ffmpeg of a previous run is still writing into `dir`.
fn still_writing(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let dir = dir.to_string_lossy();
    String::from_utf8_lossy(&cmdline).contains(dir.as_ref())
}

/// Delivers what the recordings in `dirs` left: for each, waits for its
/// ffmpeg to be gone (it ends when its input does), then delivers every
/// file not yet delivered, closing an HLS playlist.
pub(crate) async fn recover(inner: Arc<Inner>, dirs: Vec<PathBuf>) {
    if !dirs.is_empty() {
        tracing::info!(count = dirs.len(), "delivering recordings left by the last run");
    }
    for dir in dirs {
        if inner.shutdown.is_cancelled() {
            return;
        }
        let manifest = std::fs::read(dir.join(MANIFEST))
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Manifest>(&b).map_err(|e| e.to_string()));
        let m = match manifest {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("left {} alone: its manifest is unreadable ({e})", dir.display());
                continue;
            }
        };
        if let Some(pid) = m.pid {
            let deadline = Instant::now() + ORPHAN_WAIT;
            while still_writing(pid, &dir) && Instant::now() < deadline {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    () = inner.shutdown.cancelled() => return,
                }
            }
            if still_writing(pid, &dir) {
                tracing::warn!(
                    "ffmpeg {pid} of the last run still writes into {}; left for the next start",
                    dir.display()
                );
                continue;
            }
        }
        let mut rec = Recording::new(dir, m, None);
        tracing::info!(job = %rec.label, "recovering recording {}", rec.dir.display());
        rec.finish(&inner).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_lines_of_the_segment_list_count() {
        let text = "part-000000.flv,0.000000,5.021000\npart-000001.flv,5.021000,10.0\npart-00";
        assert_eq!(
            parse_segment_list(text),
            vec![
                Segment {
                    file: "part-000000.flv".into(),
                    start: 0.0,
                    end: 5.021
                },
                Segment {
                    file: "part-000001.flv".into(),
                    start: 5.021,
                    end: 10.0
                },
            ]
        );
        assert!(parse_segment_list("part-000000.flv,0.0,5.0").is_empty());
        assert!(parse_segment_list("../x,0,1\n").is_empty());
    }

    #[test]
    fn a_playlist_lists_its_segments_and_durations() {
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:EVENT\n\
                    #EXTINF:10.000000,\nseg-000000.ts\n#EXTINF:4.5,\nseg-000001.ts\n";
        let p = Playlist::parse(text);
        assert_eq!(
            p.segments,
            vec![(10.0, "seg-000000.ts".into()), (4.5, "seg-000001.ts".into())]
        );
        assert!(!p.ended);
        assert_eq!(p.duration(), 14.5);
        let done = finish_playlist(text, |u| format!("cam_{u}"));
        assert!(done.contains("\ncam_seg-000001.ts\n"), "{done}");
        assert!(done.ends_with("#EXT-X-ENDLIST\n"), "{done}");
        assert!(Playlist::parse(&done).ended);
        // A closed playlist is not closed twice.
        assert_eq!(done.matches("ENDLIST").count(), 1);
        assert_eq!(finish_playlist(&done, str::to_owned).matches("ENDLIST").count(), 1);
    }

    #[test]
    fn the_default_file_name_is_the_stream_and_its_beijing_start_and_end() {
        // 2019-02-25 16:44:25.123 UTC is 2019-02-26 00:44:25 in Beijing.
        let start = 1_551_113_065_123;
        assert_eq!(
            file_name("", "cam", start, start + 3_600_000),
            "cam_2019-02-26-00-44-25_2019-02-26-01-44-25"
        );
        assert_eq!(
            file_name("{StreamID}/{StartMillisecond}-{EndYear}", "cam", start, start),
            "cam_123-2019"
        );
    }

    #[test]
    fn beijing_dates_cross_years_and_leap_days() {
        // 2023-12-31 16:00:00 UTC is New Year's midnight in Beijing.
        assert_eq!(beijing_parts(1_704_038_400_000), [2024, 1, 1, 0, 0, 0, 0]);
        // 2024-02-29 12:00:00 UTC.
        assert_eq!(beijing_parts(1_709_208_000_000), [2024, 2, 29, 20, 0, 0, 0]);
        assert_eq!(beijing_parts(0), [1970, 1, 1, 8, 0, 0, 0]);
    }

    #[test]
    fn a_manifest_reads_back_as_written() {
        let dir = tempfile_dir();
        let m = Manifest {
            account: 1,
            domain: "push.example.com".into(),
            app: "live".into(),
            stream: "cam".into(),
            format: RecordFormat::Mp4,
            template: Some(3),
            task: None,
            output: RecordOutput {
                enabled: true,
                interval: 60,
                vod_file_name: "{StreamID}".into(),
                ..RecordOutput::default()
            },
            to_cos: false,
            raw: false,
            started_ms: 5,
            session: 2,
            stream_param: "txSecret=x".into(),
            pid: Some(7),
        };
        write_manifest(&dir, &m).unwrap();
        let back: Manifest =
            serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
        assert_eq!(back, m);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("livestack-record-test-{}", now_ms()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
