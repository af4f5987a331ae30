//! Turns, subagents and the session's end wait for the transcript read their end asked for: until
//! one that started late enough reports (its usage comes first), until no read will come, or until
//! the wait expires; never when no read was asked for.

use serde_json::json;

use super::{event, settings, simple, MS, S1};
use crate::model::span::SpanRecord;
use crate::model::tokens::TokenUsage;
use crate::pipeline::sessions::Sessions;
use crate::usage::accountant::{ReadStart, SessionUsage, TranscriptRead};
use crate::usage::logs::Delta;

const MARGIN: u64 = 500 * MS;
const BOUND: u64 = 10_000 * MS;

fn output(agent: Option<&str>, tokens: u64) -> SessionUsage {
    let delta = Delta {
        model: "claude-sonnet-5-5".into(),
        usage: TokenUsage { output: tokens, ..TokenUsage::default() },
        cost: 0.0,
        priced: false,
        prompt_id: Some("p1".into()),
        agent_id: agent.map(str::to_owned),
        response: None,
        forked_from: None,
        tool_failure: None,
        mcp_shares: Vec::new(),
    };
    SessionUsage { session_id: S1.into(), delta }
}

fn read(agent: Option<&str>, read: ReadStart) -> TranscriptRead {
    TranscriptRead { session_id: S1.into(), agent_id: agent.map(str::to_owned), read }
}

fn out_named(s: &mut Sessions, now: u64, name: &str) -> Vec<SpanRecord> {
    let mut out = Vec::new();
    s.tick(now, &mut out);
    out.into_iter().filter(|r| r.name == name).collect()
}

/// A stop at 1 s asks for reads of its subagent's transcript and the session's: the subagent's span
/// waits past its settle time for a read started at 1.5 s, and has the usage read before it; the turn
/// waits for its own transcript's read; the session's end for the last reads.
#[test]
fn a_closed_span_waits_for_a_read_that_started_late_enough() {
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    let t = 1_000 * MS;
    let sub = json!({"agent_id": "a1", "agent_type": "Explore"});
    for (p, at) in [
        (simple("SessionStart", json!({"source": "startup"})), 0),
        (simple("UserPromptSubmit", json!({})), MS),
        (simple("SubagentStart", sub.clone()), 2 * MS),
        (simple("SubagentStop", sub), t),
    ] {
        s.ingest(event(&p, at), at, &mut out);
    }
    s.await_read(S1, Some("a1"), t + MARGIN, t + BOUND);
    s.await_read(S1, None, t + MARGIN, t + BOUND);
    s.ingest(event(&simple("Stop", json!({})), t), t, &mut out);

    assert!(out_named(&mut s, t + 200 * MS, "invoke_agent Explore").is_empty(), "settled, but not read yet");
    s.transcript_read(&read(Some("a1"), ReadStart::At(t + MARGIN - 1)));
    assert!(out_named(&mut s, t + 600 * MS, "invoke_agent Explore").is_empty(), "a read that started too early");
    s.add_usage(&output(Some("a1"), 77), t + 700 * MS);
    s.transcript_read(&read(Some("a1"), ReadStart::At(t + MARGIN)));
    s.transcript_read(&read(None, ReadStart::At(t + MARGIN - 1)));
    let mut out = Vec::new();
    s.tick(t + 700 * MS, &mut out);
    let names: Vec<&str> = out.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["invoke_agent Explore"], "the turn still waits for its own transcript");
    assert_eq!(out[0].usage.as_ref().map(|u| u.tokens.output), Some(77), "the late response's usage");

    s.add_usage(&output(None, 271), t + 800 * MS);
    s.transcript_read(&read(None, ReadStart::At(t + 800 * MS)));
    let turn = out_named(&mut s, t + 800 * MS, "invoke_agent claude-code");
    assert_eq!(turn.len(), 1);
    assert_eq!(turn[0].usage.as_ref().map(|u| u.tokens.output), Some(271));

    let end = 2_000 * MS;
    s.ingest(event(&simple("SessionEnd", json!({"reason": "other"})), end), end, &mut out);
    s.await_read(S1, None, end + MARGIN, end + BOUND);
    assert!(out_named(&mut s, end + 200 * MS, "claude-code session").is_empty(), "the end waits for the last reads");
    s.transcript_read(&read(None, ReadStart::At(end + MARGIN)));
    assert_eq!(out_named(&mut s, end + 600 * MS, "claude-code session").len(), 1);
}

