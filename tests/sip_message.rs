//! SIP MESSAGE (RFC 3428) end to end: a baresip user texts another registered baresip user
//! through the platform; MESSAGE is digest-authenticated like a call (a wrong password is
//! refused and counts toward the lock); refusals (not registered, unknown or another account's
//! user, not text, too large, no number to send SMS from) carry their reason.

#[path = "support/raw_sip.rs"]
mod raw_sip;
mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use raw_sip::{Answer, Phone};
use support::platform::Platform;
use support::provision;

/// A baresip for `login@acme.sip.opentact.local` with no audio, the `contact` module (whose
/// `/message` texts the first of `contacts`), registering unless `register` is false; its
/// output goes to `<dir>/baresip.log`.
fn spawn_baresip(
    dir: &Path,
    platform: &Platform,
    login: &str,
    password: &str,
    contacts: &[&str],
    commands: &[&str],
) -> tokio::process::Child {
    let port = support::sipp::free_udp_port();
    let config = format!(
        "poll_method\t\tepoll\n\
         sip_listen\t\t127.0.0.1:{port}\n\
         audio_player\t\taubridge,speaker\n\
         audio_source\t\taubridge,speaker\n\
         audio_alert\t\taubridge,alert\n\
         module_path\t\t/usr/lib/baresip/modules\n\
         module\t\t\tg711.so\n\
         module\t\t\taubridge.so\n\
         module_app\t\taccount.so\n\
         module_app\t\tcontact.so\n\
         module_app\t\tmenu.so\n\
         module\t\t\tstdio.so\n"
    );
    std::fs::write(dir.join("config"), config).expect("baresip config");
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:{login}@acme.sip.opentact.local>;auth_pass={password};outbound=\"sip:{};transport=udp\";regint=300\n",
            platform.sip
        ),
    )
    .expect("baresip accounts");
    let contacts: String = contacts.iter().map(|c| format!("<{c}>\n")).collect();
    std::fs::write(dir.join("contacts"), contacts).expect("baresip contacts");
    let log = std::fs::File::create(dir.join("baresip.log")).expect("log file");
    let mut command = tokio::process::Command::new("baresip");
    command.args(["-f", dir.to_str().expect("utf-8")]);
    for line in commands {
        command.args(["-e", line]);
    }
    command
        .current_dir(dir)
        // The stdio UI (which prints received messages) reads commands from a pipe kept open
        // with the child.
        .stdin(Stdio::piped())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("baresip is installed (apt-get install baresip)")
}

