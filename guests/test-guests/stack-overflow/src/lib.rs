//! Hostile: answers, then recurses without bound.

// The flow is exported only in the wasm32 component; a native build (clippy, tests) has no
// export, so the flow type looks unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

#[inline(never)]
#[allow(unconditional_recursion)] // the point of this guest
fn descend(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 128]);
    descend(depth + 1).wrapping_add(frame[(depth % 128) as usize])
}

struct StackOverflow;

impl opentact_sdk::Flow for StackOverflow {
    fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
        call.answer()?;
        std::hint::black_box(descend(0));
        call.hangup()
    }
}

opentact_sdk::export_flow!(StackOverflow);
