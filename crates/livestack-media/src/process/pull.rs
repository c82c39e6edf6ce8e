//! Relay (pull-stream) task jobs: one supervised ffmpeg per running task,
//! pulling its source and pushing it to its target.
//!
//! Owns: which relay tasks this node answers for ([`mine`]: in a cluster
//! those assigned to it) and runs now (of those, the enabled ones in their
//! window), their ffmpeg
//! command lines, the address checks of what they open, their 314
//! callbacks and their run reports. Must not: touch the database (reports
//! are media events) or decide what a valid task is (the API does).
//!
//! A target on one of the account's push domains is pushed to this
//! node's own RTMP port with a credential for exactly that stream, and is
//! a push like any other from there on: listed, processed, called back
//! (see `serve::rtmp::authorize`). Files are played in order with
//! ffmpeg's concat demuxer at their own pace (`-re`), looped with
//! `-stream_loop`, so the target stays one push across files and loops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use livestack_core::media::MediaEvent;
use livestack_core::pull::{assigned_node, PullInsert, PullSourceKind, PullTarget, PullTask};
use livestack_core::rules::{Profile, TemplateSpec};
use livestack_core::AccountId;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::supervisor::{self, Ffmpeg, JobError, JobStatus};
use crate::Inner;

/// The relay tasks this node answers for, running or not: every task on
/// one node, in a cluster of `nodes` (this node being `me`) those
/// assigned to it. In a cluster whose node list could not be read, none:
/// running a task on two nodes would push its target twice.
pub(crate) fn mine<'p>(
    tasks: &'p [PullTask],
    nodes: &[String],
    me: Option<&str>,
) -> Vec<&'p PullTask> {
    tasks
        .iter()
        .filter(|t| match me {
            None => true,
            Some(me) => assigned_node(t.id, nodes) == Some(me),
        })
        .collect()
}

/// A running relay job.
pub(crate) struct Running {
    cancel: CancellationToken,
}

/// Relay jobs by (task id, generation), and the tasks this node answers
/// for as last seen (for `ResetTaskConfig`).
#[derive(Default)]
pub(crate) struct Jobs {
    running: Mutex<HashMap<(i64, i64), Running>>,
    seen: Mutex<HashMap<i64, PullTask>>,
}

impl Jobs {
    /// Relay jobs running now (attempts running or waiting to start again).
    pub(crate) fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// (pulling, not pulling): this node's tasks as last seen, by whether a
    /// job runs for them now.
    pub(crate) fn states(&self) -> (usize, usize) {
        let running: std::collections::HashSet<i64> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .map(|(id, _)| *id)
            .collect();
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let pulling = seen.keys().filter(|id| running.contains(id)).count();
        (pulling, seen.len() - pulling)
    }
}

/// Sends `ResetTaskConfig` (314) for every task this node answers for
/// whose configuration changed since it last looked (a
/// `ModifyLivePullStreamTask`, a restart), paused or not; inserted files
/// are not a change of configuration. A task first seen (new, or moved
/// here from another node) sends nothing.
fn config_changes(inner: &Arc<Inner>, tasks: &[&PullTask], app_ids: &HashMap<AccountId, i64>) {
    let mut seen = inner
        .processor
        .pulls
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let now = inner.clock.unix();
    let mut next = HashMap::with_capacity(tasks.len());
    for &t in tasks {
        let config = PullTask {
            inserts: Vec::new(),
            ..t.clone()
        };
        if seen.get(&t.id).is_some_and(|old| *old != config) && t.wants_event("ResetTaskConfig") {
            let app_id = app_ids.get(&t.account).copied().unwrap_or(0);
            let fields = pull_fields(app_id, t, "ResetTaskConfig", now, Map::new());
            inner.notifier.pull_task(&t.callback_url, t.account, fields);
        }
        next.insert(t.id, config);
    }
    *seen = next;
}

/// Starts the jobs of this node's relay tasks ([`mine`]) that should run
/// now and cancels the others; calls back configuration changes.
pub(crate) fn reconcile(inner: &Arc<Inner>) {
    let policy = inner.policy();
    let now = inner.clock.unix();
    let me = inner.cluster.get().map(|l| l.node.clone());
    let mine = mine(
        &policy.processing.pull_tasks,
        &policy.processing.nodes,
        me.as_deref(),
    );
    config_changes(inner, &mine, &policy.processing.app_ids);
    // Running: this node's tasks in their window.
    let wanted: HashMap<(i64, i64), &PullTask> = mine
        .into_iter()
        .filter(|t| t.runs_at(now))
        .map(|t| ((t.id, t.generation), t))
        .collect();
    let mut jobs = inner
        .processor
        .pulls
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    jobs.retain(|k, r| {
        let keep = wanted.contains_key(k) && !r.cancel.is_cancelled();
        if !keep {
            r.cancel.cancel();
        }
        keep
    });
    for (key, task) in wanted {
        if jobs.contains_key(&key) {
            continue;
        }
        let cancel = inner.shutdown.child_token();
        let job = Arc::new(PullJob {
            inner: Arc::clone(inner),
            task: task.clone(),
            app_id: policy
                .processing
                .app_ids
                .get(&task.account)
                .copied()
                .unwrap_or(0),
            cancel: cancel.clone(),
            on_backup: Mutex::new(false),
            seen: Mutex::new(std::collections::HashSet::new()),
            placed: Mutex::new(Vec::new()),
            cut: Mutex::new(None),
        });
        let label = format!("relay task {}", task.public_id);
        let status = Arc::new(Mutex::new(JobStatus::default()));
        let counters = supervisor::Counters::of(&inner.metrics, crate::metrics::JobKind::pull);
        let span = tracing::info_span!("job", job = %label);
        let c = cancel.clone();
        inner.tasks.spawn(
            async move {
                let j = Arc::clone(&job);
                supervisor::supervise(label, status, c, counters, move || {
                    let j = Arc::clone(&j);
                    async move { j.attempt().await }
                })
                .await;
                let first = job.task.sources.first().cloned().unwrap_or_default();
                job.report_at(false, "", &first);
            }
            .instrument(span),
        );
        jobs.insert(key, Running { cancel });
    }
}

