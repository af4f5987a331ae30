//! Backfill: historic transcripts become the span trees the live path would have produced, with the
//! transcripts' own timestamps.
//!
//! A session is its `<session>.jsonl` plus every `<session>/subagents/agent-<id>.jsonl` (and its
//! `.meta.json`). Span ids are the live path's ([`ids::span_id`] keyed by session, prompt, tool call
//! and agent id), so a session imported after it was also captured live lands on the same spans.
//! Pure apart from reading the files: no clock, and the same files always give the same spans.
//!
//! What comes from where:
//! - root `claude-code session`: first to last timestamp of all the session's lines;
//! - turn `invoke_agent claude-code` per `promptId`: its earliest user line to its last conversation
//!   line (a compact boundary ends a prompt); usage of the main thread's responses to it;
//! - tool `execute_tool {name}` per `tool_use` block that got a `tool_result`: the assistant line's
//!   timestamp to the result line's; ERROR when `is_error`;
//! - subagent `invoke_agent {agentType}` per agent file, under the `Agent` call named by its meta
//!   file's `toolUseId` (else the call whose result names the agent, else its turn, else the root).
//!
//! Usage is counted by [`Ledger`] (one per file, as live), so deduplication is the live path's.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use opentelemetry::trace::SpanId;
use opentelemetry::KeyValue;
use serde_json::Value;

use crate::backfill::error::BackfillError;
use crate::backfill::lines::{each_line, object, open_log};
use crate::model::agent::Agent as CodingAgent;
use crate::model::capture::{self, Capture};
use crate::model::ids::{self, SessionId, SpanKey};
use crate::model::semconv;
use crate::model::semconv::{project_of, ModelEndpoint};
use crate::model::span::{
    ChatCall, SpanLink, SpanRecord, SpanUsage, Status, Subject, ToolRun, ToolStatus, TurnOutcome,
};
use crate::model::time::rfc3339_ns;
use crate::usage::agent_dirs::AgentDirs;
use crate::usage::logs::claude_code::{spawner_in_meta, Ledger};
use crate::usage::logs::{Delta, Response};
use crate::usage::pricing::PriceTable;

/// The agent whose transcripts these are.
const CLAUDE_CODE: CodingAgent = CodingAgent::ClaudeCode;

/// One session read back from its transcripts.
#[derive(Debug)]
pub struct ImportedSession {
    pub session_id: SessionId,
    /// The root first, then turns, subagents and tool calls, in transcript order.
    pub spans: Vec<SpanRecord>,
    /// Every usage delta of the session (main thread and subagents), as the live path counts them.
    pub usage: Vec<Delta>,
    /// Subagent files left out, and why (a FIFO, a device, a symlink out of the session's directory).
    pub refused: Vec<(PathBuf, String)>,
    /// Lines of its log passed over: longer than `MAX_LINE_BYTES`, or not a JSON object.
    pub skipped_lines: u64,
}

/// Start and end of a span, widened by every timestamp that falls in it.
#[derive(Clone, Copy)]
struct Extent {
    start: u64,
    end: u64,
}

impl Extent {
    fn at(t: u64) -> Extent {
        Extent { start: t, end: t }
    }
    fn widen(&mut self, t: u64) {
        self.start = self.start.min(t);
        self.end = self.end.max(t);
    }
}

fn widen(e: &mut Option<Extent>, t: u64) {
    match e {
        Some(e) => e.widen(t),
        None => *e = Some(Extent::at(t)),
    }
}

struct Turn {
    prompt_id: String,
    /// Earliest user line of the prompt.
    start: u64,
    /// Last conversation line of the prompt.
    end: u64,
    prompt: Option<String>,
    /// `error` of the last response when it was an API error.
    failure: Option<String>,
    failure_message: Option<String>,
    usage: Option<SpanUsage>,
}

struct Call {
    id: String,
    name: String,
    /// What the capture level lets out of its input: made as the call is read, so that a large
    /// input is never held (a `Write` of a whole file, say).
    input: Vec<KeyValue>,
    start: u64,
    prompt_id: Option<String>,
    agent_id: Option<String>,
}

struct Outcome {
    at: u64,
    is_error: bool,
    interrupted: bool,
    text: String,
}

