//! The seams between the REST API and the engines.
//!
//! The API (HTTP) must not know SIP or media, and the call engine (`opentact-calls`) must not
//! know HTTP; both know this crate. The API calls through these traits, the engines implement
//! them, and only the `opentact` binary puts the two together. A capability that the API drives
//! (calls today, messaging next) adds its seam here.

/// A command for a live call, as the dialect's `<Response>` fragment it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallCommand {
    /// The command's name (`say`, `hangup`, … or `xml`), for state checks and logs.
    pub name: String,
    /// The fragment, already checked by the dialect's parser.
    pub xml: String,
    /// The client's id for de-duplication.
    pub command_id: Option<String>,
}

/// What became of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Queued behind the call's earlier commands.
    Accepted,
    /// Its `command_id` was seen on this call within the de-duplication window: not run again.
    Duplicate,
    /// No live call with this id in the account (or the call does not take commands).
    NotFound,
    /// The call's state does not allow it.
    WrongState { state: String, reason: String },
}

/// The live calls of the platform that take asynchronous commands (the server's registry;
/// with several nodes, the one that carries the call).
pub trait CallControl: Send + Sync {
    /// Queue `command` for `account`'s call `call`.
    fn command(
        &self,
        account: uuid::Uuid,
        call: uuid::Uuid,
        command: CallCommand,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = CommandOutcome> + Send + '_>>;

    /// Whether `account` has the live call `call` (any mode), e.g. the B side of a bridge.
    fn is_live(&self, account: uuid::Uuid, call: uuid::Uuid) -> bool;
}

/// Sends a command to the node that carries a call, when that is another node of the same
/// database, and waits for what became of it there.
pub trait CommandForwarder: Send + Sync {
    /// Runs `command` for `account`'s call `call` on `node`; an error when the node did not
    /// take it in time (it then never runs).
    fn forward(
        &self,
        account: uuid::Uuid,
        call: uuid::Uuid,
        node: &str,
        command: CallCommand,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<CommandOutcome, String>> + Send + '_>>;
}

/// Starts placing a stored batch's calls (the server's batch runner).
pub trait BatchLauncher: Send + Sync {
    /// Called once `account`'s batch `batch` is stored (queued); returns at once, the calls
    /// are placed in the background.
    fn launch(&self, account: uuid::Uuid, batch: uuid::Uuid);
}

/// An outbound call to place, checked by the API: the number is the account's and has voice,
/// the app and the profile are the account's.
#[derive(Debug, Clone)]
pub struct Originate {
    /// The caller ID: a number the account leases.
    pub from_tn: i64,
    /// Where it rings.
    pub to: opentact_call::model::DialTarget,
    /// How its flow is given: an app's mode (`app` set), or XML or a webhook given with the call.
    pub mode: opentact_store::model::AppMode,
    /// The app, when the call runs one.
    pub app: Option<opentact_store::model::SipControlApp>,
    /// How long it may ring.
    pub ring_timeout_secs: u32,
    /// Whose channel and rate limits the call counts against.
    pub profile: Option<opentact_store::OutboundVoiceProfile>,
    /// The calling number's own event webhook (its lease's `event_url`), read with the lease
    /// the caller checked.
    pub event_url: Option<String>,
}

/// Why a call was not placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginateError {
    /// A limit of the outbound voice profile (channels, calls per second) refused it; the
    /// call's events say so too.
    Limit { call: uuid::Uuid, reason: String },
    /// The platform cannot place calls now.
    Unavailable(String),
    /// The account cannot pay for the call (its balance, the profile's daily spend limit or
    /// `max_rate`, a destination the rating deck does not rate); the call's events say so too.
    PaymentRequired { call: uuid::Uuid, reason: String },
}

/// Places outbound calls (the server's originator).
pub trait Calling: Send + Sync {
    /// Start `account`'s call; its id, while it rings and runs in the background.
    fn originate(
        &self,
        account: uuid::Uuid,
        request: Originate,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<uuid::Uuid, OriginateError>> + Send + '_>>;
}

/// How an SMS text goes on the air: what the API stores and shows before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsPlan {
    /// `gsm7` or `ucs2`.
    pub encoding: String,
    /// Parts on the air (1 for a single SMS).
    pub parts: u32,
}

/// Where an outbound SMS is sent from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsFrom {
    /// One of the account's numbers, as the caller gave it (digits, maybe with a leading `+`):
    /// a lease of the account, in force, with SMS enabled. Refusals name the field `tn`.
    Tn(String),
    /// A number picked from the account's messaging profile's pool (`POST /rest/sms/pool`):
    /// the profile's leases with SMS, by weight, sticky per destination, skipping unhealthy
    /// ones. Refusals name the field `messaging_profile`.
    Pool { profile: uuid::Uuid },
}

