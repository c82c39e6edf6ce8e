//! Processing templates (what to do with a stream) and the rules that bind
//! them to streams (which streams), and the one answer to "which templates
//! apply to this stream now".
//!
//! Owns: the domain types of the six template families (transcoding,
//! watermarks, recording, snapshots, callbacks, time-shift), [`Rule`], the precedence
//! of rules ([`matching_rules`]: a rule naming the stream beats one naming
//! the app, which beats one naming only the domain) and the [`Processing`]
//! snapshot the media plane resolves streams against. Must not: know
//! Tencent wire names or error codes (the API layer converts and chooses),
//! or do I/O.
//!
//! The family-specific settings are `Serialize`/`Deserialize` because the
//! store keeps them as JSON text; the field names are livestack's own and
//! every struct reads missing fields as their defaults, so a later field
//! does not need a data migration.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{AccountId, DomainKind};

/// The id of a template, a watermark or an adaptive-bitrate child: unique
/// across every account and family.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TemplateId(pub i64);

/// The template families. Each has its own templates, quota and rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Transcoding outputs, played as `StreamName_TemplateName`.
    Transcode,
    /// Picture overlays.
    Watermark,
    /// Recording to files.
    Record,
    /// Periodic screenshots.
    Snapshot,
    /// HTTP event notifications.
    Callback,
    /// Time-shift: HLS segments kept on disk for replay.
    TimeShift,
}

impl Kind {
    /// Every family.
    pub const ALL: [Kind; 6] = [
        Kind::Transcode,
        Kind::Watermark,
        Kind::Record,
        Kind::Snapshot,
        Kind::Callback,
        Kind::TimeShift,
    ];

    /// A stable lower-case name (the store's `kind` column).
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Transcode => "transcode",
            Kind::Watermark => "watermark",
            Kind::Record => "record",
            Kind::Snapshot => "snapshot",
            Kind::Callback => "callback",
            Kind::TimeShift => "timeshift",
        }
    }

    /// The family called `name` ([`Kind::as_str`]).
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The domains its rules name: transcoding happens when a player asks
    /// a play domain for `StreamName_TemplateName`, so its rules name play
    /// domains; everything else happens to what is pushed, so theirs name
    /// push domains.
    pub const fn domain_kind(self) -> DomainKind {
        match self {
            Kind::Transcode => DomainKind::Play,
            _ => DomainKind::Push,
        }
    }

    /// Whether one (domain, app, stream) may bind several templates of
    /// this family: a stream has many transcoded outputs, but one
    /// watermark, one recording, one snapshot series and one callback set.
    pub const fn binds_many(self) -> bool {
        matches!(self, Kind::Transcode)
    }
}

/// A stored template of any family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Its id.
    pub id: TemplateId,
    /// The owner.
    pub account: AccountId,
    /// Its name (a watermark's name for watermarks).
    pub name: String,
    /// Free text; empty when none was given.
    pub description: String,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// When it was last changed (Unix seconds).
    pub updated_at: i64,
    /// The family-specific settings.
    pub spec: TemplateSpec,
}

impl Template {
    /// Its family.
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// Every name it answers to as an output: its own and, for an adaptive
    /// transcoding template, its children's.
    pub fn output_names(&self) -> Vec<&str> {
        let mut names = vec![self.name.as_str()];
        if let TemplateSpec::Transcode(t) = &self.spec {
            names.extend(t.children.iter().map(|c| c.name.as_str()));
        }
        names
    }
}

/// The settings of one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateSpec {
    /// A transcoding template.
    Transcode(TranscodeSpec),
    /// A watermark.
    Watermark(WatermarkSpec),
    /// A recording template.
    Record(RecordSpec),
    /// A snapshot template.
    Snapshot(SnapshotSpec),
    /// A callback template.
    Callback(CallbackSpec),
    /// A time-shift template.
    TimeShift(TimeShiftSpec),
}

