//! The sidecar over the wire: real captured Claude Code 2.1.329 payloads in through `hooktel hook`,
//! spans out to a real OTLP receiver over HTTP/protobuf and over gRPC.

use std::time::Duration;

use crate::support;
use crate::support::{assert_tree, captured_session, Protocol, Receiver, Sidecar, Span};

const SESSION: &str = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";
const TRACE: &str = "2cfb142e3e2c45c5819258e43d4a510f";

fn by_name<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn replay_captured_session(protocol: Protocol) {
    let receiver = Receiver::start(protocol);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    for payload in captured_session() {
        let out = sidecar.hook(&payload);
        assert!(out.status.success(), "hook exit {:?}", out.status);
        assert!(out.stdout.is_empty(), "hook wrote to stdout");
        assert!(out.stderr.is_empty(), "hook complained: {}", String::from_utf8_lossy(&out.stderr));
    }
    let spans = receiver.wait_for(Duration::from_secs(20), "the session root", |s| {
        s.iter().any(|s| s.trace_id == TRACE && s.parent.is_empty())
    });
    assert_tree(&spans, TRACE);
    assert!(spans.iter().all(|s| s.trace_id == TRACE));
    for s in &spans {
        assert_eq!(s.attr("session.id"), Some(SESSION));
        assert_eq!(s.attr("gen_ai.conversation.id"), Some(SESSION));
        assert!(s.start_ns <= s.end_ns && s.start_ns > 0, "{} times", s.name);
    }
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    assert_eq!(root.attr("hooktel.session.end_reason"), Some("other"));
    assert_eq!(root.resource.get("service.name").map(String::as_str), Some("hooktel"));
    assert!(root.resource.contains_key("host.name"));

    let turn = by_name(&spans, "invoke_agent claude-code");
    assert_eq!(turn.len(), 1);
    assert_eq!(turn[0].parent, root.span_id);
    assert_eq!(turn[0].attr("hooktel.turn.outcome"), Some("stop"));

    let agent_tool = by_name(&spans, "execute_tool Agent");
    assert_eq!(agent_tool.len(), 1);
    assert_eq!(agent_tool[0].parent, turn[0].span_id);
    let sub = by_name(&spans, "invoke_agent Explore");
    assert_eq!(sub.len(), 1);
    assert_eq!(sub[0].parent, agent_tool[0].span_id, "subagent hangs under the Agent call that spawned it");
    assert_eq!(sub[0].attr("gen_ai.agent.id"), Some("a7ca175cf2fd2156a"));
    let glob = by_name(&spans, "execute_tool Glob");
    assert_eq!(glob.len(), 1);
    assert_eq!(glob[0].parent, sub[0].span_id, "subagent tools hang under the subagent");
    assert_eq!(glob[0].attr("hooktel.tool.input.pattern"), Some("*.md"));

    let bash = by_name(&spans, "execute_tool Bash");
    assert_eq!(bash.len(), 2);
    let failed: Vec<_> = bash.iter().filter(|s| s.status == 2).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status_message, "Exit code 1");
    assert_eq!(failed[0].attr("hooktel.tool.status"), Some("error"));
    assert_eq!(failed[0].attr("hooktel.tool.input.command"), Some("false"));
    let ok = bash.iter().find(|s| s.status != 2).unwrap();
    assert_eq!(ok.attr("hooktel.tool.status"), Some("ok"));
    assert_eq!(ok.attr("hooktel.tool.duration_ms"), Some("64"));
    assert_eq!(ok.attr("gen_ai.tool.call.id"), Some("toolu_01Mock25235482140"));

    // no prompt text and no tool output leave by default
    for s in &spans {
        let all = format!("{:?} {:?}", s.attrs, s.events);
        assert!(!all.contains("MAIN_TASK"), "prompt text exported on {}", s.name);
        assert!(!all.contains("stdout") && !all.contains("NOTES.md"), "tool output exported on {}", s.name);
        assert!(s.attr("hooktel.tool.output").is_none());
    }
    // the other events are span events: MessageDisplay on the turn, PostToolBatch on the subagent
    assert!(turn[0].events.iter().any(|(n, _)| n == "MessageDisplay"));
    assert!(sub[0].events.iter().any(|(n, _)| n == "PostToolBatch"));
    assert!(root.events.iter().any(|(n, _)| n == "SessionStart"));
    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="PreToolUse"}"#), 4.0);
    support::wait_until(Duration::from_secs(5), "spans counted", || {
        sidecar.metric("hooktel_spans_exported_total") == spans.len() as f64
    });
}

#[test]
fn captured_session_over_http_protobuf() {
    replay_captured_session(Protocol::Http);
}

#[test]
fn captured_session_over_grpc() {
    replay_captured_session(Protocol::Grpc);
}
