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

/// `YYYY-MM-DD` of a Unix time in UTC: the date of a TC3 credential scope.
pub fn utc_date(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]");
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&fmt)
        .unwrap_or_default()
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
    fn the_credential_date_is_the_utc_date() {
        assert_eq!(utc_date(1551113065), "2019-02-25");
    }
}