/// A read that never comes holds a span until the wait expires, no longer; a refused transcript
/// (no read will come) holds it no longer than its settle time; with no read asked for, nothing waits.
#[test]
fn a_wait_is_bounded_and_only_where_a_read_was_asked_for() {
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    let t = 1_000 * MS;
    for (i, aid) in ["stuck", "refused", "untouched"].into_iter().enumerate() {
        let sub = json!({"agent_id": aid, "agent_type": format!("T{i}")});
        s.ingest(event(&simple("SubagentStart", sub.clone()), MS), MS, &mut out);
        s.ingest(event(&simple("SubagentStop", sub), t), t, &mut out);
    }
    s.await_read(S1, Some("stuck"), t + MARGIN, t + BOUND);
    s.await_read(S1, Some("refused"), t + MARGIN, t + BOUND);
    s.transcript_read(&read(Some("refused"), ReadStart::Never));

    let mut out = Vec::new();
    s.tick(t + 100 * MS, &mut out);
    let mut names: Vec<&str> = out.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["invoke_agent T1", "invoke_agent T2"], "at the settle time, as before reads were awaited");
    assert!(out_named(&mut s, t + BOUND - 1, "invoke_agent T0").is_empty());
    assert_eq!(out_named(&mut s, t + BOUND, "invoke_agent T0").len(), 1, "the wait expired");
}

/// A Codex session (its tool outcomes are in its log): a command's span waits, past its settle time,
/// for a read of the rollout after its end; the read's failure (`exit code 1`) makes it ERROR whether
/// it comes before the hook's `PostToolUse` or after it.
#[test]
fn a_codex_command_waits_for_its_exit_code_from_the_log() {
    use super::tool;
    use crate::model::agent::Agent;
    let codex = |p: serde_json::Value, at: u64| {
        let mut ev = event(&p, at);
        ev.source = Agent::Codex;
        ev
    };
    let failed = |call: &str| SessionUsage {
        session_id: S1.into(),
        delta: Delta::tool_failed(call.into(), "exit code 1".into()),
    };
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    let t = 1_000 * MS;
    for (p, at) in [
        (simple("SessionStart", json!({"source": "startup"})), 0),
        (simple("UserPromptSubmit", json!({})), MS),
        (tool("PreToolUse", "c1", json!({})), 2 * MS),
        (tool("PreToolUse", "c2", json!({})), 3 * MS),
    ] {
        s.ingest(codex(p, at), at, &mut out);
    }
    // c2's failure is read before its PostToolUse arrives; c1's after
    s.add_usage(&failed("c2"), t);
    for (id, at) in [("c1", t), ("c2", t)] {
        s.ingest(codex(tool("PostToolUse", id, json!({"tool_response": "out\n"})), at), at, &mut out);
    }
    s.await_read(S1, None, t + MARGIN, t + BOUND);
    assert!(out_named(&mut s, t + MARGIN, "execute_tool Bash").is_empty(), "waiting for the read after the end");
    s.add_usage(&failed("c1"), t + MARGIN);
    s.transcript_read(&read(None, ReadStart::At(t + MARGIN)));
    let tools = out_named(&mut s, t + MARGIN + 10 * MS, "execute_tool Bash");
    assert_eq!(tools.len(), 2);
    for span in tools {
        assert_eq!(span.status, crate::model::span::Status::Error("exit code 1".into()), "{:?}", span.attrs);
        assert_eq!(span.tool.map(|t| t.status), Some(crate::model::span::ToolStatus::Error));
    }
}
