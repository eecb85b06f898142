//! Google ("Gmail") ID tokens verified against keys served by a real HTTP server on loopback:
//! the discovery document and the key set, signed tokens (RS256) made with test keys
//! (`tests/fixtures/oidc-*.der`, PKCS#1, 2048-bit RSA, generated for these tests only).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use opentact_api::oidc::{OidcConfig, OidcError, OidcVerifier};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};

const CLIENT: &str = "1234-test.apps.googleusercontent.com";
const NOW: i64 = 1_800_000_000;

fn key(name: &str) -> RsaKeyPair {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    RsaKeyPair::from_der(&std::fs::read(path).expect("fixture key")).expect("PKCS#1 RSA key")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The JWK of a key pair's public half.
fn jwk(pair: &RsaKeyPair, kid: &str) -> Value {
    let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
    json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": b64(&public.n), "e": b64(&public.e)})
}

fn sign(pair: &RsaKeyPair, header: Value, claims: Value) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let mut signature = vec![0u8; pair.public().modulus_len()];
    pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature).expect("sign");
    format!("{input}.{}", b64(&signature))
}

fn claims(issuer: &str) -> Value {
    json!({
        "iss": issuer, "aud": CLIENT, "sub": "10769150350006150715113082367",
        "email": "ana@example.com", "email_verified": true, "iat": NOW - 10, "exp": NOW + 3600,
    })
}

/// Serves `/.well-known/openid-configuration` and `/keys` (with `keys`), counting key fetches.
async fn issuer(keys: Value) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    let discovery = json!({"issuer": base, "jwks_uri": format!("{base}/keys")});
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(move || async move { axum::Json(discovery) }))
        .route(
            "/keys",
            get(move || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                axum::Json(keys)
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (base, fetches)
}

#[tokio::test]
async fn valid_tokens_name_their_verified_email_and_everything_else_is_refused() {
    let signer = key("oidc-test-key.der");
    let other = key("oidc-other-key.der");
    let (base, fetches) = issuer(json!({"keys": [jwk(&signer, "k1")]})).await;
    // No jwks_url: the keys are found through the discovery document.
    let verifier =
        OidcVerifier::new(OidcConfig { issuer: base.clone(), client_id: CLIENT.into(), jwks_url: None });
    let header = json!({"alg": "RS256", "kid": "k1", "typ": "JWT"});

    let good = sign(&signer, header.clone(), claims(&base));
    assert_eq!(verifier.verify(&good, NOW).await, Ok("ana@example.com".to_owned()));
    assert_eq!(verifier.verify(&good, NOW).await, Ok("ana@example.com".to_owned()));
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "keys are fetched once and kept");

    let with = |patch: Value| {
        let mut c = claims(&base);
        for (k, v) in patch.as_object().expect("object") {
            c[k] = v.clone();
        }
        sign(&signer, header.clone(), c)
    };
    let cases = [
        (with(json!({"aud": "someone-else"})), OidcError::Audience),
        (with(json!({"aud": ["a", "b"]})), OidcError::Audience),
        (with(json!({"iss": "https://evil.example"})), OidcError::Issuer),
        (with(json!({"exp": NOW - 120})), OidcError::Expired),
        (with(json!({"iat": NOW + 600})), OidcError::NotYetValid),
        (with(json!({"email_verified": false})), OidcError::Unverified),
        (with(json!({"email": null})), OidcError::Unverified),
        (sign(&other, header.clone(), claims(&base)), OidcError::Signature),
        (sign(&signer, json!({"alg": "HS256", "kid": "k1"}), claims(&base)), OidcError::Algorithm),
        (sign(&signer, json!({"alg": "none"}), claims(&base)), OidcError::Algorithm),
        ("not.a-token".to_owned(), OidcError::Malformed),
        ("garbage".to_owned(), OidcError::Malformed),
    ];
    for (token, expected) in cases {
        assert_eq!(verifier.verify(&token, NOW).await, Err(expected), "{token}");
    }
    // An audience list that includes us, and the clock skew allowance on exp.
    assert!(verifier.verify(&with(json!({"aud": ["x", CLIENT]})), NOW).await.is_ok());
    assert!(verifier.verify(&with(json!({"exp": NOW - 30})), NOW).await.is_ok());

    // A tampered payload keeps the old signature: refused.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut forged = claims(&base);
    forged["email"] = json!("boss@example.com");
    parts[1] = b64(forged.to_string().as_bytes());
    assert_eq!(verifier.verify(&parts.join("."), NOW).await, Err(OidcError::Signature));

    // An unknown key id does not make the server fetch the keys more than once a minute…
    let unknown = sign(&signer, json!({"alg": "RS256", "kid": "rotated"}), claims(&base));
    assert_eq!(verifier.verify(&unknown, NOW).await, Err(OidcError::UnknownKey));
    assert_eq!(verifier.verify(&unknown, NOW).await, Err(OidcError::UnknownKey));
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let old = key("oidc-other-key.der");
    let new = key("oidc-test-key.der");
    let keys = Arc::new(std::sync::Mutex::new(json!({"keys": [jwk(&old, "old")]})));
    // An issuer whose key set changes during the test.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let served = keys.clone();
    let app = Router::new()
        .route("/keys", get(move || async move { axum::Json(served.lock().expect("keys").clone()) }));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let verifier = OidcVerifier::new(OidcConfig {
        issuer: base.clone(),
        client_id: CLIENT.into(),
        jwks_url: Some(format!("{base}/keys")),
    })
    .with_min_refresh_interval(std::time::Duration::ZERO);
    let by_old = sign(&old, json!({"alg": "RS256", "kid": "old"}), claims(&base));
    assert!(verifier.verify(&by_old, NOW).await.is_ok());
    *keys.lock().expect("keys") = json!({"keys": [jwk(&new, "new")]});
    let by_new = sign(&new, json!({"alg": "RS256", "kid": "new"}), claims(&base));
    assert_eq!(verifier.verify(&by_new, NOW).await, Ok("ana@example.com".to_owned()));
    // The old key is gone from the refreshed set.
    assert_eq!(verifier.verify(&by_old, NOW).await, Err(OidcError::UnknownKey));
}

#[tokio::test]
async fn google_issuer_forms_and_configured_key_urls() {
    let signer = key("oidc-test-key.der");
    let (base, _) = issuer(json!({"keys": [{"kty": "EC", "kid": "ec"}, jwk(&signer, "k1")]})).await;
    let verifier = OidcVerifier::new(OidcConfig {
        issuer: "https://accounts.google.com".into(),
        client_id: CLIENT.into(),
        jwks_url: Some(format!("{base}/keys")),
    });
    let header = json!({"alg": "RS256", "kid": "k1"});
    for iss in ["https://accounts.google.com", "accounts.google.com"] {
        let token = sign(&signer, header.clone(), claims(iss));
        assert_eq!(verifier.verify(&token, NOW).await, Ok("ana@example.com".to_owned()), "{iss}");
    }
    // Keys that cannot be fetched: a clear, temporary refusal.
    let down = OidcVerifier::new(OidcConfig {
        issuer: "https://accounts.google.com".into(),
        client_id: CLIENT.into(),
        jwks_url: Some("http://127.0.0.1:9/keys".into()),
    });
    let token = sign(&signer, header, claims("https://accounts.google.com"));
    assert_eq!(down.verify(&token, NOW).await, Err(OidcError::KeysUnavailable));
}
