//! Wire types shared by the hook client and the sidecar: the payload as Claude Code sends it, and
//! the edits hooktel makes to it before it travels (noting the pull request a Bash call opened, then
//! cutting huge tool outputs).
//!
//! Only `serde_json`, `std` and `model::pull_request` (`std` only) here: the hook client links this
//! module and must start in about a millisecond, so nothing from Tokio or OpenTelemetry may come in
//! through it.

use serde_json::{Map, Value};

use crate::model::pull_request;

/// Header carrying the time the hook client read the payload, in Unix nanoseconds. Hook payloads
/// carry no time of their own, and hook processes run concurrently, so the client's stamp is what
/// orders and times the spans; without it the sidecar stamps the time it received the body.
pub(crate) const RECEIVED_AT_HEADER: &str = "x-hooktel-received-at";

/// Field added to a payload whose `tool_response` was cut: the size of the original, in bytes.
pub(crate) const ORIGINAL_RESPONSE_BYTES: &str = "hooktel_tool_response_bytes";

/// Field added to a payload whose long strings were cut: the size of the original payload, in bytes.
pub(crate) const ORIGINAL_PAYLOAD_BYTES: &str = "hooktel_payload_bytes";

/// Field added to a PostToolUse of Bash whose command opened a pull request: its URL (without
/// credentials or query), noted from the whole output before the output is cut or dropped
/// (`model::pull_request` has the rule). The only thing hooktel reads from a Bash call's output.
pub(crate) const PULL_REQUEST: &str = "hooktel_pull_request";

/// Field added to a Gemini CLI `BeforeTool`/`AfterTool` (whose payloads name no call): the call's
/// key, `<tool>:<hash of its input>`, computed from the whole input before anything is cut, so that
/// a call's start and end pair up however differently their payloads were cut.
pub(crate) const CALL_KEY: &str = "hooktel_call_key";

/// Field added to a Gemini CLI `AfterTool` of a shell command that exited non-zero: its exit code,
/// noted from the whole output (`Exit Code: N`, after the output) before the output is cut.
pub(crate) const EXIT_CODE: &str = "hooktel_exit_code";

/// Field of a payload that carries a custom event's attributes (`POST /v1/events`, `hooktel emit`).
/// A custom event for a session travels as a hook payload named after the event, with its
/// attributes under this key: one path through queue, spool and journal for both kinds.
pub(crate) const CUSTOM_ATTRIBUTES: &str = "hooktel_custom";

/// Set by the hook client run as `hooktel hook --agent <name>`: which agent's hook it was (absent:
/// Claude Code, whose hooks came first and whose settings name no agent).
pub(crate) const AGENT: &str = "hooktel_agent";

/// Set by the hook client when Claude Code runs with agent teams on
/// (`CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS`).
pub(crate) const AGENT_TEAMS: &str = "hooktel_agent_teams";

/// Set by the hook client when Claude Code runs with its own telemetry on
/// (`CLAUDE_CODE_ENABLE_TELEMETRY`; Claude Code keeps `OTEL_*` from hooks, so not where it goes).
pub(crate) const NATIVE_TELEMETRY: &str = "hooktel_native_telemetry";

/// A custom event as producers send it.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct CustomEvent {
    pub name: String,
    #[serde(default)]
    pub session_id: Option<String>,
    /// RFC 3339 (`2026-11-21T04:31:23.896Z`) or Unix seconds; the receive time when absent.
    #[serde(default)]
    pub(crate) timestamp: Option<Value>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

impl CustomEvent {
    /// The hook-shaped payload that carries it for its session.
    pub(crate) fn into_payload(self, session_id: &str) -> Map<String, Value> {
        let mut p = Map::new();
        p.insert("session_id".into(), session_id.into());
        p.insert("hook_event_name".into(), self.name.into());
        p.insert(CUSTOM_ATTRIBUTES.into(), Value::Object(self.attributes));
        p
    }
}

/// Largest payload (after cutting tool outputs) kept as it is. A `Write` of a large file carries the
/// whole file in `tool_input.content`; past this size every long string in the payload is cut, so
/// no tool call is ever refused for its size. Paths, ids and names are far shorter than this.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Length a long string is cut to when the payload is over `MAX_PAYLOAD_BYTES`.
const LONG_STRING_KEEP: usize = 1024;

