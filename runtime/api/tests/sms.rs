//! SMS through the API: `POST /rest/sms` checks the number, the destination and the text and
//! stores the message queued before answering 201 (and pokes the sender); `GET /rest/sms/{uuid}`
//! shows its history; `POST /rest/sms/search` is the SMS log; `POST /rest/lease/tn/sms`
//! toggles SMS on numbers, all checked first — on SQLite and PostgreSQL, with another account's
//! objects reading as absent. (The sender and the SMSC are tested end to end in tests/sms.rs.)

mod support;

use futures_util::FutureExt;
use opentact_messaging::rate::RateConfig;
use opentact_messaging::submit::Submitter;
use support::*;
use tokio::sync::Notify;

api_test!(
    sms_is_stored_queued_and_the_sender_told,
    sms_refusals_are_clear,
    sms_are_the_accounts_own,
    sms_toggle_checks_everything_first,
    without_messaging_nothing_is_stored,
    sms_rate_limits_per_number_and_profile,
    pool_picks_by_weight,
    pool_sender_is_sticky,
    pool_skips_unhealthy_numbers,
    pool_refusals_and_other_accounts,
    rated_sms_are_charged_and_refused_without_balance,
);

/// The API over the real messaging capability (`opentact_messaging::submit`) on the test's
/// store, with `rate`; the waker is how the test sees the sender told.
fn messaging_with(c: &Ctx, rate: RateConfig) -> (Ctx, Arc<Notify>) {
    let wake = Arc::new(Notify::new());
    let submitter = Submitter::new(Arc::new(c.store.clone()), wake.clone(), rate).with_seed(11);
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_messaging(Arc::new(submitter));
    (Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() }, wake)
}

fn messaging(c: &Ctx) -> (Ctx, Arc<Notify>) {
    messaging_with(c, RateConfig::default())
}

/// Whether the sender was told since the last look.
fn told(wake: &Notify) -> bool {
    wake.notified().now_or_never().is_some()
}

/// An account with a lease of `tn` (SMS as given).
async fn fixture(c: &Ctx, email: &str, tn: Tn, sms: bool) -> anyhow::Result<(Uuid, String, TnLease)> {
    let (account, jwt) = c.signup(email).await?;
    c.seed(&[(tn, "DC", true, true, true)]).await?;
    let lease = c.store.lease_tn(account, NewLease { tn, voice: true, sms, autorenew: false }).await?;
    Ok((account, jwt, lease))
}

async fn sms_is_stored_queued_and_the_sender_told(c: Ctx) -> anyhow::Result<()> {
    let (c, pokes) = messaging(&c);
    let (account, jwt, lease) = fixture(&c, "sms@example.test", 12025550100, true).await?;
    let created = c
        .post("/rest/sms", &jwt, json!({"tn": 12025550100_i64, "to": "+14155550100", "message": "hello"}))
        .await?;
    let m = created.ok(StatusCode::CREATED)?.clone();
    let id: Uuid = str_of(&m, "uuid")?.parse()?;
    ensure!(
        m["type"] == "smso"
            && m["state"] == "queued"
            && m["from"] == "12025550100"
            && m["to"] == "14155550100"
            && m["text"] == "hello"
            && m["parts"] == 1
            && m["tn_lease"] == json!(lease.uuid)
            && m["history"][0]["state"] == "created"
            && m["history"][1]["state"] == "queued",
        "{m}"
    );
    ensure!(told(&pokes), "the sender is told");
    // The row exists before the answer: the store has it queued.
    ensure!(c.store.get_sms(account, id).await?.context("stored")?.state == SmsState::Queued);
    let got = c.get(&format!("/rest/sms/{id}"), &jwt).await?;
    ensure!(got.ok(StatusCode::OK)? == &m, "{got:?}");
    // Two parts; the number as a string.
    let long = "x".repeat(200);
    let two = c
        .post("/rest/sms", &jwt, json!({"tn": "+12025550100", "to": 14155550101_i64, "message": long}))
        .await?;
    ensure!(two.ok(StatusCode::CREATED)?["parts"] == 2, "{two:?}");
    // The log.
    let all = c.post("/rest/sms/search", &jwt, json!({})).await?;
    ensure!(all.ok(StatusCode::OK)?["total"] == 2, "{all:?}");
    let to = c
        .post("/rest/sms/search", &jwt, json!({"to": "14155550100", "type": "smso", "state": "queued"}))
        .await?;
    let to = to.ok(StatusCode::OK)?;
    ensure!(to["total"] == 1 && to["data"][0]["uuid"] == json!(id), "{to}");
    Ok(())
}

