//! Digest authentication read as an attacker would: a SIP endpoint on loopback, raw SIP over UDP
//! from the test (127.0.0.1, and 127.0.0.2 / 127.0.0.3 as other sources, which Linux routes on
//! loopback), the digest computed in the test. The raw phone is the e2e tests' (shared by path).

#[path = "../../../tests/support/raw_sip.rs"]
mod raw_sip;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opentact_sip::digest::ha1;
use opentact_sip::{
    AuthBan, BanScope, InboundHandler, IncomingCall, InviteCredential, SipConfig, SipEndpoint,
};
use parking_lot::Mutex;
use raw_sip::Phone;

const DOMAIN: &str = "acme.sip.opentact.local";
const PASSWORD: &str = "alice-Pass-1";

/// alice of acme; every call that passes authentication is refused 486 and remembered.
#[derive(Default)]
struct Handler {
    called: Mutex<Vec<String>>,
    bans: Mutex<Vec<AuthBan>>,
}

#[async_trait]
impl InboundHandler for Handler {
    async fn on_invite(&self, call: IncomingCall) {
        self.called.lock().push(call.request_uri.user.clone().unwrap_or_default());
        let _ = call.reject(486, None);
    }

    async fn user_ha1(&self, domain: &str, user: &str) -> Option<String> {
        (domain == DOMAIN && user == "alice").then(|| ha1("alice", DOMAIN, PASSWORD))
    }

    async fn invite_credential(&self, realm: &str, username: &str) -> Option<InviteCredential> {
        self.user_ha1(realm, username).await.map(|ha1| InviteCredential { ha1, connection: false })
    }

    async fn trusted_source(&self, _source: SocketAddr) -> bool {
        false
    }

    fn on_auth_ban(&self, ban: &AuthBan) {
        self.bans.lock().push(ban.clone());
    }
}

async fn start() -> (SipEndpoint, Arc<Handler>) {
    let handler = Arc::new(Handler::default());
    let config = SipConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        tcp: false,
        domain: "sip.opentact.local".to_owned(),
        ..SipConfig::default()
    };
    let endpoint = SipEndpoint::start(config, handler.clone()).await.expect("SIP endpoint");
    (endpoint, handler)
}

fn contacts(endpoint: &SipEndpoint) -> Vec<String> {
    endpoint.registrar().contacts(DOMAIN, "alice").into_iter().map(|b| b.contact).collect()
}

async fn phone(ip: &str, endpoint: &SipEndpoint) -> Phone {
    Phone::on(ip, endpoint.local_addr(), "alice", DOMAIN).await
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

#[tokio::test]
async fn a_captured_invite_credential_does_not_call_another_number() {
    let (endpoint, handler) = start().await;
    let phone = phone("127.0.0.1", &endpoint).await;
    let challenge = phone.send(&phone.invite("12025550100", "")).await;
    assert_eq!(challenge.status, 407, "{}", challenge.text);
    let uri = phone.invite_uri("12025550100");
    let captured =
        phone.authorization("Proxy-Authorization", "INVITE", &uri, &challenge.nonce(), 1, PASSWORD);
    let answered = phone.send(&phone.invite("12025550100", &captured)).await;
    assert_eq!(answered.status, 486, "the genuine call reached routing: {}", answered.text);

    // The same header on an INVITE to a premium number, from the same address.
    let replayed = phone.send(&phone.invite("19005550199", &captured)).await;
    assert!(matches!(replayed.status, 403 | 407), "refused: {}", replayed.text);
    assert_eq!(*handler.called.lock(), strings(&["12025550100"]), "only the genuine call was routed");
    endpoint.shutdown();
}

#[tokio::test]
async fn a_replayed_register_binds_nothing_from_anywhere() {
    let (endpoint, _handler) = start().await;
    let phone = phone("127.0.0.1", &endpoint).await;
    let own = strings(&["sip:alice@127.0.0.1:5062"]);
    let challenge = phone.send(&phone.register(&own, "")).await;
    let uri = phone.registrar_uri();
    let captured = phone.authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 1, PASSWORD);
    let bound = phone.send(&phone.register(&own, &captured)).await;
    assert_eq!(bound.status, 200, "{}", bound.text);

    // The attacker puts its own Contact under the captured credential: from alice's address…
    let theirs = strings(&["sip:attacker@127.0.0.2:6666"]);
    let again = phone.send(&phone.register(&theirs, &captured)).await;
    assert_eq!(again.status, 401, "a used nonce count is challenged again: {}", again.text);
    // …and from its own, even with a count never used.
    let attacker = self::phone("127.0.0.2", &endpoint).await;
    let elsewhere = attacker.send(&attacker.register(&theirs, &captured)).await;
    assert_eq!(elsewhere.status, 401, "the nonce was issued to another address: {}", elsewhere.text);
    let next = phone.authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 2, PASSWORD);
    let stolen = attacker.send(&attacker.register(&theirs, &next)).await;
    assert_eq!(stolen.status, 401, "{}", stolen.text);
    let refreshed = phone.send(&phone.register(&own, &next)).await;
    assert_eq!(refreshed.status, 200, "nc=2 on the same nonce, from alice: {}", refreshed.text);
    assert_eq!(contacts(&endpoint), own);
    endpoint.shutdown();
}

