//! Calls the platform places over REST (`POST /rest/call`) to SIPp callees on loopback: the
//! callee rings, answers and hears the call's XML; a busy callee ends the call with its cause;
//! an outbound voice profile's channel limit refuses a call with 429 and the call's own events
//! say why; two parked calls are bridged with `POST /rest/call/bridge`; with a rating deck,
//! calls are refused without balance, charged in the deck's increments and ended when the
//! balance runs out — and so are a flow's `<Dial>` legs and, with an inbound rate, calls in;
//! concurrent calls share one balance.

mod support;

use std::time::Duration;

use opentact_store::AppMode;
use serde_json::{Value, json};
use support::platform::{Platform, http};
use support::sipp::{
    callee, callee_awaiting_bye_scenario, callee_of, callee_scenario, free_udp_port, refusing_callee_scenario,
};

const TN: i64 = 12025550188;
const EMAIL: &str = "dialer@example.com";
const PASSWORD: &str = "correct horse battery staple";

/// A platform whose carrier trunk is `127.0.0.1:<carrier_port>` and that may ring loopback SIP
/// URIs; `TN` is leased by `EMAIL`.
async fn platform(carrier_port: u16) -> Platform {
    platform_with(carrier_port, |_| String::new()).await
}

/// [`platform`] with more configuration: what `more` writes after the `[sip]` table (given
/// the platform's directory, for the files it names).
async fn platform_with(carrier_port: u16, more: impl FnOnce(&std::path::Path) -> String) -> Platform {
    let dir = tempfile::tempdir().expect("tempdir");
    support::provision::number_with_app(
        &dir.path().join("data"),
        EMAIL,
        TN,
        AppMode::Xml { document: "<Response><Hangup/></Response>".to_owned() },
    )
    .await;
    let config = dir.path().join("outbound.toml");
    let text = format!(
        "[sip]\noutbound_proxy = \"127.0.0.1:{carrier_port}\"\nallow_private_targets = true\n\n{}",
        more(dir.path())
    );
    std::fs::write(&config, text).expect("config");
    Platform::start_in(dir, &["--config", config.to_str().expect("utf-8")]).await
}

async fn jwt(platform: &Platform) -> String {
    let (status, login) =
        http(platform.api, "POST", "/rest/auth", &[], Some(&json!({"email": EMAIL, "password": PASSWORD})))
            .await;
    assert_eq!(status, 200, "{login}");
    format!("Bearer {}", login["payload"]["token"].as_str().expect("a JWT"))
}

async fn demo_jwt(platform: &Platform) -> String {
    let password = support::ws::sample_password(&platform.log());
    let body = json!({"email": "demo@opentact.local", "password": password});
    let (status, login) = http(platform.api, "POST", "/rest/auth", &[], Some(&body)).await;
    assert_eq!(status, 200, "{login}");
    login["payload"]["token"].as_str().expect("a JWT").to_owned()
}

async fn post(platform: &Platform, auth: &str, path: &str, body: Value) -> (u16, Value) {
    http(platform.api, "POST", path, &[("Authorization", auth)], Some(&body)).await
}

/// The events of one call, once it has emitted `last`.
async fn call_events(platform: &Platform, call: &str, last: &str) -> Vec<Value> {
    let events =
        platform.wait_for_event(Duration::from_secs(30), |e| e["call"] == call && e["type"] == last).await;
    events.into_iter().filter(|e| e["call"] == call).collect()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] != "call.callflow")
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_call_rings_the_callee_and_runs_its_xml() {
    let carrier_port = free_udp_port();
    let platform = platform(carrier_port).await;
    let auth = jwt(&platform).await;
    let mut socket = support::ws::subscribe(platform.api, auth.trim_start_matches("Bearer ")).await;
    // The callee rings 300 ms, answers, listens 2 s and hangs up.
    let carrier_scenario = callee_scenario(300, 2000)
        .replace(
            r#"<recv request="INVITE" crlf="true">
    <action>"#,
            &format!(
                r#"<recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="INVITE sip:12025550111@127.0.0.1" search_in="msg" check_it="true" assign_to="ruri"/>
      <ereg regexp="From: &lt;sip:{TN}@" search_in="msg" check_it="true" assign_to="cid"/>"#
            ),
        )
        .replace("</scenario>", "  <Reference variables=\"ruri,cid\"/>\n</scenario>");
    let (carrier, _dir) = callee(carrier_scenario, carrier_port).await;
    let xml =
        r#"<Response><Say tag="greeting">Hello from the platform</Say><Pause length="20000"/></Response>"#;
    let (status, created) =
        post(&platform, &auth, "/rest/call", json!({"from": TN, "to": "12025550111", "xml": xml})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["payload"]["state"], "initiated", "{created}");
    assert_eq!(created["payload"]["direction"], "out", "{created}");
    let call = created["payload"]["uuid"].as_str().expect("uuid").to_owned();

    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "the carrier got the number and the caller ID, answered, hung up:\n{output}");
    let events = call_events(&platform, &call, "call.destroyed").await;
    assert_eq!(
        types(&events),
        ["call.initiated", "call.ringing", "call.answered", "call.live", "call.hangup", "call.destroyed"],
        "{events:#?}"
    );
    assert_eq!(events[0]["direction"], "out", "{:#}", events[0]);
    // Over the websocket, the ringing and the live call, each with the call as it is then.
    let envelopes = support::ws::until(&mut socket, |e| e["type"] == "call.live").await;
    let ringing = envelopes.iter().find(|e| e["type"] == "call.ringing").expect("call.ringing");
    assert_eq!(ringing["message"], format!("Call out {TN} > 12025550111 - ringing"), "{ringing:#}");
    assert_eq!(ringing["call"]["state"], "ringing", "{ringing:#}");
    assert!(ringing["call"]["ring_on"].is_string() && ringing["call"]["answer_on"].is_null(), "{ringing:#}");
    let live = envelopes.last().expect("call.live");
    assert_eq!(live["call"]["state"], "live", "{live:#}");
    assert!(live["call"]["ring_on"].is_string() && live["call"]["answer_on"].is_string(), "{live:#}");
    assert!(
        events.iter().any(|e| e["verb"] == "say" && e["phase"] == "finished" && e["tag"] == "greeting"),
        "the callee heard the XML: {events:#?}"
    );
    let hangup = events.iter().find(|e| e["type"] == "call.hangup").expect("hangup");
    assert_eq!(hangup["q850_cause"], 16, "{hangup:#}");
    assert_eq!(hangup["by"], "caller", "the callee (the remote end) hung up: {hangup:#}");

    // The call log has it as an outbound, answered call.
    let cdr = wait_for_cdr(&platform, &auth, &call).await;
    assert_eq!(cdr["direction"], "outbound", "{cdr:#}");
    assert_eq!(cdr["from"], TN.to_string(), "{cdr:#}");
    assert!(cdr["answered_on"].is_string(), "{cdr:#}");
}

