//! The in-process event bus: fan-out per account, bounded queues, a retention window.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::envelope::Event;

/// How much the bus keeps and buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusConfig {
    /// How long published events are kept for consumers that resume (default 10 minutes).
    pub retention: Duration,
    /// Most events kept, all accounts together (default 100 000); the oldest go first.
    pub max_retained: usize,
    /// Events a subscriber may have waiting before it is cut off as too slow (default 1024).
    pub queue_capacity: usize,
    /// Most bytes of kept events (their JSON), all accounts together (default 64 MiB): large
    /// payloads cannot make the retention window hold more memory than this; the oldest go first.
    pub max_retained_bytes: usize,
    /// Most live subscribers per account (default 50): each holds a queue of up to
    /// `queue_capacity` events. The next is refused with [`ResumeError::TooManySubscribers`].
    pub max_subscribers_per_account: usize,
    /// Events the tap (the webhook outbox writer) may have waiting (default 100 000).
    /// Publishing never waits (calls publish), so past this the tap's events are dropped,
    /// counted ([`EventBus::tap_dropped`]) and logged as errors: each is a webhook lost. The
    /// writer stores them in batches, so reaching it means the database is far behind.
    pub tap_capacity: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            retention: Duration::from_secs(600),
            max_retained: 100_000,
            queue_capacity: 1024,
            max_retained_bytes: 64 * 1024 * 1024,
            max_subscribers_per_account: 50,
            tap_capacity: 100_000,
        }
    }
}

/// A subscriber was cut off: it let more than [`BusConfig::queue_capacity`] events pile up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged;

/// Why a subscription could not resume.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// The event is not (or no longer) in the retention window, or is another account's.
    #[error(
        "event {0} is not among the events kept for resuming (older than the retention window, or unknown): \
         events may have been missed; subscribe without `after` and reconcile through the REST API"
    )]
    Unknown(Uuid),
    /// The account has [`BusConfig::max_subscribers_per_account`] live subscribers already.
    #[error(
        "this account already has {0} live event subscribers, the most allowed: close one, or resume an \
         existing one by its `session`"
    )]
    TooManySubscribers(usize),
}

struct Subscriber {
    /// Its session: a later subscription naming it replaces this one.
    session: Uuid,
    replaced: Arc<AtomicBool>,
    /// Event types wanted (`call.hangup`, or a group prefix such as `call.`); empty = all.
    types: Vec<String>,
    sender: mpsc::Sender<Arc<Event>>,
    lagged: Arc<AtomicBool>,
}

impl Subscriber {
    fn wants(&self, kind: &str) -> bool {
        wants(&self.types, kind)
    }
}

fn wants(types: &[String], kind: &str) -> bool {
    types.is_empty() || types.iter().any(|t| t == kind || (t.ends_with('.') && kind.starts_with(t.as_str())))
}

#[derive(Default)]
struct Inner {
    /// Kept events: when published, the event, its size in bytes.
    retained: VecDeque<(Instant, Arc<Event>, usize)>,
    /// Sum of the sizes in `retained`.
    retained_bytes: usize,
    subscribers: HashMap<Uuid, Vec<Subscriber>>,
}

/// Publishes events to the subscribers of their account. Cheap to share (`Arc`).
pub struct EventBus {
    config: BusConfig,
    inner: Mutex<Inner>,
    /// Every account's events, for a durable consumer (the webhook outbox), which must see
    /// all of them: bounded by [`BusConfig::tap_capacity`]; what overflows is counted.
    tap: Option<mpsc::Sender<Arc<Event>>>,
    tap_dropped: std::sync::atomic::AtomicU64,
    /// This node's own events, for the other nodes of a shared database ([`Self::relay_tap`]).
    relay: Option<mpsc::Sender<Arc<Event>>>,
    relay_dropped: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").field("config", &self.config).finish_non_exhaustive()
    }
}

