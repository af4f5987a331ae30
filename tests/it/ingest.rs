//! Ingest over the wire, against the real `hooktel serve`: every documented Claude Code 2.1.332 hook
//! payload is accepted and lands in one well-formed trace; unknown events are kept; bad input gets a
//! counted 4xx and does not hurt the sidecar; huge tool outputs are cut; hundreds of interleaved
//! sessions stay apart; resumed and non-UUID sessions keep one stable trace; duplicate and
//! out-of-order deliveries still yield exactly one span with the right times.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support;
use crate::support::{assert_tree, Protocol, Sidecar, Span};
use serde_json::{json, Value};

/// How long any export may take to show up at the receiver.
const EXPORT_WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// helpers

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// The hex trace id of a UUID session id (the UUID without dashes).
fn trace_of(session_uuid: &str) -> String {
    session_uuid.replace('-', "")
}

/// One raw HTTP/1.1 request with extra headers; returns (status, body). Write errors are ignored
/// (the server may answer and close before a refused body is fully sent), so the reply is still read.
fn raw_request(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body));
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status = resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// POST a hook payload to `/v1/hooks`, stamped with its firing time (`x-hooktel-received-at`) if given.
fn post_hook(addr: SocketAddr, body: &[u8], at: Option<u64>) -> (u16, String) {
    let stamp = at.map(|t| format!("x-hooktel-received-at: {t}\r\n")).unwrap_or_default();
    let head = format!(
        "POST /v1/hooks HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{stamp}Connection: close\r\n\r\n",
        body.len()
    );
    raw_request(addr, &head, body)
}

/// POST a payload that must be accepted: 200 with an empty body.
fn send_ok(addr: SocketAddr, payload: &Value, at: Option<u64>) {
    let (status, body) = post_hook(addr, payload.to_string().as_bytes(), at);
    assert_eq!(status, 200, "payload refused ({body}): {payload}");
    assert!(body.is_empty(), "accepting reply must be empty, got {body:?}");
}

fn by_name<'a>(spans: &'a [Span], trace: &str, name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.trace_id == trace && s.name == name).collect()
}

fn in_trace<'a>(spans: &'a [Span], trace: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.trace_id == trace).collect()
}

fn tool_span<'a>(spans: &'a [Span], trace: &str, call_id: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.trace_id == trace && s.attr("gen_ai.tool.call.id") == Some(call_id)).collect()
}

fn has_root(spans: &[Span], trace: &str) -> bool {
    spans.iter().any(|s| s.trace_id == trace && s.parent.is_empty())
}

fn root_of<'a>(spans: &'a [Span], trace: &str) -> &'a Span {
    spans.iter().find(|s| s.trace_id == trace && s.parent.is_empty()).expect("a root")
}

/// A minimal hook payload of `session`.
fn payload(session: &str, event: &str, extra: Value) -> Value {
    let mut p = json!({
        "session_id": session,
        "transcript_path": format!("/tmp/hooktel-tests/{session}.jsonl"),
        "cwd": "/home/dev/proj",
        "hook_event_name": event,
    });
    if let (Value::Object(p), Value::Object(extra)) = (&mut p, extra) {
        p.extend(extra);
    }
    p
}

/// A complete small session: start, one turn with the given tool calls (Bash), stop, end.
fn small_session(session: &str, prompt: &str, tools: &[&str]) -> Vec<Value> {
    let mut evs = vec![
        payload(session, "SessionStart", json!({"source": "startup", "model": "claude-sonnet-5-5"})),
        payload(session, "UserPromptSubmit", json!({"prompt_id": prompt, "prompt": "do it"})),
    ];
    for t in tools {
        evs.push(tool_event(session, prompt, "PreToolUse", t));
        evs.push(tool_event(session, prompt, "PostToolUse", t));
    }
    evs.push(payload(session, "Stop", json!({"prompt_id": prompt, "stop_hook_active": false})));
    evs.push(payload(session, "SessionEnd", json!({"prompt_id": prompt, "reason": "other"})));
    evs
}

fn tool_event(session: &str, prompt: &str, event: &str, call_id: &str) -> Value {
    let mut extra = json!({
        "prompt_id": prompt,
        "tool_name": "Bash",
        "tool_input": {"command": "ls", "description": "List"},
        "tool_use_id": call_id,
    });
    if event == "PostToolUse" {
        extra["tool_response"] = json!({"stdout": "a\nb", "stderr": "", "interrupted": false});
    }
    payload(session, event, extra)
}

// ---------------------------------------------------------------------------------------------
// every documented payload

const DOC_SESSION: &str = "3f6c2a8e-9b1d-4e7a-8c5f-2d4b6a1e9c07";

