//! [`ApiError`]: every way a request can fail, and how each becomes the error envelope
//! `{"success": false, "message": "…", "status": 4xx}`.
//!
//! Status codes, chosen once here so the handlers never pick one:
//!
//! - **400** the request could not be read: malformed JSON, a wrong content type, an unknown
//!   field, a field of the wrong type, a query or path parameter that does not parse.
//! - **422** the request was read but a value breaks a rule (a ttl under 60, a pattern that is
//!   not ten characters, a reference to an object the account does not have).
//! - **401** no credentials, or credentials that were refused (the message says which method).
//! - **404** the object does not exist or belongs to another account (the two are
//!   indistinguishable on purpose), or no route matches.
//! - **405** the path exists, the method does not.
//! - **409** a uniqueness rule or the object's state forbids the change.
//! - **429** a limit refused it: an account's limit, or too many failed logins (then with a
//!   `Retry-After` header saying when the next attempt is heard).
//! - **503** the platform is busy or a facility failed for a moment (with `Retry-After` when
//!   it is a queue that was full).
//! - **500** a store or internal failure: logged in the request span, never described to the
//!   caller.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use opentact_store::{ObjectKind, StoreError};
use serde::Serialize;

/// Which authentication method refused the request (named in the 401 message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `Authorization: Bearer <token>` (an API token or a JWT).
    Bearer,
    /// `X-Auth-Token: <token>` (an API token or a JWT).
    XAuthToken,
    /// `?jwt=<token>` (an API token or a JWT).
    QueryJwt,
    /// `Authorization: Basic base64(email:password)`.
    Basic,
    /// Email and password given to `/rest/auth`.
    Password,
    /// `X-Auth-Google-Token: <OpenID Connect ID token>`.
    Google,
    /// `X-Auth-HA1B-Token: <a SIP user's HA1B>`.
    Ha1b,
    /// The token of a websocket's auth message.
    Websocket,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Bearer => "Authorization: Bearer",
            AuthMethod::XAuthToken => "X-Auth-Token",
            AuthMethod::QueryJwt => "?jwt=",
            AuthMethod::Basic => "Authorization: Basic",
            AuthMethod::Password => "email and password",
            AuthMethod::Google => "X-Auth-Google-Token",
            AuthMethod::Ha1b => "X-Auth-HA1B-Token",
            AuthMethod::Websocket => "websocket auth message",
        }
    }
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a handler or extractor can fail with. The `Display` text is the message the
/// caller sees (except for [`ApiError::Internal`], whose detail is only logged).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is empty.
    #[error("request body is empty: send a JSON object")]
    EmptyBody,

    /// The body could not be read off the connection.
    #[error("cannot read the request body: {reason}")]
    UnreadableBody { reason: String },

    /// The body is JSON but not an object (every body of this API is one).
    #[error("the body must be a JSON object ({{…}})")]
    NotAnObject,

    /// The body is not JSON (serde_json's reason, with line and column).
    #[error("malformed JSON: {reason}")]
    MalformedJson { reason: String },

    /// The body is JSON but not what the endpoint takes: `path` is the field (`items[0].tn`),
    /// `None` for the body as a whole.
    #[error("invalid JSON body{}: {reason}", path.as_ref().map(|p| format!(" at `{p}`")).unwrap_or_default())]
    JsonShape { path: Option<String>, reason: String },

    /// The request's `Content-Type` is not JSON.
    #[error("Content-Type must be application/json (got {found})")]
    ContentType { found: String },

    /// The body is larger than the endpoint accepts.
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },

    /// A query parameter does not parse.
    #[error("invalid query string: {0}")]
    BadQuery(String),

    /// A path parameter does not parse (an id that is not a UUID…).
    #[error("invalid {param} in path: {reason}")]
    BadPath { param: &'static str, reason: String },

    /// A value breaks a rule of the endpoint: `field` and what to send instead.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },

    /// No credentials were sent.
    #[error(
        "authentication required: send Authorization: Bearer <token>, X-Auth-Token: <token>, \
         ?jwt=<token>, Authorization: Basic base64(email:password), X-Auth-Google-Token: <ID token> \
         or X-Auth-HA1B-Token: <SIP user's HA1B>"
    )]
    NoCredentials,

    /// The credential is valid but may not do this.
    #[error("{method} credentials may not do this: {reason}")]
    Forbidden { method: AuthMethod, reason: &'static str },

    /// Credentials were sent and refused.
    #[error("{method} authentication failed: {reason}")]
    Unauthorized { method: AuthMethod, reason: &'static str },

    /// The object does not exist, or is another account's.
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },

    /// No route for this path.
    #[error("no endpoint {method} {path}")]
    NoRoute { method: String, path: String },

    /// The path exists but does not take this method.
    #[error("{path} does not take {method}")]
    MethodNotAllowed { method: String, path: String },

    /// A uniqueness rule or the object's state forbids the change (the store's own words).
    #[error("{0}")]
    Conflict(StoreError),

    /// A limit of the account (an outbound voice profile's channels or call rate) refused it.
    #[error("{0}")]
    LimitReached(String),

    /// The platform does not offer this (a switch the operator left off).
    #[error("{0}")]
    Closed(&'static str),

    /// The account cannot pay for it: its balance, a spend limit, a price above `max_rate`.
    #[error("{0}")]
    PaymentRequired(String),

    /// A call command that does not fit the call's state.
    #[error("the call is {state}: {reason}")]
    WrongState { state: String, reason: String },

    /// The telecom data has no entry for the number's area code.
    #[error("no telecom data for {tn}")]
    NoTelecomData { tn: i64 },

    /// A platform facility failed for a moment (the system's random generator…); try again.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),

    /// Too many failed logins for this e-mail or from this address: refused without checking
    /// the password, until `retry_after_secs` have passed (the `Retry-After` header).
    #[error("too many failed logins {scope}: try again in {retry_after_secs} s")]
    TooManyFailures { scope: &'static str, retry_after_secs: u64 },

    /// The queue for a scarce resource (password hashing) is full; try again after
    /// `retry_after_secs` (the `Retry-After` header).
    #[error("busy: {what}; try again in {retry_after_secs} s")]
    Busy { what: &'static str, retry_after_secs: u64 },

    /// A rate limit (an SMS sender's messages a second or a minute) refused it; send again after
    /// `retry_after_secs` (the `Retry-After` header).
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },

    /// A store or internal failure. The caller sees only "internal error".
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Invalid { field: field.into(), reason: reason.into() }
    }

    pub fn not_found(kind: ObjectKind, id: impl std::fmt::Display) -> Self {
        ApiError::NotFound { kind: kind.as_str(), id: id.to_string() }
    }

    /// Seconds the caller should wait before trying again (the `Retry-After` header), for the
    /// errors that have one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::TooManyFailures { retry_after_secs, .. }
            | ApiError::Busy { retry_after_secs, .. }
            | ApiError::RateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::EmptyBody
            | ApiError::UnreadableBody { .. }
            | ApiError::NotAnObject
            | ApiError::MalformedJson { .. }
            | ApiError::JsonShape { .. }
            | ApiError::ContentType { .. }
            | ApiError::BadQuery(_)
            | ApiError::BadPath { .. } => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NoCredentials | ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::Closed(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } | ApiError::NoRoute { .. } | ApiError::NoTelecomData { .. } => {
                StatusCode::NOT_FOUND
            }
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::WrongState { .. } => StatusCode::CONFLICT,
            ApiError::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::Unavailable(_) | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::LimitReached(_) | ApiError::TooManyFailures { .. } | ApiError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Maps the store's `NotFound` for a *referenced* object (not the one in the path) to 422:
    /// the request names an id the account does not have, which the caller must fix in the
    /// body. `path_kind` is the kind of the object the URL names; its `NotFound` stays 404.
    pub fn reference(e: StoreError, path_kind: ObjectKind, field: &str) -> Self {
        match e {
            StoreError::NotFound { kind, id } if kind != path_kind => {
                ApiError::invalid(field, format!("{kind} {id} not found"))
            }
            other => other.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, id } => ApiError::NotFound { kind: kind.as_str(), id },
            StoreError::Conflict { .. }
            | StoreError::NumberUnavailable { .. }
            | StoreError::WrongState { .. } => ApiError::Conflict(e),
            StoreError::Invalid { field, reason } => ApiError::invalid(field, reason),
            other => ApiError::Internal(other),
        }
    }
}

