//! Agent teams across sessions: which session leads each team, the tasks of each task list waiting
//! for their completion, and what events say about teams (a lead spawning a teammate, a pane
//! teammate naming its team, a task created or completed), which can reach from one session into
//! another. A pane teammate is a session of its own; what relates it to its lead is the team's name
//! (`session-<first 8 hex of the lead's id>`), the lead's `Agent` call that spawned it naming that
//! team, and the team's file. A relation is never guessed: without it, traces stay unlinked.
//!
//! Pure and bounded: no I/O, no clock.

use std::collections::HashMap;

use opentelemetry::KeyValue;

use super::span::{OpenSpan, Parent};
use super::state::SessionState;
use super::Sessions;
use crate::model::event::{Event, Kind};
use crate::model::ids::{self, SessionId, SpanKey};
use crate::model::semconv;
use crate::model::span::SpanLink;

/// Teams remembered; past it, a new one replaces an arbitrary old one.
const MAX_TEAMS: usize = 10_000;

/// Tasks waiting for their completion, over all task lists.
pub(crate) const MAX_TASKS: usize = 100_000;

/// Where and when a task was created.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Created {
    pub(crate) session: SessionId,
    pub(crate) at: u64,
    pub(crate) subject: Option<String>,
    pub(crate) prompt_id: Option<String>,
    pub(crate) agent_id: Option<String>,
}

#[derive(Default)]
pub(crate) struct Teams {
    leads: HashMap<String, String>,
    tasks: HashMap<(String, String), Created>,
}

pub(crate) use crate::model::ids::own_team;

impl Teams {
    /// `session` spawned a teammate of `team`: it leads the team if the name is its own.
    pub(crate) fn note_lead(&mut self, team: &str, session: &str) {
        if own_team(session) != team || self.leads.contains_key(team) {
            return;
        }
        if self.leads.len() >= MAX_TEAMS {
            if let Some(old) = self.leads.keys().next().cloned() {
                self.leads.remove(&old);
            }
        }
        self.leads.insert(team.to_owned(), session.to_owned());
    }

    /// The session that leads `team`, if this sidecar saw it spawn a teammate.
    pub(crate) fn lead_of(&self, team: &str) -> Option<&str> {
        self.leads.get(team).map(String::as_str)
    }

    /// A task created in list `list`; past [`MAX_TASKS`] waiting, it is not remembered (its
    /// completion then makes a span of the completion alone).
    pub(crate) fn created(&mut self, list: &str, task_id: &str, created: Created) {
        let key = (list.to_owned(), task_id.to_owned());
        if self.tasks.len() < MAX_TASKS || self.tasks.contains_key(&key) {
            self.tasks.insert(key, created);
        }
    }

    /// The creation of a task now completed, forgotten.
    pub(crate) fn completed(&mut self, list: &str, task_id: &str) -> Option<Created> {
        self.tasks.remove(&(list.to_owned(), task_id.to_owned()))
    }

    /// The tasks `session` created that nobody completed, forgotten: its end closes them incomplete.
    pub(crate) fn left_open_by(&mut self, session: &str) -> Vec<(String, Created)> {
        let keys: Vec<(String, String)> =
            self.tasks.iter().filter(|(_, c)| c.session == session).map(|(k, _)| k.clone()).collect();
        keys.into_iter().filter_map(|k| self.tasks.remove(&k).map(|c| (k.1, c))).collect()
    }

    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.tasks.len()
    }
}

