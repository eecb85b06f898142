//! SIP connections (trunks): `GET/POST /rest/sip/connection`,
//! `GET/PATCH/DELETE /rest/sip/connection/{uuid}`; the numbers whose inbound calls go to a
//! connection: `GET/POST /rest/sip/connection/{uuid}/tnlease {add, remove}`; and one-time
//! invites with which the PBX's owner sets the connection's digest credentials:
//! `GET/POST /rest/sip/connection/{uuid}/invites`, `DELETE …/invites/{invite}`, redeemed
//! (without an account, the token is the credential) at `POST /rest/sip/invite`.
//!
//! A connection authenticates its PBX by source `ip` or by digest credentials (`login` and
//! `password`). Credentials live in the realm `<subdomain>.<platform SIP domain>`, so they need
//! a subdomain; the password is hashed at once (HA1) and never shown again.
//!
//! Calls to the connection's numbers go to its PBX: an IP connection's `ip:port`, then its
//! `failover_addresses` in order (each rings up to `ring_timeout_secs`), a credential
//! connection's registered contact; the PBX is offered `codecs` in that order. Its IP
//! addresses are called over `transport_protocol` (`UDP` or `TCP`); a credential PBX over the
//! connection it registered on (TLS included). `encrypted_media: "SRTP"` makes the connection's
//! media SRTP both ways: its legs are offered SRTP, and its calls must offer it (488 if not).
//! Its calls to other numbers go out through the carrier under its `outbound_voice_profile`.

use std::net::IpAddr;

use axum::Router;
use axum::extract::State;
use axum::routing::{delete, get, post};
use chrono::{DateTime, Duration, Utc};
use opentact_store::{
    DigestCredentials, EncryptedMedia, NewSipConnection, ObjectKind, SipConnection, SipConnectionPatch,
    SipInvite, SipTransportProtocol, TnLease,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Created, IdPath, IdsPath, Page, Paging, Payload, check_name};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::routes::lease::{Assignee, Assignment, assign, assigned, nullable};
use crate::state::ApiState;

/// Longest connection or invite name, in characters.
pub const MAX_CONNECTION_NAME: usize = 100;
/// Shortest SIP password accepted.
pub const MIN_SIP_PASSWORD: usize = 8;
/// Longest SIP password accepted.
pub const MAX_SIP_PASSWORD: usize = 128;
/// Longest SIP login.
pub const MAX_SIP_LOGIN: usize = 64;
/// Most failover addresses a connection may have (besides `ip:port`).
pub const MAX_FAILOVER_ADDRESSES: usize = 4;
/// Longest `ring_timeout_secs`: each address of a connection rings at most this long.
pub const MAX_RING_TIMEOUT_SECS: i32 = 120;
/// The codecs a connection may be offered (what the platform's media speaks).
pub const CONNECTION_CODECS: [&str; 2] = ["PCMU", "PCMA"];
/// How long an invite lasts when the request names no `expired_on`.
pub const DEFAULT_INVITE_DAYS: i64 = 7;
/// Longest an invite may last.
pub const MAX_INVITE_DAYS: i64 = 30;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/sip/connection", get(list).post(create))
        .route("/rest/sip/connection/{uuid}", get(get_one).patch(update).delete(remove))
        .route("/rest/sip/connection/{uuid}/tnlease", get(numbers).post(assign_numbers))
        .route("/rest/sip/connection/{uuid}/invites", get(invites).post(invite))
        .route("/rest/sip/connection/{uuid}/invites/{invite}", delete(revoke))
        .route("/rest/sip/invite", post(redeem))
}

/// A SIP login: what digest clients put in `username`, and the user part of an address.
pub(crate) fn check_login(login: &str) -> Result<String, ApiError> {
    let ok = !login.is_empty()
        && login.len() <= MAX_SIP_LOGIN
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if ok {
        Ok(login.to_owned())
    } else {
        Err(ApiError::invalid(
            "login",
            format!("must be 1 to {MAX_SIP_LOGIN} of letters, digits and . _ - + (got {login:?})"),
        ))
    }
}

