//! Numbers: `POST /rest/tn/search` (available numbers) and `POST /rest/order` (lease them).
//!
//! Orders are answered, not stored: the store has no order table yet, so there is no
//! `POST /rest/order/search` and the order's `uuid` identifies the answer only. Each item's
//! lease is stored and listed under `/rest/lease/tn`.

use std::collections::HashSet;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use chrono::{DateTime, Utc};
use opentact_store::{ListParams, MAX_TAKE, NewLease, NumberFilter, NumberInventory, StoreError, TnLease};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Created, Page, Paging, Payload};
use crate::error::ApiError;
use crate::state::ApiState;

/// Most items one order may hold; larger purchases are split by the caller.
pub const MAX_ORDER_ITEMS: usize = 100;

/// Most inventory rows a wildcard search reads to find its matches (the store filters by
/// area code and state; the pattern's other digits are matched here until the store can).
pub const MAX_SEARCH_SCAN: u32 = 20_000;

/// Smallest and largest TN: E.164 numbers have 7 to 15 digits, country code included.
const TN_RANGE: std::ops::RangeInclusive<i64> = 1_000_000..=999_999_999_999_999;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/rest/tn/search", post(search)).route("/rest/order", post(order))
}

/// A number feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TnSearch {
    /// Ten characters, digits or `*` (`202*******`, `*******917`).
    #[serde(default)]
    pub pattern: Option<String>,
    /// State or region code (`DC`, `NY`).
    #[serde(default)]
    pub state: Option<String>,
    /// Area code.
    #[serde(default)]
    pub npa: Option<i32>,
    /// Numbers that have all of these.
    #[serde(default)]
    pub features: Vec<Feature>,
}

/// An available number as the search shows it.
#[derive(Debug, Serialize)]
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

    /// Matches a North American number (`1` + ten digits).
    fn matches(&self, tn: i64) -> bool {
        let s = tn.to_string();
        let Some(national) = s.strip_prefix('1').filter(|n| n.len() == 10) else { return false };
        self.0.iter().zip(national.bytes()).all(|(p, d)| p.is_none_or(|p| p == d))
    }
}

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
        voice: body.features.contains(&Feature::Voice),
        sms: body.features.contains(&Feature::Sms),
        available_only: true,
    };
    let page = match pattern.filter(Pattern::beyond_npa) {
        None => state.repo.search_numbers(filter, params).await?,
        Some(pattern) => scan(&state, filter, &pattern, params).await?,
    };
    Ok(Payload(Page {
        take: page.take,
        skip: page.skip,
        total: page.total,
        data: page
            .data
            .into_iter()
            .map(|n| AvailableNumber { features: Feature::of(&n), tn: n.tn, npa: n.npa, state: n.state })
            .collect(),
    }))
}

/// Reads the filtered inventory in pages and keeps what matches the pattern. `total` counts
/// the matches among the first [`MAX_SEARCH_SCAN`] rows.
async fn scan(
    state: &ApiState,
    filter: NumberFilter,
    pattern: &Pattern,
    params: ListParams,
) -> Result<Page<NumberInventory>, ApiError> {
    let mut data = Vec::new();
    let mut total: i64 = 0;
    let mut read: u32 = 0;
    loop {
        let page = state.repo.search_numbers(filter.clone(), ListParams::page(MAX_TAKE, read)).await?;
        let got = u32::try_from(page.data.len()).unwrap_or(MAX_TAKE);
        for n in page.data.into_iter().filter(|n| pattern.matches(n.tn)) {
            if total >= i64::from(params.skip) && data.len() < params.take as usize {
                data.push(n);
            }
            total += 1;
        }
        read += got;
        if got == 0 || i64::from(read) >= page.total || read >= MAX_SEARCH_SCAN {
            break;
        }
    }
    Ok(Page { take: params.take, skip: params.skip, total, data })
}

// ---------------------------------------------------------------------------------------------
// order

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub items: Vec<OrderItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    pub tn: i64,
    /// What to enable on the lease; absent for everything the number has.
    #[serde(default)]
    pub features: Option<Vec<Feature>>,
    #[serde(default)]
    pub autorenew: bool,
}

/// How an order went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderState {
    /// Every item was leased.
    Success,
    /// Some items were leased.
    Partial,
    /// No item was leased.
    Failed,
}

/// How one item went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemState {
    Success,
    Failed,
}

#[derive(Debug, Serialize)]
pub struct OrderItemOutcome {
    pub tn: i64,
    pub state: ItemState,
    /// The new lease, when leased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<TnLease>,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Order {
    pub uuid: Uuid,
    pub state: OrderState,
    pub total: usize,
    pub success: usize,
    /// Items still being processed: always 0, leasing is immediate.
    pub processing: usize,
    pub failed: usize,
    pub items: Vec<OrderItemOutcome>,
    pub created_on: DateTime<Utc>,
}

async fn order(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(order): ApiJson<NewOrder>,
) -> Result<Created<Order>, ApiError> {
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
    let success = items.iter().filter(|i| i.state == ItemState::Success).count();
    let total = items.len();
    Ok(Created(Order {
        uuid: Uuid::new_v4(),
        state: match success {
            0 => OrderState::Failed,
            n if n == total => OrderState::Success,
            _ => OrderState::Partial,
        },
        total,
        success,
        processing: 0,
        failed: total - success,
        items,
        created_on: opentact_store::now(),
    }))
}

async fn order_item(state: &ApiState, account: Uuid, item: OrderItem) -> Result<OrderItemOutcome, ApiError> {
    let tn = item.tn;
    let failed = |message: String| {
        Ok(OrderItemOutcome { tn, state: ItemState::Failed, lease: None, message: Some(message) })
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
    match state.repo.lease_tn(account, NewLease { tn, voice, sms, autorenew: item.autorenew }).await {
        Ok(lease) => {
            Ok(OrderItemOutcome { tn, state: ItemState::Success, lease: Some(lease), message: None })
        }
        Err(StoreError::NotFound { .. }) => failed(format!("number {tn} is not offered")),
        Err(StoreError::NumberUnavailable { .. } | StoreError::Conflict { .. }) => {
            failed(format!("number {tn} is not available"))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = Pattern::parse("202*******").unwrap();
        assert_eq!(p.npa(), Some(202));
        assert!(!p.beyond_npa());
        assert!(p.matches(12029822917));
        assert!(!p.matches(13029822917));
        assert!(!p.matches(2029822917));
        let p = Pattern::parse("*******917").unwrap();
        assert_eq!(p.npa(), None);
        assert!(p.beyond_npa());
        assert!(p.matches(12029822917));
        assert!(!p.matches(12029822918));
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
