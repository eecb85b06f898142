//! `GET /rest/openapi.json` and `GET /rest/docs`: the document is valid OpenAPI 3, and every
//! route the router serves is in it, with its methods: both the fixed list below and every
//! `.route(` found in `src/routes/*.rs`, so a new route without docs fails here.

mod support;

use std::collections::BTreeSet;

use support::*;

/// Every (method, path) the router serves (from `.route(` in `src/routes/*.rs`).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/rest/auth"),
    ("post", "/rest/auth"),
    ("post", "/rest/signup"),
    ("get", "/rest/account"),
    ("patch", "/rest/account"),
    ("get", "/rest/account/balance"),
    ("post", "/rest/account/transactions/search"),
    ("post", "/rest/token"),
    ("get", "/rest/token/list"),
    ("delete", "/rest/token/all"),
    ("delete", "/rest/token/{token}"),
    ("post", "/rest/tn/search"),
    ("post", "/rest/order"),
    ("post", "/rest/order/search"),
    ("get", "/rest/order/{uuid}"),
    ("get", "/rest/lease/tn"),
    ("get", "/rest/lease/tn/{uuid}"),
    ("patch", "/rest/lease/tn/{uuid}"),
    ("delete", "/rest/lease/tn/{uuid}"),
    ("get", "/rest/profile/tn"),
    ("post", "/rest/profile/tn"),
    ("get", "/rest/profile/tn/{uuid}"),
    ("patch", "/rest/profile/tn/{uuid}"),
    ("delete", "/rest/profile/tn/{uuid}"),
    ("post", "/rest/profile/tn/{uuid}/blacklist"),
    ("post", "/rest/profile/tn/{uuid}/whitelist"),
    ("get", "/rest/telecom/lookup/{tn}"),
    ("get", "/rest/sip/app"),
    ("post", "/rest/sip/app"),
    ("get", "/rest/sip/app/{uuid}"),
    ("patch", "/rest/sip/app/{uuid}"),
    ("delete", "/rest/sip/app/{uuid}"),
    ("get", "/rest/sip/app/{uuid}/tnlease"),
    ("post", "/rest/sip/app/{uuid}/tnlease"),
    ("get", "/rest/sip/app/{uuid}/component"),
    ("put", "/rest/sip/app/{uuid}/component"),
    ("delete", "/rest/sip/app/{uuid}/component/{version}"),
    ("get", "/rest/sip/connection"),
    ("post", "/rest/sip/connection"),
    ("get", "/rest/sip/connection/{uuid}"),
    ("patch", "/rest/sip/connection/{uuid}"),
    ("delete", "/rest/sip/connection/{uuid}"),
    ("get", "/rest/sip/connection/{uuid}/tnlease"),
    ("post", "/rest/sip/connection/{uuid}/tnlease"),
    ("get", "/rest/sip/connection/{uuid}/invites"),
    ("post", "/rest/sip/connection/{uuid}/invites"),
    ("delete", "/rest/sip/connection/{uuid}/invites/{invite}"),
    ("post", "/rest/sip/invite"),
    ("get", "/rest/verified_number"),
    ("post", "/rest/verified_number"),
    ("get", "/rest/verified_number/{uuid}"),
    ("delete", "/rest/verified_number/{uuid}"),
    ("post", "/rest/verified_number/{uuid}/verify"),
    ("get", "/rest/sip/domain"),
    ("post", "/rest/sip/domain"),
    ("get", "/rest/sip/domain/{domain}"),
    ("patch", "/rest/sip/domain/{domain}"),
    ("delete", "/rest/sip/domain/{domain}"),
    ("get", "/rest/sip/domain/{domain}/user"),
    ("post", "/rest/sip/domain/{domain}/user"),
    ("get", "/rest/sip/domain/{domain}/user/{uuid}"),
    ("patch", "/rest/sip/domain/{domain}/user/{uuid}"),
    ("delete", "/rest/sip/domain/{domain}/user/{uuid}"),
    ("get", "/rest/profile/outbound_voice"),
    ("post", "/rest/profile/outbound_voice"),
    ("get", "/rest/profile/outbound_voice/{uuid}"),
    ("patch", "/rest/profile/outbound_voice/{uuid}"),
    ("delete", "/rest/profile/outbound_voice/{uuid}"),
    ("get", "/rest/profile/messaging"),
    ("post", "/rest/profile/messaging"),
    ("get", "/rest/profile/messaging/{uuid}"),
    ("patch", "/rest/profile/messaging/{uuid}"),
    ("delete", "/rest/profile/messaging/{uuid}"),
    ("post", "/rest/call/{uuid}/command"),
    ("post", "/rest/call"),
    ("post", "/rest/call/bridge"),
    ("get", "/rest/batch"),
    ("post", "/rest/batch"),
    ("get", "/rest/batch/{uuid}"),
    ("delete", "/rest/batch/{uuid}"),
    ("post", "/rest/sms"),
    ("post", "/rest/sms/pool"),
    ("get", "/rest/sms/{uuid}"),
    ("post", "/rest/sms/search"),
    ("post", "/rest/lease/tn/sms"),
    ("get", "/rest/10dlc/brand"),
    ("post", "/rest/10dlc/brand"),
    ("get", "/rest/10dlc/brand/{uuid}"),
    ("get", "/rest/10dlc/campaign"),
    ("post", "/rest/10dlc/campaign"),
    ("get", "/rest/10dlc/campaign/{uuid}"),
    ("post", "/rest/10dlc/campaign/{uuid}/numbers"),
    ("post", "/rest/call/search"),
    ("get", "/rest/call/{uuid}"),
    ("get", "/rest/record/{uuid}"),
    ("get", "/rest/record/{uuid}/audio"),
    ("delete", "/rest/record/{uuid}"),
    ("get", "/rest/event/subscription"),
    ("post", "/rest/event/subscription"),
    ("post", "/rest/event/test"),
    ("delete", "/rest/event/subscription/{uuid}"),
    ("get", "/rest/event/key"),
    ("get", "/rest/event/delivery"),
    ("get", "/ws"),
    ("get", "/rest/openapi.json"),
    ("get", "/rest/docs"),
    ("get", "/webcall"),
    ("get", "/webcall/webcall.js"),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn fetch(app: &Router, path: &str) -> anyhow::Result<(StatusCode, Option<String>, Vec<u8>)> {
    let response = app.clone().oneshot(Request::get(path).body(Body::empty())?).await?;
    let status = response.status();
    let content_type =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Ok((status, content_type, response.into_body().collect().await?.to_bytes().to_vec()))
}

