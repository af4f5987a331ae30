//! Claude Code's parser: one hook payload into an [`Event`] (what it means for the span tree, plus
//! the attributes the capture level allows out), and what of a payload is kept at rest.
//!
//! Pure: no I/O, no clock (the receive time is passed in). Tolerant: unknown events and unknown
//! fields are accepted, optional fields may be missing; only a payload without a session or an event
//! name is refused, because nothing could be keyed on it.

use opentelemetry::KeyValue;
use serde_json::{Map, Value};

use crate::ingest::agents::Rejected;
use crate::model::agent::Agent;
use crate::model::capture::{self, Capture};
use crate::model::event::{ApiCall, Event, Kind, ToolCall, ToolOutcome, ToolTiming};
use crate::model::payload::{
    AGENT_TEAMS, CUSTOM_ATTRIBUTES, NATIVE_TELEMETRY, ORIGINAL_PAYLOAD_BYTES, ORIGINAL_RESPONSE_BYTES, PULL_REQUEST,
};
use crate::model::pull_request;
use crate::model::semconv;

/// The names Claude Code's telemetry events get as events of a session (`native::events`).
pub(crate) const API_REQUEST: &str = "claude_code.api_request";
pub(crate) const API_ERROR: &str = "claude_code.api_error";
pub(crate) const TOOL_DECISION: &str = "claude_code.tool_decision";
pub(crate) const TOOL_RESULT: &str = "claude_code.tool_result";
pub(crate) const TOOL_SPAN: &str = "claude_code.tool";
pub(crate) const METRIC: &str = "claude_code.metric";
/// One export of Claude Code's telemetry that held records of a session, stamped with its oldest
/// record's time (`ingest::native` makes one per session and request).
pub(crate) const TELEMETRY_BATCH: &str = "claude_code.batch";

/// The hook event of a skill's inline shell command (Claude Code 2.1.332 on). Its payload:
/// `command_name` (the skill), `command_source` (where the skill is defined), `invoked_by` (`claude`,
/// `user`, `other`), `tool_name` (the shell tool, `Bash`), `tool_input.command`, and a `tool_use_id`
/// of its own (`<id>:preamble-<n>`) that no tool span has.
pub(crate) const SKILL_SHELL_COMMAND: &str = "PreSkillShellCommand";