/// The error envelope.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    success: bool,
    message: &'a str,
    status: u16,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(source) = &self {
            // Logged inside the request span (method, route); the store's errors carry no
            // secrets (hashes and passwords never reach an error value).
            tracing::error!(error = source as &dyn std::error::Error, "request failed");
        }
        let message = self.to_string();
        let body = ErrorBody { success: false, message: &message, status: status.as_u16() };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body(e: ApiError) -> (StatusCode, serde_json::Value) {
        let r = e.into_response();
        let status = r.status();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn store_errors_map_to_statuses() {
        let cases = [
            (StoreError::NotFound { kind: ObjectKind::TnLease, id: "x".into() }, 404, "tn lease x not found"),
            (
                StoreError::Conflict { kind: ObjectKind::SipDomain, field: "name", value: "a".into() },
                409,
                "sip domain with name a already exists",
            ),
            (StoreError::NumberUnavailable { tn: 12025550100 }, 409, "number 12025550100 is not available"),
            (StoreError::Invalid { field: "ttl", reason: "must be positive" }, 422, "ttl: must be positive"),
            // Internal failures are not described to the caller.
            (StoreError::Database(sqlx::Error::PoolTimedOut), 500, "internal error"),
        ];
        for (e, status, message) in cases {
            let (s, b) = body(e.into()).await;
            assert_eq!(s.as_u16(), status);
            assert_eq!(b, serde_json::json!({"success": false, "message": message, "status": status}));
        }
    }

    #[test]
    fn referenced_objects_are_422_but_the_path_object_is_404() {
        let e = StoreError::NotFound { kind: ObjectKind::TnProfile, id: "p".into() };
        let mapped = ApiError::reference(e, ObjectKind::TnLease, "tn_profile");
        assert_eq!(mapped.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(mapped.to_string(), "tn_profile: tn profile p not found");
        let e = StoreError::NotFound { kind: ObjectKind::TnLease, id: "l".into() };
        assert_eq!(ApiError::reference(e, ObjectKind::TnLease, "tn_profile").status(), StatusCode::NOT_FOUND);
    }
}
