//! `opentact api …` against a running `opentact serve`: the sample account logs in, searches
//! and orders numbers, creates an XML app and deploys a component to another, all through the
//! real binary; refusals and an unreachable server exit non-zero with the reason on stderr.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::platform::Platform;
use support::runner::repo;
use support::ws::sample_password;

/// What one `opentact api` run printed and how it ended.
#[derive(Debug)]
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `opentact api <args>` with `env` (and no credentials inherited from the environment).
async fn api(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_opentact"));
    command.arg("api").args(args);
    for name in ["OPENTACT_API", "OPENTACT_TOKEN", "OPENTACT_EMAIL", "OPENTACT_PASSWORD"] {
        command.env_remove(name);
    }
    let child = command
        .envs(env.iter().copied())
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn opentact api");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("opentact api finished within 60 s")
        .expect("opentact api output");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_account_drives_the_api_from_the_command_line() {
    let platform = Platform::start(&[]).await;
    let password = sample_password(&platform.log());
    let base = format!("http://{}", platform.api);
    let email = "demo@opentact.local";

    // Login prints the JWT alone, ready to export.
    let login = api(&[("OPENTACT_API", &base)], &["login", "--email", email, "--password", &password]).await;
    assert_eq!(login.code, 0, "{login:?}");
    let token = login.stdout.trim().to_owned();
    assert_eq!(token.lines().count(), 1, "{login:?}");
    assert_eq!(token.split('.').count(), 3, "a JWT: {login:?}");
    let env = [("OPENTACT_API", base.as_str()), ("OPENTACT_TOKEN", token.as_str())];

    // The wrong password: the API's message and status on stderr, nothing on stdout.
    let wrong = api(&[("OPENTACT_API", &base)], &["login", "--email", email, "--password", "nope"]).await;
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(wrong.stdout.is_empty(), "{wrong:?}");
    assert!(wrong.stderr.contains("error: ") && wrong.stderr.contains("(HTTP 401)"), "{wrong:?}");
    assert!(wrong.stderr.contains("wrong email or password"), "{wrong:?}");

    // The sample inventory is +1 202 555 01xx, of which 0100 is leased already.
    let search = api(&env, &["numbers", "search", "--pattern", "202555****", "--take", "200"]).await;
    assert_eq!(search.code, 0, "{search:?}");
    let lines: Vec<&str> = search.stdout.lines().collect();
    assert_eq!(lines.len(), 99, "{search:?}");
    assert!(lines.iter().all(|line| line.starts_with("1202555")), "{search:?}");
    assert!(lines.iter().any(|line| line.starts_with("12025550160\t")), "{search:?}");
    assert!(!lines.iter().any(|line| line.starts_with("12025550100\t")), "leased: {search:?}");
    let as_json = api(&env, &["numbers", "search", "--pattern", "202555****", "--json"]).await;
    assert_eq!(as_json.code, 0, "{as_json:?}");
    let payload: Value = serde_json::from_str(&as_json.stdout).expect("--json prints JSON");
    assert_eq!(payload["total"], 99, "{payload}");

    // Email and password work for any command, given before it.
    let basic = api(
        &[("OPENTACT_API", &base)],
        &["--email", email, "--password", &password, "numbers", "search", "--take", "1"],
    )
    .await;
    assert_eq!(basic.code, 0, "{basic:?}");
    assert_eq!(basic.stdout.lines().count(), 1, "{basic:?}");

    // Ordering leases the number; ordering it again fails and exits 1.
    let order = api(&env, &["numbers", "order", "12025550160"]).await;
    assert_eq!(order.code, 0, "{order:?}");
    assert!(order.stdout.starts_with("12025550160\tleased\t"), "{order:?}");
    let again = api(&env, &["numbers", "order", "+12025550160", "--features", "voice"]).await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stdout.starts_with("12025550160\tfailed\t"), "{again:?}");
    assert!(again.stdout.contains("not available"), "{again:?}");

    // An XML app: created from a file, its uuid printed, readable with the raw `get`.
    let dir = tempfile::tempdir().expect("tempdir");
    let xml = dir.path().join("hangup.xml");
    std::fs::write(&xml, "<Response><Hangup/></Response>").expect("write the flow");
    let created =
        api(&env, &["apps", "create", "--name", "x", "--xml-file", xml.to_str().expect("utf-8")]).await;
    assert_eq!(created.code, 0, "{created:?}");
    let app = created.stdout.trim().to_owned();
    assert!(uuid::Uuid::parse_str(&app).is_ok(), "a uuid: {created:?}");
    let read = api(&env, &["get", &format!("/rest/sip/app/{app}")]).await;
    assert_eq!(read.code, 0, "{read:?}");
    let read: Value = serde_json::from_str(&read.stdout).expect("the response as JSON");
    assert_eq!(read["payload"]["name"], "x", "{read}");

    // An invalid document is refused with the dialect's reason.
    std::fs::write(&xml, "<Response><Nope/></Response>").expect("write the flow");
    let invalid =
        api(&env, &["apps", "create", "--name", "y", "--xml-file", xml.to_str().expect("utf-8")]).await;
    assert_eq!(invalid.code, 1, "{invalid:?}");
    assert!(invalid.stderr.contains("(HTTP 422)") && invalid.stderr.contains("xml"), "{invalid:?}");

    // A component app: created, then its component deployed as version 1.
    let created = api(&env, &["apps", "create", "--name", "hello", "--component"]).await;
    assert_eq!(created.code, 0, "{created:?}");
    let wasm = dir.path().join("hello.wasm");
    std::fs::write(&wasm, opentact_guest_artifacts::bytes("hello")).expect("write the component");
    let deployed = api(&env, &["apps", "deploy", created.stdout.trim(), wasm.to_str().expect("utf-8")]).await;
    assert_eq!(deployed.code, 0, "{deployed:?}");
    assert_eq!(deployed.stdout.trim(), "1", "{deployed:?}");

    // The raw `post` sends the body as given.
    let posted = api(&env, &["post", "/rest/tn/search?take=2", r#"{"state":"DC"}"#]).await;
    assert_eq!(posted.code, 0, "{posted:?}");
    let posted: Value = serde_json::from_str(&posted.stdout).expect("the response as JSON");
    assert_eq!(posted["payload"]["data"].as_array().map(Vec::len), Some(2), "{posted}");
    let typo = api(&env, &["post", "/rest/tn/search", "{state:"]).await;
    assert_eq!(typo.code, 2, "{typo:?}");
    assert!(typo.stderr.contains("not JSON"), "{typo:?}");

    // A SIP user in a new domain (named by its label).
    let domain = api(&env, &["post", "/rest/sip/domain", r#"{"name":"acme"}"#]).await;
    assert_eq!(domain.code, 0, "{domain:?}");
    let user = api(
        &env,
        &["sip", "users", "create", "--domain", "acme", "--login", "alice", "--password", "alice-secret-1"],
    )
    .await;
    assert_eq!(user.code, 0, "{user:?}");
    let listed = api(&env, &["get", "/rest/sip/domain/acme/user"]).await;
    let listed: Value = serde_json::from_str(&listed.stdout).expect("JSON");
    assert_eq!(listed["payload"]["data"][0]["uuid"].as_str(), Some(user.stdout.trim()), "{listed}");
    assert_eq!(listed["payload"]["data"][0]["state"], "offline", "{listed}");
    let short =
        api(&env, &["sip", "users", "create", "--domain", "acme", "--login", "bob", "--password", "x"]).await;
    assert_eq!(short.code, 1, "{short:?}");
    assert!(short.stderr.contains("password: must be 8"), "{short:?}");

    // Bulk calls: the API's checks come back, a bad number with its line in the file; a
    // missing flow is the command line's error.
    let flow = dir.path().join("greeting.xml");
    std::fs::write(&flow, "<Response><Say>Hello.</Say></Response>").expect("write the flow");
    let flow = flow.to_str().expect("utf-8");
    let phones = dir.path().join("phones.txt");
    std::fs::write(&phones, "# customers\n12025550111\n\n+1 202 555 0112\n").expect("write the numbers");
    let lease = uuid::Uuid::new_v4().to_string();
    let batch = ["batch", "create", "--lease", &lease, "--xml-file", flow];
    let bad_number =
        api(&env, &[&batch[..], &["--phones-file", phones.to_str().expect("utf-8")]].concat()).await;
    assert_eq!(bad_number.code, 1, "{bad_number:?}");
    assert!(
        bad_number.stderr.contains("phones[1]")
            && bad_number.stderr.contains("(line 4 of")
            && bad_number.stderr.contains("(HTTP 422)"),
        "{bad_number:?}"
    );
    let no_lease = api(&env, &[&batch[..], &["--phone", "12025550111"]].concat()).await;
    assert_eq!(no_lease.code, 1, "{no_lease:?}");
    assert!(no_lease.stderr.contains(&format!("tn_lease: tn lease {lease} not found")), "{no_lease:?}");
    let no_flow = api(&env, &["batch", "create", "--lease", &lease, "--phone", "12025550111"]).await;
    assert_eq!(no_flow.code, 2, "{no_flow:?}");
    assert!(no_flow.stderr.contains("--xml-file"), "{no_flow:?}");

    // No credentials: the API's 401 and a hint naming the flags.
    let anonymous = api(&[("OPENTACT_API", &base)], &["numbers", "search"]).await;
    assert_eq!(anonymous.code, 1, "{anonymous:?}");
    assert!(anonymous.stderr.contains("(HTTP 401)") && anonymous.stderr.contains("--token"), "{anonymous:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_named() {
    // Bind and drop: a loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let base = format!("http://127.0.0.1:{port}");
    let run = api(&[("OPENTACT_API", &base), ("OPENTACT_TOKEN", "t")], &["numbers", "search"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains(&format!("127.0.0.1:{port}")), "names the URL: {run:?}");
    assert!(run.stderr.contains("opentact serve"), "{run:?}");
}
