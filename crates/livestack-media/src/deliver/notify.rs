//! Event callbacks: signed JSON notifications to the URLs of a stream's
//! callback template, with the CSS retry schedule.
//!
//! Owns: the callback protocol (the one Tencent wire format the media
//! plane speaks, because it is what it sends), the bounded queue of
//! notifications, their delivery and retries, and the hooks the publish
//! path calls when a push begins and ends ([`push_began`],
//! [`push_ended`]). Must not: stall a stream (enqueueing never waits: a
//! full queue drops the notification and logs it), touch the database,
//! or outlive the media server (the dispatcher and every delivery run on
//! its `TaskTracker` and stop at its shutdown token).
//!
//! # The protocol (<https://www.tencentcloud.com/document/product/267/38080>)
//!
//! `POST` of a JSON object (`Content-Type: application/json`) to the URL
//! the template gives for the event. Every body carries `t` (expiry, Unix
//! seconds, now + [`SIGNATURE_TTL`]), `sign` = lower-hex
//! `MD5(CallbackKey + t)` ([`sign`]), `event_type`, `appid` (the
//! account's AppId), and `stream_id` = `channel_id` = StreamName. `t` and
//! `sign` are computed again for every attempt, so that a late retry is
//! not stale on arrival. The receiver must answer HTTP 200; anything else,
//! or no answer within [`CallbackConfig::timeout`] (20 s), is retried:
//! push begin/end and record-file events up to 12 times every
//! [`CallbackConfig::retry_interval`] (60 s), snapshot events up to 5
//! times every [`CallbackConfig::snapshot_retry_interval`] (120 s).
//!
//! Push begin (1) and end (0) carry `app` (push domain), `appname`,
//! `event_time`, `sequence` (the same for a push's begin and end),
//! `node` (the server address the publisher reached), `user_ip`,
//! `stream_param` (the push URL's query), `errcode`/`errmsg` (0/`ok` on
//! begin; the CSS code of the [`EndReason`] on end), `width`/`height`
//! (what the sequence header said so far, often 0 at begin, as CSS
//! documents) and, on end, `push_duration` (milliseconds, a string).
//! `set_id` and `idc_id` (CSS's region and data-centre numbers) are left
//! out: livestack has no such thing to report.
//!
//! # Sending record-file (100) and snapshot (200) events
//!
//! Resolve the stream's callback template once with
//! [`CallbackTarget::for_push`] (it also finds the AppId), then hand the
//! typed event to the server's notifier; a template without a URL for the
//! event sends nothing:
//!
//! ```ignore
//! let policy = inner.policy();
//! let stream = StreamRef { account, domain: &push_domain, app: &app, stream: &name };
//! if let Some(target) = CallbackTarget::for_push(&policy, &stream) {
//!     inner.notifier.record_file(&target, &RecordFileEvent {
//!         domain: push_domain.clone(),
//!         app: app.clone(),
//!         stream: name.clone(),
//!         file_id: id.clone(),
//!         record_file_id: id,
//!         start_us,                        // Unix microseconds
//!         end_us,
//!         duration: secs,
//!         file_size: bytes,
//!         video_url: url,
//!         stream_param: Some(push_query),  // None for CreateRecordTask tasks
//!         ..RecordFileEvent::new(RecordFormat::Mp4)
//!     });
//!     inner.notifier.snapshot(&target, &SnapshotEvent {
//!         stream: name,
//!         create_time,
//!         file_size,
//!         width,
//!         height,
//!         pic_url,
//!         pic_full_url,
//!     });
//! }
//! ```
//!
//! Both calls return at once; delivery and retries happen on the media
//! server's tasks. At shutdown, what is still queued or waiting for a
//! retry is dropped, the end events of pushes cut by the shutdown too.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::CallbackOutcome;
use livestack_core::media::{EndReason, MediaEvent, Policy};
use livestack_core::rules::{CallbackEvent, CallbackSpec, RecordFormat, StreamRef, TemplateSpec};
use livestack_core::AccountId;
use md5::{Digest, Md5};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::stream::live::Live;
use crate::Inner;
use livestack_core::Clock;

/// Seconds a notification's signature stays valid: `t` = now + this
/// (CSS's default of 10 minutes).
pub(crate) const SIGNATURE_TTL: i64 = 600;

/// `event_type` of a push that ended.
const STREAM_END: i64 = 0;
/// `event_type` of a push that started.
const STREAM_BEGIN: i64 = 1;
/// `event_type` of a recording file.
const RECORD_FILE: i64 = 100;
/// `event_type` of a snapshot.
const SNAPSHOT: i64 = 200;

/// Retries after the first attempt, push and record events.
const STREAM_RETRIES: u32 = 12;
/// Retries after the first attempt, snapshot events.
const SNAPSHOT_RETRIES: u32 = 5;

/// How callbacks are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackConfig {
    /// How long a receiver has to answer one attempt.
    pub timeout: Duration,
    /// Between attempts of push begin/end and record-file events.
    pub retry_interval: Duration,
    /// Between attempts of snapshot events.
    pub snapshot_retry_interval: Duration,
    /// Notifications waiting or being retried at most; more are dropped
    /// (and logged) rather than slowing a stream down.
    pub queue: usize,
    /// What callback URLs may reach (never loopback or private networks
    /// unless the operator allows them).
    pub fetch: livestack_net::FetchPolicy,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            timeout: Duration::from_secs(20),
            retry_interval: Duration::from_secs(60),
            snapshot_retry_interval: Duration::from_secs(120),
            queue: 1024,
            fetch: livestack_net::FetchPolicy::default(),
        }
    }
}

