//! Codex CLI's session log, its rollout (`~/.codex/sessions/YYYY/MM/DD/rollout-<time>-<session>.jsonl`):
//! where it records what its hooks do not carry. Lines are `{timestamp, type, payload}`.
//!
//! Token usage: one `token_usage_record` per model response (`response_id`, `turn_id`, `usage`:
//! `input_tokens` with the cached part in it, `cached_input_tokens`, `cache_write_input_tokens`,
//! `output_tokens` with the reasoning in it). It names no model: the turn's `turn_context` line does.
//! The running `token_count` events repeat totals and are not read. A response counts once (its id
//! remembered), whatever re-reads or a resume (which appends to the same file) bring. The response
//! starts at the last line it answers (the user's message, a tool's output, the turn's start) and
//! ends at its record. A partial last line is left for the next read. Pure: the caller does the I/O.
//!
//! Failures: an `item_completed` event of a `CommandExecution` carries the command's exit code, which
//! Codex's `PostToolUse` does not (its `tool_response` is the output alone): a non-zero one (or a
//! `failed` status without one) is reported as the call's failure.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::model::tokens::TokenUsage;
use crate::usage::logs::{id, json_lines, model_name, Delta, Read, Response};
use crate::usage::pricing::PriceTable;

/// Responses (and turns' models) remembered: enough for any re-read, small to save.
const RECENT: usize = 32;

/// Reading state of one rollout; saved so that a restart neither counts twice nor misses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// Bytes of the file already read (at a line boundary, or inside a line being skipped).
    pub offset: u64,
    /// Inside a line longer than `logs::MAX_LINE_BYTES`: the bytes up to its newline are skipped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    skipping: bool,
    /// Recent turns and their models (`turn_context`).
    models: VecDeque<(String, String)>,
    /// Recent responses counted.
    counted: VecDeque<String>,
    /// Time of the last line a response answers.
    answered_at: u64,
    /// The thread id of the subagent whose rollout this is (`session_meta` of a `spawn_agent` thread):
    /// its usage belongs to its `invoke_agent` span, not to a turn of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subagent: Option<String>,
}

#[derive(Deserialize)]
struct Line {
    timestamp: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    payload: serde_json::Value,
}

#[derive(Deserialize)]
struct Record {
    response_id: String,
    turn_id: Option<String>,
    usage: Usage,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    cached_input_tokens: u64,
    #[serde(default)]
    cache_write_input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

impl Usage {
    /// Disjoint, as Claude Code's: uncached input, cache read, cache write, output (reasoning in it).
    fn tokens(&self) -> TokenUsage {
        let cached = self.cached_input_tokens.min(self.input_tokens);
        let written = self.cache_write_input_tokens.min(self.input_tokens - cached);
        TokenUsage {
            input: self.input_tokens - cached - written,
            output: self.output_tokens,
            cache_read: cached,
            cache_write_5m: written,
            ..TokenUsage::default()
        }
    }
}

impl Ledger {
    /// Read `bytes`, the file's contents from `self.offset` on (see the Claude Code ledger: the same
    /// rules for partial and overlong lines).
    pub fn read(&mut self, bytes: &[u8], prices: &PriceTable) -> Read {
        let (mut offset, mut skipping, mut deltas) = (self.offset, self.skipping, Vec::new());
        let bad_lines = json_lines(&mut offset, &mut skipping, bytes, |l: Line| self.line(l, prices, &mut deltas));
        (self.offset, self.skipping) = (offset, skipping);
        Read { deltas, bad_lines }
    }

