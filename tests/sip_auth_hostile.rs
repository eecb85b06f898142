//! SIP digest authentication against an attacker on the wire: the real `opentact serve`, no
//! carrier addresses (so loopback must authenticate), raw SIP over UDP from the test with the
//! digest computed here; 127.0.0.2 and 127.0.0.3 are other source addresses (Linux loopback).

#[path = "support/raw_sip.rs"]
mod raw_sip;
mod support;

use std::time::Duration;

use raw_sip::Phone;
use support::platform::Platform;
use support::provision;

const PASSWORD: &str = "alice-Pass-1";
const DOMAIN: &str = "acme.sip.opentact.local";
/// The number alice calls, and the one a replay of her credential tries.
const CALLED: i64 = 13_125_550_140;
const OTHER: i64 = 13_125_550_141;

/// A platform where alice is a SIP user of acme and the account has two numbers.
async fn platform_with_alice() -> Platform {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let flow = "<Response><Hangup/></Response>";
    let provisioned = provision::xml_number(&dir, "auth-hostile@example.test", CALLED, flow).await;
    provision::xml_number(&dir, "auth-hostile@example.test", OTHER, flow).await;
    provision::sip_user(&dir, provisioned.account, "acme", "alice", PASSWORD).await;
    let config = data.path().join("no-carriers.toml");
    std::fs::write(&config, "[sip]\ncarriers = []\n").expect("config");
    Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await
}

