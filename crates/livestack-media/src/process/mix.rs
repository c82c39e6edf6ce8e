//! Mix jobs (`CreateCommonMixStream`): one supervised ffmpeg per mix
//! session, reading its live inputs from loopback and publishing the mix.
//!
//! Owns: which sessions run on this node ([`runs_here`]), building each
//! attempt's inputs and geometry from the streams live now, and starting
//! a session over when one of its inputs comes back. Must not: touch the
//! database or decide what a valid session is (the API does).
//!
//! An input that stops keeps its last picture on the canvas while the
//! mix runs (ffmpeg's `overlay` repeats it); when it is pushed again the
//! job starts over with it (a push session the running attempt did not
//! start with), a short glitch in the output. A background stream that is
//! gone when an attempt starts is replaced by black of its last size.
//! `OutputStreamType` 1 publishes the mix as a push like any other
//! (listed, processed, called back); type 0 publishes it as the internal
//! stream `<input>@mix`, which players of that input get instead (see
//! [`super::Processor::resolve_local`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use livestack_core::media::StreamKey;
use livestack_core::mix::{MixInput, MixSession, MixSource};
use livestack_core::rules::{TemplateId, TemplateSpec};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::ffmpeg::{self, MixGraph, MixPart, MixPlace};
use super::supervisor::{self, Ffmpeg, JobError, JobStatus};
use super::{Direction, Origin, Pass};
use crate::Inner;

/// Appended to an input's name for the mix that replaces it for players
/// (`OutputStreamType` 0); `@` is not allowed in pushed names.
pub(crate) const MIXED: &str = "@mix";

/// A running mix job.
pub(crate) struct Running {
    cancel: CancellationToken,
    /// The push session of each live input the current attempt started
    /// with; `None` before the first attempt.
    started: Arc<Mutex<Option<HashMap<String, u64>>>>,
}

/// Mix jobs by (session row id, generation).
pub(crate) type Jobs = Mutex<HashMap<(i64, i64), Running>>;

/// The key of a session's live input.
fn key(m: &MixSession, i: &MixInput) -> Option<StreamKey> {
    let (_, app) = i.stream()?;
    Some(StreamKey {
        account: m.account,
        app: app.to_owned(),
        stream: i.name.clone(),
    })
}

/// The push sessions of `m`'s live inputs pushed to this node now (edge
/// relays of other nodes' pushes are not inputs), by input name.
fn live_inputs(inner: &Inner, m: &MixSession) -> HashMap<String, u64> {
    m.layout
        .inputs
        .iter()
        .filter_map(|i| {
            let live = inner
                .live(&key(m, i)?)
                .filter(|l| !l.publisher.relay && !l.publisher.internal)?;
            Some((i.name.clone(), live.publisher.session))
        })
        .collect()
}

/// Whether this node runs `m`: on one node every session; in a cluster
/// the nodes where its live inputs are pushed (a mix reads its inputs
/// from this node's own streams, so one whose inputs are all elsewhere
/// does not run here).
fn runs_here(inner: &Inner, m: &MixSession) -> bool {
    inner.cluster.get().is_none() || !live_inputs(inner, m).is_empty()
}

/// Starts the mix jobs this node should run and cancels the others; a
/// job one of whose inputs was pushed again since it started starts over.
pub(crate) fn reconcile(inner: &Arc<Inner>) {
    let policy = inner.policy();
    let wanted: HashMap<(i64, i64), &MixSession> = policy
        .processing
        .mixes
        .iter()
        .filter(|m| runs_here(inner, m))
        .map(|m| ((m.id, m.generation), m))
        .collect();
    let mut jobs = inner
        .processor
        .mixes
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    jobs.retain(|k, r| {
        let returned = wanted.get(k).is_some_and(|m| {
            let started = r.started.lock().unwrap_or_else(|e| e.into_inner());
            started.as_ref().is_some_and(|s| {
                live_inputs(inner, m)
                    .iter()
                    .any(|(name, session)| s.get(name) != Some(session))
            })
        });
        let keep = wanted.contains_key(k) && !returned && !r.cancel.is_cancelled();
        if !keep {
            r.cancel.cancel();
        }
        keep
    });
    for (k, m) in wanted {
        if jobs.contains_key(&k) {
            continue;
        }
        let cancel = inner.shutdown.child_token();
        let started = Arc::new(Mutex::new(None));
        let job = Arc::new(MixJob {
            inner: Arc::clone(inner),
            session: m.clone(),
            cancel: cancel.clone(),
            started: Arc::clone(&started),
            sizes: Mutex::new(HashMap::new()),
        });
        let label = format!("mix {}", m.session_id);
        let counters = supervisor::Counters::of(&inner.metrics, crate::metrics::JobKind::mix);
        let status = Arc::new(Mutex::new(JobStatus::default()));
        let span = tracing::info_span!("job", job = %label);
        let c = cancel.clone();
        inner.tasks.spawn(
            async move {
                supervisor::supervise(label, status, c, counters, move || {
                    let j = Arc::clone(&job);
                    async move { j.attempt().await }
                })
                .await;
            }
            .instrument(span),
        );
        jobs.insert(k, Running { cancel, started });
    }
}

