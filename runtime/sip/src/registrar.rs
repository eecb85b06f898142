//! The registrar (RFC 3261 §10): SIP users of the platform's domains REGISTER with digest
//! authentication; their contacts are kept with the address the REGISTER came from, so a user
//! behind NAT is reached where its packets come from, not where its Contact says.
//!
//! Bindings live in memory: a restart asks every user agent to register again (they do, within
//! their expiry). A cluster would keep them in the store; see ARCHITECTURE.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The shortest registration accepted (423 Interval Too Brief below it, RFC 3261 §10.3).
pub const MIN_EXPIRES: u32 = 60;
/// The longest registration granted; longer requests are shortened to it.
pub const MAX_EXPIRES: u32 = 3600;
/// The expiry when the REGISTER names none.
pub const DEFAULT_EXPIRES: u32 = 3600;
/// Contacts one user may have registered at once, unless configured
/// (`SipConfig::max_contacts_per_user`). A stolen credential must not let anyone fork every
/// call to the user into hundreds of legs, nor grow the location service without bound. A
/// REGISTER that would exceed it is refused whole (403 Too Many Contacts) rather than
/// replacing the oldest contact: silently dropping a working phone's binding to make room for
/// an unknown one is worse than telling the newcomer no.
pub const DEFAULT_MAX_CONTACTS_PER_USER: usize = 10;

/// One registered contact of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as the user agent gave it (`sip:alice@192.168.1.20:5062`).
    pub contact: String,
    /// Where the REGISTER came from: where requests to the user are sent.
    pub source: SocketAddr,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// When it lapses.
    pub expires_at: Instant,
}

impl Binding {
    /// Seconds left.
    pub fn expires_in(&self, now: Instant) -> u32 {
        u32::try_from(self.expires_at.saturating_duration_since(now).as_secs()).unwrap_or(u32::MAX)
    }
}

/// A contact of a REGISTER: its URI and the expiry it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContactRequest {
    pub uri: String,
    pub expires: Option<u32>,
}

/// The Contact header values of a REGISTER: `*`, or contacts with optional `expires` params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Contacts {
    Wildcard,
    List(Vec<ContactRequest>),
}

/// The values of a request's Contact headers, in order: what [`parse_contacts`] reads.
pub(crate) fn contact_values(request: &rsipstack::sip::Request) -> Vec<String> {
    request
        .headers
        .iter()
        .filter_map(|header| match header {
            rsipstack::sip::Header::Contact(contact) => Some(contact.value().to_owned()),
            _ => None,
        })
        .collect()
}

/// Split a Contact header value into its contacts (commas inside `<…>` or quotes don't split).
pub(crate) fn parse_contacts(values: &[String]) -> Result<Contacts, String> {
    let mut list = Vec::new();
    for value in values {
        if value.trim() == "*" {
            if values.len() > 1 {
                return Err("Contact: * must be the only contact".to_owned());
            }
            return Ok(Contacts::Wildcard);
        }
        let mut depth = 0i32;
        let mut quoted = false;
        let mut start = 0;
        let bytes = value.as_bytes();
        for (index, byte) in bytes.iter().enumerate() {
            match byte {
                b'"' => quoted = !quoted,
                b'<' if !quoted => depth += 1,
                b'>' if !quoted => depth -= 1,
                b',' if !quoted && depth == 0 => {
                    list.push(parse_contact(&value[start..index])?);
                    start = index + 1;
                }
                _ => {}
            }
        }
        list.push(parse_contact(&value[start..])?);
    }
    Ok(Contacts::List(list))
}

fn parse_contact(text: &str) -> Result<ContactRequest, String> {
    let text = text.trim();
    let (uri, params) = match (text.find('<'), text.find('>')) {
        (Some(open), Some(close)) if open < close => (&text[open + 1..close], &text[close + 1..]),
        (None, None) => match text.find(';') {
            Some(semi) => (&text[..semi], &text[semi..]),
            None => (text, ""),
        },
        _ => return Err(format!("malformed Contact {text:?}")),
    };
    let uri = uri.trim();
    if !(uri.starts_with("sip:") || uri.starts_with("sips:")) {
        return Err(format!("Contact {uri:?} is not a SIP URI"));
    }
    let mut expires = None;
    for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((name, value)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("expires")
        {
            expires = Some(value.trim().parse::<u32>().map_err(|_| format!("bad expires {value:?}"))?);
        }
    }
    Ok(ContactRequest { uri: uri.to_owned(), expires })
}

