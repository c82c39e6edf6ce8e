//! Hourly access logs: one line per play (written when it ends), HLS
//! request and refused request, in files per play domain and Beijing
//! hour, listed for `DescribeLogDownloadList` and served with a signed URL.
//!
//! Owns: the files `<dir>/<domain>/<YYYYMMDDHH>.log` (WebRTC plays, CSS's
//! 快直播, in `<YYYYMMDDHH>-leb.log`), their listing, and the key their
//! download URLs are signed with (random per process: a URL works until
//! it expires or the server restarts). The line format is
//! `<yyyy-mm-dd HH:MM:SS> <client> <domain> <protocol> <app>/<stream>
//! <status> <bytes> <ms>` (Beijing time; status `-` for RTMP and WebRTC).
//! Must not: write on the media path: lines are gathered in memory and
//! appended by the play statistics' flush task.

use std::collections::BTreeMap;
use std::path::PathBuf;

use livestack_core::media::AccessLogFile;
use livestack_core::naming::{CivilTime, NamingZone};
use livestack_core::Clock;

use crate::stream::plays::AccessLine;

/// How long a download URL stays valid.
const URL_TTL_SECS: i64 = 86_400;

/// The access log files of this node.
pub(crate) struct AccessLogs {
    dir: PathBuf,
    /// `scheme://host[:port]` of the HTTP listener, as recordings are
    /// reached.
    base: String,
    /// Signs download URLs (per process).
    key: String,
    clock: Clock,
}

/// `YYYYMMDDHH` of a Unix ms in Beijing time.
fn hour_name(at_ms: i64) -> String {
    let t = CivilTime::from_unix_ms(at_ms, NamingZone::Utc8);
    format!("{:04}{:02}{:02}{:02}", t.year, t.month, t.day, t.hour)
}

