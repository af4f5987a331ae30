//! A finished span as hooktel holds it: ids, times, parent, status, and typed facts the pipeline
//! reads back itself (session, usage, a tool call's outcome and timing, a turn's outcome,
//! incompleteness). Attributes hold only what merely leaves the process; [`SpanRecord::attributes`]
//! derives the rest at the edge (OTLP, the views), so nothing is written as text and parsed again.
//!
//! Plain data shared by every stage. Nothing here does I/O or reads a clock.

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::KeyValue;

use crate::model::agent::Agent;
use crate::model::ids::{SessionId, SpanKey};
use crate::model::semconv::{self, int};
use crate::model::tokens::TokenUsage;

/// Finished spans on their way to the exporter, with the bytes of the memory budget they hold until
/// they are exported, spooled or stored.
pub type Handed = (Vec<SpanRecord>, crate::model::budget::Held);

/// A finished span, ready for export.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub name: String,
    pub key: SpanKey,
    pub start: u64,
    pub end: u64,
    /// The session it belongs to (`session.id`, `gen_ai.conversation.id`); shared by its spans.
    pub session_id: SessionId,
    /// The agent whose session it is: its `agent` label, and `gen_ai.agent.name` on the resource
    /// it is exported with.
    pub agent: Agent,
    /// Attributes that only leave the process; the typed fields below add theirs at the edge.
    pub attrs: Vec<KeyValue>,
    pub events: Vec<SpanEvent>,
    pub dropped_events: u32,
    pub status: Status,
    /// The session's project (basename of its first `cwd`), for metric labels.
    pub project: String,
    /// The session's repository (`host/owner/repo`, empty outside one), for metric labels.
    pub repo: String,
    /// Closed by a timeout or the end of its session rather than by its own end event.
    pub incomplete: bool,
    /// Tokens and cost of the model calls made within it, from the transcripts.
    pub usage: Option<SpanUsage>,
    /// A tool call: how it ended and how long Claude Code timed it.
    pub tool: Option<ToolRun>,
    /// A turn: how it ended.
    pub turn: Option<TurnOutcome>,
    /// A model call: which response it was and why it stopped.
    pub chat: Option<ChatCall>,
    /// Spans of other traces it relates to (a fork's origin, a teammate's lead).
    pub links: Vec<SpanLink>,
    /// The agent team it belongs to and the agent of it that made it.
    pub team: Option<TeamMember>,
    /// What a tool call or an agent's span is of: the tool, the subagent's type, the teammate.
    pub subject: Option<Subject>,
}

/// What a tool call or an agent's span is of, by name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Subject {
    /// A tool call's tool (`gen_ai.tool.name`).
    Tool(String),
    /// A subagent's type (`gen_ai.agent.name`).
    Subagent(String),
    /// An in-process teammate's name (`gen_ai.agent.name`, and `hooktel.agent.kind=teammate`).
    Teammate(String),
}

impl Subject {
    /// The name: the tool's, the subagent type's, the teammate's.
    pub fn name(&self) -> &str {
        match self {
            Subject::Tool(n) | Subject::Subagent(n) | Subject::Teammate(n) => n,
        }
    }

    pub(crate) fn attributes(&self) -> Vec<KeyValue> {
        match self {
            Subject::Tool(n) => vec![KeyValue::new(semconv::TOOL_NAME, n.clone())],
            Subject::Subagent(n) => vec![KeyValue::new(semconv::AGENT_NAME, n.clone())],
            Subject::Teammate(n) => {
                vec![KeyValue::new(semconv::AGENT_NAME, n.clone()), KeyValue::new(semconv::AGENT_KIND, "teammate")]
            }
        }
    }
}

/// The agent a lead's spans name as theirs in their team (Claude Code's own name for it).
pub const LEAD_AGENT: &str = "team-lead";

/// Which side of an agent team a span is on: the lead's, or a teammate's (in-process or pane).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TeamRole {
    Lead,
    Teammate,
}

impl TeamRole {
    /// The bounded `role` label of the team metrics.
    pub fn label(self) -> &'static str {
        match self {
            TeamRole::Lead => "lead",
            TeamRole::Teammate => "teammate",
        }
    }
}

/// A span's agent team (`hooktel.team.name`) and the agent of it that made the span
/// (`hooktel.team.agent`: a teammate's name, or [`LEAD_AGENT`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TeamMember {
    pub team: String,
    pub agent: String,
}

impl TeamMember {
    pub fn role(&self) -> TeamRole {
        if self.agent == LEAD_AGENT {
            TeamRole::Lead
        } else {
            TeamRole::Teammate
        }
    }
}

