//! Time-shift storage: the HLS segments of streams a time-shift rule
//! names, kept on disk for the template's `Duration`, indexed by wall
//! clock, and the playlists that replay a window of them.
//!
//! Owns: the directory `<root>/<account>/<app>/<stream>/` of each stream
//! (segments `<seq>.ts`, one index `<sid>.idx` per recording session), the
//! in-memory index rebuilt from those files at start, the per-stream
//! sequence numbers (counting on across sessions, so a delayed playlist
//! slides over a push that restarted), pruning on time and on the
//! configured disk bound, and the playlists: a window
//! (`tsStart`/`tsEnd`: VOD, or EVENT while its end is still ahead) and a
//! delayed live edge (`tsDelay`). Must not: cut segments (the time-shift
//! job does, from the hub) or decide who may play (the HTTP server
//! authorizes first).
//!
//! A segment is written to its file before it enters the index, so
//! whatever a playlist lists is on disk; pruning takes entries out of the
//! index before deleting their files. The index file of a session is an
//! append-only text file: a header line, then one line per segment. A
//! session's index is deleted with its last segment, never while its
//! writer is open.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use livestack_core::media::{StreamKey, TimeShiftSession};
use livestack_core::naming::{CivilTime, NamingZone};
use livestack_core::AccountId;
use tokio::io::AsyncWriteExt;

/// The first line of every session index.
const INDEX_MAGIC: &str = "# livestack time-shift v1";

/// One kept segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Its sequence number within the stream.
    pub(crate) seq: u64,
    /// Unix milliseconds of its first frame.
    pub(crate) start_ms: i64,
    /// Its duration.
    pub(crate) duration_ms: u32,
    /// Its size on disk.
    pub(crate) bytes: u64,
    /// It follows a break in the stream (new tracks, a restart).
    pub(crate) discontinuity: bool,
}

impl Entry {
    fn end_ms(&self) -> i64 {
        self.start_ms + i64::from(self.duration_ms)
    }
}

/// One push's segments.
#[derive(Debug)]
struct Session {
    sid: String,
    domain: String,
    watermarked: bool,
    keep_secs: u32,
    /// A writer is adding to it.
    open: bool,
    entries: VecDeque<Entry>,
}

/// One stream's sessions, oldest first.
#[derive(Debug, Default)]
struct Shelf {
    sessions: Vec<Session>,
    next_seq: u64,
}

/// Which part of the kept stream a playlist replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    /// From `start_ms` to `end_ms` (Unix milliseconds).
    Range {
        /// Start.
        start_ms: i64,
        /// End.
        end_ms: i64,
    },
    /// The live edge, `delay_ms` behind.
    Delay {
        /// How far behind.
        delay_ms: i64,
    },
}

/// Why a time-shift request is refused (the HTTP status says which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WindowError {
    /// The parameters do not make a window (400).
    Bad(String),
    /// Nothing is kept for it (404).
    Empty,
}

/// The most a `tsStart`–`tsEnd` window may span (documented: 6 hours).
const MAX_RANGE_MS: i64 = 6 * 3600 * 1000;
/// How long before now a window must start (documented: 30 s).
const MIN_AGE_MS: i64 = 30_000;

