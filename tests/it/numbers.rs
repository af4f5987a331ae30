//! Numbers never poison, against the real `hooktel serve`, `sessions` and `show`: a value out of
//! range never reaches a span, an implausible event time is taken as the time the event arrived,
//! and a stored span that cannot be decoded is set aside, counted, without its batch or its
//! neighbours (the export spool) or every other session (the local store).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{self, temp_dir, wait_until, Protocol, Receiver, Sidecar, BIN};

const WAIT: Duration = Duration::from_secs(30);

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn session_id(i: u32) -> String {
    format!("5e551015-0000-4000-8000-{i:012}")
}

/// POST a hook payload to `/v1/hooks`, with `x-hooktel-received-at: at` when given; the status.
fn post_hook(sidecar: &Sidecar, payload: &Value, at: Option<u64>) -> u16 {
    let host = format!("Host: {}", sidecar.addr);
    let stamp = at.map(|t| format!("x-hooktel-received-at: {t}"));
    let mut headers = vec![host.as_str(), "Content-Type: application/json"];
    headers.extend(stamp.as_deref());
    support::raw(sidecar.addr, "POST", "/v1/hooks", &headers, payload.to_string().as_bytes()).0
}

fn hook(session: &str, event: &str) -> Value {
    json!({"session_id": session, "hook_event_name": event, "cwd": "/work/numbers", "source": "startup",
           "reason": "prompt_input_exit"})
}

/// A session with a turn and a tool call, ended; each hook accepted.
fn whole_session(sidecar: &Sidecar, session: &str) {
    let turn = json!({"prompt_id": format!("p-{session}"), "prompt": "hi"});
    let tool = json!({"prompt_id": format!("p-{session}"), "tool_name": "Bash", "tool_use_id": format!("toolu-{session}"),
                      "tool_input": {"command": "true"}, "tool_response": {"stdout": ""}});
    for (event, extra) in [
        ("SessionStart", json!({})),
        ("UserPromptSubmit", turn.clone()),
        ("PreToolUse", tool.clone()),
        ("PostToolUse", tool),
        ("Stop", turn),
        ("SessionEnd", json!({})),
    ] {
        let mut p = hook(session, event);
        p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        assert_eq!(post_hook(sidecar, &p, None), 200, "{p}");
    }
}

/// `hooktel ARGS` on `data_dir`, as a user runs it.
fn hooktel(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("HOOKTEL_DATA_DIR", data_dir)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .expect("run hooktel")
}

/// `hooktel sessions --json`, which must succeed.
fn sessions_json(data_dir: &Path) -> Vec<Value> {
    let out = hooktel(data_dir, &["sessions", "--json"]);
    assert!(out.status.success(), "hooktel sessions --json: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ended(listed: &[Value], sessions: &[String]) -> bool {
    sessions.iter().all(|s| listed.iter().any(|l| l["session_id"] == s.as_str() && l["state"] == "ended"))
}

/// Claude Code's session counter `claude_code.active_time.total{type=user}` = `value`, as OTLP/JSON.
fn active_time(session: &str, value: f64) -> Value {
    json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "claude_code.active_time.total",
        "sum": {"aggregationTemporality": 1, "isMonotonic": true, "dataPoints": [{
            "timeUnixNano": now_ns().to_string(), "asDouble": value,
            "attributes": [{"key": "session.id", "value": {"stringValue": session}},
                           {"key": "type", "value": {"stringValue": "user"}}]}]}}]}]}]})
}

fn post_otlp(sidecar: &Sidecar, path: &str, body: &Value) -> u16 {
    let otlp = sidecar.otlp_addr();
    let host = format!("Host: {otlp}");
    support::raw(otlp, "POST", path, &[&host, "Content-Type: application/json"], body.to_string().as_bytes()).0
}

