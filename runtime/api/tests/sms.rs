//! SMS through the API: `POST /rest/sms` checks the number, the destination and the text and
//! stores the message queued before answering 201 (and pokes the sender); `GET /rest/sms/{uuid}`
//! shows its history; `POST /rest/sms/search` is the SMS log; `POST /rest/lease/tn/sms`
//! toggles SMS on numbers, all checked first — on SQLite and PostgreSQL, with another account's
//! objects reading as absent. (The sender and the SMSC are tested end to end in tests/sms.rs.)

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use opentact_api::{Messaging, SmsPlan};
use support::*;

api_test!(
    sms_is_stored_queued_and_the_sender_told,
    sms_refusals_are_clear,
    sms_are_the_accounts_own,
    sms_toggle_checks_everything_first,
    without_messaging_nothing_is_stored,
);

/// Plans like GSM-7 (160 characters, then 153 a part) and counts the pokes.
#[derive(Debug, Default)]
struct Pokes(AtomicUsize);

impl Messaging for Pokes {
    fn plan(&self, text: &str) -> Result<SmsPlan, String> {
        let n = text.chars().count();
        if n == 0 || n > 918 {
            return Err(format!("the message has {n} characters; give 1 to 918"));
        }
        Ok(SmsPlan { encoding: "gsm7".into(), parts: if n <= 160 { 1 } else { n.div_ceil(153) as u32 } })
    }
    fn queued(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn messaging(c: &Ctx) -> (Ctx, Arc<Pokes>) {
    let pokes = Arc::new(Pokes::default());
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_messaging(pokes.clone());
    (Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() }, pokes)
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
    ensure!(pokes.0.load(Ordering::SeqCst) == 1, "the sender is told once");
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
    ensure!(pokes.0.load(Ordering::SeqCst) == 0, "nothing was queued");
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
