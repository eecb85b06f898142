//! 10DLC through the API: brands and campaigns are registered with what a campaign registry
//! asks (every refusal a 422 naming the field), numbers are assigned to a campaign and taken
//! out, the operator's verdict shows in the campaign — on SQLite and PostgreSQL, with another
//! account's brands, campaigns and numbers reading as absent.

mod support;

use support::*;

api_test!(
    brands_are_registered_with_what_a_registry_asks,
    campaigns_belong_to_a_brand_and_start_pending,
    numbers_join_one_campaign,
    tendlc_objects_are_the_accounts_own,
    us_long_codes_send_only_in_an_approved_campaign,
);

pub fn brand_body() -> Value {
    json!({
        "legal_name": "Acme Widgets, Inc.",
        "dba_name": "Acme",
        "entity_type": "private_profit",
        "ein": "123456789",
        "vertical": "technology",
        "website": "https://acme.example.com",
        "street": "1600 Pennsylvania Ave NW",
        "city": "Washington",
        "state": "dc",
        "postal_code": "20500",
        "contact_name": "Ada Ops",
        "contact_email": "ops@acme.example.com",
        "contact_phone": "+1 (202) 555-0199"
    })
}

pub fn campaign_body(brand: &str) -> Value {
    json!({
        "brand": brand,
        "use_case": "ACCOUNT_NOTIFICATION",
        "description": "Order confirmations and shipping updates for customers of the Acme web shop.",
        "message_flow": "Customers tick an unchecked box 'Text me order updates' at checkout on acme.example.com.",
        "sample_messages": [
            "Acme: your order 1234 has shipped. Reply STOP to opt out.",
            "Acme: your order 1234 was delivered. Reply HELP for help, STOP to opt out."
        ],
        "opt_in_message": "Acme: you will get order updates. Msg&data rates may apply. Reply STOP to opt out.",
        "opt_out_message": "Acme: you are unsubscribed and will get no more messages.",
        "help_message": "Acme: order updates. Call 12025550199 or write ops@acme.example.com."
    })
}

