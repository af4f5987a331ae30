//! One session's state: its open spans, from its root (or resumed segment) down, and what pairs
//! its start and end events into them ([`SessionState::apply`], which hands each event kind to a
//! handler of its own), places a span under its parent when it is handed out, puts usage on the
//! spans it belongs to, and closes what never ends.
//! Bounded: what it remembers per session of Claude Code's telemetry stops at `MAX_NATIVE`, of its
//! teammates at `MAX_TEAMMATES`, and the spans it holds at `MAX_SPANS` (past it the oldest is handed
//! out at once, closed as incomplete if still open).

use std::collections::{HashMap, HashSet, VecDeque};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::KeyValue;

use super::native::{time_chat, Native};
use super::reads::AwaitedReads;
use super::span::{event_bytes, OpenSpan, Parent};
use super::teams::{self, is_in_process_teammate};
use super::unnamed::Unnamed;
use super::Settings;
use crate::model::agent::Agent;
use crate::model::checkout::{self, Checkout};
use crate::model::event::{Event, Kind, ToolCall, ToolOutcome};
use crate::model::ids::{self, SessionId, SpanKey};
use crate::model::semconv;
use crate::model::semconv::{int, project_of, ModelEndpoint};
use crate::model::span::{
    ChatCall, SpanEvent, SpanLink, SpanRecord, SpanUsage, Status, Subject, TeamMember, ToolRun, ToolStatus,
    TurnOutcome, LEAD_AGENT,
};
use crate::model::time::ms_to_ns;
use crate::usage::logs::{Delta, Response};

/// The open spans of one session.
pub(super) struct SessionState {
    /// Shared with every span record the session hands out.
    pub(super) session_id: SessionId,
    pub(super) trace_id: TraceId,
    /// The root span's id, also for a resumed segment (whose own span is `top`).
    pub(super) root_id: SpanId,
    /// The session root, or the segment of a resumed session.
    pub(super) top: OpenSpan,
    /// Child spans, open or settling.
    pub(super) spans: HashMap<SpanId, OpenSpan>,
    /// Ids of child spans in the order they were made (those since handed out are pruned as the
    /// deque grows), so that the oldest goes first at `MAX_SPANS`.
    span_order: VecDeque<SpanId>,
    /// Spans handed out early at `MAX_SPANS`, waiting for `Sessions` to take them.
    pub(super) evicted: Vec<SpanRecord>,
    /// The weights of the spans in `span_order` still held, summed.
    span_bytes: usize,
    /// Most `span_bytes` (the memory budget's share for one session's spans).
    max_span_bytes: usize,
    /// What `Sessions` counts it holding, in bytes: [`SessionState::held`] when last counted, plus
    /// what each event since may have added.
    pub(super) counted: usize,
    /// Changed since `counted` was last counted exactly.
    pub(super) dirty: bool,
    pub(super) turns: HashSet<String>,
    agents: HashSet<String>,
    tools: HashSet<String>,
    /// Subagent → the `Agent` call that spawned it.
    spawned_by: HashMap<String, String>,
    /// `Agent` calls not yet tied to a subagent, oldest first.
    unclaimed_agent_calls: VecDeque<String>,
    /// Open compactions by trigger.
    compactions: HashMap<String, SpanId>,
    /// Span ids already handed out; late events for them are ignored.
    pub(super) handed_out: HashSet<SpanId>,
    /// In a resumed segment, its key: child span ids include it, so a resumed run can never
    /// produce a span id its earlier runs already exported (those ids are no longer remembered).
    pub(super) segment: Option<String>,
    /// Wall time of the last event, for the idle timeout.
    pub(super) last_seen: u64,
    /// Basename of the session's first `cwd`.
    project: String,
    /// The agent whose session it is (its first event's): it names the spans and their provider.
    pub(super) agent: Agent,
    /// Where it works in version control, as last looked up (the ticket: the last one found).
    pub(super) checkout: Option<Checkout>,
    /// Usage for a turn or subagent whose span is not open yet (its start event is late, or the
    /// transcript was read before it arrived), applied when it opens.
    pub(super) early_usage: HashMap<SpanId, SpanUsage>,
    /// The agent team it belongs to, once known: as the lead (it spawned a teammate) or as a pane
    /// teammate (an event named the team).
    pub(super) team: Option<String>,
    /// A pane teammate's own name.
    pub(super) teammate_name: Option<String>,
    /// In-process teammates: agent id → name (at most `MAX_TEAMMATES`).
    pub(super) teammates: HashMap<String, String>,
    /// `Agent` calls that spawned a pane teammate, by the teammate's name: held until the session
    /// ends, so that they can link to the teammate's trace once it names its team (at most
    /// `MAX_TEAMMATES`).
    pub(super) pane_spawns: HashMap<String, SpanId>,
    /// Claude Code runs it with agent teams on: until its team is known (or its first turn ended
    /// without one), its closed spans wait, so that they carry the team when it forms.
    teams_on: bool,
    /// A turn of it has ended.
    turn_ended: bool,
    /// Claude Code's own telemetry: whether it reports for this session, the chat span of each
    /// request id, requests reported before their response was read, the last failed try of each
    /// prompt, the prompts whose turn failed, the `tool_use_id` of each of its tool spans, the
    /// permission waits whose tool span is not known yet, and the session's counters.
    pub(super) native: Native,
    /// Transcript reads its closed turns and subagents (and its end) wait for.
    pub(super) reads: AwaitedReads,
    /// `user.id` of its spans: `HOOKTEL_USER_ID`, else the first account Claude Code's telemetry
    /// named for it (only at a capture level that lets identity out: see `Capture::identity`).
    pub(super) user: Option<String>,
    /// Where its model calls go.
    pub(super) endpoint: ModelEndpoint,
    /// URLs of the pull requests its Bash calls opened, listed on its root (`hooktel.pull_requests`).
    pull_requests: Vec<String>,
    /// The turns, tool calls and model calls its agent's hooks do not name (Gemini CLI's).
    pub(super) unnamed: Unnamed,
}

