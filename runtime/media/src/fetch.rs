//! Fetching prompt audio for the `<Play>` verb from customers' URLs.
//!
//! The URL comes from a flow, i.e. from a customer, and the request is made from inside the
//! platform's network, so this is a server-side request forgery boundary: by default a URL
//! whose host resolves to a loopback, private, link-local or otherwise non-public address is
//! refused. The host is resolved once, every resolved address is checked, and the connection
//! goes to exactly a checked address (the request's `Host` header and TLS name still carry the
//! original name), so a DNS answer that changes between check and connect (rebinding) cannot
//! slip through. Redirects are followed a few times, each hop checked the same way.
//!
//! Each fetch is bounded in time ([`FetchPolicy::timeout`], for the whole exchange including
//! redirects) and size ([`FetchPolicy::max_bytes`]); the decoded audio is cached by URL.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{CONTENT_LENGTH, HOST, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use opentact_egress::{ConnectError, is_public};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use url::{Host, Url};

use crate::audio::AudioError;
use crate::cache::AudioCache;

/// Default for [`FetchPolicy::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`FetchPolicy::max_bytes`]: 20 MiB, about 20 minutes of 128 kbit/s MP3.
pub const DEFAULT_MAX_BYTES: usize = 20 * 1024 * 1024;
/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;
/// URLs whose audio is kept in memory.
pub const MEMORY_CACHE_ENTRIES: usize = 128;
/// Upper bound on the memory cache, samples (30 minutes of 8 kHz audio, ~29 MB).
pub const MEMORY_CACHE_SAMPLES: usize = 30 * 60 * crate::SAMPLE_RATE as usize;
/// Longest URL accepted, bytes.
pub const MAX_URL_LEN: usize = 8 * 1024;

/// What a fetch may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Allow loopback, private, link-local and other non-public addresses. For development
    /// and tests, or a deployment whose prompts live on an internal server.
    pub allow_private: bool,
    /// Limit on the whole fetch: resolution, connection, redirects and the body.
    pub timeout: Duration,
    /// Largest body accepted, bytes.
    pub max_bytes: usize,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self { allow_private: false, timeout: DEFAULT_TIMEOUT, max_bytes: DEFAULT_MAX_BYTES }
    }
}