pub(crate) fn check_password(password: &str) -> Result<&str, ApiError> {
    let n = password.chars().count();
    if !(MIN_SIP_PASSWORD..=MAX_SIP_PASSWORD).contains(&n) {
        return Err(ApiError::invalid(
            "password",
            format!("must be {MIN_SIP_PASSWORD} to {MAX_SIP_PASSWORD} characters"),
        ));
    }
    Ok(password)
}

/// Which addresses a connection's `ip` may name.
///
/// A connection's address is trusted without credentials for its account's numbers and users,
/// so it must be a host on the internet that the customer runs: not loopback, not a private or
/// link-local network, not shared (CGNAT) space, and not one of the platform's own addresses —
/// any of those would let traffic from the platform's own network (or a neighbour behind the
/// same NAT) speak for the account. An on-premises installation whose PBXs sit on a private
/// network allows those with `sip.allow_private_connection_ips` (the platform's own addresses
/// stay refused).
#[derive(Debug, Clone, Default)]
pub struct ConnectionIps {
    /// Let `ip` name loopback, private, link-local and CGNAT addresses.
    pub allow_private: bool,
    /// The platform's own addresses (its SIP and RTP addresses), never a connection's.
    pub platform: Vec<IpAddr>,
}

impl ConnectionIps {
    /// Why `ip` may not be a connection's address, if it may not.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = ip.to_canonical();
        if self.platform.iter().any(|own| own.to_canonical() == ip) {
            return Some("is this platform's own address");
        }
        if ip.is_unspecified() || ip.is_multicast() || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) {
            return Some("is not a host's address");
        }
        let private = match ip {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                v4.is_loopback()
                    || v4.is_private()
                    || v4.is_link_local()
                    || (a == 100 && (64..128).contains(&b))
            }
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
            }
        };
        (private && !self.allow_private).then_some(
            "is a loopback, private, link-local or shared address (allowed only with sip.allow_private_connection_ips)",
        )
    }
}

fn check_ip(state: &ApiState, ip: &str) -> Result<String, ApiError> {
    let parsed = ip
        .trim()
        .parse::<IpAddr>()
        .map_err(|_| ApiError::invalid("ip", format!("{ip:?} is not an IPv4 or IPv6 address")))?;
    if let Some(reason) = state.connection_ips.refusal(parsed) {
        return Err(ApiError::invalid(
            "ip",
            format!("{parsed} {reason}: a connection's ip must be the public address of your PBX"),
        ));
    }
    Ok(parsed.to_string())
}

fn check_port(port: i32) -> Result<i32, ApiError> {
    if (1..=65535).contains(&port) {
        Ok(port)
    } else {
        Err(ApiError::invalid("port", format!("must be 1 to 65535, got {port}")))
    }
}

/// A failover address: `ip` or `ip:port` (`[v6]:port`), its IP under the same policy as `ip`;
/// stored as written canonically (`ip:port`, port 5060 when none is given).
fn check_address(state: &ApiState, address: &str) -> Result<String, ApiError> {
    let text = address.trim();
    let (ip, port) = match text.parse::<std::net::SocketAddr>() {
        Ok(socket) => (socket.ip(), socket.port()),
        Err(_) => match text.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => (ip, 5060),
            Err(_) => {
                return Err(ApiError::invalid(
                    "failover_addresses",
                    format!("{address:?} is not an IP address or ip:port ([v6]:port for IPv6)"),
                ));
            }
        },
    };
    if port == 0 {
        return Err(ApiError::invalid(
            "failover_addresses",
            format!("{address:?}: the port must be 1 to 65535"),
        ));
    }
    if let Some(reason) = state.connection_ips.refusal(ip) {
        return Err(ApiError::invalid(
            "failover_addresses",
            format!("{ip} {reason}: a failover address must be a public address of your PBX"),
        ));
    }
    Ok(std::net::SocketAddr::new(ip, port).to_string())
}

fn check_addresses(state: &ApiState, addresses: &[String]) -> Result<Vec<String>, ApiError> {
    if addresses.len() > MAX_FAILOVER_ADDRESSES {
        return Err(ApiError::invalid(
            "failover_addresses",
            format!("at most {MAX_FAILOVER_ADDRESSES} addresses, got {}", addresses.len()),
        ));
    }
    addresses.iter().map(|address| check_address(state, address)).collect()
}

