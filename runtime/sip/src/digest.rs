//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617 with MD5 and qop=auth), server
//! side: challenges with self-verifying nonces bound to the client's address, a ledger that
//! makes each `(nonce, nc)` usable once, and checks of responses against a stored HA1
//! (`MD5(user:realm:password)`, so the platform never keeps a password).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use parking_lot::Mutex;

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

/// The `response` of a digest answer (RFC 2617 §3.2.2.1): with `qop` given as
/// `(nc, cnonce, qop)`, `MD5(HA1:nonce:nc:cnonce:qop:HA2)`, else `MD5(HA1:nonce:HA2)`, where
/// `HA2 = MD5(method:uri)`. What a client computes; the server compares against it.
pub fn response(ha1: &str, method: &str, uri: &str, nonce: &str, qop: Option<(&str, &str, &str)>) -> String {
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    match qop {
        Some((nc, cnonce, qop)) => md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")),
        None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
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
        let expected = match (&self.qop, &self.nc, &self.cnonce) {
            (Some(qop), Some(nc), Some(cnonce)) if qop.eq_ignore_ascii_case("auth") => {
                response(ha1, method, &self.uri, &self.nonce, Some((nc, cnonce, qop)))
            }
            (Some(_), _, _) => return false,
            (None, _, _) => response(ha1, method, &self.uri, &self.nonce, None),
        };
        constant_time_eq(expected.as_bytes(), self.response.to_ascii_lowercase().as_bytes())
    }

    /// The nonce count this response claims: `nc` (8 hex digits) with `qop=auth`, `1` without
    /// qop (RFC 2069 clients: the nonce is then single-use); `None` when `nc` is missing or not
    /// a positive hex number.
    pub fn nonce_count(&self) -> Option<u32> {
        match (&self.qop, &self.nc) {
            (None, _) => Some(1),
            (Some(_), Some(nc)) => u32::from_str_radix(nc.trim(), 16).ok().filter(|&nc| nc > 0),
            (Some(_), None) => None,
        }
    }

    /// Whether the `uri` the response was computed over is the request's Request-URI. The
    /// digest proves the password for a method and a `uri`; unless the `uri` is the target the
    /// request actually goes to, a captured credential authorises a request to any other
    /// target. `request_uri` is the Request-URI as the stack serialises it, `canonical` turns
    /// the digest `uri` into the same serialisation (parse and print), so the check is an exact
    /// string match in one canonical form — not RFC 3261 §19.1.4 equivalence, which a client
    /// has no reason to need: it copies the Request-URI verbatim (RFC 3261 §22.4).
    pub fn uri_matches(&self, request_uri: &str, canonical: impl Fn(&str) -> Option<String>) -> bool {
        self.uri == request_uri || canonical(&self.uri).is_some_and(|uri| uri == request_uri)
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

/// The most `(nonce, nc)` uses remembered by default (about 90 bytes each): beyond it the oldest
/// nonces are forgotten and answered as stale (the client is challenged again), never accepted
/// again — see [`NonceLedger`].
pub const DEFAULT_MAX_TRACKED_NONCES: usize = 65_536;

/// HMAC-MD5 (RFC 2104). MD5 is what SIP digest is built on, so the crate needs no second hash;
/// HMAC does not rely on MD5's broken collision resistance, and unlike a bare
/// `MD5(secret:…)` it is not open to length extension.
fn hmac_md5_hex(key: &[u8], message: &str) -> String {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..16].copy_from_slice(&Md5::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_pad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Md5::new().chain_update(&inner_pad).chain_update(message.as_bytes()).finalize();
    let outer = Md5::new().chain_update(&outer_pad).chain_update(inner).finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// Issues and checks nonces: `<unix seconds>.<serial>.<HMAC-MD5(secret, seconds:serial:realm:ip)>`.
/// A nonce is bound to the realm and to the IP address it was issued to, so a credential captured
/// on the wire cannot be answered from another address; the serial makes every nonce distinct
/// (two challenges in one second to one address must not share a nonce, or the second's first
/// use would look like a replay of the first's). Checking needs no table; single use is the
/// [`NonceLedger`]'s job.
#[derive(Debug)]
pub struct NonceIssuer {
    secret: String,
    serial: AtomicU64,
    lifetime: Duration,
}

/// What a nonce check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    /// Ours but too old: challenge again with `stale=true`.
    Stale,
    /// Not ours, or issued for another realm or another address.
    Invalid,
}

impl NonceIssuer {
    /// An issuer with a secret (random per process unless configured) and nonces valid for
    /// [`NONCE_LIFETIME`].
    pub fn new(secret: impl Into<String>) -> Self {
        NonceIssuer { secret: secret.into(), serial: AtomicU64::new(0), lifetime: NONCE_LIFETIME }
    }

    /// The same issuer with nonces valid for `lifetime`.
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// How long a nonce is valid.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    /// A fresh nonce for `realm`, to be answered from `source` only.
    pub fn issue(&self, realm: &str, source: IpAddr) -> String {
        self.issue_at(realm, source, Self::now())
    }

    fn issue_at(&self, realm: &str, source: IpAddr, seconds: u64) -> String {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        self.sign(realm, source, seconds, serial)
    }

    fn sign(&self, realm: &str, source: IpAddr, seconds: u64, serial: u64) -> String {
        // The realm is lower-cased: it names a host, and hosts compare case-insensitively.
        let realm = realm.to_ascii_lowercase();
        let mac = hmac_md5_hex(self.secret.as_bytes(), &format!("{seconds}:{serial}:{realm}:{source}"));
        format!("{seconds}.{serial}.{mac}")
    }

    /// Check a nonce a client sent back from `source`.
    pub fn check(&self, realm: &str, source: IpAddr, nonce: &str) -> NonceCheck {
        let mut parts = nonce.splitn(3, '.');
        let (Some(seconds), Some(serial), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            return NonceCheck::Invalid;
        };
        let (Ok(seconds), Ok(serial)) = (seconds.parse::<u64>(), serial.parse::<u64>()) else {
            return NonceCheck::Invalid;
        };
        if !constant_time_eq(self.sign(realm, source, seconds, serial).as_bytes(), nonce.as_bytes()) {
            return NonceCheck::Invalid;
        }
        if Self::now().saturating_sub(seconds) > self.lifetime.as_secs() {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }

    /// The `WWW-Authenticate` / `Proxy-Authenticate` value of a challenge to `source`.
    pub fn challenge(&self, realm: &str, source: IpAddr, stale: bool) -> String {
        let nonce = self.issue(realm, source);
        let stale = if stale { ", stale=true" } else { "" };
        format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"{stale}")
    }
}

/// The issue time (unix seconds) written at the front of one of our nonces.
fn nonce_issued_at(nonce: &str) -> Option<u64> {
    nonce.split('.').next()?.parse().ok()
}

/// What recording one use of a nonce found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceUse {
    /// Never used with this count or a higher one: accepted.
    Fresh,
    /// Used already with this `nc` or a higher one: a replay (or a client that reuses counts).
    Replayed,
    /// Too old for the ledger to remember whether it was used: treat as stale and challenge
    /// again, never accept.
    Forgotten,
}

/// The uses of nonces (RFC 2617 §3.2.2: the server checks that `nc` increases per nonce):
/// every accepted `(nonce, nc)` is remembered until the nonce expires, so a captured request
/// cannot be replayed while its nonce is valid. A request without `qop` counts as `nc=1`: its
/// nonce is single-use.
///
/// Bounded: at capacity the nonce issued earliest is forgotten and every nonce issued no later
/// than it is from then on answered [`NonceUse::Forgotten`] (stale), so forgetting never reopens
/// a replay; clients just answer one more challenge. Only accepted credentials are recorded,
/// so filling it takes valid passwords.
#[derive(Debug)]
pub struct NonceLedger {
    capacity: usize,
    lifetime: Duration,
    inner: Mutex<LedgerState>,
}

#[derive(Debug, Default)]
struct LedgerState {
    /// `(issued at, nonce)` → the highest `nc` accepted.
    used: BTreeMap<(u64, String), u32>,
    /// Nonces issued at or before this second and not in `used` were forgotten.
    floor: Option<u64>,
}

impl NonceLedger {
    /// A ledger of at most `capacity` nonces, each kept for `lifetime` (the issuer's).
    pub fn new(capacity: usize, lifetime: Duration) -> Self {
        NonceLedger { capacity: capacity.max(1), lifetime, inner: Mutex::default() }
    }

    /// Record that `nonce` (already checked valid) was answered with count `nc`.
    pub fn record(&self, nonce: &str, nc: u32) -> NonceUse {
        self.record_at(nonce, nc, NonceIssuer::now())
    }

    fn record_at(&self, nonce: &str, nc: u32, now: u64) -> NonceUse {
        let Some(issued) = nonce_issued_at(nonce) else { return NonceUse::Forgotten };
        let mut state = self.inner.lock();
        // Expired nonces fail the issuer's check before they get here: no need to remember them.
        while let Some(((oldest, _), _)) = state.used.first_key_value() {
            if now.saturating_sub(*oldest) <= self.lifetime.as_secs() {
                break;
            }
            state.used.pop_first();
        }
        let key = (issued, nonce.to_owned());
        if let Some(last) = state.used.get_mut(&key) {
            if nc > *last {
                *last = nc;
                return NonceUse::Fresh;
            }
            return NonceUse::Replayed;
        }
        if state.floor.is_some_and(|floor| issued <= floor) {
            return NonceUse::Forgotten;
        }
        if state.used.len() >= self.capacity
            && let Some(((evicted, _), _)) = state.used.pop_first()
        {
            state.floor = Some(state.floor.map_or(evicted, |floor| floor.max(evicted)));
            if issued <= evicted {
                return NonceUse::Forgotten;
            }
        }
        state.used.insert(key, nc);
        NonceUse::Fresh
    }

    /// Nonces remembered now.
    pub fn len(&self) -> usize {
        self.inner.lock().used.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP address")
    }

    #[test]
    fn hmac_md5_matches_rfc_2202() {
        // RFC 2202 test cases 2 and 6 (a key longer than a block is hashed first).
        assert_eq!(hmac_md5_hex(b"Jefe", "what do ya want for nothing?"), "750c783e6ab0b503eaa86e310a5db738");
        assert_eq!(
            hmac_md5_hex(&[0xaa; 80], "Test Using Larger Than Block-Size Key - Hash Key First"),
            "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"
        );
    }

    #[test]
    fn nonces_check_their_own_signature_and_age() {
        let issuer = NonceIssuer::new("secret");
        let client = ip("192.0.2.10");
        let nonce = issuer.issue("example.com", client);
        assert_eq!(issuer.check("example.com", client, &nonce), NonceCheck::Valid);
        assert_eq!(issuer.check("Example.COM", client, &nonce), NonceCheck::Valid, "realms are hosts");
        assert_eq!(issuer.check("other.com", client, &nonce), NonceCheck::Invalid, "bound to the realm");
        assert_eq!(
            NonceIssuer::new("other secret").check("example.com", client, &nonce),
            NonceCheck::Invalid
        );
        let old = issuer.issue_at("example.com", client, NonceIssuer::now() - NONCE_LIFETIME.as_secs() - 5);
        assert_eq!(issuer.check("example.com", client, &old), NonceCheck::Stale);
        assert_eq!(issuer.check("example.com", client, "garbage"), NonceCheck::Invalid);
        assert_eq!(issuer.check("example.com", client, "1.2.3"), NonceCheck::Invalid);
        assert_ne!(issuer.issue("example.com", client), issuer.issue("example.com", client), "never twice");
    }

    #[test]
    fn a_nonce_answered_from_another_address_is_invalid() {
        let issuer = NonceIssuer::new("secret");
        let nonce = issuer.issue("example.com", ip("192.0.2.10"));
        assert_eq!(issuer.check("example.com", ip("192.0.2.11"), &nonce), NonceCheck::Invalid);
        assert_eq!(issuer.check("example.com", ip("2001:db8::10"), &nonce), NonceCheck::Invalid);
        // Forging the address part does not help: the MAC covers it.
        let forged = nonce.replacen('.', ".0", 1);
        assert_eq!(issuer.check("example.com", ip("192.0.2.10"), &forged), NonceCheck::Invalid);
    }

    #[test]
    fn each_nonce_count_is_accepted_once_and_only_upwards() {
        let issuer = NonceIssuer::new("secret");
        let ledger = NonceLedger::new(16, NONCE_LIFETIME);
        let nonce = issuer.issue("example.com", ip("192.0.2.10"));
        assert_eq!(ledger.record(&nonce, 1), NonceUse::Fresh);
        assert_eq!(ledger.record(&nonce, 1), NonceUse::Replayed, "the same count twice");
        assert_eq!(ledger.record(&nonce, 3), NonceUse::Fresh, "counts may skip");
        assert_eq!(ledger.record(&nonce, 2), NonceUse::Replayed, "but never go back");
        let other = issuer.issue("example.com", ip("192.0.2.10"));
        assert_eq!(ledger.record(&other, 1), NonceUse::Fresh, "another nonce has its own count");
        assert_eq!(ledger.len(), 2);
    }

    #[test]
    fn a_full_ledger_forgets_the_oldest_nonces_as_stale_never_as_fresh() {
        let issuer = NonceIssuer::new("secret");
        let ledger = NonceLedger::new(2, NONCE_LIFETIME);
        let now = NonceIssuer::now();
        let client = ip("192.0.2.10");
        let first = issuer.issue_at("example.com", client, now - 30);
        let second = issuer.issue_at("example.com", client, now - 20);
        let third = issuer.issue_at("example.com", client, now - 10);
        let unused_old = issuer.issue_at("example.com", client, now - 40);
        assert_eq!(ledger.record_at(&first, 1, now), NonceUse::Fresh);
        assert_eq!(ledger.record_at(&second, 1, now), NonceUse::Fresh);
        assert_eq!(ledger.record_at(&third, 1, now), NonceUse::Fresh, "evicts the first");
        assert_eq!(ledger.len(), 2);
        assert_eq!(ledger.record_at(&first, 1, now), NonceUse::Forgotten, "not a replay opportunity");
        assert_eq!(ledger.record_at(&unused_old, 1, now), NonceUse::Forgotten, "older than the floor");
        assert_eq!(ledger.record_at(&second, 1, now), NonceUse::Replayed, "still remembered");
        // Past their lifetime entries are dropped (the issuer calls such nonces stale).
        let later = now + NONCE_LIFETIME.as_secs() + 60;
        let fresh = issuer.issue_at("example.com", client, later);
        assert_eq!(ledger.record_at(&fresh, 1, later), NonceUse::Fresh);
        assert_eq!(ledger.len(), 1);
    }

    #[test]
    fn the_nonce_count_and_the_uri_are_read_from_the_response() {
        let header = |extra: &str| {
            DigestResponse::parse(&format!(
                r#"Digest username="alice", realm="r", nonce="n", uri="sip:+12025550100@r", response="x"{extra}"#
            ))
            .expect("a digest header")
        };
        assert_eq!(header(", qop=auth, nc=0000000a, cnonce=\"c\"").nonce_count(), Some(10));
        assert_eq!(header("").nonce_count(), Some(1), "without qop the nonce is single-use");
        assert_eq!(header(", qop=auth, cnonce=\"c\"").nonce_count(), None);
        assert_eq!(header(", qop=auth, nc=00000000, cnonce=\"c\"").nonce_count(), None);
        assert_eq!(header(", qop=auth, nc=zz, cnonce=\"c\"").nonce_count(), None);
        let response = header("");
        let none = |_: &str| None;
        assert!(response.uri_matches("sip:+12025550100@r", none));
        assert!(!response.uri_matches("sip:+12025550199@r", none), "another number");
        assert!(!response.uri_matches("sip:+12025550199@r", |_| Some("sip:+12025550100@r".to_owned())));
        assert!(response.uri_matches("SIP:+12025550100@r", |_| Some("SIP:+12025550100@r".to_owned())));
    }

    #[test]
    fn non_digest_headers_are_not_parsed() {
        assert_eq!(DigestResponse::parse("Basic dXNlcjpwYXNz"), None);
        assert_eq!(DigestResponse::parse("Digest realm=\"x\""), None, "fields missing");
    }
}