/// One relay task's context for its attempts.
struct PullJob {
    inner: Arc<Inner>,
    task: PullTask,
    app_id: i64,
    cancel: CancellationToken,
    /// Whether attempts pull the backup source: a live task switches
    /// between its source and its backup each time the one it pulls fails
    /// or ends, and stays on whichever works.
    on_backup: Mutex<bool>,
    /// Inserts seen (`InsertTaskTemporaryFiles`), and those waiting for
    /// the end of the file they follow.
    seen: Mutex<std::collections::HashSet<i64>>,
    placed: Mutex<Vec<(PullInsert, usize)>>,
    /// The plan a run cut for inserts continues with.
    cut: Mutex<Option<Plan>>,
}

/// One file of a run: its URL, the number of the task's file it is or
/// follows (0-based; callbacks keep the task's own numbering), and for an
/// inserted file its `InsertContext`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    url: String,
    index: usize,
    context: Option<String>,
    /// Seconds into the file it starts at (`OffsetTime`).
    inpoint: u64,
}

/// What one run of a file task plays.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    items: Vec<Item>,
    /// Its `-stream_loop`.
    loops: i64,
    /// Loops of the task's list done before it (callbacks count on).
    loop_base: i64,
    /// For a run of inserted files and the rest of a loop: the list's
    /// `-stream_loop` for the loops left after it (`None`: none left).
    /// `None` for a run of the list itself.
    then: Option<Option<i64>>,
}

impl Plan {
    /// The task's own files, looped `loops` more times.
    fn files(sources: &[String], loops: i64) -> Plan {
        Plan {
            items: sources
                .iter()
                .enumerate()
                .map(|(index, url)| Item {
                    url: url.clone(),
                    index,
                    context: None,
                    inpoint: 0,
                })
                .collect(),
            loops,
            loop_base: 0,
            then: None,
        }
    }

    /// A task's first run: its list, or with `FileIndex`/`OffsetTime` the
    /// rest of the first loop from there, then the list for the loops
    /// left.
    fn first(task: &PullTask, sources: &[String]) -> Plan {
        let from = task.start_file.min(sources.len().saturating_sub(1));
        if (from == 0 && task.start_offset == 0) || task.kind == PullSourceKind::Live {
            return Plan::files(sources, task.loops);
        }
        let mut items: Vec<Item> = Plan::files(sources, 0).items.split_off(from);
        if let Some(first) = items.first_mut() {
            first.inpoint = task.start_offset;
        }
        Plan {
            items,
            loops: 0,
            loop_base: 0,
            then: Some(match task.loops {
                -1 => Some(-1),
                n if n >= 1 => Some(n - 1),
                _ => None,
            }),
        }
    }

    /// Where its first file starts, seconds.
    fn inpoint(&self) -> u64 {
        self.items.first().map_or(0, |i| i.inpoint)
    }

    fn urls(&self) -> Vec<String> {
        self.items.iter().map(|i| i.url.clone()).collect()
    }
}

