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
    /// Unix ms the play started, and when (monotonic), for its access
    /// log line.
    started_ms: i64,
    started: std::time::Instant,
    /// Milliseconds it lasted, once it ended.
    lasted_ms: AtomicU64,
}

impl Tally {
    /// Counts `n` bytes sent.
    pub(crate) fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// The player is gone: its last bytes are counted at the next flush.
    pub(crate) fn end(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.lasted_ms.store(ms, Ordering::Relaxed);
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

/// One line of the access logs, for the hourly file of its play domain
/// and service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessLine {
    /// Unix ms the play or request ended.
    pub(crate) at_ms: i64,
    /// The play domain.
    pub(crate) domain: String,
    /// A WebRTC play (CSS's 快直播, `LEB`): its own files.
    pub(crate) leb: bool,
    /// The line, without its newline.
    pub(crate) text: String,
}

/// Access lines held before a flush writes them; past this many, new ones
/// are dropped (and counted) rather than holding memory without bound.
const MAX_PENDING_LINES: usize = 200_000;

/// `<time> <client> <domain> <protocol> <app>/<stream> <status> <bytes> <ms>`
/// (time as `yyyy-mm-dd HH:MM:SS` Beijing time; status `-` for RTMP and
/// WebRTC, which have none).
fn access_text(
    at_ms: i64,
    key: &PlayKey,
    ip: IpAddr,
    status: Option<u16>,
    bytes: u64,
    ms: u64,
) -> String {
    let t = livestack_core::naming::CivilTime::from_unix_ms(
        at_ms,
        livestack_core::naming::NamingZone::Utc8,
    );
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {ip} {} {} {}/{} {} {bytes} {ms}",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        key.domain,
        key.protocol.as_str(),
        key.app,
        key.stream,
        status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
    )
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
    /// Bytes relay tasks pushed out, by account.
    delivered: HashMap<AccountId, u64>,
    /// Access log lines not written yet.
    lines: Vec<AccessLine>,
    /// Lines dropped since the last flush (over [`MAX_PENDING_LINES`]).
    dropped: u64,
}

impl State {
    fn log(
        &mut self,
        at_ms: i64,
        key: &PlayKey,
        ip: IpAddr,
        status: Option<u16>,
        bytes: u64,
        ms: u64,
    ) {
        if self.lines.len() >= MAX_PENDING_LINES {
            self.dropped += 1;
            return;
        }
        self.lines.push(AccessLine {
            at_ms,
            domain: key.domain.clone(),
            leb: key.protocol == PlayProtocol::Webrtc,
            text: access_text(at_ms, key, ip, status, bytes, ms),
        });
    }
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
    pub(crate) fn start(&self, key: PlayKey, ip: IpAddr, now_ms: i64) -> Arc<Tally> {
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
            started_ms: now_ms,
            started: std::time::Instant::now(),
            lasted_ms: AtomicU64::new(0),
        });
        s.sessions.push((Arc::clone(&tally), 0));
        tally
    }

    /// An HLS request answered with `status` and `bytes` of body at `now_ms`.
    pub(crate) fn hls(&self, key: PlayKey, ip: IpAddr, status: u16, bytes: u64, now_ms: i64) {
        let mut s = self.lock();
        s.log(now_ms, &key, ip, Some(status), bytes, 0);
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

    /// A play over HTTP refused with `status` (403, 404) at `now_ms`.
    pub(crate) fn refused(&self, key: PlayKey, ip: IpAddr, status: u16, now_ms: i64) {
        let mut s = self.lock();
        s.log(now_ms, &key, ip, Some(status), 0, 0);
        let counts = s.streams.entry(key.clone()).or_default();
        counts.requests += 1;
        *counts.codes.entry(status).or_default() += 1;
        let client = s.clients.entry((key.account, key.domain, ip)).or_default();
        client.requests += 1;
        client.failed += 1;
    }

    /// `bytes` more pushed out by a relay task of `account`.
    pub(crate) fn delivered(&self, account: AccountId, bytes: u64) {
        if bytes > 0 {
            *self.lock().delivered.entry(account).or_default() += bytes;
        }
    }

    /// What happened since the last flush, as of Unix second `now`: the
    /// attached players' new bytes and their number now. At a new minute
    /// the counting starts over; the report is of the minute it counted.
    /// `None` when there is nothing to say.
    pub(crate) fn flush(&self, now: i64) -> Option<PlayStats> {
        let mut s = self.lock();
        let mut ended_lines = Vec::new();
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
            } else {
                let ms = tally.lasted_ms.load(Ordering::Relaxed);
                let status = (tally.key.protocol == PlayProtocol::Flv).then_some(200);
                let at = tally.started_ms + i64::try_from(ms).unwrap_or(i64::MAX / 2);
                ended_lines.push((at, tally.key.clone(), tally.ip, status, total, ms));
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
        for (at, key, ip, status, bytes, ms) in ended_lines {
            s.log(at, &key, ip, status, bytes, ms);
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
            delivered: s.delivered.drain().collect(),
        };
        if minute != s.minute {
            s.minute = minute;
            s.hls_seen.clear();
        }
        let empty =
            report.streams.is_empty() && report.clients.is_empty() && report.delivered.is_empty();
        (!empty).then_some(report)
    }

    /// The access log lines since the last call, and how many were dropped.
    pub(crate) fn take_lines(&self) -> (Vec<AccessLine>, u64) {
        let mut s = self.lock();
        let dropped = std::mem::take(&mut s.dropped);
        (std::mem::take(&mut s.lines), dropped)
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
        let a = plays.start(key(PlayProtocol::Rtmp), IP, 0);
        let b = plays.start(key(PlayProtocol::Rtmp), IP, 0);
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
        plays.hls(key(PlayProtocol::Hls), IP, 200, 300, 0);
        plays.hls(key(PlayProtocol::Hls), IP, 200, 700, 0);
        plays.refused(key(PlayProtocol::Hls), IP, 403, 0);
        let r = plays.flush(60).expect("report");
        let row = &r.streams[0];
        assert_eq!((row.bytes, row.requests, row.online), (1000, 3, 1));
        assert_eq!(row.codes, vec![(200, 2), (403, 1)]);
        assert_eq!((r.clients[0].requests, r.clients[0].failed), (3, 1));
        let (lines, dropped) = plays.take_lines();
        assert_eq!(dropped, 0);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "1970-01-01 08:00:00 127.0.0.1 play.example.com hls live/cam 200 300 0",
                "1970-01-01 08:00:00 127.0.0.1 play.example.com hls live/cam 200 700 0",
                "1970-01-01 08:00:00 127.0.0.1 play.example.com hls live/cam 403 0 0",
            ]
        );
        assert!(plays.take_lines().0.is_empty());
    }
}
