//! The open span: a span of a session while it is open or settling, with where it hangs
//! ([`Parent`], resolved when it is handed out) and what makes and amends it (open, touch, start,
//! close, close as incomplete, set an attribute, add a span event). It becomes a `SpanRecord` when
//! its session hands it out.

use opentelemetry::trace::SpanId;
use opentelemetry::KeyValue;

use crate::model::ids::SpanKey;
use crate::model::span::{ChatCall, SpanEvent, SpanLink, SpanUsage, Status, Subject, ToolRun, TurnOutcome};

/// Where a span hangs, resolved when it is handed out (its parent may arrive after it).
#[derive(Clone, Debug)]
pub(super) enum Parent {
    /// The session root (or the resumed segment).
    Root,
    /// A turn if that turn was seen, else the root.
    Turn(Option<String>),
    /// The turn started latest by this time (for an agent that names no turns: a model response
    /// read before its turn's start arrived still finds it), else the root.
    TurnAt(u64),
    /// A tool call inside a subagent: the subagent if seen, else the turn, else the root.
    Agent(String, Option<String>),
    /// A subagent: the `Agent` call that spawned it, else its turn, else the root.
    Spawner(String, Option<String>),
}

/// A span of a session while it is open or settling (closed, waiting for late events).
#[derive(Debug)]
pub(super) struct OpenSpan {
    pub(super) id: SpanId,
    pub(super) key: SpanKey,
    pub(super) name: String,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) parent: Parent,
    pub(super) attrs: Vec<KeyValue>,
    pub(super) events: Vec<SpanEvent>,
    pub(super) dropped_events: u32,
    pub(super) status: Status,
    /// Closed by a timeout or by the end of its session rather than by its own end event.
    pub(super) incomplete: bool,
    /// The start was inferred from an end event (`at - duration_ms`); a start event replaces it.
    pub(super) start_estimated: bool,
    /// Wall time it was closed; `None` while open.
    pub(super) closed_at: Option<u64>,
    /// Tokens and cost of the model calls made within it, from the transcripts.
    pub(super) usage: Option<Box<SpanUsage>>,
    /// A tool call's outcome, once known.
    pub(super) tool: Option<ToolRun>,
    /// A turn's outcome, once known.
    pub(super) turn: Option<TurnOutcome>,
    /// A model call's response.
    pub(super) chat: Option<ChatCall>,
    /// Spans of other traces it relates to.
    pub(super) links: Vec<SpanLink>,
    /// What a tool call or an agent's span is of.
    pub(super) subject: Option<Subject>,
    /// Handed out only when its session ends (an in-process teammate, which wakes up again; an
    /// `Agent` call whose pane teammate may name its team later).
    pub(super) held: bool,
    /// Timed by Claude Code's own telemetry: a model call's times (the transcript's no longer
    /// apply), a tool call's permission wait (a decision's time no longer gives it).
    pub(super) exact: bool,
    /// About what it held when it was made (name, attributes), in bytes: what `MAX_SPAN_BYTES` counts.
    pub(super) weight: usize,
}

impl OpenSpan {
    pub(super) fn new(
        id: SpanId,
        key: SpanKey,
        name: String,
        at: u64,
        parent: Parent,
        attrs: Vec<KeyValue>,
    ) -> OpenSpan {
        OpenSpan {
            id,
            key,
            name,
            start: at,
            end: at,
            parent,
            attrs,
            events: Vec::new(),
            dropped_events: 0,
            status: Status::Unset,
            incomplete: false,
            start_estimated: false,
            closed_at: None,
            usage: None,
            tool: None,
            turn: None,
            chat: None,
            subject: None,
            links: Vec::new(),
            held: false,
            exact: false,
            weight: 0,
        }
    }

    /// About the bytes it holds now: its name and attributes (keys, values) and a fixed overhead.
    pub(super) fn size(&self) -> usize {
        256 + self.name.len() + attrs_bytes(&self.attrs)
    }

    /// About the bytes it holds now, its span events, links and outcomes included: what the
    /// sessions' share of the memory budget counts.
    pub(super) fn held(&self) -> usize {
        let outcomes = if self.usage.is_some() || self.chat.is_some() { 512 } else { 0 };
        self.size() + self.events.iter().map(event_bytes).sum::<usize>() + self.links.len() * 64 + outcomes
    }

    pub(super) fn touch(&mut self, at: u64) {
        self.start = self.start.min(at);
        self.end = self.end.max(at);
    }

    /// A start event for a span that already exists: its time is the real start.
    pub(super) fn started(&mut self, at: u64) {
        if self.start_estimated {
            self.start = at;
            self.start_estimated = false;
        } else {
            self.start = self.start.min(at);
        }
        self.end = self.end.max(at);
    }

    pub(super) fn close(&mut self, at: u64, now: u64) {
        self.end = at.max(self.start);
        self.closed_at = Some(now);
    }

    pub(super) fn close_incomplete(&mut self, at: u64, now: u64) {
        self.incomplete = true;
        self.close(at.max(self.end), now);
    }

    pub(super) fn set_attr(&mut self, kv: KeyValue) {
        match self.attrs.iter_mut().find(|a| a.key == kv.key) {
            Some(a) => *a = kv,
            None => self.attrs.push(kv),
        }
    }

    pub(super) fn add_event(&mut self, ev: SpanEvent, max: usize) {
        if self.events.len() < max {
            self.events.push(ev);
        } else {
            self.dropped_events += 1;
        }
    }
}

/// About the bytes attributes hold: keys, values and each one's overhead.
pub(super) fn attrs_bytes(attrs: &[KeyValue]) -> usize {
    attrs.iter().map(|kv| kv.key.as_str().len() + kv.value.as_str().len() + 64).sum()
}

/// About the bytes a span event holds.
pub(super) fn event_bytes(e: &SpanEvent) -> usize {
    64 + e.name.len() + attrs_bytes(&e.attrs)
}
