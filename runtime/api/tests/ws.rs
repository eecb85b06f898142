//! `GET /ws` over a real socket on loopback, with a real websocket client: authentication,
//! per-account delivery, ping, resume after a disconnect (every event exactly once), and a
//! slow client cut off while publishing goes on. On SQLite and PostgreSQL (the token lookup).

mod support;

use support::*;

use futures_util::{SinkExt, StreamExt};
use opentact_events::{BusConfig, Event, EventBus};
use tokio_tungstenite::tungstenite::Message;

api_test!(websocket_events, websocket_resume_replaces_and_subscribers_are_capped);

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve(state: ApiState) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/ws", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    Ok(url)
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    Ok(tokio_tungstenite::connect_async(url).await?.0)
}

/// The next text message as JSON (pings are skipped), within 5 s.
async fn next_json(client: &mut Client) -> anyhow::Result<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), client.next())
            .await
            .context("nothing within 5 s")?
            .context("closed")??;
        match message {
            Message::Text(text) => return Ok(serde_json::from_str(&text)?),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => bail!("unexpected {other:?}"),
        }
    }
}

async fn send(client: &mut Client, value: Value) -> anyhow::Result<()> {
    client.send(Message::Text(value.to_string().into())).await?;
    Ok(())
}

fn event(account: Uuid, kind: &str, n: u64) -> Event {
    Event {
        uuid: Uuid::new_v4(),
        kind: kind.to_owned(),
        created_on: chrono::Utc::now(),
        account,
        message: None,
        call: Some(json!({"uuid": "call-1"})),
        seq: Some(n),
        occurred_at: chrono::Utc::now(),
        payload: json!({"n": n}),
    }
}

