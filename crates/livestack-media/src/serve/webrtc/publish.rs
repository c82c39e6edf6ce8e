//! One WHIP publisher: a str0m `Rtc` receiving H.264 and Opus, turned
//! into an ordinary push.
//!
//! Owns: the publisher's ICE-lite/DTLS/SRTP state, asking it for a
//! keyframe until one comes, H.264 access units to FLV frames
//! ([`FlvVideoWriter`]), Opus to AAC for the RTMP/FLV/HLS players (as
//! Tencent does: decoded here, encoded by one supervised ffmpeg per
//! publisher, [`AacEncoder`]), one timeline for both tracks (each from its
//! first packet's arrival), and the push's life through [`Push`] like
//! every other protocol. Must not: decide who may push (`Push::start`
//! did, before the session exists).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use livestack_core::media::EndReason;
use livestack_formats::annexb::FlvVideoWriter;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::session::Datagram;
use crate::serve::ingest::Push;
use crate::stream::hub::FrameKind;
use crate::Inner;

/// A publisher that has not completed ICE and DTLS by then is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a keyframe is asked for until one arrives.
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);
/// Opus: 48 kHz, stereo as WebRTC negotiates it.
const RATE: u64 = 48_000;
/// How long video waits for the audio's first AAC frame, so the push
/// starts with both tracks (HLS decides its tracks at the start).
const AUDIO_WAIT: Duration = Duration::from_secs(2);
/// A gap in the audio longer than this (5 s) is not filled with silence:
/// the audio timeline restarts.
const MAX_FILL: u64 = 5 * RATE;

pub(crate) struct Publishing {
    pub(crate) rtc: Rtc,
    pub(crate) sender: super::udp::Sender,
    pub(crate) local: SocketAddr,
    pub(crate) datagrams: mpsc::Receiver<Datagram>,
    pub(crate) cancel: CancellationToken,
    pub(crate) push: Push,
}

/// One track's clock: RTP time at its first packet and when that came.
struct TrackClock {
    rtp: u64,
    at: Instant,
}

impl Publishing {
    /// Runs the push until it ends; ends the push with the reason.
    pub(crate) async fn run(mut self, inner: Arc<Inner>) {
        let reason = self.drive(&inner).await;
        tracing::info!("WHIP push ended: {}", reason.describe());
        self.push.finish(&inner, reason);
    }