impl TemplateSpec {
    /// Its family.
    pub fn kind(&self) -> Kind {
        match self {
            TemplateSpec::Transcode(_) => Kind::Transcode,
            TemplateSpec::Watermark(_) => Kind::Watermark,
            TemplateSpec::Record(_) => Kind::Record,
            TemplateSpec::Snapshot(_) => Kind::Snapshot,
            TemplateSpec::Callback(_) => Kind::Callback,
            TemplateSpec::TimeShift(_) => Kind::TimeShift,
        }
    }

    /// The object-storage buckets (name, region) its files go to, each
    /// once, in order: those of a recording template's enabled formats
    /// when it stores to object storage (`to_cos`), a snapshot template's
    /// bucket. Empty for other families and for files kept in the media
    /// library (livestack's local directory).
    pub fn buckets(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = match self {
            TemplateSpec::Record(r) if r.to_cos => r
                .outputs
                .values()
                .filter(|o| o.enabled)
                .map(|o| (o.cos_bucket.as_str(), o.cos_region.as_str()))
                .collect(),
            TemplateSpec::Snapshot(s) => vec![(s.cos_bucket.as_str(), s.cos_region.as_str())],
            _ => Vec::new(),
        };
        out.retain(|(bucket, _)| !bucket.is_empty());
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Video codec of a transcoded output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoCodec {
    /// H.264/AVC.
    #[default]
    H264,
    /// H.265/HEVC.
    H265,
    /// The source's codec, not re-encoded.
    Origin,
}

/// Audio codec of a transcoded output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioCodec {
    /// AAC.
    #[default]
    Aac,
    /// The source's codec, not re-encoded.
    Origin,
}

/// H.264 profile of a transcoded output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Baseline.
    #[default]
    Baseline,
    /// Main.
    Main,
    /// High.
    High,
}

/// A DRM scheme for HLS outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrmScheme {
    /// Apple FairPlay.
    FairPlay,
    /// AES-128 HLS encryption.
    NormalAes,
    /// Google Widevine.
    Widevine,
}

/// A track class a DRM scheme encrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrmTrack {
    /// The audio track.
    Audio,
    /// Standard-definition video.
    Sd,
    /// High-definition video.
    Hd,
    /// Ultra-HD video, first tier.
    Uhd1,
    /// Ultra-HD video, second tier.
    Uhd2,
}

/// Encryption of a transcoded output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drm {
    /// The scheme.
    pub scheme: DrmScheme,
    /// What it encrypts (at most one video tier).
    pub tracks: Vec<DrmTrack>,
}

/// Segment container of an HLS output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HlsContainer {
    /// MPEG-TS segments.
    Ts,
    /// Fragmented MP4 segments.
    Fmp4,
}

/// The HEVC sample entry of fMP4 segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HevcTag {
    /// `hvc1` (parameter sets in the sample entry).
    Hvc1,
    /// `hev1` (parameter sets in band).
    Hev1,
}

/// One output picture and sound: what a plain template produces, and what
/// each rung of an adaptive-bitrate ladder produces. Zero means "as the
/// source" for sizes, rates and intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rendition {
    /// Whether the output keeps video.
    pub video: bool,
    /// Whether the output keeps audio.
    pub audio: bool,
    /// Video codec.
    pub video_codec: VideoCodec,
    /// Video bitrate, kbit/s.
    pub video_bitrate: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Seconds between keyframes.
    pub gop: u32,
    /// Audio codec.
    pub audio_codec: AudioCodec,
    /// Audio bitrate, kbit/s.
    pub audio_bitrate: u32,
    /// Never exceed the source's bitrate.
    pub bitrate_to_source: bool,
    /// Never exceed the source's height.
    pub height_to_source: bool,
    /// Never exceed the source's frame rate.
    pub fps_to_source: bool,
    /// Apply `height` to the shorter side (portrait sources).
    pub short_edge_as_height: bool,
}

