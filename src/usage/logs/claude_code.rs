//! Claude Code's session log, its transcript: where it records what hooks do not carry.
//!
//! Token usage: a [`Ledger`] reads one transcript incrementally from a saved offset and turns its
//! assistant lines into usage [`Delta`]s. One API response is written as one line per content block,
//! each repeating the usage, so each (`message.id`, `requestId`) counts once, at the largest usage
//! seen (older builds wrote growing placeholder counts). `<synthetic>` and API-error lines are not
//! responses. A partial last line is left for the next read. Pure: the caller does the file I/O.
//!
//! Each delta names its response, with the response's times: it ends at the timestamp of its last
//! line, and starts at the `api-request` line its `requestRef` names (Claude Code 2.1.3xx writes one
//! as the request goes out), or else at the last user line before it (the prompt or the tool results
//! it answers).
//!
//! MCP servers' share of the cost: a response that reads tool results (the user lines since the
//! response before it) is the model call their tokens go into; its cost is shared among the results
//! it reads, each MCP server's part counted as that server's (`Delta::mcp_shares`). A result's server
//! is the one its call named (`mcp__<server>__<tool>`, from the `tool_use` block of the response
//! that asked for it).
//!
//! And the subagent sidecar `<session>/subagents/agent-<id>.meta.json`, whose `toolUseId` names the
//! `Agent` call that spawned the subagent.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::tokens::TokenUsage;
use crate::usage::agent_dirs::AgentDirs;
use crate::usage::logs::{bounded_id, json_lines, model_name, text, Delta, FailedTry, Read, Response};
use crate::usage::pricing::{PriceTable, Service};

/// Responses remembered per transcript for deduplication. The lines of one response are written
/// together, so only the most recent responses can still grow; a bound keeps saved state small.
const RECENT_RESPONSES: usize = 32;

/// Reading state of one transcript file; saved so that a restart neither counts twice nor misses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// Bytes of the file already read (at a line boundary, or inside a line being skipped).
    pub offset: u64,
    /// Inside a line longer than `logs::MAX_LINE_BYTES`: the bytes up to its newline are skipped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    skipping: bool,
    /// The prompt the following assistant lines answer (the last user line's `promptId`).
    pub prompt_id: Option<String>,
    /// Recent responses and the usage already counted for each.
    recent: VecDeque<Counted>,
    /// Recent `api-request` lines: (id, time sent).
    #[serde(default)]
    requests: VecDeque<(String, u64)>,
    /// Time of the last user line (a prompt, tool results): what the next response answers.
    #[serde(default)]
    answered_at: u64,
    /// Failed tries (`system` `api_error` lines) not yet followed by a response.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    failed_tries: Vec<FailedTry>,
    /// The session this transcript was forked from (`--fork-session`): the `requestSessionId` of
    /// the responses it copied, which are that session's and not counted here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    forked_from: Option<String>,
    /// Recent MCP tool calls: (`tool_use` id, server).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    mcp_calls: VecDeque<(String, String)>,
    /// The tool results read since the last response: what the next one reads.
    #[serde(default, skip_serializing_if = "ResultsRead::is_empty")]
    results: ResultsRead,
}

/// The tool results a response reads: how many, and how many of them each MCP server's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct ResultsRead {
    count: u32,
    mcp: Vec<(String, u32)>,
}

impl ResultsRead {
    fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn add(&mut self, server: Option<&str>) {
        self.count = self.count.saturating_add(1);
        let Some(server) = server else { return };
        if let Some((_, n)) = self.mcp.iter_mut().find(|(s, _)| s == server) {
            *n += 1;
        } else if self.mcp.len() < MAX_SERVERS_READ {
            self.mcp.push((server.to_owned(), 1));
        }
    }

    /// Each MCP server's share of the reading response's cost: its part of the results.
    fn shares(&self) -> Vec<(String, f64)> {
        self.mcp.iter().map(|(s, n)| (s.clone(), f64::from(*n) / f64::from(self.count))).collect()
    }
}

/// MCP tool calls remembered to name a result's server: the results of a response's calls come
/// before the next response, so only the latest calls can still be answered.
const RECENT_MCP_CALLS: usize = 64;

/// MCP servers told apart among the results one response reads; the results of any more are
/// counted among the results, and no server's.
const MAX_SERVERS_READ: usize = 8;