impl PullJob {
    /// One attempt: check what it opens, run ffmpeg until it ends or the
    /// job is cancelled, and tell the task's callback and the store.
    async fn attempt(self: Arc<Self>) -> Result<(), JobError> {
        let fetch = &self.inner.config.callbacks.fetch;
        // The live source, or its backup.
        let on_backup = self.on_backup.lock().map(|f| *f).unwrap_or(false);
        let sources: Vec<String> = match (&self.task.kind, &self.task.backup) {
            (PullSourceKind::Live, Some(backup)) if on_backup => vec![backup.clone()],
            _ => self.task.sources.clone(),
        };
        for url in &sources {
            if livestack_net::check_url_resolved(fetch, url).await.is_err() {
                return self.failed_with(
                    "PullFileFailed",
                    url,
                    format!(
                        "the source {} is not an address a relay may reach",
                        shown(url)
                    ),
                );
            }
        }
        let pass;
        let target = match &self.task.target {
            PullTarget::Stream {
                domain,
                app,
                stream,
            } => {
                pass = self
                    .inner
                    .processor
                    .grant_task(
                        self.task.account,
                        domain,
                        app,
                        stream,
                        super::Origin::Relay(self.task.id),
                    )
                    .ok_or_else(|| JobError::Work("the RTMP port is not open yet".into()))?;
                with_args(&pass.url, &self.task.push_args)
            }
            PullTarget::Url(url) => {
                if livestack_net::check_url_resolved(fetch, url).await.is_err() {
                    return self.failed_with(
                        "PushStreamFailed",
                        &sources[0],
                        format!(
                            "the target {} is not an address a relay may reach",
                            shown(url)
                        ),
                    );
                }
                with_args(url, &self.task.push_args)
            }
        };
        // A backup target that is not a permitted address is left out, the
        // main push goes on.
        let mut backup = None;
        if let Some(url) = &self.task.backup_target {
            if livestack_net::check_url_resolved(fetch, url).await.is_ok() {
                backup = Some(with_args(url, &self.task.push_args));
            } else {
                self.alarm(
                    "PushStreamFailed",
                    &sources[0],
                    &format!(
                        "the backup target {} is not an address a relay may reach",
                        shown(url)
                    ),
                );
            }
        }
        let proxy = *self
            .inner
            .processor
            .fetch_proxy
            .get()
            .ok_or_else(|| JobError::Work("the fetch proxy is not open".into()))?;
        let label = format!("relay task {}", self.task.public_id);
        let started_ms = self.inner.clock.unix_ms();
        self.report_at(true, "", &sources[0]);
        self.callback(
            "TaskStart",
            &sources[0],
            json!({"task_start_time": started_ms}),
        );
        // A file task plays its list, looped; files inserted while it runs
        // cut the run at the end of a file and play once before the rest.
        let mut plan = Arc::new(Plan::first(&self.task, &sources));
        let result = loop {
            let out = outputs(&target, backup.as_deref());
            let args = match self.task.kind {
                PullSourceKind::Live => live_args(&sources[0], &self.encoding(), &out),
                PullSourceKind::Vod => vod_args(
                    &plan.urls(),
                    plan.loops,
                    &self.encoding(),
                    &out,
                    plan.inpoint(),
                ),
                PullSourceKind::Picture => {
                    let still = self.fetch_picture(&sources[0]).await?;
                    let mut enc = match self.template() {
                        Some(t) => super::ffmpeg::relay_encoding(&t.output, t.profile),
                        None => super::ffmpeg::relay_encoding(&still_rendition(), Profile::Main),
                    };
                    enc.extend(out);
                    picture_args(&still.to_string_lossy(), &enc)
                }
            };
            // Where in its files a file task is: their durations, read
            // first, against how far ffmpeg has pushed (`-progress`).
            let durations = match self.task.kind {
                PullSourceKind::Vod => durations(&self.inner.config.ffmpeg, proxy, &plan.urls())
                    .await
                    .map(|mut d| {
                        // The first file plays from its inpoint.
                        if let Some(first) = d.first_mut() {
                            *first = first.saturating_sub(plan.inpoint() * 1_000_000);
                        }
                        d
                    }),
                PullSourceKind::Live | PullSourceKind::Picture => None,
            };
            let mut ffmpeg =
                Ffmpeg::spawn_proxied(&self.inner.config.ffmpeg, &args, &label, proxy)?;
            let tracker = Arc::new(Mutex::new(Tracker::new(durations, plan.loops)));
            let run = self.cancel.child_token();
            {
                let (job, tracker, plan, run) = (
                    Arc::clone(&self),
                    Arc::clone(&tracker),
                    Arc::clone(&plan),
                    run.clone(),
                );
                // What ffmpeg has written to the target (`total_size=`),
                // counted for the relay bandwidth statistics.
                let written = std::sync::atomic::AtomicU64::new(0);
                ffmpeg.observe(Box::new(move |line| {
                    if let Some(total) = line
                        .strip_prefix("total_size=")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                    {
                        let before = written.swap(total, std::sync::atomic::Ordering::Relaxed);
                        job.inner
                            .plays
                            .delivered(job.task.account, total.saturating_sub(before));
                    }
                    let Some(value) = progress_value(line) else {
                        return false;
                    };
                    if let Some(us) = value {
                        let moved = tracker
                            .lock()
                            .map(|mut t| t.advance(us, job.inner.clock.unix()))
                            .unwrap_or_default();
                        for m in moved {
                            job.moved(&plan, m, &run);
                        }
                    }
                    true
                }));
            }
            let result = ffmpeg.run_until(&run).await;
            let last = tracker.lock().ok().and_then(|mut t| t.finish());
            if let Some(m) = last {
                self.moved(&plan, m, &run);
            }
            if self.cancel.is_cancelled() {
                break result;
            }
            let cut = self.cut.lock().ok().and_then(|mut c| c.take());
            if let Some(next) = cut {
                plan = Arc::new(next);
                continue;
            }
            match (&result, plan.then) {
                // Inserted files and the rest of the list played: the
                // whole list again, for the loops left.
                (Ok(()), Some(Some(loops))) => {
                    plan = Arc::new(Plan {
                        loop_base: plan.loop_base + 1,
                        ..Plan::files(&sources, loops)
                    });
                }
                _ => break result,
            }
        };
        let exit = json!({"task_exit_time": self.inner.clock.unix_ms()});
        if self.cancel.is_cancelled() {
            self.report_at(false, "", &sources[0]);
            self.callback("TaskExit", &sources[0], exit);
            return result;
        }
        match &result {
            Err(e) => {
                self.alarm("PullFileFailed", &sources[0], &e.to_string());
                self.report_at(false, &e.to_string(), &sources[0]);
            }
            Ok(()) if self.task.kind == PullSourceKind::Vod => {
                // Every loop played: the task has nothing more to push
                // until it is restarted or changed.
                self.callback("TaskExit", &sources[0], exit);
                self.report_at(false, "", &sources[0]);
                self.cancel.cancelled().await;
                return Ok(());
            }
            Ok(()) => {
                // A live source that ended is as good as failed: the
                // next attempt tries again (or the other source).
                self.report_at(false, "the source ended", &sources[0]);
            }
        }
        self.switch_source();
        self.callback("TaskExit", &sources[0], exit);
        result
    }

