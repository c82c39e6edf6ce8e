//! The media plane's Prometheus metrics.
//!
//! Owns: the counters and gauges the media paths update (bytes in and
//! out, players, HLS requests, jobs started and failed, callbacks) and a
//! collector that reads the live state at scrape time (live pushes, jobs
//! running, and the busiest streams). Must not: put a per-stream label on
//! anything but the `top_stream_*` gauges, which name at most
//! `metrics_top_streams` streams (a server with 10,000 streams would
//! otherwise export 10,000 series per metric): other labels are bounded
//! sets (protocol, job kind, callback outcome) and the play domain, of
//! which an account has at most 100.
//!
//! Updates are atomic adds on values the paths already hold (a frame's
//! length, a write's total), never a lock or an allocation per frame.

use std::sync::Weak;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::Inner;

/// How a player is served.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Protocol {
    rtmp,
    flv,
    hls,
    /// Another node's edge relay pulling a stream from this one.
    relay,
    /// WHEP and LEB players.
    webrtc,
}

/// A player's protocol and the play domain it asked for.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PlayLabels {
    pub(crate) protocol: Protocol,
    pub(crate) domain: String,
}

/// Reads one number of a live stream for a `top_stream_*` series.
type ReadStream = fn(&livestack_core::media::OnlineStream) -> f64;

/// A stream, for the bounded top-N series only.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    domain: String,
    app: String,
    stream: String,
}

/// A processing job's kind.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum JobKind {
    watermark,
    transcode,
    record,
    snapshot,
    /// A relay (pull-stream) task.
    pull,
    /// A mix session.
    mix,
    /// A WebRTC baseline output (a stream with B-frames, for WebRTC
    /// players).
    webrtc_baseline,
    /// Time-shift: segments kept on disk.
    timeshift,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct JobLabels {
    pub(crate) kind: JobKind,
}

/// A relay task's state on this node.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum RelayTaskState {
    pulling,
    idle,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RelayTaskLabels {
    state: RelayTaskState,
}

/// What happened to an SRT publisher's data packets.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum SrtPackets {
    /// Arrived in time, counted once.
    received,
    /// Found missing (a gap in the sequence); SRT then asks again.
    lost,
    /// Arrived again after a loss report.
    retransmitted,
    /// Given up: still missing when the latency window passed.
    dropped,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SrtLabels {
    pub(crate) packets: SrtPackets,
}

/// What became of a callback attempt or notification.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum CallbackOutcome {
    /// Queued for delivery.
    queued,
    /// A receiver answered 200.
    delivered,
    /// An attempt failed (it is tried again while retries are left).
    failed,
    /// Every attempt failed.
    given_up,
    /// Not queued: the queue was full.
    dropped,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallbackLabels {
    pub(crate) outcome: CallbackOutcome,
}

/// Every metric the media plane updates. Cheap to clone (each metric is
/// an `Arc`).
#[derive(Debug, Clone, Default)]
pub(crate) struct MediaMetrics {
    /// Bytes of audio, video and data messages received from publishers.
    pub(crate) ingest_bytes: Counter,
    /// Pushes accepted.
    pub(crate) pushes: Counter,
    /// Bytes written to players.
    pub(crate) play_bytes: Family<PlayLabels, Counter>,
    /// Players attached now (RTMP and HTTP-FLV; HLS has requests, not
    /// connections).
    pub(crate) players: Family<PlayLabels, Gauge>,
    /// Plays started, HLS playlist and segment requests included.
    pub(crate) plays: Family<PlayLabels, Counter>,
    /// Processing job attempts started.
    pub(crate) job_starts: Family<JobLabels, Counter>,
    /// Processing job attempts that failed.
    pub(crate) job_failures: Family<JobLabels, Counter>,
    /// Event callbacks by what became of them.
    pub(crate) callbacks: Family<CallbackLabels, Counter>,
    /// Edge relays started (pulls of streams other nodes own).
    pub(crate) relays: Counter,
    /// SRT publishers' data packets, by what happened to them.
    pub(crate) srt_packets: Family<SrtLabels, Counter>,
}

