//! Bulk calls: `POST /rest/batch` to 100 numbers behind a SIPp `uas` (the carrier trunk). Every
//! number's outcome is recorded, the outbound voice profile's rate (calls per second) and
//! channel limit hold, and `opentact api batch watch` shows the finished batch.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use opentact_store::AppMode;
use serde_json::{Value, json};
use support::platform::{Platform, http, run_sipp, sipp};
use support::sipp::free_udp_port;

const TN: i64 = 12025550199;
const EMAIL: &str = "bulk@example.com";
const PASSWORD: &str = "correct horse battery staple";
const NUMBERS: usize = 100;
const CALLS_PER_SECOND: i64 = 20;
const CHANNELS: usize = 8;

fn at(value: &Value) -> DateTime<Utc> {
    value.as_str().and_then(|text| text.parse().ok()).unwrap_or_else(|| panic!("a timestamp: {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_calls_every_number_at_the_profiles_pace() {
    let carrier_port = free_udp_port();
    let dir = tempfile::tempdir().expect("tempdir");
    support::provision::number_with_app(
        &dir.path().join("data"),
        EMAIL,
        TN,
        AppMode::Xml { document: "<Response><Hangup/></Response>".to_owned() },
    )
    .await;
    let config = dir.path().join("bulk.toml");
    std::fs::write(&config, format!("[sip]\noutbound_proxy = \"127.0.0.1:{carrier_port}\"\n"))
        .expect("config");
    let platform = Platform::start_in(dir, &["--config", config.to_str().expect("utf-8")]).await;

    // The carrier: SIPp's built-in UAS answers every INVITE and waits for the BYE.
    let mut carrier = sipp();
    carrier
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &carrier_port.to_string()])
        .args(["-mp", &(carrier_port + 1000).to_string(), "-m", &NUMBERS.to_string()])
        .args(["-timeout", "120s", "-nostdin"]);
    let carrier = tokio::spawn(run_sipp(carrier, Duration::from_secs(150)));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, login) =
        http(platform.api, "POST", "/rest/auth", &[], Some(&json!({"email": EMAIL, "password": PASSWORD})))
            .await;
    assert_eq!(status, 200, "{login}");
    let auth = format!("Bearer {}", login["payload"]["token"].as_str().expect("jwt"));
    let headers = [("Authorization", auth.as_str())];
    let (status, leases) = http(platform.api, "GET", "/rest/lease/tn", &headers, None).await;
    assert_eq!(status, 200, "{leases}");
    let lease = leases["payload"]["data"][0]["uuid"].as_str().expect("lease").to_owned();
    let (status, profile) = http(
        platform.api,
        "POST",
        "/rest/profile/outbound_voice",
        &headers,
        Some(&json!({"name": "bulk", "channel_limit": CHANNELS, "calls_per_second": CALLS_PER_SECOND})),
    )
    .await;
    assert_eq!(status, 201, "{profile}");
    let profile = profile["payload"]["uuid"].as_str().expect("profile").to_owned();

    let phones: Vec<i64> = (0..NUMBERS as i64).map(|i| 12_125_550_300 + i).collect();
    let xml = r#"<Response><Pause length="300"/><Hangup/></Response>"#;
    let (status, created) = http(
        platform.api,
        "POST",
        "/rest/batch",
        &headers,
        Some(&json!({"outbound_voice_profile": profile, "tn_lease": lease, "phones": phones, "xml": xml})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let batch = created["payload"]["uuid"].as_str().expect("batch").to_owned();

    let mut finished = Value::Null;
    for _ in 0..600 {
        let (status, body) = http(platform.api, "GET", &format!("/rest/batch/{batch}"), &headers, None).await;
        assert_eq!(status, 200, "{body}");
        if body["payload"]["state"] == "completed" {
            finished = body["payload"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(finished["state"], "completed", "the batch did not finish:\n{}", platform.log());
    assert_eq!(finished["total"], NUMBERS, "{finished:#}");
    assert_eq!(finished["completed"], NUMBERS, "every number answered and ran its flow: {finished:#}");
    let items = finished["items"].as_array().expect("items");
    assert_eq!(items.len(), NUMBERS);
    for (item, phone) in items.iter().zip(&phones) {
        assert_eq!(item["phone"], phone.to_string(), "{item:#}");
        assert_eq!(item["state"], "completed", "{item:#}");
        assert_eq!(item["q850_cause"], 16, "{item:#}");
        assert!(item["call"].is_string(), "{item:#}");
    }
    let (code, output) = carrier.await.expect("carrier");
    assert_eq!(code, 0, "the carrier took {NUMBERS} calls:\n{output}");

    // The rate: in no second did more calls start than the profile allows.
    let mut starts: Vec<DateTime<Utc>> = items.iter().map(|item| at(&item["started_on"])).collect();
    starts.sort();
    let span = (*starts.last().expect("last") - starts[0]).num_milliseconds();
    let least = (NUMBERS as i64 - 1) * 1000 / CALLS_PER_SECOND;
    assert!(
        span >= least * 9 / 10,
        "{NUMBERS} starts took {span} ms; at {CALLS_PER_SECOND}/s at least {least} ms"
    );
    for (i, start) in starts.iter().enumerate() {
        let within_a_second =
            starts[i..].iter().take_while(|s| (**s - *start).num_milliseconds() < 1000).count();
        assert!(
            within_a_second <= CALLS_PER_SECOND as usize + 1,
            "{within_a_second} calls started within 1 s of {start}"
        );
    }
    // The channels: never more calls up at once than the limit.
    let mut moments: Vec<(DateTime<Utc>, i32)> =
        items.iter().flat_map(|item| [(at(&item["started_on"]), 1), (at(&item["ended_on"]), -1)]).collect();
    moments.sort_by_key(|(at, step)| (*at, *step));
    let mut up = 0;
    let mut most = 0;
    for (_, step) in moments {
        up += step;
        most = most.max(up);
    }
    assert!(most <= CHANNELS as i32, "{most} calls were up at once; the limit is {CHANNELS}");
    assert!(most >= 2, "calls overlapped (the channels were used): {most}");
    println!("{NUMBERS} calls in {span} ms, at most {most} at once");

    // The CLI shows the finished batch: the full bar, and the counts.
    let token = auth.trim_start_matches("Bearer ");
    let watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_opentact"))
        .args(["api", "batch", "watch", &batch])
        .env("OPENTACT_API", format!("http://{}", platform.api))
        .env("OPENTACT_TOKEN", token)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run opentact api batch watch");
    let stderr = String::from_utf8_lossy(&watch.stderr);
    assert!(watch.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("{NUMBERS}/{NUMBERS}")), "{stderr}");
}
