//! Fetching prompt audio for the `<Play>` verb from customers' URLs.
//!
//! The URL comes from a flow, i.e. from a customer, and the request is made from inside the
//! platform's network, so this is a server-side request forgery boundary: by default a URL
//! whose host resolves to a loopback, private, link-local or otherwise non-public address (or
//! the platform's own) is refused. The request goes through the platform's one outbound HTTP
//! client ([`opentact_egress::http::Client`]): its resolver checks every address a name
//! resolves to, address literals and each redirect's target are checked before they are
//! dialled, and every connection's peer address is checked again (DNS rebinding cannot slip
//! through). Redirects are followed up to [`MAX_REDIRECTS`] times.
//!
//! Each fetch is bounded in time ([`FetchPolicy::timeout`], for the whole exchange including
//! redirects) and size ([`FetchPolicy::max_bytes`], checked while the body streams in); the
//! decoded audio is cached by URL.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use opentact_egress::Policy;
use opentact_egress::http::{Client, ClientOptions, HttpError};
use url::Url;

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
    /// No connection could be made (refused, unreachable, TLS).
    #[error("could not connect for `{url}`: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The HTTP exchange failed (malformed response, connection reset).
    #[error("HTTP request to `{url}` failed: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The server answered with a status other than 2xx or a followed redirect.
    #[error("`{url}` answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A redirect to a URL that is not http(s).
    #[error("`{url}`: {reason}")]
    BadRedirect {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
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
    client: Client,
    cache: AudioCache<String>,
}

impl AudioFetcher {
    /// A fetcher with `policy`. TLS trusts the Mozilla root certificates (webpki-roots), so
    /// the result does not depend on the host's certificate store.
    pub fn new(policy: FetchPolicy) -> Self {
        let egress = if policy.allow_private { Policy::any() } else { Policy::public_only() };
        let options = ClientOptions {
            connect_timeout: policy.timeout,
            max_redirects: MAX_REDIRECTS,
            ..ClientOptions::default()
        };
        let client = Client::new(egress, &options);
        Self { policy, client, cache: AudioCache::new(MEMORY_CACHE_ENTRIES, MEMORY_CACHE_SAMPLES) }
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
        let url = Url::parse(original)
            .map_err(|source| FetchError::InvalidUrl { url: original.to_owned(), source })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::UnsupportedScheme {
                url: url.to_string(),
                scheme: url.scheme().to_owned(),
            });
        }
        let Some(host) = url.host_str().map(str::to_owned) else {
            return Err(FetchError::MissingHost { url: url.to_string() });
        };
        let request = self
            .client
            .request(opentact_egress::http::Method::GET, url.clone())
            .build()
            .map_err(|error| FetchError::Http { url: url.to_string(), reason: error.to_string() })?;
        let response = self.client.execute(request).await.map_err(|error| self.failed(&host, error))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status { url: response.url().to_string(), status: status.as_u16() });
        }
        opentact_egress::http::read_body(response, self.policy.max_bytes)
            .await
            .map_err(|error| self.failed(&host, error))
    }

    /// Our error for the client's.
    fn failed(&self, host: &str, error: HttpError) -> FetchError {
        let host = host.to_owned();
        match error {
            HttpError::InvalidUrl { url, reason } | HttpError::Redirect { url, reason } => {
                FetchError::BadRedirect { url, reason }
            }
            HttpError::Resolve { source, .. } => FetchError::Resolve { host, source },
            HttpError::Refused { url, address } => FetchError::Refused { url, host, address },
            HttpError::TooManyRedirects { url, .. } => FetchError::TooManyRedirects { url },
            HttpError::Connect { url, reason } => FetchError::Connect { url, reason },
            HttpError::Failed { url, reason } => FetchError::Http { url, reason },
            HttpError::TooLarge { url, limit } => FetchError::TooLarge { url, limit },
            HttpError::TimedOut { url, .. } => FetchError::Timeout { url, timeout: self.policy.timeout },
        }
    }
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
