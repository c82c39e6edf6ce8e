//! Recording jobs: ffmpeg copies a live stream into files in a working
//! directory, and livestack delivers each file to storage (and announces
//! it, event 100) as soon as it is complete.
//!
//! Owns: the working directory of each recording attempt
//! (`<work_dir>/record/<id>/`: a [`Manifest`] saying what is recorded and
//! where it goes, ffmpeg's files, its segment list or playlist), finding
//! complete files, naming them by the template's patterns
//! (`livestack_core::naming`), handing them to `storage` and announcing
//! them (`notify`), and the startup recovery that delivers what a crash
//! left behind ([`leftovers`], [`recover`]). Must not: build command
//! lines (`ffmpeg` does), decide when a recording runs (the processor
//! does), or move files itself (storage does).
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
//! not yet delivered (a delivered file is removed from the directory).
//!
//! A failed delivery never loses the file, and is logged and counted in
//! the job's status: a file storage could not take stays in the working
//! directory and is tried again (every [`RETRY_AFTER`] while the job runs,
//! then at the next start); a file whose upload to a bucket failed is
//! kept by storage in its local directory (`buckets/<bucket>/<key>`) and
//! not announced.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livestack_core::media::StreamKey;
use livestack_core::naming::{RecordName, RECORD_SOURCE_ORIGIN};
use livestack_core::rules::{RecordFormat, RecordOutput, TemplateId, TemplateSpec};
use livestack_core::AccountId;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::ffmpeg::{self, RecordIo, HLS_PLAYLIST, SEGMENT_LIST};
use super::record_writer;
use super::supervisor::{Ffmpeg, JobError, JobStatus};
use super::Job;
use crate::deliver::notify::{CallbackTarget, RecordExt, RecordFileEvent};
use crate::deliver::storage::{Destination, StorageError, Stored};
use crate::stream::live::Live;
use crate::Inner;

/// The shortest file a recording delivers. CSS's documentation names no
/// minimum; livestack drops files under a second, which only a cut right
/// after a split makes (a push of a few seconds still gives its file).
const MIN_FILE_SECS: f64 = 1.0;

/// The manifest's name in a recording's directory.
const MANIFEST: &str = "job.json";
/// How often a running job looks for complete files.
const SCAN_EVERY: Duration = Duration::from_secs(1);
/// A file whose delivery failed is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// How long recovery waits for the ffmpeg of a previous run to finish
/// its files.
const ORPHAN_WAIT: Duration = Duration::from_secs(30);
/// How long rewriting a finished MP4 with its index first may take.
const FASTSTART_TIMEOUT: Duration = Duration::from_secs(120);
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
    /// The id the task's creator was given (`task_id` of callbacks);
    /// empty for a rule.
    #[serde(default)]
    pub(crate) task_id: String,
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
    /// The stream's video codec and size as last measured while it was
    /// live (`callback_ext` of files delivered after the push ended).
    #[serde(default)]
    pub(crate) video_codec: String,
    /// `WIDTHxHEIGHT`, empty until measured.
    #[serde(default)]
    pub(crate) resolution: String,
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
                p.segments
                    .push((duration.take().unwrap_or(0.0), line.to_owned()));
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

/// What a job records, from its template (or the task's defaults).
struct Settings {
    output: RecordOutput,
    /// The task's public id; empty for a rule.
    task_id: String,
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
                _ => return Err(JobError::Work(format!("record template {} is gone", id.0))),
            },
            None => None,
        };
        let output = spec
            .and_then(|s| s.outputs.get(&format))
            .cloned()
            .unwrap_or_default();
        let task = task.and_then(|id| job.policy.processing.tasks.iter().find(|t| t.id == id));
        let legacy = task.and_then(|t| t.legacy);
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
            task_id: task.map(|t| t.public_id.clone()).unwrap_or_default(),
        })
    }
}

/// Where the recordings' directories are.
fn record_root(work_dir: &Path) -> PathBuf {
    work_dir.join("record")
}

