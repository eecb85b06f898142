//! Webhooks: every event the bus publishes is written to the store's outbox for each of the
//! account's matching webhook subscriptions (and the call's app `event_url`), then delivered
//! by a dispatcher: signed with the account's Ed25519 key, at least once, in order per call
//! and URL, retried with exponential back-off and the subscription's secondary URL.
//!
//! Durability: an event is in the outbox before its delivery is attempted, and a delivery
//! leaves the outbox only once a receiver answered 2xx, so a restart or a crash resends what
//! was not acknowledged (receivers de-duplicate by the event's `uuid`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use opentact_events::Event;
use opentact_events::signing::{self, SIGNATURE_HEADER, Signer, TIMESTAMP_HEADER};
use opentact_store::{
    EventSubscription, NewWebhookDelivery, SigningKey, Store, WebhookDelivery, WebhookRepo,
};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::{Notify, Semaphore, mpsc};
use tracing::{debug, info, warn};
use uuid::Uuid;

/// The `[webhooks]` table of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// One delivery attempt (connect, send, answer), ms.
    pub timeout_ms: u64,
    /// Attempts before a delivery is given up.
    pub max_attempts: i32,
    /// First retry delay, ms; doubled each attempt up to `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Let webhook URLs reach loopback and private addresses (tests, on-premises receivers).
    pub allow_private: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            timeout_ms: 5_000,
            max_attempts: 12,
            backoff_ms: 1_000,
            max_backoff_ms: 10 * 60 * 1_000,
            concurrency: 64,
            allow_private: false,
        }
    }
}

/// Largest receiver answer read (the body is ignored).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most events written to the outbox in one transaction.
const MAX_BATCH: usize = 512;
/// How long an account's subscriptions are cached before they are read again.
const SUBSCRIPTIONS_TTL: Duration = Duration::from_secs(2);
/// Most deliveries read per dispatcher round.
const ROUND: u32 = 256;

/// The running webhook machinery: knows which call runs which app's `event_url`.
#[derive(Debug, Default)]
pub struct Webhooks {
    event_urls: Mutex<HashMap<String, String>>,
    wake: Notify,
}

impl Webhooks {
    /// Starts the outbox writer (fed by the bus's tap) and the dispatcher.
    pub fn start(store: Store, config: WebhookConfig, events: mpsc::UnboundedReceiver<Arc<Event>>) -> Arc<Self> {
        let webhooks = Arc::new(Webhooks::default());
        tokio::spawn(outbox(webhooks.clone(), store.clone(), events));
        tokio::spawn(dispatch(webhooks.clone(), store, config));
        webhooks
    }

    /// The call `call` runs an app whose events also go to `url`. Call before its first event.
    pub fn call_started(&self, call: &str, url: Option<&str>) {
        if let Some(url) = url {
            self.event_urls.lock().insert(call.to_owned(), url.to_owned());
        }
    }
}

/// Writes each event into the outbox for every URL that wants it.
async fn outbox(webhooks: Arc<Webhooks>, store: Store, mut events: mpsc::UnboundedReceiver<Arc<Event>>) {
    let mut subscriptions: HashMap<Uuid, (Instant, Vec<EventSubscription>)> = HashMap::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while events.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut deliveries = Vec::new();
        for event in batch.drain(..) {
            let fresh = subscriptions.get(&event.account).is_some_and(|(at, _)| at.elapsed() < SUBSCRIPTIONS_TTL);
            if !fresh {
                match store.webhook_subscriptions(event.account).await {
                    Ok(list) => {
                        subscriptions.insert(event.account, (Instant::now(), list));
                    }
                    Err(error) => warn!(%error, "webhooks: reading subscriptions (using the last known)"),
                }
            }
            let call = event.call.as_ref().and_then(|c| c.get("uuid")).and_then(|u| u.as_str()).map(str::to_owned);
            let body = event.to_json();
            let mut add = |url: &str, url2: Option<&String>| {
                deliveries.push(NewWebhookDelivery {
                    account: event.account,
                    url: url.to_owned(),
                    url2: url2.cloned(),
                    event: event.uuid,
                    event_type: event.kind.clone(),
                    call: call.clone(),
                    body: body.clone(),
                });
            };
            if let Some((_, list)) = subscriptions.get(&event.account) {
                for subscription in list.iter().filter(|s| s.covers(&event.kind)) {
                    if let Some(url) = &subscription.url {
                        add(url, subscription.url2.as_ref());
                    }
                }
            }
            if let Some(call) = &call {
                let url = if event.kind == "call.destroyed" {
                    webhooks.event_urls.lock().remove(call)
                } else {
                    webhooks.event_urls.lock().get(call).cloned()
                };
                if let Some(url) = url {
                    add(&url, None);
                }
            }
        }
        // Until the outbox has them, they exist only here: keep trying rather than drop them.
        while let Err(error) = store.enqueue_deliveries(deliveries.clone()).await {
            warn!(%error, count = deliveries.len(), "webhooks: writing the outbox failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if !deliveries.is_empty() {
            webhooks.wake.notify_one();
        }
    }
}