async fn websocket_events(c: Ctx) -> anyhow::Result<()> {
    let (a, a_jwt) = c.signup("a@example.com").await?;
    let (b, b_jwt) = c.signup("b@example.com").await?;
    let bus = Arc::new(EventBus::new(BusConfig { queue_capacity: 8, ..BusConfig::default() }));
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_events(bus.clone());
    let url = serve(state).await?;

    // A wrong token: told why, then closed.
    let mut client = connect(&url).await?;
    send(&mut client, json!({"action": "auth", "token": "nope"})).await?;
    let refused = next_json(&mut client).await?;
    ensure!(refused["success"] == json!(false), "{refused}");
    ensure!(refused["message"].as_str().unwrap_or("").contains("websocket auth message"), "{refused}");
    // Garbage first.
    let mut client = connect(&url).await?;
    send(&mut client, json!({"hello": 1})).await?;
    ensure!(next_json(&mut client).await?["message"].as_str().unwrap_or("").contains("action"));

    // A's client gets A's events only, in order.
    let mut client = connect(&url).await?;
    send(&mut client, json!({"action": "auth", "token": a_jwt})).await?;
    let welcome = next_json(&mut client).await?;
    ensure!(welcome["success"] == json!(true) && welcome["account"] == json!(a), "{welcome}");
    ensure!(welcome["subscriptions"] == json!(["*"]), "{welcome}");
    bus.publish(event(a, "call.initiated", 1));
    bus.publish(event(b, "call.initiated", 1));
    bus.publish(event(a, "call.answered", 2));
    let first = next_json(&mut client).await?;
    let second = next_json(&mut client).await?;
    ensure!(first["type"] == json!("call.initiated") && first["account"] == json!(a), "{first}");
    ensure!(second["type"] == json!("call.answered") && second["seq"] == json!(2), "{second}");
    send(&mut client, json!({"action": "ping"})).await?;
    ensure!(next_json(&mut client).await?["action"] == json!("pong"));

    // Disconnect mid-call; what happens meanwhile is replayed after a resume, exactly once.
    let last_seen = second["uuid"].as_str().context("uuid")?.to_owned();
    client.close(None).await?;
    drop(client);
    for n in 3..=5 {
        bus.publish(event(a, "call.callflow", n));
    }
    let mut client = connect(&url).await?;
    send(&mut client, json!({"action": "auth", "token": a_jwt, "after": last_seen})).await?;
    ensure!(next_json(&mut client).await?["success"] == json!(true));
    bus.publish(event(a, "call.hangup", 6));
    let mut seqs = Vec::new();
    for _ in 0..4 {
        seqs.push(next_json(&mut client).await?["seq"].as_u64().context("seq")?);
    }
    ensure!(seqs == [3, 4, 5, 6], "{seqs:?}");
    ensure!(
        tokio::time::timeout(Duration::from_millis(200), client.next()).await.is_err(),
        "an event arrived twice"
    );

    // An unknown resume point is refused with a reason.
    let mut stale = connect(&url).await?;
    send(&mut stale, json!({"action": "auth", "token": a_jwt, "after": Uuid::new_v4()})).await?;
    ensure!(next_json(&mut stale).await?["message"].as_str().unwrap_or("").contains("may have been missed"));

    // A client (of account B) that reads nothing is cut off once its queue (8) overflows;
    // publishing never waits, and A's client is not affected.
    let mut slow = connect(&url).await?;
    send(&mut slow, json!({"action": "auth", "token": b_jwt, "types": ["call.callflow"]})).await?;
    ensure!(next_json(&mut slow).await?["subscriptions"] == json!(["call.callflow"]));
    // Publish (1 KiB payloads) until the bus has cut the slow subscriber off: its socket's
    // buffers fill, the session stops draining its queue, and the queue overflows.
    let subscribers = bus.subscriber_count();
    let mut published = 0u64;
    while bus.subscriber_count() == subscribers && published < 200_000 {
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            let mut e = event(b, "call.callflow", 100 + published);
            e.payload = json!({"padding": "x".repeat(1024)});
            bus.publish(e);
            published += 1;
        }
        ensure!(started.elapsed() < Duration::from_secs(2), "publishing waited on a client");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ensure!(bus.subscriber_count() == subscribers - 1, "still subscribed after {published} events");
    let mut told = false;
    for _ in 0..250_000 {
        let message = next_json(&mut slow).await;
        match message {
            Ok(m) if m["success"] == json!(false) => {
                ensure!(m["message"].as_str().unwrap_or("").contains("too slow"), "{m}");
                told = true;
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    ensure!(told, "the slow client was not told why it was cut off");
    bus.publish(event(a, "call.destroyed", 7));
    ensure!(next_json(&mut client).await?["seq"] == json!(7), "A's client goes on");

    // With wss event subscriptions, a client that names no types gets what they name.
    for t in ["call.hangup", "call.callflow"] {
        let created =
            c.post("/rest/event/subscription", &b_jwt, json!({"channel": "wss", "type": t})).await?;
        created.ok(StatusCode::CREATED)?;
    }
    let mut subscribed = connect(&url).await?;
    send(&mut subscribed, json!({"action": "auth", "token": b_jwt})).await?;
    let welcome = next_json(&mut subscribed).await?;
    ensure!(welcome["subscriptions"] == json!(["call.hangup", "call.callflow"]), "{welcome}");
    bus.publish(event(b, "call.answered", 1));
    bus.publish(event(b, "call.hangup", 2));
    let got = next_json(&mut subscribed).await?;
    ensure!(got["type"] == "call.hangup", "the unsubscribed type was skipped: {got}");
    // A * subscription means everything.
    c.post("/rest/event/subscription", &b_jwt, json!({"channel": "wss", "type": "*"}))
        .await?
        .ok(StatusCode::CREATED)?;
    let mut everything = connect(&url).await?;
    send(&mut everything, json!({"action": "auth", "token": b_jwt})).await?;
    ensure!(next_json(&mut everything).await?["subscriptions"] == json!(["*"]));
    Ok(())
}

async fn websocket_resume_replaces_and_subscribers_are_capped(c: Ctx) -> anyhow::Result<()> {
    let (a, a_jwt) = c.signup("a@example.com").await?;
    let bus = Arc::new(EventBus::new(BusConfig { max_subscribers_per_account: 3, ..BusConfig::default() }));
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_events(bus.clone());
    let url = serve(state).await?;

    let mut first = connect(&url).await?;
    send(&mut first, json!({"action": "auth", "token": a_jwt})).await?;
    let welcome = next_json(&mut first).await?;
    let session = welcome["session"].as_str().context("a session in the welcome")?.to_owned();
    let seen = event(a, "call.initiated", 1);
    let after = seen.uuid;
    bus.publish(seen);
    ensure!(next_json(&mut first).await?["seq"] == json!(1));

    // Reconnecting with the session replaces the first connection (still open here, as a
    // half-open socket would be): it is told why, and the account holds one subscriber.
    let mut latest = None;
    for _ in 0..10 {
        let mut again = connect(&url).await?;
        send(&mut again, json!({"action": "auth", "token": a_jwt, "after": after, "session": session}))
            .await?;
        let welcome = next_json(&mut again).await?;
        ensure!(welcome["success"] == json!(true) && welcome["session"] == json!(session), "{welcome}");
        latest = Some(again);
    }
    let told = next_json(&mut first).await?;
    ensure!(told["message"].as_str().unwrap_or("").contains("replaced by a newer connection"), "{told}");
    ensure!(bus.subscriber_count() == 1, "{} subscribers", bus.subscriber_count());
    let mut latest = latest.context("connected")?;
    bus.publish(event(a, "call.answered", 2));
    ensure!(next_json(&mut latest).await?["seq"] == json!(2));
    // Resuming within the connection keeps one subscriber too.
    for _ in 0..10 {
        send(&mut latest, json!({"action": "resume", "after": after})).await?;
    }
    ensure!(next_json(&mut latest).await?["seq"] == json!(2));
    send(&mut latest, json!({"action": "ping"})).await?;
    loop {
        let message = next_json(&mut latest).await?;
        if message["action"] == json!("pong") {
            break;
        }
    }
    ensure!(bus.subscriber_count() == 1, "{} subscribers", bus.subscriber_count());

    // At most 3 connections per account: the fourth is told why and closed.
    let mut others = Vec::new();
    for _ in 0..2 {
        let mut other = connect(&url).await?;
        send(&mut other, json!({"action": "auth", "token": a_jwt})).await?;
        ensure!(next_json(&mut other).await?["success"] == json!(true));
        others.push(other);
    }
    let mut fourth = connect(&url).await?;
    send(&mut fourth, json!({"action": "auth", "token": a_jwt})).await?;
    let refused = next_json(&mut fourth).await?;
    ensure!(refused["success"] == json!(false), "{refused}");
    ensure!(refused["message"].as_str().unwrap_or("").contains("3 live event subscribers"), "{refused}");
    let closed = tokio::time::timeout(Duration::from_secs(5), fourth.next()).await?;
    ensure!(matches!(closed, Some(Ok(Message::Close(_))) | None), "{closed:?}");
    Ok(())
}
