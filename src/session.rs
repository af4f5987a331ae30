//! Session state: the open spans of every live session, pairing start and end events into spans,
//! and the timeouts that close what never ends.
//!
//! Pure: no I/O and no clock. `ingest` takes an event, `tick` takes the current time and hands back
//! the spans that are finished. Hook processes run concurrently, so events arrive slightly out of
//! order: a closed span waits a short *settle* time before it is handed out, during which a late
//! event can still amend it (an earlier start, the real end of a span closed as incomplete). Each
//! session is its own [`SessionState`]; nothing is shared between sessions.

use std::collections::{HashMap, HashSet, VecDeque};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::KeyValue;

use crate::ids::{self, SpanKey};
use crate::normalize::{Event, Kind, ToolCall, ToolOutcome};

/// Timeouts and limits of the state machine.
#[derive(Clone, Debug)]
pub struct Settings {
    /// A session with no event for this long is closed, its open spans marked incomplete.
    pub idle_timeout_ns: u64,
    /// How long a closed span waits for late events before it is handed out.
    pub settle_ns: u64,
    /// Span events kept per span; more are counted as dropped (OpenTelemetry's default limit).
    pub max_events_per_span: usize,
    /// How long an ended session is remembered, so that a `--resume` continues its trace.
    pub ended_ttl_ns: u64,
    /// Most ended sessions remembered; the oldest are forgotten first.
    pub max_ended: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            idle_timeout_ns: 3600 * SEC,
            settle_ns: SEC,
            max_events_per_span: 128,
            ended_ttl_ns: 24 * 3600 * SEC,
            max_ended: 100_000,
        }
    }
}

const SEC: u64 = 1_000_000_000;

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
    pub attrs: Vec<KeyValue>,
    pub events: Vec<SpanEvent>,
    pub dropped_events: u32,
    pub status: Status,
}

impl SpanRecord {
    /// The value of a string attribute, if present.
    pub fn attr(&self, key: &str) -> Option<String> {
        self.attrs.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned())
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

/// What `ingest` did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingested {
    Accepted,
    /// It belonged to a session already handed out; counted, not applied.
    Late,
}

/// Where a span hangs, resolved when it is handed out (its parent may arrive after it).
#[derive(Clone, Debug)]
enum Parent {
    /// The session root (or the resumed segment).
    Root,
    /// A turn if that turn was seen, else the root.
    Turn(Option<String>),
    /// A tool call inside a subagent: the subagent if seen, else the turn, else the root.
    Agent(String, Option<String>),
    /// A subagent: the `Agent` call that spawned it, else its turn, else the root.
    Spawner(String, Option<String>),
}

#[derive(Debug)]
struct Span {
    id: SpanId,
    key: SpanKey,
    name: String,
    start: u64,
    end: u64,
    parent: Parent,
    attrs: Vec<KeyValue>,
    events: Vec<SpanEvent>,
    dropped_events: u32,
    status: Status,
    /// Closed by a timeout or by the end of its session rather than by its own end event.
    incomplete: bool,
    /// Wall time it was closed; `None` while open.
    closed_at: Option<u64>,
}

impl Span {
    fn new(id: SpanId, key: SpanKey, name: String, at: u64, parent: Parent, attrs: Vec<KeyValue>) -> Span {
        Span {
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
            closed_at: None,
        }
    }

    fn touch(&mut self, at: u64) {
        self.start = self.start.min(at);
        self.end = self.end.max(at);
    }

    fn close(&mut self, at: u64, now: u64) {
        self.end = at.max(self.start);
        self.closed_at = Some(now);
    }

    fn close_incomplete(&mut self, at: u64, now: u64) {
        self.incomplete = true;
        self.close(at.max(self.end), now);
    }

    fn set_attr(&mut self, kv: KeyValue) {
        match self.attrs.iter_mut().find(|a| a.key == kv.key) {
            Some(a) => *a = kv,
            None => self.attrs.push(kv),
        }
    }

    fn add_event(&mut self, ev: SpanEvent, max: usize) {
        if self.events.len() < max {
            self.events.push(ev);
        } else {
            self.dropped_events += 1;
        }
    }
}

/// Every live session, plus a memory of recently ended ones.
pub struct Sessions {
    settings: Settings,
    live: HashMap<String, SessionState>,
    ended: HashMap<String, Ended>,
    /// Ended sessions in the order they ended, to forget the oldest first.
    ended_order: VecDeque<(u64, String)>,
}

