//! Session state: the open spans of every live session, pairing start and end events into spans,
//! and the timeouts that close what never ends.
//!
//! Pure: no I/O and no clock. `ingest` takes an event, `tick` takes the current time and hands back
//! the spans that are finished. Hook processes run concurrently, so events arrive slightly out of
//! order: a closed span waits a short *settle* time before it is handed out, during which a late
//! event can still amend it (an earlier start, the real end of a span closed as incomplete).
//!
//! Here: [`Sessions`], every live session and a memory of the ended ones (opening, resuming and
//! evicting sessions, usage, handing spans out), with its [`Settings`]. Each session is its own
//! [`SessionState`], in `state` (one handler per event kind); its spans, while open, are `span`'s
//! `OpenSpan`. What reaches across sessions (agent teams, their tasks) is in `teams`, what Claude
//! Code's own telemetry does to a session in `native`, the transcript reads that closed spans wait
//! for in `reads`, and the tests in `tests`. A session's checkout (repository, branch, ticket) is
//! looked up by `vcs` and set on its root and turns as it arrives.

use std::collections::{HashMap, VecDeque};

use opentelemetry::trace::SpanId;

use crate::model::agent::PerAgent;
use crate::model::capture::Capture;
use crate::model::checkout::Checkout;
use crate::model::event::Event;
use crate::model::ids::{self, SessionId, SpanKey};
use crate::model::semconv::ModelEndpoint;
use crate::model::span::{SpanEvent, SpanRecord};
use crate::usage::accountant::{SessionUsage, TranscriptRead};
use crate::vcs::Located;

mod native;
mod reads;
mod span;
mod state;
pub(crate) mod teams;
#[cfg(test)]
mod tests;
mod unnamed;

use span::{OpenSpan, Parent};
use state::SessionState;
use teams::{TaskDone, TeamNote, Teams};

/// Timeouts and limits of the state machine.
#[derive(Clone, Debug)]
pub struct Settings {
    /// A session with no event for this long is closed, its open spans marked incomplete.
    pub(crate) idle_timeout_ns: u64,
    /// How long a closed span waits for late events before it is handed out.
    pub(crate) settle_ns: u64,
    /// Span events kept per span; more are counted as dropped (OpenTelemetry's default limit).
    pub(crate) max_events_per_span: usize,
    /// How long an ended session is remembered, so that a `--resume` continues its trace.
    pub(crate) ended_ttl_ns: u64,
    /// Most ended sessions remembered; the oldest are forgotten first.
    pub(crate) max_ended: usize,
    /// What may leave the machine: at `none`, not even the session's working directory and transcript path.
    pub(crate) capture: Capture,
    /// Most sessions open at once; a new one past it closes the one idle longest (incomplete).
    pub(crate) max_sessions: usize,
    /// How long model and tool calls, and the end of a session, wait (at least) for the reports
    /// Claude Code exports in batches, last when it exits: when its telemetry is expected (the OTLP
    /// receiver is on), or a session has sent some. A session whose batches take longer to arrive
    /// waits that long (plus a margin, 15 s at most): see `native::Native::wait`.
    pub(crate) native_settle_ns: u64,
    /// Whether Claude Code's telemetry may come (`--otlp-listen` is on).
    pub(crate) native_expected: bool,
    /// What all open sessions may hold together, in bytes (the sessions' share of the memory
    /// budget); past it the heaviest sessions hand out their oldest spans, and are closed if that
    /// is not enough.
    pub(crate) max_state_bytes: usize,
    /// What one session's child spans may hold, in bytes; past it its oldest are handed out.
    pub(crate) max_span_bytes: usize,
    /// `user.id` of every span (`HOOKTEL_USER_ID`); without it, the account Claude Code's telemetry
    /// names, where the capture level lets identity out.
    pub(crate) user_id: Option<String>,
    /// Where model calls go: `server.address` and `server.port` of chat spans.
    pub(crate) endpoint: ModelEndpoint,
}

