//! The flow host against real guests: well-behaved and hostile components, each contained, and
//! the component cache.

use std::sync::Arc;

use opentact_call::events::{CollectingSink, EventKind, Phase};
use opentact_call::model::{CallInfo, Direction};
use opentact_call::simulated::{SimulatedCall, SimulatedCallConfig};
use opentact_call::{CallSession, FlowOutcome, SessionConfig};
use opentact_flows::{CallContext, ControlMode, FlowHost, HostConfig, HostError};
use opentact_metrics::{FlowFailure, FlowTrigger};

fn host() -> FlowHost {
    FlowHost::new(HostConfig { max_concurrent_calls: 16, ..HostConfig::default() }).expect("host starts")
}

fn session(id: &str) -> (Arc<CallSession>, Arc<CollectingSink>) {
    session_on(id, None)
}

/// A simulated inbound call `id` from 12015550100 to 12025550111, on the account's number `tn`.
fn session_on(id: &str, tn: Option<u64>) -> (Arc<CallSession>, Arc<CollectingSink>) {
    let call = SimulatedCall::new(SimulatedCallConfig {
        info: CallInfo {
            id: id.to_owned(),
            account: "acct".into(),
            app: "app".into(),
            from: "12015550100".into(),
            to: "12025550111".into(),
            tn,
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
    run_as(host, guest, guest).await
}

/// Runs `guest` on a call with the id `call_id` (some test guests vary their behaviour by it).
async fn run_as(host: &FlowHost, guest: &str, call_id: &str) -> (FlowOutcome, Arc<CollectingSink>) {
    let component = host.load_component(&opentact_guest_artifacts::bytes(guest)).expect("component loads");
    let (session, sink) = session(call_id);
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
    assert_eq!(host.metrics().starts(FlowTrigger::Call), 1);
    assert!(FlowFailure::ALL.iter().all(|cause| host.metrics().failures(*cause) == 0));
}

#[tokio::test]
async fn a_spinning_guest_is_stopped_and_other_calls_go_on() {
    let host = host();
    // One runtime thread: the hello call can only finish if the spinning guest yields.
    let (spin, hello) = tokio::join!(run(&host, "spin"), run(&host, "hello"));
    // The guest polls `state()` between slices: queries do not end its CPU segment.
    assert!(failure(&spin.0).contains("CPU budget of 200 ms without waiting"), "{:?}", spin.0);
    assert_eq!(hung_up_with(&spin.1), Some(41));
    assert_eq!(hello.0, FlowOutcome::Completed);
    assert_eq!(host.metrics().failures(FlowFailure::Cpu), 1, "counted by cause for /metrics");
}

#[tokio::test]
async fn a_guest_spinning_between_instant_waits_is_stopped_by_its_total_budget() {
    let host =
        FlowHost::new(HostConfig { max_concurrent_calls: 4, cpu_total_ms: 300, ..HostConfig::default() })
            .expect("host starts");
    // 30 ms of computation, then a zero-length pause (which ends the segment), forever.
    let (outcome, sink) = run_as(&host, "spin", "spin-pausing").await;
    assert!(failure(&outcome).contains("total CPU budget of 300 ms"), "{outcome:?}");
    assert_eq!(hung_up_with(&sink), Some(41));
}

#[tokio::test]
async fn a_memory_bomb_runs_out_of_memory() {
    let host = host();
    let (outcome, sink) = run(&host, "membomb").await;
    assert!(failure(&outcome).contains("ran out of memory (limit 64 MiB)"), "{outcome:?}");
    assert_eq!(hung_up_with(&sink), Some(41));
    assert_eq!(host.metrics().failures(FlowFailure::Memory), 1);
}

#[tokio::test]
async fn a_trap_ends_the_call_in_its_error_path() {
    let host = host();
    let (outcome, sink) = run(&host, "trap").await;
    assert!(failure(&outcome).contains("unreachable"), "{outcome:?}");
    assert_eq!(hung_up_with(&sink), Some(41));
    assert_eq!(host.metrics().failures(FlowFailure::Trap), 1);
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
    let component = host.load_xml_guest(opentact_guest_artifacts::XML_GUEST).expect("xml guest");
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

fn realtime_session(id: &str) -> (Arc<CallSession>, Arc<CollectingSink>) {
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
        realtime: true,
    });
    let sink = Arc::new(CollectingSink::default());
    (Arc::new(CallSession::new(Arc::new(call), sink.clone(), SessionConfig::default())), sink)
}

fn gathering(sink: &CollectingSink) -> bool {
    sink.events().into_iter().any(
        |e| matches!(e.kind, EventKind::Callflow { ref verb, phase: Phase::Started, .. } if verb == "gather"),
    )
}

#[tokio::test]
async fn a_full_pool_refuses_the_next_call_as_platform_at_capacity() {
    let host = Arc::new(
        FlowHost::new(HostConfig { max_concurrent_calls: 1, ..HostConfig::default() }).expect("host"),
    );
    let park = host.load_component(&opentact_guest_artifacts::bytes("gather-park")).expect("loads");
    let (session, sink) = realtime_session("parked");
    let parked = tokio::spawn({
        let host = host.clone();
        async move { host.run_call(&park, CallContext::new(session, ControlMode::Component)).await }
    });
    while !gathering(&sink) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (outcome, refused) = run(&host, "hello").await;
    let FlowOutcome::AtCapacity(message) = &outcome else { panic!("at capacity: {outcome:?}") };
    assert!(message.starts_with("the platform is at capacity"), "{outcome:?}");
    assert_eq!(hung_up_with(&refused), Some(41), "the refused call is still ended");
    parked.abort();
    let _ = parked.await;
    assert_eq!(run(&host, "hello").await.0, FlowOutcome::Completed, "the slot is free again");
}

#[tokio::test]
async fn the_app_limit_on_call_length_times_the_flow_out() {
    let host = host();
    let park = host.load_component(&opentact_guest_artifacts::bytes("gather-park")).expect("loads");
    let (session, sink) = realtime_session("too-long");
    let context = CallContext::new(session, ControlMode::Component)
        .with_max_call_length(std::time::Duration::from_millis(300));
    assert_eq!(host.run_call(&park, context).await, FlowOutcome::TimedOut);
    assert!(hung_up_with(&sink).is_some(), "the call is ended");
}

fn http_errors(sink: &CollectingSink) -> Vec<(String, String)> {
    sink.events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Callflow { verb, phase: Phase::Failed, detail } if verb == "http" => Some((
                detail["url"].as_str().unwrap_or_default().to_owned(),
                detail["error"].as_str().unwrap_or_default().to_owned(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_http_allow_list_opens_one_destination_only() {
    let host = FlowHost::new(HostConfig {
        max_concurrent_calls: 4,
        http: opentact_flows::HttpPolicy { allow: vec!["127.0.0.1:9".into()], ..Default::default() },
        ..HostConfig::default()
    })
    .expect("host");
    let (outcome, sink) = run(&host, "http-refused").await;
    assert_eq!(outcome, FlowOutcome::Completed);
    let errors = http_errors(&sink);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].1.contains("DestinationIpProhibited"), "10.0.0.1 is still refused: {errors:?}");
    // Allowed through the policy; nothing listens on the discard port, so the connection fails.
    assert!(!errors[1].1.contains("DestinationIpProhibited"), "127.0.0.1:9 was let through: {errors:?}");
}

#[test]
fn a_bad_allow_list_entry_stops_the_host_with_a_clear_message() {
    let error = FlowHost::new(HostConfig {
        http: opentact_flows::HttpPolicy { allow: vec!["10.0.0.0/40".into()], ..Default::default() },
        ..HostConfig::default()
    })
    .expect_err("refused");
    assert!(matches!(error, HostError::HttpAllow { .. }), "{error}");
    assert!(error.to_string().contains("10.0.0.0/40"), "{error}");
}

mod log_capture {
    //! A minimal global subscriber (no tracing-subscriber dependency: it would change the feature
    //! set of tracing for the whole release build) that counts, per call, the flow output
    //! forwarded to the log. Global rather than scoped: the test binary's other threads emit
    //! on the same callsites, and a scoped dispatcher races with their interest caching.

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, OnceLock};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata};

    #[derive(Default)]
    struct FlowLogBytes {
        spans: AtomicU64,
        bytes: Mutex<HashMap<String, usize>>,
    }

    #[derive(Default)]
    struct Line {
        call: String,
        bytes: usize,
    }

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            match field.name() {
                // +1 for the newline the line ended with.
                "message" => self.bytes = format!("{value:?}").len() + 1,
                "call" => self.call = format!("{value:?}"),
                _ => {}
            }
        }
    }

    impl tracing::Subscriber for FlowLogBytes {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            metadata.target() == "opentact::flow::log"
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(self.spans.fetch_add(1, Ordering::Relaxed) + 1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut line = Line::default();
            event.record(&mut line);
            *self.bytes.lock().expect("lock").entry(line.call).or_default() += line.bytes;
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    fn counter() -> &'static FlowLogBytes {
        static COUNTER: OnceLock<&'static FlowLogBytes> = OnceLock::new();
        COUNTER.get_or_init(|| {
            let counter: &'static FlowLogBytes = Box::leak(Box::default());
            tracing::subscriber::set_global_default(Forward(counter)).expect("the only global subscriber");
            counter
        })
    }

    struct Forward(&'static FlowLogBytes);

    impl tracing::Subscriber for Forward {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            self.0.enabled(metadata)
        }
        fn new_span(&self, attributes: &Attributes<'_>) -> Id {
            self.0.new_span(attributes)
        }
        fn record(&self, id: &Id, record: &Record<'_>) {
            self.0.record(id, record)
        }
        fn record_follows_from(&self, id: &Id, follows: &Id) {
            self.0.record_follows_from(id, follows)
        }
        fn event(&self, event: &Event<'_>) {
            self.0.event(event)
        }
        fn enter(&self, id: &Id) {
            self.0.enter(id)
        }
        fn exit(&self, id: &Id) {
            self.0.exit(id)
        }
    }

    /// Start counting (idempotent).
    pub fn install() {
        counter();
    }

    /// Bytes of flow output forwarded to the log for the call `id`.
    pub fn forwarded(id: &str) -> usize {
        counter().bytes.lock().expect("lock").get(id).copied().unwrap_or(0)
    }
}

#[tokio::test]
async fn a_log_flood_is_forwarded_only_up_to_the_cap() {
    log_capture::install();
    let host = host();
    let component = host.load_component(&opentact_guest_artifacts::bytes("log-flood")).expect("loads");
    let (session, _) = session("log-flood-capped");
    let outcome = host.run_call(&component, CallContext::new(session, ControlMode::Component)).await;
    let forwarded = log_capture::forwarded("log-flood-capped");
    let cap = host.config().max_log_bytes as usize;
    assert!(forwarded > cap / 2, "the first lines are forwarded ({forwarded} bytes): {outcome:?}");
    assert!(forwarded <= cap + 1, "no more than the cap is forwarded: {forwarded} > {cap}");
}

#[tokio::test]
async fn a_guest_reporting_in_a_loop_is_stopped_at_its_event_budget() {
    let host = host();
    let (outcome, sink) = run(&host, "report-flood").await;
    assert!(failure(&outcome).contains("event budget exceeded"), "{outcome:?}");
    assert_eq!(hung_up_with(&sink), Some(41));
    let kept = sink
        .events()
        .into_iter()
        .filter(|e| matches!(&e.kind, EventKind::Callflow { verb, .. } if verb == "flood"))
        .count();
    // What the host keeps for the flood is the budget, not what the guest sent.
    assert!(kept > 0, "reports within the budget are kept");
    assert!(
        kept <= opentact_call::session::MAX_FLOW_EVENTS as usize,
        "{kept} events kept, budget {}",
        opentact_call::session::MAX_FLOW_EVENTS
    );
    assert_eq!(run(&host, "hello").await.0, FlowOutcome::Completed, "the host goes on");
}

// --- SMS flows: the same host runs `handle-sms` for an inbound SMS (no call), and `send-sms`
// reaches the messaging capability from SMS and call flows.

/// The messaging capability of the tests: records what flows send, answers `refusal` if set.
#[derive(Default)]
struct RecordingSender {
    sent: parking_lot::Mutex<Vec<opentact_flows::OutboundSms>>,
    refusal: Option<opentact_flows::SmsSendError>,
}

impl opentact_flows::SmsSender for RecordingSender {
    fn send(
        &self,
        sms: opentact_flows::OutboundSms,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<String, opentact_flows::SmsSendError>> + Send + '_>,
    > {
        Box::pin(async move {
            let mut sent = self.sent.lock();
            sent.push(sms);
            match &self.refusal {
                Some(refusal) => Err(refusal.clone()),
                None => Ok(format!("message-{}", sent.len())),
            }
        })
    }
}

fn inbound(text: &str) -> opentact_flows::InboundMessage {
    opentact_flows::InboundMessage {
        id: "sms-1".into(),
        account: "acct".into(),
        app: "app".into(),
        from: "+12015550100".into(),
        to: "+12025550111".into(),
        tn: 12_025_550_111,
        text: text.into(),
    }
}

/// Runs the SMS probe's `handle-sms` for `text` with `sender` as the platform's messaging.
async fn run_sms(host: &FlowHost, sender: &Arc<RecordingSender>, text: &str) -> FlowOutcome {
    host.set_sms_sender(sender.clone());
    let component = host.load_component(&opentact_guest_artifacts::bytes("sms-probe")).expect("loads");
    let trigger = opentact_flows::Trigger::Sms(opentact_flows::SmsContext::new(inbound(text)));
    host.run(&component, trigger).await
}

#[tokio::test]
async fn an_sms_runs_handle_sms_and_its_reply_reaches_messaging_from_the_receiving_number() {
    let host = host();
    let sender = Arc::new(RecordingSender::default());
    assert_eq!(run_sms(&host, &sender, "reply got it").await, FlowOutcome::Completed);
    let sent = sender.sent.lock().clone();
    assert_eq!(
        sent,
        [opentact_flows::OutboundSms {
            account: "acct".into(),
            app: "app".into(),
            call: None,
            from: "12025550111".into(),
            to: "+12015550100".into(),
            text: "got it".into(),
        }]
    );
    // A sender the flow gives is passed as it is.
    assert_eq!(run_sms(&host, &sender, "from 12025550199 hi").await, FlowOutcome::Completed);
    assert_eq!(sender.sent.lock()[1].from, "12025550199");
}

#[tokio::test]
async fn a_refused_sms_is_an_error_with_the_refusals_message() {
    let host = host();
    let refused = Arc::new(RecordingSender {
        refusal: Some(opentact_flows::SmsSendError::Invalid("tn: SMS is not enabled on 12025550111".into())),
        ..RecordingSender::default()
    });
    let outcome = run_sms(&host, &refused, "reply hi").await;
    assert_eq!(failure(&outcome), "invalid argument: tn: SMS is not enabled on 12025550111");
    let limited = Arc::new(RecordingSender {
        refusal: Some(opentact_flows::SmsSendError::Limited("12025550111 sends at most 1 SMS/s".into())),
        ..RecordingSender::default()
    });
    let outcome = run_sms(&host, &limited, "reply hi").await;
    assert!(failure(&outcome).contains("12025550111 sends at most 1 SMS/s"), "{outcome:?}");
    // Checked before the platform sees it: an empty text.
    let sender = Arc::new(RecordingSender::default());
    let outcome = run_sms(&host, &sender, "reply").await;
    assert!(failure(&outcome).contains("sms.text"), "{outcome:?}");
    assert!(sender.sent.lock().is_empty());
}

#[tokio::test]
async fn a_flow_sending_in_a_loop_is_refused_past_its_budget() {
    let host = host();
    let sender = Arc::new(RecordingSender::default());
    let outcome = run_sms(&host, &sender, "flood").await;
    assert!(failure(&outcome).contains("at most 10 SMS per flow"), "{outcome:?}");
    assert_eq!(sender.sent.lock().len(), opentact_flows::MAX_SMS_PER_FLOW as usize);
}

#[tokio::test]
async fn call_imports_in_an_sms_flow_say_there_is_no_call() {
    let host = host();
    let sender = Arc::new(RecordingSender::default());
    let outcome = run_sms(&host, &sender, "answer").await;
    assert_eq!(
        failure(&outcome),
        "invalid in the call's state: call.answer: this flow runs for an SMS and has no call"
    );
    // `info` has no error to return: the flow is stopped, saying why.
    let outcome = run_sms(&host, &sender, "info").await;
    assert!(
        failure(&outcome).contains("call.info: this flow runs for an SMS and has no call"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_spin_or_a_trap_in_handle_sms_is_contained() {
    let host = host();
    let sender = Arc::new(RecordingSender::default());
    let outcome = run_sms(&host, &sender, "spin").await;
    assert!(failure(&outcome).contains("CPU budget"), "{outcome:?}");
    let outcome = run_sms(&host, &sender, "panic").await;
    assert!(failure(&outcome).contains("unreachable"), "{outcome:?}");
    // The host goes on: the next SMS is answered.
    assert_eq!(run_sms(&host, &sender, "reply still here").await, FlowOutcome::Completed);
    assert_eq!(sender.sent.lock().len(), 1);
}

#[tokio::test]
async fn a_call_flow_sends_sms_from_the_calls_number_as_a_step_of_the_call() {
    let host = host();
    let sender = Arc::new(RecordingSender::default());
    host.set_sms_sender(sender.clone());
    let component = host.load_component(&opentact_guest_artifacts::bytes("sms-probe")).expect("loads");
    let (session, sink) = session_on("call-sms", Some(12_025_550_111));
    let outcome = host.run_call(&component, CallContext::new(session, ControlMode::Component)).await;
    assert_eq!(outcome, FlowOutcome::Completed);
    let sent = sender.sent.lock().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].call.as_deref(), sent[0].from.as_str(), sent[0].to.as_str()),
        (Some("call-sms"), "12025550111", "12015550100")
    );
    let steps: Vec<Phase> = sink
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Callflow { verb, phase, .. } if verb == "sms" => Some(phase),
            _ => None,
        })
        .collect();
    assert_eq!(steps, [Phase::Started, Phase::Finished]);
}

