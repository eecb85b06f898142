use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Timestamp;

/// How a SIP Control App decides what a call does. Every mode runs as a Wasm component; the
/// first three drive the built-in XML guest (see ARCHITECTURE.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum AppMode {
    /// A hosted XML document.
    Xml { document: String },
    /// The document is fetched from the customer's URL when a call arrives (sync call control).
    Webhook { url: String, method: WebhookMethod, timeout_ms: i64 },
    /// The call is parked and driven by REST commands.
    Async,
    /// The customer's own uploaded component (see [`ComponentVersion`]).
    Component,
}

impl AppMode {
    pub(crate) fn tag(&self) -> &'static str {
        match self {
            AppMode::Xml { .. } => "xml",
            AppMode::Webhook { .. } => "webhook",
            AppMode::Async => "async",
            AppMode::Component => "component",
        }
    }
}

/// The HTTP method a call-flow webhook is requested with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum WebhookMethod {
    Get,
    Post,
}

impl WebhookMethod {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WebhookMethod::Get => "GET",
            WebhookMethod::Post => "POST",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "GET" => Some(WebhookMethod::Get),
            "POST" => Some(WebhookMethod::Post),
            _ => None,
        }
    }
}

/// What an app does with an inbound call's STIR/SHAKEN `Identity` (RFC 8224); an app that
/// names none follows the platform's `[stir_shaken] verify_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShakenVerifyPolicy {
    /// Not verified: the call is tagged `No-TN-Validation`.
    Off,
    /// Verified; the call goes on whatever the result, tagged with it.
    Tag,
    /// Verified; a call without a valid Identity (or below the minimum attestation) is refused
    /// with the RFC 8224 response (428, 436, 437, 438, 403).
    Reject,
}

impl ShakenVerifyPolicy {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ShakenVerifyPolicy::Off => "off",
            ShakenVerifyPolicy::Tag => "tag",
            ShakenVerifyPolicy::Reject => "reject",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(ShakenVerifyPolicy::Off),
            "tag" => Some(ShakenVerifyPolicy::Tag),
            "reject" => Some(ShakenVerifyPolicy::Reject),
            _ => None,
        }
    }
}

/// A STIR/SHAKEN attestation level (RFC 8588): A full, B partial, C gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, ToSchema)]
pub enum AttestLevel {
    A,
    B,
    C,
}

impl AttestLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AttestLevel::A => "A",
            AttestLevel::B => "B",
            AttestLevel::C => "C",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "A" => Some(AttestLevel::A),
            "B" => Some(AttestLevel::B),
            "C" => Some(AttestLevel::C),
            _ => None,
        }
    }
}

/// An app's STIR/SHAKEN verification of its inbound calls; `None` follows the platform's
/// `[stir_shaken]` configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct AppShaken {
    /// `off`, `tag` or `reject`.
    pub shaken_verify_policy: Option<ShakenVerifyPolicy>,
    /// With `reject`, a verified call attested below this level is refused (403).
    pub shaken_minimum_accepted_attest_lvl: Option<AttestLevel>,
}

/// A SIP Control App: the call logic numbers, connections and SIP domains point at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SipControlApp {
    pub uuid: Uuid,
    pub account: Uuid,
    pub name: String,
    #[serde(flatten)]
    pub mode: AppMode,
    pub auto_answer: bool,
    /// Wall-clock limit of a call run by this app.
    pub max_call_length_min: i32,
    /// Where call events are POSTed, if anywhere.
    pub event_url: Option<String>,
    #[serde(flatten)]
    pub shaken: AppShaken,
    /// The component version calls run (mode `component`); set by uploading a version.
    pub current_component: Option<Uuid>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub deleted_on: Option<Timestamp>,
}

/// What creating an app takes.
#[derive(Debug, Clone)]
pub struct NewSipControlApp {
    pub name: String,
    pub mode: AppMode,
    pub auto_answer: bool,
    pub max_call_length_min: i32,
    pub event_url: Option<String>,
    pub shaken: AppShaken,
}

/// A partial update; for nullable fields `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct SipControlAppPatch {
    pub name: Option<String>,
    pub mode: Option<AppMode>,
    pub auto_answer: Option<bool>,
    pub max_call_length_min: Option<i32>,
    pub event_url: Option<Option<String>>,
    pub shaken_verify_policy: Option<Option<ShakenVerifyPolicy>>,
    pub shaken_minimum_accepted_attest_lvl: Option<Option<AttestLevel>>,
}

/// One uploaded version of an app's Wasm component. The bytes are kept in the database and
/// read separately ([`crate::SipControlAppRepo::component_bytes`]); versions are never edited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ComponentVersion {
    pub uuid: Uuid,
    pub account: Uuid,
    pub app: Uuid,
    /// 1, 2, 3… per app.
    pub version: i32,
    /// Hex SHA-256 of the bytes: the key of the compiled-artifact cache.
    pub sha256: String,
    pub size: i64,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
}
