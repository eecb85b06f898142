//! A SIP phone made of one UDP socket, for tests that must send exactly what an attacker would:
//! replayed credentials, wrong passwords, other source addresses (127.0.0.2, 127.0.0.3… route on
//! Linux loopback). The digest is computed here from the password.
//!
//! Used by the e2e tests (`tests/sip_auth_hostile.rs`) and by runtime/sip's own tests, which
//! include this file by path.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentact_sip::digest::{ha1, response};
use tokio::net::UdpSocket;

/// How long an answer that should come may take.
pub const ANSWER_WAIT: Duration = Duration::from_secs(3);

fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A final response: its status and its text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub text: String,
}

impl Answer {
    /// The nonce of its challenge.
    pub fn nonce(&self) -> String {
        let start = self.text.find("nonce=\"").unwrap_or_else(|| panic!("a challenge: {}", self.text)) + 7;
        let end = self.text[start..].find('"').expect("a quoted nonce");
        self.text[start..start + end].to_owned()
    }

    /// The URIs of its Contact headers (a registrar's bindings).
    pub fn contacts(&self) -> Vec<String> {
        self.text
            .lines()
            .filter(|line| line.to_ascii_lowercase().starts_with("contact:"))
            .flat_map(|line| {
                line.split('<').skip(1).filter_map(|part| part.split('>').next()).map(str::to_owned)
            })
            .collect()
    }
}

/// A request ready to send, with its Call-ID (how its answers are told apart).
#[derive(Debug, Clone)]
pub struct Request {
    pub text: String,
    pub call_id: String,
}

/// A phone of `user@domain` on one loopback address.
pub struct Phone {
    socket: UdpSocket,
    server: SocketAddr,
    pub user: String,
    pub domain: String,
}

impl Phone {
    /// A phone bound to `ip` (any free port), talking to `server`.
    pub async fn on(ip: &str, server: SocketAddr, user: &str, domain: &str) -> Phone {
        let socket = UdpSocket::bind((ip, 0)).await.expect("bind a loopback address");
        Phone { socket, server, user: user.to_owned(), domain: domain.to_owned() }
    }

    pub fn local(&self) -> SocketAddr {
        self.socket.local_addr().expect("local address")
    }

    /// A request from the phone's user with a fresh branch and Call-ID; `extra` header lines
    /// end with CRLF.
    pub fn request(&self, method: &str, uri: &str, to: &str, extra: &str) -> Request {
        self.request_with_body(method, uri, to, extra, "")
    }

    /// [`Phone::request`] with a body (its Content-Type goes in `extra`).
    pub fn request_with_body(&self, method: &str, uri: &str, to: &str, extra: &str, body: &str) -> Request {
        let n = unique();
        let pid = std::process::id();
        let call_id = format!("{n}-{pid}@raw-sip");
        let (local, user, domain) = (self.local(), &self.user, &self.domain);
        let text = format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{n}-{pid};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{domain}>;tag=t{n}\r\n\
             To: <{to}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 {method}\r\n\
             {extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Request { text, call_id }
    }

    /// A REGISTER of the user with `contacts` (none: a query of the bindings).
    pub fn register(&self, contacts: &[String], authorization: &str) -> Request {
        let contacts = if contacts.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = contacts.iter().map(|c| format!("<{c}>")).collect();
            format!("Contact: {}\r\nExpires: 600\r\n", list.join(", "))
        };
        let to = format!("sip:{}@{}", self.user, self.domain);
        self.request("REGISTER", &self.registrar_uri(), &to, &format!("{contacts}{authorization}"))
    }

    /// The Request-URI of its REGISTERs.
    pub fn registrar_uri(&self) -> String {
        format!("sip:{}", self.domain)
    }

    /// An INVITE to `target@domain` offering PCMU at the phone's address.
    pub fn invite(&self, target: &str, authorization: &str) -> Request {
        let uri = self.invite_uri(target);
        let local = self.local();
        let ip = local.ip();
        let contact = format!("Contact: <sip:{}@{local}>\r\nContent-Type: application/sdp\r\n", self.user);
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            local.port() + 2
        );
        self.request_with_body("INVITE", &uri, &uri, &format!("{contact}{authorization}"), &sdp)
    }

    /// The Request-URI of an INVITE to `target`.
    pub fn invite_uri(&self, target: &str) -> String {
        format!("sip:{target}@{}", self.domain)
    }

    /// Send the request; its final answer, if one comes within `wait`.
    pub async fn exchange(&self, request: &Request, wait: Duration) -> Option<Answer> {
        self.socket.send_to(request.text.as_bytes(), self.server).await.expect("send");
        let deadline = tokio::time::Instant::now() + wait;
        let mut buffer = vec![0u8; 65_535];
        loop {
            let received = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buffer)).await;
            let Ok(Ok((length, _))) = received else { return None };
            let text = String::from_utf8_lossy(&buffer[..length]).into_owned();
            let status = text.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
            let ours = text.lines().any(|line| line.trim() == format!("Call-ID: {}", request.call_id));
            if ours && text.starts_with("SIP/2.0 ") && status >= 200 {
                return Some(Answer { status, text });
            }
        }
    }

    /// Send the request and expect a final answer.
    pub async fn send(&self, request: &Request) -> Answer {
        match self.exchange(request, ANSWER_WAIT).await {
            Some(answer) => answer,
            None => panic!("no answer to:\n{}", request.text),
        }
    }

    /// `<header>: Digest …` for the phone's user with `password`, answering `nonce` for
    /// `method uri` with nonce count `nc` (qop=auth).
    pub fn authorization(
        &self,
        header: &str,
        method: &str,
        uri: &str,
        nonce: &str,
        nc: u32,
        password: &str,
    ) -> String {
        let (user, realm) = (&self.user, &self.domain);
        let nc = format!("{nc:08x}");
        let digest = response(&ha1(user, realm, password), method, uri, nonce, Some((&nc, "c0ffee", "auth")));
        format!(
            "{header}: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{digest}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"c0ffee\"\r\n"
        )
    }

    /// REGISTER `contacts` through the challenge with `password`: the final answer.
    pub async fn register_with(&self, contacts: &[String], password: &str) -> Answer {
        let challenge = self.send(&self.register(contacts, "")).await;
        assert_eq!(challenge.status, 401, "a challenge first: {}", challenge.text);
        let auth = self.authorization(
            "Authorization",
            "REGISTER",
            &self.registrar_uri(),
            &challenge.nonce(),
            1,
            password,
        );
        self.send(&self.register(contacts, &auth)).await
    }
}
