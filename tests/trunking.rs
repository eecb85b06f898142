//! SIP trunking end to end (issue 13): SIPp is the customer's PBX behind a SIP connection and
//! the carrier. Calls to the connection's numbers reach the PBX (an IP connection's addresses
//! in order, a credential connection's registered contact), and the PBX's calls go out through
//! the carrier with its caller ID checked and its outbound voice profile's limits enforced.
//!
//! The carrier calls from 127.0.0.1 (a configured carrier address); each PBX has its own
//! loopback address (127.0.0.2…), which is how the platform tells them apart.

mod support;

use std::time::Duration;

use opentact_store::{
    BillingRepo, DigestCredentials, EncryptedMedia, LeasePatch, LeaseRepo, NewLease, NewOutboundVoiceProfile,
    NewSipConnection, NumberInventory, NumberRepo, OutboundVoiceProfileRepo, SipConnectionRepo,
    SipTransportProtocol, Store,
};
use serde_json::json;
use support::platform::{Platform, http, run_sipp, sipp};
use support::sipp::{callee_scenario, caller_awaiting_bye, free_udp_port};
use uuid::Uuid;

const PLATFORM_SIP_DOMAIN: &str = "sip.opentact.local";

async fn open(data: &std::path::Path) -> Store {
    std::fs::create_dir_all(data).expect("data dir");
    Store::open(&format!("sqlite://{}?mode=rwc", data.join("opentact.db").display())).await.expect("store")
}

/// The account `email` (made by `support::provision::account`) leasing `tns` (voice), each assigned to the connection `new` when `assign`.
async fn account_with_connection(
    data: &std::path::Path,
    email: &str,
    tns: &[i64],
    new: NewSipConnection,
    assign: bool,
) -> (Uuid, Uuid) {
    let account = support::provision::account(data, email).await;
    let store = open(data).await;
    let connection = store.create_connection(account, new).await.expect("connection").uuid;
    let now = chrono::Utc::now();
    for &tn in tns {
        store
            .upsert_numbers(&[NumberInventory {
                tn,
                npa: i32::try_from((tn / 10_000_000) % 1000).expect("npa"),
                state: None,
                voice: true,
                sms: false,
                available: true,
                created_on: now,
                modified_on: now,
            }])
            .await
            .expect("inventory");
        let lease = store
            .lease_tn(account, NewLease { tn, voice: true, sms: false, autorenew: false })
            .await
            .expect("lease");
        if assign {
            store
                .update_lease(
                    account,
                    lease.uuid,
                    LeasePatch { sip_connection: Some(Some(connection)), ..Default::default() },
                )
                .await
                .expect("assign");
        }
    }
    store.close().await;
    (account, connection)
}

fn write_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("trunking.toml");
    std::fs::write(&path, format!("[sip]\n{extra}\n[media]\nallow_private_rtp_peers = true\n"))
        .expect("config");
    path
}

/// Run a SIPp scenario bound to `ip:port` against `remote` (or as a UAS when `remote` is None).
fn spawn_sipp(
    scenario: &str,
    ip: &str,
    port: u16,
    service: Option<&str>,
    remote: Option<std::net::SocketAddr>,
    extra: &[&str],
) -> (tokio::task::JoinHandle<(i32, String)>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("scenario.xml");
    std::fs::write(&path, scenario).expect("write scenario");
    let mut command = sipp();
    command.args(["-sf", path.to_str().expect("utf-8"), "-i", ip, "-p", &port.to_string()]).args([
        "-m",
        "1",
        "-mp",
        &(port + 1000).to_string(),
        "-timeout",
        "30s",
        "-timeout_error",
        "-nostdin",
    ]);
    command.args(extra);
    if let Some(service) = service {
        command.args(["-s", service]);
    }
    if let Some(remote) = remote {
        command.arg(remote.to_string());
    }
    (tokio::spawn(run_sipp(command, Duration::from_secs(45))), dir)
}

