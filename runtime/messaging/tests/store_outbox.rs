//! The durable outbox (the store's MessageRepo behind `StoreOutbox`) drained by the Sender:
//! each part submitted once, the receipts move the stored messages to their outcome, and the
//! observer hears every move in order. SQLite in a temporary directory; a carrier in memory.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use async_trait::async_trait;
use chrono::Utc;
use opentact_messaging::model::ReceiptStatus;
use opentact_messaging::outbox::{Carrier, Outbox, Sender, SenderConfig, UnknownPolicy};
use opentact_messaging::smpp::{DeliveryReceipt, SmppError, Submission, SubmitOutcome};
use opentact_messaging::store::{OutboxObserver, StoreOutbox};
use opentact_store::*;
use parking_lot::Mutex;
use tokio::sync::watch;

/// Takes every part, names it `id-<n>`.
#[derive(Default)]
struct Accepting {
    submitted: Mutex<Vec<Submission>>,
}

#[async_trait]
impl Carrier for Accepting {
    async fn submit(&self, part: Submission) -> Result<SubmitOutcome, SmppError> {
        let mut submitted = self.submitted.lock();
        submitted.push(part);
        Ok(SubmitOutcome::Accepted { message_id: format!("id-{}", submitted.len()) })
    }
}

#[derive(Default)]
struct Moves(Mutex<Vec<(uuid::Uuid, SmsState)>>);

impl OutboxObserver for Moves {
    fn moved(&self, m: &SmsMessage) {
        self.0.lock().push((m.uuid, m.state));
    }
}

fn receipt(id: &str, status: ReceiptStatus) -> DeliveryReceipt {
    DeliveryReceipt {
        message_id: id.into(),
        status,
        error: None,
        submit_date: None,
        done_date: None,
        handset: String::new(),
        sender: String::new(),
    }
}

#[tokio::test]
async fn the_sender_drains_the_store_and_receipts_settle_messages() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&format!("sqlite://{}/o.db?mode=rwc", dir.path().display())).await?;
    let account = store
        .create_account(NewAccount {
            name: "a".into(),
            email: "a@outbox.test".into(),
            password: "correct horse battery".into(),
            time_zone: "UTC".into(),
        })
        .await?
        .uuid;
    let tn = 12029820100;
    store
        .upsert_numbers(&[NumberInventory {
            tn,
            npa: 202,
            state: Some("DC".into()),
            voice: false,
            sms: true,
            available: true,
            created_on: now(),
            modified_on: now(),
        }])
        .await?;
    let lease = store.lease_tn(account, NewLease { tn, voice: false, sms: true, autorenew: false }).await?;
    let new = |to: &str, text: &str, parts| NewSms {
        direction: SmsDirection::Smso,
        tn_lease: Some(lease.uuid),
        from: tn.to_string(),
        to: to.into(),
        text: text.into(),
        encoding: "gsm7".into(),
        parts,
        custom_callback_url: None,
        queue: true,
    };
    let one = store.create_sms(account, new("12025550111", "hello", 1)).await?;
    let two = store.create_sms(account, new("12025550112", &"x".repeat(200), 2)).await?;

    let repo: Arc<dyn MessageRepo> = Arc::new(store.clone());
    let moves = Arc::new(Moves::default());
    let outbox = Arc::new(StoreOutbox::new(repo, UnknownPolicy::AtLeastOnce).with_observer(moves.clone()));
    let carrier = Arc::new(Accepting::default());
    let config = SenderConfig { poll_interval_ms: 20, ..SenderConfig::default() };
    let sender = Sender::new(outbox.clone(), carrier.clone(), config);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(sender.run(stopped));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while moves.0.lock().len() < 2 {
        ensure!(tokio::time::Instant::now() < deadline, "not sent: {:?}", moves.0.lock());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Three parts on the air, each once; nothing claimed twice.
    tokio::time::sleep(Duration::from_millis(100)).await;
    ensure!(carrier.submitted.lock().len() == 3, "{} submits", carrier.submitted.lock().len());
    for m in [&one, &two] {
        ensure!(store.get_sms(account, m.uuid).await?.context("stored")?.state == SmsState::Sent);
    }
    // Receipts: ids id-1..id-3 went to the three parts.
    for id in ["id-1", "id-2", "id-3"] {
        outbox.record_receipt(&receipt(id, ReceiptStatus::Delivered), Utc::now()).await?;
    }
    for m in [&one, &two] {
        let m = store.get_sms(account, m.uuid).await?.context("stored")?;
        let states: Vec<_> = m.history.iter().map(|h| h.state).collect();
        ensure!(
            states == vec![SmsState::Created, SmsState::Queued, SmsState::Sent, SmsState::Delivered],
            "{states:?}"
        );
    }
    let seen = moves.0.lock().clone();
    ensure!(seen.len() == 4, "{seen:?}");
    for m in [one.uuid, two.uuid] {
        let mine: Vec<_> = seen.iter().filter(|(u, _)| *u == m).map(|(_, s)| *s).collect();
        ensure!(mine == vec![SmsState::Sent, SmsState::Delivered], "{mine:?}");
    }
    stop.send(true)?;
    task.await?;
    Ok(())
}
