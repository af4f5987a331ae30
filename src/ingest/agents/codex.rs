//! OpenAI Codex CLI's parser. Codex's hooks (`~/.codex/hooks.json`, 0.171 on) fire Claude Code's
//! events in Claude Code's layout: `session_id`, `cwd`, `transcript_path` (its rollout log),
//! `tool_name`/`tool_input`/`tool_response`/`tool_use_id`, `prompt`, `source`, `reason`. What differs:
//! a turn is keyed by `turn_id` (Claude Code's `prompt_id`), `thread_id` repeats the session, and
//! `PreModelRequest` (one per model request) and `Interrupt` have no Claude Code twin: they become
//! span events, like every event hooktel gives no span. So a Codex payload is read as Claude Code's
//! once its turn is named the Claude Code way; the event then names Codex as its agent.
//!
//! A subagent (`spawn_agent`: a thread of its own, `agent_id` its thread id) reports through its
//! parent's session: its events carry `agent_id`, `agent_type`, its own `turn_id` and its own rollout
//! as `transcript_path` (`SubagentStop` names the parent's, and the subagent's as
//! `agent_transcript_path`). Its turn is no turn of the session: its events belong to its
//! `invoke_agent` span by `agent_id`, its `UserPromptSubmit` (the task it was given) is an event of
//! that span, and its rollout is its log.
//!
//! Pure, like every parser of the seam. What Codex's hooks do not say (a command's exit code, each
//! response's tokens) is in its rollout log, read by `usage::logs::codex`.

use serde_json::{Map, Value};

use crate::ingest::agents::{claude_code, Rejected};
use crate::model::agent::Agent;
use crate::model::capture::Capture;
use crate::model::event::Event;
use crate::model::payload::AGENT;

