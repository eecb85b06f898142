//! End-to-end: the real `opentact` binary runs Wasm components written with the SDK (the
//! examples and the test guests) in the flow runner, and refuses what is not a flow component.

mod support;

use support::runner::{flow_run, opentact};

fn guest(name: &str) -> String {
    opentact_guest_artifacts::path(name).to_str().expect("utf-8 path").to_owned()
}

#[tokio::test]
async fn an_sdk_component_runs_in_the_runner() {
    let run = flow_run(&guest("hello"), &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.said(), ["hello"]);
    assert_eq!(run.transcript().first().map(String::as_str), Some("call.initiated"));
    assert_eq!(run.transcript().last().map(String::as_str), Some("call.destroyed"));
}

#[tokio::test]
async fn send_sms_from_a_call_flow_is_a_step_of_the_call_in_the_runner() {
    // The sms-probe guest's handle-call texts the caller through the messaging interface.
    let run = flow_run(&guest("sms-probe"), &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sent = run.detail("sms", "finished").expect("the sms step finished");
    assert!(sent["message"].as_str().is_some_and(|id| id.len() == 36), "a message id: {sent}");
}

#[tokio::test]
async fn a_trapping_component_ends_in_its_error_path() {
    let run = flow_run(&guest("trap"), &[]).await;
    assert_eq!(run.code, 1, "a failed flow exits 1: {}", run.stderr);
    let failed = run.detail("flow", "failed").expect("a flow failure event");
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("trap")), "{failed}");
    assert_eq!(run.hangup().expect("hangup")["q850_cause"], 41);
}

#[tokio::test]
async fn what_is_not_a_flow_component_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let module = dir.path().join("module.wasm");
    // An empty core module: Wasm, but not a component.
    std::fs::write(&module, b"\0asm\x01\0\0\0").expect("write");
    let check = opentact(&["flow", "check", module.to_str().expect("utf-8")]).await;
    assert_eq!(check.code, 2);
    assert!(check.stderr.contains("component"), "{}", check.stderr);
    let run = flow_run(module.to_str().expect("utf-8"), &[]).await;
    assert_eq!(run.code, 2);
    assert!(run.events.is_empty());

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x0d\0\x01\0garbage").expect("write");
    let check = opentact(&["flow", "check", garbage.to_str().expect("utf-8")]).await;
    assert_eq!(check.code, 2, "{}", check.stderr);

    // The built-in XML guest is of its own world (`xml-flow`), not a customer flow: customer
    // components get no `app-control`.
    let check = opentact(&["flow", "check", &guest("xml-guest")]).await;
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(check.stderr.contains("opentact:flow/app-control@0.2.0"), "{}", check.stderr);
    let check = opentact(&["flow", "check", &guest("sms-autoresponder")]).await;
    assert_eq!(check.code, 0, "the SMS auto-responder is a valid flow component: {}", check.stderr);
}

#[tokio::test]
async fn the_ivr_example_routes_by_digit() {
    let sales = flow_run(&guest("ivr"), &["--digits", "1"]).await;
    assert_eq!(sales.code, 0, "{}", sales.stderr);
    assert_eq!(sales.detail("dial", "finished").expect("dialled")["answered"], "12125550100");
    let support =
        flow_run(&guest("ivr"), &["--digits", "2", "--dial", "support@acme.sip.example=busy"]).await;
    assert_eq!(support.said().last().map(String::as_str), Some("Support is busy, please call again later."));
    let silent = flow_run(&guest("ivr"), &["--digits", ".."]).await;
    assert_eq!(silent.said().last().map(String::as_str), Some("Goodbye."));
    assert_eq!(silent.detail("gather", "finished").expect("gathered")["attempts"], 2);
}

#[tokio::test]
async fn the_voicemail_example_records_and_replays() {
    let run = flow_run(&guest("voicemail"), &["--digits", "#"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.detail("record", "finished").expect("recorded")["name"], "voicemail");
    assert_eq!(run.detail("play", "started").expect("played")["record"], "voicemail");
}

#[tokio::test]
async fn the_follow_me_example_takes_a_message_when_nobody_answers() {
    let args = [
        "--dial",
        "alice@acme.sip.example=no-answer",
        "--dial",
        "12125550101=busy",
        "--dial",
        "12125550102=no-answer",
    ];
    let run = flow_run(&guest("follow-me"), &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.detail("dial", "failed").expect("dial failed")["error"], "no_answer");
    assert!(run.detail("record", "finished").is_some(), "{:?}", run.transcript());
    let answered = flow_run(&guest("follow-me"), &["--dial", "alice@acme.sip.example=busy"]).await;
    assert_eq!(answered.detail("dial", "finished").expect("answered")["answered"], "12125550101");
}

#[tokio::test]
async fn the_business_hours_example_follows_the_clock() {
    let open = flow_run(&guest("business-hours"), &["--at", "2026-11-24T15:00:00Z"]).await;
    assert!(
        open.detail("dial", "started").is_some(),
        "Tuesday 10:00 at UTC-5 is open: {:?}",
        open.transcript()
    );
    let closed = flow_run(&guest("business-hours"), &["--at", "2026-11-28T15:00:00Z"]).await;
    assert!(closed.detail("dial", "started").is_none(), "Saturday is closed");
    assert!(closed.said()[0].starts_with("We are closed."));
}

#[tokio::test]
async fn serve_starts_with_the_built_in_xml_guest_cached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let run = opentact(&[
        "serve",
        "--check",
        "--sip-listen",
        "127.0.0.1:0",
        "--api-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("utf-8"),
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cached = std::fs::read_dir(data.join("components")).expect("component cache").count();
    assert_eq!(cached, 1, "the XML guest was compiled into the data directory's cache");
    // A second start loads it from disk (and still passes its checks).
    let again = opentact(&[
        "serve",
        "--check",
        "--sip-listen",
        "127.0.0.1:0",
        "--api-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("utf-8"),
    ])
    .await;
    assert_eq!(again.code, 0, "{}", again.stderr);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[flows]\nmax_memory_mb = 10\n").expect("write");
    let refused = opentact(&["serve", "--check", "--config", bad.to_str().expect("utf-8")]).await;
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("max_memory_mb"), "the unknown key is named: {}", refused.stderr);
}