async fn sms_refusals_are_clear(c: Ctx) -> anyhow::Result<()> {
    let (c, pokes) = messaging(&c);
    let (account, jwt, _) = fixture(&c, "r@example.test", 12025550100, true).await?;
    c.seed(&[(12025550300, "DC", true, true, true)]).await?;
    let voice_only = c
        .store
        .lease_tn(account, NewLease { tn: 12025550300, voice: true, sms: false, autorenew: false })
        .await?;
    let cases = [
        (
            json!({"tn": 12025550999_i64, "to": "14155550100", "message": "hi"}),
            "tn: the number 12025550999 is not leased by this account",
        ),
        (
            json!({"tn": voice_only.tn, "to": "14155550100", "message": "hi"}),
            "SMS is not enabled on the number 12025550300",
        ),
        (json!({"tn": 12025550100_i64, "to": "14155550100", "message": ""}), "message"),
        (json!({"tn": 12025550100_i64, "to": "14155550100", "message": "a".repeat(919)}), "919 characters"),
        (
            json!({"tn": 12025550100_i64, "to": "12ab", "message": "hi"}),
            "to: \"12ab\" is not a telephone number",
        ),
        (json!({"tn": 12025550100_i64, "to": "123", "message": "hi"}), "to:"),
        (
            json!({"tn": 12025550100_i64, "to": "14155550100", "message": "hi", "custom_callback_url": "http://127.0.0.1/x"}),
            "custom_callback_url",
        ),
    ];
    for (body, needle) in cases {
        c.post("/rest/sms", &jwt, body.clone())
            .await?
            .err(StatusCode::UNPROCESSABLE_ENTITY, &[needle])
            .with_context(|| body.to_string())?;
    }
    ensure!(!told(&pokes), "nothing was queued");
    let all = c.post("/rest/sms/search", &jwt, json!({})).await?;
    ensure!(all.ok(StatusCode::OK)?["total"] == 0, "{all:?}");
    Ok(())
}

