//! The seam where an agent's session log becomes usage: one reader per agent, each pure (the bytes
//! appended to a log since its saved offset in, a usage [`Delta`] per API response out), its state
//! saved between reads so that a restart neither counts twice nor misses, and each knowing where its
//! agent keeps a session's subagent logs. Claude Code's transcript reader came first, Codex CLI's
//! rollout reader and Gemini CLI's chat-log reader are beside it. What comes out is the same whichever agent wrote
//! the log.

use std::path::{Path, PathBuf};

use opentelemetry::KeyValue;
use serde::{Deserialize, Serialize};

use crate::model::agent::Agent;
use crate::model::semconv;
use crate::model::span::SpanEvent;
use crate::model::tokens::TokenUsage;
use crate::usage::agent_dirs::AgentDirs;
use crate::usage::pricing::PriceTable;

pub mod claude_code;
pub mod codex;
pub mod gemini;

/// Reading state of one session log, in the format of the agent that writes it.
#[derive(Clone, Debug, PartialEq)]
pub enum LogReader {
    ClaudeCode(claude_code::Ledger),
    Codex(codex::Ledger),
    Gemini(gemini::Ledger),
}

impl LogReader {
    /// A reader at the start of a log `agent` writes.
    pub fn new(agent: Agent) -> LogReader {
        match agent {
            Agent::ClaudeCode => LogReader::ClaudeCode(claude_code::Ledger::default()),
            Agent::Codex => LogReader::Codex(codex::Ledger::default()),
            Agent::Gemini => LogReader::Gemini(gemini::Ledger::default()),
        }
    }

    /// Bytes of the log already read.
    pub fn offset(&self) -> u64 {
        match self {
            LogReader::ClaudeCode(ledger) => ledger.offset,
            LogReader::Codex(ledger) => ledger.offset,
            LogReader::Gemini(ledger) => ledger.offset,
        }
    }

    /// Go on at `offset`: the log was replaced (0), or its saved state was lost (its end). What the
    /// reader remembers of responses already counted stays.
    pub fn set_offset(&mut self, offset: u64) {
        match self {
            LogReader::ClaudeCode(ledger) => ledger.offset = offset,
            LogReader::Codex(ledger) => ledger.offset = offset,
            LogReader::Gemini(ledger) => ledger.offset = offset,
        }
    }

    /// Read `bytes`, the log's contents from [`LogReader::offset`] on; the offset advances past what
    /// was consumed.
    pub fn read(&mut self, bytes: &[u8], prices: &PriceTable) -> Read {
        match self {
            LogReader::ClaudeCode(ledger) => ledger.read(bytes, prices),
            LogReader::Codex(ledger) => ledger.read(bytes, prices),
            LogReader::Gemini(ledger) => ledger.read(bytes, prices),
        }
    }

    /// The state to save, in the agent reader's own format.
    pub fn saved(&self) -> serde_json::Result<Vec<u8>> {
        match self {
            LogReader::ClaudeCode(ledger) => serde_json::to_vec(ledger),
            LogReader::Codex(ledger) => serde_json::to_vec(ledger),
            LogReader::Gemini(ledger) => serde_json::to_vec(ledger),
        }
    }

    /// A reader of a log `agent` writes, from its saved state.
    pub fn restore(agent: Agent, saved: &[u8]) -> serde_json::Result<LogReader> {
        match agent {
            Agent::ClaudeCode => serde_json::from_slice(saved).map(LogReader::ClaudeCode),
            Agent::Codex => serde_json::from_slice(saved).map(LogReader::Codex),
            Agent::Gemini => serde_json::from_slice(saved).map(LogReader::Gemini),
        }
    }
}

/// Where `agent` keeps the logs of a session's subagents, given the session's log.
pub(crate) fn subagent_logs_dir(agent: Agent, log: &str) -> Option<PathBuf> {
    match agent {
        Agent::ClaudeCode => claude_code::subagents_dir(log),
        // Codex's subagents are threads of their own, with a log of their own; Gemini CLI has none
        Agent::Codex | Agent::Gemini => None,
    }
}

/// The log of subagent `agent_id`, given the log its event named: Claude Code names the session's,
/// beside which the subagent's lies; Codex names the subagent's own (a rollout of its thread,
/// `rollout-<time>-<agent_id>.jsonl`), so `log` itself when it is that.
pub(crate) fn subagent_log(agent: Agent, log: &str, agent_id: &str) -> Option<PathBuf> {
    match agent {
        Agent::ClaudeCode => claude_code::subagent_transcript(log, agent_id),
        Agent::Codex => {
            let name = Path::new(log).file_name()?.to_str()?;
            let own = name.strip_suffix(".jsonl")?.strip_suffix(agent_id)?.ends_with('-');
            (own && !agent_id.is_empty()).then(|| PathBuf::from(log))
        }
        Agent::Gemini => None,
    }
}

