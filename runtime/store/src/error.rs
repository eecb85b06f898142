//! The store's error type.

use std::fmt;

/// Which kind of object an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    Account,
    ApiToken,
    Number,
    TnLease,
    TnProfile,
    SipConnection,
    SipControlApp,
    ComponentVersion,
    SipDomain,
    SipUser,
    OutboundVoiceProfile,
    Order,
    SipInvite,
    MessagingProfile,
    Call,
    Recording,
    EventSubscription,
    Batch,
    Message,
    Brand,
    Campaign,
    VerifiedNumber,
}

impl ObjectKind {
    /// The name used in messages (and by the REST API in its 404 bodies).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Account => "account",
            ObjectKind::ApiToken => "api token",
            ObjectKind::Number => "number",
            ObjectKind::TnLease => "tn lease",
            ObjectKind::TnProfile => "tn profile",
            ObjectKind::SipConnection => "sip connection",
            ObjectKind::SipControlApp => "sip control app",
            ObjectKind::ComponentVersion => "component version",
            ObjectKind::SipDomain => "sip domain",
            ObjectKind::SipUser => "sip user",
            ObjectKind::OutboundVoiceProfile => "outbound voice profile",
            ObjectKind::Order => "order",
            ObjectKind::SipInvite => "sip invite",
            ObjectKind::MessagingProfile => "messaging profile",
            ObjectKind::Call => "call",
            ObjectKind::Recording => "recording",
            ObjectKind::EventSubscription => "event subscription",
            ObjectKind::Batch => "batch",
            ObjectKind::Message => "message",
            ObjectKind::Brand => "brand",
            ObjectKind::Campaign => "campaign",
            ObjectKind::VerifiedNumber => "verified number",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a store operation can fail with.
///
/// `NotFound` is also the answer for another account's objects: a caller cannot tell "absent"
/// from "not yours", which is what the REST API's 404 needs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object does not exist, was deleted, or belongs to another account.
    #[error("{kind} {id} not found")]
    NotFound { kind: ObjectKind, id: String },

    /// A uniqueness rule was broken: `field` already has `value` on a live object of `kind`.
    #[error("{kind} with {field} {value} already exists")]
    Conflict { kind: ObjectKind, field: &'static str, value: String },

    /// The object's state forbids the change: `state` is the state it is in, `reason` what
    /// that rules out (a completed batch cannot be cancelled).
    #[error("{kind} {id} is {state}: {reason}")]
    WrongState { kind: ObjectKind, id: String, state: &'static str, reason: &'static str },

    /// The number is in the inventory but is not available for lease.
    #[error("number {tn} is not available")]
    NumberUnavailable { tn: i64 },

    /// A value the caller gave breaks a rule of the object (says which field and why).
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: &'static str },

    /// The URL given to [`crate::Store::open`] is not one the store understands.
    #[error("unsupported store URL scheme in {url:?}: use sqlite://path or postgres://...")]
    UnsupportedUrl { url: String },

    /// Could not create the directory that holds the SQLite file.
    #[error("cannot create the data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A row holds a value this version cannot read (a bad UUID, an unknown enum tag...).
    #[error("corrupt {kind} row: column {column} holds {value:?}")]
    Corrupt { kind: ObjectKind, column: &'static str, value: String },

    /// Hashing a password failed (bad parameters; not a wrong password, which is `Ok(None)`).
    #[error("password hashing failed")]
    PasswordHash(#[source] argon2::password_hash::Error),

    /// A sealed secret could not be sealed or opened (see [`crate::seal`]).
    #[error("sealed secret: {reason}")]
    Sealing { reason: &'static str },

    /// The operating system's random source failed.
    #[error("random source failed")]
    Random(#[source] getrandom::Error),

    /// A hashing task was cancelled or panicked.
    #[error("background hashing task failed")]
    Task(#[source] tokio::task::JoinError),

    /// The migrations could not be applied.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),

    /// The database failed (connection, I/O, a constraint this layer did not expect).
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e)
    }
}

impl StoreError {
    pub(crate) fn not_found(kind: ObjectKind, id: impl fmt::Display) -> Self {
        StoreError::NotFound { kind, id: id.to_string() }
    }
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Turns a unique violation into [`StoreError::Conflict`]; anything else stays a database error.
pub(crate) fn conflict_on(
    e: sqlx::Error,
    kind: ObjectKind,
    field: &'static str,
    value: impl fmt::Display,
) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { kind, field, value: value.to_string() }
        }
        _ => StoreError::Database(e),
    }
}
