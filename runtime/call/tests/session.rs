//! The verb executor on a simulated call: gather timers, barge-in, errors, events.

use std::collections::HashMap;
use std::sync::Arc;

use opentact_call::events::{CollectingSink, EventKind, Phase};
use opentact_call::model::{
    CallInfo, DialRequest, DialTarget, Direction, GatherEnd, GatherRequest, HangupReason, Media, SayRequest,
};
use opentact_call::simulated::{DialBehaviour, SimulatedCall, SimulatedCallConfig, parse_digits};
use opentact_call::{CallError, CallSession, FlowOutcome, SessionConfig};

fn session(digits: &str, dial: &[(&str, DialBehaviour)]) -> (CallSession, Arc<CollectingSink>) {
    let call = SimulatedCall::new(SimulatedCallConfig {
        info: CallInfo {
            id: "call-1".into(),
            account: "acct".into(),
            app: "app".into(),
            from: "12015550100".into(),
            to: "12025550111".into(),
            tn: Some(12025550111),
            direction: Direction::Inbound,
            time_zone: None,
        },
        digits: parse_digits(digits).expect("valid script"),
        dial: dial.iter().map(|(t, b)| (t.to_string(), *b)).collect::<HashMap<_, _>>(),
        realtime: false,
    });
    let sink = Arc::new(CollectingSink::default());
    (CallSession::new(Arc::new(call), sink.clone(), SessionConfig::default()), sink)
}

fn say(text: &str) -> Media {
    Media::Say(SayRequest {
        text: text.into(),
        lang: "en-US".into(),
        gender: Default::default(),
        voice: None,
        loop_count: 1,
        leg: Default::default(),
    })
}

fn gather(max_digits: u32, attempts: u32) -> GatherRequest {
    GatherRequest {
        prompts: vec![say("Press a key")],
        max_digits,
        finish_key: Some('#'),
        first_digit_timeout_ms: 10_000,
        inter_digit_timeout_ms: 5_000,
        attempts,
    }
}

#[tokio::test]
async fn gather_stops_at_max_digits_and_keeps_barge_in_digit() {
    let (session, sink) = session("12", &[]);
    let result = session.gather(gather(2, 1)).await.expect("gather");
    assert_eq!((result.digits.as_str(), result.end, result.attempts), ("12", GatherEnd::MaxDigits, 1));
    // The prompt was interrupted at once, so no time passed.
    let last = sink.events().last().cloned().expect("events");
    assert_eq!(last.elapsed_ms, 0);
}

#[tokio::test]
async fn finish_key_ends_gather_and_is_not_a_digit() {
    let (session, _) = session("4#9", &[]);
    let result = session.gather(gather(5, 1)).await.expect("gather");
    assert_eq!((result.digits.as_str(), result.end), ("4", GatherEnd::FinishKey));
}

#[tokio::test]
async fn inter_digit_timeout_is_separate_from_first_digit_timeout() {
    let (session, sink) = session("7", &[]);
    let result = session.gather(gather(4, 1)).await.expect("gather");
    assert_eq!((result.digits.as_str(), result.end), ("7", GatherEnd::Timeout));
    // One digit at once, then the 5 s inter-digit timeout — not the 10 s first-digit one.
    assert_eq!(sink.events().last().expect("events").elapsed_ms, 5_000);
}

#[tokio::test]
async fn no_input_repeats_prompts_for_each_attempt() {
    let (session, sink) = session(".", &[]);
    let result = session.gather(gather(1, 3)).await.expect("gather");
    assert_eq!((result.digits.as_str(), result.end, result.attempts), ("", GatherEnd::Timeout, 3));
    // Three times: the prompt ("Press a key" = 11 chars × 60 ms) and the 10 s timeout.
    assert_eq!(sink.events().last().expect("events").elapsed_ms, 3 * (11 * 60 + 10_000));
}

#[tokio::test]
async fn a_digit_on_the_second_attempt_is_collected() {
    let (session, _) = session(".3", &[]);
    let result = session.gather(gather(1, 2)).await.expect("gather");
    assert_eq!((result.digits.as_str(), result.attempts), ("3", 2));
}

#[tokio::test]
async fn invalid_arguments_are_refused_with_the_rule() {
    let (session, _) = session("", &[]);
    let error = session.gather(gather(0, 1)).await.expect_err("0 digits");
    assert_eq!(error, CallError::InvalidArgument("gather.max_digits: must be 1–128, got 0".into()));
    let mut bad_key = gather(1, 1);
    bad_key.finish_key = Some('x');
    assert!(
        matches!(session.gather(bad_key).await, Err(CallError::InvalidArgument(m)) if m.contains("DTMF key"))
    );
    let error = session.media(say(" ")).await.expect_err("empty say");
    assert!(matches!(error, CallError::InvalidArgument(m) if m.starts_with("say.text")));
}

#[tokio::test]
async fn media_auto_answers_and_events_are_sequenced() {
    let (session, sink) = session("", &[]);
    session.media(say("hello")).await.expect("say");
    session.finish(FlowOutcome::Completed).await;
    let events = sink.events();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    let types: Vec<String> = events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Callflow { verb, phase, .. } => format!("{verb}:{phase:?}"),
            other => serde_json::to_value(other).expect("json")["type"].as_str().expect("type").to_owned(),
        })
        .collect();
    assert_eq!(
        types,
        [
            "call.initiated",
            "answer:Started",
            "answer:Finished",
            "call.answered",
            "call.live",
            "say:Started",
            "say:Finished",
            "call.hangup",
            "call.destroyed"
        ]
    );
}