/// One mix session's context for its attempts.
struct MixJob {
    inner: Arc<Inner>,
    session: MixSession,
    cancel: CancellationToken,
    started: Arc<Mutex<Option<HashMap<String, u64>>>>,
    /// The last picture size seen of each live input, so a background
    /// that is gone keeps its size.
    sizes: Mutex<HashMap<String, (u32, u32)>>,
}

impl MixJob {
    async fn attempt(self: Arc<Self>) -> Result<(), JobError> {
        let m = &self.session;
        let l = &m.layout;
        let policy = self.inner.policy();
        let live = live_inputs(&self.inner, m);
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = Some(live.clone());
        if live.is_empty() {
            return Err(JobError::Work(
                "none of its live inputs is being pushed".into(),
            ));
        }
        // What each input is now: a live stream (its size and whether it
        // has sound), a picture file, or nothing (a stream not pushed).
        let picture = |i: &MixInput| match i.source {
            MixSource::Picture { watermark } => policy
                .processing
                .templates
                .get(&TemplateId(watermark))
                .filter(|t| t.account == m.account)
                .and_then(|t| match &t.spec {
                    TemplateSpec::Watermark(w) => Some(w.picture.clone()),
                    _ => None,
                }),
            _ => None,
        };
        let mut sound = HashMap::new();
        let sizes = {
            let mut sizes = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
            for i in &l.inputs {
                let Some(k) = key(m, i).filter(|_| live.contains_key(&i.name)) else {
                    continue;
                };
                if let Some(s) = self.inner.live(&k).map(|s| s.snapshot()) {
                    if s.width > 0 && s.height > 0 {
                        sizes.insert(i.name.clone(), (s.width, s.height));
                    }
                    sound.insert(i.name.clone(), !s.audio_codec.is_empty());
                }
            }
            sizes.clone()
        };
        let size = |i: &MixInput| match &i.source {
            MixSource::Stream { .. } => sizes.get(&i.name).copied(),
            MixSource::Picture { .. } => picture(i).map(|p| (p.width, p.height)),
            MixSource::Canvas { .. } => None,
        };
        let (canvas, placed) = l
            .place(&size)
            .map_err(|e| JobError::Work(format!("the layout cannot be placed: {e:?}")))?;
        // The inputs in layer order, each with its place if it has one.
        let mut parts = Vec::new();
        let mut places = Vec::new();
        let mut passes: Vec<Pass> = Vec::new();
        for i in &l.inputs {
            let rect = placed
                .iter()
                .find(|(p, _)| p.name == i.name)
                .map(|(_, r)| *r);
            let part = match &i.source {
                MixSource::Stream {
                    domain,
                    app,
                    audio,
                    video,
                } if live.contains_key(&i.name) => {
                    let pass = self
                        .inner
                        .processor
                        .grant(m.account, domain, app, &i.name, Direction::Read)
                        .ok_or_else(|| JobError::Work("the RTMP port is not open".into()))?;
                    let part = MixPart::Stream {
                        url: pass.url.clone(),
                        video: *video,
                        audio: *audio && sound.get(&i.name).copied().unwrap_or(false),
                    };
                    passes.push(pass);
                    Some(part)
                }
                // A background that is gone: black, so the others keep
                // their places.
                MixSource::Stream { .. } if i.layer == 1 => Some(MixPart::Canvas {
                    color: 0,
                    width: canvas.0,
                    height: canvas.1,
                }),
                MixSource::Stream { .. } => None,
                MixSource::Picture { .. } => picture(i).map(|p| MixPart::Picture {
                    path: policy
                        .processing
                        .picture_path(&p)
                        .to_string_lossy()
                        .into_owned(),
                    alpha: l.picture_alpha,
                }),
                MixSource::Canvas { color } => {
                    let r = rect.unwrap_or(livestack_core::mix::Rect {
                        x: 0,
                        y: 0,
                        width: canvas.0,
                        height: canvas.1,
                    });
                    Some(MixPart::Canvas {
                        color: *color,
                        width: r.width.max(2),
                        height: r.height.max(2),
                    })
                }
            };
            let Some(part) = part else { continue };
            let has_video = !matches!(part, MixPart::Stream { video: false, .. });
            parts.push(part);
            if let (Some(rect), true) = (rect, has_video) {
                places.push(MixPlace {
                    part: parts.len() - 1,
                    rect,
                    // A stand-in for a missing background is cut already.
                    crop: i.crop.filter(|_| live.contains_key(&i.name)),
                });
            }
        }
        if places.is_empty() {
            return Err(JobError::Work("nothing of the layout has a picture".into()));
        }
        let o = &l.output;
        let out = if o.replaces_input {
            self.inner.processor.grant(
                m.account,
                &o.domain,
                &o.app,
                &format!("{}{MIXED}", o.stream),
                Direction::Write,
            )
        } else {
            self.inner.processor.grant_task(
                m.account,
                &o.domain,
                &o.app,
                &o.stream,
                Origin::Mix(m.id),
            )
        }
        .ok_or_else(|| JobError::Work("the RTMP port is not open".into()))?;
        let graph = MixGraph {
            parts,
            canvas,
            places,
            crop_center: l.crop_center,
            output: o.clone(),
        };
        let args = ffmpeg::mix(&graph, &out.url);
        let label = format!("mix {}", m.session_id);
        let mut p = Ffmpeg::spawn(&self.inner.config.ffmpeg, &args, &label)?;
        let result = p.run_until(&self.cancel).await;
        drop((out, passes));
        result
    }
}
