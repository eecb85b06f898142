use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Timestamp;

/// SIP digest credentials, hashed as RFC 2617/7616 MD5 digest authentication needs them.
///
/// These are not (and cannot be) memory-hard hashes: to check a digest response the registrar
/// must compute `MD5(HA1:nonce:…)`, so it needs HA1 = `MD5(login:realm:password)` itself, and a
/// slow or salted hash of the password would be useless to it. HA1 is password-equivalent for
/// SIP, so it is treated as a secret: never serialized, redacted in `Debug`, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    pub login: String,
    /// `MD5(login:realm:password)`, lower-case hex.
    pub ha1: String,
    /// `MD5(login@domain:realm:password)`, lower-case hex: for clients that send the full
    /// address as the digest user name.
    pub ha1b: String,
}

impl DigestCredentials {
    /// Hashes `password`; the plain password is not kept.
    pub fn new(login: &str, password: &str, realm: &str, domain: &str) -> Self {
        DigestCredentials {
            login: login.to_owned(),
            ha1: crate::secret::md5_hex(&format!("{login}:{realm}:{password}")),
            ha1b: crate::secret::md5_hex(&format!("{login}@{domain}:{realm}:{password}")),
        }
    }
}

impl std::fmt::Debug for DigestCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestCredentials").field("login", &self.login).finish_non_exhaustive()
    }
}

/// A SIP connection (trunk): a customer PBX or carrier, authenticated by source IP or by
/// digest credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SipConnection {
    pub uuid: Uuid,
    pub account: Uuid,
    pub name: String,
    /// `<subdomain>.<platform sip domain>`; unique among live connections.
    pub subdomain: Option<String>,
    pub ip: Option<String>,
    pub port: Option<i32>,
    pub is_active: bool,
    pub login: Option<String>,
    #[serde(skip_serializing)]
    pub ha1: Option<String>,
    #[serde(skip_serializing)]
    pub ha1b: Option<String>,
    pub outbound_voice_profile: Option<Uuid>,
    /// Where inbound calls to the connection's numbers go when `ip:port` does not answer:
    /// `ip` or `ip:port` (`[v6]:port`), tried in order.
    pub failover_addresses: Vec<String>,
    /// The codecs the PBX is offered, in preference order (`PCMU`, `PCMA`).
    pub codecs: Vec<String>,
    /// How long each address may ring before the next is tried (the platform's default when
    /// `None`).
    pub ring_timeout_secs: Option<i32>,
    /// The transport to the connection's IP addresses (`ip:port`, the failover addresses). A
    /// credential PBX is called over the connection it registered on, whatever this says.
    pub transport_protocol: SipTransportProtocol,
    /// `SRTP`: calls to the PBX are offered SRTP only, and its calls must offer SRTP (488
    /// otherwise); `null`: as the platform's `[media] srtp` policy says.
    pub encrypted_media: Option<EncryptedMedia>,
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

/// What creating a SIP connection takes.
#[derive(Debug, Clone, Default)]
pub struct NewSipConnection {
    pub name: String,
    pub subdomain: Option<String>,
    pub ip: Option<String>,
    pub port: Option<i32>,
    pub is_active: bool,
    pub credentials: Option<DigestCredentials>,
    pub outbound_voice_profile: Option<Uuid>,
    pub failover_addresses: Vec<String>,
    /// Empty: PCMU then PCMA.
    pub codecs: Vec<String>,
    pub ring_timeout_secs: Option<i32>,
    pub transport_protocol: SipTransportProtocol,
    pub encrypted_media: Option<EncryptedMedia>,
}

/// A partial update; for nullable fields `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct SipConnectionPatch {
    pub name: Option<String>,
    pub subdomain: Option<Option<String>>,
    pub ip: Option<Option<String>>,
    pub port: Option<Option<i32>>,
    pub is_active: Option<bool>,
    pub credentials: Option<Option<DigestCredentials>>,
    pub outbound_voice_profile: Option<Option<Uuid>>,
    pub failover_addresses: Option<Vec<String>>,
    pub codecs: Option<Vec<String>>,
    pub ring_timeout_secs: Option<Option<i32>>,
    pub transport_protocol: Option<SipTransportProtocol>,
    pub encrypted_media: Option<Option<EncryptedMedia>>,
}

