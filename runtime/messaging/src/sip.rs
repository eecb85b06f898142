//! SIP MESSAGE (RFC 3428) as a messaging carrier: text between the platform's SIP users and
//! SIP connections, and between them and telephone numbers.
//!
//! Inbound (a [`MessageHandler`] on the SIP endpoint, which has already authenticated the
//! sender like a call and checked the body: text/plain, at most 1300 bytes):
//! - **who**: a SIP user (digest) is its domain's account; a SIP connection by credentials is
//!   its account, by address the accounts of its active connections at that address. Anything
//!   else (a carrier trunk) is refused 403: carriers' SMS arrive over SMPP.
//! - **to a SIP user** `login@<domain>.<platform domain>` of the same account: sent as a
//!   MESSAGE to each of the user's registered contacts; 200 when one took it, else the
//!   recipient's refusal; 404 when there is no such user in the account (another account's
//!   users are as unknown as missing ones), 480 when the user is not registered. A user kept to
//!   its domain (`same_domain_calls_only`) messages only that domain's users (403).
//! - **to a number**: an outbound SMS of the account through the common submit path
//!   ([`SmsSubmit`]): from a SIP user's own number (`tn_lease`), or from a connection's From
//!   number; the submit path checks the number is the account's with SMS enabled and stores the
//!   message (the same `sms.*` events as `POST /rest/sms`; its origin, the SIP user or the
//!   connection, is logged). A connection sends only from a number of its own account, as it
//!   calls only its own account's numbers. 202 Accepted; a refusal is a 4xx with its reason in a
//!   `Warning` header.
//!
//! Outbound ([`SipMessages::deliver_sms`]): an inbound SMS to a number the account reaches on
//! SIP — the number of a SIP user (its `tn_lease`), else a number on a SIP connection — goes to
//! that user's registered phones, or to the connection's PBX (`ip:port`), as a MESSAGE.
//!
//! User-to-user MESSAGEs are not stored (like the calls between users, they are logged, in a
//! `message` span with the call's fields: Call-ID, from, to, source).

use std::sync::Arc;

use async_trait::async_trait;
use opentact_control::SmsOrigin;
use opentact_sip::address::{domain_label, tn_of};
use opentact_sip::message::MAX_MESSAGE_BODY;
use opentact_sip::{Caller, IncomingMessage, MessageHandler, MessageReply, OutboundMessage, SipEndpoint};
use opentact_store::{Repository, SipUser, StoreError, TnLease};
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

/// Why the submit path refused an SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRefusal {
    /// The SIP status to answer with (403 the number may not send, 488 the text cannot be
    /// sent, 503 messaging is not running).
    pub status: u16,
    /// What is wrong and what to do, as the REST API would say it.
    pub reason: String,
}

/// Queues an outbound SMS of an account: the common submit path the REST API uses too (the
/// server wires it), which checks the number and stores the message.
#[async_trait]
pub trait SmsSubmit: Send + Sync {
    /// The stored message's id, or why it was refused.
    async fn submit(
        &self,
        account: Uuid,
        from_tn: i64,
        to: i64,
        text: &str,
        origin: SmsOrigin,
    ) -> Result<Uuid, SmsRefusal>;
}

/// Who sent an inbound MESSAGE, once known to the store.
#[derive(Debug)]
enum Sender {
    User {
        account: Uuid,
        domain: String,
        label: String,
        user: Box<SipUser>,
    },
    /// A SIP connection (by credentials: one; by address: the active connections at that
    /// address), as (account, connection) pairs.
    Connection {
        connections: Vec<(Uuid, Uuid)>,
    },
}

/// What became of an inbound SMS offered to the SIP side ([`SipMessages::deliver_sms`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipDelivery {
    /// The number is neither a SIP user's nor on a SIP connection: deliver it another way.
    NotAssigned,
    /// The recipient took it (2xx).
    Delivered {
        /// `login@domain`, or the connection's `ip:port`.
        to: String,
    },
    /// It was for the SIP side, which did not take it.
    Failed {
        /// As in `Delivered`.
        to: String,
        /// Why (the SIP status, not registered, …).
        reason: String,
    },
}

/// SIP MESSAGE routing and delivery.
pub struct SipMessages {
    store: Arc<dyn Repository>,
    endpoint: Arc<SipEndpoint>,
    /// The platform's SIP domain (`sip.domain`).
    sip_domain: String,
    sms: Option<Arc<dyn SmsSubmit>>,
}

impl std::fmt::Debug for SipMessages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipMessages").field("sip_domain", &self.sip_domain).finish_non_exhaustive()
    }
}

