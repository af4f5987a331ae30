//! Google Gemini CLI's parser. Gemini's hooks (`~/.gemini/settings.json`, 0.61 on) have events of
//! their own, every payload with `session_id`, `transcript_path` (its chat log), `cwd` and an ISO
//! `timestamp` (the event's time: hook processes run concurrently, so the payload's own stamp orders
//! them, the client's only when it has none). A payload is read as Claude Code's once named the
//! Claude Code way; the event then keeps Gemini's name and names Gemini as its agent:
//! - `BeforeAgent` opens a turn (`UserPromptSubmit`), keyed by its own time (Gemini names no turn);
//!   `AfterAgent` ends the turn open (`Stop`; its `prompt_response` is garbled when the answer was
//!   streamed, and never read).
//! - `BeforeTool`/`AfterTool` are a tool call (`PreToolUse`/`PostToolUse`) keyed by its tool and
//!   input (`payload::CALL_KEY`: Gemini names no call), paired the oldest open call first by the
//!   session. A tool error (`tool_response.error`) fails the call, and so does a shell command that
//!   exited non-zero (`payload::EXIT_CODE`), which Gemini itself counts a success.
//! - `BeforeModel` starts a model call and the `AfterModel` with a `finishReason` ends it
//!   ([`Kind::ModelStart`], [`Kind::ModelEnd`]: their times time its chat span); `AfterModel` fires
//!   once per streamed chunk, and a chunk without a finish reason is nothing. `BeforeToolSelection`
//!   is nothing either. Their tokens come from the chat log (`usage::logs::gemini`), never from the
//!   chunks (summing those counts the prompt once per chunk).
//! - `PreCompress` fires before every model call without compressing: an event, not a compaction.
//!
//! Pure, like every parser of the seam.

use serde_json::{Map, Value};

use crate::ingest::agents::{claude_code, Rejected};
use crate::model::agent::Agent;
use crate::model::capture::Capture;
use crate::model::event::{Event, Kind};
use crate::model::payload::{AGENT, CALL_KEY, EXIT_CODE};
use crate::model::time::{plausible, rfc3339_ns};

/// Normalise a Gemini CLI payload already parsed into a JSON object (and trimmed:
/// `payload::trim_payload` notes its call key and exit code).
pub fn normalize(p: &Map<String, Value>, at: u64, capture: Capture) -> Result<Event, Rejected> {
    let at =
        p.get("timestamp").and_then(Value::as_str).and_then(rfc3339_ns).filter(|t| plausible(*t, at)).unwrap_or(at);
    let name = p.get("hook_event_name").and_then(Value::as_str).unwrap_or_default();
    let mut as_claude = Map::with_capacity(p.len() + 2);
    for (key, value) in p {
        match key.as_str() {
            // ids Claude Code's layout reads, which a Gemini payload cannot mean; what this parser reads
            "prompt_id" | "tool_use_id" | "agent_id" | "hooktel_call_key" | "timestamp" | "llm_request"
            | "llm_response" | "prompt_response" | AGENT => {}
            _ => {
                as_claude.insert(key.clone(), value.clone());
            }
        }
    }
    let claude_name = match name {
        "BeforeAgent" => {
            as_claude.insert("prompt_id".into(), Value::String(turn_key(at)));
            "UserPromptSubmit"
        }
        "AfterAgent" => {
            // the turn open now ends: named after the parse (`names_turns`)
            as_claude.insert("prompt_id".into(), Value::String(String::new()));
            as_claude.remove("prompt");
            "Stop"
        }
        "BeforeTool" | "AfterTool" => {
            if let Some(key) = p.get(CALL_KEY).filter(|k| k.is_string()) {
                as_claude.insert("tool_use_id".into(), key.clone());
            }
            match (name, tool_failure(p)) {
                ("BeforeTool", _) => "PreToolUse",
                (_, Some(error)) => {
                    as_claude.insert("error".into(), Value::String(error));
                    "PostToolUseFailure"
                }
                _ => "PostToolUse",
            }
        }
        other => other,
    };
    as_claude.insert("hook_event_name".into(), Value::String(claude_name.to_owned()));
    let mut ev = claude_code::normalize(&as_claude, at, capture)?;
    ev.source = Agent::Gemini;
    ev.name = name.to_owned();
    match name {
        "AfterAgent" => ev.prompt_id = None,
        "BeforeModel" => ev.kind = Kind::ModelStart,
        "AfterModel" | "BeforeToolSelection" => ev.kind = model_end(p).unwrap_or(Kind::Nothing),
        _ => {}
    }
    Ok(ev)
}

/// A turn's key: the time its `BeforeAgent` fired, the same whenever the payload is read again.
fn turn_key(at: u64) -> String {
    format!("gemini-turn-{at}")
}

/// Why an `AfterTool` failed: its tool's error, or its command's non-zero exit code.
fn tool_failure(p: &Map<String, Value>) -> Option<String> {
    let response = p.get("tool_response")?;
    if let Some(error) = response.get("error").filter(|e| !e.is_null()) {
        let message = error.get("message").and_then(Value::as_str).or(error.as_str()).unwrap_or("tool error");
        return Some(message.to_owned());
    }
    p.get(EXIT_CODE).and_then(Value::as_i64).map(|code| format!("exit code {code}"))
}

/// The end of a model call: an `AfterModel` whose response has a finish reason (the last chunk).
fn model_end(p: &Map<String, Value>) -> Option<Kind> {
    if p.get("hook_event_name").and_then(Value::as_str) != Some("AfterModel") {
        return None;
    }
    let finish = p.get("llm_response")?.get("finishReason")?.as_str()?;
    Some(Kind::ModelEnd { finish_reason: crate::model::payload::truncate_utf8(finish, 64).to_owned() })
}