/// A PBX that checks what it got (`checks`: regexes over the INVITE), rings, answers, talks
/// and hangs up.
fn pbx_scenario(checks: &[&str]) -> String {
    let actions: String = checks
        .iter()
        .enumerate()
        .map(|(i, regexp)| (i, regexp.replace('<', "&lt;")))
        .map(|(i, regexp)| {
            format!(
                "\n      <ereg regexp=\"{regexp}\" search_in=\"msg\" check_it=\"true\" assign_to=\"check{i}\"/>"
            )
        })
        .collect();
    let names: Vec<String> = (0..checks.len()).map(|i| format!("check{i}")).collect();
    callee_scenario(300, 1000)
        .replacen(
            "<recv request=\"INVITE\" crlf=\"true\">\n    <action>",
            &format!("<recv request=\"INVITE\" crlf=\"true\">\n    <action>{actions}"),
            1,
        )
        .replace("</scenario>", &format!("  <Reference variables=\"{}\"/>\n</scenario>", names.join(",")))
}

/// A caller expecting `status` whose response must match `reason` (a regex).
fn caller_refused(status: u16, from: &str, reason: &str) -> String {
    support::sipp::caller_expecting_status_matching(status, reason).replace("13105550111", from).replacen(
        "<recv response=\"100\" optional=\"true\"/>",
        "<recv response=\"100\" optional=\"true\"/>\n  <recv response=\"180\" optional=\"true\"/>",
        1,
    )
}

async fn place_call(platform: &Platform, scenario: &str, ip: &str, number: &str) -> (i32, String) {
    let (call, _dir) = spawn_sipp(scenario, ip, free_udp_port(), Some(number), Some(platform.sip), &[]);
    call.await.expect("caller")
}

