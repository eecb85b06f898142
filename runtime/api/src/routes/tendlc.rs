//! 10DLC: `POST/GET /rest/10dlc/brand`, `GET /rest/10dlc/brand/{uuid}`,
//! `POST/GET /rest/10dlc/campaign`, `GET /rest/10dlc/campaign/{uuid}` and
//! `POST /rest/10dlc/campaign/{uuid}/numbers {add, remove}`.
//!
//! US carriers take application-to-person SMS from a local long code only when the number is in
//! a campaign the registry approved: an account registers its brand (who sends) and a campaign
//! (what, to whom, how people opt in and out), assigns its numbers, and the operator approves or
//! rejects the campaign (`opentact admin 10dlc approve|reject`). Until then `POST /rest/sms`
//! from those numbers is refused (the messaging crate's `tendlc` module). What is asked here is
//! what a campaign registry asks; every refusal is a 422 naming the field.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use opentact_store::{
    BrandEntityType, CampaignFilter, CampaignState, NewTenDlcBrand, NewTenDlcCampaign, ObjectKind,
    SenderKind, TenDlcBrand, TenDlcCampaign, TnLease, USE_CASES, VERTICALS, sender_kind,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Created, IdPath, Page, Paging, Payload, check_name};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::routes::batch::normalize as digits;
use crate::routes::sms::LeaseRef;
use crate::state::ApiState;

/// Longest name, street or city, characters.
pub const MAX_NAME: usize = 255;
/// Shortest and longest campaign description and opt-in flow, characters (a registry wants
/// enough to judge by).
pub const DESCRIPTION_CHARS: (usize, usize) = (40, 4096);
/// How many sample messages a campaign gives.
pub const SAMPLE_COUNT: (usize, usize) = (2, 5);
/// Shortest and longest sample message, characters.
pub const SAMPLE_CHARS: (usize, usize) = (20, 1024);
/// Shortest and longest opt-in, opt-out and help answer, characters.
pub const ANSWER_CHARS: (usize, usize) = (20, 320);
/// Most numbers one `POST /rest/10dlc/campaign/{uuid}/numbers` names (add and remove together).
pub const MAX_NUMBER_ITEMS: usize = 1_000;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/10dlc/brand", get(list_brands).post(create_brand))
        .route("/rest/10dlc/brand/{uuid}", get(get_brand))
        .route("/rest/10dlc/campaign", get(list_campaigns).post(create_campaign))
        .route("/rest/10dlc/campaign/{uuid}", get(get_campaign))
        .route("/rest/10dlc/campaign/{uuid}/numbers", post(numbers))
}

// ---------------------------------------------------------------------------------------------
// brands

/// The body of `POST /rest/10dlc/brand`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewTenDlcBrand)]
#[serde(deny_unknown_fields)]
pub struct NewBrand {
    /// The name the tax id is registered to.
    #[schema(min_length = 1, max_length = 255)]
    pub legal_name: String,
    /// The name customers know, when different.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pub dba_name: Option<String>,
    #[schema(value_type = BrandEntityType)]
    pub entity_type: String,
    /// The tax id; for a US brand its EIN, nine digits (`12-3456789` or `123456789`).
    pub ein: String,
    /// The country that issued the tax id (ISO 3166 alpha-2); `US` when not given.
    #[serde(default)]
    #[schema(pattern = "^[A-Z]{2}$")]
    pub country: Option<String>,
    /// One of the registry's verticals: AGRICULTURE, COMMUNICATION, CONSTRUCTION, EDUCATION,
    /// ENERGY, ENTERTAINMENT, FINANCIAL, GAMBLING, GOVERNMENT, HEALTHCARE, HOSPITALITY,
    /// HUMAN_RESOURCES, INSURANCE, LEGAL, MANUFACTURING, NGO, POLITICAL, POSTAL, PROFESSIONAL,
    /// REAL_ESTATE, RETAIL, TECHNOLOGY.
    pub vertical: String,
    /// The brand's website (http or https).
    #[serde(default)]
    #[schema(pattern = "^https?://[^ ]+$", max_length = 2048)]
    pub website: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    pub street: String,
    #[schema(min_length = 1, max_length = 255)]
    pub city: String,
    /// State or region code (two letters for the US).
    pub state: String,
    /// Five digits (or ZIP+4) for the US.
    pub postal_code: String,
    /// Who the registry and carriers reach about the brand.
    #[schema(min_length = 1, max_length = 255)]
    pub contact_name: String,
    pub contact_email: String,
    /// With its country code (`+12025550100`).
    pub contact_phone: String,
}

