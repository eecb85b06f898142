//! Webhook throughput: publishes events of many calls on the event bus at a steady rate and
//! measures, at a receiver on loopback that checks every signature, how many deliveries arrive
//! per second and the delay from each event's publication to its arrival.
//!
//! ```sh
//! cargo run --release -p opentact-webhooks --example throughput -- [rate/s] [seconds] [calls] [store-url]
//! ```
//! Defaults: 5000 events/s for 10 s over 500 concurrent calls, on a SQLite file in a temporary
//! directory (`postgres://…` to measure PostgreSQL; the database must exist).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentact_events::{BusConfig, Event, EventBus};
use opentact_store::{AccountRepo, EventChannel, NewAccount, NewEventSubscription, Store, WebhookRepo};
use opentact_webhooks::{WebhookConfig, Webhooks};
use parking_lot::Mutex;

#[derive(Default)]
struct Received {
    delays_ms: Mutex<Vec<i64>>,
    bad_signatures: AtomicU64,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (rate, seconds, calls) = (arg(0, 5000), arg(1, 10), arg(2, 500).max(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let url = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()));
    let store = Store::open(&url).await.expect("store");
    let account = store
        .create_account(NewAccount {
            name: "bench".into(),
            email: format!("bench-{}@example.test", uuid::Uuid::new_v4()),
            password: "bench password".into(),
            time_zone: "UTC".into(),
        })
        .await
        .expect("account")
        .uuid;

    // The receiver: checks each signature with the account's public key, records the delay.
    let received = Arc::new(Received::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let receiver_url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let public_key: Arc<Mutex<Option<String>>> = Arc::default();
    {
        let (received, public_key) = (received.clone(), public_key.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (received, public_key) = (received.clone(), public_key.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let (received, public_key) = (received.clone(), public_key.clone());
                        async move {
                            let header = |name: &str| {
                                request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
                            };
                            let timestamp = header("opentact-timestamp").and_then(|t| t.parse::<i64>().ok());
                            let signature = header("opentact-signature").unwrap_or_default();
                            let body =
                                request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let arrived = Utc::now();
                            let key = public_key.lock().clone();
                            let valid = matches!((key, timestamp), (Some(k), Some(t))
                                if opentact_events::signing::verify(&k, t, &body, &signature));
                            if !valid {
                                received.bad_signatures.fetch_add(1, Ordering::Relaxed);
                            }
                            let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                            if let Some(created) = event["created_on"]
                                .as_str()
                                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                            {
                                received
                                    .delays_ms
                                    .lock()
                                    .push((arrived - created.with_timezone(&Utc)).num_milliseconds());
                            }
                            Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }

    store
        .create_subscription(
            account,
            NewEventSubscription {
                channel: EventChannel::Webhook,
                event_type: "*".into(),
                url: Some(receiver_url.clone()),
                url2: None,
            },
        )
        .await
        .expect("subscription");
    let (bus, tap) = EventBus::with_tap(BusConfig::default());
    let config = WebhookConfig { allow_private: true, ..WebhookConfig::default() };
    let _webhooks = Webhooks::start(store.clone(), config, None, tap);
    // The first delivery makes the key; the receiver learns it from the store.
    let key = loop {
        if let Some(key) = store.signing_key(account).await.expect("key") {
            break key;
        }
        publish(&bus, account, uuid::Uuid::new_v4(), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    *public_key.lock() = Some(key.public_key);
    tokio::time::sleep(Duration::from_millis(500)).await;
    received.delays_ms.lock().clear();
    received.bad_signatures.store(0, Ordering::Relaxed);

    println!("publishing {rate} events/s for {seconds} s over {calls} calls to {receiver_url} ({url})");
    let total = rate * seconds;
    let call_ids: Vec<uuid::Uuid> = (0..calls).map(|_| uuid::Uuid::new_v4()).collect();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (rate / 100).max(1);
    let mut published = 0u64;
    while published < total {
        tick.tick().await;
        for _ in 0..per_tick.min(total - published) {
            let call = call_ids[(published % calls) as usize];
            publish(&bus, account, call, published / calls + 1);
            published += 1;
        }
    }
    let publishing = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (received.delays_ms.lock().len() as u64) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let mut delays = received.delays_ms.lock().clone();
    delays.sort_unstable();
    let pct = |p: f64| {
        delays.get(((delays.len() as f64 * p) as usize).min(delays.len().saturating_sub(1))).copied()
    };
    println!(
        "delivered {} of {total} in {:.2} s (published in {:.2} s): {:.0} events/s delivered",
        delays.len(),
        elapsed.as_secs_f64(),
        publishing.as_secs_f64(),
        delays.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "delay event → delivery: p50 {} ms, p99 {} ms, max {} ms; bad signatures: {}",
        pct(0.50).unwrap_or(-1),
        pct(0.99).unwrap_or(-1),
        delays.last().copied().unwrap_or(-1),
        received.bad_signatures.load(Ordering::Relaxed)
    );
}

fn publish(bus: &EventBus, account: uuid::Uuid, call: uuid::Uuid, seq: u64) {
    let now = Utc::now();
    bus.publish(Event {
        uuid: uuid::Uuid::new_v4(),
        kind: "call.callflow".into(),
        created_on: now,
        account,
        message: None,
        call: Some(serde_json::json!({ "uuid": call })),
        seq: Some(seq),
        occurred_at: now,
        payload: serde_json::json!({"verb": "say", "phase": "finished", "detail": {"text": "hello"}}),
    });
}