/// The documented fixtures (file stems) in a plausible firing order for one session.
const DOC_ORDER: &[&str] = &[
    "Setup",
    "SessionStart",
    "InstructionsLoaded",
    "UserPromptExpansion",
    "UserPromptSubmit",
    "PreSkillShellCommand",
    "PreToolUse.Agent",
    "SubagentStart",
    "PreToolUse.subagent",
    "PostToolUse.subagent",
    "SubagentStop",
    "PostToolUse.Agent",
    "PreToolUse",
    "PostToolUse",
    "PostToolBatch",
    "PermissionRequest",
    "Notification",
    "PermissionDenied",
    "PostToolUseFailure",
    "PreToolUse.mcp",
    "Elicitation",
    "ElicitationResult",
    "ConfigChange",
    "CwdChanged",
    "DirectoryAdded",
    "FileChanged",
    "PreModelSwitch",
    "PostModelSwitch",
    "PreCompact",
    "PostCompact",
    "TaskCreated",
    "TaskCompleted",
    "TeammateIdle",
    "WorktreeCreate",
    "WorktreeRemove",
    "MessageDisplay",
    "Stop",
    "StopFailure",
    "SessionStart.resume",
    "SessionEnd",
];

/// Events that open or close a span; every other event must become a span event.
const SPAN_EVENTS: &[&str] = &[
    "SessionStart",
    "SessionEnd",
    "UserPromptSubmit",
    "Stop",
    "StopFailure",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionDenied",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
    "TaskCreated",
    "TaskCompleted",
];

fn documented_fixtures() -> BTreeMap<String, Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hooks/documented");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| (p.file_stem().unwrap().to_str().unwrap().to_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn every_documented_payload_is_accepted_counted_and_traced() {
    let fixtures = documented_fixtures();
    let listed: HashSet<&str> = DOC_ORDER.iter().copied().collect();
    let present: HashSet<&str> = fixtures.keys().map(String::as_str).collect();
    assert_eq!(listed, present, "DOC_ORDER must name every documented fixture exactly once");
    assert_eq!(listed.len(), DOC_ORDER.len());

    let mut expected_counts: HashMap<String, u32> = HashMap::new();
    for bytes in fixtures.values() {
        let v: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(v["session_id"], DOC_SESSION);
        *expected_counts.entry(v["hook_event_name"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(expected_counts.len(), 34, "34 hook events in Claude Code 2.1.332");

    let (receiver, sidecar) = Sidecar::builder().start_exporting(Protocol::Http);
    for stem in DOC_ORDER {
        let (status, body) = sidecar.request("POST", "/v1/hooks", &fixtures[*stem]);
        assert_eq!(status, 200, "{stem} refused: {body}");
        assert!(body.is_empty(), "{stem}: reply body must be empty, got {body:?}");
    }
    let metrics = sidecar.metrics();
    for (event, n) in &expected_counts {
        let sample = format!("hooktel_hook_events_total{{event=\"{event}\"}}");
        assert_eq!(support::metric_value(&metrics, &sample).unwrap_or(0.0), f64::from(*n), "{sample}");
    }

    let trace = trace_of(DOC_SESSION);
    // root, turn, subagent, compaction, a task, and six tool calls: Agent, Grep, Bash ls, Bash denied, Bash
    // failed, MCP
    let spans = receiver
        .wait_for(EXPORT_WAIT, "the documented session", |s| has_root(s, &trace) && in_trace(s, &trace).len() >= 11);
    assert_tree(&spans, &trace);
    let mine = in_trace(&spans, &trace);
    assert_eq!(mine.len(), spans.len(), "only this session's trace was exported");
    let names: Vec<&str> = mine.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(mine.len(), 11, "spans: {names:?}");
    // the task, from its creation to its completion by the teammate this session is
    let task = by_name(&spans, &trace, "task Add regression test for exp boundary");
    assert_eq!(task.len(), 1, "{names:?}");
    assert_eq!(
        (task[0].attr("hooktel.task.id"), task[0].attr("hooktel.team.name")),
        (Some("3"), Some("acme-api-3f6c2a8e"))
    );
    assert!(task[0].end_ns > task[0].start_ns && task[0].attr("hooktel.incomplete").is_none());
    for s in &mine {
        assert_eq!(s.attr("session.id"), Some(DOC_SESSION), "{}", s.name);
        assert_eq!(s.attr("gen_ai.conversation.id"), Some(DOC_SESSION), "{}", s.name);
    }
    let root = root_of(&spans, &trace);
    assert_eq!(root.name, "claude-code session");
    assert_eq!(root.attr("hooktel.session.end_reason"), Some("prompt_input_exit"));
    let turns = by_name(&spans, &trace, "invoke_agent claude-code");
    assert_eq!(turns.len(), 1);
    assert_eq!(turns[0].parent, root.span_id);
    assert_eq!(turns[0].attr("hooktel.turn.outcome"), Some("stop"));
    assert_eq!(by_name(&spans, &trace, "invoke_agent Explore").len(), 1);
    assert_eq!(by_name(&spans, &trace, "compaction").len(), 1);

    // every event that neither opens nor closes a span is a span event somewhere in the trace
    let events: HashSet<&str> = mine.iter().flat_map(|s| s.events.iter().map(|(n, _)| n.as_str())).collect();
    let mut missing: Vec<&str> = expected_counts
        .keys()
        .map(String::as_str)
        .filter(|e| !SPAN_EVENTS.contains(e) && !events.contains(e))
        .collect();
    missing.sort_unstable();
    assert!(missing.is_empty(), "events not found as span events: {missing:?} (have {events:?})");
    for e in ["Notification", "ConfigChange", "CwdChanged", "FileChanged", "Elicitation"] {
        assert!(events.contains(e), "{e} is a span event");
    }
    assert!(events.contains("WorktreeCreate"), "WorktreeCreate is a span event");
    // a skill's shell command: on the turn, with its skill, the command redacted
    let turn_events: Vec<_> = turns[0].events.iter().filter(|(n, _)| n == "PreSkillShellCommand").collect();
    assert_eq!(turn_events.len(), 1, "{:?}", turns[0].events);
    let skill = &turn_events[0].1;
    assert_eq!(skill.get("hooktel.hook.command_name").map(String::as_str), Some("release-notes"));
    let command = skill.get("hooktel.tool.input.command").expect("the command, summarised");
    assert!(command.contains("Bearer ***") && !command.contains("ghp_"), "{command}");

    // the MCP call names its server
    let mcp = tool_span(&spans, &trace, "toolu_01Vs2Hd8Kq5Mx1Bn7Tc4Lw9R");
    assert_eq!(mcp.len(), 1);
    assert_eq!(mcp[0].name, "execute_tool mcp__github__create_pull_request");
    assert_eq!(mcp[0].attr("hooktel.mcp.server"), Some("github"));
    // it never got its PostToolUse: closed with the session and marked
    assert_eq!(mcp[0].attr("hooktel.incomplete"), Some("true"));

    // the denied call: status denied, span status ERROR
    let denied = tool_span(&spans, &trace, "toolu_01Bq9Wm3Ld6Xs2Kf8Nv5Hc1T");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].name, "execute_tool Bash");
    assert_eq!(denied[0].attr("hooktel.tool.status"), Some("denied"));
    assert_eq!(denied[0].status, 2, "a denied call is an error span");

    let failed = tool_span(&spans, &trace, "toolu_01Rn6Hs2Kw8Dy4Ce1Vb9Lm5P");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attr("hooktel.tool.status"), Some("error"));
    assert_eq!(failed[0].status, 2);

    let ok = tool_span(&spans, &trace, "toolu_01Fz2Gq8Xb4Ne6Ws1Ry7Kd3M");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].attr("hooktel.tool.status"), Some("ok"));
    assert_ne!(ok[0].status, 2);
}

