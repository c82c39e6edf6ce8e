//! Byte ranges and validators of stored files (`/records/…`), so that
//! players and browsers can seek: `Range` (206, 416), `HEAD`, `ETag`,
//! `Last-Modified`, `If-None-Match`, `If-Modified-Since` and `If-Range`
//! (RFC 9110 §13–14).
//!
//! Owns: the pure decisions. Must not: read files or sockets.

use livestack_core::naming::{CivilTime, NamingZone};

/// What to send for a request of a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// 304: the client's copy is current.
    NotModified,
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416: no byte of the file is in the range.
    Unsatisfiable,
}

/// The validators of one version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Validators {
    /// A strong entity tag: the file's length and modification time.
    pub(crate) etag: String,
    /// `Last-Modified` in IMF-fixdate.
    pub(crate) last_modified: String,
}

impl Validators {
    /// The validators of a file of `len` bytes last modified at
    /// `modified_ms` (Unix milliseconds).
    pub(crate) fn new(len: u64, modified_ms: i64) -> Validators {
        Validators {
            etag: format!("\"{len:x}-{modified_ms:x}\""),
            last_modified: http_date(modified_ms.div_euclid(1000)),
        }
    }
}

/// The conditional headers and range of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Conditions<'a> {
    pub(crate) range: Option<&'a str>,
    pub(crate) if_none_match: Option<&'a str>,
    pub(crate) if_modified_since: Option<&'a str>,
    pub(crate) if_range: Option<&'a str>,
}

/// Decides the reply, in RFC 9110's order: `If-None-Match` (or, without
/// it, `If-Modified-Since`), then `Range` unless `If-Range` names another
/// version. Several ranges are answered with the whole file, as the RFC
/// allows.
pub(crate) fn reply(c: &Conditions<'_>, v: &Validators, len: u64) -> Reply {
    match c.if_none_match {
        Some(tags) => {
            if tags
                .split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.trim_start_matches("W/") == v.etag)
            {
                return Reply::NotModified;
            }
        }
        None => {
            // Our own Last-Modified, sent back unchanged (what clients do).
            if c.if_modified_since.map(str::trim) == Some(v.last_modified.as_str()) {
                return Reply::NotModified;
            }
        }
    }
    let Some(range) = c.range else {
        return Reply::Full;
    };
    if let Some(tag) = c.if_range.map(str::trim) {
        if tag != v.etag && tag != v.last_modified {
            return Reply::Full;
        }
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Reply::Full;
    };
    if spec.contains(',') {
        return Reply::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Reply::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match parse(last) {
            None => Reply::Full,
            Some(0) => Reply::Unsatisfiable,
            Some(_) if len == 0 => Reply::Unsatisfiable,
            Some(n) => Reply::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        },
        // bytes=A- or bytes=A-B.
        (false, _) => {
            let Some(start) = parse(first) else {
                return Reply::Full;
            };
            let end = if last.is_empty() {
                len.saturating_sub(1)
            } else {
                match parse(last) {
                    Some(e) if e >= start => e.min(len.saturating_sub(1)),
                    _ => return Reply::Full,
                }
            };
            if start >= len {
                Reply::Unsatisfiable
            } else {
                Reply::Partial { start, end }
            }
        }
        (true, true) => Reply::Full,
    }
}

/// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = CivilTime::from_unix_ms(unix.saturating_mul(1000), NamingZone::Utc);
    let weekday = DAYS[unix.div_euclid(86_400).rem_euclid(7) as usize];
    let month = MONTHS[(t.month.clamp(1, 12) - 1) as usize];
    format!(
        "{weekday}, {:02} {month} {} {:02}:{:02}:{:02} GMT",
        t.day, t.year, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Validators {
        Validators::new(1000, 784_111_777_000)
    }

    fn range(r: &str) -> Reply {
        reply(
            &Conditions {
                range: Some(r),
                ..Conditions::default()
            },
            &v(),
            1000,
        )
    }

    #[test]
    fn dates_are_imf_fixdate() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn byte_ranges_are_served_clipped_or_refused() {
        assert_eq!(range("bytes=0-99"), Reply::Partial { start: 0, end: 99 });
        assert_eq!(
            range("bytes=500-"),
            Reply::Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            range("bytes=-100"),
            Reply::Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(range("bytes=-5000"), Reply::Partial { start: 0, end: 999 });
        assert_eq!(
            range("bytes=900-5000"),
            Reply::Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(range("bytes=1000-"), Reply::Unsatisfiable);
        assert_eq!(range("bytes=-0"), Reply::Unsatisfiable);
        assert_eq!(range("bytes=5-1"), Reply::Full);
        assert_eq!(range("bytes=0-1,5-6"), Reply::Full);
        assert_eq!(range("items=0-1"), Reply::Full);
        assert_eq!(range("bytes=x-"), Reply::Full);
    }

    #[test]
    fn validators_answer_304_and_if_range_guards_the_range() {
        let v = v();
        let not_modified = |c: Conditions<'_>| reply(&c, &v, 1000);
        assert_eq!(
            not_modified(Conditions {
                if_none_match: Some(&v.etag),
                ..Conditions::default()
            }),
            Reply::NotModified
        );
        assert_eq!(
            not_modified(Conditions {
                if_modified_since: Some(&v.last_modified),
                ..Conditions::default()
            }),
            Reply::NotModified
        );
        assert_eq!(
            not_modified(Conditions {
                if_none_match: Some("\"other\""),
                if_modified_since: Some(&v.last_modified),
                ..Conditions::default()
            }),
            Reply::Full
        );
        assert_eq!(
            not_modified(Conditions {
                range: Some("bytes=0-9"),
                if_range: Some("\"old\""),
                ..Conditions::default()
            }),
            Reply::Full
        );
        assert_eq!(
            not_modified(Conditions {
                range: Some("bytes=0-9"),
                if_range: Some(&v.etag),
                ..Conditions::default()
            }),
            Reply::Partial { start: 0, end: 9 }
        );
    }
}
