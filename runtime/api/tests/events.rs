//! Event subscriptions, the webhook signing key and the delivery list — on SQLite and
//! PostgreSQL. (Delivery itself is tested end to end in tests/webhooks.rs.)

mod support;

use support::*;

api_test!(event_subscriptions, webhook_signing_key);

async fn event_subscriptions(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("events@example.test").await?;
    let (_, other) = c.signup("other@example.test").await?;
    let base = "/rest/event/subscription";
    let hook = c
        .post(
            base,
            &jwt,
            json!({"channel": "webhook", "type": "call.*", "url": "https://hooks.example.test/a",
                   "url2": "https://backup.example.test/a"}),
        )
        .await?;
    let hook = hook.ok(StatusCode::CREATED)?.clone();
    ensure!(
        hook["channel"] == "webhook"
            && hook["type"] == "call.*"
            && hook["url"] == "https://hooks.example.test/a"
            && hook["url2"] == "https://backup.example.test/a",
        "{hook}"
    );
    let wss = c.post(base, &jwt, json!({"channel": "wss", "type": "call.hangup"})).await?;
    ensure!(wss.ok(StatusCode::CREATED)?["url"].is_null(), "{:?}", wss);
    c.post(base, &jwt, json!({"channel": "webhook", "type": "*", "url": "http://hooks.example.test/all"}))
        .await?
        .ok(StatusCode::CREATED)?;

    let bad: Vec<(Value, StatusCode, &[&str])> = vec![
        (
            json!({"channel": "webhook", "type": "call.*"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["url: a webhook subscription needs"],
        ),
        (
            json!({"channel": "webhook", "type": "call.*", "url": "ftp://x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["url: must be an http(s) URL"],
        ),
        (
            json!({"channel": "wss", "type": "call.*", "url": "https://x.test"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["url: wss subscriptions go to the websocket"],
        ),
        (
            json!({"channel": "wss", "type": "Call Hangup"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["type: must be an event type"],
        ),
        (json!({"channel": "wss", "type": "call.**"}), StatusCode::UNPROCESSABLE_ENTITY, &["type:"]),
        (json!({"channel": "smoke", "type": "*"}), StatusCode::BAD_REQUEST, &["webhook", "wss"]),
        (json!({"channel": "wss"}), StatusCode::BAD_REQUEST, &["missing field `type`"]),
    ];
    for (body, status, needles) in bad {
        c.post(base, &jwt, body.clone()).await?.err(status, needles).with_context(|| format!("{body}"))?;
    }
    let list = c.get(base, &jwt).await?;
    let list = list.ok(StatusCode::OK)?;
    ensure!(list["total"] == 3, "{list}");
    let theirs = c.get(base, &other).await?;
    ensure!(theirs.ok(StatusCode::OK)?["total"] == 0, "another account's subscriptions: {:?}", theirs);

    let uri = format!("{base}/{}", str_of(&hook, "uuid")?);
    c.delete(&uri, &other).await?.err(StatusCode::NOT_FOUND, &["event subscription", "not found"])?;
    c.delete(&uri, &jwt).await?.ok(StatusCode::OK)?;
    c.delete(&uri, &jwt).await?.err(StatusCode::NOT_FOUND, &["event subscription"])?;
    let list = c.get(base, &jwt).await?;
    ensure!(list.ok(StatusCode::OK)?["total"] == 2, "{:?}", list);
    let deliveries = c.get("/rest/event/delivery", &jwt).await?;
    ensure!(deliveries.ok(StatusCode::OK)?["total"] == 0, "{:?}", deliveries);
    c.call("GET", base, Auth::None, None).await?.err(StatusCode::UNAUTHORIZED, &[])?;
    Ok(())
}

async fn webhook_signing_key(c: Ctx) -> anyhow::Result<()> {
    let (a, jwt) = c.signup("keys@example.test").await?;
    let (_, other) = c.signup("other@example.test").await?;
    let first = c.get("/rest/event/key", &jwt).await?;
    let first = first.ok(StatusCode::OK)?.clone();
    ensure!(
        first["algorithm"] == "ed25519"
            && first["signature_header"] == "Opentact-Signature"
            && first["timestamp_header"] == "Opentact-Timestamp"
            && first["signed_text"] == "<timestamp>|<body>",
        "{first}"
    );
    let again = c.get("/rest/event/key", &jwt).await?;
    ensure!(again.ok(StatusCode::OK)?["public_key"] == first["public_key"], "the key is stable");
    let theirs = c.get("/rest/event/key", &other).await?;
    ensure!(theirs.ok(StatusCode::OK)?["public_key"] != first["public_key"], "each account has its own key");
    ensure!(first.get("private_pkcs8").is_none(), "the private half is never shown: {first}");

    // The published key verifies what the platform signs with the stored key.
    let stored = c.store.signing_key(a).await?.context("stored key")?;
    let signer = opentact_events::signing::Signer::from_pkcs8_base64(&stored.private_pkcs8)?;
    let signature = signer.sign(1_800_000_000, b"{\"type\":\"call.hangup\"}");
    let public = str_of(&first, "public_key")?;
    ensure!(opentact_events::signing::verify(
        public,
        1_800_000_000,
        b"{\"type\":\"call.hangup\"}",
        &signature
    ));
    ensure!(!opentact_events::signing::verify(
        public,
        1_800_000_000,
        b"{\"type\":\"call.answered\"}",
        &signature
    ));
    Ok(())
}