/// `sign` of a notification: lower-hex `MD5(key + t)`.
pub(crate) fn sign(key: &str, t: i64) -> String {
    let mut h = Md5::new();
    h.update(key.as_bytes());
    h.update(t.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Where a stream's notifications go: its callback template and its
/// account's AppId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallbackTarget {
    /// The template's URLs and key.
    pub(crate) spec: CallbackSpec,
    /// The `appid` of every body.
    pub(crate) appid: i64,
    /// The stream's account, whose callback records these are.
    pub(crate) account: AccountId,
}

impl CallbackTarget {
    /// The callback template bound to a stream pushed to the push domain
    /// `stream.domain` (stream over app over domain rules), if any.
    pub(crate) fn for_push(policy: &Policy, stream: &StreamRef<'_>) -> Option<CallbackTarget> {
        let template = policy.processing.for_push(stream).callback?;
        let TemplateSpec::Callback(spec) = &template.spec else {
            return None;
        };
        Some(CallbackTarget {
            spec: spec.clone(),
            appid: policy
                .processing
                .app_ids
                .get(&stream.account)
                .copied()
                .unwrap_or(0),
            account: stream.account,
        })
    }

    /// The URL for `event`, when the template has one.
    fn url(&self, event: CallbackEvent) -> Option<&str> {
        self.spec
            .urls
            .get(&event)
            .map(String::as_str)
            .filter(|u| !u.is_empty())
    }
}

/// A push's begin (event 1) or end (event 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamEvent {
    /// The push domain (`app`).
    pub(crate) domain: String,
    /// AppName (`appname`).
    pub(crate) app: String,
    /// StreamName (`stream_id`, `channel_id`).
    pub(crate) stream: String,
    /// Unix seconds of the event (`event_time`).
    pub(crate) event_time: i64,
    /// The same for a push's begin and end (`sequence`).
    pub(crate) sequence: String,
    /// The server address the publisher reached (`node`).
    pub(crate) node: String,
    /// The publisher's address (`user_ip`).
    pub(crate) user_ip: String,
    /// The push URL's query (`stream_param`).
    pub(crate) stream_param: String,
    /// Picture width so far (`width`).
    pub(crate) width: u32,
    /// Picture height so far (`height`).
    pub(crate) height: u32,
    /// Set for an end event.
    pub(crate) end: Option<StreamEnd>,
}

/// What only an end event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamEnd {
    /// Why the push ended.
    pub(crate) reason: EndReason,
    /// How long it lasted.
    pub(crate) duration: Duration,
}

/// A recording file is ready (event 100).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordFileEvent {
    /// The push domain (`app`).
    pub(crate) domain: String,
    /// AppName (`appname`).
    pub(crate) app: String,
    /// StreamName (`stream_id`, `channel_id`).
    pub(crate) stream: String,
    /// The media-library file id (`file_id`).
    pub(crate) file_id: String,
    /// The recording file id (`record_file_id`).
    pub(crate) record_file_id: String,
    /// The file's format (`file_format`: `flv`, `hls`, `mp4`, `aac`, `mp3`).
    pub(crate) format: RecordFormat,
    /// The `CreateRecordTask` task id; empty for rule-driven recordings
    /// (`task_id`).
    pub(crate) task_id: String,
    /// When recording started, Unix microseconds (`start_time`,
    /// `start_time_usec`).
    pub(crate) start_us: i64,
    /// When recording ended, Unix microseconds (`end_time`,
    /// `end_time_usec`).
    pub(crate) end_us: i64,
    /// Media duration in seconds (`duration`).
    pub(crate) duration: i64,
    /// Bytes (`file_size`).
    pub(crate) file_size: u64,
    /// The push URL's query; `None` for tasks made by `CreateRecordTask`,
    /// whose callbacks leave it out (`stream_param`).
    pub(crate) stream_param: Option<String>,
    /// Where the file can be fetched (`video_url`).
    pub(crate) video_url: String,
    /// Timestamp of the first media frame, milliseconds
    /// (`media_start_time`).
    pub(crate) media_start_time: i64,
    /// Recording bitrate, bit/s (`record_bps`).
    pub(crate) record_bps: u64,
    /// Extra facts (`callback_ext`, sent as JSON text); `None` leaves the
    /// field out.
    pub(crate) callback_ext: Option<RecordExt>,
}

impl RecordFileEvent {
    /// An event of `format` with every other field empty or zero, to fill
    /// with struct-update syntax.
    pub(crate) fn new(format: RecordFormat) -> RecordFileEvent {
        RecordFileEvent {
            domain: String::new(),
            app: String::new(),
            stream: String::new(),
            file_id: String::new(),
            record_file_id: String::new(),
            format,
            task_id: String::new(),
            start_us: 0,
            end_us: 0,
            duration: 0,
            file_size: 0,
            stream_param: None,
            video_url: String::new(),
            media_start_time: 0,
            record_bps: 0,
            callback_ext: None,
        }
    }
}

/// `callback_ext` of a record-file event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecordExt {
    /// `video_codec` (`h264`, `h265`).
    pub(crate) video_codec: String,
    /// `resolution` (`640x360`).
    pub(crate) resolution: String,
    /// `session_id`: the recording session.
    pub(crate) session_id: String,
}

