//! STIR/SHAKEN on the call engine's paths (the protocol itself is `opentact-shaken`):
//!
//! - **outbound**: a leg to a number through the carrier trunk gets an `Identity` header
//!   signed with the operator's key — attestation A when the account leases the caller ID (the
//!   customer is authenticated: it is the account's own call), B when the caller ID is one of
//!   the account's verified numbers, C when the call only passes through (a forwarded caller).
//!   A call whose outbound voice profile's `shaken_sign_policy` is `off` is not signed.
//! - **inbound**: a call from a trunk (carrier or SIP connection) has its Identity verified
//!   before its flow runs. The policy (`off`, `tag`, `reject`) and the minimum attestation —
//!   the app's `shaken_verify_policy` and `shaken_minimum_accepted_attest_lvl` where it sets
//!   them, else the platform's `[stir_shaken]` — decide: `reject` answers a missing, invalid or too weak Identity with the RFC 8224
//!   response (428, 436, 437, 438, 403 Stale Date); `tag` lets the call in. Either way the
//!   result is on every event's call object: `stir_shaken_attest_level`,
//!   `stir_shaken_identity` and `verstat`.

use std::collections::HashSet;
use std::sync::Arc;

use opentact_call::model::CallInfo;
use opentact_shaken::{Attestation, Signer, Verifier, Verstat};
use opentact_sip::IncomingCall;
use opentact_store::{AppShaken, AttestLevel, CallShaken, ShakenVerifyPolicy};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::{info, warn};

use crate::Repo;

/// What is done with an inbound call's Identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyPolicy {
    /// Not verified (verstat `No-TN-Validation`).
    Off,
    /// Verified; the call goes on whatever the result, tagged with it.
    #[default]
    Tag,
    /// Verified; a call without a valid Identity of the minimum attestation is refused.
    Reject,
}

/// The response that refuses a call whose attestation is below the minimum: the Identity is
/// valid, so none of RFC 8224's codes fit; this is local policy.
pub const BELOW_MINIMUM: (u16, &str) = (403, "Attestation Below Minimum");

/// An inbound call's verification, as its events show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundCheck {
    /// The verified attestation.
    pub attest: Option<Attestation>,
    /// The Identity header as received.
    pub identity: Option<String>,
    /// The verification status.
    pub verstat: Verstat,
    /// Why it did not verify.
    pub error: Option<String>,
}

impl InboundCheck {
    /// What the call's CDR keeps of it.
    pub fn record(&self) -> CallShaken {
        CallShaken {
            attest_level: self.attest.map(|level| match level {
                Attestation::A => AttestLevel::A,
                Attestation::B => AttestLevel::B,
                Attestation::C => AttestLevel::C,
            }),
            identity: self.identity.clone(),
            verstat: self.verstat.as_str().to_owned(),
        }
    }

    /// The fields added to the call object of every event of the call.
    pub fn call_fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert(
            "stir_shaken_attest_level".to_owned(),
            self.attest.map_or(Value::Null, |level| Value::from(level.as_str())),
        );
        fields.insert(
            "stir_shaken_identity".to_owned(),
            self.identity.clone().map_or(Value::Null, Value::from),
        );
        fields.insert("verstat".to_owned(), Value::from(self.verstat.as_str()));
        fields
    }
}

/// The platform's STIR/SHAKEN: its signer and verifier (each optional) and the verification
/// policy.
pub struct Shaken {
    signer: Option<Arc<Signer>>,
    verifier: Option<Arc<Verifier>>,
    policy: VerifyPolicy,
    minimum: Option<Attestation>,
    /// Calls whose outbound voice profile says `shaken_sign_policy = off`.
    unsigned: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Shaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shaken")
            .field("signs", &self.signer.is_some())
            .field("verifies", &self.verifier.is_some())
            .field("policy", &self.policy)
            .field("minimum", &self.minimum)
            .finish_non_exhaustive()
    }
}

/// Keeps a call unsigned until dropped (its end).
#[derive(Debug)]
pub struct Unsigned {
    shaken: Arc<Shaken>,
    call: String,
}

impl Drop for Unsigned {
    fn drop(&mut self) {
        self.shaken.unsigned.lock().remove(&self.call);
    }
}