struct Agent {
    id: String,
    agent_type: String,
    spawner: Option<String>,
    prompt_id: Option<String>,
    extent: Option<Extent>,
    usage: Option<SpanUsage>,
}

/// Everything read from a session's files, before it is turned into spans.
#[derive(Default)]
struct Reader {
    session_id: Option<String>,
    cwd: Option<String>,
    extent: Option<Extent>,
    turns: Vec<Turn>,
    turn_index: HashMap<String, usize>,
    calls: Vec<Call>,
    call_ids: HashSet<String>,
    /// What tool inputs may let out.
    capture: Capture,
    results: HashMap<String, Outcome>,
    /// Agent id → the `Agent` call whose result names it.
    spawned: HashMap<String, String>,
}

/// Read one session: `main` is `<session>.jsonl`; its subagent files are found beside it.
pub fn session_from_transcript(
    main: &Path,
    prices: &PriceTable,
    capture: Capture,
    endpoint: &ModelEndpoint,
) -> Result<ImportedSession, BackfillError> {
    let mut r = Reader { capture, ..Reader::default() };
    // the live path's file rules: opened without blocking, regular files only, and the subagent files
    // inside the session's own directory once symlinks are resolved
    let real = std::fs::canonicalize(main).map_err(BackfillError::read(main))?;
    let session_dir = AgentDirs::new(real.parent().map(Path::to_path_buf).into_iter().collect());
    let mut file = open_log(&session_dir, &real)?;
    // a fork (`--fork-session`) starts with its origin's history, copied: up to the last response
    // whose `requestSessionId` is another session, then to its own first prompt, it is the origin's.
    // A first pass finds where the session's own lines start (and counts the usage), a second reads
    // them: one line is held at a time, never the file
    let (mut fork, mut ledger, mut usage, mut skipped) = (ForkStart::default(), Ledger::default(), Vec::new(), 0);
    let too_long = each_line(&mut file, |line| {
        usage.extend(ledger.read(&[line, b"\n"].concat(), prices).deltas);
        match object(line) {
            Some(v) => fork.see(&v),
            None if !line.iter().all(u8::is_ascii_whitespace) => skipped += 1,
            None => {}
        }
    })
    .map_err(BackfillError::read(&real))?;
    let (own, mut seen, mut current) = (fork.own_start(), 0, None);
    each_line(&mut file, |line| {
        if let Some(v) = object(line) {
            if seen >= own {
                r.main_line(&v, &mut current);
            }
            seen += 1;
        }
    })
    .map_err(BackfillError::read(&real))?;
    // a fork's copied responses are its origin's: not counted here; the root links to the origin
    let forked_from = usage.iter().find_map(|d| d.forked_from.clone());
    usage.retain(|d| d.forked_from.is_none());
    for d in &usage {
        if let Some(i) = d.prompt_id.as_ref().and_then(|p| r.turn_index.get(p)) {
            r.turns[*i].usage.get_or_insert_with(SpanUsage::default).add(&d.model, d.usage, d.cost);
        }
    }

    let (mut agents, mut refused) = (Vec::new(), Vec::new());
    for (aid, path) in agent_files(&real) {
        let mut file = match open_log(&session_dir, &path) {
            Ok(file) => file,
            Err(e) => {
                refused.push((path, e.to_string()));
                continue;
            }
        };
        let meta = session_dir
            .read_small(&path.with_file_name(format!("agent-{aid}.meta.json")), MAX_META_BYTES)
            .unwrap_or_default();
        let agent_type = serde_json::from_slice::<Value>(&meta)
            .ok()
            .and_then(|m| m.get("agentType")?.as_str().filter(|s| !s.is_empty()).map(str::to_owned));
        let mut agent = Agent {
            id: aid.clone(),
            agent_type: agent_type.unwrap_or_else(|| "subagent".into()),
            spawner: spawner_in_meta(&meta),
            prompt_id: None,
            extent: None,
            usage: None,
        };
        let mut ledger = Ledger::default();
        each_line(&mut file, |line| {
            for mut d in ledger.read(&[line, b"\n"].concat(), prices).deltas {
                d.agent_id = Some(aid.clone());
                agent.usage.get_or_insert_with(SpanUsage::default).add(&d.model, d.usage, d.cost);
                usage.push(d);
            }
            if let Some(v) = object(line) {
                r.agent_line(&v, &mut agent);
            }
        })
        .map_err(BackfillError::read(&path))?;
        agents.push(agent);
    }

    let stem = main.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    // Claude Code names the file after the session; a resumed file can start with older sessions' lines
    let sid = match (uuid::Uuid::parse_str(&stem).is_ok(), r.session_id.take()) {
        (false, Some(from_lines)) => from_lines,
        _ => stem,
    };
    let Some(extent) = r.extent else { return Err(BackfillError::NoTimestamps(main.to_path_buf())) };
    let mut spans = r.spans(&sid, main, extent, agents, &usage, SpanSettings { capture, endpoint });
    if let (Some(origin), Some(root)) = (forked_from, spans.first_mut()) {
        root.links.push(SpanLink {
            trace_id: ids::trace_id(&origin),
            span_id: ids::span_id(&origin, SpanKey::Root, &origin),
            kind: "forked_from".into(),
        });
        root.attrs.push(KeyValue::new(semconv::FORKED_FROM, origin));
        root.attrs.push(KeyValue::new(semconv::SESSION_SOURCE, "fork"));
    }
    Ok(ImportedSession { session_id: sid.into(), spans, usage, refused, skipped_lines: skipped + too_long })
}

