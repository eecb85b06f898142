//! SIP Control Apps: `GET/POST /rest/sip/app`, `GET/PATCH/DELETE /rest/sip/app/{uuid}`, and
//! the app's Wasm component: `PUT /rest/sip/app/{uuid}/component` (body `application/wasm`),
//! `GET /rest/sip/app/{uuid}/component` (its versions), `DELETE
//! /rest/sip/app/{uuid}/component/{version}` (one that is not current; an app keeps at most
//! `api.max_component_versions_per_app`); the numbers whose calls the app runs:
//! `GET/POST /rest/sip/app/{uuid}/tnlease {add, remove}`.
//!
//! An app runs in exactly one mode: hosted `xml` (validated by the dialect's own parser — an
//! invalid document is refused with each error's line and column), a webhook
//! (`webhook_url` + `webhook_method` + `webhook_request_timeout`), `control: "async"`, or
//! `component: true` (the uploaded component; a new upload is deployed at once).
//!
//! `webhook_url` and `event_url` must name destinations the platform may call
//! ([`crate::url_policy`]): a loopback or private address is refused (422) unless the
//! operator allows it.
//!
//! `shaken_verify_policy` (`off`, `tag`, `reject`) and `shaken_minimum_accepted_attest_lvl`
//! (`A`, `B`, `C`) decide what the app's inbound calls' STIR/SHAKEN verification does; null
//! (the default) follows the platform's `[stir_shaken]` configuration.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{delete, get};
use opentact_store::{
    AppMode, AppShaken, AttestLevel, ComponentVersion, NewSipControlApp, ObjectKind, ShakenVerifyPolicy,
    SipControlApp, SipControlAppPatch, WebhookMethod,
};
use serde::{Deserialize, Serialize};

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Created, IdPath, IdsPath, Page, Paging, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::ApiState;
use crate::url_policy::UrlPolicy;

/// Longest app name, in characters.
pub const MAX_APP_NAME: usize = 100;
/// Largest hosted XML document, bytes.
pub const MAX_XML_BYTES: usize = 256 * 1024;
/// Largest uploaded component, bytes.
pub const MAX_COMPONENT_BYTES: usize = 10 * 1024 * 1024;
/// Longest call an app may allow, minutes (24 h).
pub const MAX_CALL_LENGTH_MIN: i32 = 1440;
/// Longest webhook timeout, ms.
pub const MAX_WEBHOOK_TIMEOUT_MS: i64 = 30_000;
/// The component-model binary header: magic, version 0x0d, layer 1.
const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/sip/app", get(list).post(create))
        .route("/rest/sip/app/{uuid}", get(get_one).patch(update).delete(remove))
        .route("/rest/sip/app/{uuid}/tnlease", get(numbers).post(assign_numbers))
        .route(
            "/rest/sip/app/{uuid}/component",
            get(versions).put(upload).layer(axum::extract::DefaultBodyLimit::max(MAX_COMPONENT_BYTES + 1)),
        )
        .route("/rest/sip/app/{uuid}/component/{version}", delete(remove_version))
}

/// The mode fields of a create or update body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppBody {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[schema(max_length = 262144)]
    pub xml: Option<String>,
    #[schema(pattern = "^https?://[^ ]+$", max_length = 2048)]
    pub webhook_url: Option<String>,
    #[schema(pattern = "^(?i:GET|POST)$")]
    pub webhook_method: Option<String>,
    #[schema(minimum = 100, maximum = 30000)]
    pub webhook_request_timeout: Option<i64>,
    #[schema(pattern = "^async$")]
    pub control: Option<String>,
    pub component: Option<bool>,
    pub auto_answer: Option<bool>,
    #[schema(minimum = 1, maximum = 1440)]
    pub max_call_length_min: Option<i32>,
    /// Where the app's calls' events are POSTed; on update, null removes it (absent keeps it).
    #[schema(pattern = "^https?://[^ ]+$", max_length = 2048)]
    #[serde(default, deserialize_with = "crate::routes::lease::nullable")]
    pub event_url: Option<Option<String>>,
    /// What the app's inbound calls' STIR/SHAKEN `Identity` decides: `off`, `tag` or `reject`
    /// (refused with RFC 8224's 428, 436, 437, 438 or 403); null follows the platform's
    /// `[stir_shaken] verify_policy`.
    #[serde(default, deserialize_with = "crate::routes::lease::nullable")]
    pub shaken_verify_policy: Option<Option<ShakenVerifyPolicy>>,
    /// With `reject`, a verified call attested below this level (`A`, `B` or `C`) is refused
    /// with 403; null follows the platform's `[stir_shaken] minimum_attestation`.
    #[serde(default, deserialize_with = "crate::routes::lease::nullable")]
    pub shaken_minimum_accepted_attest_lvl: Option<Option<AttestLevel>>,
}

