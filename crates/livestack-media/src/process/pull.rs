//! Relay (pull-stream) task jobs: one supervised ffmpeg per running task,
//! pulling its source and pushing it to its target.
//!
//! Owns: which relay tasks run on this node now ([`wanted`]: enabled, in
//! their window, and in a cluster assigned to this node), their ffmpeg
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
use livestack_core::pull::{assigned_node, PullSourceKind, PullTarget, PullTask};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::supervisor::{self, Ffmpeg, JobError, JobStatus};
use crate::Inner;

/// The relay tasks that should run on this node at `now`: enabled, inside
/// their window, and (in a cluster of `nodes`, this node being `me`)
/// assigned to this node. In a cluster whose node list could not be read,
/// none: running a task on two nodes would push its target twice.
pub(crate) fn wanted<'p>(
    tasks: &'p [PullTask],
    nodes: &[String],
    me: Option<&str>,
    now: i64,
) -> Vec<&'p PullTask> {
    tasks
        .iter()
        .filter(|t| t.runs_at(now))
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

/// Relay jobs by (task id, generation).
pub(crate) type Jobs = Mutex<HashMap<(i64, i64), Running>>;

/// Starts the relay jobs [`wanted`] wants and cancels the others.
pub(crate) fn reconcile(inner: &Arc<Inner>) {
    let policy = inner.policy();
    let now = inner.clock.unix();
    let me = inner.cluster.get().map(|l| l.node.clone());
    let wanted: HashMap<(i64, i64), &PullTask> = wanted(
        &policy.processing.pull_tasks,
        &policy.processing.nodes,
        me.as_deref(),
        now,
    )
    .into_iter()
    .map(|t| ((t.id, t.generation), t))
    .collect();
    let mut jobs = inner
        .processor
        .pulls
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
            failed: Mutex::new(false),
        });
        let label = format!("relay task {}", task.public_id);
        let status = Arc::new(Mutex::new(JobStatus::default()));
        let kind = crate::metrics::JobLabels {
            kind: crate::metrics::JobKind::pull,
        };
        let counters = supervisor::Counters {
            starts: inner.metrics.job_starts.get_or_create(&kind).clone(),
            failures: inner.metrics.job_failures.get_or_create(&kind).clone(),
        };
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
                job.report(false, "");
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
    /// Whether the last attempt failed (the next pulls the backup source).
    failed: Mutex<bool>,
}

