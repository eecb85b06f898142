//! A running `opentact serve` for end-to-end tests: its own data directory, SIP on a free
//! loopback port, call events written to a JSON-lines file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::runner::repo;

/// A platform process; killed on drop.
pub struct Platform {
    pub child: Child,
    pub sip: SocketAddr,
    pub api: SocketAddr,
    pub dir: tempfile::TempDir,
    pub log: std::sync::Arc<parking_lot::Mutex<String>>,
}

impl Platform {
    /// Start `opentact serve` with `extra` arguments; returns once SIP listens.
    pub async fn start(extra: &[&str]) -> Platform {
        Self::start_in(tempfile::tempdir().expect("tempdir"), extra).await
    }

    /// Start in `dir` (whose `data/` may be provisioned already).
    pub async fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Platform {
        Platform::start_with_env(dir, extra, &[]).await
    }

    /// [`Platform::start_in`] with environment variables set for the server.
    pub async fn start_with_env(dir: tempfile::TempDir, extra: &[&str], env: &[(&str, &str)]) -> Platform {
        let data = dir.path().join("data");
        let events = dir.path().join("events.jsonl");
        let mut child = Command::new(env!("CARGO_BIN_EXE_opentact"))
            .args(["serve", "--data-dir", data.to_str().expect("utf-8"), "--sip-listen", "127.0.0.1:0"])
            .args(["--api-listen", "127.0.0.1:0"])
            .args(["--event-log", events.to_str().expect("utf-8")])
            .args(extra)
            .envs(env.iter().copied())
            .env(
                "OPENTACT_LOG",
                std::env::var("OPENTACT_TEST_LOG")
                    .unwrap_or_else(|_| "info,rsipstack=warn,sqlx=warn,opentact_sip=debug".to_owned()),
            )
            .current_dir(repo())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn opentact serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<(SocketAddr, SocketAddr)>();
        let collected = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut ready = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("platform ready") {
                    let field = |name: &str| {
                        line.split_whitespace()
                            .find_map(|word| word.strip_prefix(name))
                            .and_then(|value| value.parse::<SocketAddr>().ok())
                    };
                    if let (Some(tx), Some(sip), Some(api)) = (ready.take(), field("sip="), field("api=")) {
                        let _ = tx.send((sip, api));
                    }
                }
                let mut log = collected.lock();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let (sip, api) = match tokio::time::timeout(Duration::from_secs(120), ready_rx).await {
            Ok(Ok(addresses)) => addresses,
            _ => panic!("opentact serve did not become ready:\n{}", log.lock()),
        };
        Platform { child, sip, api, dir, log }
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `opentact admin account credit <email> --amount <amount>` on the platform's store while
    /// it runs, as the operator does; what it printed.
    pub async fn credit(&self, email: &str, amount: &str) -> String {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_opentact"))
            .args(["admin", "account", "credit", email, "--amount", amount, "--note", "payment 1"])
            .args(["--data-dir", self.data().to_str().expect("utf-8")])
            .output()
            .await
            .expect("run opentact admin");
        let printed = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
        assert!(printed.contains("balance "), "{printed}");
        printed
    }

    /// Every call event written so far.
    pub fn events(&self) -> Vec<Value> {
        read_events(&self.dir.path().join("events.jsonl"))
    }

    /// Wait until an event matches (at most `timeout`), returning all events then.
    pub async fn wait_for_event(&self, timeout: Duration, matches: impl Fn(&Value) -> bool) -> Vec<Value> {
        match self.events_until(timeout, matches).await {
            Some(events) => events,
            None => panic!(
                "no matching event within {timeout:?}; events: {:#?}\nlog:\n{}",
                self.events(),
                self.log.lock()
            ),
        }
    }

    /// [`Platform::wait_for_event`] that answers `None` at the timeout, for a test that has
    /// more to show than the platform's log (its peers' logs).
    pub async fn events_until(
        &self,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Option<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let events = self.events();
            if events.iter().any(&matches) {
                return Some(events);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log.lock().clone()
    }
}

fn read_events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

/// The sipp binary (Debian package sip-tester; .ci/run installs it).
pub fn sipp() -> Command {
    let mut command = Command::new("sipp");
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    command
}

/// A node named `name` of a cluster on the PostgreSQL at `db_url`: it shares the secret key
/// file and the JWT key file in `shared` with the other nodes, seeds the sample, and adds
/// `extra` (TOML tables) to its config.
pub async fn start_node(name: &str, db_url: &str, shared: &std::path::Path, extra: &str) -> Platform {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{db_url}\"\nseed_sample = true\nsecret_key_file = \"{}\"\n\n\
             [api]\njwt_key_file = \"{}\"\n\n[server]\nnode_id = \"{name}\"\n{extra}",
            shared.join("secret.key").display(),
            shared.join("jwt.key").display()
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8").to_owned();
    Platform::start_in(dir, &["--config", &config]).await
}

/// A SIPp caller that calls `tn` at `platform` and waits for the platform's BYE (30 s at
/// most); its exit code and output.
pub fn call_awaiting_bye(platform: &Platform, tn: i64) -> tokio::task::JoinHandle<(i32, String)> {
    call_with(platform, tn, &super::sipp::caller_awaiting_bye())
}

/// A SIPp caller that calls `tn` at `platform` with `scenario` (30 s at most); its exit code
/// and output.
pub fn call_with(platform: &Platform, tn: i64, scenario: &str) -> tokio::task::JoinHandle<(i32, String)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("caller.xml");
    std::fs::write(&path, scenario).expect("write");
    let scenario = path;
    let mut sipp = sipp();
    sipp.args([
        "-sf",
        scenario.to_str().expect("utf-8"),
        "-s",
        &tn.to_string(),
        "-m",
        "1",
        "-i",
        "127.0.0.1",
    ])
    .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
    .arg(platform.sip.to_string());
    tokio::spawn(async move {
        let outcome = run_sipp(sipp, Duration::from_secs(60)).await;
        drop(dir);
        outcome
    })
}

/// Run sipp to completion (at most `timeout`); returns exit code and output.
pub async fn run_sipp(mut command: Command, timeout: Duration) -> (i32, String) {
    let child = command.spawn().expect("sipp is installed (apt-get install sip-tester)");
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .expect("sipp finished in time")
        .expect("sipp output");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

/// One HTTP/1.1 request to the REST API; returns the status and the JSON body.
pub async fn http(
    api: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let content_type = if body.is_empty() { None } else { Some("application/json") };
    http_bytes(api, method, path, headers, content_type, body.as_bytes()).await
}

/// One HTTP/1.1 request with a raw body of `content_type`.
pub async fn http_bytes(
    api: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(content_type) = content_type {
        request.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let (status, body) = exchange(api, request, body).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// One body-less request; the status and the raw response body (audio, HTML…).
pub async fn http_raw(api: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\n\r\n");
    exchange(api, request, &[]).await
}

/// Sends the request head and body; reads the answer to the end (`Connection: close`).
async fn exchange(api: SocketAddr, head: String, body: &[u8]) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(api).await.expect("connect to the API");
    stream.write_all(head.as_bytes()).await.expect("send");
    stream.write_all(body).await.expect("send the body");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    (status, response[split + 4..].to_vec())
}

/// `sox <wav> -n stat`: (length in seconds, RMS amplitude 0..1).
pub fn sox_length_and_rms(wav: &std::path::Path) -> (f64, f64) {
    let stat =
        std::process::Command::new("sox").arg(wav).args(["-n", "stat"]).output().expect("sox is installed");
    let report = String::from_utf8_lossy(&stat.stderr);
    let field = |name: &str| -> f64 {
        report
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(':').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in sox's report:\n{report}"))
    };
    (field("Length (seconds)"), field("RMS     amplitude"))
}

/// The value of the sample line `series` (name and labels) in Prometheus text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
}

/// `GET /metrics` on the node's metrics listener (its address from the log).
pub async fn scrape_metrics(platform: &Platform, token: Option<&str>) -> (u16, String) {
    let log = platform.log();
    let addr: std::net::SocketAddr = log
        .lines()
        .filter(|line| line.contains("metrics endpoint ready"))
        .find_map(|line| line.split_whitespace().find_map(|word| word.strip_prefix("metrics=")))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("the metrics endpoint's address in the log:\n{log}"));
    let bearer = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|value| ("Authorization", value.as_str())).collect();
    let (status, body) = http_raw(addr, "GET", "/metrics", &headers).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}
