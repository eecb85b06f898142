//! Digest authentication read as an attacker would: a SIP endpoint on loopback, raw SIP over UDP
//! from the test (127.0.0.1, and 127.0.0.2 / 127.0.0.3 as other sources, which Linux routes on
//! loopback), the digest computed here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use opentact_sip::digest::{ha1, response};
use opentact_sip::{
    AuthBan, BanScope, InboundHandler, IncomingCall, InviteCredential, SipConfig, SipEndpoint,
};
use parking_lot::Mutex;
use tokio::net::UdpSocket;

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

fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A final response: its status and head.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
}

impl Answer {
    /// The nonce of its challenge.
    fn nonce(&self) -> String {
        let start = self.head.find("nonce=\"").expect("a challenge") + 7;
        let end = self.head[start..].find('"').expect("a quoted nonce");
        self.head[start..start + end].to_owned()
    }
}

/// A SIP phone on one loopback address.
struct Phone {
    socket: UdpSocket,
    server: SocketAddr,
}

impl Phone {
    async fn on(ip: &str, server: SocketAddr) -> Phone {
        let socket = UdpSocket::bind((ip, 0)).await.expect("bind a loopback address");
        Phone { socket, server }
    }

    fn local(&self) -> SocketAddr {
        self.socket.local_addr().expect("local address")
    }

    /// A request with a fresh branch and Call-ID; `extra` header lines end with CRLF.
    fn request(&self, method: &str, uri: &str, to: &str, extra: &str) -> (String, String) {
        let n = unique();
        let call_id = format!("{n}-{}@test", std::process::id());
        let local = self.local();
        let text = format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{n}-{};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@{DOMAIN}>;tag=t{n}\r\n\
             To: <{to}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 {method}\r\n\
             {extra}Content-Length: 0\r\n\r\n",
            std::process::id()
        );
        (text, call_id)
    }

    /// Send `text` and wait (at most `wait`) for the final response of its Call-ID.
    async fn exchange(&self, (text, call_id): (String, String), wait: Duration) -> Option<Answer> {
        self.socket.send_to(text.as_bytes(), self.server).await.expect("send");
        let deadline = tokio::time::Instant::now() + wait;
        let mut buffer = vec![0u8; 65_535];
        loop {
            let received = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buffer)).await;
            let Ok(Ok((length, _))) = received else { return None };
            let head = String::from_utf8_lossy(&buffer[..length]).into_owned();
            let status = head.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
            if head.contains(&format!("Call-ID: {call_id}")) && status >= 200 {
                return Some(Answer { status, head });
            }
        }
    }

    async fn send(&self, request: (String, String)) -> Answer {
        self.exchange(request, Duration::from_secs(3)).await.expect("an answer")
    }

    fn register(&self, contact: &str, authorization: &str) -> (String, String) {
        let extra = format!("Contact: <{contact}>\r\nExpires: 600\r\n{authorization}");
        self.request("REGISTER", &format!("sip:{DOMAIN}"), &format!("sip:alice@{DOMAIN}"), &extra)
    }

    fn invite(&self, number: &str, authorization: &str) -> (String, String) {
        let uri = format!("sip:{number}@{DOMAIN}");
        self.request(
            "INVITE",
            &uri,
            &uri,
            &format!("Contact: <sip:alice@{}>\r\n{authorization}", self.local()),
        )
    }
}

/// `<header>: Digest …` answering `nonce` for `method uri` with count `nc`.
fn authorization(header: &str, method: &str, uri: &str, nonce: &str, nc: u32, password: &str) -> String {
    let nc = format!("{nc:08x}");
    let digest = response(&ha1("alice", DOMAIN, password), method, uri, nonce, Some((&nc, "c0ffee", "auth")));
    format!(
        "{header}: Digest username=\"alice\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{digest}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"c0ffee\"\r\n"
    )
}

