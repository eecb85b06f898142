//! SIP MESSAGE (RFC 3428): pager-mode instant messages, outside any dialog.
//!
//! Inbound, the endpoint authenticates a MESSAGE exactly like a new INVITE — a trusted source
//! (a carrier, a SIP connection by address) as a trunk, anyone else by digest (407, then the
//! same nonce checks, failure counts and bans as calls) — then checks what it carries: text
//! only (`text/plain`, UTF-8; anything else 415 with `Accept: text/plain`), at most
//! [`MAX_MESSAGE_BODY`] bytes (513 above, the RFC's limit for a request that may travel over
//! UDP), and hands it to the platform's [`MessageHandler`], whose [`MessageReply`] is the final
//! answer (with its reason in a `Warning` header). Without a handler, MESSAGE is 405.
//!
//! Outbound, [`SipEndpoint::send_message`](crate::SipEndpoint::send_message) sends one MESSAGE
//! (a non-INVITE client transaction) and waits for its final status.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use rsipstack::sip::{Header, HeadersExt, Method, Param};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipAddr;

use crate::error::SipError;
use crate::inbound::{Caller, SipUri};

/// The largest MESSAGE body accepted or sent, in bytes. RFC 3428 §4 keeps a MESSAGE that may
/// travel over UDP under 1300 bytes; the platform holds every MESSAGE to it, whatever the
/// transport it came on, because the recipient may be reached over UDP.
pub const MAX_MESSAGE_BODY: usize = 1300;

/// How long an outbound MESSAGE waits for its final response before it counts as unanswered
/// (well inside the sender's own 32 s transaction timeout, so a relayed answer still reaches it).
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// An authenticated MESSAGE, for the platform to route.
#[derive(Debug, Clone)]
pub struct IncomingMessage {
    /// The Call-ID.
    pub call_id: String,
    /// The From URI.
    pub from: SipUri,
    /// The To URI.
    pub to: SipUri,
    /// The Request-URI: the recipient.
    pub request_uri: SipUri,
    /// The address the MESSAGE came from.
    pub source: SocketAddr,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// Who sent it, as authentication established.
    pub caller: Caller,
    /// The text (the body, `text/plain` in UTF-8, at most [`MAX_MESSAGE_BODY`] bytes).
    pub text: String,
}

/// The final answer to a MESSAGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageReply {
    /// 200 (delivered to the recipient), 202 (accepted for delivery, e.g. as an SMS), or a
    /// refusal (403, 404, 480, …).
    pub status: u16,
    /// Why, for a refusal: sent in a `Warning: 399` header and logged.
    pub reason: Option<String>,
}

impl MessageReply {
    /// 200: the recipient has it.
    pub fn delivered() -> Self {
        MessageReply { status: 200, reason: None }
    }

    /// 202: accepted, delivery goes on (an SMS queued for the carrier).
    pub fn accepted() -> Self {
        MessageReply { status: 202, reason: None }
    }

    /// A refusal with its reason.
    pub fn refused(status: u16, reason: impl Into<String>) -> Self {
        MessageReply { status, reason: Some(reason.into()) }
    }
}

/// What the platform does with an inbound MESSAGE. Called on its own task per MESSAGE, after
/// authentication and the content checks; the reply is sent as the final response.
#[async_trait]
pub trait MessageHandler: Send + Sync + 'static {
    /// Route and deliver the message.
    async fn on_message(&self, message: IncomingMessage) -> MessageReply;
}

/// A MESSAGE the platform sends.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    /// The Request-URI (a registered contact, `sip:12025550100@pbx.example.com`).
    pub uri: String,
    /// Where to send it (a binding's source address, a PBX); `None` resolves the URI's host.
    pub destination: Option<SocketAddr>,
    /// `tcp` sends over TCP; anything else UDP.
    pub transport: &'static str,
    /// The From URI (the sender: `sip:alice@acme.sip.example.com`, `sip:12025550100@…`).
    pub from: String,
    /// The To URI.
    pub to: String,
    /// The text, sent as `text/plain;charset=UTF-8`.
    pub text: String,
}

/// Whether a Content-Type value is `text/plain` (any parameters; a charset, when named, must
/// be UTF-8 or its ASCII subset).
pub(crate) fn is_plain_text(content_type: &str) -> bool {
    let mut parts = content_type.split(';').map(str::trim);
    if !parts.next().is_some_and(|media| media.eq_ignore_ascii_case("text/plain")) {
        return false;
    }
    parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let value = value.trim().trim_matches('"');
            value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("us-ascii")
        }
        _ => true,
    })
}

/// A `Warning` header carrying `reason` (RFC 3261 §20.43: code 399, miscellaneous), quotes and
/// line breaks taken out so the text cannot break the header.
pub(crate) fn warning(agent: &str, reason: &str) -> Header {
    let text: String = reason
        .chars()
        .map(|c| if c == '"' || c == '\\' || c.is_control() { '\'' } else { c })
        .take(200)
        .collect();
    Header::Warning(format!("399 {agent} \"{text}\"").into())
}