/// Sends due deliveries, each chain (one call, one URL) one event at a time.
async fn dispatch(webhooks: Arc<Webhooks>, store: Store, config: WebhookConfig) {
    let signers: Arc<Mutex<HashMap<Uuid, Arc<Signer>>>> = Arc::default();
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let config = Arc::new(config);
    loop {
        let due = match store.due_deliveries(opentact_store::now(), ROUND).await {
            Ok(due) => due,
            Err(error) => {
                warn!(%error, "webhooks: reading the outbox");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if due.is_empty() {
            let wait = match store.next_due().await {
                Ok(Some(at)) => (at - opentact_store::now()).to_std().unwrap_or(Duration::ZERO).min(Duration::from_secs(1)),
                _ => Duration::from_secs(1),
            };
            let _ = tokio::time::timeout(wait.max(Duration::from_millis(5)), webhooks.wake.notified()).await;
            continue;
        }
        let mut round = tokio::task::JoinSet::new();
        for delivery in due {
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            let (store, config, signers) = (store.clone(), config.clone(), signers.clone());
            round.spawn(async move {
                attempt(&store, &config, &signers, delivery).await;
                drop(permit);
            });
        }
        // The next round needs this one's outcomes (the chains' next events become due).
        while round.join_next().await.is_some() {}
    }
}

/// The account's signer, made (and its key pair stored) on first use.
async fn signer(store: &Store, signers: &Mutex<HashMap<Uuid, Arc<Signer>>>, account: Uuid) -> Option<Arc<Signer>> {
    if let Some(signer) = signers.lock().get(&account) {
        return Some(signer.clone());
    }
    let key = match store.signing_key(account).await {
        Ok(Some(key)) => key,
        Ok(None) => {
            let (public_key, private_pkcs8) = signing::generate().ok()?;
            store.insert_signing_key(account, SigningKey { public_key, private_pkcs8 }).await.ok()?
        }
        Err(error) => {
            warn!(%error, %account, "webhooks: reading the signing key");
            return None;
        }
    };
    let signer = Arc::new(Signer::from_pkcs8_base64(&key.private_pkcs8).ok()?);
    signers.lock().insert(account, signer.clone());
    Some(signer)
}

/// One attempt: the primary URL, then the secondary; records the outcome.
async fn attempt(store: &Store, config: &WebhookConfig, signers: &Mutex<HashMap<Uuid, Arc<Signer>>>, d: WebhookDelivery) {
    let attempts = d.attempts + 1;
    let Some(signer) = signer(store, signers, d.account).await else {
        let _ = store.mark_attempt_failed(d.uuid, d.attempts, "no signing key", Some(retry_at(config, attempts))).await;
        return;
    };
    let mut errors = Vec::new();
    for url in std::iter::once(&d.url).chain(d.url2.as_ref()) {
        match post(config, &signer, url, &d.body).await {
            Ok(()) => {
                debug!(delivery = %d.uuid, event = %d.event, %url, attempts, "webhook delivered");
                if let Err(error) = store.mark_delivered(d.uuid, attempts).await {
                    // Delivered but not recorded: it will be sent again (at least once).
                    warn!(%error, delivery = %d.uuid, "webhooks: recording a delivery");
                }
                return;
            }
            Err(error) => errors.push(format!("{url}: {error}")),
        }
    }
    let error = errors.join("; ");
    let retry = (attempts < config.max_attempts).then(|| retry_at(config, attempts));
    match retry {
        Some(_) => info!(delivery = %d.uuid, attempts, %error, "webhook failed; will retry"),
        None => warn!(delivery = %d.uuid, attempts, %error, "webhook failed; giving up"),
    }
    if let Err(error) = store.mark_attempt_failed(d.uuid, attempts, &error, retry).await {
        warn!(%error, delivery = %d.uuid, "webhooks: recording a failed attempt");
    }
}

fn retry_at(config: &WebhookConfig, attempts: i32) -> opentact_store::Timestamp {
    let factor = 1u64 << u32::try_from(attempts - 1).unwrap_or(0).min(20);
    let delay = config.backoff_ms.saturating_mul(factor).min(config.max_backoff_ms);
    opentact_store::now() + chrono::Duration::milliseconds(i64::try_from(delay).unwrap_or(i64::MAX / 2))
}

async fn post(config: &WebhookConfig, signer: &Signer, url: &str, body: &str) -> Result<(), String> {
    let timestamp = Utc::now().timestamp();
    let signature = signer.sign(timestamp, body.as_bytes());
    let timestamp = timestamp.to_string();
    let limits = opentact_egress::http::Limits {
        timeout: Duration::from_millis(config.timeout_ms),
        max_body_bytes: MAX_ANSWER_BYTES,
        allow_private: config.allow_private,
    };
    let headers = [(TIMESTAMP_HEADER, timestamp.as_str()), (SIGNATURE_HEADER, signature.as_str())];
    let answer = opentact_egress::http::send(
        "POST",
        url,
        &headers,
        Some(("application/json", body.as_bytes().to_vec())),
        &limits,
    )
    .await
    .map_err(|error| error.to_string())?;
    if (200..300).contains(&answer.status) { Ok(()) } else { Err(format!("answered {}", answer.status)) }
}
