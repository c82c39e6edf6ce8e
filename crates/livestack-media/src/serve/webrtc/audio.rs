//! AAC to Opus for WebRTC players: browsers decode Opus, RTMP publishers
//! send AAC.
//!
//! Owns: decoding AAC-LC access units (symphonia, pure Rust), resampling
//! to 48 kHz stereo, encoding 20 ms Opus frames (libopus) and timing them
//! on the 48 kHz RTP clock from the publisher's timestamps. Must not:
//! know about sessions or sockets; one transcoder serves every WebRTC
//! player of a stream (see [`super::feed`]).
//!
//! In-process rather than an ffmpeg job per stream: a 20 ms frame costs
//! tens of microseconds of decode and encode, less than the pipes and the
//! muxing of a child process would, and it starts with the first player
//! instead of a process start later.

use bytes::Bytes;
use symphonia_core::audio::SampleBuffer;
use symphonia_core::codecs::{CodecParameters, Decoder as _, DecoderOptions, CODEC_TYPE_AAC};
use symphonia_core::formats::Packet;

/// Opus's clock and the rate everything is resampled to.
pub(crate) const OPUS_RATE: u32 = 48_000;
/// Samples per channel in one 20 ms Opus frame.
const FRAME: usize = 960;
/// A publisher timestamp this far from where the audio should be (ms)
/// restarts the timeline instead of stretching it.
const RESYNC_MS: i64 = 250;