/// Codec names, upper-cased: known, none twice, at least one.
fn check_codecs(codecs: &[String]) -> Result<Vec<String>, ApiError> {
    let mut checked: Vec<String> = Vec::new();
    for codec in codecs {
        let name = codec.trim().to_ascii_uppercase();
        if !CONNECTION_CODECS.contains(&name.as_str()) {
            return Err(ApiError::invalid(
                "codecs",
                format!(
                    "{codec:?} is not a codec the platform offers (one of {})",
                    CONNECTION_CODECS.join(", ")
                ),
            ));
        }
        if checked.contains(&name) {
            return Err(ApiError::invalid("codecs", format!("{name} is named twice")));
        }
        checked.push(name);
    }
    if checked.is_empty() {
        return Err(ApiError::invalid("codecs", "name at least one codec, in preference order"));
    }
    Ok(checked)
}

/// `transport_protocol`: `UDP` or `TCP`, any case.
fn check_transport(name: &str) -> Result<SipTransportProtocol, ApiError> {
    match name.to_ascii_uppercase().as_str() {
        "UDP" => Ok(SipTransportProtocol::Udp),
        "TCP" => Ok(SipTransportProtocol::Tcp),
        "TLS" => Err(ApiError::invalid(
            "transport_protocol",
            "a connection's IP addresses are called over UDP or TCP; for TLS give the connection \
             credentials and have the PBX register over TLS (port 5061): its calls then go over that \
             connection",
        )),
        _ => Err(ApiError::invalid("transport_protocol", format!("UDP or TCP, got {name:?}"))),
    }
}

/// `encrypted_media`: `SRTP`, any case.
fn check_encrypted_media(name: &str) -> Result<EncryptedMedia, ApiError> {
    match name.to_ascii_uppercase().as_str() {
        "SRTP" => Ok(EncryptedMedia::Srtp),
        _ => Err(ApiError::invalid("encrypted_media", format!("SRTP or null, got {name:?}"))),
    }
}

fn check_ring_timeout(secs: i32) -> Result<i32, ApiError> {
    if (1..=MAX_RING_TIMEOUT_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(ApiError::invalid(
            "ring_timeout_secs",
            format!("must be 1 to {MAX_RING_TIMEOUT_SECS}, got {secs}"),
        ))
    }
}

/// A DNS label under the platform SIP domain (a connection's subdomain, a SIP domain's name),
/// lower-cased.
pub(crate) fn check_label(field: &str, label: &str) -> Result<String, ApiError> {
    let s = label.trim().to_ascii_lowercase();
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s)
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be a DNS label: 1-63 of a-z, 0-9 and '-' (not at the ends), got {label:?}"),
        ))
    }
}

fn check_subdomain(subdomain: &str) -> Result<String, ApiError> {
    check_label("subdomain", subdomain)
}

/// The digest credentials of a connection whose realm is `<subdomain>.<sip_domain>`.
fn credentials(state: &ApiState, subdomain: &str, login: &str, password: &str) -> DigestCredentials {
    let realm = format!("{subdomain}.{}", state.sip_domain);
    DigestCredentials::new(login, password, &realm, &realm)
}

/// A connection as the API shows it: the stored object and the SIP domain a PBX registers
/// to or sends to, when it has a subdomain.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    #[serde(flatten)]
    pub connection: SipConnection,
    /// `<subdomain>.<platform SIP domain>`: the realm of the credentials.
    pub sip_domain: Option<String>,
}

fn view(state: &ApiState, connection: SipConnection) -> ConnectionView {
    let sip_domain = connection.subdomain.as_ref().map(|s| format!("{s}.{}", state.sip_domain));
    ConnectionView { connection, sip_domain }
}

