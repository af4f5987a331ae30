//! `hooktel import` as a user runs it: historic transcripts and event logs into the local store or a
//! real OTLP receiver, twice, without duplicates.

use std::path::Path;
use std::process::Command;

use crate::support;
use crate::support::{temp_dir, Protocol, Receiver, BIN};

fn transcripts() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transcripts")
}

fn import(data: &Path, args: &[&str], otlp: Option<&Receiver>) -> String {
    let mut cmd = Command::new(BIN);
    cmd.arg("import")
        .args(args)
        .env("HOOKTEL_DATA_DIR", data)
        // the fixtures are from 2026-11; keep them whatever day the test runs
        .env("HOOKTEL_RETENTION_DAYS", "36500")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if let Some(r) = otlp {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", r.endpoint()).env("OTEL_EXPORTER_OTLP_PROTOCOL", r.protocol_name());
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "import failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `hooktel import` of `dir` into the local store in `data`, for at most `limit`: its output (`None`
/// if it had to be killed) and its peak memory in MiB.
fn import_sampled(data: &Path, dir: &Path, limit: std::time::Duration) -> (Option<std::process::Output>, f64) {
    let mut cmd = Command::new(BIN);
    cmd.arg("import")
        .arg(dir)
        .env("HOOKTEL_DATA_DIR", data)
        .env("HOOKTEL_RETENTION_DAYS", "36500")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    support::run_sampled(&mut cmd, limit)
}

fn local_spans(data: &Path) -> i64 {
    let conn = rusqlite::Connection::open(data.join("local.db")).unwrap();
    conn.query_row("SELECT count(*) FROM spans", [], |r| r.get(0)).unwrap()
}

#[test]
fn importing_twice_into_the_local_store_creates_no_duplicates() {
    let data = temp_dir("import-local");
    let src = [transcripts().join("captured-2.1.329"), transcripts().join("real-2.1.197")];
    let args: Vec<&str> = src.iter().map(|p| p.to_str().unwrap()).collect();
    let first = import(&data, &args, None);
    // 22 spans from the hooks' view of the three sessions, 15 model calls (API responses)
    assert!(first.contains("sessions: 3") && first.contains("spans sent: 37"), "{first}");
    assert!(first.contains("cost $0.36"), "{first}");
    let second = import(&data, &args, None);
    assert!(second.contains("spans sent: 0, already imported before (skipped): 37"), "{second}");
    assert_eq!(local_spans(&data), 37);

    let sessions = Command::new(BIN).arg("sessions").env("HOOKTEL_DATA_DIR", &data).output().unwrap();
    let text = String::from_utf8(sessions.stdout).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains("ended")).count(), 3, "{text}");
    // the captured session with the figures Claude Code itself recorded
    let line = text.lines().find(|l| l.contains("2cfb142e-3e2c-45c5-8192-58e43d4a510f")).unwrap();
    assert!(line.contains("$0.0762") && line.contains("445"), "{line}");
}

#[test]
fn importing_twice_into_a_collector_sends_each_span_once() {
    let data = temp_dir("import-otlp");
    let receiver = Receiver::start(Protocol::Http);
    let src = transcripts().join("captured-2.1.329");
    import(&data, &[src.to_str().unwrap()], Some(&receiver));
    // 7 spans as the hooks saw it, 5 model calls
    let spans = receiver.wait_for(std::time::Duration::from_secs(10), "the imported session", |s| s.len() == 12);
    support::assert_tree(&spans, "2cfb142e3e2c45c5819258e43d4a510f");
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    assert_eq!(root.attr("gen_ai.usage.output_tokens"), Some("445"));
    // real times from the transcript (2026-11-21T04:31Z), not the time of the import
    assert!(root.start_ns / 1_000_000_000 / 60 == 1_795_235_481 / 60, "{}", root.start_ns);
    let again = import(&data, &[src.to_str().unwrap()], Some(&receiver));
    assert!(again.contains("spans sent: 0"), "{again}");
    assert_eq!(receiver.spans().len(), 12);
}

#[test]
fn an_old_event_log_becomes_custom_events_once() {
    let data = temp_dir("import-events");
    let log = data.join("routing.jsonl");
    std::fs::write(
        &log,
        concat!(
            r#"{"ts": "2026-11-20T10:00:00Z", "session_id": "2cfb142e-3e2c-45c5-8192-58e43d4a510f", "route": "fast"}"#,
            "\n",
            r#"{"ts": 1795170000, "route": "slow", "latency_ms": 812}"#,
            "\n",
            "not json\n",
        ),
    )
    .unwrap();
    let first = import(&data, &["--events", log.to_str().unwrap(), "--name", "routing.decision"], None);
    assert!(first.contains("custom events: 2") && first.contains("spans sent: 2"), "{first}");
    assert!(first.contains("lines skipped"), "{first}");
    let second = import(&data, &["--events", log.to_str().unwrap(), "--name", "routing.decision"], None);
    assert!(second.contains("spans sent: 0"), "{second}");
    assert_eq!(local_spans(&data), 2);
}

