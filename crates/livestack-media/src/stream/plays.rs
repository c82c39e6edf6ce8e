//! Play statistics: what players did, by minute, stream, protocol and
//! client address, handed to the control plane in batches.
//!
//! Owns: the tallies of the plays now attached (bytes sent, read with one
//! atomic load per flush), the current minute's counts (requests, HTTP
//! answers, client addresses) and the flush that turns them into a
//! [`PlayStats`] report. Must not: write anything anywhere (the report
//! goes out as a `MediaEvent`), or cost the media path more than an
//! atomic add per write: a player's bytes are added where its write is
//! counted anyway, and the lock here is taken once per play (start, HLS
//! request, refusal) and once per flush.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use livestack_core::media::{ClientRow, PlayProtocol, PlayRow, PlayStats, StreamKey};
use livestack_core::AccountId;

/// A stream played over a protocol on a play domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PlayKey {
    pub(crate) account: AccountId,
    pub(crate) domain: String,
    pub(crate) app: String,
    pub(crate) stream: String,
    pub(crate) protocol: PlayProtocol,
}

impl PlayKey {
    /// `key` played over `protocol` on `domain`.
    pub(crate) fn new(key: &StreamKey, domain: &str, protocol: PlayProtocol) -> PlayKey {
        PlayKey {
            account: key.account,
            domain: domain.to_owned(),
            app: key.app.clone(),
            stream: key.stream.clone(),
            protocol,
        }
    }
}

/// One attached player's bytes.
#[derive(Debug)]
pub(crate) struct Tally {
    key: PlayKey,
    ip: IpAddr,
    bytes: AtomicU64,
    ended: AtomicBool,
}

impl Tally {
    /// Counts `n` bytes sent.
    pub(crate) fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// The player is gone: its last bytes are counted at the next flush.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Counts {
    bytes: u64,
    requests: u64,
    online: u64,
    codes: BTreeMap<u16, u64>,
}

#[derive(Debug, Default)]
struct ClientCounts {
    bytes: u64,
    requests: u64,
    failed: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Unix seconds of the minute being counted.
    minute: i64,
    streams: HashMap<PlayKey, Counts>,
    clients: HashMap<(AccountId, String, IpAddr), ClientCounts>,
    /// Attached players, and those gone since the last flush, with the
    /// bytes already reported of each.
    sessions: Vec<(Arc<Tally>, u64)>,
    /// HLS clients seen this minute, per stream: HLS's "online".
    hls_seen: HashSet<(PlayKey, IpAddr)>,
}

/// The play statistics of this node.
#[derive(Debug, Default)]
pub(crate) struct Plays {
    state: Mutex<State>,
}

impl Plays {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A player attached: counts the request (and, over HTTP, its 200)
    /// and returns the tally its writes add to.
    pub(crate) fn start(&self, key: PlayKey, ip: IpAddr) -> Arc<Tally> {
        let mut s = self.lock();
        let http = key.protocol == PlayProtocol::Flv;
        let counts = s.streams.entry(key.clone()).or_default();
        counts.requests += 1;
        if http {
            *counts.codes.entry(200).or_default() += 1;
        }
        let client = s
            .clients
            .entry((key.account, key.domain.clone(), ip))
            .or_default();
        client.requests += 1;
        let tally = Arc::new(Tally {
            key,
            ip,
            bytes: AtomicU64::new(0),
            ended: AtomicBool::new(false),
        });
        s.sessions.push((Arc::clone(&tally), 0));
        tally
    }

    /// An HLS request answered with `status` and `bytes` of body.
    pub(crate) fn hls(&self, key: PlayKey, ip: IpAddr, status: u16, bytes: u64) {
        let mut s = self.lock();
        let counts = s.streams.entry(key.clone()).or_default();
        counts.requests += 1;
        counts.bytes += bytes;
        *counts.codes.entry(status).or_default() += 1;
        let client = s
            .clients
            .entry((key.account, key.domain.clone(), ip))
            .or_default();
        client.requests += 1;
        client.bytes += bytes;
        if status >= 400 {
            client.failed += 1;
        }
        if status < 400 {
            s.hls_seen.insert((key, ip));
        }
    }

    /// A play over HTTP refused with `status` (403, 404).
    pub(crate) fn refused(&self, key: PlayKey, ip: IpAddr, status: u16) {
        let mut s = self.lock();
        let counts = s.streams.entry(key.clone()).or_default();
        counts.requests += 1;
        *counts.codes.entry(status).or_default() += 1;
        let client = s.clients.entry((key.account, key.domain, ip)).or_default();
        client.requests += 1;
        client.failed += 1;
    }