/// Send one MESSAGE and wait (at most [`MESSAGE_TIMEOUT`]) for its final status; 408 when
/// nothing final came back.
pub(crate) async fn send(endpoint: &EndpointInnerRef, message: OutboundMessage) -> Result<u16, SipError> {
    if message.text.len() > MAX_MESSAGE_BODY {
        return Err(SipError::Stack(format!(
            "a MESSAGE body is at most {MAX_MESSAGE_BODY} bytes; this one is {}",
            message.text.len()
        )));
    }
    let parse = |what: &str, text: &str| {
        rsipstack::sip::Uri::try_from(text).map_err(|e| SipError::Stack(format!("{what} {text:?}: {e}")))
    };
    let transport = crate::outbound::transport_named(message.transport);
    let listens = endpoint.transport_layer.get_listen_addrs();
    let via_addr =
        listens.iter().find(|a| a.r#type == Some(transport)).cloned().or_else(|| listens.first().cloned());
    let via = endpoint.get_via(via_addr, None)?;
    let from = rsipstack::sip::typed::From {
        display_name: None,
        uri: parse("From", &message.from)?,
        params: vec![Param::Tag(rsipstack::transaction::make_tag())],
    };
    let to = rsipstack::sip::typed::To { display_name: None, uri: parse("To", &message.to)?, params: vec![] };
    let mut request =
        endpoint.make_request(Method::Message, parse("Request-URI", &message.uri)?, via, from, to, 1, None);
    request.headers.push(Header::ContentType("text/plain;charset=UTF-8".into()));
    request.body = message.text.into_bytes();
    let key = TransactionKey::from_request(&request, TransactionRole::Client)?;
    let mut tx = Transaction::new_client(key, request, endpoint.clone(), None);
    if let Some(address) = message.destination {
        let mut destination = SipAddr::from(address);
        destination.r#type = Some(transport);
        tx.destination = Some(destination);
    }
    tx.send().await?;
    let outcome = tokio::time::timeout(MESSAGE_TIMEOUT, async {
        while let Some(reply) = tx.receive().await {
            if let rsipstack::sip::SipMessage::Response(response) = reply {
                let status = response.status_code.code();
                if status >= 200 {
                    return Some(status);
                }
            }
        }
        None
    })
    .await;
    Ok(outcome.ok().flatten().unwrap_or(408))
}

/// The parts of a MESSAGE request the handler reads: `Err` with the status and reason to
/// refuse it with.
pub(crate) fn read(
    request: &rsipstack::sip::Request,
    source: SocketAddr,
    transport: &'static str,
    caller: Caller,
) -> Result<IncomingMessage, (u16, String, Vec<Header>)> {
    let bad = |reason: &str| (400, reason.to_owned(), Vec::new());
    let content_type = request.header_value("Content-Type").or_else(|| request.header_value("c"));
    if !content_type.as_deref().is_some_and(is_plain_text) {
        return Err((
            415,
            format!(
                "only text/plain messages are taken, not {}",
                content_type.as_deref().unwrap_or("(none)")
            ),
            vec![Header::Accept("text/plain".into())],
        ));
    }
    let body = request.body();
    if body.len() > MAX_MESSAGE_BODY {
        return Err((
            513,
            format!("a message is at most {MAX_MESSAGE_BODY} bytes; this one is {}", body.len()),
            Vec::new(),
        ));
    }
    if body.is_empty() {
        return Err(bad("the message is empty"));
    }
    let text = String::from_utf8(body.to_vec()).map_err(|_| bad("the text is not UTF-8"))?;
    let from = request.from_header().ok().and_then(|h| h.uri().ok()).ok_or_else(|| bad("no From URI"))?;
    let to = request.to_header().ok().and_then(|h| h.uri().ok()).ok_or_else(|| bad("no To URI"))?;
    let call_id = request.call_id_header().map(|h| h.value().to_owned()).unwrap_or_default();
    Ok(IncomingMessage {
        call_id,
        from: SipUri::from_stack(&from),
        to: SipUri::from_stack(&to),
        request_uri: SipUri::from_stack(&request.uri),
        source,
        transport,
        caller,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_utf8_text_is_taken() {
        assert!(is_plain_text("text/plain"));
        assert!(is_plain_text("Text/Plain; charset=UTF-8"));
        assert!(is_plain_text("text/plain;charset=\"us-ascii\""));
        assert!(!is_plain_text("text/plain;charset=iso-8859-1"));
        assert!(!is_plain_text("text/html"));
        assert!(!is_plain_text("message/cpim"));
        assert!(!is_plain_text(""));
    }

    #[test]
    fn a_warning_cannot_break_its_header() {
        let header = warning("sip.example.com", "say \"hi\"\r\nInjected: yes");
        assert_eq!(header.value(), "399 sip.example.com \"say 'hi'''Injected: yes\"");
    }
}