#[tokio::test]
async fn twenty_wrong_passwords_ban_the_source_but_not_the_users_own_phone() {
    let (endpoint, handler) = start().await;
    // alice's phone registered from 127.0.0.2 before the attack.
    let own = phone("127.0.0.2", &endpoint).await;
    let own_contact = strings(&["sip:alice@127.0.0.2:5062"]);
    assert_eq!(own.register_with(&own_contact, PASSWORD).await.status, 200);

    let attacker = phone("127.0.0.1", &endpoint).await;
    let theirs = strings(&["sip:alice@127.0.0.1:6666"]);
    let challenge = attacker.send(&attacker.register(&theirs, "")).await;
    let uri = attacker.registrar_uri();
    for guess in 0..20 {
        let password = format!("guess{guess}");
        let wrong =
            attacker.authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 1, &password);
        let refused = attacker.send(&attacker.register(&theirs, &wrong)).await;
        assert_eq!(refused.status, 403, "guess {guess}: {}", refused.text);
    }
    // The right password from the banned address: nothing comes back (dropped), nothing binds.
    let right = attacker.authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 1, PASSWORD);
    let banned = attacker.exchange(&attacker.register(&theirs, &right), Duration::from_millis(700)).await;
    assert!(banned.is_none(), "a banned source is not answered: {banned:?}");
    let options = attacker.request("OPTIONS", &uri, &uri, "");
    assert!(attacker.exchange(&options, Duration::from_millis(300)).await.is_none(), "not even OPTIONS");
    assert_eq!(contacts(&endpoint), own_contact);

    let bans = handler.bans.lock().clone();
    let source_ban = bans.iter().find(|ban| ban.scope == BanScope::Source).expect("a source ban reported");
    assert_eq!(source_ban.source.to_string(), "127.0.0.1");
    assert_eq!(source_ban.failures, 20);
    assert_eq!(source_ban.user.as_deref(), Some("alice@acme.sip.opentact.local"));
    assert_eq!(bans.iter().filter(|ban| ban.scope == BanScope::Source).count(), 1, "reported once");

    // The user is locked against new addresses, but alice's own phone still registers.
    assert!(bans.iter().any(|ban| ban.scope == BanScope::User), "{bans:?}");
    assert_eq!(own.register_with(&own_contact, PASSWORD).await.status, 200, "not locked out");
    let stranger = phone("127.0.0.3", &endpoint).await;
    let status = stranger.register_with(&strings(&["sip:alice@127.0.0.3:5062"]), PASSWORD).await.status;
    assert_eq!(status, 403, "a new address waits for the lock to end");
    endpoint.shutdown();
}

#[tokio::test]
async fn a_register_over_the_contact_cap_is_refused_whole() {
    let (endpoint, _handler) = start().await;
    let phone = phone("127.0.0.1", &endpoint).await;
    let many: Vec<String> = (0..11).map(|n| format!("sip:alice@127.0.0.1:{}", 7000 + n)).collect();
    let refused = phone.register_with(&many, PASSWORD).await;
    assert!(refused.text.starts_with("SIP/2.0 403 Too Many Contacts"), "{}", refused.text);
    assert!(contacts(&endpoint).is_empty(), "nothing bound");
    let bound = phone.register_with(&many[..10], PASSWORD).await;
    assert_eq!(bound.status, 200, "ten fit: {}", bound.text);
    assert_eq!(contacts(&endpoint).len(), 10);
    endpoint.shutdown();
}