// ---------------------------------------------------------------------------------------------
// unknown events

#[test]
fn unknown_events_are_kept_counted_and_carry_their_fields() {
    let session = "7b1e0c52-4d3a-4f6e-9a21-0c8d5e3f7a10";
    let trace = trace_of(session);
    let (receiver, sidecar) = Sidecar::builder().start_exporting(Protocol::Http);
    send_ok(sidecar.addr, &payload(session, "SessionStart", json!({"source": "startup"})), None);
    send_ok(
        sidecar.addr,
        &payload(
            session,
            "TokenUsageUpdated",
            json!({"input_tokens": 1234, "model": "claude-opus-5-5", "cached": true, "ratio": 0.5,
                   "usage": {"nested": 1}}),
        ),
        None,
    );
    // the name that fell through a categoriser in the story this guards against
    send_ok(sidecar.addr, &payload(session, "token_usage_updated", json!({"output_tokens": 77})), None);
    send_ok(sidecar.addr, &payload(session, "SessionEnd", json!({"reason": "other"})), None);

    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="TokenUsageUpdated"}"#), 1.0);
    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="token_usage_updated"}"#), 1.0);
    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="other"}"#), 0.0, "not folded into other");

    let spans = receiver.wait_for(EXPORT_WAIT, "the session root", |s| has_root(s, &trace));
    assert_tree(&spans, &trace);
    let events: Vec<&(String, HashMap<String, String>)> =
        in_trace(&spans, &trace).into_iter().flat_map(|s| s.events.iter()).collect();
    let find = |name: &str| {
        events.iter().find(|(n, _)| n == name).map(|(_, a)| a).unwrap_or_else(|| {
            panic!("no span event {name}; have {:?}", events.iter().map(|e| &e.0).collect::<Vec<_>>())
        })
    };
    let usage = find("TokenUsageUpdated");
    assert_eq!(usage.get("hooktel.hook.input_tokens").map(String::as_str), Some("1234"));
    assert_eq!(usage.get("hooktel.hook.model").map(String::as_str), Some("claude-opus-5-5"));
    assert_eq!(usage.get("hooktel.hook.cached").map(String::as_str), Some("true"));
    assert_eq!(usage.get("hooktel.hook.ratio").map(String::as_str), Some("0.5"));
    let lower = find("token_usage_updated");
    assert_eq!(lower.get("hooktel.hook.output_tokens").map(String::as_str), Some("77"));
}

// ---------------------------------------------------------------------------------------------
// bad input

