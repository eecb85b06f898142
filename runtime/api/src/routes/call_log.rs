//! The call log (CDRs): `POST /rest/call/search` with a filter body, `GET /rest/call/{uuid}`
//! (the call with its recordings). The platform writes each call as it goes: started,
//! answered, ended with its Q.850 cause and duration.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use opentact_store::{CallDirection, CallFilter, CallRecord, CallState, ObjectKind, RecordingRecord};
use serde::{Deserialize, Serialize};

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, IdPath, Page, Paging, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/rest/call/search", post(search)).route("/rest/call/{uuid}", get(get_one))
}

/// `POST /rest/call/search`: every field optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallSearch {
    #[serde(default)]
    pub direction: Option<CallDirection>,
    #[serde(default)]
    pub state: Option<CallState>,
    /// The caller, exactly as logged (a number without `+`, or a SIP user).
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    /// Calls that started at or after this (ISO-8601).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<DateTime<Utc>>,
    /// Calls that started before this (ISO-8601).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<DateTime<Utc>>,
    /// `{"created_on": "ASC" | "DESC"}`: calls are listed in the order they started.
    #[serde(default)]
    pub order: Option<crate::routes::numbers::SortOrder>,
}

#[utoipa::path(
    post,
    operation_id = "call_log_search",
    path = "/rest/call/search",
    tag = "call",
    summary = "Search the call log (CDRs)",
    params(crate::envelope::Paging),
    request_body = CallSearch,
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<CallRecord>>), doc::ApiErrors)
)]
async fn search(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
    ApiJson(body): ApiJson<CallSearch>,
) -> Result<Payload<Page<CallRecord>>, ApiError> {
    let params = paging.search_params(body.order, body.since, body.until)?;
    let filter = CallFilter {
        direction: body.direction,
        state: body.state,
        from: body.from,
        to: body.to,
        since: body.since,
        until: body.until,
    };
    Ok(Payload(state.repo.search_calls(auth.account, filter, params).await?))
}

/// A call with its recordings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallView {
    #[serde(flatten)]
    pub call: CallRecord,
    pub recordings: Vec<RecordingRecord>,
}

#[utoipa::path(
    get,
    operation_id = "call_log_get_one",
    path = "/rest/call/{uuid}",
    tag = "call",
    summary = "A call of the call log, with its recordings",
    params(("uuid" = uuid::Uuid, Path, description = "The call's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<CallView>), doc::ApiErrors)
)]
async fn get_one(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<CallView>, ApiError> {
    let call =
        state.repo.get_call(auth.account, id).await?.ok_or(ApiError::not_found(ObjectKind::Call, id))?;
    let recordings = state.repo.call_recordings(auth.account, id).await?;
    Ok(Payload(CallView { call, recordings }))
}
