//! The OpenAPI 3 document of the API, generated from the handlers' `#[utoipa::path]`
//! annotations and the request and response types' `ToSchema` derives, served at
//! `GET /rest/openapi.json` (and rendered by `GET /rest/docs`).
//!
//! "Add an endpoint" adds its handler to [`ApiDoc`]'s `paths(…)`; the test in
//! `tests/openapi.rs` fails when a route the router serves is missing from the document.

use std::sync::LazyLock;

use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

use crate::routes;

/// The success envelope: `{"success": true, "payload": …}` (201 for creations).
#[derive(Debug, ToSchema)]
pub struct Envelope<T> {
    /// Always `true`.
    pub success: bool,
    pub payload: T,
}

/// A page of a list: `?take=&skip=` in, `{take, skip, total, data}` out (the store's
/// `List`, mirrored here because the store's paging type is not a schema).
#[derive(Debug, ToSchema)]
pub struct Page<T> {
    pub take: u32,
    pub skip: u32,
    /// Objects in the whole list, not just this page.
    pub total: i64,
    pub data: Vec<T>,
}

/// The error envelope: `{"success": false, "message": "…", "status": 4xx}`; the message says
/// what to fix.
#[derive(Debug, ToSchema)]
#[schema(example = json!({"success": false, "message": "ttl: must be between 60 and 316224000 seconds (got 5)", "status": 422}))]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    pub message: String,
    /// The HTTP status again.
    pub status: u16,
}

/// Raw bytes: a Wasm component uploaded, a recording's WAV downloaded.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);

/// A schema that is either a TN (integer) or a string: how lease references and caller-list
/// entries are sent.
pub(crate) fn integer_or_string(
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
        )
        .item(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .into()
}

/// The ways any request can fail (see `crate::error` for which error is which status).
#[derive(Debug, IntoResponses)]
pub enum ApiErrors {
    /// The request could not be read: malformed JSON, not `application/json`, an unknown
    /// field, a field of the wrong type, a path or query parameter that does not parse.
    #[response(status = 400)]
    BadRequest(ErrorEnvelope),
    /// No credentials, or credentials that were refused (the message names the method).
    #[response(status = 401)]
    Unauthorized(ErrorEnvelope),
    /// The object does not exist or is another account's.
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
    /// A uniqueness rule or the object's state forbids the change.
    #[response(status = 409)]
    Conflict(ErrorEnvelope),
    /// A value breaks a rule of the endpoint; the message names the field.
    #[response(status = 422)]
    Invalid(ErrorEnvelope),
}

/// How a password login can be refused besides [`ApiErrors`] (`crate::login_limit`,
/// `crate::password_gate`).
#[derive(Debug, IntoResponses)]
pub enum LoginRefusals {
    /// Too many failed logins for this e-mail or from this address; the `Retry-After` header
    /// says when to try again.
    #[response(status = 429)]
    TooManyFailures(ErrorEnvelope),
    /// Too many logins are being checked; try again after `Retry-After`.
    #[response(status = 503)]
    Busy(ErrorEnvelope),
}

/// The security schemes; every endpoint takes any one of them unless it says otherwise.
#[derive(Debug)]
struct Security;

/// The scheme names, in the order the document lists them.
pub const SECURITY_SCHEMES: [&str; 6] = ["bearer", "x_auth_token", "jwt_query", "basic", "google", "ha1b"];

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let header = |name: &str, what: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, what)))
        };
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT or API token".into());
        bearer.description = Some(
            "`Authorization: Bearer <token>`: an API token (`POST /rest/token`) or a JWT (`/rest/auth`)"
                .into(),
        );
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some("`Authorization: Basic base64(email:password)`".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme("x_auth_token", header("X-Auth-Token", "An API token or a JWT."));
        components.add_security_scheme(
            "jwt_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "jwt",
                "`?jwt=<token>`: an API token or a JWT (prefer a header: query strings end up in logs).",
            ))),
        );
        components.add_security_scheme("basic", SecurityScheme::Http(basic));
        components.add_security_scheme(
            "google",
            header(
                "X-Auth-Google-Token",
                "An OpenID Connect ID token, verified against the configured issuer's keys.",
            ),
        );
        components.add_security_scheme(
            "ha1b",
            header("X-Auth-HA1B-Token", "A SIP user's digest hash (HA1B), so SIP users can call the API."),
        );
        openapi.security = Some(
            SECURITY_SCHEMES
                .iter()
                .map(|name| SecurityRequirement::new(*name, Vec::<String>::new()))
                .collect(),
        );
    }
}

