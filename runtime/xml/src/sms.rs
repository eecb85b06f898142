//! The SMS reply document: what a webhook app may answer to an inbound SMS.
//!
//! When an SMS comes in to a number whose app is a webhook app, the platform POSTs the message
//! to the app's URL (JSON, signed like event webhooks) and reads the answer. A 2xx answer with
//! an empty body (or `<Response/>`) sends nothing back; otherwise the body is this document:
//!
//! ```xml
//! <Response>
//!   <Message>Thanks! We got your message.</Message>
//!   <Message to="+14155550100">A copy for the shift lead.</Message>
//! </Response>
//! ```
//!
//! - `<Response>` is the root; its children are `<Message>` elements, at most
//!   [`MAX_SMS_REPLIES`]. Element names match case-insensitively, as in call flows.
//! - Each `<Message>` is sent from the number the SMS came in to. `to` (optional) is the
//!   handset, digits with the country code and an optional leading `+`; without it the reply
//!   goes to the sender of the inbound SMS.
//! - The text is the element's content with leading and trailing white space removed
//!   (entities and CDATA as in call flows); it must not be empty, and is then checked like any
//!   outbound SMS (1 to 918 characters).
//! - Anything else — another element, an unknown attribute, text outside `<Message>`, a
//!   DOCTYPE — refuses the whole document, and nothing is sent; the inbound message's history
//!   says why.

use std::fmt;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::parser::resolve_entity;

/// Most replies one document may ask for.
pub const MAX_SMS_REPLIES: usize = 10;
/// Largest reply document read, bytes.
pub const MAX_SMS_REPLY_BYTES: usize = 64 * 1024;

/// One SMS the document asks to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsReply {
    /// The handset; `None`: the sender of the inbound SMS.
    pub to: Option<String>,
    pub text: String,
}

/// Why a reply document was refused: where (1-based line and column) and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsReplyError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for SmsReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reply document line {}, column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for SmsReplyError {}

fn error_at(source: &str, at: usize, message: impl Into<String>) -> SmsReplyError {
    let before = source.get(..at.min(source.len())).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    SmsReplyError {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
        message: message.into(),
    }
}

