//! The configuration file and its defaults.
//!
//! Precedence, lowest first: built-in defaults, the TOML file (`--config`),
//! `LIVESTACK_*` environment variables, command-line flags (clap merges the
//! last two). `livestack.example.toml` at the repository root documents every
//! option and must parse to [`Config::default`] (a test holds it to that).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

/// Everything livestack can be told.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database lives, and recordings while they are made
    /// (`processing/`).
    pub data_dir: PathBuf,
    /// The Tencent Cloud Live API.
    pub api: ApiConfig,
    /// RTMP ingest and playback.
    pub rtmp: ListenConfig,
    /// HTTP-FLV and HLS playback.
    pub http: ListenConfig,
    /// The same over HTTPS, with each play domain's bound certificate.
    pub https: ListenConfig,
    /// RTMP over TLS (push and play), with each domain's bound certificate.
    pub rtmps: ListenConfig,
    /// SRT ingest (UDP).
    pub srt: ListenConfig,
    /// WebRTC media (UDP); signalling rides on the HTTP(S) listeners.
    pub webrtc: WebrtcConfig,
    /// Media plane tuning.
    pub media: MediaConfig,
    /// Delivery of event callbacks.
    pub callbacks: CallbacksConfig,
    /// Where recordings and snapshots are kept.
    pub storage: StorageConfig,
    /// What server-side fetches of user-given URLs may reach.
    pub fetch: FetchConfig,
    /// How many connections are held at once.
    pub limits: LimitsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Which database: SQLite in the data directory, or PostgreSQL.
    pub store: StoreConfig,
    /// This node among several sharing one database.
    pub cluster: ClusterConfig,
    /// Access management (sub-accounts, policies, federation tokens).
    pub cam: CamConfig,
}

/// `[cam]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CamConfig {
    /// Whether CAM denials are answered (`on`), only logged (`soft`) or
    /// not evaluated (`off`).
    pub enforce: Enforce,
}

/// `[cam] enforce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Enforce {
    /// Denials get `AuthFailure.UnauthorizedOperation`.
    #[default]
    On,
    /// Denials are logged and let through.
    Soft,
    /// Policies are not evaluated.
    Off,
}

impl Default for CamConfig {
    fn default() -> Self {
        let on = matches!(
            livestack_api::Enforce::default(),
            livestack_api::Enforce::On
        );
        CamConfig {
            enforce: if on { Enforce::On } else { Enforce::Off },
        }
    }
}

impl CamConfig {
    /// The gateway's setting.
    pub fn to_api(&self) -> livestack_api::Enforce {
        match self.enforce {
            Enforce::On => livestack_api::Enforce::On,
            Enforce::Soft => livestack_api::Enforce::Soft,
            Enforce::Off => livestack_api::Enforce::Off,
        }
    }
}

/// `[cluster]`: what tells this node from the others sharing a database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The node's name; empty: the host name. Push sessions and recordings
    /// are marked with it, so a restart closes only its own.
    pub node_name: String,
    /// The host or IP address the other nodes reach this one at; empty:
    /// the API listener's address (the host name when that listens on
    /// every interface). They pull its streams (edge relays) from this
    /// host and the HTTP playback port.
    pub advertise: String,
    /// How long a node counts as alive after renewing its lease (PostgreSQL).
    pub lease_secs: u64,
    /// How often it renews it; well under `lease_secs`.
    pub lease_renew_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_name: String::new(),
            advertise: String::new(),
            lease_secs: 10,
            lease_renew_secs: 3,
        }
    }
}

impl ClusterConfig {
    /// The configured name, or the host name, or `livestack`.
    pub fn node_name(&self) -> String {
        if !self.node_name.is_empty() {
            return self.node_name.clone();
        }
        host_name().unwrap_or_else(|| "livestack".to_owned())
    }

    /// The host the other nodes reach this one at: the configured one, or
    /// the IP the API listens on (`api`), or the host name when that is
    /// every interface.
    pub fn advertise_host(&self, api: std::net::SocketAddr) -> String {
        if !self.advertise.is_empty() {
            return self.advertise.clone();
        }
        if !api.ip().is_unspecified() {
            return match api.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            };
        }
        host_name().unwrap_or_else(|| "localhost".to_owned())
    }
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

