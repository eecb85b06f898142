//! The `[stir_shaken]` table and the call engine's STIR/SHAKEN built from it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use opentact_calls::shaken::{Shaken, VerifyPolicy};
use opentact_shaken::{Attestation, Signer, Verifier, VerifierConfig};
use serde::Deserialize;

/// STIR/SHAKEN: signing outbound calls to numbers and verifying inbound ones. Signing needs
/// `cert_file`, `key_file` and `x5u`; verification needs `trust_anchors_file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StirShakenSection {
    /// The operator's STI certificate (PEM; the first certificate is the signer's).
    pub cert_file: Option<PathBuf>,
    /// Its private key: PEM PKCS#8, P-256 (ES256). Keep it 0600; it is never logged.
    pub key_file: Option<PathBuf>,
    /// The https URL where the certificate (and its chain) is published: each PASSporT's x5u.
    pub x5u: Option<String>,
    /// The trust anchors inbound certificates must chain to (PEM, the STI-PA's CA list).
    pub trust_anchors_file: Option<PathBuf>,
    /// `off`, `tag` (verify, let every call in, tagged) or `reject` (refuse calls without a
    /// valid Identity with RFC 8224's codes).
    pub verify_policy: VerifyPolicy,
    /// With `reject`: the weakest attestation let in (`A`, `B` or `C`); unset: any.
    pub minimum_attestation: Option<String>,
    /// Largest difference between a PASSporT's `iat` and now, seconds.
    pub freshness_secs: u64,
    /// How long a fetched x5u certificate is used, seconds.
    pub cert_cache_ttl_secs: u64,
    /// Most x5u certificates kept.
    pub cert_cache_max_entries: usize,
    /// The whole x5u fetch, ms (the call waits for it).
    pub fetch_timeout_ms: u64,
    /// Accept `http:` x5u URLs (SHAKEN requires https; for labs and tests).
    pub allow_http_x5u: bool,
    /// Let x5u URLs reach loopback and private addresses (the egress policy's exception).
    pub x5u_allow_private: bool,
    /// Networks, addresses or `host:port` x5u fetches may reach although not public.
    pub x5u_allow: Vec<String>,
}

impl Default for StirShakenSection {
    fn default() -> Self {
        let verifier = VerifierConfig::default();
        Self {
            cert_file: None,
            key_file: None,
            x5u: None,
            trust_anchors_file: None,
            verify_policy: VerifyPolicy::default(),
            minimum_attestation: None,
            freshness_secs: verifier.freshness.as_secs(),
            cert_cache_ttl_secs: verifier.cache_ttl.as_secs(),
            cert_cache_max_entries: verifier.cache_max_entries,
            fetch_timeout_ms: u64::try_from(verifier.fetch_timeout.as_millis()).unwrap_or(2000),
            allow_http_x5u: false,
            x5u_allow_private: false,
            x5u_allow: Vec::new(),
        }
    }
}

impl StirShakenSection {
    /// The signer and verifier this table configures (each only when its files are given).
    pub fn build(&self) -> anyhow::Result<Shaken> {
        let signer = match (&self.cert_file, &self.key_file, &self.x5u) {
            (None, None, None) => None,
            (Some(cert), Some(key), Some(x5u)) => {
                let cert_pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
                let key_pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
                Some(Arc::new(Signer::new(&cert_pem, &key_pem, x5u).context("stir_shaken")?))
            }
            _ => anyhow::bail!("stir_shaken: signing needs all of cert_file, key_file and x5u"),
        };
        let verifier = match &self.trust_anchors_file {
            None => None,
            Some(file) => {
                let pem = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                let policy = opentact_egress::Policy::new(self.x5u_allow_private, &self.x5u_allow)
                    .context("stir_shaken.x5u_allow")?;
                let http =
                    opentact_egress::Client::new(policy, &opentact_egress::http::ClientOptions::default());
                let config = VerifierConfig {
                    freshness: Duration::from_secs(self.freshness_secs),
                    cache_ttl: Duration::from_secs(self.cert_cache_ttl_secs),
                    cache_max_entries: self.cert_cache_max_entries,
                    fetch_timeout: Duration::from_millis(self.fetch_timeout_ms),
                    allow_http_x5u: self.allow_http_x5u,
                    ..VerifierConfig::default()
                };
                Some(Arc::new(Verifier::new(&pem, http, config).context("stir_shaken.trust_anchors_file")?))
            }
        };
        let minimum =
            match self.minimum_attestation.as_deref() {
                None => None,
                Some(level) => Some(Attestation::parse(level).with_context(|| {
                    format!("stir_shaken.minimum_attestation: {level:?} is not A, B or C")
                })?),
            };
        Ok(Shaken::new(signer, verifier, self.verify_policy, minimum))
    }
}