/// A link to a span of another trace, and what the relation is (`hooktel.link.kind`).
#[derive(Clone, Debug, PartialEq)]
pub struct SpanLink {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub kind: String,
}

impl SpanRecord {
    /// About the bytes it holds: its name, attributes, events and links, and what it is of.
    pub fn bytes(&self) -> usize {
        let attrs =
            |a: &[KeyValue]| a.iter().map(|kv| kv.key.as_str().len() + kv.value.as_str().len() + 64).sum::<usize>();
        let events: usize = self.events.iter().map(|e| 64 + e.name.len() + attrs(&e.attrs)).sum();
        512 + self.name.len()
            + self.project.len()
            + self.repo.len()
            + attrs(&self.attrs)
            + events
            + self.links.len() * 64
    }

    /// A span of `key` named `name` in the trace of `session_id`, from `start` to `end` (never
    /// before `start`): no parent, attribute, event or fact yet (and Claude Code's until its `agent` is
    /// set). Callers set what they know, e.g.
    /// `SpanRecord { parent, attrs, ..SpanRecord::new(...) }`.
    pub fn new(
        trace_id: TraceId,
        span_id: SpanId,
        key: SpanKey,
        name: String,
        (start, end): (u64, u64),
        session_id: SessionId,
    ) -> SpanRecord {
        SpanRecord {
            trace_id,
            span_id,
            parent: None,
            name,
            key,
            start,
            end: end.max(start),
            session_id,
            agent: Agent::ClaudeCode,
            attrs: Vec::new(),
            events: Vec::new(),
            dropped_events: 0,
            status: Status::Unset,
            project: String::new(),
            repo: String::new(),
            incomplete: false,
            usage: None,
            tool: None,
            turn: None,
            chat: None,
            links: Vec::new(),
            team: None,
            subject: None,
        }
    }

    /// Every attribute the span carries out of the process: the session's ids, its own attributes,
    /// then those of its typed facts.
    pub fn attributes(&self) -> Vec<KeyValue> {
        let mut out = Vec::with_capacity(self.attrs.len() + 12);
        if !self.session_id.is_empty() {
            out.push(KeyValue::new(semconv::SESSION_ID, self.session_id.clone()));
            out.push(KeyValue::new(semconv::CONVERSATION_ID, self.session_id.clone()));
        }
        if let Some(s) = &self.subject {
            out.extend(s.attributes());
        }
        out.extend(self.attrs.iter().cloned());
        if let Some(t) = &self.turn {
            out.push(KeyValue::new(semconv::TURN_OUTCOME, t.label()));
            if let TurnOutcome::Failure(err) = t {
                out.push(KeyValue::new(semconv::ERROR_TYPE, err.clone()));
            }
        }
        if let Some(t) = &self.tool {
            if let Some(ms) = t.duration_ms {
                out.push(KeyValue::new(semconv::TOOL_DURATION_MS, int(ms)));
            }
            out.push(KeyValue::new(semconv::TOOL_STATUS, t.status.label()));
            if let Some(class) = t.status.error_type() {
                out.push(KeyValue::new(semconv::ERROR_TYPE, class));
            }
        }
        if let Some(u) = &self.usage {
            out.extend(u.attributes());
            // a model call's own cost where backends read it (on sums it would count twice)
            if self.key == SpanKey::Chat {
                out.push(KeyValue::new(semconv::USAGE_COST, u.cost));
            }
        }
        if let Some(c) = &self.chat {
            out.extend(c.attributes());
        }
        if self.incomplete {
            out.push(KeyValue::new(semconv::INCOMPLETE, true));
        }
        if let Some(m) = &self.team {
            out.push(KeyValue::new(semconv::TEAM_NAME, m.team.clone()));
            out.push(KeyValue::new(semconv::TEAM_AGENT, m.agent.clone()));
        }
        out
    }

    /// Remove the numbers that are not finite (an attribute, an event's attribute; a cost becomes 0):
    /// no backend, store or view can take them. Returns how many there were.
    pub(crate) fn drop_non_finite(&mut self) -> usize {
        fn finite(attrs: &mut Vec<KeyValue>) -> usize {
            let before = attrs.len();
            attrs.retain(|kv| !matches!(kv.value, opentelemetry::Value::F64(f) if !f.is_finite()));
            before - attrs.len()
        }
        let mut dropped = finite(&mut self.attrs);
        for e in &mut self.events {
            dropped += finite(&mut e.attrs);
        }
        if let Some(u) = self.usage.as_mut().filter(|u| !u.cost.is_finite()) {
            u.cost = 0.0;
            dropped += 1;
        }
        dropped
    }

