//! The flow host against real guests: well-behaved and hostile components, each contained, and
//! the component cache.

use std::sync::Arc;

use opentact_call::events::{CollectingSink, EventKind, Phase};
use opentact_call::model::{CallInfo, Direction};
use opentact_call::simulated::{SimulatedCall, SimulatedCallConfig};
use opentact_call::{CallSession, FlowOutcome, SessionConfig};
use opentact_flows::{CallContext, ControlMode, FlowHost, HostConfig, HostError};

fn host() -> FlowHost {
    FlowHost::new(HostConfig { max_concurrent_calls: 16, ..HostConfig::default() }).expect("host starts")
}

fn session(id: &str) -> (Arc<CallSession>, Arc<CollectingSink>) {
    let call = SimulatedCall::new(SimulatedCallConfig {
        info: CallInfo {
            id: id.to_owned(),
            account: "acct".into(),
            app: "app".into(),
            from: "12015550100".into(),
            to: "12025550111".into(),
            tn: None,
            direction: Direction::Inbound,
            time_zone: None,
        },
        digits: Vec::new(),
        dial: Default::default(),
        realtime: false,
    });
    let sink = Arc::new(CollectingSink::default());
    (Arc::new(CallSession::new(Arc::new(call), sink.clone(), SessionConfig::default())), sink)
}

async fn run(host: &FlowHost, guest: &str) -> (FlowOutcome, Arc<CollectingSink>) {
    let component = host.load_component(&opentact_guest_artifacts::bytes(guest)).expect("component loads");
    let (session, sink) = session(guest);
    (host.run_call(&component, CallContext::new(session, ControlMode::Component)).await, sink)
}

fn failure(outcome: &FlowOutcome) -> &str {
    match outcome {
        FlowOutcome::Failed(message) => message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn hung_up_with(sink: &CollectingSink) -> Option<u16> {
    sink.events().into_iter().find_map(|e| match e.kind {
        EventKind::Hangup { q850_cause, .. } => Some(q850_cause),
        _ => None,
    })
}

#[tokio::test]
async fn a_well_behaved_guest_completes() {
    let host = host();
    let (outcome, sink) = run(&host, "hello").await;
    assert_eq!(outcome, FlowOutcome::Completed);
    let verbs: Vec<String> = sink
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Callflow { verb, phase: Phase::Finished, .. } => Some(verb),
            _ => None,
        })
        .collect();
    assert_eq!(verbs, ["answer", "say", "hangup"]);
}

#[tokio::test]
async fn a_spinning_guest_is_stopped_and_other_calls_go_on() {
    let host = host();
    // One runtime thread: the hello call can only finish if the spinning guest yields.
    let (spin, hello) = tokio::join!(run(&host, "spin"), run(&host, "hello"));
    assert!(failure(&spin.0).contains("CPU budget"), "{:?}", spin.0);
    assert_eq!(hung_up_with(&spin.1), Some(41));
    assert_eq!(hello.0, FlowOutcome::Completed);
}

#[tokio::test]
async fn a_memory_bomb_runs_out_of_memory() {
    let host = host();
    let (outcome, sink) = run(&host, "membomb").await;
    assert!(failure(&outcome).contains("ran out of memory (limit 64 MiB)"), "{outcome:?}");
    assert_eq!(hung_up_with(&sink), Some(41));
}

#[tokio::test]
async fn a_trap_ends_the_call_in_its_error_path() {
    let host = host();
    let (outcome, sink) = run(&host, "trap").await;
    assert!(failure(&outcome).contains("unreachable"), "{outcome:?}");
    assert_eq!(hung_up_with(&sink), Some(41));
}

#[tokio::test]
async fn a_stack_overflow_is_a_clean_trap() {
    let host = host();
    let (outcome, _) = run(&host, "stack-overflow").await;
    // Rust keeps its stack in linear memory: overflowing it is an out-of-bounds access, which
    // the host names as the likely stack overflow it is.
    assert!(
        failure(&outcome).contains("stack overflow") || failure(&outcome).contains("overflowed its stack"),
        "{outcome:?}"
    );
    // The host is still fine: the next call runs.
    assert_eq!(run(&host, "hello").await.0, FlowOutcome::Completed);
}