    fn line(&mut self, line: Line, prices: &PriceTable, out: &mut Vec<Delta>) {
        let at = line.timestamp.as_deref().and_then(crate::model::time::rfc3339_ns).unwrap_or(0);
        let p = &line.payload;
        let text = |k: &str| p.get(k).and_then(serde_json::Value::as_str);
        match line.kind.as_deref() {
            Some("session_meta") if text("thread_source") == Some("subagent") => {
                self.subagent = text("id").filter(|t| !t.is_empty()).and_then(id).map(str::to_owned);
            }
            Some("turn_context") => {
                if let (Some(turn), Some(model)) = (text("turn_id").and_then(id), text("model")) {
                    remember(&mut self.models, (turn.to_owned(), model_name(model)));
                }
            }
            // what a response answers: the turn's start, the user's message, a tool's output
            Some("response_item" | "event_msg")
                if matches!(text("type"), Some("function_call_output" | "task_started"))
                    || (text("type") == Some("message") && text("role") == Some("user")) =>
            {
                self.answered_at = self.answered_at.max(at);
            }
            // a command's end: its exit code, which the hook's PostToolUse does not carry
            Some("event_msg") if text("type") == Some("item_completed") => {
                let item = &p["item"];
                let field = |k: &str| item.get(k).and_then(serde_json::Value::as_str);
                let (Some("CommandExecution"), Some(call)) = (field("type"), field("id").and_then(id)) else { return };
                let code = item.get("exit_code").and_then(serde_json::Value::as_i64);
                let message = match (code, field("status")) {
                    (Some(0), _) | (None, Some("completed")) => return,
                    (Some(code), _) => format!("exit code {code}"),
                    (None, status) => format!("command {}", status.unwrap_or("failed")),
                };
                out.push(Delta::tool_failed(call.to_owned(), message));
            }
            Some("token_usage_record") => {
                let Ok(mut record) = serde_json::from_value::<Record>(line.payload) else { return };
                if id(&record.response_id).is_none() {
                    return;
                }
                record.turn_id = record.turn_id.filter(|t| id(t).is_some());
                if self.counted.contains(&record.response_id) {
                    return;
                }
                remember(&mut self.counted, record.response_id.clone());
                let model = record
                    .turn_id
                    .as_ref()
                    .and_then(|t| self.models.iter().rev().find(|(turn, _)| turn == t))
                    .or(self.models.back())
                    .map_or_else(|| "unknown".to_owned(), |(_, m)| m.clone());
                let start = if self.answered_at > 0 && self.answered_at <= at { self.answered_at } else { at };
                let response = Response::new(record.response_id, start, at);
                out.push(Delta {
                    prompt_id: record.turn_id.filter(|_| self.subagent.is_none()),
                    agent_id: self.subagent.clone(),
                    ..Delta::priced(model, record.usage.tokens(), prices, response)
                });
            }
            _ => {}
        }
    }
}

fn remember<T>(recent: &mut VecDeque<T>, item: T) {
    if recent.len() == RECENT {
        recent.pop_front();
    }
    recent.push_back(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLLOUT: &str = include_str!(
        "../../../tests/fixtures/codex/captured-0.171.0/rollout-2026-12-07T16-40-51-01a25161-28d6-7671-b0d0-eb9d5a34b666.jsonl"
    );

    /// The captured session (two turns, five responses of the mock: input 1000 + 10n with 400 cached,
    /// output 20 + n): one delta per response, disjoint, each under its turn.
    #[test]
    fn each_response_of_the_captured_rollout_counts_once() {
        let mut ledger = Ledger::default();
        let read = ledger.read(ROLLOUT.as_bytes(), &PriceTable::builtin());
        assert_eq!(read.bad_lines, 0);
        let (usage, failures): (Vec<Delta>, Vec<Delta>) = read.deltas.into_iter().partition(Delta::is_usage);
        let failed = failures.iter().map(|d| d.tool_failure.clone().unwrap()).collect::<Vec<_>>();
        assert_eq!(
            failed,
            [crate::usage::logs::ToolFailure { call_id: "call_2_0".into(), message: "exit code 1".into() }],
            "the one command that exited 1"
        );
        let read = Read { deltas: usage, bad_lines: 0 };
        assert_eq!(read.deltas.len(), 5);
        for (n, d) in (1u64..).zip(&read.deltas) {
            assert_eq!(d.model, "gpt-mock");
            assert_eq!(d.usage.input, 1000 + 10 * n - 400);
            assert_eq!(d.usage.cache_read, 400);
            assert_eq!(d.usage.output, 20 + n);
            assert!(!d.priced && d.cost == 0.0, "a mock model is not priced");
            let r = d.response.as_ref().unwrap();
            assert_eq!(r.id, format!("resp_mock_{n}"));
            assert!(r.start <= r.end && r.start > 0, "{r:?}");
        }
        let turns: Vec<_> = read.deltas.iter().map(|d| d.prompt_id.clone().unwrap()).collect();
        assert_eq!(turns[0], turns[2]);
        assert_ne!(turns[2], turns[3], "the resumed turn is another");
        assert_eq!(ledger.offset, ROLLOUT.len() as u64);
        // read again from the start (a lost offset): no response counts twice (a failure is told
        // again, and marking a call failed twice is marking it once)
        ledger.offset = 0;
        assert!(ledger.read(ROLLOUT.as_bytes(), &PriceTable::builtin()).deltas.iter().all(|d| !d.is_usage()));
    }

    /// A line cut in the middle waits for its end; a torn file counts a bad line, not a response.
    #[test]
    fn a_partial_line_waits_and_garbage_is_counted() {
        let mut ledger = Ledger::default();
        let cut = ROLLOUT.len() / 2;
        let first = ledger.read(&ROLLOUT.as_bytes()[..cut], &PriceTable::builtin());
        let rest = ledger.read(&ROLLOUT.as_bytes()[ledger.offset as usize..], &PriceTable::builtin());
        let usage = |r: &Read| r.deltas.iter().filter(|d| d.is_usage()).count();
        assert_eq!(usage(&first) + usage(&rest), 5);
        let mut other = Ledger::default();
        assert_eq!(
            other
                .read(b"not json\n{\"type\":\"token_usage_record\",\"payload\":7}\n", &PriceTable::builtin())
                .bad_lines,
            1
        );
    }

    /// Cached and written parts never exceed the input they are part of.
    #[test]
    fn hostile_counts_do_not_underflow() {
        let u = Usage { input_tokens: 10, cached_input_tokens: 50, cache_write_input_tokens: 7, output_tokens: 1 };
        let t = u.tokens();
        assert_eq!((t.input, t.cache_read, t.cache_write_5m), (0, 10, 0));
        let u = Usage { input_tokens: 10, cached_input_tokens: 4, cache_write_input_tokens: 70, output_tokens: 1 };
        let t = u.tokens();
        assert_eq!((t.input, t.cache_read, t.cache_write_5m), (0, 4, 6));
    }
    /// A subagent's rollout (captured: a `spawn_agent` thread): its responses belong to the subagent
    /// (its thread id), not to a turn of the session; its parent's rollout is read as any session's.
    #[test]
    fn a_subagents_rollout_is_its_own() {
        const CHILD: &str = include_str!(
            "../../../tests/fixtures/codex/subagent-0.171.0/rollout-2026-12-07T19-41-39-01a25206-ad90-7ef3-8fde-2df8d57b0fd7.jsonl"
        );
        const PARENT: &str = include_str!(
            "../../../tests/fixtures/codex/subagent-0.171.0/rollout-2026-12-07T19-41-38-01a25206-ac28-7a30-a79f-6f883b1aa847.jsonl"
        );
        let child = Ledger::default().read(CHILD.as_bytes(), &PriceTable::builtin());
        let usage: Vec<&Delta> = child.deltas.iter().filter(|d| d.is_usage()).collect();
        assert_eq!(usage.len(), 2, "{:?}", child.deltas);
        for d in &usage {
            assert_eq!(
                (d.agent_id.as_deref(), d.prompt_id.as_deref()),
                (Some("01a25206-ad90-7ef3-8fde-2df8d57b0fd7"), None)
            );
        }
        let parent = Ledger::default().read(PARENT.as_bytes(), &PriceTable::builtin());
        let usage: Vec<&Delta> = parent.deltas.iter().filter(|d| d.is_usage()).collect();
        assert_eq!(usage.len(), 3, "{:?}", parent.deltas);
        for d in &usage {
            assert_eq!(
                (d.agent_id.as_deref(), d.prompt_id.as_deref()),
                (None, Some("01a25206-ac54-70c1-bbe6-075a5f0e5471"))
            );
        }
    }
}
