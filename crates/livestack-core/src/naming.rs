//! Where recordings and snapshots go: the object keys their templates'
//! name patterns expand to.
//!
//! Owns: the placeholders of record file names (`VodFileName`), record
//! object paths (`CosBucketPath`) and snapshot names (`CosPrefix` +
//! `CosFileName`), their documented defaults, the civil time they are
//! written in, and what makes a key safe to hand to a file system or an
//! object store ([`check_key`]). Must not: do I/O, read the clock or draw
//! random numbers (callers pass times in and a random id in), or know
//! where keys end up (that is `livestack-media`'s storage).
//!
//! # Placeholders
//!
//! Record names (`VodFileName`, `CosBucketPath`): `{StreamID}`,
//! `{StartYear}`, `{StartMonth}`, `{StartDay}`, `{StartHour}`,
//! `{StartMinute}`, `{StartSecond}`, `{StartMillisecond}` and the same with
//! `End`; `CosBucketPath` adds `{RecordSource}` (`origin` for the source or
//! watermarked stream, else the transcoding template id), `{Domain}`,
//! `{AppName}`, `{RecordId}` and `{RandomID}`. Snapshot names (`CosPrefix`,
//! `CosFileName`): `{StreamID}`, `{Year}`, `{Month}`, `{Day}`, `{Hour}`,
//! `{Minute}`, `{Second}`, `{Width}`, `{Height}`, `{Ext}` (`.jpg`). Months,
//! days, hours, minutes and seconds are two digits, years four,
//! milliseconds three, as in CSS's own example
//! `/2018-12-17/stream_name-screenshot-19-06-59-640x352.jpg`. Anything else
//! in braces is left as written.
//!
//! # Time zone
//!
//! The API does not say. CSS's console offers "UTC+8" or "UTC" for the
//! names of recording files (UTC+8 being Beijing time, CSS's home and the
//! time zone of every other "北京时间" field of the API); there is no API
//! field for it, so livestack takes UTC+8 by default ([`NamingZone`]) and
//! lets the operator choose UTC in the configuration.
//!
//! # Keys
//!
//! Patterns start with `/` (CSS requires it of `CosBucketPath`); object keys
//! do not, so the expansion drops leading slashes. A substituted value
//! never adds a path level: `/` and `\` in a stream name become `_`. A key
//! whose level is `.` or `..`, or that is empty, too long or holds a
//! control character, is refused ([`KeyError`]) rather than mended, so a
//! hostile pattern cannot reach outside the storage root.

use std::fmt;

/// `RecordParam.VodFileName` when the template leaves it empty.
pub const DEFAULT_VOD_FILE_NAME: &str = "{StreamID}_{StartYear}-{StartMonth}-{StartDay}-{StartHour}-{StartMinute}-{StartSecond}_{EndYear}-{EndMonth}-{EndDay}-{EndHour}-{EndMinute}-{EndSecond}";

/// `RecordParam.CosBucketPath` when a template that stores to object
/// storage leaves it empty (CSS makes it mandatory; this is the example of
/// its documentation).
pub const DEFAULT_COS_BUCKET_PATH: &str = "/{RecordSource}/{Domain}/{AppName}/{StreamID}/{RecordId}-{RandomID}/{StartYear}-{StartMonth}-{StartDay}-{StartHour}-{StartMinute}-{StartSecond}";

/// `CosPrefix` of a snapshot template when it is empty.
pub const DEFAULT_SNAPSHOT_PREFIX: &str = "/{Year}-{Month}-{Day}";

/// `CosFileName` of a snapshot template when it is empty.
pub const DEFAULT_SNAPSHOT_FILE_NAME: &str =
    "{StreamID}-screenshot-{Hour}-{Minute}-{Second}-{Width}x{Height}{Ext}";

/// `{RecordSource}` of a recording of the source or watermarked stream.
pub const RECORD_SOURCE_ORIGIN: &str = "origin";

