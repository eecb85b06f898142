//! The outbound HTTP policy of flows (wasi:http): only http(s); no loopback, private,
//! link-local or other non-public destinations unless allowed; bounded timeouts, response size
//! and request count.
//!
//! The host is resolved once, every address is checked ([`opentact_egress`]), and the request
//! is sent over a connection to exactly a checked address — the `Host` header and the TLS
//! server name still carry the name the guest used — so a DNS answer that changes between the
//! check and the connection (DNS rebinding) cannot reach an unchecked address.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper_util::rt::TokioIo;
use opentact_egress::{Allowed, is_non_public};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::config::HttpPolicy;
use crate::error::HostError;

/// The [`HttpPolicy`] with its allow-list parsed: shared by every call of a host.
#[derive(Debug)]
pub(crate) struct CompiledPolicy {
    pub(crate) policy: HttpPolicy,
    allow: Vec<Allowed>,
}

impl CompiledPolicy {
    pub(crate) fn new(policy: HttpPolicy) -> Result<Self, HostError> {
        let allow = policy
            .allow
            .iter()
            .map(|entry| Allowed::parse(entry))
            .collect::<Result<_, _>>()
            .map_err(|e| HostError::HttpAllow { entry: e.entry, reason: e.reason })?;
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

fn capped(requested: Option<Duration>, cap: Duration) -> Duration {
    requested.map_or(cap, |d| d.min(cap))
}

/// The addresses of the request's host, every one checked against the policy; refused
/// destinations are an error. The request must then go to these addresses only.
async fn check_destination(uri: &hyper::Uri, policy: &CompiledPolicy) -> Result<Vec<SocketAddr>, Error> {
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    let addresses = opentact_egress::resolve(host, port)
        .await
        .map_err(|_| Error::DnsError { rcode: None, info_code: None })?;
    if addresses.is_empty() {
        return Err(Error::DestinationNotFound);
    }
    let allowed = |ip| policy.allow.iter().any(|entry| entry.covers(host, port, ip));
    if !policy.policy.allow_private
        && addresses.iter().map(SocketAddr::ip).any(|ip| is_non_public(ip) && !allowed(ip))
    {
        // Any refused answer refuses the name: a host that mixes public and private addresses
        // is what a rebinding attack looks like.
        tracing::info!(host, "flow HTTP request to a non-public address refused");
        return Err(Error::DestinationIpProhibited);
    }
    Ok(addresses)
}

/// The timeouts of one request, each capped by the policy.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Send `request` over a connection to one of `addresses` (already checked), HTTP/1.1, TLS
/// for https with the URI's host as the server name. Returns the response and the future that
/// drives the connection while the body is read.
async fn send_to(
    mut request: hyper::Request<WasiBody>,
    addresses: &[SocketAddr],
    timeouts: Timeouts,
) -> Result<
    (hyper::Response<hyper::body::Incoming>, impl Future<Output = Result<(), Error>> + Send + use<>),
    Error,
> {
    let tcp = opentact_egress::connect(addresses, timeouts.connect).await.map_err(|error| match error {
        opentact_egress::ConnectError::TimedOut(_) => Error::ConnectionTimeout,
        opentact_egress::ConnectError::Failed { source, .. } => Error::Connect(source),
        opentact_egress::ConnectError::NoAddress => Error::DestinationNotFound,
    })?;
    let stream: Box<dyn Stream> = if request.uri().scheme_str() == Some("https") {
        let host = request.uri().host().ok_or(Error::HttpRequestUriInvalid)?;
        let (config, name) = opentact_egress::tls(host).map_err(Error::Tls)?;
        let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
        Box::new(
            tokio::time::timeout(timeouts.connect, tls)
                .await
                .map_err(|_| Error::ConnectionTimeout)?
                .map_err(Error::Tls)?,
        )
    } else {
        Box::new(tcp)
    };
    let (mut sender, connection) = tokio::time::timeout(
        timeouts.connect,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // Origin form on the wire: scheme and authority only belong in requests to a proxy (the
    // Host header carries the authority).
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() =
        hyper::Uri::builder().path_and_query(path).build().map_err(|_| Error::HttpRequestUriInvalid)?;

    let response = tokio::time::timeout(timeouts.first_byte, sender.send_request(request));
    tokio::pin!(response);
    let mut connection = Some(connection);
    // Drive the connection while waiting for the response head.
    let response = loop {
        tokio::select! {
            response = &mut response => break response,
            ended = async { connection.as_mut().expect("checked by the guard").await }, if connection.is_some() => {
                connection = None;
                ended?;
            }
        }
    };
    let response = response.map_err(|_| Error::ConnectionReadTimeout)??;
    let io = async move {
        match connection {
            Some(connection) => connection.await.map_err(|error| {
                if error.is_timeout() { Error::HttpResponseTimeout } else { Error::from(error) }
            }),
            None => Ok(()),
        }
    };
    Ok((response, io))
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
            let addresses = check_destination(request.uri(), &policy).await?;
            let policy = &policy.policy;
            let cap = Duration::from_millis(u64::from(policy.timeout_ms));
            let requested = options.unwrap_or_default();
            let timeouts = Timeouts {
                connect: capped(requested.connect_timeout, cap),
                first_byte: capped(requested.first_byte_timeout, cap),
                between_bytes: capped(requested.between_bytes_timeout, cap),
            };
            let (response, io) = send_to(request, &addresses, timeouts).await?;
            let limit = u64::from(policy.max_response_bytes);
            let response = response.map(|body| {
                CappedBody {
                    inner: body.map_err(Error::from).boxed_unsync(),
                    seen: 0,
                    limit,
                    between_bytes: timeouts.between_bytes,
                    idle: Box::pin(tokio::time::sleep(timeouts.between_bytes)),
                    _permit: permit,
                }
                .boxed_unsync()
            });
            Ok((response, Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>))
        })
    }
}

