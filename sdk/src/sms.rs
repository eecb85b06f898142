//! Sending an SMS during a call.

use crate::bindings::opentact::flow::types::SmsRequest;

/// An SMS to send with [`Call::send_sms`](crate::Call::send_sms).
///
/// ```no_run
/// use opentact_sdk::{Call, Result, Sms};
///
/// fn text_the_caller(call: &Call) -> Result<String> {
///     let to = call.from().to_owned();
///     call.send_sms(Sms::new(to, "Thanks for calling Acme.").from("12025550111"))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Sms(pub(crate) SmsRequest);

impl Sms {
    /// `text` (1–918 characters) to the number `to`, sent from the call's number.
    pub fn new(to: impl Into<String>, text: impl Into<String>) -> Self {
        Sms(SmsRequest { from: None, to: to.into(), text: text.into() })
    }

    /// Send from this number (one the account leases) instead of the call's number.
    pub fn from(mut self, number: impl Into<String>) -> Self {
        self.0.from = Some(number.into());
        self
    }

    /// The WIT request this builds.
    pub fn request(&self) -> &SmsRequest {
        &self.0
    }
}

impl From<Sms> for SmsRequest {
    fn from(sms: Sms) -> Self {
        sms.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_fills_the_request() {
        let sms = SmsRequest::from(Sms::new("12025550100", "hi"));
        assert_eq!((sms.from, sms.to.as_str(), sms.text.as_str()), (None, "12025550100", "hi"));
        let sms = SmsRequest::from(Sms::new("12025550100", "hi").from("12025550111"));
        assert_eq!(sms.from.as_deref(), Some("12025550111"));
    }
}