#[test]
fn bad_input_gets_a_counted_4xx_and_the_sidecar_keeps_serving() {
    let (receiver, sidecar) = Sidecar::builder().env("HOOKTEL_MAX_BODY_BYTES", "4096").start_exporting(Protocol::Http);
    let rejected = |reason: &str| sidecar.metric(&format!("hooktel_ingest_rejected_total{{reason=\"{reason}\"}}"));

    for (body, reason_text) in [
        (&br#"{"session_id": "#[..], "JSON"),
        (b"not json at all", "JSON"),
        (b"", "JSON"),
        (b"{\"session_id\": \"a\", \"hook_event_name\": \"Stop\"", "JSON"),
    ] {
        let (status, reply) = sidecar.request("POST", "/v1/hooks", body);
        assert_eq!(status, 400, "malformed {:?}", String::from_utf8_lossy(body));
        assert!(reply.contains(reason_text), "reason in the body, got {reply:?}");
    }
    assert_eq!(rejected("malformed_json"), 4.0);

    for body in [&b"[1, 2, 3]"[..], b"\"a string\"", b"42", b"null"] {
        let (status, reply) = sidecar.request("POST", "/v1/hooks", body);
        assert_eq!(status, 400, "not an object: {:?}", String::from_utf8_lossy(body));
        assert!(reply.contains("object"), "reason in the body, got {reply:?}");
    }
    assert_eq!(rejected("not_an_object"), 4.0);

    for (body, field) in [
        (json!({"hook_event_name": "Stop"}), "session_id"),
        (json!({"session_id": "0a4e9d1c-2b3f-4c5d-8e6f-7a8b9c0d1e2f"}), "hook_event_name"),
        (json!({"session_id": 17, "hook_event_name": "Stop"}), "session_id"),
        (json!({"session_id": "0a4e9d1c-2b3f-4c5d-8e6f-7a8b9c0d1e2f", "hook_event_name": ["Stop"]}), "hook_event_name"),
    ] {
        let (status, reply) = sidecar.request("POST", "/v1/hooks", body.to_string().as_bytes());
        assert_eq!(status, 400, "missing field: {body}");
        assert!(reply.contains(field), "the body names the missing field {field}, got {reply:?}");
    }
    assert_eq!(rejected("missing_field"), 4.0);

    // over the body limit, declared with Content-Length
    let mut big = payload("0a4e9d1c-2b3f-4c5d-8e6f-7a8b9c0d1e2f", "Notification", json!({}));
    big["padding"] = Value::String("p".repeat(8192));
    let (status, reply) = post_hook(sidecar.addr, big.to_string().as_bytes(), None);
    assert_eq!(status, 413, "oversized body: {reply}");
    assert!(!reply.is_empty(), "413 says why");
    assert_eq!(rejected("body_too_large"), 1.0);
    // ... and sent chunked, with no length declared up front
    let body = big.to_string();
    let mut chunked = Vec::new();
    for chunk in body.as_bytes().chunks(1000) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "POST /v1/hooks HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        sidecar.addr
    );
    let (status, reply) = raw_request(sidecar.addr, &head, &chunked);
    assert_eq!(status, 413, "oversized chunked body: {reply}");
    assert_eq!(rejected("body_too_large"), 2.0);

    // routes
    assert_eq!(sidecar.request("GET", "/healthz", b"").0, 200);
    assert_eq!(sidecar.request("GET", "/no/such/path", b"").0, 404);
    assert_eq!(sidecar.request("POST", "/v1/hook", b"{}").0, 404);
    assert_eq!(sidecar.request("GET", "/v1/hooks", b"").0, 405);
    assert_eq!(sidecar.request("PUT", "/v1/hooks", b"{}").0, 405);

    // none of that was counted as an event
    let metrics = sidecar.metrics();
    assert!(
        !metrics.lines().any(|l| l.starts_with("hooktel_hook_events_total{")),
        "refused requests counted as events:\n{metrics}"
    );

    // the sidecar still takes good input, including a body just under the limit
    let session = "0a4e9d1c-2b3f-4c5d-8e6f-7a8b9c0d1e2f";
    let trace = trace_of(session);
    let mut evs = small_session(session, "p-1", &["toolu_bad_input_1"]);
    let mut near_limit = payload(session, "Notification", json!({"prompt_id": "p-1", "notification_type": "idle"}));
    let pad = 4096 - near_limit.to_string().len() - r#","padding":"""#.len() - 1;
    near_limit["padding"] = Value::String("p".repeat(pad));
    assert!(near_limit.to_string().len() <= 4096 && near_limit.to_string().len() > 4000);
    evs.insert(2, near_limit);
    for ev in &evs {
        send_ok(sidecar.addr, ev, None);
    }
    let spans = receiver.wait_for(EXPORT_WAIT, "the good session after bad input", |s| has_root(s, &trace));
    assert_tree(&spans, &trace);
    assert_eq!(in_trace(&spans, &trace).len(), 3, "root, turn, tool");
    assert!(spans.iter().flat_map(|s| &s.events).any(|(n, _)| n == "Notification"));
    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="Notification"}"#), 1.0);
    assert_eq!(sidecar.request("GET", "/healthz", b"").0, 200);
}

// ---------------------------------------------------------------------------------------------
// huge tool outputs

