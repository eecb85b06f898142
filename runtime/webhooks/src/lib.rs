//! Webhooks: every event the bus publishes is written to the store's outbox for each of the
//! account's matching webhook subscriptions (and the call's app `event_url`), then delivered
//! by a dispatcher: signed with the account's Ed25519 key, at least once, in order per call
//! and URL, retried with exponential back-off and the subscription's secondary URL.
//!
//! Durability: an event is in the outbox before its delivery is attempted, and a delivery
//! leaves the outbox only once a receiver answered 2xx, so a restart or a crash resends what
//! was not acknowledged (receivers de-duplicate by the event's `uuid`).

pub mod event_relay;
mod node;
mod retention;
mod routes;
pub mod signers;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentact_egress::Policy;
use opentact_egress::http::{Caps, Client, ClientOptions};
use opentact_events::Event;
use opentact_events::signing::Signer;
use opentact_store::{EventSubscription, NewWebhookDelivery, Store, WebhookDelivery, WebhookRepo};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use uuid::Uuid;

pub use node::{Node, NodeTiming};
pub use routes::{MAX_ROUTES, ROUTE_TTL, Route};

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
    /// Deliveries in flight at once, all accounts together.
    pub concurrency: usize,
    /// Deliveries of one account in flight at once (its share of `concurrency`): an account
    /// whose receiver hangs holds at most this many slots, the others keep being delivered.
    pub max_in_flight_per_account: usize,
    /// Idle connections kept open per receiver (scheme, host and port).
    pub max_idle_per_host: usize,
    /// Receivers whose idle connections are kept; the least recently used one's are closed
    /// beyond that. Idle connections in all: at most `max_idle_hosts × max_idle_per_host`.
    pub max_idle_hosts: usize,
    /// An idle connection is closed after this long, ms.
    pub idle_timeout_ms: u64,
    /// Let webhook URLs reach loopback and private addresses (tests, on-premises receivers).
    pub allow_private: bool,
    /// Deliveries the dispatcher holds in memory; beyond that (a receiver down for long) the
    /// rest wait in the outbox only and are read back as the ones in memory drain.
    pub max_pending_in_memory: usize,
    /// How long finished deliveries (delivered, or given up) stay in the outbox, seconds
    /// (default 7 days); then they are deleted, so the outbox cannot fill the disk.
    pub delivered_retention_secs: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            timeout_ms: 5_000,
            max_attempts: 12,
            backoff_ms: 1_000,
            max_backoff_ms: 10 * 60 * 1_000,
            concurrency: 64,
            max_in_flight_per_account: 8,
            max_idle_per_host: 4,
            max_idle_hosts: 256,
            idle_timeout_ms: 30_000,
            allow_private: false,
            max_pending_in_memory: 100_000,
            delivered_retention_secs: 7 * 24 * 3600,
        }
    }
}

/// Largest receiver answer read (the body is ignored).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most events written to the outbox in one transaction.
const MAX_BATCH: usize = 512;
/// How long an account's subscriptions are cached before they are read again.
const SUBSCRIPTIONS_TTL: Duration = Duration::from_secs(2);
/// Pending deliveries read per query when the dispatcher starts.
const STARTUP_PAGE: u32 = 1000;
/// How often delivered outcomes are written (one statement for all of them).
const FLUSH_EVERY: Duration = Duration::from_millis(10);

/// The running webhook machinery: knows which call runs which app's `event_url`.
#[derive(Debug, Default)]
pub struct Webhooks {
    event_urls: Mutex<HashMap<String, Vec<String>>>,
    /// On SQLite, taken around the outbox's writes: the writer and the dispatcher's delivered
    /// marks take turns here instead of in SQLite's busy handler, which sleeps (1 ms, 2 ms, …
    /// 100 ms) while the other holds the database's one write lock. PostgreSQL writes run
    /// side by side.
    writes: Option<tokio::sync::Mutex<()>>,
    /// URLs named for single events by their publishers (see [`Route`]).
    routes: routes::Routes,
    /// Delivery delays and deliveries given up, for `/metrics` ([`Webhooks::set_metrics`]).
    metrics: std::sync::OnceLock<opentact_metrics::WebhookMetrics>,
    /// The accounts' signers, shared with whatever else sends the platform's requests.
    pub signers: Arc<signers::AccountSigners>,
}

