//! Checks a request must pass before the transaction layer sees it (RFC 3261 §8.2, §16.3;
//! RFC 4475's torture messages). rsipstack's parser is lenient: it accepts requests RFC 4475
//! calls malformed (an unknown SIP version, a CSeq method that is not the request's, empty
//! Via/Contact elements, a CSeq number past 2³¹) and silently drops those its transaction
//! layer cannot key (no From, no Call-ID). Both get an answer here, before any transaction
//! exists: 400 (or 505, 416) built from the request's own headers, sent on the connection it
//! came in on.

use async_trait::async_trait;
use rsipstack::sip::{Header, Headers, Method, Request, Response, SipMessage, StatusCode, Version};
use rsipstack::transaction::endpoint::TransportEventInspector;
use rsipstack::transport::TransportEvent;
use tracing::debug;

/// The largest CSeq sequence number a request may carry: "MUST be less than 2**31"
/// (RFC 3261 §8.1.1.5).
pub const MAX_CSEQ: u64 = (1 << 31) - 1;

/// Why a request is refused before dispatch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A SIP-Version other than SIP/2.0 (answered 505).
    #[error("unsupported SIP version {0}")]
    Version(String),
    /// A Request-URI scheme other than sip, sips or tel (answered 416).
    #[error("unsupported Request-URI scheme {0}")]
    Scheme(String),
    /// A header every request needs is missing (answered 400).
    #[error("no {0} header")]
    Missing(&'static str),
    /// A header that may appear once appears more often (answered 400).
    #[error("{0} appears more than once")]
    Repeated(&'static str),
    /// A header's value does not parse as its grammar says (answered 400).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The CSeq method is not the request's (answered 400).
    #[error("CSeq method {cseq} on a {method} request")]
    CSeqMethod { cseq: String, method: String },
    /// The From header has no tag: an RFC 2543 request, which the transaction layer cannot
    /// match (it keys transactions by From tag) and would drop unanswered (answered 400).
    #[error("no From tag")]
    NoFromTag,
}

impl Invalid {
    /// The status a request refused for this reason gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Invalid::Version(_) => StatusCode::VersionNotSupported,
            Invalid::Scheme(_) => StatusCode::UnsupportedUriScheme,
            _ => StatusCode::BadRequest,
        }
    }
}

/// Headers a request carries exactly once (RFC 3261 §8.1.1, §20.14: a message framed by two
/// Content-Lengths has no one length).
const SINGLE: [&str; 6] = ["Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Length"];

/// Headers whose values are comma-separated lists of `;`-parameterised elements, where an
/// empty element or parameter is a syntax error (RFC 4475 §3.1.2.1).
const LISTS: [&str; 4] = ["Via", "Contact", "Route", "Record-Route"];

/// Check a request; `Err` says why it must be refused.
pub fn check(request: &Request) -> Result<(), Invalid> {
    if request.version != Version::V2 {
        return Err(Invalid::Version(request.version.to_string()));
    }
    for name in SINGLE {
        let count = request.headers.iter().filter(|h| h.name().eq_ignore_ascii_case(name)).count();
        if count > 1 {
            return Err(Invalid::Repeated(name));
        }
        // A request without Content-Length is legal on UDP (the datagram ends it), and
        // Max-Forwards is optional for an endpoint (RFC 2543 peers omit it).
        if count == 0 && !matches!(name, "Max-Forwards" | "Content-Length") {
            return Err(Invalid::Missing(name));
        }
    }
    if !request.headers.iter().any(|h| matches!(h, Header::Via(_))) {
        return Err(Invalid::Missing("Via"));
    }
    let cseq = header(request, "CSeq").unwrap_or_default();
    let mut parts = cseq.split_whitespace();
    let seq = parts.next().and_then(|seq| seq.parse::<u64>().ok());
    let cseq_method = parts.next().unwrap_or_default();
    if seq.is_none_or(|seq| seq > MAX_CSEQ) || parts.next().is_some() {
        return Err(Invalid::Malformed("CSeq"));
    }
    let method = request.method.to_string();
    if cseq_method != method {
        return Err(Invalid::CSeqMethod { cseq: cseq_method.to_owned(), method });
    }
    for name in LISTS {
        for header in request.headers.iter().filter(|h| h.name().eq_ignore_ascii_case(name)) {
            if has_empty_element(header.value()) {
                return Err(Invalid::Malformed(name));
            }
        }
    }
    if !request
        .headers
        .iter()
        .any(|h| matches!(h, Header::From(from) if from.tag().is_ok_and(|t| t.is_some())))
    {
        return Err(Invalid::NoFromTag);
    }
    let scheme = request.uri.scheme.as_ref().map(|s| s.to_string()).unwrap_or_default();
    if !["sip", "sips", "tel"].iter().any(|known| scheme.eq_ignore_ascii_case(known)) {
        return Err(Invalid::Scheme(scheme));
    }
    Ok(())
}

