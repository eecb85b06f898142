//! SIP over TLS with SRTP (issue 13, item 3): baresip registers over TLS with a certificate the
//! test generates, calls the sample IVR with mandatory SRTP (SDES), and a digit it presses
//! selects the branch; a call to it goes out over its TLS connection with SRTP offered.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use opentact_store::{AccountRepo, ListParams, NewSipDomain, SipControlAppRepo, SipDomainRepo, Store};
use support::platform::Platform;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The sample account and its IVR, which `opentact serve` seeds on a fresh data directory.
const SAMPLE_EMAIL: &str = "demo@opentact.local";
const SAMPLE_NUMBER: &str = "12025550100";

/// A free loopback TCP port (the OS's pick, released for the process that will bind it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A self-signed server certificate for 127.0.0.1 and localhost, as PEM (certificate, key).
fn self_signed() -> (String, String) {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("certificate");
    (generated.cert.pem(), generated.signing_key.serialize_pem())
}

/// Seeds the sample account in `data` (a start-up check run), then gives it the SIP domain
/// `demo` whose calls run the sample IVR, and the user `alice` in it.
async fn sample_with_a_sip_user(data: &Path) {
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_opentact"))
        .args(["serve", "--data-dir", data.to_str().expect("utf-8"), "--check"])
        .args(["--sip-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .expect("opentact serve --check");
    assert!(status.success(), "the start-up check seeds the sample account");
    let store = Store::open(&format!("sqlite://{}?mode=rwc", data.join("opentact.db").display()))
        .await
        .expect("store");
    let account = store.account_by_email(SAMPLE_EMAIL).await.expect("lookup").expect("the sample account");
    let apps = store.list_apps(account.uuid, ListParams::default()).await.expect("apps");
    let ivr = apps.data.iter().find(|app| app.name == "Sample IVR").expect("the sample IVR");
    store
        .create_domain(
            account.uuid,
            NewSipDomain { name: "demo".to_owned(), app: Some(ivr.uuid), event_url: None },
        )
        .await
        .expect("domain");
    store.close().await;
    support::provision::sip_user_in(data, account.uuid, "demo", "alice", "alice-Pass-1").await;
}

/// A baresip whose account registers over TLS to `tls` (trusting `ca`); commands reach it on
/// `ctrl_port` (ctrl_tcp). Output in `<dir>/baresip.log`.
/// Started again on another port if its first was taken ([`support::baresip::until_ready`]).
async fn spawn_tls_baresip(
    dir: &Path,
    tls: std::net::SocketAddr,
    ca: &Path,
    ctrl_port: u16,
    domain: &str,
) -> tokio::process::Child {
    support::baresip::until_ready(dir, || launch_tls_baresip(dir, tls, ca, ctrl_port, domain)).await
}

/// One try of [`spawn_tls_baresip`], on fresh SIP and RTP ports. No ringback tone: played on
/// the platform's 180 through the in-process audio bridge, it leaves the bridge no longer
/// clocking the call's audio out, and the phone sends no RTP (nor DTMF) after the answer.
fn launch_tls_baresip(
    dir: &Path,
    tls: std::net::SocketAddr,
    ca: &Path,
    ctrl_port: u16,
    domain: &str,
) -> tokio::process::Child {
    let sip_port = free_port();
    let rtp = free_port();
    let config = format!(
        "poll_method\t\tepoll\n\
         sip_listen\t\t127.0.0.1:{sip_port}\n\
         sip_cafile\t\t{}\n\
         audio_player\t\taubridge,speaker\n\
         audio_source\t\taubridge,speaker\n\
         audio_alert\t\taubridge,alert\n\
         ringback_disabled\tyes\n\
         rtp_ports\t\t{}-{}\n\
         ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n\
         module_path\t\t/usr/lib/baresip/modules\n\
         module\t\t\tg711.so\n\
         module\t\t\taubridge.so\n\
         module\t\t\tsrtp.so\n\
         module_app\t\taccount.so\n\
         module_app\t\tmenu.so\n\
         module_app\t\tctrl_tcp.so\n",
        ca.display(),
        rtp.min(64_000),
        rtp.min(64_000) + 100,
    );
    std::fs::write(dir.join("config"), config).expect("baresip config");
    let account = format!(
        "<sip:alice@{domain};transport=tls>;auth_pass=alice-Pass-1;answermode=auto;mediaenc=srtp-mand;\
         outbound=\"sip:{tls};transport=tls\";regint=300\n"
    );
    std::fs::write(dir.join("accounts"), account).expect("baresip accounts");
    let log = std::fs::File::create(dir.join("baresip.log")).expect("log file");
    tokio::process::Command::new("baresip")
        .args(["-f", dir.to_str().expect("utf-8")])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("baresip is installed (scripts/install-deps --test)")
}

/// Sends baresip a command over ctrl_tcp (a netstring holding JSON).
async fn baresip_command(ctrl_port: u16, command: &str, params: &str) {
    let json = serde_json::json!({ "command": command, "params": params, "token": "test" }).to_string();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", ctrl_port)).await.expect("ctrl_tcp");
    stream.write_all(format!("{}:{json},", json.len()).as_bytes()).await.expect("command");
    // Let baresip read it before the connection closes.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Waits until `<dir>/baresip.log` contains `text`.
async fn wait_for_phone(dir: &Path, text: &str, platform: &Platform) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let log = std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default();
        if log.contains(text) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "baresip: {text:?} not seen:\n{log}\nserver log:\n{}",
            platform.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the platform with TLS on a free port, the certificate in `data`'s parent.
async fn start_with_tls(
    data: tempfile::TempDir,
    carriers: &str,
) -> (Platform, std::net::SocketAddr, std::path::PathBuf) {
    let tls_port = free_port();
    let (platform, cert_file) = start_with_certificate(
        data,
        &format!("carriers = {carriers}\ntls_listen = \"127.0.0.1:{tls_port}\"\n"),
    )
    .await;
    let tls = std::net::SocketAddr::from(([127, 0, 0, 1], tls_port));
    wait_for_ready_field(&platform, &format!("sip_tls={tls}")).await;
    (platform, tls, cert_file)
}

/// Starts the platform with `sip_table` (lines of the `[sip]` table) and a self-signed
/// certificate for its TLS and wss listeners, written in `data`; the certificate's file.
async fn start_with_certificate(data: tempfile::TempDir, sip_table: &str) -> (Platform, std::path::PathBuf) {
    let (cert, key) = self_signed();
    let cert_file = data.path().join("sip-tls.crt");
    let key_file = data.path().join("sip-tls.key");
    std::fs::write(&cert_file, cert).expect("cert");
    std::fs::write(&key_file, key).expect("key");
    let config = data.path().join("tls.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\n{sip_table}tls_cert_file = {:?}\ntls_key_file = {:?}\n",
            cert_file.display().to_string(),
            key_file.display().to_string()
        ),
    )
    .expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    (platform, cert_file)
}

/// Waits until the platform's ready line shows `field` (the log may trail the start by a moment).
async fn wait_for_ready_field(platform: &Platform, field: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !platform.log().contains(field) {
        assert!(tokio::time::Instant::now() < deadline, "no {field}:\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until alice has registered, and checks she did over TLS.
async fn wait_registered_over_tls(platform: &Platform, phone: &Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !platform.log().contains("registered user=alice ") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice registered over TLS:\n{}\nbaresip:\n{}",
            platform.log(),
            std::fs::read_to_string(phone.join("baresip.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let registered =
        platform.log().lines().find(|line| line.contains("registered user=alice ")).map(str::to_owned);
    assert!(registered.as_deref().is_some_and(|line| line.contains("transport=tls")), "{registered:?}");
}

/// baresip over TLS registers, calls the sample IVR with mandatory SRTP and presses 1 during
/// the menu; the call's events show the digit (which came in SRTP) and the sales branch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_over_tls_registers_and_a_digit_selects_the_sample_ivr_branch() {
    let data = tempfile::tempdir().expect("tempdir");
    sample_with_a_sip_user(&data.path().join("data")).await;
    // No carriers: the phone on loopback must authenticate as alice.
    let (platform, tls, cert_file) = start_with_tls(data, "[]").await;
    let phone = tempfile::tempdir().expect("tempdir");
    let ctrl_port = free_port();
    let _baresip =
        spawn_tls_baresip(phone.path(), tls, &cert_file, ctrl_port, "demo.sip.opentact.local").await;
    wait_registered_over_tls(&platform, phone.path()).await;
    baresip_command(ctrl_port, "dial", &format!("sip:{SAMPLE_NUMBER}@demo.sip.opentact.local")).await;
    wait_for_phone(phone.path(), "Call established", &platform).await;
    // The key is pressed during the menu's prompt, as a caller would. (baresip sends RTP from
    // another port than its SDP names, so the first second of its media is not latched yet.)
    platform
        .wait_for_event(Duration::from_secs(10), |e| e["verb"] == "gather" && e["phase"] == "started")
        .await;
    baresip_command(ctrl_port, "sndcode", "1").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let events = loop {
        let events = platform.events();
        if events.iter().any(|e| e["type"] == "call.callflow" && e["verb"] == "say" && e["tag"] == "sales") {
            break events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the digit picked the sales branch: {:?}\nbaresip:\n{}\nserver log:\n{}",
            events.iter().filter_map(|e| e["tag"].as_str()).collect::<Vec<_>>(),
            std::fs::read_to_string(phone.path().join("baresip.log")).unwrap_or_default(),
            platform.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let gather = events
        .iter()
        .find(|e| e["verb"] == "gather" && e["phase"] == "finished")
        .unwrap_or_else(|| panic!("a finished gather: {events:#?}"));
    assert_eq!(gather["detail"]["digits"], "1", "{gather:#}");
    let said =
        |tag: &str| events.iter().any(|e| e["verb"] == "say" && e["phase"] == "started" && e["tag"] == tag);
    assert!(said("welcome") && !said("no-input"), "{events:#?}");
    // The phone heard it ring (180) while the flow started, as a trunk's caller does.
    assert!(events.iter().any(|e| e["type"] == "call.ringing"), "{events:#?}");
    let phone_log = std::fs::read_to_string(phone.path().join("baresip.log")).unwrap_or_default();
    assert!(phone_log.contains("SIP Progress: 180 Ringing"), "{phone_log}");
    // baresip with srtp-mand sends nothing but SRTP, and took the platform's RTP/SAVP answer.
    let log = platform.log();
    assert!(log.contains("the call's media is SRTP") && log.contains("AES_CM_128_HMAC_SHA1_80"), "{log}");
}

/// `opentact serve --check` with `sip_table` as the `[sip]` table: its error output, or `None`
/// when it started.
async fn start_up_error(dir: &Path, sip_table: &str) -> Option<String> {
    let config = dir.join("tls.toml");
    std::fs::write(&config, format!("[sip]\n{sip_table}")).expect("config");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_opentact"))
        .args(["serve", "--data-dir", dir.join("data").to_str().expect("utf-8"), "--check"])
        .args(["--sip-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
        .args(["--config", config.to_str().expect("utf-8")])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("opentact serve");
    (!output.status.success()).then(|| String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_certificate_or_a_key_of_another_certificate_stops_the_start() {
    let data = tempfile::tempdir().expect("tempdir");
    let error = start_up_error(data.path(), "tls_listen = \"127.0.0.1:0\"\n").await.expect("refused");
    assert!(error.contains("sip.tls_listen and sip.wss_listen need sip.tls_cert_file"), "{error}");
    let (cert, _) = self_signed();
    let (_, other_key) = self_signed();
    let cert_file = data.path().join("sip-tls.crt");
    let key_file = data.path().join("other.key");
    std::fs::write(&cert_file, cert).expect("cert");
    std::fs::write(&key_file, other_key).expect("key");
    let table = format!(
        "tls_listen = \"127.0.0.1:0\"\ntls_cert_file = {:?}\ntls_key_file = {:?}\n",
        cert_file.display().to_string(),
        key_file.display().to_string()
    );
    let error = start_up_error(data.path(), &table).await.expect("refused");
    assert!(error.contains("SIP over TLS certificate: certificate or key"), "{error}");
}

/// The account `email` with the number `tn`, whose flow dials its SIP user
/// alice@acme.sip.opentact.local (password alice-Pass-1) for `timeout_ms`, in `dir`.
async fn number_dialling_alice(dir: &Path, email: &str, tn: i64, timeout_ms: u32) {
    let xml = format!(
        "<Response>\n  <Dial timeout=\"{timeout_ms}\" tag=\"to-alice\"><To>alice@acme.sip.opentact.local</To></Dial>\n  \
         <Hangup/>\n</Response>"
    );
    let provisioned = support::provision::xml_number(dir, email, tn, &xml).await;
    support::provision::sip_user(dir, provisioned.account, "acme", "alice", "alice-Pass-1").await;
}

/// A call to a SIP user registered over TLS goes out over the phone's TLS connection: SIPp (a
/// carrier on loopback) calls a number whose flow dials alice, and baresip answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_registered_over_tls_is_called_over_its_tls_connection() {
    let data = tempfile::tempdir().expect("tempdir");
    number_dialling_alice(&data.path().join("data"), "tls@example.test", 13_125_550_141, 10_000).await;
    let (platform, tls, cert_file) = start_with_tls(data, "[\"127.0.0.1/32\"]").await;
    let phone = tempfile::tempdir().expect("tempdir");
    let _baresip =
        spawn_tls_baresip(phone.path(), tls, &cert_file, free_port(), "acme.sip.opentact.local").await;
    wait_registered_over_tls(&platform, phone.path()).await;
    let sipp = carrier_calls(&platform, "13125550141");
    let events = platform.wait_for_event(Duration::from_secs(20), |e| e["type"] == "call.bridged").await;
    let bridged = events.iter().find(|e| e["type"] == "call.bridged").expect("bridged");
    assert_eq!(bridged["with"], "alice@acme.sip.opentact.local", "{bridged:#}");
    let (code, output) = sipp.await.expect("sipp ran");
    assert_eq!(code, 0, "the carrier's call ended cleanly:\n{output}");
    let phone_log = std::fs::read_to_string(phone.path().join("baresip.log")).unwrap_or_default();
    assert!(phone_log.contains("Call established"), "alice answered:\n{phone_log}");
    // The INVITE to alice went to the address she registered from, over TLS: her TLS
    // connection (baresip takes no other transport on that port).
    let log = platform.log();
    let registered_from = log
        .lines()
        .find(|l| l.contains("registered user=alice"))
        .and_then(|l| l.split("source=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .expect("alice's registration is logged");
    let invite = log.lines().find(|l| l.contains("sending INVITE") && l.contains("alice")).map(str::to_owned);
    assert!(
        invite.as_deref().is_some_and(|l| l.contains("transport=\"tls\"") && l.contains(&registered_from)),
        "{invite:?} (registered from {registered_from})\n{log}"
    );
    // Over TLS the leg was offered SRTP, which alice (srtp-mand) took.
    assert!(log.contains("the leg's media is SRTP"), "{log}");
}

/// SIPp as a carrier on loopback calls `number` and stays in the call for 4 s after the
/// answer, so a flow's dial to a user can be bridged; its exit code and output.
fn carrier_calls(platform: &Platform, number: &str) -> tokio::task::JoinHandle<(i32, String)> {
    let mut command = support::platform::sipp();
    command
        .args(["-sn", "uac", "-s", number, "-m", "1", "-d", "4000", "-i", "127.0.0.1"])
        .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    tokio::spawn(support::platform::run_sipp(command, Duration::from_secs(40)))
}

/// The /webcall page in headless Chromium (tests/support/webcall/drive.mjs), talked to one
/// command per line.
struct Browser {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    /// The browser's console and the page's log, for failures.
    stderr: std::sync::Arc<parking_lot::Mutex<String>>,
}

impl Browser {
    async fn open(url: &str) -> Browser {
        use tokio::io::AsyncBufReadExt;
        let driver = support::runner::repo().join("tests/support/webcall/drive.mjs");
        let mut child = tokio::process::Command::new("node")
            .arg(driver)
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node (scripts/install-deps --test installs the driver and chromium)");
        let stderr = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
        let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
        let collected = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                collected.lock().push_str(&(line + "\n"));
            }
        });
        let mut browser = Browser {
            stdin: child.stdin.take().expect("stdin"),
            stdout: tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines(),
            child,
            stderr,
        };
        let ready = browser.answer().await;
        assert_eq!(ready, "ok ready", "the browser opened the page:\n{}", browser.stderr.lock());
        browser
    }

    async fn answer(&mut self) -> String {
        match tokio::time::timeout(Duration::from_secs(40), self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => {
                let exit = self.child.try_wait();
                panic!("the browser driver answered {other:?} (exit: {exit:?}):\n{}", self.stderr.lock())
            }
        }
    }

    /// Run one command; its answer (`ok <status>` or `error <what>`).
    async fn run(&mut self, command: &str) -> String {
        self.stdin.write_all(format!("{command}\n").as_bytes()).await.expect("driver stdin");
        self.answer().await
    }
}

/// The web call (issue 13, item 4) in a real browser: headless Chromium opens /webcall, signs
/// in as alice over SIP over secure WebSocket (the platform's own wss listener, with the
/// test's self-signed certificate), calls the sample IVR with WebRTC audio (ICE-lite,
/// DTLS-SRTP), presses 1 on the page's keypad during the menu, and the call's events show the
/// digit — sent as an RFC 4733 event inside SRTP — and the sales branch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_on_the_webcall_page_and_a_key_on_its_keypad_selects_the_ivr_branch() {
    let data = tempfile::tempdir().expect("tempdir");
    sample_with_a_sip_user(&data.path().join("data")).await;
    let wss_port = free_port();
    // Only wss is served: the page (on http://127.0.0.1) has no plain ws port to fall back to.
    let (platform, _) =
        start_with_certificate(data, &format!("carriers = []\nwss_listen = \"127.0.0.1:{wss_port}\"\n"))
            .await;
    wait_for_ready_field(&platform, &format!("sip_ws=off sip_wss=127.0.0.1:{wss_port}")).await;
    let mut browser = Browser::open(&format!("http://{}/webcall", platform.api)).await;
    let failed = |what: &str, browser: &Browser, platform: &Platform| {
        format!("{what}\nbrowser:\n{}\nserver log:\n{}", browser.stderr.lock(), platform.log())
    };

    let registered = browser.run("register alice demo.sip.opentact.local alice-Pass-1").await;
    assert_eq!(registered, "ok registered", "{}", failed("sign-in", &browser, &platform));
    let line = platform.log().lines().find(|line| line.contains("registered user=alice ")).map(str::to_owned);
    assert!(line.as_deref().is_some_and(|line| line.contains("transport=ws")), "{line:?}");

    let called = browser.run(&format!("call {SAMPLE_NUMBER}")).await;
    assert_eq!(called, "ok in call", "{}", failed("the call", &browser, &platform));
    platform
        .wait_for_event(Duration::from_secs(10), |e| e["verb"] == "gather" && e["phase"] == "started")
        .await;
    assert_eq!(browser.run("key 1").await, "ok in call");
    let events = platform
        .events_until(Duration::from_secs(15), |e| {
            e["type"] == "call.callflow" && e["verb"] == "say" && e["tag"] == "sales"
        })
        .await
        .unwrap_or_else(|| panic!("{}", failed("the digit picked the sales branch", &browser, &platform)));
    let gather = events
        .iter()
        .find(|e| e["verb"] == "gather" && e["phase"] == "finished")
        .unwrap_or_else(|| panic!("a finished gather: {events:#?}"));
    assert_eq!(gather["detail"]["digits"], "1", "{gather:#}");
    let log = platform.log();
    assert!(log.contains("web call answered with WebRTC media"), "{log}");
    assert!(log.contains("WebRTC media connected (ICE and DTLS-SRTP up)"), "{log}");

    // The page hangs up: the platform sees the BYE and ends the call.
    browser.run("hangup").await;
    platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.hangup").await;
    assert_eq!(browser.run("quit").await, "ok closed");
}

/// The other way: a user signed in on the page is called. SIPp (a carrier on loopback) calls a
/// number whose flow dials alice; the platform offers her browser WebRTC media over her
/// WebSocket, the page answers, and the legs are bridged over ICE-lite and DTLS-SRTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signed_in_on_the_webcall_page_answers_a_call_to_its_user() {
    let data = tempfile::tempdir().expect("tempdir");
    number_dialling_alice(&data.path().join("data"), "web@example.test", 13_125_550_142, 15_000).await;
    let ws_port = free_port();
    let config = data.path().join("ws.toml");
    std::fs::write(
        &config,
        format!("[sip]\ncarriers = [\"127.0.0.1/32\"]\nws_listen = \"127.0.0.1:{ws_port}\"\n"),
    )
    .expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let mut browser = Browser::open(&format!("http://{}/webcall", platform.api)).await;
    let failed = |what: &str, browser: &Browser, platform: &Platform| {
        format!("{what}\nbrowser:\n{}\nserver log:\n{}", browser.stderr.lock(), platform.log())
    };
    let registered = browser.run("register alice acme.sip.opentact.local alice-Pass-1").await;
    assert_eq!(registered, "ok registered", "{}", failed("sign-in", &browser, &platform));

    let sipp = carrier_calls(&platform, "13125550142");
    let answered = browser.run("answer").await;
    assert_eq!(answered, "ok in call", "{}", failed("answering", &browser, &platform));
    let events = platform.wait_for_event(Duration::from_secs(20), |e| e["type"] == "call.bridged").await;
    let bridged = events.iter().find(|e| e["type"] == "call.bridged").expect("bridged");
    assert_eq!(bridged["with"], "alice@acme.sip.opentact.local", "{bridged:#}");
    let (code, output) = sipp.await.expect("sipp ran");
    assert_eq!(code, 0, "the carrier's call ended cleanly:\n{output}");
    let log = platform.log();
    // The INVITE went to the contact the browser registered (the page's random user at an
    // `.invalid` host, RFC 7118 §5.2), over its WebSocket.
    let invite = log.lines().find(|l| l.contains("sending INVITE") && l.contains(".invalid;transport=ws"));
    assert!(invite.is_some_and(|l| l.contains("transport=\"ws\"")), "{invite:?}\n{log}");
    assert!(
        log.contains("WebRTC media connected (ICE and DTLS-SRTP up)"),
        "{}",
        failed("media", &browser, &platform)
    );
    // The carrier hung up: the platform ends the browser's leg with a BYE over its WebSocket.
    let ended = browser.run("wait call 10").await;
    assert!(ended.starts_with("ok call ended"), "{ended}\n{}", failed("the BYE", &browser, &platform));
    assert_eq!(browser.run("quit").await, "ok closed");
}

/// Without `sip.ws_listen` the page says how to turn the web call on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webcall_page_says_how_to_turn_it_on_when_it_is_off() {
    let platform = Platform::start(&[]).await;
    let (status, body) = support::platform::http_raw(platform.api, "GET", "/webcall", &[]).await;
    assert_eq!(status, 404);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("sip.ws_listen"), "{text}");
}

/// Whether the platform closes `stream` within `within`: the read sees the end of the stream
/// (or a reset) rather than waiting.
async fn closed_by_server(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// An OPTIONS over `stream`, answered 200 on it.
async fn options_answered(stream: &mut tokio::net::TcpStream, server: std::net::SocketAddr) -> bool {
    use tokio::io::AsyncReadExt;
    let local = stream.local_addr().expect("local");
    let request = format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/TCP {local};rport;branch=z9hG4bK-cap{}\r\n\
         From: <sip:probe@{local}>;tag=cap\r\nTo: <sip:{server}>\r\nCall-ID: cap-{}@test\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        local.port(),
        local.port()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut buffer = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await {
        Ok(Ok(length)) => String::from_utf8_lossy(&buffer[..length]).starts_with("SIP/2.0 200"),
        _ => false,
    }
}

/// What an attacker does to the stream listeners: opens TLS, ws and wss connections and never
/// finishes their handshakes (each is closed at the deadline), and opens more connections than
/// one address may hold (the extra one is closed at once, the ones held keep working, and a
/// slot comes back when a connection closes). A WebSocket upgrade without the `sip`
/// subprotocol is refused with 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_handshakes_are_closed_and_one_address_holds_only_its_share_of_connections() {
    let data = tempfile::tempdir().expect("tempdir");
    let (tls_port, ws_port, wss_port) = (free_port(), free_port(), free_port());
    let table = format!(
        "carriers = []\ntls_listen = \"127.0.0.1:{tls_port}\"\nws_listen = \"127.0.0.1:{ws_port}\"\n\
         wss_listen = \"127.0.0.1:{wss_port}\"\nmax_connections_per_source = 3\nhandshake_timeout_ms = 400\n"
    );
    let (platform, _) = start_with_certificate(data, &table).await;
    wait_for_ready_field(&platform, &format!("sip_wss=127.0.0.1:{wss_port}")).await;
    let at = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));

    // Slow handshakes: a TLS ClientHello never sent, a WebSocket upgrade half written, a wss
    // connection that never starts TLS. Each is closed at the 400 ms deadline.
    let mut tls = tokio::net::TcpStream::connect(at(tls_port)).await.expect("tls");
    let mut ws = tokio::net::TcpStream::connect(at(ws_port)).await.expect("ws");
    ws.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.expect("half an upgrade");
    let mut wss = tokio::net::TcpStream::connect(at(wss_port)).await.expect("wss");
    for (name, stream) in [("tls", &mut tls), ("ws", &mut ws), ("wss", &mut wss)] {
        assert!(
            closed_by_server(stream, Duration::from_secs(3)).await,
            "{name} left open:\n{}",
            platform.log()
        );
    }

    // The per-address cap (3): three connections held, the fourth closed at once.
    let sip = platform.sip;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(sip).await.expect("tcp"));
    }
    let mut over = tokio::net::TcpStream::connect(sip).await.expect("the kernel accepts");
    assert!(closed_by_server(&mut over, Duration::from_secs(2)).await, "the fourth connection was served");
    assert!(options_answered(&mut held[0], sip).await, "a held connection still serves SIP");
    // A WebSocket upgrade counts against the same cap: refused while three are held.
    let request = format!("ws://127.0.0.1:{ws_port}/").into_client_request().expect("request");
    assert!(
        tokio_tungstenite::connect_async(request).await.is_err(),
        "a fourth (ws) connection was upgraded"
    );

    // One closes: its slot comes back once the platform has seen it go.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut again = loop {
        let mut stream = tokio::net::TcpStream::connect(sip).await.expect("tcp");
        if options_answered(&mut stream, sip).await {
            break stream;
        }
        assert!(tokio::time::Instant::now() < deadline, "the freed slot never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(held);
    drop(again.shutdown().await);

    // RFC 7118: a WebSocket client must ask for the `sip` subprotocol.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let request = format!("ws://127.0.0.1:{ws_port}/").into_client_request().expect("request");
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => break response,
            other => {
                // Slots of the connections just dropped may not be back yet.
                assert!(tokio::time::Instant::now() < deadline, "{other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(refused.status(), 400);
    let mut request = format!("ws://127.0.0.1:{ws_port}/").into_client_request().expect("request");
    request.headers_mut().insert("sec-websocket-protocol", "sip".parse().expect("header"));
    let (_, response) = tokio_tungstenite::connect_async(request).await.expect("a SIP WebSocket");
    assert_eq!(response.headers()["sec-websocket-protocol"], "sip");
}
