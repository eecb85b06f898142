//! Sign-in with Google ("Gmail"): `X-Auth-Google-Token: <ID token>`. The ID token is an
//! OpenID Connect JWT signed with RS256 by the configured issuer; it is verified against the
//! issuer's published keys (JWKS) and its claims, and its verified email names the account.
//!
//! The keys are found through the issuer's discovery document
//! (`<issuer>/.well-known/openid-configuration` → `jwks_uri`) unless `jwks_url` is configured,
//! fetched once, kept, and fetched again when a token names a key id not yet known (issuers
//! rotate keys), at most once a minute so that tokens with made-up key ids cannot make the
//! server hammer the issuer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use tokio::sync::Mutex;

/// The `[api.google]` table: which issuer's ID tokens are accepted, for which client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer, exactly as it appears in the `iss` claim (`https://accounts.google.com`).
    /// Google also issues tokens with `iss` without the scheme; both forms are accepted.
    pub issuer: String,
    /// The OAuth client id the tokens must be issued for (the `aud` claim).
    pub client_id: String,
    /// Where the issuer's keys are; default: from its discovery document.
    #[serde(default)]
    pub jwks_url: Option<String>,
}

/// Longest ID token looked at.
pub const MAX_ID_TOKEN_LEN: usize = 8192;
/// Clock skew tolerated on `exp`, `iat` and `nbf`, seconds.
pub const CLOCK_SKEW_SECS: i64 = 60;
/// Shortest time between two key fetches caused by unknown key ids.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Limits on fetching the discovery document and the keys.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_FETCH_BYTES: usize = 256 * 1024;

/// Why an ID token was refused; the text goes into the 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("the Google ID token is malformed")]
    Malformed,
    #[error("the Google ID token must be signed with RS256")]
    Algorithm,
    #[error("the Google ID token is signed with a key the issuer does not publish")]
    UnknownKey,
    #[error("the Google ID token's signature is invalid")]
    Signature,
    #[error("the Google ID token is from another issuer")]
    Issuer,
    #[error("the Google ID token was issued for another client")]
    Audience,
    #[error("the Google ID token has expired")]
    Expired,
    #[error("the Google ID token is not valid yet")]
    NotYetValid,
    #[error("the Google ID token has no verified email")]
    Unverified,
    #[error("the issuer's keys could not be fetched; try again later")]
    KeysUnavailable,
}

impl OidcError {
    /// The message, as a `'static` text for [`crate::ApiError::Unauthorized`].
    pub fn reason(self) -> &'static str {
        match self {
            OidcError::Malformed => "the Google ID token is malformed",
            OidcError::Algorithm => "the Google ID token must be signed with RS256",
            OidcError::UnknownKey => "the Google ID token is signed with a key the issuer does not publish",
            OidcError::Signature => "the Google ID token's signature is invalid",
            OidcError::Issuer => "the Google ID token is from another issuer",
            OidcError::Audience => "the Google ID token was issued for another client",
            OidcError::Expired => "the Google ID token has expired",
            OidcError::NotYetValid => "the Google ID token is not valid yet",
            OidcError::Unverified => "the Google ID token has no verified email",
            OidcError::KeysUnavailable => "the issuer's keys could not be fetched; try again later",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// `aud` is a string or an array of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct IdClaims {
    iss: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    email_verified: bool,
}

/// Google has sent `email_verified` as a boolean and as the string `"true"`.
fn bool_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Text(t) => t.eq_ignore_ascii_case("true"),
    })
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

/// An RSA public key: modulus and exponent, big-endian.
#[derive(Debug, Clone)]
struct RsaKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

#[derive(Default)]
struct Keys {
    by_id: HashMap<String, RsaKey>,
    fetched_at: Option<Instant>,
}

/// Verifies ID tokens of one issuer; shared by every request.
pub struct OidcVerifier {
    config: OidcConfig,
    keys: Mutex<Keys>,
    min_refresh_interval: Duration,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier").field("config", &self.config).finish_non_exhaustive()
    }
}

impl OidcVerifier {
    pub fn new(config: OidcConfig) -> Self {
        OidcVerifier { config, keys: Mutex::new(Keys::default()), min_refresh_interval: MIN_REFRESH_INTERVAL }
    }