/// REGISTER `contact` from `phone` through the challenge; the final status.
async fn register(phone: &Phone, contact: &str, password: &str) -> u16 {
    let challenge = phone.send(phone.register(contact, "")).await;
    assert_eq!(challenge.status, 401, "{}", challenge.head);
    let uri = format!("sip:{DOMAIN}");
    let auth = authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 1, password);
    phone.send(phone.register(contact, &auth)).await.status
}

fn contacts(endpoint: &SipEndpoint) -> Vec<String> {
    endpoint.registrar().contacts(DOMAIN, "alice").into_iter().map(|b| b.contact).collect()
}

#[tokio::test]
async fn a_captured_invite_credential_does_not_call_another_number() {
    let (endpoint, handler) = start().await;
    let phone = Phone::on("127.0.0.1", endpoint.local_addr()).await;
    let challenge = phone.send(phone.invite("12025550100", "")).await;
    assert_eq!(challenge.status, 407, "{}", challenge.head);
    let uri = format!("sip:12025550100@{DOMAIN}");
    let captured = authorization("Proxy-Authorization", "INVITE", &uri, &challenge.nonce(), 1, PASSWORD);
    let answered = phone.send(phone.invite("12025550100", &captured)).await;
    assert_eq!(answered.status, 486, "the genuine call reached routing: {}", answered.head);

    // The same header on an INVITE to a premium number, from the same address.
    let replayed = phone.send(phone.invite("19005550199", &captured)).await;
    assert!(matches!(replayed.status, 403 | 407), "refused: {}", replayed.head);
    assert_eq!(*handler.called.lock(), vec!["12025550100".to_owned()], "only the genuine call was routed");
    endpoint.shutdown();
}

#[tokio::test]
async fn a_replayed_register_binds_nothing_from_anywhere() {
    let (endpoint, _handler) = start().await;
    let phone = Phone::on("127.0.0.1", endpoint.local_addr()).await;
    let challenge = phone.send(phone.register("sip:alice@127.0.0.1:5062", "")).await;
    let uri = format!("sip:{DOMAIN}");
    let captured = authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 1, PASSWORD);
    let bound = phone.send(phone.register("sip:alice@127.0.0.1:5062", &captured)).await;
    assert_eq!(bound.status, 200, "{}", bound.head);

    // The attacker puts its own Contact under the captured credential: from alice's address…
    let again = phone.send(phone.register("sip:attacker@127.0.0.1:6666", &captured)).await;
    assert_eq!(again.status, 401, "a used nonce count is challenged again: {}", again.head);
    // …and from its own.
    let attacker = Phone::on("127.0.0.2", endpoint.local_addr()).await;
    let elsewhere = attacker.send(attacker.register("sip:attacker@127.0.0.2:6666", &captured)).await;
    assert_eq!(elsewhere.status, 401, "the nonce was issued to another address: {}", elsewhere.head);
    // A fresh count on alice's nonce still works from alice's address, not from another.
    let next = authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 2, PASSWORD);
    let stolen = attacker.send(attacker.register("sip:attacker@127.0.0.2:6666", &next)).await;
    assert_eq!(stolen.status, 401, "{}", stolen.head);
    let refreshed = phone.send(phone.register("sip:alice@127.0.0.1:5062", &next)).await;
    assert_eq!(refreshed.status, 200, "nc=2 on the same nonce: {}", refreshed.head);
    assert_eq!(contacts(&endpoint), vec!["sip:alice@127.0.0.1:5062".to_owned()]);
    endpoint.shutdown();
}

