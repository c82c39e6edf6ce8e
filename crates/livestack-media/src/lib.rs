//! livestack's media plane: RTMP, RTMPS and SRT ingest, RTMP / RTMPS /
//! HTTP-FLV / HLS playback.
//!
//! Owns: the listeners and connection tasks, the registry of live streams
//! and their hubs, push and play authorization against the [`Policy`] the
//! control plane publishes, the measurements `DescribeLiveStream*`
//! report, and the storage of recordings and snapshots ([`storage`]). Must not: touch the database or know Tencent wire names: it
//! reads the policy snapshot, answers [`MediaControl`] calls and emits
//! [`MediaEvent`]s.
//!
//! Every connection task is spawned on the server's `TaskTracker` and
//! watches its `CancellationToken`; [`MediaServer::shutdown`] cancels them
//! all and waits for them.

mod deliver;
mod metrics;
mod process;
mod serve;
mod stream;

pub use deliver::storage;
pub use stream::{hub, output, stats};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use livestack_core::limits::ConnLimiter;
use livestack_core::media::{
    EndReason, MediaControl, MediaEvent, MediaFuture, OnlineStream, Policy, StreamKey, StreamPush,
    StreamPushes, SwitchError,
};
use livestack_core::{AccountId, Clock};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::deliver::notify::CallbackConfig;
use crate::deliver::notify::Notifier;
use crate::stream::live::Live;

