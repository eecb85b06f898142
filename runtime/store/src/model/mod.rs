//! Domain types: what the store keeps, as the rest of the platform sees it.
//!
//! Every account-owned object carries its `account` id; the repositories never hand out an
//! object of another account. Secrets appear here only as hashes, and hashes are never
//! serialized (`#[serde(skip_serializing)]`), so an object can go into an API response as is.

mod account;
mod app;
mod batch;
mod billing;
mod call;
mod message;
mod number;
mod profile;
mod sip;
mod telecom;
mod tendlc;
mod verified;
mod webhook;

pub use account::{Account, AccountContact, AccountPatch, ApiToken, CreatedToken, NewAccount, NewApiToken};
pub use app::{
    AppMode, AppShaken, AttestLevel, ComponentVersion, NewSipControlApp, ShakenVerifyPolicy, SipControlApp,
    SipControlAppPatch, WebhookMethod,
};
pub use batch::{Batch, BatchItem, BatchItemState, BatchItemUpdate, BatchState, NewBatch};
pub use billing::{
    CallPrice, ChargeTarget, LeaseChargeOutcome, NewCharge, NewLeaseCharge, Transaction, TransactionFilter,
    TransactionKind,
};
pub use call::{
    CallDirection, CallEnd, CallRecord, CallShaken, CallState, NewCallRecord, RecordingRecord,
    RecordingUsage, RelayedCommand, RelayedOutcome,
};
pub use message::{
    ClaimedSms, ExpiredClaim, NewSms, SmsAttempt, SmsDirection, SmsFilter, SmsMessage, SmsReceipt, SmsState,
    SmsTransition,
};
pub use number::{
    LeasePatch, NewLease, NumberInventory, OrderItem, OrderItemState, OrderState, TnLease, TnOrder,
};
pub use profile::{
    CallerList, MessagingProfile, MessagingProfilePatch, NewMessagingProfile, NewOutboundVoiceProfile,
    NewTnProfile, OutboundVoiceProfile, OutboundVoiceProfilePatch, ShakenSignPolicy, TnProfile,
};
pub use sip::{
    CreatedSipInvite, DigestCredentials, EncryptedMedia, NewSipConnection, NewSipDomain, NewSipUser,
    SipConnection, SipConnectionPatch, SipDomain, SipDomainPatch, SipInvite, SipTransportProtocol, SipUser,
    SipUserPatch,
};
pub use telecom::{ExchangeRow, TelecomImport};
pub use tendlc::{
    BrandEntityType, CampaignDecision, CampaignNumber, CampaignState, NewTenDlcBrand, NewTenDlcCampaign,
    SenderKind, TOLL_FREE_NPAS, TenDlcBrand, TenDlcCampaign, USE_CASES, VERTICALS, sender_kind,
};
pub use verified::VerifiedNumber;

pub use webhook::{
    DeliveryState, EventChannel, EventSubscription, NewEventSubscription, NewWebhookDelivery, NodeTakeover,
    SigningKey, WebhookDelivery,
};

use chrono::{DateTime, Utc};

/// A point in time, UTC, with millisecond precision (what the database keeps).
pub type Timestamp = DateTime<Utc>;

/// A telephone number: an integer with its country code, no `+` (`12029822917`).
pub type Tn = i64;

/// Serializes a time as the API shows every time: ISO-8601 UTC with exactly three decimals
/// (`2026-12-01T05:17:24.000Z`), not chrono's shortest form.
pub fn millis<S: serde::Serializer>(at: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// [`millis`] for an optional time (`null` when absent).
pub fn millis_opt<S: serde::Serializer>(at: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => millis(at, s),
        None => s.serialize_none(),
    }
}

/// Now, truncated to the millisecond so a value read back equals the value written.
pub fn now() -> Timestamp {
    from_millis(Utc::now().timestamp_millis())
}

pub(crate) fn from_millis(ms: i64) -> Timestamp {
    // Every i64 the store writes came from a `Timestamp`, so it is in chrono's range.
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_serialize_with_milliseconds_always() {
        #[derive(serde::Serialize)]
        struct T {
            #[serde(serialize_with = "super::millis")]
            at: super::Timestamp,
            #[serde(serialize_with = "super::millis_opt")]
            none: Option<super::Timestamp>,
        }
        let at = super::from_millis(1_764_566_244_000);
        let json = serde_json::to_string(&T { at, none: None }).expect("json");
        assert_eq!(json, r#"{"at":"2025-12-01T05:17:24.000Z","none":null}"#);
    }
}
