//! Inbound SMS (issue 11, item 5), from the carrier's `deliver_sm` to the account's app:
//!
//! ```text
//!  deliver_sm ─► InboundRouter (opentact-messaging): lease? SMS enabled? paid? parts?
//!      │            → stored smsr, charged (`[rating] inbound_per_sms`)
//!      │            (refused: deliver_sm_resp ESME_RINVDSTADR — or ESME_RX_T_APPN when the
//!      │             balance does not pay it, so the SMSC tries again — logged, stored nowhere)
//!      ▼
//!  sms.received on the bus (websocket, subscriptions) + a signed webhook to the number's
//!  messaging profile's callback_url (callback_url2 when it fails), through the webhook outbox
//!      ▼ (in the background: the SMSC is answered once the message is stored)
//!  the number's app, when it takes SMS:
//!                     component → SmsFlows::handle_sms (the flow host)
//!                     webhook   → signed POST of the event; the answer is an SMS reply
//!                                 document (opentact_xml::sms), each reply sent through
//!                                 opentact_control::Messaging::send from the number
//!  else the SIP side (opentact_messaging::sip::SipMessages::deliver_sms), as for calls the
//!  number's assignments say: the SIP user whose number it is (the user's `tn_lease`) gets it
//!  on its registered phones, else the SIP connection the number is on (the lease's
//!  `sip_connection`) gets it at its PBX's address — a MESSAGE from `sip:<sender>@<domain>`
//!  else                 → the message stays received (the webhook and event carry it)
//!  → received → delivered (with where: the app, `login@domain`, the PBX's `ip:port`), or failed
//!    with the reason (GET /rest/sms/{uuid} shows it); `sms.status` on the bus and to the
//!    profile's callback URLs, after its `sms.received`
//! ```
//!
//! An app that takes calls only (XML, async commands) does not stop a number's SMS from
//! reaching its SIP user or connection: a number may ring an XML flow and text a SIP phone.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use opentact_control::{SmsFlows, SmsFrom, SmsOrigin, SmsSend};
use opentact_events::{Event, EventBus};
use opentact_messaging::inbound::{InboundPrice, InboundRouter, Routed};
use opentact_messaging::sip::{SipDelivery, SipMessages};
use opentact_messaging::smpp::{InboundHandler, InboundSms};
use opentact_store::{AppMode, Repository, SmsMessage, TnLease};
use opentact_webhooks::signers::AccountSigners;
use opentact_webhooks::{Route, Webhooks};
use serde_json::json;
use tracing::{debug, info, warn};
use uuid::Uuid;

/// Where inbound SMS go once stored. The messaging seam (replies) and the flow host (component
/// apps) are set once they exist.
pub struct Inbound {
    inner: Arc<Inner>,
}

struct Inner {
    router: InboundRouter,
    repo: Arc<dyn Repository>,
    bus: Arc<EventBus>,
    webhooks: Option<Arc<Webhooks>>,
    /// Sends a webhook app's replies.
    messaging: OnceLock<Arc<dyn opentact_control::Messaging>>,
    /// Runs component apps' `handle-sms`.
    flows: OnceLock<Arc<dyn SmsFlows>>,
    /// Delivers to SIP users and SIP connections.
    sip: OnceLock<Arc<SipMessages>>,
    /// Whether a webhook app's URL may be on loopback or a private network (`[flows.http]`).
    allow_private: bool,
    /// The accounts' signers (the webhook machinery's, when there is one).
    signers: Arc<AccountSigners>,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound").field("router", &self.inner.router).finish_non_exhaustive()
    }
}

impl Inbound {
    pub fn new(
        repo: Arc<dyn Repository>,
        bus: Arc<EventBus>,
        webhooks: Option<Arc<Webhooks>>,
        allow_private: bool,
        price: Option<InboundPrice>,
        call_spend: Arc<dyn opentact_control::CallSpend>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                router: InboundRouter::new(repo.clone())
                    .with_price(price, bus.clone())
                    .with_call_spend(call_spend),
                repo,
                bus,
                signers: webhooks.as_ref().map(|webhooks| webhooks.signers.clone()).unwrap_or_default(),
                webhooks,
                messaging: OnceLock::new(),
                flows: OnceLock::new(),
                sip: OnceLock::new(),
                allow_private,
            }),
        }
    }

    /// The seam webhook apps' replies are sent through.
    pub fn set_messaging(&self, messaging: Arc<dyn opentact_control::Messaging>) {
        let _ = self.inner.messaging.set(messaging);
    }

    /// The webhook machinery SMS events are routed through (also for outbound statuses).
    pub fn webhooks(&self) -> Option<Arc<Webhooks>> {
        self.inner.webhooks.clone()
    }

    /// The flow host that runs component apps' `handle-sms`.
    pub fn set_flows(&self, flows: Arc<dyn SmsFlows>) {
        let _ = self.inner.flows.set(flows);
    }

    /// The SIP side: numbers of SIP users and SIP connections get their SMS as MESSAGEs.
    pub fn set_sip(&self, sip: Arc<SipMessages>) {
        let _ = self.inner.sip.set(sip);
    }
}

