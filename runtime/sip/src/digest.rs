//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617 with MD5 and qop=auth), server
//! side: challenges with self-verifying nonces and checks responses against a stored HA1
//! (`MD5(user:realm:password)`, so the platform never keeps a password).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};

/// How long a nonce may be used: later answers get a fresh challenge with `stale=true`.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

fn md5_hex(data: &str) -> String {
    let digest = Md5::digest(data.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `MD5(user:realm:password)`: what the store keeps for a SIP user.
pub fn ha1(user: &str, realm: &str, password: &str) -> String {
    md5_hex(&format!("{user}:{realm}:{password}"))
}

/// The fields of an `Authorization: Digest …` header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestResponse {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
}

impl DigestResponse {
    /// Parse the header value (`Digest username="…", realm="…", …`); `None` when it is not a
    /// Digest header or lacks a required field.
    pub fn parse(header: &str) -> Option<DigestResponse> {
        let rest = header.trim();
        let (scheme, params) = rest.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let fields = parse_params(params);
        let get = |name: &str| fields.get(name).cloned();
        Some(DigestResponse {
            username: get("username")?,
            realm: get("realm")?,
            nonce: get("nonce")?,
            uri: get("uri")?,
            response: get("response")?,
            algorithm: get("algorithm"),
            qop: get("qop"),
            nc: get("nc"),
            cnonce: get("cnonce"),
        })
    }

    /// Whether the response proves knowledge of the password behind `ha1` for `method`.
    pub fn verify(&self, ha1: &str, method: &str) -> bool {
        if self.algorithm.as_deref().is_some_and(|a| !a.eq_ignore_ascii_case("MD5")) {
            return false;
        }
        let ha2 = md5_hex(&format!("{method}:{}", self.uri));
        let expected = match (&self.qop, &self.nc, &self.cnonce) {
            (Some(qop), Some(nc), Some(cnonce)) if qop.eq_ignore_ascii_case("auth") => {
                md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", self.nonce))
            }
            (Some(_), _, _) => return false,
            (None, _, _) => md5_hex(&format!("{ha1}:{}:{ha2}", self.nonce)),
        };
        constant_time_eq(expected.as_bytes(), self.response.to_ascii_lowercase().as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `name=value` and `name="quoted, value"` pairs separated by commas; names lower-cased.
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else { break };
        let name = name.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (quoted[..end].to_owned(), &quoted[end + 1..]),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_owned(), &after[end..]),
                None => (after.trim().to_owned(), ""),
            }
        };
        fields.insert(name, value);
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    fields
}

/// Issues and checks nonces: `<unix seconds>.<MD5(secret:seconds:realm)>`, so no nonce table is
/// kept and any node of a cluster sharing the secret can check them.
#[derive(Debug, Clone)]
pub struct NonceIssuer {
    secret: String,
}

/// What a nonce check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    /// Ours but too old: challenge again with `stale=true`.
    Stale,
    Invalid,
}

impl NonceIssuer {
    /// An issuer with a secret (random per process unless configured).
    pub fn new(secret: impl Into<String>) -> Self {
        NonceIssuer { secret: secret.into() }
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    /// A fresh nonce for `realm`.
    pub fn issue(&self, realm: &str) -> String {
        self.issue_at(realm, Self::now())
    }

    fn issue_at(&self, realm: &str, seconds: u64) -> String {
        format!("{seconds}.{}", md5_hex(&format!("{}:{seconds}:{realm}", self.secret)))
    }

    /// Check a nonce a client sent back.
    pub fn check(&self, realm: &str, nonce: &str) -> NonceCheck {
        let Some((seconds, _)) = nonce.split_once('.') else { return NonceCheck::Invalid };
        let Ok(seconds) = seconds.parse::<u64>() else { return NonceCheck::Invalid };
        if !constant_time_eq(self.issue_at(realm, seconds).as_bytes(), nonce.as_bytes()) {
            return NonceCheck::Invalid;
        }
        if Self::now().saturating_sub(seconds) > NONCE_LIFETIME.as_secs() {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }

    /// The `WWW-Authenticate` value of a challenge.
    pub fn challenge(&self, realm: &str, stale: bool) -> String {
        let nonce = self.issue(realm);
        let stale = if stale { ", stale=true" } else { "" };
        format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"{stale}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5's example, with the SIP method in place of GET's.
    #[test]
    fn verifies_the_rfc_2617_example() {
        let header = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let response = DigestResponse::parse(header).expect("a digest header");
        assert_eq!(response.username, "Mufasa");
        assert_eq!(response.nc.as_deref(), Some("00000001"));
        let ha1 = ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert!(response.verify(&ha1, "GET"));
        assert!(!response.verify(&ha1, "REGISTER"), "the method is part of the proof");
        assert!(!response.verify(&super::ha1("Mufasa", "testrealm@host.com", "wrong"), "GET"));
    }

    #[test]
    fn nonces_check_their_own_signature_and_age() {
        let issuer = NonceIssuer::new("secret");
        let nonce = issuer.issue("example.com");
        assert_eq!(issuer.check("example.com", &nonce), NonceCheck::Valid);
        assert_eq!(issuer.check("other.com", &nonce), NonceCheck::Invalid, "bound to the realm");
        assert_eq!(NonceIssuer::new("other secret").check("example.com", &nonce), NonceCheck::Invalid);
        let old = issuer.issue_at("example.com", NonceIssuer::now() - NONCE_LIFETIME.as_secs() - 5);
        assert_eq!(issuer.check("example.com", &old), NonceCheck::Stale);
        assert_eq!(issuer.check("example.com", "garbage"), NonceCheck::Invalid);
    }

    #[test]
    fn non_digest_headers_are_not_parsed() {
        assert_eq!(DigestResponse::parse("Basic dXNlcjpwYXNz"), None);
        assert_eq!(DigestResponse::parse("Digest realm=\"x\""), None, "fields missing");
    }
}