/// A transcoding template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TranscodeSpec {
    /// The output (for an adaptive template: the common settings).
    pub output: Rendition,
    /// Clockwise rotation in degrees (0, 90, 180, 270).
    pub rotate: u32,
    /// H.264 profile.
    pub profile: Profile,
    /// Content-aware "fast high definition" encoding.
    pub fast_hd: bool,
    /// The share of the bitrate that fast-HD or audience-driven encoding
    /// saves, in basis points (1/10 000).
    pub bitrate_saving_bp: u32,
    /// Encryption, when configured.
    pub drm: Option<Drm>,
    /// Audience-driven transcoding: transcode only while at least this
    /// many viewers watch.
    pub audience_threshold: Option<u32>,
    /// Whether this is an adaptive-bitrate template.
    pub adaptive: bool,
    /// The ladder of an adaptive template; empty otherwise.
    pub children: Vec<AdaptiveChild>,
}

/// One rung of an adaptive-bitrate ladder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdaptiveChild {
    /// Its own id (0 until the store assigns one).
    pub id: TemplateId,
    /// Its name.
    pub name: String,
    /// What it produces.
    pub output: Rendition,
    /// HLS segment container (H.265 outputs).
    pub hls_container: Option<HlsContainer>,
    /// HEVC sample entry of fMP4 segments.
    pub hevc_tag: Option<HevcTag>,
}

/// The kind of a watermark picture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PictureFormat {
    /// PNG.
    #[default]
    Png,
    /// JPEG.
    Jpeg,
}

impl PictureFormat {
    /// The usual file extension.
    pub const fn extension(self) -> &'static str {
        match self {
            PictureFormat::Png => "png",
            PictureFormat::Jpeg => "jpg",
        }
    }
}

/// A watermark picture as kept locally (fetched once, when the watermark
/// was added or its URL changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Picture {
    /// File name inside [`Processing::picture_dir`].
    pub file: String,
    /// PNG or JPEG.
    pub format: PictureFormat,
    /// Pixel width.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
    /// Size in bytes.
    pub size: u64,
}

/// A watermark. Positions and sizes are percentages of the video picture.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatermarkSpec {
    /// Where the picture was fetched from.
    pub source_url: String,
    /// The local copy.
    pub picture: Picture,
    /// Left offset, percent of the width.
    pub x: u32,
    /// Top offset, percent of the height.
    pub y: u32,
    /// Width, percent of the video width; 0 keeps the picture's own.
    pub width: u32,
    /// Height, percent of the video height; 0 keeps the picture's own.
    pub height: u32,
    /// The canvas size the percentages refer to, pixels.
    pub background_width: u32,
    /// The canvas height, pixels.
    pub background_height: u32,
}

/// A recording file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordFormat {
    /// FLV files.
    Flv,
    /// HLS playlists and segments.
    Hls,
    /// MP4 files.
    Mp4,
    /// AAC audio files.
    Aac,
    /// MP3 audio files.
    Mp3,
}

impl RecordFormat {
    /// Every format.
    pub const ALL: [RecordFormat; 5] = [
        RecordFormat::Flv,
        RecordFormat::Hls,
        RecordFormat::Mp4,
        RecordFormat::Aac,
        RecordFormat::Mp3,
    ];
}

/// A storage class for recorded files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageClass {
    /// Standard storage.
    #[default]
    Standard,
    /// Infrequent-access storage.
    Cold,
}

/// How one format is recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordOutput {
    /// Whether this format is recorded.
    pub enabled: bool,
    /// Seconds per file (HLS: one file per push).
    pub interval: u32,
    /// Seconds files are kept; 0 keeps them for ever.
    pub storage_time: u64,
    /// Media-library sub-application.
    pub vod_sub_app_id: i64,
    /// File-name pattern; empty for the default.
    pub vod_file_name: String,
    /// Post-processing procedure name.
    pub procedure: String,
    /// Storage class.
    pub storage_class: StorageClass,
    /// Media-library category.
    pub class_id: Option<i64>,
    /// Object-storage bucket (with `RecordSpec::to_cos`).
    pub cos_bucket: String,
    /// Object-storage region.
    pub cos_region: String,
    /// Object-storage path pattern.
    pub cos_path: String,
}