impl Shaken {
    /// Signs with `signer` and verifies with `verifier` when given; without a verifier inbound
    /// calls are tagged `No-TN-Validation` and never refused.
    pub fn new(
        signer: Option<Arc<Signer>>,
        verifier: Option<Arc<Verifier>>,
        policy: VerifyPolicy,
        minimum: Option<Attestation>,
    ) -> Self {
        Self { signer, verifier, policy, minimum, unsigned: Mutex::default() }
    }

    /// Neither signs nor verifies.
    pub fn disabled() -> Self {
        Self::new(None, None, VerifyPolicy::Off, None)
    }

    /// Leaves `call`'s legs unsigned until the guard is dropped (its profile's
    /// `shaken_sign_policy` is `off`).
    pub fn leave_unsigned(self: &Arc<Self>, call: &str) -> Unsigned {
        self.unsigned.lock().insert(call.to_owned());
        Unsigned { shaken: self.clone(), call: call.to_owned() }
    }

    /// The header fields of a leg of `call` from `caller` to the number `dest` through the
    /// carrier trunk: its `Identity`, or none (no signer, the profile says off, a caller ID
    /// that is not a number). A failure to sign is logged and the leg goes unsigned.
    pub async fn outbound_headers(
        &self,
        store: &Repo,
        call: &CallInfo,
        caller: &str,
        dest: &str,
    ) -> Vec<(String, String)> {
        let Some(signer) = &self.signer else { return Vec::new() };
        if self.unsigned.lock().contains(&call.id) {
            return Vec::new();
        }
        let Some(tn) = crate::routing::tn_of(caller) else { return Vec::new() };
        let attest = attestation(store, call, tn).await;
        match signer.identity_header(caller, dest, attest, &signer.origid(&call.account)) {
            Ok(identity) => {
                info!(call = %call.id, attest = attest.as_str(), "outbound leg signed (STIR/SHAKEN)");
                vec![(opentact_shaken::identity::HEADER_NAME.to_owned(), identity)]
            }
            Err(error) => {
                warn!(call = %call.id, %error, "the outbound leg goes unsigned");
                Vec::new()
            }
        }
    }

    /// The policy and minimum for a call to an app with `app`'s settings: each the app's
    /// where it sets it, else the platform's.
    fn effective(&self, app: Option<&AppShaken>) -> (VerifyPolicy, Option<Attestation>) {
        let policy = match app.and_then(|app| app.shaken_verify_policy) {
            Some(ShakenVerifyPolicy::Off) => VerifyPolicy::Off,
            Some(ShakenVerifyPolicy::Tag) => VerifyPolicy::Tag,
            Some(ShakenVerifyPolicy::Reject) => VerifyPolicy::Reject,
            None => self.policy,
        };
        let minimum = match app.and_then(|app| app.shaken_minimum_accepted_attest_lvl) {
            Some(level) => Attestation::parse(level.as_str()),
            None => self.minimum,
        };
        (policy, minimum)
    }

    /// Verifies a call from a trunk to an app with `app`'s STIR/SHAKEN settings (none: the
    /// platform's): the result to tag it with, or the status and reason that refuse it.
    pub async fn verify_inbound(
        &self,
        call: &IncomingCall,
        app: Option<&AppShaken>,
    ) -> Result<InboundCheck, (u16, String)> {
        let identity = call.header(opentact_shaken::identity::HEADER_NAME);
        let unverified =
            |identity| InboundCheck { attest: None, identity, verstat: Verstat::NoValidation, error: None };
        let (policy, minimum) = self.effective(app);
        let Some(verifier) = self.verifier.as_ref().filter(|_| policy != VerifyPolicy::Off) else {
            return Ok(unverified(identity));
        };
        let from = call.from.user.clone().unwrap_or_default();
        let to = call.to.user.clone().or_else(|| call.request_uri.user.clone()).unwrap_or_default();
        let reject = policy == VerifyPolicy::Reject;
        match verifier.verify(identity.as_deref(), &from, &to).await {
            Ok(verified) => {
                if reject && minimum.is_some_and(|minimum| !verified.attest.at_least(minimum)) {
                    info!(attest = verified.attest.as_str(), "STIR/SHAKEN attestation below the minimum");
                    let (status, phrase) = BELOW_MINIMUM;
                    return Err((status, phrase.to_owned()));
                }
                info!(attest = verified.attest.as_str(), x5u = %verified.x5u, "STIR/SHAKEN identity verified");
                Ok(InboundCheck {
                    attest: Some(verified.attest),
                    identity,
                    verstat: Verstat::Passed,
                    error: None,
                })
            }
            Err(error) => {
                info!(%error, status = error.status(), "STIR/SHAKEN identity not verified");
                if reject {
                    // The phrase only: the details name URLs and numbers, and stay in the log.
                    return Err((error.status(), error.reason_phrase().to_owned()));
                }
                Ok(InboundCheck {
                    attest: None,
                    identity,
                    verstat: error.verstat(),
                    error: Some(error.to_string()),
                })
            }
        }
    }
}

