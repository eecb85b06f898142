//! Events the REST API itself causes — `account.changed`, `tn.order`, `tn.changed` — published
//! on the event bus for the account's websocket and webhook subscribers (spec/events.md), the
//! way the engines publish call and SMS events. Without a bus (tools, most tests) nothing is
//! published.

use serde_json::Value;
use uuid::Uuid;

use crate::state::ApiState;

/// Publishes `kind` with `payload` to `account`'s events.
pub(crate) fn publish(state: &ApiState, account: Uuid, kind: &str, payload: Value) {
    if let Some(bus) = &state.events {
        bus.publish(opentact_events::Event::now(account, kind, None, payload));
    }
}

/// `tn.changed` for a lease: `change` says what (`updated`, `released`, `sms_enabled`,
/// `sms_disabled`, `assigned`, `unassigned`), `lease` is the lease as it is now.
pub(crate) fn tn_changed(state: &ApiState, account: Uuid, change: &str, lease: &opentact_store::TnLease) {
    publish(state, account, "tn.changed", tn_changed_payload(change, lease));
}

/// The `tn.changed` payload: what changed, the number and the lease as it is now.
pub(crate) fn tn_changed_payload(change: &str, lease: &opentact_store::TnLease) -> Value {
    serde_json::json!({"change": change, "tn": lease.tn, "lease": lease})
}
