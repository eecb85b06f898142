//! STIR/SHAKEN end to end, with a CA the test generates (rcgen). Outbound: a SIPp carrier
//! receives the platform's calls and the test checks their Identity header independently
//! (jsonwebtoken, with the certificate's public key) — attestation A from a leased number, B
//! from a verified one, C for a forwarded caller. Inbound: SIPp callers send INVITEs whose
//! PASSporT the test signs itself, the certificate served as x5u by an HTTP server on loopback
//! (allowed by `stir_shaken.x5u_allow`); the app's policy passes them with verstat on the events,
//! or refuses unsigned and badly signed calls with RFC 8224's codes.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use opentact_store::{AppMode, Store, VerifiedNumberRepo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use support::platform::{Platform, http, run_sipp, sipp};
use support::sipp::{
    INVITE_PCMU, callee_scenario, caller_awaiting_bye, caller_expecting_status, free_udp_port,
    refusing_callee_scenario,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EMAIL: &str = "shaken@example.com";
const PASSWORD: &str = "correct horse battery staple";
/// Leased; placed calls from it are attested A.
const TN: i64 = 12_025_550_188;
/// Leased; its app forwards to a number with a verified caller ID (B).
const TN_VERIFIED: i64 = 12_025_550_189;
/// Leased; its app forwards the caller's own number (C).
const TN_FORWARD: i64 = 12_025_550_190;
/// Leased and on a SIP connection (no app): its calls go to the connection's PBX.
const TN_PBX: i64 = 12_025_550_191;
/// A verified caller ID of the account (not leased).
const VERIFIED: i64 = 13_125_550_177;
/// The SIPp callers' number (`INVITE_PCMU`'s From).
const CALLER: &str = "13105550111";
const PLATFORM_X5U: &str = "https://cert.opentact.test/sp.pem";

/// The test CA, the platform's certificate and key, and an originating carrier's.
struct Pki {
    ca_pem: String,
    platform_cert: String,
    platform_key: String,
    platform_public_key: String,
    carrier_cert: String,
    carrier_key: String,
    stranger_key: String,
}

fn service_provider(name: &str, ca: &CertificateParams, ca_key: &KeyPair) -> (String, KeyPair) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.signed_by(&key, &Issuer::from_params(ca, ca_key)).expect("signed");
    (cert.pem(), key)
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name.push(DnType::CommonName, "Opentact test STI-CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).expect("CA").pem();
    let (platform_cert, platform) = service_provider("Opentact test platform", &ca, &ca_key);
    let (carrier_cert, carrier) = service_provider("Test originating carrier", &ca, &ca_key);
    Pki {
        ca_pem,
        platform_cert,
        platform_key: platform.serialize_pem(),
        platform_public_key: platform.public_key_pem(),
        carrier_cert,
        carrier_key: carrier.serialize_pem(),
        stranger_key: KeyPair::generate().expect("key").serialize_pem(),
    }
}

/// An HTTP server on loopback serving `body` at every path: the carrier's x5u.
async fn serve_certificate(body: String) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr");
    let body = Arc::new(body);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-pem-file\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    address
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs()
}