/// Batches of stored deliveries the outbox writer may hand the dispatcher ahead of it. When
/// they are waiting the writer waits (back-pressure on a task, never on a call): the events
/// then wait in the bus's tap, and the deliveries are safe in the outbox meanwhile.
pub const STORED_QUEUE_CAPACITY: usize = 64;

impl Webhooks {
    /// Starts the dispatcher, which first reads what is pending in the outbox, then the outbox
    /// writer (fed by the bus's tap), which hands each delivery it stored to the dispatcher.
    /// The rows it writes name `node` (`[server] node_id`).
    /// Without a [`Node`] the dispatcher sends the rows it writes (or, unnamed, every pending
    /// row): one node alone on its database.
    pub fn start(
        store: Store,
        config: WebhookConfig,
        node: Option<String>,
        events: mpsc::Receiver<Arc<Event>>,
    ) -> Arc<Self> {
        Self::launch(store, config, Owner { name: node, node: None }, events)
    }

    /// [`Webhooks::start`] on a node among several on one database: the dispatcher sends what
    /// its node claims (what it wrote, and what it took over from dead nodes) and only while
    /// the node's heartbeat holds, so no delivery is sent by two nodes.
    pub fn start_on_node(
        store: Store,
        config: WebhookConfig,
        node: Arc<Node>,
        events: mpsc::Receiver<Arc<Event>>,
    ) -> Arc<Self> {
        Self::launch(store, config, Owner { name: Some(node.name().to_owned()), node: Some(node) }, events)
    }

    fn launch(
        store: Store,
        config: WebhookConfig,
        owner: Owner,
        events: mpsc::Receiver<Arc<Event>>,
    ) -> Arc<Self> {
        let sqlite = store.backend() == opentact_store::Backend::Sqlite;
        let webhooks =
            Arc::new(Webhooks { writes: sqlite.then(|| tokio::sync::Mutex::new(())), ..Webhooks::default() });
        let (stored, incoming) = mpsc::channel(STORED_QUEUE_CAPACITY);
        let (loaded, ready) = tokio::sync::oneshot::channel();
        tokio::spawn(outbox(webhooks.clone(), store.clone(), owner.name.clone(), events, stored, ready));
        let retention = Duration::from_secs(config.delivered_retention_secs);
        tokio::spawn(retention::purge(webhooks.clone(), store.clone(), retention));
        tokio::spawn(dispatch(webhooks.clone(), store, config, owner, incoming, loaded));
        webhooks
    }

    /// This writer's turn at the database (SQLite only).
    async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.writes {
            Some(writes) => Some(writes.lock().await),
            None => None,
        }
    }

    /// Count deliveries into the node's metrics from now on (once; later calls are ignored).
    pub fn set_metrics(&self, metrics: opentact_metrics::WebhookMetrics) {
        let _ = self.metrics.set(metrics);
    }

    /// A delivery left the outbox: acknowledged (its delay observed) or given up.
    fn settled(&self, delivery: Option<WebhookDelivery>, acknowledged: bool) {
        let (Some(metrics), Some(delivery)) = (self.metrics.get(), delivery) else { return };
        if acknowledged {
            metrics.delivered(
                opentact_store::now().signed_duration_since(delivery.created_on).to_std().unwrap_or_default(),
            );
        } else {
            metrics.given_up();
        }
    }

    /// The call `call` runs an app whose events also go to `url`. Call before its first event.
    pub fn call_started(&self, call: &str, url: Option<&str>) {
        if let Some(url) = url {
            self.call_also_to(call, url);
        }
    }

    /// The call's events also go to `url` (a scope of the call: its app, its number), once
    /// however many scopes name it. Call before its first event.
    pub fn call_also_to(&self, call: &str, url: &str) {
        let mut urls = self.event_urls.lock();
        let urls = urls.entry(call.to_owned()).or_default();
        if !urls.iter().any(|known| known == url) {
            urls.push(url.to_owned());
        }
    }

    /// The event `event` also goes to `route`'s URLs (signed, retried, in the outbox like the
    /// others). Call before publishing it.
    pub fn route_event(&self, event: Uuid, route: Route) {
        if !route.urls.is_empty() {
            self.routes.insert(event, route);
        }
    }
}

