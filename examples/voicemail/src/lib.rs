//! Voicemail: a prompt, a beep, a recording of at most a minute ended by `#`, the recording
//! played back to the caller, and a goodbye.

use std::time::Duration;

use opentact_sdk::{Call, Flow, Phase, Play, Record, Result, Tone};

/// The name the message is recorded under (and replayed by).
pub const MESSAGE: &str = "voicemail";

/// The longest message.
pub const MAX_MESSAGE: Duration = Duration::from_secs(60);

/// The recording request: [`MESSAGE`], at most [`MAX_MESSAGE`], ended early by `#`.
pub fn message() -> Record {
    Record::new(MESSAGE).max_length(MAX_MESSAGE).finish_key('#')
}

struct Voicemail;

impl Flow for Voicemail {
    fn handle_call(call: Call) -> Result<()> {
        call.answer()?;
        call.say("Please leave a message after the tone. Press hash when you are done.")?;
        call.tone(Tone::beep())?;
        let recording = call.record(message())?;
        opentact_sdk::report("voicemail", Phase::Finished, &[("recording", &recording.id)]);
        call.say("You said:")?;
        call.play(Play::recording(MESSAGE))?;
        call.say("Thank you. Goodbye.")?;
        call.hangup()
    }
}

opentact_sdk::export_flow!(Voicemail);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_a_minute_at_most_and_ends_with_hash() {
        let message = message();
        let request = message.request();
        assert_eq!(request.name, "voicemail");
        assert_eq!(request.max_length_ms, 60_000);
        assert_eq!(request.finish_key.as_deref(), Some("#"));
    }
}