/// A recording template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordSpec {
    /// Every format, enabled or not.
    pub outputs: BTreeMap<RecordFormat, RecordOutput>,
    /// For slow ("delayed") live streams.
    pub slow_live: bool,
    /// Seconds a re-push may continue the same HLS recording.
    pub hls_resume_timeout: u32,
    /// Store to object storage rather than the media library.
    pub to_cos: bool,
    /// Record the source rather than the watermarked stream.
    pub remove_watermark: bool,
    /// Upload FLV files while they are recorded.
    pub upload_while_recording: bool,
}

/// A snapshot template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotSpec {
    /// Seconds between snapshots.
    pub interval: u32,
    /// Width in pixels; 0 keeps the source's (and its aspect ratio).
    pub width: u32,
    /// Height in pixels; 0 keeps the source's.
    pub height: u32,
    /// Submit snapshots to content moderation.
    pub porn_check: bool,
    /// Object-storage application id.
    pub cos_app_id: i64,
    /// Object-storage bucket.
    pub cos_bucket: String,
    /// Object-storage region.
    pub cos_region: String,
    /// Folder pattern (`/{Year}-{Month}-{Day}` style placeholders).
    pub cos_prefix: String,
    /// File-name pattern.
    pub cos_file_name: String,
}

/// A time-shift template: how long a stream's segments are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeShiftSpec {
    /// Seconds segments are kept (one of the documented values, 1 to 30
    /// days).
    pub duration: u32,
    /// Target segment length, seconds (3–10).
    pub item_duration: u32,
    /// `Mainland` or `Overseas` (kept and shown; one place here).
    pub area: String,
    /// Keep the pushed stream rather than its watermarked output.
    pub remove_watermark: bool,
    /// Transcoding templates whose outputs would be kept too (kept and
    /// shown; only the source, or its watermarked output, is kept here).
    pub transcode_templates: Vec<i64>,
}

/// An event a callback template can notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackEvent {
    /// A push started.
    StreamBegin,
    /// A push ended.
    StreamEnd,
    /// A recording file is ready.
    Record,
    /// A recording started, ended, paused, resumed or failed.
    RecordStatus,
    /// A snapshot is ready.
    Snapshot,
    /// Content moderation flagged something.
    PornCensorship,
    /// A push misbehaves.
    PushException,
    /// Audio moderation flagged something.
    AudioAudit,
    /// A recording failed.
    RecordException,
    /// Stream mixing (no longer used, kept for what clients send).
    StreamMix,
}

/// Severity of recording-exception notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionLevel {
    /// Errors.
    Error,
    /// Warnings.
    Warning,
    /// Information.
    Info,
    /// Alarms.
    Alarm,
}

/// A callback template: one URL per event and the key that signs them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallbackSpec {
    /// `sign = md5(key + t)` of every notification.
    pub key: String,
    /// Where each event is posted; an event without a URL is not sent.
    pub urls: BTreeMap<CallbackEvent, String>,
    /// Which recording exceptions are sent.
    pub exception_levels: Vec<ExceptionLevel>,
}

/// A binding of a template to a domain, an app of a domain, or a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The owner.
    pub account: AccountId,
    /// The template's family.
    pub kind: Kind,
    /// The domain, lower-case: a play domain for transcoding, a push
    /// domain otherwise ([`Kind::domain_kind`]).
    pub domain: String,
    /// AppName; empty for every app of the domain.
    pub app: String,
    /// StreamName; empty for every stream.
    pub stream: String,
    /// The template bound.
    pub template: TemplateId,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// When it was last changed (Unix seconds).
    pub updated_at: i64,
}

impl Rule {
    /// Whether it binds the same place as `other`: same family, domain,
    /// app and stream.
    pub fn same_place(&self, other: &Rule) -> bool {
        self.kind == other.kind
            && self.domain.eq_ignore_ascii_case(&other.domain)
            && self.app == other.app
            && self.stream == other.stream
    }

