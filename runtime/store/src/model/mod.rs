//! Domain types: what the store keeps, as the rest of the platform sees it.
//!
//! Every account-owned object carries its `account` id; the repositories never hand out an
//! object of another account. Secrets appear here only as hashes, and hashes are never
//! serialized (`#[serde(skip_serializing)]`), so an object can go into an API response as is.

mod account;
mod app;
mod call;
mod number;
mod profile;
mod sip;
mod webhook;

pub use account::{Account, AccountPatch, ApiToken, CreatedToken, NewAccount, NewApiToken};
pub use app::{
    AppMode, ComponentVersion, NewSipControlApp, SipControlApp, SipControlAppPatch, WebhookMethod,
};
pub use call::{CallDirection, CallEnd, CallRecord, CallState, NewCallRecord, RecordingRecord};
pub use number::{
    LeasePatch, NewLease, NumberInventory, OrderItem, OrderItemState, OrderState, TnLease, TnOrder,
};
pub use profile::{
    CallerList, MessagingProfile, MessagingProfilePatch, NewMessagingProfile, NewOutboundVoiceProfile,
    NewTnProfile, OutboundVoiceProfile, OutboundVoiceProfilePatch, ShakenSignPolicy, TnProfile,
};
pub use sip::{
    CreatedSipInvite, DigestCredentials, NewSipConnection, NewSipDomain, NewSipUser, SipConnection,
    SipConnectionPatch, SipDomain, SipDomainPatch, SipInvite, SipUser, SipUserPatch,
};

pub use webhook::{
    DeliveryState, EventChannel, EventSubscription, NewEventSubscription, NewWebhookDelivery, SigningKey,
    WebhookDelivery,
};

use chrono::{DateTime, Utc};

/// A point in time, UTC, with millisecond precision (what the database keeps).
pub type Timestamp = DateTime<Utc>;

/// A telephone number: an integer with its country code, no `+` (`12029822917`).
pub type Tn = i64;

/// Now, truncated to the millisecond so a value read back equals the value written.
pub fn now() -> Timestamp {
    from_millis(Utc::now().timestamp_millis())
}

pub(crate) fn from_millis(ms: i64) -> Timestamp {
    // Every i64 the store writes came from a `Timestamp`, so it is in chrono's range.
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
