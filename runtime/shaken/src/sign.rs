//! The authentication service: the operator's certificate and ES256 key, a PASSporT per call.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::passport::{self, Claims, DestTn, Header, OrigTn};
use crate::{Attestation, identity};

/// Why the signer could not be set up, or a call not signed.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The certificate file holds no PEM certificate.
    #[error("the STIR/SHAKEN certificate is not a PEM certificate: {reason}")]
    Certificate {
        /// What is wrong.
        reason: String,
    },
    /// The key is not a PEM PKCS#8 P-256 key.
    #[error(
        "the STIR/SHAKEN key is not a PEM PKCS#8 P-256 (ES256) key ({reason}); create one with \
         `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`"
    )]
    Key {
        /// What is wrong.
        reason: String,
    },
    /// The key does not belong to the certificate.
    #[error("the STIR/SHAKEN key does not match the certificate's public key")]
    KeyMismatch,
    /// The x5u is not an http(s) URL.
    #[error("the STIR/SHAKEN x5u `{x5u}` is not an http(s) URL")]
    X5u {
        /// The configured value.
        x5u: String,
    },
    /// A number is not a telephone number.
    #[error("`{number}` is not a telephone number, so a call from or to it cannot be signed")]
    NotANumber {
        /// The number.
        number: String,
    },
    /// ring could not sign.
    #[error("signing the PASSporT failed")]
    Sign,
}

/// The operator's signing identity. Cheap to share behind an `Arc`.
pub struct Signer {
    key: EcdsaKeyPair,
    x5u: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("x5u", &self.x5u).finish_non_exhaustive()
    }
}

impl Signer {
    /// The signer of the PEM certificate `cert_pem` (its first certificate is the operator's)
    /// with the PEM PKCS#8 key `key_pem`, publishing the certificate at `x5u`. Refuses a key
    /// that is not the certificate's.
    pub fn new(cert_pem: &[u8], key_pem: &[u8], x5u: &str) -> Result<Self, SignerError> {
        let url = url::Url::parse(x5u).map_err(|_| SignerError::X5u { x5u: x5u.to_owned() })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SignerError::X5u { x5u: x5u.to_owned() });
        }
        let cert = CertificateDer::from_pem_slice(cert_pem)
            .map_err(|error| SignerError::Certificate { reason: error.to_string() })?;
        let key_der = PrivatePkcs8KeyDer::from_pem_slice(key_pem)
            .map_err(|error| SignerError::Key { reason: error.to_string() })?;
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key_der.secret_pkcs8_der(), &rng)
                .map_err(|error| SignerError::Key { reason: error.to_string() })?;
        let signer = Self { key, x5u: x5u.to_owned(), rng };
        // A key that is not the certificate's would sign every call with a signature no
        // verifier accepts: refuse it at start.
        let probe = b"opentact stir/shaken key check";
        let signature = signer.sign_bytes(probe)?;
        let der = passport::fixed_to_der(&signature).ok_or(SignerError::Sign)?;
        let end_entity = webpki::EndEntityCert::try_from(&cert)
            .map_err(|error| SignerError::Certificate { reason: format!("{error:?}") })?;
        end_entity
            .verify_signature(webpki::ring::ECDSA_P256_SHA256, probe, &der)
            .map_err(|_| SignerError::KeyMismatch)?;
        Ok(signer)
    }

    /// Where the certificate is published.
    pub fn x5u(&self) -> &str {
        &self.x5u
    }

    /// The signed PASSporT (compact JWS) of `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, SignerError> {
        let input = passport::signing_input(&Header::shaken(&self.x5u), claims);
        let signature = self.sign_bytes(input.as_bytes())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// The Identity header value for a call from `orig` to `dest` signed now with `attest`;
    /// `origid` identifies where the call entered the platform (ATIS-1000074 §5.2.4).
    pub fn identity_header(
        &self,
        orig: &str,
        dest: &str,
        attest: Attestation,
        origid: &str,
    ) -> Result<String, SignerError> {
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.identity_header_at(orig, dest, attest, origid, iat)
    }

    /// [`Signer::identity_header`] with the signing time given (seconds since the epoch).
    pub fn identity_header_at(
        &self,
        orig: &str,
        dest: &str,
        attest: Attestation,
        origid: &str,
        iat: u64,
    ) -> Result<String, SignerError> {
        let tn = |number: &str| {
            crate::canonical_tn(number).ok_or_else(|| SignerError::NotANumber { number: number.to_owned() })
        };
        let claims = Claims {
            attest,
            dest: DestTn { tn: vec![tn(dest)?] },
            iat,
            orig: OrigTn { tn: tn(orig)? },
            origid: origid.to_owned(),
        };
        Ok(identity::format(&self.sign(&claims)?, &self.x5u))
    }

    /// The `origid` of calls that enter the platform from `scope` (an account): a UUID derived
    /// from it and the x5u, stable per account so a traceback can find the customer, opaque
    /// to the terminating network (ATIS-1000074 §5.2.4).
    pub fn origid(&self, scope: &str) -> String {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [b"opentact origid\0".as_slice(), self.x5u.as_bytes(), b"\0", scope.as_bytes()] {
            context.update(part);
        }
        let digest = context.finish();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest.as_ref()[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    }

    fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        let signature = self.key.sign(&self.rng, message).map_err(|_| SignerError::Sign)?;
        Ok(signature.as_ref().to_vec())
    }
}
