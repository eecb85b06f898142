//! The SIP area of the REST API: connections (with their numbers and invites), domains and
//! users (with their registration state), outbound voice profiles, and messaging profiles —
//! success, each validation failure, and another account's ids — on SQLite and PostgreSQL.

mod support;

use support::*;

api_test!(
    sip_connections,
    connection_and_app_numbers,
    connection_invites,
    sip_domains_and_users,
    outbound_voice_profiles,
    messaging_profiles,
    sip_cross_account_isolation,
    connection_ips_private_and_own_refused,
    verified_numbers,
    connection_trunking_settings,
    app_shaken_settings,
);

const TN1: i64 = 12_025_550_101;
const TN2: i64 = 12_025_550_102;
const TN3: i64 = 13_125_550_103;

/// The platform SIP domain these tests configure.
const SIP_DOMAIN: &str = "sip.example.test";

/// Users `alice` and `carol` of any domain read as registered.
struct FakePresence;

impl opentact_api::SipPresence for FakePresence {
    fn is_online(&self, domain: &str, login: &str) -> bool {
        domain.ends_with(SIP_DOMAIN) && (login == "alice" || login == "carol")
    }
}

/// A context whose API knows the platform SIP domain and sees registrations.
fn sip_ctx(c: &Ctx) -> Ctx {
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_sip(SIP_DOMAIN, Some(Arc::new(FakePresence)));
    Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() }
}

/// The digest hashes of `login` / `password` in `realm` (the user's domain is the realm).
fn creds(login: &str, realm: &str, password: &str) -> DigestCredentials {
    DigestCredentials::new(login, password, realm, realm)
}

/// Orders `tns` for the account of `jwt`; their lease ids.
async fn lease(c: &Ctx, jwt: &str, tns: &[i64]) -> anyhow::Result<Vec<String>> {
    let items: Vec<Value> = tns.iter().map(|tn| json!({"tn": tn})).collect();
    let order = c.post("/rest/order", jwt, json!({ "items": items })).await?;
    let order = order.ok(StatusCode::CREATED)?;
    ensure!(order["state"] == "success", "{order}");
    order["items"]
        .as_array()
        .context("items")?
        .iter()
        .map(|i| i["lease"].as_str().map(str::to_owned).context("lease id"))
        .collect()
}

async fn seed_numbers(c: &Ctx) -> anyhow::Result<()> {
    c.seed(&[(TN1, "DC", true, true, true), (TN2, "DC", true, true, true), (TN3, "IL", true, false, true)])
        .await
}

