//! Parks in a gather for an hour: the load program parks thousands of these at once.

// The flow is exported only in the wasm32 component; a native build (clippy, tests) has no
// export, so the flow type looks unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::time::Duration;

use opentact_sdk::{Call, Flow, Gather, Result};

struct Park;

impl Flow for Park {
    fn handle_call(call: Call) -> Result<()> {
        call.answer()?;
        call.gather(Gather::new().max_digits(4).first_digit_timeout(Duration::from_secs(3600)))?;
        call.hangup()
    }
}

opentact_sdk::export_flow!(Park);