impl Config {
    /// The PostgreSQL URL, when one is set.
    pub fn database_url(&self) -> Option<&str> {
        self.store.database_url.as_ref().map(|u| u.0.as_str())
    }

    /// What "cannot open …" names when the store does not open: the
    /// PostgreSQL URL without its password, or the data directory.
    pub fn database_shown(&self) -> String {
        match self.database_url() {
            Some(url) => format!("the database {}", livestack_store::pg::redact(url)),
            None => format!("the data directory {}", self.data_dir.display()),
        }
    }
}

/// `[store]`: the database. Unset, livestack keeps SQLite in the data
/// directory; a `postgres://` URL makes it share that database with every
/// node given the same URL.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user:password@host:port/database` (the password is kept
    /// out of logs).
    pub database_url: Option<ConfigSecret>,
}

/// `[limits]`: connections held at once over every listener, in all and
/// from one client address; a connection over either is closed at once.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// In all (0: no limit). Keep it under the open-files limit.
    pub max_connections: usize,
    /// From one address (0: no limit).
    pub max_connections_per_ip: usize,
    /// MiB of partially received RTMP messages over every connection.
    pub rtmp_buffered_mib: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let d = livestack_media::MediaConfig::default();
        LimitsConfig {
            max_connections: d.max_connections,
            max_connections_per_ip: d.max_connections_per_ip,
            rtmp_buffered_mib: d.max_rtmp_buffered >> 20,
        }
    }
}

/// `[fetch]`: watermark pictures and event callbacks are fetched from (or
/// posted to) URLs that API callers choose; they never reach loopback,
/// private, link-local, CGNAT, multicast or unspecified addresses unless
/// allowed here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    /// Address blocks allowed although not public, e.g. `"127.0.0.0/8"`.
    pub allow: Vec<String>,
}

impl FetchConfig {
    /// The policy, or which entry is not an address block.
    pub fn policy(&self) -> anyhow::Result<livestack_net::FetchPolicy> {
        let allow = self
            .allow
            .iter()
            .map(|c| c.parse::<livestack_net::Cidr>())
            .collect::<Result<Vec<_>, _>>()
            .context("invalid [fetch] allow")?;
        Ok(livestack_net::FetchPolicy::allowing(allow))
    }
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address of the API listener.
    pub listen: SocketAddr,
    /// Requests per second per account per action, for every action; unset
    /// means each action's documented default.
    pub rate_limit: Option<u32>,
    /// Regions a request may name.
    pub regions: Vec<String>,
    /// Legacy recording tasks (`CreateLiveRecord`) an account may create
    /// in one Beijing day.
    pub legacy_record_tasks_per_day: u64,
    /// Legacy recording tasks of an account that may run at once.
    pub legacy_record_tasks_running: u64,
    /// Relay (pull-stream) tasks an account may hold.
    pub pull_stream_tasks: u64,
    /// AddLiveDomain requires a verified main domain when another account
    /// has a domain under it (FailedOperation.DomainNeedVerifyOwner).
    pub verify_domain_owner: bool,
    /// The name server of AuthenticateDomainOwner's TXT lookups ("":
    /// the system's).
    pub owner_dns_server: String,
    /// The TXT record's name (`{domain}`: the main domain).
    pub owner_txt_name: String,
    /// The verification file's URL (`{domain}`: the domain verified).
    pub owner_file_url: String,
}

/// A listener of the media plane.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// The address to bind.
    pub listen: SocketAddr,
}

/// `[webrtc]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebrtcConfig {
    /// The UDP address every WebRTC session shares.
    pub listen: SocketAddr,
    /// The address players are told to send to (the ICE host candidate):
    /// this machine's public address behind NAT. Unset: the listen
    /// address, or 127.0.0.1 when that is a wildcard.
    pub candidate: Option<std::net::IpAddr>,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        WebrtcConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            candidate: None,
        }
    }
}

