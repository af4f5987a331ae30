//! Local mode end to end: with no OTLP endpoint, the sidecar keeps finished spans in `local.db`,
//! and `hooktel sessions` / `hooktel show` read them back.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{temp_dir, wait_until, Sidecar, BIN};

const SESSION: &str = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";
const AGENT: &str = "a7ca175cf2fd2156a";
const WAIT: Duration = Duration::from_secs(20);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The captured session's transcripts copied into a scratch `projects/` tree; returns the main path.
fn copy_captured(dir: &Path) -> PathBuf {
    let src = fixtures().join("transcripts/captured-2.1.329/-home-dev-proj");
    let dst = dir.join("projects/-home-dev-proj");
    std::fs::create_dir_all(dst.join(SESSION).join("subagents")).unwrap();
    for rel in [
        format!("{SESSION}.jsonl"),
        format!("{SESSION}/subagents/agent-{AGENT}.jsonl"),
        format!("{SESSION}/subagents/agent-{AGENT}.meta.json"),
    ] {
        std::fs::copy(src.join(&rel), dst.join(&rel)).unwrap();
    }
    dst.join(format!("{SESSION}.jsonl"))
}

/// The captured hook payloads in firing order, pointed at `transcript`.
fn captured_payloads(transcript: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(fixtures().join("hooks/captured"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    files.sort();
    let agent_transcript = transcript.with_extension("").join(format!("subagents/agent-{AGENT}.jsonl"));
    files
        .iter()
        .map(|f| {
            let mut p: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            p["transcript_path"] = transcript.to_str().unwrap().into();
            if p.get("agent_transcript_path").is_some() {
                p["agent_transcript_path"] = agent_transcript.to_str().unwrap().into();
            }
            p.to_string().into_bytes()
        })
        .collect()
}

/// Run `hooktel ARGS` on `data_dir`; returns stdout, panicking with stderr on failure.
fn hooktel(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("HOOKTEL_DATA_DIR", data_dir)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .expect("run hooktel");
    assert!(out.status.success(), "hooktel {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn captured_session_is_listed_and_shown_from_the_local_store() {
    let dir = temp_dir("local-mode");
    let transcript = copy_captured(&dir);
    let sidecar = Sidecar::start(None, &[]);
    let data = sidecar.data_dir.clone();
    assert!(hooktel(&data, &["sessions"]).contains("No session recorded yet"));

    for payload in captured_payloads(&transcript) {
        let out = sidecar.hook(&payload);
        assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    }
    // the root is stored when the session has ended and settled
    let mut listing = String::new();
    wait_until(WAIT, "the session listed as ended", || {
        listing = hooktel(&data, &["sessions"]);
        listing.lines().any(|l| l.contains(SESSION) && l.trim_end().ends_with("ended"))
    });
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(lines[0].starts_with("STARTED (UTC)"), "{listing}");
    // session project duration turns tools failed agents in out cost state
    let cells: Vec<&str> = lines[1].split_whitespace().skip(2).collect();
    assert_eq!(cells[0..2], [SESSION, "proj"], "{listing}");
    assert_eq!(cells[3..], ["1", "4", "1", "1", "117.8k", "445", "$0.0762", "ended"], "{listing}");

    let tree = hooktel(&data, &["show", "2cfb142e"]);
    assert_eq!(tree, hooktel(&data, &["show", &SESSION.replace('-', "")]));
    let line = |needle: &str| {
        tree.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in\n{tree}")).to_owned()
    };
    let indent = |needle: &str| line(needle).chars().take_while(|c| !c.is_alphanumeric()).count();
    assert!(tree.starts_with(&format!("Session {SESSION}  project proj  ended\n")), "{tree}");
    assert_eq!(indent("claude-code session"), 0, "{tree}");
    assert!(indent("invoke_agent Explore") > indent("execute_tool Agent"), "{tree}");
    assert!(indent("execute_tool Glob") > indent("invoke_agent Explore"), "{tree}");
    assert!(line("command=false").contains("✗ Exit code 1"), "{tree}");
    assert!(line("claude-code session").contains("117.8k in / 445 out tokens · $0.0762"), "{tree}");
    assert!(line("invoke_agent Explore").contains("174 out tokens"), "{tree}");

    let err = Command::new(BIN).args(["show", "ffff"]).env("HOOKTEL_DATA_DIR", &data).output().unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("no recorded session matches"));
    let _ = std::fs::remove_dir_all(&dir);
}
