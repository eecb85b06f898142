//! Headers on the final response that refuses an INVITE. The dialog layer (rsipstack) builds
//! that response itself and can only add a `Reason` header, which RFC 3326 defines for
//! requests; a refusal's explanation belongs in a `Warning` (RFC 3261 §20.43, and §21.4.26 for
//! 488). So [`IncomingCall::reject_with_warning`](crate::IncomingCall::reject_with_warning)
//! leaves the headers here, keyed by Call-ID and status, and the endpoint's message inspector
//! adds them to that response as it is sent (retransmissions resend it as sent).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rsipstack::sip::{Header, HeadersExt, SipMessage};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transport::SipAddr;

/// Most refusals waiting for their response at once; past it the oldest are forgotten (a
/// refusal whose response was never sent — its dialog ended first — must not stay forever).
const MAX_PENDING: usize = 1024;

/// Headers waiting for the final response of the INVITE with that Call-ID and status.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    pending: Mutex<HashMap<(String, u16), Vec<Header>>>,
}

impl Refusals {
    /// `headers` go on the next `status` response of the INVITE `call_id`.
    pub(crate) fn expect(&self, call_id: &str, status: u16, headers: Vec<Header>) {
        let mut pending = self.pending.lock();
        if pending.len() >= MAX_PENDING {
            pending.clear();
        }
        pending.insert((call_id.to_owned(), status), headers);
    }

    /// Adds the headers waiting for `message`, if it is such a response.
    fn decorate(&self, message: SipMessage) -> SipMessage {
        let SipMessage::Response(mut response) = message else { return message };
        let Ok(call_id) = response.call_id_header().map(|id| id.value().to_owned()) else {
            return SipMessage::Response(response);
        };
        let key = (call_id, response.status_code().code());
        if let Some(headers) = self.pending.lock().remove(&key) {
            for header in headers {
                response.headers.push(header);
            }
        }
        SipMessage::Response(response)
    }
}

/// The endpoint's message inspector over [`Refusals`].
pub(crate) struct RefusalInspector(pub Arc<Refusals>);

impl MessageInspector for RefusalInspector {
    fn before_send(&self, message: SipMessage, _destination: Option<&SipAddr>) -> SipMessage {
        self.0.decorate(message)
    }

    fn after_received(&self, message: SipMessage, _from: Option<&SipAddr>) -> SipMessage {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, call_id: &str) -> SipMessage {
        let text = format!(
            "SIP/2.0 {status} Whatever\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        SipMessage::try_from(text.as_str()).expect("a response")
    }

    #[test]
    fn the_waiting_headers_go_on_that_response_only_and_once() {
        let refusals = Refusals::default();
        refusals.expect(
            "abc",
            488,
            vec![crate::message::warning("sip.example.com", "media address refused")],
        );
        let other = refusals.decorate(response(488, "other")).to_string();
        assert!(!other.contains("Warning"), "{other}");
        let ringing = refusals.decorate(response(180, "abc")).to_string();
        assert!(!ringing.contains("Warning"), "{ringing}");
        let refused = refusals.decorate(response(488, "abc")).to_string();
        assert!(refused.contains("Warning: 399 sip.example.com \"media address refused\""), "{refused}");
        assert!(!refusals.decorate(response(488, "abc")).to_string().contains("Warning"), "taken once");
    }
}
