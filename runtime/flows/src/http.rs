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
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::config::HttpPolicy;

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

/// The wasi:http hooks of one call: applies the [`HttpPolicy`].
#[derive(Debug)]
pub(crate) struct PolicyHooks {
    policy: HttpPolicy,
    sent: u32,
}

impl PolicyHooks {
    pub(crate) fn new(policy: HttpPolicy) -> Self {
        Self { policy, sent: 0 }
    }
}

fn capped(requested: Option<Duration>, cap: Duration) -> Option<Duration> {
    Some(requested.map_or(cap, |d| d.min(cap)))
}

/// Refuse destinations the policy forbids; `Ok` with nothing to say otherwise.
async fn check_destination(uri: &hyper::Uri, allow_private: bool) -> Result<(), Error> {
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
    if !allow_private && addresses.iter().any(|ip| is_non_public(*ip)) {
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
        let over_limit = self.sent > self.policy.max_requests_per_call;
        let policy = self.policy.clone();
        Box::new(async move {
            if over_limit {
                return Err(Error::ConnectionLimitReached);
            }
            if !matches!(request.uri().scheme_str(), Some("http" | "https")) {
                return Err(Error::HttpRequestUriInvalid);
            }
            check_destination(request.uri(), policy.allow_private).await?;
            let cap = Duration::from_millis(u64::from(policy.timeout_ms));
            let requested = options.unwrap_or_default();
            let options = RequestOptions {
                connect_timeout: capped(requested.connect_timeout, cap),
                first_byte_timeout: capped(requested.first_byte_timeout, cap),
                between_bytes_timeout: capped(requested.between_bytes_timeout, cap),
            };
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            let limit = u64::from(policy.max_response_bytes);
            let response =
                response.map(|body| CappedBody { inner: body.boxed_unsync(), seen: 0, limit }.boxed_unsync());
            Ok((response, Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>))
        })
    }
}

/// A response body that fails once more than `limit` bytes have arrived.
struct CappedBody {
    inner: WasiBody,
    seen: u64,
    limit: u64,
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
    use super::is_non_public;

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
