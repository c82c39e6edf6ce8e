//! Processing of live streams by rules and tasks: transcoding, watermarks,
//! recording and snapshots, each an ffmpeg job livestack supervises, and
//! time-shift, a job that reads the hub in-process.
//!
//! Owns: which jobs should run now ([`plan`], a pure function of the
//! policy, the live streams, the players' demand for transcoded outputs
//! and the clock), starting and stopping them to match (the reconciler,
//! once a second and whenever something changes), and finding what a
//! player asked for ([`Processor::resolve_play`]: a watermarked stream, a
//! transcoded output started on demand, or an edge relay of a stream
//! another node owns). Must not: touch the database or
//! know wire names; a job's own work lives in its module (`transcode`,
//! `record`, `snapshot`, `timeshift`), its process handling in `supervisor`, its
//! command line in `ffmpeg`.
//!
//! Jobs read the source from livestack's own RTMP port on loopback and
//! publish outputs back the same way, each with its own credential
//! (`?livestack_internal=`, a [`Pass`]) for one stream in one direction,
//! which only loopback connections may present and which is revoked when
//! the job's attempt ends. Those
//! internal pushes are live streams like any other for players, but are
//! not in the online list, send no events and get no processing of their
//! own. The name of a watermarked output is the source name with
//! [`WATERMARKED`] appended, and that of the B-frame-free output WebRTC
//! players get with [`WEBRTC_BASELINE`]: names no client can push or play
//! (`@` is not allowed in stream names).

pub(crate) mod ffmpeg;
mod mix;
mod pull;
mod record;
mod record_writer;
mod snapshot;
pub(crate) mod supervisor;
mod timeshift;
mod transcode;
pub(crate) use transcode::fit_to_source;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument as _;