/// A response body that fails once more than `limit` bytes have arrived or when no data
/// arrives for `between_bytes`; it holds the request's in-flight permit until the guest drops
/// it.
struct CappedBody {
    inner: WasiBody,
    seen: u64,
    limit: u64,
    between_bytes: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
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
        match &polled {
            Poll::Pending => {
                if self.idle.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
                }
            }
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = tokio::time::Instant::now() + self.between_bytes;
                self.idle.as_mut().reset(deadline);
                if let Some(data) = frame.data_ref() {
                    self.seen += data.len() as u64;
                    if self.seen > self.limit {
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(self.seen)))));
                    }
                }
            }
            Poll::Ready(_) => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_request_goes_to_the_checked_address_not_to_the_name() {
        use http_body_util::{BodyExt, Empty};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let checked = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.expect("read");
                assert!(n > 0, "request ended early");
                head.extend_from_slice(&buf[..n]);
            }
            socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.expect("write");
            String::from_utf8(head).expect("utf-8")
        });
        // The name does not resolve at all: only the checked address can have been dialled.
        let body = Empty::new().map_err(|never: std::convert::Infallible| match never {}).boxed_unsync();
        let request = hyper::Request::get("http://rebinding.invalid:81/hook?x=1")
            .header("host", "rebinding.invalid:81")
            .body(body)
            .expect("request");
        let second = std::time::Duration::from_secs(5);
        let timeouts = super::Timeouts { connect: second, first_byte: second, between_bytes: second };
        let (response, io) = super::send_to(request, &[checked], timeouts).await.expect("sent");
        assert_eq!(response.status(), 200);
        let driver = tokio::spawn(io);
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&bytes[..], b"ok");
        let head = server.await.expect("server");
        assert!(head.starts_with("GET /hook?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(head.to_ascii_lowercase().contains("host: rebinding.invalid:81\r\n"), "{head}");
        driver.abort();
    }

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
}