/// `[media]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Milliseconds a player's frames are gathered before one write.
    pub merge_write_ms: u64,
    /// Seconds without data before a publisher is disconnected.
    pub idle_timeout_secs: u64,
    /// Target HLS segment length in seconds.
    pub hls_segment_secs: u64,
    /// HLS segments in the playlist.
    pub hls_window: usize,
    /// The ffmpeg program transcoding, watermark, recording and snapshot
    /// jobs run (a name looked up on PATH, or a path).
    pub ffmpeg: String,
    /// Caps every recording's file interval (seconds), below CSS's 60 s
    /// minimum if need be: for tests and demonstrations. Unset: each
    /// template's `RecordInterval`.
    pub max_record_interval_secs: Option<u64>,
    /// FLV, MP4, HLS and AAC recordings are written in-process (`false`:
    /// an ffmpeg process per recording).
    pub record_in_process: bool,
    /// The transcoded outputs of one source played at once share one
    /// ffmpeg and one decode (`false`: a process per output).
    pub shared_decode: bool,
    /// Seconds between the push-quality samples of every live push
    /// (`DescribeStreamPushInfoList`).
    pub push_sample_interval_secs: u64,
    /// How many of the busiest streams get `livestack_top_stream_*`
    /// series in `/metrics` (0: none).
    pub metrics_top_streams: usize,
    /// Push domains whose streams take a backup push (主备流) instead of
    /// a second push replacing the first (both on the same node).
    pub backup_domains: Vec<String>,
    /// Play domains whose HLS playlists are low-latency (LL-HLS); others
    /// serve it to requests with `ll=1`.
    pub ll_hls_domains: Vec<String>,
    /// The most disk time-shift segments may use, in MiB (0: no bound);
    /// the oldest go first. They are kept under `<data_dir>/timeshift`.
    pub timeshift_max_mb: u64,
    /// Seconds between reports of the current minute's play statistics
    /// (at most 60; each minute is also reported when it ends).
    pub play_stats_flush_secs: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        let d = livestack_media::MediaConfig::default();
        MediaConfig {
            merge_write_ms: d.merge_write.as_millis() as u64,
            idle_timeout_secs: d.idle_timeout.as_secs(),
            hls_segment_secs: d.hls_segment.as_secs(),
            hls_window: d.hls_window,
            ffmpeg: d.ffmpeg,
            max_record_interval_secs: d.max_record_interval.map(|d| d.as_secs()),
            record_in_process: d.record_in_process,
            shared_decode: d.shared_decode,
            push_sample_interval_secs: d.push_sample_interval.as_secs(),
            metrics_top_streams: d.metrics_top_streams,
            backup_domains: d.backup_domains,
            ll_hls_domains: d.ll_hls_domains,
            timeshift_max_mb: d.timeshift_max_bytes >> 20,
            play_stats_flush_secs: d.play_stats_flush.as_secs(),
        }
    }
}

impl MediaConfig {
    /// The media plane's settings (the binary adds where processing jobs
    /// work: `<data_dir>/processing`).
    pub fn to_media(&self) -> livestack_media::MediaConfig {
        use std::time::Duration;
        livestack_media::MediaConfig {
            merge_write: Duration::from_millis(self.merge_write_ms),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            hls_segment: Duration::from_secs(self.hls_segment_secs.max(1)),
            hls_window: self.hls_window.max(1),
            ffmpeg: self.ffmpeg.clone(),
            max_record_interval: self
                .max_record_interval_secs
                .map(|s| Duration::from_secs(s.max(1))),
            record_in_process: self.record_in_process,
            shared_decode: self.shared_decode,
            push_sample_interval: Duration::from_secs(self.push_sample_interval_secs.max(1)),
            metrics_top_streams: self.metrics_top_streams,
            backup_domains: self
                .backup_domains
                .iter()
                .map(|d| d.trim().to_ascii_lowercase())
                .collect(),
            ll_hls_domains: self
                .ll_hls_domains
                .iter()
                .map(|d| d.trim().to_ascii_lowercase())
                .collect(),
            timeshift_max_bytes: self.timeshift_max_mb.saturating_mul(1 << 20),
            play_stats_flush: Duration::from_secs(self.play_stats_flush_secs.clamp(1, 60)),
            ..livestack_media::MediaConfig::default()
        }
    }
}

