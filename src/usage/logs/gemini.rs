//! Gemini CLI's session log, its chat log (`~/.gemini/tmp/<project>/chats/session-<time>-<id8>.jsonl`):
//! where its tokens are. Lines are a header (`sessionId`, `startTime`, `kind`; written again when
//! the session is resumed, in the same file), `{"$set": ...}` patches, and messages `{id, timestamp,
//! type: "user" | "gemini", model, tokens, toolCalls}`.
//!
//! Token usage: one `gemini` message per model response, `tokens` {`input` (the prompt, its cached
//! part in it), `cached`, `output` (the answer), `thoughts` (the model's thinking), `tool` (the
//! prompt of a tool's use), `total`}. Counted disjointly, as the other agents' are: uncached input
//! = `input - cached + tool`, cache read = `cached`, output = `output + thoughts` (Google bills
//! thinking as output). The same message is written again when its tool calls finish: the last
//! line of an id wins, so a repeat adds only what it adds (nothing, when its tokens are the same).
//! A response starts at the last `user` line it answers (the prompt, or the tools' results) and
//! ends at its own. Gemini's routing classifier (a model call per prompt) is in no line: hooktel
//! cannot see it. Pure: the caller does the I/O.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::model::tokens::TokenUsage;
use crate::usage::logs::{bounded_id, json_lines, model_name, Delta, Read, Response};
use crate::usage::pricing::PriceTable;

/// Responses remembered: a message is written again right after its tool calls end.
const RECENT: usize = 64;

/// Reading state of one chat log; saved so that a restart neither counts twice nor misses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// Bytes of the file already read (at a line boundary, or inside a line being skipped).
    pub offset: u64,
    /// Inside a line longer than `logs::MAX_LINE_BYTES`: the bytes up to its newline are skipped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    skipping: bool,
    /// Recent responses and the tokens counted for each.
    counted: VecDeque<(String, TokenUsage)>,
    /// Time of the last `user` line, which the next response answers.
    answered_at: u64,
}

#[derive(Deserialize)]
struct Line {
    #[serde(default, deserialize_with = "bounded_id")]
    id: Option<String>,
    timestamp: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "bounded_id")]
    kind: Option<String>,
    model: Option<String>,
    tokens: Option<Tokens>,
}

/// A response's tokens as Gemini CLI writes them (counts only: a field of another type, or a count
/// past `u64`, makes the line unreadable, and it is passed over as a bad line).
#[derive(Deserialize)]
struct Tokens {
    #[serde(default)]
    input: u64,
    #[serde(default)]
    output: u64,
    #[serde(default)]
    cached: u64,
    #[serde(default)]
    thoughts: u64,
    #[serde(default)]
    tool: u64,
}

impl Tokens {
    fn usage(&self) -> TokenUsage {
        let cached = self.cached.min(self.input);
        TokenUsage {
            input: (self.input - cached).saturating_add(self.tool),
            output: self.output.saturating_add(self.thoughts),
            cache_read: cached,
            ..TokenUsage::default()
        }
    }
}

impl Ledger {
    /// Read `bytes`, the file's contents from `self.offset` on (the same rules for partial and
    /// overlong lines as the other agents' readers).
    pub fn read(&mut self, bytes: &[u8], prices: &PriceTable) -> Read {
        let (mut offset, mut skipping, mut deltas) = (self.offset, self.skipping, Vec::new());
        let bad_lines = json_lines(&mut offset, &mut skipping, bytes, |l: Line| self.line(l, prices, &mut deltas));
        (self.offset, self.skipping) = (offset, skipping);
        Read { deltas, bad_lines }
    }

