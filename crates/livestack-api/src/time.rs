//! Time formats of the wire: the API mixes UTC ISO-8601 and Beijing time.

use time::macros::{format_description, offset};
use time::OffsetDateTime;

/// `yyyy-mm-dd HH:MM:SS` in Beijing time (UTC+8), as `DomainInfo.CreateTime`
/// and many other fields are documented.
pub fn beijing(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset!(+8))
        .format(&fmt)
        .unwrap_or_default()
}

/// `yyyy-mm-ddTHH:MM:SSZ` holding Beijing (UTC+8) wall-clock time: the
/// fields the API documents as "UTC 格式" that are "北京时间" all the same
/// (`CertInfo.CreateTime`, `2018-11-30T15:50:12Z` in the official example).
/// The `Z` is the API's, not a claim that the value is UTC.
pub fn beijing_iso(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset!(+8))
        .format(&fmt)
        .unwrap_or_default()
}

/// `YYYY-MM-DD` of a Unix time in UTC: the date of a TC3 credential scope.
pub fn utc_date(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]");
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&fmt)
        .unwrap_or_default()
}

/// Whether `date` is [`utc_date`] of `unix`, without formatting it (a
/// signed request checks its credential scope's date with this).
pub fn is_utc_date_of(date: &str, unix: i64) -> bool {
    // By hand: `time`'s parser, driven by a format description, cost
    // about 1 % of a signed request's CPU.
    fn number(digits: &[u8]) -> Option<i32> {
        digits.iter().try_fold(0_i32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + i32::from(d - b'0'))
        })
    }
    let b = date.as_bytes();
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = *b else {
        return false;
    };
    let Ok(at) = OffsetDateTime::from_unix_timestamp(unix) else {
        return false;
    };
    let (year, month, day) = at.to_calendar_date();
    number(&[y0, y1, y2, y3]) == Some(year)
        && number(&[m0, m1]) == Some(i32::from(u8::from(month)))
        && number(&[d0, d1]) == Some(i32::from(day))
}

/// `2018-11-29T19:00:00Z`: the UTC ISO-8601 form of most stream fields.
pub fn utc_iso(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&fmt)
        .unwrap_or_default()
}

/// Parses a time parameter: ISO-8601 with `Z` or an offset
/// (`2018-11-29T19:00:00Z`, `2018-11-30T03:00:00+08:00`), or Beijing time
/// written `yyyy-mm-dd HH:MM:SS`, as the API documents them.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(s, &fmt)
        .ok()
        .map(|t| t.assume_offset(offset!(+8)).unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_time_is_eight_hours_ahead_of_utc() {
        assert_eq!(beijing(0), "1970-01-01 08:00:00");
        assert_eq!(beijing(1551113065), "2019-02-26 00:44:25");
    }

    #[test]
    fn the_iso_form_carries_beijing_wall_clock_time() {
        assert_eq!(beijing_iso(0), "1970-01-01T08:00:00Z");
        assert_eq!(beijing_iso(1551113065), "2019-02-26T00:44:25Z");
    }

    #[test]
    fn times_parse_in_every_documented_form() {
        assert_eq!(parse_time("2018-11-29T19:00:00Z"), Some(1543518000));
        assert_eq!(parse_time("2018-11-30T03:00:00+08:00"), Some(1543518000));
        assert_eq!(parse_time("2018-11-30 03:00:00"), Some(1543518000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(utc_iso(1543518000), "2018-11-29T19:00:00Z");
    }

    #[test]
    fn the_credential_date_is_the_utc_date() {
        assert_eq!(utc_date(1551113065), "2019-02-25");
        // 2019-02-26 00:44:25 in Beijing, still the 25th in UTC.
        assert!(is_utc_date_of("2019-02-25", 1551113065));
        assert!(!is_utc_date_of("2019-02-26", 1551113065));
        assert!(is_utc_date_of("1970-01-01", 0));
        assert!(!is_utc_date_of("2019-2-25", 1551113065));
        assert!(!is_utc_date_of("2019-02-30", 1551113065));
    }
}
