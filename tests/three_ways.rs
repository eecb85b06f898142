//! One IVR, controlled the three ways a call can be: as hosted XML, as a webhook that returns
//! the same XML, and as a sequence of asynchronous REST commands. Each runs a real SIP call
//! (SIPp) through the built-in XML guest, and the three produce the same verb events and the
//! same outcome.

mod support;

use opentact_store::{AppMode, WebhookMethod};
use serde_json::{Value, json};
use support::http::{Canned, TestServer};
use support::platform::{Platform, http};

const EMAIL: &str = "ivr@example.com";
const PASSWORD: &str = "correct horse battery staple";
const HOSTED: i64 = 12025550181;
const WEBHOOK: i64 = 12025550182;
const ASYNC: i64 = 12025550183;

const IVR: &str = r#"<Response>
  <Answer/>
  <Say tag="welcome">Welcome to Acme.</Say>
  <Gather numDigits="1" timeout="500"><Say>Press 1 for sales.</Say></Gather>
  <Say tag="bye">Goodbye.</Say>
  <Hangup/>
</Response>"#;

/// What the three must agree on: each call-control verb's phases and tags, and how it ended.
fn transcript(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e["type"].as_str()? {
            "call.callflow" => {
                let verb = e["payload"]["verb"].as_str()?;
                // Fetching the document is how the webhook way works, not part of the IVR.
                if !["answer", "say", "gather", "pause", "hangup"].contains(&verb) {
                    return None;
                }
                let tag = e["payload"]["tag"].as_str().unwrap_or("-");
                Some(format!("{verb} {} {tag}", e["payload"]["phase"].as_str()?))
            }
            "call.answered" => Some("answered".to_owned()),
            "call.hangup" => Some(format!(
                "hangup by {} cause {}",
                e["payload"]["by"].as_str()?,
                e["payload"]["q850_cause"].as_u64()?
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_ivr_as_hosted_xml_as_a_webhook_and_as_rest_commands_behaves_the_same() {
    let server = TestServer::start(&[("/ivr", Canned::xml(IVR))]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    support::provision::number_with_app(&data, EMAIL, HOSTED, AppMode::Xml { document: IVR.to_owned() })
        .await;
    let webhook = AppMode::Webhook { url: server.url("/ivr"), method: WebhookMethod::Post, timeout_ms: 3000 };
    support::provision::number_with_app(&data, EMAIL, WEBHOOK, webhook).await;
    support::provision::number_with_app(&data, EMAIL, ASYNC, AppMode::Async).await;
    let config = dir.path().join("loopback-webhooks.toml");
    std::fs::write(&config, "[flows.http]\nallow_private = true\n").expect("config");
    let platform = Platform::start_in(dir, &["--config", config.to_str().expect("utf-8")]).await;
    let (status, login) =
        http(platform.api, "POST", "/rest/auth", &[], Some(&json!({"email": EMAIL, "password": PASSWORD})))
            .await;
    assert_eq!(status, 200, "{login}");
    let jwt = login["payload"]["token"].as_str().expect("a JWT").to_owned();
    let bearer = format!("Bearer {jwt}");
    let mut socket = support::ws::subscribe(platform.api, &jwt).await;

    let mut transcripts = Vec::new();
    for tn in [HOSTED, WEBHOOK] {
        let caller = support::platform::call_awaiting_bye(&platform, tn);
        let events = support::ws::until(&mut socket, |e| e["type"] == "call.destroyed").await;
        let (code, output) = caller.await.expect("sipp");
        assert_eq!(code, 0, "{tn}: {output}\n{}", platform.log());
        // The envelope says what happened in words, with the whole call as it is; call.live
        // follows the answer.
        let answered = events.iter().find(|e| e["type"] == "call.answered").expect("call.answered");
        let message = answered["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Call in 13105550111 > ") && message.ends_with(" - answered"),
            "{answered:#}"
        );
        let call = &answered["call"];
        assert_eq!(
            (call["state"].as_str(), call["direction"].as_str()),
            (Some("answered"), Some("in")),
            "{call:#}"
        );
        assert_eq!(call["tn"], tn, "{call:#}");
        assert!(call["sip_control_app"]["uuid"].is_string() && call["answer_on"].is_string(), "{call:#}");
        let live = events.iter().find(|e| e["type"] == "call.live").expect("call.live");
        assert_eq!(live["call"]["state"], "live", "{live:#}");
        transcripts.push((tn, transcript(&events)));
    }
    assert_eq!(server.received().len(), 1, "the webhook was fetched once, for its call");
    // Signed like the account's event webhooks: the customer's server can tell it is ours.
    let fetched = &server.received()[0];
    let header = |name: &str| {
        fetched.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let (status, key) =
        http(platform.api, "GET", "/rest/event/key", &[("Authorization", &bearer)], None).await;
    assert_eq!(status, 200, "{key}");
    let public_key = key["payload"]["public_key"].as_str().expect("the account's public key");
    let timestamp: i64 = header("opentact-timestamp").parse().expect("Opentact-Timestamp");
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60, "a fresh timestamp");
    assert!(
        opentact_events::signing::verify(
            public_key,
            timestamp,
            fetched.body.as_bytes(),
            &header("opentact-signature")
        ),
        "the webhook request is signed with the account's key: {fetched:?}"
    );

    // The async way: the parked call announces itself, then the commands that spell the IVR.
    let caller = support::platform::call_awaiting_bye(&platform, ASYNC);
    let initiated = support::ws::until(&mut socket, |e| e["type"] == "call.initiated").await;
    let call_id = initiated.last().expect("event")["call"]["uuid"].as_str().expect("uuid").to_owned();
    let commands = [
        json!({"command": "answer"}),
        json!({"command": "say", "params": {"text": "Welcome to Acme."}, "tag": "welcome"}),
        json!({"xml": r#"<Response><Gather numDigits="1" timeout="500"><Say>Press 1 for sales.</Say></Gather></Response>"#}),
        json!({"command": "say", "params": {"text": "Goodbye."}, "tag": "bye"}),
        json!({"command": "hangup"}),
    ];
    for body in commands {
        let (status, answer) = http(
            platform.api,
            "POST",
            &format!("/rest/call/{call_id}/command"),
            &[("Authorization", &bearer)],
            Some(&body),
        )
        .await;
        assert_eq!(status, 200, "{body}: {answer}");
    }
    let mut events = initiated;
    events.extend(support::ws::until(&mut socket, |e| e["type"] == "call.destroyed").await);
    let (code, output) = caller.await.expect("sipp");
    assert_eq!(code, 0, "async: {output}\n{}", platform.log());
    transcripts.push((ASYNC, transcript(&events)));

    let (_, hosted) = &transcripts[0];
    assert!(hosted.len() >= 8, "a real IVR ran: {hosted:#?}");
    assert!(
        hosted.iter().any(|line| line == "say finished welcome")
            && hosted.iter().any(|line| line == "say finished bye")
    );
    for (tn, other) in &transcripts[1..] {
        assert_eq!(other, hosted, "{tn} differs from the hosted XML");
    }
}