async fn sip_connections(c: Ctx) -> anyhow::Result<()> {
    let c = sip_ctx(&c);
    let (a, jwt) = c.signup("trunks@example.test").await?;
    let (_, other) = c.signup("other@example.test").await?;

    let created = c
        .post(
            "/rest/sip/connection",
            &jwt,
            json!({"name": " Acme PBX ", "subdomain": "Acme", "ip": "192.0.2.10", "port": 5060,
                   "login": "pbx", "password": "long enough secret"}),
        )
        .await?;
    let conn = created.ok(StatusCode::CREATED)?.clone();
    ensure!(
        conn["name"] == "Acme PBX"
            && conn["subdomain"] == "acme"
            && conn["sip_domain"] == "acme.sip.example.test"
            && conn["ip"] == "192.0.2.10"
            && conn["port"] == 5060
            && conn["is_active"] == true
            && conn["login"] == "pbx"
            && conn["outbound_voice_profile"].is_null(),
        "{conn}"
    );
    ensure!(conn.get("ha1").is_none() && conn.get("password").is_none(), "a secret is shown: {conn}");
    let id = Uuid::parse_str(str_of(&conn, "uuid")?)?;
    // The password was hashed in the connection's realm.
    let stored = c.store.get_connection(a, id).await?.context("stored")?;
    ensure!(
        stored.ha1.as_deref()
            == Some(creds("pbx", "acme.sip.example.test", "long enough secret").ha1.as_str())
    );

    // Validation: each failure says what to fix, and nothing is created.
    let bad: Vec<(Value, StatusCode, &[&str])> = vec![
        (json!({"name": ""}), StatusCode::UNPROCESSABLE_ENTITY, &["name: must be 1 to 100 characters"]),
        (
            json!({"name": "x", "ip": "300.1.1.1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["ip:", "not an IPv4 or IPv6"],
        ),
        (json!({"name": "x", "port": 0}), StatusCode::UNPROCESSABLE_ENTITY, &["port: must be 1 to 65535"]),
        (
            json!({"name": "x", "subdomain": "-x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["subdomain:", "DNS label"],
        ),
        (
            json!({"name": "x", "login": "pbx", "password": "long enough secret"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["subdomain: digest credentials need a subdomain"],
        ),
        (
            json!({"name": "x", "subdomain": "x", "login": "pbx"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["password: a login needs a password"],
        ),
        (
            json!({"name": "x", "subdomain": "x", "login": "pbx", "password": "short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["password: must be 8 to 128 characters"],
        ),
        (
            json!({"name": "x", "subdomain": "x", "login": "p b x", "password": "long enough secret"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["login: must be 1 to 64"],
        ),
        (
            json!({"name": "x", "outbound_voice_profile": Uuid::nil()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["outbound_voice_profile: outbound voice profile", "not found"],
        ),
        (json!({"name": "x", "secret": 1}), StatusCode::BAD_REQUEST, &["unknown field `secret`"]),
        (json!({"name": "x", "port": "5060"}), StatusCode::BAD_REQUEST, &["port"]),
    ];
    for (body, status, needles) in bad {
        c.post("/rest/sip/connection", &jwt, body.clone())
            .await?
            .err(status, needles)
            .with_context(|| format!("{body}"))?;
    }
    // A subdomain is unique across accounts.
    c.post("/rest/sip/connection", &other, json!({"name": "copy", "subdomain": "acme"}))
        .await?
        .err(StatusCode::CONFLICT, &["subdomain"])?;
    let list = c.get("/rest/sip/connection", &jwt).await?;
    let list = list.ok(StatusCode::OK)?;
    ensure!(list["total"] == 1 && list["data"][0]["uuid"] == conn["uuid"], "{list}");

    // Updates. A new subdomain changes the realm, so the password must come along.
    let uri = format!("/rest/sip/connection/{id}");
    c.patch(&uri, &jwt, json!({"subdomain": "acme2"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["password: changing the subdomain"])?;
    let updated = c.patch(&uri, &jwt, json!({"subdomain": "acme2", "password": "another secret!"})).await?;
    let updated = updated.ok(StatusCode::OK)?;
    ensure!(updated["sip_domain"] == "acme2.sip.example.test" && updated["login"] == "pbx", "{updated}");
    let stored = c.store.get_connection(a, id).await?.context("stored")?;
    ensure!(
        stored.ha1.as_deref() == Some(creds("pbx", "acme2.sip.example.test", "another secret!").ha1.as_str())
    );
    let updated =
        c.patch(&uri, &jwt, json!({"login": null, "ip": null, "port": null, "is_active": false})).await?;
    let updated = updated.ok(StatusCode::OK)?;
    ensure!(
        updated["login"].is_null()
            && updated["ip"].is_null()
            && updated["port"].is_null()
            && updated["is_active"] == false,
        "{updated}"
    );
    ensure!(c.store.get_connection(a, id).await?.context("stored")?.ha1.is_none(), "credentials kept");
    c.patch(&uri, &jwt, json!({"subdomain": null}))
        .await?
        .ok(StatusCode::OK)
        .context("without credentials the subdomain may go")?;
    c.patch(&uri, &jwt, json!({"password": "long enough secret"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["login: a password needs a login"])?;
    c.patch(&uri, &jwt, json!({"name": "  "})).await?.err(StatusCode::UNPROCESSABLE_ENTITY, &["name"])?;

    c.delete(&uri, &jwt).await?.ok(StatusCode::OK)?;
    c.get(&uri, &jwt).await?.err(StatusCode::NOT_FOUND, &["sip connection", "not found"])?;
    c.delete(&uri, &jwt).await?.err(StatusCode::NOT_FOUND, &["sip connection"])?;
    c.get("/rest/sip/connection/nope", &jwt).await?.err(StatusCode::BAD_REQUEST, &["not a UUID"])?;
    // The deleted connection's subdomain is free again.
    c.post("/rest/sip/connection", &other, json!({"name": "reuse", "subdomain": "acme"}))
        .await?
        .ok(StatusCode::CREATED)?;
    c.call("GET", "/rest/sip/connection", Auth::None, None).await?.err(StatusCode::UNAUTHORIZED, &[])?;
    Ok(())
}

async fn connection_and_app_numbers(c: Ctx) -> anyhow::Result<()> {
    let c = sip_ctx(&c);
    let (_, jwt) = c.signup("numbers@example.test").await?;
    seed_numbers(&c).await?;
    let leases = lease(&c, &jwt, &[TN1, TN2, TN3]).await?;
    let conn = c.post("/rest/sip/connection", &jwt, json!({"name": "pbx", "ip": "192.0.2.20"})).await?;
    let conn = str_of(conn.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    let app = c
        .post("/rest/sip/app", &jwt, json!({"name": "ivr", "xml": "<Response><Hangup/></Response>"}))
        .await?;
    let app = str_of(app.ok(StatusCode::CREATED)?, "uuid")?.to_owned();

    for (uri, field) in [
        (format!("/rest/sip/connection/{conn}/tnlease"), "sip_connection"),
        (format!("/rest/sip/app/{app}/tnlease"), "sip_control_app"),
    ] {
        let owner = if field == "sip_connection" { &conn } else { &app };
        // By number (integer or string) and by lease id.
        // (Leases made in the same millisecond list in any order: compare the sets.)
        let sorted = |page: &Value| {
            let mut t = tns(page);
            t.sort_unstable();
            t
        };
        let added = c.post(&uri, &jwt, json!({"add": [TN1, "+12025550102", leases[2]]})).await?;
        let added = added.ok(StatusCode::OK)?;
        ensure!(sorted(added) == vec![TN1, TN2, TN3], "{uri}: {added}");
        ensure!(
            added["data"].as_array().context("data")?.iter().all(|l| l[field] == json!(owner)),
            "{added}"
        );
        let removed = c.post(&uri, &jwt, json!({"remove": [TN2]})).await?;
        ensure!(sorted(removed.ok(StatusCode::OK)?) == vec![TN1, TN3], "{uri}: {:?}", removed);
        let listed = c.get(&format!("{uri}?take=1"), &jwt).await?;
        let listed = listed.ok(StatusCode::OK)?;
        ensure!(listed["total"] == 2 && tns(listed).len() == 1, "{listed}");
        let lease = c.get(&format!("/rest/lease/tn/{}", leases[1]), &jwt).await?;
        ensure!(lease.ok(StatusCode::OK)?[field].is_null(), "{:?}", lease);

        // Every entry is checked first: one bad entry changes nothing.
        c.post(&uri, &jwt, json!({"add": [TN2, 19_995_550_100_i64]})).await?.err(
            StatusCode::UNPROCESSABLE_ENTITY,
            &["add[1]: number 19995550100 is not leased by this account"],
        )?;
        c.post(&uri, &jwt, json!({"remove": [TN2]}))
            .await?
            .err(StatusCode::UNPROCESSABLE_ENTITY, &["remove[0]: number 12025550102 is not on this"])?;
        c.post(&uri, &jwt, json!({"add": ["bogus"]}))
            .await?
            .err(StatusCode::UNPROCESSABLE_ENTITY, &["add[0]:", "neither a lease id nor a number"])?;
        c.post(&uri, &jwt, json!({"add": [TN1], "remove": [TN1]}))
            .await?
            .err(StatusCode::UNPROCESSABLE_ENTITY, &["both added and removed"])?;
        c.post(&uri, &jwt, json!({})).await?.err(StatusCode::UNPROCESSABLE_ENTITY, &["nothing to change"])?;
        let listed = c.get(&uri, &jwt).await?;
        ensure!(sorted(listed.ok(StatusCode::OK)?) == vec![TN1, TN3], "a refused request changed numbers");
        c.post(&uri, &jwt, json!({"remove": [TN1, TN3]})).await?.ok(StatusCode::OK)?;
    }
    let ghost = Uuid::new_v4();
    c.get(&format!("/rest/sip/connection/{ghost}/tnlease"), &jwt)
        .await?
        .err(StatusCode::NOT_FOUND, &["sip connection"])?;
    c.post(&format!("/rest/sip/app/{ghost}/tnlease"), &jwt, json!({"add": [TN1]}))
        .await?
        .err(StatusCode::NOT_FOUND, &["sip control app"])?;
    Ok(())
}

async fn connection_invites(c: Ctx) -> anyhow::Result<()> {
    let c = sip_ctx(&c);
    let (a, jwt) = c.signup("invites@example.test").await?;
    let conn = c.post("/rest/sip/connection", &jwt, json!({"name": "pbx", "subdomain": "branch"})).await?;
    let conn = str_of(conn.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    let conn_id = Uuid::parse_str(&conn)?;
    let uri = format!("/rest/sip/connection/{conn}/invites");

    let created = c.post(&uri, &jwt, json!({"name": "branch office IT"})).await?;
    let invite = created.ok(StatusCode::CREATED)?.clone();
    let token = str_of(&invite, "token")?.to_owned();
    ensure!(
        token.len() >= 32 && invite["used_on"].is_null() && invite["connection"] == json!(conn),
        "{invite}"
    );
    let listed = c.get(&uri, &jwt).await?;
    let listed = listed.ok(StatusCode::OK)?;
    ensure!(
        listed["total"] == 1 && listed["data"][0].get("token").is_none(),
        "the token is listed: {listed}"
    );

    // Redeeming needs no account; a bad login or password is refused before the token is spent.
    let redeem = |body: Value| c.call("POST", "/rest/sip/invite", Auth::None, Some(body));
    redeem(json!({"token": token, "login": "it", "password": "short"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["password: must be 8"])?;
    redeem(json!({"token": "not-a-token", "login": "it", "password": "long enough secret"}))
        .await?
        .err(StatusCode::NOT_FOUND, &["sip invite"])?;
    let done = redeem(json!({"token": token, "login": "it", "password": "long enough secret"})).await?;
    let done = done.ok(StatusCode::OK)?;
    ensure!(done["sip_domain"] == "branch.sip.example.test" && done["login"] == "it", "{done}");
    let stored = c.store.get_connection(a, conn_id).await?.context("connection")?;
    ensure!(
        stored.login.as_deref() == Some("it")
            && stored.ha1.as_deref()
                == Some(creds("it", "branch.sip.example.test", "long enough secret").ha1.as_str()),
        "credentials not set: {stored:?}"
    );
    // Once only.
    redeem(json!({"token": token, "login": "again", "password": "long enough secret"}))
        .await?
        .err(StatusCode::NOT_FOUND, &["sip invite"])?;
    let listed = c.get(&uri, &jwt).await?;
    ensure!(!listed.ok(StatusCode::OK)?["data"][0]["used_on"].is_null(), "{:?}", listed);

    // Revoked invites do not work.
    let second = c.post(&uri, &jwt, json!({"name": "second"})).await?;
    let second = second.ok(StatusCode::CREATED)?.clone();
    c.delete(&format!("{uri}/{}", str_of(&second, "uuid")?), &jwt).await?.ok(StatusCode::OK)?;
    redeem(json!({"token": str_of(&second, "token")?, "login": "x", "password": "long enough secret"}))
        .await?
        .err(StatusCode::NOT_FOUND, &["sip invite"])?;

    // Validation.
    c.post(&uri, &jwt, json!({"name": "x", "expired_on": "2001-01-01T00:00:00Z"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["expired_on: must be in the future"])?;
    c.post(&uri, &jwt, json!({"name": "x", "expired_on": "2999-01-01T00:00:00Z"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["at most 30 days"])?;
    c.post(&uri, &jwt, json!({"name": "x", "expired_on": "tomorrow"}))
        .await?
        .err(StatusCode::BAD_REQUEST, &["expired_on"])?;
    let bare = c.post("/rest/sip/connection", &jwt, json!({"name": "ip only", "ip": "192.0.2.1"})).await?;
    let bare = str_of(bare.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    c.post(&format!("/rest/sip/connection/{bare}/invites"), &jwt, json!({"name": "x"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["subdomain: the connection has no subdomain"])?;
    Ok(())
}

async fn sip_domains_and_users(c: Ctx) -> anyhow::Result<()> {
    let c = sip_ctx(&c);
    let (a, jwt) = c.signup("domains@example.test").await?;
    let (_, other) = c.signup("other@example.test").await?;
    seed_numbers(&c).await?;
    let leases = lease(&c, &jwt, &[TN1]).await?;

    let d = c.post("/rest/sip/domain", &jwt, json!({"name": "Acme"})).await?;
    let d = d.ok(StatusCode::CREATED)?.clone();
    ensure!(d["name"] == "acme" && d["sip_domain"] == "acme.sip.example.test" && d["app"].is_null(), "{d}");
    let domain = str_of(&d, "uuid")?.to_owned();
    c.post("/rest/sip/domain", &other, json!({"name": "acme"}))
        .await?
        .err(StatusCode::CONFLICT, &["name"])?;
    c.post("/rest/sip/domain", &jwt, json!({"name": "a.b"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["name: must be a DNS label"])?;
    c.post("/rest/sip/domain", &jwt, json!({"name": "x", "app": Uuid::nil()}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["app: sip control app", "not found"])?;
    // By id or by name.
    for key in [domain.as_str(), "acme", "ACME"] {
        let got = c.get(&format!("/rest/sip/domain/{key}"), &jwt).await?;
        ensure!(got.ok(StatusCode::OK)?["uuid"] == json!(domain), "{key}: {:?}", got);
    }
    c.get("/rest/sip/domain/acme", &other).await?.err(StatusCode::NOT_FOUND, &["sip domain", "acme"])?;
    let app = c
        .post("/rest/sip/app", &jwt, json!({"name": "pbx", "xml": "<Response><Hangup/></Response>"}))
        .await?;
    let app = str_of(app.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    let patched = c.patch("/rest/sip/domain/acme", &jwt, json!({"app": app})).await?;
    ensure!(patched.ok(StatusCode::OK)?["app"] == json!(app), "{:?}", patched);
    c.patch("/rest/sip/domain/acme", &jwt, json!({}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["nothing to change"])?;
    // The domain's own event webhook: checked like a subscription's URL, kept, and removed by null.
    ensure!(d["event_url"].is_null(), "{d}");
    let hooked = c
        .patch("/rest/sip/domain/acme", &jwt, json!({"event_url": "https://hooks.example.com/acme"}))
        .await?;
    let hooked = hooked.ok(StatusCode::OK)?;
    ensure!(
        hooked["event_url"] == "https://hooks.example.com/acme" && hooked["app"] == json!(app),
        "{hooked}"
    );
    for refused in ["ftp://hooks.example.com/", "http://127.0.0.1:9/ev", "http://10.0.0.1/ev"] {
        c.patch("/rest/sip/domain/acme", &jwt, json!({"event_url": refused}))
            .await?
            .err(StatusCode::UNPROCESSABLE_ENTITY, &["event_url:"])
            .with_context(|| refused.to_owned())?;
    }
    c.post("/rest/sip/domain", &jwt, json!({"name": "hooked", "event_url": "http://[::1]/ev"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["event_url:", "non-public address"])?;
    let got = c.get("/rest/sip/domain/acme", &jwt).await?;
    ensure!(got.ok(StatusCode::OK)?["event_url"] == "https://hooks.example.com/acme", "{:?}", got);
    let cleared = c.patch("/rest/sip/domain/acme", &jwt, json!({"event_url": null})).await?;
    let cleared = cleared.ok(StatusCode::OK)?;
    ensure!(cleared["event_url"].is_null() && cleared["app"] == json!(app), "{cleared}");

    // Users.
    let users = "/rest/sip/domain/acme/user";
    let alice = c
        .post(users, &jwt, json!({"login": "alice", "password": "alice's secret", "tn_lease": leases[0]}))
        .await?;
    let alice = alice.ok(StatusCode::CREATED)?.clone();
    ensure!(
        alice["login"] == "alice"
            && alice["address"] == "alice@acme.sip.example.test"
            && alice["state"] == "online"
            && alice["is_active"] == true
            && alice["same_domain_calls_only"] == false
            && alice["tn_lease"] == json!(leases[0])
            && alice.get("ha1").is_none()
            && alice.get("ha1b").is_none(),
        "{alice}"
    );
    let alice_id = Uuid::parse_str(str_of(&alice, "uuid")?)?;
    let stored = c.store.get_sip_user(a, alice_id).await?.context("user")?;
    let expected = creds("alice", "acme.sip.example.test", "alice's secret");
    ensure!(stored.ha1 == expected.ha1 && stored.ha1b == expected.ha1b, "hashed in the wrong realm");
    let bob = c
        .post(
            users,
            &jwt,
            json!({"login": "bob", "password": "bob's secret", "same_domain_calls_only": true}),
        )
        .await?;
    let bob = bob.ok(StatusCode::CREATED)?.clone();
    ensure!(bob["state"] == "offline" && bob["same_domain_calls_only"] == true, "{bob}");
    let bad: Vec<(Value, StatusCode, &[&str])> = vec![
        (json!({"login": "alice", "password": "another secret"}), StatusCode::CONFLICT, &["login"]),
        (
            json!({"login": "al ice", "password": "another secret"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["login:"],
        ),
        (
            json!({"login": "carol", "password": "1234"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["password: must be 8"],
        ),
        (
            json!({"login": "carol", "password": "long enough", "tn_lease": Uuid::nil()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["tn_lease: tn lease", "not found"],
        ),
        (json!({"login": "carol"}), StatusCode::BAD_REQUEST, &["missing field `password`"]),
    ];
    for (body, status, needles) in bad {
        c.post(users, &jwt, body.clone()).await?.err(status, needles).with_context(|| format!("{body}"))?;
    }
    let list = c.get(users, &jwt).await?;
    let list = list.ok(StatusCode::OK)?;
    let state_of = |login: &str| {
        list["data"]
            .as_array()
            .and_then(|d| d.iter().find(|u| u["login"] == login))
            .map(|u| u["state"].clone())
    };
    ensure!(
        list["total"] == 2
            && state_of("alice") == Some(json!("online"))
            && state_of("bob") == Some(json!("offline")),
        "{list}"
    );

    let alice_uri = format!("{users}/{alice_id}");
    let got = c.get(&alice_uri, &jwt).await?;
    ensure!(got.ok(StatusCode::OK)?["login"] == "alice", "{:?}", got);
    let updated = c
        .patch(&alice_uri, &jwt, json!({"password": "a new secret", "is_active": false, "tn_lease": null}))
        .await?;
    let updated = updated.ok(StatusCode::OK)?;
    ensure!(updated["is_active"] == false && updated["tn_lease"].is_null(), "{updated}");
    ensure!(
        c.store.get_sip_user(a, alice_id).await?.context("user")?.ha1
            == creds("alice", "acme.sip.example.test", "a new secret").ha1
    );
    // The user's own event webhook.
    ensure!(updated["event_url"].is_null(), "{updated}");
    let hooked = c.patch(&alice_uri, &jwt, json!({"event_url": "https://hooks.example.com/alice"})).await?;
    let hooked = hooked.ok(StatusCode::OK)?;
    ensure!(
        hooked["event_url"] == "https://hooks.example.com/alice" && hooked["is_active"] == false,
        "{hooked}"
    );
    c.patch(&alice_uri, &jwt, json!({"event_url": "http://localhost/ev"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["event_url:", "non-public address"])?;
    let stored = c.store.get_sip_user(a, alice_id).await?.context("user")?;
    ensure!(stored.event_url.as_deref() == Some("https://hooks.example.com/alice"), "{stored:?}");
    let cleared = c.patch(&alice_uri, &jwt, json!({"event_url": null})).await?;
    ensure!(cleared.ok(StatusCode::OK)?["event_url"].is_null(), "{:?}", cleared);
    let carol = c
        .post(users, &jwt, json!({"login": "carol", "password": "long enough", "event_url": "https://hooks.example.com/carol"}))
        .await?;
    ensure!(carol.ok(StatusCode::CREATED)?["event_url"] == "https://hooks.example.com/carol", "{:?}", carol);
    c.post(
        users,
        &jwt,
        json!({"login": "dave", "password": "long enough", "event_url": "http://192.168.1.1/"}),
    )
    .await?
    .err(StatusCode::UNPROCESSABLE_ENTITY, &["event_url:"])?;
    c.patch(&alice_uri, &jwt, json!({"login": "alicia"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["login: cannot be changed"])?;
    c.patch(&alice_uri, &jwt, json!({}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["nothing to change"])?;

    // A user is reached only under its own domain.
    c.post("/rest/sip/domain", &jwt, json!({"name": "branch"})).await?.ok(StatusCode::CREATED)?;
    c.get(&format!("/rest/sip/domain/branch/user/{alice_id}"), &jwt)
        .await?
        .err(StatusCode::NOT_FOUND, &["sip user"])?;
    c.get(&format!("{users}/nope"), &jwt).await?.err(StatusCode::BAD_REQUEST, &["not a UUID"])?;

    c.delete(&alice_uri, &jwt).await?.ok(StatusCode::OK)?;
    c.get(&alice_uri, &jwt).await?.err(StatusCode::NOT_FOUND, &["sip user"])?;
    // Deleting the domain takes its users along.
    c.delete("/rest/sip/domain/acme", &jwt).await?.ok(StatusCode::OK)?;
    c.get(users, &jwt).await?.err(StatusCode::NOT_FOUND, &["sip domain"])?;
    let list = c.get("/rest/sip/domain", &jwt).await?;
    let list = list.ok(StatusCode::OK)?;
    ensure!(list["total"] == 1 && list["data"][0]["name"] == "branch", "{list}");
    Ok(())
}

async fn outbound_voice_profiles(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("ovp@example.test").await?;
    let base = "/rest/profile/outbound_voice";
    let p = c
        .post(
            base,
            &jwt,
            json!({"name": "default", "channel_limit": 10, "max_rate": 0.05, "daily_spend_limit": 100.25,
                   "record_calls": true, "calls_per_second": 5}),
        )
        .await?;
    let p = p.ok(StatusCode::CREATED)?.clone();
    ensure!(
        p["channel_limit"] == 10
            && p["calls_per_second"] == 5
            && p["max_rate"] == 0.05
            && p["daily_spend_limit"] == 100.25
            && p["record_calls"] == true
            && p["shaken_sign_policy"] == "sign",
        "{p}"
    );
    let uri = format!("{base}/{}", str_of(&p, "uuid")?);
    let bad: Vec<(Value, StatusCode, &[&str])> = vec![
        (
            json!({"name": "x", "channel_limit": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["channel_limit: must be 1 to"],
        ),
        (
            json!({"name": "x", "max_rate": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["max_rate: must be an amount"],
        ),
        (json!({"name": "x", "shaken_sign_policy": "maybe"}), StatusCode::BAD_REQUEST, &["sign", "off"]),
        (json!({"channel_limit": 2}), StatusCode::BAD_REQUEST, &["missing field `name`"]),
        (
            json!({"name": "x", "calls_per_second": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["calls_per_second: must be 1 to 1000"],
        ),
        (
            json!({"name": "x", "calls_per_second": 1001}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["calls_per_second: must be 1 to 1000"],
        ),
        (json!({"name": "x", "calls_per_second": 2.5}), StatusCode::BAD_REQUEST, &["calls_per_second"]),
    ];
    for (body, status, needles) in bad {
        c.post(base, &jwt, body.clone()).await?.err(status, needles).with_context(|| format!("{body}"))?;
    }
    let u = c
        .patch(&uri, &jwt, json!({"channel_limit": null, "shaken_sign_policy": "off", "max_rate": 0.1}))
        .await?;
    let u = u.ok(StatusCode::OK)?;
    ensure!(u["channel_limit"].is_null() && u["shaken_sign_policy"] == "off" && u["max_rate"] == 0.1, "{u}");
    ensure!(u["calls_per_second"] == 5, "a patch without it keeps it: {u}");
    let u = c.patch(&uri, &jwt, json!({"calls_per_second": 1000})).await?;
    ensure!(u.ok(StatusCode::OK)?["calls_per_second"] == 1000, "{u:?}");
    c.patch(&uri, &jwt, json!({"calls_per_second": -1}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["calls_per_second: must be 1 to 1000"])?;
    let u = c.patch(&uri, &jwt, json!({"calls_per_second": null})).await?;
    ensure!(u.ok(StatusCode::OK)?["calls_per_second"].is_null(), "null removes the limit: {u:?}");
    c.patch(&uri, &jwt, json!({})).await?.err(StatusCode::UNPROCESSABLE_ENTITY, &["nothing to change"])?;
    let got = c.get(&uri, &jwt).await?;
    ensure!(got.ok(StatusCode::OK)?["name"] == "default", "{:?}", got);

    // A connection uses it; deleting the profile detaches it.
    let conn = c
        .post("/rest/sip/connection", &jwt, json!({"name": "pbx", "outbound_voice_profile": p["uuid"]}))
        .await?;
    let conn = conn.ok(StatusCode::CREATED)?.clone();
    ensure!(conn["outbound_voice_profile"] == p["uuid"], "{conn}");
    c.delete(&uri, &jwt).await?.ok(StatusCode::OK)?;
    c.get(&uri, &jwt).await?.err(StatusCode::NOT_FOUND, &["outbound voice profile"])?;
    let conn = c.get(&format!("/rest/sip/connection/{}", str_of(&conn, "uuid")?), &jwt).await?;
    ensure!(conn.ok(StatusCode::OK)?["outbound_voice_profile"].is_null(), "{:?}", conn);
    let list = c.get(base, &jwt).await?;
    ensure!(list.ok(StatusCode::OK)?["total"] == 0, "{:?}", list);
    Ok(())
}

async fn messaging_profiles(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("sms@example.test").await?;
    seed_numbers(&c).await?;
    let leases = lease(&c, &jwt, &[TN1]).await?;
    let base = "/rest/profile/messaging";
    let p = c
        .post(
            base,
            &jwt,
            json!({"name": "alerts", "callback_url": "https://hooks.example.test/sms",
                   "number_pool_enable": true, "long_code_weight": 3, "sticky_sender": true}),
        )
        .await?;
    let p = p.ok(StatusCode::CREATED)?.clone();
    ensure!(
        p["callback_url"] == "https://hooks.example.test/sms"
            && p["callback_url2"].is_null()
            && p["number_pool_enable"] == true
            && p["long_code_weight"] == 3
            && p["toll_free_weight"] == 1
            && p["sticky_sender"] == true
            && p["skip_unhealthy_tns"] == false,
        "{p}"
    );
    let uri = format!("{base}/{}", str_of(&p, "uuid")?);
    c.post(base, &jwt, json!({"name": "x", "callback_url": "ftp://x"}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["callback_url: must be an http(s) URL"])?;
    c.post(base, &jwt, json!({"name": "x", "toll_free_weight": -1}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["toll_free_weight: must be 0 to 1000"])?;
    let u = c
        .patch(&uri, &jwt, json!({"callback_url": null, "callback_url2": "http://backup.example.test/sms"}))
        .await?;
    let u = u.ok(StatusCode::OK)?;
    ensure!(u["callback_url"].is_null() && u["callback_url2"] == "http://backup.example.test/sms", "{u}");

    // A number joins the profile; deleting the profile detaches it.
    let lease_uri = format!("/rest/lease/tn/{}", leases[0]);
    let l = c.patch(&lease_uri, &jwt, json!({"messaging_profile_uuid": p["uuid"]})).await?;
    ensure!(l.ok(StatusCode::OK)?["messaging_profile"] == p["uuid"], "{:?}", l);
    c.delete(&uri, &jwt).await?.ok(StatusCode::OK)?;
    c.get(&uri, &jwt).await?.err(StatusCode::NOT_FOUND, &["messaging profile"])?;
    let l = c.get(&lease_uri, &jwt).await?;
    ensure!(l.ok(StatusCode::OK)?["messaging_profile"].is_null(), "{:?}", l);
    Ok(())
}

async fn sip_cross_account_isolation(c: Ctx) -> anyhow::Result<()> {
    let c = sip_ctx(&c);
    let (_, a) = c.signup("alice@example.test").await?;
    let (_, b) = c.signup("bob@example.test").await?;
    seed_numbers(&c).await?;
    let a_leases = lease(&c, &a, &[TN1]).await?;
    let b_leases = lease(&c, &b, &[TN2]).await?;

    let id = |answer: Answer| -> anyhow::Result<String> {
        Ok(str_of(answer.ok(StatusCode::CREATED)?, "uuid")?.to_owned())
    };
    let conn = id(c.post("/rest/sip/connection", &a, json!({"name": "a", "subdomain": "alice"})).await?)?;
    let invite =
        id(c.post(&format!("/rest/sip/connection/{conn}/invites"), &a, json!({"name": "it"})).await?)?;
    let app = id(c
        .post("/rest/sip/app", &a, json!({"name": "a", "xml": "<Response><Hangup/></Response>"}))
        .await?)?;
    let domain = id(c.post("/rest/sip/domain", &a, json!({"name": "alice"})).await?)?;
    let user = id(c
        .post("/rest/sip/domain/alice/user", &a, json!({"login": "al", "password": "long enough secret"}))
        .await?)?;
    let ovp = id(c.post("/rest/profile/outbound_voice", &a, json!({"name": "a"})).await?)?;
    let mp = id(c.post("/rest/profile/messaging", &a, json!({"name": "a"})).await?)?;
    let order = c.post("/rest/order/search", &a, json!({})).await?;
    let order = order.ok(StatusCode::OK)?["data"][0]["uuid"].as_str().context("order")?.to_owned();

    let matrix: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/rest/sip/connection/{conn}"), None),
        ("PATCH", format!("/rest/sip/connection/{conn}"), Some(json!({"name": "bob's"}))),
        ("DELETE", format!("/rest/sip/connection/{conn}"), None),
        ("GET", format!("/rest/sip/connection/{conn}/tnlease"), None),
        ("POST", format!("/rest/sip/connection/{conn}/tnlease"), Some(json!({"add": [TN2]}))),
        ("GET", format!("/rest/sip/connection/{conn}/invites"), None),
        ("POST", format!("/rest/sip/connection/{conn}/invites"), Some(json!({"name": "bob"}))),
        ("DELETE", format!("/rest/sip/connection/{conn}/invites/{invite}"), None),
        ("GET", format!("/rest/sip/app/{app}/tnlease"), None),
        ("POST", format!("/rest/sip/app/{app}/tnlease"), Some(json!({"add": [TN2]}))),
        ("GET", format!("/rest/sip/domain/{domain}"), None),
        ("GET", "/rest/sip/domain/alice".to_owned(), None),
        ("PATCH", format!("/rest/sip/domain/{domain}"), Some(json!({"app": null}))),
        (
            "PATCH",
            format!("/rest/sip/domain/{domain}"),
            Some(json!({"event_url": "https://eve.example.com/"})),
        ),
        ("DELETE", format!("/rest/sip/domain/{domain}"), None),
        ("GET", format!("/rest/sip/domain/{domain}/user"), None),
        (
            "POST",
            format!("/rest/sip/domain/{domain}/user"),
            Some(json!({"login": "eve", "password": "long enough secret"})),
        ),
        ("GET", format!("/rest/sip/domain/{domain}/user/{user}"), None),
        ("PATCH", format!("/rest/sip/domain/{domain}/user/{user}"), Some(json!({"is_active": false}))),
        (
            "PATCH",
            format!("/rest/sip/domain/{domain}/user/{user}"),
            Some(json!({"event_url": "https://eve.example.com/"})),
        ),
        ("DELETE", format!("/rest/sip/domain/{domain}/user/{user}"), None),
        ("GET", format!("/rest/profile/outbound_voice/{ovp}"), None),
        ("PATCH", format!("/rest/profile/outbound_voice/{ovp}"), Some(json!({"name": "bob's"}))),
        ("DELETE", format!("/rest/profile/outbound_voice/{ovp}"), None),
        ("GET", format!("/rest/profile/messaging/{mp}"), None),
        ("PATCH", format!("/rest/profile/messaging/{mp}"), Some(json!({"name": "bob's"}))),
        ("DELETE", format!("/rest/profile/messaging/{mp}"), None),
        ("GET", format!("/rest/order/{order}"), None),
    ];
    for (method, uri, body) in &matrix {
        c.call(method, uri, Auth::Bearer(&b), body.clone())
            .await?
            .err(StatusCode::NOT_FOUND, &["not found"])
            .with_context(|| format!("bob {method} {uri}"))?;
    }
    // Bob cannot point his objects at Alice's, nor put Alice's number on his.
    let b_conn = id(c.post("/rest/sip/connection", &b, json!({"name": "b"})).await?)?;
    c.post(&format!("/rest/sip/connection/{b_conn}/tnlease"), &b, json!({"add": [TN1]}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["number 12025550101 is not leased by this account"])?;
    c.post(&format!("/rest/sip/connection/{b_conn}/tnlease"), &b, json!({"add": [a_leases[0]]}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["no active lease"])?;
    c.patch(&format!("/rest/sip/connection/{b_conn}"), &b, json!({"outbound_voice_profile": ovp}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["outbound_voice_profile"])?;
    c.patch(&format!("/rest/lease/tn/{}", b_leases[0]), &b, json!({"messaging_profile_uuid": mp}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["messaging_profile_uuid"])?;
    c.post("/rest/sip/domain", &b, json!({"name": "bob", "app": app}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["app"])?;
    // Bob's lists hold only his.
    for list in [
        "/rest/sip/connection",
        "/rest/sip/domain",
        "/rest/profile/outbound_voice",
        "/rest/profile/messaging",
    ] {
        let page = c.get(list, &b).await?;
        let page = page.ok(StatusCode::OK)?;
        let mine = if list == "/rest/sip/connection" { 1 } else { 0 };
        ensure!(page["total"] == mine, "{list}: {page}");
    }
    // Alice's objects are unchanged.
    let got = c.get(&format!("/rest/sip/domain/{domain}/user/{user}"), &a).await?;
    ensure!(got.ok(StatusCode::OK)?["is_active"] == true, "{:?}", got);
    let got = c.get(&format!("/rest/sip/connection/{conn}/invites"), &a).await?;
    ensure!(got.ok(StatusCode::OK)?["total"] == 1, "{:?}", got);
    Ok(())
}

/// A connection's `ip` is trusted without credentials, so it may not be loopback, private,
/// link-local, CGNAT or the platform's own address — unless the operator allows private ones.
async fn connection_ips_private_and_own_refused(c: Ctx) -> anyhow::Result<()> {
    let platform: std::net::IpAddr = "198.51.100.7".parse()?;
    let refusing = {
        let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
            .with_connection_ips(opentact_api::routes::sip_connection::ConnectionIps {
                allow_private: false,
                platform: vec![platform],
            });
        Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() }
    };
    let (_, jwt) = refusing.signup("private-ips@example.test").await?;
    for ip in [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.10",
        "172.16.0.1",
        "169.254.1.1",
        "100.64.0.1",
        "::1",
        "fd00::1",
        "::ffff:10.0.0.1",
    ] {
        let answer = refusing.post("/rest/sip/connection", &jwt, json!({"name": "pbx", "ip": ip})).await?;
        answer.err(StatusCode::UNPROCESSABLE_ENTITY, &["ip:", "allow_private_connection_ips"])?;
    }
    let own =
        refusing.post("/rest/sip/connection", &jwt, json!({"name": "pbx", "ip": "198.51.100.7"})).await?;
    own.err(StatusCode::UNPROCESSABLE_ENTITY, &["ip:", "this platform's own address"])?;
    // A public address is taken; moving it to a private one is refused like creating it.
    let created =
        refusing.post("/rest/sip/connection", &jwt, json!({"name": "pbx", "ip": "203.0.113.5"})).await?;
    let id = created.ok(StatusCode::CREATED)?["uuid"].as_str().context("uuid")?.to_owned();
    let moved =
        refusing.patch(&format!("/rest/sip/connection/{id}"), &jwt, json!({"ip": "10.0.0.1"})).await?;
    moved.err(StatusCode::UNPROCESSABLE_ENTITY, &["ip:", "private"])?;
    let kept = refusing.get(&format!("/rest/sip/connection/{id}"), &jwt).await?;
    ensure!(kept.ok(StatusCode::OK)?["ip"] == "203.0.113.5", "the refused update changed nothing");

    // On premises: private addresses allowed, the platform's own still not.
    let on_prem = {
        let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
            .with_connection_ips(opentact_api::routes::sip_connection::ConnectionIps {
                allow_private: true,
                platform: vec![platform],
            });
        Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() }
    };
    let private =
        on_prem.post("/rest/sip/connection", &jwt, json!({"name": "lan pbx", "ip": "10.1.2.3"})).await?;
    ensure!(private.ok(StatusCode::CREATED)?["ip"] == "10.1.2.3", "allowed on premises");
    let own =
        on_prem.post("/rest/sip/connection", &jwt, json!({"name": "pbx", "ip": "198.51.100.7"})).await?;
    own.err(StatusCode::UNPROCESSABLE_ENTITY, &["ip:", "this platform's own address"])?;
    Ok(())
}

/// Records the calls the API places (the verification calls) instead of placing them.
#[derive(Default)]
struct RecordingCalls(std::sync::Mutex<Vec<opentact_control::Originate>>);

impl opentact_control::Calling for RecordingCalls {
    fn originate(
        &self,
        _account: Uuid,
        request: opentact_control::Originate,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Uuid, opentact_control::OriginateError>> + Send + '_>,
    > {
        self.0.lock().expect("lock").push(request);
        Box::pin(async { Ok(Uuid::new_v4()) })
    }
}

/// A verified caller ID: created (a call says the code), confirmed with the code; wrong codes
/// counted and capped; another account's reads as 404 everywhere.
async fn verified_numbers(c: Ctx) -> anyhow::Result<()> {
    let calls = Arc::new(RecordingCalls::default());
    let c = {
        let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
            .with_calling(calls.clone());
        Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() }
    };
    let (a, jwt) = c.signup("verifier@example.test").await?;
    let (_, other) = c.signup("stranger@example.test").await?;
    seed_numbers(&c).await?;
    lease(&c, &jwt, &[TN1]).await?;

    let refused = c
        .post("/rest/verified_number", &jwt, json!({"number": "12125550199", "from": "19995550000"}))
        .await?;
    refused.err(StatusCode::UNPROCESSABLE_ENTITY, &["from:", "not a number of this account"])?;
    let created =
        c.post("/rest/verified_number", &jwt, json!({"number": "+12125550199", "from": TN1})).await?;
    let created = created.ok(StatusCode::CREATED)?.clone();
    ensure!(created["state"] == "pending" && created["tn"] == 12_125_550_199_i64, "{created}");
    ensure!(created.get("code_hash").is_none(), "the code's hash is never shown: {created}");
    let id = created["uuid"].as_str().context("uuid")?.to_owned();
    // The call to the number says the code.
    let placed = calls.0.lock().expect("lock").pop().context("a verification call")?;
    ensure!(placed.from_tn == TN1, "from the account's number");
    let opentact_store::AppMode::Xml { document } = placed.mode else { anyhow::bail!("an XML call") };
    let code: String = document
        .split("code is ")
        .nth(1)
        .context("the code in the call")?
        .chars()
        .take_while(|c| *c != '.')
        .filter(char::is_ascii_digit)
        .collect();
    ensure!(code.len() == 6, "{document}");
    let again = c.post("/rest/verified_number", &jwt, json!({"number": "12125550199", "from": TN1})).await?;
    again.err(StatusCode::CONFLICT, &["already exists"])?;

    // Another account sees none of it.
    let path = format!("/rest/verified_number/{id}");
    c.get(&path, &other).await?.err(StatusCode::NOT_FOUND, &["verified number"])?;
    c.post(&format!("{path}/verify"), &other, json!({"code": code}))
        .await?
        .err(StatusCode::NOT_FOUND, &["verified number"])?;
    c.delete(&path, &other).await?.err(StatusCode::NOT_FOUND, &["verified number"])?;
    let theirs = c.get("/rest/verified_number", &other).await?;
    ensure!(theirs.ok(StatusCode::OK)?["total"] == 0, "{theirs:?}");

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let answer = c.post(&format!("{path}/verify"), &jwt, json!({"code": wrong})).await?;
    answer.err(StatusCode::UNPROCESSABLE_ENTITY, &["code:", "does not match", "4 attempts left"])?;
    ensure!(!c.store.is_verified_number(a, 12_125_550_199).await?, "still pending");
    let verified = c.post(&format!("{path}/verify"), &jwt, json!({"code": code})).await?;
    ensure!(verified.ok(StatusCode::OK)?["state"] == "verified", "{verified:?}");
    ensure!(c.store.is_verified_number(a, 12_125_550_199).await?, "the dialer's check sees it");
    let list = c.get("/rest/verified_number", &jwt).await?;
    ensure!(list.ok(StatusCode::OK)?["total"] == 1, "{list:?}");

    // Wrong codes are capped: five, then no code is taken, not even the right one.
    let second = c.post("/rest/verified_number", &jwt, json!({"number": "12125550198", "from": TN1})).await?;
    let second = second.ok(StatusCode::CREATED)?["uuid"].as_str().context("uuid")?.to_owned();
    for _ in 0..5 {
        c.post(&format!("/rest/verified_number/{second}/verify"), &jwt, json!({"code": "x"}))
            .await?
            .err(StatusCode::UNPROCESSABLE_ENTITY, &["code:"])?;
    }
    let placed = calls.0.lock().expect("lock").pop().context("the second call")?;
    let opentact_store::AppMode::Xml { document } = placed.mode else { anyhow::bail!("an XML call") };
    let code: String = document
        .split("code is ")
        .nth(1)
        .context("code")?
        .chars()
        .take_while(|c| *c != '.')
        .filter(char::is_ascii_digit)
        .collect();
    c.post(&format!("/rest/verified_number/{second}/verify"), &jwt, json!({"code": code}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["5 wrong codes"])?;
    ensure!(!c.store.is_verified_number(a, 12_125_550_198).await?, "never verified");
    c.delete(&format!("/rest/verified_number/{second}"), &jwt).await?.ok(StatusCode::OK)?;
    Ok(())
}

/// What inbound trunking needs of a connection (issue 13): failover addresses (checked like
/// `ip`, written `ip:port`), codecs in preference order, the ring timeout; shown, changed,
/// cleared, refused when wrong, and another account's connection is not found.
async fn connection_trunking_settings(c: Ctx) -> anyhow::Result<()> {
    let c = sip_ctx(&c);
    let (_, jwt) = c.signup("trunking@example.test").await?;
    let (_, other) = c.signup("trunking-other@example.test").await?;
    let created = c
        .post(
            "/rest/sip/connection",
            &jwt,
            json!({"name": "pbx", "ip": "192.0.2.30", "port": 5080,
                   "failover_addresses": ["192.0.2.31", "192.0.2.32:5070", "[2001:db8::5]:5062"],
                   "codecs": ["pcma", "PCMU"], "ring_timeout_secs": 7,
                   "transport_protocol": "tcp", "encrypted_media": "srtp"}),
        )
        .await?;
    let created = created.ok(StatusCode::CREATED)?;
    ensure!(created["transport_protocol"] == "TCP" && created["encrypted_media"] == "SRTP", "{created}");
    ensure!(
        created["failover_addresses"] == json!(["192.0.2.31:5060", "192.0.2.32:5070", "[2001:db8::5]:5062"]),
        "{created}"
    );
    ensure!(created["codecs"] == json!(["PCMA", "PCMU"]) && created["ring_timeout_secs"] == 7, "{created}");
    let id = str_of(created, "uuid")?.to_owned();
    let uri = format!("/rest/sip/connection/{id}");

    // Defaults: both G.711 laws, no failover, the platform's ring timeout.
    let plain = c.post("/rest/sip/connection", &jwt, json!({"name": "plain", "ip": "192.0.2.40"})).await?;
    let plain = plain.ok(StatusCode::CREATED)?;
    ensure!(plain["codecs"] == json!(["PCMU", "PCMA"]), "{plain}");
    ensure!(plain["failover_addresses"] == json!([]) && plain["ring_timeout_secs"].is_null(), "{plain}");
    ensure!(plain["transport_protocol"] == "UDP" && plain["encrypted_media"].is_null(), "{plain}");

    let changed = c
        .patch(
            &uri,
            &jwt,
            json!({"failover_addresses": ["192.0.2.33"], "codecs": ["PCMU"], "ring_timeout_secs": null,
                   "transport_protocol": "UDP", "encrypted_media": null}),
        )
        .await?;
    let changed = changed.ok(StatusCode::OK)?;
    ensure!(changed["transport_protocol"] == "UDP" && changed["encrypted_media"].is_null(), "{changed}");
    ensure!(changed["failover_addresses"] == json!(["192.0.2.33:5060"]), "{changed}");
    ensure!(changed["codecs"] == json!(["PCMU"]) && changed["ring_timeout_secs"].is_null(), "{changed}");
    let shown = c.get(&uri, &jwt).await?;
    ensure!(shown.ok(StatusCode::OK)?["failover_addresses"] == json!(["192.0.2.33:5060"]), "{:?}", shown);
    let cleared = c.patch(&uri, &jwt, json!({"failover_addresses": []})).await?;
    ensure!(cleared.ok(StatusCode::OK)?["failover_addresses"] == json!([]), "{:?}", cleared);

    for (body, needles) in [
        (
            json!({"failover_addresses": ["pbx.example.com"]}),
            &["failover_addresses:", "not an IP address"][..],
        ),
        (
            json!({"failover_addresses": ["10.0.0.7:5060"]}),
            &["failover_addresses:", "allow_private_connection_ips"],
        ),
        (json!({"failover_addresses": ["192.0.2.1:0"]}), &["failover_addresses:", "port"]),
        (
            json!({"failover_addresses": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"]}),
            &["failover_addresses:", "at most 4"],
        ),
        (json!({"codecs": ["G729"]}), &["codecs:", "not a codec"]),
        (json!({"codecs": ["PCMU", "pcmu"]}), &["codecs:", "twice"]),
        (json!({"codecs": []}), &["codecs:", "at least one"]),
        (json!({"ring_timeout_secs": 0}), &["ring_timeout_secs:", "1 to 120"]),
        (json!({"ring_timeout_secs": 121}), &["ring_timeout_secs:", "1 to 120"]),
        (json!({"transport_protocol": "TLS"}), &["transport_protocol:", "register over TLS"]),
        (json!({"transport_protocol": "sctp"}), &["transport_protocol:", "UDP or TCP"]),
        (json!({"encrypted_media": "ZRTP"}), &["encrypted_media:", "SRTP or null"]),
    ] {
        c.patch(&uri, &jwt, body.clone()).await?.err(StatusCode::UNPROCESSABLE_ENTITY, needles)?;
        let mut create = body.clone();
        create["name"] = json!("bad");
        c.post("/rest/sip/connection", &jwt, create).await?.err(StatusCode::UNPROCESSABLE_ENTITY, needles)?;
    }
    let kept = c.get(&uri, &jwt).await?;
    ensure!(kept.ok(StatusCode::OK)?["codecs"] == json!(["PCMU"]), "refused updates changed nothing");

    // Another account's connection does not exist for this one.
    c.get(&uri, &other).await?.err(StatusCode::NOT_FOUND, &["sip connection"])?;
    c.patch(&uri, &other, json!({"codecs": ["PCMA"]}))
        .await?
        .err(StatusCode::NOT_FOUND, &["sip connection"])?;
    let still = c.get(&uri, &jwt).await?;
    ensure!(still.ok(StatusCode::OK)?["codecs"] == json!(["PCMU"]), "the other account changed nothing");
    Ok(())
}

/// An app's STIR/SHAKEN settings: none by default (the platform's), set, changed, cleared,
/// refused when not a policy or level, and invisible to another account.
async fn app_shaken_settings(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("shaken-app@example.test").await?;
    let (_, other) = c.signup("shaken-other@example.test").await?;
    let xml = "<Response><Hangup/></Response>";
    let plain = c.post("/rest/sip/app", &jwt, json!({"name": "plain", "xml": xml})).await?;
    let plain = plain.ok(StatusCode::CREATED)?;
    ensure!(
        plain["shaken_verify_policy"].is_null() && plain["shaken_minimum_accepted_attest_lvl"].is_null(),
        "{plain}"
    );
    let strict = c
        .post(
            "/rest/sip/app",
            &jwt,
            json!({"name": "strict", "xml": xml, "shaken_verify_policy": "reject",
                   "shaken_minimum_accepted_attest_lvl": "B"}),
        )
        .await?;
    let strict = strict.ok(StatusCode::CREATED)?;
    ensure!(
        strict["shaken_verify_policy"] == "reject" && strict["shaken_minimum_accepted_attest_lvl"] == "B",
        "{strict}"
    );
    let uri = format!("/rest/sip/app/{}", str_of(strict, "uuid")?);

    let changed = c.patch(&uri, &jwt, json!({"shaken_verify_policy": "tag"})).await?;
    let changed = changed.ok(StatusCode::OK)?;
    ensure!(
        changed["shaken_verify_policy"] == "tag" && changed["shaken_minimum_accepted_attest_lvl"] == "B",
        "only the policy changed: {changed}"
    );
    let cleared = c.patch(&uri, &jwt, json!({"shaken_minimum_accepted_attest_lvl": null})).await?;
    let cleared = cleared.ok(StatusCode::OK)?;
    ensure!(cleared["shaken_minimum_accepted_attest_lvl"].is_null(), "{cleared}");
    let shown = c.get(&uri, &jwt).await?;
    let shown = shown.ok(StatusCode::OK)?;
    ensure!(
        shown["shaken_verify_policy"] == "tag" && shown["shaken_minimum_accepted_attest_lvl"].is_null(),
        "stored: {shown}"
    );
    let listed = c.get("/rest/sip/app", &jwt).await?;
    let listed = listed.ok(StatusCode::OK)?;
    ensure!(
        listed["data"]
            .as_array()
            .is_some_and(|apps| apps.iter().any(|app| app["shaken_verify_policy"] == "tag")),
        "{listed}"
    );

    for (body, needles) in [
        (json!({"shaken_verify_policy": "maybe"}), &["`off`", "`tag`", "`reject`"][..]),
        (json!({"shaken_verify_policy": "REJECT"}), &["`reject`"][..]),
        (json!({"shaken_minimum_accepted_attest_lvl": "D"}), &["`A`", "`B`", "`C`"][..]),
        (json!({"shaken_minimum_accepted_attest_lvl": "a"}), &["`A`"][..]),
        (json!({"shaken_minimum_accepted_attest_lvl": 1}), &["malformed JSON"][..]),
    ] {
        let refused = c.patch(&uri, &jwt, body.clone()).await?;
        ensure!(refused.status.is_client_error(), "{body}: {refused:?}");
        refused.err(refused.status, needles)?;
        let mut create = body.clone();
        create["name"] = json!("bad");
        create["xml"] = json!(xml);
        let refused = c.post("/rest/sip/app", &jwt, create).await?;
        ensure!(refused.status.is_client_error(), "{body}: {refused:?}");
    }
    let kept = c.get(&uri, &jwt).await?;
    ensure!(kept.ok(StatusCode::OK)?["shaken_verify_policy"] == "tag", "refused updates changed nothing");

    // Another account's app does not exist for this one.
    c.get(&uri, &other).await?.err(StatusCode::NOT_FOUND, &["not found"])?;
    c.patch(&uri, &other, json!({"shaken_verify_policy": "off"}))
        .await?
        .err(StatusCode::NOT_FOUND, &["not found"])?;
    let still = c.get(&uri, &jwt).await?;
    ensure!(still.ok(StatusCode::OK)?["shaken_verify_policy"] == "tag", "the other account changed nothing");
    Ok(())
}
