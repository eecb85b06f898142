//! The verification service: an inbound call's Identity header checked against the call.
//!
//! The order of the checks follows ATIS-1000074 §5.3.1 so that the cheap ones that need no
//! network come first: the header and PASSporT are read, `iat` and `orig`/`dest` compared, and
//! only then is the x5u certificate fetched (through the egress policy's HTTP client, bounded in
//! time, size and concurrency, cached with a TTL and a bound on entries), its chain checked to
//! the configured trust anchors, and the signature checked with its key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyPurposeIdIter};

use crate::identity::{self, IdentityHeader};
use crate::passport::{self, ALG_ES256, PPT_SHAKEN};
use crate::{Attestation, Verstat, canonical_tn};

/// Default for [`VerifierConfig::freshness`]: RFC 8224 §4.1 recommends one minute.
pub const DEFAULT_FRESHNESS: Duration = Duration::from_secs(60);
/// Default for [`VerifierConfig::cache_ttl`].
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(3600);
/// Default for [`VerifierConfig::cache_max_entries`]: distinct signers' certificates kept.
pub const DEFAULT_CACHE_MAX_ENTRIES: usize = 1024;
/// Default for [`VerifierConfig::fetch_timeout`]: the call waits for it before it is answered.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Default for [`VerifierConfig::max_cert_bytes`]: a certificate chain is a few KiB.
pub const DEFAULT_MAX_CERT_BYTES: usize = 64 * 1024;
/// Default for [`VerifierConfig::max_concurrent_fetches`]: callers choose the x5u, so a flood
/// of INVITEs naming slow URLs must not become a flood of outbound requests.
pub const DEFAULT_MAX_CONCURRENT_FETCHES: usize = 16;
/// Most certificates read from one x5u (the signer's and its intermediates).
const MAX_CHAIN_LENGTH: usize = 8;

/// Signature algorithms accepted on the certificates of a chain.
static CHAIN_ALGORITHMS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
];

/// What a [`Verifier`] accepts and how it fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// Largest difference between `iat` and now, either way.
    pub freshness: Duration,
    /// How long a fetched certificate is used before it is fetched again.
    pub cache_ttl: Duration,
    /// Most x5u URLs whose certificates are kept; the oldest go first.
    pub cache_max_entries: usize,
    /// The whole x5u exchange.
    pub fetch_timeout: Duration,
    /// Largest x5u response read.
    pub max_cert_bytes: usize,
    /// x5u fetches in flight at once; over it a call's verification fails (436).
    pub max_concurrent_fetches: usize,
    /// Accept `http:` x5u URLs (SHAKEN requires https; for tests and labs).
    pub allow_http_x5u: bool,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            freshness: DEFAULT_FRESHNESS,
            cache_ttl: DEFAULT_CACHE_TTL,
            cache_max_entries: DEFAULT_CACHE_MAX_ENTRIES,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            max_cert_bytes: DEFAULT_MAX_CERT_BYTES,
            max_concurrent_fetches: DEFAULT_MAX_CONCURRENT_FETCHES,
            allow_http_x5u: false,
        }
    }
}

/// A verified Identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The attestation the signer gave.
    pub attest: Attestation,
    /// The signer's origination identifier.
    pub origid: String,
    /// Where the signer's certificate is.
    pub x5u: String,
    /// The calling number as signed.
    pub orig: String,
    /// The called numbers as signed.
    pub dest: Vec<String>,
    /// When it was signed, seconds since the epoch.
    pub iat: u64,
}

