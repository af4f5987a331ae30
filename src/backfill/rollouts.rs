//! Backfill of Codex CLI's rollouts (`~/.codex/sessions/YYYY/MM/DD/rollout-<time>-<session>.jsonl`,
//! lines `{timestamp, type, payload}`): one session's log becomes the span tree the live path makes
//! from Codex's hooks and the same log, with the ids the live path gives them, and the log's times.
//! Pure apart from reading the file: no clock, and the same file always gives the same spans.
//!
//! What comes from where:
//! - root `codex session`: first to last timestamp of the log; the session id and `cwd` of its
//!   `session_meta` line;
//! - turn `invoke_agent codex` per `turn_id` (the hooks' `turn_id`, which keys the live turn): its
//!   `task_started` (or first line) to its `task_complete` (without one: its last line, and the turn
//!   is incomplete); its prompt from the `UserMessage` it completed;
//! - tool `execute_tool {name}` per `function_call` (or `custom_tool_call`) that got its output,
//!   keyed by `call_id` (the hooks' `tool_use_id`): the call's line to its output's; `exec_command`
//!   is named `Bash`, with its `cmd` as the `command` of its input, as Codex's hooks name it; ERROR
//!   with `exit code N` when its `CommandExecution` exited non-zero;
//! - model call `chat {model}` per `token_usage_record`, with its usage, under its turn.
//!
//! Usage and failed commands are read by the live path's reader (`usage::logs::codex::Ledger`), so a response counts
//! once and a command fails for the same reason, live or imported. A resumed session (`codex exec
//! resume` appends to the same log) is one tree under one root: live, a resume that comes after the
//! session's end is a segment (`codex session resumed`) whose spans' ids include the time the hook
//! client stamped on its `SessionStart`, which no log records, so those ids cannot be the live ones.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use opentelemetry::KeyValue;
use serde_json::Value;

use crate::backfill::error::BackfillError;
use crate::backfill::lines::{read_log, ReadLog};
use crate::backfill::transcripts::ImportedSession;
use crate::backfill::tree::{ToolCall, Tree, Turn};
use crate::model::agent::Agent;
use crate::model::capture::{self, Capture};
use crate::model::semconv::{self, project_of, ModelEndpoint};
use crate::model::span::{SpanRecord, SpanUsage};
use crate::model::time::rfc3339_ns;
use crate::usage::logs::Delta;
use crate::usage::logs::{self, MAX_ID_BYTES};
use crate::usage::pricing::PriceTable;

/// The agent whose logs these are.
const CODEX: Agent = Agent::Codex;

struct Call {
    id: String,
    name: String,
    /// What the capture level lets out of its input, taken as the call is read.
    input: Vec<KeyValue>,
    start: u64,
    turn: Option<String>,
    /// When its output came, and (at the capture level that lets outputs out) what of it a span carries.
    output: Option<(u64, String)>,
}

/// Everything read from one rollout, before it is turned into spans.
#[derive(Default)]
struct Reader {
    session_id: Option<String>,
    cwd: Option<String>,
    extent: Option<(u64, u64)>,
    turns: Vec<Turn>,
    turn_index: HashMap<String, usize>,
    /// The turn lines without a `turn_id` of their own belong to.
    current: Option<String>,
    calls: Vec<Call>,
    call_index: HashMap<String, usize>,
    capture: Capture,
    /// The rollout is a subagent's thread (`thread_source: "subagent"`), not a session.
    subagent: bool,
}

/// Read one Codex session from its rollout.
pub fn session_from_rollout(
    path: &Path,
    prices: &PriceTable,
    capture: Capture,
    endpoint: &ModelEndpoint,
) -> Result<ImportedSession, BackfillError> {
    let mut r = Reader { capture, ..Reader::default() };
    let ReadLog { usage: deltas, skipped, .. } = read_log(path, CODEX, prices, |line| r.line(line))?;
    let Some(sid) = r.session_id.take() else { return Err(BackfillError::NoSession(path.to_path_buf())) };
    if r.subagent {
        return Err(BackfillError::Subagent(path.to_path_buf()));
    }
    let Some(extent) = r.extent else { return Err(BackfillError::NoTimestamps(path.to_path_buf())) };
    let (failures, usage): (Vec<Delta>, Vec<Delta>) = deltas.into_iter().partition(|d| d.tool_failure.is_some());
    let failed: HashMap<String, String> =
        failures.into_iter().filter_map(|d| d.tool_failure).map(|f| (f.call_id, f.message)).collect();
    for d in &usage {
        if let Some(i) = d.prompt_id.as_ref().and_then(|t| r.turn_index.get(t)) {
            r.turns[*i].usage.get_or_insert_with(SpanUsage::default).add(&d.model, d.usage, d.cost);
        }
    }
    let spans = r.spans(&sid, path, extent, &usage, &failed, endpoint);
    Ok(ImportedSession { session_id: sid.into(), spans, usage, refused: Vec::new(), skipped_lines: skipped })
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// An id from a log, if it is one: not empty, and within the live readers' bound (`logs::id`: a
/// longer one is a hostile or broken line, and what it names is left out).
fn id_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    str_of(v, key).filter(|s| !s.is_empty()).and_then(logs::id)
}

