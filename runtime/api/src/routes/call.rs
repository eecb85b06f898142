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
//! account's) answers 404. A call live on another node of the same PostgreSQL (the call log
//! says which) gets the command through that node (`opentact_calls::command_relay`), with the
//! same answers; 503 when that node did not take it in time (it then never runs). A bridge of
//! two calls on different nodes answers 409: media is not relayed between nodes.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, Created, IdPath, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::ApiState;
use opentact_control::{CallCommand, CommandOutcome, Originate, OriginateError};

/// Longest `command_id`.
pub const MAX_COMMAND_ID: usize = 128;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/call", post(originate))
        .route("/rest/call/bridge", post(bridge))
        .route("/rest/call/{uuid}/command", post(command))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    #[serde(default)]
    #[schema(
        pattern = "^(answer|hangup|say|play|tone|pause|gather|record|record_start|record_stop|dial|bridge|hold|unhold)$"
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
        "bridge" => "Bridge",
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
                         record_start, record_stop, dial, bridge, hold, unhold, or xml"
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

fn check_command_id(id: Option<&str>) -> Result<(), ApiError> {
    match id {
        Some(id) if id.is_empty() || id.len() > MAX_COMMAND_ID => {
            Err(ApiError::invalid("command_id", format!("1 to {MAX_COMMAND_ID} characters")))
        }
        _ => Ok(()),
    }
}

/// A command's `state` in the answer, or the error it becomes.
fn answer_state(outcome: CommandOutcome, call: Uuid) -> Result<&'static str, ApiError> {
    match outcome {
        CommandOutcome::Accepted => Ok("accepted"),
        CommandOutcome::Duplicate => Ok("duplicate"),
        CommandOutcome::NotFound => Err(not_found(call)),
        CommandOutcome::WrongState { state, reason } => Err(ApiError::WrongState { state, reason }),
    }
}

fn not_found(call: Uuid) -> ApiError {
    ApiError::NotFound { kind: "live call", id: call.to_string() }
}

/// How long a node that relays commands waits for a call that just started to reach the call
/// log, which is written just behind the call's first events: a client that acts on
/// `call.initiated` at once may ask a node before the row is there.
const CALL_LOG_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(2);

/// Where a call that is not live on this node is: the node the call log shows carrying it, or
/// `None` (ended, unknown, or another account's). A call this node logged open is one that
/// just ended here.
async fn carried_elsewhere(state: &ApiState, account: Uuid, call: Uuid) -> Option<String> {
    let deadline = tokio::time::Instant::now() + CALL_LOG_CATCH_UP;
    let record = loop {
        match state.repo.get_call(account, call).await.ok().flatten() {
            Some(record) => break record,
            // Only a call whose id (a UUIDv7) says it began moments ago is waited for.
            None if state.forwarder.is_some()
                && began_within(call, CALL_LOG_CATCH_UP * 5)
                && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            None => return None,
        }
    };
    let node = record.node?;
    (record.ended_on.is_none() && state.node_id.as_deref() != Some(node.as_str())).then_some(node)
}

/// Whether the UUIDv7 `id` was made within `age` of now (`false` for other versions).
fn began_within(id: Uuid, age: std::time::Duration) -> bool {
    let Some((seconds, nanos)) = id.get_timestamp().map(|t| t.to_unix()) else { return false };
    let made = std::time::UNIX_EPOCH + std::time::Duration::new(seconds, nanos);
    std::time::SystemTime::now().duration_since(made).is_ok_and(|elapsed| elapsed <= age)
        || made.duration_since(std::time::SystemTime::now()).is_ok_and(|ahead| ahead <= age)
}