/// The spans of one trace in the local store: (span id, start, end, record), sorted.
fn stored(data: &Path, trace: &str) -> Vec<(String, i64, i64, Vec<u8>)> {
    let conn = rusqlite::Connection::open(data.join("local.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT span_id, start_ns, end_ns, record FROM spans WHERE trace_id = ?1 ORDER BY span_id")
        .unwrap();
    stmt.query_map([trace], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(Result::unwrap).collect()
}

/// A user who captured live, then imports `~/.claude/projects` with the same data directory: the
/// session the sidecar captured is skipped whole, in either mode (no second copy at the collector,
/// nothing rewritten in the local store), sessions it never saw are imported, and the summary says so.
/// Once with the sidecar still running, once after it stopped and its journal is gone (its record of
/// the sessions it handed out, alone).
#[test]
fn importing_after_live_capture_sends_and_rewrites_nothing() {
    const TRACE: &str = "2cfb142e3e2c45c5819258e43d4a510f";
    let held_out = transcripts().join("real-2.1.197");
    for (otlp, stop_first) in [(true, false), (true, true), (false, true), (false, false)] {
        let data = temp_dir("import-after-live");
        let home = temp_dir("import-after-live-home");
        let transcript = support::copy_captured_transcripts(home.path());
        let receiver = Receiver::start(Protocol::Http);
        let mut builder = support::Sidecar::builder().data_dir(data.path());
        if otlp {
            builder = builder.exporting_to(&receiver);
        }
        let mut sidecar = builder.start();
        for p in support::captured_session_at(&transcript) {
            assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
        }
        let live_spans = if otlp {
            let all = receiver.wait_for(std::time::Duration::from_secs(20), "the live session", |s| s.len() == 12);
            all.len()
        } else {
            support::wait_until(std::time::Duration::from_secs(20), "the live session stored", || {
                data.path().join("local.db").exists() && stored(data.path(), TRACE).len() == 12
            });
            12
        };
        let before = if otlp { Vec::new() } else { stored(data.path(), TRACE) };
        if stop_first {
            assert!(sidecar.terminate(std::time::Duration::from_secs(10)));
            // as a day later, when the journal has forgotten the ended session: only the record of
            // the sessions handed out can tell
            for f in ["journal.db", "journal.db-wal", "journal.db-shm"] {
                let _ = std::fs::remove_file(data.path().join(f));
            }
        }

        let projects = home.path().join("projects");
        let args = [projects.to_str().unwrap(), held_out.to_str().unwrap()];
        let said = import(data.path(), &args, otlp.then_some(&receiver));
        let case = format!("otlp {otlp}, sidecar stopped {stop_first}");
        assert!(said.contains("sessions skipped: 1 (captured live"), "{case}: {said}");
        assert!(said.contains("sessions: 2,"), "{case}: the two held-out sessions: {said}");
        if otlp {
            let spans = receiver.spans();
            assert_eq!(spans.iter().filter(|s| s.trace_id == TRACE).count(), live_spans, "{case}: sent again");
            assert!(spans.iter().any(|s| s.trace_id != TRACE), "{case}: the held-out sessions were not sent");
        } else {
            assert_eq!(stored(data.path(), TRACE), before, "{case}: the live session was rewritten");
            assert!(local_spans(data.path()) > 12, "{case}: the held-out sessions were not stored");
        }
        drop(sidecar);
    }
}

/// `import` by the live path's file rules (it hung on a subagent FIFO, grew past 1.5 GiB on a subagent
/// linked to /dev/zero, and followed a subagent link out of the projects directory): each such file is
/// refused with its reason, the session is imported without it, and memory stays flat.
#[test]
fn import_refuses_fifos_devices_and_links_out_of_the_session() {
    let home = temp_dir("import-hostile");
    let project = home.join("projects/-home-dev-proj");
    let sid = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";
    let captured = transcripts().join("captured-2.1.329/-home-dev-proj");
    let subagents = project.join(sid).join("subagents");
    std::fs::create_dir_all(&subagents).unwrap();
    std::fs::copy(captured.join(format!("{sid}.jsonl")), project.join(format!("{sid}.jsonl"))).unwrap();
    let real_agent = "agent-a7ca175cf2fd2156a";
    for ext in ["jsonl", "meta.json"] {
        let from = captured.join(sid).join("subagents").join(format!("{real_agent}.{ext}"));
        std::fs::copy(from, subagents.join(format!("{real_agent}.{ext}"))).unwrap();
    }
    let fifo = |p: &Path| {
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    };
    fifo(&subagents.join("agent-fifo.jsonl"));
    fifo(&subagents.join("agent-meta.meta.json"));
    std::fs::write(subagents.join("agent-meta.jsonl"), "").unwrap();
    std::os::unix::fs::symlink("/dev/zero", subagents.join("agent-zero.jsonl")).unwrap();
    let outside = home.join("elsewhere.jsonl");
    std::fs::copy(captured.join(sid).join("subagents").join(format!("{real_agent}.jsonl")), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, subagents.join("agent-outside.jsonl")).unwrap();

    let data = temp_dir("import-hostile-data");
    let (out, peak) = import_sampled(&data, &home.join("projects"), std::time::Duration::from_secs(20));
    let out = out.unwrap_or_else(|| panic!("import hung on a hostile subagent file (peak {peak:.0} MiB)"));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(peak < 128.0, "import peaked at {peak:.0} MiB");
    assert!(said.contains("sessions: 1"), "the session is imported without them:\n{said}");
    for (file, why) in [
        ("agent-fifo.jsonl", "not a regular file"),
        ("agent-zero.jsonl", "not a regular file"),
        ("agent-outside.jsonl", "not under"),
    ] {
        let line = said.lines().find(|l| l.contains(file)).unwrap_or_else(|| panic!("{file} not reported:\n{said}"));
        assert!(line.contains("not imported") && line.contains(why), "{line}");
    }
    // the real subagent is in, none of the refused ones
    let conn = rusqlite::Connection::open(data.join("local.db")).unwrap();
    let mut query = conn.prepare("SELECT name, span_id FROM spans WHERE kind = 'subagent'").unwrap();
    let agents: Vec<(String, String)> =
        query.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    let id = |agent: &str| hooktel::model::ids::span_id(sid, hooktel::model::ids::SpanKey::Subagent, agent).to_string();
    assert!(agents.iter().any(|(_, span)| *span == id("a7ca175cf2fd2156a")), "the real subagent: {agents:?}");
    for refused in ["fifo", "zero", "outside"] {
        assert!(!agents.iter().any(|(_, span)| *span == id(refused)), "agent-{refused} imported: {agents:?}");
    }
}

/// A 400 MB transcript took `import` to 910 MiB: the whole file, every line as a JSON value and every
/// tool output were held at once. The file is now read a line at a time, and what a span can carry
/// of an output kept. Here 64 tool outputs of 1 MiB each (a build log, a large file read).
#[test]
fn a_large_transcript_is_imported_a_line_at_a_time() {
    let home = temp_dir("import-large");
    let project = home.join("projects/-home-dev-proj");
    std::fs::create_dir_all(&project).unwrap();
    let sid = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";
    let captured = transcripts().join(format!("captured-2.1.329/-home-dev-proj/{sid}.jsonl"));
    let mut text = std::fs::read_to_string(captured).unwrap();
    let output = "x".repeat(1024 * 1024);
    for i in 0..64 {
        let line = serde_json::json!({"type": "user", "sessionId": sid, "timestamp": "2026-11-21T04:31:30.000Z",
            "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": format!("toolu_big{i}"),
            "content": output}]}});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(project.join(format!("{sid}.jsonl")), text).unwrap();
    let data = temp_dir("import-large-data");
    let (out, peak) = import_sampled(&data, &home.join("projects"), std::time::Duration::from_secs(120));
    let out = out.expect("import did not finish");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("sessions: 1"), "{said}");
    assert!(peak < 48.0, "import of a 64 MiB transcript peaked at {peak:.0} MiB");
}

