//! Bulk calls (`POST /rest/batch`): the runner places a stored batch's calls one number after
//! another, each as a REST call would be placed, paced by the batch's outbound voice profile —
//! a new call waits for a free channel (`channel_limit`) and for its start slot
//! (`calls_per_second`; [`DEFAULT_CALLS_PER_SECOND`] when the profile sets none or there is no
//! profile) — and records every number's progress in the store: queued → calling → answered →
//! completed, or busy / no_answer / failed with the Q.850 cause and reason.
//!
//! The batch lives in the store, so a restart resumes it: numbers still queued are called, and
//! a number whose call was in progress when the process died is marked failed (its call's fate
//! is unknown; calling it twice would be worse).

use std::collections::HashSet;
use std::sync::Arc;

use opentact_call::events::Q850;
use opentact_call::model::DialTarget;
use opentact_control::{BatchLauncher, Originate};
use opentact_store::OutboundVoiceProfile;
use opentact_store::model::{AppMode, Batch, BatchItemState, BatchItemUpdate, BatchState};
use parking_lot::Mutex;
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

use crate::Repo;
use crate::billing::PAYMENT_CAUSE;
use crate::call_runner::CallEnd;
use crate::originate::Originator;

/// Calls started per second when the batch's profile sets no rate: a batch never bursts.
pub const DEFAULT_CALLS_PER_SECOND: i32 = 10;

/// Places batches' calls.
#[derive(Clone)]
pub struct BatchRunner {
    pub originator: Arc<Originator>,
    pub store: Repo,
    /// Batches being placed now (a launch of a running batch is ignored).
    running: Arc<Mutex<HashSet<Uuid>>>,
}

/// Why a batch's numbers cannot be called at all.
struct Unplaceable(String);

impl BatchRunner {
    pub fn new(originator: Arc<Originator>, store: Repo) -> Self {
        BatchRunner { originator, store, running: Arc::default() }
    }

    /// Resume the batches a previous run of the process left unfinished.
    pub async fn resume(&self) {
        match self.store.unfinished_batches().await {
            Ok(batches) => {
                for batch in batches {
                    info!(batch = %batch.uuid, "resuming a batch");
                    self.launch(batch.account, batch.uuid);
                }
            }
            Err(error) => warn!(%error, "reading unfinished batches"),
        }
    }

    /// What each call of the batch runs, from whom, under which limits.
    async fn plan(&self, batch: &Batch) -> Result<Originate, Unplaceable> {
        let store_error =
            |error: opentact_store::StoreError| Unplaceable(format!("the store failed: {error}"));
        let lease = self.store.lease_by_tn(batch.from_tn).await.map_err(store_error)?;
        let Some(lease) = lease.filter(|lease| lease.account == batch.account && lease.voice) else {
            return Err(Unplaceable(format!(
                "{} is no longer a voice number of this account",
                batch.from_tn
            )));
        };
        let (mode, app) = match (&batch.xml, batch.sip_control_app) {
            (Some(xml), _) => (AppMode::Xml { document: xml.clone() }, None),
            (None, Some(app)) => {
                let app = self
                    .store
                    .get_app(batch.account, app)
                    .await
                    .map_err(store_error)?
                    .ok_or_else(|| Unplaceable(format!("app {app} no longer exists")))?;
                (app.mode.clone(), Some(app))
            }
            (None, None) => return Err(Unplaceable("the batch names no flow".to_owned())),
        };
        let mut profile =
            match batch.outbound_voice_profile {
                Some(id) => {
                    Some(self.store.get_ovp(batch.account, id).await.map_err(store_error)?.ok_or_else(
                        || Unplaceable(format!("outbound voice profile {id} no longer exists")),
                    )?)
                }
                None => None,
            };
        // Pacing needs a profile to count against: without one the batch is its own.
        let pacing = profile.get_or_insert_with(|| OutboundVoiceProfile {
            uuid: batch.uuid,
            account: batch.account,
            name: format!("batch {}", batch.uuid),
            channel_limit: None,
            max_rate_micros: None,
            daily_spend_limit_micros: None,
            record_calls: false,
            shaken_sign_policy: Default::default(),
            calls_per_second: None,
            created_on: batch.created_on,
            modified_on: batch.modified_on,
            deleted_on: None,
        });
        pacing.calls_per_second = pacing.calls_per_second.or(Some(DEFAULT_CALLS_PER_SECOND));
        Ok(Originate {
            from_tn: batch.from_tn,
            to: DialTarget::Number(String::new()),
            mode,
            app,
            ring_timeout_secs: u32::try_from(batch.ring_timeout_secs).unwrap_or(30),
            profile,
            event_url: lease.event_url,
        })
    }

    async fn update(&self, batch: Uuid, position: i32, update: BatchItemUpdate) {
        if let Err(error) = self.store.update_batch_item(batch, position, update).await {
            warn!(%batch, position, %error, "recording a batch number's progress");
        }
    }

    async fn cancelled(&self, account: Uuid, batch: Uuid) -> bool {
        matches!(
            self.store.get_batch(account, batch).await,
            Ok(Some(Batch { state: BatchState::Cancelled, .. })) | Ok(None)
        )
    }

