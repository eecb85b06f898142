//! Hostile: answers, then recurses without bound. Each frame keeps an array alive across the
//! recursive call and uses it afterwards, so the recursion cannot become a loop.

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