#[tokio::test]
async fn a_log_flood_is_capped_and_the_flow_goes_on() {
    let host = host();
    let (outcome, _) = run(&host, "log-flood").await;
    // Writing never fails (a failed write would panic the guest: an `unreachable` trap); the
    // flood itself is computation, so it ends by finishing or by the CPU budget.
    match &outcome {
        FlowOutcome::Completed => {}
        FlowOutcome::Failed(message) => assert!(message.contains("CPU budget"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(run(&host, "hello").await.0, FlowOutcome::Completed, "the host goes on");
}

#[tokio::test]
async fn http_to_private_and_loopback_addresses_is_refused() {
    let host = host();
    let (outcome, sink) = run(&host, "http-refused").await;
    assert_eq!(outcome, FlowOutcome::Completed);
    let refusals: Vec<String> = sink
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Callflow { verb, phase: Phase::Failed, detail } if verb == "http" => {
                Some(detail["error"].as_str().unwrap_or_default().to_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(refusals.len(), 2, "both requests refused: {refusals:?}");
    assert!(refusals.iter().all(|e| e.contains("DestinationIpProhibited")), "{refusals:?}");
}

#[tokio::test]
async fn what_is_not_a_flow_component_is_refused() {
    let host = host();
    assert!(matches!(host.load_component(b"hello"), Err(HostError::NotWasm)));
    assert!(matches!(host.load_component(b"\0asm\x01\0\0\0"), Err(HostError::CoreModule)));
    let garbage = host.load_component(b"\0asm\x0d\0\x01\0garbage").expect_err("garbage");
    assert!(garbage.to_string().starts_with("not a valid WebAssembly component"), "{garbage}");
    let empty = wat::parse_str("(component)").expect("wat");
    let error = host.load_component(&empty).expect_err("no handler export");
    assert!(error.to_string().contains("handler"), "the missing export is named: {error}");
    let imports =
        wat::parse_str(r#"(component (import "acme:secret/keys" (instance (export "get" (func)))))"#)
            .expect("wat");
    let error = host.load_component(&imports).expect_err("unknown import");
    assert!(error.to_string().contains("acme:secret/keys"), "the unknown import is named: {error}");
}

#[tokio::test]
async fn the_disk_cache_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = HostConfig {
        max_concurrent_calls: 4,
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    };
    let bytes = opentact_guest_artifacts::bytes("hello");
    let first = FlowHost::new(config.clone()).expect("host");
    first.load_component(&bytes).expect("loads");
    first.load_component(&bytes).expect("loads again");
    assert_eq!((first.stats().compiled, first.stats().memory_hits), (1, 1));
    drop(first);
    let second = FlowHost::new(config).expect("host after restart");
    let component = second.load_component(&bytes).expect("loads from disk");
    assert_eq!((second.stats().compiled, second.stats().loaded_from_disk), (0, 1));
    let (session, _) = session("after-restart");
    let outcome = second.run_call(&component, CallContext::new(session, ControlMode::Component)).await;
    assert_eq!(outcome, FlowOutcome::Completed);
}

#[tokio::test]
async fn the_xml_guest_runs_asynchronous_commands_in_order() {
    let host = host();
    let component = host.load_component(opentact_guest_artifacts::XML_GUEST).expect("xml guest");
    let (session, sink) = session("async");
    let (commands, queue) = tokio::sync::mpsc::channel(8);
    commands.send("<Response><Say>first</Say></Response>".to_owned()).await.expect("queued");
    commands.send("<Response><Bogus/></Response>".to_owned()).await.expect("queued");
    commands.send("<Response><Say>second</Say><Hangup/></Response>".to_owned()).await.expect("queued");
    let context = CallContext::new(session, ControlMode::AsyncCommands).with_commands(queue);
    let outcome = host.run_call(&component, context).await;
    assert_eq!(outcome, FlowOutcome::Completed, "the call ended by its own <Hangup/>");
    let steps: Vec<String> = sink
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Callflow { verb, phase, detail } if phase != Phase::Started => Some(format!(
                "{verb}:{phase:?}:{}",
                detail.get("text").and_then(|t| t.as_str()).unwrap_or("")
            )),
            _ => None,
        })
        .collect();
    let said: Vec<&String> = steps.iter().filter(|s| s.starts_with("say:")).collect();
    assert_eq!(said.len(), 2, "{steps:?}");
    assert!(
        steps.iter().any(|s| s.starts_with("command:Failed")),
        "an invalid command is reported, not run: {steps:?}"
    );
    assert!(steps.last().is_some_and(|s| s.starts_with("hangup:Finished")), "{steps:?}");
    drop(commands);
}
