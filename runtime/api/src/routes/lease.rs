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
use crate::openapi as doc;
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

#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = LeaseStateParam)]
#[serde(rename_all = "lowercase")]
pub enum StateParam {
    #[default]
    Active,
    Released,
    All,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    // Not `#[serde(flatten)] Paging`: flattening loses the query string's number parsing.
    /// Objects per page (default 50, at most 1000).
    #[param(maximum = 1000)]
    take: Option<u32>,
    /// Objects to skip.
    skip: Option<u32>,
    /// `active` (default), `released` or `all`.
    #[serde(default)]
    #[param(inline)]
    state: StateParam,
}

#[utoipa::path(
    get,
    operation_id = "lease_list",
    path = "/rest/lease/tn",
    tag = "lease",
    summary = "The account's leased numbers",
    params(ListQuery),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<TnLease>>), doc::ApiErrors)
)]
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

#[utoipa::path(
    get,
    operation_id = "lease_get_one",
    path = "/rest/lease/tn/{uuid}",
    tag = "lease",
    summary = "A leased number",
    params(("uuid" = uuid::Uuid, Path, description = "The lease's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<TnLease>), doc::ApiErrors)
)]
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
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
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
    /// The messaging profile whose callback URLs get the number's inbound SMS.
    #[serde(default, deserialize_with = "nullable")]
    pub messaging_profile_uuid: Option<Option<Uuid>>,
    /// The number's own event webhook: the events of the calls to and from it also go here
    /// (signed, like the account's webhooks); `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    pub event_url: Option<Option<String>>,
}

#[utoipa::path(
    patch,
    operation_id = "lease_patch",
    path = "/rest/lease/tn/{uuid}",
    tag = "lease",
    summary = "Change a lease: features, autorenew, where its calls and SMS go",
    params(("uuid" = uuid::Uuid, Path, description = "The lease's id")),
    request_body = LeaseUpdate,
    responses((status = 200, description = "OK", body = doc::Envelope<TnLease>), doc::ApiErrors)
)]
async fn patch(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<LeaseUpdate>,
) -> Result<Payload<TnLease>, ApiError> {
    let patch = LeasePatch {
        voice: body.voice,
        sms: body.sms,
        autorenew: body.autorenew,
        tn_profile: body.tn_profile,
        sip_connection: body.sip_connection,
        sip_control_app: body.sip_control_app,
        messaging_profile: body.messaging_profile_uuid,
        event_url: state.webhook_urls.check_event_url_patch(body.event_url)?,
    };
    if patch.voice.is_none()
        && patch.sms.is_none()
        && patch.autorenew.is_none()
        && patch.tn_profile.is_none()
        && patch.sip_connection.is_none()
        && patch.sip_control_app.is_none()
        && patch.messaging_profile.is_none()
        && patch.event_url.is_none()
    {
        return Err(ApiError::invalid(
            "body",
            "nothing to change: send one or more of autorenew, voice, sms, tn_profile, sip_connection, \
             sip_control_app, messaging_profile_uuid, event_url",
        ));
    }
    // Which field named the unknown reference, for the 422.
    let field = |kind: ObjectKind| match kind {
        ObjectKind::TnProfile => "tn_profile",
        ObjectKind::SipConnection => "sip_connection",
        ObjectKind::SipControlApp => "sip_control_app",
        ObjectKind::MessagingProfile => "messaging_profile_uuid",
        _ => "body",
    };
    match state.repo.update_lease(auth.account, id, patch).await {
        Ok(lease) => {
            crate::publish::tn_changed(&state, auth.account, "updated", &lease);
            Ok(Payload(lease))
        }
        Err(e @ opentact_store::StoreError::NotFound { kind, .. }) => {
            Err(ApiError::reference(e, ObjectKind::TnLease, field(kind)))
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    delete,
    operation_id = "lease_release",
    path = "/rest/lease/tn/{uuid}",
    tag = "lease",
    summary = "Release the number (the lease stays readable as history)",
    params(("uuid" = uuid::Uuid, Path, description = "The lease's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<TnLease>), doc::ApiErrors)
)]
async fn release(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<TnLease>, ApiError> {
    let lease = state.repo.release_lease(auth.account, id).await?;
    crate::publish::tn_changed(&state, auth.account, "released", &lease);
    Ok(Payload(lease))
}

// ---------------------------------------------------------------------------------------------
// numbers on a connection or an app: `GET/POST …/{uuid}/tnlease {add, remove}`

/// Most leases one assignment request may add or remove (each).
pub const MAX_ASSIGN_ENTRIES: usize = 1000;

/// What a `/tnlease` path assigns numbers to: inbound calls to them go there.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Assignee {
    Connection(Uuid),
    App(Uuid),
}

impl Assignee {
    fn filter(self) -> LeaseFilter {
        match self {
            Assignee::Connection(c) => LeaseFilter { sip_connection: Some(c), ..LeaseFilter::default() },
            Assignee::App(a) => LeaseFilter { sip_control_app: Some(a), ..LeaseFilter::default() },
        }
    }

    fn holds(self, lease: &TnLease) -> bool {
        match self {
            Assignee::Connection(c) => lease.sip_connection == Some(c),
            Assignee::App(a) => lease.sip_control_app == Some(a),
        }
    }

    fn patch(self, attach: bool) -> LeasePatch {
        match self {
            Assignee::Connection(c) => {
                LeasePatch { sip_connection: Some(attach.then_some(c)), ..LeasePatch::default() }
            }
            Assignee::App(a) => {
                LeasePatch { sip_control_app: Some(attach.then_some(a)), ..LeasePatch::default() }
            }
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Assignee::Connection(_) => "connection",
            Assignee::App(_) => "app",
        }
    }

    /// 404 unless the assignee is a live object of the account.
    async fn ensure(self, state: &ApiState, account: Uuid) -> Result<(), ApiError> {
        let found = match self {
            Assignee::Connection(c) => state.repo.get_connection(account, c).await?.is_some(),
            Assignee::App(a) => state.repo.get_app(account, a).await?.is_some(),
        };
        match (found, self) {
            (true, _) => Ok(()),
            (false, Assignee::Connection(c)) => Err(ApiError::not_found(ObjectKind::SipConnection, c)),
            (false, Assignee::App(a)) => Err(ApiError::not_found(ObjectKind::SipControlApp, a)),
        }
    }
}

/// A lease named by its id or by its number (JSON integer, or a string of digits).
#[derive(Debug, Clone)]
pub enum LeaseRef {
    Id(Uuid),
    Tn(i64),
    Bad(String),
}

impl utoipa::PartialSchema for LeaseRef {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        doc::integer_or_string("A lease: its TN (integer, or a string of digits) or its uuid")
    }
}

impl utoipa::ToSchema for LeaseRef {}

impl<'de> Deserialize<'de> for LeaseRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Int(tn) => LeaseRef::Tn(tn),
            Raw::Text(s) => match (Uuid::parse_str(&s), s.trim_start_matches('+').parse::<i64>()) {
                (Ok(id), _) => LeaseRef::Id(id),
                (_, Ok(tn)) => LeaseRef::Tn(tn),
                _ => LeaseRef::Bad(s),
            },
        })
    }
}

