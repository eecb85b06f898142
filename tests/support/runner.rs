//! Runs the real `opentact` binary and reads its event stream.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    /// Every stdout line that is a JSON object (the event stream of `flow run`).
    pub events: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// `verb:phase` of every call.callflow event, other events by type — the flow's transcript.
    pub fn transcript(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| match e["type"].as_str() {
                Some("call.callflow") => {
                    format!("{}:{}", e["verb"].as_str().unwrap_or("?"), e["phase"].as_str().unwrap_or("?"))
                }
                Some(other) => other.to_owned(),
                None => "?".to_owned(),
            })
            .collect()
    }

    /// The `detail` of the first `verb` event in `phase`.
    pub fn detail(&self, verb: &str, phase: &str) -> Option<&Value> {
        self.events
            .iter()
            .find(|e| e["type"] == "call.callflow" && e["verb"] == verb && e["phase"] == phase)
            .map(|e| &e["detail"])
    }

    /// Every text spoken, in order: `say` verbs and the `say` prompts of gathers.
    pub fn said(&self) -> Vec<String> {
        let mut said = Vec::new();
        for event in self.events.iter().filter(|e| e["phase"] == "started") {
            if event["verb"] == "say" {
                said.extend(event["detail"]["text"].as_str().map(str::to_owned));
            } else if event["verb"] == "gather" {
                let prompts = event["detail"]["prompts"].as_array().cloned().unwrap_or_default();
                said.extend(
                    prompts
                        .iter()
                        .filter(|p| p["verb"] == "say")
                        .filter_map(|p| p["text"].as_str().map(str::to_owned)),
                );
            }
        }
        said
    }

    /// The hangup event.
    pub fn hangup(&self) -> Option<&Value> {
        self.events.iter().find(|e| e["type"] == "call.hangup")
    }
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Run `opentact <args>` and collect its events (at most 60 s).
pub async fn opentact(args: &[&str]) -> Run {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opentact"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn opentact");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("opentact finished within 60 s")
        .expect("opentact output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let events = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON event: {line:?}: {e}")))
        .collect();
    Run {
        code: output.status.code().unwrap_or(-1),
        events,
        stdout: stdout.clone().into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `opentact flow run <flow> <args>`.
pub async fn flow_run(flow: &str, args: &[&str]) -> Run {
    let mut all = vec!["flow", "run", flow];
    all.extend_from_slice(args);
    opentact(&all).await
}

/// Write `xml` to a temporary file and run it.
pub async fn run_xml(xml: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("flow.xml");
    std::fs::write(&path, xml).expect("write flow");
    let path = path.to_str().expect("utf-8 path").to_owned();
    flow_run(&path, args).await
}
