//! One account's hanging webhook receiver holds only its share of the delivery slots: another
//! account's webhooks are still delivered promptly. Real HTTP servers on loopback, a real
//! SQLite outbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentact_events::Event;
use opentact_store::{AccountRepo, NewAccount, Store};
use opentact_webhooks::{WebhookConfig, Webhooks};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use uuid::Uuid;

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

/// A receiver that answers every request 200 and reports each request's body.
async fn answering_receiver() -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (seen, bodies) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                    buf.drain(..end + 4 + length);
                    let _ = seen.send(body);
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if socket.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, bodies)
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
    let (answering, mut bodies) = answering_receiver().await;
    let config = WebhookConfig {
        allow_private: true,
        // Far longer than the test waits: a slot the hanging receiver holds stays held.
        timeout_ms: 60_000,
        concurrency: 4,
        max_in_flight_per_account: 2,
        ..WebhookConfig::default()
    };
    let (events, tap) = mpsc::channel(64);
    let webhooks = Webhooks::start(store, config, tap);
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