/// Most requests remembered per session in each of `Native`'s maps.
pub(super) const MAX_NATIVE: usize = 4096;

/// Most reports held per session while they wait for what they belong to (a request's response, a
/// turn's failure, a tool call's span): each holds an error's text, and real sessions have a few
/// waiting at a time.
pub(super) const MAX_WAITING: usize = 256;

/// Most in-process teammates, and most held `Agent` calls that spawned a pane teammate, remembered
/// per session; past it a teammate is a plain subagent, a spawn a plain tool call. A real team has a
/// few teammates, so the bound never touches one: it only keeps a flood of made-up teammates (a
/// payload can name any) from growing a session without end. 4,096, the value of `MAX_NATIVE`, which
/// bounded these maps before they had a bound of their own: far above any real team, and no more
/// memory per session under a flood than before.
pub(super) const MAX_TEAMMATES: usize = 4096;

/// Most pull-request URLs listed on one session's root: a busy session opens a handful; past it
/// the root lists no more (each still has its span event and its count), so that a payload flood
/// cannot grow the root without end (32 URLs of at most 512 bytes: 16 KiB).
const MAX_PULL_REQUESTS: usize = 32;

/// Most child spans one session holds, open or settling; a new one past it hands out the oldest at
/// once (closed as incomplete if it is still open). A real session holds a few dozen (the busiest
/// captured one, a team of four, under 200); 400,000 tool calls never ended held 952 MiB. 10,000 is
/// far above any real session and a few tens of MiB with the longest fields.
pub(super) const MAX_SPANS: usize = 10_000;

/// What a session holds besides its spans and ids: the state itself, its maps' tables.
const SESSION_BYTES: usize = 2048;

/// What an id a session remembers holds: its text, and its place in a set or map.
const ID_BYTES: usize = 96;

/// What a span id a session remembers holds: its 8 bytes, and its place in a set or a queue.
const SPAN_ID_BYTES: usize = 32;

impl SessionState {
    /// A session opened by `ev` (a resumed segment under `resumed_under`), whose child spans may
    /// hold `settings.max_span_bytes` (past it the oldest are handed out as at `MAX_SPANS`: spans with
    /// as many 256-byte fields as a payload can carry weigh 70 KB each, and 10,000 of them would not
    /// fit a pod).
    pub(super) fn open(ev: &Event, resumed_under: Option<SpanId>, settings: &Settings) -> SessionState {
        let sid = ev.session_id.as_str();
        let root_id = ids::span_id(sid, SpanKey::Root, sid);
        let agent = ev.source;
        let mut attrs = semconv::root(agent, ev.cwd.as_deref(), ev.transcript_path.as_deref(), settings.capture);
        let segment = resumed_under.map(|_| ev.at.to_string());
        let top = match &segment {
            None => {
                OpenSpan::new(root_id, SpanKey::Root, format!("{} session", agent.name()), ev.at, Parent::Root, attrs)
            }
            Some(key) => {
                let id = ids::span_id(sid, SpanKey::Segment, key);
                attrs.push(KeyValue::new(semconv::RESUMED, true));
                let name = format!("{} session resumed", agent.name());
                OpenSpan::new(id, SpanKey::Segment, name, ev.at, Parent::Root, attrs)
            }
        };
        SessionState {
            session_id: ev.session_id.clone(),
            trace_id: ids::trace_id(sid),
            root_id,
            top,
            spans: HashMap::new(),
            span_order: VecDeque::new(),
            evicted: Vec::new(),
            span_bytes: 0,
            max_span_bytes: settings.max_span_bytes,
            counted: 0,
            dirty: true,
            turns: HashSet::new(),
            agents: HashSet::new(),
            tools: HashSet::new(),
            spawned_by: HashMap::new(),
            unclaimed_agent_calls: VecDeque::new(),
            compactions: HashMap::new(),
            handed_out: HashSet::new(),
            segment,
            last_seen: 0,
            project: ev.cwd.as_deref().map(project_of).unwrap_or_default(),
            agent,
            checkout: None,
            early_usage: HashMap::new(),
            native: Native::default(),
            team: None,
            teammate_name: None,
            teammates: HashMap::new(),
            pane_spawns: HashMap::new(),
            teams_on: false,
            turn_ended: false,
            reads: AwaitedReads::default(),
            user: settings.user_id.clone(),
            endpoint: settings.endpoint.clone(),
            pull_requests: Vec::new(),
            unnamed: Unnamed::default(),
        }
    }