/// What a session's spans carry besides what its transcripts say: the content the capture level lets
/// out, and where its model calls went.
struct SpanSettings<'a> {
    capture: Capture,
    endpoint: &'a ModelEndpoint,
}

/// Largest subagent meta file read: Claude Code's are a few hundred bytes.
const MAX_META_BYTES: u64 = 64 * 1024;

/// Where a transcript's own lines start, counted in JSON-object lines: after a fork's copied history
/// (up to the last response of another session, then to the next prompt), else at the first.
#[derive(Default)]
struct ForkStart {
    seen: usize,
    /// The last copied response, and the first prompt after it.
    last_copied: Option<usize>,
    own_prompt: Option<usize>,
}

impl ForkStart {
    fn see(&mut self, line: &Value) {
        let copied = str_of(line, "type") == Some("assistant")
            && str_of(line, "requestSessionId").is_some_and(|r| Some(r) != str_of(line, "sessionId"));
        if copied {
            (self.last_copied, self.own_prompt) = (Some(self.seen), None);
        } else if self.last_copied.is_some()
            && self.own_prompt.is_none()
            && str_of(line, "type") == Some("user")
            && str_of(line, "promptId").is_some()
        {
            self.own_prompt = Some(self.seen);
        }
        self.seen += 1;
    }

    fn own_start(&self) -> usize {
        match self.last_copied {
            None => 0,
            Some(_) => self.own_prompt.unwrap_or(self.seen),
        }
    }
}

/// One model call, summed over the deltas of its response.
struct Chat {
    model: String,
    prompt_id: Option<String>,
    agent_id: Option<String>,
    response: Response,
    usage: SpanUsage,
}

/// The model calls among `deltas`, in the order they were made; the live path makes the same spans
/// from the same deltas.
fn chats(deltas: &[Delta]) -> Vec<Chat> {
    let mut out: Vec<Chat> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for d in deltas {
        let Some(r) = &d.response else { continue };
        let i = *index.entry(r.key()).or_insert_with(|| {
            out.push(Chat {
                model: d.model.clone(),
                prompt_id: d.prompt_id.clone(),
                agent_id: d.agent_id.clone(),
                response: r.clone(),
                usage: SpanUsage::default(),
            });
            out.len() - 1
        });
        let chat = &mut out[i];
        chat.response.start = chat.response.start.min(r.start);
        chat.response.end = chat.response.end.max(r.end);
        if r.stop_reason.is_some() {
            chat.response.stop_reason = r.stop_reason.clone();
        }
        chat.usage.add(&d.model, d.usage, d.cost);
    }
    out
}

/// `(agent id, path)` of every `<session>/subagents/agent-<id>.jsonl`, sorted.
fn agent_files(main: &Path) -> Vec<(String, PathBuf)> {
    let dir = main.with_extension("").join("subagents");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let aid = name.strip_prefix("agent-")?.strip_suffix(".jsonl")?;
            (!aid.is_empty()).then(|| (aid.to_owned(), e.path()))
        })
        .collect();
    out.sort();
    out
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn time_of(line: &Value) -> Option<u64> {
    str_of(line, "timestamp").and_then(rfc3339_ns)
}