#[tokio::test]
async fn twenty_wrong_passwords_ban_the_source_but_not_the_users_own_phone() {
    let (endpoint, handler) = start().await;
    // alice's phone registered from 127.0.0.2 before the attack.
    let own = Phone::on("127.0.0.2", endpoint.local_addr()).await;
    assert_eq!(register(&own, "sip:alice@127.0.0.2:5062", PASSWORD).await, 200);

    let attacker = Phone::on("127.0.0.1", endpoint.local_addr()).await;
    let challenge = attacker.send(attacker.register("sip:alice@127.0.0.1:6666", "")).await;
    let uri = format!("sip:{DOMAIN}");
    for guess in 0..20 {
        let wrong =
            authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 1, &format!("guess{guess}"));
        let refused = attacker.send(attacker.register("sip:alice@127.0.0.1:6666", &wrong)).await;
        assert_eq!(refused.status, 403, "guess {guess}: {}", refused.head);
    }
    // The right password from the banned address: nothing comes back (dropped), nothing binds.
    let right = authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 1, PASSWORD);
    let banned = attacker
        .exchange(attacker.register("sip:alice@127.0.0.1:6666", &right), Duration::from_millis(700))
        .await;
    assert!(banned.is_none(), "a banned source is not answered: {banned:?}");
    let options = attacker.request("OPTIONS", &format!("sip:{DOMAIN}"), &format!("sip:{DOMAIN}"), "");
    assert!(attacker.exchange(options, Duration::from_millis(300)).await.is_none(), "not even OPTIONS");
    assert_eq!(contacts(&endpoint), vec!["sip:alice@127.0.0.2:5062".to_owned()]);

    let bans = handler.bans.lock().clone();
    let source_ban = bans.iter().find(|ban| ban.scope == BanScope::Source).expect("a source ban reported");
    assert_eq!(source_ban.source.to_string(), "127.0.0.1");
    assert_eq!(source_ban.failures, 20);
    assert_eq!(source_ban.user.as_deref(), Some("alice@acme.sip.opentact.local"));
    assert_eq!(bans.iter().filter(|ban| ban.scope == BanScope::Source).count(), 1, "reported once");

    // The user is locked against new addresses, but alice's own phone still registers.
    assert!(bans.iter().any(|ban| ban.scope == BanScope::User), "{bans:?}");
    assert_eq!(register(&own, "sip:alice@127.0.0.2:5062", PASSWORD).await, 200, "not locked out");
    let stranger = Phone::on("127.0.0.3", endpoint.local_addr()).await;
    assert_eq!(register(&stranger, "sip:alice@127.0.0.3:5062", PASSWORD).await, 403, "a new address waits");
    endpoint.shutdown();
}

#[tokio::test]
async fn a_register_over_the_contact_cap_is_refused_whole() {
    let (endpoint, _handler) = start().await;
    let phone = Phone::on("127.0.0.1", endpoint.local_addr()).await;
    let uri = format!("sip:{DOMAIN}");
    let many: Vec<String> = (0..11).map(|n| format!("<sip:alice@127.0.0.1:{}>", 7000 + n)).collect();
    let contact_line = format!("Contact: {}\r\nExpires: 600\r\n", many.join(", "));
    let to = format!("sip:alice@{DOMAIN}");
    let challenge = phone.send(phone.request("REGISTER", &uri, &to, &contact_line)).await;
    let auth = authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 1, PASSWORD);
    let refused = phone.send(phone.request("REGISTER", &uri, &to, &format!("{contact_line}{auth}"))).await;
    assert_eq!(refused.status, 403, "{}", refused.head);
    assert!(refused.head.starts_with("SIP/2.0 403 Too Many Contacts"), "{}", refused.head);
    assert!(contacts(&endpoint).is_empty(), "nothing bound");
    // Ten fit.
    let ten = format!("Contact: {}\r\nExpires: 600\r\n", many[..10].join(", "));
    let challenge = phone.send(phone.request("REGISTER", &uri, &to, &ten)).await;
    let auth = authorization("Authorization", "REGISTER", &uri, &challenge.nonce(), 1, PASSWORD);
    let bound = phone.send(phone.request("REGISTER", &uri, &to, &format!("{ten}{auth}"))).await;
    assert_eq!(bound.status, 200, "{}", bound.head);
    assert_eq!(contacts(&endpoint).len(), 10);
    endpoint.shutdown();
}
