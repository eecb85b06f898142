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
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig { retention: Duration::from_secs(600), max_retained: 100_000, queue_capacity: 1024 }
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
}

struct Subscriber {
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
    retained: VecDeque<(Instant, Arc<Event>)>,
    subscribers: HashMap<Uuid, Vec<Subscriber>>,
}

/// Publishes events to the subscribers of their account. Cheap to share (`Arc`).
pub struct EventBus {
    config: BusConfig,
    inner: Mutex<Inner>,
    /// Every account's events, for a durable consumer (the webhook outbox), which must see
    /// all of them: unbounded, and it never drops.
    tap: Option<mpsc::UnboundedSender<Arc<Event>>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").field("config", &self.config).finish_non_exhaustive()
    }
}

impl EventBus {
    pub fn new(config: BusConfig) -> Self {
        EventBus { config, inner: Mutex::new(Inner::default()), tap: None }
    }

    /// A bus that also hands every event to the returned receiver (in publishing order).
    pub fn with_tap(config: BusConfig) -> (Self, mpsc::UnboundedReceiver<Arc<Event>>) {
        let (tap, events) = mpsc::unbounded_channel();
        (EventBus { config, inner: Mutex::new(Inner::default()), tap: Some(tap) }, events)
    }

    /// The configuration in force.
    pub fn config(&self) -> BusConfig {
        self.config
    }

    /// Keep `event` and hand it to its account's subscribers. Never waits: a subscriber whose
    /// queue is full is dropped (it sees [`Lagged`]).
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        let now = Instant::now();
        let mut inner = self.inner.lock();
        while inner.retained.len() >= self.config.max_retained.max(1)
            || inner.retained.front().is_some_and(|(at, _)| now.duration_since(*at) > self.config.retention)
        {
            inner.retained.pop_front();
        }
        inner.retained.push_back((now, event.clone()));
        // Under the lock, so the tap sees events in the order subscribers do.
        if let Some(tap) = &self.tap {
            let _ = tap.send(event.clone());
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
        let mut inner = self.inner.lock();
        let backlog: Vec<Arc<Event>> = match after {
            None => Vec::new(),
            Some(after) => {
                let position = inner
                    .retained
                    .iter()
                    .position(|(_, e)| e.uuid == after && e.account == account)
                    .ok_or(ResumeError::Unknown(after))?;
                inner
                    .retained
                    .iter()
                    .skip(position + 1)
                    .filter(|(_, e)| e.account == account && wants(&types, &e.kind))
                    .map(|(_, e)| e.clone())
                    .collect()
            }
        };
        // Room for the backlog on top of the live queue, so a resume never starts lagged.
        let (sender, receiver) = mpsc::channel(self.config.queue_capacity.max(1) + backlog.len());
        for event in backlog {
            let _ = sender.try_send(event);
        }
        let lagged = Arc::new(AtomicBool::new(false));
        inner.subscribers.entry(account).or_default().push(Subscriber {
            types,
            sender,
            lagged: lagged.clone(),
        });
        Ok(Subscription { receiver, lagged })
    }

    /// Live subscribers (all accounts), for metrics and tests.
    pub fn subscriber_count(&self) -> usize {
        self.inner.lock().subscribers.values().map(Vec::len).sum()
    }
}

/// One consumer's stream of events.
#[derive(Debug)]
pub struct Subscription {
    receiver: mpsc::Receiver<Arc<Event>>,
    lagged: Arc<AtomicBool>,
}

impl Subscription {
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
}