    /// How specifically it names `stream`, when it applies to it: 3 when
    /// it names the app and the stream, 2 the stream only, 1 the app
    /// only, 0 only the domain.
    fn specificity(&self, stream: &StreamRef<'_>) -> Option<u8> {
        let applies = self.account == stream.account
            && self.domain.eq_ignore_ascii_case(stream.domain)
            && (self.app.is_empty() || self.app == stream.app)
            && (self.stream.is_empty() || self.stream == stream.stream);
        applies.then(|| 2 * u8::from(!self.stream.is_empty()) + u8::from(!self.app.is_empty()))
    }
}

/// The stream a question is about, as seen on one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRef<'a> {
    /// The stream's owner.
    pub account: AccountId,
    /// The domain the stream is pushed to or played from.
    pub domain: &'a str,
    /// AppName.
    pub app: &'a str,
    /// StreamName (without a transcoding suffix).
    pub stream: &'a str,
}

/// The rules of `kind` that apply to `stream`: those of the most specific
/// level that has any (stream over app over domain), in template-id order.
/// Transcoding may bind several templates at one level; the other families
/// bind at most one per place, so they get at most one rule.
pub fn matching_rules<'r>(rules: &'r [Rule], kind: Kind, stream: &StreamRef<'_>) -> Vec<&'r Rule> {
    let scored: Vec<(u8, &Rule)> = rules
        .iter()
        .filter(|r| r.kind == kind)
        .filter_map(|r| r.specificity(stream).map(|s| (s, r)))
        .collect();
    let Some(best) = scored.iter().map(|(s, _)| *s).max() else {
        return Vec::new();
    };
    let mut out: Vec<&Rule> = scored
        .into_iter()
        .filter(|(s, _)| *s == best)
        .map(|(_, r)| r)
        .collect();
    out.sort_by_key(|r| r.template);
    out
}

/// Every template and rule of every account: the part of the media
/// plane's policy that says how streams are processed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Processing {
    /// Templates by id, every family.
    pub templates: HashMap<TemplateId, Template>,
    /// Every rule.
    pub rules: Vec<Rule>,
    /// Where watermark pictures are kept ([`Picture::file`] is relative to it).
    pub picture_dir: PathBuf,
    /// Record and screenshot tasks that have not ended, been stopped or
    /// been deleted.
    pub tasks: Vec<crate::tasks::Task>,
    /// Relay tasks not deleted nor ended (paused ones too).
    pub pull_tasks: Vec<crate::pull::PullTask>,
    /// Mix sessions not cancelled.
    pub mixes: Vec<crate::mix::MixSession>,
    /// In a cluster, the nodes alive when the policy was read, which share
    /// the relay tasks ([`crate::pull::assigned_node`]); empty on one node.
    pub nodes: Vec<String>,
    /// Each account's AppId (the `appid` of callbacks).
    pub app_ids: HashMap<AccountId, i64>,
}

/// What applies to a pushed stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushProcessing<'a> {
    /// The watermark to overlay.
    pub watermark: Option<&'a Template>,
    /// The recording template.
    pub record: Option<&'a Template>,
    /// The snapshot template.
    pub snapshot: Option<&'a Template>,
    /// The callback template.
    pub callback: Option<&'a Template>,
    /// The time-shift template.
    pub timeshift: Option<&'a Template>,
}

impl Processing {
    /// The templates of `kind` that apply to `stream` ([`matching_rules`]).
    pub fn templates_for(&self, kind: Kind, stream: &StreamRef<'_>) -> Vec<&Template> {
        matching_rules(&self.rules, kind, stream)
            .into_iter()
            .filter_map(|r| self.templates.get(&r.template))
            .filter(|t| t.kind() == kind && t.account == stream.account)
            .collect()
    }