/// Tool blocks kept of one message: a response asks for a few calls, a user line answers them; the
/// rest of a longer content is passed over, its results uncounted.
const MAX_TOOL_BLOCKS: usize = 256;

/// Failed tries remembered before a response: Claude Code retries up to 10 times.
const MAX_FAILED_TRIES: usize = 16;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Counted {
    key: String,
    usage: TokenUsage,
    cost: f64,
    #[serde(default)]
    start: u64,
    #[serde(default)]
    end: u64,
    #[serde(default)]
    stop_reason: Option<String>,
    /// The MCP servers whose results it read, and their shares of its cost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mcp: Vec<(String, f64)>,
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "promptId", default, deserialize_with = "bounded_id")]
    prompt_id: Option<String>,
    #[serde(rename = "agentId", default, deserialize_with = "bounded_id")]
    agent_id: Option<String>,
    #[serde(rename = "requestId", default, deserialize_with = "bounded_id")]
    request_id: Option<String>,
    #[serde(rename = "sessionId", default, deserialize_with = "bounded_id")]
    session_id: Option<String>,
    /// The session that made the request: another one on a line a fork copied.
    #[serde(rename = "requestSessionId", default, deserialize_with = "bounded_id")]
    request_session_id: Option<String>,
    /// The `api-request` line of an assistant line's request.
    #[serde(rename = "requestRef", default, deserialize_with = "bounded_id")]
    request_ref: Option<String>,
    /// An `api-request` line's own id.
    #[serde(default, deserialize_with = "bounded_id")]
    id: Option<String>,
    timestamp: Option<String>,
    /// A `system` line's kind (`api_error`: a failed try).
    subtype: Option<String>,
    /// A `system` `api_error` line's error (an object); a string on API-error assistant lines.
    #[serde(default)]
    error: serde_json::Value,
    #[serde(rename = "isApiErrorMessage", default)]
    api_error: bool,
    #[serde(default, deserialize_with = "message")]
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default, deserialize_with = "bounded_id")]
    id: Option<String>,
    model: Option<String>,
    usage: Option<Usage>,
    stop_reason: Option<String>,
    #[serde(default, deserialize_with = "blocks")]
    content: Vec<Block>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type", default)]
    kind: BlockKind,
    /// A `tool_use` block's call id.
    #[serde(default, deserialize_with = "bounded_id")]
    id: Option<String>,
    /// A `tool_use` block's tool.
    #[serde(default, deserialize_with = "bounded_id")]
    name: Option<String>,
    /// A `tool_result` block's call.
    #[serde(default, deserialize_with = "bounded_id")]
    tool_use_id: Option<String>,
}

/// The kinds of block told apart (no text copied for the others).
#[derive(Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BlockKind {
    ToolUse,
    ToolResult,
    #[default]
    #[serde(other)]
    Other,
}

/// What any other kind of value visits to: nothing.
macro_rules! nothing_else {
    ($($visit:ident: $t:ty),*) => {
        $(fn $visit<E: serde::de::Error>(self, _: $t) -> Result<Self::Value, E> {
            Ok(Default::default())
        })*
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
}

/// A value read as `T` when it is an object, none when it is anything else (passed over where it
/// lies, nothing copied). An object that is no `T` (a field of the wrong type) is an error.
struct IfObject<T>(Option<T>);

impl<T> Default for IfObject<T> {
    fn default() -> IfObject<T> {
        IfObject(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for IfObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<IfObject<T>, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct Object<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
            type Value = IfObject<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("anything, read when an object")
            }
            nothing_else!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IfObject<T>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(IfObject(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<IfObject<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(|t| IfObject(Some(t)))
            }
        }
        d.deserialize_any(Object(std::marker::PhantomData))
    }
}

/// A message's tool blocks (`tool_use`, `tool_result`), [`MAX_TOOL_BLOCKS`] at most: a text content
/// (a prompt) has none, and other blocks and an element that is not an object (no real transcript has
/// one) are passed over. Walked where it lies: nothing of a block's text or a tool's output is copied.
fn blocks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Block>, D::Error> {
    use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};

    struct Content;
    impl<'de> Visitor<'de> for Content {
        type Value = Vec<Block>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a message's content")
        }
        nothing_else!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Block>, A::Error> {
            let mut blocks = Vec::new();
            while let Some(block) = seq.next_element::<IfObject<Block>>()? {
                let tool = block.0.filter(|b| b.kind != BlockKind::Other && blocks.len() < MAX_TOOL_BLOCKS);
                blocks.extend(tool);
            }
            Ok(blocks)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Block>, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Vec::new())
        }
    }
    d.deserialize_any(Content)
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
    cache_creation: Option<CacheCreation>,
    server_tool_use: Option<ServerToolUse>,
    speed: Option<String>,
    inference_geo: Option<String>,
}

