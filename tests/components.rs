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

    let check = opentact(&["flow", "check", &guest("xml-guest")]).await;
    assert_eq!(check.code, 0, "the built-in XML guest is a valid flow component: {}", check.stderr);
}