/// What is kept of an ended session: enough to hang a resumed segment under its root.
struct Ended {
    root: SpanId,
    end: u64,
}

/// The open spans of one session.
struct SessionState {
    session_id: String,
    trace_id: TraceId,
    /// The root span's id, also for a resumed segment (whose own span is `top`).
    root_id: SpanId,
    /// The session root, or the segment of a resumed session.
    top: Span,
    /// Child spans, open or settling.
    spans: HashMap<SpanId, Span>,
    turns: HashSet<String>,
    agents: HashSet<String>,
    tools: HashSet<String>,
    /// Subagent → the `Agent` call that spawned it.
    spawned_by: HashMap<String, String>,
    /// `Agent` calls not yet tied to a subagent, oldest first.
    unclaimed_agent_calls: VecDeque<String>,
    /// Open compactions by trigger.
    compactions: HashMap<String, SpanId>,
    /// Span ids already handed out; late events for them are ignored.
    handed_out: HashSet<SpanId>,
    /// Wall time of the last event, for the idle timeout.
    last_seen: u64,
}

impl Sessions {
    pub fn new(settings: Settings) -> Sessions {
        Sessions { settings, live: HashMap::new(), ended: HashMap::new(), ended_order: VecDeque::new() }
    }

    /// Sessions currently open.
    pub fn active(&self) -> usize {
        self.live.len()
    }

    /// Apply one event. `now` is the wall time in Unix nanoseconds.
    pub fn ingest(&mut self, ev: Event, now: u64, out: &mut Vec<SpanRecord>) -> Ingested {
        if let Some(state) = self.live.get(&ev.session_id) {
            // an event fired after the session ended starts a resumed segment
            if state.top.closed_at.is_some() && ev.at > state.top.end {
                self.finish(&ev.session_id, out);
            }
        }
        if !self.live.contains_key(&ev.session_id) {
            let resumed = match self.ended.get(&ev.session_id) {
                Some(e) if ev.at <= e.end => return Ingested::Late,
                Some(e) => Some(e.root),
                None => None,
            };
            let state = SessionState::open(&ev, resumed);
            self.live.insert(ev.session_id.clone(), state);
        }
        let max = self.settings.max_events_per_span;
        if let Some(state) = self.live.get_mut(&ev.session_id) {
            state.apply(ev, now, max);
        }
        Ingested::Accepted
    }

    /// Hand out spans that have settled, and close sessions idle for too long.
    pub fn tick(&mut self, now: u64, out: &mut Vec<SpanRecord>) {
        let (settle, idle) = (self.settings.settle_ns, self.settings.idle_timeout_ns);
        let mut finished = Vec::new();
        for (sid, state) in self.live.iter_mut() {
            if state.top.closed_at.is_none() && now.saturating_sub(state.last_seen) >= idle {
                state.close_all(state.latest(), now);
                state.top.incomplete = true;
            }
            match state.top.closed_at {
                Some(closed) if now.saturating_sub(closed) >= settle => finished.push(sid.clone()),
                _ => state.hand_out_settled(now, settle, out),
            }
        }
        for sid in finished {
            self.finish(&sid, out);
        }
        self.forget_ended(now);
    }

    /// Hand out every span that is closed, settled or not (on shutdown). Open spans stay.
    pub fn flush_closed(&mut self, out: &mut Vec<SpanRecord>) {
        let ended: Vec<String> =
            self.live.iter().filter(|(_, s)| s.top.closed_at.is_some()).map(|(k, _)| k.clone()).collect();
        for sid in ended {
            self.finish(&sid, out);
        }
        for state in self.live.values_mut() {
            state.hand_out_settled(u64::MAX, 0, out);
        }
    }

    /// Hand out everything of an ended session and remember that it ended.
    fn finish(&mut self, sid: &str, out: &mut Vec<SpanRecord>) {
        let Some(mut state) = self.live.remove(sid) else { return };
        let end = state.top.end;
        state.hand_out_settled(u64::MAX, 0, out);
        let top = std::mem::replace(
            &mut state.top,
            Span::new(SpanId::INVALID, SpanKey::Root, String::new(), 0, Parent::Root, vec![]),
        );
        out.push(state.record(top));
        let now = state.last_seen;
        self.ended.insert(sid.to_owned(), Ended { root: state.root_id, end });
        self.ended_order.push_back((now, sid.to_owned()));
    }

