//! SIP MESSAGE (RFC 3428) end to end: a baresip user texts another registered baresip user
//! through the platform; MESSAGE is digest-authenticated like a call (a wrong password is
//! refused and counts toward the lock); refusals (not registered, unknown or another account's
//! user, not text, too large, no number to send SMS from) carry their reason.

#[path = "support/raw_sip.rs"]
mod raw_sip;
#[path = "support/smsc.rs"]
mod smsc;
mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use raw_sip::{Answer, Phone};
use smsc::Smsc;
use support::platform::Platform;
use support::provision;

/// A baresip for `login@acme.sip.opentact.local` with no audio, the `contact` module (whose
/// `/message` texts the first of `contacts`), registering unless `register` is false; its
/// output goes to `<dir>/baresip.log`. Started again on another port if its first was taken
/// ([`support::baresip::until_ready`]).
async fn spawn_baresip(
    dir: &Path,
    platform: &Platform,
    login: &str,
    password: &str,
    contacts: &[&str],
    commands: &[&str],
) -> tokio::process::Child {
    support::baresip::until_ready(dir, || launch_baresip(dir, platform, login, password, contacts, commands))
        .await
}

/// One try of [`spawn_baresip`], on a fresh port.
fn launch_baresip(
    dir: &Path,
    platform: &Platform,
    login: &str,
    password: &str,
    contacts: &[&str],
    commands: &[&str],
) -> tokio::process::Child {
    let port = support::sipp::free_udp_port();
    let config = format!(
        "poll_method\t\tepoll\n\
         sip_listen\t\t127.0.0.1:{port}\n\
         audio_player\t\taubridge,speaker\n\
         audio_source\t\taubridge,speaker\n\
         audio_alert\t\taubridge,alert\n\
         module_path\t\t/usr/lib/baresip/modules\n\
         module\t\t\tg711.so\n\
         module\t\t\taubridge.so\n\
         module_app\t\taccount.so\n\
         module_app\t\tcontact.so\n\
         module_app\t\tmenu.so\n\
         module\t\t\tstdio.so\n"
    );
    std::fs::write(dir.join("config"), config).expect("baresip config");
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:{login}@acme.sip.opentact.local>;auth_pass={password};outbound=\"sip:{};transport=udp\";regint=300\n",
            platform.sip
        ),
    )
    .expect("baresip accounts");
    let contacts: String = contacts.iter().map(|c| format!("<{c}>\n")).collect();
    std::fs::write(dir.join("contacts"), contacts).expect("baresip contacts");
    let log = std::fs::File::create(dir.join("baresip.log")).expect("log file");
    let mut command = tokio::process::Command::new("baresip");
    command.args(["-f", dir.to_str().expect("utf-8")]);
    for line in commands {
        command.args(["-e", line]);
    }
    command
        .current_dir(dir)
        // The stdio UI (which prints received messages) reads commands from a pipe kept open
        // with the child.
        .stdin(Stdio::piped())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("baresip is installed (apt-get install baresip)")
}

