//! An SMS auto-responder: every SMS to the app's numbers gets one reply, from the number it was
//! sent to; `STOP`, `HELP` and an empty text get the answers carriers expect. Calls to the same
//! numbers hear a short message asking to text instead.

use opentact_sdk::{Call, Error, Flow, Result, Sms, SmsMessage, send_sms};

/// The reply to `text`, or `None` when none is due (after `STOP`, the carrier's and the
/// platform's opt-out handling take over: a reply would be unwanted).
pub fn reply_to(text: &str) -> Option<&'static str> {
    match text.trim().to_ascii_uppercase().as_str() {
        "STOP" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" => None,
        "HELP" | "INFO" => Some("Acme support: reply with your question, or call us. Reply STOP to opt out."),
        _ => Some("Thanks for your message! We will get back to you within one business day."),
    }
}

struct AutoResponder;

impl Flow for AutoResponder {
    fn handle_call(call: Call) -> Result<()> {
        call.answer()?;
        call.say("We answer by text message. Please send us an SMS at this number. Goodbye.")?;
        call.hangup()
    }

    fn handle_sms(message: SmsMessage) -> Result<()> {
        let Some(reply) = reply_to(&message.text) else {
            return Ok(());
        };
        match send_sms(Sms::new(&message.from, reply)) {
            Ok(id) => println!("replied to {} with message {id}", message.id),
            // Rate limited: better no reply than a failed flow in the message's history.
            Err(Error::LimitExceeded(reason)) => println!("no reply to {}: {reason}", message.id),
            Err(other) => return Err(other),
        }
        Ok(())
    }
}

opentact_sdk::export_flow!(AutoResponder);

#[cfg(test)]
mod tests {
    use super::reply_to;

    #[test]
    fn stop_words_get_no_reply_and_help_gets_help() {
        assert_eq!(reply_to(" stop "), None);
        assert!(reply_to("Help").is_some_and(|r| r.contains("STOP")));
        assert!(reply_to("when do you open?").is_some_and(|r| r.starts_with("Thanks")));
    }
}
