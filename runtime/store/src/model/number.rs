use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Timestamp, Tn};

/// A number the operator holds and may lease to accounts. Not account-scoped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NumberInventory {
    #[schema(value_type = i64, example = 12029822917_i64)]
    pub tn: Tn,
    /// Area code (the three digits after the country code for NANP numbers).
    pub npa: i32,
    /// State or region code, e.g. `DC`.
    pub state: Option<String>,
    pub voice: bool,
    pub sms: bool,
    /// False while leased (or held back by the operator).
    pub available: bool,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
}

/// A number leased ("purchased") by an account. Releasing sets `released_on`; the row stays
/// as history, and the number goes back to the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TnLease {
    pub uuid: Uuid,
    pub account: Uuid,
    #[schema(value_type = i64, example = 12029822917_i64)]
    pub tn: Tn,
    pub voice: bool,
    pub sms: bool,
    pub autorenew: bool,
    pub tn_profile: Option<Uuid>,
    pub sip_connection: Option<Uuid>,
    pub sip_control_app: Option<Uuid>,
    /// The messaging profile whose callback URLs receive this number's inbound SMS.
    pub messaging_profile: Option<Uuid>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub released_on: Option<Timestamp>,
    /// The number's own event webhook: the events of its calls also go here.
    pub event_url: Option<String>,
    /// Paid until then (monthly number charges, `[rating] number_monthly`); `null` for a lease
    /// that is not billed. With `autorenew` it is renewed a month at a time, else released then.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub paid_until: Option<Timestamp>,
}

/// What leasing a number takes.
#[derive(Debug, Clone)]
pub struct NewLease {
    pub tn: Tn,
    pub voice: bool,
    pub sms: bool,
    pub autorenew: bool,
}

/// A partial update. For references, `Some(None)` detaches and `Some(Some(id))` attaches.
#[derive(Debug, Clone, Default)]
pub struct LeasePatch {
    pub voice: Option<bool>,
    pub sms: Option<bool>,
    pub autorenew: Option<bool>,
    pub tn_profile: Option<Option<Uuid>>,
    pub sip_connection: Option<Option<Uuid>>,
    pub sip_control_app: Option<Option<Uuid>>,
    pub messaging_profile: Option<Option<Uuid>>,
    pub event_url: Option<Option<String>>,
}

/// How a number order went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderState {
    /// Every item was leased.
    Success,
    /// Some items were leased.
    Partial,
    /// No item was leased.
    Failed,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Success => "success",
            OrderState::Partial => "partial",
            OrderState::Failed => "failed",
        }
    }

    /// The state of an order with `success` of `total` items leased.
    pub fn of(success: usize, total: usize) -> Self {
        match success {
            0 => OrderState::Failed,
            n if n == total => OrderState::Success,
            _ => OrderState::Partial,
        }
    }
}

/// How one item of an order went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderItemState {
    Success,
    Failed,
}

/// One number of an order and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderItem {
    #[schema(value_type = i64, example = 12029822917_i64)]
    pub tn: Tn,
    pub state: OrderItemState,
    /// The lease made, when leased.
    pub lease: Option<Uuid>,
    /// Why not, when not.
    pub message: Option<String>,
}

/// A number order: every item is processed when the order is placed, so `processing` is
/// always 0 once it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TnOrder {
    pub uuid: Uuid,
    pub account: Uuid,
    pub state: OrderState,
    pub total: i32,
    pub success: i32,
    pub processing: i32,
    pub failed: i32,
    pub items: Vec<OrderItem>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
}
