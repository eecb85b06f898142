//! STIR/SHAKEN signing and verification with a test CA generated here, certificates served by a
//! real HTTP server on loopback, and PASSporTs checked independently with `jsonwebtoken`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use opentact_egress::Policy;
use opentact_egress::http::ClientOptions;
use opentact_shaken::{Attestation, Signer, Verified, Verifier, VerifierConfig, VerifyError, Verstat};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ORIG: &str = "+1 202 555 0100";
const DEST: &str = "12025550111";

/// A certificate authority made for the test.
struct TestCa {
    pem: String,
    params: CertificateParams,
    key: KeyPair,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Self { pem, params, key }
    }

    /// An intermediate CA under this one.
    fn intermediate(&self, name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.signed_by(&key, &Issuer::from_params(&self.params, &self.key)).unwrap().pem();
        TestCa { pem, params, key }
    }

    /// A service provider's certificate and key: (cert PEM, key PEM, public key PEM).
    fn service_provider(&self, name: &str) -> (String, String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &Issuer::from_params(&self.params, &self.key)).unwrap();
        (cert.pem(), key.serialize_pem(), key.public_key_pem())
    }
}

/// An HTTP server on loopback answering GET `path` with its body (404 otherwise), counting
/// requests.
struct CertServer {
    base: String,
    hits: Arc<AtomicUsize>,
}

async fn serve(files: HashMap<String, String>) -> CertServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let files = Arc::new(files);
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let (files, counter) = (files.clone(), counter.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = stream.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let line = String::from_utf8_lossy(&request);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let response = match files.get(&path) {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/x-pem-file\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                    }
                };
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    CertServer { base, hits }
}

fn lab_config() -> VerifierConfig {
    VerifierConfig { allow_http_x5u: true, ..VerifierConfig::default() }
}

fn verifier(anchors: &str, policy: Policy, config: VerifierConfig) -> Verifier {
    let http = opentact_egress::Client::new(policy, &ClientOptions::default());
    Verifier::new(anchors.as_bytes(), http, config).unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The test CA, a service provider certificate served at `{base}/sp.pem`, its signer and a
/// verifier trusting the CA.
struct Lab {
    ca: TestCa,
    server: CertServer,
    x5u: String,
    signer: Signer,
    public_key_pem: String,
    verifier: Verifier,
}

async fn lab() -> Lab {
    let ca = TestCa::new("Opentact test STI-CA");
    let (cert, key, public_key_pem) = ca.service_provider("Opentact test SP");
    let server = serve(HashMap::from([("/sp.pem".to_owned(), cert.clone())])).await;
    let x5u = format!("{}/sp.pem", server.base);
    let signer = Signer::new(cert.as_bytes(), key.as_bytes(), &x5u).unwrap();
    let verifier = verifier(&ca.pem, Policy::any(), lab_config());
    Lab { ca, server, x5u, signer, public_key_pem, verifier }
}

#[tokio::test]
async fn signed_calls_verify_independently_with_their_attestation() {
    let lab = lab().await;
    for attest in [Attestation::A, Attestation::B, Attestation::C] {
        let identity =
            lab.signer.identity_header(ORIG, DEST, attest, "4437c7eb-8f7a-4f0e-a863-f53a0e60251a").unwrap();
        let (token, params) = identity.split_once(';').unwrap();
        assert_eq!(params, format!("info=<{}>;alg=ES256;ppt=shaken", lab.x5u));

        // An independent JWT library, with the certificate's public key.
        let key = jsonwebtoken::DecodingKey::from_ec_pem(lab.public_key_pem.as_bytes()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).unwrap();
        assert_eq!(data.header.typ.as_deref(), Some("passport"));
        assert_eq!(data.header.x5u.as_deref(), Some(lab.x5u.as_str()));
        let claims = data.claims;
        assert_eq!(claims["attest"], attest.as_str());
        assert_eq!(claims["orig"]["tn"], "12025550100");
        assert_eq!(claims["dest"]["tn"], serde_json::json!([DEST]));
        assert_eq!(claims["origid"], "4437c7eb-8f7a-4f0e-a863-f53a0e60251a");
        assert!(now().abs_diff(claims["iat"].as_u64().unwrap()) < 5);
        let header_json = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header_json).unwrap();
        assert_eq!(header["ppt"], "shaken");

        // And this crate's verifier, as an inbound call from the same numbers.
        let verified =
            lab.verifier.verify(Some(&identity), "+12025550100", "tel:+12025550111").await.unwrap();
        assert_eq!(
            verified,
            Verified {
                attest,
                origid: "4437c7eb-8f7a-4f0e-a863-f53a0e60251a".to_owned(),
                x5u: lab.x5u.clone(),
                orig: "12025550100".to_owned(),
                dest: vec![DEST.to_owned()],
                iat: verified.iat,
            }
        );
    }
    // The certificate was fetched once and then served from the cache.
    assert_eq!(lab.server.hits.load(Ordering::SeqCst), 1);
    assert_eq!(lab.verifier.cached_certificates(), 1);
}