/// The test's own PASSporT for a call from `orig` to `dest`, signed with `key_pem` (ES256 with
/// jsonwebtoken's signer), as an Identity header value.
fn identity(key_pem: &str, x5u: &str, orig: &str, dest: &str, attest: &str, iat: u64) -> String {
    let header = json!({"alg": "ES256", "ppt": "shaken", "typ": "passport", "x5u": x5u});
    let claims = json!({"attest": attest, "dest": {"tn": [dest]}, "iat": iat, "orig": {"tn": orig}, "origid": "c0ffee00-0000-4000-8000-000000000001"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = jsonwebtoken::EncodingKey::from_ec_pem(key_pem.as_bytes()).expect("EC key");
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::ES256).expect("sign");
    format!("{input}.{signature};info=<{x5u}>;alg=ES256;ppt=shaken")
}

/// Provisions the account, its numbers and apps, and writes the PKI files and the config;
/// starts the platform with `verify_policy`.
/// The platform under `policy`; with `pbx`, the account's number [`TN_PBX`] is on an IP
/// connection whose PBX is at 127.0.0.2 on that port.
async fn platform(
    pki: &Pki,
    carrier_port: u16,
    x5u_server: std::net::SocketAddr,
    policy: &str,
    pbx: Option<u16>,
) -> Platform {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let say = AppMode::Xml { document: "<Response><Say>verified</Say></Response>".to_owned() };
    let provisioned = support::provision::number_with_app(&data, EMAIL, TN, say).await;
    let forward_verified = format!(
        "<Response><Dial callerId=\"{VERIFIED}\" timeout=\"5\"><Number>12025550122</Number></Dial></Response>"
    );
    support::provision::xml_number(&data, EMAIL, TN_VERIFIED, &forward_verified).await;
    let forward = "<Response><Dial timeout=\"5\"><Number>12025550133</Number></Dial></Response>";
    support::provision::xml_number(&data, EMAIL, TN_FORWARD, forward).await;
    verify_number(&data, provisioned.account, VERIFIED).await;
    if let Some(port) = pbx {
        support::provision::number_on_connection(&data, provisioned.account, TN_PBX, "127.0.0.2", port).await;
    }

    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("utf-8").to_owned()
    };
    let (cert, key, anchors) = (
        file("sp.pem", &pki.platform_cert),
        file("sp.key", &pki.platform_key),
        file("anchors.pem", &pki.ca_pem),
    );
    let config = format!(
        "[sip]\noutbound_proxy = \"127.0.0.1:{carrier_port}\"\n\n[stir_shaken]\ncert_file = {cert:?}\n\
         key_file = {key:?}\nx5u = \"{PLATFORM_X5U}\"\ntrust_anchors_file = {anchors:?}\n\
         verify_policy = \"{policy}\"\nallow_http_x5u = true\nx5u_allow = [\"{x5u_server}\"]\n\n\
         [media]\nallow_private_rtp_peers = true\n"
    );
    let config = file("shaken.toml", &config);
    Platform::start_in(dir, &["--config", &config]).await
}

async fn verify_number(data: &Path, account: uuid::Uuid, tn: i64) {
    let store = Store::open(&format!("sqlite://{}?mode=rwc", data.join("opentact.db").display()))
        .await
        .expect("store");
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let number =
        store.create_verified_number(account, tn, "unused".to_owned(), expires).await.expect("number");
    store.mark_number_verified(account, number.uuid).await.expect("verified");
    store.close().await;
}

async fn jwt(platform: &Platform) -> String {
    let body = json!({"email": EMAIL, "password": PASSWORD});
    let (status, login) = http(platform.api, "POST", "/rest/auth", &[], Some(&body)).await;
    assert_eq!(status, 200, "{login}");
    login["payload"]["token"].as_str().expect("a JWT").to_owned()
}

/// A SIPp carrier that logs the Identity header of the INVITE it gets and refuses it (486).
async fn carrier(port: u16) -> (tokio::task::JoinHandle<(i32, String)>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    // The shared refusing callee, logging the INVITE's Identity header.
    let scenario = refusing_callee_scenario(486).replace(
        "<recv request=\"INVITE\"/>",
        r#"<recv request="INVITE">
    <action>
      <ereg regexp=".*" search_in="hdr" header="Identity:" check_it="true" assign_to="identity"/>
      <log message="IDENTITY=[$identity]"/>
    </action>
  </recv>"#,
    );
    assert!(scenario.contains("IDENTITY="), "the INVITE is logged");
    let path = dir.path().join("carrier.xml");
    std::fs::write(&path, scenario).expect("scenario");
    let log = dir.path().join("carrier.log");
    let mut command = sipp();
    command
        .args(["-sf", path.to_str().expect("utf-8"), "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", "1", "-timeout", "30s", "-nostdin", "-trace_logs", "-log_file"])
        .arg(log.to_str().expect("utf-8"));
    let handle = tokio::spawn(run_sipp(command, Duration::from_secs(45)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    (handle, dir)
}

/// The Identity header the carrier logged.
fn logged_identity(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("carrier.log")).expect("the carrier's log");
    let line = log.lines().find_map(|line| line.split("IDENTITY=").nth(1)).expect("an IDENTITY line");
    line.trim().to_owned()
}

/// Checks `identity` with jsonwebtoken and the platform's public key; its claims.
fn verify_independently(pki: &Pki, identity: &str) -> Value {
    let (token, params) = identity.split_once(';').expect("parameters");
    assert_eq!(params, format!("info=<{PLATFORM_X5U}>;alg=ES256;ppt=shaken"));
    let key = jsonwebtoken::DecodingKey::from_ec_pem(pki.platform_public_key.as_bytes()).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).expect("a valid ES256 signature");
    assert_eq!(data.header.typ.as_deref(), Some("passport"));
    assert_eq!(data.header.x5u.as_deref(), Some(PLATFORM_X5U));
    assert!(now().abs_diff(data.claims["iat"].as_u64().expect("iat")) < 30, "{}", data.claims);
    data.claims
}

