//! The platform's one outbound HTTP client: [`Client`], reqwest (HTTP/1.1, rustls with ring and
//! Mozilla's roots) with the egress [`Policy`] enforced at every step where an address can
//! enter:
//!
//! - **resolution** — the client's DNS resolver looks the name up and refuses it when any
//!   answer is an address the policy refuses, so reqwest only ever dials checked addresses;
//! - **address literals** (`http://10.0.0.1/`, which reqwest dials without its resolver) — the
//!   URL is checked before the request is sent, and so is every redirect's target;
//! - **the connection** — a connector layer reads the address the socket is actually connected
//!   to and drops the connection before a byte is written when the policy refuses it (the
//!   last line, whatever path led there);
//! - **redirects** — followed only up to [`ClientOptions::max_redirects`] (none by default),
//!   each target checked as above; cross-origin redirects drop credentials (reqwest);
//! - **time and size** — a connect timeout ([`ClientOptions::connect_timeout`]), a total time
//!   per exchange ([`Caps::timeout`], headers and body), and a body cap ([`Caps::max_body_bytes`])
//!   enforced while the body streams in (a declared `Content-Length` over the cap is refused
//!   before reading).
//!
//! No proxy is used whatever the environment says (`HTTP_PROXY` would bypass every check).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connection, HttpInfo};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use url::Url;

use crate::Policy;

pub use reqwest::Method;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Default for [`ClientOptions::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for [`ClientOptions::pool_max_idle_per_host`].
pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 8;
/// Default for [`ClientOptions::pool_idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How a [`Client`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Resolution, TCP and TLS of one new connection.
    pub connect_timeout: Duration,
    /// Redirects followed, each target checked by the policy (0: a 3xx is the answer).
    pub max_redirects: usize,
    /// Idle connections kept per host (reqwest's pool has no total bound: a caller that
    /// talks to many hosts bounds the hosts, see `opentact-webhooks`).
    pub pool_max_idle_per_host: usize,
    /// An idle connection is closed after this long.
    pub pool_idle_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_redirects: 0,
            pool_max_idle_per_host: DEFAULT_MAX_IDLE_PER_HOST,
            pool_idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// What one exchange may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// The whole exchange: resolution, connection, redirects, request and response body.
    pub timeout: Duration,
    /// Largest response body read, bytes.
    pub max_body_bytes: usize,
}

/// What a one-off [`send`] may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The whole exchange: resolution, connection, request and response body.
    pub timeout: Duration,
    /// Largest response body read, bytes.
    pub max_body_bytes: usize,
    /// Whether loopback, private and other non-public addresses may be reached (true for
    /// destinations the operator configured, false for those a customer named).
    pub allow_private: bool,
}

/// A response: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`, when given.
    pub content_type: Option<String>,
    /// The body, at most [`Caps::max_body_bytes`].
    pub body: Vec<u8>,
}

