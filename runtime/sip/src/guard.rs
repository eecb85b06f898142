//! Failed digest attempts, counted per source IP and per user, and the bans they earn (in the
//! manner of Kamailio's pike or fail2ban, inside the process).
//!
//! - **Per source IP:** [`AuthLimits::source_max_failures`] failures within
//!   [`AuthLimits::failure_window`] ban the IP for [`AuthLimits::source_ban`]. A banned IP's
//!   requests outside existing dialogs are dropped without an answer (UDP and TCP alike): a
//!   scanner learns nothing, no answer goes to an address that may be spoofed, and the
//!   transaction costs nothing more. Requests of dialogs established before the ban (BYE, ACK,
//!   re-INVITE) are still served, so a call in progress ends cleanly. Addresses the platform
//!   trusts (carriers, SIP connections by address: `InboundHandler::trusted_source`) are never
//!   banned: their calls skip digest anyway, and a ban would only cut a carrier off.
//! - **Per user (`user@realm`):** [`AuthLimits::user_max_failures`] failures within the window,
//!   from any number of addresses, lock the user for [`AuthLimits::user_lock`] — but only
//!   against addresses the user has not authenticated from lately. A distributed guesser is
//!   stopped, while the user's own phones (addresses it authenticated from within
//!   [`KNOWN_SOURCE_TTL`]) keep working: an attacker cannot lock the real user out. A locked
//!   user's attempts from other addresses are answered 403 without checking the password (no
//!   oracle), and count as failures of their source.
//!
//! What counts as a failure: a response that does not verify (wrong password, unknown user,
//! another user's name), a `uri` that is not the Request-URI. What does not: a request without
//! credentials (the first half of every normal exchange), a nonce that is stale, unknown or
//! already used (answered with a fresh challenge, as after a restart).
//!
//! Every table is bounded; see [`AuthLimits`]. Counting is a fixed window opened by the first
//! failure: a few bytes per address, however many failures.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use tracing::warn;

/// Addresses remembered per user as ones it authenticated from (the most recent win).
pub const KNOWN_SOURCES_PER_USER: usize = 8;
/// How long an address a user authenticated from stays trusted for it during a user lock.
pub const KNOWN_SOURCE_TTL: Duration = Duration::from_secs(24 * 3600);
/// At most one sweep of idle entries per this interval when a table is full (a sweep walks the
/// whole table).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The event type a ban is reported as on the platform's event bus.
pub const AUTH_BANNED_EVENT: &str = "sip.auth.banned";

/// Limits on digest authentication failures; part of [`crate::SipConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthLimits {
    /// Failures from one IP address within [`AuthLimits::failure_window`] that ban it (20).
    pub source_max_failures: u32,
    /// The window failures are counted in, for sources and users alike (60 s).
    pub failure_window: Duration,
    /// How long a source IP stays banned (10 min).
    pub source_ban: Duration,
    /// Failures for one user, from any addresses, within the window that lock it against new
    /// addresses (10).
    pub user_max_failures: u32,
    /// How long a user stays locked against addresses it has not authenticated from (2 min).
    pub user_lock: Duration,
    /// Source addresses tracked at once (65 536, about 64 bytes each). When full, idle entries
    /// are swept, then an unbanned entry is forgotten (its count starts over).
    pub max_tracked_sources: usize,
    /// Users tracked at once (65 536). Only users that exist are tracked, so a scanner trying
    /// names cannot fill it.
    pub max_tracked_users: usize,
    /// Used nonces remembered (see [`crate::digest::NonceLedger`]).
    pub max_tracked_nonces: usize,
    /// How long a nonce may be answered ([`crate::digest::NONCE_LIFETIME`], 5 min).
    pub nonce_lifetime: Duration,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            source_max_failures: 20,
            failure_window: Duration::from_secs(60),
            source_ban: Duration::from_secs(600),
            user_max_failures: 10,
            user_lock: Duration::from_secs(120),
            max_tracked_sources: 65_536,
            max_tracked_users: 65_536,
            max_tracked_nonces: crate::digest::DEFAULT_MAX_TRACKED_NONCES,
            nonce_lifetime: crate::digest::NONCE_LIFETIME,
        }
    }
}

/// What was banned: a source address, or a user against new addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanScope {
    /// The source IP's requests are dropped until `until`.
    Source,
    /// The user cannot authenticate from addresses it has not used lately until `until`.
    User,
}