fn check_name(name: &str) -> Result<String, ApiError> {
    crate::envelope::check_name("name", name, MAX_APP_NAME)
}

/// What webhooks are called in refusals of their URLs.
pub(crate) const WEBHOOKS: &str = "webhooks";
/// What flow documents are called in refusals of their URLs.
pub(crate) const FLOW_FETCHES: &str = "flow documents";

/// The mode the body asks for, if any; more than one is an error. A `webhook_url` must name a
/// destination `flow_urls` allows.
pub(crate) fn mode_of(body: &AppBody, flow_urls: &UrlPolicy) -> Result<Option<AppMode>, ApiError> {
    let chosen = [
        body.xml.is_some(),
        body.webhook_url.is_some(),
        body.control.is_some(),
        body.component == Some(true),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    if chosen > 1 {
        return Err(ApiError::invalid(
            "mode",
            "give one of xml, webhook_url, control: \"async\" or component: true",
        ));
    }
    if let Some(xml) = &body.xml {
        if xml.len() > MAX_XML_BYTES {
            return Err(ApiError::invalid("xml", format!("at most {MAX_XML_BYTES} bytes")));
        }
        // The same parser the XML guest runs: what is accepted here runs on calls.
        if let Err(errors) = opentact_xml::parse(xml) {
            return Err(ApiError::invalid("xml", errors.to_string()));
        }
        return Ok(Some(AppMode::Xml { document: xml.clone() }));
    }
    if let Some(url) = &body.webhook_url {
        let method = match body.webhook_method.as_deref().unwrap_or("POST").to_ascii_uppercase().as_str() {
            "GET" => WebhookMethod::Get,
            "POST" => WebhookMethod::Post,
            other => return Err(ApiError::invalid("webhook_method", format!("{other:?}: GET or POST"))),
        };
        let timeout_ms = body.webhook_request_timeout.unwrap_or(10_000);
        if !(100..=MAX_WEBHOOK_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(ApiError::invalid(
                "webhook_request_timeout",
                format!("100 to {MAX_WEBHOOK_TIMEOUT_MS} ms"),
            ));
        }
        return Ok(Some(AppMode::Webhook {
            url: flow_urls.check("webhook_url", FLOW_FETCHES, url)?,
            method,
            timeout_ms,
        }));
    }
    if let Some(control) = &body.control {
        if control != "async" {
            return Err(ApiError::invalid("control", format!("{control:?}: the only value is \"async\"")));
        }
        return Ok(Some(AppMode::Async));
    }
    if body.component == Some(true) {
        return Ok(Some(AppMode::Component));
    }
    Ok(None)
}

fn check_length(minutes: i32) -> Result<i32, ApiError> {
    if !(1..=MAX_CALL_LENGTH_MIN).contains(&minutes) {
        return Err(ApiError::invalid("max_call_length_min", format!("1 to {MAX_CALL_LENGTH_MIN}")));
    }
    Ok(minutes)
}

#[utoipa::path(
    get,
    operation_id = "app_list",
    path = "/rest/sip/app",
    tag = "sip_app",
    summary = "The account's SIP Control Apps",
    params(crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<SipControlApp>>), doc::ApiErrors)
)]
async fn list(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<SipControlApp>>, ApiError> {
    Ok(Payload(state.repo.list_apps(auth.account, paging.params()?).await?))
}

#[utoipa::path(
    post,
    operation_id = "app_create",
    path = "/rest/sip/app",
    tag = "sip_app",
    summary = "Create an app in one mode: xml, webhook_url, control: async or component: true",
    request_body = AppBody,
    responses((status = 201, description = "Created", body = doc::Envelope<SipControlApp>), doc::ApiErrors)
)]
async fn create(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<AppBody>,
) -> Result<Created<SipControlApp>, ApiError> {
    let name = check_name(body.name.as_deref().ok_or_else(|| ApiError::invalid("name", "is required"))?)?;
    let mode = mode_of(&body, &state.flow_urls)?.ok_or_else(|| {
        ApiError::invalid("mode", "give one of xml, webhook_url, control: \"async\" or component: true")
    })?;
    let event_url =
        body.event_url.flatten().map(|url| state.webhook_urls.check_event_url(&url)).transpose()?;
    let shaken = AppShaken {
        shaken_verify_policy: body.shaken_verify_policy.flatten(),
        shaken_minimum_accepted_attest_lvl: body.shaken_minimum_accepted_attest_lvl.flatten(),
    };
    let new = NewSipControlApp {
        name,
        mode,
        auto_answer: body.auto_answer.unwrap_or(true),
        max_call_length_min: check_length(body.max_call_length_min.unwrap_or(240))?,
        event_url,
        shaken,
    };
    Ok(Created(state.repo.create_app(auth.account, new).await?))
}

