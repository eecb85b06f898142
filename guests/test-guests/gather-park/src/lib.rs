//! Parks in a gather for an hour: the load program parks thousands of these at once to measure
//! what a waiting flow costs.

use std::time::Duration;

use opentact_sdk::{Call, Flow, Gather, Result};

struct GatherPark;

impl Flow for GatherPark {
    fn handle_call(call: Call) -> Result<()> {
        call.answer()?;
        call.gather(Gather::new().max_digits(4).first_digit_timeout(Duration::from_secs(3600)))?;
        call.hangup()
    }
}

opentact_sdk::export_flow!(GatherPark);