/// Settings of the media plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// How long a player's frames are gathered before one vectored write
    /// (SRS's merged-write latency). Longer is cheaper, shorter is lower
    /// latency.
    pub merge_write: Duration,
    /// A publisher that sends nothing for this long is disconnected.
    pub idle_timeout: Duration,
    /// Target HLS segment duration.
    pub hls_segment: Duration,
    /// HLS segments kept in the playlist.
    pub hls_window: usize,
    /// RTMP chunk size for what livestack sends.
    pub chunk_size: u32,
    /// The ffmpeg program processing jobs run.
    pub ffmpeg: String,
    /// Where processing jobs keep files they are still writing, and
    /// recordings until they are delivered (files a crash left here are
    /// delivered at the next start). The binary uses
    /// `<data dir>/processing`.
    pub work_dir: PathBuf,
    /// Caps the file interval of every recording (CSS's shortest is 60 s),
    /// for tests and demonstrations; `None` keeps the templates'.
    pub max_record_interval: Option<Duration>,
    /// Delivery of event callbacks.
    pub callbacks: CallbackConfig,
    /// Where recordings and snapshots are kept.
    pub storage: storage::StorageSettings,
    /// Connections held at once over every listener (0: no limit).
    pub max_connections: usize,
    /// Connections held at once from one client address (0: no limit).
    pub max_connections_per_ip: usize,
    /// How many of the busiest streams get series of their own in the
    /// metrics (`livestack_top_stream_*`); 0 for none.
    pub metrics_top_streams: usize,
    /// How often every live push is sampled for
    /// `DescribeStreamPushInfoList` (a minute, as CSS does).
    pub push_sample_interval: Duration,
    /// Bytes of partially received RTMP messages held at once over every
    /// connection (each connection's own cap is 32 MiB once authorized,
    /// 256 KiB before).
    pub max_rtmp_buffered: usize,
    /// Push domains (lower-case) whose streams take a backup push (主备流):
    /// a second push of a live stream is kept as its backup instead of
    /// replacing it, when both reach this node (the stream's claim stays
    /// with the one feeding players).
    pub backup_domains: Vec<String>,
    /// Play domains (lower-case) whose HLS playlists are low-latency
    /// (LL-HLS: fMP4 parts, blocking reload); any play domain serves it
    /// to a request with `ll=1`.
    pub ll_hls_domains: Vec<String>,
    /// Where time-shift segments are kept. The binary uses
    /// `<data dir>/timeshift`.
    pub timeshift_dir: PathBuf,
    /// The most bytes of time-shift segments kept (0: no bound); the
    /// oldest go first.
    pub timeshift_max_bytes: u64,
    /// How often the play statistics of the current minute are reported
    /// (at most a minute; they are also reported at each minute's end),
    /// and the access log lines written.
    pub play_stats_flush: Duration,
    /// Where the hourly access logs are kept (`<dir>/<play
    /// domain>/<YYYYMMDDHH>.log`, Beijing hours), served signed at
    /// `/logs/` by the HTTP listener. The binary uses `<data dir>/logs`.
    pub access_log_dir: PathBuf,
    /// FLV, MP4, HLS and AAC recordings are written in-process from the
    /// hub; `false` runs an ffmpeg process per recording instead (as
    /// livestack did before; kept to compare them). MP3 always re-encodes
    /// with ffmpeg.
    pub record_in_process: bool,
    /// The transcoded outputs of one source that are played at once run
    /// as one ffmpeg with one decode and an encode per output (`split`);
    /// `false` runs a process per output (kept to compare them).
    pub shared_decode: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            merge_write: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(20),
            hls_segment: Duration::from_secs(2),
            hls_window: 6,
            chunk_size: 60_000,
            ffmpeg: "ffmpeg".to_owned(),
            work_dir: std::env::temp_dir().join("livestack-processing"),
            max_record_interval: None,
            callbacks: CallbackConfig::default(),
            storage: storage::StorageSettings::default(),
            max_connections: 16_384,
            max_connections_per_ip: 4_096,
            max_rtmp_buffered: 512 << 20,
            push_sample_interval: Duration::from_secs(60),
            metrics_top_streams: 10,
            backup_domains: Vec::new(),
            ll_hls_domains: Vec::new(),
            timeshift_dir: std::env::temp_dir().join("livestack-timeshift"),
            timeshift_max_bytes: 10 << 30,
            play_stats_flush: Duration::from_secs(60),
            access_log_dir: std::env::temp_dir().join("livestack-logs"),
            record_in_process: true,
            shared_decode: true,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: MediaConfig,
    pub(crate) policy: watch::Receiver<Arc<Policy>>,
    events: mpsc::Sender<MediaEvent>,
    pub(crate) streams: stream::registry::Registry,
    next_session: AtomicU64,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) processor: process::Processor,
    /// Event callbacks (push begin/end, record files, snapshots).
    pub(crate) notifier: Notifier,
    pub(crate) storage: storage::Storage,
    /// Wall and monotonic time for every decision the plane makes.
    pub(crate) clock: Clock,
    /// The connection budget, shared with the API listener.
    pub(crate) connections: Arc<ConnLimiter>,
    /// What every RTMP connection's partial messages draw from.
    pub(crate) rtmp_buffered: Arc<livestack_rtmp::chunk::SharedBudget>,
    /// Prometheus metrics the paths update.
    pub(crate) metrics: metrics::MediaMetrics,
    /// The cluster this node is part of (PostgreSQL); unset on one node.
    pub(crate) cluster: std::sync::OnceLock<livestack_core::media::ClusterLink>,
    /// The edge relays of this node.
    pub(crate) relays: serve::relay::Relays,
    /// WebRTC playback, once a UDP socket is served.
    pub(crate) webrtc: std::sync::OnceLock<serve::webrtc::Webrtc>,
    /// Time-shift segments kept on disk.
    pub(crate) timeshift: Arc<stream::timeshift::TimeShift>,
    /// Play statistics not yet reported.
    pub(crate) plays: stream::plays::Plays,
    /// The hourly access log files.
    pub(crate) access_logs: deliver::access_log::AccessLogs,
}