#[utoipa::path(
    get,
    operation_id = "app_get_one",
    path = "/rest/sip/app/{uuid}",
    tag = "sip_app",
    summary = "An app",
    params(("uuid" = uuid::Uuid, Path, description = "The app's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<SipControlApp>), doc::ApiErrors)
)]
async fn get_one(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<SipControlApp>, ApiError> {
    match state.repo.get_app(auth.account, id).await? {
        Some(app) => Ok(Payload(app)),
        None => Err(ApiError::not_found(ObjectKind::SipControlApp, id)),
    }
}

#[utoipa::path(
    patch,
    operation_id = "app_update",
    path = "/rest/sip/app/{uuid}",
    tag = "sip_app",
    summary = "Change an app (a mode field switches its mode)",
    params(("uuid" = uuid::Uuid, Path, description = "The app's id")),
    request_body = AppBody,
    responses((status = 200, description = "OK", body = doc::Envelope<SipControlApp>), doc::ApiErrors)
)]
async fn update(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<AppBody>,
) -> Result<Payload<SipControlApp>, ApiError> {
    let event_url = state.webhook_urls.check_event_url_patch(body.event_url.clone())?;
    let patch = SipControlAppPatch {
        name: body.name.as_deref().map(check_name).transpose()?,
        mode: mode_of(&body, &state.flow_urls)?,
        auto_answer: body.auto_answer,
        max_call_length_min: body.max_call_length_min.map(check_length).transpose()?,
        event_url,
        shaken_verify_policy: body.shaken_verify_policy,
        shaken_minimum_accepted_attest_lvl: body.shaken_minimum_accepted_attest_lvl,
    };
    let empty = patch.name.is_none()
        && patch.mode.is_none()
        && patch.auto_answer.is_none()
        && patch.max_call_length_min.is_none()
        && patch.event_url.is_none()
        && patch.shaken_verify_policy.is_none()
        && patch.shaken_minimum_accepted_attest_lvl.is_none();
    if empty {
        return Err(ApiError::invalid("body", "nothing to change"));
    }
    Ok(Payload(state.repo.update_app(auth.account, id, patch).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedApp {
    pub uuid: uuid::Uuid,
    pub deleted: bool,
}

#[utoipa::path(
    delete,
    operation_id = "app_remove",
    path = "/rest/sip/app/{uuid}",
    tag = "sip_app",
    summary = "Delete an app",
    params(("uuid" = uuid::Uuid, Path, description = "The app's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<DeletedApp>), doc::ApiErrors)
)]
async fn remove(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<DeletedApp>, ApiError> {
    state.repo.delete_app(auth.account, id).await?;
    Ok(Payload(DeletedApp { uuid: id, deleted: true }))
}

#[utoipa::path(
    get,
    operation_id = "app_versions",
    path = "/rest/sip/app/{uuid}/component",
    tag = "sip_app",
    summary = "The uploaded versions of the app's Wasm component",
    params(("uuid" = uuid::Uuid, Path, description = "The app's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<Vec<ComponentVersion>>), doc::ApiErrors)
)]
async fn versions(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<Vec<ComponentVersion>>, ApiError> {
    if state.repo.get_app(auth.account, id).await?.is_none() {
        return Err(ApiError::not_found(ObjectKind::SipControlApp, id));
    }
    Ok(Payload(state.repo.list_component_versions(auth.account, id).await?))
}

/// What an upload answers: the stored version, now the app's current component.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deployed {
    pub version: ComponentVersion,
    pub app: SipControlApp,
}

#[utoipa::path(
    put,
    operation_id = "app_upload",
    path = "/rest/sip/app/{uuid}/component",
    tag = "sip_app",
    summary = "Upload a Wasm component (checked against the flow world) and deploy it",
    params(("uuid" = uuid::Uuid, Path, description = "The app's id")),
    request_body(content = doc::Binary, content_type = "application/wasm", description = "A WebAssembly component built for wasm32-wasip2"),
    responses((status = 201, description = "Created", body = doc::Envelope<Deployed>), doc::ApiErrors)
)]
async fn upload(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Created<Deployed>, ApiError> {
    if state.repo.get_app(auth.account, id).await?.is_none() {
        return Err(ApiError::not_found(ObjectKind::SipControlApp, id));
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.trim().eq_ignore_ascii_case("application/wasm") {
        return Err(ApiError::invalid(
            "Content-Type",
            format!("must be application/wasm (got {content_type:?})"),
        ));
    }
    if body.len() > MAX_COMPONENT_BYTES {
        return Err(ApiError::BodyTooLarge { limit: MAX_COMPONENT_BYTES });
    }
    if !body.starts_with(&COMPONENT_HEADER) {
        let what = if body.starts_with(b"\0asm") {
            "a core WebAssembly module, not a component: build for wasm32-wasip2"
        } else {
            "not WebAssembly"
        };
        return Err(ApiError::invalid("component", what));
    }
    // Checked before the compile, which is the expensive part; checked again, atomically, by
    // the insert below (uploads racing each other past this first check).
    let quota = state.config.max_component_versions_per_app;
    let at_quota = |kept: usize| {
        ApiError::invalid(
            "component",
            format!(
                "the app has {kept} component versions, the most it may keep \
                 (api.max_component_versions_per_app = {quota}): delete old ones with \
                 DELETE /rest/sip/app/{id}/component/{{version}}"
            ),
        )
    };
    let kept = state.repo.list_component_versions(auth.account, id).await?.len();
    if kept >= usize::try_from(quota).unwrap_or(usize::MAX) {
        return Err(at_quota(kept));
    }
    // The flow host compiles and links it against the flow world (the server plugs it in).
    if let Some(check) = &state.component_check {
        match check.check(body.to_vec()).await {
            Ok(()) => {}
            Err(crate::state::ComponentRefused::Invalid(reason)) => {
                return Err(ApiError::invalid("component", reason));
            }
            Err(crate::state::ComponentRefused::Busy(reason)) => return Err(ApiError::Unavailable(reason)),
        }
    }
    let Some(version) = state.repo.add_component_version_within(auth.account, id, &body, quota).await? else {
        let kept = state.repo.list_component_versions(auth.account, id).await?.len();
        return Err(at_quota(kept));
    };
    let app = state.repo.set_current_component(auth.account, id, version.uuid).await?;
    Ok(Created(Deployed { version, app }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedVersion {
    pub uuid: uuid::Uuid,
    pub deleted: bool,
}

#[utoipa::path(
    delete,
    operation_id = "app_remove_version",
    path = "/rest/sip/app/{uuid}/component/{version}",
    tag = "sip_app",
    summary = "Delete one of the app's component versions (not the current one)",
    params(("uuid" = uuid::Uuid, Path, description = "The app's id"), ("version" = uuid::Uuid, Path, description = "The version's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<DeletedVersion>), doc::ApiErrors)
)]
async fn remove_version(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdsPath(app, version): IdsPath,
) -> Result<Payload<DeletedVersion>, ApiError> {
    state.repo.delete_component_version(auth.account, app, version).await?;
    Ok(Payload(DeletedVersion { uuid: version, deleted: true }))
}

#[utoipa::path(
    get,
    operation_id = "app_numbers",
    path = "/rest/sip/app/{uuid}/tnlease",
    tag = "sip_app",
    summary = "The numbers whose calls the app runs",
    params(("uuid" = uuid::Uuid, Path, description = "The app's id"), crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<opentact_store::TnLease>>), doc::ApiErrors)
)]
async fn numbers(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<opentact_store::TnLease>>, ApiError> {
    crate::routes::lease::assigned(&state, auth.account, crate::routes::lease::Assignee::App(id), paging)
        .await
}

#[utoipa::path(
    post,
    operation_id = "app_assign_numbers",
    path = "/rest/sip/app/{uuid}/tnlease",
    tag = "sip_app",
    summary = "Assign numbers to the app and take them off it",
    params(("uuid" = uuid::Uuid, Path, description = "The app's id")),
    request_body = crate::routes::lease::Assignment,
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<opentact_store::TnLease>>), doc::ApiErrors)
)]
async fn assign_numbers(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<crate::routes::lease::Assignment>,
) -> Result<Payload<Page<opentact_store::TnLease>>, ApiError> {
    crate::routes::lease::assign(&state, auth.account, crate::routes::lease::Assignee::App(id), body).await
}
