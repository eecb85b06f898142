//! SIPp scenario pieces shared by the SIP tests (each test keeps its own flow of messages next to
//! its assertions), and SIPp callees for the calls the platform places.

use std::time::Duration;

use super::platform::{run_sipp, sipp};

/// The caller's INVITE (from 13105550111) with a PCMU + telephone-event offer, as a `<send>`.
pub const INVITE_PCMU: &str = r#"  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:13105550111@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
]]></send>
"#;

/// The caller: INVITE, then wait for the platform's BYE.
pub fn caller_awaiting_bye() -> String {
    let invite = INVITE_PCMU;
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller waiting for the platform's BYE">
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
</scenario>
"#
    )
}

/// A caller that authenticates by digest (a PBX trunk, or a SIP user): INVITE to
/// `[service]@request_host` from `from` (`user@host`), 407, INVITE again with credentials
/// (SIPp's -au/-ap), then the flow's BYE.
pub fn digest_caller_awaiting_bye(request_host: &str, from: &str) -> String {
    let invite = |cseq: u32, auth: &str| {
        INVITE_PCMU
            .replace(
                "INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0",
                &format!("INVITE sip:[service]@{request_host} SIP/2.0"),
            )
            .replace(
                "From: sipp <sip:13105550111@[local_ip]:[local_port]>",
                &format!("From: sipp <sip:{from}>"),
            )
            .replace("CSeq: 1 INVITE", &format!("CSeq: {cseq} INVITE{auth}"))
    };
    let first = invite(1, "");
    let second = invite(2, "\n[authentication]").replace("branch=[branch]", "branch=[branch]-2");
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller with digest">
{first}  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="407" auth="true"/>
  <send><![CDATA[
ACK sip:[service]@{request_host} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:{from}>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
{second}  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:{from}>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 ACK
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
</scenario>
"#
    )
}

/// A SIPp scenario: INVITE with an SDP offer, expect `status`, ACK it.
pub fn caller_expecting_status(status: u16) -> String {
    let invite = INVITE_PCMU;
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="INVITE answered {status}">
{invite}  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="{status}"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:13105550111@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"#
    )
}

/// [`caller_expecting_status`] that also checks the response against `regex` (a Reason
/// header's cause and text, say).
pub fn caller_expecting_status_matching(status: u16, regex: &str) -> String {
    caller_expecting_status(status).replacen(
        &format!("<recv response=\"{status}\"/>"),
        &format!(
            "<recv response=\"{status}\">\n    <action>\n      <ereg regexp=\"{regex}\" search_in=\"msg\" check_it=\"true\" assign_to=\"matched\"/>\n    </action>\n  </recv>\n  <Reference variables=\"matched\"/>"
        ),
        1,
    )
}

/// A callee that rings `ring_ms`, then answers and hangs up after `talk_ms`; if cancelled while
/// ringing it answers the CANCEL (200, then 487 to the INVITE).
pub fn callee_scenario(ring_ms: u32, talk_ms: u32) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callee ringing {ring_ms} ms">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" check_it="true" assign_to="remote_contact"/>
      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" check_it="true" assign_to="invite_cseq"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <recv request="CANCEL" timeout="{ring_ms}" ontimeout="answer"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send><![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
CSeq: [$invite_cseq] INVITE
Content-Length: 0

]]></send>
  <recv request="ACK" next="end"/>

  <label id="answer"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
CSeq: [$invite_cseq] INVITE
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
]]></send>
  <recv request="ACK" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="ack_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="ack_to"/>
    </action>
  </recv>
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500"><![CDATA[
BYE [$remote_contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From:[$ack_to]
To:[$ack_from]
[last_Call-ID:]
CSeq: 1 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
  <label id="end"/>
</scenario>
"#
    )
}

/// A callee that rings `ring_ms` (more than 0), answers, and talks until the platform hangs up
/// (it answers the BYE).
pub fn callee_awaiting_bye_scenario(ring_ms: u32) -> String {
    assert!(ring_ms > 0, "the talk's pause is found as the only pause of 0 ms");
    let talking = callee_scenario(ring_ms, 0);
    let bye_from_callee = talking.find("  <pause milliseconds=\"0\"/>").expect("the talk pause");
    let end = talking.find("  <label id=\"end\"/>").expect("the end label");
    format!(
        r#"{}  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
{}"#,
        &talking[..bye_from_callee],
        // The addresses the callee's own BYE would have used.
        talking[end..].replace(
            "</scenario>",
            "  <Reference variables=\"ack_from,ack_to,remote_contact\"/>\n</scenario>"
        )
    )
}

/// A callee that answers every INVITE with `status`.
pub fn refusing_callee_scenario(status: u16) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callee refusing with {status}">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 {status} Refused
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <recv request="ACK"/>
</scenario>
"#
    )
}

/// Start a SIPp UAS on a free loopback port with `scenario`; returns its address and process.
pub async fn callee(
    scenario: String,
    port: u16,
) -> (tokio::task::JoinHandle<(i32, String)>, tempfile::TempDir) {
    callee_of(scenario, port, 1).await
}

/// A SIPp callee on `port` that takes `calls` calls (at once or one after the other), each
/// running `scenario`.
pub async fn callee_of(
    scenario: String,
    port: u16,
    calls: u32,
) -> (tokio::task::JoinHandle<(i32, String)>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("callee.xml");
    std::fs::write(&path, scenario).expect("write scenario");
    let mut command = sipp();
    command.args(["-sf", path.to_str().expect("utf-8"), "-i", "127.0.0.1", "-p", &port.to_string()]).args([
        "-m",
        &calls.to_string(),
        "-mp",
        &(port + 1000).to_string(),
        "-timeout",
        "30s",
        "-nostdin",
    ]);
    let handle = tokio::spawn(run_sipp(command, Duration::from_secs(45)));
    // Let it bind before the call arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (handle, dir)
}

pub fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}