impl Default for Settings {
    fn default() -> Self {
        let shares = crate::model::budget::Shares::of(crate::model::budget::DEFAULT);
        Settings {
            idle_timeout_ns: 3600 * SEC,
            settle_ns: SEC,
            max_events_per_span: 128,
            ended_ttl_ns: 24 * 3600 * SEC,
            max_ended: 100_000,
            capture: Capture::Metadata,
            // about 8 KB a session, 33 KB with the longest fields: 5,000 stay inside 256 MiB
            max_sessions: 5_000,
            native_settle_ns: 3 * SEC,
            native_expected: false,
            max_state_bytes: shares.sessions,
            max_span_bytes: shares.session_spans,
            user_id: None,
            endpoint: ModelEndpoint::default(),
        }
    }
}

const SEC: u64 = crate::model::time::NS_PER_SEC;

/// What `ingest` did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingested {
    Accepted,
    /// Accepted, and opening its session closed the session idle longest (the cap was reached).
    AcceptedEvicting,
    /// It belonged to a session already handed out; counted, not applied.
    Late,
}

/// Every live session, plus a memory of recently ended ones.
pub struct Sessions {
    settings: Settings,
    live: HashMap<SessionId, SessionState>,
    /// Ended sessions by session UUID. Keyed by a number, not a `String`: a tombstone allocated
    /// into the memory its session just freed would pin that memory for a day.
    ended: HashMap<u128, Ended>,
    /// Ended sessions in the order they ended, to forget the oldest first.
    ended_order: VecDeque<(u64, u128)>,
    /// Agent teams across sessions: leads, and tasks waiting for their completion.
    teams: Teams,
    /// Spans handed out early because their session held `state::MAX_SPANS`, by kind, since last taken.
    evicted: Evicted,
    /// What the open sessions hold, about, in bytes: the sum of their `counted`.
    held: usize,
}

/// Spans handed out early at a session's `MAX_SPANS` or the memory budget, by kind; sessions
/// closed by the memory budget or the cap on open sessions, by agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Evicted {
    pub(crate) tool: u64,
    pub(crate) subagent: u64,
    pub(crate) other: u64,
    pub(crate) sessions: PerAgent,
}

/// What is kept of an ended session: enough to hang a resumed segment under its root.
struct Ended {
    root: SpanId,
    end: u64,
    /// Wall time it was noted; matches its entry in `ended_order`.
    noted: u64,
}

impl Sessions {
    pub fn new(settings: Settings) -> Sessions {
        Sessions {
            settings,
            live: HashMap::new(),
            ended: HashMap::new(),
            ended_order: VecDeque::new(),
            teams: Teams::default(),
            evicted: Evicted::default(),
            held: 0,
        }
    }

    /// What the open sessions hold, about, in bytes.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// An event (or usage) of `sid` may have added `bytes` to what it holds: counted now, counted
    /// exactly at the next tick; past the sessions' share of the memory budget, room is made.
    fn grew(&mut self, sid: &str, bytes: usize, now: u64, out: &mut Vec<SpanRecord>) {
        let Some(state) = self.live.get_mut(sid) else { return };
        state.counted += bytes;
        state.dirty = true;
        self.held += bytes;
        if self.held > self.settings.max_state_bytes {
            self.make_room(now, out);
        }
    }

    /// Count again, exactly, what each session changed since it was last counted holds.
    fn recount(&mut self) {
        for state in self.live.values_mut().filter(|s| s.dirty) {
            let held = state.held();
            self.held = self.held - state.counted + held;
            state.counted = held;
            state.dirty = false;
        }
    }

