use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Timestamp;
use super::app::AttestLevel;

/// Where a call went relative to the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallDirection {
    /// Came in to the platform (to a number, a user, a connection).
    Inbound,
    /// Placed by the platform (a dial, a REST call).
    Outbound,
}

impl CallDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound",
        }
    }
}

/// Where a call is in its life, as the call log shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    /// Ringing or running its flow, not answered yet.
    Initiated,
    /// Answered and not ended yet.
    Answered,
    /// Answered, then ended.
    Completed,
    /// Ended without being answered.
    Unanswered,
    /// Ended by a failure (a flow that trapped or hit a limit, a fetch that failed).
    Failed,
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Initiated => "initiated",
            CallState::Answered => "answered",
            CallState::Completed => "completed",
            CallState::Unanswered => "unanswered",
            CallState::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "initiated" => CallState::Initiated,
            "answered" => CallState::Answered,
            "completed" => CallState::Completed,
            "unanswered" => CallState::Unanswered,
            "failed" => CallState::Failed,
            _ => return None,
        })
    }
}

/// One call of the call log (a CDR). Written by the platform as the call goes; read through
/// the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CallRecord {
    pub uuid: Uuid,
    pub account: Uuid,
    /// The app that ran the call, when one did.
    pub app: Option<Uuid>,
    pub direction: CallDirection,
    pub from: String,
    pub to: String,
    pub state: CallState,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub started_on: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub answered_on: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub ended_on: Option<Timestamp>,
    /// From start to end, ms.
    pub duration_ms: Option<i64>,
    pub q850_cause: Option<i32>,
    /// The Q.850 cause's name (`NORMAL_CLEARING`…).
    pub hangup_cause: Option<String>,
    /// `caller`, `flow` or `platform`.
    pub hangup_by: Option<String>,
    /// Why, in words, when it was not a plain hangup.
    pub hangup_reason: Option<String>,
    /// An inbound call's verified STIR/SHAKEN attestation.
    pub stir_shaken_attest_level: Option<AttestLevel>,
    /// An inbound call's `Identity` header as received.
    pub stir_shaken_identity: Option<String>,
    /// An inbound call's verification status (`TN-Validation-Passed`, `TN-Validation-Failed`,
    /// `No-TN-Validation`); none for a call that was not checked (outbound, a SIP user's).
    pub verstat: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
    /// The node that carries (or carried) the call (`[server] node_id`): the operator's, not
    /// shown to accounts.
    #[serde(skip)]
    pub node: Option<String>,
    /// What the call cost, when it was rated (an outbound call to a number, with a rating
    /// deck loaded); set when the call ends.
    pub price: Option<super::CallPrice>,
}

/// An inbound call's STIR/SHAKEN verification, as its CDR keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallShaken {
    pub attest_level: Option<AttestLevel>,
    pub identity: Option<String>,
    pub verstat: String,
}

/// A call as it starts.
#[derive(Debug, Clone)]
pub struct NewCallRecord {
    pub uuid: Uuid,
    pub app: Option<Uuid>,
    pub direction: CallDirection,
    pub from: String,
    pub to: String,
    pub started_on: Timestamp,
    /// The node that carries the call (see [`crate::CallLogRepo::close_abandoned_calls`]).
    pub node: Option<String>,
}

/// How a call ended.
#[derive(Debug, Clone, Default)]
pub struct CallEnd {
    pub ended_on: Timestamp,
    pub duration_ms: i64,
    pub answered: bool,
    pub failed: bool,
    pub q850_cause: Option<i32>,
    pub hangup_cause: Option<String>,
    pub hangup_by: Option<String>,
    pub hangup_reason: Option<String>,
}

/// A recording made on a call; the audio is a WAV file the server keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecordingRecord {
    pub uuid: Uuid,
    pub account: Uuid,
    pub call: Uuid,
    /// Its name in the call (`<Record name>`).
    pub name: String,
    pub duration_ms: i64,
    /// Its WAV file's size, bytes (what it counts against `media.max_recording_mib_per_account`).
    pub size_bytes: i64,
    /// What was said, once the recording was transcribed (`<Record asr="true">`).
    pub transcript: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
}

/// What an account keeps of recordings, which its recording quota bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordingUsage {
    /// Recordings stored.
    pub count: u64,
    /// Their WAV files' sizes together, bytes.
    pub bytes: u64,
}

/// A command for a call carried by another node, as its sender writes it
/// ([`crate::CommandRelayRepo`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedCommand {
    /// The row's id (the sender picks it, to wait for its outcome before writing it).
    pub id: Uuid,
    pub account: Uuid,
    pub call: Uuid,
    /// The node that carries the call.
    pub node: String,
    /// The command's name (`say`, `hangup`, … or `xml`).
    pub name: String,
    /// Its `<Response>` fragment, checked by the sender.
    pub xml: String,
    /// The client's id for de-duplication.
    pub command_id: Option<String>,
    pub created_on: Timestamp,
}

/// What became of a relayed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayedOutcome {
    /// Queued on the call.
    Accepted,
    /// Its `command_id` was seen on the call: not run again.
    Duplicate,
    /// The carrying node has no such live call (it ended meanwhile).
    NotFound,
    /// The call's state does not allow it.
    WrongState { state: String, reason: String },
    /// Nobody took it before its sender stopped waiting: it never runs.
    Expired,
}
