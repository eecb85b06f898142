//! Numbers: `POST /rest/tn/search` (available numbers), `POST /rest/order` (lease them),
//! `POST /rest/order/search` and `GET /rest/order/{uuid}` (orders, kept with each item's
//! outcome). Each item's lease is listed under `/rest/lease/tn`.

use std::collections::HashSet;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use opentact_store::{
    NewLease, NumberFilter, NumberInventory, ObjectKind, OrderFilter, OrderItem as StoredItem,
    OrderItemState, OrderState, StoreError, TnOrder,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Created, IdPath, Page, Paging, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::ApiState;

/// Most items one order may hold; larger purchases are split by the caller.
pub const MAX_ORDER_ITEMS: usize = 100;

/// Smallest and largest TN: E.164 numbers have 7 to 15 digits, country code included.
const TN_RANGE: std::ops::RangeInclusive<i64> = 1_000_000..=999_999_999_999_999;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/tn/search", post(search))
        .route("/rest/order", post(order))
        .route("/rest/order/search", post(search_orders))
        .route("/rest/order/{uuid}", get(get_order))
}

/// A number feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Feature {
    Voice,
    Sms,
}

impl Feature {
    fn of(n: &NumberInventory) -> Vec<Feature> {
        let mut f = Vec::with_capacity(2);
        if n.voice {
            f.push(Feature::Voice);
        }
        if n.sms {
            f.push(Feature::Sms);
        }
        f
    }
}

/// Checks that a TN is an integer of 7 to 15 digits.
pub(crate) fn check_tn(field: &str, tn: i64) -> Result<i64, ApiError> {
    if TN_RANGE.contains(&tn) {
        Ok(tn)
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "{tn} is not a telephone number: send 7 to 15 digits with the country code, e.g. 12029822917"
            ),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// search

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TnSearch {
    /// Ten characters, digits or `*` (`202*******`, `*******917`).
    #[serde(default)]
    #[schema(pattern = "^[0-9*]{10}$", example = "202*******")]
    pub pattern: Option<String>,
    /// State or region code (`DC`, `NY`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z]{2}$", example = "DC")]
    pub state: Option<String>,
    /// Area code.
    #[serde(default)]
    #[schema(minimum = 200, maximum = 999)]
    pub npa: Option<i32>,
    /// Numbers that have all of these.
    #[serde(default)]
    pub features: Vec<Feature>,
}

/// An available number as the search shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AvailableNumber {
    pub tn: i64,
    pub npa: i32,
    pub state: Option<String>,
    pub features: Vec<Feature>,
}

/// A checked pattern: ten positions, `None` for `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern([Option<u8>; 10]);

impl Pattern {
    fn parse(s: &str) -> Result<Pattern, ApiError> {
        let bad = || {
            ApiError::invalid(
                "pattern",
                format!("must be ten characters, each a digit or * (e.g. 202*******), got {s:?}"),
            )
        };
        if s.len() != 10 {
            return Err(bad());
        }
        let mut p = [None; 10];
        for (slot, b) in p.iter_mut().zip(s.bytes()) {
            *slot = match b {
                b'0'..=b'9' => Some(b),
                b'*' => None,
                _ => return Err(bad()),
            };
        }
        Ok(Pattern(p))
    }

    /// The area code when the first three positions are digits.
    fn npa(&self) -> Option<i32> {
        let [Some(a), Some(b), Some(c), ..] = self.0 else { return None };
        Some(i32::from(a - b'0') * 100 + i32::from(b - b'0') * 10 + i32::from(c - b'0'))
    }

    /// Whether positions after the area code are fixed (so the store's filter is not enough).
    fn beyond_npa(&self) -> bool {
        self.0[3..].iter().any(Option::is_some)
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in self.0 {
            std::fmt::Write::write_char(f, p.map_or('*', char::from))?;
        }
        Ok(())
    }
}

