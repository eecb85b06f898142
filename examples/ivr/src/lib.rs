//! An IVR: a welcome, a one-key menu with two attempts, sales by phone number, support by SIP
//! user, a goodbye when the caller says nothing and a retry-free "not an option" otherwise.
//!
//! The menu's decision is the pure function [`choose`]; the flow only carries it out.

use std::time::Duration;

use opentact_sdk::{Call, Dial, Error, Flow, Gather, Result, Say};

/// The sales line: a phone number, rung through the account's outbound trunk.
pub const SALES_NUMBER: &str = "12125550100";

/// The support desk: a SIP user registered on the platform.
pub const SUPPORT_USER: &str = "support@acme.sip.example";

/// What the caller chose in the menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// 1: sales.
    Sales,
    /// 2: support.
    Support,
    /// Nothing pressed, after every attempt.
    NoInput,
    /// Any other key.
    Invalid,
}

/// Map the menu's digits to a choice.
pub fn choose(digits: &str) -> Choice {
    match digits {
        "1" => Choice::Sales,
        "2" => Choice::Support,
        "" => Choice::NoInput,
        _ => Choice::Invalid,
    }
}

/// The menu: one key, asked twice when the caller says nothing, 10 s to answer each time.
pub fn menu() -> Gather {
    Gather::new()
        .prompt(Say::new("Press 1 for sales, 2 for support."))
        .max_digits(1)
        .attempts(2)
        .first_digit_timeout(Duration::from_secs(10))
}

/// Ring `dial`; when nobody takes the call, say `unavailable`. The caller hanging up (or any
/// other error) ends the flow.
fn connect(call: &Call, dial: Dial, unavailable: &str) -> Result<()> {
    match call.dial(dial) {
        Ok(_) => Ok(()),
        Err(Error::Busy | Error::NoAnswer | Error::Failed(_)) => call.say(unavailable),
        Err(other) => Err(other),
    }
}

struct Ivr;

impl Flow for Ivr {
    fn handle_call(call: Call) -> Result<()> {
        call.answer()?;
        call.say("Welcome to Acme.")?;
        let pressed = call.gather(menu())?;
        match choose(&pressed.digits) {
            Choice::Sales => connect(
                &call,
                Dial::new().number(SALES_NUMBER).timeout(Duration::from_secs(20)),
                "Sales is not available right now, please call again later.",
            )?,
            Choice::Support => {
                connect(&call, Dial::new().user(SUPPORT_USER), "Support is busy, please call again later.")?
            }
            Choice::NoInput => call.say("Goodbye.")?,
            Choice::Invalid => call.say("That is not an option.")?,
        }
        call.hangup()
    }
}

opentact_sdk::export_flow!(Ivr);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_choose() {
        assert_eq!(choose("1"), Choice::Sales);
        assert_eq!(choose("2"), Choice::Support);
        assert_eq!(choose(""), Choice::NoInput);
        assert_eq!(choose("9"), Choice::Invalid);
        assert_eq!(choose("*"), Choice::Invalid);
        assert_eq!(choose("12"), Choice::Invalid);
    }

    #[test]
    fn the_menu_takes_one_key_with_two_attempts() {
        let menu = menu();
        let request = menu.request();
        assert_eq!((request.max_digits, request.attempts), (1, 2));
        assert_eq!(request.first_digit_timeout_ms, 10_000);
        assert_eq!(request.prompts.len(), 1);
    }
}
