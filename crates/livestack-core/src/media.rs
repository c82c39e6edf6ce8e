//! What the control plane and the media plane say to each other.
//!
//! The control plane publishes an immutable [`Policy`] (domains, keys,
//! forbidden streams) that the media plane reads on its hot path without
//! locks or database calls; it asks the media plane questions and gives it
//! orders through [`MediaControl`]; the media plane reports what happened
//! as [`MediaEvent`]s. Nothing here does I/O.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::rules::Processing;
use crate::{AccountId, DomainKind};

/// A stream as CSS names it: streams belong to an account and are named by
/// AppName and StreamName; any push domain of the account can publish them
/// and any play domain of the account can play them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// The owning account.
    pub account: AccountId,
    /// AppName (`live` by default).
    pub app: String,
    /// StreamName.
    pub stream: String,
}

/// URL signing settings of one domain.
#[derive(Clone, PartialEq, Eq)]
pub struct UrlAuth {
    /// Accepted keys (master/backup); empty ones are left out.
    pub keys: Vec<String>,
    /// Seconds a URL stays valid past its `txTime`.
    pub delta: i64,
}

impl std::fmt::Debug for UrlAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secrets.
        f.debug_struct("UrlAuth")
            .field("delta", &self.delta)
            .finish_non_exhaustive()
    }
}

/// Referer rules of a play domain (HTTP playback only, as CSS applies them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RefererPolicy {
    /// Whether the rules apply.
    pub enabled: bool,
    /// `true`: only listed referers pass; `false`: listed referers are refused.
    pub allow_list: bool,
    /// Whether a request without a Referer passes.
    pub allow_empty: bool,
    /// Host patterns: `example.com` or `*.example.com`.
    pub rules: Vec<String>,
}

impl RefererPolicy {
    /// Whether a request with this `Referer` header value may play.
    pub fn allows(&self, referer: Option<&str>) -> bool {
        if !self.enabled {
            return true;
        }
        let Some(referer) = referer.filter(|r| !r.is_empty()) else {
            return self.allow_empty;
        };
        let host = referer_host(referer);
        let listed = self.rules.iter().any(|rule| match rule.strip_prefix("*.") {
            Some(base) => {
                host.len() > base.len()
                    && host.ends_with(base)
                    && host[..host.len() - base.len()].ends_with('.')
            }
            None => host == *rule,
        });
        listed == self.allow_list
    }
}

/// The host of a Referer URL, lower-cased, without port or credentials.
fn referer_host(referer: &str) -> String {
    let rest = referer.split_once("://").map_or(referer, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next().unwrap_or("");
    host.to_ascii_lowercase()
}

/// The certificate a play domain serves HTTPS with.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    /// The PEM chain, leaf first.
    pub chain_pem: String,
    /// The PEM private key (a secret).
    pub key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret.
        f.debug_struct("TlsMaterial")
            .field("chain_len", &self.chain_pem.len())
            .finish_non_exhaustive()
    }
}

/// What the media plane needs to know about one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPolicy {
    /// The owner.
    pub account: AccountId,
    /// Push or play.
    pub kind: DomainKind,
    /// `false` after ForbidLiveDomain.
    pub enabled: bool,
    /// URL signing, when enabled.
    pub auth: Option<UrlAuth>,
    /// Referer rules (play domains).
    pub referer: RefererPolicy,
    /// The bound certificate of a play domain with HTTPS on.
    pub tls: Option<std::sync::Arc<TlsMaterial>>,
}

/// An immutable snapshot of the configuration the media plane enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Domains by lower-case name.
    pub domains: HashMap<String, DomainPolicy>,
    /// Forbidden streams and the Unix time they may push again.
    pub forbidden: HashMap<StreamKey, i64>,
    /// Streams played with a delay (`AddDelayLiveStream`): seconds, and
    /// the Unix time the delay ends.
    pub delays: HashMap<StreamKey, (u32, i64)>,
    /// Processing templates and the rules that bind them to streams;
    /// resolve a stream with [`Processing::for_push`] and
    /// [`Processing::transcode_request`].
    pub processing: Processing,
}

impl Policy {
    /// The domain called `name` (any case).
    pub fn domain(&self, name: &str) -> Option<&DomainPolicy> {
        self.domains.get(&name.to_ascii_lowercase())
    }