impl Sessions {
    /// What an event says about agent teams, which can reach across sessions: a lead spawning a
    /// teammate, a pane teammate naming its team (its root then links to the lead's, and the
    /// lead's `Agent` call to it), a task created or completed.
    pub(super) fn teamwork(&mut self, note: Option<TeamNote>, now: u64) {
        let Some(note) = note else { return };
        let sid = note.session.as_str();
        if let Some(team) = &note.team {
            if note.spawn {
                self.teams.note_lead(team, sid);
                if *team == own_team(sid) {
                    if let Some(state) = self.live.get_mut(sid) {
                        state.team.get_or_insert_with(|| team.clone());
                    }
                }
            } else if *team != own_team(sid) {
                self.join_team(sid, team, note.teammate.as_deref(), note.team_lead.as_deref());
            } else if let Some(state) = self.live.get_mut(sid) {
                state.team.get_or_insert_with(|| team.clone());
            }
        }
        let Some((created, task_id, subject)) = note.task else { return };
        let Some(state) = self.live.get(sid) else { return };
        let list = state.team.clone().unwrap_or_else(|| own_team(sid));
        if created {
            let c = Created {
                session: sid.into(),
                at: note.at,
                subject,
                prompt_id: note.prompt_id,
                agent_id: note.agent_id,
            };
            self.teams.created(&list, &task_id, c);
            return;
        }
        // created before its session knew its team, the task sits in the session's own list
        let creation = self.teams.completed(&list, &task_id).or_else(|| self.teams.completed(&own_team(sid), &task_id));
        if let Some(state) = self.live.get_mut(sid) {
            let done =
                TaskDone { list, task_id, subject, at: note.at, prompt_id: note.prompt_id, agent_id: note.agent_id };
            state.task_span(done, creation, false, now);
        }
    }

    /// A pane teammate's session named its team: it carries the team, and, when its lead is known
    /// (this sidecar saw the lead spawn it, or the team's file names it, and the two do not
    /// disagree), its root links to the lead's root and the lead's `Agent` call to it.
    fn join_team(&mut self, sid: &str, team: &str, teammate: Option<&str>, from_file: Option<&str>) {
        let lead = match (self.teams.lead_of(team), from_file) {
            (Some(seen), Some(file)) if seen != file => None,
            (seen, file) => seen.or(file).filter(|l| *l != sid).map(str::to_owned),
        };
        let Some(state) = self.live.get_mut(sid) else { return };
        if state.team.is_some() && state.teammate_name.is_some() {
            return;
        }
        state.team = Some(team.to_owned());
        state.teammate_name = teammate.map(str::to_owned).or(state.teammate_name.take());
        let Some(lead) = lead else { return };
        let to_lead = SpanLink {
            trace_id: ids::trace_id(&lead),
            span_id: ids::span_id(&lead, SpanKey::Root, &lead),
            kind: "team_lead".into(),
        };
        if state.segment.is_none() && !state.top.links.contains(&to_lead) {
            state.top.links.push(to_lead);
        }
        let to_teammate = SpanLink { trace_id: state.trace_id, span_id: state.root_id, kind: "teammate".into() };
        let spawn = teammate.and_then(|name| self.live.get(lead.as_str())?.pane_spawns.get(name).copied());
        if let Some(span) = spawn.and_then(|id| self.live.get_mut(lead.as_str())?.spans.get_mut(&id)) {
            if !span.links.contains(&to_teammate) {
                span.links.push(to_teammate);
            }
        }
    }
}

impl SessionState {
    /// The span of a task, in this session's trace: from its creation (if known) to `done.at`,
    /// under the agent or turn that completed it, linked to the creating session's root when that
    /// is another session; `incomplete` when it never completed (then under its creator).
    pub(super) fn task_span(&mut self, done: TaskDone, created: Option<Created>, incomplete: bool, now: u64) {
        let id = self.span_id(SpanKey::Task, &format!("{}/{}", done.list, done.task_id));
        if self.handed_out.contains(&id) || self.spans.contains_key(&id) {
            return;
        }
        let start = created.as_ref().map_or(done.at, |c| c.at.min(done.at));
        let subject = done.subject.or_else(|| created.as_ref().and_then(|c| c.subject.clone()));
        let mut attrs = vec![KeyValue::new(semconv::TASK_ID, done.task_id.clone())];
        attrs.extend(subject.clone().map(|s| KeyValue::new(semconv::TASK_SUBJECT, s)));
        let (prompt_id, agent_id) = match (&created, incomplete) {
            (Some(c), true) => (c.prompt_id.clone(), c.agent_id.clone()),
            _ => (done.prompt_id, done.agent_id),
        };
        let parent = match agent_id {
            Some(aid) => Parent::Agent(aid, prompt_id),
            None => Parent::Turn(prompt_id),
        };
        let name = format!("task {}", subject.unwrap_or_else(|| done.task_id.clone()));
        let mut span = OpenSpan::new(id, SpanKey::Task, name, start, parent, attrs);
        if let Some(c) = created.filter(|c| *c.session != *self.session_id) {
            span.attrs.push(KeyValue::new(semconv::TASK_CREATED_BY, c.session.clone()));
            span.links.push(SpanLink {
                trace_id: ids::trace_id(&c.session),
                span_id: ids::span_id(&c.session, SpanKey::Root, &c.session),
                kind: "task_created".into(),
            });
        }
        span.incomplete = incomplete;
        span.close(done.at, now);
        self.insert(span);
    }
}