    /// Place every queued number of the batch, then mark it completed.
    async fn run(self, account: Uuid, id: Uuid) {
        let batch = match self.store.get_batch(account, id).await {
            Ok(Some(batch)) if !batch.state.is_final() => batch,
            Ok(_) => return,
            Err(error) => {
                warn!(%error, "reading the batch");
                return;
            }
        };
        if let Err(error) = self.store.set_batch_state(id, BatchState::Running).await {
            warn!(%error, "starting the batch");
            return;
        }
        let items = match self.store.batch_items(id).await {
            Ok(items) => items,
            Err(error) => {
                warn!(%error, "reading the batch's numbers");
                return;
            }
        };
        let plan = self.plan(&batch).await;
        let mut calls = JoinSet::new();
        for item in items {
            match item.state {
                BatchItemState::Queued => {}
                BatchItemState::Calling | BatchItemState::Answered => {
                    let reason = "interrupted: the platform stopped while this call was in progress";
                    let update = BatchItemUpdate {
                        reason: Some(reason.to_owned()),
                        ended_on: Some(chrono::Utc::now()),
                        ..BatchItemUpdate::state(BatchItemState::Failed)
                    };
                    self.update(id, item.position, update).await;
                    continue;
                }
                _ => continue,
            }
            let request = match &plan {
                Ok(request) => request,
                Err(Unplaceable(reason)) => {
                    let update = BatchItemUpdate {
                        reason: Some(reason.clone()),
                        ended_on: Some(chrono::Utc::now()),
                        ..BatchItemUpdate::state(BatchItemState::Failed)
                    };
                    self.update(id, item.position, update).await;
                    continue;
                }
            };
            if self.cancelled(account, id).await {
                info!("batch cancelled: no more calls are placed");
                break;
            }
            let limits = &self.originator.limits;
            let profile = request.profile.as_ref().expect("a batch always paces against a profile");
            let channel = limits.channel(profile).await;
            if let Some(slot) = limits.start_slot(profile, None).await {
                tokio::time::sleep_until(slot).await;
            }
            let request = Originate { to: DialTarget::Number(item.phone.clone()), ..request.clone() };
            let (to, profile) = (request.to.clone(), profile.clone());
            // The account's share of the node: a number over it fails with the reason.
            let account_slot = self.originator.runner.admission.admit(account).await;
            let prepared = match self.originator.prepare(account, &request).await {
                Ok(prepared) => prepared,
                Err(error) => {
                    let update = BatchItemUpdate {
                        reason: Some(format!("{error:?}")),
                        ended_on: Some(chrono::Utc::now()),
                        ..BatchItemUpdate::state(BatchItemState::Failed)
                    };
                    self.update(id, item.position, update).await;
                    continue;
                }
            };
            let call = prepared.id;
            let update = BatchItemUpdate {
                call: Some(call),
                started_on: Some(chrono::Utc::now()),
                ..BatchItemUpdate::state(BatchItemState::Calling)
            };
            self.update(id, item.position, update).await;
            let runner = self.clone();
            let position = item.position;
            calls.spawn(
                async move {
                    let (answered_tx, answered_rx) = tokio::sync::oneshot::channel();
                    let watcher = runner.clone();
                    let on_answer = tokio::spawn(async move {
                        if answered_rx.await.is_ok() {
                            watcher
                                .update(id, position, BatchItemUpdate::state(BatchItemState::Answered))
                                .await;
                        }
                    });
                    let mut refusal = account_slot
                        .as_ref()
                        .err()
                        .map(|refusal| (Q850::NO_CIRCUIT_AVAILABLE, refusal.to_string()));
                    // A number the account cannot pay for fails with why; the rest go on.
                    let mut rated = None;
                    if refusal.is_none() {
                        match runner.originator.billing.authorize(account, Some(&profile), &to).await {
                            Ok(rating) => rated = rating,
                            Err(refused) => refusal = Some((PAYMENT_CAUSE, refused.0)),
                        }
                    }
                    let end = runner.originator.place(prepared, refusal, rated, Some(answered_tx)).await;
                    drop(channel);
                    drop(account_slot);
                    // The "answered" mark lands before the final one.
                    let _ = on_answer.await;
                    runner.update(id, position, outcome(&end)).await;
                }
                .instrument(info_span!("batch call", %call, position)),
            );
        }
        while calls.join_next().await.is_some() {}
        if let Err(error) = self.store.set_batch_state(id, BatchState::Completed).await {
            warn!(%error, "completing the batch");
        }
        info!("batch done");
    }
}

/// A number's final state from how its call ended.
fn outcome(end: &CallEnd) -> BatchItemUpdate {
    let state = match (end.answered, end.q850_cause) {
        (true, _) => BatchItemState::Completed,
        (false, 17) => BatchItemState::Busy,
        (false, 19) => BatchItemState::NoAnswer,
        (false, _) => BatchItemState::Failed,
    };
    BatchItemUpdate {
        q850_cause: Some(i32::from(end.q850_cause)),
        reason: end.reason.clone(),
        ended_on: Some(chrono::Utc::now()),
        ..BatchItemUpdate::state(state)
    }
}

impl std::fmt::Debug for BatchRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchRunner").field("running", &self.running.lock().len()).finish_non_exhaustive()
    }
}

impl BatchLauncher for BatchRunner {
    fn launch(&self, account: Uuid, batch: Uuid) {
        if !self.running.lock().insert(batch) {
            return;
        }
        let runner = self.clone();
        tokio::spawn(
            async move {
                runner.clone().run(account, batch).await;
                runner.running.lock().remove(&batch);
            }
            .instrument(info_span!("batch", %batch, %account)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_end_gives_the_numbers_final_state() {
        let end = |answered, cause| CallEnd { answered, q850_cause: cause, reason: None };
        assert_eq!(outcome(&end(true, 16)).state, BatchItemState::Completed);
        assert_eq!(outcome(&end(false, 17)).state, BatchItemState::Busy);
        assert_eq!(outcome(&end(false, 19)).state, BatchItemState::NoAnswer);
        assert_eq!(outcome(&end(false, 41)).state, BatchItemState::Failed);
        assert_eq!(outcome(&end(false, 34)).q850_cause, Some(34));
    }
}
