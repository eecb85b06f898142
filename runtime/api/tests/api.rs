//! The REST API through its router (`tower::ServiceExt::oneshot`, no sockets), every case on
//! SQLite (a temp file, always) and on PostgreSQL.
//!
//! PostgreSQL: `OPENTACT_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! names a server where a fresh `opentact_api_test_<random>` database is created for each case
//! and dropped after it. If the server is unreachable the PostgreSQL half is skipped with a
//! message, except under `CI`, where that is a failure.

mod support;

use support::*;

api_test!(
    self_signup_is_the_operators_choice,
    envelope_and_bad_input,
    login_and_jwt,
    auth_failures,
    api_tokens,
    number_search,
    orders_and_leases,
    tn_profiles,
    telecom_lookup,
    paging,
    cross_account_isolation,
    sip_apps,
    component_version_quota,
    an_account_reads_and_changes_its_own_name_and_time_zone,
    account_refusals_name_the_field_and_change_nothing,
    number_orders_and_lease_changes_are_published,
    numbers_are_charged_monthly_and_renewed_or_released,
);

const DC1: Tn = 12025550100;
const DC2: Tn = 12025550199;
const NY1: Tn = 12125550100;
const IL1: Tn = 13125550917;
const HELD: Tn = 12025550000;

/// The inventory most cases use: (tn, state, voice, sms, available).
const INVENTORY: &[(Tn, &str, bool, bool, bool)] = &[
    (DC1, "DC", true, true, true),
    (DC2, "DC", true, false, true),
    (NY1, "NY", true, true, true),
    (IL1, "IL", true, true, true),
    (HELD, "DC", true, true, false),
];

// ---------------------------------------------------------------------------------------------
// cases

