//! Session state: the open spans of every live session, pairing start and end events into spans,
//! and the timeouts that close what never ends.
//!
//! Pure: no I/O and no clock. `ingest` takes an event, `tick` takes the current time and hands back
//! the spans that are finished. Hook processes run concurrently, so events arrive slightly out of
//! order: a closed span waits a short *settle* time before it is handed out, during which a late
//! event can still amend it (an earlier start, the real end of a span closed as incomplete). Each
//! session is its own [`SessionState`]; what reaches across sessions (agent teams, their tasks) is
//! in `teams`, and what Claude Code's own telemetry does to a session in `native`.

use std::collections::{HashMap, VecDeque};

use opentelemetry::trace::SpanId;

use crate::model::capture::Capture;
use crate::model::event::Event;
use crate::model::ids::{self, SpanKey};
use crate::model::span::SpanRecord;
use crate::usage::accountant::SessionUsage;

mod native;
mod span;
mod state;
pub(crate) mod teams;

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
    /// receiver is on), or a session has sent some.
    pub(crate) native_settle_ns: u64,
    /// Whether Claude Code's telemetry may come (`--otlp-listen` is on).
    pub(crate) native_expected: bool,
}

impl Default for Settings {
    fn default() -> Self {
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
        }
    }
}

const SEC: u64 = 1_000_000_000;

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
    live: HashMap<String, SessionState>,
    /// Ended sessions by session UUID. Keyed by a number, not a `String`: a tombstone allocated
    /// into the memory its session just freed would pin that memory for a day.
    ended: HashMap<u128, Ended>,
    /// Ended sessions in the order they ended, to forget the oldest first.
    ended_order: VecDeque<(u64, u128)>,
    /// Agent teams across sessions: leads, and tasks waiting for their completion.
    teams: Teams,
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
        }
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
            let max_events = self.settings.max_events_per_span;
            return match self.live.get_mut(&ev.session_id) {
                Some(state) => {
                    state.apply(ev, now, max_events);
                    Ingested::Accepted
                }
                None => Ingested::Late,
            };
        }
        if let Some(state) = self.live.get(&ev.session_id) {
            // an event fired after the session ended starts a resumed segment
            if state.top.closed_at.is_some() && ev.at > state.top.end {
                self.finish(&ev.session_id, out);
            }
        }
        if !self.live.contains_key(&ev.session_id) {
            let resumed = match self.ended.get(&ids::session_uuid(&ev.session_id).as_u128()) {
                Some(e) if ev.at <= e.end => return Ingested::Late,
                Some(e) => Some(e.root),
                None => None,
            };
            let evicted = self.live.len() >= self.settings.max_sessions.max(1) && self.evict_idlest(now, out);
            let state = SessionState::open(&ev, resumed, self.settings.capture);
            self.live.insert(ev.session_id.clone(), state);
            let note = TeamNote::of(&ev);
            let max = self.settings.max_events_per_span;
            if let Some(state) = self.live.get_mut(&ev.session_id) {
                state.apply(ev, now, max);
            }
            self.teamwork(note, now);
            return if evicted { Ingested::AcceptedEvicting } else { Ingested::Accepted };
        }
        let note = TeamNote::of(&ev);
        let max = self.settings.max_events_per_span;
        if let Some(state) = self.live.get_mut(&ev.session_id) {
            state.apply(ev, now, max);
        }
        self.teamwork(note, now);
        Ingested::Accepted
    }

    /// Hand out spans that have settled, and close sessions idle for too long. Returns how many
    /// sessions the idle timeout closed.
    pub fn tick(&mut self, now: u64, out: &mut Vec<SpanRecord>) -> usize {
        let (settle, idle) = (self.settings.settle_ns, self.settings.idle_timeout_ns);
        let mut finished = Vec::new();
        let mut idled = 0;
        for (sid, state) in self.live.iter_mut() {
            if state.top.closed_at.is_none() && now.saturating_sub(state.last_seen) >= idle {
                state.close_idle(now);
                idled += 1;
            }
            let native = self.settings.native_expected || state.native.seen;
            let native_settle = if native { settle.max(self.settings.native_settle_ns) } else { settle };
            match state.top.closed_at {
                Some(closed) if now.saturating_sub(closed) >= native_settle => finished.push(sid.clone()),
                _ => state.hand_out_settled(now, settle, native_settle, out),
            }
        }
        for sid in finished {
            self.finish(&sid, out);
        }
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
        if let Some(state) = self.live.get_mut(&sid).filter(|s| s.top.closed_at.is_none()) {
            state.close_idle(now);
        }
        self.finish(&sid, out);
        true
    }

    /// Remember, from the journal, a session that ended before a restart.
    pub(crate) fn restore_ended(&mut self, sid: &str, root: SpanId, end: u64, now: u64) {
        let key = ids::session_uuid(sid).as_u128();
        self.ended.insert(key, Ended { root, end, noted: now });
        self.ended_order.push_back((now, key));
    }

    /// After a replay from the journal: the spans that were handed out before the restart are not
    /// handed out again.
    pub(crate) fn forget_handed_out(&mut self, sid: &str, handed_out: &[SpanId]) {
        let Some(state) = self.live.get_mut(sid) else { return };
        for id in handed_out {
            state.spans.remove(id);
            state.handed_out.insert(*id);
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
        if let Some(response) = &d.response {
            state.chat(d, response, now);
        }
        let inner = match (&d.agent_id, &d.prompt_id) {
            (Some(aid), _) => Some(state.span_id(SpanKey::Subagent, aid)),
            (None, Some(pid)) => Some(state.span_id(SpanKey::Turn, pid)),
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

    /// Hand out every span that is closed, settled or not (on shutdown). Open spans stay.
    pub(crate) fn flush_closed(&mut self, out: &mut Vec<SpanRecord>) {
        let ended: Vec<String> =
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
        let key = ids::session_uuid(sid).as_u128();
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

#[cfg(test)]
pub(crate) mod tests {
    use super::state::{MAX_NATIVE, MAX_TEAMMATES};
    use super::*;
    use crate::ingest::agents::claude_code::normalize;
    use crate::model::capture::Capture;
    use crate::model::event::Kind;
    use crate::model::span::{SpanLink, SpanUsage, Status};
    use crate::testdata::Rng;
    use crate::testdata::CAPTURED;
    use serde_json::{json, Value};
    use std::collections::HashSet;

    const MS: u64 = 1_000_000;
    const S1: &str = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";

    fn event(payload: &Value, at: u64) -> Event {
        normalize(payload.as_object().unwrap(), at, Capture::Metadata).unwrap()
    }

    fn settings() -> Settings {
        Settings { settle_ns: 100 * MS, idle_timeout_ns: 60_000 * MS, ..Settings::default() }
    }

    /// Feed (payload, firing time) pairs, all received at `now`, then let everything settle.
    fn run(events: &[(Value, u64)]) -> Vec<SpanRecord> {
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        for (p, at) in events {
            s.ingest(event(p, *at), *at, &mut out);
        }
        s.tick(u64::MAX / 2, &mut out);
        out
    }

    fn captured() -> Vec<(Value, u64)> {
        CAPTURED
            .iter()
            .enumerate()
            .map(|(i, p)| (serde_json::from_str(p).unwrap(), 1_000 * MS + i as u64 * 10 * MS))
            .collect()
    }

    fn named<'a>(spans: &'a [SpanRecord], name: &str) -> Vec<&'a SpanRecord> {
        spans.iter().filter(|s| s.name == name).collect()
    }

    /// One root, no dangling parent, no span twice.
    fn assert_tree(spans: &[SpanRecord]) {
        let roots: Vec<_> = spans.iter().filter(|s| s.parent.is_none()).collect();
        assert_eq!(roots.len(), 1, "roots: {roots:?}");
        let ids: HashSet<SpanId> = spans.iter().map(|s| s.span_id).collect();
        assert_eq!(ids.len(), spans.len(), "a span id handed out twice");
        for s in spans {
            if let Some(p) = s.parent {
                assert!(ids.contains(&p), "dangling parent of {}", s.name);
            }
        }
    }

    fn tool(event: &str, id: &str, extra: Value) -> Value {
        let mut p = json!({"session_id": S1, "hook_event_name": event, "prompt_id": "p1",
                           "tool_name": "Bash", "tool_use_id": id, "tool_input": {"command": "ls"}});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    }

    fn simple(event: &str, extra: Value) -> Value {
        let mut p = json!({"session_id": S1, "hook_event_name": event, "prompt_id": "p1"});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    }

    /// Claude Code's own `api_request` events time each chat span exactly (it ends at the event and
    /// lasts its `duration_ms`), whether they come before the transcript is read or after; the time
    /// to the first token and the try are attributes; usage stays the transcript's.
    #[test]
    fn native_telemetry_times_the_model_calls() {
        use crate::model::otlp::Signal;
        use crate::testdata::{captured_deltas, captured_native, CAPTURED_AT};
        for native_first in [false, true] {
            let mut s = Sessions::new(settings());
            let mut out = Vec::new();
            for (i, p) in CAPTURED.iter().enumerate() {
                let at = CAPTURED_AT + i as u64 * 200 * MS;
                s.ingest(event(&serde_json::from_str(p).unwrap(), at), at, &mut out);
            }
            let natives: Vec<Event> = captured_native(Capture::Metadata, Signal::Logs)
                .into_iter()
                .filter(|e| matches!(e.kind, Kind::ModelCall(_)))
                .collect();
            assert_eq!(natives.len(), 5);
            let usage = |s: &mut Sessions| {
                for delta in captured_deltas() {
                    s.add_usage(&SessionUsage { session_id: S1.into(), delta }, CAPTURED_AT);
                }
            };
            if !native_first {
                usage(&mut s);
            }
            for ev in natives.clone() {
                let at = ev.at;
                assert_eq!(s.ingest(ev, at, &mut out), Ingested::Accepted);
            }
            if native_first {
                usage(&mut s);
            }
            s.tick(u64::MAX / 2, &mut out);
            let chats: Vec<&SpanRecord> = out.iter().filter(|r| r.key == SpanKey::Chat).collect();
            assert_eq!(chats.len(), 5, "native first: {native_first}");
            for ev in &natives {
                let Kind::ModelCall(call) = &ev.kind else { panic!("{:?}", ev.kind) };
                let rid = call.request_id.as_deref().unwrap();
                let chat = chats.iter().find(|c| c.attr("hooktel.api.request_id").as_deref() == Some(rid)).unwrap();
                assert_eq!((chat.start, chat.end), (ev.at - call.duration_ms * MS, ev.at), "{rid}");
                assert_eq!(chat.attr("hooktel.api.attempt").as_deref(), Some("1"));
                assert!(chat.attr("gen_ai.response.time_to_first_chunk").is_some());
                assert!(chat.usage.as_ref().is_some_and(|u| u.tokens.output > 0), "usage from the transcript");
            }
        }
    }

    /// A captured agent-team run (`tests/fixtures/teams/<run>/hooks.jsonl`): each payload as an
    /// event at its capture time.
    fn team_events(run: &str) -> Vec<Event> {
        let path = format!("{}/tests/fixtures/teams/{run}/hooks.jsonl", env!("CARGO_MANIFEST_DIR"));
        let lines = std::fs::read_to_string(path).unwrap();
        lines
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                event(&v["payload"], (v["ts"].as_f64().unwrap() * 1e9) as u64)
            })
            .collect()
    }

    /// A captured agent-team run through the state machine, everything handed out at the end.
    pub(crate) fn team_run(run: &str) -> Vec<SpanRecord> {
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        for ev in team_events(run) {
            let at = ev.at;
            s.ingest(ev, at, &mut out);
        }
        s.tick(u64::MAX / 2, &mut out);
        out
    }

    fn by_call<'a>(spans: &'a [SpanRecord], call: &str) -> &'a SpanRecord {
        spans.iter().find(|r| r.attr("gen_ai.tool.call.id").as_deref() == Some(call)).unwrap()
    }

    /// An in-process teammate (Claude Code 2.1.329 and 2.1.332): one span named for it under the
    /// `Agent` call that spawned it, from its first start to its last stop, its wake-up and idle
    /// periods as events, its tools under it; every span carries the team and its agent's name;
    /// the task it completed is a span from its creation by the lead to its completion.
    #[test]
    fn an_in_process_teammate_is_a_span_under_its_agent_call_with_its_task() {
        for (run, spawn) in [("in-process-2.1.332", "toolu_01qaVEetaQy42JWBldMsp4xn2t"), ("in-process-2.1.329", "")] {
            let spans = team_run(run);
            assert_tree(&spans);
            let mates: Vec<&SpanRecord> =
                spans.iter().filter(|r| r.attr("hooktel.agent.kind").as_deref() == Some("teammate")).collect();
            assert_eq!(mates.len(), 1, "{run}");
            let mate = mates[0];
            assert_eq!(mate.name, "invoke_agent worker");
            assert!(!mate.incomplete, "{run}: closed at its last stop");
            if !spawn.is_empty() {
                assert_eq!(mate.parent, Some(by_call(&spans, spawn).span_id), "{run}: under its Agent call");
                // started 6.49, stopped 9.07, woke 9.37, stopped 9.56 (s past 1796193000)
                let cs = |ns: u64| (ns + 5 * MS) / (10 * MS);
                assert_eq!((cs(mate.start), cs(mate.end)), (179_619_300_649, 179_619_300_956));
            }
            let idle = mate.events.iter().filter(|e| e.name == "TeammateIdle").count();
            let woke = mate.events.iter().filter(|e| e.name == "SubagentStart").count();
            assert!(idle >= 1 && woke >= 1, "{run}: wake-ups visible: {:?}", mate.events);
            let tools = spans.iter().filter(|r| r.key == SpanKey::Tool && r.parent == Some(mate.span_id)).count();
            assert!(tools >= 3, "{run}: the teammate's tools hang under it");
            for r in &spans {
                assert_eq!(
                    r.attr("hooktel.team.name").as_deref(),
                    Some(teams::own_team(&r.session_id).as_str()),
                    "{}",
                    r.name
                );
            }
            assert_eq!(mate.attr("hooktel.team.agent").as_deref(), Some("worker"));
            let root = spans.iter().find(|r| r.key == SpanKey::Root).unwrap();
            assert_eq!(root.attr("hooktel.team.agent").as_deref(), Some("team-lead"));
            let tasks: Vec<&SpanRecord> = spans.iter().filter(|r| r.key == SpanKey::Task).collect();
            assert_eq!(tasks.len(), 1, "{run}");
            assert_eq!(
                (tasks[0].name.as_str(), tasks[0].attr("hooktel.task.id").as_deref()),
                ("task Echo check", Some("1"))
            );
            assert_eq!(tasks[0].parent, Some(mate.span_id), "{run}: in the agent that completed it");
            assert!(tasks[0].end > tasks[0].start && !tasks[0].incomplete && tasks[0].links.is_empty());
        }
    }

    /// With agent teams on (the hook client says so), a session's spans wait until its team is
    /// known, so that every span of a team's traces carries the team and its agent's name, even
    /// handed out as the run goes (here: a tick 5 s after every event); without it, spans the
    /// session handed out before its team formed do not.
    #[test]
    fn with_agent_teams_on_every_span_carries_its_team() {
        for run in ["in-process-2.1.332", "tmux-panes-2.1.332"] {
            for teams_on in [true, false] {
                let mut s = Sessions::new(settings());
                let mut out = Vec::new();
                for mut ev in team_events(run) {
                    let at = ev.at;
                    ev.agent_teams = teams_on;
                    s.ingest(ev, at, &mut out);
                    s.tick(at + 5 * SEC, &mut out);
                }
                s.tick(u64::MAX / 2, &mut out);
                let bare: Vec<&str> =
                    out.iter().filter(|r| r.attr("hooktel.team.name").is_none()).map(|r| r.name.as_str()).collect();
                assert_eq!(bare.is_empty(), teams_on, "{run}, teams on {teams_on}: without the team: {bare:?}");
                assert!(out
                    .iter()
                    .all(|r| r.attr("hooktel.team.name").is_none() || r.attr("hooktel.team.agent").is_some()));
            }
        }
    }

    /// Teammates at work or idle count as active while their session is open; none once it ended.
    #[test]
    fn teammates_are_active_while_their_session_is_open() {
        for (run, active) in [("in-process-2.1.332", 1), ("tmux-panes-2.1.332", 1)] {
            let mut s = Sessions::new(settings());
            let mut out = Vec::new();
            let mut most = 0;
            for ev in team_events(run) {
                let at = ev.at;
                s.ingest(ev, at, &mut out);
                most = most.max(s.teammates_active());
            }
            assert_eq!(most, active, "{run}");
            assert_eq!(s.teammates_active(), 0, "{run}: every session ended");
        }
    }

    /// Pane teammates (tmux) are sessions of their own: the teammate's root links to its lead's,
    /// the lead's `Agent` call to the teammate's trace; both carry the team; the task the lead
    /// created and the teammate completed is a span in the teammate's trace, linked to the lead.
    #[test]
    fn a_pane_teammate_links_to_its_lead_and_back() {
        for (run, lead, mate, spawn) in [
            (
                "tmux-panes-2.1.332",
                "859c7e3e-8fa0-4df2-8d03-c77a415fe327",
                "34e8d59d",
                "toolu_01cvk1Vv2Bzz6DZ2dERsnIQcrz",
            ),
            ("tmux-panes-2.1.329", "", "", ""),
        ] {
            let spans = team_run(run);
            let roots: Vec<&SpanRecord> = spans.iter().filter(|r| r.key == SpanKey::Root).collect();
            assert_eq!(roots.len(), 2, "{run}");
            let team = roots.iter().filter_map(|r| r.attr("hooktel.team.name")).collect::<HashSet<_>>();
            assert_eq!(team.len(), 1, "{run}: one team: {team:?}");
            let lead_root = roots.iter().find(|r| r.links.is_empty()).expect("the lead's root links nowhere");
            let mate_root = roots.iter().find(|r| !r.links.is_empty()).expect("the teammate's root links");
            assert_eq!(
                mate_root.links,
                [SpanLink { trace_id: lead_root.trace_id, span_id: lead_root.span_id, kind: "team_lead".into() }]
            );
            assert_eq!(mate_root.attr("hooktel.team.agent").as_deref(), Some("worker"));
            assert_eq!(lead_root.attr("hooktel.team.agent").as_deref(), Some("team-lead"));
            if !lead.is_empty() {
                assert_eq!(&*lead_root.session_id, lead);
                assert!(mate_root.session_id.starts_with(mate));
                let agent = by_call(&spans, spawn);
                assert_eq!(agent.links.len(), 1, "the lead's Agent call links to the teammate");
                assert_eq!((agent.links[0].trace_id, agent.links[0].kind.as_str()), (mate_root.trace_id, "teammate"));
            }
            let mates_spans = spans.iter().filter(|r| r.trace_id == mate_root.trace_id);
            assert!(mates_spans.clone().all(|r| r.attr("hooktel.team.agent").as_deref() == Some("worker")));
            let task = spans.iter().find(|r| r.key == SpanKey::Task).expect("the task");
            assert_eq!(task.trace_id, mate_root.trace_id, "in the trace of the agent that completed it");
            assert_eq!(task.links[0].trace_id, lead_root.trace_id);
            assert_eq!(task.attr("hooktel.task.created_by").as_deref(), Some(&*lead_root.session_id));
            assert!(task.end > task.start, "from the lead's TaskCreated to the teammate's TaskCompleted");
        }
    }

    /// A sidecar that never saw the lead (its hooks went elsewhere) links a pane teammate to it
    /// from the team's file alone; when the file and the lead's own answer disagree, no link.
    #[test]
    fn a_pane_teammate_links_from_the_team_file_and_never_on_disagreement() {
        const LEAD: &str = "859c7e3e-8fa0-4df2-8d03-c77a415fe327";
        const MATE: &str = "34e8d59d";
        for (with_lead, file_says, linked) in
            [(false, LEAD, true), (true, "859c7e3e-0000-0000-0000-000000000000", false)]
        {
            let mut s = Sessions::new(settings());
            let mut out = Vec::new();
            for mut ev in team_events("tmux-panes-2.1.332") {
                let mine = ev.session_id.starts_with(MATE);
                if !mine && !with_lead {
                    continue;
                }
                let at = ev.at;
                if mine && ev.team.is_some() {
                    ev.team_lead = Some(file_says.to_owned());
                }
                s.ingest(ev, at, &mut out);
            }
            s.tick(u64::MAX / 2, &mut out);
            let mate = out.iter().find(|r| r.key == SpanKey::Root && r.session_id.starts_with(MATE)).unwrap();
            assert_eq!(mate.attr("hooktel.team.name").as_deref(), Some("session-859c7e3e"));
            let want = linked.then(|| SpanLink {
                trace_id: ids::trace_id(LEAD),
                span_id: ids::span_id(LEAD, SpanKey::Root, LEAD),
                kind: "team_lead".into(),
            });
            assert_eq!(mate.links.first(), want.as_ref(), "lead seen: {with_lead}, file says {file_says}");
        }
    }

    /// A task nobody completed closes as incomplete with its creator's session.
    #[test]
    fn a_task_never_completed_closes_incomplete() {
        let payloads = [
            (simple("SessionStart", json!({})), MS),
            (simple("UserPromptSubmit", json!({})), 2 * MS),
            (simple("TaskCreated", json!({"task_id": "7", "task_subject": "never done"})), 3 * MS),
            (simple("SessionEnd", json!({"reason": "other"})), 9 * MS),
        ];
        let spans = run(&payloads);
        let task = spans.iter().find(|r| r.key == SpanKey::Task).unwrap();
        assert_eq!(
            (task.name.as_str(), task.incomplete, task.start, task.end),
            ("task never done", true, 3 * MS, 9 * MS)
        );
    }

    /// A `--fork-session` session: its root says it began as a fork and links to its origin's root
    /// (learnt from its transcript's copied responses), and counts only its own responses.
    #[test]
    fn a_fork_links_to_its_origin_and_counts_only_its_own_usage() {
        const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/transcripts/fork-2.1.329");
        const ORIGIN: &str = "082b7548-ad4a-4949-86a5-67e6cb172c59";
        const FORK: &str = "ff7c266d-769e-439d-a6c5-940a3331fc54";
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        let hooks = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/teams/fork-2.1.329/hooks.jsonl"
        ))
        .unwrap();
        // the fork's first run, up to its first SessionEnd
        let mut payloads: Vec<Value> = Vec::new();
        for line in hooks.lines() {
            let p = serde_json::from_str::<Value>(line).unwrap()["payload"].clone();
            if p["session_id"] == FORK {
                let end = p["hook_event_name"] == "SessionEnd";
                payloads.push(p);
                if end {
                    break;
                }
            }
        }
        let bytes = std::fs::read(format!("{FIXTURE}/-home-dev-rf329-work/{FORK}.jsonl")).unwrap();
        let deltas = crate::usage::transcript::Ledger::default()
            .read(&bytes, &crate::usage::pricing::PriceTable::builtin())
            .deltas;
        for (i, p) in payloads.iter().enumerate() {
            let at = (i as u64 + 1) * 100 * MS;
            s.ingest(event(p, at), at, &mut out);
            if i == 1 {
                for delta in deltas.clone() {
                    s.add_usage(&SessionUsage { session_id: FORK.into(), delta }, at);
                }
            }
        }
        s.tick(u64::MAX / 2, &mut out);
        let root = out.iter().find(|r| r.key == SpanKey::Root).unwrap();
        assert_eq!(root.attr("hooktel.session.source").as_deref(), Some("fork"));
        assert_eq!(root.attr("hooktel.session.forked_from").as_deref(), Some(ORIGIN));
        assert_eq!(
            root.links,
            [SpanLink {
                trace_id: ids::trace_id(ORIGIN),
                span_id: ids::span_id(ORIGIN, SpanKey::Root, ORIGIN),
                kind: "forked_from".into()
            }]
        );
        assert_eq!(root.usage.as_ref().unwrap().tokens.output, 50, "only the fork's own two responses");
        assert_eq!(out.iter().filter(|r| r.key == SpanKey::Chat).count(), 2);
    }

    /// Claude Code's tool reports put each tool call's permission decision, wait and execution time
    /// on its span: from the beta trace spans exactly (a `tool.blocked_on_user` found through its
    /// parent `claude_code.tool` span, which the captured export sends in a later batch for the
    /// `Agent` call), from the log events otherwise; its metrics give the root its counters. In any
    /// order of arrival.
    #[test]
    fn native_telemetry_times_the_tool_calls() {
        use crate::model::otlp::Signal;
        use crate::testdata::{captured_native, CAPTURED_AT};
        for signals in
            [[Signal::Traces, Signal::Logs, Signal::Metrics], [Signal::Metrics, Signal::Logs, Signal::Traces]]
        {
            let mut s = Sessions::new(settings());
            let mut out = Vec::new();
            for (i, p) in CAPTURED.iter().enumerate() {
                let at = CAPTURED_AT + i as u64 * 200 * MS;
                s.ingest(event(&serde_json::from_str(p).unwrap(), at), at, &mut out);
            }
            let mut natives: Vec<Event> =
                signals.iter().flat_map(|sig| captured_native(Capture::Metadata, *sig)).collect();
            if signals[0] == Signal::Metrics {
                natives.reverse();
            }
            for ev in natives {
                let at = ev.at;
                assert_eq!(s.ingest(ev, at, &mut out), Ingested::Accepted);
            }
            s.tick(u64::MAX / 2, &mut out);
            let tool = |id: &str| out.iter().find(|r| r.attr("gen_ai.tool.call.id").as_deref() == Some(id)).unwrap();
            // (tool_use_id, exact wait of its tool.blocked_on_user, execution of its tool.execution)
            for (id, wait, execution) in [
                ("toolu_01Mock15235482140", "8", "962"),
                ("toolu_01Mock25235482140", "21", "64"),
                ("toolu_01Mock15235482513", "22", "16"),
                ("toolu_01Mock05235483479", "16", "27"),
            ] {
                let span = tool(id);
                assert_eq!(span.attr("hooktel.tool.permission_wait_ms").as_deref(), Some(wait), "{id} {signals:?}");
                assert_eq!(span.attr("hooktel.tool.execution_ms").as_deref(), Some(execution), "{id}");
                assert_eq!(span.attr("hooktel.tool.decision").as_deref(), Some("accept"), "{id}");
                assert_eq!(span.attr("hooktel.tool.decision_source").as_deref(), Some("config"), "{id}");
            }
            let root = out.iter().find(|r| r.key == SpanKey::Root).unwrap();
            assert_eq!(root.attr("hooktel.session.active_time.cli_s").as_deref(), Some("2.006"));
            // Claude Code's own spans are folded in, never exported
            assert!(out.iter().all(|r| !r.name.starts_with("claude_code.")));
        }
    }

    /// Without the beta traces, the log events alone: the decision, the execution time, and the
    /// wait from the call's start to the decision.
    #[test]
    fn tool_decision_logs_give_the_wait_since_the_call_started() {
        let start = crate::testdata::CAPTURED_AT;
        let payloads = [
            (tool("PreToolUse", "toolu_1", json!({})), start),
            (
                json!({"session_id": S1, "hook_event_name": "claude_code.tool_decision", "tool_use_id": "toolu_1",
                       "decision": "accept", "decision_source": "user_temporary"}),
                start + 4_250 * MS,
            ),
            (tool("PostToolUse", "toolu_1", json!({"duration_ms": 40})), start + 4_300 * MS),
            (
                json!({"session_id": S1, "hook_event_name": "claude_code.tool_result", "tool_use_id": "toolu_1",
                       "duration_ms": "41"}),
                start + 4_300 * MS,
            ),
        ];
        let spans = run(&payloads);
        let span = named(&spans, "execute_tool Bash")[0];
        assert_eq!(span.attr("hooktel.tool.permission_wait_ms").as_deref(), Some("4250"));
        assert_eq!(span.attr("hooktel.tool.execution_ms").as_deref(), Some("41"));
        assert_eq!(span.attr("hooktel.tool.decision_source").as_deref(), Some("user_temporary"));
    }

    /// A failed try is an `api_error` event on its turn; the last one of a turn that failed becomes
    /// a chat span in ERROR with the error's text, whichever of the two arrives first.
    #[test]
    fn failed_api_calls_are_events_and_a_failed_turn_gets_an_error_chat_span() {
        for error_first in [true, false] {
            let prompt = simple("UserPromptSubmit", json!({"prompt_id": "p1"}));
            let err = |attempt: u64, rid: &str| {
                simple(
                    "claude_code.api_error",
                    json!({"prompt_id": "p1", "request_id": rid, "model": "claude-x",
                    "attempt": attempt, "duration_ms": 300, "error": "Overloaded\nSECRET", "status_code": "529"}),
                )
            };
            let failure = simple(
                "StopFailure",
                json!({"prompt_id": "p1", "error": "server_error",
                "last_assistant_message": "API Error: 529 Overloaded"}),
            );
            let mut events =
                vec![(simple("SessionStart", json!({})), 10 * MS), (prompt, 20 * MS), (err(1, "r1"), 500 * MS)];
            let last = (err(2, "r2"), 1_500 * MS);
            if error_first {
                events.extend([last, (failure, 1_600 * MS)]);
            } else {
                events.extend([(failure, 1_600 * MS), last]);
            }
            let out = run(&events);
            let turn = out.iter().find(|r| r.key == SpanKey::Turn).unwrap();
            assert_eq!(turn.events.iter().filter(|e| e.name == "api_error").count(), 2, "error first: {error_first}");
            let failed: Vec<&SpanRecord> = out.iter().filter(|r| r.key == SpanKey::Chat).collect();
            assert_eq!(failed.len(), 1, "only the try that failed for good");
            let chat = failed[0];
            assert_eq!(chat.status, Status::Error("Overloaded".into()), "first line, as the capture level lets out");
            assert_eq!(chat.parent, Some(turn.span_id));
            assert_eq!((chat.start, chat.end), (1_200 * MS, 1_500 * MS));
            assert_eq!(chat.attr("hooktel.api.request_id").as_deref(), Some("r2"));
        }
    }

    /// A flood of made-up teammates and teammate spawns in one session: the teammates and the held
    /// `Agent` calls of pane teammates it remembers stop at `MAX_TEAMMATES`; past it a teammate is a
    /// plain subagent, a spawn a plain tool call.
    #[test]
    fn teammates_held_per_session_are_bounded() {
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        s.ingest(event(&simple("SessionStart", json!({})), MS), MS, &mut out);
        for i in 0..MAX_TEAMMATES as u64 + 300 {
            let name = format!("w{i}");
            let start = simple("SubagentStart", json!({"agent_id": format!("a{name}-{i:016x}"), "agent_type": name}));
            let spawn = tool(
                "PostToolUse",
                &format!("toolu_{i}"),
                json!({"tool_name": "Agent", "tool_response": {"status": "teammate_spawned", "agentId": format!("{name}@session-x"),
                       "team_name": format!("session-{}", &S1[..8]), "name": name}}),
            );
            for p in [start, spawn] {
                s.ingest(event(&p, 2 * MS), 2 * MS, &mut out);
            }
        }
        let state = &s.live[S1];
        assert_eq!((state.teammates.len(), state.pane_spawns.len()), (MAX_TEAMMATES, MAX_TEAMMATES));
    }

    /// What a session holds of Claude Code's telemetry is bounded: reports of requests whose response
    /// never comes (a flood of made-up request ids, of failed tries of made-up prompts) stop at
    /// `MAX_NATIVE` each.
    #[test]
    fn telemetry_held_per_session_is_bounded() {
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        s.ingest(event(&simple("SessionStart", json!({})), MS), MS, &mut out);
        for i in 0..MAX_NATIVE as u64 + 500 {
            let ok = simple("claude_code.api_request", json!({"request_id": format!("r{i}"), "duration_ms": 5}));
            let err = simple("claude_code.api_error", json!({"prompt_id": format!("p{i}"), "error": "x"}));
            // a permission wait for a tool span never reported, and a tool span of a call never seen
            let wait =
                simple("claude_code.tool_decision", json!({"otel_tool_span": format!("{i:016x}"), "wait_ms": 3}));
            let tool = simple(
                "claude_code.tool",
                json!({"otel_tool_span": format!("{:016x}", (i + 1) << 40), "tool_use_id": format!("t{i}")}),
            );
            for p in [ok, err, wait, tool] {
                assert_eq!(s.ingest(event(&p, 2 * MS), 2 * MS, &mut out), Ingested::Accepted);
            }
        }
        let native = &s.live[S1].native;
        assert_eq!((native.pending.len(), native.failed_try.len()), (MAX_NATIVE, MAX_NATIVE));
        assert_eq!((native.waits.len(), native.tool_by_span.len()), (MAX_NATIVE, MAX_NATIVE));
    }

    /// Telemetry never opens or resumes a session: for a session not held, it is late.
    #[test]
    fn native_events_of_an_unknown_session_are_late() {
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        let ev = event(&simple("claude_code.api_request", json!({"request_id": "r", "duration_ms": 5})), 5 * MS);
        assert_eq!(s.ingest(ev, 5 * MS, &mut out), Ingested::Late);
        assert_eq!(s.active(), 0);
    }

    /// One span per API response, under the turn it answers or the subagent whose transcript it is
    /// in; a parent's usage is the sum of its model calls', and the root's the sum of all.
    #[test]
    fn model_calls_hang_under_their_turn_or_subagent_and_add_up() {
        use crate::testdata::{captured, CAPTURED_AT};
        let spans = captured(S1, CAPTURED_AT);
        let of = |key: SpanKey| spans.iter().filter(move |s| s.key == key);
        let (root, turn, agent) = (
            of(SpanKey::Root).next().unwrap(),
            of(SpanKey::Turn).next().unwrap(),
            of(SpanKey::Subagent).next().unwrap(),
        );
        let under = |parent: &SpanRecord| {
            let mut sum = SpanUsage::default();
            let mut n = 0;
            for c in of(SpanKey::Chat).filter(|c| c.parent == Some(parent.span_id)) {
                let u = c.usage.as_ref().unwrap();
                sum.add(&u.models[0], u.tokens, u.cost);
                n += 1;
            }
            (n, sum.tokens, (sum.cost * 1e9).round())
        };
        let own = |s: &SpanRecord| {
            let u = s.usage.clone().unwrap();
            (u.tokens, (u.cost * 1e9).round())
        };
        let (n, tokens, cost) = under(turn);
        assert_eq!((n, (tokens, cost)), (3, own(turn)));
        let (n, tokens, cost) = under(agent);
        assert_eq!((n, (tokens, cost)), (2, own(agent)));
        let mut both = turn.usage.clone().unwrap();
        let a = agent.usage.clone().unwrap();
        both.add(&a.models[0], a.tokens, a.cost);
        assert_eq!(both.tokens, root.usage.as_ref().unwrap().tokens);
        for c in of(SpanKey::Chat) {
            assert!(c.name.starts_with("chat claude-"), "{}", c.name);
            assert_eq!(c.attr("gen_ai.operation.name").as_deref(), Some("chat"));
            assert!(c.attr("gen_ai.response.id").is_some_and(|id| id.starts_with("msg_")));
            assert!(c.attr("gen_ai.response.finish_reasons").is_some());
            assert!(c.start <= c.end);
            if c.parent == Some(turn.span_id) {
                assert!(turn.start <= c.start && c.end <= turn.end, "a model call inside its turn");
            }
        }
        assert_eq!(root.attr("gen_ai.operation.name").as_deref(), Some("invoke_agent"));
    }

    #[test]
    fn captured_session_becomes_one_tree() {
        let spans = run(&captured());
        assert_tree(&spans);
        assert_eq!(spans.len(), 7, "{:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
        let root = named(&spans, "claude-code session")[0];
        assert_eq!(root.trace_id, ids::trace_id(S1));
        let turn = named(&spans, "invoke_agent claude-code")[0];
        assert_eq!(turn.parent, Some(root.span_id));
        let agent = named(&spans, "execute_tool Agent")[0];
        let sub = named(&spans, "invoke_agent Explore")[0];
        assert_eq!(sub.parent, Some(agent.span_id));
        assert_eq!(named(&spans, "execute_tool Glob")[0].parent, Some(sub.span_id));
        assert!(spans.iter().all(|s| s.attr("session.id").as_deref() == Some(S1)));
        assert!(spans.iter().all(|s| s.attr("hooktel.incomplete").is_none()));
    }

    #[test]
    fn replay_yields_identical_spans() {
        let a = run(&captured());
        let b = run(&captured());
        let key = |v: &[SpanRecord]| {
            let mut k: Vec<_> = v.iter().map(|s| (s.span_id, s.parent, s.name.clone(), s.start, s.end)).collect();
            k.sort_by_key(|x| x.0.to_bytes());
            k
        };
        assert_eq!(key(&a), key(&b));
    }

    #[test]
    fn any_delivery_order_yields_the_same_tree() {
        let events = captured();
        let reference = run(&events);
        let shape = |v: &[SpanRecord]| {
            let mut k: Vec<_> =
                v.iter().map(|s| (s.span_id.to_bytes(), s.parent.map(|p| p.to_bytes()), s.start, s.end)).collect();
            k.sort();
            k
        };
        // hooks run concurrently: deliver neighbours swapped, and the whole session reversed in pairs
        for shift in 1..4 {
            let mut shuffled = events.clone();
            for i in (shift..shuffled.len() - 1).step_by(3) {
                shuffled.swap(i, i + 1);
            }
            // SessionEnd must stay last-fired; it is, its `at` is the largest, wherever it arrives
            let spans = run(&shuffled);
            assert_tree(&spans);
            assert_eq!(shape(&spans), shape(&reference), "shift {shift}");
        }
    }

    #[test]
    fn end_before_start_and_duplicates_give_one_span() {
        let spans = run(&[
            (simple("UserPromptSubmit", json!({})), 10 * MS),
            (tool("PostToolUse", "t1", json!({"duration_ms": 5})), 30 * MS),
            (tool("PreToolUse", "t1", json!({})), 20 * MS),
            (tool("PreToolUse", "t1", json!({})), 20 * MS),
            (tool("PostToolUse", "t1", json!({"duration_ms": 5})), 30 * MS),
            (simple("SessionEnd", json!({"reason": "other"})), 40 * MS),
        ]);
        assert_tree(&spans);
        let tools = named(&spans, "execute_tool Bash");
        assert_eq!(tools.len(), 1);
        assert_eq!((tools[0].start, tools[0].end), (20 * MS, 30 * MS));
        assert_eq!(tools[0].attr("hooktel.tool.status").as_deref(), Some("ok"));
    }

    /// `duration_ms * 1_000_000` overflowed on a huge `duration_ms` from a payload (a panic in debug
    /// builds, a wrap in release), and its attribute wrapped to a negative number.
    #[test]
    fn a_huge_duration_saturates_instead_of_wrapping() {
        let spans = run(&[
            (simple("UserPromptSubmit", json!({})), 10 * MS),
            (tool("PostToolUse", "t1", json!({"duration_ms": u64::MAX})), 30 * MS),
            (simple("SessionEnd", json!({"reason": "other"})), 40 * MS),
        ]);
        assert_tree(&spans);
        let t = named(&spans, "execute_tool Bash")[0];
        assert_eq!((t.start, t.end), (0, 30 * MS));
        assert_eq!(t.attr("hooktel.tool.duration_ms"), Some(i64::MAX.to_string()));
    }

    #[test]
    fn session_end_closes_open_spans_as_incomplete() {
        let spans = run(&[
            (simple("UserPromptSubmit", json!({})), 10 * MS),
            (tool("PreToolUse", "t1", json!({})), 20 * MS),
            (simple("SessionEnd", json!({"reason": "prompt_input_exit"})), 40 * MS),
        ]);
        assert_tree(&spans);
        let t = named(&spans, "execute_tool Bash")[0];
        assert_eq!(t.attr("hooktel.incomplete").as_deref(), Some("true"));
        assert_eq!(t.attr("hooktel.tool.status").as_deref(), Some("incomplete"));
        assert_eq!(t.end, 40 * MS);
        let root = named(&spans, "claude-code session")[0];
        assert!(root.attr("hooktel.incomplete").is_none());
    }

    #[test]
    fn a_late_end_within_settle_completes_an_incomplete_span() {
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        s.ingest(event(&simple("UserPromptSubmit", json!({})), 10 * MS), 0, &mut out);
        s.ingest(event(&tool("PreToolUse", "t1", json!({})), 20 * MS), 0, &mut out);
        s.ingest(event(&simple("SessionEnd", json!({"reason": "other"})), 40 * MS), 0, &mut out);
        // the PostToolUse fired before SessionEnd but arrived after it
        s.ingest(event(&tool("PostToolUseFailure", "t1", json!({"error": "Exit code 2"})), 35 * MS), 50 * MS, &mut out);
        s.tick(10_000 * MS, &mut out);
        let t = named(&out, "execute_tool Bash")[0];
        assert!(t.attr("hooktel.incomplete").is_none());
        assert_eq!(t.status, Status::Error("Exit code 2".into()));
        assert_eq!(t.end, 35 * MS);
    }

    #[test]
    fn idle_sessions_close_marked_incomplete() {
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        s.ingest(event(&simple("UserPromptSubmit", json!({})), 10 * MS), 10 * MS, &mut out);
        s.tick(1_000 * MS, &mut out);
        assert!(out.is_empty());
        assert_eq!(s.active(), 1);
        s.tick(70_000 * MS, &mut out); // past the idle timeout: closed now
        s.tick(70_200 * MS, &mut out); // and handed out after settling
        assert_eq!(s.active(), 0);
        assert_tree(&out);
        assert!(out.iter().all(|s| s.attr("hooktel.incomplete").as_deref() == Some("true")));
    }

    #[test]
    fn resumed_session_hangs_under_the_one_root() {
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        s.ingest(event(&simple("SessionStart", json!({"source": "startup"})), 10 * MS), 0, &mut out);
        s.ingest(event(&simple("SessionEnd", json!({"reason": "other"})), 20 * MS), 0, &mut out);
        // resumed 5 ms after the end, before the ended session has settled
        s.ingest(event(&simple("SessionStart", json!({"source": "resume"})), 25 * MS), MS, &mut out);
        s.ingest(event(&simple("UserPromptSubmit", json!({"prompt_id": "p2"})), 26 * MS), MS, &mut out);
        s.ingest(event(&simple("Stop", json!({"prompt_id": "p2"})), 27 * MS), MS, &mut out);
        s.ingest(event(&simple("SessionEnd", json!({"reason": "other"})), 28 * MS), MS, &mut out);
        s.tick(10_000 * MS, &mut out);
        assert_tree(&out);
        let root = named(&out, "claude-code session")[0];
        let seg = named(&out, "claude-code session resumed")[0];
        assert_eq!(seg.parent, Some(root.span_id));
        assert_eq!(named(&out, "invoke_agent claude-code")[0].parent, Some(seg.span_id));
        // an event that fired before the first end but arrives after everything was handed out
        assert_eq!(s.ingest(event(&simple("Notification", json!({})), 15 * MS), 20_000 * MS, &mut out), Ingested::Late);
    }

    #[test]
    fn interleaved_sessions_share_nothing() {
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        let sids: Vec<String> = (0..300).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect();
        for step in 0..6u64 {
            for (i, sid) in sids.iter().enumerate() {
                let at = step * 100 * MS + i as u64;
                let p = match step {
                    0 => json!({"hook_event_name": "SessionStart", "source": "startup"}),
                    1 => json!({"hook_event_name": "UserPromptSubmit", "prompt_id": "same-prompt-id"}),
                    2 => {
                        json!({"hook_event_name": "PreToolUse", "prompt_id": "same-prompt-id", "tool_name": "Read", "tool_use_id": "same-call"})
                    }
                    3 => {
                        json!({"hook_event_name": "PostToolUse", "prompt_id": "same-prompt-id", "tool_name": "Read", "tool_use_id": "same-call"})
                    }
                    4 => json!({"hook_event_name": "Stop", "prompt_id": "same-prompt-id"}),
                    _ => json!({"hook_event_name": "SessionEnd", "reason": "other"}),
                };
                let mut p = p;
                p["session_id"] = sid.clone().into();
                s.ingest(event(&p, at), at, &mut out);
            }
        }
        s.tick(u64::MAX / 2, &mut out);
        assert_eq!(out.len(), 300 * 3);
        for sid in &sids {
            let mine: Vec<_> = out.iter().filter(|r| r.trace_id == ids::trace_id(sid)).cloned().collect();
            assert_eq!(mine.len(), 3, "{sid}");
            assert_tree(&mine);
        }
    }

    #[test]
    fn background_subagent_found_through_the_agent_response() {
        // 2.1.329 background agents: the Agent call returns (naming the agent) before SubagentStart
        let agent_call = |ev: &str, extra: Value| {
            let mut p = simple(
                ev,
                json!({"tool_name": "Agent", "tool_use_id": "call-A", "tool_input": {"subagent_type": "general-purpose"}}),
            );
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            p
        };
        let spans = run(&[
            (simple("UserPromptSubmit", json!({})), 10 * MS),
            (agent_call("PreToolUse", json!({})), 11 * MS),
            (agent_call("PreToolUse", json!({"tool_use_id": "call-B"})), 12 * MS),
            (
                agent_call("PostToolUse", json!({"tool_use_id": "call-B", "tool_response": {"agentId": "agent-b"}})),
                13 * MS,
            ),
            (agent_call("PostToolUse", json!({"tool_response": {"agentId": "agent-a"}})), 14 * MS),
            (simple("Stop", json!({})), 15 * MS),
            (simple("SubagentStart", json!({"agent_id": "agent-b", "agent_type": "general-purpose"})), 16 * MS),
            (simple("SubagentStart", json!({"agent_id": "agent-a", "agent_type": "general-purpose"})), 17 * MS),
            (tool("PreToolUse", "t-in-b", json!({"agent_id": "agent-b"})), 18 * MS),
            (tool("PostToolUse", "t-in-b", json!({"agent_id": "agent-b"})), 19 * MS),
            (simple("SubagentStop", json!({"agent_id": "agent-a"})), 20 * MS),
            (simple("SubagentStop", json!({"agent_id": "agent-b"})), 21 * MS),
            (simple("SessionEnd", json!({"reason": "other"})), 22 * MS),
        ]);
        assert_tree(&spans);
        let call =
            |id: &str| spans.iter().find(|s| s.attr("gen_ai.tool.call.id").as_deref() == Some(id)).unwrap().span_id;
        let agent = |id: &str| {
            spans
                .iter()
                .find(|s| s.attr("gen_ai.agent.id").as_deref() == Some(id) && s.key == SpanKey::Subagent)
                .unwrap()
        };
        assert_eq!(agent("agent-a").parent, Some(call("call-A")));
        assert_eq!(agent("agent-b").parent, Some(call("call-B")));
        let inner = spans.iter().find(|s| s.attr("gen_ai.tool.call.id").as_deref() == Some("t-in-b")).unwrap();
        assert_eq!(inner.parent, Some(agent("agent-b").span_id));
    }

    #[test]
    fn next_prompt_closes_an_interrupted_turn() {
        let spans = run(&[
            (simple("UserPromptSubmit", json!({})), 10 * MS),
            (simple("UserPromptSubmit", json!({"prompt_id": "p2"})), 20 * MS),
            (simple("Stop", json!({"prompt_id": "p2"})), 30 * MS),
            (simple("SessionEnd", json!({"reason": "other"})), 40 * MS),
        ]);
        let turns = named(&spans, "invoke_agent claude-code");
        assert_eq!(turns.len(), 2);
        let first = turns.iter().find(|t| t.attr("hooktel.prompt.id").as_deref() == Some("p1")).unwrap();
        assert_eq!(first.attr("hooktel.incomplete").as_deref(), Some("true"));
        assert_eq!(first.end, 20 * MS);
    }

    #[test]
    fn span_events_are_capped_and_counted() {
        let mut events = vec![(simple("UserPromptSubmit", json!({})), 10 * MS)];
        for i in 0..200 {
            events.push((simple("MessageDisplay", json!({"index": i})), 11 * MS + i));
        }
        events.push((simple("SessionEnd", json!({"reason": "other"})), 50 * MS));
        let spans = run(&events);
        let turn = named(&spans, "invoke_agent claude-code")[0];
        assert_eq!(turn.events.len(), 128);
        assert_eq!(turn.dropped_events, 72);
    }

    #[test]
    fn compaction_is_a_span_with_its_events() {
        let spans = run(&[
            (simple("PreCompact", json!({"trigger": "manual"})), 10 * MS),
            (simple("SubagentStop", json!({"agent_id": "compact-agent", "agent_type": ""})), 11 * MS),
            (simple("PostCompact", json!({"trigger": "manual"})), 12 * MS),
            (simple("SessionEnd", json!({"reason": "other"})), 13 * MS),
        ]);
        assert_tree(&spans);
        let c = named(&spans, "compaction")[0];
        assert_eq!((c.start, c.end), (10 * MS, 12 * MS));
        assert_eq!(c.attr("hooktel.compaction.trigger").as_deref(), Some("manual"));
        assert!(c.events.iter().any(|e| e.name == "SubagentStop"));
    }

    /// A skill's shell command has no end to pair with: a span event on the innermost open span (the
    /// subagent whose skill runs it, else the turn), carrying the skill and the redacted command.
    #[test]
    fn a_skill_shell_command_is_a_span_event_of_its_turn_or_subagent() {
        let shell = |extra: Value| {
            let mut p = simple(
                "PreSkillShellCommand",
                json!({"tool_name": "Bash", "tool_use_id": "t1:preamble-0", "command_name": "release-notes",
                       "invoked_by": "user", "tool_input": {"command": "echo token=SECRET"}}),
            );
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            p
        };
        let spans = run(&[
            (simple("UserPromptSubmit", json!({})), 10 * MS),
            (shell(json!({})), 11 * MS),
            (simple("SubagentStart", json!({"agent_id": "a1", "agent_type": "Explore"})), 12 * MS),
            (shell(json!({"agent_id": "a1", "agent_type": "Explore", "invoked_by": "claude"})), 13 * MS),
            (simple("SubagentStop", json!({"agent_id": "a1", "agent_type": "Explore"})), 14 * MS),
            (simple("Stop", json!({})), 15 * MS),
            (simple("SessionEnd", json!({"reason": "other"})), 16 * MS),
        ]);
        assert_tree(&spans);
        assert!(spans.iter().all(|s| !s.name.contains("PreSkillShellCommand")), "no span of its own");
        for (span, by) in [("invoke_agent claude-code", "user"), ("invoke_agent Explore", "claude")] {
            let s = named(&spans, span)[0];
            let e: Vec<_> = s.events.iter().filter(|e| e.name == "PreSkillShellCommand").collect();
            assert_eq!(e.len(), 1, "{span}: {:?}", s.events);
            let attr =
                |k: &str| e[0].attrs.iter().find(|kv| kv.key.as_str() == k).map(|kv| kv.value.as_str().into_owned());
            assert_eq!(attr("hooktel.hook.command_name").as_deref(), Some("release-notes"));
            assert_eq!(attr("hooktel.hook.invoked_by").as_deref(), Some(by));
            assert_eq!(attr("hooktel.tool.input.command").as_deref(), Some("echo token=***"));
        }
    }

    /// 5,000 SessionStart with new ids held 658 MB: past the cap, the session idle longest closes.
    #[test]
    fn past_the_cap_the_idlest_session_is_closed() {
        let mut s = Sessions::new(Settings { max_sessions: 3, ..settings() });
        let mut out = Vec::new();
        let mut evicted = 0;
        for i in 0..5u64 {
            let sid = format!("00000000-0000-4000-8000-{i:012}");
            let p = json!({"session_id": sid, "hook_event_name": "UserPromptSubmit", "prompt_id": "p"});
            if s.ingest(event(&p, i * MS), i * MS, &mut out) == Ingested::AcceptedEvicting {
                evicted += 1;
            }
        }
        assert_eq!((s.active(), evicted), (3, 2));
        let roots: Vec<_> = out.iter().filter(|r| r.parent.is_none()).collect();
        assert_eq!(roots.len(), 2);
        assert!(roots.iter().all(|r| r.incomplete));
        let first = ids::trace_id("00000000-0000-4000-8000-000000000000");
        assert!(roots.iter().any(|r| r.trace_id == first), "the oldest went first");
    }

    #[test]
    fn ended_sessions_are_forgotten_oldest_first() {
        let mut s = Sessions::new(Settings { max_ended: 10, ..settings() });
        let mut out = Vec::new();
        for i in 0..50u64 {
            let sid = format!("00000000-0000-4000-8000-{i:012}");
            let p = json!({"session_id": sid, "hook_event_name": "SessionEnd", "reason": "other"});
            s.ingest(event(&p, i * MS), i * MS, &mut out);
            s.tick(i * MS + 200 * MS, &mut out);
        }
        assert_eq!(s.active(), 0);
        assert_eq!(s.ended.len(), 10);
        let key = |sid: &str| ids::session_uuid(sid).as_u128();
        assert!(s.ended.contains_key(&key("00000000-0000-4000-8000-000000000049")));
        assert!(!s.ended.contains_key(&key("00000000-0000-4000-8000-000000000000")));
    }

    /// Arbitrary payload values, from the shared deterministic generator.
    impl Rng {
        fn value(&mut self, depth: u32) -> Value {
            match self.next() % if depth > 2 { 4 } else { 6 } {
                0 => Value::Null,
                1 => Value::Bool(self.next() % 2 == 0),
                2 => json!(self.next() as i64 % 1000),
                3 => Value::String(self.pick(&["", "a", "p1", "toolu_1", "Agent", "ä€𝄞", "agent-1"]).into()),
                4 => Value::Array((0..self.next() % 3).map(|_| self.value(depth + 1)).collect()),
                _ => Value::Object(
                    (0..self.next() % 3)
                        .map(|_| (self.pick(&["agentId", "x", "interrupted"]).to_owned(), self.value(depth + 1)))
                        .collect(),
                ),
            }
        }
    }

    #[test]
    fn arbitrary_payloads_never_panic_and_always_form_trees() {
        let names = [
            "SessionStart",
            "SessionEnd",
            "UserPromptSubmit",
            "Stop",
            "StopFailure",
            "PreToolUse",
            "PostToolUse",
            "PostToolUseFailure",
            "PermissionDenied",
            "PermissionRequest",
            "SubagentStart",
            "SubagentStop",
            "PreCompact",
            "PostCompact",
            "Notification",
            "Mystery",
        ];
        let keys = [
            "prompt_id",
            "tool_use_id",
            "tool_name",
            "agent_id",
            "agent_type",
            "trigger",
            "tool_response",
            "duration_ms",
            "error",
            "is_interrupt",
            "cwd",
            "transcript_path",
            "source",
            "reason",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        for i in 0..20_000u64 {
            let mut p = serde_json::Map::new();
            p.insert("session_id".into(), rng.pick(&["s-a", "s-b", S1]).into());
            p.insert("hook_event_name".into(), rng.pick(&names).into());
            for _ in 0..rng.next() % 6 {
                let v = if rng.next() % 3 == 0 {
                    rng.value(0)
                } else {
                    Value::String(rng.pick(&["p1", "p2", "t1", "t2", "a1", "Agent", "auto"]).into())
                };
                p.insert(rng.pick(&keys).into(), v);
            }
            if let Ok(ev) = normalize(&p, i * MS + rng.next() % (5 * MS), Capture::Full) {
                s.ingest(ev, i * MS, &mut out);
            }
            if i % 1000 == 0 {
                s.tick(i * MS, &mut out);
            }
        }
        s.tick(u64::MAX / 2, &mut out);
        s.tick(u64::MAX / 2 + 1, &mut out);
        for sid in ["s-a", "s-b", S1] {
            let mine: Vec<_> = out.iter().filter(|r| r.trace_id == ids::trace_id(sid)).cloned().collect();
            let roots = mine.iter().filter(|r| r.parent.is_none()).count();
            assert_eq!(roots, 1, "{sid}");
            let ids: HashSet<SpanId> = mine.iter().map(|r| r.span_id).collect();
            assert_eq!(ids.len(), mine.len(), "{sid}: span handed out twice");
            for r in &mine {
                assert!(r.parent.is_none_or(|p| ids.contains(&p)), "{sid}: dangling parent of {}", r.name);
                assert!(r.start <= r.end);
            }
        }
    }
}
