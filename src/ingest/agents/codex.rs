//! OpenAI Codex CLI's parser. Codex's hooks (`~/.codex/hooks.json`, 0.171 on) fire Claude Code's
//! events in Claude Code's layout: `session_id`, `cwd`, `transcript_path` (its rollout log),
//! `tool_name`/`tool_input`/`tool_response`/`tool_use_id`, `prompt`, `source`, `reason`. What differs:
//! a turn is keyed by `turn_id` (Claude Code's `prompt_id`), `thread_id` repeats the session, and
//! `PreModelRequest` (one per model request) and `Interrupt` have no Claude Code twin: they become
//! span events, like every event hooktel gives no span. So a Codex payload is read as Claude Code's
//! once its turn is named the Claude Code way; the event then names Codex as its agent.
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
    let mut as_claude = Map::with_capacity(p.len());
    for (key, value) in p {
        match key.as_str() {
            "turn_id" => {
                as_claude.insert("prompt_id".into(), value.clone());
            }
            // Claude Code's own key, were a Codex payload to carry one, would name another turn
            "prompt_id" | "thread_id" | AGENT => {}
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

    #[test]
    fn a_payload_without_a_session_is_refused() {
        let p = json!({"turn_id": TURN, "hook_event_name": "Stop"});
        assert_eq!(
            normalize(p.as_object().unwrap(), 1, Capture::Metadata).unwrap_err(),
            Rejected::MissingField("session_id")
        );
    }
}
