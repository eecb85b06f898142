//! The outbound HTTP policy of flows (wasi:http): only http(s); no loopback, private,
//! link-local or other non-public destinations unless allowed; bounded timeouts, response size
//! and request count.
//!
//! The destination is checked by resolving the host before the request is sent; the connection
//! then resolves it again, so a DNS server that answers differently the second time (DNS
//! rebinding) could slip past the check. Closing that gap needs a connector that dials the
//! checked address; it is noted for the SIP/production hardening work.

use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::HttpPolicy;
use crate::error::HostError;

/// Whether an address is one a flow may not reach by default.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_non_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_non_public_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        }
    }
}

fn is_non_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || a >= 240
}

/// One entry of [`HttpPolicy::allow`]: a destination reachable although it is not public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Allowed {
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
    /// Parse an allow-list entry: `10.0.0.0/8`, `fd00::/8`, `192.0.2.7`, `hooks.internal:8080`,
    /// `[::1]:9000`.
    pub(crate) fn parse(entry: &str) -> Result<Self, HostError> {
        let refused = |reason: &'static str| HostError::HttpAllow { entry: entry.to_owned(), reason };
        let entry_trimmed = entry.trim();
        if let Some((address, prefix)) = entry_trimmed.split_once('/') {
            let base: IpAddr =
                address.parse().map_err(|_| refused("the network address is not an IP address"))?;
            let prefix: u8 = prefix.parse().map_err(|_| refused("the prefix length is not a number"))?;
            let bits = if base.is_ipv4() { 32 } else { 128 };
            if prefix > bits {
                return Err(refused("the prefix length is longer than the address"));
            }
            return Ok(Self::Network { base: mask(base, prefix), prefix });
        }
        if let Ok(address) = entry_trimmed.parse::<IpAddr>() {
            return Ok(Self::Network { base: address, prefix: if address.is_ipv4() { 32 } else { 128 } });
        }
        let (host, port) = entry_trimmed
            .rsplit_once(':')
            .ok_or_else(|| refused("expected a CIDR network (10.1.0.0/16), an address, or host:port"))?;
        let port: u16 = port.parse().map_err(|_| refused("the port is not a number from 0 to 65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if host.is_empty() {
            return Err(refused("the host is empty"));
        }
        Ok(Self::HostPort { host, port })
    }

    fn covers(&self, host: &str, port: u16, ip: IpAddr) -> bool {
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

/// The [`HttpPolicy`] with its allow-list parsed: shared by every call of a host.
#[derive(Debug)]
pub(crate) struct CompiledPolicy {
    pub(crate) policy: HttpPolicy,
    allow: Vec<Allowed>,
}

impl CompiledPolicy {
    pub(crate) fn new(policy: HttpPolicy) -> Result<Self, HostError> {
        let allow = policy.allow.iter().map(|entry| Allowed::parse(entry)).collect::<Result<_, _>>()?;
        Ok(Self { policy, allow })
    }
}

/// The wasi:http hooks of one call: applies the [`HttpPolicy`].
#[derive(Debug)]
pub(crate) struct PolicyHooks {
    policy: Arc<CompiledPolicy>,
    sent: u32,
    /// Requests in flight: a permit lives from sending to dropping the response body.
    in_flight: Arc<Semaphore>,
}

impl PolicyHooks {
    pub(crate) fn new(policy: Arc<CompiledPolicy>) -> Self {
        let permits = usize::try_from(policy.policy.max_concurrent_requests).unwrap_or(usize::MAX);
        Self { policy, sent: 0, in_flight: Arc::new(Semaphore::new(permits)) }
    }
}

fn capped(requested: Option<Duration>, cap: Duration) -> Option<Duration> {
    Some(requested.map_or(cap, |d| d.min(cap)))
}

/// Refuse destinations the policy forbids; `Ok` with nothing to say otherwise.
async fn check_destination(uri: &hyper::Uri, policy: &CompiledPolicy) -> Result<(), Error> {
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| Error::DnsError { rcode: None, info_code: None })?
            .map(|a| a.ip())
            .collect(),
    };
    if addresses.is_empty() {
        return Err(Error::DestinationNotFound);
    }
    let allowed = |ip: &IpAddr| policy.allow.iter().any(|entry| entry.covers(host, port, *ip));
    if !policy.policy.allow_private && addresses.iter().any(|ip| is_non_public(*ip) && !allowed(ip)) {
        tracing::info!(host, "flow HTTP request to a non-public address refused");
        return Err(Error::DestinationIpProhibited);
    }
    Ok(())
}