    /// The value of an attribute as it leaves the process (typed facts included), as text.
    pub fn attr(&self, key: &str) -> Option<String> {
        self.attributes().into_iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SpanEvent {
    pub name: String,
    pub at: u64,
    pub attrs: Vec<KeyValue>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Unset,
    Ok,
    Error(String),
}

/// How a tool call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ToolStatus {
    Ok,
    Error,
    Interrupted,
    Denied,
    /// Its end never came (the session ended, or went idle, first).
    Incomplete,
}

impl ToolStatus {
    /// The `status` label of `hooktel_tool_calls_total` and the `hooktel.tool.status` attribute.
    pub(crate) fn label(self) -> &'static str {
        match self {
            ToolStatus::Ok => "ok",
            ToolStatus::Error => "error",
            ToolStatus::Interrupted => "interrupted",
            ToolStatus::Denied => "denied",
            ToolStatus::Incomplete => "incomplete",
        }
    }

    /// The error's class (`error.type`) of a failed call: `interrupted` (the user stopped it),
    /// `denied` (permission refused), else `_OTHER` (the tool failed; its text names no class).
    pub(crate) fn error_type(self) -> Option<&'static str> {
        match self {
            ToolStatus::Error => Some(semconv::ERROR_OTHER),
            ToolStatus::Interrupted => Some("interrupted"),
            ToolStatus::Denied => Some("denied"),
            ToolStatus::Ok | ToolStatus::Incomplete => None,
        }
    }
}

/// A tool call's outcome and Claude Code's own timing of it (`duration_ms` of PostToolUse).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ToolRun {
    pub status: ToolStatus,
    pub duration_ms: Option<u64>,
    /// The forge of the pull request it opened (a Bash call's `gh pr create`...), counted in
    /// `hooktel_pull_requests_total`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<crate::model::pull_request::Forge>,
}

/// How a turn ended: Stop, or StopFailure with its error.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TurnOutcome {
    Stop,
    Failure(String),
}

impl TurnOutcome {
    /// The `outcome` label of `hooktel_turns_total`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            TurnOutcome::Stop => "stop",
            TurnOutcome::Failure(_) => "failure",
        }
    }
}

/// A model call: the response's id, the API request's id, and why the model stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatCall {
    /// `message.id`
    pub response_id: String,
    /// `requestId`, the id Anthropic's API gave the request (`request_id` in Claude Code's telemetry).
    pub request_id: String,
    /// `stop_reason`: `end_turn`, `tool_use`, `max_tokens`, ...
    pub finish_reason: Option<String>,
}

impl ChatCall {
    pub(crate) fn attributes(&self) -> Vec<KeyValue> {
        let mut out = Vec::with_capacity(3);
        // a request that failed has no response
        if !self.response_id.is_empty() {
            out.push(KeyValue::new(semconv::RESPONSE_ID, self.response_id.clone()));
        }
        if !self.request_id.is_empty() {
            out.push(KeyValue::new(semconv::API_REQUEST_ID, self.request_id.clone()));
        }
        if let Some(r) = &self.finish_reason {
            let reasons = opentelemetry::Array::String(vec![r.clone().into()]);
            out.push(KeyValue::new(semconv::RESPONSE_FINISH_REASONS, opentelemetry::Value::Array(reasons)));
        }
        out
    }
}

/// Usage summed on a span (live, and by the importer).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpanUsage {
    pub tokens: TokenUsage,
    pub cost: f64,
    pub models: Vec<String>,
}

impl SpanUsage {
    pub(crate) fn add(&mut self, model: &str, tokens: TokenUsage, cost: f64) {
        self.tokens.add(tokens);
        self.cost += cost;
        if !self.models.iter().any(|m| m == model) {
            self.models.push(model.to_owned());
        }
    }

    /// GenAI attributes: `input_tokens` counts every input token, cache reads and writes included;
    /// the cache parts are also given on their own.
    pub(crate) fn attributes(&self) -> Vec<KeyValue> {
        let t = &self.tokens;
        vec![
            KeyValue::new(semconv::USAGE_INPUT_TOKENS, int(t.all_input())),
            KeyValue::new(semconv::USAGE_OUTPUT_TOKENS, int(t.output)),
            KeyValue::new(semconv::USAGE_CACHE_READ_INPUT_TOKENS, int(t.cache_read)),
            KeyValue::new(semconv::USAGE_CACHE_CREATION_INPUT_TOKENS, int(t.cache_write())),
            KeyValue::new(semconv::UNCACHED_INPUT_TOKENS, int(t.input)),
            KeyValue::new(semconv::COST_USD, self.cost),
            KeyValue::new(semconv::RESPONSE_MODEL, self.models.join(",")),
        ]
    }
}
