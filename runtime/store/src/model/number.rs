use serde::Serialize;
use uuid::Uuid;

use super::{Timestamp, Tn};

/// A number the operator holds and may lease to accounts. Not account-scoped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumberInventory {
    pub tn: Tn,
    /// Area code (the three digits after the country code for NANP numbers).
    pub npa: i32,
    /// State or region code, e.g. `DC`.
    pub state: Option<String>,
    pub voice: bool,
    pub sms: bool,
    /// False while leased (or held back by the operator).
    pub available: bool,
    pub created_on: Timestamp,
    pub modified_on: Timestamp,
}

/// A number leased ("purchased") by an account. Releasing sets `released_on`; the row stays
/// as history, and the number goes back to the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TnLease {
    pub uuid: Uuid,
    pub account: Uuid,
    pub tn: Tn,
    pub voice: bool,
    pub sms: bool,
    pub autorenew: bool,
    pub tn_profile: Option<Uuid>,
    pub sip_connection: Option<Uuid>,
    pub sip_control_app: Option<Uuid>,
    pub created_on: Timestamp,
    pub modified_on: Timestamp,
    pub released_on: Option<Timestamp>,
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
}
