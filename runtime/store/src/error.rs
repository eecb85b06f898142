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

    /// The database failed (connection, I/O, a constraint this layer did not expect). Its
    /// message says what kind of failure, and the database's code, never the database's own
    /// text (which names tables and values, and reaches some customer-facing reasons).
    #[error("database error{}", DatabaseSummary(.0))]
    Database(#[source] sqlx::Error),
}

/// What kind of database failure, for [`StoreError::Database`]'s message: enough to tell a
/// lock from a lost connection in a log line.
struct DatabaseSummary<'a>(&'a sqlx::Error);

impl fmt::Display for DatabaseSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            sqlx::Error::Database(db) => {
                let kind = match db.kind() {
                    sqlx::error::ErrorKind::UniqueViolation => "a unique constraint",
                    sqlx::error::ErrorKind::ForeignKeyViolation => "a foreign key",
                    sqlx::error::ErrorKind::NotNullViolation => "a not-null constraint",
                    sqlx::error::ErrorKind::CheckViolation => "a check constraint",
                    _ => "the database refused the statement",
                };
                match db.code() {
                    Some(code) => write!(f, " ({kind}, code {code})"),
                    None => write!(f, " ({kind})"),
                }
            }
            sqlx::Error::PoolTimedOut => f.write_str(": no database connection was free in time"),
            sqlx::Error::PoolClosed => f.write_str(": the connection pool is closed"),
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => {
                f.write_str(": the connection to the database failed")
            }
            sqlx::Error::WorkerCrashed => f.write_str(": the database worker stopped"),
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::ColumnNotFound(_) => {
                f.write_str(": a stored value could not be read")
            }
            _ => Ok(()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_database_error_says_its_kind_and_code_but_not_the_databases_text() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.expect("in-memory SQLite");
        sqlx::query("CREATE TABLE secret_table (id INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await
            .expect("table");
        sqlx::query("INSERT INTO secret_table (id) VALUES (7)").execute(&pool).await.expect("row");
        let twice =
            sqlx::query("INSERT INTO secret_table (id) VALUES (7)").execute(&pool).await.expect_err("twice");
        let message = StoreError::from(twice).to_string();
        assert_eq!(message, "database error (a unique constraint, code 1555)");
        assert!(!message.contains("secret_table"), "{message}");

        let timed_out = StoreError::Database(sqlx::Error::PoolTimedOut).to_string();
        assert_eq!(timed_out, "database error: no database connection was free in time");
    }
}
