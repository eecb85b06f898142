//! Bulk calls through the API: `POST /rest/batch` checks the whole body and hands the stored
//! batch to the launcher; `GET` lists and shows batches with every number's outcome; `DELETE`
//! cancels — on SQLite and PostgreSQL. (The runner placing real calls is tested end to end in
//! the repository's tests/.)

mod support;

use std::sync::Mutex;

use opentact_api::BatchLauncher;
use support::*;

api_test!(
    batches_are_stored_and_launched,
    batch_bodies_are_checked,
    batches_are_the_accounts_own,
    batch_list_pages,
    batches_cancel,
    without_a_runner_nothing_is_stored,
);

const XML: &str = "<Response><Say>Hello from the batch.</Say></Response>";

/// Records the batches it is asked to launch.
#[derive(Debug, Default)]
struct Launches(Mutex<Vec<(Uuid, Uuid)>>);

impl Launches {
    fn taken(&self) -> Vec<(Uuid, Uuid)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl BatchLauncher for Launches {
    fn launch(&self, account: Uuid, batch: Uuid) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push((account, batch));
    }
}

/// The case's context with a launcher that records launches.
fn launching(c: &Ctx) -> (Ctx, Arc<Launches>) {
    let launches = Arc::new(Launches::default());
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_batch_launcher(launches.clone());
    (Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() }, launches)
}

/// An account with what a batch needs: a voice lease, an outbound voice profile, an XML app.
struct Fixture {
    account: Uuid,
    jwt: String,
    lease: TnLease,
    profile: String,
    app: String,
}