async fn wait_for(what: &str, timeout: Duration, found: impl Fn() -> bool, context: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !found() {
        assert!(tokio::time::Instant::now() < deadline, "{what}:\n{}", context());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baresip_user_texts_another_registered_user() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let account = provision::account(&dir, "texts@example.test").await;
    provision::sip_user(&dir, account, "acme", "alice", "alice-Pass-1").await;
    provision::sip_user_in(&dir, account, "acme", "bob", "bob-Pass-2").await;
    // No carrier addresses: loopback is where the phones are, and they must authenticate.
    let config = data.path().join("no-carriers.toml");
    std::fs::write(&config, "[sip]\ncarriers = []\n").expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;

    let bob_dir = tempfile::tempdir().expect("tempdir");
    let _bob = spawn_baresip(bob_dir.path(), &platform, "bob", "bob-Pass-2", &[], &[]);
    wait_for(
        "bob registered",
        Duration::from_secs(20),
        || platform.log().contains("registered user=bob "),
        || platform.log(),
    )
    .await;
    let alice_dir = tempfile::tempdir().expect("tempdir");
    let _alice = spawn_baresip(
        alice_dir.path(),
        &platform,
        "alice",
        "alice-Pass-1",
        &["sip:bob@acme.sip.opentact.local"],
        &["/message Hello Bob, it is Alice"],
    );
    let bob_log = bob_dir.path().join("baresip.log");
    wait_for(
        "bob's phone showed the message",
        Duration::from_secs(20),
        || read(&bob_log).contains("Hello Bob, it is Alice"),
        || {
            format!(
                "server:\n{}\nalice:\n{}\nbob:\n{}",
                platform.log(),
                read(&alice_dir.path().join("baresip.log")),
                read(&bob_log)
            )
        },
    )
    .await;
    let log = platform.log();
    let delivered =
        log.lines().find(|line| line.contains("MESSAGE to a SIP user")).expect("the delivery is logged");
    assert!(delivered.contains("status=200"), "{delivered}");
    assert!(delivered.contains("message{"), "logged in the message span: {delivered}");
    assert!(delivered.contains("from=sip:alice@acme.sip.opentact.local"), "{delivered}");
}

/// Sends a MESSAGE from `phone` to `target` through the digest challenge with `password`.
async fn message(phone: &Phone, target: &str, content_type: &str, body: &str, password: &str) -> Answer {
    let headers = format!("Content-Type: {content_type}\r\n");
    let challenge = phone.send(&phone.request_with_body("MESSAGE", target, target, &headers, body)).await;
    assert_eq!(challenge.status, 407, "a challenge first: {}", challenge.text);
    let auth = phone.authorization("Proxy-Authorization", "MESSAGE", target, &challenge.nonce(), 1, password);
    phone.send(&phone.request_with_body("MESSAGE", target, target, &format!("{headers}{auth}"), body)).await
}

fn warning(answer: &Answer) -> String {
    answer
        .text
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("warning:"))
        .unwrap_or_else(|| panic!("a Warning header: {}", answer.text))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_authenticated_checked_and_kept_within_the_account() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let account = provision::account(&dir, "checks@example.test").await;
    provision::sip_user(&dir, account, "acme", "alice", "alice-Pass-1").await;
    provision::sip_user_in(&dir, account, "acme", "bob", "bob-Pass-2").await;
    provision::sip_user_in(&dir, account, "acme", "eve", "eve-Pass-5").await;
    let other = provision::account(&dir, "other@example.test").await;
    provision::sip_user(&dir, other, "globex", "mallory", "mallory-Pass-4").await;
    let config = data.path().join("sip.toml");
    std::fs::write(&config, "[sip]\ncarriers = []\nauth_user_max_failures = 2\n").expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let alice = Phone::on("127.0.0.1", platform.sip, "alice", "acme.sip.opentact.local").await;
    let password = "alice-Pass-1";

    let to_bob = "sip:bob@acme.sip.opentact.local";
    let answer = message(&alice, to_bob, "text/plain", "are you there?", password).await;
    assert_eq!(answer.status, 480, "bob is not registered: {}", answer.text);
    assert!(warning(&answer).contains("is not registered"), "{}", answer.text);

    let answer = message(&alice, "sip:carol@acme.sip.opentact.local", "text/plain", "hi", password).await;
    assert_eq!(answer.status, 404, "no such user: {}", answer.text);
    // Another account's user is as unknown as a missing one.
    let answer = message(&alice, "sip:mallory@globex.sip.opentact.local", "text/plain", "hi", password).await;
    assert_eq!(answer.status, 404, "another account's user: {}", answer.text);
    assert!(warning(&answer).contains("no SIP user mallory@globex.sip.opentact.local"), "{}", answer.text);

    let answer = message(&alice, to_bob, "text/html", "<b>hi</b>", password).await;
    assert_eq!(answer.status, 415, "{}", answer.text);
    assert!(answer.text.contains("Accept: text/plain"), "{}", answer.text);
    let answer = message(&alice, to_bob, "text/plain", &"x".repeat(1301), password).await;
    assert_eq!(answer.status, 513, "over RFC 3428's 1300 bytes: {}", answer.text);

    let answer =
        message(&alice, "sip:12025550100@acme.sip.opentact.local", "text/plain", "hi", password).await;
    assert_eq!(answer.status, 403, "{}", answer.text);
    assert!(warning(&answer).contains("has no number to send SMS from"), "{}", answer.text);

    // Wrong passwords are refused like a call's, and count toward the user's lock.
    let eve = Phone::on("127.0.0.1", platform.sip, "eve", "acme.sip.opentact.local").await;
    for _ in 0..2 {
        let answer = message(&eve, to_bob, "text/plain", "let me in", "guess").await;
        assert_eq!(answer.status, 403, "{}", answer.text);
    }
    let log = platform.log();
    assert!(log.contains("MESSAGE refused: wrong credentials"), "{log}");
    let banned = log
        .lines()
        .find(|line| line.contains("SIP authentication failures: banned"))
        .unwrap_or_else(|| panic!("eve is locked:\n{log}"));
    assert!(banned.contains("eve@acme.sip.opentact.local"), "{banned}");
}

/// The test SMSC (npm `smpp`, tests/support/smsc) and its JSON log.
async fn smsc() -> (tokio::process::Child, u16, std::sync::Arc<parking_lot::Mutex<Vec<serde_json::Value>>>) {
    use tokio::io::AsyncBufReadExt;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/smsc");
    assert!(dir.join("node_modules/smpp").exists(), "run scripts/install-deps --test");
    let mut child = tokio::process::Command::new("node")
        .arg(dir.join("smsc.js"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next_line().await.expect("read").expect("LISTENING");
    let port = first.strip_prefix("LISTENING ").expect("LISTENING").parse().expect("port");
    let log = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let collected = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(value) = serde_json::from_str(&line) {
                collected.lock().push(value);
            }
        }
    });
    (child, port, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_a_number_goes_out_as_an_sms_from_the_users_number() {
    let (_smsc, port, smsc_log) = smsc().await;
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let account = provision::sms_number(&dir, "sms-user@example.test", 12025550166, true).await;
    provision::sip_user(&dir, account, "acme", "alice", "alice-Pass-1").await;
    provision::give_number(&dir, account, "acme", "alice", 12025550166).await;
    let config = data.path().join("sip-sms.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\ncarriers = []\n\n[messaging.smpp]\nport = {port}\nsystem_id = \"opentact\"\n\
             password = \"secret\"\nthroughput_per_sec = 0\nreconnect_min_ms = 50\n\n\
             [messaging.sender]\npoll_interval_ms = 50\n"
        ),
    )
    .expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let alice = Phone::on("127.0.0.1", platform.sip, "alice", "acme.sip.opentact.local").await;
    let to = "sip:13105550123@acme.sip.opentact.local";
    let answer =
        message(&alice, to, "text/plain;charset=UTF-8", "Running late, see you at 6", "alice-Pass-1").await;
    assert_eq!(answer.status, 202, "accepted as an SMS: {}\n{}", answer.text, platform.log());
    wait_for(
        "the SMSC got the submit_sm",
        Duration::from_secs(10),
        || {
            smsc_log.lock().iter().any(|e| {
                e["event"] == "submit_sm" && e["destination"] == "13105550123" && e["source"] == "12025550166"
            })
        },
        || format!("{:#?}\n{}", smsc_log.lock(), platform.log()),
    )
    .await;
}