/// The tool call that spawned subagent `agent_id`, when the agent's files tell it and may be read
/// (see `usage::agent_dirs`). Blocking: call it off the workers.
pub(crate) fn subagent_spawner(agent: Agent, dirs: &AgentDirs, log: &str, agent_id: &str) -> Option<String> {
    match agent {
        Agent::ClaudeCode => claude_code::subagent_spawner(dirs, log, agent_id),
        Agent::Codex | Agent::Gemini => None,
    }
}

/// A failed API try that the agent retried (Claude Code writes a `system` line of subtype `api_error`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedTry {
    pub at: u64,
    /// HTTP status, when the API answered.
    pub status: Option<u64>,
    /// The error as the agent shows it (`529 Overloaded`).
    pub message: String,
    pub request_id: Option<String>,
}

/// Usage newly counted from a session log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    pub model: String,
    pub usage: TokenUsage,
    /// USD; 0 when the model is not priced.
    pub cost: f64,
    pub priced: bool,
    pub prompt_id: Option<String>,
    pub agent_id: Option<String>,
    /// The API response this usage belongs to (absent in deltas journaled by an older hooktel).
    #[serde(default)]
    pub response: Option<Response>,
    /// Set (with no usage) once, when the log turns out to be a fork of this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forked_from: Option<String>,
    /// Set (with no usage) when the log says a tool call failed where the agent's hook did not (a
    /// Codex command that exited non-zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_failure: Option<ToolFailure>,
    /// The MCP servers whose tool results the response read, and each one's share of its cost
    /// (its part of the results read; the shares add up to 1 at most). Claude Code's logs only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_shares: Vec<(String, f64)>,
}

/// A tool call the agent's log says failed: its call id, and why (`exit code 1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolFailure {
    pub call_id: String,
    pub message: String,
}

impl Delta {
    /// The usage of response `response` of `model`, at the table's price (0, and unpriced, when the
    /// table names none), belonging to no turn or subagent until the reader says.
    pub(crate) fn priced(model: String, usage: TokenUsage, prices: &PriceTable, response: Response) -> Delta {
        let price = prices.lookup(&model);
        let cost =
            price.map_or(0.0, |p| crate::usage::pricing::cost(p, &usage, crate::usage::pricing::Service::default()));
        Delta { model, usage, cost, priced: price.is_some(), response: Some(response), ..Delta::news() }
    }

    /// The news that a log was forked from `origin`; it carries no usage.
    pub(crate) fn fork(origin: String) -> Delta {
        Delta { forked_from: Some(origin), ..Delta::news() }
    }

    /// The news that tool call `call_id` failed (`message`); it carries no usage.
    pub(crate) fn tool_failed(call_id: String, message: String) -> Delta {
        Delta { tool_failure: Some(ToolFailure { call_id, message }), ..Delta::news() }
    }

    fn news() -> Delta {
        Delta {
            model: String::new(),
            usage: TokenUsage::default(),
            cost: 0.0,
            priced: false,
            prompt_id: None,
            agent_id: None,
            response: None,
            forked_from: None,
            tool_failure: None,
            mcp_shares: Vec::new(),
        }
    }

    /// Whether it counts tokens (rather than bringing news of a fork or a failure).
    pub(crate) fn is_usage(&self) -> bool {
        self.forked_from.is_none() && self.tool_failure.is_none()
    }
}

/// One API response, as far as it has been read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The response's own id (Claude Code: `message.id`).
    pub id: String,
    /// The API request's id (Claude Code: `requestId`).
    pub request_id: String,
    /// When the request went out, as well as its log tells (Unix nanoseconds).
    pub start: u64,
    /// The timestamp of its last line read so far.
    pub end: u64,
    pub stop_reason: Option<String>,
    /// The tries that failed before this response (its attempt is one more).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_tries: Vec<FailedTry>,
}

impl Response {
    /// A response known by its own id only (no request id), from `start` to `end`, its first try.
    pub(crate) fn new(id: String, start: u64, end: u64) -> Response {
        Response { id, start, end, ..Response::default() }
    }

    /// What identifies the response: its lines repeat it, and its chat span's id derives from it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.id, self.request_id)
    }

    /// Which try of its request it was.
    pub fn attempt(&self) -> u64 {
        self.failed_tries.len() as u64 + 1
    }

    /// Its failed tries as `api_error` events of its chat span (a retry storm shows as many).
    pub(crate) fn failed_try_events(&self) -> Vec<SpanEvent> {
        self.failed_tries
            .iter()
            .map(|t| {
                let mut attrs = vec![KeyValue::new(semconv::API_ERROR, t.message.clone())];
                attrs.extend(t.status.map(|s| KeyValue::new(semconv::API_STATUS_CODE, s.to_string())));
                attrs.extend(t.request_id.clone().map(|r| KeyValue::new(semconv::API_REQUEST_ID, r)));
                SpanEvent { name: "api_error".into(), at: t.at, attrs }
            })
            .collect()
    }
}

