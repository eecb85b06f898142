//! Leased ("purchased") numbers: `GET /rest/lease/tn`, `GET/PATCH/DELETE /rest/lease/tn/{uuid}`.
//! `DELETE` releases the number; the lease stays readable as history.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use opentact_store::{LeaseFilter, LeasePatch, LeaseState, ObjectKind, TnLease};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, IdPath, Page, Paging, Payload};
use crate::error::ApiError;
use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/lease/tn", get(list))
        .route("/rest/lease/tn/{uuid}", get(get_one).patch(patch).delete(release))
}

/// `Some(None)` for an explicit `null` (detach), `None` for an absent field (leave as is).
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateParam {
    #[default]
    Active,
    Released,
    All,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    // Not `#[serde(flatten)] Paging`: flattening loses the query string's number parsing.
    take: Option<u32>,
    skip: Option<u32>,
    /// `active` (default), `released` or `all`.
    #[serde(default)]
    state: StateParam,
}

async fn list(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Payload<Page<TnLease>>, ApiError> {
    let filter = LeaseFilter {
        state: match query.state {
            StateParam::Active => LeaseState::Active,
            StateParam::Released => LeaseState::Released,
            StateParam::All => LeaseState::All,
        },
        ..LeaseFilter::default()
    };
    Ok(Payload(
        state
            .repo
            .list_leases(auth.account, filter, Paging { take: query.take, skip: query.skip }.params()?)
            .await?,
    ))
}

async fn get_one(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<TnLease>, ApiError> {
    match state.repo.get_lease(auth.account, id).await? {
        Some(lease) => Ok(Payload(lease)),
        None => Err(ApiError::not_found(ObjectKind::TnLease, id)),
    }
}

/// The PATCH body. References are ids of the account's objects; `null` detaches.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseUpdate {
    #[serde(default)]
    pub autorenew: Option<bool>,
    #[serde(default)]
    pub voice: Option<bool>,
    #[serde(default)]
    pub sms: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub tn_profile: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "nullable")]
    pub sip_connection: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "nullable")]
    pub sip_control_app: Option<Option<Uuid>>,
    /// Documented, but the store has no messaging profiles yet: refused with a 422 rather
    /// than silently ignored.
    #[serde(default, deserialize_with = "nullable")]
    pub messaging_profile_uuid: Option<Option<Uuid>>,
}

async fn patch(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<LeaseUpdate>,
) -> Result<Payload<TnLease>, ApiError> {
    if body.messaging_profile_uuid.is_some() {
        return Err(ApiError::invalid("messaging_profile_uuid", "messaging profiles are not available yet"));
    }
    let patch = LeasePatch {
        voice: body.voice,
        sms: body.sms,
        autorenew: body.autorenew,
        tn_profile: body.tn_profile,
        sip_connection: body.sip_connection,
        sip_control_app: body.sip_control_app,
    };
    if patch.voice.is_none()
        && patch.sms.is_none()
        && patch.autorenew.is_none()
        && patch.tn_profile.is_none()
        && patch.sip_connection.is_none()
        && patch.sip_control_app.is_none()
    {
        return Err(ApiError::invalid(
            "body",
            "nothing to change: send one or more of autorenew, voice, sms, tn_profile, sip_connection, sip_control_app",
        ));
    }
    // Which field named the unknown reference, for the 422.
    let field = |kind: ObjectKind| match kind {
        ObjectKind::TnProfile => "tn_profile",
        ObjectKind::SipConnection => "sip_connection",
        ObjectKind::SipControlApp => "sip_control_app",
        _ => "body",
    };
    match state.repo.update_lease(auth.account, id, patch).await {
        Ok(lease) => Ok(Payload(lease)),
        Err(e @ opentact_store::StoreError::NotFound { kind, .. }) => {
            Err(ApiError::reference(e, ObjectKind::TnLease, field(kind)))
        }
        Err(e) => Err(e.into()),
    }
}

async fn release(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<TnLease>, ApiError> {
    Ok(Payload(state.repo.release_lease(auth.account, id).await?))
}
