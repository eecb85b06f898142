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

/// A SIPp caller of `number` running `scenario` (a file), one call.
fn sipp_call(platform: &Platform, scenario: &std::path::Path, number: &str) -> tokio::process::Command {
    let mut command = sipp();
    command
        .args(["-sf", scenario.to_str().expect("utf-8"), "-s", number, "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "20s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_at_its_call_cap_gets_503_and_other_accounts_still_get_calls() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let long = r#"<Response><Answer/><Pause length="3000"/><Hangup/></Response>"#;
    provision::xml_number(&dir, "capped@example.test", 13_125_550_131, long).await;
    provision::xml_number(&dir, "other@example.test", 13_125_550_132, long).await;
    let config = data.path().join("opentact.toml");
    std::fs::write(&config, "[calls]\nmax_calls_per_account = 1\n").expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let scenarios = tempfile::tempdir().expect("tempdir");
    let awaiting_bye = scenarios.path().join("awaiting-bye.xml");
    std::fs::write(&awaiting_bye, support::sipp::caller_awaiting_bye()).expect("write");
    let refused = scenarios.path().join("503.xml");
    std::fs::write(&refused, support::sipp::caller_expecting_status(503)).expect("write");

    let first =
        tokio::spawn(run_sipp(sipp_call(&platform, &awaiting_bye, "13125550131"), Duration::from_secs(30)));
    platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.answered").await;
    let (code, output) =
        run_sipp(sipp_call(&platform, &refused, "13125550131"), Duration::from_secs(20)).await;
    assert_eq!(code, 0, "the capped account's second call gets 503:\n{output}\n{}", platform.log());
    assert!(platform.log().contains("account call limit reached"), "{}", platform.log());
    let (code, output) =
        run_sipp(sipp_call(&platform, &awaiting_bye, "13125550132"), Duration::from_secs(20)).await;
    assert_eq!(code, 0, "another account's call goes through:\n{output}");
    let (code, output) = first.await.expect("first call");
    assert_eq!(code, 0, "the first call was never disturbed:\n{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hangs_up_calls_in_progress_and_leaves_every_cdr_closed() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let endless = r#"<Response><Answer/><Pause length="60000"/></Response>"#;
    let provisioned = provision::xml_number(&dir, "draining@example.test", 13_125_550_133, endless).await;
    let config = data.path().join("opentact.toml");
    std::fs::write(&config, "[server]\ndrain_secs = 1\n").expect("config");
    let mut platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let scenarios = tempfile::tempdir().expect("tempdir");
    let awaiting_bye = scenarios.path().join("awaiting-bye.xml");
    std::fs::write(&awaiting_bye, support::sipp::caller_awaiting_bye()).expect("write");
    let callers: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(run_sipp(
                sipp_call(&platform, &awaiting_bye, "13125550133"),
                Duration::from_secs(30),
            ))
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while platform.events().iter().filter(|e| e["type"] == "call.answered").count() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "both calls answered: {:#?}", platform.events());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = platform.child.id().expect("running").to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(status.success());
    for caller in callers {
        let (code, output) = caller.await.expect("caller");
        assert_eq!(code, 0, "the caller got the platform's BYE:\n{output}\n{}", platform.log());
    }
    let exit = tokio::time::timeout(Duration::from_secs(15), platform.child.wait())
        .await
        .expect("the platform stops after its drain")
        .expect("exit status");
    assert!(exit.success(), "a clean stop: {exit:?}\n{}", platform.log());
    assert!(platform.log().contains("drain deadline reached"), "{}", platform.log());
    let calls = provision::call_log(&dir, provisioned.account).await;
    assert_eq!(calls.total, 2, "{calls:#?}");
    for call in &calls.data {
        assert!(call.ended_on.is_some(), "every CDR is closed: {call:#?}");
        assert_eq!(call.q850_cause, Some(16), "ended as a normal hangup: {call:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cdr_left_open_by_a_killed_platform_is_closed_when_it_starts_again() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let endless = r#"<Response><Answer/><Pause length="60000"/></Response>"#;
    let provisioned = provision::xml_number(&dir, "crashed@example.test", 13_125_550_134, endless).await;
    let platform = Platform::start_in(data, &[]).await;
    let scenarios = tempfile::tempdir().expect("tempdir");
    let awaiting_bye = scenarios.path().join("awaiting-bye.xml");
    std::fs::write(&awaiting_bye, support::sipp::caller_awaiting_bye()).expect("write");
    let mut caller =
        sipp_call(&platform, &awaiting_bye, "13125550134").kill_on_drop(true).spawn().expect("sipp");
    platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.answered").await;
    // kill -9: nothing is flushed, no BYE is sent.
    let Platform { mut child, dir: data, .. } = platform;
    child.kill().await.expect("kill -9");
    let _ = caller.kill().await;
    let again = Platform::start_in(data, &[]).await;
    assert!(again.log().contains("closed the CDRs of calls that were up"), "{}", again.log());
    let calls = provision::call_log(&dir, provisioned.account).await;
    assert_eq!(calls.total, 1, "{calls:#?}");
    let call = &calls.data[0];
    assert!(call.ended_on.is_some(), "closed at the restart: {call:#?}");
    assert_eq!(call.q850_cause, Some(41));
    assert_eq!(call.hangup_reason.as_deref(), Some("the platform stopped while the call was in progress"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_audio_decoder_ends_only_its_own_call() {
    // Debug builds of the decoder panic on this input (fault injection for this test).
    let audio = support::http::TestServer::start(&[(
        "/prompt.wav",
        support::http::Canned::xml("OPENTACT-TEST-PANIC"),
    )])
    .await;
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let doomed = format!(
        "<Response><Answer/><Play>{}</Play><Say>never heard</Say></Response>",
        audio.url("/prompt.wav")
    );
    provision::xml_number(&dir, "panics@example.test", 13_125_550_135, &doomed).await;
    let fine = r#"<Response><Answer/><Pause length="1500"/><Hangup/></Response>"#;
    provision::xml_number(&dir, "fine@example.test", 13_125_550_136, fine).await;
    let config = data.path().join("opentact.toml");
    std::fs::write(&config, "[media]\nallow_private_audio_urls = true\n").expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let scenarios = tempfile::tempdir().expect("tempdir");
    let awaiting_bye = scenarios.path().join("awaiting-bye.xml");
    std::fs::write(&awaiting_bye, support::sipp::caller_awaiting_bye()).expect("write");

    let good =
        tokio::spawn(run_sipp(sipp_call(&platform, &awaiting_bye, "13125550136"), Duration::from_secs(30)));
    let (code, output) =
        run_sipp(sipp_call(&platform, &awaiting_bye, "13125550135"), Duration::from_secs(30)).await;
    assert_eq!(
        code,
        0,
        "the panicking call was hung up (BYE), not left hanging:\n{output}\n{}",
        platform.log()
    );
    let (code, output) = good.await.expect("good call");
    assert_eq!(code, 0, "the other call never noticed:\n{output}");
    let events = platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.hangup").await;
    let failed: Vec<String> = events
        .iter()
        .filter(|e| e["verb"] == "flow" && e["phase"] == "failed")
        .map(|e| e.to_string())
        .collect();
    assert!(
        failed.len() == 1 && failed[0].contains("decoder fault injected"),
        "the panic ended that call's flow with its reason: {failed:#?}"
    );
    assert_eq!(
        events.iter().filter(|e| e["type"] == "call.hangup").count(),
        2,
        "both calls reported their end: {events:#?}"
    );
    assert!(platform.log().contains("the call's flow panicked"), "{}", platform.log());
    assert!(!events.iter().any(|e| e.to_string().contains("never heard")), "the flow did not go on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_connection_reaches_only_its_own_accounts_numbers() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let flow = "<Response><Answer/><Hangup/></Response>";
    let own = provision::xml_number(&dir, "pbx-owner@example.test", 13_125_550_137, flow).await;
    provision::xml_number(&dir, "someone-else@example.test", 13_125_550_138, flow).await;
    provision::connection_with_ip(&dir, own.account, "127.0.0.1").await;
    // No carrier addresses: loopback is trusted only as the owner's PBX.
    let config = data.path().join("opentact.toml");
    std::fs::write(&config, "[sip]\ncarriers = []\n").expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let scenarios = tempfile::tempdir().expect("tempdir");
    let answered = scenarios.path().join("answered.xml");
    std::fs::write(&answered, support::sipp::caller_awaiting_bye()).expect("write");
    let refused = scenarios.path().join("403.xml");
    std::fs::write(&refused, support::sipp::caller_expecting_status(403)).expect("write");
    let (code, output) =
        run_sipp(sipp_call(&platform, &answered, "13125550137"), Duration::from_secs(20)).await;
    assert_eq!(code, 0, "the PBX calls its own account's number:\n{output}\n{}", platform.log());
    let (code, output) =
        run_sipp(sipp_call(&platform, &refused, "13125550138"), Duration::from_secs(20)).await;
    assert_eq!(code, 0, "another account's number is refused with 403:\n{output}\n{}", platform.log());
    assert!(platform.log().contains("reaches only its own account"), "{}", platform.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_naming_a_refused_media_address_gets_488_and_no_rtp() {
    let data = tempfile::tempdir().expect("tempdir");
    let xml = r#"<Response><Say tag="greeting">Hello there.</Say><Hangup/></Response>"#;
    provision::xml_number(&data.path().join("data"), "media@example.test", 13_125_550_141, xml).await;
    // The tests run on loopback, where private media is allowed unless the config says no.
    let config = data.path().join("opentact.toml");
    std::fs::write(&config, "[media]\nallow_private_rtp_peers = false\n").expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    // The offer names this socket (loopback) as where the caller's media goes.
    let media = tokio::net::UdpSocket::bind(("127.0.0.1", 0)).await.expect("media socket");
    let media_port = media.local_addr().expect("addr").port();
    let scenarios = tempfile::tempdir().expect("tempdir");
    let refused = scenarios.path().join("488.xml");
    // The 488 says why in a Warning header (RFC 3261 §21.4.26), which SIPp must find.
    let scenario = support::sipp::caller_expecting_status(488)
        .replace("[media_port]", &media_port.to_string())
        .replace(
            r#"<recv response="488"/>"#,
            r#"<recv response="488"><action><ereg regexp="399 [^ ]+ .media address 127\.0\.0\.1 refused" search_in="hdr" header="Warning:" check_it="true" assign_to="warning"/></action></recv>
  <Reference variables="warning"/>"#,
        );
    assert!(scenario.contains("Warning:"), "the scenario checks the Warning header");
    std::fs::write(&refused, scenario).expect("write");
    let (code, output) =
        run_sipp(sipp_call(&platform, &refused, "13125550141"), Duration::from_secs(20)).await;
    assert_eq!(code, 0, "the offer is refused with 488 and a Warning:\n{output}\n{}", platform.log());
    let mut buffer = [0u8; 2048];
    let received = tokio::time::timeout(Duration::from_millis(500), media.recv_from(&mut buffer)).await;
    assert!(received.is_err(), "no RTP was sent to the refused address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_srtp_is_required_a_plain_rtp_offer_gets_488_saying_why() {
    let data = tempfile::tempdir().expect("tempdir");
    let xml = r#"<Response><Say tag="greeting">Hello there.</Say><Hangup/></Response>"#;
    provision::xml_number(&data.path().join("data"), "srtp@example.test", 13_125_550_142, xml).await;
    let config = data.path().join("opentact.toml");
    std::fs::write(&config, "[media]\nallow_private_rtp_peers = true\nsrtp = \"required\"\n")
        .expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let scenarios = tempfile::tempdir().expect("tempdir");
    let refused = scenarios.path().join("488.xml");
    let scenario = support::sipp::caller_expecting_status(488).replace(
        r#"<recv response="488"/>"#,
        r#"<recv response="488"><action><ereg regexp="399 [^ ]+ .plain RTP refused: this platform requires SRTP" search_in="hdr" header="Warning:" check_it="true" assign_to="warning"/></action></recv>
  <Reference variables="warning"/>"#,
    );
    assert!(scenario.contains("Warning:"), "the scenario checks the Warning header");
    std::fs::write(&refused, scenario).expect("write");
    let (code, output) =
        run_sipp(sipp_call(&platform, &refused, "13125550142"), Duration::from_secs(20)).await;
    assert_eq!(code, 0, "the plain offer is refused with 488 and a Warning:\n{output}\n{}", platform.log());
    // The flow's Say answers first; that answer failed, saying why, and nothing was said.
    let events = platform.events();
    let answer_failed = events
        .iter()
        .find(|e| e["verb"] == "answer" && e["phase"] == "failed")
        .unwrap_or_else(|| panic!("the answer failed: {events:#?}"));
    assert!(answer_failed.to_string().contains("requires SRTP"), "{answer_failed:#}");
    assert!(!events.iter().any(|e| e["verb"] == "say"), "the flow never spoke: {events:#?}");
}

/// Standard base64 of `bytes` (for Basic credentials).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// How long the flow's `<Say tag="timed">` took on a call, from the events (polled).
async fn timed_say(platform: &Platform, scenario: &std::path::Path, number: &str) -> Duration {
    let call = tokio::spawn(run_sipp(sipp_call(platform, scenario, number), Duration::from_secs(30)));
    let phase = |phase: &'static str| {
        move |events: &[serde_json::Value]| {
            events.iter().filter(|e| e["verb"] == "say" && e["tag"] == "timed" && e["phase"] == phase).count()
        }
    };
    let (started_before, finished_before) =
        (phase("started")(&platform.events()), phase("finished")(&platform.events()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while phase("started")(&platform.events()) == started_before {
        assert!(tokio::time::Instant::now() < deadline, "the say started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = tokio::time::Instant::now();
    while phase("finished")(&platform.events()) == finished_before {
        assert!(tokio::time::Instant::now() < deadline, "the say finished");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let (code, output) = call.await.expect("call");
    assert_eq!(code, 0, "{output}");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_basic_logins_do_not_delay_a_live_calls_audio() {
    let data = tempfile::tempdir().expect("tempdir");
    let xml = r#"<Response><Say tag="timed">One two three four five six seven eight nine ten.</Say><Hangup/></Response>"#;
    provision::xml_number(&data.path().join("data"), "timed@example.test", 13_125_550_151, xml).await;
    let platform = Platform::start_in(data, &[]).await;
    let scenarios = tempfile::tempdir().expect("tempdir");
    let awaiting_bye = scenarios.path().join("awaiting-bye.xml");
    std::fs::write(&awaiting_bye, support::sipp::caller_awaiting_bye()).expect("write");
    // The audio's length on a quiet platform.
    let quiet = timed_say(&platform, &awaiting_bye, "13125550151").await;
    // The same while 1 000 Basic logins (wrong passwords and the right one) arrive at once.
    let api = platform.api;
    let flood = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for attempt in 0..1000u32 {
            tasks.spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let password =
                    if attempt % 10 == 0 { "correct horse battery staple".to_owned() } else { format!("wrong-{attempt}") };
                // The flow's own account (argon2 runs for its right password), and strangers.
                let email =
                    if attempt % 2 == 0 { "timed@example.test".to_owned() } else { format!("user{}@example.test", attempt % 50) };
                let credentials = base64(format!("{email}:{password}").as_bytes());
                let Ok(mut stream) = tokio::net::TcpStream::connect(api).await else { return };
                let request = format!(
                    "GET /rest/verified_number HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {credentials}\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(request.as_bytes()).await;
                let mut answer = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    let loaded = timed_say(&platform, &awaiting_bye, "13125550151").await;
    flood.await.expect("flood");
    assert!(
        loaded <= quiet + Duration::from_secs(1),
        "the say took {loaded:?} under the login flood, {quiet:?} without"
    );
}