/// The body of `POST …/tnlease`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub add: Vec<LeaseRef>,
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub remove: Vec<LeaseRef>,
}

/// The account's active lease that `r` names; a 422 naming `field` otherwise.
async fn resolve(state: &ApiState, account: Uuid, field: &str, r: &LeaseRef) -> Result<TnLease, ApiError> {
    let found = match r {
        LeaseRef::Id(id) => state.repo.get_lease(account, *id).await?,
        LeaseRef::Tn(tn) => state.repo.lease_by_tn(*tn).await?.filter(|l| l.account == account),
        LeaseRef::Bad(s) => {
            return Err(ApiError::invalid(
                field,
                format!("{s:?} is neither a lease id nor a number: send the lease's uuid or its TN"),
            ));
        }
    };
    found.filter(|l| l.released_on.is_none()).ok_or_else(|| {
        ApiError::invalid(
            field,
            match r {
                LeaseRef::Tn(tn) => format!("number {tn} is not leased by this account"),
                LeaseRef::Id(id) => format!("no active lease {id} in this account"),
                LeaseRef::Bad(s) => format!("{s:?} is not a lease"),
            },
        )
    })
}

/// `GET …/tnlease`: the active leases assigned to `to`.
pub(crate) async fn assigned(
    state: &ApiState,
    account: Uuid,
    to: Assignee,
    paging: Paging,
) -> Result<Payload<Page<TnLease>>, ApiError> {
    to.ensure(state, account).await?;
    Ok(Payload(state.repo.list_leases(account, to.filter(), paging.params()?).await?))
}

/// `POST …/tnlease`: checks every entry first, so a bad one changes nothing, then attaches
/// `add` and detaches `remove`; answers with the leases now assigned (first page).
pub(crate) async fn assign(
    state: &ApiState,
    account: Uuid,
    to: Assignee,
    body: Assignment,
) -> Result<Payload<Page<TnLease>>, ApiError> {
    to.ensure(state, account).await?;
    if body.add.is_empty() && body.remove.is_empty() {
        return Err(ApiError::invalid("body", "nothing to change: send add: […] and/or remove: […]"));
    }
    for (field, list) in [("add", &body.add), ("remove", &body.remove)] {
        if list.len() > MAX_ASSIGN_ENTRIES {
            return Err(ApiError::invalid(
                field,
                format!("at most {MAX_ASSIGN_ENTRIES} entries per request"),
            ));
        }
    }
    let mut add = Vec::with_capacity(body.add.len());
    for (i, r) in body.add.iter().enumerate() {
        add.push(resolve(state, account, &format!("add[{i}]"), r).await?);
    }
    let mut remove = Vec::with_capacity(body.remove.len());
    for (i, r) in body.remove.iter().enumerate() {
        let lease = resolve(state, account, &format!("remove[{i}]"), r).await?;
        if !to.holds(&lease) {
            return Err(ApiError::invalid(
                format!("remove[{i}]"),
                format!("number {} is not on this {}", lease.tn, to.noun()),
            ));
        }
        if add.iter().any(|a| a.uuid == lease.uuid) {
            return Err(ApiError::invalid(
                format!("remove[{i}]"),
                format!("number {} is both added and removed", lease.tn),
            ));
        }
        remove.push(lease);
    }
    for lease in &add {
        let lease = state.repo.update_lease(account, lease.uuid, to.patch(true)).await?;
        crate::publish::tn_changed(state, account, "assigned", &lease);
    }
    for lease in &remove {
        let lease = state.repo.update_lease(account, lease.uuid, to.patch(false)).await?;
        crate::publish::tn_changed(state, account, "unassigned", &lease);
    }
    Ok(Payload(state.repo.list_leases(account, to.filter(), opentact_store::ListParams::default()).await?))
}