impl Window {
    /// The window a playback query asks for (`txTimeshift=on` already
    /// seen): `tsDelay=<s>`, or `tsStart`/`tsEnd` in `tsFormat`
    /// (`unix_s`, the default, or `human_s_<zone>`: `YYYYMMDDhhmmss` in
    /// the zone `<zone>` hours east of UTC, -12 to 12).
    pub(crate) fn from_query(query: &str, now_ms: i64) -> Result<Window, WindowError> {
        let get = |k: &str| crate::serve::access::query_get(query, k);
        if let Some(delay) = get("tsDelay") {
            let secs: i64 = delay
                .trim()
                .parse()
                .ok()
                .filter(|s| *s >= 0)
                .ok_or_else(|| {
                    WindowError::Bad(format!("tsDelay `{delay}` is not a number of seconds"))
                })?;
            return Ok(Window::Delay {
                delay_ms: secs.saturating_mul(1000),
            });
        }
        let format = get("tsFormat").unwrap_or_else(|| "unix_s".to_owned());
        let (Some(start), Some(end)) = (get("tsStart"), get("tsEnd")) else {
            return Err(WindowError::Bad(
                "time-shift needs tsStart and tsEnd, or tsDelay".to_owned(),
            ));
        };
        let parse = |v: &str| -> Result<i64, WindowError> {
            let bad = || WindowError::Bad(format!("`{v}` is not a time in tsFormat `{format}`"));
            if format == "unix_s" {
                return v.trim().parse::<i64>().map(|s| s * 1000).map_err(|_| bad());
            }
            let zone: i64 = format
                .strip_prefix("human_s_")
                .and_then(|z| z.parse().ok())
                .filter(|z: &i64| (-12..=12).contains(z))
                .ok_or_else(|| {
                    WindowError::Bad(format!(
                        "tsFormat `{format}` is not unix_s or human_s_<zone> (zone -12 to 12)"
                    ))
                })?;
            let v = v.trim();
            if v.len() != 14 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let n = |r: std::ops::Range<usize>| v[r].parse::<u32>().unwrap_or(99);
            CivilTime {
                year: i64::from(n(0..4)),
                month: n(4..6),
                day: n(6..8),
                hour: n(8..10),
                minute: n(10..12),
                second: n(12..14),
                millisecond: 0,
            }
            .to_unix_ms(zone * 3600)
            .ok_or_else(bad)
        };
        let (start_ms, end_ms) = (parse(&start)?, parse(&end)?);
        if end_ms <= start_ms {
            return Err(WindowError::Bad("tsEnd must be after tsStart".to_owned()));
        }
        if end_ms - start_ms > MAX_RANGE_MS {
            return Err(WindowError::Bad(
                "a time-shift window spans at most 6 hours".to_owned(),
            ));
        }
        if start_ms > now_ms - MIN_AGE_MS {
            return Err(WindowError::Bad(
                "tsStart must be at least 30 seconds ago".to_owned(),
            ));
        }
        Ok(Window::Range { start_ms, end_ms })
    }
}

/// What time-shift keeps on this node.
pub(crate) struct TimeShift {
    root: PathBuf,
    max_bytes: u64,
    shelves: Mutex<HashMap<StreamKey, Shelf>>,
    /// Bytes and segments listed in `shelves`: changed only with its lock
    /// held, so every segment written need not add up the whole index.
    bytes: AtomicU64,
    segments: AtomicUsize,
}

