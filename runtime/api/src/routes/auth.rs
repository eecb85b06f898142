//! `GET`/`POST /rest/auth`: email and password in, a JWT (24 h by default) out.
//!
//! `POST` takes `{"email", "password"}`; `GET` takes `Authorization: Basic
//! base64(email:password)` or `?email=&password=` (the documented form; prefer the header,
//! since query strings end up in proxy logs).

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{basic_from_headers, password_account};
use crate::envelope::{ApiJson, ApiQuery, Payload};
use crate::error::{ApiError, AuthMethod};
use crate::jwt::{self, Claims};
use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/rest/auth", get(login_get).post(login_post))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    email: Option<String>,
    password: Option<String>,
}

/// What `/rest/auth` answers.
#[derive(Debug, Serialize)]
pub struct IssuedJwt {
    /// Send as `Authorization: Bearer <token>`, `X-Auth-Token` or `?jwt=`.
    pub token: String,
    pub token_type: &'static str,
    pub account: Uuid,
    pub expires_on: DateTime<Utc>,
}

async fn login_post(
    State(state): State<ApiState>,
    ApiJson(login): ApiJson<Login>,
) -> Result<Payload<IssuedJwt>, ApiError> {
    let account = password_account(&state, AuthMethod::Password, login.email.trim(), &login.password).await?;
    Ok(Payload(issue(&state, account)))
}

async fn login_get(
    State(state): State<ApiState>,
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
    let account = password_account(&state, method, email.trim(), &password).await?;
    Ok(Payload(issue(&state, account)))
}

fn issue(state: &ApiState, account: Uuid) -> IssuedJwt {
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