/// A snapshot is ready (event 200).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SnapshotEvent {
    /// StreamName (`stream_id`, `channel_id`).
    pub(crate) stream: String,
    /// Unix seconds the picture was taken (`create_time`).
    pub(crate) create_time: i64,
    /// Bytes (`file_size`).
    pub(crate) file_size: u64,
    /// Pixels (`width`).
    pub(crate) width: u32,
    /// Pixels (`height`).
    pub(crate) height: u32,
    /// The picture's path in the bucket, e.g.
    /// `/2018-12-17/stream-screenshot-19-06-59-640x352.jpg` (`pic_url`).
    pub(crate) pic_url: String,
    /// Its full URL (`pic_full_url`).
    pub(crate) pic_full_url: String,
}

/// The fields every body has except `t` and `sign`.
fn common(event_type: i64, appid: i64, stream: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("event_type".into(), json!(event_type));
    m.insert("appid".into(), json!(appid));
    m.insert("stream_id".into(), json!(stream));
    m.insert("channel_id".into(), json!(stream));
    m
}

/// The body of a push begin or end, without `t` and `sign`.
pub(crate) fn stream_fields(appid: i64, ev: &StreamEvent) -> Map<String, Value> {
    let event_type = if ev.end.is_some() {
        STREAM_END
    } else {
        STREAM_BEGIN
    };
    let mut m = common(event_type, appid, &ev.stream);
    m.insert("app".into(), json!(ev.domain));
    m.insert("appname".into(), json!(ev.app));
    m.insert("event_time".into(), json!(ev.event_time));
    m.insert("sequence".into(), json!(ev.sequence));
    m.insert("node".into(), json!(ev.node));
    m.insert("user_ip".into(), json!(ev.user_ip));
    m.insert("stream_param".into(), json!(ev.stream_param));
    m.insert("width".into(), json!(ev.width));
    m.insert("height".into(), json!(ev.height));
    match &ev.end {
        None => {
            m.insert("errcode".into(), json!(0));
            m.insert("errmsg".into(), json!("ok"));
        }
        Some(end) => {
            m.insert("errcode".into(), json!(end.reason.code().0));
            m.insert("errmsg".into(), json!(end.reason.describe()));
            m.insert(
                "push_duration".into(),
                json!(end.duration.as_millis().to_string()),
            );
        }
    }
    m
}

/// `file_format` of a recording.
fn format_name(format: RecordFormat) -> &'static str {
    match format {
        RecordFormat::Flv => "flv",
        RecordFormat::Hls => "hls",
        RecordFormat::Mp4 => "mp4",
        RecordFormat::Aac => "aac",
        RecordFormat::Mp3 => "mp3",
    }
}

/// The body of a record-file event, without `t` and `sign`.
pub(crate) fn record_fields(appid: i64, ev: &RecordFileEvent) -> Map<String, Value> {
    let mut m = common(RECORD_FILE, appid, &ev.stream);
    m.insert("app".into(), json!(ev.domain));
    m.insert("appname".into(), json!(ev.app));
    m.insert("file_id".into(), json!(ev.file_id));
    m.insert("record_file_id".into(), json!(ev.record_file_id));
    m.insert("file_format".into(), json!(format_name(ev.format)));
    m.insert("task_id".into(), json!(ev.task_id));
    m.insert(
        "start_time".into(),
        json!(ev.start_us.div_euclid(1_000_000)),
    );
    m.insert("end_time".into(), json!(ev.end_us.div_euclid(1_000_000)));
    m.insert(
        "start_time_usec".into(),
        json!(ev.start_us.rem_euclid(1_000_000)),
    );
    m.insert(
        "end_time_usec".into(),
        json!(ev.end_us.rem_euclid(1_000_000)),
    );
    m.insert("duration".into(), json!(ev.duration));
    m.insert("file_size".into(), json!(ev.file_size));
    if let Some(param) = &ev.stream_param {
        m.insert("stream_param".into(), json!(param));
    }
    m.insert("video_url".into(), json!(ev.video_url));
    m.insert("media_start_time".into(), json!(ev.media_start_time));
    m.insert("record_bps".into(), json!(ev.record_bps));
    if let Some(ext) = &ev.callback_ext {
        let text = json!({
            "video_codec": ext.video_codec,
            "resolution": ext.resolution,
            "session_id": ext.session_id,
        })
        .to_string();
        m.insert("callback_ext".into(), json!(text));
    }
    m
}

/// The body of a snapshot event, without `t` and `sign`.
pub(crate) fn snapshot_fields(appid: i64, ev: &SnapshotEvent) -> Map<String, Value> {
    let mut m = common(SNAPSHOT, appid, &ev.stream);
    m.insert("create_time".into(), json!(ev.create_time));
    m.insert("file_size".into(), json!(ev.file_size));
    m.insert("width".into(), json!(ev.width));
    m.insert("height".into(), json!(ev.height));
    m.insert("pic_url".into(), json!(ev.pic_url));
    m.insert("pic_full_url".into(), json!(ev.pic_full_url));
    m
}

