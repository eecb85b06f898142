//! Hostile: answers, then allocates and touches memory until something stops it.

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