use livestack_core::media::{MediaEvent, Policy, StreamKey};
use livestack_core::rules::{Kind, OutputName, StreamRef, Template, TemplateId, TemplateSpec};
use livestack_core::tasks::{active_tasks, Task, TaskKind};
use livestack_core::{AccountId, Clock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::stream::live::Live;
use crate::Inner;
use supervisor::JobStatus;

/// Appended to a stream name for its watermarked output.
pub(crate) const WATERMARKED: &str = "@wm";
/// Appended to a source's name for its B-frame-free output, which WebRTC
/// players of a stream with B-frames get instead.
pub(crate) const WEBRTC_BASELINE: &str = "@rtc";
/// The query parameter carrying the internal token.
pub(crate) const INTERNAL_PARAM: &str = "livestack_internal";
/// How long a player waits for an output that is being started.
const OUTPUT_WAIT: Duration = Duration::from_secs(15);
/// A transcoded output nobody has asked for in this long is stopped.
const DEMAND_IDLE: Duration = Duration::from_secs(60);
/// How often the reconciler looks even when nothing told it to.
const RECONCILE_EVERY: Duration = Duration::from_secs(1);

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum JobWhat {
    /// Lays the push domain's watermark over the source.
    Watermark {
        /// The watermark.
        template: TemplateId,
    },
    /// Produces `output` (`StreamName_TemplateName`).
    Transcode {
        /// The transcode template (the adaptive parent for its children).
        template: TemplateId,
        /// The output stream name.
        output: String,
    },
    /// Produces several transcoded outputs (template, output name; sorted)
    /// from one decode of the source: the outputs players ask for at
    /// once, when `[media] shared_decode` is on.
    Ladder { outputs: Vec<(TemplateId, String)> },
    /// Re-encodes the video players of the source get (watermarked or
    /// not) as H.264 constrained baseline without B-frames, audio copied,
    /// published as the source name with [`WEBRTC_BASELINE`]: what WebRTC
    /// players of a stream with B-frames get (browsers play pictures in
    /// the order they arrive).
    WebRtcBaseline,
    /// Records one format.
    Record {
        /// The record template; `None` for a task without one.
        template: Option<TemplateId>,
        /// The format.
        format: livestack_core::rules::RecordFormat,
        /// The task asking, or `None` for a rule.
        task: Option<i64>,
    },
    /// Keeps the stream's HLS segments for time-shift (in-process, no
    /// ffmpeg).
    TimeShift {
        /// The time-shift template.
        template: TemplateId,
    },
    /// Takes snapshots.
    Snapshot {
        /// The snapshot template.
        template: TemplateId,
        /// The task asking, or `None` for a rule.
        task: Option<i64>,
    },
}

impl JobWhat {
    /// The kind the metrics count it as.
    pub(crate) fn metric_kind(&self) -> crate::metrics::JobKind {
        use crate::metrics::JobKind;
        match self {
            JobWhat::Watermark { .. } => JobKind::watermark,
            JobWhat::Transcode { .. } | JobWhat::Ladder { .. } => JobKind::transcode,
            JobWhat::WebRtcBaseline => JobKind::webrtc_baseline,
            JobWhat::Record { .. } => JobKind::record,
            JobWhat::Snapshot { .. } => JobKind::snapshot,
            JobWhat::TimeShift { .. } => JobKind::timeshift,
        }
    }

    /// The transcoded outputs it publishes.
    fn transcoded(&self) -> Vec<&str> {
        match self {
            JobWhat::Transcode { output, .. } => vec![output.as_str()],
            JobWhat::Ladder { outputs } => outputs.iter().map(|(_, o)| o.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

/// A job: what, for which live stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct JobKey {
    /// The source stream (as pushed).
    pub(crate) source: StreamKey,
    /// What the job does.
    pub(crate) what: JobWhat,
}

/// An output players asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Demanded {
    /// A transcoded output (`StreamName_TemplateName`) of this template.
    Transcode(TemplateId),
    /// The WebRTC baseline output (`StreamName@rtc`).
    WebRtcBaseline,
}

/// A live source stream as [`plan`] sees it.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The stream.
    pub(crate) key: StreamKey,
    /// The push domain it came in on.
    pub(crate) domain: String,
    /// The watermark chosen when the push started (CSS applies rule
    /// changes to new pushes only).
    pub(crate) watermark: Option<TemplateId>,
    /// The relay task making the push, if one is (its own record
    /// template applies).
    pub(crate) relay_task: Option<i64>,
}

/// The jobs that should run now: for each live source, its watermark,
/// the recording formats and snapshots of its rules and of the tasks
/// active at `now`, and the outputs players asked for within
/// [`DEMAND_IDLE`] (`demand`: output key → what and when last asked) or
/// are watching (`watched`): with `shared_decode`, several of them as one
/// [`JobWhat::Ladder`].
pub(crate) fn plan(
    policy: &Policy,
    shared_decode: bool,
    sources: &[Source],
    demand: &HashMap<StreamKey, (Demanded, Instant)>,
    watched: &dyn Fn(&StreamKey) -> bool,
    now: i64,
    clock: Instant,
) -> Vec<JobKey> {
    let p = &policy.processing;
    let mut jobs = Vec::new();
    for s in sources {
        let job = |what| JobKey {
            source: s.key.clone(),
            what,
        };
        if let Some(template) = s.watermark {
            jobs.push(job(JobWhat::Watermark { template }));
        }
        let at = StreamRef {
            account: s.key.account,
            domain: &s.domain,
            app: &s.key.app,
            stream: &s.key.stream,
        };
        let push = p.for_push(&at);
        if let Some(t) = push.record {
            for format in enabled_formats(Some(t)) {
                jobs.push(job(JobWhat::Record {
                    template: Some(t.id),
                    format,
                    task: None,
                }));
            }
        }
        // A relay task's own record template (`RecordTemplateId`), while
        // the task pushes the stream.
        let relayed = s
            .relay_task
            .and_then(|id| p.pull_tasks.iter().find(|t| t.id == id))
            .and_then(|t| t.record_template)
            .and_then(|id| p.templates.get(&TemplateId(id)))
            .filter(|t| t.account == s.key.account && t.kind() == Kind::Record);
        if let Some(t) = relayed {
            for format in enabled_formats(Some(t)) {
                jobs.push(job(JobWhat::Record {
                    template: Some(t.id),
                    format,
                    task: None,
                }));
            }
        }
        if let Some(t) = push.snapshot {
            jobs.push(job(JobWhat::Snapshot {
                template: t.id,
                task: None,
            }));
        }
        if let Some(t) = push.timeshift {
            jobs.push(job(JobWhat::TimeShift { template: t.id }));
        }
        for task in active_tasks(
            &p.tasks,
            s.key.account,
            &s.domain,
            &s.key.app,
            &s.key.stream,
            now,
        ) {
            jobs.extend(task_jobs(policy, task).into_iter().map(job));
        }
        let mut transcodes = Vec::new();
        for (output, (what, asked)) in demand {
            if output.account != s.key.account
                || output.app != s.key.app
                || (clock.duration_since(*asked) >= DEMAND_IDLE && !watched(output))
            {
                continue;
            }
            match what {
                // The source is the name before the last `_`, as
                // `Processing::transcode_request` reads it: `cam_x_hd` is
                // an output of `cam_x`, not of `cam`.
                Demanded::Transcode(template)
                    if OutputName::parse(&output.stream)
                        .is_some_and(|n| n.source == s.key.stream) =>
                {
                    transcodes.push((*template, output.stream.clone()));
                }
                Demanded::WebRtcBaseline
                    if output.stream.strip_suffix(WEBRTC_BASELINE) == Some(&s.key.stream) =>
                {
                    jobs.push(job(JobWhat::WebRtcBaseline));
                }
                _ => {}
            }
        }
        transcodes.sort();
        if shared_decode && transcodes.len() > 1 {
            jobs.push(job(JobWhat::Ladder {
                outputs: transcodes,
            }));
        } else {
            jobs.extend(
                transcodes
                    .into_iter()
                    .map(|(template, output)| job(JobWhat::Transcode { template, output })),
            );
        }
    }
    jobs.sort();
    jobs.dedup();
    jobs
}

/// The formats a record template enables; HLS without one (CSS's default
/// for a record task without a valid template).
fn enabled_formats(t: Option<&Template>) -> Vec<livestack_core::rules::RecordFormat> {
    match t.map(|t| &t.spec) {
        Some(TemplateSpec::Record(r)) => r
            .outputs
            .iter()
            .filter(|(_, o)| o.enabled)
            .map(|(f, _)| *f)
            .collect(),
        _ => vec![livestack_core::rules::RecordFormat::Hls],
    }
}

/// The jobs of an active task.
fn task_jobs(policy: &Policy, task: &Task) -> Vec<JobWhat> {
    let p = &policy.processing;
    let template = task
        .template
        .and_then(|id| p.templates.get(&id))
        .filter(|t| t.account == task.account);
    match task.kind {
        TaskKind::Record => {
            let formats = match task.legacy {
                Some(l) => vec![l.format],
                None => enabled_formats(template.filter(|t| t.kind() == Kind::Record)),
            };
            formats
                .into_iter()
                .map(|format| JobWhat::Record {
                    template: template.filter(|t| t.kind() == Kind::Record).map(|t| t.id),
                    format,
                    task: Some(task.id),
                })
                .collect()
        }
        TaskKind::Screenshot => template
            .filter(|t| t.kind() == Kind::Snapshot)
            .map(|t| JobWhat::Snapshot {
                template: t.id,
                task: Some(task.id),
            })
            .into_iter()
            .collect(),
    }
}

struct Running {
    cancel: CancellationToken,
    status: Arc<Mutex<JobStatus>>,
    /// A record job's recording span, reported stopped when it goes.
    recording: Option<u64>,
    /// A transcoding job's spans (transcode, watermark, WebRTC baseline;
    /// one per output of a ladder), reported stopped when it goes.
    transcoding: Vec<u64>,
    /// Its [`Job::generation`].
    generation: u64,
}

impl Running {
    /// Cancels the job and reports its spans stopped.
    fn stop(&self, inner: &Inner) {
        self.cancel.cancel();
        let at_ms = inner.clock.unix_ms();
        if let Some(span) = self.recording {
            inner.emit(MediaEvent::RecordingStopped { span, at_ms });
        }
        for &span in &self.transcoding {
            inner.emit(MediaEvent::TranscodeStopped { span, at_ms });
        }
    }
}

/// A transcoding job whose outputs a new job now makes (a ladder that
/// grew or shrank): it runs on, never started again, until the new job's
/// pushes of those outputs feed their players (they join beside its
/// pushes and take over at their first keyframe), or [`RETIRE_WAIT`].
struct Retiring {
    running: Running,
    outputs: Vec<StreamKey>,
    until: Instant,
}

/// How long a replaced transcoding job waits for its successor.
const RETIRE_WAIT: Duration = Duration::from_secs(20);

/// What a job's credential lets a loopback connection do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Play the stream.
    Read,
    /// Publish the stream.
    Write,
}

/// One job's credential for one stream.
#[derive(Debug, Clone)]
struct Grant {
    account: AccountId,
    app: String,
    stream: String,
    direction: Direction,
    /// A relay task's or a mix's push: a push like any other, not an
    /// internal one.
    origin: Option<Origin>,
    /// The job's generation (see [`Job::generation`]); 0 for others.
    generation: u64,
}

/// Which job makes a push that is a push like any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A relay task (its row id).
    Relay(i64),
    /// A mix session's output (its row id).
    Mix(i64),
}