/// A domain as a directory level: only what a domain name may hold.
fn domain_ok(domain: &str) -> bool {
    !domain.is_empty()
        && !domain.starts_with('.')
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

impl AccessLogs {
    /// Logs under `dir`, linked from the host of `records_url` (the local
    /// storage's URL, `…/records`).
    pub(crate) fn new(dir: PathBuf, records_url: &str, clock: Clock) -> AccessLogs {
        // scheme://authority of the records URL.
        let base = match records_url.split_once("://") {
            Some((scheme, rest)) => {
                let authority = rest.split('/').next().unwrap_or(rest);
                format!("{scheme}://{authority}")
            }
            None => String::new(),
        };
        AccessLogs {
            dir,
            base,
            key: format!("{:032x}", rand::random::<u128>()),
            clock,
        }
    }

    /// Appends `lines` to their files.
    pub(crate) async fn write(&self, lines: Vec<AccessLine>) {
        let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
        for l in lines {
            if !domain_ok(&l.domain) {
                continue;
            }
            let name = format!(
                "{}{}.log",
                hour_name(l.at_ms),
                if l.leb { "-leb" } else { "" }
            );
            let text = files
                .entry(self.dir.join(&l.domain).join(name))
                .or_default();
            text.push_str(&l.text);
            text.push('\n');
        }
        for (path, text) in files {
            if let Err(e) = super::append(&path, text.as_bytes()).await {
                tracing::warn!("cannot write the access log {}: {e}", path.display());
            }
        }
    }

    /// The files of `domains` whose hour starts within Unix seconds
    /// `from..=to`, WebRTC's (`leb`) or the others', oldest first, with
    /// download URLs.
    pub(crate) async fn list(
        &self,
        domains: &[String],
        leb: bool,
        from: i64,
        to: i64,
    ) -> Vec<AccessLogFile> {
        let mut out = Vec::new();
        for domain in domains.iter().filter(|d| domain_ok(d)) {
            let Ok(mut dir) = tokio::fs::read_dir(self.dir.join(domain)).await else {
                continue;
            };
            while let Ok(Some(entry)) = dir.next_entry().await {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(stem) = name.strip_suffix(".log") else {
                    continue;
                };
                let (hour, is_leb) = match stem.strip_suffix("-leb") {
                    Some(h) => (h, true),
                    None => (stem, false),
                };
                if is_leb != leb {
                    continue;
                }
                let Some(start) = hour_start(hour) else {
                    continue;
                };
                if start < from || start > to {
                    continue;
                }
                let size = entry.metadata().await.map_or(0, |m| m.len());
                out.push(AccessLogFile {
                    domain: domain.clone(),
                    hour: start,
                    name: name.clone(),
                    url: self.url(domain, &name),
                    size,
                });
            }
        }
        out.sort_by(|a, b| (a.hour, &a.domain).cmp(&(b.hour, &b.domain)));
        out
    }

    /// The signed download URL of `domain`'s file `name`.
    fn url(&self, domain: &str, name: &str) -> String {
        let path = format!("logs/{domain}/{name}");
        let query =
            livestack_core::urlsign::query(&self.key, &path, self.clock.unix() + URL_TTL_SECS);
        format!("{}/{path}?{query}", self.base)
    }

    /// The file `/logs/<domain>/<name>` names, when the request's
    /// signature is good and the file exists.
    pub(crate) async fn file(
        &self,
        rest: &str,
        tx_secret: Option<&str>,
        tx_time: Option<&str>,
    ) -> Option<Vec<u8>> {
        let (domain, name) = rest.split_once('/')?;
        let good_name = name.ends_with(".log")
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !name.starts_with('.');
        if !domain_ok(domain) || !good_name {
            return None;
        }
        let path = format!("logs/{domain}/{name}");
        livestack_core::urlsign::verify(
            &[self.key.as_str()],
            0,
            &path,
            tx_secret,
            tx_time,
            self.clock.unix(),
        )
        .ok()?;
        tokio::fs::read(self.dir.join(domain).join(name)).await.ok()
    }
}

/// Unix seconds of the Beijing hour `YYYYMMDDHH`.
fn hour_start(hour: &str) -> Option<i64> {
    if hour.len() != 10 || !hour.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| hour[r].parse::<u32>().ok();
    CivilTime {
        year: i64::from(n(0..4)?),
        month: n(4..6)?,
        day: n(6..8)?,
        hour: n(8..10)?,
        minute: 0,
        second: 0,
        millisecond: 0,
    }
    .to_unix_ms(NamingZone::Utc8.offset_secs())
    .map(|ms| ms / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_go_to_hourly_files_listed_with_urls_that_only_their_signature_opens() {
        let dir = std::env::temp_dir().join(format!("livestack-logs-{}", rand::random::<u64>()));
        let logs = AccessLogs::new(
            dir.clone(),
            "http://127.0.0.1:8080/records",
            Clock::system(),
        );
        // 2023-11-15 06:13:20 in Beijing.
        let at = 1_700_000_000_000;
        let line = |leb, text: &str| AccessLine {
            at_ms: at,
            domain: "play.example.com".into(),
            leb,
            text: text.into(),
        };
        logs.write(vec![line(false, "a"), line(false, "b"), line(true, "c")])
            .await;
        let hour = 1_699_999_200; // 06:00 Beijing
        let files = logs
            .list(&["play.example.com".into()], false, hour - 3600, hour)
            .await;
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "2023111506.log");
        assert_eq!((files[0].hour, files[0].size), (hour, 4));
        let url = &files[0].url;
        assert!(
            url.starts_with("http://127.0.0.1:8080/logs/play.example.com/2023111506.log?txSecret=")
        );
        let rest = "play.example.com/2023111506.log";
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
        let get = |k: &str| crate::serve::access::query_get(query, k);
        let (s, t) = (get("txSecret"), get("txTime"));
        assert_eq!(
            logs.file(rest, s.as_deref(), t.as_deref()).await.as_deref(),
            Some(&b"a\nb\n"[..])
        );
        assert_eq!(logs.file(rest, Some("0000"), t.as_deref()).await, None);
        assert_eq!(
            logs.file("play.example.com/../x.log", s.as_deref(), t.as_deref())
                .await,
            None
        );
        let leb = logs
            .list(&["play.example.com".into()], true, hour, hour)
            .await;
        assert_eq!(leb[0].name, "2023111506-leb.log");
        std::fs::remove_dir_all(&dir).ok();
    }
}