/// Why audio could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL does not parse.
    #[error("invalid audio URL `{url}`: {source}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// The parser's error.
        #[source]
        source: url::ParseError,
    },
    /// The URL is longer than [`MAX_URL_LEN`].
    #[error("audio URL is {len} bytes long; the limit is {MAX_URL_LEN}")]
    UrlTooLong {
        /// Its length.
        len: usize,
    },
    /// Not http or https.
    #[error("unsupported URL scheme `{scheme}` in `{url}`; use http or https")]
    UnsupportedScheme {
        /// The URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// The URL has no host (`http:///x`).
    #[error("audio URL `{url}` has no host")]
    MissingHost {
        /// The URL.
        url: String,
    },
    /// DNS resolution failed.
    #[error("could not resolve `{host}`: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The host resolves to a non-public address and the policy does not allow those.
    #[error(
        "refused to fetch `{url}`: `{host}` is {address}, a loopback, private, link-local or \
         otherwise non-public address; serve the audio from a public address"
    )]
    Refused {
        /// The URL.
        url: String,
        /// Its host.
        host: String,
        /// The refused address.
        address: IpAddr,
    },
    /// No resolved address accepted a connection.
    #[error("could not connect to {address} for `{url}`: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// The last address tried.
        address: SocketAddr,
        /// The connection error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS with `{host}` failed: {source}")]
    Tls {
        /// The host name.
        host: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed (malformed response, connection reset).
    #[error("HTTP request to `{url}` failed: {source}")]
    Http {
        /// The URL.
        url: String,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// The server answered with a status other than 2xx or a followed redirect.
    #[error("`{url}` answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A redirect without a usable `Location`.
    #[error("`{url}` redirected ({status}) without a valid Location header")]
    BadRedirect {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("`{url}` redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects {
        /// The URL first asked for.
        url: String,
    },
    /// The body is larger than [`FetchPolicy::max_bytes`].
    #[error("`{url}` is larger than the {limit}-byte limit for audio")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The fetch took longer than [`FetchPolicy::timeout`].
    #[error("fetching `{url}` took longer than {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// The body is not audio [`crate::audio::decode`] accepts.
    #[error("`{url}` is not playable audio: {source}")]
    Decode {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: AudioError,
    },
}

/// Fetches and decodes audio by URL, with an SSRF policy, limits and a cache.
#[derive(Debug)]
pub struct AudioFetcher {
    policy: FetchPolicy,
    cache: AudioCache<String>,
}

/// Stops the task driving an HTTP connection when the fetch ends (or is cancelled by the
/// timeout), so a slow server cannot keep a connection open behind it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl AudioFetcher {
    /// A fetcher with `policy`. TLS trusts the Mozilla root certificates (webpki-roots), so
    /// the result does not depend on the host's certificate store.
    pub fn new(policy: FetchPolicy) -> Self {
        Self { policy, cache: AudioCache::new(MEMORY_CACHE_ENTRIES, MEMORY_CACHE_SAMPLES) }
    }

    /// The policy this fetcher applies.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// The audio at `url`, decoded to 8 kHz mono PCM; from the cache when it was fetched
    /// before.
    pub async fn fetch(&self, url: &str) -> Result<Arc<[i16]>, FetchError> {
        let url = url.trim();
        if url.len() > MAX_URL_LEN {
            return Err(FetchError::UrlTooLong { len: url.len() });
        }
        if let Some(samples) = self.cache.get(&url.to_owned()) {
            return Ok(samples);
        }
        let timeout = self.policy.timeout;
        let body = tokio::time::timeout(timeout, self.download(url))
            .await
            .map_err(|_| FetchError::Timeout { url: url.to_owned(), timeout })??;
        let samples: Arc<[i16]> = crate::audio::decode_blocking(body)
            .await
            .map_err(|source| FetchError::Decode { url: url.to_owned(), source })?
            .into();
        self.cache.insert(url.to_owned(), samples.clone());
        Ok(samples)
    }

    /// The body at `url`, following redirects.
    async fn download(&self, original: &str) -> Result<Vec<u8>, FetchError> {
        let mut url = Url::parse(original)
            .map_err(|source| FetchError::InvalidUrl { url: original.to_owned(), source })?;
        for _ in 0..=MAX_REDIRECTS {
            match self.get(&url).await? {
                Fetched::Body(body) => return Ok(body),
                Fetched::Redirect(status, location) => {
                    let bad = || FetchError::BadRedirect { url: url.to_string(), status };
                    let location = location.ok_or_else(bad)?;
                    url = url.join(&location).map_err(|_| bad())?;
                }
            }
        }
        Err(FetchError::TooManyRedirects { url: original.to_owned() })
    }

    /// One GET, to a checked address.
    async fn get(&self, url: &Url) -> Result<Fetched, FetchError> {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            scheme => {
                return Err(FetchError::UnsupportedScheme {
                    url: url.to_string(),
                    scheme: scheme.to_owned(),
                });
            }
        };
        let host = url.host().ok_or_else(|| FetchError::MissingHost { url: url.to_string() })?;
        let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
        let host_name = match &host {
            Host::Domain(name) => (*name).to_owned(),
            Host::Ipv4(ip) => ip.to_string(),
            Host::Ipv6(ip) => ip.to_string(),
        };
        let addresses = opentact_egress::resolve(&host_name, port)
            .await
            .map_err(|source| FetchError::Resolve { host: host_name.clone(), source })?;
        if addresses.is_empty() {
            return Err(FetchError::Resolve {
                host: host_name,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"),
            });
        }
        if !self.policy.allow_private
            && let Some(address) = addresses.iter().map(SocketAddr::ip).find(|ip| !is_public(*ip))
        {
            // Any non-public answer refuses the name: a host that mixes public and private
            // addresses is exactly what a rebinding attack looks like.
            return Err(FetchError::Refused { url: url.to_string(), host: host_name, address });
        }
        // Only the checked addresses are dialled (the whole fetch is bounded by the caller's
        // timeout; this one only keeps the error precise).
        let stream = opentact_egress::connect(&addresses, self.policy.timeout).await.map_err(|error| {
            let (address, source) = match error {
                ConnectError::Failed { address, source } => (address, source),
                other => (addresses[0], std::io::Error::new(std::io::ErrorKind::TimedOut, other.to_string())),
            };
            FetchError::Connect { url: url.to_string(), address, source }
        })?;
        if https {
            let (config, server_name) = opentact_egress::tls(&host_name)
                .map_err(|source| FetchError::Tls { host: host_name.clone(), source })?;
            let tls = TlsConnector::from(config)
                .connect(server_name, stream)
                .await
                .map_err(|source| FetchError::Tls { host: host_name, source })?;
            self.exchange(tls, url).await
        } else {
            self.exchange(stream, url).await
        }
    }

    async fn exchange<S>(&self, stream: S, url: &Url) -> Result<Fetched, FetchError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let http = |source| FetchError::Http { url: url.to_string(), source };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(http)?;
        let _connection = AbortOnDrop(tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "audio fetch connection ended");
            }
        }));
        let host_header = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let request = Request::get(target)
            .header(HOST, host_header)
            .header(USER_AGENT, concat!("opentact-media/", env!("CARGO_PKG_VERSION")))
            .body(Empty::new())
            .expect("path, host and user agent from a parsed URL are valid");
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status();
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
            return Ok(Fetched::Redirect(status.as_u16(), location));
        }
        if !status.is_success() {
            return Err(FetchError::Status { url: url.to_string(), status: status.as_u16() });
        }
        let limit = self.policy.max_bytes;
        let too_large = || FetchError::TooLarge { url: url.to_string(), limit };
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(too_large());
        }
        let mut body = response.into_body();
        let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(http)?.into_data() {
                if bytes.len() + data.len() > limit {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(Fetched::Body(bytes))
    }
}

enum Fetched {
    Body(Vec<u8>),
    Redirect(u16, Option<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_urls_are_refused_before_any_connection() {
        let fetcher = AudioFetcher::new(FetchPolicy::default());
        assert!(matches!(fetcher.fetch("not a url").await, Err(FetchError::InvalidUrl { .. })));
        let err = fetcher.fetch("file:///etc/passwd").await.unwrap_err();
        assert!(matches!(&err, FetchError::UnsupportedScheme { scheme, .. } if scheme == "file"), "{err}");
        let err = fetcher.fetch("ftp://example.com/a.wav").await.unwrap_err();
        assert!(matches!(err, FetchError::UnsupportedScheme { .. }));
        let err = fetcher.fetch("http://[fd00::1]:8080/a.wav").await.unwrap_err();
        assert!(
            matches!(err, FetchError::Refused { address, .. } if address == "fd00::1".parse::<IpAddr>().unwrap())
        );
        let err = fetcher.fetch("https://169.254.169.254/latest/meta-data").await.unwrap_err();
        assert!(err.to_string().contains("169.254.169.254"), "{err}");
        let long = format!("http://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(fetcher.fetch(&long).await, Err(FetchError::UrlTooLong { .. })));
    }
}
