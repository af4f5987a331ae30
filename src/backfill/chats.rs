//! Backfill of Gemini CLI's chat logs (`~/.gemini/tmp/<project>/chats/session-<time>-<id8>.jsonl`):
//! one session's log becomes the span tree the live path makes from Gemini's hooks and the same
//! log, with the log's times. Pure apart from reading the file: the same file always gives the same
//! spans.
//!
//! What comes from where:
//! - root `gemini-cli session`: first to last timestamp of the log; the session id of its header
//!   (`sessionId`); the project is the log's directory's (`<project>`: the basename of the directory
//!   Gemini ran in, which the log does not name);
//! - turn `invoke_agent gemini-cli` per prompt (a `user` message with text): from it to the last
//!   line before the next prompt; its prompt as the capture level lets it out;
//! - model call `chat {model}` per `gemini` message with tokens, read by the live path's reader
//!   (`usage::logs::gemini`: the last line of a message wins, a response counts once), under the
//!   turn it answers;
//! - tool `execute_tool {name}` per tool call of a `gemini` message: from the message to the call's
//!   own `timestamp`; ERROR when its `status` is `error`, or when its command's output says
//!   `Exit Code: N` (N not 0), which Gemini itself counts a success.
//!
//! A resumed session starts a log of its own, named for the minute it started (the same file when
//! that is the first's minute), writes a header in it, then goes on in its first log: a log with
//! no message is skipped and counted.
//!
//! Ids: the root's and the model calls' are the live path's (the session id; the message id), so an
//! imported model call never doubles a live one. Gemini's hooks name no turn and no call: live, a turn
//! is keyed by its `BeforeAgent`'s time and a call by its tool, input and start, which no log records;
//! the import keys them by the log's own message and call ids. A session the sidecar captured live is
//! not imported at all (`backfill::seen_live`).

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
use crate::model::semconv::{self, ModelEndpoint};
use crate::model::span::{SpanRecord, SpanUsage};
use crate::model::time::rfc3339_ns;
use crate::usage::logs::{self, Delta, MAX_ID_BYTES};
use crate::usage::pricing::PriceTable;

/// The agent whose logs these are.
const GEMINI: Agent = Agent::Gemini;

struct Call {
    id: String,
    name: String,
    input: Vec<KeyValue>,
    start: u64,
    end: u64,
    failure: Option<String>,
    output: Option<String>,
    turn: Option<usize>,
}

/// Everything read from one chat log, before it is turned into spans.
#[derive(Default)]
struct Reader {
    session_id: Option<String>,
    extent: Option<(u64, u64)>,
    turns: Vec<Turn>,
    /// Calls by id: a message is written again when its calls end, with their results.
    calls: Vec<Call>,
    call_index: HashMap<String, usize>,
    capture: Capture,
}

/// Read one Gemini CLI session from its chat log.
pub fn session_from_chat(
    path: &Path,
    prices: &PriceTable,
    capture: Capture,
    endpoint: &ModelEndpoint,
) -> Result<ImportedSession, BackfillError> {
    let mut r = Reader { capture, ..Reader::default() };
    let ReadLog { real, usage, skipped } = read_log(path, GEMINI, prices, |line| r.line(line))?;
    let Some(sid) = r.session_id.take() else { return Err(BackfillError::NoSession(path.to_path_buf())) };
    // a resumed session opens a log of its own (named for the minute it started), then goes on in
    // its first: that log holds a header and no message
    let Some(extent) = r.extent else { return Err(BackfillError::NoMessages(path.to_path_buf())) };
    let mut placed = Vec::with_capacity(usage.len());
    for d in &usage {
        let turn = d.response.as_ref().and_then(|resp| r.turn_at(resp.start));
        if let Some(i) = turn {
            r.turns[i].usage.get_or_insert_with(SpanUsage::default).add(&d.model, d.usage, d.cost);
        }
        placed.push(turn);
    }
    let spans = r.spans(&sid, &real, extent, &usage, &placed, endpoint);
    Ok(ImportedSession { session_id: sid.into(), spans, usage, refused: Vec::new(), skipped_lines: skipped })
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn id_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    str_of(v, key).filter(|s| !s.is_empty()).and_then(logs::id)
}

/// The text parts of a message's content (a prompt has some; the tools' results have none).
fn text_of(message: &Value) -> Option<String> {
    let parts = message.get("content")?.as_array()?;
    let text: Vec<&str> = parts.iter().filter_map(|p| str_of(p, "text")).collect();
    (!text.is_empty()).then(|| text.join("\n"))
}

/// The output of a call's result, as Gemini gave it to the model.
fn result_text(call: &Value) -> Option<&str> {
    let results = call.get("result")?.as_array()?;
    results.iter().find_map(|r| r.get("functionResponse")?.get("response")?.get("output")?.as_str())
}

