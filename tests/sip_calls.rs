//! Real SIP calls against `opentact serve`, placed by SIPp (Debian's sip-tester) on loopback.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::platform::{Platform, run_sipp, sipp};

/// The sample number, whose app is the sample IVR (sample.rs): Answer, Say, Gather 1/2, Hangup.
const SAMPLE_NUMBER: &str = "12025550100";

/// SIPp's scenarios find their pcap files under `pcap/` relative to the working directory.
fn pcap_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink("/usr/share/sip-tester", dir.path().join("pcap")).expect("symlink pcap");
    dir
}

fn said_tags(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "call.callflow" && e["verb"] == "say" && e["phase"] == "started")
        .filter_map(|e| e["tag"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_pcap_dtmf_one_selects_the_sales_branch() {
    // /metrics on, behind a token, so the call shows there afterwards (issue 14).
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("metrics.token");
    std::fs::write(&token_file, "scrape-secret\n").expect("token");
    let config = dir.path().join("metrics.toml");
    std::fs::write(
        &config,
        format!(
            "[metrics]\nlisten = \"127.0.0.1:0\"\nbearer_token_file = {:?}\n",
            token_file.display().to_string()
        ),
    )
    .expect("config");
    // Spans exported to an OpenTelemetry collector (OTLP/HTTP, JSON), batched every 100 ms.
    let collector =
        support::http::TestServer::start(&[("/v1/traces", support::http::Canned::xml("{}"))]).await;
    let endpoint = format!("http://{}", collector.addr);
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_SERVICE_NAME", "opentact-test"),
    ];
    let platform = Platform::start_with_env(dir, &["--config", config.to_str().expect("utf-8")], &otel).await;
    let (status, text) = support::platform::scrape_metrics(&platform, None).await;
    assert_eq!(status, 401, "no token: {text}");
    let (status, before) = support::platform::scrape_metrics(&platform, Some("scrape-secret")).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(
        support::platform::metric(&before, r#"opentact_calls_total{direction="inbound"}"#),
        Some(0.0),
        "{before}"
    );
    let cwd = pcap_dir();
    let mut command = sipp();
    command
        .current_dir(cwd.path())
        .args(["-sn", "uac_pcap", "-s", SAMPLE_NUMBER, "-m", "1", "-l", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "40s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = run_sipp(command, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "sipp failed:\n{output}\nserver log:\n{}", platform.log());

    let events = platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.hangup").await;
    let gather = events
        .iter()
        .find(|e| e["type"] == "call.callflow" && e["verb"] == "gather" && e["phase"] == "finished")
        .unwrap_or_else(|| panic!("a finished gather: {events:#?}"));
    assert_eq!(gather["detail"]["digits"], "1", "{gather:#}");
    let tags = said_tags(&events);
    assert!(tags.contains(&"welcome".to_owned()), "{tags:?}");
    assert!(
        tags.contains(&"sales".to_owned()),
        "the DTMF 1 from SIPp's RTP picked the sales branch: {tags:?}"
    );
    assert!(!tags.contains(&"no-input".to_owned()), "{tags:?}");
    let answered = events.iter().any(|e| e["type"] == "call.answered");
    assert!(answered, "{events:#?}");

    // The REST API's answers are counted too: one refused login.
    let (status, _) = support::platform::http(platform.api, "GET", "/rest/auth", &[], None).await;
    assert_eq!(status, 401);
    // The call's flow ends (and leaves the live calls) just after its hangup event.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let text = loop {
        let (status, text) = support::platform::scrape_metrics(&platform, Some("scrape-secret")).await;
        assert_eq!(status, 200, "{text}");
        if support::platform::metric(&text, "opentact_calls_up") == Some(0.0)
            || tokio::time::Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        support::platform::metric(&text, r#"opentact_calls_total{direction="inbound"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(support::platform::metric(&text, "opentact_calls_up"), Some(0.0), "the call ended: {text}");
    assert_eq!(
        support::platform::metric(&text, r#"opentact_flow_starts_total{trigger="call"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        support::platform::metric(&text, r#"opentact_flow_failures_total{cause="trap"}"#),
        Some(0.0),
        "{text}"
    );
    assert!(
        support::platform::metric(&text, r#"opentact_http_requests_total{class="4xx"}"#) >= Some(1.0),
        "{text}"
    );
    // The store was sampled at the scrape.
    assert!(support::platform::metric(&text, "opentact_db_pool_max_connections") > Some(0.0), "{text}");
    assert!(support::platform::metric(&text, "opentact_webhook_backlog").is_some(), "{text}");
    assert!(support::platform::metric(&text, "opentact_sms_queue_depth").is_some(), "{text}");
    // The INVITE's span names the call by its uuid, as the events do (the flow's span and its
    // imports run inside it).
    let uuid = events[0]["call"].as_str().expect("the call's uuid").to_owned();
    let log = platform.log();
    let finished = log.lines().find(|line| line.contains("flow finished")).expect("flow finished logged");
    assert!(
        finished.contains("call{sip_call_id=") && finished.contains(&format!("call=\"{uuid}\"}}")),
        "{finished}"
    );

    // The same spans reached the collector: the call's, carrying its uuid, and the flow's
    // inside it (same trace, the call's span its parent).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (call_span, flow_span) = loop {
        let spans = exported_spans(&collector);
        let call_span =
            spans.iter().find(|s| s["name"] == "call" && attribute(s, "call") == Some(uuid.as_str()));
        let flow_span =
            spans.iter().find(|s| s["name"] == "flow" && attribute(s, "call") == Some(uuid.as_str()));
        if let (Some(call_span), Some(flow_span)) = (call_span, flow_span) {
            break (call_span.clone(), flow_span.clone());
        }
        assert!(tokio::time::Instant::now() < deadline, "spans exported: {spans:#?}\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(flow_span["traceId"], call_span["traceId"], "{flow_span:#}\n{call_span:#}");
    assert_eq!(flow_span["parentSpanId"], call_span["spanId"], "{flow_span:#}\n{call_span:#}");
    assert!(attribute(&call_span, "sip_call_id").is_some(), "{call_span:#}");
    let request = collector.received().into_iter().next().expect("an export");
    assert_eq!(request.content_type.as_deref(), Some("application/json"), "{request:?}");
    assert!(request.body.contains("opentact-test"), "the service is named: {}", request.body);
}

/// Every span the collector received (OTLP/JSON export requests).
fn exported_spans(collector: &support::http::TestServer) -> Vec<Value> {
    collector
        .received()
        .iter()
        .filter_map(|request| serde_json::from_str::<Value>(&request.body).ok())
        .flat_map(|export| {
            let mut spans = Vec::new();
            for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    spans.extend(scope["spans"].as_array().into_iter().flatten().cloned());
                }
            }
            spans
        })
        .collect()
}

/// A span's string attribute.
fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"].as_array()?.iter().find(|a| a["key"] == key)?["value"]["stringValue"].as_str()
}

/// An OPTIONS ping answered 200 proves the server still serves.
async fn options_answered(socket: &tokio::net::UdpSocket, server: std::net::SocketAddr, n: usize) -> bool {
    let local = socket.local_addr().expect("local");
    let ping = format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bK-ping{n}\r\n\
         From: <sip:probe@{local}>;tag=p{n}\r\nTo: <sip:{server}>\r\nCall-ID: ping-{n}@probe\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(ping.as_bytes(), server).await.expect("send");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut buffer = vec![0u8; 4096];
    while let Ok(Ok((length, _))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer)).await {
        let text = String::from_utf8_lossy(&buffer[..length]);
        if text.starts_with("SIP/2.0 200") && text.contains(&format!("ping-{n}@probe")) {
            return true;
        }
    }
    false
}

/// What came back within `wait` (status lines), ignoring answers to pings.
async fn responses(socket: &tokio::net::UdpSocket, wait: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buffer = vec![0u8; 65_536];
    let mut lines = Vec::new();
    while let Ok(Ok((length, _))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer)).await {
        let text = String::from_utf8_lossy(&buffer[..length]).into_owned();
        if !text.contains("@probe") {
            lines.push(text.lines().next().unwrap_or_default().to_owned());
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_an_error_or_are_dropped_and_the_server_keeps_serving() {
    let platform = Platform::start(&[]).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let fixtures = support::runner::repo().join("tests/fixtures");
    let mut sent = 0;
    // Our own broken messages: each is refused (4xx) or dropped, never accepted.
    let mut broken: Vec<_> = std::fs::read_dir(fixtures.join("sip-broken"))
        .expect("fixtures")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sip" || ext == "bin"))
        .collect();
    broken.sort();
    assert!(broken.len() >= 5, "{broken:?}");
    for path in &broken {
        let bytes = std::fs::read(path).expect("read");
        socket.send_to(&bytes, platform.sip).await.expect("send");
        let answers = responses(&socket, Duration::from_millis(300)).await;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert!(
            answers.iter().all(|status| status.starts_with("SIP/2.0 4")),
            "{name}: refused with a 4xx or dropped, got {answers:?}"
        );
        sent += 1;
        assert!(options_answered(&socket, platform.sip, sent).await, "the server still serves after {name}");
    }
    // RFC 4475's torture messages, each with its verdict over UDP and TCP: tests/sip_torture.rs.
    // The same over TCP: garbage on a connection does not take the listener down.
    let mut stream = tokio::net::TcpStream::connect(platform.sip).await.expect("tcp connect");
    tokio::io::AsyncWriteExt::write_all(&mut stream, b"\x00\x01garbage\r\n\r\nNOT SIP AT ALL\r\n\r\n")
        .await
        .expect("write");
    drop(stream);
    sent += 1;
    assert!(options_answered(&socket, platform.sip, sent).await, "the server still serves after TCP garbage");
}

async fn call_expecting(platform: &Platform, number: &str, status: u16) -> (i32, String) {
    run_scenario(platform, number, &support::sipp::caller_expecting_status(status)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_numbers_get_404_and_unknown_sources_are_challenged() {
    let platform = Platform::start(&[]).await;
    let (code, output) = call_expecting(&platform, "19995550000", 404).await;
    assert_eq!(code, 0, "a number nobody leases is 404:\n{output}\n{}", platform.log());
    let (code, output) = call_expecting(&platform, "alice", 404).await;
    assert_eq!(code, 0, "a user part that is not a number is 404:\n{output}");

    let config = platform.dir.path().join("no-carriers.toml");
    std::fs::write(&config, "[sip]\ncarriers = []\n").expect("write config");
    let closed = Platform::start(&["--config", config.to_str().expect("utf-8")]).await;
    let (code, output) = call_expecting(&closed, SAMPLE_NUMBER, 407).await;
    assert_eq!(
        code,
        0,
        "a source that is no carrier or SIP connection must authenticate as a SIP user:\n{output}\n{}",
        closed.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_component_answers_a_real_call_and_gathers_the_digit() {
    let data = tempfile::tempdir().expect("tempdir");
    let wasm = opentact_guest_artifacts::bytes("ivr");
    support::provision::component_number(
        &data.path().join("data"),
        "wasm@example.test",
        13_125_550_104,
        &wasm,
    )
    .await;
    let platform = Platform::start_in(data, &[]).await;
    let cwd = pcap_dir();
    let mut command = sipp();
    command
        .current_dir(cwd.path())
        .args(["-sn", "uac_pcap", "-s", "13125550104", "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "40s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = run_sipp(command, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "sipp failed:\n{output}\nserver log:\n{}", platform.log());
    let events = platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.hangup").await;
    assert!(events.iter().any(|e| e["type"] == "call.answered"), "{events:#?}");
    let gather = events
        .iter()
        .find(|e| e["verb"] == "gather" && e["phase"] == "finished")
        .unwrap_or_else(|| panic!("a finished gather: {events:#?}"));
    assert_eq!(gather["detail"]["digits"], "1", "{gather:#}");
    // The IVR example sends 1 to sales: a dial to its sales number, which fails here (no
    // carrier trunk is configured) and the flow says so.
    let dial = events.iter().find(|e| e["verb"] == "dial").unwrap_or_else(|| panic!("a dial: {events:#?}"));
    assert_eq!(dial["detail"]["targets"][0], "12125550100", "{dial:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blacklisted_and_unlisted_callers_get_603() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let flow = "<Response><Hangup/></Response>";
    let black = support::provision::xml_number(&dir, "lists@example.test", 13_125_550_105, flow).await;
    support::provision::caller_lists(&dir, black.account, 13_125_550_105, &["1310555"], &[]).await;
    support::provision::xml_number(&dir, "lists@example.test", 13_125_550_106, flow).await;
    support::provision::caller_lists(&dir, black.account, 13_125_550_106, &[], &["12025550111"]).await;
    let platform = Platform::start_in(data, &[]).await;
    // SIPp calls from 13105550111: matched by the blacklist prefix, and missing from the
    // second number's whitelist.
    let (code, output) = call_expecting(&platform, "13125550105", 603).await;
    assert_eq!(code, 0, "a blacklisted caller is declined:\n{output}\n{}", platform.log());
    let (code, output) = call_expecting(&platform, "13125550106", 603).await;
    assert_eq!(code, 0, "a caller missing from a whitelist is declined:\n{output}\n{}", platform.log());
    assert!(platform.log().contains("is blacklisted") && platform.log().contains("is not whitelisted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_of_the_callers_audio_is_kept_and_played_back() {
    let data = tempfile::tempdir().expect("tempdir");
    let flow = r#"<Response>
  <Answer/>
  <Record tag="memo" maxLength="3000" timeout="0"/>
  <Play record="memo"/>
  <Pause length="20000"/>
</Response>"#;
    let provisioned =
        support::provision::xml_number(&data.path().join("data"), "rec@example.test", 13_125_550_107, flow)
            .await;
    let platform = Platform::start_in(data, &[]).await;
    let cwd = pcap_dir();
    let mut command = sipp();
    command
        .current_dir(cwd.path())
        .args(["-sn", "uac_pcap", "-s", "13125550107", "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "40s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = run_sipp(command, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "sipp failed:\n{output}\nserver log:\n{}", platform.log());
    let events = platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.hangup").await;
    let record = events
        .iter()
        .find(|e| e["verb"] == "record" && e["phase"] == "finished")
        .unwrap_or_else(|| panic!("a finished record: {events:#?}"));
    let duration = record["detail"]["duration_ms"].as_u64().expect("duration");
    assert!((2800..=3200).contains(&duration), "maxLength bounds the recording: {record:#}");
    assert!(events.iter().any(|e| e["verb"] == "play" && e["phase"] == "finished"), "{events:#?}");

    // The WAV file is under the data directory, per account and call, and holds SIPp's voice.
    let call_dir = platform.data().join("recordings").join(provisioned.account.to_string());
    let wav = std::fs::read_dir(&call_dir)
        .expect("the account's recordings")
        .flat_map(|call| std::fs::read_dir(call.expect("entry").path()).expect("call dir"))
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.extension().is_some_and(|ext| ext == "wav"))
        .expect("a WAV recording");
    let (seconds, rms) = support::platform::sox_length_and_rms(&wav);
    assert!((2.8..=3.2).contains(&seconds), "maxLength bounds the file: {seconds} s");
    assert!(rms > 0.01, "the caller's voice, not silence: RMS {rms}");

    // The call log has the call, completed with its cause, and the recording, whose audio the
    // API serves back byte for byte; another account sees none of it.
    let call = events[0]["call"].as_str().expect("the call id").to_owned();
    let auth = basic("rec@example.test", "correct horse battery staple");
    let headers = [("Authorization", auth.as_str())];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let logged = loop {
        let (status, body) =
            support::platform::http(platform.api, "GET", &format!("/rest/call/{call}"), &headers, None).await;
        if status == 200 && body["payload"]["state"] != "answered" && body["payload"]["state"] != "initiated"
        {
            break body["payload"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "the call log shows the ended call: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(logged["state"], "completed", "{logged:#}");
    assert_eq!(logged["direction"], "inbound", "{logged:#}");
    assert_eq!(logged["to"], "13125550107", "{logged:#}");
    assert_eq!(logged["q850_cause"], 16, "{logged:#}");
    assert!(
        logged["answered_on"].is_string() && logged["duration_ms"].as_i64().unwrap_or(0) > 3000,
        "{logged:#}"
    );
    let recording = &logged["recordings"][0];
    assert_eq!(recording["name"], "memo", "{logged:#}");
    let (status, found) = support::platform::http(
        platform.api,
        "POST",
        "/rest/call/search",
        &headers,
        Some(&serde_json::json!({"to": "13125550107", "state": "completed"})),
    )
    .await;
    assert_eq!((status, &found["payload"]["total"]), (200, &serde_json::json!(1)), "{found}");
    let audio_uri = format!("/rest/record/{}/audio", recording["uuid"].as_str().expect("recording id"));
    let (status, audio) = support::platform::http_raw(platform.api, "GET", &audio_uri, &headers).await;
    assert_eq!(status, 200);
    assert_eq!(audio, std::fs::read(&wav).expect("the file"), "the API serves the recorded file");
    support::provision::account(&platform.data(), "stranger@example.test").await;
    let other = basic("stranger@example.test", "correct horse battery staple");
    let (status, _) = support::platform::http(
        platform.api,
        "GET",
        &format!("/rest/call/{call}"),
        &[("Authorization", &other)],
        None,
    )
    .await;
    assert_eq!(status, 404, "another account's call");
    let (status, _) =
        support::platform::http_raw(platform.api, "GET", &audio_uri, &[("Authorization", &other)]).await;
    assert_eq!(status, 404, "another account's recording");
}

fn basic(email: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}")))
}

/// The caller answers two re-INVITEs: hold (our offer must be sendonly), then resume (sendrecv).
fn caller_held_and_resumed() -> String {
    let invite = support::sipp::INVITE_PCMU;
    let reinvite = |direction: &str, answer: &str| {
        format!(
            r#"  <recv request="INVITE">
    <action><ereg regexp="a={direction}" search_in="body" check_it="true" assign_to="dir"/></action>
  </recv>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: sip:sipp@[local_ip]:[local_port]
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687638 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
a={answer}
]]></send>
  <recv request="ACK"/>
"#
        )
    };
    let hold = reinvite("sendonly", "recvonly");
    let resume = reinvite("sendrecv", "sendrecv");
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="held and resumed">
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
{hold}{resume}  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_unhold_renegotiate_the_media_with_re_invites() {
    let data = tempfile::tempdir().expect("tempdir");
    let flow =
        r#"<Response><Answer/><Hold timeout="60000"/><Pause length="1000"/><Unhold/><Hangup/></Response>"#;
    support::provision::xml_number(&data.path().join("data"), "hold@example.test", 13_125_550_109, flow)
        .await;
    let platform = Platform::start_in(data, &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("held.xml");
    std::fs::write(&scenario, caller_held_and_resumed()).expect("write");
    let mut command = sipp();
    command
        .args(["-sf", scenario.to_str().expect("utf-8"), "-s", "13125550109", "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "20s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = run_sipp(command, Duration::from_secs(40)).await;
    assert_eq!(
        code,
        0,
        "the caller saw a sendonly hold offer, then a sendrecv resume:\n{output}\n{}",
        platform.log()
    );
    let events = platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.hangup").await;
    for verb in ["hold", "unhold"] {
        assert!(events.iter().any(|e| e["verb"] == verb && e["phase"] == "finished"), "{verb}: {events:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timers_are_negotiated_and_too_short_intervals_refused() {
    let data = tempfile::tempdir().expect("tempdir");
    let flow = r#"<Response><Answer/><Pause length="300"/><Hangup/></Response>"#;
    support::provision::xml_number(&data.path().join("data"), "timer@example.test", 13_125_550_110, flow)
        .await;
    let platform = Platform::start_in(data, &[]).await;
    let with_timer = |interval: u32| {
        support::sipp::INVITE_PCMU.replace(
            "Max-Forwards: 70\n",
            &format!("Max-Forwards: 70\nSession-Expires: {interval}\nSupported: timer\n"),
        )
    };
    // 30 s is under the 90 s minimum of RFC 4028: 422 with Min-SE.
    let too_short = support::sipp::caller_expecting_status(422).replace(support::sipp::INVITE_PCMU, &with_timer(30)).replace(
        r#"<recv response="422"/>"#,
        r#"<recv response="422"><action><ereg regexp="Min-SE: 90" search_in="msg" check_it="true" assign_to="m"/></action></recv>"#,
    )
    .replace("</scenario>", "  <Reference variables=\"m\"/>\n</scenario>");
    let (code, output) = run_scenario(&platform, "13125550110", &too_short).await;
    assert_eq!(code, 0, "422 with Min-SE: 90:\n{output}\n{}", platform.log());
    // 1800 s: the answer names the caller as refresher and requires the extension.
    let accepted = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="session timer accepted">
{invite}  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true">
    <action>
      <ereg regexp="Session-Expires: 1800;refresher=uac" search_in="msg" check_it="true" assign_to="se"/>
      <ereg regexp="Require: timer" search_in="msg" check_it="true" assign_to="rq"/>
    </action>
  </recv>
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
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <Reference variables="se,rq"/>
</scenario>
"#,
        invite = with_timer(1800)
    );
    let (code, output) = run_scenario(&platform, "13125550110", &accepted).await;
    assert_eq!(code, 0, "Session-Expires in the 200 OK:\n{output}\n{}", platform.log());
}

async fn run_scenario(platform: &Platform, number: &str, scenario: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("scenario.xml");
    std::fs::write(&path, scenario).expect("write scenario");
    let mut command = sipp();
    command
        .args(["-sf", path.to_str().expect("utf-8"), "-s", number, "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "20s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    run_sipp(command, Duration::from_secs(40)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_connection_authenticates_by_digest_and_reaches_its_number() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let flow = r#"<Response><Answer/><Pause length="200"/><Hangup/></Response>"#;
    let provisioned = support::provision::xml_number(&dir, "pbx@example.test", 13_125_550_113, flow).await;
    support::provision::connection_with_credentials(
        &dir,
        provisioned.account,
        "pbx",
        "pbxuser",
        "trunk-Secret-9",
    )
    .await;
    let config = data.path().join("no-carriers.toml");
    std::fs::write(&config, "[sip]\ncarriers = []\n").expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let scenario_dir = tempfile::tempdir().expect("tempdir");
    let scenario = scenario_dir.path().join("pbx.xml");
    std::fs::write(
        &scenario,
        support::sipp::digest_caller_awaiting_bye("pbx.sip.opentact.local", "13105550111@pbx.example.com"),
    )
    .expect("write");
    let run = |password: &'static str| {
        let mut command = sipp();
        command
            .args([
                "-sf",
                scenario.to_str().expect("utf-8"),
                "-s",
                "13125550113",
                "-m",
                "1",
                "-i",
                "127.0.0.1",
            ])
            .args(["-au", "pbxuser", "-ap", password, "-timeout", "20s", "-timeout_error", "-nostdin"])
            // The digest uri must be the Request-URI; SIPp's default is its remote address.
            .args(["-auth_uri", "13125550113@pbx.sip.opentact.local"])
            .arg(platform.sip.to_string());
        run_sipp(command, Duration::from_secs(40))
    };
    let (code, output) = run("trunk-Secret-9").await;
    assert_eq!(
        code,
        0,
        "the PBX authenticated and its call ran the number's flow:\n{output}\n{}",
        platform.log()
    );
    platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.hangup").await;
    let (code, _) = run("wrong").await;
    assert_ne!(code, 0, "a wrong password is refused (403)");
    assert!(platform.log().contains("INVITE refused: wrong credentials"), "{}", platform.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_tcp_are_served_like_udp() {
    let platform = Platform::start(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tcp.xml");
    std::fs::write(&path, support::sipp::caller_expecting_status(404)).expect("write");
    let mut command = sipp();
    command
        .args([
            "-sf",
            path.to_str().expect("utf-8"),
            "-s",
            "19995550000",
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-t",
            "t1",
        ])
        .args(["-timeout", "20s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = run_sipp(command, Duration::from_secs(40)).await;
    assert_eq!(
        code,
        0,
        "an INVITE over TCP is routed and answered on its connection:\n{output}\n{}",
        platform.log()
    );
    // A whole call over TCP: the sample IVR, and SIPp's DTMF picks the sales branch.
    let cwd = pcap_dir();
    let mut command = sipp();
    command
        .current_dir(cwd.path())
        .args(["-sn", "uac_pcap", "-s", SAMPLE_NUMBER, "-m", "1", "-i", "127.0.0.1", "-t", "t1"])
        .args(["-timeout", "40s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = run_sipp(command, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let events = platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.hangup").await;
    assert!(said_tags(&events).contains(&"sales".to_owned()), "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_at_capacity_refuses_new_calls_with_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("one-call.toml");
    std::fs::write(&config, "[flows]\nmax_concurrent_calls = 1\n").expect("config");
    let platform = Platform::start_in(dir, &["--config", config.to_str().expect("utf-8")]).await;
    // One call holds the only flow slot for about 9 s.
    let cwd = pcap_dir();
    let mut first = sipp();
    first
        .current_dir(cwd.path())
        .args(["-sn", "uac_pcap", "-s", SAMPLE_NUMBER, "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "40s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let holding = tokio::spawn(run_sipp(first, Duration::from_secs(60)));
    platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.answered").await;
    let (code, output) = call_expecting(&platform, SAMPLE_NUMBER, 503).await;
    assert_eq!(code, 0, "the second call is refused with 503:\n{output}\n{}", platform.log());
    let (code, output) = holding.await.expect("first call");
    assert_eq!(code, 0, "the first call never noticed:\n{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_with_asr_is_transcribed_by_the_configured_provider() {
    let provider = support::http::TestServer::start(&[(
        "/stt",
        support::http::Canned::xml(r#"{"text": "hello from the caller"}"#),
    )])
    .await;
    let data = tempfile::tempdir().expect("tempdir");
    let flow = r#"<Response><Answer/><Record tag="memo" asr="true" maxLength="2000" timeout="0"/><Pause length="20000"/></Response>"#;
    support::provision::xml_number(&data.path().join("data"), "asr@example.test", 13_125_550_117, flow).await;
    let config = data.path().join("speech.toml");
    std::fs::write(
        &config,
        format!("[speech]\nstt_url = \"{}\"\nallow_private = true\n", provider.url("/stt")),
    )
    .expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let (_, login) = support::platform::http(
        platform.api,
        "POST",
        "/rest/auth",
        &[],
        Some(&serde_json::json!({"email": "asr@example.test", "password": "correct horse battery staple"})),
    )
    .await;
    let jwt = login["payload"]["token"].as_str().expect("a JWT").to_owned();
    let mut socket = support::ws::subscribe(platform.api, &jwt).await;

    let cwd = pcap_dir();
    let mut command = sipp();
    command
        .current_dir(cwd.path())
        .args(["-sn", "uac_pcap", "-s", "13125550117", "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "40s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = run_sipp(command, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "sipp failed:\n{output}\nserver log:\n{}", platform.log());

    // The provider got the WAV; the transcript is announced and kept with the recording.
    // First the recording, stored and fetchable; then what the provider heard.
    let stored = support::ws::until(&mut socket, |e| e["type"] == "record.available").await;
    let available = stored.last().expect("record.available");
    let audio = available["payload"]["audio_url"].as_str().expect("audio_url").to_owned();
    assert!(
        available["payload"]["recording"]["duration_ms"].as_i64().is_some_and(|ms| ms > 0),
        "{available:#}"
    );
    let announced = support::ws::until(&mut socket, |e| e["type"] == "transcript.available").await;
    let event = announced.last().expect("event");
    assert_eq!(event["payload"]["text"], "hello from the caller", "{event:#}");
    let received = provider.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].content_type.as_deref(), Some("audio/wav"));
    assert!(received[0].body.starts_with("RIFF"), "a WAV file");
    let recording = event["payload"]["recording"].as_str().expect("recording id");
    let bearer = format!("Bearer {jwt}");
    let (status, stored) = support::platform::http(
        platform.api,
        "GET",
        &format!("/rest/record/{recording}"),
        &[("Authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["payload"]["transcript"], "hello from the caller", "{stored}");
    assert_eq!(audio, format!("/rest/record/{recording}/audio"), "record.available named the same recording");
}

/// One SIPp call with the pcap caller to `number`; asserts it went through.
async fn pcap_call(platform: &Platform, number: &str) {
    let cwd = pcap_dir();
    let mut command = sipp();
    command
        .current_dir(cwd.path())
        .args(["-sn", "uac_pcap", "-s", number, "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "40s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = run_sipp(command, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "sipp failed:\n{output}\nserver log:\n{}", platform.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_at_its_recording_quota_gets_the_error_path_until_a_recording_is_deleted() {
    let data = tempfile::tempdir().expect("tempdir");
    let flow = r#"<Response>
  <Answer/>
  <Record tag="memo" maxLength="1000" timeout="0"/>
  <Error><Say tag="full">Your mailbox is full.</Say></Error>
  <Pause length="20000"/>
</Response>"#;
    support::provision::xml_number(&data.path().join("data"), "quota@example.test", 13_125_550_118, flow)
        .await;
    let config = data.path().join("quota.toml");
    std::fs::write(&config, "[media]\nmax_recordings_per_account = 1\n").expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let auth = basic("quota@example.test", "correct horse battery staple");
    let headers = [("Authorization", auth.as_str())];
    let records = |phase: &'static str| {
        move |events: &[Value]| {
            events
                .iter()
                .filter(|e| e["verb"] == "record" && e["phase"] == phase)
                .cloned()
                .collect::<Vec<_>>()
        }
    };

    // The first call's recording is kept: the account is at its quota of one.
    pcap_call(&platform, "13125550118").await;
    let events = platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.hangup").await;
    let kept = records("finished")(&events);
    assert_eq!(kept.len(), 1, "{events:#?}");
    let recording = kept[0]["detail"]["recording"].as_str().expect("recording id").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = support::platform::http(
            platform.api,
            "GET",
            &format!("/rest/record/{recording}"),
            &headers,
            None,
        )
        .await;
        if status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the call log keeps the recording: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The second call's <Record> fails with limit-exceeded and its <Error> runs.
    pcap_call(&platform, "13125550118").await;
    let events = platform
        .wait_for_event(Duration::from_secs(10), |e| {
            e["verb"] == "say" && e["tag"] == "full" && e["phase"] == "finished"
        })
        .await;
    let failed = records("failed")(&events);
    assert_eq!(failed.len(), 1, "{events:#?}");
    let error = failed[0]["detail"].to_string();
    assert!(error.contains("limit_exceeded") || error.contains("limit exceeded"), "{error}");
    assert!(error.contains("media.max_recordings_per_account = 1"), "the event says why: {error}");
    assert_eq!(records("finished")(&events).len(), 1, "nothing more recorded");
    assert!(platform.log().contains("recording refused"), "the log says why:\n{}", platform.log());

    // Deleting the recording frees the quota: the next call records again.
    let (status, body) =
        support::platform::http(platform.api, "DELETE", &format!("/rest/record/{recording}"), &headers, None)
            .await;
    assert_eq!(status, 200, "{body}");
    pcap_call(&platform, "13125550118").await;
    let events = platform
        .wait_for_event(Duration::from_secs(10), |e| {
            e["verb"] == "record"
                && e["phase"] == "finished"
                && e["detail"]["recording"] != recording.as_str()
        })
        .await;
    assert_eq!(records("finished")(&events).len(), 2, "{events:#?}");
    assert_eq!(records("failed")(&events).len(), 1, "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_npa_nxx_data_gives_geo_its_county_and_the_lookup_its_carrier() {
    // SIPp calls from 13105550111: exchange 310-555, thousands-block 0.
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = r#"<Response><Geo states="CA" county="Orange"><Say tag="orange">Hello Orange County</Say></Geo><Geo states="CA" county="Los Angeles"><Say tag="la">Hello Los Angeles</Say></Geo><Hangup/></Response>"#;
    support::provision::xml_number(&dir.path().join("data"), "geo@example.test", 13_125_550_111, flow).await;
    let data = dir.path().join("npanxx.csv");
    std::fs::write(
        &data,
        "npa,nxx,block,state,county,rate_center,time_zone,line_type,carrier,ocn\n\
         310,555,,CA,Orange,IRVINE,America/Los_Angeles,landline,Frontier,9740\n\
         310,555,0,CA,Los Angeles,LSAN DA 01,America/Los_Angeles,mobile,T-Mobile,6529\n",
    )
    .expect("data");
    let config = dir.path().join("telecom.toml");
    std::fs::write(&config, format!("[telecom]\nnpanxx = \"{}\"\nrefresh_secs = 1\n", data.display()))
        .expect("config");
    let platform = Platform::start_in(dir, &["--config", config.to_str().expect("utf-8")]).await;
    let (code, output) = support::platform::call_awaiting_bye(&platform, 13_125_550_111).await.expect("sipp");
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let events = platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.destroyed").await;
    assert_eq!(said_tags(&events), ["la"], "the block's county, not the exchange's: {events:#?}");

    let (status, login) = support::platform::http(
        platform.api,
        "POST",
        "/rest/auth",
        &[],
        Some(&serde_json::json!({"email": "geo@example.test", "password": "correct horse battery staple"})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let bearer = format!("Bearer {}", login["payload"]["token"].as_str().expect("a JWT"));
    let lookup = |tn: &'static str| {
        let bearer = bearer.clone();
        let api = platform.api;
        async move {
            let (status, body) = support::platform::http(
                api,
                "GET",
                &format!("/rest/telecom/lookup/{tn}"),
                &[("Authorization", &bearer)],
                None,
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body["payload"].clone()
        }
    };
    let mobile = lookup("13105550111").await;
    assert_eq!(mobile["county"], "Los Angeles", "{mobile:#}");
    assert_eq!(mobile["line_type"], "mobile", "{mobile:#}");
    assert_eq!(mobile["carrier"], "T-Mobile", "{mobile:#}");
    assert_eq!(mobile["ocn"], "6529", "{mobile:#}");
    assert_eq!(mobile["rate_center"], "LSAN DA 01", "{mobile:#}");
    let landline = lookup("13105559999").await;
    assert_eq!(
        (landline["county"].as_str(), landline["carrier"].as_str()),
        (Some("Orange"), Some("Frontier"))
    );
    let elsewhere = lookup("12025550100").await;
    assert!(elsewhere["county"].is_null() && elsewhere["carrier"].is_null(), "{elsewhere:#}");
    assert_eq!(elsewhere["region"], "Washington D.C.", "the area-code data still answers: {elsewhere:#}");

    // The operator imports new data while the platform runs: a bad file changes nothing and
    // names its line; a good one replaces every row, and the node loads it.
    let import = |file: std::path::PathBuf| {
        let data_dir = platform.data();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_opentact"))
                .args(["admin", "telecom", "import", file.to_str().expect("utf-8")])
                .args(["--data-dir", data_dir.to_str().expect("utf-8")])
                .output()
                .await
                .expect("run opentact admin")
        }
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let bad = scratch.path().join("bad.csv");
    std::fs::write(
        &bad,
        "npa,nxx,block,county
202,555,,District of Columbia
202,55,,Nowhere
",
    )
    .expect("bad");
    let refused = import(bad).await;
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("line 3: nxx \"55\""), "{refused:?}");
    let new = scratch.path().join("new.csv");
    std::fs::write(
        &new,
        "npa,nxx,block,state,county,carrier
202,555,,DC,District of Columbia,Verizon
",
    )
    .expect("new");
    let imported = import(new).await;
    assert!(imported.status.success(), "{imported:?}");
    assert_eq!(String::from_utf8_lossy(&imported.stdout), "1 NPA-NXX rows imported from new.csv\n");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let dc = lookup("12025550100").await;
        if dc["county"] == "District of Columbia" {
            assert_eq!(dc["carrier"], "Verizon", "{dc:#}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node loads the import: {dc:#}\n{}",
            platform.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The old rows are gone (and 310 is not in the built-in area-code data).
    let (status, gone) = support::platform::http(
        platform.api,
        "GET",
        "/rest/telecom/lookup/13105550111",
        &[("Authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!((status, gone["message"].as_str()), (404, Some("no telecom data for 13105550111")), "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_before_the_answer_lets_the_call_ring() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = r#"<Response><Pause length="700"/><Say tag="hello">Hello</Say><Hangup/></Response>"#;
    support::provision::xml_number(&dir.path().join("data"), "ring@example.test", 13_125_550_131, flow).await;
    let platform = Platform::start_in(dir, &[]).await;
    let (code, output) = support::platform::call_awaiting_bye(&platform, 13_125_550_131).await.expect("sipp");
    assert_eq!(code, 0, "rang, then answered and said hello:\n{output}\n{}", platform.log());
    let events = platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.destroyed").await;
    let steps: Vec<String> = events
        .iter()
        .map(|e| match e["verb"].as_str() {
            Some(verb) => format!("{verb} {}", e["phase"].as_str().unwrap_or_default()),
            None => e["type"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    let at = |step: &str| steps.iter().position(|s| s == step).unwrap_or_else(|| panic!("{step}: {steps:?}"));
    // The caller was sent 180, the pause ran while it rang, and only the <Say> answered.
    assert!(at("call.ringing") < at("pause started"), "{steps:?}");
    assert!(at("pause finished") < at("call.answered"), "{steps:?}");
    assert!(at("call.answered") < at("say started"), "{steps:?}");
}
