//! Hostile: answers, then executes `unreachable` (a Wasm trap). On the host target, where there
//! is no such instruction, it panics instead.

struct Trap;

impl opentact_sdk::Flow for Trap {
    fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
        call.answer()?;
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
        #[cfg(not(target_arch = "wasm32"))]
        panic!("trap");
    }
}

opentact_sdk::export_flow!(Trap);
