//! The PASSporT (RFC 8225) with the SHAKEN extension (RFC 8588): a JWS in compact
//! serialisation, `base64url(header) . base64url(claims) . base64url(signature)`.
//!
//! The header and claims are serialised with their keys in lexicographic order and without
//! whitespace (RFC 8225 §9), which the field order of the structs below gives with serde_json.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::Attestation;

/// The only signature algorithm SHAKEN allows (ATIS-1000074 §5.3.1).
pub const ALG_ES256: &str = "ES256";
/// The PASSporT extension type of SHAKEN (RFC 8588).
pub const PPT_SHAKEN: &str = "shaken";
/// The JOSE `typ` of a PASSporT (RFC 8225 §4.1).
pub const TYP_PASSPORT: &str = "passport";
/// Largest PASSporT token decoded, bytes: a SHAKEN PASSporT is a few hundred bytes, and the
/// token comes from a caller.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The JOSE header (RFC 8225 §4, RFC 8588 §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// `ES256`.
    pub alg: String,
    /// `shaken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppt: Option<String>,
    /// `passport`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Where the signer's certificate is published.
    #[serde(default)]
    pub x5u: String,
}

impl Header {
    /// The header of a SHAKEN PASSporT whose certificate is at `x5u`.
    pub fn shaken(x5u: &str) -> Self {
        Self {
            alg: ALG_ES256.to_owned(),
            ppt: Some(PPT_SHAKEN.to_owned()),
            typ: Some(TYP_PASSPORT.to_owned()),
            x5u: x5u.to_owned(),
        }
    }
}

/// A telephone-number identity: `{"tn": "12025550100"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrigTn {
    /// The caller's number, canonical ([`crate::canonical_tn`]).
    pub tn: String,
}

/// The destination identities: `{"tn": ["12025550111"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestTn {
    /// The called numbers, canonical.
    pub tn: Vec<String>,
}

/// The claims of a SHAKEN PASSporT (RFC 8225 §5, RFC 8588 §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The attestation level.
    pub attest: Attestation,
    /// The called numbers.
    pub dest: DestTn,
    /// When it was signed, seconds since the Unix epoch.
    pub iat: u64,
    /// The calling number.
    pub orig: OrigTn,
    /// The signer's opaque identifier of where the call entered its network (a UUID).
    pub origid: String,
}

/// Why a token could not be taken apart (before any signature check).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not three base64url parts, or longer than [`MAX_TOKEN_BYTES`].
    #[error("the PASSporT is not a compact JWS: {reason}")]
    NotCompact {
        /// What is wrong.
        reason: &'static str,
    },
    /// The compact form (an empty claims part, RFC 8224 §7.1) is not used by SHAKEN.
    #[error("the PASSporT has no claims (compact form), which SHAKEN does not use")]
    CompactForm,
    /// A part is not base64url.
    #[error("the PASSporT's {part} is not base64url")]
    Base64 {
        /// `header`, `claims` or `signature`.
        part: &'static str,
    },
    /// The header or claims are not the JSON SHAKEN defines.
    #[error("the PASSporT's {part} is not valid: {reason}")]
    Json {
        /// `header` or `claims`.
        part: &'static str,
        /// serde's message.
        reason: String,
    },
}

/// A token taken apart, its signature not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The JOSE header.
    pub header: Header,
    /// The claims.
    pub claims: Claims,
    /// `base64url(header) . base64url(claims)`: what the signature covers.
    pub signing_input: String,
    /// The raw signature (for ES256, `r || s`, 64 bytes).
    pub signature: Vec<u8>,
}

/// `base64url(json(header)) . base64url(json(claims))`, the JWS signing input.
pub fn signing_input(header: &Header, claims: &Claims) -> String {
    let header = serde_json::to_vec(header).expect("a header serialises");
    let claims = serde_json::to_vec(claims).expect("claims serialise");
    format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims))
}

