//! Commands for calls carried by another node of the same PostgreSQL (issue 14, item 2).
//!
//! The REST API of any node takes `POST /rest/call/{uuid}/command`. When the call is live on
//! another node (the call log says which), the API's node writes the command to the database
//! and notifies that node ([`CommandRelayRepo::relay_command`], NOTIFY on
//! [`COMMAND_CHANNEL`]); the carrying node claims it, queues it on the call as if it had come
//! to its own API, and writes the outcome (NOTIFY on [`OUTCOME_CHANNEL`]); the sender answers
//! the client with the same status as a local command would get. The row is the durable copy:
//!
//! - a carrying node that missed a notification (its listener reconnecting) finds its pending
//!   rows on its next sweep, every [`SWEEP_INTERVAL`];
//! - a sender that missed the outcome's notification reads the row every [`POLL_INTERVAL`];
//! - a command nobody claimed within [`FORWARD_TIMEOUT`] is expired by its sender (503 to the
//!   client) and never runs late — a client that retries is not surprised by a second run.
//!
//! Bridging two calls on different nodes is not relayed: their media would have to cross
//! between the nodes, which the platform does not do; the API refuses it with 409.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use opentact_control::{CallCommand, CallControl, CommandForwarder, CommandOutcome};
use opentact_store::{
    COMMAND_CHANNEL, CommandRelayRepo, OUTCOME_CHANNEL, RelayedCommand, RelayedOutcome, Store, new_id, now,
};
use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};
use tracing::{debug, info, warn};
use uuid::Uuid;

/// How long a sender waits for the carrying node to take a command.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a sender reads its command's row while waiting, besides the notification.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often a node looks for pending commands besides the notifications.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Commands claimed per round.
const CLAIM_BATCH: u32 = 100;
/// Rows older than this are deleted (every answered one long since).
const KEEP_ROWS: Duration = Duration::from_secs(3600);

/// This node's end of the relay: runs the commands sent to it, and sends others' commands.
pub struct CommandRelay {
    store: Store,
    node: String,
    local: Arc<dyn CallControl>,
    /// Senders waiting for an outcome, by command id.
    waiting: Mutex<HashMap<Uuid, oneshot::Sender<()>>>,
    /// Wakes the runner (a notification for this node).
    wake: Notify,
}

impl std::fmt::Debug for CommandRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandRelay")
            .field("node", &self.node)
            .field("waiting", &self.waiting.lock().len())
            .finish()
    }
}

impl CommandRelay {
    /// The relay of node `node`, running commands on `local` (the node's live calls); its
    /// listener and sweeper run until the process ends. On SQLite (no other node shares the
    /// database) only the sweeper runs.
    pub async fn start(store: Store, node: &str, local: Arc<dyn CallControl>) -> Arc<CommandRelay> {
        let relay = Arc::new(CommandRelay {
            store: store.clone(),
            node: node.to_owned(),
            local,
            waiting: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        });
        match store.listen(&[COMMAND_CHANNEL, OUTCOME_CHANNEL]).await {
            Ok(Some(listener)) => {
                tokio::spawn(listen(Arc::downgrade(&relay), listener));
            }
            Ok(None) => {}
            Err(error) => warn!(%error, "cannot listen for relayed commands; the sweep still finds them"),
        }
        tokio::spawn(run(Arc::downgrade(&relay)));
        relay
    }

    /// Claims and runs this node's pending commands, in the order they were sent.
    async fn run_pending(&self) {
        loop {
            let claimed = match self.store.claim_relayed_commands(&self.node, CLAIM_BATCH).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    warn!(%error, "reading relayed commands failed");
                    return;
                }
            };
            let full = claimed.len() == CLAIM_BATCH as usize;
            for command in claimed {
                let outcome = self
                    .local
                    .command(
                        command.account,
                        command.call,
                        CallCommand {
                            name: command.name.clone(),
                            xml: command.xml,
                            command_id: command.command_id,
                        },
                    )
                    .await;
                debug!(call = %command.call, command = %command.name, ?outcome, "relayed command run");
                let outcome = match outcome {
                    CommandOutcome::Accepted => RelayedOutcome::Accepted,
                    CommandOutcome::Duplicate => RelayedOutcome::Duplicate,
                    CommandOutcome::NotFound => RelayedOutcome::NotFound,
                    CommandOutcome::WrongState { state, reason } => {
                        RelayedOutcome::WrongState { state, reason }
                    }
                };
                if let Err(error) = self.store.answer_relayed_command(command.id, &outcome, now()).await {
                    warn!(%error, call = %command.call, "the outcome of a relayed command was not stored");
                }
            }
            if !full {
                return;
            }
        }
    }

    /// Waits for `id`'s outcome: its notification, or a read every [`POLL_INTERVAL`], until
    /// `deadline`.
    async fn outcome(&self, id: Uuid, deadline: tokio::time::Instant) -> Option<RelayedOutcome> {
        let (sender, mut notified) = oneshot::channel();
        self.waiting.lock().insert(id, sender);
        let outcome = loop {
            match self.store.relayed_command_outcome(id).await {
                Ok(Some(outcome)) => break Some(outcome),
                Ok(None) => {}
                Err(error) => warn!(%error, "reading a relayed command's outcome failed"),
            }
            if tokio::time::Instant::now() >= deadline {
                break None;
            }
            let wait = POLL_INTERVAL.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            // A notification ends the wait early; then the row is read again.
            if tokio::time::timeout(wait, &mut notified).await.is_ok() {
                let (sender, again) = oneshot::channel();
                self.waiting.lock().insert(id, sender);
                notified = again;
            }
        };
        self.waiting.lock().remove(&id);
        outcome
    }
}