/// Bound a payload's size before it travels or is held: cut huge tool outputs, then, if the payload
/// is still over `MAX_PAYLOAD_BYTES`, cut every string longer than 1 KiB. Records the original sizes.
/// Returns whether anything was cut.
pub(crate) fn trim_payload(payload: &mut Map<String, Value>) -> bool {
    note_pull_request(payload);
    note_gemini_call(payload);
    let mut cut = drop_conversation(payload);
    cut |= trim_tool_responses(payload, MAX_TOOL_RESPONSE_BYTES);
    let size = serde_json::to_vec(&*payload).map(|v| v.len()).unwrap_or(0);
    if size > MAX_PAYLOAD_BYTES {
        for value in payload.values_mut() {
            cut_long_strings(value);
        }
        payload.insert(ORIGINAL_PAYLOAD_BYTES.into(), Value::from(size));
        cut = true;
    }
    cut
}

/// Note the pull request a Bash call opened (`PULL_REQUEST`), from its whole output. A payload
/// whose output is no longer whole keeps the note made where it was: cut by the hook client
/// (`hooktel_*_bytes`), or reduced for the journal (no `stdout`/`stderr` left), which a restart
/// parses again.
fn note_pull_request(payload: &mut Map<String, Value>) {
    if was_cut(payload) {
        return;
    }
    let outputs: Vec<&str> = match payload.get("tool_response") {
        Some(Value::String(text)) => vec![text],
        Some(Value::Object(r)) => {
            ["stdout", "stderr"].iter().filter_map(|k| r.get(*k).and_then(Value::as_str)).collect()
        }
        _ => Vec::new(),
    };
    if outputs.is_empty() {
        return;
    }
    let field = |k: &str| payload.get(k).and_then(Value::as_str);
    let bash_ended = field("hook_event_name") == Some("PostToolUse") && field("tool_name") == Some("Bash");
    let command = payload.get("tool_input").and_then(|i| i.get("command")).and_then(Value::as_str);
    let opened = command.filter(|_| bash_ended).and_then(|c| pull_request::opened(c, &outputs)).map(|pr| pr.url);
    match opened {
        Some(url) => payload.insert(PULL_REQUEST.into(), Value::String(url)),
        None => payload.remove(PULL_REQUEST),
    };
}

/// Whether the payload's contents were cut already (by the hook client, or for the journal): notes
/// made from them then stand as made.
fn was_cut(payload: &Map<String, Value>) -> bool {
    payload.contains_key(ORIGINAL_RESPONSE_BYTES) || payload.contains_key(ORIGINAL_PAYLOAD_BYTES)
}

/// Note a Gemini CLI tool call's key (`CALL_KEY`) and a shell command's non-zero exit code
/// (`EXIT_CODE`) from the whole payload. Only Gemini's events are named `BeforeTool`/`AfterTool`.
/// Notes made once stand (the payload may since have been cut, or reduced for the journal): one
/// written by a payload's sender says no more than the input and output it could send instead.
fn note_gemini_call(payload: &mut Map<String, Value>) {
    let event = payload.get("hook_event_name").and_then(Value::as_str);
    if !matches!(event, Some("BeforeTool" | "AfterTool")) || payload.contains_key(CALL_KEY) {
        return;
    }
    let after = event == Some("AfterTool");
    let key = match (payload.get("tool_name").and_then(Value::as_str), payload.get("tool_input")) {
        (Some(name), Some(input)) => {
            let mut hash = Fnv::default();
            hash.value(input);
            Some(format!("{}:{:016x}", truncate_utf8(name, 128), hash.0))
        }
        _ => None,
    };
    let content = payload.get("tool_response").and_then(|r| r.get("llmContent")).and_then(Value::as_str);
    let code = content.filter(|_| after).and_then(exit_code).filter(|c| *c != 0);
    if let Some(k) = key {
        payload.insert(CALL_KEY.into(), Value::String(k));
    }
    if let Some(c) = code {
        payload.insert(EXIT_CODE.into(), Value::from(c));
    }
}

/// The exit code Gemini CLI's shell tool reports after a command's output (`Exit Code: 1`); the last
/// such line, as the output itself may print one.
fn exit_code(content: &str) -> Option<i64> {
    let line = content.lines().rev().find_map(|l| l.trim().strip_prefix("Exit Code:"))?;
    line.trim().parse().ok()
}

/// FNV-1a (64 bits) of a JSON value with its object keys sorted: the same input gives the same key
/// whatever order its keys were written in, in every build of hooktel.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                self.bytes(b"{");
                for k in keys {
                    self.bytes(k.as_bytes());
                    self.bytes(b":");
                    self.value(&map[k]);
                    self.bytes(b",");
                }
                self.bytes(b"}");
            }
            Value::Array(items) => {
                self.bytes(b"[");
                items.iter().for_each(|v| {
                    self.value(v);
                    self.bytes(b",");
                });
                self.bytes(b"]");
            }
            other => self.bytes(other.to_string().as_bytes()),
        }
    }
}