    /// A picture task's picture, fetched once per attempt (bounded, from a
    /// permitted address) into the working directory, where ffmpeg loops
    /// it: a remote still looped by ffmpeg would be fetched again for
    /// every frame.
    async fn fetch_picture(&self, url: &str) -> Result<std::path::PathBuf, JobError> {
        let fetch = livestack_net::Fetcher::new(
            self.inner.config.callbacks.fetch.clone(),
            Some(std::time::Duration::from_secs(15)),
            livestack_net::Redirects::Follow(5),
        )
        .map_err(|e| JobError::Work(format!("no HTTP client: {e}")))?;
        let body = fetch.get_bounded(url, MAX_PICTURE).await.map_err(|e| {
            let why = format!("the picture {} could not be fetched: {e}", shown(url));
            self.alarm("PullFileFailed", url, &why);
            JobError::Work(why)
        })?;
        let dir = self.inner.config.work_dir.join("relay-pictures");
        let path = dir.join(format!("{}.img", self.task.id));
        tokio::fs::create_dir_all(&dir)
            .await
            .and(tokio::fs::write(&path, &body).await)
            .map_err(|e| JobError::Work(format!("cannot keep the picture: {e}")))?;
        Ok(path)
    }

    /// The task's transcode template (`TranscodeTemplateName`) as it is
    /// now; `None` without one, or when it is gone (logged).
    fn template(&self) -> Option<livestack_core::rules::TranscodeSpec> {
        let name = &self.task.transcode_template;
        if name.is_empty() {
            return None;
        }
        let policy = self.inner.policy();
        let spec = policy
            .processing
            .templates
            .values()
            .find_map(|t| match &t.spec {
                TemplateSpec::Transcode(spec)
                    if t.account == self.task.account && &t.name == name =>
                {
                    Some(spec.clone())
                }
                _ => None,
            });
        if spec.is_none() {
            tracing::warn!(template = %name, "the task's transcode template is gone: its push is not transcoded");
        }
        spec
    }

    /// How a live or file task's push is encoded: its watermarks laid
    /// over it (their pictures as extra inputs), by its transcode
    /// template, or copied as it is.
    fn encoding(&self) -> Encoding {
        let template = self.template();
        let rendition = template.as_ref().map(|t| (&t.output, t.profile));
        if !self.task.watermarks.is_empty() {
            let policy = self.inner.policy();
            let mut inputs = Vec::new();
            for w in &self.task.watermarks {
                let path = policy.processing.picture_path(&w.picture);
                inputs.extend(strings(&["-protocol_whitelist", "file", "-i"]));
                inputs.push(path.to_string_lossy().into_owned());
            }
            return Encoding {
                inputs,
                args: super::ffmpeg::relay_watermarks(&self.task.watermarks, rendition),
            };
        }
        let mut args = strings(&["-map", "0:v:0?", "-map", "0:a:0?"]);
        match rendition {
            Some((r, profile)) => args.extend(super::ffmpeg::relay_encoding(r, profile)),
            None => args.extend(strings(&["-c", "copy"])),
        }
        Encoding {
            inputs: Vec::new(),
            args,
        }
    }

    /// After a failed attempt, a live task with a backup pulls the other
    /// source next.
    fn switch_source(&self) {
        if self.task.backup.is_some() && self.task.kind == PullSourceKind::Live {
            if let Ok(mut b) = self.on_backup.lock() {
                *b = !*b;
            }
        }
    }

    /// Tells the callback and the store that the task moved to another
    /// file (or finished one) of `plan`; places inserts it has not seen
    /// yet, and at the end of a file that inserts follow, cuts `run` to
    /// play them (the next plan, in [`PullJob::cut`]).
    fn moved(&self, plan: &Plan, m: Moved, run: &CancellationToken) {
        // A run cut for inserts says nothing more: the file after the cut
        // plays again, whole, after the inserts.
        if self.cut.lock().map(|c| c.is_some()).unwrap_or(false) {
            return;
        }
        let Some(item) = plan.items.get(m.index) else {
            return;
        };
        let looped = plan.loop_base + m.looped;
        let mut msg = match m.kind {
            MoveKind::Started => json!({"index": item.index + 1, "looped_times": looped}),
            MoveKind::Finished => json!({"index": item.index + 1, "duration": m.offset_secs,
                                          "looped_times": looped}),
            MoveKind::Progress => Value::Null,
        };
        if let (Some(context), Value::Object(o)) = (&item.context, &mut msg) {
            o.insert("insert_context".into(), json!(context));
        }
        match m.kind {
            MoveKind::Started => self.callback("VodSourceFileStart", &item.url, msg),
            MoveKind::Finished => self.callback("VodSourceFileFinish", &item.url, msg),
            MoveKind::Progress => {}
        }
        if m.kind != MoveKind::Finished {
            self.place_inserts(item.index);
            self.emit_report(
                true,
                "",
                &item.url,
                (item.index as i64, looped, m.offset_secs),
            );
            return;
        }
        // The end of one of the task's own files: inserts placed after it
        // play now, then the rest of this loop.
        if item.context.is_some() {
            return;
        }
        let mut due: Vec<PullInsert> = {
            let mut placed = self.placed.lock().unwrap_or_else(|e| e.into_inner());
            let (now, later): (Vec<_>, Vec<_>) = placed
                .drain(..)
                .partition(|(_, point)| *point == item.index);
            *placed = later;
            now.into_iter().map(|(i, _)| i).collect()
        };
        if due.is_empty() {
            return;
        }
        due.sort_by_key(|i| (i.priority, i.id));
        let mut items = Vec::new();
        for i in &due {
            self.inner.emit(MediaEvent::PullInsertPlayed {
                insert: i.id,
                at: self.inner.clock.unix(),
            });
            items.extend(i.files.iter().map(|f| Item {
                url: f.clone(),
                index: item.index,
                context: Some(i.context.clone()),
                inpoint: 0,
            }));
        }
        items.extend(
            self.task
                .sources
                .iter()
                .enumerate()
                .skip(item.index + 1)
                .map(|(index, url)| Item {
                    url: url.clone(),
                    index,
                    context: None,
                    inpoint: 0,
                }),
        );
        let left = self.task.loops - looped;
        let then = if self.task.loops == -1 {
            Some(-1)
        } else {
            (left >= 1).then_some(left - 1)
        };
        if let Ok(mut cut) = self.cut.lock() {
            *cut = Some(Plan {
                items,
                loops: 0,
                loop_base: looped,
                then: Some(then),
            });
        }
        run.cancel();
    }

