//! What LLM backends read of hooktel's spans, as a real OTLP receiver gets them from the real
//! binary after the captured Claude Code session (hooks, transcripts, and a report of Claude Code's
//! own telemetry naming the account): the GenAI conventions' `server.address`/`server.port` on
//! model calls, `gen_ai.tool.type` and a low-cardinality `error.type` on tool calls, schema URLs on
//! resource and scope, a model call's own cost as `gen_ai.usage.cost` (Langfuse's), and `user.id`
//! only when asked: `HOOKTEL_USER_ID`, or the account at capture `full`, never by default.

use std::time::Duration;

use crate::support::{captured_session_at, copy_captured_transcripts, raw, temp_dir, Receiver, Sidecar, Span};
use crate::support::{Protocol, CAPTURED_SESSION};

const TRACE: &str = "2cfb142e3e2c45c5819258e43d4a510f";
const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.42.0";
const EMAIL: &str = "dev@example.com";

/// Claude Code's `api_request` report of the captured session's first model call, naming the
/// account as Claude Code does when logged in (`user.email`, `user.account_uuid`).
fn api_request_naming_the_account() -> Vec<u8> {
    let attr = |k: &str, v: serde_json::Value| serde_json::json!({"key": k, "value": v});
    let record = serde_json::json!({
        "timeUnixNano": "1795235482624000000",
        "body": {"stringValue": "claude_code.api_request"},
        "attributes": [
            attr("session.id", serde_json::json!({"stringValue": CAPTURED_SESSION})),
            attr("event.name", serde_json::json!({"stringValue": "api_request"})),
            attr("request_id", serde_json::json!({"stringValue": "req_011CMock235482140"})),
            attr("model", serde_json::json!({"stringValue": "claude-sonnet-5-5"})),
            attr("duration_ms", serde_json::json!({"intValue": "490"})),
            attr("user.id", serde_json::json!({"stringValue": "969f1be3abab33ad"})),
            attr("user.email", serde_json::json!({"stringValue": EMAIL})),
            attr("user.account_uuid", serde_json::json!({"stringValue": "5b0e6c7a-account"})),
        ],
    });
    serde_json::to_vec(&serde_json::json!({"resourceLogs": [{"resource": {"attributes": []},
        "scopeLogs": [{"logRecords": [record]}]}]}))
    .unwrap()
}

/// The captured session through a sidecar with `env`, the account's report sent before its end;
/// every span of its trace as the receiver got them.
fn session_spans(env: &[(&str, &str)]) -> Vec<Span> {
    let receiver = Receiver::start(Protocol::Http);
    // the model calls' spans wait for the transcripts' last reads, which a loaded machine delays
    let mut builder = Sidecar::builder().exporting_to(&receiver).env("HOOKTEL_SETTLE_MS", "2000");
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    let sidecar = builder.start();
    let dir = temp_dir("genai");
    let transcript = copy_captured_transcripts(dir.path());
    let (end, mut before): (Vec<_>, Vec<_>) =
        captured_session_at(&transcript).into_iter().partition(|p| p["hook_event_name"] == "SessionEnd");
    // and a call of an MCP tool, as Claude Code names them
    for event in ["PreToolUse", "PostToolUse"] {
        before.push(serde_json::json!({"session_id": CAPTURED_SESSION, "hook_event_name": event,
            "tool_name": "mcp__github__get_issue", "tool_use_id": "toolu_mcp_1", "tool_input": {"issue": 7},
            "tool_response": {"title": "t"}}));
    }
    for payload in before {
        let (status, body) = sidecar.request("POST", "/v1/hooks", payload.to_string().as_bytes());
        assert_eq!(status, 200, "{body}");
    }
    let otlp = sidecar.otlp_addr();
    let host = format!("Host: {otlp}");
    let report = api_request_naming_the_account();
    let (status, _) = raw(otlp, "POST", "/v1/logs", &[&host, "Content-Type: application/json"], &report);
    assert_eq!(status, 200);
    crate::support::wait_until(Duration::from_secs(10), "the report joined to its session", || {
        sidecar.metric(r#"hooktel_native_events_total{event="claude_code.api_request"}"#) == 1.0
    });
    for payload in end {
        let (status, body) = sidecar.request("POST", "/v1/hooks", payload.to_string().as_bytes());
        assert_eq!(status, 200, "{body}");
    }
    receiver.wait_for(Duration::from_secs(20), "the session root", |s| {
        s.iter().any(|s| s.trace_id == TRACE && s.parent.is_empty())
    })
}

fn named<'a>(spans: &'a [Span], prefix: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name.starts_with(prefix)).collect()
}