/// What a read of a log's new bytes produced.
#[derive(Debug, Default)]
pub struct Read {
    pub deltas: Vec<Delta>,
    /// Lines that are not JSON (a corrupt or foreign file).
    pub bad_lines: u64,
}

/// Feed each whole line of `bytes` (a log's contents from `*offset` on) to `line`, and advance
/// `*offset` past them. A partial last line stays for the next read, unless it is [`MAX_LINE_BYTES`]
/// long already: then it is skipped up to its newline (`*skipping` carries that across reads) and
/// counted in the returned bad lines. Blank lines are passed over.
pub(crate) fn whole_lines(offset: &mut u64, skipping: &mut bool, bytes: &[u8], mut line: impl FnMut(&[u8])) -> u64 {
    let mut bytes = bytes;
    if *skipping {
        let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
            *offset += bytes.len() as u64;
            return 0;
        };
        *skipping = false;
        *offset += end as u64 + 1;
        bytes = &bytes[end + 1..];
    }
    let Some(last_newline) = bytes.iter().rposition(|&b| b == b'\n') else {
        if bytes.len() as u64 >= MAX_LINE_BYTES {
            *skipping = true;
            *offset += bytes.len() as u64;
            return 1;
        }
        return 0;
    };
    for l in bytes[..last_newline].split(|&b| b == b'\n') {
        if !l.iter().all(u8::is_ascii_whitespace) {
            line(l);
        }
    }
    *offset += last_newline as u64 + 1;
    0
}

/// Longest id (of a response, request, prompt, turn, agent or session) taken from a log: real ones are
/// UUIDs or about 40 characters. A longer one is left out, as if the line named none: the reader
/// remembers ids, puts them on spans and saves them with its progress, so an id may not be the size
/// of a line.
pub const MAX_ID_BYTES: usize = 256;

/// Longest model name kept from a log (a longer one is cut): as long as a metric label's value.
pub const MAX_MODEL_BYTES: usize = 128;

/// Longest other text kept from a log (an API error's message, a stop reason); a longer one is cut.
pub const MAX_TEXT_BYTES: usize = 1024;

/// An optional id field of a log line, left out when longer than [`MAX_ID_BYTES`].
pub(crate) fn bounded_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| s.len() <= MAX_ID_BYTES))
}

/// An id of a log line, if it is one (not longer than [`MAX_ID_BYTES`]).
pub(crate) fn id(s: &str) -> Option<&str> {
    (s.len() <= MAX_ID_BYTES).then_some(s)
}

/// A model name as a log gives it, cut to [`MAX_MODEL_BYTES`].
pub(crate) fn model_name(s: &str) -> String {
    crate::model::payload::truncate_utf8(s, MAX_MODEL_BYTES).to_owned()
}

/// Other text of a log line, cut to [`MAX_TEXT_BYTES`].
pub(crate) fn text(s: &str) -> String {
    crate::model::payload::truncate_utf8(s, MAX_TEXT_BYTES).to_owned()
}

/// Feed each whole line of `bytes` to `line` as an `L` (see [`whole_lines`]); a line that is not
/// one is passed over. Returns the lines passed over, over-long ones included.
pub(crate) fn json_lines<L: serde::de::DeserializeOwned>(
    offset: &mut u64,
    skipping: &mut bool,
    bytes: &[u8],
    mut line: impl FnMut(L),
) -> u64 {
    let mut bad = 0;
    let too_long = whole_lines(offset, skipping, bytes, |l| match serde_json::from_slice::<L>(l) {
        Ok(parsed) => line(parsed),
        Err(_) => bad += 1,
    });
    bad + too_long
}

/// Longest log line read: far over any real one (a response with a large tool result is a
/// few MiB). A longer one is skipped, counted as a bad line, rather than re-read on every event.
pub const MAX_LINE_BYTES: u64 = 64 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading state saved by an older hooktel (a bare Claude Code ledger) is restored as it was:
    /// the seam did not change what is on disk.
    #[test]
    fn saved_state_keeps_the_agent_readers_own_format() {
        let old = br#"{"offset":1234,"prompt_id":"p1","recent":[],"requests":[],"answered_at":0}"#;
        let reader = LogReader::restore(Agent::ClaudeCode, old).unwrap();
        assert_eq!(reader.offset(), 1234);
        let again = LogReader::restore(Agent::ClaudeCode, &reader.saved().unwrap()).unwrap();
        assert_eq!(again, reader);
        assert!(LogReader::restore(Agent::ClaudeCode, b"{\"not\": \"a ledger\"}").is_err());
        let mut fresh = LogReader::new(Agent::ClaudeCode);
        fresh.set_offset(7);
        assert_eq!(fresh.offset(), 7);
    }
}