#[utoipa::path(
    post,
    operation_id = "numbers_search",
    path = "/rest/tn/search",
    tag = "numbers",
    summary = "Search available numbers",
    params(crate::envelope::Paging),
    request_body = TnSearch,
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<AvailableNumber>>), doc::ApiErrors)
)]
async fn search(
    State(state): State<ApiState>,
    _auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
    ApiJson(body): ApiJson<TnSearch>,
) -> Result<Payload<Page<AvailableNumber>>, ApiError> {
    let params = paging.params()?;
    let pattern = body.pattern.as_deref().map(Pattern::parse).transpose()?;
    if let Some(npa) = body.npa
        && !(200..=999).contains(&npa)
    {
        return Err(ApiError::invalid(
            "npa",
            format!("must be a three-digit area code from 200 to 999, got {npa}"),
        ));
    }
    let npa = match (body.npa, pattern.as_ref().and_then(Pattern::npa)) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid("npa", format!("{a} contradicts the pattern's area code {b}")));
        }
        (a, b) => a.or(b),
    };
    let region = match body.state {
        Some(s) if s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic()) => Some(s.to_ascii_uppercase()),
        Some(s) => {
            return Err(ApiError::invalid(
                "state",
                format!("must be a two-letter code such as NY, got {s:?}"),
            ));
        }
        None => None,
    };
    let filter = NumberFilter {
        npa,
        state: region,
        pattern: pattern.filter(Pattern::beyond_npa).map(|p| p.to_string()),
        voice: body.features.contains(&Feature::Voice),
        sms: body.features.contains(&Feature::Sms),
        available_only: true,
    };
    let page = state.repo.search_numbers(filter, params).await?;
    Ok(Payload(page.map(|n| AvailableNumber {
        features: Feature::of(&n),
        tn: n.tn,
        npa: n.npa,
        state: n.state,
    })))
}

// ---------------------------------------------------------------------------------------------
// order

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub items: Vec<OrderItem>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewOrderItem)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    #[schema(minimum = 1000000, maximum = 999999999999999_i64, example = 12029822917_i64)]
    pub tn: i64,
    /// What to enable on the lease; absent for everything the number has.
    #[serde(default)]
    pub features: Option<Vec<Feature>>,
    #[serde(default)]
    pub autorenew: bool,
}

#[utoipa::path(
    post,
    operation_id = "numbers_order",
    path = "/rest/order",
    tag = "numbers",
    summary = "Order (lease) numbers; each item succeeds or fails on its own",
    request_body = NewOrder,
    responses((status = 201, description = "Created", body = doc::Envelope<TnOrder>), doc::ApiErrors)
)]
async fn order(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(order): ApiJson<NewOrder>,
) -> Result<Created<TnOrder>, ApiError> {
    if order.items.is_empty() || order.items.len() > MAX_ORDER_ITEMS {
        return Err(ApiError::invalid("items", format!("must hold 1 to {MAX_ORDER_ITEMS} numbers")));
    }
    let mut seen = HashSet::new();
    for (i, item) in order.items.iter().enumerate() {
        check_tn(&format!("items[{i}].tn"), item.tn)?;
        if !seen.insert(item.tn) {
            return Err(ApiError::invalid(
                format!("items[{i}].tn"),
                format!("{} is in the order twice", item.tn),
            ));
        }
        if item.features.as_ref().is_some_and(Vec::is_empty) {
            return Err(ApiError::invalid(
                format!("items[{i}].features"),
                "must name voice, sms or both (or be left out)",
            ));
        }
    }
    let mut items = Vec::with_capacity(order.items.len());
    for item in order.items {
        items.push(order_item(&state, auth.account, item).await?);
    }
    let order = state.repo.create_order(auth.account, items).await?;
    crate::publish::publish(&state, auth.account, "tn.order", serde_json::json!({"order": &order}));
    Ok(Created(order))
}

