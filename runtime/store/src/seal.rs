//! Secrets the platform must read back are sealed before they are stored.
//!
//! Passwords and tokens are hashed; an account's webhook signing key cannot be (the platform
//! signs with it). It is sealed instead — ChaCha20-Poly1305 under the server's secret key file,
//! a fresh random nonce per value, and the owning account's id as associated data, so a sealed
//! value copied into another account's row does not open. A database dump or a stolen backup
//! then holds no usable key without the key file, which lives outside the database.
//!
//! Stored form: `sealed:v1:<base64(nonce ‖ ciphertext ‖ tag)>`. Values stored before sealing
//! existed (no prefix) are read as they are and sealed again the next time they are written.

use base64::Engine as _;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::error::{Result, StoreError};

/// The prefix of a sealed value; the version names the algorithm and layout.
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// Length of the server's secret key, bytes.
pub const SECRET_KEY_LEN: usize = 32;

/// Seals and opens values under the server's secret key.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

impl Sealer {
    /// A sealer under `key` ([`SECRET_KEY_LEN`] bytes).
    pub fn new(key: &[u8]) -> Result<Self> {
        if key.len() != SECRET_KEY_LEN {
            return Err(StoreError::Sealing { reason: "the secret key must be 32 bytes" });
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, key)
            .map_err(|_| StoreError::Sealing { reason: "the secret key was refused" })?;
        Ok(Sealer { key: LessSafeKey::new(key) })
    }

    /// `value` sealed, bound to `owner` (the account id).
    pub fn seal(&self, value: &str, owner: &str) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(StoreError::Random)?;
        let mut data = value.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.as_bytes()),
                &mut data,
            )
            .map_err(|_| StoreError::Sealing { reason: "sealing failed" })?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{SEALED_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(out)))
    }

    /// The value `stored` holds for `owner`: opened when sealed, as it is when stored before
    /// sealing (no prefix).
    pub fn open(&self, stored: &str, owner: &str) -> Result<String> {
        let Some(sealed) = stored.strip_prefix(SEALED_PREFIX) else { return Ok(stored.to_owned()) };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| StoreError::Sealing { reason: "a sealed value is not base64" })?;
        if bytes.len() < NONCE_LEN {
            return Err(StoreError::Sealing { reason: "a sealed value is too short" });
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| StoreError::Sealing { reason: "a sealed value's nonce is malformed" })?;
        let mut data = data.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(owner.as_bytes()), &mut data).map_err(|_| {
            StoreError::Sealing { reason: "a sealed value does not open with this key (another key file, or another owner's row)" }
        })?;
        String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Sealing { reason: "a sealed value is not text" })
    }
}

/// Opens `stored` without a sealer: plain values pass, sealed ones are an error that says why.
pub(crate) fn open_without_key(stored: &str) -> Result<String> {
    if stored.starts_with(SEALED_PREFIX) {
        return Err(StoreError::Sealing {
            reason: "the value is sealed, and this store was opened without the server's secret key",
        });
    }
    Ok(stored.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_for_its_owner_only() {
        let sealer = Sealer::new(&[7u8; SECRET_KEY_LEN]).expect("key");
        let sealed = sealer.seal("private key bytes", "account-a").expect("seal");
        assert!(sealed.starts_with(SEALED_PREFIX) && !sealed.contains("private key bytes"));
        assert_ne!(
            sealed,
            sealer.seal("private key bytes", "account-a").expect("seal"),
            "a fresh nonce each time"
        );
        assert_eq!(sealer.open(&sealed, "account-a").expect("open"), "private key bytes");
        assert!(sealer.open(&sealed, "account-b").is_err(), "bound to its owner");
        let other = Sealer::new(&[8u8; SECRET_KEY_LEN]).expect("key");
        assert!(other.open(&sealed, "account-a").is_err(), "another key file opens nothing");
        assert_eq!(
            sealer.open("legacy", "account-a").expect("plain"),
            "legacy",
            "values stored before sealing"
        );
        assert!(open_without_key(&sealed).is_err());
        assert!(Sealer::new(&[1u8; 16]).is_err());
    }
}