/// `[callbacks]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbacksConfig {
    /// Seconds a receiver has to answer one attempt.
    pub timeout_secs: u64,
    /// Seconds between attempts of push begin/end and record-file events.
    pub retry_interval_secs: u64,
    /// Seconds between attempts of snapshot events.
    pub snapshot_retry_interval_secs: u64,
    /// Notifications queued or being retried at most.
    pub queue: usize,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        let d = livestack_media::CallbackConfig::default();
        CallbacksConfig {
            timeout_secs: d.timeout.as_secs(),
            retry_interval_secs: d.retry_interval.as_secs(),
            snapshot_retry_interval_secs: d.snapshot_retry_interval.as_secs(),
            queue: d.queue,
        }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The local directory; unset means `<data_dir>/records`.
    pub local_dir: Option<PathBuf>,
    /// The URL of the local directory in callbacks; unset means the HTTP
    /// playback port's `/records`.
    pub public_url: Option<String>,
    /// `UTC+8` or `UTC`: the time zone of file names.
    pub time_zone: String,
    /// Seconds an upload may take, plus one per MiB.
    pub upload_timeout_secs: u64,
    /// Signs `/records/` URLs with this key; unset serves them unsigned.
    pub sign_key: Option<ConfigSecret>,
    /// Seconds the signed URLs of callbacks stay valid.
    pub sign_ttl_secs: u64,
    /// S3-compatible object storage for templates that name a bucket.
    pub s3: S3Config,
}

/// `[storage.s3]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// `http(s)://host[:port]`; unset means no object storage.
    pub endpoint: Option<String>,
    /// The signing region; unset means each template's.
    pub region: Option<String>,
    /// Access key id; unset sends unsigned requests.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<ConfigSecret>,
    /// `<endpoint>/<bucket>/<key>` rather than `<bucket>.<host>/<key>`.
    pub path_style: bool,
    /// Allow a plain `http://` endpoint.
    pub allow_http: bool,
    /// Bucket patterns each account may store into, by AppId or `*`;
    /// empty grants every bucket to every account.
    pub buckets: std::collections::BTreeMap<String, Vec<String>>,
}

/// A secret read from the configuration: never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ConfigSecret(pub String);

impl std::fmt::Debug for ConfigSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Seven days: long enough for a callback receiver that was down to catch
/// up, short enough that a leaked URL dies.
const DEFAULT_SIGN_TTL_SECS: u64 = 7 * 86_400;

impl Default for StorageConfig {
    fn default() -> Self {
        let d = livestack_media::storage::StorageSettings::default();
        StorageConfig {
            local_dir: None,
            public_url: None,
            time_zone: d.zone.as_str().to_owned(),
            upload_timeout_secs: d.upload_timeout.as_secs(),
            sign_key: None,
            sign_ttl_secs: DEFAULT_SIGN_TTL_SECS,
            s3: S3Config::default(),
        }
    }
}

impl CallbacksConfig {
    /// The media plane's settings.
    pub fn to_media(&self) -> livestack_media::CallbackConfig {
        use std::time::Duration;
        livestack_media::CallbackConfig {
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
            retry_interval: Duration::from_secs(self.retry_interval_secs.max(1)),
            snapshot_retry_interval: Duration::from_secs(self.snapshot_retry_interval_secs.max(1)),
            queue: self.queue.max(1),
            // From `[fetch]`, which `App::run` applies.
            fetch: livestack_net::FetchPolicy::default(),
        }
    }
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            path_style: true,
            allow_http: false,
            buckets: std::collections::BTreeMap::new(),
        }
    }
}