#[utoipa::path(
    get,
    operation_id = "sip_connection_list",
    path = "/rest/sip/connection",
    tag = "sip_connection",
    summary = "The account's SIP connections",
    params(crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<ConnectionView>>), doc::ApiErrors)
)]
async fn list(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<ConnectionView>>, ApiError> {
    let page = state.repo.list_connections(auth.account, paging.params()?).await?;
    Ok(Payload(page.map(|c| view(&state, c))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")]
    pub subdomain: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<i32>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._+-]{1,64}$")]
    pub login: Option<String>,
    #[serde(default)]
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
    #[serde(default)]
    pub outbound_voice_profile: Option<Uuid>,
    /// Tried in order after `ip:port` when an inbound call gets no answer: `ip` or `ip:port`.
    #[serde(default)]
    #[schema(max_items = 4)]
    pub failover_addresses: Option<Vec<String>>,
    /// Offered to the PBX in this order; default `["PCMU", "PCMA"]`.
    #[serde(default)]
    pub codecs: Option<Vec<String>>,
    /// How long each address rings before the next is tried (default 30).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 120)]
    pub ring_timeout_secs: Option<i32>,
    /// The transport to `ip:port` and the failover addresses: `UDP` (default) or `TCP`.
    #[serde(default)]
    #[schema(example = "UDP")]
    pub transport_protocol: Option<String>,
    /// `SRTP`: the connection's media is SRTP both ways; `null` (default): as the platform's
    /// policy says.
    #[serde(default)]
    #[schema(example = "SRTP")]
    pub encrypted_media: Option<String>,
}

/// Maps the store's `NotFound` for the profile to a 422 on its field.
fn profile_reference(e: opentact_store::StoreError) -> ApiError {
    ApiError::reference(e, ObjectKind::SipConnection, "outbound_voice_profile")
}

#[utoipa::path(
    post,
    operation_id = "sip_connection_create",
    path = "/rest/sip/connection",
    tag = "sip_connection",
    summary = "Create a SIP connection (by IP, or digest credentials under a subdomain)",
    request_body = NewConnection,
    responses((status = 201, description = "Created", body = doc::Envelope<ConnectionView>), doc::ApiErrors)
)]
async fn create(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<NewConnection>,
) -> Result<Created<ConnectionView>, ApiError> {
    let subdomain = body.subdomain.as_deref().map(check_subdomain).transpose()?;
    let credentials = match (&body.login, &body.password) {
        (None, None) => None,
        (Some(login), Some(password)) => {
            let login = check_login(login)?;
            let password = check_password(password)?;
            let Some(subdomain) = subdomain.as_deref() else {
                return Err(ApiError::invalid(
                    "subdomain",
                    "digest credentials need a subdomain: their realm is <subdomain>.<platform SIP domain>",
                ));
            };
            Some(credentials(&state, subdomain, &login, password))
        }
        (Some(_), None) => return Err(ApiError::invalid("password", "a login needs a password")),
        (None, Some(_)) => return Err(ApiError::invalid("login", "a password needs a login")),
    };
    let new = NewSipConnection {
        name: check_name("name", &body.name, MAX_CONNECTION_NAME)?,
        subdomain,
        ip: body.ip.as_deref().map(|ip| check_ip(&state, ip)).transpose()?,
        port: body.port.map(check_port).transpose()?,
        is_active: body.is_active.unwrap_or(true),
        credentials,
        outbound_voice_profile: body.outbound_voice_profile,
        failover_addresses: check_addresses(&state, body.failover_addresses.as_deref().unwrap_or_default())?,
        codecs: match &body.codecs {
            Some(codecs) => check_codecs(codecs)?,
            None => Vec::new(),
        },
        ring_timeout_secs: body.ring_timeout_secs.map(check_ring_timeout).transpose()?,
        transport_protocol: body
            .transport_protocol
            .as_deref()
            .map(check_transport)
            .transpose()?
            .unwrap_or_default(),
        encrypted_media: body.encrypted_media.as_deref().map(check_encrypted_media).transpose()?,
    };
    let created = state.repo.create_connection(auth.account, new).await.map_err(profile_reference)?;
    Ok(Created(view(&state, created)))
}