    fn forget_ended(&mut self, now: u64) {
        while let Some((at, sid)) = self.ended_order.front() {
            let expired = now.saturating_sub(*at) >= self.settings.ended_ttl_ns;
            if !expired && self.ended_order.len() <= self.settings.max_ended {
                break;
            }
            // a session that ended again later has a newer entry; only drop the matching one
            if self.ended.get(sid).is_some_and(|_| !self.ended_order.iter().skip(1).any(|(_, s)| s == sid)) {
                self.ended.remove(sid);
            }
            self.ended_order.pop_front();
        }
    }
}

impl SessionState {
    fn open(ev: &Event, resumed_under: Option<SpanId>) -> SessionState {
        let sid = ev.session_id.as_str();
        let root_id = ids::span_id(sid, SpanKey::Root, sid);
        let mut attrs = vec![KeyValue::new("gen_ai.provider.name", "anthropic")];
        if let Some(cwd) = &ev.cwd {
            attrs.push(KeyValue::new("hooktel.cwd", cwd.clone()));
            attrs.push(KeyValue::new("hooktel.project", project_of(cwd)));
        }
        if let Some(path) = &ev.transcript_path {
            attrs.push(KeyValue::new("hooktel.transcript_path", path.clone()));
        }
        let top = match resumed_under {
            None => Span::new(root_id, SpanKey::Root, "claude-code session".into(), ev.at, Parent::Root, attrs),
            Some(_) => {
                let id = ids::span_id(sid, SpanKey::Segment, &ev.at.to_string());
                attrs.push(KeyValue::new("hooktel.resumed", true));
                Span::new(id, SpanKey::Segment, "claude-code session resumed".into(), ev.at, Parent::Root, attrs)
            }
        };
        SessionState {
            session_id: sid.to_owned(),
            trace_id: ids::trace_id(sid),
            root_id,
            top,
            spans: HashMap::new(),
            turns: HashSet::new(),
            agents: HashSet::new(),
            tools: HashSet::new(),
            spawned_by: HashMap::new(),
            unclaimed_agent_calls: VecDeque::new(),
            compactions: HashMap::new(),
            handed_out: HashSet::new(),
            last_seen: 0,
        }
    }