/// Why a call failed: its `error` status (with its display), or its command's non-zero exit code.
fn failure_of(call: &Value) -> Option<String> {
    if str_of(call, "status") == Some("error") {
        let why = str_of(call, "resultDisplay").unwrap_or("tool error");
        return Some(capture::clip(why, 256));
    }
    let content = result_text(call)?;
    let line = content.lines().rev().find_map(|l| l.trim().strip_prefix("Exit Code:"))?;
    let code: i64 = line.trim().parse().ok()?;
    (code != 0).then(|| format!("exit code {code}"))
}

impl Reader {
    fn line(&mut self, line: &Value) {
        if self.session_id.is_none() {
            self.session_id = id_of(line, "sessionId").map(str::to_owned);
        }
        let Some(t) = str_of(line, "timestamp").and_then(rfc3339_ns) else { return };
        self.extent = Some(self.extent.map_or((t, t), |(s, e)| (s.min(t), e.max(t))));
        if let Some(turn) = self.turns.last_mut() {
            turn.end = turn.end.max(t);
        }
        match str_of(line, "type") {
            Some("user") => {
                let Some(text) = text_of(line) else { return };
                let Some(id) = id_of(line, "id") else { return };
                if self.turns.iter().any(|turn| turn.id == id) {
                    return;
                }
                let prompt = self.capture.prompts().then(|| capture::clip(&text, capture::FULL_MAX));
                self.turns.push(Turn::new(id, t, prompt, true));
            }
            Some("gemini") => {
                let calls = line.get("toolCalls").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
                for call in calls {
                    self.call(call, t);
                }
            }
            _ => {}
        }
    }

    /// A tool call of a `gemini` message made at `t`: a call written again takes its result.
    fn call(&mut self, call: &Value, t: u64) {
        let Some(id) = id_of(call, "id") else { return };
        let end = str_of(call, "timestamp").and_then(rfc3339_ns).filter(|e| *e >= t);
        let failure = failure_of(call);
        let output = result_text(call).filter(|_| self.capture.outputs()).map(|o| capture::clip(o, capture::FULL_MAX));
        if let Some(&i) = self.call_index.get(id) {
            let known = &mut self.calls[i];
            known.end = end.unwrap_or(known.end);
            known.failure = failure.or(known.failure.take());
            known.output = output.or(known.output.take());
            return;
        }
        let name = str_of(call, "name").filter(|n| n.len() <= MAX_ID_BYTES).unwrap_or("unknown");
        let input = call.get("args").map(|a| capture::tool_input(a, self.capture)).unwrap_or_default();
        let turn = self.turns.len().checked_sub(1);
        self.call_index.insert(id.to_owned(), self.calls.len());
        let end = end.unwrap_or(t);
        self.calls.push(Call { id: id.to_owned(), name: name.to_owned(), input, start: t, end, failure, output, turn });
    }

    /// The turn a response asked for at `at` belongs to: the latest started by then.
    fn turn_at(&self, at: u64) -> Option<usize> {
        self.turns.iter().rposition(|t| t.start <= at)
    }

    /// Turn what was read into span records: root, turns, model calls, tool calls.
    fn spans(
        self,
        sid: &str,
        path: &Path,
        times: (u64, u64),
        usage: &[Delta],
        placed: &[Option<usize>],
        endpoint: &ModelEndpoint,
    ) -> Vec<SpanRecord> {
        // `<project>/chats/session-*.jsonl`: Gemini names the directory after the one it ran in
        let project = path.parent().and_then(Path::parent).and_then(Path::file_name);
        let project = project.map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let mut tree = Tree::new(sid, GEMINI, project.clone());
        let parent_of = |tree: &Tree, turn: Option<usize>| match turn {
            Some(i) => tree.turn_id(&self.turns[i].id),
            None => tree.root_id(),
        };
        let mut attrs = semconv::root(GEMINI, None, Some(&path.to_string_lossy()), self.capture);
        attrs.push(KeyValue::new(semconv::PROJECT, project));
        tree.root(times, attrs, usage);
        for turn in &self.turns {
            tree.turn(turn);
        }
        for (d, turn) in usage.iter().zip(placed) {
            let parent = parent_of(&tree, *turn);
            tree.chat(d, parent, endpoint);
        }
        for call in &self.calls {
            let failure = call.failure.as_deref().map(|why| self.capture.error_text(why));
            let parent = parent_of(&tree, call.turn);
            let (input, output) = (&call.input, call.output.as_deref());
            let times = (call.start, call.end);
            tree.tool(ToolCall { id: &call.id, name: &call.name, input, output, failure, times }, parent);
        }
        tree.spans
    }
}

