//! Components that misbehave on real calls: the call goes to its end, other calls never notice.

mod support;

use std::time::Duration;

use support::platform::{Platform, run_sipp, sipp};
use support::provision;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trapping_spinning_and_memory_eating_components_only_end_their_own_calls() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let guests = [("trap", 13_125_550_121_i64), ("spin", 13_125_550_122), ("membomb", 13_125_550_123)];
    for (guest, tn) in guests {
        provision::component_number(
            &dir,
            "hostile@example.test",
            tn,
            &opentact_guest_artifacts::bytes(guest),
        )
        .await;
    }
    let platform = Platform::start_in(data, &[]).await;
    // A well-behaved call (the sample IVR, ~9 s with SIPp's DTMF) runs through all of it.
    let pcap = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink("/usr/share/sip-tester", pcap.path().join("pcap")).expect("symlink");
    let mut good = sipp();
    good.current_dir(pcap.path())
        .args(["-sn", "uac_pcap", "-s", "12025550100", "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "40s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let good = tokio::spawn(run_sipp(good, Duration::from_secs(60)));

    let scenario_dir = tempfile::tempdir().expect("tempdir");
    let scenario = scenario_dir.path().join("caller.xml");
    std::fs::write(&scenario, support::sipp::caller_awaiting_bye()).expect("write");
    for (guest, tn) in guests {
        let mut command = sipp();
        command
            .args([
                "-sf",
                scenario.to_str().expect("utf-8"),
                "-s",
                &tn.to_string(),
                "-m",
                "1",
                "-i",
                "127.0.0.1",
            ])
            .args(["-timeout", "20s", "-timeout_error", "-nostdin"])
            .arg(platform.sip.to_string());
        let (code, output) = run_sipp(command, Duration::from_secs(40)).await;
        assert_eq!(code, 0, "the {guest} guest's call was answered, then hung up by the platform:\n{output}");
    }
    let (code, output) = good.await.expect("good call");
    assert_eq!(code, 0, "the good call never noticed:\n{output}");
    let events = platform.events();
    let failures: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["verb"] == "flow" && e["phase"] == "failed").collect();
    assert_eq!(failures.len(), 3, "each hostile flow failed with a reason: {failures:#?}");
    let tags: Vec<&str> = events
        .iter()
        .filter(|e| e["verb"] == "say" && e["phase"] == "started")
        .filter_map(|e| e["tag"].as_str())
        .collect();
    assert!(tags.contains(&"sales"), "the good call went its way: {tags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_deployed_before_a_restart_runs_after_it_without_recompiling() {
    let data = tempfile::tempdir().expect("tempdir");
    // Answers, says hello, hangs up.
    let wasm = opentact_guest_artifacts::bytes("hello");
    provision::component_number(&data.path().join("data"), "cache@example.test", 13_125_550_124, &wasm).await;
    let scenario_dir = tempfile::tempdir().expect("tempdir");
    let scenario = scenario_dir.path().join("caller.xml");
    std::fs::write(&scenario, support::sipp::caller_awaiting_bye()).expect("write");
    let call = |platform: &Platform| {
        let mut command = sipp();
        command
            .args([
                "-sf",
                scenario.to_str().expect("utf-8"),
                "-s",
                "13125550124",
                "-m",
                "1",
                "-i",
                "127.0.0.1",
            ])
            .args(["-timeout", "20s", "-timeout_error", "-nostdin"])
            .arg(platform.sip.to_string());
        run_sipp(command, Duration::from_secs(30))
    };
    let first = Platform::start_in(data, &[]).await;
    let (code, output) = call(&first).await;
    assert_eq!(code, 0, "{output}");
    first.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.answered").await;
    assert!(first.log().contains("component compiled"), "compiled on first use:\n{}", first.log());
    let Platform { mut child, dir, .. } = first;
    child.kill().await.expect("stop");
    let second = Platform::start_in(dir, &[]).await;
    let (code, output) = call(&second).await;
    assert_eq!(code, 0, "{output}");
    second.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.answered").await;
    let log = second.log();
    assert!(log.contains("component loaded from the disk cache"), "{log}");
    assert!(!log.contains("component compiled"), "nothing was recompiled after the restart:\n{log}");
}
