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
pub(crate) struct Config {
    /// Where the database lives, and recordings while they are made
    /// (`processing/`).
    pub(crate) data_dir: PathBuf,
    /// The Tencent Cloud Live API.
    pub(crate) api: ApiConfig,
    /// RTMP ingest and playback.
    pub(crate) rtmp: ListenConfig,
    /// HTTP-FLV and HLS playback.
    pub(crate) http: ListenConfig,
    /// The same over HTTPS, with each play domain's bound certificate.
    pub(crate) https: ListenConfig,
    /// Media plane tuning.
    pub(crate) media: MediaConfig,
    /// Logging.
    pub(crate) log: LogConfig,
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApiConfig {
    /// Address of the API listener.
    pub(crate) listen: SocketAddr,
    /// Requests per second per account per action, for every action; unset
    /// means each action's documented default.
    pub(crate) rate_limit: Option<u32>,
    /// Regions a request may name.
    pub(crate) regions: Vec<String>,
}

/// A listener of the media plane.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenConfig {
    /// The address to bind.
    pub(crate) listen: SocketAddr,
}

/// `[media]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MediaConfig {
    /// Milliseconds a player's frames are gathered before one write.
    pub(crate) merge_write_ms: u64,
    /// Seconds without data before a publisher is disconnected.
    pub(crate) idle_timeout_secs: u64,
    /// Target HLS segment length in seconds.
    pub(crate) hls_segment_secs: u64,
    /// HLS segments in the playlist.
    pub(crate) hls_window: usize,
    /// The ffmpeg program transcoding, watermark, recording and snapshot
    /// jobs run (a name looked up on PATH, or a path).
    pub(crate) ffmpeg: String,
    /// Caps every recording's file interval (seconds), below CSS's 60 s
    /// minimum if need be: for tests and demonstrations. Unset: each
    /// template's `RecordInterval`.
    pub(crate) max_record_interval_secs: Option<u64>,
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
        }
    }
}

impl MediaConfig {
    /// The media plane's settings; processing jobs work in
    /// `<data_dir>/processing`.
    pub(crate) fn to_media(&self, data_dir: &Path) -> livestack_media::MediaConfig {
        use std::time::Duration;
        livestack_media::MediaConfig {
            merge_write: Duration::from_millis(self.merge_write_ms),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            hls_segment: Duration::from_secs(self.hls_segment_secs.max(1)),
            hls_window: self.hls_window.max(1),
            ffmpeg: self.ffmpeg.clone(),
            work_dir: data_dir.join("processing"),
            max_record_interval: self
                .max_record_interval_secs
                .map(|s| Duration::from_secs(s.max(1))),
            ..livestack_media::MediaConfig::default()
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `livestack_api=debug,info`, …
    /// (`RUST_LOG` wins when set).
    pub(crate) level: String,
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
            media: MediaConfig::default(),
            log: LogConfig::default(),
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
    /// Reads `path`, or the defaults when there is none.
    pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses TOML text.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Config> {
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
    fn a_partial_file_keeps_the_other_defaults() {
        let c = Config::parse("[api]\nrate_limit = 5\n").expect("parses");
        assert_eq!(c.api.rate_limit, Some(5));
        assert_eq!(c.api.listen, Config::default().api.listen);
        assert_eq!(c.data_dir, Config::default().data_dir);
    }
}
