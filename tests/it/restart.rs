//! Restarts and crashes: a session running across a restart of the sidecar (SIGTERM, or kill -9)
//! still ends as one coherent trace, every span exported exactly once.

use std::path::Path;
use std::time::Duration;

use crate::support;
use crate::support::{assert_tree, captured_session, temp_dir, Protocol, Receiver, Sidecar};

const TRACE: &str = "2cfb142e3e2c45c5819258e43d4a510f";
const SPANS_IN_SESSION: usize = 7;

fn journaled(data: &Path) -> i64 {
    let Ok(conn) = rusqlite::Connection::open(data.join("journal.db")) else { return 0 };
    conn.query_row("SELECT count(*) FROM journal WHERE kind = 0", [], |r| r.get(0)).unwrap_or(0)
}

/// Run the first `split` events on one sidecar, stop it with `stop`, the rest on a second one.
fn across_a_restart(split: usize, stop: impl FnOnce(&mut Sidecar)) {
    let data = temp_dir("restart");
    let env = [("HOOKTEL_DATA_DIR", data.to_str().unwrap())];
    let receiver = Receiver::start(Protocol::Grpc);
    let events = captured_session();
    let mut first = Sidecar::start(Some(&receiver), &env);
    for p in &events[..split] {
        assert!(first.hook(p).status.success());
    }
    // some of the session's spans are out before the restart: they must not come out again
    receiver.wait_for(Duration::from_secs(20), "a span of the first part", |s| !s.is_empty());
    support::wait_until(Duration::from_secs(10), "the first part journaled", || journaled(&data) >= split as i64);
    stop(&mut first);
    drop(first);

    let second = Sidecar::start(Some(&receiver), &env);
    for p in &events[split..] {
        assert!(second.hook(p).status.success());
    }
    receiver.wait_for(Duration::from_secs(20), "the root", |s| s.iter().any(|s| s.parent.is_empty()));
    std::thread::sleep(Duration::from_millis(500)); // anything exported twice would arrive by now
    let spans = receiver.spans();
    let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(spans.len(), SPANS_IN_SESSION, "{names:?}");
    assert_tree(&spans, TRACE);
    for s in &spans {
        assert_eq!(s.attr("hooktel.incomplete"), None, "{} was cut by the restart", s.name);
    }
    let sub = spans.iter().find(|s| s.name == "invoke_agent Explore").unwrap();
    let agent = spans.iter().find(|s| s.name == "execute_tool Agent").unwrap();
    assert_eq!(sub.parent, agent.span_id);
    support::wait_until(Duration::from_secs(10), "the journal emptied of the finished session", || {
        journaled(&data) == 0
    });
    drop(second);
}

#[test]
fn a_session_across_a_sigterm_restart_is_one_trace() {
    // split after the first Bash call finished (07), inside the subagent's run
    across_a_restart(8, |s| assert!(s.terminate(Duration::from_secs(15)), "SIGTERM stops the sidecar"));
}

#[test]
fn a_session_across_a_kill_9_is_one_trace() {
    across_a_restart(8, |s| {
        let _ = std::process::Command::new("kill").args(["-9", &s.pid().to_string()]).status();
    });
}

#[test]
fn a_session_resumed_after_a_restart_keeps_its_one_root() {
    let data = temp_dir("resume-restart");
    let env = [("HOOKTEL_DATA_DIR", data.to_str().unwrap())];
    let receiver = Receiver::start(Protocol::Http);
    let events = captured_session();
    let first = Sidecar::start(Some(&receiver), &env);
    for p in &events {
        assert!(first.hook(p).status.success());
    }
    receiver.wait_for(Duration::from_secs(20), "the root", |s| s.iter().any(|s| s.parent.is_empty()));
    drop(first);
    // claude --resume after the sidecar restarted: a later SessionStart of the same session
    let second = Sidecar::start(Some(&receiver), &env);
    let sid = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";
    for (event, extra) in [("SessionStart", r#""source":"resume""#), ("SessionEnd", r#""reason":"other""#)] {
        let body = format!(r#"{{"session_id":"{sid}","hook_event_name":"{event}",{extra}}}"#);
        assert!(second.hook(body.as_bytes()).status.success());
    }
    let spans = receiver.wait_for(Duration::from_secs(20), "the resumed segment", |s| {
        s.iter().any(|s| s.name == "claude-code session resumed")
    });
    assert_tree(&spans, TRACE);
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    let seg = spans.iter().find(|s| s.name == "claude-code session resumed").unwrap();
    assert_eq!(seg.parent, root.span_id);
    drop(second);
}
