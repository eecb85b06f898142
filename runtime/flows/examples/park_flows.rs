//! Load program: park N concurrent flows, each blocked in a gather (the `gather-park` guest on
//! a real-time simulated call), and print the resident memory they cost.
//!
//! `cargo run --release -p opentact-flows --example park_flows -- --flows 10000`
//! Target on the 2-core reference machine: 10 000 parked flows in under 1 GiB, none failing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use opentact_call::events::{CallEvent, EventKind, EventSink, Phase};
use opentact_call::model::{CallInfo, Direction};
use opentact_call::simulated::{SimulatedCall, SimulatedCallConfig};
use opentact_call::{CallSession, FlowOutcome, SessionConfig};
use opentact_flows::{CallContext, ControlMode, FlowHost, HostConfig, check_map_count};

/// Counts flows that reached their gather.
struct ParkedCounter(Arc<AtomicUsize>);

impl EventSink for ParkedCounter {
    fn emit(&self, event: &CallEvent) {
        if matches!(&event.kind, EventKind::Callflow { verb, phase: Phase::Started, .. } if verb == "gather")
        {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn main() {
    let mut flows: usize = 10_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--flows" {
            flows = args.next().and_then(|n| n.parse().ok()).unwrap_or(flows);
        }
    }
    let calls = u32::try_from(flows + 16).unwrap_or(u32::MAX);
    if let Some(warning) = check_map_count(calls) {
        eprintln!("warning: {warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let host = Arc::new(
            FlowHost::new(HostConfig { max_concurrent_calls: calls, ..HostConfig::default() }).expect("host"),
        );
        let component =
            host.load_component(&opentact_guest_artifacts::bytes("gather-park")).expect("gather-park guest");
        let before = resident_bytes();
        let parked = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        for index in 0..flows {
            let call = SimulatedCall::new(SimulatedCallConfig {
                info: CallInfo {
                    id: format!("park-{index}"),
                    account: "acct".into(),
                    app: "app".into(),
                    from: "12025550100".into(),
                    to: "12025550111".into(),
                    tn: None,
                    direction: Direction::Inbound,
                    time_zone: None,
                },
                digits: Vec::new(),
                dial: Default::default(),
                realtime: true,
            });
            let sink = Arc::new(ParkedCounter(parked.clone()));
            let session = Arc::new(CallSession::new(Arc::new(call), sink, SessionConfig::default()));
            let (host, component, failed) = (host.clone(), component.clone(), failed.clone());
            tokio::spawn(async move {
                let outcome =
                    host.run_call(&component, CallContext::new(session, ControlMode::Component)).await;
                if let FlowOutcome::Failed(message) | FlowOutcome::AtCapacity(message) = outcome
                    && failed.fetch_add(1, Ordering::Relaxed) == 0
                {
                    eprintln!("first failure: {message}");
                }
            });
        }
        while parked.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < flows {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if started.elapsed() > Duration::from_secs(300) {
                break;
            }
        }
        let elapsed = started.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = resident_bytes();
        let parked = parked.load(Ordering::Relaxed);
        let failed = failed.load(Ordering::Relaxed);
        let per_flow = (after.saturating_sub(before)) as f64 / parked.max(1) as f64;
        println!("flows requested      {flows}");
        println!("flows parked         {parked}");
        println!("flows failed         {failed}");
        println!("time to park all     {elapsed:.2?}");
        println!("resident before      {:.1} MiB", before as f64 / 1048576.0);
        println!("resident after       {:.1} MiB", after as f64 / 1048576.0);
        println!("resident per flow    {:.1} KiB", per_flow / 1024.0);
        println!(
            "target               10 000 parked flows under 1 GiB: {}",
            if after < (1 << 30) && failed == 0 { "met" } else { "NOT met" }
        );
        std::process::exit(if failed == 0 && parked == flows { 0 } else { 1 });
    });
}
