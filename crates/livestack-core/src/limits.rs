//! How many connections livestack holds at once, in all and per client
//! address, across every listener (API, RTMP, HTTP, HTTPS).
//!
//! Owns: the counts and the permits that release them. Must not: accept
//! or close sockets (the accept loops do: a connection over a limit is
//! closed at once, before anything is read from it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The shared connection budget.
#[derive(Debug)]
pub struct ConnLimiter {
    max_total: usize,
    max_per_ip: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One accepted connection's share of the budget; given back on drop.
#[derive(Debug)]
pub struct ConnPermit {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

impl ConnLimiter {
    /// A budget of `max_total` connections, `max_per_ip` from one address
    /// (0 means no limit).
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter {
            max_total,
            max_per_ip,
            held: Mutex::new(Held::default()),
        })
    }

    /// A permit for a connection from `ip`, or `None` when a limit is
    /// reached.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ConnPermit> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if self.max_total > 0 && held.total >= self.max_total {
            return None;
        }
        let from_ip = held.per_ip.get(&ip).copied().unwrap_or(0);
        if self.max_per_ip > 0 && from_ip >= self.max_per_ip {
            return None;
        }
        held.total += 1;
        held.per_ip.insert(ip, from_ip + 1);
        Some(ConnPermit {
            limiter: Arc::clone(self),
            ip,
        })
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut held = self.limiter.held.lock().unwrap_or_else(|e| e.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A log line that may be written at most once per interval: says
/// whether it is due now and how many were left out since the last one.
#[derive(Debug, Default)]
pub struct Quieted {
    at: Option<std::time::Instant>,
    quiet: u64,
}

impl Quieted {
    /// `Some(left out)` when a line is due (none in the last `every`).
    pub fn due(&mut self, every: std::time::Duration) -> Option<u64> {
        let now = std::time::Instant::now();
        if self.at.is_some_and(|t| now.duration_since(t) < every) {
            self.quiet += 1;
            return None;
        }
        self.at = Some(now);
        Some(std::mem::take(&mut self.quiet))
    }
}

/// When an accept loop may warn again: at most one line of each kind
/// every [`AcceptWarnings::EVERY`], with the count of those left out, so
/// that a flood of refused connections or of `Too many open files` does
/// not flood the log as well. Every listener (API, RTMP, HTTP, HTTPS)
/// keeps one; each writes its own line when one is due.
#[derive(Debug, Default)]
pub struct AcceptWarnings {
    failed: Quieted,
    refused: Quieted,
}

impl AcceptWarnings {
    /// The shortest time between two lines of one kind.
    pub const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    /// An accept failed: `Some(left out)` when a line is due.
    pub fn failed(&mut self) -> Option<u64> {
        self.failed.due(Self::EVERY)
    }

    /// A connection was closed for the limits: `Some(left out)` when due.
    pub fn refused(&mut self) -> Option<u64> {
        self.refused.due(Self::EVERY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_stop_at_each_limit_and_come_back_on_drop() {
        let limiter = ConnLimiter::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let a1 = limiter.try_acquire(a).expect("first");
        let _a2 = limiter.try_acquire(a).expect("second");
        assert!(limiter.try_acquire(a).is_none(), "per address");
        let _b1 = limiter.try_acquire(b).expect("another address");
        assert!(limiter.try_acquire(b).is_none(), "in all");
        drop(a1);
        assert!(limiter.try_acquire(b).is_some(), "a permit came back");
        assert!(
            ConnLimiter::new(0, 0).try_acquire(a).is_some(),
            "0 is no limit"
        );
    }
}
