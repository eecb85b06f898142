//! Ringing other parties and bridging the first that answers: the `<Dial>` verb.

use std::time::Duration;

use crate::bindings::opentact::flow::types::DialRequest;
use crate::{DialTarget, ms};

/// Ring one or more targets in parallel and bridge the first that answers; the others are
/// cancelled.
///
/// Defaults match the XML dialect's `<Dial>`: ring for 30 s, present the call's own caller id,
/// do not record. [`Call::dial`](crate::Call::dial) returns when the bridged conversation ends;
/// no answer, busy and failure are the errors [`Error::NoAnswer`](crate::Error::NoAnswer),
/// [`Error::Busy`](crate::Error::Busy) and [`Error::Failed`](crate::Error::Failed).
///
/// ```no_run
/// use std::time::Duration;
/// use opentact_sdk::{Call, Dial, Result};
///
/// fn ring_everyone(call: &Call) -> Result<()> {
///     let answered = call.dial(
///         Dial::new()
///             .number("12223334455")
///             .user("alice@acme.sip.example")
///             .sip_uri("sip:1000@192.0.2.10:5060")
///             .timeout(Duration::from_secs(20))
///             .caller_id("12025550111")
///             .record(true),
///     )?;
///     if answered.callee_hung_up {
///         call.say("The other party hung up.")?;
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Dial(pub(crate) DialRequest);

impl Default for Dial {
    fn default() -> Self {
        Dial::new()
    }
}

impl Dial {
    /// A dial with the defaults and no target yet (add 1–10).
    pub fn new() -> Self {
        Dial(DialRequest { targets: Vec::new(), timeout_ms: 30_000, caller_id: None, record: false })
    }

    /// Ring a phone number: digits, country code first (`12223334455`), through the account's
    /// outbound trunk.
    pub fn number(self, number: impl Into<String>) -> Self {
        self.target(DialTarget::Number(number.into()))
    }

    /// Ring a registered SIP user of the platform (`alice@acme.sip.example`).
    pub fn user(self, user: impl Into<String>) -> Self {
        self.target(DialTarget::User(user.into()))
    }

    /// Ring a SIP URI (`sip:1000@192.0.2.10:5060`).
    pub fn sip_uri(self, uri: impl Into<String>) -> Self {
        self.target(DialTarget::SipUri(uri.into()))
    }

    /// Ring a target.
    pub fn target(mut self, target: DialTarget) -> Self {
        self.0.targets.push(target);
        self
    }

    /// How long to ring before giving up (30 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.0.timeout_ms = ms(timeout);
        self
    }

    /// The caller id presented to the targets: a number the account leases (the call's own
    /// caller id by default).
    pub fn caller_id(mut self, number: impl Into<String>) -> Self {
        self.0.caller_id = Some(number.into());
        self
    }

    /// Record the bridged conversation (off by default); the recording is in the result.
    pub fn record(mut self, yes: bool) -> Self {
        self.0.record = yes;
        self
    }

    /// The targets added so far, in order.
    pub fn targets(&self) -> &[DialTarget] {
        &self.0.targets
    }

    /// The WIT request this builds.
    pub fn request(&self) -> &DialRequest {
        &self.0
    }
}

impl From<Dial> for DialRequest {
    fn from(dial: Dial) -> Self {
        dial.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_xml_dialect() {
        let dial = DialRequest::from(Dial::default());
        assert!(dial.targets.is_empty());
        assert_eq!(dial.timeout_ms, 30_000);
        assert_eq!(dial.caller_id, None);
        assert!(!dial.record);
    }

    #[test]
    fn targets_keep_their_kind_and_order() {
        let dial = Dial::new()
            .number("12223334455")
            .user("alice@acme.sip.example")
            .sip_uri("sip:1000@192.0.2.10:5060")
            .timeout(Duration::from_secs(20))
            .caller_id("12025550111")
            .record(true);
        assert!(matches!(
            dial.targets(),
            [DialTarget::Number(n), DialTarget::User(u), DialTarget::SipUri(s)]
                if n == "12223334455" && u == "alice@acme.sip.example" && s == "sip:1000@192.0.2.10:5060"
        ));
        let dial = DialRequest::from(dial);
        assert_eq!(
            (dial.timeout_ms, dial.caller_id.as_deref(), dial.record),
            (20_000, Some("12025550111"), true)
        );
    }
}