    /// The playback delay of `key` at Unix time `now`, in seconds (0: none).
    pub fn delay(&self, key: &StreamKey, now: i64) -> u32 {
        match self.delays.get(key) {
            Some((secs, until)) if now < *until => *secs,
            _ => 0,
        }
    }

    /// Whether `key` is forbidden to push at Unix time `now`.
    pub fn is_forbidden(&self, key: &StreamKey, now: i64) -> bool {
        self.forbidden.get(key).is_some_and(|until| now < *until)
    }
}

/// Why a push ended or was refused, with the CSS error codes that stream
/// callbacks and event lists report (<https://www.tencentcloud.com/zh/document/product/267/31083>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The publisher closed the connection (1/0..4/0: client closed).
    ClientClosed,
    /// The push domain is not configured (18/301).
    UnknownDomain,
    /// The push domain is disabled (18/303).
    DomainDisabled,
    /// The stream is forbidden (18/305).
    StreamForbidden,
    /// Illegal characters in the stream name (18/308) or app name (18/309).
    BadName,
    /// `txTime` missing (18/500).
    NoTxTime,
    /// `txTime` expired (18/501).
    Expired,
    /// No auth parameters (18/502).
    NoAuthParams,
    /// Signature check failed (18/503).
    BadSignature,
    /// Dropped by `DropLiveStream` (21/100).
    Dropped,
    /// Forbidden by `ForbidLiveStream` while live (21/101).
    ForbiddenWhileLive,
    /// Replaced by a newer push of the same stream (21/102).
    Replaced,
    /// No data for too long (20/0).
    Idle,
    /// The connection broke or sent malformed data.
    ProtocolError,
    /// The server is shutting down.
    Shutdown,
    /// The shared database cannot be reached, so the push cannot claim
    /// its stream (several nodes): refused rather than risk two owners
    /// (3/0, a server-side end).
    StoreUnavailable,
}

impl EndReason {
    /// The CSS (`errcode`, `sub`) pair.
    pub fn code(self) -> (u32, u32) {
        match self {
            EndReason::ClientClosed => (1, 0),
            EndReason::UnknownDomain => (18, 301),
            EndReason::DomainDisabled => (18, 303),
            EndReason::StreamForbidden => (18, 305),
            EndReason::BadName => (18, 308),
            EndReason::NoTxTime => (18, 500),
            EndReason::Expired => (18, 501),
            EndReason::NoAuthParams => (18, 502),
            EndReason::BadSignature => (18, 503),
            EndReason::Dropped => (21, 100),
            EndReason::ForbiddenWhileLive => (21, 101),
            EndReason::Replaced => (21, 102),
            EndReason::Idle => (20, 0),
            EndReason::ProtocolError => (4, 0),
            EndReason::Shutdown | EndReason::StoreUnavailable => (3, 0),
        }
    }

    /// A short English description for logs and event lists.
    pub fn describe(self) -> &'static str {
        match self {
            EndReason::ClientClosed => "publisher closed the connection",
            EndReason::UnknownDomain => "push domain not configured",
            EndReason::DomainDisabled => "push domain disabled",
            EndReason::StreamForbidden => "stream forbidden",
            EndReason::BadName => "illegal characters in the app or stream name",
            EndReason::NoTxTime => "txTime missing",
            EndReason::Expired => "txTime expired",
            EndReason::NoAuthParams => "txSecret and txTime missing",
            EndReason::BadSignature => "txSecret does not match",
            EndReason::Dropped => "dropped by DropLiveStream",
            EndReason::ForbiddenWhileLive => "forbidden by ForbidLiveStream",
            EndReason::Replaced => "replaced by a newer push of the same stream",
            EndReason::Idle => "no data received for too long",
            EndReason::ProtocolError => "connection error",
            EndReason::Shutdown => "server shutting down",
            EndReason::StoreUnavailable => "the database cannot be reached",
        }
    }
}