/// Runs `command` on `node`, which carries the call (module docs). The node's name is the
/// operator's and is not shown to the account.
async fn forward(
    state: &ApiState,
    account: Uuid,
    call: Uuid,
    node: &str,
    command: CallCommand,
) -> Result<CommandOutcome, ApiError> {
    match &state.forwarder {
        Some(forwarder) => forwarder.forward(account, call, node, command).await.map_err(|error| {
            tracing::warn!(%call, node, %error, "a relayed command was not taken");
            ApiError::Unavailable(format!(
                "call {call} is carried by another node, which did not take the command in time; it was \
                 not run: try again"
            ))
        }),
        None => Err(ApiError::WrongState {
            state: "live on another node".to_owned(),
            reason: format!(
                "call {call} is carried by another node, and this node does not relay commands (nodes \
                 relay through a shared PostgreSQL): send it to the API of the node that carries the call"
            ),
        }),
    }
}

/// Runs `command` on the node that carries the account's `call`: this one, or another.
async fn run_command(
    state: &ApiState,
    account: Uuid,
    call: Uuid,
    command: CallCommand,
) -> Result<CommandOutcome, ApiError> {
    let outcome = match &state.call_control {
        Some(control) => control.command(account, call, command.clone()).await,
        None => CommandOutcome::NotFound,
    };
    if outcome != CommandOutcome::NotFound {
        return Ok(outcome);
    }
    match carried_elsewhere(state, account, call).await {
        Some(node) => forward(state, account, call, &node, command).await,
        None => Ok(CommandOutcome::NotFound),
    }
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
    check_command_id(body.command_id.as_deref())?;
    let (name, xml) = fragment(&body)?;
    let command = CallCommand { name, xml, command_id: body.command_id.clone() };
    let outcome = run_command(&state, auth.account, call, command).await?;
    let state_name = answer_state(outcome, call)?;
    Ok(Payload(CommandAnswer { call, command_id: body.command_id, state: state_name }))
}

/// Shortest and longest ring time of an outbound call, seconds.
pub const RING_TIMEOUT_SECS: std::ops::RangeInclusive<u32> = 5..=120;
/// Ring time when the request names none, seconds.
pub const DEFAULT_RING_TIMEOUT_SECS: u32 = 30;

/// `POST /rest/call`: one outbound call.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OriginateBody {
    /// A number the account leases, with voice: the caller ID.
    #[schema(value_type = i64, example = 12025550100_i64)]
    from: Value,
    /// A number (`12025550111`), a SIP URI (`sip:bob@example.com`) or a SIP user of the account
    /// (`alice@acme.sip.example`).
    #[schema(max_length = 256)]
    to: String,
    /// The flow as XML…
    #[schema(max_length = 262144)]
    xml: Option<String>,
    /// …or an app of the account…
    sip_control_app: Option<Uuid>,
    /// …or a webhook that returns the XML…
    #[schema(pattern = "^https?://[^ ]+$", max_length = 2048)]
    webhook_url: Option<String>,
    #[schema(pattern = "^(?i:GET|POST)$")]
    webhook_method: Option<String>,
    #[schema(minimum = 100, maximum = 30000)]
    webhook_request_timeout: Option<i64>,
    /// …or `"async"`: the call parks for `POST /rest/call/{uuid}/command` once answered.
    #[schema(pattern = "^async$")]
    control: Option<String>,
    /// Ring time, seconds (5–120, default 30).
    #[schema(minimum = 5, maximum = 120)]
    timeout: Option<u32>,
    /// Whose channel and rate limits the call counts against (default: the number's SIP
    /// connection's profile, when it has one).
    outbound_voice_profile: Option<Uuid>,
}

/// A call that was placed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OriginatedCall {
    pub uuid: Uuid,
    /// `initiated`: it rings now; its events follow (`call.answered`, `call.hangup`…).
    pub state: &'static str,
    pub direction: &'static str,
    pub from: i64,
    pub to: String,
}

/// The TN of a body field: a JSON integer, or a string of digits (`+` allowed).
fn tn_field(field: &str, value: &Value) -> Result<i64, ApiError> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.strip_prefix('+').unwrap_or(s).to_owned(),
        _ => String::new(),
    };
    if !(7..=15).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(field, "a number with country code, 7 to 15 digits (12025550100)"));
    }
    text.parse().map_err(|_| ApiError::invalid(field, "not a number"))
}