impl MediaMetrics {
    /// Registers every metric, and the collector of the live state of
    /// `inner`, in `registry`.
    pub(crate) fn register(&self, registry: &mut Registry, inner: Weak<Inner>) {
        registry.register(
            "ingest_bytes",
            "Bytes of media received from publishers",
            self.ingest_bytes.clone(),
        );
        registry.register("pushes", "Pushes accepted", self.pushes.clone());
        registry.register(
            "play_bytes",
            "Bytes written to players, by protocol and play domain",
            self.play_bytes.clone(),
        );
        registry.register(
            "players",
            "Players connected now (RTMP, HTTP-FLV), by protocol and play domain",
            self.players.clone(),
        );
        registry.register(
            "plays",
            "Plays started (HLS: playlist and segment requests), by protocol and play domain",
            self.plays.clone(),
        );
        registry.register(
            "job_starts",
            "Processing job attempts started (ffmpeg processes), by kind",
            self.job_starts.clone(),
        );
        registry.register(
            "job_failures",
            "Processing job attempts that failed, by kind",
            self.job_failures.clone(),
        );
        registry.register(
            "callbacks",
            "Event callbacks by outcome (queued, delivered, failed attempt, given up, dropped)",
            self.callbacks.clone(),
        );
        registry.register(
            "relays",
            "Edge relays started: pulls of a stream pushed to another node, for players here",
            self.relays.clone(),
        );
        registry.register(
            "srt_packets",
            "SRT publishers' data packets: received (in time), lost (gaps found), retransmitted (arrived again), dropped (missing past the latency)",
            self.srt_packets.clone(),
        );
        registry.register_collector(Box::new(LiveState { inner }));
    }

    /// A player of `protocol` on `domain` is attached until the guard
    /// drops; counts the play.
    pub(crate) fn player(&self, protocol: Protocol, domain: &str) -> PlayerGuard {
        let labels = PlayLabels {
            protocol,
            domain: domain.to_owned(),
        };
        self.plays.get_or_create(&labels).inc();
        let gauge = self.players.get_or_create(&labels).clone();
        gauge.inc();
        let bytes = self.play_bytes.get_or_create(&labels).clone();
        PlayerGuard {
            gauge,
            bytes,
            tally: None,
        }
    }

    /// Counts an HLS request for `domain` and the bytes it is answered with.
    pub(crate) fn hls_request(&self, domain: &str, bytes: usize) {
        let labels = PlayLabels {
            protocol: Protocol::hls,
            domain: domain.to_owned(),
        };
        self.plays.get_or_create(&labels).inc();
        self.play_bytes.get_or_create(&labels).inc_by(bytes as u64);
    }

    /// Counts `n` SRT data packets that `what`.
    pub(crate) fn srt(&self, what: SrtPackets, n: u64) {
        if n > 0 {
            self.srt_packets
                .get_or_create(&SrtLabels { packets: what })
                .inc_by(n);
        }
    }

    /// Counts a callback outcome.
    pub(crate) fn callback(&self, outcome: CallbackOutcome) {
        self.callbacks
            .get_or_create(&CallbackLabels { outcome })
            .inc();
    }
}

/// One attached player: its gauge goes down when this drops, and its
/// bytes counters are at hand for the output loop.
#[derive(Debug)]
pub(crate) struct PlayerGuard {
    gauge: Gauge,
    /// Bytes written to this player's protocol and domain.
    bytes: Counter,
    /// This play's own tally for the play statistics (none for a
    /// cluster relay: not a player of the account).
    pub(crate) tally: Option<std::sync::Arc<crate::stream::plays::Tally>>,
}

impl PlayerGuard {
    /// Counts `n` bytes written to the player.
    pub(crate) fn add(&self, n: u64) {
        self.bytes.inc_by(n);
        if let Some(t) = &self.tally {
            t.add(n);
        }
    }
}

impl Drop for PlayerGuard {
    fn drop(&mut self) {
        self.gauge.dec();
        if let Some(t) = &self.tally {
            t.end();
        }
    }
}

/// Reads what is live at scrape time, so that no path has to keep a
/// gauge in step with the registry.
#[derive(Debug)]
struct LiveState {
    inner: Weak<Inner>,
}