/// Tool inputs were held whole until the session's spans were made: here 64 `Write` calls of 1 MiB
/// each. What the capture level lets out of an input is now taken as its call is read, the rest
/// never held.
#[test]
fn large_tool_inputs_are_not_held_by_import() {
    let home = temp_dir("import-inputs");
    let project = home.join("projects/-home-dev-proj");
    std::fs::create_dir_all(&project).unwrap();
    let sid = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";
    let captured = transcripts().join(format!("captured-2.1.329/-home-dev-proj/{sid}.jsonl"));
    let mut text = std::fs::read_to_string(captured).unwrap();
    let content = "x".repeat(1024 * 1024);
    for i in 0..64 {
        let line = serde_json::json!({"type": "assistant", "sessionId": sid, "timestamp": "2026-11-21T04:31:30.000Z",
            "message": {"role": "assistant", "model": "claude-sonnet-4-5", "content": [{"type": "tool_use",
            "id": format!("toolu_write{i}"), "name": "Write",
            "input": {"file_path": format!("/home/dev/proj/f{i}.txt"), "content": content}}]}});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(project.join(format!("{sid}.jsonl")), text).unwrap();
    let data = temp_dir("import-inputs-data");
    let (out, peak) = import_sampled(&data, &home.join("projects"), std::time::Duration::from_secs(120));
    let out = out.expect("import did not finish");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("sessions: 1"), "{said}");
    assert!(peak < 48.0, "import of 64 tool inputs of 1 MiB peaked at {peak:.0} MiB");
}
