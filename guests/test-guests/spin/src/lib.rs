//! Hostile: answers, then computes forever without waiting on the call. The host's CPU budgets
//! (epoch interruption) must stop it while other calls go on.
//!
//! It tries the two ways around a per-segment budget: by default it polls the call's state
//! between slices of computation (a query does not end a CPU segment); on a call whose id
//! contains `pausing` it makes a zero-length pause between 30 ms slices (a wait that returns at
//! once ends the segment, so only the call's total CPU budget stops it).

use std::time::{Duration, Instant};

struct Spin;

fn compute_for(slice: Duration) {
    let started = Instant::now();
    let mut counter = 0u64;
    while started.elapsed() < slice {
        // black_box keeps the loop (and its side-effect-free body) from being optimised away.
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

impl opentact_sdk::Flow for Spin {
    fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
        call.answer()?;
        let pausing = call.id().contains("pausing");
        loop {
            if pausing {
                compute_for(Duration::from_millis(30));
                call.pause(Duration::ZERO)?;
            } else {
                compute_for(Duration::from_millis(5));
                let _ = call.state();
            }
        }
    }
}

opentact_sdk::export_flow!(Spin);