impl Collector for LiveState {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(inner) = self.inner.upgrade() else {
            return Ok(());
        };
        let all = inner.streams.all();
        let pushes: Vec<_> = all.iter().filter(|l| !l.publisher.internal).collect();
        let gauge = ConstGauge::new(pushes.len() as i64);
        gauge.encode(encoder.encode_descriptor(
            "streams",
            "Live pushes now (processing outputs not counted)",
            None,
            gauge.metric_type(),
        )?)?;
        // The busiest streams by name, bounded: the first `top` by players,
        // then by video bitrate (a server with 10,000 streams exports 10
        // series per metric here, not 10,000).
        let top = inner.config.metrics_top_streams;
        if top > 0 {
            let mut live: Vec<_> = pushes.iter().map(|l| l.snapshot()).collect();
            live.sort_by(|a, b| {
                (b.players, b.video_bps)
                    .cmp(&(a.players, a.video_bps))
                    .then_with(|| a.key.stream.cmp(&b.key.stream))
            });
            live.truncate(top);
            let labels: Vec<StreamLabels> = live
                .iter()
                .map(|o| StreamLabels {
                    domain: o.domain.clone(),
                    app: o.key.app.clone(),
                    stream: o.key.stream.clone(),
                })
                .collect();
            let series: [(&str, &str, ReadStream); 4] = [
                (
                    "top_stream_players",
                    "Players of the busiest live streams",
                    |o| o.players as f64,
                ),
                (
                    "top_stream_video_bitrate_bits",
                    "Measured video bitrate of the busiest live streams (bit/s)",
                    |o| o.video_bps as f64,
                ),
                (
                    "top_stream_audio_bitrate_bits",
                    "Measured audio bitrate of the busiest live streams (bit/s)",
                    |o| o.audio_bps as f64,
                ),
                (
                    "top_stream_fps",
                    "Measured frame rate of the busiest live streams",
                    |o| o.fps,
                ),
            ];
            for (name, help, read) in series {
                let mut family = encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    prometheus_client::metrics::MetricType::Gauge,
                )?;
                for (o, l) in live.iter().zip(&labels) {
                    ConstGauge::new(read(o)).encode(family.encode_family(l)?)?;
                }
            }
        }
        let relays = all.iter().filter(|l| l.publisher.relay).count();
        let gauge = ConstGauge::new(relays as i64);
        gauge.encode(encoder.encode_descriptor(
            "relays_up",
            "Edge relays up now: streams pulled from another node (one per stream whatever the players)",
            None,
            gauge.metric_type(),
        )?)?;
        let mut running: Vec<_> = inner.processor.running_jobs().into_iter().collect();
        running.sort();
        let mut family = encoder.encode_descriptor(
            "jobs_running",
            "Processing jobs running now (their ffmpeg running or about to start again), by kind",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (kind, n) in running {
            ConstGauge::new(n as i64).encode(family.encode_family(&JobLabels { kind })?)?;
        }
        let (pulling, idle) = inner.processor.relay_tasks();
        let mut family = encoder.encode_descriptor(
            "relay_tasks",
            "This node's relay (pull-stream) tasks, by state: pulling now, or idle (paused, outside their time window, or done)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (state, n) in [
            (RelayTaskState::pulling, pulling),
            (RelayTaskState::idle, idle),
        ] {
            ConstGauge::new(n as i64).encode(family.encode_family(&RelayTaskLabels { state })?)?;
        }
        let (bytes, segments) = inner.timeshift.usage();
        let gauge = ConstGauge::new(bytes as i64);
        gauge.encode(encoder.encode_descriptor(
            "timeshift_bytes",
            "Bytes of time-shift segments kept on this node's disk",
            None,
            gauge.metric_type(),
        )?)?;
        let gauge = ConstGauge::new(segments as i64);
        gauge.encode(encoder.encode_descriptor(
            "timeshift_segments",
            "Time-shift segments kept on this node's disk",
            None,
            gauge.metric_type(),
        )?)?;
        Ok(())
    }
}