    /// Gives each insert not seen yet its place: after the file it names
    /// (1-based; past the end: the last), or with 0 after `current`.
    fn place_inserts(&self, current: usize) {
        let policy = self.inner.policy();
        let Some(task) = policy
            .processing
            .pull_tasks
            .iter()
            .find(|t| t.id == self.task.id)
        else {
            return;
        };
        let last = self.task.sources.len().saturating_sub(1);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut placed = self.placed.lock().unwrap_or_else(|e| e.into_inner());
        for i in &task.inserts {
            if seen.insert(i.id) {
                let point = match usize::try_from(i.after) {
                    Ok(0) | Err(_) => current,
                    Ok(n) => (n - 1).min(last),
                };
                placed.push((i.clone(), point));
            }
        }
    }

    /// A failed attempt that never started ffmpeg: alarm, report, error.
    fn failed_with(&self, alarm: &str, url: &str, why: String) -> Result<(), JobError> {
        self.switch_source();
        self.alarm(alarm, url, &why);
        self.report_at(false, &why, url);
        Err(JobError::Work(why))
    }

    fn alarm(&self, alarm_type: &str, url: &str, why: &str) {
        self.callback(
            "TaskAlarm",
            url,
            json!({"alarm_type": alarm_type, "url": url, "code": 1, "message": why}),
        );
    }

    /// Reports the task pulling `url` (at its start), or having stopped.
    fn report_at(&self, active: bool, error: &str, url: &str) {
        let index = self
            .task
            .sources
            .iter()
            .position(|s| s == url)
            .map_or(0, |i| i as i64);
        self.emit_report(active, error, url, (index, 0, 0));
    }

    /// Reports the task's state and its (file index, loops done, seconds
    /// into the file).
    fn emit_report(
        &self,
        active: bool,
        error: &str,
        url: &str,
        (index, looped, offset): (i64, i64, i64),
    ) {
        self.inner.emit(MediaEvent::PullTaskReported {
            task: self.task.id,
            kind: self.task.kind,
            active,
            file_url: url.to_owned(),
            file_index: index,
            looped,
            offset_secs: offset,
            last_error: error.to_owned(),
            at: self.inner.clock.unix(),
        });
    }

    /// Sends event `event` to the task's callback URL, if it wants it.
    fn callback(&self, event: &str, url: &str, msg: Value) {
        if !self.task.wants_event(event) {
            return;
        }
        let mut msg = match msg {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        msg.entry("url").or_insert_with(|| json!(url));
        let fields = pull_fields(self.app_id, &self.task, event, self.inner.clock.unix(), msg);
        self.inner
            .notifier
            .pull_task(&self.task.callback_url, self.task.account, fields);
    }
}

/// The body of a 314 event, as CSS documents it: `event_time`,
/// `source_urls` and `msg` are strings (the last two of JSON).
pub(crate) fn pull_fields(
    app_id: i64,
    task: &PullTask,
    event: &str,
    now: i64,
    msg: Map<String, Value>,
) -> Map<String, Value> {
    let (to_url, stream_id) = match &task.target {
        PullTarget::Stream {
            domain,
            app,
            stream,
        } => (format!("rtmp://{domain}/{app}/{stream}"), stream.clone()),
        PullTarget::Url(url) => (url.clone(), String::new()),
    };
    let body = json!({
        "appid": app_id,
        "callback_event": event,
        "event_type": 314,
        "event_time": now.to_string(),
        "interface": "general_callback",
        "product_name": "pullpush",
        "source_urls": Value::from(task.sources.clone()).to_string(),
        "to_url": to_url,
        "stream_id": stream_id,
        "task_id": task.public_id,
        "callback_url": task.callback_url,
        "msg": Value::Object(msg).to_string(),
    });
    match body {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// How often a file task's position is written while it stays in one
/// file.
const REPORT_EVERY: i64 = 10;

/// What a position change means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MoveKind {
    /// A file began.
    Started,
    /// A file ended (`offset_secs` is how long it played).
    Finished,
    /// Still in the same file: a periodic report.
    Progress,
}

/// A file task's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Moved {
    kind: MoveKind,
    /// The file, 0-based.
    index: usize,
    /// Loops of the list done.
    looped: i64,
    /// Seconds into the file.
    offset_secs: i64,
}

/// Follows a file task through its files from how far ffmpeg has pushed:
/// with every file's duration known, a push time falls in one file of
/// one loop. Without them (a file whose duration could not be read) it
/// says nothing.
struct Tracker {
    /// Each file's duration, µs.
    durations: Option<Vec<u64>>,
    /// The `-stream_loop` of the run (-1: forever): a push time past the
    /// last loop's end (a frame or two over) is the end, not a new loop.
    loops: i64,
    /// (loop, file) now, and when its position was last reported.
    at: Option<(i64, usize)>,
    reported: i64,
    offset_secs: i64,
}

impl Tracker {
    fn new(durations: Option<Vec<u64>>, loops: i64) -> Tracker {
        Tracker {
            durations: durations.filter(|d| !d.is_empty() && d.iter().all(|&d| d > 0)),
            loops,
            at: None,
            reported: 0,
            offset_secs: 0,
        }
    }

