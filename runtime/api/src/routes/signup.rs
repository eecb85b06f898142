//! Self sign-up: `POST /rest/signup {name, email, password, time_zone}` creates an account and
//! answers a JWT for it, when the operator opened sign-up (`[api] self_signup = true`). It is
//! off by default: accounts are then made by the operator (`opentact admin account create`),
//! and this answers 403 saying so.
//!
//! Each client address may sign up [`SIGNUPS_PER_HOUR`] accounts an hour, and the password is
//! hashed (argon2) under the same permits as logins ([`crate::password_gate`]), so sign-ups
//! cannot take the machine's CPU. A taken e-mail answers 409.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use opentact_store::{Account, NewAccount};
use serde::{Deserialize, Serialize};

use crate::auth::ClientIp;
use crate::envelope::{ApiJson, Created};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::ApiState;

/// Accounts one client address may sign up an hour.
pub const SIGNUPS_PER_HOUR: usize = 5;

/// Shortest password.
pub const MIN_PASSWORD: usize = 8;

/// Longest password (argon2 hashes it whole).
pub const MAX_PASSWORD: usize = 256;

/// Longest e-mail address (RFC 5321).
pub const MAX_EMAIL: usize = 254;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/rest/signup", post(signup))
}

/// `POST /rest/signup`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    /// The account's name, 1–100 characters.
    pub name: String,
    /// The login; unique.
    pub email: String,
    /// 8–256 characters.
    pub password: String,
    /// An IANA time zone; UTC when absent.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// The new account and a JWT to use it at once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedUp {
    pub account: Account,
    /// As `POST /rest/auth` answers it.
    pub jwt: crate::routes::auth::IssuedJwt,
}

fn check_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    let well_formed = email.len() <= MAX_EMAIL
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        });
    if well_formed {
        Ok(email.to_owned())
    } else {
        Err(ApiError::invalid("email", format!("{email:?} is not an e-mail address (name@example.com)")))
    }
}

#[utoipa::path(
    post,
    operation_id = "signup",
    path = "/rest/signup",
    tag = "auth",
    summary = "Create an account (when the operator opened sign-up)",
    request_body = SignupBody,
    security(()),
    responses(
        (status = 201, description = "Created: the account and a JWT", body = doc::Envelope<SignedUp>),
        (status = 403, description = "Sign-up is off on this platform", body = doc::ErrorEnvelope),
        (status = 429, description = "Too many sign-ups from this address", body = doc::ErrorEnvelope),
        doc::ApiErrors
    )
)]
async fn signup(
    State(state): State<ApiState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<SignupBody>,
) -> Result<Created<SignedUp>, ApiError> {
    if !state.config.self_signup {
        return Err(ApiError::Closed(
            "self sign-up is off on this platform: ask its operator for an account",
        ));
    }
    let name = crate::routes::account::check_name(&body.name)?;
    let email = check_email(&body.email)?;
    let length = body.password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&length) {
        return Err(ApiError::invalid("password", format!("{MIN_PASSWORD} to {MAX_PASSWORD} characters")));
    }
    let time_zone = match &body.time_zone {
        Some(zone) => crate::routes::account::check_time_zone(zone)?,
        None => "UTC".to_owned(),
    };
    let window = std::time::Duration::from_secs(3600);
    // Per address, IPv6 per /64 (one host's usual share), as failed logins are counted.
    state.signups.take(ip.map(crate::login_limit::IpKey::of), SIGNUPS_PER_HOUR, window).map_err(
        |retry_after_secs| ApiError::RateLimited {
            message: format!("at most {SIGNUPS_PER_HOUR} sign-ups an hour from one address"),
            retry_after_secs,
        },
    )?;
    let repo = state.repo.clone();
    let new = NewAccount { name, email, password: body.password, time_zone };
    let account = state.password_gate.run(async move { repo.create_account(new).await }).await??;
    tracing::info!(account = %account.uuid, "account signed up");
    let jwt = crate::routes::auth::issue(&state, account.uuid);
    Ok(Created(SignedUp { account, jwt }))
}
