//! The two credentials beside tokens and passwords, through the router on SQLite and
//! PostgreSQL: Google ID tokens (keys served by a real HTTP server on loopback, tokens signed
//! with the test key `tests/fixtures/oidc-test-key.der`) and SIP users' HA1B.

mod support;

use support::*;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use opentact_api::oidc::{OidcConfig, OidcVerifier};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

api_test!(google_id_tokens, sip_user_ha1b);

const CLIENT: &str = "1234-test.apps.googleusercontent.com";

fn key() -> RsaKeyPair {
    let path = format!("{}/tests/fixtures/oidc-test-key.der", env!("CARGO_MANIFEST_DIR"));
    RsaKeyPair::from_der(&std::fs::read(path).expect("fixture key")).expect("RSA key")
}

fn id_token(pair: &RsaKeyPair, issuer: &str, email: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let header = json!({"alg": "RS256", "kid": "k1"});
    let claims = json!({"iss": issuer, "aud": CLIENT, "sub": "1", "email": email, "email_verified": true,
                        "iat": now, "exp": now + 600});
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let mut signature = vec![0u8; pair.public().modulus_len()];
    pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature).expect("sign");
    format!("{input}.{}", B64.encode(signature))
}

/// An issuer on loopback serving the test key; its base URL.
async fn issuer(pair: &RsaKeyPair) -> String {
    let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
    let keys = json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
                                "n": B64.encode(&public.n), "e": B64.encode(&public.e)}]});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new().route("/keys", axum::routing::get(move || async move { axum::Json(keys) }));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    base
}

async fn google_id_tokens(c: Ctx) -> anyhow::Result<()> {
    let pair = key();
    let base = issuer(&pair).await;
    let (account, _) = c.signup("ana@example.com").await?;
    let token = id_token(&pair, &base, "ana@example.com");
    let google = |token: &str| Auth::Named("X-Auth-Google-Token", token.to_owned());

    // Not configured: refused with a reason.
    c.call("GET", "/rest/lease/tn", google(&token), None)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["X-Auth-Google-Token", "not enabled"])?;

    let config =
        OidcConfig { issuer: base.clone(), client_id: CLIENT.into(), jwks_url: Some(format!("{base}/keys")) };
    let state = ApiState::new(Arc::new(c.store.clone()), c.secret.clone(), ApiConfig::default())
        .with_google_verifier(Arc::new(OidcVerifier::new(config)));
    let g = Ctx { app: router(state), store: c.store.clone(), secret: c.secret.clone() };

    let page = g.call("GET", "/rest/lease/tn", google(&token), None).await?;
    page.ok(StatusCode::OK)?;
    // The account is the email's: it can create an API token for itself.
    let created =
        g.call("POST", "/rest/token", google(&token), Some(json!({"name": "ci", "ttl": 3600}))).await?;
    let api_token = str_of(created.ok(StatusCode::CREATED)?, "token")?.to_owned();
    let listed = g.get("/rest/token/list", &api_token).await?;
    ensure!(listed.ok(StatusCode::OK)?["total"] == json!(1), "{:?}", listed.body);
    let _ = account;

    let stranger = id_token(&pair, &base, "nobody@example.com");
    g.call("GET", "/rest/lease/tn", google(&stranger), None)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["no account has this Google account's email"])?;
    let other_issuer = id_token(&pair, "https://evil.example", "ana@example.com");
    g.call("GET", "/rest/lease/tn", google(&other_issuer), None)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["another issuer"])?;
    g.call("GET", "/rest/lease/tn", google("x.y"), None)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["malformed"])?;
    Ok(())
}

async fn sip_user_ha1b(c: Ctx) -> anyhow::Result<()> {
    let (a, _) = c.signup("owner@example.com").await?;
    let (b, b_jwt) = c.signup("other@example.com").await?;
    let domain =
        c.store.create_domain(a, NewSipDomain { name: "acme".into(), app: None, event_url: None }).await?;
    let credentials = DigestCredentials::new("alice", "s3cret-pass", "acme.sip.example", "acme");
    let alice = c
        .store
        .create_sip_user(
            a,
            domain.uuid,
            NewSipUser {
                credentials,
                is_active: true,
                tn_lease: None,
                same_domain_calls_only: false,
                event_url: None,
            },
        )
        .await?;
    let ha1b = |hash: &str| Auth::Named("X-Auth-HA1B-Token", hash.to_owned());

    // Reads the account's data (its token list, empty) …
    let tokens = c.call("GET", "/rest/token/list", ha1b(&alice.ha1b), None).await?;
    ensure!(tokens.ok(StatusCode::OK)?["total"] == json!(0), "{:?}", tokens.body);
    // … and only its own account's: B's token is invisible to A's SIP user.
    let created = c.post("/rest/token", &b_jwt, json!({"name": "b", "ttl": 3600})).await?;
    created.ok(StatusCode::CREATED)?;
    let tokens = c.call("GET", "/rest/token/list", ha1b(&alice.ha1b), None).await?;
    ensure!(tokens.ok(StatusCode::OK)?["total"] == json!(0), "{:?}", tokens.body);
    let _ = b;

    // Read-only.
    c.call("POST", "/rest/token", ha1b(&alice.ha1b), Some(json!({"name": "x", "ttl": 3600})))
        .await?
        .err(StatusCode::FORBIDDEN, &["X-Auth-HA1B-Token", "read-only"])?;
    // Wrong, malformed, HA1 instead of HA1B, inactive user.
    c.call("GET", "/rest/token/list", ha1b(&"0".repeat(32)), None)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["no active SIP user"])?;
    c.call("GET", "/rest/token/list", ha1b("xyz"), None)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["32 hexadecimal"])?;
    c.call("GET", "/rest/token/list", ha1b(&alice.ha1), None)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["no active SIP user"])?;
    c.store
        .update_sip_user(a, alice.uuid, SipUserPatch { is_active: Some(false), ..Default::default() })
        .await?;
    c.call("GET", "/rest/token/list", ha1b(&alice.ha1b), None)
        .await?
        .err(StatusCode::UNAUTHORIZED, &["no active SIP user"])?;
    Ok(())
}