async fn fixture(c: &Ctx, email: &str, tn: Tn) -> anyhow::Result<Fixture> {
    let (account, jwt) = c.signup(email).await?;
    c.seed(&[(tn, "DC", true, true, true)]).await?;
    let lease = c.store.lease_tn(account, NewLease { tn, voice: true, sms: false, autorenew: false }).await?;
    let profile =
        c.post("/rest/profile/outbound_voice", &jwt, json!({"name": "bulk", "calls_per_second": 10})).await?;
    let profile = str_of(profile.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    let app = c.post("/rest/sip/app", &jwt, json!({"name": "ivr", "xml": XML})).await?;
    let app = str_of(app.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    Ok(Fixture { account, jwt, lease, profile, app })
}

async fn batches_are_stored_and_launched(c: Ctx) -> anyhow::Result<()> {
    let (c, launches) = launching(&c);
    let f = fixture(&c, "bulk@example.test", 12025550100).await?;
    let created = c
        .post(
            "/rest/batch",
            &f.jwt,
            json!({"tn_lease": f.lease.uuid, "outbound_voice_profile": f.profile, "xml": XML, "timeout": 45,
                   "phones": [14155550100_i64, "+14155550101", "4420718387500"]}),
        )
        .await?;
    let batch = created.ok(StatusCode::CREATED)?.clone();
    let id: Uuid = str_of(&batch, "uuid")?.parse()?;
    ensure!(
        batch["state"] == "queued"
            && batch["total"] == 3
            && batch["queued"] == 3
            && batch["completed"] == 0
            && batch["no_answer"] == 0
            && batch["from_tn"] == 12025550100_i64
            && batch["tn_lease"] == json!(f.lease.uuid)
            && batch["outbound_voice_profile"] == json!(f.profile)
            && batch["xml"] == XML
            && batch["sip_control_app"].is_null()
            && batch["ring_timeout_secs"] == 45,
        "{batch}"
    );
    ensure!(launches.taken() == vec![(f.account, id)], "launched once, after it was stored");

    // The detail: counts and every number, digits only, in list order.
    let detail = c.get(&format!("/rest/batch/{id}"), &f.jwt).await?;
    let detail = detail.ok(StatusCode::OK)?;
    ensure!(detail["total"] == 3 && detail["state"] == "queued", "{detail}");
    let items = detail["items"].as_array().context("items")?;
    let phones: Vec<&str> = items.iter().filter_map(|i| i["phone"].as_str()).collect();
    ensure!(phones == ["14155550100", "14155550101", "4420718387500"], "{detail}");
    ensure!(
        items.iter().enumerate().all(|(i, item)| item["position"] == i
            && item["state"] == "queued"
            && item["call"].is_null()
            && item["q850_cause"].is_null()
            && item["started_on"].is_null()
            && item.get("batch").is_none()),
        "{detail}"
    );

    // The runner's progress shows in the counts and the items.
    let call = Uuid::new_v4();
    let at = now();
    c.store
        .update_batch_item(
            id,
            1,
            BatchItemUpdate {
                call: Some(call),
                q850_cause: Some(17),
                reason: Some("user busy".into()),
                started_on: Some(at),
                ended_on: Some(at),
                ..BatchItemUpdate::state(BatchItemState::Busy)
            },
        )
        .await?;
    c.store.update_batch_item(id, 2, BatchItemUpdate::state(BatchItemState::NoAnswer)).await?;
    c.store.set_batch_state(id, BatchState::Running).await?;
    let detail = c.get(&format!("/rest/batch/{id}"), &f.jwt).await?;
    let detail = detail.ok(StatusCode::OK)?;
    ensure!(
        detail["state"] == "running"
            && detail["queued"] == 1
            && detail["busy"] == 1
            && detail["no_answer"] == 1,
        "{detail}"
    );
    let busy = &detail["items"][1];
    ensure!(
        busy["state"] == "busy"
            && busy["call"] == json!(call)
            && busy["q850_cause"] == 17
            && busy["reason"] == "user busy"
            && busy["started_on"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{busy}"
    );
    ensure!(detail["items"][2]["state"] == "no_answer", "{detail}");
    let counts = c.get(&format!("/rest/batch/{id}?items=false"), &f.jwt).await?;
    let counts = counts.ok(StatusCode::OK)?;
    ensure!(counts["busy"] == 1 && counts.get("items").is_none(), "the counts alone: {counts}");
    c.get(&format!("/rest/batch/{id}?items=maybe"), &f.jwt)
        .await?
        .err(StatusCode::BAD_REQUEST, &["items"])?;

    // An app instead of a document; the timeout defaults to 30 s.
    let by_app = c
        .post(
            "/rest/batch",
            &f.jwt,
            json!({"tn_lease": f.lease.uuid, "sip_control_app": f.app, "phones": ["12025550199"]}),
        )
        .await?;
    let by_app = by_app.ok(StatusCode::CREATED)?;
    ensure!(
        by_app["sip_control_app"] == json!(f.app)
            && by_app["xml"].is_null()
            && by_app["outbound_voice_profile"].is_null()
            && by_app["ring_timeout_secs"] == 30,
        "{by_app}"
    );
    ensure!(launches.taken().len() == 1);

    // The largest batch: 10 000 numbers, stored in one request.
    let many: Vec<i64> = (0..10_000).map(|i| 12_125_550_000 + i).collect();
    let big =
        c.post("/rest/batch", &f.jwt, json!({"tn_lease": f.lease.uuid, "xml": XML, "phones": many})).await?;
    let big = big.ok(StatusCode::CREATED)?;
    ensure!(big["total"] == 10_000 && big["queued"] == 10_000, "{big}");
    let id: Uuid = str_of(big, "uuid")?.parse()?;
    let items = c.store.batch_items(id).await?;
    ensure!(items.len() == 10_000 && items[9_999].phone == "12125559999" && items[9_999].position == 9_999);
    Ok(())
}

async fn batch_bodies_are_checked(c: Ctx) -> anyhow::Result<()> {
    let (c, launches) = launching(&c);
    let f = fixture(&c, "bulk@example.test", 12025550100).await?;
    // A lease without voice.
    c.seed(&[(12025550101, "DC", true, true, true)]).await?;
    let sms_only = c
        .store
        .lease_tn(f.account, NewLease { tn: 12025550101, voice: false, sms: true, autorenew: false })
        .await?;
    // A released lease.
    c.seed(&[(12025550102, "DC", true, true, true)]).await?;
    let released = c
        .store
        .lease_tn(f.account, NewLease { tn: 12025550102, voice: true, sms: false, autorenew: false })
        .await?;
    c.store.release_lease(f.account, released.uuid).await?;

    let lease = json!(f.lease.uuid);
    let ok = || json!({"tn_lease": lease, "xml": XML, "phones": [12025550111_i64]});
    let with = |key: &str, value: Value| {
        let mut body = ok();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = ok();
        body.as_object_mut().map(|o| o.remove(key));
        body
    };
    let too_many: Vec<i64> = (0..10_001).map(|i| 12_125_550_000 + i).collect();
    let missing = Uuid::new_v4();
    let cases: Vec<(Value, StatusCode, Vec<String>)> = vec![
        (
            with("phones", json!([])),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["phones: give 1 to 10000 numbers".into()],
        ),
        (with("phones", json!(too_many)), StatusCode::UNPROCESSABLE_ENTITY, vec!["got 10001".into()]),
        (
            with("phones", json!([12025550111_i64, "+12025550112", "202-555-0113"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["phones[2]: \"202-555-0113\" is not a telephone number".into(), "7 to 15 digits".into()],
        ),
        (with("phones", json!([123456])), StatusCode::UNPROCESSABLE_ENTITY, vec!["phones[0]: 123456".into()]),
        (
            with("phones", json!(["12025550111", "1234567890123456"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["phones[1]".into()],
        ),
        (with("phones", json!([12025550111_i64, true])), StatusCode::BAD_REQUEST, vec!["phones[1]".into()]),
        (without("phones"), StatusCode::BAD_REQUEST, vec!["missing field `phones`".into()]),
        (without("tn_lease"), StatusCode::BAD_REQUEST, vec!["missing field `tn_lease`".into()]),
        (with("tn_lease", json!("nope")), StatusCode::BAD_REQUEST, vec!["tn_lease".into()]),
        (with("timout", json!(5)), StatusCode::BAD_REQUEST, vec!["unknown field `timout`".into()]),
        (
            without("xml"),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["xml: give the flow: xml (a document) or sip_control_app".into()],
        ),
        (
            with("sip_control_app", json!(f.app)),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["give either xml or sip_control_app, not both".into()],
        ),
        (
            with("xml", json!("<Response><Say>unclosed</Response>")),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["xml: ".into(), "line 1".into()],
        ),
        (
            with("xml", json!("<Response><Dance/></Response>")),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["xml: ".into()],
        ),
        (
            with("xml", json!(format!("<Response><Say>{}</Say></Response>", "a".repeat(300 * 1024)))),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["xml: at most 262144 bytes".into()],
        ),
        (
            with("timeout", json!(4)),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["timeout: must be 5 to 120 seconds (got 4)".into()],
        ),
        (
            with("timeout", json!(121)),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["timeout: must be 5 to 120".into()],
        ),
        (with("timeout", json!("30")), StatusCode::BAD_REQUEST, vec!["timeout".into()]),
        (
            with("tn_lease", json!(missing)),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![format!("tn_lease: tn lease {missing} not found")],
        ),
        (
            with("tn_lease", json!(released.uuid)),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![format!("tn_lease: tn lease {} not found", released.uuid)],
        ),
        (
            with("tn_lease", json!(sms_only.uuid)),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["tn_lease: the number 12025550101 has no voice".into(), "\"voice\": true".into()],
        ),
        (
            with("outbound_voice_profile", json!(missing)),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![format!("outbound_voice_profile: outbound voice profile {missing} not found")],
        ),
        (
            {
                let mut body = without("xml");
                body["sip_control_app"] = json!(missing);
                body
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![format!("sip_control_app: sip control app {missing} not found")],
        ),
    ];
    for (body, status, needles) in cases {
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        let shown = body.to_string().chars().take(200).collect::<String>();
        c.post("/rest/batch", &f.jwt, body).await?.err(status, &needles).with_context(|| shown)?;
    }
    c.raw("POST", "/rest/batch", Auth::Bearer(&f.jwt), Some("text/plain"), "{}")
        .await?
        .err(StatusCode::BAD_REQUEST, &["Content-Type"])?;
    c.call("POST", "/rest/batch", Auth::None, Some(ok())).await?.err(StatusCode::UNAUTHORIZED, &[])?;
    ensure!(launches.taken().is_empty(), "nothing launched");
    ensure!(c.store.list_batches(f.account, 50, 0).await?.total == 0, "nothing stored");
    // And the body that was being varied is fine.
    c.post("/rest/batch", &f.jwt, ok()).await?.ok(StatusCode::CREATED)?;
    Ok(())
}

async fn batches_are_the_accounts_own(c: Ctx) -> anyhow::Result<()> {
    let (c, launches) = launching(&c);
    let a = fixture(&c, "a@example.test", 12025550100).await?;
    let b = fixture(&c, "b@example.test", 12025550200).await?;
    let created = c
        .post(
            "/rest/batch",
            &a.jwt,
            json!({"tn_lease": a.lease.uuid, "xml": XML, "phones": [12025550111_i64]}),
        )
        .await?;
    let id = str_of(created.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    let uri = format!("/rest/batch/{id}");

    // B cannot see or cancel A's batch: the same 404 as a batch that does not exist.
    c.get(&uri, &b.jwt).await?.err(StatusCode::NOT_FOUND, &[&format!("batch {id} not found")])?;
    c.delete(&uri, &b.jwt).await?.err(StatusCode::NOT_FOUND, &[&format!("batch {id} not found")])?;
    let list = c.get("/rest/batch", &b.jwt).await?;
    ensure!(list.ok(StatusCode::OK)?["total"] == 0, "{list:?}");
    let unknown = Uuid::new_v4();
    c.get(&format!("/rest/batch/{unknown}"), &a.jwt).await?.err(StatusCode::NOT_FOUND, &["batch"])?;
    c.delete(&format!("/rest/batch/{unknown}"), &a.jwt).await?.err(StatusCode::NOT_FOUND, &["batch"])?;
    c.get("/rest/batch/not-a-uuid", &a.jwt).await?.err(StatusCode::BAD_REQUEST, &["not a UUID"])?;

    // Nor use A's lease, profile or app: like ids that do not exist, named by their field.
    let cases = [
        (json!({"tn_lease": a.lease.uuid, "xml": XML, "phones": [12025550111_i64]}), "tn_lease: tn lease"),
        (
            json!({"tn_lease": b.lease.uuid, "outbound_voice_profile": a.profile, "xml": XML,
                   "phones": [12025550111_i64]}),
            "outbound_voice_profile: outbound voice profile",
        ),
        (
            json!({"tn_lease": b.lease.uuid, "sip_control_app": a.app, "phones": [12025550111_i64]}),
            "sip_control_app: sip control app",
        ),
    ];
    for (body, needle) in cases {
        c.post("/rest/batch", &b.jwt, body.clone())
            .await?
            .err(StatusCode::UNPROCESSABLE_ENTITY, &[needle, "not found"])
            .with_context(|| body.to_string())?;
    }
    ensure!(launches.taken().len() == 1, "only A's batch was launched");
    // A's batch is untouched.
    let batch = c.get(&uri, &a.jwt).await?;
    ensure!(batch.ok(StatusCode::OK)?["state"] == "queued", "{batch:?}");
    Ok(())
}

async fn batch_list_pages(c: Ctx) -> anyhow::Result<()> {
    let (c, _) = launching(&c);
    let f = fixture(&c, "bulk@example.test", 12025550100).await?;
    let mut ids = Vec::new();
    for i in 0..5 {
        let phones: Vec<i64> = (0..=i).map(|n| 12_025_550_110 + n).collect();
        let created = c
            .post("/rest/batch", &f.jwt, json!({"tn_lease": f.lease.uuid, "xml": XML, "phones": phones}))
            .await?;
        ids.push(str_of(created.ok(StatusCode::CREATED)?, "uuid")?.to_owned());
        // Distinct created_on values, so the order is by time, not only by the id tie-break.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let page = c.get("/rest/batch?take=2&skip=1", &f.jwt).await?;
    let page = page.ok(StatusCode::OK)?;
    ensure!(page["take"] == 2 && page["skip"] == 1 && page["total"] == 5, "{page}");
    let data = page["data"].as_array().context("data")?;
    let listed: Vec<&str> = data.iter().filter_map(|b| b["uuid"].as_str()).collect();
    ensure!(listed == [ids[1].as_str(), ids[2].as_str()], "oldest first: {page}");
    ensure!(data[0]["total"] == 2 && data[1]["total"] == 3 && data[1]["queued"] == 3, "with counts: {page}");
    ensure!(data.iter().all(|b| b.get("items").is_none()), "a list has no items: {page}");
    let all = c.get("/rest/batch", &f.jwt).await?;
    ensure!(all.ok(StatusCode::OK)?["data"].as_array().is_some_and(|d| d.len() == 5), "{all:?}");
    c.get("/rest/batch?take=1001", &f.jwt).await?.err(StatusCode::UNPROCESSABLE_ENTITY, &["take"])?;
    c.get("/rest/batch?take=x", &f.jwt).await?.err(StatusCode::BAD_REQUEST, &["take"])?;
    Ok(())
}

async fn batches_cancel(c: Ctx) -> anyhow::Result<()> {
    let (c, _) = launching(&c);
    let f = fixture(&c, "bulk@example.test", 12025550100).await?;
    let create = || {
        c.post(
            "/rest/batch",
            &f.jwt,
            json!({"tn_lease": f.lease.uuid, "xml": XML, "phones": [12025550111_i64]}),
        )
    };
    let running: Uuid = str_of(create().await?.ok(StatusCode::CREATED)?, "uuid")?.parse()?;
    c.store.set_batch_state(running, BatchState::Running).await?;
    let cancelled = c.delete(&format!("/rest/batch/{running}"), &f.jwt).await?;
    ensure!(cancelled.ok(StatusCode::OK)?["state"] == "cancelled", "{cancelled:?}");
    // Again: the same answer. And the runner finishing afterwards does not undo it.
    let again = c.delete(&format!("/rest/batch/{running}"), &f.jwt).await?;
    ensure!(again.ok(StatusCode::OK)?["state"] == "cancelled", "{again:?}");
    c.store.set_batch_state(running, BatchState::Completed).await?;
    let shown = c.get(&format!("/rest/batch/{running}"), &f.jwt).await?;
    ensure!(shown.ok(StatusCode::OK)?["state"] == "cancelled", "{shown:?}");

    let queued: Uuid = str_of(create().await?.ok(StatusCode::CREATED)?, "uuid")?.parse()?;
    let cancelled = c.delete(&format!("/rest/batch/{queued}"), &f.jwt).await?;
    ensure!(cancelled.ok(StatusCode::OK)?["state"] == "cancelled", "a queued batch too: {cancelled:?}");
    ensure!(c.store.unfinished_batches().await?.is_empty(), "the runner has nothing left to do");

    let completed: Uuid = str_of(create().await?.ok(StatusCode::CREATED)?, "uuid")?.parse()?;
    c.store.set_batch_state(completed, BatchState::Completed).await?;
    c.delete(&format!("/rest/batch/{completed}"), &f.jwt)
        .await?
        .err(StatusCode::CONFLICT, &[&format!("batch {completed} is completed"), "nothing to cancel"])?;
    let shown = c.get(&format!("/rest/batch/{completed}"), &f.jwt).await?;
    ensure!(shown.ok(StatusCode::OK)?["state"] == "completed", "{shown:?}");
    Ok(())
}

async fn without_a_runner_nothing_is_stored(c: Ctx) -> anyhow::Result<()> {
    // The harness's API has no launcher, like a server that does not place calls.
    let f = fixture(&c, "bulk@example.test", 12025550100).await?;
    let body = json!({"tn_lease": f.lease.uuid, "xml": XML, "phones": [12025550111_i64]});
    c.post("/rest/batch", &f.jwt, body)
        .await?
        .err(StatusCode::SERVICE_UNAVAILABLE, &["outbound calling is not running"])?;
    ensure!(c.store.list_batches(f.account, 50, 0).await?.total == 0, "nothing stored");
    // Mistakes are still reported as such.
    c.post("/rest/batch", &f.jwt, json!({"tn_lease": f.lease.uuid, "xml": XML, "phones": []}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["phones"])?;
    let list = c.get("/rest/batch", &f.jwt).await?;
    ensure!(list.ok(StatusCode::OK)?["total"] == 0, "{list:?}");
    Ok(())
}
