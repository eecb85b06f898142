//! Hostile: answers, then computes forever without another call-control request. The host's
//! CPU budget (epoch interruption) must stop it while other calls go on.

struct Spin;

impl opentact_sdk::Flow for Spin {
    fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
        call.answer()?;
        let mut counter = 0u64;
        loop {
            // black_box keeps the loop (and its side-effect-free body) from being optimised away.
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
    }
}

opentact_sdk::export_flow!(Spin);