/// Gemini CLI's model-call events carry the whole conversation (`llm_request.messages`, and the
/// answer's parts in `llm_response`) on every call and streamed chunk: hooktel reads only the model,
/// the finish reason and the usage, so only those travel and are held. Returns whether it cut.
fn drop_conversation(payload: &mut Map<String, Value>) -> bool {
    let mut cut = false;
    if let Some(Value::Object(request)) = payload.get_mut("llm_request") {
        let before = request.len();
        request.retain(|k, v| k == "model" && v.as_str().is_some_and(|m| m.len() <= 256));
        cut |= request.len() != before;
    }
    if let Some(response) = payload.get_mut("llm_response") {
        // as sent, or as reduced here before (a journaled payload parsed again)
        let candidate = response.get("candidates").and_then(|c| c.get(0)).unwrap_or(response);
        let finish = candidate.get("finishReason").and_then(Value::as_str).map(|f| truncate_utf8(f, 64));
        let mut kept = Map::new();
        if let Some(f) = finish {
            kept.insert("finishReason".into(), Value::String(f.to_owned()));
        }
        if let Some(Value::Object(usage)) = response.get("usageMetadata") {
            let counts =
                usage.iter().filter(|(_, v)| v.is_u64()).map(|(k, v)| (truncate_utf8(k, 64).to_owned(), v.clone()));
            kept.insert("usageMetadata".into(), Value::Object(counts.take(16).collect()));
        }
        let reduced = Value::Object(kept);
        cut |= *response != reduced;
        *response = reduced;
    }
    cut
}

fn cut_long_strings(value: &mut Value) {
    match value {
        Value::String(s) if s.len() > LONG_STRING_KEEP => {
            let kept = truncate_utf8(s, LONG_STRING_KEEP).to_owned();
            *s = kept;
        }
        Value::Array(items) => items.iter_mut().for_each(cut_long_strings),
        Value::Object(map) => map.values_mut().for_each(cut_long_strings),
        _ => {}
    }
}

/// Largest `tool_response` (serialised) kept as it is. Tool outputs (a `Read` of a large file, a
/// long build log) can be megabytes; hooktel never exports them by default, so keeping more than
/// this costs memory and bandwidth and buys nothing.
pub(crate) const MAX_TOOL_RESPONSE_BYTES: usize = 16 * 1024;

/// Cut `tool_response` (and `tool_calls[].tool_response` of PostToolBatch) when its JSON is larger
/// than `cap`, keeping the fields hooktel reads (`agentId`, `interrupted`) and recording the
/// original size. Returns whether anything was cut.
pub(crate) fn trim_tool_responses(payload: &mut Map<String, Value>, cap: usize) -> bool {
    let mut cut = false;
    if let Some(resp) = payload.get_mut("tool_response") {
        if let Some(bytes) = trim_one(resp, cap) {
            payload.insert(ORIGINAL_RESPONSE_BYTES.into(), Value::from(bytes));
            cut = true;
        }
    }
    if let Some(Value::Array(calls)) = payload.get_mut("tool_calls") {
        for call in calls.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(resp) = call.get_mut("tool_response") {
                if let Some(bytes) = trim_one(resp, cap) {
                    call.insert(ORIGINAL_RESPONSE_BYTES.into(), Value::from(bytes));
                    cut = true;
                }
            }
        }
    }
    cut
}

