//! Wiring of the messaging capability: the `[messaging]` table, the seam the REST API and flows
//! drive (check and queue an SMS: `opentact_messaging::submit`), the sender draining the store's
//! outbox into the SMPP carrier, and the task that turns the carrier's receipts into stored states and `sms.*` events.
//!
//! Without `[messaging.smpp]` no carrier runs: `POST /rest/sms` still stores messages (they wait
//! queued, and go out once a carrier is configured and the server restarted).

use std::sync::Arc;

use chrono::Utc;
use opentact_events::{Event, EventBus};
use opentact_messaging::outbox::{Outbox, Sender, SenderConfig};
use opentact_messaging::rate::RateConfig;
use opentact_messaging::smpp::{CarrierEvent, InboundHandler, SmppCarrier, SmppConfig};
use opentact_messaging::store::{OutboxObserver, StoreOutbox};
use opentact_messaging::submit::Submitter;
use opentact_store::{Repository, SmsMessage, SmsState};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};
use uuid::Uuid;

/// The `[messaging]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagingSection {
    /// The SMSC outbound SMS go to (`[messaging.smpp]`); no carrier when absent.
    pub smpp: Option<SmppConfig>,
    /// How the sender drains the outbox (`[messaging.sender]`).
    pub sender: SenderConfig,
    /// Rate limits of outbound SMS per number and per messaging profile (`[messaging.rate]`).
    pub rate: RateConfig,
    /// How long the sender's claim holds a message, ms: a claim of a process that died is
    /// handed out again (or failed, at most once) after this. Longer than any attempt (a claim
    /// is not renewed while its attempt runs; within one process a message is never attempted
    /// twice at once).
    pub claim_lease_ms: i64,
    /// 10DLC: application-to-person SMS from a US long code (a +1 number that is not
    /// toll-free) is refused unless the number is in an approved campaign
    /// (`/rest/10dlc/…`, `opentact admin 10dlc approve`), as US carriers block unregistered
    /// traffic. Turn off only where no US carrier is reached (a lab, a non-US SMSC).
    pub tendlc_enforce: bool,
}

impl Default for MessagingSection {
    fn default() -> Self {
        Self {
            smpp: None,
            sender: SenderConfig::default(),
            rate: RateConfig::default(),
            claim_lease_ms: opentact_messaging::store::DEFAULT_CLAIM_LEASE_MS,
            tendlc_enforce: true,
        }
    }
}

/// Publishes every move of a message: `sms.sent` when the carrier took every part,
/// `sms.status` for the outcome (delivered, undelivered, failed).
struct BusObserver {
    bus: Arc<EventBus>,
    /// Outbound statuses also go to the message's `custom_callback_url` (signed, in order).
    webhooks: Option<Arc<opentact_webhooks::Webhooks>>,
}

impl OutboxObserver for BusObserver {
    fn moved(&self, m: &SmsMessage) {
        let kind = match m.state {
            SmsState::Sent => "sms.sent",
            _ => "sms.status",
        };
        let now = Utc::now();
        let reason = m.history.last().and_then(|h| h.reason.clone());
        let event = Event {
            uuid: Uuid::new_v4(),
            kind: kind.into(),
            created_on: now,
            account: m.account,
            call: None,
            seq: None,
            occurred_at: m.history.last().map(|h| h.at).unwrap_or(now),
            payload: json!({
                "uuid": m.uuid,
                "type": m.direction,
                "state": m.state,
                "from": m.from,
                "to": m.to,
                "parts": m.parts,
                "reason": reason,
                "custom_callback_url": m.custom_callback_url,
            }),
        };
        if let (Some(webhooks), Some(url)) = (&self.webhooks, &m.custom_callback_url) {
            let route = opentact_webhooks::Route {
                urls: vec![(url.clone(), None)],
                chain: Some(format!("sms:{}", m.uuid)),
            };
            webhooks.route_event(event.uuid, route);
        }
        self.bus.publish(event);
    }
}

/// The running capability: the API's seam and what stops it.
pub struct Messaging {
    seam: Arc<Submitter>,
    stop: watch::Sender<bool>,
    carrier: Option<Arc<SmppCarrier>>,
}

impl Messaging {
    /// Starts the carrier and the sender when `[messaging.smpp]` is set.
    pub fn start(
        section: &MessagingSection,
        repo: Arc<dyn Repository>,
        bus: Arc<EventBus>,
        inbound: Arc<crate::sms_inbound::Inbound>,
    ) -> anyhow::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let outbox = Arc::new(
            StoreOutbox::new(repo.clone(), section.sender.unknown)
                .with_lease_ms(section.claim_lease_ms)
                .with_observer(Arc::new(BusObserver { bus, webhooks: inbound.webhooks() })),
        );
        let Some(smpp) = &section.smpp else {
            info!("messaging: no [messaging.smpp] carrier; SMS are stored and wait queued");
            let seam = Arc::new(
                Submitter::new(repo, Arc::new(Notify::new()), section.rate)
                    .with_tendlc(section.tendlc_enforce),
            );
            return Ok(Self { seam, stop, carrier: None });
        };
        let (carrier, mut events) =
            SmppCarrier::start_with_inbound(smpp.clone(), Some(inbound as Arc<dyn InboundHandler>))
                .map_err(|e| anyhow::anyhow!("[messaging.smpp]: {e}"))?;
        let carrier = Arc::new(carrier);
        let sender = Sender::new(outbox.clone(), carrier.clone(), section.sender.clone());
        let wake = sender.waker();
        tokio::spawn(sender.run(stopped));
        // Receipts are read independently of the sender's submits (the carrier answers each
        // deliver_sm only once its event is taken).
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    CarrierEvent::Receipt(receipt) => {
                        if let Err(e) = outbox.record_receipt(&receipt, Utc::now()).await {
                            warn!(error = %e, id = %receipt.message_id, "recording a delivery receipt failed");
                        }
                    }
                    CarrierEvent::BindUp { bind } => info!(bind, "SMPP bind up"),
                    CarrierEvent::BindDown { bind, reason } => warn!(bind, %reason, "SMPP bind down"),
                    // Inbound messages go to the handler (crate::sms_inbound), not here.
                    CarrierEvent::Inbound(sms) => {
                        warn!(from = %sms.source, to = %sms.destination, "inbound SMS without a handler");
                    }
                }
            }
        });
        info!(host = %smpp.host, port = smpp.port, binds = smpp.binds, "messaging: SMPP carrier started");
        Ok(Self {
            seam: Arc::new(Submitter::new(repo, wake, section.rate).with_tendlc(section.tendlc_enforce)),
            stop,
            carrier: Some(carrier),
        })
    }

    /// The seam for the REST API.
    pub fn seam(&self) -> Arc<dyn opentact_control::Messaging> {
        self.seam.clone()
    }

    /// Stops claiming; attempts in progress record their outcome; the binds unbind.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        if let Some(carrier) = &self.carrier {
            carrier.shutdown().await;
        }
    }
}
