//! The SMPP carrier against a real SMSC nobody here wrote: the npm package `smpp`, driven by
//! tests/support/smsc/smsc.js (installed by `scripts/install-deps --test`). Loopback only.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use opentact_messaging::model::{Message, MessageState, ReceiptStatus};
use opentact_messaging::segment::{self, Encoding};
use opentact_messaging::smpp::{
    CarrierEvent, SmppCarrier, SmppConfig, Submission, SubmitOutcome, UnknownReason,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::time::{Instant, timeout};

/// How long any single wait in these tests may take before it fails.
const WAIT: Duration = Duration::from_secs(10);

/// The test SMSC: a node process, its JSON log and its command input.
struct Smsc {
    port: u16,
    log: Arc<Mutex<Vec<Value>>>,
    logged: Arc<Notify>,
    stdin: ChildStdin,
    _child: Child,
}

impl Smsc {
    async fn start(args: &[&str]) -> Result<Smsc> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/smsc");
        if !dir.join("node_modules/smpp").exists() {
            bail!("the test SMSC is not installed: run scripts/install-deps --test");
        }
        let mut child = Command::new("node")
            .arg(dir.join("smsc.js"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting node")?;
        let stdin = child.stdin.take().context("stdin")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let first = timeout(WAIT, lines.next_line()).await??.context("SMSC exited")?;
        let port = first.strip_prefix("LISTENING ").context("LISTENING line")?.parse()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let logged = Arc::new(Notify::new());
        let (log2, logged2) = (log.clone(), logged.clone());
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    log2.lock().await.push(v);
                    logged2.notify_waiters();
                }
            }
        });
        Ok(Smsc { port, log, logged, stdin, _child: child })
    }

    fn config(&self) -> SmppConfig {
        SmppConfig {
            port: self.port,
            system_id: "opentact".into(),
            password: "secret".into(),
            throughput_per_sec: 0,
            reconnect_min_ms: 50,
            reconnect_max_ms: 500,
            response_timeout_ms: 5_000,
            ..SmppConfig::default()
        }
    }

    async fn command(&mut self, cmd: Value) -> Result<()> {
        self.stdin.write_all(format!("{cmd}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn events(&self, kind: &str) -> Vec<Value> {
        self.log.lock().await.iter().filter(|v| v["event"] == kind).cloned().collect()
    }

    /// Waits until `count` log lines of `kind` are there, and returns them.
    async fn wait_events(&self, kind: &str, count: usize) -> Result<Vec<Value>> {
        let deadline = Instant::now() + WAIT;
        loop {
            let notified = self.logged.notified();
            let found = self.events(kind).await;
            if found.len() >= count {
                return Ok(found);
            }
            if timeout(deadline - Instant::now(), notified).await.is_err() {
                bail!("{count} × {kind} expected, {} logged", found.len());
            }
        }
    }
}

async fn next_event(
    events: &mut mpsc::Receiver<CarrierEvent>,
    want: impl Fn(&CarrierEvent) -> bool,
) -> Result<CarrierEvent> {
    let deadline = Instant::now() + WAIT;
    loop {
        let ev = timeout(deadline - Instant::now(), events.recv())
            .await
            .context("no such carrier event in time")?
            .context("event channel closed")?;
        if want(&ev) {
            return Ok(ev);
        }
    }
}

fn bind_up(ev: &CarrierEvent) -> bool {
    matches!(ev, CarrierEvent::BindUp { .. })
}

fn gsm(text: &str) -> Submission {
    Submission {
        user_message_reference: None,
        source: "12025550100".into(),
        destination: "12025550111".into(),
        data_coding: 0,
        esm_class: 0,
        short_message: segment::encode_gsm7_unpacked(text).unwrap(),
    }
}

fn accepted_id(outcome: &SubmitOutcome) -> String {
    match outcome {
        SubmitOutcome::Accepted { message_id } => message_id.clone(),
        other => panic!("expected accepted, got {other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn single_and_multipart_submits_and_their_receipts() -> Result<()> {
    let smsc = Smsc::start(&["--receipt-delay-ms", "20"]).await?;
    let (carrier, mut events) = SmppCarrier::start(smsc.config())?;
    next_event(&mut events, bind_up).await?;

    // A single GSM-7 part.
    let mut message =
        Message::outbound("12025550100", "12025550111", "Hello from Opentact €5", chrono::Utc::now())?;
    message.transition(MessageState::Queued, chrono::Utc::now(), None)?;
    let single = segment::segment(&message.text, 1)?;
    assert_eq!(single.encoding, Encoding::Gsm7);
    let outcomes = carrier.submit_all(Submission::parts(&message.from, &message.to, &single)).await;
    let single_id = accepted_id(outcomes[0].as_ref().unwrap());
    message.transition(MessageState::Sent, chrono::Utc::now(), None)?;

    // A two-part UCS-2 message.
    let long = format!("{} 😀", "Привет мир ".repeat(7));
    let multi = segment::segment(&long, 0x2A)?;
    assert_eq!((multi.encoding, multi.parts.len()), (Encoding::Ucs2, 2));
    let outcomes = carrier.submit_all(Submission::parts("12025550100", "12025550112", &multi)).await;
    let multi_ids: Vec<String> = outcomes.iter().map(|o| accepted_id(o.as_ref().unwrap())).collect();

    // What reached the SMSC is exactly what we encoded.
    let submits = smsc.wait_events("submit_sm", 3).await?;
    assert_eq!(submits[0]["message_id"], single_id.as_str());
    assert_eq!(submits[0]["data_coding"], 0);
    assert_eq!(submits[0]["esm_class"], 0);
    assert_eq!(submits[0]["registered_delivery"], 1);
    assert_eq!(submits[0]["source"], "12025550100");
    assert_eq!(submits[0]["short_message"], hex(&single.parts[0].short_message).as_str());
    let by_id: HashMap<&str, &Value> =
        submits.iter().map(|s| (s["message_id"].as_str().unwrap(), s)).collect();
    for (i, id) in multi_ids.iter().enumerate() {
        let s = by_id[id.as_str()];
        assert_eq!(s["data_coding"], 8);
        assert_eq!(s["esm_class"], 0x40);
        let sm = s["short_message"].as_str().unwrap();
        assert!(sm.starts_with(&format!("0500032a02{:02x}", i + 1)), "{sm}");
        assert_eq!(sm, hex(&multi.parts[i].short_message));
    }

    // Each part's receipt arrives, parsed, and moves the message to delivered.
    let mut receipts = HashMap::new();
    while receipts.len() < 3 {
        if let CarrierEvent::Receipt(r) =
            next_event(&mut events, |e| matches!(e, CarrierEvent::Receipt(_))).await?
        {
            receipts.insert(r.message_id.clone(), r);
        }
    }
    let r = &receipts[&single_id];
    assert_eq!(r.status, ReceiptStatus::Delivered);
    assert_eq!(r.error.as_deref(), Some("000"));
    assert_eq!((r.handset.as_str(), r.sender.as_str()), ("12025550111", "12025550100"));
    assert!(r.done_date.is_some());
    let state = opentact_messaging::model::aggregate_receipts(&[Some(r.status)]).unwrap();
    message.transition(state, chrono::Utc::now(), Some("DELIVRD".into()))?;
    assert_eq!(message.state, MessageState::Delivered);
    for id in &multi_ids {
        assert_eq!(receipts[id].status, ReceiptStatus::Delivered);
    }
    // We answered every receipt.
    let resps = smsc.wait_events("deliver_sm_resp", 3).await?;
    assert!(resps.iter().all(|r| r["command_status"] == 0));

    // A handset that cannot be reached: the receipt says so. The submit's
    // user_message_reference goes out as its TLV and comes back in the receipt.
    let mut to_nowhere = gsm("lost");
    to_nowhere.destination = "99912345".into();
    to_nowhere.user_message_reference = Some(4242);
    let id = accepted_id(&carrier.submit(to_nowhere).await?);
    let ev = next_event(&mut events, |e| matches!(e, CarrierEvent::Receipt(r) if r.message_id == id)).await?;
    let CarrierEvent::Receipt(r) = ev else { unreachable!() };
    assert_eq!(r.status, ReceiptStatus::Undeliverable);
    assert_eq!(r.error.as_deref(), Some("001"));
    assert_eq!(r.user_message_reference, Some(4242));
    assert_eq!(receipts[&single_id].user_message_reference, None, "none sent, none echoed");
    let submit = smsc.events("submit_sm").await.into_iter().find(|s| s["message_id"] == id.as_str());
    assert_eq!(submit.map(|s| s["user_message_reference"].clone()), Some(serde_json::json!(4242)));

    carrier.shutdown().await;
    smsc.wait_events("unbind", 1).await?;
    Ok(())
}

#[tokio::test]
async fn inbound_messages_and_enquire_link() -> Result<()> {
    let mut smsc = Smsc::start(&[]).await?;
    let config = SmppConfig { enquire_link_secs: 1, ..smsc.config() };
    let (carrier, mut events) = SmppCarrier::start(config)?;
    next_event(&mut events, bind_up).await?;

    smsc.command(
        serde_json::json!({"deliver": {"from": "12025550111", "to": "12025550100", "text": "Hi there, 42?"}}),
    )
    .await?;
    smsc.command(
        serde_json::json!({"deliver": {"from": "447700900123", "to": "12025550100", "text": "Привет 😀"}}),
    )
    .await?;
    let mut inbound = Vec::new();
    while inbound.len() < 2 {
        if let CarrierEvent::Inbound(m) =
            next_event(&mut events, |e| matches!(e, CarrierEvent::Inbound(_))).await?
        {
            inbound.push(m);
        }
    }
    assert_eq!(inbound[0].source, "12025550111");
    assert_eq!(inbound[0].destination, "12025550100");
    assert_eq!(inbound[0].text, "Hi there, 42?");
    assert_eq!(inbound[0].data_coding, 0);
    assert_eq!(inbound[1].text, "Привет 😀");
    assert_eq!(inbound[1].data_coding, 8);
    let resps = smsc.wait_events("deliver_sm_resp", 2).await?;
    assert!(resps.iter().all(|r| r["command_status"] == 0));

    // The client keeps the session alive by itself.
    smsc.wait_events("enquire_link", 1).await?;
    carrier.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_submit_in_flight_when_the_connection_drops_is_unknown() -> Result<()> {
    // The SMSC takes the submit but answers late; the connection drops before the answer.
    let mut smsc = Smsc::start(&["--response-delay-ms", "1000"]).await?;
    let (carrier, mut events) = SmppCarrier::start(smsc.config())?;
    next_event(&mut events, bind_up).await?;
    let carrier = Arc::new(carrier);
    let c = carrier.clone();
    let pending = tokio::spawn(async move { c.submit(gsm("in flight")).await });
    smsc.wait_events("submit_sm", 1).await?;
    smsc.command(serde_json::json!({"drop": true})).await?;
    let outcome = timeout(WAIT, pending).await???;
    assert_eq!(outcome, SubmitOutcome::Unknown { reason: UnknownReason::ConnectionLost });
    // And the bind comes back by itself.
    next_event(&mut events, |e| matches!(e, CarrierEvent::BindDown { .. })).await?;
    next_event(&mut events, bind_up).await?;
    accepted_id(&carrier.submit(gsm("after")).await?);
    carrier.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_smsc_drops_mid_burst_none_lost_none_doubled() -> Result<()> {
    const MESSAGES: usize = 200;
    let smsc = Smsc::start(&["--drop-after", "73", "--receipt-delay-ms", "5000"]).await?;
    let config = SmppConfig { window: 10, ..smsc.config() };
    let (carrier, mut events) = SmppCarrier::start(config)?;
    next_event(&mut events, bind_up).await?;
    // Events are drained apart from the submitting tasks (as the carrier's docs ask).
    let (binds_tx, mut binds_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if matches!(ev, CarrierEvent::BindUp { .. } | CarrierEvent::BindDown { .. }) {
                let _ = binds_tx.send(ev);
            }
        }
    });
    let carrier = Arc::new(carrier);

    // The caller's policy here is at-least-once: an Unknown outcome is submitted again.
    let mut todo: Vec<usize> = (0..MESSAGES).collect();
    let mut accepted = HashMap::new();
    let mut unknown = 0;
    for _round in 0..5 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in todo.drain(..) {
            let c = carrier.clone();
            tasks.spawn(async move { (i, c.submit(gsm(&format!("burst {i}"))).await) });
        }
        while let Some(done) = tasks.join_next().await {
            let (i, outcome) = done?;
            match outcome? {
                SubmitOutcome::Accepted { message_id } => {
                    accepted.insert(i, message_id);
                }
                SubmitOutcome::Unknown { .. } => {
                    unknown += 1;
                    todo.push(i);
                }
                other => bail!("message {i}: {other:?}"),
            }
        }
        if todo.is_empty() {
            break;
        }
    }
    assert_eq!(accepted.len(), MESSAGES, "{unknown} unknown");
    eprintln!("{unknown} submits were in flight at the drop and submitted again");

    // The SMSC saw every message exactly once.
    let submits = smsc.wait_events("submit_sm", MESSAGES).await?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in &submits {
        *seen.entry(s["short_message"].as_str().unwrap().to_string()).or_default() += 1;
    }
    for i in 0..MESSAGES {
        let sm = hex(&segment::encode_gsm7_unpacked(&format!("burst {i}")).unwrap());
        assert_eq!(seen.get(&sm), Some(&1), "message {i}");
    }
    assert_eq!(submits.len(), MESSAGES);
    // It really dropped us mid-burst, and we came back on a new session.
    assert_eq!(smsc.events("drop").await.len(), 1);
    let sessions: std::collections::HashSet<_> = submits.iter().map(|s| s["session"].as_u64()).collect();
    assert_eq!(sessions.len(), 2);
    assert!(matches!(binds_rx.recv().await, Some(CarrierEvent::BindDown { .. })));
    assert!(matches!(binds_rx.recv().await, Some(CarrierEvent::BindUp { .. })));
    carrier.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_window_bounds_unanswered_submits_per_bind() -> Result<()> {
    let smsc = Smsc::start(&["--response-delay-ms", "100"]).await?;
    let config = SmppConfig { binds: 2, window: 3, ..smsc.config() };
    let (carrier, mut events) = SmppCarrier::start(config)?;
    next_event(&mut events, bind_up).await?;
    next_event(&mut events, bind_up).await?;
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let outcomes = carrier.submit_all((0..24).map(|i| gsm(&format!("w{i}"))).collect()).await;
    for o in &outcomes {
        accepted_id(o.as_ref().unwrap());
    }
    let submits = smsc.events("submit_sm").await;
    let mut max_per_session: HashMap<u64, u64> = HashMap::new();
    for s in &submits {
        let e = max_per_session.entry(s["session"].as_u64().unwrap()).or_default();
        *e = (*e).max(s["outstanding"].as_u64().unwrap());
    }
    // Both binds carried submits, each with at most `window` unanswered, and the window was
    // used (pipelined, not one at a time).
    assert_eq!(max_per_session.len(), 2, "{max_per_session:?}");
    assert!(max_per_session.values().all(|&m| m <= 3), "{max_per_session:?}");
    assert!(max_per_session.values().any(|&m| m == 3), "{max_per_session:?}");
    carrier.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn throughput_is_capped_per_carrier() -> Result<()> {
    let smsc = Smsc::start(&[]).await?;
    let config = SmppConfig { binds: 2, throughput_per_sec: 20, ..smsc.config() };
    let (carrier, mut events) = SmppCarrier::start(config)?;
    next_event(&mut events, bind_up).await?;
    next_event(&mut events, bind_up).await?;
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let started = Instant::now();
    let outcomes = carrier.submit_all((0..11).map(|i| gsm(&format!("t{i}"))).collect()).await;
    assert!(outcomes.iter().all(|o| o.is_ok()));
    // 11 submits at 20/s over two binds: at least 10 intervals of 50 ms between the first
    // and the last.
    assert!(started.elapsed() >= Duration::from_millis(480), "{:?}", started.elapsed());
    carrier.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn wrong_credentials_are_reported_and_retried() -> Result<()> {
    let smsc = Smsc::start(&[]).await?;
    let config = SmppConfig { password: "wrong".into(), ..smsc.config() };
    let (carrier, mut events) = SmppCarrier::start(config)?;
    let ev = next_event(&mut events, |e| matches!(e, CarrierEvent::BindDown { .. })).await?;
    let CarrierEvent::BindDown { reason, .. } = ev else { unreachable!() };
    assert!(reason.contains("bind refused"), "{reason}");
    // It tries again (with back-off).
    smsc.wait_events("bind", 2).await?;
    assert!(smsc.events("bind").await.iter().all(|b| b["ok"] == false));
    carrier.shutdown().await;
    Ok(())
}

/// Receipts handed to a [`ReceiptHandler`] are acknowledged with what it returns, once it
/// returned: one it could not store ("temporary application error") the SMSC delivers again.
#[tokio::test]
async fn a_receipt_is_acknowledged_only_once_handled_and_a_refused_one_comes_again() -> Result<()> {
    use opentact_messaging::smpp::{DeliveryReceipt, ReceiptHandler};

    #[derive(Debug, Default)]
    struct FailsFirst(parking_lot::Mutex<Vec<DeliveryReceipt>>);
    impl ReceiptHandler for FailsFirst {
        fn receipt(
            &self,
            receipt: DeliveryReceipt,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = u32> + Send + '_>> {
            Box::pin(async move {
                let mut seen = self.0.lock();
                seen.push(receipt);
                if seen.len() == 1 { 0x64 } else { 0 }
            })
        }
    }

    let smsc = Smsc::start(&["--receipt-delay-ms", "10"]).await?;
    let (carrier, mut events) = SmppCarrier::start(smsc.config())?;
    next_event(&mut events, bind_up).await?;
    let handler = Arc::new(FailsFirst::default());
    carrier.set_receipt_handler(handler.clone());
    let id = accepted_id(&carrier.submit(gsm("twice")).await?);
    let resps = smsc.wait_events("deliver_sm_resp", 2).await?;
    let statuses: Vec<&Value> = resps.iter().map(|r| &r["command_status"]).collect();
    assert_eq!(statuses, [&serde_json::json!(0x64), &serde_json::json!(0)]);
    let seen: Vec<String> = handler.0.lock().iter().map(|r| r.message_id.clone()).collect();
    assert_eq!(seen, [id.clone(), id]);
    carrier.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_sender_drains_an_outbox_through_a_drop_exactly_once() -> Result<()> {
    use opentact_messaging::outbox::{MemoryOutbox, Outbox, Sender, SenderConfig};

    const MESSAGES: usize = 60;
    let smsc = Smsc::start(&["--drop-after", "40", "--receipt-delay-ms", "20"]).await?;
    let (carrier, mut events) = SmppCarrier::start(smsc.config())?;
    next_event(&mut events, bind_up).await?;
    let outbox = Arc::new(MemoryOutbox::default());
    // Every third message is two GSM-7 parts.
    let mut parts = 0;
    for i in 0..MESSAGES {
        // Numbered at both ends so every part's octets differ between messages.
        let text =
            if i % 3 == 0 { format!("{i:03} {}{i:03}", "long ".repeat(40)) } else { format!("short {i}") };
        parts += segment::plan(&text).parts;
        outbox.enqueue(Message::outbound("12025550100", "12025550111", text, chrono::Utc::now())?)?;
    }
    // Receipts go to the outbox, as the binary will wire them.
    let receipts_to = outbox.clone();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if let CarrierEvent::Receipt(r) = ev {
                let _ = receipts_to.record_receipt(&r, chrono::Utc::now()).await;
            }
        }
    });
    // The SMSC answers every submit it read before it drops: the unanswered ones it never
    // read, so they need no wait for an echoed reference.
    let config = SenderConfig { retry_delay_ms: 50, reconcile_grace_ms: 50, ..SenderConfig::default() };
    let sender = Sender::new(outbox.clone(), Arc::new(carrier), config);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(sender.run(stopped));

    let deadline = Instant::now() + WAIT;
    while outbox.all().iter().any(|m| m.state != MessageState::Delivered) {
        if Instant::now() > deadline {
            let states: Vec<_> = outbox.all().iter().map(|m| m.state).collect();
            bail!("not all delivered: {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    running.await?;

    // Each part reached the SMSC once, the drop notwithstanding.
    let submits = smsc.events("submit_sm").await;
    let distinct: std::collections::HashSet<_> =
        submits.iter().map(|s| s["short_message"].to_string()).collect();
    assert_eq!((submits.len(), distinct.len()), (parts, parts));
    assert_eq!(smsc.events("drop").await.len(), 1);
    let history: Vec<MessageState> = outbox.all()[0].history.iter().map(|h| h.state).collect();
    assert_eq!(
        history,
        vec![MessageState::Created, MessageState::Queued, MessageState::Sent, MessageState::Delivered]
    );
    Ok(())
}
