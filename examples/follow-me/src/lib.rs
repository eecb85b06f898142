//! Follow-me: ring a SIP user and two phones at once; whoever answers first gets the call.
//! Nobody → take a message.

// The flow is exported only in the wasm32 component; a native build (clippy, tests) has no
// export, so the flow type looks unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::time::Duration;

use opentact_sdk::{Call, Dial, Error, Flow, Record, Result, Say};

/// Where to look for the person, in parallel.
pub fn targets() -> Dial {
    Dial::new()
        .user("alice@acme.sip.example")
        .number("12125550101")
        .number("12125550102")
        .timeout(Duration::from_secs(20))
}

struct FollowMe;

impl Flow for FollowMe {
    fn handle_call(call: Call) -> Result<()> {
        call.answer()?;
        match call.dial(targets()) {
            Ok(_) => {}
            Err(Error::NoAnswer | Error::Busy | Error::Failed(_)) => {
                call.say(Say::new("We could not reach anyone. Please leave a message after the tone."))?;
                call.record(Record::new("message").max_length(Duration::from_secs(120)))?;
            }
            Err(other) => return Err(other),
        }
        call.hangup()
    }
}

opentact_sdk::export_flow!(FollowMe);
