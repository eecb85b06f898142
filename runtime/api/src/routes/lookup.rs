//! Telecom data: `GET /rest/telecom/lookup/{tn}` — where a number is (area code, state, time
//! zone) from `opentact-numbers`, and, when the operator loaded NPA-NXX data
//! (`[telecom] npanxx`), its county, rate center, line type and carrier (`null` otherwise).

use axum::Router;
use axum::routing::get;
use serde::Serialize;

use crate::auth::AuthAccount;
use crate::envelope::{Payload, SegmentPath};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/rest/telecom/lookup/{tn}", get(lookup))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TelecomData {
    pub tn: i64,
    pub npa: u16,
    pub nxx: u16,
    pub country: String,
    pub state: Option<String>,
    pub region: String,
    pub county: Option<String>,
    /// The area code's main IANA time zone.
    pub time_zone: Option<String>,
    pub time_zones: Vec<String>,
    /// The exchange's rate center.
    pub rate_center: Option<String>,
    /// `landline`, `mobile`, `voip`, … as the operator's data names it.
    pub line_type: Option<String>,
    pub carrier: Option<String>,
    /// The carrier's Operating Company Number.
    pub ocn: Option<String>,
}

/// `{tn}` is a North American number: `1` and ten digits (`12029822917`) or the ten digits.
#[utoipa::path(
    get,
    operation_id = "lookup_lookup",
    path = "/rest/telecom/lookup/{tn}",
    tag = "telecom",
    summary = "Telecom data of a North American number",
    params(("tn" = String, Path, description = "1 and ten digits (12029822917) or the ten digits")),
    responses((status = 200, description = "OK", body = doc::Envelope<TelecomData>), doc::ApiErrors)
)]
async fn lookup(_auth: AuthAccount, SegmentPath(raw): SegmentPath) -> Result<Payload<TelecomData>, ApiError> {
    let bad = || {
        ApiError::invalid(
            "tn",
            format!("{raw:?} is not a North American number: send 1 and ten digits, e.g. 12029822917"),
        )
    };
    let national = match raw.len() {
        11 if raw.starts_with('1') => &raw[1..],
        10 => &raw[..],
        _ => return Err(bad()),
    };
    if !national.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let tn: i64 = format!("1{national}").parse().map_err(|_| bad())?;
    let location = opentact_numbers::lookup(national).ok_or(ApiError::NoTelecomData { tn })?;
    let npa = national[..3].parse().map_err(|_| bad())?;
    let nxx = national[3..6].parse().map_err(|_| bad())?;
    Ok(Payload(TelecomData {
        tn,
        npa,
        nxx,
        country: location.country,
        state: location.state,
        region: location.region,
        county: location.county,
        time_zone: location.time_zones.first().cloned(),
        time_zones: location.time_zones,
        rate_center: location.rate_center,
        line_type: location.line_type,
        carrier: location.carrier,
        ocn: location.ocn,
    }))
}
