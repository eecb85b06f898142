//! Wiring of the messaging capability: the `[messaging]` table, the seam the REST API and flows
//! drive (check and queue an SMS: `opentact_messaging::submit`), the sender draining the store's
//! outbox into the SMPP carrier, and the task that turns the carrier's receipts into stored states and `sms.*` events.
//! Outbound `sms.sent` / `sms.status` also go, signed, to the message's `custom_callback_url`
//! and to its number's messaging profile's `callback_url` (then `callback_url2`).
//!
//! Without `[messaging.smpp]` no carrier runs: `POST /rest/sms` still stores messages (they wait
//! queued, and go out once a carrier is configured and the server restarted).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

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
use tokio::sync::{Notify, mpsc, watch};
use tracing::{info, warn};
use uuid::Uuid;

use crate::sms_inbound::CallbackUrls;

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
    /// How long the sender's claim holds a message unless renewed, ms. The sender renews the
    /// claims of its running attempts every third of it; a claim of a process that died runs
    /// out this long after its last renewal, and its parts in doubt then wait the sender's
    /// `reconcile_grace_ms` (see `opentact_messaging::outbox`).
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

/// Outbound messages' moves waiting for [`status_worker`]; beyond that (the store, read for
/// a profile not cached, is far behind) a move is published without the profile's URLs.
pub const STATUS_QUEUE: usize = 16_384;
/// How long a number's messaging-profile callback URLs are reused before they are read again
/// (a profile's new URLs apply within this).
pub const PROFILE_URLS_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// Numbers whose profile URLs are cached at once (the cache is emptied beyond that).
const MAX_CACHED_PROFILES: usize = 10_000;

/// Told of every move of an outbound message; hands it to [`status_worker`], which publishes
/// them one at a time, in the order they moved.
struct BusObserver {
    queue: mpsc::Sender<SmsMessage>,
    bus: Arc<EventBus>,
    webhooks: Option<Arc<opentact_webhooks::Webhooks>>,
    /// Submitted and failed messages, for `/metrics`.
    metrics: opentact_metrics::SmsMetrics,
}

impl OutboxObserver for BusObserver {
    fn moved(&self, m: &SmsMessage) {
        match m.state {
            SmsState::Sent => self.metrics.submitted(),
            SmsState::Failed => self.metrics.failed(),
            _ => {}
        }
        if let Err(error) = self.queue.try_send(m.clone()) {
            let m = error.into_inner();
            warn!(id = %m.uuid, "SMS status queue full: published without the messaging profile's callback URLs");
            publish_move(&self.bus, self.webhooks.as_deref(), &m, Vec::new());
        }
    }
}

/// Publishes a move of an outbound message: `sms.sent` when the carrier took every part,
/// `sms.status` for the outcome (delivered, undelivered, failed). Webhooks: the message's
/// `custom_callback_url` and `profile` (its number's messaging profile's `callback_url`, then
/// `callback_url2`), signed, in order per message.
fn publish_move(
    bus: &EventBus,
    webhooks: Option<&opentact_webhooks::Webhooks>,
    m: &SmsMessage,
    profile: CallbackUrls,
) {
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
        message: None,
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
    if let Some(webhooks) = webhooks {
        let mut urls: CallbackUrls = m.custom_callback_url.iter().map(|url| (url.clone(), None)).collect();
        urls.extend(profile.into_iter().filter(|(url, _)| m.custom_callback_url.as_ref() != Some(url)));
        webhooks.route_event(
            event.uuid,
            opentact_webhooks::Route { urls, chain: Some(format!("sms:{}", m.uuid)) },
        );
    }
    bus.publish(event);
}

/// Publishes outbound moves in order, each with its number's messaging profile's callback URLs
/// (cached per number for [`PROFILE_URLS_TTL`]).
async fn status_worker(
    mut moves: mpsc::Receiver<SmsMessage>,
    repo: Arc<dyn Repository>,
    bus: Arc<EventBus>,
    webhooks: Option<Arc<opentact_webhooks::Webhooks>>,
) {
    let mut cache: HashMap<Uuid, (Instant, CallbackUrls)> = HashMap::new();
    while let Some(m) = moves.recv().await {
        let mut profile = Vec::new();
        if let (Some(_), Some(lease)) = (&webhooks, m.tn_lease) {
            profile = match cache.get(&lease) {
                Some((at, urls)) if at.elapsed() < PROFILE_URLS_TTL => urls.clone(),
                _ => {
                    let urls = match repo.get_lease(m.account, lease).await {
                        Ok(Some(lease)) => {
                            crate::sms_inbound::profile_urls(
                                repo.as_ref(),
                                m.account,
                                lease.messaging_profile,
                            )
                            .await
                        }
                        Ok(None) => Vec::new(),
                        Err(e) => {
                            warn!(error = %e, id = %m.uuid, "reading the number of an outbound SMS");
                            Vec::new()
                        }
                    };
                    if cache.len() >= MAX_CACHED_PROFILES {
                        cache.clear();
                    }
                    cache.insert(lease, (Instant::now(), urls.clone()));
                    urls
                }
            };
        }
        publish_move(&bus, webhooks.as_deref(), &m, profile);
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
        metrics: opentact_metrics::SmsMetrics,
        rating: (Option<Arc<opentact_rating::Deck>>, &str),
        call_spend: Arc<dyn opentact_control::CallSpend>,
    ) -> anyhow::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        // Messages' charges are announced there too (account.changed).
        let charges_bus = bus.clone();
        let (queue, moves) = mpsc::channel(STATUS_QUEUE);
        let webhooks = inbound.webhooks();
        tokio::spawn(status_worker(moves, repo.clone(), bus.clone(), webhooks.clone()));
        let outbox = Arc::new(
            StoreOutbox::new(repo.clone(), section.sender.unknown)
                .with_lease_ms(section.claim_lease_ms)
                .with_observer(Arc::new(BusObserver { queue, bus, webhooks, metrics })),
        );
        let Some(smpp) = &section.smpp else {
            info!("messaging: no [messaging.smpp] carrier; SMS are stored and wait queued");
            let seam = Arc::new(
                Submitter::new(repo, Arc::new(Notify::new()), section.rate)
                    .with_tendlc(section.tendlc_enforce)
                    .with_rating(rating.0, rating.1)
                    .with_events(charges_bus)
                    .with_call_spend(call_spend),
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
            seam: Arc::new(
                Submitter::new(repo, wake, section.rate)
                    .with_tendlc(section.tendlc_enforce)
                    .with_rating(rating.0, rating.1)
                    .with_events(charges_bus)
                    .with_call_spend(call_spend),
            ),
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