/// A new, empty directory for one attempt.
fn new_dir(work_dir: &Path, now_ms: i64) -> std::io::Result<PathBuf> {
    use rand::RngCore;
    let root = record_root(work_dir);
    std::fs::create_dir_all(&root)?;
    let mut tag = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut tag);
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let dir = root.join(format!("{now_ms}-{tag}"));
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
    if job.inner.config.record_in_process && format != RecordFormat::Mp3 {
        return run_in_process(job, &s, live, template, format, task).await;
    }
    let input = job.reader(&job.source_name(s.raw))?;
    let work = |e: std::io::Error| JobError::Work(format!("working directory: {e}"));
    let dir = new_dir(&job.inner.config.work_dir, job.inner.clock.unix_ms()).map_err(work)?;
    let mut manifest = manifest(job, &s, &live, template, format, task);
    drop(live);
    let dir_text = dir.to_string_lossy().into_owned();
    let args = ffmpeg::record(&RecordIo {
        input: &input.url,
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
    let rec = Recording::new(dir, manifest, Some(Arc::clone(&job.status)));
    deliver_while(job, rec, format, p.run_until(&job.cancel)).await
}

/// What the recording of `live` by `job` is.
fn manifest(
    job: &Job,
    s: &Settings,
    live: &Live,
    template: Option<TemplateId>,
    format: RecordFormat,
    task: Option<i64>,
) -> Manifest {
    Manifest {
        account: job.key.source.account.0,
        domain: job.domain.clone(),
        app: job.key.source.app.clone(),
        stream: job.key.source.stream.clone(),
        format,
        template: template.map(|t| t.0),
        task,
        task_id: s.task_id.clone(),
        output: s.output.clone(),
        to_cos: s.to_cos,
        raw: s.raw,
        started_ms: job.inner.clock.unix_ms(),
        session: live.publisher.session,
        stream_param: live.publisher.params.clone(),
        video_codec: String::new(),
        resolution: String::new(),
        pid: None,
    }
}

/// Records in-process ([`record_writer`]): the same directory, manifest
/// and delivery as an ffmpeg job, without the process. The manifest has
/// no pid: after a crash, recovery delivers the directory at once.
async fn run_in_process(
    job: &Job,
    s: &Settings,
    live: Arc<Live>,
    template: Option<TemplateId>,
    format: RecordFormat,
    task: Option<i64>,
) -> Result<(), JobError> {
    let (_, source) = job.source_live(s.raw)?;
    let sub = source.hub.subscribe_internal();
    // The first file starts when the job does, as an ffmpeg job's did,
    // although it opens with the cached GOP (up to a GOP older): a task's
    // files never claim to start before its StartTime.
    let manifest = manifest(job, s, &live, template, format, task);
    drop(live);
    let work = |e: std::io::Error| JobError::Work(format!("working directory: {e}"));
    let dir = new_dir(&job.inner.config.work_dir, job.inner.clock.unix_ms()).map_err(work)?;
    if let Err(e) = write_manifest(&dir, &manifest) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(work(e));
    }
    let label = job.label();
    let target = record_writer::Target {
        dir: &dir,
        format,
        interval: s.interval,
        audio_only: s.audio_only,
        label: &label,
    };
    let write = async {
        record_writer::record(&target, sub, source.cancelled(), &job.cancel)
            .await
            .map_err(|e| JobError::Work(format!("cannot write the recording: {e}")))
    };
    let rec = Recording::new(dir.clone(), manifest, Some(Arc::clone(&job.status)));
    deliver_while(job, rec, format, write).await
}

