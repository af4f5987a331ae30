//! The spans of one imported session as the live path makes them, whichever agent's log they were
//! read from (Codex's rollouts, Gemini's chat logs): a root, its turns, its model calls, its tool
//! calls, each marked `hooktel.imported`, with the live path's names, attributes and span ids.

use opentelemetry::trace::SpanId;
use opentelemetry::KeyValue;

use crate::model::agent::Agent;
use crate::model::ids::{self, SessionId, SpanKey};
use crate::model::semconv::{self, int, ModelEndpoint};
use crate::model::span::{ChatCall, SpanRecord, SpanUsage, Status, Subject, ToolRun, ToolStatus, TurnOutcome};
use crate::usage::logs::Delta;

/// The span tree of one session of `agent`, as it is built.
pub(super) struct Tree<'a> {
    sid: &'a str,
    agent: Agent,
    project: String,
    pub(super) spans: Vec<SpanRecord>,
}

/// A turn as a log tells it.
pub(super) struct Turn {
    /// Its key: the live path's where the log has it.
    pub(super) id: String,
    pub(super) start: u64,
    pub(super) end: u64,
    /// Its prompt, as the capture level lets it out.
    pub(super) prompt: Option<String>,
    /// Its end was read (without it: marked incomplete).
    pub(super) complete: bool,
    pub(super) usage: Option<SpanUsage>,
}

impl Turn {
    /// A turn keyed `id`, seen first at `at`.
    pub(super) fn new(id: &str, at: u64, prompt: Option<String>, complete: bool) -> Turn {
        Turn { id: id.to_owned(), start: at, end: at, prompt, complete, usage: None }
    }
}

/// A tool call as a log tells it.
pub(super) struct ToolCall<'a> {
    pub(super) id: &'a str,
    pub(super) name: &'a str,
    /// What the capture level lets out of its input, and (at `full`) its output.
    pub(super) input: &'a [KeyValue],
    pub(super) output: Option<&'a str>,
    /// Why it failed, as the capture level lets it out.
    pub(super) failure: Option<String>,
    pub(super) times: (u64, u64),
}

impl<'a> Tree<'a> {
    pub(super) fn new(sid: &'a str, agent: Agent, project: String) -> Tree<'a> {
        Tree { sid, agent, project, spans: Vec::new() }
    }

    pub(super) fn root_id(&self) -> SpanId {
        ids::span_id(self.sid, SpanKey::Root, self.sid)
    }

    /// The span id of the turn keyed `key`, as live.
    pub(super) fn turn_id(&self, key: &str) -> SpanId {
        ids::span_id(self.sid, SpanKey::Turn, key)
    }

    fn push(
        &mut self,
        id: SpanId,
        key: SpanKey,
        name: String,
        parent: Option<SpanId>,
        times: (u64, u64),
    ) -> &mut SpanRecord {
        let span = SpanRecord {
            parent,
            project: self.project.clone(),
            agent: self.agent,
            ..SpanRecord::new(ids::trace_id(self.sid), id, key, name, times, SessionId::from(self.sid))
        };
        self.spans.push(span);
        self.spans.last_mut().expect("pushed")
    }

    /// The root, from the log's first to last time, with `attrs` and the whole session's usage.
    pub(super) fn root(&mut self, times: (u64, u64), attrs: Vec<KeyValue>, usage: &[Delta]) {
        let mut total: Option<SpanUsage> = None;
        for d in usage {
            total.get_or_insert_with(SpanUsage::default).add(&d.model, d.usage, d.cost);
        }
        let (id, name) = (self.root_id(), format!("{} session", self.agent.name()));
        let span = self.push(id, SpanKey::Root, name, None, times);
        span.attrs.extend(attrs);
        span.attrs.push(imported());
        span.usage = total;
    }

    /// A turn, under the root.
    pub(super) fn turn(&mut self, turn: &Turn) {
        let (id, parent, name) =
            (self.turn_id(&turn.id), self.root_id(), format!("invoke_agent {}", self.agent.name()));
        let attrs = semconv::turn(self.agent, &turn.id, turn.prompt.as_deref());
        let span = self.push(id, SpanKey::Turn, name, Some(parent), (turn.start, turn.end));
        span.turn = Some(TurnOutcome::Stop);
        span.incomplete = !turn.complete;
        span.attrs.extend(attrs);
        span.attrs.push(imported());
        span.usage = turn.usage.clone();
    }

    /// The model call of a response the live path's reader counted, under `parent`.
    pub(super) fn chat(&mut self, d: &Delta, parent: SpanId, endpoint: &ModelEndpoint) {
        let Some(r) = d.response.as_ref() else { return };
        let id = ids::span_id(self.sid, SpanKey::Chat, &r.key());
        let mut attrs = semconv::chat(self.agent, &d.model, endpoint);
        attrs.push(KeyValue::new(semconv::API_ATTEMPT, int(r.attempt())));
        let span = self.push(id, SpanKey::Chat, semconv::chat_name(&d.model), Some(parent), (r.start, r.end));
        span.chat = Some(ChatCall { response_id: r.id.clone(), request_id: r.request_id.clone(), finish_reason: None });
        span.attrs.extend(attrs);
        span.attrs.push(imported());
        span.usage.get_or_insert_with(SpanUsage::default).add(&d.model, d.usage, d.cost);
    }

    /// A tool call, under `parent`: ERROR when it failed.
    pub(super) fn tool(&mut self, call: ToolCall, parent: SpanId) {
        let id = ids::span_id(self.sid, SpanKey::Tool, call.id);
        let mut attrs = semconv::tool(call.id, call.name);
        attrs.extend(call.input.iter().cloned());
        if let Some(output) = call.output {
            attrs.push(KeyValue::new(semconv::TOOL_OUTPUT, output.to_owned()));
        }
        let span = self.push(id, SpanKey::Tool, format!("execute_tool {}", call.name), Some(parent), call.times);
        span.subject = Some(Subject::Tool(call.name.to_owned()));
        span.attrs.extend(attrs);
        span.attrs.push(imported());
        let (status, run) = match call.failure {
            Some(why) => (Status::Error(why), ToolStatus::Error),
            None => (Status::Unset, ToolStatus::Ok),
        };
        span.status = status;
        span.tool = Some(ToolRun { status: run, duration_ms: None, pull_request: None });
    }
}

/// What marks a span as imported rather than captured live.
fn imported() -> KeyValue {
    KeyValue::new(semconv::IMPORTED, true)
}
