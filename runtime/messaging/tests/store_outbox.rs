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
        user_message_reference: None,
    }
}

/// A store in a temporary directory with an account leasing an SMS number.
async fn fixture() -> Result<(tempfile::TempDir, Store, uuid::Uuid, TnLease)> {
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
    Ok((dir, store, account, lease))
}

fn new_sms(lease: &TnLease, to: &str, text: &str, parts: i32) -> NewSms {
    NewSms {
        direction: SmsDirection::Smso,
        tn_lease: Some(lease.uuid),
        from: lease.tn.to_string(),
        to: to.into(),
        text: text.into(),
        encoding: "gsm7".into(),
        parts,
        custom_callback_url: None,
        queue: true,
    }
}

#[tokio::test]
async fn the_sender_drains_the_store_and_receipts_settle_messages() -> Result<()> {
    let (_dir, store, account, lease) = fixture().await?;
    let new = |to: &str, text: &str, parts| new_sms(&lease, to, text, parts);
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

/// Takes every part, slowly.
#[derive(Default)]
struct Slow {
    started: std::sync::atomic::AtomicBool,
    submitted: Mutex<usize>,
}

#[async_trait]
impl Carrier for Slow {
    async fn submit(&self, _part: Submission) -> Result<SubmitOutcome, SmppError> {
        self.started.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut n = self.submitted.lock();
        *n += 1;
        Ok(SubmitOutcome::Accepted { message_id: format!("slow-{n}") })
    }
}

/// The sender's heartbeat: an attempt that lasts several claim leases keeps its message — a
/// second sender's outbox (another node on the same store) claiming all along never gets it —
/// and the message goes out once.
#[tokio::test]
async fn a_slow_attempt_keeps_its_claim_and_no_other_sender_takes_it() -> Result<()> {
    let (_dir, store, account, lease) = fixture().await?;
    let m = store.create_sms(account, new_sms(&lease, "12025550121", "slowly", 1)).await?;
    let repo: Arc<dyn MessageRepo> = Arc::new(store.clone());
    let outbox = Arc::new(StoreOutbox::new(repo.clone(), UnknownPolicy::AtLeastOnce).with_lease_ms(600));
    ensure!(outbox.renew_every() == Some(Duration::from_millis(200)));
    let carrier = Arc::new(Slow::default());
    let config = SenderConfig { poll_interval_ms: 20, ..SenderConfig::default() };
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(Sender::new(outbox, carrier.clone(), config).run(stopped));
    let other = StoreOutbox::new(repo, UnknownPolicy::AtLeastOnce).with_lease_ms(600);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !carrier.started.load(std::sync::atomic::Ordering::SeqCst) {
        ensure!(tokio::time::Instant::now() < deadline, "the sender did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    loop {
        let taken = other.claim(10, Duration::ZERO).await?;
        ensure!(taken.is_empty(), "another sender took a message held by a running attempt: {taken:?}");
        if store.get_sms(account, m.uuid).await?.context("stored")?.state == SmsState::Sent {
            break;
        }
        ensure!(tokio::time::Instant::now() < deadline, "not sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(*carrier.submitted.lock() == 1);
    stop.send(true)?;
    task.await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The store's side of the outbox on SQLite and PostgreSQL: claim renewal and parts in doubt.

/// Runs `case` on SQLite, then on PostgreSQL: a fresh database (`createdb`, dropped after) on
/// the server at 127.0.0.1:5432 (user postgres, trust auth). When that server is unreachable
/// the PostgreSQL half is skipped with a message, except under `CI`, where that is a failure.
async fn on_both_backends<F, Fut>(name: &str, case: F) -> Result<()>
where
    F: Fn(Store, String) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/o.db?mode=rwc", dir.path().display());
    case(Store::open(&url).await?, url).await.with_context(|| format!("{name} on SQLite"))?;
    let db = format!("opentact_sms_{}", uuid::Uuid::new_v4().simple());
    let pg = ["-h", "127.0.0.1", "-U", "postgres"];
    let made = std::process::Command::new("createdb").args(pg).arg(&db).output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        let why = match made {
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        ensure!(std::env::var_os("CI").is_none(), "{name}: no PostgreSQL at 127.0.0.1 ({why}) and CI is set");
        eprintln!("SKIP {name} on PostgreSQL: {why}");
        return Ok(());
    }
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let outcome = async {
        let store = Store::open(&url).await.context("open postgres")?;
        let result = tokio::spawn(case(store.clone(), url.clone())).await;
        store.close().await;
        anyhow::Ok(result)
    }
    .await;
    let _ = std::process::Command::new("dropdb").args(pg).args(["--force", &db]).output();
    match outcome? {
        Ok(result) => result.with_context(|| format!("{name} on PostgreSQL")),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(join.into()),
    }
}

/// Runs one SQL statement on the store at `url` with the backend's own client.
fn sql(url: &str, statement: &str) -> Result<()> {
    let output = match url.strip_prefix("sqlite://") {
        Some(rest) => std::process::Command::new("sqlite3")
            .arg(rest.split('?').next().unwrap_or(rest))
            .arg(statement)
            .output()?,
        None => std::process::Command::new("psql").args([url, "-c", statement]).output()?,
    };
    ensure!(output.status.success(), "{statement}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}

/// An account leasing the SMS number `tn` in `s`.
async fn sms_fixture(s: &Store, tn: i64) -> Result<(uuid::Uuid, TnLease)> {
    let account = s
        .create_account(NewAccount {
            name: "a".into(),
            email: format!("{tn}@outbox.test"),
            password: "correct horse battery".into(),
            time_zone: "UTC".into(),
        })
        .await?
        .uuid;
    s.upsert_numbers(&[NumberInventory {
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
    let lease = s.lease_tn(account, NewLease { tn, voice: false, sms: true, autorenew: false }).await?;
    Ok((account, lease))
}

fn states(m: &SmsMessage) -> Vec<SmsState> {
    m.history.iter().map(|h| h.state).collect()
}

#[tokio::test]
async fn claims_are_renewed_on_both_backends() -> Result<()> {
    on_both_backends("claims_are_renewed", claims_are_renewed_while_their_sender_holds_them).await
}

#[tokio::test]
async fn parts_in_doubt_on_both_backends() -> Result<()> {
    on_both_backends("parts_in_doubt", parts_in_doubt_wait_for_the_grace_and_an_echoed_reference_settles_them)
        .await
}

/// The sender's heartbeat: a claim renewed before it runs out keeps its messages from every
/// other claimer; one that is not renewed runs out and the message is handed out again, after
/// which the first claim's token renews nothing.
async fn claims_are_renewed_while_their_sender_holds_them(s: Store, _url: String) -> Result<()> {
    let s = &s;
    let (a, lease) = sms_fixture(s, 12029820006).await?;
    let m = s.create_sms(a, new_sms(&lease, "12025550301", "hello", 1)).await?;
    // A claim whose lease has already run out (as if its attempt were slow)…
    let first = s.claim_sms_with(10, -1, ExpiredClaim::Requeue, 0).await?;
    ensure!(first.len() == 1 && first[0].uuid == m.uuid);
    // …renewed by its sender: nobody else gets the message.
    ensure!(s.renew_sms_claims(&[first[0].token], 60_000).await? == 1);
    ensure!(s.claim_sms_with(10, 60_000, ExpiredClaim::Requeue, 0).await?.is_empty(), "taken while renewed");
    // Nothing to renew for a token nobody holds, nor for no token.
    ensure!(s.renew_sms_claims(&[uuid::Uuid::new_v4()], 60_000).await? == 0);
    ensure!(s.renew_sms_claims(&[], 60_000).await? == 0);
    // Not renewed (its sender died): it runs out and another claimer takes it over…
    ensure!(s.renew_sms_claims(&[first[0].token], -1).await? == 1);
    let second = s.claim_sms_with(10, 60_000, ExpiredClaim::Requeue, 0).await?;
    ensure!(second.len() == 1 && second[0].uuid == m.uuid && second[0].token != first[0].token);
    // …and the dead claim's token no longer renews it.
    ensure!(s.renew_sms_claims(&[first[0].token], 60_000).await? == 0);
    // Recorded: no longer held, so nothing to renew.
    s.record_sms_attempt(m.uuid, &[(0, "r1".to_string())].into(), &SmsAttempt::Sent, now()).await?;
    ensure!(s.renew_sms_claims(&[second[0].token], 60_000).await? == 0);
    Ok(())
}

/// Exactly-once across a crash: the parts a claim hands out are in doubt under references
/// unique among the parts in doubt; a message whose claim ran out with parts in doubt waits
/// for the grace; a receipt echoing a part's reference (to the part's handset) settles it as
/// taken; after the grace without one, the policy decides (sent again under new references,
/// or failed). An attempt whose answers were lost keeps those parts in doubt the same way.
async fn parts_in_doubt_wait_for_the_grace_and_an_echoed_reference_settles_them(
    s: Store,
    url: String,
) -> Result<()> {
    let s = &s;
    let (a, lease) = sms_fixture(s, 12029820007).await?;
    let delivered = |id: &str| SmsReceipt {
        carrier_id: id.into(),
        status: "delivered".into(),
        part_final: Some(SmsState::Delivered),
    };
    // Two parts claimed by a sender that dies at once (its lease already ran out).
    let two = s.create_sms(a, new_sms(&lease, "12025550401", "hello", 2)).await?;
    let one = s.create_sms(a, new_sms(&lease, "12025550402", "hello", 1)).await?;
    let claimed = s.claim_sms_with(10, -1, ExpiredClaim::Requeue, 0).await?;
    ensure!(claimed.len() == 2, "{claimed:?}");
    let refs: Vec<u16> = claimed.iter().flat_map(|c| c.references.values().copied()).collect();
    ensure!(claimed[0].references.len() == 2 && claimed[1].references.len() == 1, "{claimed:?}");
    let mut distinct = refs.clone();
    distinct.sort_unstable();
    distinct.dedup();
    ensure!(distinct.len() == 3, "references in doubt are unique: {refs:?}");
    ensure!(distinct == vec![0, 1, 2], "handed out in turn from 0: {refs:?}");
    // When the counter comes round to references still in doubt, they are skipped.
    sql(&url, "UPDATE sms_reference SET next_ref = 1")?;
    let four = s.create_sms(a, new_sms(&lease, "12025550404", "hello", 1)).await?;
    let fourth = s.claim_sms_with(10, 60_000, ExpiredClaim::Requeue, 60_000).await?;
    ensure!(fourth.len() == 1 && fourth[0].uuid == four.uuid, "{fourth:?}");
    ensure!(fourth[0].references == [(0, 3)].into(), "{fourth:?}");
    // Within the grace nobody hands them out again, under either policy.
    ensure!(s.claim_sms_with(10, 60_000, ExpiredClaim::Requeue, 60_000).await?.is_empty());
    ensure!(s.claim_sms_with(10, 60_000, ExpiredClaim::Fail, 60_000).await?.is_empty());
    // An echoed reference for another handset is not this part's.
    let (r0, r1) = (claimed[0].references[&0], claimed[0].references[&1]);
    ensure!(s.record_sms_receipt_echoed(&delivered("c0"), Some((r0, "19995550000")), now()).await?.is_none());
    // The SMSC took both parts of the first: receipts echoing their references settle it.
    ensure!(s.record_sms_receipt_echoed(&delivered("c0"), Some((r0, "12025550401")), now()).await?.is_none());
    let settled = s
        .record_sms_receipt_echoed(&delivered("c1"), Some((r1, "+12025550401")), now())
        .await?
        .context("settled")?;
    ensure!(settled.uuid == two.uuid && settled.state == SmsState::Delivered, "{settled:?}");
    ensure!(
        states(&settled) == vec![SmsState::Created, SmsState::Queued, SmsState::Sent, SmsState::Delivered],
        "{settled:?}"
    );
    // No receipt for the second: after the grace (0 here) it goes out again under a new
    // reference (at-least-once)…
    let again = s.claim_sms_with(10, -1, ExpiredClaim::Requeue, 0).await?;
    ensure!(again.len() == 1 && again[0].uuid == one.uuid && again[0].accepted.is_empty(), "{again:?}");
    ensure!(again[0].references[&0] != claimed[1].references[&0], "a new reference");
    // …and its old reference, echoed late, settles nothing.
    let late = Some((claimed[1].references[&0], "12025550402"));
    ensure!(s.record_sms_receipt_echoed(&delivered("late"), late, now()).await?.is_none());
    // …or fails (at-most-once).
    ensure!(s.claim_sms_with(10, 60_000, ExpiredClaim::Fail, 0).await?.is_empty());
    let failed = s.get_sms(a, one.uuid).await?.context("one")?;
    ensure!(failed.state == SmsState::Failed, "{failed:?}");

    // A live attempt whose answer was lost keeps the part in doubt until the grace passed…
    let three = s.create_sms(a, new_sms(&lease, "12025550403", "hello", 1)).await?;
    let held = s.claim_sms_with(10, 60_000, ExpiredClaim::Requeue, 0).await?;
    ensure!(held.len() == 1 && held[0].uuid == three.uuid);
    let lost = SmsAttempt::Unanswered {
        not_before: now() - chrono::Duration::milliseconds(1),
        reason: "connection lost".into(),
        in_doubt: [0].into(),
    };
    ensure!(s.record_sms_attempt(three.uuid, &Default::default(), &lost, now()).await?.is_none());
    ensure!(s.claim_sms_with(10, 60_000, ExpiredClaim::Requeue, 60_000).await?.is_empty());
    // …and a receipt echoing it moves the message to sent (then delivered).
    let r = held[0].references[&0];
    let moved = s
        .record_sms_receipt_echoed(&delivered("c3"), Some((r, "12025550403")), now())
        .await?
        .context("moved")?;
    ensure!(moved.state == SmsState::Delivered && moved.attempts == 1, "{moved:?}");
    ensure!(s.claim_sms_with(10, 60_000, ExpiredClaim::Requeue, 0).await?.is_empty(), "nothing left");
    Ok(())
}

/// A receipt that overtook its attempt's record moves the message sent → delivered in the same
/// write as queued → sent: the observer still hears both steps, sent first (so `sms.sent` is
/// published before `sms.status`), each with the history as that step left it.
#[tokio::test]
async fn a_receipt_before_the_attempt_still_reports_sent_before_delivered() -> Result<()> {
    let (_dir, store, account, lease) = fixture().await?;
    let m = store.create_sms(account, new_sms(&lease, "12025550131", "overtaken", 1)).await?;
    let repo: Arc<dyn MessageRepo> = Arc::new(store.clone());
    let seen = Arc::new(Mutex::new(Vec::<SmsMessage>::new()));
    struct Keep(Arc<Mutex<Vec<SmsMessage>>>);
    impl OutboxObserver for Keep {
        fn moved(&self, m: &SmsMessage) {
            self.0.lock().push(m.clone());
        }
    }
    let outbox =
        StoreOutbox::new(repo, UnknownPolicy::AtLeastOnce).with_observer(Arc::new(Keep(seen.clone())));
    let claimed = outbox.claim(10, Duration::ZERO).await?;
    ensure!(claimed.len() == 1 && claimed[0].uuid == m.uuid, "{claimed:?}");
    // The SMSC's receipt comes before the sender recorded the submit's answer.
    ensure!(outbox.record_receipt(&receipt("fast-1", ReceiptStatus::Delivered), Utc::now()).await?.is_none());
    ensure!(seen.lock().is_empty());
    let accepted = [(0, "fast-1".to_string())].into_iter().collect();
    outbox.record_attempt(m.uuid, &accepted, &opentact_messaging::outbox::Attempt::Sent, Utc::now()).await?;

    let seen = seen.lock().clone();
    let states: Vec<_> = seen.iter().map(|s| (s.uuid, s.state)).collect();
    ensure!(states == vec![(m.uuid, SmsState::Sent), (m.uuid, SmsState::Delivered)], "{states:?}");
    ensure!(seen[0].history.last().map(|h| h.state) == Some(SmsState::Sent), "{:?}", seen[0].history);
    ensure!(seen[1].history.last().map(|h| h.state) == Some(SmsState::Delivered), "{:?}", seen[1].history);
    let stored = store.get_sms(account, m.uuid).await?.context("stored")?;
    let history: Vec<_> = stored.history.iter().map(|h| h.state).collect();
    ensure!(
        history == vec![SmsState::Created, SmsState::Queued, SmsState::Sent, SmsState::Delivered],
        "{history:?}"
    );
    Ok(())
}

/// Messages stored at the same time are each answered as stored (created → queued), one
/// refused alone when its lease is no longer live.
#[tokio::test]
async fn a_batch_of_new_messages_is_stored_whole_and_a_released_lease_refuses_only_its_own() -> Result<()> {
    let (_dir, store, account, lease) = fixture().await?;
    let mut gone = lease.clone();
    gone.uuid = uuid::Uuid::new_v4();
    let items = vec![
        (account, new_sms(&lease, "12025550141", "one", 1)),
        (account, new_sms(&gone, "12025550142", "two", 1)),
        (account, new_sms(&lease, "12025550143", "three", 1)),
    ];
    let answers = store.create_sms_batch(items).await?;
    ensure!(answers.len() == 3);
    ensure!(matches!(answers[1], Err(StoreError::NotFound { .. })), "{:?}", answers[1]);
    for answer in [&answers[0], &answers[2]] {
        let m = answer.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let stored = store.get_sms(account, m.uuid).await?.context("stored")?;
        ensure!(&stored == m, "answered {m:?}, stored {stored:?}");
        let states: Vec<_> = stored.history.iter().map(|h| h.state).collect();
        ensure!(states == vec![SmsState::Created, SmsState::Queued], "{states:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_batch_of_writes_on_both_backends() -> Result<()> {
    on_both_backends("a_batch_of_writes", a_batch_of_writes_ends_as_the_same_writes_one_by_one).await
}

/// The sender's group commit records runs of attempts and of receipts with a few statements a
/// run: the same writes given one by one and as one batch leave every message with the same
/// history and attempts, and answer each write alike — unknown messages, receipts that came
/// before their attempt's record, multi-part messages settled by their last receipt, a
/// duplicate receipt, failures and retries among the runs.
async fn a_batch_of_writes_ends_as_the_same_writes_one_by_one(s: Store, _url: String) -> Result<()> {
    /// Writes for the seven messages of `m` (parts: 1, 2, 1, 1, 1, 2, 1), carrier ids prefixed `tag`.
    fn writes(m: &[SmsMessage], tag: &str) -> Vec<(SmsWrite, Timestamp)> {
        let start = Utc::now();
        let c = |name: &str| format!("{tag}-{name}");
        let attempt = |i: usize, parts: &[&str], attempt: SmsAttempt| SmsWrite::Attempt {
            id: m[i].uuid,
            accepted: parts.iter().enumerate().map(|(part, name)| (part, c(name))).collect(),
            attempt,
        };
        let receipt = |name: &str, final_: Option<SmsState>| SmsWrite::Receipt {
            receipt: SmsReceipt {
                carrier_id: c(name),
                status: if final_ == Some(SmsState::Undelivered) {
                    "expired".into()
                } else {
                    "delivered".into()
                },
                part_final: final_,
            },
            echo: None,
        };
        let delivered = Some(SmsState::Delivered);
        let list = vec![
            receipt("6b", delivered),
            receipt("7", delivered),
            attempt(0, &["1"], SmsAttempt::Sent),
            attempt(1, &["2a", "2b"], SmsAttempt::Sent),
            SmsWrite::Attempt {
                id: uuid::Uuid::new_v4(),
                accepted: [(0, c("x"))].into_iter().collect(),
                attempt: SmsAttempt::Sent,
            },
            attempt(2, &["3"], SmsAttempt::Sent),
            attempt(5, &["6a", "6b"], SmsAttempt::Sent),
            attempt(6, &["7"], SmsAttempt::Sent),
            attempt(3, &[], SmsAttempt::Failed { reason: "refused by the SMSC".into() }),
            attempt(4, &[], SmsAttempt::Retry { not_before: start, reason: "throttled".into() }),
            receipt("1", delivered),
            receipt("2a", None),
            receipt("2a", delivered),
            receipt("2b", delivered),
            receipt("3", Some(SmsState::Undelivered)),
            receipt("6a", delivered),
            receipt("zz", delivered),
            receipt("1", delivered),
            attempt(4, &["5"], SmsAttempt::Sent),
            attempt(0, &["1"], SmsAttempt::Sent),
        ];
        list.into_iter()
            .enumerate()
            .map(|(i, w)| (w, start + chrono::Duration::milliseconds(i64::try_from(i).unwrap_or(0))))
            .collect()
    }
    /// Seven queued messages of a new account, its number `tn`.
    async fn messages(s: &Store, tn: i64) -> Result<Vec<SmsMessage>> {
        let (account, lease) = sms_fixture(s, tn).await?;
        let mut made = Vec::new();
        for (i, parts) in [1, 2, 1, 1, 1, 2, 1].into_iter().enumerate() {
            made.push(
                s.create_sms(account, new_sms(&lease, &format!("1202555016{i}"), "batch", parts)).await?,
            );
        }
        Ok(made)
    }
    /// What a write's answer says: unknown, nothing moved, or the state it moved to and steps.
    fn answered(answer: &opentact_store::Result<Option<SmsMoved>>) -> String {
        match answer {
            Err(StoreError::NotFound { .. }) => "unknown".into(),
            Err(e) => format!("error {e}"),
            Ok(None) => "none".into(),
            Ok(Some(moved)) => format!("{:?} in {} steps", moved.message.state, moved.steps),
        }
    }
    /// A message as compared: its history (states and reasons) and attempts.
    async fn shown(s: &Store, m: &SmsMessage) -> Result<(Vec<(SmsState, Option<String>)>, i32)> {
        let stored = s.get_sms(m.account, m.uuid).await?.context("stored")?;
        Ok((stored.history.into_iter().map(|h| (h.state, h.reason)).collect(), stored.attempts))
    }

    let one_by_one = messages(&s, 12029820301).await?;
    let mut single_answers = Vec::new();
    for write in writes(&one_by_one, "single") {
        single_answers.push(answered(&s.write_sms_batch(&[write]).await?.remove(0)));
    }
    let together = messages(&s, 12029820302).await?;
    let batch_answers: Vec<String> =
        s.write_sms_batch(&writes(&together, "batch")).await?.iter().map(answered).collect();
    ensure!(single_answers == batch_answers, "one by one {single_answers:#?}\nas a batch {batch_answers:#?}");
    for (a, b) in one_by_one.iter().zip(&together) {
        let (a, b) = (shown(&s, a).await?, shown(&s, b).await?);
        ensure!(a == b, "one by one {a:?}\nas a batch {b:?}");
    }
    // What the writes did, so the comparison compares something: m1 and m2 delivered, m3
    // undelivered, m4 failed, m5 sent after its retry, m6 delivered by its last part's receipt
    // (the other came early), m7 sent and delivered at once by the receipt that overtook it.
    let finals: Vec<SmsState> = {
        let mut finals = Vec::new();
        for m in &together {
            finals.push(s.get_sms(m.account, m.uuid).await?.context("stored")?.state);
        }
        finals
    };
    use SmsState::*;
    ensure!(
        finals == vec![Delivered, Delivered, Undelivered, Failed, Sent, Delivered, Delivered],
        "{finals:?}"
    );
    let expected = [
        (4, "unknown"),
        (6, "Sent in 1 steps"),
        (7, "Delivered in 2 steps"),
        (12, "none"),
        (13, "Delivered in 1 steps"),
        (15, "Delivered in 1 steps"),
        (17, "none"),
        (19, "none"),
    ];
    for (i, answer) in expected {
        ensure!(batch_answers[i] == answer, "write {i}: {batch_answers:#?}");
    }
    Ok(())
}