/// The text of a `UserMessage` item's content parts.
fn message_text(item: &Value) -> String {
    let parts = item.get("content").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    parts.iter().filter_map(|p| str_of(p, "text")).collect::<Vec<_>>().join("\n")
}

/// A call's name and input as Codex's hooks give them: `exec_command` {`cmd`} is `Bash` {`command`};
/// any other tool keeps the rollout's name and arguments.
fn as_hooked(name: &str, arguments: &Value) -> (String, Value) {
    // arguments are a JSON text in a `function_call`, the input itself in a `custom_tool_call`
    let args = match arguments {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| arguments.clone()),
        other => other.clone(),
    };
    match (name, args.get("cmd")) {
        ("exec_command", Some(Value::String(cmd))) => ("Bash".into(), serde_json::json!({ "command": cmd })),
        ("exec_command", _) => ("Bash".into(), Value::Null),
        _ => (name.to_owned(), args),
    }
}

/// A tool's output as a span carries it: the command's own output, after Codex's header
/// (`Chunk ID`, `Wall time`, `Process exited with code N`, `Output:`) when it has one.
fn output_text(output: &str) -> String {
    let own = output.split_once("\nOutput:\n").map_or(output, |(_, rest)| rest);
    capture::clip(own, capture::FULL_MAX)
}

impl Reader {
    fn line(&mut self, line: &Value) {
        let p = line.get("payload").unwrap_or(&Value::Null);
        let kind = str_of(line, "type");
        if kind == Some("session_meta") && self.session_id.is_none() {
            self.subagent = str_of(p, "thread_source") == Some("subagent");
            self.session_id = id_of(p, "id").or(id_of(p, "session_id")).map(str::to_owned);
            self.cwd = str_of(p, "cwd").filter(|c| !c.is_empty()).map(|c| capture::clip(c, 4096));
        }
        let Some(t) = str_of(line, "timestamp").and_then(rfc3339_ns) else { return };
        self.extent = Some(self.extent.map_or((t, t), |(s, e)| (s.min(t), e.max(t))));
        let item = str_of(p, "type");
        // the turn this line belongs to: its own, else the one under way
        let own_turn = id_of(p, "turn_id")
            .or_else(|| p.get("internal_chat_message_metadata_passthrough").and_then(|m| id_of(m, "turn_id")));
        match (kind, item) {
            (Some("turn_context"), _) | (Some("event_msg"), Some("task_started")) => {
                if let Some(turn) = own_turn {
                    self.current = Some(turn.to_owned());
                }
            }
            _ => {}
        }
        let turn = own_turn.map(str::to_owned).or_else(|| self.current.clone());
        if let Some(turn) = &turn {
            self.touch_turn(turn, t);
        }
        match (kind, item) {
            (Some("event_msg"), Some("task_complete")) => {
                if let Some(i) = own_turn.and_then(|id| self.turn_index.get(id)) {
                    self.turns[*i].complete = true;
                }
            }
            (Some("event_msg"), Some("item_completed")) => {
                let item = p.get("item").unwrap_or(&Value::Null);
                let (Some("UserMessage"), Some(turn)) = (str_of(item, "type"), own_turn) else { return };
                if let Some(i) = self.turn_index.get(turn) {
                    let turn = &mut self.turns[*i];
                    if turn.prompt.is_none() && self.capture.prompts() {
                        turn.prompt = Some(capture::clip(&message_text(item), capture::FULL_MAX));
                    }
                }
            }
            (Some("response_item"), Some("function_call" | "custom_tool_call")) => {
                let Some(id) = id_of(p, "call_id") else { return };
                if self.call_index.contains_key(id) {
                    return;
                }
                let raw = p.get("arguments").or_else(|| p.get("input")).unwrap_or(&Value::Null);
                let name = str_of(p, "name").filter(|n| n.len() <= MAX_ID_BYTES).unwrap_or("unknown");
                let (name, input) = as_hooked(name, raw);
                self.call_index.insert(id.to_owned(), self.calls.len());
                self.calls.push(Call {
                    id: id.to_owned(),
                    name,
                    input: capture::tool_input(&input, self.capture),
                    start: t,
                    turn,
                    output: None,
                });
            }
            (Some("response_item"), Some("function_call_output" | "custom_tool_call_output")) => {
                let Some(&i) = id_of(p, "call_id").and_then(|id| self.call_index.get(id)) else { return };
                let call = &mut self.calls[i];
                if call.output.is_none() {
                    let text = match p.get("output") {
                        Some(Value::String(s)) if self.capture.outputs() => output_text(s),
                        _ => String::new(),
                    };
                    call.output = Some((t, text));
                }
            }
            _ => {}
        }
    }