#[test]
fn huge_tool_responses_are_cut_and_sized() {
    let session = "c0ffee00-1234-4abc-8def-0123456789ab";
    let trace = trace_of(session);
    let (receiver, sidecar) = Sidecar::builder().start_exporting(Protocol::Http);
    let huge = "x".repeat(2_000_000);
    let mut evs = vec![
        payload(session, "SessionStart", json!({"source": "startup"})),
        payload(session, "UserPromptSubmit", json!({"prompt_id": "p-huge"})),
        tool_event(session, "p-huge", "PreToolUse", "toolu_huge_hook"),
    ];
    let mut post = tool_event(session, "p-huge", "PostToolUse", "toolu_huge_hook");
    post["tool_response"] = json!({"stdout": huge, "stderr": "", "interrupted": false});
    post["duration_ms"] = json!(12);
    evs.push(post);
    // through the command hook, which cuts before sending
    for ev in &evs {
        let out = sidecar.hook(ev.to_string().as_bytes());
        assert!(out.status.success(), "hook exit {:?}", out.status);
        assert!(out.stdout.is_empty(), "hook wrote on stdout");
        assert!(out.stderr.is_empty(), "hook did not deliver: {}", String::from_utf8_lossy(&out.stderr));
    }
    // straight to /v1/hooks (an http hook), which cuts on arrival
    send_ok(sidecar.addr, &tool_event(session, "p-huge", "PreToolUse", "toolu_huge_http"), None);
    let mut post = tool_event(session, "p-huge", "PostToolUse", "toolu_huge_http");
    post["tool_response"] = json!({"stdout": huge, "stderr": "", "interrupted": false});
    send_ok(sidecar.addr, &post, None);

    let spans = receiver.wait_for(EXPORT_WAIT, "both tool spans", |s| {
        ["toolu_huge_hook", "toolu_huge_http"].iter().all(|id| !tool_span(s, &trace, id).is_empty())
    });
    for id in ["toolu_huge_hook", "toolu_huge_http"] {
        let tool = tool_span(&spans, &trace, id);
        assert_eq!(tool.len(), 1, "{id}");
        let tool = tool[0];
        assert_eq!(tool.name, "execute_tool Bash");
        let bytes: u64 = tool.attr("hooktel.tool.response_bytes").and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(bytes >= 2_000_000, "{id}: hooktel.tool.response_bytes = {bytes}");
        assert_eq!(tool.attr("hooktel.tool.status"), Some("ok"), "{id}");
        assert_ne!(tool.status, 2, "{id}");
        assert!(tool.attr("hooktel.incomplete").is_none(), "{id}");
        assert!(tool.start_ns > 0 && tool.start_ns <= tool.end_ns, "{id}");
        let size: usize = tool.attrs.values().map(String::len).sum::<usize>()
            + tool.events.iter().flat_map(|(_, a)| a.values()).map(String::len).sum::<usize>();
        assert!(size < 64 * 1024, "{id}: {size} bytes of attributes on the span");
    }
    assert_eq!(by_name(&spans, &trace, "execute_tool Bash").len(), 2);
}

