//! One HTTP/1.1 exchange with a destination checked by the policy: for the platform's own
//! outbound requests (an OpenID issuer's keys, webhooks), where a whole body is sent and a
//! bounded body read back.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::collections::HashMap;

use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use url::Url;

use crate::{connect, is_non_public, resolve, tls};

/// What an exchange may do.
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
    /// The body, at most [`Limits::max_body_bytes`].
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
    /// The host resolves to a non-public address and the limits do not allow those.
    #[error("refused `{url}`: it resolves to {address}, a loopback, private or otherwise non-public address")]
    Refused {
        /// The URL.
        url: String,
        /// The refused address.
        address: std::net::IpAddr,
    },
    /// No connection, TLS failure, or an HTTP protocol error.
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
    /// [`Limits::timeout`] ran out.
    #[error("no complete response from `{url}` within {timeout:?}")]
    TimedOut {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
}

/// Sends `method url` with `headers` and `body` (sent with its `Content-Type` when given) to a
/// checked address of the URL's host and reads the response. Redirects are not followed.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
    limits: &Limits,
) -> Result<Response, HttpError> {
    tokio::time::timeout(limits.timeout, async {
        let (origin, request) = prepare(method, url, headers, body)?;
        let mut sender = dial(&origin, url, limits).await?;
        // The connection closes when the sender is dropped after this one exchange.
        exchange(&mut sender, request, url, limits.max_body_bytes).await
    })
    .await
    .map_err(|_| HttpError::TimedOut { url: url.to_owned(), timeout: limits.timeout })?
}

/// Where a connection goes: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Origin {
    https: bool,
    host: String,
    port: u16,
}

/// Most idle connections kept per origin.
const MAX_IDLE_PER_ORIGIN: usize = 256;

/// Keeps HTTP/1.1 connections open between exchanges with the same origin (webhooks send many
/// small requests to one receiver). A new connection is checked and dialled exactly as
/// [`send`] does; a kept one is reused only for its own origin.
#[derive(Default)]
pub struct Pool {
    idle: std::sync::Mutex<HashMap<Origin, Vec<SendRequest<Full<Bytes>>>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

impl Pool {
    /// Like [`send`], on a kept connection when one is idle.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
        limits: &Limits,
    ) -> Result<Response, HttpError> {
        tokio::time::timeout(limits.timeout, async {
            let (origin, request) = prepare(method, url, headers, body)?;
            let mut sender = match self.take(&origin).await {
                Some(sender) => sender,
                None => dial(&origin, url, limits).await?,
            };
            let response = exchange(&mut sender, request, url, limits.max_body_bytes).await?;
            self.put(origin, sender);
            Ok(response)
        })
        .await
        .map_err(|_| HttpError::TimedOut { url: url.to_owned(), timeout: limits.timeout })?
    }