impl StorageConfig {
    /// The media plane's storage settings, for files under `data_dir` and
    /// served by the HTTP playback port bound at `http`.
    pub fn to_storage(
        &self,
        data_dir: &Path,
        http: SocketAddr,
    ) -> anyhow::Result<livestack_media::storage::StorageSettings> {
        use livestack_core::naming::NamingZone;
        use livestack_media::storage::{S3Settings, Secret, StorageSettings};
        let zone = NamingZone::parse(&self.time_zone).with_context(|| {
            format!(
                "[storage] time_zone must be \"UTC+8\" or \"UTC\", not {:?}",
                self.time_zone
            )
        })?;
        let local_url = match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                // A wildcard address is no place to send anyone: name the
                // loopback address with the same port instead.
                let mut addr = http;
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                format!("http://{addr}/records")
            }
        };
        let s3 = match self.s3.endpoint.as_deref().filter(|e| !e.is_empty()) {
            None => None,
            Some(endpoint) => {
                if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                    anyhow::bail!(
                        "[storage.s3] endpoint must start with http:// or https://: {endpoint:?}"
                    );
                }
                if endpoint.starts_with("http://") && !self.s3.allow_http {
                    anyhow::bail!(
                        "[storage.s3] endpoint {endpoint:?} is plain http: set allow_http = true"
                    );
                }
                let key_id = self.s3.access_key_id.clone().unwrap_or_default();
                let secret = self
                    .s3
                    .secret_access_key
                    .as_ref()
                    .map(|s| s.0.clone())
                    .unwrap_or_default();
                if key_id.is_empty() != secret.is_empty() {
                    anyhow::bail!(
                        "[storage.s3] set both access_key_id and secret_access_key, or neither"
                    );
                }
                Some(S3Settings {
                    endpoint: endpoint.trim_end_matches('/').to_owned(),
                    region: self.s3.region.clone().unwrap_or_default(),
                    access_key_id: key_id,
                    secret_access_key: Secret::new(secret),
                    path_style: self.s3.path_style,
                    allow_http: self.s3.allow_http,
                })
            }
        };
        let grants = livestack_core::buckets::BucketGrants::new(
            self.s3.buckets.iter().map(|(k, v)| (k.as_str(), v.clone())),
        )
        .map_err(|e| anyhow::anyhow!("[storage.s3] buckets: {e}"))?;
        let signing = match self.sign_key.as_ref().map(|k| k.0.as_str()) {
            None => None,
            Some("") => anyhow::bail!("[storage] sign_key is empty: remove it, or give a key"),
            Some(key) => Some(livestack_media::storage::RecordSigning {
                key: Secret::new(key),
                ttl: std::time::Duration::from_secs(self.sign_ttl_secs.max(1)),
            }),
        };
        Ok(StorageSettings {
            grants,
            signing,
            local_dir: self
                .local_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("records")),
            local_url,
            s3,
            upload_timeout: std::time::Duration::from_secs(self.upload_timeout_secs.max(1)),
            zone,
        })
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `livestack_api=debug,info`, …
    /// (`RUST_LOG` wins when set).
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./livestack-data"),
            api: ApiConfig::default(),
            rtmp: ListenConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 1935)),
            },
            http: ListenConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            },
            https: ListenConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            },
            rtmps: ListenConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 1936)),
            },
            srt: ListenConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            },
            webrtc: WebrtcConfig::default(),
            media: MediaConfig::default(),
            callbacks: CallbacksConfig::default(),
            storage: StorageConfig::default(),
            fetch: FetchConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            store: StoreConfig::default(),
            cluster: ClusterConfig::default(),
            cam: CamConfig::default(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        let defaults = livestack_api::ApiSettings::default();
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            rate_limit: defaults.rate_limit,
            regions: defaults.regions,
            legacy_record_tasks_per_day: defaults.task_limits.legacy_per_day,
            legacy_record_tasks_running: defaults.task_limits.legacy_running,
            pull_stream_tasks: defaults.task_limits.pull_tasks,
            verify_domain_owner: defaults.owner.required,
            owner_dns_server: String::new(),
            owner_txt_name: defaults.owner.txt_name,
            owner_file_url: defaults.owner.file_url,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
        }
    }
}

