use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Timestamp;

/// A TN profile: caller-ID lists applied to inbound calls on the numbers that use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TnProfile {
    pub uuid: Uuid,
    pub account: Uuid,
    pub name: String,
    /// Callers that are rejected (603). Entries are digit strings: a full number or a prefix.
    pub blacklist: Vec<String>,
    /// When non-empty, only callers matching an entry get through.
    pub whitelist: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub deleted_on: Option<Timestamp>,
}

impl TnProfile {
    /// Whether a call from `caller` (digits, country code, no `+`) may come in.
    pub fn admits(&self, caller: &str) -> bool {
        let matches = |list: &[String]| list.iter().any(|e| caller.starts_with(e.as_str()));
        !matches(&self.blacklist) && (self.whitelist.is_empty() || matches(&self.whitelist))
    }
}

/// What creating a TN profile takes.
#[derive(Debug, Clone, Default)]
pub struct NewTnProfile {
    pub name: String,
    pub blacklist: Vec<String>,
    pub whitelist: Vec<String>,
}

/// Which caller-ID list an update is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerList {
    Black,
    White,
}

impl CallerList {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CallerList::Black => "black",
            CallerList::White => "white",
        }
    }
}

/// Limits and policy for an account's outbound calls.
///
/// Money is in micro-units of the account's currency (1 USD = 1 000 000) so that amounts are
/// exact integers in both databases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OutboundVoiceProfile {
    pub uuid: Uuid,
    pub account: Uuid,
    pub name: String,
    /// Concurrent outbound calls; `None` for no limit.
    pub channel_limit: Option<i32>,
    /// New calls started per second (bulk calls are paced to it); `None` for no limit.
    pub calls_per_second: Option<i32>,
    /// Highest per-minute rate accepted for a destination, in micro-units.
    pub max_rate_micros: Option<i64>,
    /// Spend per day after which outbound calls are refused, in micro-units.
    pub daily_spend_limit_micros: Option<i64>,
    pub record_calls: bool,
    /// Whether outbound calls are signed with STIR/SHAKEN.
    pub shaken_sign_policy: ShakenSignPolicy,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub deleted_on: Option<Timestamp>,
}

/// What creating an outbound voice profile takes.
#[derive(Debug, Clone, Default)]
pub struct NewOutboundVoiceProfile {
    pub name: String,
    pub channel_limit: Option<i32>,
    pub calls_per_second: Option<i32>,
    pub max_rate_micros: Option<i64>,
    pub daily_spend_limit_micros: Option<i64>,
    pub record_calls: bool,
    pub shaken_sign_policy: ShakenSignPolicy,
}

/// A partial update; for nullable fields `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct OutboundVoiceProfilePatch {
    pub name: Option<String>,
    pub channel_limit: Option<Option<i32>>,
    pub calls_per_second: Option<Option<i32>>,
    pub max_rate_micros: Option<Option<i64>>,
    pub daily_spend_limit_micros: Option<Option<i64>>,
    pub record_calls: Option<bool>,
    pub shaken_sign_policy: Option<ShakenSignPolicy>,
}

/// STIR/SHAKEN signing of an outbound voice profile's calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShakenSignPolicy {
    /// Sign calls from numbers the account leases.
    #[default]
    Sign,
    /// Never sign.
    Off,
}

impl ShakenSignPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ShakenSignPolicy::Sign => "sign",
            ShakenSignPolicy::Off => "off",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "sign" => Some(ShakenSignPolicy::Sign),
            "off" => Some(ShakenSignPolicy::Off),
            _ => None,
        }
    }
}

/// Where an account's SMS callbacks go and how a pool of its numbers sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MessagingProfile {
    pub uuid: Uuid,
    pub account: Uuid,
    pub name: String,
    /// Receives inbound SMS and delivery reports of the profile's numbers.
    pub callback_url: Option<String>,
    /// Tried when `callback_url` fails.
    pub callback_url2: Option<String>,
    /// Whether `POST /rest/sms/pool` may pick any of the profile's numbers as sender.
    pub number_pool_enable: bool,
    /// Relative weight of long codes when picking a sender from the pool.
    pub long_code_weight: i32,
    /// Relative weight of toll-free numbers when picking a sender from the pool.
    pub toll_free_weight: i32,
    /// Leave numbers with recent delivery failures out of the pool.
    pub skip_unhealthy_tns: bool,
    /// Keep using the same sender for the same recipient.
    pub sticky_sender: bool,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub deleted_on: Option<Timestamp>,
}

/// What creating a messaging profile takes.
#[derive(Debug, Clone, Default)]
pub struct NewMessagingProfile {
    pub name: String,
    pub callback_url: Option<String>,
    pub callback_url2: Option<String>,
    pub number_pool_enable: bool,
    pub long_code_weight: i32,
    pub toll_free_weight: i32,
    pub skip_unhealthy_tns: bool,
    pub sticky_sender: bool,
}

/// A partial update; for nullable fields `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct MessagingProfilePatch {
    pub name: Option<String>,
    pub callback_url: Option<Option<String>>,
    pub callback_url2: Option<Option<String>>,
    pub number_pool_enable: Option<bool>,
    pub long_code_weight: Option<i32>,
    pub toll_free_weight: Option<i32>,
    pub skip_unhealthy_tns: Option<bool>,
    pub sticky_sender: Option<bool>,
}