    /// An idle connection to `origin` that can take a request now.
    async fn take(&self, origin: &Origin) -> Option<SendRequest<Full<Bytes>>> {
        loop {
            let mut sender = self.lock().get_mut(origin)?.pop()?;
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn put(&self, origin: Origin, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        let kept = idle.entry(origin).or_default();
        if kept.len() < MAX_IDLE_PER_ORIGIN {
            kept.push(sender);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Origin, Vec<SendRequest<Full<Bytes>>>>> {
        // A panic while holding the lock cannot leave the map inconsistent (push/pop only).
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Checks the URL and builds the request.
fn prepare(
    method: &str,
    url_text: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Result<(Origin, Request<Full<Bytes>>), HttpError> {
    let invalid =
        |reason: &str| HttpError::InvalidUrl { url: url_text.to_owned(), reason: reason.to_owned() };
    let failed = |reason: String| HttpError::Failed { url: url_text.to_owned(), reason };
    let url = Url::parse(url_text).map_err(|e| invalid(&e.to_string()))?;
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        _ => return Err(invalid("the scheme must be http or https")),
    };
    let host = url.host_str().ok_or_else(|| invalid("it has no host"))?.to_owned();
    let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    let mut request = Request::builder()
        .method(method)
        .uri(target)
        .header(HOST, authority)
        .header(USER_AGENT, concat!("opentact/", env!("CARGO_PKG_VERSION")));
    for (name, value) in headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| failed(format!("header {name}: {e}")))?;
        let value = HeaderValue::from_str(value).map_err(|e| failed(format!("header {name}: {e}")))?;
        request = request.header(name, value);
    }
    let payload = match body {
        Some((content_type, bytes)) => {
            request = request.header(CONTENT_TYPE, content_type).header(CONTENT_LENGTH, bytes.len());
            Bytes::from(bytes)
        }
        None => Bytes::new(),
    };
    let request = request.body(Full::new(payload)).map_err(|e| failed(e.to_string()))?;
    Ok((Origin { https, host, port }, request))
}

/// A new HTTP/1.1 connection to a checked address of `origin`'s host (TLS verified against the
/// host name for https); its driver runs until the connection ends.
async fn dial(origin: &Origin, url: &str, limits: &Limits) -> Result<SendRequest<Full<Bytes>>, HttpError> {
    let addresses: Vec<SocketAddr> = resolve(&origin.host, origin.port)
        .await
        .map_err(|source| HttpError::Resolve { url: url.to_owned(), source })?;
    if !limits.allow_private
        && let Some(address) = addresses.iter().map(SocketAddr::ip).find(|ip| is_non_public(*ip))
    {
        return Err(HttpError::Refused { url: url.to_owned(), address });
    }
    let failed = |reason: String| HttpError::Failed { url: url.to_owned(), reason };
    let tcp = connect(&addresses, limits.timeout).await.map_err(|e| failed(e.to_string()))?;
    if origin.https {
        let (config, name) = tls(&origin.host).map_err(|e| failed(format!("TLS: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| failed(format!("TLS: {e}")))?;
        handshake(stream, url).await
    } else {
        handshake(tcp, url).await
    }
}

async fn handshake<S>(stream: S, url: &str) -> Result<SendRequest<Full<Bytes>>, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| HttpError::Failed { url: url.to_owned(), reason: e.to_string() })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "outbound HTTP connection ended");
        }
    });
    Ok(sender)
}

/// One request on `sender` and its whole (bounded) response.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
    url: &str,
    max_body_bytes: usize,
) -> Result<Response, HttpError> {
    let failed = |reason: String| HttpError::Failed { url: url.to_owned(), reason };
    let response = sender.send_request(request).await.map_err(|e| failed(e.to_string()))?;
    let status = response.status().as_u16();
    let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = Limited::new(response.into_body(), max_body_bytes).collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            HttpError::TooLarge { url: url.to_owned(), limit: max_body_bytes }
        } else {
            failed(e.to_string())
        }
    })?;
    Ok(Response { status, content_type, body: body.to_bytes().to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot server: answers `reply` and hands back the request it read.
    async fn server(reply: &'static [u8]) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            socket.write_all(reply).await.expect("write");
            String::from_utf8_lossy(&seen).into_owned()
        });
        (url, task)
    }

    fn limits(allow_private: bool) -> Limits {
        Limits { timeout: Duration::from_secs(5), max_body_bytes: 16, allow_private }
    }

    #[tokio::test]
    async fn a_get_reads_status_type_and_body() {
        let (url, seen) =
            server(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}").await;
        let response =
            send("GET", &format!("{url}/keys?x=1"), &[("accept", "application/json")], None, &limits(true))
                .await
                .expect("answered");
        assert_eq!(response.status, 200);
        assert_eq!(response.content_type.as_deref(), Some("application/json"));
        assert_eq!(response.body, b"{}");
        let request = seen.await.expect("server");
        assert!(request.starts_with("GET /keys?x=1 HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("accept: application/json\r\n"), "{request}");
    }

    #[tokio::test]
    async fn limits_are_enforced() {
        let refused =
            send("GET", "http://127.0.0.1:9/", &[], None, &limits(false)).await.expect_err("private");
        assert!(matches!(refused, HttpError::Refused { .. }), "{refused}");
        let (url, _) =
            server(b"HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n0123456789012345678901234567890123456789")
                .await;
        let large = send("GET", &url, &[], None, &limits(true)).await.expect_err("too large");
        assert!(matches!(large, HttpError::TooLarge { limit: 16, .. }), "{large}");
        let bad = send("GET", "ftp://example.com/", &[], None, &limits(true)).await.expect_err("scheme");
        assert!(bad.to_string().contains("http or https"), "{bad}");
    }

    /// Answers every request on every connection with `200 ok`, counting connections.
    async fn keep_alive_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if socket.write_all(reply).await.is_err() {
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
        (url, connections)
    }

    #[tokio::test]
    async fn a_pool_reuses_its_connection_and_one_shot_sends_do_not() {
        let (url, connections) = keep_alive_server().await;
        let pool = Pool::default();
        for _ in 0..5 {
            let response = pool.send("GET", &url, &[], None, &limits(true)).await.expect("answered");
            assert_eq!((response.status, response.body.as_slice()), (200, b"ok".as_slice()));
        }
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1, "one kept connection");
        send("GET", &url, &[], None, &limits(true)).await.expect("answered");
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2, "a one-shot send dials anew");
        // The pool applies the same address policy to new connections.
        let refused =
            pool.send("GET", "http://127.0.0.1:9/", &[], None, &limits(false)).await.expect_err("private");
        assert!(matches!(refused, HttpError::Refused { .. }), "{refused}");
    }
}