/// Something that happened in the media plane.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// A push was accepted and is live.
    PublishStarted {
        /// The stream.
        key: StreamKey,
        /// The push domain used.
        domain: String,
        /// The publisher's address.
        client: SocketAddr,
        /// The push URL's query string (`stream_param` in callbacks).
        params: String,
        /// Unix time.
        at: i64,
        /// Pairs the start with its end.
        session: u64,
    },
    /// A live push ended.
    PublishStopped {
        /// The stream.
        key: StreamKey,
        /// The push domain used.
        domain: String,
        /// The publisher's address.
        client: SocketAddr,
        /// Why.
        reason: EndReason,
        /// Unix time.
        at: i64,
        /// When it started (Unix time).
        started: i64,
        /// Pairs the end with its start.
        session: u64,
        /// Picture size seen, (0, 0) without video.
        resolution: (u32, u32),
    },
    /// An event callback was sent and answered (or not): one per attempt,
    /// for `DescribeCallbackRecordsList`.
    CallbackAttempted {
        /// The stream's account.
        account: AccountId,
        /// StreamName.
        stream: String,
        /// The callback's `event_type` (0, 1, 100, 200).
        event_type: i64,
        /// The body sent.
        request: String,
        /// The receiver's answer body (cut short), or why there was none.
        response: String,
        /// 0 when the receiver answered 200; its HTTP status otherwise;
        /// 504 when it did not answer in time, 502 when it could not be
        /// reached.
        result_code: i64,
        /// Unix milliseconds the request was sent.
        sent_ms: i64,
        /// Unix milliseconds the answer came (or the attempt gave up).
        answered_ms: i64,
    },
    /// A snapshot was stored (for `DescribeScreenShotSheetNumList`).
    SnapshotStored {
        /// The stream's account.
        account: AccountId,
        /// The push domain.
        domain: String,
        /// Unix milliseconds.
        at_ms: i64,
    },
    /// A stream began to be recorded in one format (one span per record
    /// job, for `DescribeConcurrentRecordStreamNum`).
    RecordingStarted {
        /// The stream.
        key: StreamKey,
        /// The push domain.
        domain: String,
        /// Recorded as slow live (`IsDelayLive`).
        slow_live: bool,
        /// Pairs the start with its stop; unique across restarts.
        span: u64,
        /// Unix milliseconds.
        at_ms: i64,
    },
    /// A relay task's job says how it is doing: when it starts pushing,
    /// when an attempt fails, when it moves to another source file, and
    /// when it stops.
    PullTaskReported {
        /// The task's row id.
        task: i64,
        /// What it pulls.
        kind: crate::pull::PullSourceKind,
        /// Whether it is pushing now.
        active: bool,
        /// The URL being pulled.
        file_url: String,
        /// Its position in the source list (0-based).
        file_index: i64,
        /// Loops of the file list done.
        looped: i64,
        /// Seconds into the current source.
        offset_secs: i64,
        /// Why the last attempt failed; empty when none did.
        last_error: String,
        /// Unix seconds.
        at: i64,
    },
    /// A relay task played the files of an insert
    /// (`InsertTaskTemporaryFiles`), which are not played again.
    PullInsertPlayed {
        /// The insert's row id.
        insert: i64,
        /// Unix seconds.
        at: i64,
    },
    /// That recording stopped.
    RecordingStopped {
        /// As started.
        span: u64,
        /// Unix milliseconds.
        at_ms: i64,
    },
    /// A live push measured once a sampling interval (a minute by
    /// default), for `DescribeStreamPushInfoList`.
    PushSampled(Box<PushSample>),
    /// A transcoding job (transcode, watermark, WebRTC baseline) started:
    /// one span per job, for the transcoding statistics.
    TranscodeStarted {
        /// Pairs the start with its stop; unique across restarts.
        span: u64,
        /// What it makes.
        job: Box<TranscodeJob>,
        /// Unix milliseconds.
        at_ms: i64,
    },
    /// A transcoding job stopped.
    TranscodeStopped {
        /// The span it started.
        span: u64,
        /// Unix milliseconds.
        at_ms: i64,
    },
    /// What players did since the last report (sent every
    /// `play_stats_flush` and at each minute's end).
    PlayStats(Box<PlayStats>),
    /// A push was refused before it went live.
    PublishRefused {
        /// The domain the push named (may be unknown).
        domain: String,
        /// AppName.
        app: String,
        /// StreamName.
        stream: String,
        /// The publisher's address.
        client: SocketAddr,
        /// Why.
        reason: EndReason,
        /// Unix time.
        at: i64,
    },
}