impl EventBus {
    pub fn new(config: BusConfig) -> Self {
        EventBus {
            config,
            inner: Mutex::new(Inner::default()),
            tap: None,
            tap_dropped: Default::default(),
            relay: None,
            relay_dropped: Default::default(),
        }
    }

    /// A bus that also hands every event to the returned receiver (in publishing order).
    /// At most [`BusConfig::tap_capacity`] wait in it; more are dropped ([`Self::tap_dropped`]).
    pub fn with_tap(config: BusConfig) -> (Self, mpsc::Receiver<Arc<Event>>) {
        let (tap, events) = mpsc::channel(config.tap_capacity.max(1));
        let bus = EventBus { tap: Some(tap), ..EventBus::new(config) };
        (bus, events)
    }

    /// A second tap, for the events this node publishes and its peers' websocket clients want
    /// (the relay to the other nodes of a shared database): every event given to
    /// [`Self::publish`], in order, and none given to [`Self::publish_relayed`] — a relayed
    /// event is never sent back. At most [`BusConfig::tap_capacity`] wait; more are dropped
    /// and counted ([`Self::relay_dropped`]). Replaces an earlier relay tap.
    pub fn relay_tap(&mut self) -> mpsc::Receiver<Arc<Event>> {
        let (relay, events) = mpsc::channel(self.config.tap_capacity.max(1));
        self.relay = Some(relay);
        events
    }

    /// Events the relay tap's consumer never got because its queue was full.
    pub fn relay_dropped(&self) -> u64 {
        self.relay_dropped.load(Ordering::Relaxed)
    }

    /// Events the tap's consumer never got because its queue was full.
    pub fn tap_dropped(&self) -> u64 {
        self.tap_dropped.load(Ordering::Relaxed)
    }

    /// The configuration in force.
    pub fn config(&self) -> BusConfig {
        self.config
    }

    /// Keep `event` and hand it to its account's subscribers and the taps. Never waits: a
    /// subscriber whose queue is full is dropped (it sees [`Lagged`]).
    pub fn publish(&self, event: Event) {
        self.deliver(event, true);
    }

    /// Keep an event another node published and relayed here, and hand it to its account's
    /// subscribers — not to the taps: its node wrote its webhooks, and relayed it.
    pub fn publish_relayed(&self, event: Event) {
        self.deliver(event, false);
    }