    /// The open sessions hold more than their share of the memory budget: the heaviest first hand
    /// out their oldest spans (as at `MAX_SPANS`), until each holds half as much; one that still
    /// does (what it holds is not spans) is closed and handed out whole; until the sessions hold
    /// under seven eighths of their share, so that this runs seldom (an eighth of the share must be
    /// added before it runs again). A flood in a few sessions is paid for by those sessions, not by
    /// the others.
    fn make_room(&mut self, now: u64, out: &mut Vec<SpanRecord>) {
        self.recount();
        // under seven eighths, the next exact count is at least an eighth of the share away
        let goal = self.settings.max_state_bytes / 8 * 7;
        if self.held <= goal {
            return;
        }
        let mut heaviest: Vec<(usize, SessionId)> = self.live.iter().map(|(k, s)| (s.counted, k.clone())).collect();
        heaviest.sort_unstable_by_key(|(counted, _)| std::cmp::Reverse(*counted));
        for (counted, sid) in heaviest {
            if self.held <= goal {
                break;
            }
            let Some(state) = self.live.get_mut(&sid) else { continue };
            state.shed(counted / 2);
            state.dirty = true;
            self.hand_out_evicted(&sid, out);
            self.recount();
            let Some(state) = self.live.get_mut(&sid) else { continue };
            if state.counted > counted / 2 {
                if state.top.closed_at.is_none() {
                    state.close_idle(now);
                }
                self.evicted.sessions.add(state.agent, 1);
                self.finish(&sid, out);
            }
        }
    }

    /// Spans evicted since the last call, by kind (for the metrics).
    pub(crate) fn take_evicted(&mut self) -> Evicted {
        std::mem::take(&mut self.evicted)
    }

    /// Hand out what the session's `MAX_SPANS` evicted, and count it.
    fn hand_out_evicted(&mut self, sid: &str, out: &mut Vec<SpanRecord>) {
        let Some(state) = self.live.get_mut(sid) else { return };
        for rec in state.evicted.drain(..) {
            match rec.key {
                SpanKey::Tool => self.evicted.tool += 1,
                SpanKey::Subagent => self.evicted.subagent += 1,
                _ => self.evicted.other += 1,
            }
            out.push(rec);
        }
    }

    /// A session's checkout was looked up (see [`SessionState::located`]); nothing when its `cwd`
    /// is in no repository, or the session is gone.
    pub(crate) fn located(&mut self, l: Located) {
        let (Some(found), Some(state)) = (l.checkout, self.live.get_mut(&l.session_id)) else { return };
        state.located(l.prompt_id.as_deref(), found);
    }

    /// Where a session works, as far as the metrics' labels go: its repository and branch.
    pub(crate) fn checkout(&self, sid: &str) -> Option<&Checkout> {
        self.live.get(sid).and_then(|s| s.checkout.as_ref())
    }

    /// Whether a session is held (open, or ended and settling).
    pub(crate) fn holds(&self, sid: &str) -> bool {
        self.live.contains_key(sid)
    }

    /// Sessions currently open.
    pub(crate) fn active(&self) -> usize {
        self.live.len()
    }

    /// Teammates at work or idle now: in-process ones whose session is open, and pane teammates'
    /// open sessions.
    pub(crate) fn teammates_active(&self) -> usize {
        self.live
            .values()
            .filter(|s| s.top.closed_at.is_none())
            .map(|s| s.teammates.len() + usize::from(s.teammate_name.is_some()))
            .sum()
    }

    /// Apply one event. `now` is the wall time in Unix nanoseconds.
    pub fn ingest(&mut self, ev: Event, now: u64, out: &mut Vec<SpanRecord>) -> Ingested {
        if ev.native() {
            // Claude Code's telemetry only adds to a session still held: it never opens or resumes one
            if !self.live.contains_key(&ev.session_id) {
                return Ingested::Late;
            }
            self.apply(ev, now, out);
            return Ingested::Accepted;
        }
        if let Some(state) = self.live.get(&ev.session_id) {
            // an event fired after the session ended starts a resumed segment
            if state.top.closed_at.is_some() && ev.at > state.top.end {
                self.finish(&ev.session_id, out);
            }
        }
        if !self.live.contains_key(&ev.session_id) {
            let resumed = match self.ended.get(&ids::session_key(&ev.session_id)) {
                Some(e) if ev.at <= e.end => return Ingested::Late,
                Some(e) => Some(e.root),
                None => None,
            };
            let evicted = self.live.len() >= self.settings.max_sessions.max(1) && self.evict_idlest(now, out);
            let state = SessionState::open(&ev, resumed, &self.settings);
            self.live.insert(ev.session_id.clone(), state);
            self.apply(ev, now, out);
            return if evicted { Ingested::AcceptedEvicting } else { Ingested::Accepted };
        }
        self.apply(ev, now, out);
        Ingested::Accepted
    }