/// `value` trimmed, 1 to `max` characters, or a 422 on `field`.
fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    check_name(field, value, max)
}

/// `value` trimmed, `min` to `max` characters.
fn sized(field: &str, value: &str, (min, max): (usize, usize)) -> Result<String, ApiError> {
    let value = value.trim();
    let n = value.chars().count();
    if !(min..=max).contains(&n) {
        return Err(ApiError::invalid(field, format!("must be {min} to {max} characters (got {n})")));
    }
    Ok(value.to_owned())
}

/// One of `allowed`, compared without case; answered in the registry's spelling.
fn one_of(field: &str, value: &str, allowed: &[&'static str]) -> Result<String, ApiError> {
    let wanted = value.trim().to_ascii_uppercase();
    allowed
        .iter()
        .find(|a| **a == wanted)
        .map(|a| (*a).to_owned())
        .ok_or_else(|| ApiError::invalid(field, format!("{value:?} is not one of {}", allowed.join(", "))))
}

fn entity_type(value: &str) -> Result<BrandEntityType, ApiError> {
    BrandEntityType::parse(value.trim()).ok_or_else(|| {
        ApiError::invalid(
            "entity_type",
            format!(
                "{value:?} is not one of private_profit, public_profit, non_profit, government, sole_proprietor"
            ),
        )
    })
}

fn country(value: Option<&str>) -> Result<String, ApiError> {
    let value = value.map(str::trim).unwrap_or("US");
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(value.to_ascii_uppercase())
    } else {
        Err(ApiError::invalid("country", format!("{value:?} is not a two-letter country code such as US")))
    }
}

/// A US EIN is nine digits, shown `12-3456789`; other countries' tax ids are kept as given.
fn ein(value: &str, country: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if country == "US" {
        let digits: String = value.chars().filter(|c| *c != '-').collect();
        if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid(
                "ein",
                format!("{value:?} is not a US EIN: nine digits, e.g. 12-3456789"),
            ));
        }
        return Ok(format!("{}-{}", &digits[..2], &digits[2..]));
    }
    if value.is_empty() || value.len() > 21 || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ApiError::invalid("ein", "must be the tax id: 1 to 21 letters, digits or hyphens"));
    }
    Ok(value.to_owned())
}

fn website(value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    let ok = url::Url::parse(value).ok().is_some_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| h.contains('.'))
    });
    if ok && value.len() <= 2048 {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid(
            "website",
            format!("{value:?} is not a public http(s) URL such as https://example.com"),
        ))
    }
}

fn email(value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    let ok = value.len() <= 254
        && !value.contains(char::is_whitespace)
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        });
    if ok {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid("contact_email", format!("{value:?} is not an email address")))
    }
}

fn phone(value: &str) -> Result<String, ApiError> {
    let compact: String = value.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.')).collect();
    digits(&crate::routes::batch::Phone::Text(compact)).ok_or_else(|| {
        ApiError::invalid(
            "contact_phone",
            format!("{value:?} is not a telephone number: digits with the country code, e.g. +12025550100"),
        )
    })
}

fn us_address(state: &str, postal_code: &str) -> Result<(String, String), ApiError> {
    let state = state.trim();
    if state.len() != 2 || !state.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ApiError::invalid(
            "state",
            format!("{state:?} is not a two-letter US state code such as DC"),
        ));
    }
    let zip = postal_code.trim();
    let zip_ok = match zip.split_once('-') {
        None => zip.len() == 5,
        Some((five, four)) => five.len() == 5 && four.len() == 4,
    } && zip.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    if !zip_ok {
        return Err(ApiError::invalid(
            "postal_code",
            format!("{zip:?} is not a US ZIP code: five digits, or ZIP+4 (20500-0003)"),
        ));
    }
    Ok((state.to_ascii_uppercase(), zip.to_owned()))
}

