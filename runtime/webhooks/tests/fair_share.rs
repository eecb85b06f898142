//! One account's hanging webhook receiver holds only its share of the delivery slots: another
//! account's webhooks are still delivered promptly. Real HTTP servers on loopback, a real
//! SQLite outbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentact_events::Event;
use opentact_store::{AccountRepo, NewAccount, Store};
use opentact_webhooks::{WebhookConfig, Webhooks};
use tokio::sync::mpsc;
use uuid::Uuid;

mod support;

/// A receiver that accepts connections and reads requests but never answers; it counts
/// connections.
async fn hanging_receiver() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (url, connections)
}

async fn account(store: &Store, name: &str) -> Uuid {
    store
        .create_account(NewAccount {
            name: name.into(),
            email: format!("{name}@webhooks.test"),
            password: "correct horse battery".into(),
            time_zone: "UTC".into(),
        })
        .await
        .expect("account")
        .uuid
}

fn event(account: Uuid, call: Uuid) -> Arc<Event> {
    let now = chrono::Utc::now();
    Arc::new(Event {
        uuid: Uuid::new_v4(),
        kind: "call.initiated".to_owned(),
        created_on: now,
        account,
        message: None,
        call: Some(serde_json::json!({ "uuid": call.to_string() })),
        seq: None,
        occurred_at: now,
        payload: serde_json::json!({}),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_holds_only_its_accounts_share() {
    let dir = tempfile::tempdir().expect("dir");
    let store =
        Store::open(&format!("sqlite://{}/w.db?mode=rwc", dir.path().display())).await.expect("store");
    let (slow, fast) = (account(&store, "slow").await, account(&store, "fast").await);
    let (hanging, connections) = hanging_receiver().await;
    let (answering, mut bodies) = support::answering_receiver(Duration::ZERO).await;
    let config = WebhookConfig {
        allow_private: true,
        // Far longer than the test waits: a slot the hanging receiver holds stays held.
        timeout_ms: 60_000,
        concurrency: 4,
        max_in_flight_per_account: 2,
        ..WebhookConfig::default()
    };
    let (events, tap) = mpsc::channel(64);
    let webhooks = Webhooks::start(store, config, Some("node-a".to_owned()), tap);
    // The slow account's calls, each its own chain, all queued before the fast account's one.
    for _ in 0..10 {
        let call = Uuid::new_v4();
        webhooks.call_started(&call.to_string(), Some(&hanging));
        events.send(event(slow, call)).await.expect("tap");
    }
    let call = Uuid::new_v4();
    webhooks.call_started(&call.to_string(), Some(&answering));
    let fast_event = event(fast, call);
    events.send(fast_event.clone()).await.expect("tap");

    // Without the share, the slow account's deliveries take all 4 slots for 60 s.
    let body = tokio::time::timeout(Duration::from_secs(20), bodies.recv())
        .await
        .expect("the fast account's webhook is delivered while the slow one's receiver hangs")
        .expect("a body");
    assert!(body.contains(&fast_event.uuid.to_string()), "{body}");
    // The slow account holds its share, 2 of the 4 slots, and no more.
    for _ in 0..100 {
        if connections.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 2, "the slow account's deliveries in flight");
}
