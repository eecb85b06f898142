//! Business hours: Monday to Friday, 09:00–17:00 at the office's fixed UTC offset (UTC−5),
//! calls are put through to the front desk; otherwise the caller hears the hours.
//!
//! The component has no time-zone database: local time is UTC plus a configured offset, so
//! daylight saving time is not followed (change [`OFFICE`] twice a year, or read the account's
//! time zone in a flow that needs it). The decision is the pure function [`OfficeHours::is_open`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentact_sdk::{Call, Dial, Error, Flow, Result};

/// When an office is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfficeHours {
    /// Local time minus UTC, in seconds (UTC−5 is `-5 * 3600`).
    pub utc_offset_seconds: i64,
    /// Opening time, seconds after local midnight (inclusive).
    pub opens: u32,
    /// Closing time, seconds after local midnight (exclusive).
    pub closes: u32,
    /// Open days, Monday first.
    pub days: [bool; 7],
}

/// The office this example serves: Monday to Friday, 09:00–17:00, UTC−5.
pub const OFFICE: OfficeHours = OfficeHours {
    utc_offset_seconds: -5 * 3600,
    opens: 9 * 3600,
    closes: 17 * 3600,
    days: [true, true, true, true, true, false, false],
};

/// The front desk, rung when the office is open.
pub const FRONT_DESK: &str = "12125550100";

const DAY: i64 = 86_400;

impl OfficeHours {
    /// The local weekday (0 = Monday) and the seconds since local midnight at `unix_seconds`.
    pub fn local_time(&self, unix_seconds: i64) -> (usize, u32) {
        let local = unix_seconds + self.utc_offset_seconds;
        // 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday.
        let weekday = (local.div_euclid(DAY) + 3).rem_euclid(7);
        (weekday as usize, local.rem_euclid(DAY) as u32)
    }

    /// Whether the office is open at `unix_seconds` (seconds since the Unix epoch, UTC).
    pub fn is_open(&self, unix_seconds: i64) -> bool {
        let (weekday, seconds) = self.local_time(unix_seconds);
        self.days[weekday] && (self.opens..self.closes).contains(&seconds)
    }
}

/// Seconds since the Unix epoch now (the host's clock; the flow runner's `--at` sets it).
fn now() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

struct BusinessHours;

impl Flow for BusinessHours {
    fn handle_call(call: Call) -> Result<()> {
        call.answer()?;
        if OFFICE.is_open(now()) {
            match call.dial(Dial::new().number(FRONT_DESK).timeout(Duration::from_secs(25))) {
                Ok(_) => {}
                Err(Error::Busy | Error::NoAnswer | Error::Failed(_)) => {
                    call.say("Nobody could take your call. Please try again later.")?
                }
                Err(other) => return Err(other),
            }
        } else {
            call.say("We are closed. Our hours are nine to five, Monday to Friday, Eastern time.")?;
        }
        call.hangup()
    }
}

opentact_sdk::export_flow!(BusinessHours);

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-24, a Tuesday, at the given UTC hour and minute.
    fn tuesday_utc(hour: i64, minute: i64) -> i64 {
        1_795_478_400 + hour * 3600 + minute * 60
    }

    #[test]
    fn weekday_office_hours_at_utc_minus_five() {
        assert!(OFFICE.is_open(tuesday_utc(14, 0)), "09:00 local opens");
        assert!(OFFICE.is_open(tuesday_utc(21, 59)), "16:59 local");
        assert!(!OFFICE.is_open(tuesday_utc(22, 0)), "17:00 local is closed");
        assert!(!OFFICE.is_open(tuesday_utc(13, 59)), "08:59 local");
    }

    #[test]
    fn the_local_day_is_the_offset_one() {
        // 02:00 UTC on Tuesday is still Monday 21:00 at UTC−5.
        assert_eq!(OFFICE.local_time(tuesday_utc(2, 0)), (0, 21 * 3600));
        assert_eq!(OFFICE.local_time(tuesday_utc(5, 0)), (1, 0));
    }

    #[test]
    fn weekends_are_closed() {
        let noon_local = tuesday_utc(17, 0);
        assert!(OFFICE.is_open(noon_local + 3 * DAY), "Friday");
        assert!(!OFFICE.is_open(noon_local + 4 * DAY), "Saturday");
        assert!(!OFFICE.is_open(noon_local + 5 * DAY), "Sunday");
        assert!(OFFICE.is_open(noon_local + 6 * DAY), "Monday");
    }

    #[test]
    fn times_before_the_epoch_still_have_a_weekday() {
        // 1969-12-31 was a Wednesday; 12:00 UTC is 07:00 at UTC−5.
        assert_eq!(OFFICE.local_time(-12 * 3600), (2, 7 * 3600));
    }

    #[test]
    fn other_offsets_shift_the_window() {
        let tokyo = OfficeHours { utc_offset_seconds: 9 * 3600, ..OFFICE };
        assert!(tokyo.is_open(tuesday_utc(0, 0)), "09:00 in Tokyo");
        assert!(!tokyo.is_open(tuesday_utc(14, 0)), "23:00 in Tokyo");
    }
}