    /// What happened since the last flush, as of Unix second `now`: the
    /// attached players' new bytes and their number now. At a new minute
    /// the counting starts over; the report is of the minute it counted.
    /// `None` when there is nothing to say.
    pub(crate) fn flush(&self, now: i64) -> Option<PlayStats> {
        let mut s = self.lock();
        let minute = now - now.rem_euclid(60);
        if s.minute == 0 {
            s.minute = minute;
        }
        let State {
            streams,
            clients,
            sessions,
            hls_seen,
            ..
        } = &mut *s;
        sessions.retain_mut(|(tally, reported)| {
            let total = tally.bytes.load(Ordering::Relaxed);
            let delta = total.saturating_sub(*reported);
            *reported = total;
            let ended = tally.ended.load(Ordering::Relaxed);
            let counts = streams.entry(tally.key.clone()).or_default();
            counts.bytes += delta;
            if !ended {
                counts.online += 1;
            }
            if delta > 0 {
                clients
                    .entry((tally.key.account, tally.key.domain.clone(), tally.ip))
                    .or_default()
                    .bytes += delta;
            }
            !ended
        });
        for (key, _) in hls_seen.iter() {
            streams.entry(key.clone()).or_default().online += 1;
        }
        let report = PlayStats {
            minute: s.minute,
            streams: s
                .streams
                .drain()
                .map(|(k, c)| PlayRow {
                    account: k.account,
                    domain: k.domain,
                    app: k.app,
                    stream: k.stream,
                    protocol: k.protocol,
                    bytes: c.bytes,
                    requests: c.requests,
                    online: c.online,
                    codes: c.codes.into_iter().collect(),
                })
                .collect(),
            clients: s
                .clients
                .drain()
                .map(|((account, domain, ip), c)| ClientRow {
                    account,
                    domain,
                    ip: ip.to_string(),
                    bytes: c.bytes,
                    requests: c.requests,
                    failed: c.failed,
                })
                .collect(),
        };
        if minute != s.minute {
            s.minute = minute;
            s.hls_seen.clear();
        }
        (!report.streams.is_empty() || !report.clients.is_empty()).then_some(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(protocol: PlayProtocol) -> PlayKey {
        PlayKey {
            account: AccountId(1),
            domain: "play.example.com".into(),
            app: "live".into(),
            stream: "cam".into(),
            protocol,
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn players_bytes_and_numbers_are_reported_per_flush_and_the_minute_they_fall_in() {
        let plays = Plays::default();
        let a = plays.start(key(PlayProtocol::Rtmp), IP);
        let b = plays.start(key(PlayProtocol::Rtmp), IP);
        a.add(1000);
        b.add(500);
        let r = plays.flush(120).expect("report");
        assert_eq!(r.minute, 120);
        assert_eq!(r.streams.len(), 1);
        let row = &r.streams[0];
        assert_eq!((row.bytes, row.requests, row.online), (1500, 2, 2));
        assert_eq!(r.clients[0].requests, 2);
        // Only the new bytes next time; a player gone counts its last
        // bytes but is not online.
        a.add(10);
        a.end();
        let r = plays.flush(150).expect("report");
        let row = &r.streams[0];
        assert_eq!((row.bytes, row.requests, row.online), (10, 0, 1));
        // The next minute: counted under it.
        let r = plays.flush(185).expect("report");
        assert_eq!(r.minute, 120, "the last flush of a minute reports it");
        let r = plays.flush(190).expect("report");
        assert_eq!(r.minute, 180);
        assert_eq!(r.streams[0].online, 1);
    }

    #[test]
    fn hls_counts_requests_answers_and_clients_seen() {
        let plays = Plays::default();
        plays.hls(key(PlayProtocol::Hls), IP, 200, 300);
        plays.hls(key(PlayProtocol::Hls), IP, 200, 700);
        plays.refused(key(PlayProtocol::Hls), IP, 403);
        let r = plays.flush(60).expect("report");
        let row = &r.streams[0];
        assert_eq!((row.bytes, row.requests, row.online), (1000, 3, 1));
        assert_eq!(row.codes, vec![(200, 2), (403, 1)]);
        assert_eq!((r.clients[0].requests, r.clients[0].failed), (3, 1));
    }
}