/// A ban that just started: reported once, as [`AUTH_BANNED_EVENT`], to
/// [`crate::InboundHandler::on_auth_ban`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthBan {
    /// What is banned.
    pub scope: BanScope,
    /// The banned address ([`BanScope::Source`]), or the address whose failure locked the user.
    pub source: IpAddr,
    /// `user@realm`: the user locked, or the last user the banned source tried (if it named
    /// one that exists).
    pub user: Option<String>,
    /// Failures counted in the window that led to the ban.
    pub failures: u32,
    /// When the ban ends.
    pub until: SystemTime,
}

/// Failures in a fixed window opened by the first one.
#[derive(Debug, Clone, Copy)]
struct Window {
    opened: Instant,
    failures: u32,
}

impl Window {
    /// Count one failure at `now`; returns the count in the current window.
    fn count(window: &mut Option<Window>, now: Instant, length: Duration) -> u32 {
        match window {
            Some(open) if now.saturating_duration_since(open.opened) <= length => {
                open.failures = open.failures.saturating_add(1);
                open.failures
            }
            _ => {
                *window = Some(Window { opened: now, failures: 1 });
                1
            }
        }
    }

    fn is_open(window: &Option<Window>, now: Instant, length: Duration) -> bool {
        window.is_some_and(|open| now.saturating_duration_since(open.opened) <= length)
    }
}

/// Failures in the current window, and the ban they earned.
#[derive(Debug, Default)]
struct Strikes {
    window: Option<Window>,
    until: Option<Instant>,
}

impl Strikes {
    /// Count one failure; when it reaches `max` and no ban is on, start one of `length`:
    /// returns the failures and the ban's end.
    fn strike(
        &mut self,
        now: Instant,
        limits: &AuthLimits,
        max: u32,
        length: Duration,
    ) -> Option<(u32, Instant)> {
        let failures = Window::count(&mut self.window, now, limits.failure_window);
        if failures < max || in_force(self.until, now) {
            return None;
        }
        let until = now + length;
        self.until = Some(until);
        Some((failures, until))
    }

    /// Whether it still matters at `now`: idle ones may be dropped when a table is full.
    fn active(&self, now: Instant, limits: &AuthLimits) -> bool {
        in_force(self.until, now) || Window::is_open(&self.window, now, limits.failure_window)
    }
}

#[derive(Debug, Default)]
struct UserRecord {
    strikes: Strikes,
    /// Addresses the user authenticated from, with when it last did.
    known: Vec<(IpAddr, Instant)>,
}

impl UserRecord {
    fn active(&self, now: Instant, limits: &AuthLimits) -> bool {
        self.strikes.active(now, limits)
            || self.known.iter().any(|(_, at)| now.saturating_duration_since(*at) <= KNOWN_SOURCE_TTL)
    }
}

#[derive(Debug)]
struct GuardState {
    sources: HashMap<IpAddr, Strikes>,
    users: HashMap<String, UserRecord>,
    last_sweep: Option<Instant>,
}

impl GuardState {
    /// The record of `source`, made when there is room for it.
    fn source(&mut self, source: IpAddr, limits: &AuthLimits, now: Instant) -> Option<&mut Strikes> {
        let room = self.sources.contains_key(&source)
            || make_room(
                &mut self.sources,
                limits.max_tracked_sources,
                &mut self.last_sweep,
                |record| record.active(now, limits),
                |record| !in_force(record.until, now),
                now,
            );
        room.then(|| self.sources.entry(source).or_default())
    }

    /// The record of `user`, made when there is room for it.
    fn user(&mut self, user: &str, limits: &AuthLimits, now: Instant) -> Option<&mut UserRecord> {
        let room = self.users.contains_key(user)
            || make_room(
                &mut self.users,
                limits.max_tracked_users,
                &mut self.last_sweep,
                |record| record.active(now, limits),
                |record| !in_force(record.strikes.until, now),
                now,
            );
        room.then(|| self.users.entry(user.to_owned()).or_default())
    }
}

/// Counts failures and keeps the bans. One lock; every operation is short.
#[derive(Debug)]
pub(crate) struct AuthGuard {
    limits: AuthLimits,
    state: Mutex<GuardState>,
}

/// Make room for one more entry in a full table: sweep idle entries (at most once per
/// [`SWEEP_INTERVAL`]), then forget one entry `evictable` allows. `false` when nothing could
/// go (every entry is an active ban): the newcomer is then not tracked.
fn make_room<K: Eq + Hash + Clone, V>(
    table: &mut HashMap<K, V>,
    capacity: usize,
    last_sweep: &mut Option<Instant>,
    active: impl Fn(&V) -> bool,
    evictable: impl Fn(&V) -> bool,
    now: Instant,
) -> bool {
    if table.len() < capacity {
        return true;
    }
    if last_sweep.is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_INTERVAL) {
        *last_sweep = Some(now);
        table.retain(|_, value| active(value));
    }
    if table.len() < capacity {
        return true;
    }
    let victim = table.iter().find(|(_, value)| evictable(value)).map(|(key, _)| key.clone());
    match victim {
        Some(key) => {
            table.remove(&key);
            true
        }
        None => false,
    }
}