    /// A line of turn `id` at `t`: opens the turn, or widens it until it completed.
    fn touch_turn(&mut self, id: &str, t: u64) {
        match self.turn_index.get(id) {
            Some(&i) => {
                let turn = &mut self.turns[i];
                turn.start = turn.start.min(t);
                if !turn.complete {
                    turn.end = turn.end.max(t);
                }
            }
            None => {
                self.turn_index.insert(id.to_owned(), self.turns.len());
                self.turns.push(Turn::new(id, t, None, false));
            }
        }
    }

    /// Turn what was read into span records: root, turns, model calls, tool calls.
    fn spans(
        self,
        sid: &str,
        path: &Path,
        times: (u64, u64),
        usage: &[Delta],
        failed: &HashMap<String, String>,
        endpoint: &ModelEndpoint,
    ) -> Vec<SpanRecord> {
        let capture = self.capture;
        let project = self.cwd.as_deref().map(project_of).unwrap_or_default();
        let mut tree = Tree::new(sid, CODEX, project);
        let parent_of = |tree: &Tree, turn: Option<&String>| match turn {
            Some(t) if self.turn_index.contains_key(t) => tree.turn_id(t),
            _ => tree.root_id(),
        };
        tree.root(times, semconv::root(CODEX, self.cwd.as_deref(), Some(&path.to_string_lossy()), capture), usage);
        for turn in &self.turns {
            tree.turn(turn);
        }
        for d in usage {
            // the ledger bounds both: a response id over `MAX_ID_BYTES` is no response, a model name is cut
            let parent = parent_of(&tree, d.prompt_id.as_ref());
            tree.chat(d, parent, endpoint);
        }
        for call in &self.calls {
            let Some((ended, text)) = &call.output else { continue };
            let parent = parent_of(&tree, call.turn.as_ref());
            let output = Some(text.as_str()).filter(|_| capture.outputs());
            let (id, name, input) = (call.id.as_str(), call.name.as_str(), call.input.as_slice());
            let failure = failed.get(&call.id).cloned();
            tree.tool(ToolCall { id, name, input, output, failure, times: (call.start, *ended) }, parent);
        }
        tree.spans
    }
}

/// Where Codex CLI keeps its rollouts: `$CODEX_HOME/sessions`, else `~/.codex/sessions`.
pub(crate) fn default_sessions_dir() -> Option<PathBuf> {
    crate::usage::agent_dirs::codex_home().map(|d| d.join("sessions"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_command_is_the_hooks_bash() {
        let (name, input) = as_hooked("exec_command", &Value::from(r#"{"cmd": "echo one", "yield_time_ms": 10}"#));
        assert_eq!((name.as_str(), input), ("Bash", serde_json::json!({"command": "echo one"})));
        let (name, input) = as_hooked("apply_patch", &serde_json::json!({"input": "*** Begin Patch"}));
        assert_eq!((name.as_str(), input), ("apply_patch", serde_json::json!({"input": "*** Begin Patch"})));
        assert_eq!(as_hooked("exec_command", &Value::from("not json")).1, Value::Null);
    }

    #[test]
    fn a_commands_output_is_what_follows_codexs_header() {
        let out = "Chunk ID: 34c98e\nWall time: 0.0000 seconds\nProcess exited with code 0\nOutput:\none\n";
        assert_eq!(output_text(out), "one\n");
        assert_eq!(output_text("plain"), "plain");
    }
}
