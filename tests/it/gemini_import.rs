//! `hooktel import` of Gemini CLI's chat logs, against the real binary: found by default under
//! `~/.gemini/tmp` (told by their header, whatever they are called), each the tree the live path makes
//! (a turn per prompt, its calls with the failing command and the missing file in ERROR, a model call
//! per response with the log's tokens); imported twice,
//! nothing is sent twice; into the data directory of a sidecar that captured the session live, it is
//! skipped whole; a resumed session's log without messages is skipped and counted.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, temp_dir, Protocol, Receiver, Sidecar, BIN};

const RUN: &str = "tests/fixtures/gemini/failures-0.61.0";
const SESSION: &str = "c199ef1e-cb51-4b44-948c-48558af6cf63";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(RUN)
}

fn chat_log() -> PathBuf {
    let found = fs::read_dir(fixture()).unwrap().map(|e| e.unwrap().path());
    found.into_iter().find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("session-")).unwrap()
}

/// `hooktel import ARGS` with HOME `home` and the data directory `data`, exporting to `otlp`: what it said.
fn import(home: &Path, data: &Path, args: &[&str], otlp: &Receiver) -> String {
    let mut cmd = Command::new(BIN);
    cmd.arg("import").args(args).env("HOOKTEL_DATA_DIR", data).env("HOOKTEL_RETENTION_DAYS", "36500");
    support::without_inherited_settings(&mut cmd);
    cmd.env("HOME", home).env_remove("GEMINI_CLI_HOME").env_remove("CODEX_HOME").env_remove("CLAUDE_CONFIG_DIR");
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()).env("OTEL_EXPORTER_OTLP_PROTOCOL", otlp.protocol_name());
    let out = cmd.output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "import failed: {said}{}", String::from_utf8_lossy(&out.stderr));
    said
}

#[test]
fn gemini_chat_logs_are_imported_once_and_never_over_a_live_capture() {
    let home = temp_dir("gemini-import");
    let chats = home.join(".gemini/tmp/proj/chats");
    fs::create_dir_all(&chats).unwrap();
    fs::copy(chat_log(), chats.join("renamed.jsonl")).unwrap();
    // the log a resume in a later minute opens: its header and context, no message
    let stub = format!(
        "{}\n{}\n",
        r#"{"sessionId":"c199ef1e-cb51-4b44-948c-48558af6cf63","projectHash":"ab","startTime":"2026-12-07T22:19:00.000Z","kind":"main"}"#,
        r#"{"$set":{"messages":[{"id":"d049","timestamp":"2026-12-07T22:19:00.010Z","type":"user","content":[{"text":"<session_context>"}]}]}}"#
    );
    fs::write(chats.join("session-2026-12-07T22-19-c199ef1e.jsonl"), stub).unwrap();
    let data = temp_dir("gemini-import-data");
    let receiver = Receiver::start(Protocol::Http);
    let said = import(&home, &data, &[], &receiver);
    assert!(said.contains("sessions: 1,"), "{said}");
    assert!(said.contains("Gemini chat logs without messages skipped: 1"), "{said}");
    let trace = SESSION.replace('-', "");
    // root, the turn, the shell call and the read, three model calls
    let spans = receiver.wait_for(Duration::from_secs(20), "the imported session", |s| s.len() == 7);
    assert!(spans.iter().all(|s| s.trace_id == trace && s.attr("hooktel.imported") == Some("true")));
    let names: std::collections::BTreeMap<&str, usize> = spans.iter().fold(Default::default(), |mut m, s| {
        *m.entry(s.name.as_str()).or_default() += 1;
        m
    });
    let want = [
        ("chat gemini-3.8-flash", 3),
        ("execute_tool read_file", 1),
        ("execute_tool run_shell_command", 1),
        ("gemini-cli session", 1),
        ("invoke_agent gemini-cli", 1),
    ];
    assert_eq!(names.into_iter().collect::<Vec<_>>(), want);
    let errors: Vec<(&str, &str)> =
        spans.iter().filter(|s| s.status == 2).map(|s| (s.name.as_str(), s.status_message.as_str())).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.contains(&("execute_tool run_shell_command", "exit code 3")), "{errors:?}");

    // twice: nothing sent again
    let again = import(&home, &data, &[], &receiver);
    assert!(again.contains("spans sent: 0, already imported before (skipped): 7"), "{again}");
    assert_eq!(receiver.spans().len(), 7);

    // a sidecar captured it live (its hooks, over the wire): importing into its data directory sends nothing
    let sidecar = Sidecar::start(None, &[]);
    for line in fs::read_to_string(fixture().join("hooks.jsonl")).unwrap().lines() {
        let mut p: Value = serde_json::from_str(line).unwrap();
        p["transcript_path"] = chats.join("renamed.jsonl").to_str().unwrap().into();
        p["hooktel_agent"] = "gemini-cli".into();
        assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
    }
    support::wait_until(Duration::from_secs(20), "the live session ended", || {
        sidecar.metric(r#"hooktel_sessions_ended_total{agent="gemini-cli",reason="exit"}"#) == 1.0
    });
    let other = Receiver::start(Protocol::Http);
    let after_live = import(&home, &sidecar.data_dir, &[], &other);
    assert!(after_live.contains("sessions skipped: 1 (captured live"), "{after_live}");
    assert!(after_live.contains("spans sent: 0,"), "{after_live}");
}
