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
        let data = dir.path().join("data");
        let events = dir.path().join("events.jsonl");
        let mut child = Command::new(env!("CARGO_BIN_EXE_opentact"))
            .args(["serve", "--data-dir", data.to_str().expect("utf-8"), "--sip-listen", "127.0.0.1:0"])
            .args(["--event-log", events.to_str().expect("utf-8")])
            .args(extra)
            .env(
                "OPENTACT_LOG",
                std::env::var("OPENTACT_TEST_LOG")
                    .unwrap_or_else(|_| "info,rsipstack=warn,sqlx=warn,opentact_sip=debug".to_owned()),
            )
            .env("NO_COLOR", "1")
            .current_dir(repo())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn opentact serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let collected = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut ready = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("platform ready sip=") {
                    let address =
                        line[at + "platform ready sip=".len()..].split_whitespace().next().unwrap_or("");
                    if let (Some(tx), Ok(address)) = (ready.take(), address.parse::<SocketAddr>()) {
                        let _ = tx.send(address);
                    }
                }
                let mut log = collected.lock();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let sip = match tokio::time::timeout(Duration::from_secs(120), ready_rx).await {
            Ok(Ok(address)) => address,
            _ => panic!("opentact serve did not become ready:\n{}", log.lock()),
        };
        Platform { child, sip, dir, log }
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Every call event written so far.
    pub fn events(&self) -> Vec<Value> {
        read_events(&self.dir.path().join("events.jsonl"))
    }

    /// Wait until an event matches (at most `timeout`), returning all events then.
    pub async fn wait_for_event(&self, timeout: Duration, matches: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let events = self.events();
            if events.iter().any(&matches) {
                return events;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "no matching event within {timeout:?}; events: {events:#?}\nlog:\n{}",
                    self.log.lock()
                );
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