    /// Apply an event to its open session, hand out what that evicted, place its team's work, and
    /// count what it may have added.
    fn apply(&mut self, ev: Event, now: u64, out: &mut Vec<SpanRecord>) {
        let note = if ev.native() { None } else { Some(TeamNote::of(&ev)) };
        let max = self.settings.max_events_per_span;
        let sid = ev.session_id.clone();
        let bytes = event_bytes(&ev);
        if let Some(state) = self.live.get_mut(&sid) {
            state.apply(ev, now, max);
        }
        self.hand_out_evicted(&sid, out);
        if let Some(note) = note {
            self.teamwork(note, now);
        }
        self.grew(&sid, bytes, now, out);
    }

    /// Hand out spans that have settled, and close sessions idle for too long. Returns how many
    /// sessions the idle timeout closed, by agent.
    pub fn tick(&mut self, now: u64, out: &mut Vec<SpanRecord>) -> PerAgent {
        let (settle, idle) = (self.settings.settle_ns, self.settings.idle_timeout_ns);
        let mut finished = Vec::new();
        let mut idled = PerAgent::default();
        for (sid, state) in self.live.iter_mut() {
            state.reads.expire(now);
            if state.top.closed_at.is_none() && now.saturating_sub(state.last_seen) >= idle {
                state.close_idle(now);
                idled.add(state.agent, 1);
            }
            let native_settle =
                state.native.wait(self.settings.native_expected, settle, self.settings.native_settle_ns);
            match state.top.closed_at {
                // an ended session also waits for the last reads of its transcripts
                Some(closed) if now.saturating_sub(closed) >= native_settle && state.reads.is_empty() => {
                    finished.push(sid.clone())
                }
                _ => {
                    let before = out.len();
                    state.hand_out_settled(now, settle, native_settle, out);
                    state.dirty |= out.len() > before;
                }
            }
        }
        for sid in finished {
            self.finish(&sid, out);
        }
        self.recount();
        // a map keeps its capacity: give it back once most sessions have ended
        if self.live.capacity() > 1024 && self.live.len() < self.live.capacity() / 4 {
            self.live.shrink_to(self.live.len() * 2);
        }
        self.forget_ended(now);
        idled
    }