/// Why an Identity did not verify; each names the SIP response that rejects the call
/// ([`VerifyError::status`]) and the verstat that tags it ([`VerifyError::verstat`]).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The call has no Identity header.
    #[error("the call has no Identity header")]
    Missing,
    /// The header or its PASSporT cannot be read.
    #[error("the Identity header is invalid: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// Not ES256, or not a SHAKEN PASSporT.
    #[error("the Identity header uses {what} `{value}`, not what SHAKEN requires")]
    Unsupported {
        /// `alg` or `ppt`.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// The `info` parameter is missing, not an acceptable URL, or not the PASSporT's x5u.
    #[error("the Identity header's info `{info}` is not usable: {reason}")]
    BadInfo {
        /// The info URI (or the x5u).
        info: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The certificate could not be fetched.
    #[error("the certificate at `{x5u}` could not be fetched: {reason}")]
    Fetch {
        /// The URL.
        x5u: String,
        /// What happened.
        reason: String,
    },
    /// The certificate is not usable or does not chain to a trust anchor.
    #[error("the certificate at `{x5u}` is not trusted: {reason}")]
    Untrusted {
        /// The URL.
        x5u: String,
        /// What is wrong.
        reason: String,
    },
    /// The signature does not verify with the certificate's key.
    #[error("the PASSporT's signature does not verify with the certificate at `{x5u}`")]
    BadSignature {
        /// The URL.
        x5u: String,
    },
    /// `iat` is too far from now.
    #[error("the PASSporT was signed at {iat}, more than {freshness:?} from now ({now})")]
    Stale {
        /// The signing time claimed.
        iat: u64,
        /// Now.
        now: u64,
        /// The accepted difference.
        freshness: Duration,
    },
    /// The signed calling number is not the call's.
    #[error("the PASSporT's orig `{signed}` is not the call's caller `{call}`")]
    OrigMismatch {
        /// As signed.
        signed: String,
        /// As on the call.
        call: String,
    },
    /// The call's destination is not among the signed ones.
    #[error("the call's destination `{call}` is not among the PASSporT's dest {signed:?}")]
    DestMismatch {
        /// As signed.
        signed: Vec<String>,
        /// As on the call.
        call: String,
    },
}

impl VerifyError {
    /// The SIP response code that rejects the call (RFC 8224 §6.2.2, ATIS-1000074 §5.3.1).
    pub fn status(&self) -> u16 {
        match self {
            VerifyError::Missing => 428,
            VerifyError::BadInfo { .. } | VerifyError::Fetch { .. } => 436,
            VerifyError::Untrusted { .. } => 437,
            VerifyError::Stale { .. } => 403,
            VerifyError::Malformed { .. }
            | VerifyError::Unsupported { .. }
            | VerifyError::BadSignature { .. }
            | VerifyError::OrigMismatch { .. }
            | VerifyError::DestMismatch { .. } => 438,
        }
    }

    /// The reason phrase of [`VerifyError::status`].
    pub fn reason_phrase(&self) -> &'static str {
        match self.status() {
            428 => "Use Identity Header",
            436 => "Bad Identity Info",
            437 => "Unsupported Credential",
            403 => "Stale Date",
            _ => "Invalid Identity Header",
        }
    }

    /// How a call that is let through anyway is tagged.
    pub fn verstat(&self) -> Verstat {
        match self {
            VerifyError::Missing => Verstat::NoValidation,
            _ => Verstat::Failed,
        }
    }
}