/// A conversation line (user, assistant, system, attachment) rather than bookkeeping.
fn is_conversation(line: &Value) -> bool {
    line.get("uuid").is_some()
}

/// The content blocks of a line's message.
fn blocks(line: &Value) -> &[Value] {
    line.get("message").and_then(|m| m.get("content")).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The text of a prompt or a tool result: a string, or the text of its blocks.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| str_of(p, "text")).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

impl Reader {
    /// Lines common to both kinds of file: timestamps, cwd, tool calls and their results.
    fn common(&mut self, line: &Value, t: Option<u64>, prompt_id: Option<&String>, agent_id: Option<&String>) {
        if self.session_id.is_none() {
            self.session_id = str_of(line, "sessionId").map(str::to_owned);
        }
        if self.cwd.is_none() {
            self.cwd = str_of(line, "cwd").filter(|c| !c.is_empty()).map(str::to_owned);
        }
        let Some(t) = t else { return };
        widen(&mut self.extent, t);
        match str_of(line, "type") {
            Some("assistant") => {
                for b in blocks(line).iter().filter(|b| str_of(b, "type") == Some("tool_use")) {
                    let Some(id) = str_of(b, "id").filter(|s| !s.is_empty()) else { continue };
                    if !self.call_ids.insert(id.to_owned()) {
                        continue;
                    }
                    self.calls.push(Call {
                        id: id.to_owned(),
                        name: str_of(b, "name").unwrap_or("unknown").to_owned(),
                        input: capture::tool_input(b.get("input").unwrap_or(&Value::Null), self.capture),
                        start: t,
                        prompt_id: prompt_id.cloned(),
                        agent_id: agent_id.cloned(),
                    });
                }
            }
            Some("user") => {
                let result = line.get("toolUseResult");
                let interrupted = result.and_then(|r| r.get("interrupted")).and_then(Value::as_bool) == Some(true);
                for b in blocks(line).iter().filter(|b| str_of(b, "type") == Some("tool_result")) {
                    let Some(id) = str_of(b, "tool_use_id").filter(|s| !s.is_empty()) else { continue };
                    // what a span can carry of it, whatever the file holds (a tool's output can be megabytes)
                    let text = capture::clip(&text_of(b.get("content")), capture::FULL_MAX);
                    let is_error = b.get("is_error").and_then(Value::as_bool) == Some(true);
                    let interrupted = interrupted || (is_error && text.starts_with("[Request interrupted by user"));
                    self.results.entry(id.to_owned()).or_insert(Outcome { at: t, is_error, interrupted, text });
                    if let Some(aid) = result.and_then(|r| str_of(r, "agentId")) {
                        self.spawned.entry(aid.to_owned()).or_insert_with(|| id.to_owned());
                    }
                }
            }
            _ => {}
        }
    }

    /// One line of the main transcript, in order, from where the session's own history starts.
    fn main_line(&mut self, line: &Value, current: &mut Option<String>) {
        let t = time_of(line);
        let kind = str_of(line, "type");
        if kind == Some("user") {
            if let Some(pid) = str_of(line, "promptId") {
                *current = Some(pid.to_owned());
                if let Some(t) = t {
                    self.prompt_line(pid, t, line);
                }
            }
        }
        if kind == Some("system") && str_of(line, "subtype") == Some("compact_boundary") {
            *current = None; // what follows belongs to the next prompt
        }
        self.common(line, t, current.as_ref(), None);
        let Some(i) = current.as_ref().and_then(|p| self.turn_index.get(p)).copied() else { return };
        let turn = &mut self.turns[i];
        if let Some(t) = t.filter(|_| is_conversation(line)) {
            turn.end = turn.end.max(t);
        }
        if kind == Some("assistant") {
            let failed = line.get("isApiErrorMessage").and_then(Value::as_bool) == Some(true);
            turn.failure = failed.then(|| str_of(line, "error").unwrap_or("api_error").to_owned());
            // the API error's text, as Claude Code showed it (`API Error: 400 ...`)
            turn.failure_message =
                failed.then(|| text_of(line.get("message").and_then(|m| m.get("content")))).filter(|m| !m.is_empty());
        }
    }