    /// ffmpeg has pushed `us` µs (at Unix time `now`): the files finished
    /// and started since, and a periodic report.
    fn advance(&mut self, us: u64, now: i64) -> Vec<Moved> {
        let Some(d) = &self.durations else {
            return Vec::new();
        };
        let total: u64 = d.iter().sum();
        let looped = (us / total) as i64;
        if self.loops >= 0 && looped > self.loops {
            return Vec::new();
        }
        let mut within = us % total;
        let mut index = 0;
        while index + 1 < d.len() && within >= d[index] {
            within -= d[index];
            index += 1;
        }
        let offset_secs = (within / 1_000_000) as i64;
        let mut out = Vec::new();
        if self.at != Some((looped, index)) {
            if let Some(previous) = self.finish() {
                out.push(previous);
            }
            self.at = Some((looped, index));
            self.reported = now;
            self.offset_secs = offset_secs;
            out.push(Moved {
                kind: MoveKind::Started,
                index,
                looped,
                offset_secs,
            });
        } else {
            self.offset_secs = offset_secs;
            if now - self.reported >= REPORT_EVERY {
                self.reported = now;
                out.push(Moved {
                    kind: MoveKind::Progress,
                    index,
                    looped,
                    offset_secs,
                });
            }
        }
        out
    }

    /// The end of the file being played, if one is.
    fn finish(&mut self) -> Option<Moved> {
        let (looped, index) = self.at.take()?;
        let played = self
            .durations
            .as_ref()
            .and_then(|d| d.get(index))
            .map_or(self.offset_secs, |&d| ((d + 500_000) / 1_000_000) as i64);
        Some(Moved {
            kind: MoveKind::Finished,
            index,
            looped,
            offset_secs: played.max(self.offset_secs),
        })
    }
}

/// A `-progress` line: `Some(Some(µs))` for `out_time_us=`, `Some(None)`
/// for the other keys of a progress block, `None` for anything else.
fn progress_value(line: &str) -> Option<Option<u64>> {
    let (key, value) = line.split_once('=')?;
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    Some(if key == "out_time_us" {
        value.trim().parse().ok()
    } else {
        None
    })
}

/// Each file's duration in µs, read by opening it with ffmpeg (its
/// header only); `None` when one cannot be read.
async fn durations(
    ffmpeg: &str,
    proxy: std::net::SocketAddr,
    files: &[String],
) -> Option<Vec<u64>> {
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let run = supervisor::proxied(ffmpeg, proxy)
            .args(["-hide_banner", "-nostdin", "-protocol_whitelist", PROTOCOLS])
            .args(["-rw_timeout", "10000000", "-i", f])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(std::time::Duration::from_secs(15), run)
            .await
            .ok()?
            .ok()?;
        out.push(parse_duration(&String::from_utf8_lossy(&output.stderr))?);
    }
    Some(out)
}

/// `Duration: 00:01:02.50` of ffmpeg's input report, in µs.
fn parse_duration(report: &str) -> Option<u64> {
    let rest = report.split("Duration: ").nth(1)?;
    let hms = rest.split(',').next()?.trim();
    let mut parts = hms.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    let us = ((h * 3600.0 + m * 60.0 + s) * 1e6).round();
    (us > 0.0).then_some(us as u64)
}

/// A URL as logged: without its query, which may carry credentials.
fn shown(url: &str) -> &str {
    url.split('?').next().unwrap_or("")
}

/// `url` with `PushArgs` appended to its query.
fn with_args(url: &str, args: &str) -> String {
    let args = args.trim_start_matches(['?', '&']);
    if args.is_empty() {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&{args}")
    } else {
        format!("{url}?{args}")
    }
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| (*s).to_owned()).collect()
}

/// The protocols a relay's ffmpeg may open: the network ones CSS lists
/// for sources, never `file`, `pipe` or `subfile` on a tenant's say.
const PROTOCOLS: &str = "http,https,tcp,tls,crypto,rtmp,rtmps,rtsp,srt,udp,rtp,hls";

/// Where the push goes: FLV to `target`, and with a backup target
/// (`BackupToUrl`) to both through the tee muxer, the backup's failure
/// ignored (the main push's ends the run, and is retried).
fn outputs(target: &str, backup: Option<&str>) -> Vec<String> {
    let Some(backup) = backup else {
        return strings(&["-f", "flv", target]);
    };
    // Tee's own syntax: `|`, `[`, `]` and `\` in a URL are escaped.
    let esc = |u: &str| {
        u.chars().fold(String::new(), |mut o, c| {
            if matches!(c, '|' | '[' | ']' | '\\') {
                o.push('\\');
            }
            o.push(c);
            o
        })
    };
    strings(&[
        // Encoders must put their headers where FLV wants them.
        "-flags",
        "+global_header",
        "-f",
        "tee",
        &format!(
            "[f=flv]{}|[f=flv:onfail=ignore]{}",
            esc(target),
            esc(backup)
        ),
    ])
}

/// What a relay's ffmpeg adds to its source: more inputs (watermark
/// pictures), then maps, filters and codecs.
struct Encoding {
    inputs: Vec<String>,
    args: Vec<String>,
}

/// The most bytes of a picture task's picture.
const MAX_PICTURE: usize = 10 << 20;

/// A still's encoding: H.264 at 25 fps with a keyframe every 2 s, and
/// AAC of silence, so every player gets a stream like any other.
fn still_rendition() -> livestack_core::rules::Rendition {
    livestack_core::rules::Rendition {
        video: true,
        audio: true,
        video_bitrate: 500,
        fps: 25,
        gop: 2,
        audio_bitrate: 64,
        ..livestack_core::rules::Rendition::default()
    }
}

