//! `<Dial>` on real SIP calls: SIPp places the call, SIPp `uas` instances are the targets.

mod support;

use std::time::Duration;

use support::platform::{Platform, run_sipp, sipp};
use support::provision;
use support::sipp::{callee, callee_scenario, free_udp_port, refusing_callee_scenario};

async fn place_call(platform: &Platform, number: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("caller.xml");
    std::fs::write(&path, support::sipp::caller_awaiting_bye()).expect("write");
    let mut command = sipp();
    command
        .args(["-sf", path.to_str().expect("utf-8"), "-s", number, "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    run_sipp(command, Duration::from_secs(45)).await
}

fn config_allowing_private_targets(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("dial.toml");
    std::fs::write(&path, "[sip]\nallow_private_targets = true\n").expect("config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_target_to_answer_is_bridged_and_the_other_is_cancelled() {
    let (fast_port, slow_port) = (free_udp_port(), free_udp_port());
    let data = tempfile::tempdir().expect("tempdir");
    let xml = format!(
        r#"<Response>
  <Dial timeout="15000" tag="forward" record="true">
    <Sip>sip:fast@127.0.0.1:{fast_port}</Sip>
    <Sip>sip:slow@127.0.0.1:{slow_port}</Sip>
  </Dial>
  <Say tag="after">The other party hung up.</Say>
  <Hangup/>
</Response>"#
    );
    let provisioned =
        provision::xml_number(&data.path().join("data"), "dial@example.test", 13_125_550_101, &xml).await;
    let config = config_allowing_private_targets(data.path());
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    // The fast callee answers after 1 s and talks 2 s; the slow one would answer after 10 s.
    let (fast, _fast_dir) = callee(callee_scenario(1000, 2000), fast_port).await;
    let (slow, _slow_dir) = callee(callee_scenario(10_000, 1000), slow_port).await;
    let (code, output) = place_call(&platform, "13125550101").await;
    assert_eq!(code, 0, "the caller got the platform's BYE after the bridge:\n{output}\n{}", platform.log());
    let (fast_code, fast_output) = fast.await.expect("fast callee");
    assert_eq!(fast_code, 0, "the fast callee answered, talked and hung up:\n{fast_output}");
    let (slow_code, slow_output) = slow.await.expect("slow callee");
    assert_eq!(slow_code, 0, "the slow callee was cancelled while ringing:\n{slow_output}");

    let events = platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.hangup").await;
    let dial = events
        .iter()
        .find(|e| e["verb"] == "dial" && e["phase"] == "finished")
        .unwrap_or_else(|| panic!("dial finished: {events:#?}"));
    assert_eq!(dial["detail"]["answered"], format!("sip:fast@127.0.0.1:{fast_port}"), "{dial:#}");
    assert_eq!(dial["detail"]["callee_hung_up"], true);
    assert!(dial["detail"]["duration_ms"].as_u64().expect("duration") >= 1500, "{dial:#}");
    assert!(events.iter().any(|e| e["type"] == "call.bridged"), "{events:#?}");
    assert!(
        events.iter().any(|e| e["verb"] == "say" && e["tag"] == "after"),
        "the flow went on after the dial"
    );
    // record="true": the conversation (about 2 s) is one WAV of the call.
    let account_dir = platform.data().join("recordings").join(provisioned.account.to_string());
    let wav = std::fs::read_dir(&account_dir)
        .expect("recordings of the account")
        .flat_map(|call| std::fs::read_dir(call.expect("entry").path()).expect("call dir"))
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.extension().is_some_and(|ext| ext == "wav"))
        .expect("the dial's recording");
    let info = std::process::Command::new("sox").args(["--i", "-D"]).arg(&wav).output().expect("sox");
    let seconds: f64 = String::from_utf8_lossy(&info.stdout).trim().parse().expect("a duration");
    assert!((1.5..=3.5).contains(&seconds), "the 2 s conversation: {seconds} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_target_runs_the_error_branch() {
    let busy_port = free_udp_port();
    let data = tempfile::tempdir().expect("tempdir");
    let xml = format!(
        r#"<Response>
  <Dial timeout="10000">
    <Sip>sip:busy@127.0.0.1:{busy_port}</Sip>
    <Error><Say tag="busy-branch">The line is busy.</Say></Error>
  </Dial>
  <Hangup/>
</Response>"#
    );
    provision::xml_number(&data.path().join("data"), "busy@example.test", 13_125_550_102, &xml).await;
    let config = config_allowing_private_targets(data.path());
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let (busy, _dir) = callee(refusing_callee_scenario(486), busy_port).await;
    let (code, output) = place_call(&platform, "13125550102").await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let (busy_code, busy_output) = busy.await.expect("busy callee");
    assert_eq!(busy_code, 0, "{busy_output}");
    let events = platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.hangup").await;
    let failed = events
        .iter()
        .find(|e| e["verb"] == "dial" && e["phase"] == "failed")
        .unwrap_or_else(|| panic!("dial failed: {events:#?}"));
    assert_eq!(failed["detail"]["error"], "busy", "{failed:#}");
    assert!(events.iter().any(|e| e["verb"] == "say" && e["tag"] == "busy-branch"), "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_dialled_through_the_carrier_trunk() {
    let carrier_port = free_udp_port();
    let data = tempfile::tempdir().expect("tempdir");
    let xml = r#"<Response>
  <Dial timeout="10000" callerId="13125550112"><Number>12125550100</Number></Dial>
  <Hangup/>
</Response>"#;
    provision::xml_number(&data.path().join("data"), "trunk@example.test", 13_125_550_112, xml).await;
    let config = data.path().join("trunk.toml");
    std::fs::write(&config, format!("[sip]\noutbound_proxy = \"127.0.0.1:{carrier_port}\"\n"))
        .expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    // The carrier answers after 0.5 s, talks 1 s and hangs up; it also checks what it got.
    let carrier_scenario = callee_scenario(500, 1000)
        .replace(
            r#"<recv request="INVITE" crlf="true">
    <action>"#,
            r#"<recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="INVITE sip:12125550100@127.0.0.1" search_in="msg" check_it="true" assign_to="ruri"/>
      <ereg regexp="From: &lt;sip:13125550112@" search_in="msg" check_it="true" assign_to="cid"/>"#,
        )
        .replace("</scenario>", "  <Reference variables=\"ruri,cid\"/>\n</scenario>");
    let (carrier, _dir) = callee(carrier_scenario, carrier_port).await;
    let (code, output) = place_call(&platform, "13125550112").await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let (carrier_code, carrier_output) = carrier.await.expect("carrier");
    assert_eq!(carrier_code, 0, "the carrier got the number and the caller ID:\n{carrier_output}");
    let events = platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.hangup").await;
    let dial = events
        .iter()
        .find(|e| e["verb"] == "dial" && e["phase"] == "finished")
        .unwrap_or_else(|| panic!("dial finished: {events:#?}"));
    assert_eq!(dial["detail"]["answered"], "12125550100", "{dial:#}");
}

/// The caller hangs up 1 s after the answer.
fn caller_hanging_up_early() -> String {
    let invite = support::sipp::INVITE_PCMU;
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller leaving while the target rings">
{invite}  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:13105550111@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="1000"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:13105550111@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_caller_leaves_while_targets_ring_they_are_cancelled() {
    let ringing_port = free_udp_port();
    let data = tempfile::tempdir().expect("tempdir");
    let xml = format!(
        r#"<Response><Answer/><Dial timeout="20000"><Sip>sip:late@127.0.0.1:{ringing_port}</Sip></Dial></Response>"#
    );
    provision::xml_number(&data.path().join("data"), "leave@example.test", 13_125_550_114, &xml).await;
    let config = config_allowing_private_targets(data.path());
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    // Would answer after 15 s: it must see a CANCEL long before.
    let (target, _dir) = callee(callee_scenario(15_000, 1000), ringing_port).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("caller.xml");
    std::fs::write(&path, caller_hanging_up_early()).expect("write");
    let mut command = sipp();
    command
        .args(["-sf", path.to_str().expect("utf-8"), "-s", "13125550114", "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "20s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = run_sipp(command, Duration::from_secs(40)).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let started = tokio::time::Instant::now();
    let (target_code, target_output) = target.await.expect("target");
    assert_eq!(target_code, 0, "the ringing target was cancelled:\n{target_output}");
    assert!(started.elapsed() < Duration::from_secs(5), "cancelled at once, not at its ring timeout");
    let events = platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.hangup").await;
    let hangup = events.iter().find(|e| e["type"] == "call.hangup").expect("hangup");
    assert_eq!(hangup["by"], "caller", "{hangup:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_id_the_account_does_not_lease_is_refused() {
    let carrier_port = free_udp_port();
    let data = tempfile::tempdir().expect("tempdir");
    // A customer's flow trying to present somebody else's number on the carrier trunk.
    let xml = r#"<Response>
  <Dial timeout="5000" callerId="19995550123"><Number>12125550100</Number></Dial>
  <Hangup/>
</Response>"#;
    provision::xml_number(&data.path().join("data"), "spoofer@example.test", 13_125_550_113, xml).await;
    let config = data.path().join("trunk.toml");
    std::fs::write(&config, format!("[sip]\noutbound_proxy = \"127.0.0.1:{carrier_port}\"\n"))
        .expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    // The carrier would listen here; nothing may reach it.
    let carrier = tokio::net::UdpSocket::bind(("127.0.0.1", carrier_port)).await.expect("carrier socket");
    let (code, output) = place_call(&platform, "13125550113").await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let events = platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.hangup").await;
    let failed = events
        .iter()
        .find(|e| e["verb"] == "dial" && e["phase"] == "failed")
        .unwrap_or_else(|| panic!("the dial failed: {events:#?}"));
    assert!(
        failed["detail"]["message"].to_string().contains("is not a number this account leases"),
        "{failed:#}"
    );
    let mut buffer = [0u8; 2048];
    let received = tokio::time::timeout(Duration::from_millis(300), carrier.recv_from(&mut buffer)).await;
    assert!(received.is_err(), "no INVITE reached the carrier");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_leg_takes_a_place_among_the_accounts_calls() {
    let carrier_port = free_udp_port();
    let data = tempfile::tempdir().expect("tempdir");
    let xml = r#"<Response>
  <Dial timeout="5000" callerId="13125550114">
    <Number>12125550100</Number>
    <Error><Say tag="limit-branch">Too many calls.</Say></Error>
  </Dial>
  <Hangup/>
</Response>"#;
    provision::xml_number(&data.path().join("data"), "capped@example.test", 13_125_550_114, xml).await;
    // One call at a time: the inbound call holds it, so its <Dial> leg would be the second.
    let config = data.path().join("capped.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\noutbound_proxy = \"127.0.0.1:{carrier_port}\"\n\n[calls]\nmax_calls_per_account = 1\n"
        ),
    )
    .expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let carrier = tokio::net::UdpSocket::bind(("127.0.0.1", carrier_port)).await.expect("carrier socket");
    let (code, output) = place_call(&platform, "13125550114").await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let events = platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.hangup").await;
    let failed = events
        .iter()
        .find(|e| e["verb"] == "dial" && e["phase"] == "failed")
        .unwrap_or_else(|| panic!("the dial failed: {events:#?}"));
    assert_eq!(failed["detail"]["error"], "limit_exceeded", "{failed:#}");
    assert!(failed["detail"]["message"].to_string().contains("account call limit"), "{failed:#}");
    assert!(events.iter().any(|e| e["verb"] == "say" && e["tag"] == "limit-branch"), "{events:#?}");
    let mut buffer = [0u8; 2048];
    let received = tokio::time::timeout(Duration::from_millis(300), carrier.recv_from(&mut buffer)).await;
    assert!(received.is_err(), "no INVITE reached the carrier");
}
