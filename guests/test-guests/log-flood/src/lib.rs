//! Hostile: floods stdout and stderr (10 million lines each), then hangs up normally if the
//! host ever lets it finish. The host must cap what it forwards to the log and keep going.

use std::io::Write;

/// Lines written to each stream.
const LINES: u32 = 10_000_000;

struct LogFlood;

impl opentact_sdk::Flow for LogFlood {
    fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
        call.answer()?;
        let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
        for line in 0..LINES {
            // Write errors are ignored: a closed or capped stream must not end the flood.
            let _ = writeln!(stdout, "flooding stdout, line {line}");
            let _ = writeln!(stderr, "flooding stderr, line {line}");
        }
        call.say("still here")?;
        call.hangup()
    }
}

opentact_sdk::export_flow!(LogFlood);
