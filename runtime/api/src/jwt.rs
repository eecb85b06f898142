//! HS256 JSON Web Tokens (RFC 7519), just what `/rest/auth` needs: `{"alg":"HS256"}` headers
//! only (any other `alg`, `none` included, is refused before the signature is looked at),
//! claims `sub` (the account id), `iat` and `exp` in seconds.
//!
//! Built on `hmac` + `sha2` rather than a JWT crate: the format is three base64url parts, and
//! the one algorithm we issue keeps the verifier small enough to read in full.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::state::JwtSecret;

type HmacSha256 = Hmac<Sha256>;

/// Longest token the verifier looks at; ours are about 200 bytes.
pub const MAX_JWT_LEN: usize = 4096;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account.
    pub sub: Uuid,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

/// Why a token was refused (the text goes into the 401 message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the JWT is malformed")]
    Malformed,
    #[error("the JWT algorithm must be HS256")]
    Algorithm,
    #[error("the JWT signature is invalid")]
    Signature,
    #[error("the JWT has expired")]
    Expired,
}

impl JwtError {
    pub fn reason(self) -> &'static str {
        match self {
            JwtError::Malformed => "the JWT is malformed",
            JwtError::Algorithm => "the JWT algorithm must be HS256",
            JwtError::Signature => "the JWT signature is invalid",
            JwtError::Expired => "the JWT has expired",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

fn mac(secret: &JwtSecret) -> HmacSha256 {
    // HMAC takes keys of any length; `JwtSecret` guarantees at least 32 bytes.
    HmacSha256::new_from_slice(secret.bytes()).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// Signs `claims`.
pub fn issue(secret: &JwtSecret, claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    // Serializing a struct of a UUID and two integers cannot fail.
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Checks the algorithm, the signature (in constant time) and the expiry at `now` (seconds).
pub fn verify(secret: &JwtSecret, token: &str, now: i64) -> Result<Claims, JwtError> {
    if token.len() > MAX_JWT_LEN {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let signing_input = &token[..header.len() + 1 + payload.len()];
    let header: Header = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(JwtError::Malformed)?;
    if header.alg != "HS256" {
        return Err(JwtError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| JwtError::Malformed)?;
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    m.verify_slice(&signature).map_err(|_| JwtError::Signature)?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(JwtError::Malformed)?;
    if claims.exp <= now {
        return Err(JwtError::Expired);
    }
    Ok(claims)
}

/// Whether a credential is shaped like a JWT (three dot-separated parts) rather than an API
/// token (64 hex digits).
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(fill: u8) -> JwtSecret {
        JwtSecret::new(vec![fill; 32]).unwrap()
    }

    fn claims(exp: i64) -> Claims {
        Claims { sub: Uuid::new_v4(), iat: 1000, exp }
    }

    #[test]
    fn round_trip() {
        let c = claims(2000);
        let t = issue(&secret(1), &c);
        assert!(looks_like_jwt(&t));
        assert_eq!(verify(&secret(1), &t, 1500), Ok(c));
    }

    #[test]
    fn refusals() {
        let t = issue(&secret(1), &claims(2000));
        assert_eq!(verify(&secret(2), &t, 1500), Err(JwtError::Signature));
        assert_eq!(verify(&secret(1), &t, 2000), Err(JwtError::Expired));
        assert_eq!(verify(&secret(1), "a.b", 0), Err(JwtError::Malformed));
        assert_eq!(verify(&secret(1), "a.b.c.d", 0), Err(JwtError::Malformed));

        // A payload swapped for another account's keeps the old signature: refused.
        let other = issue(&secret(1), &claims(2000));
        let mut parts: Vec<&str> = t.split('.').collect();
        parts[1] = other.split('.').nth(1).unwrap();
        assert_eq!(verify(&secret(1), &parts.join("."), 1500), Err(JwtError::Signature));

        // alg "none" with no signature.
        let none =
            format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), t.split('.').nth(1).unwrap());
        assert_eq!(verify(&secret(1), &none, 1500), Err(JwtError::Algorithm));
    }
}
