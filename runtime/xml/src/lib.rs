//! The Opentact Call Flow XML dialect: parser, validator and AST.
//!
//! `parse` turns a document into a [`ast::Document`] or a list of errors, each with a 1-based
//! line and column and a message that says what to fix. Everything is checked here — unknown
//! elements and attributes, values of the wrong type or range, elements in the wrong place — so
//! a document is refused when it is uploaded or fetched, never discovered broken mid-call. The
//! same code runs in the API (upload validation) and inside the built-in XML guest.
//!
//! Decisions where the public documentation is silent or contradicts itself:
//! - Element names match case-insensitively (`<callback>` = `<Callback>`); attribute names
//!   are exact, with the spellings both generations of the docs use.
//! - Both Gather syntaxes build the same AST. The legacy form keeps its `*` default finish key.
//! - `interDigitTimeout` / `inter_digit_timeout` (ms, default 5000) is an Opentact extension:
//!   the first-digit timeout (`timeout`) and the inter-digit timeout are separate timers.
//! - `<Tone hz="440x3">`: `x N` repeats the tone N times (it multiplies `loop`).
//! - `<Error>` attaches to the verb it directly follows, or to its parent Dial, Bridge,
//!   Callback, Gather (or its Switch) or Curl. An `<Error>` anywhere else is refused.
//! - `<Record tag>` names the recording; without a tag it is named `recording`.
//! - `<Bridge call="…">` is not in the public docs: it is the flow world's `bridge` import as a
//!   verb. It joins the call with another live call of the same account, named by its id (at
//!   most [`MAX_BRIDGE_CALL_BYTES`]), and the flow goes on after it when the other call hangs
//!   up. Like Dial, it takes an `<Error>` (child or sibling) that runs when the bridge cannot be
//!   made.
//!
//! [`sms`] is the small reply document a webhook app may answer an inbound SMS with
//! (`<Response><Message to="…">text</Message></Response>`), parsed by [`parse_sms_reply`].

pub mod ast;
mod parser;
pub mod sms;

pub use ast::Document;
pub use parser::{
    MAX_BRIDGE_CALL_BYTES, MAX_DEPTH, MAX_DIAL_TARGETS, MAX_DOCUMENT_BYTES, MAX_ELEMENTS, MAX_TEXT_BYTES,
    ParseError, ParseErrors,
};
pub use sms::{SmsReply, SmsReplyError, parse_sms_reply};

/// Parse and validate a document.
pub fn parse(source: &str) -> Result<Document, ParseErrors> {
    parser::parse(source)
}