async fn phone(ip: &str, platform: &Platform) -> Phone {
    Phone::on(ip, platform.sip, "alice", DOMAIN).await
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// alice's bindings, as a query REGISTER from `phone` answers them.
async fn bindings(phone: &Phone) -> Vec<String> {
    let answer = phone.register_with(&[], PASSWORD).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.contacts()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_proxy_authorization_does_not_call_another_number() {
    let platform = platform_with_alice().await;
    let phone = phone("127.0.0.1", &platform).await;
    let (called, other) = (CALLED.to_string(), OTHER.to_string());
    let challenge = phone.send(&phone.invite(&called, "")).await;
    assert_eq!(challenge.status, 407, "{}", challenge.text);
    let uri = phone.invite_uri(&called);
    let captured =
        phone.authorization("Proxy-Authorization", "INVITE", &uri, &challenge.nonce(), 1, PASSWORD);
    let genuine = phone.send(&phone.invite(&called, &captured)).await;
    assert!(!matches!(genuine.status, 401 | 403 | 407), "the genuine call passes: {}", genuine.text);
    platform
        .wait_for_event(Duration::from_secs(5), |e| {
            e["type"] == "call.initiated" && e["to"].as_str().is_some_and(|to| to.contains(&called))
        })
        .await;

    // The captured header on an INVITE to the other number, from alice's address.
    let replayed = phone.send(&phone.invite(&other, &captured)).await;
    assert!(matches!(replayed.status, 403 | 407), "the replay is refused: {}", replayed.text);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = platform.events();
    assert!(
        !events.iter().any(|e| e["to"].as_str().is_some_and(|to| to.contains(&other))),
        "no call to {other} began: {events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_wrong_passwords_ban_the_source() {
    let platform = platform_with_alice().await;
    // alice's own phone, registered before the attack from another address.
    let own = phone("127.0.0.2", &platform).await;
    let own_contact = strings(&["sip:alice@127.0.0.2:5062"]);
    assert_eq!(own.register_with(&own_contact, PASSWORD).await.status, 200);

    // The account watches its events: bans of its users are its business.
    let (status, login) = support::platform::http(
        platform.api,
        "POST",
        "/rest/auth",
        &[],
        Some(&serde_json::json!({"email": "auth-hostile@example.test", "password": "correct horse battery staple"})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let mut events =
        support::ws::subscribe(platform.api, login["payload"]["token"].as_str().expect("token")).await;

    let attacker = phone("127.0.0.1", &platform).await;
    let theirs = strings(&["sip:alice@127.0.0.1:6666"]);
    let challenge = attacker.send(&attacker.register(&theirs, "")).await;
    let uri = attacker.registrar_uri();
    for guess in 0..20 {
        let password = format!("guess-{guess}");
        let wrong =
            attacker.authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 1, &password);
        let refused = attacker.send(&attacker.register(&theirs, &wrong)).await;
        assert_eq!(refused.status, 403, "guess {guess}: {}", refused.text);
    }
    // The 21st attempt, with the right password: the banned source gets no answer at all.
    let right = attacker.authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 1, PASSWORD);
    let answer = attacker.exchange(&attacker.register(&theirs, &right), Duration::from_millis(800)).await;
    assert!(answer.is_none(), "the banned source is dropped: {answer:?}");
    let call = attacker.exchange(&attacker.invite(&CALLED.to_string(), ""), Duration::from_millis(300)).await;
    assert!(call.is_none(), "its INVITEs too: {call:?}");

    // alice's phone is not locked out, and nothing of the attacker's was bound.
    assert_eq!(bindings(&own).await, own_contact);
    let log = platform.log();
    let bans: Vec<&str> = log.lines().filter(|line| line.contains("sip.auth.banned")).collect();
    assert_eq!(bans.iter().filter(|line| line.contains("scope=Source")).count(), 1, "logged once:\n{log}");
    assert!(
        bans.iter().any(|line| line.contains("source=127.0.0.1") && line.contains("failures=20")),
        "{bans:#?}"
    );
    // The account heard of both: alice locked against new addresses, then the source banned.
    let seen = tokio::time::timeout(
        Duration::from_secs(5),
        support::ws::until(&mut events, |e| {
            e["type"] == "sip.auth.banned" && e["payload"]["scope"] == "source"
        }),
    )
    .await
    .expect("the ban reaches the account's websocket");
    let bans: Vec<&serde_json::Value> = seen.iter().filter(|e| e["type"] == "sip.auth.banned").collect();
    assert!(
        bans.iter().all(|e| e["payload"]["user"] == "alice@acme.sip.opentact.local"
            && e["payload"]["source"] == "127.0.0.1"
            && e["payload"]["until"].is_string()),
        "{bans:#?}"
    );
    assert!(bans.iter().any(|e| e["payload"]["scope"] == "user"), "{bans:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_replayed_from_another_address_binds_nothing() {
    let platform = platform_with_alice().await;
    let phone = phone("127.0.0.1", &platform).await;
    let own_contact = strings(&["sip:alice@127.0.0.1:5062"]);
    let challenge = phone.send(&phone.register(&own_contact, "")).await;
    let uri = phone.registrar_uri();
    let captured = phone.authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 1, PASSWORD);
    let bound = phone.send(&phone.register(&own_contact, &captured)).await;
    assert_eq!(bound.status, 200, "{}", bound.text);

    // The attacker replays the captured credential from 127.0.0.2, as is and with its own
    // Contact, and with the next nonce count.
    let attacker = self::phone("127.0.0.2", &platform).await;
    let theirs = strings(&["sip:alice@127.0.0.2:6666"]);
    let next = phone.authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 2, PASSWORD);
    for (contact, authorization) in [(&own_contact, &captured), (&theirs, &captured), (&theirs, &next)] {
        let replayed = attacker.send(&attacker.register(contact, authorization)).await;
        assert_eq!(replayed.status, 401, "challenged, not bound: {}", replayed.text);
    }
    assert_eq!(bindings(&phone).await, own_contact, "the binding still points at alice's phone");
    assert!(
        !platform.log().lines().any(|l| l.contains("registered") && l.contains("127.0.0.2")),
        "{}",
        platform.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_over_the_contact_cap_is_refused() {
    let platform = platform_with_alice().await;
    let phone = phone("127.0.0.1", &platform).await;
    let many: Vec<String> = (0..11).map(|n| format!("sip:alice@127.0.0.1:{}", 7000 + n)).collect();
    let refused = phone.register_with(&many, PASSWORD).await;
    assert!(refused.text.starts_with("SIP/2.0 403 Too Many Contacts"), "{}", refused.text);
    assert!(bindings(&phone).await.is_empty(), "nothing was bound");
    // Ten fit; an eleventh in a later REGISTER does not.
    assert_eq!(phone.register_with(&many[..10], PASSWORD).await.status, 200);
    assert_eq!(phone.register_with(&many[10..], PASSWORD).await.status, 403);
    assert_eq!(bindings(&phone).await.len(), 10);
}