/// Row 7 of issue 19: an active time of 1e306 s, over OTLP or as a hook, was taken (200), became +inf
/// on the root span, was stored as `null`, and `hooktel sessions` then failed for every session.
/// Now it is refused, counted, and the sessions beside it are listed and shown.
#[test]
fn a_session_counter_out_of_range_never_reaches_a_span() {
    let sidecar = Sidecar::start(None, &[]);
    let sessions: Vec<String> = (1..=3).map(session_id).collect();
    whole_session(&sidecar, &sessions[0]);
    let poisoned = &sessions[1];
    assert_eq!(post_hook(&sidecar, &hook(poisoned, "SessionStart"), None), 200);
    assert_eq!(post_otlp(&sidecar, "/v1/metrics", &active_time(poisoned, 2.5)), 200);
    assert_eq!(post_otlp(&sidecar, "/v1/metrics", &active_time(poisoned, 1e306)), 200, "the rest of a body is taken");
    let as_hook = json!({"session_id": poisoned, "hook_event_name": "claude_code.metric",
                         "metric": "hooktel.session.active_time.user_s", "value": 1e306});
    assert_eq!(post_hook(&sidecar, &as_hook, None), 400, "refused as a hook");
    assert_eq!(post_hook(&sidecar, &hook(poisoned, "SessionEnd"), None), 200);
    whole_session(&sidecar, &sessions[2]);

    let data = &sidecar.data_dir;
    wait_until(WAIT, "the three sessions listed as ended", || ended(&sessions_json(data), &sessions));
    let out = hooktel(data, &["sessions"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).unwrap();
    for s in &sessions {
        assert!(listing.contains(s.as_str()), "{s} in\n{listing}");
    }
    let out = hooktel(data, &["show", poisoned, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = shown["spans"].as_array().unwrap().iter().find(|s| s["kind"] == "root").expect("the root");
    assert_eq!(root["attributes"]["hooktel.session.active_time.user_s"], 2.5, "the value in range is kept: {root}");
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="out_of_range"}"#), 2.0);
}

/// Event times of 0 (1970) or `u64::MAX` (the year 2554), from the hook client's stamp or Claude
/// Code's telemetry, were taken: a session "started 1970" or lasted 192,709 days. Now a time before
/// 2020 or over a day ahead is taken as the time the event arrived, and counted.
#[test]
fn implausible_event_times_are_taken_as_their_arrival() {
    let sidecar = Sidecar::start(None, &[]);
    let before = now_ns();
    let sessions: Vec<String> = (11..=13).map(session_id).collect();
    // started "in 1970"
    assert_eq!(post_hook(&sidecar, &hook(&sessions[0], "SessionStart"), Some(1)), 200);
    assert_eq!(post_hook(&sidecar, &hook(&sessions[0], "SessionEnd"), None), 200);
    // ended "in 2554"
    assert_eq!(post_hook(&sidecar, &hook(&sessions[1], "SessionStart"), None), 200);
    assert_eq!(post_hook(&sidecar, &hook(&sessions[1], "SessionEnd"), Some(u64::MAX)), 200);
    // Claude Code's telemetry at time 0 and at u64::MAX
    assert_eq!(post_hook(&sidecar, &hook(&sessions[2], "SessionStart"), None), 200);
    for at in [0, u64::MAX] {
        let mut body = active_time(&sessions[2], 1.0);
        body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"][0]["timeUnixNano"] =
            json!(at.to_string());
        assert_eq!(post_otlp(&sidecar, "/v1/metrics", &body), 200);
    }
    assert_eq!(post_hook(&sidecar, &hook(&sessions[2], "SessionEnd"), None), 200);

    let data = &sidecar.data_dir;
    let mut listed = Vec::new();
    wait_until(WAIT, "the three sessions listed as ended", || {
        listed = sessions_json(data);
        ended(&listed, &sessions)
    });
    let after = now_ns();
    for s in &listed {
        let started = s["started"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_nanosecond() as u64;
        // the view keeps milliseconds
        assert!((before - 1_000_000..=after).contains(&started), "started during the test: {s}");
        assert!(s["duration_ms"].as_u64().unwrap() < (after - before) / 1_000_000 + 1000, "{s}");
    }
    assert_eq!(sidecar.metric(r#"hooktel_bad_values_total{reason="implausible_time"}"#), 4.0);
}

/// Run `f` on the local store of `data_dir`.
fn with_local_db<T>(data_dir: &Path, f: impl FnOnce(&rusqlite::Connection) -> T) -> T {
    let conn = rusqlite::Connection::open(data_dir.join("local.db")).unwrap();
    f(&conn)
}

/// A store that already holds a poisoned row (a root with `null` where a number goes, as the code
/// before wrote an active time of +inf) and a row that cannot be decoded at all: `hooktel sessions`
/// and `show` failed for every session. Now they exit 0, list every session, show the poisoned one
/// without the bad value, and say what they left out.
#[test]
fn a_store_already_holding_bad_rows_still_lists_and_shows_every_session() {
    let data = temp_dir("numbers-store");
    let sessions: Vec<String> = (21..=24).map(session_id).collect();
    {
        let sidecar = Sidecar::builder().data_dir(&data).start();
        for s in &sessions {
            whole_session(&sidecar, s);
        }
        wait_until(WAIT, "the sessions listed as ended", || ended(&sessions_json(&data), &sessions));
    }
    let trace = |s: &str| s.replace('-', "");
    with_local_db(&data, |db| {
        // the root of the second, as the code before wrote it
        let root: Vec<u8> = db
            .query_row("SELECT record FROM spans WHERE trace_id = ?1 AND kind = 'root'", [trace(&sessions[1])], |r| {
                r.get(0)
            })
            .unwrap();
        let mut record: Value = serde_json::from_slice(&root).unwrap();
        record[0]["attrs"].as_array_mut().unwrap().push(json!(["hooktel.session.active_time.user_s", {"F": null}]));
        let written = db
            .execute(
                "UPDATE spans SET record = ?1 WHERE trace_id = ?2 AND kind = 'root'",
                rusqlite::params![serde_json::to_vec(&record).unwrap(), trace(&sessions[1])],
            )
            .unwrap();
        assert_eq!(written, 1);
        // the tool call of the third: damaged beyond reading
        let written = db
            .execute(
                "UPDATE spans SET record = CAST('[{\"start\": null}]' AS BLOB) WHERE trace_id = ?1 AND kind = 'tool'",
                [trace(&sessions[2])],
            )
            .unwrap();
        assert_eq!(written, 1);
    });

    let out = hooktel(&data, &["sessions"]);
    assert!(out.status.success(), "hooktel sessions: {}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).unwrap();
    for s in &sessions {
        assert!(listing.contains(s.as_str()), "{s} in\n{listing}");
    }
    assert!(ended(&sessions_json(&data), &sessions));

    let out = hooktel(&data, &["show", &sessions[1]]);
    assert!(out.status.success(), "hooktel show: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("claude-code session") && tree.contains("execute_tool Bash"), "{tree}");
    assert!(out.stderr.is_empty(), "nothing left out: {}", String::from_utf8_lossy(&out.stderr));

    let out = hooktel(&data, &["show", &sessions[2], "--json"]);
    assert!(out.status.success(), "hooktel show: {}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(shown.contains("claude-code session") && !shown.contains("execute_tool Bash"), "{shown}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("1 stored span cannot be decoded"), "{said}");
}

/// Row 8 of issue 19: with the collector down, one bad record in a spooled batch dropped the whole
/// batch, and with it the spans of every other session in it. Now the other records are delivered
/// (the poisoned root too, without its bad value), the bad one set aside and counted.
#[test]
fn one_bad_record_in_a_spooled_batch_costs_only_itself() {
    let data = temp_dir("numbers-spool");
    let receiver = Receiver::start(Protocol::Http);
    receiver.refuse_next(usize::MAX);
    let sessions: Vec<String> = (31..=35).map(session_id).collect();
    {
        let mut first = Sidecar::builder().exporting_to(&receiver).data_dir(&data).start();
        for s in &sessions {
            whole_session(&first, s);
        }
        wait_until(WAIT, "every session in the export spool", || {
            first.metric("hooktel_sessions_active") == 0.0
                && first.metric(r#"hooktel_spool_items{spool="export"}"#) >= 1.0
                && first.metric(r#"hooktel_ingest_queue_depth"#) == 0.0
        });
        assert_eq!(support::metric_sum(&first.metrics(), "hooktel_spans_dropped_total"), 0.0);
        assert!(first.terminate(WAIT));
    }
    assert!(receiver.spans().is_empty());
    // one batch of every spooled record, as a batch of sessions ending together is
    let conn = rusqlite::Connection::open(data.join("hooktel.db")).unwrap();
    let mut records: Vec<Value> = conn
        .prepare("SELECT batch FROM export_spool ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .flat_map(|b| serde_json::from_slice::<Vec<Value>>(&b.unwrap()).unwrap())
        .collect();
    let spooled = records.len();
    assert!(spooled >= 5 * 3, "a root, a turn and a tool call of each session: {spooled}");
    // the root of one, with the `null` the code before wrote for +inf
    let root = records.iter_mut().find(|r| r["key"] == "Root").unwrap();
    root["attrs"].as_array_mut().unwrap().push(json!(["hooktel.session.active_time.user_s", {"F": null}]));
    // and one record damaged beyond reading
    records.insert(spooled / 2, json!({"trace": "damaged", "start": null}));
    conn.execute("DELETE FROM export_spool", []).unwrap();
    conn.execute(
        "INSERT INTO export_spool (spans, created_at, batch) VALUES (?1, ?2, ?3)",
        rusqlite::params![records.len() as i64, now_ns() as i64, serde_json::to_vec(&records).unwrap()],
    )
    .unwrap();
    drop(conn);

    receiver.refuse_next(0);
    let second = Sidecar::builder().exporting_to(&receiver).data_dir(&data).start();
    let spans = receiver.wait_for(WAIT, "every sound spooled span", |s| s.len() >= spooled);
    wait_until(WAIT, "the spool emptied", || second.metric("hooktel_spool_events") == 0.0);
    assert_eq!(receiver.spans().len(), spooled, "each sound span once");
    for s in &sessions {
        let trace = s.replace('-', "");
        assert!(spans.iter().any(|sp| sp.trace_id == trace && sp.parent.is_empty()), "the root of {s}");
    }
    assert_eq!(second.metric(r#"hooktel_spans_dropped_total{reason="undecodable"}"#), 1.0);
}