    /// The checkout its `cwd` is in was looked up: the root (or segment) carries the latest, with
    /// the last ticket found (a session that went back to `main` still worked on its ticket); the
    /// turn whose start asked for it, if still held, carries it as it was then.
    pub(super) fn located(&mut self, prompt_id: Option<&str>, found: Checkout) {
        if let Some(pid) = prompt_id {
            let id = self.span_id(SpanKey::Turn, pid);
            if let Some(turn) = self.spans.get_mut(&id) {
                set_checkout(&mut turn.attrs, &found);
            }
        }
        let last_ticket = self.checkout.take().and_then(|c| c.ticket);
        let latest = Checkout { ticket: found.ticket.or(last_ticket), ..found };
        set_checkout(&mut self.top.attrs, &latest);
        self.checkout = Some(latest);
        self.dirty = true;
    }

    /// The id of a child span of this session (or of this resumed segment).
    pub(super) fn span_id(&self, kind: SpanKey, key: &str) -> SpanId {
        match &self.segment {
            None => ids::span_id(&self.session_id, kind, key),
            Some(seg) => ids::span_id(&self.session_id, kind, &format!("{seg}/{key}")),
        }
    }

    /// Apply one event: the session's times, then the handler of its kind.
    pub(super) fn apply(&mut self, ev: Event, now: u64, max_events: usize) {
        self.last_seen = now;
        if self.top.closed_at.is_none() {
            self.top.touch(ev.at);
        } else {
            self.top.start = self.top.start.min(ev.at);
        }
        self.teams_on |= ev.agent_teams;
        self.native.on |= ev.native_telemetry;
        let Event { name, at, mut prompt_id, agent_id, agent_type, mut kind, attrs, .. } = ev;
        if !self.agent.names_turns() {
            match (&kind, &prompt_id) {
                (Kind::PromptSubmit { .. }, Some(pid)) => self.unnamed_turn_started(at, pid),
                _ => prompt_id = self.unnamed_turn(prompt_id),
            }
        }
        if !self.agent.names_tool_calls() {
            match &mut kind {
                Kind::ToolStart(call) => {
                    call.call_id = self.unnamed_call_started(std::mem::take(&mut call.call_id), at)
                }
                Kind::ToolEnd(call, _) => call.call_id = self.unnamed_call_ended(&call.call_id, at),
                _ => {}
            }
        }
        // the event as a span event; a handler that opens or closes a span puts its attributes there
        let e = SpanEvent { name, at, attrs };
        match kind {
            Kind::SessionStart { source } => self.session_start(source, e, max_events),
            Kind::SessionEnd { reason } => self.session_end(reason, e, now),
            Kind::PromptSubmit { prompt } => self.prompt_submit(prompt, prompt_id, e, now, max_events),
            Kind::TurnEnd { failure, message } => self.turn_end(failure, message, prompt_id, e, now, max_events),
            Kind::ToolStart(call) => self.tool_start(call, at, prompt_id, agent_id),
            Kind::ToolEnd(call, outcome) => self.tool_end(call, outcome, at, now, prompt_id, agent_id, max_events),
            Kind::SubagentStart { parent_tool_use_id } => {
                self.subagent_start(parent_tool_use_id, agent_id, agent_type, prompt_id, e, max_events)
            }
            Kind::SubagentStop { parent_tool_use_id } => {
                self.subagent_stop(parent_tool_use_id, agent_id, prompt_id, e, now, max_events)
            }
            Kind::CompactStart { trigger } => self.compact_start(trigger, prompt_id, e),
            Kind::CompactEnd { trigger } => self.compact_end(trigger, agent_id, prompt_id, e, now, max_events),
            Kind::PermissionRequest { tool_name } => {
                self.permission_request(tool_name, agent_id, prompt_id, e, max_events)
            }
            Kind::ModelStart => self.model_started(at),
            Kind::ModelEnd { finish_reason } => self.model_ended(at, finish_reason),
            Kind::Nothing => {}
            Kind::Other | Kind::SkillShellCommand => {
                self.add_event(agent_id.as_deref(), prompt_id.as_deref(), e, max_events)
            }
            Kind::ModelCall(call) => {
                if self.user.is_none() {
                    self.user = call.user.clone();
                }
                self.model_call(call, at, now, prompt_id, agent_id, max_events)
            }
            // placed by `Sessions::ingest`, which sees the task lists of every session
            Kind::Task { .. } => {}
            Kind::ToolTiming(timing) => self.tool_timing(timing, at),
            Kind::TelemetryBatch => self.native.batch(at, now),
            Kind::SessionCounter { attr, value, cumulative } => self.session_counter(attr, value, cumulative),
        }
    }

    /// How the session began (startup, resume, fork, ...): on its root as on the event.
    fn session_start(&mut self, source: String, e: SpanEvent, max_events: usize) {
        if !self.top.attrs.iter().any(|kv| kv.key.as_str() == semconv::SESSION_SOURCE) {
            self.top.set_attr(KeyValue::new(semconv::SESSION_SOURCE, source));
        }
        self.top.add_event(e, max_events);
    }

    /// The session ends: every span still open closes (incomplete), the root does (complete).
    fn session_end(&mut self, reason: String, e: SpanEvent, now: u64) {
        self.top.set_attr(KeyValue::new(semconv::SESSION_END_REASON, reason));
        for kv in e.attrs {
            self.top.set_attr(kv);
        }
        self.close_all(e.at, now);
        self.top.incomplete = false;
    }