async fn wait_for(what: &str, timeout: Duration, found: impl Fn() -> bool, context: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !found() {
        assert!(tokio::time::Instant::now() < deadline, "{what}:\n{}", context());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baresip_user_texts_another_registered_user() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let account = provision::account(&dir, "texts@example.test").await;
    provision::sip_user(&dir, account, "acme", "alice", "alice-Pass-1").await;
    provision::sip_user_in(&dir, account, "acme", "bob", "bob-Pass-2").await;
    // No carrier addresses: loopback is where the phones are, and they must authenticate.
    let config = data.path().join("no-carriers.toml");
    std::fs::write(&config, "[sip]\ncarriers = []\n").expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;

    let bob_dir = tempfile::tempdir().expect("tempdir");
    let _bob = spawn_baresip(bob_dir.path(), &platform, "bob", "bob-Pass-2", &[], &[]).await;
    wait_for(
        "bob registered",
        Duration::from_secs(20),
        || platform.log().contains("registered user=bob "),
        || platform.log(),
    )
    .await;
    let alice_dir = tempfile::tempdir().expect("tempdir");
    let _alice = spawn_baresip(
        alice_dir.path(),
        &platform,
        "alice",
        "alice-Pass-1",
        &["sip:bob@acme.sip.opentact.local"],
        &["/message Hello Bob, it is Alice"],
    )
    .await;
    let bob_log = bob_dir.path().join("baresip.log");
    wait_for(
        "bob's phone showed the message",
        Duration::from_secs(20),
        || read(&bob_log).contains("Hello Bob, it is Alice"),
        || {
            format!(
                "server:\n{}\nalice:\n{}\nbob:\n{}",
                platform.log(),
                read(&alice_dir.path().join("baresip.log")),
                read(&bob_log)
            )
        },
    )
    .await;
    let log = platform.log();
    let delivered =
        log.lines().find(|line| line.contains("MESSAGE to a SIP user")).expect("the delivery is logged");
    assert!(delivered.contains("status=200"), "{delivered}");
    assert!(delivered.contains("message{"), "logged in the message span: {delivered}");
    assert!(delivered.contains("from=sip:alice@acme.sip.opentact.local"), "{delivered}");
}

/// Sends a MESSAGE from `phone` to `target` through the digest challenge with `password`.
async fn message(phone: &Phone, target: &str, content_type: &str, body: &str, password: &str) -> Answer {
    let headers = format!("Content-Type: {content_type}\r\n");
    let challenge = phone.send(&phone.request_with_body("MESSAGE", target, target, &headers, body)).await;
    assert_eq!(challenge.status, 407, "a challenge first: {}", challenge.text);
    let auth = phone.authorization("Proxy-Authorization", "MESSAGE", target, &challenge.nonce(), 1, password);
    phone.send(&phone.request_with_body("MESSAGE", target, target, &format!("{headers}{auth}"), body)).await
}

fn warning(answer: &Answer) -> String {
    answer
        .text
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("warning:"))
        .unwrap_or_else(|| panic!("a Warning header: {}", answer.text))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_authenticated_checked_and_kept_within_the_account() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let account = provision::account(&dir, "checks@example.test").await;
    provision::sip_user(&dir, account, "acme", "alice", "alice-Pass-1").await;
    provision::sip_user_in(&dir, account, "acme", "bob", "bob-Pass-2").await;
    provision::sip_user_in(&dir, account, "acme", "eve", "eve-Pass-5").await;
    let other = provision::account(&dir, "other@example.test").await;
    provision::sip_user(&dir, other, "globex", "mallory", "mallory-Pass-4").await;
    let config = data.path().join("sip.toml");
    std::fs::write(&config, "[sip]\ncarriers = []\nauth_user_max_failures = 2\n").expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let alice = Phone::on("127.0.0.1", platform.sip, "alice", "acme.sip.opentact.local").await;
    let password = "alice-Pass-1";

    let to_bob = "sip:bob@acme.sip.opentact.local";
    let answer = message(&alice, to_bob, "text/plain", "are you there?", password).await;
    assert_eq!(answer.status, 480, "bob is not registered: {}", answer.text);
    assert!(warning(&answer).contains("is not registered"), "{}", answer.text);

    let answer = message(&alice, "sip:carol@acme.sip.opentact.local", "text/plain", "hi", password).await;
    assert_eq!(answer.status, 404, "no such user: {}", answer.text);
    // Another account's user is as unknown as a missing one.
    let answer = message(&alice, "sip:mallory@globex.sip.opentact.local", "text/plain", "hi", password).await;
    assert_eq!(answer.status, 404, "another account's user: {}", answer.text);
    assert!(warning(&answer).contains("no SIP user mallory@globex.sip.opentact.local"), "{}", answer.text);

    let answer = message(&alice, to_bob, "text/html", "<b>hi</b>", password).await;
    assert_eq!(answer.status, 415, "{}", answer.text);
    assert!(answer.text.contains("Accept: text/plain"), "{}", answer.text);
    let answer = message(&alice, to_bob, "text/plain", &"x".repeat(1301), password).await;
    assert_eq!(answer.status, 513, "over RFC 3428's 1300 bytes: {}", answer.text);

    let answer =
        message(&alice, "sip:12025550100@acme.sip.opentact.local", "text/plain", "hi", password).await;
    assert_eq!(answer.status, 403, "{}", answer.text);
    assert!(warning(&answer).contains("has no number to send SMS from"), "{}", answer.text);

    // Wrong passwords are refused like a call's, and count toward the user's lock.
    let eve = Phone::on("127.0.0.1", platform.sip, "eve", "acme.sip.opentact.local").await;
    for _ in 0..2 {
        let answer = message(&eve, to_bob, "text/plain", "let me in", "guess").await;
        assert_eq!(answer.status, 403, "{}", answer.text);
    }
    // The log is read as the server writes it: the ban's line may come a moment after the 403.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let log = loop {
        let log = platform.log();
        if log.contains("SIP authentication failures: banned") || tokio::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(log.contains("MESSAGE refused: wrong credentials"), "{log}");
    let banned = log
        .lines()
        .find(|line| line.contains("SIP authentication failures: banned"))
        .unwrap_or_else(|| panic!("eve is locked:\n{log}"));
    assert!(banned.contains("eve@acme.sip.opentact.local"), "{banned}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_a_number_goes_out_as_an_sms_from_the_users_number() {
    let smsc = Smsc::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let account = provision::sms_number(&dir, "sms-user@example.test", 12025550166, true).await;
    provision::sip_user(&dir, account, "acme", "alice", "alice-Pass-1").await;
    provision::give_number(&dir, account, "acme", "alice", 12025550166).await;
    let config = data.path().join("sip-sms.toml");
    std::fs::write(&config, format!("[sip]\ncarriers = []\n\n{}", smsc.config())).expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let alice = Phone::on("127.0.0.1", platform.sip, "alice", "acme.sip.opentact.local").await;
    let to = "sip:13105550123@acme.sip.opentact.local";
    let answer =
        message(&alice, to, "text/plain;charset=UTF-8", "Running late, see you at 6", "alice-Pass-1").await;
    assert_eq!(answer.status, 202, "accepted as an SMS: {}\n{}", answer.text, platform.log());
    smsc.wait("submit_sm from the user's number", Duration::from_secs(10), |e| {
        e["event"] == "submit_sm" && e["destination"] == "13105550123" && e["source"] == "12025550166"
    })
    .await;
}

const PASSWORD: &str = "correct horse battery staple";

/// A bearer token of the account `email` (the tests' password).
async fn bearer(platform: &Platform, email: &str) -> String {
    use base64::Engine;
    let basic =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{email}:{PASSWORD}")));
    let (status, login) =
        support::platform::http(platform.api, "GET", "/rest/auth", &[("Authorization", &basic)], None).await;
    assert_eq!(status, 200, "{login}");
    format!("Bearer {}", login["payload"]["token"].as_str().expect("jwt"))
}

/// The account's messages (`POST /rest/sms/search`) once one from `from` has settled (its state
/// no longer `received`), at most 15 s.
async fn settled_sms(platform: &Platform, bearer: &str, from: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, found) = support::platform::http(
            platform.api,
            "POST",
            "/rest/sms/search",
            &[("Authorization", bearer)],
            Some(&serde_json::json!({})),
        )
        .await;
        assert_eq!(status, 200, "{found}");
        let message = found["payload"]["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|m| m["from"] == from && m["state"] != "received")
            .cloned();
        if let Some(message) = message {
            return message;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no settled SMS from {from}: {found}\n{}",
            platform.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Puts the account's number `tn` on a SIP connection of the account at `ip:port` (a PBX by
/// address), as `PATCH /rest/lease/tn/{uuid} {sip_connection}` does.
async fn number_on_connection(data: &Path, account: uuid::Uuid, tn: i64, ip: &str, port: u16) {
    use opentact_store::{LeasePatch, LeaseRepo, SipConnectionPatch, SipConnectionRepo};
    provision::connection_with_ip(data, account, ip).await;
    let store =
        opentact_store::Store::open(&format!("sqlite://{}?mode=rwc", data.join("opentact.db").display()))
            .await
            .expect("store");
    let connection =
        store.connections_by_ip(ip).await.expect("lookup").into_iter().next().expect("the connection");
    let patch = SipConnectionPatch { port: Some(Some(i32::from(port))), ..SipConnectionPatch::default() };
    store.update_connection(account, connection.uuid, patch).await.expect("port");
    let lease = store.lease_by_tn(tn).await.expect("lookup").expect("leased");
    let patch = LeasePatch { sip_connection: Some(Some(connection.uuid)), ..LeasePatch::default() };
    store.update_lease(account, lease.uuid, patch).await.expect("assign");
    store.close().await;
}

/// The `[webhooks]` table the messaging profile's loopback receivers need.
const LOOPBACK_WEBHOOKS: &str = "[webhooks]\nallow_private = true\nbackoff_ms = 50\nmax_backoff_ms = 200\n";

/// Gives the account's only number a messaging profile whose `callback_url` answers 500 and
/// whose `callback_url2` (`/ok`) takes the events; returns the receiver and the account's
/// webhook public key.
async fn profile_receiver(platform: &Platform, bearer: &str) -> (support::http::TestServer, String) {
    use support::http::{Canned, TestServer};
    let auth = [("Authorization", bearer)];
    let receiver = TestServer::start(&[("/fail", Canned::status(500)), ("/ok", Canned::status(200))]).await;
    let body = serde_json::json!({"name": "texts", "callback_url": receiver.url("/fail"), "callback_url2": receiver.url("/ok")});
    let (status, profile) =
        support::platform::http(platform.api, "POST", "/rest/profile/messaging", &auth, Some(&body)).await;
    assert_eq!(status, 201, "{profile}");
    let (_, leases) = support::platform::http(platform.api, "GET", "/rest/lease/tn", &auth, None).await;
    let lease = leases["payload"]["data"][0]["uuid"].as_str().expect("lease").to_owned();
    let body = serde_json::json!({"messaging_profile_uuid": profile["payload"]["uuid"]});
    let (status, patched) = support::platform::http(
        platform.api,
        "PATCH",
        &format!("/rest/lease/tn/{lease}"),
        &auth,
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let (status, key) = support::platform::http(platform.api, "GET", "/rest/event/key", &auth, None).await;
    assert_eq!(status, 200, "{key}");
    (receiver, key["payload"]["public_key"].as_str().expect("public key").to_owned())
}

/// The first `count` events `/ok` received (waiting at most 10 s), each checked to be signed
/// with `public_key`, as (type, state).
async fn signed_events(
    platform: &Platform,
    receiver: &support::http::TestServer,
    public_key: &str,
    count: usize,
) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<_> = receiver.received().into_iter().filter(|r| r.uri == "/ok").collect();
        if got.len() >= count {
            return got
                .iter()
                .map(|r| {
                    let header =
                        |name: &str| r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                    let timestamp: i64 =
                        header("opentact-timestamp").expect("timestamp").parse().expect("number");
                    let signature = header("opentact-signature").expect("signature");
                    assert!(
                        opentact_events::signing::verify(
                            public_key,
                            timestamp,
                            r.body.as_bytes(),
                            &signature
                        ),
                        "signed with the account's key: {}",
                        r.body
                    );
                    let body: serde_json::Value = serde_json::from_str(&r.body).expect("json");
                    let field = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
                    (field(&body["type"]), field(&body["payload"]["state"]))
                })
                .collect();
        }
        assert!(tokio::time::Instant::now() < deadline, "{got:?}\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Inbound SMS to a SIP user (issue 11): the SMSC's deliver_sm to a number a SIP user has (its
/// `tn_lease`) reaches the user's registered baresip as a MESSAGE from the sender's number; the
/// smsr record moves received → delivered, saying where, with `sms.received` then `sms.status`
/// on the websocket. Another account's number whose user is not registered: the message fails
/// with that reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_sms_reaches_the_registered_sip_user_whose_number_it_is() {
    let mut smsc = Smsc::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let account = provision::sms_number(&dir, "sms-in@example.test", 12025550166, true).await;
    provision::sip_user(&dir, account, "acme", "alice", "alice-Pass-1").await;
    provision::give_number(&dir, account, "acme", "alice", 12025550166).await;
    let other = provision::sms_number(&dir, "sms-off@example.test", 12025550167, true).await;
    provision::sip_user(&dir, other, "globex", "bob", "bob-Pass-2").await;
    provision::give_number(&dir, other, "globex", "bob", 12025550167).await;
    let config = data.path().join("sip-sms.toml");
    std::fs::write(&config, format!("[sip]\ncarriers = []\n\n{}", smsc.config())).expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;

    let alice_dir = tempfile::tempdir().expect("tempdir");
    let _alice = spawn_baresip(alice_dir.path(), &platform, "alice", "alice-Pass-1", &[], &[]).await;
    wait_for(
        "alice registered",
        Duration::from_secs(20),
        || platform.log().contains("registered user=alice "),
        || platform.log(),
    )
    .await;
    let auth = bearer(&platform, "sms-in@example.test").await;
    let mut socket = support::ws::subscribe(platform.api, auth.trim_start_matches("Bearer ")).await;
    smsc.bound(Duration::from_secs(10)).await;
    smsc.deliver("13105550123", "12025550166", "Your table is ready").await;

    let alice_log = alice_dir.path().join("baresip.log");
    wait_for(
        "alice's phone showed the SMS",
        Duration::from_secs(20),
        || read(&alice_log).contains("Your table is ready"),
        || format!("server:\n{}\nalice:\n{}", platform.log(), read(&alice_log)),
    )
    .await;
    assert!(
        read(&alice_log).contains("sip:13105550123@sip.opentact.local"),
        "from the sender:\n{}",
        read(&alice_log)
    );

    let events = support::ws::until(&mut socket, |e| e["type"] == "sms.status").await;
    let kinds: Vec<&str> =
        events.iter().filter_map(|e| e["type"].as_str()).filter(|t| t.starts_with("sms.")).collect();
    assert_eq!(kinds, ["sms.received", "sms.status"], "{events:#?}");
    let status = &events.last().expect("sms.status")["payload"];
    assert_eq!(status["type"], "smsr", "{status}");
    assert_eq!(status["state"], "delivered", "{status}");
    assert!(
        status["reason"].as_str().is_some_and(|r| r.contains("alice@acme.sip.opentact.local")),
        "{status}"
    );
    let id = status["uuid"].as_str().expect("uuid");
    let (code, got) = support::platform::http(
        platform.api,
        "GET",
        &format!("/rest/sms/{id}"),
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(code, 200, "{got}");
    let states: Vec<&str> = got["payload"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["state"].as_str())
        .collect();
    assert_eq!(states, ["received", "delivered"], "{got}");

    // Bob (another account) is not registered: his number's SMS fails, saying so.
    smsc.deliver("13105550124", "12025550167", "Are you there?").await;
    let bob_auth = bearer(&platform, "sms-off@example.test").await;
    let failed = settled_sms(&platform, &bob_auth, "13105550124").await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let reason = failed["history"][1]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("bob@globex.sip.opentact.local is not registered"), "{failed}");
}

/// A SIPp UAS as a customer's PBX: takes one MESSAGE for `tn` from `from` carrying `text` (SIPp
/// fails unless all three match) and answers 200.
fn pbx_taking_a_message(tn: i64, from: &str, text: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="PBX taking a MESSAGE">
  <recv request="MESSAGE">
    <action>
      <ereg regexp="^MESSAGE sip:{tn}@" search_in="msg" check_it="true" assign_to="ruri"/>
      <ereg regexp="From:[^\r\n]*sip:{from}@" search_in="msg" check_it="true" assign_to="sender"/>
      <ereg regexp="{text}" search_in="body" check_it="true" assign_to="text"/>
      <log message="took [$ruri] [$sender] [$text]"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"#
    )
}

/// Inbound SMS to a SIP connection (issue 11): a number on a connection (the lease's
/// `sip_connection`) with no app for SMS gets its SMS at the connection's PBX (`ip:port`) as a
/// MESSAGE to the number from the sender; the smsr record says it was delivered there, and the
/// number's messaging profile gets `sms.received` then `sms.status` delivered (at
/// `callback_url2`, as `callback_url` fails), signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_sms_to_a_connections_number_reaches_its_pbx() {
    let mut smsc = Smsc::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let account = provision::sms_number(&dir, "pbx-in@example.test", 12025550177, true).await;
    let pbx_port = support::sipp::free_udp_port();
    number_on_connection(&dir, account, 12025550177, "127.0.0.1", pbx_port).await;
    let config = data.path().join("sip-sms.toml");
    std::fs::write(&config, format!("[sip]\ncarriers = []\n\n{}\n{LOOPBACK_WEBHOOKS}", smsc.config()))
        .expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let auth = bearer(&platform, "pbx-in@example.test").await;
    let (receiver, public_key) = profile_receiver(&platform, &auth).await;
    let (pbx, _scenario) = support::sipp::callee(
        pbx_taking_a_message(12025550177, "13105550123", "Your order shipped"),
        pbx_port,
    )
    .await;
    smsc.bound(Duration::from_secs(10)).await;
    smsc.deliver("13105550123", "12025550177", "Your order shipped").await;
    let (code, output) = pbx.await.expect("sipp");
    assert_eq!(code, 0, "the PBX took the MESSAGE:\n{output}\n{}", platform.log());

    let delivered = settled_sms(&platform, &auth, "13105550123").await;
    assert_eq!(delivered["state"], "delivered", "{delivered}");
    let reason = delivered["history"][1]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("127.0.0.1:{pbx_port}")), "{delivered}");
    let events = signed_events(&platform, &receiver, &public_key, 2).await;
    let expected = [("sms.received", "received"), ("sms.status", "delivered")]
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(events, expected);
}