/// Normalise a Codex payload already parsed into a JSON object.
pub fn normalize(p: &Map<String, Value>, at: u64, capture: Capture) -> Result<Event, Rejected> {
    let subagent = p.get("agent_id").and_then(Value::as_str).is_some_and(|a| !a.is_empty());
    let mut as_claude = Map::with_capacity(p.len());
    for (key, value) in p {
        match key.as_str() {
            // a subagent's turn is its own, no turn of the session
            "turn_id" if !subagent => {
                as_claude.insert("prompt_id".into(), value.clone());
            }
            // a subagent's events name its own log
            "transcript_path" if subagent && p.contains_key("agent_transcript_path") => {}
            "agent_transcript_path" if subagent => {
                as_claude.insert("transcript_path".into(), value.clone());
            }
            // Claude Code's own key, were a Codex payload to carry one, would name another turn
            "turn_id" | "prompt_id" | "thread_id" | AGENT => {}
            _ => {
                as_claude.insert(key.clone(), value.clone());
            }
        }
    }
    let mut ev = claude_code::normalize(&as_claude, at, capture)?;
    ev.source = Agent::Codex;
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::Kind;
    use serde_json::json;

    const SESSION: &str = "01a25161-28d6-7671-b0d0-eb9d5a34b666";
    const TURN: &str = "01a25161-28fb-7f33-abdd-9ddf58f62bbe";

    fn event(payload: Value) -> Event {
        normalize(payload.as_object().unwrap(), 1, Capture::Metadata).unwrap()
    }

    #[test]
    fn a_turn_is_keyed_by_its_turn_id() {
        let ev = event(json!({"session_id": SESSION, "turn_id": TURN, "hook_event_name": "UserPromptSubmit",
                              "cwd": "/w/p", "model": "gpt-5.5", "prompt": "hi", "hooktel_agent": "codex"}));
        assert_eq!(ev.source, Agent::Codex);
        assert_eq!(ev.prompt_id.as_deref(), Some(TURN));
        assert!(matches!(ev.kind, Kind::PromptSubmit { .. }), "{:?}", ev.kind);
        let stop = event(json!({"session_id": SESSION, "turn_id": TURN, "hook_event_name": "Stop",
                                "last_assistant_message": "done"}));
        assert!(matches!(stop.kind, Kind::TurnEnd { failure: None, .. }), "{:?}", stop.kind);
    }

    /// Codex's PostToolUse carries only the command's output, a string: the call ends `Ok` here (its
    /// exit code is in the rollout).
    #[test]
    fn a_tool_call_pairs_by_its_call_id() {
        let pre = event(json!({"session_id": SESSION, "turn_id": TURN, "hook_event_name": "PreToolUse",
                               "tool_name": "Bash", "tool_input": {"command": "echo one"},
                               "tool_use_id": "call_1_0"}));
        let Kind::ToolStart(call) = pre.kind else { panic!("{:?}", pre.kind) };
        assert_eq!((call.name.as_str(), call.call_id.as_str()), ("Bash", "call_1_0"));
        let post = event(json!({"session_id": SESSION, "turn_id": TURN, "hook_event_name": "PostToolUse",
                                "tool_name": "Bash", "tool_input": {"command": "echo one"},
                                "tool_response": "one\n", "tool_use_id": "call_1_0"}));
        assert!(matches!(post.kind, Kind::ToolEnd(_, crate::model::event::ToolOutcome::Ok)), "{:?}", post.kind);
    }

    /// A model request is an event of its turn, with its model and attempt; neither the session's
    /// id (`thread_id`) nor the agent's mark come out as attributes.
    #[test]
    fn a_model_request_is_an_event_with_its_model_and_attempt() {
        let ev = event(json!({"kind": "sampling", "request_id": "8345f61c-1ac8-4f37-828a-1bd0488e8ca4",
                              "attempt_number": 1, "thread_id": SESSION, "turn_id": TURN, "session_id": SESSION,
                              "cwd": "/w/p", "model": "gpt-5.5", "hook_event_name": "PreModelRequest",
                              "hooktel_agent": "codex"}));
        assert_eq!(ev.kind, Kind::Other);
        assert_eq!(ev.prompt_id.as_deref(), Some(TURN));
        let keys: Vec<&str> = ev.attrs.iter().map(|kv| kv.key.as_str()).collect();
        assert!(keys.contains(&"hooktel.hook.model") && keys.contains(&"hooktel.hook.attempt_number"), "{keys:?}");
        assert!(
            !keys.iter().any(|k| k.ends_with("thread_id") || k.ends_with("turn_id") || k.contains("agent")),
            "{keys:?}"
        );
    }

    /// Captured from Codex 0.171.0 (a `spawn_agent` call): the subagent's events carry its thread id as
    /// `agent_id`, a turn of its own and its own rollout.
    #[test]
    fn a_subagents_events_belong_to_it_not_to_a_turn() {
        const CHILD: &str = "01a25206-ad90-7ef3-8fde-2df8d57b0fd7";
        const CHILD_TURN: &str = "01a25206-adac-7b11-8725-0c5012d45935";
        let own_log = format!("/h/.codex/sessions/2026/12/07/rollout-2026-12-07T19-41-39-{CHILD}.jsonl");
        let base = json!({"session_id": SESSION, "turn_id": CHILD_TURN, "agent_id": CHILD, "agent_type": "default",
                          "transcript_path": own_log, "cwd": "/w/p", "model": "gpt-mock"});
        let with = |extra: Value| {
            let mut p = base.clone();
            p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            normalize(p.as_object().unwrap(), 1, Capture::Full).unwrap()
        };
        let start = with(json!({"hook_event_name": "SubagentStart"}));
        assert!(matches!(start.kind, Kind::SubagentStart { .. }), "{:?}", start.kind);
        assert_eq!((start.prompt_id.as_deref(), start.agent_id.as_deref()), (None, Some(CHILD)));
        // the task it was given is an event, not a turn
        let prompt = with(json!({"hook_event_name": "UserPromptSubmit", "prompt": "[turn:child] run echo child"}));
        assert_eq!((prompt.kind, prompt.prompt_id), (Kind::Other, None));
        assert!(prompt.attrs.iter().any(|kv| kv.key.as_str() == "hooktel.hook.prompt"), "{:?}", prompt.attrs);
        let tool = with(json!({"hook_event_name": "PreToolUse", "tool_name": "Bash",
                               "tool_input": {"command": "echo child"}, "tool_use_id": "call_2_0"}));
        assert!(matches!(tool.kind, Kind::ToolStart(_)), "{:?}", tool.kind);
        assert_eq!((tool.prompt_id, tool.transcript_path.as_deref()), (None, Some(own_log.as_str())));
        // SubagentStop names the parent's log as its transcript, and the subagent's beside it
        let stop = with(json!({"hook_event_name": "SubagentStop", "last_assistant_message": "Child done.",
                               "transcript_path": "/h/.codex/sessions/2026/12/07/rollout-parent.jsonl",
                               "agent_transcript_path": own_log}));
        assert!(matches!(stop.kind, Kind::SubagentStop { .. }), "{:?}", stop.kind);
        assert_eq!(stop.transcript_path.as_deref(), Some(own_log.as_str()));
    }

    #[test]
    fn a_payload_without_a_session_is_refused() {
        let p = json!({"turn_id": TURN, "hook_event_name": "Stop"});
        assert_eq!(
            normalize(p.as_object().unwrap(), 1, Capture::Metadata).unwrap_err(),
            Rejected::MissingField("session_id")
        );
    }
}