/// One sample of a live push's quality.
#[derive(Debug, Clone, PartialEq)]
pub struct PushSample {
    /// The push as measured now (codecs, size, rates, addresses; its
    /// `started` is Unix seconds).
    pub stream: OnlineStream,
    /// When the push started (Unix ms).
    pub started_ms: i64,
    /// When this sample was taken (Unix ms).
    pub at_ms: i64,
    /// The push session's `sequence` (as its callbacks carry it).
    pub sequence: String,
    /// The latest video and audio timestamps (ms).
    pub video_ts: u32,
    pub audio_ts: u32,
    /// What the publisher's `onMetaData` claims (kbps, frames/s).
    pub meta_video_kbps: u32,
    pub meta_audio_kbps: u32,
    pub meta_fps: u32,
    /// The distance between the last two keyframes (ms).
    pub gop_ms: u32,
    /// Bytes received since the previous sample, and over how long (ms).
    pub bytes: u64,
    pub interval_ms: i64,
}

/// What the media plane measures about a live push.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineStream {
    /// The stream.
    pub key: StreamKey,
    /// The push domain.
    pub domain: String,
    /// The publisher's address.
    pub client: SocketAddr,
    /// The server's address the publisher connected to.
    pub server: SocketAddr,
    /// When the push started (Unix time).
    pub started: i64,
    /// The push URL's query string.
    pub params: String,
    /// Video codec name (`h264`, `h265`), empty without video.
    pub video_codec: String,
    /// Audio codec name (`aac`, …), empty without audio.
    pub audio_codec: String,
    /// Picture width and height from the sequence header.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Measured video frames per second (last few seconds).
    pub fps: f64,
    /// Measured video bitrate, bits per second.
    pub video_bps: u64,
    /// Measured audio bitrate, bits per second.
    pub audio_bps: u64,
    /// Measured audio frames per second.
    pub audio_fps: f64,
    /// Audio sample rate (Hz), 0 without audio.
    pub sample_rate: u32,
    /// Players currently attached.
    pub players: u64,
}

/// One push of a live stream, as `DescribeBackupStreamList` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPush {
    /// The stream.
    pub key: StreamKey,
    /// The push domain.
    pub domain: String,
    /// When the push started (Unix time).
    pub started: i64,
    /// Its `sequence` (`UpstreamSequence`), as its callbacks carry it.
    pub sequence: String,
    /// Whether players get this push (the primary) or it waits (backup).
    pub primary: bool,
    /// The relay task making it (row id), if one is.
    pub relay_task: Option<i64>,
}

/// A stream's pushes: the primary first, then its backup if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPushes {
    /// The pushes.
    pub pushes: Vec<StreamPush>,
    /// `EnableOptimalSwitching` is on for it.
    pub optimal: bool,
}

/// How a player played, as the statistics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlayProtocol {
    /// RTMP (and RTMPS).
    Rtmp,
    /// HTTP-FLV.
    Flv,
    /// HLS and LL-HLS (playlists and segments).
    Hls,
    /// WebRTC (WHEP and LEB): CSS's 快直播, service `LEB`.
    Webrtc,
}

impl PlayProtocol {
    /// Every protocol.
    pub const ALL: [PlayProtocol; 4] = [
        PlayProtocol::Rtmp,
        PlayProtocol::Flv,
        PlayProtocol::Hls,
        PlayProtocol::Webrtc,
    ];

    /// A stable lower-case name (the store's `protocol` column).
    pub const fn as_str(self) -> &'static str {
        match self {
            PlayProtocol::Rtmp => "rtmp",
            PlayProtocol::Flv => "flv",
            PlayProtocol::Hls => "hls",
            PlayProtocol::Webrtc => "webrtc",
        }
    }

    /// The protocol called `name` ([`PlayProtocol::as_str`]).
    pub fn parse(name: &str) -> Option<PlayProtocol> {
        PlayProtocol::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// CSS's service: `LEB` (快直播) for WebRTC, `LVB` otherwise.
    pub const fn service(self) -> &'static str {
        match self {
            PlayProtocol::Webrtc => "LEB",
            _ => "LVB",
        }
    }
}

/// What the players of one stream over one protocol did in part of a
/// minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayRow {
    /// The stream's account.
    pub account: AccountId,
    /// The play domain asked for.
    pub domain: String,
    /// AppName.
    pub app: String,
    /// StreamName as played (a transcoded output's own name).
    pub stream: String,
    /// How it was played.
    pub protocol: PlayProtocol,
    /// Bytes sent to players.
    pub bytes: u64,
    /// Plays started (HLS: playlist and segment requests), refused ones
    /// included.
    pub requests: u64,
    /// Players attached when counted (HLS: client addresses seen this
    /// minute); the minute's figure is the largest count.
    pub online: u64,
    /// HTTP answers by status (HTTP-FLV and HLS only).
    pub codes: Vec<(u16, u64)>,
}

