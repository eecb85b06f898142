//! The egress policy: which addresses one kind of outbound request may reach.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::{AllowEntryError, Allowed, is_public};

/// The platform's own addresses (its advertised SIP/RTP address, its API's public address):
/// refused like private ones even though they are public, so a customer's URL cannot make the
/// platform call itself. Set once at start ([`set_own_addresses`]).
static OWN_ADDRESSES: OnceLock<Vec<IpAddr>> = OnceLock::new();

/// Records the platform's own public addresses, refused by every [`Policy`] that does not
/// allow private destinations. Only the first call counts (the server calls it at start).
pub fn set_own_addresses(addresses: Vec<IpAddr>) {
    let _ = OWN_ADDRESSES.set(addresses);
}

fn is_own(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    OWN_ADDRESSES.get().is_some_and(|own| own.contains(&ip))
}

/// Most `host:port` approvals remembered (addresses that the allow-list's `host:port` entries
/// resolved to); each entry is an operator's, so this is never reached in practice.
const MAX_APPROVED: usize = 4096;

/// Which destinations one kind of request may reach: public addresses (not the platform's
/// own), plus the operator's exceptions. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    allow_private: bool,
    allow: Vec<Allowed>,
    /// Addresses with ports that a `host:port` entry's host resolved to: the connection check
    /// sees only the address, not the name the request used.
    approved: Mutex<HashSet<SocketAddr>>,
}

impl Policy {
    /// Public destinations only.
    pub fn public_only() -> Self {
        Self::default()
    }

    /// Any destination: for URLs the operator configured (an identity provider, a speech
    /// provider on the same host), or tests.
    pub fn any() -> Self {
        Self { inner: Arc::new(Inner { allow_private: true, ..Inner::default() }) }
    }

    /// `allow_private` and allow-list entries as the config writes them (`10.0.0.0/8`,
    /// `hooks.internal:8080`).
    pub fn new(allow_private: bool, allow: &[String]) -> Result<Self, AllowEntryError> {
        let allow = allow.iter().map(|entry| Allowed::parse(entry)).collect::<Result<_, _>>()?;
        Ok(Self::with_entries(allow_private, allow))
    }

    /// Like [`Policy::new`] with parsed entries.
    pub fn with_entries(allow_private: bool, allow: Vec<Allowed>) -> Self {
        Self { inner: Arc::new(Inner { allow_private, allow, approved: Mutex::default() }) }
    }

    /// Whether every destination is allowed.
    pub fn allows_private(&self) -> bool {
        self.inner.allow_private
    }

    /// Whether `ip` may be reached whatever name and port led there: public and not the
    /// platform's own, or allowed by a network entry.
    pub fn permits_address(&self, ip: IpAddr) -> bool {
        self.inner.allow_private
            || (is_public(ip) && !is_own(ip))
            || self
                .inner
                .allow
                .iter()
                .any(|entry| matches!(entry, Allowed::Network { .. }) && entry.covers("", 0, ip))
    }

    /// Whether a request naming `host` on `port` may go to `ip`.
    pub fn permits(&self, host: &str, port: u16, ip: IpAddr) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.permits_address(ip) || self.inner.allow.iter().any(|entry| entry.covers(host, port, ip))
    }

    /// Checks the addresses a name resolved to (the port is not known yet). Any refused address
    /// refuses the name: a host that mixes public and private answers is what a rebinding attack
    /// looks like. Addresses allowed by a `host:port` entry are remembered with that port for
    /// [`Policy::permits_connection`].
    pub(crate) fn check_resolved(&self, host: &str, addresses: &[IpAddr]) -> Result<(), IpAddr> {
        let host = host.trim_end_matches('.');
        let entry_ports: Vec<u16> = self
            .inner
            .allow
            .iter()
            .filter_map(|entry| match entry {
                Allowed::HostPort { host: allowed, port } if allowed.eq_ignore_ascii_case(host) => {
                    Some(*port)
                }
                _ => None,
            })
            .collect();
        for ip in addresses {
            if self.permits_address(*ip) {
                continue;
            }
            if entry_ports.is_empty() {
                return Err(*ip);
            }
            self.approve(entry_ports.iter().map(|port| SocketAddr::new(*ip, *port)));
        }
        Ok(())
    }

    /// Checks a URL's host when it is an address literal (reqwest dials those without its
    /// resolver); names are checked when they are resolved.
    pub(crate) fn check_literal(&self, url: &url::Url) -> Result<(), IpAddr> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        if self.permits_address(ip) {
            return Ok(());
        }
        if self.permits(&ip.to_string(), port, ip) {
            self.approve([SocketAddr::new(ip, port)]);
            return Ok(());
        }
        Err(ip)
    }

    /// Whether a connection made to `address` is one this policy allows: the last check, of
    /// the address the socket is actually connected to.
    pub(crate) fn permits_connection(&self, address: SocketAddr) -> bool {
        self.permits_address(address.ip()) || self.inner.approved.lock().contains(&address)
    }

    fn approve(&self, addresses: impl IntoIterator<Item = SocketAddr>) {
        let mut approved = self.inner.approved.lock();
        for address in addresses {
            if approved.len() >= MAX_APPROVED {
                approved.clear();
            }
            approved.insert(address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_and_entries() {
        let policy = Policy::new(false, &["10.1.0.0/16".to_owned(), "hooks.internal:8080".to_owned()])
            .expect("policy");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(policy.permits_address(ip("8.8.8.8")));
        assert!(policy.permits_address(ip("10.1.2.3")));
        assert!(!policy.permits_address(ip("10.2.0.1")));
        assert!(!policy.permits_address(ip("127.0.0.1")));
        assert_eq!(
            policy.check_resolved("evil.example", &[ip("8.8.8.8"), ip("127.0.0.1")]),
            Err(ip("127.0.0.1"))
        );
        assert_eq!(policy.check_resolved("hooks.internal", &[ip("10.9.9.9")]), Ok(()));
        assert!(policy.permits_connection("10.9.9.9:8080".parse().expect("addr")));
        assert!(!policy.permits_connection("10.9.9.9:8081".parse().expect("addr")));
        let literal = url::Url::parse("http://127.0.0.1:9/").expect("url");
        assert_eq!(policy.check_literal(&literal), Err(ip("127.0.0.1")));
        assert_eq!(Policy::any().check_literal(&literal), Ok(()));
    }

    #[test]
    fn the_platforms_own_public_address_is_refused_unless_allowed() {
        // The only test of this crate that sets the own addresses (a process-wide value).
        set_own_addresses(vec!["9.9.9.9".parse().expect("ip")]);
        let own = "::ffff:9.9.9.9".parse::<IpAddr>().expect("ip");
        assert!(!Policy::public_only().permits_address(own));
        assert!(!Policy::public_only().permits_address("9.9.9.9".parse().expect("ip")));
        assert!(Policy::any().permits_address(own));
        assert!(Policy::new(false, &["9.9.9.0/24".to_owned()]).expect("policy").permits_address(own));
    }
}
