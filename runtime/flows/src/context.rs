//! What the host needs to run one flow: the trigger (a call, an SMS) and its context, and
//! the capabilities the platform plugs in (number data, sending SMS).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use opentact_call::CallSession;
use tokio::sync::mpsc;

/// An HTTP method of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

/// How the app controls its calls (mirrors the WIT `control-mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMode {
    /// A hosted XML document.
    Xml(String),
    /// A webhook returning the document.
    Webhook {
        /// URL.
        url: String,
        /// Method.
        method: HttpMethod,
        /// Timeout, ms.
        timeout_ms: u32,
    },
    /// REST commands.
    AsyncCommands,
    /// The component is the flow.
    Component,
}

/// Where a number is (answers the WIT `numbers.lookup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// ISO country code.
    pub country: String,
    /// State or province code.
    pub state: Option<String>,
    /// County.
    pub county: Option<String>,
    /// IANA time zone.
    pub time_zone: Option<String>,
}

/// The platform's number data, as flows see it.
pub trait NumberDirectory: Send + Sync {
    /// Locate a number.
    fn lookup(&self, number: &str) -> Option<Location>;
}

/// Knows no number.
#[derive(Debug, Default)]
pub struct EmptyDirectory;

impl NumberDirectory for EmptyDirectory {
    fn lookup(&self, _number: &str) -> Option<Location> {
        None
    }
}

/// What starts a flow: each trigger brings its own context. [`crate::FlowHost::run`] calls the
/// component's `handle-call` for a call and `handle-sms` for an SMS.
#[derive(Debug)]
pub enum Trigger {
    /// An inbound or placed call.
    Call(CallContext),
    /// An SMS received by one of the app's numbers.
    Sms(SmsContext),
}

/// One call's flow: its session, its app's mode and what the imports read.
///
/// Build it with [`CallContext::new`] and the `with_*` methods, or fill the fields directly.
pub struct CallContext {
    /// The call the flow controls: every call-control import runs on it, and
    /// [`crate::FlowHost::run_call`] finishes it when the flow ends.
    pub session: Arc<CallSession>,
    /// The app's control mode, given to the built-in XML guest's handler (a customer
    /// component is the flow itself and is not told).
    pub mode: ControlMode,
    /// Asynchronous call-control commands for `app-control.next-command`; `None` = the app
    /// sends none (a wait then times out empty).
    pub commands: Option<mpsc::Receiver<String>>,
    /// The number data `numbers.lookup` answers from.
    pub numbers: Arc<dyn NumberDirectory>,
    /// The flow's wall clock starts here (the runner's `--at`); `None` = real time.
    pub wall_clock: Option<DateTime<Utc>>,
    /// The app's own limit on the flow's length (its `max_call_length_min`); the host's
    /// [`crate::HostConfig::max_call_length_s`] applies when `None`, and caps it otherwise.
    pub max_call_length: Option<Duration>,
    /// Signs the HTTP requests of the built-in XML guest (the app's webhook, `<Callback>`,
    /// a `<Gather>`'s action, `<Curl>`), so the customer's server can tell them from anyone
    /// else's. A customer's component's requests are its own and are never signed.
    pub request_signer: Option<Arc<dyn RequestSigner>>,
}