async fn document() -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&format!("sqlite://{}/opentact.db?mode=rwc", dir.path().display())).await?;
    let (status, content_type, body) = fetch(&ctx(&store).app, "/rest/openapi.json").await?;
    store.close().await;
    ensure!(status == StatusCode::OK, "GET /rest/openapi.json answered {status}");
    ensure!(content_type.as_deref() == Some("application/json"), "content type {content_type:?}");
    serde_json::from_slice(&body).context("the document is not JSON")
}

/// The (method, path) pairs of `.route("path", get(a).post(b))` calls in a source file.
fn routes_in(source: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (start, _) in source.match_indices(".route(") {
        let rest = &source[start + ".route(".len()..];
        // The call's arguments: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(rest.len(), |(i, _)| i);
        let call = &rest[..end];
        let Some(path) = call.split('"').nth(1) else { continue };
        for method in METHODS {
            let called = call.match_indices(&format!("{method}(")).any(|(i, _)| {
                let before = call[..i].trim_end().chars().last();
                matches!(before, Some('.') | Some(','))
            });
            if called {
                found.push((method.to_owned(), path.to_owned()));
            }
        }
    }
    found
}

#[tokio::test]
async fn document_is_openapi_3_with_every_route() -> anyhow::Result<()> {
    let doc = document().await?;
    let version = doc["openapi"].as_str().context("no openapi version")?;
    ensure!(version.starts_with("3."), "openapi {version}");
    ensure!(doc["info"]["title"].is_string(), "no info.title");
    let mut missing = Vec::new();
    for (method, path) in ROUTES {
        if !doc["paths"][path][method].is_object() {
            missing.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    ensure!(missing.is_empty(), "not in the document: {missing:?}");
    // And nothing documented that the router does not serve.
    let listed: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    let paths = doc["paths"].as_object().context("no paths")?;
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                ensure!(
                    listed.contains(&(method.to_owned(), path.clone())),
                    "{method} {path} is documented but not in ROUTES"
                );
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn document_covers_every_route_in_the_sources() -> anyhow::Result<()> {
    let doc = document().await?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path)?;
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        for (method, path) in routes_in(&source) {
            seen += 1;
            ensure!(
                doc["paths"][&path][&method].is_object(),
                "{} {path} (routes/{file}) is not in the OpenAPI document: annotate its handler with \
                 #[utoipa::path] and add it to paths(…) in src/openapi.rs",
                method.to_uppercase()
            );
        }
    }
    ensure!(seen == ROUTES.len(), "found {seen} routes in the sources, ROUTES lists {}", ROUTES.len());
    Ok(())
}

#[tokio::test]
async fn document_describes_auth_bodies_and_errors() -> anyhow::Result<()> {
    let doc = document().await?;
    let schemes = doc["components"]["securitySchemes"].as_object().context("no security schemes")?;
    for name in opentact_api::openapi::SECURITY_SCHEMES {
        ensure!(schemes.contains_key(name), "no security scheme {name}");
    }
    ensure!(schemes["bearer"]["scheme"] == "bearer" && schemes["basic"]["scheme"] == "basic");
    let headers: BTreeSet<&str> = schemes.values().filter_map(|s| s["name"].as_str()).collect();
    for header in ["X-Auth-Token", "jwt", "X-Auth-Google-Token", "X-Auth-HA1B-Token"] {
        ensure!(headers.contains(header), "no scheme for {header}");
    }
    // Public endpoints say so.
    ensure!(doc["paths"]["/rest/auth"]["post"]["security"] == json!([{}]));
    ensure!(doc["paths"]["/rest/openapi.json"]["get"]["security"] == json!([{}]));

    let schemas = &doc["components"]["schemas"];
    // Hashes are never serialized, so no schema has them.
    for (name, schema) in schemas.as_object().context("no schemas")? {
        let text = schema.to_string();
        for secret in ["password_hash", "token_hash", "\"ha1\"", "\"ha1b\""] {
            ensure!(!text.contains(secret), "{secret} in schema {name}");
        }
    }
    let lease = &schemas["TnLease"]["properties"];
    ensure!(lease["tn"]["type"] == "integer" && lease["tn"]["format"] == "int64", "tn: {}", lease["tn"]);
    ensure!(lease["created_on"]["format"] == "date-time", "created_on: {}", lease["created_on"]);
    ensure!(schemas["ErrorEnvelope"]["properties"]["message"]["type"] == "string");

    let order = &doc["paths"]["/rest/order"]["post"];
    ensure!(order["requestBody"]["content"]["application/json"]["schema"].is_object(), "{order}");
    ensure!(order["responses"]["201"].is_object() && order["responses"]["422"].is_object(), "{order}");
    let upload = &doc["paths"]["/rest/sip/app/{uuid}/component"]["put"]["requestBody"]["content"];
    ensure!(upload["application/wasm"].is_object(), "component upload: {upload}");
    Ok(())
}

#[tokio::test]
async fn docs_page_is_html() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&format!("sqlite://{}/opentact.db?mode=rwc", dir.path().display())).await?;
    let (status, content_type, body) = fetch(&ctx(&store).app, "/rest/docs").await?;
    store.close().await;
    ensure!(status == StatusCode::OK, "GET /rest/docs answered {status}");
    ensure!(content_type.as_deref().is_some_and(|c| c.starts_with("text/html")), "{content_type:?}");
    let page = String::from_utf8(body)?;
    ensure!(page.contains("/rest/openapi.json"), "the page does not load the document");
    // Self-contained: nothing loaded from elsewhere.
    ensure!(!page.contains("http://") && !page.contains("https://") && !page.contains("src=\"//"));
    Ok(())
}

