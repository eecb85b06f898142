//! Which URLs the platform may be told to call: checked when a webhook subscription, an app or
//! a call is stored, so that a URL the egress policy would refuse at delivery (loopback,
//! private, link-local… — [`opentact_egress::is_public`]) is refused with a message now, not
//! discovered later as failed deliveries.
//!
//! Only what is decidable without DNS is checked here: the scheme, an address written in the
//! URL (in any form the URL standard reads as one: `127.1`, `0x7f000001`, `[::ffff:10.0.0.1]`),
//! and `localhost` names. A host name is accepted and checked again at every delivery, after
//! it is resolved (its answer can change: DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use opentact_egress::{AllowEntryError, Allowed, is_public};
use url::{Host, Url};

use crate::error::ApiError;

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// The destinations one kind of URL may name: public addresses, plus the operator's
/// exceptions. The default allows public destinations only.
#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    /// Any address (tests, on-premises receivers): the delivery side's `allow_private`.
    pub allow_private: bool,
    /// Non-public destinations allowed one by one (the delivery side's allow-list).
    pub allow: Vec<Allowed>,
    /// The allow-list as the config writes it, for a client that sends with this policy.
    entries: Vec<String>,
}

impl UrlPolicy {
    /// `allow_private` and allow-list entries as the config writes them (`10.0.0.0/8`,
    /// `hooks.internal:8080`).
    pub fn new(allow_private: bool, allow: &[String]) -> Result<Self, AllowEntryError> {
        let entries = allow.to_vec();
        let allow = allow.iter().map(|entry| Allowed::parse(entry)).collect::<Result<_, _>>()?;
        Ok(UrlPolicy { allow_private, allow, entries })
    }

    /// Any destination.
    pub fn allow_private() -> Self {
        UrlPolicy { allow_private: true, allow: Vec::new(), entries: Vec::new() }
    }

    /// The same policy for a client that sends (the delivery side's): it checks again each
    /// address a name resolves to.
    pub fn egress(&self) -> opentact_egress::Policy {
        opentact_egress::Policy::new(self.allow_private, &self.entries)
            .unwrap_or_else(|_| opentact_egress::Policy::public_only())
    }

    /// An object's `event_url` (an app's, a number's, a SIP domain's or user's), checked like
    /// a subscription's URL.
    pub fn check_event_url(&self, url: &str) -> Result<String, ApiError> {
        self.check("event_url", crate::routes::app::WEBHOOKS, url)
    }

    /// A PATCH's `event_url`: absent, `null` (removed) or a URL checked by
    /// [`UrlPolicy::check_event_url`].
    pub fn check_event_url_patch(
        &self,
        event_url: Option<Option<String>>,
    ) -> Result<Option<Option<String>>, ApiError> {
        Ok(match event_url {
            Some(Some(url)) => Some(Some(self.check_event_url(&url)?)),
            other => other,
        })
    }

    /// `url`, checked: an absolute http(s) URL naming no refused destination. `field` and
    /// `what` (`"webhooks"`) name it in the message.
    pub fn check(&self, field: &str, what: &str, url: &str) -> Result<String, ApiError> {
        let shape = (url.starts_with("https://") || url.starts_with("http://"))
            && url.len() <= MAX_URL_LEN
            && !url.contains(' ');
        if !shape {
            return Err(ApiError::invalid(
                field,
                format!("must be an http(s) URL of at most {MAX_URL_LEN} characters"),
            ));
        }
        let parsed =
            Url::parse(url).map_err(|e| ApiError::invalid(field, format!("not a valid URL: {e}")))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let (name, addresses): (String, Vec<IpAddr>) = match parsed.host() {
            None => return Err(ApiError::invalid(field, "the URL has no host")),
            Some(Host::Ipv4(v4)) => (v4.to_string(), vec![IpAddr::V4(v4)]),
            Some(Host::Ipv6(v6)) => (v6.to_string(), vec![IpAddr::V6(v6)]),
            Some(Host::Domain(domain)) => {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                // RFC 6761: localhost names are this machine, whatever DNS says.
                if domain == "localhost" || domain.ends_with(".localhost") {
                    (domain, vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)])
                } else {
                    return Ok(url.to_owned());
                }
            }
        };
        let refused = addresses.iter().copied().find(|ip| {
            !self.allow_private && !is_public(*ip) && !self.allow.iter().any(|a| a.covers(&name, port, *ip))
        });
        match refused {
            None => Ok(url.to_owned()),
            Some(ip) => Err(ApiError::invalid(
                field,
                format!(
                    "{url} names {}, a loopback, private or otherwise non-public address: {what} are only \
                     sent to public addresses",
                    if name == ip.to_string() { name.clone() } else { format!("{name} ({ip})") }
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_destinations_are_refused_in_every_spelling() {
        let policy = UrlPolicy::default();
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://127.1/hook",
            "http://2130706433/hook",
            "http://0x7f000001/hook",
            "https://10.1.2.3/hook",
            "http://192.168.0.10/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:9000/",
            "http://[::ffff:10.0.0.1]/",
            "http://[fe80::1]/",
            "http://localhost:3000/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://0.0.0.0/",
        ] {
            let e = policy.check("url", "webhooks", url).expect_err(url);
            assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY, "{url}");
            assert!(e.to_string().contains("non-public address"), "{url}: {e}");
        }
        for url in ["https://hooks.example.com/a", "http://93.184.215.14:8080/x", "https://[2606:4700::1]/"] {
            assert_eq!(policy.check("url", "webhooks", url).expect(url), url);
        }
        for url in ["ftp://example.com/", "http://exa mple.com/", "http://"] {
            policy.check("url", "webhooks", url).expect_err(url);
        }
    }

    #[test]
    fn the_operator_may_allow_private_destinations() {
        let url = "http://127.0.0.1:8080/hook";
        assert!(UrlPolicy::allow_private().check("url", "webhooks", url).is_ok());
        let some = UrlPolicy::new(false, &["10.0.0.0/8".into(), "localhost:3000".into()]).unwrap();
        assert!(some.check("url", "webhooks", "http://10.9.9.9/").is_ok());
        assert!(some.check("url", "webhooks", "http://localhost:3000/").is_ok());
        assert!(some.check("url", "webhooks", "http://localhost:3001/").is_err());
        assert!(some.check("url", "webhooks", url).is_err());
        assert!(UrlPolicy::new(false, &["nonsense".into()]).is_err());
    }
}
