//! Events across the nodes of one PostgreSQL (issue 14, item 3): every node sends the events
//! it publishes to the others ([`opentact_store::EventRelayRepo`], NOTIFY on
//! [`EVENT_CHANNEL`]), and publishes theirs on its own bus as relayed
//! ([`EventBus::publish_relayed`]) — so a websocket client on any node hears the account's
//! events from every node, and can resume after any of them on any node (each node's
//! retention window holds them all).
//!
//! Order: a call lives on one node, which sends its events in the order it published them, in
//! one ordered batch per round trip; PostgreSQL delivers a session's notifications in commit
//! order. So a call's events arrive in order everywhere. Events of calls on different nodes
//! interleave in the order they reach each node.
//!
//! Webhooks are not relayed: the node that published an event wrote its deliveries to the
//! outbox. What is not durable: a node whose listening connection drops misses the events
//! sent meanwhile (logged); its clients reconcile through the REST API, as after a resume
//! outside the retention window.

use std::sync::Arc;
use std::time::Duration;

use opentact_events::{Event, EventBus};
use opentact_store::{EVENT_CHANNEL, EventRelayRepo, Store, StoreListener};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use uuid::Uuid;

/// Events sent in one round trip at most.
const BATCH: usize = 500;
/// How long an event too large for a notification is kept for the other nodes to read.
const KEEP_LARGE: Duration = Duration::from_secs(300);

/// Starts relaying: `own` is the bus's [`EventBus::relay_tap`]. On PostgreSQL only; `false`
/// (and nothing started) on SQLite, which no other node shares.
pub async fn start(store: Store, node: String, bus: Arc<EventBus>, own: mpsc::Receiver<Arc<Event>>) -> bool {
    let listener = match store.listen(&[EVENT_CHANNEL]).await {
        Ok(Some(listener)) => listener,
        Ok(None) => return false,
        Err(error) => {
            warn!(%error, "cannot listen for the other nodes' events: websocket clients here hear only this node's");
            return false;
        }
    };
    tokio::spawn(send(store.clone(), node.clone(), own));
    tokio::spawn(receive(store, node, bus, listener));
    true
}

/// Sends this node's events, in batches of what has piled up since the last round trip.
async fn send(store: Store, node: String, mut own: mpsc::Receiver<Arc<Event>>) {
    let mut last_purge = tokio::time::Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(event) = own.recv().await {
        batch.push((event.uuid, event.to_json()));
        while batch.len() < BATCH {
            match own.try_recv() {
                Ok(event) => batch.push((event.uuid, event.to_json())),
                Err(_) => break,
            }
        }
        if let Err(error) = store.relay_events(&node, &batch).await {
            warn!(%error, events = batch.len(), "events not sent to the other nodes (their websocket clients miss them)");
        }
        batch.clear();
        if last_purge.elapsed() >= KEEP_LARGE / 5 {
            last_purge = tokio::time::Instant::now();
            let before = chrono::Utc::now()
                - chrono::Duration::from_std(KEEP_LARGE).unwrap_or(chrono::Duration::minutes(5));
            match store.purge_relayed_events(before).await {
                Ok(0) => {}
                Ok(purged) => debug!(purged, "old large relayed events deleted"),
                Err(error) => warn!(%error, "deleting old relayed events failed"),
            }
        }
    }
}

/// Publishes the other nodes' events on this node's bus.
async fn receive(store: Store, node: String, bus: Arc<EventBus>, mut listener: StoreListener) {
    loop {
        let (_, payload) = match listener.recv().await {
            Ok(notification) => notification,
            Err(error) => {
                // The listener reconnects on the next receive; what was sent meanwhile is lost.
                warn!(%error, "the other nodes' events: connection lost, reconnecting (events sent meanwhile are missed)");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some((from, body)) = payload.split_once('\n') else {
            warn!(payload = %payload.chars().take(80).collect::<String>(), "a relayed event without its node: ignored");
            continue;
        };
        if from == node {
            continue;
        }
        let json = match body.strip_prefix('@').map(str::parse::<Uuid>) {
            None => body.to_owned(),
            Some(Ok(id)) => match store.relayed_event(id).await {
                Ok(Some(json)) => json,
                Ok(None) => {
                    warn!(%id, from, "a large relayed event is gone (deleted before it was read): missed");
                    continue;
                }
                Err(error) => {
                    warn!(%error, %id, from, "reading a large relayed event failed: missed");
                    continue;
                }
            },
            Some(Err(_)) => {
                warn!(from, "a relayed event names no event: ignored");
                continue;
            }
        };
        match Event::from_json(&json) {
            Ok(event) => bus.publish_relayed(event),
            Err(error) => info!(%error, from, "a relayed event that does not read: ignored"),
        }
    }
}