/// A caller ID's attestation for `call`'s account: A for its leased numbers, B for its verified
/// numbers, C otherwise (and when the store cannot tell).
async fn attestation(store: &Repo, call: &CallInfo, tn: i64) -> Attestation {
    let Ok(account) = call.account.parse::<uuid::Uuid>() else { return Attestation::C };
    match store.lease_by_tn(tn).await {
        Ok(Some(lease)) if lease.account == account => return Attestation::A,
        Ok(_) => {}
        Err(error) => {
            warn!(%error, "looking up the caller ID's lease for STIR/SHAKEN");
            return Attestation::C;
        }
    }
    match store.is_verified_number(account, tn).await {
        Ok(true) => Attestation::B,
        _ => Attestation::C,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_object_names_the_result_as_the_spec_does() {
        let check = InboundCheck {
            attest: Some(Attestation::B),
            identity: Some("a.b.c;info=<https://x/c.pem>".to_owned()),
            verstat: Verstat::Passed,
            error: None,
        };
        let fields = Value::Object(check.call_fields());
        assert_eq!(
            fields,
            serde_json::json!({
                "stir_shaken_attest_level": "B",
                "stir_shaken_identity": "a.b.c;info=<https://x/c.pem>",
                "verstat": "TN-Validation-Passed",
            })
        );
        let unsigned =
            InboundCheck { attest: None, identity: None, verstat: Verstat::NoValidation, error: None };
        assert_eq!(unsigned.call_fields()["stir_shaken_attest_level"], Value::Null);
        assert_eq!(unsigned.call_fields()["verstat"], "No-TN-Validation");
    }

    #[test]
    fn the_apps_settings_override_the_platforms() {
        let shaken = Shaken::new(None, None, VerifyPolicy::Tag, Some(Attestation::C));
        assert_eq!(shaken.effective(None), (VerifyPolicy::Tag, Some(Attestation::C)));
        let inherits = AppShaken::default();
        assert_eq!(shaken.effective(Some(&inherits)), (VerifyPolicy::Tag, Some(Attestation::C)));
        let strict = AppShaken {
            shaken_verify_policy: Some(ShakenVerifyPolicy::Reject),
            shaken_minimum_accepted_attest_lvl: Some(AttestLevel::A),
        };
        assert_eq!(shaken.effective(Some(&strict)), (VerifyPolicy::Reject, Some(Attestation::A)));
        let off = AppShaken { shaken_verify_policy: Some(ShakenVerifyPolicy::Off), ..AppShaken::default() };
        assert_eq!(shaken.effective(Some(&off)), (VerifyPolicy::Off, Some(Attestation::C)));
    }

    #[test]
    fn the_cdr_keeps_what_the_events_show() {
        let check = InboundCheck {
            attest: Some(Attestation::A),
            identity: Some("a.b.c".to_owned()),
            verstat: Verstat::Passed,
            error: None,
        };
        assert_eq!(
            check.record(),
            CallShaken {
                attest_level: Some(AttestLevel::A),
                identity: Some("a.b.c".to_owned()),
                verstat: "TN-Validation-Passed".to_owned(),
            }
        );
    }

    #[test]
    fn policies_are_written_in_lower_case() {
        let policy = |text: &str| serde_json::from_value::<VerifyPolicy>(Value::from(text));
        assert_eq!(policy("reject").expect("a policy"), VerifyPolicy::Reject);
        assert_eq!(policy("off").expect("a policy"), VerifyPolicy::Off);
        assert!(policy("maybe").is_err());
        assert_eq!(VerifyPolicy::default(), VerifyPolicy::Tag);
    }
}
