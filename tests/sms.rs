//! Outbound SMS end to end on the real binary: REST → a stored, queued row → submit_sm to a
//! real SMSC (npm `smpp`, tests/support/smsc) → its delivery receipt → delivered, with the
//! history created → queued → sent → delivered and sms.sent / sms.status on the websocket-facing
//! bus (read here through the API's stored history and the SMSC's log). And the refusal of a
//! number without SMS.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::platform::{Platform, http};
use support::provision;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PASSWORD: &str = "correct horse battery staple";

fn basic(email: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}")))
}

/// The test SMSC with its JSON log.
async fn smsc() -> (Child, u16, std::sync::Arc<parking_lot::Mutex<Vec<Value>>>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/smsc");
    assert!(dir.join("node_modules/smpp").exists(), "run scripts/install-deps --test");
    let mut child = Command::new("node")
        .arg(dir.join("smsc.js"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next_line().await.expect("read").expect("LISTENING");
    let port = first.strip_prefix("LISTENING ").expect("LISTENING").parse().expect("port");
    let log = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                log2.lock().push(v);
            }
        }
    });
    (child, port, log)
}

async fn platform_with_smsc(port: u16) -> (Platform, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("opentact.toml");
    std::fs::write(
        &config,
        format!(
            "[messaging.smpp]\nport = {port}\nsystem_id = \"opentact\"\npassword = \"secret\"\n\
             throughput_per_sec = 0\nreconnect_min_ms = 50\n\n[messaging.sender]\npoll_interval_ms = 50\n"
        ),
    )
    .expect("config");
    let pdir = tempfile::tempdir().expect("tempdir");
    let platform = Platform::start_in(pdir, &["--config", config.to_str().expect("utf-8")]).await;
    (platform, dir)
}