/// Delivers the files of `rec` as they are whole while `writing` runs,
/// and the rest when it has ended.
async fn deliver_while(
    job: &Job,
    mut rec: Recording,
    format: RecordFormat,
    writing: impl std::future::Future<Output = Result<(), JobError>>,
) -> Result<(), JobError> {
    let exited = CancellationToken::new();
    let writing = async {
        let r = writing.await;
        exited.cancel();
        r
    };
    let watch = async {
        loop {
            tokio::select! {
                () = tokio::time::sleep(SCAN_EVERY) => {}
                () = exited.cancelled() => return,
            }
            if format == RecordFormat::Hls {
                // One playlist, delivered at the end; only measure.
                rec.note_media(&job.inner);
            } else {
                rec.deliver_listed(&job.inner, false).await;
            }
        }
    };
    let (result, ()) = tokio::join!(writing, watch);
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

    /// Counts a delivery in the job's status.
    fn note(&self, result: &Result<(), Failure>) {
        let Some(status) = &self.status else { return };
        let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => s.files += 1,
            Err(e) => {
                s.storage_failures += 1;
                s.last_storage_error = Some(e.message.clone());
            }
        }
    }

    /// Keeps the codec and size of the push recorded while it is live.
    fn note_media(&mut self, inner: &Inner) {
        let key = StreamKey {
            account: AccountId(self.m.account),
            app: self.m.app.clone(),
            stream: self.m.stream.clone(),
        };
        let Some(live) = inner
            .live(&key)
            .filter(|l| l.publisher.session == self.m.session)
            .map(|l| l.snapshot())
        else {
            return;
        };
        if !live.video_codec.is_empty() {
            self.m.video_codec = live.video_codec.to_ascii_lowercase();
        }
        if live.width > 0 && live.height > 0 {
            self.m.resolution = format!("{}x{}", live.width, live.height);
        }
    }

    /// The directory's name: the recording's id (`{RecordId}`).
    fn id(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
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
        self.note_media(inner);
        let list = self.listed().await;
        let base = list.first().map_or(0.0, |s| s.start);
        let mut clean = true;
        for seg in &list {
            if self.done.contains(&seg.file) {
                continue;
            }
            if !all
                && self
                    .retry_at
                    .get(&seg.file)
                    .is_some_and(|t| Instant::now() < *t)
            {
                clean = false;
                continue;
            }
            let path = self.dir.join(&seg.file);
            if !path.exists() {
                // Delivered by an earlier run.
                self.done.insert(seg.file.clone());
                continue;
            }
            if seg.end - seg.start < MIN_FILE_SECS {
                // A cut just after a split (a task stopped, a push ended)
                // leaves a sliver: not a recording anyone can use.
                tracing::info!(job = %self.label, file = seg.file, seconds = seg.end - seg.start,
                    "recording shorter than {MIN_FILE_SECS} s not delivered");
                let _ = tokio::fs::remove_file(&path).await;
                self.done.insert(seg.file.clone());
                continue;
            }
            let (start, end) = (self.wall(base, seg.start), self.wall(base, seg.end));
            match self.deliver_file(inner, &seg.file, start, end).await {
                Ok(()) => {
                    self.done.insert(seg.file.clone());
                    self.retry_at.remove(&seg.file);
                }
                Err(again) => {
                    if again {
                        self.retry_at
                            .insert(seg.file.clone(), Instant::now() + RETRY_AFTER);
                        clean = false;
                    } else {
                        self.done.insert(seg.file.clone());
                    }
                }
            }
        }
        clean
    }

    /// Names, stores and announces the file `file` of the directory;
    /// `Err(true)` when it failed and is still there to try again.
    async fn deliver_file(
        &self,
        inner: &Inner,
        file: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<(), bool> {
        let path = self.dir.join(file);
        let ext = ffmpeg::record_extension(self.m.format);
        if self.m.format == RecordFormat::Mp4 {
            self.faststart(inner, &path).await;
        }
        let result = async {
            let (dest, key) = placement(inner, &self.m, &self.id(), file, start_ms, end_ms, ext)?;
            let stored = store(inner, &dest, &key, &path).await?;
            announce(inner, &self.m, &stored, stored.size, start_ms, end_ms);
            Ok(())
        }
        .await;
        self.note(&result);
        result.map_err(|e| {
            tracing::warn!(job = %self.label, "{}", e.message);
            e.again
        })
    }

    /// Rewrites the fragmented MP4 at `path` in place as a plain MP4 with
    /// its duration and `moov` first: in-process
    /// ([`record_writer::make_plain`]), or with ffmpeg
    /// ([`ffmpeg::faststart`]) for a file it cannot read. If both fail,
    /// the fragmented file (which plays, without a known duration) is
    /// delivered as it is, and the log says why.
    async fn faststart(&self, inner: &Inner, path: &Path) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return;
        };
        let out = path.with_file_name(format!(".{name}.faststart"));
        let (src, dst) = (path.to_owned(), out.clone());
        let plain =
            tokio::task::spawn_blocking(move || record_writer::make_plain(&src, &dst)).await;
        match plain {
            Ok(Ok(())) => match tokio::fs::rename(&out, path).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(job = %self.label, file = name, "cannot replace the file: {e}")
                }
            },
            Ok(Err(e)) => {
                tracing::info!(job = %self.label, file = name, "MP4 not made plain in-process ({e}); trying ffmpeg");
            }
            Err(e) => tracing::warn!(job = %self.label, file = name, "MP4 rewrite failed: {e}"),
        }
        let run = tokio::process::Command::new(&inner.config.ffmpeg)
            .args(ffmpeg::faststart(path, &out))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            // Dropped with its job (shutdown, a cancelled delivery): killed.
            .kill_on_drop(true)
            .output();
        let failed = match tokio::time::timeout(FASTSTART_TIMEOUT, run).await {
            Ok(Ok(o)) if o.status.success() => match tokio::fs::rename(&out, path).await {
                Ok(()) => return,
                Err(e) => format!("cannot replace the file: {e}"),
            },
            Ok(Ok(o)) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            Ok(Err(e)) => format!("cannot run {}: {e}", inner.config.ffmpeg),
            Err(_) => format!("no result within {} s", FASTSTART_TIMEOUT.as_secs()),
        };
        let _ = tokio::fs::remove_file(&out).await;
        tracing::warn!(job = %self.label, file = name, "MP4 delivered fragmented: {failed}");
    }

    /// Delivers what is left once ffmpeg has ended, and removes the
    /// directory if nothing is.
    async fn finish(&mut self, inner: &Inner) {
        self.note_media(inner);
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
                let listed = list.iter().any(|s| s.file == name);
                if name.starts_with("part-") && !listed && !self.done.contains(&name) {
                    if let Ok(meta) = e.metadata().await {
                        parts.push((name, meta));
                    }
                }
            }
        }
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut clean = true;
        for (name, meta) in parts {
            if meta.len() < MIN_PARTIAL {
                let _ = tokio::fs::remove_file(self.dir.join(&name)).await;
                continue;
            }
            let end = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(start, |d| d.as_millis() as i64)
                .max(start);
            match self.deliver_file(inner, &name, start, end).await {
                Ok(()) | Err(false) => {
                    self.done.insert(name);
                }
                Err(true) => clean = false,
            }
            start = end;
        }
        clean
    }

    /// Delivers the playlist of an HLS recording and its segments, under
    /// the recording's name (the segments as `<name>_<n>.ts` next to it);
    /// whether nothing is left to try again.
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
        let result = self.deliver_hls(inner, &text, &playlist, start, end).await;
        self.note(&result);
        match result {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(job = %self.label, "{}", e.message);
                !e.again
            }
        }
    }

    async fn deliver_hls(
        &self,
        inner: &Inner,
        text: &str,
        playlist: &Playlist,
        start: i64,
        end: i64,
    ) -> Result<(), Failure> {
        let (dest, key) = placement(inner, &self.m, &self.id(), HLS_PLAYLIST, start, end, "m3u8")?;
        let stem = key.strip_suffix(".m3u8").unwrap_or(&key).to_owned();
        let segment_key = |uri: &str| {
            let n = uri.trim_start_matches("seg-").trim_end_matches(".ts");
            format!("{stem}_{n}.ts")
        };
        let mut size = 0;
        // A segment storage kept in the local directory instead (its
        // upload failed) does not stop the others: the failure is
        // reported once they are all placed.
        let mut kept_elsewhere = None;
        for (_, uri) in &playlist.segments {
            let local = self.dir.join(uri);
            if !local.exists() {
                // Stored by an earlier attempt at delivering it.
                continue;
            }
            match store(inner, &dest, &segment_key(uri), &local).await {
                Ok(stored) => size += stored.size,
                Err(f) if f.again => return Err(f),
                Err(f) => {
                    kept_elsewhere.get_or_insert(f);
                }
            }
        }
        let closed = self.dir.join("final.m3u8");
        let body = finish_playlist(text, |uri| {
            let key = segment_key(uri);
            key.rsplit('/').next().unwrap_or(&key).to_owned()
        });
        tokio::fs::write(&closed, body).await.map_err(|e| Failure {
            message: format!("cannot write the final playlist: {e}"),
            again: true,
        })?;
        let stored = store(inner, &dest, &key, &closed).await?;
        match kept_elsewhere {
            Some(f) => Err(f),
            None => {
                announce(inner, &self.m, &stored, size + stored.size, start, end);
                Ok(())
            }
        }
    }
}

