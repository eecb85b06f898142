//! Who is calling: the [`AuthAccount`] extractor.
//!
//! Credentials are looked for in this order, and the first one present decides (a refused
//! credential is not followed by a try of the next, so the 401 names the method that failed):
//!
//! 1. `Authorization: Bearer <token>` or `Authorization: Basic base64(email:password)`
//! 2. `X-Auth-Token: <token>`
//! 3. `X-Auth-Google-Token: <ID token>` — an OpenID Connect ID token of the configured issuer
//!    ([`crate::oidc`]); its verified email names the account
//! 4. `X-Auth-HA1B-Token: <HA1B>` — a SIP user's digest hash `md5(login@domain:realm:password)`,
//!    so a SIP device can read its account's data; it is read-only (GET), since the hash sits
//!    in every phone's configuration
//! 5. `?jwt=<token>`
//!
//! A `<token>` is either an API token (64 hex digits, looked up by its SHA-256; expired
//! tokens are not found) or a JWT issued by `/rest/auth` (three dot-separated parts). Tokens
//! and passwords are never logged.
//!
//! Passwords (Basic, and `/rest/auth`) are checked under the login limits
//! ([`crate::login_limit`]: too many failures answer 429 with `Retry-After` without hashing)
//! and a few at a time ([`crate::password_gate`]).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{ApiError, AuthMethod};
use crate::jwt;
use crate::state::ApiState;

/// The header for an API token or JWT without the `Authorization` scheme.
pub const X_AUTH_TOKEN: &str = "x-auth-token";

/// Longest credential (token or Basic value) looked at; anything longer is refused unread.
pub const MAX_CREDENTIAL_LEN: usize = 4096;

/// What kind of credential authenticated the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// An API token (its id).
    ApiToken(Uuid),
    /// A JWT from `/rest/auth`.
    Jwt,
    /// Email and password.
    Password,
    /// A Google ID token.
    Google,
    /// A SIP user's HA1B (the user's id).
    SipUser(Uuid),
}

/// The authenticated account of a request. Handlers take it as an argument; a request
/// without valid credentials never reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthAccount {
    pub account: Uuid,
    pub method: AuthMethod,
    pub credential: Credential,
}

#[derive(Deserialize)]
struct JwtQuery {
    jwt: Option<String>,
}

impl FromRequestParts<ApiState> for AuthAccount {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let auth = match credential(&parts.headers, parts.uri.query())? {
            Presented::Token(method, token) => token_account(state, method, &token).await?,
            Presented::Basic(value) => basic_account(state, &value, ClientIp::of(parts)).await?,
            Presented::Google(token) => google_account(state, &token).await?,
            Presented::Ha1b(hash) => {
                if parts.method != axum::http::Method::GET {
                    return Err(ApiError::Forbidden {
                        method: AuthMethod::Ha1b,
                        reason: "a SIP user's HA1B is read-only (GET requests only)",
                    });
                }
                ha1b_account(state, &hash).await?
            }
            Presented::None => return Err(ApiError::NoCredentials),
        };
        tracing::Span::current().record("account", tracing::field::display(auth.account));
        Ok(auth)
    }
}

/// A credential as it arrived.
enum Presented {
    Token(AuthMethod, String),
    Basic(String),
    Google(String),
    Ha1b(String),
    None,
}

/// `X-Auth-Google-Token`.
pub const X_AUTH_GOOGLE_TOKEN: &str = "x-auth-google-token";

/// `X-Auth-HA1B-Token`.
pub const X_AUTH_HA1B_TOKEN: &str = "x-auth-ha1b-token";

fn credential(headers: &HeaderMap, query: Option<&str>) -> Result<Presented, ApiError> {
    let header = |name, method| {
        headers.get(name).map(|v| {
            v.to_str().ok().filter(|s| s.len() <= MAX_CREDENTIAL_LEN).map(|s| s.trim().to_owned()).ok_or(
                ApiError::Unauthorized { method, reason: "the header value is not a valid credential" },
            )
        })
    };
    if let Some(value) = header(axum::http::header::AUTHORIZATION, AuthMethod::Bearer) {
        let value = value?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((&value, ""));
        let rest = rest.trim();
        return if scheme.eq_ignore_ascii_case("bearer") {
            Ok(Presented::Token(AuthMethod::Bearer, rest.to_owned()))
        } else if scheme.eq_ignore_ascii_case("basic") {
            Ok(Presented::Basic(rest.to_owned()))
        } else {
            Err(ApiError::Unauthorized {
                method: AuthMethod::Bearer,
                reason: "the Authorization scheme must be Bearer or Basic",
            })
        };
    }
    if let Some(value) =
        header(axum::http::header::HeaderName::from_static(X_AUTH_TOKEN), AuthMethod::XAuthToken)
    {
        return Ok(Presented::Token(AuthMethod::XAuthToken, value?));
    }
    if let Some(value) =
        header(axum::http::header::HeaderName::from_static(X_AUTH_GOOGLE_TOKEN), AuthMethod::Google)
    {
        return Ok(Presented::Google(value?));
    }
    if let Some(value) =
        header(axum::http::header::HeaderName::from_static(X_AUTH_HA1B_TOKEN), AuthMethod::Ha1b)
    {
        return Ok(Presented::Ha1b(value?));
    }
    let jwt = query.and_then(query_jwt).filter(|t| !t.is_empty());
    Ok(jwt.map_or(Presented::None, |t| Presented::Token(AuthMethod::QueryJwt, t)))
}

/// The `jwt` parameter of a query string (other parameters are the handler's business).
fn query_jwt(query: &str) -> Option<String> {
    axum::extract::Query::<JwtQuery>::try_from_uri(&format!("/?{query}").parse().ok()?).ok()?.0.jwt
}

