//! The API under attack, on SQLite and PostgreSQL: failed logins limited per e-mail and per
//! client address (429 with `Retry-After`, without hashing the password), password hashing a
//! few at a time under a flood, webhook URLs naming loopback or private addresses refused when
//! stored, and a cap on an account's event subscriptions.

mod support;

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use opentact_api::UrlPolicy;
use opentact_api::login_limit::{LoginLimits, MAX_FAILURES_PER_EMAIL};
use opentact_api::password_gate::PASSWORD_HASH_PERMITS;
use opentact_api::routes::event::MAX_SUBSCRIPTIONS_PER_ACCOUNT;
use support::*;

api_test!(
    failed_logins_per_email_are_refused_with_retry_after,
    failed_logins_per_address_are_refused_and_a_success_clears_them,
    a_login_flood_hashes_a_few_passwords_at_a_time,
    webhook_urls_naming_private_addresses_are_refused_when_stored,
    event_subscriptions_are_capped_per_account,
    sign_ups_are_counted_per_address_and_ipv6_per_64,
);

/// A router over `state` and the state (for its gauges).
fn app(c: &Ctx) -> (Router, ApiState) {
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default());
    (router(state.clone()), state)
}

async fn account(c: &Ctx, email: &str) -> anyhow::Result<Uuid> {
    let new = NewAccount {
        name: email.into(),
        email: email.into(),
        password: PASSWORD.into(),
        time_zone: "UTC".into(),
    };
    Ok(c.store.create_account(new).await?.uuid)
}

/// An answer with its `Retry-After`.
struct Reply {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Value,
}

/// `POST /rest/auth` (or, with `basic`, `GET /rest/lease/tn` with Basic credentials) from
/// `from` (no client address when `None`).
async fn login(
    app: &Router,
    email: &str,
    password: &str,
    from: Option<&str>,
    basic: bool,
) -> anyhow::Result<Reply> {
    let mut request = if basic {
        let credentials = STANDARD.encode(format!("{email}:{password}"));
        Request::builder()
            .uri("/rest/lease/tn")
            .header(header::AUTHORIZATION, format!("Basic {credentials}"))
            .body(Body::empty())?
    } else {
        Request::builder()
            .method("POST")
            .uri("/rest/auth")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({"email": email, "password": password}).to_string()))?
    };
    if let Some(ip) = from {
        // What `into_make_service_with_connect_info` puts on every request.
        let addr: SocketAddr = format!("{ip}:40000").parse()?;
        request.extensions_mut().insert(ConnectInfo(addr));
    }
    let response = app.clone().oneshot(request).await?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap_or("").parse::<u64>())
        .transpose()
        .context("Retry-After is whole seconds")?;
    let bytes = response.into_body().collect().await?.to_bytes();
    let body: Value = serde_json::from_slice(&bytes).with_context(|| format!("{status}: {bytes:?}"))?;
    Ok(Reply { status, retry_after, body })
}

impl Reply {
    /// A 429 in the error envelope with a `Retry-After` within the window.
    fn throttled(&self, scope: &str) -> anyhow::Result<()> {
        ensure!(
            self.status == StatusCode::TOO_MANY_REQUESTS,
            "expected 429, got {} {}",
            self.status,
            self.body
        );
        ensure!(
            self.body["success"] == json!(false) && self.body["status"] == json!(429),
            "envelope: {}",
            self.body
        );
        let message = self.body["message"].as_str().unwrap_or("");
        ensure!(message.contains("too many failed logins") && message.contains(scope), "{message}");
        let after = self.retry_after.context("no Retry-After")?;
        ensure!((1..=15 * 60).contains(&after), "Retry-After {after}");
        Ok(())
    }
}

async fn failed_logins_per_email_are_refused_with_retry_after(c: Ctx) -> anyhow::Result<()> {
    let (app, state) = app(&c);
    account(&c, "ana@example.com").await?;
    account(&c, "bo@example.com").await?;
    // Wrong passwords from as many addresses: only the e-mail's count can stop them.
    for i in 0..MAX_FAILURES_PER_EMAIL {
        let r = login(&app, "ana@example.com", "wrong", Some(&format!("198.51.100.{i}")), i % 2 == 1).await?;
        ensure!(r.status == StatusCode::UNAUTHORIZED, "attempt {i}: {} {}", r.status, r.body);
    }
    let hashed = state.password_gate.checked();
    // Now refused, whichever way the password comes and even when it is right — without
    // hashing it.
    login(&app, "ana@example.com", "wrong", Some("203.0.113.5"), false)
        .await?
        .throttled("for this e-mail")?;
    login(&app, "ANA@example.com", PASSWORD, Some("203.0.113.6"), false)
        .await?
        .throttled("for this e-mail")?;
    login(&app, "ana@example.com", PASSWORD, None, true).await?.throttled("for this e-mail")?;
    let get =
        Ctx::request("GET", "/rest/auth", Auth::Basic("ana@example.com", PASSWORD)).body(Body::empty())?;
    let get = app.clone().oneshot(get).await?;
    ensure!(get.status() == StatusCode::TOO_MANY_REQUESTS, "GET /rest/auth: {}", get.status());
    ensure!(state.password_gate.checked() == hashed, "a refused login was hashed");
    // Another account is not affected.
    let ok = login(&app, "bo@example.com", PASSWORD, Some("203.0.113.5"), false).await?;
    ensure!(ok.status == StatusCode::OK, "{} {}", ok.status, ok.body);
    Ok(())
}

