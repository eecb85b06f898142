use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Timestamp;

/// A customer account: the unit of isolation. Everything else belongs to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Account {
    pub uuid: Uuid,
    pub name: String,
    /// Stored lower-cased; unique among live accounts.
    pub email: String,
    /// PHC string of an argon2id hash (memory-hard), never the password.
    #[serde(skip_serializing)]
    pub password_hash: String,
    /// IANA time zone name, e.g. `America/New_York`.
    pub time_zone: String,
    /// Who the operator deals with.
    pub contact: AccountContact,
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

/// An account's contact details; each is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct AccountContact {
    /// The company the account is for.
    pub company: Option<String>,
    /// A phone number with its country code (`+12025550100`).
    pub phone: Option<String>,
    /// A postal address, free text.
    pub address: Option<String>,
}

/// What creating an account takes. The password is hashed before it reaches the database.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: String,
    pub email: String,
    pub password: String,
    pub time_zone: String,
}

/// A partial update; `None` leaves the field as it is.
#[derive(Debug, Clone, Default)]
pub struct AccountPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub time_zone: Option<String>,
    /// `Some(None)` clears the field.
    pub company: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub address: Option<Option<String>>,
}

/// An API key. Only the SHA-256 of the token is kept; the token itself is shown once, at creation.
///
/// SHA-256 (not a memory-hard hash) is right here: the token is 32 random bytes, so there is
/// nothing to brute-force, and every API request looks it up by hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiToken {
    pub uuid: Uuid,
    pub account: Uuid,
    pub name: String,
    /// Hex SHA-256 of the plain token.
    #[serde(skip_serializing)]
    pub token_hash: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub expires_on: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
}

/// What creating a token takes.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub name: String,
    /// Lifetime in seconds; `None` for a token that does not expire. The API enforces ≥ 60.
    pub ttl_secs: Option<i64>,
}

/// The answer to creating a token: the stored object and the plain token, which exists only here.
#[derive(Clone)]
pub struct CreatedToken {
    pub token: ApiToken,
    pub plain: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken").field("token", &self.token).field("plain", &"<redacted>").finish()
    }
}