/// The transport to a SIP connection's IP addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum SipTransportProtocol {
    #[default]
    Udp,
    Tcp,
}

impl SipTransportProtocol {
    /// As stored, and as the SIP layer names it in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            SipTransportProtocol::Udp => "UDP",
            SipTransportProtocol::Tcp => "TCP",
        }
    }

    /// `udp` or `tcp`, as an outbound request names its transport.
    pub fn sip_name(self) -> &'static str {
        match self {
            SipTransportProtocol::Udp => "udp",
            SipTransportProtocol::Tcp => "tcp",
        }
    }
}

/// Media encryption a SIP connection requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum EncryptedMedia {
    /// SRTP with SDES keys (RFC 4568).
    #[serde(rename = "SRTP")]
    Srtp,
}

impl EncryptedMedia {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptedMedia::Srtp => "SRTP",
        }
    }
}

/// A SIP domain `<name>.<platform sip domain>` whose users register and call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SipDomain {
    pub uuid: Uuid,
    pub account: Uuid,
    /// The label under the platform domain; unique among live domains of all accounts.
    pub name: String,
    /// The app that runs calls to this domain's users, if any.
    pub app: Option<Uuid>,
    /// The domain's own event webhook: the events of its users' calls also go here.
    pub event_url: Option<String>,
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

/// What creating a SIP domain takes.
#[derive(Debug, Clone)]
pub struct NewSipDomain {
    pub name: String,
    pub app: Option<Uuid>,
    pub event_url: Option<String>,
}

/// A partial update.
#[derive(Debug, Clone, Default)]
pub struct SipDomainPatch {
    pub app: Option<Option<Uuid>>,
    pub event_url: Option<Option<String>>,
}

/// A SIP user of a domain (`login@domain`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SipUser {
    pub uuid: Uuid,
    pub account: Uuid,
    pub domain: Uuid,
    /// Unique among the live users of the domain.
    pub login: String,
    /// See [`DigestCredentials`] for why these are MD5.
    #[serde(skip_serializing)]
    pub ha1: String,
    #[serde(skip_serializing)]
    pub ha1b: String,
    pub is_active: bool,
    /// The leased number the user calls out with and is reached on.
    pub tn_lease: Option<Uuid>,
    /// Calls only to other users of the same domain (no numbers, no other domains).
    pub same_domain_calls_only: bool,
    /// The user's own event webhook: the events of the calls it makes and is dialled in
    /// also go here.
    pub event_url: Option<String>,
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

/// What creating a SIP user takes; `credentials.login` is the user's login.
#[derive(Debug, Clone)]
pub struct NewSipUser {
    pub credentials: DigestCredentials,
    pub is_active: bool,
    pub tn_lease: Option<Uuid>,
    pub same_domain_calls_only: bool,
    pub event_url: Option<String>,
}

/// A partial update. New credentials must keep the login (logins are not renamed).
#[derive(Debug, Clone, Default)]
pub struct SipUserPatch {
    pub credentials: Option<DigestCredentials>,
    pub is_active: Option<bool>,
    pub tn_lease: Option<Option<Uuid>>,
    pub same_domain_calls_only: Option<bool>,
    pub event_url: Option<Option<String>>,
}

/// A one-time invitation to set a SIP connection's digest credentials: the account hands the
/// token to whoever runs the PBX, who chooses the login and password without the account ever
/// seeing the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SipInvite {
    pub uuid: Uuid,
    pub account: Uuid,
    pub connection: Uuid,
    pub name: String,
    /// After this the token is refused.
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub expired_on: Timestamp,
    /// When the token was redeemed; a token works once.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub used_on: Option<Timestamp>,
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

/// An invite with its token: the only place the plain token exists.
#[derive(Debug, Clone)]
pub struct CreatedSipInvite {
    pub invite: SipInvite,
    pub token: String,
}