/// Webhook URLs, each with its fallback.
pub(crate) type CallbackUrls = Vec<(String, Option<String>)>;

/// A messaging profile's callback URLs as a webhook route's URLs: `callback_url` with
/// `callback_url2` as its fallback (or `callback_url2` alone).
pub(crate) async fn profile_urls(
    repo: &dyn Repository,
    account: Uuid,
    profile: Option<Uuid>,
) -> CallbackUrls {
    let Some(profile) = profile else { return Vec::new() };
    match repo.get_messaging_profile(account, profile).await {
        Ok(Some(p)) => match (p.callback_url, p.callback_url2) {
            (Some(url), url2) => vec![(url, url2)],
            (None, Some(url2)) => vec![(url2, None)],
            (None, None) => Vec::new(),
        },
        Ok(None) => Vec::new(),
        Err(e) => {
            warn!(error = %e, %profile, "reading a messaging profile's callback URLs");
            Vec::new()
        }
    }
}

impl InboundHandler for Inbound {
    fn inbound(
        &self,
        sms: InboundSms,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = u32> + Send + '_>> {
        Box::pin(async move {
            let routed = self.inner.router.route(&sms).await;
            let status = routed.status();
            match routed {
                Routed::Stored { message, lease } => {
                    info!(id = %message.uuid, account = %message.account, from = %message.from, to = %message.to, parts = message.parts, "inbound SMS stored");
                    self.inner.received(&message, &lease).await;
                    let inner = self.inner.clone();
                    tokio::spawn(async move { inner.deliver(*message, *lease).await });
                }
                Routed::Held => debug!(from = %sms.source, to = %sms.destination, "inbound SMS part held"),
                Routed::Refused { reason, .. } => {
                    warn!(from = %sms.source, to = %sms.destination, status = format!("{status:#04x}"), %reason, "inbound SMS refused");
                }
            }
            status
        })
    }
}

/// The `sms.received` payload (and the body a webhook app is POSTed, inside the envelope).
fn payload(m: &SmsMessage, lease: &TnLease) -> serde_json::Value {
    json!({
        "uuid": m.uuid,
        "type": m.direction,
        "state": m.state,
        "from": m.from,
        "to": m.to,
        "text": m.text,
        "encoding": m.encoding,
        "parts": m.parts,
        // What the message cost its account (`[rating] inbound_per_sms`); null when free.
        "price_micros": m.price_micros,
        "tn_lease": lease.uuid,
        "messaging_profile": lease.messaging_profile,
        "sip_control_app": lease.sip_control_app,
    })
}

impl Inner {
    /// Publishes `sms.received`, routed also to the messaging profile's callback URLs.
    async fn received(&self, m: &SmsMessage, lease: &TnLease) {
        self.publish("sms.received", m.created_on, payload(m, lease), m, lease).await;
    }

    /// Publishes `sms.status` for a settled message (delivered, or failed with its reason), to
    /// the same URLs as its `sms.received` and after it.
    async fn settled(&self, m: &SmsMessage, lease: &TnLease) {
        let last = m.history.last();
        let mut body = payload(m, lease);
        body["reason"] = json!(last.and_then(|h| h.reason.clone()));
        self.publish("sms.status", last.map_or(m.modified_on, |h| h.at), body, m, lease).await;
    }

    async fn publish(
        &self,
        kind: &str,
        occurred_at: chrono::DateTime<Utc>,
        payload: serde_json::Value,
        m: &SmsMessage,
        lease: &TnLease,
    ) {
        let event = Event {
            uuid: Uuid::new_v4(),
            kind: kind.into(),
            created_on: Utc::now(),
            account: m.account,
            message: None,
            call: None,
            seq: None,
            occurred_at,
            payload,
        };
        if let Some(webhooks) = &self.webhooks {
            let urls = profile_urls(self.repo.as_ref(), m.account, lease.messaging_profile).await;
            webhooks.route_event(event.uuid, Route { urls, chain: Some(format!("sms:{}", m.uuid)) });
        }
        self.bus.publish(event);
    }

    /// Hands the message to where its number sends it, records the outcome and publishes it.
    async fn deliver(&self, m: SmsMessage, lease: TnLease) {
        let Some(outcome) = self.outcome(&m, &lease).await else {
            return;
        };
        match &outcome {
            Ok(to) => info!(id = %m.uuid, to = to.as_deref().unwrap_or(""), "inbound SMS delivered"),
            Err(reason) => warn!(id = %m.uuid, %reason, "inbound SMS: it could not be delivered"),
        }
        if let Some(settled) = self.router.settle(&m, outcome).await {
            self.settled(&settled, &lease).await;
        }
    }