impl Inner {
    /// The current policy snapshot.
    pub(crate) fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.borrow())
    }

    /// Reports an event; never waits (a full channel drops the event and
    /// says so in the log rather than stalling a stream).
    pub(crate) fn emit(&self, event: MediaEvent) {
        if let Err(e) = self.events.try_send(event) {
            tracing::warn!("media event dropped: {e}");
        }
    }

    /// A push session number, unique across this node's restarts and
    /// across the nodes sharing one database (each process counts from a
    /// random base; see [`process_id_base`]).
    pub(crate) fn next_session(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn live(&self, key: &StreamKey) -> Option<Arc<Live>> {
        self.streams.get(key)
    }

    /// A player of `key` over `protocol` on the play domain `domain`, from
    /// `ip`, attached until the guard drops: counted in the metrics and,
    /// unless it is another node's relay, in the play statistics.
    pub(crate) fn player(
        &self,
        protocol: metrics::Protocol,
        domain: &str,
        key: &StreamKey,
        ip: std::net::IpAddr,
    ) -> metrics::PlayerGuard {
        use livestack_core::media::PlayProtocol;
        let mut guard = self.metrics.player(protocol, domain);
        let counted = match protocol {
            metrics::Protocol::rtmp => Some(PlayProtocol::Rtmp),
            metrics::Protocol::flv => Some(PlayProtocol::Flv),
            metrics::Protocol::hls => Some(PlayProtocol::Hls),
            metrics::Protocol::webrtc => Some(PlayProtocol::Webrtc),
            metrics::Protocol::relay => None,
        };
        if let Some(p) = counted {
            let play = stream::plays::PlayKey::new(key, domain, p);
            guard.tally = Some(self.plays.start(play, ip, self.clock.unix_ms()));
        }
        guard
    }

    /// An HLS request for `key` on `domain` from `ip`, answered with
    /// `status` and `bytes` of body: in the metrics and the statistics.
    pub(crate) fn hls_request(
        &self,
        domain: &str,
        key: &StreamKey,
        ip: std::net::IpAddr,
        status: u16,
        bytes: usize,
    ) {
        if status < 400 {
            self.metrics.hls_request(domain, bytes);
        }
        let play =
            stream::plays::PlayKey::new(key, domain, livestack_core::media::PlayProtocol::Hls);
        self.plays
            .hls(play, ip, status, bytes as u64, self.clock.unix_ms());
    }
}