    fn line(&mut self, line: Line, prices: &PriceTable, out: &mut Vec<Delta>) {
        let at = line.timestamp.as_deref().and_then(crate::model::time::rfc3339_ns).unwrap_or(0);
        match line.kind.as_deref() {
            Some("user") => self.answered_at = self.answered_at.max(at),
            Some("gemini") => {
                let (Some(id), Some(tokens)) = (line.id, line.tokens) else { return };
                let usage = tokens.usage();
                let before = match self.counted.iter_mut().find(|(seen, _)| *seen == id) {
                    Some((_, counted)) => {
                        let before = *counted;
                        *counted = counted.max(usage);
                        before
                    }
                    None => {
                        if self.counted.len() == RECENT {
                            self.counted.pop_front();
                        }
                        self.counted.push_back((id.clone(), usage));
                        TokenUsage::default()
                    }
                };
                let added = usage.max(before).minus(before);
                if added == TokenUsage::default() && before != TokenUsage::default() {
                    return; // written again, nothing new
                }
                let model = line.model.as_deref().map_or_else(|| "unknown".to_owned(), model_name);
                let start = if self.answered_at > 0 && self.answered_at <= at { self.answered_at } else { at };
                out.push(Delta::priced(model, added, prices, Response::new(id, start, at)));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: &str =
        include_str!("../../../tests/fixtures/gemini/single-0.61.0/session-2026-12-07T05-28-fbc5aa14.jsonl");

    /// The captured run (a shell call, then the answer): two responses of the mock, 11 in and 7 out
    /// each; the first is written twice (again when its call ended) and counts once.
    #[test]
    fn each_response_of_the_captured_log_counts_once() {
        let mut ledger = Ledger::default();
        let read = ledger.read(CHAT.as_bytes(), &PriceTable::builtin());
        assert_eq!(read.bad_lines, 0);
        let ids: Vec<&str> = read.deltas.iter().map(|d| d.response.as_ref().unwrap().id.as_str()).collect();
        assert_eq!(ids, ["32bf941c-2ddd-4bfb-af4a-961a80b6fac8", "100f2421-0613-43ce-bcc5-8c94f129a7ac"]);
        for d in &read.deltas {
            assert_eq!(
                (d.model.as_str(), d.usage.input, d.usage.output, d.usage.cache_read),
                ("gemini-3.8-flash", 11, 7, 0)
            );
        }
        let first = read.deltas[0].response.as_ref().unwrap();
        // from the prompt's line to the response's
        assert_eq!(first.start, crate::model::time::rfc3339_ns("2026-12-07T05:28:55.812Z").unwrap());
        assert_eq!(first.end, crate::model::time::rfc3339_ns("2026-12-07T05:28:56.204Z").unwrap());
        assert_eq!(ledger.offset, CHAT.len() as u64);
        // read again from the start (a saved state lost): nothing counts twice
        ledger.offset = 0;
        assert!(ledger.read(CHAT.as_bytes(), &PriceTable::builtin()).deltas.is_empty());
    }

    /// Cached tokens are in `input`, thoughts are not in `output`: disjoint counts, thinking billed
    /// as output; a line written again with more tokens adds only the difference.
    #[test]
    fn tokens_count_disjointly_and_a_rewrite_adds_only_what_it_adds() {
        let line = |tokens: &str| {
            format!(
                r#"{{"id":"m1","timestamp":"2026-12-07T05:28:56.204Z","type":"gemini","model":"gemini-3.8-flash","tokens":{tokens}}}"#
            )
        };
        let mut ledger = Ledger::default();
        let first = line(r#"{"input":1000,"output":50,"cached":600,"thoughts":20,"tool":5,"total":1075}"#) + "\n";
        let d = ledger.read(first.as_bytes(), &PriceTable::builtin()).deltas;
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].usage.input, d[0].usage.cache_read, d[0].usage.output), (405, 600, 70));
        ledger.offset = 0;
        let grown = line(r#"{"input":1000,"output":60,"cached":600,"thoughts":20,"tool":5,"total":1085}"#) + "\n";
        let d = ledger.read(grown.as_bytes(), &PriceTable::builtin()).deltas;
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].usage.input, d[0].usage.cache_read, d[0].usage.output), (0, 0, 10));
    }
}