/// A call from `caller_ip` to `number` that the answering side at `callee_ip:callee_port`
/// (checking `checks` in its INVITE) takes, talks on and hangs up; panics with both sides'
/// output unless both scenarios pass.
async fn answered_call(
    platform: &Platform,
    (caller_ip, number): (&str, &str),
    (callee_ip, callee_port): (&str, u16),
    checks: &[&str],
) {
    let (callee, _callee_dir) = spawn_sipp(&pbx_scenario(checks), callee_ip, callee_port, None, None, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, output) = place_call(platform, &caller_awaiting_bye(), caller_ip, number).await;
    let (callee_code, callee_output) = callee.await.expect("callee");
    assert_eq!(code, 0, "the call was answered and ended:\n{output}\n{callee_output}\n{}", platform.log());
    assert_eq!(callee_code, 0, "the answering side got what it checks ({checks:?}):\n{callee_output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_on_an_ip_connection_fails_over_to_the_second_address() {
    const TN: i64 = 13_125_550_201;
    let (dead_port, pbx_port) = (free_udp_port(), free_udp_port());
    let data = tempfile::tempdir().expect("tempdir");
    // The first address has nobody listening; the second is the PBX. PCMA first.
    account_with_connection(
        &data.path().join("data"),
        "ip-pbx@example.test",
        &[TN],
        NewSipConnection {
            name: "pbx".into(),
            ip: Some("127.0.0.2".into()),
            port: Some(i32::from(dead_port)),
            is_active: true,
            failover_addresses: vec![format!("127.0.0.2:{pbx_port}")],
            codecs: vec!["PCMA".into(), "PCMU".into()],
            ring_timeout_secs: Some(2),
            ..Default::default()
        },
        true,
    )
    .await;
    let config = write_config(data.path(), "");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    // The PBX gets the number, the caller and PCMA first.
    answered_call(
        &platform,
        ("127.0.0.1", "13125550201"),
        ("127.0.0.2", pbx_port),
        &["INVITE sip:13125550201@127.0.0.2", "From: <sip:13105550111@", "m=audio [0-9]+ RTP/AVP 8 0 "],
    )
    .await;
    let events = platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.hangup").await;
    let failed = events.iter().filter(|e| e["verb"] == "dial" && e["phase"] == "failed").count();
    assert_eq!(failed, 1, "the first address failed, then the second answered: {events:#?}");
    assert!(events.iter().any(|e| e["type"] == "call.answered"), "{events:#?}");
    assert!(events.iter().any(|e| e["type"] == "call.bridged"), "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pbx_that_never_answers_leaves_the_caller_refused_with_a_q850_cause() {
    const TN: i64 = 13_125_550_202;
    let data = tempfile::tempdir().expect("tempdir");
    account_with_connection(
        &data.path().join("data"),
        "dead-pbx@example.test",
        &[TN],
        NewSipConnection {
            name: "dead".into(),
            ip: Some("127.0.0.2".into()),
            port: Some(i32::from(free_udp_port())),
            is_active: true,
            ring_timeout_secs: Some(1),
            ..Default::default()
        },
        true,
    )
    .await;
    let config = write_config(data.path(), "");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let caller = caller_refused(480, "13105550111", "Reason: Q.850;cause=(19|27);text=");
    let (code, output) = place_call(&platform, &caller, "127.0.0.1", "13125550202").await;
    assert_eq!(code, 0, "480 with a Q.850 Reason:\n{output}\n{}", platform.log());
    let events = platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.hangup").await;
    let hangup = events.iter().find(|e| e["type"] == "call.hangup").expect("hangup");
    assert!([19, 27].contains(&hangup["q850_cause"].as_u64().unwrap_or_default()), "{hangup:#}");
    assert!(hangup["reason"].as_str().unwrap_or_default().contains("SIP connection"), "{hangup:#}");
    assert!(!events.iter().any(|e| e["type"] == "call.answered"), "never answered: {events:#?}");
}

/// A PBX registering `login` in `realm` with digest credentials.
fn registering(login: &str, realm: &str, password: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="PBX registering">
  <send retrans="500"><![CDATA[
REGISTER sip:{realm} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{login}@{realm}>;tag=[pid]reg[call_number]
To: <sip:{login}@{realm}>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:{login}@[local_ip]:[local_port]>
Expires: 300
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:{realm} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{login}@{realm}>;tag=[pid]reg[call_number]
To: <sip:{login}@{realm}>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:{login}@[local_ip]:[local_port]>
[authentication username={login} password={password}]
Expires: 300
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_on_a_credential_connection_reaches_the_registered_pbx() {
    const TN: i64 = 13_125_550_203;
    let realm = format!("branch.{PLATFORM_SIP_DOMAIN}");
    let data = tempfile::tempdir().expect("tempdir");
    account_with_connection(
        &data.path().join("data"),
        "reg-pbx@example.test",
        &[TN],
        NewSipConnection {
            name: "branch".into(),
            subdomain: Some("branch".into()),
            is_active: true,
            credentials: Some(DigestCredentials::new("branchpbx", "trunk-Secret-9", &realm, &realm)),
            ..Default::default()
        },
        true,
    )
    .await;
    let config = write_config(data.path(), "");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    // The PBX registers from 127.0.0.4:port, then serves calls on that same port.
    let pbx_port = free_udp_port();
    let (register, _reg_dir) = spawn_sipp(
        &registering("branchpbx", &realm, "trunk-Secret-9"),
        "127.0.0.4",
        pbx_port,
        None,
        Some(platform.sip),
        &["-auth_uri", &realm],
    );
    let (code, output) = register.await.expect("register");
    assert_eq!(code, 0, "the PBX registered:\n{output}\n{}", platform.log());
    // The call reaches the PBX at its registered contact.
    answered_call(
        &platform,
        ("127.0.0.1", "13125550203"),
        ("127.0.0.4", pbx_port),
        &["INVITE sip:branchpbx@127.0.0.4"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pbx_calls_out_through_the_carrier_with_its_number_and_within_its_limits() {
    const OWN: i64 = 13_105_550_111;
    let carrier_port = free_udp_port();
    let data = tempfile::tempdir().expect("tempdir");
    // The PBX at 127.0.0.5 leases 13105550111 (the caller of INVITE_PCMU).
    account_with_connection(
        &data.path().join("data"),
        "out-pbx@example.test",
        &[OWN],
        NewSipConnection {
            name: "out".into(),
            ip: Some("127.0.0.5".into()),
            is_active: true,
            // The PBX's second site: its calls count as the connection's too.
            failover_addresses: vec!["127.0.0.7:5060".into()],
            ..Default::default()
        },
        false,
    )
    .await;
    // A second account's PBX at 127.0.0.6 whose profile allows no channel at all.
    let (limited, connection) = account_with_connection(
        &data.path().join("data"),
        "limited-pbx@example.test",
        &[13_105_550_112],
        NewSipConnection {
            name: "limited".into(),
            ip: Some("127.0.0.6".into()),
            is_active: true,
            ..Default::default()
        },
        false,
    )
    .await;
    let store = open(&data.path().join("data")).await;
    let profile = store
        .create_ovp(
            limited,
            NewOutboundVoiceProfile { name: "none".into(), channel_limit: Some(0), ..Default::default() },
        )
        .await
        .expect("profile");
    store
        .update_connection(
            limited,
            connection,
            opentact_store::SipConnectionPatch {
                outbound_voice_profile: Some(Some(profile.uuid)),
                ..Default::default()
            },
        )
        .await
        .expect("profile on the connection");
    store.close().await;
    let config = write_config(data.path(), &format!("outbound_proxy = \"127.0.0.1:{carrier_port}\""));
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;

    // Out through the carrier, which checks the number and the caller ID.
    answered_call(
        &platform,
        ("127.0.0.5", "12125550100"),
        ("127.0.0.1", carrier_port),
        &["INVITE sip:12125550100@127.0.0.1", "From: <sip:13105550111@"],
    )
    .await;

    // From the connection's failover address: the same PBX, out through the carrier.
    answered_call(
        &platform,
        ("127.0.0.7", "12125550101"),
        ("127.0.0.1", carrier_port),
        &["INVITE sip:12125550101@127.0.0.1", "From: <sip:13105550111@"],
    )
    .await;

    // A caller ID the account does not have is refused.
    let (code, output) = place_call(
        &platform,
        &caller_refused(403, "19995550123", "not a number this account"),
        "127.0.0.5",
        "12125550100",
    )
    .await;
    assert_eq!(code, 0, "403 for a foreign caller ID:\n{output}\n{}", platform.log());

    // Over the profile's channel limit: 503, a Q.850 34 Reason, and the event saying why.
    let (code, output) = place_call(
        &platform,
        &caller_refused(503, "13105550112", "Reason: Q.850;cause=34;text=.channel limit reached"),
        "127.0.0.6",
        "12125550100",
    )
    .await;
    assert_eq!(code, 0, "503 over the channel limit:\n{output}\n{}", platform.log());
    let events = platform
        .wait_for_event(Duration::from_secs(5), |e| {
            e["type"] == "call.hangup"
                && e["reason"].as_str().is_some_and(|r| r.contains("channel limit reached"))
        })
        .await;
    let hangup = events
        .iter()
        .find(|e| e["type"] == "call.hangup" && e["q850_cause"] == 34)
        .unwrap_or_else(|| panic!("cause 34: {events:#?}"));
    assert!(hangup["reason"].as_str().unwrap_or_default().contains("\"none\""), "{hangup:#}");
}

/// A PBX that answers and talks until the platform hangs up (BYE).
fn pbx_awaiting_bye() -> String {
    let answering = callee_scenario(300, 0);
    let (talk, _) = answering.split_once("  <pause milliseconds=\"0\"/>").expect("the callee talks");
    format!(
        "{talk}  <recv request=\"BYE\"/>\n  <send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n\
         [last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n  <label id=\"end\"/>\n\
         <Reference variables=\"remote_contact,ack_from,ack_to\"/>\n</scenario>\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_call_is_live_and_a_rest_hangup_ends_it() {
    const TN: i64 = 13_125_550_204;
    const EMAIL: &str = "live-pbx@example.test";
    let pbx_port = free_udp_port();
    let data = tempfile::tempdir().expect("tempdir");
    account_with_connection(
        &data.path().join("data"),
        EMAIL,
        &[TN],
        NewSipConnection {
            name: "live".into(),
            ip: Some("127.0.0.3".into()),
            port: Some(i32::from(pbx_port)),
            is_active: true,
            ..Default::default()
        },
        true,
    )
    .await;
    let config = write_config(data.path(), "");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let body = json!({"email": EMAIL, "password": "correct horse battery staple"});
    let (status, login) = http(platform.api, "POST", "/rest/auth", &[], Some(&body)).await;
    assert_eq!(status, 200, "{login}");
    let auth = format!("Bearer {}", login["payload"]["token"].as_str().expect("a JWT"));
    let headers = [("Authorization", auth.as_str())];

    // Neither side hangs up: the PBX answers and both wait for the platform's BYE.
    let (pbx, _pbx_dir) = spawn_sipp(&pbx_awaiting_bye(), "127.0.0.3", pbx_port, None, None, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (caller, _caller_dir) = spawn_sipp(
        &caller_awaiting_bye(),
        "127.0.0.1",
        free_udp_port(),
        Some("13125550204"),
        Some(platform.sip),
        &[],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let bridged = loop {
        let events = platform.events();
        if let Some(bridged) = events.iter().find(|e| e["type"] == "call.bridged") {
            break bridged.clone();
        }
        if tokio::time::Instant::now() > deadline {
            let (_, pbx_output) = pbx.await.expect("pbx");
            panic!("never bridged: {events:#?}\nPBX:\n{pbx_output}\n{}", platform.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let call = bridged["call"].as_str().expect("the call's uuid").to_owned();

    // The call log shows it answered while it lasts.
    let (status, shown) = http(platform.api, "GET", &format!("/rest/call/{call}"), &headers, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["payload"]["state"], "answered", "{shown}");
    // A command other than hangup does not fit a trunk call; hangup ends it.
    let command = format!("/rest/call/{call}/command");
    let say = json!({"command": "say", "params": {"text": "hello"}});
    let (status, refused) = http(platform.api, "POST", &command, &headers, Some(&say)).await;
    assert_eq!(status, 409, "{refused}");
    let (status, answer) =
        http(platform.api, "POST", &command, &headers, Some(&json!({"command": "hangup"}))).await;
    assert_eq!(status, 200, "{answer}");
    let (code, output) = caller.await.expect("caller");
    assert_eq!(code, 0, "the caller got the platform's BYE:\n{output}\n{}", platform.log());
    let (code, output) = pbx.await.expect("pbx");
    assert_eq!(code, 0, "the PBX got the platform's BYE:\n{output}");
    let events = platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.destroyed").await;
    assert!(events.iter().any(|e| e["type"] == "call.hangup" && e["call"] == call.as_str()));
    // Once ended it is no longer live.
    let (status, gone) =
        http(platform.api, "POST", &command, &headers, Some(&json!({"command": "hangup"}))).await;
    assert_eq!(status, 404, "{gone}");
}

/// A connection with `transport_protocol` TCP and `encrypted_media` SRTP: the PBX is called
/// over TCP and offered only SRTP (RTP/SAVP with a key), its SRTP answer keys the leg, and a
/// call it places with plain RTP is refused with 488 saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_requiring_srtp_is_called_over_tcp_with_srtp_and_its_plain_offers_refused() {
    const TN: i64 = 13_125_550_207;
    let pbx_port = free_udp_port();
    let data = tempfile::tempdir().expect("tempdir");
    account_with_connection(
        &data.path().join("data"),
        "srtp-pbx@example.test",
        &[TN],
        NewSipConnection {
            name: "secure".into(),
            ip: Some("127.0.0.3".into()),
            port: Some(i32::from(pbx_port)),
            is_active: true,
            transport_protocol: SipTransportProtocol::Tcp,
            encrypted_media: Some(EncryptedMedia::Srtp),
            ..Default::default()
        },
        true,
    )
    .await;
    let config = write_config(data.path(), "");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    // The PBX, over TCP, checks the INVITE's transport and SRTP offer and answers with its key.
    let checks = [
        "Via: SIP/2.0/TCP",
        "m=audio [0-9]+ RTP/SAVP ",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:[A-Za-z0-9+/]{40}",
    ];
    let pbx = pbx_scenario(&checks).replace(
        "m=audio [media_port] RTP/AVP 0 101\n",
        "m=audio [media_port] RTP/SAVP 0 101\na=crypto:1 AES_CM_128_HMAC_SHA1_80 \
         inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\n",
    );
    assert!(pbx.contains("RTP/SAVP 0 101"), "the PBX answers SRTP");
    let (callee, _callee_dir) = spawn_sipp(&pbx, "127.0.0.3", pbx_port, None, None, &["-t", "t1"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, output) = place_call(&platform, &caller_awaiting_bye(), "127.0.0.1", "13125550207").await;
    let (callee_code, callee_output) = callee.await.expect("callee");
    assert_eq!(code, 0, "the call was answered and ended:\n{output}\n{callee_output}\n{}", platform.log());
    assert_eq!(callee_code, 0, "the PBX got TCP and an SRTP offer:\n{callee_output}");
    let events = platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.hangup").await;
    assert!(events.iter().any(|e| e["type"] == "call.bridged"), "{events:#?}");
    assert!(platform.log().contains("the leg's media is SRTP"), "{}", platform.log());

    // The PBX's own call, with plain RTP, out through the platform: 488 and why.
    let refused = caller_refused(
        488,
        "13125550207",
        "Warning: 399 [^ ]+ .plain RTP refused: SIP connection .secure. requires SRTP",
    );
    let (code, output) = place_call(&platform, &refused, "127.0.0.3", "12125550199").await;
    assert_eq!(code, 0, "488 with a Warning:\n{output}\n{}", platform.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pbx_call_out_is_refused_without_money_and_ended_when_its_money_runs_out() {
    let data = tempfile::tempdir().expect("tempdir");
    let (account, _) = account_with_connection(
        &data.path().join("data"),
        "broke-pbx@example.test",
        &[13_105_550_113],
        NewSipConnection {
            name: "broke".into(),
            ip: Some("127.0.0.8".into()),
            is_active: true,
            ..Default::default()
        },
        false,
    )
    .await;
    // Calls to North America cost 0.01 a second; the account has nothing.
    let deck = data.path().join("rates.csv");
    std::fs::write(&deck, "prefix,per_minute,per_sms,increment,description\n1,0.60,,1/1,NANP\n")
        .expect("deck");
    let carrier_port = free_udp_port();
    let config = write_config(data.path(), &format!("outbound_proxy = \"127.0.0.1:{carrier_port}\""));
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!("[rating]\ndeck = \"{}\"\n", deck.display()));
    std::fs::write(&config, text).expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;

    // 402 Payment Required, Q.850 21 and why, before the carrier rings.
    let (code, output) = place_call(
        &platform,
        &caller_refused(
            402,
            "13105550113",
            "Q.850;cause=21;text=.insufficient balance: 0.000000 USD left, the first 1 s to \\+12125550100 cost 0.010000 USD",
        ),
        "127.0.0.8",
        "12125550100",
    )
    .await;
    assert_eq!(code, 0, "refused with the reason, before the carrier rings:\n{output}\n{}", platform.log());

    // 0.03 pays 3 s: the carrier answers and never hangs up; the platform ends both sides just
    // before the third second, with cause 21 and why, and charges what was left.
    platform.credit("broke-pbx@example.test", "0.03").await;
    let (carrier, _carrier_dir) =
        support::sipp::callee(support::sipp::callee_awaiting_bye_scenario(100), carrier_port).await;
    let pbx = caller_awaiting_bye().replace("13105550111", "13105550113");
    let (code, output) = place_call(&platform, &pbx, "127.0.0.8", "12125550100").await;
    assert_eq!(code, 0, "the PBX's caller got the platform's BYE:\n{output}\n{}", platform.log());
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "the carrier got the platform's BYE:\n{output}");
    let events = platform
        .wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.hangup" && e["q850_cause"] == 21)
        .await;
    let ended = events
        .iter()
        .rfind(|e| e["type"] == "call.hangup" && e["q850_cause"] == 21)
        .expect("the ended call's hangup");
    assert_eq!(
        ended["reason"], "dial: insufficient balance: the balance of 0.030000 USD is used up",
        "{ended:#}"
    );
    assert!(events.iter().any(|e| e["type"] == "call.answered" && e["call"] == ended["call"]), "{events:#?}");
    let store = open(&platform.data()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.balance(account).await.expect("balance") != 0 {
        assert!(tokio::time::Instant::now() < deadline, "3 s charged:\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