/// Pushes the local picture `still` as a live stream at its own pace,
/// with silence for sound (`out`: its encoding and outputs).
fn picture_args(still: &str, out: &[String]) -> Vec<String> {
    let mut a = strings(&[
        "-hide_banner",
        "-loglevel",
        "warning",
        "-nostats",
        "-progress",
        "pipe:2",
        "-re",
        "-loop",
        "1",
        "-framerate",
        "25",
        "-protocol_whitelist",
        "file",
        "-i",
        still,
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=44100:cl=stereo",
        "-map",
        "0:v",
        "-map",
        "1:a",
    ]);
    a.extend(out.iter().cloned());
    a
}

/// Pulls a live source as it comes and pushes it, encoded by `enc`, to
/// `out`.
fn live_args(source: &str, enc: &Encoding, out: &[String]) -> Vec<String> {
    let mut a = strings(&[
        "-hide_banner",
        "-loglevel",
        "warning",
        "-nostats",
        // How much it has pushed (`total_size=`): the relay bandwidth.
        "-progress",
        "pipe:2",
        "-protocol_whitelist",
        PROTOCOLS,
        "-rw_timeout",
        "15000000",
        "-i",
        source,
    ]);
    a.extend(enc.inputs.iter().cloned());
    a.extend(enc.args.iter().cloned());
    a.extend(out.iter().cloned());
    a
}

/// Plays files in order at their own pace, `loops` more times after the
/// first (-1: forever), as one push encoded by `enc` to `out`; the first
/// file from `inpoint` seconds.
fn vod_args(
    sources: &[String],
    loops: i64,
    enc: &Encoding,
    out: &[String],
    inpoint: u64,
) -> Vec<String> {
    use base64::Engine as _;
    let mut a = strings(&[
        "-hide_banner",
        "-loglevel",
        "warning",
        "-nostats",
        "-progress",
        "pipe:2",
        "-re",
    ]);
    a.extend(["-stream_loop".to_owned(), loops.max(-1).to_string()]);
    if sources.len() > 1 {
        // The list goes inline as a data: URI rather than in a file: with
        // `file` in the whitelist, a tenant's playlist (an .m3u8 in the
        // list) could name local files, which the whitelist, inherited by
        // everything the list opens, now refuses.
        let list = base64::engine::general_purpose::STANDARD.encode(concat_list(sources, inpoint));
        a.extend(strings(&[
            "-f",
            "concat",
            "-safe",
            "0",
            "-protocol_whitelist",
            &format!("data,{PROTOCOLS}"),
            "-i",
            &format!("data:text/plain;base64,{list}"),
        ]));
    } else {
        a.extend(strings(&[
            "-protocol_whitelist",
            PROTOCOLS,
            "-rw_timeout",
            "15000000",
        ]));
        if inpoint > 0 {
            a.extend(["-ss".to_owned(), inpoint.to_string()]);
        }
        a.extend(["-i".to_owned(), sources[0].clone()]);
    }
    a.extend(enc.inputs.iter().cloned());
    a.extend(enc.args.iter().cloned());
    a.extend(out.iter().cloned());
    a
}