    /// What applies to a stream pushed to the push domain `stream.domain`.
    pub fn for_push(&self, stream: &StreamRef<'_>) -> PushProcessing<'_> {
        let one = |kind| self.templates_for(kind, stream).into_iter().next();
        PushProcessing {
            watermark: one(Kind::Watermark),
            record: one(Kind::Record),
            snapshot: one(Kind::Snapshot),
            callback: one(Kind::Callback),
            timeshift: one(Kind::TimeShift),
        }
    }

    /// A player's request for `stream.stream` on the play domain
    /// `stream.domain`, when it names a transcoded output: the name
    /// without the `_TemplateName` suffix and the template bound there
    /// whose name (or adaptive child's name) is the suffix. `None` means
    /// the source stream itself is asked for.
    pub fn transcode_request<'p>(
        &'p self,
        stream: &StreamRef<'_>,
    ) -> Option<(&'p Template, String)> {
        let name = OutputName::parse(stream.stream)?;
        let source = StreamRef {
            stream: name.source,
            ..*stream
        };
        self.templates_for(Kind::Transcode, &source)
            .into_iter()
            .find(|t| t.output_names().contains(&name.template))
            .map(|t| (t, name.source.to_owned()))
    }

    /// The local file of a watermark picture.
    pub fn picture_path(&self, picture: &Picture) -> PathBuf {
        self.picture_dir.join(&picture.file)
    }
}

/// The name of a transcoded output, `StreamName_TemplateName`, as CSS
/// forms play names: the one place it is read and written (rules, the
/// media plane's planner and its playlists use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputName<'a> {
    /// The source stream: everything before the last `_`, so `cam_x_hd`
    /// is the `hd` output of `cam_x`.
    pub source: &'a str,
    /// The template (or adaptive child) name: everything after it.
    pub template: &'a str,
}