    /// Where the message went (`Ok` with a note of where) or why it did not; `None` when the
    /// number sends its SMS nowhere (the message stays received).
    async fn outcome(&self, m: &SmsMessage, lease: &TnLease) -> Option<Result<Option<String>, String>> {
        let app = match lease.sip_control_app {
            Some(app_id) => match self.repo.get_app(m.account, app_id).await {
                Ok(app) => app,
                Err(e) => return Some(Err(format!("reading the number's app: {e}"))),
            },
            None => None,
        };
        if let Some(app) = &app
            && matches!(app.mode, AppMode::Component | AppMode::Webhook { .. })
        {
            return Some(self.run_app(m, lease, app).await.map(|()| Some(format!("the app {}", app.uuid))));
        }
        if let Some(sip) = self.sip.get() {
            match sip.deliver_sms(lease, &m.from, &m.text).await {
                Ok(SipDelivery::Delivered { to }) => return Some(Ok(Some(format!("SIP MESSAGE to {to}")))),
                Ok(SipDelivery::Failed { to, reason }) => {
                    return Some(Err(format!("the SIP MESSAGE to {to}: {reason}")));
                }
                Ok(SipDelivery::NotAssigned) => {}
                Err(e) => return Some(Err(format!("finding the number's SIP user or connection: {e}"))),
            }
        }
        match (lease.sip_control_app, app) {
            (None, _) => None,
            (Some(_), None) => Some(Err("the number's app is gone".to_owned())),
            (Some(_), Some(_)) => Some(Err(
                "the number's app is an XML or async-command app, which takes calls only: attach a webhook or component app to handle SMS, or give the number to a SIP user or SIP connection"
                    .to_owned(),
            )),
        }
    }

    /// Hands the message to the number's component or webhook app.
    async fn run_app(
        &self,
        m: &SmsMessage,
        lease: &TnLease,
        app: &opentact_store::SipControlApp,
    ) -> Result<(), String> {
        match &app.mode {
            AppMode::Component => {
                let Some(flows) = self.flows.get() else {
                    return Err("component apps do not take SMS on this platform yet".to_owned());
                };
                let message = opentact_control::InboundSms {
                    id: m.uuid,
                    account: m.account,
                    app: app.uuid,
                    from: m.from.clone(),
                    to: m.to.clone(),
                    tn: lease.tn,
                    text: m.text.clone(),
                };
                flows.handle_sms(message).await.map_err(|e| format!("the app's component: {e}"))
            }
            AppMode::Webhook { url, timeout_ms, .. } => {
                self.webhook_app(m, lease, app.uuid, url, *timeout_ms).await
            }
            AppMode::Xml { .. } | AppMode::Async => Err("the number's app takes calls only".to_owned()),
        }
    }

    /// POSTs the message to a webhook app and sends the replies its answer asks for.
    async fn webhook_app(
        &self,
        m: &SmsMessage,
        lease: &TnLease,
        app: Uuid,
        url: &str,
        timeout_ms: i64,
    ) -> Result<(), String> {
        let event = Event {
            uuid: Uuid::new_v4(),
            kind: "sms.received".into(),
            created_on: Utc::now(),
            account: m.account,
            message: None,
            call: None,
            seq: None,
            occurred_at: m.created_on,
            payload: payload(m, lease),
        };
        let body = event.to_json();
        let signer = self.signers.get(&*self.repo, m.account).await?;
        let [timestamp, signature] = signer.headers(body.as_bytes());
        let limits = opentact_egress::http::Limits {
            timeout: Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(5_000).clamp(100, 60_000)),
            max_body_bytes: opentact_xml::sms::MAX_SMS_REPLY_BYTES,
            allow_private: self.allow_private,
        };
        let headers = [(timestamp.0, timestamp.1.as_str()), (signature.0, signature.1.as_str())];
        let answer = opentact_egress::http::send(
            "POST",
            url,
            &headers,
            Some(("application/json", body.into_bytes())),
            &limits,
        )
        .await
        .map_err(|e| format!("the app's webhook: {e}"))?;
        if !(200..300).contains(&answer.status) {
            return Err(format!("the app's webhook {url} answered {}", answer.status));
        }
        let text = String::from_utf8(answer.body).map_err(|_| "the app's reply is not UTF-8".to_owned())?;
        let replies = opentact_xml::parse_sms_reply(&text).map_err(|e| format!("the app's {e}"))?;
        if replies.is_empty() {
            return Ok(());
        }
        let Some(messaging) = self.messaging.get() else {
            return Err("the app's replies cannot be sent: messaging is not running".to_owned());
        };
        let mut refused = Vec::new();
        for reply in replies {
            let to = reply.to.unwrap_or_else(|| m.from.clone());
            let request = SmsSend {
                account: m.account,
                from: SmsFrom::Tn(lease.tn.to_string()),
                to: to.clone(),
                text: reply.text,
                custom_callback_url: None,
                origin: SmsOrigin::Flow { app: Some(app), call: None },
            };
            match messaging.send(request).await {
                Ok(sent) => info!(id = %sent.uuid, reply_to = %m.uuid, %to, "webhook app's reply queued"),
                Err(e) => refused.push(format!("the reply to {to} was refused: {e}")),
            }
        }
        if refused.is_empty() { Ok(()) } else { Err(refused.join("; ")) }
    }
}