    /// Fetch the keys again for an unknown key id only when the last fetch is older than
    /// `interval` (default [`MIN_REFRESH_INTERVAL`]).
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// The verified email of `token` at `now` (seconds since the epoch).
    pub async fn verify(&self, token: &str, now: i64) -> Result<String, OidcError> {
        if token.len() > MAX_ID_TOKEN_LEN {
            return Err(OidcError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OidcError::Malformed);
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| OidcError::Malformed);
        let header: Header =
            serde_json::from_slice(&decode(header_b64)?).map_err(|_| OidcError::Malformed)?;
        // The algorithm is fixed before anything else is looked at: `none`, HS256 with the
        // public key as secret, and other confusions are refused here.
        if header.alg != "RS256" {
            return Err(OidcError::Algorithm);
        }
        let signature = decode(signature_b64)?;
        let key = self.key(header.kid.as_deref()).await?;
        let signed = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        ring::signature::RsaPublicKeyComponents { n: &key.n, e: &key.e }
            .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, signed, &signature)
            .map_err(|_| OidcError::Signature)?;
        let claims: IdClaims =
            serde_json::from_slice(&decode(payload_b64)?).map_err(|_| OidcError::Malformed)?;
        let issuer = self.config.issuer.as_str();
        if claims.iss != issuer && Some(claims.iss.as_str()) != issuer.strip_prefix("https://") {
            return Err(OidcError::Issuer);
        }
        let for_us = match &claims.aud {
            Audience::One(aud) => *aud == self.config.client_id,
            Audience::Many(auds) => auds.contains(&self.config.client_id),
        };
        if !for_us {
            return Err(OidcError::Audience);
        }
        if claims.exp + CLOCK_SKEW_SECS <= now {
            return Err(OidcError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf - CLOCK_SKEW_SECS > now)
            || claims.iat.is_some_and(|iat| iat - CLOCK_SKEW_SECS > now)
        {
            return Err(OidcError::NotYetValid);
        }
        match claims.email {
            Some(email) if claims.email_verified && !email.is_empty() => Ok(email),
            _ => Err(OidcError::Unverified),
        }
    }

    /// The key named `kid` (or the only key, for a token without `kid`), fetching the key set
    /// when it is not known yet.
    async fn key(&self, kid: Option<&str>) -> Result<RsaKey, OidcError> {
        let mut keys = self.keys.lock().await;
        let pick = |keys: &Keys| match kid {
            Some(kid) => keys.by_id.get(kid).cloned(),
            None if keys.by_id.len() == 1 => keys.by_id.values().next().cloned(),
            None => None,
        };
        if let Some(key) = pick(&keys) {
            return Ok(key);
        }
        if keys.fetched_at.is_some_and(|at| at.elapsed() < self.min_refresh_interval) {
            return Err(OidcError::UnknownKey);
        }
        keys.fetched_at = Some(Instant::now());
        match self.fetch_keys().await {
            Ok(fetched) => keys.by_id = fetched,
            Err(error) => {
                tracing::warn!(issuer = %self.config.issuer, %error, "cannot fetch the OpenID issuer's keys");
                return Err(OidcError::KeysUnavailable);
            }
        }
        pick(&keys).ok_or(OidcError::UnknownKey)
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, RsaKey>, String> {
        let jwks_url = match &self.config.jwks_url {
            Some(url) => url.clone(),
            None => {
                let url =
                    format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
                let discovery: Discovery = get_json(&url).await?;
                discovery.jwks_uri
            }
        };
        let set: KeySet = get_json(&jwks_url).await?;
        let mut keys = HashMap::new();
        for (index, jwk) in set.keys.into_iter().enumerate() {
            let usable = jwk.kty == "RSA"
                && jwk.alg.as_deref().is_none_or(|a| a == "RS256")
                && jwk.usage.as_deref().is_none_or(|u| u == "sig");
            let (Some(n), Some(e)) = (jwk.n, jwk.e) else { continue };
            if !usable {
                continue;
            }
            let (Ok(n), Ok(e)) = (URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(e)) else { continue };
            keys.insert(jwk.kid.unwrap_or_else(|| format!("#{index}")), RsaKey { n, e });
        }
        if keys.is_empty() {
            return Err(format!("{jwks_url} lists no RS256 signing key"));
        }
        Ok(keys)
    }
}

/// GET a JSON document from the issuer (an operator-configured destination, so private
/// addresses are allowed: an on-premises identity provider is a normal setup).
async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, String> {
    let limits = opentact_egress::http::Limits {
        timeout: FETCH_TIMEOUT,
        max_body_bytes: MAX_FETCH_BYTES,
        allow_private: true,
    };
    let response = opentact_egress::http::send("GET", url, &[("accept", "application/json")], None, &limits)
        .await
        .map_err(|e| e.to_string())?;
    if response.status != 200 {
        return Err(format!("{url} answered {}", response.status));
    }
    serde_json::from_slice(&response.body).map_err(|e| format!("{url}: not the expected JSON: {e}"))
}