impl<'a> OutputName<'a> {
    /// Splits a play name; `None` when it has no `_` at all.
    pub fn parse(stream: &'a str) -> Option<OutputName<'a>> {
        let (source, template) = stream.rsplit_once('_')?;
        Some(OutputName { source, template })
    }

    /// The play name of `source`'s output by `template`.
    pub fn format(source: &str, template: &str) -> String {
        format!("{source}_{template}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_name_splits_at_the_last_underscore_and_reads_back() {
        let name = OutputName::parse("cam_x_hd").expect("an output name");
        assert_eq!((name.source, name.template), ("cam_x", "hd"));
        assert_eq!(OutputName::format(name.source, name.template), "cam_x_hd");
        assert_eq!(OutputName::parse("cam"), None);
    }

    const A: AccountId = AccountId(1);
    const B: AccountId = AccountId(2);

    fn rule(
        account: AccountId,
        kind: Kind,
        domain: &str,
        app: &str,
        stream: &str,
        id: i64,
    ) -> Rule {
        Rule {
            account,
            kind,
            domain: domain.into(),
            app: app.into(),
            stream: stream.into(),
            template: TemplateId(id),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn at<'a>(account: AccountId, domain: &'a str, app: &'a str, stream: &'a str) -> StreamRef<'a> {
        StreamRef {
            account,
            domain,
            app,
            stream,
        }
    }

    /// One row of the resolution table: the rules in force, the stream
    /// asked about, and the templates that must apply.
    fn check(rules: &[Rule], kind: Kind, stream: StreamRef<'_>, want: &[i64]) {
        let got: Vec<i64> = matching_rules(rules, kind, &stream)
            .iter()
            .map(|r| r.template.0)
            .collect();
        assert_eq!(got, want, "{kind:?} for {stream:?}");
    }

    #[test]
    fn the_most_specific_rule_wins_stream_over_app_over_domain() {
        use Kind::Record as R;
        let push = "push.example.com";
        let rules = vec![
            rule(A, R, push, "", "", 10),
            rule(A, R, push, "live", "", 20),
            rule(A, R, push, "live", "vip", 30),
            rule(A, R, push, "", "solo", 40),
            rule(A, R, "other.example.com", "live", "", 50),
        ];
        for (domain, app, stream, want) in [
            (push, "live", "vip", &[30][..]),
            (push, "live", "plain", &[20]),
            (push, "game", "vip", &[10]),
            (push, "game", "solo", &[40]),
            (push, "live", "solo", &[40]),
            ("PUSH.example.com", "other", "x", &[10]),
            ("other.example.com", "live", "vip", &[50]),
            ("other.example.com", "game", "vip", &[]),
            ("unknown.example.com", "live", "vip", &[]),
        ] {
            check(&rules, R, at(A, domain, app, stream), want);
        }
    }

    #[test]
    fn app_and_stream_names_match_exactly() {
        let p = "p.example.com";
        let rules = vec![rule(A, Kind::Snapshot, p, "Live", "Cam", 7)];
        for (app, stream, want) in [
            ("Live", "Cam", &[7][..]),
            ("live", "Cam", &[]),
            ("Live", "cam", &[]),
        ] {
            check(&rules, Kind::Snapshot, at(A, p, app, stream), want);
        }
    }

    #[test]
    fn families_and_accounts_do_not_mix() {
        let p = "p.example.com";
        let rules = vec![
            rule(A, Kind::Watermark, p, "", "", 1),
            rule(B, Kind::Callback, p, "", "", 2),
            rule(A, Kind::Callback, p, "live", "", 3),
        ];
        for (kind, account, app, want) in [
            (Kind::Watermark, A, "live", &[1][..]),
            (Kind::Watermark, B, "live", &[]),
            (Kind::Callback, A, "live", &[3]),
            (Kind::Callback, A, "game", &[]),
            (Kind::Callback, B, "game", &[2]),
            (Kind::Record, A, "live", &[]),
        ] {
            check(&rules, kind, at(account, p, app, "s"), want);
        }
    }

    #[test]
    fn transcoding_binds_every_template_of_the_winning_level() {
        use Kind::Transcode as T;
        let play = "play.example.com";
        let rules = vec![
            rule(A, T, play, "", "", 5),
            rule(A, T, play, "", "", 3),
            rule(A, T, play, "live", "", 9),
            rule(A, T, play, "live", "", 8),
        ];
        check(&rules, T, at(A, play, "live", "s"), &[8, 9]);
        check(&rules, T, at(A, play, "game", "s"), &[3, 5]);
    }

    fn template(id: i64, name: &str, spec: TemplateSpec) -> Template {
        Template {
            id: TemplateId(id),
            account: A,
            name: name.into(),
            description: String::new(),
            created_at: 0,
            updated_at: 0,
            spec,
        }
    }

    fn processing() -> Processing {
        let abr = TranscodeSpec {
            adaptive: true,
            children: vec![AdaptiveChild {
                id: TemplateId(4),
                name: "low".into(),
                ..AdaptiveChild::default()
            }],
            ..TranscodeSpec::default()
        };
        let mut p = Processing::default();
        for t in [
            template(1, "hd", TemplateSpec::Transcode(TranscodeSpec::default())),
            template(2, "sd", TemplateSpec::Transcode(TranscodeSpec::default())),
            template(3, "abr", TemplateSpec::Transcode(abr)),
            template(5, "logo", TemplateSpec::Watermark(WatermarkSpec::default())),
            template(6, "rec", TemplateSpec::Record(RecordSpec::default())),
        ] {
            p.templates.insert(t.id, t);
        }
        p.rules = vec![
            rule(A, Kind::Transcode, "play.example.com", "live", "", 1),
            rule(A, Kind::Transcode, "play.example.com", "live", "", 3),
            rule(A, Kind::Transcode, "play.example.com", "", "", 2),
            rule(A, Kind::Watermark, "push.example.com", "", "", 5),
            rule(A, Kind::Record, "push.example.com", "live", "", 6),
            // A rule whose template is of another family applies nothing.
            rule(A, Kind::Snapshot, "push.example.com", "", "", 6),
        ];
        p
    }

    #[test]
    fn pushed_streams_get_one_template_of_each_push_family() {
        let p = processing();
        let got = p.for_push(&at(A, "push.example.com", "live", "cam"));
        assert_eq!(got.watermark.map(|t| t.id.0), Some(5));
        assert_eq!(got.record.map(|t| t.id.0), Some(6));
        assert_eq!(got.snapshot, None);
        assert_eq!(got.callback, None);
        let other_app = p.for_push(&at(A, "push.example.com", "game", "cam"));
        assert_eq!(other_app.record, None);
        assert_eq!(
            p.for_push(&at(B, "push.example.com", "live", "cam")),
            PushProcessing::default()
        );
    }

    #[test]
    fn a_play_request_names_a_bound_template_by_suffix() {
        let p = processing();
        let ask = |stream| {
            p.transcode_request(&at(A, "play.example.com", "live", stream))
                .map(|(t, base)| (t.id.0, base))
        };
        assert_eq!(ask("cam_1_hd"), Some((1, "cam_1".to_owned())));
        assert_eq!(
            ask("cam_low"),
            Some((3, "cam".to_owned())),
            "adaptive child names"
        );
        assert_eq!(
            ask("cam_sd"),
            None,
            "sd is bound at the domain level, hd and abr win for app live"
        );
        assert_eq!(ask("cam"), None);
        assert_eq!(ask("cam_1"), None);
        let game = p.transcode_request(&at(A, "play.example.com", "game", "cam_sd"));
        assert_eq!(game.map(|(t, _)| t.id.0), Some(2));
    }

    #[test]
    fn kinds_round_trip_through_their_names_and_choose_their_domains() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Kind::parse("nope"), None);
        assert_eq!(Kind::Transcode.domain_kind(), DomainKind::Play);
        assert!(Kind::ALL[1..]
            .iter()
            .all(|k| k.domain_kind() == DomainKind::Push));
    }