/// At the default capture: the conventions' attributes are there, and no span names a user, though
/// Claude Code's report named the account.
#[test]
fn spans_carry_the_genai_conventions_and_no_user_by_default() {
    let spans = session_spans(&[]);
    for s in &spans {
        assert_eq!(
            (s.resource_schema_url.as_str(), s.scope_schema_url.as_str()),
            (SCHEMA_URL, SCHEMA_URL),
            "{}",
            s.name
        );
        assert_eq!(s.attr("user.id"), None, "{} names a user at the default capture", s.name);
        let all = format!("{:?}", s.attrs);
        assert!(!all.contains(EMAIL) && !all.contains("5b0e6c7a"), "{}: {all}", s.name);
    }
    let chats = named(&spans, "chat ");
    assert!(chats.len() >= 5, "{} model calls", chats.len());
    for c in &chats {
        assert_eq!((c.attr("server.address"), c.attr("server.port")), (Some("api.anthropic.com"), Some("443")));
        let cost: f64 = c.attr("gen_ai.usage.cost").unwrap().parse().unwrap();
        assert_eq!(c.attr("gen_ai.usage.cost"), c.attr("hooktel.cost_usd"), "{}", c.name);
        assert!(cost > 0.0, "{}", c.name);
    }
    // a sum (root, turn, subagent) carries no model call's cost: a backend adding up costs would
    // count it twice
    for s in spans.iter().filter(|s| !s.name.starts_with("chat ")) {
        assert_eq!(s.attr("gen_ai.usage.cost"), None, "{}", s.name);
    }
    let tools = named(&spans, "execute_tool ");
    assert!(tools.len() >= 4, "{} tool calls", tools.len());
    for t in &tools {
        let kind = if t.name == "execute_tool mcp__github__get_issue" { "extension" } else { "function" };
        assert_eq!(t.attr("gen_ai.tool.type"), Some(kind), "{}", t.name);
    }
    assert!(tools.iter().any(|t| t.attr("gen_ai.tool.type") == Some("extension")), "the MCP call");
    let failed: Vec<_> = tools.iter().filter(|t| t.status == 2).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].attr("error.type"), failed[0].attr("hooktel.tool.status")), (Some("_OTHER"), Some("error")));
    assert!(tools.iter().filter(|t| t.status != 2).all(|t| t.attr("error.type").is_none()));
}

/// `HOOKTEL_USER_ID` names the user on every span; `HOOKTEL_ANTHROPIC_BASE_URL` where model calls
/// go (its host and port only).
#[test]
fn a_user_and_an_endpoint_when_told() {
    let spans = session_spans(&[
        ("HOOKTEL_USER_ID", "alice@team.example"),
        ("HOOKTEL_ANTHROPIC_BASE_URL", "https://llm-gateway.internal:8443/anthropic?key=SECRET"),
    ]);
    assert!(spans.len() > 10);
    for s in &spans {
        assert_eq!(s.attr("user.id"), Some("alice@team.example"), "{}", s.name);
        assert!(!format!("{:?}", s.attrs).contains("SECRET"), "{}", s.name);
    }
    for c in named(&spans, "chat ") {
        assert_eq!((c.attr("server.address"), c.attr("server.port")), (Some("llm-gateway.internal"), Some("8443")));
    }
}

/// At capture `full`, the account Claude Code's telemetry names (its email) is the user: on the
/// root, and on every span handed out after the report came.
#[test]
fn the_account_is_the_user_at_full_capture() {
    let spans = session_spans(&[("HOOKTEL_CAPTURE", "full")]);
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    assert_eq!(root.attr("user.id"), Some(EMAIL));
    assert!(spans.iter().all(|s| s.attr("user.id").is_none_or(|u| u == EMAIL)));
    assert!(spans.iter().all(|s| !format!("{:?}", s.attrs).contains("969f1be3")), "the device id is no user");
}