/// The document: every route of [`crate::router`], its bodies and answers.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Opentact REST API",
        description = "Phone numbers, SIP trunking, SIP users and domains, call control. \
            Everything is JSON under `/rest`; success is `{\"success\": true, \"payload\": …}` \
            (201 for creations), failure `{\"success\": false, \"message\": \"…\", \"status\": 4xx}`. \
            Ids are UUIDs, telephone numbers (TN) are integers with the country code and no `+` \
            (`12029822917`), timestamps are ISO-8601 UTC. Lists take `?take=&skip=` and answer \
            `{take, skip, total, data}`. Another account's object answers 404. A store failure \
            answers 500 `internal error` (logged, never described)."
    ),
    modifiers(&Security),
    paths(
        routes::auth::login_get,
        routes::auth::login_post,
        routes::token::create,
        routes::token::list,
        routes::token::delete_all,
        routes::token::delete_one,
        routes::numbers::search,
        routes::numbers::order,
        routes::numbers::search_orders,
        routes::numbers::get_order,
        routes::lease::list,
        routes::lease::get_one,
        routes::lease::patch,
        routes::lease::release,
        routes::profile::list,
        routes::profile::create,
        routes::profile::get_one,
        routes::profile::rename,
        routes::profile::remove,
        routes::profile::blacklist,
        routes::profile::whitelist,
        routes::lookup::lookup,
        routes::app::list,
        routes::app::create,
        routes::app::get_one,
        routes::app::update,
        routes::app::remove,
        routes::app::numbers,
        routes::app::assign_numbers,
        routes::app::versions,
        routes::app::upload,
        routes::app::remove_version,
        routes::sip_connection::list,
        routes::sip_connection::create,
        routes::sip_connection::get_one,
        routes::sip_connection::update,
        routes::sip_connection::remove,
        routes::sip_connection::numbers,
        routes::sip_connection::assign_numbers,
        routes::sip_connection::invites,
        routes::sip_connection::invite,
        routes::sip_connection::revoke,
        routes::sip_connection::redeem,
        routes::signup::signup,
        routes::account::show,
        routes::account::update,
        routes::account::balance,
        routes::account::search_transactions,
        routes::verified_number::list,
        routes::verified_number::create,
        routes::verified_number::get_one,
        routes::verified_number::remove,
        routes::verified_number::verify,
        routes::sip_domain::list,
        routes::sip_domain::create,
        routes::sip_domain::get_one,
        routes::sip_domain::update,
        routes::sip_domain::remove,
        routes::sip_domain::users,
        routes::sip_domain::create_user,
        routes::sip_domain::get_user,
        routes::sip_domain::update_user,
        routes::sip_domain::remove_user,
        routes::outbound_voice::list,
        routes::outbound_voice::create,
        routes::outbound_voice::get_one,
        routes::outbound_voice::update,
        routes::outbound_voice::remove,
        routes::messaging_profile::list,
        routes::messaging_profile::create,
        routes::messaging_profile::get_one,
        routes::messaging_profile::update,
        routes::messaging_profile::remove,
        routes::call::command,
        routes::call::originate,
        routes::call::bridge,
        routes::batch::create,
        routes::batch::list,
        routes::batch::get_one,
        routes::batch::cancel,
        routes::sms::send,
        routes::sms::send_pool,
        routes::sms::get_one,
        routes::sms::search,
        routes::sms::toggle,
        routes::tendlc::create_brand,
        routes::tendlc::list_brands,
        routes::tendlc::get_brand,
        routes::tendlc::create_campaign,
        routes::tendlc::list_campaigns,
        routes::tendlc::get_campaign,
        routes::tendlc::numbers,
        routes::call_log::search,
        routes::call_log::get_one,
        routes::record::get_one,
        routes::record::audio,
        routes::record::remove,
        routes::event::list,
        routes::event::test_webhook,
        routes::event::create,
        routes::event::remove,
        routes::event::key,
        routes::event::deliveries,
        routes::ws::upgrade,
        routes::docs::openapi_json,
        routes::docs::docs_page,
        routes::webcall::page,
        routes::webcall::script,
    ),
    components(schemas(ErrorEnvelope)),
    tags(
        (name = "auth", description = "Email and password in, a JWT out."),
        (name = "account", description = "The account signed in: its name and time zone, its balance and ledger."),
        (name = "token", description = "API tokens: shown once, stored as a hash."),
        (name = "numbers", description = "Available numbers and number orders."),
        (name = "lease", description = "Leased (purchased) numbers."),
        (name = "tn_profile", description = "TN profiles and their caller-ID black- and whitelists."),
        (name = "telecom", description = "Where a number is: area code, state, time zone; with the operator's NPA-NXX data also its county, rate center, line type and carrier."),
        (name = "sip_app", description = "SIP Control Apps: the call logic (XML, webhook, async control or a Wasm component)."),
        (name = "sip_connection", description = "SIP connections (trunks), their numbers and one-time credential invites."),
        (name = "sip_domain", description = "SIP domains and their users."),
        (name = "verified_number", description = "Verified caller IDs: numbers the account does not lease but proved it answers."),
        (name = "outbound_voice_profile", description = "Limits and STIR/SHAKEN policy of outbound calls."),
        (name = "messaging_profile", description = "SMS callbacks and number pools."),
        (name = "call", description = "Asynchronous call control, the call log and recordings."),
        (name = "sms", description = "SMS: send from a leased number, the SMS log with each message's state history, SMS on numbers."),
        (name = "10dlc", description = "10DLC: brands and campaigns that let US long codes send application-to-person SMS once the operator approves them, and the numbers of each campaign."),
        (name = "batch", description = "Bulk calls: one flow called out to a list of numbers, paced by the outbound voice profile."),
        (name = "events", description = "Event subscriptions, signed webhooks, and live events over a websocket."),
        (name = "docs", description = "This document."),
        (name = "webcall", description = "The web call: a page where a SIP user signs in and calls from the browser (SIP over WebSocket, WebRTC audio)."),
    )
)]
pub struct ApiDoc;

/// The document as served (built once).
pub fn json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        // Serializing a document of plain maps and strings cannot fail.
        ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    });
    &JSON
}
