//! Tests of one session's span tree: start and end events paired into spans under the right
//! parents in any order of delivery, model calls and their usage, what closes a span (its end, the
//! next prompt, the session's end, the idle timeout), resumed sessions, the caps on span events and
//! on sessions, the pull requests Bash calls opened, and arbitrary payloads.

use super::*;
use crate::model::ids::{self, SpanKey};
use crate::model::span::{SpanUsage, Status};
use crate::pipeline::sessions::Ingested;
use crate::testdata::{Rng, CAPTURED};

fn captured() -> Vec<(Value, u64)> {
    CAPTURED
        .iter()
        .enumerate()
        .map(|(i, p)| (serde_json::from_str(p).unwrap(), 1_000 * MS + i as u64 * 10 * MS))
        .collect()
}

/// One span per API response, under the turn it answers or the subagent whose transcript it is
/// in; a parent's usage is the sum of its model calls', and the root's the sum of all.
#[test]
fn model_calls_hang_under_their_turn_or_subagent_and_add_up() {
    use crate::testdata::{captured, CAPTURED_AT};
    let spans = captured(S1, CAPTURED_AT);
    let of = |key: SpanKey| spans.iter().filter(move |s| s.key == key);
    let (root, turn, agent) =
        (of(SpanKey::Root).next().unwrap(), of(SpanKey::Turn).next().unwrap(), of(SpanKey::Subagent).next().unwrap());
    let under = |parent: &SpanRecord| {
        let mut sum = SpanUsage::default();
        let mut n = 0;
        for c in of(SpanKey::Chat).filter(|c| c.parent == Some(parent.span_id)) {
            let u = c.usage.as_ref().unwrap();
            sum.add(&u.models[0], u.tokens, u.cost);
            n += 1;
        }
        (n, sum.tokens, (sum.cost * 1e9).round())
    };
    let own = |s: &SpanRecord| {
        let u = s.usage.clone().unwrap();
        (u.tokens, (u.cost * 1e9).round())
    };
    let (n, tokens, cost) = under(turn);
    assert_eq!((n, (tokens, cost)), (3, own(turn)));
    let (n, tokens, cost) = under(agent);
    assert_eq!((n, (tokens, cost)), (2, own(agent)));
    let mut both = turn.usage.clone().unwrap();
    let a = agent.usage.clone().unwrap();
    both.add(&a.models[0], a.tokens, a.cost);
    assert_eq!(both.tokens, root.usage.as_ref().unwrap().tokens);
    for c in of(SpanKey::Chat) {
        assert!(c.name.starts_with("chat claude-"), "{}", c.name);
        assert_eq!(c.attr("gen_ai.operation.name").as_deref(), Some("chat"));
        assert!(c.attr("gen_ai.response.id").is_some_and(|id| id.starts_with("msg_")));
        assert!(c.attr("gen_ai.response.finish_reasons").is_some());
        assert!(c.start <= c.end);
        if c.parent == Some(turn.span_id) {
            assert!(turn.start <= c.start && c.end <= turn.end, "a model call inside its turn");
        }
    }
    assert_eq!(root.attr("gen_ai.operation.name").as_deref(), Some("invoke_agent"));
}