type SendResult =
    Result<(hyper::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>;

impl WasiHttpHooks for PolicyHooks {
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        self.sent += 1;
        let over_limit = self.sent > self.policy.policy.max_requests_per_call;
        // Taken now, not in the future below: the count is of requests the guest started.
        let permit = self.in_flight.clone().try_acquire_owned().ok();
        let policy = self.policy.clone();
        Box::new(async move {
            if over_limit {
                tracing::info!("flow HTTP request refused: too many requests in this call");
                return Err(Error::ConnectionLimitReached);
            }
            let Some(permit) = permit else {
                tracing::info!("flow HTTP request refused: too many requests in flight");
                return Err(Error::ConnectionLimitReached);
            };
            if !matches!(request.uri().scheme_str(), Some("http" | "https")) {
                return Err(Error::HttpRequestUriInvalid);
            }
            check_destination(request.uri(), &policy).await?;
            let policy = &policy.policy;
            let cap = Duration::from_millis(u64::from(policy.timeout_ms));
            let requested = options.unwrap_or_default();
            let options = RequestOptions {
                connect_timeout: capped(requested.connect_timeout, cap),
                first_byte_timeout: capped(requested.first_byte_timeout, cap),
                between_bytes_timeout: capped(requested.between_bytes_timeout, cap),
            };
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            let limit = u64::from(policy.max_response_bytes);
            let response = response.map(|body| {
                CappedBody { inner: body.boxed_unsync(), seen: 0, limit, _permit: permit }.boxed_unsync()
            });
            Ok((response, Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>))
        })
    }
}

/// A response body that fails once more than `limit` bytes have arrived; it holds the
/// request's in-flight permit until the guest drops it.
struct CappedBody {
    inner: WasiBody,
    seen: u64,
    limit: u64,
    _permit: OwnedSemaphorePermit,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.seen += data.len() as u64;
            if self.seen > self.limit {
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(self.seen)))));
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::{Allowed, is_non_public};

    #[tokio::test]
    async fn requests_in_flight_are_capped_per_call() {
        use http_body_util::{BodyExt, Empty};
        use wasmtime_wasi_http::WasiHttpHooks;

        use super::{CompiledPolicy, PolicyHooks};
        use crate::config::HttpPolicy;

        let policy = HttpPolicy { max_concurrent_requests: 1, ..HttpPolicy::default() };
        let mut hooks = PolicyHooks::new(std::sync::Arc::new(CompiledPolicy::new(policy).expect("policy")));
        let request = || {
            let body = Empty::new().map_err(|never: std::convert::Infallible| match never {}).boxed_unsync();
            hyper::Request::get("http://10.0.0.1/").body(body).expect("request")
        };
        let unused = || Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>;
        // The first request holds the only permit while its future is alive.
        let first = hooks.send_request(request(), None, unused());
        let second = Box::into_pin(hooks.send_request(request(), None, unused())).await;
        assert!(matches!(second, Err(super::Error::ConnectionLimitReached)), "{:?}", second.err());
        let first = Box::into_pin(first).await;
        assert!(matches!(first, Err(super::Error::DestinationIpProhibited)), "{:?}", first.err());
        // Settled: the permit is back.
        let third = Box::into_pin(hooks.send_request(request(), None, unused())).await;
        assert!(matches!(third, Err(super::Error::DestinationIpProhibited)), "{:?}", third.err());
    }

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

    #[test]
    fn non_public_ranges() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
        ] {
            assert!(is_non_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["8.8.8.8", "93.184.216.34", "2606:4700::1111"] {
            assert!(!is_non_public(ip.parse().expect("ip")), "{ip}");
        }
    }
}