/// Writes each event into the outbox for every URL that wants it.
async fn outbox(
    webhooks: Arc<Webhooks>,
    store: Store,
    node: Option<String>,
    mut events: mpsc::Receiver<Arc<Event>>,
    stored: mpsc::Sender<Vec<WebhookDelivery>>,
    ready: tokio::sync::oneshot::Receiver<()>,
) {
    // The dispatcher reads the outbox's backlog first; what is stored from now on it gets from
    // here, so nothing is read twice (events wait in the tap meanwhile).
    if ready.await.is_err() {
        return;
    }
    let mut subscriptions: HashMap<Uuid, (Instant, Vec<EventSubscription>)> = HashMap::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while events.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut deliveries = Vec::new();
        for event in batch.drain(..) {
            let fresh =
                subscriptions.get(&event.account).is_some_and(|(at, _)| at.elapsed() < SUBSCRIPTIONS_TTL);
            if !fresh {
                match store.webhook_subscriptions(event.account).await {
                    Ok(list) => {
                        subscriptions.insert(event.account, (Instant::now(), list));
                    }
                    Err(error) => warn!(%error, "webhooks: reading subscriptions (using the last known)"),
                }
            }
            let call =
                event.call.as_ref().and_then(|c| c.get("uuid")).and_then(|u| u.as_str()).map(str::to_owned);
            let body = event.to_json();
            let mut add = |url: &str, url2: Option<&String>| {
                deliveries.push(NewWebhookDelivery {
                    account: event.account,
                    node: node.clone(),
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
                let urls = if event.kind == "call.destroyed" {
                    webhooks.event_urls.lock().remove(call)
                } else {
                    webhooks.event_urls.lock().get(call).cloned()
                };
                for url in urls.unwrap_or_default() {
                    add(&url, None);
                }
            }
            if let Some(route) = webhooks.routes.take(event.uuid) {
                for (url, url2) in route.urls {
                    deliveries.push(NewWebhookDelivery {
                        account: event.account,
                        node: node.clone(),
                        url,
                        url2,
                        event: event.uuid,
                        event_type: event.kind.clone(),
                        call: call.clone().or_else(|| route.chain.clone()),
                        body: body.clone(),
                    });
                }
            }
        }
        // Until the outbox has them, they exist only here: keep trying rather than drop them.
        loop {
            let written = {
                let _turn = webhooks.turn().await;
                store.enqueue_deliveries(deliveries.clone()).await
            };
            match written {
                Ok(rows) => {
                    if !rows.is_empty() && stored.send(rows).await.is_err() {
                        return;
                    }
                    break;
                }
                Err(error) => {
                    warn!(%error, count = deliveries.len(), "webhooks: writing the outbox failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Deliveries that go strictly one after the other: one call's events to one URL (events
/// without a call each make their own chain).
type ChainKey = (String, String);

fn chain_of(d: &WebhookDelivery) -> ChainKey {
    (d.url.clone(), d.call.clone().unwrap_or_else(|| d.uuid.to_string()))
}

/// What an attempt came to: delivered, or failed with when to try again (`None`: given up).
type Outcome = Result<(), Option<opentact_store::Timestamp>>;

/// What the dispatcher holds in memory: each chain's deliveries in order.
#[derive(Default)]
struct Pending {
    chains: HashMap<ChainKey, VecDeque<WebhookDelivery>>,
    /// Chains whose head may be sent now / later (min-heap by time).
    ready: VecDeque<ChainKey>,
    later: BinaryHeap<Reverse<(opentact_store::Timestamp, ChainKey)>>,
    /// Every delivery in `chains`, and those delivered whose mark is not written yet: an
    /// outbox read (after a take-over, it starts over) skips them.
    known: HashSet<Uuid>,
    /// Deliveries in `chains`.
    in_memory: usize,
}

impl Pending {
    /// Adds a delivery at the end of its chain, unless it is held already.
    fn push(&mut self, d: WebhookDelivery) {
        if !self.known.insert(d.uuid) {
            return;
        }
        self.in_memory += 1;
        let key = chain_of(&d);
        let queue = self.chains.entry(key.clone()).or_default();
        if queue.is_empty() {
            if d.next_attempt_on <= opentact_store::now() {
                self.ready.push_back(key);
            } else {
                self.later.push(Reverse((d.next_attempt_on, key)));
            }
        }
        queue.push_back(d);
    }

    /// The chain's head left memory (delivered: its id stays known until the mark is written).
    fn pop(&mut self, chain: &ChainKey, delivered: bool) -> Option<WebhookDelivery> {
        let head = self.chains.get_mut(chain)?.pop_front()?;
        self.in_memory -= 1;
        if !delivered {
            self.known.remove(&head.uuid);
        }
        Some(head)
    }
}

/// Sends deliveries from memory (the outbox in the store is their durable copy): each chain's
/// head when it is due, up to `concurrency` at once; successes are recorded in batches. On a
/// node among several it sends only what its node claims, and only while its lease holds.
async fn dispatch(
    webhooks: Arc<Webhooks>,
    store: Store,
    config: WebhookConfig,
    owner: Owner,
    mut incoming: mpsc::Receiver<Vec<WebhookDelivery>>,
    loaded: tokio::sync::oneshot::Sender<()>,
) {
    let mut pending = Pending::default();
    // Memory holds at most `cap` deliveries. `cursor`: the outbox rows after this position
    // (claimed by this node) are still to be read; `None` once everything was read. Past the
    // cap (`spilled`) reading pauses until memory drained to half, and newer rows wait in the
    // outbox only.
    let cap = config.max_pending_in_memory.max(2);
    let mut cursor: Option<i64> = Some(0);
    let name = owner.name();
    let mut changes = owner.node.as_ref().map(|node| node.changes());
    let mut seen_changes = changes.as_ref().map(|c| *c.borrow()).unwrap_or_default();
    let may_send = || owner.node.as_ref().is_none_or(|node| node.may_send());

    // The backlog: everything pending, in order (up to the cap).
    let mut spilled = read_outbox(&store, name, &mut cursor, &mut pending, cap).await.spilled;
    if pending.in_memory > 0 {
        info!(
            deliveries = pending.in_memory,
            more_in_the_outbox = spilled,
            "webhooks: resuming pending deliveries"
        );
    }
    let _ = loaded.send(());

    let config = Arc::new(config);
    let signers = webhooks.signers.clone();
    // Receivers get many small requests: keep their connections open (bounded).
    let receivers = Arc::new(Receivers::new(&config));
    let mut in_flight = tokio::task::JoinSet::new();
    // Each account's deliveries in flight, by account and by task; chains of an account at
    // its share wait here (not in a slot) until one of its deliveries ends.
    let share = config.max_in_flight_per_account.max(1);
    let mut busy: HashMap<Uuid, usize> = HashMap::new();
    let mut account_of: HashMap<tokio::task::Id, Uuid> = HashMap::new();
    let mut parked: HashMap<Uuid, VecDeque<ChainKey>> = HashMap::new();
    let mut delivered: Vec<Uuid> = Vec::new();
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Read back what waits in the outbox only, once memory has drained to half the cap.
        if spilled && pending.in_memory <= cap / 2 {
            spilled = false;
        }
        if cursor.is_some() && !spilled {
            spilled = read_outbox(&store, name, &mut cursor, &mut pending, cap).await.spilled;
        }
        // Chains whose retry time came are ready again.
        let now = opentact_store::now();
        while pending.later.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            if let Some(Reverse((_, key))) = pending.later.pop() {
                pending.ready.push_back(key);
            }
        }
        // Past the node's lease nothing is sent (another node may take these over); the next
        // renewal wakes this loop.
        while in_flight.len() < config.concurrency.max(1) && may_send() {
            let Some(key) = pending.ready.pop_front() else { break };
            let Some(head) = pending.chains.get(&key).and_then(|q| q.front()).cloned() else { continue };
            let account = head.account;
            let sending = busy.entry(account).or_default();
            if *sending >= share {
                parked.entry(account).or_default().push_back(key);
                continue;
            }
            *sending += 1;
            let (store, config, signers, receivers) =
                (store.clone(), config.clone(), signers.clone(), receivers.clone());
            let task = in_flight.spawn(async move {
                (key, head.uuid, attempt(&store, &receivers, &config, &signers, &head).await)
            });
            account_of.insert(task.id(), account);
        }
        let next_retry =
            pending.later.peek().map(|Reverse((at, _))| (*at - now).to_std().unwrap_or(Duration::ZERO));
        let changed = async {
            match changes.as_mut() {
                Some(changes) => changes.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(rows) = incoming.recv() => {
                for d in rows {
                    // The outbox read still to come gets it (spilled: it waits there).
                    if cursor.is_some_and(|after| d.position > after) {
                        continue;
                    }
                    let position = d.position;
                    pending.push(d);
                    if pending.in_memory >= cap && cursor.is_none() {
                        spilled = true;
                        cursor = Some(position);
                        warn!(in_memory = pending.in_memory, "webhooks: deliveries pile up (receivers down?); newer ones wait in the outbox");
                    }
                }
            }
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                let task = match &done {
                    Ok((task, _)) => *task,
                    Err(error) => error.id(),
                };
                if let Some(account) = account_of.remove(&task) {
                    if let Some(sending) = busy.get_mut(&account) {
                        *sending = sending.saturating_sub(1);
                        if *sending == 0 {
                            busy.remove(&account);
                        }
                    }
                    // A slot of this account's share is free: its longest-waiting chain goes.
                    if let Some(waiting) = parked.get_mut(&account) {
                        if let Some(next) = waiting.pop_front() {
                            pending.ready.push_front(next);
                        }
                        if waiting.is_empty() {
                            parked.remove(&account);
                        }
                    }
                }
                let Ok((_, (chain, id, outcome))) = done else { continue };
                // Sent, whatever became of the chain meanwhile (dropped when this node lost
                // its deliveries): the mark is written.
                if outcome.is_ok() {
                    delivered.push(id);
                }
                // Dropped meanwhile, or a different head now.
                if pending.chains.get(&chain).and_then(|q| q.front()).is_none_or(|head| head.uuid != id) {
                    continue;
                }
                let retry_at = match outcome {
                    Ok(()) => {
                        webhooks.settled(pending.pop(&chain, true), true);
                        None
                    }
                    Err(None) => {
                        webhooks.settled(pending.pop(&chain, false), false);
                        None
                    }
                    Err(Some(at)) => {
                        if let Some(head) = pending.chains.get_mut(&chain).and_then(|q| q.front_mut()) {
                            head.attempts += 1;
                        }
                        Some(at)
                    }
                };
                match (pending.chains.get(&chain).and_then(|q| q.front()), retry_at) {
                    (None, _) => {
                        pending.chains.remove(&chain);
                    }
                    (Some(_), Some(at)) => pending.later.push(Reverse((at, chain))),
                    (Some(_), None) => pending.ready.push_back(chain),
                }
            }
            _ = flush.tick(), if !delivered.is_empty() => {
                let marked = {
                    let _turn = webhooks.turn().await;
                    store.mark_delivered(&delivered).await
                };
                match marked {
                    // Recorded: an outbox read no longer returns them.
                    Ok(()) => {
                        for id in &delivered {
                            pending.known.remove(id);
                        }
                    }
                    // Delivered but not recorded: they will be sent again (at least once)
                    // after a restart; this process keeps them known and does not.
                    Err(error) => warn!(%error, count = delivered.len(), "webhooks: recording deliveries"),
                }
                delivered.clear();
            }
            alive = changed => {
                if !alive {
                    continue;
                }
                let now_changes = changes.as_ref().map(|c| *c.borrow()).unwrap_or_default();
                if now_changes.lost != seen_changes.lost {
                    // Declared dead: what this node held is another's now. Drop it and read
                    // what is this node's again (what it writes from now on).
                    warn!(dropped = pending.in_memory, "webhooks: this node's deliveries were taken over");
                    let delivered_not_marked: Vec<Uuid> =
                        pending.known.iter().copied().filter(|id| delivered.contains(id)).collect();
                    pending = Pending::default();
                    pending.known.extend(delivered_not_marked);
                    parked.clear();
                    cursor = Some(0);
                    spilled = false;
                } else if now_changes.adopted != seen_changes.adopted {
                    // A dead node's deliveries were claimed by this one: read the outbox over
                    // (what is held already is skipped).
                    cursor = Some(0);
                    spilled = false;
                }
                seen_changes = now_changes;
            }
            _ = tokio::time::sleep(next_retry.unwrap_or(Duration::from_secs(3600))), if next_retry.is_some() => {}
            else => return,
        }
    }
}

/// Who the dispatcher sends for: the rows of `name`, under `node`'s lease when the node is
/// one of several.
struct Owner {
    name: Option<String>,
    node: Option<Arc<Node>>,
}

impl Owner {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

struct OutboxRead {
    spilled: bool,
}

/// Reads the node's pending deliveries after `cursor` into memory, page after page, until
/// there are no more (`cursor` becomes `None`) or memory is full (`spilled`). Retries while
/// the store fails.
async fn read_outbox(
    store: &Store,
    node: Option<&str>,
    cursor: &mut Option<i64>,
    pending: &mut Pending,
    cap: usize,
) -> OutboxRead {
    while let Some(after) = *cursor {
        match store.pending_deliveries(node, after, STARTUP_PAGE).await {
            Ok(page) if page.is_empty() => *cursor = None,
            Ok(page) => {
                for d in page {
                    *cursor = Some(d.position);
                    pending.push(d);
                }
                if pending.in_memory >= cap {
                    return OutboxRead { spilled: true };
                }
            }
            Err(error) => {
                warn!(%error, "webhooks: reading the outbox; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    OutboxRead { spilled: false }
}

/// One attempt: the primary URL, then the secondary. A failure is recorded here, with its
/// retry time (which it returns), a success by the dispatcher's batch.
async fn attempt(
    store: &Store,
    receivers: &Receivers,
    config: &WebhookConfig,
    signers: &signers::AccountSigners,
    d: &WebhookDelivery,
) -> Outcome {
    let attempts = d.attempts + 1;
    let signer = match signers.get(store, d.account).await {
        Ok(signer) => signer,
        Err(error) => {
            warn!(%error, account = %d.account, "webhooks: no signing key");
            let retry = retry_at(config, attempts);
            let _ = store.mark_attempt_failed(d.uuid, d.attempts, "no signing key", Some(retry)).await;
            return Err(Some(retry));
        }
    };
    let mut errors = Vec::new();
    for url in std::iter::once(&d.url).chain(d.url2.as_ref()) {
        match post(receivers, config, &signer, url, &d.body).await {
            Ok(()) => {
                debug!(delivery = %d.uuid, event = %d.event, %url, attempts, "webhook delivered");
                return Ok(());
            }
            Err(error) => errors.push(format!("{url}: {error}")),
        }
    }
    let error = errors.join("; ");
    let retry = retry_time(config, attempts);
    match retry {
        Some(_) => info!(delivery = %d.uuid, attempts, %error, "webhook failed; will retry"),
        None => warn!(delivery = %d.uuid, attempts, %error, "webhook failed; giving up"),
    }
    if let Err(error) = store.mark_attempt_failed(d.uuid, attempts, &error, retry).await {
        warn!(%error, delivery = %d.uuid, "webhooks: recording a failed attempt");
    }
    Err(retry)
}

/// When to try again after `attempts` failed ones; `None` once they are used up.
fn retry_time(config: &WebhookConfig, attempts: i32) -> Option<opentact_store::Timestamp> {
    (attempts < config.max_attempts).then(|| retry_at(config, attempts))
}

fn retry_at(config: &WebhookConfig, attempts: i32) -> opentact_store::Timestamp {
    let factor = 1u64 << u32::try_from(attempts - 1).unwrap_or(0).min(20);
    let delay = config.backoff_ms.saturating_mul(factor).min(config.max_backoff_ms);
    opentact_store::now() + chrono::Duration::milliseconds(i64::try_from(delay).unwrap_or(i64::MAX / 2))
}

/// The outbound HTTP clients of the receivers, one per receiver (scheme, host, port) so that
/// idle connections have a total bound: reqwest's pool bounds idle connections per host only,
/// so the hosts are bounded here — at most `max_idle_hosts` clients, the least recently used
/// one dropped (with its idle connections; a delivery in flight keeps its own handle).
struct Receivers {
    policy: Policy,
    options: ClientOptions,
    max_hosts: usize,
    /// A use counter, and each receiver's client with the count at its last use.
    clients: Mutex<(u64, ClientsByReceiver)>,
}

type ClientsByReceiver = HashMap<String, (Client, u64)>;

impl Receivers {
    fn new(config: &WebhookConfig) -> Self {
        let policy = if config.allow_private { Policy::any() } else { Policy::public_only() };
        let options = ClientOptions {
            connect_timeout: Duration::from_millis(config.timeout_ms),
            max_redirects: 0,
            pool_max_idle_per_host: config.max_idle_per_host,
            pool_idle_timeout: Duration::from_millis(config.idle_timeout_ms),
        };
        Receivers { policy, options, max_hosts: config.max_idle_hosts.max(1), clients: Mutex::default() }
    }

    /// The client of `url`'s receiver.
    fn client(&self, url: &str) -> Client {
        let key = match url::Url::parse(url) {
            Ok(url) => format!(
                "{}://{}:{}",
                url.scheme(),
                url.host_str().unwrap_or_default(),
                url.port_or_known_default().unwrap_or(0)
            ),
            // The client refuses it with the reason.
            Err(_) => String::new(),
        };
        let mut guard = self.clients.lock();
        let (tick, clients) = &mut *guard;
        *tick += 1;
        if let Some((client, used)) = clients.get_mut(&key) {
            *used = *tick;
            return client.clone();
        }
        if clients.len() >= self.max_hosts
            && let Some(oldest) = clients.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone())
        {
            clients.remove(&oldest);
        }
        let client = Client::new(self.policy.clone(), &self.options);
        clients.insert(key, (client.clone(), *tick));
        client
    }

    #[cfg(test)]
    fn hosts(&self) -> usize {
        self.clients.lock().1.len()
    }
}

async fn post(
    receivers: &Receivers,
    config: &WebhookConfig,
    signer: &Signer,
    url: &str,
    body: &str,
) -> Result<(), String> {
    let caps = Caps { timeout: Duration::from_millis(config.timeout_ms), max_body_bytes: MAX_ANSWER_BYTES };
    let [timestamp, signature] = signer.headers(body.as_bytes());
    let headers = [(timestamp.0, timestamp.1.as_str()), (signature.0, signature.1.as_str())];
    let answer = receivers
        .client(url)
        .send("POST", url, &headers, Some(("application/json", body.as_bytes().to_vec())), &caps)
        .await
        .map_err(|error| error.to_string())?;
    if (200..300).contains(&answer.status) { Ok(()) } else { Err(format!("answered {}", answer.status)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_keep_a_bounded_number_of_hosts() {
        let config = WebhookConfig { max_idle_hosts: 2, ..WebhookConfig::default() };
        let receivers = Receivers::new(&config);
        receivers.client("https://a.example/hook");
        receivers.client("https://b.example/hook");
        receivers.client("https://a.example/other");
        assert_eq!(receivers.hosts(), 2, "one client per receiver");
        // A third receiver replaces the least recently used one (b).
        receivers.client("https://c.example/hook");
        assert_eq!(receivers.hosts(), 2);
        let kept: Vec<String> = receivers.clients.lock().1.keys().cloned().collect();
        assert!(kept.contains(&"https://a.example:443".to_owned()), "{kept:?}");
        assert!(!kept.contains(&"https://b.example:443".to_owned()), "{kept:?}");
    }
}