/// Signs the requests the platform sends on a customer's behalf ([`CallContext::request_signer`]).
pub trait RequestSigner: Send + Sync {
    /// The headers to add to a request with `body` (the whole body, as sent).
    fn headers(&self, body: &[u8]) -> Vec<(&'static str, String)>;
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("session", &self.session)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl CallContext {
    /// A flow for `session`, in `mode`.
    pub fn new(session: Arc<CallSession>, mode: ControlMode) -> Self {
        Self {
            session,
            mode,
            commands: None,
            numbers: Arc::new(EmptyDirectory),
            wall_clock: None,
            max_call_length: None,
            request_signer: None,
        }
    }

    /// Sign the XML guest's requests with `signer`.
    pub fn with_request_signer(mut self, signer: Arc<dyn RequestSigner>) -> Self {
        self.request_signer = Some(signer);
        self
    }

    /// The number data `<Geo>` and `numbers.lookup` use.
    pub fn with_numbers(mut self, numbers: Arc<dyn NumberDirectory>) -> Self {
        self.numbers = numbers;
        self
    }

    /// Fix the flow's wall clock to start at `at` (the runner's `--at`); `None` = real time.
    pub fn with_wall_clock(mut self, at: Option<DateTime<Utc>>) -> Self {
        self.wall_clock = at;
        self
    }

    /// The app's limit on the flow's length (capped by the host's own).
    pub fn with_max_call_length(mut self, limit: Duration) -> Self {
        self.max_call_length = Some(limit);
        self
    }

    /// Asynchronous call-control commands (`<Response>` fragments) for `next-command`.
    pub fn with_commands(mut self, commands: mpsc::Receiver<String>) -> Self {
        self.commands = Some(commands);
        self
    }
}

/// An SMS received by one of an account's numbers, for the app attached to the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// The stored message's UUID.
    pub id: String,
    /// The account that leases the receiving number.
    pub account: String,
    /// The app running the flow.
    pub app: String,
    /// The sender, as the carrier gave it.
    pub from: String,
    /// The receiving number, E.164 with `+`.
    pub to: String,
    /// The receiving number as digits: the default sender of a reply.
    pub tn: u64,
    /// The text.
    pub text: String,
}

/// One SMS flow: the message and what the imports read. It has no call: the call imports
/// answer `invalid-state` (and `info`/`state` stop the flow), `send-sms` sends from the
/// receiving number by default.
pub struct SmsContext {
    /// The message `handle-sms` is given.
    pub message: InboundMessage,
    /// The number data `numbers.lookup` answers from.
    pub numbers: Arc<dyn NumberDirectory>,
    /// The flow's wall clock starts here; `None` = real time.
    pub wall_clock: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SmsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsContext").field("message", &self.message).finish_non_exhaustive()
    }
}

impl SmsContext {
    /// A flow for `message`.
    pub fn new(message: InboundMessage) -> Self {
        Self { message, numbers: Arc::new(EmptyDirectory), wall_clock: None }
    }

    /// The number data `numbers.lookup` uses.
    pub fn with_numbers(mut self, numbers: Arc<dyn NumberDirectory>) -> Self {
        self.numbers = numbers;
        self
    }
}

/// An SMS a flow asks to send (`messaging.send-sms`), with who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSms {
    /// The account the flow runs for (its numbers, profiles and limits apply).
    pub account: String,
    /// The app running the flow.
    pub app: String,
    /// The call, in a call flow.
    pub call: Option<String>,
    /// The sending number, as the flow gave it or the default (the call's number, the
    /// receiving number).
    pub from: String,
    /// The recipient.
    pub to: String,
    /// The text (1 to 918 characters: checked before the sender sees it).
    pub text: String,
}

/// Why the platform did not queue a flow's SMS: what the flow gets as a `call-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsSendError {
    /// The request cannot be sent as it is (the number, SMS not enabled, 10DLC, the text, the
    /// destination): `invalid-argument` with this message.
    Invalid(String),
    /// A rate limit: `limit-exceeded` with this message.
    Limited(String),
    /// Messaging cannot take messages now: `failed` with this message.
    Unavailable(String),
}

/// The messaging capability as flows use it: checks and queues an SMS, answering the stored
/// message's UUID. The platform plugs its messaging in with
/// [`crate::FlowHost::set_sms_sender`]; without one, `send-sms` fails.
pub trait SmsSender: Send + Sync {
    /// Check and queue `sms`.
    fn send(
        &self,
        sms: OutboundSms,
    ) -> Pin<Box<dyn Future<Output = Result<String, SmsSendError>> + Send + '_>>;
}