    fn apply(&mut self, ev: Event, now: u64, max_events: usize) {
        self.last_seen = now;
        if self.top.closed_at.is_none() {
            self.top.touch(ev.at);
        } else {
            self.top.start = self.top.start.min(ev.at);
        }
        let Event { name, at, prompt_id, agent_id, agent_type, kind, attrs, .. } = ev;
        let span_event = |attrs: Vec<KeyValue>| SpanEvent { name: name.clone(), at, attrs };
        match kind {
            Kind::SessionStart { .. } => {
                let e = span_event(attrs);
                self.top.add_event(e, max_events);
            }
            Kind::SessionEnd { reason } => {
                self.top.set_attr(KeyValue::new("hooktel.session.end_reason", reason));
                for kv in attrs {
                    self.top.set_attr(kv);
                }
                self.close_all(at, now);
                self.top.incomplete = false;
            }
            Kind::PromptSubmit { prompt } => {
                let pid = prompt_id.unwrap_or_default();
                let id = ids::span_id(&self.session_id, SpanKey::Turn, &pid);
                // a turn still open when the next prompt comes was interrupted (no Stop fires then)
                for span in self.spans.values_mut() {
                    if span.key == SpanKey::Turn && span.closed_at.is_none() && span.id != id {
                        span.close_incomplete(at, now);
                    }
                }
                if let Some(span) = self.live_span(id) {
                    span.touch(at);
                    return;
                }
                let mut attrs = vec![
                    KeyValue::new("gen_ai.operation.name", "invoke_agent"),
                    KeyValue::new("gen_ai.agent.name", "claude-code"),
                    KeyValue::new("gen_ai.provider.name", "anthropic"),
                    KeyValue::new("hooktel.prompt.id", pid.clone()),
                ];
                if let Some(p) = prompt {
                    attrs.push(KeyValue::new("hooktel.prompt", crate::capture::clip(&p, crate::capture::FULL_MAX)));
                }
                self.turns.insert(pid);
                self.insert(Span::new(id, SpanKey::Turn, "invoke_agent claude-code".into(), at, Parent::Root, attrs));
            }
            Kind::TurnEnd { failure } => {
                let pid = prompt_id.clone().unwrap_or_default();
                let id = ids::span_id(&self.session_id, SpanKey::Turn, &pid);
                let Some(span) = self.live_span(id).filter(|s| s.closed_at.is_none() || s.incomplete) else {
                    let e = span_event(attrs);
                    self.target(None, prompt_id.as_deref()).add_event(e, max_events);
                    return;
                };
                span.incomplete = false;
                span.close(at, now);
                span.attrs.extend(attrs);
                match failure {
                    None => span.set_attr(KeyValue::new("hooktel.turn.outcome", "stop")),
                    Some(err) => {
                        span.set_attr(KeyValue::new("hooktel.turn.outcome", "failure"));
                        span.set_attr(KeyValue::new("error.type", err.clone()));
                        span.status = Status::Error(err);
                    }
                }
            }
            Kind::ToolStart(call) => self.tool_start(call, at, prompt_id, agent_id),
            Kind::ToolEnd(call, outcome) => self.tool_end(call, outcome, at, now, prompt_id, agent_id),
            Kind::SubagentStart { parent_tool_use_id } => {
                let aid = agent_id.unwrap_or_default();
                self.note_spawner(&aid, parent_tool_use_id);
                let id = ids::span_id(&self.session_id, SpanKey::Subagent, &aid);
                if let Some(span) = self.live_span(id) {
                    span.touch(at);
                    return;
                }
                if !self.spawned_by.contains_key(&aid) {
                    if let Some(call) = self.unclaimed_agent_calls.pop_front() {
                        self.spawned_by.insert(aid.clone(), call);
                    }
                }
                let agent_type = agent_type.filter(|t| !t.is_empty()).unwrap_or_else(|| "subagent".into());
                let attrs = vec![
                    KeyValue::new("gen_ai.operation.name", "invoke_agent"),
                    KeyValue::new("gen_ai.provider.name", "anthropic"),
                    KeyValue::new("gen_ai.agent.id", aid.clone()),
                    KeyValue::new("gen_ai.agent.name", agent_type.clone()),
                ];
                self.agents.insert(aid.clone());
                let parent = Parent::Spawner(aid, prompt_id);
                self.insert(Span::new(id, SpanKey::Subagent, format!("invoke_agent {agent_type}"), at, parent, attrs));
            }
            Kind::SubagentStop { parent_tool_use_id } => {
                let aid = agent_id.clone().unwrap_or_default();
                self.note_spawner(&aid, parent_tool_use_id);
                let id = ids::span_id(&self.session_id, SpanKey::Subagent, &aid);
                match self.live_span(id).filter(|s| s.closed_at.is_none() || s.incomplete) {
                    Some(span) => {
                        span.incomplete = false;
                        span.close(at, now);
                    }
                    None => {
                        // a stop with no start (e.g. the compaction agent): keep it as an event
                        let e = span_event(attrs);
                        self.target(None, prompt_id.as_deref()).add_event(e, max_events);
                    }
                }
            }
            Kind::CompactStart { trigger } => {
                let id = ids::span_id(&self.session_id, SpanKey::Compaction, &format!("{trigger}:{at}"));
                let mut attrs = attrs;
                attrs.push(KeyValue::new("hooktel.compaction.trigger", trigger.clone()));
                self.compactions.insert(trigger, id);
                self.insert(Span::new(
                    id,
                    SpanKey::Compaction,
                    "compaction".into(),
                    at,
                    Parent::Turn(prompt_id),
                    attrs,
                ));
            }
            Kind::CompactEnd { trigger } => {
                match self.compactions.remove(&trigger).and_then(|id| self.spans.get_mut(&id)) {
                    Some(span) => {
                        span.attrs.extend(attrs);
                        span.close(at, now);
                    }
                    None => {
                        let e = span_event(attrs);
                        self.target(agent_id.as_deref(), prompt_id.as_deref()).add_event(e, max_events);
                    }
                }
            }
            Kind::PermissionRequest { tool_name } => {
                let e = span_event(attrs);
                let tool = self
                    .spans
                    .values_mut()
                    .filter(|s| s.key == SpanKey::Tool && s.closed_at.is_none())
                    .filter(|s| {
                        s.attrs.iter().any(|kv| kv.key.as_str() == "gen_ai.tool.name" && kv.value.as_str() == tool_name)
                    })
                    .max_by_key(|s| s.start);
                match tool {
                    Some(span) => span.add_event(e, max_events),
                    None => self.target(agent_id.as_deref(), prompt_id.as_deref()).add_event(e, max_events),
                }
            }
            Kind::Other => {
                let e = span_event(attrs);
                self.target(agent_id.as_deref(), prompt_id.as_deref()).add_event(e, max_events);
            }
        }
    }