#[utoipa::path(
    get,
    operation_id = "sip_connection_get_one",
    path = "/rest/sip/connection/{uuid}",
    tag = "sip_connection",
    summary = "A SIP connection",
    params(("uuid" = uuid::Uuid, Path, description = "The connection's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<ConnectionView>), doc::ApiErrors)
)]
async fn get_one(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<ConnectionView>, ApiError> {
    match state.repo.get_connection(auth.account, id).await? {
        Some(c) => Ok(Payload(view(&state, c))),
        None => Err(ApiError::not_found(ObjectKind::SipConnection, id)),
    }
}

/// The PATCH body; `null` clears a nullable field (`login: null` removes the credentials).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionUpdate {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(pattern = "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")]
    pub subdomain: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub ip: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<Option<i32>>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(pattern = "^[A-Za-z0-9._+-]{1,64}$")]
    pub login: Option<Option<String>>,
    #[serde(default)]
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub outbound_voice_profile: Option<Option<Uuid>>,
    /// Replaces the list (`[]` clears it).
    #[serde(default)]
    #[schema(max_items = 4)]
    pub failover_addresses: Option<Vec<String>>,
    #[serde(default)]
    pub codecs: Option<Vec<String>>,
    /// `null` goes back to the default.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 1, maximum = 120)]
    pub ring_timeout_secs: Option<Option<i32>>,
    /// `UDP` or `TCP`.
    #[serde(default)]
    pub transport_protocol: Option<String>,
    /// `SRTP`, or `null` to go back to the platform's policy.
    #[serde(default, deserialize_with = "nullable")]
    pub encrypted_media: Option<Option<String>>,
}