/// A delivery that did not happen.
#[derive(Debug)]
struct Failure {
    message: String,
    /// The file is still in the working directory, to be tried again
    /// (otherwise storage kept it elsewhere on local disk, or it is gone).
    again: bool,
}

/// Where a file of the recording `m` goes and under which key: the
/// template's bucket (`CosBucketPath`) when it stores to object storage
/// and livestack has one, else livestack's local directory
/// (`<domain>/<app>/<VodFileName>`). `file` (the working file's name)
/// seeds `{RandomID}`, so that a retried delivery gets the same key.
fn placement(
    inner: &Inner,
    m: &Manifest,
    record_id: &str,
    file: &str,
    start_ms: i64,
    end_ms: i64,
    ext: &str,
) -> Result<(Destination, String), Failure> {
    use md5::{Digest, Md5};
    let random = hex::encode(&Md5::digest(format!("{record_id}/{file}"))[..4]);
    let name = RecordName {
        domain: &m.domain,
        app: &m.app,
        stream: &m.stream,
        record_source: RECORD_SOURCE_ORIGIN,
        record_id,
        random_id: &random,
        start_ms,
        end_ms,
        zone: inner.storage.zone(),
    };
    let dest = if m.to_cos {
        let app_id = app_id(inner, m.account);
        inner
            .storage
            .destination(&m.output.cos_bucket, &m.output.cos_region, app_id)
    } else {
        Destination::Local
    };
    let key = |pattern: &str| match dest {
        Destination::Bucket { .. } => name.cos_key(pattern, ext),
        Destination::Local => name.vod_key(pattern, ext),
    };
    let pattern = match dest {
        Destination::Bucket { .. } => &m.output.cos_path,
        Destination::Local => &m.output.vod_file_name,
    };
    // A pattern that makes no usable key (empty, too long, `..`) gives
    // way to the default rather than leave the file unnamed.
    let key = key(pattern).or_else(|e| {
        tracing::warn!(
            "the name pattern {pattern:?} of {}/{}/{} makes no key ({e}); using the default",
            m.domain,
            m.app,
            m.stream
        );
        key("")
    });
    let key = key.map_err(|e| Failure {
        message: format!("cannot name {file}: {e}; it stays in the working directory"),
        again: true,
    })?;
    Ok((dest, key))
}