async fn order_item(state: &ApiState, account: Uuid, item: OrderItem) -> Result<StoredItem, ApiError> {
    let tn = item.tn;
    let failed = |message: String| {
        Ok(StoredItem { tn, state: OrderItemState::Failed, lease: None, message: Some(message) })
    };
    let Some(number) = state.repo.get_number(tn).await? else {
        return failed(format!("number {tn} is not offered"));
    };
    let features = item.features.unwrap_or_else(|| Feature::of(&number));
    let (voice, sms) = (features.contains(&Feature::Voice), features.contains(&Feature::Sms));
    if (voice && !number.voice) || (sms && !number.sms) {
        let missing = if voice && !number.voice { "voice" } else { "sms" };
        return failed(format!("number {tn} does not support {missing}"));
    }
    if let Some(refusal) = crate::rental::first_month_refusal(state, account).await? {
        return failed(refusal);
    }
    match state.repo.lease_tn(account, NewLease { tn, voice, sms, autorenew: item.autorenew }).await {
        Ok(lease) => match crate::rental::charge_first_month(state, &lease).await? {
            Some(refusal) => failed(refusal),
            None => {
                Ok(StoredItem { tn, state: OrderItemState::Success, lease: Some(lease.uuid), message: None })
            }
        },
        Err(StoreError::NotFound { .. }) => failed(format!("number {tn} is not offered")),
        Err(StoreError::NumberUnavailable { .. } | StoreError::Conflict { .. }) => {
            failed(format!("number {tn} is not available"))
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    get,
    operation_id = "numbers_get_order",
    path = "/rest/order/{uuid}",
    tag = "numbers",
    summary = "An order with each item's outcome",
    params(("uuid" = uuid::Uuid, Path, description = "The order's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<TnOrder>), doc::ApiErrors)
)]
async fn get_order(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<TnOrder>, ApiError> {
    match state.repo.get_order(auth.account, id).await? {
        Some(order) => Ok(Payload(order)),
        None => Err(ApiError::not_found(ObjectKind::Order, id)),
    }
}

/// `POST /rest/order/search`: `{state, tn, order: {created_on: "ASC"|"DESC"}}`, all optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderSearch {
    #[serde(default)]
    pub state: Option<OrderState>,
    #[serde(default)]
    #[schema(minimum = 1000000, maximum = 999999999999999_i64)]
    pub tn: Option<i64>,
    #[serde(default)]
    pub order: Option<SortOrder>,
}

/// `{"created_on": "ASC" | "DESC"}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SortOrder {
    #[serde(default)]
    pub created_on: Option<Direction>,
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Direction {
    #[serde(alias = "asc")]
    Asc,
    #[serde(alias = "desc")]
    Desc,
}

#[utoipa::path(
    post,
    operation_id = "numbers_search_orders",
    path = "/rest/order/search",
    tag = "numbers",
    summary = "Search the account's orders",
    params(crate::envelope::Paging),
    request_body = OrderSearch,
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<TnOrder>>), doc::ApiErrors)
)]
async fn search_orders(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
    ApiJson(body): ApiJson<OrderSearch>,
) -> Result<Payload<Page<TnOrder>>, ApiError> {
    let mut params = paging.params()?;
    if let Some(Direction::Desc) = body.order.and_then(|o| o.created_on) {
        params.order = opentact_store::Order::Desc;
    }
    let tn = body.tn.map(|tn| check_tn("tn", tn)).transpose()?;
    let filter = OrderFilter { state: body.state, tn };
    Ok(Payload(state.repo.search_orders(auth.account, filter, params).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = Pattern::parse("202*******").unwrap();
        assert_eq!(p.npa(), Some(202));
        assert!(!p.beyond_npa());
        assert_eq!(p.to_string(), "202*******");
        let p = Pattern::parse("*******917").unwrap();
        assert_eq!(p.npa(), None);
        assert!(p.beyond_npa());
        assert_eq!(p.to_string(), "*******917");
        for bad in ["202", "202*******1", "202-******", "２０２*******"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tns() {
        assert!(check_tn("tn", 12029822917).is_ok());
        assert!(check_tn("tn", 0).is_err());
        assert!(check_tn("tn", -12029822917).is_err());
        assert!(check_tn("tn", 1_000_000_000_000_000).is_err());
    }
}