#[utoipa::path(
    patch,
    operation_id = "sip_connection_update",
    path = "/rest/sip/connection/{uuid}",
    tag = "sip_connection",
    summary = "Change a SIP connection (null clears a field)",
    params(("uuid" = uuid::Uuid, Path, description = "The connection's id")),
    request_body = ConnectionUpdate,
    responses((status = 200, description = "OK", body = doc::Envelope<ConnectionView>), doc::ApiErrors)
)]
async fn update(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ConnectionUpdate>,
) -> Result<Payload<ConnectionView>, ApiError> {
    let current = state
        .repo
        .get_connection(auth.account, id)
        .await?
        .ok_or(ApiError::not_found(ObjectKind::SipConnection, id))?;
    let subdomain = match body.subdomain {
        Some(Some(s)) => Some(Some(check_subdomain(&s)?)),
        other => other,
    };
    let new_subdomain = subdomain.clone().unwrap_or(current.subdomain.clone());
    let subdomain_changed = new_subdomain != current.subdomain;
    // The HA1 is a hash in the subdomain's realm: new credentials are hashed in the new realm,
    // and kept credentials survive only if the realm stays.
    let credentials = match (body.login, body.password) {
        (Some(None), None) => Some(None),
        (Some(None), Some(_)) => {
            return Err(ApiError::invalid("password", "cannot set a password while removing the login"));
        }
        (login, Some(password)) => {
            let login = match login.flatten().or(current.login.clone()) {
                Some(login) => check_login(&login)?,
                None => return Err(ApiError::invalid("login", "a password needs a login")),
            };
            let password = check_password(&password)?;
            let Some(subdomain) = new_subdomain.as_deref() else {
                return Err(ApiError::invalid(
                    "subdomain",
                    "digest credentials need a subdomain: their realm is <subdomain>.<platform SIP domain>",
                ));
            };
            Some(Some(credentials(&state, subdomain, &login, password)))
        }
        (Some(Some(_)), None) => {
            return Err(ApiError::invalid("password", "a new login needs its password"));
        }
        (None, None) if subdomain_changed && current.login.is_some() => {
            return Err(ApiError::invalid(
                "password",
                "changing the subdomain changes the credentials' realm: send the password again (or login: null)",
            ));
        }
        (None, None) => None,
    };
    let patch = SipConnectionPatch {
        name: body.name.as_deref().map(|n| check_name("name", n, MAX_CONNECTION_NAME)).transpose()?,
        subdomain,
        ip: match body.ip {
            Some(Some(ip)) => Some(Some(check_ip(&state, &ip)?)),
            other => other,
        },
        port: match body.port {
            Some(Some(port)) => Some(Some(check_port(port)?)),
            other => other,
        },
        is_active: body.is_active,
        credentials,
        outbound_voice_profile: body.outbound_voice_profile,
        failover_addresses: body
            .failover_addresses
            .as_deref()
            .map(|a| check_addresses(&state, a))
            .transpose()?,
        codecs: body.codecs.as_deref().map(check_codecs).transpose()?,
        ring_timeout_secs: match body.ring_timeout_secs {
            Some(Some(secs)) => Some(Some(check_ring_timeout(secs)?)),
            other => other,
        },
        transport_protocol: body.transport_protocol.as_deref().map(check_transport).transpose()?,
        encrypted_media: match body.encrypted_media {
            Some(Some(name)) => Some(Some(check_encrypted_media(&name)?)),
            Some(None) => Some(None),
            None => None,
        },
    };
    let updated = state.repo.update_connection(auth.account, id, patch).await.map_err(profile_reference)?;
    Ok(Payload(view(&state, updated)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub uuid: Uuid,
    pub deleted: bool,
}

#[utoipa::path(
    delete,
    operation_id = "sip_connection_remove",
    path = "/rest/sip/connection/{uuid}",
    tag = "sip_connection",
    summary = "Delete a SIP connection",
    params(("uuid" = uuid::Uuid, Path, description = "The connection's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<Deleted>), doc::ApiErrors)
)]
async fn remove(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<Deleted>, ApiError> {
    state.repo.delete_connection(auth.account, id).await?;
    Ok(Payload(Deleted { uuid: id, deleted: true }))
}

#[utoipa::path(
    get,
    operation_id = "sip_connection_numbers",
    path = "/rest/sip/connection/{uuid}/tnlease",
    tag = "sip_connection",
    summary = "The numbers whose inbound calls go to the connection",
    params(("uuid" = uuid::Uuid, Path, description = "The connection's id"), crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<TnLease>>), doc::ApiErrors)
)]
async fn numbers(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<TnLease>>, ApiError> {
    assigned(&state, auth.account, Assignee::Connection(id), paging).await
}

#[utoipa::path(
    post,
    operation_id = "sip_connection_assign_numbers",
    path = "/rest/sip/connection/{uuid}/tnlease",
    tag = "sip_connection",
    summary = "Assign numbers to the connection and take them off it",
    params(("uuid" = uuid::Uuid, Path, description = "The connection's id")),
    request_body = Assignment,
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<TnLease>>), doc::ApiErrors)
)]
async fn assign_numbers(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<Assignment>,
) -> Result<Payload<Page<TnLease>>, ApiError> {
    assign(&state, auth.account, Assignee::Connection(id), body).await
}

// ---------------------------------------------------------------------------------------------
// invites

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvite {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// ISO-8601; default in [`DEFAULT_INVITE_DAYS`] days.
    #[serde(default)]
    pub expired_on: Option<DateTime<Utc>>,
}

/// A new invite: the only answer that holds its token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedInvite {
    #[serde(flatten)]
    pub invite: SipInvite,
    /// Give this to whoever sets up the PBX; it works once, until `expired_on`.
    pub token: String,
}

#[utoipa::path(
    post,
    operation_id = "sip_connection_invite",
    path = "/rest/sip/connection/{uuid}/invites",
    tag = "sip_connection",
    summary = "Create a one-time invite to set the connection's credentials",
    params(("uuid" = uuid::Uuid, Path, description = "The connection's id")),
    request_body = NewInvite,
    responses((status = 201, description = "Created", body = doc::Envelope<CreatedInvite>), doc::ApiErrors)
)]
async fn invite(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<NewInvite>,
) -> Result<Created<CreatedInvite>, ApiError> {
    let name = check_name("name", &body.name, MAX_CONNECTION_NAME)?;
    let now = opentact_store::now();
    let expired_on = body.expired_on.unwrap_or(now + Duration::days(DEFAULT_INVITE_DAYS));
    if expired_on <= now || expired_on > now + Duration::days(MAX_INVITE_DAYS) {
        return Err(ApiError::invalid(
            "expired_on",
            format!("must be in the future and at most {MAX_INVITE_DAYS} days away"),
        ));
    }
    let connection = state
        .repo
        .get_connection(auth.account, id)
        .await?
        .ok_or(ApiError::not_found(ObjectKind::SipConnection, id))?;
    if connection.subdomain.is_none() {
        return Err(ApiError::invalid(
            "subdomain",
            "the connection has no subdomain, so it cannot take digest credentials: set one first",
        ));
    }
    let created = state.repo.create_invite(auth.account, id, name, expired_on).await?;
    Ok(Created(CreatedInvite { invite: created.invite, token: created.token }))
}

