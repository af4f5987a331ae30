//! OpenAI's Codex CLI, the real one (pinned, from npm), offline against the scripted Responses mock,
//! its every hook event also running `hooktel hook`. What holds already, before hooktel reads Codex's
//! payloads its own way: Codex is never hurt (it answers the same and exits 0 whether the sidecar is
//! up or away), and every event it fires reaches the sidecar, or its spool and then the sidecar.
//! Hooks run here through `--dangerously-bypass-hook-trust`: `hooktel install --agent codex` (which
//! records Codex's trust) is not built yet.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::claude::{shell_quote, Scratch};
use crate::support::codex::{exec, write_config, write_hooks, MockResponses};
use crate::support::{metric_sum, metric_value, wait_until, Sidecar, BIN};

const FIRST: &str = "[turn:1] Run the two echoes, then the failing command.";
const SECOND: &str = "[turn:2] Once more.";

/// Hook payloads as a second handler logged them: how many of each event fired.
fn fired(log: &Path) -> BTreeMap<String, usize> {
    let mut by_event = BTreeMap::new();
    for line in fs::read_to_string(log).unwrap().lines().filter(|l| !l.trim().is_empty()) {
        let payload: Value = serde_json::from_str(line).unwrap();
        *by_event.entry(payload["hook_event_name"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    by_event
}

/// Two turns of one session: the first, then a resume of it; both must answer as scripted.
fn two_turns(home: &Path, work: &Path, env: &[(&str, &str)]) -> Vec<Duration> {
    let bypass = "--dangerously-bypass-hook-trust";
    let first = exec(home, work, &[bypass, FIRST], env);
    assert!(first.status.success(), "codex exec: {}\n{}", first.status, first.stderr);
    assert!(first.stdout.contains("Turn one done"), "{}", first.stdout);
    let session = first.session_id();
    let second = exec(home, work, &[bypass, "resume", &session, SECOND], env);
    assert!(second.status.success(), "codex exec resume: {}\n{}", second.status, second.stderr);
    assert!(second.stdout.contains("Turn two done"), "{}", second.stdout);
    assert_eq!(second.session_id(), session, "a resume keeps the session");
    vec![first.took, second.took]
}

/// A HOME whose hooks log each payload to `payloads.jsonl`, then run `hooktel hook`.
fn home_with_hooks(scratch: &Scratch, mock: &MockResponses) -> (std::path::PathBuf, std::path::PathBuf) {
    let home = scratch.dir("home");
    write_config(&home, mock);
    let log = scratch.path().join("payloads.jsonl");
    // one write per payload (parallel tool calls fire their hooks at once)
    let tee = format!("p=$(cat); printf '%s\\n' \"$p\" >> {}", shell_quote(log.to_str().unwrap()));
    let hook = format!("{} hook", shell_quote(BIN));
    write_hooks(&home, &[&tee, &hook]);
    (home, log)
}

fn counted(sidecar: &Sidecar, event: &str) -> f64 {
    metric_value(&sidecar.metrics(), &format!(r#"hooktel_hook_events_total{{event="{event}"}}"#)).unwrap_or(0.0)
}

#[test]
fn every_codex_hook_event_reaches_the_sidecar_and_codex_answers_as_without_it() {
    let scratch = Scratch::new();
    let mock = MockResponses::start(&scratch, "codex");
    let (home, log) = home_with_hooks(&scratch, &mock);
    let work = scratch.dir("proj");
    let sidecar = Sidecar::start(None, &[]);
    let addr = sidecar.addr.to_string();
    let data = sidecar.data_dir.to_str().unwrap().to_owned();
    two_turns(&home, &work, &[("HOOKTEL_ADDR", &addr), ("HOOKTEL_DATA_DIR", &data)]);

    let fired = fired(&log);
    for event in ["SessionStart", "UserPromptSubmit", "PreModelRequest", "PreToolUse", "PostToolUse", "Stop"] {
        assert!(fired.contains_key(event), "Codex fired no {event}: {fired:?}");
    }
    assert_eq!(fired["PreToolUse"], 4, "two parallel echoes, the failing command, the resumed echo");
    wait_until(Duration::from_secs(10), "every fired event counted by the sidecar", || {
        fired.iter().all(|(event, n)| counted(&sidecar, event) == *n as f64)
    });
    assert_eq!(metric_sum(&sidecar.metrics(), "hooktel_ingest_rejected_total"), 0.0);
    assert_eq!(mock.usages().len(), 5, "five responses served: three in the first turn, two in the second");
}

#[test]
fn with_the_sidecar_away_codex_answers_the_same_and_its_events_wait_in_the_spool() {
    let scratch = Scratch::new();
    let mock = MockResponses::start(&scratch, "codex-away");
    let (home, log) = home_with_hooks(&scratch, &mock);
    let work = scratch.dir("proj");
    let data = scratch.dir("data");
    // a port nothing listens on: bound, then closed
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    two_turns(&home, &work, &[("HOOKTEL_ADDR", &closed), ("HOOKTEL_DATA_DIR", data.to_str().unwrap())]);

    let fired = fired(&log);
    let total: usize = fired.values().sum();
    assert!(total >= 16, "Codex fired its events: {fired:?}");
    // the sidecar, started on that data directory, drains the spool: every event, once
    let sidecar = Sidecar::builder().data_dir(&data).start();
    wait_until(Duration::from_secs(20), "the spooled events drained and counted", || {
        fired.iter().all(|(event, n)| counted(&sidecar, event) == *n as f64)
    });
    assert_eq!(metric_sum(&sidecar.metrics(), "hooktel_hook_events_total"), total as f64);
}
