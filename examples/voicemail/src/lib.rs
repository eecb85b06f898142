//! Voicemail: a prompt, a beep, a recording ended by `#`, and the recording played back.

// The flow is exported only in the wasm32 component; a native build (clippy, tests) has no
// export, so the flow type looks unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::time::Duration;

use opentact_sdk::{Call, Flow, Play, Record, Result, Say, Tone};

/// The name the message is recorded under.
pub const MESSAGE: &str = "voicemail";

struct Voicemail;

impl Flow for Voicemail {
    fn handle_call(call: Call) -> Result<()> {
        call.answer()?;
        call.say(Say::new("Please leave a message after the tone. Press hash when you are done."))?;
        call.tone(Tone::new([1000]).cadence(Duration::from_millis(500), Duration::ZERO).loops(1))?;
        let recording =
            call.record(Record::new(MESSAGE).max_length(Duration::from_secs(60)).finish_key(Some('#')))?;
        opentact_sdk::report("voicemail", false, &[("recording", &recording.id)]);
        call.say(Say::new("You said:"))?;
        call.play(Play::recording(MESSAGE))?;
        call.say(Say::new("Goodbye."))?;
        call.hangup()
    }
}

opentact_sdk::export_flow!(Voicemail);