impl SipMessages {
    /// Routing over `store`, delivering through `endpoint`; messages to numbers go to `sms`
    /// (refused 503 without it).
    pub fn new(
        store: Arc<dyn Repository>,
        endpoint: Arc<SipEndpoint>,
        sip_domain: &str,
        sms: Option<Arc<dyn SmsSubmit>>,
    ) -> Self {
        SipMessages { store, endpoint, sip_domain: sip_domain.to_ascii_lowercase(), sms }
    }

    /// Deliver an inbound SMS (`from` → the account's number `lease`) to the SIP side when the
    /// number is assigned there: a SIP user whose number it is (`tn_lease`) gets it on its
    /// registered phones; otherwise a number on an active SIP connection with an address goes to
    /// that PBX as `sip:<number>@<ip>:<port>`. The MESSAGE's From is `sip:<from>@<platform
    /// domain>`. A text longer than a MESSAGE may carry (1300 bytes) fails.
    pub async fn deliver_sms(
        &self,
        lease: &TnLease,
        from: &str,
        text: &str,
    ) -> Result<SipDelivery, StoreError> {
        let sender = format!("sip:{from}@{}", self.sip_domain);
        if let Some((domain, user)) = self.user_of_lease(lease).await? {
            let to = format!("{}@{domain}", user.login);
            if text.len() > MAX_MESSAGE_BODY {
                return Ok(SipDelivery::Failed { to, reason: too_long(text) });
            }
            let reply = self.to_user(&domain, &user.login, &sender, text).await;
            info!(tn = lease.tn, %to, status = reply.status, "inbound SMS to a SIP user");
            return Ok(match reply.status {
                200..=299 => SipDelivery::Delivered { to },
                status => SipDelivery::Failed {
                    to,
                    reason: reply.reason.unwrap_or_else(|| format!("the phone answered {status}")),
                },
            });
        }
        let Some(connection) = lease.sip_connection else { return Ok(SipDelivery::NotAssigned) };
        let Some(connection) = self.store.get_connection(lease.account, connection).await? else {
            return Ok(SipDelivery::NotAssigned);
        };
        let address = connection
            .ip
            .as_deref()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .filter(|_| connection.is_active)
            .map(|ip| {
                std::net::SocketAddr::new(
                    ip,
                    connection.port.and_then(|p| u16::try_from(p).ok()).unwrap_or(5060),
                )
            });
        let Some(address) = address else {
            return Ok(SipDelivery::Failed {
                to: connection.name,
                reason: "the SIP connection is inactive or has no IP address to send to".to_owned(),
            });
        };
        let to = address.to_string();
        if text.len() > MAX_MESSAGE_BODY {
            return Ok(SipDelivery::Failed { to, reason: too_long(text) });
        }
        let uri = format!("sip:{}@{address}", lease.tn);
        let message = OutboundMessage {
            to: uri.clone(),
            uri,
            destination: Some(address),
            transport: "udp",
            from: sender,
            text: text.to_owned(),
        };
        let status = match self.endpoint.send_message(message).await {
            Ok(status) => status,
            Err(error) => {
                return Ok(SipDelivery::Failed { to, reason: error.to_string() });
            }
        };
        info!(tn = lease.tn, %to, status, "inbound SMS to a SIP connection");
        Ok(match status {
            200..=299 => SipDelivery::Delivered { to },
            status => SipDelivery::Failed { to, reason: format!("the PBX answered {status}") },
        })
    }

    /// The SIP user (with its domain's full name) whose number `lease` is.
    async fn user_of_lease(&self, lease: &TnLease) -> Result<Option<(String, SipUser)>, StoreError> {
        Ok(self
            .store
            .sip_user_of_lease(lease.account, lease.uuid)
            .await?
            .map(|(domain, user)| (format!("{domain}.{}", self.sip_domain), user)))
    }

    /// Who sent `message`; `Err` is the refusal.
    async fn sender(&self, message: &IncomingMessage) -> Result<Sender, MessageReply> {
        let unavailable = |error: StoreError| {
            warn!(%error, "MESSAGE routing: the store is unavailable");
            MessageReply::refused(503, "routing unavailable")
        };
        match &message.caller {
            Caller::User { domain, login } => {
                let refused =
                    || MessageReply::refused(403, format!("{login}@{domain} is not a user of this platform"));
                let label = domain_label(domain, &self.sip_domain).ok_or_else(refused)?.to_owned();
                let row =
                    self.store.domain_by_name(&label).await.map_err(unavailable)?.ok_or_else(refused)?;
                let user = self
                    .store
                    .sip_user_by_login(&label, login)
                    .await
                    .map_err(unavailable)?
                    .filter(|user| user.is_active)
                    .ok_or_else(refused)?;
                Ok(Sender::User { account: row.account, domain: domain.clone(), label, user: Box::new(user) })
            }
            Caller::Connection { realm, .. } => {
                let refused = || MessageReply::refused(403, format!("no SIP connection {realm}"));
                let label = domain_label(&realm.to_ascii_lowercase(), &self.sip_domain)
                    .ok_or_else(refused)?
                    .to_owned();
                let connection = self
                    .store
                    .connection_by_subdomain(&label)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(refused)?;
                Ok(Sender::Connection { connections: vec![(connection.account, connection.uuid)] })
            }
            Caller::Trunk => {
                let ip = message.source.ip().to_string();
                let connections = self.store.connections_by_ip(&ip).await.map_err(unavailable)?;
                let connections: Vec<(Uuid, Uuid)> =
                    connections.iter().filter(|c| c.is_active).map(|c| (c.account, c.uuid)).collect();
                if connections.is_empty() {
                    return Err(MessageReply::refused(
                        403,
                        "MESSAGE is taken from SIP users and SIP connections only; carriers' SMS arrive over SMPP",
                    ));
                }
                Ok(Sender::Connection { connections })
            }
        }
    }