    fn tool_start(&mut self, call: ToolCall, at: u64, prompt_id: Option<String>, agent_id: Option<String>) {
        let id = ids::span_id(&self.session_id, SpanKey::Tool, &call.call_id);
        if let Some(span) = self.live_span(id) {
            span.touch(at);
            for kv in call.attrs {
                if !span.attrs.iter().any(|a| a.key == kv.key) {
                    span.attrs.push(kv);
                }
            }
            return;
        }
        if self.handed_out.contains(&id) {
            return;
        }
        if is_agent_tool(&call.name) && !self.spawned_by.values().any(|c| *c == call.call_id) {
            self.unclaimed_agent_calls.push_back(call.call_id.clone());
        }
        let span = self.new_tool_span(id, &call, at, prompt_id, agent_id);
        self.insert(span);
    }

    fn tool_end(
        &mut self,
        call: ToolCall,
        outcome: ToolOutcome,
        at: u64,
        now: u64,
        prompt_id: Option<String>,
        agent_id: Option<String>,
    ) {
        let id = ids::span_id(&self.session_id, SpanKey::Tool, &call.call_id);
        if let Some(agent) = &call.spawned_agent {
            self.note_spawner(agent, Some(call.call_id.clone()));
        }
        if self.handed_out.contains(&id) {
            return;
        }
        if !self.spans.contains_key(&id) {
            // the end came without a start (hook not installed for it, or not yet delivered)
            let start = at.saturating_sub(call.duration_ms.unwrap_or(0) * 1_000_000);
            let span = self.new_tool_span(id, &call, start, prompt_id, agent_id);
            self.insert(span);
        }
        let Some(span) = self.spans.get_mut(&id) else { return };
        if span.closed_at.is_some() && !span.incomplete {
            return; // a duplicate delivery
        }
        for kv in call.attrs {
            span.set_attr(kv);
        }
        span.incomplete = false;
        if let Some(ms) = call.duration_ms {
            span.set_attr(KeyValue::new("hooktel.tool.duration_ms", ms as i64));
        }
        let label = outcome.label();
        span.set_attr(KeyValue::new("hooktel.tool.status", label));
        span.status = match outcome {
            ToolOutcome::Ok => Status::Unset,
            ToolOutcome::Error(msg) => Status::Error(msg),
            ToolOutcome::Interrupted => Status::Error("interrupted".into()),
            ToolOutcome::Denied(reason) => Status::Error(format!("permission denied: {reason}")),
        };
        if let Status::Error(_) = span.status {
            span.set_attr(KeyValue::new("error.type", label));
        }
        span.close(at, now);
        let cid = call.call_id;
        self.unclaimed_agent_calls.retain(|c| *c != cid);
    }

    fn new_tool_span(
        &mut self,
        id: SpanId,
        call: &ToolCall,
        at: u64,
        prompt_id: Option<String>,
        agent_id: Option<String>,
    ) -> Span {
        let mut attrs = vec![
            KeyValue::new("gen_ai.operation.name", "execute_tool"),
            KeyValue::new("gen_ai.tool.name", call.name.clone()),
            KeyValue::new("gen_ai.tool.call.id", call.call_id.clone()),
        ];
        attrs.extend(call.attrs.iter().cloned());
        if let Some(aid) = &agent_id {
            attrs.push(KeyValue::new("gen_ai.agent.id", aid.clone()));
        }
        self.tools.insert(call.call_id.clone());
        let parent = match agent_id {
            Some(aid) => Parent::Agent(aid, prompt_id),
            None => Parent::Turn(prompt_id),
        };
        Span::new(id, SpanKey::Tool, format!("execute_tool {}", call.name), at, parent, attrs)
    }

    fn note_spawner(&mut self, agent_id: &str, tool_use_id: Option<String>) {
        if let Some(call) = tool_use_id {
            self.unclaimed_agent_calls.retain(|c| *c != call);
            self.spawned_by.insert(agent_id.to_owned(), call);
        }
    }