impl PullJob {
    /// One attempt: check what it opens, run ffmpeg until it ends or the
    /// job is cancelled, and tell the task's callback and the store.
    async fn attempt(&self) -> Result<(), JobError> {
        let fetch = &self.inner.config.callbacks.fetch;
        // The live source, or its backup after a failed attempt.
        let failed_before = self.failed.lock().map(|f| *f).unwrap_or(false);
        let sources: Vec<String> = match (&self.task.kind, &self.task.backup) {
            (PullSourceKind::Live, Some(backup)) if failed_before => vec![backup.clone()],
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
                    .grant_task(self.task.account, domain, app, stream, self.task.id)
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
        let list = self
            .inner
            .config
            .work_dir
            .join(format!("pull-{}.ffconcat", self.task.id));
        let args = match self.task.kind {
            PullSourceKind::Live => live_args(&sources[0], &target),
            PullSourceKind::Vod => {
                if sources.len() > 1 {
                    std::fs::create_dir_all(&self.inner.config.work_dir)
                        .and_then(|()| std::fs::write(&list, concat_list(&sources)))
                        .map_err(|e| JobError::Work(format!("cannot write the file list: {e}")))?;
                }
                vod_args(&sources, &list.to_string_lossy(), self.task.loops, &target)
            }
        };
        let label = format!("relay task {}", self.task.public_id);
        let mut ffmpeg = Ffmpeg::spawn(&self.inner.config.ffmpeg, &args, &label)?;
        let started_ms = self.inner.clock.unix_ms();
        self.report_at(true, "", &sources[0]);
        self.callback(
            "TaskStart",
            &sources[0],
            json!({"task_start_time": started_ms}),
        );
        let result = ffmpeg.run_until(&self.cancel).await;
        let _ = std::fs::remove_file(&list);
        let exit = json!({"task_exit_time": self.inner.clock.unix_ms()});
        match &result {
            Err(e) => {
                if let Ok(mut f) = self.failed.lock() {
                    *f = true;
                }
                self.alarm("PullFileFailed", &sources[0], &e.to_string());
                self.report_at(false, &e.to_string(), &sources[0]);
            }
            Ok(()) => {
                if let Ok(mut f) = self.failed.lock() {
                    *f = false;
                }
                if self.task.kind == PullSourceKind::Vod && !self.cancel.is_cancelled() {
                    // Every loop played: the task has nothing more to push
                    // until it is restarted or changed.
                    self.callback("TaskExit", &sources[0], exit);
                    self.report_at(false, "", &sources[0]);
                    self.cancel.cancelled().await;
                    return Ok(());
                }
                self.report_at(false, "", &sources[0]);
            }
        }
        self.callback("TaskExit", &sources[0], exit);
        result
    }

    /// A failed attempt that never started ffmpeg: alarm, report, error.
    fn failed_with(&self, alarm: &str, url: &str, why: String) -> Result<(), JobError> {
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

    fn report(&self, active: bool, error: &str) {
        let url = self.task.sources.first().cloned().unwrap_or_default();
        self.report_at(active, error, &url);
    }

    fn report_at(&self, active: bool, error: &str, url: &str) {
        let index = self
            .task
            .sources
            .iter()
            .position(|s| s == url)
            .map_or(0, |i| i as i64);
        self.inner.emit(MediaEvent::PullTaskReported {
            task: self.task.id,
            active,
            file_url: url.to_owned(),
            file_index: index,
            looped: 0,
            offset_secs: 0,
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

/// Pulls a live source as it comes and pushes it as it is.
fn live_args(source: &str, target: &str) -> Vec<String> {
    let mut a = strings(&[
        "-hide_banner",
        "-loglevel",
        "warning",
        "-nostats",
        "-protocol_whitelist",
        PROTOCOLS,
        "-rw_timeout",
        "15000000",
        "-i",
        source,
    ]);
    a.extend(strings(&["-c", "copy", "-f", "flv", target]));
    a
}

/// Plays files in order at their own pace, `loops` more times after the
/// first (-1: forever), as one push.
fn vod_args(sources: &[String], list: &str, loops: i64, target: &str) -> Vec<String> {
    let mut a = strings(&["-hide_banner", "-loglevel", "warning", "-nostats", "-re"]);
    a.extend(["-stream_loop".to_owned(), loops.max(-1).to_string()]);
    if sources.len() > 1 {
        // The list itself is livestack's own file; what it names may only
        // be network URLs.
        a.extend(strings(&[
            "-f",
            "concat",
            "-safe",
            "0",
            "-protocol_whitelist",
            &format!("file,{PROTOCOLS}"),
            "-i",
            list,
        ]));
    } else {
        a.extend(strings(&[
            "-protocol_whitelist",
            PROTOCOLS,
            "-rw_timeout",
            "15000000",
        ]));
        a.extend(["-i".to_owned(), sources[0].clone()]);
    }
    a.extend(strings(&["-c", "copy", "-f", "flv", target]));
    a
}

/// An ffconcat list of `urls`, each quoted.
fn concat_list(urls: &[String]) -> String {
    let mut out = String::from("ffconcat version 1.0\n");
    for u in urls {
        out.push_str(&format!("file '{}'\n", u.replace('\'', "'\\''")));
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
            start: 0,
            end: 100,
            enabled: true,
            loops: 0,
            callback_url: "http://cb/".into(),
            callback_events: vec![],
            generation: 0,
        }
    }

    #[test]
    fn on_one_node_every_running_task_runs_and_in_a_cluster_each_runs_on_one_node() {
        let tasks: Vec<PullTask> = (1..50).map(task).collect();
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
    fn push_args_join_the_targets_query_and_lists_quote_their_files() {
        assert_eq!(with_args("rtmp://h/a/s", ""), "rtmp://h/a/s");
        assert_eq!(with_args("rtmp://h/a/s", "?k=v"), "rtmp://h/a/s?k=v");
        assert_eq!(with_args("rtmp://h/a/s?x=1", "k=v"), "rtmp://h/a/s?x=1&k=v");
        assert_eq!(
            concat_list(&["http://h/it's.mp4".into()]),
            "ffconcat version 1.0\nfile 'http://h/it'\\''s.mp4'\n"
        );
        let args = vod_args(&["http://h/1.mp4".into()], "l", 2, "rtmp://t");
        assert!(args.windows(2).any(|w| w == ["-stream_loop", "2"]));
        assert!(!args.iter().any(|a| a == "concat"));
    }
}