async fn wait_for_cdr(platform: &Platform, auth: &str, call: &str) -> Value {
    for _ in 0..50 {
        let (status, body) =
            http(platform.api, "GET", &format!("/rest/call/{call}"), &[("Authorization", auth)], None).await;
        if status == 200 && body["payload"]["ended_on"].is_string() {
            return body["payload"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no finished CDR for {call}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_callee_ends_the_call_with_user_busy() {
    let carrier_port = free_udp_port();
    let platform = platform(carrier_port).await;
    let auth = jwt(&platform).await;
    let (carrier, _dir) = callee(refusing_callee_scenario(486), carrier_port).await;
    let (status, created) = post(
        &platform,
        &auth,
        "/rest/call",
        json!({"from": TN.to_string(), "to": "+12025550122", "xml": "<Response><Say>unheard</Say></Response>"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let call = created["payload"]["uuid"].as_str().expect("uuid").to_owned();
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "{output}");
    let events = call_events(&platform, &call, "call.destroyed").await;
    assert_eq!(types(&events), ["call.initiated", "call.hangup", "call.destroyed"], "{events:#?}");
    let hangup = &events[1];
    assert_eq!(hangup["q850_cause"], 17, "{hangup:#}");
    assert!(!events.iter().any(|e| e["verb"] == "say"), "no flow runs on an unanswered call: {events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_what_to_fix() {
    let platform = platform(free_udp_port()).await;
    let auth = jwt(&platform).await;
    let xml = "<Response><Hangup/></Response>";
    for (body, status, says) in [
        (
            json!({"from": 12025550999_i64, "to": "12025550111", "xml": xml}),
            422,
            "not a number of this account",
        ),
        (json!({"from": TN, "to": "not a target", "xml": xml}), 422, "to:"),
        (json!({"from": TN, "to": "12025550111"}), 422, "give one of"),
        (json!({"from": TN, "to": "12025550111", "xml": xml, "control": "async"}), 422, "give one of"),
        (json!({"from": TN, "to": "12025550111", "xml": "<Response><Nope/></Response>"}), 422, "xml"),
        (json!({"from": TN, "to": "12025550111", "xml": xml, "timeout": 1}), 422, "timeout"),
        (
            json!({"from": TN, "to": "12025550111", "sip_control_app": uuid::Uuid::new_v4()}),
            422,
            "sip_control_app",
        ),
    ] {
        let (got, answer) = post(&platform, &auth, "/rest/call", body.clone()).await;
        assert_eq!(got, status, "{body} → {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body} → {message}");
    }
    // Another account cannot call from this account's number; nobody calls unauthenticated.
    let demo = format!("Bearer {}", demo_jwt(&platform).await);
    let (status, answer) =
        post(&platform, &demo, "/rest/call", json!({"from": TN, "to": "12025550111", "xml": xml})).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["message"].as_str().unwrap_or_default().contains("not a number of this account"),
        "{answer}"
    );
    let (status, _) = http(platform.api, "POST", "/rest/call", &[], Some(&json!({"from": TN}))).await;
    assert_eq!(status, 401);
}

/// An outbound voice profile allowing one channel, created over REST.
async fn one_channel_profile(platform: &Platform, auth: &str) -> String {
    let (status, profile) =
        post(platform, auth, "/rest/profile/outbound_voice", json!({"name": "one line", "channel_limit": 1}))
            .await;
    assert_eq!(status, 201, "{profile}");
    profile["payload"]["uuid"].as_str().expect("uuid").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_limit_refuses_a_second_call_and_says_why() {
    let carrier_port = free_udp_port();
    let platform = platform(carrier_port).await;
    let auth = jwt(&platform).await;
    let profile = one_channel_profile(&platform, &auth).await;
    let (carrier, _dir) = callee(callee_scenario(2000, 500), carrier_port).await;
    // The callee hangs up first (after 0.5 s of talk).
    let xml = r#"<Response><Pause length="10000"/></Response>"#;
    let body = json!({"from": TN, "to": "12025550111", "xml": xml, "outbound_voice_profile": profile});
    let (status, first) = post(&platform, &auth, "/rest/call", body.clone()).await;
    assert_eq!(status, 201, "{first}");
    // The first call still rings: its channel is taken.
    let (status, refused) = post(&platform, &auth, "/rest/call", body.clone()).await;
    assert_eq!(status, 429, "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("channel limit") && message.contains("one line"), "{message}");
    // The refused call's events end with cause 34 and the same reason.
    let refused_hangup = platform
        .wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.hangup" && e["q850_cause"] == 34)
        .await
        .into_iter()
        .find(|e| e["type"] == "call.hangup" && e["q850_cause"] == 34)
        .expect("hangup 34");
    assert!(
        refused_hangup["reason"].as_str().unwrap_or_default().contains("channel limit"),
        "{refused_hangup:#}"
    );
    assert_eq!(refused_hangup["by"], "platform", "{refused_hangup:#}");

    // Once the first call is over, its channel is free again.
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "{output}");
    let first = first["payload"]["uuid"].as_str().expect("uuid").to_owned();
    call_events(&platform, &first, "call.destroyed").await;
    let (_carrier, _dir) = callee(refusing_callee_scenario(486), carrier_port).await;
    let (status, again) = post(&platform, &auth, "/rest/call", body).await;
    assert_eq!(status, 201, "the channel came back: {again}");
}

/// A SIPp callee at its own loopback port (reached by SIP URI) that answers after 0.1 s and hangs
/// up after `talk_ms`.
async fn uri_callee(talk_ms: u32) -> (String, tokio::task::JoinHandle<(i32, String)>, tempfile::TempDir) {
    let port = free_udp_port();
    let (handle, scenario_dir) = callee(callee_scenario(100, talk_ms), port).await;
    (format!("sip:callee@127.0.0.1:{port}"), handle, scenario_dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_parked_calls_are_bridged_until_one_hangs_up() {
    let platform = platform(free_udp_port()).await;
    let auth = jwt(&platform).await;
    let (a_uri, a_callee, _a_dir) = uri_callee(12_000).await;
    let (b_uri, b_callee, _b_dir) = uri_callee(4_000).await;
    let mut calls = Vec::new();
    for to in [&a_uri, &b_uri] {
        let (status, created) =
            post(&platform, &auth, "/rest/call", json!({"from": TN, "to": to, "control": "async"})).await;
        assert_eq!(status, 201, "{created}");
        calls.push(created["payload"]["uuid"].as_str().expect("uuid").to_owned());
    }
    let (a, b) = (calls[0].clone(), calls[1].clone());
    call_events(&platform, &a, "call.answered").await;
    call_events(&platform, &b, "call.answered").await;

    // Someone else's call cannot be bridged in; a call cannot be bridged with itself.
    let (status, answer) =
        post(&platform, &auth, "/rest/call/bridge", json!({"call_a": a, "call_b": uuid::Uuid::new_v4()}))
            .await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) =
        post(&platform, &auth, "/rest/call/bridge", json!({"call_a": a, "call_b": a})).await;
    assert_eq!(status, 422, "{answer}");

    let (status, answer) =
        post(&platform, &auth, "/rest/call/bridge", json!({"call_a": a, "call_b": b})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["payload"]["state"], "accepted", "{answer}");
    let a_events = call_events(&platform, &a, "call.bridged").await;
    let bridged = a_events.iter().find(|e| e["type"] == "call.bridged").expect("bridged");
    assert_eq!(bridged["with"], b.as_str(), "{bridged:#}");
    let b_events = call_events(&platform, &b, "call.bridged").await;
    let bridged = b_events.iter().find(|e| e["type"] == "call.bridged").expect("bridged");
    assert_eq!(bridged["with"], a.as_str(), "one event per leg: {bridged:#}");

    // B's callee hangs up after 4 s: the bridge ends, A's flow goes on (parked again).
    let (code, output) = b_callee.await.expect("callee b");
    assert_eq!(code, 0, "{output}");
    let a_events = platform
        .wait_for_event(Duration::from_secs(10), |e| {
            e["call"] == a.as_str() && e["verb"] == "bridge" && e["phase"] == "finished"
        })
        .await;
    assert!(
        !a_events.iter().any(|e| e["call"] == a.as_str() && e["type"] == "call.hangup"),
        "A outlives the bridge: {a_events:#?}"
    );
    let (status, answer) =
        post(&platform, &auth, &format!("/rest/call/{a}/command"), json!({"command": "hangup"})).await;
    assert_eq!(status, 200, "{answer}");
    call_events(&platform, &a, "call.destroyed").await;
    let _ = a_callee.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ringing_call_is_cancelled_by_a_hangup_command() {
    let carrier_port = free_udp_port();
    let platform = platform(carrier_port).await;
    let auth = jwt(&platform).await;
    // The callee would ring 15 s; it answers the CANCEL (200, then 487) and ends.
    let (carrier, _dir) = callee(callee_scenario(15_000, 1000), carrier_port).await;
    let (status, created) =
        post(&platform, &auth, "/rest/call", json!({"from": TN, "to": "12025550111", "control": "async"}))
            .await;
    assert_eq!(status, 201, "{created}");
    let call = created["payload"]["uuid"].as_str().expect("uuid").to_owned();
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The callee answers, the platform does not: `answer` does not fit a call it placed.
    let (status, answer) =
        post(&platform, &auth, &format!("/rest/call/{call}/command"), json!({"command": "answer"})).await;
    assert_eq!(status, 409, "{answer}");
    let (status, answer) =
        post(&platform, &auth, &format!("/rest/call/{call}/command"), json!({"command": "hangup"})).await;
    assert_eq!(status, 200, "{answer}");
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "the callee was cancelled:\n{output}");
    let events = call_events(&platform, &call, "call.destroyed").await;
    assert_eq!(
        types(&events),
        ["call.initiated", "call.ringing", "call.hangup", "call.destroyed"],
        "{events:#?}"
    );
    let hangup = events.iter().find(|e| e["type"] == "call.hangup").expect("hangup");
    assert_eq!(hangup["q850_cause"], 16, "{hangup:#}");
    assert_eq!(hangup["reason"], "cancelled", "{hangup:#}");
}

/// The balance, micro-units, as the API shows it.
async fn balance(platform: &Platform, auth: &str) -> i64 {
    let (status, body) =
        http(platform.api, "GET", "/rest/account/balance", &[("Authorization", auth)], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload"]["currency"], "USD", "{body}");
    body["payload"]["balance_micros"].as_i64().expect("micro-units")
}

/// The operator credits `EMAIL` with `amount`.
async fn credit(platform: &Platform, amount: &str) {
    platform.credit(EMAIL, amount).await;
}

/// The platform with a rating deck: Washington DC (1202) at 0.60 a minute billed in blocks of
/// 6 s, San Francisco (1415) at 0.60 a minute per second, nothing else (messages to DC 0.01).
/// Balances of calls in progress are re-read every second; US numbers may text without a
/// 10DLC campaign.
async fn rated_platform(carrier_port: u16) -> Platform {
    platform_with(carrier_port, |dir| {
        let deck = dir.join("rates.csv");
        std::fs::write(
            &deck,
            "prefix,per_minute,per_sms,increment,description\n1202,0.60,0.01,6/6,Washington DC\n\
             1415,0.60,,1/1,San Francisco\n",
        )
        .expect("deck");
        format!(
            "[rating]\ndeck = \"{}\"\nbalance_refresh_secs = 1\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n\
             [messaging]\ntendlc_enforce = false\n",
            deck.display()
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_rated_charged_and_stopped_at_the_balance() {
    let carrier_port = free_udp_port();
    let platform = rated_platform(carrier_port).await;
    let auth = jwt(&platform).await;
    let xml = r#"<Response><Pause length="20000"/></Response>"#;
    let call_to = |to: &str| json!({"from": TN, "to": to, "xml": xml});

    // Nothing on the balance: refused before it rings, with the reason, in the API and the
    // call's events (Q.850 21).
    assert_eq!(balance(&platform, &auth).await, 0);
    let (status, refused) = post(&platform, &auth, "/rest/call", call_to("12025550111")).await;
    assert_eq!(status, 402, "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("insufficient balance: 0.000000 USD left"), "{message}");
    let hangup = platform
        .wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.hangup" && e["q850_cause"] == 21)
        .await
        .into_iter()
        .find(|e| e["type"] == "call.hangup" && e["q850_cause"] == 21)
        .expect("the refused call's hangup");
    assert!(hangup["reason"].as_str().unwrap_or_default().starts_with("insufficient balance"), "{hangup:#}");
    // The operator sees it counted.
    let (status, metrics) = support::platform::scrape_metrics(&platform, None).await;
    assert_eq!(status, 200, "{metrics}");
    let refused = r#"opentact_calls_refused_total{reason="payment"}"#;
    assert_eq!(support::platform::metric(&metrics, refused), Some(1.0), "{metrics}");
    // A destination the deck does not rate is refused too.
    let (status, unrated) = post(&platform, &auth, "/rest/call", call_to("33142685300")).await;
    assert_eq!(status, 402, "{unrated}");
    assert!(
        unrated["message"].as_str().unwrap_or_default().contains("no rate for +33142685300"),
        "{unrated}"
    );

    // The operator credits 0.10 (announced by the running platform though the CLI made it);
    // a 2 s call to DC is billed one 6 s block: 0.06.
    let mut socket = support::ws::subscribe(platform.api, auth.trim_start_matches("Bearer ")).await;
    credit(&platform, "0.10").await;
    assert_eq!(balance(&platform, &auth).await, 100_000);
    let announced = support::ws::until(&mut socket, |e| e["type"] == "account.changed").await;
    let credited = announced.last().expect("account.changed");
    assert_eq!(credited["payload"]["balance_micros"], 100_000, "{credited:#}");
    assert_eq!(credited["payload"]["transaction"]["kind"], "credit", "{credited:#}");
    assert_eq!(credited["payload"]["transaction"]["description"], "payment 1", "{credited:#}");
    let (carrier, _dir) = callee(callee_scenario(200, 2000), carrier_port).await;
    let (status, created) = post(&platform, &auth, "/rest/call", call_to("12025550111")).await;
    assert_eq!(status, 201, "{created}");
    let call = created["payload"]["uuid"].as_str().expect("uuid").to_owned();
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "{output}");
    let cdr = wait_for_price(&platform, &auth, &call).await;
    assert_eq!(cdr["price"]["billed_secs"], 6, "{cdr:#}");
    assert_eq!(cdr["price"]["price_micros"], 60_000, "{cdr:#}");
    assert_eq!(cdr["price"]["rate_prefix"], "1202", "{cdr:#}");
    assert_eq!(balance(&platform, &auth).await, 40_000);
    // The charge is announced: account.changed with the new balance and the ledger's row.
    let announced = support::ws::until(&mut socket, |e| e["type"] == "account.changed").await;
    let charged = announced.last().expect("account.changed");
    assert_eq!(charged["payload"]["changed"], json!(["balance"]), "{charged:#}");
    assert_eq!(charged["payload"]["balance_micros"], 40_000, "{charged:#}");
    assert_eq!(charged["payload"]["transaction"]["amount_micros"], -60_000, "{charged:#}");
    let (status, ledger) =
        post(&platform, &auth, "/rest/account/transactions/search", json!({"order": {"created_on": "DESC"}}))
            .await;
    assert_eq!(status, 200, "{ledger}");
    assert_eq!(ledger["payload"]["total"], 2, "the credit and the call: {ledger:#}");
    let charge = &ledger["payload"]["data"][0];
    assert_eq!(charge["kind"], "call", "{charge:#}");
    assert_eq!(charge["reference"], call.as_str(), "{charge:#}");
    assert_eq!(charge["amount_micros"], -60_000, "{charge:#}");
    assert_eq!(ledger["payload"]["data"][1]["description"], "payment 1", "{ledger:#}");

    // 0.04 left affords 4 s to San Francisco: the platform ends the call there, with why.
    let (carrier, _dir) = callee(support::sipp::callee_awaiting_bye_scenario(200), carrier_port).await;
    let (status, created) = post(&platform, &auth, "/rest/call", call_to("14155550123")).await;
    assert_eq!(status, 201, "{created}");
    let call = created["payload"]["uuid"].as_str().expect("uuid").to_owned();
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "the platform hung up on the callee: {output}");
    let events = call_events(&platform, &call, "call.destroyed").await;
    let hangup = events.iter().find(|e| e["type"] == "call.hangup").expect("hangup");
    assert_eq!(hangup["q850_cause"], 21, "{hangup:#}");
    assert_eq!(hangup["by"], "platform", "{hangup:#}");
    assert!(hangup["reason"].as_str().unwrap_or_default().starts_with("insufficient balance"), "{hangup:#}");
    let cdr = wait_for_price(&platform, &auth, &call).await;
    assert_eq!(cdr["price"]["billed_secs"], 4, "{cdr:#}");
    assert_eq!(balance(&platform, &auth).await, 0, "it used what was left, no more");

    // The outbound voice profile's limits: a rate above its max_rate, a first block beyond
    // what its daily spend limit leaves.
    credit(&platform, "1").await;
    let cheap_only = profile(&platform, &auth, json!({"name": "cheap only", "max_rate": 0.1})).await;
    let body = json!({"from": TN, "to": "12025550111", "xml": xml, "outbound_voice_profile": cheap_only});
    let (status, refused) = post(&platform, &auth, "/rest/call", body).await;
    assert_eq!(status, 402, "{refused}");
    assert_eq!(
        refused["message"],
        "+12025550111 costs 0.600000 USD a minute, above the outbound voice profile's max_rate 0.100000 USD"
    );
    let frugal = profile(&platform, &auth, json!({"name": "frugal", "daily_spend_limit": 0.05})).await;
    let body = json!({"from": TN, "to": "12025550111", "xml": xml, "outbound_voice_profile": frugal});
    let (status, refused) = post(&platform, &auth, "/rest/call", body).await;
    assert_eq!(status, 402, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("daily spend limit of 0.050000 USD is reached"),
        "{refused}"
    );
    assert_eq!(balance(&platform, &auth).await, 1_000_000, "refused calls cost nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_the_balance_and_end_together_when_it_is_used_up() {
    let carrier_port = free_udp_port();
    let platform = rated_platform(carrier_port).await;
    let auth = jwt(&platform).await;
    let xml = r#"<Response><Pause length="20000"/></Response>"#;
    let call_to = |to: &str| json!({"from": TN, "to": to, "xml": xml});
    credit(&platform, "0.10").await;
    let (carrier, _dir) = callee_of(callee_awaiting_bye_scenario(200), carrier_port, 2).await;

    // A call to DC (6 s blocks) holds its first block, 0.06, from before it rings: a second
    // is refused what it holds.
    let (status, created) = post(&platform, &auth, "/rest/call", call_to("12025550111")).await;
    assert_eq!(status, 201, "{created}");
    let first = created["payload"]["uuid"].as_str().expect("uuid").to_owned();
    let (status, refused) = post(&platform, &auth, "/rest/call", call_to("12025550112")).await;
    assert_eq!(status, 402, "{refused}");
    assert_eq!(
        refused["message"],
        "insufficient balance: 0.040000 USD left (0.060000 USD held by a call in progress), the first 6 s to +12025550112 cost 0.060000 USD"
    );
    // A call to San Francisco (per second) fits in what is left. Both are ended when their
    // charges together reach the 0.10 — not each when it alone would have used it up.
    let (status, created) = post(&platform, &auth, "/rest/call", call_to("14155550123")).await;
    assert_eq!(status, 201, "{created}");
    let second = created["payload"]["uuid"].as_str().expect("uuid").to_owned();
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "the platform hung up on both callees: {output}");
    let mut billed = 0;
    for call in [&first, &second] {
        let events = call_events(&platform, call, "call.destroyed").await;
        let hangup = events.iter().find(|e| e["type"] == "call.hangup").expect("hangup");
        assert_eq!(hangup["q850_cause"], 21, "{hangup:#}");
        assert_eq!(
            hangup["reason"], "insufficient balance: the balance of 0.100000 USD is used up",
            "{hangup:#}"
        );
        let cdr = wait_for_price(&platform, &auth, call).await;
        billed += cdr["price"]["price_micros"].as_i64().expect("price");
    }
    // Alone, either would have been given all 0.10: together they would have spent up to
    // 0.20. Shared, they are billed what there was, less at most a block of each.
    let left = balance(&platform, &auth).await;
    assert_eq!(left, 100_000 - billed);
    assert!((0..=70_000).contains(&left) && billed <= 100_000, "billed {billed}, left {left}");
    assert!(billed >= 70_000, "both talked until the balance was nearly used up: billed {billed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credit_during_a_call_lets_it_talk_on() {
    let carrier_port = free_udp_port();
    let platform = rated_platform(carrier_port).await;
    let auth = jwt(&platform).await;
    // 0.04 pays 4 s to San Francisco; the callee talks 6 s and hangs up itself — which it
    // can only if the platform has not ended the call first.
    credit(&platform, "0.04").await;
    let (carrier, _dir) = callee(callee_scenario(200, 6000), carrier_port).await;
    let xml = r#"<Response><Pause length="20000"/></Response>"#;
    let (status, created) =
        post(&platform, &auth, "/rest/call", json!({"from": TN, "to": "14155550123", "xml": xml})).await;
    assert_eq!(status, 201, "{created}");
    let call = created["payload"]["uuid"].as_str().expect("uuid").to_owned();
    platform
        .wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.answered" && e["call"] == call)
        .await;
    // The operator credits 0.10 while it talks: within a second the call knows.
    credit(&platform, "0.10").await;
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "the callee hung up after 6 s, not the platform after 4:\n{output}");
    let events = call_events(&platform, &call, "call.destroyed").await;
    let hangup = events.iter().find(|e| e["type"] == "call.hangup").expect("hangup");
    assert_ne!(hangup["q850_cause"], 21, "{hangup:#}");
    let cdr = wait_for_price(&platform, &auth, &call).await;
    let billed = cdr["price"]["billed_secs"].as_i64().expect("billed");
    assert!((6..=7).contains(&billed), "{cdr:#}");
    assert_eq!(balance(&platform, &auth).await, 140_000 - billed * 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_cannot_spend_what_a_call_in_progress_holds() {
    let carrier_port = free_udp_port();
    let platform = rated_platform(carrier_port).await;
    let auth = jwt(&platform).await;
    let (status, enabled) = post(&platform, &auth, "/rest/lease/tn/sms", json!({"enable": [TN]})).await;
    assert_eq!(status, 200, "{enabled}");
    credit(&platform, "0.065").await;
    let sms = json!({"tn": TN, "to": "+12025550111", "message": "on my way"});
    // A call to DC rings 2 s, then talks 1 s: it holds its first block, 0.06, from the start.
    let (carrier, _dir) = callee(callee_scenario(2000, 1000), carrier_port).await;
    let xml = r#"<Response><Pause length="20000"/></Response>"#;
    let (status, created) =
        post(&platform, &auth, "/rest/call", json!({"from": TN, "to": "12025550111", "xml": xml})).await;
    assert_eq!(status, 201, "{created}");
    let call = created["payload"]["uuid"].as_str().expect("uuid").to_owned();
    let (status, refused) = post(&platform, &auth, "/rest/sms", sms.clone()).await;
    assert_eq!(status, 402, "{refused}");
    assert_eq!(
        refused["message"],
        "insufficient balance: 0.005000 USD left (0.060000 USD held by calls in progress), the message (1 part) to +12025550111 costs 0.010000 USD"
    );
    // The call is charged its 0.06; what is left still does not pay the message.
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "{output}");
    assert_eq!(wait_for_price(&platform, &auth, &call).await["price"]["price_micros"], 60_000);
    let (status, refused) = post(&platform, &auth, "/rest/sms", sms).await;
    assert_eq!(status, 402, "{refused}");
    assert_eq!(
        refused["message"],
        "insufficient balance: 0.005000 USD left, the message (1 part) to +12025550111 costs 0.010000 USD"
    );
}

/// An outbound voice profile made over REST; its uuid.
async fn profile(platform: &Platform, auth: &str, body: Value) -> String {
    let (status, created) = post(platform, auth, "/rest/profile/outbound_voice", body).await;
    assert_eq!(status, 201, "{created}");
    created["payload"]["uuid"].as_str().expect("uuid").to_owned()
}

/// The CDR once it has its price.
async fn wait_for_price(platform: &Platform, auth: &str, call: &str) -> Value {
    for _ in 0..100 {
        let (status, body) =
            http(platform.api, "GET", &format!("/rest/call/{call}"), &[("Authorization", auth)], None).await;
        if status == 200 && body["payload"]["price"].is_object() {
            return body["payload"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no priced CDR for {call}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_with_record_calls_records_each_call_from_its_answer() {
    let carrier_port = free_udp_port();
    let platform = platform(carrier_port).await;
    let auth = jwt(&platform).await;
    let profile = profile(&platform, &auth, json!({"name": "recorded", "record_calls": true})).await;
    // The callee answers in PCMA and speaks (SIPp's G.711 A-law sample) for 3 s, then hangs up.
    let speaking = callee_scenario(100, 3000)
        .replace("RTP/AVP 0 101\na=rtpmap:0 PCMU/8000", "RTP/AVP 8 101\na=rtpmap:8 PCMA/8000")
        .replace(
            "  <pause milliseconds=\"3000\"/>",
            "  <nop><action><exec play_pcap_audio=\"/usr/share/sip-tester/g711a.pcap\"/></action></nop>\n  <pause milliseconds=\"3000\"/>",
        );
    let (carrier, _dir) = callee(speaking, carrier_port).await;
    // The flow itself records nothing.
    let xml = r#"<Response><Pause length="20000"/></Response>"#;
    let body = json!({"from": TN, "to": "12025550111", "xml": xml, "outbound_voice_profile": profile});
    let (status, created) = post(&platform, &auth, "/rest/call", body).await;
    assert_eq!(status, 201, "{created}");
    let call = created["payload"]["uuid"].as_str().expect("uuid").to_owned();
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "{output}");
    call_events(&platform, &call, "call.destroyed").await;
    let cdr = wait_for_cdr(&platform, &auth, &call).await;
    let recordings = cdr["recordings"].as_array().cloned().unwrap_or_default();
    assert_eq!(recordings.len(), 1, "the whole call is recorded once: {cdr:#}");
    assert_eq!(recordings[0]["name"], "call", "{cdr:#}");
    let duration = recordings[0]["duration_ms"].as_i64().unwrap_or_default();
    assert!((1_500..=4_000).contains(&duration), "about the 3 s the callee spoke: {duration} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calling_numbers_own_event_url_hears_a_rest_call() {
    let receiver = support::http::TestServer::start(&[("/hook", support::http::Canned::status(200))]).await;
    let carrier_port = free_udp_port();
    let platform = platform_with(carrier_port, |_| "[webhooks]\nallow_private = true\n".to_owned()).await;
    let auth = jwt(&platform).await;
    let (status, leases) =
        http(platform.api, "GET", "/rest/lease/tn", &[("Authorization", &auth)], None).await;
    assert_eq!(status, 200, "{leases}");
    let lease = leases["payload"]["data"][0]["uuid"].as_str().expect("the number's lease").to_owned();
    let (status, patched) = http(
        platform.api,
        "PATCH",
        &format!("/rest/lease/tn/{lease}"),
        &[("Authorization", &auth)],
        Some(&json!({"event_url": receiver.url("/hook")})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let (carrier, _dir) = callee(refusing_callee_scenario(486), carrier_port).await;
    let (status, created) =
        post(&platform, &auth, "/rest/call", json!({"from": TN, "to": "12025550122", "xml": "<Response/>"}))
            .await;
    assert_eq!(status, 201, "{created}");
    let call = created["payload"]["uuid"].as_str().expect("uuid").to_owned();
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "{output}");
    for _ in 0..100 {
        if receiver.received().iter().any(|r| r.body.contains("\"call.destroyed\"")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = receiver.received();
    let types: Vec<String> = received
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .filter(|e| e["call"]["uuid"] == call.as_str())
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(types, ["call.initiated", "call.hangup", "call.destroyed"], "{received:#?}");
    assert!(received.iter().all(|r| r.headers.iter().any(|(n, _)| n == "opentact-signature")), "signed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_numbers_are_charged_monthly_renewed_and_released_by_the_server() {
    let platform = platform_with(free_udp_port(), |_| {
        "[rating]\nnumber_monthly = \"2.00\"\nnumber_grace_days = 0\nrenewal_check_secs = 1\n".to_owned()
    })
    .await;
    let auth = jwt(&platform).await;
    let order = |items: serde_json::Value| {
        let auth = auth.clone();
        let platform = &platform;
        async move {
            let (status, order) = post(platform, &auth, "/rest/order", json!({"items": items})).await;
            assert_eq!(status, 201, "{order}");
            order["payload"]["items"].as_array().expect("items").clone()
        }
    };
    // Not on credit: the item fails with the price and the balance.
    let items = order(json!([{"tn": 12025550170_i64}])).await;
    assert_eq!(items[0]["state"], "failed", "{items:?}");
    assert_eq!(
        items[0]["message"],
        "insufficient balance: a number costs 2.000000 USD a month, the balance is 0.000000 USD"
    );
    credit(&platform, "5.00").await;
    let items = order(json!([{"tn": 12025550170_i64}, {"tn": 12025550171_i64, "autorenew": true}])).await;
    assert!(items.iter().all(|item| item["state"] == "success"), "{items:?}");
    assert_eq!(balance(&platform, &auth).await, 1_000_000, "two first months");
    let lease = |i: usize| items[i]["lease"].as_str().expect("the lease").to_owned();
    let (ending, renewing) = (lease(0), lease(1));

    // The month passes (the test moves it into the past in the database): the server's sweep
    // releases the number without autorenew, and cannot renew the other (1.00 < 2.00, no grace).
    let db = platform.data().join("opentact.db");
    let mut connection =
        <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("the platform's database");
    sqlx::query("UPDATE tn_lease SET paid_until = paid_until - 32 * 86400000 WHERE paid_until IS NOT NULL")
        .execute(&mut connection)
        .await
        .expect("a month earlier");
    let lease_of = |uuid: &str| {
        let (auth, path, platform) = (auth.clone(), format!("/rest/lease/tn/{uuid}"), &platform);
        async move {
            let (status, body) = http(platform.api, "GET", &path, &[("Authorization", &auth)], None).await;
            assert_eq!(status, 200, "{body}");
            body["payload"].clone()
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (ended, unpaid) = (lease_of(&ending).await, lease_of(&renewing).await);
        if !ended["released_on"].is_null() && !unpaid["released_on"].is_null() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "released: {ended} {unpaid}\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = platform.log();
    assert!(log.contains("reason=\"not renewed\"") && log.contains("reason=\"unpaid\""), "{log}");
    assert_eq!(balance(&platform, &auth).await, 1_000_000, "nothing charged for an unpaid month");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flows_dial_to_a_number_is_refused_without_money_and_charged_when_it_ends() {
    let carrier_port = free_udp_port();
    let platform = rated_platform(carrier_port).await;
    let auth = jwt(&platform).await;
    // The number's app dials Washington DC (0.60 a minute in 6 s blocks), then hangs up.
    set_number_xml(
        &platform,
        &auth,
        "<Response><Dial><Number>12025550111</Number></Dial><Hangup/></Response>",
    )
    .await;
    let call_in = || async {
        let (code, output) = support::platform::call_awaiting_bye(&platform, TN).await.expect("caller");
        assert_eq!(code, 0, "{output}\n{}", platform.log());
    };

    // Nothing on the balance: the leg never rings; the flow goes on past <Dial> with why.
    call_in().await;
    let events = platform
        .wait_for_event(Duration::from_secs(10), |e| {
            e["type"] == "call.callflow"
                && e["detail"]["message"].as_str().is_some_and(|m| m.contains("insufficient balance"))
        })
        .await;
    let refused = events
        .iter()
        .find(|e| e["detail"]["message"].as_str().is_some_and(|m| m.contains("insufficient balance")))
        .expect("the dial's refusal");
    assert!(
        refused["detail"]["message"].as_str().unwrap_or_default().contains(
            "dial: insufficient balance: 0.000000 USD left, the first 6 s to +12025550111 cost 0.060000 USD"
        ),
        "{refused:#}"
    );
    assert_eq!(balance(&platform, &auth).await, 0);

    // With 1.00: the callee talks 2 s, the leg is billed one 6 s block.
    credit(&platform, "1.00").await;
    let (carrier, _dir) = callee(callee_scenario(200, 2000), carrier_port).await;
    call_in().await;
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "the leg rang the carrier: {output}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while balance(&platform, &auth).await != 940_000 {
        assert!(tokio::time::Instant::now() < deadline, "the leg is charged 0.06:\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, ledger) =
        post(&platform, &auth, "/rest/account/transactions/search", json!({"kind": "call"})).await;
    assert_eq!(status, 200, "{ledger}");
    assert_eq!(ledger["payload"]["total"], 1, "{ledger:#}");
    let charge = &ledger["payload"]["data"][0];
    assert_eq!(charge["amount_micros"], -60_000, "{charge:#}");
    assert!(
        charge["description"]
            .as_str()
            .unwrap_or_default()
            .contains("dialled leg to +12025550111: 6 s billed"),
        "{charge:#}"
    );
}

/// The sample number's app runs `xml` from now on.
async fn set_number_xml(platform: &Platform, auth: &str, xml: &str) {
    let (status, apps) = http(platform.api, "GET", "/rest/sip/app", &[("Authorization", auth)], None).await;
    assert_eq!(status, 200, "{apps}");
    let app = apps["payload"]["data"][0]["uuid"].as_str().expect("the number's app").to_owned();
    let (status, patched) = http(
        platform.api,
        "PATCH",
        &format!("/rest/sip/app/{app}"),
        &[("Authorization", auth)],
        Some(&json!({"xml": xml})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flows_dialled_leg_is_ended_when_the_balance_is_used_up() {
    let carrier_port = free_udp_port();
    let platform = rated_platform(carrier_port).await;
    let auth = jwt(&platform).await;
    // San Francisco costs 0.01 a second; 0.03 pays 3 s. After the dial the flow goes on.
    set_number_xml(
        &platform,
        &auth,
        "<Response><Dial><Number>14155550111</Number></Dial><Pause length=\"500\"/><Hangup/></Response>",
    )
    .await;
    credit(&platform, "0.03").await;
    // The carrier answers and would talk for ever: the platform ends the leg just before the
    // third second, and the caller's flow goes on to its own end.
    let (carrier, _dir) = callee(callee_awaiting_bye_scenario(100), carrier_port).await;
    let (code, output) = support::platform::call_awaiting_bye(&platform, TN).await.expect("caller");
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "the carrier got the platform's BYE: {output}");
    let why = "dial: insufficient balance: the balance of 0.030000 USD is used up";
    let events = platform
        .wait_for_event(Duration::from_secs(10), |e| {
            e["type"] == "call.callflow" && e["detail"]["message"].as_str().is_some_and(|m| m.contains(why))
        })
        .await;
    let ended = events
        .iter()
        .find(|e| e["detail"]["message"].as_str().is_some_and(|m| m.contains(why)))
        .expect("the dial's end");
    // The caller was not cut off: its call ends normally, after the flow's pause.
    let events = call_events(&platform, ended["call"].as_str().expect("call id"), "call.hangup").await;
    let hangup = events.iter().find(|e| e["type"] == "call.hangup").expect("the caller's hangup");
    assert_eq!(hangup["q850_cause"], 16, "{hangup:#}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while balance(&platform, &auth).await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the leg is charged 0.03:\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, ledger) =
        post(&platform, &auth, "/rest/account/transactions/search", json!({"kind": "call"})).await;
    assert_eq!(status, 200, "{ledger}");
    let charge = &ledger["payload"]["data"][0];
    assert!(
        charge["description"]
            .as_str()
            .unwrap_or_default()
            .contains("dialled leg to +14155550111: 3 s billed"),
        "{charge:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_to_a_number_are_refused_without_money_ended_at_the_balance_and_charged() {
    // Calls in cost 0.60 a minute, billed per second (0.01 a second).
    let platform = platform_with(free_udp_port(), |dir| {
        let deck = dir.join("rates.csv");
        std::fs::write(&deck, "prefix,per_minute,per_sms,increment,description\n1,0.01,,60/6,NANP\n")
            .expect("deck");
        format!(
            "[rating]\ndeck = \"{}\"\ninbound_per_minute = \"0.60\"\ninbound_increment = \"1/1\"\n",
            deck.display()
        )
    })
    .await;
    let auth = jwt(&platform).await;
    set_number_xml(&platform, &auth, r#"<Response><Answer/><Pause length="20000"/></Response>"#).await;

    // Nothing on the balance: 402 with Q.850 21 and why; the account's events say the same.
    let refused = support::sipp::caller_expecting_status_matching(
        402,
        "Reason: Q.850;cause=21;text=.insufficient balance: 0.000000 USD left, the first 1 s of a call in cost 0.010000 USD",
    );
    let (code, output) = support::platform::call_with(&platform, TN, &refused).await.expect("caller");
    assert_eq!(code, 0, "402 and why:\n{output}\n{}", platform.log());
    let hangup = platform
        .wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.hangup" && e["q850_cause"] == 21)
        .await
        .into_iter()
        .find(|e| e["type"] == "call.hangup" && e["q850_cause"] == 21)
        .expect("the refused call's hangup");
    assert!(
        hangup["reason"].as_str().unwrap_or_default().starts_with("insufficient balance: 0.000000 USD left"),
        "{hangup:#}"
    );

    // 0.03 pays 3 s: the flow would pause 20 s; the platform hangs up before the third second.
    credit(&platform, "0.03").await;
    let (code, output) = support::platform::call_awaiting_bye(&platform, TN).await.expect("caller");
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let why = "insufficient balance: the balance of 0.030000 USD is used up";
    let ended = platform
        .wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.hangup" && e["reason"] == why)
        .await
        .into_iter()
        .find(|e| e["type"] == "call.hangup" && e["reason"] == why)
        .expect("the call ended for money");
    assert_eq!(ended["q850_cause"], 21, "{ended:#}");
    let call = ended["call"].as_str().expect("call id").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while balance(&platform, &auth).await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the call is charged 0.03:\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, ledger) =
        post(&platform, &auth, "/rest/account/transactions/search", json!({"kind": "call"})).await;
    assert_eq!(status, 200, "{ledger}");
    assert_eq!(ledger["payload"]["total"], 1, "the refused call cost nothing: {ledger:#}");
    let charge = &ledger["payload"]["data"][0];
    assert_eq!(charge["reference"], call.as_str(), "{charge:#}");
    assert_eq!(
        charge["description"],
        format!("call {call}: 3 s billed at 0.600000 USD a minute (calls in, 1/1)"),
        "{charge:#}"
    );
}