#[tokio::test]
async fn the_xml_guest_does_not_take_sms_and_customers_cannot_import_app_control() {
    let host = host();
    let xml = host.load_xml_guest(opentact_guest_artifacts::XML_GUEST).expect("xml guest");
    let trigger = opentact_flows::Trigger::Sms(opentact_flows::SmsContext::new(inbound("hi")));
    assert!(failure(&host.run(&xml, trigger).await).contains("does not handle SMS"));
    // The XML guest's world is not the customer world.
    assert!(host.load_component(opentact_guest_artifacts::XML_GUEST).is_err());
    let control = wat::parse_str(
        r#"(component (import "opentact:flow/app-control@0.2.0" (instance (export "next-command" (func)))))"#,
    )
    .expect("wat");
    let error = host.load_component(&control).expect_err("app-control is not for customers");
    assert!(error.to_string().contains("app-control"), "{error}");
}

#[tokio::test]
async fn a_component_of_the_retired_0_1_0_world_is_refused_naming_the_version() {
    let host = host();
    let old = wat::parse_str(r#"(component (import "opentact:flow/call@0.1.0" (instance)))"#).expect("wat");
    let error = host.load_component(&old).expect_err("0.1.0 is retired");
    assert!(matches!(error, HostError::RetiredVersion { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("opentact:flow@0.1.0") && text.contains("opentact:flow@0.2.0"), "{text}");
}

#[tokio::test]
async fn the_sms_autoresponder_example_replies_once_and_not_to_stop() {
    let host = host();
    let sender = Arc::new(RecordingSender::default());
    host.set_sms_sender(sender.clone());
    let component =
        host.load_component(&opentact_guest_artifacts::bytes("sms-autoresponder")).expect("loads");
    for text in ["When are you open?", "STOP"] {
        let trigger = opentact_flows::Trigger::Sms(opentact_flows::SmsContext::new(inbound(text)));
        assert_eq!(host.run(&component, trigger).await, FlowOutcome::Completed);
    }
    let sent = sender.sent.lock().clone();
    assert_eq!(sent.len(), 1, "one reply, none to STOP: {sent:?}");
    assert_eq!((sent[0].from.as_str(), sent[0].to.as_str()), ("12025550111", "+12015550100"));
    assert!(sent[0].text.starts_with("Thanks for your message!"), "{}", sent[0].text);
}
