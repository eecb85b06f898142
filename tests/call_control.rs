//! Asynchronous call control on a real SIP call: an app in async mode parks the call; REST
//! commands (`POST /rest/call/{uuid}/command`) answer it, speak, and hang up, in order; a
//! repeated command_id is acknowledged, not run again; a command that does not fit the call's
//! state answers 409; another account's call is 404; the call's events arrive over the
//! websocket.

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

    let scenario_dir = tempfile::tempdir().expect("tempdir");
    let scenario = scenario_dir.path().join("caller.xml");
    std::fs::write(&scenario, support::sipp::caller_awaiting_bye()).expect("write");
    let mut sipp = support::platform::sipp();
    sipp.args([
        "-sf",
        scenario.to_str().expect("utf-8"),
        "-s",
        &TN.to_string(),
        "-m",
        "1",
        "-i",
        "127.0.0.1",
    ])
    .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
    .arg(platform.sip.to_string());
    let caller = tokio::spawn(support::platform::run_sipp(sipp, Duration::from_secs(60)));

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
