//! Webhooks end to end: a real SIP call's events reach a receiver on loopback as signed POSTs
//! — every signature verified with the key from the API, each event accepted exactly once, in
//! per-call order, through a receiver that fails each event twice first — and deliveries
//! pending when the server is killed arrive after it restarts; number and account events reach
//! a subscription signed, with the websocket's payload.

mod support;
// The webhook crate's tests make their PostgreSQL databases the same way.
#[path = "../runtime/webhooks/tests/support/pg.rs"]
mod pg;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{Value, json};
use support::platform::{Platform, http};
use support::ws::sample_password;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    event: Value,
    signature_valid: bool,
    /// What the receiver answered.
    status: u16,
}

/// A webhook receiver: checks each request's signature against `public_key` (set once known),
/// refuses each event `failures` times before accepting it, and refuses everything while
/// `down` is set.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    public_key: Arc<Mutex<Option<String>>>,
    log: Arc<Mutex<Vec<Delivery>>>,
    down: Arc<AtomicBool>,
}

impl Receiver {
    async fn start(failures: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let receiver = Receiver {
            addr: listener.local_addr().expect("addr"),
            public_key: Arc::default(),
            log: Arc::default(),
            down: Arc::default(),
        };
        let shared = receiver.clone();
        tokio::spawn(async move {
            let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (shared, seen) = (shared.clone(), seen.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let (shared, seen) = (shared.clone(), seen.clone());
                        async move {
                            let header = |name: &str| {
                                request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
                            };
                            let timestamp = header("opentact-timestamp").and_then(|t| t.parse::<i64>().ok());
                            let signature = header("opentact-signature");
                            let body =
                                request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let signature_valid =
                                match (shared.public_key.lock().as_deref(), timestamp, signature) {
                                    (Some(key), Some(t), Some(s)) => {
                                        opentact_events::signing::verify(key, t, &body, &s)
                                            && (chrono::Utc::now().timestamp() - t).abs() < 300
                                    }
                                    _ => false,
                                };
                            let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let id = event["uuid"].as_str().unwrap_or_default().to_owned();
                            let status = {
                                let mut seen = seen.lock();
                                let count = seen.entry(id).or_default();
                                *count += 1;
                                if shared.down.load(Ordering::SeqCst) || *count <= failures {
                                    503
                                } else {
                                    200
                                }
                            };
                            shared.log.lock().push(Delivery { event, signature_valid, status });
                            Ok::<_, hyper::Error>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .expect("response"),
                            )
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        receiver
    }

    fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// The events it accepted (answered 200), in the order it accepted them.
    fn accepted(&self) -> Vec<Value> {
        self.log.lock().iter().filter(|d| d.status == 200).map(|d| d.event.clone()).collect()
    }
}

fn basic(email: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}")))
}

/// A config file that lets webhooks reach loopback and retries quickly.
fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("webhooks.toml");
    std::fs::write(&path, "[webhooks]\nallow_private = true\nbackoff_ms = 50\nmax_backoff_ms = 400\ntimeout_ms = 2000\nmax_attempts = 1000\n")
        .expect("config");
    path
}

/// Subscribes the sample account's webhook to every event; returns its public key.
async fn subscribe(platform: &Platform, url: &str) -> String {
    let auth = basic("demo@opentact.local", &sample_password(&platform.log()));
    let headers = [("Authorization", auth.as_str())];
    let (status, created) = http(
        platform.api,
        "POST",
        "/rest/event/subscription",
        &headers,
        Some(&json!({"channel": "webhook", "type": "call.*", "url": url})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, key) = http(platform.api, "GET", "/rest/event/key", &headers, None).await;
    assert_eq!(status, 200, "{key}");
    assert_eq!(key["payload"]["algorithm"], "ed25519", "{key}");
    key["payload"]["public_key"].as_str().expect("public key").to_owned()
}

/// One call to the sample number (answered, spoken to, hung up by the flow).
async fn call(platform: &Platform) {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("caller.xml");
    std::fs::write(&scenario, support::sipp::caller_awaiting_bye()).expect("write");
    let mut command = support::platform::sipp();
    command
        .args(["-sf", scenario.to_str().expect("utf-8"), "-s", "12025550100", "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = support::platform::run_sipp(command, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
}

/// Waits until the receiver accepted `count` events.
async fn until_accepted(receiver: &Receiver, count: usize, log: impl Fn() -> String) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let accepted = receiver.accepted();
        if accepted.len() >= count {
            return accepted;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "accepted {} of {count}: {:#?}\n{}",
            accepted.len(),
            receiver.log.lock(),
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each event once, seq 1, 2, 3… in order, all of one call, ending with call.destroyed.
fn assert_once_in_order(accepted: &[Value]) {
    let seqs: Vec<u64> = accepted.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=accepted.len() as u64).collect::<Vec<_>>(), "once each, in order: {accepted:#?}");
    let call = &accepted[0]["call"]["uuid"];
    assert!(accepted.iter().all(|e| &e["call"]["uuid"] == call), "one call: {accepted:#?}");
    assert_eq!(accepted[0]["type"], "call.initiated");
    assert_eq!(accepted.last().expect("events")["type"], "call.destroyed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_arrive_once_in_order_through_a_receiver_that_fails_twice() {
    let receiver = Receiver::start(2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let platform = Platform::start_in(dir, &["--config", config.to_str().expect("utf-8")]).await;
    *receiver.public_key.lock() = Some(subscribe(&platform, &receiver.url()).await);
    call(&platform).await;
    let events = platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.destroyed").await;
    let accepted = until_accepted(&receiver, events.len(), || platform.log()).await;
    assert_eq!(accepted.len(), events.len(), "every event of the call: {accepted:#?}");
    assert_once_in_order(&accepted);
    let log = receiver.log.lock().clone();
    assert!(log.iter().all(|d| d.signature_valid), "every request is signed by the account's key: {log:#?}");
    assert_eq!(log.len(), 3 * accepted.len(), "each event: two refusals, then accepted");

    // The account sees its deliveries, all delivered after three attempts.
    let auth = basic("demo@opentact.local", &sample_password(&platform.log()));
    let (status, deliveries) =
        http(platform.api, "GET", "/rest/event/delivery?take=1000", &[("Authorization", &auth)], None).await;
    assert_eq!(status, 200, "{deliveries}");
    let data = deliveries["payload"]["data"].as_array().expect("data");
    assert_eq!(data.len(), accepted.len(), "{deliveries}");
    assert!(data.iter().all(|d| d["state"] == "delivered" && d["attempts"] == 3), "{deliveries}");
}

/// The platform (its webhooks may reach loopback), with `receiver` holding the sample
/// account's signing key; the account's Basic authorization.
async fn platform_signing_to(receiver: &Receiver) -> (Platform, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let platform = Platform::start_in(dir, &["--config", config.to_str().expect("utf-8")]).await;
    let auth = basic("demo@opentact.local", &sample_password(&platform.log()));
    let (status, key) =
        http(platform.api, "GET", "/rest/event/key", &[("Authorization", auth.as_str())], None).await;
    assert_eq!(status, 200, "{key}");
    *receiver.public_key.lock() = key["payload"]["public_key"].as_str().map(str::to_owned);
    (platform, auth)
}

/// Number and account events reach a webhook subscription as call events do: signed, with the
/// payload the websocket shows — `tn.order`, `tn.changed` for a lease's change, and
/// `account.changed` for a settings change and for the operator's credit from the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn number_and_account_events_arrive_signed_with_the_websockets_payload() {
    let receiver = Receiver::start(0).await;
    let (platform, auth) = platform_signing_to(&receiver).await;
    let headers = [("Authorization", auth.as_str())];
    for kind in ["tn.*", "account.*"] {
        let body = json!({"channel": "webhook", "type": kind, "url": receiver.url()});
        let (status, created) =
            http(platform.api, "POST", "/rest/event/subscription", &headers, Some(&body)).await;
        assert_eq!(status, 201, "{created}");
    }
    let (status, login) = http(platform.api, "GET", "/rest/auth", &headers, None).await;
    assert_eq!(status, 200, "{login}");
    let mut socket =
        support::ws::subscribe(platform.api, login["payload"]["token"].as_str().expect("jwt")).await;

    let order = json!({"items": [{"tn": 12025550150_i64}]});
    let (status, ordered) = http(platform.api, "POST", "/rest/order", &headers, Some(&order)).await;
    assert_eq!(status, 201, "{ordered}");
    let lease = ordered["payload"]["items"][0]["lease"].as_str().expect("lease").to_owned();
    let patch = json!({"autorenew": true});
    let (status, patched) =
        http(platform.api, "PATCH", &format!("/rest/lease/tn/{lease}"), &headers, Some(&patch)).await;
    assert_eq!(status, 200, "{patched}");
    let (status, renamed) =
        http(platform.api, "PATCH", "/rest/account", &headers, Some(&json!({"name": "Demo Ops"}))).await;
    assert_eq!(status, 200, "{renamed}");
    platform.credit("demo@opentact.local", "1.00").await;

    // Over the websocket, up to the credit (the last).
    let heard = support::ws::until(&mut socket, |e| e["payload"]["transaction"]["kind"] == "credit").await;
    let find = |kind: &str, matches: &dyn Fn(&Value) -> bool| {
        heard
            .iter()
            .find(|e| e["type"] == kind && matches(e))
            .cloned()
            .unwrap_or_else(|| panic!("{kind}: {heard:#?}"))
    };
    let expected = [
        find("tn.order", &|e| e["payload"]["order"]["items"][0]["tn"] == 12025550150_i64),
        find("tn.changed", &|e| {
            e["payload"]["change"] == "updated" && e["payload"]["lease"]["autorenew"] == true
        }),
        find("account.changed", &|e| e["payload"]["changed"] == json!(["name"])),
        find("account.changed", &|e| e["payload"]["balance_micros"] == 1_000_000),
    ];
    // The receiver got each, signed, with the same payload.
    let subscribed =
        |e: &&Value| e["type"].as_str().is_some_and(|t| t.starts_with("tn.") || t.starts_with("account."));
    let accepted =
        until_accepted(&receiver, heard.iter().filter(subscribed).count(), || platform.log()).await;
    for event in &expected {
        let delivered = accepted
            .iter()
            .find(|d| d["uuid"] == event["uuid"])
            .unwrap_or_else(|| panic!("{} not delivered: {accepted:#?}", event["type"]));
        assert_eq!((&delivered["type"], &delivered["payload"]), (&event["type"], &event["payload"]));
    }
    let log = receiver.log.lock().clone();
    assert!(log.iter().all(|d| d.signature_valid), "every request is signed by the account's key: {log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_pending_when_the_server_is_killed_arrive_after_a_restart() {
    let receiver = Receiver::start(0).await;
    receiver.down.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let config_arg = config.to_str().expect("utf-8").to_owned();
    let platform = Platform::start_in(dir, &["--config", &config_arg]).await;
    *receiver.public_key.lock() = Some(subscribe(&platform, &receiver.url()).await);
    call(&platform).await;
    let events = platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.destroyed").await;
    // Kill the server while every event of the call waits in the outbox for the receiver
    // (which refuses the first, so per-call order holds back the rest).
    let auth = basic("demo@opentact.local", &sample_password(&platform.log()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, deliveries) =
            http(platform.api, "GET", "/rest/event/delivery?take=1000", &[("Authorization", &auth)], None)
                .await;
        let data = deliveries["payload"]["data"].as_array().cloned().unwrap_or_default();
        let tried = data.iter().any(|d| d["attempts"].as_u64().unwrap_or(0) > 0);
        if data.len() == events.len() && tried {
            assert!(data.iter().all(|d| d["state"] == "pending"), "{deliveries}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the outbox holds the call's events: {deliveries}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(receiver.accepted().is_empty());
    let Platform { mut child, dir, .. } = platform;
    child.start_kill().expect("kill");
    let _ = child.wait().await;

    receiver.down.store(false, Ordering::SeqCst);
    let again = Platform::start_in(dir, &["--config", &config_arg]).await;
    let accepted = until_accepted(&receiver, events.len(), || again.log()).await;
    assert_eq!(accepted.len(), events.len(), "every event after the restart: {accepted:#?}");
    assert_once_in_order(&accepted);
    assert!(
        receiver.log.lock().iter().all(|d| d.signature_valid),
        "signed with the same key after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_keeps_few_deliveries_in_memory_and_loses_none() {
    let receiver = Receiver::start(0).await;
    receiver.down.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    // Memory holds 3 deliveries; the rest of the call's events wait in the outbox only.
    let text = std::fs::read_to_string(&config).expect("config") + "max_pending_in_memory = 3\n";
    std::fs::write(&config, text).expect("config");
    let platform = Platform::start_in(dir, &["--config", config.to_str().expect("utf-8")]).await;
    *receiver.public_key.lock() = Some(subscribe(&platform, &receiver.url()).await);
    call(&platform).await;
    let events = platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.destroyed").await;
    assert!(events.len() > 6, "more events than memory holds: {events:#?}");
    // The receiver refuses for a while (the head of the call's chain is retried).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver.log.lock().len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the dispatcher tries the head:\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(platform.log().contains("newer ones wait in the outbox"), "{}", platform.log());
    receiver.down.store(false, Ordering::SeqCst);
    let accepted = until_accepted(&receiver, events.len(), || platform.log()).await;
    assert_eq!(accepted.len(), events.len(), "every event, read back from the outbox: {accepted:#?}");
    assert_once_in_order(&accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_deliveries_are_sent_once_in_order_by_the_other_node() {
    let Some(db) = pg::PgDatabase::create() else { return };
    let receiver = Receiver::start(0).await;
    receiver.down.store(true, Ordering::SeqCst);
    // Both nodes share the database and the secret key file (the signing keys are sealed).
    let shared = tempfile::tempdir().expect("tempdir");
    let start = |name: &'static str| {
        let extra = "heartbeat_ms = 200\nnode_timeout_ms = 2000\n\n[webhooks]\nallow_private = true\nbackoff_ms = 50\n\
                     max_backoff_ms = 400\ntimeout_ms = 500\nmax_attempts = 1000\n";
        support::platform::start_node(name, &db.url, shared.path(), extra)
    };
    let a = start("a").await;
    let b = start("b").await;
    *receiver.public_key.lock() = Some(subscribe(&a, &receiver.url()).await);
    call(&a).await;
    let events = a.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.destroyed").await;
    // Node a holds the call's events (the receiver refuses them) when it is killed.
    let auth = basic("demo@opentact.local", &sample_password(&a.log()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, deliveries) =
            http(a.api, "GET", "/rest/event/delivery?take=1000", &[("Authorization", &auth)], None).await;
        let data = deliveries["payload"]["data"].as_array().cloned().unwrap_or_default();
        if data.len() == events.len() && data.iter().any(|d| d["attempts"].as_u64().unwrap_or(0) > 0) {
            assert!(data.iter().all(|d| d["state"] == "pending"), "{deliveries}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the outbox holds the call's events: {deliveries}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Platform { mut child, .. } = a;
    child.start_kill().expect("kill -9");
    let _ = child.wait().await;
    receiver.down.store(false, Ordering::SeqCst);

    // Node b takes a over after the timeout and sends what a held: each once, in order.
    let accepted = until_accepted(&receiver, events.len(), || b.log()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let accepted_later = receiver.accepted();
    assert_eq!(accepted_later.len(), accepted.len(), "nothing sent twice: {accepted_later:#?}");
    assert_once_in_order(&accepted);
    assert!(b.log().contains("took over a dead node"), "{}", b.log());
    assert!(receiver.log.lock().iter().all(|d| d.signature_valid), "signed with the account's key on node b");
    drop(b);
    drop(db);
}

/// Two nodes on one PostgreSQL, a call on each at once: every event of both calls reaches the
/// receiver, which refuses each once, exactly once in the end, each call's in order — each
/// node delivering the events of the calls it carried — signed with the account's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_two_nodes_are_delivered_once_each_in_order() {
    let Some(db) = pg::PgDatabase::create() else { return };
    let receiver = Receiver::start(1).await;
    let shared = tempfile::tempdir().expect("tempdir");
    let start = |name: &'static str| {
        let extra = "\n[webhooks]\nallow_private = true\nbackoff_ms = 50\nmax_backoff_ms = 400\ntimeout_ms = 2000\n\
                     max_attempts = 1000\n";
        support::platform::start_node(name, &db.url, shared.path(), extra)
    };
    let a = start("a").await;
    let b = start("b").await;
    *receiver.public_key.lock() = Some(subscribe(&a, &receiver.url()).await);
    tokio::join!(call(&a), call(&b));
    let on_a = a.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.destroyed").await;
    let on_b = b.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.destroyed").await;
    let total = on_a.len() + on_b.len();
    let accepted = until_accepted(&receiver, total, || format!("{}\n{}", a.log(), b.log())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.accepted().len(), total, "nothing accepted twice: {accepted:#?}");
    for events in [&on_a, &on_b] {
        // The event log names the call by its uuid; the envelope by an object.
        let call = events[0]["call"].as_str().expect("the call's uuid");
        let of_call: Vec<Value> = accepted.iter().filter(|e| e["call"]["uuid"] == call).cloned().collect();
        assert_eq!(of_call.len(), events.len(), "every event of call {call}: {accepted:#?}");
        assert_once_in_order(&of_call);
    }
    assert!(
        receiver.log.lock().iter().all(|d| d.signature_valid),
        "signed with the account's key on both nodes"
    );
    drop((a, b));
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_numbers_own_event_url_gets_its_calls_events_signed() {
    let receiver = Receiver::start(0).await;
    let (platform, auth) = platform_signing_to(&receiver).await;
    let headers = [("Authorization", auth.as_str())];
    // The sample number's lease names the receiver; the account subscribes to nothing.
    let (status, leases) = http(platform.api, "GET", "/rest/lease/tn", &headers, None).await;
    assert_eq!(status, 200, "{leases}");
    let lease = leases["payload"]["data"]
        .as_array()
        .and_then(|data| data.iter().find(|l| l["tn"] == 12025550100_i64))
        .expect("the sample number's lease")["uuid"]
        .as_str()
        .expect("uuid")
        .to_owned();
    let path = format!("/rest/lease/tn/{lease}");
    let (status, patched) =
        http(platform.api, "PATCH", &path, &headers, Some(&json!({"event_url": receiver.url()}))).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["payload"]["event_url"], receiver.url().as_str(), "{patched}");
    let (status, refused) =
        http(platform.api, "PATCH", &path, &headers, Some(&json!({"event_url": "ftp://example.com/x"})))
            .await;
    assert_eq!(status, 422, "{refused}");

    call(&platform).await;
    let events = platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.destroyed").await;
    let accepted = until_accepted(&receiver, events.len(), || platform.log()).await;
    assert_eq!(accepted.len(), events.len(), "every event of the number's call: {accepted:#?}");
    assert_once_in_order(&accepted);
    assert!(receiver.log.lock().iter().all(|d| d.signature_valid), "signed by the account's key");

    // Removed, the number's URL hears nothing more.
    let (status, cleared) =
        http(platform.api, "PATCH", &path, &headers, Some(&json!({"event_url": null}))).await;
    assert_eq!(status, 200, "{cleared}");
    assert!(cleared["payload"]["event_url"].is_null(), "{cleared}");
    call(&platform).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.accepted().len(), accepted.len(), "no more deliveries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_domains_and_users_event_urls_get_the_users_calls_events_signed() {
    let domain_receiver = Receiver::start(0).await;
    let user_receiver = Receiver::start(0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    // No carrier addresses: the SIPp caller on loopback must prove itself as the SIP user.
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("[sip]\ncarriers = []\n");
    std::fs::write(&config, text).expect("config");
    let platform = Platform::start_in(dir, &["--config", config.to_str().expect("utf-8")]).await;
    let auth = basic("demo@opentact.local", &sample_password(&platform.log()));
    let headers = [("Authorization", auth.as_str())];
    let (status, key) = http(platform.api, "GET", "/rest/event/key", &headers, None).await;
    assert_eq!(status, 200, "{key}");
    for receiver in [&domain_receiver, &user_receiver] {
        *receiver.public_key.lock() = key["payload"]["public_key"].as_str().map(str::to_owned);
    }
    let flow = r#"<Response><Answer/><Pause length="1"/><Hangup/></Response>"#;
    let (status, app) =
        http(platform.api, "POST", "/rest/sip/app", &headers, Some(&json!({"name": "desk", "xml": flow})))
            .await;
    assert_eq!(status, 201, "{app}");
    let (status, domain) = http(
        platform.api,
        "POST",
        "/rest/sip/domain",
        &headers,
        Some(&json!({"name": "acme", "app": app["payload"]["uuid"], "event_url": domain_receiver.url()})),
    )
    .await;
    assert_eq!(status, 201, "{domain}");
    assert_eq!(domain["payload"]["event_url"], domain_receiver.url().as_str(), "{domain}");
    let (status, refused) = http(
        platform.api,
        "PATCH",
        "/rest/sip/domain/acme",
        &headers,
        Some(&json!({"event_url": "ftp://example.com/x"})),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    let (status, user) = http(
        platform.api,
        "POST",
        "/rest/sip/domain/acme/user",
        &headers,
        Some(&json!({"login": "alice", "password": "alice-Pass-1", "event_url": user_receiver.url()})),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["payload"]["event_url"], user_receiver.url().as_str(), "{user}");

    // alice calls a number through her domain's app: both scopes hear every event, signed.
    let call_as_alice = || async {
        let scenario_dir = tempfile::tempdir().expect("tempdir");
        let scenario = scenario_dir.path().join("alice.xml");
        let text = support::sipp::digest_caller_awaiting_bye(
            "acme.sip.opentact.local",
            "alice@acme.sip.opentact.local",
        );
        std::fs::write(&scenario, text).expect("write");
        let mut command = support::platform::sipp();
        command
            .args([
                "-sf",
                scenario.to_str().expect("utf-8"),
                "-s",
                "13105550123",
                "-m",
                "1",
                "-i",
                "127.0.0.1",
            ])
            .args(["-au", "alice", "-ap", "alice-Pass-1", "-timeout", "20s", "-timeout_error", "-nostdin"])
            // The digest uri must be the Request-URI; SIPp's default is its remote address.
            .args(["-auth_uri", "13105550123@acme.sip.opentact.local"])
            .arg(platform.sip.to_string());
        let (code, output) = support::platform::run_sipp(command, Duration::from_secs(40)).await;
        assert_eq!(code, 0, "{output}\n{}", platform.log());
    };
    call_as_alice().await;
    let events = platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.destroyed").await;
    for receiver in [&domain_receiver, &user_receiver] {
        let accepted = until_accepted(receiver, events.len(), || platform.log()).await;
        assert_eq!(accepted.len(), events.len(), "every event of alice's call: {accepted:#?}");
        assert_once_in_order(&accepted);
        assert_eq!(accepted[0]["call"]["from"], "alice", "{:#}", accepted[0]);
        assert!(receiver.log.lock().iter().all(|d| d.signature_valid), "signed by the account's key");
    }

    // Without her own URL, alice's next call reaches her domain's only.
    let uuid = user["payload"]["uuid"].as_str().expect("uuid");
    let path = format!("/rest/sip/domain/acme/user/{uuid}");
    let (status, cleared) =
        http(platform.api, "PATCH", &path, &headers, Some(&json!({"event_url": null}))).await;
    assert_eq!(status, 200, "{cleared}");
    assert!(cleared["payload"]["event_url"].is_null(), "{cleared}");
    let heard = user_receiver.accepted().len();
    call_as_alice().await;
    until_accepted(&domain_receiver, 2 * events.len(), || platform.log()).await;
    assert_eq!(user_receiver.accepted().len(), heard, "alice's removed URL hears nothing more");
}
