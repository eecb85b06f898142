//! The trivial SDK flow of the flow-start benchmark: answer, say "hello", hang up.

struct Hello;

impl opentact_sdk::Flow for Hello {
    fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
        call.answer()?;
        call.say("hello")?;
        call.hangup()
    }
}

opentact_sdk::export_flow!(Hello);