/// Why the configured trust anchors could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustAnchorError {
    /// Not PEM certificates.
    #[error("the STIR/SHAKEN trust anchors are not PEM certificates: {reason}")]
    Pem {
        /// What is wrong.
        reason: String,
    },
    /// A certificate that cannot be a trust anchor.
    #[error("STIR/SHAKEN trust anchor {index} cannot be used: {reason}")]
    Anchor {
        /// Its position in the file, from 0.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

struct CacheEntry {
    chain: Arc<Vec<CertificateDer<'static>>>,
    fetched: Instant,
}

/// The verification service. Share it behind an `Arc`.
pub struct Verifier {
    anchors: Vec<TrustAnchor<'static>>,
    config: VerifierConfig,
    http: opentact_egress::Client,
    cache: Mutex<HashMap<String, CacheEntry>>,
    fetches: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("anchors", &self.anchors.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// SHAKEN certificates carry no extended key usage the verifier must require (ATIS-1000080);
/// an EKU extension is only checked to be well formed.
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for purpose in iter {
            purpose?;
        }
        Ok(())
    }
}

impl Verifier {
    /// A verifier trusting the PEM certificates in `trust_anchors_pem`, fetching x5u
    /// certificates with `http` (the egress policy of the operator's choosing).
    pub fn new(
        trust_anchors_pem: &[u8],
        http: opentact_egress::Client,
        config: VerifierConfig,
    ) -> Result<Self, TrustAnchorError> {
        let certs = CertificateDer::pem_slice_iter(trust_anchors_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TrustAnchorError::Pem { reason: error.to_string() })?;
        if certs.is_empty() {
            return Err(TrustAnchorError::Pem { reason: "no certificate found".to_owned() });
        }
        let anchors = certs
            .iter()
            .enumerate()
            .map(|(index, cert)| {
                webpki::anchor_from_trusted_cert(cert)
                    .map(|anchor| anchor.to_owned())
                    .map_err(|error| TrustAnchorError::Anchor { index, reason: format!("{error:?}") })
            })
            .collect::<Result<_, _>>()?;
        let fetches = tokio::sync::Semaphore::new(config.max_concurrent_fetches.max(1));
        Ok(Self { anchors, config, http, cache: Mutex::default(), fetches })
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Verifies the first of the call's Identity header values (`None`: the call has none)
    /// for a call from `from` to `to` (user parts or numbers; compared canonically).
    pub async fn verify(
        &self,
        identity: Option<&str>,
        from: &str,
        to: &str,
    ) -> Result<Verified, VerifyError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.verify_at(identity, from, to, now).await
    }

    /// [`Verifier::verify`] at `now` (seconds since the epoch).
    pub async fn verify_at(
        &self,
        identity: Option<&str>,
        from: &str,
        to: &str,
        now: u64,
    ) -> Result<Verified, VerifyError> {
        let identity = identity.ok_or(VerifyError::Missing)?;
        let header = identity::parse(identity)
            .map_err(|error| VerifyError::Malformed { reason: error.to_string() })?;
        let IdentityHeader { token, info, alg, ppt } = header;
        if let Some(alg) = alg.filter(|alg| alg != ALG_ES256) {
            return Err(VerifyError::Unsupported { what: "alg", value: alg });
        }
        if let Some(ppt) = ppt.filter(|ppt| ppt != PPT_SHAKEN) {
            return Err(VerifyError::Unsupported { what: "ppt", value: ppt });
        }
        let decoded =
            passport::decode(&token).map_err(|error| VerifyError::Malformed { reason: error.to_string() })?;
        let (header, claims) = (&decoded.header, &decoded.claims);
        if header.alg != ALG_ES256 {
            return Err(VerifyError::Unsupported { what: "alg", value: header.alg.clone() });
        }
        if header.ppt.as_deref() != Some(PPT_SHAKEN) {
            return Err(VerifyError::Unsupported {
                what: "ppt",
                value: header.ppt.clone().unwrap_or_default(),
            });
        }
        let x5u = header.x5u.clone();
        match info {
            None => return Err(VerifyError::BadInfo { info: x5u, reason: "the info parameter is missing" }),
            Some(info) if info != x5u => {
                return Err(VerifyError::BadInfo { info, reason: "it is not the PASSporT's x5u" });
            }
            Some(_) => {}
        }
        self.check_x5u(&x5u)?;

        if now.abs_diff(claims.iat) > self.config.freshness.as_secs() {
            return Err(VerifyError::Stale { iat: claims.iat, now, freshness: self.config.freshness });
        }
        let call_orig = canonical_tn(from).unwrap_or_else(|| from.to_owned());
        if canonical_tn(&claims.orig.tn).as_deref() != Some(call_orig.as_str()) {
            return Err(VerifyError::OrigMismatch { signed: claims.orig.tn.clone(), call: from.to_owned() });
        }
        let call_dest = canonical_tn(to).unwrap_or_else(|| to.to_owned());
        if !claims.dest.tn.iter().any(|tn| canonical_tn(tn).as_deref() == Some(call_dest.as_str())) {
            return Err(VerifyError::DestMismatch { signed: claims.dest.tn.clone(), call: to.to_owned() });
        }

        let chain = self.certificate(&x5u).await?;
        let (leaf, intermediates) = chain.split_first().expect("a cached chain has a certificate");
        let untrusted = |reason: String| VerifyError::Untrusted { x5u: x5u.clone(), reason };
        let end_entity = EndEntityCert::try_from(leaf).map_err(|error| untrusted(format!("{error:?}")))?;
        end_entity
            .verify_for_usage(
                CHAIN_ALGORITHMS,
                &self.anchors,
                intermediates,
                UnixTime::since_unix_epoch(Duration::from_secs(now)),
                AnyUsage,
                None,
                None,
            )
            .map_err(|error| untrusted(format!("{error:?}")))?;
        let signature = passport::fixed_to_der(&decoded.signature)
            .ok_or_else(|| VerifyError::BadSignature { x5u: x5u.clone() })?;
        end_entity
            .verify_signature(webpki::ring::ECDSA_P256_SHA256, decoded.signing_input.as_bytes(), &signature)
            .map_err(|_| VerifyError::BadSignature { x5u: x5u.clone() })?;
        Ok(Verified {
            attest: claims.attest,
            origid: claims.origid.clone(),
            x5u,
            orig: claims.orig.tn.clone(),
            dest: claims.dest.tn.clone(),
            iat: claims.iat,
        })
    }

    fn check_x5u(&self, x5u: &str) -> Result<(), VerifyError> {
        let bad = |reason| VerifyError::BadInfo { info: x5u.to_owned(), reason };
        let url = url::Url::parse(x5u).map_err(|_| bad("it is not a URL"))?;
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.config.allow_http_x5u => Ok(()),
            "http" => Err(bad("SHAKEN certificates are published over https")),
            _ => Err(bad("it is not an https URL")),
        }
    }

    /// The chain at `x5u`, from the cache or fetched.
    async fn certificate(&self, x5u: &str) -> Result<Arc<Vec<CertificateDer<'static>>>, VerifyError> {
        if let Some(chain) = self.cached(x5u) {
            return Ok(chain);
        }
        let fetch_error = |reason: String| VerifyError::Fetch { x5u: x5u.to_owned(), reason };
        let _permit = self
            .fetches
            .try_acquire()
            .map_err(|_| fetch_error("too many certificate fetches in flight".to_owned()))?;
        let caps = opentact_egress::http::Caps {
            timeout: self.config.fetch_timeout,
            max_body_bytes: self.config.max_cert_bytes,
        };
        let accept = [("accept", "application/pem-certificate-chain, application/x-pem-file, */*")];
        let response = self
            .http
            .send("GET", x5u, &accept, None, &caps)
            .await
            .map_err(|error| fetch_error(error.to_string()))?;
        if response.status != 200 {
            return Err(fetch_error(format!("the server answered {}", response.status)));
        }
        let chain = parse_chain(&response.body)
            .map_err(|reason| VerifyError::Untrusted { x5u: x5u.to_owned(), reason })?;
        let chain = Arc::new(chain);
        self.remember(x5u, chain.clone());
        Ok(chain)
    }

    fn cached(&self, x5u: &str) -> Option<Arc<Vec<CertificateDer<'static>>>> {
        let cache = self.cache.lock();
        let entry = cache.get(x5u)?;
        (entry.fetched.elapsed() < self.config.cache_ttl).then(|| entry.chain.clone())
    }

    fn remember(&self, x5u: &str, chain: Arc<Vec<CertificateDer<'static>>>) {
        let max = self.config.cache_max_entries;
        if max == 0 {
            return;
        }
        let mut cache = self.cache.lock();
        if cache.len() >= max && !cache.contains_key(x5u) {
            let ttl = self.config.cache_ttl;
            cache.retain(|_, entry| entry.fetched.elapsed() < ttl);
            while cache.len() >= max {
                let oldest = cache.iter().min_by_key(|(_, entry)| entry.fetched).map(|(url, _)| url.clone());
                let Some(oldest) = oldest else { break };
                cache.remove(&oldest);
            }
        }
        cache.insert(x5u.to_owned(), CacheEntry { chain, fetched: Instant::now() });
    }

    /// How many x5u certificates are cached (for tests and metrics).
    pub fn cached_certificates(&self) -> usize {
        self.cache.lock().len()
    }
}

/// The PEM certificates of an x5u response (DER accepted too: some publish `.der`).
fn parse_chain(body: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = if body.first() == Some(&0x30) {
        vec![CertificateDer::from(body.to_vec())]
    } else {
        CertificateDer::pem_slice_iter(body)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| error.to_string())?
    };
    if chain.is_empty() {
        return Err("the response holds no certificate".to_owned());
    }
    if chain.len() > MAX_CHAIN_LENGTH {
        return Err(format!("the response holds more than {MAX_CHAIN_LENGTH} certificates"));
    }
    Ok(chain)
}
