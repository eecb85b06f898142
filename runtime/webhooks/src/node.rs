//! This node among several on one database: it renews its heartbeat, and takes over the work
//! of a node whose heartbeat stopped (its CDRs closed, its batch items failed, its pending
//! webhook deliveries sent from here; see [`opentact_store::NodeRepo`]).
//!
//! The lease on a delivery is its node's heartbeat: while the node renews it, no other node
//! sends what it claimed. To never send alongside a survivor, a node sends only until half the
//! timeout after the start of its last renewal, the survivor takes over after the whole
//! timeout: the other half covers an attempt in flight and the nodes' clock difference.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentact_store::{NodeRepo, Store, StoreError};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::watch;
use tracing::{info, warn};

/// How often a node renews its heartbeat, and when the others call it dead (`[server]`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeTiming {
    /// Between two renewals, ms.
    pub heartbeat_ms: u64,
    /// A node not seen for this long is dead, ms; well above `heartbeat_ms` and the webhooks'
    /// `timeout_ms` (see the module's documentation).
    pub node_timeout_ms: u64,
}

impl Default for NodeTiming {
    fn default() -> Self {
        NodeTiming { heartbeat_ms: 2_000, node_timeout_ms: 30_000 }
    }
}

/// What changed that the dispatcher must act on; each count only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Heartbeats renewed (the node may send again if it had stopped).
    pub renewed: u64,
    /// Dead nodes taken over: their deliveries are this node's now.
    pub adopted: u64,
    /// Times this node was declared dead by another (its heartbeats were late): what it
    /// claimed is the other's now.
    pub lost: u64,
}

/// This node: its name, and whether its lease holds.
#[derive(Debug)]
pub struct Node {
    name: String,
    timing: NodeTiming,
    /// Until when this node may send deliveries.
    sends_until: Mutex<Instant>,
    changes: watch::Sender<Changes>,
}

impl Node {
    /// Registers the node (`[server] node_id`) and starts renewing its heartbeat and watching
    /// for dead nodes.
    pub async fn start(store: Store, name: String, timing: NodeTiming) -> Result<Arc<Node>, StoreError> {
        let started = Instant::now();
        store.register_node(&name, opentact_store::now()).await?;
        let node = Arc::new(Node {
            name,
            timing,
            sends_until: Mutex::new(started + timing.half_timeout()),
            changes: watch::Sender::new(Changes::default()),
        });
        tokio::spawn(heartbeat(node.clone(), store));
        Ok(node)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this node's lease on its deliveries holds now.
    pub(crate) fn may_send(&self) -> bool {
        Instant::now() < *self.sends_until.lock()
    }

    pub(crate) fn changes(&self) -> watch::Receiver<Changes> {
        self.changes.subscribe()
    }
}

impl NodeTiming {
    fn half_timeout(&self) -> Duration {
        Duration::from_millis(self.node_timeout_ms / 2)
    }
}

async fn heartbeat(node: Arc<Node>, store: Store) {
    let mut tick = tokio::time::interval(Duration::from_millis(node.timing.heartbeat_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let started = Instant::now();
        match store.renew_node(&node.name, opentact_store::now()).await {
            Ok(true) => {
                *node.sends_until.lock() = started + node.timing.half_timeout();
                node.changes.send_modify(|c| c.renewed += 1);
            }
            Ok(false) => {
                warn!(node = %node.name, "this node was declared dead (late heartbeats): its calls and deliveries were taken over; starting afresh");
                if let Err(error) = store.register_node(&node.name, opentact_store::now()).await {
                    warn!(%error, "registering the node again");
                    continue;
                }
                *node.sends_until.lock() = started + node.timing.half_timeout();
                node.changes.send_modify(|c| c.lost += 1);
            }
            Err(error) => {
                warn!(%error, node = %node.name, "renewing the node's heartbeat");
                continue;
            }
        }
        // The store names the dead node in place of `{node}`.
        let reason = format!("node {{node}} stopped; closed by node {}", node.name);
        loop {
            let now = opentact_store::now();
            let dead_before = now - chrono::Duration::milliseconds(node.timing.node_timeout_ms as i64);
            match store.take_over_dead_node(&node.name, dead_before, now, &reason).await {
                Ok(Some(taken)) => {
                    info!(
                        dead = %taken.node,
                        calls_closed = taken.calls_closed,
                        batch_items_failed = taken.batch_items_failed,
                        deliveries = taken.deliveries_taken,
                        "took over a dead node"
                    );
                    node.changes.send_modify(|c| c.adopted += 1);
                }
                Ok(None) => break,
                Err(error) => {
                    warn!(%error, "taking over a dead node");
                    break;
                }
            }
        }
    }
}
