//! The flow host's number directory, answered from the platform's number data.

use opentact_flows::{Location, NumberDirectory};

/// Looks numbers up in `opentact-numbers`.
#[derive(Debug, Default)]
pub struct NumberData;

impl NumberDirectory for NumberData {
    fn lookup(&self, number: &str) -> Option<Location> {
        opentact_numbers::lookup(number).map(|found| Location {
            country: found.country,
            state: found.state,
            county: found.county,
            time_zone: found.time_zones.into_iter().next(),
        })
    }
}
