//! `opentact api …` against a running `opentact serve`: the sample account logs in, searches
//! and orders numbers, creates an XML app and deploys a component to another, all through the
//! real binary; refusals and an unreachable server exit non-zero with the reason on stderr.
//! The operator's `opentact admin account` creates an account and credits its balance.

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
    opentact(env, &[&["api"], args].concat()).await
}

/// Runs `opentact <args>` with `env` (and no credentials inherited from the environment).
async fn opentact(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_opentact"));
    command.args(args);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_waits_for_an_approved_10dlc_campaign_from_the_command_line() {
    let platform = Platform::start(&[]).await;
    let password = sample_password(&platform.log());
    let base = format!("http://{}", platform.api);
    let data = platform.dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let login = api(
        &[("OPENTACT_API", &base)],
        &["login", "--email", "demo@opentact.local", "--password", &password],
    )
    .await;
    assert_eq!(login.code, 0, "{login:?}");
    let env = [("OPENTACT_API", base.as_str()), ("OPENTACT_TOKEN", login.stdout.trim())];

    // The sample number is a US long code in no campaign: refused, with what to do.
    let send =
        ["sms", "send", "--tn", "+12025550100", "--to", "+14155550100", "--message", "Your code is 123456"];
    let refused = api(&env, &send).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stdout.is_empty(), "{refused:?}");
    for needle in ["(HTTP 422)", "tn: the number 12025550100", "POST /rest/10dlc/brand", "wait for approval"]
    {
        assert!(refused.stderr.contains(needle), "{needle}: {refused:?}");
    }

    // A brand and a campaign through the raw requests, the number assigned: still pending.
    let brand = r#"{"legal_name": "Demo Co", "entity_type": "private_profit", "ein": "12-3456789",
        "vertical": "TECHNOLOGY", "street": "1 Main St", "city": "Washington", "state": "DC",
        "postal_code": "20001", "contact_name": "Demo Ops", "contact_email": "ops@demo.example.com",
        "contact_phone": "+12025550199"}"#;
    let brand = api(&env, &["post", "/rest/10dlc/brand", brand]).await;
    assert_eq!(brand.code, 0, "{brand:?}");
    let brand: Value = serde_json::from_str(&brand.stdout).expect("JSON");
    let campaign = serde_json::json!({
        "brand": brand["payload"]["uuid"],
        "use_case": "2FA",
        "description": "One-time passcodes for signing in to the Demo Co customer portal.",
        "message_flow": "Users enter their mobile number on the portal's sign-in page and tick a consent box.",
        "sample_messages": ["Demo Co: your code is 123456.", "Demo Co: your sign-in code is 654321. Reply STOP to opt out."],
        "opt_in_message": "Demo Co: you will get sign-in codes. Reply STOP to opt out.",
        "opt_out_message": "Demo Co: you will get no more messages.",
        "help_message": "Demo Co: sign-in codes. Help at ops@demo.example.com."
    });
    let campaign = api(&env, &["post", "/rest/10dlc/campaign", &campaign.to_string()]).await;
    assert_eq!(campaign.code, 0, "{campaign:?}");
    let campaign: Value = serde_json::from_str(&campaign.stdout).expect("JSON");
    let id = campaign["payload"]["uuid"].as_str().expect("uuid").to_owned();
    let assigned = api(&env, &["10dlc", "assign", &id, "12025550100"]).await;
    assert_eq!(assigned.code, 0, "{assigned:?}");
    assert_eq!(assigned.stdout.trim(), format!("{id}\tpending\t2FA\t12025550100"), "{assigned:?}");
    let pending = api(&env, &send).await;
    assert_eq!(pending.code, 1, "{pending:?}");
    assert!(pending.stderr.contains(&format!("campaign {id} is pending approval")), "{pending:?}");

    // The operator reviews on the store: a rejection needs a reason; approval lets it send.
    let listed = opentact(&[], &["admin", "10dlc", "list", "--state", "pending", "--data-dir", data]).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    assert!(listed.stdout.starts_with(&format!("{id}\tpending\t")), "{listed:?}");
    assert!(listed.stdout.contains("\t2FA\t12025550100\tOne-time passcodes"), "{listed:?}");
    let no_reason = opentact(&[], &["admin", "10dlc", "reject", &id, "--data-dir", data]).await;
    assert_eq!(no_reason.code, 2, "{no_reason:?}");
    assert!(no_reason.stderr.contains("--reason"), "{no_reason:?}");
    let unknown = uuid::Uuid::new_v4().to_string();
    let missing = opentact(&[], &["admin", "10dlc", "approve", &unknown, "--data-dir", data]).await;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.contains(&format!("no campaign {unknown}")), "{missing:?}");
    let approved = opentact(&[], &["admin", "10dlc", "approve", &id, "--data-dir", data]).await;
    assert_eq!(approved.code, 0, "{approved:?}");
    assert!(approved.stdout.starts_with(&format!("{id}\tapproved\t")), "{approved:?}");
    let campaigns = api(&env, &["10dlc", "campaigns"]).await;
    assert_eq!(campaigns.stdout.trim(), format!("{id}\tapproved\t2FA\t12025550100"), "{campaigns:?}");

    // The same send now goes through: queued (no SMSC is configured), and in the log.
    let sent = api(&env, &send).await;
    assert_eq!(sent.code, 0, "{sent:?}");
    let fields: Vec<&str> = sent.stdout.trim().split('\t').collect();
    assert_eq!(fields[1..], ["queued", "1 part(s)"], "{sent:?}");
    let log = api(&env, &["sms", "search", "--to", "+14155550100", "--type", "smso"]).await;
    assert_eq!(log.code, 0, "{log:?}");
    let line: Vec<&str> = log.stdout.trim().split('\t').collect();
    assert_eq!(line.len(), 7, "{log:?}");
    assert_eq!(
        (line[0], line[2], line[3], line[4], line[5], line[6]),
        (fields[0], "smso", "queued", "12025550100", "14155550100", "Your code is 123456"),
        "{log:?}"
    );
    let none = api(&env, &["sms", "search", "--state", "delivered"]).await;
    assert_eq!((none.code, none.stdout.as_str()), (0, ""), "{none:?}");
    assert!(none.stderr.contains("no message matches"), "{none:?}");
    let bad = api(&env, &["sms", "search", "--since", "yesterday"]).await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("since"), "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_signs_up_an_account_and_credits_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let admin = |args: &[&str]| {
        let args: Vec<String> = ["admin", "account"]
            .iter()
            .chain(args)
            .chain(&["--data-dir", data])
            .map(|a| (*a).to_owned())
            .collect();
        async move { opentact(&[], &args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let email = "ops@acme.example.com";
    let password = "a long enough secret";
    let create =
        ["create", "--email", email, "--name", "Acme", "--password", password, "--time-zone", "Europe/Paris"];
    let created = admin(&create).await;
    assert_eq!(created.code, 0, "{created:?}");
    let (uuid, printed_email) = created.stdout.trim().split_once('\t').expect("uuid and e-mail");
    assert_eq!(printed_email, email, "{created:?}");
    let again = admin(&create).await;
    assert_eq!(again.code, 1, "the e-mail is taken: {again:?}");
    assert!(again.stderr.contains(email), "{again:?}");
    let short =
        admin(&["create", "--email", "b@acme.example.com", "--name", "B", "--password", "short"]).await;
    assert_ne!(short.code, 0, "{short:?}");
    assert!(short.stderr.contains("--password: at least 8 characters"), "{short:?}");

    // Credits by e-mail or uuid; a negative amount corrects; bad amounts and unknown accounts
    // are refused with why.
    let credited = admin(&["credit", email, "--amount", "2.5", "--note", "invoice 7"]).await;
    assert_eq!(credited.code, 0, "{credited:?}");
    assert_eq!(credited.stdout.trim(), format!("{uuid}\t2.500000\tbalance 2.500000"), "{credited:?}");
    let corrected = admin(&["credit", uuid, "--amount", "-0.25"]).await;
    assert_eq!(corrected.stdout.trim(), format!("{uuid}\t-0.250000\tbalance 2.250000"), "{corrected:?}");
    let bad = admin(&["credit", email, "--amount", "1e3"]).await;
    assert_ne!(bad.code, 0, "{bad:?}");
    assert!(bad.stderr.contains("--amount: \"1e3\" is not an amount"), "{bad:?}");
    let nobody = admin(&["credit", "nobody@acme.example.com", "--amount", "1"]).await;
    assert_eq!(nobody.code, 1, "{nobody:?}");
    assert!(nobody.stderr.contains("no account nobody@acme.example.com"), "{nobody:?}");

    // The new account signs in and reads its balance and ledger.
    let platform = Platform::start_in(dir, &[]).await;
    let base = format!("http://{}", platform.api);
    let login = api(&[("OPENTACT_API", &base)], &["login", "--email", email, "--password", password]).await;
    assert_eq!(login.code, 0, "{login:?}");
    let env = [("OPENTACT_API", base.as_str()), ("OPENTACT_TOKEN", login.stdout.trim())];
    let account = api(&env, &["get", "/rest/account"]).await;
    let account: Value = serde_json::from_str(&account.stdout).expect("JSON");
    assert_eq!(account["payload"]["time_zone"], "Europe/Paris", "{account}");
    let balance = api(&env, &["get", "/rest/account/balance"]).await;
    let balance: Value = serde_json::from_str(&balance.stdout).expect("JSON");
    assert_eq!(balance["payload"]["balance"], "2.250000", "{balance}");
    let ledger = api(&env, &["post", "/rest/account/transactions/search", r#"{"kind": "credit"}"#]).await;
    let ledger: Value = serde_json::from_str(&ledger.stdout).expect("JSON");
    assert_eq!(ledger["payload"]["total"], 2, "{ledger}");
    assert_eq!(ledger["payload"]["data"][0]["description"], "invoice 7", "{ledger}");
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
