//! Measuring a live push: bitrates and frame rates over a sliding window.
//!
//! Owns: arithmetic on counters the publisher task feeds. Must not: lock
//! anything but the caller's own meter.

use std::time::{Duration, Instant};

/// Length of one measuring window.
const WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    video_bytes: u64,
    audio_bytes: u64,
    video_frames: u64,
    audio_frames: u64,
}

/// Rates measured over the last complete window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Video bits per second.
    pub video_bps: u64,
    /// Audio bits per second.
    pub audio_bps: u64,
    /// Video frames per second.
    pub fps: f64,
    /// Audio frames per second.
    pub audio_fps: f64,
}

/// Counts frames and bytes; reports rates per window.
#[derive(Debug)]
pub struct Meter {
    start: Instant,
    current: Counts,
    last: Option<Rates>,
}

impl Meter {
    /// A meter starting now.
    pub fn new(now: Instant) -> Meter {
        Meter {
            start: now,
            current: Counts::default(),
            last: None,
        }
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= WINDOW {
            self.last = Some(rates(self.current, elapsed));
            self.current = Counts::default();
            self.start = now;
        }
    }

    /// Counts a video frame of `bytes`.
    pub fn video(&mut self, bytes: usize, now: Instant) {
        self.roll(now);
        self.current.video_bytes += bytes as u64;
        self.current.video_frames += 1;
    }

    /// Counts an audio frame of `bytes`.
    pub fn audio(&mut self, bytes: usize, now: Instant) {
        self.roll(now);
        self.current.audio_bytes += bytes as u64;
        self.current.audio_frames += 1;
    }

    /// The rates of the last complete window, if one has completed: a
    /// partial first window over-counts (it starts with a keyframe).
    pub fn settled(&self) -> Option<Rates> {
        self.last
    }

    /// The rates of the last complete window (or of the partial one
    /// before any window completed).
    pub fn rates(&self, now: Instant) -> Rates {
        match self.last {
            Some(r) if now.saturating_duration_since(self.start) < 2 * WINDOW => r,
            _ => rates(self.current, now.saturating_duration_since(self.start)),
        }
    }
}

fn rates(c: Counts, elapsed: Duration) -> Rates {
    let secs = elapsed.as_secs_f64().max(0.001);
    Rates {
        video_bps: (c.video_bytes as f64 * 8.0 / secs) as u64,
        audio_bps: (c.audio_bytes as f64 * 8.0 / secs) as u64,
        fps: c.video_frames as f64 / secs,
        audio_fps: c.audio_frames as f64 / secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_last_whole_window() {
        let t0 = Instant::now();
        let mut m = Meter::new(t0);
        // 25 fps of 5000-byte frames for two seconds = 1 Mbit/s.
        for i in 0..50 {
            m.video(5000, t0 + Duration::from_millis(i * 40));
        }
        m.audio(100, t0 + WINDOW);
        let r = m.rates(t0 + WINDOW + Duration::from_millis(10));
        assert!((r.fps - 25.0).abs() < 0.5, "{r:?}");
        assert!((990_000..=1_010_000).contains(&r.video_bps), "{r:?}");
    }
}