#[derive(Deserialize)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_1h_input_tokens: u64,
}

#[derive(Deserialize)]
struct ServerToolUse {
    #[serde(default)]
    web_search_requests: u64,
}

/// `message` is an object on user and assistant lines and something else on others: an object is
/// read where it lies (a tool's output passed over, never copied), anything else is none. An object
/// that is no message (a field of the wrong type) makes its line a bad line, counted.
fn message<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Message>, D::Error> {
    IfObject::deserialize(d).map(|m| m.0)
}

impl Usage {
    fn tokens(&self) -> TokenUsage {
        // Claude Code's split: the 1-hour part (never more than the total), the rest 5-minute
        let one_hour = self.cache_creation.as_ref().map_or(0, |c| c.ephemeral_1h_input_tokens);
        let one_hour = one_hour.min(self.cache_creation_input_tokens);
        TokenUsage {
            input: self.input_tokens,
            output: self.output_tokens,
            cache_read: self.cache_read_input_tokens,
            cache_write_5m: self.cache_creation_input_tokens - one_hour,
            cache_write_1h: one_hour,
            web_search: self.server_tool_use.as_ref().map_or(0, |s| s.web_search_requests),
        }
    }

    fn service(&self) -> Service {
        Service { fast: self.speed.as_deref() == Some("fast"), us_geo: self.inference_geo.as_deref() == Some("us") }
    }
}

impl Ledger {
    /// Read `bytes`, the file's contents from `self.offset` on. Complete lines are consumed and the
    /// offset advances past them; a partial last line stays for the next read, unless it is
    /// `logs::MAX_LINE_BYTES` long already: then it is skipped up to its newline.
    pub fn read(&mut self, bytes: &[u8], prices: &PriceTable) -> Read {
        let (mut offset, mut skipping, mut deltas) = (self.offset, self.skipping, Vec::new());
        let bad_lines = json_lines(&mut offset, &mut skipping, bytes, |l: Line| self.line(l, prices, &mut deltas));
        (self.offset, self.skipping) = (offset, skipping);
        Read { deltas, bad_lines }
    }

    /// When the request of a response first seen at `at` went out: its `api-request` line, else
    /// the user line it answers, else the response's own time.
    fn sent_at(&self, request_ref: Option<&str>, at: u64) -> u64 {
        let sent = request_ref.and_then(|r| self.requests.iter().find(|(id, _)| id == r)).map(|(_, t)| *t);
        match sent.or(Some(self.answered_at).filter(|&t| t > 0)) {
            Some(t) if t <= at || at == 0 => t,
            _ => at,
        }
    }