    fn deliver(&self, event: Event, own: bool) {
        // Outside the lock: the size of what is kept is its JSON, as clients receive it.
        let size = event.to_json().len();
        let event = Arc::new(event);
        let now = Instant::now();
        let mut inner = self.inner.lock();
        while inner.retained.len() >= self.config.max_retained.max(1)
            || inner.retained_bytes + size > self.config.max_retained_bytes
            || inner
                .retained
                .front()
                .is_some_and(|(at, _, _)| now.duration_since(*at) > self.config.retention)
        {
            let Some((_, _, evicted)) = inner.retained.pop_front() else { break };
            inner.retained_bytes -= evicted;
        }
        // An event larger than the whole window is delivered live but not kept.
        if size <= self.config.max_retained_bytes {
            inner.retained.push_back((now, event.clone(), size));
            inner.retained_bytes += size;
        }
        // Under the lock, so the taps see events in the order subscribers do.
        if own {
            let capacity = self.config.tap_capacity;
            let relay_lost =
                "event relay full: events not sent to the other nodes (their websocket clients miss them)";
            offer(&self.relay, &self.relay_dropped, &event, capacity, relay_lost);
            let webhooks_lost =
                "event tap full: events dropped before the webhook outbox (their webhooks are lost)";
            offer(&self.tap, &self.tap_dropped, &event, capacity, webhooks_lost);
        }
        let Some(subscribers) = inner.subscribers.get_mut(&event.account) else { return };
        subscribers.retain(|subscriber| {
            if !subscriber.wants(&event.kind) {
                return !subscriber.sender.is_closed();
            }
            match subscriber.sender.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.lagged.store(true, Ordering::Release);
                    tracing::info!(account = %event.account, "event subscriber too slow: cut off");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        if subscribers.is_empty() {
            inner.subscribers.remove(&event.account);
        }
    }

    /// Subscribe to `account`'s events of `types` (empty: all; `call.` a whole group). With
    /// `after`, first the kept events published after that one, then the live ones — none
    /// missed, none twice.
    pub fn subscribe(
        &self,
        account: Uuid,
        types: Vec<String>,
        after: Option<Uuid>,
    ) -> Result<Subscription, ResumeError> {
        self.subscribe_session(account, types, after, None)
    }

    /// [`Self::subscribe`], continuing `session` (the [`Subscription::session`] of an earlier
    /// subscription of this account, e.g. a websocket that dropped): that subscription, if
    /// still there, is ended ([`Subscription::replaced`]) and this one takes its place, so a
    /// client that reconnects never holds two. An unknown `session` starts a new one. At most
    /// [`BusConfig::max_subscribers_per_account`] live subscribers per account.
    pub fn subscribe_session(
        &self,
        account: Uuid,
        types: Vec<String>,
        after: Option<Uuid>,
        session: Option<Uuid>,
    ) -> Result<Subscription, ResumeError> {
        let mut inner = self.inner.lock();
        let backlog: Vec<Arc<Event>> = match after {
            None => Vec::new(),
            Some(after) => {
                let position = inner
                    .retained
                    .iter()
                    .position(|(_, e, _)| e.uuid == after && e.account == account)
                    .ok_or(ResumeError::Unknown(after))?;
                inner
                    .retained
                    .iter()
                    .skip(position + 1)
                    .filter(|(_, e, _)| e.account == account && wants(&types, &e.kind))
                    .map(|(_, e, _)| e.clone())
                    .collect()
            }
        };
        // Forget the account's subscribers that are gone (otherwise they go at its next event),
        // end the one this continues, then count.
        let subscribers = inner.subscribers.entry(account).or_default();
        subscribers.retain(|s| !s.sender.is_closed());
        let session = match session {
            Some(session) => {
                if let Some(at) = subscribers.iter().position(|s| s.session == session) {
                    let old = subscribers.swap_remove(at);
                    old.replaced.store(true, Ordering::Release);
                }
                session
            }
            None => Uuid::new_v4(),
        };
        let limit = self.config.max_subscribers_per_account;
        if subscribers.len() >= limit {
            if subscribers.is_empty() {
                inner.subscribers.remove(&account);
            }
            return Err(ResumeError::TooManySubscribers(limit));
        }
        // Room for the backlog on top of the live queue, so a resume never starts lagged.
        let (sender, receiver) = mpsc::channel(self.config.queue_capacity.max(1) + backlog.len());
        for event in backlog {
            let _ = sender.try_send(event);
        }
        let lagged = Arc::new(AtomicBool::new(false));
        let replaced = Arc::new(AtomicBool::new(false));
        inner.subscribers.entry(account).or_default().push(Subscriber {
            session,
            replaced: replaced.clone(),
            types,
            sender,
            lagged: lagged.clone(),
        });
        Ok(Subscription { receiver, lagged, replaced, session })
    }

    /// Bytes of the events kept for resuming (their JSON), for metrics and tests.
    pub fn retained_bytes(&self) -> usize {
        self.inner.lock().retained_bytes
    }

    /// Events kept for resuming, for metrics and tests.
    pub fn retained_count(&self) -> usize {
        self.inner.lock().retained.len()
    }

    /// Live subscribers (all accounts), for metrics and tests.
    pub fn subscriber_count(&self) -> usize {
        self.inner.lock().subscribers.values().map(Vec::len).sum()
    }
}

/// Hands `event` to `tap` without waiting; a full tap drops it, counted in `dropped` and
/// logged as `lost` — loudly, but not once per event of a flood.
fn offer(
    tap: &Option<mpsc::Sender<Arc<Event>>>,
    dropped: &std::sync::atomic::AtomicU64,
    event: &Arc<Event>,
    capacity: usize,
    lost: &str,
) {
    if let Some(tap) = tap
        && let Err(mpsc::error::TrySendError::Full(_)) = tap.try_send(event.clone())
    {
        let dropped = dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            tracing::error!(dropped, capacity, "{lost}");
        }
    }
}

/// One consumer's stream of events.
#[derive(Debug)]
pub struct Subscription {
    receiver: mpsc::Receiver<Arc<Event>>,
    lagged: Arc<AtomicBool>,
    replaced: Arc<AtomicBool>,
    session: Uuid,
}

impl Subscription {
    /// Its session, to continue it from another connection ([`EventBus::subscribe_session`]).
    pub fn session(&self) -> Uuid {
        self.session
    }

