//! 10DLC: the brands and campaigns an account registers so that its US long codes may send
//! application-to-person SMS, and the numbers assigned to each campaign. What a campaign
//! registry asks of them is what is kept; the operator approves or rejects each campaign.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Timestamp, Tn};

/// The NANP toll-free area codes: numbers in them are verified as toll-free, not by 10DLC.
pub const TOLL_FREE_NPAS: [i64; 7] = [800, 833, 844, 855, 866, 877, 888];

/// What kind of sender a number is, as far as 10DLC goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderKind {
    /// A +1 number outside the toll-free area codes: 10DLC applies.
    UsLongCode,
    /// A +1 toll-free number.
    TollFree,
    /// Any other number (another country code, a short code).
    Other,
}

/// Which kind of sender `tn` (country code first, no `+`) is.
pub fn sender_kind(tn: Tn) -> SenderKind {
    // A NANP number is 1 followed by ten digits: 1 NPA NXX XXXX.
    if !(10_000_000_000..20_000_000_000).contains(&tn) {
        return SenderKind::Other;
    }
    let npa = (tn / 10_000_000) % 1000;
    if TOLL_FREE_NPAS.contains(&npa) { SenderKind::TollFree } else { SenderKind::UsLongCode }
}

/// The industries a brand may name (the campaign registry's list).
pub const VERTICALS: [&str; 22] = [
    "AGRICULTURE",
    "COMMUNICATION",
    "CONSTRUCTION",
    "EDUCATION",
    "ENERGY",
    "ENTERTAINMENT",
    "FINANCIAL",
    "GAMBLING",
    "GOVERNMENT",
    "HEALTHCARE",
    "HOSPITALITY",
    "HUMAN_RESOURCES",
    "INSURANCE",
    "LEGAL",
    "MANUFACTURING",
    "NGO",
    "POLITICAL",
    "POSTAL",
    "PROFESSIONAL",
    "REAL_ESTATE",
    "RETAIL",
    "TECHNOLOGY",
];

/// The use cases a campaign may declare (the campaign registry's standard list).
pub const USE_CASES: [&str; 12] = [
    "2FA",
    "ACCOUNT_NOTIFICATION",
    "CUSTOMER_CARE",
    "DELIVERY_NOTIFICATION",
    "FRAUD_ALERT",
    "HIGHER_EDUCATION",
    "LOW_VOLUME",
    "MARKETING",
    "MIXED",
    "POLLING_VOTING",
    "PUBLIC_SERVICE_ANNOUNCEMENT",
    "SECURITY_ALERT",
];

/// What kind of organisation a brand is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BrandEntityType {
    PrivateProfit,
    PublicProfit,
    NonProfit,
    Government,
    SoleProprietor,
}

impl BrandEntityType {
    pub fn as_str(self) -> &'static str {
        match self {
            BrandEntityType::PrivateProfit => "private_profit",
            BrandEntityType::PublicProfit => "public_profit",
            BrandEntityType::NonProfit => "non_profit",
            BrandEntityType::Government => "government",
            BrandEntityType::SoleProprietor => "sole_proprietor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "private_profit" => BrandEntityType::PrivateProfit,
            "public_profit" => BrandEntityType::PublicProfit,
            "non_profit" => BrandEntityType::NonProfit,
            "government" => BrandEntityType::Government,
            "sole_proprietor" => BrandEntityType::SoleProprietor,
            _ => return None,
        })
    }
}

/// A brand: the business that sends, as a campaign registry identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TenDlcBrand {
    pub uuid: Uuid,
    pub account: Uuid,
    /// The name the tax id is registered to.
    pub legal_name: String,
    /// The name customers know ("doing business as"), when different.
    pub dba_name: Option<String>,
    pub entity_type: BrandEntityType,
    /// The tax id: for a US brand its EIN, nine digits (`12-3456789`).
    pub ein: String,
    /// The country that issued the tax id (ISO 3166 alpha-2, `US`).
    pub country: String,
    /// The industry, one of the registry's verticals (`TECHNOLOGY`, `HEALTHCARE`…).
    pub vertical: String,
    pub website: Option<String>,
    pub street: String,
    pub city: String,
    /// State or region code (`DC`).
    pub state: String,
    pub postal_code: String,
    /// Who the registry and the carriers reach about the brand.
    pub contact_name: String,
    pub contact_email: String,
    /// With its country code (`12025550100`).
    pub contact_phone: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
}

/// What registering a brand takes (checked by the caller).
#[derive(Debug, Clone)]
pub struct NewTenDlcBrand {
    pub legal_name: String,
    pub dba_name: Option<String>,
    pub entity_type: BrandEntityType,
    pub ein: String,
    pub country: String,
    pub vertical: String,
    pub website: Option<String>,
    pub street: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub contact_name: String,
    pub contact_email: String,
    pub contact_phone: String,
}

/// Where a campaign is in its review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CampaignState {
    /// Registered, waiting for the operator.
    Pending,
    /// Its numbers may send application-to-person SMS.
    Approved,
    /// Refused, with the reason.
    Rejected,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Pending => "pending",
            CampaignState::Approved => "approved",
            CampaignState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => CampaignState::Pending,
            "approved" => CampaignState::Approved,
            "rejected" => CampaignState::Rejected,
            _ => return None,
        })
    }
}

/// A number assigned to a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CampaignNumber {
    #[schema(value_type = i64, example = 12029822917_i64)]
    pub tn: Tn,
    pub tn_lease: Uuid,
}

/// A campaign: what a brand sends from its numbers, and how people opt in and out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TenDlcCampaign {
    pub uuid: Uuid,
    pub account: Uuid,
    pub brand: Uuid,
    /// One of the registry's use cases (`2FA`, `CUSTOMER_CARE`, `MARKETING`…).
    pub use_case: String,
    /// What the campaign sends and why.
    pub description: String,
    /// How a handset's owner opts in.
    pub message_flow: String,
    /// Examples of the messages sent, in order.
    pub sample_messages: Vec<String>,
    /// The answer to an opt-in keyword.
    pub opt_in_message: String,
    /// The answer to STOP.
    pub opt_out_message: String,
    /// The answer to HELP.
    pub help_message: String,
    /// Whether messages carry links.
    pub embedded_links: bool,
    /// Whether messages carry phone numbers.
    pub embedded_phone: bool,
    pub state: CampaignState,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// When the operator approved or rejected it.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub decided_on: Option<Timestamp>,
    /// The numbers assigned to it, by number.
    pub numbers: Vec<CampaignNumber>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
}

/// What registering a campaign takes (checked by the caller); it starts pending.
#[derive(Debug, Clone)]
pub struct NewTenDlcCampaign {
    pub brand: Uuid,
    pub use_case: String,
    pub description: String,
    pub message_flow: String,
    pub sample_messages: Vec<String>,
    pub opt_in_message: String,
    pub opt_out_message: String,
    pub help_message: String,
    pub embedded_links: bool,
    pub embedded_phone: bool,
}

/// The operator's verdict on a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CampaignDecision {
    Approve,
    Reject { reason: String },
}