#[utoipa::path(
    post,
    operation_id = "call_originate",
    path = "/rest/call",
    tag = "call",
    summary = "Place an outbound call from a number the account leases",
    request_body = OriginateBody,
    responses(
        (status = 201, description = "Created: the call rings", body = doc::Envelope<OriginatedCall>),
        (status = 402, description = "The account cannot pay for it: its balance, the profile's daily spend limit or max_rate, a destination the rating deck does not rate", body = doc::ErrorEnvelope),
        (status = 429, description = "An outbound voice profile limit refused it", body = doc::ErrorEnvelope),
        doc::ApiErrors
    )
)]
async fn originate(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<OriginateBody>,
) -> Result<Created<OriginatedCall>, ApiError> {
    use opentact_store::ObjectKind;
    let account = auth.account;
    let from = tn_field("from", &body.from)?;
    if body.to.len() > 256 {
        return Err(ApiError::invalid("to", "at most 256 characters"));
    }
    let target = opentact_xml::ast::Target::classify(&body.to).ok_or_else(|| {
        ApiError::invalid(
            "to",
            "a number (12025550111), a SIP URI (sip:bob@host) or a SIP user (alice@domain)",
        )
    })?;
    let to = match target {
        opentact_xml::ast::Target::Number(n) => opentact_call::model::DialTarget::Number(n),
        opentact_xml::ast::Target::SipUri(u) => opentact_call::model::DialTarget::SipUri(u),
        opentact_xml::ast::Target::User(u) => opentact_call::model::DialTarget::User(u),
    };
    let ring = body.timeout.unwrap_or(DEFAULT_RING_TIMEOUT_SECS);
    if !RING_TIMEOUT_SECS.contains(&ring) {
        return Err(ApiError::invalid(
            "timeout",
            format!("{} to {} seconds", RING_TIMEOUT_SECS.start(), RING_TIMEOUT_SECS.end()),
        ));
    }
    let lease = state.repo.lease_by_tn(from).await?.filter(|lease| lease.account == account);
    let Some(lease) = lease else {
        return Err(ApiError::invalid("from", format!("{from} is not a number of this account")));
    };
    if !lease.voice {
        return Err(ApiError::invalid("from", format!("{from} has no voice service")));
    }
    let inline = crate::routes::app::AppBody {
        xml: body.xml.clone(),
        webhook_url: body.webhook_url.clone(),
        webhook_method: body.webhook_method.clone(),
        webhook_request_timeout: body.webhook_request_timeout,
        control: body.control.clone(),
        ..Default::default()
    };
    let inline = crate::routes::app::mode_of(&inline, &state.flow_urls)?;
    let (mode, app) = match (inline, body.sip_control_app) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::invalid(
                "mode",
                "give one of xml, sip_control_app, webhook_url or control: \"async\"",
            ));
        }
        (Some(mode), None) => (mode, None),
        (None, Some(app)) => {
            let app = state
                .repo
                .get_app(account, app)
                .await?
                .ok_or_else(|| ApiError::invalid("sip_control_app", format!("app {app} not found")))?;
            (app.mode.clone(), Some(app))
        }
    };
    let profile_id = match body.outbound_voice_profile {
        Some(id) => Some(id),
        None => match lease.sip_connection {
            Some(connection) => {
                state.repo.get_connection(account, connection).await?.and_then(|c| c.outbound_voice_profile)
            }
            None => None,
        },
    };
    let profile = match profile_id {
        Some(id) => Some(state.repo.get_ovp(account, id).await?.ok_or_else(|| {
            let kind = ObjectKind::OutboundVoiceProfile.as_str();
            ApiError::invalid("outbound_voice_profile", format!("{kind} {id} not found"))
        })?),
        None => None,
    };
    let Some(calling) = &state.calling else {
        return Err(ApiError::Unavailable("outbound calling is not running on this server".to_owned()));
    };
    let event_url = lease.event_url.clone();
    let request = Originate { from_tn: from, to, mode, app, ring_timeout_secs: ring, profile, event_url };
    let uuid = calling.originate(account, request).await.map_err(|error| match error {
        OriginateError::Limit { reason, .. } => ApiError::LimitReached(reason),
        OriginateError::Unavailable(reason) => ApiError::Unavailable(reason),
        OriginateError::PaymentRequired { reason, .. } => ApiError::PaymentRequired(reason),
    })?;
    Ok(Created(OriginatedCall { uuid, state: "initiated", direction: "out", from, to: body.to }))
}