#[test]
fn captured_session_becomes_one_tree() {
    let spans = run(&captured());
    assert_tree(&spans);
    assert_eq!(spans.len(), 7, "{:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    let root = named(&spans, "claude-code session")[0];
    assert_eq!(root.trace_id, ids::trace_id(S1));
    let turn = named(&spans, "invoke_agent claude-code")[0];
    assert_eq!(turn.parent, Some(root.span_id));
    let agent = named(&spans, "execute_tool Agent")[0];
    let sub = named(&spans, "invoke_agent Explore")[0];
    assert_eq!(sub.parent, Some(agent.span_id));
    assert_eq!(named(&spans, "execute_tool Glob")[0].parent, Some(sub.span_id));
    assert!(spans.iter().all(|s| s.attr("session.id").as_deref() == Some(S1)));
    assert!(spans.iter().all(|s| s.attr("hooktel.incomplete").is_none()));
}

#[test]
fn replay_yields_identical_spans() {
    let a = run(&captured());
    let b = run(&captured());
    let key = |v: &[SpanRecord]| {
        let mut k: Vec<_> = v.iter().map(|s| (s.span_id, s.parent, s.name.clone(), s.start, s.end)).collect();
        k.sort_by_key(|x| x.0.to_bytes());
        k
    };
    assert_eq!(key(&a), key(&b));
}

#[test]
fn any_delivery_order_yields_the_same_tree() {
    let events = captured();
    let reference = run(&events);
    let shape = |v: &[SpanRecord]| {
        let mut k: Vec<_> =
            v.iter().map(|s| (s.span_id.to_bytes(), s.parent.map(|p| p.to_bytes()), s.start, s.end)).collect();
        k.sort();
        k
    };
    // hooks run concurrently: deliver neighbours swapped, and the whole session reversed in pairs
    for shift in 1..4 {
        let mut shuffled = events.clone();
        for i in (shift..shuffled.len() - 1).step_by(3) {
            shuffled.swap(i, i + 1);
        }
        // SessionEnd must stay last-fired; it is, its `at` is the largest, wherever it arrives
        let spans = run(&shuffled);
        assert_tree(&spans);
        assert_eq!(shape(&spans), shape(&reference), "shift {shift}");
    }
}

#[test]
fn end_before_start_and_duplicates_give_one_span() {
    let spans = run(&[
        (simple("UserPromptSubmit", json!({})), 10 * MS),
        (tool("PostToolUse", "t1", json!({"duration_ms": 5})), 30 * MS),
        (tool("PreToolUse", "t1", json!({})), 20 * MS),
        (tool("PreToolUse", "t1", json!({})), 20 * MS),
        (tool("PostToolUse", "t1", json!({"duration_ms": 5})), 30 * MS),
        (simple("SessionEnd", json!({"reason": "other"})), 40 * MS),
    ]);
    assert_tree(&spans);
    let tools = named(&spans, "execute_tool Bash");
    assert_eq!(tools.len(), 1);
    assert_eq!((tools[0].start, tools[0].end), (20 * MS, 30 * MS));
    assert_eq!(tools[0].attr("hooktel.tool.status").as_deref(), Some("ok"));
}

/// `duration_ms * 1_000_000` overflowed on a huge `duration_ms` from a payload (a panic in debug
/// builds, a wrap in release), and its attribute wrapped to a negative number.
#[test]
fn a_huge_duration_saturates_instead_of_wrapping() {
    let spans = run(&[
        (simple("UserPromptSubmit", json!({})), 10 * MS),
        (tool("PostToolUse", "t1", json!({"duration_ms": u64::MAX})), 30 * MS),
        (simple("SessionEnd", json!({"reason": "other"})), 40 * MS),
    ]);
    assert_tree(&spans);
    let t = named(&spans, "execute_tool Bash")[0];
    assert_eq!((t.start, t.end), (0, 30 * MS));
    assert_eq!(t.attr("hooktel.tool.duration_ms"), Some(i64::MAX.to_string()));
}

#[test]
fn session_end_closes_open_spans_as_incomplete() {
    let spans = run(&[
        (simple("UserPromptSubmit", json!({})), 10 * MS),
        (tool("PreToolUse", "t1", json!({})), 20 * MS),
        (simple("SessionEnd", json!({"reason": "prompt_input_exit"})), 40 * MS),
    ]);
    assert_tree(&spans);
    let t = named(&spans, "execute_tool Bash")[0];
    assert_eq!(t.attr("hooktel.incomplete").as_deref(), Some("true"));
    assert_eq!(t.attr("hooktel.tool.status").as_deref(), Some("incomplete"));
    assert_eq!(t.end, 40 * MS);
    let root = named(&spans, "claude-code session")[0];
    assert!(root.attr("hooktel.incomplete").is_none());
}

#[test]
fn a_late_end_within_settle_completes_an_incomplete_span() {
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    s.ingest(event(&simple("UserPromptSubmit", json!({})), 10 * MS), 0, &mut out);
    s.ingest(event(&tool("PreToolUse", "t1", json!({})), 20 * MS), 0, &mut out);
    s.ingest(event(&simple("SessionEnd", json!({"reason": "other"})), 40 * MS), 0, &mut out);
    // the PostToolUse fired before SessionEnd but arrived after it
    s.ingest(event(&tool("PostToolUseFailure", "t1", json!({"error": "Exit code 2"})), 35 * MS), 50 * MS, &mut out);
    s.tick(10_000 * MS, &mut out);
    let t = named(&out, "execute_tool Bash")[0];
    assert!(t.attr("hooktel.incomplete").is_none());
    assert_eq!(t.status, Status::Error("Exit code 2".into()));
    assert_eq!(t.end, 35 * MS);
}

#[test]
fn idle_sessions_close_marked_incomplete() {
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    s.ingest(event(&simple("UserPromptSubmit", json!({})), 10 * MS), 10 * MS, &mut out);
    s.tick(1_000 * MS, &mut out);
    assert!(out.is_empty());
    assert_eq!(s.active(), 1);
    s.tick(70_000 * MS, &mut out); // past the idle timeout: closed now
    s.tick(70_200 * MS, &mut out); // and handed out after settling
    assert_eq!(s.active(), 0);
    assert_tree(&out);
    assert!(out.iter().all(|s| s.attr("hooktel.incomplete").as_deref() == Some("true")));
}

/// Every span of a session carries its agent; the idle timeout says, by agent, how many sessions it
/// closed (for `hooktel_sessions_ended_total{agent, reason="idle_timeout"}`).
#[test]
fn spans_carry_their_agent_and_idle_closes_count_by_agent() {
    use crate::model::agent::{Agent, PerAgent};
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    s.ingest(event(&simple("UserPromptSubmit", json!({})), 10 * MS), 10 * MS, &mut out);
    let mut codex = event(&simple("UserPromptSubmit", json!({})), 10 * MS);
    codex.source = Agent::Codex;
    codex.session_id = "0b5e7f3a-0000-4000-8000-000000000002".into();
    s.ingest(codex, 10 * MS, &mut out);
    let mut both = PerAgent::default();
    both.add(Agent::ClaudeCode, 1);
    both.add(Agent::Codex, 1);
    assert_eq!(s.tick(70_000 * MS, &mut out), both);
    assert_eq!(s.tick(70_200 * MS, &mut out), PerAgent::default());
    for (name, agent) in [("invoke_agent claude-code", Agent::ClaudeCode), ("invoke_agent codex", Agent::Codex)] {
        let turn = named(&out, name)[0];
        let of_session: Vec<_> = out.iter().filter(|r| r.session_id == turn.session_id).collect();
        assert!(of_session.len() >= 2 && of_session.iter().all(|r| r.agent == agent), "{name}: {of_session:?}");
    }
}

#[test]
fn resumed_session_hangs_under_the_one_root() {
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    s.ingest(event(&simple("SessionStart", json!({"source": "startup"})), 10 * MS), 0, &mut out);
    s.ingest(event(&simple("SessionEnd", json!({"reason": "other"})), 20 * MS), 0, &mut out);
    // resumed 5 ms after the end, before the ended session has settled
    s.ingest(event(&simple("SessionStart", json!({"source": "resume"})), 25 * MS), MS, &mut out);
    s.ingest(event(&simple("UserPromptSubmit", json!({"prompt_id": "p2"})), 26 * MS), MS, &mut out);
    s.ingest(event(&simple("Stop", json!({"prompt_id": "p2"})), 27 * MS), MS, &mut out);
    s.ingest(event(&simple("SessionEnd", json!({"reason": "other"})), 28 * MS), MS, &mut out);
    s.tick(10_000 * MS, &mut out);
    assert_tree(&out);
    let root = named(&out, "claude-code session")[0];
    let seg = named(&out, "claude-code session resumed")[0];
    assert_eq!(seg.parent, Some(root.span_id));
    assert_eq!(named(&out, "invoke_agent claude-code")[0].parent, Some(seg.span_id));
    // an event that fired before the first end but arrives after everything was handed out
    assert_eq!(s.ingest(event(&simple("Notification", json!({})), 15 * MS), 20_000 * MS, &mut out), Ingested::Late);
}

#[test]
fn interleaved_sessions_share_nothing() {
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    let sids: Vec<String> = (0..300).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect();
    for step in 0..6u64 {
        for (i, sid) in sids.iter().enumerate() {
            let at = step * 100 * MS + i as u64;
            let p = match step {
                0 => json!({"hook_event_name": "SessionStart", "source": "startup"}),
                1 => json!({"hook_event_name": "UserPromptSubmit", "prompt_id": "same-prompt-id"}),
                2 => {
                    json!({"hook_event_name": "PreToolUse", "prompt_id": "same-prompt-id", "tool_name": "Read", "tool_use_id": "same-call"})
                }
                3 => {
                    json!({"hook_event_name": "PostToolUse", "prompt_id": "same-prompt-id", "tool_name": "Read", "tool_use_id": "same-call"})
                }
                4 => json!({"hook_event_name": "Stop", "prompt_id": "same-prompt-id"}),
                _ => json!({"hook_event_name": "SessionEnd", "reason": "other"}),
            };
            let mut p = p;
            p["session_id"] = sid.clone().into();
            s.ingest(event(&p, at), at, &mut out);
        }
    }
    s.tick(u64::MAX / 2, &mut out);
    assert_eq!(out.len(), 300 * 3);
    for sid in &sids {
        let mine: Vec<_> = out.iter().filter(|r| r.trace_id == ids::trace_id(sid)).cloned().collect();
        assert_eq!(mine.len(), 3, "{sid}");
        assert_tree(&mine);
    }
}

#[test]
fn background_subagent_found_through_the_agent_response() {
    // 2.1.329 background agents: the Agent call returns (naming the agent) before SubagentStart
    let agent_call = |ev: &str, extra: Value| {
        let mut p = simple(
            ev,
            json!({"tool_name": "Agent", "tool_use_id": "call-A", "tool_input": {"subagent_type": "general-purpose"}}),
        );
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    let spans = run(&[
        (simple("UserPromptSubmit", json!({})), 10 * MS),
        (agent_call("PreToolUse", json!({})), 11 * MS),
        (agent_call("PreToolUse", json!({"tool_use_id": "call-B"})), 12 * MS),
        (agent_call("PostToolUse", json!({"tool_use_id": "call-B", "tool_response": {"agentId": "agent-b"}})), 13 * MS),
        (agent_call("PostToolUse", json!({"tool_response": {"agentId": "agent-a"}})), 14 * MS),
        (simple("Stop", json!({})), 15 * MS),
        (simple("SubagentStart", json!({"agent_id": "agent-b", "agent_type": "general-purpose"})), 16 * MS),
        (simple("SubagentStart", json!({"agent_id": "agent-a", "agent_type": "general-purpose"})), 17 * MS),
        (tool("PreToolUse", "t-in-b", json!({"agent_id": "agent-b"})), 18 * MS),
        (tool("PostToolUse", "t-in-b", json!({"agent_id": "agent-b"})), 19 * MS),
        (simple("SubagentStop", json!({"agent_id": "agent-a"})), 20 * MS),
        (simple("SubagentStop", json!({"agent_id": "agent-b"})), 21 * MS),
        (simple("SessionEnd", json!({"reason": "other"})), 22 * MS),
    ]);
    assert_tree(&spans);
    let call = |id: &str| spans.iter().find(|s| s.attr("gen_ai.tool.call.id").as_deref() == Some(id)).unwrap().span_id;
    let agent = |id: &str| {
        spans.iter().find(|s| s.attr("gen_ai.agent.id").as_deref() == Some(id) && s.key == SpanKey::Subagent).unwrap()
    };
    assert_eq!(agent("agent-a").parent, Some(call("call-A")));
    assert_eq!(agent("agent-b").parent, Some(call("call-B")));
    let inner = spans.iter().find(|s| s.attr("gen_ai.tool.call.id").as_deref() == Some("t-in-b")).unwrap();
    assert_eq!(inner.parent, Some(agent("agent-b").span_id));
}

#[test]
fn next_prompt_closes_an_interrupted_turn() {
    let spans = run(&[
        (simple("UserPromptSubmit", json!({})), 10 * MS),
        (simple("UserPromptSubmit", json!({"prompt_id": "p2"})), 20 * MS),
        (simple("Stop", json!({"prompt_id": "p2"})), 30 * MS),
        (simple("SessionEnd", json!({"reason": "other"})), 40 * MS),
    ]);
    let turns = named(&spans, "invoke_agent claude-code");
    assert_eq!(turns.len(), 2);
    let first = turns.iter().find(|t| t.attr("hooktel.prompt.id").as_deref() == Some("p1")).unwrap();
    assert_eq!(first.attr("hooktel.incomplete").as_deref(), Some("true"));
    assert_eq!(first.end, 20 * MS);
}

#[test]
fn span_events_are_capped_and_counted() {
    let mut events = vec![(simple("UserPromptSubmit", json!({})), 10 * MS)];
    for i in 0..200 {
        events.push((simple("MessageDisplay", json!({"index": i})), 11 * MS + i));
    }
    events.push((simple("SessionEnd", json!({"reason": "other"})), 50 * MS));
    let spans = run(&events);
    let turn = named(&spans, "invoke_agent claude-code")[0];
    assert_eq!(turn.events.len(), 128);
    assert_eq!(turn.dropped_events, 72);
}

#[test]
fn compaction_is_a_span_with_its_events() {
    let spans = run(&[
        (simple("PreCompact", json!({"trigger": "manual"})), 10 * MS),
        (simple("SubagentStop", json!({"agent_id": "compact-agent", "agent_type": ""})), 11 * MS),
        (simple("PostCompact", json!({"trigger": "manual"})), 12 * MS),
        (simple("SessionEnd", json!({"reason": "other"})), 13 * MS),
    ]);
    assert_tree(&spans);
    let c = named(&spans, "compaction")[0];
    assert_eq!((c.start, c.end), (10 * MS, 12 * MS));
    assert_eq!(c.attr("hooktel.compaction.trigger").as_deref(), Some("manual"));
    assert!(c.events.iter().any(|e| e.name == "SubagentStop"));
}

/// A skill's shell command has no end to pair with: a span event on the innermost open span (the
/// subagent whose skill runs it, else the turn), carrying the skill and the redacted command.
#[test]
fn a_skill_shell_command_is_a_span_event_of_its_turn_or_subagent() {
    let shell = |extra: Value| {
        let mut p = simple(
            "PreSkillShellCommand",
            json!({"tool_name": "Bash", "tool_use_id": "t1:preamble-0", "command_name": "release-notes",
                   "invoked_by": "user", "tool_input": {"command": "echo token=SECRET"}}),
        );
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    let spans = run(&[
        (simple("UserPromptSubmit", json!({})), 10 * MS),
        (shell(json!({})), 11 * MS),
        (simple("SubagentStart", json!({"agent_id": "a1", "agent_type": "Explore"})), 12 * MS),
        (shell(json!({"agent_id": "a1", "agent_type": "Explore", "invoked_by": "claude"})), 13 * MS),
        (simple("SubagentStop", json!({"agent_id": "a1", "agent_type": "Explore"})), 14 * MS),
        (simple("Stop", json!({})), 15 * MS),
        (simple("SessionEnd", json!({"reason": "other"})), 16 * MS),
    ]);
    assert_tree(&spans);
    assert!(spans.iter().all(|s| !s.name.contains("PreSkillShellCommand")), "no span of its own");
    for (span, by) in [("invoke_agent claude-code", "user"), ("invoke_agent Explore", "claude")] {
        let s = named(&spans, span)[0];
        let e: Vec<_> = s.events.iter().filter(|e| e.name == "PreSkillShellCommand").collect();
        assert_eq!(e.len(), 1, "{span}: {:?}", s.events);
        let attr = |k: &str| e[0].attrs.iter().find(|kv| kv.key.as_str() == k).map(|kv| kv.value.as_str().into_owned());
        assert_eq!(attr("hooktel.hook.command_name").as_deref(), Some("release-notes"));
        assert_eq!(attr("hooktel.hook.invoked_by").as_deref(), Some(by));
        assert_eq!(attr("hooktel.tool.input.command").as_deref(), Some("echo token=***"));
    }
}

/// 5,000 SessionStart with new ids held 658 MB: past the cap, the session idle longest closes.
#[test]
fn past_the_cap_the_idlest_session_is_closed() {
    let mut s = Sessions::new(Settings { max_sessions: 3, ..settings() });
    let mut out = Vec::new();
    let mut evicted = 0;
    for i in 0..5u64 {
        let sid = format!("00000000-0000-4000-8000-{i:012}");
        let p = json!({"session_id": sid, "hook_event_name": "UserPromptSubmit", "prompt_id": "p"});
        if s.ingest(event(&p, i * MS), i * MS, &mut out) == Ingested::AcceptedEvicting {
            evicted += 1;
        }
    }
    assert_eq!((s.active(), evicted), (3, 2));
    let roots: Vec<_> = out.iter().filter(|r| r.parent.is_none()).collect();
    assert_eq!(roots.len(), 2);
    assert!(roots.iter().all(|r| r.incomplete));
    let first = ids::trace_id("00000000-0000-4000-8000-000000000000");
    assert!(roots.iter().any(|r| r.trace_id == first), "the oldest went first");
}

#[test]
fn ended_sessions_are_forgotten_oldest_first() {
    let mut s = Sessions::new(Settings { max_ended: 10, ..settings() });
    let mut out = Vec::new();
    for i in 0..50u64 {
        let sid = format!("00000000-0000-4000-8000-{i:012}");
        let p = json!({"session_id": sid, "hook_event_name": "SessionEnd", "reason": "other"});
        s.ingest(event(&p, i * MS), i * MS, &mut out);
        s.tick(i * MS + 200 * MS, &mut out);
    }
    assert_eq!(s.active(), 0);
    assert_eq!(s.ended.len(), 10);
    let key = ids::session_key;
    assert!(s.ended.contains_key(&key("00000000-0000-4000-8000-000000000049")));
    assert!(!s.ended.contains_key(&key("00000000-0000-4000-8000-000000000000")));
}

/// Arbitrary payload values, from the shared deterministic generator.
impl Rng {
    fn value(&mut self, depth: u32) -> Value {
        match self.next() % if depth > 2 { 4 } else { 6 } {
            0 => Value::Null,
            1 => Value::Bool(self.next() % 2 == 0),
            2 => json!(self.next() as i64 % 1000),
            3 => Value::String(self.pick(&["", "a", "p1", "toolu_1", "Agent", "ä€𝄞", "agent-1"]).into()),
            4 => Value::Array((0..self.next() % 3).map(|_| self.value(depth + 1)).collect()),
            _ => Value::Object(
                (0..self.next() % 3)
                    .map(|_| (self.pick(&["agentId", "x", "interrupted"]).to_owned(), self.value(depth + 1)))
                    .collect(),
            ),
        }
    }
}

#[test]
fn arbitrary_payloads_never_panic_and_always_form_trees() {
    let names = [
        "SessionStart",
        "SessionEnd",
        "UserPromptSubmit",
        "Stop",
        "StopFailure",
        "PreToolUse",
        "PostToolUse",
        "PostToolUseFailure",
        "PermissionDenied",
        "PermissionRequest",
        "SubagentStart",
        "SubagentStop",
        "PreCompact",
        "PostCompact",
        "Notification",
        "Mystery",
    ];
    let keys = [
        "prompt_id",
        "tool_use_id",
        "tool_name",
        "agent_id",
        "agent_type",
        "trigger",
        "tool_response",
        "duration_ms",
        "error",
        "is_interrupt",
        "cwd",
        "transcript_path",
        "source",
        "reason",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    for i in 0..20_000u64 {
        let mut p = serde_json::Map::new();
        p.insert("session_id".into(), rng.pick(&["s-a", "s-b", S1]).into());
        p.insert("hook_event_name".into(), rng.pick(&names).into());
        for _ in 0..rng.next() % 6 {
            let v = if rng.next() % 3 == 0 {
                rng.value(0)
            } else {
                Value::String(rng.pick(&["p1", "p2", "t1", "t2", "a1", "Agent", "auto"]).into())
            };
            p.insert(rng.pick(&keys).into(), v);
        }
        if let Ok(ev) = normalize(&p, i * MS + rng.next() % (5 * MS), Capture::Full) {
            s.ingest(ev, i * MS, &mut out);
        }
        if i % 1000 == 0 {
            s.tick(i * MS, &mut out);
        }
    }
    s.tick(u64::MAX / 2, &mut out);
    s.tick(u64::MAX / 2 + 1, &mut out);
    for sid in ["s-a", "s-b", S1] {
        let mine: Vec<_> = out.iter().filter(|r| r.trace_id == ids::trace_id(sid)).cloned().collect();
        let roots = mine.iter().filter(|r| r.parent.is_none()).count();
        assert_eq!(roots, 1, "{sid}");
        let ids: HashSet<SpanId> = mine.iter().map(|r| r.span_id).collect();
        assert_eq!(ids.len(), mine.len(), "{sid}: span handed out twice");
        for r in &mine {
            assert!(r.parent.is_none_or(|p| ids.contains(&p)), "{sid}: dangling parent of {}", r.name);
            assert!(r.start <= r.end);
        }
    }
}

/// A session that opens tool calls and never ends them holds at most `MAX_SPANS`: past it the oldest
/// is handed out at once, closed as incomplete, counted by kind; the tree stays whole.
#[test]
fn a_session_holds_at_most_max_spans() {
    use crate::model::span::ToolStatus;
    use crate::pipeline::sessions::state::MAX_SPANS;
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    s.ingest(event(&simple("SessionStart", json!({"source": "startup"})), MS), MS, &mut out);
    let n = MAX_SPANS + 5;
    for i in 0..n {
        let at = (i as u64 + 2) * MS;
        s.ingest(event(&tool("PreToolUse", &format!("t{i}"), json!({})), at), at, &mut out);
    }
    let evicted: Vec<_> = out.iter().filter(|r| r.key == SpanKey::Tool).collect();
    assert_eq!(evicted.len(), 5, "the five oldest handed out");
    assert!(evicted.iter().all(|r| r.incomplete && r.tool.as_ref().map(|t| t.status) == Some(ToolStatus::Incomplete)));
    assert_eq!(s.take_evicted().tool, 5);
    s.tick(u64::MAX / 2, &mut out); // idle: closed, incomplete
    s.tick(u64::MAX / 2 + 60_000 * MS, &mut out); // settled: handed out
    assert_tree(&out);
    assert_eq!(out.iter().filter(|r| r.key == SpanKey::Tool).count(), n, "every tool call handed out once");
}

/// All open sessions answer to one share of the memory budget: past it the heaviest hand out their
/// oldest spans first (counted), a light session beside them keeps its open spans, and what the
/// sessions hold comes back under the share. Nothing is handed out twice.
#[test]
fn open_sessions_together_stay_inside_their_share() {
    let max = 4 << 20;
    let mut s = Sessions::new(Settings { max_state_bytes: max, max_span_bytes: max / 4, ..settings() });
    let mut out = Vec::new();
    let light = "00000000-0000-4000-8000-0000000000ff";
    let with_sid = |mut p: Value, sid: &str| {
        p["session_id"] = json!(sid);
        p
    };
    s.ingest(event(&with_sid(simple("SessionStart", json!({"source": "startup"})), light), MS), MS, &mut out);
    s.ingest(event(&with_sid(tool("PreToolUse", "light_tool", json!({})), light), 2 * MS), 2 * MS, &mut out);
    // six heavy sessions of two subagents each given events of 40 long fields: about 13 KB an
    // event, 128 kept a span, 20 MiB in all
    let heavy = |i: u64| format!("00000000-0000-4000-8000-00000000000{}", i % 6);
    for i in 0..12u64 {
        let start = simple("SubagentStart", json!({"agent_id": format!("a{i}"), "agent_type": "general-purpose"}));
        s.ingest(event(&with_sid(start, &heavy(i)), (i + 3) * MS), (i + 3) * MS, &mut out);
    }
    let mut extra = json!({"agent_id": "a0", "message": "m"});
    for f in 0..40 {
        extra[format!("extra_{f:02}")] = json!("f".repeat(250));
    }
    for i in 0..1_536u64 {
        extra["agent_id"] = json!(format!("a{}", i % 12));
        let at = (i + 20) * MS;
        s.ingest(event(&with_sid(simple("Notification", extra.clone()), &heavy(i % 12)), at), at, &mut out);
        assert!(s.held() <= max, "the sessions hold {} bytes after event {i}", s.held());
    }
    let evicted = s.take_evicted();
    assert!(evicted.subagent >= 6, "{evicted:?}");
    assert!(out.iter().all(|r| *r.session_id != *light), "the light session lost nothing");
    s.tick(u64::MAX / 2, &mut out);
    s.tick(u64::MAX / 2 + 60_000 * MS, &mut out);
    let agents = out.iter().filter(|r| r.key == SpanKey::Subagent);
    let ids: HashSet<SpanId> = agents.clone().map(|r| r.span_id).collect();
    assert_eq!((ids.len(), agents.count()), (12, 12), "every subagent handed out once");
    assert!(out.iter().any(|r| *r.session_id == *light && r.key == SpanKey::Tool), "the light tool span, at its end");
}

/// A pull request a Bash call opened: a span event on its span, its URL on the root, each URL once and
/// at most 32 of them; a duplicate delivery adds nothing, a failed call opened none.
#[test]
fn pull_requests_are_events_of_their_calls_and_listed_on_the_root() {
    let url = |n: usize| format!("https://github.com/acme/api/pull/{n}");
    let mut events = vec![(simple("SessionStart", json!({"source": "startup"})), MS)];
    for n in 0..40 {
        let id = format!("toolu_{n}");
        // the second call names the first one's pull request again
        let note = json!({"hooktel_pull_request": url(if n == 1 { 0 } else { n }), "tool_response": {"stdout": ""}});
        let at = (10 + 2 * n as u64) * MS;
        events.push((tool("PreToolUse", &id, json!({})), at));
        events.push((tool("PostToolUse", &id, note.clone()), at + MS));
        if n == 0 {
            // delivered twice
            events.push((tool("PostToolUse", &id, note), at + MS));
        }
    }
    let failed = json!({"hooktel_pull_request": url(99), "error": "Exit code 1"});
    events.push((tool("PreToolUse", "toolu_failed", json!({})), 200 * MS));
    events.push((tool("PostToolUseFailure", "toolu_failed", failed), 201 * MS));
    events.push((simple("SessionEnd", json!({"reason": "other"})), 300 * MS));
    let spans = run(&events);

    let root = spans.iter().find(|s| s.parent.is_none()).unwrap();
    let listed = root.attrs.iter().find(|kv| kv.key.as_str() == "hooktel.pull_requests").unwrap();
    let opentelemetry::Value::Array(opentelemetry::Array::String(urls)) = &listed.value else { panic!() };
    let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
    let first_32: Vec<String> = [0].into_iter().chain(2..=32).map(url).collect();
    assert_eq!(urls, first_32, "each once, the first 32");
    let opened = |s: &SpanRecord| s.events.iter().filter(|e| e.name == "hooktel.pull_request").count();
    let call = |id: &str| {
        spans
            .iter()
            .find(|s| s.attrs.iter().any(|kv| kv.key.as_str() == "gen_ai.tool.call.id" && kv.value.as_str() == id))
    };
    for n in 0..40 {
        let span = call(&format!("toolu_{n}")).unwrap();
        assert_eq!(opened(span), 1, "toolu_{n}: its event, also past the root's 32, once");
        assert!(span.tool.is_some_and(|t| t.pull_request.is_some()), "toolu_{n} counts");
    }
    let failed = call("toolu_failed").unwrap();
    assert_eq!(opened(failed), 0, "a failed call opened none");
    assert!(failed.tool.is_some_and(|t| t.pull_request.is_none()));
}

/// A checkout found for a session: its turn carries it as it was when the turn started, the root
/// the latest with the last ticket found; the tool calls' records carry the repository for the
/// `repo` label; an answer of no repository, or for a session not held, changes nothing.
#[test]
fn a_checkout_lands_on_its_turn_and_the_root() {
    use crate::model::checkout::Checkout;
    use crate::vcs::Located;
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    let at = 1_000 * MS;
    let checkout = |branch: &str, ticket: Option<&str>| Checkout {
        repo: "github.com/acme/widgets".into(),
        branch: Some(branch.into()),
        ticket: ticket.map(str::to_owned),
        worktree: "widgets".into(),
        ..Checkout::default()
    };
    let located = |prompt: Option<&str>, c: Option<Checkout>| Located {
        session_id: S1.into(),
        prompt_id: prompt.map(str::to_owned),
        checkout: c,
    };
    s.ingest(event(&simple("SessionStart", json!({"source": "startup"})), at), at, &mut out);
    s.located(located(None, Some(checkout("feature/ABC-1", Some("ABC-1")))));
    s.ingest(event(&simple("UserPromptSubmit", json!({})), at + MS), at + MS, &mut out);
    s.located(located(Some("p1"), Some(checkout("feature/ABC-1", Some("ABC-1")))));
    s.ingest(event(&tool("PreToolUse", "t1", json!({})), at + 2 * MS), at + 2 * MS, &mut out);
    s.ingest(event(&tool("PostToolUse", "t1", json!({})), at + 3 * MS), at + 3 * MS, &mut out);
    s.ingest(event(&simple("Stop", json!({})), at + 4 * MS), at + 4 * MS, &mut out);
    let p2 = |e: &str| json!({"session_id": S1, "hook_event_name": e, "prompt_id": "p2"});
    s.ingest(event(&p2("UserPromptSubmit"), at + 5 * MS), at + 5 * MS, &mut out);
    s.located(located(Some("p2"), Some(checkout("main", None))));
    s.located(located(Some("p2"), None));
    s.located(Located { session_id: "another".into(), ..located(None, Some(checkout("x", None))) });
    s.ingest(event(&p2("Stop"), at + 6 * MS), at + 6 * MS, &mut out);
    s.ingest(event(&simple("SessionEnd", json!({"reason": "other"})), at + 7 * MS), at + 7 * MS, &mut out);
    s.tick(u64::MAX / 2, &mut out);
    let turn = |pid: &str| out.iter().find(|r| r.attr("hooktel.prompt.id").as_deref() == Some(pid)).unwrap();
    assert_eq!(turn("p1").attr("vcs.ref.head.name").as_deref(), Some("feature/ABC-1"));
    assert_eq!(turn("p1").attr("hooktel.ticket").as_deref(), Some("ABC-1"));
    assert_eq!(turn("p2").attr("vcs.ref.head.name").as_deref(), Some("main"));
    assert_eq!(turn("p2").attr("hooktel.ticket"), None);
    let root = out.iter().find(|r| r.key == SpanKey::Root).unwrap();
    assert_eq!(root.attr("vcs.ref.head.name").as_deref(), Some("main"));
    assert_eq!(root.attr("hooktel.ticket").as_deref(), Some("ABC-1"));
    assert_eq!(root.attrs.iter().filter(|kv| kv.key.as_str() == "vcs.ref.head.name").count(), 1);
    let tool_rec = out.iter().find(|r| r.key == SpanKey::Tool).unwrap();
    assert_eq!(tool_rec.repo, "github.com/acme/widgets");
}