/// Why a stream's audio cannot be transcoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AudioError {
    #[error("AAC decoder: {0}")]
    Decoder(#[from] symphonia_core::errors::Error),
    #[error("Opus encoder: {0}")]
    Encoder(#[from] opus::Error),
}

/// One stream's AAC → Opus transcoder.
pub(crate) struct AacToOpus {
    decoder: symphonia_codec_aac::AacDecoder,
    encoder: opus::Encoder,
    resampler: Resampler,
    /// Interleaved stereo samples at 48 kHz not yet encoded.
    pending: Vec<f32>,
    /// RTP time (48 kHz) of the first sample of `pending`.
    next_rtp: Option<u64>,
    /// Publisher time (ms) where `pending` would end if it kept pace.
    expected_ms: Option<i64>,
    out: Vec<u8>,
}

impl AacToOpus {
    /// A transcoder for the stream whose AAC sequence header carries
    /// `audio_specific_config`.
    pub(crate) fn new(audio_specific_config: &[u8]) -> Result<AacToOpus, AudioError> {
        let mut params = CodecParameters::new();
        params
            .for_codec(CODEC_TYPE_AAC)
            .with_extra_data(audio_specific_config.to_vec().into_boxed_slice());
        let decoder =
            symphonia_codec_aac::AacDecoder::try_new(&params, &DecoderOptions::default())?;
        let mut encoder =
            opus::Encoder::new(OPUS_RATE, opus::Channels::Stereo, opus::Application::Audio)?;
        encoder.set_bitrate(opus::Bitrate::Bits(96_000))?;
        Ok(AacToOpus {
            decoder,
            encoder,
            // Its input rate is the decoder's, taken from each decoded unit.
            resampler: Resampler::new(OPUS_RATE),
            pending: Vec::with_capacity(4 * FRAME),
            next_rtp: None,
            expected_ms: None,
            out: vec![0; 4000],
        })
    }

    /// Decodes one raw AAC access unit stamped `timestamp_ms` and hands
    /// every whole Opus frame it completes to `emit` with its RTP time
    /// (48 kHz). A unit that does not decode is skipped (its time passes
    /// in silence at the next resync).
    pub(crate) fn push(
        &mut self,
        raw: &[u8],
        timestamp_ms: u32,
        mut emit: impl FnMut(u64, Bytes),
    ) -> Result<(), AudioError> {
        let ts = i64::from(timestamp_ms);
        let in_sync = self
            .expected_ms
            .is_some_and(|expected| (ts - expected).abs() <= RESYNC_MS);
        if !in_sync {
            self.pending.clear();
            self.next_rtp = Some(u64::try_from(ts).unwrap_or(0) * u64::from(OPUS_RATE / 1000));
            self.resampler.reset();
        }
        let packet = Packet::new_from_slice(0, 0, 0, raw);
        let decoded = match self.decoder.decode(&packet) {
            Ok(buffer) => buffer,
            Err(symphonia_core::errors::Error::DecodeError(e)) => {
                tracing::debug!("AAC unit skipped: {e}");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let spec = *decoded.spec();
        let frames = decoded.frames();
        let mut samples = SampleBuffer::<f32>::new(frames as u64, spec);
        samples.copy_interleaved_ref(decoded);
        let channels = spec.channels.count().max(1);
        self.resampler.rate = spec.rate;
        self.resampler
            .push(samples.samples(), channels, &mut self.pending);
        let duration_ms = (frames as i64 * 1000) / i64::from(spec.rate.max(1));
        self.expected_ms = Some(ts + duration_ms);
        let mut used = 0;
        while self.pending.len() - used >= 2 * FRAME {
            let frame = &self.pending[used..used + 2 * FRAME];
            let len = self.encoder.encode_float(frame, &mut self.out)?;
            let rtp = self.next_rtp.unwrap_or(0);
            emit(rtp, Bytes::copy_from_slice(&self.out[..len]));
            self.next_rtp = Some(rtp + FRAME as u64);
            used += 2 * FRAME;
        }
        self.pending.drain(..used);
        Ok(())
    }
}

/// Linear-interpolation resampler to 48 kHz stereo. Plain, but AAC's own
/// low-pass keeps the aliasing it allows out of the audible band for the
/// usual 44.1 kHz sources; 48 kHz sources pass through untouched.
struct Resampler {
    rate: u32,
    /// Position of the next output sample, in input samples, relative to
    /// the first sample of the next input chunk (may be negative: between
    /// the previous chunk's last sample and this one's first).
    pos: f64,
    /// The last input frame (stereo) of the previous chunk.
    last: Option<[f32; 2]>,
}

impl Resampler {
    fn new(rate: u32) -> Resampler {
        Resampler {
            rate,
            pos: 0.0,
            last: None,
        }
    }

    fn reset(&mut self) {
        self.pos = 0.0;
        self.last = None;
    }

    /// Appends `input` (interleaved, `channels` per frame) to `out` as
    /// interleaved stereo at 48 kHz.
    fn push(&mut self, input: &[f32], channels: usize, out: &mut Vec<f32>) {
        let stereo = |i: usize| -> [f32; 2] {
            let l = input[i * channels];
            let r = if channels > 1 {
                input[i * channels + 1]
            } else {
                l
            };
            [l, r]
        };
        let frames = input.len() / channels;
        if frames == 0 {
            return;
        }
        if self.rate == OPUS_RATE {
            for i in 0..frames {
                out.extend_from_slice(&stereo(i));
            }
            return;
        }
        let step = f64::from(self.rate.max(1)) / f64::from(OPUS_RATE);
        loop {
            // Interpolate between sample floor(pos) and the next; index -1
            // is the previous chunk's last frame.
            let base = self.pos.floor();
            let frac = (self.pos - base) as f32;
            let i = base as i64;
            if i + 1 >= frames as i64 {
                break;
            }
            let a = if i < 0 {
                self.last.unwrap_or_else(|| stereo(0))
            } else {
                stereo(i as usize)
            };
            let b = stereo((i + 1) as usize);
            out.push(a[0] + (b[0] - a[0]) * frac);
            out.push(a[1] + (b[1] - a[1]) * frac);
            self.pos += step;
        }
        self.pos -= frames as f64;
        self.last = Some(stereo(frames - 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_44100_to_48000_keeps_the_duration() {
        let mut r = Resampler::new(44_100);
        let mut out = Vec::new();
        let input = vec![0.25f32; 44_100];
        for chunk in input.chunks(1024) {
            r.push(chunk, 1, &mut out);
        }
        let frames = out.len() / 2;
        assert!((47_990..=48_000).contains(&frames), "{frames} frames");
        assert!(out.iter().all(|s| (s - 0.25).abs() < 1e-6));
    }

    #[test]
    fn resampling_at_48000_is_a_copy_to_stereo() {
        let mut r = Resampler::new(48_000);
        let mut out = Vec::new();
        r.push(&[0.1, 0.2, 0.3], 1, &mut out);
        assert_eq!(out, vec![0.1, 0.1, 0.2, 0.2, 0.3, 0.3]);
    }
}

#[cfg(test)]
mod level_tests {
    use super::*;

    /// Raw AAC-LC units and their AudioSpecificConfig, from Debian's
    /// ffmpeg encoding `seconds` of a 440 Hz sine (amplitude 1/8) at `rate`.
    fn aac_sine(rate: u32, channels: u32) -> (Vec<u8>, Vec<Vec<u8>>) {
        let out = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:sample_rate={rate}:duration=2"))
            .args([
                "-ac",
                &channels.to_string(),
                "-c:a",
                "aac",
                "-b:a",
                "64k",
                "-f",
                "adts",
                "-",
            ])
            .output()
            .expect("ffmpeg");
        let data = out.stdout;
        let mut units = Vec::new();
        let mut pos = 0;
        let mut asc = Vec::new();
        while pos + 7 <= data.len() {
            let h = &data[pos..];
            let len =
                (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
            let protection_absent = h[1] & 1 == 1;
            let header = if protection_absent { 7 } else { 9 };
            if asc.is_empty() {
                let object = ((h[2] >> 6) & 3) + 1;
                let index = (h[2] >> 2) & 0xF;
                let chans = ((h[2] & 1) << 2) | (h[3] >> 6);
                asc = vec![
                    (object << 3) | (index >> 1),
                    ((index & 1) << 7) | (chans << 3),
                ];
            }
            units.push(data[pos + header..pos + len].to_vec());
            pos += len;
        }
        (asc, units)
    }

    fn level(rate: u32, channels: u32) -> (f64, i16) {
        let (asc, units) = aac_sine(rate, channels);
        let mut t = AacToOpus::new(&asc).expect("transcoder");
        let mut decoder = opus::Decoder::new(OPUS_RATE, opus::Channels::Stereo).expect("decoder");
        let mut pcm = vec![0i16; 2 * 5760];
        let mut samples = Vec::new();
        let ms_per_unit = 1_024_000 / rate;
        for (i, unit) in units.iter().enumerate() {
            t.push(unit, i as u32 * ms_per_unit, |_, packet| {
                let n = decoder
                    .decode(&packet, &mut pcm, false)
                    .expect("opus decode");
                samples.extend_from_slice(&pcm[..2 * n]);
            })
            .expect("push");
        }
        // Skip the codecs' start-up.
        let steady = &samples[samples.len() / 4..];
        let rms = (steady.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / steady.len() as f64)
            .sqrt();
        (
            rms,
            steady.iter().map(|s| s.saturating_abs()).max().unwrap_or(0),
        )
    }

    #[test]
    fn a_sine_keeps_its_level_through_aac_and_opus() {
        // Amplitude 1/8 of full scale: peak 4096, RMS 2896 in mono; ffmpeg
        // upmixes to stereo at -3 dB (peak 2896, RMS 2048).
        for (rate, channels, want_rms, want_peak) in [
            (44_100, 1, 2896.0, 4096.0),
            (48_000, 1, 2896.0, 4096.0),
            (44_100, 2, 2048.0, 2896.0),
            (48_000, 2, 2048.0, 2896.0),
        ] {
            let (rms, peak) = level(rate, channels);
            assert!(
                (rms / want_rms - 1.0).abs() < 0.1,
                "{rate} Hz x{channels}: RMS {rms}"
            );
            let peak = f64::from(peak);
            assert!(
                (peak / want_peak - 1.0).abs() < 0.15,
                "{rate} Hz x{channels}: peak {peak}"
            );
        }
    }
}
