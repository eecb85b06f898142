//! The outbound HTTP policy of flows (wasi:http): only http(s); no loopback, private,
//! link-local or other non-public destinations (nor the platform's own) unless allowed;
//! bounded timeouts, response size and request count.
//!
//! wasmtime-wasi-http hands each guest request to [`PolicyHooks::send_request`], which sends it
//! with the platform's one outbound HTTP client ([`opentact_egress::http::Client`]) built from
//! the flow policy: its DNS resolver refuses names that resolve to a refused address, address
//! literals are checked before sending, and every connection's peer address is checked again
//! (DNS rebinding cannot reach an unchecked address). Redirects are not followed: a guest sees
//! the 3xx, as wasi:http specifies.
//!
//! The built-in XML guest's requests are signed like event webhooks (`Opentact-Timestamp`,
//! `Opentact-Signature` over `"<timestamp>|<body>"`, [`crate::RequestSigner`]): their body is
//! read whole first, up to [`MAX_SIGNED_BODY_BYTES`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use opentact_egress::http::{Client, ClientOptions, HttpError};
use opentact_egress::{AllowEntryError, Policy};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::config::HttpPolicy;
use crate::error::HostError;

/// The [`HttpPolicy`] with its allow-list parsed, and the client that applies it: shared by
/// every call of a host.
#[derive(Debug)]
pub(crate) struct CompiledPolicy {
    pub(crate) policy: HttpPolicy,
    client: Client,
}

impl CompiledPolicy {
    pub(crate) fn new(policy: HttpPolicy) -> Result<Self, HostError> {
        let egress = Policy::new(policy.allow_private, &policy.allow)
            .map_err(|AllowEntryError { entry, reason }| HostError::HttpAllow { entry, reason })?;
        let options = ClientOptions {
            connect_timeout: Duration::from_millis(u64::from(policy.timeout_ms)),
            max_redirects: 0,
            ..ClientOptions::default()
        };
        Ok(Self { client: Client::new(egress, &options), policy })
    }
}

/// Largest request body a signed request may have: it is read whole to be signed (the XML
/// guest's form posts are a few hundred bytes).
pub const MAX_SIGNED_BODY_BYTES: usize = 1024 * 1024;

/// The wasi:http hooks of one call: applies the [`HttpPolicy`].
pub(crate) struct PolicyHooks {
    policy: Arc<CompiledPolicy>,
    sent: u32,
    /// Requests in flight: a permit lives from sending to dropping the response body.
    in_flight: Arc<Semaphore>,
    /// Signs each request, when the guest's requests are the platform's.
    signer: Option<Arc<dyn crate::context::RequestSigner>>,
}

impl std::fmt::Debug for PolicyHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyHooks")
            .field("sent", &self.sent)
            .field("signed", &self.signer.is_some())
            .finish_non_exhaustive()
    }
}

impl PolicyHooks {
    pub(crate) fn new(
        policy: Arc<CompiledPolicy>,
        signer: Option<Arc<dyn crate::context::RequestSigner>>,
    ) -> Self {
        let permits = usize::try_from(policy.policy.max_concurrent_requests).unwrap_or(usize::MAX);
        Self { policy, sent: 0, in_flight: Arc::new(Semaphore::new(permits)), signer }
    }
}

fn capped(requested: Option<Duration>, cap: Duration) -> Duration {
    requested.map_or(cap, |d| d.min(cap))
}

/// The wasi:http error for the client's.
fn wasi_error(error: HttpError) -> Error {
    match error {
        HttpError::InvalidUrl { .. } => Error::HttpRequestUriInvalid,
        HttpError::Resolve { .. } => Error::DnsError { rcode: None, info_code: None },
        HttpError::Refused { .. } => Error::DestinationIpProhibited,
        HttpError::Connect { reason, .. } if reason.contains("timed out") => Error::ConnectionTimeout,
        HttpError::Connect { .. } => Error::ConnectionRefused,
        HttpError::TooLarge { limit, .. } => Error::HttpResponseBodySize(Some(limit as u64)),
        HttpError::TimedOut { .. } => Error::HttpResponseTimeout,
        HttpError::TooManyRedirects { .. } => Error::LoopDetected,
        HttpError::Redirect { reason, .. } | HttpError::Failed { reason, .. } => {
            Error::InternalError(Some(reason))
        }
    }
}