fn expect_error(result: Result<Verified, VerifyError>, status: u16) -> VerifyError {
    let error = result.expect_err("the Identity must not verify");
    assert_eq!(error.status(), status, "{error}");
    error
}

#[tokio::test]
async fn a_tampered_payload_fails_the_signature() {
    let lab = lab().await;
    let identity = lab.signer.identity_header(ORIG, DEST, Attestation::C, "o").unwrap();
    let (token, params) = identity.split_once(';').unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let forged_claims = claims.replace("\"attest\":\"C\"", "\"attest\":\"A\"");
    assert_ne!(claims, forged_claims);
    let forged = format!("{}.{}.{};{params}", parts[0], URL_SAFE_NO_PAD.encode(forged_claims), parts[2]);
    let error = expect_error(lab.verifier.verify(Some(&forged), ORIG, DEST).await, 438);
    assert!(matches!(error, VerifyError::BadSignature { .. }), "{error}");
    assert_eq!(error.verstat(), Verstat::Failed);
    assert_eq!(error.reason_phrase(), "Invalid Identity Header");

    // A signature of the wrong length, or one from another key, fails the same way.
    let short = format!("{}.{}.{};{params}", parts[0], parts[1], URL_SAFE_NO_PAD.encode([1u8; 10]));
    expect_error(lab.verifier.verify(Some(&short), ORIG, DEST).await, 438);
}