/// An account with a brand, a campaign and leases of `tns` (with SMS): the account, its JWT,
/// the brand's and the campaign's uuids, and the leases.
async fn fixture(
    c: &Ctx,
    email: &str,
    tns: &[Tn],
) -> anyhow::Result<(Uuid, String, String, String, Vec<TnLease>)> {
    let (account, jwt) = c.signup(email).await?;
    let rows: Vec<(Tn, &str, bool, bool, bool)> =
        tns.iter().map(|&tn| (tn, "DC", true, true, true)).collect();
    c.seed(&rows).await?;
    let mut leases = Vec::new();
    for &tn in tns {
        leases.push(
            c.store.lease_tn(account, NewLease { tn, voice: true, sms: true, autorenew: false }).await?,
        );
    }
    let brand = c.post("/rest/10dlc/brand", &jwt, brand_body()).await?;
    let brand = str_of(brand.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    let campaign = c.post("/rest/10dlc/campaign", &jwt, campaign_body(&brand)).await?;
    let campaign = str_of(campaign.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    Ok((account, jwt, brand, campaign, leases))
}

async fn brands_are_registered_with_what_a_registry_asks(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("brand@example.test").await?;
    let created = c.post("/rest/10dlc/brand", &jwt, brand_body()).await?;
    let b = created.ok(StatusCode::CREATED)?.clone();
    // Normalised as the registry writes them.
    ensure!(
        b["legal_name"] == "Acme Widgets, Inc."
            && b["entity_type"] == "private_profit"
            && b["ein"] == "12-3456789"
            && b["country"] == "US"
            && b["vertical"] == "TECHNOLOGY"
            && b["state"] == "DC"
            && b["contact_phone"] == "12025550199",
        "{b}"
    );
    let id = str_of(&b, "uuid")?;
    let got = c.get(&format!("/rest/10dlc/brand/{id}"), &jwt).await?;
    ensure!(got.ok(StatusCode::OK)? == &b, "{got:?}");
    let list = c.get("/rest/10dlc/brand", &jwt).await?;
    let list = list.ok(StatusCode::OK)?;
    ensure!(list["total"] == 1 && list["data"][0]["uuid"] == b["uuid"], "{list}");

    // Every refusal names its field.
    let with = |key: &str, value: Value| {
        let mut body = brand_body();
        body[key] = value;
        body
    };
    let cases = [
        (with("legal_name", json!("  ")), "legal_name: must be 1 to 255"),
        (with("entity_type", json!("llc")), "entity_type: \"llc\" is not one of private_profit"),
        (with("ein", json!("12-345")), "ein: \"12-345\" is not a US EIN"),
        (with("country", json!("USA")), "country:"),
        (with("vertical", json!("SPACE")), "vertical: \"SPACE\" is not one of AGRICULTURE"),
        (with("website", json!("ftp://acme.example.com")), "website:"),
        (with("website", json!("http://localhost")), "website:"),
        (with("state", json!("Washington")), "state:"),
        (with("postal_code", json!("2050")), "postal_code: \"2050\" is not a US ZIP code"),
        (with("contact_email", json!("ops-at-acme")), "contact_email:"),
        (with("contact_phone", json!("call us")), "contact_phone:"),
    ];
    for (body, needle) in cases {
        c.post("/rest/10dlc/brand", &jwt, body.clone())
            .await?
            .err(StatusCode::UNPROCESSABLE_ENTITY, &[needle])
            .with_context(|| body.to_string())?;
    }
    // A missing field or an unknown one is a body the API cannot read (400).
    let mut missing = brand_body();
    missing.as_object_mut().context("object")?.remove("ein");
    c.post("/rest/10dlc/brand", &jwt, missing).await?.err(StatusCode::BAD_REQUEST, &["ein"])?;
    c.post("/rest/10dlc/brand", &jwt, with("nickname", json!("x")))
        .await?
        .err(StatusCode::BAD_REQUEST, &["nickname"])?;
    // Another country's tax id is kept as given, with its own address rules.
    let mut foreign = with("country", json!("ca"));
    foreign["ein"] = json!("123456789RC0001");
    foreign["state"] = json!("Ontario");
    foreign["postal_code"] = json!("K1A 0B1");
    let ca = c.post("/rest/10dlc/brand", &jwt, foreign).await?;
    let ca = ca.ok(StatusCode::CREATED)?;
    ensure!(ca["country"] == "CA" && ca["ein"] == "123456789RC0001", "{ca}");
    let list = c.get("/rest/10dlc/brand?take=1", &jwt).await?;
    ensure!(list.ok(StatusCode::OK)?["total"] == 2, "{list:?}");
    Ok(())
}

async fn campaigns_belong_to_a_brand_and_start_pending(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt, brand, campaign, _) = fixture(&c, "camp@example.test", &[]).await?;
    let got = c.get(&format!("/rest/10dlc/campaign/{campaign}"), &jwt).await?;
    let got = got.ok(StatusCode::OK)?.clone();
    ensure!(
        got["brand"] == json!(brand)
            && got["state"] == "pending"
            && got["reason"].is_null()
            && got["decided_on"].is_null()
            && got["use_case"] == "ACCOUNT_NOTIFICATION"
            && got["sample_messages"].as_array().map(Vec::len) == Some(2)
            && got["numbers"] == json!([]),
        "{got}"
    );
    let with = |key: &str, value: Value| {
        let mut body = campaign_body(&brand);
        body[key] = value;
        body
    };
    let unknown = Uuid::new_v4();
    let cases = [
        (with("brand", json!(unknown)), format!("brand: brand {unknown} not found")),
        (with("use_case", json!("SPAM")), "use_case: \"SPAM\" is not one of 2FA".into()),
        (with("description", json!("Updates.")), "description: must be 40 to 4096 characters (got 8)".into()),
        (with("message_flow", json!("web")), "message_flow: must be 40 to 4096".into()),
        (
            with("sample_messages", json!(["Acme: your order has shipped."])),
            "sample_messages: give 2 to 5".into(),
        ),
        (
            with("sample_messages", json!(["Acme: your order has shipped.", "hi"])),
            "sample_messages[1]: must be 20 to 1024".into(),
        ),
        (
            with(
                "sample_messages",
                json!(["Acme: track it at https://acme.example.com/t/1", "Acme: delivered, thanks!"]),
            ),
            "embedded_links: sample_messages[0] has a link".into(),
        ),
        (with("opt_out_message", json!("bye")), "opt_out_message: must be 20 to 320".into()),
        (with("help_message", json!("")), "help_message:".into()),
    ];
    for (body, needle) in cases {
        c.post("/rest/10dlc/campaign", &jwt, body.clone())
            .await?
            .err(StatusCode::UNPROCESSABLE_ENTITY, &[&needle])
            .with_context(|| body.to_string())?;
    }
    // Links are fine when declared.
    let mut linked = with(
        "sample_messages",
        json!(["Acme: track it at https://acme.example.com/t/1", "Acme: delivered, thanks!"]),
    );
    linked["embedded_links"] = json!(true);
    let linked = c.post("/rest/10dlc/campaign", &jwt, linked).await?;
    let linked_id = str_of(linked.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    // The list, filtered by state and brand.
    let all = c.get("/rest/10dlc/campaign", &jwt).await?;
    ensure!(all.ok(StatusCode::OK)?["total"] == 2, "{all:?}");
    let pending = c.get(&format!("/rest/10dlc/campaign?state=pending&brand={brand}"), &jwt).await?;
    ensure!(pending.ok(StatusCode::OK)?["total"] == 2, "{pending:?}");
    // The operator's verdict (opentact admin 10dlc works on the store) shows in the campaign.
    c.store
        .decide_campaign(linked_id.parse()?, CampaignDecision::Reject { reason: "opt-in not shown".into() })
        .await?;
    let approved = c.get("/rest/10dlc/campaign?state=rejected", &jwt).await?;
    let approved = approved.ok(StatusCode::OK)?;
    ensure!(
        approved["total"] == 1
            && approved["data"][0]["uuid"] == json!(linked_id)
            && approved["data"][0]["reason"] == "opt-in not shown"
            && approved["data"][0]["decided_on"].is_string(),
        "{approved}"
    );
    c.get("/rest/10dlc/campaign?state=maybe", &jwt)
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["state:"])?;
    Ok(())
}

async fn numbers_join_one_campaign(c: Ctx) -> anyhow::Result<()> {
    let tns = [12025550100, 12025550101, 18005550100, 12025550102];
    let (account, jwt, brand, campaign, leases) = fixture(&c, "n@example.test", &tns).await?;
    let uri = format!("/rest/10dlc/campaign/{campaign}/numbers");
    // By lease id and by number (with +).
    let done = c.post(&uri, &jwt, json!({"add": [leases[0].uuid, "+12025550101"]})).await?;
    let done = done.ok(StatusCode::OK)?.clone();
    ensure!(
        done["numbers"]
            == json!([
                {"tn": 12025550100_i64, "tn_lease": leases[0].uuid},
                {"tn": 12025550101_i64, "tn_lease": leases[1].uuid},
            ]),
        "{done}"
    );
    let campaign_id: Uuid = campaign.parse()?;
    let of = c.store.campaign_of_lease(account, leases[0].uuid).await?.context("assigned")?;
    ensure!(of.uuid == campaign_id);
    // Refusals, each checked before any change.
    let other = c.post("/rest/10dlc/campaign", &jwt, campaign_body(&brand)).await?;
    let other = str_of(other.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    let other_uri = format!("/rest/10dlc/campaign/{other}/numbers");
    let cases = [
        (
            json!({"add": [12025550102_i64, 12025550100_i64]}),
            other_uri.as_str(),
            format!("add[1]: the number 12025550100 is already in campaign {campaign}"),
        ),
        (
            json!({"add": [12025550100_i64]}),
            uri.as_str(),
            "add[0]: the number 12025550100 is already in this campaign".into(),
        ),
        (json!({"add": [18005550100_i64]}), uri.as_str(), "add[0]: 18005550100 is toll-free".into()),
        (
            json!({"add": [12025550999_i64]}),
            uri.as_str(),
            "add[0]: the number 12025550999 is not leased by this account".into(),
        ),
        (
            json!({"add": [12025550102_i64, leases[3].uuid]}),
            uri.as_str(),
            "add[1]: the number 12025550102 is named twice".into(),
        ),
        (
            json!({"remove": [12025550102_i64]}),
            uri.as_str(),
            format!("remove[0]: the number 12025550102 is not in campaign {campaign}"),
        ),
        (json!({}), uri.as_str(), "add: name 1 to 1000 numbers".into()),
    ];
    for (body, at, needle) in cases {
        c.post(at, &jwt, body.clone())
            .await?
            .err(StatusCode::UNPROCESSABLE_ENTITY, &[&needle])
            .with_context(|| body.to_string())?;
    }
    ensure!(c.store.campaign_of_lease(account, leases[3].uuid).await?.is_none(), "nothing changed");
    // Move a number: out of one campaign, into the other.
    let out = c.post(&uri, &jwt, json!({"remove": [12025550101_i64]})).await?;
    ensure!(out.ok(StatusCode::OK)?["numbers"].as_array().map(Vec::len) == Some(1), "{out:?}");
    let moved = c.post(&other_uri, &jwt, json!({"add": [leases[1].uuid, 12025550102_i64]})).await?;
    ensure!(moved.ok(StatusCode::OK)?["numbers"].as_array().map(Vec::len) == Some(2), "{moved:?}");
    // A rejected campaign takes no numbers.
    c.store
        .decide_campaign(other.parse()?, CampaignDecision::Reject { reason: "vague description".into() })
        .await?;
    c.post(&other_uri, &jwt, json!({"add": [leases[0].uuid]}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["add:", "was rejected (vague description)"])?;
    // But gives them up.
    let freed = c.post(&other_uri, &jwt, json!({"remove": [12025550102_i64]})).await?;
    ensure!(freed.ok(StatusCode::OK)?["numbers"].as_array().map(Vec::len) == Some(1), "{freed:?}");
    Ok(())
}

async fn tendlc_objects_are_the_accounts_own(c: Ctx) -> anyhow::Result<()> {
    let (_, a, a_brand, a_campaign, a_leases) = fixture(&c, "a@example.test", &[12025550100]).await?;
    let (b_account, b, b_brand, b_campaign, _) = fixture(&c, "b@example.test", &[12025550200]).await?;
    c.post(&format!("/rest/10dlc/campaign/{a_campaign}/numbers"), &a, json!({"add": [12025550100_i64]}))
        .await?
        .ok(StatusCode::OK)?;
    // B cannot read A's brand or campaign, or change A's campaign's numbers: the same 404 as
    // objects that do not exist.
    let unknown = Uuid::new_v4();
    for (path, kind, id) in [
        (format!("/rest/10dlc/brand/{a_brand}"), "brand", a_brand.clone()),
        (format!("/rest/10dlc/brand/{unknown}"), "brand", unknown.to_string()),
        (format!("/rest/10dlc/campaign/{a_campaign}"), "campaign", a_campaign.clone()),
        (format!("/rest/10dlc/campaign/{unknown}"), "campaign", unknown.to_string()),
    ] {
        c.get(&path, &b).await?.err(StatusCode::NOT_FOUND, &[&format!("{kind} {id} not found")])?;
    }
    for id in [&a_campaign, &unknown.to_string()] {
        c.post(&format!("/rest/10dlc/campaign/{id}/numbers"), &b, json!({"add": [12025550200_i64]}))
            .await?
            .err(StatusCode::NOT_FOUND, &[&format!("campaign {id} not found")])?;
    }
    c.get("/rest/10dlc/brand/not-a-uuid", &b).await?.err(StatusCode::BAD_REQUEST, &["not a UUID"])?;
    // Lists hold only B's own.
    let brands = c.get("/rest/10dlc/brand", &b).await?;
    let brands = brands.ok(StatusCode::OK)?;
    ensure!(brands["total"] == 1 && brands["data"][0]["uuid"] == json!(b_brand), "{brands}");
    let campaigns = c.get("/rest/10dlc/campaign", &b).await?;
    let campaigns = campaigns.ok(StatusCode::OK)?;
    ensure!(campaigns["total"] == 1 && campaigns["data"][0]["uuid"] == json!(b_campaign), "{campaigns}");
    let filtered = c.get(&format!("/rest/10dlc/campaign?brand={a_brand}"), &b).await?;
    ensure!(filtered.ok(StatusCode::OK)?["total"] == 0, "{filtered:?}");
    // B's campaign cannot be of A's brand, nor take A's number (by number or lease id).
    c.post("/rest/10dlc/campaign", &b, campaign_body(&a_brand))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &[&format!("brand: brand {a_brand} not found")])?;
    let b_uri = format!("/rest/10dlc/campaign/{b_campaign}/numbers");
    c.post(&b_uri, &b, json!({"add": [12025550100_i64]})).await?.err(
        StatusCode::UNPROCESSABLE_ENTITY,
        &["add[0]: the number 12025550100 is not leased by this account"],
    )?;
    c.post(&b_uri, &b, json!({"add": [a_leases[0].uuid]})).await?.err(
        StatusCode::UNPROCESSABLE_ENTITY,
        &[&format!("add[0]: tn lease {} not found", a_leases[0].uuid)],
    )?;
    c.post(&b_uri, &b, json!({"remove": [a_leases[0].uuid]}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["remove[0]:"])?;
    // The store answers the same: another account's campaign is absent.
    ensure!(c.store.get_campaign(b_account, a_campaign.parse()?).await?.is_none());
    ensure!(c.store.campaign_of_lease(b_account, a_leases[0].uuid).await?.is_none());
    // A still has its number in its campaign.
    let mine = c.get(&format!("/rest/10dlc/campaign/{a_campaign}"), &a).await?;
    ensure!(mine.ok(StatusCode::OK)?["numbers"][0]["tn"] == 12025550100_i64, "{mine:?}");
    Ok(())
}

/// The API with the messaging capability that enforces 10DLC, as the server wires it by default.
fn enforcing(c: &Ctx) -> Ctx {
    use opentact_messaging::submit::Submitter;
    let wake = Arc::new(tokio::sync::Notify::new());
    let submitter = Submitter::new(Arc::new(c.store.clone()), wake, Default::default()).with_tendlc(true);
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_messaging(Arc::new(submitter));
    Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() }
}

async fn us_long_codes_send_only_in_an_approved_campaign(c: Ctx) -> anyhow::Result<()> {
    let c = enforcing(&c);
    let tns = [12025550100, 18885550100, 447700900123];
    let (account, jwt, _, campaign, _) = fixture(&c, "s@example.test", &tns).await?;
    let sms =
        |tn: i64| json!({"tn": tn, "to": "+14155550100", "message": "Acme: your order 1234 has shipped."});
    // In no campaign: refused, saying what to do, and nothing is stored.
    c.post("/rest/sms", &jwt, sms(12025550100)).await?.err(
        StatusCode::UNPROCESSABLE_ENTITY,
        &[
            "tn: the number 12025550100 is a US long code",
            "register a brand and campaign with POST /rest/10dlc/brand and POST /rest/10dlc/campaign",
            "POST /rest/10dlc/campaign/{uuid}/numbers {\"add\": [12025550100]}",
            "wait for approval",
        ],
    )?;
    // Toll-free and non-US numbers are not concerned.
    c.post("/rest/sms", &jwt, sms(18885550100)).await?.ok(StatusCode::CREATED)?;
    c.post("/rest/sms", &jwt, sms(447700900123)).await?.ok(StatusCode::CREATED)?;
    // Assigned but pending: still refused, naming the campaign.
    c.post(&format!("/rest/10dlc/campaign/{campaign}/numbers"), &jwt, json!({"add": [12025550100_i64]}))
        .await?
        .ok(StatusCode::OK)?;
    c.post("/rest/sms", &jwt, sms(12025550100))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &[&format!("campaign {campaign} is pending approval")])?;
    // Rejected: refused with the operator's reason.
    let id: Uuid = campaign.parse()?;
    c.store.decide_campaign(id, CampaignDecision::Reject { reason: "opt-in not shown".into() }).await?;
    c.post("/rest/sms", &jwt, sms(12025550100))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["was rejected (opt-in not shown)"])?;
    let log = c.post("/rest/sms/search", &jwt, json!({"from": "12025550100"})).await?;
    ensure!(log.ok(StatusCode::OK)?["total"] == 0, "nothing stored: {log:?}");
    // Approved: the same send is queued.
    c.store.decide_campaign(id, CampaignDecision::Approve).await?;
    let sent = c.post("/rest/sms", &jwt, sms(12025550100)).await?;
    ensure!(sent.ok(StatusCode::CREATED)?["state"] == "queued", "{sent:?}");
    // Out of the campaign again: refused again.
    c.post(&format!("/rest/10dlc/campaign/{campaign}/numbers"), &jwt, json!({"remove": [12025550100_i64]}))
        .await?
        .ok(StatusCode::OK)?;
    c.post("/rest/sms", &jwt, sms(12025550100))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["no approved"])?;
    ensure!(
        c.store
            .campaign_of_lease(account, c.store.lease_by_tn(12025550100).await?.context("lease")?.uuid)
            .await?
            .is_none()
    );
    Ok(())
}