/// Reduce a payload to what `normalize` reads at `capture`, for the journal: Claude Code's rule, and
/// what only Gemini's payloads carry (their time, a model call's finish reason, a tool's error).
pub(crate) fn keep_at_rest(p: &mut Map<String, Value>, capture: Capture, kind: &Kind) {
    let timestamp = p.get("timestamp").filter(|t| t.is_string()).cloned();
    let response = p.get("llm_response").filter(|_| matches!(kind, Kind::ModelEnd { .. })).cloned();
    let error = p.get("tool_response").and_then(|r| r.get("error")).filter(|e| !e.is_null()).map(|e| {
        let message = e.get("message").and_then(Value::as_str).or(e.as_str()).unwrap_or("tool error");
        Value::String(capture.error_text(message))
    });
    claude_code::keep_at_rest(p, capture, kind);
    p.remove("llm_request");
    p.extend(timestamp.map(|t| ("timestamp".to_owned(), t)));
    p.extend(response.map(|r| ("llm_response".to_owned(), r)));
    if let Some(error) = error {
        match p.get_mut("tool_response") {
            Some(Value::Object(r)) => {
                r.insert("error".into(), serde_json::json!({ "message": error }));
            }
            _ => {
                p.insert("tool_response".into(), serde_json::json!({ "error": { "message": error } }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::accept::parse;
    use serde_json::json;

    const HOOKS: &str = include_str!("../../../tests/fixtures/gemini/single-0.61.0/hooks.jsonl");

    fn payloads() -> Vec<Map<String, Value>> {
        HOOKS
            .lines()
            .map(|l| {
                let mut p: Map<String, Value> = serde_json::from_str(l).unwrap();
                p.insert(AGENT.into(), json!("gemini-cli"));
                p
            })
            .collect()
    }

    const RECEIVED: u64 = 1_796_621_400_000_000_000;

    /// What each captured event is; its time is the payload's own.
    #[test]
    fn the_captured_events_are_read_in_claude_codes_terms() {
        let kinds: Vec<(String, String)> = payloads()
            .iter()
            .map(|p| {
                let ev = parse(&serde_json::to_vec(p).unwrap(), RECEIVED, Capture::Metadata).unwrap();
                assert_eq!(ev.source, Agent::Gemini);
                assert_eq!(Some(ev.at), p["timestamp"].as_str().and_then(rfc3339_ns));
                let kind = format!("{:?}", ev.kind);
                (ev.name, kind.split([' ', '(']).next().unwrap().to_owned())
            })
            .collect();
        let expected = [
            ("SessionStart", "SessionStart"),
            ("BeforeAgent", "PromptSubmit"),
            ("PreCompress", "Other"),
            ("BeforeModel", "ModelStart"),
            ("BeforeToolSelection", "Nothing"),
            ("AfterModel", "ModelEnd"),
            ("BeforeTool", "ToolStart"),
            ("AfterTool", "ToolEnd"),
            ("PreCompress", "Other"),
            ("BeforeModel", "ModelStart"),
            ("BeforeToolSelection", "Nothing"),
            ("AfterModel", "ModelEnd"),
            ("AfterAgent", "TurnEnd"),
            ("SessionEnd", "SessionEnd"),
        ];
        let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(kinds, expected);
    }

    /// A streamed chunk (no finish reason) ends nothing; the conversation never reaches the event or
    /// the journal, at any capture level.
    #[test]
    fn a_chunk_ends_nothing_and_the_conversation_is_not_kept() {
        let after_model = payloads().into_iter().find(|p| p["hook_event_name"] == "AfterModel").unwrap();
        let mut chunk = after_model.clone();
        chunk["llm_response"]["candidates"][0].as_object_mut().unwrap().remove("finishReason");
        let ev = parse(&serde_json::to_vec(&chunk).unwrap(), RECEIVED, Capture::Full).unwrap();
        assert_eq!(ev.kind, Kind::Nothing);
        for capture in [Capture::None, Capture::Metadata, Capture::Full] {
            let ev = parse(&serde_json::to_vec(&after_model).unwrap(), RECEIVED, capture).unwrap();
            assert_eq!(ev.kind, Kind::ModelEnd { finish_reason: "STOP".into() });
            let kept = String::from_utf8(ev.raw.to_vec()).unwrap();
            assert!(!kept.contains("session_context") && !kept.contains("messages"), "{capture:?}: {kept}");
        }
    }

    /// What the journal keeps of each captured payload (and of a failing call's) gives the same
    /// event again, at every capture level.
    #[test]
    fn what_the_journal_keeps_gives_the_same_event() {
        let mut all = payloads();
        let mut failing = all.iter().find(|p| p["hook_event_name"] == "AfterTool").unwrap().clone();
        failing["tool_response"] = json!({"llmContent": "Output: x\nExit Code: 2", "returnDisplay": "x"});
        let mut error = failing.clone();
        error["tool_response"] = json!({"llmContent": "no", "error": {"message": "File not found: a", "type": "X"}});
        all.extend([failing, error]);
        for capture in [Capture::None, Capture::Metadata, Capture::Full] {
            for p in &all {
                let whole = parse(&serde_json::to_vec(p).unwrap(), RECEIVED, capture).unwrap();
                let again = parse(&whole.raw, RECEIVED + 5, capture).unwrap();
                let what = |e: &Event| (e.at, e.name.clone(), format!("{:?}", e.kind), e.prompt_id.clone());
                assert_eq!(what(&whole), what(&again), "{capture:?} {}", p["hook_event_name"]);
            }
        }
    }
}