/// Normalise a payload already parsed into a JSON object.
pub fn normalize(p: &Map<String, Value>, at: u64, capture: Capture) -> Result<Event, Rejected> {
    let session_id = str_field(p, "session_id").ok_or(Rejected::MissingField("session_id"))?;
    if session_id.is_empty() {
        return Err(Rejected::EmptySession);
    }
    let name = str_field(p, "hook_event_name").ok_or(Rejected::MissingField("hook_event_name"))?;
    check_lengths(p)?;
    let mut attrs = Vec::new();
    let kind = match name {
        "SessionStart" => {
            let source = str_field(p, "source").unwrap_or("unknown").to_owned();
            attrs.push(KeyValue::new(semconv::SESSION_SOURCE, source.clone()));
            if let Some(model) = str_field(p, "model") {
                attrs.push(KeyValue::new(semconv::REQUEST_MODEL, model.to_owned()));
            }
            Kind::SessionStart { source }
        }
        "SessionEnd" => Kind::SessionEnd { reason: str_field(p, "reason").unwrap_or("unknown").to_owned() },
        "UserPromptSubmit" if p.contains_key("prompt_id") => {
            let prompt = str_field(p, "prompt").filter(|_| capture.prompts()).map(str::to_owned);
            Kind::PromptSubmit { prompt }
        }
        "Stop" if p.contains_key("prompt_id") => Kind::TurnEnd { failure: None, message: None },
        "StopFailure" if p.contains_key("prompt_id") => {
            let error = str_field(p, "error").unwrap_or("unknown").to_owned();
            if let Some(details) = str_field(p, "error_details").filter(|_| capture != Capture::None) {
                attrs.push(KeyValue::new(semconv::ERROR_DETAILS, capture::clip(details, 256)));
            }
            let message = str_field(p, FAILURE_MESSAGE).filter(|m| !m.trim().is_empty()).map(|m| capture.error_text(m));
            Kind::TurnEnd { failure: Some(error), message }
        }
        "PreToolUse" | "PostToolUse" | "PostToolUseFailure" | "PermissionDenied" => match tool_call(p, capture) {
            Some(call) if name == "PreToolUse" => Kind::ToolStart(call),
            Some(call) => {
                let outcome = tool_outcome(name, p, capture);
                Kind::ToolEnd(call, outcome)
            }
            None => Kind::Other,
        },
        "SubagentStart" | "SubagentStop" if p.contains_key("agent_id") => {
            if name == "SubagentStart" {
                Kind::SubagentStart { parent_tool_use_id: None }
            } else {
                Kind::SubagentStop { parent_tool_use_id: None }
            }
        }
        "TaskCreated" | "TaskCompleted" if str_field(p, "task_id").is_some() => Kind::Task {
            created: name == "TaskCreated",
            task_id: str_field(p, "task_id").unwrap_or_default().to_owned(),
            subject: str_field(p, "task_subject")
                .filter(|_| capture != Capture::None)
                .map(|s| capture::clip(&capture::redact_text(s), 128)),
        },
        "PreCompact" => Kind::CompactStart { trigger: str_field(p, "trigger").unwrap_or("unknown").to_owned() },
        "PostCompact" => Kind::CompactEnd { trigger: str_field(p, "trigger").unwrap_or("unknown").to_owned() },
        API_REQUEST | API_ERROR => Kind::ModelCall(api_call(p, name == API_ERROR, capture)),
        TOOL_DECISION | TOOL_RESULT | TOOL_SPAN => Kind::ToolTiming(tool_timing(p, name)),
        METRIC => session_counter(p)?,
        TELEMETRY_BATCH => Kind::TelemetryBatch,
        SKILL_SHELL_COMMAND => {
            if let Some(input) = p.get("tool_input") {
                attrs.extend(capture::tool_input(input, capture));
            }
            Kind::SkillShellCommand
        }
        "PermissionRequest" => match str_field(p, "tool_name") {
            Some(tool) => {
                attrs.push(KeyValue::new(semconv::TOOL_NAME, tool.to_owned()));
                Kind::PermissionRequest { tool_name: tool.to_owned() }
            }
            None => Kind::Other,
        },
        _ => Kind::Other,
    };
    let spawned = p.get("tool_response").filter(|_| name == "PostToolUse").and_then(spawned_teammate);
    let custom = p.get(CUSTOM_ATTRIBUTES).and_then(Value::as_object);
    if let Some(fields) = custom {
        // a producer's own attributes, under its own keys
        attrs.extend(fields.iter().filter_map(|(k, v)| custom_attr(k, v)));
    } else if kind == Kind::Other
        || matches!(
            kind,
            Kind::SessionEnd { .. } | Kind::CompactStart { .. } | Kind::CompactEnd { .. } | Kind::SkillShellCommand
        )
    {
        attrs.extend(scalar_attrs(p, capture));
    }
    Ok(Event {
        source: Agent::ClaudeCode,
        session_id: session_id.into(),
        name: name.to_owned(),
        at,
        prompt_id: str_field(p, "prompt_id").map(str::to_owned),
        agent_id: str_field(p, "agent_id").filter(|s| !s.is_empty()).map(str::to_owned),
        agent_type: str_field(p, "agent_type").map(str::to_owned),
        cwd: str_field(p, "cwd").map(str::to_owned),
        transcript_path: str_field(p, "transcript_path").filter(|s| !s.is_empty()).map(str::to_owned),
        team: str_field(p, "team_name")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or_else(|| spawned.clone().map(|(t, _)| t)),
        teammate: str_field(p, "teammate_name")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or(spawned.map(|(_, n)| n)),
        team_lead: None,
        agent_teams: p.get(AGENT_TEAMS) == Some(&Value::Bool(true)),
        native_telemetry: p.get(NATIVE_TELEMETRY) == Some(&Value::Bool(true)),
        kind: if custom.is_some() { Kind::Other } else { kind },
        attrs,
        raw: bytes::Bytes::new(),
        held: Default::default(),
        custom: custom.is_some(),
    })
}

fn custom_attr(key: &str, value: &Value) -> Option<KeyValue> {
    let key = key.to_owned();
    Some(match value {
        Value::Bool(b) => KeyValue::new(key, *b),
        Value::Number(n) if n.is_i64() => KeyValue::new(key, n.as_i64().unwrap_or_default()),
        Value::Number(n) => KeyValue::new(key, n.as_f64().unwrap_or_default()),
        Value::String(s) => KeyValue::new(key, capture::clip(s, capture::FULL_MAX)),
        Value::Null => return None,
        other => KeyValue::new(key, capture::clip_json(other, capture::FULL_MAX)),
    })
}

/// Longest id or name hooktel keeps (a session id is 36 bytes, tool and agent ids under 64): a
/// longer one is refused, so that no payload can make the per-session state, the journal and the
/// labels hold kilobytes per key.
const MAX_ID_BYTES: usize = 256;

/// Longest `status_code` of an API error kept.
const MAX_STATUS_BYTES: usize = 16;

/// Longest path kept (Linux's PATH_MAX).
const MAX_PATH_BYTES: usize = 4096;