#[utoipa::path(
    post,
    operation_id = "tendlc_brand_create",
    path = "/rest/10dlc/brand",
    tag = "10dlc",
    summary = "Register a 10DLC brand (the business that sends)",
    request_body = NewBrand,
    responses((status = 201, description = "Created", body = doc::Envelope<TenDlcBrand>), doc::ApiErrors)
)]
async fn create_brand(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<NewBrand>,
) -> Result<Created<TenDlcBrand>, ApiError> {
    let country = country(body.country.as_deref())?;
    let (region, postal_code) = if country == "US" {
        us_address(&body.state, &body.postal_code)?
    } else {
        (text("state", &body.state, MAX_NAME)?, text("postal_code", &body.postal_code, 20)?)
    };
    let new = NewTenDlcBrand {
        legal_name: text("legal_name", &body.legal_name, MAX_NAME)?,
        dba_name: body.dba_name.as_deref().map(|n| text("dba_name", n, MAX_NAME)).transpose()?,
        entity_type: entity_type(&body.entity_type)?,
        ein: ein(&body.ein, &country)?,
        vertical: one_of("vertical", &body.vertical, &VERTICALS)?,
        website: body.website.as_deref().map(website).transpose()?,
        street: text("street", &body.street, MAX_NAME)?,
        city: text("city", &body.city, MAX_NAME)?,
        state: region,
        postal_code,
        contact_name: text("contact_name", &body.contact_name, MAX_NAME)?,
        contact_email: email(&body.contact_email)?,
        contact_phone: phone(&body.contact_phone)?,
        country,
    };
    Ok(Created(state.repo.create_brand(auth.account, new).await?))
}

#[utoipa::path(
    get,
    operation_id = "tendlc_brand_list",
    path = "/rest/10dlc/brand",
    tag = "10dlc",
    summary = "The account's 10DLC brands",
    params(crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<TenDlcBrand>>), doc::ApiErrors)
)]
async fn list_brands(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<TenDlcBrand>>, ApiError> {
    Ok(Payload(state.repo.list_brands(auth.account, paging.params()?).await?))
}

#[utoipa::path(
    get,
    operation_id = "tendlc_brand_get_one",
    path = "/rest/10dlc/brand/{uuid}",
    tag = "10dlc",
    summary = "A 10DLC brand",
    params(("uuid" = uuid::Uuid, Path, description = "The brand's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<TenDlcBrand>), doc::ApiErrors)
)]
async fn get_brand(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<TenDlcBrand>, ApiError> {
    let brand = state.repo.get_brand(auth.account, id).await?;
    brand.map(Payload).ok_or(ApiError::not_found(ObjectKind::Brand, id))
}

// ---------------------------------------------------------------------------------------------
// campaigns

/// The body of `POST /rest/10dlc/campaign`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewTenDlcCampaign)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// The account's brand that sends.
    pub brand: Uuid,
    /// One of the registry's use cases: 2FA, ACCOUNT_NOTIFICATION, CUSTOMER_CARE,
    /// DELIVERY_NOTIFICATION, FRAUD_ALERT, HIGHER_EDUCATION, LOW_VOLUME, MARKETING, MIXED,
    /// POLLING_VOTING, PUBLIC_SERVICE_ANNOUNCEMENT, SECURITY_ALERT.
    pub use_case: String,
    /// What the campaign sends and why (40 to 4096 characters).
    #[schema(min_length = 40, max_length = 4096)]
    pub description: String,
    /// How a handset's owner opts in: where, with what words of consent (40 to 4096 characters).
    #[schema(min_length = 40, max_length = 4096)]
    pub message_flow: String,
    /// Two to five messages as they will be sent (20 to 1024 characters each).
    pub sample_messages: Vec<String>,
    /// The answer to an opt-in (20 to 320 characters).
    #[schema(min_length = 20, max_length = 320)]
    pub opt_in_message: String,
    /// The answer to STOP (20 to 320 characters).
    #[schema(min_length = 20, max_length = 320)]
    pub opt_out_message: String,
    /// The answer to HELP (20 to 320 characters).
    #[schema(min_length = 20, max_length = 320)]
    pub help_message: String,
    /// Whether messages carry links (required when a sample does).
    #[serde(default)]
    pub embedded_links: bool,
    /// Whether messages carry phone numbers.
    #[serde(default)]
    pub embedded_phone: bool,
}

fn has_link(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("http://") || lower.contains("https://") || lower.contains("www.")
}

#[utoipa::path(
    post,
    operation_id = "tendlc_campaign_create",
    path = "/rest/10dlc/campaign",
    tag = "10dlc",
    summary = "Register a 10DLC campaign of a brand (pending until the operator approves it)",
    description = "The campaign starts `pending`; the operator approves or rejects it. Assign numbers with \
        `POST /rest/10dlc/campaign/{uuid}/numbers`: a US long code sends SMS once its campaign is approved.",
    request_body = NewCampaign,
    responses((status = 201, description = "Created", body = doc::Envelope<TenDlcCampaign>), doc::ApiErrors)
)]
async fn create_campaign(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<NewCampaign>,
) -> Result<Created<TenDlcCampaign>, ApiError> {
    let (least, most) = SAMPLE_COUNT;
    let n = body.sample_messages.len();
    if !(least..=most).contains(&n) {
        return Err(ApiError::invalid(
            "sample_messages",
            format!("give {least} to {most} messages as they will be sent (got {n})"),
        ));
    }
    let samples = body
        .sample_messages
        .iter()
        .enumerate()
        .map(|(i, m)| sized(&format!("sample_messages[{i}]"), m, SAMPLE_CHARS))
        .collect::<Result<Vec<_>, _>>()?;
    if !body.embedded_links
        && let Some(i) = samples.iter().position(|m| has_link(m))
    {
        return Err(ApiError::invalid(
            "embedded_links",
            format!("sample_messages[{i}] has a link: set embedded_links to true, or send without links"),
        ));
    }
    let new = NewTenDlcCampaign {
        brand: body.brand,
        use_case: one_of("use_case", &body.use_case, &USE_CASES)?,
        description: sized("description", &body.description, DESCRIPTION_CHARS)?,
        message_flow: sized("message_flow", &body.message_flow, DESCRIPTION_CHARS)?,
        sample_messages: samples,
        opt_in_message: sized("opt_in_message", &body.opt_in_message, ANSWER_CHARS)?,
        opt_out_message: sized("opt_out_message", &body.opt_out_message, ANSWER_CHARS)?,
        help_message: sized("help_message", &body.help_message, ANSWER_CHARS)?,
        embedded_links: body.embedded_links,
        embedded_phone: body.embedded_phone,
    };
    let created = state
        .repo
        .create_campaign(auth.account, new)
        .await
        .map_err(|e| ApiError::reference(e, ObjectKind::Campaign, "brand"))?;
    Ok(Created(created))
}

