//! Follow-me: ring a SIP user and two phones at once for 20 s; whoever answers first gets the
//! call. When nobody can take it, the caller leaves a message.

use std::time::Duration;

use opentact_sdk::{Call, Dial, Error, Flow, Record, Result, Tone};

/// How long the targets ring.
pub const RING_FOR: Duration = Duration::from_secs(20);

/// Where to look for the person, all rung in parallel: the desk phone (a SIP user), the
/// mobile and the home phone.
pub fn targets() -> Dial {
    Dial::new().user("alice@acme.sip.example").number("12125550101").number("12125550102").timeout(RING_FOR)
}

/// Whether a failed dial should end in a message: nobody answered, everyone was busy, or the
/// targets could not be reached. Anything else (the caller hung up…) ends the flow.
pub fn take_a_message(error: &Error) -> bool {
    matches!(error, Error::NoAnswer | Error::Busy | Error::Failed(_))
}

struct FollowMe;

impl Flow for FollowMe {
    fn handle_call(call: Call) -> Result<()> {
        call.answer()?;
        match call.dial(targets()) {
            Ok(_) => {}
            Err(error) if take_a_message(&error) => {
                call.say("We could not reach anyone. Please leave a message after the tone.")?;
                call.tone(Tone::beep())?;
                call.record(Record::new("message").max_length(Duration::from_secs(120)))?;
                call.say("Thank you. Goodbye.")?;
            }
            Err(other) => return Err(other),
        }
        call.hangup()
    }
}

opentact_sdk::export_flow!(FollowMe);

#[cfg(test)]
mod tests {
    use opentact_sdk::DialTarget;

    use super::*;

    #[test]
    fn three_targets_ring_in_parallel_for_twenty_seconds() {
        let dial = targets();
        assert!(matches!(
            dial.targets(),
            [DialTarget::User(_), DialTarget::Number(_), DialTarget::Number(_)]
        ));
        assert_eq!(dial.request().timeout_ms, 20_000);
    }

    #[test]
    fn unreachable_targets_take_a_message_but_a_hangup_does_not() {
        assert!(take_a_message(&Error::NoAnswer));
        assert!(take_a_message(&Error::Busy));
        assert!(take_a_message(&Error::Failed("503".into())));
        assert!(!take_a_message(&Error::Hangup));
        assert!(!take_a_message(&Error::LimitExceeded("channels".into())));
    }
}