/// Ids, names and paths over their bounds refuse the payload (`field_too_long`).
fn check_lengths(p: &Map<String, Value>) -> Result<(), Rejected> {
    const IDS: [&str; 12] = [
        "session_id",
        "hook_event_name",
        "prompt_id",
        "agent_id",
        "agent_type",
        "tool_use_id",
        "tool_name",
        "request_id",
        "model",
        "team_name",
        "teammate_name",
        "task_id",
    ];
    for key in IDS {
        if str_field(p, key).is_some_and(|v| v.len() > MAX_ID_BYTES) {
            return Err(Rejected::TooLong(key, MAX_ID_BYTES));
        }
    }
    for key in ["cwd", "transcript_path"] {
        if str_field(p, key).is_some_and(|v| v.len() > MAX_PATH_BYTES) {
            return Err(Rejected::TooLong(key, MAX_PATH_BYTES));
        }
    }
    Ok(())
}

fn str_field<'a>(p: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    p.get(key).and_then(Value::as_str)
}

/// A count that Claude Code sends as a number or as a numeric string.
fn count(p: &Map<String, Value>, key: &str) -> Option<u64> {
    match p.get(key)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn api_call(p: &Map<String, Value>, failed: bool, capture: Capture) -> ApiCall {
    ApiCall {
        request_id: str_field(p, "request_id").filter(|s| !s.is_empty()).map(str::to_owned),
        model: str_field(p, "model").unwrap_or("unknown").to_owned(),
        duration_ms: count(p, "duration_ms").unwrap_or(0),
        ttft_ms: count(p, "ttft_ms"),
        attempt: count(p, "attempt").map(|a| a.max(1)),
        error: failed.then(|| capture.error_text(str_field(p, "error").unwrap_or("API error"))),
        // an HTTP status is three digits: anything longer is not one (and would be held per try)
        status_code: p.get("status_code").and_then(|v| match v {
            Value::String(s) if s.len() <= MAX_STATUS_BYTES => Some(s.clone()),
            Value::Number(n) if n.is_u64() => Some(n.to_string()),
            _ => None,
        }),
        user: ["user_email", "user_account_uuid"]
            .iter()
            .filter(|_| capture.identity())
            .find_map(|k| str_field(p, k).filter(|u| !u.is_empty() && u.len() <= MAX_ID_BYTES))
            .map(str::to_owned),
    }
}

fn tool_timing(p: &Map<String, Value>, name: &str) -> ToolTiming {
    // a decision and its source are short words (`accept`, `config`)
    let word = |key| str_field(p, key).filter(|_| name == TOOL_DECISION).map(|w| capture::clip(w, 32));
    ToolTiming {
        tool_use_id: str_field(p, "tool_use_id").filter(|s| !s.is_empty()).map(str::to_owned),
        otel_tool_span: str_field(p, "otel_tool_span")
            .filter(|s| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned),
        decision: word("decision"),
        decision_source: word("decision_source"),
        wait_ms: count(p, "wait_ms").filter(|_| name == TOOL_DECISION),
        execution_ms: count(p, "duration_ms").filter(|_| name == TOOL_RESULT),
    }
}

/// A session counter, if `metric` names one (else nothing to do). Its `value` must be a count from
/// 0 to [`semconv::MAX_SESSION_COUNTER`]: anything else (not finite, negative, absurdly large) is
/// refused, never added to the root span.
fn session_counter(p: &Map<String, Value>) -> Result<Kind, Rejected> {
    let Some(attr) = str_field(p, "metric").and_then(|m| semconv::SESSION_COUNTERS.iter().find(|a| **a == m)) else {
        return Ok(Kind::Other);
    };
    let value = p
        .get("value")
        .and_then(Value::as_f64)
        .filter(|v| (0.0..=semconv::MAX_SESSION_COUNTER).contains(v))
        .ok_or(Rejected::OutOfRange("value"))?;
    Ok(Kind::SessionCounter { attr, value, cumulative: p.get("cumulative") == Some(&Value::Bool(true)) })
}

fn tool_call(p: &Map<String, Value>, capture: Capture) -> Option<ToolCall> {
    let name = str_field(p, "tool_name")?.to_owned();
    let call_id = str_field(p, "tool_use_id").filter(|s| !s.is_empty())?.to_owned();
    let mut attrs = Vec::new();
    // an MCP tool's server comes from its name (semconv::tool); a payload's own names any other's
    if let Some(Value::Object(server)) = p.get("mcp_server").filter(|_| semconv::mcp_server(&name).is_none()) {
        if let Some(s) = server.get("name").and_then(Value::as_str) {
            attrs.push(KeyValue::new(semconv::MCP_SERVER, s.to_owned()));
        }
    }
    if let Some(input) = p.get("tool_input") {
        attrs.extend(capture::tool_input(input, capture));
    }
    let response = p.get("tool_response");
    if let Some(resp) = response.filter(|_| capture.outputs()) {
        attrs.push(KeyValue::new(semconv::TOOL_OUTPUT, capture::clip_json(resp, capture::FULL_MAX)));
    }
    if let Some(bytes) = p.get(ORIGINAL_RESPONSE_BYTES).and_then(Value::as_u64) {
        attrs.push(KeyValue::new(semconv::TOOL_RESPONSE_BYTES, bytes as i64));
    }
    if let Some(bytes) = p.get(ORIGINAL_PAYLOAD_BYTES).and_then(Value::as_u64) {
        attrs.push(KeyValue::new(semconv::PAYLOAD_BYTES, bytes as i64));
    }
    let spawned_agent = response.and_then(|r| r.get("agentId")).and_then(Value::as_str).map(str::to_owned);
    let spawned_teammate = response.and_then(spawned_teammate).map(|(_, name)| name);
    let duration_ms = p.get("duration_ms").and_then(Value::as_u64);
    // noted by `payload::trim_payload` where the output was whole; checked again, as any input is
    let pull_request = str_field(p, PULL_REQUEST)
        .filter(|_| name == "Bash" && str_field(p, "hook_event_name") == Some("PostToolUse"))
        .and_then(pull_request::parse);
    Some(ToolCall { name, call_id, attrs, duration_ms, spawned_agent, spawned_teammate, pull_request })
}

/// The (team, teammate name) of an `Agent` call's response that spawned a teammate.
fn spawned_teammate(response: &Value) -> Option<(String, String)> {
    if response.get("status").and_then(Value::as_str) != Some("teammate_spawned") {
        return None;
    }
    let field = |k| response.get(k).and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= MAX_ID_BYTES);
    Some((field("team_name")?.to_owned(), field("name")?.to_owned()))
}