async fn failed_logins_per_address_are_refused_and_a_success_clears_them(c: Ctx) -> anyhow::Result<()> {
    // Small limits, so the test hashes few passwords (the defaults are unit-tested).
    const PER_EMAIL: u32 = 3;
    const PER_IP: u32 = 8;
    let limits = LoginLimits { per_email: PER_EMAIL, per_ip: PER_IP, ..LoginLimits::default() };
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_login_limits(limits);
    let app = router(state.clone());
    account(&c, "owner@example.com").await?;
    // One address sprays wrong passwords over many e-mails, a few at once (within what the
    // hashing queue holds).
    let ids: Vec<u32> = (0..PER_IP).collect();
    for chunk in ids.chunks(4) {
        let spray = chunk.iter().map(|i| {
            let app = app.clone();
            async move {
                login(&app, &format!("user{i}@example.com"), "guess", Some("192.0.2.66"), i % 2 == 0).await
            }
        });
        for r in futures_util::future::join_all(spray).await {
            let r = r?;
            ensure!(r.status == StatusCode::UNAUTHORIZED, "{} {}", r.status, r.body);
        }
    }
    let hashed = state.password_gate.checked();
    login(&app, "fresh@example.com", "guess", Some("192.0.2.66"), false)
        .await?
        .throttled("from this address")?;
    login(&app, "owner@example.com", PASSWORD, Some("192.0.2.66"), true)
        .await?
        .throttled("from this address")?;
    ensure!(state.password_gate.checked() == hashed, "a refused login was hashed");
    // Another address is heard.
    let ok = login(&app, "owner@example.com", PASSWORD, Some("192.0.2.67"), false).await?;
    ensure!(ok.status == StatusCode::OK, "{} {}", ok.status, ok.body);

    // An address whose user mistypes, then logs in, starts again from zero.
    for i in 0..PER_IP - 1 {
        let r = login(&app, &format!("typo{i}@example.com"), "nope", Some("192.0.2.77"), false).await?;
        ensure!(r.status == StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    let ok = login(&app, "owner@example.com", PASSWORD, Some("192.0.2.77"), false).await?;
    ensure!(ok.status == StatusCode::OK, "{} {}", ok.status, ok.body);
    for i in 0..2 {
        let r = login(&app, &format!("again{i}@example.com"), "nope", Some("192.0.2.77"), false).await?;
        ensure!(r.status == StatusCode::UNAUTHORIZED, "cleared by the success: {} {}", r.status, r.body);
    }

    // Failures for the owner's e-mail from elsewhere do not lock the owner out of the address
    // it logged in from.
    for _ in 0..PER_EMAIL {
        let r = login(&app, "owner@example.com", "nope", Some("198.51.100.200"), false).await?;
        ensure!(r.status == StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    login(&app, "owner@example.com", PASSWORD, Some("198.51.100.201"), false)
        .await?
        .throttled("for this e-mail")?;
    let ok = login(&app, "owner@example.com", PASSWORD, Some("192.0.2.77"), false).await?;
    ensure!(ok.status == StatusCode::OK, "the owner's address: {} {}", ok.status, ok.body);
    Ok(())
}

async fn a_login_flood_hashes_a_few_passwords_at_a_time(c: Ctx) -> anyhow::Result<()> {
    let (app, state) = app(&c);
    account(&c, "ana@example.com").await?;
    // 1 000 Basic attempts at once, each for its own e-mail (no limit stops them): at most
    // the permits hash at a time, a bounded queue waits, the rest are told to come back.
    const FLOOD: usize = 1000;
    let flood = (0..FLOOD).map(|i| {
        let app = app.clone();
        tokio::spawn(async move { login(&app, &format!("flood{i}@example.com"), "x", None, true).await })
    });
    let mut unauthorized = 0;
    for reply in futures_util::future::join_all(flood).await {
        let reply = reply??;
        match reply.status {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                ensure!(reply.retry_after == Some(1), "503 without Retry-After: {}", reply.body);
                ensure!(reply.body["message"].as_str().unwrap_or("").contains("busy"), "{}", reply.body);
            }
            other => bail!("unexpected {other}: {}", reply.body),
        }
    }
    ensure!(
        state.password_gate.peak() <= PASSWORD_HASH_PERMITS,
        "{} hashes ran at once (permits: {PASSWORD_HASH_PERMITS})",
        state.password_gate.peak()
    );
    ensure!(unauthorized >= PASSWORD_HASH_PERMITS, "only {unauthorized} were checked");
    ensure!(
        state.password_gate.checked() == unauthorized as u64,
        "every refused login was answered without a hash"
    );
    // Logins that arrive together, within what the queue holds, all complete.
    let batch = (0..4 * PASSWORD_HASH_PERMITS).map(|_| {
        let app = app.clone();
        tokio::spawn(async move { login(&app, "ana@example.com", PASSWORD, None, false).await })
    });
    for reply in futures_util::future::join_all(batch).await {
        let reply = reply??;
        ensure!(reply.status == StatusCode::OK, "{} {}", reply.status, reply.body);
    }
    ensure!(state.password_gate.peak() <= PASSWORD_HASH_PERMITS, "peak {}", state.password_gate.peak());
    ensure!(state.password_gate.running() == 0 && state.password_gate.waiting() == 0, "gauges drained");
    Ok(())
}

async fn webhook_urls_naming_private_addresses_are_refused_when_stored(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("hooks@example.com").await?;
    let subscriptions = "/rest/event/subscription";
    let refused = [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.0.0.5/hook",
        "https://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9000/hook",
        "http://2130706433/hook",
    ];
    for url in refused {
        let r = c.post(subscriptions, &jwt, json!({"channel": "webhook", "type": "*", "url": url})).await?;
        r.err(StatusCode::UNPROCESSABLE_ENTITY, &["url:", "non-public address", "webhooks"])?;
        let r = c
            .post(
                subscriptions,
                &jwt,
                json!({"channel": "webhook", "type": "*", "url": "https://hooks.example.com/a", "url2": url}),
            )
            .await?;
        r.err(StatusCode::UNPROCESSABLE_ENTITY, &["url2:", "non-public address"])?;
    }
    c.post(
        subscriptions,
        &jwt,
        json!({"channel": "webhook", "type": "*", "url": "ftp://hooks.example.com/"}),
    )
    .await?
    .err(StatusCode::UNPROCESSABLE_ENTITY, &["url: must be an http(s) URL"])?;
    let page = c.get(subscriptions, &jwt).await?;
    ensure!(page.ok(StatusCode::OK)?["total"] == json!(0), "nothing stored: {}", page.body);
    for url in ["https://hooks.example.com/a", "http://93.184.215.14:8080/events"] {
        c.post(subscriptions, &jwt, json!({"channel": "webhook", "type": "*", "url": url}))
            .await?
            .ok(StatusCode::CREATED)?;
    }

    // Apps: the event_url (a webhook) and the webhook_url (where the flow document comes from).
    let apps = "/rest/sip/app";
    c.post(apps, &jwt, json!({"name": "a", "control": "async", "event_url": "http://127.0.0.1:9/ev"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["event_url:", "non-public address"])?;
    c.post(apps, &jwt, json!({"name": "w", "webhook_url": "http://10.1.1.1/ivr.xml"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["webhook_url:", "non-public address", "flow documents"])?;
    let app = c
        .post(
            apps,
            &jwt,
            json!({"name": "ok", "webhook_url": "https://ivr.example.com/doc", "event_url": "https://ev.example.com/"}),
        )
        .await?;
    let id = str_of(app.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    c.patch(&format!("{apps}/{id}"), &jwt, json!({"event_url": "http://[fd00::1]/ev"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["event_url:", "non-public address"])?;
    c.patch(&format!("{apps}/{id}"), &jwt, json!({"webhook_url": "http://localhost:8000/doc"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["webhook_url:", "non-public address"])?;
    let app = c.get(&format!("{apps}/{id}"), &jwt).await?;
    ensure!(app.ok(StatusCode::OK)?["event_url"] == "https://ev.example.com/", "unchanged: {}", app.body);
    // null takes the event_url away (absent leaves it: the refusals above).
    let cleared = c.patch(&format!("{apps}/{id}"), &jwt, json!({"event_url": null})).await?;
    ensure!(cleared.ok(StatusCode::OK)?["event_url"].is_null(), "cleared: {}", cleared.body);
    let app = c.get(&format!("{apps}/{id}"), &jwt).await?;
    ensure!(app.ok(StatusCode::OK)?["event_url"].is_null(), "stored cleared: {}", app.body);

    // Messaging profiles' callbacks are webhooks too.
    c.post("/rest/profile/messaging", &jwt, json!({"name": "m", "callback_url": "http://192.168.0.9/sms"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["callback_url:", "non-public address"])?;

    // The operator's allowance (tests, on-premises receivers) lets them through.
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_webhook_urls(UrlPolicy::allow_private())
        .with_flow_urls(UrlPolicy::new(false, &["10.1.0.0/16".to_owned()])?);
    let open = Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() };
    open.post(
        subscriptions,
        &jwt,
        json!({"channel": "webhook", "type": "*", "url": "http://127.0.0.1:8080/hook"}),
    )
    .await?
    .ok(StatusCode::CREATED)?;
    open.post(apps, &jwt, json!({"name": "w", "webhook_url": "http://10.1.1.1/ivr.xml"}))
        .await?
        .ok(StatusCode::CREATED)?;
    open.post(apps, &jwt, json!({"name": "w2", "webhook_url": "http://10.2.1.1/ivr.xml"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["webhook_url:", "non-public address"])?;
    Ok(())
}

async fn event_subscriptions_are_capped_per_account(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("many@example.com").await?;
    let (_, other) = c.signup("other@example.com").await?;
    let base = "/rest/event/subscription";
    // At the cap, concurrently: the count and the insert are one step.
    let creations = (0..MAX_SUBSCRIPTIONS_PER_ACCOUNT + 5).map(|_| {
        let (app, jwt) = (c.app.clone(), jwt.clone());
        async move {
            let request = Request::builder()
                .method("POST")
                .uri(base)
                .header(header::AUTHORIZATION, format!("Bearer {jwt}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json!({"channel": "wss", "type": "call.*"}).to_string()))?;
            anyhow::Ok(app.oneshot(request).await?.status())
        }
    });
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(creations).await.into_iter().collect::<anyhow::Result<_>>()?;
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY).count();
    ensure!(created as i64 == MAX_SUBSCRIPTIONS_PER_ACCOUNT && refused == 5, "{statuses:?}");
    let next = c
        .post(base, &jwt, json!({"channel": "webhook", "type": "*", "url": "https://h.example.com/"}))
        .await?;
    next.err(StatusCode::UNPROCESSABLE_ENTITY, &["subscription:", "100 event subscriptions", "delete one"])?;
    let page = c.get(&format!("{base}?take=1"), &jwt).await?;
    ensure!(page.ok(StatusCode::OK)?["total"] == json!(MAX_SUBSCRIPTIONS_PER_ACCOUNT), "{}", page.body);
    // Another account has its own allowance; deleting one makes room.
    c.post(base, &other, json!({"channel": "wss", "type": "*"})).await?.ok(StatusCode::CREATED)?;
    let first = str_of(&page.body["payload"]["data"][0], "uuid")?.to_owned();
    c.delete(&format!("{base}/{first}"), &jwt).await?.ok(StatusCode::OK)?;
    c.post(base, &jwt, json!({"channel": "wss", "type": "*"})).await?.ok(StatusCode::CREATED)?;
    Ok(())
}

/// Self sign-up's 5 an hour are per client address, and an IPv6 host's whole /64 is one
/// address (a host picks any address in it): the sixth from the same /64 is refused, another
/// /64 and an IPv4 address are not.
async fn sign_ups_are_counted_per_address_and_ipv6_per_64(c: Ctx) -> anyhow::Result<()> {
    let config = ApiConfig { self_signup: true, ..ApiConfig::default() };
    let app = router(ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), config));
    let sign_up = |n: u32, ip: &str| {
        let app = app.clone();
        let ip = ip.to_owned();
        async move {
            let body =
                json!({"name": "U", "email": format!("u{n}@example.test"), "password": "a long secret"});
            let mut request = Request::builder()
                .method("POST")
                .uri("/rest/signup")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))?;
            request.extensions_mut().insert(ConnectInfo(SocketAddr::new(ip.parse()?, 40000)));
            let response = app.oneshot(request).await?;
            anyhow::Ok(response.status())
        }
    };
    for n in 0..5 {
        // Each from another address of one /64.
        let status = sign_up(n, &format!("2001:db8:1:2::{:x}", n + 1)).await?;
        ensure!(status == StatusCode::CREATED, "sign-up {n}: {status}");
    }
    ensure!(sign_up(5, "2001:db8:1:2:ffff::9").await? == StatusCode::TOO_MANY_REQUESTS, "the same /64");
    ensure!(sign_up(6, "2001:db8:1:3::1").await? == StatusCode::CREATED, "another /64");
    ensure!(sign_up(7, "192.0.2.7").await? == StatusCode::CREATED, "an IPv4 address");
    ensure!(c.store.account_by_email("u5@example.test").await?.is_none(), "the refused one made nothing");
    Ok(())
}
