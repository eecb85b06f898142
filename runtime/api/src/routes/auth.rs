//! `GET`/`POST /rest/auth`: email and password in, a JWT (24 h by default) out.
//!
//! `POST` takes `{"email", "password"}`; `GET` takes `Authorization: Basic
//! base64(email:password)` or `?email=&password=` (the documented form; prefer the header,
//! since query strings end up in proxy logs).
//!
//! Failed logins are limited per e-mail and per client address ([`crate::login_limit`]).

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{ClientIp, basic_from_headers, password_account};
use crate::envelope::{ApiJson, ApiQuery, Payload};
use crate::error::{ApiError, AuthMethod};
use crate::jwt::{self, Claims};
use crate::openapi as doc;
use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/rest/auth", get(login_get).post(login_post))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    email: Option<String>,
    password: Option<String>,
}

/// What `/rest/auth` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedJwt {
    /// Send as `Authorization: Bearer <token>`, `X-Auth-Token` or `?jwt=`.
    pub token: String,
    pub token_type: &'static str,
    pub account: Uuid,
    pub expires_on: DateTime<Utc>,
}

#[utoipa::path(
    post,
    operation_id = "auth_login_post",
    path = "/rest/auth",
    tag = "auth",
    summary = "A JWT for email and password",
    request_body = Login,
    security(()),
    responses(
        (status = 200, description = "OK", body = doc::Envelope<IssuedJwt>),
        doc::LoginRefusals,
        doc::ApiErrors
    )
)]
async fn login_post(
    State(state): State<ApiState>,
    client: ClientIp,
    ApiJson(login): ApiJson<Login>,
) -> Result<Payload<IssuedJwt>, ApiError> {
    let account =
        password_account(&state, AuthMethod::Password, login.email.trim(), &login.password, client).await?;
    Ok(Payload(issue(&state, account)))
}

#[utoipa::path(
    get,
    operation_id = "auth_login_get",
    path = "/rest/auth",
    tag = "auth",
    summary = "A JWT for email and password (Basic header or query)",
    params(LoginQuery),
    security(("basic" = []), ()),
    responses(
        (status = 200, description = "OK", body = doc::Envelope<IssuedJwt>),
        doc::LoginRefusals,
        doc::ApiErrors
    )
)]
async fn login_get(
    State(state): State<ApiState>,
    client: ClientIp,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<LoginQuery>,
) -> Result<Payload<IssuedJwt>, ApiError> {
    let (method, email, password) = match basic_from_headers(&headers)? {
        Some((email, password)) => (AuthMethod::Basic, email, password),
        None => match (query.email, query.password) {
            (Some(email), Some(password)) => (AuthMethod::Password, email, password),
            _ => {
                return Err(ApiError::Unauthorized {
                    method: AuthMethod::Password,
                    reason: "send Authorization: Basic base64(email:password) or ?email=&password=",
                });
            }
        },
    };
    let account = password_account(&state, method, email.trim(), &password, client).await?;
    Ok(Payload(issue(&state, account)))
}

/// A JWT for `account`, valid for the configured lifetime.
pub(crate) fn issue(state: &ApiState, account: Uuid) -> IssuedJwt {
    let now = Utc::now();
    let ttl = i64::try_from(state.config.jwt_ttl_secs).unwrap_or(i64::MAX / 2);
    let claims = Claims { sub: account, iat: now.timestamp(), exp: now.timestamp().saturating_add(ttl) };
    IssuedJwt {
        token: jwt::issue(&state.jwt_secret, &claims),
        token_type: "Bearer",
        account,
        expires_on: DateTime::from_timestamp(claims.exp, 0).unwrap_or(DateTime::<Utc>::MAX_UTC),
    }
}