/// A directory level for an app or stream name: the name itself when it is
/// plain (letters, digits, `_`, `-`), else `~` and its hex bytes (so `..`
/// or `.` never name a directory).
fn level(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        name.to_owned()
    } else {
        let mut out = String::with_capacity(1 + name.len() * 2);
        out.push('~');
        for b in name.bytes() {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

/// The name a [`level`] stands for.
fn unlevel(level: &str) -> Option<String> {
    let Some(hex) = level.strip_prefix('~') else {
        return Some(level.to_owned());
    };
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    String::from_utf8(bytes?).ok()
}

impl TimeShift {
    /// The time-shift store under `root`, holding at most `max_bytes`
    /// (0: no bound), with what earlier runs left there indexed.
    pub(crate) fn open(root: PathBuf, max_bytes: u64) -> TimeShift {
        let shelves = load(&root);
        let (bytes, segments) = shelves
            .values()
            .flat_map(|s| &s.sessions)
            .flat_map(|s| &s.entries)
            .fold((0, 0), |(b, n), e| (b + e.bytes, n + 1));
        if segments > 0 {
            tracing::info!(
                streams = shelves.len(),
                segments,
                "time-shift segments found under {}",
                root.display()
            );
        }
        TimeShift {
            root,
            max_bytes,
            shelves: Mutex::new(shelves),
            bytes: AtomicU64::new(bytes),
            segments: AtomicUsize::new(segments),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, Shelf>> {
        self.shelves.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `e` in or out of the totals (with the shelves' lock held).
    fn count(&self, e: &Entry, added: bool) {
        if added {
            self.bytes.fetch_add(e.bytes, Ordering::Relaxed);
            self.segments.fetch_add(1, Ordering::Relaxed);
        } else {
            self.bytes.fetch_sub(e.bytes, Ordering::Relaxed);
            self.segments.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn dir(&self, key: &StreamKey) -> PathBuf {
        self.root
            .join(key.account.0.to_string())
            .join(level(&key.app))
            .join(level(&key.stream))
    }

    /// Starts (or, for a `sid` already kept, continues) a recording
    /// session of `key`.
    pub(crate) async fn begin(
        self: &Arc<Self>,
        key: &StreamKey,
        sid: &str,
        domain: &str,
        watermarked: bool,
        keep_secs: u32,
    ) -> std::io::Result<SessionWriter> {
        let dir = self.dir(key);
        tokio::fs::create_dir_all(&dir).await?;
        let path = dir.join(format!("{sid}.idx"));
        let mut index = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await?;
        if index.metadata().await?.len() == 0 {
            let header = format!(
                "{INDEX_MAGIC} domain={domain} watermarked={} keep={keep_secs}\n",
                u8::from(watermarked)
            );
            index.write_all(header.as_bytes()).await?;
            // A tokio file finishes writes in the background: flushed, the
            // line is with the OS before anything else happens.
            index.flush().await?;
        }
        {
            let mut shelves = self.lock();
            let shelf = shelves.entry(key.clone()).or_default();
            match shelf.sessions.iter_mut().find(|s| s.sid == sid) {
                Some(s) => s.open = true,
                None => shelf.sessions.push(Session {
                    sid: sid.to_owned(),
                    domain: domain.to_owned(),
                    watermarked,
                    keep_secs,
                    open: true,
                    entries: VecDeque::new(),
                }),
            }
        }
        Ok(SessionWriter {
            store: Arc::clone(self),
            key: key.clone(),
            sid: sid.to_owned(),
            dir,
            index,
        })
    }

    /// Removes what has been kept longer than its session's `keep_secs`
    /// at `now_ms`, then the oldest segments while more than the disk
    /// bound is kept. Returns how many segments were removed.
    pub(crate) async fn prune(&self, now_ms: i64) -> usize {
        let mut doomed: Vec<PathBuf> = Vec::new();
        {
            let mut shelves = self.lock();
            for (key, shelf) in shelves.iter_mut() {
                let dir = self.dir(key);
                for s in &mut shelf.sessions {
                    let cutoff = now_ms - i64::from(s.keep_secs) * 1000;
                    while s.entries.front().is_some_and(|e| e.end_ms() <= cutoff) {
                        if let Some(e) = s.entries.pop_front() {
                            self.count(&e, false);
                            doomed.push(dir.join(format!("{}.ts", e.seq)));
                        }
                    }
                }
            }
            if self.max_bytes > 0 {
                while self.bytes.load(Ordering::Relaxed) > self.max_bytes {
                    // The oldest segment of any stream goes first.
                    let oldest = shelves
                        .iter_mut()
                        .flat_map(|(k, shelf)| shelf.sessions.iter_mut().map(move |s| (k, s)))
                        .filter(|(_, s)| !s.entries.is_empty())
                        .min_by_key(|(_, s)| s.entries.front().map_or(i64::MAX, |e| e.start_ms));
                    let Some((key, session)) = oldest else { break };
                    let Some(e) = session.entries.pop_front() else {
                        break;
                    };
                    self.count(&e, false);
                    doomed.push(self.dir(key).join(format!("{}.ts", e.seq)));
                }
            }
            for (key, shelf) in shelves.iter_mut() {
                let dir = self.dir(key);
                shelf.sessions.retain(|s| {
                    let done = !s.open && s.entries.is_empty();
                    if done {
                        doomed.push(dir.join(format!("{}.idx", s.sid)));
                    }
                    !done
                });
            }
            shelves.retain(|_, shelf| !shelf.sessions.is_empty());
        }
        let removed = doomed
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "ts"))
            .count();
        for path in doomed {
            if let Err(e) = tokio::fs::remove_file(&path).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("cannot delete the time-shift file {}: {e}", path.display());
                }
            }
        }
        removed
    }

    /// Bytes and segments kept now.
    pub(crate) fn usage(&self) -> (u64, usize) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.segments.load(Ordering::Relaxed),
        )
    }

    /// The sessions of `account` with segments kept between Unix seconds
    /// `from` and `to`.
    pub(crate) fn sessions(&self, account: AccountId, from: i64, to: i64) -> Vec<TimeShiftSession> {
        let shelves = self.lock();
        let mut out: Vec<TimeShiftSession> = shelves
            .iter()
            .filter(|(k, _)| k.account == account)
            .flat_map(|(k, shelf)| shelf.sessions.iter().map(move |s| (k, s)))
            .filter_map(|(key, s)| {
                let first = s.entries.front()?;
                let last = s.entries.back()?;
                let (start, end) = (first.start_ms / 1000, last.end_ms().div_euclid(1000));
                (start <= to && end >= from).then(|| TimeShiftSession {
                    key: key.clone(),
                    domain: s.domain.clone(),
                    sid: s.sid.clone(),
                    start,
                    end,
                    watermarked: s.watermarked,
                    keep_secs: s.keep_secs,
                    open: s.open,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.start, &a.sid).cmp(&(b.start, &b.sid)));
        out
    }

    /// The file of `key`'s segment `seq`, while it is kept.
    pub(crate) fn segment_path(&self, key: &StreamKey, seq: u64) -> Option<PathBuf> {
        let shelves = self.lock();
        let kept = shelves
            .get(key)?
            .sessions
            .iter()
            .any(|s| s.entries.binary_search_by_key(&seq, |e| e.seq).is_ok());
        kept.then(|| self.dir(key).join(format!("{seq}.ts")))
    }

    /// The playlist replaying `window` of `key` at `now_ms`, its delayed
    /// live edge listing at most `edge` segments; segment URIs from `uri`.
    pub(crate) fn playlist(
        &self,
        key: &StreamKey,
        window: Window,
        now_ms: i64,
        edge: usize,
        uri: impl Fn(u64) -> String,
    ) -> Result<String, WindowError> {
        let shelves = self.lock();
        let shelf = shelves.get(key).ok_or(WindowError::Empty)?;
        // Every kept segment in order, with whether a session starts there.
        let mut all: Vec<(Entry, bool)> = Vec::new();
        for s in &shelf.sessions {
            for (i, e) in s.entries.iter().enumerate() {
                all.push((*e, i == 0));
            }
        }
        all.sort_by_key(|(e, _)| e.seq);
        let breaks = |e: &Entry, first_of_session: bool| e.discontinuity || first_of_session;
        let (listed, ended, event): (Vec<(Entry, bool)>, bool, bool) = match window {
            Window::Range { start_ms, end_ms } => {
                let listed: Vec<_> = all
                    .iter()
                    .filter(|(e, _)| e.start_ms < end_ms && e.end_ms() > start_ms)
                    .copied()
                    .collect();
                let done = end_ms <= now_ms;
                (listed, done, !done)
            }
            Window::Delay { delay_ms } => {
                let cutoff = now_ms - delay_ms;
                let ready: Vec<_> = all
                    .iter()
                    .filter(|(e, _)| e.end_ms() <= cutoff)
                    .copied()
                    .collect();
                let skip = ready.len().saturating_sub(edge.max(1));
                (ready[skip..].to_vec(), false, false)
            }
        };
        let Some((first, _)) = listed.first() else {
            return Err(WindowError::Empty);
        };
        let target_s = listed
            .iter()
            .map(|(e, _)| u64::from(e.duration_ms).div_ceil(1000))
            .max()
            .unwrap_or(1)
            .max(1);
        // Breaks before the first listed segment, so a sliding playlist's
        // discontinuity numbering moves with it.
        let earlier = all
            .iter()
            .take_while(|(e, _)| e.seq < first.seq)
            .filter(|(e, f)| breaks(e, *f))
            .count();
        let mut out = String::with_capacity(160 + listed.len() * 120);
        out.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target_s}");
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", first.seq);
        if earlier > 0 {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{earlier}");
        }
        if ended {
            out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
        } else if event {
            out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
        }
        for (i, (e, first_of_session)) in listed.iter().enumerate() {
            if i > 0 && breaks(e, *first_of_session) {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let t = CivilTime::from_unix_ms(e.start_ms, NamingZone::Utc);
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year, t.month, t.day, t.hour, t.minute, t.second, t.millisecond
            );
            let _ = writeln!(
                out,
                "#EXTINF:{}.{:03},",
                e.duration_ms / 1000,
                e.duration_ms % 1000
            );
            out.push_str(&uri(e.seq));
            out.push('\n');
        }
        if ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        Ok(out)
    }
}

/// Adds one session's segments, in order; the session stays open (not
/// pruned away while empty) until the writer drops.
pub(crate) struct SessionWriter {
    store: Arc<TimeShift>,
    key: StreamKey,
    sid: String,
    dir: PathBuf,
    index: tokio::fs::File,
}

impl SessionWriter {
    /// Keeps one segment: its file first, then its index line, then it is
    /// listed. Over the disk bound, the oldest segments make room.
    pub(crate) async fn add(
        &mut self,
        start_ms: i64,
        duration_ms: u32,
        discontinuity: bool,
        data: &[u8],
    ) -> std::io::Result<()> {
        let seq = {
            let mut shelves = self.store.lock();
            let shelf = shelves.entry(self.key.clone()).or_default();
            let seq = shelf.next_seq;
            shelf.next_seq += 1;
            seq
        };
        tokio::fs::write(self.dir.join(format!("{seq}.ts")), data).await?;
        let entry = Entry {
            seq,
            start_ms,
            duration_ms,
            bytes: data.len() as u64,
            discontinuity,
        };
        let line = format!(
            "{seq} {start_ms} {duration_ms} {} {}\n",
            entry.bytes,
            u8::from(discontinuity)
        );
        self.index.write_all(line.as_bytes()).await?;
        self.index.flush().await?;
        let over = {
            let mut shelves = self.store.lock();
            let shelf = shelves.entry(self.key.clone()).or_default();
            if let Some(s) = shelf.sessions.iter_mut().find(|s| s.sid == self.sid) {
                s.entries.push_back(entry);
                self.store.count(&entry, true);
            }
            self.store.max_bytes > 0
                && self.store.bytes.load(Ordering::Relaxed) > self.store.max_bytes
        };
        if over {
            // Keep-time pruning runs on its own; this only makes room.
            self.store.prune(i64::MIN / 2).await;
        }
        Ok(())
    }
}

impl Drop for SessionWriter {
    fn drop(&mut self) {
        let mut shelves = self.store.lock();
        if let Some(s) = shelves
            .get_mut(&self.key)
            .and_then(|shelf| shelf.sessions.iter_mut().find(|s| s.sid == self.sid))
        {
            s.open = false;
        }
    }
}

/// Reads every session index under `root`.
fn load(root: &Path) -> HashMap<StreamKey, Shelf> {
    let mut shelves: HashMap<StreamKey, Shelf> = HashMap::new();
    let dirs = |p: &Path| -> Vec<(String, PathBuf)> {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
            .collect()
    };
    for (account, a_path) in dirs(root) {
        let Ok(account) = account.parse() else {
            continue;
        };
        for (app, app_path) in dirs(&a_path) {
            let Some(app) = unlevel(&app) else { continue };
            for (stream, s_path) in dirs(&app_path) {
                let Some(stream) = unlevel(&stream) else {
                    continue;
                };
                let key = StreamKey {
                    account: AccountId(account),
                    app: app.clone(),
                    stream,
                };
                let shelf = shelves.entry(key).or_default();
                for file in std::fs::read_dir(&s_path).into_iter().flatten().flatten() {
                    let path = file.path();
                    if path.extension().is_none_or(|e| e != "idx") {
                        continue;
                    }
                    match read_index(&path) {
                        Some(session) => shelf.sessions.push(session),
                        None => {
                            tracing::warn!("ignoring {}: not a time-shift index", path.display())
                        }
                    }
                }
                shelf.next_seq = shelf
                    .sessions
                    .iter()
                    .filter_map(|s| s.entries.back())
                    .map(|e| e.seq + 1)
                    .max()
                    .unwrap_or(0);
                shelf
                    .sessions
                    .sort_by_key(|s| s.entries.front().map_or(i64::MAX, |e| e.start_ms));
            }
        }
    }
    shelves.retain(|_, s| !s.sessions.is_empty());
    shelves
}

/// One session index; segments whose file is gone are left out.
fn read_index(path: &Path) -> Option<Session> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let header = lines.next()?.strip_prefix(INDEX_MAGIC)?;
    let field = |name: &str| {
        header
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let dir = path.parent()?;
    let mut entries: VecDeque<Entry> = VecDeque::new();
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [seq, start, duration, bytes, disc] = f[..] else {
            continue;
        };
        let (Ok(seq), Ok(start_ms), Ok(duration_ms), Ok(bytes)) =
            (seq.parse(), start.parse(), duration.parse(), bytes.parse())
        else {
            continue;
        };
        if !dir.join(format!("{seq}.ts")).is_file() {
            continue;
        }
        entries.push_back(Entry {
            seq,
            start_ms,
            duration_ms,
            bytes,
            discontinuity: disc == "1",
        });
    }
    Some(Session {
        sid: path.file_stem()?.to_str()?.to_owned(),
        domain: field("domain").unwrap_or_default(),
        watermarked: field("watermarked").as_deref() == Some("1"),
        keep_secs: field("keep")?.parse().ok()?,
        open: false,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StreamKey {
        StreamKey {
            account: AccountId(7),
            app: "live".into(),
            stream: "cam".into(),
        }
    }

    const T0: i64 = 1_700_000_000_000;

    async fn filled(dir: &Path, max_bytes: u64) -> Arc<TimeShift> {
        let ts = Arc::new(TimeShift::open(dir.to_path_buf(), max_bytes));
        let mut w = ts
            .begin(&key(), "a1", "push.example.com", false, 86_400)
            .await
            .expect("begin");
        for i in 0..5 {
            w.add(T0 + i * 4000, 4000, false, b"0123456789")
                .await
                .expect("add");
        }
        drop(w);
        let mut w = ts
            .begin(&key(), "b2", "push.example.com", false, 86_400)
            .await
            .expect("begin");
        for i in 0..3 {
            w.add(T0 + 60_000 + i * 4000, 4000, false, b"0123456789")
                .await
                .expect("add");
        }
        ts
    }

    #[test]
    fn odd_app_and_stream_names_never_name_a_parent_directory() {
        assert_eq!(level("cam_1-a"), "cam_1-a");
        assert_eq!(level(".."), "~2e2e");
        assert_eq!(level("a.b"), "~612e62");
        for name in ["..", ".", "a.b", "cam"] {
            assert_eq!(unlevel(&level(name)).as_deref(), Some(name));
        }
    }

    #[test]
    fn windows_are_read_in_every_documented_form() {
        let now = T0 + 3_600_000;
        let q = |s: &str| Window::from_query(s, now);
        assert_eq!(
            q("txTimeshift=on&tsStart=1700000000&tsEnd=1700000030"),
            Ok(Window::Range {
                start_ms: T0,
                end_ms: T0 + 30_000
            })
        );
        // 2023-11-14 22:13:20 UTC is 2023-11-15 06:13:20 at UTC+8.
        assert_eq!(
            q("txTimeshift=on&tsFormat=human_s_8&tsStart=20231115061320&tsEnd=20231115061350"),
            Ok(Window::Range {
                start_ms: T0,
                end_ms: T0 + 30_000
            })
        );
        assert_eq!(
            q("txTimeshift=on&tsDelay=30"),
            Ok(Window::Delay { delay_ms: 30_000 })
        );
        for bad in [
            "txTimeshift=on&tsStart=1700000030&tsEnd=1700000000",
            "txTimeshift=on&tsStart=1700000000&tsEnd=1700030000",
            "txTimeshift=on&tsStart=1700003590&tsEnd=1700003599",
            "txTimeshift=on&tsFormat=human_s_13&tsStart=20231115061320&tsEnd=20231115061350",
            "txTimeshift=on&tsFormat=human_s_8&tsStart=20230230061320&tsEnd=20231115061350",
            "txTimeshift=on&tsDelay=-5",
            "txTimeshift=on&tsStart=1700000000",
        ] {
            assert!(matches!(q(bad), Err(WindowError::Bad(_))), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_window_lists_the_segments_it_overlaps_with_a_break_between_sessions() {
        let dir = tempdir();
        let ts = filled(&dir, 0).await;
        let now = T0 + 3_600_000;
        let window = Window::Range {
            start_ms: T0 + 10_000,
            end_ms: T0 + 66_000,
        };
        let p = ts
            .playlist(&key(), window, now, 6, |s| format!("cam-{s}.ts"))
            .expect("playlist");
        let uris: Vec<&str> = p.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            uris,
            ["cam-2.ts", "cam-3.ts", "cam-4.ts", "cam-5.ts", "cam-6.ts"]
        );
        assert!(p.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(p.ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:2\n"));
        assert!(p.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:28.000Z\n"));
        let outside = Window::Range {
            start_ms: T0 - 100_000,
            end_ms: T0 - 50_000,
        };
        assert_eq!(
            ts.playlist(&key(), outside, now, 6, |s| s.to_string()),
            Err(WindowError::Empty)
        );
    }

    #[tokio::test]
    async fn a_delayed_playlist_ends_that_far_behind_the_live_edge() {
        let dir = tempdir();
        let ts = filled(&dir, 0).await;
        // Segment 6 ends at T0 + 68 s; 7 at T0 + 72 s.
        let now = T0 + 70_000 + 3_000;
        let p = ts
            .playlist(&key(), Window::Delay { delay_ms: 3_000 }, now, 3, |s| {
                format!("{s}.ts")
            })
            .expect("playlist");
        let uris: Vec<&str> = p.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(uris, ["4.ts", "5.ts", "6.ts"]);
        assert!(!p.contains("ENDLIST"));
        assert!(p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
    }

    #[tokio::test]
    async fn segments_outlive_a_restart_and_go_when_their_time_or_the_disk_bound_is_up() {
        let dir = tempdir();
        let ts = filled(&dir, 0).await;
        assert_eq!(ts.usage(), (80, 8));
        drop(ts);
        let ts = Arc::new(TimeShift::open(dir.clone(), 0));
        assert_eq!(ts.usage(), (80, 8));
        let sessions = ts.sessions(AccountId(7), 0, i64::MAX);
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0].sid, "a1");
        assert_eq!(sessions[0].start, T0 / 1000);
        assert_eq!(sessions[0].end, (T0 + 20_000) / 1000);
        assert_eq!(sessions[1].domain, "push.example.com");
        // New segments number on after the kept ones.
        let mut w = ts
            .begin(&key(), "c3", "push.example.com", false, 86_400)
            .await
            .expect("begin");
        w.add(T0 + 100_000, 4000, false, b"x").await.expect("add");
        assert!(ts.segment_path(&key(), 8).is_some_and(|p| p.is_file()));
        drop(w);
        // A day later the first session's segments are past keeping.
        let removed = ts.prune(T0 + 86_400_000 + 30_000).await;
        assert_eq!(removed, 5);
        assert!(!dir.join("7/live/cam/0.ts").exists());
        assert!(!dir.join("7/live/cam/a1.idx").exists());
        assert!(ts.segment_path(&key(), 0).is_none());
        // A bound of 25 bytes keeps the newest segments that fit.
        let ts = Arc::new(TimeShift::open(dir.clone(), 25));
        assert_eq!(ts.prune(T0).await, 1);
        assert_eq!(ts.usage(), (21, 3));
        std::fs::remove_dir_all(&dir).ok();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "livestack-timeshift-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
