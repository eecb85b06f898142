//! Hostile: reports flow steps in a tight loop (a million of them, each with a few hundred
//! bytes of detail), then says something and hangs up if the host ever lets it finish. The host
//! must keep at most its per-call event budget of them and stop the flow when it keeps going.

/// Steps reported.
const REPORTS: u32 = 1_000_000;

struct ReportFlood;

impl opentact_sdk::Flow for ReportFlood {
    fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
        call.answer()?;
        let padding = "x".repeat(200);
        for step in 0..REPORTS {
            let step = step.to_string();
            opentact_sdk::report(
                "flood",
                opentact_sdk::Phase::Finished,
                &[("step", &step), ("pad", &padding)],
            );
        }
        call.say("still here")?;
        call.hangup()
    }
}

opentact_sdk::export_flow!(ReportFlood);
