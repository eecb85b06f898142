//! End-to-end tests of the flow author's inner loop: the real `opentact` binary runs XML
//! documents and components against a simulated call (`opentact flow run`) and validates them
//! (`opentact flow check`), with real HTTP servers on loopback for webhooks, `<Callback>`,
//! `<Gather url>` and `<Curl>`.
//!
//! Scenario folders (`tests/scenarios/<name>/`): `flow.xml`, `args` (one argument per line) and
//! `expected` — the normalised transcript (elapsed ms on the virtual clock, event, details).
//! `UPDATE_SCENARIOS=1 cargo test -p opentact --test flow_runner` rewrites the `expected` files
//! (review the diff before committing it).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::http::{Canned, TestServer};
use support::runner::{Run, flow_run, opentact, repo, run_xml};

/// Detail keys whose values differ on every run.
const VOLATILE: &[&str] = &["recording", "message"];

/// One line per event: `elapsed event key=value…`.
fn normalise(run: &Run) -> String {
    let mut out = String::new();
    for (index, event) in run.events.iter().enumerate() {
        assert_eq!(event["seq"], Value::from(index as u64 + 1), "events are numbered 1, 2, 3…");
        let name = match event["type"].as_str() {
            Some("call.callflow") => format!(
                "{}:{}",
                event["verb"].as_str().unwrap_or("?"),
                event["phase"].as_str().unwrap_or("?")
            ),
            Some(other) => other.to_owned(),
            None => "?".to_owned(),
        };
        let mut fields: Vec<String> = Vec::new();
        let skip = ["seq", "type", "call", "occurred_at", "elapsed_ms", "verb", "phase", "detail"];
        if let Some(object) = event.as_object() {
            for (key, value) in object {
                if !skip.contains(&key.as_str()) {
                    fields.push(format!("{key}={value}"));
                }
            }
        }
        if let Some(detail) = event["detail"].as_object() {
            for (key, value) in detail {
                if !VOLATILE.contains(&key.as_str()) {
                    fields.push(format!("{key}={value}"));
                }
            }
        }
        out.push_str(&format!("{:>7} {name}", event["elapsed_ms"]));
        for field in fields {
            out.push(' ');
            out.push_str(&field);
        }
        out.push('\n');
    }
    out.push_str(&format!("exit {}\n", run.code));
    out
}