/// Why an exchange failed; the text names the URL and says what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Not an absolute http(s) URL with a host.
    #[error("`{url}` is not an http(s) URL: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The host did not resolve.
    #[error("could not resolve the host of `{url}`: {source}")]
    Resolve {
        /// The URL.
        url: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The destination (as resolved, written in the URL, redirected to, or connected to) is an
    /// address the policy refuses.
    #[error(
        "refused `{url}`: it leads to {address}, a loopback, private, link-local or otherwise \
         non-public address (or the platform's own); use a public address"
    )]
    Refused {
        /// The URL.
        url: String,
        /// The refused address.
        address: IpAddr,
    },
    /// More redirects than [`ClientOptions::max_redirects`].
    #[error("`{url}` redirected more than {max} times")]
    TooManyRedirects {
        /// The URL first asked for.
        url: String,
        /// The limit.
        max: usize,
    },
    /// A redirect to a non-http(s) URL.
    #[error("`{url}`: {reason}")]
    Redirect {
        /// The URL first asked for.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// No connection could be made (refused, unreachable, the connect timeout, TLS).
    #[error("could not connect for `{url}`: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// An HTTP protocol error, or the connection broke during the exchange.
    #[error("request to `{url}` failed: {reason}")]
    Failed {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The response body is larger than allowed.
    #[error("the response of `{url}` is larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// [`Caps::timeout`] ran out.
    #[error("no complete response from `{url}` within {timeout:?}")]
    TimedOut {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
}

/// A destination refused by the policy, inside reqwest's error chain.
#[derive(Debug, thiserror::Error)]
#[error("{address} is refused by the egress policy")]
struct Refusal {
    address: IpAddr,
}

/// A name that did not resolve, inside reqwest's error chain.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ResolveFailed(std::io::Error);

/// A redirect not followed, inside reqwest's error chain.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RedirectRefused(String);

/// Too many redirects, inside reqwest's error chain.
#[derive(Debug, thiserror::Error)]
#[error("more than {0} redirects")]
struct TooManyRedirects(usize);

/// The resolver: the system's, with every answer checked by the policy.
struct PolicyResolver {
    policy: Policy,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|error| Box::new(ResolveFailed(error)) as BoxError)?
                .collect();
            if addresses.is_empty() {
                let none =
                    std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host} has no address"));
                return Err(Box::new(ResolveFailed(none)) as BoxError);
            }
            let ips: Vec<IpAddr> = addresses.iter().map(SocketAddr::ip).collect();
            if let Err(address) = policy.check_resolved(&host, &ips) {
                tracing::info!(host, %address, "outbound HTTP refused: the name resolves to a refused address");
                return Err(Box::new(Refusal { address }) as BoxError);
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// The connector layer that checks the address each new connection is connected to.
#[derive(Clone)]
struct CheckConnected {
    policy: Policy,
}

impl<S> tower::Layer<S> for CheckConnected {
    type Service = CheckedConnector<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CheckedConnector { inner, policy: self.policy.clone() }
    }
}

#[derive(Clone)]
struct CheckedConnector<S> {
    inner: S,
    policy: Policy,
}

impl<S, R> tower::Service<R> for CheckedConnector<S>
where
    S: tower::Service<R, Error = BoxError>,
    S::Response: Connection + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let connecting = self.inner.call(request);
        let policy = self.policy.clone();
        Box::pin(async move {
            let connection = connecting.await?;
            let mut extensions = hyper::http::Extensions::new();
            connection.connected().get_extras(&mut extensions);
            let Some(info) = extensions.get::<HttpInfo>() else {
                return Err("the connection's address is unknown".into());
            };
            let address = info.remote_addr();
            if policy.permits_connection(address) {
                Ok(connection)
            } else {
                tracing::info!(%address, "outbound HTTP refused: connected to a refused address");
                Err(Box::new(Refusal { address: address.ip() }) as BoxError)
            }
        })
    }
}

/// The outbound HTTP client: one per kind of destination (webhooks, flow requests, prompt audio,
/// speech-to-text, …), each with its policy. Cheap to clone (its connection pool is shared).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    policy: Policy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Client {
    /// A client applying `policy`.
    pub fn new(policy: Policy, options: &ClientOptions) -> Self {
        let (tls, _) = crate::tls("localhost").expect("a constant host name is valid");
        let redirects = if options.max_redirects == 0 {
            reqwest::redirect::Policy::none()
        } else {
            let (policy, max) = (policy.clone(), options.max_redirects);
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > max {
                    return attempt.error(TooManyRedirects(max));
                }
                let url = attempt.url();
                if !matches!(url.scheme(), "http" | "https") {
                    let reason = format!("a redirect to `{url}`, which is not http(s)");
                    return attempt.error(RedirectRefused(reason));
                }
                match policy.check_literal(url) {
                    Ok(()) => attempt.follow(),
                    Err(address) => attempt.error(Refusal { address }),
                }
            })
        };
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .dns_resolver(Arc::new(PolicyResolver { policy: policy.clone() }))
            .connector_layer(CheckConnected { policy: policy.clone() })
            .connect_timeout(options.connect_timeout)
            .pool_max_idle_per_host(options.pool_max_idle_per_host)
            .pool_idle_timeout(options.pool_idle_timeout)
            .redirect(redirects)
            .referer(false)
            .no_proxy()
            .tcp_nodelay(true)
            .user_agent(concat!("opentact/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client of constant options builds");
        Self { http, policy }
    }

    /// The policy this client applies.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A request builder for `method url` (send it with [`Client::execute`]).
    pub fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.http.request(method, url)
    }

    /// Sends `request` (an address literal in its URL checked first) and returns the response
    /// head; read the body with [`read_body`]. Time is the caller's to bound.
    pub async fn execute(&self, request: reqwest::Request) -> Result<reqwest::Response, HttpError> {
        let url = request.url().to_string();
        if !matches!(request.url().scheme(), "http" | "https") {
            return Err(HttpError::InvalidUrl { url, reason: "the scheme must be http or https".to_owned() });
        }
        if request.url().host().is_none() {
            return Err(HttpError::InvalidUrl { url, reason: "it has no host".to_owned() });
        }
        if let Err(address) = self.policy.check_literal(request.url()) {
            return Err(HttpError::Refused { url, address });
        }
        self.http.execute(request).await.map_err(|error| classify(&url, &error))
    }

    /// Sends `method url` with `headers` and `body` (with its `Content-Type` when given) and
    /// reads the whole response within `caps`.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
        caps: &Caps,
    ) -> Result<Response, HttpError> {
        let request = prepare(&self.http, method, url, headers, body)?;
        tokio::time::timeout(caps.timeout, async {
            let response = self.execute(request).await?;
            let status = response.status().as_u16();
            let content_type =
                response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = read_body(response, caps.max_body_bytes).await?;
            Ok(Response { status, content_type, body })
        })
        .await
        .map_err(|_| HttpError::TimedOut { url: url.to_owned(), timeout: caps.timeout })?
    }
}