/// An ffconcat list of `urls`, each quoted, the first from `inpoint`
/// seconds.
fn concat_list(urls: &[String], inpoint: u64) -> String {
    let mut out = String::from("ffconcat version 1.0\n");
    for (i, u) in urls.iter().enumerate() {
        out.push_str(&format!("file '{}'\n", u.replace('\'', "'\\''")));
        if i == 0 && inpoint > 0 {
            out.push_str(&format!("inpoint {inpoint}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use livestack_core::AccountId;

    fn task(id: i64) -> PullTask {
        PullTask {
            id,
            public_id: format!("task{id}"),
            account: AccountId(7),
            kind: PullSourceKind::Vod,
            sources: vec!["http://a/1.mp4".into(), "http://a/2.mp4".into()],
            backup: None,
            target: PullTarget::Stream {
                domain: "push.example.com".into(),
                app: "live".into(),
                stream: "relay".into(),
            },
            push_args: String::new(),
            backup_target: None,
            start: 0,
            end: 100,
            enabled: true,
            loops: 0,
            callback_url: "http://cb/".into(),
            callback_events: vec![],
            generation: 0,
            inserts: vec![],
            start_file: 0,
            start_offset: 0,
            transcode_template: String::new(),
            record_template: None,
            watermarks: vec![],
        }
    }

    #[test]
    fn on_one_node_every_running_task_runs_and_in_a_cluster_each_runs_on_one_node() {
        // What `reconcile` runs: this node's tasks in their window.
        fn wanted<'p>(
            tasks: &'p [PullTask],
            nodes: &[String],
            me: Option<&str>,
            now: i64,
        ) -> Vec<&'p PullTask> {
            let mut tasks = mine(tasks, nodes, me);
            tasks.retain(|t| t.runs_at(now));
            tasks
        }
        let tasks: Vec<PullTask> = (1..50).map(task).collect();
        assert_eq!(
            mine(&tasks, &[], None).len(),
            49,
            "ended tasks are still this node's"
        );
        assert_eq!(wanted(&tasks, &[], None, 10).len(), 49);
        assert!(wanted(&tasks, &[], None, 100).is_empty(), "ended");
        let nodes = vec!["a".to_owned(), "b".to_owned()];
        let a = wanted(&tasks, &nodes, Some("a"), 10).len();
        let b = wanted(&tasks, &nodes, Some("b"), 10).len();
        assert_eq!(a + b, 49);
        assert!(a > 0 && b > 0);
        assert!(
            wanted(&tasks, &[], Some("a"), 10).is_empty(),
            "no node list"
        );
    }

    #[test]
    fn a_314_body_carries_json_strings_where_css_does() {
        let mut msg = Map::new();
        msg.insert("task_start_time".into(), json!(1_000));
        let body = pull_fields(1250000000, &task(3), "TaskStart", 1_700_000_000, msg);
        assert_eq!(body["event_type"], 314);
        assert_eq!(body["event_time"], "1700000000");
        assert_eq!(body["product_name"], "pullpush");
        assert_eq!(body["interface"], "general_callback");
        let urls: Vec<String> =
            serde_json::from_str(body["source_urls"].as_str().unwrap()).unwrap();
        assert_eq!(urls.len(), 2);
        let msg: Value = serde_json::from_str(body["msg"].as_str().unwrap()).unwrap();
        assert_eq!(msg["task_start_time"], 1_000);
        assert_eq!(body["to_url"], "rtmp://push.example.com/live/relay");
        assert_eq!(body["stream_id"], "relay");
    }

    #[test]
    fn a_push_time_falls_in_one_file_of_one_loop() {
        let mut t = Tracker::new(Some(vec![4_000_000, 2_000_000]), -1);
        let kinds = |m: &[Moved]| {
            m.iter()
                .map(|m| (m.kind, m.index, m.looped))
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&t.advance(0, 100)), [(MoveKind::Started, 0, 0)]);
        assert!(t.advance(3_900_000, 101).is_empty());
        assert_eq!(
            kinds(&t.advance(4_100_000, 102)),
            [(MoveKind::Finished, 0, 0), (MoveKind::Started, 1, 0)]
        );
        assert_eq!(
            kinds(&t.advance(6_500_000, 103)),
            [(MoveKind::Finished, 1, 0), (MoveKind::Started, 0, 1)]
        );
        assert_eq!(
            kinds(&t.advance(7_000_000, 120)),
            [(MoveKind::Progress, 0, 1)]
        );
        let last = t.finish().unwrap();
        assert_eq!(
            (last.kind, last.index, last.offset_secs),
            (MoveKind::Finished, 0, 4)
        );
        assert!(Tracker::new(None, -1).advance(1, 1).is_empty());
        assert!(Tracker::new(Some(vec![0]), -1).advance(1, 1).is_empty());
        // Played once: a time a little past the end starts no second loop.
        let mut once = Tracker::new(Some(vec![2_000_000]), 0);
        assert_eq!(kinds(&once.advance(0, 1)), [(MoveKind::Started, 0, 0)]);
        assert!(once.advance(2_040_000, 2).is_empty());
    }

    #[test]
    fn progress_lines_and_durations_are_read_from_ffmpegs_output() {
        assert_eq!(progress_value("out_time_us=4100000"), Some(Some(4_100_000)));
        assert_eq!(progress_value("progress=continue"), Some(None));
        assert_eq!(progress_value("stream_0_0_q=-1.0"), Some(None));
        assert_eq!(progress_value("[flv @ 0x1] Failed to update header"), None);
        assert_eq!(progress_value("Some text=with spaces"), None);
        let report = "Input #0, mov,mp4, from 'http://h/a.mp4':\n  Duration: 00:01:02.50, start: 0.000000, bitrate: 1 kb/s";
        assert_eq!(parse_duration(report), Some(62_500_000));
        assert_eq!(parse_duration("  Duration: N/A, bitrate: N/A"), None);
    }

    #[test]
    fn push_args_join_the_targets_query_and_lists_quote_their_files() {
        assert_eq!(with_args("rtmp://h/a/s", ""), "rtmp://h/a/s");
        assert_eq!(with_args("rtmp://h/a/s", "?k=v"), "rtmp://h/a/s?k=v");
        assert_eq!(with_args("rtmp://h/a/s?x=1", "k=v"), "rtmp://h/a/s?x=1&k=v");
        assert_eq!(
            concat_list(&["http://h/it's.mp4".into()], 0),
            "ffconcat version 1.0\nfile 'http://h/it'\\''s.mp4'\n"
        );
        let copy = Encoding {
            inputs: vec![],
            args: strings(&["-c", "copy"]),
        };
        let out = strings(&["-f", "flv", "rtmp://t"]);
        let args = vod_args(&["http://h/1.mp4".into()], 2, &copy, &out, 0);
        assert!(args.windows(2).any(|w| w == ["-stream_loop", "2"]));
        assert!(!args.iter().any(|a| a == "concat"));
        let args = vod_args(
            &["http://h/1.mp4".into(), "http://h/2.mp4".into()],
            -1,
            &copy,
            &out,
            0,
        );
        assert!(args
            .iter()
            .any(|a| a.starts_with("data:text/plain;base64,")));
        assert!(
            !args.iter().any(|a| a.split(',').any(|p| p == "file")),
            "nothing a relay opens may be a local file: {args:?}"
        );
        // OffsetTime: the first file from there, in a list or alone.
        assert!(concat_list(&["a".into(), "b".into()], 7).contains("file 'a'\ninpoint 7\nfile 'b'"));
        let one = vod_args(&["http://h/1.mp4".into()], 0, &copy, &out, 7);
        let both = outputs("rtmp://a/x?k=1", Some("rtmp://b/y|z")).join(" ");
        assert!(
            both.ends_with("-f tee [f=flv]rtmp://a/x?k=1|[f=flv:onfail=ignore]rtmp://b/y\\|z"),
            "{both}"
        );
        assert!(one.windows(3).any(|w| w == ["-ss", "7", "-i"]), "{one:?}");
    }
}