/// A `Write` of a large file carries the whole file in `tool_input.content`, on PreToolUse and again
/// on PostToolUse. Only a redacted summary of tool inputs is ever exported by default, so the call
/// must still show up as a span. Fails as of this writing: the hook client cuts `tool_response` but
/// not `tool_input`, the sidecar refuses both bodies with 413 (over the default 8 MiB limit), and
/// the tool call vanishes from the trace.
#[test]
fn huge_tool_input_through_the_hook_still_yields_a_tool_span() {
    let session = "c0ffee00-1234-4abc-8def-0123456789ac";
    let trace = trace_of(session);
    let (receiver, sidecar) = Sidecar::builder().start_exporting(Protocol::Http);
    let content = "y".repeat(9 * 1024 * 1024);
    let write = |event: &str| {
        let mut ev = tool_event(session, "p-write", event, "toolu_big_write");
        ev["tool_name"] = json!("Write");
        ev["tool_input"] = json!({"file_path": "/home/dev/proj/data.csv", "content": content});
        if event == "PostToolUse" {
            ev["tool_response"] = json!({"type": "create", "filePath": "/home/dev/proj/data.csv", "content": content});
            ev["duration_ms"] = json!(30);
        }
        ev
    };
    let evs = [
        payload(session, "SessionStart", json!({"source": "startup"})),
        payload(session, "UserPromptSubmit", json!({"prompt_id": "p-write"})),
        write("PreToolUse"),
        write("PostToolUse"),
        payload(session, "Stop", json!({"prompt_id": "p-write"})),
        payload(session, "SessionEnd", json!({"reason": "other"})),
    ];
    for ev in &evs {
        let out = sidecar.hook(ev.to_string().as_bytes());
        assert!(out.status.success(), "hook exit {:?}", out.status);
        assert!(out.stdout.is_empty(), "hook wrote on stdout");
    }
    let spans = receiver.wait_for(EXPORT_WAIT, "the session root", |s| has_root(s, &trace));
    assert_tree(&spans, &trace);
    let refused = sidecar.metric(r#"hooktel_ingest_rejected_total{reason="body_too_large"}"#);
    let tool = tool_span(&spans, &trace, "toolu_big_write");
    assert_eq!(tool.len(), 1, "the Write call is in the trace ({refused} bodies refused as too large)");
    assert_eq!(tool[0].attr("hooktel.tool.input.file_path"), Some("/home/dev/proj/data.csv"));
    assert_eq!(tool[0].attr("hooktel.tool.status"), Some("ok"));
    assert!(tool[0].attr("hooktel.incomplete").is_none());
}

// ---------------------------------------------------------------------------------------------
// many sessions at once

#[test]
fn hundreds_of_interleaved_sessions_stay_apart() {
    const SESSIONS: usize = 200;
    const THREADS: usize = 8;
    let (receiver, sidecar) = Sidecar::builder().start_exporting(Protocol::Grpc);
    let sessions: Vec<String> = (0..SESSIONS).map(|i| format!("5e550000-0000-4000-8000-{i:012x}")).collect();
    let scripts: Vec<Vec<Value>> = sessions
        .iter()
        .enumerate()
        .map(|(i, sid)| small_session(sid, &format!("prompt-{i}"), &[&format!("toolu_{i}_a"), &format!("toolu_{i}_b")]))
        .collect();
    let steps = scripts[0].len();
    assert_eq!(steps, 8);

    let addr = sidecar.addr;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let scripts = &scripts;
            scope.spawn(move || {
                // round robin over this thread's sessions: step k of each, then step k + 1
                let mut cursors: Vec<_> = (t..SESSIONS).step_by(THREADS).map(|i| (i, scripts[i].iter())).collect();
                for step in 0..steps {
                    for (i, events) in cursors.iter_mut() {
                        let body = events.next().expect("every script has `steps` events").to_string();
                        let (status, reply) = support::http(addr, "POST", "/v1/hooks", body.as_bytes());
                        assert_eq!(status, 200, "session {i} step {step}: {reply}");
                    }
                }
            });
        }
    });
    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="PreToolUse"}"#), (2 * SESSIONS) as f64);

    let traces: Vec<String> = sessions.iter().map(|s| trace_of(s)).collect();
    let spans = receiver.wait_for(Duration::from_secs(90), "every session's root", |s| {
        s.iter().filter(|s| s.parent.is_empty()).count() >= SESSIONS
    });
    // every span of a session is exported before its root
    assert_eq!(spans.len(), 4 * SESSIONS, "root, turn and two tools per session, nothing else");
    let all_ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(all_ids.len(), spans.len(), "span ids are unique across sessions");
    let known: HashSet<&str> = traces.iter().map(String::as_str).collect();
    for s in &spans {
        assert!(known.contains(s.trace_id.as_str()), "span {} in an unknown trace {}", s.name, s.trace_id);
    }
    for (i, (sid, trace)) in sessions.iter().zip(&traces).enumerate() {
        assert_tree(&spans, trace);
        let mine = in_trace(&spans, trace);
        assert_eq!(mine.len(), 4, "session {i}: {:?}", mine.iter().map(|s| &s.name).collect::<Vec<_>>());
        for s in &mine {
            assert_eq!(s.attr("session.id"), Some(sid.as_str()), "span {} of session {i} in the wrong trace", s.name);
        }
        let root = root_of(&spans, trace);
        let turn = by_name(&spans, trace, "invoke_agent claude-code");
        assert_eq!(turn.len(), 1, "session {i}");
        assert_eq!(turn[0].parent, root.span_id);
        assert_eq!(turn[0].attr("hooktel.prompt.id"), Some(format!("prompt-{i}").as_str()));
        let tools = by_name(&spans, trace, "execute_tool Bash");
        assert_eq!(tools.len(), 2, "session {i}");
        let mut calls: Vec<&str> = tools.iter().map(|t| t.attr("gen_ai.tool.call.id").unwrap()).collect();
        calls.sort_unstable();
        assert_eq!(calls, [format!("toolu_{i}_a"), format!("toolu_{i}_b")]);
        for t in tools {
            assert_eq!(t.parent, turn[0].span_id, "session {i}: tool under its turn");
            assert_eq!(t.attr("hooktel.tool.status"), Some("ok"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// resumed sessions and non-UUID ids

#[test]
fn a_resumed_session_stays_one_trace_with_one_root() {
    let (receiver, sidecar) = Sidecar::builder().start_exporting(Protocol::Http);
    let resumed = |sid: &str| {
        let mut evs = small_session(sid, "p-second", &["toolu_second"]);
        evs[0]["source"] = json!("resume");
        evs
    };

    // back to back: the second run comes right after the first one's SessionEnd
    let a = "a11ce000-0000-4000-8000-000000000001";
    for ev in small_session(a, "p-first", &["toolu_first"]).iter().chain(&resumed(a)) {
        send_ok(sidecar.addr, ev, None);
    }
    // after the first run was exported in full
    let b = "b0b00000-0000-4000-8000-000000000002";
    let tb = trace_of(b);
    for ev in small_session(b, "p-first", &["toolu_first"]) {
        send_ok(sidecar.addr, &ev, None);
    }
    receiver.wait_for(EXPORT_WAIT, "the first run of b", |s| has_root(s, &tb));
    for ev in resumed(b) {
        send_ok(sidecar.addr, &ev, None);
    }

    for sid in [a, b] {
        let trace = trace_of(sid);
        let spans = receiver.wait_for(EXPORT_WAIT, "the resumed segment", |s| {
            has_root(s, &trace) && !by_name(s, &trace, "claude-code session resumed").is_empty()
        });
        assert_tree(&spans, &trace);
        let root = root_of(&spans, &trace);
        assert_eq!(root.name, "claude-code session", "{sid}");
        let segment = by_name(&spans, &trace, "claude-code session resumed");
        assert_eq!(segment.len(), 1, "{sid}");
        assert_eq!(segment[0].parent, root.span_id, "{sid}: the resumed run hangs under the root");
        let turns = by_name(&spans, &trace, "invoke_agent claude-code");
        assert_eq!(turns.len(), 2, "{sid}");
        let second = turns.iter().find(|t| t.attr("hooktel.prompt.id") == Some("p-second")).unwrap();
        assert_eq!(second.parent, segment[0].span_id, "{sid}: the second run's turn is in the segment");
        assert_eq!(tool_span(&spans, &trace, "toolu_first").len(), 1, "{sid}");
        assert_eq!(tool_span(&spans, &trace, "toolu_second").len(), 1, "{sid}");
        assert_eq!(in_trace(&spans, &trace).len(), 6, "{sid}: root, segment, 2 turns, 2 tools");
    }
}

/// Run one short session of `sid` through a fresh sidecar and return its root's trace id.
fn trace_in_a_fresh_sidecar(sid: &str) -> String {
    let (receiver, sidecar) = Sidecar::builder().start_exporting(Protocol::Http);
    for ev in small_session(sid, "p-1", &["toolu_1"]) {
        send_ok(sidecar.addr, &ev, None);
    }
    let spans = receiver.wait_for(EXPORT_WAIT, "a root", |s| s.iter().any(|s| s.parent.is_empty()));
    let trace = spans.iter().find(|s| s.parent.is_empty()).unwrap().trace_id.clone();
    assert_tree(&spans, &trace);
    assert!(spans.iter().all(|s| s.trace_id == trace), "one trace for the session");
    assert!(spans.iter().all(|s| s.attr("session.id") == Some(sid)), "session.id is the id as sent");
    trace
}

#[test]
fn a_non_uuid_session_id_gets_a_stable_trace_id() {
    let first = trace_in_a_fresh_sidecar("served:abc");
    let second = trace_in_a_fresh_sidecar("served:abc");
    assert_eq!(first, second, "the same non-UUID session maps to the same trace in every run");
    assert_eq!(first.len(), 32);
    assert_ne!(first, "0".repeat(32));
    assert_eq!(&first[12..13], "5", "a UUIDv5: {first}");
    let other = trace_in_a_fresh_sidecar("served:abd");
    assert_ne!(first, other, "different sessions, different traces");
}

// ---------------------------------------------------------------------------------------------
// duplicate and out-of-order delivery

#[test]
fn duplicate_deliveries_yield_one_span() {
    let session = "d0b1e000-0000-4000-8000-00000000d0b1";
    let trace = trace_of(session);
    let (receiver, sidecar) = Sidecar::builder().start_exporting(Protocol::Http);
    let t0 = now_ns() - 60_000_000_000;
    let ms = |n: u64| Some(t0 + n * 1_000_000);
    let p = "p-dup";
    let addr = sidecar.addr;
    send_ok(addr, &payload(session, "SessionStart", json!({"source": "startup"})), ms(0));
    send_ok(addr, &payload(session, "UserPromptSubmit", json!({"prompt_id": p})), ms(10));
    let pre = |id: &str| tool_event(session, p, "PreToolUse", id);
    let post = |id: &str| tool_event(session, p, "PostToolUse", id);
    // the pair, then the pair again (same bytes, same stamps)
    for _ in 0..2 {
        send_ok(addr, &pre("toolu_dup_1"), ms(100));
        send_ok(addr, &post("toolu_dup_1"), ms(200));
    }
    // each event twice in a row
    send_ok(addr, &pre("toolu_dup_2"), ms(300));
    send_ok(addr, &pre("toolu_dup_2"), ms(300));
    send_ok(addr, &post("toolu_dup_2"), ms(400));
    send_ok(addr, &post("toolu_dup_2"), ms(400));
    // the pair again after its span was exported
    send_ok(addr, &pre("toolu_dup_3"), ms(500));
    send_ok(addr, &post("toolu_dup_3"), ms(600));
    receiver
        .wait_for(EXPORT_WAIT, "the first export of toolu_dup_3", |s| !tool_span(s, &trace, "toolu_dup_3").is_empty());
    send_ok(addr, &pre("toolu_dup_3"), ms(500));
    send_ok(addr, &post("toolu_dup_3"), ms(600));
    send_ok(addr, &payload(session, "Stop", json!({"prompt_id": p})), ms(700));
    send_ok(addr, &payload(session, "SessionEnd", json!({"reason": "other"})), ms(800));

    let spans = receiver.wait_for(EXPORT_WAIT, "the session root", |s| has_root(s, &trace));
    assert_tree(&spans, &trace);
    for (id, start, end) in [("toolu_dup_1", 100, 200), ("toolu_dup_2", 300, 400), ("toolu_dup_3", 500, 600)] {
        let tool = tool_span(&spans, &trace, id);
        assert_eq!(tool.len(), 1, "{id}: one span for a duplicated pair");
        assert_eq!(tool[0].start_ns, ms(start).unwrap(), "{id} start");
        assert_eq!(tool[0].end_ns, ms(end).unwrap(), "{id} end");
        assert_eq!(tool[0].attr("hooktel.tool.status"), Some("ok"), "{id}");
    }
    assert_eq!(by_name(&spans, &trace, "execute_tool Bash").len(), 3);
    assert_eq!(in_trace(&spans, &trace).len(), 5, "root, turn, three tools");
}

#[test]
fn a_post_before_its_pre_still_yields_one_span_from_the_pre_time() {
    let session = "0dd0e000-0000-4000-8000-0000000000dd";
    let trace = trace_of(session);
    let (receiver, sidecar) = Sidecar::builder().start_exporting(Protocol::Http);
    let t0 = now_ns() - 60_000_000_000;
    let ms = |n: u64| t0 + n * 1_000_000;
    let p = "p-ooo";
    let addr = sidecar.addr;
    send_ok(addr, &payload(session, "SessionStart", json!({"source": "startup"})), Some(ms(0)));
    send_ok(addr, &payload(session, "UserPromptSubmit", json!({"prompt_id": p})), Some(ms(100)));
    // the PostToolUse hook process wins the race to the sidecar (and carries no duration_ms)
    send_ok(addr, &tool_event(session, p, "PostToolUse", "toolu_ooo"), Some(ms(1500)));
    send_ok(addr, &tool_event(session, p, "PreToolUse", "toolu_ooo"), Some(ms(1000)));
    send_ok(addr, &payload(session, "Stop", json!({"prompt_id": p})), Some(ms(2000)));
    send_ok(addr, &payload(session, "SessionEnd", json!({"reason": "other"})), Some(ms(2100)));

    let spans = receiver.wait_for(EXPORT_WAIT, "the session root", |s| has_root(s, &trace));
    assert_tree(&spans, &trace);
    let tool = tool_span(&spans, &trace, "toolu_ooo");
    assert_eq!(tool.len(), 1, "one span for the reordered pair");
    assert_eq!(tool[0].start_ns, ms(1000), "starts when PreToolUse fired");
    assert_eq!(tool[0].end_ns, ms(1500), "ends when PostToolUse fired");
    assert_eq!(tool[0].attr("hooktel.tool.status"), Some("ok"));
    assert!(tool[0].attr("hooktel.incomplete").is_none());
    let turn = by_name(&spans, &trace, "invoke_agent claude-code");
    assert_eq!(turn.len(), 1);
    assert_eq!(tool[0].parent, turn[0].span_id);
    assert_eq!(turn[0].start_ns, ms(100));
    assert_eq!(turn[0].end_ns, ms(2000));
    let root = root_of(&spans, &trace);
    assert_eq!(root.start_ns, ms(0));
    assert_eq!(root.end_ns, ms(2100));
    assert_eq!(in_trace(&spans, &trace).len(), 3);
}

/// A replayed turn and subagent (e.g. a spool drained after a reply was lost in a timeout) come back
/// after their spans were exported: they must not be exported a second time.
#[test]
fn duplicate_turn_and_subagent_deliveries_after_export_yield_one_span() {
    let session = "d0b1e000-0000-4000-8000-00000000d0b2";
    let trace = trace_of(session);
    let (receiver, sidecar) = Sidecar::builder().start_exporting(Protocol::Http);
    let t0 = now_ns() - 60_000_000_000;
    let ms = |n: u64| Some(t0 + n * 1_000_000);
    let p = "p-dup-turn";
    let addr = sidecar.addr;
    let turn = [
        (payload(session, "UserPromptSubmit", json!({"prompt_id": p})), ms(10)),
        (
            payload(
                session,
                "SubagentStart",
                json!({"prompt_id": p, "agent_id": "agent-dup", "agent_type": "Explore"}),
            ),
            ms(20),
        ),
        (
            payload(session, "SubagentStop", json!({"prompt_id": p, "agent_id": "agent-dup", "agent_type": "Explore"})),
            ms(30),
        ),
        (payload(session, "Stop", json!({"prompt_id": p})), ms(40)),
    ];
    send_ok(addr, &payload(session, "SessionStart", json!({"source": "startup"})), ms(0));
    for (ev, at) in &turn {
        send_ok(addr, ev, *at);
    }
    receiver.wait_for(EXPORT_WAIT, "the turn and the subagent", |s| {
        by_name(s, &trace, "invoke_agent claude-code").len() == 1
            && by_name(s, &trace, "invoke_agent Explore").len() == 1
    });
    // the same events again, same bytes, same stamps
    for (ev, at) in &turn {
        send_ok(addr, ev, *at);
    }
    send_ok(addr, &payload(session, "SessionEnd", json!({"reason": "other"})), ms(100));

    let spans = receiver.wait_for(EXPORT_WAIT, "the session root", |s| has_root(s, &trace));
    let names: Vec<_> = in_trace(&spans, &trace).iter().map(|s| (s.name.clone(), s.span_id.clone())).collect();
    assert_eq!(by_name(&spans, &trace, "invoke_agent claude-code").len(), 1, "one turn span: {names:?}");
    assert_eq!(by_name(&spans, &trace, "invoke_agent Explore").len(), 1, "one subagent span: {names:?}");
    assert_tree(&spans, &trace);
}