/// A job's credential and the URL carrying it; revoked on drop.
pub(crate) struct Pass {
    /// `rtmp://127.0.0.1:PORT/app/stream?livestack_internal=TOKEN&domain=…`.
    pub(crate) url: String,
    token: String,
    grants: Arc<Mutex<HashMap<String, Grant>>>,
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.token);
    }
}

/// The processing jobs of a media server.
pub(crate) struct Processor {
    jobs: Mutex<HashMap<JobKey, Running>>,
    /// Transcoding jobs replaced, waiting for their successors.
    retiring: Mutex<Vec<Retiring>>,
    /// Relay task jobs.
    pulls: pull::Jobs,
    /// Mix session jobs.
    mixes: mix::Jobs,
    /// Outputs asked for: output → (what, last asked).
    demand: Mutex<HashMap<StreamKey, (Demanded, Instant)>>,
    wake: Notify,
    /// The credentials of running jobs, by token: each lets loopback
    /// connections read or write one stream, while its job holds it.
    grants: Arc<Mutex<HashMap<String, Grant>>>,
    /// Where livestack's RTMP port is, once it listens.
    pub(crate) rtmp_addr: std::sync::OnceLock<SocketAddr>,
    /// The fetch proxy relay jobs' ffmpeg connects through
    /// (`livestack_net::proxy`), once it listens.
    pub(crate) fetch_proxy: std::sync::OnceLock<SocketAddr>,
    /// The media plane's clock (demand windows, task windows).
    pub(crate) clock: Clock,
    /// Numbers recording spans from a random base (see
    /// [`crate::process_id_base`]).
    spans: std::sync::atomic::AtomicU64,
    /// Numbers jobs as they start ([`Job::generation`]).
    generations: std::sync::atomic::AtomicU64,
}

impl Processor {
    /// How many jobs of each kind run now (their attempts running or
    /// waiting to start again), relays and mixes included, for the metrics.
    pub(crate) fn running_jobs(&self) -> HashMap<crate::metrics::JobKind, usize> {
        use crate::metrics::JobKind;
        let mut counts = HashMap::new();
        for key in self.jobs.lock().unwrap_or_else(|e| e.into_inner()).keys() {
            *counts.entry(key.what.metric_kind()).or_insert(0) += 1;
        }
        let retiring = self
            .retiring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        *counts.entry(JobKind::transcode).or_insert(0) += retiring;
        counts.insert(JobKind::pull, self.pulls.running());
        counts.insert(
            JobKind::mix,
            self.mixes.lock().unwrap_or_else(|e| e.into_inner()).len(),
        );
        counts
    }

    /// This node's relay tasks: how many pull now, and how many it answers
    /// for without pulling (paused, outside their time window, done).
    pub(crate) fn relay_tasks(&self) -> (usize, usize) {
        self.pulls.states()
    }