/// Takes a compact JWS apart without checking its signature.
pub fn decode(token: &str) -> Result<Decoded, DecodeError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(DecodeError::NotCompact { reason: "it is too long" });
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DecodeError::NotCompact { reason: "it does not have three dot-separated parts" });
    };
    if claims_b64.is_empty() {
        return Err(DecodeError::CompactForm);
    }
    let header_json =
        URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| DecodeError::Base64 { part: "header" })?;
    let claims_json =
        URL_SAFE_NO_PAD.decode(claims_b64).map_err(|_| DecodeError::Base64 { part: "claims" })?;
    let signature =
        URL_SAFE_NO_PAD.decode(signature_b64).map_err(|_| DecodeError::Base64 { part: "signature" })?;
    let header = serde_json::from_slice(&header_json)
        .map_err(|error| DecodeError::Json { part: "header", reason: error.to_string() })?;
    let claims = serde_json::from_slice(&claims_json)
        .map_err(|error| DecodeError::Json { part: "claims", reason: error.to_string() })?;
    Ok(Decoded { header, claims, signing_input: format!("{header_b64}.{claims_b64}"), signature })
}

/// `r || s` (each 32 bytes) as the DER `ECDSA-Sig-Value` X.509 tooling verifies.
pub(crate) fn fixed_to_der(signature: &[u8]) -> Option<Vec<u8>> {
    if signature.len() != 64 {
        return None;
    }
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
        let bytes = &bytes[start..];
        let mut out = vec![0x02];
        if bytes[0] & 0x80 != 0 {
            out.push(u8::try_from(bytes.len() + 1).expect("at most 33"));
            out.push(0);
        } else {
            out.push(u8::try_from(bytes.len()).expect("at most 32"));
        }
        out.extend_from_slice(bytes);
        out
    }
    let (r, s) = signature.split_at(32);
    let body = [integer(r), integer(s)].concat();
    let mut der = vec![0x30, u8::try_from(body.len()).expect("at most 70")];
    der.extend(body);
    Some(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            attest: Attestation::B,
            dest: DestTn { tn: vec!["12025550111".to_owned()] },
            iat: 1_700_000_000,
            orig: OrigTn { tn: "12025550100".to_owned() },
            origid: "123e4567-e89b-12d3-a456-426655440000".to_owned(),
        }
    }

    #[test]
    fn header_and_claims_serialise_with_sorted_keys() {
        let header = serde_json::to_string(&Header::shaken("https://cert.example/sp.pem")).unwrap();
        assert_eq!(
            header,
            r#"{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"https://cert.example/sp.pem"}"#
        );
        let claims = serde_json::to_string(&claims()).unwrap();
        assert_eq!(
            claims,
            r#"{"attest":"B","dest":{"tn":["12025550111"]},"iat":1700000000,"orig":{"tn":"12025550100"},"origid":"123e4567-e89b-12d3-a456-426655440000"}"#
        );
    }

    #[test]
    fn a_token_round_trips_and_malformed_ones_are_refused() {
        let input = signing_input(&Header::shaken("https://x/c.pem"), &claims());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode([7u8; 64]));
        let decoded = decode(&token).unwrap();
        assert_eq!(decoded.claims, claims());
        assert_eq!(decoded.signing_input, input);
        assert_eq!(decoded.signature, vec![7u8; 64]);

        assert!(matches!(decode("a.b"), Err(DecodeError::NotCompact { .. })));
        assert!(matches!(decode("a..c"), Err(DecodeError::CompactForm)));
        assert!(matches!(decode("a!.b.c"), Err(DecodeError::Base64 { part: "header" })));
        let no_attest = format!("{}.{}.AA", input.split('.').next().unwrap(), URL_SAFE_NO_PAD.encode("{}"));
        assert!(matches!(decode(&no_attest), Err(DecodeError::Json { part: "claims", .. })));
        assert!(matches!(decode(&"a".repeat(MAX_TOKEN_BYTES + 1)), Err(DecodeError::NotCompact { .. })));
    }

    #[test]
    fn fixed_signatures_become_der() {
        let mut fixed = [0u8; 64];
        fixed[0] = 0x80; // r needs a leading zero
        fixed[63] = 1; // s is one byte
        let der = fixed_to_der(&fixed).unwrap();
        assert_eq!(&der[..5], &[0x30, 2 + 33 + 3, 0x02, 33, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 1, 1]);
        assert!(fixed_to_der(&[0u8; 63]).is_none());
    }
}