    /// A prompt opens its turn (one already handed out takes it as an event of the root).
    fn prompt_submit(
        &mut self,
        prompt: Option<String>,
        prompt_id: Option<String>,
        e: SpanEvent,
        now: u64,
        max_events: usize,
    ) {
        let at = e.at;
        let pid = prompt_id.unwrap_or_default();
        let id = self.span_id(SpanKey::Turn, &pid);
        // a turn still open when the next prompt comes was interrupted (no Stop fires then)
        for span in self.spans.values_mut() {
            if span.key == SpanKey::Turn && span.closed_at.is_none() && span.id != id {
                span.close_incomplete(at, now);
            }
        }
        if let Some(span) = self.spans.get_mut(&id) {
            span.started(at);
            return;
        }
        if self.handed_out.contains(&id) {
            self.top.add_event(e, max_events);
            return;
        }
        let attrs = semconv::turn(self.agent, &pid, prompt.as_deref());
        self.turns.insert(pid);
        let name = format!("invoke_agent {}", self.agent.name());
        self.insert(OpenSpan::new(id, SpanKey::Turn, name, at, Parent::Root, attrs));
    }

    /// Stop or StopFailure closes its turn (a failure in ERROR); with no turn to close, an event.
    fn turn_end(
        &mut self,
        failure: Option<String>,
        message: Option<String>,
        prompt_id: Option<String>,
        e: SpanEvent,
        now: u64,
        max_events: usize,
    ) {
        let pid = prompt_id.clone().unwrap_or_default();
        let id = self.span_id(SpanKey::Turn, &pid);
        let Some(span) = self.spans.get_mut(&id).filter(|s| s.closed_at.is_none() || s.incomplete) else {
            self.add_event(None, prompt_id.as_deref(), e, max_events);
            return;
        };
        span.incomplete = false;
        span.close(e.at, now);
        span.attrs.extend(e.attrs);
        let failed = failure.is_some();
        span.turn = Some(match failure {
            None => TurnOutcome::Stop,
            Some(err) => {
                span.status = Status::Error(message.unwrap_or_else(|| err.clone()));
                TurnOutcome::Failure(err)
            }
        });
        self.turn_ended = true;
        if failed {
            self.turn_failed(&pid, now);
        }
    }

    /// A subagent starts: its span, under the `Agent` call that spawned it; an in-process teammate's
    /// is held, and a teammate woken up for more work opens its span again.
    fn subagent_start(
        &mut self,
        parent_tool_use_id: Option<String>,
        agent_id: Option<String>,
        agent_type: Option<String>,
        prompt_id: Option<String>,
        e: SpanEvent,
        max_events: usize,
    ) {
        let at = e.at;
        let aid = agent_id.unwrap_or_default();
        self.note_spawner(&aid, parent_tool_use_id);
        let id = self.span_id(SpanKey::Subagent, &aid);
        let teammate = self.teammates.contains_key(&aid);
        if let Some(span) = self.spans.get_mut(&id) {
            if teammate && span.closed_at.is_some() {
                // an in-process teammate woken up for more work
                span.closed_at = None;
                span.add_event(e, max_events);
            }
            span.started(at);
            return;
        }
        if self.handed_out.contains(&id) {
            self.add_event(None, prompt_id.as_deref(), e, max_events);
            return;
        }
        if !self.spawned_by.contains_key(&aid) {
            if let Some(call) = self.unclaimed_agent_calls.pop_front() {
                self.spawned_by.insert(aid.clone(), call);
            }
        }
        let agent_type = agent_type.filter(|t| !t.is_empty()).unwrap_or_else(|| "subagent".into());
        let attrs = semconv::subagent(&aid);
        // (past MAX_TEAMMATES teammates in one session, a plain subagent: the map stays bounded)
        let teammate = is_in_process_teammate(&aid, &agent_type) && self.teammates.len() < MAX_TEAMMATES;
        let subject =
            if teammate { Subject::Teammate(agent_type.clone()) } else { Subject::Subagent(agent_type.clone()) };
        if teammate {
            // its team is the lead's: this session's
            self.team.get_or_insert_with(|| teams::own_team(&self.session_id));
            self.teammates.insert(aid.clone(), agent_type.clone());
        }
        self.agents.insert(aid.clone());
        // a subagent that names no turn (Codex's: its turn is its own) belongs to the turn open now
        let prompt_id = prompt_id.or_else(|| self.open_turn());
        let parent = Parent::Spawner(aid, prompt_id);
        let mut span = OpenSpan::new(id, SpanKey::Subagent, format!("invoke_agent {agent_type}"), at, parent, attrs);
        span.held = teammate;
        span.subject = Some(subject);
        self.insert(span);
    }

    /// A subagent stops: its span closes (a teammate's lasts to its last stop); a stop with no
    /// start is an event.
    fn subagent_stop(
        &mut self,
        parent_tool_use_id: Option<String>,
        agent_id: Option<String>,
        prompt_id: Option<String>,
        e: SpanEvent,
        now: u64,
        max_events: usize,
    ) {
        let at = e.at;
        let aid = agent_id.unwrap_or_default();
        self.note_spawner(&aid, parent_tool_use_id);
        let id = self.span_id(SpanKey::Subagent, &aid);
        if self.teammates.contains_key(&aid) {
            // a teammate stops and idles; it may wake up again: its span lasts to its last stop
            if let Some(span) = self.spans.get_mut(&id) {
                span.end = span.end.max(at);
                span.closed_at = Some(now);
                span.incomplete = false;
                return;
            }
        }
        match self.spans.get_mut(&id).filter(|s| s.closed_at.is_none() || s.incomplete) {
            Some(span) => {
                span.incomplete = false;
                span.close(at, now);
            }
            None => {
                // a stop with no start (e.g. the compaction agent): keep it as an event
                self.add_event(None, prompt_id.as_deref(), e, max_events);
            }
        }
    }