fn tool_outcome(name: &str, p: &Map<String, Value>, capture: Capture) -> ToolOutcome {
    match name {
        "PostToolUseFailure" if p.get("is_interrupt").and_then(Value::as_bool) == Some(true) => {
            ToolOutcome::Interrupted
        }
        "PostToolUseFailure" => ToolOutcome::Error(capture.error_text(str_field(p, "error").unwrap_or("tool failed"))),
        "PermissionDenied" => {
            ToolOutcome::Denied(capture.error_text(str_field(p, "reason").unwrap_or("permission denied")))
        }
        _ if p.get("tool_response").and_then(|r| r.get("interrupted")).and_then(Value::as_bool) == Some(true) => {
            ToolOutcome::Interrupted
        }
        _ => ToolOutcome::Ok,
    }
}

/// Keys every payload has, or that are kept elsewhere; never repeated as event attributes.
const BASE_KEYS: &[&str] = &[
    "session_id",
    "transcript_path",
    "cwd",
    "prompt_id",
    "permission_mode",
    "agent_id",
    "agent_type",
    "hook_event_name",
    "effort",
];

/// Keys whose values are free text written by the model or the user: exported only at full capture.
const TEXT_KEYS: &[&str] = &[
    "prompt",
    "message",
    "delta",
    "last_assistant_message",
    "compact_summary",
    "custom_instructions",
    "content",
    "task_description",
    "error_details",
    "requested_schema",
];

/// A field whose string value is a name, an id, a kind or a status rather than free text.
fn names_a_thing(key: &str) -> bool {
    key.ends_with("_id")
        || key.ends_with("_name")
        || key.ends_with("_type")
        || matches!(key, "status" | "reason" | "source" | "trigger" | "model" | "matcher")
}

/// Scalar fields of an event as `hooktel.hook.<key>` attributes: numbers and booleans always,
/// strings clipped, free text only at full capture, nested values skipped.
fn scalar_attrs(p: &Map<String, Value>, capture: Capture) -> Vec<KeyValue> {
    let mut out = Vec::new();
    for (key, value) in p {
        if BASE_KEYS.contains(&key.as_str()) || key.starts_with("hooktel_") {
            continue;
        }
        let text = TEXT_KEYS.contains(&key.as_str());
        if text && !capture.prompts() {
            continue;
        }
        if capture == Capture::None && value.is_string() && !names_a_thing(key) {
            // `none` is names, ids, timings and status: free text (a title, a command's arguments, a
            // task's subject, an unknown event's `api_key`) stays home
            continue;
        }
        let k = format!("hooktel.hook.{key}");
        // a secret-named text field (`api_key`, `auth_token`), not a count such as `input_tokens`
        if value.is_string() && capture::is_secret_name(key) && !key.contains("tokens") {
            out.push(KeyValue::new(k, "***"));
            continue;
        }
        match value {
            Value::Bool(b) => out.push(KeyValue::new(k, *b)),
            Value::Number(n) if n.is_i64() => out.push(KeyValue::new(k, n.as_i64().unwrap_or_default())),
            Value::Number(n) => out.push(KeyValue::new(k, n.as_f64().unwrap_or_default())),
            Value::String(s) => {
                let max = if text { capture::FULL_MAX } else { 256 };
                out.push(KeyValue::new(k, capture::clip(s, max)))
            }
            _ if text => out.push(KeyValue::new(k, capture::clip_json(value, capture::FULL_MAX))),
            _ => {}
        }
    }
    out
}