/// What one client address did on one play domain in part of a minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    /// The domain's account.
    pub account: AccountId,
    /// The play domain.
    pub domain: String,
    /// The client's address.
    pub ip: String,
    /// Bytes sent to it.
    pub bytes: u64,
    /// Its requests (plays started, HLS requests).
    pub requests: u64,
    /// Its requests answered with an HTTP error.
    pub failed: u64,
}

/// Play statistics of part of one minute, added to what the minute
/// already has ([`MediaEvent::PlayStats`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlayStats {
    /// Unix seconds of the minute's start.
    pub minute: i64,
    /// By stream and protocol.
    pub streams: Vec<PlayRow>,
    /// By client address.
    pub clients: Vec<ClientRow>,
    /// Bytes relay tasks pushed out (CSS's 转推), by account.
    pub delivered: Vec<(AccountId, u64)>,
}

/// What a transcoding job makes, for the transcoding statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscodeJob {
    /// The source stream.
    pub key: StreamKey,
    /// Its push domain.
    pub domain: String,
    /// CSS's `Type`: `Transcode`, `WaterMark`, `MixStream` or `Webrtc`.
    pub kind: &'static str,
    /// CSS's `ModuleCodec` (`liveprocessor_H264`, `topspeed_H265`, …).
    pub codec: String,
    /// Output size (the source's when kept).
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Output video bitrate, kbit/s (the source's when kept).
    pub bitrate_kbps: u32,
}

/// One hourly access log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogFile {
    /// The play domain.
    pub domain: String,
    /// Unix seconds of the hour's start.
    pub hour: i64,
    /// The file's name.
    pub name: String,
    /// Where it downloads from (signed, valid a day).
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One time-shift recording session: the segments one push of a stream
/// left on disk under a time-shift rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeShiftSession {
    /// The stream.
    pub key: StreamKey,
    /// The push domain.
    pub domain: String,
    /// The session id (`Sid`).
    pub sid: String,
    /// Unix seconds of its first kept segment's start.
    pub start: i64,
    /// Unix seconds of its last kept segment's end.
    pub end: i64,
    /// Whether the watermarked output was kept (`RemoveWatermark` off
    /// on a watermarked stream) rather than the push itself.
    pub watermarked: bool,
    /// How long its segments are kept (the template's `Duration`), seconds.
    pub keep_secs: u32,
    /// Whether segments are still being added.
    pub open: bool,
}

/// Why a switch to another push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchError {
    /// The stream is not being pushed.
    NotLive,
    /// None of its pushes has that sequence.
    NoSuchPush,
}

/// An answer the media plane gives later: boxed, so that
/// [`MediaControl`] stays usable as a trait object and this crate needs no
/// async runtime.
pub type MediaFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// How the control plane asks the media plane about, and acts on, live
/// streams. Implemented by the media plane; calls are cheap and never block
/// on I/O (the one that needs I/O returns a [`MediaFuture`]).
pub trait MediaControl: Send + Sync {
    /// Every live push of `account`.
    fn online(&self, account: AccountId) -> Vec<OnlineStream>;
    /// Every live stream of `account` with its pushes (primary and backup).
    fn pushes(&self, account: AccountId) -> Vec<StreamPushes>;
    /// Makes the push with `sequence` of `key` on `domain` the one players
    /// get (at its next keyframe).
    fn switch_push(&self, key: &StreamKey, domain: &str, sequence: &str)
        -> Result<(), SwitchError>;
    /// Turns optimal switching of `account`'s live stream `stream` on or
    /// off, until its pushes end; false when it is not live.
    fn set_optimal_switching(&self, account: AccountId, stream: &str, on: bool) -> bool;
    /// Disconnects the live push of `key` with `reason`; false when it is
    /// not live. Takes effect on the connection at once.
    fn drop_stream(&self, key: &StreamKey, reason: EndReason) -> bool;
    /// Whether recordings and snapshots of the account with AppId
    /// `app_id` for the object-storage bucket `bucket` (in `region`) can
    /// be stored there now: granted to it, and asked of the storage,
    /// within a few seconds. `Ok` too when the files would be kept in the
    /// local directory anyway (no object storage configured, no bucket
    /// named); `Err` with a short reason for people otherwise.
    fn check_bucket(
        &self,
        app_id: i64,
        bucket: &str,
        region: &str,
    ) -> MediaFuture<Result<(), String>>;

