//! The hook spool over real processes: events `hooktel hook` could not deliver are kept and come
//! out, once the sidecar is back, as the trace they would have made.

use std::path::Path;
use std::time::Duration;

use crate::support;
use crate::support::{assert_tree, captured_session, run_hook_with, temp_dir, Protocol, Receiver, Sidecar};

const TRACE: &str = "2cfb142e3e2c45c5819258e43d4a510f";

/// An address nothing listens on.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}

fn spooled(data: &Path) -> i64 {
    let conn = rusqlite::Connection::open(data.join("spool.db")).unwrap();
    conn.query_row("SELECT count(*) FROM hook_events", [], |r| r.get(0)).unwrap()
}

#[test]
fn a_session_hooked_while_the_sidecar_was_down_comes_out_whole() {
    let data = temp_dir("spool");
    let down = closed_port();
    for payload in captured_session() {
        let out = run_hook_with(&down, &data, &payload);
        assert!(out.status.success());
        assert!(out.stdout.is_empty());
        assert!(out.stderr.is_empty(), "spooled silently: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(spooled(&data), 19);

    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[("HOOKTEL_DATA_DIR", data.to_str().unwrap())]);
    let spans = receiver.wait_for(Duration::from_secs(20), "the root", |s| s.iter().any(|s| s.parent.is_empty()));
    assert_tree(&spans, TRACE);
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    for name in ["claude-code session", "invoke_agent claude-code", "execute_tool Agent", "invoke_agent Explore"] {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name} in {names:?}");
    }
    assert_eq!(names.iter().filter(|n| **n == "execute_tool Bash").count(), 2);
    // the spans carry the times the hooks fired, not the time of the drain
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    let sub = spans.iter().find(|s| s.name == "invoke_agent Explore").unwrap();
    assert!(root.start_ns < sub.start_ns && sub.end_ns <= root.end_ns);
    support::wait_until(Duration::from_secs(5), "the spool emptied", || spooled(&data) == 0);
    support::wait_until(Duration::from_secs(5), "the spool gauge at 0", || {
        sidecar.metrics().contains("hooktel_spool_events 0")
    });
    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="PreToolUse"}"#), 4.0);
    drop(sidecar);
}

#[test]
fn a_corrupt_spool_is_moved_aside_and_the_hook_still_spools() {
    let data = temp_dir("corrupt");
    std::fs::write(data.join("spool.db"), vec![0x5a; 8192]).unwrap();
    let payload = &captured_session()[0];
    let out = run_hook_with(&closed_port(), &data, payload);
    assert!(out.status.success() && out.stdout.is_empty());
    assert_eq!(spooled(&data), 1, "spooled into a fresh file");
    let aside = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains(".corrupt-"));
    assert!(aside, "the corrupt file was kept aside for inspection");
}

#[test]
fn a_locked_spool_costs_the_hook_its_timeout_and_never_hangs_it() {
    let data = temp_dir("locked");
    // create the spool, then hold its write lock the whole time
    let out = run_hook_with(&closed_port(), &data, &captured_session()[0]);
    assert!(out.status.success());
    let conn = rusqlite::Connection::open(data.join("spool.db")).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = std::time::Instant::now();
    let mut cmd = std::process::Command::new(support::BIN);
    let out = cmd
        .arg("hook")
        .env("HOOKTEL_ADDR", closed_port())
        .env("HOOKTEL_DATA_DIR", &data)
        .env("HOOKTEL_HOOK_TIMEOUT_MS", "200")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&captured_session()[1])?;
            c.wait_with_output()
        })
        .unwrap();
    let took = started.elapsed();
    assert!(out.status.success() && out.stdout.is_empty());
    assert!(took < Duration::from_secs(5), "bounded: {took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not spooled") && err.contains("lost"), "the loss is said: {err}");
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(spooled(&data), 1, "only the first event");
    // the loss is counted once a sidecar runs on this data directory
    let sidecar = Sidecar::start(None, &[("HOOKTEL_DATA_DIR", data.to_str().unwrap())]);
    support::wait_until(Duration::from_secs(10), "the lost event counted", || {
        sidecar.metric(r#"hooktel_spool_dropped_total{reason="write_failed",spool="hook"}"#) == 1.0
    });
    drop(sidecar);
}
