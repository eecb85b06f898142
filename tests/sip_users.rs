//! SIP users: baresip registers with digest authentication and is reached by `<Dial>`.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::platform::{Platform, run_sipp, sipp};
use support::provision;

/// A port for a phone's SIP socket, with its RTP ports (+2 to +200) clear of every other phone
/// this test process started: the tests run in parallel, and a port the OS handed out once
/// (then released) may be handed out again before the first phone binds it.
fn free_udp_port() -> u16 {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut taken = TAKEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if port < 65_000 && taken.iter().all(|&other| port.abs_diff(other) > 202) {
            taken.push(port);
            return port;
        }
    }
}

/// A baresip configuration: no sound card (audio goes to an in-process bridge), G.711, the
/// sndfile module dumping the received audio to `<dir>/dump-*-dec.wav`, auto answer. No
/// ringback tone: baresip would play it on the platform's 180 through the same bridge, which
/// then no longer clocks the call's audio out — the phone would send no RTP (nor DTMF).
fn baresip_config(dir: &Path, sip_port: u16, account: &str) {
    let config = format!(
        "poll_method\t\tepoll\n\
         sip_listen\t\t127.0.0.1:{sip_port}\n\
         audio_player\t\taubridge,speaker\n\
         audio_source\t\taubridge,speaker\n\
         audio_alert\t\taubridge,alert\n\
         ringback_disabled\tyes\n\
         rtp_ports\t\t{}-{}\n\
         module_path\t\t/usr/lib/baresip/modules\n\
         module\t\t\tg711.so\n\
         module\t\t\taubridge.so\n\
         module\t\t\tausine.so\n\
         module\t\t\tsndfile.so\n\
         module_app\t\taccount.so\n\
         module_app\t\tmenu.so\n\
         snd_path\t\t{}\n",
        sip_port + 2,
        sip_port + 200,
        dir.display()
    );
    std::fs::write(dir.join("config"), config).expect("baresip config");
    std::fs::write(dir.join("accounts"), format!("{account}\n")).expect("baresip accounts");
}

/// A baresip for `login@acme.sip.opentact.local` on a fresh port; its output goes to
/// `<dir>/baresip.log`.
fn launch_baresip(
    dir: &Path,
    platform: &Platform,
    login: &str,
    password: &str,
    commands: &[&str],
) -> tokio::process::Child {
    baresip_config(
        dir,
        free_udp_port(),
        &format!(
            "<sip:{login}@acme.sip.opentact.local>;auth_pass={password};outbound=\"sip:{};transport=udp\";regint=300;answermode=auto",
            platform.sip
        ),
    );
    let log = std::fs::File::create(dir.join("baresip.log")).expect("log file");
    let mut command = tokio::process::Command::new("baresip");
    command.args(["-f", dir.to_str().expect("utf-8")]);
    for line in commands {
        command.args(["-e", line]);
    }
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("baresip is installed (apt-get install baresip)")
}

/// A running baresip for `login@acme.sip.opentact.local` (its output in `<dir>/baresip.log`),
/// started again on another port if its first was taken ([`support::baresip::until_ready`]).
async fn spawn_baresip(
    dir: &Path,
    platform: &Platform,
    login: &str,
    password: &str,
    commands: &[&str],
) -> tokio::process::Child {
    support::baresip::until_ready(dir, || launch_baresip(dir, platform, login, password, commands)).await
}