/// Who asks for an SMS to be sent: kept in logs, and how a refusal reaches its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsOrigin {
    /// The REST API (`POST /rest/sms`, `POST /rest/sms/pool`).
    Api,
    /// A flow's `send-sms` (a call flow when `call` is set, else an SMS flow) or a webhook app's
    /// reply document.
    Flow { app: Option<uuid::Uuid>, call: Option<uuid::Uuid> },
    /// A SIP MESSAGE (RFC 3428) to a number from a SIP user of the account (from its number).
    SipUser { user: uuid::Uuid },
    /// A SIP MESSAGE to a number from a SIP connection of the account (a customer PBX, by
    /// address or by credentials), from the number in its From.
    SipConnection { connection: uuid::Uuid },
}

/// An outbound SMS to check and queue: [`Messaging::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsSend {
    /// The account that sends (and whose numbers, profiles and limits apply).
    pub account: uuid::Uuid,
    pub from: SmsFrom,
    /// The handset as given: 7 to 15 digits with the country code, an optional leading `+`.
    pub to: String,
    /// The text, 1 to 918 characters (at most 255 parts).
    pub text: String,
    /// Where the message's status events are also delivered; already checked against the
    /// webhook URL policy by the caller.
    pub custom_callback_url: Option<String>,
    pub origin: SmsOrigin,
}

/// An SMS stored queued (the row exists before this returns): the stored message.
pub type SentSms = opentact_store::SmsMessage;

/// Why an SMS was not queued. Nothing is stored when it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsRefusal {
    /// The request cannot be sent as it is (the API answers 422): `field` is the request's field
    /// (`tn`, `to`, `message`, `messaging_profile`), `message` says why and what to do.
    Invalid { field: String, message: String },
    /// A rate limit of the number or of the messaging profile (the API answers 429 with
    /// `Retry-After`): send again in `retry_after_secs`.
    RateLimited { message: String, retry_after_secs: u64 },
    /// Messaging cannot take messages now, e.g. the store failed (the API answers 503).
    Unavailable(String),
    /// The account cannot pay for the message: its balance is below the price, or the rating
    /// deck does not rate the destination (the API answers 402).
    PaymentRequired(String),
}

impl SmsRefusal {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }
}

impl std::fmt::Display for SmsRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid { field, message } => write!(f, "{field}: {message}"),
            Self::RateLimited { message, retry_after_secs } => {
                write!(f, "{message} (retry after {retry_after_secs} s)")
            }
            Self::Unavailable(message) | Self::PaymentRequired(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for SmsRefusal {}

/// The messaging capability as its callers drive it: the API (`POST /rest/sms`,
/// `POST /rest/sms/pool`), flows (`send-sms`) and webhook apps' replies all send through
/// [`Messaging::send`], the one place that checks an SMS (the number, SMS enabled, 10DLC, the
/// text, the destination, rate limits) and stores it in the outbox; the sender
/// (`opentact-messaging`) takes it from there.
pub trait Messaging: Send + Sync {
    /// Checks `request` and stores it queued (then pokes the sender), or says why not.
    fn send(
        &self,
        request: SmsSend,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<SentSms, SmsRefusal>> + Send + '_>>;
}

/// What an account's calls in progress hold of its balance. The call engine knows; messaging
/// asks before it takes a message, so that a message cannot spend what a call is talking.
pub trait CallSpend: Send + Sync {
    /// Micro-units held now: what answered calls have cost so far, ringing ones' first block.
    fn held(&self, account: uuid::Uuid) -> i64;
}

/// An SMS that came in to one of an account's numbers, for the app attached to that number.
/// The message is stored (an `smsr` record) before the flow host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    /// The stored message's id (`GET /rest/sms/{id}`).
    pub id: uuid::Uuid,
    /// The account that leases the number.
    pub account: uuid::Uuid,
    /// The app attached to the number (a component app).
    pub app: uuid::Uuid,
    /// The sender, as the SMSC gave it (digits, maybe with a leading `+`).
    pub from: String,
    /// The number it came in to, as its digits (`12025550100`), as the store shows it.
    pub to: String,
    /// The number it came in to, as the store keys it.
    pub tn: i64,
    /// The text, reassembled from its parts.
    pub text: String,
}

/// Runs an app's component (exporting `handle-sms`) for an inbound SMS (the flow host).
pub trait SmsFlows: Send + Sync {
    /// Run `message.app`'s component for `message`; `Err` says why it could not run or failed
    /// (logged and kept in the message's history by the caller).
    fn handle_sms(
        &self,
        message: InboundSms,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>>;
}