impl Config {
    /// The media plane's settings: `[media]` and `[callbacks]`.
    pub fn to_media(&self) -> livestack_media::MediaConfig {
        livestack_media::MediaConfig {
            callbacks: self.callbacks.to_media(),
            max_connections: self.limits.max_connections,
            max_connections_per_ip: self.limits.max_connections_per_ip,
            max_rtmp_buffered: self.limits.rtmp_buffered_mib.max(1) << 20,
            ..self.media.to_media()
        }
    }

    /// Reads `path`, or the defaults when there is none.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        Ok(toml::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_to_the_defaults() {
        let text = include_str!("../../../livestack.example.toml");
        assert_eq!(Config::parse(text).expect("parses"), Config::default());
    }

    #[test]
    fn unknown_options_are_refused_rather_than_ignored() {
        assert!(Config::parse("[api]\nlisten_addr = \"127.0.0.1:1\"\n").is_err());
        assert!(Config::parse("datadir = \"x\"\n").is_err());
    }

    #[test]
    fn the_callback_section_sets_the_media_planes_retry_schedule() {
        let c = Config::parse("[callbacks]\nretry_interval_secs = 1\ntimeout_secs = 2\n")
            .expect("parses");
        let media = c.to_media().callbacks;
        assert_eq!(media.retry_interval, std::time::Duration::from_secs(1));
        assert_eq!(media.timeout, std::time::Duration::from_secs(2));
        assert_eq!(
            media.snapshot_retry_interval,
            livestack_media::CallbackConfig::default().snapshot_retry_interval
        );
        assert_eq!(
            Config::default().to_media(),
            livestack_media::MediaConfig::default()
        );
    }

    #[test]
    fn storage_defaults_keep_files_under_the_data_dir_served_by_the_http_port() {
        let s = Config::default()
            .storage
            .to_storage(Path::new("/data"), "0.0.0.0:8080".parse().expect("addr"))
            .expect("valid");
        assert_eq!(s.local_dir, Path::new("/data/records"));
        assert_eq!(s.local_url, "http://127.0.0.1:8080/records");
        assert_eq!(s.s3, None);
        assert_eq!(s.zone, livestack_core::naming::NamingZone::Utc8);
    }

    #[test]
    fn an_s3_section_configures_object_storage_and_hides_its_secret() {
        let c = Config::parse(
            "[storage]\ntime_zone = \"UTC\"\npublic_url = \"https://cdn.example.com/r/\"\n\
             [storage.s3]\nendpoint = \"http://127.0.0.1:9000/\"\nallow_http = true\n\
             access_key_id = \"AKID\"\nsecret_access_key = \"s3cr3t\"\n",
        )
        .expect("parses");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let s = c
            .storage
            .to_storage(Path::new("/data"), "127.0.0.1:8080".parse().expect("addr"))
            .expect("valid");
        assert_eq!(s.local_url, "https://cdn.example.com/r");
        assert_eq!(s.zone, livestack_core::naming::NamingZone::Utc);
        let s3 = s.s3.expect("configured");
        assert_eq!(s3.endpoint, "http://127.0.0.1:9000");
        assert_eq!(s3.secret_access_key.expose(), "s3cr3t");
        assert!(s3.path_style);
    }

    #[test]
    fn bad_storage_settings_are_refused_at_start() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        for text in [
            "[storage]\ntime_zone = \"UTC+9\"\n",
            "[storage.s3]\nendpoint = \"http://127.0.0.1:9000\"\n",
            "[storage.s3]\nendpoint = \"127.0.0.1:9000\"\n",
            "[storage.s3]\nendpoint = \"http://s3\"\nallow_http = true\n[storage.s3.buckets]\nroot = [\"x\"]\n",
            "[storage.s3]\nendpoint = \"https://s3.example.com\"\naccess_key_id = \"AKID\"\n",
        ] {
            let c = Config::parse(text).expect("parses");
            assert!(
                c.storage.to_storage(Path::new("/d"), addr).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn a_partial_file_keeps_the_other_defaults() {
        let c = Config::parse("[api]\nrate_limit = 5\n").expect("parses");
        assert_eq!(c.api.rate_limit, Some(5));
        assert_eq!(c.api.listen, Config::default().api.listen);
        assert_eq!(c.data_dir, Config::default().data_dir);
    }
}