/// A guest's request body for the client, which needs a `Sync` body: the guest's is only
/// `Send`, and it is only ever polled through `&mut`, so the lock is never contended.
struct SyncBody(std::sync::Mutex<WasiBody>);

impl Body for SyncBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let body = self.get_mut().0.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        Pin::new(body).poll_frame(cx)
    }

    fn size_hint(&self) -> SizeHint {
        self.0.lock().map(|body| body.size_hint()).unwrap_or_default()
    }
}

impl std::fmt::Display for WasiErrorText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// wasi:http's error as a `std::error::Error`, for the client's body.
#[derive(Debug)]
struct WasiErrorText(Error);

impl std::error::Error for WasiErrorText {}

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
        let signer = self.signer.clone();
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
            let cap = Duration::from_millis(u64::from(policy.policy.timeout_ms));
            let requested = options.unwrap_or_default();
            let connect = capped(requested.connect_timeout, cap);
            let first_byte = capped(requested.first_byte_timeout, cap);
            let between_bytes = capped(requested.between_bytes_timeout, cap);
            let (parts, body) = request.into_parts();
            let url = url::Url::parse(&parts.uri.to_string()).map_err(|_| Error::HttpRequestUriInvalid)?;
            let mut outgoing = reqwest::Request::new(parts.method, url);
            *outgoing.headers_mut() = parts.headers;
            *outgoing.body_mut() = Some(match signer {
                Some(signer) => {
                    let whole = http_body_util::Limited::new(body, MAX_SIGNED_BODY_BYTES)
                        .collect()
                        .await
                        .map_err(|_| Error::HttpRequestBodySize(None))?
                        .to_bytes();
                    for (name, value) in signer.headers(&whole) {
                        let value = hyper::header::HeaderValue::from_str(&value)
                            .map_err(|_| Error::InternalError(Some("a signature header".to_owned())))?;
                        outgoing.headers_mut().insert(name, value);
                    }
                    reqwest::Body::from(whole)
                }
                None => reqwest::Body::wrap(SyncBody(std::sync::Mutex::new(body)).map_err(WasiErrorText)),
            });
            // Connection (the client's own connect timeout is the cap) and the response head.
            let response = tokio::time::timeout(connect + first_byte, policy.client.execute(outgoing))
                .await
                .map_err(|_| Error::ConnectionReadTimeout)?
                .map_err(wasi_error)?;
            let limit = u64::from(policy.policy.max_response_bytes);
            let response: hyper::Response<reqwest::Body> = response.into();
            let response = response.map(|body| {
                CappedBody {
                    inner: body.map_err(|error| Error::InternalError(Some(error.to_string()))).boxed_unsync(),
                    seen: 0,
                    limit,
                    between_bytes,
                    idle: Box::pin(tokio::time::sleep(between_bytes)),
                    _permit: permit,
                }
                .boxed_unsync()
            });
            // The client's pool drives the connection: nothing for wasmtime to drive.
            let io = async { Ok(()) };
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
    use http_body_util::{BodyExt, Empty, Full};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wasmtime_wasi_http::WasiHttpHooks;

    use super::{CompiledPolicy, PolicyHooks};
    use crate::config::HttpPolicy;

    /// A one-request server on loopback: answers `reply` and hands back what it read.
    async fn server(reply: &'static str) -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !String::from_utf8_lossy(&seen).ends_with("hello") {
                let n = socket.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            socket.write_all(reply.as_bytes()).await.expect("write");
            String::from_utf8(seen).expect("utf-8")
        });
        (address, task)
    }

    fn hooks_of(policy: HttpPolicy) -> PolicyHooks {
        PolicyHooks::new(std::sync::Arc::new(CompiledPolicy::new(policy).expect("policy")), None)
    }

    fn post(url: &str) -> hyper::Request<wasmtime_wasi_http::WasiBody> {
        let body = Full::new(bytes::Bytes::from_static(b"hello"))
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed_unsync();
        hyper::Request::post(url).header("content-length", "5").body(body).expect("request")
    }

    fn unused() -> Box<dyn Future<Output = Result<(), super::Error>> + Send> {
        Box::new(async { Ok(()) })
    }

    #[tokio::test]
    async fn a_guest_request_goes_through_the_client_within_the_caps() {
        let (address, seen) = server("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        let allowed = HttpPolicy { allow: vec!["127.0.0.0/8".to_owned()], ..HttpPolicy::default() };
        let mut hooks = hooks_of(allowed.clone());
        let url = format!("http://{address}/hook?x=1");
        let (response, io) =
            Box::into_pin(hooks.send_request(post(&url), None, unused())).await.expect("sent");
        Box::into_pin(io).await.expect("io");
        assert_eq!(response.status(), 200);
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&bytes[..], b"ok");
        let request = seen.await.expect("server");
        assert!(request.starts_with("POST /hook?x=1 HTTP/1.1\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\nhello"), "{request}");

        // A body over the cap fails while it is read.
        let (address, _) =
            server("HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n0123456789012345678901234567890123456789")
                .await;
        let mut hooks = hooks_of(HttpPolicy { max_response_bytes: 16, ..allowed });
        let url = format!("http://{address}/");
        let (response, _) =
            Box::into_pin(hooks.send_request(post(&url), None, unused())).await.expect("sent");
        let error = response.into_body().collect().await.map(|_| ()).expect_err("over the cap");
        assert!(matches!(error, super::Error::HttpResponseBodySize(_)), "{error:?}");
    }

    #[tokio::test]
    async fn loopback_names_and_literals_are_refused_by_default() {
        let (address, _) = server("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        let mut hooks = hooks_of(HttpPolicy::default());
        for url in [format!("http://{address}/"), format!("http://localhost:{}/", address.port())] {
            let result = Box::into_pin(hooks.send_request(post(&url), None, unused())).await;
            assert!(
                matches!(result, Err(super::Error::DestinationIpProhibited)),
                "{url}: {:?}",
                result.err()
            );
        }
    }

    #[tokio::test]
    async fn requests_in_flight_are_capped_per_call() {
        let policy = HttpPolicy { max_concurrent_requests: 1, ..HttpPolicy::default() };
        let mut hooks =
            PolicyHooks::new(std::sync::Arc::new(CompiledPolicy::new(policy).expect("policy")), None);
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

    /// Signs with the body's length, so the test sees it was given the whole body.
    struct LengthSigner;

    impl crate::context::RequestSigner for LengthSigner {
        fn headers(&self, body: &[u8]) -> Vec<(&'static str, String)> {
            vec![
                ("Opentact-Timestamp", "1700000000".to_owned()),
                ("Opentact-Signature", format!("len-{}", body.len())),
            ]
        }
    }

    #[tokio::test]
    async fn a_signed_request_carries_the_signature_of_its_whole_body() {
        let (address, seen) = server("HTTP/1.1 204 No Content\r\n\r\n").await;
        let allowed = HttpPolicy { allow: vec!["127.0.0.0/8".to_owned()], ..HttpPolicy::default() };
        let policy = std::sync::Arc::new(CompiledPolicy::new(allowed).expect("policy"));
        let mut hooks = PolicyHooks::new(policy.clone(), Some(std::sync::Arc::new(LengthSigner)));
        let url = format!("http://{address}/action");
        let (response, _) =
            Box::into_pin(hooks.send_request(post(&url), None, unused())).await.expect("sent");
        assert_eq!(response.status(), 204);
        let request = seen.await.expect("server").to_ascii_lowercase();
        assert!(request.contains("\r\nopentact-signature: len-5\r\n"), "{request}");
        assert!(request.contains("\r\nopentact-timestamp: 1700000000\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\nhello"), "the body still goes: {request}");

        // A body too large to be read whole is refused, not sent unsigned.
        let big = Full::new(bytes::Bytes::from(vec![b'x'; super::MAX_SIGNED_BODY_BYTES + 1]))
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed_unsync();
        let request = hyper::Request::post(&url).body(big).expect("request");
        let mut hooks = PolicyHooks::new(policy, Some(std::sync::Arc::new(LengthSigner)));
        let refused = Box::into_pin(hooks.send_request(request, None, unused())).await;
        assert!(matches!(refused, Err(super::Error::HttpRequestBodySize(_))), "{:?}", refused.err());
    }
}
