//! Hostile: answers, then allocates and touches memory until something stops it.

// The flow is exported only in the wasm32 component; a native build (clippy, tests) has no
// export, so the flow type looks unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

struct MemBomb;

impl opentact_sdk::Flow for MemBomb {
    fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
        call.answer()?;
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1024 * 1024]);
            std::hint::black_box(&hoard);
        }
    }
}

opentact_sdk::export_flow!(MemBomb);