    /// A compaction starts: its span, open until the compaction of the same trigger ends.
    fn compact_start(&mut self, trigger: String, prompt_id: Option<String>, e: SpanEvent) {
        let at = e.at;
        let id = self.span_id(SpanKey::Compaction, &format!("{trigger}:{at}"));
        let mut attrs = e.attrs;
        attrs.push(KeyValue::new(semconv::COMPACTION_TRIGGER, trigger.clone()));
        self.compactions.insert(trigger, id);
        self.insert(OpenSpan::new(id, SpanKey::Compaction, "compaction".into(), at, Parent::Turn(prompt_id), attrs));
    }

    /// A compaction ends: its span closes; with none open, an event.
    fn compact_end(
        &mut self,
        trigger: String,
        agent_id: Option<String>,
        prompt_id: Option<String>,
        e: SpanEvent,
        now: u64,
        max_events: usize,
    ) {
        match self.compactions.remove(&trigger).and_then(|id| self.spans.get_mut(&id)) {
            Some(span) => {
                span.attrs.extend(e.attrs);
                span.close(e.at, now);
            }
            None => {
                self.add_event(agent_id.as_deref(), prompt_id.as_deref(), e, max_events);
            }
        }
    }

    /// A permission prompt: an event on the latest open call of its tool (it names no call), else
    /// on the innermost span.
    fn permission_request(
        &mut self,
        tool_name: String,
        agent_id: Option<String>,
        prompt_id: Option<String>,
        e: SpanEvent,
        max_events: usize,
    ) {
        let tool = self
            .spans
            .values_mut()
            .filter(|s| s.key == SpanKey::Tool && s.closed_at.is_none())
            .filter(|s| matches!(&s.subject, Some(Subject::Tool(name)) if *name == tool_name))
            .max_by_key(|s| s.start);
        match tool {
            Some(span) => span.add_event(e, max_events),
            None => self.add_event(agent_id.as_deref(), prompt_id.as_deref(), e, max_events),
        }
    }

    /// This session is a fork of `origin` (`--fork-session`): its root links to the origin's root.
    /// The agent's log says tool call `call_id` failed (a Codex command's exit code): its span, open
    /// or settling, is ERROR with the log's reason. One already handed out stays as it went; a call
    /// whose span is not open yet is not remembered (its start comes before the log's line).
    pub(super) fn tool_failed(&mut self, call_id: &str, message: &str) {
        let id = self.span_id(SpanKey::Tool, call_id);
        let Some(span) = self.spans.get_mut(&id) else { return };
        span.status = Status::Error(message.to_owned());
        if let Some(run) = &mut span.tool {
            run.status = ToolStatus::Error;
        }
    }

    pub(super) fn forked_from(&mut self, origin: &str) {
        let link = SpanLink {
            trace_id: ids::trace_id(origin),
            span_id: ids::span_id(origin, SpanKey::Root, origin),
            kind: "forked_from".into(),
        };
        let root = match self.segment {
            None => &mut self.top,
            // a fork resumed later: the root was handed out with its first segment
            Some(_) => return,
        };
        if !root.links.contains(&link) {
            root.links.push(link);
            root.set_attr(KeyValue::new(semconv::FORKED_FROM, origin.to_owned()));
        }
    }