/// An API token or a JWT.
pub(crate) async fn token_account(
    state: &ApiState,
    method: AuthMethod,
    token: &str,
) -> Result<AuthAccount, ApiError> {
    if token.is_empty() {
        return Err(ApiError::Unauthorized { method, reason: "the token is empty" });
    }
    if token.len() > MAX_CREDENTIAL_LEN {
        return Err(ApiError::Unauthorized { method, reason: "the token is too long" });
    }
    if jwt::looks_like_jwt(token) {
        let now = chrono::Utc::now().timestamp();
        let claims = jwt::verify(&state.jwt_secret, token, now)
            .map_err(|e| ApiError::Unauthorized { method, reason: e.reason() })?;
        // A JWT outlives nothing: a deleted account's tokens stop working at once.
        if state.repo.get_account(claims.sub).await?.is_none_or(|a| a.deleted_on.is_some()) {
            return Err(ApiError::Unauthorized { method, reason: "the JWT's account no longer exists" });
        }
        return Ok(AuthAccount { account: claims.sub, method, credential: Credential::Jwt });
    }
    match state.repo.token_by_plain(token).await? {
        Some(t) => Ok(AuthAccount { account: t.account, method, credential: Credential::ApiToken(t.uuid) }),
        None => {
            Err(ApiError::Unauthorized { method, reason: "the API token is unknown, revoked or expired" })
        }
    }
}

/// A Google ID token: verified, then its email must be an account's.
async fn google_account(state: &ApiState, token: &str) -> Result<AuthAccount, ApiError> {
    let method = AuthMethod::Google;
    let Some(verifier) = &state.google else {
        return Err(ApiError::Unauthorized {
            method,
            reason: "sign-in with Google is not enabled on this platform",
        });
    };
    let now = chrono::Utc::now().timestamp();
    let email = verifier
        .verify(token, now)
        .await
        .map_err(|e| ApiError::Unauthorized { method, reason: e.reason() })?;
    match state.repo.account_by_email(&email).await? {
        Some(account) => Ok(AuthAccount { account: account.uuid, method, credential: Credential::Google }),
        None => Err(ApiError::Unauthorized { method, reason: "no account has this Google account's email" }),
    }
}

/// A SIP user's HA1B: 32 hex digits naming an active user.
async fn ha1b_account(state: &ApiState, hash: &str) -> Result<AuthAccount, ApiError> {
    let method = AuthMethod::Ha1b;
    if hash.len() != 32 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::Unauthorized { method, reason: "an HA1B is 32 hexadecimal digits" });
    }
    match state.repo.sip_user_by_ha1b(hash).await? {
        Some(user) => {
            Ok(AuthAccount { account: user.account, method, credential: Credential::SipUser(user.uuid) })
        }
        None => Err(ApiError::Unauthorized { method, reason: "no active SIP user has this HA1B" }),
    }
}

/// `base64(email:password)`.
async fn basic_account(state: &ApiState, value: &str, client: ClientIp) -> Result<AuthAccount, ApiError> {
    let (email, password) = decode_basic(value)?;
    let account = password_account(state, AuthMethod::Basic, &email, &password, client).await?;
    Ok(AuthAccount { account, method: AuthMethod::Basic, credential: Credential::Password })
}

fn decode_basic(value: &str) -> Result<(String, String), ApiError> {
    STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(e, p)| (e.to_owned(), p.to_owned())))
        .ok_or(ApiError::Unauthorized {
            method: AuthMethod::Basic,
            reason: "the credentials are not base64(email:password)",
        })
}

/// Checks an email and password; `method` names the 401 if they are wrong.
/// Too many recent failures for the e-mail or from `client` refuse it before the password
/// is hashed ([`crate::login_limit`]); the hash waits for a permit ([`crate::password_gate`]).
pub(crate) async fn password_account(
    state: &ApiState,
    method: AuthMethod,
    email: &str,
    password: &str,
    client: ClientIp,
) -> Result<Uuid, ApiError> {
    if email.is_empty() || password.is_empty() {
        return Err(ApiError::Unauthorized { method, reason: "email and password are both required" });
    }
    let attempt = state.login_limit.begin(email, client.0)?;
    let (repo, email, password) = (state.repo.clone(), email.to_owned(), password.to_owned());
    // An error (store down, queue full) drops `attempt`, which then counts for nothing.
    let verified =
        state.password_gate.run(async move { repo.verify_password(&email, &password).await }).await??;
    match verified {
        Some(account) => {
            attempt.succeeded();
            Ok(account.uuid)
        }
        None => {
            attempt.failed();
            Err(ApiError::Unauthorized { method, reason: "wrong email or password" })
        }
    }
}

/// The client's address, when the router is served with
/// `into_make_service_with_connect_info::<SocketAddr>()`; `None` otherwise (then logins are
/// limited per e-mail only). Never refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    fn of(parts: &Parts) -> Self {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        if ip.is_none() {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "the REST API does not see client addresses (serve it with \
                     into_make_service_with_connect_info): failed logins are limited per e-mail only"
                );
            });
        }
        ClientIp(ip)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp::of(parts))
    }
}

/// Basic credentials from the headers, for `GET /rest/auth`: `None` without an
/// `Authorization` header, an error when it is not a well-formed Basic one.
pub(crate) fn basic_from_headers(headers: &HeaderMap) -> Result<Option<(String, String)>, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().unwrap_or("");
    match value.trim().split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => decode_basic(rest).map(Some),
        _ => Err(ApiError::Unauthorized {
            method: AuthMethod::Basic,
            reason: "GET /rest/auth takes Authorization: Basic base64(email:password)",
        }),
    }
}
