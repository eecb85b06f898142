//! Hostile: floods stdout and stderr, then hangs up if it is allowed to finish.

struct LogFlood;

impl opentact_sdk::Flow for LogFlood {
    fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
        call.answer()?;
        for line in 0..200_000u32 {
            println!("flooding stdout, line {line}");
            eprintln!("flooding stderr, line {line}");
        }
        call.say(opentact_sdk::Say::new("still here"))?;
        call.hangup()
    }
}

opentact_sdk::export_flow!(LogFlood);
