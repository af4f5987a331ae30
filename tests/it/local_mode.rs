//! Local mode end to end: with no OTLP endpoint, the sidecar keeps finished spans in `local.db`,
//! and `hooktel sessions` / `hooktel show` read them back.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{captured_session_at, copy_captured_transcripts, temp_dir, wait_until, Sidecar, BIN};

const SESSION: &str = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";
const WAIT: Duration = Duration::from_secs(20);

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
    let transcript = copy_captured_transcripts(&dir);
    let sidecar = Sidecar::start(None, &[]);
    let data = sidecar.data_dir.clone();
    assert!(hooktel(&data, &["sessions"]).contains("No session recorded yet"));

    for payload in captured_session_at(&transcript).iter().map(|p| p.to_string().into_bytes()).collect::<Vec<_>>() {
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
    // session agent project duration turns tools failed subagents in out cost state
    let cells: Vec<&str> = lines[1].split_whitespace().skip(2).collect();
    assert_eq!(cells[0..3], [SESSION, "claude-code", "proj"], "{listing}");
    assert_eq!(cells[4..], ["1", "4", "1", "1", "117.8k", "445", "$0.0762", "ended"], "{listing}");

    let tree = hooktel(&data, &["show", "2cfb142e"]);
    assert_eq!(tree, hooktel(&data, &["show", &SESSION.replace('-', "")]));
    let line = |needle: &str| {
        tree.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in\n{tree}")).to_owned()
    };
    let indent = |needle: &str| line(needle).chars().take_while(|c| !c.is_alphanumeric()).count();
    assert!(
        tree.starts_with(&format!("Session {SESSION}  project proj  ended\nCoding agent: claude-code\n")),
        "{tree}"
    );
    assert_eq!(indent("claude-code session"), 0, "{tree}");
    assert!(indent("invoke_agent Explore") > indent("execute_tool Agent"), "{tree}");
    assert!(indent("execute_tool Glob") > indent("invoke_agent Explore"), "{tree}");
    assert!(line("command=false").contains("✗ Exit code 1"), "{tree}");
    assert!(line("claude-code session").contains("117.8k in / 445 out tokens · $0.0762"), "{tree}");
    assert!(line("invoke_agent Explore").contains("174 out tokens"), "{tree}");

    let err = Command::new(BIN).args(["show", "ffff"]).env("HOOKTEL_DATA_DIR", &data).output().unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("no recorded session matches"));
}