async fn sms_are_the_accounts_own(c: Ctx) -> anyhow::Result<()> {
    let (c, _) = messaging(&c);
    let (_, a, a_lease) = fixture(&c, "a@example.test", 12025550100, true).await?;
    let (_, b, b_lease) = fixture(&c, "b@example.test", 12025550200, true).await?;
    let created =
        c.post("/rest/sms", &a, json!({"tn": 12025550100_i64, "to": "14155550100", "message": "hi"})).await?;
    let id = str_of(created.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    let uri = format!("/rest/sms/{id}");
    // B cannot read A's message: the same 404 as one that does not exist.
    c.get(&uri, &b).await?.err(StatusCode::NOT_FOUND, &[&format!("message {id} not found")])?;
    let unknown = Uuid::new_v4();
    c.get(&format!("/rest/sms/{unknown}"), &a).await?.err(StatusCode::NOT_FOUND, &["message"])?;
    c.get("/rest/sms/not-a-uuid", &a).await?.err(StatusCode::BAD_REQUEST, &["not a UUID"])?;
    let log = c.post("/rest/sms/search", &b, json!({})).await?;
    ensure!(log.ok(StatusCode::OK)?["total"] == 0, "{log:?}");
    // Nor send from A's number, nor toggle it (by id or number).
    c.post("/rest/sms", &b, json!({"tn": 12025550100_i64, "to": "14155550100", "message": "hi"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["not leased by this account"])?;
    c.post("/rest/lease/tn/sms", &b, json!({"disable": [a_lease.uuid]}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["disable[0]", "not found"])?;
    c.post("/rest/lease/tn/sms", &b, json!({"disable": [b_lease.tn, 12025550100_i64]}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["disable[1]", "not leased by this account"])?;
    ensure!(c.store.get_lease(a_lease.account, a_lease.uuid).await?.context("a")?.sms, "A's lease untouched");
    ensure!(
        c.store.get_lease(b_lease.account, b_lease.uuid).await?.context("b")?.sms,
        "B's own was not changed either"
    );
    // A still reads it.
    ensure!(c.get(&uri, &a).await?.ok(StatusCode::OK)?["uuid"] == json!(id));
    Ok(())
}

async fn sms_toggle_checks_everything_first(c: Ctx) -> anyhow::Result<()> {
    let (c, _) = messaging(&c);
    let (account, jwt, one) = fixture(&c, "t@example.test", 12025550100, false).await?;
    c.seed(&[(12025550101, "DC", true, true, true)]).await?;
    let two = c
        .store
        .lease_tn(account, NewLease { tn: 12025550101, voice: true, sms: true, autorenew: false })
        .await?;
    // One bad item refuses the whole request: nothing changes.
    c.post("/rest/lease/tn/sms", &jwt, json!({"enable": [one.uuid], "disable": [two.tn, 19999999999_i64]}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["disable[1]", "19999999999"])?;
    ensure!(!c.store.get_lease(account, one.uuid).await?.context("one")?.sms);
    c.post("/rest/lease/tn/sms", &jwt, json!({"enable": [one.uuid], "disable": [one.tn]}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["named twice"])?;
    c.post("/rest/lease/tn/sms", &jwt, json!({}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["enable"])?;
    // Sending from the number is refused until it is enabled.
    let body = json!({"tn": one.tn, "to": "14155550100", "message": "hi"});
    c.post("/rest/sms", &jwt, body.clone()).await?.err(StatusCode::UNPROCESSABLE_ENTITY, &["not enabled"])?;
    let done = c
        .post("/rest/lease/tn/sms", &jwt, json!({"enable": [one.uuid], "disable": [format!("+{}", two.tn)]}))
        .await?;
    let done = done.ok(StatusCode::OK)?;
    ensure!(done[0]["sms"] == true && done[1]["sms"] == false, "{done}");
    ensure!(!c.store.get_lease(account, two.uuid).await?.context("two")?.sms);
    c.post("/rest/sms", &jwt, body).await?.ok(StatusCode::CREATED)?;
    Ok(())
}

async fn without_messaging_nothing_is_stored(c: Ctx) -> anyhow::Result<()> {
    let (account, jwt, _) = fixture(&c, "n@example.test", 12025550100, true).await?;
    c.post("/rest/sms", &jwt, json!({"tn": 12025550100_i64, "to": "14155550100", "message": "hi"}))
        .await?
        .err(StatusCode::SERVICE_UNAVAILABLE, &["messaging is not running"])?;
    ensure!(c.store.search_sms(account, SmsFilter::default(), ListParams::default()).await?.total == 0);
    Ok(())
}

/// `POST` with the answer's `Retry-After` (whole seconds) when it has one.
async fn post_with_retry(
    c: &Ctx,
    uri: &str,
    jwt: &str,
    body: Value,
) -> anyhow::Result<(Answer, Option<u64>)> {
    let request = Request::builder()
        .method("POST")
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {jwt}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))?;
    let response = c.app.clone().oneshot(request).await?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap_or("").parse::<u64>())
        .transpose()
        .context("Retry-After is whole seconds")?;
    let bytes = response.into_body().collect().await?.to_bytes();
    let body: Value = serde_json::from_slice(&bytes).with_context(|| format!("{status}: {bytes:?}"))?;
    Ok((Answer { status, body }, retry_after))
}

/// A messaging profile of `account` with these pool settings.
async fn pool_profile(
    c: &Ctx,
    account: Uuid,
    lcw: i32,
    tfw: i32,
    skip: bool,
    sticky: bool,
) -> anyhow::Result<Uuid> {
    let new = NewMessagingProfile {
        name: "pool".into(),
        number_pool_enable: true,
        long_code_weight: lcw,
        toll_free_weight: tfw,
        skip_unhealthy_tns: skip,
        sticky_sender: sticky,
        ..Default::default()
    };
    Ok(c.store.create_messaging_profile(account, new).await?.uuid)
}

/// Leases `tns` to `account` with SMS, attached to `profile`.
async fn pool_numbers(c: &Ctx, account: Uuid, profile: Uuid, tns: &[Tn]) -> anyhow::Result<Vec<TnLease>> {
    let rows: Vec<(Tn, &str, bool, bool, bool)> =
        tns.iter().map(|&tn| (tn, "DC", true, true, true)).collect();
    c.seed(&rows).await?;
    let mut leases = Vec::new();
    for &tn in tns {
        let lease =
            c.store.lease_tn(account, NewLease { tn, voice: false, sms: true, autorenew: false }).await?;
        let patch = LeasePatch { messaging_profile: Some(Some(profile)), ..Default::default() };
        leases.push(c.store.update_lease(account, lease.uuid, patch).await?);
    }
    Ok(leases)
}

/// `POST /rest/sms/pool` to `to`; the number picked.
async fn pool_send(c: &Ctx, jwt: &str, profile: Uuid, to: &str) -> anyhow::Result<String> {
    let sent = c
        .post("/rest/sms/pool", jwt, json!({"messaging_profile": profile, "to": to, "message": "hi"}))
        .await?;
    Ok(str_of(sent.ok(StatusCode::CREATED)?, "from")?.to_owned())
}

async fn sms_rate_limits_per_number_and_profile(c: Ctx) -> anyhow::Result<()> {
    // Minute windows, counted from the limiter's start: the test ends well inside the first.
    let rate = RateConfig { number_per_minute: 2, profile_per_minute: 3, ..RateConfig::UNLIMITED };
    let (c, _) = messaging_with(&c, rate);
    let (account, jwt) = c.signup("rate@example.test").await?;
    let profile = pool_profile(&c, account, 1, 1, false, false).await?;
    pool_numbers(&c, account, profile, &[12025550100, 12025550101]).await?;
    let from = |tn: Tn| json!({"tn": tn, "to": "14155550100", "message": "hi"});
    for _ in 0..2 {
        c.post("/rest/sms", &jwt, from(12025550100)).await?.ok(StatusCode::CREATED)?;
    }
    let (refused, retry) = post_with_retry(&c, "/rest/sms", &jwt, from(12025550100)).await?;
    refused.err(
        StatusCode::TOO_MANY_REQUESTS,
        &["the number 12025550100 may send 2 SMS a minute", "number_per_minute", "send again in"],
    )?;
    ensure!(retry.is_some_and(|s| (1..=60).contains(&s)), "Retry-After {retry:?}");
    // The other number has its own count, but the profile's is shared: its second is refused.
    c.post("/rest/sms", &jwt, from(12025550101)).await?.ok(StatusCode::CREATED)?;
    let (refused, retry) = post_with_retry(&c, "/rest/sms", &jwt, from(12025550101)).await?;
    refused.err(
        StatusCode::TOO_MANY_REQUESTS,
        &[&format!("messaging profile {profile}"), "profile_per_minute"],
    )?;
    ensure!(retry.is_some(), "Retry-After");
    // The pool has no number under its limits left: 429 too.
    let (refused, _) = post_with_retry(
        &c,
        "/rest/sms/pool",
        &jwt,
        json!({"messaging_profile": profile, "to": "14155550100", "message": "hi"}),
    )
    .await?;
    refused.err(StatusCode::TOO_MANY_REQUESTS, &["every number of the pool is at a rate limit"])?;
    // Refused messages were not stored.
    ensure!(c.store.search_sms(account, SmsFilter::default(), ListParams::default()).await?.total == 3);
    Ok(())
}

async fn pool_picks_by_weight(c: Ctx) -> anyhow::Result<()> {
    let (c, _) = messaging_with(&c, RateConfig::UNLIMITED);
    let (account, jwt) = c.signup("weights@example.test").await?;
    let profile = pool_profile(&c, account, 3, 1, false, false).await?;
    pool_numbers(&c, account, profile, &[12025550100, 12025550101, 18885550100]).await?;
    // A number of the account outside the profile is never picked.
    c.seed(&[(12025550199, "DC", true, true, true)]).await?;
    c.store
        .lease_tn(account, NewLease { tn: 12025550199, voice: false, sms: true, autorenew: false })
        .await?;
    let mut toll_free = 0;
    for i in 0..200 {
        let from = pool_send(&c, &jwt, profile, &format!("1415555{i:04}")).await?;
        ensure!(from != "12025550199", "a number outside the pool was picked");
        toll_free += usize::from(from == "18885550100");
    }
    // 3:1 → about 50 of 200 from the toll-free number (a fixed seed; bounds wide anyway).
    ensure!((25..=80).contains(&toll_free), "{toll_free} of 200 from the toll-free number");
    // Weight 0 for long codes: only the toll-free number.
    c.patch(&format!("/rest/profile/messaging/{profile}"), &jwt, json!({"long_code_weight": 0}))
        .await?
        .ok(StatusCode::OK)?;
    for i in 0..20 {
        ensure!(pool_send(&c, &jwt, profile, &format!("1415556{i:04}")).await? == "18885550100");
    }
    Ok(())
}

async fn pool_sender_is_sticky(c: Ctx) -> anyhow::Result<()> {
    let (c, _) = messaging_with(&c, RateConfig::UNLIMITED);
    let (account, jwt) = c.signup("sticky@example.test").await?;
    let profile = pool_profile(&c, account, 1, 1, false, true).await?;
    let leases = pool_numbers(&c, account, profile, &[12025550100, 12025550101, 12025550102]).await?;
    let first = pool_send(&c, &jwt, profile, "14155550100").await?;
    for _ in 0..15 {
        ensure!(pool_send(&c, &jwt, profile, "+14155550100").await? == first, "the sender changed");
    }
    // Other destinations spread over the pool (with 3 numbers, 15 picks all alike is 1 in 4.8M).
    let mut others = std::collections::BTreeSet::new();
    for i in 0..15 {
        others.insert(pool_send(&c, &jwt, profile, &format!("1415557{i:04}")).await?);
    }
    ensure!(others.len() > 1, "{others:?}");
    // The sticky number stops being usable (SMS disabled): another one takes over, and sticks.
    let lease = leases.iter().find(|l| l.tn.to_string() == first).context("the first sender")?;
    c.store.update_lease(account, lease.uuid, LeasePatch { sms: Some(false), ..Default::default() }).await?;
    let next = pool_send(&c, &jwt, profile, "14155550100").await?;
    ensure!(next != first, "a number without SMS was picked");
    for _ in 0..5 {
        ensure!(pool_send(&c, &jwt, profile, "14155550100").await? == next, "the new sender changed");
    }
    Ok(())
}

/// Stores `n` messages from `lease` and has them fail at the carrier.
async fn failures(c: &Ctx, account: Uuid, lease: &TnLease, n: usize) -> anyhow::Result<()> {
    for _ in 0..n {
        let new = NewSms {
            direction: SmsDirection::Smso,
            tn_lease: Some(lease.uuid),
            from: lease.tn.to_string(),
            to: "14155550999".into(),
            text: "x".into(),
            encoding: "gsm7".into(),
            parts: 1,
            custom_callback_url: None,
            queue: true,
        };
        c.store.create_sms(account, new).await?;
    }
    let claimed = c.store.claim_sms(n, 60_000, ExpiredClaim::Requeue).await?;
    ensure!(claimed.len() == n, "claimed {}", claimed.len());
    for m in claimed {
        let failed = SmsAttempt::Failed { reason: "submit_sm: ESME_RSUBMITFAIL".into() };
        c.store.record_sms_attempt(m.uuid, &Default::default(), &failed, chrono::Utc::now()).await?;
    }
    Ok(())
}

async fn pool_skips_unhealthy_numbers(c: Ctx) -> anyhow::Result<()> {
    let (c, _) = messaging_with(&c, RateConfig::UNLIMITED);
    let (account, jwt) = c.signup("health@example.test").await?;
    let profile = pool_profile(&c, account, 1, 1, true, false).await?;
    let leases = pool_numbers(&c, account, profile, &[12025550100, 12025550101]).await?;
    // The first number's last messages all failed: unhealthy, never picked.
    failures(&c, account, &leases[0], 6).await?;
    for i in 0..30 {
        ensure!(
            pool_send(&c, &jwt, profile, &format!("1415555{i:04}")).await? == "12025550101",
            "unhealthy picked"
        );
    }
    // Without skip_unhealthy_tns it is picked again.
    let uri = format!("/rest/profile/messaging/{profile}");
    c.patch(&uri, &jwt, json!({"skip_unhealthy_tns": false})).await?.ok(StatusCode::OK)?;
    let mut picked = false;
    for i in 0..30 {
        picked |= pool_send(&c, &jwt, profile, &format!("1415556{i:04}")).await? == "12025550100";
    }
    ensure!(picked, "the unhealthy number is in the pool without skip_unhealthy_tns");
    // Both unhealthy (the second's failures outweigh its 30 queued, unfinished messages): none.
    c.patch(&uri, &jwt, json!({"skip_unhealthy_tns": true})).await?.ok(StatusCode::OK)?;
    let queued = c.store.claim_sms(1000, 60_000, ExpiredClaim::Requeue).await?;
    for m in queued {
        c.store
            .record_sms_attempt(m.uuid, &Default::default(), &SmsAttempt::Sent, chrono::Utc::now())
            .await?;
    }
    failures(&c, account, &leases[1], 6).await?;
    c.post(
        "/rest/sms/pool",
        &jwt,
        json!({"messaging_profile": profile, "to": "14155550100", "message": "hi"}),
    )
    .await?
    .err(StatusCode::UNPROCESSABLE_ENTITY, &["messaging_profile", "no healthy sender in the pool"])?;
    Ok(())
}

async fn pool_refusals_and_other_accounts(c: Ctx) -> anyhow::Result<()> {
    let (c, wake) = messaging_with(&c, RateConfig::UNLIMITED);
    let (a, a_jwt) = c.signup("pa@example.test").await?;
    let (b, b_jwt) = c.signup("pb@example.test").await?;
    let a_profile = pool_profile(&c, a, 1, 1, false, false).await?;
    pool_numbers(&c, a, a_profile, &[12025550100]).await?;
    let b_profile = pool_profile(&c, b, 1, 1, false, false).await?;
    let body = |p: Uuid| json!({"messaging_profile": p, "to": "14155550100", "message": "hi"});
    // B cannot send with A's profile (nor A's numbers): the same refusal as an unknown profile.
    c.post("/rest/sms/pool", &b_jwt, body(a_profile)).await?.err(
        StatusCode::UNPROCESSABLE_ENTITY,
        &[&format!("messaging_profile: messaging profile {a_profile} not found")],
    )?;
    c.post("/rest/sms/pool", &b_jwt, body(Uuid::new_v4()))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["messaging_profile: messaging profile", "not found"])?;
    // B's own profile has no numbers.
    c.post("/rest/sms/pool", &b_jwt, body(b_profile))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["no healthy sender in the pool", "0 numbers"])?;
    // A pool that is not enabled.
    c.patch(&format!("/rest/profile/messaging/{a_profile}"), &a_jwt, json!({"number_pool_enable": false}))
        .await?
        .ok(StatusCode::OK)?;
    c.post("/rest/sms/pool", &a_jwt, body(a_profile))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["number pool", "not enabled", "number_pool_enable"])?;
    c.patch(&format!("/rest/profile/messaging/{a_profile}"), &a_jwt, json!({"number_pool_enable": true}))
        .await?
        .ok(StatusCode::OK)?;
    // The other checks are the same as POST /rest/sms.
    for (bad, needle) in [
        (json!({"messaging_profile": a_profile, "to": "12ab", "message": "hi"}), "to:"),
        (json!({"messaging_profile": a_profile, "to": "14155550100", "message": ""}), "message"),
        (json!({"messaging_profile": "nope", "to": "14155550100", "message": "hi"}), "messaging_profile"),
    ] {
        let answer = c.post("/rest/sms/pool", &a_jwt, bad.clone()).await?;
        ensure!(answer.status.is_client_error(), "{bad}: {answer:?}");
        ensure!(answer.body["message"].as_str().unwrap_or("").contains(needle), "{bad}: {answer:?}");
    }
    ensure!(!told(&wake), "nothing was queued");
    ensure!(c.store.search_sms(b, SmsFilter::default(), ListParams::default()).await?.total == 0);
    ensure!(c.store.search_sms(a, SmsFilter::default(), ListParams::default()).await?.total == 0);
    Ok(())
}

async fn rated_sms_are_charged_and_refused_without_balance(c: Ctx) -> anyhow::Result<()> {
    // US numbers cost 0.0040 a part; the UK is rated for calls only (messages free); France
    // has no rate at all.
    let deck = opentact_rating::Deck::from_csv(
        "prefix,per_minute,per_sms,increment\n1,0.01,0.0040,60/6\n44,0.02,,1/1\n",
    )?;
    let wake = Arc::new(Notify::new());
    let bus = Arc::new(opentact_events::EventBus::new(opentact_events::BusConfig::default()));
    let submitter = Submitter::new(Arc::new(c.store.clone()), wake, RateConfig::default())
        .with_rating(Some(Arc::new(deck)), "USD")
        .with_events(bus.clone());
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_messaging(Arc::new(submitter));
    let c = Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() };
    let (account, jwt, _) = fixture(&c, "rated-sms@example.test", 12025550100, true).await?;
    let (other, other_jwt) = c.signup("rated-other@example.test").await?;
    let mut changes =
        bus.subscribe(account, vec!["account.".to_owned()], None).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut theirs = bus.subscribe(other, Vec::new(), None).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let send = |to: &str, text: String| json!({"tn": 12025550100_i64, "to": to, "message": text});

    // Nothing on the balance: refused with the price, and nothing is stored.
    let refused = c.post("/rest/sms", &jwt, send("14155550100", "hi".into())).await?;
    refused.err(
        StatusCode::PAYMENT_REQUIRED,
        &["insufficient balance: 0.000000 USD left", "(1 part) to +14155550100 costs 0.004000 USD"],
    )?;
    let none = c.post("/rest/sms/search", &jwt, json!({})).await?;
    ensure!(none.ok(StatusCode::OK)?["total"] == 0, "{none:?}");
    let unrated = c.post("/rest/sms", &jwt, send("33142685300", "bonjour".into())).await?;
    unrated.err(StatusCode::PAYMENT_REQUIRED, &["no rate for +33142685300"])?;

    // With 0.01: a two-part message costs 0.008 and is priced in its record.
    c.store.credit(account, 10_000, "payment").await?;
    let two = c.post("/rest/sms", &jwt, send("14155550100", "x".repeat(200))).await?;
    let two = two.ok(StatusCode::CREATED)?.clone();
    ensure!(two["parts"] == 2 && two["price_micros"] == 8_000, "{two}");
    let id = str_of(&two, "uuid")?.to_owned();
    // Announced like a call's charge: the new balance and the ledger's row.
    let changed = tokio::time::timeout(std::time::Duration::from_secs(5), changes.next())
        .await?
        .context("the bus is open")?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    ensure!(
        changed.kind == "account.changed"
            && changed.payload["changed"] == json!(["balance"])
            && changed.payload["balance"] == "0.002000"
            && changed.payload["transaction"]["reference"] == id.as_str()
            && changed.payload["transaction"]["amount_micros"] == -8_000,
        "{changed:?}"
    );
    ensure!(theirs.next().now_or_never().is_none(), "another account hears nothing");
    let shown = c.get(&format!("/rest/sms/{id}"), &jwt).await?;
    ensure!(shown.ok(StatusCode::OK)?["price_micros"] == 8_000, "{shown:?}");
    let balance = c.get("/rest/account/balance", &jwt).await?;
    let balance = balance.ok(StatusCode::OK)?;
    ensure!(
        balance["balance_micros"] == 2_000
            && balance["balance"] == "0.002000"
            && balance["currency"] == "USD",
        "{balance}"
    );
    // 0.002 left: one more part (0.004) is refused; a message to the UK is free.
    let over = c.post("/rest/sms", &jwt, send("14155550100", "again".into())).await?;
    over.err(StatusCode::PAYMENT_REQUIRED, &["insufficient balance: 0.002000 USD left"])?;
    let free = c.post("/rest/sms", &jwt, send("447700900123", "cheers".into())).await?;
    ensure!(free.ok(StatusCode::CREATED)?["price_micros"].is_null(), "{free:?}");

    // The ledger: the credit and the message's charge; filters; another account sees nothing.
    let ledger =
        c.post("/rest/account/transactions/search", &jwt, json!({"order": {"created_on": "DESC"}})).await?;
    let ledger = ledger.ok(StatusCode::OK)?;
    ensure!(ledger["total"] == 2, "{ledger}");
    ensure!(
        ledger["data"][0]["kind"] == "sms"
            && ledger["data"][0]["amount_micros"] == -8_000
            && ledger["data"][0]["reference"] == json!(id)
            && ledger["data"][0]["balance_after_micros"] == 2_000,
        "{ledger}"
    );
    ensure!(
        ledger["data"][1]["kind"] == "credit" && ledger["data"][1]["description"] == "payment",
        "{ledger}"
    );
    let by_kind = c.post("/rest/account/transactions/search", &jwt, json!({"kind": "credit"})).await?;
    ensure!(by_kind.ok(StatusCode::OK)?["total"] == 1, "{by_kind:?}");
    let by_message = c.post("/rest/account/transactions/search", &jwt, json!({"reference": id})).await?;
    ensure!(by_message.ok(StatusCode::OK)?["total"] == 1, "{by_message:?}");
    let bad = c.post("/rest/account/transactions/search", &jwt, json!({"kind": "refund"})).await?;
    bad.err(StatusCode::BAD_REQUEST, &["kind"])?;
    let theirs = c.post("/rest/account/transactions/search", &other_jwt, json!({"reference": id})).await?;
    ensure!(theirs.ok(StatusCode::OK)?["total"] == 0, "another account's ledger: {theirs:?}");
    let their_balance = c.get("/rest/account/balance", &other_jwt).await?;
    ensure!(their_balance.ok(StatusCode::OK)?["balance_micros"] == 0, "{their_balance:?}");
    let their_view = c.get(&format!("/rest/sms/{id}"), &other_jwt).await?;
    their_view.err(StatusCode::NOT_FOUND, &["message"])?;
    Ok(())
}