/// The bytes sent at Unix time `now`: `fields` with `t` = now +
/// [`SIGNATURE_TTL`] and its `sign`.
pub(crate) fn signed_body(fields: &Map<String, Value>, key: &str, now: i64) -> Vec<u8> {
    let t = now + SIGNATURE_TTL;
    let mut body = fields.clone();
    body.insert("t".into(), json!(t));
    body.insert("sign".into(), json!(sign(key, t)));
    Value::Object(body).to_string().into_bytes()
}

/// How often a notification is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Retry {
    /// Attempts after the first.
    retries: u32,
    /// Wait between attempts.
    interval: Duration,
}

/// One notification to deliver.
struct Job {
    url: String,
    /// The template's key, signing the body (`t`, `sign`); `None` for
    /// events CSS does not sign (relay tasks' 314).
    key: Option<String>,
    fields: Map<String, Value>,
    retry: Retry,
    /// For logs and callback records: `event_type` and StreamName.
    event_type: i64,
    stream: String,
    account: AccountId,
}

/// The server's notification queue. Cheap to clone; every method returns
/// at once.
#[derive(Clone)]
pub(crate) struct Notifier {
    tx: mpsc::Sender<(Job, OwnedSemaphorePermit)>,
    /// One permit per notification queued or being retried.
    slots: Arc<Semaphore>,
    config: CallbackConfig,
    /// Unix seconds the notifier started: the high part of `sequence`,
    /// so sequences stay unique across restarts.
    boot: u64,
    metrics: crate::metrics::MediaMetrics,
}

impl Notifier {
    /// Starts the dispatcher on `tasks`; it and every delivery stop when
    /// `shutdown` is cancelled. Must be called inside a Tokio runtime.
    pub(crate) fn start(
        config: CallbackConfig,
        clock: Clock,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
        metrics: crate::metrics::MediaMetrics,
        records: Option<mpsc::Sender<MediaEvent>>,
    ) -> Notifier {
        let queue = config.queue.max(1);
        let (tx, rx) = mpsc::channel(queue);
        // Redirects are not followed: CSS expects the URL itself to answer
        // 200, so a redirect is an answer like any other non-200.
        let client =
            livestack_net::Fetcher::new(config.fetch.clone(), None, livestack_net::Redirects::None)
                .map_err(|e| tracing::error!("callbacks disabled: no HTTP client: {e}"))
                .ok();
        // Deliveries outlive the shutdown signal briefly, so that the end
        // events of the pushes it cuts off still go out.
        let stop = CancellationToken::new();
        let slots = Arc::new(Semaphore::new(queue));
        tasks.spawn(drain(shutdown, stop.clone(), Arc::clone(&slots), queue));
        tasks.spawn(dispatch(
            rx,
            client,
            tasks.clone(),
            stop,
            Delivery {
                timeout: config.timeout,
                clock: clock.clone(),
                metrics: metrics.clone(),
                records,
            },
        ));
        Notifier {
            tx,
            slots,
            config,
            boot: clock.unix().max(0) as u64,
            metrics,
        }
    }

    /// The `sequence` of the push session `session`: the same for its
    /// begin and end, unique across sessions and restarts.
    pub(crate) fn sequence(&self, session: u64) -> String {
        self.boot
            .wrapping_mul(1_000_000_000)
            .wrapping_add(session)
            .to_string()
    }

    /// Sends a push begin or end to `target`, when its template has a URL
    /// for it.
    pub(crate) fn stream(&self, target: &CallbackTarget, ev: &StreamEvent) {
        let event = if ev.end.is_some() {
            CallbackEvent::StreamEnd
        } else {
            CallbackEvent::StreamBegin
        };
        let retry = Retry {
            retries: STREAM_RETRIES,
            interval: self.config.retry_interval,
        };
        self.send(target, event, stream_fields(target.appid, ev), retry);
    }

    /// Sends a record-file event (100) to `target`, when its template has
    /// a `RecordNotifyUrl`.
    pub(crate) fn record_file(&self, target: &CallbackTarget, ev: &RecordFileEvent) {
        let retry = Retry {
            retries: STREAM_RETRIES,
            interval: self.config.retry_interval,
        };
        self.send(
            target,
            CallbackEvent::Record,
            record_fields(target.appid, ev),
            retry,
        );
    }

    /// Sends a snapshot event (200) to `target`, when its template has a
    /// `SnapshotNotifyUrl`.
    pub(crate) fn snapshot(&self, target: &CallbackTarget, ev: &SnapshotEvent) {
        let retry = Retry {
            retries: SNAPSHOT_RETRIES,
            interval: self.config.snapshot_retry_interval,
        };
        self.send(
            target,
            CallbackEvent::Snapshot,
            snapshot_fields(target.appid, ev),
            retry,
        );
    }

    fn send(
        &self,
        target: &CallbackTarget,
        event: CallbackEvent,
        fields: Map<String, Value>,
        retry: Retry,
    ) {
        let Some(url) = target.url(event) else {
            return;
        };
        let key = Some(target.spec.key.clone());
        self.enqueue(url, key, target.account, fields, retry);
    }

    /// Sends a relay task's event (314) to its `CallbackUrl`, unsigned (CSS
    /// documents no `sign` for these), retried like push events.
    pub(crate) fn pull_task(&self, url: &str, account: AccountId, fields: Map<String, Value>) {
        let retry = Retry {
            retries: STREAM_RETRIES,
            interval: self.config.retry_interval,
        };
        self.enqueue(url, None, account, fields, retry);
    }

