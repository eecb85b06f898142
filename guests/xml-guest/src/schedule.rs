//! Local time for `<Schedule>`: the weekday and seconds since midnight in a time zone.

use chrono::{Datelike, TimeZone, Timelike};
use opentact_xml::ast::Weekday;

/// The local weekday and seconds since midnight of `unix_seconds` in `zone` (an IANA name;
/// `None` = UTC).
pub fn local_time(unix_seconds: i64, zone: Option<&str>) -> Result<(Weekday, u32), String> {
    let utc = chrono::Utc
        .timestamp_opt(unix_seconds, 0)
        .single()
        .ok_or_else(|| format!("invalid time {unix_seconds}"))?;
    let local = match zone {
        None => utc.naive_utc(),
        Some(name) => {
            let tz: chrono_tz::Tz = name.parse().map_err(|_| format!("unknown time zone {name:?}"))?;
            utc.with_timezone(&tz).naive_local()
        }
    };
    let day = Weekday::from_monday(local.weekday().num_days_from_monday());
    Ok((day, local.num_seconds_from_midnight()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-24T15:30:00Z, a Tuesday.
    const TUESDAY_1530_UTC: i64 = 1_795_534_200;

    #[test]
    fn converts_to_the_zone() {
        assert_eq!(local_time(TUESDAY_1530_UTC, None), Ok((Weekday::Tue, 15 * 3600 + 1800)));
        assert_eq!(
            local_time(TUESDAY_1530_UTC, Some("America/New_York")),
            Ok((Weekday::Tue, 10 * 3600 + 1800))
        );
        // 04:30Z on Tuesday is 23:30 on Monday in New York.
        assert_eq!(
            local_time(TUESDAY_1530_UTC - 11 * 3600, Some("America/New_York")),
            Ok((Weekday::Mon, 23 * 3600 + 1800))
        );
        assert!(local_time(0, Some("Mars/Olympus")).is_err());
    }
}
