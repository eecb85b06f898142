//! Business hours: Monday to Friday, 09:00–17:00 at UTC−5, calls are put through; otherwise the
//! caller hears the hours. The decision is a pure function of the time.

// The flow is exported only in the wasm32 component; a native build (clippy, tests) has no
// export, so the flow type looks unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentact_sdk::{Call, Dial, Flow, Result, Say};

/// The office's offset from UTC, seconds (UTC−5; no time-zone database in the component).
pub const UTC_OFFSET_SECONDS: i64 = -5 * 3600;

/// Whether the office is open at `unix_seconds`.
pub fn is_open(unix_seconds: i64) -> bool {
    let local = unix_seconds + UTC_OFFSET_SECONDS;
    let days = local.div_euclid(86_400);
    let seconds = local.rem_euclid(86_400);
    // 1970-01-01 was a Thursday: day 0 → index 3 with Monday = 0.
    let weekday = (days + 3).rem_euclid(7);
    weekday < 5 && (9 * 3600..17 * 3600).contains(&seconds)
}

struct BusinessHours;

impl Flow for BusinessHours {
    fn handle_call(call: Call) -> Result<()> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        call.answer()?;
        if is_open(now) {
            if call.dial(Dial::new().number("12125550100").timeout(Duration::from_secs(25))).is_err() {
                call.say(Say::new("Nobody could take your call."))?;
            }
        } else {
            call.say(Say::new("We are closed. Our hours are nine to five, Monday to Friday."))?;
        }
        call.hangup()
    }
}

opentact_sdk::export_flow!(BusinessHours);

#[cfg(test)]
mod tests {
    use super::is_open;

    /// 2026-11-24 (a Tuesday) at the given UTC hour and minute.
    fn tuesday(hour: i64, minute: i64) -> i64 {
        1_795_478_400 + hour * 3600 + minute * 60
    }

    #[test]
    fn weekday_office_hours_at_utc_minus_five() {
        assert!(is_open(tuesday(14, 0)), "09:00 local");
        assert!(is_open(tuesday(21, 59)), "16:59 local");
        assert!(!is_open(tuesday(22, 0)), "17:00 local is closed");
        assert!(!is_open(tuesday(13, 59)), "08:59 local");
    }

    #[test]
    fn weekends_are_closed() {
        let saturday_noon_local = tuesday(17, 0) + 4 * 86_400;
        assert!(!is_open(saturday_noon_local));
        let friday_noon_local = tuesday(17, 0) + 3 * 86_400;
        assert!(is_open(friday_noon_local));
    }
}