/// Where Gemini CLI keeps its chat logs: `~/.gemini/tmp` (a directory per project, its `chats` in it).
pub(crate) fn default_chats_dir() -> Option<PathBuf> {
    crate::usage::agent_dirs::gemini_dir().map(|d| d.join("tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::{self, SpanKey};
    use crate::model::span::{Status, ToolStatus};

    const CHAT: &str =
        include_str!("../../tests/fixtures/gemini/single-0.61.0/session-2026-12-07T05-28-fbc5aa14.jsonl");
    const SID: &str = "fbc5aa14-f60c-4607-a072-1b3691bcc667";

    fn import(text: &str, capture: Capture) -> ImportedSession {
        let dir = tempfile::tempdir().unwrap();
        let chats = dir.path().join("proj").join("chats");
        std::fs::create_dir_all(&chats).unwrap();
        let path = chats.join("session-2026-12-07T05-28-fbc5aa14.jsonl");
        std::fs::write(&path, text).unwrap();
        session_from_chat(&path, &PriceTable::builtin(), capture, &ModelEndpoint::default()).unwrap()
    }

    /// The captured run: root, one turn of the prompt, its shell call, its two model calls with the
    /// log's tokens; the model calls' ids are the live path's (their message ids).
    #[test]
    fn the_captured_log_is_the_live_tree() {
        let s = import(CHAT, Capture::Full);
        assert_eq!(s.session_id.as_str(), SID);
        let names: Vec<&str> = s.spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "gemini-cli session",
                "invoke_agent gemini-cli",
                "chat gemini-3.8-flash",
                "chat gemini-3.8-flash",
                "execute_tool run_shell_command"
            ]
        );
        let (root, turn) = (&s.spans[0], &s.spans[1]);
        assert_eq!(root.span_id, ids::span_id(SID, SpanKey::Root, SID));
        assert_eq!(root.project, "proj");
        assert_eq!(turn.attr("hooktel.prompt").as_deref(), Some("Run echo hi in the shell and tell me the output"));
        assert_eq!(turn.usage.as_ref().unwrap().tokens.input, 22);
        for (chat, message) in
            s.spans[2..4].iter().zip(["32bf941c-2ddd-4bfb-af4a-961a80b6fac8", "100f2421-0613-43ce-bcc5-8c94f129a7ac"])
        {
            assert_eq!(chat.span_id, ids::span_id(SID, SpanKey::Chat, &format!("{message}/")));
            assert_eq!(chat.parent, Some(turn.span_id));
            assert_eq!(chat.usage.as_ref().unwrap().tokens.output, 7);
        }
        let tool = &s.spans[4];
        assert_eq!(tool.parent, Some(turn.span_id));
        assert_eq!(
            (tool.start, tool.end),
            (rfc3339_ns("2026-12-07T05:28:56.204Z").unwrap(), rfc3339_ns("2026-12-07T05:28:56.495Z").unwrap())
        );
        assert_eq!(tool.tool.map(|t| t.status), Some(ToolStatus::Ok));
        assert!(tool.attr("hooktel.tool.output").is_some_and(|o| o.contains("Output: hi")));
    }

    /// A call whose command exited 3, and a call Gemini reports as an error, are ERROR; below `full`
    /// neither the prompt nor a call's output is in a span.
    #[test]
    fn failed_calls_are_errors_and_the_capture_level_holds() {
        let failing = CHAT.replace("Output: hi\\nProcess Group", "Output: boom\\nExit Code: 3\\nProcess Group");
        let s = import(&failing, Capture::Metadata);
        let tool = s.spans.iter().find(|s| s.name == "execute_tool run_shell_command").unwrap();
        assert_eq!(tool.status, Status::Error("exit code 3".into()));
        assert!(s.spans.iter().all(|s| s.attr("hooktel.prompt").is_none() && s.attr("hooktel.tool.output").is_none()));
        let error = CHAT.replace("\"status\":\"success\"", "\"status\":\"error\"");
        let s = import(&error, Capture::Metadata);
        let tool = s.spans.iter().find(|s| s.name == "execute_tool run_shell_command").unwrap();
        assert_eq!(tool.tool.map(|t| t.status), Some(ToolStatus::Error));
    }

    /// The log a resumed session opens before it goes on in its first: a header, the session's
    /// context, no message. Skipped, not an error.
    #[test]
    fn a_resumed_sessions_log_without_messages_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session-2026-12-07T22-57-a8bb9089.jsonl");
        let stub = concat!(
            r#"{"sessionId":"a8bb9089-0dc5-46aa-ae6f-066b693292c9","projectHash":"2a65","startTime":"2026-12-07T22:57:09.391Z","lastUpdated":"2026-12-07T22:57:09.391Z","kind":"main"}"#,
            "\n",
            r#"{"$set":{"messages":[{"id":"d049","timestamp":"2026-12-07T22:57:09.405Z","type":"user","content":[{"text":"<session_context>"}]}],"lastUpdated":"2026-12-07T22:57:09.405Z"}}"#,
            "\n"
        );
        std::fs::write(&path, stub).unwrap();
        let got = session_from_chat(&path, &PriceTable::builtin(), Capture::Full, &ModelEndpoint::default());
        assert!(matches!(got, Err(BackfillError::NoMessages(_))), "{:?}", got.map(|s| s.spans.len()));
    }
}