/// The request `method url` with `headers` and `body`.
fn prepare(
    http: &reqwest::Client,
    method: &str,
    url_text: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Result<reqwest::Request, HttpError> {
    let invalid = |reason: String| HttpError::InvalidUrl { url: url_text.to_owned(), reason };
    let failed = |reason: String| HttpError::Failed { url: url_text.to_owned(), reason };
    let url = Url::parse(url_text).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https".to_owned()));
    }
    let method =
        reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| failed(format!("method: {e}")))?;
    let mut request = http.request(method, url);
    for (name, value) in headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| failed(format!("header {name}: {e}")))?;
        let value = HeaderValue::from_str(value).map_err(|e| failed(format!("header {name}: {e}")))?;
        request = request.header(name, value);
    }
    if let Some((content_type, bytes)) = body {
        request = request.header(CONTENT_TYPE, content_type).header(CONTENT_LENGTH, bytes.len()).body(bytes);
    }
    request.build().map_err(|e| failed(e.to_string()))
}

/// The body of `response`, read as it streams in and abandoned (the connection closed) as soon
/// as it passes `limit` bytes; a declared `Content-Length` over the limit is refused unread.
pub async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, HttpError> {
    let url = response.url().to_string();
    let too_large = || HttpError::TooLarge { url: url.clone(), limit };
    let declared = response.content_length();
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |length| length as usize));
    while let Some(chunk) = response.chunk().await.map_err(|error| classify(&url, &error))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Our error for one of reqwest's: a refusal, a resolution failure or a refused redirect found
/// in its source chain, a timeout, or a failure with reqwest's text (and its causes).
pub fn classify(url: &str, error: &reqwest::Error) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut reasons = Vec::new();
    while let Some(current) = source {
        if let Some(Refusal { address }) = current.downcast_ref::<Refusal>() {
            return HttpError::Refused { url: url.to_owned(), address: *address };
        }
        if let Some(ResolveFailed(io)) = current.downcast_ref::<ResolveFailed>() {
            let source = std::io::Error::new(io.kind(), io.to_string());
            return HttpError::Resolve { url: url.to_owned(), source };
        }
        if let Some(RedirectRefused(reason)) = current.downcast_ref::<RedirectRefused>() {
            return HttpError::Redirect { url: url.to_owned(), reason: reason.clone() };
        }
        if let Some(TooManyRedirects(max)) = current.downcast_ref::<TooManyRedirects>() {
            return HttpError::TooManyRedirects { url: url.to_owned(), max: *max };
        }
        let text = current.to_string();
        if !reasons.iter().any(|seen: &String| seen.contains(&text)) {
            reasons.push(text);
        }
        source = current.source();
    }
    let reason = reasons.join(": ");
    if error.is_connect() {
        // The connect timeout included.
        return HttpError::Connect { url: url.to_owned(), reason };
    }
    HttpError::Failed { url: url.to_owned(), reason }
}

