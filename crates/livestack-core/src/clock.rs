//! The one clock every part of livestack reads.
//!
//! Owns: wall time (Unix seconds and milliseconds, for signatures, task
//! windows, file names, callbacks) and monotonic time (for idle timers and
//! demand windows), from one source that a test can move. Must not: sleep
//! or wake anyone: tokio's timers run on their own time (tests that need
//! them to jump pause tokio's clock as well).
//!
//! The system clock is the default. A manual clock is the system clock
//! plus an offset that only moves forward when a test says so
//! ([`Clock::advance`], [`Clock::set_unix`]): media keeps flowing in real
//! time while the wall clock jumps to Beijing midnight, past a signature
//! window or past the end of a task, without anybody waiting for it.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A shared clock; cheap to clone, every clone sees the same time.
#[derive(Clone)]
pub struct Clock {
    /// Milliseconds added to the system clock (0 for the system clock;
    /// only a manual clock ever changes it).
    offset_ms: Arc<AtomicI64>,
    manual: bool,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock {
            offset_ms: Arc::new(AtomicI64::new(0)),
            manual: false,
        }
    }

    /// A clock that starts at the system time and moves forward by
    /// [`advance`](Self::advance) and [`set_unix`](Self::set_unix) as well.
    pub fn manual() -> Clock {
        Clock {
            offset_ms: Arc::new(AtomicI64::new(0)),
            manual: true,
        }
    }

    /// Whether this clock can be moved by hand.
    pub fn is_manual(&self) -> bool {
        self.manual
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(&self) -> i64 {
        system_unix_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Seconds since the Unix epoch.
    pub fn unix(&self) -> i64 {
        self.unix_ms().div_euclid(1000)
    }

    /// Monotonic time: never goes back, moves with the manual offset.
    pub fn instant(&self) -> Instant {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        let now = Instant::now();
        // The offset only grows, so adding it keeps the clock monotonic.
        now.checked_add(Duration::from_millis(offset.max(0) as u64))
            .unwrap_or(now)
    }

    /// Moves a manual clock forward by `by`. Panics on the system clock:
    /// moving it is a bug in the caller, never a client's doing.
    pub fn advance(&self, by: Duration) {
        assert!(self.manual, "only a manual clock can be advanced");
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Moves a manual clock forward to `unix` seconds (never back: a
    /// clock that went back would break every monotonic reader).
    pub fn set_unix(&self, unix: i64) {
        let want = unix.saturating_mul(1000) - self.unix_ms();
        if want > 0 {
            self.advance(Duration::from_millis(want as u64));
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clock")
            .field("manual", &self.manual)
            .field("offset_ms", &self.offset_ms.load(Ordering::Relaxed))
            .finish()
    }
}

fn system_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_jumps_forward_and_every_clone_sees_it() {
        let clock = Clock::manual();
        let copy = clock.clone();
        let before = copy.unix();
        let instant = copy.instant();
        clock.advance(Duration::from_secs(3600));
        assert!(copy.unix() >= before + 3600);
        assert!(copy.instant() >= instant + Duration::from_secs(3600));
    }

    #[test]
    fn set_unix_never_moves_the_clock_back() {
        let clock = Clock::manual();
        let now = clock.unix();
        clock.set_unix(now - 100);
        assert!(clock.unix() >= now);
        clock.set_unix(now + 86_400);
        assert!(clock.unix() >= now + 86_400);
    }

    #[test]
    #[should_panic(expected = "manual")]
    fn the_system_clock_cannot_be_moved() {
        Clock::system().advance(Duration::from_secs(1));
    }
}