impl CommandForwarder for CommandRelay {
    fn forward(
        &self,
        account: Uuid,
        call: Uuid,
        node: &str,
        command: CallCommand,
    ) -> Pin<Box<dyn Future<Output = Result<CommandOutcome, String>> + Send + '_>> {
        let node = node.to_owned();
        Box::pin(async move {
            let id = new_id();
            let relayed = RelayedCommand {
                id,
                account,
                call,
                node: node.clone(),
                name: command.name,
                xml: command.xml,
                command_id: command.command_id,
                created_on: now(),
            };
            self.store
                .relay_command(&relayed)
                .await
                .map_err(|error| format!("relaying the command: {error}"))?;
            let deadline = tokio::time::Instant::now() + FORWARD_TIMEOUT;
            let mut outcome = self.outcome(id, deadline).await;
            if outcome.is_none() {
                // Nobody claimed it: it must never run late. Claimed meanwhile: its outcome is
                // a moment away (running is queueing on a live call).
                match self.store.expire_relayed_command(id, now()).await {
                    Ok(true) => outcome = Some(RelayedOutcome::Expired),
                    Ok(false) => {
                        outcome = self.outcome(id, tokio::time::Instant::now() + FORWARD_TIMEOUT).await;
                    }
                    Err(error) => return Err(format!("expiring the relayed command: {error}")),
                }
            }
            match outcome {
                Some(RelayedOutcome::Accepted) => Ok(CommandOutcome::Accepted),
                Some(RelayedOutcome::Duplicate) => Ok(CommandOutcome::Duplicate),
                Some(RelayedOutcome::NotFound) => Ok(CommandOutcome::NotFound),
                Some(RelayedOutcome::WrongState { state, reason }) => {
                    Ok(CommandOutcome::WrongState { state, reason })
                }
                Some(RelayedOutcome::Expired) | None => Err(format!(
                    "node {node}, which carries call {call}, did not take the command within {} s; it was \
                     not run",
                    FORWARD_TIMEOUT.as_secs()
                )),
            }
        })
    }
}

/// Wakes the runner on this node's commands and the senders on their outcomes.
async fn listen(relay: std::sync::Weak<CommandRelay>, mut listener: opentact_store::StoreListener) {
    loop {
        let received = listener.recv().await;
        let Some(relay) = relay.upgrade() else { return };
        match received {
            Ok((channel, payload)) if channel == COMMAND_CHANNEL => {
                if payload == relay.node {
                    relay.wake.notify_one();
                }
            }
            Ok((_, payload)) => {
                if let Ok(id) = payload.parse::<Uuid>()
                    && let Some(waiter) = relay.waiting.lock().remove(&id)
                {
                    let _ = waiter.send(());
                }
            }
            Err(error) => {
                warn!(%error, "the relayed commands' listener lost its connection; reconnecting");
                tokio::time::sleep(SWEEP_INTERVAL).await;
            }
        }
    }
}

/// Runs this node's commands when woken and every [`SWEEP_INTERVAL`]; purges old rows.
async fn run(relay: std::sync::Weak<CommandRelay>) {
    let mut last_purge = tokio::time::Instant::now();
    loop {
        let Some(strong) = relay.upgrade() else { return };
        let _ = tokio::time::timeout(SWEEP_INTERVAL, strong.wake.notified()).await;
        strong.run_pending().await;
        if last_purge.elapsed() >= KEEP_ROWS / 6 {
            last_purge = tokio::time::Instant::now();
            let before = now() - chrono::Duration::from_std(KEEP_ROWS).unwrap_or(chrono::Duration::hours(1));
            match strong.store.purge_relayed_commands(before).await {
                Ok(0) => {}
                Ok(purged) => info!(purged, "old relayed commands deleted"),
                Err(error) => warn!(%error, "deleting old relayed commands failed"),
            }
        }
    }
}