    /// The time-shift sessions of `account` with segments kept between
    /// Unix seconds `from` and `to` (inclusive), oldest first.
    fn timeshift_sessions(&self, account: AccountId, from: i64, to: i64) -> Vec<TimeShiftSession>;

    /// The hourly access log files of the play `domains` (WebRTC's when
    /// `leb`) whose hour starts within Unix seconds `from..=to`.
    fn access_logs(
        &self,
        domains: Vec<String>,
        leb: bool,
        from: i64,
        to: i64,
    ) -> MediaFuture<Vec<AccessLogFile>>;

    /// Whether the operator lets the account with AppId `app_id` store
    /// files into `bucket` (`[storage.s3] buckets`, see
    /// [`crate::buckets::BucketGrants`]).
    fn bucket_permitted(&self, app_id: i64, bucket: &str) -> bool;
}

/// Where another node of the cluster serves a live stream: what an edge
/// relay pulls from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The owner's node name, for logs.
    pub node: String,
    /// The owner's relay address (`host:port` of its HTTP playback
    /// listener, as it advertises it).
    pub addr: String,
}

/// Which node owns each live stream, when several nodes share one
/// database. Implemented by the control plane over the store; every
/// answer comes within a few seconds.
pub trait Ownership: Send + Sync {
    /// The node other than this one where `key` is pushed now, if any
    /// (`None` too when the database cannot be asked).
    fn locate(&self, key: &StreamKey) -> MediaFuture<Option<Upstream>>;
    /// Claims `key` for this node's push session `session`: the push that
    /// held it on another node is told to end (replaced). The claim's
    /// epoch, or why it cannot be had (the database is unreachable: the
    /// push is refused).
    fn claim(&self, key: &StreamKey, session: u64) -> MediaFuture<Result<i64, String>>;
    /// Whether this node still holds `key` at `epoch`; `Err` when the
    /// database cannot say.
    fn holds(&self, key: &StreamKey, epoch: i64) -> MediaFuture<Result<bool, String>>;
    /// Gives up the claim of push session `session`, if it still holds it.
    fn release(&self, key: &StreamKey, session: u64) -> MediaFuture<()>;
}

/// What the media plane of a cluster node needs: its name, the secret
/// that authenticates relay pulls between nodes, and who owns what.
#[derive(Clone)]
pub struct ClusterLink {
    /// This node's name.
    pub node: String,
    /// Shared by every node (kept in the database); never a user's key.
    pub secret: Vec<u8>,
    /// Who owns what.
    pub ownership: std::sync::Arc<dyn Ownership>,
}

impl std::fmt::Debug for ClusterLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLink")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn referer(allow_list: bool, allow_empty: bool) -> RefererPolicy {
        RefererPolicy {
            enabled: true,
            allow_list,
            allow_empty,
            rules: vec!["a.com".into(), "*.b.com".into()],
        }
    }

    #[test]
    fn referer_lists_allow_or_deny_by_host_with_one_level_wildcards() {
        let allow = referer(true, false);
        assert!(allow.allows(Some("https://a.com/page")));
        assert!(allow.allows(Some("http://x.b.com:8080/")));
        assert!(allow.allows(Some("http://y.x.b.com/")));
        assert!(!allow.allows(Some("http://b.com/")));
        assert!(!allow.allows(Some("http://evil-a.com/")));
        assert!(!allow.allows(None));
        let deny = referer(false, true);
        assert!(!deny.allows(Some("https://a.com/")));
        assert!(deny.allows(Some("https://c.com/")));
        assert!(deny.allows(None));
        assert!(RefererPolicy::default().allows(Some("http://anything/")));
    }

    #[test]
    fn forbidden_streams_resume_at_their_time() {
        let key = StreamKey {
            account: AccountId(1),
            app: "live".into(),
            stream: "s".into(),
        };
        let mut p = Policy::default();
        p.forbidden.insert(key.clone(), 100);
        assert!(p.is_forbidden(&key, 99));
        assert!(!p.is_forbidden(&key, 100));
    }
}