#[tokio::test]
async fn a_stale_or_future_iat_fails() {
    let lab = lab().await;
    let old = lab.signer.identity_header_at(ORIG, DEST, Attestation::A, "o", now() - 120).unwrap();
    let error = expect_error(lab.verifier.verify(Some(&old), ORIG, DEST).await, 403);
    assert!(matches!(error, VerifyError::Stale { .. }), "{error}");
    assert_eq!(error.reason_phrase(), "Stale Date");
    let future = lab.signer.identity_header_at(ORIG, DEST, Attestation::A, "o", now() + 120).unwrap();
    expect_error(lab.verifier.verify(Some(&future), ORIG, DEST).await, 403);
    // Within the configured freshness it passes.
    let recent = lab.signer.identity_header_at(ORIG, DEST, Attestation::A, "o", now() - 30).unwrap();
    lab.verifier.verify(Some(&recent), ORIG, DEST).await.unwrap();
    let strict = verifier(
        &lab.ca.pem,
        Policy::any(),
        VerifierConfig { freshness: std::time::Duration::from_secs(10), ..lab_config() },
    );
    expect_error(strict.verify(Some(&recent), ORIG, DEST).await, 403);
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_not_trusted() {
    let lab = lab().await;
    let rogue = TestCa::new("Rogue CA");
    let (cert, key, _) = rogue.service_provider("Rogue SP");
    let server = serve(HashMap::from([("/rogue.pem".to_owned(), cert.clone())])).await;
    let signer = Signer::new(cert.as_bytes(), key.as_bytes(), &format!("{}/rogue.pem", server.base)).unwrap();
    let identity = signer.identity_header(ORIG, DEST, Attestation::A, "o").unwrap();
    let error = expect_error(lab.verifier.verify(Some(&identity), ORIG, DEST).await, 437);
    assert!(matches!(error, VerifyError::Untrusted { .. }), "{error}");
    assert_eq!(error.reason_phrase(), "Unsupported Credential");

    // A CA's own self-signed certificate served as the x5u is not a chain to the anchors either.
    let self_signed = serve(HashMap::from([("/ca.pem".to_owned(), rogue.pem.clone())])).await;
    let ca_signer = Signer::new(
        rogue.pem.as_bytes(),
        rogue.key.serialize_pem().as_bytes(),
        &format!("{}/ca.pem", self_signed.base),
    )
    .unwrap();
    let identity = ca_signer.identity_header(ORIG, DEST, Attestation::A, "o").unwrap();
    expect_error(lab.verifier.verify(Some(&identity), ORIG, DEST).await, 437);
}

#[tokio::test]
async fn a_chain_through_an_intermediate_verifies() {
    let root = TestCa::new("Test root");
    let intermediate = root.intermediate("Test intermediate");
    let (cert, key, _) = intermediate.service_provider("Test SP");
    let server = serve(HashMap::from([
        ("/chain.pem".to_owned(), format!("{cert}{}", intermediate.pem)),
        ("/leaf.pem".to_owned(), cert.clone()),
    ]))
    .await;
    let verifier = verifier(&root.pem, Policy::any(), lab_config());
    let signer = Signer::new(cert.as_bytes(), key.as_bytes(), &format!("{}/chain.pem", server.base)).unwrap();
    let identity = signer.identity_header(ORIG, DEST, Attestation::B, "o").unwrap();
    assert_eq!(verifier.verify(Some(&identity), ORIG, DEST).await.unwrap().attest, Attestation::B);
    // Without the intermediate the leaf does not reach the root.
    let signer = Signer::new(cert.as_bytes(), key.as_bytes(), &format!("{}/leaf.pem", server.base)).unwrap();
    let identity = signer.identity_header(ORIG, DEST, Attestation::B, "o").unwrap();
    expect_error(verifier.verify(Some(&identity), ORIG, DEST).await, 437);
}

#[tokio::test]
async fn orig_and_dest_must_be_the_calls() {
    let lab = lab().await;
    let identity = lab.signer.identity_header(ORIG, DEST, Attestation::A, "o").unwrap();
    let error = expect_error(lab.verifier.verify(Some(&identity), "12025559999", DEST).await, 438);
    assert!(matches!(error, VerifyError::OrigMismatch { .. }), "{error}");
    let error = expect_error(lab.verifier.verify(Some(&identity), ORIG, "12025559999").await, 438);
    assert!(matches!(error, VerifyError::DestMismatch { .. }), "{error}");
    // Mismatches are found before any certificate is fetched.
    assert_eq!(lab.server.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn missing_malformed_and_unusable_identities() {
    let lab = lab().await;
    let error = expect_error(lab.verifier.verify(None, ORIG, DEST).await, 428);
    assert_eq!(error.verstat(), Verstat::NoValidation);
    assert_eq!(error.reason_phrase(), "Use Identity Header");
    expect_error(lab.verifier.verify(Some("garbage"), ORIG, DEST).await, 438);

    let identity = lab.signer.identity_header(ORIG, DEST, Attestation::A, "o").unwrap();
    let other_ppt = identity.replace("ppt=shaken", "ppt=div");
    assert!(matches!(
        lab.verifier.verify(Some(&other_ppt), ORIG, DEST).await,
        Err(VerifyError::Unsupported { .. })
    ));
    // The info parameter must be the PASSporT's x5u.
    let moved = identity.replace(&format!("info=<{}>", lab.x5u), "info=<https://elsewhere.example/sp.pem>");
    let error = expect_error(lab.verifier.verify(Some(&moved), ORIG, DEST).await, 436);
    assert_eq!(error.reason_phrase(), "Bad Identity Info");
    let no_info = identity.replace(&format!(";info=<{}>", lab.x5u), "");
    expect_error(lab.verifier.verify(Some(&no_info), ORIG, DEST).await, 436);

    // http x5u only when the configuration allows it.
    let https_only = verifier(&lab.ca.pem, Policy::any(), VerifierConfig::default());
    expect_error(https_only.verify(Some(&identity), ORIG, DEST).await, 436);

    // A certificate that is not there.
    let signer_404 = {
        let (cert, key, _) = lab.ca.service_provider("SP");
        Signer::new(cert.as_bytes(), key.as_bytes(), &format!("{}/missing.pem", lab.server.base)).unwrap()
    };
    let identity_404 = signer_404.identity_header(ORIG, DEST, Attestation::A, "o").unwrap();
    let error = expect_error(lab.verifier.verify(Some(&identity_404), ORIG, DEST).await, 436);
    assert!(matches!(error, VerifyError::Fetch { .. }), "{error}");
}

#[tokio::test]
async fn the_x5u_is_fetched_through_the_egress_policy() {
    let lab = lab().await;
    // The default policy refuses loopback: the caller cannot make the platform fetch from it.
    let public_only = verifier(&lab.ca.pem, Policy::public_only(), lab_config());
    let identity = lab.signer.identity_header(ORIG, DEST, Attestation::A, "o").unwrap();
    let error = expect_error(public_only.verify(Some(&identity), ORIG, DEST).await, 436);
    assert!(error.to_string().contains("refused"), "{error}");
    assert_eq!(lab.server.hits.load(Ordering::SeqCst), 0);
    // An operator's allow-list entry lets it through.
    let port = lab.x5u.split(':').nth(2).unwrap().split('/').next().unwrap();
    let allowed = Policy::new(false, &[format!("127.0.0.1:{port}")]).unwrap();
    verifier(&lab.ca.pem, allowed, lab_config()).verify(Some(&identity), ORIG, DEST).await.unwrap();
}

#[tokio::test]
async fn the_certificate_cache_is_bounded() {
    let lab = lab().await;
    let (cert, key, _) = lab.ca.service_provider("Second SP");
    let server = serve(HashMap::from([("/two.pem".to_owned(), cert.clone())])).await;
    let second = Signer::new(cert.as_bytes(), key.as_bytes(), &format!("{}/two.pem", server.base)).unwrap();
    let small = verifier(&lab.ca.pem, Policy::any(), VerifierConfig { cache_max_entries: 1, ..lab_config() });
    for signer in [&lab.signer, &second, &lab.signer] {
        let identity = signer.identity_header(ORIG, DEST, Attestation::A, "o").unwrap();
        small.verify(Some(&identity), ORIG, DEST).await.unwrap();
        assert_eq!(small.cached_certificates(), 1);
    }
    // The first certificate was evicted by the second and fetched again.
    assert_eq!(lab.server.hits.load(Ordering::SeqCst), 2);
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let ca = TestCa::new("CA");
    let (cert, _, _) = ca.service_provider("SP");
    let (_, other_key, _) = ca.service_provider("Other");
    let error =
        Signer::new(cert.as_bytes(), other_key.as_bytes(), "https://cert.example/sp.pem").unwrap_err();
    assert!(matches!(error, opentact_shaken::SignerError::KeyMismatch), "{error}");
    let error = Signer::new(cert.as_bytes(), b"not a key", "https://cert.example/sp.pem").unwrap_err();
    assert!(error.to_string().contains("PKCS#8"), "{error}");
    let (_, key, _) = ca.service_provider("SP2");
    assert!(Signer::new(cert.as_bytes(), key.as_bytes(), "ftp://x").is_err());
}