    pub(crate) fn new(clock: Clock) -> Processor {
        Processor {
            jobs: Mutex::new(HashMap::new()),
            retiring: Mutex::new(Vec::new()),
            pulls: pull::Jobs::default(),
            mixes: Mutex::new(HashMap::new()),
            demand: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            grants: Arc::new(Mutex::new(HashMap::new())),
            rtmp_addr: std::sync::OnceLock::new(),
            fetch_proxy: std::sync::OnceLock::new(),
            clock,
            spans: std::sync::atomic::AtomicU64::new(crate::process_id_base()),
            generations: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// A recording span id, unique across restarts and nodes (see
    /// [`crate::process_id_base`]).
    fn next_span(&self) -> u64 {
        self.spans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Asks the reconciler to look now (a push started or ended, the
    /// policy changed, a player asked for an output).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// The account whose job may `direction` the stream `app/stream`
    /// with the token in `query`, from `peer`: a loopback peer holding a
    /// live grant for exactly that stream and direction; with the job's
    /// generation, by which its output push joins or yields to other
    /// jobs' ([`Registry::insert_beside`]).
    ///
    /// [`Registry::insert_beside`]: crate::stream::registry::Registry::insert_beside
    pub(crate) fn internal_grant(
        &self,
        query: &str,
        peer: SocketAddr,
        app: &str,
        stream: &str,
        direction: Direction,
    ) -> Option<(AccountId, u64)> {
        if !peer.ip().is_loopback() {
            return None;
        }
        let token = crate::serve::access::query_get(query, INTERNAL_PARAM)?;
        let grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        // Tokens are 128 random bits: the map lookup reveals nothing a
        // guess could use.
        let grant = grants.get::<str>(&token)?;
        (grant.app == app
            && grant.stream == stream
            && grant.direction == direction
            && grant.origin.is_none())
        .then_some((grant.account, grant.generation))
    }

    /// The account and the job (relay task or mix) whose push of
    /// `app/stream` the token in `query` is, from a loopback `peer`.
    pub(crate) fn task_grant(
        &self,
        query: &str,
        peer: SocketAddr,
        app: &str,
        stream: &str,
    ) -> Option<(AccountId, Origin)> {
        if !peer.ip().is_loopback() {
            return None;
        }
        let token = crate::serve::access::query_get(query, INTERNAL_PARAM)?;
        let grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        let grant = grants.get::<str>(&token)?;
        let origin = grant.origin?;
        (grant.app == app && grant.stream == stream && grant.direction == Direction::Write)
            .then_some((grant.account, origin))
    }

    /// A credential for one job to `direction` `account`'s `app/stream`,
    /// and the RTMP URL carrying it (on the push domain `domain`); revoked
    /// when the [`Pass`] is dropped, that is when the job's attempt ends.
    pub(crate) fn grant(
        &self,
        account: AccountId,
        domain: &str,
        app: &str,
        stream: &str,
        direction: Direction,
    ) -> Option<Pass> {
        self.grant_for(account, domain, app, stream, direction, None, 0)
    }

    /// A credential for a relay task or a mix (`origin`) to push
    /// `account`'s `app/stream` on `domain` as a push like any other.
    pub(crate) fn grant_task(
        &self,
        account: AccountId,
        domain: &str,
        app: &str,
        stream: &str,
        origin: Origin,
    ) -> Option<Pass> {
        self.grant_for(
            account,
            domain,
            app,
            stream,
            Direction::Write,
            Some(origin),
            0,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn grant_for(
        &self,
        account: AccountId,
        domain: &str,
        app: &str,
        stream: &str,
        direction: Direction,
        origin: Option<Origin>,
        generation: u64,
    ) -> Option<Pass> {
        use rand::RngCore;
        let addr = self.rtmp_addr.get()?;
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                token.clone(),
                Grant {
                    account,
                    app: app.to_owned(),
                    stream: stream.to_owned(),
                    direction,
                    origin,
                    generation,
                },
            );
        Some(Pass {
            url: format!("rtmp://{addr}/{app}/{stream}?{INTERNAL_PARAM}={token}&domain={domain}"),
            token,
            grants: Arc::clone(&self.grants),
        })
    }

    /// The live stream a player asking for `key` on play domain `domain`
    /// gets: what [`resolve_local`](Self::resolve_local) finds when the
    /// stream is pushed here, else (in a cluster) an edge relay of it from
    /// the node that owns it, started if need be. A relay carries what
    /// the owner resolved (its transcoded output, its watermark): those
    /// run once in the cluster, on the owner.
    pub(crate) async fn resolve_play(
        &self,
        inner: &Arc<Inner>,
        key: &StreamKey,
        domain: &str,
    ) -> Option<Arc<Live>> {
        if let Some(relay) = inner.live(key).filter(|l| l.publisher.relay) {
            return Some(relay);
        }
        let policy = inner.policy();
        let at = StreamRef {
            account: key.account,
            domain,
            app: &key.app,
            stream: &key.stream,
        };
        let source = match policy.processing.transcode_request(&at) {
            Some((_, base)) => StreamKey {
                stream: base,
                ..key.clone()
            },
            None => key.clone(),
        };
        if inner.live(&source).is_some_and(|l| !l.publisher.relay) {
            return self.resolve_local(inner, key, domain).await;
        }
        crate::serve::relay::from_owner(inner, key, domain, &source).await
    }

    /// What a player asking for `key` on play domain `domain` gets from
    /// the pushes on this node: a transcoded output (started if need be),
    /// the watermarked output of a watermarked source, or the source.
    /// Waits up to [`OUTPUT_WAIT`] for an output that is starting. Edge
    /// relays are not sources: nothing is processed on them.
    pub(crate) async fn resolve_local(
        &self,
        inner: &Inner,
        key: &StreamKey,
        domain: &str,
    ) -> Option<Arc<Live>> {
        let policy = inner.policy();
        let at = StreamRef {
            account: key.account,
            domain,
            app: &key.app,
            stream: &key.stream,
        };
        let local = |k: &StreamKey| inner.live(k).filter(|l| !l.publisher.relay);
        if let Some((template, base)) = policy.processing.transcode_request(&at) {
            let source = StreamKey {
                stream: base,
                ..key.clone()
            };
            local(&source)?;
            self.ask(key, Demanded::Transcode(template.id));
            return self.wait_for(inner, key).await;
        }
        let live = local(key)?;
        // A mix that replaces this stream for its players
        // (`OutputStreamType` 0), while it runs.
        let mixed = policy.processing.mixes.iter().any(|m| {
            m.account == key.account
                && m.layout.output.replaces_input
                && m.layout.output.stream == key.stream
                && m.layout.output.app == key.app
        });
        if mixed {
            let output = StreamKey {
                stream: format!("{}{}", key.stream, mix::MIXED),
                ..key.clone()
            };
            if let Some(mixed) = inner.live(&output) {
                return Some(mixed);
            }
        }
        if live.publisher.watermark.is_some() {
            let marked = StreamKey {
                stream: format!("{}{WATERMARKED}", key.stream),
                ..key.clone()
            };
            return self.wait_for(inner, &marked).await;
        }
        Some(live)
    }

    /// Notes that a player asked for an output.
    pub(crate) fn ask(&self, output: &StreamKey, what: Demanded) {
        let fresh = self
            .demand
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(output.clone(), (what, self.clock.instant()))
            .is_none();
        if fresh {
            self.wake();
        }
    }

    /// Waits until `key` is live, up to [`OUTPUT_WAIT`].
    pub(crate) async fn wait_for(&self, inner: &Inner, key: &StreamKey) -> Option<Arc<Live>> {
        let deadline = tokio::time::Instant::now() + OUTPUT_WAIT;
        loop {
            if let Some(live) = inner.live(key) {
                return Some(live);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
                () = inner.shutdown.cancelled() => return None,
            }
        }
    }

    /// Runs the reconciler until shutdown. First, before any job starts,
    /// it hands the recordings a previous run left in the working
    /// directory to a recovery task that delivers them.
    pub(crate) async fn run(inner: Arc<Inner>) {
        let leftovers = record::leftovers(&inner.config.work_dir);
        if !leftovers.is_empty() {
            inner
                .tasks
                .spawn(record::recover(Arc::clone(&inner), leftovers));
        }
        loop {
            reconcile(&inner);
            // The media plane's once-a-second look also moves players of
            // streams with optimal switching on to their better push.
            for (key, session) in inner.streams.switch_optimally() {
                tracing::info!(stream = %key.stream, "optimal switching: players move to the backup push");
                crate::serve::ingest::claim_for(&inner, &key, session);
            }
            tokio::select! {
                () = inner.processor.wake.notified() => {}
                () = tokio::time::sleep(RECONCILE_EVERY) => {}
                () = inner.shutdown.cancelled() => break,
            }
        }
        // Jobs watch child tokens of the shutdown token: they are ending.
        let p = &inner.processor;
        let mut ended: Vec<Running> = p
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, r)| r)
            .collect();
        ended.extend(
            p.retiring
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
                .map(|r| r.running),
        );
        for r in ended {
            r.stop(&inner);
        }
    }
}

/// Starts the jobs [`plan`] wants that are not running and cancels those
/// running that it no longer wants.
fn reconcile(inner: &Arc<Inner>) {
    let p = &inner.processor;
    if p.rtmp_addr.get().is_none() {
        return;
    }
    pull::reconcile(inner);
    mix::reconcile(inner);
    let policy = inner.policy();
    let sources: Vec<Source> = inner
        .streams
        .all()
        .iter()
        .filter(|l| !l.publisher.internal)
        .map(|l| Source {
            key: l.publisher.key.clone(),
            domain: l.publisher.domain.clone(),
            watermark: l.publisher.watermark,
            relay_task: l.publisher.relay_task,
        })
        .collect();
    let clock = p.clock.instant();
    let demand = {
        let mut d = p.demand.lock().unwrap_or_else(|e| e.into_inner());
        // Forget demand for outputs nobody has asked for or watched lately.
        d.retain(|k, (_, at)| {
            clock.duration_since(*at) < DEMAND_IDLE
                || inner.live(k).is_some_and(|l| l.hub.players() > 0)
        });
        d.clone()
    };
    let watched = |k: &StreamKey| inner.live(k).is_some_and(|l| l.hub.players() > 0);
    let wanted = plan(
        &policy,
        inner.config.shared_decode,
        &sources,
        &demand,
        &watched,
        p.clock.unix(),
        clock,
    );
    retire_replaced(inner, clock);
    let mut jobs = p.jobs.lock().unwrap_or_else(|e| e.into_inner());
    // Transcoding jobs whose outputs a job about to start takes over run
    // on until it has (see `Retiring`).
    let replaced: Vec<(JobKey, Vec<StreamKey>)> = jobs
        .iter()
        .filter(|(k, r)| !wanted.contains(k) && !r.cancel.is_cancelled())
        .filter_map(|(k, _)| {
            let taken: Vec<StreamKey> = k
                .what
                .transcoded()
                .into_iter()
                .filter(|o| {
                    wanted.iter().any(|w| {
                        w.source == k.source
                            && !jobs.contains_key(w)
                            && w.what.transcoded().contains(o)
                    })
                })
                .map(|o| StreamKey {
                    stream: o.to_owned(),
                    ..k.source.clone()
                })
                .collect();
            (!taken.is_empty()).then(|| (k.clone(), taken))
        })
        .collect();
    for (key, outputs) in replaced {
        if let Some(running) = jobs.remove(&key) {
            running
                .status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retiring = true;
            tracing::debug!(source = %key.source.stream, "{:?} is replaced: it runs until its successor takes over", key.what);
            p.retiring
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Retiring {
                    running,
                    outputs,
                    until: clock + RETIRE_WAIT,
                });
        }
    }
    jobs.retain(|k, r| {
        let keep = wanted.contains(k) && !r.cancel.is_cancelled();
        if !keep {
            r.stop(inner);
            let s = r.status.lock().unwrap_or_else(|e| e.into_inner());
            tracing::debug!(
                source = %k.source.stream,
                "stopping {:?} after {} attempts ({} failed{}); {} files stored, {} not",
                k.what,
                s.attempts,
                s.failures,
                s.last_error.as_deref().map(|e| format!(", last: {e}")).unwrap_or_default(),
                s.files,
                s.storage_failures,
            );
        }
        keep
    });
    for key in wanted {
        if jobs.contains_key(&key) {
            continue;
        }
        let Some(source) = sources.iter().find(|s| s.key == key.source) else {
            continue;
        };
        let cancel = inner.shutdown.child_token();
        let status = Arc::new(Mutex::new(JobStatus::default()));
        let generation = p
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let job = Job {
            generation,
            inner: Arc::clone(inner),
            key: key.clone(),
            domain: source.domain.clone(),
            policy: Arc::clone(&policy),
            cancel: cancel.clone(),
            status: Arc::clone(&status),
        };
        let label = job.label();
        let s = Arc::clone(&status);
        let c = cancel.clone();
        let span = tracing::info_span!("job", job = %label);
        let counters = supervisor::Counters::of(&inner.metrics, key.what.metric_kind());
        inner.tasks.spawn(
            async move {
                supervisor::supervise(label, s, c, counters, || job.attempt()).await;
            }
            .instrument(span),
        );
        let recording = match &key.what {
            JobWhat::Record { template, .. } => {
                let span = p.next_span();
                let slow_live = template
                    .and_then(|t| policy.processing.templates.get(&t))
                    .is_some_and(|t| matches!(&t.spec, TemplateSpec::Record(r) if r.slow_live));
                inner.emit(MediaEvent::RecordingStarted {
                    key: key.source.clone(),
                    domain: source.domain.clone(),
                    slow_live,
                    span,
                    at_ms: p.clock.unix_ms(),
                });
                Some(span)
            }
            _ => None,
        };
        let transcoding = transcode_jobs(inner, &policy, &key, &source.domain)
            .into_iter()
            .map(|job| {
                let span = p.next_span();
                inner.emit(MediaEvent::TranscodeStarted {
                    span,
                    job: Box::new(job),
                    at_ms: p.clock.unix_ms(),
                });
                span
            })
            .collect();
        jobs.insert(
            key,
            Running {
                cancel,
                status,
                recording,
                transcoding,
                generation,
            },
        );
    }
}

/// Lets replaced transcoding jobs go once their successors feed every
/// output they took over (or their attempt ended, or [`RETIRE_WAIT`]
/// passed).
fn retire_replaced(inner: &Inner, clock: Instant) {
    let fed_by_successor = |r: &Retiring| {
        r.outputs.iter().all(|o| {
            inner.live(o).is_some_and(|l| {
                l.publisher.generation > r.running.generation && l.switch.feeds(l.publisher.session)
            })
        })
    };
    let mut retiring = inner
        .processor
        .retiring
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    retiring.retain(|r| {
        let done = r.running.cancel.is_cancelled() || clock >= r.until || fed_by_successor(r);
        if done {
            r.running.stop(inner);
        }
        !done
    });
}

/// What a transcoding job (transcode, watermark, WebRTC baseline) makes,
/// for the transcoding statistics, an entry per output; none for other
/// jobs. Sizes and bitrates a template leaves to the source are the
/// source's as measured now.
fn transcode_jobs(
    inner: &Inner,
    policy: &Policy,
    key: &JobKey,
    domain: &str,
) -> Vec<livestack_core::media::TranscodeJob> {
    match &key.what {
        JobWhat::Ladder { outputs } => outputs
            .iter()
            .filter_map(|(template, output)| {
                let rung = JobKey {
                    source: key.source.clone(),
                    what: JobWhat::Transcode {
                        template: *template,
                        output: output.clone(),
                    },
                };
                transcode_job(inner, policy, &rung, domain)
            })
            .collect(),
        _ => transcode_job(inner, policy, key, domain)
            .into_iter()
            .collect(),
    }
}

/// [`transcode_jobs`] of a job with one output.
fn transcode_job(
    inner: &Inner,
    policy: &Policy,
    key: &JobKey,
    domain: &str,
) -> Option<livestack_core::media::TranscodeJob> {
    let live = inner.live(&key.source);
    let (src_w, src_h) = live.as_ref().map_or((0, 0), |l| l.resolution());
    let src_kbps = live.as_ref().map_or(0, |l| l.video_kbps_hint());
    let job =
        |kind, codec: &str, (width, height), bitrate_kbps| livestack_core::media::TranscodeJob {
            key: key.source.clone(),
            domain: domain.to_owned(),
            kind,
            codec: codec.to_owned(),
            width,
            height,
            bitrate_kbps,
        };
    match &key.what {
        JobWhat::Watermark { .. } => Some(job(
            "WaterMark",
            "liveprocessor_H264",
            (src_w, src_h),
            src_kbps,
        )),
        JobWhat::WebRtcBaseline => Some(job(
            "Webrtc",
            "liveprocessor_H264",
            (src_w, src_h),
            src_kbps,
        )),
        JobWhat::Transcode { template, output } => {
            let t = policy.processing.templates.get(template)?;
            let TemplateSpec::Transcode(spec) = &t.spec else {
                return None;
            };
            let name = OutputName::parse(output).map(|n| n.template);
            let r = spec
                .children
                .iter()
                .find(|c| Some(c.name.as_str()) == name)
                .map_or(&spec.output, |c| &c.output);
            let module = if spec.fast_hd {
                "topspeed"
            } else {
                "liveprocessor"
            };
            let codec = match (r.video, r.video_codec) {
                // CSS spells its audio transcoding module this way.
                (false, _) => "liveprocessor_ACC".to_owned(),
                (true, livestack_core::rules::VideoCodec::H265) => format!("{module}_H265"),
                (true, _) => format!("{module}_H264"),
            };
            // A side left at 0 follows the source's aspect ratio.
            let size = match (r.width, r.height) {
                (0, 0) => (src_w, src_h),
                (0, h) if src_h > 0 => ((src_w * h / src_h) & !1, h),
                (w, 0) if src_w > 0 => (w, (src_h * w / src_w) & !1),
                (w, h) => (w, h),
            };
            let size = if r.video { size } else { (0, 0) };
            let kbps = if r.video_bitrate > 0 {
                r.video_bitrate
            } else {
                src_kbps
            };
            Some(job("Transcode", &codec, size, kbps))
        }
        JobWhat::Record { .. }
        | JobWhat::Snapshot { .. }
        | JobWhat::TimeShift { .. }
        | JobWhat::Ladder { .. } => None,
    }
}

/// One job's context for its attempts.
pub(crate) struct Job {
    pub(crate) inner: Arc<Inner>,
    pub(crate) key: JobKey,
    /// The push domain of the source.
    pub(crate) domain: String,
    /// The policy when the job started (templates as they were then).
    pub(crate) policy: Arc<Policy>,
    pub(crate) cancel: CancellationToken,
    /// What the job has done, for logs and the Describe actions.
    pub(crate) status: Arc<Mutex<JobStatus>>,
    /// Numbers jobs in the order they started: of two jobs pushing one
    /// output, the later one's push wins (its predecessor is retiring).
    pub(crate) generation: u64,
}

impl Job {
    /// `live/cam transcode cam_hd`, for logs.
    pub(crate) fn label(&self) -> String {
        let k = &self.key;
        let what = match &k.what {
            JobWhat::Watermark { .. } => "watermark".to_owned(),
            JobWhat::Transcode { .. } | JobWhat::Ladder { .. } => {
                format!("transcode {}", k.what.transcoded().join(", "))
            }
            JobWhat::WebRtcBaseline => "WebRTC baseline".to_owned(),
            JobWhat::Record { format, task, .. } => match task {
                Some(t) => format!("record {format:?} (task {t})"),
                None => format!("record {format:?}"),
            },
            JobWhat::Snapshot { task, .. } => match task {
                Some(t) => format!("snapshot (task {t})"),
                None => "snapshot".to_owned(),
            },
            JobWhat::TimeShift { .. } => "time-shift".to_owned(),
        };
        format!(
            "{}/{}/{} {what}",
            self.domain, k.source.app, k.source.stream
        )
    }

    /// The template `id` of the job's account, as the job started.
    pub(crate) fn template(&self, id: TemplateId) -> Option<&Template> {
        self.policy
            .processing
            .templates
            .get(&id)
            .filter(|t| t.account == self.key.source.account)
    }

    /// A credential to read `stream` (of the source's app and account),
    /// held for as long as the attempt runs.
    pub(crate) fn reader(&self, stream: &str) -> Result<Pass, supervisor::JobError> {
        self.pass(stream, Direction::Read)
    }

    /// A credential to publish `stream`, the job's output.
    pub(crate) fn writer(&self, stream: &str) -> Result<Pass, supervisor::JobError> {
        self.pass(stream, Direction::Write)
    }

    fn pass(&self, stream: &str, direction: Direction) -> Result<Pass, supervisor::JobError> {
        self.inner
            .processor
            .grant_for(
                self.key.source.account,
                &self.domain,
                &self.key.source.app,
                stream,
                direction,
                None,
                self.generation,
            )
            .ok_or_else(|| supervisor::JobError::Work("the RTMP port is not listening".into()))
    }

    /// The name jobs read: the watermarked output if the source is
    /// watermarked, unless `raw` (`RemoveWatermark`).
    pub(crate) fn source_name(&self, raw: bool) -> String {
        let marked = self
            .inner
            .live(&self.key.source)
            .is_some_and(|l| l.publisher.watermark.is_some());
        if marked && !raw {
            format!("{}{WATERMARKED}", self.key.source.stream)
        } else {
            self.key.source.stream.clone()
        }
    }

    /// The stream an in-process job reads ([`Job::source_name`]) and its
    /// live push; an error while it is not live (a watermarked output
    /// whose job has not started yet).
    pub(crate) fn source_live(
        &self,
        raw: bool,
    ) -> Result<(String, Arc<crate::stream::live::Live>), supervisor::JobError> {
        let name = self.source_name(raw);
        let read = StreamKey {
            stream: name.clone(),
            ..self.key.source.clone()
        };
        match self.inner.live(&read) {
            Some(live) => Ok((name, live)),
            None => Err(supervisor::JobError::Work(format!(
                "{name} is not live (yet)"
            ))),
        }
    }

    async fn attempt(&self) -> Result<(), supervisor::JobError> {
        match &self.key.what {
            JobWhat::Watermark { template } => transcode::watermark(self, *template).await,
            JobWhat::Transcode { template, output } => {
                transcode::transcode(self, *template, output).await
            }
            JobWhat::Ladder { outputs } => transcode::ladder(self, outputs).await,
            JobWhat::Record {
                template,
                format,
                task,
            } => record::run(self, *template, *format, *task).await,
            JobWhat::Snapshot { template, task } => snapshot::run(self, *template, *task).await,
            JobWhat::WebRtcBaseline => transcode::webrtc_baseline(self).await,
            JobWhat::TimeShift { template } => timeshift::run(self, *template).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livestack_core::AccountId;

    #[test]
    fn a_jobs_credential_opens_one_stream_one_way_and_dies_with_the_job() {
        let p = Processor::new(Clock::system());
        let _ = p.rtmp_addr.set("127.0.0.1:1935".parse().expect("addr"));
        let local: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let remote: SocketAddr = "192.0.2.7:40000".parse().expect("addr");
        let pass = p
            .grant(
                AccountId(7),
                "push.example.com",
                "live",
                "cam",
                Direction::Read,
            )
            .expect("a pass");
        let query = pass.url.split_once('?').expect("query").1.to_owned();
        let check = |stream: &str, direction, peer| {
            p.internal_grant(&query, peer, "live", stream, direction)
                .map(|(account, _)| account)
        };
        assert_eq!(check("cam", Direction::Read, local), Some(AccountId(7)));
        assert_eq!(
            check("cam", Direction::Write, local),
            None,
            "reading is not publishing"
        );
        assert_eq!(
            check("other", Direction::Read, local),
            None,
            "one stream only"
        );
        assert_eq!(check("cam", Direction::Read, remote), None, "loopback only");
        let other = p
            .grant(
                AccountId(7),
                "push.example.com",
                "live",
                "cam",
                Direction::Read,
            )
            .expect("a pass");
        assert_ne!(other.url, pass.url, "every job gets its own token");
        drop(pass);
        assert_eq!(
            check("cam", Direction::Read, local),
            None,
            "revoked with the job"
        );
    }

    fn key(stream: &str) -> StreamKey {
        StreamKey {
            account: AccountId(1),
            app: "live".into(),
            stream: stream.into(),
        }
    }

    fn source(stream: &str) -> Source {
        Source {
            key: key(stream),
            domain: "push.example.com".into(),
            watermark: None,
            relay_task: None,
        }
    }

    /// [`plan`] with no rules, nothing watched, at time 0.
    fn plan_now(
        shared_decode: bool,
        sources: &[Source],
        demand: &HashMap<StreamKey, (Demanded, Instant)>,
        clock: Instant,
    ) -> Vec<JobKey> {
        plan(
            &Policy::default(),
            shared_decode,
            sources,
            demand,
            &|_| false,
            0,
            clock,
        )
    }

    #[test]
    fn an_output_asked_for_runs_from_the_source_before_its_last_underscore() {
        let clock = Instant::now();
        let demand =
            HashMap::from([(key("cam_x_hd"), (Demanded::Transcode(TemplateId(7)), clock))]);
        let sources = [source("cam"), source("cam_x")];
        let jobs = plan_now(true, &sources, &demand, clock);
        assert_eq!(
            jobs,
            vec![JobKey {
                source: key("cam_x"),
                what: JobWhat::Transcode {
                    template: TemplateId(7),
                    output: "cam_x_hd".into(),
                },
            }]
        );
    }

    #[test]
    fn outputs_of_one_source_played_at_once_share_one_ladder_job_when_decodes_are_shared() {
        let clock = Instant::now();
        let demand = HashMap::from([
            (key("cam_sd"), (Demanded::Transcode(TemplateId(8)), clock)),
            (key("cam_hd"), (Demanded::Transcode(TemplateId(7)), clock)),
            (key("cam2_hd"), (Demanded::Transcode(TemplateId(7)), clock)),
        ]);
        let sources = [source("cam"), source("cam2")];
        let shared = plan_now(true, &sources, &demand, clock);
        let transcode = |stream: &str, template, output: &str| JobKey {
            source: key(stream),
            what: JobWhat::Transcode {
                template: TemplateId(template),
                output: output.into(),
            },
        };
        assert_eq!(
            shared,
            vec![
                JobKey {
                    source: key("cam"),
                    what: JobWhat::Ladder {
                        outputs: vec![
                            (TemplateId(7), "cam_hd".into()),
                            (TemplateId(8), "cam_sd".into())
                        ],
                    },
                },
                transcode("cam2", 7, "cam2_hd"),
            ]
        );
        let separate = plan_now(false, &sources, &demand, clock);
        assert_eq!(
            separate,
            vec![
                transcode("cam", 7, "cam_hd"),
                transcode("cam", 8, "cam_sd"),
                transcode("cam2", 7, "cam2_hd"),
            ]
        );
    }

    #[test]
    fn an_output_nobody_asked_for_lately_stops_unless_it_is_watched() {
        let clock = Instant::now();
        let asked = clock.checked_sub(DEMAND_IDLE).expect("clock");
        let demand = HashMap::from([(key("cam_hd"), (Demanded::Transcode(TemplateId(7)), asked))]);
        let sources = [source("cam")];
        assert!(plan(
            &Policy::default(),
            true,
            &sources,
            &demand,
            &|_| false,
            0,
            clock
        )
        .is_empty());
        assert_eq!(
            plan(
                &Policy::default(),
                true,
                &sources,
                &demand,
                &|_| true,
                0,
                clock
            )
            .len(),
            1
        );
    }

    #[test]
    fn a_webrtc_baseline_asked_for_runs_from_its_source_only() {
        let clock = Instant::now();
        let demand = HashMap::from([(
            key(&format!("cam{WEBRTC_BASELINE}")),
            (Demanded::WebRtcBaseline, clock),
        )]);
        let jobs = plan(
            &Policy::default(),
            true,
            &[source("cam"), source("cam2")],
            &demand,
            &|_| false,
            0,
            clock,
        );
        assert_eq!(
            jobs,
            vec![JobKey {
                source: key("cam"),
                what: JobWhat::WebRtcBaseline,
            }]
        );
    }

    #[test]
    fn a_watermarked_push_gets_a_watermark_job() {
        let mut s = source("cam");
        s.watermark = Some(TemplateId(3));
        let jobs = plan(
            &Policy::default(),
            true,
            &[s],
            &HashMap::new(),
            &|_| false,
            0,
            Instant::now(),
        );
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs[0].what,
            JobWhat::Watermark {
                template: TemplateId(3)
            }
        );
    }
}
