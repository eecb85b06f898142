//! The call log and recordings read side: search filters, one call with its recordings,
//! recording metadata and audio, deleting a recording, and another account's ids — on SQLite
//! and PostgreSQL. (The
//! platform writing the log from real SIP calls is tested end to end in tests/sip_calls.rs.)

mod support;

use support::*;

api_test!(
    call_log_search_and_detail,
    call_log_shows_stir_shaken,
    recordings_metadata_and_audio,
    deleting_a_recording_removes_its_row_and_file,
    without_a_relay_a_command_for_a_call_live_on_another_node_gets_409
);

/// Logs a call for `account` that started `minutes_ago` and ended as `end` says.
async fn logged_call(
    store: &Store,
    account: Uuid,
    from: &str,
    to: &str,
    direction: CallDirection,
    minutes_ago: i64,
    end: Option<(bool, i32)>,
) -> anyhow::Result<Uuid> {
    let uuid = Uuid::new_v4();
    let started_on = now() - chrono::Duration::minutes(minutes_ago);
    store
        .record_call_start(
            account,
            NewCallRecord {
                uuid,
                app: None,
                direction,
                from: from.into(),
                to: to.into(),
                started_on,
                node: None,
            },
        )
        .await?;
    if let Some((answered, q850)) = end {
        if answered {
            store.record_call_answer(account, uuid, started_on + chrono::Duration::seconds(2)).await?;
        }
        store
            .record_call_end(
                account,
                uuid,
                CallEnd {
                    ended_on: started_on + chrono::Duration::seconds(30),
                    duration_ms: 30_000,
                    answered,
                    failed: q850 == 41,
                    q850_cause: Some(q850),
                    hangup_cause: Some(if q850 == 16 { "NORMAL_CLEARING" } else { "OTHER" }.into()),
                    hangup_by: Some("caller".into()),
                    hangup_reason: None,
                },
            )
            .await?;
    }
    Ok(uuid)
}