/// `POST /rest/call/bridge`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BridgeBody {
    /// A live call of the account in async mode: the bridge runs as its next command.
    call_a: Uuid,
    /// Another live, answered call of the account.
    call_b: Uuid,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    command_id: Option<String>,
}

/// What a bridge request became.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BridgeAnswer {
    pub call_a: Uuid,
    pub call_b: Uuid,
    /// `accepted` (call A bridges once its earlier commands have run) or `duplicate`.
    pub state: &'static str,
}

#[utoipa::path(
    post,
    operation_id = "call_bridge",
    path = "/rest/call/bridge",
    tag = "call",
    summary = "Bridge two live calls of the account (call A must be in async mode)",
    request_body = BridgeBody,
    responses((status = 200, description = "OK", body = doc::Envelope<BridgeAnswer>), doc::ApiErrors)
)]
async fn bridge(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<BridgeBody>,
) -> Result<Payload<BridgeAnswer>, ApiError> {
    if body.call_a == body.call_b {
        return Err(ApiError::invalid("call_b", "a call cannot be bridged with itself"));
    }
    check_command_id(body.command_id.as_deref())?;
    // Where each call is: this node (`None`), another node, or nowhere (404).
    let is_here =
        |call| state.call_control.as_ref().is_some_and(|control| control.is_live(auth.account, call));
    let mut carriers = Vec::new();
    for call in [body.call_a, body.call_b] {
        carriers.push(if is_here(call) {
            None
        } else {
            Some(carried_elsewhere(&state, auth.account, call).await.ok_or_else(|| not_found(call))?)
        });
    }
    // Two calls on different nodes are not bridged: their audio would have to cross between
    // the nodes, which the platform does not relay. Two calls on the same other node are
    // bridged there.
    if carriers[0] != carriers[1] {
        return Err(ApiError::WrongState {
            state: "live on different nodes".to_owned(),
            reason: format!(
                "calls {} and {} are carried by different nodes, and media is not relayed between nodes: \
                 only calls on the same node are bridged",
                body.call_a, body.call_b
            ),
        });
    }
    let xml = format!("<Response><Bridge call=\"{}\"/></Response>", body.call_b);
    let command = CallCommand { name: "bridge".to_owned(), xml, command_id: body.command_id };
    let outcome = match &carriers[0] {
        Some(node) => forward(&state, auth.account, body.call_a, node, command).await?,
        None => run_command(&state, auth.account, body.call_a, command).await?,
    };
    let state_name = answer_state(outcome, body.call_a)?;
    Ok(Payload(BridgeAnswer { call_a: body.call_a, call_b: body.call_b, state: state_name }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> CommandBody {
        serde_json::from_value(json).expect("body")
    }

    #[test]
    fn only_a_call_made_moments_ago_is_waited_for() {
        let ten_seconds = std::time::Duration::from_secs(10);
        assert!(began_within(Uuid::now_v7(), ten_seconds));
        let ts = |seconds_ago: u64| {
            let at = std::time::SystemTime::now() - std::time::Duration::from_secs(seconds_ago);
            let since = at.duration_since(std::time::UNIX_EPOCH).expect("after 1970");
            Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos()))
        };
        assert!(began_within(ts(3), ten_seconds));
        assert!(!began_within(ts(60), ten_seconds), "a call from a minute ago is in the log or nowhere");
        assert!(!began_within(Uuid::new_v4(), ten_seconds), "a v4 id says nothing of its age");
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
