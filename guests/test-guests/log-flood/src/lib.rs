//! Hostile: floods stdout and stderr, then hangs up if it is allowed to finish.

// The flow is exported only in the wasm32 component; a native build (clippy, tests) has no
// export, so the flow type looks unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

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