    /// Whether a later subscription of the same session ended this one (then [`Self::next`]
    /// gives `None` after what was queued).
    pub fn replaced(&self) -> bool {
        self.replaced.load(Ordering::Acquire)
    }

    /// The next event; `Err(Lagged)` once the bus has cut this subscriber off (after the
    /// events it had queued); `None` when the bus is gone.
    pub async fn next(&mut self) -> Option<Result<Arc<Event>, Lagged>> {
        match self.receiver.recv().await {
            Some(event) => Some(Ok(event)),
            None if self.lagged.load(Ordering::Acquire) => Some(Err(Lagged)),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn event(account: Uuid, kind: &str) -> Event {
        Event {
            uuid: Uuid::new_v4(),
            kind: kind.to_owned(),
            created_on: Utc::now(),
            account,
            message: None,
            call: None,
            seq: None,
            occurred_at: Utc::now(),
            payload: json!({}),
        }
    }

    async fn next_kind(s: &mut Subscription) -> String {
        s.next().await.expect("open").expect("not lagged").kind.clone()
    }

    #[tokio::test]
    async fn accounts_see_only_their_events_and_the_types_they_asked_for() {
        let bus = EventBus::new(BusConfig::default());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut all = bus.subscribe(a, vec![], None).expect("subscribe");
        let mut hangups = bus.subscribe(a, vec!["call.hangup".into()], None).expect("subscribe");
        let mut group = bus.subscribe(a, vec!["call.".into()], None).expect("subscribe");
        let mut other = bus.subscribe(b, vec![], None).expect("subscribe");
        bus.publish(event(a, "call.answered"));
        bus.publish(event(b, "call.initiated"));
        bus.publish(event(a, "call.hangup"));
        bus.publish(event(a, "tn.changed"));
        assert_eq!(next_kind(&mut all).await, "call.answered");
        assert_eq!(next_kind(&mut all).await, "call.hangup");
        assert_eq!(next_kind(&mut all).await, "tn.changed");
        assert_eq!(next_kind(&mut hangups).await, "call.hangup");
        assert_eq!(next_kind(&mut group).await, "call.answered");
        assert_eq!(next_kind(&mut group).await, "call.hangup");
        assert_eq!(next_kind(&mut other).await, "call.initiated");
        drop(other);
        bus.publish(event(b, "call.hangup"));
        assert_eq!(bus.subscriber_count(), 3, "a dropped subscriber is forgotten");
    }

    #[tokio::test]
    async fn a_resume_replays_what_was_missed_exactly_once() {
        let bus = EventBus::new(BusConfig::default());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = event(a, "call.initiated");
        let seen = first.uuid;
        bus.publish(first);
        bus.publish(event(b, "call.initiated"));
        bus.publish(event(a, "call.answered"));
        bus.publish(event(a, "call.hangup"));
        let mut resumed = bus.subscribe(a, vec![], Some(seen)).expect("resume");
        bus.publish(event(a, "call.destroyed"));
        assert_eq!(next_kind(&mut resumed).await, "call.answered");
        assert_eq!(next_kind(&mut resumed).await, "call.hangup");
        assert_eq!(next_kind(&mut resumed).await, "call.destroyed");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), resumed.next()).await.is_err(),
            "nothing twice"
        );
        // Another account's event id does not resume (and reveals nothing).
        assert_eq!(bus.subscribe(b, vec![], Some(seen)).err(), Some(ResumeError::Unknown(seen)));
    }

