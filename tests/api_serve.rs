//! The REST API as `opentact serve` runs it: the sample account logs in, searches and orders
//! numbers; a restart keeps the data and the tokens; a component uploaded through the API
//! answers the next SIP call, whose events a websocket client receives live.

mod support;

use serde_json::{Value, json};
use support::platform::{Platform, http};
use support::ws::sample_password;

fn basic(email: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_account_uses_the_api_and_a_restart_keeps_data_and_tokens() {
    let platform = Platform::start(&[]).await;
    // The log is a pipe here, not a terminal: no password in it (sample_password checks that
    // and reads the 0600 file the log names), no colour codes.
    let password = sample_password(&platform.log());
    assert!(!platform.log().contains('\u{1b}'), "no ANSI escapes in a log that is not a terminal");
    // The data directory and what the platform wrote there are the operator's alone.
    {
        use std::os::unix::fs::PermissionsExt;
        let data = platform.dir.path().join("data");
        let mode =
            |path: &std::path::Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700, "the data directory");
        for file in ["opentact.db", "jwt.key", "secret.key"] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
        for entry in std::fs::read_dir(&data).expect("data dir") {
            let path = entry.expect("entry").path();
            assert_eq!(
                mode(&path) & 0o077,
                0,
                "nothing in the data directory is open to others: {}",
                path.display()
            );
        }
    }
    let authorization = basic("demo@opentact.local", &password);

    let (status, login) =
        http(platform.api, "GET", "/rest/auth", &[("Authorization", &authorization)], None).await;
    assert_eq!(status, 200, "{login}");
    let jwt = login["payload"]["token"].as_str().expect("a JWT").to_owned();
    let bearer = format!("Bearer {jwt}");

    let (status, wrong) = http(
        platform.api,
        "GET",
        "/rest/auth",
        &[("Authorization", &basic("demo@opentact.local", "nope"))],
        None,
    )
    .await;
    assert_eq!(status, 401, "{wrong}");
    assert_eq!(wrong["success"], false);

    // The sample inventory: +1 202 555 01xx, of which 0100 is the demo account's.
    let (status, found) = http(
        platform.api,
        "POST",
        "/rest/tn/search",
        &[("Authorization", &bearer)],
        Some(&json!({"pattern": "202555****"})),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["payload"]["total"], 99, "the sample inventory minus the leased number: {found}");
    let (status, order) = http(
        platform.api,
        "POST",
        "/rest/order",
        &[("Authorization", &bearer)],
        Some(&json!({"items": [{"tn": 12025550150_i64, "features": ["voice"]}]})),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let (status, leases) =
        http(platform.api, "GET", "/rest/lease/tn", &[("Authorization", &bearer)], None).await;
    assert_eq!(status, 200, "{leases}");
    let tns: Vec<&Value> =
        leases["payload"]["data"].as_array().expect("data").iter().map(|l| &l["tn"]).collect();
    assert!(tns.contains(&&json!(12025550100_i64)) && tns.contains(&&json!(12025550150_i64)), "{leases}");

    // Restart on the same data directory: the order is still there, the JWT still valid.
    let Platform { mut child, dir, .. } = platform;
    child.kill().await.expect("stop");
    let again = Platform::start_in(dir, &[]).await;
    let (status, leases) =
        http(again.api, "GET", "/rest/lease/tn", &[("Authorization", &bearer)], None).await;
    assert_eq!(status, 200, "the JWT survives a restart: {leases}");
    assert_eq!(leases["payload"]["total"], 2, "{leases}");
    assert!(!again.log().contains("sample account created"), "not seeded twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_imports_numbers_that_accounts_can_then_find() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "tn,state,voice,sms\n13035550100,CO,,\n3035550101,CO,,\n").expect("write");
    let refused = support::runner::opentact(&[
        "numbers",
        "import",
        bad.to_str().expect("utf-8"),
        "--data-dir",
        data_arg,
    ])
    .await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("line 3: tn"), "the invalid line is named: {}", refused.stderr);

    let good = dir.path().join("numbers.csv");
    std::fs::write(
        &good,
        "tn,state,voice,sms\n13035550100,CO,,\n13035550101,CO,true,false\n13035550102,co,,\n",
    )
    .expect("write");
    let imported = support::runner::opentact(&[
        "numbers",
        "import",
        good.to_str().expect("utf-8"),
        "--data-dir",
        data_arg,
    ])
    .await;
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    assert!(imported.stdout.contains("imported 3 numbers"), "{}", imported.stdout);

    let platform = Platform::start_in(dir, &[]).await;
    let password = sample_password(&platform.log());
    let authorization = basic("demo@opentact.local", &password);
    let (status, found) = http(
        platform.api,
        "POST",
        "/rest/tn/search",
        &[("Authorization", &authorization)],
        Some(&json!({"pattern": "303555****", "state": "CO"})),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["payload"]["total"], 3, "{found}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_uploaded_through_the_api_answers_the_next_call() {
    let platform = Platform::start(&[]).await;
    let password = sample_password(&platform.log());
    let auth = basic("demo@opentact.local", &password);
    let headers = [("Authorization", auth.as_str())];
    let (status, app) = http(
        platform.api,
        "POST",
        "/rest/sip/app",
        &headers,
        Some(&json!({"name": "hello", "component": true})),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    let app_id = app["payload"]["uuid"].as_str().expect("uuid").to_owned();
    // Not a flow component: refused by the server's compile check, nothing stored.
    let (status, refused) = support::platform::http_bytes(
        platform.api,
        "PUT",
        &format!("/rest/sip/app/{app_id}/component"),
        &headers,
        Some("application/wasm"),
        &[0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0xff, 0xff],
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    let wasm = opentact_guest_artifacts::bytes("hello");
    let (status, deployed) = support::platform::http_bytes(
        platform.api,
        "PUT",
        &format!("/rest/sip/app/{app_id}/component"),
        &headers,
        Some("application/wasm"),
        &wasm,
    )
    .await;
    assert_eq!(status, 201, "{deployed}");
    // Point the sample number at it.
    let (_, leases) = http(platform.api, "GET", "/rest/lease/tn", &headers, None).await;
    let lease = leases["payload"]["data"][0]["uuid"].as_str().expect("the sample lease").to_owned();
    let (status, patched) = http(
        platform.api,
        "PATCH",
        &format!("/rest/lease/tn/{lease}"),
        &headers,
        Some(&json!({"sip_control_app": app_id})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");

    // The account's events, live over the websocket, authenticated with a JWT from /rest/auth.
    let (_, login) = http(
        platform.api,
        "POST",
        "/rest/auth",
        &[],
        Some(&json!({"email": "demo@opentact.local", "password": password})),
    )
    .await;
    let jwt = login["payload"]["token"].as_str().expect("a JWT").to_owned();
    let mut socket = support::ws::subscribe(platform.api, &jwt).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("caller.xml");
    std::fs::write(&scenario, support::sipp::caller_awaiting_bye()).expect("write");
    let mut command = support::platform::sipp();
    command
        .args(["-sf", scenario.to_str().expect("utf-8"), "-s", "12025550100", "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "20s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = support::platform::run_sipp(command, std::time::Duration::from_secs(40)).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let events =
        platform.wait_for_event(std::time::Duration::from_secs(5), |e| e["type"] == "call.hangup").await;
    assert!(
        events.iter().any(|e| e["verb"] == "say" && e["detail"]["text"] == "hello"),
        "the uploaded component ran: {events:#?}"
    );
    assert!(platform.log().contains("component compiled"), "compiled once, at upload");

    // The same call, as the websocket client saw it: one call, its events in order, ending in
    // call.destroyed.
    let received = support::ws::until(&mut socket, |e| e["type"] == "call.destroyed").await;
    let kinds: Vec<&str> = received.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"call.initiated"), "{kinds:?}");
    for expected in ["call.answered", "call.callflow", "call.hangup"] {
        assert!(kinds.contains(&expected), "{expected} missing from {kinds:?}");
    }
    let seqs: Vec<u64> = received.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    let call = &received[0]["call"]["uuid"];
    assert!(received.iter().all(|e| &e["call"]["uuid"] == call), "one call: {received:#?}");
    assert!(
        received.iter().any(|e| e["type"] == "call.callflow" && e["payload"]["detail"]["text"] == "hello"),
        "{received:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_reconnects_mid_call_gets_every_event_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = r#"<Response><Answer/><Say>one</Say><Pause length="1500"/><Say>two</Say><Hangup/></Response>"#;
    support::provision::xml_number(&dir.path().join("data"), "resume@example.test", 12_025_550_191, flow)
        .await;
    let platform = Platform::start_in(dir, &[]).await;
    let (status, login) = http(
        platform.api,
        "POST",
        "/rest/auth",
        &[],
        Some(&json!({"email": "resume@example.test", "password": "correct horse battery staple"})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let jwt = login["payload"]["token"].as_str().expect("a JWT").to_owned();
    let mut socket = support::ws::subscribe(platform.api, &jwt).await;

    let scenario_dir = tempfile::tempdir().expect("tempdir");
    let scenario = scenario_dir.path().join("caller.xml");
    std::fs::write(&scenario, support::sipp::caller_awaiting_bye()).expect("write");
    let mut command = support::platform::sipp();
    command
        .args(["-sf", scenario.to_str().expect("utf-8"), "-s", "12025550191", "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let caller = tokio::spawn(support::platform::run_sipp(command, std::time::Duration::from_secs(60)));

    // Read into the call, then drop the connection while the flow pauses.
    let mut received = support::ws::until(&mut socket, |e| e["type"] == "call.answered").await;
    drop(socket);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let last = received.last().expect("events")["uuid"].as_str().expect("uuid").to_owned();
    let mut socket = support::ws::resume(platform.api, &jwt, &last).await;
    received.extend(support::ws::until(&mut socket, |e| e["type"] == "call.destroyed").await);
    let (code, output) = caller.await.expect("sipp");
    assert_eq!(code, 0, "{output}\n{}", platform.log());

    // Every event of the call, each once, in order — as the event log has them.
    let seqs: Vec<u64> = received.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{received:#?}");
    let logged = platform.events();
    assert_eq!(received.len(), logged.len(), "the websocket saw what the call emitted: {received:#?}");
    assert!(received.iter().any(|e| e["payload"]["detail"]["text"] == "two"), "events after the reconnect");
}