async fn wait_registered(platform: &Platform, login: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !platform.log().contains(&format!("registered user={login} ")) {
        assert!(tokio::time::Instant::now() < deadline, "{login} registered:\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_user_calls_another_user_after_a_digest_challenge() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let provisioned =
        provision::xml_number(&dir, "peers@example.test", 13_125_550_108, "<Response><Hangup/></Response>")
            .await;
    provision::sip_user(&dir, provisioned.account, "acme", "alice", "alice-Pass-1").await;
    provision::sip_user_in(&dir, provisioned.account, "acme", "bob", "bob-Pass-2").await;
    // No carrier addresses: loopback is where the phones are, and they must authenticate.
    let config = data.path().join("no-carriers.toml");
    std::fs::write(&config, "[sip]\ncarriers = []\n").expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;
    let bob_dir = tempfile::tempdir().expect("tempdir");
    let _bob = spawn_baresip(bob_dir.path(), &platform, "bob", "bob-Pass-2", &[]).await;
    wait_registered(&platform, "bob").await;
    let alice_dir = tempfile::tempdir().expect("tempdir");
    let _alice = spawn_baresip(
        alice_dir.path(),
        &platform,
        "alice",
        "alice-Pass-1",
        &["/dial sip:bob@acme.sip.opentact.local"],
    )
    .await;
    let bridged = platform.events_until(Duration::from_secs(20), |e| e["type"] == "call.bridged").await;
    let Some(events) = bridged else {
        let phone = |dir: &Path| std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default();
        panic!(
            "no call.bridged within 20 s\nalice:\n{}\nbob:\n{}\nplatform:\n{}",
            phone(alice_dir.path()),
            phone(bob_dir.path()),
            platform.log()
        );
    };
    let bridged = events.iter().find(|e| e["type"] == "call.bridged").expect("bridged");
    assert_eq!(bridged["with"], "bob@acme.sip.opentact.local", "{bridged:#}");
    let initiated = events.iter().find(|e| e["type"] == "call.initiated").expect("initiated");
    assert_eq!(initiated["from"], "alice", "{initiated:#}");
    assert!(
        std::fs::read_to_string(bob_dir.path().join("baresip.log"))
            .unwrap_or_default()
            .contains("Call established"),
        "bob's phone answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_baresip_user_is_dialled_and_records_the_callers_audio() {
    let data = tempfile::tempdir().expect("tempdir");
    let xml = r#"<Response>
  <Dial timeout="15000" tag="to-alice"><To>alice@acme.sip.opentact.local</To></Dial>
  <Hangup/>
</Response>"#;
    let provisioned =
        provision::xml_number(&data.path().join("data"), "users@example.test", 13_125_550_103, xml).await;
    let domain =
        provision::sip_user(&data.path().join("data"), provisioned.account, "acme", "alice", "s3cret-Pass")
            .await;
    assert_eq!(domain, "acme.sip.opentact.local");
    let platform = Platform::start_in(data, &[]).await;

    // A wrong password is refused (403 after the challenge) and never registers.
    let wrong = tempfile::tempdir().expect("tempdir");
    baresip_config(
        wrong.path(),
        free_udp_port(),
        &format!(
            "<sip:alice@acme.sip.opentact.local>;auth_pass=wrong;outbound=\"sip:{};transport=udp\";regint=300;answermode=auto",
            platform.sip
        ),
    );
    let mut impostor = tokio::process::Command::new("baresip")
        .args(["-f", wrong.path().to_str().expect("utf-8")])
        .current_dir(wrong.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("baresip is installed (apt-get install baresip)");

    let phone = tempfile::tempdir().expect("tempdir");
    baresip_config(
        phone.path(),
        free_udp_port(),
        &format!(
            "<sip:alice@acme.sip.opentact.local>;auth_pass=s3cret-Pass;outbound=\"sip:{};transport=udp\";regint=300;answermode=auto",
            platform.sip
        ),
    );
    let log = std::fs::File::create(phone.path().join("baresip.log")).expect("log file");
    let mut baresip = tokio::process::Command::new("baresip")
        .args(["-f", phone.path().to_str().expect("utf-8")])
        .current_dir(phone.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("baresip is installed (apt-get install baresip)");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !platform.log().contains("registered user=\"alice\"")
        && !platform.log().contains("registered user=alice")
    {
        assert!(tokio::time::Instant::now() < deadline, "baresip registered:\n{}", platform.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(platform.log().contains("REGISTER refused"), "the impostor was refused:\n{}", platform.log());
    let _ = impostor.kill().await;

    // SIPp calls the number and plays SIPp's 8 s voice prompt (g711a.pcap); the flow dials
    // alice, baresip answers, and its sndfile module records what it hears.
    let cwd = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink("/usr/share/sip-tester", cwd.path().join("pcap")).expect("symlink");
    let mut command = sipp();
    command
        .current_dir(cwd.path())
        .args(["-sn", "uac_pcap", "-s", "13125550103", "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "40s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = run_sipp(command, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let events = platform.wait_for_event(Duration::from_secs(10), |e| e["type"] == "call.hangup").await;
    assert!(
        events.iter().any(|e| e["type"] == "call.bridged"),
        "{events:#?}\nserver log:\n{}\nbaresip:\n{}",
        platform.log(),
        std::fs::read_to_string(phone.path().join("baresip.log")).unwrap_or_default()
    );
    // Give baresip the BYE and time to close its files.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = baresip.kill().await;

    let recording = std::fs::read_dir(phone.path())
        .expect("dir")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| {
            panic!(
                "baresip recorded the call; files: {:?}",
                std::fs::read_dir(phone.path()).map(|d| d.map(|e| e.map(|e| e.path())).collect::<Vec<_>>())
            )
        });
    let (seconds, rms) = support::platform::sox_length_and_rms(&recording);
    assert!((5.0..=12.0).contains(&seconds), "about the 8 s prompt: {seconds} s");
    assert!(rms > 0.01, "not silence: RMS {rms}");
}

/// A trunk's caller to `user@acme.sip.opentact.local`: INVITE, ACK, talk 2 s, BYE.
fn trunk_call_to_user() -> String {
    let invite = support::sipp::INVITE_PCMU.replace(
        "INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0",
        "INVITE sip:[service]@acme.sip.opentact.local SIP/2.0",
    );
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="trunk call to a SIP user">
{invite}  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:13105550111@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="2000"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:13105550111@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_call_to_a_users_address_reaches_the_registered_phone() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let provisioned =
        provision::xml_number(&dir, "direct@example.test", 13_125_550_111, "<Response><Hangup/></Response>")
            .await;
    provision::sip_user(&dir, provisioned.account, "acme", "carol", "carol-Pass-3").await;
    let platform = Platform::start_in(data, &[]).await;
    let phone = tempfile::tempdir().expect("tempdir");
    let _carol = spawn_baresip(phone.path(), &platform, "carol", "carol-Pass-3", &[]).await;
    wait_registered(&platform, "carol").await;
    let scenario_dir = tempfile::tempdir().expect("tempdir");
    let scenario = scenario_dir.path().join("to-user.xml");
    std::fs::write(&scenario, trunk_call_to_user()).expect("write");
    let mut command = sipp();
    command
        .args(["-sf", scenario.to_str().expect("utf-8"), "-s", "carol", "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
        .arg(platform.sip.to_string());
    let (code, output) = run_sipp(command, Duration::from_secs(45)).await;
    assert_eq!(code, 0, "{output}\n{}", platform.log());
    let events = platform.wait_for_event(Duration::from_secs(5), |e| e["type"] == "call.bridged").await;
    let bridged = events.iter().find(|e| e["type"] == "call.bridged").expect("bridged");
    assert_eq!(bridged["with"], "carol@acme.sip.opentact.local", "{bridged:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_kept_to_its_domain_reaches_its_colleagues_but_no_numbers() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("data");
    let flow = r#"<Response><Answer/><Pause length="2"/><Hangup/></Response>"#;
    let provisioned = provision::xml_number(&dir, "kept@example.test", 13_125_550_109, flow).await;
    provision::sip_user(&dir, provisioned.account, "acme", "carol", "carol-Pass-3").await;
    provision::sip_user_in(&dir, provisioned.account, "acme", "bob", "bob-Pass-2").await;
    provision::keep_to_domain(&dir, provisioned.account, "acme", "carol").await;
    let config = data.path().join("no-carriers.toml");
    std::fs::write(&config, "[sip]\ncarriers = []\n").expect("config");
    let platform = Platform::start_in(data, &["--config", config.to_str().expect("utf-8")]).await;

    // The number (an app of the same account) is refused with 403 and a reason.
    let number_dir = tempfile::tempdir().expect("tempdir");
    let _to_number = spawn_baresip(
        number_dir.path(),
        &platform,
        "carol",
        "carol-Pass-3",
        &["/dial sip:13125550109@acme.sip.opentact.local"],
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !platform
        .log()
        .contains("carol@acme.sip.opentact.local may only call users of acme.sip.opentact.local")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call to a number was refused:\n{}",
            platform.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let phone = std::fs::read_to_string(number_dir.path().join("baresip.log")).unwrap_or_default();
    assert!(phone.contains("403"), "the phone saw 403:\n{phone}");
    assert!(
        platform.events().iter().all(|e| e["type"] != "call.initiated"),
        "no flow ran for the refused call"
    );

    // A colleague in the same domain is reached.
    let bob_dir = tempfile::tempdir().expect("tempdir");
    let _bob = spawn_baresip(bob_dir.path(), &platform, "bob", "bob-Pass-2", &[]).await;
    wait_registered(&platform, "bob").await;
    let carol_dir = tempfile::tempdir().expect("tempdir");
    let _carol = spawn_baresip(
        carol_dir.path(),
        &platform,
        "carol",
        "carol-Pass-3",
        &["/dial sip:bob@acme.sip.opentact.local"],
    )
    .await;
    let events = platform.wait_for_event(Duration::from_secs(20), |e| e["type"] == "call.bridged").await;
    let bridged = events.iter().find(|e| e["type"] == "call.bridged").expect("bridged");
    assert_eq!(bridged["with"], "bob@acme.sip.opentact.local", "{bridged:#}");
}
