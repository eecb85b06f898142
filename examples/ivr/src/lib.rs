//! An IVR: welcome, a one-key menu with two attempts, sales by number, support by SIP user.

// The flow is exported only in the wasm32 component; a native build (clippy, tests) has no
// export, so the flow type looks unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::time::Duration;

use opentact_sdk::{Call, Dial, Error, Flow, Gather, Result, Say};

/// What the caller chose.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// 1.
    Sales,
    /// 2.
    Support,
    /// Nothing pressed.
    NoInput,
    /// Anything else.
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

struct Ivr;

impl Flow for Ivr {
    fn handle_call(call: Call) -> Result<()> {
        call.answer()?;
        call.say(Say::new("Welcome to Acme."))?;
        let menu = Gather::new()
            .prompt(Say::new("Press 1 for sales, 2 for support."))
            .attempts(2)
            .first_digit_timeout(Duration::from_secs(10));
        match choose(&call.gather(menu)?.digits) {
            Choice::Sales => {
                match call.dial(Dial::new().number("12125550100").timeout(Duration::from_secs(20))) {
                    Ok(_) | Err(Error::Busy | Error::NoAnswer | Error::Failed(_)) => {}
                    Err(other) => return Err(other),
                }
            }
            Choice::Support => {
                if let Err(Error::Busy | Error::NoAnswer | Error::Failed(_)) =
                    call.dial(Dial::new().user("support@acme.sip.example"))
                {
                    call.say(Say::new("Support is busy, please call again later."))?;
                }
            }
            Choice::NoInput => call.say(Say::new("Goodbye."))?,
            Choice::Invalid => call.say(Say::new("That is not an option."))?,
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
    }
}