/// What a REGISTER did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegisterOutcome {
    /// The user's bindings now.
    Bound(Vec<Binding>),
    /// An expiry under [`MIN_EXPIRES`] was asked for.
    TooBrief,
    /// The user would have more than `limit` contacts; nothing changed.
    TooManyContacts { limit: usize },
}

/// The location service.
#[derive(Debug)]
pub struct Registrar {
    bindings: Mutex<HashMap<(String, String), Vec<Binding>>>,
    max_contacts: usize,
}

impl Default for Registrar {
    fn default() -> Self {
        Registrar { bindings: Mutex::default(), max_contacts: DEFAULT_MAX_CONTACTS_PER_USER }
    }
}

impl Registrar {
    /// An empty registrar, with at most [`DEFAULT_MAX_CONTACTS_PER_USER`] contacts a user.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same registrar with at most `limit` contacts a user (at least 1).
    pub fn with_max_contacts(mut self, limit: usize) -> Self {
        self.max_contacts = limit.max(1);
        self
    }

    /// The live contacts of `user@domain`.
    pub fn contacts(&self, domain: &str, user: &str) -> Vec<Binding> {
        let now = Instant::now();
        let mut bindings = self.bindings.lock();
        let key = (domain.to_ascii_lowercase(), user.to_owned());
        let Some(list) = bindings.get_mut(&key) else { return Vec::new() };
        list.retain(|binding| binding.expires_at > now);
        let live = list.clone();
        if list.is_empty() {
            bindings.remove(&key);
        }
        live
    }

    /// Users with at least one live binding.
    pub fn registered_users(&self) -> usize {
        let now = Instant::now();
        self.bindings.lock().values().filter(|list| list.iter().any(|b| b.expires_at > now)).count()
    }

