//! API tokens: `POST /rest/token`, `GET /rest/token/list`, `DELETE /rest/token/{token}`,
//! `DELETE /rest/token/all`. The plain token is in the creation answer only; the store keeps
//! its SHA-256.

use axum::Router;
use axum::extract::State;
use axum::routing::{delete, get, post};
use opentact_store::{ApiToken, NewApiToken, ObjectKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Created, Page, Paging, Payload, SegmentPath};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::ApiState;

/// Shortest token lifetime, in seconds (the documented `ttl≥60`).
pub const MIN_TOKEN_TTL_SECS: i64 = 60;

/// Longest token lifetime, in seconds (ten years): keeps expiry arithmetic far from overflow.
pub const MAX_TOKEN_TTL_SECS: i64 = 10 * 366 * 24 * 60 * 60;

/// Longest token name, in characters.
pub const MAX_TOKEN_NAME: usize = 100;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/token", post(create))
        .route("/rest/token/list", get(list))
        .route("/rest/token/all", delete(delete_all))
        .route("/rest/token/{token}", delete(delete_one))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Lifetime in seconds, at least 60; absent or `null` for a token that does not expire.
    #[serde(default)]
    #[schema(minimum = 60, maximum = 316224000)]
    pub ttl: Option<i64>,
}

/// The creation answer: the token object and, this once, the plain token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedTokenView {
    #[serde(flatten)]
    pub token: ApiToken,
    /// The credential. Not shown again: only its hash is stored.
    #[serde(rename = "token")]
    pub plain: String,
}

#[utoipa::path(
    post,
    operation_id = "token_create",
    path = "/rest/token",
    tag = "token",
    summary = "Create an API token (the token is shown only in this answer)",
    request_body = NewToken,
    responses((status = 201, description = "Created", body = doc::Envelope<CreatedTokenView>), doc::ApiErrors)
)]
async fn create(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(new): ApiJson<NewToken>,
) -> Result<Created<CreatedTokenView>, ApiError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME {
        return Err(ApiError::invalid("name", format!("must be 1 to {MAX_TOKEN_NAME} characters")));
    }
    if let Some(ttl) = new.ttl
        && !(MIN_TOKEN_TTL_SECS..=MAX_TOKEN_TTL_SECS).contains(&ttl)
    {
        return Err(ApiError::invalid(
            "ttl",
            format!("must be between {MIN_TOKEN_TTL_SECS} and {MAX_TOKEN_TTL_SECS} seconds (got {ttl})"),
        ));
    }
    let created = state
        .repo
        .create_token(auth.account, NewApiToken { name: name.to_owned(), ttl_secs: new.ttl })
        .await?;
    // Never the plain token: only that one exists and what it is called.
    tokens_changed(&state, auth.account, serde_json::json!({"created": &created.token}));
    Ok(Created(CreatedTokenView { token: created.token, plain: created.plain }))
}

#[utoipa::path(
    get,
    operation_id = "token_list",
    path = "/rest/token/list",
    tag = "token",
    summary = "The account's API tokens",
    params(crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<ApiToken>>), doc::ApiErrors)
)]
async fn list(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<ApiToken>>, ApiError> {
    Ok(Payload(state.repo.list_tokens(auth.account, paging.params()?).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DeletedCount)]
pub struct Deleted {
    pub deleted: u64,
}

#[utoipa::path(
    delete,
    operation_id = "token_delete_all",
    path = "/rest/token/all",
    tag = "token",
    summary = "Delete every API token of the account",
    responses((status = 200, description = "OK", body = doc::Envelope<Deleted>), doc::ApiErrors)
)]
async fn delete_all(State(state): State<ApiState>, auth: AuthAccount) -> Result<Payload<Deleted>, ApiError> {
    let deleted = state.repo.delete_all_tokens(auth.account).await?;
    if deleted > 0 {
        tokens_changed(&state, auth.account, serde_json::json!({"deleted_all": deleted}));
    }
    Ok(Payload(Deleted { deleted }))
}

/// `account.changed` for the account's tokens (`changed: ["tokens"]`) with what happened.
fn tokens_changed(state: &ApiState, account: Uuid, what: serde_json::Value) {
    let mut payload = serde_json::json!({"changed": ["tokens"]});
    if let (serde_json::Value::Object(payload), serde_json::Value::Object(what)) = (&mut payload, what) {
        payload.extend(what);
    }
    crate::publish::publish(state, account, "account.changed", payload);
}

/// `{token}` is the token's id, or the plain token itself (revoking a leaked token without
/// looking up its id). Either way only the caller's own tokens are found.
#[utoipa::path(
    delete,
    operation_id = "token_delete_one",
    path = "/rest/token/{token}",
    tag = "token",
    summary = "Delete an API token, named by its id or the token itself",
    params(("token" = String, Path, description = "The token's id, or the plain token")),
    responses((status = 200, description = "OK", body = doc::Envelope<Deleted>), doc::ApiErrors)
)]
async fn delete_one(
    State(state): State<ApiState>,
    auth: AuthAccount,
    SegmentPath(token): SegmentPath,
) -> Result<Payload<Deleted>, ApiError> {
    let id = match Uuid::parse_str(&token) {
        Ok(id) => id,
        Err(_) => match state.repo.token_by_plain(&token).await? {
            Some(t) if t.account == auth.account => t.uuid,
            // Never echo a plain token back, not even in a 404.
            _ => {
                return Err(ApiError::NotFound {
                    kind: ObjectKind::ApiToken.as_str(),
                    id: "<given token>".into(),
                });
            }
        },
    };
    state.repo.delete_token(auth.account, id).await?;
    tokens_changed(&state, auth.account, serde_json::json!({"deleted": id}));
    Ok(Payload(Deleted { deleted: 1 }))
}