    fn insert(&mut self, span: Span) {
        self.spans.insert(span.id, span);
    }

    /// A child span that has not been handed out yet, open or settling.
    fn live_span(&mut self, id: SpanId) -> Option<&mut Span> {
        self.spans.get_mut(&id)
    }

    /// The innermost span for a span event: the subagent, an open compaction, the turn, the root.
    fn target(&mut self, agent_id: Option<&str>, prompt_id: Option<&str>) -> &mut Span {
        let sid = self.session_id.clone();
        let mut candidates = Vec::with_capacity(3);
        if let Some(aid) = agent_id {
            candidates.push(ids::span_id(&sid, SpanKey::Subagent, aid));
        }
        candidates.extend(self.compactions.values().copied());
        if let Some(pid) = prompt_id {
            candidates.push(ids::span_id(&sid, SpanKey::Turn, pid));
        }
        match candidates.into_iter().find(|id| self.spans.contains_key(id)) {
            Some(id) => self.spans.get_mut(&id).expect("checked above"),
            None => &mut self.top,
        }
    }

    /// The latest time seen in the session.
    fn latest(&self) -> u64 {
        self.spans.values().map(|s| s.end).chain([self.top.end]).max().unwrap_or(0)
    }

    /// Close every open span (incomplete) and the top span at `at`.
    fn close_all(&mut self, at: u64, now: u64) {
        for span in self.spans.values_mut().filter(|s| s.closed_at.is_none()) {
            span.close_incomplete(at, now);
            if span.key == SpanKey::Tool {
                span.set_attr(KeyValue::new("hooktel.tool.status", "incomplete"));
            }
        }
        self.compactions.clear();
        self.top.close(at.max(self.top.end), now);
    }

    /// Move closed child spans that have waited `settle` out of the session.
    fn hand_out_settled(&mut self, now: u64, settle: u64, out: &mut Vec<SpanRecord>) {
        let ready: Vec<SpanId> = self
            .spans
            .values()
            .filter(|s| s.closed_at.is_some_and(|c| now.saturating_sub(c) >= settle))
            .map(|s| s.id)
            .collect();
        for id in ready {
            if let Some(span) = self.spans.remove(&id) {
                self.handed_out.insert(id);
                let record = self.record(span);
                out.push(record);
            }
        }
    }

    fn resolve(&self, parent: &Parent) -> SpanId {
        let sid = &self.session_id;
        let turn = |pid: &Option<String>| match pid {
            Some(p) if self.turns.contains(p) => ids::span_id(sid, SpanKey::Turn, p),
            _ => self.top.id,
        };
        match parent {
            Parent::Root => self.top.id,
            Parent::Turn(pid) => turn(pid),
            Parent::Agent(aid, pid) if self.agents.contains(aid) => ids::span_id(sid, SpanKey::Subagent, aid),
            Parent::Agent(_, pid) => turn(pid),
            Parent::Spawner(aid, pid) => match self.spawned_by.get(aid) {
                Some(call) if self.tools.contains(call) => ids::span_id(sid, SpanKey::Tool, call),
                _ => turn(pid),
            },
        }
    }

    fn record(&self, span: Span) -> SpanRecord {
        let parent = match span.key {
            SpanKey::Root => None,
            SpanKey::Segment => Some(self.root_id),
            _ => Some(self.resolve(&span.parent)),
        };
        let mut attrs = Vec::with_capacity(span.attrs.len() + 3);
        attrs.push(KeyValue::new("session.id", self.session_id.clone()));
        attrs.push(KeyValue::new("gen_ai.conversation.id", self.session_id.clone()));
        attrs.extend(span.attrs);
        if span.incomplete {
            attrs.push(KeyValue::new("hooktel.incomplete", true));
        }
        SpanRecord {
            trace_id: self.trace_id,
            span_id: span.id,
            parent,
            name: span.name,
            key: span.key,
            start: span.start,
            end: span.end.max(span.start),
            attrs,
            events: span.events,
            dropped_events: span.dropped_events,
            status: span.status,
        }
    }
}

/// `Agent` is the subagent tool's name; older Claude Code called it `Task`.
fn is_agent_tool(name: &str) -> bool {
    name == "Agent" || name == "Task"
}

/// The project a session works in: the last component of its working directory.
pub fn project_of(cwd: &str) -> String {
    cwd.trim_end_matches('/').rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("/").to_owned()
}