/// The longest key accepted, in bytes (S3's and COS's limit).
pub const MAX_KEY_LEN: usize = 1024;

/// The time zone names are written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum NamingZone {
    /// Beijing time, CSS's default.
    #[default]
    Utc8,
    /// Coordinated Universal Time.
    Utc,
}

impl NamingZone {
    /// Seconds east of UTC.
    pub const fn offset_secs(self) -> i64 {
        match self {
            NamingZone::Utc8 => 8 * 3600,
            NamingZone::Utc => 0,
        }
    }

    /// `UTC+8` or `UTC`, as the configuration spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            NamingZone::Utc8 => "UTC+8",
            NamingZone::Utc => "UTC",
        }
    }

    /// The zone spelled `s` ([`NamingZone::as_str`], any case).
    pub fn parse(s: &str) -> Option<NamingZone> {
        [NamingZone::Utc8, NamingZone::Utc]
            .into_iter()
            .find(|z| z.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// A wall-clock time in some zone, to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// The year (proleptic Gregorian).
    pub year: i64,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    /// 0–23.
    pub hour: u32,
    /// 0–59.
    pub minute: u32,
    /// 0–59.
    pub second: u32,
    /// 0–999.
    pub millisecond: u32,
}

impl CivilTime {
    /// The wall-clock time in `zone` of `unix_ms` milliseconds since the
    /// Unix epoch.
    pub fn from_unix_ms(unix_ms: i64, zone: NamingZone) -> CivilTime {
        let local = unix_ms.saturating_add(zone.offset_secs() * 1000);
        let days = local.div_euclid(86_400_000);
        let ms_of_day = local.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        // The casts are exact: each value is below 86_400_000.
        CivilTime {
            year,
            month,
            day,
            hour: (ms_of_day / 3_600_000) as u32,
            minute: (ms_of_day / 60_000 % 60) as u32,
            second: (ms_of_day / 1000 % 60) as u32,
            millisecond: (ms_of_day % 1000) as u32,
        }
    }
}

impl CivilTime {
    /// Milliseconds since the Unix epoch of this wall-clock time in a zone
    /// `offset_secs` east of UTC; `None` for a month or day out of range
    /// (February 30 included) or a time past 23:59:59.
    pub fn to_unix_ms(self, offset_secs: i64) -> Option<i64> {
        let days_in_month = match self.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if self.year % 4 == 0 && (self.year % 100 != 0 || self.year % 400 == 0) => 29,
            2 => 28,
            _ => return None,
        };
        if self.day == 0
            || self.day > days_in_month
            || self.hour > 23
            || self.minute > 59
            || self.second > 59
            || self.millisecond > 999
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - offset_secs;
        Some(secs * 1000 + i64::from(self.millisecond))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`, the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Year, month and day of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, exact over the whole proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Nothing left once leading slashes are dropped.
    Empty,
    /// Longer than [`MAX_KEY_LEN`] bytes.
    TooLong(usize),
    /// Starts with `/`.
    LeadingSlash,
    /// Two slashes in a row, or a trailing one.
    EmptyLevel,
    /// A level is `.` or `..`.
    DotLevel,
    /// A control character or a backslash.
    BadChar(char),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => f.write_str("the key is empty"),
            KeyError::TooLong(n) => write!(f, "the key is {n} bytes, over {MAX_KEY_LEN}"),
            KeyError::LeadingSlash => f.write_str("the key starts with /"),
            KeyError::EmptyLevel => f.write_str("the key has an empty level (// or a trailing /)"),
            KeyError::DotLevel => f.write_str("the key has a . or .. level"),
            KeyError::BadChar(c) => write!(f, "the key holds the character {c:?}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// Why a bucket name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketError(pub String);

impl fmt::Display for BucketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BucketError {}

/// Checks a bucket name against S3's rules (which COS's names also keep):
/// 3 to 63 characters of lower-case letters, digits, `-` and `.`,
/// beginning and ending with a letter or digit, no `..`, not shaped like
/// an IPv4 address. A bucket name becomes a host name (virtual-hosted
/// requests) and a path level (uploads kept locally), so nothing else may
/// pass.
pub fn check_bucket(name: &str) -> Result<(), BucketError> {
    let fail = |why: &str| Err(BucketError(why.to_owned()));
    if !(3..=63).contains(&name.len()) {
        return fail("a bucket name has 3 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return fail("a bucket name has only lower-case letters, digits, `-` and `.`");
    }
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !edge(name.as_bytes()[0]) || !edge(name.as_bytes()[name.len() - 1]) {
        return fail("a bucket name begins and ends with a letter or a digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return fail("a bucket name has no `..`, `.-` or `-.`");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return fail("a bucket name is not an IP address");
    }
    Ok(())
}

/// Checks that `key` is a relative `/`-separated path that stays where it
/// is put: not empty, not too long, no leading `/`, no empty, `.` or `..`
/// level, no control character or backslash.
pub fn check_key(key: &str) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong(key.len()));
    }
    if key.starts_with('/') {
        return Err(KeyError::LeadingSlash);
    }
    if let Some(c) = key.chars().find(|c| c.is_control() || *c == '\\') {
        return Err(KeyError::BadChar(c));
    }
    for level in key.split('/') {
        match level {
            "" => return Err(KeyError::EmptyLevel),
            "." | ".." => return Err(KeyError::DotLevel),
            _ => {}
        }
    }
    Ok(())
}

/// Drops the leading slashes of an expanded pattern and checks the rest.
fn finish_key(expanded: String) -> Result<String, KeyError> {
    let key = expanded.trim_start_matches('/').to_owned();
    check_key(&key)?;
    Ok(key)
}

/// A value as it may appear inside one level of a key: separators and
/// control characters become `_`.
fn level_safe(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Replaces every `{Name}` of `pattern` that `lookup` knows; leaves the
/// rest (unknown names, lone braces) as written.
fn expand(pattern: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(pattern.len() + 32);
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after
            .find(['{', '}'])
            .filter(|&close| after.as_bytes()[close] == b'}')
            .and_then(|close| lookup(&after[..close]).map(|v| (v, close)));
        match value {
            Some((v, close)) => {
                out.push_str(&v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The time placeholders of `t` under the names `{prefix}Year`, ….
fn time_value(prefix: &str, name: &str, t: &CivilTime) -> Option<String> {
    Some(match name.strip_prefix(prefix)? {
        "Year" => format!("{:04}", t.year),
        "Month" => format!("{:02}", t.month),
        "Day" => format!("{:02}", t.day),
        "Hour" => format!("{:02}", t.hour),
        "Minute" => format!("{:02}", t.minute),
        "Second" => format!("{:02}", t.second),
        "Millisecond" => format!("{:03}", t.millisecond),
        _ => return None,
    })
}

/// What a record file's name is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordName<'a> {
    /// The push domain (`{Domain}`).
    pub domain: &'a str,
    /// AppName (`{AppName}`).
    pub app: &'a str,
    /// StreamName (`{StreamID}`).
    pub stream: &'a str,
    /// [`RECORD_SOURCE_ORIGIN`] or the transcoding template id
    /// (`{RecordSource}`).
    pub record_source: &'a str,
    /// The recording's id, the same across a push's files (`{RecordId}`).
    pub record_id: &'a str,
    /// A random id the caller draws per file (`{RandomID}`).
    pub random_id: &'a str,
    /// Unix milliseconds of the file's first media.
    pub start_ms: i64,
    /// Unix milliseconds of the file's last media.
    pub end_ms: i64,
    /// The zone times are written in.
    pub zone: NamingZone,
}

impl RecordName<'_> {
    fn value(&self, name: &str) -> Option<String> {
        let start = CivilTime::from_unix_ms(self.start_ms, self.zone);
        let end = CivilTime::from_unix_ms(self.end_ms, self.zone);
        let text = match name {
            "StreamID" => self.stream,
            "Domain" => self.domain,
            "AppName" => self.app,
            "RecordSource" => self.record_source,
            "RecordId" => self.record_id,
            "RandomID" => self.random_id,
            _ => {
                return time_value("Start", name, &start).or_else(|| time_value("End", name, &end));
            }
        };
        Some(level_safe(text))
    }

    /// The file name `VodFileName` gives (its default when empty), without
    /// extension. `/` in the pattern is kept: the caller decides whether a
    /// level is welcome (see [`RecordName::vod_key`]).
    pub fn file_name(&self, vod_file_name: &str) -> String {
        let pattern = if vod_file_name.is_empty() {
            DEFAULT_VOD_FILE_NAME
        } else {
            vod_file_name
        };
        expand(pattern, |n| self.value(n))
    }

    /// The key of a file kept in livestack's own storage (CSS's VOD):
    /// `{Domain}/{AppName}/<file name>.<ext>`, so that streams of
    /// different domains and apps never meet.
    pub fn vod_key(&self, vod_file_name: &str, ext: &str) -> Result<String, KeyError> {
        finish_key(format!(
            "{}/{}/{}.{ext}",
            level_safe(self.domain),
            level_safe(self.app),
            self.file_name(vod_file_name).trim_start_matches('/')
        ))
    }

    /// The key of a file stored in a bucket: `CosBucketPath` (the
    /// documented example when empty) expanded, plus `.<ext>`. The path
    /// names the file itself, not a folder: CSS warns that a path without
    /// a time or `{RandomID}` makes files overwrite each other.
    pub fn cos_key(&self, cos_bucket_path: &str, ext: &str) -> Result<String, KeyError> {
        let pattern = if cos_bucket_path.is_empty() {
            DEFAULT_COS_BUCKET_PATH
        } else {
            cos_bucket_path
        };
        let path = expand(pattern, |n| self.value(n));
        if path.trim_matches('/').is_empty() {
            // `/` alone would name a file called `.flv`.
            return Err(KeyError::Empty);
        }
        finish_key(format!("{path}.{ext}"))
    }
}

/// What a snapshot's name is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotName<'a> {
    /// The push domain (prefixes local keys).
    pub domain: &'a str,
    /// AppName (prefixes local keys).
    pub app: &'a str,
    /// StreamName (`{StreamID}`).
    pub stream: &'a str,
    /// The picture's width in pixels (`{Width}`).
    pub width: u32,
    /// The picture's height in pixels (`{Height}`).
    pub height: u32,
    /// The file extension with its dot, `.jpg` (`{Ext}`).
    pub ext: &'a str,
    /// Unix milliseconds the picture was taken.
    pub time_ms: i64,
    /// The zone times are written in.
    pub zone: NamingZone,
}

impl SnapshotName<'_> {
    fn value(&self, name: &str) -> Option<String> {
        let t = CivilTime::from_unix_ms(self.time_ms, self.zone);
        Some(match name {
            "StreamID" => level_safe(self.stream),
            "Width" => self.width.to_string(),
            "Height" => self.height.to_string(),
            "Ext" => level_safe(self.ext),
            _ => return time_value("", name, &t),
        })
    }

    /// The key in a bucket: `CosPrefix` and `CosFileName` (their defaults
    /// when empty) expanded and joined by one `/`. CSS's `pic_url` is this
    /// key with a leading `/`.
    pub fn cos_key(&self, cos_prefix: &str, cos_file_name: &str) -> Result<String, KeyError> {
        let prefix = if cos_prefix.is_empty() {
            DEFAULT_SNAPSHOT_PREFIX
        } else {
            cos_prefix
        };
        let file = if cos_file_name.is_empty() {
            DEFAULT_SNAPSHOT_FILE_NAME
        } else {
            cos_file_name
        };
        let prefix = expand(prefix, |n| self.value(n));
        let file = expand(file, |n| self.value(n));
        let prefix = prefix.trim_end_matches('/');
        let file = file.trim_start_matches('/');
        if prefix.trim_start_matches('/').is_empty() {
            finish_key(file.to_owned())
        } else {
            finish_key(format!("{prefix}/{file}"))
        }
    }

    /// The key in livestack's own storage: `{Domain}/{AppName}/` before
    /// [`SnapshotName::cos_key`], since one directory serves every domain.
    pub fn local_key(&self, cos_prefix: &str, cos_file_name: &str) -> Result<String, KeyError> {
        let key = self.cos_key(cos_prefix, cos_file_name)?;
        finish_key(format!(
            "{}/{}/{key}",
            level_safe(self.domain),
            level_safe(self.app)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_times_turn_back_into_the_unix_times_they_came_from() {
        for ms in [
            0,
            1_675_302_995_123,
            -86_400_000,
            951_782_400_000,
            4_102_444_799_999,
        ] {
            for zone in [NamingZone::Utc, NamingZone::Utc8] {
                let c = CivilTime::from_unix_ms(ms, zone);
                assert_eq!(c.to_unix_ms(zone.offset_secs()), Some(ms), "{c:?}");
            }
        }
        let feb30 = CivilTime {
            year: 2023,
            month: 2,
            day: 30,
            hour: 0,
            minute: 0,
            second: 0,
            millisecond: 0,
        };
        assert_eq!(feb30.to_unix_ms(0), None);
    }

    #[test]
    fn bucket_names_follow_the_s3_rules() {
        for good in ["shots", "pics", "my-bucket.logs", "a1b"] {
            assert_eq!(check_bucket(good), Ok(()), "{good}");
        }
        for bad in [
            "..",
            "../../../../../../x/escape",
            "127.0.0.1:18080#",
            "192.168.1.1",
            "Upper",
            "ab",
            "-lead",
            "trail-",
            "a..b",
            "a/b",
            "a b",
            "x".repeat(64).as_str(),
        ] {
            assert!(check_bucket(bad).is_err(), "{bad}");
        }
    }

    /// 2018-12-17 19:06:59.123 Beijing time = 11:06:59.123 UTC.
    const T: i64 = 1_545_044_819_123;

    fn record() -> RecordName<'static> {
        RecordName {
            domain: "push.example.com",
            app: "live",
            stream: "cam",
            record_source: RECORD_SOURCE_ORIGIN,
            record_id: "42",
            random_id: "7319",
            start_ms: T,
            end_ms: T + 1_800_000 + 1,
            zone: NamingZone::Utc8,
        }
    }

    fn snapshot() -> SnapshotName<'static> {
        SnapshotName {
            domain: "push.example.com",
            app: "live",
            stream: "stream_name",
            width: 640,
            height: 352,
            ext: ".jpg",
            time_ms: T,
            zone: NamingZone::Utc8,
        }
    }

    #[test]
    fn civil_times_are_right_on_both_sides_of_epochs_leap_days_and_zones() {
        let cases: &[(i64, NamingZone, &str)] = &[
            (0, NamingZone::Utc, "1970-01-01 00:00:00.000"),
            (0, NamingZone::Utc8, "1970-01-01 08:00:00.000"),
            (-1, NamingZone::Utc, "1969-12-31 23:59:59.999"),
            (T, NamingZone::Utc, "2018-12-17 11:06:59.123"),
            (T, NamingZone::Utc8, "2018-12-17 19:06:59.123"),
            // 2024-02-29 16:00 UTC is already 1 March in Beijing.
            (
                1_709_222_400_000,
                NamingZone::Utc,
                "2024-02-29 16:00:00.000",
            ),
            (
                1_709_222_400_000,
                NamingZone::Utc8,
                "2024-03-01 00:00:00.000",
            ),
            // 2000 is a leap year (divisible by 400), 2100 is not.
            (951_782_400_000, NamingZone::Utc, "2000-02-29 00:00:00.000"),
            (
                4_107_542_400_000,
                NamingZone::Utc,
                "2100-03-01 00:00:00.000",
            ),
            // New Year's Eve in UTC is New Year's Day in Beijing.
            (
                1_704_038_400_000,
                NamingZone::Utc,
                "2023-12-31 16:00:00.000",
            ),
            (
                1_704_038_400_000,
                NamingZone::Utc8,
                "2024-01-01 00:00:00.000",
            ),
        ];
        for &(ms, zone, want) in cases {
            let t = CivilTime::from_unix_ms(ms, zone);
            let got = format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
                t.year, t.month, t.day, t.hour, t.minute, t.second, t.millisecond
            );
            assert_eq!(got, want, "{ms} in {zone:?}");
        }
    }

    #[test]
    fn civil_days_agree_with_the_time_crate_across_four_centuries() {
        // One day in every 97 from 1900 to 2300 covers every month,
        // leap rule and century.
        let mut day = -25_567_i64; // 1900-01-01
        while day < 120_000 {
            let (y, m, d) = civil_from_days(day);
            let expected = time::OffsetDateTime::from_unix_timestamp(day * 86_400)
                .expect("in range")
                .date();
            assert_eq!(
                (y, m, d),
                (
                    i64::from(expected.year()),
                    u32::from(u8::from(expected.month())),
                    u32::from(expected.day())
                ),
                "day {day}"
            );
            day += 97;
        }
    }

    #[test]
    fn record_file_names_expand_the_documented_placeholders() {
        let r = record();
        let cases: &[(&str, &str)] = &[
            ("", "cam_2018-12-17-19-06-59_2018-12-17-19-36-59"),
            (
                DEFAULT_VOD_FILE_NAME,
                "cam_2018-12-17-19-06-59_2018-12-17-19-36-59",
            ),
            (
                "{StreamID}-{StartMillisecond}-{EndMillisecond}",
                "cam-123-124",
            ),
            (
                "{EndYear}{EndMonth}{EndDay}{EndHour}{EndMinute}{EndSecond}",
                "20181217193659",
            ),
            // Unknown names, lone and nested braces stay as written.
            ("{Nope}-{StreamID", "{Nope}-{StreamID"),
            ("{{StreamID}}", "{cam}"),
            ("plain", "plain"),
            ("", "cam_2018-12-17-19-06-59_2018-12-17-19-36-59"),
        ];
        for (pattern, want) in cases {
            assert_eq!(r.file_name(pattern), *want, "pattern {pattern:?}");
        }
    }

    #[test]
    fn record_names_use_utc_when_asked() {
        let r = RecordName {
            zone: NamingZone::Utc,
            ..record()
        };
        assert_eq!(
            r.file_name(""),
            "cam_2018-12-17-11-06-59_2018-12-17-11-36-59"
        );
    }

    #[test]
    fn record_keys_of_vod_and_buckets() {
        let r = record();
        let cases: &[(&str, &str, Result<&str, KeyError>)] = &[
            (
                "vod",
                "",
                Ok("push.example.com/live/cam_2018-12-17-19-06-59_2018-12-17-19-36-59.flv"),
            ),
            ("vod", "/{StreamID}", Ok("push.example.com/live/cam.flv")),
            ("vod", "{StreamID}/../../x", Err(KeyError::DotLevel)),
            (
                "cos",
                "",
                Ok("origin/push.example.com/live/cam/42-7319/2018-12-17-19-06-59.flv"),
            ),
            (
                "cos",
                "/{AppName}/{StreamID}_{StartYear}{EndSecond}",
                Ok("live/cam_201859.flv"),
            ),
            ("cos", "/a//{StreamID}", Err(KeyError::EmptyLevel)),
            ("cos", "/../{StreamID}", Err(KeyError::DotLevel)),
            ("cos", "/", Err(KeyError::Empty)),
        ];
        for (kind, pattern, want) in cases {
            let got = match *kind {
                "vod" => r.vod_key(pattern, "flv"),
                _ => r.cos_key(pattern, "flv"),
            };
            assert_eq!(
                got.as_deref(),
                want.as_ref().map(|s| *s),
                "{kind} {pattern:?}"
            );
        }
    }

    #[test]
    fn a_stream_name_never_adds_or_escapes_a_level() {
        let r = RecordName {
            stream: "../a/b\\c",
            app: "..",
            ..record()
        };
        assert_eq!(
            r.cos_key("/{StreamID}", "mp4").as_deref(),
            Ok(".._a_b_c.mp4")
        );
        // An app named `..` is one level, and refused as such.
        assert_eq!(r.vod_key("x", "mp4"), Err(KeyError::DotLevel));
        assert_eq!(r.cos_key("/{AppName}/x", "mp4"), Err(KeyError::DotLevel));
    }

    #[test]
    fn snapshot_keys_follow_the_documented_defaults_and_example() {
        let s = snapshot();
        let cases: &[(&str, &str, Result<&str, KeyError>)] = &[
            // CSS's own pic_url example.
            (
                "",
                "",
                Ok("2018-12-17/stream_name-screenshot-19-06-59-640x352.jpg"),
            ),
            (
                DEFAULT_SNAPSHOT_PREFIX,
                DEFAULT_SNAPSHOT_FILE_NAME,
                Ok("2018-12-17/stream_name-screenshot-19-06-59-640x352.jpg"),
            ),
            ("/snaps/", "/{StreamID}{Ext}", Ok("snaps/stream_name.jpg")),
            ("/", "{StreamID}{Ext}", Ok("stream_name.jpg")),
            (
                "/{Year}/{Month}",
                "{Day}{Hour}{Minute}{Second}{Ext}",
                Ok("2018/12/17190659.jpg"),
            ),
            ("/..", "{StreamID}{Ext}", Err(KeyError::DotLevel)),
        ];
        for (prefix, file, want) in cases {
            assert_eq!(
                s.cos_key(prefix, file).as_deref(),
                want.as_ref().map(|s| *s),
                "{prefix:?} {file:?}"
            );
        }
        assert_eq!(
            s.local_key("", "").as_deref(),
            Ok("push.example.com/live/2018-12-17/stream_name-screenshot-19-06-59-640x352.jpg")
        );
    }

    #[test]
    fn keys_are_checked_for_everything_that_could_escape_a_root() {
        let cases: &[(&str, Result<(), KeyError>)] = &[
            ("a/b.flv", Ok(())),
            ("a.b/..c/d", Ok(())),
            ("", Err(KeyError::Empty)),
            ("/a", Err(KeyError::LeadingSlash)),
            ("a//b", Err(KeyError::EmptyLevel)),
            ("a/", Err(KeyError::EmptyLevel)),
            ("..", Err(KeyError::DotLevel)),
            ("a/./b", Err(KeyError::DotLevel)),
            ("a/../b", Err(KeyError::DotLevel)),
            ("a\\..\\b", Err(KeyError::BadChar('\\'))),
            ("a\nb", Err(KeyError::BadChar('\n'))),
            ("a\0b", Err(KeyError::BadChar('\0'))),
        ];
        for (key, want) in cases {
            assert_eq!(check_key(key), *want, "{key:?}");
        }
        assert_eq!(
            check_key(&"a".repeat(MAX_KEY_LEN + 1)),
            Err(KeyError::TooLong(MAX_KEY_LEN + 1))
        );
        assert_eq!(check_key(&"a".repeat(MAX_KEY_LEN)), Ok(()));
    }

    #[test]
    fn zones_parse_from_their_configuration_spelling() {
        assert_eq!(NamingZone::parse("UTC+8"), Some(NamingZone::Utc8));
        assert_eq!(NamingZone::parse(" utc "), Some(NamingZone::Utc));
        assert_eq!(NamingZone::parse("UTC+9"), None);
        assert_eq!(NamingZone::default(), NamingZone::Utc8);
    }
}