    /// A user line carrying a `promptId`: opens its turn, or moves its start earlier.
    fn prompt_line(&mut self, pid: &str, t: u64, line: &Value) {
        let prompt = line.get("message").and_then(|m| m.get("content")).filter(|c| c.is_string());
        match self.turn_index.get(pid) {
            Some(&i) => {
                let turn = &mut self.turns[i];
                turn.start = turn.start.min(t);
                turn.end = turn.end.max(t);
                if turn.prompt.is_none() {
                    turn.prompt = prompt.map(|p| capture::clip(&text_of(Some(p)), capture::FULL_MAX));
                }
            }
            None => {
                self.turn_index.insert(pid.to_owned(), self.turns.len());
                self.turns.push(Turn {
                    prompt_id: pid.to_owned(),
                    start: t,
                    end: t,
                    prompt: prompt.map(|p| capture::clip(&text_of(Some(p)), capture::FULL_MAX)),
                    failure: None,
                    failure_message: None,
                    usage: None,
                });
            }
        }
    }

    /// One line of a subagent's transcript, in order.
    fn agent_line(&mut self, line: &Value, agent: &mut Agent) {
        let t = time_of(line);
        if agent.prompt_id.is_none() {
            agent.prompt_id = str_of(line, "promptId").map(str::to_owned);
        }
        if let Some(t) = t {
            widen(&mut agent.extent, t);
        }
        let pid = agent.prompt_id.clone();
        self.common(line, t, pid.as_ref(), Some(&agent.id));
    }