    fn tool_start(&mut self, call: ToolCall, at: u64, prompt_id: Option<String>, agent_id: Option<String>) {
        let id = self.span_id(SpanKey::Tool, &call.call_id);
        if let Some(span) = self.spans.get_mut(&id) {
            span.started(at);
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

    #[allow(clippy::too_many_arguments)]
    fn tool_end(
        &mut self,
        call: ToolCall,
        outcome: ToolOutcome,
        at: u64,
        now: u64,
        prompt_id: Option<String>,
        agent_id: Option<String>,
        max_events: usize,
    ) {
        let id = self.span_id(SpanKey::Tool, &call.call_id);
        if let Some(agent) = &call.spawned_agent {
            self.note_spawner(agent, Some(call.call_id.clone()));
        }
        if self.handed_out.contains(&id) {
            return;
        }
        if !self.spans.contains_key(&id) {
            // the end came without a start (hook not installed for it, or not yet delivered)
            let start = at.saturating_sub(ms_to_ns(call.duration_ms.unwrap_or(0)));
            let mut span = self.new_tool_span(id, &call, start, prompt_id, agent_id);
            span.start_estimated = true;
            self.insert(span);
        }
        let Some(span) = self.spans.get_mut(&id) else { return };
        if span.closed_at.is_some() && !span.incomplete {
            return; // a duplicate delivery
        }
        for kv in call.attrs {
            span.set_attr(kv);
        }
        // the agent's log told the failure first (`tool_failed`): the hook's `Ok` does not undo it
        let failed_in_log = !span.incomplete && matches!(span.status, Status::Error(_));
        span.incomplete = false;
        let pull_request = call.pull_request.filter(|_| outcome == ToolOutcome::Ok && !failed_in_log);
        span.tool = Some(ToolRun {
            status: if failed_in_log { ToolStatus::Error } else { outcome.status() },
            duration_ms: call.duration_ms,
            pull_request: pull_request.as_ref().map(|pr| pr.forge),
        });
        if let Some(pr) = &pull_request {
            let event = SpanEvent { name: semconv::PULL_REQUEST_EVENT.into(), at, attrs: semconv::pull_request(pr) };
            span.add_event(event, max_events);
        }
        if !failed_in_log {
            span.status = match outcome {
                ToolOutcome::Ok => Status::Unset,
                ToolOutcome::Error(msg) => Status::Error(msg),
                ToolOutcome::Interrupted => Status::Error("interrupted".into()),
                ToolOutcome::Denied(reason) => Status::Error(format!("permission denied: {reason}")),
            };
        }
        span.close(at, now);
        if let Some(pr) = pull_request {
            self.note_pull_request(pr.url);
        }
        let cid = call.call_id;
        self.unclaimed_agent_calls.retain(|c| *c != cid);
        if let (Some(name), Some(agent)) = (call.spawned_teammate, &call.spawned_agent) {
            if !self.teammates.contains_key(agent) && !is_in_process_teammate(agent, &name) {
                // a pane teammate: a session of its own, which names its team later
                if let Some(span) = self.spans.get_mut(&id) {
                    span.held = true;
                }
                if self.pane_spawns.len() < MAX_TEAMMATES {
                    self.pane_spawns.insert(name, id);
                }
            }
        }
    }

    /// List a pull request's URL on the session's root (or resumed segment), which is handed out at
    /// the session's end: at most `MAX_PULL_REQUESTS`, each once.
    fn note_pull_request(&mut self, url: String) {
        if self.pull_requests.len() >= MAX_PULL_REQUESTS || self.pull_requests.contains(&url) {
            return;
        }
        self.pull_requests.push(url);
        let urls = self.pull_requests.iter().map(|u| u.clone().into()).collect();
        let list = opentelemetry::Value::Array(opentelemetry::Array::String(urls));
        self.top.set_attr(KeyValue::new(semconv::PULL_REQUESTS, list));
    }

    fn new_tool_span(
        &mut self,
        id: SpanId,
        call: &ToolCall,
        at: u64,
        prompt_id: Option<String>,
        agent_id: Option<String>,
    ) -> OpenSpan {
        let mut attrs = semconv::tool(&call.call_id, &call.name);
        attrs.extend(call.attrs.iter().cloned());
        if let Some(aid) = &agent_id {
            attrs.push(KeyValue::new(semconv::AGENT_ID, aid.clone()));
        }
        self.tools.insert(call.call_id.clone());
        let parent = match agent_id {
            Some(aid) => Parent::Agent(aid, prompt_id),
            None => Parent::Turn(prompt_id),
        };
        let mut span = OpenSpan::new(id, SpanKey::Tool, format!("execute_tool {}", call.name), at, parent, attrs);
        span.subject = Some(Subject::Tool(call.name.clone()));
        span
    }

    /// The span of one model call, made or grown from a usage delta: under the subagent whose
    /// transcript it is in, else the turn it answers. It settles like any closed span; lines of the
    /// response read later grow it until it is handed out, never make a second one.
    pub(super) fn chat(&mut self, d: &Delta, r: &Response, now: u64) {
        let id = self.span_id(SpanKey::Chat, &r.key());
        if self.handed_out.contains(&id) {
            return;
        }
        // the hooks' times of its model call, taken once: when the span is made
        let timed = if self.spans.contains_key(&id) { None } else { self.model_call_of(r) };
        let parent = match &d.agent_id {
            Some(aid) => Parent::Agent(aid.clone(), d.prompt_id.clone()),
            None if d.prompt_id.is_none() && !self.agent.names_turns() => Parent::TurnAt(r.start),
            None => Parent::Turn(d.prompt_id.clone()),
        };
        let span = self.spans.entry(id).or_insert_with(|| {
            let mut attrs = semconv::chat(self.agent, &d.model, &self.endpoint);
            attrs.push(KeyValue::new(semconv::API_ATTEMPT, int(r.attempt())));
            let mut span = OpenSpan::new(id, SpanKey::Chat, semconv::chat_name(&d.model), r.start, parent, attrs);
            span.chat =
                Some(ChatCall { response_id: r.id.clone(), request_id: r.request_id.clone(), finish_reason: None });
            span.events = r.failed_try_events();
            if let Some((start, end)) = timed {
                // the agent's hooks timed its model call
                (span.start, span.end, span.exact) = (start, end, true);
            }
            span
        });
        if !span.exact {
            span.start = span.start.min(r.start);
            span.end = span.end.max(r.end);
        }
        span.closed_at = Some(now);
        if let Some(chat) = &mut span.chat {
            chat.finish_reason = r.stop_reason.clone().or(chat.finish_reason.take());
        }
        span.usage.get_or_insert_with(Default::default).add(&d.model, d.usage, d.cost);
        if !r.request_id.is_empty() && self.native.chat_by_request.len() < MAX_NATIVE {
            self.native.chat_by_request.insert(r.request_id.clone(), id);
        }
        if let Some((at, call)) = self.native.pending.remove(&r.request_id) {
            if let Some(span) = self.spans.get_mut(&id) {
                time_chat(span, &call, at, now);
            }
        }
    }

    fn note_spawner(&mut self, agent_id: &str, tool_use_id: Option<String>) {
        if let Some(call) = tool_use_id {
            self.unclaimed_agent_calls.retain(|c| *c != call);
            self.spawned_by.insert(agent_id.to_owned(), call);
        }
    }

    pub(super) fn insert(&mut self, mut span: OpenSpan) {
        self.dirty = true;
        if let Some(early) = self.early_usage.remove(&span.id) {
            span.usage = Some(Box::new(early));
        }
        if let Some(old) = self.spans.get(&span.id) {
            span.weight = old.weight;
        } else {
            span.weight = span.size();
            self.make_room(span.weight);
            self.span_bytes += span.weight;
            self.span_order.push_back(span.id);
            if self.span_order.len() >= 2 * MAX_SPANS.max(self.spans.len()) {
                let spans = &self.spans;
                self.span_order.retain(|id| spans.contains_key(id));
            }
        }
        self.spans.insert(span.id, span);
    }

    /// An event on the innermost span it belongs to; what it adds to a child span counts towards
    /// its `max_span_bytes` (a span keeps up to `max_events` of them).
    pub(super) fn add_event(
        &mut self,
        agent_id: Option<&str>,
        prompt_id: Option<&str>,
        e: SpanEvent,
        max_events: usize,
    ) {
        let weight = event_bytes(&e);
        let top = self.top.id;
        let span = self.target(agent_id, prompt_id);
        let kept = span.events.len() < max_events && span.id != top;
        span.add_event(e, max_events);
        if kept {
            span.weight += weight;
            self.span_bytes += weight;
            self.make_room(0);
        }
    }

    /// Remove a child span, giving back its weight.
    pub(super) fn take_span(&mut self, id: &SpanId) -> Option<OpenSpan> {
        let span = self.spans.remove(id)?;
        self.span_bytes = self.span_bytes.saturating_sub(span.weight);
        Some(span)
    }

    /// At `MAX_SPANS` or `max_span_bytes`, hand out the oldest spans (into `evicted`) until there is room for one more.
    fn make_room(&mut self, weight: usize) {
        while self.spans.len() >= MAX_SPANS || self.span_bytes + weight > self.max_span_bytes {
            let Some(id) = self.span_order.pop_front() else { return };
            self.evict(id);
        }
    }

    /// Hand out the oldest spans (into `evicted`, as at `MAX_SPANS`) until the session holds about
    /// `goal` bytes, or no child span is left: the sessions' share of the memory budget is full.
    pub(super) fn shed(&mut self, goal: usize) {
        let mut held = self.held();
        while held > goal {
            let Some(id) = self.span_order.pop_front() else { return };
            if let Some(span) = self.spans.get(&id) {
                held = held.saturating_sub(span.held());
                self.evict(id);
            }
        }
    }

    /// Hand a child span out now (into `evicted`), closed as incomplete if it is still open.
    fn evict(&mut self, id: SpanId) {
        let Some(mut span) = self.take_span(&id) else { return };
        if span.closed_at.is_none() {
            span.close_incomplete(span.end, self.last_seen);
            if span.key == SpanKey::Tool {
                span.tool = Some(ToolRun { status: ToolStatus::Incomplete, duration_ms: None, pull_request: None });
            }
        }
        self.compactions.retain(|_, c| *c != id);
        self.handed_out.insert(id);
        let record = self.record(span);
        self.evicted.push(record);
    }

    /// About the bytes the session holds now: its spans (events included), the ids it remembers,
    /// the reports waiting for their match. What the sessions' share of the memory budget counts.
    pub(super) fn held(&self) -> usize {
        let spans = self.top.held() + self.spans.values().map(OpenSpan::held).sum::<usize>();
        let ids = self.turns.len()
            + self.agents.len()
            + self.tools.len()
            + self.spawned_by.len()
            + self.unclaimed_agent_calls.len()
            + self.early_usage.len()
            + self.teammates.len()
            + self.pane_spawns.len()
            + self.reads.len();
        let span_ids = self.handed_out.len() + self.span_order.len() + self.compactions.len();
        SESSION_BYTES
            + spans
            + ids * ID_BYTES
            + span_ids * SPAN_ID_BYTES
            + self.native.held()
            + self.checkout.as_ref().map_or(0, Checkout::bytes)
            + self.evicted.len() * 1024
            + self.unnamed.held()
    }

    /// The innermost span for a span event: the subagent, an open compaction, the turn (named, or
    /// else the one open now), the root.
    pub(super) fn target(&mut self, agent_id: Option<&str>, prompt_id: Option<&str>) -> &mut OpenSpan {
        let mut candidates = Vec::with_capacity(3);
        if let Some(aid) = agent_id {
            candidates.push(self.span_id(SpanKey::Subagent, aid));
        }
        candidates.extend(self.compactions.values().copied());
        if let Some(pid) = prompt_id {
            candidates.push(self.span_id(SpanKey::Turn, pid));
        }
        if prompt_id.is_none() {
            // no turn named: the turn open now, if any
            let open_turn = self
                .spans
                .values()
                .filter(|s| s.key == SpanKey::Turn && s.closed_at.is_none())
                .max_by_key(|s| s.start)
                .map(|s| s.id);
            candidates.extend(open_turn);
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

    /// Close a session that no end event closed (idle, or evicted): everything open, at its latest
    /// time, the session itself marked incomplete.
    pub(super) fn close_idle(&mut self, now: u64) {
        self.close_all(self.latest(), now);
        self.top.incomplete = true;
    }

    /// Close every open span (incomplete) and the top span at `at`.
    fn close_all(&mut self, at: u64, now: u64) {
        for span in self.spans.values_mut().filter(|s| s.closed_at.is_none()) {
            span.close_incomplete(at, now);
            if span.key == SpanKey::Tool {
                span.tool = Some(ToolRun { status: ToolStatus::Incomplete, duration_ms: None, pull_request: None });
            }
        }
        self.compactions.clear();
        self.top.close(at.max(self.top.end), now);
    }

    /// Move closed child spans that have waited `settle` out of the session.
    /// (Model and tool calls wait `native_settle`, the session's [`Native::wait`]: Claude Code's report
    /// of them can come later; turns and subagents wait for the transcript read their end asked for,
    /// see `reads`.)
    pub(super) fn hand_out_settled(&mut self, now: u64, settle: u64, native_settle: u64, out: &mut Vec<SpanRecord>) {
        if self.teams_on && self.team.is_none() && !self.turn_ended && now != u64::MAX {
            return; // its team may still form: its spans wait to carry it
        }
        let ready: Vec<SpanId> = self
            .spans
            .values()
            .filter(|s| {
                let settle = if matches!(s.key, SpanKey::Chat | SpanKey::Tool) { native_settle } else { settle };
                let waits = s.held || self.awaits_read(s);
                (!waits || now == u64::MAX) && s.closed_at.is_some_and(|c| now.saturating_sub(c) >= settle)
            })
            .map(|s| s.id)
            .collect();
        for id in ready {
            if let Some(span) = self.take_span(&id) {
                self.handed_out.insert(id);
                let record = self.record(span);
                out.push(record);
            }
        }
    }

    /// Whether a read of the transcript that holds its last response is still awaited: the
    /// session's own for a turn, the subagent's own for a subagent.
    fn awaits_read(&self, span: &OpenSpan) -> bool {
        match (span.key, &span.parent) {
            (SpanKey::Turn, _) => self.reads.awaits(None),
            // a subagent's calls are in its own log (Codex's subagents)
            (SpanKey::Tool, Parent::Agent(aid, _)) if self.agent.tool_outcome_in_log() => self.reads.awaits(Some(aid)),
            (SpanKey::Tool, _) if self.agent.tool_outcome_in_log() => self.reads.awaits(None),
            (SpanKey::Subagent, Parent::Spawner(aid, _)) => self.reads.awaits(Some(aid)),
            _ => false,
        }
    }

    /// The prompt id of the latest turn still open, if any.
    pub(super) fn open_turn(&self) -> Option<String> {
        let open = |pid: &&String| self.spans.get(&self.span_id(SpanKey::Turn, pid)).filter(|s| s.closed_at.is_none());
        self.turns.iter().filter_map(|pid| Some((open(&pid)?.start, pid))).max().map(|(_, pid)| pid.clone())
    }

    fn resolve(&self, parent: &Parent) -> SpanId {
        let turn = |pid: &Option<String>| match pid {
            Some(p) if self.turns.contains(p) => self.span_id(SpanKey::Turn, p),
            _ => self.top.id,
        };
        match parent {
            Parent::Root => self.top.id,
            Parent::Turn(pid) => turn(pid),
            Parent::TurnAt(at) => turn(&self.turn_started_by(*at)),
            Parent::Agent(aid, pid) if self.agents.contains(aid) => self.span_id(SpanKey::Subagent, aid),
            Parent::Agent(_, pid) => turn(pid),
            Parent::Spawner(aid, pid) => match self.spawned_by.get(aid) {
                Some(call) if self.tools.contains(call) => self.span_id(SpanKey::Tool, call),
                _ => turn(pid),
            },
        }
    }

    pub(super) fn record(&self, span: OpenSpan) -> SpanRecord {
        // one search by team finds every agent's spans, the lead's too
        let team = self.team.as_ref().map(|team| {
            let teammate = match &span.parent {
                Parent::Agent(aid, _) | Parent::Spawner(aid, _) => self.teammates.get(aid).cloned(),
                _ => None,
            };
            let agent = teammate.or_else(|| self.teammate_name.clone()).unwrap_or_else(|| LEAD_AGENT.into());
            TeamMember { team: team.clone(), agent }
        });
        let parent = match span.key {
            SpanKey::Root => None,
            SpanKey::Segment => Some(self.root_id),
            _ => Some(self.resolve(&span.parent)),
        };
        let mut attrs = span.attrs;
        if let Some(user) = &self.user {
            attrs.push(KeyValue::new(semconv::USER_ID, user.clone()));
        }
        SpanRecord {
            parent,
            attrs,
            events: span.events,
            dropped_events: span.dropped_events,
            status: span.status,
            agent: self.agent,
            project: self.project.clone(),
            repo: self.checkout.as_ref().map(|c| c.repo.clone()).unwrap_or_default(),
            incomplete: span.incomplete,
            usage: span.usage.map(|u| *u),
            tool: span.tool,
            turn: span.turn,
            chat: span.chat,
            links: span.links,
            team,
            subject: span.subject,
            ..SpanRecord::new(
                self.trace_id,
                span.id,
                span.key,
                span.name,
                (span.start, span.end),
                self.session_id.clone(),
            )
        }
    }
}

/// Replace a checkout's attributes with those of `c`.
fn set_checkout(attrs: &mut Vec<KeyValue>, c: &Checkout) {
    attrs.retain(|kv| !checkout::ATTRIBUTES.contains(&kv.key.as_str()));
    attrs.extend(c.attributes());
}

/// `Agent` is the subagent tool's name; older Claude Code called it `Task`.
fn is_agent_tool(name: &str) -> bool {
    name == "Agent" || name == "Task"
}