async fn sipp_caller(platform: &Platform, scenario: &str, number: i64) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("caller.xml");
    std::fs::write(&path, scenario).expect("scenario");
    let mut command = sipp();
    command
        .args(["-sf", path.to_str().expect("utf-8"), "-s", &number.to_string(), "-m", "1", "-i", "127.0.0.1"])
        .args(["-p", &free_udp_port().to_string(), "-timeout", "30s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    run_sipp(command, Duration::from_secs(45)).await
}

/// `scenario` with an `Identity:` header in its INVITE.
fn with_identity(scenario: &str, identity: &str) -> String {
    let signed =
        INVITE_PCMU.replace("Max-Forwards: 70\n", &format!("Max-Forwards: 70\nIdentity: {identity}\n"));
    assert_ne!(signed, INVITE_PCMU);
    scenario.replace(INVITE_PCMU, &signed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_calls_carry_a_valid_identity_attested_by_case() {
    let pki = pki();
    let carrier_port = free_udp_port();
    let x5u_server = serve_certificate(pki.carrier_cert.clone()).await;
    let platform = platform(&pki, carrier_port, x5u_server, "tag", None).await;
    let token = jwt(&platform).await;

    // A: a placed call from a number the account leases.
    let (carrier_a, dir) = carrier(carrier_port).await;
    let auth = format!("Bearer {token}");
    let body = json!({"from": TN, "to": "12025550111", "xml": "<Response><Hangup/></Response>"});
    let (status, created) =
        http(platform.api, "POST", "/rest/call", &[("Authorization", &auth)], Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    let (code, output) = carrier_a.await.expect("carrier");
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let claims = verify_independently(&pki, &logged_identity(dir.path()));
    assert_eq!(claims["attest"], "A", "{claims}");
    assert_eq!(claims["orig"]["tn"], TN.to_string());
    assert_eq!(claims["dest"]["tn"], json!(["12025550111"]));
    let origid = claims["origid"].as_str().expect("origid").to_owned();
    assert!(uuid::Uuid::parse_str(&origid).is_ok(), "{origid}");

    // B: an inbound call forwarded by the app with a verified caller ID.
    let (carrier_b, dir) = carrier(carrier_port).await;
    let (code, output) = sipp_caller(&platform, &caller_awaiting_bye(), TN_VERIFIED).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let (code, output) = carrier_b.await.expect("carrier");
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let claims = verify_independently(&pki, &logged_identity(dir.path()));
    assert_eq!(claims["attest"], "B", "{claims}");
    assert_eq!(claims["orig"]["tn"], VERIFIED.to_string());
    assert_eq!(claims["dest"]["tn"], json!(["12025550122"]));
    assert_eq!(claims["origid"], origid.as_str(), "one origid per account");

    // C: the same, forwarding the caller's own number, which the account does not hold.
    let (carrier_c, dir) = carrier(carrier_port).await;
    let (code, output) = sipp_caller(&platform, &caller_awaiting_bye(), TN_FORWARD).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let (code, output) = carrier_c.await.expect("carrier");
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let claims = verify_independently(&pki, &logged_identity(dir.path()));
    assert_eq!(claims["attest"], "C", "{claims}");
    assert_eq!(claims["orig"]["tn"], CALLER);
}

/// The call object of the next call's `call.initiated` on the socket.
async fn call_object(socket: &mut support::ws::Socket) -> Value {
    let events = support::ws::until(socket, |e| e["type"] == "call.initiated").await;
    events.last().expect("call.initiated")["call"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_calls_pass_when_signed_and_are_refused_otherwise_under_reject() {
    let pki = pki();
    let x5u_server = serve_certificate(pki.carrier_cert.clone()).await;
    let x5u = format!("http://{x5u_server}/carrier.pem");
    let platform = platform(&pki, free_udp_port(), x5u_server, "reject", None).await;
    let token = jwt(&platform).await;
    let mut socket = support::ws::subscribe(platform.api, &token).await;
    let dest = TN.to_string();

    // Signed by the test CA's carrier: answered, and the events say so.
    let good = identity(&pki.carrier_key, &x5u, CALLER, &dest, "A", now());
    let (code, output) = sipp_caller(&platform, &with_identity(&caller_awaiting_bye(), &good), TN).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let call = call_object(&mut socket).await;
    assert_eq!(call["verstat"], "TN-Validation-Passed", "{call}");
    assert_eq!(call["stir_shaken_attest_level"], "A", "{call}");
    assert_eq!(call["stir_shaken_identity"], good.as_str(), "{call}");

    // Unsigned: 428 Use Identity Header.
    let (code, output) = sipp_caller(&platform, &caller_expecting_status(428), TN).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    // Signed by a key that is not the certificate's: 438 Invalid Identity Header.
    let forged = identity(&pki.stranger_key, &x5u, CALLER, &dest, "A", now());
    let (code, output) =
        sipp_caller(&platform, &with_identity(&caller_expecting_status(438), &forged), TN).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    // Signed for another caller: 438 too; signed long ago: 403 Stale Date.
    let other = identity(&pki.carrier_key, &x5u, "13105550999", &dest, "A", now());
    let (code, output) =
        sipp_caller(&platform, &with_identity(&caller_expecting_status(438), &other), TN).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let stale = identity(&pki.carrier_key, &x5u, CALLER, &dest, "A", now() - 600);
    let (code, output) =
        sipp_caller(&platform, &with_identity(&caller_expecting_status(403), &stale), TN).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    // None of the refused calls reached the flow.
    let started: Vec<Value> =
        platform.events().into_iter().filter(|e| e["type"] == "call.initiated").collect();
    assert_eq!(started.len(), 1, "{started:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_calls_are_tagged_under_tag() {
    let pki = pki();
    let x5u_server = serve_certificate(pki.carrier_cert.clone()).await;
    let x5u = format!("http://{x5u_server}/carrier.pem");
    let platform = platform(&pki, free_udp_port(), x5u_server, "tag", None).await;
    let token = jwt(&platform).await;
    let mut socket = support::ws::subscribe(platform.api, &token).await;

    let (code, output) = sipp_caller(&platform, &caller_awaiting_bye(), TN).await;
    assert_eq!(code, 0, "an unsigned call goes through: {output}\n{}", platform.log());
    let call = call_object(&mut socket).await;
    assert_eq!(call["verstat"], "No-TN-Validation", "{call}");
    assert!(call["stir_shaken_attest_level"].is_null(), "{call}");

    let forged = identity(&pki.stranger_key, &x5u, CALLER, &TN.to_string(), "B", now());
    let (code, output) = sipp_caller(&platform, &with_identity(&caller_awaiting_bye(), &forged), TN).await;
    assert_eq!(code, 0, "a badly signed call goes through: {output}\n{}", platform.log());
    let call = call_object(&mut socket).await;
    assert_eq!(call["verstat"], "TN-Validation-Failed", "{call}");
    assert!(call["stir_shaken_attest_level"].is_null(), "{call}");
    assert_eq!(call["stir_shaken_identity"], forged.as_str(), "{call}");
}

/// A number on a SIP connection has no app: a call to it from another network is verified
/// under the platform's policy before the PBX rings, and the result is on the call's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_a_number_on_a_sip_connection_are_verified_before_the_pbx_rings() {
    let pki = pki();
    let x5u_server = serve_certificate(pki.carrier_cert.clone()).await;
    let x5u = format!("http://{x5u_server}/carrier.pem");
    let pbx_port = free_udp_port();
    let platform = platform(&pki, free_udp_port(), x5u_server, "reject", Some(pbx_port)).await;
    let token = jwt(&platform).await;
    let mut socket = support::ws::subscribe(platform.api, &token).await;

    // Unsigned: 428 (the PBX is not even listening yet: a call let through would end 480).
    let (code, output) = sipp_caller(&platform, &caller_expecting_status(428), TN_PBX).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());

    // Signed by the test CA's carrier: the PBX rings, answers and hangs up.
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("pbx.xml");
    std::fs::write(&scenario, callee_scenario(200, 500)).expect("scenario");
    let mut command = sipp();
    command
        .args(["-sf", scenario.to_str().expect("utf-8"), "-i", "127.0.0.2", "-p", &pbx_port.to_string()])
        .args(["-m", "1", "-timeout", "30s", "-timeout_error", "-nostdin"]);
    let pbx = tokio::spawn(run_sipp(command, Duration::from_secs(45)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let good = identity(&pki.carrier_key, &x5u, CALLER, &TN_PBX.to_string(), "A", now());
    let (code, output) = sipp_caller(&platform, &with_identity(&caller_awaiting_bye(), &good), TN_PBX).await;
    let (pbx_code, pbx_output) = pbx.await.expect("pbx");
    assert_eq!(code, 0, "{output}\n{pbx_output}\n{}", platform.log());
    assert_eq!(pbx_code, 0, "the PBX took the call: {pbx_output}");
    let call = call_object(&mut socket).await;
    assert_eq!(call["verstat"], "TN-Validation-Passed", "{call}");
    assert_eq!(call["stir_shaken_attest_level"], "A", "{call}");
    let started = platform.events().into_iter().filter(|e| e["type"] == "call.initiated").count();
    assert_eq!(started, 1, "the refused call never started");
}

/// The id of the app on `tn` (provisioned as "app for <tn>").
async fn app_of(platform: &Platform, headers: &[(&str, &str)], tn: i64) -> String {
    let (status, apps) = http(platform.api, "GET", "/rest/sip/app?take=100", headers, None).await;
    assert_eq!(status, 200, "{apps}");
    let apps = apps["payload"]["data"].as_array().expect("apps").clone();
    let app = apps.iter().find(|app| app["name"] == format!("app for {tn}")).expect("the number's app");
    app["uuid"].as_str().expect("uuid").to_owned()
}

/// The call log's view of the last call that started, once its STIR/SHAKEN result is written.
async fn last_call_record(platform: &Platform, headers: &[(&str, &str)]) -> Value {
    let events = platform.events();
    let started = events.iter().rev().find(|e| e["type"] == "call.initiated").expect("a call started");
    let path = format!("/rest/call/{}", started["call"].as_str().expect("uuid"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, record) = http(platform.api, "GET", &path, headers, None).await;
        assert_eq!(status, 200, "{record}");
        if !record["payload"]["verstat"].is_null() || tokio::time::Instant::now() > deadline {
            return record["payload"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_policy_and_minimum_attestation_override_the_platforms() {
    let pki = pki();
    let x5u_server = serve_certificate(pki.carrier_cert.clone()).await;
    let x5u = format!("http://{x5u_server}/carrier.pem");
    // The platform only tags; the app decides otherwise.
    let platform = platform(&pki, free_udp_port(), x5u_server, "tag", None).await;
    let auth = format!("Bearer {}", jwt(&platform).await);
    let headers = [("Authorization", auth.as_str())];
    let app = format!("/rest/sip/app/{}", app_of(&platform, &headers, TN).await);
    let dest = TN.to_string();
    let set = |body: Value| {
        let app = app.clone();
        async move {
            let (status, shown) = http(platform.api, "PATCH", &app, &headers, Some(&body)).await;
            assert_eq!(status, 200, "{shown}");
            shown["payload"].clone()
        }
    };

    // The app rejects: an unsigned call gets 428 Use Identity Header.
    let shown = set(json!({"shaken_verify_policy": "reject"})).await;
    assert_eq!(shown["shaken_verify_policy"], "reject", "{shown}");
    assert!(shown["shaken_minimum_accepted_attest_lvl"].is_null(), "{shown}");
    let (code, output) = sipp_caller(&platform, &caller_expecting_status(428), TN).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());

    // At least A: a valid B is refused with 403, a valid A goes in and its CDR says so.
    let shown = set(json!({"shaken_minimum_accepted_attest_lvl": "A"})).await;
    assert_eq!(shown["shaken_verify_policy"], "reject", "{shown}");
    assert_eq!(shown["shaken_minimum_accepted_attest_lvl"], "A", "{shown}");
    let partial = identity(&pki.carrier_key, &x5u, CALLER, &dest, "B", now());
    let (code, output) =
        sipp_caller(&platform, &with_identity(&caller_expecting_status(403), &partial), TN).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    assert!(platform.events().iter().all(|e| e["type"] != "call.initiated"), "refused calls never start");
    let full = identity(&pki.carrier_key, &x5u, CALLER, &dest, "A", now());
    let (code, output) = sipp_caller(&platform, &with_identity(&caller_awaiting_bye(), &full), TN).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let record = last_call_record(&platform, &headers).await;
    assert_eq!(record["verstat"], "TN-Validation-Passed", "{record}");
    assert_eq!(record["stir_shaken_attest_level"], "A", "{record}");
    assert_eq!(record["stir_shaken_identity"], full.as_str(), "{record}");

    // Back to tagging, with no minimum: the unsigned call goes in, tagged as such.
    let shown = set(json!({"shaken_verify_policy": "tag", "shaken_minimum_accepted_attest_lvl": null})).await;
    assert!(shown["shaken_minimum_accepted_attest_lvl"].is_null(), "{shown}");
    let (code, output) = sipp_caller(&platform, &caller_awaiting_bye(), TN).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let record = last_call_record(&platform, &headers).await;
    assert_eq!(record["verstat"], "No-TN-Validation", "{record}");
    assert!(record["stir_shaken_attest_level"].is_null(), "{record}");
    assert!(record["stir_shaken_identity"].is_null(), "{record}");
}