/// What an event says about agent teams, taken before the event is applied.
pub(super) struct TeamNote {
    session: SessionId,
    at: u64,
    team: Option<String>,
    teammate: Option<String>,
    /// The team's lead, from the team's file.
    team_lead: Option<String>,
    /// An `Agent` call's answer that it spawned a teammate.
    spawn: bool,
    /// (created, task id, subject)
    task: Option<(bool, String, Option<String>)>,
    prompt_id: Option<String>,
    agent_id: Option<String>,
}

impl TeamNote {
    pub(super) fn of(ev: &Event) -> Option<TeamNote> {
        let spawn = matches!(&ev.kind, Kind::ToolEnd(call, _) if call.spawned_teammate.is_some());
        let task = match &ev.kind {
            Kind::Task { created, task_id, subject } => Some((*created, task_id.clone(), subject.clone())),
            _ => None,
        };
        if ev.team.is_none() && task.is_none() {
            return None;
        }
        Some(TeamNote {
            session: ev.session_id.clone(),
            at: ev.at,
            team: ev.team.clone(),
            teammate: ev.teammate.clone(),
            team_lead: ev.team_lead.clone(),
            spawn,
            task,
            prompt_id: ev.prompt_id.clone(),
            agent_id: ev.agent_id.clone(),
        })
    }
}

/// A task's completion (or, for one never completed, its creator's end).
pub(super) struct TaskDone {
    pub(super) list: String,
    pub(super) task_id: String,
    pub(super) subject: Option<String>,
    pub(super) at: u64,
    pub(super) prompt_id: Option<String>,
    pub(super) agent_id: Option<String>,
}

/// An in-process teammate's agent id is `a<name>-<16 hex>` (a plain subagent's is `a<16 hex>`).
pub(super) fn is_in_process_teammate(agent_id: &str, name: &str) -> bool {
    let Some(rest) = agent_id.strip_prefix('a').and_then(|r| r.strip_prefix(name)) else { return false };
    let Some(hex) = rest.strip_prefix('-') else { return false };
    !name.is_empty() && hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAD: &str = "859c7e3e-8fa0-4df2-8d03-c77a415fe327";

    #[test]
    fn a_lead_is_only_the_session_whose_id_names_the_team() {
        let mut t = Teams::default();
        t.note_lead("session-859c7e3e", "34e8d59d-0000-0000-0000-000000000000");
        assert_eq!(t.lead_of("session-859c7e3e"), None, "a teammate naming its team does not lead it");
        t.note_lead("session-859c7e3e", LEAD);
        assert_eq!(t.lead_of("session-859c7e3e"), Some(LEAD));
        assert_eq!(own_team(LEAD), "session-859c7e3e");
    }

    #[test]
    fn tasks_wait_for_their_completion_within_a_bound() {
        let mut t = Teams::default();
        let created = |s: &str| Created { session: s.into(), at: 1, subject: None, prompt_id: None, agent_id: None };
        t.created("list", "1", created(LEAD));
        t.created("list", "2", created(LEAD));
        assert_eq!(t.completed("list", "1").map(|c| c.session), Some(LEAD.into()));
        assert_eq!(t.completed("list", "1"), None, "once");
        assert_eq!(t.left_open_by(LEAD).len(), 1);
        for i in 0..MAX_TASKS + 10 {
            t.created("flood", &i.to_string(), created("s"));
        }
        assert_eq!(t.waiting(), MAX_TASKS);
    }
}