    async fn route(&self, message: IncomingMessage) -> MessageReply {
        let sender = match self.sender(&message).await {
            Ok(sender) => sender,
            Err(reply) => return reply,
        };
        let target_user = message.request_uri.user.clone().unwrap_or_default();
        let target_host = message.request_uri.host.to_ascii_lowercase();
        // To a SIP user of a domain of the sender's account; `12025550100@acme.<domain>` is a
        // number unless the domain has a user of that name.
        let label = domain_label(&target_host, &self.sip_domain);
        let user_target = match label {
            Some(label) if tn_of(&target_user).is_none() || self.user_exists(label, &target_user).await => {
                Some(label)
            }
            _ => None,
        };
        if let Some(label) = user_target {
            let unknown = || MessageReply::refused(404, format!("no SIP user {target_user}@{target_host}"));
            if let Sender::User { label: own, user, domain, .. } = &sender
                && user.same_domain_calls_only
                && own.as_str() != label
            {
                return MessageReply::refused(
                    403,
                    format!("{}@{domain} may only message users of {domain}", user.login),
                );
            }
            let Ok(Some(domain)) = self.store.domain_by_name(label).await else { return unknown() };
            let allowed = match &sender {
                Sender::User { account, .. } => *account == domain.account,
                Sender::Connection { connections } => connections.iter().any(|(a, _)| *a == domain.account),
            };
            if !allowed || !self.user_exists(label, &target_user).await {
                return unknown();
            }
            let from = match &sender {
                Sender::User { domain, user, .. } => format!("sip:{}@{domain}", user.login),
                Sender::Connection { .. } => {
                    format!("sip:{}@{}", message.from.user.as_deref().unwrap_or("anonymous"), self.sip_domain)
                }
            };
            let reply = self.to_user(&target_host, &target_user, &from, &message.text).await;
            info!(
                status = reply.status,
                reason = reply.reason.as_deref().unwrap_or(""),
                "MESSAGE to a SIP user"
            );
            return reply;
        }
        // To a number: an SMS from the sender's number.
        let Some(to) = tn_of(&target_user) else {
            return MessageReply::refused(
                404,
                format!("{target_user}@{target_host} is neither a SIP user of this account nor a number"),
            );
        };
        let (account, from_tn, origin) = match &sender {
            Sender::User { account, domain, user, .. } => {
                if user.same_domain_calls_only {
                    return MessageReply::refused(
                        403,
                        format!("{}@{domain} may only message users of {domain}", user.login),
                    );
                }
                let lease = match user.tn_lease {
                    Some(lease) => self.store.get_lease(*account, lease).await.ok().flatten(),
                    None => None,
                };
                let Some(lease) = lease.filter(|lease| lease.released_on.is_none()) else {
                    return MessageReply::refused(
                        403,
                        format!(
                            "{}@{domain} has no number to send SMS from: give the SIP user a tn_lease with SMS enabled",
                            user.login
                        ),
                    );
                };
                (*account, lease.tn, SmsOrigin::SipUser { user: user.uuid })
            }
            Sender::Connection { connections } => {
                let from = message.from.user.as_deref().unwrap_or_default();
                let lease = match tn_of(from) {
                    Some(tn) => match self.store.lease_by_tn(tn).await {
                        Ok(lease) => lease,
                        Err(error) => {
                            warn!(%error, "MESSAGE routing: the store is unavailable");
                            return MessageReply::refused(503, "routing unavailable");
                        }
                    },
                    None => None,
                };
                // A connection sends only from its own account's numbers, as it calls only them.
                let own = lease.filter(|lease| lease.released_on.is_none()).and_then(|lease| {
                    connections
                        .iter()
                        .find(|(account, _)| *account == lease.account)
                        .map(|(_, c)| (lease, *c))
                });
                match own {
                    Some((lease, connection)) => {
                        (lease.account, lease.tn, SmsOrigin::SipConnection { connection })
                    }
                    None => {
                        return MessageReply::refused(
                            403,
                            format!(
                                "the From number {from:?} is not a number this account leases: send SMS from one of its numbers"
                            ),
                        );
                    }
                }
            }
        };
        let Some(sms) = &self.sms else {
            return MessageReply::refused(
                503,
                "messaging is not running on this server, so no SMS can be sent",
            );
        };
        match sms.submit(account, from_tn, to, &message.text, origin).await {
            Ok(id) => {
                info!(sms = %id, from = from_tn, to, "MESSAGE to a number queued as an SMS");
                MessageReply::accepted()
            }
            Err(refusal) => {
                info!(status = refusal.status, reason = %refusal.reason, "MESSAGE to a number refused");
                MessageReply::refused(refusal.status, refusal.reason)
            }
        }
    }

