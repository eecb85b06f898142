//! The operator's exceptions: destinations reachable although they are not public.

use std::net::IpAddr;

/// Why an allow-list entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allow-list entry `{entry}`: {reason}")]
pub struct AllowEntryError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// One allow-list entry: a destination reachable although it is not public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// Every address of a network (a bare address is a network of one).
    Network {
        /// The network's address, host bits cleared.
        base: IpAddr,
        /// Its prefix length.
        prefix: u8,
    },
    /// One host (name or address, as the request names it) on one port.
    HostPort {
        /// Lower case, without IPv6 brackets.
        host: String,
        /// The port.
        port: u16,
    },
}

impl Allowed {
    /// Parse an entry: `10.0.0.0/8`, `fd00::/8`, `192.0.2.7`, `hooks.internal:8080`,
    /// `[::1]:9000`.
    pub fn parse(entry: &str) -> Result<Self, AllowEntryError> {
        let refused = |reason: &'static str| AllowEntryError { entry: entry.to_owned(), reason };
        let trimmed = entry.trim();
        if let Some((address, prefix)) = trimmed.split_once('/') {
            let base: IpAddr =
                address.parse().map_err(|_| refused("the network address is not an IP address"))?;
            let prefix: u8 = prefix.parse().map_err(|_| refused("the prefix length is not a number"))?;
            let bits = if base.is_ipv4() { 32 } else { 128 };
            if prefix > bits {
                return Err(refused("the prefix length is longer than the address"));
            }
            return Ok(Self::Network { base: mask(base, prefix), prefix });
        }
        if let Ok(address) = trimmed.parse::<IpAddr>() {
            return Ok(Self::Network { base: address, prefix: if address.is_ipv4() { 32 } else { 128 } });
        }
        let (host, port) = trimmed
            .rsplit_once(':')
            .ok_or_else(|| refused("expected a CIDR network (10.1.0.0/16), an address, or host:port"))?;
        let port: u16 = port.parse().map_err(|_| refused("the port is not a number from 0 to 65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if host.is_empty() {
            return Err(refused("the host is empty"));
        }
        Ok(Self::HostPort { host, port })
    }

    /// Whether a request to `host` (as named, without brackets) on `port`, resolved to `ip`,
    /// is covered by this entry.
    pub fn covers(&self, host: &str, port: u16, ip: IpAddr) -> bool {
        match self {
            Self::Network { base, prefix } => {
                let ip = match ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                    v4 => v4,
                };
                ip.is_ipv4() == base.is_ipv4() && mask(ip, *prefix) == *base
            }
            Self::HostPort { host: allowed, port: allowed_port } => {
                *allowed_port == port && allowed.eq_ignore_ascii_case(host)
            }
        }
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            IpAddr::V6((bits & mask).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Allowed;

    #[test]
    fn allow_list_entries() {
        let network = Allowed::parse("10.20.0.0/16").expect("cidr");
        assert!(network.covers("x", 80, "10.20.3.4".parse().expect("ip")));
        assert!(network.covers("x", 80, "::ffff:10.20.3.4".parse().expect("ip")));
        assert!(!network.covers("x", 80, "10.21.0.1".parse().expect("ip")));
        let unmasked = Allowed::parse("10.20.9.9/16").expect("cidr with host bits");
        assert_eq!(unmasked, network);
        let single = Allowed::parse("127.0.0.1").expect("address");
        assert!(single.covers("x", 1, "127.0.0.1".parse().expect("ip")));
        assert!(!single.covers("x", 1, "127.0.0.2".parse().expect("ip")));
        let v6 = Allowed::parse("fd00:1::/32").expect("v6 cidr");
        assert!(v6.covers("x", 1, "fd00:1::5".parse().expect("ip")));
        assert!(!v6.covers("x", 1, "10.0.0.1".parse().expect("ip")));
        let host = Allowed::parse("Hooks.Internal:8080").expect("host:port");
        assert!(host.covers("hooks.internal", 8080, "10.0.0.1".parse().expect("ip")));
        assert!(!host.covers("hooks.internal", 8081, "10.0.0.1".parse().expect("ip")));
        let bracketed = Allowed::parse("[::1]:9000").expect("[v6]:port");
        assert!(bracketed.covers("::1", 9000, "::1".parse().expect("ip")));
        for bad in ["10.0.0.0/33", "nonsense", "host:port", "10.0.0/8", ":80"] {
            let error = Allowed::parse(bad).expect_err(bad);
            assert!(error.to_string().contains(bad), "{error}");
        }
    }
}