/// Accepts connections on `listener` until shutdown, running `handle` for
/// each on the server's task tracker. Accept errors (out of descriptors,
/// say) pause the loop briefly instead of spinning.
pub(crate) async fn accept_loop<F, Fut>(
    inner: Arc<Inner>,
    listener: TcpListener,
    what: &'static str,
    handle: F,
) where
    F: Fn(Arc<Inner>, tokio::net::TcpStream, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut warnings = livestack_core::limits::AcceptWarnings::default();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = inner.shutdown.cancelled() => return,
        };
        match accepted {
            Ok((socket, peer)) => {
                // Over the connection budget: closed before anything is read.
                let Some(permit) = inner.connections.try_acquire(peer.ip()) else {
                    if let Some(more) = warnings.refused() {
                        tracing::warn!(listener = what, %peer, more, "connection refused: the connection limits are reached");
                    }
                    continue;
                };
                // Media is latency-sensitive and written in batches already.
                let _ = socket.set_nodelay(true);
                let conn = handle(Arc::clone(&inner), socket, peer);
                inner.tasks.spawn(async move {
                    let _permit = permit;
                    conn.await;
                });
            }
            Err(e) => {
                if let Some(more) = warnings.failed() {
                    tracing::warn!(listener = what, more, "accept failed: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The media plane. Cheap to clone.
#[derive(Clone)]
pub struct MediaServer {
    inner: Arc<Inner>,
}

/// Where this process's session and recording-span numbers start: a
/// random multiple of 2^24 below 2^62. Numbers go to a shared history
/// (SQLite, or one PostgreSQL for several nodes), where two processes
/// counting from the same start would close each other's sessions; with
/// 2^38 possible starts and 16 million numbers each, they do not meet.
/// (Below 2^62: every number fits the database's signed 64-bit columns.)
pub(crate) fn process_id_base() -> u64 {
    (rand::random::<u64>() >> 26) << 24
}

impl MediaServer {
    /// A media plane enforcing `policy` and reporting on `events`; it stops
    /// when `shutdown` is cancelled. Must be called inside a Tokio runtime
    /// (it starts the callback dispatcher).
    pub fn new(
        config: MediaConfig,
        policy: watch::Receiver<Arc<Policy>>,
        events: mpsc::Sender<MediaEvent>,
        clock: Clock,
        shutdown: CancellationToken,
    ) -> MediaServer {
        let tasks = TaskTracker::new();
        let metrics = metrics::MediaMetrics::default();
        let notifier = Notifier::start(
            config.callbacks.clone(),
            clock.clone(),
            &tasks,
            shutdown.clone(),
            metrics.clone(),
            Some(events.clone()),
        );
        let storage = storage::Storage::with_clock(config.storage.clone(), clock.clone());
        let connections = ConnLimiter::new(config.max_connections, config.max_connections_per_ip);
        let rtmp_buffered = livestack_rtmp::chunk::SharedBudget::new(config.max_rtmp_buffered);
        let timeshift = Arc::new(stream::timeshift::TimeShift::open(
            config.timeshift_dir.clone(),
            config.timeshift_max_bytes,
        ));
        let access_logs = deliver::access_log::AccessLogs::new(
            config.access_log_dir.clone(),
            &config.storage.local_url,
            clock.clone(),
        );
        let server = MediaServer {
            inner: Arc::new(Inner {
                config,
                storage,
                policy,
                events,
                streams: stream::registry::Registry::default(),
                next_session: AtomicU64::new(process_id_base()),
                shutdown,
                processor: process::Processor::new(clock.clone()),
                clock,
                connections,
                rtmp_buffered,
                tasks,
                notifier,
                metrics,
                cluster: std::sync::OnceLock::new(),
                relays: serve::relay::Relays::default(),
                webrtc: std::sync::OnceLock::new(),
                timeshift,
                plays: stream::plays::Plays::default(),
                access_logs,
            }),
        };
        let inner = Arc::clone(&server.inner);
        server.inner.tasks.spawn(process::Processor::run(inner));
        // The fetch proxy relay jobs' ffmpeg opens URLs through: without
        // it they do not run (they would fetch unchecked).
        match std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(TcpListener::from_std)
        {
            Ok(listener) => {
                if let Ok(addr) = listener.local_addr() {
                    let _ = server.inner.processor.fetch_proxy.set(addr);
                }
                let policy = Arc::new(server.inner.config.callbacks.fetch.clone());
                let stop = server.inner.shutdown.clone();
                server.inner.tasks.spawn(livestack_net::proxy::serve(
                    listener,
                    policy,
                    async move { stop.cancelled().await },
                ));
            }
            Err(e) => tracing::error!("relay tasks disabled: cannot open the fetch proxy: {e}"),
        }
        let inner = Arc::clone(&server.inner);
        server.inner.tasks.spawn(sample_pushes(inner));
        let inner = Arc::clone(&server.inner);
        server.inner.tasks.spawn(prune_timeshift(inner));
        let inner = Arc::clone(&server.inner);
        server.inner.tasks.spawn(report_plays(inner));
        server
    }

    /// Registers the media plane's metrics in `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.inner
            .metrics
            .register(registry, Arc::downgrade(&self.inner));
    }

    /// Accepts RTMP connections on `listener` until shutdown.
    pub fn serve_rtmp(&self, listener: TcpListener) {
        if let Ok(addr) = listener.local_addr() {
            // Processing jobs reach the RTMP port on loopback.
            let port = addr.port();
            let _ = self
                .inner
                .processor
                .rtmp_addr
                .set(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        let inner = Arc::clone(&self.inner);
        self.inner
            .tasks
            .spawn(serve::rtmp::accept_loop(inner, listener));
    }

    /// Accepts RTMPS (RTMP over TLS) connections on `listener` until
    /// shutdown, serving the certificate bound to the domain the client
    /// names by SNI.
    pub fn serve_rtmps(&self, listener: TcpListener) -> Result<(), rustls::Error> {
        let config = serve::tls::server_config(Arc::clone(&self.inner), &[])?;
        let inner = Arc::clone(&self.inner);
        self.inner
            .tasks
            .spawn(serve::rtmp::accept_tls_loop(inner, listener, config));
        Ok(())
    }

    /// Serves WebRTC players (WHEP and LEB, signalled over the HTTP and
    /// HTTPS listeners) and WHIP publishers on `socket`, and over ICE-TCP on
    /// `tcp` (which must have the socket's port number) when given,
    /// advertising `advertise` as the host candidates' address (default:
    /// the socket's own, or 127.0.0.1 for a wildcard bind).
    pub fn serve_webrtc(
        &self,
        socket: tokio::net::UdpSocket,
        tcp: Option<TcpListener>,
        advertise: Option<std::net::IpAddr>,
    ) -> std::io::Result<()> {
        serve::webrtc::Webrtc::start(&self.inner, socket, tcp, advertise)
    }

    /// Accepts SRT callers on `socket` (UDP) until shutdown: pushes of
    /// MPEG-TS, routed by their `streamid`.
    pub fn serve_srt(&self, socket: tokio::net::UdpSocket) {
        let inner = Arc::clone(&self.inner);
        self.inner.tasks.spawn(serve::srt::serve(inner, socket));
    }

    /// Accepts HTTP playback connections (HTTP-FLV, HLS) on `listener`
    /// until shutdown.
    pub fn serve_http(&self, listener: TcpListener) {
        let inner = Arc::clone(&self.inner);
        self.inner
            .tasks
            .spawn(serve::http::accept_loop(inner, listener));
    }

    /// Accepts HTTPS playback connections on `listener` until shutdown,
    /// serving each play domain's bound certificate by SNI.
    pub fn serve_https(&self, listener: TcpListener) -> Result<(), rustls::Error> {
        let config = serve::tls::server_config(Arc::clone(&self.inner), &[b"http/1.1"])?;
        let inner = Arc::clone(&self.inner);
        self.inner
            .tasks
            .spawn(serve::http::accept_tls_loop(inner, listener, config));
        Ok(())
    }

    /// Makes this node part of a cluster: players here may play streams
    /// pushed to other nodes (pulled from their owner by an edge relay),
    /// and the other nodes may pull this node's streams. Set once, before
    /// serving; a second call changes nothing.
    pub fn join_cluster(&self, link: livestack_core::media::ClusterLink) {
        let _ = self.inner.cluster.set(link);
    }

    /// Fencing: ends every push of this node whose stream another node
    /// claimed meanwhile (called when this node's lease had run out: it
    /// was paused or cut off, and a push of its streams elsewhere may have
    /// taken them over while the order to end its own got lost). Its jobs
    /// stop with it. Returns how many pushes were ended.
    pub async fn recheck_claims(&self) -> usize {
        let Some(link) = self.inner.cluster.get() else {
            return 0;
        };
        let mut ended = 0;
        for live in self.inner.streams.all() {
            let Some(epoch) = live.publisher.epoch else {
                continue;
            };
            let key = &live.publisher.key;
            match link.ownership.holds(key, epoch).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(app = %key.app, stream = %key.stream, "push ended: another node claimed the stream while this one's lease had run out");
                    live.stop(EndReason::Replaced);
                    ended += 1;
                }
                Err(e) => {
                    tracing::warn!(app = %key.app, stream = %key.stream, "cannot check the stream's claim: {e}");
                }
            }
        }
        ended
    }

    /// The connection budget every listener shares (the API's included).
    pub fn connections(&self) -> Arc<ConnLimiter> {
        Arc::clone(&self.inner.connections)
    }

    /// Where recordings and snapshots are kept.
    pub fn storage(&self) -> &storage::Storage {
        &self.inner.storage
    }

    /// Cancels every connection and waits until all tasks have ended.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

impl MediaControl for MediaServer {
    fn online(&self, account: AccountId) -> Vec<OnlineStream> {
        self.inner
            .streams
            .all()
            .iter()
            .filter(|l| l.publisher.key.account == account && !l.publisher.internal)
            .map(|l| l.snapshot())
            .collect()
    }

    fn pushes(&self, account: AccountId) -> Vec<StreamPushes> {
        let push = |l: &Live, primary: bool| StreamPush {
            key: l.publisher.key.clone(),
            domain: l.publisher.domain.clone(),
            started: l.publisher.started,
            sequence: self.inner.notifier.sequence(l.publisher.session),
            primary,
            relay_task: l.publisher.relay_task,
        };
        self.inner
            .streams
            .all()
            .iter()
            .filter(|l| {
                l.publisher.key.account == account && !l.publisher.internal && !l.publisher.relay
            })
            .map(|l| {
                let (_, backup) = self.inner.streams.pushes(&l.publisher.key);
                let mut pushes = vec![push(l, true)];
                pushes.extend(backup.map(|b| push(&b, false)));
                StreamPushes {
                    pushes,
                    optimal: l.switch.optimal(),
                }
            })
            .collect()
    }

    fn switch_push(
        &self,
        key: &StreamKey,
        domain: &str,
        sequence: &str,
    ) -> Result<(), SwitchError> {
        let (current, backup) = self.inner.streams.pushes(key);
        let of_domain = |l: &Arc<Live>| {
            l.publisher.domain.eq_ignore_ascii_case(domain) && !l.publisher.internal
        };
        let current = current.filter(of_domain).ok_or(SwitchError::NotLive)?;
        let target = [Some(current), backup]
            .into_iter()
            .flatten()
            .find(|l| self.inner.notifier.sequence(l.publisher.session) == sequence)
            .ok_or(SwitchError::NoSuchPush)?;
        self.inner
            .streams
            .switch_to(key, target.publisher.session)
            .map_err(|e| match e {
                stream::registry::SwitchRefusal::NotLive => SwitchError::NotLive,
                stream::registry::SwitchRefusal::NoSuchPush => SwitchError::NoSuchPush,
            })?;
        serve::ingest::claim_for(&self.inner, key, target.publisher.session);
        Ok(())
    }

    fn set_optimal_switching(&self, account: AccountId, stream: &str, on: bool) -> bool {
        let mut found = false;
        for l in self.inner.streams.all() {
            let p = &l.publisher;
            if p.key.account == account && p.key.stream == stream && !p.internal && !p.relay {
                l.switch.set_optimal(on);
                found = true;
            }
        }
        found
    }

    fn drop_stream(&self, key: &StreamKey, reason: EndReason) -> bool {
        // An edge relay is not a push: the owner's push is what ends, and
        // a backup of it with it.
        let (current, backup) = self.inner.streams.pushes(key);
        match current.filter(|l| !l.publisher.relay) {
            Some(live) => {
                if let Some(b) = backup {
                    b.stop(reason);
                }
                live.stop(reason);
                true
            }
            None => false,
        }
    }

    fn check_bucket(
        &self,
        app_id: i64,
        bucket: &str,
        region: &str,
    ) -> MediaFuture<Result<(), String>> {
        let storage = self.inner.storage.clone();
        let (bucket, region) = (bucket.to_owned(), region.to_owned());
        // Runs on the asking request's task, bounded by the probe's
        // timeout: nothing is left behind when the request goes away.
        Box::pin(async move {
            storage.probe(&bucket, &region, app_id).await.map_err(|e| {
                tracing::warn!(
                    bucket,
                    region,
                    "object storage check failed: {}",
                    storage::error_chain(&e)
                );
                e.to_string()
            })
        })
    }

    fn bucket_permitted(&self, app_id: i64, bucket: &str) -> bool {
        self.inner.storage.permits(app_id, bucket)
    }

    fn timeshift_sessions(
        &self,
        account: AccountId,
        from: i64,
        to: i64,
    ) -> Vec<livestack_core::media::TimeShiftSession> {
        self.inner.timeshift.sessions(account, from, to)
    }

    fn access_logs(
        &self,
        domains: Vec<String>,
        leb: bool,
        from: i64,
        to: i64,
    ) -> MediaFuture<Vec<livestack_core::media::AccessLogFile>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { inner.access_logs.list(&domains, leb, from, to).await })
    }
}

/// Reports the play statistics every [`MediaConfig::play_stats_flush`]
/// and at the end of every minute, until shutdown (when it reports what
/// is left).
async fn report_plays(inner: Arc<Inner>) {
    let every = inner
        .config
        .play_stats_flush
        .clamp(Duration::from_millis(100), Duration::from_secs(60));
    loop {
        let now_ms = inner.clock.unix_ms();
        let to_minute = Duration::from_millis((60_000 - now_ms.rem_euclid(60_000)) as u64);
        // Just past the minute's end, so the flush counts the old minute.
        let wait = every.min(to_minute + Duration::from_millis(5));
        let stop = tokio::select! {
            () = tokio::time::sleep(wait) => false,
            () = inner.shutdown.cancelled() => true,
        };
        // Reported under the minute it was counted in: a flush just after
        // a minute's end closes that minute.
        if let Some(report) = inner.plays.flush(inner.clock.unix_ms().div_euclid(1000)) {
            inner.emit(MediaEvent::PlayStats(Box::new(report)));
        }
        let (lines, dropped) = inner.plays.take_lines();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "access log lines dropped: more came than could be held"
            );
        }
        inner.access_logs.write(lines).await;
        if stop {
            return;
        }
    }
}