/// `GET /rest/10dlc/campaign` filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignQuery {
    /// Only this brand's campaigns.
    pub brand: Option<Uuid>,
    /// Only campaigns in this state.
    #[param(value_type = Option<CampaignState>)]
    pub state: Option<String>,
}

#[utoipa::path(
    get,
    operation_id = "tendlc_campaign_list",
    path = "/rest/10dlc/campaign",
    tag = "10dlc",
    summary = "The account's 10DLC campaigns, with their numbers",
    params(crate::envelope::Paging, CampaignQuery),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<TenDlcCampaign>>), doc::ApiErrors)
)]
async fn list_campaigns(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
    ApiQuery(query): ApiQuery<CampaignQuery>,
) -> Result<Payload<Page<TenDlcCampaign>>, ApiError> {
    let wanted = query
        .state
        .as_deref()
        .map(|s| {
            CampaignState::parse(s.trim()).ok_or_else(|| {
                ApiError::invalid("state", format!("{s:?} is not one of pending, approved, rejected"))
            })
        })
        .transpose()?;
    let filter = CampaignFilter { brand: query.brand, state: wanted };
    Ok(Payload(state.repo.list_campaigns(auth.account, filter, paging.params()?).await?))
}

#[utoipa::path(
    get,
    operation_id = "tendlc_campaign_get_one",
    path = "/rest/10dlc/campaign/{uuid}",
    tag = "10dlc",
    summary = "A 10DLC campaign: its state (pending, approved, rejected with the reason) and numbers",
    params(("uuid" = uuid::Uuid, Path, description = "The campaign's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<TenDlcCampaign>), doc::ApiErrors)
)]
async fn get_campaign(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<TenDlcCampaign>, ApiError> {
    let campaign = state.repo.get_campaign(auth.account, id).await?;
    campaign.map(Payload).ok_or(ApiError::not_found(ObjectKind::Campaign, id))
}

// ---------------------------------------------------------------------------------------------
// numbers

/// The body of `POST /rest/10dlc/campaign/{uuid}/numbers`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = TenDlcCampaignNumbers)]
#[serde(deny_unknown_fields)]
pub struct NumbersBody {
    /// Leases (ids or numbers) to assign to the campaign: active US long codes of the account in
    /// no other campaign.
    #[serde(default)]
    pub add: Vec<LeaseRef>,
    /// Leases (ids or numbers) of the campaign to take out of it.
    #[serde(default)]
    pub remove: Vec<LeaseRef>,
}

/// The account's lease an item names, or a 422 on `field`.
async fn lease_of(
    state: &ApiState,
    account: Uuid,
    field: &str,
    item: &LeaseRef,
) -> Result<TnLease, ApiError> {
    match item {
        LeaseRef::Lease(id) => state
            .repo
            .get_lease(account, *id)
            .await?
            .ok_or_else(|| ApiError::invalid(field, format!("tn lease {id} not found"))),
        LeaseRef::Tn(phone) => {
            let tn = digits(phone)
                .and_then(|d| d.parse::<i64>().ok())
                .ok_or_else(|| ApiError::invalid(field, "not a telephone number or a lease id"))?;
            state.repo.lease_by_tn(tn).await?.filter(|l| l.account == account).ok_or_else(|| {
                ApiError::invalid(field, format!("the number {tn} is not leased by this account"))
            })
        }
    }
}

#[utoipa::path(
    post,
    operation_id = "tendlc_campaign_numbers",
    path = "/rest/10dlc/campaign/{uuid}/numbers",
    tag = "10dlc",
    summary = "Assign numbers to a 10DLC campaign, or take them out",
    description = "Every item (a lease id or a number) is checked before any change: a number the account does \
        not lease, one that is not a US long code (toll-free numbers are verified separately), one already in \
        a campaign, or one to remove that is not in this campaign refuses the whole request (422, naming it). \
        Answers the campaign as updated.",
    params(("uuid" = uuid::Uuid, Path, description = "The campaign's id")),
    request_body = NumbersBody,
    responses((status = 200, description = "OK", body = doc::Envelope<TenDlcCampaign>), doc::ApiErrors)
)]
async fn numbers(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<NumbersBody>,
) -> Result<Payload<TenDlcCampaign>, ApiError> {
    let account = auth.account;
    let campaign =
        state.repo.get_campaign(account, id).await?.ok_or(ApiError::not_found(ObjectKind::Campaign, id))?;
    let total = body.add.len() + body.remove.len();
    if total == 0 || total > MAX_NUMBER_ITEMS {
        return Err(ApiError::invalid(
            "add",
            format!("name 1 to {MAX_NUMBER_ITEMS} numbers in add and remove (got {total})"),
        ));
    }
    if campaign.state == CampaignState::Rejected && !body.add.is_empty() {
        return Err(ApiError::invalid(
            "add",
            format!(
                "campaign {id} was rejected ({}): register a corrected campaign and assign the numbers to it",
                campaign.reason.as_deref().unwrap_or("no reason given")
            ),
        ));
    }
    let mut add: Vec<TnLease> = Vec::with_capacity(body.add.len());
    for (i, item) in body.add.iter().enumerate() {
        let field = format!("add[{i}]");
        let lease = lease_of(&state, account, &field, item).await?;
        if lease.released_on.is_some() {
            return Err(ApiError::invalid(&field, format!("the lease of {} was released", lease.tn)));
        }
        match sender_kind(lease.tn) {
            SenderKind::UsLongCode => {}
            SenderKind::TollFree => {
                return Err(ApiError::invalid(
                    &field,
                    format!(
                        "{} is toll-free: toll-free numbers are verified separately, not by 10DLC",
                        lease.tn
                    ),
                ));
            }
            SenderKind::Other => {
                return Err(ApiError::invalid(
                    &field,
                    format!("{} is not a US number: 10DLC covers US long codes only", lease.tn),
                ));
            }
        }
        if add.iter().any(|l| l.uuid == lease.uuid) {
            return Err(ApiError::invalid(&field, format!("the number {} is named twice", lease.tn)));
        }
        if let Some(other) = state.repo.campaign_of_lease(account, lease.uuid).await? {
            let which = if other.uuid == id {
                "this campaign".to_owned()
            } else {
                format!("campaign {}", other.uuid)
            };
            return Err(ApiError::invalid(
                &field,
                format!("the number {} is already in {which}: a number belongs to one campaign", lease.tn),
            ));
        }
        add.push(lease);
    }
    let mut remove: Vec<Uuid> = Vec::with_capacity(body.remove.len());
    for (i, item) in body.remove.iter().enumerate() {
        let field = format!("remove[{i}]");
        let lease = lease_of(&state, account, &field, item).await?;
        if !campaign.numbers.iter().any(|n| n.tn_lease == lease.uuid) {
            return Err(ApiError::invalid(
                &field,
                format!("the number {} is not in campaign {id}", lease.tn),
            ));
        }
        if remove.contains(&lease.uuid) || add.iter().any(|l| l.uuid == lease.uuid) {
            return Err(ApiError::invalid(&field, format!("the number {} is named twice", lease.tn)));
        }
        remove.push(lease.uuid);
    }
    let add: Vec<Uuid> = add.iter().map(|l| l.uuid).collect();
    let updated = state
        .repo
        .assign_campaign_numbers(account, id, &add, &remove)
        .await
        .map_err(|e| ApiError::reference(e, ObjectKind::Campaign, "add"))?;
    Ok(Payload(updated))
}