/// Replace `resp` by a cut-down copy when its JSON exceeds `cap`; returns the original size.
fn trim_one(resp: &mut Value, cap: usize) -> Option<usize> {
    let size = serde_json::to_vec(resp).map(|v| v.len()).unwrap_or(0);
    if size <= cap {
        return None;
    }
    let mut kept = Map::new();
    if let Value::Object(obj) = resp {
        for key in ["agentId", "agentType", "interrupted", "status"] {
            if let Some(v) = obj.get(key).filter(|v| !v.is_object() && !v.is_array()) {
                kept.insert(key.into(), v.clone());
            }
        }
    }
    let text = match &*resp {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    kept.insert("truncated".into(), Value::String(truncate_utf8(&text, cap / 2).to_owned()));
    *resp = Value::Object(kept);
    Some(size)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_responses_are_untouched() {
        let mut p = json!({"tool_response": {"stdout": "hi"}}).as_object().unwrap().clone();
        assert!(!trim_tool_responses(&mut p, 1024));
        assert_eq!(p["tool_response"]["stdout"], "hi");
    }

    #[test]
    fn huge_responses_are_cut_and_sized() {
        let big = "x".repeat(100_000);
        let mut p = json!({"tool_response": {"stdout": big, "agentId": "a1", "interrupted": false},
                           "tool_calls": [{"tool_response": big}]})
        .as_object()
        .unwrap()
        .clone();
        assert!(trim_tool_responses(&mut p, 1024));
        assert_eq!(p["tool_response"]["agentId"], "a1");
        assert_eq!(p["tool_response"]["interrupted"], false);
        assert!(p[ORIGINAL_RESPONSE_BYTES].as_u64().unwrap() > 100_000);
        assert!(p["tool_response"]["truncated"].as_str().unwrap().len() <= 512);
        assert!(p["tool_calls"][0][ORIGINAL_RESPONSE_BYTES].as_u64().unwrap() > 100_000);
    }

    #[test]
    fn huge_inputs_are_cut_but_keep_their_keys() {
        let content = "y".repeat(9 * 1024 * 1024);
        let mut p = json!({"session_id": "s", "hook_event_name": "PreToolUse", "tool_name": "Write",
                           "tool_input": {"file_path": "/a/b.txt", "content": content}})
        .as_object()
        .unwrap()
        .clone();
        assert!(trim_payload(&mut p));
        assert_eq!(p["tool_input"]["file_path"], "/a/b.txt");
        assert_eq!(p["session_id"], "s");
        assert!(p[ORIGINAL_PAYLOAD_BYTES].as_u64().unwrap() > 9 * 1024 * 1024);
        assert!(serde_json::to_vec(&p).unwrap().len() < MAX_PAYLOAD_BYTES);
    }

    fn bash_post(command: &str, stdout: &str) -> Map<String, Value> {
        let p = json!({"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Bash",
                       "tool_use_id": "toolu_1", "tool_input": {"command": command},
                       "tool_response": {"stdout": stdout, "stderr": "", "interrupted": false, "isImage": false}});
        p.as_object().unwrap().clone()
    }

    /// The hook client cuts a huge output, the sidecar trims the cut payload again: the pull request
    /// noted from the whole output survives both, and nothing else of the output does.
    #[test]
    fn a_pull_request_is_noted_before_its_output_is_cut() {
        let stdout = format!("{}\nhttps://github.com/acme/api/pull/42\n", "build log line\n".repeat(700_000));
        let mut p = bash_post("npm test && gh pr create --fill", &stdout);
        assert!(trim_payload(&mut p), "the client cuts it");
        assert_eq!(p[PULL_REQUEST], "https://github.com/acme/api/pull/42");
        assert!(!p["tool_response"].to_string().contains("pull/42"), "the cut output no longer names it");
        assert!(!trim_payload(&mut p), "the sidecar finds nothing more to cut");
        assert_eq!(p[PULL_REQUEST], "https://github.com/acme/api/pull/42", "and keeps the client's note");

        // small outputs travel whole: the sidecar notes it
        let mut p = bash_post("gh pr create --fill", "https://u:tok@github.com/acme/api/pull/7?x=1\n");
        trim_payload(&mut p);
        assert_eq!(p[PULL_REQUEST], "https://github.com/acme/api/pull/7");
    }

    /// What the journal keeps of a payload has no output left: parsed again after a restart, it
    /// keeps its note.
    #[test]
    fn a_note_without_its_output_is_kept() {
        let mut p = bash_post("gh pr create --fill", "https://github.com/acme/api/pull/7\n");
        trim_payload(&mut p);
        p.insert("tool_response".into(), json!({"interrupted": false}));
        trim_payload(&mut p);
        assert_eq!(p[PULL_REQUEST], "https://github.com/acme/api/pull/7");
    }

    #[test]
    fn only_a_creating_command_is_noted_and_a_forged_note_is_not_kept() {
        for (command, event, tool) in [
            ("cat notes.md", "PostToolUse", "Bash"),
            ("gh pr create", "PreToolUse", "Bash"),
            ("gh pr create", "PostToolUse", "Read"),
        ] {
            let mut p = bash_post(command, "https://github.com/acme/api/pull/1");
            p.insert("hook_event_name".into(), event.into());
            p.insert("tool_name".into(), tool.into());
            // an uncut payload's note is made here, from its output, never taken as sent
            p.insert(PULL_REQUEST.into(), "https://github.com/evil/x/pull/9".into());
            trim_payload(&mut p);
            assert_eq!(p.get(PULL_REQUEST), None, "{command} {event} {tool}");
        }
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }
}
