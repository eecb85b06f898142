//! STIR/SHAKEN: who signs for a caller's number, and whether an inbound call's signature holds.
//!
//! - [`passport`] — the PASSporT (RFC 8225) with the SHAKEN extension (RFC 8588): its JOSE
//!   header and claims, serialised with their keys in lexicographic order, signed ES256;
//! - [`identity`] — the SIP `Identity` header field that carries it (RFC 8224):
//!   `<jwt>;info=<x5u>;alg=ES256;ppt=shaken`;
//! - [`Signer`] — the operator's certificate and key: a PASSporT per outbound call with the
//!   attestation the platform can vouch for ([`Attestation`]);
//! - [`Verifier`] — an inbound Identity header checked: the x5u certificate fetched through the
//!   egress policy's HTTP client and cached, its chain to the configured trust anchors, the
//!   signature, `iat` freshness, and `orig`/`dest` against the call. A failure is a
//!   [`VerifyError`] that names the SIP response code (428, 436, 437, 438, 403 Stale Date) and
//!   the verstat ([`Verstat`]) the call is tagged with.
//!
//! ```text
//!  outbound:  call from a leased number ──► Signer::identity_header(orig, dest, attest)
//!                                            └─► INVITE … Identity: <jwt>;info=<x5u>;…
//!  inbound:   INVITE with Identity ──► Verifier::verify(header, from, to)
//!               ├─ parse header and PASSporT      (438 / 436)
//!               ├─ x5u: cache or fetch via egress  (436)
//!               ├─ chain to trust anchors           (437)
//!               ├─ ES256 signature                  (438)
//!               ├─ iat within freshness             (403 Stale Date)
//!               └─ orig/dest match the call         (438) ──► Verified { attest, … }
//! ```

pub mod identity;
pub mod passport;
mod sign;
mod verify;

pub use sign::{Signer, SignerError};
pub use verify::{
    DEFAULT_CACHE_MAX_ENTRIES, DEFAULT_CACHE_TTL, DEFAULT_FETCH_TIMEOUT, DEFAULT_FRESHNESS,
    DEFAULT_MAX_CERT_BYTES, DEFAULT_MAX_CONCURRENT_FETCHES, TrustAnchorError, Verified, Verifier,
    VerifierConfig, VerifyError,
};

use serde::{Deserialize, Serialize};

/// The SHAKEN attestation level (RFC 8588 `attest`, ATIS-1000074 §5.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Attestation {
    /// Full: the platform authenticated the customer and the customer may use the number.
    A,
    /// Partial: the platform authenticated the customer, but not its right to the number.
    B,
    /// Gateway: the platform only knows where the call entered its network.
    C,
}

impl Attestation {
    /// `"A"`, `"B"` or `"C"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Attestation::A => "A",
            Attestation::B => "B",
            Attestation::C => "C",
        }
    }

    /// Parses `"A"`, `"B"` or `"C"`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "A" => Some(Attestation::A),
            "B" => Some(Attestation::B),
            "C" => Some(Attestation::C),
            _ => None,
        }
    }

    /// Whether this level is at least as strong as `minimum` (A is the strongest).
    pub fn at_least(self, minimum: Attestation) -> bool {
        self <= minimum
    }
}

impl std::fmt::Display for Attestation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verification status a verified call is tagged with (ATIS-1000074 §5.3.1, the `verstat`
/// parameter of RFC 8224 §14 / 3GPP TS 24.229).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verstat {
    /// The Identity header verified.
    Passed,
    /// An Identity header was present and did not verify.
    Failed,
    /// No Identity header, or it was not verified.
    NoValidation,
}

impl Verstat {
    /// `TN-Validation-Passed`, `TN-Validation-Failed` or `No-TN-Validation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verstat::Passed => "TN-Validation-Passed",
            Verstat::Failed => "TN-Validation-Failed",
            Verstat::NoValidation => "No-TN-Validation",
        }
    }
}

impl std::fmt::Display for Verstat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A telephone number in the canonical form PASSporT `tn` claims use (RFC 8224 §8.3): the
/// digits (and `*`, `#`) only — no `+`, no visual separators. `None` when nothing is left
/// (a SIP user name that is not a number).
pub fn canonical_tn(text: &str) -> Option<String> {
    let user = text.split([';', '@']).next().unwrap_or(text);
    let user = user.strip_prefix("tel:").or_else(|| user.strip_prefix("sip:")).unwrap_or(user);
    if user.chars().any(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let tn: String = user.chars().filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#')).collect();
    (!tn.is_empty()).then_some(tn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attestation_order_and_text() {
        assert!(Attestation::A.at_least(Attestation::B));
        assert!(Attestation::B.at_least(Attestation::B));
        assert!(!Attestation::C.at_least(Attestation::B));
        for level in [Attestation::A, Attestation::B, Attestation::C] {
            assert_eq!(Attestation::parse(level.as_str()), Some(level));
        }
        assert_eq!(Attestation::parse("D"), None);
    }

    #[test]
    fn telephone_numbers_are_canonical_digits() {
        assert_eq!(canonical_tn("+1 (202) 555-0100").as_deref(), Some("12025550100"));
        assert_eq!(canonical_tn("12025550100;npdi").as_deref(), Some("12025550100"));
        assert_eq!(canonical_tn("tel:+12025550100").as_deref(), Some("12025550100"));
        assert_eq!(canonical_tn("alice"), None);
        assert_eq!(canonical_tn(""), None);
    }
}
