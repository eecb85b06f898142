//! Hostile: answers, then allocates and touches memory in 1 MiB chunks, keeping every chunk,
//! until the host's memory limit stops it.

/// One allocation.
const CHUNK: usize = 1024 * 1024;

struct MemBomb;

impl opentact_sdk::Flow for MemBomb {
    fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
        call.answer()?;
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Non-zero bytes: every page is written, not left to a lazily zeroed allocation.
            hoard.push(vec![0xA5; CHUNK]);
            std::hint::black_box(&mut hoard);
        }
    }
}

opentact_sdk::export_flow!(MemBomb);