/// One exchange with a client kept for one-off requests (by whether private destinations are
/// allowed): the platform's own outbound requests, such as an OpenID issuer's keys or the
/// `opentact api` command. Redirects are not followed.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
    limits: &Limits,
) -> Result<Response, HttpError> {
    static PUBLIC: OnceLock<Client> = OnceLock::new();
    static ANY: OnceLock<Client> = OnceLock::new();
    let (cell, policy): (_, fn() -> Policy) =
        if limits.allow_private { (&ANY, Policy::any) } else { (&PUBLIC, Policy::public_only) };
    let client = cell.get_or_init(|| Client::new(policy(), &ClientOptions::default()));
    let caps = Caps { timeout: limits.timeout, max_body_bytes: limits.max_body_bytes };
    client.send(method, url, headers, body, &caps).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server answering every request on every connection with `reply(path)`; it counts
    /// connections.
    async fn server(reply: fn(&str) -> String) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&seen[..end]).into_owned();
                            seen.drain(..end + 4);
                            let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                            if socket.write_all(reply(&path).as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                });
            }
        });
        (address, connections)
    }

    fn ok(body: &str) -> String {
        format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}", body.len())
    }

    fn routes(path: &str) -> String {
        match path {
            "/big" => ok(&"x".repeat(100)),
            "/chunked-big" => {
                let chunk = "x".repeat(40);
                format!(
                    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n28\r\n{chunk}\r\n28\r\n{chunk}\r\n0\r\n\r\n"
                )
            }
            "/to-private" => {
                "HTTP/1.1 302 Found\r\nlocation: http://10.255.255.1/x\r\ncontent-length: 0\r\n\r\n"
                    .to_owned()
            }
            "/loop" => "HTTP/1.1 302 Found\r\nlocation: /loop\r\ncontent-length: 0\r\n\r\n".to_owned(),
            "/to-ok" => "HTTP/1.1 301 Moved\r\nlocation: /ok\r\ncontent-length: 0\r\n\r\n".to_owned(),
            _ => ok("ok"),
        }
    }

    const CAPS: Caps = Caps { timeout: Duration::from_secs(5), max_body_bytes: 64 };

    fn loopback_allowed(max_redirects: usize) -> Client {
        let policy = Policy::new(false, &["127.0.0.0/8".to_owned()]).expect("policy");
        Client::new(policy, &ClientOptions { max_redirects, ..ClientOptions::default() })
    }

    #[tokio::test]
    async fn answers_pooling_and_body_caps() {
        let (address, connections) = server(routes).await;
        let client = loopback_allowed(0);
        for _ in 0..3 {
            let response = client.send("GET", &format!("http://{address}/ok"), &[], None, &CAPS).await;
            let response = response.expect("answered");
            assert_eq!((response.status, response.body.as_slice()), (200, b"ok".as_slice()));
            assert_eq!(response.content_type.as_deref(), Some("text/plain"));
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1, "one kept connection");
        for path in ["big", "chunked-big"] {
            let error = client
                .send("GET", &format!("http://{address}/{path}"), &[], None, &CAPS)
                .await
                .expect_err("over the cap");
            assert!(matches!(error, HttpError::TooLarge { limit: 64, .. }), "{path}: {error}");
            assert!(error.to_string().contains("larger than 64 bytes"), "{error}");
        }
        // Redirects are answers when none are followed.
        let response =
            client.send("GET", &format!("http://{address}/to-ok"), &[], None, &CAPS).await.expect("3xx");
        assert_eq!(response.status, 301);
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let (address, connections) = server(routes).await;
        let strict = Client::new(Policy::public_only(), &ClientOptions::default());
        // An address literal: refused before any connection.
        let error =
            strict.send("GET", &format!("http://{address}/ok"), &[], None, &CAPS).await.expect_err("literal");
        assert!(matches!(error, HttpError::Refused { address: ip, .. } if ip.is_loopback()), "{error}");
        // A name resolving to loopback: refused by the resolver.
        let error = strict
            .send("GET", &format!("http://localhost:{}/ok", address.port()), &[], None, &CAPS)
            .await
            .expect_err("name");
        assert!(matches!(error, HttpError::Refused { address: ip, .. } if ip.is_loopback()), "{error}");
        assert!(error.to_string().contains("non-public"), "{error}");
        assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing reached the server");
        // A host:port entry allows that name on that port only.
        let entry = format!("localhost:{}", address.port());
        let named = Client::new(Policy::new(false, &[entry]).expect("policy"), &ClientOptions::default());
        let url = format!("http://localhost:{}/ok", address.port());
        assert_eq!(named.send("GET", &url, &[], None, &CAPS).await.expect("allowed").status, 200);
        // The name resolves (it is in the allow-list), but the connection to another port is
        // refused once connected, before the request is written.
        let (second, _) = server(routes).await;
        let url = format!("http://localhost:{}/ok", second.port());
        let other = named.send("GET", &url, &[], None, &CAPS).await.expect_err("other port");
        assert!(matches!(other, HttpError::Refused { .. }), "{other}");
    }

    #[tokio::test]
    async fn redirects_are_checked_and_counted() {
        let (address, _) = server(routes).await;
        let client = loopback_allowed(3);
        let response =
            client.send("GET", &format!("http://{address}/to-ok"), &[], None, &CAPS).await.expect("followed");
        assert_eq!((response.status, response.body.as_slice()), (200, b"ok".as_slice()));
        let error = client
            .send("GET", &format!("http://{address}/to-private"), &[], None, &CAPS)
            .await
            .expect_err("private target");
        assert!(
            matches!(error, HttpError::Refused { address: ip, .. } if ip == "10.255.255.1".parse::<IpAddr>().expect("ip")),
            "{error}"
        );
        let error =
            client.send("GET", &format!("http://{address}/loop"), &[], None, &CAPS).await.expect_err("loop");
        assert!(matches!(error, HttpError::TooManyRedirects { max: 3, .. }), "{error}");
        assert!(error.to_string().contains("more than 3"), "{error}");
    }

    #[tokio::test]
    async fn the_connected_address_is_checked() {
        // The resolver and literal checks are skipped by going through a policy whose approvals
        // say nothing about this port: the connection layer still refuses.
        let (address, connections) = server(routes).await;
        let policy = Policy::public_only();
        let client = Client::new(policy, &ClientOptions::default());
        let request =
            client.request(reqwest::Method::GET, Url::parse(&format!("http://{address}/")).expect("url"));
        // Straight to reqwest, past `execute`'s literal check.
        let error = client.http.execute(request.build().expect("request")).await.expect_err("refused");
        let error = classify(&format!("http://{address}/"), &error);
        assert!(matches!(error, HttpError::Refused { address: ip, .. } if ip.is_loopback()), "{error}");
        // The TCP handshake happened, but no request was written.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(connections.load(Ordering::SeqCst) <= 1);
    }

    #[tokio::test]
    async fn one_off_sends_and_bad_urls() {
        let (address, _) = server(routes).await;
        let limits = Limits { timeout: Duration::from_secs(5), max_body_bytes: 16, allow_private: true };
        let response = send(
            "POST",
            &format!("http://{address}/ok"),
            &[("x-a", "1")],
            Some(("text/plain", b"hi".to_vec())),
            &limits,
        )
        .await
        .expect("answered");
        assert_eq!(response.status, 200);
        let refused =
            send("GET", "http://127.0.0.1:9/", &[], None, &Limits { allow_private: false, ..limits.clone() })
                .await
                .expect_err("private");
        assert!(matches!(refused, HttpError::Refused { .. }), "{refused}");
        let bad = send("GET", "ftp://example.com/", &[], None, &limits).await.expect_err("scheme");
        assert!(bad.to_string().contains("http or https"), "{bad}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let caps = Caps { timeout: Duration::from_millis(200), max_body_bytes: 16 };
        let error = loopback_allowed(0)
            .send("GET", &format!("http://{address}/"), &[], None, &caps)
            .await
            .expect_err("silent");
        assert!(matches!(error, HttpError::TimedOut { .. }), "{error}");
    }
}