async fn login(platform: &Platform, email: &str) -> String {
    let (status, login) =
        http(platform.api, "GET", "/rest/auth", &[("Authorization", &basic(email, PASSWORD))], None).await;
    assert_eq!(status, 200, "{login}");
    format!("Bearer {}", login["payload"]["token"].as_str().expect("jwt"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_goes_out_and_is_delivered() {
    let (_smsc, port, smsc_log) = smsc().await;
    let (platform, _config) = platform_with_smsc(port).await;
    provision::sms_number(&platform.data(), "sms@example.test", 12025550177, true).await;
    let bearer = login(&platform, "sms@example.test").await;
    let auth = [("Authorization", bearer.as_str())];
    let mut socket = support::ws::subscribe(platform.api, bearer.trim_start_matches("Bearer ")).await;

    let long = "y".repeat(200);
    let mut ids = Vec::new();
    for (to, text) in [("14155550100", "hello from opentact"), ("14155550101", long.as_str())] {
        let (status, created) = http(
            platform.api,
            "POST",
            "/rest/sms",
            &auth,
            Some(&json!({"tn": 12025550177_i64, "to": to, "message": text})),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["payload"]["type"], "smso");
        ids.push((created["payload"]["uuid"].as_str().expect("uuid").to_owned(), to));
    }
    for (id, _) in &ids {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (status, got) = http(platform.api, "GET", &format!("/rest/sms/{id}"), &auth, None).await;
            assert_eq!(status, 200, "{got}");
            if got["payload"]["state"] == "delivered" {
                let states: Vec<&str> = got["payload"]["history"]
                    .as_array()
                    .expect("history")
                    .iter()
                    .filter_map(|h| h["state"].as_str())
                    .collect();
                assert_eq!(states, ["created", "queued", "sent", "delivered"], "{got}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "not delivered: {got}\n{}", platform.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The events: for each message sms.sent, then sms.status delivered, in that order.
    let mut events = Vec::new();
    while events.iter().filter(|e: &&Value| e["type"] == "sms.status").count() < 2 {
        events.push(support::ws::next(&mut socket).await);
    }
    for (id, to) in &ids {
        let mine: Vec<(&str, &str)> = events
            .iter()
            .filter(|e| e["payload"]["uuid"] == *id)
            .map(|e| (e["type"].as_str().unwrap_or(""), e["payload"]["state"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(mine, [("sms.sent", "sent"), ("sms.status", "delivered")], "{events:?}");
        let last = events.iter().rfind(|e| e["payload"]["uuid"] == *id).expect("event");
        assert_eq!(
            (last["payload"]["to"].as_str(), last["payload"]["from"].as_str()),
            (Some(*to), Some("12025550177"))
        );
    }
    // One submit_sm for the single SMS, two for the two-part one.
    let submits = |to: &str| {
        smsc_log.lock().iter().filter(|e| e["event"] == "submit_sm" && e["destination"] == to).count()
    };
    assert_eq!(submits("14155550100"), 1);
    assert_eq!(submits("14155550101"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_without_sms_is_refused() {
    let (_smsc, port, smsc_log) = smsc().await;
    let (platform, _config) = platform_with_smsc(port).await;
    provision::sms_number(&platform.data(), "nosms@example.test", 12025550178, false).await;
    let bearer = login(&platform, "nosms@example.test").await;
    let (status, refused) = http(
        platform.api,
        "POST",
        "/rest/sms",
        &[("Authorization", bearer.as_str())],
        Some(&json!({"tn": 12025550178_i64, "to": "14155550100", "message": "hi"})),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["message"].as_str().unwrap_or("").contains("SMS is not enabled"), "{refused}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!smsc_log.lock().iter().any(|e| e["event"] == "submit_sm"), "nothing was submitted");
}

/// Durability (issue 11): a burst of [`BURST`] SMS posted concurrently to `POST /rest/sms` of
/// the real binary, `kill -9` of the server mid-burst, a restart, the rest of the burst — and
/// every message the API accepted (201) reaches the SMSC exactly once, counted by its text in
/// the SMSC's log of submit_sm. A post the kill cut short after it was written (no answer) may
/// or may not have been stored: it reaches the SMSC at most once. A post that could not connect
/// (the server was down) is posted again once it is back, as a client would.
///
/// What makes it exactly once: the parts the killed process had claimed were in doubt under a
/// `user_message_reference`; the test SMSC echoes it in its receipts and delivers a receipt
/// again until it is acknowledged, so after the restart the parts it took are settled by their
/// receipts and only the others go out again, once the dead claims ran out (`claim_lease_ms`,
/// 2 s here) and the reconciliation grace passed (`reconcile_grace_ms`, 2 s here; see
/// runtime/messaging/src/outbox.rs).
const BURST: usize = 10_000;

/// What one `POST /rest/sms` came to.
enum Posted {
    /// The HTTP status.
    Answered(u16),
    /// The connection was refused: the server is down, nothing was sent.
    Refused,
    /// Written, but the connection ended without an answer: it may have been stored.
    Unanswered,
}

/// `POST /rest/sms` that tells a refused connection from a cut-short one.
async fn try_post(api: std::net::SocketAddr, bearer: &str, body: &Value) -> Posted {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let request = format!(
        "POST /rest/sms HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nAuthorization: {bearer}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let Ok(mut stream) = tokio::net::TcpStream::connect(api).await else {
        return Posted::Refused;
    };
    if stream.write_all(request.as_bytes()).await.is_err() {
        return Posted::Unanswered;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let head = String::from_utf8_lossy(&answer[..answer.len().min(16)]).into_owned();
    match head.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
        Some(status) => Posted::Answered(status),
        None => Posted::Unanswered,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_survives_kill_9_and_every_accepted_message_goes_out_exactly_once() {
    use std::collections::{HashMap, HashSet};
    use std::sync::Arc;

    let started = std::time::Instant::now();
    let (_smsc, port, smsc_log) = smsc().await;
    let pdir = tempfile::tempdir().expect("tempdir");
    let config = pdir.path().join("opentact.toml");
    std::fs::write(
        &config,
        format!(
            "[messaging]\ntendlc_enforce = false\nclaim_lease_ms = 2000\n\n\
             [messaging.rate]\nnumber_per_second = 0\nnumber_per_minute = 0\n\
             profile_per_second = 0\nprofile_per_minute = 0\n\n\
             [messaging.smpp]\nport = {port}\nsystem_id = \"opentact\"\npassword = \"secret\"\n\
             throughput_per_sec = 0\nreconnect_min_ms = 50\n\n\
             [messaging.sender]\npoll_interval_ms = 50\nreconcile_grace_ms = 2000\n"
        ),
    )
    .expect("config");
    let config_arg = config.to_str().expect("utf-8").to_owned();
    let platform = Platform::start_in(pdir, &["--config", &config_arg]).await;
    provision::sms_number(&platform.data(), "burst@example.test", 12025550188, true).await;
    let bearer = login(&platform, "burst@example.test").await;
    // Where the posts go: the running server and its bearer; `None` while it is down.
    let target = Arc::new(parking_lot::RwLock::new(Some((platform.api, bearer))));
    let accepted = Arc::new(parking_lot::Mutex::new(HashSet::new()));
    let unanswered = Arc::new(parking_lot::Mutex::new(HashSet::new()));
    let slots = Arc::new(tokio::sync::Semaphore::new(32));
    let mut posts = Vec::with_capacity(BURST);
    for i in 0..BURST {
        let (target, accepted, unanswered, slots) =
            (target.clone(), accepted.clone(), unanswered.clone(), slots.clone());
        posts.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("slot");
            let text = format!("burst {i:05}");
            let body = json!({"tn": 12025550188_i64, "to": "14155550100", "message": text});
            loop {
                let now = target.read().clone();
                let Some((api, bearer)) = now else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                match try_post(api, &bearer, &body).await {
                    Posted::Answered(201) => {
                        accepted.lock().insert(text);
                        return;
                    }
                    Posted::Answered(status) => panic!("{text}: HTTP {status}"),
                    Posted::Unanswered => {
                        unanswered.lock().insert(text);
                        return;
                    }
                    Posted::Refused => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    let submitted = |log: &[Value]| -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for e in log.iter().filter(|e| e["event"] == "submit_sm") {
            let hex = e["short_message"].as_str().unwrap_or("");
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .collect();
            *counts.entry(String::from_utf8_lossy(&bytes).into_owned()).or_insert(0) += 1;
        }
        counts
    };
    // Kill once the SMSC has seen a quarter of the burst (counting only the log's new lines).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (mut read, mut seen) = (0, 0);
    while seen < BURST / 4 {
        assert!(tokio::time::Instant::now() < deadline, "the burst did not start reaching the SMSC");
        tokio::time::sleep(Duration::from_millis(10)).await;
        let log = smsc_log.lock();
        seen += log[read..].iter().filter(|e| e["event"] == "submit_sm").count();
        read = log.len();
    }
    *target.write() = None;
    let support::platform::Platform { mut child, dir, .. } = platform;
    child.start_kill().expect("kill -9");
    child.wait().await.expect("killed");
    let at_kill = (accepted.lock().len(), seen);
    let killed_at = started.elapsed();
    let again = Platform::start_in(dir, &["--config", &config_arg]).await;
    let bearer = login(&again, "burst@example.test").await;
    *target.write() = Some((again.api, bearer.clone()));
    for post in posts {
        post.await.expect("post");
    }
    let accepted = accepted.lock().clone();
    let unanswered = unanswered.lock().clone();
    eprintln!(
        "kill -9 at {killed_at:?}: {} accepted, {} submit_sm so far; then {} accepted in all, {} cut short",
        at_kill.0,
        at_kill.1,
        accepted.len(),
        unanswered.len()
    );
    assert_eq!(accepted.len() + unanswered.len(), BURST, "every post was answered, refused or cut short");
    assert!(accepted.len() >= BURST - 64, "accepted {}", accepted.len());

    // Done when every accepted message reached the SMSC and none is left queued (so none can
    // still go out: the dead claims ran out and the grace passed).
    let auth = [("Authorization", bearer.as_str())];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let counts = submitted(&smsc_log.lock());
        let missing = accepted.iter().filter(|t| !counts.contains_key(*t)).count();
        if missing == 0 {
            let (status, queued) =
                http(again.api, "POST", "/rest/sms/search", &auth, Some(&json!({"state": "queued"}))).await;
            assert_eq!(status, 200, "{queued}");
            if queued["payload"]["total"] == 0 {
                break counts;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} accepted messages never reached the SMSC\n{}",
            again.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let doubled: Vec<(&String, &usize)> =
        counts.iter().filter(|(t, n)| t.starts_with("burst ") && **n > 1).collect();
    let sent_cut_short = unanswered.iter().filter(|t| counts.contains_key(*t)).count();
    let log = smsc_log.lock().clone();
    let echoed =
        log.iter().filter(|e| e["event"] == "submit_sm" && e["user_message_reference"].is_number()).count();
    // Receipts the killed process never acknowledged, delivered again after the restart.
    let mut receipts: HashMap<&str, usize> = HashMap::new();
    for e in log.iter().filter(|e| e["event"] == "receipt_sent") {
        *receipts.entry(e["message_id"].as_str().unwrap_or("")).or_insert(0) += 1;
    }
    let again_receipts = receipts.values().filter(|n| **n > 1).count();
    eprintln!(
        "after the restart: {} accepted, none lost, {} doubled; {sent_cut_short} of {} cut-short posts sent; \
         {again_receipts} receipts delivered again; {:?} in all",
        accepted.len(),
        doubled.len(),
        unanswered.len(),
        started.elapsed()
    );
    assert!(doubled.is_empty(), "submitted more than once: {doubled:?}");
    assert!(accepted.iter().all(|t| counts.get(t) == Some(&1)), "every accepted message exactly once");
    let all_submits = log.iter().filter(|e| e["event"] == "submit_sm").count();
    assert_eq!(echoed, all_submits, "every submit_sm carries its reference");
}

/// Inbound through the SMSC to a component: the SMSC's deliver_sm to a number whose app runs the
/// sms-autoresponder example is stored, the component's handle-sms runs and its send-sms reply
/// goes out as a submit_sm from that number to the sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_sms_runs_the_component_whose_reply_goes_out() {
    use tokio::io::AsyncWriteExt;

    let (mut smsc, port, smsc_log) = smsc().await;
    let (platform, _config) = platform_with_smsc(port).await;
    let autoresponder = opentact_guest_artifacts::bytes("sms-autoresponder");
    provision::component_sms_number(&platform.data(), "auto@example.test", 12025550166, &autoresponder).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !smsc_log.lock().iter().any(|e| e["event"] == "bind" && e["ok"] == true) {
        assert!(tokio::time::Instant::now() < deadline, "the platform did not bind");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deliver =
        json!({"deliver": {"from": "14155550123", "to": "12025550166", "text": "When do you open?"}});
    let stdin = smsc.stdin.as_mut().expect("stdin");
    stdin.write_all(format!("{deliver}\n").as_bytes()).await.expect("deliver");
    stdin.flush().await.expect("flush");
    let reply = "Thanks for your message! We will get back to you within one business day.";
    let hex: String = reply.bytes().map(|b| format!("{b:02x}")).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let submitted = loop {
        let found = smsc_log
            .lock()
            .iter()
            .find(|e| {
                e["event"] == "submit_sm"
                    && e["destination"].as_str().is_some_and(|d| d.ends_with("14155550123"))
            })
            .cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(tokio::time::Instant::now() < deadline, "no reply reached the SMSC: {:?}", smsc_log.lock());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(submitted["source"].as_str().is_some_and(|s| s.ends_with("12025550166")), "{submitted}");
    assert_eq!(submitted["short_message"].as_str().map(str::to_ascii_lowercase), Some(hex), "{submitted}");
}

/// Inbound (issue 11, item 5): the SMSC's deliver_sm to a number with SMS becomes an smsr
/// record (GET /rest/sms/{uuid}), sms.received on the websocket and a signed webhook to the
/// messaging profile's callback_url2 once callback_url answered 500; a deliver_sm to a number
/// nobody leases is refused with ESME_RINVDSTADR (0x0B) and stored nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_sms_is_stored_published_and_posted_signed() {
    use support::http::{Canned, TestServer};
    use tokio::io::AsyncWriteExt;

    let (mut smsc_child, port, smsc_log) = smsc().await;
    let mut smsc_in = smsc_child.stdin.take().expect("stdin");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("opentact.toml");
    std::fs::write(
        &config,
        format!(
            "[messaging.smpp]\nport = {port}\nsystem_id = \"opentact\"\npassword = \"secret\"\n\
             throughput_per_sec = 0\nreconnect_min_ms = 50\n\n\
             [webhooks]\nallow_private = true\nbackoff_ms = 50\nmax_backoff_ms = 200\n"
        ),
    )
    .expect("config");
    let platform = Platform::start_in(
        tempfile::tempdir().expect("tempdir"),
        &["--config", config.to_str().expect("utf-8")],
    )
    .await;
    provision::sms_number(&platform.data(), "in@example.test", 12025550179, true).await;
    let bearer = login(&platform, "in@example.test").await;
    let auth = [("Authorization", bearer.as_str())];
    let mut socket = support::ws::subscribe(platform.api, bearer.trim_start_matches("Bearer ")).await;

    let receiver = TestServer::start(&[("/fail", Canned::status(500)), ("/ok", Canned::status(200))]).await;
    let (status, profile) = http(
        platform.api,
        "POST",
        "/rest/profile/messaging",
        &auth,
        Some(&json!({"name": "inbound", "callback_url": receiver.url("/fail"), "callback_url2": receiver.url("/ok")})),
    )
    .await;
    assert_eq!(status, 201, "{profile}");
    let (_, leases) = http(platform.api, "GET", "/rest/lease/tn", &auth, None).await;
    let lease = leases["payload"]["data"][0]["uuid"].as_str().expect("lease").to_owned();
    let (status, patched) = http(
        platform.api,
        "PATCH",
        &format!("/rest/lease/tn/{lease}"),
        &auth,
        Some(&json!({"messaging_profile_uuid": profile["payload"]["uuid"]})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let (status, key) = http(platform.api, "GET", "/rest/event/key", &auth, None).await;
    assert_eq!(status, 200, "{key}");
    let public_key = key["payload"]["public_key"].as_str().expect("public key").to_owned();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !smsc_log.lock().iter().any(|e| e["event"] == "bind" && e["ok"] == true) {
        assert!(tokio::time::Instant::now() < deadline, "no bind\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (to, text) in [("12025550179", "Hi there, inbound"), ("19995550000", "nobody has this number")] {
        let line = json!({"deliver": {"from": "14155550123", "to": to, "text": text}}).to_string() + "\n";
        smsc_in.write_all(line.as_bytes()).await.expect("smsc stdin");
    }

    let event = loop {
        let e = support::ws::next(&mut socket).await;
        if e["type"] == "sms.received" {
            break e;
        }
    };
    assert_eq!(event["payload"]["type"], "smsr", "{event}");
    assert_eq!(event["payload"]["text"], "Hi there, inbound", "{event}");
    assert_eq!(event["payload"]["from"], "14155550123", "{event}");
    assert_eq!(event["payload"]["to"], "12025550179", "{event}");
    let id = event["payload"]["uuid"].as_str().expect("uuid").to_owned();
    let (status, got) = http(platform.api, "GET", &format!("/rest/sms/{id}"), &auth, None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["payload"]["type"], "smsr", "{got}");
    assert_eq!(got["payload"]["state"], "received", "{got}");
    assert_eq!(got["payload"]["history"][0]["state"], "received", "{got}");

    // callback_url answers 500, so the same attempt goes on to callback_url2, signed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let delivered = loop {
        let got = receiver.received();
        if let Some(ok) = got.iter().find(|r| r.uri == "/ok") {
            assert!(got.iter().any(|r| r.uri == "/fail"), "callback_url was tried first: {got:?}");
            break ok.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no webhook: {got:?}\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let header = |name: &str| delivered.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let timestamp: i64 = header("opentact-timestamp").expect("timestamp").parse().expect("number");
    let signature = header("opentact-signature").expect("signature");
    assert!(
        opentact_events::signing::verify(&public_key, timestamp, delivered.body.as_bytes(), &signature),
        "signed with the account's key"
    );
    let body: Value = serde_json::from_str(&delivered.body).expect("json");
    assert_eq!(
        (body["type"].as_str(), body["payload"]["uuid"].as_str()),
        (Some("sms.received"), Some(id.as_str()))
    );

    // The SMSC got 0 for the first and "invalid destination" for the second; one smsr stored.
    assert_eq!(smsc_answers(&smsc_log, 2, &platform).await, [0, 0x0B]);
    let (status, found) = http(platform.api, "POST", "/rest/sms/search", &auth, Some(&json!({}))).await;
    assert_eq!(status, 200, "{found}");
    let texts: Vec<&str> = found["payload"]["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["Hi there, inbound"], "{found}");

    // A concatenated message (two deliver_sm with a UDH) is stored once, whole.
    let parts = json!({"deliver": {"from": "14155550123", "to": "12025550179", "parts": ["first half, ", "second half"]}});
    smsc_in.write_all((parts.to_string() + "\n").as_bytes()).await.expect("smsc stdin");
    let event = loop {
        let e = support::ws::next(&mut socket).await;
        if e["type"] == "sms.received" {
            break e;
        }
    };
    assert_eq!(event["payload"]["text"], "first half, second half", "{event}");
    assert_eq!(event["payload"]["parts"], 2, "{event}");
}

/// The statuses of the platform's `deliver_sm_resp`s, once there are `count` (at most 10 s).
async fn smsc_answers(log: &parking_lot::Mutex<Vec<Value>>, count: usize, platform: &Platform) -> Vec<i64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let statuses: Vec<i64> = log
            .lock()
            .iter()
            .filter(|e| e["event"] == "deliver_sm_resp")
            .filter_map(|e| e["command_status"].as_i64())
            .collect();
        if statuses.len() >= count {
            return statuses;
        }
        assert!(tokio::time::Instant::now() < deadline, "{statuses:?}\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With `[rating] inbound_per_sms`, a message in is charged to the account of its number: an
/// account that cannot pay it is answered "temporary error" (ESME_RX_T_APPN, 0x64: the SMSC
/// delivers it again later) and nothing is stored; once credited, a two-part message is stored
/// with its price, the balance debited and the charge announced as account.changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_sms_are_charged_and_wait_at_the_smsc_without_balance() {
    use tokio::io::AsyncWriteExt;

    let (mut smsc_child, port, smsc_log) = smsc().await;
    let mut smsc_in = smsc_child.stdin.take().expect("stdin");
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, deck) = (dir.path().join("opentact.toml"), dir.path().join("rates.csv"));
    std::fs::write(&deck, "prefix,per_minute,per_sms,increment\n1,0.01,0.004,60/6\n").expect("deck");
    std::fs::write(
        &config,
        format!(
            "[messaging.smpp]\nport = {port}\nsystem_id = \"opentact\"\npassword = \"secret\"\n\
             throughput_per_sec = 0\nreconnect_min_ms = 50\n\n\
             [rating]\ndeck = \"{}\"\ninbound_per_sms = \"0.004\"\n",
            deck.display()
        ),
    )
    .expect("config");
    let platform = Platform::start_in(
        tempfile::tempdir().expect("tempdir"),
        &["--config", config.to_str().expect("utf-8")],
    )
    .await;
    let email = "paying@example.test";
    provision::sms_number(&platform.data(), email, 12025550183, true).await;
    let bearer = login(&platform, email).await;
    let auth = [("Authorization", bearer.as_str())];
    let mut socket = support::ws::subscribe(platform.api, bearer.trim_start_matches("Bearer ")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !smsc_log.lock().iter().any(|e| e["event"] == "bind" && e["ok"] == true) {
        assert!(tokio::time::Instant::now() < deadline, "no bind\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deliver = |message: Value| json!({"deliver": message}).to_string() + "\n";

    // No balance: the SMSC is told to try again later; nothing is stored.
    let line = deliver(json!({"from": "14155550123", "to": "12025550183", "text": "unpaid"}));
    smsc_in.write_all(line.as_bytes()).await.expect("smsc stdin");
    assert_eq!(smsc_answers(&smsc_log, 1, &platform).await, [0x64]);
    assert!(
        platform.log().contains("insufficient balance: 0.000000 USD left, a message in to 12025550183 of 1 part costs 0.004000 USD"),
        "{}",
        platform.log()
    );
    let (status, found) = http(platform.api, "POST", "/rest/sms/search", &auth, Some(&json!({}))).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["payload"]["total"], 0, "{found}");

    // The operator credits 0.01 from the CLI: the running platform announces it.
    platform.credit(email, "0.01").await;
    let credited = loop {
        let event = support::ws::next(&mut socket).await;
        if event["type"] == "account.changed" {
            break event;
        }
    };
    assert_eq!(credited["payload"]["transaction"]["kind"], "credit", "{credited}");
    assert_eq!(credited["payload"]["balance_micros"], 10_000, "{credited}");

    // 0.01 pays a two-part message: 0.008.
    let parts = json!({"from": "14155550123", "to": "12025550183", "parts": ["first half, ", "second half"]});
    smsc_in.write_all(deliver(parts).as_bytes()).await.expect("smsc stdin");
    let (mut received, mut changed) = (None, None);
    while received.is_none() || changed.is_none() {
        let event = support::ws::next(&mut socket).await;
        match event["type"].as_str() {
            Some("sms.received") => received = Some(event),
            Some("account.changed") => changed = Some(event),
            _ => {}
        }
    }
    let (received, changed) = (received.expect("sms.received"), changed.expect("account.changed"));
    assert_eq!(smsc_answers(&smsc_log, 3, &platform).await, [0x64, 0, 0]);
    let id = received["payload"]["uuid"].as_str().expect("uuid");
    assert_eq!(received["payload"]["price_micros"], 8_000, "the event carries the price: {received}");
    assert_eq!(changed["payload"]["balance_micros"], 2_000, "{changed}");
    assert_eq!(changed["payload"]["transaction"]["amount_micros"], -8_000, "{changed}");
    assert_eq!(changed["payload"]["transaction"]["reference"], id, "{changed}");
    let (status, got) = http(platform.api, "GET", &format!("/rest/sms/{id}"), &auth, None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["payload"]["price_micros"], 8_000, "{got}");
    let (status, balance) = http(platform.api, "GET", "/rest/account/balance", &auth, None).await;
    assert_eq!(status, 200, "{balance}");
    assert_eq!(balance["payload"]["balance_micros"], 2_000, "{balance}");

    // 0.002 left does not pay the next one.
    let line = deliver(json!({"from": "14155550123", "to": "12025550183", "text": "one more"}));
    smsc_in.write_all(line.as_bytes()).await.expect("smsc stdin");
    assert_eq!(smsc_answers(&smsc_log, 4, &platform).await, [0x64, 0, 0, 0x64]);
}

/// A webhook app (issue 11, item 5) gets the inbound SMS POSTed, signed, and its reply document
/// goes back to the sender as a submit_sm from the number; an outbound SMS's statuses reach its
/// custom_callback_url in order (sms.sent, then sms.status delivered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_app_replies_and_custom_callback_url_gets_statuses_in_order() {
    use support::http::{Canned, TestServer};
    use tokio::io::AsyncWriteExt;

    let (mut smsc_child, port, smsc_log) = smsc().await;
    let mut smsc_in = smsc_child.stdin.take().expect("stdin");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("opentact.toml");
    std::fs::write(
        &config,
        format!(
            "[messaging.smpp]\nport = {port}\nsystem_id = \"opentact\"\npassword = \"secret\"\n\
             throughput_per_sec = 0\nreconnect_min_ms = 50\n\n[messaging.sender]\npoll_interval_ms = 50\n\n\
             [webhooks]\nallow_private = true\nbackoff_ms = 50\nmax_backoff_ms = 200\n\n\
             [flows.http]\nallow_private = true\n"
        ),
    )
    .expect("config");
    let platform = Platform::start_in(
        tempfile::tempdir().expect("tempdir"),
        &["--config", config.to_str().expect("utf-8")],
    )
    .await;
    provision::sms_number(&platform.data(), "app@example.test", 12025550181, true).await;
    let bearer = login(&platform, "app@example.test").await;
    let auth = [("Authorization", bearer.as_str())];
    let receiver = TestServer::start(&[
        ("/sms", Canned::xml("<Response><Message>Got it: thanks!</Message></Response>")),
        ("/status", Canned::status(200)),
    ])
    .await;
    let (status, app) = http(
        platform.api,
        "POST",
        "/rest/sip/app",
        &auth,
        Some(&json!({"name": "sms-bot", "webhook_url": receiver.url("/sms")})),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    let (_, leases) = http(platform.api, "GET", "/rest/lease/tn", &auth, None).await;
    let lease = leases["payload"]["data"][0]["uuid"].as_str().expect("lease").to_owned();
    let (status, patched) = http(
        platform.api,
        "PATCH",
        &format!("/rest/lease/tn/{lease}"),
        &auth,
        Some(&json!({"sip_control_app": app["payload"]["uuid"]})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !smsc_log.lock().iter().any(|e| e["event"] == "bind" && e["ok"] == true) {
        assert!(tokio::time::Instant::now() < deadline, "no bind\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line =
        json!({"deliver": {"from": "14155550124", "to": "12025550181", "text": "ping"}}).to_string() + "\n";
    smsc_in.write_all(line.as_bytes()).await.expect("smsc stdin");
    // The reply: a submit_sm to the sender, from the number, with the document's text.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let submitted = loop {
        let found = smsc_log
            .lock()
            .iter()
            .find(|e| e["event"] == "submit_sm" && e["destination"] == "14155550124")
            .cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(tokio::time::Instant::now() < deadline, "no reply\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(submitted["source"].as_str().is_some_and(|s| s.ends_with("12025550181")), "{submitted}");
    let hex: String = "Got it: thanks!".bytes().map(|b| format!("{b:02x}")).collect();
    assert_eq!(submitted["short_message"].as_str(), Some(hex.as_str()), "{submitted}");
    let posted = receiver.received().into_iter().find(|r| r.uri == "/sms").expect("the app was POSTed");
    assert!(posted.headers.iter().any(|(k, _)| k == "opentact-signature"), "signed: {posted:?}");
    let body: Value = serde_json::from_str(&posted.body).expect("json");
    assert_eq!(body["payload"]["text"], "ping", "{body}");
    // The inbound message was taken by the app.
    let id = body["payload"]["uuid"].as_str().expect("uuid").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, got) = http(platform.api, "GET", &format!("/rest/sms/{id}"), &auth, None).await;
        if got["payload"]["state"] == "delivered" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // custom_callback_url: sms.sent then sms.status delivered, in that order.
    let (status, created) = http(
        platform.api,
        "POST",
        "/rest/sms",
        &auth,
        Some(&json!({"tn": 12025550181_i64, "to": "14155550125", "message": "status please",
                     "custom_callback_url": receiver.url("/status")})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<Value> = receiver
            .received()
            .iter()
            .filter(|r| r.uri == "/status")
            .filter_map(|r| serde_json::from_str(&r.body).ok())
            .collect();
        if got.len() >= 2 {
            let seen: Vec<(&str, &str)> = got
                .iter()
                .map(|e| (e["type"].as_str().unwrap_or(""), e["payload"]["state"].as_str().unwrap_or("")))
                .collect();
            assert_eq!(seen, [("sms.sent", "sent"), ("sms.status", "delivered")], "{got:?}");
            assert!(got.iter().all(|e| e["payload"]["uuid"] == created["payload"]["uuid"]));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{got:?}\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
