//! RTP on a hostile network, end to end: a real call (SIPp) into a `<Gather>` while a stranger
//! sprays RFC 4733 key presses at every port of the platform's RTP range; and a caller behind
//! NAT, whose media comes from another port than its SDP names, still heard.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::platform::{Platform, run_sipp, sipp};
use tokio::net::UdpSocket;

/// The flow: one key, then hang up.
const GATHER_ONE_KEY: &str =
    r#"<Response><Answer/><Gather numDigits="1" timeout="6000" tag="menu"/><Hangup/></Response>"#;

/// SIPp's scenarios find their pcap files under `pcap/` relative to the working directory.
fn pcap_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink("/usr/share/sip-tester", dir.path().join("pcap")).expect("symlink pcap");
    dir
}

/// A config that narrows the RTP range to `ports` (the stranger sprays all of it).
fn config_with_rtp_range(dir: &tempfile::TempDir, ports: std::ops::RangeInclusive<u16>) -> String {
    let path = dir.path().join("rtp.toml");
    std::fs::write(
        &path,
        format!("[media]\nrtp_port_min = {}\nrtp_port_max = {}\n", ports.start(), ports.end()),
    )
    .expect("config");
    path.to_str().expect("utf-8").to_owned()
}

/// The caller: INVITE offering PCMA and telephone-event with `sdp_port` as its media port; on
/// the answer, ACK, audio at once (from SIPp's media port), then the key 1 after 2 s; then it
/// waits for the platform's BYE.
fn caller(sdp_port: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller pressing 1">
  <send retrans="500"><![CDATA[
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
m=audio {sdp_port} RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
]]></send>
  <recv response="100" optional="true"/>
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
  <nop><action><exec play_pcap_audio="pcap/g711a.pcap"/></action></nop>
  <pause milliseconds="2000"/>
  <nop><action><exec play_pcap_audio="pcap/dtmf_2833_1.pcap"/></action></nop>
  <recv request="BYE" timeout="10000"/>
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

/// A port for SIPp's `-mp`, free now with the three above it (its audio and video RTP and
/// RTCP): a fixed port collided with other tests' ephemeral ports now and then.
fn free_media_port() -> u16 {
    loop {
        let port = support::sipp::free_udp_port();
        let free = |p: u16| std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok();
        if port.is_multiple_of(2) && port < 65_000 && (port..port + 4).all(free) {
            return port;
        }
    }
}

/// Place the call with SIPp (media from `media_port`), wait for its end, return the events.
async fn call(platform: &Platform, number: &str, scenario: String, media_port: u16) -> Vec<Value> {
    let cwd = pcap_dir();
    let path = cwd.path().join("caller.xml");
    std::fs::write(&path, scenario).expect("scenario");
    let mut command = sipp();
    command
        .current_dir(cwd.path())
        .args(["-sf", path.to_str().expect("utf-8"), "-s", number, "-m", "1", "-i", "127.0.0.1"])
        .args(["-mp", &media_port.to_string(), "-timeout", "20s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = run_sipp(command, Duration::from_secs(30)).await;
    assert_eq!(code, 0, "sipp failed:\n{output}\nserver log:\n{}", platform.log());
    platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.hangup").await
}

fn gathered(events: &[Value]) -> String {
    let gather = events
        .iter()
        .find(|e| e["type"] == "call.callflow" && e["verb"] == "gather" && e["phase"] == "finished")
        .unwrap_or_else(|| panic!("a finished gather: {events:#?}"));
    gather["detail"]["digits"].as_str().unwrap_or_default().to_owned()
}

/// One RFC 4733 packet: key 9 pressed (event 9, not the end, volume 10, 160 units so far).
fn key_nine(sequence: u16, timestamp: u32) -> Vec<u8> {
    let mut packet = vec![0x80, 101];
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&0x0bad_5eedu32.to_be_bytes());
    packet.extend_from_slice(&[9, 10, 0, 160]);
    packet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_presses_sprayed_from_a_third_address_do_not_reach_the_gather() {
    let data = tempfile::tempdir().expect("tempdir");
    support::provision::xml_number(
        &data.path().join("data"),
        "rtp@example.test",
        13_125_550_141,
        GATHER_ONE_KEY,
    )
    .await;
    let range = 46_000..=46_010;
    let config = config_with_rtp_range(&data, range.clone());
    let platform = Platform::start_in(data, &["--config", &config]).await;

    // The stranger: from 127.0.0.1 (the caller's IP — loopback's every party shares it) on its
    // own port, a new press of 9 to every even port of the range every 20 ms, for the whole call.
    let stranger = UdpSocket::bind("127.0.0.1:0").await.expect("socket");
    let spraying = tokio::spawn(async move {
        for round in 0u32.. {
            for port in range.clone().step_by(2) {
                let packet = key_nine(round as u16, round * 1_000);
                let _ = stranger.send_to(&packet, ("127.0.0.1", port)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let events = call(&platform, "13125550141", caller("[media_port]"), free_media_port()).await;
    spraying.abort();

    assert_eq!(gathered(&events), "1", "the caller's key, not the stranger's 9");
    let log = platform.log();
    let warnings = log.matches("RTP from an unexpected address dropped").count();
    assert_eq!(warnings, 1, "logged once for the call, not per packet:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_behind_nat_sending_from_another_port_than_its_sdp_is_still_heard() {
    let data = tempfile::tempdir().expect("tempdir");
    support::provision::xml_number(
        &data.path().join("data"),
        "nat@example.test",
        13_125_550_142,
        GATHER_ONE_KEY,
    )
    .await;
    let range = 46_100..=46_110;
    let config = config_with_rtp_range(&data, range);
    let platform = Platform::start_in(data, &["--config", &config]).await;
    // The SDP names a port nobody sends from (the phone's private side, as its NAT rewrote
    // nothing); SIPp's media really comes from its -mp port. The platform latches it after
    // the NAT grace (1 s); the key comes at 2 s.
    let private_side = UdpSocket::bind("127.0.0.1:0").await.expect("socket");
    let sdp_port = private_side.local_addr().expect("addr").port().to_string();
    let events = call(&platform, "13125550142", caller(&sdp_port), free_media_port()).await;
    assert_eq!(gathered(&events), "1", "the NAT'd caller's key");
}