/// Remove the linear white space around `;` and `=` in From and To values, outside quoted
/// strings and `<…>`: RFC 3261 §25.1 allows it there (`; tag = 98asjd8`, RFC 4475 §3.1.1.1),
/// but rsipstack's parser then misses the tag, and the transaction layer drops a request whose
/// From tag it cannot find. The values mean the same either way (§20.20 compares them without
/// LWS), so the responses echo the compact form.
pub fn normalize(request: &mut Request) {
    for header in request.headers.iter_mut() {
        match header {
            Header::From(from) => from.0 = compact_parameters(&from.0),
            Header::To(to) => to.0 = compact_parameters(&to.0),
            _ => {}
        }
    }
}

fn compact_parameters(value: &str) -> String {
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    let mut out = String::with_capacity(value.len());
    let mut pending_space = false;
    for c in value.trim().chars() {
        if quoted || angle {
            if quoted {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    quoted = false;
                }
            } else if c == '>' {
                angle = false;
            }
            out.push(c);
            continue;
        }
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        let separator = c == ';' || c == '=';
        let after_separator = out.ends_with(';') || out.ends_with('=');
        if pending_space && !separator && !after_separator {
            out.push(' ');
        }
        pending_space = false;
        match c {
            '"' => quoted = true,
            '<' => angle = true,
            _ => {}
        }
        out.push(c);
    }
    out
}

fn header(request: &Request, name: &str) -> Option<String> {
    request.headers.iter().find(|h| h.name().eq_ignore_ascii_case(name)).map(|h| h.value().to_owned())
}