/// The AppId of `account` (0, granted no bucket, if the policy does not
/// know it yet).
fn app_id(inner: &Inner, account: i64) -> i64 {
    inner
        .policy()
        .processing
        .app_ids
        .get(&AccountId(account))
        .copied()
        .unwrap_or(0)
}

/// Hands `local` to storage as `key` at `dest`. A file storage could not
/// take stays in the working directory (to be tried again); one whose
/// upload failed is kept in the local directory (see `storage`), and
/// counts as a failure not to retry.
async fn store(
    inner: &Inner,
    dest: &Destination,
    key: &str,
    local: &Path,
) -> Result<Stored, Failure> {
    inner
        .storage
        .put(dest, key, local)
        .await
        .map_err(|e: StorageError| Failure {
            message: format!("cannot store {}: {e}", local.display()),
            // Still in the working directory: not delivered, try again.
            // (A failed upload was moved to the local directory instead.)
            again: local.exists(),
        })
}

/// Announces a stored recording (event 100) to the stream's callback
/// template, if it has a record URL.
fn announce(inner: &Inner, m: &Manifest, stored: &Stored, size: u64, start_ms: i64, end_ms: i64) {
    tracing::info!(
        domain = %m.domain,
        app = %m.app,
        stream = %m.stream,
        format = ?m.format,
        size,
        "recorded {}",
        stored.url
    );
    let policy = inner.policy();
    let at = livestack_core::rules::StreamRef {
        account: AccountId(m.account),
        domain: &m.domain,
        app: &m.app,
        stream: &m.stream,
    };
    let Some(target) = CallbackTarget::for_push(&policy, &at) else {
        return;
    };
    let duration_ms = (end_ms - start_ms).max(0);
    let ev = RecordFileEvent {
        domain: m.domain.clone(),
        app: m.app.clone(),
        stream: m.stream.clone(),
        file_id: stored.key.clone(),
        record_file_id: stored.key.clone(),
        // The id the task's creator was given. CSS documents `task_id`
        // as meaningful only for recordings asked for by API (event 332:
        // "仅 API 创建的录制任务有意义，即 CreateRecordTask 返回的任务
        // ID", 267/102192), so a rule's recordings leave it empty.
        task_id: m.task_id.clone(),
        start_us: start_ms * 1000,
        end_us: end_ms * 1000,
        duration: (duration_ms + 500) / 1000,
        file_size: size,
        // Recordings of `CreateRecordTask` leave it out, as CSS does.
        stream_param: m.task.is_none().then(|| m.stream_param.clone()),
        video_url: stored.url.clone(),
        media_start_time: 0,
        record_bps: if duration_ms > 0 {
            size * 8 * 1000 / duration_ms as u64
        } else {
            0
        },
        // As last measured while the push was live (`note_media`).
        callback_ext: Some(RecordExt {
            video_codec: m.video_codec.clone(),
            resolution: m.resolution.clone(),
            session_id: m.session.to_string(),
        }),
        ..RecordFileEvent::new(m.format)
    };
    inner.notifier.record_file(&target, &ev);
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
        tracing::info!(
            count = dirs.len(),
            "delivering recordings left by the last run"
        );
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
                tracing::warn!(
                    "left {} alone: its manifest is unreadable ({e})",
                    dir.display()
                );
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
            vec![
                (10.0, "seg-000000.ts".into()),
                (4.5, "seg-000001.ts".into())
            ]
        );
        assert!(!p.ended);
        assert_eq!(p.duration(), 14.5);
        let done = finish_playlist(text, |u| format!("cam_{u}"));
        assert!(done.contains("\ncam_seg-000001.ts\n"), "{done}");
        assert!(done.ends_with("#EXT-X-ENDLIST\n"), "{done}");
        assert!(Playlist::parse(&done).ended);
        // A closed playlist is not closed twice.
        assert_eq!(done.matches("ENDLIST").count(), 1);
        assert_eq!(
            finish_playlist(&done, str::to_owned)
                .matches("ENDLIST")
                .count(),
            1
        );
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
            task_id: String::new(),
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
            video_codec: "h264".into(),
            resolution: "640x360".into(),
            pid: Some(7),
        };
        write_manifest(&dir, &m).unwrap();
        let back: Manifest =
            serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
        assert_eq!(back, m);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_manifest_written_before_public_task_ids_reads_with_an_empty_one() {
        let text = r#"{"account":1,"domain":"push.example.com","app":"live","stream":"cam",
            "format":"flv","template":null,"task":7,"output":{},"to_cos":false,"raw":false,
            "started_ms":5,"session":2,"stream_param":"","pid":null}"#;
        let m: Manifest = serde_json::from_str(text).expect("an older manifest reads");
        assert_eq!((m.task, m.task_id.as_str()), (Some(7), ""));
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "livestack-record-test-{}",
            livestack_core::Clock::system().unix_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