    fn line(&mut self, line: Line, prices: &PriceTable, out: &mut Vec<Delta>) {
        let at = line.timestamp.as_deref().and_then(crate::model::time::rfc3339_ns).unwrap_or(0);
        match line.kind.as_deref() {
            Some("user") => {
                if line.prompt_id.is_some() {
                    if line.prompt_id != self.prompt_id {
                        // a new prompt: failed tries and results of the last one, never answered,
                        // are not its
                        self.failed_tries.clear();
                        self.results = ResultsRead::default();
                    }
                    self.prompt_id = line.prompt_id;
                }
                self.answered_at = self.answered_at.max(at);
                for block in line.message.iter().flat_map(|m| &m.content) {
                    if block.kind == BlockKind::ToolResult {
                        let call = block.tool_use_id.as_deref();
                        let server = self.mcp_calls.iter().find(|(id, _)| Some(id.as_str()) == call);
                        self.results.add(server.map(|(_, s)| s.as_str()));
                    }
                }
            }
            Some("system")
                if line.subtype.as_deref() == Some("api_error") && self.failed_tries.len() < MAX_FAILED_TRIES =>
            {
                let e = &line.error;
                self.failed_tries.push(FailedTry {
                    at,
                    status: e.get("status").and_then(serde_json::Value::as_u64),
                    message: text(e.get("formatted").and_then(serde_json::Value::as_str).unwrap_or("API error")),
                    request_id: e
                        .get("requestId")
                        .and_then(serde_json::Value::as_str)
                        .and_then(super::id)
                        .map(str::to_owned),
                });
            }
            Some("api-request") => {
                if let Some(id) = line.id {
                    if self.requests.len() == RECENT_RESPONSES {
                        self.requests.pop_front();
                    }
                    self.requests.push_back((id, at));
                }
            }
            // the request failed for good: its tries belong to no response
            Some("assistant") if line.api_error => self.failed_tries.clear(),
            // a response a fork copied from its origin: the origin's, counted there
            Some("assistant") if line.request_session_id.is_some() && line.request_session_id != line.session_id => {
                let first = self.forked_from.is_none();
                self.forked_from = self.forked_from.take().or(line.request_session_id.clone());
                out.extend(line.request_session_id.filter(|_| first).map(Delta::fork));
            }
            Some("assistant") => {
                let Some(Message { id: Some(id), model: Some(model), usage: Some(usage), stop_reason, content }) =
                    line.message
                else {
                    return;
                };
                for block in content.iter().filter(|b| b.kind == BlockKind::ToolUse) {
                    let server = block.name.as_deref().and_then(crate::model::semconv::mcp_server);
                    if let (Some(call), Some(server)) = (&block.id, server) {
                        if self.mcp_calls.len() == RECENT_MCP_CALLS {
                            self.mcp_calls.pop_front();
                        }
                        self.mcp_calls.push_back((call.clone(), server.to_owned()));
                    }
                }
                if model == "<synthetic>" {
                    return;
                }
                let (model, stop_reason) = (model_name(&model), stop_reason.as_deref().map(text));
                let request_id = line.request_id.unwrap_or_default();
                let key = format!("{id}/{request_id}");
                let tokens = usage.tokens();
                let price = prices.lookup(&model);
                let index = self.recent.iter().position(|c| c.key == key);
                let before = index.map(|i| self.recent[i].clone());
                let counted = before.as_ref().map_or(tokens, |b| b.usage.max(tokens));
                let cost = price.map_or(0.0, |p| crate::usage::pricing::cost(p, &counted, usage.service()));
                let delta = counted.minus(before.as_ref().map(|b| b.usage).unwrap_or_default());
                let delta_cost = cost - before.as_ref().map_or(0.0, |b| b.cost);
                let start = match &before {
                    Some(b) => b.start,
                    None => self.sent_at(line.request_ref.as_deref(), at),
                };
                let end = before.as_ref().map_or(at, |b| b.end.max(at));
                let stop_reason = stop_reason.or_else(|| before.as_ref().and_then(|b| b.stop_reason.clone()));
                let changed = before.as_ref().is_none_or(|b| b.end != end || b.stop_reason != stop_reason);
                // the tries that failed before it belong to its first line
                let failed_tries = if before.is_none() { std::mem::take(&mut self.failed_tries) } else { Vec::new() };
                // and so do the results it reads
                let mcp = match &before {
                    Some(b) => b.mcp.clone(),
                    None => std::mem::take(&mut self.results).shares(),
                };
                let counted = Counted {
                    key,
                    usage: counted,
                    cost,
                    start,
                    end,
                    stop_reason: stop_reason.clone(),
                    mcp: mcp.clone(),
                };
                match index {
                    Some(i) => self.recent[i] = counted,
                    None => {
                        if self.recent.len() == RECENT_RESPONSES {
                            self.recent.pop_front();
                        }
                        self.recent.push_back(counted);
                    }
                }
                if !delta.is_zero() || changed {
                    out.push(Delta {
                        model,
                        usage: delta,
                        cost: delta_cost,
                        priced: price.is_some(),
                        prompt_id: self.prompt_id.clone(),
                        agent_id: line.agent_id,
                        response: Some(Response { id, request_id, start, end, stop_reason, failed_tries }),
                        forked_from: None,
                        tool_failure: None,
                        mcp_shares: mcp,
                    });
                }
            }
            _ => {}
        }
    }
}

/// The subagent transcripts of a session: `<session dir>/subagents/agent-<id>.jsonl`.
pub(crate) fn subagent_transcript(transcript_path: &str, agent_id: &str) -> Option<PathBuf> {
    let meta = subagent_meta_path(transcript_path, agent_id)?;
    Some(meta.with_file_name(format!("agent-{agent_id}.jsonl")))
}