/// Whether a list value has an empty element or parameter (`a;;b`, `a,,b`, a trailing `;`),
/// looking only at separators outside quoted strings and `<…>`.
fn has_empty_element(value: &str) -> bool {
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    let mut segment_empty = true;
    for c in value.chars() {
        if quoted {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
            segment_empty = false;
            continue;
        }
        match c {
            '"' => quoted = true,
            '<' => angle = true,
            '>' => angle = false,
            ';' | ',' if !angle => {
                if segment_empty {
                    return true;
                }
                segment_empty = true;
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            segment_empty = false;
        }
    }
    segment_empty
}

/// A response refusing `request`, with the headers it must echo (RFC 3261 §8.2.6.2) as far
/// as the request has them.
fn refusal(request: &Request, status: StatusCode) -> Response {
    let echoed = request
        .headers
        .iter()
        .filter(|h| {
            matches!(
                h,
                Header::Via(_) | Header::From(_) | Header::To(_) | Header::CallId(_) | Header::CSeq(_)
            )
        })
        .cloned();
    let mut headers: Vec<Header> = echoed.collect();
    headers.push(Header::ContentLength(0.into()));
    Response {
        status_code: status,
        wire_reason: None,
        version: Version::V2,
        headers: Headers(headers),
        body: vec![],
    }
}

/// The endpoint's transport inspector: requests that fail [`check`] are answered here and go
/// no further; everything else passes unchanged.
pub(crate) struct RequestValidator;

#[async_trait]
impl TransportEventInspector for RequestValidator {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        let TransportEvent::Incoming(SipMessage::Request(mut request), connection, from) = event else {
            return Some(event);
        };
        normalize(&mut request);
        let Err(invalid) = check(&request) else {
            return Some(TransportEvent::Incoming(request.into(), connection, from));
        };
        debug!(source = %from, method = %request.method, %invalid, "request refused before dispatch");
        // An ACK is never answered (RFC 3261 §17.2.3); a bad one is dropped.
        if request.method != Method::Ack {
            let response = refusal(&request, invalid.status());
            // To the source address: the request's Via may be what is broken.
            if let Err(error) = connection.send(response.into(), Some(&from)).await {
                debug!(%error, "refusal");
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Request {
        match SipMessage::try_from(text.replace('\n', "\r\n").as_bytes()) {
            Ok(SipMessage::Request(request)) => request,
            other => panic!("a request: {other:?}"),
        }
    }

    const GOOD: &str = "OPTIONS sip:a@example.com SIP/2.0\n\
        Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\n\
        From: <sip:b@example.com>;tag=1\nTo: <sip:a@example.com>\nCall-ID: x@y\n\
        CSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n";

    #[test]
    fn a_well_formed_request_passes() {
        assert_eq!(check(&request(GOOD)), Ok(()));
    }

    #[test]
    fn each_defect_is_named() {
        let cases = [
            ("CSeq: 1 OPTIONS", "CSeq: 1 INVITE", "CSeq method"),
            ("CSeq: 1 OPTIONS", "CSeq: 2147483648 OPTIONS", "malformed CSeq"),
            ("Call-ID: x@y\n", "", "no Call-ID"),
            ("Call-ID: x@y", "Call-ID: x@y\nCall-ID: z@y", "Call-ID appears"),
            ("branch=z9hG4bK1", "branch=z9hG4bK1;;,;,,", "malformed Via"),
            ("sip:a@example.com SIP", "soap.beep://192.0.2.103:3002 SIP", "scheme"),
        ];
        for (from, to, expected) in cases {
            let text = GOOD.replacen(from, to, 1);
            let refused = check(&request(&text)).expect_err(&text).to_string();
            assert!(refused.contains(expected), "{text}: {refused}");
        }
    }

    #[test]
    fn white_space_around_parameters_goes_and_quoted_text_stays() {
        assert_eq!(
            compact_parameters(
                "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8"
            ),
            "\"J Rosenberg \\\\\\\"\" <sip:jdrosen@example.com>;tag=98asjd8"
        );
        assert_eq!(compact_parameters(" sip:a@b ;   tag    = 1n"), "sip:a@b;tag=1n");
        assert_eq!(compact_parameters("\"a ; b = c\" <sip:x@y ; lr>"), "\"a ; b = c\" <sip:x@y ; lr>");
    }

    #[test]
    fn empty_list_elements_are_found_outside_quotes_and_brackets_only() {
        assert!(has_empty_element("\"Joe\" <sip:joe@example.org>;;;;"));
        assert!(has_empty_element("a, ,b"));
        assert!(has_empty_element("a;"));
        assert!(!has_empty_element("\"a;;b,,\" <sip:x@y;lr;;>;tag=1, <sip:z@w>"));
        assert!(!has_empty_element("SIP/2.0/UDP h;branch=z9hG4bK1;rport"));
    }

    #[test]
    fn rfc_4475_verdicts_for_what_the_parser_lets_through() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/sip-torture");
        let refused = [
            "badinv01",
            "badvers",
            "mismatch01",
            "insuf",
            "multi01",
            "scalar02",
            "unkscm",
            "novelsc",
            "inv2543",
        ];
        let passed = [
            "wsinv",
            "esc01",
            "escnull",
            "lwsdisp",
            "longreq",
            "semiuri",
            "transports",
            "mpart01",
            "cparam01",
        ];
        for (names, refuse) in [(&refused, true), (&passed, false)] {
            for name in names {
                let bytes = std::fs::read(format!("{dir}/{name}.dat")).expect("fixture");
                let Ok(SipMessage::Request(mut request)) = SipMessage::try_from(&bytes[..]) else {
                    panic!("{name} parses")
                };
                normalize(&mut request);
                assert_eq!(check(&request).is_err(), refuse, "{name}: {:?}", check(&request));
            }
        }
    }
}