/// How often kept time-shift segments past their template's duration are
/// deleted.
const TIMESHIFT_PRUNE_EVERY: Duration = Duration::from_secs(10);

/// Deletes time-shift segments past keeping (and over the disk bound) at
/// start and every [`TIMESHIFT_PRUNE_EVERY`] until shutdown.
async fn prune_timeshift(inner: Arc<Inner>) {
    loop {
        let removed = inner.timeshift.prune(inner.clock.unix_ms()).await;
        if removed > 0 {
            tracing::debug!(removed, "time-shift segments past keeping deleted");
        }
        tokio::select! {
            () = tokio::time::sleep(TIMESHIFT_PRUNE_EVERY) => {}
            () = inner.shutdown.cancelled() => return,
        }
    }
}

/// Samples every live push once per [`MediaConfig::push_sample_interval`]
/// until shutdown, reporting each as a [`MediaEvent::PushSampled`].
async fn sample_pushes(inner: Arc<Inner>) {
    use std::sync::atomic::Ordering::Relaxed;
    let every = inner
        .config
        .push_sample_interval
        .max(Duration::from_millis(100));
    // Bytes and time of each push at its previous sample, by session.
    let mut last: std::collections::HashMap<u64, (u64, i64)> = std::collections::HashMap::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = inner.shutdown.cancelled() => return,
        }
        let at_ms = inner.clock.unix_ms();
        let lives = inner.streams.all();
        let mut seen = std::collections::HashMap::new();
        for live in lives.iter().filter(|l| !l.publisher.internal) {
            let p = &live.publisher;
            let g = &live.progress;
            let bytes = g.bytes.load(Relaxed);
            let started_ms = p.started.saturating_mul(1000);
            let (before, since) = last.get(&p.session).copied().unwrap_or((0, started_ms));
            seen.insert(p.session, (bytes, at_ms));
            inner.emit(MediaEvent::PushSampled(Box::new(
                livestack_core::media::PushSample {
                    stream: live.snapshot(),
                    started_ms,
                    at_ms,
                    sequence: inner.notifier.sequence(p.session),
                    video_ts: g.video_ts.load(Relaxed),
                    audio_ts: g.audio_ts.load(Relaxed),
                    meta_video_kbps: g.meta_video_kbps.load(Relaxed),
                    meta_audio_kbps: g.meta_audio_kbps.load(Relaxed),
                    meta_fps: g.meta_fps.load(Relaxed),
                    gop_ms: g.gop_ms.load(Relaxed),
                    bytes: bytes.saturating_sub(before),
                    interval_ms: (at_ms - since).max(1),
                },
            )));
        }
        last = seen;
    }
}