    async fn drive(&mut self, inner: &Arc<Inner>) -> EndReason {
        let mut connected = false;
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        let mut video_mid: Option<Mid> = None;
        let mut video = FlvVideoWriter::default();
        let mut got_keyframe = false;
        let mut next_keyframe_ask = Instant::now();
        let mut start: Option<Instant> = None;
        let (mut video_clock, mut audio_clock) = (None::<TrackClock>, None::<TrackClock>);
        let mut audio = match AacEncoder::start(inner) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!("WHIP audio is dropped: cannot start its AAC encoder: {e}");
                None
            }
        };
        let mut opus = opus::Decoder::new(RATE as u32, opus::Channels::Stereo).ok();
        let mut pcm = vec![0i16; 2 * 5760];
        let mut last_media = tokio::time::Instant::now();
        // Video held until the audio's first frame (or AUDIO_WAIT).
        let mut held: Vec<(u32, Bytes)> = Vec::new();
        let mut audio_started = audio.is_none();
        let mut first_video: Option<Instant> = None;
        let mut outbox = super::udp::Outbox::new(self.sender.clone());
        loop {
            let timeout = loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Transmit(t)) => {
                        outbox.push(t);
                    }
                    Ok(Output::Event(event)) => match event {
                        Event::Connected => connected = true,
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            return EndReason::ClientClosed;
                        }
                        Event::MediaAdded(added) if added.kind == MediaKind::Video => {
                            video_mid = Some(added.mid);
                        }
                        Event::MediaData(data) => {
                            last_media = tokio::time::Instant::now();
                            let start = *start.get_or_insert(data.network_time);
                            let is_video = data.params.spec().codec == Codec::H264;
                            let clock = if is_video {
                                &mut video_clock
                            } else {
                                &mut audio_clock
                            };
                            let Some(ms) = timeline(clock, &data, start) else {
                                continue;
                            };
                            if is_video {
                                let waited = first_video.get_or_insert_with(Instant::now).elapsed();
                                let hold = !audio_started && waited < AUDIO_WAIT;
                                if !hold && !held.is_empty() {
                                    for (ts, body) in held.drain(..) {
                                        self.push.frame(inner, FrameKind::Video, ts, body);
                                    }
                                }
                                let written = video.access_unit(&data.data, false, ms, 0, |f| {
                                    got_keyframe |= f.body.first().is_some_and(|b| b >> 4 == 1);
                                    if hold {
                                        held.push((f.timestamp, f.body));
                                    } else {
                                        self.push.frame(
                                            inner,
                                            FrameKind::Video,
                                            f.timestamp,
                                            f.body,
                                        );
                                    }
                                });
                                tracing::trace!(?written, ms, "video unit");
                            } else if data.params.spec().codec == Codec::Opus {
                                if let (Some(dec), Some(enc)) = (&mut opus, &mut audio) {
                                    let at = data
                                        .time
                                        .rebase(str0m::media::Frequency::FORTY_EIGHT_KHZ)
                                        .numer();
                                    let Ok(samples) = dec.decode(&data.data, &mut pcm, false)
                                    else {
                                        continue;
                                    };
                                    enc.push(at, ms, &pcm[..2 * samples]);
                                }
                            }
                            self.push.tick(inner);
                        }
                        _ => {}
                    },
                    Err(e) => {
                        tracing::debug!("WHIP session failed: {e}");
                        return EndReason::ProtocolError;
                    }
                }
            };
            if !self.rtc.is_alive() {
                return EndReason::ClientClosed;
            }
            // Until the first keyframe: ask for one (PLI), once a second.
            if connected && !got_keyframe && Instant::now() >= next_keyframe_ask {
                if let Some(mut writer) = video_mid.and_then(|mid| self.rtc.writer(mid)) {
                    let _ = writer.request_keyframe(None, KeyframeRequestKind::Pli);
                }
                next_keyframe_ask = Instant::now() + KEYFRAME_RETRY;
            }
            // The next keyframe request wakes the loop only while one is
            // owed; otherwise a past instant here would spin it.
            let wake = if connected && !got_keyframe {
                timeout.min(next_keyframe_ask)
            } else {
                timeout
            };
            outbox.flush().await;
            let wait = tokio::time::Instant::from_std(wake);
            let next_due = self.push.next_due();
            let aac = async {
                match &mut audio {
                    Some(a) => a.out.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.cancel.cancelled() => return EndReason::ClientClosed,
                () = self.push.live.cancelled() => {
                    return self.push.live.end_reason().unwrap_or(EndReason::Shutdown);
                }
                () = tokio::time::sleep_until(deadline), if !connected => return EndReason::ProtocolError,
                () = tokio::time::sleep_until(last_media + inner.config.idle_timeout), if connected => {
                    return EndReason::Idle;
                }
                frame = aac => match frame {
                    Some((ms, body)) => {
                        self.push.frame(inner, FrameKind::Audio, ms, body);
                        if !audio_started {
                            audio_started = true;
                            for (ts, body) in held.drain(..) {
                                self.push.frame(inner, FrameKind::Video, ts, body);
                            }
                        }
                    }
                    None => {
                        tracing::warn!("WHIP audio stopped: its AAC encoder ended");
                        audio = None;
                    }
                },
                d = self.datagrams.recv() => {
                    let Some(d) = d else { return EndReason::ClientClosed };
                    if d.feed(&mut self.rtc, self.local, &mut outbox).is_err() {
                        return EndReason::ProtocolError;
                    }
                }
                () = async { match next_due { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                    self.push.tick(inner);
                }
                () = tokio::time::sleep_until(wait) => {
                    if self.rtc.handle_input(Input::Timeout(Instant::now())).is_err() {
                        return EndReason::ProtocolError;
                    }
                }
            }
        }
    }
}

/// Where `data` falls on the push's millisecond timeline: its track's
/// first packet at its arrival since the push's first, then its RTP time.
fn timeline(clock: &mut Option<TrackClock>, data: &MediaData, start: Instant) -> Option<u32> {
    let rate = u64::from(data.time.denom().max(1));
    let rtp = data.time.numer();
    let c = clock.get_or_insert(TrackClock {
        rtp,
        at: data.network_time,
    });
    let offset = c.at.saturating_duration_since(start).as_millis() as u64;
    let since = rtp.checked_sub(c.rtp)?;
    u32::try_from(offset + since * 1000 / rate).ok()
}

/// Opus's PCM to AAC through one ffmpeg per publisher (no AAC encoder is
/// in Rust). Its stdin is fed by a writer task, its ADTS output parsed by
/// a reader task; both end with the process, which ends when this is
/// dropped (stdin closed, and killed on drop).
struct AacEncoder {
    /// PCM for the writer task (s16le, 48 kHz stereo).
    pcm: mpsc::Sender<Vec<u8>>,
    /// FLV AAC bodies (sequence header first) with their timestamps.
    out: mpsc::Receiver<(u32, Bytes)>,
    _child: tokio::process::Child,
    /// Samples (per channel) written so far, and the RTP time (48 kHz)
    /// of the first (its push time is `origin_ms`).
    written: u64,
    origin: Option<u64>,
    /// Shared with the reader: where the AAC timeline starts.
    origin_ms: Arc<std::sync::atomic::AtomicU32>,
}