    fn enqueue(
        &self,
        url: &str,
        key: Option<String>,
        account: AccountId,
        fields: Map<String, Value>,
        retry: Retry,
    ) {
        let event_type = fields
            .get("event_type")
            .and_then(Value::as_i64)
            .unwrap_or(-1);
        let stream = fields
            .get("stream_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
            self.metrics.callback(CallbackOutcome::dropped);
            tracing::warn!(
                event_type,
                stream,
                "callback dropped: {} notifications are already queued",
                self.config.queue
            );
            return;
        };
        let job = Job {
            url: url.to_owned(),
            key,
            fields,
            retry,
            event_type,
            stream,
            account,
        };
        self.metrics.callback(CallbackOutcome::queued);
        if let Err(e) = self.tx.try_send((job, permit)) {
            // Only after shutdown: the queue has a slot for every permit.
            tracing::debug!("callback dropped: {e}");
        }
    }
}

/// How long after shutdown deliveries may go on.
const DRAIN: Duration = Duration::from_secs(3);

/// Waits for `shutdown`, then gives what is queued or in flight (and the
/// end events of the pushes shutdown ends, sent a moment later) up to
/// [`DRAIN`] to be delivered before `stop` ends every delivery. Retries
/// still waiting then are dropped and logged.
async fn drain(
    shutdown: CancellationToken,
    stop: CancellationToken,
    slots: Arc<Semaphore>,
    queue: usize,
) {
    shutdown.cancelled().await;
    let deadline = tokio::time::Instant::now() + DRAIN;
    // Pushes end a moment after the signal and queue their end events.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while slots.available_permits() < queue && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pending = queue - slots.available_permits();
    if pending > 0 {
        tracing::warn!(
            pending,
            "callbacks still undelivered at shutdown are dropped"
        );
    }
    stop.cancel();
}

/// Takes notifications off the queue and delivers each on its own task,
/// so that a slow or dead receiver delays nobody else.
async fn dispatch(
    mut rx: mpsc::Receiver<(Job, OwnedSemaphorePermit)>,
    client: Option<livestack_net::Fetcher>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    how: Delivery,
) {
    loop {
        let (job, permit) = tokio::select! {
            next = rx.recv() => match next {
                Some(next) => next,
                None => return,
            },
            () = shutdown.cancelled() => return,
        };
        let Some(client) = client.clone() else {
            tracing::warn!(
                event_type = job.event_type,
                "callback dropped: no HTTP client"
            );
            continue;
        };
        tasks.spawn(deliver(client, job, permit, shutdown.clone(), how.clone()));
    }
}

/// What every delivery shares: its timeout, clock, metrics and where the
/// record of each attempt goes.
#[derive(Clone)]
struct Delivery {
    timeout: Duration,
    clock: Clock,
    metrics: crate::metrics::MediaMetrics,
    records: Option<mpsc::Sender<MediaEvent>>,
}

/// Tries one notification until a receiver answers 200 or the retries
/// run out. The permit frees its queue slot when this ends.
async fn deliver(
    client: livestack_net::Fetcher,
    job: Job,
    _permit: OwnedSemaphorePermit,
    shutdown: CancellationToken,
    how: Delivery,
) {
    let Delivery {
        timeout,
        clock,
        metrics,
        records,
    } = how;
    let attempts = job.retry.retries + 1;
    // Logged without the query, which may carry a receiver's token.
    let shown = job.url.split('?').next().unwrap_or("");
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::select! {
                () = tokio::time::sleep(job.retry.interval) => {}
                () = shutdown.cancelled() => return,
            }
        }
        let body = match &job.key {
            Some(key) => signed_body(&job.fields, key, clock.unix()),
            None => Value::Object(job.fields.clone()).to_string().into_bytes(),
        };
        let sent_ms = clock.unix_ms();
        let request = String::from_utf8_lossy(&body).into_owned();
        let answer = tokio::select! {
            r = post(&client, &job.url, body, timeout) => r,
            () = shutdown.cancelled() => return,
        };
        if let Some(records) = &records {
            // For DescribeCallbackRecordsList; a full channel loses the
            // record, never delays the delivery.
            let _ = records.try_send(MediaEvent::CallbackAttempted {
                account: job.account,
                stream: job.stream.clone(),
                event_type: job.event_type,
                request,
                response: answer.body.clone(),
                result_code: answer.code,
                sent_ms,
                answered_ms: clock.unix_ms(),
            });
        }
        let outcome = if answer.code == 0 {
            Ok(())
        } else if answer.answered {
            Err(format!("HTTP {}", answer.code))
        } else {
            Err(answer.body)
        };
        match outcome {
            Ok(()) => {
                metrics.callback(CallbackOutcome::delivered);
                tracing::debug!(
                    event_type = job.event_type,
                    stream = job.stream,
                    url = shown,
                    attempt,
                    "callback delivered"
                );
                return;
            }
            Err(why) => {
                metrics.callback(CallbackOutcome::failed);
                tracing::warn!(
                    event_type = job.event_type,
                    stream = job.stream,
                    url = shown,
                    attempt,
                    "callback not accepted: {why}"
                );
            }
        }
    }
    metrics.callback(CallbackOutcome::given_up);
    tracing::warn!(
        event_type = job.event_type,
        stream = job.stream,
        url = shown,
        "callback given up after {attempts} attempts"
    );
}