/// Parses a reply document (see the module docs). An empty (or blank) document asks for no
/// reply.
pub fn parse_sms_reply(source: &str) -> Result<Vec<SmsReply>, SmsReplyError> {
    if source.trim().is_empty() {
        return Ok(Vec::new());
    }
    if source.len() > MAX_SMS_REPLY_BYTES {
        return Err(error_at(source, 0, format!("the document is larger than {MAX_SMS_REPLY_BYTES} bytes")));
    }
    let mut reader = Reader::from_str(source);
    reader.config_mut().check_end_names = true;
    let mut replies = Vec::new();
    // Where we are: 0 before <Response>, 1 inside it, 2 inside a <Message>, 3 after </Response>.
    let mut depth = 0u8;
    let mut current: Option<SmsReply> = None;
    let mut message_at = 0usize;
    loop {
        let start = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader.read_event().map_err(|e| {
            let at = usize::try_from(reader.error_position()).unwrap_or(start);
            error_at(source, at, format!("malformed XML: {e}"))
        })?;
        let text = |current: &mut Option<SmsReply>, piece: &str| -> Result<(), SmsReplyError> {
            match current {
                Some(reply) => {
                    reply.text.push_str(piece);
                    Ok(())
                }
                None if piece.trim().is_empty() => Ok(()),
                None => Err(error_at(source, start, "text is allowed only inside <Message>")),
            }
        };
        match event {
            Event::Start(ref tag) | Event::Empty(ref tag) => {
                let empty = matches!(event, Event::Empty(_));
                let name = tag.name().into_inner().to_owned();
                match (depth, name.to_ascii_lowercase().as_str()) {
                    (0, "response") => {
                        if let Some(attr) = tag.attributes().next() {
                            let key = attr.map(|a| a.key.into_inner().to_owned());
                            return Err(error_at(
                                source,
                                start,
                                format!("<Response> takes no attributes (found {})", key.unwrap_or_default()),
                            ));
                        }
                        depth = if empty { 3 } else { 1 };
                    }
                    (0, _) => {
                        return Err(error_at(
                            source,
                            start,
                            format!("the root must be <Response>, not <{name}>"),
                        ));
                    }
                    (1, "message") => {
                        if replies.len() == MAX_SMS_REPLIES {
                            return Err(error_at(
                                source,
                                start,
                                format!("at most {MAX_SMS_REPLIES} <Message> elements per reply"),
                            ));
                        }
                        let mut reply = SmsReply { to: None, text: String::new() };
                        for attr in tag.attributes() {
                            let attr = attr
                                .map_err(|e| error_at(source, start, format!("malformed attribute: {e}")))?;
                            let key = attr.key.into_inner().to_owned();
                            if key != "to" {
                                return Err(error_at(
                                    source,
                                    start,
                                    format!(
                                        "<Message> takes only the attribute to (found {key}); replies are sent from the number the SMS came in to"
                                    ),
                                ));
                            }
                            let value = attr
                                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .map_err(|e| error_at(source, start, format!("attribute to: {e}")))?;
                            let value = value.trim();
                            let digits = value.strip_prefix('+').unwrap_or(value);
                            if !(7..=15).contains(&digits.len())
                                || !digits.bytes().all(|b| b.is_ascii_digit())
                            {
                                return Err(error_at(
                                    source,
                                    start,
                                    format!(
                                        "to={value:?} is not a phone number: give 7 to 15 digits with the country code, optionally after +"
                                    ),
                                ));
                            }
                            reply.to = Some(value.to_owned());
                        }
                        message_at = start;
                        if empty {
                            return Err(error_at(source, start, "<Message> is empty: give the text to send"));
                        }
                        current = Some(reply);
                        depth = 2;
                    }
                    (1, _) => {
                        return Err(error_at(
                            source,
                            start,
                            format!("<Response> of an SMS reply holds only <Message> elements, not <{name}>"),
                        ));
                    }
                    (2, _) => {
                        return Err(error_at(
                            source,
                            start,
                            format!("<Message> holds text only, not <{name}>"),
                        ));
                    }
                    _ => return Err(error_at(source, start, "only one root element is allowed: <Response>")),
                }
            }
            Event::End(_) => match depth {
                2 => {
                    let mut reply = current.take().unwrap_or(SmsReply { to: None, text: String::new() });
                    reply.text = reply.text.trim().to_owned();
                    if reply.text.is_empty() {
                        return Err(error_at(
                            source,
                            message_at,
                            "<Message> is empty: give the text to send",
                        ));
                    }
                    replies.push(reply);
                    depth = 1;
                }
                _ => depth = 3,
            },
            Event::Text(t) => text(&mut current, &t.into_inner())?,
            Event::CData(d) => text(&mut current, &d.into_inner())?,
            Event::GeneralRef(r) => {
                let name = r.into_inner();
                let Some(c) = resolve_entity(&name) else {
                    return Err(error_at(
                        source,
                        start,
                        format!("unknown entity &{name}; (use &amp; &lt; &gt; &quot; &apos; or &#N;)"),
                    ));
                };
                text(&mut current, &c.to_string())?;
            }
            Event::DocType(_) => return Err(error_at(source, start, "DOCTYPE declarations are not allowed")),
            Event::Eof => {
                return match depth {
                    3 => Ok(replies),
                    0 => Err(error_at(source, start, "no <Response> element")),
                    _ => Err(error_at(source, start, "the document ends before </Response>")),
                };
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_with_and_without_to() {
        let doc = "<?xml version=\"1.0\"?>\n<Response>\n  <Message>Thanks &amp; bye</Message>\n  \
                   <message to=\"+14155550100\"><![CDATA[a <copy>]]></message>\n</Response>";
        assert_eq!(
            parse_sms_reply(doc).unwrap(),
            [
                SmsReply { to: None, text: "Thanks & bye".into() },
                SmsReply { to: Some("+14155550100".into()), text: "a <copy>".into() },
            ]
        );
        assert_eq!(parse_sms_reply("").unwrap(), []);
        assert_eq!(parse_sms_reply("<Response/>").unwrap(), []);
        assert_eq!(parse_sms_reply("<Response>\n</Response>").unwrap(), []);
    }

    #[test]
    fn refusals_say_where_and_what() {
        let e = parse_sms_reply("<Response>\n  <Say>hi</Say>\n</Response>").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.message.contains("only <Message>"), "{e}");
        let e = parse_sms_reply("<Response><Message from=\"1\">x</Message></Response>").unwrap_err();
        assert!(e.message.contains("only the attribute to"), "{e}");
        let e = parse_sms_reply("<Response><Message to=\"abc\">x</Message></Response>").unwrap_err();
        assert!(e.message.contains("not a phone number"), "{e}");
        let e = parse_sms_reply("<Response><Message>  </Message></Response>").unwrap_err();
        assert!(e.message.contains("empty"), "{e}");
        let e = parse_sms_reply("<Response>hello</Response>").unwrap_err();
        assert!(e.message.contains("only inside <Message>"), "{e}");
        let e = parse_sms_reply("<Reply><Message>x</Message></Reply>").unwrap_err();
        assert!(e.message.contains("root must be <Response>"), "{e}");
        let e = parse_sms_reply("<Response><Message>x</Message>").unwrap_err();
        assert!(e.message.contains("ends before"), "{e}");
        let e = parse_sms_reply("<Response><Message>x</Mesage></Response>").unwrap_err();
        assert!(e.message.contains("malformed XML"), "{e}");
        let many = format!("<Response>{}</Response>", "<Message>x</Message>".repeat(MAX_SMS_REPLIES + 1));
        assert!(parse_sms_reply(&many).unwrap_err().message.contains("at most"));
        assert!(parse_sms_reply("{\"text\":\"json\"}").unwrap_err().message.contains("only inside"));
    }
}