/// The limits the document states are the ones the handlers enforce (schema attributes take
/// literals, so this keeps them from drifting apart).
#[tokio::test]
async fn document_limits_match_the_code() -> anyhow::Result<()> {
    use opentact_api::routes::{
        app, batch, call, lease, messaging_profile, outbound_voice, profile, sip_connection, token,
    };
    let doc = document().await?;
    let schemas = &doc["components"]["schemas"];
    let field = |schema: &str, name: &str| schemas[schema]["properties"][name].clone();
    let checks: Vec<(&str, &str, &str, f64)> = vec![
        ("NewToken", "ttl", "minimum", token::MIN_TOKEN_TTL_SECS as f64),
        ("NewToken", "ttl", "maximum", token::MAX_TOKEN_TTL_SECS as f64),
        ("NewToken", "name", "maxLength", token::MAX_TOKEN_NAME as f64),
        ("AppBody", "name", "maxLength", app::MAX_APP_NAME as f64),
        ("AppBody", "max_call_length_min", "maximum", f64::from(app::MAX_CALL_LENGTH_MIN)),
        ("AppBody", "webhook_request_timeout", "maximum", app::MAX_WEBHOOK_TIMEOUT_MS as f64),
        ("AppBody", "xml", "maxLength", app::MAX_XML_BYTES as f64),
        ("NewTnProfile", "name", "maxLength", profile::MAX_PROFILE_NAME as f64),
        ("NewConnection", "name", "maxLength", sip_connection::MAX_CONNECTION_NAME as f64),
        ("NewConnection", "password", "minLength", sip_connection::MIN_SIP_PASSWORD as f64),
        ("NewConnection", "password", "maxLength", sip_connection::MAX_SIP_PASSWORD as f64),
        ("NewOutboundVoiceProfile", "name", "maxLength", outbound_voice::MAX_NAME as f64),
        ("NewOutboundVoiceProfile", "channel_limit", "maximum", f64::from(outbound_voice::MAX_CHANNEL_LIMIT)),
        ("NewOutboundVoiceProfile", "max_rate", "maximum", outbound_voice::MAX_AMOUNT),
        (
            "NewOutboundVoiceProfile",
            "calls_per_second",
            "maximum",
            f64::from(outbound_voice::MAX_CALLS_PER_SECOND),
        ),
        (
            "OutboundVoiceProfileUpdate",
            "calls_per_second",
            "maximum",
            f64::from(outbound_voice::MAX_CALLS_PER_SECOND),
        ),
        ("NewBatch", "phones", "maxItems", batch::MAX_BATCH_PHONES as f64),
        ("NewBatch", "timeout", "minimum", batch::MIN_RING_TIMEOUT_SECS as f64),
        ("NewBatch", "timeout", "maximum", batch::MAX_RING_TIMEOUT_SECS as f64),
        ("NewBatch", "xml", "maxLength", app::MAX_XML_BYTES as f64),
        ("NewMessagingProfile", "name", "maxLength", messaging_profile::MAX_NAME as f64),
        ("NewMessagingProfile", "long_code_weight", "maximum", f64::from(messaging_profile::MAX_WEIGHT)),
        ("CommandBody", "command_id", "maxLength", call::MAX_COMMAND_ID as f64),
        ("Assignment", "add", "maxItems", lease::MAX_ASSIGN_ENTRIES as f64),
    ];
    for (schema, name, keyword, expected) in checks {
        let value = field(schema, name)[keyword].as_f64();
        ensure!(
            value == Some(expected),
            "{schema}.{name} {keyword}: {value:?} in the document, {expected} in the code"
        );
    }
    for path in ["/rest/lease/tn", "/rest/sip/app"] {
        let take = &doc["paths"][path]["get"]["parameters"][0];
        ensure!(
            take["name"] == "take" && take["schema"]["maximum"].as_f64() == Some(f64::from(MAX_TAKE)),
            "{path}: {take}"
        );
    }
    Ok(())
}