/// One attempt: `Ok` when the receiver answers 200 in time.
/// What a receiver answered: `code` 0 for 200, the HTTP status for
/// another answer; with no answer (`body` then says why) 504 when it
/// timed out and 502 when it could not be reached, as a gateway would
/// say (`ResultCode` is unsigned on the wire).
struct Answer {
    code: i64,
    body: String,
    /// Whether the receiver answered at all.
    answered: bool,
}

/// The most of a receiver's answer body kept in a callback record.
const ANSWER_KEPT: usize = 2048;

/// One attempt.
async fn post(
    fetch: &livestack_net::Fetcher,
    url: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Answer {
    match tokio::time::timeout(timeout, attempt(fetch, url, body, timeout)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(why)) => Answer {
            code: if why.starts_with("no answer within") {
                504
            } else {
                502
            },
            body: why,
            answered: false,
        },
        Err(_) => Answer {
            code: 504,
            answered: false,
            body: format!("no answer within {} s", timeout.as_secs_f64()),
        },
    }
}

async fn attempt(
    fetch: &livestack_net::Fetcher,
    url: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Answer, String> {
    fetch.check(url).map_err(|e| e.to_string())?;
    let mut resp = fetch
        .client()
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {} s", timeout.as_secs_f64())
            } else {
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    why.push_str(": ");
                    why.push_str(&s.to_string());
                    source = s.source();
                }
                why
            }
        })?;
    let status = resp.status();
    // The start of the body, for the record; a receiver that sends more
    // (or never ends it) is cut off, and the timeout above bounds it.
    let mut kept = Vec::new();
    while kept.len() < ANSWER_KEPT {
        match resp.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    kept.truncate(ANSWER_KEPT);
    Ok(Answer {
        code: if status == reqwest::StatusCode::OK {
            0
        } else {
            i64::from(status.as_u16())
        },
        body: String::from_utf8_lossy(&kept).into_owned(),
        answered: true,
    })
}

/// The push begin or end event of `live`, as the policy now says.
fn stream_event(inner: &Inner, live: &Live, end: Option<StreamEnd>) -> StreamEvent {
    let p = &live.publisher;
    let (width, height) = live.resolution();
    StreamEvent {
        domain: p.domain.clone(),
        app: p.key.app.clone(),
        stream: p.key.stream.clone(),
        event_time: inner.clock.unix(),
        sequence: inner.notifier.sequence(p.session),
        node: p.server.ip().to_string(),
        user_ip: p.client.ip().to_string(),
        stream_param: p.params.clone(),
        width,
        height,
        end,
    }
}

/// The callback target of `live`'s push, by the current policy.
fn target_of(inner: &Inner, live: &Live) -> Option<CallbackTarget> {
    let p = &live.publisher;
    CallbackTarget::for_push(
        &inner.policy(),
        &StreamRef {
            account: p.key.account,
            domain: &p.domain,
            app: &p.key.app,
            stream: &p.key.stream,
        },
    )
}

/// The publish path's hook when a push has been accepted and is live:
/// sends the begin event (1) if a callback template applies. With
/// [`push_ended`], the one place to skip livestack's own loopback pushes
/// (transcoder outputs) once they are marked as internal.
pub(crate) fn push_began(inner: &Inner, live: &Live) {
    if let Some(target) = target_of(inner, live) {
        inner
            .notifier
            .stream(&target, &stream_event(inner, live, None));
    }
}