    #[test]
    fn settings_survive_json_and_missing_fields_default() {
        let spec = TemplateSpec::Callback(CallbackSpec {
            key: "k".into(),
            urls: BTreeMap::from([(CallbackEvent::StreamBegin, "http://a/b".to_owned())]),
            exception_levels: vec![ExceptionLevel::Error],
        });
        let text = serde_json::to_string(&spec).expect("json");
        assert_eq!(
            serde_json::from_str::<TemplateSpec>(&text).expect("back"),
            spec
        );
        let old: TemplateSpec =
            serde_json::from_str(r#"{"snapshot":{"interval":10}}"#).expect("old row");
        assert!(
            matches!(old, TemplateSpec::Snapshot(s) if s.interval == 10 && s.cos_bucket.is_empty())
        );
    }

    #[test]
    fn buckets_are_those_of_enabled_formats_stored_to_object_storage_or_of_snapshots() {
        let out = |enabled, bucket: &str| RecordOutput {
            enabled,
            cos_bucket: bucket.into(),
            cos_region: "ap-guangzhou".into(),
            ..RecordOutput::default()
        };
        let mut r = RecordSpec {
            outputs: [
                (RecordFormat::Flv, out(true, "vids")),
                (RecordFormat::Mp4, out(true, "vids")),
                (RecordFormat::Hls, out(false, "other")),
                (RecordFormat::Aac, out(true, "")),
            ]
            .into_iter()
            .collect(),
            ..RecordSpec::default()
        };
        assert!(
            TemplateSpec::Record(r.clone()).buckets().is_empty(),
            "media library"
        );
        r.to_cos = true;
        assert_eq!(
            TemplateSpec::Record(r).buckets(),
            vec![("vids", "ap-guangzhou")]
        );
        let snap = SnapshotSpec {
            cos_bucket: "shots".into(),
            cos_region: "ap-beijing".into(),
            ..SnapshotSpec::default()
        };
        assert_eq!(
            TemplateSpec::Snapshot(snap).buckets(),
            vec![("shots", "ap-beijing")]
        );
        assert!(TemplateSpec::Snapshot(SnapshotSpec::default())
            .buckets()
            .is_empty());
    }
}