/// The directory holding a session's subagent transcripts.
pub(crate) fn subagents_dir(transcript_path: &str) -> Option<PathBuf> {
    Some(Path::new(transcript_path.strip_suffix(".jsonl")?).join("subagents"))
}

/// Where the meta file of `agent_id` lives, given the session's `transcript_path`.
pub(crate) fn subagent_meta_path(transcript_path: &str, agent_id: &str) -> Option<PathBuf> {
    if agent_id.is_empty() || agent_id.contains(['/', '\\', '.']) {
        return None; // an id that could walk out of the directory is not an agent id
    }
    let session_dir = Path::new(transcript_path.strip_suffix(".jsonl")?);
    Some(session_dir.join("subagents").join(format!("agent-{agent_id}.meta.json")))
}

/// The `toolUseId` in a meta file's contents.
pub(crate) fn spawner_in_meta(contents: &[u8]) -> Option<String> {
    let meta: serde_json::Value = serde_json::from_slice(contents).ok()?;
    meta.get("toolUseId")?.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Largest meta file read: Claude Code's are a few hundred bytes.
const MAX_META_BYTES: u64 = 64 * 1024;

/// Read the `Agent` call that spawned `agent_id`, if its meta file is there yet and may be read
/// (under a transcript root, a regular file: see `usage::agent_dirs`). Blocking: call it off the workers.
pub(crate) fn subagent_spawner(roots: &AgentDirs, transcript_path: &str, agent_id: &str) -> Option<String> {
    let path = subagent_meta_path(transcript_path, agent_id)?;
    let contents = roots.read_small(&path, MAX_META_BYTES).ok()?;
    spawner_in_meta(&contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::logs::MAX_LINE_BYTES;

    const CAPTURED: &[u8] = include_bytes!(
        "../../../tests/fixtures/transcripts/captured-2.1.329/-home-dev-proj/2cfb142e-3e2c-45c5-8192-58e43d4a510f.jsonl"
    );
    const CAPTURED_AGENT: &[u8] = include_bytes!(
        "../../../tests/fixtures/transcripts/captured-2.1.329/-home-dev-proj/2cfb142e-3e2c-45c5-8192-58e43d4a510f/subagents/agent-a7ca175cf2fd2156a.jsonl"
    );
    const LEGACY: &[u8] = include_bytes!("../../../tests/fixtures/transcripts/legacy-2.1.29-partial-usage.jsonl");

    fn total(deltas: &[Delta]) -> (TokenUsage, f64) {
        let mut u = TokenUsage::default();
        let mut c = 0.0;
        for d in deltas {
            u.add(d.usage);
            c += d.cost;
        }
        (u, c)
    }

    #[test]
    fn captured_session_matches_claude_codes_cost_state() {
        // cost-state of this session: in 60, out 445, cache read 102400, 1h writes 15360, $0.07625
        let prices = PriceTable::builtin();
        let (mut main, mut agent) = (Ledger::default(), Ledger::default());
        let mut deltas = main.read(CAPTURED, &prices).deltas;
        deltas.extend(agent.read(CAPTURED_AGENT, &prices).deltas);
        let (u, cost) = total(&deltas);
        let expected =
            TokenUsage { input: 60, output: 445, cache_read: 102_400, cache_write_1h: 15_360, ..Default::default() };
        assert_eq!(u, expected);
        assert!((cost - 0.07625).abs() < 1e-12, "{cost}");
        assert_eq!(main.offset, CAPTURED.len() as u64);
        assert!(deltas
            .iter()
            .filter(|d| d.agent_id.is_none())
            .all(|d| d.prompt_id.as_deref() == Some("ddca265e-c4e4-4f08-acfc-8612056bc63a")));
        assert!(deltas.iter().any(|d| d.agent_id.as_deref() == Some("a7ca175cf2fd2156a")));
    }

    /// A `--fork-session` transcript starts with its origin's responses, copied (their
    /// `requestSessionId` is the origin): they are the origin's and count there, so the fork counts
    /// only its own two, and says once whose fork it is. The origin counts all of its own.
    #[test]
    fn a_fork_counts_only_its_own_responses() {
        const DIR: &str =
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/transcripts/fork-2.1.329/-home-dev-rf329-work");
        const ORIGIN: &str = "082b7548-ad4a-4949-86a5-67e6cb172c59";
        let read = |sid: &str| {
            let bytes = std::fs::read(format!("{DIR}/{sid}.jsonl")).unwrap();
            Ledger::default().read(&bytes, &PriceTable::builtin()).deltas
        };
        let fork = read("ff7c266d-769e-439d-a6c5-940a3331fc54");
        let forks: Vec<&Delta> = fork.iter().filter(|d| d.forked_from.is_some()).collect();
        assert_eq!(forks.len(), 1);
        assert_eq!(forks[0].forked_from.as_deref(), Some(ORIGIN));
        assert!(forks[0].usage.is_zero() && forks[0].response.is_none());
        let own: Vec<&str> = fork.iter().filter_map(|d| Some(d.response.as_ref()?.id.as_str())).collect();
        assert_eq!(own, ["msg_01pMms6L5ihQEAPQ1Kp6VqdqZW", "msg_01HADwrQ7zFy7ilETpznFEalru"]);
        assert_eq!(total(&fork).0.output, 50);
        let origin = read(ORIGIN);
        assert!(origin.iter().all(|d| d.forked_from.is_none()));
        assert!(origin.iter().any(|d| d.response.as_ref().is_some_and(|r| r.id == "msg_01mNGt54e4JqkxVXyZJ8OADFrl")));
    }

    /// Every response of the captured session, with its times: from its `api-request` line to its
    /// last content block's line, and why it stopped (read off the fixture by hand).
    #[test]
    fn responses_carry_their_ids_and_times() {
        let prices = PriceTable::builtin();
        let t = |s: &str| crate::model::time::rfc3339_ns(s).unwrap();
        let responses = |bytes: &[u8]| {
            let mut seen: Vec<Response> = Vec::new();
            for d in Ledger::default().read(bytes, &prices).deltas {
                let r = d.response.expect("every delta names its response");
                match seen.iter_mut().find(|s| s.key() == r.key()) {
                    Some(s) => *s = r,
                    None => seen.push(r),
                }
            }
            seen
        };
        let main = responses(CAPTURED);
        let got: Vec<_> = main.iter().map(|r| (r.id.as_str(), r.start, r.end, r.stop_reason.as_deref())).collect();
        assert_eq!(
            got,
            vec![
                (
                    "msg_01Mock235482140175",
                    t("2026-11-21T04:31:22.144Z"),
                    t("2026-11-21T04:31:22.460Z"),
                    Some("tool_use")
                ),
                (
                    "msg_01Mock235483478719",
                    t("2026-11-21T04:31:23.483Z"),
                    t("2026-11-21T04:31:23.487Z"),
                    Some("tool_use")
                ),
                (
                    "msg_01Mock235483712690",
                    t("2026-11-21T04:31:23.710Z"),
                    t("2026-11-21T04:31:23.717Z"),
                    Some("end_turn")
                ),
            ]
        );
        assert_eq!(main[0].request_id, "req_011CMock235482140");
        assert_eq!(responses(CAPTURED_AGENT).len(), 2);
        // an older transcript has no api-request lines: a response starts at the user line it answers
        let old = concat!(
            r#"{"type":"user","timestamp":"2026-01-01T00:00:01Z","promptId":"p","message":{"content":"hi"}}"#,
            "\n",
            r#"{"type":"assistant","timestamp":"2026-01-01T00:00:04Z","requestId":"r","message":{"id":"m","model":"claude-haiku-4-5","usage":{"input_tokens":1,"output_tokens":2}}}"#,
            "\n",
        );
        let r = &responses(old.as_bytes())[0];
        assert_eq!(
            (r.start, r.end, r.stop_reason.clone()),
            (t("2026-01-01T00:00:01Z"), t("2026-01-01T00:00:04Z"), None)
        );
    }

    #[test]
    fn placeholder_usage_counts_the_final_figures() {
        let prices = PriceTable::builtin();
        let mut l = Ledger::default();
        let (u, _) = total(&l.read(LEGACY, &prices).deltas);
        assert_eq!(u.output, 97, "the last, largest placeholder wins, counted once");
        assert_eq!(u.cache_read, 18_240);
    }

    /// A response that reads tool results shares its cost among them: an MCP server's results are
    /// that server's share, on every delta of the response (its later lines too), across a saved
    /// and restored ledger; a response reading no results, or results of a prompt never answered,
    /// is no server's.
    #[test]
    fn a_response_reading_mcp_results_names_their_servers_shares() {
        let prices = PriceTable::builtin();
        let assistant = |id: &str, content: &str, output: u64, at: &str| {
            format!(
                r#"{{"type":"assistant","timestamp":"2026-01-01T00:00:{at}Z","promptId":"p","requestId":"r{id}","message":{{"id":"{id}","model":"claude-sonnet-5-5","content":{content},"usage":{{"input_tokens":100,"output_tokens":{output}}}}}}}"#
            ) + "\n"
        };
        let result = |call: &str, prompt: &str| {
            format!(
                r#"{{"type":"user","timestamp":"2026-01-01T00:00:02Z","promptId":"{prompt}","message":{{"role":"user","content":[{{"tool_use_id":"{call}","type":"tool_result","content":[{{"type":"text","text":"x"}}]}}]}}}}"#
            ) + "\n"
        };
        let asks = r#"[{"type":"tool_use","id":"toolu_m1","name":"mcp__files__read","input":{}},{"type":"tool_use","id":"toolu_m2","name":"mcp__files__list","input":{}}]"#;
        let first = [
            assistant("m_a", r#"[{"type":"text","text":"let me look"}]"#, 5, "01"),
            assistant("m_a", asks, 10, "01"),
            assistant("m_a", r#"[{"type":"tool_use","id":"toolu_b","name":"Bash","input":{}},{"type":"tool_use","id":"toolu_d","name":"mcp__db__query","input":{}}]"#, 20, "01"),
            result("toolu_m1", "p"),
            result("toolu_m2", "p"),
        ]
        .concat();
        let second = [
            result("toolu_b", "p"),
            result("toolu_d", "p"),
            assistant("m_b", r#"[{"type":"text","text":"read"}]"#, 5, "03"),
            assistant("m_b", r#"[{"type":"text","text":"it all"}]"#, 9, "03"),
            assistant("m_c", r#""a string content""#, 1, "04"),
            result("toolu_m1", "p2"),
            r#"{"type":"user","timestamp":"2026-01-01T00:00:05Z","promptId":"p3","message":{"role":"user","content":"a new prompt"}}"#.to_owned() + "\n",
            assistant("m_d", r#"[{"type":"text","text":"hi"}, 7, null, [1], "x"]"#, 1, "06"),
            assistant("m_f", "null", 1, "06"),
            assistant("m_g", r#"{"type":"text"}"#, 1, "06"),
        ]
        .concat();
        let mut l = Ledger::default();
        let mut deltas = l.read(first.as_bytes(), &prices).deltas;
        let mut l: Ledger = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        deltas.extend(l.read(second.as_bytes(), &prices).deltas);
        let of = |id: &str| -> Vec<&Delta> {
            deltas.iter().filter(|d| d.response.as_ref().is_some_and(|r| r.id == id)).collect()
        };
        assert!(of("m_a").iter().all(|d| d.mcp_shares.is_empty()), "the first response read no result");
        let read = of("m_b");
        assert_eq!(read.len(), 2, "both lines of the reading response count");
        for d in &read {
            assert_eq!(d.mcp_shares, vec![("files".to_owned(), 0.5), ("db".to_owned(), 0.25)], "{d:?}");
        }
        assert!(read[1].cost > 0.0, "its later line's cost is shared too");
        assert!(of("m_c")[0].mcp_shares.is_empty(), "it read no result");
        assert_eq!(of("m_d").len(), 1, "a content with things that are no blocks keeps its usage");
        assert!(of("m_d")[0].mcp_shares.is_empty(), "a result of an earlier prompt is not the new prompt's");
        assert_eq!((of("m_f").len(), of("m_g").len()), (1, 1), "a content of no blocks keeps its usage");
        // the calls remembered are bounded
        let many: String = (0..200)
            .map(|i| {
                assistant("m_e", &format!(r#"[{{"type":"tool_use","id":"t{i}","name":"mcp__s{i}__x"}}]"#), 1, "07")
            })
            .collect();
        l.read(many.as_bytes(), &prices);
        assert_eq!(l.mcp_calls.len(), RECENT_MCP_CALLS);
        let results: String = (0..200).map(|i| result(&format!("t{i}"), "p3")).collect();
        l.read(results.as_bytes(), &prices);
        assert_eq!((l.results.count, l.results.mcp.len()), (200, MAX_SERVERS_READ));
    }

    #[test]
    fn any_split_of_the_file_counts_the_same() {
        let prices = PriceTable::builtin();
        let (whole, _) = total(&Ledger::default().read(CAPTURED, &prices).deltas);
        for cut in (0..CAPTURED.len()).step_by(997) {
            let mut l = Ledger::default();
            let mut deltas = l.read(&CAPTURED[..cut], &prices).deltas;
            // the next read starts at the saved offset, as after a restart
            let saved: Ledger = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
            let mut l = saved;
            deltas.extend(l.read(&CAPTURED[l.offset as usize..], &prices).deltas);
            assert_eq!(total(&deltas).0, whole, "cut at {cut}");
            assert_eq!(l.offset, CAPTURED.len() as u64);
        }
    }

    #[test]
    fn a_line_longer_than_any_real_one_is_skipped_once() {
        let prices = PriceTable::builtin();
        let mut l = Ledger::default();
        let huge = vec![b'x'; MAX_LINE_BYTES as usize];
        let r = l.read(&huge, &prices);
        assert_eq!((r.bad_lines, l.offset, l.skipping), (1, MAX_LINE_BYTES, true));
        let r = l.read(b"more of it", &prices);
        assert_eq!((r.bad_lines, l.offset), (0, MAX_LINE_BYTES + 10));
        let next = br#"{"type":"assistant","requestId":"r","message":{"id":"m","model":"claude-haiku-4-5","usage":{"input_tokens":1,"output_tokens":2}}}"#;
        let mut tail = b"end\n".to_vec();
        tail.extend_from_slice(next);
        tail.push(b'\n');
        let r = l.read(&tail, &prices);
        assert_eq!((r.bad_lines, r.deltas.len(), l.skipping), (0, 1, false));
        assert_eq!(l.offset, MAX_LINE_BYTES + 10 + tail.len() as u64);
    }

    #[test]
    fn garbage_and_partial_lines_are_survived() {
        let prices = PriceTable::builtin();
        let mut l = Ledger::default();
        let r = l.read(b"not json\n\x00\xff\n{\"type\":\"assistant\"", &prices);
        assert_eq!(r.bad_lines, 2);
        assert_eq!(l.offset, 12, "the partial last line is kept for later");
        let r = l.read(br#"{"type":"assistant","message":"text"}"#, &prices);
        assert!(r.deltas.is_empty());
        // a message that is no object is none; an object of the wrong shape is a bad line, counted
        let shapes = b"{\"type\":\"user\",\"message\":[1,{}]}\n{\"type\":\"user\",\"message\":null}\n\
            {\"type\":\"assistant\",\"message\":{\"id\":5,\"model\":\"m\",\"usage\":{}}}\n";
        let r = Ledger::default().read(shapes, &prices);
        assert_eq!((r.bad_lines, r.deltas.len()), (1, 0));
        let synthetic = br#"{"type":"assistant","requestId":"r","message":{"id":"m","model":"<synthetic>","usage":{"input_tokens":5}}}
{"type":"assistant","isApiErrorMessage":true,"requestId":"r2","message":{"id":"m2","model":"claude-opus-5-5","usage":{"input_tokens":5}}}
{"type":"assistant","requestId":"r3","message":{"id":"m3","model":"some-future-model","usage":{"input_tokens":5}}}
"#;
        let r = Ledger::default().read(synthetic, &prices);
        assert_eq!(r.deltas.len(), 1);
        assert!(!r.deltas[0].priced && r.deltas[0].cost == 0.0 && r.deltas[0].usage.input == 5);
    }

    #[test]
    fn meta_path_sits_beside_the_transcript() {
        let p = subagent_meta_path("/h/.claude/projects/-p/abc.jsonl", "a7ca175cf2fd2156a").unwrap();
        assert_eq!(p, Path::new("/h/.claude/projects/-p/abc/subagents/agent-a7ca175cf2fd2156a.meta.json"));
        assert!(subagent_meta_path("/x/abc.jsonl", "../../etc").is_none());
        assert!(subagent_meta_path("/x/abc.txt", "a1").is_none());
    }

    #[test]
    fn reads_tool_use_id() {
        let meta = br#"{"agentType":"Explore","toolUseId":"toolu_01Mock15235482140","spawnDepth":1}"#;
        assert_eq!(spawner_in_meta(meta).as_deref(), Some("toolu_01Mock15235482140"));
        assert_eq!(spawner_in_meta(b"garbage"), None);
    }
}