/// A SIPp UAC as a customer's PBX: one MESSAGE from `from_tn` to the number in `-s`, expecting
/// `status`.
fn pbx_texting(from_tn: i64, text: &str, status: u16) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="PBX texting a number">
  <send retrans="500"><![CDATA[
MESSAGE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{from_tn}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 MESSAGE
Max-Forwards: 70
Content-Type: text/plain
Content-Length: [len]

{text}]]></send>
  <recv response="{status}"/>
</scenario>
"#
    )
}

/// Runs `scenario` from 127.0.0.1 to the platform, texting `to`; SIPp's exit code and output.
async fn run_pbx(platform: &Platform, scenario: String, to: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pbx.xml");
    std::fs::write(&path, scenario).expect("scenario");
    let mut command = support::platform::sipp();
    command
        .args(["-sf", path.to_str().expect("utf-8"), "-i", "127.0.0.1", "-p"])
        .arg(support::sipp::free_udp_port().to_string())
        .args(["-s", to, "-m", "1", "-timeout", "10s", "-nostdin"])
        .arg(platform.sip.to_string());
    support::platform::run_sipp(command, Duration::from_secs(20)).await
}

/// SIP MESSAGE from a SIP connection (issue 11): a customer's PBX recognised by its address
/// texts a number from one of its account's numbers — 202, and the SMSC gets the submit_sm from
/// that number; from another account's number it is refused 403 and nothing is sent (a
/// connection reaches only its own account, as for calls). The SMS's statuses reach its number's
/// messaging profile (`callback_url2`, as `callback_url` fails), signed, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connections_message_to_a_number_goes_out_as_an_sms_from_its_own_numbers_only() {
    let smsc = Smsc::start().await;
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let account = provision::sms_number(&dir, "pbx-out@example.test", 12025550188, true).await;
    provision::connection_with_ip(&dir, account, "127.0.0.1").await;
    provision::sms_number(&dir, "not-the-pbx@example.test", 12025550199, true).await;
    let config = data.path().join("sip-sms.toml");
    std::fs::write(&config, format!("[sip]\ncarriers = []\n\n{}\n{LOOPBACK_WEBHOOKS}", smsc.config()))
        .expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let auth = bearer(&platform, "pbx-out@example.test").await;
    let (receiver, public_key) = profile_receiver(&platform, &auth).await;
    smsc.bound(Duration::from_secs(10)).await;

    let (code, output) =
        run_pbx(&platform, pbx_texting(12025550188, "Order 42 shipped", 202), "13105550123").await;
    assert_eq!(code, 0, "accepted as an SMS:\n{output}\n{}", platform.log());
    let submitted = smsc
        .wait("submit_sm from the connection's number", Duration::from_secs(10), |e| {
            e["event"] == "submit_sm" && e["destination"] == "13105550123"
        })
        .await;
    assert_eq!(submitted["source"], "12025550188", "{submitted}");
    assert_eq!(submitted["short_message"], hex("Order 42 shipped"), "{submitted}");
    let log = platform.log();
    let queued = log.lines().find(|l| l.contains("sms queued")).unwrap_or_else(|| panic!("{log}"));
    assert!(queued.contains("SipConnection"), "the origin is the connection: {queued}");
    let events = signed_events(&platform, &receiver, &public_key, 2).await;
    let expected =
        [("sms.sent", "sent"), ("sms.status", "delivered")].map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(events, expected);

    let (code, output) =
        run_pbx(&platform, pbx_texting(12025550199, "Not my number", 403), "13105550124").await;
    assert_eq!(code, 0, "another account's number is refused:\n{output}\n{}", platform.log());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent: Vec<_> = smsc.log.lock().iter().filter(|e| e["event"] == "submit_sm").cloned().collect();
    assert_eq!(sent.len(), 1, "{sent:#?}");
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}
