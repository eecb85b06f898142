//! Failed logins, counted per e-mail and per client address: past a limit, further attempts
//! are refused (429 with `Retry-After`) before the password is hashed, so guessing costs the
//! attacker time and costs the platform nothing.
//!
//! Every password check (`POST`/`GET /rest/auth`, `Authorization: Basic` on any endpoint)
//! goes through [`LoginLimiter::begin`]. The counters are fixed windows of
//! [`LOGIN_FAILURE_WINDOW`] starting at the first failure.
//!
//! Lock-out and its trade-offs:
//!
//! - **Per e-mail** ([`MAX_FAILURES_PER_EMAIL`]): stops a slow guess at one account from many
//!   addresses. Anyone can trip it for any e-mail, so an address that logged in to that
//!   account successfully within [`TRUSTED_PAIR_TTL`] is exempt: an attacker elsewhere cannot
//!   lock the owner out of their usual address (their API tokens and JWTs are never affected).
//!   A right password also clears the e-mail's count (the failures were the owner's typos).
//! - **Per client address** ([`MAX_FAILURES_PER_IP`]; IPv6 per /64, what one host usually
//!   gets): stops one address spraying guesses over many e-mails. A successful login from the
//!   address clears its count, so people behind one NAT are not locked out by a colleague's
//!   typos — the price is that an attacker who owns an account can clear its own address's
//!   count by logging in to it; the per-e-mail limit still bounds the guesses at each victim.
//!   Behind a reverse proxy every client has the proxy's address: the per-address limit then
//!   counts everyone together (serve the API directly, or raise the limit).
//! - Without the client's address (the router not served with
//!   `into_make_service_with_connect_info::<SocketAddr>()`) only the per-e-mail limit applies.
//!
//! Memory is bounded: each table holds at most [`MAX_TRACKED`] entries; when full, expired
//! entries are dropped and then the oldest. Counters live in this process: several API
//! nodes each count on their own.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long failures are remembered (the window starts at the first failure).
pub const LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Failed logins for one e-mail within the window before further attempts are refused.
pub const MAX_FAILURES_PER_EMAIL: u32 = 10;

/// Failed logins from one client address (IPv6: one /64) within the window before further
/// attempts are refused, whatever the e-mail.
pub const MAX_FAILURES_PER_IP: u32 = 50;

/// How long a successful login exempts its (e-mail, address) pair from the e-mail's lock-out.
pub const TRUSTED_PAIR_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Most entries in each table (e-mails, addresses, trusted pairs): about 100 bytes each.
pub const MAX_TRACKED: usize = 100_000;

/// Longest e-mail kept as a key; longer ones (no account has one: RFC 5321 caps an address
/// at 254) are cut, which only makes them share a counter.
const MAX_EMAIL_KEY: usize = 320;

/// A client address as counted (failed logins, sign-ups): IPv4 as is, IPv6 cut to its /64,
/// IPv4-mapped IPv6 as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct IpKey(IpAddr);

impl IpKey {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey(IpAddr::V4(v4)),
                None => IpKey(IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into())),
            },
        }
    }
}

/// Failures in the current window.
#[derive(Debug, Clone, Copy)]
struct Counter {
    count: u32,
    started: Instant,
}

/// The limits a [`LoginLimiter`] applies; the default is the constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// [`LOGIN_FAILURE_WINDOW`].
    pub window: Duration,
    /// [`MAX_FAILURES_PER_EMAIL`].
    pub per_email: u32,
    /// [`MAX_FAILURES_PER_IP`].
    pub per_ip: u32,
    /// [`TRUSTED_PAIR_TTL`].
    pub trusted_for: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            window: LOGIN_FAILURE_WINDOW,
            per_email: MAX_FAILURES_PER_EMAIL,
            per_ip: MAX_FAILURES_PER_IP,
            trusted_for: TRUSTED_PAIR_TTL,
        }
    }
}

/// The failure counters of one process.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    limits: LoginLimits,
    tables: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    emails: HashMap<String, Counter>,
    ips: HashMap<IpKey, Counter>,
    /// (e-mail, address) → when it last logged in successfully.
    trusted: HashMap<(String, IpKey), Instant>,
}

/// Why an attempt was refused: which limit, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// `"for this e-mail"` or `"from this address"`.
    pub scope: &'static str,
    pub retry_after: Duration,
}

impl From<Refused> for crate::error::ApiError {
    fn from(r: Refused) -> Self {
        // Rounded up: a client that waits exactly this long is heard.
        let secs = r.retry_after.as_secs() + u64::from(r.retry_after.subsec_nanos() > 0);
        crate::error::ApiError::TooManyFailures { scope: r.scope, retry_after_secs: secs.max(1) }
    }
}