#[tokio::test]
async fn scenarios_produce_their_expected_transcripts() {
    let root = repo().join("tests/scenarios");
    let mut names: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/scenarios")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("flow.xml").exists())
        .collect();
    names.sort();
    assert!(names.len() >= 15, "the scenario corpus is there");
    let update = std::env::var_os("UPDATE_SCENARIOS").is_some();
    let mut failures = Vec::new();
    for dir in names {
        let args = std::fs::read_to_string(dir.join("args")).unwrap_or_default();
        let args: Vec<&str> = args.lines().filter(|l| !l.is_empty()).collect();
        let flow = dir.join("flow.xml");
        let run = flow_run(flow.to_str().expect("utf-8"), &args).await;
        let actual = normalise(&run);
        let expected_path = dir.join("expected");
        if update {
            std::fs::write(&expected_path, &actual).expect("write expected");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "scenario {}:\n--- expected\n{expected}--- actual\n{actual}--- stderr\n{}",
                dir.display(),
                run.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const CANONICAL_MENU: &str = r#"<Response>
  <Gather dtmf_length="1" dtmf_stop="*" timeout="10000">
    <Say>Press 1 for sales, 2 for support.</Say>
    <DTMF value="1"><Say>Sales.</Say></DTMF>
    <DTMF value="2"><Say>Support.</Say></DTMF>
    <Default><Say>No input received.</Say></Default>
    <Error><Say>That is not an option.</Say></Error>
  </Gather>
</Response>"#;

const LEGACY_MENU: &str = r#"<Response>
  <Gather numDigits="1" timeout="10000" finishOnKey="*">
    <Say>Press 1 for sales, 2 for support.</Say>
    <Switch>
      <Case dtmf="1"><Say>Sales.</Say></Case>
      <Case dtmf="2"><Say>Support.</Say></Case>
      <Default><Say>No input received.</Say></Default>
      <Error><Say>That is not an option.</Say></Error>
    </Switch>
  </Gather>
</Response>"#;

#[tokio::test]
async fn both_gather_syntaxes_give_identical_transcripts() {
    for digits in ["1", "2", "7", "."] {
        let canonical = run_xml(CANONICAL_MENU, &["--digits", digits]).await;
        let legacy = run_xml(LEGACY_MENU, &["--digits", digits]).await;
        assert_eq!(canonical.code, 0, "{}", canonical.stderr);
        assert_eq!(normalise(&canonical), normalise(&legacy), "digits {digits:?}");
    }
    let sales = run_xml(LEGACY_MENU, &["--digits", "1"]).await;
    assert_eq!(sales.said(), ["Press 1 for sales, 2 for support.", "Sales."]);
    let invalid = run_xml(LEGACY_MENU, &["--digits", "7"]).await;
    assert_eq!(invalid.said().last().map(String::as_str), Some("That is not an option."));
    let silent = run_xml(LEGACY_MENU, &["--digits", "."]).await;
    assert_eq!(silent.said().last().map(String::as_str), Some("No input received."));
}

#[tokio::test]
async fn the_end_of_the_document_hangs_up_with_normal_clearing() {
    let run = run_xml("<Response><Say>Bye.</Say></Response>", &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let hangup = run.hangup().expect("hangup event");
    assert_eq!(hangup["q850_cause"], 16);
    assert_eq!(hangup["q850_cause_string"], "NORMAL_CLEARING");
    assert_eq!(run.transcript().last().map(String::as_str), Some("call.destroyed"));
}

#[tokio::test]
async fn meta_and_tags_appear_in_later_events() {
    let xml = r#"<Response><Meta name="order" value="A-17"/><Say tag="t1">Hi.</Say><Pause length="10"/></Response>"#;
    let run = run_xml(xml, &[]).await;
    let say = run.events.iter().find(|e| e["verb"] == "say").expect("say event");
    assert_eq!(say["tag"], "t1");
    assert_eq!(say["meta"]["order"], "A-17");
    let pause = run.events.iter().find(|e| e["verb"] == "pause").expect("pause event");
    assert!(pause.get("tag").is_none(), "a verb's tag is not carried by the next verb: {pause}");
    assert_eq!(run.hangup().expect("hangup")["meta"]["order"], "A-17");
}

#[tokio::test]
async fn an_invalid_document_is_refused_with_line_and_column() {
    let run = run_xml("<Response>\n  <Say>Hi</Say>\n  <Gather numDigits=\"abc\"/>\n</Response>\n", &[]).await;
    assert_eq!(run.code, 2);
    assert!(run.events.is_empty(), "nothing ran");
    assert!(run.stderr.contains(":3:"), "line 3 is named: {}", run.stderr);
    assert!(run.stderr.contains("numDigits"), "the attribute is named: {}", run.stderr);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.xml");
    std::fs::write(&path, "<Response><Dance/></Response>").expect("write");
    let check = opentact(&["flow", "check", path.to_str().expect("utf-8")]).await;
    assert_eq!(check.code, 2);
    assert!(check.stderr.contains("bad.xml:1:"), "{}", check.stderr);
    assert!(check.stderr.to_lowercase().contains("dance"), "{}", check.stderr);

    std::fs::write(&path, "<Response><Say>ok</Say></Response>").expect("write");
    let check = opentact(&["flow", "check", path.to_str().expect("utf-8")]).await;
    assert_eq!(check.code, 0, "{}", check.stderr);
}

#[tokio::test]
async fn callback_replaces_the_rest_of_the_document() {
    let server =
        TestServer::start(&[("/next", Canned::xml("<Response><Say>From the callback.</Say></Response>"))])
            .await;
    let xml = format!(
        r#"<Response><Say>Before.</Say><Callback url="{}" method="POST"/><Say>Never spoken.</Say></Response>"#,
        server.url("/next?x=1")
    );
    let run = run_xml(&xml, &["--allow-private-http"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.said(), ["Before.", "From the callback."]);
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].content_type.as_deref(), Some("application/json"));
    let body: Value = serde_json::from_str(&received[0].body).expect("a JSON call object");
    assert_eq!(body["from"], "12025550100");
    assert_eq!(body["to"], "12025550111");
    assert_eq!(body["direction"], "in");
    assert!(body["call"].as_str().is_some_and(|id| id.len() == 36), "{body}");
}

#[tokio::test]
async fn a_failing_fetch_runs_error() {
    let server =
        TestServer::start(&[("/broken", Canned::status(500)), ("/garbage", Canned::xml("not xml at all"))])
            .await;
    for path in ["/broken", "/garbage", "/missing"] {
        let xml = format!(
            r#"<Response><Callback url="{}"><Error><Say>Fetch failed.</Say></Error></Callback><Say>After.</Say></Response>"#,
            server.url(path)
        );
        let run = run_xml(&xml, &["--allow-private-http"]).await;
        // The failed verb's <Error> runs, then the document goes on after the verb.
        assert_eq!(run.said(), ["Fetch failed.", "After."], "{path}: {}", run.stderr);
        assert!(run.events.iter().any(|e| e["verb"] == "callback" && e["phase"] == "failed"), "{path}");
    }
    // Without <Error>, the call ends with an event that says why, and the runner exits 1.
    let xml = format!(r#"<Response><Callback url="{}"/><Say>Never.</Say></Response>"#, server.url("/broken"));
    let run = run_xml(&xml, &["--allow-private-http"]).await;
    assert_eq!(run.code, 1);
    assert!(run.said().is_empty());
    let failed = run.detail("flow", "failed").expect("a flow failure event");
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("500")), "{failed}");
    assert_eq!(run.hangup().expect("hangup")["q850_cause"], 41);
}

#[tokio::test]
async fn fetches_to_loopback_are_refused_by_default() {
    let server = TestServer::start(&[("/next", Canned::xml("<Response><Say>No.</Say></Response>"))]).await;
    let xml = format!(
        r#"<Response><Callback url="{}"><Error><Say>Refused.</Say></Error></Callback></Response>"#,
        server.url("/next")
    );
    let run = run_xml(&xml, &[]).await;
    assert_eq!(run.said(), ["Refused."], "{}", run.stderr);
    assert!(server.received().is_empty(), "the request never left the host");
}

#[tokio::test]
async fn gather_url_sends_the_digits_and_runs_the_answer() {
    let server =
        TestServer::start(&[("/menu", Canned::xml("<Response><Say>You chose well.</Say></Response>"))]).await;
    let xml = format!(
        r#"<Response>
  <Gather numDigits="2" callback="{}" method="GET">
    <Say>Two digits please.</Say>
  </Gather>
  <Say>Never spoken.</Say>
</Response>"#,
        server.url("/menu?campaign=7")
    );
    let run = run_xml(&xml, &["--allow-private-http", "--digits", "42"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.said(), ["Two digits please.", "You chose well."]);
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "GET");
    let query = received[0].uri.split_once('?').map(|(_, q)| q.to_owned()).unwrap_or_default();
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(get("campaign"), Some("7"), "the URL's own query is kept");
    assert_eq!(get("dtmf"), Some("42"));
    assert_eq!(get("from"), Some("12025550100"));
    assert_eq!(get("tn"), Some("12025550111"));
    assert!(get("call").is_some() && get("sca").is_some() && get("state").is_some(), "{params:?}");
    // The legacy form adds code, success and attempts.
    assert!(get("success").is_some() && get("attempts").is_some() && get("code").is_some(), "{params:?}");
}

#[tokio::test]
async fn curl_is_a_side_call_whose_answer_is_not_executed() {
    let server =
        TestServer::start(&[("/notify", Canned::xml("<Response><Say>Ignored.</Say></Response>"))]).await;
    let xml = format!(
        r#"<Response>
  <Curl url="{}" method="POST" timeout="2000"><Header name="X-Order" value="17"/>order=17</Curl>
  <Say>Done.</Say>
</Response>"#,
        server.url("/notify")
    );
    let run = run_xml(&xml, &["--allow-private-http"]).await;
    assert_eq!(run.said(), ["Done."], "{}", run.stderr);
    let received = server.received();
    assert_eq!(
        (received.len(), received[0].method.as_str(), received[0].body.as_str()),
        (1, "POST", "order=17")
    );
    let finished = run.detail("curl", "finished").expect("curl finished");
    assert_eq!(finished["status"], "200");
}

#[tokio::test]
async fn a_slow_webhook_takes_the_error_path() {
    let server = TestServer::start(&[(
        "/slow",
        Canned::slow("<Response><Say>Late.</Say></Response>", Duration::from_secs(5)),
    )])
    .await;
    let xml = format!(
        r#"<Response><Callback url="{}" timeout="300"><Error><Say>Too slow.</Say></Error></Callback></Response>"#,
        server.url("/slow")
    );
    let started = std::time::Instant::now();
    let run = run_xml(&xml, &["--allow-private-http"]).await;
    assert_eq!(run.said(), ["Too slow."], "{}", run.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the caller was not left waiting for the slow server"
    );
}

#[tokio::test]
async fn a_webhook_app_fetches_its_document_per_call() {
    let server = TestServer::start(&[(
        "/app",
        Canned::xml("<Response><Say>Hello from the webhook.</Say><Hangup/></Response>"),
    )])
    .await;
    let run = flow_run(&server.url("/app"), &["--allow-private-http"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.said(), ["Hello from the webhook."]);
    assert_eq!(server.received()[0].method, "POST");

    let run = flow_run(&server.url("/missing"), &["--allow-private-http"]).await;
    assert_eq!(run.code, 1, "a webhook that answers 404 fails the call");
    assert!(run.detail("webhook", "failed").is_some(), "{:?}", run.transcript());
}
