//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): the parsers that read what a
//! stranger sends, reachable without a running endpoint. Not a stable API; hidden from the docs.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use rsipstack::sip::{HeadersExt, SipMessage};

use crate::digest::{DigestResponse, NonceIssuer, NonceLedger};
use crate::inbound::{SipUri, session_timer};
use crate::registrar::{Contacts, contact_values, parse_contacts};

/// Parse REGISTER Contact header values as the registrar does; the number of contacts (0 for
/// `*`) or why they were refused.
pub fn contacts(values: &[String]) -> Result<usize, String> {
    Ok(match parse_contacts(values)? {
        Contacts::Wildcard => 0,
        Contacts::List(list) => list.len(),
    })
}

/// An `Authorization`/`Proxy-Authorization` value through everything the endpoint does with
/// one before it knows the user: parse, nonce check, nonce count, ledger, uri comparison and
/// the response check against some HA1.
pub fn digest(header: &str) {
    let Some(credentials) = DigestResponse::parse(header) else { return };
    let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let _ = NonceIssuer::new("fuzz").check(&credentials.realm, source, &credentials.nonce);
    if let Some(nc) = credentials.nonce_count() {
        let _ = NonceLedger::new(4, Duration::from_secs(300)).record(&credentials.nonce, nc);
    }
    let _ = credentials.uri_matches("sip:100@example.com", |uri| Some(uri.trim().to_owned()));
    let _ = credentials.verify("0123456789abcdef0123456789abcdef", "INVITE");
}

/// A datagram through rsipstack's parser and then through what the endpoint reads of a
/// request: the digest headers, Contact values, From/To/Request-URI and the session timer.
pub fn message(bytes: &[u8]) {
    let Ok(SipMessage::Request(request)) = SipMessage::try_from(bytes) else { return };
    for name in ["Authorization", "Proxy-Authorization"] {
        if let Some(value) = request.header_value(name) {
            digest(&value);
        }
    }
    let _ = contacts(&contact_values(&request));
    if let Ok(from) = request.from_header()
        && let Ok(from) = rsipstack::sip::typed::From::parse(from.value())
    {
        let _ = SipUri::from_stack(&from.uri).to_string();
    }
    if let Ok(uri) = request.to_header().and_then(|to| to.uri()) {
        let _ = SipUri::from_stack(&uri).to_string();
    }
    let _ = SipUri::from_stack(&request.uri).to_string();
    let _ = session_timer(
        request.header_value("Session-Expires").as_deref(),
        request.header_value("Supported").as_deref(),
    );
}