/// One password check that passed the limits. Call [`Attempt::succeeded`] or
/// [`Attempt::failed`]; dropped without either (the check could not run: the store failed,
/// the hashing queue was full), it counts for nothing.
///
/// Only finished failures count, so attempts already being checked when the limit is reached
/// are still heard: at most [`crate::password_gate::PASSWORD_HASH_PERMITS`] +
/// [`crate::password_gate::PASSWORD_HASH_QUEUE`] of them. Counting attempts in flight would
/// close that gap but refuse a client that legitimately sends Basic credentials on several
/// requests at once.
#[must_use = "say how the attempt ended"]
#[derive(Debug)]
pub struct Attempt {
    limiter: Arc<LoginLimiter>,
    email: String,
    ip: Option<IpKey>,
    started: Instant,
}

impl LoginLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters with other limits (tests use small ones).
    pub fn with_limits(limits: LoginLimits) -> Self {
        LoginLimiter { limits, tables: Mutex::default() }
    }

    /// The limits applied.
    pub fn limits(&self) -> LoginLimits {
        self.limits
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a password check for `email` from `ip`, or refuses it without one.
    pub fn begin(self: &Arc<Self>, email: &str, ip: Option<IpAddr>) -> Result<Attempt, Refused> {
        self.begin_at(email, ip, Instant::now())
    }

    fn begin_at(self: &Arc<Self>, email: &str, ip: Option<IpAddr>, now: Instant) -> Result<Attempt, Refused> {
        let email = email_key(email);
        let ip = ip.map(IpKey::of);
        let l = self.limits;
        let t = self.tables();
        if let Some(ip) = ip
            && let Some(wait) = blocked(t.ips.get(&ip), l.per_ip, l.window, now)
        {
            return Err(Refused { scope: "from this address", retry_after: wait });
        }
        let trusted = ip
            .and_then(|ip| t.trusted.get(&(email.clone(), ip)))
            .is_some_and(|at| now.saturating_duration_since(*at) < l.trusted_for);
        if !trusted && let Some(wait) = blocked(t.emails.get(&email), l.per_email, l.window, now) {
            return Err(Refused { scope: "for this e-mail", retry_after: wait });
        }
        Ok(Attempt { limiter: self.clone(), email, ip, started: now })
    }

    /// Current count for `email` (tests and diagnostics).
    pub fn email_failures(&self, email: &str) -> u32 {
        let now = Instant::now();
        let window = self.limits.window;
        self.tables().emails.get(&email_key(email)).filter(|c| live(c, window, now)).map_or(0, |c| c.count)
    }
}

impl Attempt {
    /// The password was right: the address's and the e-mail's counts are cleared (this attempt
    /// with them) and the pair is trusted for [`LoginLimits::trusted_for`].
    pub fn succeeded(mut self) {
        let now = self.started;
        let trusted_for = self.limiter.limits.trusted_for;
        let mut t = self.limiter.tables();
        t.emails.remove(&self.email);
        if let Some(ip) = self.ip {
            t.ips.remove(&ip);
            let key = (std::mem::take(&mut self.email), ip);
            if !t.trusted.contains_key(&key) && t.trusted.len() >= MAX_TRACKED {
                make_room(&mut t.trusted, |at| now.saturating_duration_since(*at) >= trusted_for, |at| *at);
            }
            t.trusted.insert(key, now);
        }
    }

    /// The e-mail or password was wrong: counted for the e-mail and the address.
    pub fn failed(self) {
        let now = self.started;
        let mut t = self.limiter.tables();
        let window = self.limiter.limits.window;
        bump(&mut t.emails, self.email, window, now);
        if let Some(ip) = self.ip {
            bump(&mut t.ips, ip, window, now);
        }
    }
}

fn email_key(email: &str) -> String {
    let mut key = email.trim().to_lowercase();
    if key.len() > MAX_EMAIL_KEY {
        let mut cut = MAX_EMAIL_KEY;
        while !key.is_char_boundary(cut) {
            cut -= 1;
        }
        key.truncate(cut);
    }
    key
}

fn live(c: &Counter, window: Duration, now: Instant) -> bool {
    now.saturating_duration_since(c.started) < window
}

/// How long until `counter` lets attempts in again, when it is at `max`.
fn blocked(counter: Option<&Counter>, max: u32, window: Duration, now: Instant) -> Option<Duration> {
    let c = counter.filter(|c| live(c, window, now) && c.count >= max)?;
    Some(window.saturating_sub(now.saturating_duration_since(c.started)))
}

fn bump<K: Hash + Eq + Clone>(table: &mut HashMap<K, Counter>, key: K, window: Duration, now: Instant) {
    if !table.contains_key(&key) && table.len() >= MAX_TRACKED {
        make_room(table, |c| !live(c, window, now), |c| c.started);
    }
    let c = table.entry(key).or_insert(Counter { count: 0, started: now });
    if !live(c, window, now) {
        *c = Counter { count: 0, started: now };
    }
    c.count = c.count.saturating_add(1);
}

