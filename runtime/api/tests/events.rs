//! Event subscriptions, the webhook signing key, the delivery list and the test webhook — on
//! SQLite and PostgreSQL. (Delivery itself is tested end to end in tests/webhooks.rs.)

mod support;

use opentact_api::UrlPolicy;
use support::*;

api_test!(event_subscriptions, webhook_signing_key, test_webhook_reports_what_the_receiver_said);

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

/// A receiver on loopback that answers each request with `reply` and hands back what it read
/// (the head and the body, by Content-Length).
async fn receiver(reply: &'static str, requests: usize) -> (String, tokio::task::JoinHandle<Vec<String>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..requests {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = socket.read(&mut buf).await.expect("read");
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned)
                        })
                        .and_then(|l| l.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            socket.write_all(reply.as_bytes()).await.expect("write");
            seen.push(String::from_utf8_lossy(&request).into_owned());
        }
        seen
    });
    (url, task)
}

async fn test_webhook_reports_what_the_receiver_said(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("tester@example.test").await?;
    let (_, other) = c.signup("tester-other@example.test").await?;
    // By default a loopback URL is refused like a subscription's.
    let refused = c
        .post("/rest/event/test", &jwt, json!({"type": "call.hangup", "url": "http://127.0.0.1:9/x"}))
        .await?;
    refused.err(StatusCode::UNPROCESSABLE_ENTITY, &["url:", "non-public address"])?;

    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_webhook_urls(UrlPolicy::allow_private());
    let c = Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() };
    let (url, seen) = receiver(
        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: 23\r\nconnection: close\r\n\r\nreceiver broke: db down",
        2,
    )
    .await;
    let answer = c.post("/rest/event/test", &jwt, json!({"type": "call.hangup", "url": url})).await?;
    let result = answer.ok(StatusCode::OK)?.clone();
    ensure!(
        result["delivered"] == false
            && result["status"] == 500
            && result["body"] == "receiver broke: db down"
            && result["content_type"] == "text/plain"
            && result["url"] == url.as_str()
            && result["error"].is_null()
            && result["time_ms"].is_u64(),
        "{result}"
    );
    ensure!(
        result["event"]["type"] == "call.hangup" && result["event"]["payload"]["test"] == true,
        "{result}"
    );

    // Through a subscription: its URL gets it; another account cannot name it.
    let subscription = c
        .post("/rest/event/subscription", &jwt, json!({"channel": "webhook", "type": "*", "url": url}))
        .await?;
    let subscription = str_of(subscription.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    let theirs = c
        .post("/rest/event/test", &other, json!({"type": "sms.received", "subscription": subscription}))
        .await?;
    theirs.err(StatusCode::NOT_FOUND, &["event subscription"])?;
    let via = c
        .post("/rest/event/test", &jwt, json!({"type": "sms.received", "subscription": subscription}))
        .await?;
    ensure!(via.ok(StatusCode::OK)?["status"] == 500, "{via:?}");

    // Each request was signed with the account's key, as real deliveries are.
    let key = c.get("/rest/event/key", &jwt).await?;
    let public_key = str_of(key.ok(StatusCode::OK)?, "public_key")?.to_owned();
    let requests = seen.await?;
    ensure!(requests.len() == 2, "{requests:?}");
    for request in &requests {
        let (head, body) = request.split_once("\r\n\r\n").context("a request")?;
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (n, v) = l.split_once(": ")?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let timestamp: i64 = header("opentact-timestamp").context("timestamp")?.parse()?;
        let signature = header("opentact-signature").context("signature")?;
        ensure!(
            opentact_events::signing::verify(&public_key, timestamp, body.as_bytes(), &signature),
            "{request}"
        );
    }

    // Bad requests say what to fix; the rate is capped.
    let bad_type = c.post("/rest/event/test", &jwt, json!({"type": "call.nope", "url": url})).await?;
    bad_type.err(StatusCode::UNPROCESSABLE_ENTITY, &["type:", "call.hangup"])?;
    let neither = c.post("/rest/event/test", &jwt, json!({"type": "call.hangup"})).await?;
    neither.err(StatusCode::UNPROCESSABLE_ENTITY, &["either url or subscription"])?;
    // Nothing listens on the discard port: the answer says so.
    let mut limited = false;
    for _ in 0..10 {
        let answer = c
            .post("/rest/event/test", &jwt, json!({"type": "tn.order", "url": "http://127.0.0.1:9/x"}))
            .await?;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
        let result = answer.ok(StatusCode::OK)?;
        ensure!(
            result["delivered"] == false && result["status"].is_null() && result["error"].is_string(),
            "{result}"
        );
    }
    ensure!(limited, "at most 10 test webhooks a minute");
    Ok(())
}
