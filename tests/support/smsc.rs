//! The test SMSC (npm `smpp`, tests/support/smsc/smsc.js) as a child process: its port, its
//! JSON log (one object per line it printed), and its stdin for commands (`deliver`, `drop`).
//! Include with `#[path = "support/smsc.rs"] mod smsc;`.
#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// A running test SMSC; killed on drop.
pub struct Smsc {
    pub child: Child,
    pub port: u16,
    /// Everything it logged so far.
    pub log: Arc<Mutex<Vec<Value>>>,
    stdin: ChildStdin,
}

impl Smsc {
    /// Starts it on a free loopback port (system_id `opentact`, password `secret`).
    pub async fn start() -> Smsc {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/smsc");
        assert!(dir.join("node_modules/smpp").exists(), "run scripts/install-deps --test");
        let mut child = Command::new("node")
            .arg(dir.join("smsc.js"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next_line().await.expect("read").expect("LISTENING");
        let port = first.strip_prefix("LISTENING ").expect("LISTENING").parse().expect("port");
        let log = Arc::new(Mutex::new(Vec::new()));
        let collected = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(value) = serde_json::from_str(&line) {
                    collected.lock().push(value);
                }
            }
        });
        Smsc { child, port, log, stdin }
    }

    /// The `[messaging.smpp]` table (and a quick sender) that binds the platform to it.
    pub fn config(&self) -> String {
        format!(
            "[messaging.smpp]\nport = {}\nsystem_id = \"opentact\"\npassword = \"secret\"\n\
             throughput_per_sec = 0\nreconnect_min_ms = 50\n\n[messaging.sender]\npoll_interval_ms = 50\n",
            self.port
        )
    }

    /// Waits until the platform is bound (at most `timeout`).
    pub async fn bound(&self, timeout: Duration) {
        self.wait("a bind", timeout, |e| e["event"] == "bind" && e["ok"] == true).await;
    }

    /// Waits until a logged event matches (at most `timeout`); returns it.
    pub async fn wait(&self, what: &str, timeout: Duration, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self.log.lock().iter().find(|e| matches(e)) {
                return found.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "the SMSC saw no {what}: {:#?}", self.log.lock());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends an inbound `deliver_sm` from `from` to `to` on a bound session.
    pub async fn deliver(&mut self, from: &str, to: &str, text: &str) {
        let line = json!({"deliver": {"from": from, "to": to, "text": text}}).to_string() + "\n";
        self.stdin.write_all(line.as_bytes()).await.expect("smsc stdin");
    }
}
