//! The platform's number data.

use crate::bindings::opentact::flow::numbers;

pub use numbers::Location;

/// Locate a number (digits, country code first); `None` when the platform does not know it.
///
/// ```no_run
/// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
/// let from_new_jersey = opentact_sdk::lookup_number(call.from())
///     .is_some_and(|at| at.country == "US" && at.state.as_deref() == Some("NJ"));
/// # Ok(()) }
/// ```
pub fn lookup_number(number: &str) -> Option<Location> {
    numbers::lookup(number)
}
