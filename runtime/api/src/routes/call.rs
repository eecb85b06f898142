//! Asynchronous call control: `POST /rest/call/{uuid}/command`.
//!
//! A call whose app is in async mode parks and waits for commands; each command is a verb of
//! the XML dialect, run by the same built-in XML guest as hosted documents, so a verb behaves
//! the same whichever way it was asked for. The body is either
//!
//! - `{"command": "say", "params": {"text": "Hello", "lang": "en-US"}, "tag": "greeting",
//!   "command_id": "c-1"}` — `command` is one of answer, hangup, say, play, tone, pause,
//!   gather, record, record_start, record_stop, dial, hold, unhold; `params` are the verb's
//!   attributes as the dialect names them (`numDigits`, `timeout`, `finishOnKey`, `url`, …);
//!   `dial` takes its targets as `"to": ["12025550111", "alice@acme.sip.example"]`; or
//! - `{"xml": "<Response>…</Response>", "command_id": "c-2"}` — any fragment of the dialect.
//!
//! Commands run in the order they are accepted. A `command_id` seen on the same call within
//! 60 s is acknowledged (`"state": "duplicate"`) and not run again. A command that does not
//! fit the call's state answers 409 with the state; a call that is not live (or another
//! account's) answers 404.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, IdPath, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::{ApiState, CallCommand, CommandOutcome};

/// Longest `command_id`.
pub const MAX_COMMAND_ID: usize = 128;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/rest/call/{uuid}/command", post(command))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    #[serde(default)]
    #[schema(
        pattern = "^(answer|hangup|say|play|tone|pause|gather|record|record_start|record_stop|dial|hold|unhold)$"
    )]
    command: Option<String>,
    #[serde(default)]
    params: serde_json::Map<String, Value>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    xml: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    command_id: Option<String>,
}

/// What the caller gets back.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommandAnswer {
    pub call: Uuid,
    pub command_id: Option<String>,
    /// `accepted` (queued to run after the commands before it) or `duplicate`.
    pub state: &'static str,
}

/// The dialect's element for a command name.
fn element(command: &str) -> Option<&'static str> {
    Some(match command {
        "answer" => "Answer",
        "hangup" => "Hangup",
        "say" => "Say",
        "play" => "Play",
        "tone" => "Tone",
        "pause" => "Pause",
        "gather" => "Gather",
        "record" => "Record",
        "record_start" => "RecordStart",
        "record_stop" => "RecordStop",
        "dial" => "Dial",
        "hold" => "Hold",
        "unhold" => "Unhold",
        _ => return None,
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The `<Response>` fragment a command body stands for; checked by the dialect's parser, whose
/// message (with what to fix) becomes the 422.
fn fragment(body: &CommandBody) -> Result<(String, String), ApiError> {
    let (name, xml) = match (&body.xml, &body.command) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("command", "send either command (+ params) or xml, not both"));
        }
        (None, None) => return Err(ApiError::invalid("command", "send command (+ params) or xml")),
        (Some(xml), None) => ("xml".to_owned(), xml.clone()),
        (None, Some(command)) => {
            let Some(element) = element(command) else {
                return Err(ApiError::invalid(
                    "command",
                    format!(
                        "unknown command {command:?}; use answer, hangup, say, play, tone, pause, gather, record, \
                         record_start, record_stop, dial, hold, unhold, or xml"
                    ),
                ));
            };
            let mut attributes = String::new();
            for (key, value) in &body.params {
                if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || key.is_empty() {
                    return Err(ApiError::invalid(format!("params.{key}"), "not an attribute name"));
                }
                let value = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(ApiError::invalid(
                            format!("params.{key}"),
                            "must be a string, number or boolean",
                        ));
                    }
                };
                attributes.push_str(&format!(" {key}=\"{}\"", escape(&value)));
            }
            if let Some(tag) = &body.tag {
                attributes.push_str(&format!(" tag=\"{}\"", escape(tag)));
            }
            if element != "Dial" && !body.to.is_empty() {
                return Err(ApiError::invalid("to", "only dial takes targets"));
            }
            let children: String =
                body.to.iter().map(|target| format!("<To>{}</To>", escape(target))).collect();
            let verb = if children.is_empty() {
                format!("<{element}{attributes}/>")
            } else {
                format!("<{element}{attributes}>{children}</{element}>")
            };
            (command.clone(), format!("<Response>{verb}</Response>"))
        }
    };
    opentact_xml::parse(&xml).map_err(|errors| {
        ApiError::invalid(if body.xml.is_some() { "xml" } else { "params" }, errors.to_string())
    })?;
    Ok((name, xml))
}

#[utoipa::path(
    post,
    operation_id = "call_command",
    path = "/rest/call/{uuid}/command",
    tag = "call",
    summary = "Send a command to a live call in async mode",
    params(("uuid" = uuid::Uuid, Path, description = "The call's id")),
    request_body = CommandBody,
    responses((status = 200, description = "OK", body = doc::Envelope<CommandAnswer>), doc::ApiErrors)
)]
async fn command(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(call): IdPath,
    ApiJson(body): ApiJson<CommandBody>,
) -> Result<Payload<CommandAnswer>, ApiError> {
    if let Some(id) = &body.command_id
        && (id.is_empty() || id.len() > MAX_COMMAND_ID)
    {
        return Err(ApiError::invalid("command_id", format!("1 to {MAX_COMMAND_ID} characters")));
    }
    let (name, xml) = fragment(&body)?;
    let not_found = || ApiError::NotFound { kind: "live call", id: call.to_string() };
    let Some(control) = &state.call_control else { return Err(not_found()) };
    let outcome = control
        .command(auth.account, call, CallCommand { name, xml, command_id: body.command_id.clone() })
        .await;
    let state_name = match outcome {
        CommandOutcome::Accepted => "accepted",
        CommandOutcome::Duplicate => "duplicate",
        CommandOutcome::NotFound => return Err(not_found()),
        CommandOutcome::WrongState { state, reason } => return Err(ApiError::WrongState { state, reason }),
    };
    Ok(Payload(CommandAnswer { call, command_id: body.command_id, state: state_name }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> CommandBody {
        serde_json::from_value(json).expect("body")
    }

    #[test]
    fn commands_become_fragments_of_the_dialect() {
        let (_, xml) = fragment(&body(
            serde_json::json!({"command": "say", "params": {"text": "a < b & \"c\"", "loop": 2}, "tag": "t"}),
        ))
        .expect("say");
        assert_eq!(
            xml,
            r#"<Response><Say loop="2" text="a &lt; b &amp; &quot;c&quot;" tag="t"/></Response>"#
        );
        let (_, xml) = fragment(&body(
            serde_json::json!({"command": "dial", "to": ["12025550111"], "params": {"timeout": 5000}}),
        ))
        .expect("dial");
        assert_eq!(xml, r#"<Response><Dial timeout="5000"><To>12025550111</To></Dial></Response>"#);
        let error =
            fragment(&body(serde_json::json!({"command": "gather", "params": {"numDigits": "lots"}})))
                .expect_err("bad attribute");
        assert!(error.to_string().contains("numDigits"), "{error}");
        let error = fragment(&body(serde_json::json!({"command": "dance"}))).expect_err("unknown");
        assert!(error.to_string().contains("unknown command"), "{error}");
        let error = fragment(&body(serde_json::json!({"xml": "<Response><Say>"}))).expect_err("broken xml");
        assert!(error.to_string().contains("line 1"), "{error}");
    }
}
