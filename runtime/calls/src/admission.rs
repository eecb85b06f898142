//! Whether a new call may start on this node: not while the platform drains for a stop, and
//! not beyond an account's share of concurrent calls.
//!
//! Every call the engine runs — inbound to a number or a SIP domain, from a SIP user, placed
//! over REST or by a batch — takes a [`CallSlot`] before it rings and gives it back when it
//! ends, so one account cannot take every channel, media port and flow instance the node has
//! (the outbound voice profiles' channel limits are the customer's own, finer limits).
//!
//! With several nodes sharing PostgreSQL ([`Admission::shared`]) an account's calls are
//! counted in the database, as the profiles' channels are ([`opentact_store::LimitRepo`]): the
//! cap holds for all the nodes together. A node that cannot reach the database counts its own
//! calls alone rather than refuse every call.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use opentact_store::LimitRepo;
use parking_lot::Mutex;
use tracing::warn;

use crate::shared_limits::SharedLimits;
use uuid::Uuid;

/// Concurrent calls one account may have on a node when the config sets no other number
/// (`calls.max_calls_per_account`).
pub const DEFAULT_MAX_CALLS_PER_ACCOUNT: usize = 200;

/// Why a call may not start now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The platform is stopping: it finishes its calls and takes no new ones.
    #[error("the platform is shutting down and takes no new calls")]
    Draining,
    /// The account has as many calls as it may.
    #[error("account call limit reached: {limit} concurrent calls")]
    AccountLimit { limit: usize },
}

/// The gate every new call passes.
#[derive(Debug)]
pub struct Admission {
    max_per_account: usize,
    draining: AtomicBool,
    /// This node's calls per account (the count itself when no database is shared).
    calls: Mutex<HashMap<Uuid, usize>>,
    /// Nodes share the database: it counts.
    shared: Option<SharedLimits>,
    /// Where refusals are counted (`opentact_calls_refused_total`): a busy account's refusals
    /// are logged at info only, one per call, so operators see them here.
    metrics: Option<opentact_metrics::CallMetrics>,
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(DEFAULT_MAX_CALLS_PER_ACCOUNT)
    }
}

/// One running call's place, given back when dropped.
#[derive(Debug)]
pub struct CallSlot {
    admission: Arc<Admission>,
    account: Uuid,
    /// Its lease in the database, when nodes share one.
    lease: Option<Uuid>,
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        let mut calls = self.admission.calls.lock();
        if let Some(count) = calls.get_mut(&self.account) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                calls.remove(&self.account);
            }
        }
        if let (Some(lease), Some(shared)) = (self.lease, &self.admission.shared) {
            shared.give_back(lease, || {});
        }
    }
}

impl Admission {
    /// A gate allowing `max_per_account` concurrent calls to each account (at least one).
    pub fn new(max_per_account: usize) -> Self {
        Admission {
            max_per_account: max_per_account.max(1),
            draining: AtomicBool::new(false),
            calls: Mutex::default(),
            shared: None,
            metrics: None,
        }
    }

    /// Count refusals in `metrics`.
    pub fn with_metrics(mut self, metrics: opentact_metrics::CallMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// [`Self::new`], each account's calls counted in `store` together with the other nodes
    /// that share it; this node is `node` there.
    pub fn shared(max_per_account: usize, store: Arc<dyn LimitRepo>, node: String) -> Self {
        Admission { shared: Some(SharedLimits::new(store, node)), ..Admission::new(max_per_account) }
    }

    /// A slot for a new call of `account`, or why not.
    pub async fn admit(self: &Arc<Self>, account: Uuid) -> Result<CallSlot, Refusal> {
        let admitted = self.take_slot(account).await;
        if let (Err(refusal), Some(metrics)) = (&admitted, &self.metrics) {
            metrics.refused(match refusal {
                Refusal::Draining => opentact_metrics::CallRefusal::Draining,
                Refusal::AccountLimit { .. } => opentact_metrics::CallRefusal::AccountLimit,
            });
        }
        admitted
    }

    async fn take_slot(self: &Arc<Self>, account: Uuid) -> Result<CallSlot, Refusal> {
        if self.is_draining() {
            return Err(Refusal::Draining);
        }
        let limit = self.max_per_account;
        let mut lease = None;
        if let Some(shared) = &self.shared {
            match shared.take(&format!("account:{account}"), limit).await {
                Ok(Some(id)) => lease = Some(id),
                Ok(None) => return Err(Refusal::AccountLimit { limit }),
                Err(error) => {
                    warn!(%error, "account call cap: the database is unreachable; this node counts alone")
                }
            }
        }
        let mut calls = self.calls.lock();
        let count = calls.entry(account).or_default();
        if lease.is_none() && *count >= limit {
            return Err(Refusal::AccountLimit { limit });
        }
        *count += 1;
        Ok(CallSlot { admission: self.clone(), account, lease })
    }

    /// From now on no new call starts (calls in progress go on).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the platform is stopping.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Calls running now, all accounts together.
    pub fn running(&self) -> usize {
        self.calls.lock().values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_account_at_its_cap_is_refused_while_others_are_admitted() {
        let metrics = opentact_metrics::CallMetrics::default();
        let admission = Arc::new(Admission::new(2).with_metrics(metrics.clone()));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = admission.admit(a).await.expect("first");
        let _second = admission.admit(a).await.expect("second");
        assert_eq!(admission.admit(a).await.unwrap_err(), Refusal::AccountLimit { limit: 2 });
        let _other = admission.admit(b).await.expect("another account is not affected");
        drop(first);
        let _again = admission.admit(a).await.expect("a slot given back is free again");
        assert_eq!(admission.running(), 3);
        assert_eq!(
            metrics.refusals(opentact_metrics::CallRefusal::AccountLimit),
            1,
            "the refusal is counted"
        );
        assert_eq!(metrics.refusals(opentact_metrics::CallRefusal::Draining), 0);
    }

    #[tokio::test]
    async fn draining_refuses_new_calls_and_keeps_running_ones() {
        let admission = Arc::new(Admission::new(10));
        let running = admission.admit(Uuid::new_v4()).await.expect("admitted");
        admission.start_draining();
        assert_eq!(admission.admit(Uuid::new_v4()).await.unwrap_err(), Refusal::Draining);
        assert_eq!(admission.running(), 1);
        drop(running);
        assert_eq!(admission.running(), 0);
    }
}
