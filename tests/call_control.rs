//! Asynchronous call control on a real SIP call: an app in async mode parks the call; REST
//! commands (`POST /rest/call/{uuid}/command`) answer it, speak, and hang up, in order; a
//! repeated command_id is acknowledged, not run again; a command that does not fit the call's
//! state answers 409; another account's call is 404; the call's events arrive over the
//! websocket.

#[path = "../runtime/webhooks/tests/support/pg.rs"]
mod pg;
mod support;

use std::time::Duration;

use opentact_store::AppMode;
use serde_json::{Value, json};
use support::platform::{Platform, http};
use support::ws::sample_password;

const TN: i64 = 12025550177;
const EMAIL: &str = "ops@example.com";
const PASSWORD: &str = "correct horse battery staple";

async fn jwt(platform: &Platform, email: &str, password: &str) -> String {
    let (status, login) =
        http(platform.api, "POST", "/rest/auth", &[], Some(&json!({"email": email, "password": password})))
            .await;
    assert_eq!(status, 200, "{login}");
    login["payload"]["token"].as_str().expect("a JWT").to_owned()
}

async fn command(platform: &Platform, jwt: &str, call: &str, body: Value) -> (u16, Value) {
    let authorization = format!("Bearer {jwt}");
    http(
        platform.api,
        "POST",
        &format!("/rest/call/{call}/command"),
        &[("Authorization", &authorization)],
        Some(&body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_commands_drive_a_parked_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    support::provision::number_with_app(&dir.path().join("data"), EMAIL, TN, AppMode::Async).await;
    let platform = Platform::start_in(dir, &[]).await;
    let ops = jwt(&platform, EMAIL, PASSWORD).await;
    let demo = jwt(&platform, "demo@opentact.local", &sample_password(&platform.log())).await;
    let mut socket = support::ws::subscribe(platform.api, &ops).await;

    let caller = support::platform::call_awaiting_bye(&platform, TN);

    // The parked call announces itself; its uuid is what commands address.
    let initiated = support::ws::until(&mut socket, |e| e["type"] == "call.initiated").await;
    let call = initiated.last().expect("event")["call"]["uuid"].as_str().expect("call uuid").to_owned();

    let (status, answered) =
        command(&platform, &ops, &call, json!({"command": "answer", "command_id": "a-1"})).await;
    assert_eq!((status, answered["payload"]["state"].as_str()), (200, Some("accepted")), "{answered}");
    let (status, again) =
        command(&platform, &ops, &call, json!({"command": "answer", "command_id": "a-1"})).await;
    assert_eq!((status, again["payload"]["state"].as_str()), (200, Some("duplicate")), "{again}");
    support::ws::until(&mut socket, |e| e["type"] == "call.answered").await;
    let (status, conflict) =
        command(&platform, &ops, &call, json!({"command": "answer", "command_id": "a-2"})).await;
    assert_eq!(status, 409, "{conflict}");
    assert!(conflict["message"].as_str().unwrap_or("").contains("the call is answered"), "{conflict}");
    let (status, unhold) = command(&platform, &ops, &call, json!({"command": "unhold"})).await;
    assert_eq!(status, 409, "{unhold}");

    // Bad commands are refused before they reach the call; another account sees no such call.
    let (status, unknown) = command(&platform, &ops, &call, json!({"command": "dance"})).await;
    assert_eq!(status, 422, "{unknown}");
    let (status, bad) =
        command(&platform, &ops, &call, json!({"command": "gather", "params": {"numDigits": "many"}})).await;
    assert_eq!(status, 422, "{bad}");
    assert!(bad["message"].as_str().unwrap_or("").contains("numDigits"), "{bad}");
    let (status, foreign) = command(&platform, &demo, &call, json!({"command": "hangup"})).await;
    assert_eq!(status, 404, "{foreign}");

    // Commands run in order: say, then an XML fragment, then hang up.
    let (status, said) = command(
        &platform,
        &ops,
        &call,
        json!({"command": "say", "params": {"text": "Hello from REST"}, "tag": "hi"}),
    )
    .await;
    assert_eq!(status, 200, "{said}");
    let (status, paused) =
        command(&platform, &ops, &call, json!({"xml": "<Response><Pause length=\"200\"/></Response>"})).await;
    assert_eq!(status, 200, "{paused}");
    let (status, hung_up) =
        command(&platform, &ops, &call, json!({"command": "hangup", "command_id": "h-1"})).await;
    assert_eq!(status, 200, "{hung_up}");

    let events = support::ws::until(&mut socket, |e| e["type"] == "call.destroyed").await;
    let finished: Vec<(String, Option<String>)> = events
        .iter()
        .filter(|e| e["type"] == "call.callflow" && e["payload"]["phase"] == "finished")
        .map(|e| {
            (
                e["payload"]["verb"].as_str().unwrap_or("").to_owned(),
                e["payload"]["tag"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let verbs: Vec<&str> = finished.iter().map(|(verb, _)| verb.as_str()).collect();
    assert_eq!(verbs, ["say", "pause", "hangup"], "{events:#?}");
    assert!(events.iter().all(|e| e["call"]["uuid"] == call.as_str()));
    let (code, output) = caller.await.expect("sipp task");
    assert_eq!(code, 0, "the caller got the platform's BYE: {output}\n{}", platform.log());

    // The call is gone: further commands find nothing.
    let (status, gone) = command(&platform, &ops, &call, json!({"command": "hangup"})).await;
    assert_eq!(status, 404, "{gone}");
}

/// A fresh PostgreSQL database where `EMAIL` leases `TN` for an async app; `None` (the test
/// is skipped) when PostgreSQL is unreachable outside CI.
async fn cluster_database() -> Option<pg::PgDatabase> {
    let db = pg::PgDatabase::create()?;
    let store = opentact_store::Store::open(&db.url).await.expect("store");
    support::provision::number_with_app_in(&store, EMAIL, TN, AppMode::Async).await;
    store.close().await;
    Some(db)
}

/// Two nodes on one PostgreSQL (issue 14): a call parked on node a is answered, spoken to and
/// hung up by REST commands sent to node b, which relays them to node a through the database;
/// the answers are the ones node a's own API would give (accepted, duplicate, 409, 404). A
/// websocket client of node b hears node a's events for the call, in order, and resumes on
/// node b after one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_sent_to_another_node_drive_a_call_parked_on_the_first() {
    let Some(db) = cluster_database().await else { return };
    let shared = tempfile::tempdir().expect("tempdir");
    let start = |name: &'static str| support::platform::start_node(name, &db.url, shared.path(), "");
    let a = start("node-a").await;
    let b = start("node-b").await;
    let ops = jwt(&b, EMAIL, PASSWORD).await;
    let mut socket = support::ws::subscribe(a.api, &ops).await;
    let mut socket_b = support::ws::subscribe(b.api, &ops).await;

    let caller = support::platform::call_awaiting_bye(&a, TN);
    let initiated = support::ws::until(&mut socket, |e| e["type"] == "call.initiated").await;
    let call = initiated.last().expect("event")["call"]["uuid"].as_str().expect("call uuid").to_owned();

    // Every command goes to node b, which does not carry the call.
    let (status, answered) =
        command(&b, &ops, &call, json!({"command": "answer", "command_id": "a-1"})).await;
    assert_eq!(
        (status, answered["payload"]["state"].as_str()),
        (200, Some("accepted")),
        "{answered}\n{}",
        b.log()
    );
    let (status, again) = command(&b, &ops, &call, json!({"command": "answer", "command_id": "a-1"})).await;
    assert_eq!((status, again["payload"]["state"].as_str()), (200, Some("duplicate")), "{again}");
    let answered = support::ws::until(&mut socket, |e| e["type"] == "call.answered").await;
    let (status, conflict) =
        command(&b, &ops, &call, json!({"command": "answer", "command_id": "a-2"})).await;
    assert_eq!(status, 409, "{conflict}");
    assert!(conflict["message"].as_str().unwrap_or("").contains("the call is answered"), "{conflict}");
    let demo = jwt(&b, "demo@opentact.local", &sample_password(&a.log())).await;
    let (status, foreign) = command(&b, &demo, &call, json!({"command": "hangup"})).await;
    assert_eq!(status, 404, "another account's call: {foreign}");
    let (status, said) = command(
        &b,
        &ops,
        &call,
        json!({"command": "say", "params": {"text": "Hello from node b"}, "tag": "hi"}),
    )
    .await;
    assert_eq!(status, 200, "{said}");
    let (status, hung_up) = command(&b, &ops, &call, json!({"command": "hangup"})).await;
    assert_eq!(status, 200, "{hung_up}");
    let events = support::ws::until(&mut socket, |e| e["type"] == "call.destroyed").await;
    assert!(
        events.iter().any(|e| e["type"] == "call.callflow"
            && e["payload"]["verb"] == "say"
            && e["payload"]["phase"] == "finished"
            && e["payload"]["tag"] == "hi"),
        "node a spoke what node b was told: {events:#?}"
    );
    let (code, output) = caller.await.expect("sipp task");
    assert_eq!(code, 0, "the caller's call ended with the BYE:\n{output}");

    // Node b's client heard node a's call: the same events, the same order.
    let heard_on_b = support::ws::until(&mut socket_b, |e| e["type"] == "call.destroyed").await;
    let of_call = |events: &[serde_json::Value]| -> Vec<(String, u64, String)> {
        events
            .iter()
            .filter(|e| e["call"]["uuid"] == call.as_str())
            .map(|e| {
                let kind = e["type"].as_str().unwrap_or_default().to_owned();
                (kind, e["seq"].as_u64().unwrap_or(0), e["uuid"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    };
    let on_a = of_call(&[initiated.as_slice(), &answered, &events].concat());
    let on_b = of_call(&heard_on_b);
    assert_eq!(on_b, on_a, "node b's client hears node a's events, in order\n{}", b.log());
    let seqs: Vec<u64> = on_b.iter().map(|(_, seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "in per-call order, none missing");
    // A client that saw call.answered on node a resumes on node b from there.
    let answered_at = on_a.iter().position(|(kind, _, _)| kind == "call.answered").expect("answered");
    let mut resumed = support::ws::resume(b.api, &ops, &on_a[answered_at].2).await;
    let replayed = of_call(&support::ws::until(&mut resumed, |e| e["type"] == "call.destroyed").await);
    assert_eq!(replayed, on_a[answered_at + 1..], "resumed on node b after node a's event");

    // Now the call has ended everywhere: 404 from either node.
    let (status, ended) = command(&b, &ops, &call, json!({"command": "hangup"})).await;
    assert_eq!(status, 404, "{ended}");
    drop((a, b));
    drop(db);
}

/// Two nodes on one PostgreSQL (issue 14): an outbound voice profile's channel limit of 4
/// holds for both together — of six calls placed three on each node while none has ended,
/// four start and two get 429 saying why — and channels freed on one node are taken on the
/// other; each node's /metrics shows its calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_limit_holds_for_two_nodes_together() {
    let Some(db) = cluster_database().await else { return };
    let shared = tempfile::tempdir().expect("tempdir");
    let extra = "\n[sip]\nallow_private_targets = true\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let a = support::platform::start_node("node-a", &db.url, shared.path(), extra).await;
    let b = support::platform::start_node("node-b", &db.url, shared.path(), extra).await;
    let ops = format!("Bearer {}", jwt(&a, EMAIL, PASSWORD).await);
    let post = |node: &Platform, path: &'static str, body: Value| {
        let (api, ops) = (node.api, ops.clone());
        async move { http(api, "POST", path, &[("Authorization", &ops)], Some(&body)).await }
    };
    let (status, profile) =
        post(&a, "/rest/profile/outbound_voice", json!({"name": "four lines", "channel_limit": 4})).await;
    assert_eq!(status, 201, "{profile}");
    // The callee never answers: each call holds its channel until its 5 s ring timeout.
    let callee = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let call = json!({
        "from": TN,
        "to": format!("sip:callee@{}", callee.local_addr().expect("addr")),
        "xml": "<Response><Hangup/></Response>",
        "outbound_voice_profile": profile["payload"]["uuid"],
        "timeout": 5,
    });
    let mut answers = Vec::new();
    for node in [&a, &b, &a, &b, &a, &b] {
        answers.push(post(node, "/rest/call", call.clone()).await);
    }
    let started = answers.iter().filter(|(status, _)| *status == 201).count();
    let refused: Vec<&Value> =
        answers.iter().filter(|(status, _)| *status == 429).map(|(_, body)| body).collect();
    assert_eq!((started, refused.len()), (4, 2), "{answers:#?}");
    for body in refused {
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("channel limit") && message.contains("four lines"), "{message}");
    }
    // When the calls have rung out, node b takes all four channels: two of them node a's.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut taken_on_b = 0;
    while taken_on_b < 4 {
        let (status, body) = post(&b, "/rest/call", call.clone()).await;
        if status == 201 {
            taken_on_b += 1;
            continue;
        }
        assert_eq!(status, 429, "{body}");
        assert!(tokio::time::Instant::now() < deadline, "the channels came back within 20 s: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, body) = post(&a, "/rest/call", call.clone()).await;
    assert_eq!(status, 429, "node b holds all four now: {body}");
    // Each node's /metrics shows its own calls: up now, node b's four and none on node a;
    // placed (refused ones too), node a's four and node b's three plus its second round.
    let outbound = r#"opentact_calls_total{direction="outbound"}"#;
    let (status, on_a) = support::platform::scrape_metrics(&a, None).await;
    assert_eq!(status, 200, "{on_a}");
    let (status, on_b) = support::platform::scrape_metrics(&b, None).await;
    assert_eq!(status, 200, "{on_b}");
    let up = |text: &str| support::platform::metric(text, "opentact_calls_up");
    assert_eq!((up(&on_a), up(&on_b)), (Some(0.0), Some(4.0)), "node a:\n{on_a}\nnode b:\n{on_b}");
    assert_eq!(support::platform::metric(&on_a, outbound), Some(4.0), "{on_a}");
    assert!(support::platform::metric(&on_b, outbound).is_some_and(|placed| placed >= 7.0), "{on_b}");
    drop((a, b));
    drop(db);
}

/// Two nodes on one PostgreSQL (issue 14): `[calls] max_calls_per_account = 3` holds for both
/// together — of four calls placed two on each node, three start and one gets 429 saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_call_cap_holds_for_two_nodes_together() {
    let Some(db) = cluster_database().await else { return };
    let shared = tempfile::tempdir().expect("tempdir");
    let extra = "\n[sip]\nallow_private_targets = true\n\n[calls]\nmax_calls_per_account = 3\n";
    let a = support::platform::start_node("node-a", &db.url, shared.path(), extra).await;
    let b = support::platform::start_node("node-b", &db.url, shared.path(), extra).await;
    let ops = format!("Bearer {}", jwt(&a, EMAIL, PASSWORD).await);
    // The callee never answers: each call stays up until its 5 s ring timeout.
    let callee = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let call = json!({
        "from": TN,
        "to": format!("sip:callee@{}", callee.local_addr().expect("addr")),
        "xml": "<Response><Hangup/></Response>",
        "timeout": 5,
    });
    let mut answers = Vec::new();
    for node in [&a, &b, &a, &b] {
        answers.push(http(node.api, "POST", "/rest/call", &[("Authorization", &ops)], Some(&call)).await);
    }
    let started = answers.iter().filter(|(status, _)| *status == 201).count();
    let refused: Vec<&Value> =
        answers.iter().filter(|(status, _)| *status == 429).map(|(_, body)| body).collect();
    assert_eq!((started, refused.len()), (3, 1), "{answers:#?}");
    let message = refused[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("account call limit reached: 3"), "{message}");
    drop((a, b));
    drop(db);
}

/// Two nodes on one PostgreSQL (issue 14): node a carries an answered call when it is killed
/// (kill -9); node b takes it over once its heartbeat is late and closes the call's CDR (Q.850
/// 41, saying why), and a command for the call sent to node b then answers 404, not 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_on_a_killed_node_is_closed_by_the_survivor() {
    let Some(db) = cluster_database().await else { return };
    let shared = tempfile::tempdir().expect("tempdir");
    let extra = "heartbeat_ms = 200\nnode_timeout_ms = 2000\n";
    let a = support::platform::start_node("node-a", &db.url, shared.path(), extra).await;
    let b = support::platform::start_node("node-b", &db.url, shared.path(), extra).await;
    let ops = jwt(&b, EMAIL, PASSWORD).await;
    let mut socket = support::ws::subscribe(b.api, &ops).await;
    let caller = support::platform::call_awaiting_bye(&a, TN);
    let initiated = support::ws::until(&mut socket, |e| e["type"] == "call.initiated").await;
    let call = initiated.last().expect("event")["call"]["uuid"].as_str().expect("call uuid").to_owned();
    let (status, answered) = command(&b, &ops, &call, json!({"command": "answer"})).await;
    assert_eq!(status, 200, "{answered}");
    support::ws::until(&mut socket, |e| e["type"] == "call.answered").await;

    let Platform { mut child, .. } = a;
    child.start_kill().expect("kill -9");
    let _ = child.wait().await;
    caller.abort();
    let authorization = format!("Bearer {ops}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let record = loop {
        let (status, record) =
            http(b.api, "GET", &format!("/rest/call/{call}"), &[("Authorization", &authorization)], None)
                .await;
        assert_eq!(status, 200, "{record}");
        if !record["payload"]["ended_on"].is_null() {
            break record["payload"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "node b closed the CDR: {record}\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(record["q850_cause"], 41, "{record:#}");
    assert_eq!(record["hangup_reason"], "node node-a stopped; closed by node node-b", "{record:#}");
    assert!(b.log().contains("took over a dead node"), "{}", b.log());
    let (status, gone) = command(&b, &ops, &call, json!({"command": "hangup"})).await;
    assert_eq!(status, 404, "the call is over, not unreachable: {gone}");
    drop(b);
    drop(db);
}

/// A node on PostgreSQL stops on SIGTERM: its listeners for the other nodes' commands and
/// events hold connections of their own, which the store's close does not wait for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_postgresql_stops_on_sigterm() {
    let Some(db) = cluster_database().await else { return };
    let shared = tempfile::tempdir().expect("tempdir");
    let node = support::platform::start_node("node-a", &db.url, shared.path(), "").await;
    let Platform { mut child, .. } = node;
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(status.success());
    let exited = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    assert!(matches!(exited, Ok(Ok(status)) if status.success()), "stopped cleanly within 20 s: {exited:?}");
    drop(db);
}
