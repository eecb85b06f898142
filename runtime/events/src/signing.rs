//! Webhook signatures. Each account has an Ed25519 key pair; every webhook request carries
//! `Opentact-Timestamp` (Unix seconds) and `Opentact-Signature` (base64 of the Ed25519
//! signature of `"<timestamp>|<body>"`), which a receiver checks with the account's public key
//! (`GET /rest/event/key`) and a freshness window on the timestamp, so a captured request
//! cannot be replayed later or altered.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// The header with the signature.
pub const SIGNATURE_HEADER: &str = "Opentact-Signature";
/// The header with the signing time (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "Opentact-Timestamp";

/// Why a key could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("the system random generator failed")]
    Random,
    #[error("the stored signing key is not a valid Ed25519 key")]
    BadKey,
}

/// A new key pair: (public key, PKCS#8 document), both base64.
pub fn generate() -> Result<(String, String), SigningError> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| SigningError::Random)?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| SigningError::BadKey)?;
    Ok((STANDARD.encode(pair.public_key().as_ref()), STANDARD.encode(pkcs8.as_ref())))
}

/// A key pair ready to sign (parsing PKCS#8 once per account, not per request).
pub struct Signer(Ed25519KeyPair);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<private>)")
    }
}

impl Signer {
    /// From the base64 PKCS#8 document [`generate`] made.
    pub fn from_pkcs8_base64(pkcs8: &str) -> Result<Self, SigningError> {
        let bytes = STANDARD.decode(pkcs8).map_err(|_| SigningError::BadKey)?;
        Ed25519KeyPair::from_pkcs8(&bytes).map(Signer).map_err(|_| SigningError::BadKey)
    }

    /// The `Opentact-Signature` value for `body` sent at `timestamp`.
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        STANDARD.encode(self.0.sign(&signed_text(timestamp, body)).as_ref())
    }

    /// The headers that sign `body` sent now: `Opentact-Timestamp` and `Opentact-Signature`.
    pub fn headers(&self, body: &[u8]) -> [(&'static str, String); 2] {
        let timestamp = chrono::Utc::now().timestamp();
        [(TIMESTAMP_HEADER, timestamp.to_string()), (SIGNATURE_HEADER, self.sign(timestamp, body))]
    }
}

/// What is signed: `"<timestamp>|<body>"`.
fn signed_text(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut text = format!("{timestamp}|").into_bytes();
    text.extend_from_slice(body);
    text
}

/// Whether `signature` (base64) is the account's signature of `body` at `timestamp`; what a
/// receiver does (and the tests do).
pub fn verify(public_key: &str, timestamp: i64, body: &[u8], signature: &str) -> bool {
    let (Ok(key), Ok(signature)) = (STANDARD.decode(public_key), STANDARD.decode(signature)) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, key).verify(&signed_text(timestamp, body), &signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_time_and_key() {
        let (public, private) = generate().expect("key");
        let signer = Signer::from_pkcs8_base64(&private).expect("signer");
        let signature = signer.sign(1_700_000_000, b"{\"a\":1}");
        assert!(verify(&public, 1_700_000_000, b"{\"a\":1}", &signature));
        assert!(!verify(&public, 1_700_000_001, b"{\"a\":1}", &signature), "another time");
        assert!(!verify(&public, 1_700_000_000, b"{\"a\":2}", &signature), "another body");
        let (other, _) = generate().expect("key");
        assert!(!verify(&other, 1_700_000_000, b"{\"a\":1}", &signature), "another key");
        assert!(!verify(&public, 1_700_000_000, b"{\"a\":1}", "not base64!"));
        assert!(Signer::from_pkcs8_base64("AAAA").is_err());
    }
}