    pub(crate) fn register(
        &self,
        domain: &str,
        user: &str,
        contacts: Contacts,
        header_expires: Option<u32>,
        source: SocketAddr,
        transport: &'static str,
    ) -> RegisterOutcome {
        let now = Instant::now();
        let key = (domain.to_ascii_lowercase(), user.to_owned());
        let mut bindings = self.bindings.lock();
        let current = bindings.entry(key.clone()).or_default();
        current.retain(|binding| binding.expires_at > now);
        // Built aside and stored only when within the cap: a refused REGISTER changes nothing.
        let mut list = current.clone();
        match contacts {
            Contacts::Wildcard => list.clear(),
            Contacts::List(requests) => {
                for request in &requests {
                    let expires = request.expires.or(header_expires).unwrap_or(DEFAULT_EXPIRES);
                    if expires != 0 && expires < MIN_EXPIRES {
                        return RegisterOutcome::TooBrief;
                    }
                }
                for request in requests {
                    let expires =
                        request.expires.or(header_expires).unwrap_or(DEFAULT_EXPIRES).min(MAX_EXPIRES);
                    list.retain(|binding| binding.contact != request.uri);
                    if expires > 0 {
                        list.push(Binding {
                            contact: request.uri,
                            source,
                            transport,
                            expires_at: now + Duration::from_secs(u64::from(expires)),
                        });
                    }
                }
            }
        }
        if list.len() > self.max_contacts {
            if current.is_empty() {
                bindings.remove(&key);
            }
            return RegisterOutcome::TooManyContacts { limit: self.max_contacts };
        }
        let live = list.clone();
        bindings.insert(key.clone(), list);
        if live.is_empty() {
            bindings.remove(&key);
        }
        RegisterOutcome::Bound(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SocketAddr {
        "127.0.0.1:5062".parse().expect("addr")
    }

    #[test]
    fn contacts_parse_with_their_expiry() {
        let parsed = parse_contacts(&[
            "\"Alice, home\" <sip:alice@10.0.0.2:5062;transport=udp>;expires=120, sip:alice@10.0.0.3"
                .to_owned(),
        ])
        .expect("valid");
        assert_eq!(
            parsed,
            Contacts::List(vec![
                ContactRequest {
                    uri: "sip:alice@10.0.0.2:5062;transport=udp".to_owned(),
                    expires: Some(120)
                },
                ContactRequest { uri: "sip:alice@10.0.0.3".to_owned(), expires: None },
            ])
        );
        assert_eq!(parse_contacts(&["*".to_owned()]), Ok(Contacts::Wildcard));
        assert!(parse_contacts(&["<http://example.com>".to_owned()]).is_err());
        assert!(parse_contacts(&["<sip:a@b>;expires=soon".to_owned()]).is_err());
    }

    #[test]
    fn bindings_are_added_refreshed_and_removed() {
        let registrar = Registrar::new();
        let contact = |uri: &str, expires| {
            Contacts::List(vec![ContactRequest { uri: uri.to_owned(), expires: Some(expires) }])
        };
        registrar.register("Example.com", "alice", contact("sip:alice@10.0.0.2", 600), None, source(), "udp");
        registrar.register("example.com", "alice", contact("sip:alice@10.0.0.3", 600), None, source(), "udp");
        registrar.register("example.com", "alice", contact("sip:alice@10.0.0.2", 900), None, source(), "udp");
        let contacts = registrar.contacts("example.com", "alice");
        assert_eq!(contacts.len(), 2, "a refresh replaces, it does not duplicate");
        assert_eq!(contacts[0].source, source());
        registrar.register("example.com", "alice", contact("sip:alice@10.0.0.3", 0), None, source(), "udp");
        assert_eq!(registrar.contacts("example.com", "alice").len(), 1, "expires=0 removes one");
        assert_eq!(
            registrar.register(
                "example.com",
                "alice",
                contact("sip:alice@10.0.0.4", 10),
                None,
                source(),
                "udp"
            ),
            RegisterOutcome::TooBrief
        );
        registrar.register("example.com", "alice", Contacts::Wildcard, Some(0), source(), "udp");
        assert!(registrar.contacts("example.com", "alice").is_empty(), "* removes all");
        assert_eq!(registrar.registered_users(), 0);
    }

    #[test]
    fn a_user_has_at_most_the_cap_of_contacts_and_a_refused_register_changes_nothing() {
        let registrar = Registrar::new().with_max_contacts(3);
        let contacts = |hosts: &[u8]| {
            Contacts::List(
                hosts
                    .iter()
                    .map(|n| ContactRequest { uri: format!("sip:alice@10.0.0.{n}"), expires: Some(600) })
                    .collect(),
            )
        };
        let bound = registrar.register("example.com", "alice", contacts(&[1, 2]), None, source(), "udp");
        assert!(matches!(bound, RegisterOutcome::Bound(ref list) if list.len() == 2));
        assert_eq!(
            registrar.register("example.com", "alice", contacts(&[3, 4]), None, source(), "udp"),
            RegisterOutcome::TooManyContacts { limit: 3 }
        );
        assert_eq!(registrar.contacts("example.com", "alice").len(), 2, "nothing was added");
        let bound = registrar.register("example.com", "alice", contacts(&[3, 1, 2]), None, source(), "udp");
        assert!(matches!(bound, RegisterOutcome::Bound(ref list) if list.len() == 3), "refreshes fit");
        assert_eq!(
            registrar.register("example.com", "bob", contacts(&[1, 2, 3, 4]), None, source(), "udp"),
            RegisterOutcome::TooManyContacts { limit: 3 }
        );
        assert_eq!(registrar.registered_users(), 1, "bob was never bound");
        assert_eq!(
            Registrar::new().register(
                "example.com",
                "carol",
                contacts(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
                None,
                source(),
                "udp"
            ),
            RegisterOutcome::TooManyContacts { limit: DEFAULT_MAX_CONTACTS_PER_USER }
        );
    }
}