/// The publish path's hook when a live push has ended, after `duration`:
/// sends the end event (0) if a callback template applies.
pub(crate) fn push_ended(inner: &Inner, live: &Live, reason: EndReason, duration: Duration) {
    if let Some(target) = target_of(inner, live) {
        let end = StreamEnd { reason, duration };
        inner
            .notifier
            .stream(&target, &stream_event(inner, live, Some(end)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    use livestack_core::rules::{Kind, Processing, Rule, Template, TemplateId};
    use livestack_core::AccountId;

    #[test]
    fn the_signature_is_md5_of_the_key_then_t_in_lower_hex() {
        // Computed independently: md5("adasda131312" + "1545116390").
        assert_eq!(
            sign("adasda131312", 1_545_116_390),
            "a18648c31a5c7ad13443c100ca8c3ffc"
        );
        assert_eq!(sign("", 0), "cfcd208495d565ef66e7dff9f98764da");
    }

    #[test]
    fn a_signed_body_expires_ten_minutes_after_it_is_sent() {
        let fields = common(1, 7, "cam");
        let body: Value =
            serde_json::from_slice(&signed_body(&fields, "adasda131312", 1_545_115_790))
                .expect("json");
        assert_eq!(body["t"], 1_545_116_390);
        assert_eq!(body["sign"], "a18648c31a5c7ad13443c100ca8c3ffc");
        assert_eq!(body["event_type"], 1);
        assert_eq!(body["appid"], 7);
        assert_eq!(body["stream_id"], "cam");
        assert_eq!(body["channel_id"], "cam");
    }

    fn begin() -> StreamEvent {
        StreamEvent {
            domain: "push.example.com".into(),
            app: "live".into(),
            stream: "cam".into(),
            event_time: 1_545_115_790,
            sequence: "17000000000000000042".into(),
            node: "10.0.0.1".into(),
            user_ip: "192.0.2.7".into(),
            stream_param: "txSecret=abc&txTime=5C271099".into(),
            width: 640,
            height: 360,
            end: None,
        }
    }

    #[test]
    fn a_push_begin_carries_the_documented_fields() {
        let got = Value::Object(stream_fields(1_250_000, &begin()));
        assert_eq!(
            got,
            json!({
                "event_type": 1, "appid": 1_250_000, "stream_id": "cam", "channel_id": "cam",
                "app": "push.example.com", "appname": "live", "event_time": 1_545_115_790,
                "sequence": "17000000000000000042", "node": "10.0.0.1", "user_ip": "192.0.2.7",
                "stream_param": "txSecret=abc&txTime=5C271099", "width": 640, "height": 360,
                "errcode": 0, "errmsg": "ok",
            })
        );
    }

    #[test]
    fn a_push_end_adds_its_duration_in_milliseconds_and_the_css_error_code() {
        let ev = StreamEvent {
            end: Some(StreamEnd {
                reason: EndReason::Dropped,
                duration: Duration::from_millis(12_345),
            }),
            ..begin()
        };
        let got = stream_fields(1, &ev);
        assert_eq!(got["event_type"], 0);
        assert_eq!(got["push_duration"], "12345");
        assert_eq!(got["errcode"], 21);
        assert_eq!(got["errmsg"], "dropped by DropLiveStream");
        assert_eq!(got["sequence"], "17000000000000000042");
    }

    #[test]
    fn a_record_file_event_splits_times_into_seconds_and_microseconds() {
        let ev = RecordFileEvent {
            domain: "push.example.com".into(),
            app: "live".into(),
            stream: "cam".into(),
            file_id: "f1".into(),
            record_file_id: "f1".into(),
            task_id: "t9".into(),
            start_us: 1_545_115_790_123_456,
            end_us: 1_545_117_590_000_001,
            duration: 1800,
            file_size: 123_456_789,
            stream_param: Some("a=b".into()),
            video_url: "http://files.example.com/cam.mp4".into(),
            media_start_time: 1234,
            record_bps: 800_000,
            callback_ext: Some(RecordExt {
                video_codec: "h264".into(),
                resolution: "640x360".into(),
                session_id: "s1".into(),
            }),
            ..RecordFileEvent::new(RecordFormat::Mp4)
        };
        let got = Value::Object(record_fields(5, &ev));
        assert_eq!(
            got,
            json!({
                "event_type": 100, "appid": 5, "stream_id": "cam", "channel_id": "cam",
                "app": "push.example.com", "appname": "live", "file_id": "f1",
                "record_file_id": "f1", "file_format": "mp4", "task_id": "t9",
                "start_time": 1_545_115_790, "end_time": 1_545_117_590,
                "start_time_usec": 123_456, "end_time_usec": 1, "duration": 1800,
                "file_size": 123_456_789u64, "stream_param": "a=b",
                "video_url": "http://files.example.com/cam.mp4", "media_start_time": 1234,
                "record_bps": 800_000,
                "callback_ext": r#"{"resolution":"640x360","session_id":"s1","video_codec":"h264"}"#,
            })
        );
    }

    #[test]
    fn a_record_task_event_leaves_out_the_push_parameters() {
        let got = record_fields(5, &RecordFileEvent::new(RecordFormat::Hls));
        assert!(!got.contains_key("stream_param"));
        assert!(!got.contains_key("callback_ext"));
        assert_eq!(got["file_format"], "hls");
    }

    #[test]
    fn a_snapshot_event_carries_the_picture() {
        let ev = SnapshotEvent {
            stream: "cam".into(),
            create_time: 1_545_046_719,
            file_size: 16_812,
            width: 640,
            height: 352,
            pic_url: "/2018-12-17/cam-screenshot-19-06-59-640x352.jpg".into(),
            pic_full_url: "http://b.example.com/2018-12-17/cam-screenshot-19-06-59-640x352.jpg"
                .into(),
        };
        let got = Value::Object(snapshot_fields(9, &ev));
        assert_eq!(
            got,
            json!({
                "event_type": 200, "appid": 9, "stream_id": "cam", "channel_id": "cam",
                "create_time": 1_545_046_719, "file_size": 16_812, "width": 640, "height": 352,
                "pic_url": "/2018-12-17/cam-screenshot-19-06-59-640x352.jpg",
                "pic_full_url": "http://b.example.com/2018-12-17/cam-screenshot-19-06-59-640x352.jpg",
            })
        );
    }

    fn policy_with_callback(urls: BTreeMap<CallbackEvent, String>) -> Policy {
        let account = AccountId(3);
        let mut processing = Processing::default();
        processing.templates.insert(
            TemplateId(1),
            Template {
                id: TemplateId(1),
                account,
                name: "cb".into(),
                description: String::new(),
                created_at: 0,
                updated_at: 0,
                spec: TemplateSpec::Callback(CallbackSpec {
                    key: "k".into(),
                    urls,
                    exception_levels: Vec::new(),
                }),
            },
        );
        processing.rules.push(Rule {
            account,
            kind: Kind::Callback,
            domain: "push.example.com".into(),
            app: String::new(),
            stream: String::new(),
            template: TemplateId(1),
            created_at: 0,
            updated_at: 0,
        });
        processing.app_ids = HashMap::from([(account, 1_250_000)]);
        Policy {
            processing,
            ..Policy::default()
        }
    }

    #[test]
    fn a_target_is_the_bound_template_with_the_accounts_appid() {
        let policy = policy_with_callback(BTreeMap::from([
            (
                CallbackEvent::StreamBegin,
                "http://h.example.com/b".to_owned(),
            ),
            (CallbackEvent::StreamEnd, String::new()),
        ]));
        let at = |account, domain| StreamRef {
            account: AccountId(account),
            domain,
            app: "live",
            stream: "cam",
        };
        let target = CallbackTarget::for_push(&policy, &at(3, "push.example.com")).expect("bound");
        assert_eq!(target.appid, 1_250_000);
        assert_eq!(target.spec.key, "k");
        assert_eq!(
            target.url(CallbackEvent::StreamBegin),
            Some("http://h.example.com/b")
        );
        assert_eq!(target.url(CallbackEvent::StreamEnd), None, "empty URL");
        assert_eq!(target.url(CallbackEvent::Snapshot), None);
        assert!(CallbackTarget::for_push(&policy, &at(3, "other.example.com")).is_none());
        assert!(CallbackTarget::for_push(&policy, &at(4, "push.example.com")).is_none());
    }

    #[test]
    fn sequences_differ_between_sessions_and_are_stable_for_one() {
        let n = Notifier {
            tx: mpsc::channel(1).0,
            slots: Arc::new(Semaphore::new(1)),
            config: CallbackConfig::default(),
            boot: 1_700_000_000,
            metrics: Default::default(),
        };
        assert_eq!(n.sequence(42), "1700000000000000042");
        assert_eq!(n.sequence(42), n.sequence(42));
        assert_ne!(n.sequence(42), n.sequence(43));
    }

    /// A receiver on 127.0.0.1 that answers with `statuses` in turn (200
    /// after they run out) and reports each request's body.
    async fn receiver(statuses: Vec<u16>) -> (String, mpsc::UnboundedReceiver<Value>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/notify?token=x",
            listener.local_addr().expect("addr")
        );
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut statuses = statuses.into_iter();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then Content-Length bytes of body.
                let body = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        assert!(head.contains("content-type: application/json"), "{head}");
                        break Some(buf[end + 4..end + 4 + len].to_vec());
                    }
                };
                let Some(body) = body else { continue };
                let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                let status = statuses.next().unwrap_or(200);
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (url, rx)
    }

    fn quick() -> CallbackConfig {
        CallbackConfig {
            timeout: Duration::from_secs(5),
            retry_interval: Duration::from_millis(50),
            snapshot_retry_interval: Duration::from_millis(50),
            queue: 4,
            // The test receivers listen on loopback.
            fetch: livestack_net::FetchPolicy::allowing(vec!["127.0.0.0/8".parse().expect("cidr")]),
        }
    }

    fn target(url: &str, event: CallbackEvent) -> CallbackTarget {
        CallbackTarget {
            spec: CallbackSpec {
                key: "k".into(),
                urls: BTreeMap::from([(event, url.to_owned())]),
                exception_levels: Vec::new(),
            },
            appid: 1,
            account: AccountId(1),
        }
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<Value>) -> Option<Value> {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn a_refused_notification_is_retried_until_the_receiver_answers_200() {
        let (url, mut rx) = receiver(vec![500, 503]).await;
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let n = Notifier::start(
            quick(),
            Clock::system(),
            &tasks,
            shutdown.clone(),
            Default::default(),
            None,
        );
        n.stream(&target(&url, CallbackEvent::StreamBegin), &begin());
        for _ in 0..3 {
            let body = next(&mut rx).await.expect("an attempt");
            assert_eq!(body["event_type"], 1);
            let t = body["t"].as_i64().expect("t");
            assert_eq!(body["sign"], sign("k", t));
        }
        // Accepted at the third attempt: no fourth.
        assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err());
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }

    #[tokio::test]
    async fn snapshot_notifications_give_up_after_five_retries() {
        let (url, mut rx) = receiver(vec![500; 100]).await;
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let n = Notifier::start(
            quick(),
            Clock::system(),
            &tasks,
            shutdown.clone(),
            Default::default(),
            None,
        );
        n.snapshot(
            &target(&url, CallbackEvent::Snapshot),
            &SnapshotEvent::default(),
        );
        for _ in 0..6 {
            assert_eq!(next(&mut rx).await.expect("an attempt")["event_type"], 200);
        }
        assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err());
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }

    #[tokio::test]
    async fn a_full_queue_drops_notifications_instead_of_waiting() {
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let n = Notifier::start(
            quick(),
            Clock::system(),
            &tasks,
            shutdown.clone(),
            Default::default(),
            None,
        );
        // A receiver that accepts connections and never answers keeps
        // every slot busy.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let t = target(&url, CallbackEvent::StreamBegin);
        for _ in 0..10 {
            n.stream(&t, &begin());
        }
        assert_eq!(n.slots.available_permits(), 0);
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        drop(listener);
    }

    #[tokio::test]
    async fn a_template_without_a_url_for_the_event_sends_nothing() {
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let n = Notifier::start(
            quick(),
            Clock::system(),
            &tasks,
            shutdown.clone(),
            Default::default(),
            None,
        );
        let t = target("http://127.0.0.1:9/", CallbackEvent::StreamBegin);
        n.record_file(&t, &RecordFileEvent::new(RecordFormat::Flv));
        assert_eq!(n.slots.available_permits(), 4);
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }
}