impl AacEncoder {
    fn start(inner: &Inner) -> std::io::Result<AacEncoder> {
        let mut child = tokio::process::Command::new(&inner.config.ffmpeg)
            .args(["-hide_banner", "-loglevel", "error", "-nostats"])
            .args(["-f", "s16le", "-ar", "48000", "-ac", "2", "-i", "pipe:0"])
            // Each frame written as it is made, not in 32 KiB blocks.
            .args([
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                "-flush_packets",
                "1",
                "-f",
                "adts",
                "pipe:1",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (pcm_tx, mut pcm_rx) = mpsc::channel::<Vec<u8>>(256);
        let (out_tx, out_rx) = mpsc::channel(256);
        let origin_ms = Arc::new(std::sync::atomic::AtomicU32::new(0));
        inner.tasks.spawn(async move {
            while let Some(chunk) = pcm_rx.recv().await {
                if stdin.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let origin = Arc::clone(&origin_ms);
        inner.tasks.spawn(async move {
            let mut buf = BytesMut::with_capacity(8192);
            let mut frames: u64 = 0;
            let mut header_sent = false;
            loop {
                match stdout.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // ffmpeg's ADTS is aligned; resynchronise all the same.
                while buf.len() >= 2 && !(buf[0] == 0xFF && buf[1] & 0xF0 == 0xF0) {
                    let _ = buf.split_to(1);
                }
                while let Some((asc, raw, len)) = adts_frame(&buf) {
                    let base = origin.load(std::sync::atomic::Ordering::Relaxed);
                    let ms = base + (frames * 1024 * 1000 / RATE) as u32;
                    if !header_sent {
                        header_sent = true;
                        let mut body = vec![0xAF, 0x00];
                        body.extend_from_slice(&asc);
                        if out_tx.send((ms, Bytes::from(body))).await.is_err() {
                            return;
                        }
                    }
                    let mut body = Vec::with_capacity(2 + raw.len());
                    body.extend_from_slice(&[0xAF, 0x01]);
                    body.extend_from_slice(raw);
                    let _ = buf.split_to(len);
                    frames += 1;
                    if out_tx.send((ms, Bytes::from(body))).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(AacEncoder {
            pcm: pcm_tx,
            out: out_rx,
            _child: child,
            written: 0,
            origin: None,
            origin_ms,
        })
    }

    /// Feeds one decoded Opus frame (interleaved stereo) whose first
    /// sample is at RTP time `rtp` (48 kHz) and push time `ms`; a gap
    /// before it (silence suppression, loss) is filled with silence so
    /// the AAC timeline stays on the video's.
    fn push(&mut self, rtp: u64, ms: u32, samples: &[i16]) {
        let origin_rtp = *self.origin.get_or_insert_with(|| {
            self.origin_ms
                .store(ms, std::sync::atomic::Ordering::Relaxed);
            rtp
        });
        let Some(position) = rtp.checked_sub(origin_rtp) else {
            return;
        };
        if position + 960 < self.written {
            return; // Late or repeated.
        }
        let gap = position.saturating_sub(self.written);
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        if gap > 0 && gap <= MAX_FILL {
            bytes.resize(gap as usize * 4, 0);
            self.written += gap;
        }
        for s in samples {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        self.written += samples.len() as u64 / 2;
        if self.pcm.try_send(bytes).is_err() {
            tracing::debug!("the AAC encoder is behind: audio dropped");
        }
    }
}

/// The first whole ADTS frame of `buf`: its AudioSpecificConfig, raw
/// data and whole length.
fn adts_frame(buf: &[u8]) -> Option<([u8; 2], &[u8], usize)> {
    if buf.len() < 7 || buf[0] != 0xFF || buf[1] & 0xF0 != 0xF0 {
        return None;
    }
    let len =
        (usize::from(buf[3] & 3) << 11) | (usize::from(buf[4]) << 3) | usize::from(buf[5] >> 5);
    let header = if buf[1] & 1 == 1 { 7 } else { 9 };
    if len < header || buf.len() < len {
        return None;
    }
    let object = ((buf[2] >> 6) & 3) + 1;
    let index = (buf[2] >> 2) & 0xF;
    let channels = ((buf[2] & 1) << 2) | (buf[3] >> 6);
    let asc = [
        (object << 3) | (index >> 1),
        ((index & 1) << 7) | (channels << 3),
    ];
    Some((asc, &buf[header..len], len))
}