#[tokio::test]
async fn dial_outcomes_reach_the_flow_as_errors() {
    let (session, _) =
        session("", &[("12125550100", DialBehaviour::Busy), ("12125550101", DialBehaviour::NoAnswer)]);
    let dial = |targets: &[&str]| DialRequest {
        targets: targets.iter().map(|t| DialTarget::Number(t.to_string())).collect(),
        timeout_ms: 20_000,
        caller_id: None,
        record: false,
    };
    assert_eq!(session.dial(dial(&["12125550100"])).await, Err(CallError::Busy));
    assert_eq!(session.dial(dial(&["12125550100", "12125550101"])).await, Err(CallError::NoAnswer));
    let answered = session.dial(dial(&["12125550101", "12125550102"])).await.expect("answered");
    assert_eq!(answered.answered, DialTarget::Number("12125550102".into()));
}

#[tokio::test]
async fn verbs_after_hangup_report_the_hangup() {
    let (session, sink) = session("", &[]);
    session.hangup(HangupReason::Busy).await.expect("hangup");
    assert_eq!(session.media(say("too late")).await, Err(CallError::Hangup));
    session.finish(FlowOutcome::Completed).await;
    let hangup = sink
        .events()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Hangup { q850_cause, .. } => Some(q850_cause),
            _ => None,
        })
        .expect("a hangup event");
    assert_eq!(hangup, 17);
}

#[tokio::test]
async fn a_failed_flow_is_reported_and_hung_up() {
    let (session, sink) = session("", &[]);
    session.finish(FlowOutcome::Failed("the flow trapped".into())).await;
    let events = sink.events();
    assert!(events.iter().any(|e| matches!(&e.kind,
        EventKind::Callflow { verb, phase: Phase::Failed, detail } if verb == "flow" && detail["error"] == "the flow trapped")));
    assert!(events.iter().any(|e| matches!(&e.kind, EventKind::Hangup { q850_cause: 41, .. })));
}

#[tokio::test]
async fn meta_and_reports_share_a_per_call_event_budget() {
    use opentact_call::session::{MAX_FLOW_EVENTS, MAX_META_BYTES, MAX_META_TOTAL_BYTES};
    let (first, sink) = session("", &[]);
    // Rewriting one key in a loop: every write is an event, so the budget ends it.
    let value = "v".repeat(100);
    let mut accepted = 0u32;
    for _ in 0..MAX_FLOW_EVENTS * 2 {
        match first.set_meta("k".into(), value.clone()) {
            Ok(()) => accepted += 1,
            Err(CallError::LimitExceeded(message)) => {
                assert!(message.contains("event budget exceeded"), "{message}");
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(accepted > 0 && accepted <= MAX_FLOW_EVENTS, "{accepted}");
    assert!(first.report("step", Phase::Finished, vec![]).is_err(), "reports share the budget");
    assert_eq!(first.flow_events_refused(), MAX_FLOW_EVENTS * 2 - accepted + 1);
    let meta_events = sink
        .events()
        .into_iter()
        .filter(|e| matches!(&e.kind, EventKind::Callflow { verb, .. } if verb == "meta"))
        .count();
    assert_eq!(meta_events, accepted as usize);

    // The meta map as a whole is capped in bytes (every later event carries it).
    let (second, _) = session("", &[]);
    let big = "m".repeat(MAX_META_BYTES);
    let mut error = None;
    for key in 0..64 {
        if let Err(e) = second.set_meta(format!("key{key}"), big.clone()) {
            error = Some(e);
            break;
        }
    }
    match error {
        Some(CallError::LimitExceeded(message)) => {
            assert!(message.contains(&MAX_META_TOTAL_BYTES.to_string()), "{message}")
        }
        other => panic!("expected limit-exceeded, got {other:?}"),
    }
}

/// A session made `unannounced` emits nothing until `announce`, and then `call.initiated`
/// first: what lets the platform register a call as live before anyone hears of it.
#[test]
fn an_unannounced_session_is_silent_until_announced_and_then_initiated_comes_first() {
    let (announced, _) = session("", &[]);
    let call = SimulatedCall::new(SimulatedCallConfig {
        info: announced.info(),
        digits: parse_digits("").expect("valid script"),
        dial: HashMap::new(),
        realtime: false,
    });
    let sink = Arc::new(CollectingSink::default());
    let quiet = CallSession::unannounced(Arc::new(call), sink.clone(), SessionConfig::default());
    assert!(sink.events().is_empty(), "{:?}", sink.events());
    quiet.announce();
    quiet.events().emit(EventKind::Answered);
    let kinds: Vec<EventKind> = sink.events().into_iter().map(|e| e.kind).collect();
    assert!(matches!(kinds.as_slice(), [EventKind::Initiated { .. }, EventKind::Answered]), "{kinds:?}");
    assert_eq!(sink.events()[0].seq, 1, "call.initiated is the call's first event");
}