    #[tokio::test]
    async fn the_window_forgets_old_events() {
        let bus = EventBus::new(BusConfig { max_retained: 2, ..BusConfig::default() });
        let a = Uuid::new_v4();
        let oldest = event(a, "call.initiated");
        let id = oldest.uuid;
        bus.publish(oldest);
        bus.publish(event(a, "call.answered"));
        bus.publish(event(a, "call.hangup"));
        let error = bus.subscribe(a, vec![], Some(id)).expect_err("forgotten");
        assert!(error.to_string().contains("may have been missed"), "{error}");
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_cut_off_without_slowing_the_publisher() {
        let bus = EventBus::new(BusConfig { queue_capacity: 3, ..BusConfig::default() });
        let a = Uuid::new_v4();
        let mut slow = bus.subscribe(a, vec![], None).expect("subscribe");
        let mut fast = bus.subscribe(a, vec![], None).expect("subscribe");
        for _ in 0..3 {
            bus.publish(event(a, "call.callflow"));
            fast.next().await.expect("open").expect("fine");
        }
        // The fourth overflows the slow one's queue: publish still returns at once.
        bus.publish(event(a, "call.hangup"));
        assert_eq!(next_kind(&mut fast).await, "call.hangup");
        for _ in 0..3 {
            assert_eq!(next_kind(&mut slow).await, "call.callflow", "what was queued is delivered");
        }
        assert_eq!(slow.next().await, Some(Err(Lagged)));
        assert_eq!(bus.subscriber_count(), 1);
    }

    #[tokio::test]
    async fn the_window_is_capped_in_bytes_oldest_first() {
        let bus = EventBus::new(BusConfig { max_retained_bytes: 64 * 1024, ..BusConfig::default() });
        let a = Uuid::new_v4();
        let mut big = event(a, "call.callflow");
        big.payload = json!({"padding": "x".repeat(1024)});
        let first = big.uuid;
        bus.publish(big);
        for _ in 0..200 {
            let mut e = event(a, "call.callflow");
            e.payload = json!({"padding": "x".repeat(1024)});
            bus.publish(e);
        }
        assert!(bus.retained_bytes() <= 64 * 1024, "{} bytes kept", bus.retained_bytes());
        assert!(bus.retained_count() < 64 && bus.retained_count() > 40, "{}", bus.retained_count());
        assert_eq!(bus.subscribe(a, vec![], Some(first)).err(), Some(ResumeError::Unknown(first)));
        // One event larger than the window is delivered, not kept, and evicts nothing needed.
        let mut live = bus.subscribe(a, vec![], None).expect("subscribe");
        let mut huge = event(a, "call.callflow");
        huge.payload = json!({"padding": "x".repeat(128 * 1024)});
        bus.publish(huge);
        assert_eq!(next_kind(&mut live).await, "call.callflow");
        assert!(bus.retained_bytes() <= 64 * 1024);
    }

    #[tokio::test]
    async fn a_session_resumed_replaces_its_subscriber() {
        let bus = EventBus::new(BusConfig::default());
        let a = Uuid::new_v4();
        let seen = event(a, "call.initiated");
        let after = seen.uuid;
        bus.publish(seen);
        let mut first = bus.subscribe(a, vec![], None).expect("subscribe");
        let session = first.session();
        // Reconnecting a hundred times, with no event in between, holds one subscriber.
        let mut latest = None;
        for _ in 0..100 {
            latest = Some(bus.subscribe_session(a, vec![], Some(after), Some(session)).expect("resume"));
        }
        assert_eq!(bus.subscriber_count(), 1);
        assert!(first.replaced());
        assert_eq!(first.next().await, None, "the replaced one ends");
        let mut latest = latest.expect("subscribed");
        assert_eq!(latest.session(), session);
        bus.publish(event(a, "call.answered"));
        assert_eq!(next_kind(&mut latest).await, "call.answered");
        // Another account cannot end it by naming its session.
        let _other = bus.subscribe_session(Uuid::new_v4(), vec![], None, Some(session)).expect("subscribe");
        assert!(!latest.replaced());
    }

    #[tokio::test]
    async fn subscribers_are_capped_per_account() {
        let bus = EventBus::new(BusConfig { max_subscribers_per_account: 3, ..BusConfig::default() });
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut held: Vec<Subscription> =
            (0..3).map(|_| bus.subscribe(a, vec![], None).expect("room")).collect();
        let error = bus.subscribe(a, vec![], None).expect_err("full");
        assert_eq!(error, ResumeError::TooManySubscribers(3));
        assert!(error.to_string().contains("3 live event subscribers"), "{error}");
        // Resuming one of them still works; another account is not affected.
        let session = held[0].session();
        held.push(bus.subscribe_session(a, vec![], None, Some(session)).expect("resume at the cap"));
        let _b = bus.subscribe(b, vec![], None).expect("another account");
        // A closed one frees its place at once, without waiting for an event.
        held.remove(1);
        let _again = bus.subscribe(a, vec![], None).expect("room again");
    }

    #[tokio::test]
    async fn the_tap_is_bounded_and_counts_what_it_drops() {
        let (bus, mut tap) = EventBus::with_tap(BusConfig { tap_capacity: 10, ..BusConfig::default() });
        let a = Uuid::new_v4();
        for _ in 0..15 {
            bus.publish(event(a, "call.callflow"));
        }
        assert_eq!(bus.tap_dropped(), 5);
        for _ in 0..10 {
            tap.recv().await.expect("kept");
        }
        assert!(tap.try_recv().is_err(), "no more than the capacity waited");
    }

    #[tokio::test]
    async fn relayed_events_reach_subscribers_and_resumes_but_no_tap() {
        let (mut bus, mut tap) = EventBus::with_tap(BusConfig { tap_capacity: 10, ..BusConfig::default() });
        let mut relay = bus.relay_tap();
        let a = Uuid::new_v4();
        let mut subscriber = bus.subscribe(a, vec![], None).expect("subscribe");
        let own = event(a, "call.initiated");
        let theirs = event(a, "call.answered");
        bus.publish(own.clone());
        bus.publish_relayed(theirs.clone());
        bus.publish(event(a, "call.hangup"));
        assert_eq!(next_kind(&mut subscriber).await, "call.initiated");
        assert_eq!(next_kind(&mut subscriber).await, "call.answered");
        assert_eq!(next_kind(&mut subscriber).await, "call.hangup");
        // Both taps get this node's two, in order, and never the relayed one.
        for receiver in [&mut tap, &mut relay] {
            assert_eq!(receiver.recv().await.expect("own").uuid, own.uuid);
            assert_eq!(receiver.recv().await.expect("own").kind, "call.hangup");
            assert!(receiver.try_recv().is_err(), "the relayed event is not tapped");
        }
        // A client resumes after the relayed event as after any other.
        let mut resumed = bus.subscribe(a, vec![], Some(theirs.uuid)).expect("kept for resuming");
        assert_eq!(next_kind(&mut resumed).await, "call.hangup");
    }

    #[test]
    fn an_event_reads_back_from_its_json() {
        let mut original = event(Uuid::new_v4(), "call.callflow");
        original.call = Some(json!({"uuid": Uuid::new_v4()}));
        original.seq = Some(7);
        original.payload = json!({"verb": "say", "phase": "finished"});
        let read = Event::from_json(&original.to_json()).expect("reads back");
        assert_eq!(read.to_json(), original.to_json(), "the same JSON, field for field");
        assert_eq!((read.uuid, read.seq, read.account), (original.uuid, Some(7), original.account));
        let bare = event(Uuid::new_v4(), "account.changed");
        assert_eq!(Event::from_json(&bare.to_json()).expect("reads back").call, None);
        assert!(Event::from_json("{\"type\":\"call.hangup\"}").is_err(), "an envelope without its fields");
    }
}