    /// Whether the domain `label` has the active user `login`.
    async fn user_exists(&self, label: &str, login: &str) -> bool {
        matches!(self.store.sip_user_by_login(label, login).await, Ok(Some(user)) if user.is_active)
    }

    /// Send `text` to every registered contact of `login@domain` at once: 200 when one took
    /// it, 480 when none is registered, else the first refusal (408 when none answered).
    async fn to_user(&self, domain: &str, login: &str, from: &str, text: &str) -> MessageReply {
        let contacts = self.endpoint.registrar().contacts(domain, login);
        if contacts.is_empty() {
            return MessageReply::refused(480, format!("{login}@{domain} is not registered"));
        }
        let mut sends = tokio::task::JoinSet::new();
        for binding in contacts {
            let endpoint = self.endpoint.clone();
            let message = OutboundMessage {
                uri: binding.contact.clone(),
                destination: Some(binding.source),
                transport: binding.transport,
                from: from.to_owned(),
                to: format!("sip:{login}@{domain}"),
                text: text.to_owned(),
            };
            sends.spawn(async move { endpoint.send_message(message).await });
        }
        let mut refusal = None;
        while let Some(sent) = sends.join_next().await {
            match sent {
                Ok(Ok(status)) if (200..300).contains(&status) => {
                    sends.abort_all();
                    return MessageReply::delivered();
                }
                Ok(Ok(status)) => {
                    if refusal.is_none_or(|earlier| earlier == 408) {
                        refusal = Some(status);
                    }
                }
                Ok(Err(error)) => warn!(%error, "sending a MESSAGE"),
                Err(error) => warn!(%error, "a MESSAGE task"),
            }
        }
        let status = refusal.unwrap_or(480);
        MessageReply::refused(status, format!("{login}@{domain} answered {status}"))
    }
}

fn too_long(text: &str) -> String {
    format!("{} bytes do not fit a SIP MESSAGE (at most {MAX_MESSAGE_BODY})", text.len())
}

#[async_trait]
impl MessageHandler for SipMessages {
    async fn on_message(&self, message: IncomingMessage) -> MessageReply {
        let span = info_span!(
            "message",
            sip_call_id = %message.call_id,
            from = %message.from,
            to = %message.request_uri,
            source = %message.source
        );
        self.route(message).instrument(span).await
    }
}

/// The common submit path ([`opentact_control::Messaging::send`], the same checks and queue as
/// `POST /rest/sms`) as MESSAGE's [`SmsSubmit`]. Refusals map to SIP: the sending number
/// (`tn`) 403, the rest of the message (destination, text) 488, rate limits and outages 503.
pub struct ControlSubmit(pub Arc<dyn opentact_control::Messaging>);

impl std::fmt::Debug for ControlSubmit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlSubmit").finish_non_exhaustive()
    }
}

#[async_trait]
impl SmsSubmit for ControlSubmit {
    async fn submit(
        &self,
        account: Uuid,
        from_tn: i64,
        to: i64,
        text: &str,
        origin: SmsOrigin,
    ) -> Result<Uuid, SmsRefusal> {
        use opentact_control::SmsRefusal as Refused;
        let request = opentact_control::SmsSend {
            account,
            from: opentact_control::SmsFrom::Tn(from_tn.to_string()),
            to: to.to_string(),
            text: text.to_owned(),
            custom_callback_url: None,
            origin,
        };
        match self.0.send(request).await {
            Ok(sent) => Ok(sent.uuid),
            Err(Refused::Invalid { field, message }) => Err(SmsRefusal {
                status: if field == "tn" { 403 } else { 488 },
                reason: format!("{field}: {message}"),
            }),
            Err(refused) => Err(SmsRefusal { status: 503, reason: refused.to_string() }),
        }
    }
}
