//! An SMS flow for the flow host's tests: what `handle-sms` does is the message's first word.
//!
//! - `reply …`: sends the rest back to the sender, from the receiving number (the default);
//! - `from N …`: sends the rest back from the number `N`;
//! - `flood`: sends until the platform refuses, then fails with the refusal;
//! - `answer`: tries to answer a call (an SMS flow has none) and fails with the error's text;
//! - `info`: asks for the call's info (the host stops the flow);
//! - `spin`: computes forever; `panic`: panics;
//! - anything else: does nothing.
//!
//! Its `handle-call` sends an SMS to the caller from the call's number.

use opentact_sdk::{Call, Flow, Result, Sms, SmsMessage, send_sms};

struct Probe;

impl Flow for Probe {
    fn handle_call(call: Call) -> Result<()> {
        let id = call.send_sms(Sms::new(call.from(), "thanks for calling"))?;
        println!("sent {id}");
        Ok(())
    }

    fn handle_sms(message: SmsMessage) -> Result<()> {
        let (word, rest) = message.text.split_once(' ').unwrap_or((message.text.as_str(), ""));
        match word {
            "reply" => {
                let id = send_sms(Sms::new(&message.from, rest))?;
                println!("sent {id}");
            }
            "from" => {
                let (number, text) = rest.split_once(' ').unwrap_or((rest, "hi"));
                send_sms(Sms::new(&message.from, text).from(number))?;
            }
            "flood" => loop {
                send_sms(Sms::new(&message.from, "again"))?;
            },
            "answer" => Call::__from_info(opentact_sdk::bindings::opentact::flow::types::CallInfo {
                id: String::new(),
                account: message.account.clone(),
                app: message.app.clone(),
                from: message.from.clone(),
                to: message.to.clone(),
                tn: Some(message.tn),
                direction: opentact_sdk::Direction::Inbound,
                state: opentact_sdk::CallState::Ringing,
                time_zone: None,
            })
            .answer()?,
            "info" => {
                let info = opentact_sdk::bindings::opentact::flow::call::info();
                println!("call {}", info.id);
            }
            "spin" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
                }
            }
            "panic" => panic!("the probe was asked to panic"),
            _ => {}
        }
        Ok(())
    }
}

opentact_sdk::export_flow!(Probe);
