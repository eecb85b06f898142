//! Hashing of secrets: argon2id for account passwords, SHA-256 for API tokens, MD5 for SIP
//! digest HA1 (see [`crate::model::DigestCredentials`] for why).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};

/// Bytes of randomness in an API token (256 bits: nothing to brute-force).
pub const TOKEN_BYTES: usize = 32;

/// Bytes of salt in an argon2id password hash (the PHC recommendation).
const SALT_BYTES: usize = 16;

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane — OWASP's
/// recommended minimum), on a blocking thread so it does not stall the runtime.
pub async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_owned();
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(StoreError::Random)?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&salt).map_err(StoreError::PasswordHash)?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(StoreError::PasswordHash)
    })
    .await
    .map_err(StoreError::Task)?
}

/// Checks a password against a PHC hash string; `Ok(false)` for a wrong password.
pub async fn verify_password(password: &str, phc: &str) -> Result<bool> {
    let password = password.to_owned();
    let phc = phc.to_owned();
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&phc).map_err(StoreError::PasswordHash)?;
        match Argon2::default().verify_password(password.as_bytes(), &parsed) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::Password) => Ok(false),
            Err(e) => Err(StoreError::PasswordHash(e)),
        }
    })
    .await
    .map_err(StoreError::Task)?
}

/// A new API token: 32 random bytes, hex-encoded (64 characters).
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(StoreError::Random)?;
    Ok(hex::encode(bytes))
}

/// Lower-case hex SHA-256: how API tokens and component bytes are keyed.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub(crate) fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ha1_matches_rfc_2617_example() {
        // RFC 2617 §3.5: Mufasa / testrealm@host.com / Circle Of Life.
        assert_eq!(md5_hex("Mufasa:testrealm@host.com:Circle Of Life"), "939e7578ed9e3c518a452acee763bce9");
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(sha256_hex(a.as_bytes()).len(), 64);
    }

    #[tokio::test]
    async fn argon2id_round_trip() {
        let phc = hash_password("s3cret").await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &phc).await.unwrap());
        assert!(!verify_password("wrong", &phc).await.unwrap());
    }
}
