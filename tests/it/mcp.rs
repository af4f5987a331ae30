//! MCP tool calls over the wire, against the real binary: hook events of tools named
//! `mcp__<server>__<tool>` give their `execute_tool` span `gen_ai.tool.type=extension`,
//! `mcp.method.name=tools/call` and `hooktel.mcp.server`, and their calls and durations an
//! `mcp_server` label on /metrics (empty for every other tool); the dashboard's MCP panel answers in
//! a real Prometheus scraping that sidecar, the cost of the model calls that read MCP servers'
//! results (from the session's transcript) among its columns.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::prometheus::{sample_value, Prometheus};
use crate::support::{metric_value, wait_until, Protocol, Receiver, Sidecar};

const WAIT: Duration = Duration::from_secs(30);
const SESSION: &str = "5e551015-3c90-4000-8000-00000000c0de";
const PANEL: &str = "MCP servers: calls, errors, p95 latency, cost (time range)";

fn post(sidecar: &Sidecar, payload: Value) {
    let (status, body) = sidecar.request("POST", "/v1/hooks", payload.to_string().as_bytes());
    assert_eq!(status, 200, "{body}");
}

/// One tool call: PreToolUse, then PostToolUse (or PostToolUseFailure when `fails`), timed by Claude
/// Code at `ms`.
fn tool_call(sidecar: &Sidecar, tool: &str, id: &str, fails: bool, ms: u64) {
    let base = json!({"session_id": SESSION, "cwd": "/w/proj", "prompt_id": "p1", "tool_name": tool,
                      "tool_use_id": id, "tool_input": {"path": "/w/proj/README.md"}});
    let with = |extra: Value| {
        let mut p = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    post(sidecar, with(json!({"hook_event_name": "PreToolUse"})));
    let end = match fails {
        true => json!({"hook_event_name": "PostToolUseFailure", "error": "server closed", "duration_ms": ms}),
        false => json!({"hook_event_name": "PostToolUse", "tool_response": {"ok": true}, "duration_ms": ms}),
    };
    post(sidecar, with(end));
}

/// A transcript's lines as Claude Code writes them: a response asking for `calls` (tool, id), in a
/// line per call, then a result line per call, then the response that reads them, `usage` its usage.
fn transcript_round(asker: &str, calls: &[(&str, &str)], reader: &str, usage: Value) -> String {
    let line = |v: Value| v.to_string() + "\n";
    let mut out = String::new();
    for (tool, id) in calls {
        out += &line(json!({"type": "assistant", "timestamp": "2026-01-01T00:00:01Z", "promptId": "p1",
            "requestId": format!("req_{asker}"), "message": {"id": asker, "model": "claude-sonnet-5-5",
            "content": [{"type": "tool_use", "id": id, "name": tool, "input": {}}], "usage": {"input_tokens": 1}}}));
    }
    for (_, id) in calls {
        out += &line(json!({"type": "user", "timestamp": "2026-01-01T00:00:02Z", "promptId": "p1",
            "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "ok"}]}}));
    }
    out += &line(json!({"type": "assistant", "timestamp": "2026-01-01T00:00:03Z", "promptId": "p1",
        "requestId": format!("req_{reader}"), "message": {"id": reader, "model": "claude-sonnet-5-5",
        "content": [{"type": "text", "text": "read them"}], "usage": usage}}));
    out
}

fn calls(sidecar: &Sidecar, tool: &str, status: &str, server: &str) -> f64 {
    let sample = format!(
        r#"hooktel_tool_calls_total{{agent="claude-code",mcp_server="{server}",project="proj",repo="",status="{status}",tool="{tool}"}}"#
    );
    metric_value(&sidecar.metrics(), &sample).unwrap_or(0.0)
}

#[test]
fn an_mcp_tool_call_names_its_server_on_the_span_and_the_metrics() {
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    post(
        &sidecar,
        json!({"session_id": SESSION, "cwd": "/w/proj", "hook_event_name": "SessionStart", "source": "startup"}),
    );
    post(
        &sidecar,
        json!({"session_id": SESSION, "cwd": "/w/proj", "hook_event_name": "UserPromptSubmit", "prompt_id": "p1"}),
    );
    tool_call(&sidecar, "mcp__files__read", "toolu_mcp_1", false, 40);
    tool_call(&sidecar, "mcp__files__read", "toolu_mcp_2", true, 900);
    tool_call(&sidecar, "Read", "toolu_read_1", false, 5);
    post(&sidecar, json!({"session_id": SESSION, "cwd": "/w/proj", "hook_event_name": "Stop", "prompt_id": "p1"}));
    post(
        &sidecar,
        json!({"session_id": SESSION, "cwd": "/w/proj", "hook_event_name": "SessionEnd", "reason": "other"}),
    );

    let spans = receiver.wait_for(WAIT, "the session's root", |s| s.iter().any(|s| s.parent.is_empty()));
    let tool = |id: &str| spans.iter().find(|s| s.attr("gen_ai.tool.call.id") == Some(id)).unwrap();
    for id in ["toolu_mcp_1", "toolu_mcp_2"] {
        let s = tool(id);
        assert_eq!(s.name, "execute_tool mcp__files__read");
        assert_eq!(s.attr("gen_ai.tool.name"), Some("mcp__files__read"));
        assert_eq!(s.attr("gen_ai.tool.type"), Some("extension"));
        assert_eq!(s.attr("mcp.method.name"), Some("tools/call"));
        assert_eq!(s.attr("hooktel.mcp.server"), Some("files"));
    }
    let read = tool("toolu_read_1");
    assert_eq!(read.attr("gen_ai.tool.type"), Some("function"));
    assert!(read.attrs.keys().all(|k| !k.contains("mcp")), "{:?}", read.attrs);

    wait_until(WAIT, "the three calls counted", || {
        calls(&sidecar, "mcp__files__read", "ok", "files") == 1.0
            && calls(&sidecar, "mcp__files__read", "error", "files") == 1.0
            && calls(&sidecar, "Read", "ok", "") == 1.0
    });
    let text = sidecar.metrics();
    let count = |server: &str, tool: &str| {
        metric_value(&text, &format!(r#"hooktel_tool_duration_seconds_count{{mcp_server="{server}",tool="{tool}"}}"#))
    };
    assert_eq!(count("files", "mcp__files__read"), Some(2.0), "{text}");
    assert_eq!(count("", "Read"), Some(1.0));
    let sum = metric_value(&text, r#"hooktel_tool_duration_seconds_sum{mcp_server="files",tool="mcp__files__read"}"#);
    assert!(sum.is_some_and(|s| (s - 0.94).abs() < 1e-9), "Claude Code's timings, 40 ms and 900 ms: {sum:?}");
}

/// The dashboard panel's queries, with job `hooktel`, every other variable "All" and a 1 h range.
fn panel_queries() -> Vec<(String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboards/hooktel-overview.json");
    let d: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    let panel = d["panels"].as_array().unwrap().iter().find(|p| p["title"] == PANEL).expect("the MCP panel");
    let targets = panel["targets"].as_array().unwrap();
    targets
        .iter()
        .map(|t| {
            let expr = t["expr"].as_str().unwrap();
            let expr = expr
                .replace("$job", "hooktel")
                .replace("$instance", ".*")
                .replace("$project", ".*")
                .replace("$agent", ".*");
            (t["refId"].as_str().unwrap().to_owned(), expr.replace("$__range", "1h"))
        })
        .collect()
}

#[test]
fn the_dashboards_mcp_panel_answers_in_a_real_prometheus() {
    let sidecar = Sidecar::start(None, &[]);
    let prom = Prometheus::start(&[("hooktel", sidecar.addr)], None, &[]);
    let dir = crate::support::temp_dir("mcp-cost");
    let transcript = dir.join("session.jsonl");
    let read_transcript = || {
        let p = json!({"session_id": SESSION, "cwd": "/w/proj", "hook_event_name": "Notification",
                       "message": "read", "transcript_path": transcript});
        post(&sidecar, p);
    };
    let scraped = |expr: &str, want: f64| {
        wait_until(WAIT, &format!("prometheus to scrape {expr} = {want}"), || prom.value(expr) == Some(want));
    };
    post(
        &sidecar,
        json!({"session_id": SESSION, "cwd": "/w/proj", "hook_event_name": "SessionStart", "source": "startup"}),
    );
    // a first round creates the series (a new series' first count is no increase), a second moves them
    tool_call(&sidecar, "mcp__files__read", "toolu_1", false, 40);
    tool_call(&sidecar, "mcp__files__read", "toolu_2", true, 900);
    tool_call(&sidecar, "mcp__db__query", "toolu_3", false, 200);
    tool_call(&sidecar, "Read", "toolu_4", false, 5);
    // the transcript of those calls: the response that read files' and db's results costs something
    let usage = json!({"input_tokens": 1000, "output_tokens": 100});
    let calls_1 = [("mcp__files__read", "toolu_1"), ("mcp__db__query", "toolu_3")];
    fs::write(&transcript, transcript_round("msg_a", &calls_1, "msg_b", usage.clone())).unwrap();
    read_transcript();
    scraped(r#"sum(hooktel_tool_calls_total{job="hooktel"})"#, 4.0);
    wait_until(WAIT, "prometheus to scrape the MCP cost", || {
        prom.value(r#"count(hooktel_mcp_cost_usd_total{job="hooktel"})"#) == Some(2.0)
    });
    let share = |s: &str| {
        let sample = format!(r#"hooktel_mcp_cost_usd_total{{agent="claude-code",mcp_server="{s}"}}"#);
        metric_value(&sidecar.metrics(), &sample).unwrap_or(0.0)
    };
    let first_round_share = share("files");
    assert!(first_round_share > 0.0 && share("db") == first_round_share, "one result each of one response");
    tool_call(&sidecar, "mcp__files__read", "toolu_5", true, 1500);
    tool_call(&sidecar, "mcp__files__read", "toolu_6", false, 60);
    tool_call(&sidecar, "mcp__db__query", "toolu_7", false, 250);
    tool_call(&sidecar, "Read", "toolu_8", false, 5);
    // the second round's reading response: two results of files, one of db, one of Read
    let calls_2 = [
        ("mcp__files__read", "toolu_5"),
        ("mcp__files__read", "toolu_6"),
        ("mcp__db__query", "toolu_7"),
        ("Read", "toolu_8"),
    ];
    let mut text = fs::read_to_string(&transcript).unwrap();
    text += &transcript_round("msg_c", &calls_2, "msg_d", usage);
    fs::write(&transcript, text).unwrap();
    read_transcript();
    scraped(r#"sum(hooktel_tool_calls_total{job="hooktel"})"#, 8.0);
    // each reading response cost the same, c: files had half of the first (c/2, as db) and half of
    // the second (c/2), db a quarter of the second (c/4)
    let half = first_round_share;
    wait_until(WAIT, "prometheus to scrape both rounds' MCP cost", || {
        let server =
            |s: &str| prom.value(&format!(r#"sum(hooktel_mcp_cost_usd_total{{job="hooktel",mcp_server="{s}"}})"#));
        server("files").is_some_and(|v| (v - 2.0 * half).abs() < 1e-12)
            && server("db").is_some_and(|v| (v - 1.5 * half).abs() < 1e-12)
    });

    let queries = panel_queries();
    assert_eq!(queries.len(), 4, "calls, errors, latency, cost");
    let by_server = |expr: &str| -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = prom
            .query(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .iter()
            .map(|s| (s["metric"]["mcp_server"].as_str().unwrap_or("").to_owned(), sample_value(s).unwrap()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    let (calls, errors, latency) = (by_server(&queries[0].1), by_server(&queries[1].1), by_server(&queries[2].1));
    println!("calls {calls:?}\nerrors {errors:?}\np95 {latency:?}");
    // the second round only (increase extrapolates, so within a factor): files 2 calls, db 1; no `Read`
    let servers = |v: &[(String, f64)]| v.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>();
    for v in [&calls, &errors, &latency] {
        assert_eq!(servers(v), ["db", "files"], "every MCP server, and only those");
    }
    assert!(calls[1].1 > calls[0].1 && calls[0].1 > 0.0, "files had more calls than db: {calls:?}");
    assert_eq!(errors[0].1, 0.0, "db failed no call");
    assert!(errors[1].1 > 0.0, "files failed a call");
    // p95 of files' second-round durations (60 ms, 1.5 s) lies in the bucket holding 1.5 s; db's under 0.5 s
    assert!(latency[1].1 > 1.0 && latency[1].1 <= 2.5, "files p95 {latency:?}");
    assert!(latency[0].1 > 0.1 && latency[0].1 <= 0.5, "db p95 {latency:?}");
    // the cost column: the second round's growth, files' half of its reading response's cost, db's
    // quarter (increase extrapolates each series by its own slope, so within a factor)
    let cost = by_server(&queries[3].1);
    println!("cost {cost:?}");
    assert_eq!(servers(&cost), ["db", "files"], "every MCP server read, and only those");
    assert!(cost[1].1 > cost[0].1 && cost[0].1 > 0.0, "files cost more than db: {cost:?}");
}