#[utoipa::path(
    get,
    operation_id = "sip_connection_invites",
    path = "/rest/sip/connection/{uuid}/invites",
    tag = "sip_connection",
    summary = "The connection's invites",
    params(("uuid" = uuid::Uuid, Path, description = "The connection's id"), crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<SipInvite>>), doc::ApiErrors)
)]
async fn invites(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<SipInvite>>, ApiError> {
    Ok(Payload(state.repo.list_invites(auth.account, id, paging.params()?).await?))
}

#[utoipa::path(
    delete,
    operation_id = "sip_connection_revoke",
    path = "/rest/sip/connection/{uuid}/invites/{invite}",
    tag = "sip_connection",
    summary = "Revoke an invite",
    params(("uuid" = uuid::Uuid, Path, description = "The connection's id"), ("invite" = uuid::Uuid, Path, description = "The invite's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<Deleted>), doc::ApiErrors)
)]
async fn revoke(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdsPath(connection, invite): IdsPath,
) -> Result<Payload<Deleted>, ApiError> {
    state.repo.delete_invite(auth.account, connection, invite).await?;
    Ok(Payload(Deleted { uuid: invite, deleted: true }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redeem {
    #[schema(min_length = 1, max_length = 256)]
    pub token: String,
    #[schema(pattern = "^[A-Za-z0-9._+-]{1,64}$")]
    pub login: String,
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

/// What the redeemer needs to configure the PBX.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Redeemed {
    pub connection: Uuid,
    pub login: String,
    /// The domain (and digest realm) to send calls to.
    pub sip_domain: String,
}

#[utoipa::path(
    post,
    operation_id = "sip_connection_redeem",
    path = "/rest/sip/invite",
    tag = "sip_connection",
    summary = "Redeem an invite: set the connection's login and password (the token is the credential)",
    request_body = Redeem,
    security(()),
    responses((status = 200, description = "OK", body = doc::Envelope<Redeemed>), doc::ApiErrors)
)]
async fn redeem(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<Redeem>,
) -> Result<Payload<Redeemed>, ApiError> {
    // Checked before the token is spent, so a typo does not burn the invite.
    let login = check_login(&body.login)?;
    let password = check_password(&body.password)?;
    let refused = || ApiError::NotFound { kind: ObjectKind::SipInvite.as_str(), id: "(token)".to_owned() };
    if body.token.is_empty() || body.token.len() > 256 {
        return Err(refused());
    }
    let invite = state.repo.use_invite(&body.token).await?.ok_or_else(refused)?;
    let connection = state
        .repo
        .get_connection(invite.account, invite.connection)
        .await?
        .ok_or(ApiError::not_found(ObjectKind::SipConnection, invite.connection))?;
    let Some(subdomain) = connection.subdomain.clone() else {
        return Err(ApiError::invalid(
            "token",
            "the connection no longer has a subdomain; ask for a new invite",
        ));
    };
    let patch = SipConnectionPatch {
        credentials: Some(Some(credentials(&state, &subdomain, &login, password))),
        ..SipConnectionPatch::default()
    };
    state.repo.update_connection(invite.account, invite.connection, patch).await?;
    tracing::info!(connection = %invite.connection, invite = %invite.uuid, "SIP invite redeemed");
    Ok(Payload(Redeemed {
        connection: invite.connection,
        login,
        sip_domain: format!("{subdomain}.{}", state.sip_domain),
    }))
}
