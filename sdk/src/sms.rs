//! Sending an SMS, from a call flow or an SMS flow.

use crate::Result;
use crate::bindings::opentact::flow::messaging as host;
use crate::bindings::opentact::flow::types::SmsRequest;

/// Send an SMS from one of the account's numbers; returns the stored message's UUID once it is
/// queued (`GET /rest/sms/{id}` follows it).
///
/// Works in any flow: in [`Flow::handle_sms`](crate::Flow::handle_sms) (the sender defaults to
/// the number the message came in to) and during a call (the sender defaults to the call's
/// number; the SMS is then a step of the call, with its events). The platform checks it as it
/// checks `POST /rest/sms`: a refusal (number not the account's or without SMS enabled, text
/// too long, bad destination, 10DLC) is [`Error::InvalidArgument`](crate::Error::InvalidArgument)
/// with the reason, a rate limit (or more than 10 SMS in one flow)
/// [`Error::LimitExceeded`](crate::Error::LimitExceeded).
///
/// An auto-responder:
///
/// ```no_run
/// use opentact_sdk::{Call, Error, Flow, Result, Sms, SmsMessage, send_sms};
///
/// struct AutoReply;
///
/// impl Flow for AutoReply {
///     fn handle_call(call: Call) -> Result<()> {
///         call.say("Please send us a text instead.")?;
///         call.hangup()
///     }
///
///     fn handle_sms(message: SmsMessage) -> Result<()> {
///         let reply = Sms::new(&message.from, "Thanks! We will get back to you within a day.");
///         match send_sms(reply) {
///             Ok(id) => println!("replied with {id}"),
///             // A rate limit is not worth failing the flow for.
///             Err(Error::LimitExceeded(reason)) => println!("no reply: {reason}"),
///             Err(other) => return Err(other),
///         }
///         Ok(())
///     }
/// }
///
/// opentact_sdk::export_flow!(AutoReply);
/// ```
pub fn send_sms(sms: Sms) -> Result<String> {
    Ok(host::send_sms(&sms.0)?)
}

/// An SMS to send with [`send_sms`] or [`Call::send_sms`](crate::Call::send_sms).
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
    /// `text` (1–918 characters) to the number `to`, sent from the call's number (in a call
    /// flow) or the number the SMS came in to (in an SMS flow).
    pub fn new(to: impl Into<String>, text: impl Into<String>) -> Self {
        Sms(SmsRequest { from: None, to: to.into(), text: text.into() })
    }

    /// Send from this number (one the account leases, with SMS enabled) instead of the default.
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