async fn call_log_search_and_detail(c: Ctx) -> anyhow::Result<()> {
    let (a, jwt) = c.signup("calls@example.test").await?;
    let (b, other) = c.signup("other@example.test").await?;
    let s = &c.store;
    let completed =
        logged_call(s, a, "13105550100", "12025550100", CallDirection::Inbound, 50, Some((true, 16))).await?;
    let unanswered =
        logged_call(s, a, "13105550101", "12025550100", CallDirection::Inbound, 40, Some((false, 16)))
            .await?;
    let failed =
        logged_call(s, a, "12025550100", "14155550100", CallDirection::Outbound, 30, Some((true, 41)))
            .await?;
    let live = logged_call(s, a, "13105550102", "12025550100", CallDirection::Inbound, 1, None).await?;
    logged_call(s, b, "13105550100", "12025550100", CallDirection::Inbound, 5, Some((true, 16))).await?;

    let search = |body: Value| c.post("/rest/call/search", &jwt, body);
    let ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .map(|d| d.iter().filter_map(|c| c["uuid"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let all = search(json!({})).await?;
    let all = all.ok(StatusCode::OK)?;
    ensure!(all["total"] == 4, "only the account's calls: {all}");
    ensure!(ids(all) == [completed, unanswered, failed, live].map(|u| u.to_string()), "oldest first: {all}");
    let cases: Vec<(Value, Vec<Uuid>)> = vec![
        (json!({"state": "completed"}), vec![completed]),
        (json!({"state": "unanswered"}), vec![unanswered]),
        (json!({"state": "failed"}), vec![failed]),
        (json!({"state": "initiated"}), vec![live]),
        (json!({"direction": "outbound"}), vec![failed]),
        (json!({"from": "13105550101"}), vec![unanswered]),
        (json!({"to": "12025550100", "direction": "inbound"}), vec![completed, unanswered, live]),
        (
            json!({"since": (now() - chrono::Duration::minutes(45)).to_rfc3339(),
                   "until": (now() - chrono::Duration::minutes(10)).to_rfc3339()}),
            vec![unanswered, failed],
        ),
        (json!({"order": {"created_on": "DESC"}, "state": "completed"}), vec![completed]),
    ];
    for (body, expected) in cases {
        let page = search(body.clone()).await?;
        let page = page.ok(StatusCode::OK)?;
        let expected: Vec<String> = expected.iter().map(Uuid::to_string).collect();
        ensure!(ids(page) == expected, "{body}: {page}");
    }
    let newest = c.post("/rest/call/search?take=1", &jwt, json!({"order": {"created_on": "DESC"}})).await?;
    let newest = newest.ok(StatusCode::OK)?;
    ensure!(newest["total"] == 4 && ids(newest) == vec![live.to_string()], "{newest}");
    search(json!({"state": "done"})).await?.err(StatusCode::BAD_REQUEST, &["state"])?;
    search(json!({"direction": "sideways"})).await?.err(StatusCode::BAD_REQUEST, &["inbound", "outbound"])?;
    search(json!({"since": "yesterday"})).await?.err(StatusCode::BAD_REQUEST, &["since"])?;
    search(json!({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["until: must be after since"])?;

    let one = c.get(&format!("/rest/call/{completed}"), &jwt).await?;
    let one = one.ok(StatusCode::OK)?;
    ensure!(
        one["state"] == "completed"
            && one["direction"] == "inbound"
            && one["from"] == "13105550100"
            && one["q850_cause"] == 16
            && one["hangup_cause"] == "NORMAL_CLEARING"
            && one["hangup_by"] == "caller"
            && one["duration_ms"] == 30_000
            && one["answered_on"].is_string()
            && one["recordings"] == json!([]),
        "{one}"
    );
    c.get(&format!("/rest/call/{completed}"), &other)
        .await?
        .err(StatusCode::NOT_FOUND, &["call", "not found"])?;
    c.post("/rest/call/search", &other, json!({"from": "13105550101"})).await?.ok(StatusCode::OK).and_then(
        |p| {
            ensure!(p["total"] == 0, "another account's call found: {p}");
            Ok(())
        },
    )?;
    c.get("/rest/call/nope", &jwt).await?.err(StatusCode::BAD_REQUEST, &["not a UUID"])?;
    c.call("POST", "/rest/call/search", Auth::None, Some(json!({})))
        .await?
        .err(StatusCode::UNAUTHORIZED, &[])?;
    Ok(())
}

/// An inbound call's STIR/SHAKEN result is on its CDR; a call that was not checked shows nulls;
/// another account can neither read nor write it.
async fn call_log_shows_stir_shaken(c: Ctx) -> anyhow::Result<()> {
    let (a, jwt) = c.signup("shaken-calls@example.test").await?;
    let (b, other) = c.signup("shaken-other@example.test").await?;
    let s = &c.store;
    let verified = logged_call(s, a, "13105550100", "12025550100", CallDirection::Inbound, 5, None).await?;
    let unchecked = logged_call(s, a, "12025550100", "14155550100", CallDirection::Outbound, 4, None).await?;
    let shaken = opentact_store::CallShaken {
        attest_level: Some(opentact_store::AttestLevel::B),
        identity: Some("eyJ.eyJ.sig;info=<https://cert.example/sp.pem>".into()),
        verstat: "TN-Validation-Passed".into(),
    };
    s.record_call_shaken(a, verified, shaken.clone()).await?;
    let denied = s.record_call_shaken(b, unchecked, shaken.clone()).await;
    ensure!(matches!(denied, Err(StoreError::NotFound { .. })), "another account's call: {denied:?}");

    let one = c.get(&format!("/rest/call/{verified}"), &jwt).await?;
    let one = one.ok(StatusCode::OK)?;
    ensure!(
        one["stir_shaken_attest_level"] == "B"
            && one["stir_shaken_identity"] == "eyJ.eyJ.sig;info=<https://cert.example/sp.pem>"
            && one["verstat"] == "TN-Validation-Passed",
        "{one}"
    );
    let plain = c.get(&format!("/rest/call/{unchecked}"), &jwt).await?;
    let plain = plain.ok(StatusCode::OK)?;
    ensure!(
        plain["stir_shaken_attest_level"].is_null()
            && plain["stir_shaken_identity"].is_null()
            && plain["verstat"].is_null(),
        "{plain}"
    );
    let page = c.post("/rest/call/search", &jwt, json!({"from": "13105550100"})).await?;
    let page = page.ok(StatusCode::OK)?;
    ensure!(page["data"][0]["verstat"] == "TN-Validation-Passed", "{page}");
    c.get(&format!("/rest/call/{verified}"), &other)
        .await?
        .err(StatusCode::NOT_FOUND, &["call", "not found"])?;
    Ok(())
}

async fn recordings_metadata_and_audio(c: Ctx) -> anyhow::Result<()> {
    let (a, jwt) = c.signup("rec@example.test").await?;
    let (_, other) = c.signup("other@example.test").await?;
    let call =
        logged_call(&c.store, a, "13105550100", "12025550100", CallDirection::Inbound, 5, Some((true, 16)))
            .await?;
    let recording = Uuid::new_v4();
    let missing = Uuid::new_v4();
    c.store.add_recording(a, call, recording, "memo", 2_500, 40_044).await?;
    c.store.add_recording(a, call, missing, "gone", 100, 1_644).await?;
    ensure!(
        c.store.add_recording(a, Uuid::new_v4(), Uuid::new_v4(), "x", 1, 60).await.is_err(),
        "a recording needs a logged call"
    );

    // The API serves files from its recordings directory: <dir>/<account>/<call>/<recording>.wav.
    let dir = tempfile::tempdir()?;
    let call_dir = dir.path().join(a.to_string()).join(call.to_string());
    std::fs::create_dir_all(&call_dir)?;
    let wav = b"RIFF\x24\x00\x00\x00WAVEfmt not really audio".to_vec();
    std::fs::write(call_dir.join(format!("{recording}.wav")), &wav)?;
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_recordings(dir.path().to_path_buf());
    let c = Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() };

    let meta = c.get(&format!("/rest/record/{recording}"), &jwt).await?;
    let meta = meta.ok(StatusCode::OK)?;
    ensure!(meta["call"] == json!(call) && meta["name"] == "memo" && meta["duration_ms"] == 2_500, "{meta}");
    let detail = c.get(&format!("/rest/call/{call}"), &jwt).await?;
    let detail = detail.ok(StatusCode::OK)?;
    ensure!(
        detail["recordings"]
            .as_array()
            .is_some_and(|r| r.len() == 2 && r.iter().any(|r| r["name"] == "memo")),
        "{detail}"
    );

    let audio = |id: Uuid, token: &str| {
        let req =
            Ctx::request("GET", &format!("/rest/record/{id}/audio"), Auth::Bearer(token)).body(Body::empty());
        let app = c.app.clone();
        async move {
            let response = app.oneshot(req?).await?;
            let status = response.status();
            let ct =
                response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let bytes = response.into_body().collect().await?.to_bytes().to_vec();
            anyhow::Ok((status, ct, bytes))
        }
    };
    let (status, ct, bytes) = audio(recording, &jwt).await?;
    ensure!(
        status == StatusCode::OK && ct.as_deref() == Some("audio/wav") && bytes == wav,
        "{status} {ct:?}"
    );
    // A large recording (an hour and more of audio) is streamed from its file with its length,
    // not read whole into memory first.
    let large = Uuid::new_v4();
    c.store.add_recording(a, call, large, "long", 3_600_000, 57_600_044).await?;
    let big: Vec<u8> = (0..24 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(call_dir.join(format!("{large}.wav")), &big)?;
    let req =
        Ctx::request("GET", &format!("/rest/record/{large}/audio"), Auth::Bearer(&jwt)).body(Body::empty())?;
    let response = c.app.clone().oneshot(req).await?;
    ensure!(response.status() == StatusCode::OK, "{}", response.status());
    let length =
        response.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(str::to_owned);
    ensure!(length == Some(big.len().to_string()), "Content-Length {length:?}");
    let body = response.into_body();
    let hint = axum::body::HttpBody::size_hint(&body);
    ensure!(hint.exact().is_none(), "the body is a buffer of the whole file, not a stream: {hint:?}");
    let served = body.collect().await?.to_bytes();
    ensure!(served.len() == big.len() && served[..] == big[..], "the large recording's bytes differ");

    let (status, _, body) = audio(missing, &jwt).await?;
    ensure!(status == StatusCode::NOT_FOUND, "a recording whose file is gone: {status}");
    let body: Value = serde_json::from_slice(&body)?;
    ensure!(body["message"].as_str().is_some_and(|m| m.contains("recording audio")), "{body}");
    for id in [recording, missing] {
        let (status, _, _) = audio(id, &other).await?;
        ensure!(status == StatusCode::NOT_FOUND, "another account's audio: {status}");
        c.get(&format!("/rest/record/{id}"), &other).await?.err(StatusCode::NOT_FOUND, &["recording"])?;
    }
    c.get(&format!("/rest/record/{}", Uuid::new_v4()), &jwt)
        .await?
        .err(StatusCode::NOT_FOUND, &["recording"])?;
    Ok(())
}

async fn deleting_a_recording_removes_its_row_and_file(c: Ctx) -> anyhow::Result<()> {
    let (a, jwt) = c.signup("del@example.test").await?;
    let (_, other) = c.signup("other@example.test").await?;
    let call =
        logged_call(&c.store, a, "13105550100", "12025550100", CallDirection::Inbound, 5, Some((true, 16)))
            .await?;
    let recording = Uuid::new_v4();
    c.store.add_recording(a, call, recording, "memo", 1_000, 16_044).await?;
    let dir = tempfile::tempdir()?;
    let call_dir = dir.path().join(a.to_string()).join(call.to_string());
    std::fs::create_dir_all(&call_dir)?;
    let file = call_dir.join(format!("{recording}.wav"));
    std::fs::write(&file, vec![0u8; 16_044])?;
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_recordings(dir.path().to_path_buf());
    let c = Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() };
    let uri = format!("/rest/record/{recording}");

    // Another account's delete is a 404 and changes nothing.
    c.delete(&uri, &other).await?.err(StatusCode::NOT_FOUND, &["recording"])?;
    ensure!(file.exists(), "another account cannot delete the file");
    ensure!(c.store.recording_usage(a).await?.count == 1);

    let deleted = c.delete(&uri, &jwt).await?;
    let deleted = deleted.ok(StatusCode::OK)?;
    ensure!(deleted["uuid"] == json!(recording) && deleted["deleted"] == true, "{deleted}");
    ensure!(!file.exists(), "the WAV file is deleted with the row");
    ensure!(c.store.recording_usage(a).await? == RecordingUsage::default(), "the quota's share is freed");
    c.get(&uri, &jwt).await?.err(StatusCode::NOT_FOUND, &["recording"])?;
    c.delete(&uri, &jwt).await?.err(StatusCode::NOT_FOUND, &["recording"])?;
    Ok(())
}

/// A node that does not relay commands (no PostgreSQL shared with other nodes): a command for a
/// call that the call log shows live on another node answers 409 without naming the node; a
/// call ended, open on this very node (it just ended here), or another account's answers 404.
async fn without_a_relay_a_command_for_a_call_live_on_another_node_gets_409(c: Ctx) -> anyhow::Result<()> {
    let (a, jwt) = c.signup("nodes@example.test").await?;
    let (_, stranger) = c.signup("stranger@example.test").await?;
    let started = |node: &str| NewCallRecord {
        uuid: Uuid::new_v4(),
        app: None,
        direction: CallDirection::Inbound,
        from: "13105550100".into(),
        to: "12025550100".into(),
        started_on: now(),
        node: Some(node.into()),
    };
    let (elsewhere, here, ended) = (started("node-b"), started("node-a"), started("node-b"));
    let on_node_c = started("node-c");
    for call in [&elsewhere, &here, &ended, &on_node_c] {
        c.store.record_call_start(a, call.clone()).await?;
    }
    let end = CallEnd {
        ended_on: now(),
        duration_ms: 1_000,
        answered: true,
        failed: false,
        q850_cause: Some(16),
        hangup_cause: Some("NORMAL_CLEARING".into()),
        hangup_by: Some("caller".into()),
        hangup_reason: None,
    };
    c.store.record_call_end(a, ended.uuid, end).await?;
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_node_id("node-a");
    let node_a = Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() };

    let say = json!({"command": "say", "params": {"text": "hello"}});
    let command = |call: Uuid| format!("/rest/call/{call}/command");
    let refused = node_a.post(&command(elsewhere.uuid), &jwt, say.clone()).await?;
    refused.err(StatusCode::CONFLICT, &["live on another node", "does not relay commands"])?;
    // The node's name is the operator's, not the account's.
    ensure!(!refused.body.to_string().contains("node-b"), "{}", refused.body);
    node_a
        .post("/rest/call/bridge", &jwt, json!({"call_a": elsewhere.uuid, "call_b": here.uuid}))
        .await?
        .err(StatusCode::NOT_FOUND, &["live call", &here.uuid.to_string()])?;
    node_a
        .post("/rest/call/bridge", &jwt, json!({"call_a": elsewhere.uuid, "call_b": on_node_c.uuid}))
        .await?
        .err(StatusCode::CONFLICT, &["different nodes", "media is not relayed"])?;
    for call in [here.uuid, ended.uuid] {
        node_a.post(&command(call), &jwt, say.clone()).await?.err(StatusCode::NOT_FOUND, &["live call"])?;
    }
    node_a
        .post(&command(elsewhere.uuid), &stranger, say.clone())
        .await?
        .err(StatusCode::NOT_FOUND, &["live call"])?;
    // The node's name is the operator's: the call log does not show it to the account.
    let shown = node_a.get(&format!("/rest/call/{}", elsewhere.uuid), &jwt).await?;
    let shown = shown.ok(StatusCode::OK)?;
    ensure!(shown.get("node").is_none() && !shown.to_string().contains("node-b"), "{shown}");
    Ok(())
}