/// Whether a ban or lock ending at `until` is still on at `now`.
fn in_force(until: Option<Instant>, now: Instant) -> bool {
    until.is_some_and(|until| until > now)
}

fn wall_clock(until: Instant, now: Instant) -> SystemTime {
    SystemTime::now() + until.saturating_duration_since(now)
}

impl AuthGuard {
    pub(crate) fn new(limits: AuthLimits) -> Self {
        AuthGuard {
            limits,
            state: Mutex::new(GuardState {
                sources: HashMap::new(),
                users: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    /// Whether `source` is banned at `now`.
    pub(crate) fn source_banned(&self, source: IpAddr, now: Instant) -> bool {
        self.state.lock().sources.get(&source).is_some_and(|record| in_force(record.until, now))
    }

    /// Whether `user` may try to authenticate from `source`: not locked, or locked but
    /// `source` is one of its recent addresses.
    pub(crate) fn user_admits(&self, user: &str, source: IpAddr, now: Instant) -> bool {
        let state = self.state.lock();
        let Some(record) = state.users.get(user) else { return true };
        if !in_force(record.strikes.until, now) {
            return true;
        }
        record
            .known
            .iter()
            .any(|(ip, at)| *ip == source && now.saturating_duration_since(*at) <= KNOWN_SOURCE_TTL)
    }

    /// Count a failed attempt from `source` (unless `count_source` is false: a trusted
    /// address), as `user` when it names a user that exists and `count_user` (a locked user's
    /// refused attempts count only for their source). Returns the bans it started (logged here,
    /// once each).
    pub(crate) fn failure(
        &self,
        source: IpAddr,
        user: Option<&str>,
        (count_source, count_user): (bool, bool),
        now: Instant,
    ) -> Vec<AuthBan> {
        let limits = &self.limits;
        let mut bans = Vec::new();
        let mut state = self.state.lock();
        let struck = if count_source {
            state
                .source(source, limits, now)
                .and_then(|record| record.strike(now, limits, limits.source_max_failures, limits.source_ban))
        } else {
            None
        };
        if let Some((failures, until)) = struck {
            let user = user.map(str::to_owned);
            let until = wall_clock(until, now);
            bans.push(AuthBan { scope: BanScope::Source, source, user, failures, until });
        }
        if let Some(user) = user.filter(|_| count_user) {
            let struck = state.user(user, limits, now).and_then(|record| {
                record.strikes.strike(now, limits, limits.user_max_failures, limits.user_lock)
            });
            if let Some((failures, until)) = struck {
                let user = Some(user.to_owned());
                let until = wall_clock(until, now);
                bans.push(AuthBan { scope: BanScope::User, source, user, failures, until });
            }
        }
        drop(state);
        for ban in &bans {
            let seconds = match ban.scope {
                BanScope::Source => limits.source_ban.as_secs(),
                BanScope::User => limits.user_lock.as_secs(),
            };
            warn!(
                event = AUTH_BANNED_EVENT,
                scope = ?ban.scope,
                source = %ban.source,
                user = ban.user.as_deref().unwrap_or("-"),
                failures = ban.failures,
                seconds,
                "SIP authentication failures: banned"
            );
        }
        bans
    }

    /// Remember that `user` authenticated from `source`.
    pub(crate) fn success(&self, source: IpAddr, user: &str, now: Instant) {
        let mut state = self.state.lock();
        let Some(record) = state.user(user, &self.limits, now) else { return };
        record
            .known
            .retain(|(ip, at)| *ip != source && now.saturating_duration_since(*at) <= KNOWN_SOURCE_TTL);
        if record.known.len() >= KNOWN_SOURCES_PER_USER {
            // The least recently used address goes.
            if let Some(oldest) =
                record.known.iter().enumerate().min_by_key(|(_, (_, at))| *at).map(|(i, _)| i)
            {
                record.known.remove(oldest);
            }
        }
        record.known.push((source, now));
    }

    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.sources.len(), state.users.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP address")
    }

    #[test]
    fn a_source_is_banned_at_the_nth_failure_in_the_window_and_reported_once() {
        let guard = AuthGuard::new(AuthLimits::default());
        let now = Instant::now();
        let attacker = ip("192.0.2.66");
        for n in 1..20 {
            assert!(
                guard.failure(attacker, Some("alice@acme"), (true, false), now).is_empty(),
                "failure {n}"
            );
            assert!(!guard.source_banned(attacker, now));
        }
        let bans = guard.failure(attacker, Some("alice@acme"), (true, false), now);
        assert_eq!(bans.len(), 1);
        assert_eq!(bans[0].scope, BanScope::Source);
        assert_eq!(bans[0].source, attacker);
        assert_eq!(bans[0].user.as_deref(), Some("alice@acme"));
        assert_eq!(bans[0].failures, 20);
        assert!(bans[0].until > SystemTime::now() + Duration::from_secs(590));
        assert!(guard.source_banned(attacker, now));
        assert!(!guard.source_banned(ip("192.0.2.67"), now), "only that address");
        assert!(guard.failure(attacker, None, (true, false), now).is_empty(), "reported once per ban");
        assert!(guard.source_banned(attacker, now + Duration::from_secs(599)));
        assert!(!guard.source_banned(attacker, now + Duration::from_secs(601)), "bans end");
    }

    #[test]
    fn failures_spread_over_more_than_the_window_do_not_ban() {
        let guard = AuthGuard::new(AuthLimits::default());
        let start = Instant::now();
        let source = ip("192.0.2.7");
        for n in 0..40u64 {
            // One failure every 4 s: at most 16 in any window.
            let bans = guard.failure(source, None, (true, false), start + Duration::from_secs(n * 4));
            assert!(bans.is_empty(), "failure {n}");
        }
        assert!(!guard.source_banned(source, start + Duration::from_secs(160)));
    }

    #[test]
    fn a_locked_user_still_admits_the_addresses_it_used_but_no_new_ones() {
        let guard = AuthGuard::new(AuthLimits::default());
        let now = Instant::now();
        let phone = ip("198.51.100.5");
        guard.success(phone, "alice@acme", now);
        // Ten addresses guess once each: no source is banned, the user is locked.
        let mut bans = Vec::new();
        for n in 1..=10u8 {
            bans.extend(guard.failure(IpAddr::from([203, 0, 113, n]), Some("alice@acme"), (true, true), now));
        }
        assert_eq!(bans.len(), 1, "{bans:?}");
        assert_eq!(bans[0].scope, BanScope::User);
        assert_eq!(bans[0].user.as_deref(), Some("alice@acme"));
        assert!(!guard.user_admits("alice@acme", ip("203.0.113.99"), now), "a new address is refused");
        assert!(guard.user_admits("alice@acme", phone, now), "alice's own phone is not locked out");
        assert!(guard.user_admits("bob@acme", ip("203.0.113.99"), now), "other users are not locked");
        assert!(guard.user_admits("alice@acme", ip("203.0.113.99"), now + Duration::from_secs(121)));
        assert!(!guard.source_banned(ip("203.0.113.1"), now));
    }

    #[test]
    fn a_trusted_address_is_never_banned_but_still_locks_the_user() {
        let guard = AuthGuard::new(AuthLimits::default());
        let now = Instant::now();
        let carrier = ip("192.0.2.200");
        let bans: Vec<AuthBan> =
            (0..30).flat_map(|_| guard.failure(carrier, Some("alice@acme"), (false, true), now)).collect();
        assert!(!guard.source_banned(carrier, now));
        assert_eq!(bans.iter().map(|ban| ban.scope).collect::<Vec<_>>(), vec![BanScope::User]);
    }

    #[test]
    fn tables_stay_bounded_and_keep_their_bans() {
        let limits = AuthLimits {
            max_tracked_sources: 4,
            max_tracked_users: 2,
            source_max_failures: 2,
            ..AuthLimits::default()
        };
        let guard = AuthGuard::new(limits);
        let now = Instant::now();
        let banned = ip("192.0.2.1");
        guard.failure(banned, None, (true, false), now);
        assert_eq!(guard.failure(banned, None, (true, false), now).len(), 1);
        for n in 0..1000u16 {
            let [high, low] = n.to_be_bytes();
            guard.failure(
                IpAddr::from([10, 0, high, low]),
                Some(&format!("user{n}@acme")),
                (true, true),
                now,
            );
            guard.success(IpAddr::from([10, 1, high, low]), &format!("user{n}@acme"), now);
        }
        let (sources, users) = guard.tracked();
        assert!(sources <= 4 && users <= 2, "{sources} sources, {users} users");
        assert!(guard.source_banned(banned, now), "a ban is never evicted for a newcomer's count");
    }
}