async fn envelope_and_bad_input(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("a@example.test").await?;
    let auth = Auth::Bearer(&jwt);

    c.get("/rest/nothing-here", &jwt)
        .await?
        .err(StatusCode::NOT_FOUND, &["no endpoint GET /rest/nothing-here"])?;
    c.call("PUT", "/rest/token/list", auth.clone(), None)
        .await?
        .err(StatusCode::METHOD_NOT_ALLOWED, &["/rest/token/list does not take PUT"])?;

    // Malformed JSON, wrong or missing content type, unknown fields, wrong types: 400s that
    // say what to fix.
    let post = |ct, body| c.raw("POST", "/rest/token", auth.clone(), ct, body);
    post(Some("application/json"), r#"{"name": "x","#)
        .await?
        .err(StatusCode::BAD_REQUEST, &["malformed JSON", "EOF"])?;
    post(Some("application/json"), r#"{"name": "x"} {}"#)
        .await?
        .err(StatusCode::BAD_REQUEST, &["trailing characters"])?;
    post(Some("application/json"), "").await?.err(StatusCode::BAD_REQUEST, &["body is empty"])?;
    post(Some("text/plain"), r#"{"name": "x"}"#)
        .await?
        .err(StatusCode::BAD_REQUEST, &["Content-Type must be application/json (got text/plain)"])?;
    post(None, r#"{"name": "x"}"#)
        .await?
        .err(StatusCode::BAD_REQUEST, &["Content-Type must be application/json"])?;
    post(Some("application/json"), r#"{"name": "x", "ttl": 60, "tll": 1}"#)
        .await?
        .err(StatusCode::BAD_REQUEST, &["unknown field `tll`", "expected `name` or `ttl`"])?;
    post(Some("application/json"), r#"{"name": 5}"#)
        .await?
        .err(StatusCode::BAD_REQUEST, &["`name`", "invalid type: integer `5`"])?;
    post(Some("application/json"), r#"{"ttl": 60}"#)
        .await?
        .err(StatusCode::BAD_REQUEST, &["missing field `name`"])?;
    post(Some("application/json"), r#"["ci", 60]"#)
        .await?
        .err(StatusCode::BAD_REQUEST, &["the body must be a JSON object"])?;
    post(Some("application/json"), "null")
        .await?
        .err(StatusCode::BAD_REQUEST, &["the body must be a JSON object"])?;
    post(Some("application/json; charset=utf-8"), r#"{"name": "ok", "ttl": 60}"#)
        .await?
        .ok(StatusCode::CREATED)?;

    // Nested path in the message.
    c.post("/rest/order", &jwt, json!({"items": [{"tn": DC1}, {"tn": "12025550199"}]}))
        .await?
        .err(StatusCode::BAD_REQUEST, &["`items[1].tn`", "expected i64"])?;

    // Bodies over the limit: 413 envelope, not a dropped connection or plain text.
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(opentact_api::envelope::MAX_JSON_BODY + 1));
    post(Some("application/json"), &big).await?.err(StatusCode::PAYLOAD_TOO_LARGE, &["larger than"])?;

    // Path and query parameters that do not parse.
    c.get("/rest/lease/tn/not-a-uuid", &jwt)
        .await?
        .err(StatusCode::BAD_REQUEST, &["\"not-a-uuid\" is not a UUID"])?;
    c.get("/rest/lease/tn?take=lots", &jwt)
        .await?
        .err(StatusCode::BAD_REQUEST, &["invalid query string", "take"])?;
    c.get("/rest/lease/tn?state=sold", &jwt)
        .await?
        .err(StatusCode::BAD_REQUEST, &["unknown variant `sold`"])?;
    Ok(())
}

async fn login_and_jwt(c: Ctx) -> anyhow::Result<()> {
    let (a, _) = c.signup("Jwt@Example.test").await?;

    // POST with a JSON body; the email is case-insensitive.
    let before = chrono::Utc::now();
    let answer = c
        .call(
            "POST",
            "/rest/auth",
            Auth::None,
            Some(json!({"email": "jwt@example.test", "password": PASSWORD})),
        )
        .await?;
    let payload = answer.ok(StatusCode::OK)?;
    let token = str_of(payload, "token")?.to_owned();
    ensure!(payload["account"] == json!(a.to_string()) && payload["token_type"] == "Bearer", "{payload}");
    let expires: chrono::DateTime<chrono::Utc> = str_of(payload, "expires_on")?.parse()?;
    let ttl = expires - before;
    ensure!(
        ttl > chrono::Duration::hours(24) - chrono::Duration::seconds(5)
            && ttl <= chrono::Duration::hours(24) + chrono::Duration::seconds(5),
        "ttl {ttl}"
    );

    // The JWT works in all three places.
    for auth in [Auth::Bearer(&token), Auth::Token(&token), Auth::Query(&token)] {
        c.call("GET", "/rest/token/list", auth, None).await?.ok(StatusCode::OK)?;
    }

    // GET with Basic, and with the query.
    let answer = c.call("GET", "/rest/auth", Auth::Basic("jwt@example.test", PASSWORD), None).await?;
    let via_basic = str_of(answer.ok(StatusCode::OK)?, "token")?.to_owned();
    c.get("/rest/token/list", &via_basic).await?.ok(StatusCode::OK)?;
    let uri = format!("/rest/auth?email=jwt%40example.test&password={}", PASSWORD.replace(' ', "%20"));
    c.call("GET", &uri, Auth::None, None).await?.ok(StatusCode::OK)?;

    // Refusals.
    c.call("GET", "/rest/auth", Auth::None, None).await?.err(
        StatusCode::UNAUTHORIZED,
        &["send Authorization: Basic base64(email:password) or ?email=&password="],
    )?;
    c.call("GET", "/rest/auth", Auth::Basic("jwt@example.test", "nope"), None).await?.err(
        StatusCode::UNAUTHORIZED,
        &["Authorization: Basic authentication failed: wrong email or password"],
    )?;
    c.call("GET", "/rest/auth", Auth::Header("Bearer abc"), None)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["GET /rest/auth takes Authorization: Basic"])?;
    for (email, password) in [("jwt@example.test", "wrong"), ("nobody@example.test", PASSWORD)] {
        c.call("POST", "/rest/auth", Auth::None, Some(json!({"email": email, "password": password})))
            .await?
            .err(
                StatusCode::UNAUTHORIZED,
                &["email and password authentication failed: wrong email or password"],
            )?;
    }
    c.call("POST", "/rest/auth", Auth::None, Some(json!({"email": "jwt@example.test", "password": ""})))
        .await?
        .err(StatusCode::UNAUTHORIZED, &["email and password are both required"])?;
    c.call("POST", "/rest/auth", Auth::None, Some(json!({"email": "jwt@example.test"})))
        .await?
        .err(StatusCode::BAD_REQUEST, &["missing field `password`"])?;

    // A JWT signed with another key, a tampered one, an expired one, an alg=none one.
    let other = JwtSecret::new(vec![9u8; 32])?;
    let now = chrono::Utc::now().timestamp();
    let forged = jwt::issue(&other, &Claims { sub: a, iat: now, exp: now + 3600 });
    c.get("/rest/token/list", &forged).await?.err(
        StatusCode::UNAUTHORIZED,
        &["Authorization: Bearer authentication failed: the JWT signature is invalid"],
    )?;
    // One character in the middle of the signature (the last one may only flip padding bits).
    let mut tampered = token.clone().into_bytes();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered)?;
    c.call("GET", "/rest/token/list", Auth::Token(&tampered), None).await?.err(
        StatusCode::UNAUTHORIZED,
        &["X-Auth-Token authentication failed: the JWT signature is invalid"],
    )?;
    let expired = jwt::issue(&c.secret, &Claims { sub: a, iat: now - 7200, exp: now - 3600 });
    c.call("GET", "/rest/token/list", Auth::Query(&expired), None)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["?jwt= authentication failed: the JWT has expired"])?;
    let payload = token.split('.').nth(1).context("payload")?;
    let none = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#));
    c.get("/rest/token/list", &none)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["the JWT algorithm must be HS256"])?;
    c.get("/rest/token/list", "a.b.c").await?.err(StatusCode::UNAUTHORIZED, &["the JWT is malformed"])?;

    // A valid JWT of a deleted account stops working.
    c.store.delete_account(a).await?;
    c.get("/rest/token/list", &token)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["the JWT's account no longer exists"])?;
    Ok(())
}

async fn auth_failures(c: Ctx) -> anyhow::Result<()> {
    let (a, jwt) = c.signup("auth@example.test").await?;
    let list = |auth| c.call("GET", "/rest/lease/tn", auth, None);

    list(Auth::None)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["authentication required", "Authorization: Bearer"])?;
    let unknown = "ab".repeat(32);
    list(Auth::Bearer(&unknown)).await?.err(
        StatusCode::UNAUTHORIZED,
        &["Authorization: Bearer authentication failed: the API token is unknown, revoked or expired"],
    )?;
    list(Auth::Token(&unknown))
        .await?
        .err(StatusCode::UNAUTHORIZED, &["X-Auth-Token authentication failed"])?;
    list(Auth::Query(&unknown)).await?.err(StatusCode::UNAUTHORIZED, &["?jwt= authentication failed"])?;
    list(Auth::Bearer("")).await?.err(StatusCode::UNAUTHORIZED, &["the token is empty"])?;
    list(Auth::Header("Digest username=x"))
        .await?
        .err(StatusCode::UNAUTHORIZED, &["scheme must be Bearer or Basic"])?;

    // Basic: right, wrong password, unknown account, not base64.
    list(Auth::Basic("auth@example.test", PASSWORD)).await?.ok(StatusCode::OK)?;
    list(Auth::Basic("auth@example.test", "wrong")).await?.err(
        StatusCode::UNAUTHORIZED,
        &["Authorization: Basic authentication failed: wrong email or password"],
    )?;
    list(Auth::Basic("ghost@example.test", PASSWORD))
        .await?
        .err(StatusCode::UNAUTHORIZED, &["wrong email or password"])?;
    list(Auth::Header("Basic %%%")).await?.err(StatusCode::UNAUTHORIZED, &["not base64(email:password)"])?;
    let no_colon = format!("Basic {}", STANDARD.encode("auth@example.test"));
    list(Auth::Header(&no_colon)).await?.err(StatusCode::UNAUTHORIZED, &["not base64(email:password)"])?;

    // An API token works until it expires (the store takes a 1 s ttl; the API refuses < 60).
    let short = c.store.create_token(a, NewApiToken { name: "short".into(), ttl_secs: Some(1) }).await?;
    list(Auth::Bearer(&short.plain)).await?.ok(StatusCode::OK)?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    list(Auth::Bearer(&short.plain))
        .await?
        .err(StatusCode::UNAUTHORIZED, &["the API token is unknown, revoked or expired"])?;

    // The first credential present decides: a bad Authorization is not rescued by a good ?jwt=.
    list(Auth::Bearer(&unknown)).await?.err(StatusCode::UNAUTHORIZED, &["Bearer"])?;
    let uri = format!("/rest/lease/tn?jwt={jwt}");
    c.call("GET", &uri, Auth::Bearer(&unknown), None)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["Authorization: Bearer"])?;
    c.call("GET", &uri, Auth::None, None).await?.ok(StatusCode::OK)?;

    // /rest/auth itself needs no credentials, everything else does.
    for (method, uri) in [
        ("POST", "/rest/token"),
        ("DELETE", "/rest/token/all"),
        ("POST", "/rest/tn/search"),
        ("POST", "/rest/order"),
        ("GET", "/rest/profile/tn"),
        ("GET", "/rest/telecom/lookup/12025550100"),
    ] {
        c.call(method, uri, Auth::None, Some(json!({})))
            .await?
            .err(StatusCode::UNAUTHORIZED, &["authentication required"])
            .with_context(|| format!("{method} {uri}"))?;
    }
    Ok(())
}

async fn api_tokens(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("tok@example.test").await?;

    c.post("/rest/token", &jwt, json!({"name": "ci", "ttl": 59}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["ttl: must be between 60 and", "(got 59)"])?;
    c.post("/rest/token", &jwt, json!({"name": "  ", "ttl": 60}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["name: must be 1 to 100 characters"])?;

    let created = c.post("/rest/token", &jwt, json!({"name": "ci", "ttl": 3600})).await?;
    let created = created.ok(StatusCode::CREATED)?.clone();
    let plain = str_of(&created, "token")?.to_owned();
    ensure!(plain.len() == 64 && plain.bytes().all(|b| b.is_ascii_hexdigit()), "token {plain}");
    ensure!(
        created["name"] == "ci" && created["expires_on"].is_string() && created.get("token_hash").is_none(),
        "{created}"
    );
    let id = str_of(&created, "uuid")?.to_owned();

    let forever = c.post("/rest/token", &jwt, json!({"name": "forever"})).await?;
    let forever = forever.ok(StatusCode::CREATED)?.clone();
    ensure!(forever["expires_on"].is_null(), "{forever}");
    let forever_plain = str_of(&forever, "token")?.to_owned();

    // The token authenticates, as Bearer and as X-Auth-Token.
    c.get("/rest/token/list", &plain).await?.ok(StatusCode::OK)?;
    c.call("GET", "/rest/token/list", Auth::Token(&plain), None).await?.ok(StatusCode::OK)?;

    // Listed without the secret.
    let list = c.get("/rest/token/list", &jwt).await?;
    let list = list.ok(StatusCode::OK)?;
    ensure!(list["total"] == 2, "{list}");
    for t in list["data"].as_array().context("data")? {
        ensure!(t.get("token").is_none() && t.get("token_hash").is_none(), "secret listed: {t}");
    }

    // Delete by id: it stops working; deleting again is a 404.
    let answer = c.delete(&format!("/rest/token/{id}"), &jwt).await?;
    ensure!(answer.ok(StatusCode::OK)?["deleted"] == 1, "{:?}", answer);
    c.get("/rest/token/list", &plain)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["unknown, revoked or expired"])?;
    c.delete(&format!("/rest/token/{id}"), &jwt).await?.err(StatusCode::NOT_FOUND, &["api token", &id])?;

    // Delete by the plain token; an unknown one is a 404 that does not echo it.
    c.delete(&format!("/rest/token/{forever_plain}"), &jwt).await?.ok(StatusCode::OK)?;
    c.get("/rest/token/list", &forever_plain).await?.err(StatusCode::UNAUTHORIZED, &[])?;
    let unknown = "cd".repeat(32);
    let answer = c.delete(&format!("/rest/token/{unknown}"), &jwt).await?;
    answer.err(StatusCode::NOT_FOUND, &["api token"])?;
    ensure!(!answer.body["message"].as_str().unwrap_or("").contains(&unknown), "token echoed");

    // Delete all.
    let mut plains = Vec::new();
    for name in ["x", "y", "z"] {
        let t = c.post("/rest/token", &jwt, json!({"name": name, "ttl": 60})).await?;
        plains.push(str_of(t.ok(StatusCode::CREATED)?, "token")?.to_owned());
    }
    let answer = c.delete("/rest/token/all", &plains[0]).await?;
    ensure!(answer.ok(StatusCode::OK)?["deleted"] == 3, "{:?}", answer);
    for p in &plains {
        c.get("/rest/token/list", p).await?.err(StatusCode::UNAUTHORIZED, &[])?;
    }
    let list = c.get("/rest/token/list", &jwt).await?;
    ensure!(list.ok(StatusCode::OK)?["total"] == 0, "{:?}", list);
    Ok(())
}

async fn number_search(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("search@example.test").await?;
    c.seed(INVENTORY).await?;
    let search = |body: Value| c.post("/rest/tn/search", &jwt, body);

    let all = search(json!({})).await?;
    let all = all.ok(StatusCode::OK)?;
    ensure!(tns(all) == vec![DC1, DC2, NY1, IL1], "held number listed or wrong order: {all}");
    ensure!(all["data"][0]["tn"].is_i64() && all["data"][0]["features"] == json!(["voice", "sms"]), "{all}");
    ensure!(all["data"][1]["features"] == json!(["voice"]), "{all}");

    let cases: &[(Value, &[Tn])] = &[
        (json!({"pattern": "202*******"}), &[DC1, DC2]),
        (json!({"pattern": "*******100"}), &[DC1, NY1]),
        (json!({"pattern": "**********"}), &[DC1, DC2, NY1, IL1]),
        (json!({"pattern": "3125550917"}), &[IL1]),
        (json!({"pattern": "202*****99"}), &[DC2]),
        (json!({"npa": 202, "features": ["sms"]}), &[DC1]),
        (json!({"pattern": "202*******", "npa": 202, "features": ["voice", "sms"]}), &[DC1]),
        (json!({"state": "ny"}), &[NY1]),
        (json!({"state": "DC", "pattern": "*******1**"}), &[DC1, DC2]),
        (json!({"pattern": "415*******"}), &[]),
    ];
    for (body, want) in cases {
        let answer = search(body.clone()).await?;
        let page = answer.ok(StatusCode::OK)?;
        ensure!(tns(page) == *want && page["total"] == json!(want.len()), "{body}: {page}");
    }

    // Paging over a wildcard scan: total counts every match.
    let answer = c.post("/rest/tn/search?take=1&skip=1", &jwt, json!({"pattern": "*******100"})).await?;
    let page = answer.ok(StatusCode::OK)?;
    ensure!(tns(page) == vec![NY1] && page["total"] == 2 && page["take"] == 1 && page["skip"] == 1, "{page}");

    // Validation.
    let bad: &[(Value, StatusCode, &[&str])] = &[
        (
            json!({"pattern": "202"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["pattern: must be ten characters", "\"202\""],
        ),
        (
            json!({"pattern": "20a*******"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["pattern: must be ten characters, each a digit or *"],
        ),
        (json!({"pattern": 2025550100i64}), StatusCode::BAD_REQUEST, &["`pattern`", "expected a string"]),
        (
            json!({"npa": 99}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["npa: must be a three-digit area code", "got 99"],
        ),
        (
            json!({"npa": 212, "pattern": "202*******"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["npa: 212 contradicts the pattern's area code 202"],
        ),
        (
            json!({"features": ["fax"]}),
            StatusCode::BAD_REQUEST,
            &["`features[0]`", "unknown variant `fax`, expected `voice` or `sms`"],
        ),
        (
            json!({"state": "New York"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["state: must be a two-letter code"],
        ),
        (json!({"region": "NY"}), StatusCode::BAD_REQUEST, &["unknown field `region`"]),
    ];
    for (body, status, needles) in bad {
        search(body.clone()).await?.err(*status, needles).with_context(|| body.to_string())?;
    }
    c.post("/rest/tn/search?take=1001", &jwt, json!({}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["take: must be at most 1000"])?;
    Ok(())
}

async fn orders_and_leases(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("order@example.test").await?;
    let (_, other) = c.signup("other@example.test").await?;
    c.seed(INVENTORY).await?;

    // Validation before anything is leased.
    let bad: &[(Value, StatusCode, &[&str])] = &[
        (json!({"items": []}), StatusCode::UNPROCESSABLE_ENTITY, &["items: must hold 1 to 100 numbers"]),
        (json!({}), StatusCode::BAD_REQUEST, &["missing field `items`"]),
        (
            json!({"items": [{"tn": DC1}, {"tn": DC1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["items[1].tn: 12025550100 is in the order twice"],
        ),
        (
            json!({"items": [{"tn": 42}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["items[0].tn: 42 is not a telephone number"],
        ),
        (
            json!({"items": [{"tn": DC1, "features": []}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["items[0].features: must name voice, sms or both"],
        ),
        (
            json!({"items": [{"tn": DC1, "features": ["fax"]}]}),
            StatusCode::BAD_REQUEST,
            &["`items[0].features[0]`", "unknown variant `fax`"],
        ),
        (
            json!({"items": [{"tn": DC1, "autorenw": true}]}),
            StatusCode::BAD_REQUEST,
            &["unknown field `autorenw`"],
        ),
    ];
    for (body, status, needles) in bad {
        c.post("/rest/order", &jwt, body.clone())
            .await?
            .err(*status, needles)
            .with_context(|| body.to_string())?;
    }
    let leases = c.get("/rest/lease/tn", &jwt).await?;
    ensure!(leases.ok(StatusCode::OK)?["total"] == 0, "a refused order leased: {:?}", leases);

    // One good item, one asking for a feature the number lacks, one unknown, one held back.
    let answer = c
        .post(
            "/rest/order",
            &jwt,
            json!({"items": [
                {"tn": DC1, "features": ["voice", "sms"], "autorenew": true},
                {"tn": DC2, "features": ["sms"]},
                {"tn": 19995550100i64},
                {"tn": HELD},
            ]}),
        )
        .await?;
    let order = answer.ok(StatusCode::CREATED)?.clone();
    ensure!(
        order["state"] == "partial"
            && order["total"] == 4
            && order["success"] == 1
            && order["failed"] == 3
            && order["processing"] == 0,
        "{order}"
    );
    Uuid::parse_str(str_of(&order, "uuid")?)?;
    let items = order["items"].as_array().context("items")?;
    ensure!(items[0]["state"] == "success" && items[0]["tn"] == json!(DC1), "{order}");
    ensure!(
        items[1]["state"] == "failed" && items[1]["message"] == "number 12025550199 does not support sms",
        "{order}"
    );
    ensure!(items[2]["message"] == "number 19995550100 is not offered", "{order}");
    ensure!(items[3]["message"] == "number 12025550000 is not available", "{order}");
    let lease = items[0]["lease"].as_str().context("the item's lease id")?.to_owned();
    let leased = c.get(&format!("/rest/lease/tn/{lease}"), &jwt).await?;
    let leased = leased.ok(StatusCode::OK)?;
    ensure!(leased["tn"] == json!(DC1) && leased["autorenew"] == true, "{leased}");

    // The order is kept: read back, and found by state, by number, newest first.
    let uri = format!("/rest/order/{}", str_of(&order, "uuid")?);
    let stored = c.get(&uri, &jwt).await?;
    ensure!(stored.ok(StatusCode::OK)? == &order, "stored {:?} vs answered {order}", stored);
    c.get(&uri, &other).await?.err(StatusCode::NOT_FOUND, &["order", "not found"])?;
    let found = c.post("/rest/order/search", &jwt, json!({"state": "partial", "tn": DC1})).await?;
    let found = found.ok(StatusCode::OK)?;
    ensure!(found["total"] == 1 && found["data"][0] == order, "{found}");
    let none = c.post("/rest/order/search", &jwt, json!({"state": "success"})).await?;
    ensure!(none.ok(StatusCode::OK)?["total"] == 0, "{:?}", none);
    let none = c.post("/rest/order/search", &other, json!({})).await?;
    ensure!(none.ok(StatusCode::OK)?["total"] == 0, "another account's orders are invisible: {:?}", none);
    c.post("/rest/order/search", &jwt, json!({"state": "done"}))
        .await?
        .err(StatusCode::BAD_REQUEST, &["state", "success", "partial", "failed"])?;
    c.post("/rest/order/search", &jwt, json!({"tn": 5}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["tn: 5 is not a telephone number"])?;

    // Another account cannot order the same number; a whole failed order is "failed".
    let answer = c.post("/rest/order", &other, json!({"items": [{"tn": DC1}]})).await?;
    let o = answer.ok(StatusCode::CREATED)?;
    ensure!(
        o["state"] == "failed" && o["items"][0]["message"] == "number 12025550100 is not available",
        "{o}"
    );
    // Features default to what the number has. (A moment later, so "newest first" is defined.)
    tokio::time::sleep(Duration::from_millis(5)).await;
    let answer = c.post("/rest/order", &other, json!({"items": [{"tn": DC2}]})).await?;
    let o = answer.ok(StatusCode::CREATED)?;
    ensure!(o["state"] == "success", "{o}");
    let second = o["items"][0]["lease"].as_str().context("lease id")?;
    let second = c.get(&format!("/rest/lease/tn/{second}"), &other).await?;
    let second = second.ok(StatusCode::OK)?;
    ensure!(second["voice"] == true && second["sms"] == false, "{second}");
    let newest =
        c.post("/rest/order/search?take=1", &other, json!({"order": {"created_on": "DESC"}})).await?;
    let newest = newest.ok(StatusCode::OK)?;
    ensure!(newest["total"] == 2 && newest["data"][0]["uuid"] == o["uuid"], "{newest}");

    // The leased number is no longer offered.
    let s = c.post("/rest/tn/search", &jwt, json!({"pattern": "202*******"})).await?;
    ensure!(tns(s.ok(StatusCode::OK)?).is_empty(), "{:?}", s);

    // Leases.
    let list = c.get("/rest/lease/tn", &jwt).await?;
    let list = list.ok(StatusCode::OK)?;
    ensure!(
        list["total"] == 1 && list["data"][0]["tn"] == json!(DC1) && list["data"][0]["tn"].is_i64(),
        "{list}"
    );
    let uri = format!("/rest/lease/tn/{lease}");
    let got = c.get(&uri, &jwt).await?;
    ensure!(got.ok(StatusCode::OK)?["sms"] == true, "{:?}", got);

    let answer = c.patch(&uri, &jwt, json!({"autorenew": false, "sms": false})).await?;
    let l = answer.ok(StatusCode::OK)?;
    ensure!(l["autorenew"] == false && l["sms"] == false && l["voice"] == true, "{l}");

    c.patch(&uri, &jwt, json!({})).await?.err(StatusCode::UNPROCESSABLE_ENTITY, &["nothing to change"])?;
    c.patch(&uri, &jwt, json!({"autorenew": "yes"}))
        .await?
        .err(StatusCode::BAD_REQUEST, &["`autorenew`", "expected a boolean"])?;
    c.patch(&uri, &jwt, json!({"messaging_profile_uuid": Uuid::new_v4()}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["messaging_profile_uuid: messaging profile", "not found"])?;
    let ghost = Uuid::new_v4();
    c.patch(&uri, &jwt, json!({"tn_profile": ghost})).await?.err(
        StatusCode::UNPROCESSABLE_ENTITY,
        &["tn_profile: tn profile", &ghost.to_string(), "not found"],
    )?;
    c.patch(&uri, &jwt, json!({"sip_connection": ghost}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["sip_connection: sip connection"])?;
    c.patch(&uri, &jwt, json!({"tn_profile": "nope"}))
        .await?
        .err(StatusCode::BAD_REQUEST, &["`tn_profile`", "UUID"])?;

    // Attach a profile, then detach it with null.
    let p = c.post("/rest/profile/tn", &jwt, json!({"name": "front desk"})).await?;
    let profile = str_of(p.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    let answer = c.patch(&uri, &jwt, json!({"tn_profile": profile})).await?;
    ensure!(answer.ok(StatusCode::OK)?["tn_profile"] == json!(profile), "{:?}", answer);
    let answer = c.patch(&uri, &jwt, json!({"tn_profile": null})).await?;
    let l = answer.ok(StatusCode::OK)?;
    ensure!(l["tn_profile"].is_null() && l["autorenew"] == false, "{l}");

    // Release: the lease stays readable as history, the number is offered again.
    let answer = c.delete(&uri, &jwt).await?;
    ensure!(answer.ok(StatusCode::OK)?["released_on"].is_string(), "{:?}", answer);
    let got = c.get(&uri, &jwt).await?;
    ensure!(got.ok(StatusCode::OK)?["released_on"].is_string(), "{:?}", got);
    c.patch(&uri, &jwt, json!({"autorenew": true}))
        .await?
        .err(StatusCode::NOT_FOUND, &["tn lease", &lease])?;
    c.delete(&uri, &jwt).await?.err(StatusCode::NOT_FOUND, &["tn lease", &lease])?;
    let active = c.get("/rest/lease/tn", &jwt).await?;
    ensure!(active.ok(StatusCode::OK)?["total"] == 0, "{:?}", active);
    let released = c.get("/rest/lease/tn?state=released", &jwt).await?;
    ensure!(tns(released.ok(StatusCode::OK)?) == vec![DC1], "{:?}", released);
    let all = c.get("/rest/lease/tn?state=all&take=10", &jwt).await?;
    ensure!(all.ok(StatusCode::OK)?["total"] == 1, "{:?}", all);
    let s = c.post("/rest/tn/search", &jwt, json!({"pattern": "202*******"})).await?;
    ensure!(tns(s.ok(StatusCode::OK)?) == vec![DC1], "{:?}", s);

    c.get(&format!("/rest/lease/tn/{}", Uuid::new_v4()), &jwt)
        .await?
        .err(StatusCode::NOT_FOUND, &["tn lease"])?;
    Ok(())
}

async fn tn_profiles(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("profile@example.test").await?;

    let bad: &[(Value, StatusCode, &[&str])] = &[
        (json!({"name": ""}), StatusCode::UNPROCESSABLE_ENTITY, &["name: must be 1 to 100 characters"]),
        (
            json!({"name": "x".repeat(101)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["name: must be 1 to 100 characters"],
        ),
        (
            json!({"name": "p", "blacklist": ["12a"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["blacklist[0]: \"12a\" is not a number or prefix"],
        ),
        (
            json!({"name": "p", "whitelist": [1, "1234567890123456"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["whitelist[1]:"],
        ),
        (
            json!({"name": "p", "blacklist": [true]}),
            StatusCode::BAD_REQUEST,
            &["`blacklist[0]`", "a number or prefix"],
        ),
        (json!({"name": "p", "greylist": []}), StatusCode::BAD_REQUEST, &["unknown field `greylist`"]),
    ];
    for (body, status, needles) in bad {
        c.post("/rest/profile/tn", &jwt, body.clone())
            .await?
            .err(*status, needles)
            .with_context(|| body.to_string())?;
    }

    let answer = c
        .post(
            "/rest/profile/tn",
            &jwt,
            json!({"name": " Sales ", "blacklist": [1202555, "+1312"], "whitelist": []}),
        )
        .await?;
    let p = answer.ok(StatusCode::CREATED)?.clone();
    ensure!(
        p["name"] == "Sales" && p["blacklist"] == json!(["1202555", "1312"]) && p["whitelist"] == json!([]),
        "{p}"
    );
    let id = str_of(&p, "uuid")?.to_owned();
    let uri = format!("/rest/profile/tn/{id}");

    let list = c.get("/rest/profile/tn", &jwt).await?;
    ensure!(list.ok(StatusCode::OK)?["total"] == 1, "{:?}", list);
    let got = c.get(&uri, &jwt).await?;
    ensure!(got.ok(StatusCode::OK)?["uuid"] == json!(id), "{:?}", got);

    let answer = c.patch(&uri, &jwt, json!({"name": "Support"})).await?;
    ensure!(answer.ok(StatusCode::OK)?["name"] == "Support", "{:?}", answer);
    c.patch(&uri, &jwt, json!({"name": ""})).await?.err(StatusCode::UNPROCESSABLE_ENTITY, &["name:"])?;

    let answer =
        c.post(&format!("{uri}/blacklist"), &jwt, json!({"add": ["1415"], "remove": [1202555]})).await?;
    let p = answer.ok(StatusCode::OK)?;
    let mut black: Vec<&str> =
        p["blacklist"].as_array().context("blacklist")?.iter().filter_map(Value::as_str).collect();
    black.sort_unstable();
    ensure!(black == ["1312", "1415"], "{p}");
    let answer = c.post(&format!("{uri}/whitelist"), &jwt, json!({"add": [12025550100i64]})).await?;
    let p = answer.ok(StatusCode::OK)?;
    ensure!(
        p["whitelist"] == json!(["12025550100"]) && p["blacklist"].as_array().map(Vec::len) == Some(2),
        "{p}"
    );

    c.post(&format!("{uri}/blacklist"), &jwt, json!({}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["nothing to change"])?;
    c.post(&format!("{uri}/whitelist"), &jwt, json!({"add": ["x1"]}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["add[0]: \"x1\" is not a number or prefix"])?;
    c.post(&format!("{uri}/whitelist"), &jwt, json!({"remove": [""]}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["remove[0]:"])?;

    let answer = c.delete(&uri, &jwt).await?;
    ensure!(answer.ok(StatusCode::OK)?["deleted"] == true, "{:?}", answer);
    c.get(&uri, &jwt).await?.err(StatusCode::NOT_FOUND, &["tn profile", &id])?;
    c.delete(&uri, &jwt).await?.err(StatusCode::NOT_FOUND, &["tn profile"])?;
    c.post(&format!("{uri}/blacklist"), &jwt, json!({"add": ["1"]}))
        .await?
        .err(StatusCode::NOT_FOUND, &["tn profile"])?;
    let list = c.get("/rest/profile/tn", &jwt).await?;
    ensure!(list.ok(StatusCode::OK)?["total"] == 0, "{:?}", list);
    Ok(())
}

async fn telecom_lookup(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("lookup@example.test").await?;

    let answer = c.get("/rest/telecom/lookup/12015550123", &jwt).await?;
    let d = answer.ok(StatusCode::OK)?;
    ensure!(
        d["tn"] == json!(12015550123i64)
            && d["npa"] == 201
            && d["nxx"] == 555
            && d["country"] == "US"
            && d["state"] == "NJ"
            && d["time_zone"] == "America/New_York"
            && d["line_type"].is_null(),
        "{d}"
    );
    // Ten digits work too; Washington D.C. has no state code in the data.
    let answer = c.get("/rest/telecom/lookup/2029822917", &jwt).await?;
    let d = answer.ok(StatusCode::OK)?;
    ensure!(
        d["tn"] == json!(12029822917i64) && d["region"] == "Washington D.C." && d["state"].is_null(),
        "{d}"
    );
    let answer = c.get("/rest/telecom/lookup/12045550123", &jwt).await?;
    ensure!(answer.ok(StatusCode::OK)?["time_zone"] == "America/Winnipeg", "{:?}", answer);

    for bad in ["abc", "120255501", "22025550100", "1202555010x"] {
        c.get(&format!("/rest/telecom/lookup/{bad}"), &jwt)
            .await?
            .err(StatusCode::UNPROCESSABLE_ENTITY, &["tn:", "is not a North American number"])
            .with_context(|| bad.to_owned())?;
    }
    c.get("/rest/telecom/lookup/11115550100", &jwt)
        .await?
        .err(StatusCode::NOT_FOUND, &["no telecom data for 11115550100"])?;
    Ok(())
}

async fn paging(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("paging@example.test").await?;
    for i in 0..5 {
        c.post("/rest/profile/tn", &jwt, json!({"name": format!("p{i}")})).await?.ok(StatusCode::CREATED)?;
    }
    let answer = c.get("/rest/profile/tn?take=2&skip=1", &jwt).await?;
    let page = answer.ok(StatusCode::OK)?;
    let names: Vec<&str> =
        page["data"].as_array().context("data")?.iter().filter_map(|p| p["name"].as_str()).collect();
    ensure!(page["take"] == 2 && page["skip"] == 1 && page["total"] == 5 && names == ["p1", "p2"], "{page}");
    let answer = c.get("/rest/profile/tn?skip=4", &jwt).await?;
    let page = answer.ok(StatusCode::OK)?;
    ensure!(page["take"] == 50 && page["data"].as_array().map(Vec::len) == Some(1), "{page}");
    let answer = c.get("/rest/profile/tn?take=0", &jwt).await?;
    let page = answer.ok(StatusCode::OK)?;
    ensure!(page["total"] == 5 && page["data"] == json!([]), "{page}");
    c.get("/rest/profile/tn?take=1001", &jwt)
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["take: must be at most 1000"])?;
    c.get("/rest/profile/tn?skip=-1", &jwt)
        .await?
        .err(StatusCode::BAD_REQUEST, &["invalid query string", "skip"])?;
    // ?jwt= next to paging parameters.
    let uri = format!("/rest/profile/tn?take=1&jwt={jwt}");
    let answer = c.call("GET", &uri, Auth::None, None).await?;
    ensure!(answer.ok(StatusCode::OK)?["data"].as_array().map(Vec::len) == Some(1), "{:?}", answer);
    Ok(())
}

async fn cross_account_isolation(c: Ctx) -> anyhow::Result<()> {
    let (_, a) = c.signup("alice@example.test").await?;
    let (_, b) = c.signup("bob@example.test").await?;
    c.seed(INVENTORY).await?;

    // Alice's objects.
    let o = c.post("/rest/order", &a, json!({"items": [{"tn": DC1}]})).await?;
    let a_lease = o.ok(StatusCode::CREATED)?["items"][0]["lease"].as_str().context("lease")?.to_owned();
    let p = c.post("/rest/profile/tn", &a, json!({"name": "alice", "blacklist": ["1900"]})).await?;
    let a_profile = str_of(p.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    let t = c.post("/rest/token", &a, json!({"name": "alice", "ttl": 3600})).await?;
    let t = t.ok(StatusCode::CREATED)?.clone();
    let (a_token, a_plain) = (str_of(&t, "uuid")?.to_owned(), str_of(&t, "token")?.to_owned());

    // Bob's API token, his third way in.
    let t = c.post("/rest/token", &b, json!({"name": "bob", "ttl": 3600})).await?;
    let b_plain = str_of(t.ok(StatusCode::CREATED)?, "token")?.to_owned();

    // Bob's own lease, to try attaching Alice's profile to it.
    let o = c.post("/rest/order", &b, json!({"items": [{"tn": NY1}]})).await?;
    let b_lease = o.ok(StatusCode::CREATED)?["items"][0]["lease"].as_str().context("lease")?.to_owned();

    // Every endpoint that takes an id answers Bob 404 for Alice's.
    let lease_uri = format!("/rest/lease/tn/{a_lease}");
    let profile_uri = format!("/rest/profile/tn/{a_profile}");
    let matrix: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", lease_uri.clone(), None),
        ("PATCH", lease_uri.clone(), Some(json!({"autorenew": true}))),
        ("DELETE", lease_uri.clone(), None),
        ("GET", profile_uri.clone(), None),
        ("PATCH", profile_uri.clone(), Some(json!({"name": "bob's now"}))),
        ("POST", format!("{profile_uri}/blacklist"), Some(json!({"remove": ["1900"]}))),
        ("POST", format!("{profile_uri}/whitelist"), Some(json!({"add": ["1"]}))),
        ("DELETE", profile_uri.clone(), None),
        ("DELETE", format!("/rest/token/{a_token}"), None),
        ("DELETE", format!("/rest/token/{a_plain}"), None),
    ];
    for (method, uri, body) in &matrix {
        for auth in [Auth::Bearer(&b), Auth::Token(&b_plain), Auth::Basic("bob@example.test", PASSWORD)] {
            c.call(method, uri, auth, body.clone())
                .await?
                .err(StatusCode::NOT_FOUND, &["not found"])
                .with_context(|| format!("bob {method} {uri}"))?;
        }
    }

    // Alice's profile cannot be attached to Bob's lease.
    c.patch(&format!("/rest/lease/tn/{b_lease}"), &b, json!({"tn_profile": a_profile}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["tn_profile: tn profile", &a_profile, "not found"])?;

    // Bob's lists do not show Alice's objects; his delete-all leaves hers.
    let leases = c.get("/rest/lease/tn?state=all", &b).await?;
    ensure!(tns(leases.ok(StatusCode::OK)?) == vec![NY1], "{:?}", leases);
    let profiles = c.get("/rest/profile/tn", &b).await?;
    ensure!(profiles.ok(StatusCode::OK)?["total"] == 0, "{:?}", profiles);
    let tokens = c.get("/rest/token/list", &b).await?;
    ensure!(tokens.ok(StatusCode::OK)?["total"] == 1, "{:?}", tokens);
    c.delete("/rest/token/all", &b).await?.ok(StatusCode::OK)?;

    // Nothing of Alice's changed.
    let lease = c.get(&lease_uri, &a).await?;
    let lease = lease.ok(StatusCode::OK)?;
    ensure!(lease["released_on"].is_null() && lease["autorenew"] == false, "{lease}");
    let profile = c.get(&profile_uri, &a).await?;
    let profile = profile.ok(StatusCode::OK)?;
    ensure!(
        profile["name"] == "alice"
            && profile["blacklist"] == json!(["1900"])
            && profile["whitelist"] == json!([]),
        "{profile}"
    );
    c.get("/rest/token/list", &a_plain).await?.ok(StatusCode::OK)?;
    Ok(())
}

/// Refuses components whose bytes contain "bad": stands in for the server's compile check.
struct FakeCheck;

impl opentact_api::ComponentCheck for FakeCheck {
    fn check(
        &self,
        bytes: Vec<u8>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), opentact_api::ComponentRefused>> + Send + '_>,
    > {
        Box::pin(async move {
            if bytes.windows(3).any(|w| w == b"bad") {
                Err(opentact_api::ComponentRefused::Invalid("does not implement the flow world".to_owned()))
            } else if bytes.windows(4).any(|w| w == b"busy") {
                Err(opentact_api::ComponentRefused::Busy("compiling others; try again shortly".to_owned()))
            } else {
                Ok(())
            }
        })
    }
}

async fn sip_apps(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("apps@example.test").await?;
    let (_, other) = c.signup("other-apps@example.test").await?;

    let bad: &[(Value, &[&str])] = &[
        (json!({"xml": "<Response/>"}), &["name: is required"]),
        (json!({"name": "a"}), &["mode: give one of"]),
        (json!({"name": "a", "xml": "<Response/>", "control": "async"}), &["mode: give one of"]),
        (
            json!({"name": "a", "xml": "<Response>\n  <Sayy>hi</Sayy>\n</Response>"}),
            &["xml: line 2, column 3: unknown element <Sayy>"],
        ),
        (json!({"name": "a", "webhook_url": "ftp://x"}), &["webhook_url: must be an http(s) URL"]),
        (
            json!({"name": "a", "webhook_url": "https://x.test/h", "webhook_method": "PUT"}),
            &["webhook_method"],
        ),
        (json!({"name": "a", "control": "sync"}), &["control:"]),
        (
            json!({"name": "a", "component": true, "max_call_length_min": 0}),
            &["max_call_length_min: 1 to 1440"],
        ),
    ];
    for (body, needles) in bad {
        c.post("/rest/sip/app", &jwt, body.clone())
            .await?
            .err(StatusCode::UNPROCESSABLE_ENTITY, needles)
            .with_context(|| body.to_string())?;
    }

    let created = c
        .post(
            "/rest/sip/app",
            &jwt,
            json!({"name": "IVR", "xml": "<Response><Say>Hi</Say><Hangup/></Response>"}),
        )
        .await?;
    let app = created.ok(StatusCode::CREATED)?.clone();
    ensure!(app["mode"] == "xml" && app["document"].is_string() && app["auto_answer"] == true, "{app}");
    let id = str_of(&app, "uuid")?.to_owned();
    let uri = format!("/rest/sip/app/{id}");
    ensure!(c.get("/rest/sip/app", &jwt).await?.ok(StatusCode::OK)?["total"] == 1);
    let patched = c
        .patch(&uri, &jwt, json!({"webhook_url": "https://hooks.example.test/flow", "webhook_method": "GET"}))
        .await?;
    let patched = patched.ok(StatusCode::OK)?;
    ensure!(patched["mode"] == "webhook" && patched["method"] == "GET", "{patched}");
    c.patch(&uri, &jwt, json!({})).await?.err(StatusCode::UNPROCESSABLE_ENTITY, &["nothing to change"])?;

    // Another account sees none of it.
    c.get(&uri, &other).await?.err(StatusCode::NOT_FOUND, &[])?;
    c.patch(&uri, &other, json!({"name": "mine"})).await?.err(StatusCode::NOT_FOUND, &[])?;
    c.delete(&uri, &other).await?.err(StatusCode::NOT_FOUND, &[])?;
    c.get(&format!("{uri}/component"), &other).await?.err(StatusCode::NOT_FOUND, &[])?;

    // Components: application/wasm, the component-model header, then the server's check.
    let component = |bytes: &[u8], ct: &str, token: &str| {
        Ctx::request("PUT", &format!("{uri}/component"), Auth::Bearer(token))
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(bytes.to_vec()))
    };
    let mut wasm = vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    wasm.extend_from_slice(b"component body");
    c.send(component(&wasm, "application/wasm", &other)?).await?.err(StatusCode::NOT_FOUND, &[])?;
    c.send(component(&wasm, "application/json", &jwt)?)
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["must be application/wasm"])?;
    c.send(component(&[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], "application/wasm", &jwt)?)
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["core WebAssembly module", "wasm32-wasip2"])?;
    c.send(component(b"hello", "application/wasm", &jwt)?)
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["not WebAssembly"])?;
    let stored = c.send(component(&wasm, "application/wasm", &jwt)?).await?;
    let stored = stored.ok(StatusCode::CREATED)?;
    ensure!(
        stored["version"]["version"] == 1 && stored["app"]["current_component"] == stored["version"]["uuid"],
        "{stored}"
    );
    let versions = c.get(&format!("{uri}/component"), &jwt).await?;
    ensure!(versions.ok(StatusCode::OK)?.as_array().map(Vec::len) == Some(1), "{versions:?}");

    // With the server's check plugged in, what it refuses is not stored.
    let checked = router(
        ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
            .with_component_check(Arc::new(FakeCheck)),
    );
    let checked = Ctx { app: checked, store: c.store.clone(), secret: c.secret.clone() };
    let mut refused = wasm.clone();
    refused.extend_from_slice(b"bad");
    checked
        .send(component(&refused, "application/wasm", &jwt)?)
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["component: does not implement the flow world"])?;
    let mut busy = wasm.clone();
    busy.extend_from_slice(b"busy");
    checked
        .send(component(&busy, "application/wasm", &jwt)?)
        .await?
        .err(StatusCode::SERVICE_UNAVAILABLE, &["compiling others"])?;
    let versions = c.get(&format!("{uri}/component"), &jwt).await?;
    ensure!(versions.ok(StatusCode::OK)?.as_array().map(Vec::len) == Some(1), "{versions:?}");

    let deleted = c.delete(&uri, &jwt).await?;
    ensure!(deleted.ok(StatusCode::OK)?["deleted"] == true);
    c.get(&uri, &jwt).await?.err(StatusCode::NOT_FOUND, &[])?;
    Ok(())
}

/// An app keeps at most `api.max_component_versions_per_app` versions: the next upload is
/// refused with what to do, a version that is not current can be deleted (the current one
/// cannot), and another account can delete none.
async fn component_version_quota(c: Ctx) -> anyhow::Result<()> {
    let (_, jwt) = c.signup("versions@example.test").await?;
    let (_, other) = c.signup("not-versions@example.test").await?;
    let config = ApiConfig { max_component_versions_per_app: 2, ..ApiConfig::default() };
    let app = router(ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), config));
    let c = Ctx { app, store: c.store.clone(), secret: c.secret.clone() };
    let created = c.post("/rest/sip/app", &jwt, json!({"name": "flow", "component": true})).await?;
    let id = str_of(created.ok(StatusCode::CREATED)?, "uuid")?.to_owned();
    let uri = format!("/rest/sip/app/{id}/component");
    let upload = |n: u8| {
        let mut wasm = vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, n];
        wasm.extend_from_slice(b"component body");
        Ctx::request("PUT", &uri, Auth::Bearer(&jwt))
            .header(header::CONTENT_TYPE, "application/wasm")
            .body(Body::from(wasm))
    };
    let first = c.send(upload(1)?).await?;
    let first = str_of(&first.ok(StatusCode::CREATED)?["version"], "uuid")?.to_owned();
    let second = c.send(upload(2)?).await?;
    let second = str_of(&second.ok(StatusCode::CREATED)?["version"], "uuid")?.to_owned();
    c.send(upload(3)?).await?.err(
        StatusCode::UNPROCESSABLE_ENTITY,
        &["2 component versions", "api.max_component_versions_per_app = 2", "DELETE /rest/sip/app/"],
    )?;

    c.delete(&format!("{uri}/{first}"), &other).await?.err(StatusCode::NOT_FOUND, &[])?;
    c.delete(&format!("{uri}/{second}"), &jwt)
        .await?
        .err(StatusCode::CONFLICT, &["current version", "deploy another version first"])?;
    c.delete(&format!("{uri}/{}", uuid::Uuid::new_v4()), &jwt)
        .await?
        .err(StatusCode::NOT_FOUND, &["component version"])?;
    let deleted = c.delete(&format!("{uri}/{first}"), &jwt).await?;
    ensure!(deleted.ok(StatusCode::OK)?["deleted"] == true);
    c.delete(&format!("{uri}/{first}"), &jwt).await?.err(StatusCode::NOT_FOUND, &[])?;
    let versions = c.get(&uri, &jwt).await?;
    ensure!(versions.ok(StatusCode::OK)?.as_array().map(Vec::len) == Some(1), "{versions:?}");
    c.send(upload(3)?).await?.ok(StatusCode::CREATED)?;
    Ok(())
}

// `GET/PATCH /rest/account`: the account signed in. Each account reads and changes only its own
// (there is no id to name another).

async fn an_account_reads_and_changes_its_own_name_and_time_zone(c: Ctx) -> anyhow::Result<()> {
    let (a, jwt) = c.signup("self@example.test").await?;
    let (b, other) = c.signup("other@example.test").await?;

    let shown = c.get("/rest/account", &jwt).await?;
    let shown = shown.ok(StatusCode::OK)?;
    ensure!(shown["uuid"] == a.to_string() && shown["email"] == "self@example.test", "{shown}");
    ensure!(
        shown.get("password_hash").is_none() && !shown.to_string().contains("argon2"),
        "no hash: {shown}"
    );

    let changed = c
        .patch("/rest/account", &jwt, json!({"name": "  Acme Support  ", "time_zone": "America/Chicago"}))
        .await?;
    let changed = changed.ok(StatusCode::OK)?;
    ensure!(changed["name"] == "Acme Support" && changed["time_zone"] == "America/Chicago", "{changed}");
    // Only the name: the time zone stays.
    let renamed = c.patch("/rest/account", &jwt, json!({"name": "Acme"})).await?;
    let renamed = renamed.ok(StatusCode::OK)?;
    ensure!(renamed["name"] == "Acme" && renamed["time_zone"] == "America/Chicago", "{renamed}");
    let stored = c.store.get_account(a).await?.context("the account")?;
    ensure!(stored.name == "Acme" && stored.time_zone == "America/Chicago", "{stored:?}");

    // Contact details: none at first; each key given changes, null clears, absent stays.
    ensure!(shown["contact"] == json!({"company": null, "phone": null, "address": null}), "{shown}");
    let contact = json!({"contact": {"company": "Acme Inc.", "phone": " +12025550123 ", "address": "1 Main St\nSpringfield"}});
    let changed = c.patch("/rest/account", &jwt, contact).await?;
    let changed = changed.ok(StatusCode::OK)?;
    ensure!(
        changed["contact"]
            == json!({"company": "Acme Inc.", "phone": "+12025550123", "address": "1 Main St\nSpringfield"})
            && changed["name"] == "Acme",
        "{changed}"
    );
    let cleared = c.patch("/rest/account", &jwt, json!({"contact": {"address": null}})).await?;
    let cleared = cleared.ok(StatusCode::OK)?;
    ensure!(
        cleared["contact"] == json!({"company": "Acme Inc.", "phone": "+12025550123", "address": null}),
        "{cleared}"
    );
    let stored = c.store.get_account(a).await?.context("the account")?;
    ensure!(
        stored.contact.company.as_deref() == Some("Acme Inc.") && stored.contact.address.is_none(),
        "{stored:?}"
    );
    ensure!(c.store.get_account(b).await?.context("b")?.contact.company.is_none(), "b's contact untouched");

    // The other account is untouched and sees only itself.
    let theirs = c.get("/rest/account", &other).await?;
    let theirs = theirs.ok(StatusCode::OK)?;
    ensure!(theirs["uuid"] == b.to_string() && theirs["name"] != "Acme", "{theirs}");
    let untouched = c.store.get_account(b).await?.context("the other account")?;
    ensure!(untouched.time_zone != "America/Chicago" || untouched.name != "Acme", "{untouched:?}");

    // Each change is published to the account's events: what changed and the account now.
    let bus = Arc::new(opentact_events::EventBus::new(opentact_events::BusConfig::default()));
    let mut mine =
        bus.subscribe(a, vec!["account.".to_owned()], None).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut theirs_events = bus.subscribe(b, Vec::new(), None).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_events(bus.clone());
    let evented = Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() };
    evented.patch("/rest/account", &jwt, json!({"time_zone": "Europe/Paris"})).await?.ok(StatusCode::OK)?;
    let event = tokio::time::timeout(Duration::from_secs(5), mine.next())
        .await?
        .context("the bus is open")?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    ensure!(event.kind == "account.changed" && event.account == a, "{event:?}");
    ensure!(event.payload["changed"] == json!(["time_zone"]), "{}", event.payload);
    ensure!(event.payload["account"]["time_zone"] == "Europe/Paris", "{}", event.payload);
    ensure!(event.payload["account"].get("password_hash").is_none(), "{}", event.payload);
    // Setting what is already there changes nothing and publishes nothing.
    evented.patch("/rest/account", &jwt, json!({"time_zone": "Europe/Paris"})).await?.ok(StatusCode::OK)?;
    let quiet = tokio::time::timeout(Duration::from_millis(200), mine.next()).await;
    ensure!(quiet.is_err(), "no event for no change: {quiet:?}");
    let elsewhere = tokio::time::timeout(Duration::from_millis(200), theirs_events.next()).await;
    ensure!(elsewhere.is_err(), "the other account hears nothing: {elsewhere:?}");

    // Tokens are the account's too: made and revoked, never with the plain token.
    let made = evented.post("/rest/token", &jwt, json!({"name": "ci"})).await?;
    let made = made.ok(StatusCode::CREATED)?.clone();
    let token_id = str_of(&made, "uuid")?.to_owned();
    let plain = str_of(&made, "token")?.to_owned();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), mine.next())
            .await?
            .context("the bus is open")?
            .map_err(|e| anyhow::anyhow!("{e:?}"))
    };
    let event = next().await?;
    ensure!(
        event.payload["changed"] == json!(["tokens"])
            && event.payload["created"]["uuid"] == token_id.as_str(),
        "{}",
        event.payload
    );
    ensure!(
        !event.payload.to_string().contains(&plain),
        "the plain token is not published: {}",
        event.payload
    );
    evented.delete(&format!("/rest/token/{token_id}"), &jwt).await?.ok(StatusCode::OK)?;
    let event = next().await?;
    ensure!(event.payload["deleted"] == token_id.as_str(), "{}", event.payload);
    let elsewhere = tokio::time::timeout(Duration::from_millis(200), theirs_events.next()).await;
    ensure!(elsewhere.is_err(), "the other account hears nothing: {elsewhere:?}");

    // Without credentials: 401.
    let anonymous = c.send(Ctx::request("GET", "/rest/account", Auth::None).body(Body::empty())?).await?;
    ensure!(anonymous.status == StatusCode::UNAUTHORIZED, "{anonymous:?}");
    Ok(())
}

async fn account_refusals_name_the_field_and_change_nothing(c: Ctx) -> anyhow::Result<()> {
    let (a, jwt) = c.signup("refused@example.test").await?;
    let before = c.store.get_account(a).await?.context("the account")?;
    let invalid = StatusCode::UNPROCESSABLE_ENTITY;
    for (body, status, needles) in [
        (json!({}), invalid, &["nothing to change"][..]),
        (json!({"time_zone": "Mars/Olympus_Mons"}), invalid, &["time_zone", "IANA"][..]),
        (json!({"time_zone": ""}), invalid, &["time_zone"][..]),
        (json!({"name": "   "}), invalid, &["name", "1 to 100"][..]),
        (json!({"name": "x".repeat(101)}), invalid, &["name"][..]),
        (json!({"name": "line\nbreak"}), invalid, &["name", "control"][..]),
        (json!({"contact": {}}), invalid, &["nothing to change"][..]),
        (json!({"contact": {"phone": "202-555-0100"}}), invalid, &["contact.phone", "country code"][..]),
        (json!({"contact": {"phone": "+1"}}), invalid, &["contact.phone"][..]),
        (json!({"contact": {"company": "x".repeat(101)}}), invalid, &["contact.company"][..]),
        (json!({"contact": {"address": "a\tb"}}), invalid, &["contact.address", "control"][..]),
        (json!({"contact": {"address": "x".repeat(301)}}), invalid, &["contact.address", "300"][..]),
        (json!({"contact": {"fax": "+12025550100"}}), StatusCode::BAD_REQUEST, &["unknown field `fax`"][..]),
        // A good field beside a bad one changes nothing either.
        (json!({"name": "Good", "contact": {"phone": "nope"}}), invalid, &["contact.phone"][..]),
        // The login and the password are not changed here: unknown fields of this body.
        (json!({"email": "new@example.test"}), StatusCode::BAD_REQUEST, &["unknown field `email`"][..]),
        (json!({"password": "hunter2hunter2"}), StatusCode::BAD_REQUEST, &["unknown field `password`"][..]),
    ] {
        let refused = c.patch("/rest/account", &jwt, body.clone()).await?;
        ensure!(refused.status == status, "{body}: {refused:?}");
        refused.err(status, needles)?;
    }
    let after = c.store.get_account(a).await?.context("the account")?;
    ensure!(after == before, "refused changes changed nothing: {before:?} → {after:?}");
    Ok(())
}

/// `tn.order` for an order, `tn.changed` for every lease change (PATCH, SMS on and off, release),
/// on the account's events only.
async fn number_orders_and_lease_changes_are_published(c: Ctx) -> anyhow::Result<()> {
    let (a, jwt) = c.signup("numbers@example.test").await?;
    let (b, _) = c.signup("quiet@example.test").await?;
    c.seed(INVENTORY).await?;
    let bus = Arc::new(opentact_events::EventBus::new(opentact_events::BusConfig::default()));
    let mut mine = bus.subscribe(a, vec!["tn.".to_owned()], None).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut theirs = bus.subscribe(b, Vec::new(), None).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_events(bus.clone());
    let c = Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() };
    let mut next = async || -> anyhow::Result<Arc<opentact_events::Event>> {
        tokio::time::timeout(Duration::from_secs(5), mine.next())
            .await?
            .context("the bus is open")?
            .map_err(|e| anyhow::anyhow!("{e:?}"))
    };

    let order =
        c.post("/rest/order", &jwt, json!({"items": [{"tn": DC1, "features": ["voice", "sms"]}]})).await?;
    let order = order.ok(StatusCode::CREATED)?.clone();
    let event = next().await?;
    ensure!(event.kind == "tn.order" && event.payload["order"] == order, "{event:?}");
    let lease = order["items"][0]["lease"].as_str().context("the lease")?.to_owned();

    c.patch(&format!("/rest/lease/tn/{lease}"), &jwt, json!({"autorenew": true}))
        .await?
        .ok(StatusCode::OK)?;
    let event = next().await?;
    ensure!(event.kind == "tn.changed" && event.payload["change"] == "updated", "{event:?}");
    ensure!(
        event.payload["tn"] == json!(DC1) && event.payload["lease"]["autorenew"] == true,
        "{}",
        event.payload
    );

    for (toggle, change, sms) in [("disable", "sms_disabled", false), ("enable", "sms_enabled", true)] {
        c.post("/rest/lease/tn/sms", &jwt, json!({toggle: [DC1]})).await?.ok(StatusCode::OK)?;
        let event = next().await?;
        ensure!(
            event.payload["change"] == change && event.payload["lease"]["sms"] == sms,
            "{}",
            event.payload
        );
    }

    c.delete(&format!("/rest/lease/tn/{lease}"), &jwt).await?.ok(StatusCode::OK)?;
    let event = next().await?;
    ensure!(
        event.payload["change"] == "released" && !event.payload["lease"]["released_on"].is_null(),
        "{}",
        event.payload
    );

    // A refused change publishes nothing; the other account heard nothing at all.
    c.patch(&format!("/rest/lease/tn/{lease}"), &jwt, json!({}))
        .await?
        .err(StatusCode::UNPROCESSABLE_ENTITY, &["nothing to change"])?;
    let quiet = tokio::time::timeout(Duration::from_millis(200), mine.next()).await;
    ensure!(quiet.is_err(), "no event for a refusal: {quiet:?}");
    let elsewhere = tokio::time::timeout(Duration::from_millis(200), theirs.next()).await;
    ensure!(elsewhere.is_err(), "the other account hears nothing: {elsewhere:?}");
    Ok(())
}

async fn self_signup_is_the_operators_choice(c: Ctx) -> anyhow::Result<()> {
    let body = json!({"name": "Acme", "email": "Founder@Acme.example.com", "password": "a long secret", "time_zone": "Europe/Paris"});
    // Off by default: 403 with what to do, and no account.
    let closed = c.call("POST", "/rest/signup", Auth::None, Some(body.clone())).await?;
    closed.err(StatusCode::FORBIDDEN, &["self sign-up is off", "operator"])?;
    ensure!(c.store.account_by_email("founder@acme.example.com").await?.is_none(), "nothing created");

    let config = ApiConfig { self_signup: true, ..ApiConfig::default() };
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), config);
    let open = Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() };
    let created = open.call("POST", "/rest/signup", Auth::None, Some(body.clone())).await?;
    let created = created.ok(StatusCode::CREATED)?.clone();
    ensure!(
        created["account"]["email"] == "founder@acme.example.com"
            && created["account"]["time_zone"] == "Europe/Paris"
            && created["account"].get("password_hash").is_none(),
        "{created}"
    );
    // Its JWT works at once, and only for itself.
    let token = str_of(&created["jwt"], "token")?.to_owned();
    let me = open.get("/rest/account", &token).await?;
    ensure!(me.ok(StatusCode::OK)?["uuid"] == created["account"]["uuid"], "{me:?}");
    let balance = open.get("/rest/account/balance", &token).await?;
    ensure!(balance.ok(StatusCode::OK)?["balance_micros"] == 0, "a new account has no money");

    // The same e-mail again is a conflict; bad fields say what to fix.
    let again = open.call("POST", "/rest/signup", Auth::None, Some(body.clone())).await?;
    again.err(StatusCode::CONFLICT, &["email"])?;
    let cases = [
        (json!({"name": "B", "email": "not-an-email", "password": "a long secret"}), "email:"),
        (json!({"name": "B", "email": "b@acme.example.com", "password": "short"}), "password: 8 to 256"),
        (json!({"name": "", "email": "b@acme.example.com", "password": "a long secret"}), "name:"),
        (
            json!({"name": "B", "email": "b@acme.example.com", "password": "a long secret", "time_zone": "Mars/Olympus"}),
            "time_zone:",
        ),
    ];
    for (bad, needle) in cases {
        open.call("POST", "/rest/signup", Auth::None, Some(bad.clone()))
            .await?
            .err(StatusCode::UNPROCESSABLE_ENTITY, &[needle])?;
    }
    let unknown = open
        .call("POST", "/rest/signup", Auth::None, Some(json!({"name": "B", "email": "b@acme.example.com", "password": "a long secret", "balance": 100})))
        .await?;
    unknown.err(StatusCode::BAD_REQUEST, &["balance"])?;
    // Five an hour per address: the account, the conflict and three more; the sixth is refused.
    for n in 0..3 {
        let email = format!("user{n}@acme.example.com");
        let made = open
            .call(
                "POST",
                "/rest/signup",
                Auth::None,
                Some(json!({"name": "U", "email": email, "password": "a long secret"})),
            )
            .await?;
        made.ok(StatusCode::CREATED)?;
    }
    let sixth = open
        .call(
            "POST",
            "/rest/signup",
            Auth::None,
            Some(json!({"name": "U", "email": "user9@acme.example.com", "password": "a long secret"})),
        )
        .await?;
    sixth.err(StatusCode::TOO_MANY_REQUESTS, &["sign-ups an hour"])?;
    Ok(())
}

async fn numbers_are_charged_monthly_and_renewed_or_released(c: Ctx) -> anyhow::Result<()> {
    use opentact_api::rental::{NumberPrice, Sweep, month_after, renew_due};
    let (a, jwt) = c.signup("rent@example.test").await?;
    let (b, poor) = c.signup("poor@example.test").await?;
    c.seed(INVENTORY).await?;
    let bus = Arc::new(opentact_events::EventBus::new(opentact_events::BusConfig::default()));
    let mut mine = bus
        .subscribe(a, vec!["tn.changed".to_owned(), "account.changed".to_owned()], None)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // The poor account's own refused order is a `tn.order`; of the rest it hears nothing.
    let mut theirs = bus
        .subscribe(b, vec!["tn.changed".to_owned(), "account.changed".to_owned()], None)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let price = NumberPrice { monthly_micros: 1_500_000, grace: Duration::from_secs(3 * 86_400) };
    let config = ApiConfig { number_price: Some(price), ..ApiConfig::default() };
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), config).with_events(bus.clone());
    let c = Ctx { app: router(state.clone()), store: c.store.clone(), secret: c.secret.clone() };
    let mut next = async || -> anyhow::Result<Arc<opentact_events::Event>> {
        tokio::time::timeout(Duration::from_secs(5), mine.next())
            .await?
            .context("the bus is open")?
            .map_err(|e| anyhow::anyhow!("{e:?}"))
    };

    // No money, no number: the item fails with the price and the balance; the number stays free.
    let order = c.post("/rest/order", &poor, json!({"items": [{"tn": DC1}]})).await?;
    let order = order.ok(StatusCode::CREATED)?.clone();
    ensure!(
        order["items"][0]["state"] == "failed"
            && order["items"][0]["message"]
                == "insufficient balance: a number costs 1.500000 USD a month, the balance is 0.000000 USD",
        "{order}"
    );
    ensure!(c.store.get_number(DC1).await?.context("DC1")?.available, "not leased");

    // With 4.00: two numbers are a month each (1.00 left), a third is refused.
    c.store.credit(a, 4_000_000, "prepaid").await?;
    let items = json!({"items": [{"tn": DC1, "autorenew": true}, {"tn": NY1}, {"tn": IL1}]});
    let order = c.post("/rest/order", &jwt, items).await?;
    let order = order.ok(StatusCode::CREATED)?.clone();
    ensure!(
        order["items"][0]["state"] == "success"
            && order["items"][1]["state"] == "success"
            && order["items"][2]["state"] == "failed"
            && order["items"][2]["message"]
                == "insufficient balance: a number costs 1.500000 USD a month, the balance is 1.000000 USD",
        "{order}"
    );
    let renewing = Uuid::parse_str(order["items"][0]["lease"].as_str().context("lease")?)?;
    let ending = Uuid::parse_str(order["items"][1]["lease"].as_str().context("lease")?)?;
    let lease = c.store.get_lease(a, renewing).await?.context("lease")?;
    let first_until = month_after(lease.created_on);
    ensure!(lease.paid_until == Some(first_until), "a month from the order: {lease:?}");
    let shown = c.get(&format!("/rest/lease/tn/{renewing}"), &jwt).await?;
    ensure!(!shown.ok(StatusCode::OK)?["paid_until"].is_null(), "{shown:?}");
    for _ in 0..2 {
        let event = next().await?;
        ensure!(
            event.kind == "account.changed" && event.payload["transaction"]["kind"] == "number",
            "{event:?}"
        );
    }
    let ledger = c.post("/rest/account/transactions/search", &jwt, json!({"reference": renewing})).await?;
    let ledger = ledger.ok(StatusCode::OK)?.clone();
    ensure!(
        ledger["total"] == 1
            && ledger["data"][0]["amount_micros"] == -1_500_000
            && ledger["data"][0]["description"]
                == format!("number {DC1}, a month to {}", first_until.format("%Y-%m-%d")),
        "{ledger}"
    );
    ensure!(c.store.balance(a).await? == 1_000_000);

    // Nothing is due inside the month.
    ensure!(renew_due(&state, chrono::Utc::now()).await? == Sweep::default());

    // A day after the month: the number without autorenew is released; the other's month is
    // unpaid (1.00 < 1.50) and waits out the grace period — the account is told, with why and
    // until when.
    let (day, hour) = (chrono::Duration::days(1), chrono::Duration::hours(1));
    let sweep = renew_due(&state, first_until + day).await?;
    ensure!(sweep == Sweep { ended: 1, waiting: 1, ..Sweep::default() }, "{sweep:?}");
    let (one, two) = (next().await?, next().await?);
    let change = |change: &str| {
        [&one, &two].into_iter().find(|e| e.kind == "tn.changed" && e.payload["change"] == change).cloned()
    };
    let released = change("released").context("released")?;
    ensure!(
        released.payload["reason"] == "not renewed" && released.payload["tn"] == json!(NY1),
        "{released:?}"
    );
    let failed = change("renewal_failed").context("renewal_failed")?;
    ensure!(
        failed.payload["tn"] == json!(DC1)
            && failed.payload["reason"]
                == "insufficient balance: a number costs 1.500000 USD a month, the balance is 1.000000 USD"
            && failed.payload["release_on"] == json!(first_until + chrono::Duration::days(3)),
        "{failed:?}"
    );
    ensure!(c.store.get_lease(a, ending).await?.context("lease")?.released_on.is_some());
    ensure!(c.store.get_number(NY1).await?.context("NY1")?.available, "back in the inventory");
    // It is tried again an hour later, not at every sweep, and the account is told only once.
    ensure!(renew_due(&state, first_until + day).await? == Sweep::default(), "waits for its retry");
    let sweep = renew_due(&state, first_until + day + hour).await?;
    ensure!(sweep == Sweep { waiting: 1, ..Sweep::default() }, "{sweep:?}");

    // Paid within the grace period: renewed for the next month at its next try, once however
    // often it sweeps.
    c.store.credit(a, 2_000_000, "top-up").await?;
    let later = first_until + day + hour * 2;
    let sweep = renew_due(&state, later).await?;
    ensure!(sweep == Sweep { renewed: 1, ..Sweep::default() }, "{sweep:?}");
    ensure!(renew_due(&state, later).await? == Sweep::default(), "renewed once");
    let second_until = month_after(first_until);
    ensure!(c.store.get_lease(a, renewing).await?.context("lease")?.paid_until == Some(second_until));
    ensure!(c.store.balance(a).await? == 1_500_000);
    let event = next().await?;
    ensure!(event.kind == "account.changed" && event.payload["balance"] == "1.500000", "{event:?}");
    let event = next().await?;
    ensure!(event.kind == "tn.changed" && event.payload["change"] == "renewed", "{event:?}");
    ensure!(
        event.payload["lease"]["paid_until"]
            == c.get(&format!("/rest/lease/tn/{renewing}"), &jwt).await?.ok(StatusCode::OK)?["paid_until"],
        "the event shows the lease as stored: {}",
        event.payload
    );

    // The next month takes the rest; the one after is unpaid past the grace period: released.
    ensure!(renew_due(&state, second_until).await?.renewed == 1);
    ensure!(c.store.balance(a).await? == 0);
    let third_until = month_after(second_until);
    ensure!(renew_due(&state, third_until + day).await?.waiting == 1, "inside the grace period");
    let sweep = renew_due(&state, third_until + chrono::Duration::days(3)).await?;
    ensure!(sweep == Sweep { unpaid: 1, ..Sweep::default() }, "{sweep:?}");
    let released = c.store.get_lease(a, renewing).await?.context("lease")?;
    ensure!(released.released_on.is_some() && released.paid_until == Some(third_until), "{released:?}");
    let numbers = c.post("/rest/account/transactions/search", &jwt, json!({"kind": "number"})).await?;
    ensure!(numbers.ok(StatusCode::OK)?["total"] == 4, "two first months and two renewals: {numbers:?}");
    let elsewhere = tokio::time::timeout(Duration::from_millis(200), theirs.next()).await;
    ensure!(elsewhere.is_err(), "the other account hears nothing: {elsewhere:?}");
    Ok(())
}