/// StopFailure's field holding the API error's text.
const FAILURE_MESSAGE: &str = "last_assistant_message";

/// Keys of a tool input that the `metadata` summary reads (see `capture::tool_input`).
const SUMMARISED_INPUT_KEYS: &[&str] =
    &["file_path", "notebook_path", "path", "pattern", "command", "url", "subagent_type"];

/// Reduce a payload to what `normalize` reads at `capture`, for the journal: what a capture level
/// keeps from export is not kept at rest either. `kind` is what `normalize` made of the payload (a
/// tool call reads its input and output; other events export their scalar fields). `normalize`
/// gives the same event for the reduced payload as for the whole one (tested over the captured
/// payloads and fuzzed ones, at every level).
pub(crate) fn keep_at_rest(p: &mut Map<String, Value>, capture: Capture, kind: &Kind) {
    if capture == Capture::Full {
        return;
    }
    let tool_call = matches!(kind, Kind::ToolStart(_) | Kind::ToolEnd(..));
    // a skill's shell command is summarised from its `tool_input` as a tool call's input is
    let reads_input = tool_call || *kind == Kind::SkillShellCommand;
    let failure_message = matches!(kind, Kind::TurnEnd { failure: Some(_), .. });
    if let Some(Value::String(m)) = p.get_mut(FAILURE_MESSAGE).filter(|_| failure_message) {
        // a failed turn's status message: of the API error's text, only the first line, redacted
        *m = capture::redact_text(m.lines().next().unwrap_or_default());
    }
    if let Some(input) = p.get_mut("tool_input").filter(|_| reads_input) {
        match (capture, input) {
            (Capture::Metadata, Value::Object(fields)) => {
                fields.retain(|k, _| SUMMARISED_INPUT_KEYS.contains(&k.as_str()))
            }
            (_, input) => *input = Value::Object(Map::new()),
        }
    }
    if let Some(response) = p.get_mut("tool_response").filter(|_| tool_call) {
        // what tells the outcome and the subagent an Agent call spawned; never the output itself
        *response = match response {
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .filter(|(k, _)| matches!(k.as_str(), "agentId" | "interrupted" | "status" | "team_name" | "name"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => Value::Null,
        };
    }
    p.retain(|key, value| {
        let key = key.as_str();
        if BASE_KEYS.contains(&key) || key.starts_with("hooktel_") {
            return true;
        }
        match key {
            "tool_input" | "tool_response" if tool_call => return true,
            "tool_input" if reads_input => return true,
            "mcp_server" | CUSTOM_ATTRIBUTES | "error" | "status_code" => return true,
            // the account of Claude Code's telemetry: only where it may leave as `user.id`
            "user_email" | "user_account_uuid" => return capture.identity(),
            FAILURE_MESSAGE if failure_message => return true,
            // StopFailure's details are exported (clipped) at metadata
            "error_details" => return capture != Capture::None,
            _ => {}
        }
        match value {
            Value::String(_) if TEXT_KEYS.contains(&key) => false,
            Value::String(_) => capture != Capture::None || names_a_thing(key),
            Value::Object(_) | Value::Array(_) => false,
            _ => true,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the journal keeps of a payload gives the same event as the whole payload, at every
    /// capture level, and below `full` holds no prompt, no tool output and no unsummarised input.
    #[test]
    fn what_is_kept_at_rest_is_enough_and_no_more() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hooks");
        let mut payloads: Vec<Map<String, Value>> = Vec::new();
        for sub in ["captured", "documented"] {
            for f in std::fs::read_dir(format!("{dir}/{sub}")).unwrap() {
                let path = f.unwrap().path();
                if path.extension().is_some_and(|e| e == "json") {
                    if let Ok(Value::Object(m)) = serde_json::from_slice(&std::fs::read(&path).unwrap()) {
                        payloads.push(m);
                    }
                }
            }
        }
        let extra = json!([
            {"session_id": "s", "hook_event_name": "StopFailure", "prompt_id": "p", "error": "rate_limit",
             "error_details": "429 SECRET-DETAILS", "last_assistant_message": "API Error: 429\nSECRET-MESSAGE"},
            {"session_id": "s", "hook_event_name": "Stop", "prompt_id": "p", "last_assistant_message": "SECRET-MESSAGE"},
            {"session_id": "s", "hook_event_name": "SomethingNew", "title": "SECRET-TITLE", "api_key": "k",
             "nested": {"text": "SECRET-NESTED"}, "count": 3, "notification_type": "idle"},
            {"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Agent", "tool_use_id": "t",
             "tool_input": {"prompt": "SECRET-PROMPT", "subagent_type": "Explore"},
             "tool_response": {"agentId": "a1", "interrupted": false, "content": "SECRET-OUTPUT"}},
            {"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_use_id": "t",
             "tool_input": "SECRET-STRING-INPUT", "tool_response": "SECRET-STRING-OUTPUT"},
            {"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_use_id": "t",
             "tool_input": {"command": "gh pr create --fill", "description": "SECRET-DESCRIPTION"},
             "tool_response": {"stdout": "SECRET-OUTPUT\nhttps://github.com/a/b/pull/3\n", "stderr": ""},
             "hooktel_pull_request": "https://github.com/a/b/pull/3"},
            {"session_id": "s", "hook_event_name": API_REQUEST, "request_id": "req_1", "model": "m",
             "duration_ms": 5, "user_email": "SECRET-EMAIL@example.com", "user_account_uuid": "SECRET-UUID"},
        ]);
        payloads.extend(extra.as_array().unwrap().iter().map(|v| v.as_object().unwrap().clone()));
        assert!(payloads.len() > 20, "{} payloads", payloads.len());
        for capture in [Capture::None, Capture::Metadata, Capture::Full] {
            for p in &payloads {
                let Ok(whole) = normalize(p, 1, capture) else { continue };
                let mut kept = p.clone();
                keep_at_rest(&mut kept, capture, &whole.kind);
                let reduced = normalize(&kept, 1, capture).unwrap();
                let show =
                    |e: &Event| format!("{:?} {:?} {:?}", e.kind, e.attrs, (&e.cwd, &e.transcript_path, &e.agent_id));
                assert_eq!(show(&reduced), show(&whole), "{capture:?}: {p:?}");
                let text = serde_json::to_string(&kept).unwrap();
                if capture != Capture::Full {
                    for secret in [
                        "SECRET-PROMPT",
                        "SECRET-OUTPUT",
                        "SECRET-STRING",
                        "SECRET-NESTED",
                        "SECRET-MESSAGE",
                        "SECRET-EMAIL",
                        "SECRET-UUID",
                    ] {
                        assert!(!text.contains(secret), "{capture:?} keeps {secret}: {text}");
                    }
                    assert!(!p.contains_key("prompt") || !kept.contains_key("prompt"), "{text}");
                }
                if capture == Capture::None {
                    assert!(!text.contains("SECRET-TITLE") && !text.contains("SECRET-DETAILS"), "{text}");
                }
            }
        }
    }

    /// The account Claude Code's telemetry names becomes the session's user only at `full`: its
    /// email, else its uuid; never at the default level or at `none`.
    #[test]
    fn the_account_is_a_user_only_where_identity_may_leave() {
        let report = |fields: Value| {
            let mut p = json!({"session_id": "s", "hook_event_name": API_REQUEST, "request_id": "r", "model": "m"});
            p.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
            p
        };
        let user = |p: &Value, capture| match normalize(p.as_object().unwrap(), 1, capture).unwrap().kind {
            Kind::ModelCall(call) => call.user,
            other => panic!("{other:?}"),
        };
        let both = report(json!({"user_email": "dev@example.com", "user_account_uuid": "8f1c"}));
        assert_eq!(user(&both, Capture::Full).as_deref(), Some("dev@example.com"));
        assert_eq!(user(&report(json!({"user_account_uuid": "8f1c"})), Capture::Full).as_deref(), Some("8f1c"));
        for capture in [Capture::None, Capture::Metadata] {
            assert_eq!(user(&both, capture), None, "{capture:?}");
        }
        let long = report(json!({"user_email": "x".repeat(MAX_ID_BYTES + 1)}));
        assert_eq!(user(&long, Capture::Full), None, "an id past its bound is no user");
    }

    fn ev(v: Value) -> Event {
        normalize(v.as_object().unwrap(), 1, Capture::Metadata).unwrap()
    }

    /// At `none`, names, ids, timings and status only: free text and secrets of hook fields stayed in.
    #[test]
    fn capture_none_keeps_free_text_home() {
        let unknown = json!({"session_id": "s", "hook_event_name": "SomethingNew", "title": "SECRET-TITLE",
            "command_args": "SECRET-ARGS", "task_subject": "SECRET-SUBJECT", "api_key": "SECRET-KEY",
            "tool_name": "Bash", "count": 3, "notification_type": "idle"});
        let failure = json!({"session_id": "s", "hook_event_name": "StopFailure", "prompt_id": "p",
            "error": "rate_limit", "error_details": "SECRET-DETAILS"});
        for p in [&unknown, &failure] {
            let e = normalize(p.as_object().unwrap(), 1, Capture::None).unwrap();
            let text = format!("{:?}", e.attrs);
            assert!(!text.contains("SECRET"), "{text}");
            if p == &unknown {
                for kept in ["hooktel.hook.tool_name", "hooktel.hook.count", "hooktel.hook.notification_type"] {
                    assert!(e.attrs.iter().any(|kv| kv.key.as_str() == kept), "{kept} in {text}");
                }
            }
        }
        // a secret-named field never goes out as it is, at any level
        let e = normalize(unknown.as_object().unwrap(), 1, Capture::Metadata).unwrap();
        assert!(!format!("{:?}", e.attrs).contains("SECRET-KEY"));
        assert!(format!("{:?}", e.attrs).contains("SECRET-TITLE"), "metadata keeps the title");
    }

    #[test]
    fn refuses_payloads_without_keys() {
        assert_eq!(
            crate::ingest::accept::parse(b"{", 0, Capture::Metadata).unwrap_err().metric_label(),
            "malformed_json"
        );
        assert_eq!(crate::ingest::accept::parse(b"[1]", 0, Capture::Metadata).unwrap_err(), Rejected::NotObject);
        assert_eq!(
            crate::ingest::accept::parse(br#"{"hook_event_name":"Stop"}"#, 0, Capture::Metadata).unwrap_err(),
            Rejected::MissingField("session_id")
        );
        assert_eq!(
            crate::ingest::accept::parse(br#"{"session_id":"s"}"#, 0, Capture::Metadata).unwrap_err(),
            Rejected::MissingField("hook_event_name")
        );
        assert_eq!(
            crate::ingest::accept::parse(br#"{"session_id":"","hook_event_name":"Stop"}"#, 0, Capture::Metadata)
                .unwrap_err(),
            Rejected::EmptySession
        );
    }

    /// An active time of 1e306 s became +inf on the root span (stored as `null`: every view of the
    /// local store failed). A session counter's value is a count from 0 to the bound, or refused.
    #[test]
    fn session_counters_out_of_range_are_refused() {
        let metric = |value: Value| {
            let p = json!({"session_id": "s", "hook_event_name": METRIC,
                "metric": semconv::SESSION_ACTIVE_USER_S, "value": value});
            normalize(p.as_object().unwrap(), 1, Capture::Metadata)
        };
        for bad in [json!(1e306), json!(-1), json!(null), json!("12"), json!(semconv::MAX_SESSION_COUNTER * 2.0)] {
            assert_eq!(metric(bad.clone()).unwrap_err().metric_label(), "out_of_range", "{bad}");
        }
        assert!(matches!(metric(json!(2.006)).unwrap().kind, Kind::SessionCounter { value: 2.006, .. }));
        assert!(matches!(metric(json!(semconv::MAX_SESSION_COUNTER)).unwrap().kind, Kind::SessionCounter { .. }));
        let unknown = json!({"session_id": "s", "hook_event_name": METRIC, "metric": "x", "value": 1e306});
        assert_eq!(normalize(unknown.as_object().unwrap(), 1, Capture::Metadata).unwrap().kind, Kind::Other);
    }

    #[test]
    fn unknown_events_are_kept_with_their_fields() {
        let e = ev(json!({"session_id": "s", "hook_event_name": "TokenUsageUpdated", "tokens": 12, "x": {"y": 1}}));
        assert_eq!(e.kind, Kind::Other);
        assert_eq!(e.name, "TokenUsageUpdated");
        assert!(e.attrs.iter().any(|kv| kv.key.as_str() == "hooktel.hook.tokens"));
    }

    /// A skill's shell command: a span event with the skill's name, the command redacted and clipped
    /// as a Bash call's is by default, nothing of it at `none`, all of it at `full`.
    #[test]
    fn a_skill_shell_command_names_its_skill_and_redacts_its_command() {
        let fixture = include_str!("../../../tests/fixtures/hooks/documented/PreSkillShellCommand.json");
        let p: Map<String, Value> = serde_json::from_str(fixture).unwrap();
        let attr = |e: &Event, key: &str| {
            e.attrs.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned())
        };
        let e = normalize(&p, 1, Capture::Metadata).unwrap();
        assert_eq!(e.kind, Kind::SkillShellCommand);
        assert_eq!(e.name, SKILL_SHELL_COMMAND);
        assert_eq!(attr(&e, "hooktel.hook.command_name").as_deref(), Some("release-notes"));
        assert_eq!(attr(&e, "hooktel.hook.command_source").as_deref(), Some("projectSettings"));
        assert_eq!(attr(&e, "hooktel.hook.invoked_by").as_deref(), Some("claude"));
        assert_eq!(attr(&e, "hooktel.hook.tool_name").as_deref(), Some("Bash"));
        let command = attr(&e, "hooktel.tool.input.command").expect("the command's summary");
        assert!(command.starts_with("curl -s -H 'Authorization: Bearer ***"), "{command}");
        assert!(!format!("{:?}", e.attrs).contains("ghp_"), "{:?}", e.attrs);

        let none = normalize(&p, 1, Capture::None).unwrap();
        assert_eq!(attr(&none, "hooktel.hook.command_name").as_deref(), Some("release-notes"));
        assert!(!format!("{:?}", none.attrs).contains("curl"), "{:?}", none.attrs);
        let full = normalize(&p, 1, Capture::Full).unwrap();
        assert!(attr(&full, "hooktel.tool.input").is_some_and(|i| i.contains("ghp_")), "{:?}", full.attrs);

        // what the journal keeps of it at the default level is the command, for the summary only
        let mut kept = p.clone();
        keep_at_rest(&mut kept, Capture::Metadata, &e.kind);
        assert_eq!(kept["tool_input"], p["tool_input"]);
        keep_at_rest(&mut kept, Capture::None, &e.kind);
        assert_eq!(kept["tool_input"], json!({}));
    }

    #[test]
    fn failure_and_interrupt_and_denial() {
        let base =
            json!({"session_id": "s", "tool_name": "Bash", "tool_use_id": "t1", "tool_input": {"command": "false"}});
        let mut fail = base.clone();
        fail["hook_event_name"] = "PostToolUseFailure".into();
        fail["error"] = "Exit code 1".into();
        match ev(fail.clone()).kind {
            Kind::ToolEnd(_, ToolOutcome::Error(msg)) => assert_eq!(msg, "Exit code 1"),
            k => panic!("{k:?}"),
        }
        fail["is_interrupt"] = true.into();
        assert!(matches!(ev(fail).kind, Kind::ToolEnd(_, ToolOutcome::Interrupted)));
        let mut denied = base.clone();
        denied["hook_event_name"] = "PermissionDenied".into();
        denied["reason"] = "no".into();
        assert!(matches!(ev(denied).kind, Kind::ToolEnd(_, ToolOutcome::Denied(_))));
    }

    #[test]
    fn a_noted_pull_request_is_typed_on_a_bash_call_only() {
        let post = |tool: &str, event: &str, note: &str| {
            let e = ev(json!({"session_id": "s", "hook_event_name": event, "tool_name": tool, "tool_use_id": "t",
                "tool_input": {"command": "gh pr create"}, "tool_response": {"stdout": "", "stderr": ""},
                "hooktel_pull_request": note}));
            match e.kind {
                Kind::ToolEnd(call, _) | Kind::ToolStart(call) => call.pull_request.map(|pr| (pr.url, pr.number)),
                _ => panic!(),
            }
        };
        let url = "https://github.com/acme/api/pull/42";
        assert_eq!(post("Bash", "PostToolUse", url), Some((url.to_owned(), 42)));
        assert_eq!(post("Read", "PostToolUse", url), None);
        assert_eq!(post("Bash", "PreToolUse", url), None);
        // a note that is no pull request's URL is no pull request, and leaves nothing of itself
        assert_eq!(post("Bash", "PostToolUse", "https://github.com/acme/api/pull/new/x"), None);
        assert_eq!(post("Bash", "PostToolUse", &"x".repeat(10_000)), None);
        let e = ev(json!({"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Bash",
            "tool_use_id": "t", "tool_input": {"command": "gh pr create"}, "hooktel_pull_request": "SECRET"}));
        assert!(!format!("{e:?}").contains("SECRET"));
    }

    /// A restart parses what the journal kept (`ev.raw`) again: the pull request is still there, at
    /// every capture level, and the output is not.
    #[test]
    fn a_pull_request_survives_the_journal_at_every_capture_level() {
        let body = json!({"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Bash",
            "tool_use_id": "t", "tool_input": {"command": "gh pr create --fill"},
            "tool_response": {"stdout": "SECRET-LINE\nhttps://github.com/acme/api/pull/42\n", "stderr": ""}});
        for capture in [Capture::None, Capture::Metadata, Capture::Full] {
            let ev = crate::ingest::accept::parse(body.to_string().as_bytes(), 1, capture).unwrap();
            let replayed = crate::ingest::accept::parse(&ev.raw, 1, capture).unwrap();
            for e in [&ev, &replayed] {
                let Kind::ToolEnd(call, _) = &e.kind else { panic!() };
                let pr = call.pull_request.as_ref().map(|pr| pr.url.as_str());
                assert_eq!(pr, Some("https://github.com/acme/api/pull/42"), "{capture:?}");
            }
            let kept = String::from_utf8_lossy(&ev.raw);
            assert_eq!(kept.contains("SECRET-LINE"), capture == Capture::Full, "{capture:?}: {kept}");
        }
    }

    #[test]
    fn default_capture_exports_no_prompt_or_output() {
        let e = normalize(
            json!({"session_id": "s", "hook_event_name": "UserPromptSubmit", "prompt_id": "p", "prompt": "secret plan"})
                .as_object()
                .unwrap(),
            1,
            Capture::Metadata,
        )
        .unwrap();
        assert_eq!(e.kind, Kind::PromptSubmit { prompt: None });
        let e =
            ev(json!({"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Read", "tool_use_id": "t",
                          "tool_input": {"file_path": "/a/b"}, "tool_response": {"file": {"content": "SECRET"}}}));
        let Kind::ToolEnd(call, _) = e.kind else { panic!() };
        let dump = format!("{:?}", call.attrs);
        assert!(dump.contains("/a/b"));
        assert!(!dump.contains("SECRET"));
    }
}
