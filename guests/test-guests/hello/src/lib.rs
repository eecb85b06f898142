//! The trivial SDK flow of the flow-start benchmark: answer, say hello, hang up.

// The flow is exported only in the wasm32 component; a native build (clippy, tests) has no
// export, so the flow type looks unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

struct Hello;

impl opentact_sdk::Flow for Hello {
    fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
        call.answer()?;
        call.say(opentact_sdk::Say::new("hello"))?;
        call.hangup()
    }
}

opentact_sdk::export_flow!(Hello);