    /// Turn what was read into span records.
    fn spans(
        self,
        sid: &str,
        main: &Path,
        extent: Extent,
        agents: Vec<Agent>,
        deltas: &[Delta],
        settings: SpanSettings,
    ) -> Vec<SpanRecord> {
        let capture = settings.capture;
        let project = self.cwd.as_deref().map(project_of).unwrap_or_default();
        let root_id = ids::span_id(sid, SpanKey::Root, sid);
        let turn_id = |pid: &Option<String>| match pid {
            Some(p) if self.turn_index.contains_key(p) => ids::span_id(sid, SpanKey::Turn, p),
            _ => root_id,
        };
        let session_id = SessionId::from(sid);
        let record = |id: SpanId, key: SpanKey, name: String, parent: Option<SpanId>, e: Extent| SpanRecord {
            parent,
            project: project.clone(),
            ..SpanRecord::new(ids::trace_id(sid), id, key, name, (e.start, e.end), session_id.clone())
        };
        let finish = |mut span: SpanRecord, attrs: Vec<KeyValue>, usage: Option<&SpanUsage>| {
            span.attrs.extend(attrs);
            span.attrs.push(KeyValue::new(semconv::IMPORTED, true));
            span.usage = usage.cloned();
            span
        };
        let mut out = Vec::new();
        let mut root_usage: Option<SpanUsage> = None;
        for d in deltas {
            root_usage.get_or_insert_with(SpanUsage::default).add(&d.model, d.usage, d.cost);
        }

        let attrs = semconv::root(CLAUDE_CODE, self.cwd.as_deref(), Some(&main.to_string_lossy()), capture);
        let root = record(root_id, SpanKey::Root, "claude-code session".into(), None, extent);
        out.push(finish(root, attrs, root_usage.as_ref()));

        for turn in &self.turns {
            let id = ids::span_id(sid, SpanKey::Turn, &turn.prompt_id);
            let e = Extent { start: turn.start, end: turn.end };
            let mut span = record(id, SpanKey::Turn, "invoke_agent claude-code".into(), Some(root_id), e);
            let attrs =
                semconv::turn(CLAUDE_CODE, &turn.prompt_id, turn.prompt.as_deref().filter(|_| capture.prompts()));
            span.turn = Some(match &turn.failure {
                None => TurnOutcome::Stop,
                Some(err) => {
                    let message = turn.failure_message.as_deref().map(|m| capture.error_text(m));
                    span.status = Status::Error(message.unwrap_or_else(|| err.clone()));
                    TurnOutcome::Failure(err.clone())
                }
            });
            out.push(finish(span, attrs, turn.usage.as_ref()));
        }

        for agent in &agents {
            let id = ids::span_id(sid, SpanKey::Subagent, &agent.id);
            let spawner = agent.spawner.as_ref().or_else(|| self.spawned.get(&agent.id));
            let parent = match spawner {
                Some(call) if self.results.contains_key(call) && self.call_ids.contains(call) => {
                    ids::span_id(sid, SpanKey::Tool, call)
                }
                _ => turn_id(&agent.prompt_id),
            };
            let e = agent.extent.unwrap_or(extent);
            let mut span = record(id, SpanKey::Subagent, format!("invoke_agent {}", agent.agent_type), Some(parent), e);
            span.subject = Some(Subject::Subagent(agent.agent_type.clone()));
            let attrs = semconv::subagent(&agent.id);
            out.push(finish(span, attrs, agent.usage.as_ref()));
        }

        for chat in chats(deltas) {
            let id = ids::span_id(sid, SpanKey::Chat, &chat.response.key());
            let parent = match &chat.agent_id {
                Some(aid) if agents.iter().any(|a| a.id == *aid) => ids::span_id(sid, SpanKey::Subagent, aid),
                _ => turn_id(&chat.prompt_id),
            };
            let e = Extent { start: chat.response.start, end: chat.response.end };
            let mut span = record(id, SpanKey::Chat, semconv::chat_name(&chat.model), Some(parent), e);
            let r = chat.response;
            span.chat = Some(ChatCall { response_id: r.id, request_id: r.request_id, finish_reason: r.stop_reason });
            out.push(finish(span, semconv::chat(CLAUDE_CODE, &chat.model, settings.endpoint), Some(&chat.usage)));
        }

        for call in &self.calls {
            let Some(result) = self.results.get(&call.id) else { continue };
            let id = ids::span_id(sid, SpanKey::Tool, &call.id);
            let parent = match &call.agent_id {
                Some(aid) => ids::span_id(sid, SpanKey::Subagent, aid),
                None => turn_id(&call.prompt_id),
            };
            let e = Extent { start: call.start, end: result.at };
            let mut span = record(id, SpanKey::Tool, format!("execute_tool {}", call.name), Some(parent), e);
            span.subject = Some(Subject::Tool(call.name.clone()));
            let mut attrs = semconv::tool(&call.id, &call.name);
            attrs.extend(call.input.iter().cloned());
            if let Some(aid) = &call.agent_id {
                attrs.push(KeyValue::new(semconv::AGENT_ID, aid.clone()));
            }
            if capture.outputs() {
                attrs.push(KeyValue::new(semconv::TOOL_OUTPUT, capture::clip(&result.text, capture::FULL_MAX)));
            }
            let (run, status) = match (result.interrupted, result.is_error) {
                (true, _) => (ToolStatus::Interrupted, Status::Error("interrupted".into())),
                (false, true) => (ToolStatus::Error, Status::Error(capture.error_text(&result.text))),
                (false, false) => (ToolStatus::Ok, Status::Unset),
            };
            span.tool = Some(ToolRun { status: run, duration_ms: None, pull_request: None });
            span.status = status;
            out.push(finish(span, attrs, None));
        }
        out
    }
}

/// Transcripts under `paths`: a file is taken as it is; a directory (e.g. `~/.claude/projects`) is
/// walked for every `*.jsonl` not under a `subagents/` directory. Symlinked directories are not
/// followed. Sorted within each directory; each path once.
pub fn find_transcripts(paths: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && e.file_name() != "subagents" {
                walk(&path, out);
            } else if !ft.is_dir() && path.extension().is_some_and(|x| x == "jsonl") && path.is_file() {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out);
        } else if p.is_file() {
            out.push(p.clone());
        }
    }
    let mut seen = HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_result_text_from_string_or_blocks() {
        assert_eq!(text_of(Some(&Value::from("a\nb"))), "a\nb");
        let blocks =
            serde_json::json!([{"type": "text", "text": "x"}, {"type": "image"}, {"type": "text", "text": "y"}]);
        assert_eq!(text_of(Some(&blocks)), "x\ny");
        assert_eq!(text_of(None), "");
    }
}