    /// Close the session whose last event is oldest, as the idle timeout would, and hand it out.
    fn evict_idlest(&mut self, now: u64, out: &mut Vec<SpanRecord>) -> bool {
        let Some(sid) = self.live.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| k.clone()) else {
            return false;
        };
        if let Some(state) = self.live.get_mut(&sid) {
            self.evicted.sessions.add(state.agent, 1);
            if state.top.closed_at.is_none() {
                state.close_idle(now);
            }
        }
        self.finish(&sid, out);
        true
    }

    /// Remember, from the journal, a session that ended before a restart.
    pub(crate) fn restore_ended(&mut self, sid: &str, root: SpanId, end: u64, now: u64) {
        let key = ids::session_key(sid);
        self.ended.insert(key, Ended { root, end, noted: now });
        self.ended_order.push_back((now, key));
    }

    /// After a replay from the journal: the spans that were handed out before the restart are not
    /// handed out again.
    pub(crate) fn forget_handed_out(&mut self, sid: &str, handed_out: &[SpanId]) {
        let Some(state) = self.live.get_mut(sid) else { return };
        for id in handed_out {
            state.take_span(id);
            state.handed_out.insert(*id);
        }
    }

    /// A turn's end in `sid` asked for a read of `agent`'s transcript (`None`: the session's own):
    /// the span it closed, and the session's end, wait for one that starts at `due` or later (its
    /// usage comes first), or until `expires`.
    pub(crate) fn await_read(&mut self, sid: &str, agent: Option<&str>, due: u64, expires: u64) {
        if let Some(state) = self.live.get_mut(sid) {
            state.reads.expect(agent, due, expires);
        }
    }

    /// The accountant read a transcript (or will never read it): the spans waiting for it may go.
    pub(crate) fn transcript_read(&mut self, r: &TranscriptRead) {
        if let Some(state) = self.live.get_mut(&r.session_id) {
            state.reads.read(r.agent_id.as_deref(), r.read);
        }
    }

    /// Put newly counted usage on the spans it belongs to that are still open or settling: the
    /// subagent it was made in, else its turn; and always the session root.
    pub(crate) fn add_usage(&mut self, u: &SessionUsage, now: u64) {
        let Some(state) = self.live.get_mut(&u.session_id) else { return };
        let d = &u.delta;
        if let Some(origin) = &d.forked_from {
            state.forked_from(origin);
            return;
        }
        if let Some(failure) = &d.tool_failure {
            state.tool_failed(&failure.call_id, &failure.message);
            return;
        }
        if let Some(response) = &d.response {
            state.chat(d, response, now);
        }
        let inner = match (&d.agent_id, state.turn_of(d)) {
            (Some(aid), _) => Some(state.span_id(SpanKey::Subagent, aid)),
            (None, Some(pid)) => Some(state.span_id(SpanKey::Turn, &pid)),
            (None, None) => None,
        };
        if let Some(id) = inner.filter(|id| !state.handed_out.contains(id)) {
            let usage = match state.spans.get_mut(&id) {
                Some(span) => span.usage.get_or_insert_with(Default::default),
                None => state.early_usage.entry(id).or_default(),
            };
            usage.add(&d.model, d.usage, d.cost);
        }
        state.top.usage.get_or_insert_with(Default::default).add(&d.model, d.usage, d.cost);
    }

    /// A span event on the session's root (or, in a resumed run, its segment) while it is open: what
    /// a budget's threshold crossing marks. Not held to the span's event limit: a session crosses each
    /// of a few thresholds once.
    pub(crate) fn root_event(&mut self, sid: &str, e: SpanEvent) {
        if let Some(state) = self.live.get_mut(sid) {
            state.top.events.push(e);
        }
    }

    /// Hand out every span that is closed, settled or not (on shutdown). Open spans stay.
    pub(crate) fn flush_closed(&mut self, out: &mut Vec<SpanRecord>) {
        let ended: Vec<SessionId> =
            self.live.iter().filter(|(_, s)| s.top.closed_at.is_some()).map(|(k, _)| k.clone()).collect();
        for sid in ended {
            self.finish(&sid, out);
        }
        for state in self.live.values_mut() {
            state.hand_out_settled(u64::MAX, 0, 0, out);
        }
    }

    /// Hand out everything of an ended session and remember that it ended.
    fn finish(&mut self, sid: &str, out: &mut Vec<SpanRecord>) {
        let Some(mut state) = self.live.remove(sid) else { return };
        self.held -= state.counted;
        let end = state.top.end;
        // the tasks it created that nobody completed: incomplete, in its own trace
        for (task_id, created) in self.teams.left_open_by(sid) {
            let list = state.team.clone().unwrap_or_else(|| teams::own_team(sid));
            let done = TaskDone { list, task_id, subject: None, at: end, prompt_id: None, agent_id: None };
            state.task_span(done, Some(created), true, end);
        }
        state.hand_out_settled(u64::MAX, 0, 0, out);
        let top = std::mem::replace(
            &mut state.top,
            OpenSpan::new(SpanId::INVALID, SpanKey::Root, String::new(), 0, Parent::Root, vec![]),
        );
        out.push(state.record(top));
        let noted = state.last_seen;
        let key = ids::session_key(sid);
        self.ended.insert(key, Ended { root: state.root_id, end, noted });
        self.ended_order.push_back((noted, key));
    }

    fn forget_ended(&mut self, now: u64) {
        while let Some((at, sid)) = self.ended_order.front() {
            let expired = now.saturating_sub(*at) >= self.settings.ended_ttl_ns;
            if !expired && self.ended_order.len() <= self.settings.max_ended {
                break;
            }
            // a session that ended again later has a newer entry; only drop the matching one
            if self.ended.get(sid).is_some_and(|e| e.noted == *at) {
                self.ended.remove(sid);
            }
            self.ended_order.pop_front();
        }
    }
}

/// What an event may add to its session, about, in bytes (its payload for the journal aside).
fn event_bytes(ev: &Event) -> usize {
    ev.bytes() - ev.raw.len()
}