/// Frees one slot in a full table: drops expired entries, else the oldest one.
fn make_room<K: Hash + Eq + Clone, V>(
    table: &mut HashMap<K, V>,
    expired: impl Fn(&V) -> bool,
    age: impl Fn(&V) -> Instant,
) {
    table.retain(|_, v| !expired(v));
    if table.len() >= MAX_TRACKED
        && let Some(oldest) = table.iter().min_by_key(|(_, v)| age(v)).map(|(k, _)| k.clone())
    {
        table.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn failures_per_email_lock_it_until_the_window_ends() {
        let l = Arc::new(LoginLimiter::new());
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES_PER_EMAIL {
            // Each from a different address, so only the e-mail's counter can refuse.
            l.begin_at("Ana@Example.com ", ip(&format!("192.0.2.{i}")), t0).unwrap().failed();
        }
        let refused =
            l.begin_at("ana@example.com", ip("198.51.100.1"), t0 + Duration::from_secs(60)).unwrap_err();
        assert_eq!(refused.scope, "for this e-mail");
        assert_eq!(refused.retry_after, LOGIN_FAILURE_WINDOW - Duration::from_secs(60));
        // Another e-mail is not affected; after the window the e-mail is heard again.
        l.begin_at("bo@example.com", None, t0).unwrap().failed();
        l.begin_at("ana@example.com", None, t0 + LOGIN_FAILURE_WINDOW).unwrap().failed();
    }

    #[test]
    fn failures_per_address_count_ipv6_per_64_and_a_success_clears_them() {
        let l = Arc::new(LoginLimiter::new());
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES_PER_IP {
            l.begin_at(&format!("u{i}@example.com"), ip(&format!("2001:db8:1:2::{i:x}")), t0)
                .unwrap()
                .failed();
        }
        let refused = l.begin_at("new@example.com", ip("2001:db8:1:2:ffff::1"), t0).unwrap_err();
        assert_eq!(refused.scope, "from this address");
        l.begin_at("new@example.com", ip("2001:db8:1:3::1"), t0).unwrap().failed();

        let l = Arc::new(LoginLimiter::new());
        for i in 0..MAX_FAILURES_PER_IP - 1 {
            l.begin_at(&format!("u{i}@example.com"), ip("203.0.113.9"), t0).unwrap().failed();
        }
        l.begin_at("owner@example.com", ip("203.0.113.9"), t0).unwrap().succeeded();
        for i in 0..MAX_FAILURES_PER_IP - 1 {
            l.begin_at(&format!("v{i}@example.com"), ip("203.0.113.9"), t0).unwrap().failed();
        }
    }

    #[test]
    fn a_trusted_address_is_not_locked_out_by_failures_elsewhere() {
        let l = Arc::new(LoginLimiter::new());
        let t0 = Instant::now();
        l.begin_at("ana@example.com", ip("203.0.113.1"), t0).unwrap().succeeded();
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            l.begin_at("ana@example.com", ip("198.51.100.7"), t0).unwrap().failed();
        }
        assert!(l.begin_at("ana@example.com", ip("198.51.100.8"), t0).is_err());
        assert!(l.begin_at("ana@example.com", None, t0).is_err());
        l.begin_at("ana@example.com", ip("203.0.113.1"), t0).unwrap().failed();
        // The trust expires.
        let late = t0 + TRUSTED_PAIR_TTL;
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            l.begin_at("ana@example.com", ip("198.51.100.7"), late).unwrap().failed();
        }
        assert!(l.begin_at("ana@example.com", ip("203.0.113.1"), late).is_err());
    }

    #[test]
    fn only_finished_failures_count() {
        let l = Arc::new(LoginLimiter::new());
        let t0 = Instant::now();
        // Concurrent checks (a client sending Basic credentials on parallel requests).
        let pending: Vec<Attempt> = (0..2 * MAX_FAILURES_PER_EMAIL)
            .map(|_| l.begin_at("ana@example.com", None, t0).unwrap())
            .collect();
        // Dropped unfinished (the store failed): nothing counted.
        drop(pending);
        assert_eq!(l.email_failures("ana@example.com"), 0);
        l.begin_at("ana@example.com", None, t0).unwrap().failed();
        assert_eq!(l.email_failures("ana@example.com"), 1);
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        let e: crate::error::ApiError =
            Refused { scope: "for this e-mail", retry_after: Duration::from_millis(1500) }.into();
        assert_eq!(e.retry_after_secs(), Some(2));
        let e: crate::error::ApiError = Refused { scope: "x", retry_after: Duration::ZERO }.into();
        assert_eq!(e.retry_after_secs(), Some(1));
    }
}
